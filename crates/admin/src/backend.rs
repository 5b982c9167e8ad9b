//! The operations the server provides to the admin API, in the typed messages of
//! [`crate::types`].

use etherhub_config::hash::{challenge_response, digest_eq, hash_admin_password};

use crate::error::AdminError;
use crate::types::*;

/// What an admin login shows of its password.
#[derive(Clone, Copy)]
pub enum Proof<'a> {
    /// The password as typed (JSON-RPC's `X-VPNADMIN-PASSWORD`, `etherhub cmd`).
    Password(&'a str),
    /// SoftEther's challenge response (vpncmd): SHA-0(SHA-0(password) || `random`), where
    /// `random` is what this server sent in its hello.
    Challenge {
        response: [u8; 20],
        random: [u8; 20],
    },
}

impl Proof<'_> {
    /// Whether this proves the password whose SoftEther hash (SHA-0) is `stored`.
    pub fn matches(&self, stored: &[u8]) -> bool {
        match self {
            Proof::Password(p) => digest_eq(stored, &hash_admin_password(p)),
            Proof::Challenge { response, random } => {
                digest_eq(response, &challenge_response(stored, random))
            }
        }
    }

    /// Whether this is the empty password.
    pub fn is_empty(&self) -> bool {
        self.matches(&hash_admin_password(""))
    }
}

impl std::fmt::Debug for Proof<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Proof::Password(_) => "Proof::Password(..)",
            Proof::Challenge { .. } => "Proof::Challenge(..)",
        })
    }
}

/// Result of every backend operation.
pub type AdminResult<T> = Result<T, AdminError>;

/// What the server implements so that [`crate::dispatch`] can serve the admin API.
///
/// Methods are synchronous and are called from a blocking thread (`spawn_blocking`), so they
/// may take locks or touch the disk briefly. Scope checks are done by `dispatch` before a
/// method is called: a hub-scoped method is only called with the hub the caller may manage.
/// Hub names are passed as the client wrote them; comparisons should be case-insensitive as
/// in SoftEther. Not-found cases should use `ERR_HUB_NOT_FOUND` for hubs and
/// `ERR_OBJECT_NOT_FOUND` for users, sessions and keys.
pub trait Backend: Send + Sync {
    /// Check an admin login. `hub` is `None` for the server administrator. Must not reveal
    /// which part was wrong: the same error (`ERR_ACCESS_DENIED`) for an unknown hub and for a
    /// wrong password.
    fn authenticate(
        &self,
        hub: Option<&str>,
        proof: Proof<'_>,
        peer_is_loopback: bool,
    ) -> AdminResult<AdminScope>;

    /// A VPN user changes their own password (SoftEther's `password` method, the Windows
    /// client's "Change Password"): `old` proves the current password, `new_hash` is SoftEther's
    /// hash of the new one (SHA-0 of password and upper-case name) and `new_nt` its NT hash.
    /// Refusals: 69 for an unknown user or a wrong old password, 68 for a user who does not
    /// log in with a password, 52 under the FixPassword policy.
    fn change_user_password(
        &self,
        hub: &str,
        user: &str,
        old: Proof<'_>,
        new_hash: [u8; 20],
        new_nt: Option<[u8; 16]>,
    ) -> AdminResult<()> {
        let _ = (hub, user, old, new_hash, new_nt);
        Err(AdminError::from_code(crate::error::code::ERR_NOT_SUPPORTED))
    }

    /// A protocol's options (SoftEther 5's ProtoOptions): its name as Etherhub spells it, and
    /// each option with its value.
    fn proto_options(
        &self,
        protocol: &str,
    ) -> AdminResult<(String, Vec<(String, etherhub_config::proto::ProtoValue)>)> {
        let _ = protocol;
        Err(AdminError::from_code(crate::error::code::ERR_NOT_SUPPORTED))
    }

    /// Sets options of a protocol (the others keep their values).
    fn set_proto_options(
        &self,
        protocol: &str,
        options: &[(String, etherhub_config::proto::ProtoValue)],
    ) -> AdminResult<()> {
        let _ = (protocol, options);
        Err(AdminError::from_code(crate::error::code::ERR_NOT_SUPPORTED))
    }

    /// The IPsec services (`IPsecGet`).
    fn ipsec_services(&self) -> AdminResult<etherhub_config::ipsec::IpsecServices> {
        Err(AdminError::from_code(crate::error::code::ERR_NOT_SUPPORTED))
    }

    /// Sets the IPsec services (`IPsecEnable`).
    fn set_ipsec_services(&self, s: &etherhub_config::ipsec::IpsecServices) -> AdminResult<()> {
        let _ = s;
        Err(AdminError::from_code(crate::error::code::ERR_NOT_SUPPORTED))
    }

    /// OpenVPN client configurations as a zip (`OpenVpnMakeConfig`).
    fn openvpn_config_zip(&self) -> AdminResult<Vec<u8>> {
        Err(AdminError::from_code(crate::error::code::ERR_NOT_SUPPORTED))
    }

    fn server_info(&self) -> AdminResult<ServerInfo>;
    /// The TLS certificate the server presents (DER).
    fn server_cert(&self) -> AdminResult<Vec<u8>>;
    fn server_status(&self) -> AdminResult<ServerStatus>;

