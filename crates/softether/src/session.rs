//! A VPN session's login (`method` "login", SoftEther's client `vpnclient`), the welcome that
//! accepts it, and the `additional_connect` that adds a TCP connection to a session.

use std::net::IpAddr;

use etherhub_config::policy::{self, Policy};
use etherhub_pack::Pack;

use crate::handshake::LoginError;

/// How a client proves who it is (its `authtype`).
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// 0: no credential (the hub must have the user as anonymous).
    Anonymous,
    /// 1: SHA-0(SHA-0(password || UPPER(user)) || the hello's random).
    Password { secure: [u8; 20] },
    /// 2: the password itself (for RADIUS and NT domain users; over TLS).
    PlainPassword(String),
    /// 3 certificates, 99 tickets and anything else: not served.
    Other(u32),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Anonymous => f.write_str("Anonymous"),
            Auth::Password { .. } => f.write_str("Password(..)"),
            Auth::PlainPassword(_) => f.write_str("PlainPassword(..)"),
            Auth::Other(n) => write!(f, "Other({n})"),
        }
    }
}

/// What a client says of itself (its login's NodeInfo and version; SessionGet shows it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// `hello` (or `client_str`), e.g. "SoftEther VPN Client Developer Edition".
    pub product: String,
    pub version: u32,
    pub build: u32,
    pub os_name: String,
    pub os_version: String,
    pub os_product_id: String,
    pub hostname: String,
    /// The client's own view of its address and port (NodeInfo `ClientIpAddress`, `ClientPort`).
    pub local_ip: Option<IpAddr>,
    pub local_port: u16,
    pub unique_id: Vec<u8>,
}

/// A VPN session login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionLogin {
    pub hub: String,
    pub user: String,
    pub auth: Auth,
    /// TCP connections the client would like (1..32).
    pub max_connection: u32,
    pub use_encrypt: bool,
    pub use_compress: bool,
    /// Each connection one way only.
    pub half_connection: bool,
    pub qos: bool,
    pub bridge_mode: bool,
    pub monitor_mode: bool,
    pub client: ClientInfo,
}

impl SessionLogin {
    /// Reads a `login` PACK; `hubname` and `username` are required.
    pub fn from_pack(p: &Pack) -> Result<SessionLogin, LoginError> {
        let text = |n: &str| p.str(n).unwrap_or("").to_string();
        let hub = text("hubname");
        let user = text("username");
        if hub.is_empty() || user.is_empty() {
            return Err(LoginError::NoHubOrUser);
        }
        let auth = match p.int("authtype").unwrap_or(0) {
            0 => Auth::Anonymous,
            1 => match p.data("secure_password").map(<[u8; 20]>::try_from) {
                Some(Ok(secure)) => Auth::Password { secure },
                _ => return Err(LoginError::BadSecurePassword),
            },
            2 => Auth::PlainPassword(text("plain_password")),
            n => Auth::Other(n),
        };
        let flag = |n: &str| p.int(n).unwrap_or(0) != 0;
        // NodeInfo keeps versions and ports with their bytes swapped (SoftEther's `Endian32`)
        let swapped = |n: &str| p.int(n).unwrap_or(0).swap_bytes();
        let product = p
            .str("hello")
            .or_else(|| p.str("client_str"))
            .unwrap_or("Unknown")
            .to_string();
        Ok(SessionLogin {
            hub,
            user,
            auth,
            max_connection: p.int("max_connection").unwrap_or(1).clamp(1, 32),
            use_encrypt: flag("use_encrypt"),
            use_compress: flag("use_compress"),
            half_connection: flag("half_connection"),
            qos: flag("qos"),
            bridge_mode: flag("require_bridge_routing_mode"),
            monitor_mode: flag("require_monitor_mode"),
            client: ClientInfo {
                product,
                version: p.int("client_ver").unwrap_or(0),
                build: p.int("client_build").unwrap_or(0),
                os_name: text("ClientOsName"),
                os_version: text("ClientOsVer"),
                os_product_id: text("ClientOsProductId"),
                hostname: text("ClientHostname"),
                local_ip: p.ip("ClientIpAddress"),
                local_port: u16::try_from(swapped("ClientPort")).unwrap_or(0),
                unique_id: p.data("UniqueId").unwrap_or(&[]).to_vec(),
            },
        })
    }
}

/// `additional_connect`: another TCP connection for the session this key names.
pub fn additional_key(p: &Pack) -> Result<[u8; 20], LoginError> {
    p.data("session_key")
        .and_then(|k| <[u8; 20]>::try_from(k).ok())
        .ok_or(LoginError::BadSessionKey)
}

