//! SoftEther 5's WireGuard walk-through, typed as its users learned it: the client makes its
//! own keys and picks its own address, the admin registers the key without an address, and the
//! client's first packet decides it. With stock wireguard-go and wg in namespaces; and vpncmd's
//! prompts for WgkAdd, answered at a terminal and from piped input.

mod common;

use common::loopback::LoopbackServer;
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PICKED: &str = "192.168.30.233";

#[test]
fn the_softether_walkthrough_typed_as_written() {
    if !can_run_netns() {
        return;
    }
    let mut lab = Lab::new(2);
    // the client's own keys and its own address (the walk-through's `Address = 192.168.30.233`)
    let c = lab.client(0, &format!("{PICKED}/24"));
    lab.server.start();
    lab.server.create_user("meta");
    let added = lab
        .server
        .must_cmd(&["WgkAdd", &c.public_key, "/HUB:DEFAULT", "/USER:meta"]);
    assert!(
        added.contains("(the first one its client uses)"),
        "a key given without /IP gets no address of the server's choosing:\n{added}"
    );
    // the server's public key and preshared key as the admin reads them
    let info = lab.server.must_cmd(&["WgServerInfo"]);
    let (server_public, psk) = (row(&info, "Public Key"), row(&info, "Preshared Key"));
    assert_eq!(server_public, lab.server.server_public_key());
    c.configure(
        server_public,
        psk,
        &format!("{}:443", c.underlay_gw),
        "192.168.30.0/24",
    );
    assert!(
        c.ns.ping_until("192.168.30.1", Duration::from_secs(15)),
        "ping 192.168.30.1 went unanswered; log:\n{}",
        lab.server.log_text()
    );
    let sessions = lab.server.must_hub_cmd(&["SessionList"]);
    let name = sessions
        .lines()
        .filter_map(|l| l.split('|').nth(1))
        .map(str::trim)
        .find(|s| s.starts_with("SID-META-[WIREGUARD]-"))
        .unwrap_or_else(|| panic!("no WireGuard session:\n{sessions}"))
        .to_string();
    let get = lab.server.must_hub_cmd(&["SessionGet", &name]);
    assert!(
        get.contains("Enabled (Algorithm: ChaCha20-Poly1305)"),
        "{get}"
    );
    assert!(get.contains("Legacy VPN - WIREGUARD"), "{get}");
    // IpTable's vertical rows: the session's name, then its address
    let ip = lab.server.must_hub_cmd(&["IpTable"]);
    let lines: Vec<&str> = ip.lines().collect();
    let at = lines.iter().position(|l| row(l, "Session Name") == name);
    assert!(
        at.is_some_and(|i| row(lines[i + 1], "IP Address") == PICKED),
        "IpTable does not show {PICKED} for {name}:\n{ip}"
    );
    // the address is the key's now: in WgkEnum and in the config file
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let cfg = std::fs::read_to_string(lab.server.config_path()).unwrap();
        let key = etherhub_config::Config::parse(&cfg)
            .unwrap()
            .wg_keys()
            .into_iter()
            .find(|k| k.key == c.public_key)
            .unwrap();
        if key.address == Some(PICKED.parse().unwrap()) {
            break;
        }
        assert!(
            Instant::now() < end,
            "the address was not saved with the key"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let keys = lab.server.must_cmd(&["WgkEnum"]);
    assert!(
        keys.lines()
            .any(|l| l.contains(&c.public_key) && l.contains(PICKED)),
        "{keys}"
    );

    // a second client, registered the same way, tries the same address: dropped, counted, told
    let c2 = lab.client(1, &format!("{PICKED}/24"));
    lab.server.create_user("meta2");
    lab.server
        .must_cmd(&["WgkAdd", &c2.public_key, "/HUB:DEFAULT", "/USER:meta2"]);
    c2.configure(
        server_public,
        psk,
        &format!("{}:443", c2.underlay_gw),
        "192.168.30.0/24",
    );
    assert!(
        !c2.ns.ping("192.168.30.1", 3),
        "a second key took a held address"
    );
    let keys = lab.server.must_cmd(&["WgkEnum"]);
    let line = keys
        .lines()
        .find(|l| l.contains(&c2.public_key))
        .unwrap_or_else(|| panic!("{keys}"));
    let spoofed = last_cell_number(line);
    assert!(spoofed > 0, "the refused packets are not counted: {line}");
    let log = lab.server.log_text();
    assert!(
        log.lines().any(|l| l.contains("packets dropped")
            && l.contains(&c2.public_key)
            && l.contains(PICKED)),
        "no log line names the key and the address it sent from:\n{log}"
    );
    // the first client was never disturbed
    assert!(c.ns.ping("192.168.30.1", 2));
}

/// A loopback server with user `meta` on hub DEFAULT.
fn server_with_meta() -> LoopbackServer {
    let s = LoopbackServer::start();
    let out = Command::new(ETHERHUB)
        .args([
            "cmd",
            &format!("127.0.0.1:{}", s.port),
            "/SERVER",
            "/ADMINHUB:DEFAULT",
        ])
        .args([
            "/CMD",
            "UserCreate",
            "meta",
            "/GROUP:none",
            "/REALNAME:none",
            "/NOTE:none",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", out_text(&out));
    s
}

/// WgkEnum's line for `key`, if the key is registered.
fn enum_line(s: &LoopbackServer, key: &str) -> Option<String> {
    let out = Command::new(ETHERHUB)
        .args([
            "cmd",
            &format!("127.0.0.1:{}", s.port),
            "/SERVER",
            "/CMD",
            "WgkEnum",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    out_text(&out)
        .lines()
        .find(|l| l.contains(key))
        .map(str::to_string)
}

#[test]
fn wgk_add_asks_key_hub_and_user_at_a_terminal() {
    let s = server_with_meta();
    let key = etherhub_wireguard::key_to_base64(&etherhub_wireguard::public_key_of(
        &etherhub_wireguard::generate_private_key(),
    ));
    // `script` gives the command a real terminal; the three answers are typed at its prompts
    let out = type_lines(
        Command::new("script")
            .args(["-qec"])
            .arg(format!(
                "{ETHERHUB} cmd 127.0.0.1:{} /SERVER /CMD WgkAdd",
                s.port
            ))
            .arg("/dev/null"),
        &format!("{key}\nDEFAULT\nmeta\n"),
    );
    let (k, h, u) = (out.find("Key: "), out.find("Hub: "), out.find("User: "));
    assert!(
        k.is_some() && k < h && h < u,
        "not asked Key, Hub, User in that order:\n{out}"
    );
    assert!(out.contains("The command completed successfully."), "{out}");
    let line = enum_line(&s, &key).unwrap_or_else(|| panic!("key not registered:\n{out}"));
    assert!(line.contains("DEFAULT") && line.contains("meta"), "{line}");
}

#[test]
fn wgk_add_reads_its_answers_from_piped_input() {
    let s = server_with_meta();
    let key = etherhub_wireguard::key_to_base64(&etherhub_wireguard::public_key_of(
        &etherhub_wireguard::generate_private_key(),
    ));
    let mut child = Command::new(ETHERHUB)
        .args([
            "cmd",
            &format!("127.0.0.1:{}", s.port),
            "/SERVER",
            "/CMD",
            "WgkAdd",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(format!("{key}\nDEFAULT\nmeta\n").as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = out_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("Key: ") && text.contains("Hub: ") && text.contains("User: "),
        "{text}"
    );
    let line = enum_line(&s, &key).unwrap_or_else(|| panic!("key not registered:\n{text}"));
    assert!(line.contains("DEFAULT") && line.contains("meta"), "{line}");
    // with nothing to read at the Hub prompt, the command is canceled and nothing registered
    let other = etherhub_wireguard::key_to_base64(&[3u8; 32]);
    let out = Command::new(ETHERHUB)
        .args([
            "cmd",
            &format!("127.0.0.1:{}", s.port),
            "/SERVER",
            "/CMD",
            "WgkAdd",
            &other,
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(38), "{}", out_text(&out));
    assert!(out_text(&out).contains("canceled"), "{}", out_text(&out));
    assert!(enum_line(&s, &other).is_none());
}
