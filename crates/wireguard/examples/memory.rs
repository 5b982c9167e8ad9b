//! Memory per registered key and per live session, measured as the growth of this process's
//! resident set: 10,000 registered keys, then 1,000 of them with a completed handshake (boringtun
//! clients in the same process play the peers; their own memory is set aside first).
//!
//! Run: cargo run --release -p etherhub-wireguard --example memory

use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use etherhub_wireguard::{generate_private_key, public_key_of, Action, KeyAccess, Server};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("statm resident field");
    pages * 4096
}

fn main() {
    const KEYS: usize = 10_000;
    const SESSIONS: usize = 1_000;
    let mut server = Server::with_handshake_rate_limit(generate_private_key(), None, u64::MAX / 2);
    // clients first, so their memory is not counted as the server's
    let mut clients: Vec<(Tunn, [u8; 32])> = (0..SESSIONS)
        .map(|_| {
            let private = generate_private_key();
            let t = Tunn::new(
                StaticSecret::from(private),
                PublicKey::from(server.public_key()),
                None,
                None,
                1,
                None,
            );
            (t, public_key_of(&private))
        })
        .collect();
    let other_keys: Vec<[u8; 32]> = (0..KEYS - SESSIONS)
        .map(|_| public_key_of(&generate_private_key()))
        .collect();

    // the key directory the server asks during handshakes (the engine keeps one like it)
    let before = rss_bytes();
    let mut keys: HashMap<[u8; 32], KeyAccess> = HashMap::new();
    for (_, k) in &clients {
        keys.insert(*k, KeyAccess::default());
    }
    for k in &other_keys {
        keys.insert(*k, KeyAccess::default());
    }
    let with_keys = rss_bytes();

    let mut cbuf = vec![0u8; 2048];
    let mut sbuf = vec![0u8; 2048];
    for (i, (t, _)) in clients.iter_mut().enumerate() {
        let addr = SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(198, 18, (i / 250) as u8, (i % 250) as u8 + 1)),
            51820,
        );
        let init = match t.format_handshake_initiation(&mut cbuf, false) {
            TunnResult::WriteToNetwork(b) => b.to_vec(),
            _ => panic!("no initiation"),
        };
        let resp = match server.handle_datagram(Instant::now(), addr, &init, &mut sbuf, &keys) {
            Action::Send(_, b) => b.to_vec(),
            other => panic!("no response: {other:?}"),
        };
        if let TunnResult::WriteToNetwork(k) = t.decapsulate(None, &resp, &mut cbuf) {
            let k = k.to_vec();
            let _ = server.handle_datagram(Instant::now(), addr, &k, &mut sbuf, &keys);
        }
        while server.poll_event().is_some() {}
    }
    let with_sessions = rss_bytes();
    assert_eq!(server.peers().len(), SESSIONS, "every client connected");
    let per_key = (with_keys - before) as f64 / KEYS as f64;
    let per_session = (with_sessions - with_keys) as f64 / SESSIONS as f64;
    println!("registered keys: {KEYS}, live sessions: {SESSIONS}");
    println!(
        "per registered key: {:.0} bytes ({:.2} KiB)",
        per_key,
        per_key / 1024.0
    );
    println!(
        "per live session:   {:.0} bytes ({:.2} KiB)",
        per_session,
        per_session / 1024.0
    );
}
