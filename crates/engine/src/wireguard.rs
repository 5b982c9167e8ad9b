//! WireGuard behind the seam: etherhub-wireguard's multi-peer server, its peers as tunnels.
//!
//! A handshake from a static key is answered if the engine's accounts know the key (asked
//! through [`Io::wireguard_key`]); the new peer opens an IP tunnel for the key's user on the
//! key's hub, restricted to the key's address, or to the first one it uses when it has none.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use etherhub_hash::IdMap;
use etherhub_wireguard::{
    is_wireguard, Action, DataPath, Event, Key, KeyAccess, KeyDirectory, PeerId, PeerInfo, Server,
    ServerStats, MIN_BUFFER_LEN,
};

use crate::seam::{
    AddressRule, CloseReason, Credential, Io, Medium, Opened, Protocol, SessionDetails, TunnelId,
};
use crate::transmit::TransmitQueue;

/// How often boringtun's per-peer timers run (keepalive, rekey, handshake retries).
pub const TIMER_INTERVAL: Duration = Duration::from_millis(250);
/// Largest datagram handled: an inner packet of at most 65535 bytes plus WireGuard's 32.
pub const BUF_SIZE: usize = 65_536 + 64;
/// What encrypting adds to a packet.
pub(crate) const OVERHEAD: usize = 32;

/// SessionGet's rows for a WireGuard session, as SoftEther 5 shows them.
pub fn session_details() -> SessionDetails {
    SessionDetails {
        protocol: "WIREGUARD".into(),
        underlay: "Legacy VPN - WIREGUARD".into(),
        cipher: "ChaCha20-Poly1305".into(),
        client_product: "WireGuard".into(),
        ..SessionDetails::default()
    }
}

/// Where a peer is: the local address it talks to and its own (roaming) address.
struct PeerPlace {
    local: SocketAddr,
    endpoint: SocketAddr,
}

/// The key directory the server asks, answered by the engine.
struct Directory<'a>(&'a dyn Io);

impl KeyDirectory for Directory<'_> {
    fn lookup(&self, client_public: &Key) -> Option<KeyAccess> {
        self.0
            .wireguard_key(client_public)
            .map(|g| KeyAccess { psk: g.psk })
    }
}

/// Packets for peers, kept in plaintext until whoever takes them encrypts them: a worker
/// outside the engine (`crate::workers`), or [`Engine::poll_transmit`](crate::Engine::poll_transmit).
#[derive(Default)]
pub struct Outbox {
    /// Peer, the local address it talks to, and its packet (as the hub delivered it: moved,
    /// not copied).
    entries: Vec<(PeerId, SocketAddr, Vec<u8>)>,
    /// The packets' buffers once sealed, for the hubs to build new packets in
    /// ([`Engine::take_wireguard_outbox`](crate::Engine::take_wireguard_outbox) hands them
    /// back); at most [`SPENT_MAX`].
    pub(crate) spent: Vec<Vec<u8>>,
}

/// Sealed packets' buffers an [`Outbox`] keeps for reuse.
const SPENT_MAX: usize = 256;

impl Outbox {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Packets waiting.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Encrypts every packet with `seal` (the server's or a [`DataPath`]'s) into `queue`, oldest
    /// first, and empties the box.
    pub fn seal_into<'s>(
        &mut self,
        queue: &mut TransmitQueue,
        mut seal: impl for<'a> FnMut(PeerId, &[u8], &'a mut [u8]) -> Action<'a> + 's,
    ) {
        for (peer, local, packet) in self.entries.drain(..) {
            let len = packet.len();
            queue.push_with(local, (len + OVERHEAD).max(MIN_BUFFER_LEN), &mut |out| {
                match seal(peer, &packet, out) {
                    // boringtun writes from the start of the buffer
                    Action::Send(to, bytes) => Some((to, bytes.len())),
                    _ => None,
                }
            });
            if self.spent.len() < SPENT_MAX {
                self.spent.push(packet);
            }
        }
    }
}

/// The WireGuard protocol core. Off until it has the server's keys.
pub struct WireGuard {
    server: Option<Server>,
    buf: Vec<u8>,
    places: IdMap<PeerId, PeerPlace>,
    timer_out: Vec<(PeerId, SocketAddr, Vec<u8>)>,
    next_timer: Option<Instant>,
    /// Packets to peers wait here in plaintext instead of being encrypted at once.
    deferred: bool,
    outbox: Outbox,
}

impl Default for WireGuard {
    fn default() -> Self {
        WireGuard {
            server: None,
            buf: vec![0; BUF_SIZE],
            places: IdMap::default(),
            timer_out: Vec::new(),
            next_timer: None,
            deferred: false,
            outbox: Outbox::default(),
        }
    }
}

fn tunnel(io: &dyn Io, peer: PeerId) -> TunnelId {
    TunnelId {
        protocol: io.protocol(),
        index: peer.0,
    }
}

