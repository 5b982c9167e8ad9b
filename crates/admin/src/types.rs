//! The admin messages, typed once: SoftEther's RPC structures with their JSON-RPC field names
//! (the suffix is the field's PACK type). The server's dispatch, the CLI and (next) the binary
//! PACK RPC all read and write these.
//!
//! Every message reads with defaults for what is missing, as SoftEther's server does. Times are
//! Unix milliseconds ([`Dt`], 0: none).

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::wire::one_or_many;
pub use crate::wire::{Bin, Dt, Ip, IpU32, PolicyFields, Traffic, TrafficFields};

/// Who an authenticated admin connection acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminScope {
    /// Administrator of the whole server.
    Server,
    /// Administrator of one Virtual Hub (the name as stored by the server).
    Hub(String),
}

/// A message with no fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// `Test`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TestValues {
    #[serde(rename = "IntValue_u32")]
    pub int_value: u32,
    #[serde(rename = "Int64Value_u64")]
    pub int64_value: u64,
    #[serde(rename = "StrValue_str")]
    pub str_value: String,
    #[serde(rename = "UniStrValue_utf")]
    pub unistr_value: String,
}

/// `GetServerInfo`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerInfo {
    #[serde(rename = "ServerProductName_str")]
    pub product_name: String,
    #[serde(rename = "ServerVersionString_str")]
    pub version_string: String,
    #[serde(rename = "ServerBuildInfoString_str")]
    pub build_info: String,
    #[serde(rename = "ServerVerInt_u32")]
    pub version_int: u32,
    #[serde(rename = "ServerBuildInt_u32")]
    pub build_int: u32,
    #[serde(rename = "ServerHostName_str")]
    pub host_name: String,
    /// 0 = standalone (Etherhub is always standalone).
    #[serde(rename = "ServerType_u32")]
    pub server_type: u32,
    #[serde(rename = "ServerBuildDate_dt")]
    pub build_date: Dt,
    #[serde(rename = "ServerFamilyName_str")]
    pub family_name: String,
    #[serde(rename = "OsType_u32")]
    pub os_type: u32,
    #[serde(rename = "OsServicePack_u32")]
    pub os_service_pack: u32,
    #[serde(rename = "OsSystemName_str")]
    pub os_system_name: String,
    #[serde(rename = "OsProductName_str")]
    pub os_product_name: String,
    #[serde(rename = "OsVendorName_str")]
    pub os_vendor_name: String,
    #[serde(rename = "OsVersion_str")]
    pub os_version: String,
    #[serde(rename = "KernelName_str")]
    pub kernel_name: String,
    #[serde(rename = "KernelVersion_str")]
    pub kernel_version: String,
}

/// `GetServerStatus`, with Etherhub's data plane health at the end.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerStatus {
    #[serde(rename = "ServerType_u32")]
    pub server_type: u32,
    #[serde(rename = "NumTcpConnections_u32")]
    pub num_tcp_connections: u32,
    #[serde(rename = "NumTcpConnectionsLocal_u32")]
    pub num_tcp_connections_local: u32,
    #[serde(rename = "NumTcpConnectionsRemote_u32")]
    pub num_tcp_connections_remote: u32,
    #[serde(rename = "NumHubTotal_u32")]
    pub num_hubs: u32,
    #[serde(rename = "NumHubStandalone_u32")]
    pub num_hubs_standalone: u32,
    #[serde(rename = "NumHubStatic_u32")]
    pub num_hubs_static: u32,
    #[serde(rename = "NumHubDynamic_u32")]
    pub num_hubs_dynamic: u32,
    #[serde(rename = "NumSessionsTotal_u32")]
    pub num_sessions: u32,
    #[serde(rename = "NumSessionsLocal_u32")]
    pub num_sessions_local: u32,
    #[serde(rename = "NumSessionsRemote_u32")]
    pub num_sessions_remote: u32,
    #[serde(rename = "NumMacTables_u32")]
    pub num_mac_tables: u32,
    #[serde(rename = "NumIpTables_u32")]
    pub num_ip_tables: u32,
    #[serde(rename = "NumUsers_u32")]
    pub num_users: u32,
    #[serde(rename = "NumGroups_u32")]
    pub num_groups: u32,
    #[serde(rename = "AssignedBridgeLicenses_u32")]
    pub assigned_bridge_licenses: u32,
    #[serde(rename = "AssignedClientLicenses_u32")]
    pub assigned_client_licenses: u32,
    #[serde(rename = "AssignedBridgeLicensesTotal_u32")]
    pub assigned_bridge_licenses_total: u32,
    #[serde(rename = "AssignedClientLicensesTotal_u32")]
    pub assigned_client_licenses_total: u32,
    #[serde(flatten)]
    pub traffic: TrafficFields<false>,
    #[serde(rename = "CurrentTime_dt")]
    pub current_time: Dt,
    /// Monotonic milliseconds (SoftEther's "64 bit High-Precision Logical System Clock").
    #[serde(rename = "CurrentTick_u64")]
    pub current_tick: u64,
    #[serde(rename = "StartTime_dt")]
    pub start_time: Dt,
    #[serde(rename = "TotalMemory_u64")]
    pub total_memory: u64,
    #[serde(rename = "UsedMemory_u64")]
    pub used_memory: u64,
    #[serde(rename = "FreeMemory_u64")]
    pub free_memory: u64,
    #[serde(rename = "TotalPhys_u64")]
    pub total_phys: u64,
    #[serde(rename = "UsedPhys_u64")]
    pub used_phys: u64,
    #[serde(rename = "FreePhys_u64")]
    pub free_phys: u64,
    /// Etherhub: when a packet last crossed a hub (none: never).
    #[serde(rename = "DataPlaneLastPacket_dt")]
    pub data_plane_last_packet: Dt,
    /// Etherhub: panics on the packet path contained since the start.
    #[serde(rename = "DataPlaneFaults_u64")]
    pub data_plane_faults: u64,
    /// Etherhub: the last contained fault (session, hub, what it was doing, message).
    #[serde(rename = "DataPlaneLastFault_str")]
    pub data_plane_last_fault: String,
    /// Etherhub: SoftEther VPN sessions logged in, and logins refused.
    #[serde(rename = "SoftEtherLogins_u64")]
    pub softether_logins: u64,
    #[serde(rename = "SoftEtherLoginsRefused_u64")]
    pub softether_logins_refused: u64,
    /// Etherhub: blocks dropped (a frame over 1600 bytes, a block that did not inflate).
    #[serde(rename = "SoftEtherBlocksDropped_u64")]
    pub softether_blocks_dropped: u64,
    /// Etherhub: connections ended for breaking SoftEther's framing.
    #[serde(rename = "SoftEtherStreamsBroken_u64")]
    pub softether_streams_broken: u64,
    /// Etherhub: session keys presented from another address than their session's login.
    #[serde(rename = "SoftEtherForeignJoins_u64")]
    pub softether_foreign_joins: u64,
    /// Etherhub: writes to a stream connection dropped because its client read too slowly.
    #[serde(rename = "StreamWritesDropped_u64")]
    pub stream_writes_dropped: u64,
}

