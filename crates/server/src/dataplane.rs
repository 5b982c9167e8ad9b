//! The packet path: UDP datagrams -> WireGuard -> sessions on virtual hubs -> back out.
//!
//! One `Dataplane` value holds the WireGuard server and every hub; the socket tasks take its lock
//! once per batch of datagrams, so a packet crosses the whole path without another hand-off.

use crate::sys::SendBatch;
use etherhub_hub::{Delivery, Hub, SessionId, VirtualHostConfig};
use etherhub_wireguard::{Action, Event, PeerId};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::UdpSocket;

/// Largest datagram we handle; WireGuard adds 32 bytes to an inner packet of at most 65535.
pub const BUF_SIZE: usize = 65_536 + 64;

/// Where a WireGuard peer sits: its hub, its session there, and the UDP port it talks to.
#[derive(Clone, Debug)]
pub struct PeerLink {
    pub hub: String,
    pub session: SessionId,
    pub port: u16,
}

#[derive(Default, Debug, Clone, Copy)]
pub struct DataplaneStats {
    /// datagrams no protocol on the port recognised
    pub unknown_datagrams: u64,
    /// datagrams we could not send (socket buffer full, no socket)
    pub send_failures: u64,
    /// deliveries to a session no peer backs any more
    pub orphan_deliveries: u64,
}

pub struct Dataplane {
    pub wg: etherhub_wireguard::Server,
    /// keyed by the hub name in upper case: SoftEther's hub names are case-insensitive
    pub hubs: BTreeMap<String, Hub>,
    pub peers: HashMap<PeerId, PeerLink>,
    sessions: HashMap<(String, SessionId), PeerId>,
    pub sockets: Sockets,
    /// which of our UDP ports each remote endpoint last used, so replies leave from it
    endpoint_port: HashMap<SocketAddr, u16>,
    buf: Vec<u8>,
    deliveries: Vec<Delivery>,
    timer_out: Vec<(SocketAddr, Vec<u8>)>,
    pub stats: DataplaneStats,
    /// SecureNAT's sockets, per hub
    pub nat: crate::nat::NatRuntime,
}

/// The UDP sockets, one per port, and what waits to leave each of them. While the socket task
/// processes a batch of received datagrams, replies queue here and leave together with one
/// `sendmmsg` per socket ([`Sockets::flush`]); at other times they leave at once.
#[derive(Default)]
pub struct Sockets {
    map: HashMap<u16, Arc<UdpSocket>>,
    outbox: RefCell<HashMap<u16, SendBatch>>,
    batching: Cell<bool>,
}

impl Sockets {
    pub fn insert(&mut self, port: u16, s: Arc<UdpSocket>) {
        self.map.insert(port, s);
    }
    pub fn remove(&mut self, port: &u16) -> Option<Arc<UdpSocket>> {
        self.outbox.get_mut().remove(port);
        self.map.remove(port)
    }
    pub fn get(&self, port: &u16) -> Option<&Arc<UdpSocket>> {
        self.map.get(port)
    }
    pub fn keys(&self) -> impl Iterator<Item = &u16> {
        self.map.keys()
    }

    /// From now until [`flush`](Self::flush), datagrams queue instead of leaving one by one.
    pub fn begin_batch(&self) {
        self.batching.set(true);
    }

    /// Sends what queued since [`begin_batch`](Self::begin_batch); returns how many the kernel
    /// refused (dropped).
    pub fn flush(&self) -> u64 {
        self.batching.set(false);
        let mut dropped = 0;
        for (port, batch) in self.outbox.borrow_mut().iter_mut() {
            if batch.is_empty() {
                continue;
            }
            match self.map.get(port) {
                Some(s) => dropped += batch.flush(s.as_raw_fd()) as u64,
                None => {
                    dropped += batch.len() as u64;
                    let _ = batch.flush(-1);
                }
            }
        }
        dropped
    }
}

fn send(sockets: &Sockets, stats: &mut DataplaneStats, port: u16, to: SocketAddr, bytes: &[u8]) {
    if sockets.batching.get() && sockets.map.contains_key(&port) {
        sockets
            .outbox
            .borrow_mut()
            .entry(port)
            .or_default()
            .push(to, bytes);
        return;
    }
    match sockets.map.get(&port) {
        Some(s) => {
            if s.try_send_to(bytes, to).is_err() {
                stats.send_failures += 1;
            }
        }
        None => stats.send_failures += 1,
    }
}

/// The UDP port a remote endpoint last talked to (any bound port when unknown).
fn port_for(endpoint_port: &HashMap<SocketAddr, u16>, sockets: &Sockets, to: SocketAddr) -> u16 {
    endpoint_port
        .get(&to)
        .copied()
        .or_else(|| sockets.keys().next().copied())
        .unwrap_or(0)
}

