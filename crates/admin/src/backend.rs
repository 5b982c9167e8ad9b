//! The operations the server must provide to the admin API.

use crate::error::AdminError;
use crate::types::*;

/// Result of every backend operation.
pub type AdminResult<T> = Result<T, AdminError>;

/// What the server implements so that `dispatch` can serve the admin API.
///
/// Methods are synchronous and are called from a blocking thread (`spawn_blocking`), so they
/// may take locks or touch the disk briefly. Scope checks are done by `dispatch` before a
/// method is called: a hub-scoped method is only called with the hub the caller may manage.
/// Hub names are passed as the client wrote them; comparisons should be case-insensitive as
/// in SoftEther. Not-found cases should use `ERR_HUB_NOT_FOUND` for hubs and
/// `ERR_OBJECT_NOT_FOUND` for users, sessions and keys.
pub trait Backend: Send + Sync {
    /// Check an admin login. `hub` is `None` (or the caller passes `None` for an empty header)
    /// for the server administrator. Must not reveal which part was wrong: return the same
    /// error (`ERR_ACCESS_DENIED`) for an unknown hub and for a wrong password.
    fn authenticate(
        &self,
        hub: Option<&str>,
        password: &str,
        peer_is_loopback: bool,
    ) -> AdminResult<AdminScope>;

    fn server_info(&self) -> AdminResult<ServerInfo>;
    fn server_status(&self) -> AdminResult<ServerStatus>;

    // Virtual Hubs.
    fn create_hub(&self, hub: &HubConfig) -> AdminResult<()>;
    fn delete_hub(&self, name: &str) -> AdminResult<()>;
    fn enum_hubs(&self) -> AdminResult<Vec<HubSummary>>;
    fn get_hub(&self, name: &str) -> AdminResult<HubConfig>;
    /// Replace the hub's settings (`admin_password` `None` or empty keeps the old one). This is
    /// also how the hub's static network (default gateway and subnet, vpncmd's
    /// `SetStaticNetwork`) is changed, as in SoftEther.
    fn set_hub(&self, hub: &HubConfig) -> AdminResult<()>;
    fn set_hub_online(&self, name: &str, online: bool) -> AdminResult<()>;

    // Users. On create, an empty `UserAuth::Password` means "password auth, no password set
    // yet": no login may succeed until one is set (vpncmd's UserCreate then UserPasswordSet).
    fn create_user(&self, user: &UserSpec) -> AdminResult<()>;
    /// Replace a user's settings, including the auth method and password. An empty
    /// `UserAuth::Password` keeps the user's current password.
    fn set_user(&self, user: &UserSpec) -> AdminResult<()>;
    fn get_user(&self, hub: &str, name: &str) -> AdminResult<UserInfo>;
    fn delete_user(&self, hub: &str, name: &str) -> AdminResult<()>;
    fn enum_users(&self, hub: &str) -> AdminResult<Vec<UserSummary>>;

    // Sessions and tables.
    fn enum_sessions(&self, hub: &str) -> AdminResult<Vec<SessionSummary>>;
    fn session_status(&self, hub: &str, name: &str) -> AdminResult<SessionStatus>;
    fn delete_session(&self, hub: &str, name: &str) -> AdminResult<()>;
    fn enum_ip_table(&self, hub: &str) -> AdminResult<Vec<IpEntry>>;
    fn enum_mac_table(&self, hub: &str) -> AdminResult<Vec<MacEntry>>;

    // SecureNAT.
    fn enable_secure_nat(&self, hub: &str) -> AdminResult<()>;
    fn disable_secure_nat(&self, hub: &str) -> AdminResult<()>;
    fn get_secure_nat_option(&self, hub: &str) -> AdminResult<SecureNatOption>;
    fn set_secure_nat_option(&self, hub: &str, option: &SecureNatOption) -> AdminResult<()>;
    fn secure_nat_status(&self, hub: &str) -> AdminResult<SecureNatStatus>;
    /// EnumNAT; a backend without NAT tables says SecureNAT is not running.
    fn enum_nat(&self, _hub: &str) -> AdminResult<Vec<NatTableEntry>> {
        Err(AdminError::from_code(crate::code::ERR_SNAT_NOT_RUNNING))
    }
    /// EnumDHCP, likewise.
    fn enum_dhcp(&self, _hub: &str) -> AdminResult<Vec<DhcpLeaseEntry>> {
        Err(AdminError::from_code(crate::code::ERR_SNAT_NOT_RUNNING))
    }