/// A Virtual Hub's settings: `CreateHub`, `SetHub`, `GetHub`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Hub {
    #[serde(rename = "HubName_str")]
    pub name: String,
    /// A new hub admin password; empty leaves it unchanged (and means "no hub admin login" on
    /// create). Never sent back.
    #[serde(rename = "AdminPasswordPlainText_str")]
    pub admin_password: String,
    /// The new hub admin password as vpncmd sends it, SHA-0 of the password (used when
    /// `admin_password` is empty and this is not all zero). Never sent back.
    #[serde(rename = "HashedPassword_bin", skip_serializing_if = "Bin::is_empty")]
    pub hashed_password: Bin,
    /// SHA-0 of the password and `ADMINISTRATOR`, beside `hashed_password`.
    #[serde(rename = "SecurePassword_bin", skip_serializing_if = "Bin::is_empty")]
    pub secure_password: Bin,
    #[serde(rename = "Online_bool")]
    pub online: bool,
    /// 0 = unlimited.
    #[serde(rename = "MaxSession_u32")]
    pub max_session: u32,
    /// Hide the hub from anonymous enumeration.
    #[serde(rename = "NoEnum_bool")]
    pub no_enum: bool,
    /// 0 = standalone, 1 = static, 2 = dynamic.
    #[serde(rename = "HubType_u32")]
    pub hub_type: u32,
    /// SetStaticNetwork's gateway for IP tunnels (`0.0.0.0`: unset).
    #[serde(rename = "DefaultGateway_u32")]
    pub default_gateway: IpU32,
    #[serde(rename = "DefaultSubnet_u32")]
    pub default_subnet: IpU32,
}

impl Default for Hub {
    /// An online standalone hub with nothing else set.
    fn default() -> Self {
        Hub {
            name: String::new(),
            admin_password: String::new(),
            hashed_password: Bin::default(),
            secure_password: Bin::default(),
            online: true,
            max_session: 0,
            no_enum: false,
            hub_type: 0,
            default_gateway: IpU32::default(),
            default_subnet: IpU32::default(),
        }
    }
}

/// A message that names a hub: `DeleteHub`, and the request of every hub listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HubName {
    #[serde(rename = "HubName_str")]
    pub hub: String,
}

/// `GetHubStatus`: what vpncmd's `Hub` command and `/ADMINHUB` ask (they keep `HubName`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HubStatus {
    #[serde(rename = "HubName_str")]
    pub name: String,
    #[serde(rename = "Online_bool")]
    pub online: bool,
    #[serde(rename = "HubType_u32")]
    pub hub_type: u32,
    #[serde(rename = "NumSessions_u32")]
    pub num_sessions: u32,
    #[serde(rename = "NumSessionsClient_u32")]
    pub num_sessions_client: u32,
    #[serde(rename = "NumSessionsBridge_u32")]
    pub num_sessions_bridge: u32,
    #[serde(rename = "NumAccessLists_u32")]
    pub num_access_lists: u32,
    #[serde(rename = "NumUsers_u32")]
    pub num_users: u32,
    #[serde(rename = "NumGroups_u32")]
    pub num_groups: u32,
    #[serde(rename = "NumMacTables_u32")]
    pub num_mac_tables: u32,
    #[serde(rename = "NumIpTables_u32")]
    pub num_ip_tables: u32,
    #[serde(rename = "SecureNATEnabled_bool")]
    pub securenat_enabled: bool,
    #[serde(rename = "LastCommTime_dt")]
    pub last_comm_time: Dt,
    #[serde(rename = "LastLoginTime_dt")]
    pub last_login_time: Dt,
    #[serde(rename = "CreatedTime_dt")]
    pub created_time: Dt,
    #[serde(rename = "NumLogin_u32")]
    pub num_login: u32,
    #[serde(flatten)]
    pub traffic: TrafficFields<false>,
}

/// One capability of `GetCaps`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CapItem {
    #[serde(rename = "CapsName_str")]
    pub name: String,
    #[serde(rename = "CapsValue_u32")]
    pub value: u32,
    /// SoftEther's spelling.
    #[serde(rename = "CapsDescrption_utf")]
    pub description: String,
}

/// `GetCaps`: what the server can do. vpncmd reads the `caps_<name>` ints, JSON clients the
/// list; both are written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Caps {
    #[serde(rename = "CapsList")]
    pub list: Vec<CapItem>,
    /// `caps_<name>_u32` for each item.
    #[serde(flatten)]
    pub ints: std::collections::BTreeMap<String, u32>,
}

impl Caps {
    pub fn new(items: &[(&str, u32, &str)]) -> Caps {
        let mut c = Caps::default();
        for (name, value, description) in items {
            c.ints.insert(format!("caps_{name}_u32"), *value);
            c.list.push(CapItem {
                name: name.to_string(),
                value: *value,
                description: description.to_string(),
            });
        }
        c
    }

    /// The value of a capability (0 if absent).
    pub fn get(&self, name: &str) -> u32 {
        self.list
            .iter()
            .find(|c| c.name == name)
            .map_or(0, |c| c.value)
    }
}

/// `GetServerCert`: the server's certificate (DER). Etherhub never sends its private key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerCert {
    #[serde(rename = "Cert_bin")]
    pub cert: Bin,
    #[serde(rename = "Flag1_u32")]
    pub flag1: u32,
}

/// `SetHubOnline`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HubOnline {
    #[serde(rename = "HubName_str")]
    pub hub: String,
    #[serde(rename = "Online_bool")]
    pub online: bool,
}

