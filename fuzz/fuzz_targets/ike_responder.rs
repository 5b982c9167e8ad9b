//! The IKEv1 responder fed arbitrary datagrams: the input is split at its 0xff bytes; each
//! piece's first byte steers it (bit 0: which of two peers sends it, bit 1: patch in the
//! responder cookie of the last reply so the message reaches an SA, bit 2: patch the header's
//! length to the piece's, bit 3: arrive on port 4500, bits 4-7: seconds to advance the clock)
//! and the rest is the message. The responder answers, drops and counts, and never panics.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use etherhub_ipsec::ike::{Config, Event, Responder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let config = Config {
        psk: b"fuzz".to_vec(),
        max_half_open_per_ip: 4,
        max_half_open: 16,
        ..Config::default()
    };
    let mut r = Responder::new(config, [3; 32]);
    let peers: [SocketAddr; 2] = ["198.51.100.1:500".parse().unwrap(), "203.0.113.9:500".parse().unwrap()];
    let mut now = Instant::now();
    let mut events = Vec::new();
    let mut rcookie = [0u8; 8];
    for piece in data.split(|b| *b == 0xff) {
        let Some((&ctl, msg)) = piece.split_first() else {
            continue;
        };
        let mut msg = msg.to_vec();
        if ctl & 2 != 0 && msg.len() >= 16 {
            msg[8..16].copy_from_slice(&rcookie);
        }
        if ctl & 4 != 0 && msg.len() >= 28 {
            let len = msg.len() as u32;
            msg[24..28].copy_from_slice(&len.to_be_bytes());
        }
        let mut peer = peers[usize::from(ctl & 1)];
        let mut local: SocketAddr = "192.0.2.1:500".parse().unwrap();
        if ctl & 8 != 0 {
            peer.set_port(4500);
            local.set_port(4500);
        }
        now += Duration::from_secs(u64::from(ctl >> 4));
        if r.poll_timeout().is_some_and(|t| t <= now) {
            r.handle_timeout(now, &mut events);
        }
        r.handle(now, local, peer, &msg, &mut events);
        for e in events.drain(..) {
            if let Event::Transmit { local, datagram, .. } = e {
                let skip = if local.port() == 4500 { 4 } else { 0 };
                if datagram.len() >= skip + 16 {
                    rcookie.copy_from_slice(&datagram[skip + 8..skip + 16]);
                }
            }
        }
        if let Some(spi) = r.child_spis().first() {
            r.delete_child(now, *spi, &mut events);
        }
    }
    let _ = r.dropped();
});
