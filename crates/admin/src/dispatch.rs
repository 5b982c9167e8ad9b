//! The admin method table: SoftEther's JSON-RPC method names and field names mapped onto
//! [`Backend`] calls, with scope enforcement (a hub admin touches only its own hub).

use std::net::{IpAddr, Ipv4Addr};

use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::backend::Backend;
use crate::error::{code, AdminError, RpcError};
use crate::types::*;
use crate::wire::{format_dt, ipv4_from_u32, ipv4_to_u32, Params};

/// Every method `dispatch` knows, in SoftEther's spelling (plus Etherhub's `GetWgServerInfo`,
/// `GetWgkConfig` and `SetWgPublicHost`).
pub const METHODS: &[&str] = &[
    "Test",
    "GetServerInfo",
    "GetServerStatus",
    "CreateHub",
    "DeleteHub",
    "EnumHub",
    "GetHub",
    "SetHub",
    "SetHubOnline",
    "CreateUser",
    "SetUser",
    "GetUser",
    "DeleteUser",
    "EnumUser",
    "EnumSession",
    "GetSessionStatus",
    "DeleteSession",
    "EnumIpTable",
    "EnumMacTable",
    "EnableSecureNAT",
    "DisableSecureNAT",
    "GetSecureNATOption",
    "SetSecureNATOption",
    "GetSecureNATStatus",
    "EnumNAT",
    "EnumDHCP",
    "AddWgk",
    "DeleteWgk",
    "EnumWgk",
    "GetWgServerInfo",
    "GetWgkConfig",
    "SetWgPublicHost",
    "GetPortsUDP",
    "SetPortsUDP",
    "CreateListener",
    "DeleteListener",
    "EnableListener",
    "EnumListener",
    "SetServerPassword",
    "GetConfig",
    "SetConfig",
];

type R = Result<Value, AdminError>;

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn ip_str(ip: IpAddr) -> String {
    ip.to_string()
}

fn deny() -> AdminError {
    AdminError::new(
        code::ERR_NOT_ENOUGH_RIGHT,
        "This operation requires VPN Server administrator privileges.",
    )
}

fn server_only(scope: &AdminScope) -> Result<(), AdminError> {
    match scope {
        AdminScope::Server => Ok(()),
        AdminScope::Hub(_) => Err(deny()),
    }
}

/// The hub a hub-scoped method acts on: the named field, or the hub admin's own hub when the
/// field is absent. A hub admin naming another hub is refused.
fn hub_of(scope: &AdminScope, p: &Params<'_>, field: &str) -> Result<String, AdminError> {
    let named = p.opt_str(field)?.filter(|s| !s.is_empty());
    match (scope, named) {
        (AdminScope::Server, Some(h)) => Ok(h),
        (AdminScope::Server, None) => Err(AdminError::invalid_param(field, "missing")),
        (AdminScope::Hub(own), None) => Ok(own.clone()),
        (AdminScope::Hub(own), Some(h)) if h.eq_ignore_ascii_case(own) => Ok(own.clone()),
        (AdminScope::Hub(_), Some(_)) => Err(deny()),
    }
}