/// One row of `EnumHub`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HubItem {
    #[serde(rename = "HubName_str")]
    pub name: String,
    #[serde(rename = "Online_bool")]
    pub online: bool,
    #[serde(rename = "HubType_u32")]
    pub hub_type: u32,
    #[serde(rename = "NumUsers_u32")]
    pub num_users: u32,
    #[serde(rename = "NumGroups_u32")]
    pub num_groups: u32,
    #[serde(rename = "NumSessions_u32")]
    pub num_sessions: u32,
    #[serde(rename = "NumMacTables_u32")]
    pub num_mac_tables: u32,
    #[serde(rename = "NumIpTables_u32")]
    pub num_ip_tables: u32,
    #[serde(rename = "LastCommTime_dt")]
    pub last_comm_time: Dt,
    #[serde(rename = "LastLoginTime_dt")]
    pub last_login_time: Dt,
    #[serde(rename = "CreatedTime_dt")]
    pub created_time: Dt,
    #[serde(rename = "NumLogin_u32")]
    pub num_login: u32,
    #[serde(rename = "IsTrafficFilled_bool")]
    pub is_traffic_filled: bool,
    #[serde(flatten)]
    pub traffic: TrafficFields<true>,
}

/// `EnumHub`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HubList {
    #[serde(rename = "NumHub_u32")]
    pub num_hub: u32,
    #[serde(rename = "HubList")]
    pub hubs: Vec<HubItem>,
}

/// A user: `CreateUser`, `SetUser`, `GetUser`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct User {
    #[serde(rename = "HubName_str")]
    pub hub: String,
    #[serde(rename = "Name_str")]
    pub name: String,
    #[serde(rename = "GroupName_str")]
    pub group_name: String,
    #[serde(rename = "Realname_utf")]
    pub real_name: String,
    #[serde(rename = "Note_utf")]
    pub note: String,
    #[serde(rename = "CreatedTime_dt")]
    pub created_time: Dt,
    #[serde(rename = "UpdatedTime_dt")]
    pub updated_time: Dt,
    /// none: never expires.
    #[serde(rename = "ExpireTime_dt")]
    pub expire_time: Dt,
    /// SoftEther's numbers: 0 anonymous, 1 password, 2 certificate, 3 signed, 4 RADIUS, 5 NT.
    #[serde(rename = "AuthType_u32")]
    pub auth_type: u32,
    /// The plain password, on the way in only; empty keeps the current one.
    #[serde(rename = "Auth_Password_str")]
    pub password: String,
    /// The password as vpncmd sends it: SHA-0 of the password and the upper-case user name
    /// (used when `password` is empty and this is not all zero). Never sent back.
    #[serde(rename = "HashedKey_bin", skip_serializing_if = "Bin::is_empty")]
    pub hashed_key: Bin,
    /// The NT hash (MD4 of the password) beside `hashed_key`.
    #[serde(rename = "NtLmSecureHash_bin", skip_serializing_if = "Bin::is_empty")]
    pub nt_hash: Bin,
    #[serde(rename = "NumLogin_u32")]
    pub num_login: u32,
    #[serde(rename = "UsePolicy_bool")]
    pub use_policy: bool,
    #[serde(flatten)]
    pub policy: PolicyFields,
    #[serde(flatten)]
    pub traffic: TrafficFields<false>,
}

/// A user group: `CreateGroup`, `SetGroup`, `GetGroup`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Group {
    #[serde(rename = "HubName_str")]
    pub hub: String,
    #[serde(rename = "Name_str")]
    pub name: String,
    #[serde(rename = "Realname_utf")]
    pub real_name: String,
    #[serde(rename = "Note_utf")]
    pub note: String,
    #[serde(rename = "UsePolicy_bool")]
    pub use_policy: bool,
    #[serde(flatten)]
    pub policy: PolicyFields,
    #[serde(flatten)]
    pub traffic: TrafficFields<false>,
}

/// One row of `EnumGroup`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GroupItem {
    #[serde(rename = "Name_str")]
    pub name: String,
    #[serde(rename = "Realname_utf")]
    pub real_name: String,
    #[serde(rename = "Note_utf")]
    pub note: String,
    #[serde(rename = "NumUsers_u32")]
    pub num_users: u32,
    /// The group's policy denies access.
    #[serde(rename = "DenyAccess_bool")]
    pub deny_access: bool,
}

/// `EnumGroup`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GroupList {
    #[serde(rename = "HubName_str")]
    pub hub: String,
    #[serde(rename = "GroupList")]
    pub groups: Vec<GroupItem>,
}

/// An object of a hub, by name: `GetUser`, `DeleteUser`, `GetSessionStatus`, `DeleteSession`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HubObject {
    #[serde(rename = "HubName_str")]
    pub hub: String,
    #[serde(rename = "Name_str")]
    pub name: String,
}

/// One row of `EnumUser`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserItem {
    #[serde(rename = "Name_str")]
    pub name: String,
    #[serde(rename = "GroupName_str")]
    pub group_name: String,
    #[serde(rename = "Realname_utf")]
    pub real_name: String,
    #[serde(rename = "Note_utf")]
    pub note: String,
    #[serde(rename = "AuthType_u32")]
    pub auth_type: u32,
    #[serde(rename = "NumLogin_u32")]
    pub num_login: u32,
    #[serde(rename = "LastLoginTime_dt")]
    pub last_login_time: Dt,
    #[serde(rename = "DenyAccess_bool")]
    pub deny_access: bool,
    #[serde(rename = "IsTrafficFilled_bool")]
    pub is_traffic_filled: bool,
    #[serde(rename = "IsExpiresFilled_bool")]
    pub is_expires_filled: bool,
    #[serde(rename = "Expires_dt")]
    pub expires: Dt,
    #[serde(flatten)]
    pub traffic: TrafficFields<true>,
}

/// `EnumUser`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserList {
    #[serde(rename = "HubName_str")]
    pub hub: String,
    #[serde(rename = "UserList")]
    pub users: Vec<UserItem>,
}

