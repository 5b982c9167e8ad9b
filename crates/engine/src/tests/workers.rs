//! Workers: WireGuard's data opened and sealed outside the engine, on several threads, with the
//! engine behind one lock.

use std::net::Ipv4Addr;
use std::sync::Mutex;

use boringtun::noise::TunnResult;

use super::kit::{hub, World, LOCAL};
use super::packets::udp;
use super::GW;
use crate::workers::{lock_or, Datagram, Worker};
use crate::{Change, WireGuardSpec};

const B_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 30, 11);
const C_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 30, 12);
const D_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 30, 13);

/// Four clients, each held to its address, connected and confirmed; the engine defers sealing.
fn four() -> World {
    let mut w = World::new(&[hub("DEFAULT", GW)]);
    for (i, ip) in [super::A_IP, B_IP, C_IP, D_IP].into_iter().enumerate() {
        w.add_client("DEFAULT", &format!("u{i}"), ip, GW, Some(ip));
        w.handshake(i);
    }
    w.engine.defer_wireguard_sealing(true);
    w
}

/// A datagram to the server's listener.
fn datagram(from: std::net::SocketAddr, bytes: &[u8]) -> Datagram<'_> {
    Datagram {
        local: LOCAL,
        from,
        bytes,
    }
}

/// Client `i` encrypts `packet`.
fn seal(w: &mut World, i: usize, packet: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; packet.len() + 64];
    match w.clients[i].tunn.encapsulate(packet, &mut buf) {
        TunnResult::WriteToNetwork(d) => d.to_vec(),
        other => panic!("client {i} did not encrypt: {other:?}"),
    }
}

/// Client A's first packet (to B) through `worker`, fed and left unsealed; A's address.
fn first_packet(w: &mut World, worker: &mut Worker) -> std::net::SocketAddr {
    let from = w.clients[0].underlay;
    let warm = seal(w, 0, &udp(super::A_IP, B_IP, 100, 0));
    let batch = [datagram(from, &warm)];
    worker.open(&batch);
    worker.feed(&mut w.engine, w.now, &batch);
    from
}

/// New keys: a new server, whose peer numbers mean nothing yet (or other peers).
fn replace_server(w: &mut World) {
    w.engine.apply(
        w.now,
        Change::WireGuard(Some(WireGuardSpec {
            private_key: etherhub_wireguard::generate_private_key(),
            psk: None,
        })),
    );
}

/// What a worker sent, opened by the client it went to: (client, packet).
fn opened_by_clients(w: &mut World, worker: &mut Worker) -> Vec<(usize, Vec<u8>)> {
    let mut sent = Vec::new();
    // taken at once, as the runtime does
    for t in worker.take_transmits() {
        assert_eq!(t.local, LOCAL);
        let seg = t.segment_size.unwrap_or(t.contents.len());
        for d in t.contents.chunks(seg) {
            sent.push((t.to, d.to_vec()));
        }
    }
    let mut got = Vec::new();
    let mut buf = vec![0u8; 2048];
    for (to, d) in sent {
        let i = w
            .clients
            .iter()
            .position(|c| c.underlay == to)
            .expect("a client's address");
        match w.clients[i].tunn.decapsulate(None, &d, &mut buf) {
            TunnResult::WriteToTunnelV4(p, _) => got.push((i, p.to_vec())),
            other => panic!("client {i} could not open what the worker sealed: {other:?}"),
        }
    }
    got
}

