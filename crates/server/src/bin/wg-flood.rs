//! A WireGuard handshake flood, for load tests only: sends real handshake initiations (built by
//! boringtun's `Tunn`) as fast as it can to one server, from a pool of unknown keys and, when
//! given, from one registered key. Replies are read: cookie replies are fed back to the
//! registered key's `Tunn`, so its next initiations carry a valid MAC2 as a real client's would.
//!
//! Bounded in count and in time, always: `--count` initiations at most, `--seconds` at most.
//! It prints one line of counters at the end. Run it only against a server in a network
//! namespace you created (the tests and scripts/flood do).
//!
//!   wg-flood --target 198.18.0.1:443 --server-public <b64> [--psk <b64>] [--valid-private <b64>]
//!            [--seconds 10] [--count 1000000] [--unknown-keys 32]

#[path = "tool/args.rs"]
mod args;

use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use etherhub_wireguard::{generate_private_key, Key};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

struct Args {
    target: SocketAddr,
    server_public: Key,
    psk: Option<Key>,
    valid_private: Option<Key>,
    seconds: u64,
    count: u64,
    unknown_keys: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = std::env::args().skip(1);
    let mut target = None;
    let mut server_public = None;
    let mut psk = None;
    let mut valid_private = None;
    let mut seconds = 10;
    let mut count = 1_000_000;
    let mut unknown_keys = 32;
    use args::{addr, key, num};
    while let Some(flag) = a.next() {
        match flag.as_str() {
            "--target" => target = Some(addr("--target", a.next())?),
            "--server-public" => server_public = Some(key(a.next())?),
            "--psk" => psk = Some(key(a.next())?),
            "--valid-private" => valid_private = Some(key(a.next())?),
            // hard caps: a typo must not become an unbounded flood
            "--seconds" => seconds = num(a.next())?.min(600),
            "--count" => count = num(a.next())?.min(100_000_000),
            "--unknown-keys" => unknown_keys = num(a.next())?.clamp(1, 4096) as usize,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Args {
        target: target.ok_or("--target is required")?,
        server_public: server_public.ok_or("--server-public is required")?,
        psk,
        valid_private,
        seconds,
        count,
        unknown_keys,
    })
}

fn tunn(private: Key, server_public: Key, psk: Option<Key>, index: u32) -> Tunn {
    Tunn::new(
        StaticSecret::from(private),
        PublicKey::from(server_public),
        psk,
        None,
        index,
        None,
    )
}

#[derive(Default, Debug)]
struct Counters {
    sent: u64,
    sent_valid: u64,
    send_errors: u64,
    cookie_replies: u64,
    handshake_responses: u64,
    other_replies: u64,
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("wg-flood: {e}");
            std::process::exit(2);
        }
    };
    let sock = UdpSocket::bind(if args.target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    })
    .expect("bind");
    sock.connect(args.target).expect("connect");
    sock.set_nonblocking(true).expect("nonblocking");
    let mut unknown: Vec<Tunn> = (0..args.unknown_keys)
        .map(|i| {
            tunn(
                generate_private_key(),
                args.server_public,
                args.psk,
                i as u32 + 1,
            )
        })
        .collect();
    let mut valid = args
        .valid_private
        .map(|k| tunn(k, args.server_public, args.psk, 0xabcd));
    let mut buf = vec![0u8; 2048];
    let mut rbuf = vec![0u8; 2048];
    let mut c = Counters::default();
    let start = Instant::now();
    let end = start + Duration::from_secs(args.seconds);
    let mut i: u64 = 0;
    while c.sent < args.count && (!i.is_multiple_of(256) || Instant::now() < end) {
        i += 1;
        // one in four from the registered key, when there is one
        let use_valid = valid.is_some() && i.is_multiple_of(4);
        let t = if use_valid {
            valid.as_mut().unwrap()
        } else {
            let n = unknown.len();
            &mut unknown[(i as usize) % n]
        };
        if let TunnResult::WriteToNetwork(init) = t.format_handshake_initiation(&mut buf, true) {
            match sock.send(init) {
                Ok(_) => {
                    c.sent += 1;
                    if use_valid {
                        c.sent_valid += 1;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => c.send_errors += 1,
            }
        }
        // drain replies
        while let Ok(n) = sock.recv(&mut rbuf) {
            match rbuf.first() {
                Some(3) => {
                    c.cookie_replies += 1;
                    if let Some(v) = valid.as_mut() {
                        let _ = v.decapsulate(None, &rbuf[..n], &mut buf);
                    }
                }
                Some(2) => c.handshake_responses += 1,
                _ => c.other_replies += 1,
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "wg-flood: sent={} sent_valid={} rate={:.0}/s seconds={:.1} cookie_replies={} \
         handshake_responses={} other_replies={} send_errors={}",
        c.sent,
        c.sent_valid,
        c.sent as f64 / secs.max(1e-9),
        secs,
        c.cookie_replies,
        c.handshake_responses,
        c.other_replies,
        c.send_errors
    );
}