/// One row of `EnumSession`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionItem {
    #[serde(rename = "Name_str")]
    pub name: String,
    #[serde(rename = "RemoteSession_bool")]
    pub remote_session: bool,
    #[serde(rename = "RemoteHostname_str")]
    pub remote_hostname: String,
    #[serde(rename = "Username_str")]
    pub username: String,
    #[serde(rename = "ClientIP_ip")]
    pub client_ip: Ip,
    /// The client's address again (SoftEther's 32-bit `Ip`).
    #[serde(rename = "Ip_ip")]
    pub ip: Ip,
    #[serde(rename = "Hostname_str")]
    pub hostname: String,
    #[serde(rename = "MaxNumTcp_u32")]
    pub max_num_tcp: u32,
    #[serde(rename = "CurrentNumTcp_u32")]
    pub current_num_tcp: u32,
    #[serde(rename = "PacketSize_u64")]
    pub packet_size: u64,
    #[serde(rename = "PacketNum_u64")]
    pub packet_num: u64,
    #[serde(rename = "LinkMode_bool")]
    pub link_mode: bool,
    #[serde(rename = "SecureNATMode_bool")]
    pub securenat_mode: bool,
    #[serde(rename = "BridgeMode_bool")]
    pub bridge_mode: bool,
    #[serde(rename = "Layer3Mode_bool")]
    pub layer3_mode: bool,
    #[serde(rename = "Client_BridgeMode_bool")]
    pub client_bridge_mode: bool,
    #[serde(rename = "Client_MonitorMode_bool")]
    pub client_monitor_mode: bool,
    #[serde(rename = "VLanId_u32")]
    pub vlan_id: u32,
    #[serde(rename = "UniqueId_bin")]
    pub unique_id: Bin,
    #[serde(rename = "CreatedTime_dt")]
    pub created_time: Dt,
    #[serde(rename = "LastCommTime_dt")]
    pub last_comm_time: Dt,
    /// SoftEther's dormant sessions (cluster keep-alive); Etherhub's are never dormant.
    #[serde(rename = "IsDormantEnabled_bool")]
    pub is_dormant_enabled: bool,
    #[serde(rename = "IsDormant_bool")]
    pub is_dormant: bool,
    #[serde(rename = "LastCommDormant_dt")]
    pub last_comm_dormant: Dt,
}

/// `EnumSession`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionList {
    #[serde(rename = "HubName_str")]
    pub hub: String,
    #[serde(rename = "SessionList")]
    pub sessions: Vec<SessionItem>,
}

/// `GetSessionStatus`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionStatus {
    #[serde(rename = "HubName_str")]
    pub hub: String,
    #[serde(rename = "Name_str")]
    pub name: String,
    #[serde(rename = "Username_str")]
    pub username: String,
    #[serde(rename = "RealUsername_str")]
    pub real_username: String,
    #[serde(rename = "GroupName_str")]
    pub group_name: String,
    #[serde(rename = "LinkMode_bool")]
    pub link_mode: bool,
    #[serde(rename = "Client_Ip_Address_ip")]
    pub client_ip: Ip,
    /// The client's address again, where vpncmd's SessionGet reads it.
    #[serde(rename = "SessionStatus_ClientIp_ip")]
    pub status_client_ip: Ip,
    #[serde(rename = "SessionStatus_ClientHostName_str")]
    pub client_host_name: String,
    #[serde(rename = "Active_bool")]
    pub active: bool,
    #[serde(rename = "Connected_bool")]
    pub connected: bool,
    /// SoftEther's client status; 3 is "established".
    #[serde(rename = "SessionStatus_u32")]
    pub session_status: u32,
    #[serde(rename = "ServerName_str")]
    pub server_name: String,
    #[serde(rename = "ServerPort_u32")]
    pub server_port: u32,
    #[serde(rename = "ServerProductName_str")]
    pub server_product_name: String,
    #[serde(rename = "ServerProductVer_u32")]
    pub server_product_ver: u32,
    #[serde(rename = "ServerProductBuild_u32")]
    pub server_product_build: u32,
    #[serde(rename = "StartTime_dt")]
    pub start_time: Dt,
    #[serde(rename = "FirstConnectionEstablisiedTime_dt")]
    pub first_connection_time: Dt,
    #[serde(rename = "CurrentConnectionEstablishTime_dt")]
    pub current_connection_time: Dt,
    #[serde(rename = "NumConnectionsEstablished_u32")]
    pub num_connections_established: u32,
    #[serde(rename = "HalfConnection_bool")]
    pub half_connection: bool,
    #[serde(rename = "QoS_bool")]
    pub qos: bool,
    #[serde(rename = "MaxTcpConnections_u32")]
    pub max_tcp_connections: u32,
    #[serde(rename = "NumTcpConnections_u32")]
    pub num_tcp_connections: u32,
    #[serde(rename = "NumTcpConnectionsUpload_u32")]
    pub num_tcp_connections_upload: u32,
    #[serde(rename = "NumTcpConnectionsDownload_u32")]
    pub num_tcp_connections_download: u32,
    #[serde(rename = "UseEncrypt_bool")]
    pub use_encrypt: bool,
    #[serde(rename = "CipherName_str")]
    pub cipher_name: String,
    #[serde(rename = "UseCompress_bool")]
    pub use_compress: bool,
    #[serde(rename = "IsRUDPSession_bool")]
    pub is_rudp_session: bool,
    /// e.g. `Legacy VPN - WIREGUARD`.
    #[serde(rename = "UnderlayProtocol_str")]
    pub underlay_protocol: String,
    #[serde(rename = "IsUdpAccelerationEnabled_bool")]
    pub is_udp_acceleration_enabled: bool,
    #[serde(rename = "IsUsingUdpAcceleration_bool")]
    pub is_using_udp_acceleration: bool,
    #[serde(rename = "SessionName_str")]
    pub session_name: String,
    #[serde(rename = "ConnectionName_str")]
    pub connection_name: String,
    #[serde(rename = "SessionKey_bin")]
    pub session_key: Bin,
    #[serde(rename = "TotalSendSize_u64")]
    pub total_send_size: u64,
    #[serde(rename = "TotalRecvSize_u64")]
    pub total_recv_size: u64,
    #[serde(rename = "TotalSendSizeReal_u64")]
    pub total_send_size_real: u64,
    #[serde(rename = "TotalRecvSizeReal_u64")]
    pub total_recv_size_real: u64,
    #[serde(rename = "IsBridgeMode_bool")]
    pub is_bridge_mode: bool,
    #[serde(rename = "IsMonitorMode_bool")]
    pub is_monitor_mode: bool,
    #[serde(rename = "VLanId_u32")]
    pub vlan_id: u32,
    #[serde(rename = "ClientProductName_str")]
    pub client_product_name: String,
    #[serde(rename = "ClientProductVer_u32")]
    pub client_product_ver: u32,
    #[serde(rename = "ClientProductBuild_u32")]
    pub client_product_build: u32,
    #[serde(rename = "ClientOsName_str")]
    pub client_os_name: String,
    #[serde(rename = "ClientOsVer_str")]
    pub client_os_ver: String,
    #[serde(rename = "ClientOsProductId_str")]
    pub client_os_product_id: String,
    #[serde(rename = "ClientHostname_str")]
    pub client_hostname: String,
    /// The client's address and port as its node information reports them. SoftEther sends
    /// `ClientProductVer`, `ClientProductBuild`, `ClientPort` and `ServerPort2` with their
    /// bytes swapped (its `NODE_INFO` keeps them in network order); these fields hold the
    /// values as sent, see [`crate::wire::node_u32`].
    #[serde(rename = "ClientIpAddress_ip")]
    pub node_client_ip: Ip,
    #[serde(rename = "ClientPort_u32")]
    pub node_client_port: u32,
    #[serde(rename = "ServerHostname_str")]
    pub server_hostname: String,
    #[serde(rename = "ServerIpAddress_ip")]
    pub node_server_ip: Ip,
    #[serde(rename = "ServerPort2_u32")]
    pub node_server_port: u32,
    #[serde(rename = "UniqueId_bin")]
    pub unique_id: Bin,
    /// `Recv.*` and `Send.*` (not the `Ex.` names of the listings), as vpncmd reads them.
    #[serde(flatten)]
    pub traffic: TrafficFields<false>,
}

