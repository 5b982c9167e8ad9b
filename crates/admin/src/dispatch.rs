//! The admin method table: each of SoftEther's method names with who may call it and the typed
//! handler behind it, declared once ([`METHODS`]). [`dispatch`] enforces the access rule, reads
//! the request message and writes the reply.

use std::net::Ipv4Addr;

use serde_json::Value;

use etherhub_pack::Pack;
use etherhub_softether::error_pack;

use crate::backend::{AdminResult, Backend};
use crate::error::{code, AdminError, RpcError};
use crate::packjson::{json_to_pack, pack_to_json};
use crate::types::*;
use crate::wire::{decode, encode, overlay};

/// Who may call a method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Any administrator, of the server or of a hub.
    Anyone,
    /// The server administrator only.
    Server,
    /// The server administrator, or the administrator of the hub this field names; a hub
    /// administrator who leaves it out means their own hub.
    Hub(&'static str),
}

type Handler = fn(&dyn Backend, &AdminScope, Value) -> Result<Value, AdminError>;

/// One admin method.
pub struct Method {
    /// SoftEther's name (plus Etherhub's own `GetWgServerInfo`, `GetWgkConfig`,
    /// `SetWgPublicHost`).
    pub name: &'static str,
    pub access: Access,
    run: Handler,
}

/// Reads the request as `Req`, runs `f`, writes its reply.
fn call<Req: serde::de::DeserializeOwned, Resp: serde::Serialize>(
    params: Value,
    f: impl FnOnce(Req) -> AdminResult<Resp>,
) -> Result<Value, AdminError> {
    Ok(encode(&f(decode(params)?)?))
}

/// A call on a named object of a hub (a user, a group): the name must be there.
fn on_object<Resp: serde::Serialize>(
    params: Value,
    f: impl FnOnce(&HubObject) -> AdminResult<Resp>,
) -> Result<Value, AdminError> {
    call(params, |o: HubObject| {
        need("Name_str", &o.name)?;
        f(&o)
    })
}

