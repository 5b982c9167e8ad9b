//! Workers: the part of a datagram's way that needs no engine, done by whichever thread received
//! it, so that a runtime with several threads spreads the cryptography over every core.
//!
//! The engine stays one value, behind whatever lock the runtime keeps it in. A worker takes a
//! batch of datagrams in three steps, and holds that lock only for the middle one:
//! 1. [`Worker::open`], without the engine: WireGuard data messages of established sessions are
//!    decrypted through the server's [`DataPath`], each under its own peer's lock.
//! 2. [`Worker::feed`], holding the engine: the opened packets and every other datagram go in,
//!    in the order they came (handshakes and the other protocols are the engine's as before);
//!    the packets the hubs answer to WireGuard peers come out still in plaintext.
//! 3. [`Worker::seal`], without the engine again: those are encrypted into the worker's own
//!    [`TransmitQueue`], which the runtime drains with [`Worker::poll_transmit`] and sends.
//!
//! What the lock covers is then switching, SecureNAT and every protocol's control; the AEAD of
//! WireGuard's data runs on as many threads as receive. Two threads opening datagrams of one
//! peer meet at that peer's lock only.
//!
//! Step 3 may wait for the next batch. When another thread holds the lock, a worker that takes
//! it with [`lock_or`] seals what it left from before while it waits, so that two workers queue
//! for the lock less. The runtime seals the rest when [`Worker::should_seal`] says so (after
//! the next batch's feed at the latest) and always before it waits for more datagrams: a
//! packet waits for one more batch at most. A feed appends to what waits; packets for the
//! peers of a server replaced meanwhile are dropped (counted in [`WorkerStats::stale`]).
//!
//! Each feed first hands the buffers of the packets the worker sealed back to the hubs
//! ([`Engine::reuse_sealed`]): the batch's packets are then built in memory its own core used
//! last, not in what another worker's core did.
//!
//! Step 1 also forwards what the engine's direct table ([`crate::direct`]) lets it: a unicast
//! IPv4 packet from one plain WireGuard session to another on its hub is sealed to its receiver
//! there and then. A batch with nothing else for the engine skips step 2 and the lock
//! ([`Worker::needs_engine`]); what was forwarded is counted by the hubs at the next
//! [`Worker::collect`].
//!
//! Other inputs (SecureNAT's sockets answering, stream connections) can leave their WireGuard
//! packets to a worker too: [`Worker::collect`] under the lock, then [`Worker::seal`].
//!
//! Call [`Engine::defer_wireguard_sealing`] once for the engine a worker feeds.

use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Instant;

use etherhub_wireguard::{Action, DataPath, Opened, PathReader, PeerId, MIN_BUFFER_LEN};

use crate::direct::{Direct, DirectCounts, DirectGeneration, DIRECT_COUNTS_MAX};

use crate::fault::{self, Containment};
use crate::seam::Transmit;
use crate::transmit::TransmitQueue;
use crate::wireguard::{Outbox, OVERHEAD};
use crate::Engine;

/// Packets a worker may leave unsealed after a feed, to seal while it waits for the engine's
/// lock before its next one (see [`lock_or`]): a long batch is sealed at once.
pub const UNSEALED_MAX: usize = 128;

/// Packets opened or sealed under one hold of the peer table's read lock (a batch with coalesced
/// runs can hold thousands; the engine's owner, adding a peer, waits for the lock meanwhile).
const READER_SPAN: usize = 64;

/// The data path's reader for one packet after another, let go every [`READER_SPAN`] packets
/// and only then taken again: a writer (adding a peer) may be waiting in between.
struct Spans<'p> {
    path: &'p DataPath,
    reader: Option<PathReader<'p>>,
    taken: usize,
}

impl<'p> Spans<'p> {
    fn new(path: &'p DataPath) -> Self {
        Spans {
            path,
            reader: None,
            taken: 0,
        }
    }

    fn next(&mut self) -> &PathReader<'p> {
        if self.taken.is_multiple_of(READER_SPAN) {
            self.reader = None;
        }
        self.taken += 1;
        let path = self.path;
        self.reader.get_or_insert_with(|| path.reader())
    }
}

