//! The seed's walk-through with a stock client: Debian's wireguard-go configured by `wg` in one
//! namespace, Etherhub in another, administered with `etherhub cmd`.

mod common;

use common::*;
use std::time::Duration;

const GW: &str = "192.168.30.1";

/// Starts the server on its embedded default, creates user `meta` on hub DEFAULT and registers
/// each client's key for it.
fn setup(lab: &mut Lab, clients: &[&WgClient]) {
    lab.server.start();
    lab.server.create_user("meta");
    for c in clients {
        lab.server.register_client(c, "meta");
    }
}

fn connect(lab: &Lab, c: &WgClient, port: u16) {
    let endpoint = format!("{}:{port}", c.underlay_gw);
    c.configure(
        &lab.server.server_public_key(),
        &lab.server.preshared_key(),
        &endpoint,
        "192.168.30.0/24",
    );
}

/// The first number on the line of a SessionGet table that starts with `item`.
fn item_number(table: &str, item: &str) -> u64 {
    let line = table
        .lines()
        .find(|l| l.trim_start().starts_with(item))
        .unwrap_or_else(|| panic!("no {item:?} in:\n{table}"));
    let value = line.split('|').nth(1).unwrap_or(line);
    value
        .chars()
        .filter(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no number in {line:?}"))
}

fn session_name(list: &str) -> String {
    list.split(|c: char| c == '|' || c.is_whitespace())
        .find(|w| w.starts_with("SID-META-[WIREGUARD]-"))
        .unwrap_or_else(|| panic!("no WireGuard session in:\n{list}"))
        .to_string()
}

#[test]
fn walkthrough_ping_sessions_counters_and_tables() {
    if !can_run_netns() {
        return;
    }
    let mut lab = Lab::new(1);
    let c = lab.client(0, "192.168.30.233/24");
    setup(&mut lab, &[&c]);
    connect(&lab, &c, 443);
    assert!(
        c.ns.ping_until(GW, Duration::from_secs(15)),
        "no answer from the SecureNAT gateway"
    );

    let list = lab.server.must_hub_cmd(&["SessionList"]);
    let name = session_name(&list);
    assert!(list.contains("SID-SECURENAT-1"), "{list}");

    let before = lab.server.must_hub_cmd(&["SessionGet", &name]);
    assert!(before.contains("ChaCha20-Poly1305"), "{before}");
    assert!(before.contains("Legacy VPN - WIREGUARD"), "{before}");
    assert!(before.contains("meta"), "{before}");
    assert!(c.ns.ping(GW, 10));
    let after = lab.server.must_hub_cmd(&["SessionGet", &name]);
    for item in ["Incoming Data Size", "Outgoing Data Size"] {
        let (b, a) = (item_number(&before, item), item_number(&after, item));
        // ten echo requests of 84 bytes each way (plus the Ethernet header) at the least
        assert!(a >= b + 10 * 84, "{item}: {b} -> {a}");
    }

    let ip_table = lab.server.must_hub_cmd(&["IpTable"]);
    assert!(ip_table.contains("192.168.30.233"), "{ip_table}");
    assert!(ip_table.contains(&name), "{ip_table}");
    let mac_table = lab.server.must_hub_cmd(&["MacTable"]);
    assert!(mac_table.contains(&name), "{mac_table}");
}

#[test]
fn handshake_completes_on_each_default_port() {
    if !can_run_netns() {
        return;
    }
    let mut lab = Lab::new(1);
    let c = lab.client(0, "192.168.30.233/24");
    setup(&mut lab, &[&c]);
    let server_key = lab.server.server_public_key();
    for port in [443u16, 992, 1194, 5555] {
        let before = c.latest_handshake();
        c.remove_peer(&server_key);
        connect(&lab, &c, port);
        assert!(
            c.ns.ping_until(GW, Duration::from_secs(15)),
            "no ping through port {port}"
        );
        assert!(
            c.wait_handshake_after(before.saturating_sub(1), Duration::from_secs(5)),
            "no handshake on port {port}"
        );
        let shown =
            c.ns.cmd("wg")
                .args(["show", &c.ifname, "endpoints"])
                .output()
                .unwrap();
        assert!(out_text(&shown).contains(&format!(":{port}")));
    }
}

#[test]
fn two_clients_on_one_hub_ping_each_other() {
    if !can_run_netns() {
        return;
    }
    let mut lab = Lab::new(2);
    let a = lab.client(0, "192.168.30.233/24");
    let b = lab.client(1, "192.168.30.234/24");
    setup(&mut lab, &[&a, &b]);
    connect(&lab, &a, 443);
    connect(&lab, &b, 992);
    assert!(a.ns.ping_until(GW, Duration::from_secs(15)));
    assert!(b.ns.ping_until(GW, Duration::from_secs(15)));
    assert!(
        a.ns.ping_until("192.168.30.234", Duration::from_secs(10)),
        "a cannot reach b through the hub"
    );
    assert!(b.ns.ping("192.168.30.233", 3), "b cannot reach a");
    let list = lab.server.must_hub_cmd(&["SessionList"]);
    assert_eq!(list.matches("SID-META-[WIREGUARD]-").count(), 2, "{list}");

    // between two plain sessions the packets skip the engine's lock, and the hub still counts
    // every one of them on both sessions
    let names: Vec<String> = (list.split(|c: char| c == '|' || c.is_whitespace()))
        .filter(|w| w.starts_with("SID-META-[WIREGUARD]-"))
        .map(String::from)
        .collect();
    let direct = || {
        let info = lab.server.must_cmd(&["WgServerInfo"]);
        item_number(&info, "Forwarded Client to Client Directly")
    };
    let sizes = |name: &str| {
        let t = lab.server.must_hub_cmd(&["SessionGet", name]);
        (
            item_number(&t, "Incoming Data Size"),
            item_number(&t, "Outgoing Data Size"),
        )
    };
    let (d0, before) = (direct(), names.iter().map(|n| sizes(n)).collect::<Vec<_>>());
    assert!(a.ns.ping("192.168.30.234", 20), "a cannot reach b");
    let (d1, after) = (direct(), names.iter().map(|n| sizes(n)).collect::<Vec<_>>());
    assert!(d1 > d0, "nothing forwarded directly: {d0} -> {d1}");
    for (name, (b, a)) in names.iter().zip(before.iter().zip(&after)) {
        // twenty echo requests or replies of 84 bytes (98 with the Ethernet header) each way
        assert!(a.0 >= b.0 + 20 * 98, "{name} sent {} -> {}", b.0, a.0);
        assert!(a.1 >= b.1 + 20 * 98, "{name} received {} -> {}", b.1, a.1);
    }
}

#[test]
fn unknown_key_gets_no_answer_and_wgkdelete_cuts_the_session() {
    if !can_run_netns() {
        return;
    }
    let mut lab = Lab::new(2);
    let known = lab.client(0, "192.168.30.233/24");
    let stranger = lab.client(1, "192.168.30.240/24");
    setup(&mut lab, &[&known]);
    connect(&lab, &known, 443);
    connect(&lab, &stranger, 443);
    assert!(known.ns.ping_until(GW, Duration::from_secs(15)));
    assert!(!stranger.ns.ping(GW, 5), "an unregistered key got through");
    assert_eq!(
        stranger.latest_handshake(),
        0,
        "an unregistered key got a handshake"
    );

    let e = lab
        .server
        .cmd(&["WgkAdd", "not-a-key", "/HUB:DEFAULT", "/USER:meta"]);
    assert!(!e.status.success(), "a malformed key was accepted");
    let e = lab
        .server
        .cmd(&["WgkAdd", &stranger.public_key, "/HUB:NOHUB", "/USER:meta"]);
    assert!(!e.status.success(), "an unknown hub was accepted");

    lab.server.must_cmd(&["WgkDelete", &known.public_key]);
    let enum_out = lab.server.must_cmd(&["WgkEnum"]);
    assert!(!enum_out.contains(&known.public_key), "{enum_out}");
    assert!(!known.ns.ping(GW, 5), "the session outlived WgkDelete");
    let list = lab.server.must_hub_cmd(&["SessionList"]);
    assert!(!list.contains("SID-META-[WIREGUARD]-"), "{list}");
}

#[test]
fn a_restarted_server_accepts_the_same_client() {
    if !can_run_netns() {
        return;
    }
    let mut lab = Lab::new(1);
    let c = lab.client(0, "192.168.30.233/24");
    setup(&mut lab, &[&c]);
    connect(&lab, &c, 5555);
    assert!(c.ns.ping_until(GW, Duration::from_secs(15)));
    let key_before = lab.server.server_public_key();
    lab.server.stop();
    assert!(!c.ns.ping(GW, 2), "answers with the server stopped");
    lab.server.start();
    assert_eq!(lab.server.server_public_key(), key_before);
    let enum_out = lab.server.must_cmd(&["WgkEnum"]);
    assert!(enum_out.contains(&c.public_key), "{enum_out}");
    // the client notices the lost session by itself and handshakes again
    assert!(
        c.ns.ping_until(GW, Duration::from_secs(40)),
        "the restarted server did not take the client back"
    );
}
