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
/// A host beyond the hub, through SecureNAT (no packet leaves: the engine is in memory).
const BEYOND: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 9);

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
    // the engine's own path: nothing forwarded from peer to peer by the worker itself
    worker.set_direct(false);
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

    // beyond the hub (through SecureNAT): for the engine, not forwarded from peer to peer
    let d = seal(&mut w, 0, &udp(super::A_IP, BEYOND, 100, 1));
    let batch = [datagram(from, &d)];
    worker.open(&batch);
    assert_eq!((worker.stats.opened, worker.stats.direct), (1, 0));
    assert!(worker.needs_engine());
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
    // a long batch: more packets than one hold of the peer table's lock covers, beyond the
    // hub (for the engine, not forwarded from peer to peer)
    let data: Vec<Vec<u8>> = (0..150)
        .map(|n| seal(&mut w, 0, &udp(super::A_IP, BEYOND, 200, n)))
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
    worker.set_direct(false);
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
    worker.collect(&mut w.engine, w.now);
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

/// `batch`'s datagrams of client 0 through the worker, fed only if the worker says it needs
/// the engine (as the runtime does); then sealed. Whether the engine was asked.
fn forward(w: &mut World, worker: &mut Worker, packets: &[Vec<u8>]) -> bool {
    let from = w.clients[0].underlay;
    let data: Vec<Vec<u8>> = packets.iter().map(|p| seal(w, 0, p)).collect();
    let batch: Vec<Datagram> = data.iter().map(|d| datagram(from, d)).collect();
    worker.open(&batch);
    let fed = worker.needs_engine();
    if fed {
        worker.feed(&mut w.engine, w.now, &batch);
    }
    worker.seal();
    fed
}

/// (packets, bytes) the hub counted as `user`'s session sent (`recv`) and received (`send`).
fn counted(w: &World, user: &str) -> ((u64, u64), (u64, u64)) {
    let s = (w.engine.hub("DEFAULT").unwrap().sessions().into_iter())
        .find(|s| s.user == user)
        .expect("the user's session");
    (
        (s.recv.unicast_packets, s.recv.unicast_bytes),
        (s.send.unicast_packets, s.send.unicast_bytes),
    )
}

#[test]
fn packets_from_peer_to_peer_skip_the_engine_and_the_hub_counts_them_alike() {
    let mut w = four();
    let mut worker = Worker::new(false);
    // the first batch goes through the engine: the worker has no data path or table yet
    let slow = udp(super::A_IP, B_IP, 500, 1);
    let (a0, b0) = (counted(&w, "u0"), counted(&w, "u1"));
    assert!(forward(&mut w, &mut worker, std::slice::from_ref(&slow)));
    assert_eq!(worker.stats.direct, 0);
    assert_eq!(opened_by_clients(&mut w, &mut worker), vec![(1, slow)]);
    let (a1, b1) = (counted(&w, "u0"), counted(&w, "u1"));
    let by_engine = (
        (a1.0 .0 - a0.0 .0, a1.0 .1 - a0.0 .1),
        (b1.1 .0 - b0.1 .0, b1.1 .1 - b0.1 .1),
    );
    assert_eq!(
        by_engine,
        ((1, 514), (1, 514)),
        "one frame of 14 + 500 bytes each way"
    );

    // now the worker forwards A's packets to B and C itself, and needs no engine
    let to_b = udp(super::A_IP, B_IP, 500, 2);
    let to_c = udp(super::A_IP, C_IP, 1000, 3);
    w.now += std::time::Duration::from_millis(5);
    assert!(!forward(&mut w, &mut worker, &[to_b.clone(), to_c.clone()]));
    assert_eq!(worker.stats.direct, 2);
    assert_eq!(
        worker.stats.sealed, 1,
        "only the engine's packet went through the outbox"
    );
    assert_eq!(
        opened_by_clients(&mut w, &mut worker),
        vec![(1, to_b), (2, to_c)]
    );
    assert!(worker.has_counts());
    // nothing is counted until the worker hands the counts in at its next hold of the lock
    assert_eq!(counted(&w, "u0"), a1);
    worker.collect(&mut w.engine, w.now);
    assert!(!worker.has_counts());
    let (a2, b2) = (counted(&w, "u0"), counted(&w, "u1"));
    assert_eq!(
        a2.0,
        (a1.0 .0 + 2, a1.0 .1 + 514 + 1014),
        "A sent two frames"
    );
    assert_eq!(b2.1, (b1.1 .0 + 1, b1.1 .1 + 514), "B got one");
    assert_eq!(counted(&w, "u2").1 .0, 1, "C got one");
    let hub = w.engine.hub("DEFAULT").unwrap();
    let a = hub.sessions().into_iter().find(|s| s.user == "u0").unwrap();
    assert_eq!(
        a.last_comm, w.now,
        "A's last communication is the forwarding's"
    );
    let entry = (hub.ip_table().into_iter())
        .find(|e| e.ip == std::net::IpAddr::V4(super::A_IP))
        .expect("A's address in the IP table");
    assert_eq!(
        (entry.session, entry.updated),
        (a.id, w.now),
        "and refreshed"
    );
    assert_eq!(w.engine.stats().faults, 0);
}

