//! The engine in memory, on one thread and on several: packets per second through a hub, client
//! to client, from many WireGuard peers whose datagrams were encrypted beforehand. No sockets.
//!
//! Each round encrypts a fresh set of datagrams (untimed: WireGuard's counters must be new),
//! then times one way of taking them:
//! - `engine`: one thread hands every datagram to the engine, which opens and seals inline (the
//!   way before workers);
//! - `1 worker`, `2 workers`, ...: that many threads, each a [`Worker`] taking the datagrams of
//!   its own peers (as a socket per thread with `SO_REUSEPORT` would hand them over) in batches,
//!   the engine behind one `Mutex`. As in the runtime, a worker seals what a batch left while it
//!   waits for the lock, or once [`Worker::should_seal`]; `--eager` seals each batch right
//!   after its feed instead (the way before). A worker forwards from peer to peer what the
//!   engine's direct table lets it, in its open step, and takes the lock only for the rest
//!   and to hand in its counts; `--no-direct` sends every packet through the engine instead
//!   (the way before the table).
//!
//! With `--bare`, also the data path alone on as many threads: each opens its peers' datagrams
//! and seals every packet straight to the peer it is for, no engine and no lock (what a
//! forwarding outside the engine could at best do; no hub counts or checks anything); and the
//! same with each packet sealed by the thread that owns its receiving peer (handed over in
//! batches), so that no peer's state is touched from two threads.
//!
//! Which worker takes a peer (`--split`): `hash` (the default) hashes the peer's address and
//! port, as the kernel's `SO_REUSEPORT` does, so that the peer a packet goes to sits on another
//! worker about as often as chance has it; `alternate` gives peer i to worker i mod n, so that
//! with 2 workers every packet's receiver (peer i + 1) sits on the other worker: the worst case,
//! where each peer's keys and hub session change cores with every packet.
//!
//! Every datagram sent back is counted and must be one per packet in. The figures are medians
//! over the rounds. `cargo bench -p etherhub-engine --bench workers` (options after `--`:
//! `--peers N --packets N --rounds N --size BYTES --batch N --threads N --split hash|alternate
//! --eager --bare --no-direct`).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use etherhub_engine::workers::{lock_or, Datagram, Worker};
use etherhub_engine::{Change, Engine, HubSpec, UserAuth, UserSpec, WgKeySpec, WireGuardSpec};
use etherhub_hub::StaticNetwork;
use etherhub_wireguard::{
    generate_private_key, public_key_of, Action, DataPath, Opened, PeerId, MIN_BUFFER_LEN,
};

#[path = "../src/tests/packets.rs"]
mod packets;
use packets::udp;

const LOCAL: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)), 443);

struct Options {
    peers: usize,
    packets: usize,
    rounds: usize,
    size: usize,
    batch: usize,
    threads: usize,
    /// Peers to workers by the hash of their endpoint (else peer i to worker i mod n).
    hashed: bool,
    /// Each batch sealed right after its feed (else as the runtime does: see `run_workers`).
    eager: bool,
    /// Also the data path without the engine (see `run_bare`).
    bare: bool,
    /// Workers send every packet through the engine (no direct table).
    no_direct: bool,
}

fn options() -> Options {
    let mut o = Options {
        peers: 64,
        packets: 400,
        rounds: 7,
        size: 1420,
        batch: 32,
        threads: 2,
        hashed: true,
        eager: false,
        bare: false,
        no_direct: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = || -> usize {
            args.get(i + 1)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{} needs a number", args[i]))
        };
        match args[i].as_str() {
            "--peers" => o.peers = value().clamp(2, 250),
            "--packets" => o.packets = value().max(1),
            "--rounds" => o.rounds = value().max(1),
            "--size" => o.size = value().clamp(64, 1420),
            "--batch" => o.batch = value().clamp(1, 1024),
            "--threads" => o.threads = value().clamp(1, 64),
            "--eager" | "--bare" | "--no-direct" => {
                match args[i].as_str() {
                    "--eager" => o.eager = true,
                    "--bare" => o.bare = true,
                    _ => o.no_direct = true,
                }
                i += 1;
                continue;
            }
            "--split" => {
                o.hashed = match args.get(i + 1).map(String::as_str) {
                    Some("hash") => true,
                    Some("alternate") => false,
                    _ => panic!("--split takes hash or alternate"),
                }
            }
            // cargo bench passes --bench; anything else is ignored as criterion's would be
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    o
}

fn address(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 30, 2 + i as u8)
}

fn endpoint(i: usize) -> SocketAddr {
    SocketAddr::from(([198, 18, 1 + (i / 200) as u8, 1 + (i % 200) as u8], 50000))
}

/// The worker of `threads` that takes peer `i`'s datagrams (see `--split`).
fn worker_of(i: usize, threads: usize, hashed: bool) -> usize {
    if hashed {
        // std's SipHash with its fixed keys: the same split in every run
        let mut h = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&endpoint(i), &mut h);
        std::hash::Hasher::finish(&h) as usize % threads
    } else {
        i % threads
    }
}