/// Every method, in SoftEther's order of areas.
pub static METHODS: &[Method] = &[
    Method {
        name: "Test",
        access: Access::Anyone,
        run: |_, _, p| call(p, |t: TestValues| Ok(test(t))),
    },
    Method {
        name: "GetServerInfo",
        access: Access::Anyone,
        run: |b, _, p| call(p, |_: Empty| b.server_info()),
    },
    Method {
        name: "GetServerStatus",
        access: Access::Anyone,
        run: |b, _, p| call(p, |_: Empty| b.server_status()),
    },
    Method {
        name: "CreateHub",
        access: Access::Server,
        run: |b, _, p| call(p, |h: Hub| create_hub(b, h)),
    },
    Method {
        name: "DeleteHub",
        access: Access::Server,
        run: |b, _, p| {
            call(p, |h: HubName| {
                need("HubName_str", &h.hub)?;
                b.delete_hub(&h.hub).map(|_| h)
            })
        },
    },
    Method {
        name: "GetCaps",
        access: Access::Anyone,
        run: |_, _, p| call(p, |_: Empty| Ok(caps())),
    },
    Method {
        name: "GetServerCert",
        access: Access::Anyone,
        run: |b, _, p| {
            call(p, |_: Empty| {
                Ok(ServerCert {
                    cert: Bin(b.server_cert()?),
                    flag1: 0,
                })
            })
        },
    },
    Method {
        name: "GetHubStatus",
        access: Access::Hub("HubName_str"),
        run: |b, _, p| call(p, |h: HubName| b.hub_status(&h.hub)),
    },
    Method {
        name: "EnumHub",
        access: Access::Anyone,
        run: |b, s, p| call(p, |_: Empty| enum_hub(b, s)),
    },
    Method {
        name: "GetHub",
        access: Access::Hub("HubName_str"),
        run: |b, _, p| call(p, |h: HubName| b.get_hub(&h.hub)),
    },
    Method {
        name: "SetHub",
        access: Access::Hub("HubName_str"),
        run: set_hub,
    },
    Method {
        name: "SetHubOnline",
        access: Access::Hub("HubName_str"),
        run: |b, _, p| {
            call(p, |h: HubOnline| {
                b.set_hub_online(&h.hub, h.online).map(|_| h)
            })
        },
    },
    Method {
        name: "CreateUser",
        access: Access::Hub("HubName_str"),
        run: |b, _, p| {
            let said_auth = p.get("AuthType_u32").is_some();
            call(p, |u: User| set_user(b, u, true, said_auth))
        },
    },
    Method {
        name: "SetUser",
        access: Access::Hub("HubName_str"),
        run: |b, _, p| {
            let said_auth = p.get("AuthType_u32").is_some();
            call(p, |u: User| set_user(b, u, false, said_auth))
        },
    },
    Method {
        name: "GetUser",
        access: Access::Hub("HubName_str"),
        run: |b, _, p| on_object(p, |o| b.get_user(&o.hub, &o.name)),
    },
    Method {
        name: "DeleteUser",
        access: Access::Hub("HubName_str"),
        run: |b, _, p| on_object(p, |o| b.delete_user(&o.hub, &o.name).map(|_| o.clone())),
    },
    Method {
        name: "CreateGroup",
        access: Access::Hub("HubName_str"),
        run: |b, _, p| call(p, |g: Group| put_group(b, g, true)),
    },
    Method {
        name: "SetGroup",
        access: Access::Hub("HubName_str"),
        run: |b, _, p| call(p, |g: Group| put_group(b, g, false)),
    },
    Method {
        name: "GetGroup",
        access: Access::Hub("HubName_str"),
        run: |b, _, p| on_object(p, |o| b.get_group(&o.hub, &o.name)),
    },
    Method {
        name: "DeleteGroup",
        access: Access::Hub("HubName_str"),
        run: |b, _, p| on_object(p, |o| b.delete_group(&o.hub, &o.name).map(|_| o.clone())),
    },
    Method {
        name: "EnumGroup",
        access: Access::Hub("HubName_str"),
        run: |b, _, p| {
            call(p, |h: HubName| {
                Ok(GroupList {
                    groups: b.enum_groups(&h.hub)?,
                    hub: h.hub,
                })
            })
        },
    },
    Method {
        name: "AddAccess",
        access: Access::Hub("HubName_str"),
        run: |b, _, p| {
            call(p, |a: AddAccess| {
                let access = a.single.first().cloned().unwrap_or(a.access);
                let mut rules = current_rules(b, &a.hub)?;
                rules.push(access.to_rule()?);
                store_rules(b, &a.hub, &rules)
            })
        },
    },
    Method {
        name: "DeleteAccess",
        access: Access::Hub("HubName_str"),
        run: |b, _, p| {
            call(p, |d: DeleteAccess| {
                let list = b.access_list(&d.hub)?;
                // below 32768 an Id (its place), from there a UniqueId, as in SoftEther
                let at = list.iter().enumerate().position(|(i, (r, _))| {
                    if d.id < 32768 {
                        i as u32 + 1 == d.id
                    } else {
                        crate::wire::unique_id(r) == d.id
                    }
                });
                let Some(at) = at else {
                    return Err(AdminError::new(
                        code::ERR_OBJECT_NOT_FOUND,
                        format!("no access rule {} on hub {}", d.id, d.hub),
                    ));
                };
                let mut rules: Vec<_> = list.into_iter().map(|(r, _)| r).collect();
                rules.remove(at);
                b.set_access_list(&d.hub, &rules)?;
                Ok(d)
            })
        },
    },
    Method {
        name: "EnumAccess",
        access: Access::Hub("HubName_str"),
        run: |b, _, p| call(p, |h: HubName| enum_access(b, &h.hub)),
    },
    Method {
        name: "SetAccessList",
        access: Access::Hub("HubName_str"),
        run: |b, _, p| {
            call(p, |l: AccessList| {
                let rules = l
                    .list
                    .iter()
                    .map(AccessEntry::to_rule)
                    .collect::<Result<Vec<_>, _>>()?;
                store_rules(b, &l.hub, &rules)
            })
        },
    },
    Method {
        name: "EnumUser",
        access: Access::Hub("HubName_str"),
        run: |b, _, p| {
            call(p, |h: HubName| {
                Ok(UserList {
                    users: b.enum_users(&h.hub)?,
                    hub: h.hub,
                })
            })
        },
    },
    Method {
        name: "EnumSession",
        access: Access::Hub("HubName_str"),
        run: |b, _, p| {
            call(p, |h: HubName| {
                Ok(SessionList {
                    sessions: b.enum_sessions(&h.hub)?,
                    hub: h.hub,
                })
            })
        },
    },
    Method {
        name: "GetSessionStatus",
        access: Access::Hub("HubName_str"),
        run: |b, _, p| {
            call(p, |o: HubObject| {
                need("Name_str", &o.name)?;
                b.session_status(&o.hub, &o.name)
            })
        },
    },
    Method {
        name: "DeleteSession",
        access: Access::Hub("HubName_str"),
        run: |b, _, p| {
            call(p, |o: HubObject| {
                need("Name_str", &o.name)?;
                b.delete_session(&o.hub, &o.name).map(|_| o)
            })
        },
    },
    Method {
        name: "EnumIpTable",
        access: Access::Hub("HubName_str"),
        run: |b, _, p| {
            call(p, |h: HubName| {
                let mut entries = b.enum_ip_table(&h.hub)?;
                for e in &mut entries {
                    e.ip_shown = e.ip;
                }
                Ok(IpTable {
                    entries,
                    hub: h.hub,
                })
            })
        },
    },
    Method {
        name: "EnumMacTable",
        access: Access::Hub("HubName_str"),
        run: |b, _, p| {
            call(p, |h: HubName| {
                Ok(MacTable {
                    entries: b.enum_mac_table(&h.hub)?,
                    hub: h.hub,
                })
            })
        },
    },
    Method {
        name: "EnableSecureNAT",
        access: Access::Hub("HubName_str"),
        run: |b, _, p| call(p, |h: HubName| b.enable_secure_nat(&h.hub).map(|_| h)),
    },
    Method {
        name: "DisableSecureNAT",
        access: Access::Hub("HubName_str"),
        run: |b, _, p| call(p, |h: HubName| b.disable_secure_nat(&h.hub).map(|_| h)),
    },
    Method {
        name: "GetSecureNATOption",
        access: Access::Hub("RpcHubName_str"),
        run: |b, _, p| {
            call(p, |h: RpcHubName| {
                Ok(SecureNatOption {
                    hub: h.hub.clone(),
                    ..b.get_secure_nat_option(&h.hub)?
                })
            })
        },
    },
    Method {
        name: "SetSecureNATOption",
        access: Access::Hub("RpcHubName_str"),
        run: set_nat_option,
    },
    Method {
        name: "GetSecureNATStatus",
        access: Access::Hub("HubName_str"),
        run: |b, _, p| {
            call(p, |h: HubName| {
                Ok(SecureNatStatus {
                    hub: h.hub.clone(),
                    ..b.secure_nat_status(&h.hub)?
                })
            })
        },
    },
    Method {
        name: "EnumNAT",
        access: Access::Hub("HubName_str"),
        run: |b, _, p| {
            call(p, |h: HubName| {
                let entries = b.enum_nat(&h.hub)?;
                Ok(NatTable {
                    num_item: entries.len() as u32,
                    entries,
                    hub: h.hub,
                })
            })
        },
    },
    Method {
        name: "EnumDHCP",
        access: Access::Hub("HubName_str"),
        run: |b, _, p| {
            call(p, |h: HubName| {
                let entries = b.enum_dhcp(&h.hub)?;
                Ok(DhcpTable {
                    num_item: entries.len() as u32,
                    entries,
                    hub: h.hub,
                })
            })
        },
    },
    Method {
        name: "AddWgk",
        access: Access::Server,
        run: |b, _, p| call(p, |r: WgkAdd| add_wgk(b, r)),
    },
    Method {
        name: "DeleteWgk",
        access: Access::Server,
        run: |b, _, p| {
            call(p, |k: WgkKeys| {
                if k.keys.is_empty() {
                    return Err(AdminError::invalid_param("Key_str", "missing"));
                }
                b.delete_wg_keys(&k.keys).map(|_| k)
            })
        },
    },
    Method {
        name: "EnumWgk",
        access: Access::Server,
        run: |b, _, p| call(p, |_: Empty| Ok(wgk_list(b.enum_wg_keys()?))),
    },
    Method {
        name: "GetWgkConfig",
        access: Access::Server,
        run: |b, _, p| {
            call(p, |r: WgkConfigRequest| {
                need("Key_str", &r.key)?;
                Ok(wgk_configs(
                    vec![b.wg_client_config(&r.key, r.all_traffic)?],
                ))
            })
        },
    },
    Method {
        name: "SetWgPublicHost",
        access: Access::Server,
        run: |b, _, p| {
            call(p, |h: WgPublicHost| {
                Ok(WgPublicHost {
                    host: b.set_wg_public_host(&h.host)?,
                })
            })
        },
    },
    Method {
        name: "GetWgServerInfo",
        access: Access::Server,
        run: |b, _, p| call(p, |_: Empty| b.wg_server_info()),
    },
    Method {
        name: "MakeOpenVpnConfigFile",
        access: Access::Server,
        run: |b, _, p| {
            call(p, |_: ReadLogFile| {
                Ok(ReadLogFile {
                    buffer: Bin(b.openvpn_config_zip()?),
                    ..ReadLogFile::default()
                })
            })
        },
    },
    Method {
        name: "GetIPsecServices",
        access: Access::Server,
        run: |b, _, p| call(p, |_: IpsecServices| Ok(ipsec_out(b.ipsec_services()?))),
    },
    Method {
        name: "SetIPsecServices",
        access: Access::Server,
        run: |b, _, p| {
            call(p, |r: IpsecServices| {
                b.set_ipsec_services(&etherhub_config::ipsec::IpsecServices {
                    l2tp_ipsec: r.l2tp_ipsec,
                    l2tp_raw: r.l2tp_raw,
                    etherip_ipsec: r.etherip_ipsec,
                    secret: r.secret,
                    default_hub: r.default_hub,
                })?;
                Ok(ipsec_out(b.ipsec_services()?))
            })
        },
    },
    Method {
        name: "GetProtoOptions",
        access: Access::Anyone,
        run: |b, _, p| {
            call(p, |r: ProtoOptions| {
                let (name, options) = b.proto_options(&r.protocol)?;
                Ok(ProtoOptions::of(name, options))
            })
        },
    },
    Method {
        name: "SetProtoOptions",
        access: Access::Server,
        run: |b, _, p| {
            call(p, |r: ProtoOptions| {
                let options = r.options()?;
                b.set_proto_options(&r.protocol, &options)?;
                let (name, options) = b.proto_options(&r.protocol)?;
                Ok(ProtoOptions::of(name, options))
            })
        },
    },
    Method {
        name: "GetPortsUDP",
        access: Access::Anyone,
        run: |b, _, p| {
            call(p, |_: Empty| {
                Ok(PortsUdp {
                    ports: b.get_udp_ports()?.into_iter().map(u32::from).collect(),
                })
            })
        },
    },
    Method {
        name: "SetPortsUDP",
        access: Access::Server,
        run: |b, _, p| {
            call(p, |r: PortsUdp| {
                let ports: Vec<u16> = r
                    .ports
                    .iter()
                    .map(|&n| u16::try_from(n).ok().filter(|n| *n != 0))
                    .collect::<Option<_>>()
                    .ok_or_else(|| {
                        AdminError::invalid_param("Ports_u32", "each port must be 1..65535")
                    })?;
                b.set_udp_ports(&ports).map(|_| r)
            })
        },
    },
    Method {
        name: "CreateListener",
        access: Access::Server,
        run: |b, _, p| {
            call(p, |l: Listener| {
                b.create_listener(port(l.port)?, l.enable).map(|_| l)
            })
        },
    },
    Method {
        name: "DeleteListener",
        access: Access::Server,
        run: |b, _, p| {
            call(p, |l: Listener| {
                b.delete_listener(port(l.port)?)
                    .map(|_| Listener { enable: false, ..l })
            })
        },
    },
    Method {
        name: "EnableListener",
        access: Access::Server,
        run: |b, _, p| {
            call(p, |l: Listener| {
                b.enable_listener(port(l.port)?, l.enable).map(|_| l)
            })
        },
    },
    Method {
        name: "EnumListener",
        access: Access::Anyone,
        run: |b, _, p| {
            call(p, |_: Empty| {
                Ok(ListenerList {
                    listeners: b.enum_listeners()?,
                })
            })
        },
    },
    Method {
        name: "SetServerPassword",
        access: Access::Server,
        run: |b, _, p| {
            call(p, |r: ServerPassword| {
                hash_len("HashedPassword_bin", &r.hashed, 20)?;
                // SoftEther echoes the password back; Etherhub does not
                b.set_server_password(&r).map(|_| ServerPassword::default())
            })
        },
    },
    Method {
        name: "GetConfig",
        access: Access::Server,
        run: |b, _, p| call(p, |_: Empty| b.get_config()),
    },
    Method {
        name: "SetConfig",
        access: Access::Server,
        run: |b, _, p| {
            call(p, |c: ConfigFile| {
                if c.data.0.is_empty() {
                    return Err(AdminError::invalid_param("FileData_bin", "missing"));
                }
                b.set_config(&c.data.0).map(|_| ConfigFile::default())
            })
        },
    },
];

