//! The multi-peer server: key list, peer table, demux, and the glue to boringtun's per-peer `Tunn`.
//!
//! Demux: a handshake initiation names no receiver, so its sender's static key is decrypted with
//! `parse_handshake_anon` and looked up in the key list (a `HashMap`, O(1) for any number of
//! keys). Every other message carries the receiver index the server chose; boringtun puts the
//! peer's index in its upper 24 bits, so `receiver_index >> 8` is the [`PeerId`].
//!
//! Load: one shared `RateLimiter` (the *gate*) checks MAC1 of every handshake message before any
//! peer state or Diffie-Hellman work is touched, and above its rate answers with a cookie reply
//! unless the message carries a valid MAC2. The `Tunn`s get a second, never-loaded limiter that
//! only re-checks MAC1: giving them the gate as well would count every handshake twice and could
//! make a `Tunn` answer a handshake the gate already let through with a cookie instead. While
//! handshakes arrive faster than the gate's rate, those it lets through (valid MAC2) are limited
//! per source address as wireguard-go does ([`crate::ratelimit`]), so no single sender that
//! can receive cookies makes the server do Diffie-Hellman work at its own pace.
//!
//! Threads: each peer sits behind its own lock, in a table the [`Server`] shares with any number
//! of [`DataPath`] handles. The server (one owner, for handshakes, timers and the peer set) and
//! the handles (data messages of established sessions, from any thread) meet only at one peer's
//! lock, held for one packet. The table's own lock is written only when a peer comes or goes.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use boringtun::noise::errors::WireGuardError;
use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::noise::{Packet, Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use rand_core::{OsRng, RngCore};

use crate::ratelimit::HandshakeLimiter;
use crate::wire::{Message, MessageType, COOKIE_REPLY_LEN, DATA_OVERHEAD, HANDSHAKE_INIT_LEN};
use crate::{Action, Event, Key, KeyDirectory, PeerId, PeerInfo, ServerStats};
use etherhub_hash::IdMap;

/// Handshake messages per second the server answers before it demands cookies (boringtun's own
/// device uses the same figure).
pub const DEFAULT_HANDSHAKE_RATE_LIMIT: u64 = 100;

/// The smallest `out` buffer any call accepts: room for a handshake initiation. Calls that may
/// carry an IP packet need that packet's length plus 32 as well.
pub const MIN_BUFFER_LEN: usize = HANDSHAKE_INIT_LEN;

/// A peer with no completed handshake for this long is removed: its keys are past WireGuard's
/// Reject-After-Time, and as responder the server does not rekey on its own.
pub const PEER_EXPIRY: Duration = Duration::from_secs(180);

/// Peer indices live in the upper 24 bits of a receiver index; 0 is never handed out.
const MAX_PEER_INDEX: u32 = (1 << 24) - 1;

/// Packets held per unconfirmed peer (boringtun's own queue holds as many).
const MAX_HELD: usize = 256;

struct Peer {
    tunn: Tunn,
    public_key: Key,
    endpoint: SocketAddr,
    last_handshake: Option<Instant>,
    rx_bytes: u64,
    tx_bytes: u64,
    rx_packets: u64,
    tx_packets: u64,
    dropped: u64,
    /// The server answered this peer's first initiation but the client has not used the new
    /// session yet. A responder must not send on a session before that, and boringtun would
    /// start a competing handshake of its own if asked to, so outgoing packets wait in `held`.
    unconfirmed: bool,
    /// Packets held while `unconfirmed`, sent by flush once the client's first data arrives.
    held: VecDeque<Vec<u8>>,
    /// Largest packet in `held` or in boringtun's own queue (0: both are known to be empty).
    /// Flushing encrypts these into the caller's buffer, and boringtun panics on a buffer that is
    /// too small, so flush checks against this first.
    queued_max: usize,
}

impl Peer {
    fn info(&self) -> PeerInfo {
        PeerInfo {
            public_key: self.public_key,
            endpoint: self.endpoint,
            last_handshake: self.last_handshake,
            rx_bytes: self.rx_bytes,
            tx_bytes: self.tx_bytes,
            rx_packets: self.rx_packets,
            tx_packets: self.tx_packets,
            dropped: self.dropped,
        }
    }

    /// Counts an outgoing datagram if it is a data message with a payload. boringtun 0.7 does not
    /// pad, so the payload is exactly the datagram minus the overhead.
    fn count_sent(&mut self, datagram: &[u8]) {
        let Some(len) = Message::new_checked(datagram).and_then(|m| m.payload_len()) else {
            return;
        };
        if len > 0 {
            self.tx_packets += 1;
            self.tx_bytes += len as u64;
        }
    }
}

/// The live peers, each behind its own lock.
#[derive(Default)]
struct Table {
    peers: RwLock<IdMap<PeerId, Mutex<Peer>>>,
}

/// A lock is poisoned only by a panic inside boringtun, which the engine contains; the peer's
/// state is still the best there is.
fn lock(peer: &Mutex<Peer>) -> MutexGuard<'_, Peer> {
    peer.lock().unwrap_or_else(|p| p.into_inner())
}