    // WireGuard keys (server admin only, as in SoftEther). All-or-nothing for a batch.
    fn add_wg_keys(&self, keys: &[WgKey]) -> AdminResult<()>;
    fn delete_wg_keys(&self, keys: &[String]) -> AdminResult<()>;
    fn enum_wg_keys(&self) -> AdminResult<Vec<WgKey>>;
    fn wg_server_info(&self) -> AdminResult<WgServerInfo>;

    // Etherhub's WireGuard conveniences. The defaults serve a backend that only knows the
    // plain key list: keys given, no addresses, no client configs.

    /// Registers keys (generating a pair where `key` is empty) and gives each peer an address;
    /// all-or-nothing. `all_traffic`: the returned configs route 0.0.0.0/0 into the tunnel.
    fn add_wg_keys_auto(
        &self,
        keys: &[WgKeyRequest],
        all_traffic: bool,
    ) -> AdminResult<Vec<WgKeyAdded>> {
        let _ = all_traffic;
        if keys.iter().any(|k| k.key.is_empty() || k.address.is_some()) {
            return Err(AdminError::new(
                crate::error::code::ERR_NOT_SUPPORTED,
                "this server cannot generate keys or assign addresses",
            ));
        }
        let plain: Vec<WgKey> = keys
            .iter()
            .map(|k| WgKey {
                key: k.key.clone(),
                hub: k.hub.clone(),
                user: k.user.clone(),
            })
            .collect();
        self.add_wg_keys(&plain)?;
        Ok(keys
            .iter()
            .map(|k| WgKeyAdded {
                key: k.key.clone(),
                hub: k.hub.clone(),
                user: k.user.clone(),
                address: None,
                config: String::new(),
            })
            .collect())
    }

    /// The key list with addresses and live peer state.
    fn enum_wg_key_status(&self) -> AdminResult<Vec<WgKeyStatus>> {
        Ok(self
            .enum_wg_keys()?
            .into_iter()
            .map(|k| WgKeyStatus {
                key: k.key,
                hub: k.hub,
                user: k.user,
                ..WgKeyStatus::default()
            })
            .collect())
    }

    /// The wg-quick config of a registered key, its private key replaced by a comment.
    fn wg_client_config(&self, key: &str, all_traffic: bool) -> AdminResult<WgKeyAdded> {
        let _ = (key, all_traffic);
        Err(AdminError::new(
            crate::error::code::ERR_NOT_SUPPORTED,
            "this server cannot make client configs",
        ))
    }

    /// The endpoint host client configs name (empty: the server's host name).
    fn wg_public_host(&self) -> AdminResult<String> {
        Ok(String::new())
    }

    fn set_wg_public_host(&self, host: &str) -> AdminResult<()> {
        let _ = host;
        Err(AdminError::new(
            crate::error::code::ERR_NOT_SUPPORTED,
            "this server has no public host setting",
        ))
    }

    // Ports and listeners.
    fn get_udp_ports(&self) -> AdminResult<Vec<u16>>;
    fn set_udp_ports(&self, ports: &[u16]) -> AdminResult<()>;
    fn create_listener(&self, port: u16, enable: bool) -> AdminResult<()>;
    fn delete_listener(&self, port: u16) -> AdminResult<()>;
    fn enable_listener(&self, port: u16, enable: bool) -> AdminResult<()>;
    fn enum_listeners(&self) -> AdminResult<Vec<ListenerInfo>>;

    // Server-wide settings.
    fn set_server_password(&self, password: &str) -> AdminResult<()>;
    fn get_config(&self) -> AdminResult<ConfigFile>;
    /// Replace the whole configuration with this text (SoftEther then restarts the server).
    fn set_config(&self, data: &[u8]) -> AdminResult<()>;
}
