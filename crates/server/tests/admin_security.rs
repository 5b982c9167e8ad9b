//! Admin security against the real binary in a namespace: no administration from another
//! machine while the admin password is empty (a client namespace over a veth), brute-force
//! lockout per address, and no secret (WireGuard private key, preshared key, password hashes,
//! plain passwords, the TLS key) in the server's log or in anything a hub administrator reads.

mod common;

use base64::Engine as _;
use common::*;
use etherhub_config::tree::{Folder, Value};
use std::process::Output;

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `etherhub cmd` from namespace `ns` to `addr:5555`, server admin, optional password.
fn remote_cmd(ns: &Netns, addr: &str, password: Option<&str>, args: &[&str]) -> Output {
    let mut c = ns.cmd(ETHERHUB);
    c.args(["cmd", &format!("{addr}:5555"), "/SERVER"]);
    if let Some(p) = password {
        c.arg(format!("/PASSWORD:{p}"));
    }
    c.arg("/CMD").args(args);
    run(&mut c)
}

/// Every secret in the config, as the strings that would betray it in text.
fn secrets_of(folder: &Folder, out: &mut Vec<(String, String)>) {
    const SECRET: &[&str] = &[
        "HashedPassword",
        "AuthPassword",
        "AuthNtLmSecureHash",
        "PrivateKey",
        "PresharedKey",
        "ServerKey",
    ];
    for item in &folder.items {
        if !SECRET.iter().any(|s| s.eq_ignore_ascii_case(&item.name)) {
            continue;
        }
        let b64 = base64::engine::general_purpose::STANDARD;
        match &item.value {
            Value::Str(s) if !s.is_empty() => out.push((item.name.clone(), s.clone())),
            Value::Byte(b) if !b.is_empty() => {
                let enc = b64.encode(b);
                // a prefix is enough to recognise a long value (the TLS key)
                out.push((item.name.clone(), enc.chars().take(40).collect()));
                let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
                out.push((
                    format!("{} (hex)", item.name),
                    hex.chars().take(40).collect(),
                ));
            }
            _ => {}
        }
    }
    for f in &folder.folders {
        secrets_of(f, out);
    }
}

fn assert_no_secret(what: &str, haystack: &str, secrets: &[(String, String)]) {
    let lower = haystack.to_ascii_lowercase();
    for (name, value) in secrets {
        assert!(
            !haystack.contains(value.as_str()) && !lower.contains(&value.to_ascii_lowercase()),
            "{what} contains the secret {name}"
        );
    }
}

