//! Etherhub's admin messages against what stock vpncmd and vpnserver exchanged
//! (fixtures/softether-5.01.9674/pack): vpncmd's calls read as Etherhub's requests, and
//! Etherhub's replies carry SoftEther's elements with SoftEther's types (vpncmd reads an element
//! of another type as absent).

use std::collections::BTreeMap;
use std::path::PathBuf;

use etherhub_admin::packjson::{json_to_pack, pack_to_json};
use etherhub_admin::wire::{decode, encode};
use etherhub_admin::*;
use etherhub_config::hash::{hash_hub_secure_password, hash_user_password, sha0};
use etherhub_pack::{Kind, Pack};
use etherhub_softether::Login;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/softether-5.01.9674/pack")
}

fn load(name: &str) -> Pack {
    Pack::parse(&std::fs::read(dir().join(name)).unwrap()).unwrap()
}

/// Each captured file name (without `.call.pack` / `.reply.pack`) with its function.
fn captured() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir())
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            let stem = name.strip_suffix(".call.pack")?.to_string();
            let function = stem.rsplit('-').next().unwrap().to_string();
            Some((stem, function))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn vpncmd_logins_prove_the_password_with_sha0_and_the_servers_random() {
    for (conn, password) in [("00", ""), ("01", "capture-pw"), ("02", "hubpw")] {
        let random: [u8; 20] = load(&format!("{conn}-hello.pack"))
            .data("random")
            .unwrap()
            .try_into()
            .unwrap();
        let login = Login::from_pack(&load(&format!("{conn}-login.pack"))).unwrap();
        assert!(login.is_admin());
        let proof = Proof::Challenge {
            response: login.secure_password.unwrap(),
            random,
        };
        assert!(
            proof.matches(&sha0(password.as_bytes())),
            "connection {conn}"
        );
        assert_eq!(proof.is_empty(), password.is_empty());
        assert!(!proof.matches(&sha0(b"not it")));
    }
    let hub_login = Login::from_pack(&load("02-login.pack")).unwrap();
    assert_eq!(hub_login.hub.as_deref(), Some("CAPTURE"));
}

#[test]
fn vpncmd_calls_read_as_etherhubs_requests() {
    let req = |file: &str| pack_to_json(&load(file));
    let hub: Hub = decode(req("01-06-CreateHub.call.pack")).unwrap();
    assert_eq!(hub.name, "CAPTURE");
    assert!(hub.admin_password.is_empty(), "vpncmd sends hashes only");
    assert_eq!(hub.hashed_password.0, sha0(b"hubpw"));
    assert_eq!(hub.secure_password.0, hash_hub_secure_password("hubpw"));
    assert!(hub.online);

    let user: User = decode(req("01-11-SetUser.call.pack")).unwrap();
    assert_eq!(
        (user.hub.as_str(), user.name.as_str()),
        ("CAPTURE", "alice")
    );
    assert_eq!(user.auth_type, 1);
    assert_eq!(user.hashed_key.0, hash_user_password("alice", "alicepw"));
    assert_eq!(user.nt_hash.0.len(), 16);
    assert_eq!(user.real_name, "Alice");

    let pw: ServerPassword = decode(req("00-03-SetServerPassword.call.pack")).unwrap();
    assert_eq!(pw.hashed.0, sha0(b"capture-pw"));
    assert!(pw.password.is_empty());

    let nat: RpcHubName = decode(req("01-20-GetSecureNATOption.call.pack")).unwrap();
    assert_eq!(nat.hub, "CAPTURE");
    let o: HubObject = decode(req("01-10-GetUser.call.pack")).unwrap();
    assert_eq!(o.name, "alice");

    // every captured call of a method Etherhub has reads as its request message
    for (stem, function) in captured() {
        let Some(m) = method(&function) else { continue };
        let call = load(&format!("{stem}.call.pack"));
        let backend = common::Fake::new();
        // the reply may be an error (the fake has no hub CAPTURE); what matters is that the
        // request was read: a bad parameter would be 38
        let reply = dispatch_pack(&backend, &AdminScope::Server, &call);
        assert_ne!(
            reply.int("error"),
            Some(code::ERR_INVALID_PARAMETER),
            "{stem} ({})",
            m.name
        );
    }
}

mod common;

