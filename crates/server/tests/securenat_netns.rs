//! SecureNAT end to end: a stock wireguard-go client behind Etherhub reaches a LAN namespace
//! behind the server through the NAT (TCP, UDP, ICMP), and the NAT table follows the flows.

mod common;

use common::*;
use std::process::Stdio;
use std::time::{Duration, Instant};

const HELPER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/lan_helper.py");
const PY: &str = "/usr/bin/python3";
const BIG_MB: usize = 100;

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A client namespace command through bash that must succeed; its stdout.
fn sh(ns: &Netns, script: &str) -> String {
    let out = run(ns.cmd("bash").args(["-c", script]));
    assert!(out.status.success(), "{script} failed:\n{}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Lines of NatTable's output that name `ip`.
fn nat_rows(lab: &Lab, ip: &str) -> (usize, String) {
    let t = lab.server.must_hub_cmd(&["NatTable"]);
    (t.matches(ip).count(), t)
}

#[test]
fn client_reaches_the_lan_through_securenat() {
    if !can_run_netns() {
        return;
    }
    let mut lab = Lab::new(1);
    let lan = lab.lan();
    let www = tempfile::tempdir().unwrap();
    std::fs::write(
        www.path().join("small"),
        "hello from the lan\nsmall-file-end\n",
    )
    .unwrap();
    let big: Vec<u8> = (0..BIG_MB * 1024 * 1024)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(www.path().join("big"), &big).unwrap();
    drop(big);
    let big_sum = must(std::process::Command::new("sha256sum").arg(www.path().join("big")));
    let big_sum = big_sum.split_whitespace().next().unwrap().to_string();
    let dir = www.path().to_str().unwrap().to_string();
    let _web = lan.spawn(PY, &[HELPER, "serve", &dir, "8080", "7007"]);

    let c = lab.client(0, "192.168.30.233/24");
    lab.server.start();
    lab.server.create_user("meta");
    lab.server.register_client(&c, "meta");
    c.join(&lab.server, Some(&lan));
    assert!(
        c.ns.ping_until("192.168.30.1", Duration::from_secs(15)),
        "no answer from the SecureNAT gateway"
    );

    // ICMP echo through the NAT
    let out = run(c
        .ns
        .cmd("ping")
        .args(["-c", "3", "-i", "0.2", "-W", "2", &lan.ip]));
    assert!(
        text(&out).contains("3 received"),
        "pings to the LAN host lost:\n{}",
        text(&out)
    );

    // HTTP (wait for the LAN server to listen)
    let url = format!("http://{}:8080/small", lan.ip);
    let end = Instant::now() + Duration::from_secs(10);
    let page = loop {
        let out = run(c.ns.cmd("curl").args(["-s", "--max-time", "5", &url]));
        if out.status.success() {
            break String::from_utf8_lossy(&out.stdout).into_owned();
        }
        assert!(Instant::now() < end, "HTTP fetch failed: {}", text(&out));
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(page, "hello from the lan\nsmall-file-end\n");

    // UDP echo
    let got = sh(&c.ns, &format!("{PY} {HELPER} udp {} 7007 20", lan.ip));
    // nothing on these links loses datagrams: every one comes back, the flow's first included
    assert_eq!(got, "20", "UDP echoes back");

    // 200 TCP connections open at once, all complete
    let got = sh(
        &c.ns,
        &format!("{PY} {HELPER} parallel {} 8080 200", lan.ip),
    );
    assert_eq!(got, "200", "parallel fetches that completed");

    // 100 MB, same checksum
    let t0 = Instant::now();
    let sum = sh(
        &c.ns,
        &format!(
            "set -o pipefail; curl -sf --max-time 300 http://{}:8080/big | sha256sum",
            lan.ip
        ),
    );
    eprintln!("{BIG_MB} MB through SecureNAT in {:?}", t0.elapsed());
    assert_eq!(sum.split_whitespace().next().unwrap(), big_sum);

    // the NAT table shows a live flow, and forgets it after its timeout: 3 s, set through the
    // JSON-RPC API (vpncmd's NatSet, and so etherhub cmd, refuses less than 60 s for TCP)
    let refused = lab.server.cmd_in(
        Some("DEFAULT"),
        &[
            "NatSet",
            "/MTU:1500",
            "/TCPTIMEOUT:3",
            "/UDPTIMEOUT:3",
            "/LOG:no",
        ],
    );
    assert!(
        text(&refused).contains("range 60 to"),
        "NatSet took a TCP timeout vpncmd refuses:\n{}",
        text(&refused)
    );
    let set = lab.server.rpc(
        "",
        "",
        "SetSecureNATOption",
        r#"{"RpcHubName_str":"DEFAULT","NatTcpTimeout_u32":3,"NatUdpTimeout_u32":3}"#,
    );
    assert!(set.contains("\"NatTcpTimeout_u32\":3"), "{set}");
    let mut hold =
        c.ns.cmd("bash")
            .args([
                "-c",
                &format!("exec 3<>/dev/tcp/{}/8080; exec sleep 30", lan.ip),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let (rows, table) = nat_rows(&lab, &lan.ip);
        if rows >= 1 && table.contains("TCP") {
            break;
        }
        assert!(Instant::now() < end, "no live flow in NatTable:\n{table}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = lab.server.must_hub_cmd(&["SecureNatStatusGet"]);
    let tcp_line = status
        .lines()
        .find(|l| l.contains("NAT TCP/IP Sessions"))
        .unwrap_or_default()
        .to_string();
    assert!(
        !tcp_line.contains("| 0 Session"),
        "SecureNatStatusGet shows no TCP session:\n{status}"
    );
    let end = Instant::now() + Duration::from_secs(12);
    loop {
        let (rows, table) = nat_rows(&lab, &lan.ip);
        if rows == 0 {
            break;
        }
        assert!(
            Instant::now() < end,
            "flows outlived the 3 s timeouts:\n{table}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = std::process::Command::new("kill")
        .arg(hold.id().to_string())
        .status();
    let _ = hold.wait();
}
