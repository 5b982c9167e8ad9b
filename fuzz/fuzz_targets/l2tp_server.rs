//! The L2TP packet parser and an LNS fed arbitrary datagrams: the input is split at its 0xff
//! bytes, each piece moving the clock by its first byte and coming from one of two peers by
//! its length; the server answers, drops and counts, and never panics. Each piece also goes
//! out as a frame on every session that came up.
#![no_main]

use std::time::{Duration, Instant};

use etherhub_l2tp::packet;
use etherhub_l2tp::{Config, Event, Server, SessionKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((_, payload)) = packet::parse(data) {
        let _ = packet::parse_message(payload);
    }

    let mut now = Instant::now();
    let config = Config {
        max_tunnels_per_peer: 4,
        max_sessions_per_tunnel: 4,
        ..Config::default()
    };
    let mut s: Server<u8> = Server::new(config, 1);
    let mut up: Vec<SessionKey> = Vec::new();
    let mut events = Vec::new();
    for piece in data.split(|b| *b == 0xff) {
        now += Duration::from_millis(u64::from(piece.first().copied().unwrap_or(0)) * 100);
        if s.poll_timeout().is_some_and(|t| t <= now) {
            s.handle_timeout(now, &mut events);
        }
        s.handle_datagram(now, (piece.len() % 2) as u8, piece, &mut events);
        for e in events.drain(..) {
            match e {
                Event::SessionUp { session, .. } => up.push(session),
                Event::SessionDown { session, .. } => up.retain(|k| *k != session),
                _ => {}
            }
        }
        for key in &up {
            assert!(s.send_frame(*key, piece).is_ok() || piece.len() > 65000);
        }
    }
});
