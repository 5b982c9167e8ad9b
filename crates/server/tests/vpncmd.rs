//! SoftEther's own admin tool against Etherhub: Debian's stock vpncmd (5.01) in one namespace,
//! Etherhub in another, over TCP 443 with a server password set, through SoftEther's native
//! protocol (signature, hello, hashed login, PACK RPC). A stock wireguard-go client gives the
//! session commands a real session to show and to disconnect.

mod common;

use common::softether::Holder;
use common::*;
use std::process::Stdio;
use std::time::Duration;

const PASSWORD: &str = "s3cret-Pw";

/// Stock vpncmd in `ns`, talking to `target`, inside a holder (vpncmd writes its language
/// setting to /var/lib/softether); stdin closed.
struct Vpncmd<'a> {
    holder: &'a Holder,
    ns: &'a Netns,
    target: String,
}

impl Vpncmd<'_> {
    /// Exit status (SoftEther's error code) and what vpncmd printed.
    fn run(&self, args: &[&str]) -> (i32, String) {
        let out = run(self
            .holder
            .cmd(self.ns, "timeout")
            .args(["60", "vpncmd", &self.target, "/SERVER"])
            .args(args)
            .stdin(Stdio::null()));
        (out.status.code().unwrap_or(-1), out_text(&out))
    }

    /// A command as server admin with the password.
    fn server(&self, command: &[&str]) -> (i32, String) {
        let pw = format!("/PASSWORD:{PASSWORD}");
        self.run(&[&[pw.as_str(), "/CMD"], command].concat())
    }

    /// A command as server admin with hub `hub` selected (`/ADMINHUB`).
    fn hub(&self, hub: &str, command: &[&str]) -> (i32, String) {
        let pw = format!("/PASSWORD:{PASSWORD}");
        let h = format!("/ADMINHUB:{hub}");
        self.run(&[&[pw.as_str(), h.as_str(), "/CMD"], command].concat())
    }

    fn ok(&self, command: &[&str]) -> String {
        let (code, text) = self.server(command);
        assert_eq!(code, 0, "vpncmd {command:?} failed:\n{text}");
        assert!(
            text.contains("The command completed successfully."),
            "{text}"
        );
        text
    }

    fn hub_ok(&self, hub: &str, command: &[&str]) -> String {
        let (code, text) = self.hub(hub, command);
        assert_eq!(
            code, 0,
            "vpncmd /ADMINHUB:{hub} {command:?} failed:\n{text}"
        );
        text
    }
}

fn has_vpncmd() -> bool {
    if which("vpncmd").is_some() {
        return true;
    }
    let why = "vpncmd (package softether-vpncmd) is not installed; scripts/test installs it";
    if std::env::var_os("ETHERHUB_SKIP_NETNS").is_some() {
        eprintln!("SKIPPED: {why}");
        return false;
    }
    panic!("{why}");
}

