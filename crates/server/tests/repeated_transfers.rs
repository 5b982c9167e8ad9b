//! What took the data plane down under smoltcp 0.12: repeated TCP transfers through SecureNAT,
//! both ways, and client to client, with two stock wireguard-go clients. Thirty transfers of
//! five seconds each; every one must move data, and the server must never panic.

mod common;

use common::*;
use std::time::Duration;

const A_IP: &str = "192.168.30.230";
const B_IP: &str = "192.168.30.231";

/// One iperf3 test of `secs` from `ns` to `ip:port` (`reverse`: the server sends); the bytes
/// the receiving side got, or the output when there were none.
fn transfer(ns: &Netns, ip: &str, port: u16, secs: u32, reverse: bool) -> Result<u64, String> {
    let mut c = ns.cmd("timeout");
    c.args([
        &(secs + 20).to_string(),
        "iperf3",
        "-c",
        ip,
        "-p",
        &port.to_string(),
        "-t",
        &secs.to_string(),
        "-J",
    ]);
    if reverse {
        c.arg("-R");
    }
    let out = run(&mut c);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    match v["end"]["sum_received"]["bytes"].as_u64() {
        Some(n) if n > 0 => Ok(n),
        _ => Err(out_text(&out)),
    }
}

#[test]
fn thirty_transfers_through_securenat_and_between_clients_never_stop_the_data_plane() {
    if !can_run_netns() {
        return;
    }
    assert!(
        which("iperf3").is_some(),
        "iperf3 is required (scripts/test installs it)"
    );
    let mut lab = Lab::new(2);
    let lan = lab.lan();
    let a = lab.client(0, &format!("{A_IP}/24"));
    let b = lab.client(1, &format!("{B_IP}/24"));
    lab.server.start();
    lab.server.create_user("meta");
    lab.server.register_client(&a, "meta");
    lab.server.register_client(&b, "meta");
    for c in [&a, &b] {
        c.join(&lab.server, Some(&lan));
        assert!(c.ns.ping_until("192.168.30.1", Duration::from_secs(15)));
    }
    let _up = iperf_server(&lan.ns, &lan.ip, 5201, false);
    let _down = iperf_server(&lan.ns, &lan.ip, 5202, false);
    let _peer = iperf_server(&b.ns, B_IP, 5203, false);
    std::thread::sleep(Duration::from_millis(500));

    let mut moved = Vec::new();
    for round in 0..10 {
        // a client uploads to the LAN while the other downloads from it, then client to client
        let (up, down) = std::thread::scope(|s| {
            let up = s.spawn(|| transfer(&a.ns, &lan.ip, 5201, 5, false));
            let down = s.spawn(|| transfer(&b.ns, &lan.ip, 5202, 5, true));
            (up.join().unwrap(), down.join().unwrap())
        });
        let c2c = transfer(&a.ns, B_IP, 5203, 5, false);
        for (what, r) in [
            ("upload", up),
            ("download", down),
            ("client to client", c2c),
        ] {
            match r {
                Ok(bytes) => moved.push(bytes),
                Err(out) => panic!(
                    "round {round}: the {what} moved nothing:\n{out}\nserver log:\n{}",
                    lab.server.log_text()
                ),
            }
        }
    }
    assert_eq!(moved.len(), 30);
    let log = lab.server.log_text();
    assert!(!log.contains("panicked"), "the server panicked:\n{log}");
    let status = lab.server.must_cmd(&["ServerStatusGet"]);
    let faults = status
        .lines()
        .find(|l| l.starts_with("Data Plane Faults Contained"))
        .unwrap_or_else(|| panic!("{status}"));
    assert!(faults.ends_with("|0"), "{status}");
    assert!(
        !status.contains("Data Plane Last Moved a Packet at|(Never)"),
        "{status}"
    );
}
