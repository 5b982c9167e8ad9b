//! SoftEther's own client against Etherhub: Debian's stock vpnclient (5.01) in one namespace,
//! Etherhub in another, over TCP 443. It logs in with a password, gets an address from
//! SecureNAT's DHCP server, pings the gateway, reaches a host on the LAN behind the server over
//! TCP and a wireguard-go client on the same hub, runs on four TCP connections, and is shown
//! and disconnected by the admin as SoftEther shows its sessions.

mod common;

use common::softether::{has_vpnclient, Account, VpnClient};
use common::*;
use std::time::{Duration, Instant};

const WG_IP: &str = "192.168.30.233";

/// The session of `user` in SessionList (its name and its "TCP Connections" cell).
fn session_of(server: &EtherhubServer, user: &str) -> Option<(String, String)> {
    let list = server.must_hub_cmd(&["SessionList"]);
    let mut name = None;
    for line in list.lines() {
        let cell = line.split('|').nth(1).unwrap_or("").trim().to_string();
        if line.starts_with("Session Name") {
            name = Some(cell);
        } else if line.starts_with("User Name") && cell != user {
            name = None;
        } else if line.starts_with("TCP Connections") {
            if let Some(n) = name.take().filter(|n| n.contains(&user.to_uppercase())) {
                return Some((n, cell));
            }
        }
    }
    None
}

fn wait_for(within: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    false
}

#[test]
fn stock_vpnclient_gets_an_address_and_reaches_the_gateway_the_lan_and_a_wireguard_peer() {
    if !can_run_netns() || !has_vpnclient() {
        return;
    }
    let mut lab = Lab::new(2);
    let wg = lab.client(0, &format!("{WG_IP}/24"));
    let ns = lab.client_ns[1].take().unwrap();
    let server_ip = lab.server_addrs[1].clone();
    let lan = lab.lan();
    lab.server.start();
    lab.server.create_user("alice");
    lab.server
        .must_hub_cmd(&["UserPasswordSet", "alice", "/PASSWORD:alicepw"]);
    lab.server.create_user("meta");
    lab.server.register_client(&wg, "meta");
    wg.join(&lab.server, None);

    let vc = VpnClient::start(ns, "eh1");
    let target = format!("{server_ip}:443");
    vc.account(&Account {
        name: "eh",
        server: &target,
        hub: "DEFAULT",
        user: "alice",
        password: "alicepw",
        tcp: 4,
        half: false,
    });
    vc.must(&["AccountConnect", "eh"]);
    assert!(
        vc.wait_established("eh", Duration::from_secs(30)),
        "no session; server log:\n{}",
        lab.server.log_text()
    );
    let ip = vc.dhcp().expect("a DHCP lease from SecureNAT");
    assert!(ip.starts_with("192.168.30."), "{ip}");
    assert!(
        vc.ns.ping_until("192.168.30.1", Duration::from_secs(10)),
        "the gateway"
    );

    // four TCP connections, as vpnclient asked
    assert!(
        wait_for(Duration::from_secs(20), || {
            session_of(&lab.server, "alice").is_some_and(|(_, tcp)| tcp == "4 / 4")
        }),
        "{}",
        lab.server.must_hub_cmd(&["SessionList"])
    );
    let (sid, _) = session_of(&lab.server, "alice").unwrap();
    assert!(sid.starts_with("SID-ALICE-"), "{sid}");

    // a wireguard-go client on the same hub, both ways
    assert!(
        vc.ns.ping_until(WG_IP, Duration::from_secs(10)),
        "vpnclient to WireGuard"
    );
    assert!(
        wg.ns.ping_until(&ip, Duration::from_secs(10)),
        "WireGuard to vpnclient"
    );

    // a host on the LAN behind the server, over TCP through SecureNAT
    vc.ns.ip(&[
        "route",
        "add",
        &lan.subnet,
        "via",
        "192.168.30.1",
        "dev",
        &vc.ifname(),
    ]);
    let _srv = iperf_server(&lan.ns, &lan.ip, 5201, true);
    let out = run(vc
        .ns
        .cmd("timeout")
        .args(["30", "iperf3", "-J", "-c", &lan.ip, "-p", "5201", "-t", "2"]));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let moved = report["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0);
    assert!(
        moved > 100_000,
        "TCP to the LAN moved {moved} bytes:\n{}",
        out_text(&out)
    );

    // the admin's view, as SoftEther shows it
    let session = lab.server.must_hub_cmd(&["SessionGet", &sid]);
    assert!(session.contains("Standard TCP/IP"), "{session}");
    assert!(session.contains("SoftEther VPN Client"), "{session}");
    let ips = lab.server.must_hub_cmd(&["IpTable"]);
    assert!(ips.contains(&format!("{ip} (DHCP)")), "{ips}");

    // the admin disconnects it: gone at once (the client will try again after its interval)
    lab.server.must_hub_cmd(&["SessionDisconnect", &sid]);
    let list = lab.server.must_hub_cmd(&["SessionList"]);
    assert!(!list.contains(&sid), "{list}");
    assert!(
        wait_for(Duration::from_secs(8), || !vc
            .status("eh")
            .contains("Session Established")),
        "the client noticed"
    );
}

#[test]
fn a_wrong_password_is_refused_logged_and_counted() {
    if !can_run_netns() || !has_vpnclient() {
        return;
    }
    let mut lab = Lab::new(1);
    let ns = lab.client_ns[0].take().unwrap();
    let server_ip = lab.server_addrs[0].clone();
    lab.server.start();
    lab.server.create_user("alice");
    lab.server
        .must_hub_cmd(&["UserPasswordSet", "alice", "/PASSWORD:alicepw"]);
    let vc = VpnClient::start(ns, "eh2");
    vc.account(&Account {
        name: "bad",
        server: &format!("{server_ip}:443"),
        hub: "DEFAULT",
        user: "alice",
        password: "guess",
        tcp: 1,
        half: false,
    });
    vc.must(&["AccountConnect", "bad"]);
    assert!(
        wait_for(Duration::from_secs(20), || vc
            .log()
            .contains("User authentication failed")),
        "{}",
        vc.log()
    );
    assert!(!vc.status("bad").contains("Session Established"));
    assert!(session_of(&lab.server, "alice").is_none());
    let log = lab.server.log_text();
    assert!(log.contains("security: VPN login failed"), "{log}");
    assert!(!log.contains("guess"), "passwords are never logged");
}