impl Table {
    fn read(&self) -> RwLockReadGuard<'_, IdMap<PeerId, Mutex<Peer>>> {
        self.peers.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, IdMap<PeerId, Mutex<Peer>>> {
        self.peers.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// What [`DataPath::open`] made of a datagram.
#[derive(Debug)]
pub enum Opened<'a> {
    /// The IP packet a peer sent, decrypted into the caller's buffer.
    Packet(PeerId, &'a [u8]),
    /// A keepalive: the peer is alive and its endpoint is where it came from.
    Keepalive(PeerId),
    /// Not for this path (a handshake, an unknown or unconfirmed peer, a peer with packets
    /// waiting, or a message that did not open): give it to [`Server::handle_datagram`], which
    /// decides and counts. Nothing was changed.
    Server,
}

/// The data messages of established sessions, from any thread: a handle on the server's peer
/// table. See the module docs.
#[derive(Clone)]
pub struct DataPath {
    table: Arc<Table>,
}

impl DataPath {
    /// Decrypts one data message: [`PathReader::open`].
    pub fn open<'a>(&self, src: SocketAddr, datagram: &[u8], out: &'a mut [u8]) -> Opened<'a> {
        self.reader().open(src, datagram, out)
    }

    /// Encrypts one packet: [`PathReader::seal`].
    pub fn seal<'a>(&self, peer: PeerId, ip_packet: &[u8], out: &'a mut [u8]) -> Action<'a> {
        self.reader().seal(peer, ip_packet, out)
    }

    /// The peer table held for reading, for a batch of opens and seals: the table's lock is
    /// taken once, not once a packet (on several cores its count is a contended cache line).
    /// Hold it for one batch only, and take no other lock meanwhile that the server's owner
    /// may hold while it adds or removes a peer.
    pub fn reader(&self) -> PathReader<'_> {
        PathReader {
            peers: self.table.read(),
        }
    }

    /// Whether both handles are on one server's table.
    pub fn same_as(&self, other: &DataPath) -> bool {
        Arc::ptr_eq(&self.table, &other.table)
    }

    /// Whether this handle is on `server`'s table (a server replaced by another, with new keys,
    /// has a new table whose peer numbers mean other peers).
    pub fn is_of(&self, server: &Server) -> bool {
        Arc::ptr_eq(&self.table, &server.table)
    }
}

/// The peer table held for reading: see [`DataPath::reader`].
pub struct PathReader<'a> {
    peers: RwLockReadGuard<'a, IdMap<PeerId, Mutex<Peer>>>,
}

