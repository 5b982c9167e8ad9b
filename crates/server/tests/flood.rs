//! A WireGuard handshake flood against the real server in a namespace, while stock clients
//! (wireguard-go) keep a tunnel through it. The flood comes from its own namespace: real
//! initiations from unknown keys and from one registered key (`wg-flood`), bounded in count
//! and time.
//!
//! `handshake_flood_keeps_tunnel_and_sends_cookies` runs in the suite. The ignored
//! `flood_throughput_and_rss` is the measurement scripts/flood runs: iperf3 between two
//! clients through the hub without and with the flood, and the server's RSS before, during
//! and after.

mod common;

use common::*;
use std::process::Stdio;
use std::time::{Duration, Instant};

const WG_FLOOD: &str = env!("CARGO_BIN_EXE_wg-flood");
const GW: &str = "192.168.30.1";

/// Server up, user meta with the clients' keys, user flood with `flood_public`.
fn setup(lab: &mut Lab, clients: &[&WgClient], flood_public: &str) {
    lab.server.start();
    for user in ["meta", "flood"] {
        lab.server.create_user(user);
    }
    for c in clients {
        lab.server.register_client(c, "meta");
    }
    lab.server
        .must_cmd(&["WgkAdd", flood_public, "/HUB:DEFAULT", "/USER:flood"]);
    for c in clients {
        c.configure(
            &lab.server.server_public_key(),
            &lab.server.preshared_key(),
            &format!("{}:443", c.underlay_gw),
            "192.168.30.0/24",
        );
    }
}