/// The engine with one hub and `peers` connected WireGuard clients, each held to its address.
fn setup(peers: usize) -> (Engine, Vec<Tunn>) {
    let now = Instant::now();
    let mut engine = Engine::new(now);
    let server = generate_private_key();
    engine.apply(
        now,
        Change::WireGuard(Some(WireGuardSpec {
            private_key: server,
            psk: None,
        })),
    );
    engine.apply(
        now,
        Change::Hub(HubSpec {
            name: "DEFAULT".into(),
            online: true,
            static_network: Some(StaticNetwork {
                gateway: Ipv4Addr::new(192, 168, 30, 1),
                mask: Ipv4Addr::new(255, 255, 255, 0),
            }),
            securenat: None,
            access: Vec::new(),
        }),
    );
    let mut clients = Vec::new();
    let mut buf = vec![0u8; 2048];
    for i in 0..peers {
        let private = generate_private_key();
        let user = format!("u{i}");
        engine.apply(
            now,
            Change::User(UserSpec {
                hub: "DEFAULT".into(),
                name: user.clone(),
                auth: UserAuth::Anonymous,
                ..Default::default()
            }),
        );
        engine.apply(
            now,
            Change::WgKey(WgKeySpec {
                key: public_key_of(&private),
                hub: "DEFAULT".into(),
                user,
                psk: None,
                address: Some(address(i)),
            }),
        );
        let mut tunn = Tunn::new(
            StaticSecret::from(private),
            PublicKey::from(public_key_of(&server)),
            None,
            None,
            i as u32 + 1,
            None,
        );
        // the server answers 100 handshakes a second before it asks for cookies; its timers
        // start the next second
        if i > 0 && i % 90 == 0 {
            std::thread::sleep(Duration::from_millis(1100));
            engine.handle_timeout(Instant::now());
            while engine.poll_transmit().is_some() {}
        }
        let now = Instant::now();
        let TunnResult::WriteToNetwork(init) = tunn.format_handshake_initiation(&mut buf, true)
        else {
            panic!("no initiation");
        };
        let init = init.to_vec();
        engine.handle_datagram(now, LOCAL, endpoint(i), &init);
        engine.end_of_batch(now);
        let response = engine.poll_transmit().expect("a handshake response");
        let response = response.contents.to_vec();
        let TunnResult::WriteToNetwork(keepalive) = tunn.decapsulate(None, &response, &mut buf)
        else {
            panic!("no keepalive for peer {i}");
        };
        let keepalive = keepalive.to_vec();
        engine.handle_datagram(now, LOCAL, endpoint(i), &keepalive);
        engine.end_of_batch(now);
        while engine.poll_transmit().is_some() {}
        clients.push(tunn);
    }
    while engine.poll_event().is_some() {}
    (engine, clients)
}

/// One round's datagrams: peer by peer, each sending to the next peer's address.
fn encrypt_round(clients: &mut [Tunn], o: &Options) -> Vec<Vec<(SocketAddr, Vec<u8>)>> {
    let n = clients.len();
    let mut buf = vec![0u8; o.size + 64];
    (0..n)
        .map(|i| {
            let packet = udp(address(i), address((i + 1) % n), o.size, i as u32);
            (0..o.packets)
                .map(|_| match clients[i].encapsulate(&packet, &mut buf) {
                    TunnResult::WriteToNetwork(d) => (endpoint(i), d.to_vec()),
                    other => panic!("client {i} did not encrypt: {other:?}"),
                })
                .collect()
        })
        .collect()
}

