//! The runtime around the engine: the engine behind one lock, the UDP sockets its datagrams
//! leave from, SecureNAT's sockets, and the timer that wakes it. Each input is one short hold of
//! the lock: feed the engine, then carry out what it asks (send, open sockets, log), release.
//!
//! UDP listeners' batches come from several tasks at once (a socket per thread, see
//! `server::start_udp`), each a [`Worker`]: WireGuard's data is opened before the lock and
//! sealed after it, on the task's own thread, and what it sealed leaves from the task's socket.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use etherhub_engine::softether::SoftEtherSessions;
use etherhub_engine::workers::{lock_or, Datagram, Worker};
use etherhub_engine::{
    Change, ConnId, Engine, EngineEvent, NatRef, ProtocolId, StreamOutput, Transmit,
};
use etherhub_securenat::IoEvent;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, Notify};

use crate::nat::NatIo;
use crate::sys::SendBatch;

/// The longest the timer sleeps when the engine asks for nothing sooner.
const IDLE_WAKE: Duration = Duration::from_secs(1);

/// Counters of the runtime's own.
#[derive(Default, Debug, Clone, Copy)]
pub struct RuntimeStats {
    /// Datagrams the kernel did not take (socket buffer full, no socket).
    pub send_failures: u64,
    /// Writes to a stream connection dropped because its queue was full (a client that does
    /// not read as fast as the hub sends: frames are dropped, as a full switch port would).
    pub stream_drops: u64,
}

/// What a stream connection's task is told to do.
pub enum StreamMsg {
    Write(Vec<u8>),
    Close,
}

/// Writes a stream connection may have queued before further ones are dropped.
pub const STREAM_QUEUE: usize = 4096;

/// A UDP listener's send side.
struct Listener {
    socket: Arc<UdpSocket>,
    batch: SendBatch,
    /// A raw socket (ESP): no GSO runs, whatever the UDP sockets do.
    raw: bool,
}

/// What is held under the lock.
pub struct Inner {
    pub engine: Engine,
    listeners: HashMap<SocketAddr, Listener>,
    nat: NatIo,
    pub stats: RuntimeStats,
    /// When the timer task will next wake the engine.
    armed: Option<Instant>,
    /// Events the runtime acts on outside the lock (saving a learnt address).
    persist: mpsc::UnboundedSender<EngineEvent>,
    /// The stream connections the engine writes to, by connection.
    streams: HashMap<ConnId, mpsc::Sender<StreamMsg>>,
    next_conn: u64,
    /// SoftEther's VPN sessions in the engine.
    pub softether: ProtocolId,
    /// OpenVPN's sessions in the engine.
    pub openvpn: ProtocolId,
    pub sstp: ProtocolId,
    pub l2tp: ProtocolId,
}

/// The engine and its sockets. See the module docs.
pub struct Dataplane {
    inner: Mutex<Inner>,
    timer: Notify,
    /// The UDP listeners' sockets by address, for workers sending to a peer that talks to
    /// another listener than theirs.
    senders: RwLock<HashMap<SocketAddr, Arc<UdpSocket>>>,
}

/// One receiving task's part of the data plane: its [`Worker`], its socket, and the batches
/// that leave after the engine's lock is released.
pub struct WorkerIo {
    worker: Worker,
    /// The task's own listener socket, if it has one (SecureNAT's task has none).
    own: Option<(SocketAddr, Arc<UdpSocket>)>,
    batches: HashMap<SocketAddr, SendBatch>,
    /// Datagrams the kernel did not take, to be added to the runtime's count at the next lock.
    send_failures: u64,
}

impl WorkerIo {
    /// The worker of a task receiving on `socket`, bound to `local`.
    pub fn new(local: SocketAddr, socket: Arc<UdpSocket>) -> WorkerIo {
        WorkerIo {
            own: Some((local, socket)),
            ..WorkerIo::detached()
        }
    }

    /// The worker of a task with no socket of its own: what it seals leaves from the listener
    /// each peer talks to.
    pub fn detached() -> WorkerIo {
        WorkerIo {
            worker: Worker::new(true),
            own: None,
            batches: HashMap::new(),
            send_failures: 0,
        }
    }
}