    // Virtual Hubs.
    fn create_hub(&self, hub: &Hub) -> AdminResult<()>;
    fn delete_hub(&self, name: &str) -> AdminResult<()>;
    fn enum_hubs(&self) -> AdminResult<Vec<HubItem>>;
    fn get_hub(&self, name: &str) -> AdminResult<Hub>;
    /// Replace the hub's settings (an empty `admin_password` and no `hashed_password` keep the
    /// old one). This is also
    /// how the hub's static network (vpncmd's `SetStaticNetwork`) changes, as in SoftEther.
    fn set_hub(&self, hub: &Hub) -> AdminResult<()>;
    fn set_hub_online(&self, name: &str, online: bool) -> AdminResult<()>;
    /// A hub's state (vpncmd's `Hub` command reads back the name it selects).
    fn hub_status(&self, name: &str) -> AdminResult<HubStatus>;

    // Users. On create, password authentication with an empty password means "no password
    // set yet": no login may succeed until one is (vpncmd's UserCreate then UserPasswordSet).
    // A password comes as `password` (plain) or, from vpncmd, as `hashed_key` and `nt_hash`
    // (used when `password` is empty and `hashed_key` is not all zero).
    fn create_user(&self, user: &User) -> AdminResult<()>;
    /// Replace a user's settings: names, group (empty: none), expiry, authentication (0
    /// anonymous), policy (a request without `UsePolicy` removes the user's own, as
    /// SoftEther's does); an empty password keeps the current one.
    fn set_user(&self, user: &User) -> AdminResult<()>;
    fn get_user(&self, hub: &str, name: &str) -> AdminResult<User>;
    fn delete_user(&self, hub: &str, name: &str) -> AdminResult<()>;
    fn enum_users(&self, hub: &str) -> AdminResult<Vec<UserItem>>;
    /// Creates (`create`) or changes a group; a request without `UsePolicy` removes its
    /// policy, as SoftEther's does.
    fn put_group(&self, group: &Group, create: bool) -> AdminResult<()>;
    fn get_group(&self, hub: &str, name: &str) -> AdminResult<Group>;
    /// Its members leave it.
    fn delete_group(&self, hub: &str, name: &str) -> AdminResult<()>;
    fn enum_groups(&self, hub: &str) -> AdminResult<Vec<GroupItem>>;

    /// The hub's access rules in order, each with the frames it matched.
    fn access_list(&self, hub: &str) -> AdminResult<Vec<(etherhub_config::AccessRule, u64)>>;
    /// Replaces the hub's access rules (sorted by priority, pass before discard).
    fn set_access_list(&self, hub: &str, rules: &[etherhub_config::AccessRule]) -> AdminResult<()>;

    // Sessions and tables.
    fn enum_sessions(&self, hub: &str) -> AdminResult<Vec<SessionItem>>;
    fn session_status(&self, hub: &str, name: &str) -> AdminResult<SessionStatus>;
    fn delete_session(&self, hub: &str, name: &str) -> AdminResult<()>;
    fn enum_ip_table(&self, hub: &str) -> AdminResult<Vec<IpItem>>;
    fn enum_mac_table(&self, hub: &str) -> AdminResult<Vec<MacItem>>;

    // SecureNAT.
    fn enable_secure_nat(&self, hub: &str) -> AdminResult<()>;
    fn disable_secure_nat(&self, hub: &str) -> AdminResult<()>;
    fn get_secure_nat_option(&self, hub: &str) -> AdminResult<SecureNatOption>;
    fn set_secure_nat_option(&self, hub: &str, option: &SecureNatOption) -> AdminResult<()>;
    fn secure_nat_status(&self, hub: &str) -> AdminResult<SecureNatStatus>;
    fn enum_nat(&self, hub: &str) -> AdminResult<Vec<NatItem>>;
    fn enum_dhcp(&self, hub: &str) -> AdminResult<Vec<DhcpItem>>;

    // WireGuard keys (server admin only, as in SoftEther). All-or-nothing for a batch.
    /// Registers keys, generating a pair where `key` is empty; `all_traffic`: the returned
    /// configs route 0.0.0.0/0 into the tunnel.
    fn add_wg_keys(&self, keys: &[WgKeyRequest], all_traffic: bool)
        -> AdminResult<Vec<WgKeyAdded>>;
    fn delete_wg_keys(&self, keys: &[String]) -> AdminResult<()>;
    /// The key list with addresses and live peer state.
    fn enum_wg_keys(&self) -> AdminResult<Vec<WgKeyStatus>>;
    /// The wg-quick config of a registered key, its private key replaced by a comment.
    fn wg_client_config(&self, key: &str, all_traffic: bool) -> AdminResult<WgKeyAdded>;
    fn wg_server_info(&self) -> AdminResult<WgServerInfo>;
    /// Sets the endpoint host client configs name (empty: the server's host name); returns
    /// what is now stored.
    fn set_wg_public_host(&self, host: &str) -> AdminResult<String>;

    // Ports and listeners.
    fn get_udp_ports(&self) -> AdminResult<Vec<u16>>;
    fn set_udp_ports(&self, ports: &[u16]) -> AdminResult<()>;
    fn create_listener(&self, port: u16, enable: bool) -> AdminResult<()>;
    fn delete_listener(&self, port: u16) -> AdminResult<()>;
    fn enable_listener(&self, port: u16, enable: bool) -> AdminResult<()>;
    fn enum_listeners(&self) -> AdminResult<Vec<ListenerItem>>;

    // Server-wide settings.
    /// Sets the server admin password: `hashed` when it is 20 bytes not all zero (vpncmd),
    /// else the hash of `password`.
    fn set_server_password(&self, password: &ServerPassword) -> AdminResult<()>;
    fn get_config(&self) -> AdminResult<ConfigFile>;
    /// Replace the whole configuration with this text (SoftEther then restarts the server).
    fn set_config(&self, data: &[u8]) -> AdminResult<()>;
}
