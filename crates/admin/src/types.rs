//! Plain domain types the [`crate::Backend`] trait speaks. No JSON here: `dispatch` maps these
//! to and from SoftEther's field names.
//!
//! Times are milliseconds since the Unix epoch in UTC, `0` meaning "never/none" (SoftEther's
//! convention for its 64-bit system times).

use std::net::{IpAddr, Ipv4Addr};

/// Who an authenticated admin connection acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminScope {
    /// Administrator of the whole server.
    Server,
    /// Administrator of one Virtual Hub (the name as stored by the server).
    Hub(String),
}

/// Packet and byte counters, as SoftEther's `TRAFFIC` (send = from the hub to the client).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    pub send_unicast_count: u64,
    pub send_unicast_bytes: u64,
    pub send_broadcast_count: u64,
    pub send_broadcast_bytes: u64,
    pub recv_unicast_count: u64,
    pub recv_unicast_bytes: u64,
    pub recv_broadcast_count: u64,
    pub recv_broadcast_bytes: u64,
}

impl Traffic {
    /// Sum of all byte counters (vpncmd's "Transfer Bytes").
    pub fn total_bytes(&self) -> u64 {
        self.send_unicast_bytes
            .saturating_add(self.send_broadcast_bytes)
            .saturating_add(self.recv_unicast_bytes)
            .saturating_add(self.recv_broadcast_bytes)
    }

    /// Sum of all packet counters (vpncmd's "Transfer Packets").
    pub fn total_packets(&self) -> u64 {
        self.send_unicast_count
            .saturating_add(self.send_broadcast_count)
            .saturating_add(self.recv_unicast_count)
            .saturating_add(self.recv_broadcast_count)
    }
}

/// `GetServerInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerInfo {
    pub product_name: String,
    pub version_string: String,
    pub build_info: String,
    pub version_int: u32,
    pub build_int: u32,
    pub host_name: String,
    /// 0 = standalone (Etherhub is always standalone).
    pub server_type: u32,
    pub build_date_ms: u64,
    pub family_name: String,
    pub os_type: u32,
    pub os_system_name: String,
    pub os_product_name: String,
    pub os_vendor_name: String,
    pub os_version: String,
    pub kernel_name: String,
    pub kernel_version: String,
}

/// `GetServerStatus`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerStatus {
    pub server_type: u32,
    pub num_tcp_connections: u32,
    pub num_hubs: u32,
    pub num_sessions: u32,
    pub num_mac_tables: u32,
    pub num_ip_tables: u32,
    pub num_users: u32,
    pub num_groups: u32,
    pub assigned_client_licenses: u32,
    pub assigned_bridge_licenses: u32,
    pub traffic: Traffic,
    pub current_time_ms: u64,
    /// Monotonic milliseconds (SoftEther's "64 bit High-Precision Logical System Clock").
    pub current_tick: u64,
    pub start_time_ms: u64,
    pub total_memory: u64,
    pub used_memory: u64,
    pub free_memory: u64,
    /// Etherhub's health of the data plane: when a packet last crossed a hub (0: never)...
    pub data_plane_last_packet_ms: u64,
    /// ...panics on the packet path contained since the start...
    pub data_plane_faults: u64,
    /// ...and the last one (session, hub, what it was doing, message), empty if none.
    pub data_plane_last_fault: String,
}

/// Hub settings as `CreateHub`/`SetHub`/`GetHub` carry them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubConfig {
    pub name: String,
    pub online: bool,
    /// 0 = unlimited.
    pub max_session: u32,
    /// Hide the hub from anonymous enumeration.
    pub no_enum: bool,
    /// 0 = standalone, 1 = static, 2 = dynamic.
    pub hub_type: u32,
    /// New hub admin password; `None` or empty leaves it unchanged (and means "no hub admin
    /// login" on create). Never returned by `get_hub`.
    pub admin_password: Option<String>,
    /// Static network for L3 sessions (WireGuard): gateway, `0.0.0.0` when unset.
    pub default_gateway: Ipv4Addr,
    /// Static network subnet mask, `0.0.0.0` when unset.
    pub default_subnet: Ipv4Addr,
}

impl HubConfig {
    /// An online standalone hub with nothing else set.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            online: true,
            max_session: 0,
            no_enum: false,
            hub_type: 0,
            admin_password: None,
            default_gateway: Ipv4Addr::UNSPECIFIED,
            default_subnet: Ipv4Addr::UNSPECIFIED,
        }
    }
}

/// One row of `EnumHub`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HubSummary {
    pub name: String,
    pub online: bool,
    pub hub_type: u32,
    pub num_users: u32,
    pub num_groups: u32,
    pub num_sessions: u32,
    pub num_mac_tables: u32,
    pub num_ip_tables: u32,
    pub last_comm_time_ms: u64,
    pub last_login_time_ms: u64,
    pub created_time_ms: u64,
    pub num_login: u32,
    pub traffic: Traffic,
}