impl PathReader<'_> {
    /// Decrypts a data message of a peer whose session needs nothing of the server, holding only
    /// that peer's lock. `out` must hold the datagram's length.
    pub fn open<'a>(&self, src: SocketAddr, datagram: &[u8], out: &'a mut [u8]) -> Opened<'a> {
        let Some(msg) = Message::new_checked(datagram) else {
            return Opened::Server;
        };
        let Some(receiver) = msg.receiver_index() else {
            return Opened::Server;
        };
        if msg.kind() != MessageType::Data || out.len() < datagram.len().max(MIN_BUFFER_LEN) {
            return Opened::Server;
        }
        let id = PeerId(receiver >> 8);
        let Some(cell) = self.peers.get(&id) else {
            return Opened::Server;
        };
        let mut peer = lock(cell);
        if peer.unconfirmed || peer.queued_max > 0 {
            return Opened::Server;
        }
        // A data message never makes boringtun answer; a failure changed nothing in the Tunn,
        // and the server, taking it in its turn, counts it.
        match peer.tunn.decapsulate(Some(src.ip()), datagram, out) {
            TunnResult::WriteToTunnelV4(packet, _) | TunnResult::WriteToTunnelV6(packet, _) => {
                peer.endpoint = src;
                peer.rx_packets += 1;
                peer.rx_bytes += packet.len() as u64;
                Opened::Packet(id, packet)
            }
            TunnResult::Done => {
                peer.endpoint = src;
                Opened::Keepalive(id)
            }
            TunnResult::WriteToNetwork(_) | TunnResult::Err(_) => Opened::Server,
        }
    }

    /// Encrypts one IP packet to a peer, as [`Server::encapsulate`] does, holding only that
    /// peer's lock.
    pub fn seal<'a>(&self, peer: PeerId, ip_packet: &[u8], out: &'a mut [u8]) -> Action<'a> {
        match self.peers.get(&peer) {
            Some(cell) => encapsulate(&mut lock(cell), ip_packet, out),
            None => Action::Nothing,
        }
    }
}

/// [`Server::encapsulate`] on one locked peer.
fn encapsulate<'a>(p: &mut Peer, ip_packet: &[u8], out: &'a mut [u8]) -> Action<'a> {
    if out.len() < (ip_packet.len() + DATA_OVERHEAD).max(MIN_BUFFER_LEN) {
        p.dropped += 1;
        return Action::Nothing;
    }
    if p.unconfirmed {
        if p.held.len() < MAX_HELD {
            p.held.push_back(ip_packet.to_vec());
            p.queued_max = p.queued_max.max(ip_packet.len());
        } else {
            p.dropped += 1;
        }
        return Action::Nothing;
    }
    match p.tunn.encapsulate(ip_packet, out) {
        TunnResult::WriteToNetwork(datagram) => {
            if Message::new_checked(datagram).map(|m| m.kind()) == Some(MessageType::Data) {
                p.count_sent(datagram);
            } else {
                p.queued_max = p.queued_max.max(ip_packet.len());
            }
            Action::Send(p.endpoint, datagram)
        }
        TunnResult::Done => {
            p.queued_max = p.queued_max.max(ip_packet.len());
            Action::Nothing
        }
        _ => {
            p.dropped += 1;
            Action::Nothing
        }
    }
}

/// A WireGuard server for many peers. See the crate docs for the call order.
pub struct Server {
    private: StaticSecret,
    public: PublicKey,
    preshared_key: Option<Key>,
    gate: Arc<RateLimiter>,
    mac_only: Arc<RateLimiter>,
    /// under load, handshakes that passed the gate are limited per source address
    limiter: HandshakeLimiter,
    /// The live peer of each key that has one.
    peer_of_key: HashMap<Key, PeerId>,
    table: Arc<Table>,
    next_index: u32,
    /// Peers whose session just became usable while boringtun may hold packets for them.
    ready: VecDeque<PeerId>,
    events: VecDeque<Event>,
    stats: ServerStats,
}

impl Server {
    /// A server with this private key and an optional preshared key used for every client that
    /// has none of its own, answering up to [`DEFAULT_HANDSHAKE_RATE_LIMIT`] handshakes a second
    /// before it asks for cookies.
    pub fn new(private_key: Key, preshared_key: Option<Key>) -> Self {
        Self::with_handshake_rate_limit(private_key, preshared_key, DEFAULT_HANDSHAKE_RATE_LIMIT)
    }