#[test]
fn remote_admin_needs_password_lockout_and_no_secrets_leak() {
    if !can_run_netns() {
        return;
    }
    let mut lab = Lab::new(1);
    let remote = lab.client_ns[0].take().unwrap();
    let addr = lab.server_addrs[0].clone();
    lab.server.start();
    const ADMIN_PW: &str = "Adm1n-Secret-Pw-7731";
    const USER_PW: &str = "User-Secret-Pw-5512";
    const HUB_PW: &str = "Hub-Secret-Pw-9040";

    // empty admin password: refused from another machine, even with an empty password given
    let out = remote_cmd(&remote, &addr, None, &["ServerInfoGet"]);
    assert!(
        !out.status.success(),
        "remote admin with empty password: {}",
        text(&out)
    );
    let out = remote_cmd(&remote, &addr, Some(""), &["ServerInfoGet"]);
    assert!(
        !out.status.success(),
        "remote admin with empty password: {}",
        text(&out)
    );
    // loopback works and sets a password; then remote works with it
    lab.server.must_cmd(&["ServerPasswordSet", ADMIN_PW]);
    let out = remote_cmd(&remote, &addr, Some(ADMIN_PW), &["ServerInfoGet"]);
    assert!(
        out.status.success(),
        "remote admin with password: {}",
        text(&out)
    );
    let out = remote_cmd(&remote, &addr, None, &["ServerInfoGet"]);
    assert!(!out.status.success(), "remote admin without the password");

    // a session of commands that touch every secret
    let as_admin = |args: &[&str]| {
        let mut c = lab.server.ns.cmd(ETHERHUB);
        c.args([
            "cmd",
            "127.0.0.1:5555",
            "/SERVER",
            &format!("/PASSWORD:{ADMIN_PW}"),
        ]);
        c.arg("/CMD").args(args);
        let out = run(&mut c);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        text(&out)
    };
    let r = lab.server.rpc(
        "",
        ADMIN_PW,
        "CreateHub",
        &format!(
            r#"{{"HubName_str":"TEAM","AdminPasswordPlainText_str":"{HUB_PW}","Online_bool":true,"HubType_u32":0}}"#
        ),
    );
    assert!(r.contains("\"result\""), "{r}");
    let team = |args: &[&str]| {
        let mut c = lab.server.ns.cmd(ETHERHUB);
        c.args([
            "cmd",
            "127.0.0.1:5555",
            "/SERVER",
            "/ADMINHUB:TEAM",
            &format!("/PASSWORD:{ADMIN_PW}"),
        ]);
        c.arg("/CMD").args(args);
        let out = run(&mut c);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
    };
    team(&[
        "UserCreate",
        "meta",
        "/GROUP:none",
        "/REALNAME:none",
        "/NOTE:none",
    ]);
    team(&["UserPasswordSet", "meta", &format!("/PASSWORD:{USER_PW}")]);
    let (_, client_public) = wg_genkey();
    as_admin(&["WgkAdd", &client_public, "/HUB:TEAM", "/USER:meta"]);
    as_admin(&["WgkEnum"]);
    as_admin(&["WgServerInfo"]);
    as_admin(&["ServerStatusGet"]);
    as_admin(&["ListenerList"]);

    // brute force from the remote address: locked out after 5 failures, even with the right
    // password, while loopback still works
    for i in 0..5 {
        let out = remote_cmd(
            &remote,
            &addr,
            Some(&format!("guess-{i}")),
            &["ServerInfoGet"],
        );
        assert!(!out.status.success());
    }
    let out = remote_cmd(&remote, &addr, Some(ADMIN_PW), &["ServerInfoGet"]);
    assert!(
        !out.status.success(),
        "locked-out address got in: {}",
        text(&out)
    );
    as_admin(&["ServerInfoGet"]);

    // what a hub administrator of TEAM can read: every reading method, with the usual parameters
    let mut hub_admin_output = String::new();
    let reading = etherhub_admin::METHODS
        .iter()
        .map(|m| m.name)
        .filter(|m| m.starts_with("Get") || m.starts_with("Enum") || *m == "Test");
    for method in reading {
        let r = lab.server.rpc(
            "TEAM",
            HUB_PW,
            method,
            r#"{"HubName_str":"TEAM","Name_str":"meta"}"#,
        );
        assert!(!r.is_empty(), "no answer to {method}");
        hub_admin_output.push_str(&r);
        hub_admin_output.push('\n');
    }
    assert!(
        hub_admin_output.contains("\"HubName_str\":\"TEAM\""),
        "the hub admin login did not work: {hub_admin_output}"
    );

    let cfg =
        etherhub_config::Config::parse(&std::fs::read_to_string(lab.server.config_path()).unwrap())
            .unwrap();
    let mut secrets = Vec::new();
    secrets_of(&cfg.root, &mut secrets);
    let names: Vec<&str> = secrets.iter().map(|(n, _)| n.as_str()).collect();
    for must in [
        "PrivateKey",
        "PresharedKey",
        "HashedPassword",
        "AuthPassword",
        "ServerKey",
    ] {
        assert!(
            names.contains(&must),
            "no {must} found in the config: {names:?}"
        );
    }
    for pw in [ADMIN_PW, USER_PW, HUB_PW] {
        secrets.push(("a plain password".into(), pw.into()));
    }
    assert_no_secret("hub admin API output", &hub_admin_output, &secrets);

    lab.server.stop();
    let log = lab.server.log_text();
    assert!(
        log.contains("security: admin login failed")
            && log.contains("security: admin logins from this address locked out"),
        "security events not logged:\n{log}"
    );
    // the client namespace is .2 on the server's /24
    let attacker = format!("{}.2", addr.rsplit_once('.').unwrap().0);
    assert!(
        log.contains(&format!("peer={attacker}")),
        "the attacker's address {attacker} is not logged"
    );
    assert_no_secret("server log", &log, &secrets);
}