impl Dataplane {
    pub fn new(wg: etherhub_wireguard::Server) -> Self {
        Dataplane {
            wg,
            hubs: BTreeMap::new(),
            peers: HashMap::new(),
            sessions: HashMap::new(),
            sockets: Sockets::default(),
            endpoint_port: HashMap::new(),
            buf: vec![0; BUF_SIZE],
            deliveries: Vec::new(),
            timer_out: Vec::new(),
            stats: DataplaneStats::default(),
            nat: crate::nat::NatRuntime::new(),
        }
    }

    pub fn hub(&self, name: &str) -> Option<&Hub> {
        self.hubs.get(&name.to_ascii_uppercase())
    }

    pub fn hub_mut(&mut self, name: &str) -> Option<&mut Hub> {
        self.hubs.get_mut(&name.to_ascii_uppercase())
    }

    /// Adds a hub, or updates its SecureNAT virtual host when it exists.
    pub fn ensure_hub(&mut self, name: &str, securenat: Option<VirtualHostConfig>, now: Instant) {
        let hub = self
            .hubs
            .entry(name.to_ascii_uppercase())
            .or_insert_with(|| Hub::new(name));
        hub.set_securenat(securenat, now);
    }

    /// Removes a hub and ends every WireGuard peer on it.
    pub fn remove_hub(&mut self, name: &str) {
        let key = name.to_ascii_uppercase();
        let gone: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, l)| l.hub == key)
            .map(|(p, _)| *p)
            .collect();
        for p in gone {
            self.unlink_peer(p);
        }
        self.hubs.remove(&key);
        self.nat.remove_hub(&key);
    }

    /// Like [`Dataplane::ensure_hub`], with SecureNAT's full host (NAT, DHCP, DNS) when
    /// `securenat` says it is enabled.
    pub fn ensure_hub_nat(
        &mut self,
        name: &str,
        securenat: Option<&etherhub_config::SecureNatSettings>,
        resolvers: &[std::net::Ipv4Addr],
        now: Instant,
    ) {
        let key = name.to_ascii_uppercase();
        let hub = self
            .hubs
            .entry(key.clone())
            .or_insert_with(|| Hub::new(name));
        self.nat.sync_hub(&key, hub, securenat, resolvers, now);
    }

    /// Results from SecureNAT's sockets: fed to the hosts, whose frames then go out to peers.
    pub fn on_nat_events(
        &mut self,
        events: impl Iterator<Item = (String, etherhub_securenat::IoEvent)>,
        now: Instant,
    ) {
        for (key, ev) in events {
            if let Some(host) = self.hubs.get_mut(&key).and_then(|h| crate::nat::host_of(h)) {
                host.handle_io(ev, now);
            }
        }
        self.step_hubs(
            now,
            |h| h.securenat_session().is_some(),
            |h, now, out| h.poll_securenat(now, out),
        );
    }

    /// Runs `step` on every hub `pick` selects, then carries out the SecureNAT socket work and
    /// sends the packets for WireGuard peers that the step produced.
    fn step_hubs(
        &mut self,
        now: Instant,
        pick: impl Fn(&Hub) -> bool,
        mut step: impl FnMut(&mut Hub, Instant, &mut Vec<Delivery>),
    ) {
        let keys: Vec<String> = self
            .hubs
            .iter()
            .filter(|(_, h)| pick(h))
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            if let Some(h) = self.hubs.get_mut(&key) {
                step(h, now, &mut self.deliveries);
                self.nat.dispatch(&key, h, now);
            }
            self.deliver(&key);
        }
    }

    /// The peer behind a session, if it is a WireGuard session.
    pub fn peer_of_session(&self, hub: &str, session: SessionId) -> Option<PeerId> {
        self.sessions
            .get(&(hub.to_ascii_uppercase(), session))
            .copied()
    }

    /// Sends the replies queued while a batch of datagrams was processed, after the virtual
    /// hosts have finished the frames they held back for the end of the batch.
    pub fn flush_sends(&mut self, now: Instant) {
        self.step_hubs(now, Hub::has_deferred, Hub::flush_hosts);
        self.stats.send_failures += self.sockets.flush();
    }

    /// One datagram that arrived on UDP `port`.
    pub fn on_datagram(&mut self, port: u16, src: SocketAddr, data: &[u8], now: Instant) {
        if !etherhub_wireguard::is_wireguard(data) {
            self.stats.unknown_datagrams += 1;
            return;
        }
        let Dataplane {
            wg,
            buf,
            sockets,
            stats,
            peers,
            ..
        } = self;
        let mut answered = true;
        match wg.handle_datagram(now, src, data, buf) {
            Action::Nothing => answered = false,
            Action::Send(to, bytes) => send(sockets, stats, port, to, bytes),
            Action::Packet(peer, packet) => {
                if let Some(link) = peers.get_mut(&peer) {
                    link.port = port;
                    if let Some(h) = self.hubs.get_mut(&link.hub) {
                        h.input_ip(link.session, packet, now, &mut self.deliveries);
                        self.nat.dispatch(&link.hub, h, now);
                    }
                    let hub = link.hub.clone();
                    self.deliver(&hub);
                }
            }
        }
        if answered {
            // pruned on the hub tick to the endpoints of live peers
            self.endpoint_port.insert(src, port);
        }
        self.process_events(port, now);
        self.send_queued();
    }

    /// Packets the WireGuard server held while a handshake was under way.
    fn send_queued(&mut self) {
        while let Action::Send(to, bytes) = self.wg.poll_queued(&mut self.buf) {
            let port = port_for(&self.endpoint_port, &self.sockets, to);
            send(&self.sockets, &mut self.stats, port, to, bytes);
        }
    }

    fn process_events(&mut self, port: u16, now: Instant) {
        while let Some(ev) = self.wg.poll_event() {
            match ev {
                Event::Connected {
                    peer,
                    hub,
                    user,
                    endpoint,
                } => {
                    if self.peers.contains_key(&peer) {
                        continue;
                    }
                    let key = hub.to_ascii_uppercase();
                    let Some(h) = self.hubs.get_mut(&key) else {
                        tracing::warn!(
                            hub,
                            user,
                            "WireGuard key points at a hub that does not exist"
                        );
                        continue;
                    };
                    let session = h.add_l3_session(&user, "WIREGUARD", Some(endpoint), now);
                    tracing::info!(
                        hub,
                        user,
                        %endpoint,
                        session = h.session(session).map(|s| s.name).unwrap_or_default(),
                        "WireGuard session started"
                    );
                    self.sessions.insert((key.clone(), session), peer);
                    self.peers.insert(
                        peer,
                        PeerLink {
                            hub: key,
                            session,
                            port,
                        },
                    );
                }
                Event::Disconnected { peer } => self.unlink_peer(peer),
            }
        }
    }

    fn unlink_peer(&mut self, peer: PeerId) {
        if let Some(link) = self.peers.remove(&peer) {
            self.sessions.remove(&(link.hub.clone(), link.session));
            if let Some(h) = self.hubs.get_mut(&link.hub) {
                if let Some(s) = h.session(link.session) {
                    tracing::info!(session = s.name, "WireGuard session ended");
                }
                h.remove_session(link.session);
            }
        }
    }

    /// Ends a WireGuard session by its hub session (SessionDisconnect). The key stays registered.
    pub fn disconnect_session(&mut self, hub: &str, session: SessionId) -> bool {
        match self.peer_of_session(hub, session) {
            Some(peer) => {
                self.wg.disconnect(peer);
                self.unlink_peer(peer);
                true
            }
            None => false,
        }
    }

    /// Removes a client key; its live session ends.
    pub fn remove_key(&mut self, key: &etherhub_wireguard::Key) {
        if let Some(peer) = self.wg.remove_key(key) {
            self.unlink_peer(peer);
        }
        while let Some(ev) = self.wg.poll_event() {
            if let Event::Disconnected { peer } = ev {
                self.unlink_peer(peer);
            }
        }
    }

    /// Sends what hub `hub` (upper case key) produced for its WireGuard sessions.
    fn deliver(&mut self, hub: &str) {
        let Dataplane {
            wg,
            buf,
            sockets,
            stats,
            peers,
            sessions,
            deliveries,
            ..
        } = self;
        for d in deliveries.drain(..) {
            let Some(peer) = sessions.get(&(hub.to_string(), d.session)).copied() else {
                stats.orphan_deliveries += 1;
                continue;
            };
            let port = peers.get(&peer).map(|l| l.port).unwrap_or(0);
            if let Action::Send(to, bytes) = wg.encapsulate(peer, &d.packet, buf) {
                send(sockets, stats, port, to, bytes);
            }
        }
    }

    /// Timers: WireGuard keepalives and rekeys (every call), hub ageing (when `hub_tick`).
    pub fn on_timer(&mut self, now: Instant, hub_tick: bool) {
        self.wg.handle_timers(now, &mut self.timer_out);
        for (to, bytes) in std::mem::take(&mut self.timer_out) {
            let port = port_for(&self.endpoint_port, &self.sockets, to);
            send(&self.sockets, &mut self.stats, port, to, &bytes);
        }
        self.send_queued();
        while let Some(ev) = self.wg.poll_event() {
            if let Event::Disconnected { peer } = ev {
                self.unlink_peer(peer);
            }
        }
        if hub_tick {
            self.step_hubs(
                now,
                |_| true,
                |h, now, out| {
                    h.tick(now, out);
                    crate::nat::refresh_in_use(h);
                },
            );
            // roaming: sessions show the address the peer talks from now
            let mut live = std::collections::HashSet::new();
            for (peer, link) in &self.peers {
                if let (Some(info), Some(h)) = (self.wg.peer(*peer), self.hubs.get_mut(&link.hub)) {
                    h.set_client_addr(link.session, info.endpoint);
                    live.insert(info.endpoint);
                }
            }
            self.endpoint_port.retain(|a, _| live.contains(a));
        }
    }
}