    /// Like [`Server::new`] with a different handshake rate limit (0: always demand cookies).
    pub fn with_handshake_rate_limit(
        private_key: Key,
        preshared_key: Option<Key>,
        handshakes_per_second: u64,
    ) -> Self {
        let private = StaticSecret::from(private_key);
        let public = PublicKey::from(&private);
        Server {
            gate: Arc::new(RateLimiter::new(&public, handshakes_per_second)),
            mac_only: Arc::new(RateLimiter::new(&public, u64::MAX)),
            limiter: HandshakeLimiter::new(handshakes_per_second),
            private,
            public,
            preshared_key,
            peer_of_key: HashMap::new(),
            table: Arc::default(),
            // A random start makes it unlikely that a client still holding a session from before a
            // restart lands on a new peer with the same index.
            next_index: OsRng.next_u32() % MAX_PEER_INDEX + 1,
            ready: VecDeque::new(),
            events: VecDeque::new(),
            stats: ServerStats::default(),
        }
    }

    /// A handle for data messages from other threads (see the module docs).
    pub fn data_path(&self) -> DataPath {
        DataPath {
            table: self.table.clone(),
        }
    }

    /// The server's public key, for client configurations.
    pub fn public_key(&self) -> Key {
        self.public.to_bytes()
    }

    /// Changes the preshared key of clients without one of their own, for handshakes from now
    /// on (live sessions keep theirs until they rekey).
    pub fn set_preshared_key(&mut self, preshared_key: Option<Key>) {
        self.preshared_key = preshared_key;
    }

    /// Ends the live peer of a client key, if it has one (the key was deleted or its access
    /// changed), and returns it; an [`Event::Disconnected`] is queued. The next handshake from
    /// that key is decided by the directory again.
    pub fn disconnect_key(&mut self, client_public: &Key) -> Option<PeerId> {
        let id = *self.peer_of_key.get(client_public)?;
        self.drop_peer(id).then_some(id)
    }

    /// Ends a live peer's session (SessionDisconnect); the client's next handshake connects it
    /// again if the directory still knows its key. Queues [`Event::Disconnected`]; false if not
    /// live.
    pub fn disconnect(&mut self, peer: PeerId) -> bool {
        self.drop_peer(peer)
    }