/// One IP address table entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IpItem {
    #[serde(rename = "Key_u32")]
    pub key: u32,
    #[serde(rename = "SessionName_str")]
    pub session_name: String,
    #[serde(rename = "IpAddress_ip")]
    pub ip: Ip,
    /// The same address where vpncmd's IpTable reads it.
    #[serde(rename = "IpV6_ip")]
    pub ip_shown: Ip,
    #[serde(rename = "DhcpAllocated_bool")]
    pub dhcp_allocated: bool,
    #[serde(rename = "CreatedTime_dt")]
    pub created_time: Dt,
    #[serde(rename = "UpdatedTime_dt")]
    pub updated_time: Dt,
    #[serde(rename = "RemoteItem_bool")]
    pub remote_item: bool,
    #[serde(rename = "RemoteHostname_str")]
    pub remote_hostname: String,
}

/// `EnumIpTable`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IpTable {
    #[serde(rename = "HubName_str")]
    pub hub: String,
    #[serde(rename = "IpTable")]
    pub entries: Vec<IpItem>,
}

/// One MAC address table entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MacItem {
    #[serde(rename = "Key_u32")]
    pub key: u32,
    #[serde(rename = "SessionName_str")]
    pub session_name: String,
    #[serde(rename = "MacAddress_bin")]
    pub mac: Bin,
    #[serde(rename = "CreatedTime_dt")]
    pub created_time: Dt,
    #[serde(rename = "UpdatedTime_dt")]
    pub updated_time: Dt,
    #[serde(rename = "RemoteItem_bool")]
    pub remote_item: bool,
    #[serde(rename = "RemoteHostname_str")]
    pub remote_hostname: String,
    #[serde(rename = "VlanId_u32")]
    pub vlan_id: u32,
}

/// `EnumMacTable`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MacTable {
    #[serde(rename = "HubName_str")]
    pub hub: String,
    #[serde(rename = "MacTable")]
    pub entries: Vec<MacItem>,
}

/// SecureNAT's settings (SoftEther's `VH_OPTION`): `GetSecureNATOption`, `SetSecureNATOption`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecureNatOption {
    #[serde(rename = "RpcHubName_str")]
    pub hub: String,
    #[serde(rename = "MacAddress_bin")]
    pub mac: Bin,
    #[serde(rename = "Ip_ip")]
    pub ip: Ip,
    #[serde(rename = "Mask_ip")]
    pub mask: Ip,
    #[serde(rename = "UseNat_bool")]
    pub use_nat: bool,
    #[serde(rename = "Mtu_u32")]
    pub mtu: u32,
    #[serde(rename = "NatTcpTimeout_u32")]
    pub nat_tcp_timeout: u32,
    #[serde(rename = "NatUdpTimeout_u32")]
    pub nat_udp_timeout: u32,
    #[serde(rename = "UseDhcp_bool")]
    pub use_dhcp: bool,
    #[serde(rename = "DhcpLeaseIPStart_ip")]
    pub dhcp_lease_start: Ip,
    #[serde(rename = "DhcpLeaseIPEnd_ip")]
    pub dhcp_lease_end: Ip,
    #[serde(rename = "DhcpSubnetMask_ip")]
    pub dhcp_subnet_mask: Ip,
    #[serde(rename = "DhcpExpireTimeSpan_u32")]
    pub dhcp_expire_secs: u32,
    #[serde(rename = "DhcpGatewayAddress_ip")]
    pub dhcp_gateway: Ip,
    #[serde(rename = "DhcpDnsServerAddress_ip")]
    pub dhcp_dns: Ip,
    #[serde(rename = "DhcpDnsServerAddress2_ip")]
    pub dhcp_dns2: Ip,
    #[serde(rename = "DhcpDomainName_str")]
    pub dhcp_domain_name: String,
    #[serde(rename = "SaveLog_bool")]
    pub save_log: bool,
    #[serde(rename = "ApplyDhcpPushRoutes_bool")]
    pub apply_dhcp_push_routes: bool,
    #[serde(rename = "DhcpPushRoutes_str")]
    pub dhcp_push_routes: String,
}

impl Default for SecureNatOption {
    /// SoftEther's defaults for a new hub (192.168.30.0/24).
    fn default() -> Self {
        let ip = |a, b, c, d| Ip::from(Ipv4Addr::new(a, b, c, d));
        Self {
            hub: String::new(),
            mac: Bin(vec![0; 6]),
            ip: ip(192, 168, 30, 1),
            mask: ip(255, 255, 255, 0),
            use_nat: true,
            mtu: 1500,
            nat_tcp_timeout: 1800,
            nat_udp_timeout: 60,
            use_dhcp: true,
            dhcp_lease_start: ip(192, 168, 30, 10),
            dhcp_lease_end: ip(192, 168, 30, 200),
            dhcp_subnet_mask: ip(255, 255, 255, 0),
            dhcp_expire_secs: 7200,
            dhcp_gateway: ip(192, 168, 30, 1),
            dhcp_dns: ip(192, 168, 30, 1),
            dhcp_dns2: ip(0, 0, 0, 0),
            dhcp_domain_name: String::new(),
            save_log: true,
            apply_dhcp_push_routes: false,
            dhcp_push_routes: String::new(),
        }
    }
}

