//! [`Engine`]: the one place packets, admin changes and time meet.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use etherhub_hub::{Hub, SessionId};
use etherhub_securenat::{IoEvent, NatHost};
use etherhub_wireguard::{DataPath, Key, PeerId};

use crate::accounts::fold;
use crate::change::{Change, HubSpec};
use crate::core::{
    same_host, Core, EngineEvent, EngineStats, HubId, NatRef, Outside, HUB_TICK, NAT_TIMER_MIN,
};
use crate::direct::{Direct, DirectCounts, DirectGeneration};
use crate::fault::{self, Component, Containment, Fault};
use crate::seam::{
    AddressRule, CloseReason, ConnId, Credential, Live, Medium, Protocol, ProtocolId,
    SessionDetails, StreamOutput, Transmit, TunnelId,
};
use crate::wireguard::{Outbox, WireGuard};

/// What the admin sees of a session beyond the hub's own row: its protocol and tunnel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelView {
    pub tunnel: TunnelId,
    pub medium: Medium,
    pub details: SessionDetails,
    pub label: String,
    /// The inner IPv4 address the tunnel is held to, once it has one.
    pub address: Option<Ipv4Addr>,
    /// Packets dropped for their source address.
    pub spoofed_dropped: u64,
    /// A stream tunnel's connections now (see [`Protocol::live`]).
    pub live: Option<Live>,
}

/// The data plane's health, for ServerStatusGet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Health {
    /// When a packet last crossed a hub.
    pub last_packet: Option<Instant>,
    /// Panics contained since the start.
    pub faults: u64,
    pub last_fault: Option<Fault>,
}

/// Why [`Engine::disconnect`] did nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DisconnectError {
    NoSuchHub,
    NoSuchSession,
    /// The session is the hub's SecureNAT host; SecureNatDisable ends it.
    NotATunnel,
}

/// Every protocol core, in the order they are asked to claim a datagram. WireGuard is always
/// slot 0.
struct Protocols {
    wireguard: WireGuard,
    others: Vec<Box<dyn Protocol>>,
    /// The UDP ports of the protocols that have one of their own ([`Protocol::udp_ports`]),
    /// read once at registration.
    own_ports: Vec<(u16, ProtocolId)>,
}

impl Protocols {
    fn get(&mut self, id: ProtocolId) -> Option<&mut (dyn Protocol + 'static)> {
        match id.0 {
            0 => Some(&mut self.wireguard),
            n => self.others.get_mut(usize::from(n) - 1).map(|b| b.as_mut()),
        }
    }

    fn get_ref(&self, id: ProtocolId) -> Option<&(dyn Protocol + 'static)> {
        match id.0 {
            0 => Some(&self.wireguard),
            n => self.others.get(usize::from(n) - 1).map(|b| b.as_ref()),
        }
    }

    fn count(&self) -> u8 {
        1 + self.others.len() as u8
    }
}

/// The sans-IO data plane: hubs, their SecureNAT hosts, the protocol cores and the links
/// between tunnels and hub sessions. No sockets, no tasks, no clock: every input carries `now`.
///
/// Inputs: [`Engine::handle_datagram`] for each datagram on a UDP listener, then
/// [`Engine::end_of_batch`] after each batch of them; [`Engine::handle_outside`] for what
/// SecureNAT's sockets did, then `end_of_batch`; stream connections through
/// [`Engine::open_stream`], [`Engine::handle_stream`] (then `end_of_batch` too) and
/// [`Engine::stream_closed`];
/// [`Engine::handle_timeout`] at [`Engine::poll_timeout`]; admin changes with
/// [`Engine::apply`].
///
/// After any input, drain the outputs: [`Engine::poll_transmit`] (datagrams, GSO runs),
/// [`Engine::poll_stream`], [`Engine::poll_outside`] (socket work for SecureNAT),
/// [`Engine::poll_event`] (for logs and for the config), and ask [`Engine::poll_timeout`] again.
///
/// A panic while an input is handled is contained to the tunnel or the hub's SecureNAT host it
/// happened in ([`Health`]); nothing is left half-locked.
pub struct Engine {
    protocols: Protocols,
    core: Core,
}

