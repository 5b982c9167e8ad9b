//! The stock Linux SSTP client (Debian's sstp-client: sstpc handing the link to pppd) against
//! Etherhub. It needs kernel PPP, which this machine lacks, so it runs in the lab guest
//! (`lab/guest`, a user-mode Linux Debian whose only network is a tap in the server's
//! namespace): it connects with a password, takes its address over IPCP (a SecureNAT lease),
//! pings the gateway and a wireguard-go client on the same hub, and runs iperf3 to a LAN host
//! through SecureNAT. While it is up, SessionList shows `SID-BOB-[SSTP]-<n>` and IpTable its
//! address; after it leaves, the session is gone. A wrong password gets no address, and the
//! server logs the failed login.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const GW: &str = "192.168.30.1";
const WG_IP: &str = "192.168.30.226";

fn lab_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../lab")
}

/// Builds the guest once (cached; later calls return at once).
fn guest_built() {
    let out = run(Command::new(lab_dir().join("guest")).arg("build"));
    assert!(out.status.success(), "lab/guest build: {}", out_text(&out));
}

/// One run of the guest: `in-guest/sstp.sh` with `params`, its share directory kept.
struct GuestRun {
    share: tempfile::TempDir,
    proc: Proc,
}

impl GuestRun {
    /// Boots the guest on `guest_ip` behind a tap in `ns` that holds `gateway` (the server's
    /// side), with the server's certificate for sstpc to check.
    fn start(ns: &Netns, guest_ip: &str, gateway: &str, params: &str, ca: &str) -> GuestRun {
        let share = tempfile::tempdir().unwrap();
        std::fs::copy(
            lab_dir().join("in-guest/sstp.sh"),
            share.path().join("sstp.sh"),
        )
        .unwrap();
        std::fs::write(share.path().join("params"), params).unwrap();
        std::fs::write(share.path().join("ca.pem"), ca).unwrap();
        let child = Command::new(lab_dir().join("guest"))
            .args([
                "run",
                &ns.name,
                guest_ip,
                gateway,
                "--",
                "bash",
                "/lab/sstp.sh",
            ])
            .env("LAB_SHARE", share.path())
            .env("LAB_TIMEOUT", "150")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("lab/guest runs");
        GuestRun {
            share,
            proc: Proc {
                child,
                what: "lab guest".into(),
            },
        }
    }