/// Etherhub's reply to each method with one row in every table.
fn our_reply(function: &str) -> Option<serde_json::Value> {
    Some(match function {
        "GetServerInfo" => encode(&ServerInfo::default()),
        "GetServerStatus" => encode(&ServerStatus::default()),
        "GetCaps" => encode(&caps()),
        "GetServerCert" => encode(&ServerCert {
            cert: Bin(vec![0x30]),
            flag1: 0,
        }),
        "CreateHub" | "GetHub" => encode(&Hub::default()),
        "EnumHub" => encode(&HubList {
            hubs: vec![HubItem::default()],
            num_hub: 1,
        }),
        "GetHubStatus" => encode(&HubStatus::default()),
        "CreateUser" | "SetUser" | "GetUser" => encode(&User::default()),
        "DeleteUser" => encode(&HubObject::default()),
        "EnumUser" => encode(&UserList {
            users: vec![UserItem::default()],
            ..UserList::default()
        }),
        "EnumSession" => encode(&SessionList {
            sessions: vec![SessionItem::default()],
            ..SessionList::default()
        }),
        "EnumIpTable" => encode(&IpTable {
            entries: vec![IpItem::default()],
            ..IpTable::default()
        }),
        "EnumMacTable" => encode(&MacTable {
            entries: vec![MacItem::default()],
            ..MacTable::default()
        }),
        "EnableSecureNAT" | "DeleteHub" => encode(&HubName::default()),
        "GetSecureNATStatus" => encode(&SecureNatStatus::default()),
        "GetSecureNATOption" => encode(&SecureNatOption::default()),
        "EnumNAT" => encode(&NatTable {
            entries: vec![NatItem::default()],
            num_item: 1,
            ..NatTable::default()
        }),
        "EnumDHCP" => encode(&DhcpTable {
            entries: vec![DhcpItem::default()],
            num_item: 1,
            ..DhcpTable::default()
        }),
        "GetPortsUDP" => encode(&PortsUdp {
            ports: vec![443, 992],
        }),
        "EnumListener" => encode(&ListenerList {
            listeners: vec![ListenerItem::default()],
        }),
        "GetConfig" => encode(&ConfigFile {
            file_name: "vpn_server.config".into(),
            data: Bin(b"x".to_vec()),
        }),
        _ => return None,
    })
}

/// Elements of SoftEther's replies Etherhub leaves out, and why.
fn left_out(function: &str, element: &str) -> bool {
    let why: &[&str] = match function {
        // SoftEther echoes the hashes and password back; Etherhub never sends them
        "CreateHub" | "GetHub" => &["HashedPassword", "SecurePassword"],
        "CreateUser" | "SetUser" | "GetUser" => &["HashedKey", "NtLmSecureHash"],
        "SetServerPassword" => &["HashedPassword", "PlainTextPassword"],
        // the private key: Etherhub does not hand it out over the admin API
        "GetServerCert" => &["Key"],
        // capabilities Etherhub does not have: absent reads as "no"
        "GetCaps" => &["*"],
        _ => &[],
    };
    why.contains(&"*") || why.contains(&element) || element == "pencore"
}

#[test]
fn etherhubs_replies_carry_softethers_elements_with_softethers_types() {
    let mut missing: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut compared = 0;
    for (stem, function) in captured() {
        let Some(ours) = our_reply(&function) else {
            continue;
        };
        let theirs = load(&format!("{stem}.reply.pack"));
        if theirs.int("error").unwrap_or(0) != 0 {
            continue;
        }
        let ours = json_to_pack(&ours);
        for e in theirs.elements() {
            match ours.get(&e.name) {
                Some(o) => {
                    assert_eq!(
                        o.values.kind(),
                        e.values.kind(),
                        "{function}: element {} is {:?} in SoftEther, {:?} in Etherhub",
                        e.name,
                        e.values.kind(),
                        o.values.kind()
                    );
                    compared += 1;
                }
                None if left_out(&function, &e.name) => {}
                None => missing
                    .entry(function.clone())
                    .or_default()
                    .push(e.name.clone()),
            }
        }
    }
    assert!(compared > 200, "only {compared} elements compared");
    assert!(
        missing.is_empty(),
        "SoftEther's replies have elements Etherhub's lack: {missing:#?}"
    );
}

#[test]
fn caps_are_single_ints_as_vpncmd_reads_them() {
    let p = json_to_pack(&encode(&caps()));
    let e = p.get("caps_b_support_securenat").unwrap();
    assert_eq!(e.values.kind(), Kind::Int);
    assert_eq!(p.int("caps_b_support_securenat"), Some(1));
    assert_eq!(p.count("CapsName"), caps().list.len());
    // SoftEther's own reply has the same layout
    let theirs = load("01-01-GetCaps.reply.pack");
    assert_eq!(theirs.int("caps_b_support_securenat"), Some(1));
    assert_eq!(theirs.count("CapsName"), theirs.count("CapsValue"));
}