/// The datagrams of the peers `mine`, interleaved peer by peer as they would arrive.
fn interleave<'a>(round: &'a [Vec<(SocketAddr, Vec<u8>)>], mine: &[usize]) -> Vec<Datagram<'a>> {
    let per = round.first().map_or(0, Vec::len);
    let mut out = Vec::with_capacity(per * mine.len());
    let mut each: Vec<_> = mine.iter().map(|&i| round[i].iter()).collect();
    for _ in 0..per {
        for (from, bytes) in each.iter_mut().filter_map(Iterator::next) {
            out.push(Datagram {
                local: LOCAL,
                from: *from,
                bytes,
            });
        }
    }
    out
}

/// Each of `threads` threads' datagrams: those of the peers it takes (see `--split`).
fn split_round<'a>(
    round: &'a [Vec<(SocketAddr, Vec<u8>)>],
    threads: usize,
    o: &Options,
) -> Vec<Vec<Datagram<'a>>> {
    (0..threads)
        .map(|w| {
            let mine: Vec<usize> = (0..round.len())
                .filter(|&i| worker_of(i, threads, o.hashed) == w)
                .collect();
            interleave(round, &mine)
        })
        .collect()
}

/// The engine alone on one thread, sealing inline: (seconds, datagrams out).
fn run_engine(
    engine: &mut Engine,
    round: &[Vec<(SocketAddr, Vec<u8>)>],
    o: &Options,
) -> (f64, usize) {
    engine.defer_wireguard_sealing(false);
    let all: Vec<usize> = (0..round.len()).collect();
    let input = interleave(round, &all);
    let now = Instant::now();
    let start = Instant::now();
    let mut sent = 0;
    for chunk in input.chunks(o.batch) {
        for d in chunk {
            engine.handle_datagram(now, d.local, d.from, d.bytes);
        }
        engine.end_of_batch(now);
        while let Some(t) = engine.poll_transmit() {
            sent += t.datagrams();
        }
    }
    (start.elapsed().as_secs_f64(), sent)
}

/// Time spent in each step by all threads together: open, waiting for the engine, feed, seal.
#[derive(Default, Clone, Copy)]
struct Steps([Duration; 4]);

impl std::ops::AddAssign for Steps {
    fn add_assign(&mut self, o: Steps) {
        for (a, b) in self.0.iter_mut().zip(o.0) {
            *a += b;
        }
    }
}

/// `threads` workers over one engine: (seconds, datagrams out, time per step).
fn run_workers(
    engine: &Mutex<Engine>,
    workers: &mut [Worker],
    round: &[Vec<(SocketAddr, Vec<u8>)>],
    o: &Options,
) -> (f64, usize, Steps) {
    let threads = workers.len();
    engine.lock().unwrap().defer_wireguard_sealing(true);
    let inputs = split_round(round, threads, o);
    let now = Instant::now();
    let start = Instant::now();
    let (sent, steps) = std::thread::scope(|s| {
        let handles: Vec<_> = workers
            .iter_mut()
            .zip(&inputs)
            .map(|(worker, input)| {
                s.spawn(move || {
                    let (mut sent, mut steps) = (0, Steps::default());
                    let seal = |worker: &mut Worker, sent: &mut usize, steps: &mut Steps| {
                        let t = Instant::now();
                        worker.seal();
                        *sent += worker
                            .take_transmits()
                            .map(|t| t.datagrams())
                            .sum::<usize>();
                        steps.0[3] += t.elapsed();
                    };
                    let mut chunks = input.chunks(o.batch).peekable();
                    while let Some(chunk) = chunks.next() {
                        let t0 = Instant::now();
                        worker.open(chunk);
                        steps.0[0] += t0.elapsed();
                        // peer-to-peer packets of the direct table are forwarded by now; the
                        // lock only when the rest needs the engine
                        if worker.needs_engine() {
                            let mut sealed = Duration::ZERO;
                            let t1 = Instant::now();
                            let mut e = if o.eager {
                                engine.lock().unwrap()
                            } else {
                                lock_or(engine, || {
                                    let t = Instant::now();
                                    seal(worker, &mut sent, &mut steps);
                                    sealed = t.elapsed();
                                })
                            };
                            let t2 = Instant::now();
                            worker.feed(&mut e, now, chunk);
                            steps.0[1] += t2 - t1 - sealed;
                            steps.0[2] += t2.elapsed();
                            // what the engine itself queued (nothing, for this traffic)
                            while let Some(t) = e.poll_transmit() {
                                sent += t.datagrams();
                            }
                        }
                        // as the runtime: what was taken waits for the next batch, unless
                        // there is none or enough waits
                        if o.eager || chunks.peek().is_none() || worker.should_seal() {
                            seal(worker, &mut sent, &mut steps);
                        } else {
                            sent += worker
                                .take_transmits()
                                .map(|t| t.datagrams())
                                .sum::<usize>();
                        }
                    }
                    (sent, steps)
                })
            })
            .collect();
        let mut all = (0, Steps::default());
        for h in handles {
            let (n, st) = h.join().unwrap();
            all.0 += n;
            all.1 += st;
        }
        all
    });
    (start.elapsed().as_secs_f64(), sent, steps)
}