fn put_traffic(m: &mut Map<String, Value>, prefix: &str, t: &Traffic) {
    let fields = [
        ("Recv.BroadcastBytes", t.recv_broadcast_bytes),
        ("Recv.BroadcastCount", t.recv_broadcast_count),
        ("Recv.UnicastBytes", t.recv_unicast_bytes),
        ("Recv.UnicastCount", t.recv_unicast_count),
        ("Send.BroadcastBytes", t.send_broadcast_bytes),
        ("Send.BroadcastCount", t.send_broadcast_count),
        ("Send.UnicastBytes", t.send_unicast_bytes),
        ("Send.UnicastCount", t.send_unicast_count),
    ];
    for (name, v) in fields {
        m.insert(format!("{prefix}{name}_u64"), json!(v));
    }
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Handle one JSON-RPC call for an authenticated caller. Returns the `result` object or the
/// `error` object. Unknown methods give JSON-RPC's `-32601`; bad parameters give SoftEther's
/// `ERR_INVALID_PARAMETER` with the field named; backend errors keep their SoftEther code.
pub fn dispatch(
    backend: &dyn Backend,
    scope: &AdminScope,
    method: &str,
    params: &Value,
) -> Result<Value, RpcError> {
    let p = Params::new(params);
    let r = match method {
        "Test" => test(&p),
        "GetServerInfo" => get_server_info(backend),
        "GetServerStatus" => server_only(scope).and_then(|_| get_server_status(backend)),
        "CreateHub" => server_only(scope).and_then(|_| create_hub(backend, &p)),
        "DeleteHub" => server_only(scope).and_then(|_| {
            let name = p.str("HubName_str")?;
            backend.delete_hub(&name)?;
            Ok(json!({ "HubName_str": name }))
        }),
        "EnumHub" => enum_hub(backend, scope),
        "GetHub" => hub_of(scope, &p, "HubName_str").and_then(|h| Ok(hub_json(&backend.get_hub(&h)?))),
        "SetHub" => set_hub(backend, scope, &p),
        "SetHubOnline" => hub_of(scope, &p, "HubName_str").and_then(|h| {
            let online = p.opt_bool("Online_bool")?.ok_or_else(|| AdminError::invalid_param("Online_bool", "missing"))?;
            backend.set_hub_online(&h, online)?;
            Ok(json!({ "HubName_str": h, "Online_bool": online }))
        }),
        "CreateUser" => set_user(backend, scope, &p, true),
        "SetUser" => set_user(backend, scope, &p, false),
        "GetUser" => hub_of(scope, &p, "HubName_str").and_then(|h| {
            let name = p.str("Name_str")?;
            Ok(user_json(&backend.get_user(&h, &name)?))
        }),
        "DeleteUser" => hub_of(scope, &p, "HubName_str").and_then(|h| {
            let name = p.str("Name_str")?;
            backend.delete_user(&h, &name)?;
            Ok(json!({ "HubName_str": h, "Name_str": name }))
        }),
        "EnumUser" => hub_of(scope, &p, "HubName_str").and_then(|h| enum_user(backend, h)),
        "EnumSession" => hub_of(scope, &p, "HubName_str").and_then(|h| enum_session(backend, h)),
        "GetSessionStatus" => hub_of(scope, &p, "HubName_str").and_then(|h| {
            let name = p.str("Name_str")?;
            Ok(session_status_json(&backend.session_status(&h, &name)?))
        }),
        "DeleteSession" => hub_of(scope, &p, "HubName_str").and_then(|h| {
            let name = p.str("Name_str")?;
            backend.delete_session(&h, &name)?;
            Ok(json!({ "HubName_str": h, "Name_str": name }))
        }),
        "EnumIpTable" => hub_of(scope, &p, "HubName_str").and_then(|h| enum_ip_table(backend, h)),
        "EnumMacTable" => hub_of(scope, &p, "HubName_str").and_then(|h| enum_mac_table(backend, h)),
        "EnableSecureNAT" => hub_of(scope, &p, "HubName_str").and_then(|h| {
            backend.enable_secure_nat(&h)?;
            Ok(json!({ "HubName_str": h }))
        }),
        "DisableSecureNAT" => hub_of(scope, &p, "HubName_str").and_then(|h| {
            backend.disable_secure_nat(&h)?;
            Ok(json!({ "HubName_str": h }))
        }),
        "GetSecureNATOption" => hub_of(scope, &p, "RpcHubName_str").and_then(|h| {
            let o = backend.get_secure_nat_option(&h)?;
            Ok(nat_option_json(&h, &o))
        }),
        "SetSecureNATOption" => set_nat_option(backend, scope, &p),
        "EnumNAT" => hub_of(scope, &p, "HubName_str").and_then(|h| {
            let list: Vec<Value> = backend
                .enum_nat(&h)?
                .iter()
                .map(|e| {
                    json!({
                        "Id_u32": e.id,
                        "Protocol_u32": e.protocol,
                        "SrcIp_ip": e.src_ip.to_string(),
                        "SrcHost_str": "",
                        "SrcPort_u32": e.src_port,
                        "DestIp_ip": e.dest_ip.to_string(),
                        "DestHost_str": "",
                        "DestPort_u32": e.dest_port,
                        "CreatedTime_dt": format_dt(e.created_time_ms),
                        "LastCommTime_dt": format_dt(e.last_comm_time_ms),
                        "SendSize_u64": e.send_size,
                        "RecvSize_u64": e.recv_size,
                        "TcpStatus_u32": e.tcp_status,
                    })
                })
                .collect();
            Ok(json!({ "HubName_str": h, "NatTable": list }))
        }),
        "EnumDHCP" => hub_of(scope, &p, "HubName_str").and_then(|h| {
            let list: Vec<Value> = backend
                .enum_dhcp(&h)?
                .iter()
                .map(|e| {
                    json!({
                        "Id_u32": e.id,
                        "LeasedTime_dt": format_dt(e.leased_time_ms),
                        "ExpireTime_dt": format_dt(e.expire_time_ms),
                        "MacAddress_bin": b64(&e.mac),
                        "IpAddress_ip": e.ip.to_string(),
                        "Mask_u32": ipv4_to_u32(e.mask),
                        "Hostname_str": e.hostname,
                    })
                })
                .collect();
            Ok(json!({ "HubName_str": h, "DhcpTable": list }))
        }),
        "GetSecureNATStatus" => hub_of(scope, &p, "HubName_str").and_then(|h| {
            let s = backend.secure_nat_status(&h)?;
            Ok(json!({
                "HubName_str": h,
                "NumTcpSessions_u32": s.num_tcp_sessions,
                "NumUdpSessions_u32": s.num_udp_sessions,
                "NumIcmpSessions_u32": s.num_icmp_sessions,
                "NumDnsSessions_u32": s.num_dns_sessions,
                "NumDhcpClients_u32": s.num_dhcp_clients,
                "IsKernelMode_bool": s.is_kernel_mode,
                "IsRawIpMode_bool": s.is_raw_ip_mode,
            }))
        }),
        "AddWgk" => server_only(scope).and_then(|_| add_wgk(backend, &p)),
        "DeleteWgk" => server_only(scope).and_then(|_| delete_wgk(backend, &p)),
        "EnumWgk" => server_only(scope).and_then(|_| Ok(wgk_status_json(&backend.enum_wg_key_status()?))),
        "GetWgkConfig" => server_only(scope).and_then(|_| {
            let key = p.str("Key_str")?;
            let all = p.opt_bool("AllTraffic_bool")?.unwrap_or(false);
            Ok(wgk_added_json(&[backend.wg_client_config(&key, all)?]))
        }),
        "SetWgPublicHost" => server_only(scope).and_then(|_| {
            let host = p.opt_str("PublicHost_str")?.unwrap_or_default();
            backend.set_wg_public_host(&host)?;
            Ok(json!({ "PublicHost_str": backend.wg_public_host()? }))
        }),
        "GetWgServerInfo" => server_only(scope).and_then(|_| {
            let w = backend.wg_server_info()?;
            Ok(json!({
                "Enabled_bool": w.enabled,
                "PublicKey_str": w.public_key,
                "PresharedKey_str": w.preshared_key,
                "Ports_u32": w.udp_ports,
                "PublicHost_str": backend.wg_public_host()?,
                "HandshakesOk_u64": w.counters.handshakes_ok,
                "CookieRepliesSent_u64": w.counters.cookie_replies_sent,
                "HandshakesRateLimited_u64": w.counters.handshakes_rate_limited,
                "UnknownKeyInitiations_u64": w.counters.unknown_key_initiations,
                "MalformedDropped_u64": w.counters.malformed_dropped,
                "UnknownIndexDropped_u64": w.counters.unknown_index_dropped,
                "SpoofedDropped_u64": w.counters.spoofed_dropped,
                "UnknownDatagrams_u64": w.counters.unknown_datagrams,
                "SendFailures_u64": w.counters.send_failures,
            }))
        }),
        "GetPortsUDP" => server_only(scope).and_then(|_| Ok(json!({ "Ports_u32": backend.get_udp_ports()? }))),
        "SetPortsUDP" => server_only(scope).and_then(|_| set_ports_udp(backend, &p)),
        "CreateListener" => server_only(scope).and_then(|_| {
            let port = p.port("Port_u32")?;
            let enable = p.opt_bool("Enable_bool")?.unwrap_or(true);
            backend.create_listener(port, enable)?;
            Ok(json!({ "Port_u32": port, "Enable_bool": enable }))
        }),
        "DeleteListener" => server_only(scope).and_then(|_| {
            let port = p.port("Port_u32")?;
            backend.delete_listener(port)?;
            Ok(json!({ "Port_u32": port, "Enable_bool": false }))
        }),
        "EnableListener" => server_only(scope).and_then(|_| {
            let port = p.port("Port_u32")?;
            let enable = p.opt_bool("Enable_bool")?.ok_or_else(|| AdminError::invalid_param("Enable_bool", "missing"))?;
            backend.enable_listener(port, enable)?;
            Ok(json!({ "Port_u32": port, "Enable_bool": enable }))
        }),
        "EnumListener" => server_only(scope).and_then(|_| {
            let list: Vec<Value> = backend
                .enum_listeners()?
                .iter()
                .map(|l| json!({ "Ports_u32": l.port, "Enables_bool": l.enabled, "Errors_bool": l.error }))
                .collect();
            Ok(json!({ "ListenerList": list }))
        }),
        "SetServerPassword" => server_only(scope).and_then(|_| {
            let pw = p.opt_str("PlainTextPassword_str")?.ok_or_else(|| AdminError::invalid_param("PlainTextPassword_str", "missing"))?;
            backend.set_server_password(&pw)?;
            // SoftEther echoes the password back; we do not.
            Ok(json!({ "PlainTextPassword_str": "" }))
        }),
        "GetConfig" => server_only(scope).and_then(|_| {
            let c = backend.get_config()?;
            Ok(json!({ "FileName_str": c.file_name, "FileData_bin": b64(&c.data) }))
        }),
        "SetConfig" => server_only(scope).and_then(|_| {
            let data = p.opt_bin("FileData_bin")?.ok_or_else(|| AdminError::invalid_param("FileData_bin", "missing"))?;
            backend.set_config(&data)?;
            Ok(json!({ "FileName_str": "", "FileData_bin": "" }))
        }),
        _ => return Err(RpcError::method_not_found(method)),
    };
    r.map_err(RpcError::from)
}

fn test(p: &Params<'_>) -> R {
    let i = p.opt_u32("IntValue_u32")?.unwrap_or(0);
    Ok(json!({
        "IntValue_u32": i,
        "Int64Value_u64": p.opt_u64("Int64Value_u64")?.unwrap_or(0),
        "StrValue_str": p.opt_str("StrValue_str")?.unwrap_or_else(|| i.to_string()),
        "UniStrValue_utf": p.opt_str("UniStrValue_utf")?.unwrap_or_default(),
    }))
}

fn get_server_info(b: &dyn Backend) -> R {
    let s = b.server_info()?;
    Ok(json!({
        "ServerProductName_str": s.product_name,
        "ServerVersionString_str": s.version_string,
        "ServerBuildInfoString_str": s.build_info,
        "ServerVerInt_u32": s.version_int,
        "ServerBuildInt_u32": s.build_int,
        "ServerHostName_str": s.host_name,
        "ServerType_u32": s.server_type,
        "ServerBuildDate_dt": format_dt(s.build_date_ms),
        "ServerFamilyName_str": s.family_name,
        "OsType_u32": s.os_type,
        "OsServicePack_u32": 0,
        "OsSystemName_str": s.os_system_name,
        "OsProductName_str": s.os_product_name,
        "OsVendorName_str": s.os_vendor_name,
        "OsVersion_str": s.os_version,
        "KernelName_str": s.kernel_name,
        "KernelVersion_str": s.kernel_version,
    }))
}

fn get_server_status(b: &dyn Backend) -> R {
    let s = b.server_status()?;
    let mut m = obj(json!({
        "ServerType_u32": s.server_type,
        "NumTcpConnections_u32": s.num_tcp_connections,
        "NumTcpConnectionsLocal_u32": s.num_tcp_connections,
        "NumTcpConnectionsRemote_u32": 0,
        "NumHubTotal_u32": s.num_hubs,
        "NumHubStandalone_u32": s.num_hubs,
        "NumHubStatic_u32": 0,
        "NumHubDynamic_u32": 0,
        "NumSessionsTotal_u32": s.num_sessions,
        "NumSessionsLocal_u32": s.num_sessions,
        "NumSessionsRemote_u32": 0,
        "NumMacTables_u32": s.num_mac_tables,
        "NumIpTables_u32": s.num_ip_tables,
        "NumUsers_u32": s.num_users,
        "NumGroups_u32": s.num_groups,
        "AssignedBridgeLicenses_u32": s.assigned_bridge_licenses,
        "AssignedClientLicenses_u32": s.assigned_client_licenses,
        "AssignedBridgeLicensesTotal_u32": s.assigned_bridge_licenses,
        "AssignedClientLicensesTotal_u32": s.assigned_client_licenses,
        "CurrentTime_dt": format_dt(s.current_time_ms),
        "CurrentTick_u64": s.current_tick,
        "StartTime_dt": format_dt(s.start_time_ms),
        "DataPlaneLastPacket_dt": format_dt(s.data_plane_last_packet_ms),
        "DataPlaneFaults_u64": s.data_plane_faults,
        "DataPlaneLastFault_str": s.data_plane_last_fault,
        "TotalMemory_u64": s.total_memory,
        "UsedMemory_u64": s.used_memory,
        "FreeMemory_u64": s.free_memory,
        "TotalPhys_u64": s.total_memory,
        "UsedPhys_u64": s.used_memory,
        "FreePhys_u64": s.free_memory,
    }));
    put_traffic(&mut m, "", &s.traffic);
    Ok(Value::Object(m))
}

fn hub_json(h: &HubConfig) -> Value {
    json!({
        "HubName_str": h.name,
        "Online_bool": h.online,
        "MaxSession_u32": h.max_session,
        "NoEnum_bool": h.no_enum,
        "HubType_u32": h.hub_type,
        "AdminPasswordPlainText_str": "",
        "DefaultGateway_u32": ipv4_to_u32(h.default_gateway),
        "DefaultSubnet_u32": ipv4_to_u32(h.default_subnet),
    })
}

/// Lay the fields present in `p` over `h` (shared by CreateHub and SetHub).
fn apply_hub_fields(h: &mut HubConfig, p: &Params<'_>) -> Result<(), AdminError> {
    if let Some(v) = p.opt_bool("Online_bool")? {
        h.online = v;
    }
    if let Some(v) = p.opt_u32("MaxSession_u32")? {
        h.max_session = v;
    }
    if let Some(v) = p.opt_bool("NoEnum_bool")? {
        h.no_enum = v;
    }
    if let Some(v) = p.opt_u32("HubType_u32")? {
        if v > 2 {
            return Err(AdminError::invalid_param(
                "HubType_u32",
                "must be 0, 1 or 2",
            ));
        }
        h.hub_type = v;
    }
    if let Some(v) = p.opt_str("AdminPasswordPlainText_str")? {
        h.admin_password = Some(v).filter(|s| !s.is_empty());
    }
    if let Some(v) = p.opt_u32("DefaultGateway_u32")? {
        h.default_gateway = ipv4_from_u32(v);
    }
    if let Some(v) = p.opt_u32("DefaultSubnet_u32")? {
        h.default_subnet = ipv4_from_u32(v);
    }
    Ok(())
}

fn create_hub(b: &dyn Backend, p: &Params<'_>) -> R {
    let name = p.str("HubName_str")?;
    let mut h = HubConfig::new(name.clone());
    apply_hub_fields(&mut h, p)?;
    b.create_hub(&h)?;
    Ok(hub_json(&b.get_hub(&name).unwrap_or(h)))
}

fn set_hub(b: &dyn Backend, scope: &AdminScope, p: &Params<'_>) -> R {
    let name = hub_of(scope, p, "HubName_str")?;
    let mut h = b.get_hub(&name)?;
    h.admin_password = None;
    apply_hub_fields(&mut h, p)?;
    if matches!(scope, AdminScope::Hub(_))
        && p.opt_u32("HubType_u32")?.is_some_and(|t| t != h.hub_type)
    {
        return Err(deny());
    }
    b.set_hub(&h)?;
    Ok(hub_json(&b.get_hub(&name).unwrap_or(h)))
}

fn enum_hub(b: &dyn Backend, scope: &AdminScope) -> R {
    let list: Vec<Value> = b
        .enum_hubs()?
        .iter()
        .filter(|h| match scope {
            AdminScope::Server => true,
            AdminScope::Hub(own) => h.name.eq_ignore_ascii_case(own),
        })
        .map(|h| {
            let mut m = obj(json!({
                "HubName_str": h.name,
                "Online_bool": h.online,
                "HubType_u32": h.hub_type,
                "NumUsers_u32": h.num_users,
                "NumGroups_u32": h.num_groups,
                "NumSessions_u32": h.num_sessions,
                "NumMacTables_u32": h.num_mac_tables,
                "NumIpTables_u32": h.num_ip_tables,
                "LastCommTime_dt": format_dt(h.last_comm_time_ms),
                "LastLoginTime_dt": format_dt(h.last_login_time_ms),
                "CreatedTime_dt": format_dt(h.created_time_ms),
                "NumLogin_u32": h.num_login,
                "IsTrafficFilled_bool": true,
            }));
            put_traffic(&mut m, "Ex.", &h.traffic);
            Value::Object(m)
        })
        .collect();
    Ok(json!({ "NumHub_u32": list.len(), "HubList": list }))
}

fn user_json(u: &UserInfo) -> Value {
    let mut m = obj(json!({
        "HubName_str": u.hub,
        "Name_str": u.name,
        "GroupName_str": u.group_name,
        "Realname_utf": u.real_name,
        "Note_utf": u.note,
        "CreatedTime_dt": format_dt(u.created_time_ms),
        "UpdatedTime_dt": format_dt(u.updated_time_ms),
        "ExpireTime_dt": format_dt(u.expire_time_ms),
        "AuthType_u32": u.auth_type,
        "Auth_Password_str": "",
        "NumLogin_u32": u.num_login,
        "UsePolicy_bool": false,
    }));
    put_traffic(&mut m, "", &u.traffic);
    Value::Object(m)
}

fn set_user(b: &dyn Backend, scope: &AdminScope, p: &Params<'_>, create: bool) -> R {
    let hub = hub_of(scope, p, "HubName_str")?;
    let name = p.str("Name_str")?;
    let password = p.opt_str("Auth_Password_str")?.unwrap_or_default();
    let auth_type = match p.opt_u32("AuthType_u32")? {
        Some(t) => t,
        None if !password.is_empty() => 1,
        None => 0,
    };
    let auth = match auth_type {
        0 => UserAuth::Anonymous,
        1 => UserAuth::Password(password),
        _ => {
            return Err(AdminError::new(
                code::ERR_NOT_SUPPORTED,
                format!("AuthType_u32 {auth_type} is not supported by Etherhub"),
            ))
        }
    };
    let spec = UserSpec {
        hub: hub.clone(),
        name: name.clone(),
        group_name: p.opt_str("GroupName_str")?.unwrap_or_default(),
        real_name: p.opt_str("Realname_utf")?.unwrap_or_default(),
        note: p.opt_str("Note_utf")?.unwrap_or_default(),
        expire_time_ms: p.opt_dt("ExpireTime_dt")?.unwrap_or(0),
        auth,
    };
    if create {
        b.create_user(&spec)?;
    } else {
        b.set_user(&spec)?;
    }
    Ok(user_json(&b.get_user(&hub, &name)?))
}

fn enum_user(b: &dyn Backend, hub: String) -> R {
    let list: Vec<Value> = b
        .enum_users(&hub)?
        .iter()
        .map(|u| {
            let mut m = obj(json!({
                "Name_str": u.name,
                "GroupName_str": u.group_name,
                "Realname_utf": u.real_name,
                "Note_utf": u.note,
                "AuthType_u32": u.auth_type,
                "NumLogin_u32": u.num_login,
                "LastLoginTime_dt": format_dt(u.last_login_time_ms),
                "DenyAccess_bool": u.deny_access,
                "IsTrafficFilled_bool": true,
                "IsExpiresFilled_bool": true,
                "Expires_dt": format_dt(u.expire_time_ms),
            }));
            put_traffic(&mut m, "Ex.", &u.traffic);
            Value::Object(m)
        })
        .collect();
    Ok(json!({ "HubName_str": hub, "UserList": list }))
}

fn enum_session(b: &dyn Backend, hub: String) -> R {
    let list: Vec<Value> = b
        .enum_sessions(&hub)?
        .iter()
        .map(|s| {
            json!({
                "Name_str": s.name,
                "RemoteSession_bool": false,
                "RemoteHostname_str": "",
                "Username_str": s.username,
                "ClientIP_ip": ip_str(s.client_ip),
                "Hostname_str": s.hostname,
                "MaxNumTcp_u32": s.max_num_tcp,
                "CurrentNumTcp_u32": s.current_num_tcp,
                "PacketSize_u64": s.packet_size,
                "PacketNum_u64": s.packet_num,
                "LinkMode_bool": s.kind == SessionKind::Link,
                "SecureNATMode_bool": s.kind == SessionKind::SecureNat,
                "BridgeMode_bool": s.kind == SessionKind::Bridge,
                "Layer3Mode_bool": s.kind == SessionKind::Layer3,
                "Client_BridgeMode_bool": false,
                "Client_MonitorMode_bool": false,
                "VLanId_u32": s.vlan_id,
                "UniqueId_bin": b64(&s.unique_id),
                "CreatedTime_dt": format_dt(s.created_time_ms),
                "LastCommTime_dt": format_dt(s.last_comm_time_ms),
            })
        })
        .collect();
    Ok(json!({ "HubName_str": hub, "SessionList": list }))
}

fn session_status_json(s: &SessionStatus) -> Value {
    let mut m = obj(json!({
        "HubName_str": s.hub,
        "Name_str": s.name,
        "Username_str": s.username,
        "RealUsername_str": s.real_username,
        "GroupName_str": s.group_name,
        "LinkMode_bool": false,
        "Client_Ip_Address_ip": ip_str(s.client_ip),
        "SessionStatus_ClientHostName_str": s.client_hostname,
        "Active_bool": s.active,
        "Connected_bool": s.connected,
        "SessionStatus_u32": if s.connected { 4 } else { 0 },
        "ServerName_str": "",
        "ServerPort_u32": 0,
        "ServerProductName_str": "",
        "ServerProductVer_u32": 0,
        "ServerProductBuild_u32": 0,
        "StartTime_dt": format_dt(s.start_time_ms),
        "FirstConnectionEstablisiedTime_dt": format_dt(s.first_connection_time_ms),
        "CurrentConnectionEstablishTime_dt": format_dt(s.current_connection_time_ms),
        "NumConnectionsEatablished_u32": s.num_connections_established,
        "HalfConnection_bool": false,
        "QoS_bool": false,
        "MaxTcpConnections_u32": s.max_tcp_connections,
        "NumTcpConnections_u32": s.num_tcp_connections,
        "NumTcpConnectionsUpload_u32": 0,
        "NumTcpConnectionsDownload_u32": 0,
        "UseEncrypt_bool": s.use_encrypt,
        "CipherName_str": s.cipher_name,
        "UseCompress_bool": s.use_compress,
        "IsRUDPSession_bool": false,
        "UnderlayProtocol_str": s.underlay_protocol,
        "IsUdpAccelerationEnabled_bool": false,
        "IsUsingUdpAcceleration_bool": false,
        "SessionName_str": s.name,
        "ConnectionName_str": "",
        "SessionKey_bin": "",
        "TotalSendSize_u64": s.total_send_size,
        "TotalRecvSize_u64": s.total_recv_size,
        "TotalSendSizeReal_u64": s.total_send_size,
        "TotalRecvSizeReal_u64": s.total_recv_size,
        "IsBridgeMode_bool": false,
        "IsMonitorMode_bool": false,
        "VLanId_u32": 0,
        "ClientProductName_str": s.client_product_name,
        "ClientProductVer_u32": 0,
        "ClientProductBuild_u32": 0,
        "ClientOsName_str": s.client_os_name,
        "ClientOsVer_str": "",
        "ClientOsProductId_str": "",
        "ClientHostname_str": s.client_hostname,
        "UniqueId_bin": b64(&s.unique_id),
    }));
    put_traffic(&mut m, "Ex.", &s.traffic);
    Value::Object(m)
}

fn enum_ip_table(b: &dyn Backend, hub: String) -> R {
    let list: Vec<Value> = b
        .enum_ip_table(&hub)?
        .iter()
        .map(|e| {
            json!({
                "Key_u32": e.key,
                "SessionName_str": e.session_name,
                "IpAddress_ip": ip_str(e.ip),
                "DhcpAllocated_bool": e.dhcp_allocated,
                "CreatedTime_dt": format_dt(e.created_time_ms),
                "UpdatedTime_dt": format_dt(e.updated_time_ms),
                "RemoteItem_bool": false,
                "RemoteHostname_str": "",
            })
        })
        .collect();
    Ok(json!({ "HubName_str": hub, "IpTable": list }))
}

fn enum_mac_table(b: &dyn Backend, hub: String) -> R {
    let list: Vec<Value> = b
        .enum_mac_table(&hub)?
        .iter()
        .map(|e| {
            json!({
                "Key_u32": e.key,
                "SessionName_str": e.session_name,
                "MacAddress_bin": b64(&e.mac),
                "CreatedTime_dt": format_dt(e.created_time_ms),
                "UpdatedTime_dt": format_dt(e.updated_time_ms),
                "RemoteItem_bool": false,
                "RemoteHostname_str": "",
                "VlanId_u32": e.vlan_id,
            })
        })
        .collect();
    Ok(json!({ "HubName_str": hub, "MacTable": list }))
}

fn nat_option_json(hub: &str, o: &SecureNatOption) -> Value {
    json!({
        "RpcHubName_str": hub,
        "MacAddress_bin": b64(&o.mac),
        "Ip_ip": o.ip.to_string(),
        "Mask_ip": o.mask.to_string(),
        "UseNat_bool": o.use_nat,
        "Mtu_u32": o.mtu,
        "NatTcpTimeout_u32": o.nat_tcp_timeout,
        "NatUdpTimeout_u32": o.nat_udp_timeout,
        "UseDhcp_bool": o.use_dhcp,
        "DhcpLeaseIPStart_ip": o.dhcp_lease_start.to_string(),
        "DhcpLeaseIPEnd_ip": o.dhcp_lease_end.to_string(),
        "DhcpSubnetMask_ip": o.dhcp_subnet_mask.to_string(),
        "DhcpExpireTimeSpan_u32": o.dhcp_expire_secs,
        "DhcpGatewayAddress_ip": o.dhcp_gateway.to_string(),
        "DhcpDnsServerAddress_ip": o.dhcp_dns.to_string(),
        "DhcpDnsServerAddress2_ip": o.dhcp_dns2.to_string(),
        "DhcpDomainName_str": o.dhcp_domain_name,
        "SaveLog_bool": o.save_log,
        "ApplyDhcpPushRoutes_bool": o.apply_dhcp_push_routes,
        "DhcpPushRoutes_str": o.dhcp_push_routes,
    })
}

/// SetSecureNATOption: fields absent from the request keep their current value (vpncmd's
/// NatSet/DhcpSet read the option first and send it whole anyway).
fn set_nat_option(b: &dyn Backend, scope: &AdminScope, p: &Params<'_>) -> R {
    let hub = hub_of(scope, p, "RpcHubName_str")?;
    let mut o = b.get_secure_nat_option(&hub)?;
    if let Some(mac) = p.opt_bin("MacAddress_bin")? {
        if !mac.is_empty() {
            o.mac = mac
                .try_into()
                .map_err(|_| AdminError::invalid_param("MacAddress_bin", "must be 6 bytes"))?;
        }
    }
    let ip = |name: &str, slot: &mut Ipv4Addr| -> Result<(), AdminError> {
        if let Some(v) = p.opt_ipv4(name)? {
            *slot = v;
        }
        Ok(())
    };
    ip("Ip_ip", &mut o.ip)?;
    ip("Mask_ip", &mut o.mask)?;
    ip("DhcpLeaseIPStart_ip", &mut o.dhcp_lease_start)?;
    ip("DhcpLeaseIPEnd_ip", &mut o.dhcp_lease_end)?;
    ip("DhcpSubnetMask_ip", &mut o.dhcp_subnet_mask)?;
    ip("DhcpGatewayAddress_ip", &mut o.dhcp_gateway)?;
    ip("DhcpDnsServerAddress_ip", &mut o.dhcp_dns)?;
    ip("DhcpDnsServerAddress2_ip", &mut o.dhcp_dns2)?;
    if let Some(v) = p.opt_bool("UseNat_bool")? {
        o.use_nat = v;
    }
    if let Some(v) = p.opt_u32("Mtu_u32")? {
        if !(64..=1500).contains(&v) {
            return Err(AdminError::invalid_param("Mtu_u32", "must be 64..1500"));
        }
        o.mtu = v;
    }
    if let Some(v) = p.opt_u32("NatTcpTimeout_u32")? {
        o.nat_tcp_timeout = v;
    }
    if let Some(v) = p.opt_u32("NatUdpTimeout_u32")? {
        o.nat_udp_timeout = v;
    }
    if let Some(v) = p.opt_bool("UseDhcp_bool")? {
        o.use_dhcp = v;
    }
    if let Some(v) = p.opt_u32("DhcpExpireTimeSpan_u32")? {
        o.dhcp_expire_secs = v;
    }
    if let Some(v) = p.opt_str("DhcpDomainName_str")? {
        o.dhcp_domain_name = v;
    }
    if let Some(v) = p.opt_bool("SaveLog_bool")? {
        o.save_log = v;
    }
    if let Some(v) = p.opt_bool("ApplyDhcpPushRoutes_bool")? {
        o.apply_dhcp_push_routes = v;
    }
    if let Some(v) = p.opt_str("DhcpPushRoutes_str")? {
        o.dhcp_push_routes = v;
    }
    b.set_secure_nat_option(&hub, &o)?;
    Ok(nat_option_json(&hub, &o))
}

fn str_array(p: &Params<'_>, name: &str) -> Result<Vec<String>, AdminError> {
    p.array(name)
        .into_iter()
        .map(|v| match v {
            Value::String(s) => Ok(s.clone()),
            _ => Err(AdminError::invalid_param(
                name,
                "expected an array of strings",
            )),
        })
        .collect()
}

/// AddWgk: SoftEther's three arrays, plus Etherhub's `Address_str` (empty: the next free one)
/// and an empty `Key_str` entry meaning "generate the pair". `AllTraffic_bool` makes the returned
/// client configs route everything into the tunnel.
fn add_wgk(b: &dyn Backend, p: &Params<'_>) -> R {
    let keys = str_array(p, "Key_str")?;
    let hubs = str_array(p, "Hub_str")?;
    let users = str_array(p, "User_str")?;
    let addrs = str_array(p, "Address_str")?;
    let all = p.opt_bool("AllTraffic_bool")?.unwrap_or(false);
    if keys.is_empty() {
        return Err(AdminError::invalid_param(
            "Key_str",
            "missing (give an empty string to have the server generate a key pair)",
        ));
    }
    let mut list = Vec::with_capacity(keys.len());
    for (i, key) in keys.into_iter().enumerate() {
        let address = match addrs.get(i).map(|a| a.trim()).filter(|a| !a.is_empty()) {
            None => None,
            Some(a) => Some(a.parse::<Ipv4Addr>().map_err(|_| {
                AdminError::invalid_param("Address_str", &format!("{a:?} is not an IPv4 address"))
            })?),
        };
        list.push(WgKeyRequest {
            key: key.trim().to_string(),
            hub: hubs.get(i).cloned().unwrap_or_default(),
            user: users.get(i).cloned().unwrap_or_default(),
            address,
        });
    }
    Ok(wgk_added_json(&b.add_wg_keys_auto(&list, all)?))
}

fn opt_ip_str(a: Option<Ipv4Addr>) -> String {
    a.map(|a| a.to_string()).unwrap_or_default()
}

/// Registered keys with their addresses and client configs, as parallel arrays.
fn wgk_added_json(keys: &[WgKeyAdded]) -> Value {
    json!({
        "Key_str": keys.iter().map(|k| k.key.clone()).collect::<Vec<_>>(),
        "Hub_str": keys.iter().map(|k| k.hub.clone()).collect::<Vec<_>>(),
        "User_str": keys.iter().map(|k| k.user.clone()).collect::<Vec<_>>(),
        "Address_str": keys.iter().map(|k| opt_ip_str(k.address)).collect::<Vec<_>>(),
        "Config_str": keys.iter().map(|k| k.config.clone()).collect::<Vec<_>>(),
    })
}

/// EnumWgk: SoftEther's three arrays plus Etherhub's columns.
fn wgk_status_json(keys: &[WgKeyStatus]) -> Value {
    if keys.is_empty() {
        return json!({});
    }
    let col = |f: &dyn Fn(&WgKeyStatus) -> Value| keys.iter().map(f).collect::<Vec<_>>();
    json!({
        "Key_str": col(&|k| json!(k.key)),
        "Hub_str": col(&|k| json!(k.hub)),
        "User_str": col(&|k| json!(k.user)),
        "Address_str": col(&|k| json!(opt_ip_str(k.address))),
        "OwnPresharedKey_bool": col(&|k| json!(k.own_psk)),
        "SessionName_str": col(&|k| json!(k.session.clone().unwrap_or_default())),
        "LastHandshake_dt": col(&|k| json!(if k.last_handshake_ms == 0 { String::new() } else { format_dt(k.last_handshake_ms) })),
        "RecvBytes_u64": col(&|k| json!(k.recv_bytes)),
        "SendBytes_u64": col(&|k| json!(k.send_bytes)),
        "SpoofedDropped_u64": col(&|k| json!(k.spoofed_dropped)),
    })
}

fn delete_wgk(b: &dyn Backend, p: &Params<'_>) -> R {
    let keys = str_array(p, "Key_str")?;
    if keys.is_empty() {
        return Err(AdminError::invalid_param("Key_str", "missing"));
    }
    b.delete_wg_keys(&keys)?;
    Ok(json!({ "Key_str": keys }))
}

fn set_ports_udp(b: &dyn Backend, p: &Params<'_>) -> R {
    let mut ports = Vec::new();
    for v in p.array("Ports_u32") {
        let n = match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        match n.and_then(|n| u16::try_from(n).ok()).filter(|n| *n != 0) {
            Some(port) => ports.push(port),
            None => {
                return Err(AdminError::invalid_param(
                    "Ports_u32",
                    "each port must be 1..65535",
                ))
            }
        }
    }
    b.set_udp_ports(&ports)?;
    Ok(json!({ "Ports_u32": ports }))
}
