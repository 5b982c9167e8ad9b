//! Many WireGuard peers in one process (boringtun's `Tunn`), each holding a live session with
//! one server, for memory measurements only (`scripts/memory`). All peers share one UDP socket:
//! replies are told apart by the receiver index boringtun gives each peer's sessions.
//!
//! Bounded in time, always (`--seconds`, at most 600). Handshakes are paced (`--rate` per
//! second) so that the server's handshake limiter is not what is measured; a peer whose
//! handshake got no answer tries again after five seconds. Once every peer is up it prints
//! `wg-peers: up=N` (and flushes), then keeps the sessions alive until the time is over.
//!
//!   wg-peers --gen N                  prints N key pairs, "private public" per line
//!   wg-peers --target ip:port --server-public <b64> [--psk <b64>] --keys FILE
//!            [--seconds 60] [--rate 200]

#[path = "tool/args.rs"]
mod args;

use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use etherhub_wireguard::{
    generate_private_key, key_from_base64, key_to_base64, public_key_of, Key,
};
use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

struct Args {
    target: SocketAddr,
    server_public: Key,
    psk: Option<Key>,
    keys: Vec<Key>,
    seconds: u64,
    rate: u64,
}

/// WireGuard's message types whose receiver index sits at bytes 4..8 (cookie reply, data) or
/// 8..12 (handshake response).
fn receiver_index(msg: &[u8]) -> Option<u32> {
    let at = match msg.first()? {
        2 => 8,
        3 | 4 => 4,
        _ => return None,
    };
    Some(u32::from_le_bytes(msg.get(at..at + 4)?.try_into().ok()?))
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut a = std::env::args().skip(1);
    let (mut target, mut server_public, mut psk, mut keys) = (None, None, None, None);
    let (mut seconds, mut rate) = (60, 200);
    use args::{addr, key, num};
    while let Some(flag) = a.next() {
        match flag.as_str() {
            "--gen" => {
                let n = num(a.next())?.min(100_000);
                let mut out = std::io::stdout().lock();
                for _ in 0..n {
                    let k = generate_private_key();
                    let line = format!(
                        "{} {}",
                        key_to_base64(&k),
                        key_to_base64(&public_key_of(&k))
                    );
                    writeln!(out, "{line}").map_err(|e| e.to_string())?;
                }
                return Ok(None);
            }
            "--target" => target = Some(addr("--target", a.next())?),
            "--server-public" => server_public = Some(key(a.next())?),
            "--psk" => psk = Some(key(a.next())?),
            "--keys" => {
                let path = a.next().ok_or("--keys needs a file")?;
                let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
                let list = text
                    .lines()
                    .filter_map(|l| l.split_whitespace().next())
                    .map(|k| key_from_base64(k).map_err(|e| format!("{path}: {e}")))
                    .collect::<Result<Vec<_>, _>>()?;
                keys = Some(list);
            }
            "--seconds" => seconds = num(a.next())?.min(600),
            "--rate" => rate = num(a.next())?.clamp(1, 10_000),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let keys = keys.ok_or("--keys is required")?;
    if keys.is_empty() || keys.len() > 16_000 {
        return Err(format!("{} keys: give 1 to 16000", keys.len()));
    }
    Ok(Some(Args {
        target: target.ok_or("--target is required")?,
        server_public: server_public.ok_or("--server-public is required")?,
        psk,
        keys,
        seconds,
        rate,
    }))
}

struct Peer {
    tunn: Tunn,
    up: bool,
    tried: Option<Instant>,
}

fn main() {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => return,
        Err(e) => {
            eprintln!("wg-peers: {e}");
            std::process::exit(2);
        }
    };
    let sock = UdpSocket::bind("0.0.0.0:0").expect("bind");
    sock.connect(args.target).expect("connect");
    sock.set_read_timeout(Some(Duration::from_millis(5)))
        .expect("timeout");
    // boringtun numbers a peer's sessions from its index shifted left by 8
    let mut peers: Vec<Peer> = args
        .keys
        .iter()
        .enumerate()
        .map(|(i, k)| Peer {
            tunn: Tunn::new(
                StaticSecret::from(*k),
                PublicKey::from(args.server_public),
                args.psk,
                Some(15),
                i as u32 + 1,
                None,
            ),
            up: false,
            tried: None,
        })
        .collect();
    let (mut buf, mut rbuf) = (vec![0u8; 2048], vec![0u8; 2048]);
    let start = Instant::now();
    let end = start + Duration::from_secs(args.seconds);
    let (mut started, mut up, mut announced) = (0u64, 0usize, false);
    let mut last_timers = start;
    while Instant::now() < end {
        let now = Instant::now();
        // handshakes, paced: at most `rate` per second since the start
        let allowed = (now - start).as_secs_f64() * args.rate as f64;
        for p in peers.iter_mut().filter(|p| !p.up) {
            if started as f64 >= allowed {
                break;
            }
            if p.tried.is_some_and(|t| now - t < Duration::from_secs(5)) {
                continue;
            }
            if let TunnResult::WriteToNetwork(init) =
                p.tunn.format_handshake_initiation(&mut buf, true)
            {
                let _ = sock.send(init);
            }
            p.tried = Some(now);
            started += 1;
        }
        // replies
        while let Ok(n) = sock.recv(&mut rbuf) {
            let Some(idx) = receiver_index(&rbuf[..n]) else {
                continue;
            };
            let Some(p) = peers.get_mut((idx >> 8) as usize - 1) else {
                continue;
            };
            let mut r = p.tunn.decapsulate(None, &rbuf[..n], &mut buf);
            while let TunnResult::WriteToNetwork(out) = r {
                let _ = sock.send(out);
                r = p.tunn.decapsulate(None, &[], &mut buf);
            }
            if !p.up && p.tunn.time_since_last_handshake().is_some() {
                p.up = true;
                up += 1;
            }
        }
        if up == peers.len() && !announced {
            println!("wg-peers: up={up}");
            let _ = std::io::stdout().flush();
            announced = true;
        }
        // keepalives and rekeys, once a second
        if now - last_timers >= Duration::from_secs(1) {
            last_timers = now;
            for p in peers.iter_mut().filter(|p| p.up) {
                if let TunnResult::WriteToNetwork(out) = p.tunn.update_timers(&mut buf) {
                    let _ = sock.send(out);
                }
            }
        }
    }
    println!(
        "wg-peers: peers={} up={up} seconds={}",
        peers.len(),
        args.seconds
    );
}