impl WireGuard {
    /// Turns WireGuard on with these keys (a new server: peers of an old one are gone, and the
    /// engine ends their tunnels first), or changes the preshared key of a running one.
    pub fn configure(&mut self, private_key: Key, psk: Option<Key>) -> bool {
        let same = self
            .server
            .as_ref()
            .is_some_and(|s| s.public_key() == etherhub_wireguard::public_key_of(&private_key));
        match &mut self.server {
            Some(s) if same => {
                s.set_preshared_key(psk);
                false
            }
            _ => {
                self.server = Some(Server::new(private_key, psk));
                self.places.clear();
                self.outbox.clear();
                true
            }
        }
    }

    /// Turns WireGuard off.
    pub fn disable(&mut self) {
        self.server = None;
        self.places.clear();
        self.next_timer = None;
        self.outbox.clear();
    }

    /// A handle that opens and seals established peers' data messages from other threads,
    /// while on.
    pub fn data_path(&self) -> Option<DataPath> {
        self.server.as_ref().map(Server::data_path)
    }

    /// Whether packets to peers wait in plaintext (see [`Outbox`]).
    pub(crate) fn set_deferred(&mut self, deferred: bool, queue: &mut TransmitQueue) {
        self.deferred = deferred;
        self.seal_pending(queue);
    }

    /// Encrypts what waits into `queue`.
    pub(crate) fn seal_pending(&mut self, queue: &mut TransmitQueue) {
        match &mut self.server {
            Some(server) if !self.outbox.is_empty() => {
                self.outbox.seal_into(queue, |peer, packet, out| {
                    server.encapsulate(peer, packet, out)
                });
            }
            _ => self.outbox.clear(),
        }
    }

    /// The buffers of the packets [`WireGuard::seal_pending`] sealed, for the hubs to reuse.
    pub(crate) fn sealed_buffers(&mut self) -> &mut Vec<Vec<u8>> {
        &mut self.outbox.spent
    }

    /// Hands what waits to a worker, after what `into` still holds (a worker may seal two
    /// batches at once: see `crate::workers`).
    pub(crate) fn take_outbox(&mut self, into: &mut Outbox) {
        if into.entries.is_empty() {
            std::mem::swap(&mut into.entries, &mut self.outbox.entries);
        } else {
            into.entries.append(&mut self.outbox.entries);
        }
    }

    /// A packet a [`DataPath`] of this server opened (outside the engine): the peer's place is
    /// noted and the packet goes to its tunnel, as if the server had opened it here. A packet
    /// opened by a server since replaced, or for a peer ended meanwhile (it has no place: a
    /// peer has one from its handshake on, before a worker can open its data), is dropped:
    /// false.
    pub(crate) fn opened(
        &mut self,
        path: &DataPath,
        local: SocketAddr,
        from: SocketAddr,
        peer: PeerId,
        packet: &[u8],
        io: &mut dyn Io,
    ) -> bool {
        if !self.server.as_ref().is_some_and(|s| path.is_of(s)) || !self.places.contains_key(&peer)
        {
            return false;
        }
        Self::deliver(&mut self.places, local, from, peer, packet, io);
        true
    }

    /// Where a peer is: the local address it talks to and its own.
    pub(crate) fn place(&self, peer: PeerId) -> Option<(SocketAddr, SocketAddr)> {
        self.places.get(&peer).map(|p| (p.local, p.endpoint))
    }

    /// An opened packet to its tunnel, its peer's place kept up to date (roaming).
    fn deliver(
        places: &mut IdMap<PeerId, PeerPlace>,
        local: SocketAddr,
        from: SocketAddr,
        peer: PeerId,
        packet: &[u8],
        io: &mut dyn Io,
    ) {
        let t = tunnel(io, peer);
        match places.get_mut(&peer) {
            Some(p) => {
                // either is a move the engine hears of (its direct table holds both)
                if p.local != local || p.endpoint != from {
                    p.local = local;
                    p.endpoint = from;
                    io.roamed(t, from);
                }
            }
            None => {
                places.insert(
                    peer,
                    PeerPlace {
                        local,
                        endpoint: from,
                    },
                );
            }
        }
        io.packet(t, packet);
    }

    pub fn is_enabled(&self) -> bool {
        self.server.is_some()
    }

    /// The server's public key, while on.
    pub fn public_key(&self) -> Option<Key> {
        self.server.as_ref().map(Server::public_key)
    }

    /// The server's counters (zero while off).
    pub fn stats(&self) -> ServerStats {
        self.server.as_ref().map(Server::stats).unwrap_or_default()
    }

    /// The live peer of a tunnel.
    pub fn peer(&self, tunnel: TunnelId) -> Option<PeerInfo> {
        self.server.as_ref()?.peer(PeerId(tunnel.index))
    }

    /// The tunnel index of a key's live peer.
    pub fn tunnel_of_key(&self, key: &Key) -> Option<u32> {
        self.server.as_ref()?.peer_by_key(key).map(|p| p.0)
    }

