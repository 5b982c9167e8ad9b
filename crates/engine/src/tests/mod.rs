//! The engine in memory: in-process WireGuard clients through the engine to hubs, SecureNAT and
//! a fake outside, on a fake clock.

mod ipsec;
mod kit;
mod openvpn;
mod packets;
mod policy;
mod softether;
mod stream;
mod workers;

use std::net::{Ipv4Addr, SocketAddrV4};

use etherhub_hub::StaticNetwork;

use crate::{Change, CloseReason, EngineEvent, HubSpec};
use kit::{hub, nat, World};

const GW: Ipv4Addr = Ipv4Addr::new(192, 168, 30, 1);
const A_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 30, 10);
const OUTSIDE: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 19, 0, 5), 80);

/// A world with hub DEFAULT and client 0 connected as `meta`, held to `A_IP`.
fn one_client() -> World {
    let mut w = World::new(&[hub("DEFAULT", GW)]);
    w.add_client("DEFAULT", "meta", A_IP, GW, Some(A_IP));
    w.handshake(0);
    w
}

/// Sends `payload` over a TCP connection from client `i` to `dst` and waits for all of it to
/// come back; returns what came back.
fn echo_through(w: &mut World, i: usize, dst: SocketAddrV4, port: u16, payload: &[u8]) -> Vec<u8> {
    let h = w.clients[i].connect(dst, port);
    echo_on(w, i, h, payload)
}

/// Sends `payload` over client `i`'s open connection `h` and waits for all of it to come
/// back (a minute of the world's time at most); returns what came back.
fn echo_on(w: &mut World, i: usize, h: smoltcp::iface::SocketHandle, payload: &[u8]) -> Vec<u8> {
    let (mut sent, mut got) = (0, Vec::new());
    w.run_until(60_000, |w| {
        let s = w.clients[i].tcp(h);
        if s.can_send() && sent < payload.len() {
            sent += s.send_slice(&payload[sent..]).unwrap();
        }
        while s.can_recv() {
            s.recv(|b| {
                got.extend_from_slice(b);
                (b.len(), ())
            })
            .unwrap();
        }
        got.len() >= payload.len()
    });
    got
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len as u32).map(|i| (i * 7 % 251) as u8).collect()
}

/// Pings `dst` from client `i` with `seq`; whether the reply came within a second.
fn ping(w: &mut World, i: usize, dst: Ipv4Addr, seq: u16) -> bool {
    let src = w.clients[i].ip;
    w.clients[i].ping(src, dst, seq);
    w.run_until(1000, |w| {
        w.clients[i]
            .echo_replies
            .iter()
            .any(|r| r.0 == dst && r.2 == seq)
    })
}

#[test]
fn a_wireguard_client_reaches_the_outside_through_securenat() {
    let mut w = one_client();
    assert_eq!(
        w.sessions("DEFAULT"),
        vec!["SID-SECURENAT-1", "SID-META-[WIREGUARD]-2"]
    );
    assert!(ping(&mut w, 0, GW, 1), "the gateway answers");
    let payload = pattern(300_000);
    let got = echo_through(&mut w, 0, OUTSIDE, 40000, &payload);
    assert_eq!(got.len(), payload.len());
    assert!(got == payload, "the echo differs");
    assert_eq!(w.outside.connects, vec![OUTSIDE]);
    let hub = w.engine.hub("default").unwrap();
    assert!(hub
        .ip_table()
        .iter()
        .any(|e| e.ip == std::net::IpAddr::V4(A_IP) && e.session_name == "SID-META-[WIREGUARD]-2"));
    let flows = hub.securenat_host().unwrap().nat_table();
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0].sent, payload.len() as u64);
    // the WireGuard session shows its tunnel
    let s = hub.session_by_name("SID-META-[WIREGUARD]-2").unwrap();
    let v = w.engine.tunnel_view("DEFAULT", s).unwrap();
    assert_eq!(v.details.cipher, "ChaCha20-Poly1305");
    assert_eq!(v.address, Some(A_IP));
    assert!(w.engine.health().last_packet.is_some());
    assert_eq!(w.engine.health().faults, 0);
}

