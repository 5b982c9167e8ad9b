//! A typed view over the tree for the parts Etherhub uses. Reads return plain structs; writes
//! change only the items they own, so every block and value we do not know survives a save.

use crate::access::{self, AccessRule};
use crate::hash;
use crate::policy::Policy;
use crate::tree::{self, Folder, ParseError};
use std::net::Ipv4Addr;

pub const DEFAULT_PORTS: [u16; 4] = [443, 992, 1194, 5555];
pub const DEFAULT_HUB: &str = "DEFAULT";

/// What a model operation refuses, with the reason a person can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("the virtual hub {0:?} does not exist")]
    HubNotFound(String),
    #[error("the virtual hub {0:?} already exists")]
    HubExists(String),
    #[error("the user {user:?} does not exist on hub {hub:?}")]
    UserNotFound { hub: String, user: String },
    #[error("the user {user:?} already exists on hub {hub:?}")]
    UserExists { hub: String, user: String },
    #[error("invalid name {0:?}: use 1-255 characters without spaces, control characters or '$'")]
    BadName(String),
    #[error("the WireGuard key {0:?} is already registered")]
    WgKeyExists(String),
    #[error("the WireGuard key {0:?} is not registered")]
    WgKeyNotFound(String),
    #[error("a listener on port {0} already exists")]
    ListenerExists(u16),
    #[error("no listener on port {0}")]
    ListenerNotFound(u16),
    #[error("{addr} is not a host address of hub {hub:?}'s network {network}")]
    WgAddressOutsideNetwork {
        hub: String,
        addr: Ipv4Addr,
        network: String,
    },
    #[error("{addr} is taken on hub {hub:?}: {by}")]
    WgAddressTaken {
        hub: String,
        addr: Ipv4Addr,
        by: String,
    },
    #[error(
        "hub {hub:?}'s network {network} has no free address left for another WireGuard peer \
         ({peers} peers hold addresses); widen it with SetStaticNetwork or delete a key"
    )]
    WgNetworkFull {
        hub: String,
        network: String,
        peers: usize,
    },
    #[error("{0:?} is not a host name: use letters, digits and . - _ : [ ] only")]
    BadHostName(String),
    #[error("the group {group:?} does not exist on hub {hub:?}")]
    GroupNotFound { hub: String, group: String },
    #[error("the group {group:?} already exists on hub {hub:?}")]
    GroupExists { hub: String, group: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    pub port: u16,
    pub enabled: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireGuardSettings {
    pub enabled: bool,
    /// base64, as SoftEther stores it
    pub preshared_key: String,
    /// base64, as SoftEther stores it
    pub private_key: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WgKey {
    /// the client's public key, base64
    pub key: String,
    pub hub: String,
    pub user: String,
    /// Etherhub's own `string Address`: the only inner IPv4 source the peer may use (SoftEther
    /// ignores the value)
    pub address: Option<Ipv4Addr>,
    /// Etherhub's own `string PresharedKey`, base64: this key's preshared key instead of the
    /// server-wide one
    pub preshared_key: Option<String>,
}

fn wg_key_of(f: &Folder) -> WgKey {
    WgKey {
        key: f.name.clone(),
        hub: f.get_str("Hub").unwrap_or_default().to_string(),
        user: f.get_str("User").unwrap_or_default().to_string(),
        address: f.get_str("Address").and_then(|a| a.trim().parse().ok()),
        preshared_key: f
            .get_str("PresharedKey")
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecureNatSettings {
    pub enabled: bool,
    pub host_ip: Ipv4Addr,
    pub host_mask: Ipv4Addr,
    pub host_mac: [u8; 6],
    pub nat_enabled: bool,
    pub nat_mtu: u32,
    pub nat_tcp_timeout: u32,
    pub nat_udp_timeout: u32,
    pub save_log: bool,
    pub dhcp_enabled: bool,
    pub dhcp_start: Ipv4Addr,
    pub dhcp_end: Ipv4Addr,
    pub dhcp_mask: Ipv4Addr,
    pub dhcp_expire: u32,
    pub dhcp_gateway: Ipv4Addr,
    pub dhcp_dns: Ipv4Addr,
    pub dhcp_dns2: Ipv4Addr,
    pub dhcp_domain: String,
    pub dhcp_push_routes: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubSettings {
    pub name: String,
    pub online: bool,
    pub hashed_password: Vec<u8>,
    pub default_gateway: Ipv4Addr,
    pub default_subnet: Ipv4Addr,
    pub max_session: u32,
    pub created_time: u64,
    pub securenat: SecureNatSettings,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserSettings {
    pub name: String,
    pub realname: String,
    pub note: String,
    /// 0 anonymous, 1 password, ... as SoftEther numbers them
    pub auth_type: u32,
    pub auth_password: Vec<u8>,
    /// `AuthNtLmSecureHash`: MD4 of the UTF-16LE password, for MS-CHAPv2 (empty when none).
    pub nt_hash: Vec<u8>,
    /// Unix milliseconds (the file keeps SoftEther's time, 9 hours behind).
    pub created_time: u64,
    pub updated_time: u64,
    /// Unix milliseconds; 0 never expires.
    pub expire_time: u64,
    /// The group it belongs to ("" for none).
    pub group: String,
    /// Its own security policy (`None`: its group's, else the hub's default).
    pub policy: Option<Policy>,
}

/// A user group (`SecurityAccountDatabase/GroupList/<name>`): members name it in their
/// `GroupName`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSettings {
    pub name: String,
    pub realname: String,
    pub note: String,
    pub policy: Option<Policy>,
}

/// SoftEther writes times 9 hours behind Unix time (its `SystemToUINT64`).
const SOFTETHER_TIME_OFFSET_MS: u64 = 9 * 3600 * 1000;

fn time_from_file(v: u64) -> u64 {
    if v == 0 {
        0
    } else {
        v + SOFTETHER_TIME_OFFSET_MS
    }
}

fn time_to_file(unix_ms: u64) -> u64 {
    unix_ms.saturating_sub(SOFTETHER_TIME_OFFSET_MS)
}

/// A whole `vpn_server.config`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub root: Folder,
}

const SERVER_CFG: &str = "ServerConfiguration";

fn ip_of(f: Option<&Folder>, name: &str, default: Ipv4Addr) -> Ipv4Addr {
    f.and_then(|f| f.get_str(name))
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A MAC address as SoftEther writes and reads it: six hex bytes apart by `-` or `:`
/// (`00-AC-84-EA-33-BC`), or twelve hex digits in a row.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let s = s.trim();
    if s.contains(['-', ':']) {
        let parts: Vec<u8> = s
            .split(['-', ':'])
            .map(|p| u8::from_str_radix(p, 16))
            .collect::<Result<_, _>>()
            .ok()?;
        return parts.try_into().ok();
    }
    if s.len() != 12 {
        return None;
    }
    let mut m = [0u8; 6];
    for (i, b) in m.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(m)
}

/// `00-AC-84-EA-33-BC`.
pub fn format_mac(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join("-")
}

/// SoftEther's rule for hub and user names, plus what our file format cannot carry.
pub fn check_name(name: &str) -> Result<(), ModelError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.chars().any(|c| c.is_control() || c == ' ' || c == '$');
    if ok {
        Ok(())
    } else {
        Err(ModelError::BadName(name.to_string()))
    }
}

impl Config {
    pub fn parse(text: &str) -> Result<Config, ParseError> {
        Ok(Config {
            root: tree::parse(text)?,
        })
    }

    pub fn to_text(&self) -> String {
        tree::write(&self.root)
    }

    /// SoftEther counts saves in `ConfigRevision`.
    pub fn bump_revision(&mut self) {
        let r = self.root.get_u32("ConfigRevision").unwrap_or(0);
        self.root.set_u32("ConfigRevision", r.wrapping_add(1));
    }

    pub(crate) fn server(&self) -> Option<&Folder> {
        self.root.folder(SERVER_CFG)
    }
    pub(crate) fn server_mut(&mut self) -> &mut Folder {
        self.root.folder_or_create(SERVER_CFG)
    }

    // ---- server admin -------------------------------------------------------------------

    pub fn admin_password_hash(&self) -> Vec<u8> {
        self.server()
            .and_then(|s| s.get_bytes("HashedPassword"))
            .map(<[u8]>::to_vec)
            .unwrap_or_else(|| hash::hash_admin_password("").to_vec())
    }

    pub fn admin_password_is_empty(&self) -> bool {
        hash::digest_eq(&self.admin_password_hash(), &hash::hash_admin_password(""))
    }

    pub fn check_admin_password(&self, password: &str) -> bool {
        hash::digest_eq(
            &self.admin_password_hash(),
            &hash::hash_admin_password(password),
        )
    }

    pub fn set_admin_password(&mut self, password: &str) {
        self.set_admin_password_hash(&hash::hash_admin_password(password));
    }

    /// Sets the server admin password from its hash (SHA-0 of the password), as vpncmd sends it.
    pub fn set_admin_password_hash(&mut self, hashed: &[u8; 20]) {
        self.server_mut().set_bytes("HashedPassword", hashed);
    }

    /// The TLS certificate and private key (DER), when set.
    pub fn server_cert(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        let s = self.server()?;
        Some((
            s.get_bytes("ServerCert")?.to_vec(),
            s.get_bytes("ServerKey")?.to_vec(),
        ))
    }

    pub fn set_server_cert(&mut self, cert_der: &[u8], key_der: &[u8]) {
        let s = self.server_mut();
        s.set_bytes("ServerCert", cert_der);
        s.set_bytes("ServerKey", key_der);
    }

    // ---- listeners and ports ------------------------------------------------------------

    pub fn listeners(&self) -> Vec<Listener> {
        let Some(list) = self.root.folder("ListenerList") else {
            return Vec::new();
        };
        list.folders
            .iter()
            .filter_map(|f| {
                let port = u16::try_from(f.get_u32("Port")?).ok()?;
                Some(Listener {
                    port,
                    enabled: f.get_bool("Enabled").unwrap_or(true),
                })
            })
            .collect()
    }

    fn write_listeners(&mut self, listeners: &[Listener]) {
        let list = self.root.folder_or_create("ListenerList");
        let old = std::mem::take(&mut list.folders);
        for (i, l) in listeners.iter().enumerate() {
            // keep unknown values (DisableDos, ...) of a listener that stays on its port
            let mut f = old
                .iter()
                .find(|f| f.get_u32("Port") == Some(u32::from(l.port)))
                .cloned()
                .unwrap_or_else(|| {
                    let mut f = Folder::new("");
                    f.set_bool("DisableDos", false);
                    f
                });
            f.name = format!("Listener{i}");
            f.set_bool("Enabled", l.enabled);
            f.set_u32("Port", u32::from(l.port));
            list.folders.push(f);
        }
        // SoftEther sorts folder names as strings: Listener0, Listener1, Listener10, ...
        list.folders.sort_by_key(|f| f.name.to_ascii_uppercase());
    }

    pub fn add_listener(&mut self, port: u16, enabled: bool) -> Result<(), ModelError> {
        let mut l = self.listeners();
        if l.iter().any(|x| x.port == port) {
            return Err(ModelError::ListenerExists(port));
        }
        l.push(Listener { port, enabled });
        self.write_listeners(&l);
        Ok(())
    }

    pub fn remove_listener(&mut self, port: u16) -> Result<(), ModelError> {
        let mut l = self.listeners();
        let before = l.len();
        l.retain(|x| x.port != port);
        if l.len() == before {
            return Err(ModelError::ListenerNotFound(port));
        }
        self.write_listeners(&l);
        Ok(())
    }

    pub fn set_listener_enabled(&mut self, port: u16, enabled: bool) -> Result<(), ModelError> {
        let mut l = self.listeners();
        let Some(x) = l.iter_mut().find(|x| x.port == port) else {
            return Err(ModelError::ListenerNotFound(port));
        };
        x.enabled = enabled;
        self.write_listeners(&l);
        Ok(())
    }

    /// `PortsUDP`, as SoftEther writes it: "443, 992, 1194, 5555".
    pub fn udp_ports(&self) -> Vec<u16> {
        self.server()
            .and_then(|s| s.get_str("PortsUDP"))
            .map(|s| {
                s.split([',', ' '])
                    .filter_map(|p| p.trim().parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn set_udp_ports(&mut self, ports: &[u16]) {
        let text = ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        self.server_mut().set_str("PortsUDP", &text);
    }

    // ---- WireGuard ----------------------------------------------------------------------

    pub fn wireguard(&self) -> Option<WireGuardSettings> {
        let f = self.root.path(&[SERVER_CFG, "Proto", "WireGuard"])?;
        Some(WireGuardSettings {
            enabled: f.get_bool("Enabled").unwrap_or(false),
            preshared_key: f.get_str("PresharedKey").unwrap_or_default().to_string(),
            private_key: f.get_str("PrivateKey").unwrap_or_default().to_string(),
        })
    }

    pub fn set_wireguard(&mut self, wg: &WireGuardSettings) {
        let f = self
            .root
            .path_or_create(&[SERVER_CFG, "Proto", "WireGuard"]);
        f.set_bool("Enabled", wg.enabled);
        f.set_str("PresharedKey", &wg.preshared_key);
        f.set_str("PrivateKey", &wg.private_key);
    }

    pub fn wg_keys(&self) -> Vec<WgKey> {
        let Some(list) = self.root.folder("WireGuardKeyList") else {
            return Vec::new();
        };
        list.folders.iter().map(wg_key_of).collect()
    }

    /// Registers a client key with Etherhub's extra values: its address (already checked with
    /// [`Config::wg_address_for`]) and its own preshared key.
    pub fn add_wg_key_full(&mut self, k: &WgKey) -> Result<(), ModelError> {
        self.add_wg_key(&k.key, &k.hub, &k.user)?;
        let f = self
            .root
            .folder_or_create("WireGuardKeyList")
            .folder_or_create(&k.key);
        if let Some(a) = k.address {
            f.set_str("Address", &a.to_string());
        }
        if let Some(p) = &k.preshared_key {
            f.set_str("PresharedKey", p);
        }
        Ok(())
    }

    /// ServerConfiguration's `string WireGuardPublicHost` (Etherhub's own): the host name or
    /// address, with an optional `:port`, that client configs name as the endpoint.
    pub fn wireguard_public_host(&self) -> Option<String> {
        self.server()
            .and_then(|s| s.get_str("WireGuardPublicHost"))
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(str::to_string)
    }

    /// Sets the endpoint host for client configs; an empty one goes back to the default.
    pub fn set_wireguard_public_host(&mut self, host: &str) -> Result<(), ModelError> {
        let host = host.trim();
        let ok = host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_'))
            && host.len() <= 255;
        if !ok {
            return Err(ModelError::BadHostName(host.to_string()));
        }
        self.server_mut().set_str("WireGuardPublicHost", host);
        Ok(())
    }

    /// Registers a client key for a hub and user; both must exist.
    pub fn add_wg_key(&mut self, key: &str, hub: &str, user: &str) -> Result<(), ModelError> {
        self.user(hub, user)?;
        if self.wg_keys().iter().any(|k| k.key == key) {
            return Err(ModelError::WgKeyExists(key.to_string()));
        }
        let f = self
            .root
            .folder_or_create("WireGuardKeyList")
            .folder_or_create(key);
        f.set_str("Hub", hub);
        f.set_str("User", user);
        Ok(())
    }

    /// Records the address a key's client took (a key registered without one keeps the first
    /// source address its client uses).
    pub fn set_wg_key_address(&mut self, key: &str, address: Ipv4Addr) -> Result<(), ModelError> {
        let f = self
            .root
            .folder_mut("WireGuardKeyList")
            .and_then(|l| l.folder_mut(key))
            .ok_or_else(|| ModelError::WgKeyNotFound(key.to_string()))?;
        f.set_str("Address", &address.to_string());
        Ok(())
    }

    pub fn remove_wg_key(&mut self, key: &str) -> Result<WgKey, ModelError> {
        let list = self
            .root
            .folder_mut("WireGuardKeyList")
            .ok_or_else(|| ModelError::WgKeyNotFound(key.to_string()))?;
        let i = list
            .folders
            .iter()
            .position(|f| f.name == key)
            .ok_or_else(|| ModelError::WgKeyNotFound(key.to_string()))?;
        let f = list.folders.remove(i);
        Ok(wg_key_of(&f))
    }

    // ---- hubs ---------------------------------------------------------------------------

    pub fn hub_names(&self) -> Vec<String> {
        self.root
            .folder("VirtualHUB")
            .map(|v| v.folders.iter().map(|f| f.name.clone()).collect())
            .unwrap_or_default()
    }

    fn hub_folder(&self, name: &str) -> Result<&Folder, ModelError> {
        self.root
            .path(&["VirtualHUB", name])
            .ok_or_else(|| ModelError::HubNotFound(name.to_string()))
    }

    fn hub_folder_mut(&mut self, name: &str) -> Result<&mut Folder, ModelError> {
        self.root
            .folder_mut("VirtualHUB")
            .and_then(|v| v.folder_mut(name))
            .ok_or_else(|| ModelError::HubNotFound(name.to_string()))
    }

    pub fn hub(&self, name: &str) -> Result<HubSettings, ModelError> {
        let f = self.hub_folder(name)?;
        let opt = f.folder("Option");
        let sn = f.folder("SecureNAT");
        let host = sn.and_then(|s| s.folder("VirtualHost"));
        let dhcp = sn.and_then(|s| s.folder("VirtualDhcpServer"));
        let router = sn.and_then(|s| s.folder("VirtualRouter"));
        let ip = |a, b, c, d| Ipv4Addr::new(a, b, c, d);
        let securenat = SecureNatSettings {
            enabled: !sn.and_then(|s| s.get_bool("Disabled")).unwrap_or(true),
            save_log: sn.and_then(|s| s.get_bool("SaveLog")).unwrap_or(true),
            host_ip: ip_of(host, "VirtualHostIp", ip(192, 168, 30, 1)),
            host_mask: ip_of(host, "VirtualHostIpSubnetMask", ip(255, 255, 255, 0)),
            host_mac: host
                .and_then(|h| h.get_str("VirtualHostMacAddress"))
                .and_then(parse_mac)
                .unwrap_or([0x5E, 0x5A, 0x1C, 0x33, 0x53, 0x05]),
            nat_enabled: router
                .and_then(|r| r.get_bool("NatEnabled"))
                .unwrap_or(true),
            nat_mtu: router.and_then(|r| r.get_u32("NatMtu")).unwrap_or(1500),
            nat_tcp_timeout: router
                .and_then(|r| r.get_u32("NatTcpTimeout"))
                .unwrap_or(1800),
            nat_udp_timeout: router
                .and_then(|r| r.get_u32("NatUdpTimeout"))
                .unwrap_or(60),
            dhcp_enabled: dhcp.and_then(|d| d.get_bool("DhcpEnabled")).unwrap_or(true),
            dhcp_start: ip_of(dhcp, "DhcpLeaseIPStart", ip(192, 168, 30, 10)),
            dhcp_end: ip_of(dhcp, "DhcpLeaseIPEnd", ip(192, 168, 30, 200)),
            dhcp_mask: ip_of(dhcp, "DhcpSubnetMask", ip(255, 255, 255, 0)),
            dhcp_expire: dhcp
                .and_then(|d| d.get_u32("DhcpExpireTimeSpan"))
                .unwrap_or(7200),
            dhcp_gateway: ip_of(dhcp, "DhcpGatewayAddress", ip(192, 168, 30, 1)),
            dhcp_dns: ip_of(dhcp, "DhcpDnsServerAddress", ip(192, 168, 30, 1)),
            dhcp_dns2: ip_of(dhcp, "DhcpDnsServerAddress2", ip(0, 0, 0, 0)),
            dhcp_domain: dhcp
                .and_then(|d| d.get_str("DhcpDomainName"))
                .unwrap_or_default()
                .to_string(),
            dhcp_push_routes: dhcp
                .and_then(|d| d.get_str("DhcpPushRoutes"))
                .unwrap_or_default()
                .to_string(),
        };
        Ok(HubSettings {
            name: f.name.clone(),
            online: f.get_bool("Online").unwrap_or(true),
            hashed_password: f
                .get_bytes("HashedPassword")
                .map(<[u8]>::to_vec)
                .unwrap_or_else(|| hash::hash_admin_password("").to_vec()),
            default_gateway: ip_of(opt, "DefaultGateway", ip(192, 168, 30, 1)),
            default_subnet: ip_of(opt, "DefaultSubnet", ip(255, 255, 255, 0)),
            max_session: opt.and_then(|o| o.get_u32("MaxSession")).unwrap_or(0),
            created_time: f.get_u64("CreatedTime").unwrap_or(0),
            securenat,
        })
    }

    /// Creates a hub the way SoftEther lays one out (options, SecureNAT disabled, empty user list).
    pub fn create_hub(
        &mut self,
        name: &str,
        password: &str,
        now_ms: u64,
    ) -> Result<(), ModelError> {
        check_name(name)?;
        if self
            .hub_names()
            .iter()
            .any(|h| h.eq_ignore_ascii_case(name))
        {
            return Err(ModelError::HubExists(name.to_string()));
        }
        let hub = self
            .root
            .folder_or_create("VirtualHUB")
            .folder_or_create(name);
        hub.set_u64("CreatedTime", now_ms);
        hub.set_bytes("HashedPassword", &hash::hash_admin_password(password));
        hub.set_bytes("SecurePassword", &hash::hash_hub_secure_password(password));
        hub.set_u64("LastCommTime", now_ms);
        hub.set_u64("LastLoginTime", now_ms);
        hub.set_u32("NumLogin", 0);
        hub.set_bool("Online", true);
        hub.set_u32("Type", 0);
        {
            let o = hub.folder_or_create("Option");
            o.set_str("DefaultGateway", "192.168.30.1");
            o.set_str("DefaultSubnet", "255.255.255.0");
            o.set_u32("MaxSession", 0);
            o.set_bool("NoEnum", false);
        }
        hub.path_or_create(&["SecurityAccountDatabase", "UserList"]);
        hub.folder_or_create("SecureNAT").set_bool("Disabled", true);
        let defaults = SecureNatSettings {
            enabled: false,
            ..self.hub(name)?.securenat
        };
        self.set_securenat(name, &defaults)
    }

    pub fn delete_hub(&mut self, name: &str) -> Result<(), ModelError> {
        let removed = self
            .root
            .folder_mut("VirtualHUB")
            .and_then(|v| v.remove_folder(name));
        if removed.is_none() {
            return Err(ModelError::HubNotFound(name.to_string()));
        }
        // a key for a hub that is gone would point nowhere
        if let Some(list) = self.root.folder_mut("WireGuardKeyList") {
            list.folders.retain(|f| {
                !f.get_str("Hub")
                    .is_some_and(|h| h.eq_ignore_ascii_case(name))
            });
        }
        Ok(())
    }

    pub fn set_hub_online(&mut self, name: &str, online: bool) -> Result<(), ModelError> {
        self.hub_folder_mut(name)?.set_bool("Online", online);
        Ok(())
    }

    pub fn set_hub_password(&mut self, name: &str, password: &str) -> Result<(), ModelError> {
        self.set_hub_password_hashes(
            name,
            &hash::hash_admin_password(password),
            &hash::hash_hub_secure_password(password),
        )
    }

    /// Sets a hub's admin password from its two hashes (`HashedPassword`, `SecurePassword`),
    /// as vpncmd sends them.
    pub fn set_hub_password_hashes(
        &mut self,
        name: &str,
        hashed: &[u8; 20],
        secure: &[u8; 20],
    ) -> Result<(), ModelError> {
        let h = self.hub_folder_mut(name)?;
        h.set_bytes("HashedPassword", hashed);
        h.set_bytes("SecurePassword", secure);
        Ok(())
    }

    pub fn check_hub_password(&self, name: &str, password: &str) -> Result<bool, ModelError> {
        let h = self.hub(name)?;
        Ok(hash::digest_eq(
            &h.hashed_password,
            &hash::hash_admin_password(password),
        ))
    }

    /// SetStaticNetwork: the hub's default gateway and subnet for WireGuard peers.
    pub fn set_static_network(
        &mut self,
        hub: &str,
        gateway: Ipv4Addr,
        subnet: Ipv4Addr,
    ) -> Result<(), ModelError> {
        let o = self.hub_folder_mut(hub)?.folder_or_create("Option");
        o.set_str("DefaultGateway", &gateway.to_string());
        o.set_str("DefaultSubnet", &subnet.to_string());
        Ok(())
    }

    pub fn set_securenat(&mut self, hub: &str, s: &SecureNatSettings) -> Result<(), ModelError> {
        let f = self.hub_folder_mut(hub)?.folder_or_create("SecureNAT");
        f.set_bool("Disabled", !s.enabled);
        f.set_bool("SaveLog", s.save_log);
        let d = f.folder_or_create("VirtualDhcpServer");
        d.set_str("DhcpDnsServerAddress", &s.dhcp_dns.to_string());
        d.set_str("DhcpDnsServerAddress2", &s.dhcp_dns2.to_string());
        d.set_str("DhcpDomainName", &s.dhcp_domain);
        d.set_bool("DhcpEnabled", s.dhcp_enabled);
        d.set_u32("DhcpExpireTimeSpan", s.dhcp_expire);
        d.set_str("DhcpGatewayAddress", &s.dhcp_gateway.to_string());
        d.set_str("DhcpLeaseIPEnd", &s.dhcp_end.to_string());
        d.set_str("DhcpLeaseIPStart", &s.dhcp_start.to_string());
        d.set_str("DhcpPushRoutes", &s.dhcp_push_routes);
        d.set_str("DhcpSubnetMask", &s.dhcp_mask.to_string());
        let h = f.folder_or_create("VirtualHost");
        h.set_str("VirtualHostIp", &s.host_ip.to_string());
        h.set_str("VirtualHostIpSubnetMask", &s.host_mask.to_string());
        h.set_str("VirtualHostMacAddress", &format_mac(&s.host_mac));
        let r = f.folder_or_create("VirtualRouter");
        r.set_bool("NatEnabled", s.nat_enabled);
        r.set_u32("NatMtu", s.nat_mtu);
        r.set_u32("NatTcpTimeout", s.nat_tcp_timeout);
        r.set_u32("NatUdpTimeout", s.nat_udp_timeout);
        Ok(())
    }

    // ---- users --------------------------------------------------------------------------

    fn user_list(&self, hub: &str) -> Result<Option<&Folder>, ModelError> {
        Ok(self
            .hub_folder(hub)?
            .path(&["SecurityAccountDatabase", "UserList"]))
    }

    pub fn users(&self, hub: &str) -> Result<Vec<UserSettings>, ModelError> {
        let Some(list) = self.user_list(hub)? else {
            return Ok(Vec::new());
        };
        Ok(list.folders.iter().map(user_of).collect())
    }

    pub fn user(&self, hub: &str, name: &str) -> Result<UserSettings, ModelError> {
        self.user_list(hub)?
            .and_then(|l| l.folder(name))
            .map(user_of)
            .ok_or_else(|| ModelError::UserNotFound {
                hub: hub.to_string(),
                user: name.to_string(),
            })
    }

    /// UserCreate: a user with password authentication (an empty password until one is set).
    pub fn create_user(
        &mut self,
        hub: &str,
        name: &str,
        realname: &str,
        note: &str,
        now_ms: u64,
    ) -> Result<(), ModelError> {
        check_name(name)?;
        if self.user(hub, name).is_ok() {
            return Err(ModelError::UserExists {
                hub: hub.to_string(),
                user: name.to_string(),
            });
        }
        let u = self
            .hub_folder_mut(hub)?
            .path_or_create(&["SecurityAccountDatabase", "UserList"])
            .folder_or_create(name);
        u.set_bytes("AuthPassword", &hash::hash_user_password(name, ""));
        u.set_u32("AuthType", 1);
        u.set_u64("CreatedTime", time_to_file(now_ms));
        u.set_u64("ExpireTime", 0);
        u.set_u64("LastLoginTime", 0);
        u.set_str("Note", note);
        u.set_u32("NumLogin", 0);
        u.set_str("RealName", realname);
        u.set_u64("UpdatedTime", time_to_file(now_ms));
        Ok(())
    }

    /// Makes the user anonymous (vpncmd's UserAnonymousSet): no password; anyone naming it
    /// logs in.
    pub fn set_user_anonymous(
        &mut self,
        hub: &str,
        name: &str,
        now_ms: u64,
    ) -> Result<(), ModelError> {
        let u = self.user_folder_mut(hub, name)?;
        u.remove("AuthPassword");
        u.remove("AuthNtLmSecureHash");
        u.set_u32("AuthType", 0);
        u.set_u64("UpdatedTime", time_to_file(now_ms));
        Ok(())
    }

    /// Puts the user in `group` ("" takes it out of its group).
    pub fn set_user_group(&mut self, hub: &str, name: &str, group: &str) -> Result<(), ModelError> {
        let group = if group.is_empty() {
            String::new()
        } else {
            self.group(hub, group)?.name
        };
        let u = self.user_folder_mut(hub, name)?;
        if group.is_empty() {
            u.remove("GroupName");
        } else {
            u.set_str("GroupName", &group);
        }
        Ok(())
    }

    /// Sets (Some) or removes (None) the user's own policy.
    pub fn set_user_policy(
        &mut self,
        hub: &str,
        name: &str,
        policy: Option<&Policy>,
    ) -> Result<(), ModelError> {
        set_policy(self.user_folder_mut(hub, name)?, policy);
        Ok(())
    }

    /// When the user expires (Unix milliseconds; 0 never).
    pub fn set_user_expires(
        &mut self,
        hub: &str,
        name: &str,
        unix_ms: u64,
    ) -> Result<(), ModelError> {
        self.user_folder_mut(hub, name)?
            .set_u64("ExpireTime", time_to_file(unix_ms));
        Ok(())
    }

    fn group_list(&self, hub: &str) -> Result<Option<&Folder>, ModelError> {
        Ok(self
            .hub_folder(hub)?
            .path(&["SecurityAccountDatabase", "GroupList"]))
    }

    pub fn groups(&self, hub: &str) -> Result<Vec<GroupSettings>, ModelError> {
        let Some(list) = self.group_list(hub)? else {
            return Ok(Vec::new());
        };
        Ok(list.folders.iter().map(group_of).collect())
    }

    pub fn group(&self, hub: &str, name: &str) -> Result<GroupSettings, ModelError> {
        self.group_list(hub)?
            .and_then(|l| l.folder(name))
            .map(group_of)
            .ok_or_else(|| ModelError::GroupNotFound {
                hub: hub.to_string(),
                group: name.to_string(),
            })
    }

    /// Creates (`create`) or changes a group's names and policy.
    pub fn put_group(
        &mut self,
        hub: &str,
        g: &GroupSettings,
        create: bool,
    ) -> Result<(), ModelError> {
        check_name(&g.name)?;
        let exists = self.group(hub, &g.name).is_ok();
        if create && exists {
            return Err(ModelError::GroupExists {
                hub: hub.to_string(),
                group: g.name.clone(),
            });
        }
        if !create && !exists {
            return Err(ModelError::GroupNotFound {
                hub: hub.to_string(),
                group: g.name.clone(),
            });
        }
        let f = self
            .hub_folder_mut(hub)?
            .path_or_create(&["SecurityAccountDatabase", "GroupList"])
            .folder_or_create(&g.name);
        f.set_str("Note", &g.note);
        f.set_str("RealName", &g.realname);
        set_policy(f, g.policy.as_ref());
        Ok(())
    }

    /// Deletes a group; its members leave it (as SoftEther's DeleteGroup does).
    pub fn delete_group(&mut self, hub: &str, name: &str) -> Result<(), ModelError> {
        let real = self.group(hub, name)?.name;
        let db = self
            .hub_folder_mut(hub)?
            .path_or_create(&["SecurityAccountDatabase"]);
        if let Some(list) = db.folder_mut("GroupList") {
            list.remove_folder(&real);
        }
        if let Some(users) = db.folder_mut("UserList") {
            for u in users.folders.iter_mut() {
                if u.get_str("GroupName")
                    .is_some_and(|g| g.eq_ignore_ascii_case(&real))
                {
                    u.remove("GroupName");
                }
            }
        }
        Ok(())
    }

    /// The hub's access list, in SoftEther's order.
    pub fn access_list(&self, hub: &str) -> Result<Vec<AccessRule>, ModelError> {
        let Some(list) = self.hub_folder(hub)?.folder("AccessList") else {
            return Ok(Vec::new());
        };
        // folders keep their names' text order ("10" before "2"); the numbers are the order
        let mut folders: Vec<&Folder> = list.folders.iter().collect();
        folders.sort_by_key(|f| f.name.parse::<u64>().unwrap_or(u64::MAX));
        let mut rules: Vec<AccessRule> = folders.into_iter().map(AccessRule::from_folder).collect();
        access::sort(&mut rules);
        Ok(rules)
    }

    /// Replaces the hub's access list (sorted, numbered 1..N as SoftEther writes it).
    pub fn set_access_list(&mut self, hub: &str, rules: &[AccessRule]) -> Result<(), ModelError> {
        let mut rules = rules.to_vec();
        access::sort(&mut rules);
        let h = self.hub_folder_mut(hub)?;
        h.remove_folder("AccessList");
        let list = h.folder_or_create("AccessList");
        for (i, r) in rules.iter().enumerate() {
            r.write(list.folder_or_create(&(i + 1).to_string()));
        }
        Ok(())
    }

    /// The policy that applies to a user: its own, else its group's, else SoftEther's default
    /// (whole policies, never merged).
    pub fn effective_policy(&self, hub: &str, user: &UserSettings) -> Policy {
        user.policy
            .or_else(|| {
                (!user.group.is_empty())
                    .then(|| self.group(hub, &user.group).ok().and_then(|g| g.policy))
                    .flatten()
            })
            .unwrap_or_default()
    }

    fn user_folder_mut(&mut self, hub: &str, name: &str) -> Result<&mut Folder, ModelError> {
        let not_found = || ModelError::UserNotFound {
            hub: hub.to_string(),
            user: name.to_string(),
        };
        self.hub_folder_mut(hub)?
            .folder_mut("SecurityAccountDatabase")
            .and_then(|d| d.folder_mut("UserList"))
            .and_then(|l| l.folder_mut(name))
            .ok_or_else(not_found)
    }

    pub fn set_user_password(
        &mut self,
        hub: &str,
        name: &str,
        password: &str,
        now_ms: u64,
    ) -> Result<(), ModelError> {
        let real_name = self.user_folder_mut(hub, name)?.name.clone();
        let hashed = hash::hash_user_password(&real_name, password);
        let nt = hash::nt_hash(password);
        self.set_user_password_hashes(hub, name, &hashed, Some(&nt), now_ms)
    }

    /// Sets password authentication from the hashes SoftEther's tools send: `AuthPassword`
    /// (SHA-0 of the password and the upper-case user name) and, when given, the NT hash
    /// MS-CHAPv2 needs (`AuthNtLmSecureHash`); without one, a stale NT hash is removed.
    pub fn set_user_password_hashes(
        &mut self,
        hub: &str,
        name: &str,
        auth_password: &[u8; 20],
        nt_hash: Option<&[u8; 16]>,
        now_ms: u64,
    ) -> Result<(), ModelError> {
        let u = self.user_folder_mut(hub, name)?;
        u.set_bytes("AuthPassword", auth_password);
        match nt_hash {
            Some(h) => u.set_bytes("AuthNtLmSecureHash", h),
            None => {
                u.remove("AuthNtLmSecureHash");
            }
        }
        u.set_u32("AuthType", 1);
        u.set_u64("UpdatedTime", now_ms);
        Ok(())
    }

    pub fn set_user_info(
        &mut self,
        hub: &str,
        name: &str,
        realname: &str,
        note: &str,
    ) -> Result<(), ModelError> {
        let u = self.user_folder_mut(hub, name)?;
        u.set_str("RealName", realname);
        u.set_str("Note", note);
        Ok(())
    }

    pub fn delete_user(&mut self, hub: &str, name: &str) -> Result<(), ModelError> {
        self.user_folder_mut(hub, name)?;
        let list = self
            .hub_folder_mut(hub)?
            .path_or_create(&["SecurityAccountDatabase", "UserList"]);
        list.remove_folder(name);
        Ok(())
    }
}

fn user_of(f: &Folder) -> UserSettings {
    UserSettings {
        name: f.name.clone(),
        realname: f.get_str("RealName").unwrap_or_default().to_string(),
        note: f.get_str("Note").unwrap_or_default().to_string(),
        auth_type: f.get_u32("AuthType").unwrap_or(0),
        auth_password: f.get_bytes("AuthPassword").unwrap_or_default().to_vec(),
        nt_hash: f
            .get_bytes("AuthNtLmSecureHash")
            .unwrap_or_default()
            .to_vec(),
        created_time: time_from_file(f.get_u64("CreatedTime").unwrap_or(0)),
        updated_time: time_from_file(f.get_u64("UpdatedTime").unwrap_or(0)),
        expire_time: time_from_file(f.get_u64("ExpireTime").unwrap_or(0)),
        group: f.get_str("GroupName").unwrap_or_default().to_string(),
        policy: f.folder("Policy").map(Policy::from_folder),
    }
}

fn group_of(f: &Folder) -> GroupSettings {
    GroupSettings {
        name: f.name.clone(),
        realname: f.get_str("RealName").unwrap_or_default().to_string(),
        note: f.get_str("Note").unwrap_or_default().to_string(),
        policy: f.folder("Policy").map(Policy::from_folder),
    }
}

fn set_policy(f: &mut Folder, policy: Option<&Policy>) {
    match policy {
        Some(p) => p.write(f.folder_or_create("Policy")),
        None => {
            f.remove_folder("Policy");
        }
    }
}
