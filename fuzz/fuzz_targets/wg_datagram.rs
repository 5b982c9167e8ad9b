//! WireGuard datagrams from anyone: `is_wireguard`, then `Server::handle_datagram` and the polls
//! that follow it. Three modes (first byte): raw datagrams; a real client's initiation with the
//! input XORed in; raw datagrams after a real handshake, with the live receiver index patched in
//! so they reach the transport-data path of an established peer, first through the server's
//! `DataPath` (as a worker thread opens them) and, where it declines, the server.
#![no_main]

use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use etherhub_wireguard::{is_wireguard, public_key_of, Action, Key, KeyAccess, Opened, Server};
use std::collections::HashMap;
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const SERVER_PRIVATE: [u8; 32] = [7; 32];
const CLIENT_PRIVATE: [u8; 32] = [9; 32];
const PSK: [u8; 32] = [3; 32];

fn src() -> SocketAddr {
    "198.18.0.2:51820".parse().unwrap()
}

type Keys = HashMap<Key, KeyAccess>;

fn feed(
    server: &mut Server,
    keys: &Keys,
    now: Instant,
    datagram: &[u8],
    out: &mut [u8],
) -> Vec<Vec<u8>> {
    let _ = is_wireguard(datagram);
    let mut sent = Vec::new();
    if let Action::Send(_, b) = server.handle_datagram(now, src(), datagram, out, keys) {
        sent.push(b.to_vec());
    }
    for _ in 0..64 {
        match server.poll_queued(out) {
            Action::Nothing => break,
            Action::Send(_, b) => sent.push(b.to_vec()),
            Action::Packet(..) => {}
        }
    }
    while server.poll_event().is_some() {}
    sent
}

/// Splits the input into datagrams at each `0xff 0xfe` marker pair.
fn datagrams(data: &[u8]) -> Vec<&[u8]> {
    let mut v = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + 1 < data.len() {
        if data[i] == 0xff && data[i + 1] == 0xfe {
            v.push(&data[start..i]);
            start = i + 2;
            i += 2;
        } else {
            i += 1;
        }
    }
    v.push(&data[start..]);
    v
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let now = Instant::now();
    let mut server = Server::new(SERVER_PRIVATE, Some(PSK));
    let keys = Keys::from([(public_key_of(&CLIENT_PRIVATE), KeyAccess::default())]);
    let mut out = vec![0u8; 65_536 + 64];
    let mut tunn = Tunn::new(
        StaticSecret::from(CLIENT_PRIVATE),
        PublicKey::from(public_key_of(&SERVER_PRIVATE)),
        Some(PSK),
        None,
        1,
        None,
    );
    let mut cbuf = vec![0u8; 2048];
    match mode % 3 {
        0 => {
            for d in datagrams(rest) {
                feed(&mut server, &keys, now, d, &mut out);
            }
        }
        1 => {
            let TunnResult::WriteToNetwork(init) =
                tunn.format_handshake_initiation(&mut cbuf, false)
            else {
                return;
            };
            let mut init = init.to_vec();
            for (i, b) in rest.iter().enumerate() {
                if let Some(x) = init.get_mut(i % 148) {
                    *x ^= b;
                }
            }
            feed(&mut server, &keys, now, &init, &mut out);
        }
        _ => {
            let TunnResult::WriteToNetwork(init) =
                tunn.format_handshake_initiation(&mut cbuf, false)
            else {
                return;
            };
            let init = init.to_vec();
            let replies = feed(&mut server, &keys, now, &init, &mut out);
            let Some(response) = replies.first() else {
                return;
            };
            // the server's sender index is the receiver index of everything sent to it
            let index = response.get(4..8).map(|b| [b[0], b[1], b[2], b[3]]);
            let _ = tunn.decapsulate(None, response, &mut cbuf);
            let path = server.data_path();
            // boringtun puts the peer's number in the upper 24 bits of the index
            let peer = index.map(|b| etherhub_wireguard::PeerId(u32::from_le_bytes(b) >> 8));
            for d in datagrams(rest) {
                let mut d = d.to_vec();
                if let (Some(idx), Some(slot)) = (index, d.get_mut(4..8)) {
                    slot.copy_from_slice(&idx);
                }
                if let Opened::Server = path.open(src(), &d, &mut out) {
                    feed(&mut server, &keys, now, &d, &mut out);
                }
                if let Some(peer) = peer {
                    let _ = path.seal(peer, &d, &mut out);
                }
            }
            let mut timers = Vec::new();
            server.handle_timers(now + Duration::from_secs(200), &mut timers);
        }
    }
});
