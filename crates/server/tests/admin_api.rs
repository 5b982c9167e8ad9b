//! The admin API over real HTTPS: curl (a client nobody here wrote) and `etherhub cmd`, against
//! the real binary on loopback ports the test picks.

use std::path::Path;
use std::process::{Command, Output, Stdio};

mod common;

use common::loopback::LoopbackServer;
use common::ETHERHUB;

fn free_tcp_port() -> u16 {
    common::loopback::free_port()
}

fn start_server() -> LoopbackServer {
    LoopbackServer::start()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn curl(port: u16, hub: &str, password: &str, body: &str) -> serde_json::Value {
    let out = Command::new("curl")
        .args(["-sk", "--max-time", "10", "-X", "POST"])
        .arg(format!("https://127.0.0.1:{port}/api/"))
        .arg("-H")
        .arg(format!("X-VPNADMIN-HUBNAME: {hub}"))
        .arg("-H")
        .arg(format!("X-VPNADMIN-PASSWORD: {password}"))
        .args([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body,
        ])
        .output()
        .expect("curl is installed by scripts/test");
    let t = String::from_utf8_lossy(&out.stdout).into_owned();
    serde_json::from_str(&t).unwrap_or_else(|e| panic!("not JSON ({e}): {t:?} {}", text(&out)))
}

fn rpc(method: &str, params: serde_json::Value) -> String {
    serde_json::json!({"jsonrpc": "2.0", "id": "1", "method": method, "params": params}).to_string()
}

fn cmd(port: u16, extra: &[&str], command: &[&str]) -> Output {
    let mut c = Command::new(ETHERHUB);
    c.args(["cmd", &format!("127.0.0.1:{port}"), "/SERVER"])
        .args(extra)
        .arg("/CMD")
        .args(command)
        .stdin(Stdio::null());
    c.output().unwrap()
}

fn has_curl() -> bool {
    let ok = Command::new("curl").arg("--version").output().is_ok();
    assert!(ok, "curl is required (scripts/test installs it)");
    ok
}

#[test]
fn curl_speaks_json_rpc_to_the_api() {
    has_curl();
    let s = start_server();
    let r = curl(
        s.port,
        "",
        "",
        &rpc("Test", serde_json::json!({"IntValue_u32": 7})),
    );
    assert!(r.get("error").is_none(), "{r}");
    let r = curl(s.port, "", "", &rpc("EnumHub", serde_json::json!({})));
    let hubs = r["result"]["HubList"].as_array().expect("HubList array");
    assert!(hubs.iter().any(|h| h["HubName_str"] == "DEFAULT"), "{r}");

    let r = curl(
        s.port,
        "",
        "",
        &rpc(
            "CreateHub",
            serde_json::json!({"HubName_str": "TEST", "AdminPasswordPlainText_str": "hubpw", "Online_bool": true, "HubType_u32": 0}),
        ),
    );
    assert!(r.get("error").is_none(), "{r}");
    // persisted before the call returned
    let saved = std::fs::read_to_string(s.config_path()).unwrap();
    let cfg = etherhub_config::Config::parse(&saved).unwrap();
    assert!(cfg.hub_names().contains(&"TEST".to_string()));

    // hub admin with the hub password sees its hub only, and not server-wide methods
    let r = curl(
        s.port,
        "TEST",
        "hubpw",
        &rpc("EnumHub", serde_json::json!({})),
    );
    let hubs = r["result"]["HubList"].as_array().expect("HubList");
    assert_eq!(hubs.len(), 1, "{r}");
    let r = curl(
        s.port,
        "TEST",
        "hubpw",
        &rpc("CreateHub", serde_json::json!({"HubName_str": "X"})),
    );
    assert!(r.get("error").is_some(), "a hub admin created a hub: {r}");

    // unknown method and wrong password: JSON-RPC errors
    let r = curl(s.port, "", "", &rpc("NoSuchMethod", serde_json::json!({})));
    assert_eq!(r["error"]["code"], -32601, "{r}");
    let r = curl(s.port, "TEST", "wrong", &rpc("Test", serde_json::json!({})));
    assert!(r.get("error").is_some(), "{r}");
    let r2 = curl(
        s.port,
        "NOHUB",
        "wrong",
        &rpc("Test", serde_json::json!({})),
    );
    assert_eq!(
        r["error"], r2["error"],
        "the error hints which part was wrong"
    );
    assert!(s.log().contains("127.0.0.1"), "no security event logged");
    assert!(!s.log().contains("wrong"), "a password reached the log");
}

#[test]
fn server_password_then_wrong_and_right_passwords() {
    let s = start_server();
    let out = cmd(s.port, &[], &["ServerPasswordSet", "s3cret"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = cmd(s.port, &[], &["HubList"]);
    assert!(
        !out.status.success(),
        "empty password still accepted: {}",
        text(&out)
    );
    let out = cmd(s.port, &["/PASSWORD:nope"], &["HubList"]);
    assert!(!out.status.success());
    assert!(!text(&out).contains("panicked"), "{}", text(&out));
    let out = cmd(s.port, &["/PASSWORD:s3cret"], &["HubList"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("DEFAULT"), "{}", text(&out));
}

#[test]
fn cli_commands_and_bad_input() {
    let s = start_server();
    let p = s.port;
    let out = cmd(p, &[], &["HubCreate", "SALES", "/PASSWORD:x"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = cmd(
        p,
        &["/ADMINHUB:SALES"],
        &[
            "UserCreate",
            "alice",
            "/GROUP:none",
            "/REALNAME:Alice",
            "/NOTE:none",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = cmd(p, &["/ADMINHUB:SALES"], &["UserList"]);
    assert!(text(&out).contains("alice"), "{}", text(&out));
    let out = cmd(
        p,
        &["/ADMINHUB:SALES"],
        &[
            "SetStaticNetwork",
            "/GATEWAY:10.8.0.1",
            "/SUBNET:255.255.255.0",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = cmd(p, &["/ADMINHUB:SALES"], &["OptionsGet"]);
    assert!(text(&out).contains("10.8.0.1"), "{}", text(&out));
    let out = cmd(p, &[], &["PortsUDPGet"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = cmd(p, &[], &["WgServerInfo"]);
    let info = text(&out);
    assert!(out.status.success(), "{info}");
    let cfg =
        etherhub_config::Config::parse(&std::fs::read_to_string(s.config_path()).unwrap()).unwrap();
    let wg = cfg.wireguard().unwrap();
    assert!(info.contains(&wg.preshared_key), "{info}");
    let private = etherhub_wireguard::key_from_base64(&wg.private_key).unwrap();
    let public = etherhub_wireguard::key_to_base64(&etherhub_wireguard::public_key_of(&private));
    assert!(info.contains(&public), "{info}");
    assert!(!info.contains(&wg.private_key), "the private key was shown");

    // bad input: each a clear message and a non-zero exit, never a panic
    for (args, needle) in [
        (vec!["NoSuchCommand"], "NoSuchCommand"),
        (vec!["HubCreate"], "HubCreate"),
        (
            vec!["WgkAdd", "not-a-key", "/HUB:SALES", "/USER:alice"],
            "not-a-key",
        ),
        (
            vec![
                "WgkAdd",
                "lbr0r2ruA6ROH4Q4V6fXOYqu3jAc5oG3QGuRpkDhHGI=",
                "/HUB:NOPE",
                "/USER:alice",
            ],
            "Error",
        ),
        (vec!["PortsUDPSet", "notaport"], "notaport"),
    ] {
        let out = cmd(p, &[], &args);
        let t = text(&out);
        assert!(!out.status.success(), "{args:?} succeeded: {t}");
        assert!(t.contains(needle), "{args:?}: {t}");
        assert!(!t.contains("panicked"), "{args:?}: {t}");
    }
    // unreachable server
    let closed = free_tcp_port();
    let out = cmd(closed, &[], &["HubList"]);
    assert!(!out.status.success());
    assert!(!text(&out).contains("panicked"), "{}", text(&out));
}

#[test]
fn interactive_prompt_through_a_pty() {
    let s = start_server();
    // `script` gives the shell a real terminal, as a person at a prompt would have
    if Command::new("script").arg("--version").output().is_err() {
        panic!("script (util-linux) is required");
    }
    let input = "Hub DEFAULT\nSessionList\nexit\n";
    let out = common::type_lines(
        Command::new("script")
            .args(["-qec"])
            .arg(format!("{ETHERHUB} cmd 127.0.0.1:{} /SERVER", s.port))
            .arg("/dev/null"),
        input,
    );
    assert!(out.contains("VPN Server>"), "{out}");
    assert!(out.contains("VPN Server/DEFAULT>"), "{out}");
    assert!(out.contains("SID-SECURENAT-1"), "{out}");
}

#[test]
fn a_config_that_fails_to_parse_stops_the_server_and_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path: &Path = &dir.path().join("vpn_server.config");
    let broken = "declare root\r\n{\r\n\tuint ConfigRevision x\r\n}\r\n";
    std::fs::write(path, broken).unwrap();
    let out = Command::new(ETHERHUB)
        .args(["server", "--config"])
        .arg(path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("line 3"), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(path).unwrap(), broken);
}