/// Which way a connection carries frames (`TCP_BOTH`, `TCP_SERVER_TO_CLIENT`,
/// `TCP_CLIENT_TO_SERVER`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Both = 0,
    ServerToClient = 1,
    ClientToServer = 2,
}

impl Direction {
    /// Whether the server sends frames on a connection of this direction.
    pub fn server_sends(self) -> bool {
        self != Direction::ClientToServer
    }
}

/// The welcome: the session is up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Welcome {
    pub session_name: String,
    pub connection_name: String,
    pub session_key: [u8; 20],
    pub max_connection: u32,
    pub use_compress: bool,
    pub half_connection: bool,
    /// Idle time after which a connection (and, without any, the session) ends.
    pub timeout_ms: u32,
    /// The hub's message ("Msg"; may be empty).
    pub message: String,
    /// The user's security policy, as the session runs it.
    pub policy: Policy,
}

impl Welcome {
    /// The welcome PACK. Encryption stays on (the data channel stays inside TLS), QoS and UDP
    /// acceleration are declined, the client's own address is not restricted beyond the
    /// hub's rules. The policy is the user's, with bridging and routing off (as SoftEther
    /// sets them for a client that did not ask for bridge mode), QoS off, and the connection
    /// count and timeout the session runs with.
    pub fn to_pack(&self) -> Pack {
        let mut p = Pack::new();
        p.set_str("session_name", &self.session_name);
        p.set_str("connection_name", &self.connection_name);
        p.set_int("max_connection", self.max_connection);
        p.set_bool("use_encrypt", true);
        p.set_bool("use_compress", self.use_compress);
        p.set_bool("half_connection", self.half_connection);
        p.set_int("timeout", self.timeout_ms.max(5000));
        p.set_bool("qos", false);
        p.set_bool("is_azure_session", false);
        p.set_data("session_key", &self.session_key);
        let k = &self.session_key;
        p.set_int(
            "session_key_32",
            u32::from_be_bytes([k[0], k[1], k[2], k[3]]),
        );
        let mut policy = self.policy;
        for (name, v) in [
            ("NoBridge", 1),
            ("NoRouting", 1),
            ("NoQoS", 1),
            ("MaxConnection", self.max_connection),
            ("TimeOut", self.timeout_ms / 1000),
        ] {
            if let Some(id) = policy::ITEMS.iter().position(|i| i.name == name) {
                policy.0[id] = v;
            }
        }
        for (id, item) in policy::ITEMS.iter().enumerate() {
            let name = format!("policy:{}", item.name);
            match item.kind {
                policy::Kind::Flag => p.set_bool(&name, policy.flag(id)),
                policy::Kind::Number { .. } => p.set_int(&name, policy.0[id]),
            }
        }
        p.set_bool("policy:Ver3", true);
        p.set_int("vlan_id", 0);
        p.set_bool("enable_udp_recovery", false);
        p.set_data("Msg", self.message.as_bytes());
        p
    }
}

/// The answer to an `additional_connect` that joined the session.
pub fn joined(direction: Direction) -> Pack {
    let mut p = Pack::new();
    p.set_int("error", 0);
    p.set_int("direction", direction as u32);
    p
}

/// A refused login or connection: SoftEther's error code (and the client keeps its saved
/// password).
pub fn refused(code: u32) -> Pack {
    let mut p = Pack::new();
    p.set_int("error", code);
    p.set_bool("no_save_password", false);
    p
}

/// What the front door hands the session core after a `login` or `additional_connect`
/// request: the request, the hello's random, a fresh session key (for a login) and the TLS
/// cipher, as one PACK (the runtime's randomness and TLS stay outside the core).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handoff {
    pub random: [u8; 20],
    pub session_key: [u8; 20],
    pub cipher: String,
    /// Unix seconds, for the answer's `Date` header.
    pub unix_secs: u64,
    pub request: Pack,
}