/// The method of this name (SoftEther's names compare without regard to case).
pub fn method(name: &str) -> Option<&'static Method> {
    METHODS.iter().find(|m| m.name.eq_ignore_ascii_case(name))
}

/// What Etherhub can do, in SoftEther's capability names (`GetCaps`). vpncmd reads these to
/// decide what to offer; a capability left out counts as "no".
pub fn caps() -> Caps {
    Caps::new(&[
        ("i_max_packet_size", 1600, "Maximum packet size"),
        (
            "i_max_hubs",
            0,
            "Maximum number of Virtual Hubs (0: no limit)",
        ),
        (
            "i_max_sessions",
            0,
            "Maximum number of sessions (0: no limit)",
        ),
        (
            "i_max_users_per_hub",
            0,
            "Maximum number of users per Virtual Hub (0: no limit)",
        ),
        ("b_standalone", 1, "Standalone server"),
        ("b_support_securenat", 1, "SecureNAT"),
        (
            "b_suppport_push_route",
            0,
            "DHCP static routes (option 121)",
        ),
        (
            "b_suppport_push_route_config",
            0,
            "DHCP static routes settable",
        ),
        (
            "b_support_config_rw",
            1,
            "Configuration file read and write",
        ),
        (
            "b_support_hide_hub",
            1,
            "Hide a Virtual Hub from enumeration",
        ),
        ("b_is_softether", 1, "Speaks SoftEther's admin protocol"),
        ("b_support_wireguard", 1, "WireGuard"),
        (
            "b_support_ex_acl",
            1,
            "Access rules with delay, jitter, loss and redirect",
        ),
        ("b_vpn3", 1, "VPN 3.0 protocol family"),
        ("b_vpn4", 1, "VPN 4.0 protocol family"),
    ])
}

