mod common;

use common::Fake;
use etherhub_admin::*;
use serde_json::json;

fn server() -> AdminScope {
    AdminScope::Server
}

#[test]
fn create_and_enum_hub_use_softether_field_names() {
    let f = Fake::new();
    let r = dispatch(&f, &server(), "CreateHub", &json!({"HubName_str": "SECURENAT", "AdminPasswordPlainText_str": "x", "Online_bool": true})).unwrap();
    assert_eq!(r["HubName_str"], "SECURENAT");
    assert_eq!(r["Online_bool"], true);
    assert_eq!(r["AdminPasswordPlainText_str"], "", "password never echoed");
    let r = dispatch(&f, &server(), "EnumHub", &json!({})).unwrap();
    assert_eq!(r["NumHub_u32"], 3);
    let first = &r["HubList"][0];
    for field in [
        "HubName_str",
        "Online_bool",
        "HubType_u32",
        "NumUsers_u32",
        "LastLoginTime_dt",
        "Ex.Recv.UnicastBytes_u64",
        "IsTrafficFilled_bool",
    ] {
        assert!(first.get(field).is_some(), "missing {field}");
    }
    let e = dispatch(
        &f,
        &server(),
        "CreateHub",
        &json!({"HubName_str": "securenat"}),
    )
    .unwrap_err();
    assert_eq!(e.code, 57);
}

#[test]
fn hub_admin_scope_is_enforced() {
    let f = Fake::new();
    let hub = AdminScope::Hub("DEFAULT".into());
    for m in [
        "CreateHub",
        "DeleteHub",
        "AddWgk",
        "EnumWgk",
        "SetPortsUDP",
        "SetServerPassword",
        "GetConfig",
        "SetConfig",
        "GetWgServerInfo",
    ] {
        let e = dispatch(&f, &hub, m, &json!({"HubName_str": "DEFAULT"})).unwrap_err();
        assert_eq!(e.code, 52, "{m} must be server-only");
    }
    let e = dispatch(&f, &hub, "EnumUser", &json!({"HubName_str": "OTHER"})).unwrap_err();
    assert_eq!(e.code, 52);
    // Own hub works, by name (any case) or implicitly.
    dispatch(&f, &hub, "EnumUser", &json!({"HubName_str": "default"})).unwrap();
    dispatch(&f, &hub, "EnumUser", &json!({})).unwrap();
    let r = dispatch(&f, &hub, "EnumHub", &json!({})).unwrap();
    assert_eq!(r["NumHub_u32"], 1);
    assert_eq!(r["HubList"][0]["HubName_str"], "DEFAULT");
    // As in SoftEther, some server-wide reads are open to hub admins (vpncmd calls the first
    // three on connect).
    for m in [
        "GetServerInfo",
        "GetCaps",
        "GetServerCert",
        "GetServerStatus",
        "GetPortsUDP",
        "EnumListener",
    ] {
        dispatch(&f, &hub, m, &json!({})).unwrap();
    }
}

#[test]
fn unknown_method_and_bad_params() {
    let f = Fake::new();
    let e = dispatch(&f, &server(), "NoSuchMethod", &json!({})).unwrap_err();
    assert_eq!(e.code, -32601);
    let e = dispatch(&f, &server(), "CreateHub", &json!({})).unwrap_err();
    assert_eq!(e.code, 38);
    assert!(e.message.contains("HubName_str"), "{}", e.message);
    let e = dispatch(&f, &server(), "CreateListener", &json!({"Port_u32": 70000})).unwrap_err();
    assert!(e.message.contains("Port_u32"));
    let e = dispatch(
        &f,
        &server(),
        "SetHubOnline",
        &json!({"HubName_str": "DEFAULT", "Online_bool": [1]}),
    )
    .unwrap_err();
    assert!(e.message.contains("Online_bool"));
    let e = dispatch(&f, &server(), "GetHub", &json!({"HubName_str": "NOPE"})).unwrap_err();
    assert_eq!(e.code, 8);
    assert!(e.message.starts_with("Error code 8: "));
}

#[test]
fn users_round_trip() {
    let f = Fake::new();
    let r = dispatch(&f, &server(), "CreateUser", &json!({"HubName_str": "DEFAULT", "Name_str": "meta", "AuthType_u32": 1, "Auth_Password_str": "secret"})).unwrap();
    assert_eq!(r["Name_str"], "meta");
    assert_eq!(r["AuthType_u32"], 1);
    assert_eq!(r["Auth_Password_str"], "");
    let r = dispatch(
        &f,
        &server(),
        "EnumUser",
        &json!({"HubName_str": "DEFAULT"}),
    )
    .unwrap();
    assert_eq!(r["UserList"][0]["Name_str"], "meta");
    let e = dispatch(
        &f,
        &server(),
        "GetUser",
        &json!({"HubName_str": "DEFAULT", "Name_str": "ghost"}),
    )
    .unwrap_err();
    assert_eq!(e.code, 29);
    let e = dispatch(
        &f,
        &server(),
        "CreateUser",
        &json!({"HubName_str": "DEFAULT", "Name_str": "c", "AuthType_u32": 2}),
    )
    .unwrap_err();
    assert_eq!(e.code, 33);
    dispatch(
        &f,
        &server(),
        "DeleteUser",
        &json!({"HubName_str": "DEFAULT", "Name_str": "meta"}),
    )
    .unwrap();
}