#[test]
fn a_worker_opens_and_seals_outside_the_engine_and_the_engine_gets_the_rest() {
    let mut w = four();
    let mut worker = Worker::new(true);
    let to_b = udp(super::A_IP, B_IP, 1000, 1);
    let d = seal(&mut w, 0, &to_b);
    let from = w.clients[0].underlay;
    let batch = [datagram(from, &d)];
    // the first batch has no data path yet: the engine opens it, and still defers the sealing
    worker.open(&batch);
    worker.feed(&mut w.engine, w.now, &batch);
    worker.seal();
    assert_eq!((worker.stats.opened, worker.stats.sealed), (0, 1));
    assert_eq!(opened_by_clients(&mut w, &mut worker), vec![(1, to_b)]);

    // from now on the worker opens, and a handshake in the same batch is the engine's
    let to_c = udp(super::A_IP, C_IP, 1400, 2);
    let d1 = seal(&mut w, 0, &to_c);
    let init = w.clients[3].initiation();
    let d3 = w.clients[3].underlay;
    let batch = [datagram(from, &d1), datagram(d3, &init)];
    worker.open(&batch);
    assert_eq!(worker.stats.opened, 1);
    worker.feed(&mut w.engine, w.now, &batch);
    worker.seal();
    assert_eq!(worker.stats.sealed, 2);
    assert_eq!(opened_by_clients(&mut w, &mut worker), vec![(2, to_c)]);
    // the handshake response left through the engine's own queue
    let mut responses = 0;
    while let Some(t) = w.engine.poll_transmit() {
        assert_eq!(t.to, d3);
        responses += 1;
    }
    assert_eq!(responses, 1);
    let info = w.engine.wireguard().peer(crate::TunnelId {
        protocol: crate::ProtocolId(0),
        index: w
            .engine
            .wireguard()
            .tunnel_of_key(&w.clients[0].public)
            .unwrap(),
    });
    assert_eq!(
        info.map(|p| p.rx_packets),
        Some(2),
        "the worker's packet is counted"
    );
    assert_eq!(w.engine.stats().faults, 0);
}

#[test]
fn a_packet_opened_by_a_replaced_server_is_dropped() {
    let mut w = four();
    let mut worker = Worker::new(true);
    let from = first_packet(&mut w, &mut worker);
    worker.seal();
    while worker.poll_transmit().is_some() {}

    let d = seal(&mut w, 0, &udp(super::A_IP, B_IP, 100, 1));
    let batch = [datagram(from, &d)];
    worker.open(&batch);
    assert_eq!(worker.stats.opened, 1);
    // new keys between opening and feeding
    replace_server(&mut w);
    worker.feed(&mut w.engine, w.now, &batch);
    worker.seal();
    assert_eq!(worker.stats.stale, 1);
    assert!(worker.poll_transmit().is_none());
}

