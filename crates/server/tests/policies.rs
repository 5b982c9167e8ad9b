//! Groups and security policies on stock wireguard-go clients, administered with vpncmd's
//! commands through `etherhub cmd`: a group's privacy filter on its members, a user's own policy
//! overriding its group's, MaxDownload measured by iperf3, MultiLogins refusing a second
//! session, and an expiry in the past ending a live session.

mod common;

use common::*;
use std::time::Duration;

const GW: &str = "192.168.30.1";
const ALICE: &str = "192.168.30.221";
const BOB: &str = "192.168.30.222";
const CAROL: &str = "192.168.30.223";
const CAROL2: &str = "192.168.30.224";
/// MaxDownload for bob, bits per second.
const LIMIT: f64 = 10_000_000.0;

/// Sessions of `user` in SessionList.
fn sessions_of(server: &EtherhubServer, user: &str) -> usize {
    let list = server.must_hub_cmd(&["SessionList"]);
    list.matches(&format!("SID-{}-[WIREGUARD]-", user.to_uppercase()))
        .count()
}

/// An iperf3 download of `bytes` from `ip` into `ns`: received bytes and seconds.
fn download(ns: &Netns, ip: &str, port: u16, bytes: &str) -> (f64, f64) {
    let out = run(ns.cmd("timeout").args([
        "90",
        "iperf3",
        "-c",
        ip,
        "-p",
        &port.to_string(),
        "-n",
        bytes,
        "-R",
        "-J",
    ]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("iperf3 said:\n{}", out_text(&out)));
    let r = &v["end"]["sum_received"];
    (
        r["bytes"].as_f64().unwrap_or(0.0),
        r["seconds"].as_f64().unwrap_or(0.0),
    )
}

#[test]
fn groups_and_policies_shape_filter_limit_and_expire_wireguard_sessions() {
    if !can_run_netns() {
        return;
    }
    assert!(which("iperf3").is_some(), "iperf3 is required");
    let mut lab = Lab::new(4);
    let lan = lab.lan();
    let alice = lab.client(0, &format!("{ALICE}/24"));
    let bob = lab.client(1, &format!("{BOB}/24"));
    let carol = lab.client(2, &format!("{CAROL}/24"));
    let carol2 = lab.client(3, &format!("{CAROL2}/24"));
    lab.server.start();
    let s = &lab.server;
    for (user, c) in [("alice", &alice), ("bob", &bob), ("carol", &carol)] {
        s.create_user(user);
        s.register_client(c, user);
    }
    s.register_client(&carol2, "carol");

    // a group with the privacy filter; alice, bob and carol in it; bob's own policy (which
    // has no filter) wins over the group's
    s.must_hub_cmd(&["GroupCreate", "staff", "/REALNAME:Staff", "/NOTE:none"]);
    let set = s.must_hub_cmd(&[
        "GroupPolicySet",
        "staff",
        "/NAME:PrivacyFilter",
        "/VALUE:yes",
    ]);
    assert!(!set.contains("not enforced"), "{set}");
    for user in ["alice", "bob", "carol"] {
        s.must_hub_cmd(&["GroupJoin", "staff", &format!("/USERNAME:{user}")]);
    }
    s.must_hub_cmd(&[
        "UserPolicySet",
        "bob",
        "/NAME:MaxDownload",
        &format!("/VALUE:{}", LIMIT as u64),
    ]);
    // (a user's own policy replaces its group's whole: carol's limit is the group's)
    s.must_hub_cmd(&["GroupPolicySet", "staff", "/NAME:MultiLogins", "/VALUE:1"]);
    let group = s.must_hub_cmd(&["GroupGet", "staff"]);
    assert!(group.contains("PrivacyFilter"), "{group}");
    for user in ["alice", "bob", "carol"] {
        assert!(
            group.contains(&format!(" {user}\n")),
            "{user} listed in:\n{group}"
        );
    }
    let list = s.must_hub_cmd(&["GroupList"]);
    assert!(row(&list, "Num Users").contains('3'), "{list}");
    // every policy item is enforced: none is listed as kept but not enforced
    let set = s.must_hub_cmd(&["UserPolicySet", "alice", "/NAME:DHCPForce", "/VALUE:yes"]);
    assert!(!set.contains("not enforced"), "{set}");
    let list = s.must_hub_cmd(&["PolicyList"]);
    assert!(
        list.contains("DHCPForce") && !list.contains("not enforced"),
        "{list}"
    );
    s.must_hub_cmd(&["UserPolicyRemove", "alice"]);
    // a bad value is refused and says why
    let bad = s.cmd_in(
        Some("DEFAULT"),
        &["UserPolicySet", "bob", "/NAME:MaxConnection", "/VALUE:0"],
    );
    assert!(!bad.status.success());
    assert!(
        out_text(&bad).contains("within the range"),
        "{}",
        out_text(&bad)
    );

    for c in [&alice, &bob, &carol] {
        c.join(s, Some(&lan));
        assert!(
            c.ns.ping_until(GW, Duration::from_secs(15)),
            "{} reaches the gateway",
            c.address
        );
    }
    // the group's filter: alice and carol never see each other; bob (his own policy) sees both
    assert!(!alice.ns.ping(CAROL, 3), "alice must not reach carol");
    assert!(alice.ns.ping(BOB, 2), "alice reaches bob");
    assert!(carol.ns.ping(BOB, 2), "carol reaches bob");

    // NoServer: bob may not accept TCP connections (his SYN+ACKs are held), carol's reach him
    // only until it is set
    let _bobs = iperf_server(&bob.ns, BOB, 5301, false);
    std::thread::sleep(Duration::from_millis(300));
    let to_bob = || {
        run(carol.ns.cmd("timeout").args([
            "10",
            "iperf3",
            "-c",
            BOB,
            "-p",
            "5301",
            "-t",
            "1",
            "--connect-timeout",
            "3000",
        ]))
        .status
        .success()
    };
    assert!(to_bob(), "carol reaches bob's server");
    s.must_hub_cmd(&["UserPolicySet", "bob", "/NAME:NoServer", "/VALUE:yes"]);
    assert!(!to_bob(), "bob may not serve");

    // MaxDownload: 20 MB from the LAN at bob's limit, TCP intact
    let _iperf = iperf_server(&lan.ns, &lan.ip, 5201, false);
    std::thread::sleep(Duration::from_millis(300));
    let (bytes, secs) = download(&bob.ns, &lan.ip, 5201, "20M");
    assert!(
        bytes >= 20.0 * 1024.0 * 1024.0,
        "the whole 20 MB arrives ({bytes} bytes)"
    );
    let rate = bytes * 8.0 / secs;
    eprintln!(
        "MaxDownload {LIMIT} bit/s: 20 MB at {:.3} Mbit/s in {secs:.1} s",
        rate / 1e6
    );
    assert!(
        (rate - LIMIT).abs() <= LIMIT * 0.1,
        "bob's download ran at {:.2} Mbit/s, limit {:.0}",
        rate / 1e6,
        LIMIT / 1e6
    );
    // alice has no limit: the same transfer is faster
    let (_, fast_secs) = download(&alice.ns, &lan.ip, 5201, "20M");
    assert!(fast_secs < secs, "alice {fast_secs} s, bob {secs} s");

    // the hub's access list: a discard rule for one LAN port; the other still works
    let _other = iperf_server(&lan.ns, &lan.ip, 5202, false);
    std::thread::sleep(Duration::from_millis(300));
    let reach = |port: u16| {
        let out = run(carol.ns.cmd("timeout").args([
            "10",
            "iperf3",
            "-c",
            &lan.ip,
            "-p",
            &port.to_string(),
            "-t",
            "1",
            "--connect-timeout",
            "3000",
        ]));
        out.status.success()
    };
    assert!(reach(5202), "port 5202 works before the rule");
    s.must_hub_cmd(&[
        "AccessAdd",
        "discard",
        "/MEMO:no 5202",
        "/PRIORITY:10",
        "/SRCUSERNAME:staff",
        "/DESTUSERNAME:none",
        "/SRCMAC:none",
        "/DESTMAC:none",
        "/SRCIP:0.0.0.0/0",
        &format!("/DESTIP:{}/32", lan.ip),
        "/PROTOCOL:tcp",
        "/SRCPORT:none",
        "/DESTPORT:5202",
        "/TCPSTATE:none",
    ]);
    assert!(!reach(5202), "the rule discards port 5202 for the group");
    assert!(reach(5201), "port 5201 still works");
    let rules = s.must_hub_cmd(&["AccessList"]);
    assert!(
        rules.contains(&format!(
            "(ipv4) DstIPv4={}/32, Protocol=TCP, DstPort=5202, SrcUser=staff",
            lan.ip
        )),
        "{rules}"
    );
    let line = rules.lines().find(|l| l.contains("no 5202")).unwrap();
    let matches = last_cell_number(line);
    assert!(matches > 0, "the rule counts its matches: {line}");
    s.must_hub_cmd(&["AccessDisable", "1"]);
    assert!(reach(5202), "a disabled rule discards nothing");
    s.must_hub_cmd(&["AccessDelete", "1"]);
    assert!(!s.must_hub_cmd(&["AccessList"]).contains("no 5202"));
    // a value out of range is refused, and the message says the range
    let ex = s.cmd_in(
        Some("DEFAULT"),
        &[
            "AccessAddEx",
            "pass",
            "/MEMO:none",
            "/PRIORITY:1",
            "/SRCUSERNAME:none",
            "/DESTUSERNAME:none",
            "/SRCMAC:none",
            "/DESTMAC:none",
            "/SRCIP:0.0.0.0/0",
            "/DESTIP:0.0.0.0/0",
            "/PROTOCOL:ip",
            "/SRCPORT:none",
            "/DESTPORT:none",
            "/TCPSTATE:none",
            "/DELAY:20000",
            "/JITTER:0",
            "/LOSS:0",
        ],
    );
    assert!(!ex.status.success());
    assert!(
        out_text(&ex).contains("0 to 10000 milliseconds"),
        "{}",
        out_text(&ex)
    );

    // MultiLogins 1: carol's second key gets no session while the first is live
    assert_eq!(sessions_of(s, "carol"), 1);
    carol2.join(s, None);
    assert!(
        !carol2.ns.ping_until(GW, Duration::from_secs(4)),
        "a second session of carol must be refused"
    );
    assert_eq!(sessions_of(s, "carol"), 1);

    // an expiry in the past ends alice's live session, and she cannot come back
    assert_eq!(sessions_of(s, "alice"), 1);
    s.must_hub_cmd(&["UserExpiresSet", "alice", "/EXPIRES:2020/01/01 00:00:00"]);
    let user = s.must_hub_cmd(&["UserGet", "alice"]);
    assert!(
        row(&user, "Expiration Date").contains("2020-01-01"),
        "{user}"
    );
    assert_eq!(sessions_of(s, "alice"), 0);
    assert!(!alice.ns.ping(GW, 3), "an expired user gets nowhere");
    let bad_date = s.cmd_in(
        Some("DEFAULT"),
        &["UserExpiresSet", "alice", "/EXPIRES:tomorrow"],
    );
    assert!(!bad_date.status.success());

    // all of it is in the config as SoftEther writes it
    let config = std::fs::read_to_string(s.config_path()).unwrap();
    for needle in [
        "declare GroupList",
        "declare staff",
        "string GroupName staff",
        "declare Policy",
        "bool PrivacyFilter true",
        "uint MaxDownload 10000000",
        "uint MultiLogins 1",
    ] {
        assert!(
            config.contains(needle),
            "{needle:?} missing from the config"
        );
    }
    // deleting the group takes its members out of it
    s.must_hub_cmd(&["GroupDelete", "staff"]);
    let users = s.must_hub_cmd(&["UserList"]);
    assert!(!users.contains("staff"), "{users}");
}