    /// Handles one received UDP datagram.
    ///
    /// - Initiation from a key `keys` knows: creates (or re-keys) that key's peer and returns
    ///   `Send(response)`; the first time it also queues [`Event::Connected`].
    /// - Initiation from a key `keys` does not know: `Nothing` (silence), counted.
    /// - Handshake message while over the rate limit without a valid MAC2: `Send(cookie reply)`.
    /// - Data: `Packet(peer, ip_packet)`; keepalives give `Nothing`.
    /// - Anything malformed or unauthenticated: `Nothing`, counted.
    ///
    /// The peer's endpoint follows the source of every authenticated packet (roaming). `out` must
    /// hold at least `max(datagram.len(), MIN_BUFFER_LEN)` bytes, otherwise the datagram is
    /// dropped. Afterwards call [`Server::poll_queued`] until it returns `Nothing`.
    pub fn handle_datagram<'a>(
        &mut self,
        now: Instant,
        src: SocketAddr,
        datagram: &[u8],
        out: &'a mut [u8],
        keys: &dyn KeyDirectory,
    ) -> Action<'a> {
        let Some(msg) = Message::new_checked(datagram) else {
            self.stats.malformed_dropped += 1;
            return Action::Nothing;
        };
        if out.len() < datagram.len().max(MIN_BUFFER_LEN) {
            // boringtun panics on short buffers; a caller bug must not take the server down.
            self.stats.malformed_dropped += 1;
            return Action::Nothing;
        }
        let id = match msg.receiver_index() {
            None => return self.handle_initiation(now, src, datagram, out, keys),
            Some(receiver) => PeerId(receiver >> 8),
        };
        if !self.table.read().contains_key(&id) {
            self.stats.unknown_index_dropped += 1;
            return Action::Nothing;
        }
        if msg.kind() == MessageType::HandshakeResponse {
            self.limiter.count(now);
            let mut cookie = [0u8; COOKIE_REPLY_LEN];
            match self
                .gate
                .verify_packet(Some(src.ip()), datagram, &mut cookie)
            {
                Ok(_) if !self.limiter.allow(src.ip(), now) => {
                    self.stats.handshakes_rate_limited += 1;
                    return Action::Nothing;
                }
                Ok(_) => {}
                Err(TunnResult::WriteToNetwork(reply)) => {
                    return self.cookie_reply(src, reply, out)
                }
                Err(_) => {
                    self.stats.malformed_dropped += 1;
                    return Action::Nothing;
                }
            }
        }
        self.handle_for_peer(now, id, msg.kind(), src, datagram, out)
    }

    fn cookie_reply<'a>(&mut self, src: SocketAddr, reply: &[u8], out: &'a mut [u8]) -> Action<'a> {
        self.stats.cookie_replies_sent += 1;
        out[..reply.len()].copy_from_slice(reply);
        Action::Send(src, &out[..reply.len()])
    }

    fn handle_initiation<'a>(
        &mut self,
        now: Instant,
        src: SocketAddr,
        datagram: &[u8],
        out: &'a mut [u8],
        keys: &dyn KeyDirectory,
    ) -> Action<'a> {
        self.limiter.count(now);
        let mut cookie = [0u8; COOKIE_REPLY_LEN];
        let init = match self
            .gate
            .verify_packet(Some(src.ip()), datagram, &mut cookie)
        {
            Ok(Packet::HandshakeInit(_)) if !self.limiter.allow(src.ip(), now) => {
                self.stats.handshakes_rate_limited += 1;
                return Action::Nothing;
            }
            Ok(Packet::HandshakeInit(init)) => init,
            Err(TunnResult::WriteToNetwork(reply)) => return self.cookie_reply(src, reply, out),
            Ok(_) | Err(_) => {
                self.stats.malformed_dropped += 1;
                return Action::Nothing;
            }
        };
        let Ok(half) = parse_handshake_anon(&self.private, &self.public, &init) else {
            self.stats.malformed_dropped += 1;
            return Action::Nothing;
        };
        let key = half.peer_static_public;
        if let Some(&id) = self.peer_of_key.get(&key) {
            // Re-key: the peer's own Tunn checks the timestamp, so replays are refused here.
            return self.handle_for_peer(now, id, MessageType::HandshakeInit, src, datagram, out);
        }
        let Some(access) = keys.lookup(&key) else {
            self.stats.unknown_key_initiations += 1;
            return Action::Nothing;
        };
        let psk = access.psk.or(self.preshared_key);
        let Some(id) = self.allocate_index() else {
            self.stats.malformed_dropped += 1;
            return Action::Nothing;
        };
        let mut tunn = Tunn::new(
            self.private.clone(),
            PublicKey::from(key),
            psk,
            None,
            id.0,
            Some(self.mac_only.clone()),
        );
        let TunnResult::WriteToNetwork(response) = tunn.decapsulate(Some(src.ip()), datagram, out)
        else {
            // Wrong preshared key, bad timestamp: no peer is created.
            self.stats.malformed_dropped += 1;
            return Action::Nothing;
        };
        let unconfirmed = tunn.time_since_last_handshake().is_none();
        self.table.write().insert(
            id,
            Mutex::new(Peer {
                tunn,
                public_key: key,
                endpoint: src,
                last_handshake: Some(now),
                rx_bytes: 0,
                tx_bytes: 0,
                rx_packets: 0,
                tx_packets: 0,
                dropped: 0,
                unconfirmed,
                held: VecDeque::new(),
                queued_max: 0,
            }),
        );
        self.peer_of_key.insert(key, id);
        self.stats.handshakes_ok += 1;
        self.events.push_back(Event::Connected {
            peer: id,
            key,
            endpoint: src,
        });
        Action::Send(src, response)
    }

    fn handle_for_peer<'a>(
        &mut self,
        now: Instant,
        id: PeerId,
        kind: MessageType,
        src: SocketAddr,
        datagram: &[u8],
        out: &'a mut [u8],
    ) -> Action<'a> {
        let peers = self.table.read();
        let Some(cell) = peers.get(&id) else {
            self.stats.unknown_index_dropped += 1;
            return Action::Nothing;
        };
        let mut peer = lock(cell);
        let (action, session_usable) = match peer.tunn.decapsulate(Some(src.ip()), datagram, out) {
            // Initiation -> our response; response (to our initiation) -> boringtun's keepalive.
            TunnResult::WriteToNetwork(reply) => {
                peer.endpoint = src;
                peer.last_handshake = Some(now);
                self.stats.handshakes_ok += 1;
                if kind == MessageType::HandshakeInit
                    && peer.tunn.time_since_last_handshake().is_none()
                {
                    peer.unconfirmed = true;
                }
                (
                    Action::Send(src, reply),
                    kind == MessageType::HandshakeResponse,
                )
            }
            TunnResult::WriteToTunnelV4(packet, _) | TunnResult::WriteToTunnelV6(packet, _) => {
                peer.endpoint = src;
                peer.unconfirmed = false;
                peer.rx_packets += 1;
                peer.rx_bytes += packet.len() as u64;
                (Action::Packet(id, packet), true)
            }
            TunnResult::Done => {
                // A keepalive authenticates its sender; a cookie reply proves nothing about them.
                let keepalive = kind == MessageType::Data;
                if keepalive {
                    peer.endpoint = src;
                    peer.unconfirmed = false;
                }
                (Action::Nothing, keepalive)
            }
            TunnResult::Err(_) => {
                peer.dropped += 1;
                self.stats.malformed_dropped += 1;
                (Action::Nothing, false)
            }
        };
        if session_usable && peer.queued_max > 0 && !self.ready.contains(&id) {
            self.ready.push_back(id);
        }
        action
    }

    /// Drains packets boringtun queued for `peer` while it had no session (they were passed to
    /// [`Server::encapsulate`] before the handshake finished). Call until `Nothing`.
    /// `out` must hold the largest such packet plus 32 bytes, otherwise `Nothing` is returned.
    pub fn flush<'a>(&mut self, peer: PeerId, out: &'a mut [u8]) -> Action<'a> {
        match self.flush_into(peer, out) {
            Some((to, len)) => Action::Send(to, &out[..len]),
            None => Action::Nothing,
        }
    }

    /// Like [`Server::flush`] for every peer whose session became usable in the last
    /// [`Server::handle_datagram`] calls; the caller does not need to know which. Call until
    /// `Nothing` after each `handle_datagram`.
    pub fn poll_queued<'a>(&mut self, out: &'a mut [u8]) -> Action<'a> {
        while let Some(&id) = self.ready.front() {
            if let Some((to, len)) = self.flush_into(id, out) {
                return Action::Send(to, &out[..len]);
            }
            self.ready.pop_front();
        }
        Action::Nothing
    }

    /// One step of flushing: where to send and how many bytes at the start of `out`.
    fn flush_into(&mut self, id: PeerId, out: &mut [u8]) -> Option<(SocketAddr, usize)> {
        let peers = self.table.read();
        let mut peer = lock(peers.get(&id)?);
        if peer.queued_max == 0 {
            return None;
        }
        if out.len() < (peer.queued_max + DATA_OVERHEAD).max(MIN_BUFFER_LEN) {
            peer.dropped += 1;
            return None;
        }
        if peer.unconfirmed {
            return None;
        }
        let start = out.as_ptr();
        if let Some(packet) = peer.held.pop_front() {
            if let TunnResult::WriteToNetwork(datagram) = peer.tunn.encapsulate(&packet, out) {
                debug_assert_eq!(datagram.as_ptr(), start);
                let len = datagram.len();
                peer.count_sent(datagram);
                return Some((peer.endpoint, len));
            }
            // No session after all: boringtun queued the packet and a handshake is under way.
            return None;
        }
        match peer.tunn.decapsulate(None, &[], out) {
            TunnResult::WriteToNetwork(datagram) => {
                // boringtun writes from the start of the buffer; the length is all we keep.
                debug_assert_eq!(datagram.as_ptr(), start);
                let len = datagram.len();
                peer.count_sent(datagram);
                Some((peer.endpoint, len))
            }
            _ => {
                // Done with a current session means the queue ran empty; without one, boringtun
                // put the packet back to wait for the handshake.
                if peer.tunn.time_since_last_handshake().is_some() {
                    peer.queued_max = 0;
                }
                None
            }
        }
    }

    /// Encrypts one IP packet to a peer: `Send(endpoint, datagram)`, or `Nothing` for an unknown
    /// peer or while no session is usable yet. Right after the server answered a new client's
    /// initiation the packet is held until the client's first data message confirms the session.
    /// Otherwise, without a session, boringtun keeps the packet and, unless a handshake is under
    /// way, starts one as initiator: that is a `Send` of the initiation. Up to 256 packets wait
    /// either way; they come out of [`Server::poll_queued`] once the session is up.
    /// `out` must hold `max(ip_packet.len() + 32, MIN_BUFFER_LEN)` bytes.
    pub fn encapsulate<'a>(
        &mut self,
        peer: PeerId,
        ip_packet: &[u8],
        out: &'a mut [u8],
    ) -> Action<'a> {
        let peers = self.table.read();
        match peers.get(&peer) {
            Some(cell) => encapsulate(&mut lock(cell), ip_packet, out),
            None => Action::Nothing,
        }
    }

    /// Call about every 250 ms. Runs every peer's timers (keepalive, rekey, handshake retry,
    /// expiry) and pushes the datagrams they want sent into `out`, with the peer and where to. A peer whose session is dead
    /// for good (boringtun's `ConnectionExpired`, or no handshake for [`PEER_EXPIRY`]) is removed
    /// and an [`Event::Disconnected`] queued. Also lets the handshake rate limiter start a new
    /// one-second window.
    pub fn handle_timers(&mut self, now: Instant, out: &mut Vec<(PeerId, SocketAddr, Vec<u8>)>) {
        // Resets only if a second has passed by the limiter's own clock.
        self.gate.reset_count();
        let mut buf = [0u8; MIN_BUFFER_LEN];
        let mut dead = Vec::new();
        for (&id, cell) in self.table.read().iter() {
            let mut peer = lock(cell);
            let stale = match peer.last_handshake {
                Some(at) => now.saturating_duration_since(at) > PEER_EXPIRY,
                None => true,
            };
            if stale {
                dead.push(id);
                continue;
            }
            match peer.tunn.update_timers(&mut buf) {
                TunnResult::WriteToNetwork(datagram) => {
                    out.push((id, peer.endpoint, datagram.to_vec()))
                }
                TunnResult::Err(WireGuardError::ConnectionExpired) => dead.push(id),
                _ => {}
            }
        }
        dead.sort_unstable();
        for id in dead {
            if self.drop_peer(id) {
                self.stats.peers_expired += 1;
            }
        }
    }

    /// The next peer event, oldest first.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// A snapshot of one live peer.
    pub fn peer(&self, id: PeerId) -> Option<PeerInfo> {
        self.table.read().get(&id).map(|p| lock(p).info())
    }

    /// The live peer of a client key.
    pub fn peer_by_key(&self, key: &Key) -> Option<PeerId> {
        self.peer_of_key.get(key).copied()
    }

    /// Snapshots of all live peers, ordered by id.
    pub fn peers(&self) -> Vec<(PeerId, PeerInfo)> {
        let mut all: Vec<_> = (self.table.read().iter())
            .map(|(&id, p)| (id, lock(p).info()))
            .collect();
        all.sort_unstable_by_key(|(id, _)| *id);
        all
    }

    /// Server-wide counters.
    pub fn stats(&self) -> ServerStats {
        self.stats
    }

    /// Removes a live peer and queues its `Disconnected`; false if it was not live.
    fn drop_peer(&mut self, id: PeerId) -> bool {
        let Some(peer) = self.table.write().remove(&id) else {
            return false;
        };
        let peer = peer.into_inner().unwrap_or_else(|p| p.into_inner());
        if self.peer_of_key.get(&peer.public_key) == Some(&id) {
            self.peer_of_key.remove(&peer.public_key);
        }
        self.ready.retain(|&r| r != id);
        self.events.push_back(Event::Disconnected { peer: id });
        true
    }

    /// The next free peer index, walking the 24-bit space from a random start.
    fn allocate_index(&mut self) -> Option<PeerId> {
        for _ in 0..MAX_PEER_INDEX {
            let id = PeerId(self.next_index);
            self.next_index = if self.next_index >= MAX_PEER_INDEX {
                1
            } else {
                self.next_index + 1
            };
            if !self.table.read().contains_key(&id) {
                return Some(id);
            }
        }
        None
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("public_key", &crate::key_to_base64(&self.public_key()))
            .field("peers_by_key", &self.peer_of_key.len())
            .field("peers", &self.table.read().len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}