/// How a user authenticates. Only the methods Etherhub implements are listed; SoftEther's
/// numeric `AuthType_u32` values are given by [`UserAuth::auth_type`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserAuth {
    /// Type 0.
    Anonymous,
    /// Type 1 with the plain text password (only on the way in; never returned).
    Password(String),
}

impl UserAuth {
    /// SoftEther's `AuthType` number.
    pub fn auth_type(&self) -> u32 {
        match self {
            UserAuth::Anonymous => 0,
            UserAuth::Password(_) => 1,
        }
    }
}

/// `CreateUser`/`SetUser` input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpec {
    pub hub: String,
    pub name: String,
    pub group_name: String,
    pub real_name: String,
    pub note: String,
    /// 0 = never expires.
    pub expire_time_ms: u64,
    pub auth: UserAuth,
}

/// `GetUser` output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInfo {
    pub hub: String,
    pub name: String,
    pub group_name: String,
    pub real_name: String,
    pub note: String,
    pub created_time_ms: u64,
    pub updated_time_ms: u64,
    pub expire_time_ms: u64,
    pub auth_type: u32,
    pub num_login: u32,
    pub traffic: Traffic,
}

/// One row of `EnumUser`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserSummary {
    pub name: String,
    pub group_name: String,
    pub real_name: String,
    pub note: String,
    pub auth_type: u32,
    pub num_login: u32,
    pub last_login_time_ms: u64,
    pub deny_access: bool,
    pub expire_time_ms: u64,
    pub traffic: Traffic,
}

/// What kind of session a row is (vpncmd shows them differently).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SessionKind {
    /// A VPN client (including WireGuard peers).
    #[default]
    Normal,
    /// The SecureNAT virtual host.
    SecureNat,
    /// A local bridge.
    Bridge,
    /// A cascade link.
    Link,
    /// A virtual layer 3 switch.
    Layer3,
}

/// One row of `EnumSession`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    pub name: String,
    pub username: String,
    pub client_ip: IpAddr,
    pub hostname: String,
    pub kind: SessionKind,
    pub max_num_tcp: u32,
    pub current_num_tcp: u32,
    pub packet_size: u64,
    pub packet_num: u64,
    pub vlan_id: u32,
    pub unique_id: Vec<u8>,
    pub created_time_ms: u64,
    pub last_comm_time_ms: u64,
}

/// `GetSessionStatus` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStatus {
    pub hub: String,
    pub name: String,
    pub username: String,
    pub real_username: String,
    pub group_name: String,
    pub client_ip: IpAddr,
    pub client_hostname: String,
    pub active: bool,
    pub connected: bool,
    pub start_time_ms: u64,
    pub first_connection_time_ms: u64,
    pub current_connection_time_ms: u64,
    pub num_connections_established: u32,
    pub max_tcp_connections: u32,
    pub num_tcp_connections: u32,
    pub use_encrypt: bool,
    pub cipher_name: String,
    pub use_compress: bool,
    /// e.g. `Legacy VPN - WIREGUARD`.
    pub underlay_protocol: String,
    pub total_send_size: u64,
    pub total_recv_size: u64,
    pub traffic: Traffic,
    pub client_product_name: String,
    pub client_os_name: String,
    pub unique_id: Vec<u8>,
}

/// One MAC address table entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacEntry {
    pub key: u32,
    pub session_name: String,
    pub mac: [u8; 6],
    pub vlan_id: u32,
    pub created_time_ms: u64,
    pub updated_time_ms: u64,
}

/// One IP address table entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpEntry {
    pub key: u32,
    pub session_name: String,
    pub ip: IpAddr,
    pub dhcp_allocated: bool,
    pub created_time_ms: u64,
    pub updated_time_ms: u64,
}

/// One NAT flow (EnumNAT's `NatTable` row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatTableEntry {
    pub id: u32,
    /// 0 TCP, 1 UDP, 2 DNS, 3 ICMP (SoftEther's NAT_TCP ... NAT_ICMP)
    pub protocol: u32,
    pub src_ip: Ipv4Addr,
    pub src_port: u16,
    pub dest_ip: Ipv4Addr,
    pub dest_port: u16,
    pub created_time_ms: u64,
    pub last_comm_time_ms: u64,
    pub send_size: u64,
    pub recv_size: u64,
    /// 0 connecting, 2 connected, 3 established, 4 waiting to disconnect
    pub tcp_status: u32,
}

/// One DHCP lease (EnumDHCP's `DhcpTable` row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpLeaseEntry {
    pub id: u32,
    pub leased_time_ms: u64,
    pub expire_time_ms: u64,
    pub mac: [u8; 6],
    pub ip: Ipv4Addr,
    pub mask: Ipv4Addr,
    pub hostname: String,
}

/// SecureNAT settings (SoftEther's `VH_OPTION`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecureNatOption {
    pub mac: [u8; 6],
    pub ip: Ipv4Addr,
    pub mask: Ipv4Addr,
    pub use_nat: bool,
    pub mtu: u32,
    pub nat_tcp_timeout: u32,
    pub nat_udp_timeout: u32,
    pub use_dhcp: bool,
    pub dhcp_lease_start: Ipv4Addr,
    pub dhcp_lease_end: Ipv4Addr,
    pub dhcp_subnet_mask: Ipv4Addr,
    pub dhcp_expire_secs: u32,
    pub dhcp_gateway: Ipv4Addr,
    pub dhcp_dns: Ipv4Addr,
    pub dhcp_dns2: Ipv4Addr,
    pub dhcp_domain_name: String,
    pub save_log: bool,
    pub apply_dhcp_push_routes: bool,
    pub dhcp_push_routes: String,
}