impl Handoff {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut p = Pack::new();
        p.set_data("random", &self.random);
        p.set_data("session_key", &self.session_key);
        p.set_str("cipher", &self.cipher);
        p.set_int64("unix_secs", self.unix_secs);
        p.set_data("request", &self.request.to_bytes());
        p.to_bytes()
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Handoff> {
        let p = Pack::parse(bytes).ok()?;
        Some(Handoff {
            random: p.data("random")?.try_into().ok()?,
            session_key: p.data("session_key")?.try_into().ok()?,
            cipher: p.str("cipher").unwrap_or("").to_string(),
            unix_secs: p.int64("unix_secs").unwrap_or(0),
            request: Pack::parse(p.data("request")?).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vpnclient_login() -> Pack {
        let mut p = Pack::new();
        p.set_str("method", "login");
        p.set_str("hubname", "DEFAULT");
        p.set_str("username", "alice");
        p.set_int("authtype", 1);
        p.set_data("secure_password", &[7; 20]);
        p.set_str("client_str", "SoftEther VPN Client Developer Edition");
        p.set_str("hello", "SoftEther VPN Client Developer Edition");
        p.set_int("client_ver", 501);
        p.set_int("client_build", 9674);
        p.set_int("max_connection", 4);
        p.set_int("use_encrypt", 1);
        p.set_int("use_compress", 0);
        p.set_bool("qos", true);
        p.set_str("ClientOsName", "Linux");
        p.set_int("ClientPort", 40000u32.swap_bytes());
        p.set_ip("ClientIpAddress", "198.18.0.2".parse().unwrap());
        p
    }

    #[test]
    fn reads_vpnclients_login() {
        let l = SessionLogin::from_pack(&vpnclient_login()).unwrap();
        assert_eq!((l.hub.as_str(), l.user.as_str()), ("DEFAULT", "alice"));
        assert_eq!(l.auth, Auth::Password { secure: [7; 20] });
        assert_eq!(l.max_connection, 4);
        assert!(l.use_encrypt && l.qos && !l.use_compress);
        assert_eq!(l.client.product, "SoftEther VPN Client Developer Edition");
        assert_eq!((l.client.version, l.client.build), (501, 9674));
        assert_eq!(l.client.local_port, 40000);
        assert_eq!(l.client.local_ip, Some("198.18.0.2".parse().unwrap()));
        assert_eq!(format!("{:?}", l.auth), "Password(..)", "no secret in logs");
    }

    #[test]
    fn refuses_a_login_without_hub_user_or_a_whole_hash() {
        let mut p = vpnclient_login();
        p.remove("username");
        assert_eq!(SessionLogin::from_pack(&p), Err(LoginError::NoHubOrUser));
        let mut p = vpnclient_login();
        p.set_data("secure_password", &[1; 19]);
        assert_eq!(
            SessionLogin::from_pack(&p),
            Err(LoginError::BadSecurePassword)
        );
        let mut p = vpnclient_login();
        p.set_int("authtype", 3);
        assert_eq!(SessionLogin::from_pack(&p).unwrap().auth, Auth::Other(3));
    }

    #[test]
    fn the_welcome_has_what_vpnclient_requires() {
        let w = Welcome {
            session_name: "SID-ALICE-2".into(),
            connection_name: "CID-7".into(),
            session_key: [3; 20],
            max_connection: 4,
            use_compress: false,
            half_connection: false,
            timeout_ms: 20_000,
            message: String::new(),
            policy: Policy::default(),
        };
        let p = w.to_pack();
        assert_eq!(p.str("session_name"), Some("SID-ALICE-2"));
        assert_eq!(p.str("connection_name"), Some("CID-7"));
        assert_eq!(p.data("session_key"), Some(&[3u8; 20][..]));
        assert_eq!(p.int("timeout"), Some(20_000));
        assert_eq!(p.int("qos"), Some(0));
        assert_eq!(p.int("policy:AutoDisconnect"), Some(0));
        assert_eq!(p.int("policy:NoSavePassword"), Some(0));
        assert_eq!(p.int("policy:Access"), Some(1));
        assert_eq!(p.int("policy:MaxConnection"), Some(4));
        assert_eq!(p.int("policy:NoBridge"), Some(1));
        assert_eq!(p.int("policy:Ver3"), Some(1));
        let mut limited = Welcome {
            policy: Policy::default(),
            ..w
        };
        limited.policy.set_named("MaxDownload", "1000000").unwrap();
        limited.policy.set_named("PrivacyFilter", "yes").unwrap();
        let p = limited.to_pack();
        assert_eq!(p.int("policy:MaxDownload"), Some(1_000_000));
        assert_eq!(p.int("policy:PrivacyFilter"), Some(1));
        assert!(p.get("use_udp_acceleration").is_none());
        assert_eq!(joined(Direction::ServerToClient).int("direction"), Some(1));
        assert_eq!(refused(9).int("error"), Some(9));
    }

    #[test]
    fn a_handoff_round_trips() {
        let h = Handoff {
            random: [1; 20],
            session_key: [2; 20],
            cipher: "TLS13_AES_256_GCM_SHA384".into(),
            unix_secs: 1_795_554_100,
            request: vpnclient_login(),
        };
        assert_eq!(Handoff::from_bytes(&h.to_bytes()), Some(h));
        assert_eq!(Handoff::from_bytes(b"junk"), None);
        let mut k = Pack::new();
        k.set_data("session_key", &[5; 20]);
        assert_eq!(additional_key(&k), Ok([5; 20]));
        assert_eq!(additional_key(&Pack::new()), Err(LoginError::BadSessionKey));
    }
}
