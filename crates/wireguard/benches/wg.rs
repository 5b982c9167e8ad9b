//! Hot-path micro-benchmarks of the WireGuard server: data packets both ways, handshakes per
//! second as responder, key lookup with many registered keys.

use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use etherhub_wireguard::{
    generate_private_key, public_key_of, Action, Key, KeyAccess, KeyDirectory, Server,
};
use std::collections::HashMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

const CLIENT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)), 51820);

/// The key directory the benchmarks pass to the server.
type Keys = HashMap<Key, KeyAccess>;

/// A 1420-byte IPv4/UDP packet (the WireGuard default MTU).
fn packet() -> Vec<u8> {
    let total = 1420usize;
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[192, 168, 30, 233]);
    p[16..20].copy_from_slice(&[192, 168, 30, 1]);
    p[24..26].copy_from_slice(&((total - 20) as u16).to_be_bytes());
    p
}

fn new_client(server_public: [u8; 32]) -> (Tunn, [u8; 32]) {
    let private = generate_private_key();
    let tunn = Tunn::new(
        StaticSecret::from(private),
        PublicKey::from(server_public),
        None,
        None,
        1,
        None,
    );
    (tunn, public_key_of(&private))
}

/// A server with one connected client; returns both.
fn connected() -> (Server, Tunn, Keys) {
    let mut server = Server::with_handshake_rate_limit(generate_private_key(), None, u64::MAX / 2);
    let (mut client, key) = new_client(server.public_key());
    let keys = Keys::from([(key, KeyAccess::default())]);
    let mut cbuf = vec![0u8; 2048];
    let mut sbuf = vec![0u8; 2048];
    let init = match client.format_handshake_initiation(&mut cbuf, false) {
        TunnResult::WriteToNetwork(b) => b.to_vec(),
        _ => panic!("no initiation"),
    };
    let resp = match server.handle_datagram(Instant::now(), CLIENT, &init, &mut sbuf, &keys) {
        Action::Send(_, b) => b.to_vec(),
        _ => panic!("no response"),
    };
    let keepalive = match client.decapsulate(None, &resp, &mut cbuf) {
        TunnResult::WriteToNetwork(b) => b.to_vec(),
        _ => panic!("no keepalive"),
    };
    let _ = server.handle_datagram(Instant::now(), CLIENT, &keepalive, &mut sbuf, &keys);
    while server.poll_event().is_some() {}
    (server, client, keys)
}

fn data_path(c: &mut Criterion) {
    let (mut server, mut client, keys) = connected();
    let peer = server.peer_by_key(&server.peers()[0].1.public_key).unwrap();
    let pkt = packet();
    let mut cbuf = vec![0u8; 2048];
    let mut sbuf = vec![0u8; 2048];
    let mut g = c.benchmark_group("wireguard");
    g.throughput(Throughput::Bytes(pkt.len() as u64));
    // the client's encryption is setup, outside the measured time
    g.bench_function("server decrypt 1420B", |b| {
        b.iter_batched(
            || match client.encapsulate(&pkt, &mut cbuf) {
                TunnResult::WriteToNetwork(d) => d.to_vec(),
                _ => panic!("client encrypt"),
            },
            |d| match server.handle_datagram(Instant::now(), CLIENT, &d, &mut sbuf, &keys) {
                Action::Packet(_, p) => black_box(p.len()),
                other => panic!("server did not decrypt: {other:?}"),
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("server encrypt 1420B", |b| {
        b.iter(|| match server.encapsulate(peer, &pkt, &mut sbuf) {
            Action::Send(_, d) => black_box(d.len()),
            other => panic!("server did not encrypt: {other:?}"),
        })
    });
    g.finish();
}

fn handshakes(c: &mut Criterion) {
    let mut server = Server::with_handshake_rate_limit(generate_private_key(), None, u64::MAX / 2);
    // a pool of registered clients; each iteration is one initiation answered by the server
    let mut keys = Keys::new();
    let mut clients: Vec<Tunn> = (0..256)
        .map(|_| {
            let (t, k) = new_client(server.public_key());
            keys.insert(k, KeyAccess::default());
            t
        })
        .collect();
    let mut cbuf = vec![0u8; 2048];
    let mut sbuf = vec![0u8; 2048];
    let mut i = 0usize;
    c.bench_function("handshake responder", |b| {
        b.iter(|| {
            let t = &mut clients[i % 256];
            i += 1;
            let init = match t.format_handshake_initiation(&mut cbuf, true) {
                TunnResult::WriteToNetwork(b) => b.len(),
                _ => panic!("no initiation"),
            };
            black_box(matches!(
                server.handle_datagram(Instant::now(), CLIENT, &cbuf[..init], &mut sbuf, &keys),
                Action::Send(..)
            ));
            while server.poll_event().is_some() {}
        })
    });
}

fn key_lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("key lookup");
    for n in [10_000usize, 100_000] {
        let mut directory = Keys::new();
        let keys: Vec<[u8; 32]> = (0..n)
            .map(|i| {
                let mut k = [0u8; 32];
                k[..8].copy_from_slice(&(i as u64).to_le_bytes());
                k[8] = 0xA5;
                k
            })
            .collect();
        for k in &keys {
            directory.insert(*k, KeyAccess::default());
        }
        let mut i = 0usize;
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                i = (i + 7919) % n;
                black_box(directory.lookup(&keys[i]))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, data_path, handshakes, key_lookup);
criterion_main!(benches);