#[test]
fn a_change_sends_packets_to_the_engine_until_the_worker_has_the_new_table() {
    let mut w = four();
    let mut worker = Worker::new(false);
    forward(&mut w, &mut worker, &[udp(super::A_IP, B_IP, 100, 1)]);
    assert!(!forward(
        &mut w,
        &mut worker,
        &[udp(super::A_IP, B_IP, 100, 2)]
    ));
    assert_eq!(worker.stats.direct, 1);
    assert_eq!(opened_by_clients(&mut w, &mut worker).len(), 2);
    // B's user gets a policy that filters IPv4: B leaves the table, and the hub's filter
    // drops what A sends B, as it always did
    let mut filtered = etherhub_config::Policy::default();
    filtered.set_named("FilterIPv4", "yes").unwrap();
    w.engine.apply(
        w.now,
        Change::User(crate::UserSpec {
            hub: "DEFAULT".into(),
            name: "u1".into(),
            auth: crate::UserAuth::Password(etherhub_config::hash::hash_user_password("u1", "pw")),
            policy: filtered,
            ..Default::default()
        }),
    );
    while w.engine.poll_transmit().is_some() {}
    let dropped = w.engine.hub("DEFAULT").unwrap().policy_dropped();
    assert!(forward(
        &mut w,
        &mut worker,
        &[udp(super::A_IP, B_IP, 100, 3)]
    ));
    assert!(forward(
        &mut w,
        &mut worker,
        &[udp(super::A_IP, B_IP, 100, 4)]
    ));
    assert_eq!(worker.stats.direct, 1, "no more forwarded to B");
    assert!(opened_by_clients(&mut w, &mut worker).is_empty());
    assert_eq!(
        w.engine.hub("DEFAULT").unwrap().policy_dropped(),
        dropped + 2,
        "the filter held both back"
    );
    // C is still plain
    let to_c = udp(super::A_IP, C_IP, 100, 5);
    assert!(!forward(&mut w, &mut worker, std::slice::from_ref(&to_c)));
    assert_eq!(worker.stats.direct, 2);
    assert_eq!(opened_by_clients(&mut w, &mut worker), vec![(2, to_c)]);
}

#[test]
fn a_peer_that_moved_and_a_dhcp_reply_go_through_the_engine() {
    let mut w = four();
    let mut worker = Worker::new(false);
    forward(&mut w, &mut worker, &[udp(super::A_IP, B_IP, 100, 1)]);
    // a server's reply to a DHCP client is the switch's to note, whatever its address
    let mut reply = udp(super::A_IP, B_IP, 300, 2);
    reply[20..24].copy_from_slice(&[0, 67, 0, 68]);
    assert!(forward(&mut w, &mut worker, &[reply]));
    assert_eq!(worker.stats.direct, 0);
    // A talks from a new address: the engine notes the move, then forwarding resumes
    let moved: std::net::SocketAddr = "198.18.9.9:40000".parse().unwrap();
    w.clients[0].underlay = moved;
    assert!(forward(
        &mut w,
        &mut worker,
        &[udp(super::A_IP, B_IP, 100, 3)]
    ));
    assert_eq!(worker.stats.direct, 0);
    let session = (w.engine.hub("DEFAULT").unwrap().sessions().into_iter())
        .find(|s| s.user == "u0")
        .unwrap();
    assert_eq!(session.client_addr, Some(moved));
    assert!(!forward(
        &mut w,
        &mut worker,
        &[udp(super::A_IP, B_IP, 100, 4)]
    ));
    assert_eq!(worker.stats.direct, 1);
    let got = opened_by_clients(&mut w, &mut worker);
    assert_eq!(
        got.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        vec![1, 1, 1, 1]
    );
}