fn deny() -> AdminError {
    AdminError::new(
        code::ERR_NOT_ENOUGH_RIGHT,
        "This operation requires VPN Server administrator privileges.",
    )
}

fn need(field: &str, value: &str) -> Result<(), AdminError> {
    if value.is_empty() {
        return Err(AdminError::invalid_param(field, "missing"));
    }
    Ok(())
}

fn port(n: u32) -> Result<u16, AdminError> {
    u16::try_from(n)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| AdminError::invalid_param("Port_u32", "port must be 1..65535"))
}

/// Applies a method's access rule: the server admin may call anything; a hub admin only
/// `Anyone` methods and `Hub` methods of their own hub, whose field is filled in for them.
fn admit(access: Access, scope: &AdminScope, params: &mut Value) -> Result<(), AdminError> {
    if params.is_null() {
        *params = Value::Object(Default::default());
    }
    let (field, own) = match (access, scope) {
        (Access::Anyone, _) | (Access::Server, AdminScope::Server) => return Ok(()),
        (Access::Server, AdminScope::Hub(_)) => return Err(deny()),
        (Access::Hub(field), AdminScope::Server) => {
            let named = params.get(field).and_then(Value::as_str).unwrap_or("");
            return need(field, named);
        }
        (Access::Hub(field), AdminScope::Hub(own)) => (field, own),
    };
    match params
        .get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        Some(h) if !h.eq_ignore_ascii_case(own) => return Err(deny()),
        _ => {}
    }
    if let Value::Object(m) = params {
        m.insert(field.to_string(), Value::String(own.clone()));
    }
    Ok(())
}