/// Each peer's id on the server, learnt from a keepalive opened through the data path.
fn peer_ids(path: &DataPath, clients: &mut [Tunn]) -> Vec<PeerId> {
    let mut buf = vec![0u8; MIN_BUFFER_LEN];
    let mut out = vec![0u8; MIN_BUFFER_LEN];
    (clients.iter_mut().enumerate())
        .map(|(i, tunn)| {
            let TunnResult::WriteToNetwork(keepalive) = tunn.encapsulate(&[], &mut buf) else {
                panic!("no keepalive from client {i}");
            };
            match path.reader().open(endpoint(i), keepalive, &mut out) {
                Opened::Keepalive(peer) => peer,
                _ => panic!("client {i}'s keepalive did not open"),
            }
        })
        .collect()
}

/// Packets one thread hands another to seal: (peer, start, length) into the bytes.
type Handoff = (Vec<(PeerId, usize, usize)>, Vec<u8>);

/// The data path alone, no engine and no lock: each thread opens its peers' datagrams and
/// seals every packet to the peer it is for (as `encrypt_round` addresses them), at once, or
/// (`owner_seals`) by handing it to the thread that opens that peer's own datagrams, so that
/// each peer's state stays on one thread. The ceiling of any engine on this machine:
/// (seconds, datagrams out).
fn run_bare(
    path: &DataPath,
    ids: &[PeerId],
    threads: usize,
    owner_seals: bool,
    round: &[Vec<(SocketAddr, Vec<u8>)>],
    o: &Options,
) -> (f64, usize) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let n = ids.len();
    let next: std::collections::HashMap<PeerId, (PeerId, usize)> = (0..n)
        .map(|i| {
            let to = (i + 1) % n;
            (ids[i], (ids[to], worker_of(to, threads, o.hashed)))
        })
        .collect();
    let inputs = split_round(round, threads, o);
    let inboxes: Vec<Mutex<Vec<Handoff>>> = (0..threads).map(|_| Mutex::default()).collect();
    let done = AtomicUsize::new(0);
    let start = Instant::now();
    let sent: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (inputs.iter().enumerate())
            .map(|(me, input)| {
                let (next, inboxes, done) = (&next, &inboxes, &done);
                s.spawn(move || {
                    let mut plain = vec![0u8; MIN_BUFFER_LEN.max(o.size + 64)];
                    let mut sealed = vec![0u8; MIN_BUFFER_LEN.max(o.size + 64)];
                    let mut outgoing: Vec<Handoff> = vec![Handoff::default(); threads];
                    let mut sent = 0;
                    // seals what the others handed over; whether there was nothing
                    let seal_inbox = |sealed: &mut Vec<u8>, sent: &mut usize| {
                        let handed = std::mem::take(&mut *inboxes[me].lock().unwrap());
                        let reader = path.reader();
                        for (packets, bytes) in &handed {
                            for &(peer, start, len) in packets {
                                let packet = &bytes[start..start + len];
                                if let Action::Send(..) = reader.seal(peer, packet, sealed) {
                                    *sent += 1;
                                }
                            }
                        }
                        handed.is_empty()
                    };
                    for chunk in input.chunks(o.batch) {
                        let reader = path.reader();
                        for d in chunk {
                            let Opened::Packet(peer, packet) =
                                reader.open(d.from, d.bytes, &mut plain)
                            else {
                                panic!("a data message did not open");
                            };
                            let (to, owner) = next[&peer];
                            if owner_seals && owner != me {
                                let (packets, bytes) = &mut outgoing[owner];
                                packets.push((to, bytes.len(), packet.len()));
                                bytes.extend_from_slice(packet);
                            } else if let Action::Send(..) = reader.seal(to, packet, &mut sealed) {
                                sent += 1;
                            }
                        }
                        drop(reader);
                        for (w, handoff) in outgoing.iter_mut().enumerate() {
                            if !handoff.0.is_empty() {
                                inboxes[w].lock().unwrap().push(std::mem::take(handoff));
                            }
                        }
                        seal_inbox(&mut sealed, &mut sent);
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                    // what the others still hand over, until every thread is through
                    loop {
                        let all_done = done.load(Ordering::SeqCst) == threads;
                        if seal_inbox(&mut sealed, &mut sent) && all_done {
                            break;
                        }
                        std::hint::spin_loop();
                    }
                    sent
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    (start.elapsed().as_secs_f64(), sent)
}

/// The machine's own ceiling: `total` packets encrypted by `threads` clients on as many
/// threads, nothing shared. Packets per second.
fn crypto_only(clients: &mut [Tunn], threads: usize, total: usize, size: usize) -> f64 {
    let packet = udp(address(0), address(1), size, 0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for tunn in clients.iter_mut().take(threads) {
            let packet = &packet;
            s.spawn(move || {
                let mut buf = vec![0u8; size + 64];
                for _ in 0..total / threads {
                    let TunnResult::WriteToNetwork(d) = tunn.encapsulate(packet, &mut buf) else {
                        panic!("did not encrypt");
                    };
                    std::hint::black_box(d);
                }
            });
        }
    });
    total as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let o = options();
    let (engine, mut clients) = setup(o.peers);
    let engine = Mutex::new(engine);
    let total = o.peers * o.packets;
    println!(
        "engine workers: {} peers, {} packets of {} bytes each per round ({} in all), batches of {}, {} rounds, hub path client to client",
        o.peers, o.packets, o.size, total, o.batch, o.rounds
    );
    let n = o.threads;
    let (sizes, crossing) = if n > 1 {
        let of = |i| worker_of(i, n, o.hashed);
        let sizes: Vec<usize> = (0..n)
            .map(|w| (0..o.peers).filter(|&i| of(i) == w).count())
            .collect();
        let crossing = (0..o.peers)
            .filter(|&i| of(i) != of((i + 1) % o.peers))
            .count();
        (sizes, crossing)
    } else {
        (vec![o.peers], 0)
    };
    println!(
        "peers to {n} workers by {}: {sizes:?} peers each; {crossing} of {} peers send to a peer of another worker",
        if o.hashed { "endpoint hash (as SO_REUSEPORT)" } else { "turns (i mod n)" },
        o.peers
    );
    let mut names = vec!["engine (inline)".to_string()];
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    names.extend((1..=o.threads).map(|n| format!("{n} worker{}", plural(n))));
    let bare = if o.bare { o.threads } else { 0 };
    names.extend((1..=bare).map(|n| format!("no engine, {n} thread{}", plural(n))));
    if bare > 1 {
        names.push(format!("no engine, {bare} threads, owners seal"));
    }
    let path = engine
        .lock()
        .unwrap()
        .wireguard_data_path()
        .expect("WireGuard on");
    let ids = if o.bare {
        peer_ids(&path, &mut clients)
    } else {
        Vec::new()
    };
    let mut pps: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut steps = vec![Steps::default(); names.len()];
    let mut workers: Vec<Vec<Worker>> = (1..=o.threads)
        .map(|n| {
            (0..n)
                .map(|_| {
                    let mut w = Worker::new(true);
                    w.set_direct(!o.no_direct);
                    w
                })
                .collect()
        })
        .collect();
    let mut crypto: Vec<Vec<f64>> = vec![Vec::new(); o.threads];
    let deadline = Instant::now() + Duration::from_secs(300);
    for _ in 0..o.rounds {
        for (k, name) in names.iter().enumerate() {
            let round = encrypt_round(&mut clients, &o);
            let (secs, sent) = if k == 0 {
                run_engine(&mut engine.lock().unwrap(), &round, &o)
            } else if k > o.threads + bare {
                run_bare(&path, &ids, bare, true, &round, &o)
            } else if k > o.threads {
                run_bare(&path, &ids, k - o.threads, false, &round, &o)
            } else {
                let (secs, sent, st) = run_workers(&engine, &mut workers[k - 1], &round, &o);
                steps[k] += st;
                (secs, sent)
            };
            assert_eq!(sent, total, "{name}: every packet in must leave once");
            pps[k].push(total as f64 / secs);
        }
        // the ceiling in the same round, for about as long as a worker's round takes
        for (n, c) in crypto.iter_mut().enumerate() {
            c.push(crypto_only(&mut clients, n + 1, 3 * total, o.size));
        }
        if Instant::now() > deadline {
            break;
        }
    }
    let faults = engine.lock().unwrap().stats().faults;
    assert_eq!(faults, 0, "no fault on the way");
    let one = median(pps[1].clone());
    // the machine's load drifts: each round's workers against its own 1 worker as well
    let paired = |k: usize| median(pps[k].iter().zip(&pps[1]).map(|(a, b)| a / b).collect());
    for (k, (name, v)) in names.iter().zip(&pps).enumerate() {
        let m = median(v.clone());
        let per = |d: Duration| d.as_secs_f64() * 1e6 / (v.len() * total) as f64;
        let [open, wait, feed, seal] = steps[k].0.map(per);
        let split = match k {
            0 => String::new(),
            k if k > o.threads => String::new(),
            _ => format!(
                "  µs per packet: open {open:.2}, wait {wait:.2}, engine {feed:.2}, seal {seal:.2}"
            ),
        };
        println!(
            "{name:>16}: {:>9.0} packets/s  {:>6.2} Gbit/s inner  {:.2}x 1 worker (round by round {:.2}x){split}",
            m,
            m * o.size as f64 * 8.0 / 1e9,
            m / one,
            paired(k)
        );
    }
    let by_round = |a: &[f64], b: &[f64]| median(a.iter().zip(b).map(|(a, b)| a / b).collect());
    if bare > 1 {
        let one = &pps[o.threads + 1];
        for (k, how) in [
            (o.threads + bare, ""),
            (o.threads + bare + 1, ", owners seal"),
        ] {
            println!(
                "no engine, {bare} threads{how}: {:.2}x 1 thread (round by round {:.2}x: the data path's own ceiling)",
                median(pps[k].clone()) / median(one.clone()),
                by_round(&pps[k], one)
            );
        }
    }
    for (n, c) in crypto.iter().enumerate() {
        println!(
            "encryption only, {} thread{}: {:>9.0} packets/s, {:.2}x 1 thread (round by round {:.2}x: the machine's ceiling)",
            n + 1,
            if n == 0 { "" } else { "s" },
            median(c.clone()),
            median(c.clone()) / median(crypto[0].clone()),
            by_round(c, &crypto[0])
        );
    }
    if o.threads > 1 {
        // each round's workers against its own ceiling: how much of the machine they use
        let workers: Vec<f64> = pps[o.threads]
            .iter()
            .zip(&pps[1])
            .map(|(a, b)| a / b)
            .collect();
        let ceiling: Vec<f64> = crypto[o.threads - 1]
            .iter()
            .zip(&crypto[0])
            .map(|(a, b)| a / b)
            .collect();
        println!(
            "{} workers' speed-up over 1 as a share of the machine's own (encryption alone) in the same round: {:.0}% (round by round)",
            o.threads,
            100.0 * by_round(&workers, &ceiling)
        );
    }
}
