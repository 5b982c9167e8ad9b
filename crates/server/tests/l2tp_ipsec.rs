//! L2TP over IPsec with the stock Linux clients in the lab guest: strongSwan's charon (IKEv1
//! main mode, pre-shared key, ESP in transport mode for UDP 1701), xl2tpd and pppd, as the
//! clients built into Windows, macOS, iOS and Android do it. Off by default: UDP 500 and 4500
//! are closed until `IPsecEnable /L2TP:yes`. A wrong pre-shared key is refused with the reason
//! in the server's log. With the right one the client gets a SecureNAT address over IPCP,
//! pings the gateway and a wireguard-go client on the hub, runs TCP to a LAN host, and shows
//! as `SID-<USER>-[L2TP]-<n>` in SessionList and in IpTable. There is no NAT between the guest
//! and the server, and Etherhub's NAT detection says so: ESP goes as IP protocol 50, not in
//! UDP (SoftEther claims a NAT to everyone). A client that forces UDP encapsulation gets ESP in
//! UDP 4500. A rekey of the ESP SAs in the middle of a transfer breaks nothing, and neither
//! does a flood of IKE initiations from one address. Turning the service off ends live calls.

mod common;

use common::*;
use std::time::Duration;

const GW: &str = "192.168.30.1";
const WG_IP: &str = "192.168.30.229";
const PSK: &str = "lab-psk-7391";

/// The PPP clients' scene with L2TP over IPsec turned on (`None` where namespaces cannot be
/// made).
fn ipsec_scene() -> Option<PppScene> {
    if !can_run_netns() {
        return None;
    }
    let scene = ppp_scene(WG_IP, "dave", "dave-l2tp-pw");
    enable_ipsec(&scene.lab.server);
    Some(scene)
}

fn enable_ipsec(s: &EtherhubServer) {
    let ipsec = s.must_cmd(&["IPsecGet"]);
    assert_eq!(row(&ipsec, "L2TP over IPsec Server Function Enabled"), "No");
    assert!(
        !udp_open(s, 500),
        "UDP 500 is open while L2TP over IPsec is off"
    );
    s.must_cmd(&[
        "IPsecEnable",
        "/L2TP:yes",
        "/L2TPRAW:no",
        "/ETHERIP:no",
        &format!("/PSK:{PSK}"),
        "/DEFAULTHUB:DEFAULT",
    ]);
    let ipsec = s.must_cmd(&["IPsecGet"]);
    assert_eq!(
        row(&ipsec, "L2TP over IPsec Server Function Enabled"),
        "Yes"
    );
    assert_eq!(row(&ipsec, "IPsec Pre-Shared Key String"), PSK);
    assert!(
        udp_open(s, 500),
        "IPsecEnable /L2TP:yes did not open UDP 500"
    );
    assert!(
        udp_open(s, 4500),
        "IPsecEnable /L2TP:yes did not open UDP 4500"
    );
    // raw L2TP stays off
    assert!(!udp_open(s, 1701));
}

fn udp_open(s: &EtherhubServer, port: u16) -> bool {
    let out = run(s.ns.cmd("ss").args(["-Hlun", &format!("sport = :{port}")]));
    !out.stdout.is_empty()
}

/// SessionGet of the session whose name starts with `prefix`.
fn session_get(s: &EtherhubServer, prefix: &str) -> String {
    let list = s.must_hub_cmd(&["SessionList"]);
    let name = list
        .lines()
        .find_map(|l| l.split('|').nth(1).filter(|n| n.starts_with(prefix)))
        .unwrap_or_else(|| panic!("no {prefix} in {list}"))
        .trim()
        .to_string();
    s.must_hub_cmd(&["SessionGet", &name])
}

/// Main mode's first message from one address, each with a new initiator cookie, as fast as
/// one process sends them, for at most 8 s or 200,000 messages: prints how many it sent.
fn ike_flood(s: &EtherhubServer, server: &str) -> std::process::Child {
    let script = format!(
        r#"
import os, socket, struct, time
# SA payload: DOI IPsec, one ISAKMP proposal, one transform: AES-CBC-128, SHA1, PSK, MODP 1024
attrs = b"".join(struct.pack("!HH", 0x8000 | t, v) for t, v in ((1, 7), (14, 128), (2, 2), (3, 1), (4, 2)))
transform = struct.pack("!BBHBBH", 0, 0, 8 + len(attrs), 1, 1, 0) + attrs
proposal = struct.pack("!BBHBBBB", 0, 0, 8 + len(transform), 1, 1, 0, 1) + transform
sa = struct.pack("!BBHII", 0, 0, 12 + len(proposal), 1, 1) + proposal
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end, n = time.time() + 8, 0
while n < 200000 and time.time() < end:
    header = os.urandom(8) + bytes(8) + struct.pack("!BBBBII", 1, 0x10, 2, 0, 0, 28 + len(sa))
    try:
        s.sendto(header + sa, ("{server}", 500))
        n += 1
    except OSError:
        time.sleep(0.001)
print(n)
"#
    );
    s.ns.cmd("python3")
        .args(["-c", &script])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs")
}