#[test]
fn stock_vpncmd_administers_etherhub_over_tcp_443() {
    if !can_run_netns() || !has_vpncmd() {
        return;
    }
    let mut lab = Lab::new(2);
    let wg = lab.client(0, "192.168.30.233/24");
    let admin_ns = lab.client_ns[1].take().unwrap();
    let server_ip = lab.server_addrs[1].clone();
    lab.server.start();

    // The first password is set with vpncmd from the server itself (an empty password is
    // good from loopback only).
    let holder = Holder::new();
    let local = Vpncmd {
        holder: &holder,
        ns: &lab.server.ns,
        target: "127.0.0.1:443".into(),
    };
    // `COMMAND ?` prints SoftEther's help from its string table, as vpncmd does
    let help = |text: &str| -> String {
        let from = text
            .find("Help for command")
            .unwrap_or_else(|| panic!("no help in:\n{text}"));
        let rest = &text[from..];
        let end = rest.find("The command completed").unwrap_or(rest.len());
        rest[..end].trim_end().to_string()
    };
    for command in ["GroupCreate", "AccessAddEx", "UserPolicySet", "SessionGet"] {
        // (vpncmd exits with 38 after a help: the command did not run)
        let (_, theirs) = local.run(&["/ADMINHUB:DEFAULT", "/CMD", command, "?"]);
        let ours = out_text(&lab.server.cmd_in(Some("DEFAULT"), &[command, "?"]));
        assert_eq!(help(&ours), help(&theirs), "{command} ?");
    }
    // Etherhub's own commands have no SoftEther text: a short usage
    let ours = out_text(&lab.server.cmd_in(Some("DEFAULT"), &["WgkAdd", "?"]));
    assert!(ours.contains("Syntax: WgkAdd [key] [/HUB:value]"), "{ours}");
    let (code, text) = local.run(&["/CMD", "ServerPasswordSet", PASSWORD]);
    assert_eq!(code, 0, "{text}");
    let v = Vpncmd {
        holder: &holder,
        ns: &admin_ns,
        target: format!("{server_ip}:443"),
    };
    // From another machine the empty password is refused. (vpncmd would then prompt for a
    // password; /PROGRAMMING makes it report the error instead.)
    let (code, text) = v.run(&["/PROGRAMMING", "/CMD", "ServerInfoGet"]);
    assert_eq!(code, 12, "{text}");

    // Server information and status.
    let info = v.ok(&["ServerInfoGet"]);
    assert!(info.contains("You have administrator privileges for the entire VPN Server."));
    assert_eq!(row(&info, "Product Name  "), "Etherhub VPN Server");
    assert_eq!(row(&info, "Server Type"), "Standalone Server");
    assert!(
        !info.contains("Caution"),
        "no old-format certificate notice:\n{info}"
    );
    let status = v.ok(&["ServerStatusGet"]);
    assert_eq!(row(&status, "Number of Virtual Hubs"), "1");
    assert_eq!(row(&status, "Server Type"), "Standalone Server");
    assert!(
        row(&status, "Server Started at").starts_with("20"),
        "{status}"
    );

    // Hubs.
    v.ok(&["HubCreate", "TEST", "/PASSWORD:hubpw"]);
    let (code, text) = v.server(&["HubCreate", "TEST", "/PASSWORD:x"]);
    assert_eq!(code, 57, "{text}");
    assert!(text.contains("Error occurred. (Error code: 57)"), "{text}");
    let hubs = v.ok(&["HubList"]);
    assert!(
        hubs.lines()
            .any(|l| l.starts_with("Virtual Hub Name") && l.contains("|TEST")),
        "{hubs}"
    );
    assert!(hubs.contains("|DEFAULT"), "{hubs}");
    let selected = v.ok(&["Hub", "TEST"]);
    assert!(
        selected.contains("The Virtual Hub \"TEST\" has been selected."),
        "{selected}"
    );
    let opts = v.hub_ok("TEST", &["OptionsGet"]);
    assert_eq!(row(&opts, "Max Number of Sessions"), "Infinite", "{opts}");
    assert_eq!(row(&opts, "Status"), "Online", "{opts}");

    // Users, with vpncmd's hashed passwords.
    v.hub_ok(
        "TEST",
        &[
            "UserCreate",
            "alice",
            "/GROUP:none",
            "/REALNAME:Alice",
            "/NOTE:none",
        ],
    );
    v.hub_ok("TEST", &["UserPasswordSet", "alice", "/PASSWORD:alicepw"]);
    let cfg =
        etherhub_config::Config::parse(&std::fs::read_to_string(lab.server.config_path()).unwrap())
            .unwrap();
    let alice = cfg.user("TEST", "alice").unwrap();
    assert_eq!(
        alice.auth_password,
        etherhub_config::hash::hash_user_password("alice", "alicepw"),
        "the password vpncmd set is the one alice logs in with"
    );
    let user = v.hub_ok("TEST", &["UserGet", "alice"]);
    assert_eq!(row(&user, "User Name"), "alice");
    assert_eq!(row(&user, "Full Name"), "Alice");
    assert_eq!(row(&user, "Auth Type"), "Password Authentication");
    let users = v.hub_ok("TEST", &["UserList"]);
    assert_eq!(row(&users, "User Name"), "alice", "{users}");
    let (code, text) = v.hub("TEST", &["UserGet", "nobody"]);
    assert_eq!(code, 29, "{text}");
    assert!(text.contains("Object not found."), "{text}");

    // groups and policies, as stock vpncmd sends them (PACK policy:<Name> elements)
    v.hub_ok(
        "TEST",
        &["GroupCreate", "staff", "/REALNAME:Staff", "/NOTE:none"],
    );
    let (code, text) = v.hub("TEST", &["GroupCreate", "staff", "/REALNAME:x", "/NOTE:x"]);
    assert_eq!(code, 67, "{text}");
    v.hub_ok("TEST", &["GroupJoin", "staff", "/USERNAME:alice"]);
    v.hub_ok(
        "TEST",
        &[
            "GroupPolicySet",
            "staff",
            "/NAME:PrivacyFilter",
            "/VALUE:yes",
        ],
    );
    v.hub_ok(
        "TEST",
        &["UserPolicySet", "alice", "/NAME:maxd", "/VALUE:5000000"],
    );
    let group = v.hub_ok("TEST", &["GroupGet", "staff"]);
    assert!(group.contains("Privacy Filter Mode"), "{group}");
    assert!(group.contains(" alice"), "{group}");
    let user = v.hub_ok("TEST", &["UserGet", "alice"]);
    assert_eq!(row(&user, "Group Name"), "staff", "{user}");
    assert!(user.contains("5000000 bps"), "{user}");
    let cfg =
        etherhub_config::Config::parse(&std::fs::read_to_string(lab.server.config_path()).unwrap())
            .unwrap();
    let alice = cfg.user("TEST", "alice").unwrap();
    let own = alice
        .policy
        .expect("vpncmd's UserPolicySet gave alice her own policy");
    assert_eq!(own.max_download(), 5_000_000);
    assert!(own.access() && !own.privacy_filter());
    assert!(cfg
        .group("TEST", "staff")
        .unwrap()
        .policy
        .unwrap()
        .privacy_filter());
    // an access rule through vpncmd's PACK, read back by vpncmd itself
    v.hub_ok(
        "TEST",
        &[
            "AccessAdd",
            "discard",
            "/MEMO:no telnet",
            "/PRIORITY:5",
            "/SRCUSERNAME:staff",
            "/DESTUSERNAME:",
            "/SRCMAC:",
            "/DESTMAC:",
            "/SRCIP:192.168.30.0/24",
            "/DESTIP:0.0.0.0/0",
            "/PROTOCOL:tcp",
            "/SRCPORT:",
            "/DESTPORT:23",
            "/TCPSTATE:",
        ],
    );
    let rules = v.hub_ok("TEST", &["AccessList"]);
    assert!(
        rules.contains("(ipv4) SrcIPv4=192.168.30.0/24, Protocol=TCP, DstPort=23, SrcUser=staff"),
        "{rules}"
    );
    assert!(
        rules.contains("no telnet") && rules.contains("Discard"),
        "{rules}"
    );
    let cfg =
        etherhub_config::Config::parse(&std::fs::read_to_string(lab.server.config_path()).unwrap())
            .unwrap();
    let rule = &cfg.access_list("TEST").unwrap()[0];
    assert_eq!(
        (rule.dst_ports, rule.protocol, rule.discard),
        ((23, 23), 6, true)
    );
    v.hub_ok("TEST", &["AccessDelete", "1"]);
    v.hub_ok("TEST", &["UserPolicyRemove", "alice"]);
    v.hub_ok("TEST", &["GroupUnjoin", "alice"]);
    v.hub_ok("TEST", &["GroupDelete", "staff"]);
    let cfg =
        etherhub_config::Config::parse(&std::fs::read_to_string(lab.server.config_path()).unwrap())
            .unwrap();
    let alice = cfg.user("TEST", "alice").unwrap();
    assert_eq!((alice.group.as_str(), alice.policy), ("", None));
    assert!(cfg.groups("TEST").unwrap().is_empty());

    // The hub admin logs in with the hub's password (hashed by vpncmd) and sees its hub only.
    let (code, text) = v.run(&["/HUB:TEST", "/PASSWORD:hubpw", "/CMD", "UserList"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("alice"), "{text}");
    let (code, text) = v.run(&[
        "/HUB:TEST",
        "/PASSWORD:hubpw",
        "/CMD",
        "HubCreate",
        "X",
        "/PASSWORD:x",
    ]);
    assert_eq!(code, 52, "a hub admin cannot create hubs:\n{text}");

    // A WireGuard session on DEFAULT to list, inspect and disconnect.
    let (code, text) = v.hub(
        "DEFAULT",
        &[
            "UserCreate",
            "meta",
            "/GROUP:none",
            "/REALNAME:none",
            "/NOTE:none",
        ],
    );
    assert_eq!(code, 0, "{text}");
    // (vpncmd 5.01 has no WgkAdd; Etherhub's own cmd registers the key)
    let pw = format!("/PASSWORD:{PASSWORD}");
    let out = run(lab.server.ns.cmd(ETHERHUB).args([
        "cmd",
        "127.0.0.1:443",
        "/SERVER",
        &pw,
        "/CMD",
        "WgkAdd",
        &wg.public_key,
        "/HUB:DEFAULT",
        "/USER:meta",
        "/IP:192.168.30.233",
    ]));
    assert!(out.status.success(), "{}", out_text(&out));
    wg.join(&lab.server, None);
    assert!(
        wg.ns.ping_until("192.168.30.1", Duration::from_secs(15)),
        "{}",
        lab.server.log_text()
    );
    let sessions = v.hub_ok("DEFAULT", &["SessionList"]);
    let sid = sessions
        .lines()
        .filter(|l| l.starts_with("Session Name"))
        .filter_map(|l| l.split('|').nth(1))
        .map(str::trim)
        .find(|s| s.contains("WIREGUARD"))
        .unwrap_or_else(|| panic!("no WireGuard session:\n{sessions}"))
        .to_string();
    assert!(sessions.contains("SID-SECURENAT-1"), "{sessions}");
    let session = v.hub_ok("DEFAULT", &["SessionGet", &sid]);
    assert_eq!(
        row(&session, "User Name (Authentication)"),
        "meta",
        "{session}"
    );
    assert_eq!(
        row(&session, "Client IP Address"),
        wg.underlay_ip(),
        "{session}"
    );
    assert!(
        row(&session, "Physical Underlay Protocol").contains("WIREGUARD"),
        "{session}"
    );
    assert_eq!(
        row(&session, "Server Product Name"),
        "Etherhub VPN Server",
        "{session}"
    );
    let port = must(wg.ns.cmd("wg").args(["show", &wg.ifname, "listen-port"]));
    assert_eq!(
        row(&session, "Client Port (Reported)"),
        port.trim(),
        "{session}"
    );
    assert!(!row(&session, "Outgoing Unicast Packets").is_empty());
    assert_ne!(
        row(&session, "Incoming Unicast Packets"),
        "0 packets",
        "{session}"
    );
    let ips = v.hub_ok("DEFAULT", &["IpTable"]);
    assert!(
        ips.lines()
            .any(|l| l.starts_with("IP Address") && l.contains("192.168.30.233")),
        "{ips}"
    );
    let macs = v.hub_ok("DEFAULT", &["MacTable"]);
    assert!(macs.contains(&sid), "{macs}");

    // SecureNAT and its NAT and DHCP settings, on TEST (DEFAULT keeps serving the client).
    v.hub_ok("TEST", &["SecureNatEnable"]);
    let st = v.hub_ok("TEST", &["SecureNatStatusGet"]);
    assert_eq!(row(&st, "NAT TCP/IP Sessions"), "0 Session", "{st}");
    let host = v.hub_ok("TEST", &["SecureNatHostGet"]);
    assert_eq!(row(&host, "IP Address"), "192.168.30.1", "{host}");
    v.hub_ok(
        "TEST",
        &[
            "SecureNatHostSet",
            "/MAC:00-ac-11-22-33-44",
            "/IP:192.168.40.1",
            "/MASK:255.255.255.0",
        ],
    );
    let host = v.hub_ok("TEST", &["SecureNatHostGet"]);
    assert_eq!(row(&host, "IP Address"), "192.168.40.1", "{host}");
    assert_eq!(row(&host, "MAC Address"), "00-AC-11-22-33-44", "{host}");
    v.hub_ok(
        "TEST",
        &[
            "NatSet",
            "/MTU:1400",
            "/TCPTIMEOUT:3600",
            "/UDPTIMEOUT:120",
            "/LOG:no",
        ],
    );
    let nat = v.hub_ok("TEST", &["NatGet"]);
    assert_eq!(row(&nat, "MTU Value"), "1400", "{nat}");
    assert_eq!(row(&nat, "TCP Session Timeout (Seconds)"), "3600", "{nat}");
    v.hub_ok("TEST", &["NatDisable"]);
    assert_eq!(
        row(&v.hub_ok("TEST", &["NatGet"]), "Use Virtual NAT Function"),
        "No"
    );
    v.hub_ok("TEST", &["NatEnable"]);
    v.hub_ok(
        "TEST",
        &[
            "DhcpSet",
            "/START:192.168.40.10",
            "/END:192.168.40.99",
            "/MASK:255.255.255.0",
            "/EXPIRE:3600",
            "/GW:192.168.40.1",
            "/DNS:192.168.40.1",
            "/DNS2:none",
            "/DOMAIN:lab",
            "/LOG:yes",
        ],
    );
    let dhcp = v.hub_ok("TEST", &["DhcpGet"]);
    assert_eq!(
        row(&dhcp, "Start Distribution Address Band"),
        "192.168.40.10",
        "{dhcp}"
    );
    assert_eq!(row(&dhcp, "Lease Limit (Seconds)"), "3600", "{dhcp}");
    v.hub_ok("TEST", &["DhcpDisable"]);
    v.hub_ok("TEST", &["DhcpEnable"]);
    // a NAT flow and a lease from the client on DEFAULT
    wg.ns.ping("192.168.30.1", 1);
    let flows = v.hub_ok("DEFAULT", &["NatTable"]);
    assert!(flows.contains("NatTable command"), "{flows}");
    v.hub_ok("DEFAULT", &["DhcpTable"]);
    v.hub_ok("TEST", &["SecureNatDisable"]);

    // Disconnecting the WireGuard session ends it.
    v.hub_ok("DEFAULT", &["SessionDisconnect", &sid]);
    let sessions = v.hub_ok("DEFAULT", &["SessionList"]);
    assert!(!sessions.contains(&sid), "{sessions}");

    // Ports and listeners.
    let udp = v.ok(&["PortsUDPGet"]);
    assert!(udp.contains("443, 992, 1194, 5555"), "{udp}");
    v.ok(&["PortsUDPSet", "443,992,1194,5555"]);
    v.ok(&["ListenerCreate", "8443"]);
    let listeners = v.ok(&["ListenerList"]);
    assert!(
        listeners.contains("TCP 8443") && listeners.contains("Listening"),
        "{listeners}"
    );
    v.ok(&["ListenerDisable", "8443"]);
    let listeners = v.ok(&["ListenerList"]);
    let line = listeners.lines().find(|l| l.contains("TCP 8443")).unwrap();
    assert!(line.contains("Stopped"), "{listeners}");
    v.ok(&["ListenerEnable", "8443"]);
    v.ok(&["ListenerDelete", "8443"]);
    assert!(!v.ok(&["ListenerList"]).contains("TCP 8443"));

    // The config, as vpncmd shows it.
    let config = v.ok(&["ConfigGet"]);
    assert!(config.contains("declare root"), "{config}");

    // OpenVPN's options and its client configurations, through SoftEther's PACK RPC
    let options = v.ok(&["ProtoOptionsGet", "OpenVPN"]);
    assert!(
        options
            .lines()
            .any(|l| l.starts_with("Enabled") && l.contains("|Boolean|True")),
        "{options}"
    );
    assert!(
        options.contains("PushDummyIPv4AddressOnL2Mode"),
        "{options}"
    );
    v.ok(&[
        "ProtoOptionsSet",
        "OpenVPN",
        "/NAME:PushDummyIPv4AddressOnL2Mode",
        "/VALUE:no",
    ]);
    let options = v.ok(&["ProtoOptionsGet", "OpenVPN"]);
    assert!(
        options
            .lines()
            .any(|l| l.starts_with("PushDummyIPv4AddressOnL2Mode") && l.contains("|False")),
        "{options}"
    );
    // (vpncmd takes a name starting with / for a parameter: a relative one, in a folder of ours)
    let zip = tempfile::tempdir().unwrap();
    let pw = format!("/PASSWORD:{PASSWORD}");
    let script = format!(
        "cd {} && exec timeout 60 vpncmd {} /SERVER {pw} /CMD OpenVpnMakeConfig openvpn",
        zip.path().display(),
        v.target
    );
    let made = run(holder
        .cmd(&admin_ns, "sh")
        .args(["-c", &script])
        .stdin(Stdio::null()));
    let made = out_text(&made);
    assert!(made.contains("openvpn.zip"), "{made}");
    let bytes = std::fs::read(zip.path().join("openvpn.zip")).unwrap();
    assert_eq!(&bytes[..4], b"PK\x03\x04", "a zip");

    // IPsec's settings as SoftEther names them: SoftEther's defaults, a new key and default
    // hub kept, L2TP over IPsec turned on and off; EtherIP is refused with a reason (not
    // served yet), and changes nothing.
    let ipsec = v.ok(&["IPsecGet"]);
    for (label, value) in [
        ("L2TP over IPsec Server Function Enabled", "No"),
        ("Raw L2TP Server Function Enabled", "No"),
        ("EtherIP / L2TPv3 over IPsec Server Function Enabled", "No"),
        ("IPsec Pre-Shared Key String", "vpn"),
        ("Name of Default Virtual Hub", "DEFAULT"),
    ] {
        assert_eq!(row(&ipsec, label), value, "{ipsec}");
    }
    v.ok(&[
        "IPsecEnable",
        "/L2TP:no",
        "/L2TPRAW:no",
        "/ETHERIP:no",
        "/PSK:s3cret",
        "/DEFAULTHUB:TEST",
    ]);
    let ipsec = v.ok(&["IPsecGet"]);
    assert_eq!(row(&ipsec, "IPsec Pre-Shared Key String"), "s3cret");
    assert_eq!(row(&ipsec, "Name of Default Virtual Hub"), "TEST");
    for on in ["yes", "no"] {
        v.ok(&[
            "IPsecEnable",
            &format!("/L2TP:{on}"),
            "/L2TPRAW:no",
            "/ETHERIP:no",
            "/PSK:s3cret",
            "/DEFAULTHUB:TEST",
        ]);
        let ipsec = v.ok(&["IPsecGet"]);
        let shown = if on == "yes" { "Yes" } else { "No" };
        assert_eq!(
            row(&ipsec, "L2TP over IPsec Server Function Enabled"),
            shown
        );
    }
    let (code, text) = v.run(&[
        &format!("/PASSWORD:{PASSWORD}"),
        "/CMD",
        "IPsecEnable",
        "/L2TP:no",
        "/L2TPRAW:no",
        "/ETHERIP:yes",
        "/PSK:other",
        "/DEFAULTHUB:DEFAULT",
    ]);
    assert_eq!(code, 33, "{text}");
    // (vpncmd shows only the code's own text; etherhub cmd shows the reason too)
    let pw = format!("/PASSWORD:{PASSWORD}");
    let out = run(lab
        .server
        .ns
        .cmd(ETHERHUB)
        .args(["cmd", "127.0.0.1:5555", "/SERVER", &pw, "/CMD"])
        .args([
            "IPsecEnable",
            "/L2TP:no",
            "/L2TPRAW:no",
            "/ETHERIP:yes",
            "/PSK:other",
            "/DEFAULTHUB:DEFAULT",
        ]));
    let text = out_text(&out);
    assert!(text.contains("not served by Etherhub yet"), "{text}");
    let ipsec = v.ok(&["IPsecGet"]);
    assert_eq!(
        row(&ipsec, "IPsec Pre-Shared Key String"),
        "s3cret",
        "nothing changed"
    );

    // A command Etherhub does not implement gets SoftEther's "not supported", not a hang.
    let (code, text) = v.hub("DEFAULT", &["CascadeList"]);
    assert_eq!(code, 33, "{text}");
    assert!(text.contains("Error occurred. (Error code: 33)"), "{text}");

    // Clean up, then change the password: the old one stops working.
    v.hub_ok("TEST", &["UserDelete", "alice"]);
    v.ok(&["HubDelete", "TEST"]);
    assert!(!v.ok(&["HubList"]).contains("|TEST"));
    v.ok(&["ServerPasswordSet", "n3w-Pw"]);
    let old = format!("/PASSWORD:{PASSWORD}");
    let (code, text) = v.run(&[&old, "/PROGRAMMING", "/CMD", "ServerInfoGet"]);
    assert_eq!(code, 12, "the old password is refused:\n{text}");
    assert!(text.contains("Error code: 12"), "{text}");
    assert!(text.contains("Access has been denied."), "{text}");
    let (code, text) = v.run(&["/PASSWORD:n3w-Pw", "/CMD", "ServerInfoGet"]);
    assert_eq!(code, 0, "{text}");
    assert!(
        lab.server
            .log_text()
            .contains("security: admin login (SoftEther protocol) failed"),
        "a wrong password is logged"
    );
}

#[test]
fn bad_input_is_refused_logged_and_disturbs_nothing() {
    if !can_run_netns() || !has_vpncmd() {
        return;
    }
    let mut lab = Lab::new(1);
    let outsider = lab.client_ns[0].take().unwrap();
    let server_ip = lab.server_addrs[0].clone();
    lab.server.start();
    let holder = Holder::new();
    let local = Vpncmd {
        holder: &holder,
        ns: &lab.server.ns,
        target: "127.0.0.1:443".into(),
    };
    assert_eq!(local.run(&["/CMD", "ServerPasswordSet", PASSWORD]).0, 0);

    // A POST to SoftEther's signature path that is not SoftEther's watermark: 403.
    let junk: Vec<u8> = (0..1500u32).map(|i| (i * 7919 % 251) as u8).collect();
    let junk_file = lab.server.dir.path().join("junk.bin");
    std::fs::write(&junk_file, &junk).unwrap();
    let out = run(outsider
        .cmd("curl")
        .args([
            "-sk",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("https://{server_ip}:443/vpnsvc/connect.cgi"),
            "-H",
            "Content-Type: image/jpeg",
            "--data-binary",
        ])
        .arg(format!("@{}", junk_file.display())));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "403");

    // A login flood from one address: refused each time, then locked out.
    let v = Vpncmd {
        holder: &holder,
        ns: &outsider,
        target: format!("{server_ip}:443"),
    };
    for i in 0..7 {
        let (code, text) = v.run(&[
            &format!("/PASSWORD:guess{i}"),
            "/PROGRAMMING",
            "/CMD",
            "HubList",
        ]);
        assert_eq!(code, 12, "{text}");
    }
    // ... even the right password, from there, for now
    let (code, _) = v.run(&[
        &format!("/PASSWORD:{PASSWORD}"),
        "/PROGRAMMING",
        "/CMD",
        "HubList",
    ]);
    assert_eq!(code, 12);
    // nothing else is disturbed: the server's own admin goes on
    let pw = format!("/PASSWORD:{PASSWORD}");
    let (code, text) = local.run(&[&pw, "/CMD", "HubList"]);
    assert_eq!(code, 0, "{text}");
    let log = lab.server.log_text();
    assert!(log.contains("without SoftEther's watermark"), "{log}");
    assert!(
        log.contains("security: admin login (SoftEther protocol) failed"),
        "{log}"
    );
    assert!(log.contains("locked out"), "{log}");
    assert!(!log.contains("guess"), "passwords are never logged");
}
