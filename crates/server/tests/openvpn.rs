//! Debian's stock `openvpn` (2.6) client against Etherhub over UDP, `dev tun`, in namespaces:
//! a wrong password is refused, the right one gets a SecureNAT address, pings the gateway,
//! reaches a LAN host over TCP and a wireguard-go client on the same hub, shows in SessionList
//! and SessionGet as SoftEther shows OpenVPN sessions, and leaves SessionList when it
//! disconnects.

mod common;

use base64::Engine as _;
use common::*;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

const GW: &str = "192.168.30.1";
const WG_IP: &str = "192.168.30.225";
const UDP_TUN: (&str, &str) = ("udp 1194", "tun");

/// A stock openvpn client in a namespace, ended by its PID.
struct OpenVpnClient {
    _proc: Proc,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl OpenVpnClient {
    /// `transport`: `udp 1194` or `tcp-client 443`; `dev`: `tun` or `tap`.
    fn start(
        ns: &Netns,
        server: &EtherhubServer,
        remote: &str,
        (transport, dev): (&str, &str),
        user: &str,
        password: &str,
    ) -> Self {
        let (proto, port) = transport.split_once(' ').unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cfg = etherhub_config::Store::new(server.config_path())
            .load()
            .unwrap()
            .unwrap();
        let (cert, _) = cfg.server_cert().unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(cert);
        let pem = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        let auth = dir.path().join("auth.txt");
        std::fs::write(&auth, format!("{user}\n{password}\n")).unwrap();
        let conf = dir.path().join("client.ovpn");
        std::fs::write(
            &conf,
            format!(
                "client\ndev {dev}\nproto {proto}\nremote {remote} {port}\nnobind\n{}\
                 auth-user-pass {}\nverb 3\n<ca>\n-----BEGIN CERTIFICATE-----\n{pem}\n-----END CERTIFICATE-----\n</ca>\n",
                if proto == "udp" { "explicit-exit-notify 1\n" } else { "" },
                auth.display()
            ),
        )
        .unwrap();
        let log = dir.path().join("client.log");
        let child = ns
            .cmd("openvpn")
            .args([
                "--config",
                conf.to_str().unwrap(),
                "--log",
                log.to_str().unwrap(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openvpn is installed by scripts/test");
        OpenVpnClient {
            _proc: Proc {
                child,
                what: "openvpn".into(),
            },
            log,
            _dir: dir,
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log says `needle`.
    fn wait_for(&self, needle: &str, within: Duration) -> bool {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if self.log_text().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

#[test]
fn the_stock_openvpn_client_connects_over_udp_in_tun_mode() {
    if !can_run_netns() {
        return;
    }
    assert!(
        which("openvpn").is_some(),
        "openvpn is installed by scripts/test"
    );
    let mut lab = Lab::new(2);
    let lan = lab.lan();
    let wg = lab.client(0, &format!("{WG_IP}/24"));
    let ov_ns = lab.client_ns[1].take().unwrap();
    let remote = lab.server_addrs[1].clone();
    lab.server.start();
    let s = &lab.server;
    s.create_user("alice");
    s.register_client(&wg, "alice");
    wg.join(s, Some(&lan));
    s.create_user("bob");
    s.must_hub_cmd(&["UserPasswordSet", "bob", "/PASSWORD:bobpw"]);

    // a wrong password: AUTH_FAILED, and no session
    {
        let bad = OpenVpnClient::start(&ov_ns, s, &remote, UDP_TUN, "bob", "wrong");
        assert!(
            bad.wait_for("AUTH_FAILED", Duration::from_secs(20)),
            "{}",
            bad.log_text()
        );
        assert!(!s.must_hub_cmd(&["SessionList"]).contains("OPENVPN"));
    }

    let ov = OpenVpnClient::start(&ov_ns, s, &remote, UDP_TUN, "bob@DEFAULT", "bobpw");
    assert!(
        ov.wait_for("Initialization Sequence Completed", Duration::from_secs(30)),
        "{}\n--- server ---\n{}",
        ov.log_text(),
        s.log_text()
    );
    let log = ov.log_text();
    assert!(log.contains("ifconfig 192.168.30."), "{log}");
    assert!(log.contains("cipher AES-256-GCM"), "{log}");
    // the gateway, a LAN host over TCP, and the WireGuard client on the same hub
    assert!(ov_ns.ping_until(GW, Duration::from_secs(10)), "gateway");
    let _server = iperf_server(&lan.ns, &lan.ip, 5201, false);
    let out = run(ov_ns.cmd("timeout").args([
        "20",
        "iperf3",
        "-c",
        &lan.ip,
        "-t",
        "1",
        "--connect-timeout",
        "5000",
    ]));
    assert!(out.status.success(), "TCP to the LAN: {}", out_text(&out));
    assert!(
        ov_ns.ping_until(WG_IP, Duration::from_secs(10)),
        "the WireGuard client"
    );
    // SessionList and SessionGet as SoftEther shows an OpenVPN session
    let list = s.must_hub_cmd(&["SessionList"]);
    let name = list
        .lines()
        .find_map(|l| {
            l.split('|')
                .nth(1)
                .filter(|n| n.starts_with("SID-BOB-[OPENVPN_L3]-"))
        })
        .unwrap_or_else(|| panic!("{list}"))
        .trim()
        .to_string();
    let get = s.must_hub_cmd(&["SessionGet", &name]);
    assert!(get.contains("Legacy VPN - OPENVPN_L3"), "{get}");
    assert!(get.contains("AES-256-GCM"), "{get}");
    let table = s.must_hub_cmd(&["DhcpTable"]);
    assert!(table.contains(&name), "the lease is the session's: {table}");
    // the client leaves (explicit-exit-notify): its session goes
    drop(ov);
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end && s.must_hub_cmd(&["SessionList"]).contains("OPENVPN") {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        !s.must_hub_cmd(&["SessionList"]).contains("OPENVPN"),
        "the session left SessionList"
    );
}

#[test]
fn the_stock_openvpn_client_connects_over_tcp_in_tap_mode() {
    if !can_run_netns() {
        return;
    }
    assert!(
        which("openvpn").is_some(),
        "openvpn is installed by scripts/test"
    );
    let mut lab = Lab::new(1);
    let ns = lab.client_ns[0].take().unwrap();
    let remote = lab.server_addrs[0].clone();
    lab.server.start();
    let s = &lab.server;
    s.create_user("carol");
    s.must_hub_cmd(&["UserPasswordSet", "carol", "/PASSWORD:carolpw"]);
    // on the TCP listener 443, which TLS and SoftEther's clients share
    let ov = OpenVpnClient::start(
        &ns,
        s,
        &remote,
        ("tcp-client 443", "tap"),
        "DEFAULT\\carol",
        "carolpw",
    );
    assert!(
        ov.wait_for("Initialization Sequence Completed", Duration::from_secs(30)),
        "{}\n--- server ---\n{}",
        ov.log_text(),
        s.log_text()
    );
    // a tap client is on the hub's Ethernet: it asks SecureNAT's DHCP itself
    let dir = tempfile::tempdir().unwrap();
    let ip = udhcpc(&ns, "tap0", dir.path()).expect("a DHCP lease over the tap");
    assert!(ip.starts_with("192.168.30."), "{ip}");
    assert!(ns.ping_until(GW, Duration::from_secs(10)), "gateway");
    let list = s.must_hub_cmd(&["SessionList"]);
    assert!(list.contains("SID-CAROL-[OPENVPN_L2]-"), "{list}");
    let ips = s.must_hub_cmd(&["IpTable"]);
    assert!(ips.contains(&ip), "{ips}");
    // the connection closes: the session goes
    drop(ov);
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end && s.must_hub_cmd(&["SessionList"]).contains("OPENVPN") {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(!s.must_hub_cmd(&["SessionList"]).contains("OPENVPN"));
}