fn params(gateway: &str, lan_ip: &str, psk: &str, more: &str) -> String {
    format!(
        "SERVER={gateway}\nPSK={psk}\nVPN_USER=dave\nVPN_PASS=dave-l2tp-pw\nPING_TARGET={GW}\n\
         PING_ALSO={WG_IP}\nIPERF_TARGET={lan_ip}\nIPERF_SECONDS=3\nHOLD=1\nPPP_DEBUG=1\n{more}"
    )
}

#[test]
fn strongswan_and_xl2tpd_connect_over_l2tp_ipsec_and_a_wrong_psk_is_refused() {
    let Some(scene) = ipsec_scene() else {
        return;
    };
    let (s, lan) = (&scene.lab.server, &scene.lan);
    let (guest_ip, gateway) = (scene.guest_ip.as_str(), scene.gateway.as_str());

    // a wrong pre-shared key: no SA, and the reason in the server's log
    let bad = params(
        gateway,
        &lan.ip,
        "not-the-psk",
        "TRIES=1\nIKE_TIMEOUT=12\nHOLD=0\n",
    );
    let run_bad = GuestRun::start(&s.ns, "l2tp.sh", guest_ip, gateway, &bad, "");
    let (ok, out, result) = run_bad.finish(Duration::from_secs(120));
    assert!(!ok, "a wrong pre-shared key connected:\n{result}\n{out}");
    assert!(result.contains("not established"), "{result}\n{out}");
    let log = s.log_text();
    assert!(
        log.contains("security: VPN peer refused") && log.contains("pre-shared key"),
        "the refusal is not logged with its reason:\n{log}"
    );
    assert!(!s.must_hub_cmd(&["SessionList"]).contains("[L2TP]"));

    // the right key: no NAT between them, so ESP is IP protocol 50. While the client pings
    // and moves data, one address floods UDP 500 with IKE initiations.
    let (mut flood, mut session) = (None, String::new());
    let result = ppp_client_round_with(
        s,
        "l2tp.sh",
        (guest_ip, gateway),
        &params(gateway, &lan.ip, PSK, ""),
        "",
        ("L2TP", "DAVE"),
        (GW, WG_IP),
        &mut || {
            session = session_get(s, "SID-DAVE-[L2TP]-");
            flood = Some(ike_flood(s, gateway));
        },
    );
    // SessionGet names what protects it
    assert!(
        session.contains("IPsec ESP aes128-cbc/hmac-sha1-96"),
        "{session}"
    );
    let sent = flood.map(|f| {
        let out = f.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    });
    let sent: u64 = sent.and_then(|s| s.parse().ok()).unwrap_or(0);
    eprintln!("IKE initiations sent during the transfer: {sent}");
    assert!(sent >= 1000, "the flood did not run ({sent} sent)");
    eprintln!("{result}");
    assert!(
        result.contains("IPsec SA up") && result.contains("ESP (IP protocol 50)"),
        "{result}"
    );
}

#[test]
fn a_client_that_forces_udp_encapsulation_gets_esp_in_udp_and_survives_both_rekeys() {
    let Some(scene) = ipsec_scene() else {
        return;
    };
    let (s, lan) = (&scene.lab.server, &scene.lan);
    let (guest_ip, gateway) = (scene.guest_ip.as_str(), scene.gateway.as_str());
    // ENCAP=yes: strongSwan fakes its NAT detection hash, so both sides go to UDP 4500; the
    // ESP SAs are rekeyed every 10 s (the slow guest needs a few to install one) and the IKE
    // SA renewed after 16 s (IKEv1: a new main mode), while a transfer runs 15 s
    let result = ppp_client_round(
        s,
        "l2tp.sh",
        (guest_ip, gateway),
        &params(
            gateway,
            &lan.ip,
            PSK,
            "ENCAP=yes\nREKEY=10\nIKE_REKEY=16\nIPERF_SECONDS=15\n",
        ),
        "",
        "L2TP",
        "DAVE",
        (GW, WG_IP),
    );
    eprintln!("{result}");
    assert!(result.contains("ESP in UDP 4500"), "{result}");
    let children: u32 = result
        .lines()
        .find_map(|l| l.strip_prefix("l2tp: child SAs established: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        children >= 2,
        "no rekey happened during the transfer:\n{result}"
    );
    let ike_sas: u32 = result
        .lines()
        .find_map(|l| l.strip_prefix("l2tp: IKE SAs established: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(
        ike_sas >= 2,
        "the IKE SA was not renewed during the transfer:\n{result}"
    );

    // turning L2TP over IPsec off ends a live call at once, and closes IKE's ports
    turning_off_ends_the_call(
        s,
        (guest_ip, gateway),
        &params(gateway, &lan.ip, PSK, "ENCAP=yes\n"),
        &["/L2TP:no", "/L2TPRAW:no"],
    );
    assert!(!udp_open(s, 500), "UDP 500 is still open");
}