/// A message that names a hub as SecureNAT's messages do: `GetSecureNATOption`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RpcHubName {
    #[serde(rename = "RpcHubName_str")]
    pub hub: String,
}

/// `GetSecureNATStatus`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecureNatStatus {
    #[serde(rename = "HubName_str")]
    pub hub: String,
    #[serde(rename = "NumTcpSessions_u32")]
    pub num_tcp_sessions: u32,
    #[serde(rename = "NumUdpSessions_u32")]
    pub num_udp_sessions: u32,
    #[serde(rename = "NumIcmpSessions_u32")]
    pub num_icmp_sessions: u32,
    #[serde(rename = "NumDnsSessions_u32")]
    pub num_dns_sessions: u32,
    #[serde(rename = "NumDhcpClients_u32")]
    pub num_dhcp_clients: u32,
    #[serde(rename = "IsKernelMode_bool")]
    pub is_kernel_mode: bool,
    #[serde(rename = "IsRawIpMode_bool")]
    pub is_raw_ip_mode: bool,
}

/// One NAT flow (EnumNAT's `NatTable` row).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NatItem {
    #[serde(rename = "Id_u32")]
    pub id: u32,
    /// 0 TCP, 1 UDP, 2 DNS, 3 ICMP (SoftEther's NAT_TCP ... NAT_ICMP)
    #[serde(rename = "Protocol_u32")]
    pub protocol: u32,
    #[serde(rename = "SrcIp_ip")]
    pub src_ip: Ip,
    #[serde(rename = "SrcHost_str")]
    pub src_host: String,
    #[serde(rename = "SrcPort_u32")]
    pub src_port: u32,
    #[serde(rename = "DestIp_ip")]
    pub dest_ip: Ip,
    #[serde(rename = "DestHost_str")]
    pub dest_host: String,
    #[serde(rename = "DestPort_u32")]
    pub dest_port: u32,
    #[serde(rename = "CreatedTime_dt")]
    pub created_time: Dt,
    #[serde(rename = "LastCommTime_dt")]
    pub last_comm_time: Dt,
    #[serde(rename = "SendSize_u64")]
    pub send_size: u64,
    #[serde(rename = "RecvSize_u64")]
    pub recv_size: u64,
    /// 0 connecting, 2 connected, 3 established, 4 waiting to disconnect
    #[serde(rename = "TcpStatus_u32")]
    pub tcp_status: u32,
}

/// `EnumNAT`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NatTable {
    #[serde(rename = "HubName_str")]
    pub hub: String,
    /// The row count vpncmd reads.
    #[serde(rename = "NumItem_u32")]
    pub num_item: u32,
    #[serde(rename = "NatTable")]
    pub entries: Vec<NatItem>,
}

/// One DHCP lease (EnumDHCP's `DhcpTable` row).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DhcpItem {
    #[serde(rename = "Id_u32")]
    pub id: u32,
    #[serde(rename = "LeasedTime_dt")]
    pub leased_time: Dt,
    #[serde(rename = "ExpireTime_dt")]
    pub expire_time: Dt,
    #[serde(rename = "MacAddress_bin")]
    pub mac: Bin,
    #[serde(rename = "IpAddress_ip")]
    pub ip: Ip,
    #[serde(rename = "Mask_u32")]
    pub mask: IpU32,
    #[serde(rename = "Hostname_str")]
    pub hostname: String,
}

/// `EnumDHCP`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DhcpTable {
    #[serde(rename = "HubName_str")]
    pub hub: String,
    /// The row count vpncmd reads.
    #[serde(rename = "NumItem_u32")]
    pub num_item: u32,
    #[serde(rename = "DhcpTable")]
    pub entries: Vec<DhcpItem>,
}

/// `AddWgk` in: SoftEther's three parallel arrays, Etherhub's addresses (empty: see
/// [`crate::Backend::add_wg_keys`]) and an empty key for a pair the server generates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WgkAdd {
    #[serde(rename = "Key_str", deserialize_with = "one_or_many")]
    pub keys: Vec<String>,
    #[serde(rename = "Hub_str", deserialize_with = "one_or_many")]
    pub hubs: Vec<String>,
    #[serde(rename = "User_str", deserialize_with = "one_or_many")]
    pub users: Vec<String>,
    #[serde(rename = "Address_str", deserialize_with = "one_or_many")]
    pub addresses: Vec<String>,
    /// The returned configs route everything into the tunnel.
    #[serde(rename = "AllTraffic_bool")]
    pub all_traffic: bool,
}

/// `AddWgk` and `GetWgkConfig` out: each key with its address and wg-quick config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WgkConfigs {
    #[serde(rename = "Key_str")]
    pub keys: Vec<String>,
    #[serde(rename = "Hub_str")]
    pub hubs: Vec<String>,
    #[serde(rename = "User_str")]
    pub users: Vec<String>,
    #[serde(rename = "Address_str")]
    pub addresses: Vec<String>,
    #[serde(rename = "Config_str")]
    pub configs: Vec<String>,
}

/// `DeleteWgk`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WgkKeys {
    #[serde(rename = "Key_str", deserialize_with = "one_or_many")]
    pub keys: Vec<String>,
}

/// `EnumWgk`: SoftEther's three arrays and Etherhub's columns (no key: no field at all, as a
/// PACK without elements).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WgkList {
    #[serde(skip_serializing_if = "Vec::is_empty", rename = "Key_str")]
    pub keys: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", rename = "Hub_str")]
    pub hubs: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", rename = "User_str")]
    pub users: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", rename = "Address_str")]
    pub addresses: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", rename = "OwnPresharedKey_bool")]
    pub own_psk: Vec<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty", rename = "SessionName_str")]
    pub sessions: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", rename = "LastHandshake_dt")]
    pub last_handshakes: Vec<Dt>,
    #[serde(skip_serializing_if = "Vec::is_empty", rename = "RecvBytes_u64")]
    pub recv_bytes: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty", rename = "SendBytes_u64")]
    pub send_bytes: Vec<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty", rename = "SpoofedDropped_u64")]
    pub spoofed_dropped: Vec<u64>,
}

/// `GetWgkConfig` in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WgkConfigRequest {
    #[serde(rename = "Key_str")]
    pub key: String,
    #[serde(rename = "AllTraffic_bool")]
    pub all_traffic: bool,
}