/// Handle one JSON-RPC call for an authenticated caller. Returns the `result` object or the
/// `error` object. Unknown methods give JSON-RPC's `-32601`; bad parameters give SoftEther's
/// `ERR_INVALID_PARAMETER` with the field named; backend errors keep their SoftEther code.
pub fn dispatch(
    backend: &dyn Backend,
    scope: &AdminScope,
    name: &str,
    params: &Value,
) -> Result<Value, RpcError> {
    let Some(m) = method(name) else {
        return Err(RpcError::method_not_found(name));
    };
    let mut params = params.clone();
    admit(m.access, scope, &mut params)?;
    (m.run)(backend, scope, params).map_err(RpcError::from)
}

/// Handle one call of SoftEther's binary RPC: the method named by `function_name`, its
/// parameters read from the PACK as JSON-RPC's, the reply written back as a PACK, or
/// `{"error": code}` (33, "not supported", for a method Etherhub does not have).
pub fn dispatch_pack(backend: &dyn Backend, scope: &AdminScope, call: &Pack) -> Pack {
    let name = call.str("function_name").unwrap_or("");
    let Some(m) = method(name) else {
        return error_pack(code::ERR_NOT_SUPPORTED);
    };
    let mut params = pack_to_json(call);
    if let Value::Object(o) = &mut params {
        o.retain(|k, _| !k.starts_with("function_name_"));
    }
    match dispatch(backend, scope, m.name, &params) {
        Ok(reply) => json_to_pack(&reply),
        Err(e) => error_pack(u32::try_from(e.code).unwrap_or(code::ERR_NOT_SUPPORTED)),
    }
}

