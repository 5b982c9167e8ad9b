//! PACKs recorded between stock vpncmd and stock vpnserver (fixtures/softether-5.01.9674/pack,
//! see fixtures/README.md): every one parses, and writes back to the same bytes.

use std::path::PathBuf;

use etherhub_pack::{Kind, Pack, Values};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/softether-5.01.9674/pack")
}

fn load(name: &str) -> Pack {
    let bytes = std::fs::read(dir().join(name)).unwrap();
    Pack::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_captured_pack_parses_and_writes_back_byte_for_byte() {
    let mut n = 0;
    for entry in std::fs::read_dir(dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("pack") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let p = Pack::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(p.to_bytes(), bytes, "{}", path.display());
        n += 1;
    }
    assert!(n >= 90, "only {n} captures");
}

#[test]
fn the_hello_and_the_login_say_what_softether_says() {
    let hello = load("01-hello.pack");
    assert!(hello
        .str("hello")
        .unwrap()
        .starts_with("SoftEther VPN Server"));
    assert_eq!(hello.int("version"), Some(501));
    assert_eq!(hello.int("build"), Some(9674));
    assert_eq!(hello.data("random").map(<[u8]>::len), Some(20));

    let login = load("01-login.pack");
    assert_eq!(login.str("method"), Some("admin"));
    assert_eq!(
        login.str("client_str"),
        Some("SoftEther VPN Command-Line Admin Tool")
    );
    assert_eq!(login.data("secure_password").map(<[u8]>::len), Some(20));
    assert_eq!(login.bool("accept_empty_password"), Some(true));
    assert!(login.get("hubname").is_none(), "a server admin login");
    assert_eq!(load("02-login.pack").str("hubname"), Some("CAPTURE"));

    // a successful login is answered with no error; the wrong password with 12 (access denied)
    assert_eq!(load("01-login-reply.pack").int("error").unwrap_or(0), 0);
    assert_eq!(load("03-login-reply.pack").int("error"), Some(12));
}

#[test]
fn calls_name_their_function_and_tables_are_parallel_arrays() {
    let call = load("01-07-EnumHub.call.pack");
    assert_eq!(call.str("function_name"), Some("EnumHub"));
    let hubs = load("01-07-EnumHub.reply.pack");
    let names: Vec<&str> = (0..hubs.count("HubName"))
        .filter_map(|i| hubs.str_at("HubName", i))
        .collect();
    assert!(
        names.contains(&"CAPTURE") && names.contains(&"DEFAULT"),
        "{names:?}"
    );
    assert_eq!(hubs.count("Online"), names.len());
    assert!(
        hubs.get("NumHub").is_none(),
        "rows are counted by the key element"
    );

    // an IP is an int with three companions; times are int64
    let nat = load("01-20-GetSecureNATOption.reply.pack");
    assert_eq!(nat.ip("Ip"), Some("192.168.30.1".parse().unwrap()));
    assert_eq!(
        nat.get("Ip@ipv6_bool").map(|e| e.values.kind()),
        Some(Kind::Int)
    );
    assert_eq!(nat.data("MacAddress").map(<[u8]>::len), Some(6));
    let user = load("01-12-GetUser.reply.pack");
    assert!(matches!(
        user.get("CreatedTime").map(|e| &e.values),
        Some(Values::Int64(_))
    ));
    assert_eq!(user.unistr("Realname"), Some("Alice"));

    // a failed call is {"error": code} alone
    let err = load("03-login-reply.pack");
    assert!(err
        .elements()
        .iter()
        .all(|e| e.name == "error" || e.name == "pencore"));
}