/// Takes the lock the engine is kept in for a worker's [`Worker::feed`] or [`Worker::collect`].
/// When another thread holds it, `meanwhile` runs first: the worker seals (and its runtime
/// sends) what it left unsealed from before, so the wait is spent on work that needs no lock.
/// A poisoned lock is taken as it is (the engine contains its own panics).
pub fn lock_or<'m, T>(lock: &'m Mutex<T>, meanwhile: impl FnOnce()) -> MutexGuard<'m, T> {
    match lock.try_lock() {
        Ok(guard) => guard,
        Err(TryLockError::Poisoned(p)) => p.into_inner(),
        Err(TryLockError::WouldBlock) => {
            meanwhile();
            lock.lock().unwrap_or_else(|p| p.into_inner())
        }
    }
}

/// One received datagram: the listener it came to, its sender, its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Datagram<'a> {
    pub local: SocketAddr,
    pub from: SocketAddr,
    pub bytes: &'a [u8],
}

/// What step 1 made of one datagram of the batch.
#[derive(Clone, Copy, Debug)]
enum Slot {
    /// Decrypted: the packet lies in `plain[start..start + len]`.
    Opened {
        peer: PeerId,
        start: usize,
        len: usize,
    },
    /// A keepalive, fully handled by opening it.
    Keepalive,
    /// Forwarded to another peer through the direct table, already sealed.
    Direct,
    /// For the engine as it came.
    Engine,
}

/// A worker's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Data messages opened outside the engine.
    pub opened: u64,
    /// Packets to peers sealed outside the engine.
    pub sealed: u64,
    /// Opened packets dropped because their peer ended, or the WireGuard server was replaced,
    /// between opening and feeding; and packets to peers dropped unsealed because the server
    /// was replaced or turned off before they were sealed.
    pub stale: u64,
    /// Panics caught in steps 1 and 3 (reported to the engine at the next [`Worker::feed`]).
    pub faults: u64,
    /// Packets forwarded from peer to peer through the direct table, without the engine.
    pub direct: u64,
}

/// One thread's scratch for the three steps (see the module docs). Reused from batch to batch.
pub struct Worker {
    /// The WireGuard server's data path as of the last feed (none while WireGuard is off or
    /// before the first feed: then every datagram goes to the engine).
    path: Option<DataPath>,
    slots: Vec<Slot>,
    /// Opened packets, back to back. It only grows: its bytes are overwritten, never cleared.
    plain: Vec<u8>,
    outbox: Outbox,
    /// The last feed found packets of an earlier one still unsealed.
    carried: bool,
    /// The engine's direct table as of the last feed, and the generation that tells whether
    /// it still is current ([`crate::direct`]).
    direct: Option<(Arc<Direct>, DirectGeneration)>,
    /// What was forwarded through it, for the engine's hubs to count.
    counts: DirectCounts,
    /// Whether the direct table is used at all.
    forwards: bool,
    transmits: TransmitQueue,
    /// A panic caught outside the engine, for the engine's record.
    fault: Option<(&'static str, String)>,
    pub stats: WorkerStats,
}

impl Worker {
    /// A worker whose queue forms GSO runs (`gso`) or not.
    pub fn new(gso: bool) -> Worker {
        Worker {
            path: None,
            slots: Vec::new(),
            plain: Vec::new(),
            outbox: Outbox::default(),
            carried: false,
            direct: None,
            counts: DirectCounts::default(),
            forwards: true,
            transmits: TransmitQueue::new(gso),
            fault: None,
            stats: WorkerStats::default(),
        }
    }

    /// Whether the queue forms GSO runs (the runtime turns it off when the kernel refuses them).
    pub fn set_gso(&mut self, gso: bool) {
        self.transmits.set_gso(gso);
    }

    /// Whether the worker forwards what the engine's direct table lets it (the default), or
    /// hands every packet to the engine.
    pub fn set_direct(&mut self, on: bool) {
        self.forwards = on;
    }