/// `SetWgPublicHost` (empty: the server's host name).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WgPublicHost {
    #[serde(rename = "PublicHost_str")]
    pub host: String,
}

/// Etherhub's `GetWgServerInfo`: what a WireGuard client needs to know about the server, and
/// the counters an admin watches under load.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WgServerInfo {
    #[serde(rename = "Enabled_bool")]
    pub enabled: bool,
    #[serde(rename = "PublicKey_str")]
    pub public_key: String,
    /// The preshared key of keys without one of their own (empty if none).
    #[serde(rename = "PresharedKey_str")]
    pub preshared_key: String,
    #[serde(rename = "Ports_u32")]
    pub udp_ports: Vec<u32>,
    #[serde(rename = "PublicHost_str")]
    pub public_host: String,
    #[serde(rename = "HandshakesOk_u64")]
    pub handshakes_ok: u64,
    /// Handshakes answered with a cookie reply because they came faster than the rate limit.
    #[serde(rename = "CookieRepliesSent_u64")]
    pub cookie_replies_sent: u64,
    /// Handshakes with a valid cookie dropped under load by the per-source limit.
    #[serde(rename = "HandshakesRateLimited_u64")]
    pub handshakes_rate_limited: u64,
    /// Initiations from keys nobody registered (not answered).
    #[serde(rename = "UnknownKeyInitiations_u64")]
    pub unknown_key_initiations: u64,
    #[serde(rename = "MalformedDropped_u64")]
    pub malformed_dropped: u64,
    #[serde(rename = "UnknownIndexDropped_u64")]
    pub unknown_index_dropped: u64,
    /// Packets whose source address was not the key's address.
    #[serde(rename = "SpoofedDropped_u64")]
    pub spoofed_dropped: u64,
    /// Datagrams no protocol on the UDP ports recognised.
    #[serde(rename = "UnknownDatagrams_u64")]
    pub unknown_datagrams: u64,
    /// Datagrams the kernel would not take (socket buffer full).
    #[serde(rename = "SendFailures_u64")]
    pub send_failures: u64,
    /// Packets from one client to another on a hub forwarded without the engine's lock (the
    /// hub still counts each; see the engine's direct table).
    #[serde(rename = "DirectForwarded_u64")]
    pub direct_forwarded: u64,
}

/// `GetProtoOptions`, `SetProtoOptions` (SoftEther 5): a protocol's options as parallel
/// lists. A type is 1 (string: the value's bytes with a trailing NUL) or 2 (bool: SoftEther's
/// `bool`, a 4-byte unsigned int).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProtoOptions {
    #[serde(rename = "Protocol_str")]
    pub protocol: String,
    #[serde(rename = "Name_str", deserialize_with = "one_or_many")]
    pub names: Vec<String>,
    #[serde(rename = "Type_u32", deserialize_with = "one_or_many")]
    pub types: Vec<u32>,
    #[serde(rename = "Value_bin", deserialize_with = "one_or_many")]
    pub values: Vec<Bin>,
}

impl ProtoOptions {
    /// Options as the RPC carries them: a string's bytes with a trailing NUL; a bool as
    /// SoftEther's `bool`, an unsigned int (4 bytes, little end first on the machines it runs
    /// on).
    pub fn of(
        protocol: String,
        options: Vec<(String, etherhub_config::proto::ProtoValue)>,
    ) -> Self {
        use etherhub_config::proto::ProtoValue;
        let mut r = ProtoOptions {
            protocol,
            ..ProtoOptions::default()
        };
        for (name, v) in options {
            r.names.push(name);
            match v {
                ProtoValue::Str(s) => {
                    r.types.push(1);
                    let mut b = s.into_bytes();
                    b.push(0);
                    r.values.push(Bin(b));
                }
                ProtoValue::Bool(x) => {
                    r.types.push(2);
                    r.values.push(Bin(u32::from(x).to_le_bytes().to_vec()));
                }
            }
        }
        r
    }

    /// The options the RPC carries, each with its value (a bool is any non-zero bytes).
    pub fn options(
        &self,
    ) -> Result<Vec<(String, etherhub_config::proto::ProtoValue)>, crate::AdminError> {
        use etherhub_config::proto::ProtoValue;
        if self.names.len() != self.types.len() || self.names.len() != self.values.len() {
            return Err(crate::AdminError::invalid_param(
                "Name_str",
                "names, types and values must be as many",
            ));
        }
        self.names
            .iter()
            .zip(&self.types)
            .zip(&self.values)
            .map(|((n, t), v)| {
                let value = match t {
                    1 => {
                        let text = v.0.split(|b| *b == 0).next().unwrap_or(&[]);
                        ProtoValue::Str(String::from_utf8_lossy(text).into_owned())
                    }
                    2 => ProtoValue::Bool(v.0.iter().any(|b| *b != 0)),
                    _ => {
                        return Err(crate::AdminError::invalid_param(
                            "Type_u32",
                            "1 (string) or 2 (bool)",
                        ))
                    }
                };
                Ok((n.clone(), value))
            })
            .collect()
    }
}

/// `MakeOpenVpnConfigFile` (SoftEther's RPC_READ_LOG_FILE): the zip in `Buffer`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReadLogFile {
    #[serde(rename = "ServerName_str")]
    pub server_name: String,
    #[serde(rename = "FilePath_str")]
    pub file_path: String,
    #[serde(rename = "Offset_u32")]
    pub offset: u32,
    #[serde(rename = "Buffer_bin")]
    pub buffer: Bin,
}

/// `GetPortsUDP`, `SetPortsUDP`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PortsUdp {
    #[serde(rename = "Ports_u32", deserialize_with = "one_or_many")]
    pub ports: Vec<u32>,
}

/// `CreateListener`, `DeleteListener`, `EnableListener`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Listener {
    #[serde(rename = "Port_u32")]
    pub port: u32,
    #[serde(rename = "Enable_bool")]
    pub enable: bool,
}

/// One TCP listener of `EnumListener`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListenerItem {
    #[serde(rename = "Ports_u32")]
    pub port: u32,
    #[serde(rename = "Enables_bool")]
    pub enabled: bool,
    /// Enabled but could not bind.
    #[serde(rename = "Errors_bool")]
    pub error: bool,
}

/// `EnumListener`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListenerList {
    #[serde(rename = "ListenerList")]
    pub listeners: Vec<ListenerItem>,
}