impl Default for SecureNatOption {
    /// SoftEther's defaults for a new hub (192.168.30.0/24).
    fn default() -> Self {
        Self {
            mac: [0; 6],
            ip: Ipv4Addr::new(192, 168, 30, 1),
            mask: Ipv4Addr::new(255, 255, 255, 0),
            use_nat: true,
            mtu: 1500,
            nat_tcp_timeout: 1800,
            nat_udp_timeout: 60,
            use_dhcp: true,
            dhcp_lease_start: Ipv4Addr::new(192, 168, 30, 10),
            dhcp_lease_end: Ipv4Addr::new(192, 168, 30, 200),
            dhcp_subnet_mask: Ipv4Addr::new(255, 255, 255, 0),
            dhcp_expire_secs: 7200,
            dhcp_gateway: Ipv4Addr::new(192, 168, 30, 1),
            dhcp_dns: Ipv4Addr::new(192, 168, 30, 1),
            dhcp_dns2: Ipv4Addr::UNSPECIFIED,
            dhcp_domain_name: String::new(),
            save_log: true,
            apply_dhcp_push_routes: false,
            dhcp_push_routes: String::new(),
        }
    }
}

/// `GetSecureNATStatus`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SecureNatStatus {
    pub num_tcp_sessions: u32,
    pub num_udp_sessions: u32,
    pub num_icmp_sessions: u32,
    pub num_dns_sessions: u32,
    pub num_dhcp_clients: u32,
    pub is_kernel_mode: bool,
    pub is_raw_ip_mode: bool,
}

/// One entry of the WireGuard key list: a peer's public key and who it logs in as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WgKey {
    /// Base64 Curve25519 public key of the peer.
    pub key: String,
    pub hub: String,
    pub user: String,
}

/// Etherhub's `AddWgk` entry: a key to register, or an empty `key` for a key pair the server
/// generates; the address to give the peer, or `None` for the next free one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WgKeyRequest {
    pub key: String,
    pub hub: String,
    pub user: String,
    pub address: Option<Ipv4Addr>,
}

/// A key `AddWgk` registered: its public key, the peer's address and the client's wg-quick
/// config (with the private key only when the server generated the pair; it is not kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WgKeyAdded {
    pub key: String,
    pub hub: String,
    pub user: String,
    pub address: Option<Ipv4Addr>,
    pub config: String,
}

/// One key of `EnumWgk` with Etherhub's extra columns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WgKeyStatus {
    pub key: String,
    pub hub: String,
    pub user: String,
    pub address: Option<Ipv4Addr>,
    /// The key has its own preshared key.
    pub own_psk: bool,
    /// The hub session of its live peer, if it has one.
    pub session: Option<String>,
    /// Unix ms of the live peer's last handshake (0: none).
    pub last_handshake_ms: u64,
    /// Bytes of inner packets from the client / to the client.
    pub recv_bytes: u64,
    pub send_bytes: u64,
    /// Packets dropped because their source was not `address`.
    pub spoofed_dropped: u64,
}

/// One TCP listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerInfo {
    pub port: u16,
    pub enabled: bool,
    /// The listener is enabled but could not bind.
    pub error: bool,
}

/// The whole configuration file, as `GetConfig` returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    pub file_name: String,
    pub data: Vec<u8>,
}

/// Etherhub's own `GetWgServerInfo`: what a WireGuard client needs to know about the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WgServerInfo {
    pub enabled: bool,
    /// Base64 public key of the server.
    pub public_key: String,
    /// Base64 preshared key shared by all peers (empty if none).
    pub preshared_key: String,
    pub udp_ports: Vec<u16>,
    /// Server-wide WireGuard counters since the start.
    pub counters: WgCounters,
}

/// WireGuard's server-wide counters (`GetWgServerInfo`): handshakes and what was dropped, so an
/// admin can see a flood being answered with cookies and garbage being counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WgCounters {
    pub handshakes_ok: u64,
    /// Handshakes answered with a cookie reply because they came faster than the rate limit.
    pub cookie_replies_sent: u64,
    /// Handshakes with a valid cookie dropped under load by the per-source limit.
    pub handshakes_rate_limited: u64,
    /// Initiations from keys nobody registered (not answered).
    pub unknown_key_initiations: u64,
    pub malformed_dropped: u64,
    pub unknown_index_dropped: u64,
    /// Packets whose source address was not the peer's registered address.
    pub spoofed_dropped: u64,
    /// Datagrams no protocol on the UDP ports recognised.
    pub unknown_datagrams: u64,
    /// Datagrams the kernel would not take (socket buffer full).
    pub send_failures: u64,
}