#[test]
fn two_threads_share_one_engine_and_every_packet_arrives_once() {
    let mut w = four();
    const PER_CLIENT: u32 = 300;
    // each client sends to the next one; client i's datagrams go to thread i % 2
    let ips = [super::A_IP, B_IP, C_IP, D_IP];
    let mut work: [Vec<(std::net::SocketAddr, Vec<u8>)>; 2] = Default::default();
    for n in 0..PER_CLIENT {
        for i in 0..4 {
            let p = udp(ips[i], ips[(i + 1) % 4], 600, n * 4 + i as u32);
            let d = seal(&mut w, i, &p);
            work[i % 2].push((w.clients[i].underlay, d));
        }
    }
    let now = w.now;
    let engine = Mutex::new(std::mem::replace(&mut w.engine, crate::Engine::new(now)));
    let sent: Vec<Vec<(std::net::SocketAddr, Vec<u8>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = work
            .iter()
            .map(|mine| {
                let engine = &engine;
                s.spawn(move || {
                    let mut worker = Worker::new(false);
                    let mut out = Vec::new();
                    let mut seal = |worker: &mut Worker| {
                        worker.seal();
                        for t in worker.take_transmits() {
                            out.push((t.to, t.contents.to_vec()));
                        }
                    };
                    // batches longer than one hold of the peer table's lock, both ways; as the
                    // runtime does, what one leaves is sealed while waiting for the lock, or
                    // once enough waits, or at the end
                    for chunk in mine.chunks(100) {
                        let batch: Vec<Datagram> =
                            chunk.iter().map(|(from, d)| datagram(*from, d)).collect();
                        worker.open(&batch);
                        let mut e = lock_or(engine, || seal(&mut worker));
                        worker.feed(&mut e, now, &batch);
                        drop(e);
                        if worker.should_seal() {
                            seal(&mut worker);
                        }
                    }
                    seal(&mut worker);
                    assert!(worker.stats.opened > 0, "the worker opened nothing itself");
                    out
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    w.engine = engine.into_inner().unwrap();
    let mut tags = Vec::new();
    let mut buf = vec![0u8; 2048];
    for (to, d) in sent.into_iter().flatten() {
        let i = w.clients.iter().position(|c| c.underlay == to).unwrap();
        match w.clients[i].tunn.decapsulate(None, &d, &mut buf) {
            TunnResult::WriteToTunnelV4(p, _) => {
                assert_eq!(&p[16..20], &ips[i].octets(), "delivered to its destination");
                tags.push(u32::from_be_bytes([p[28], p[29], p[30], p[31]]));
            }
            other => panic!("client {i}: {other:?}"),
        }
    }
    tags.sort_unstable();
    assert_eq!(tags, (0..PER_CLIENT * 4).collect::<Vec<_>>());
    assert_eq!(w.engine.stats().faults, 0);
}

#[test]
fn a_packet_of_a_peer_ended_meanwhile_is_dropped_and_brings_nothing_back() {
    let mut w = four();
    let mut worker = Worker::new(true);
    let from = w.clients[0].underlay;
    // a long batch: more packets than one hold of the peer table's lock covers
    let data: Vec<Vec<u8>> = (0..150)
        .map(|n| seal(&mut w, 0, &udp(super::A_IP, B_IP, 200, n)))
        .collect();
    let batch: Vec<Datagram> = data.iter().map(|d| datagram(from, d)).collect();
    worker.open(&batch[..1]);
    worker.feed(&mut w.engine, w.now, &batch[..1]);
    worker.seal();
    while worker.poll_transmit().is_some() {}
    worker.open(&batch[1..]);
    assert_eq!(worker.stats.opened, 149, "opened outside the engine");
    let session = w
        .sessions("DEFAULT")
        .into_iter()
        .find(|s| s.contains("U0"))
        .unwrap();
    w.engine.disconnect(w.now, "DEFAULT", &session).unwrap();
    worker.feed(&mut w.engine, w.now, &batch[1..]);
    worker.seal();
    assert_eq!(worker.stats.stale, 149);
    assert!(worker.poll_transmit().is_none());
    assert!(!w.sessions("DEFAULT").iter().any(|s| s.contains("U0")));
    assert_eq!(w.engine.stats().faults, 0);
}

#[test]
fn packets_left_unsealed_wait_for_the_next_feed_and_leave_in_order() {
    let mut w = four();
    let mut worker = Worker::new(false);
    let from = first_packet(&mut w, &mut worker);
    worker.seal();
    assert_eq!(opened_by_clients(&mut w, &mut worker).len(), 1);

    let (first, second) = (
        udp(super::A_IP, B_IP, 300, 1),
        udp(super::A_IP, C_IP, 300, 2),
    );
    for (n, p) in [&first, &second].into_iter().enumerate() {
        let d = seal(&mut w, 0, p);
        let batch = [datagram(from, &d)];
        worker.open(&batch);
        worker.feed(&mut w.engine, w.now, &batch);
        assert!(worker.has_unsealed());
        // the first batch's packet may wait for the next; then both are due
        assert_eq!(worker.should_seal(), n == 1);
        assert!(
            worker.poll_transmit().is_none(),
            "nothing leaves before the seal"
        );
    }
    worker.seal();
    assert!(!worker.should_seal());
    assert!(!worker.has_unsealed());
    assert_eq!(
        opened_by_clients(&mut w, &mut worker),
        vec![(1, first), (2, second)]
    );
}

#[test]
fn packets_left_unsealed_for_a_replaced_server_are_dropped() {
    let mut w = four();
    let mut worker = Worker::new(true);
    first_packet(&mut w, &mut worker);
    assert!(worker.has_unsealed());
    // new keys before the seal: the waiting packet's peer number may be another peer's now
    replace_server(&mut w);
    worker.collect(&mut w.engine);
    assert_eq!(worker.stats.stale, 1);
    assert!(!worker.has_unsealed());
    worker.seal();
    assert!(worker.poll_transmit().is_none());
    assert_eq!(worker.stats.sealed, 0);
}

#[test]
fn a_worker_waiting_for_the_lock_works_meanwhile_and_only_then() {
    let lock = Mutex::new(0);
    let mut ran = false;
    *lock_or(&lock, || ran = true) += 1;
    assert!(!ran, "a free lock is taken at once");

    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        let lock = &lock;
        s.spawn(move || {
            let mut g = lock.lock().unwrap();
            held_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            *g += 10;
        });
        held_rx.recv().unwrap();
        let mut ran = false;
        let mut g = lock_or(lock, || {
            ran = true;
            go_tx.send(()).unwrap();
        });
        *g += 100;
        assert!(ran, "a held lock makes the worker work first");
    });
    assert_eq!(*lock.lock().unwrap(), 111);
}