fn test(t: TestValues) -> TestValues {
    TestValues {
        str_value: if t.str_value.is_empty() {
            t.int_value.to_string()
        } else {
            t.str_value.clone()
        },
        ..t
    }
}

fn create_hub(b: &dyn Backend, h: Hub) -> AdminResult<Hub> {
    need("HubName_str", &h.name)?;
    hash_len("HashedPassword_bin", &h.hashed_password, 20)?;
    hash_len("SecurePassword_bin", &h.secure_password, 20)?;
    if h.hub_type > 2 {
        return Err(AdminError::invalid_param(
            "HubType_u32",
            "must be 0, 1 or 2",
        ));
    }
    b.create_hub(&h)?;
    let mut created = b.get_hub(&h.name).unwrap_or(h);
    created.admin_password.clear();
    Ok(created)
}

/// SetHub: what the request leaves out keeps its value; a hub admin may not change the type.
fn set_hub(b: &dyn Backend, scope: &AdminScope, params: Value) -> Result<Value, AdminError> {
    let name = params["HubName_str"].as_str().unwrap_or("").to_string();
    let current = b.get_hub(&name)?;
    for field in ["HashedPassword_bin", "SecurePassword_bin"] {
        if let Some(v) = params.get(field).filter(|v| !v.is_null()) {
            let bin: Bin = decode(serde_json::json!({ "b": v }))
                .map(|w: std::collections::HashMap<String, Bin>| w["b"].clone())?;
            hash_len(field, &bin, 20)?;
        }
    }
    let mut h: Hub = overlay(
        &Hub {
            admin_password: String::new(),
            ..current.clone()
        },
        &params,
    )?;
    if h.hub_type > 2 {
        return Err(AdminError::invalid_param(
            "HubType_u32",
            "must be 0, 1 or 2",
        ));
    }
    if matches!(scope, AdminScope::Hub(_)) && h.hub_type != current.hub_type {
        return Err(deny());
    }
    h.name = current.name;
    b.set_hub(&h)?;
    let mut now = b.get_hub(&name).unwrap_or(h);
    now.admin_password.clear();
    Ok(encode(&now))
}