/// Sends `transmits` grouped by the listener each leaves from, groups in the order they first
/// appear: `listener` names it from the local address the core gave (`None`: no listener has
/// it), `send` sends one listener's datagrams and says how many the kernel did not take.
/// Returns the datagrams not sent: not taken, or with no listener.
fn send_by_listener<'a, I>(
    transmits: I,
    listener: impl Fn(SocketAddr) -> Option<SocketAddr>,
    mut send: impl FnMut(SocketAddr, &mut dyn Iterator<Item = Transmit<'a>>) -> u64,
) -> u64
where
    I: Iterator<Item = Transmit<'a>> + Clone,
{
    let mut targets: Vec<SocketAddr> = Vec::new();
    let mut failed = 0;
    for t in transmits.clone() {
        match listener(t.local) {
            Some(a) if !targets.contains(&a) => targets.push(a),
            Some(_) => {}
            None => failed += t.datagrams() as u64,
        }
    }
    for target in targets {
        let mut mine = transmits
            .clone()
            .filter(|t| listener(t.local) == Some(target));
        failed += send(target, &mut mine);
    }
    failed
}

/// A poisoned lock means a panic outside the engine's containment, after which the process
/// exits (see `runtime::install_panic_hook`); the data is still the best there is meanwhile.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|p| p.into_inner())
}

impl Dataplane {
    /// The data plane, the receiver of SecureNAT's socket results (for [`nat_loop`]) and of the
    /// events to act on outside the lock.
    /// `tls`: the server's certificate for OpenVPN's control channel.
    pub fn new(
        now: Instant,
        tls: Arc<rustls::ServerConfig>,
    ) -> (
        Arc<Dataplane>,
        mpsc::UnboundedReceiver<(NatRef, IoEvent)>,
        mpsc::UnboundedReceiver<EngineEvent>,
    ) {
        let (nat_tx, nat_rx) = mpsc::unbounded_channel();
        let (persist, persist_rx) = mpsc::unbounded_channel();
        let mut engine = Engine::new(now);
        engine.set_unix_time(now, crate::defaults::now_ms());
        // WireGuard's data is sealed by the receiving tasks' workers, outside the lock
        engine.defer_wireguard_sealing(true);
        let softether = engine.register(Box::new(SoftEtherSessions::new()));
        let openvpn = engine.register(Box::new(etherhub_engine::openvpn::OpenVpn::new(Some(tls))));
        let sstp = engine.register(Box::new(etherhub_engine::sstp::Sstp::new()));
        let l2tp = engine.register(Box::new(etherhub_engine::l2tp::L2tp::new(rand::random())));
        let dp = Arc::new(Dataplane {
            inner: Mutex::new(Inner {
                engine,
                listeners: HashMap::new(),
                nat: NatIo::new(nat_tx),
                stats: RuntimeStats::default(),
                armed: None,
                persist,
                streams: HashMap::new(),
                next_conn: 0,
                softether,
                openvpn,
                sstp,
                l2tp,
            }),
            timer: Notify::new(),
            senders: RwLock::default(),
        });
        (dp, nat_rx, persist_rx)
    }

    /// The engine and the runtime's state, for reading (admin listings). Hold it briefly.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// Runs `f` on the engine, then carries out what it asked for.
    pub fn with_engine<R>(&self, now: Instant, f: impl FnOnce(&mut Engine) -> R) -> R {
        let mut inner = self.lock();
        let r = f(&mut inner.engine);
        self.finish(&mut inner, now);
        r
    }

    /// Applies admin changes (already saved).
    pub fn apply(&self, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        let now = Instant::now();
        self.with_engine(now, |e| {
            // a change may set an expiry: the engine judges it by the wall clock of now
            e.set_unix_time(now, crate::defaults::now_ms());
            for c in changes {
                e.apply(now, c);
            }
        });
    }

    /// A UDP listener's socket, or a raw one (`raw`: ESP) that must never get GSO runs.
    pub fn add_listener(&self, local: SocketAddr, socket: Arc<UdpSocket>, raw: bool) {
        let batch = if raw {
            SendBatch::without_gso()
        } else {
            write(&self.senders).insert(local, socket.clone());
            SendBatch::default()
        };
        self.lock()
            .listeners
            .insert(local, Listener { socket, batch, raw });
    }

    pub fn remove_listener(&self, local: SocketAddr) {
        write(&self.senders).remove(&local);
        self.lock().listeners.remove(&local);
    }

