//! Debian's stock `openvpn` (2.6) client against Etherhub over UDP, `dev tun`, in namespaces:
//! a wrong password is refused, the right one gets a SecureNAT address, pings the gateway,
//! reaches a LAN host over TCP and a wireguard-go client on the same hub, shows in SessionList
//! and SessionGet as SoftEther shows OpenVPN sessions, and leaves SessionList when it
//! disconnects. With tls-crypt required, the configs carry the key and connect, and a config
//! without it gets no answer.

mod common;

use common::*;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const GW: &str = "192.168.30.1";
const WG_IP: &str = "192.168.30.225";

/// A stock openvpn client in a namespace, ended by its PID.
struct OpenVpnClient {
    _proc: Proc,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// A hub user (password `<user>pw`) and the configurations `OpenVpnMakeConfig` wrote for it.
struct Configs {
    dir: tempfile::TempDir,
    l3: PathBuf,
    l2: PathBuf,
}

fn user_and_configs(s: &EtherhubServer, user: &str) -> Configs {
    s.create_user(user);
    s.must_hub_cmd(&["UserPasswordSet", user, &format!("/PASSWORD:{user}pw")]);
    let dir = tempfile::tempdir().unwrap();
    let (l3, l2) = make_configs(s, dir.path());
    Configs { dir, l3, l2 }
}

/// Whether the OpenVPN sessions leave SessionList within `within`.
fn openvpn_sessions_gone(s: &EtherhubServer, within: Duration) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if !s.must_hub_cmd(&["SessionList"]).contains("OPENVPN") {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// The configurations `OpenVpnMakeConfig` wrote (its zip, unpacked by busybox's unzip), in
/// `dir`: the l3 (`dev tun`) and the l2 (`dev tap`) one, by name.
fn make_configs(server: &EtherhubServer, dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let zip = dir.join("configs.zip");
    let out = server.must_cmd(&["OpenVpnMakeConfig", zip.to_str().unwrap()]);
    assert!(
        out.contains("The sample setting file was saved as"),
        "{out}"
    );
    let unzip = run(Command::new("busybox").args([
        "unzip",
        "-o",
        "-q",
        zip.to_str().unwrap(),
        "-d",
        dir.to_str().unwrap(),
    ]));
    assert!(unzip.status.success(), "{}", out_text(&unzip));
    let mut l3 = None;
    let mut l2 = None;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with("_openvpn_remote_access_l3.ovpn") {
            l3 = Some(e.path());
        } else if name.ends_with("_openvpn_site_to_site_bridge_l2.ovpn") {
            l2 = Some(e.path());
        }
    }
    assert!(dir.join("readme.txt").exists());
    (l3.expect("the l3 config"), l2.expect("the l2 config"))
}

impl OpenVpnClient {
    /// The stock client on a config `OpenVpnMakeConfig` wrote, unchanged but for the server's
    /// address (and, for TCP, the transport): given on the command line, with the credentials
    /// file and the log.
    /// `port`: the server's port; `tcp`: over TCP rather than UDP.
    fn start(
        ns: &Netns,
        config: &std::path::Path,
        (remote, port, tcp): (&str, &str, bool),
        user: &str,
        password: &str,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let auth = dir.path().join("auth.txt");
        std::fs::write(&auth, format!("{user}\n{password}\n")).unwrap();
        let log = dir.path().join("client.log");
        let mut cmd = ns.cmd("openvpn");
        // (a remote before the config's comes first in the client's list)
        cmd.args(["--remote", remote, port]);
        cmd.args(["--config", config.to_str().unwrap()]);
        if tcp {
            cmd.args(["--proto", "tcp-client"]);
        } else {
            cmd.args(["--explicit-exit-notify", "1"]);
        }
        let child = cmd
            .args(["--auth-user-pass", auth.to_str().unwrap()])
            .args(["--log", log.to_str().unwrap()])
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
    let configs = user_and_configs(s, "bob");
    let l3 = configs.l3.clone();
    let text = std::fs::read_to_string(&l3).unwrap();
    assert!(text.contains("\ndev tun\n") && text.contains("<ca>\n-----BEGIN CERTIFICATE-----"));
    let cert = configs.dir.path().join("server.crt");
    s.must_cmd(&["ServerCertGet", cert.to_str().unwrap()]);
    let pem = std::fs::read_to_string(&cert).unwrap();
    assert!(
        text.contains(&pem),
        "the config carries the certificate ServerCertGet saves"
    );

    // a wrong password: AUTH_FAILED, and no session
    {
        let bad = OpenVpnClient::start(&ov_ns, &l3, (&remote, "1194", false), "bob", "wrong");
        assert!(
            bad.wait_for("AUTH_FAILED", Duration::from_secs(20)),
            "{}",
            bad.log_text()
        );
        assert!(!s.must_hub_cmd(&["SessionList"]).contains("OPENVPN"));
    }

    // OpenVPN can be turned off and on again (SoftEther 5's names)
    let options = s.must_cmd(&["ProtoOptionsGet", "OpenVPN"]);
    assert!(
        options
            .lines()
            .any(|l| l.starts_with("Enabled") && l.contains("|Boolean|True")),
        "{options}"
    );
    s.must_cmd(&[
        "ProtoOptionsSet",
        "OpenVPN",
        "/NAME:Enabled",
        "/VALUE:false",
    ]);
    {
        let off = OpenVpnClient::start(&ov_ns, &l3, (&remote, "1194", false), "bob", "bobpw");
        assert!(!off.wait_for("Initialization Sequence Completed", Duration::from_secs(6)));
    }
    s.must_cmd(&["ProtoOptionsSet", "OpenVPN", "/NAME:Enabled", "/VALUE:true"]);
    let ov = OpenVpnClient::start(
        &ov_ns,
        &l3,
        (&remote, "1194", false),
        "bob@DEFAULT",
        "bobpw",
    );
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
    assert!(
        openvpn_sessions_gone(s, Duration::from_secs(10)),
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
    // on the TCP listener 443, which TLS and SoftEther's clients share
    let configs = user_and_configs(s, "carol");
    let l2 = configs.l2.clone();
    let ov = OpenVpnClient::start(
        &ns,
        &l2,
        (&remote, "443", true),
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
    assert!(
        openvpn_sessions_gone(s, Duration::from_secs(10)),
        "the session left SessionList"
    );
}

#[test]
fn openvpn_and_wireguard_share_a_udp_port_and_both_come_back_after_a_restart() {
    if !can_run_netns() {
        return;
    }
    let mut lab = Lab::new(2);
    let wg = lab.client(0, &format!("{WG_IP}/24"));
    let ns = lab.client_ns[1].take().unwrap();
    let remote = lab.server_addrs[1].clone();
    lab.server.start();
    {
        let s = &lab.server;
        s.create_user("alice");
        s.register_client(&wg, "alice");
    }
    let configs = user_and_configs(&lab.server, "bob");
    let l3 = configs.l3.clone();
    wg.join(&lab.server, None);
    // WireGuard's port 443 for both (the config's remote names 1194; the command line wins)
    let ov = OpenVpnClient::start(&ns, &l3, (&remote, "443", false), "bob", "bobpw");
    assert!(
        ov.wait_for("Initialization Sequence Completed", Duration::from_secs(30)),
        "{}",
        ov.log_text()
    );
    assert!(wg.ns.ping_until(GW, Duration::from_secs(10)), "WireGuard");
    assert!(ns.ping_until(GW, Duration::from_secs(10)), "OpenVPN");
    // the server restarts: each client comes back by its own means (WireGuard's handshake
    // retry, OpenVPN's ping-restart of 30 s), the other's packets never in the way
    lab.server.stop();
    lab.server.start();
    assert!(
        wg.ns.ping_until(GW, Duration::from_secs(30)),
        "WireGuard again"
    );
    assert!(
        ns.ping_until(GW, Duration::from_secs(60)),
        "OpenVPN again:\n{}",
        ov.log_text()
    );
    let list = lab.server.must_hub_cmd(&["SessionList"]);
    assert!(
        list.contains("[WIREGUARD]") && list.contains("[OPENVPN_L3]"),
        "{list}"
    );
}

#[test]
fn a_renegotiation_during_a_transfer_loses_no_bytes() {
    if !can_run_netns() {
        return;
    }
    let mut lab = Lab::new(1);
    let lan = lab.lan();
    let ns = lab.client_ns[0].take().unwrap();
    let remote = lab.server_addrs[0].clone();
    lab.server.start();
    let s = &lab.server;
    let configs = user_and_configs(s, "dave");
    let l3 = configs.l3.clone();
    // a config with reneg-sec 4 (the client renegotiates every 4 s)
    let fast = configs.dir.path().join("fast.ovpn");
    let text = std::fs::read_to_string(&l3).unwrap();
    std::fs::write(&fast, format!("reneg-sec 4\n{text}")).unwrap();
    let ov = OpenVpnClient::start(&ns, &fast, (&remote, "1194", false), "dave", "davepw");
    assert!(
        ov.wait_for("Initialization Sequence Completed", Duration::from_secs(30)),
        "{}",
        ov.log_text()
    );
    let _server = iperf_server(&lan.ns, &lan.ip, 5201, false);
    // 10 s of TCP at 20 Mbit/s, across two renegotiations or more: every byte sent arrives
    let out = run(ns
        .cmd("timeout")
        .args(["60", "iperf3", "-c", &lan.ip, "-t", "10", "-b", "20M", "-J"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("iperf3: {}", out_text(&out)));
    let sent = v["end"]["sum_sent"]["bytes"].as_f64().unwrap_or(0.0);
    let received = v["end"]["sum_received"]["bytes"].as_f64().unwrap_or(0.0);
    assert!(sent > 10_000_000.0, "{sent} bytes sent");
    assert!(
        received >= sent * 0.99,
        "{received} of {sent} bytes arrived"
    );
    let log = ov.log_text();
    let renegotiations = log.matches("TLS: soft reset").count();
    assert!(renegotiations >= 2, "the client renegotiated:\n{log}");
    assert!(ns.ping_until(GW, Duration::from_secs(5)), "still up after");
}

#[test]
fn tun_over_tcp_and_tap_over_udp_work_too() {
    if !can_run_netns() {
        return;
    }
    let mut lab = Lab::new(2);
    let tun_ns = lab.client_ns[0].take().unwrap();
    let tap_ns = lab.client_ns[1].take().unwrap();
    let (tun_remote, tap_remote) = (lab.server_addrs[0].clone(), lab.server_addrs[1].clone());
    lab.server.start();
    let s = &lab.server;
    let configs = user_and_configs(s, "erin");
    let (l3, l2) = (configs.l3.clone(), configs.l2.clone());
    let tun = OpenVpnClient::start(&tun_ns, &l3, (&tun_remote, "992", true), "erin", "erinpw");
    let tap = OpenVpnClient::start(&tap_ns, &l2, (&tap_remote, "5555", false), "erin", "erinpw");
    for c in [&tun, &tap] {
        assert!(
            c.wait_for("Initialization Sequence Completed", Duration::from_secs(30)),
            "{}",
            c.log_text()
        );
    }
    assert!(
        tun_ns.ping_until(GW, Duration::from_secs(10)),
        "tun over TCP"
    );
    let dir = tempfile::tempdir().unwrap();
    let ip = udhcpc(&tap_ns, "tap0", dir.path()).expect("a DHCP lease over the tap");
    assert!(
        tap_ns.ping_until(GW, Duration::from_secs(10)),
        "tap over UDP ({ip})"
    );
    let list = s.must_hub_cmd(&["SessionList"]);
    assert!(
        list.contains("SID-ERIN-[OPENVPN_L3]-") && list.contains("SID-ERIN-[OPENVPN_L2]-"),
        "{list}"
    );
}

#[test]
fn five_wrong_passwords_lock_the_address_out_for_openvpn_too() {
    if !can_run_netns() {
        return;
    }
    let mut lab = Lab::new(1);
    let ns = lab.client_ns[0].take().unwrap();
    let remote = lab.server_addrs[0].clone();
    lab.server.start();
    let s = &lab.server;
    let configs = user_and_configs(s, "frank");
    let l3 = configs.l3.clone();
    for i in 0..5 {
        let bad = OpenVpnClient::start(&ns, &l3, (&remote, "1194", false), "frank", "guess");
        assert!(
            bad.wait_for("AUTH_FAILED", Duration::from_secs(20)),
            "try {i}: {}",
            bad.log_text()
        );
    }
    // the right password from the same address, locked out now: refused without a check
    let good = OpenVpnClient::start(&ns, &l3, (&remote, "1194", false), "frank", "frankpw");
    assert!(
        good.wait_for("AUTH_FAILED", Duration::from_secs(20)),
        "{}",
        good.log_text()
    );
    assert!(s.log_text().contains("security: VPN login failed"));
    assert!(!s.must_hub_cmd(&["SessionList"]).contains("OPENVPN"));
}

#[test]
fn softethers_own_data_channel_aes_128_cbc_with_sha1_works() {
    if !can_run_netns() {
        return;
    }
    let mut lab = Lab::new(1);
    let ns = lab.client_ns[0].take().unwrap();
    let remote = lab.server_addrs[0].clone();
    lab.server.start();
    let s = &lab.server;
    let configs = user_and_configs(s, "gina");
    let l3 = configs.l3.clone();
    // what SoftEther's configs ask (cipher AES-128-CBC, auth SHA1), as a 2.6 client needs it
    let conf = configs.dir.path().join("softether-style.ovpn");
    let text = std::fs::read_to_string(&l3).unwrap().replace(
        "data-ciphers AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305",
        "data-ciphers AES-128-CBC\ncipher AES-128-CBC\nauth SHA1",
    );
    std::fs::write(&conf, text).unwrap();
    let ov = OpenVpnClient::start(&ns, &conf, (&remote, "1194", false), "gina", "ginapw");
    assert!(
        ov.wait_for("Initialization Sequence Completed", Duration::from_secs(30)),
        "{}",
        ov.log_text()
    );
    assert!(
        ov.log_text()
            .contains("Data Channel: cipher 'AES-128-CBC', auth 'SHA1'"),
        "{}",
        ov.log_text()
    );
    assert!(ns.ping_until(GW, Duration::from_secs(10)), "gateway");
    let list = s.must_hub_cmd(&["SessionList"]);
    let name = list
        .lines()
        .find_map(|l| {
            l.split('|')
                .nth(1)
                .filter(|n| n.starts_with("SID-GINA-[OPENVPN_L3]-"))
        })
        .unwrap_or_else(|| panic!("{list}"))
        .trim()
        .to_string();
    let get = s.must_hub_cmd(&["SessionGet", &name]);
    assert!(get.contains("AES-128-CBC"), "{get}");
}

#[test]
fn with_tls_crypt_required_the_made_configs_connect_and_a_config_without_the_key_is_refused() {
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
    // TlsCrypt off (the default): the configs have no key
    let plain = user_and_configs(s, "hana");
    for c in [&plain.l3, &plain.l2] {
        let text = std::fs::read_to_string(c).unwrap();
        assert!(!text.contains("tls-crypt"), "{text}");
    }
    let options = s.must_cmd(&["ProtoOptionsGet", "OpenVPN"]);
    assert!(
        options
            .lines()
            .any(|l| l.starts_with("TlsCrypt") && l.contains("|Boolean|False")),
        "{options}"
    );
    s.must_cmd(&[
        "ProtoOptionsSet",
        "OpenVPN",
        "/NAME:TlsCrypt",
        "/VALUE:true",
    ]);
    let options = s.must_cmd(&["ProtoOptionsGet", "OpenVPN"]);
    assert!(
        options
            .lines()
            .any(|l| l.starts_with("TlsCrypt") && l.contains("|Boolean|True")),
        "{options}"
    );
    // TlsCrypt on: both configs carry the server's key inline
    let dir = tempfile::tempdir().unwrap();
    let (l3, l2) = make_configs(s, dir.path());
    for c in [&l3, &l2] {
        let text = std::fs::read_to_string(c).unwrap();
        assert!(
            text.contains("<tls-crypt>\n")
                && text.contains("-----BEGIN OpenVPN Static key V1-----")
                && text.contains("</tls-crypt>\n"),
            "{text}"
        );
    }

    // the config without the key: no answer at all, so no TLS and no session
    {
        let refused =
            OpenVpnClient::start(&ns, &plain.l3, (&remote, "1194", false), "hana", "hanapw");
        assert!(!refused.wait_for("Initialization Sequence Completed", Duration::from_secs(8)));
        let log = refused.log_text();
        assert!(!log.contains("TLS: Initial packet from"), "{log}");
        assert!(!s.must_hub_cmd(&["SessionList"]).contains("OPENVPN"));
    }

    // the config with it (at verb 4, where the client logs its control channel keys):
    // tls-crypt, an address, the gateway
    let l3 = {
        let verbose = dir.path().join("verbose.ovpn");
        let text = std::fs::read_to_string(&l3).unwrap();
        std::fs::write(&verbose, format!("{text}verb 4\n")).unwrap();
        verbose
    };
    let tls_crypt = "Outgoing Control Channel Encryption: Cipher 'AES-256-CTR' initialized";
    let ov = OpenVpnClient::start(&ns, &l3, (&remote, "1194", false), "hana", "hanapw");
    assert!(
        ov.wait_for("Initialization Sequence Completed", Duration::from_secs(30)),
        "{}\n--- server ---\n{}",
        ov.log_text(),
        s.log_text()
    );
    let log = ov.log_text();
    assert!(log.contains(tls_crypt), "the client uses tls-crypt: {log}");
    assert!(log.contains("ifconfig 192.168.30."), "{log}");
    assert!(ns.ping_until(GW, Duration::from_secs(10)), "gateway");
    assert!(s
        .must_hub_cmd(&["SessionList"])
        .contains("SID-HANA-[OPENVPN_L3]-"));
    drop(ov);
    assert!(
        openvpn_sessions_gone(s, Duration::from_secs(10)),
        "the session left SessionList"
    );

    // TlsCrypt off again: a client with the key still connects (over TCP this time)
    s.must_cmd(&[
        "ProtoOptionsSet",
        "OpenVPN",
        "/NAME:TlsCrypt",
        "/VALUE:false",
    ]);
    let ov = OpenVpnClient::start(&ns, &l3, (&remote, "443", true), "hana", "hanapw");
    assert!(
        ov.wait_for("Initialization Sequence Completed", Duration::from_secs(30)),
        "{}\n--- server ---\n{}",
        ov.log_text(),
        s.log_text()
    );
    assert!(ov.log_text().contains(tls_crypt));
    assert!(
        ns.ping_until(GW, Duration::from_secs(10)),
        "gateway over TCP"
    );
}