#[test]
fn set_static_network_moves_the_gateway_of_a_live_hub() {
    let mut w = one_client();
    assert!(ping(&mut w, 0, *OUTSIDE.ip(), 1), "through SecureNAT");
    // SecureNAT's host moves to .254 and the static network follows it: the session stays
    let moved = Ipv4Addr::new(192, 168, 30, 254);
    w.clients[0].set_gateway(moved);
    w.engine.apply(w.now, Change::Hub(hub("DEFAULT", moved)));
    assert_eq!(
        w.engine
            .hub("DEFAULT")
            .unwrap()
            .static_network()
            .map(|n| n.gateway),
        Some(moved)
    );
    assert!(ping(&mut w, 0, moved, 2), "the new gateway answers");
    assert!(!ping(&mut w, 0, GW, 3), "the old one is gone");
    assert!(
        ping(&mut w, 0, *OUTSIDE.ip(), 4),
        "the outside through the new gateway"
    );
    // a gateway nobody answers for: traffic for the outside has nowhere to go
    let mut spec = hub("DEFAULT", moved);
    spec.static_network = Some(StaticNetwork {
        gateway: Ipv4Addr::new(192, 168, 30, 77),
        mask: Ipv4Addr::new(255, 255, 255, 0),
    });
    w.engine.apply(w.now, Change::Hub(spec));
    w.run(3000);
    assert!(
        !ping(&mut w, 0, *OUTSIDE.ip(), 5),
        "routed to the dead gateway"
    );
    assert_eq!(w.sessions("DEFAULT").len(), 2, "no session was lost");
}

