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
use std::time::Duration;

const GW: &str = "192.168.30.1";
const WG_IP: &str = "192.168.30.226";

#[test]
fn the_stock_sstp_client_connects_through_the_lab_guest() {
    if !can_run_netns() {
        return;
    }
    let scene = ppp_scene(WG_IP, "bob", "bob-sstp-pw");
    let (s, lan) = (&scene.lab.server, &scene.lan);
    let (guest_ip, gateway) = (&scene.guest_ip, &scene.gateway);
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

    // a wrong password: no address, and the failure in the server's log
    let params =
        format!("SERVER={gateway}\nHUB=DEFAULT\nVPN_USER=bob\nVPN_PASS=wrong-password\nHOLD=0\n");
    let bad = GuestRun::start(&s.ns, "sstp.sh", guest_ip, gateway, &params, &ca);
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
    ppp_client_round(
        s,
        "sstp.sh",
        (guest_ip, gateway),
        &params,
        &ca,
        "SSTP",
        "BOB",
        (GW, WG_IP),
    );
}