fn enum_hub(b: &dyn Backend, scope: &AdminScope) -> AdminResult<HubList> {
    let hubs: Vec<HubItem> = b
        .enum_hubs()?
        .into_iter()
        .filter(|h| match scope {
            AdminScope::Server => true,
            AdminScope::Hub(own) => h.name.eq_ignore_ascii_case(own),
        })
        .map(|h| HubItem {
            is_traffic_filled: true,
            ..h
        })
        .collect();
    Ok(HubList {
        num_hub: hubs.len() as u32,
        hubs,
    })
}

/// A hash field is absent, or of its size.
fn hash_len(field: &str, bin: &Bin, len: usize) -> Result<(), AdminError> {
    if !bin.is_empty() && bin.0.len() != len {
        return Err(AdminError::invalid_param(
            field,
            &format!("must be {len} bytes"),
        ));
    }
    Ok(())
}

/// CreateUser and SetUser. Anonymous authentication (`AuthType_u32` 0) only when the request
/// says so: a JSON client that leaves the field out keeps the user's (a new user gets
/// password authentication), rather than opening the account to anyone.
fn set_user(b: &dyn Backend, mut u: User, create: bool, said_auth: bool) -> AdminResult<User> {
    need("Name_str", &u.name)?;
    hash_len("HashedKey_bin", &u.hashed_key, 20)?;
    hash_len("NtLmSecureHash_bin", &u.nt_hash, 16)?;
    if !said_auth || (u.auth_type == 0 && !u.password.is_empty()) {
        u.auth_type = match create || !u.password.is_empty() {
            true => 1,
            false => b.get_user(&u.hub, &u.name)?.auth_type,
        };
    }
    if u.auth_type > 1 {
        return Err(AdminError::new(
            code::ERR_NOT_SUPPORTED,
            format!("AuthType_u32 {} is not supported by Etherhub", u.auth_type),
        ));
    }
    check_policy(&u.policy)?;
    if create {
        b.create_user(&u)?;
    } else {
        b.set_user(&u)?;
    }
    let mut now = b.get_user(&u.hub, &u.name)?;
    now.password.clear();
    Ok(now)
}

/// SoftEther's limit on a hub's access rules.
const MAX_ACCESS_LISTS: usize = 32768;

fn current_rules(b: &dyn Backend, hub: &str) -> AdminResult<Vec<etherhub_config::AccessRule>> {
    Ok(b.access_list(hub)?.into_iter().map(|(r, _)| r).collect())
}

/// Saves a hub's whole access list (within SoftEther's limit) and answers with it.
fn store_rules(
    b: &dyn Backend,
    hub: &str,
    rules: &[etherhub_config::AccessRule],
) -> AdminResult<AccessList> {
    if rules.len() > MAX_ACCESS_LISTS {
        return Err(AdminError::new(
            code::ERR_TOO_MANY_ACCESS_LIST,
            format!("a hub holds {MAX_ACCESS_LISTS} access rules at most"),
        ));
    }
    b.set_access_list(hub, rules)?;
    enum_access(b, hub)
}

fn enum_access(b: &dyn Backend, hub: &str) -> AdminResult<AccessList> {
    let list = b
        .access_list(hub)?
        .iter()
        .enumerate()
        .map(|(i, (r, matches))| AccessEntry::of_rule(r, i as u32 + 1, *matches))
        .collect();
    Ok(AccessList {
        hub: hub.to_string(),
        list,
    })
}

/// Policy numbers within SoftEther's ranges (its server takes any; a bad one would only
/// surprise later).
fn check_policy(p: &PolicyFields) -> Result<(), AdminError> {
    let Some(p) = &p.policy else { return Ok(()) };
    for (id, item) in etherhub_config::policy::ITEMS.iter().enumerate() {
        if let Err(e) = etherhub_config::Policy::check(id, p.0[id]) {
            return Err(AdminError::invalid_param(
                &format!("policy:{}_u32", item.name),
                &e.to_string(),
            ));
        }
    }
    Ok(())
}