#[test]
fn deleting_a_key_or_its_user_ends_the_session_at_once() {
    let mut w = World::new(&[hub("DEFAULT", GW)]);
    w.add_client("DEFAULT", "meta", A_IP, GW, Some(A_IP));
    w.add_client(
        "DEFAULT",
        "other",
        Ipv4Addr::new(192, 168, 30, 11),
        GW,
        None,
    );
    w.handshake(0);
    w.handshake(1);
    assert_eq!(w.sessions("DEFAULT").len(), 3);
    let key = w.clients[0].public;
    w.engine.apply(w.now, Change::WgKeyRemoved(key));
    let names = w.sessions("DEFAULT");
    assert_eq!(names, vec!["SID-SECURENAT-1", "SID-OTHER-[WIREGUARD]-3"]);
    assert!(w.engine.wireguard_session(&key).is_none());
    w.engine.apply(
        w.now,
        Change::UserRemoved {
            hub: "default".into(),
            name: "OTHER".into(),
        },
    );
    assert_eq!(w.sessions("DEFAULT"), vec!["SID-SECURENAT-1"]);
    w.step();
    let closed: Vec<&CloseReason> = w
        .events
        .iter()
        .filter_map(|e| match e {
            EngineEvent::SessionClosed { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(
        closed,
        vec![
            &CloseReason::Admin("WireGuard key deleted".into()),
            &CloseReason::Admin("user deleted".into())
        ]
    );
    // the deleted user's key gets no handshake any more
    w.handshake(1);
    assert_eq!(w.sessions("DEFAULT"), vec!["SID-SECURENAT-1"]);
}

#[test]
fn a_key_without_an_address_takes_its_first_source_and_keeps_it() {
    let mut w = World::new(&[hub("DEFAULT", GW)]);
    let picked = Ipv4Addr::new(192, 168, 30, 233);
    w.add_client("DEFAULT", "meta", picked, GW, None);
    w.add_client(
        "DEFAULT",
        "meta2",
        Ipv4Addr::new(192, 168, 30, 50),
        GW,
        None,
    );
    w.handshake(0);
    w.handshake(1);
    assert!(ping(&mut w, 0, GW, 1), "the first address is taken");
    let learned: Vec<_> = w
        .events
        .iter()
        .filter_map(|e| match e {
            EngineEvent::AddressLearned {
                key,
                address,
                session,
                ..
            } => Some((*key, *address, session.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        learned,
        vec![(
            w.clients[0].public,
            picked,
            "SID-META-[WIREGUARD]-2".to_string()
        )]
    );
    // from now on only that one
    let other = Ipv4Addr::new(192, 168, 30, 234);
    w.clients[0].ping(other, GW, 2);
    w.run(200);
    assert!(!w.clients[0].echo_replies.iter().any(|r| r.2 == 2));
    // a second key trying the first one's address is refused, and the refusal says why
    w.clients[1].ping(picked, GW, 3);
    w.run(200);
    assert!(!w.clients[1].echo_replies.iter().any(|r| r.2 == 3));
    let refusals: Vec<_> = w
        .events
        .iter()
        .filter_map(|e| match e {
            EngineEvent::SourceRefused {
                session,
                sent_from,
                owns,
                ..
            } => Some((session.clone(), *sent_from, *owns)),
            _ => None,
        })
        .collect();
    assert_eq!(
        refusals,
        vec![
            ("SID-META-[WIREGUARD]-2".to_string(), other, Some(picked)),
            ("SID-META2-[WIREGUARD]-3".to_string(), picked, None),
        ]
    );
    assert_eq!(w.engine.stats().spoofed_dropped, 2);
    // it can still take a free one
    assert!(ping(&mut w, 1, GW, 4));
}

#[test]
fn a_panic_in_a_hub_is_contained_to_its_securenat_host() {
    let other_gw = Ipv4Addr::new(10, 9, 0, 1);
    let mut w = World::new(&[hub("DEFAULT", GW), hub("OTHER", other_gw)]);
    w.add_client("DEFAULT", "meta", A_IP, GW, Some(A_IP));
    w.add_client("OTHER", "bob", Ipv4Addr::new(10, 9, 0, 10), other_gw, None);
    w.handshake(0);
    w.handshake(1);
    // bob has a transfer going through the other hub's SecureNAT
    let h = w.clients[1].connect(OUTSIDE, 41000);
    w.run(300);
    assert!(w.clients[1].tcp(h).may_send());
    w.engine.inject_fault_on_port(6666);
    let bad = w.clients[0].connect(SocketAddrV4::new(*OUTSIDE.ip(), 6666), 40001);
    w.run(300);
    let health = w.engine.health();
    assert_eq!(health.faults, 1);
    let fault = health.last_fault.unwrap();
    assert_eq!(fault.hub.as_deref(), Some("DEFAULT"));
    assert_eq!(fault.session.as_deref(), Some("SID-SECURENAT-1"));
    assert!(
        fault.message.contains("fault injected"),
        "{}",
        fault.message
    );
    assert!(w.events.iter().any(|e| matches!(e, EngineEvent::Fault(_))));
    assert!(
        !w.clients[0].tcp(bad).is_active()
            || w.clients[0].tcp(bad).state() != smoltcp::socket::tcp::State::Established
    );
    // the faulted client keeps its session, and its hub's SecureNAT answers again
    assert_eq!(w.sessions("DEFAULT").len(), 2);
    assert!(ping(&mut w, 0, GW, 1));
    let payload = pattern(50_000);
    assert_eq!(echo_through(&mut w, 0, OUTSIDE, 40002, &payload), payload);
    // bob's transfer on the other hub never noticed
    let payload = pattern(100_000);
    assert!(
        echo_on(&mut w, 1, h, &payload) == payload,
        "bob's flow broke"
    );
}

#[test]
fn a_hub_taken_offline_ends_its_sessions_and_refuses_new_ones() {
    let mut w = one_client();
    let mut spec: HubSpec = hub("DEFAULT", GW);
    spec.online = false;
    w.engine.apply(w.now, Change::Hub(spec.clone()));
    assert_eq!(w.sessions("DEFAULT"), vec!["SID-SECURENAT-1"]);
    w.handshake(0);
    assert_eq!(
        w.sessions("DEFAULT"),
        vec!["SID-SECURENAT-1"],
        "no handshake while offline"
    );
    spec.online = true;
    w.engine.apply(w.now, Change::Hub(spec));
    w.handshake(0);
    assert_eq!(w.sessions("DEFAULT").len(), 2);
}

#[test]
fn securenat_timeouts_change_in_place_and_other_settings_rebuild_it() {
    let mut w = one_client();
    let h = w.clients[0].connect(OUTSIDE, 40000);
    w.run(300);
    assert_eq!(
        w.engine
            .hub("DEFAULT")
            .unwrap()
            .securenat_host()
            .unwrap()
            .nat_table()
            .len(),
        1
    );
    let mut spec = hub("DEFAULT", GW);
    let mut n = nat(GW);
    n.udp_timeout = std::time::Duration::from_secs(5);
    n.seed = 99;
    spec.securenat = Some(n);
    w.engine.apply(w.now, Change::Hub(spec.clone()));
    assert_eq!(
        w.engine
            .hub("DEFAULT")
            .unwrap()
            .securenat_host()
            .unwrap()
            .nat_table()
            .len(),
        1,
        "a timeout change keeps the flows"
    );
    assert!(w.outside.resets.is_empty());
    spec.securenat.as_mut().unwrap().mtu = 1400;
    w.engine.apply(w.now, Change::Hub(spec));
    w.step();
    assert!(w
        .engine
        .hub("DEFAULT")
        .unwrap()
        .securenat_host()
        .unwrap()
        .nat_table()
        .is_empty());
    assert_eq!(
        w.outside.resets.len(),
        1,
        "the old host's sockets are reset"
    );
    let _ = w.clients[0].tcp(h);
}
