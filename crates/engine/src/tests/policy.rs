//! Security policies on WireGuard sessions: the privacy filter, bandwidth limits, MultiLogins,
//! Access and expiry, as the engine enforces them.

use std::net::Ipv4Addr;
use std::time::Duration;

use etherhub_config::Policy;

use super::kit::{hub, World};
use super::{echo_through, pattern, ping, A_IP, GW, OUTSIDE};
use crate::{Change, CloseReason, EngineEvent, UserAuth, UserSpec};

const B_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 30, 11);

/// `user` on DEFAULT (password "pw", as the kit registers users) under `policy`.
fn with_policy(user: &str, policy: Policy, expires_ms: u64) -> Change {
    Change::User(UserSpec {
        hub: "DEFAULT".into(),
        name: user.into(),
        auth: UserAuth::Password(etherhub_config::hash::hash_user_password(user, "pw")),
        policy,
        expires_ms,
        group: String::new(),
        nt_hash: None,
    })
}

fn policy(items: &[(&str, &str)]) -> Policy {
    let mut p = Policy::default();
    for (name, value) in items {
        p.set_named(name, value).unwrap();
    }
    p
}

fn closed_reasons(w: &World) -> Vec<CloseReason> {
    w.events
        .iter()
        .filter_map(|e| match e {
            EngineEvent::SessionClosed { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn sessions_under_the_privacy_filter_see_the_gateway_but_not_each_other() {
    let mut w = World::new(&[hub("DEFAULT", GW)]);
    w.add_client("DEFAULT", "alice", A_IP, GW, Some(A_IP));
    w.add_client("DEFAULT", "bob", B_IP, GW, Some(B_IP));
    let private = policy(&[("PrivacyFilter", "yes")]);
    w.engine.apply(w.now, with_policy("alice", private, 0));
    w.engine.apply(w.now, with_policy("bob", private, 0));
    w.handshake(0);
    w.handshake(1);
    assert!(ping(&mut w, 0, GW, 1), "alice reaches the gateway");
    assert!(ping(&mut w, 1, GW, 2), "bob reaches the gateway");
    assert!(!ping(&mut w, 0, B_IP, 3), "alice must not reach bob");
    let held = w.engine.hub("DEFAULT").unwrap().policy_dropped();
    assert!(held > 0, "the filter counts what it held back");
    // bob's policy changes on his live session: the two see each other again
    w.engine
        .apply(w.now, with_policy("bob", Policy::default(), 0));
    assert!(
        ping(&mut w, 0, B_IP, 4),
        "alice reaches bob without his filter"
    );
}

#[test]
fn multi_logins_refuses_a_second_session_of_the_user_but_not_a_clients_new_handshake() {
    let mut w = World::new(&[hub("DEFAULT", GW)]);
    w.add_client("DEFAULT", "meta", A_IP, GW, Some(A_IP));
    w.add_client("DEFAULT", "meta", B_IP, GW, Some(B_IP));
    w.engine.apply(
        w.now,
        with_policy("meta", policy(&[("MultiLogins", "1")]), 0),
    );
    w.handshake(0);
    w.handshake(1);
    assert_eq!(
        w.sessions("DEFAULT"),
        vec!["SID-SECURENAT-1", "SID-META-[WIREGUARD]-2"],
        "the second key gets no session"
    );
    // the first client handshaking again keeps its session
    w.run(10);
    w.handshake(0);
    assert_eq!(w.sessions("DEFAULT").len(), 2);
    assert!(ping(&mut w, 0, GW, 1));
    // with two allowed, the second one comes in
    w.engine.apply(
        w.now,
        with_policy("meta", policy(&[("MultiLogins", "2")]), 0),
    );
    w.handshake(1);
    assert_eq!(w.sessions("DEFAULT").len(), 3);
}

#[test]
fn access_denied_by_policy_ends_the_session_and_refuses_the_next() {
    let mut w = World::new(&[hub("DEFAULT", GW)]);
    w.add_client("DEFAULT", "meta", A_IP, GW, Some(A_IP));
    w.handshake(0);
    assert_eq!(w.sessions("DEFAULT").len(), 2);
    w.engine
        .apply(w.now, with_policy("meta", policy(&[("Access", "no")]), 0));
    assert_eq!(w.sessions("DEFAULT"), vec!["SID-SECURENAT-1"]);
    w.step();
    assert_eq!(
        closed_reasons(&w),
        vec![CloseReason::Admin(
            "access denied by the user's policy".into()
        )]
    );
    w.handshake(0);
    assert_eq!(w.sessions("DEFAULT"), vec!["SID-SECURENAT-1"]);
}

#[test]
fn an_expired_user_is_refused_and_its_live_session_ends_when_the_time_comes() {
    let mut w = World::new(&[hub("DEFAULT", GW)]);
    w.add_client("DEFAULT", "meta", A_IP, GW, Some(A_IP));
    let unix_now = 1_800_000_000_000;
    w.engine.set_unix_time(w.now, unix_now);
    // already expired: no session
    w.engine
        .apply(w.now, with_policy("meta", Policy::default(), unix_now - 1));
    w.handshake(0);
    assert_eq!(w.sessions("DEFAULT"), vec!["SID-SECURENAT-1"]);
    // expiring in 3 s: a session now, gone by then
    w.engine.apply(
        w.now,
        with_policy("meta", Policy::default(), unix_now + 3000),
    );
    w.handshake(0);
    assert_eq!(w.sessions("DEFAULT").len(), 2);
    w.run(2000);
    assert_eq!(w.sessions("DEFAULT").len(), 2, "not expired yet");
    w.run(2500);
    assert_eq!(w.sessions("DEFAULT"), vec!["SID-SECURENAT-1"]);
    assert!(closed_reasons(&w).contains(&CloseReason::Admin("the user has expired".into())));
}

#[test]
fn bandwidth_limits_slow_a_transfer_to_their_rate_and_tcp_still_completes() {
    let mut w = World::new(&[hub("DEFAULT", GW)]);
    w.add_client("DEFAULT", "meta", A_IP, GW, Some(A_IP));
    w.handshake(0);
    let data = pattern(60_000);
    let same = |a: &[u8], b: &[u8]| a == b;
    let t0 = w.now;
    let back = echo_through(&mut w, 0, OUTSIDE, 40_001, &data);
    assert!(
        same(&back, &data),
        "{} of {} bytes came back",
        back.len(),
        data.len()
    );
    let free = w.now - t0;
    // 200 kbit/s each way: 60 kB up and back takes at least 60000*8/200000 = 2.4 s (less the
    // 200 ms each bucket starts with)
    let slow = policy(&[("MaxUpload", "200000"), ("MaxDownload", "200000")]);
    w.engine.apply(w.now, with_policy("meta", slow, 0));
    let t1 = w.now;
    let back = echo_through(&mut w, 0, OUTSIDE, 40_002, &data);
    let limited = w.now - t1;
    assert!(
        same(&back, &data),
        "TCP completes under the limit: {} of {} bytes came back",
        back.len(),
        data.len()
    );
    assert!(
        limited >= Duration::from_millis(2000) && limited > free * 3,
        "limited {limited:?}, free {free:?}"
    );
    assert!(w.engine.hub("DEFAULT").unwrap().policy_dropped() > 0);
}

#[test]
fn dhcp_force_passes_a_server_assigned_address_and_holds_a_self_picked_one() {
    let mut w = World::new(&[hub("DEFAULT", GW)]);
    // alice's key carries the address the server gave; bob picks his own (SoftEther 5's way)
    w.add_client("DEFAULT", "alice", A_IP, GW, Some(A_IP));
    w.add_client("DEFAULT", "bob", B_IP, GW, None);
    let forced = policy(&[("DHCPForce", "yes")]);
    w.engine.apply(w.now, with_policy("alice", forced, 0));
    w.engine.apply(w.now, with_policy("bob", forced, 0));
    w.handshake(0);
    w.handshake(1);
    assert!(
        ping(&mut w, 0, GW, 1),
        "alice's assigned address reaches the gateway"
    );
    assert!(!ping(&mut w, 1, GW, 2), "bob's own pick does not");
    w.engine
        .apply(w.now, with_policy("bob", Policy::default(), 0));
    assert!(ping(&mut w, 1, GW, 3), "without DHCPForce it does");
}