    /// Step 1, without the engine: opens what the WireGuard data path can open, and forwards
    /// what the direct table says goes from peer to peer (sealed at once, after whatever the
    /// last feed left unsealed).
    pub fn open(&mut self, batch: &[Datagram<'_>]) {
        self.slots.clear();
        let forwards = self.forwards
            && self.table_current(self.path.as_ref())
            && self.direct.as_ref().is_some_and(|(d, _)| !d.is_empty());
        if forwards && !self.outbox.is_empty() {
            // what the last feed left goes before what this batch forwards
            self.seal();
        }
        let Some(path) = &self.path else {
            self.slots.resize(batch.len(), Slot::Engine);
            return;
        };
        let direct = self.direct.as_ref().filter(|_| forwards).map(|(d, _)| d);
        let (slots, plain, stats) = (&mut self.slots, &mut self.plain, &mut self.stats);
        let (transmits, counts) = (&mut self.transmits, &mut self.counts);
        let caught = catch_unwind(AssertUnwindSafe(|| {
            let _inside = Containment::enter();
            let (mut readers, mut start) = (Spans::new(path), 0);
            for d in batch {
                let reader = readers.next();
                // boringtun asks room for a handshake message even to open a short packet
                let room = start + d.bytes.len().max(MIN_BUFFER_LEN);
                if plain.len() < room {
                    plain.resize(room, 0);
                }
                let slot = match reader.open(d.from, d.bytes, &mut plain[start..room]) {
                    Opened::Packet(peer, packet) => {
                        let hop = direct.and_then(|t| t.route(peer, d.local, d.from, packet));
                        match hop {
                            Some(hop) => {
                                let packet = &packet[..hop.len];
                                let max = (hop.len + OVERHEAD).max(MIN_BUFFER_LEN);
                                transmits.push_with(hop.local, max, &mut |out| match reader
                                    .seal(hop.to, packet, out)
                                {
                                    Action::Send(to, bytes) => Some((to, bytes.len())),
                                    _ => None,
                                });
                                counts.add(&hop);
                                Slot::Direct
                            }
                            None => Slot::Opened {
                                peer,
                                start,
                                len: packet.len(),
                            },
                        }
                    }
                    Opened::Keepalive(_) => Slot::Keepalive,
                    Opened::Server => Slot::Engine,
                };
                match slot {
                    Slot::Opened { len, .. } => {
                        stats.opened += 1;
                        start += len;
                    }
                    Slot::Direct => {
                        stats.opened += 1;
                        stats.direct += 1;
                    }
                    _ => {}
                }
                slots.push(slot);
            }
        }));
        if let Err(payload) = caught {
            // the datagram it happened on and the rest go to the engine, which contains a
            // second panic to the tunnel concerned (those forwarded already stay forwarded)
            self.stats.faults += 1;
            self.fault = Some(("worker open", fault::message(payload.as_ref())));
            self.slots.resize(batch.len(), Slot::Engine);
        }
    }

    /// Whether the batch [`Worker::open`] took needs the engine: datagrams or packets it must
    /// decide, a direct table no longer current, counts to hand in, or a fault to report. If
    /// not, the runtime may skip [`Worker::feed`] and the engine's lock.
    pub fn needs_engine(&self) -> bool {
        !self.table_current(self.path.as_ref())
            || self.fault.is_some()
            || self.counts.packets() >= DIRECT_COUNTS_MAX
            || (self.slots.iter()).any(|s| matches!(s, Slot::Opened { .. } | Slot::Engine))
    }

    /// Whether the direct table the worker has is current for the server `path` opens for.
    fn table_current(&self, path: Option<&DataPath>) -> bool {
        match (&self.direct, path) {
            (Some((d, generation)), Some(path)) => d.is_current(generation.current(), path),
            _ => false,
        }
    }

    /// Whether packets forwarded through the direct table wait to be counted by the engine
    /// ([`Worker::collect`] hands them in): the runtime takes the lock for it before it waits.
    pub fn has_counts(&self) -> bool {
        self.counts.packets() > 0
    }

    /// Step 2, holding the engine: the batch goes in (the same `batch` as to [`Worker::open`]),
    /// and the packets for WireGuard peers it caused come out for [`Worker::seal`]. The engine's
    /// other outputs stay with it, to be polled as after any input.
    pub fn feed(&mut self, engine: &mut Engine, now: Instant, batch: &[Datagram<'_>]) {
        if let Some((input, message)) = self.fault.take() {
            engine.record_fault(now, input, message);
        }
        engine.reuse_sealed(&mut self.outbox);
        self.carried = !self.outbox.is_empty();
        for (d, slot) in batch.iter().zip(&self.slots) {
            match *slot {
                Slot::Opened { peer, start, len } => {
                    let path = self.path.as_ref().expect("opened through a data path");
                    let packet = &self.plain[start..start + len];
                    if !engine.wireguard_opened(now, path, (d.local, d.from), peer, packet) {
                        self.stats.stale += 1;
                    }
                }
                Slot::Keepalive | Slot::Direct => {}
                Slot::Engine => engine.handle_datagram(now, d.local, d.from, d.bytes),
            }
        }
        engine.end_of_batch(now);
        self.collect(engine, now);
    }

    /// Holding the engine after any other input (SecureNAT's sockets, streams): takes the
    /// packets for WireGuard peers it caused, for [`Worker::seal`]; hands in the counts of what
    /// was forwarded directly and takes the current direct table.
    pub fn collect(&mut self, engine: &mut Engine, now: Instant) {
        engine.count_direct(now, &mut self.counts);
        let path = engine.wireguard_data_path();
        if !self.table_current(path.as_ref()) {
            let generation = engine.direct_generation();
            self.direct = engine.direct_table(now).map(|d| (d, generation));
        }
        let same = match (&self.path, &path) {
            (Some(a), Some(b)) => a.same_as(b),
            _ => false,
        };
        if !same && !self.outbox.is_empty() {
            // packets still unsealed for the peers of a server since replaced or turned off:
            // their peer numbers may mean other peers now
            self.stats.stale += self.outbox.len() as u64;
            self.outbox.clear();
        }
        engine.take_wireguard_outbox(&mut self.outbox);
        self.path = path;
    }

    /// Whether packets taken for peers wait to be sealed.
    pub fn has_unsealed(&self) -> bool {
        !self.outbox.is_empty()
    }

    /// Whether the runtime should seal now rather than after its next batch: when packets of
    /// the batch before the last wait too, or [`UNSEALED_MAX`] do (see the module docs).
    pub fn should_seal(&self) -> bool {
        self.carried || self.outbox.len() >= UNSEALED_MAX
    }

    /// Step 3, without the engine: encrypts what step 2 left for WireGuard peers.
    pub fn seal(&mut self) {
        self.carried = false;
        if self.outbox.is_empty() {
            return;
        }
        let Some(path) = &self.path else {
            self.outbox.clear();
            return;
        };
        let (outbox, transmits) = (&mut self.outbox, &mut self.transmits);
        let n = outbox.len() as u64;
        let caught = catch_unwind(AssertUnwindSafe(|| {
            let _inside = Containment::enter();
            let mut readers = Spans::new(path);
            outbox.seal_into(transmits, |peer, packet, out| {
                readers.next().seal(peer, packet, out)
            });
        }));
        match caught {
            Ok(()) => self.stats.sealed += n,
            Err(payload) => {
                self.outbox.clear();
                self.stats.faults += 1;
                self.fault = Some(("worker seal", fault::message(payload.as_ref())));
            }
        }
    }

    /// Everything step 3 produced (datagrams and GSO runs), taken at once: the runtime sends
    /// them from the worker's buffer without copying them first.
    pub fn take_transmits(&mut self) -> impl Iterator<Item = Transmit<'_>> + Clone {
        self.transmits.take_all()
    }

    /// The next datagram (or GSO run) step 3 produced.
    pub fn poll_transmit(&mut self) -> Option<Transmit<'_>> {
        self.transmits.poll()
    }
}