impl Engine {
    /// An engine with no hubs, no accounts and WireGuard off.
    pub fn new(now: Instant) -> Engine {
        Engine {
            protocols: Protocols {
                wireguard: WireGuard::default(),
                others: Vec::new(),
                own_ports: Vec::new(),
            },
            core: Core::new(now),
        }
    }

    /// Registers another protocol core; its tunnels get this slot.
    pub fn register(&mut self, protocol: Box<dyn Protocol>) -> ProtocolId {
        let ports = protocol.udp_ports();
        self.protocols.others.push(protocol);
        let id = ProtocolId(self.protocols.count() - 1);
        for &port in ports {
            self.protocols.own_ports.push((port, id));
        }
        id
    }

    /// Whether UDP GSO runs are formed (the runtime turns it off when the kernel refuses them).
    pub fn set_gso(&mut self, gso: bool) {
        self.core.transmits.set_gso(gso);
    }

    // ---- inputs ------------------------------------------------------------------------------

    /// One datagram received on the UDP listener at `local`.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        from: SocketAddr,
        bytes: &[u8],
    ) {
        self.guarded(now, "datagram", |e| {
            let n = e.protocols.count();
            // a port of a protocol's own first, then the shared ports' classification by shape
            let own_ports = &e.protocols.own_ports;
            let own = own_ports
                .iter()
                .find(|(port, _)| *port == local.port())
                .map(|(_, id)| *id);
            let claimed = own.or_else(|| {
                (0..n).map(ProtocolId).find(|id| {
                    !own_ports.iter().any(|(_, i)| i == id)
                        && e.protocols
                            .get_ref(*id)
                            .is_some_and(|p| p.claims_datagram(bytes))
                })
            });
            let Some(id) = claimed else {
                e.core.stats.unknown_datagrams += 1;
                return;
            };
            e.core.current = id;
            if let Some(p) = e.protocols.get(id) {
                p.handle_datagram(now, local, from, bytes, &mut e.core);
            }
        });
    }

    /// Ends a batch of inputs: SecureNAT hosts finish the segments they held for it and take the
    /// outside results that came in, and what they answer goes out.
    pub fn end_of_batch(&mut self, now: Instant) {
        self.guarded(now, "end of batch", |e| {
            let ids: Vec<HubId> = e
                .core
                .hubs
                .values()
                .filter(|s| s.nat_dirty || s.hub.has_deferred())
                .map(|s| s.id)
                .collect();
            for id in ids {
                e.core.with_hub(id, |slot, now, out| {
                    if std::mem::take(&mut slot.nat_dirty) {
                        slot.hub.poll_securenat(now, out);
                    }
                    slot.hub.flush_hosts(now, out);
                });
            }
        });
    }

    /// What one of SecureNAT's sockets did. Results for a host that is gone are dropped.
    pub fn handle_outside(&mut self, now: Instant, nat: NatRef, event: IoEvent) {
        self.guarded(now, "outside", |e| {
            e.core.active = Some(Component::Hub(nat.hub.0));
            let Some(slot) = e.core.hubs.get_mut(&nat.hub) else {
                return;
            };
            if slot.nat_generation != nat.generation {
                return;
            }
            if let Some(host) = slot.hub.securenat_host_mut() {
                host.handle_io(event, now);
                slot.nat_dirty = true;
            }
            e.core.active = None;
        });
    }

    /// A TCP connection the runtime decided is `protocol`'s.
    pub fn open_stream(
        &mut self,
        now: Instant,
        protocol: ProtocolId,
        conn: ConnId,
        peer: SocketAddr,
        bytes: &[u8],
    ) {
        self.guarded(now, "stream", |e| {
            e.core.current = protocol;
            match e.protocols.get(protocol) {
                Some(p) => p.open_stream(now, conn, peer, bytes, &mut e.core),
                None => e.core.streams.push_back(StreamOutput::Close { conn }),
            }
        });
    }

    /// More bytes of a stream connection of `protocol`.
    pub fn handle_stream(
        &mut self,
        now: Instant,
        protocol: ProtocolId,
        conn: ConnId,
        bytes: &[u8],
    ) {
        self.guarded(now, "stream", |e| {
            e.core.current = protocol;
            if let Some(p) = e.protocols.get(protocol) {
                p.handle_stream(now, conn, bytes, &mut e.core);
            }
        });
    }

    /// The runtime's side of a stream connection closed.
    pub fn stream_closed(&mut self, now: Instant, protocol: ProtocolId, conn: ConnId) {
        self.guarded(now, "stream", |e| {
            e.core.current = protocol;
            if let Some(p) = e.protocols.get(protocol) {
                p.stream_closed(now, conn, &mut e.core);
            }
        });
    }

    /// Timers: protocols', the hubs' tick, SecureNAT's retransmissions.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.guarded(now, "timeout", |e| {
            for id in (0..e.protocols.count()).map(ProtocolId) {
                let due = e
                    .protocols
                    .get(id)
                    .and_then(|p| p.poll_timeout())
                    .is_some_and(|t| t <= now);
                if due {
                    e.core.current = id;
                    if let Some(p) = e.protocols.get(id) {
                        p.handle_timeout(now, &mut e.core);
                    }
                }
            }
            let tick = e.core.next_hub_tick.is_some_and(|t| t <= now);
            if tick {
                // tables age, sessions expire: the direct table is built anew
                e.core.direct_changed();
                e.core.next_hub_tick = Some(now + HUB_TICK);
                e.core.end_expired();
                e.core.renew_leases();
            }
            let ids: Vec<HubId> = e.core.hubs.keys().copied().collect();
            for id in ids {
                let nat_due = e.core.hubs.get_mut(&id).is_some_and(|s| nat_due(s, now));
                let shaped_due = e
                    .core
                    .hubs
                    .get(&id)
                    .and_then(|s| s.hub.next_shaped(now))
                    .is_some_and(|t| t <= now);
                if shaped_due {
                    e.core
                        .with_hub(id, |slot, now, out| slot.hub.poll_shaped(now, out));
                }
                if !tick && !nat_due {
                    continue;
                }
                e.core.with_hub(id, |slot, now, out| {
                    if nat_due {
                        slot.nat_timer = Some(now);
                        slot.hub.poll_securenat(now, out);
                    }
                    if tick {
                        slot.hub.tick(now, out);
                        refresh_in_use(&mut slot.hub);
                    }
                });
            }
        });
    }

    /// The wall clock, for users' expiry: Unix milliseconds at `now`. The runtime says it at
    /// start and now and then (the engine reads no clock of its own); until it has, nobody
    /// expires.
    /// The runtime locked `ip` out after failed logins, until `until`: logins the engine's cores
    /// check themselves (OpenVPN's) are refused from it meanwhile.
    pub fn lock_out(&mut self, ip: std::net::IpAddr, until: Instant) {
        self.core.locked.insert(ip, until);
    }

    pub fn set_unix_time(&mut self, now: Instant, unix_ms: u64) {
        self.core.see(now);
        self.core.wall = Some((now, unix_ms));
        for slot in self.core.hubs.values_mut() {
            slot.hub.set_wall_clock(now, unix_ms);
        }
    }

    /// Applies one admin change (already saved by the runtime).
    pub fn apply(&mut self, now: Instant, change: Change) {
        self.core.direct_changed();
        self.guarded(now, "change", |e| e.apply_change(now, change));
    }

    /// Ends a session (SessionDisconnect). The key or user behind it stays, so the client may
    /// connect again.
    pub fn disconnect(
        &mut self,
        now: Instant,
        hub: &str,
        session: &str,
    ) -> Result<(), DisconnectError> {
        let slot = self.core.slot(hub).ok_or(DisconnectError::NoSuchHub)?;
        let id = slot
            .hub
            .session_by_name(session)
            .ok_or(DisconnectError::NoSuchSession)?;
        let tunnel = *slot.tunnels.get(&id).ok_or(DisconnectError::NotATunnel)?;
        self.guarded(now, "disconnect", |e| {
            e.core
                .end_tunnel(tunnel, CloseReason::Admin("SessionDisconnect".into()))
        });
        Ok(())
    }

    // ---- outputs ------------------------------------------------------------------------------

    /// The next datagram (or GSO run) to send. Packets to WireGuard peers still waiting in
    /// plaintext ([`Engine::defer_wireguard_sealing`]) are encrypted first.
    pub fn poll_transmit(&mut self) -> Option<Transmit<'_>> {
        self.seal_waiting();
        self.core.transmits.poll()
    }

    /// Every datagram and GSO run to send, taken at once (as if polled, sealing first as
    /// [`Engine::poll_transmit`] does): for a runtime that hands them to the kernel from the
    /// engine's buffer without copying them.
    pub fn take_transmits(&mut self) -> impl Iterator<Item = Transmit<'_>> + Clone {
        self.seal_waiting();
        self.core.transmits.take_all()
    }

    /// Packets to WireGuard peers still in plaintext, encrypted into the engine's queue; their
    /// buffers back to the hubs.
    fn seal_waiting(&mut self) {
        let wireguard = &mut self.protocols.wireguard;
        wireguard.seal_pending(&mut self.core.transmits);
        self.core.recycle(wireguard.sealed_buffers());
    }

    // ---- workers (see `crate::workers`) ------------------------------------------------------

    /// With `true`, packets to WireGuard peers wait in plaintext until a worker takes them
    /// ([`Engine::take_wireguard_outbox`]) to encrypt outside the engine, or until
    /// [`Engine::poll_transmit`].
    pub fn defer_wireguard_sealing(&mut self, on: bool) {
        self.protocols
            .wireguard
            .set_deferred(on, &mut self.core.transmits);
    }

    /// The packets to WireGuard peers waiting in plaintext, after those `into` still holds
    /// (and after the buffers of what `into` sealed went back: [`Engine::reuse_sealed`]).
    pub fn take_wireguard_outbox(&mut self, into: &mut Outbox) {
        self.reuse_sealed(into);
        self.protocols.wireguard.take_outbox(into);
    }

    /// The buffers of the packets `from` sealed go back to the hubs, to build the next packets
    /// in. A worker hands its own in before its batch: the hubs take the buffers given last
    /// first, so the batch's packets are built in memory its own core has just used.
    pub fn reuse_sealed(&mut self, from: &mut Outbox) {
        self.core.recycle(&mut from.spent);
    }

    /// A handle on the WireGuard server's peers for opening and sealing data messages of
    /// established sessions outside the engine, while WireGuard is on.
    pub fn wireguard_data_path(&self) -> Option<DataPath> {
        self.protocols.wireguard.data_path()
    }

    /// A WireGuard data message `path` opened outside the engine, delivered as if the engine
    /// had opened it (follow with [`Engine::end_of_batch`] as for datagrams). False, and
    /// nothing done, when `path` is of a server since replaced or the peer has ended since.
    pub fn wireguard_opened(
        &mut self,
        now: Instant,
        path: &DataPath,
        (local, from): (SocketAddr, SocketAddr),
        peer: PeerId,
        packet: &[u8],
    ) -> bool {
        let mut done = false;
        self.guarded(now, "datagram", |e| {
            e.core.current = ProtocolId(0);
            done = (e.protocols.wireguard).opened(path, local, from, peer, packet, &mut e.core);
        });
        done
    }

    /// The generation of the direct table, for a worker to tell without the lock whether the
    /// table it has is still current (see [`crate::direct`]).
    pub fn direct_generation(&self) -> DirectGeneration {
        self.core.direct_generation.clone()
    }

    /// The direct table as of now (built if anything changed since the last one): the
    /// WireGuard peers whose unicast IPv4 to each other a worker may carry itself. `None`
    /// while WireGuard is off.
    pub fn direct_table(&mut self, now: Instant) -> Option<Arc<Direct>> {
        let path = self.protocols.wireguard.data_path()?;
        if let Some(d) = &self.core.direct {
            if d.is_current(self.core.direct_generation.current(), &path) {
                return Some(d.clone());
            }
        }
        let mut table = Direct::new(self.core.direct_generation.current(), path);
        let wireguard = &self.protocols.wireguard;
        let mut by_hub: HashMap<HubId, HashMap<SessionId, Ipv4Addr>> = HashMap::new();
        for (tunnel, link) in &self.core.links {
            let AddressRule::Fixed(ip) = link.rule else {
                continue;
            };
            if tunnel.protocol != ProtocolId(0) || link.medium != Medium::Ip {
                continue;
            }
            let direct = by_hub.entry(link.hub).or_insert_with(|| {
                (self.core.hubs.get(&link.hub))
                    .map(|slot| slot.hub.direct_sessions(now).into_iter().collect())
                    .unwrap_or_default()
            });
            let peer = PeerId(tunnel.index);
            match (direct.get(&link.session), wireguard.place(peer)) {
                (Some(&own), Some(place)) if own == ip => {
                    table.add(peer, (link.hub, link.session, ip), place)
                }
                _ => {}
            }
        }
        let table = Arc::new(table);
        self.core.direct = Some(table.clone());
        Some(table)
    }

    /// What a worker forwarded through its direct table, counted by the hubs as if they had
    /// switched it (traffic, the sessions' last communication, the senders' table entries).
    pub fn count_direct(&mut self, now: Instant, counts: &mut DirectCounts) {
        if counts.packets() == 0 {
            return;
        }
        self.core.see(now);
        self.core.last_packet = Some(self.core.now);
        for (hub, from, to, packets, bytes) in counts.drain() {
            self.core.stats.direct_forwarded += packets;
            if let Some(slot) = self.core.hubs.get_mut(&hub) {
                slot.hub.count_direct(from, to, packets, bytes, now);
            }
        }
    }

    /// A panic a worker caught outside the engine, recorded as the engine's own are.
    pub fn record_fault(&mut self, now: Instant, input: &'static str, message: String) {
        self.core.active = None;
        self.contain(now, input, message);
    }

    /// The next write or close for a stream connection.
    pub fn poll_stream(&mut self) -> Option<StreamOutput> {
        self.core.streams.pop_front()
    }

    /// The next socket request for SecureNAT.
    pub fn poll_outside(&mut self) -> Option<Outside> {
        self.core.outside.pop_front()
    }

    /// The next event for logs and the config.
    pub fn poll_event(&mut self) -> Option<EngineEvent> {
        self.core.events.pop_front()
    }

    /// When [`Engine::handle_timeout`] is next due.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let now = self.core.now;
        let mut next = self.core.next_hub_tick;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        for id in (0..self.protocols.count()).map(ProtocolId) {
            consider(self.protocols.get(id).and_then(|p| p.poll_timeout()));
        }
        for slot in self.core.hubs.values_mut() {
            consider(slot.hub.next_shaped(now));
            let Some(host) = slot.hub.securenat_host_mut() else {
                continue;
            };
            if let Some(d) = host.poll_delay(now) {
                let earliest = slot.nat_timer.map_or(now, |t| t + NAT_TIMER_MIN);
                consider(Some((now + d).max(earliest)));
            }
        }
        next
    }

    // ---- what the admin reads ------------------------------------------------------------------

    /// A hub's switch and SecureNAT host, read-only.
    pub fn hub(&self, name: &str) -> Option<&Hub<NatHost>> {
        self.core.slot(name).map(|s| &s.hub)
    }

    /// Names of the running hubs, in creation order.
    pub fn hub_names(&self) -> Vec<String> {
        self.core
            .hubs
            .values()
            .map(|s| s.spec.name.clone())
            .collect()
    }

    /// The tunnel behind a session of `hub`, if it is one.
    pub fn tunnel_view(&self, hub: &str, session: SessionId) -> Option<TunnelView> {
        let slot = self.core.slot(hub)?;
        let tunnel = *slot.tunnels.get(&session)?;
        let link = self.core.links.get(&tunnel)?;
        Some(TunnelView {
            tunnel,
            medium: link.medium,
            details: link.details.clone(),
            label: link.label.clone(),
            address: match link.rule {
                AddressRule::Fixed(a) => Some(a),
                _ => None,
            },
            spoofed_dropped: link.spoofed,
            live: self
                .protocols
                .get_ref(tunnel.protocol)
                .and_then(|p| p.live(tunnel)),
        })
    }

    /// The hub and session of a WireGuard key's live peer.
    pub fn wireguard_session(&self, key: &Key) -> Option<(String, SessionId, TunnelView)> {
        let index = self.protocols.wireguard.tunnel_of_key(key)?;
        let tunnel = TunnelId {
            protocol: ProtocolId(0),
            index,
        };
        let link = self.core.links.get(&tunnel)?;
        let hub = self.core.hub_name(link.hub);
        let view = self.tunnel_view(&hub, link.session)?;
        Some((hub, link.session, view))
    }

    /// Every registered core's counters: (protocol, counter, value).
    pub fn counters(&self) -> Vec<(&'static str, &'static str, u64)> {
        (0..self.protocols.count())
            .filter_map(|i| self.protocols.get_ref(ProtocolId(i)))
            .flat_map(|p| {
                let name = p.name();
                p.counters().into_iter().map(move |(c, v)| (name, c, v))
            })
            .collect()
    }

    /// The WireGuard core (peers, counters).
    pub fn wireguard(&self) -> &WireGuard {
        &self.protocols.wireguard
    }

    pub fn stats(&self) -> EngineStats {
        self.core.stats
    }

    pub fn health(&self) -> Health {
        Health {
            last_packet: self.core.last_packet,
            faults: self.core.stats.faults,
            last_fault: self.core.last_fault.clone(),
        }
    }

    /// Tests: TCP segments to `port` make the hub they enter panic.
    #[cfg(test)]
    pub(crate) fn inject_fault_on_port(&mut self, port: u16) {
        self.core.fault_on_port = Some(port);
    }

    // ---- inside ---------------------------------------------------------------------------------

    /// Runs one input with panics contained, then hands the protocols what the hubs produced and
    /// the tunnels the engine ended.
    fn guarded(&mut self, now: Instant, input: &'static str, f: impl FnOnce(&mut Engine)) {
        self.core.see(now);
        let _inside = Containment::enter();
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| {
            f(self);
            self.settle(now);
        })) {
            self.contain(now, input, fault::message(payload.as_ref()));
            // what the fault left half-done is dropped with it; the rest still goes out
            let _ = catch_unwind(AssertUnwindSafe(|| self.settle(now)));
        }
    }

    /// Delivers hub output to tunnels and tells protocols of tunnels the engine ended, until
    /// neither is left.
    fn settle(&mut self, now: Instant) {
        loop {
            if !self.core.to_close.is_empty() {
                for t in std::mem::take(&mut self.core.to_close) {
                    self.core.current = t.protocol;
                    self.core.active = Some(Component::Tunnel(t));
                    if let Some(p) = self.protocols.get(t.protocol) {
                        p.close(now, t, &mut self.core);
                    }
                }
                self.core.active = None;
                continue;
            }
            if self.core.to_send.is_empty() {
                break;
            }
            let mut batch = std::mem::take(&mut self.core.to_send);
            for (t, packet) in batch.drain(..) {
                self.core.current = t.protocol;
                self.core.active = Some(Component::Tunnel(t));
                if let Some(p) = self.protocols.get(t.protocol) {
                    p.send(now, t, packet, &mut self.core);
                }
            }
            self.core.active = None;
            // keep the allocation for the next round
            if self.core.to_send.is_empty() {
                self.core.to_send = batch;
            }
        }
    }

    /// After a panic: resets what it happened in and records it.
    fn contain(&mut self, now: Instant, input: &'static str, message: String) {
        self.core.stats.faults += 1;
        let active = self.core.active.take();
        self.core.to_send.clear();
        let (hub, session) = match active {
            Some(Component::Tunnel(t)) => {
                let place = self.core.links.get(&t).map(|l| (l.hub, l.session));
                let named =
                    place.map(|(h, s)| (self.core.hub_name(h), self.core.session_name(h, s)));
                self.core.end_tunnel(t, CloseReason::Fault);
                named.map_or((None, None), |(h, s)| (Some(h), Some(s)))
            }
            Some(Component::Hub(id)) => match self.core.hubs.get_mut(&HubId(id)) {
                Some(slot) => {
                    let session = slot
                        .hub
                        .securenat_session()
                        .and_then(|s| slot.hub.session(s))
                        .map(|s| s.name);
                    let cfg = slot.spec.securenat.clone();
                    slot.install_nat(cfg.as_ref(), now, &mut self.core.outside);
                    (Some(slot.spec.name.clone()), session)
                }
                None => (None, None),
            },
            None => (None, None),
        };
        let f = Fault {
            at: now,
            input,
            hub,
            session,
            message,
        };
        self.core.last_fault = Some(f.clone());
        self.core.events.push_back(EngineEvent::Fault(f));
    }

    fn apply_change(&mut self, now: Instant, change: Change) {
        let core = &mut self.core;
        match change {
            Change::Hub(spec) => {
                core.accounts.set_hub(&spec.name, spec.online);
                match core.hub_id(&spec.name) {
                    None => core.add_hub(spec, now),
                    Some(id) => self.update_hub(id, spec, now),
                }
            }
            Change::ProtoOptions { protocol, options } => {
                for id in (0..self.protocols.count()).map(ProtocolId) {
                    if let Some(p) = self.protocols.get(id) {
                        if p.name().eq_ignore_ascii_case(&protocol) {
                            self.core.current = id;
                            for (n, v) in &options {
                                p.set_option(now, n, v, &mut self.core);
                            }
                        }
                    }
                }
            }
            Change::AccessUserLists { hub, lists } => {
                if let Some(slot) = core.hub_id(&hub).and_then(|id| core.hubs.get_mut(&id)) {
                    slot.hub.set_access_user_lists(lists);
                }
            }
            Change::HubRemoved(name) => {
                if let Some(id) = core.hub_id(&name) {
                    core.end_tunnels_where(|l| l.hub == id, "Virtual Hub deleted");
                }
                core.accounts.remove_hub(&name);
                core.remove_hub(&name);
            }
            Change::User(spec) => {
                let old = core.accounts.set_user(spec.clone());
                core.apply_user_policy(&spec.hub, &spec.name);
                let changed = old.is_some_and(|old| old.auth != spec.auth);
                if changed {
                    let (hub, name) = (core.hub_id(&spec.hub), fold(&spec.name));
                    core.end_tunnels_where(
                        |l| {
                            Some(l.hub) == hub
                                && fold(&l.user) == name
                                && l.credential == Credential::Password
                        },
                        "password changed",
                    );
                }
            }
            Change::UserRemoved { hub, name } => {
                let (id, folded) = (core.hub_id(&hub), fold(&name));
                core.end_tunnels_where(
                    |l| Some(l.hub) == id && fold(&l.user) == folded,
                    "user deleted",
                );
                core.accounts.remove_user(&hub, &name);
            }
            Change::WgKey(spec) => {
                let key = spec.key;
                let address = spec.address;
                let old = core.accounts.set_key(spec.clone());
                let moved = old.is_some_and(|o| {
                    fold(&o.hub) != fold(&spec.hub)
                        || fold(&o.user) != fold(&spec.user)
                        || o.psk != spec.psk
                });
                if moved {
                    core.end_tunnels_where(
                        |l| l.credential == Credential::WireGuardKey(key),
                        "WireGuard key changed",
                    );
                } else {
                    for l in core.links.values_mut() {
                        if l.credential == Credential::WireGuardKey(key) {
                            l.rule = address.map_or(AddressRule::LearnFirst, AddressRule::Fixed);
                        }
                    }
                }
            }
            Change::WgKeyRemoved(key) => {
                core.accounts.remove_key(&key);
                core.end_tunnels_where(
                    |l| l.credential == Credential::WireGuardKey(key),
                    "WireGuard key deleted",
                );
            }
            Change::WireGuard(spec) => {
                let wg = &mut self.protocols.wireguard;
                let restart = match &spec {
                    None => wg.is_enabled(),
                    Some(s) => {
                        wg.public_key() != Some(etherhub_wireguard::public_key_of(&s.private_key))
                    }
                };
                if restart {
                    core.end_tunnels_where(
                        |l| matches!(l.credential, Credential::WireGuardKey(_)),
                        "WireGuard keys changed",
                    );
                    // the old server's peers go with it; the protocol need not be told
                    core.to_close.retain(|t| t.protocol != ProtocolId(0));
                }
                match spec {
                    None => wg.disable(),
                    Some(s) => {
                        wg.configure(s.private_key, s.psk);
                    }
                }
            }
        }
    }

    fn update_hub(&mut self, id: HubId, spec: HubSpec, now: Instant) {
        let core = &mut self.core;
        if !spec.online {
            core.end_tunnels_where(|l| l.hub == id, "Virtual Hub offline");
        }
        let Some(slot) = core.hubs.get_mut(&id) else {
            return;
        };
        let nat_same = match (&slot.spec.securenat, &spec.securenat) {
            (None, None) => true,
            (Some(a), Some(b)) => same_host(a, b),
            _ => false,
        };
        if slot.spec.access != spec.access {
            slot.hub.set_access_list(&spec.access);
        }
        slot.spec = spec;
        if nat_same {
            if let (Some(host), Some(c)) = (slot.hub.securenat_host_mut(), &slot.spec.securenat) {
                host.set_limits(c.tcp_timeout, c.udp_timeout, c.max_sessions);
            }
            slot.apply_static_network();
        } else {
            let cfg = slot.spec.securenat.clone();
            slot.install_nat(cfg.as_ref(), now, &mut core.outside);
        }
    }
}

/// Whether a hub's SecureNAT host should run on its timer now.
fn nat_due(slot: &mut crate::core::HubSlot, now: Instant) -> bool {
    if slot.nat_timer.is_some_and(|t| now < t + NAT_TIMER_MIN) {
        return false;
    }
    let Some(host) = slot.hub.securenat_host_mut() else {
        return false;
    };
    host.poll_delay(now).is_some_and(|d| d.is_zero())
}

/// Tells the hub's DHCP pool which addresses other stations use (the hub's IP table).
fn refresh_in_use(hub: &mut Hub<NatHost>) {
    let own = hub.securenat_session();
    let used: Vec<Ipv4Addr> = hub
        .ip_table()
        .into_iter()
        .filter(|e| Some(e.session) != own)
        .filter_map(|e| match e.ip {
            std::net::IpAddr::V4(v4) => Some(v4),
            _ => None,
        })
        .collect();
    if let Some(h) = hub.securenat_host_mut() {
        h.set_in_use(used);
    }
}
