//! Admin changes as values. The runtime saves a change to the config first, then hands the
//! engine what changed ([`crate::Engine::apply`]); every admin method reaches the data plane
//! this one way.

use std::net::Ipv4Addr;

use etherhub_config::{AccessRule, Policy};
use etherhub_hub::{StaticNetwork, UserLists};
use etherhub_securenat::NatConfig;
use etherhub_wireguard::Key;

/// A hub as the engine runs it.
#[derive(Clone, Debug)]
pub struct HubSpec {
    pub name: String,
    pub online: bool,
    /// SetStaticNetwork's gateway and subnet mask for IP tunnels (`None`: SecureNAT's host, if
    /// on, is their gateway).
    pub static_network: Option<StaticNetwork>,
    /// SecureNAT's settings when it is on. The seed and the resolvers inside are the runtime's
    /// to choose: the engine draws no randomness and reads no files.
    pub securenat: Option<NatConfig>,
    /// The access list, in SoftEther's order.
    pub access: Vec<AccessRule>,
}

/// How a user logs in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum UserAuth {
    /// Anyone who names the user.
    Anonymous,
    /// SoftEther's `AuthPassword`: SHA-0 of the password and the upper-case user name.
    Password([u8; 20]),
    /// Password authentication with no password set yet (vpncmd's UserCreate): nobody gets in.
    #[default]
    NoPassword,
    /// A method the engine cannot check yet (certificates, RADIUS, NT domain).
    Other,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserSpec {
    pub hub: String,
    pub name: String,
    pub auth: UserAuth,
    /// The policy its sessions run under (its own, else its group's, else the default).
    pub policy: Policy,
    /// When it expires, Unix milliseconds (0: never); see [`crate::Engine::set_unix_time`].
    pub expires_ms: u64,
    /// Its group ("" for none), for access rules that name groups.
    pub group: String,
    /// SoftEther's `AuthNtLmSecureHash` (MD4 of the UTF-16LE password), which MS-CHAPv2
    /// logins are checked with; `None` when the config has none.
    pub nt_hash: Option<[u8; 16]>,
}

/// A registered WireGuard client key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WgKeySpec {
    pub key: Key,
    pub hub: String,
    pub user: String,
    /// The key's own preshared key (`None`: the server-wide one).
    pub psk: Option<Key>,
    /// The one inner source address its client may use (`None`: the first one it uses).
    pub address: Option<Ipv4Addr>,
}

/// The server's WireGuard identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireGuardSpec {
    pub private_key: Key,
    /// The preshared key of keys that have none of their own.
    pub psk: Option<Key>,
}

/// One admin change.
#[derive(Clone, Debug)]
pub enum Change {
    /// A hub is created, or its settings change (a live hub keeps its sessions and, when only
    /// SecureNAT's timeouts change, its NAT flows).
    Hub(HubSpec),
    /// A hub is deleted: its sessions end.
    HubRemoved(String),
    /// A protocol's options (by the protocol's name): what new sessions follow.
    ProtoOptions {
        protocol: String,
        options: Vec<(String, String)>,
    },
    /// The user lists a hub's access rules name as `include:FILE` and `exclude:FILE`, as the
    /// runtime read them (the engine reads no files).
    AccessUserLists { hub: String, lists: UserLists },
    /// A user is created or changed; a changed password ends the user's password sessions.
    User(UserSpec),
    /// A user is deleted: every session of the user ends, whatever its protocol.
    UserRemoved { hub: String, name: String },
    /// A WireGuard key is registered or changed; a change of hub, user or preshared key ends
    /// its live session (the client's next handshake comes in under the new terms).
    WgKey(WgKeySpec),
    /// A WireGuard key is deleted: its live session ends.
    WgKeyRemoved(Key),
    /// WireGuard is on with these keys, or off (`None`). New server keys end every WireGuard
    /// session.
    WireGuard(Option<WireGuardSpec>),
}