fn put_group(b: &dyn Backend, g: Group, create: bool) -> AdminResult<Group> {
    need("Name_str", &g.name)?;
    check_policy(&g.policy)?;
    b.put_group(&g, create)?;
    b.get_group(&g.hub, &g.name)
}

/// SetSecureNATOption: what the request leaves out keeps its value (vpncmd's NatSet and
/// DhcpSet read the option first and send it whole anyway).
fn set_nat_option(b: &dyn Backend, _: &AdminScope, params: Value) -> Result<Value, AdminError> {
    let hub = params["RpcHubName_str"].as_str().unwrap_or("").to_string();
    let current = b.get_secure_nat_option(&hub)?;
    let o: SecureNatOption = overlay(&current, &params)?;
    if o.mac.0.len() != 6 {
        return Err(AdminError::invalid_param(
            "MacAddress_bin",
            "must be 6 bytes",
        ));
    }
    if !(64..=1500).contains(&o.mtu) {
        return Err(AdminError::invalid_param("Mtu_u32", "must be 64..1500"));
    }
    b.set_secure_nat_option(&hub, &o)?;
    Ok(encode(&SecureNatOption { hub, ..o }))
}

fn opt_ip(a: Option<Ipv4Addr>) -> String {
    a.map(|a| a.to_string()).unwrap_or_default()
}

fn ipsec_out(s: etherhub_config::ipsec::IpsecServices) -> IpsecServices {
    IpsecServices {
        l2tp_raw: s.l2tp_raw,
        l2tp_ipsec: s.l2tp_ipsec,
        etherip_ipsec: s.etherip_ipsec,
        secret: s.secret,
        default_hub: s.default_hub,
    }
}

/// AddWgk: SoftEther's three arrays, plus Etherhub's `Address_str` and an empty `Key_str` entry
/// meaning "generate the pair".
fn add_wgk(b: &dyn Backend, r: WgkAdd) -> AdminResult<WgkConfigs> {
    if r.keys.is_empty() {
        return Err(AdminError::invalid_param(
            "Key_str",
            "missing (give an empty string to have the server generate a key pair)",
        ));
    }
    let mut list = Vec::with_capacity(r.keys.len());
    for (i, key) in r.keys.iter().enumerate() {
        let address = match r
            .addresses
            .get(i)
            .map(|a| a.trim())
            .filter(|a| !a.is_empty())
        {
            None => None,
            Some(a) => Some(a.parse::<Ipv4Addr>().map_err(|_| {
                AdminError::invalid_param("Address_str", &format!("{a:?} is not an IPv4 address"))
            })?),
        };
        list.push(WgKeyRequest {
            key: key.trim().to_string(),
            hub: r.hubs.get(i).cloned().unwrap_or_default(),
            user: r.users.get(i).cloned().unwrap_or_default(),
            address,
        });
    }
    Ok(wgk_configs(b.add_wg_keys(&list, r.all_traffic)?))
}

fn wgk_configs(keys: Vec<WgKeyAdded>) -> WgkConfigs {
    let mut out = WgkConfigs::default();
    for k in keys {
        out.keys.push(k.key);
        out.hubs.push(k.hub);
        out.users.push(k.user);
        out.addresses.push(opt_ip(k.address));
        out.configs.push(k.config);
    }
    out
}

fn wgk_list(keys: Vec<WgKeyStatus>) -> WgkList {
    let mut out = WgkList::default();
    for k in keys {
        out.keys.push(k.key);
        out.hubs.push(k.hub);
        out.users.push(k.user);
        out.addresses.push(opt_ip(k.address));
        out.own_psk.push(k.own_psk);
        out.sessions.push(k.session.unwrap_or_default());
        out.last_handshakes.push(k.last_handshake);
        out.recv_bytes.push(k.recv_bytes);
        out.send_bytes.push(k.send_bytes);
        out.spoofed_dropped.push(k.spoofed_dropped);
    }
    out
}