    /// Reports the server's peer events: new peers open tunnels, gone peers close them
    /// (except `closing`, which the engine itself ended).
    fn drain_events(
        server: &mut Server,
        places: &mut IdMap<PeerId, PeerPlace>,
        local: Option<SocketAddr>,
        closing: Option<PeerId>,
        io: &mut dyn Io,
    ) {
        while let Some(ev) = server.poll_event() {
            match ev {
                Event::Connected {
                    peer,
                    key,
                    endpoint,
                } => {
                    let Some(grant) = io.wireguard_key(&key) else {
                        server.disconnect(peer);
                        continue;
                    };
                    places.insert(
                        peer,
                        PeerPlace {
                            local: local.unwrap_or(endpoint),
                            endpoint,
                        },
                    );
                    // a refusal comes back as a close of the tunnel
                    let _ = io.opened(Opened {
                        tunnel: tunnel(io, peer),
                        hub: grant.grant.hub,
                        user: grant.grant.user,
                        medium: Medium::Ip,
                        client: endpoint,
                        address: match grant.address {
                            Some(a) => AddressRule::Fixed(a),
                            None => AddressRule::LearnFirst,
                        },
                        credential: Credential::WireGuardKey(key),
                        label: etherhub_wireguard::key_to_base64(&key),
                        details: session_details(),
                        monitor: false,
                    });
                }
                Event::Disconnected { peer } => {
                    places.remove(&peer);
                    if closing != Some(peer) {
                        io.closed(tunnel(io, peer), CloseReason::Ended);
                    }
                }
            }
        }
    }

    /// Packets boringtun held until a session was usable.
    fn send_queued(server: &mut Server, buf: &mut [u8], local: SocketAddr, io: &mut dyn Io) {
        while let Action::Send(to, bytes) = server.poll_queued(buf) {
            let len = bytes.len();
            let bytes = &buf[..len];
            io.transmit(local, len, &mut |out| {
                out[..len].copy_from_slice(bytes);
                Some((to, len))
            });
        }
    }
}

impl Protocol for WireGuard {
    fn name(&self) -> &'static str {
        "WireGuard"
    }

    fn claims_datagram(&self, datagram: &[u8]) -> bool {
        self.server.is_some() && is_wireguard(datagram)
    }

    fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        from: SocketAddr,
        datagram: &[u8],
        io: &mut dyn Io,
    ) {
        let WireGuard {
            server,
            buf,
            places,
            next_timer,
            ..
        } = self;
        let Some(server) = server else { return };
        next_timer.get_or_insert(now + TIMER_INTERVAL);
        let action = server.handle_datagram(now, from, datagram, buf, &Directory(&*io));
        match action {
            Action::Nothing => {}
            Action::Send(to, bytes) => {
                let len = bytes.len();
                io.transmit(local, len, &mut |out| {
                    out[..len].copy_from_slice(bytes);
                    Some((to, len))
                });
            }
            Action::Packet(peer, packet) => Self::deliver(places, local, from, peer, packet, io),
        }
        Self::drain_events(server, places, Some(local), None, io);
        Self::send_queued(server, buf, local, io);
    }

    fn send(&mut self, _now: Instant, tunnel: TunnelId, packet: Vec<u8>, io: &mut dyn Io) {
        let Some(server) = &mut self.server else {
            return;
        };
        let peer = PeerId(tunnel.index);
        let Some(place) = self.places.get(&peer) else {
            return;
        };
        // kept in plaintext for a worker to seal, without another copy
        if self.deferred {
            (self.outbox.entries).push((peer, place.local, packet));
            return;
        }
        let max = (packet.len() + OVERHEAD).max(MIN_BUFFER_LEN);
        io.transmit(place.local, max, &mut |out| {
            match server.encapsulate(peer, &packet, out) {
                // boringtun writes from the start of the buffer
                Action::Send(to, bytes) => Some((to, bytes.len())),
                _ => None,
            }
        });
    }

    fn handle_timeout(&mut self, now: Instant, io: &mut dyn Io) {
        let WireGuard {
            server,
            places,
            timer_out,
            next_timer,
            ..
        } = self;
        let Some(server) = server else { return };
        if next_timer.is_some_and(|t| now < t) {
            return;
        }
        *next_timer = Some(now + TIMER_INTERVAL);
        server.handle_timers(now, timer_out);
        for (peer, to, bytes) in timer_out.drain(..) {
            let local = places.get(&peer).map(|p| p.local).unwrap_or(to);
            let len = bytes.len();
            io.transmit(local, len, &mut |out| {
                out[..len].copy_from_slice(&bytes);
                Some((to, len))
            });
        }
        Self::drain_events(server, places, None, None, io);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.server.as_ref().and(self.next_timer)
    }

    fn close(&mut self, _now: Instant, tunnel: TunnelId, io: &mut dyn Io) {
        let Some(server) = &mut self.server else {
            return;
        };
        let peer = PeerId(tunnel.index);
        server.disconnect(peer);
        Self::drain_events(server, &mut self.places, None, Some(peer), io);
    }
}