    /// A batch of datagrams that arrived on a UDP listener, taken by its task's worker: opened
    /// before the lock (packets from peer to peer that the engine's direct table lets the
    /// worker forward are sealed there), fed to the engine under it, unless nothing in it
    /// needs the engine. What it caused for WireGuard peers is sealed and sent after the lock,
    /// or after the next batch (see `etherhub_engine::workers`): call [`Dataplane::idle`]
    /// before waiting for more.
    pub fn on_datagrams(&self, now: Instant, batch: &[Datagram<'_>], w: &mut WorkerIo) {
        w.worker.open(batch);
        if w.worker.needs_engine() {
            self.with_worker(now, w, |e, worker| worker.feed(e, now, batch));
        }
        if w.worker.should_seal() {
            w.worker.seal();
        }
        self.send_sealed(w);
    }

    /// Seals and sends what `w` left for WireGuard peers.
    pub fn flush(&self, w: &mut WorkerIo) {
        if w.worker.has_unsealed() {
            self.seal_and_send(w);
        }
    }

    /// Before `w`'s task waits for more datagrams: the engine counts what `w` forwarded
    /// directly, and what `w` left leaves.
    pub fn idle(&self, w: &mut WorkerIo) {
        if w.worker.has_counts() {
            let now = Instant::now();
            self.with_worker(now, w, |e, worker| worker.collect(e, now));
        }
        self.flush(w);
    }

    /// Runs `f` on the engine and a worker under the lock (`f` leaves the packets for WireGuard
    /// peers to the worker) and carries out the rest of what the engine asked. While another
    /// thread holds the lock, the worker seals and sends what it still had.
    fn with_worker(
        &self,
        now: Instant,
        w: &mut WorkerIo,
        f: impl FnOnce(&mut Engine, &mut Worker),
    ) {
        let mut inner = lock_or(&self.inner, || self.flush(w));
        inner.stats.send_failures += std::mem::take(&mut w.send_failures);
        f(&mut inner.engine, &mut w.worker);
        self.finish(&mut inner, now);
    }

    /// What a worker took for WireGuard peers, sealed and sent, without the lock.
    fn seal_and_send(&self, w: &mut WorkerIo) {
        w.worker.seal();
        self.send_sealed(w);
    }

    /// What a worker sealed, sent.
    fn send_sealed(&self, w: &mut WorkerIo) {
        let WorkerIo {
            worker,
            own,
            batches,
            send_failures,
        } = w;
        let mut gso = true;
        // the listener each leaves from is the address the core gave it: one, nearly always
        *send_failures += send_by_listener(worker.take_transmits(), Some, |local, mine| {
            let socket = match own {
                Some((own, socket)) if *own == local => Some(socket.clone()),
                _ => read(&self.senders).get(&local).cloned(),
            };
            let batch = batches.entry(local).or_default();
            let failed = match socket {
                Some(s) => {
                    let datagrams = mine.map(|t| (t.to, t.contents, t.segment_size));
                    batch.send(s.as_raw_fd(), datagrams) as u64
                }
                None => mine.map(|t| t.datagrams() as u64).sum(),
            };
            gso &= batch.uses_gso();
            failed
        });
        if !gso {
            worker.set_gso(false);
        }
    }

    /// Results of SecureNAT's sockets; what they cause for WireGuard peers (downloads) is
    /// sealed by `w` after the lock.
    pub fn on_outside(
        &self,
        now: Instant,
        events: impl Iterator<Item = (NatRef, IoEvent)>,
        w: &mut WorkerIo,
    ) {
        self.with_worker(now, w, |e, worker| {
            for (nat, ev) in events {
                e.handle_outside(now, nat, ev);
            }
            e.end_of_batch(now);
            worker.collect(e, now);
        });
        self.flush(w);
    }

    /// A new stream connection of `protocol`: its id, and the queue of what the engine writes
    /// to it. The engine hears of it through [`Dataplane::open_stream`].
    pub fn new_stream(&self) -> (ConnId, mpsc::Receiver<StreamMsg>) {
        let mut inner = self.lock();
        inner.next_conn += 1;
        let conn = ConnId(inner.next_conn);
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        inner.streams.insert(conn, tx);
        (conn, rx)
    }

    /// A stream connection's first bytes.
    pub fn open_stream(
        &self,
        now: Instant,
        protocol: ProtocolId,
        conn: ConnId,
        peer: SocketAddr,
        bytes: &[u8],
    ) {
        self.with_engine(now, |e| e.open_stream(now, protocol, conn, peer, bytes));
    }

    /// Bytes a stream connection received.
    pub fn on_stream(&self, now: Instant, protocol: ProtocolId, conn: ConnId, bytes: &[u8]) {
        self.with_engine(now, |e| {
            e.handle_stream(now, protocol, conn, bytes);
            // what the bytes carried for SecureNAT is taken in one pass, as for datagrams
            e.end_of_batch(now);
        });
    }

    /// A stream connection is gone (the peer closed it, or the engine asked).
    pub fn stream_gone(&self, now: Instant, protocol: ProtocolId, conn: ConnId) {
        self.with_engine(now, |e| e.stream_closed(now, protocol, conn));
        self.lock().streams.remove(&conn);
    }

    /// Sends what the engine queued, carries out SecureNAT's socket work, hands on events, and
    /// wakes the timer if the engine now wants it sooner.
    fn finish(&self, inner: &mut Inner, now: Instant) {
        let Inner {
            engine,
            listeners,
            nat,
            stats,
            armed,
            persist,
            streams,
            ..
        } = inner;
        while let Some(out) = engine.poll_stream() {
            match out {
                StreamOutput::Write { conn, bytes } => {
                    if let Some(tx) = streams.get(&conn) {
                        if tx.try_send(StreamMsg::Write(bytes)).is_err() {
                            stats.stream_drops += 1;
                        }
                    }
                }
                StreamOutput::Close { conn } => {
                    if let Some(tx) = streams.remove(&conn) {
                        // a full queue still ends: the task sees its sender gone
                        let _ = tx.try_send(StreamMsg::Close);
                    }
                }
            }
        }
        {
            let transmits = engine.take_transmits();
            if transmits.clone().next().is_some() {
                // a core may name the address a datagram came to (IKE's), where the listener is
                // bound to the wildcard address of its port
                let addrs: Vec<SocketAddr> = listeners.keys().copied().collect();
                let listener_of = |local: SocketAddr| match addrs.contains(&local) {
                    true => Some(local),
                    false => (addrs.iter())
                        .find(|a| a.port() == local.port() && a.ip().is_unspecified())
                        .copied(),
                };
                stats.send_failures += send_by_listener(transmits, listener_of, |addr, mine| {
                    let l = listeners.get_mut(&addr).expect("a listener's own address");
                    let datagrams = mine.map(|t| (t.to, t.contents, t.segment_size));
                    l.batch.send(l.socket.as_raw_fd(), datagrams) as u64
                });
            }
        }
        let mut gso = true;
        for l in listeners.values() {
            gso &= l.raw || l.batch.uses_gso();
        }
        if !gso {
            engine.set_gso(false);
        }
        while let Some(work) = engine.poll_outside() {
            nat.execute(work, now);
        }
        while let Some(ev) = engine.poll_event() {
            crate::events::log(&ev);
            if let EngineEvent::LoginFailed { client, .. } = &ev {
                let guard = etherhub_admin::LoginGuard::global();
                guard.failure(client.ip(), now);
                // the engine's own logins (OpenVPN's) follow the lockout too
                if let etherhub_admin::Admission::LockedOut(left) = guard.check(client.ip(), now) {
                    engine.lock_out(client.ip(), now + left);
                }
            }
            if matches!(ev, EngineEvent::AddressLearned { .. }) {
                let _ = persist.send(ev);
            }
        }
        let next = engine.poll_timeout();
        if next.is_some_and(|n| armed.is_none_or(|a| n < a)) {
            *armed = next;
            self.timer.notify_one();
        }
    }
}

/// Wakes the engine when it asked to be woken.
pub async fn timer_loop(dp: Arc<Dataplane>) {
    loop {
        let now = Instant::now();
        let wake = {
            let mut inner = dp.lock();
            let next = inner.engine.poll_timeout();
            let wake = next.map_or(now + IDLE_WAKE, |n| n.min(now + IDLE_WAKE));
            inner.armed = Some(wake);
            wake
        };
        tokio::select! {
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {}
            _ = dp.timer.notified() => continue,
        }
        let now = Instant::now();
        let unix_ms = crate::defaults::now_ms();
        dp.with_engine(now, |e| {
            e.set_unix_time(now, unix_ms);
            e.handle_timeout(now)
        });
    }
}

/// Feeds SecureNAT's socket results to the engine, a batch at a time.
pub async fn nat_loop(dp: Arc<Dataplane>, mut rx: mpsc::UnboundedReceiver<(NatRef, IoEvent)>) {
    let mut batch = Vec::with_capacity(256);
    let mut worker = WorkerIo::detached();
    while rx.recv_many(&mut batch, 256).await > 0 {
        dp.on_outside(Instant::now(), batch.drain(..), &mut worker);
    }
}