#[test]
fn wgk_uses_parallel_arrays() {
    let f = Fake::new();
    let r = dispatch(&f, &server(), "EnumWgk", &json!({})).unwrap();
    assert_eq!(r, json!({}));
    dispatch(
        &f,
        &server(),
        "AddWgk",
        &json!({"Key_str": ["K1="], "Hub_str": ["DEFAULT"], "User_str": ["meta"]}),
    )
    .unwrap();
    let e = dispatch(
        &f,
        &server(),
        "AddWgk",
        &json!({"Key_str": ["K1="], "Hub_str": ["DEFAULT"], "User_str": ["meta"]}),
    )
    .unwrap_err();
    assert_eq!(e.code, 112);
    let r = dispatch(&f, &server(), "EnumWgk", &json!({})).unwrap();
    // SoftEther's three arrays, then Etherhub's own columns beside them
    for (field, want) in [
        ("Key_str", json!(["K1="])),
        ("Hub_str", json!(["DEFAULT"])),
        ("User_str", json!(["meta"])),
        ("Address_str", json!([""])),
        ("SessionName_str", json!([""])),
        ("RecvBytes_u64", json!([0])),
    ] {
        assert_eq!(r[field], want, "{field} in {r}");
    }
    // a backend without key generation says so instead of registering an empty key
    let e = dispatch(
        &f,
        &server(),
        "AddWgk",
        &json!({"Key_str": [""], "Hub_str": ["DEFAULT"], "User_str": ["meta"]}),
    )
    .unwrap_err();
    assert_eq!(e.code, 33);
    let e = dispatch(
        &f,
        &server(),
        "AddWgk",
        &json!({"Key_str": ["K2="], "Hub_str": ["DEFAULT"], "User_str": ["meta"], "Address_str": ["300.1.1.1"]}),
    )
    .unwrap_err();
    assert_eq!(e.code, 38);
    assert!(e.message.contains("Address_str"), "{}", e.message);
    dispatch(&f, &server(), "DeleteWgk", &json!({"Key_str": ["K1="]})).unwrap();
    let e = dispatch(&f, &server(), "DeleteWgk", &json!({"Key_str": ["K1="]})).unwrap_err();
    assert_eq!(e.code, 29);
}

#[test]
fn static_network_through_sethub() {
    let f = Fake::new();
    let gw = wire::ipv4_to_u32("192.168.30.1".parse().unwrap());
    let mask = wire::ipv4_to_u32("255.255.255.0".parse().unwrap());
    dispatch(
        &f,
        &server(),
        "SetHub",
        &json!({"HubName_str": "DEFAULT", "DefaultGateway_u32": gw, "DefaultSubnet_u32": mask}),
    )
    .unwrap();
    let r = dispatch(&f, &server(), "GetHub", &json!({"HubName_str": "DEFAULT"})).unwrap();
    assert_eq!(r["DefaultGateway_u32"], gw);
    assert_eq!(r["DefaultSubnet_u32"], mask);
    assert_eq!(r["Online_bool"], true, "fields not sent keep their value");
}

#[test]
fn ports_tables_nat_and_wg_info() {
    let f = Fake::new();
    assert_eq!(
        dispatch(&f, &server(), "GetPortsUDP", &json!({})).unwrap(),
        json!({"Ports_u32": [443, 992, 1194, 5555]})
    );
    dispatch(
        &f,
        &server(),
        "SetPortsUDP",
        &json!({"Ports_u32": [443, 51820]}),
    )
    .unwrap();
    assert!(dispatch(&f, &server(), "SetPortsUDP", &json!({"Ports_u32": [0]})).is_err());
    let r = dispatch(&f, &server(), "EnumListener", &json!({})).unwrap();
    assert_eq!(
        r["ListenerList"][0],
        json!({"Ports_u32": 443, "Enables_bool": true, "Errors_bool": false})
    );
    let r = dispatch(
        &f,
        &server(),
        "EnumMacTable",
        &json!({"HubName_str": "DEFAULT"}),
    )
    .unwrap();
    assert_eq!(r["MacTable"][0]["MacAddress_bin"], "XngGtvBl");
    let r = dispatch(
        &f,
        &server(),
        "EnumIpTable",
        &json!({"HubName_str": "DEFAULT"}),
    )
    .unwrap();
    assert_eq!(r["IpTable"][0]["IpAddress_ip"], "192.168.30.10");
    let r = dispatch(
        &f,
        &server(),
        "EnumSession",
        &json!({"HubName_str": "DEFAULT"}),
    )
    .unwrap();
    assert_eq!(r["SessionList"][0]["SecureNATMode_bool"], true);
    let r = dispatch(
        &f,
        &server(),
        "GetSecureNATOption",
        &json!({"RpcHubName_str": "DEFAULT"}),
    )
    .unwrap();
    assert_eq!(r["DhcpLeaseIPStart_ip"], "192.168.30.10");
    let e = dispatch(
        &f,
        &server(),
        "SetSecureNATOption",
        &json!({"RpcHubName_str": "DEFAULT", "Ip_ip": "not-an-ip"}),
    )
    .unwrap_err();
    assert!(e.message.contains("Ip_ip"));
    let r = dispatch(&f, &server(), "GetWgServerInfo", &json!({})).unwrap();
    assert_eq!(r["PublicKey_str"], "PUB=");
    assert_eq!(r["Ports_u32"][1], 51820);
    assert_eq!(r["CookieRepliesSent_u64"], 7);
    assert_eq!(r["HandshakesOk_u64"], 0);
    let r = dispatch(&f, &server(), "GetConfig", &json!({})).unwrap();
    assert_eq!(r["FileName_str"], "vpn_server.config");
    let r = dispatch(&f, &server(), "GetServerInfo", &json!({})).unwrap();
    assert_eq!(r["ServerBuildDate_dt"], "2023-11-14T22:13:20.000");
}