    fn file(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.share.path().join(name)).ok()
    }

    /// Waits (bounded) for a file the guest writes; false when the guest ended first.
    fn wait_file(&mut self, name: &str, within: Duration) -> bool {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if self.share.path().join(name).exists() {
                return true;
            }
            if self.proc.child.try_wait().ok().flatten().is_some() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }

    /// Waits for the guest to power off: its status and output, and the result lines.
    fn finish(mut self, within: Duration) -> (bool, String, String) {
        let end = Instant::now() + within;
        let status = loop {
            if let Ok(Some(st)) = self.proc.child.try_wait() {
                break Some(st);
            }
            if Instant::now() >= end {
                break None;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let mut out = String::new();
        use std::io::Read;
        if let Some(mut o) = self.proc.child.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
        if let Some(mut e) = self.proc.child.stderr.take() {
            let _ = e.read_to_string(&mut out);
        }
        for log in ["sstpc.log", "pppd.log"] {
            if let Some(t) = self.file(log) {
                out.push_str(&format!("\n--- {log}\n{t}"));
            }
        }
        let result = self.file("result").unwrap_or_default();
        (status.is_some_and(|s| s.success()), out, result)
    }
}

#[test]
fn the_stock_sstp_client_connects_through_the_lab_guest() {
    if !can_run_netns() {
        return;
    }
    guest_built();
    let mut lab = Lab::new(1);
    let lan = lab.lan();
    let wg = lab.client(0, &format!("{WG_IP}/24"));
    lab.server.start();
    let s = &lab.server;
    s.create_user("alice");
    s.register_client(&wg, "alice");
    wg.join(s, Some(&lan));
    s.create_user("bob");
    s.must_hub_cmd(&["UserPasswordSet", "bob", "/PASSWORD:bob-sstp-pw"]);
    let options = s.must_cmd(&["ProtoOptionsGet", "SSTP"]);
    assert!(
        options
            .lines()
            .any(|l| l.starts_with("Enabled") && l.contains("|Boolean|True")),
        "{options}"
    );
    let cert_dir = tempfile::tempdir().unwrap();
    let cert = cert_dir.path().join("server.pem");
    s.must_cmd(&["ServerCertGet", cert.to_str().unwrap()]);
    let ca = std::fs::read_to_string(&cert).unwrap();
    let _iperf = iperf_server(&lan.ns, &lan.ip, 5201, false);
    // the guest's link: a tap in the server's namespace holding the gateway, on a /24 clear of
    // the lab's client underlays (198.18.128.0/17 is unused by them)
    let third = 128 | (lab.id % 127) as u8;
    let (guest_ip, gateway) = (format!("198.18.{third}.2/24"), format!("198.18.{third}.1"));

    // a wrong password: no address, and the failure in the server's log
    let params =
        format!("SERVER={gateway}\nHUB=DEFAULT\nVPN_USER=bob\nVPN_PASS=wrong-password\nHOLD=0\n");
    let bad = GuestRun::start(&s.ns, &guest_ip, &gateway, &params, &ca);
    let (ok, out, result) = bad.finish(Duration::from_secs(180));
    assert!(!ok, "a wrong password connected:\n{result}\n{out}");
    assert!(result.contains("no PPP address"), "{result}\n{out}");
    let log = s.log_text();
    assert!(
        log.contains("VPN login failed") && log.contains("bob"),
        "the failed login is not logged:\n{log}\n--- guest ---\n{result}\n{out}"
    );
    assert!(!s.must_hub_cmd(&["SessionList"]).contains("SSTP"));

    // the right one, with the user as user@HUB
    let params = format!(
        "SERVER={gateway}\nHUB=DEFAULT\nVPN_USER=bob\nVPN_PASS=bob-sstp-pw\nPING_TARGET={GW}\n\
         PING_ALSO={WG_IP}\nIPERF_TARGET={}\nIPERF_SECONDS=3\nHOLD=1\n",
        lan.ip
    );
    let mut good = GuestRun::start(&s.ns, &guest_ip, &gateway, &params, &ca);
    let connected = good.wait_file("connected", Duration::from_secs(120));
    let address = good
        .file("connected")
        .unwrap_or_default()
        .trim()
        .to_string();
    let (sessions, ips) = (
        s.must_hub_cmd(&["SessionList"]),
        s.must_hub_cmd(&["IpTable"]),
    );
    std::fs::write(good.share.path().join("go"), "").unwrap();
    let (ok, out, result) = good.finish(Duration::from_secs(180));
    assert!(
        connected,
        "the client did not connect:\n{result}\n{out}\n--- server ---\n{}",
        s.log_text()
    );
    assert!(
        address.starts_with("192.168.30."),
        "address {address:?} is not SecureNAT's"
    );
    assert!(sessions.contains("SID-BOB-[SSTP]-"), "{sessions}");
    assert!(ips.contains(&address), "{address} not in IpTable:\n{ips}");
    assert!(ok, "the client side failed:\n{result}\n{out}");
    assert!(
        result.contains(&format!("sstp: ping {GW}: 5/5")),
        "{result}"
    );
    assert!(
        result.contains(&format!("sstp: ping {WG_IP}: 3/3")),
        "{result}"
    );
    let mbit: f64 = result
        .lines()
        .find(|l| l.contains("iperf3"))
        .and_then(|l| l.rsplit(": ").next())
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(mbit > 0.0, "no TCP through SecureNAT:\n{result}");
    // the client left: its session goes
    let end = Instant::now() + Duration::from_secs(30);
    while s.must_hub_cmd(&["SessionList"]).contains("SSTP") && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(!s.must_hub_cmd(&["SessionList"]).contains("SSTP"));
}
