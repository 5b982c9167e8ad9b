//! L2TP's IPsec carrier in the engine: its ports are L2TP's own, nothing is answered while it
//! is off, IKE's first message is answered from the address it came to (on 4500 behind the
//! non-ESP marker), and forged or unknown ESP is dropped and counted. (The whole exchange
//! with a real client: crates/server/tests/l2tp_ipsec.rs.)

use std::net::SocketAddr;
use std::time::Instant;

use crate::l2tp::L2tp;
use crate::{Change, Engine};

/// Main mode's first message: one proposal, AES-CBC-128, SHA-1, pre-shared key, MODP 2048.
fn main_mode_1(icookie: [u8; 8]) -> Vec<u8> {
    let mut attrs = Vec::new();
    for (t, v) in [(1u16, 7u16), (14, 128), (2, 2), (3, 1), (4, 14)] {
        attrs.extend_from_slice(&(0x8000 | t).to_be_bytes());
        attrs.extend_from_slice(&v.to_be_bytes());
    }
    let mut transform = vec![0, 0];
    transform.extend_from_slice(&(8 + attrs.len() as u16).to_be_bytes());
    transform.extend_from_slice(&[1, 1, 0, 0]);
    transform.extend_from_slice(&attrs);
    let mut proposal = vec![0, 0];
    proposal.extend_from_slice(&(8 + transform.len() as u16).to_be_bytes());
    proposal.extend_from_slice(&[1, 1, 0, 1]);
    proposal.extend_from_slice(&transform);
    let mut sa = vec![0, 0];
    sa.extend_from_slice(&(12 + proposal.len() as u16).to_be_bytes());
    sa.extend_from_slice(&1u32.to_be_bytes());
    sa.extend_from_slice(&1u32.to_be_bytes());
    sa.extend_from_slice(&proposal);
    let mut m = icookie.to_vec();
    m.extend_from_slice(&[0; 8]);
    m.extend_from_slice(&[1, 0x10, 2, 0, 0, 0, 0, 0]);
    m.extend_from_slice(&(28 + sa.len() as u32).to_be_bytes());
    m.extend_from_slice(&sa);
    m
}

fn counter(e: &Engine, name: &str) -> u64 {
    e.counters()
        .into_iter()
        .find(|(p, c, _)| *p == "L2TP" && *c == name)
        .map(|(_, _, v)| v)
        .unwrap_or_else(|| panic!("no L2TP counter {name}"))
}

fn sent(e: &mut Engine) -> Vec<(SocketAddr, SocketAddr, Vec<u8>)> {
    let mut out = Vec::new();
    while let Some(t) = e.poll_transmit() {
        out.push((t.local, t.to, t.contents.to_vec()));
    }
    out
}

fn options(e: &mut Engine, now: Instant, ipsec: bool) {
    e.apply(
        now,
        Change::ProtoOptions {
            protocol: "L2TP".into(),
            options: vec![
                ("IpsecEnabled".into(), ipsec.to_string()),
                ("Psk".into(), "engine-test-psk".into()),
            ],
        },
    );
}

#[test]
fn ike_is_answered_only_while_on_and_bad_esp_is_counted() {
    let now = Instant::now();
    let mut e = Engine::new(now);
    e.register(Box::new(L2tp::new([9; 32])));
    let ike: SocketAddr = "198.18.0.1:500".parse().unwrap();
    let nat_t: SocketAddr = "198.18.0.1:4500".parse().unwrap();
    let esp: SocketAddr = "198.18.0.1:0".parse().unwrap();
    let peer: SocketAddr = "198.18.0.2:500".parse().unwrap();

    // off (SoftEther's default): nothing answered, everything counted
    e.handle_datagram(now, ike, peer, &main_mode_1([1; 8]));
    e.handle_datagram(now, esp, "198.18.0.2:0".parse().unwrap(), &[1; 40]);
    assert!(sent(&mut e).is_empty());
    assert_eq!(counter(&e, "ipsec_refused_disabled"), 2);

    // on: the first message gets main mode's second, from the address it came to
    options(&mut e, now, true);
    e.handle_datagram(now, ike, peer, &main_mode_1([2; 8]));
    let out = sent(&mut e);
    assert_eq!(out.len(), 1, "one reply");
    let (from, to, reply) = &out[0];
    assert_eq!((*from, *to), (ike, peer));
    assert_eq!(&reply[..8], &[2; 8], "the initiator's cookie");
    assert_ne!(&reply[8..16], &[0; 8], "a responder cookie");
    assert_eq!(reply[18], 2, "main mode");

    // on 4500 the same exchange comes and goes behind the non-ESP marker
    let floated: SocketAddr = "198.18.0.2:4500".parse().unwrap();
    let mut marked = vec![0; 4];
    marked.extend_from_slice(&main_mode_1([3; 8]));
    e.handle_datagram(now, nat_t, floated, &marked);
    let out = sent(&mut e);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].0, out[0].1), (nat_t, floated));
    assert_eq!(&out[0].2[..4], &[0; 4], "non-ESP marker");
    assert_eq!(&out[0].2[4..12], &[3; 8]);

    // ESP for an SPI nobody agreed, as protocol 50 and in UDP; a NAT keepalive; a marker with
    // nothing behind it; garbage IKE
    e.handle_datagram(
        now,
        esp,
        "198.18.0.2:0".parse().unwrap(),
        &[0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1, 7, 7, 7, 7],
    );
    e.handle_datagram(now, nat_t, floated, &[0xde, 0xad, 0, 1, 0, 0, 0, 1, 9, 9]);
    e.handle_datagram(now, nat_t, floated, &[0xff]);
    e.handle_datagram(now, nat_t, floated, &[0, 0, 0, 0]);
    e.handle_datagram(now, ike, peer, &[0x55; 11]);
    assert!(sent(&mut e).is_empty(), "none of it is answered");
    assert_eq!(counter(&e, "esp_unknown_spi_dropped"), 2);
    assert_eq!(counter(&e, "ike_malformed_dropped"), 1);
    assert_eq!(counter(&e, "esp_received"), 0);
    // the keepalive is no fault; the bare marker, with no IKE behind it, is
    assert_eq!(counter(&e, "esp_malformed_dropped"), 1);

    // and off again: the same first message goes unanswered
    options(&mut e, now, false);
    e.handle_datagram(now, ike, peer, &main_mode_1([4; 8]));
    assert!(sent(&mut e).is_empty());
    assert_eq!(counter(&e, "ipsec_refused_disabled"), 3);
}
