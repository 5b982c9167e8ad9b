//! Raw L2TP (SoftEther's `/L2TPRAW`, no IPsec) with the stock Linux client, xl2tpd handing
//! the call to pppd, in the lab guest (this machine has no kernel PPP). Off by default: UDP
//! 1701 is closed until `IPsecEnable /L2TPRAW:yes` opens it. Then the client logs in
//! with a password (the user named without a hub, so the IPsec settings' default hub takes
//! it), gets a SecureNAT address over IPCP, pings the gateway and a wireguard-go client on the
//! same hub, and runs TCP through SecureNAT to a LAN host; SessionList shows
//! `SID-<USER>-[L2TP]-<n>` and IpTable its address while it is up, and neither after. Turning
//! raw L2TP off ends a live call at once.

mod common;

use common::*;

const GW: &str = "192.168.30.1";
const WG_IP: &str = "192.168.30.227";

#[test]
fn the_stock_xl2tpd_client_connects_over_raw_l2tp() {
    if !can_run_netns() {
        return;
    }
    let scene = ppp_scene(WG_IP, "carol", "carol-l2tp-pw");
    let (s, lan) = (&scene.lab.server, &scene.lan);
    let (guest_ip, gateway) = (&scene.guest_ip, &scene.gateway);
    let params = format!(
        "SERVER={gateway}\nRAW=yes\nVPN_USER=carol\nVPN_PASS=carol-l2tp-pw\nPING_TARGET={GW}\n\
         PING_ALSO={WG_IP}\nIPERF_TARGET={}\nIPERF_SECONDS=3\nHOLD=1\n",
        lan.ip
    );

    // off by default, as in SoftEther: no listener on UDP 1701 until IPsecEnable opens it
    let ipsec = s.must_cmd(&["IPsecGet"]);
    assert_eq!(row(&ipsec, "Raw L2TP Server Function Enabled"), "No");
    let udp_1701 = || {
        let out = run(s.ns.cmd("ss").args(["-Hlun", "sport = :1701"]));
        !out.stdout.is_empty()
    };
    assert!(!udp_1701(), "UDP 1701 is open while raw L2TP is off");
    s.must_cmd(&[
        "IPsecEnable",
        "/L2TP:no",
        "/L2TPRAW:yes",
        "/ETHERIP:no",
        "/PSK:vpn",
        "/DEFAULTHUB:DEFAULT",
    ]);
    assert!(udp_1701(), "IPsecEnable /L2TPRAW:yes did not open UDP 1701");
    let ipsec = s.must_cmd(&["IPsecGet"]);
    assert_eq!(row(&ipsec, "Raw L2TP Server Function Enabled"), "Yes");
    ppp_client_round(
        s,
        "l2tp.sh",
        (guest_ip, gateway),
        &params,
        "",
        "L2TP",
        "CAROL",
        (GW, WG_IP),
    );

    // turning raw L2TP off ends a live call at once, not when its echoes time out
    turning_off_ends_the_call(
        s,
        (guest_ip, gateway),
        &params,
        &["/L2TP:no", "/L2TPRAW:no"],
    );
    assert!(!udp_1701(), "UDP 1701 is still open");
}