/// `SetServerPassword` (never sent back).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerPassword {
    #[serde(rename = "PlainTextPassword_str")]
    pub password: String,
    /// SHA-0 of the password, as vpncmd sends it; when not all zero it wins over the plain
    /// text (which vpncmd sends empty).
    #[serde(rename = "HashedPassword_bin", skip_serializing_if = "Bin::is_empty")]
    pub hashed: Bin,
}

/// The whole configuration file: `GetConfig`, `SetConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConfigFile {
    #[serde(rename = "FileName_str")]
    pub file_name: String,
    #[serde(rename = "FileData_bin")]
    pub data: Bin,
}

/// One key for [`crate::Backend::add_wg_keys`]: a key to register, or an empty `key` for a pair
/// the server generates; the address to give its client, or `None` (see the backend).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WgKeyRequest {
    pub key: String,
    pub hub: String,
    pub user: String,
    pub address: Option<Ipv4Addr>,
}

/// A registered key: its public key, its client's address (if it has one yet) and the client's
/// wg-quick config (with the private key only when the server generated the pair; it is not
/// kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WgKeyAdded {
    pub key: String,
    pub hub: String,
    pub user: String,
    pub address: Option<Ipv4Addr>,
    pub config: String,
}

/// One key of the key list, with its live peer's state.
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
    pub last_handshake: Dt,
    /// Bytes of inner packets from the client / to the client.
    pub recv_bytes: u64,
    pub send_bytes: u64,
    /// Packets dropped because their source was not `address`.
    pub spoofed_dropped: u64,
}

/// One access rule of a hub: a row of `EnumAccess` and `SetAccessList`, the rule of
/// `AddAccess`. SoftEther's fields, plus Etherhub's count of the frames it matched.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AccessEntry {
    /// 1..N in the list's order.
    #[serde(rename = "Id_u32")]
    pub id: u32,
    #[serde(rename = "Note_utf")]
    pub note: String,
    #[serde(rename = "Active_bool")]
    pub active: bool,
    #[serde(rename = "Priority_u32")]
    pub priority: u32,
    #[serde(rename = "Discard_bool")]
    pub discard: bool,
    #[serde(rename = "IsIPv6_bool")]
    pub ipv6: bool,
    #[serde(rename = "SrcIpAddress_ip")]
    pub src_ip: Ip,
    #[serde(rename = "SrcSubnetMask_ip")]
    pub src_mask: Ip,
    #[serde(rename = "DestIpAddress_ip")]
    pub dst_ip: Ip,
    #[serde(rename = "DestSubnetMask_ip")]
    pub dst_mask: Ip,
    #[serde(rename = "SrcIpAddress6_bin")]
    pub src_ip6: Bin,
    #[serde(rename = "SrcSubnetMask6_bin")]
    pub src_mask6: Bin,
    #[serde(rename = "DestIpAddress6_bin")]
    pub dst_ip6: Bin,
    #[serde(rename = "DestSubnetMask6_bin")]
    pub dst_mask6: Bin,
    #[serde(rename = "Protocol_u32")]
    pub protocol: u32,
    #[serde(rename = "SrcPortStart_u32")]
    pub src_port_start: u32,
    #[serde(rename = "SrcPortEnd_u32")]
    pub src_port_end: u32,
    #[serde(rename = "DestPortStart_u32")]
    pub dst_port_start: u32,
    #[serde(rename = "DestPortEnd_u32")]
    pub dst_port_end: u32,
    #[serde(rename = "SrcUsername_str")]
    pub src_user: String,
    #[serde(rename = "DestUsername_str")]
    pub dst_user: String,
    #[serde(rename = "CheckSrcMac_bool")]
    pub check_src_mac: bool,
    #[serde(rename = "SrcMacAddress_bin")]
    pub src_mac: Bin,
    #[serde(rename = "SrcMacMask_bin")]
    pub src_mac_mask: Bin,
    #[serde(rename = "CheckDstMac_bool")]
    pub check_dst_mac: bool,
    #[serde(rename = "DstMacAddress_bin")]
    pub dst_mac: Bin,
    #[serde(rename = "DstMacMask_bin")]
    pub dst_mac_mask: Bin,
    #[serde(rename = "CheckTcpState_bool")]
    pub check_tcp_state: bool,
    #[serde(rename = "Established_bool")]
    pub established: bool,
    #[serde(rename = "Delay_u32")]
    pub delay: u32,
    #[serde(rename = "Jitter_u32")]
    pub jitter: u32,
    #[serde(rename = "Loss_u32")]
    pub loss: u32,
    #[serde(rename = "RedirectUrl_str")]
    pub redirect_url: String,
    /// Stable while the rule exists (32768 and above, so that DeleteAccess tells it from an Id).
    #[serde(rename = "UniqueId_u32")]
    pub unique_id: u32,
    /// Frames the rule matched since the list last changed (Etherhub).
    #[serde(rename = "Matches_u64")]
    pub matches: u64,
}

/// `EnumAccess`, `SetAccessList`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AccessList {
    #[serde(rename = "HubName_str")]
    pub hub: String,
    #[serde(rename = "AccessList")]
    pub list: Vec<AccessEntry>,
}

/// `AddAccess`: the rule as flat fields (SoftEther's PACK) or in `AccessListSingle` (its JSON
/// clients).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AddAccess {
    #[serde(rename = "HubName_str")]
    pub hub: String,
    #[serde(rename = "AccessListSingle", skip_serializing_if = "Vec::is_empty")]
    pub single: Vec<AccessEntry>,
    #[serde(flatten)]
    pub access: AccessEntry,
}

/// `DeleteAccess`: a rule by its Id, or by its UniqueId (32768 and above).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeleteAccess {
    #[serde(rename = "HubName_str")]
    pub hub: String,
    #[serde(rename = "Id_u32")]
    pub id: u32,
}

/// `GetIPsecServices` / `SetIPsecServices` (`IPsecGet` / `IPsecEnable`): L2TP over IPsec, raw
/// L2TP, EtherIP, the pre-shared key and the default hub.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IpsecServices {
    #[serde(rename = "L2TP_Raw_bool")]
    pub l2tp_raw: bool,
    #[serde(rename = "L2TP_IPsec_bool")]
    pub l2tp_ipsec: bool,
    #[serde(rename = "EtherIP_IPsec_bool")]
    pub etherip_ipsec: bool,
    #[serde(rename = "IPsec_Secret_str")]
    pub secret: String,
    #[serde(rename = "L2TP_DefaultHub_str")]
    pub default_hub: String,
}