/// Starts wg-flood in namespace `ns` against `target` for `seconds` (at most 5 million).
fn start_flood(lab: &Lab, ns: &Netns, target: &str, valid_private: &str, seconds: u64) -> Proc {
    let child = ns
        .cmd(WG_FLOOD)
        .args(["--target", target, "--server-public"])
        .arg(lab.server.server_public_key())
        .args(["--psk"])
        .arg(lab.server.preshared_key())
        .args(["--valid-private", valid_private])
        .args(["--seconds", &seconds.to_string(), "--count", "5000000"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Proc {
        child,
        what: "wg-flood".into(),
    }
}

/// Waits for the flood to end by itself (its own time bound) and returns its summary line.
fn finish_flood(mut p: Proc, within: Duration) -> String {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if let Ok(Some(_)) = p.child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if let Ok(None) = p.child.try_wait() {
        p.stop();
    }
    let mut out = String::new();
    use std::io::Read;
    if let Some(mut s) = p.child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = p.child.stderr.take() {
        let _ = s.read_to_string(&mut out);
    }
    out
}

fn counter(summary: &str, name: &str) -> u64 {
    summary
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {summary:?}"))
}

/// Pings `count` times at 0.2 s; the number of answers.
fn ping_received(ns: &Netns, addr: &str, count: u32) -> u32 {
    let out =
        run(ns
            .cmd("ping")
            .args(["-c", &count.to_string(), "-i", "0.2", "-W", "1", "-q", addr]));
    let text = out_text(&out);
    text.split(',')
        .find_map(|part| part.trim().strip_suffix(" received"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

fn server_alive(lab: &mut Lab) -> bool {
    lab.server
        .proc
        .as_mut()
        .is_some_and(|p| matches!(p.child.try_wait(), Ok(None)))
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn handshake_flood_keeps_tunnel_and_sends_cookies() {
    if !can_run_netns() {
        return;
    }
    let mut lab = Lab::new(2);
    let c = lab.client(0, "192.168.30.233/24");
    let flood_ns = lab.client_ns[1].take().unwrap();
    let (flood_private, flood_public) = wg_genkey();
    setup(&mut lab, &[&c], &flood_public);
    assert!(
        c.ns.ping_until(GW, Duration::from_secs(15)),
        "tunnel not up before the flood"
    );

    let target = format!("{}:443", lab.server_addrs[1]);
    let flood = start_flood(&lab, &flood_ns, &target, &flood_private, 8);
    std::thread::sleep(Duration::from_millis(500));
    // 25 pings over 5 s while the flood runs
    let got = ping_received(&c.ns, GW, 25);
    let summary = finish_flood(flood, Duration::from_secs(20));
    eprintln!("{summary}");
    assert!(
        got >= 20,
        "tunnel lost too much during the flood: {got}/25 answers"
    );
    assert!(
        counter(&summary, "sent") > 10_000,
        "the flood was too weak to test anything: {summary}"
    );
    assert!(
        counter(&summary, "cookie_replies") > 0,
        "no cookie replies under load: {summary}"
    );
    assert!(server_alive(&mut lab), "server died under the flood");
    // the server says so in its log (every 5 s while cookies go out)
    let end = Instant::now() + Duration::from_secs(8);
    while !lab.server.log_text().contains("WireGuard under load") && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = lab.server.log_text();
    assert!(
        log.contains("WireGuard under load") && log.contains("cookie_replies_sent="),
        "no cookie log line:\n{log}"
    );
    // the admin sees the same in WgServerInfo: at least the cookie replies the generator got
    let info = lab.server.must_cmd(&["WgServerInfo"]);
    let sent = table_number(&info, "Cookie Replies Sent");
    assert!(
        sent >= counter(&summary, "cookie_replies"),
        "WgServerInfo shows {sent} cookie replies, the generator got more: {summary}\n{info}"
    );
    assert!(table_number(&info, "Handshakes Completed") >= 1, "{info}");
    // after the flood: tunnel and admin still answer
    assert!(c.ns.ping(GW, 3), "tunnel dead after the flood");
    lab.server.must_cmd(&["ServerStatusGet"]);
}

/// The number in the value column of the table row whose item starts with `item`.
fn table_number(table: &str, item: &str) -> u64 {
    let row = table
        .lines()
        .find(|l| l.trim_start().starts_with(item))
        .unwrap_or_else(|| panic!("no row {item:?} in:\n{table}"));
    let value = row.split('|').nth(1).unwrap_or_default();
    let digits: String = value.chars().filter(|c| c.is_ascii_digit()).collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("row {item:?} has no number: {row}"))
}

/// iperf3 from client A to client B through the hub for `secs`; bits per second received.
fn iperf(a: &WgClient, b: &WgClient, b_ip: &str, secs: u32) -> f64 {
    let mut server = iperf_server(&b.ns, b_ip, 5201, true);
    std::thread::sleep(Duration::from_millis(500));
    let out = run(a.ns.cmd("timeout").args([
        &(secs + 15).to_string(),
        "iperf3",
        "-c",
        b_ip,
        "-t",
        &secs.to_string(),
        "-J",
    ]));
    server.stop();
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or(0.0)
}

#[test]
#[ignore = "measurement for scripts/flood; needs iperf3 and two idle cores"]
fn flood_throughput_and_rss() {
    if !can_run_netns() || which("iperf3").is_none() {
        panic!("needs root, the WireGuard tools and iperf3");
    }
    let secs: u32 = std::env::var("FLOOD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let mut lab = Lab::new(3);
    let a = lab.client(0, "192.168.30.233/24");
    let b = lab.client(1, "192.168.30.234/24");
    let flood_ns = lab.client_ns[2].take().unwrap();
    let (flood_private, flood_public) = wg_genkey();
    setup(&mut lab, &[&a, &b], &flood_public);
    // the hub learns a client's address from its first packet: both speak to the gateway first
    assert!(a.ns.ping_until(GW, Duration::from_secs(15)));
    assert!(b.ns.ping_until(GW, Duration::from_secs(15)));
    assert!(a.ns.ping_until("192.168.30.234", Duration::from_secs(15)));
    assert!(b.ns.ping_until("192.168.30.233", Duration::from_secs(15)));
    let pid = lab.server.proc.as_ref().unwrap().pid();

    let rss_before = rss_kib(pid);
    let base = iperf(&a, &b, "192.168.30.234", secs);
    let rss_after_base = rss_kib(pid);

    let target = format!("{}:443", lab.server_addrs[2]);
    let flood = start_flood(
        &lab,
        &flood_ns,
        &target,
        &flood_private,
        u64::from(secs) + 4,
    );
    std::thread::sleep(Duration::from_secs(1));
    let during = iperf(&a, &b, "192.168.30.234", secs);
    let rss_during = rss_kib(pid);
    let summary = finish_flood(flood, Duration::from_secs(u64::from(secs) + 20));
    std::thread::sleep(Duration::from_secs(3));
    let rss_after = rss_kib(pid);
    // control: the same generator aimed at a closed port of the server's namespace, so the
    // server does no work for it; what throughput is lost then is lost to the shared CPU
    let closed = format!("{}:9", lab.server_addrs[2]);
    let control = start_flood(
        &lab,
        &flood_ns,
        &closed,
        &flood_private,
        u64::from(secs) + 4,
    );
    std::thread::sleep(Duration::from_secs(1));
    let during_control = iperf(&a, &b, "192.168.30.234", secs);
    let control_summary = finish_flood(control, Duration::from_secs(u64::from(secs) + 20));
    let alive = server_alive(&mut lab);
    let ratio = if base > 0.0 { during / base } else { 0.0 };
    let control_ratio = if base > 0.0 {
        during_control / base
    } else {
        0.0
    };
    println!(
        "FLOOD RESULT: throughput without flood {:.1} Mbit/s, with flood {:.1} Mbit/s, ratio {:.2}; \
         generator aimed at a closed port (CPU share only) {:.1} Mbit/s, ratio {:.2}; \
         RSS KiB before {rss_before}, after baseline iperf {rss_after_base}, during flood \
         {rss_during}, after flood {rss_after}; server alive {alive}; {summary}; control: \
         {control_summary}",
        base / 1e6,
        during / 1e6,
        ratio,
        during_control / 1e6,
        control_ratio
    );
    assert!(alive);
    assert!(base > 0.0 && during > 0.0, "iperf3 failed");
}
