//! Access rules beyond pass and discard, on a stock wireguard-go client, set with vpncmd's
//! AccessAddEx through `etherhub cmd`: SoftEther's network simulation (a delay the pings feel,
//! a loss they all suffer), the HTTP redirect a web request gets, and a rule naming the users
//! of a list file (`exclude:FILE`).

mod common;

use common::*;

const GW: &str = "192.168.30.1";
const ALICE: &str = "192.168.30.231";

/// AccessAddEx for alice's traffic of `protocol` to `dst`, with the simulation and redirect
/// parameters in `extra`.
fn add_ex(s: &EtherhubServer, memo: &str, dst: &str, protocol: &str, port: &str, extra: &[&str]) {
    let mut args = vec![
        "AccessAddEx".to_string(),
        "pass".into(),
        format!("/MEMO:{memo}"),
        "/PRIORITY:5".into(),
        "/SRCUSERNAME:alice".into(),
        "/DESTUSERNAME:none".into(),
        "/SRCMAC:none".into(),
        "/DESTMAC:none".into(),
        "/SRCIP:0.0.0.0/0".into(),
        format!("/DESTIP:{dst}/32"),
        format!("/PROTOCOL:{protocol}"),
        "/SRCPORT:none".into(),
        format!("/DESTPORT:{port}"),
        "/TCPSTATE:none".into(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    s.must_hub_cmd(&args);
}

/// The smallest round trip of `count` pings to `ip`, in milliseconds (None: no answer).
fn min_rtt_ms(ns: &Netns, ip: &str, count: u32) -> Option<f64> {
    let out = run(ns
        .cmd("ping")
        .args(["-n", "-c", &count.to_string(), "-W", "3", ip]));
    let text = out_text(&out);
    // "rtt min/avg/max/mdev = 301.2/302.0/303.1/0.7 ms"
    let stats = text.lines().find(|l| l.contains("min/avg/max"))?;
    stats
        .split('=')
        .nth(1)?
        .trim()
        .split('/')
        .next()?
        .parse()
        .ok()
}

#[test]
fn access_rules_delay_lose_and_redirect_a_wireguard_clients_traffic() {
    if !can_run_netns() {
        return;
    }
    let mut lab = Lab::new(1);
    let lan = lab.lan();
    let alice = lab.client(0, &format!("{ALICE}/24"));
    lab.server.start();
    let s = &lab.server;
    s.create_user("alice");
    s.register_client(&alice, "alice");
    alice.join(s, Some(&lan));
    assert!(alice.ns.ping_until(GW, std::time::Duration::from_secs(10)));
    let plain = min_rtt_ms(&alice.ns, GW, 3).expect("the gateway answers");

    // DELAY 300 ms on alice's pings to the gateway: every round trip takes that much longer
    add_ex(
        s,
        "slow",
        GW,
        "icmpv4",
        "none",
        &["/DELAY:300", "/JITTER:0", "/LOSS:0"],
    );
    let slow = min_rtt_ms(&alice.ns, GW, 3).expect("delayed, not lost");
    assert!(
        slow >= 300.0,
        "{slow} ms with a 300 ms delay (before: {plain} ms)"
    );
    let rules = s.must_hub_cmd(&["AccessList"]);
    assert!(rules.contains("Delay=300"), "{rules}");
    s.must_hub_cmd(&["AccessDelete", "1"]);

    // LOSS 100 %: nothing gets through; the rule counts what it took
    add_ex(
        s,
        "lossy",
        GW,
        "icmpv4",
        "none",
        &["/DELAY:0", "/JITTER:0", "/LOSS:100"],
    );
    assert_eq!(min_rtt_ms(&alice.ns, GW, 3), None, "all lost");
    let rules = s.must_hub_cmd(&["AccessList"]);
    let line = rules.lines().find(|l| l.contains("lossy")).unwrap();
    assert!(last_cell_number(line) >= 3, "{line}");
    s.must_hub_cmd(&["AccessDelete", "1"]);
    assert!(min_rtt_ms(&alice.ns, GW, 3).is_some(), "back to normal");

    // a user list file: a rule that discards the pings of everyone the file does not list
    // (exclude:), relative to the config's folder; alice gets through once the file lists her
    let list = s.config_path().parent().unwrap().join("pingers.txt");
    std::fs::write(&list, "# who may ping the gateway\nbob\n").unwrap();
    let mut discard = vec![
        "AccessAdd",
        "discard",
        "/MEMO:listed only",
        "/PRIORITY:5",
        "/SRCUSERNAME:exclude:pingers.txt",
        "/DESTUSERNAME:none",
        "/SRCMAC:none",
        "/DESTMAC:none",
        "/SRCIP:0.0.0.0/0",
    ];
    let dest = format!("/DESTIP:{GW}/32");
    discard.extend([
        dest.as_str(),
        "/PROTOCOL:icmpv4",
        "/SRCPORT:none",
        "/DESTPORT:none",
        "/TCPSTATE:none",
    ]);
    s.must_hub_cmd(&discard);
    assert_eq!(min_rtt_ms(&alice.ns, GW, 2), None, "alice is not listed");
    std::fs::write(&list, "# who may ping the gateway\nbob\nalice\n").unwrap();
    // (the server reads the files again every 30 s)
    assert!(
        alice.ns.ping_until(GW, std::time::Duration::from_secs(45)),
        "listed now"
    );
    s.must_hub_cmd(&["AccessDelete", "1"]);

    // a redirect on the LAN's port 8080: the connection opens, and the request is answered
    // with a 302 to the URL, <INFO> naming alice's session
    let _listener = iperf_server(&lan.ns, &lan.ip, 8080, false);
    add_ex(
        s,
        "portal",
        &lan.ip,
        "tcp",
        "8080",
        &[
            "/DELAY:0",
            "/JITTER:0",
            "/LOSS:0",
            "/REDIRECTURL:http://portal.example/login?i=<INFO>",
        ],
    );
    let url = format!("http://{}:8080/", lan.ip);
    let out = run(alice
        .ns
        .cmd("curl")
        .args(["-s", "-i", "--max-time", "10", &url]));
    let text = out_text(&out);
    assert!(text.contains("HTTP/1.1 302 Found"), "{text}");
    let location = text
        .lines()
        .find(|l| l.starts_with("Location: "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        location
            .starts_with("Location: http://portal.example/login?i=alice|SID-ALICE-[WIREGUARD]-"),
        "{location}"
    );
}
