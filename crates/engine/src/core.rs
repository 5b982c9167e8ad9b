//! Everything the engine holds except the protocol cores: accounts, hubs with their SecureNAT
//! hosts, the links between tunnels and hub sessions, and the queues of output. It is the
//! [`Io`] the cores are driven with.

use std::collections::{BTreeMap, HashMap, VecDeque};

use etherhub_hash::IdMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use etherhub_config::Policy;
use etherhub_hub::{
    Delivery, Filters, Hub, PortPolicy, SessionId, StaticNetwork, VirtualHostConfig,
};
use etherhub_securenat::{IoRequest, NatConfig, NatHost};
use etherhub_wireguard::Key;

use crate::accounts::{fold, Accounts};
use crate::change::HubSpec;
use crate::direct::{Direct, DirectGeneration};
use crate::fault::{Component, Fault};
use crate::seam::{
    AddressRule, AuthError, AuthRequest, CloseReason, ConnId, Credential, Grant, Io, KeyGrant,
    Medium, Opened, ProtocolId, SessionDetails, StreamOutput, TunnelId, WriteDatagram,
};
use crate::transmit::TransmitQueue;

/// A hub's number, never reused within the engine's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HubId(pub u32);

/// One SecureNAT host's outside sockets: the hub, and which host of it (a host rebuilt after a
/// settings change or a fault gets a new generation; results for an old one are dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NatRef {
    pub hub: HubId,
    pub generation: u32,
}

/// Socket work for the runtime on SecureNAT's behalf.
#[derive(Debug, PartialEq, Eq)]
pub enum Outside {
    /// Carry out this request; answer with [`crate::Engine::handle_outside`].
    Io { nat: NatRef, request: IoRequest },
    /// This host is gone: close every socket opened for it.
    Reset { nat: NatRef },
}

/// What happened, for the runtime to log or to save.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineEvent {
    SessionOpened {
        hub: String,
        session: String,
        user: String,
        client: SocketAddr,
        label: String,
    },
    SessionClosed {
        hub: String,
        session: String,
        reason: CloseReason,
    },
    /// A tunnel came up for a hub that cannot take it.
    Refused {
        hub: String,
        user: String,
        label: String,
        reason: String,
    },
    /// A WireGuard key without an address took its client's first source address; save it
    /// with the key.
    AddressLearned {
        key: Key,
        hub: String,
        session: String,
        address: Ipv4Addr,
    },
    /// Packets from a tunnel were dropped for their source address (at most one event a
    /// second per tunnel; `dropped` counts the drops since the last one).
    SourceRefused {
        hub: String,
        session: String,
        label: String,
        sent_from: Ipv4Addr,
        owns: Option<Ipv4Addr>,
        dropped: u64,
    },
    /// A panic on the packet path was contained.
    Fault(Fault),
    /// A login's password check failed (count it against the client's address).
    LoginFailed {
        client: SocketAddr,
        hub: String,
        user: String,
    },
    /// A protocol refused a peer before any login (IKE's pre-shared key), and why.
    PeerRefused {
        client: SocketAddr,
        protocol: &'static str,
        reason: String,
    },
}

/// Counters of the engine's own decisions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Datagrams no protocol claimed.
    pub unknown_datagrams: u64,
    /// IP packets dropped because their source was not the tunnel's address.
    pub spoofed_dropped: u64,
    /// Packets from tunnels the engine has no session for.
    pub orphan_packets: u64,
    /// Tunnels refused (no such hub, hub offline).
    pub refused_tunnels: u64,
    /// Panics contained on the packet path.
    pub faults: u64,
    /// Packets from one WireGuard client to another that workers forwarded through the direct
    /// table, without the engine's lock (counted when they hand their counts in).
    pub direct_forwarded: u64,
}

/// What the hub enforces of a policy on a session's port; `monitor`: the client asked for
/// monitoring mode (granted only under MonitorPort).
pub(crate) fn port_policy(p: &Policy, monitor: bool) -> PortPolicy {
    let mut filters = 0;
    for (item, flag) in [
        ("FilterIPv4", Filters::IPV4),
        ("FilterIPv6", Filters::IPV6),
        ("FilterNonIP", Filters::NON_IP),
        ("DHCPFilter", Filters::DHCP),
        ("DHCPNoServer", Filters::DHCP_NO_SERVER),
        ("ArpDhcpOnly", Filters::ARP_DHCP_ONLY),
        ("NoServer", Filters::NO_SERVER),
        ("NoServerV6", Filters::NO_SERVER_V6),
        ("RSandRAFilter", Filters::RS_RA),
        ("RAFilter", Filters::RA),
        ("DHCPv6Filter", Filters::DHCPV6),
        ("DHCPv6NoServer", Filters::DHCPV6_NO_SERVER),
    ] {
        if p.named(item) != 0 {
            filters |= flag;
        }
    }
    PortPolicy {
        privacy_filter: p.privacy_filter(),
        max_upload_bps: p.max_upload(),
        max_download_bps: p.max_download(),
        filters: Filters(filters),
        // NoBridge and NoRouting hold a session to SoftEther's floors: 3 MACs, 4 addresses
        max_mac: floor_if(p.named("NoBridge") != 0, p.named("MaxMac"), 3),
        max_ip: floor_if(p.named("NoRouting") != 0, p.named("MaxIP"), 4),
        check_mac: p.named("CheckMac") != 0,
        check_ip: p.named("CheckIP") != 0,
        dhcp_force: p.named("DHCPForce") != 0,
        // NoRoutingV6 holds a session to 15 IPv6 addresses (SoftEther's figure)
        max_ipv6: floor_if(p.named("NoRoutingV6") != 0, p.named("MaxIPv6"), 15),
        check_ipv6: p.named("CheckIPv6") != 0,
        no_broadcast_limiter: p.named("NoBroadcastLimiter") != 0,
        ra_no_default_router: p.named("NoIPv6DefaultRouterInRA") != 0,
        ra_no_default_router_over_ipv6: p.named("NoIPv6DefaultRouterInRAWhenIPv6") != 0,
        vlan_id: p.named("VLanId").min(4095) as u16,
        monitor: monitor && p.named("MonitorPort") != 0,
    }
}

/// A limit (0: none) that `on` lowers to `floor`.
fn floor_if(on: bool, limit: u32, floor: u32) -> u32 {
    match (on, limit) {
        (false, l) => l,
        (true, 0) => floor,
        (true, l) => l.min(floor),
    }
}

/// A tunnel's place on a hub.
pub(crate) struct Link {
    pub hub: HubId,
    pub session: SessionId,
    pub medium: Medium,
    pub rule: AddressRule,
    pub credential: Credential,
    pub user: String,
    pub label: String,
    pub details: SessionDetails,
    /// In monitoring mode, as the client asked.
    pub monitor: bool,
    /// Its address is a SecureNAT lease taken on its behalf (released when it goes).
    pub leased: bool,
    /// When it opened (AutoDisconnect counts from here).
    pub opened_at: Instant,
    pub spoofed: u64,
    unreported: u64,
    last_report: Option<Instant>,
}

/// A hub and what the engine keeps beside it.
pub(crate) struct HubSlot {
    pub id: HubId,
    pub hub: Hub<NatHost>,
    pub spec: HubSpec,
    pub nat_generation: u32,
    pub tunnels: IdMap<SessionId, TunnelId>,
    /// Outside results arrived since the host last ran.
    pub nat_dirty: bool,
    /// When the NAT timer last ran the host.
    pub nat_timer: Option<Instant>,
}

/// SecureNAT hosts run on their own timers at most this often (smoltcp's retransmissions and
/// delayed acknowledgements; segments that come in run them at once anyway).
pub const NAT_TIMER_MIN: Duration = Duration::from_millis(10);
/// The hubs' tick: table ageing, ARP retries, idle NAT flows.
pub const HUB_TICK: Duration = Duration::from_secs(1);
/// Source refusals are reported at most this often per tunnel.
const REFUSAL_REPORT_EVERY: Duration = Duration::from_secs(1);

impl HubSlot {
    pub fn nat_ref(&self) -> NatRef {
        NatRef {
            hub: self.id,
            generation: self.nat_generation,
        }
    }

    /// Moves the SecureNAT host's socket requests to the runtime's queue.
    pub fn drain_nat(&mut self, outside: &mut VecDeque<Outside>) {
        let nat = self.nat_ref();
        if let Some(host) = self.hub.securenat_host_mut() {
            while let Some(request) = host.poll_io() {
                outside.push_back(Outside::Io { nat, request });
            }
        }
    }

    /// Installs a new SecureNAT host built from `cfg` (`None`: none); the old one's sockets are
    /// reset.
    pub fn install_nat(
        &mut self,
        cfg: Option<&NatConfig>,
        now: Instant,
        outside: &mut VecDeque<Outside>,
    ) {
        if self.hub.securenat_session().is_some() {
            outside.push_back(Outside::Reset {
                nat: self.nat_ref(),
            });
        }
        self.nat_generation += 1;
        self.nat_dirty = false;
        match cfg {
            Some(c) => {
                let vcfg = c.host.clone();
                self.hub
                    .set_securenat_host(vcfg, NatHost::new(c.clone(), now), now);
            }
            None => self.hub.clear_securenat(),
        }
        self.apply_static_network();
    }

    pub fn apply_static_network(&mut self) {
        self.hub.set_static_network(self.spec.static_network);
    }

    /// The hub's IPv4 network for tunnels: the static network, else SecureNAT's.
    pub fn network(&self) -> Option<StaticNetwork> {
        self.spec.static_network.or_else(|| {
            self.spec.securenat.as_ref().map(|n| StaticNetwork {
                gateway: n.host.ip,
                mask: n.host.mask,
            })
        })
    }

    /// SecureNAT's own address, if it runs.
    pub fn securenat_ip(&self) -> Option<Ipv4Addr> {
        self.spec.securenat.as_ref().map(|n| n.host.ip)
    }
}

/// Whether two SecureNAT configs describe the same host, apart from what can change in place
/// (timeouts, the flow limit) and the seed.
pub(crate) fn same_host(a: &NatConfig, b: &NatConfig) -> bool {
    let host = |c: &VirtualHostConfig| (c.ip, c.mask, c.mac);
    host(&a.host) == host(&b.host)
        && a.nat_enabled == b.nat_enabled
        && a.mtu == b.mtu
        && a.dhcp == b.dhcp
        && a.dns_servers == b.dns_servers
}

/// The IPv4 source of a packet, `None` for anything else (IPv6 is not restricted yet).
fn ipv4_source(packet: &[u8]) -> Option<Ipv4Addr> {
    let p = smoltcp::wire::Ipv4Packet::new_checked(packet).ok()?;
    (p.version() == 4).then(|| p.src_addr())
}

/// The destination port of a TCP segment in an IPv4 packet.
#[cfg(test)]
fn tcp_port(packet: &[u8]) -> Option<u16> {
    let p = smoltcp::wire::Ipv4Packet::new_checked(packet).ok()?;
    (p.next_header() == smoltcp::wire::IpProtocol::Tcp).then_some(())?;
    Some(
        smoltcp::wire::TcpPacket::new_checked(p.payload())
            .ok()?
            .dst_port(),
    )
}

pub(crate) struct Core {
    pub now: Instant,
    /// The protocol being driven ([`Io::protocol`]).
    pub current: ProtocolId,
    pub accounts: Accounts,
    pub hubs: BTreeMap<HubId, HubSlot>,
    /// Folded hub names to ids.
    pub hub_names: HashMap<String, HubId>,
    pub links: IdMap<TunnelId, Link>,
    pub transmits: TransmitQueue,
    pub streams: VecDeque<StreamOutput>,
    pub outside: VecDeque<Outside>,
    pub events: VecDeque<EngineEvent>,
    /// Hub output for tunnels, handed to their protocols once the current call returns.
    pub to_send: Vec<(TunnelId, Vec<u8>)>,
    /// Tunnels the engine ended; their protocols hear of it once the current call returns.
    pub to_close: Vec<TunnelId>,
    deliveries: Vec<Delivery>,
    next_hub_id: u32,
    pub stats: EngineStats,
    /// What a panic now would be contained to.
    pub active: Option<Component>,
    pub last_packet: Option<Instant>,
    pub last_fault: Option<Fault>,
    pub next_hub_tick: Option<Instant>,
    /// The wall clock: Unix milliseconds at an instant ([`crate::Engine::set_unix_time`]).
    pub wall: Option<(Instant, u64)>,
    /// Addresses the runtime locked out after failed logins, and until when.
    pub locked: HashMap<IpAddr, Instant>,
    /// The direct table's generation, shared with the workers ([`crate::direct`]).
    pub direct_generation: DirectGeneration,
    /// The table as last built, while nothing has changed since.
    pub direct: Option<std::sync::Arc<Direct>>,
    /// Tests: TCP segments to this port make the hub panic.
    #[cfg(test)]
    pub fault_on_port: Option<u16>,
}

impl Core {
    pub fn new(now: Instant) -> Core {
        Core {
            now,
            current: ProtocolId(0),
            accounts: Accounts::default(),
            hubs: BTreeMap::new(),
            hub_names: HashMap::new(),
            links: IdMap::default(),
            transmits: TransmitQueue::new(true),
            streams: VecDeque::new(),
            outside: VecDeque::new(),
            events: VecDeque::new(),
            to_send: Vec::new(),
            to_close: Vec::new(),
            deliveries: Vec::new(),
            next_hub_id: 0,
            stats: EngineStats::default(),
            active: None,
            last_packet: None,
            last_fault: None,
            next_hub_tick: None,
            wall: None,
            locked: HashMap::new(),
            direct_generation: DirectGeneration::default(),
            direct: None,
            #[cfg(test)]
            fault_on_port: None,
        }
    }

    /// Something the direct table depends on may have changed: workers stop using theirs
    /// until they get the one built next ([`crate::direct`]).
    pub fn direct_changed(&mut self) {
        if self.direct.take().is_some() {
            self.direct_generation.bump();
        }
    }

    pub fn see(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    /// The id of a hub by its name (any case).
    pub fn hub_id(&self, name: &str) -> Option<HubId> {
        self.hub_names.get(&fold(name)).copied()
    }

    pub fn slot(&self, name: &str) -> Option<&HubSlot> {
        self.hubs.get(&self.hub_id(name)?)
    }

    /// Creates a hub.
    pub fn add_hub(&mut self, spec: HubSpec, now: Instant) {
        self.next_hub_id += 1;
        let mut slot = HubSlot {
            id: HubId(self.next_hub_id),
            hub: Hub::for_hosts(&spec.name),
            spec,
            nat_generation: 0,
            tunnels: IdMap::default(),
            nat_dirty: false,
            nat_timer: None,
        };
        let nat = slot.spec.securenat.clone();
        slot.install_nat(nat.as_ref(), now, &mut self.outside);
        slot.hub.set_access_list(&slot.spec.access);
        if let Some((at, ms)) = self.wall {
            slot.hub.set_wall_clock(at, ms);
        }
        self.next_hub_tick.get_or_insert(now + HUB_TICK);
        self.hub_names.insert(fold(&slot.spec.name), slot.id);
        self.hubs.insert(slot.id, slot);
    }

    /// Deletes a hub (its tunnels must have been ended).
    pub fn remove_hub(&mut self, name: &str) {
        let Some(id) = self.hub_names.remove(&fold(name)) else {
            return;
        };
        if let Some(slot) = self.hubs.remove(&id) {
            if slot.hub.securenat_session().is_some() {
                self.outside.push_back(Outside::Reset {
                    nat: slot.nat_ref(),
                });
            }
        }
    }

    /// Delivered packets' buffers, given back: to the hubs while they have room, the rest
    /// freed.
    pub fn recycle(&mut self, buffers: &mut Vec<Vec<u8>>) {
        for slot in self.hubs.values_mut() {
            if buffers.is_empty() {
                return;
            }
            slot.hub.recycle(buffers);
        }
        buffers.clear();
    }

    /// Runs `step` on a hub with the fault marker set, then takes what it produced: socket
    /// requests of its SecureNAT host, and deliveries for tunnels.
    pub fn with_hub(
        &mut self,
        hub: HubId,
        step: impl FnOnce(&mut HubSlot, Instant, &mut Vec<Delivery>),
    ) {
        let Some(slot) = self.hubs.get_mut(&hub) else {
            return;
        };
        self.active = Some(Component::Hub(slot.id.0));
        step(slot, self.now, &mut self.deliveries);
        slot.drain_nat(&mut self.outside);
        for d in self.deliveries.drain(..) {
            match slot.tunnels.get(&d.session) {
                Some(t) => self.to_send.push((*t, d.packet)),
                None => self.stats.orphan_packets += 1,
            }
        }
        self.active = None;
    }

    /// Whether `address` is free for a tunnel of `hub` that holds `key`: a host address of the
    /// hub's network, not its gateway or SecureNAT's host, not another key's, not another live
    /// tunnel's.
    fn address_free(
        &self,
        hub: HubId,
        address: Ipv4Addr,
        key: Option<&Key>,
        tunnel: TunnelId,
    ) -> bool {
        let Some(slot) = self.hubs.get(&hub) else {
            return false;
        };
        let usable = match slot.network() {
            Some(n) => {
                let net = etherhub_config::HubNetwork::new(n.gateway, n.mask);
                net.is_host(address) && address != n.gateway
            }
            None => !address.is_unspecified() && !address.is_broadcast() && !address.is_multicast(),
        };
        let by_key = key.and_then(|k| self.accounts.key_holding(&slot.spec.name, address, k));
        let by_tunnel = self
            .links
            .iter()
            .any(|(t, l)| *t != tunnel && l.hub == hub && l.rule == AddressRule::Fixed(address));
        usable && slot.securenat_ip() != Some(address) && by_key.is_none() && !by_tunnel
    }

    /// Checks an IP tunnel's source address; `false` drops the packet (counted, reported).
    fn source_allowed(&mut self, tunnel: TunnelId, packet: &[u8]) -> bool {
        let Some(src) = ipv4_source(packet) else {
            return true;
        };
        let Some(link) = self.links.get(&tunnel) else {
            return false;
        };
        let owns = match link.rule {
            AddressRule::Any => return true,
            AddressRule::Fixed(a) if a == src => return true,
            AddressRule::Fixed(a) => Some(a),
            AddressRule::LearnFirst => {
                let key = match &link.credential {
                    Credential::WireGuardKey(k) => Some(*k),
                    _ => None,
                };
                let (hub, session) = (link.hub, link.session);
                if self.address_free(hub, src, key.as_ref(), tunnel) {
                    self.direct_changed();
                    let link = self.links.get_mut(&tunnel).expect("checked above");
                    link.rule = AddressRule::Fixed(src);
                    if let Some(key) = key {
                        self.accounts.set_key_address(&key, src);
                        self.events.push_back(EngineEvent::AddressLearned {
                            key,
                            hub: self.hub_name(hub),
                            session: self.session_name(hub, session),
                            address: src,
                        });
                    }
                    return true;
                }
                None
            }
        };
        self.stats.spoofed_dropped += 1;
        let now = self.now;
        let link = self.links.get_mut(&tunnel).expect("checked above");
        link.spoofed += 1;
        link.unreported += 1;
        let due = link
            .last_report
            .is_none_or(|t| now.saturating_duration_since(t) >= REFUSAL_REPORT_EVERY);
        if due {
            link.last_report = Some(now);
            let dropped = std::mem::take(&mut link.unreported);
            let (hub, session, label) = (link.hub, link.session, link.label.clone());
            self.events.push_back(EngineEvent::SourceRefused {
                hub: self.hub_name(hub),
                session: self.session_name(hub, session),
                label,
                sent_from: src,
                owns,
                dropped,
            });
        }
        false
    }

    pub fn session_name(&self, hub: HubId, session: SessionId) -> String {
        self.hubs
            .get(&hub)
            .and_then(|slot| slot.hub.session(session))
            .map(|s| s.name)
            .unwrap_or_default()
    }

    /// A hub's name as spelled.
    pub fn hub_name(&self, hub: HubId) -> String {
        self.hubs
            .get(&hub)
            .map(|s| s.spec.name.clone())
            .unwrap_or_default()
    }

    /// Ends a tunnel from the engine's side: its session goes, and its protocol is told once
    /// the current call returns.
    pub fn end_tunnel(&mut self, tunnel: TunnelId, reason: CloseReason) {
        if self.remove_link(tunnel, reason) {
            self.to_close.push(tunnel);
        }
    }

    /// Removes a tunnel's link and hub session; false if it had none.
    fn remove_link(&mut self, tunnel: TunnelId, reason: CloseReason) -> bool {
        let Some(link) = self.links.remove(&tunnel) else {
            return false;
        };
        self.direct_changed();
        if let Some(slot) = self.hubs.get_mut(&link.hub) {
            let session = slot
                .hub
                .session(link.session)
                .map(|s| s.name)
                .unwrap_or_default();
            if link.leased {
                let mac = slot.hub.session(link.session).map(|s| s.mac);
                if let (Some(mac), Some(host)) = (mac, slot.hub.securenat_host_mut()) {
                    host.release(mac);
                }
            }
            slot.hub.remove_session(link.session);
            slot.tunnels.remove(&link.session);
            self.events.push_back(EngineEvent::SessionClosed {
                hub: slot.spec.name.clone(),
                session,
                reason,
            });
        }
        true
    }

    /// Unix milliseconds now, if the runtime has said.
    pub fn unix_ms(&self) -> Option<u64> {
        self.wall
            .map(|(at, ms)| ms + self.now.saturating_duration_since(at).as_millis() as u64)
    }

    /// Whether a user's expiry has passed (never, while the wall clock is unknown).
    pub fn expired(&self, expires_ms: u64) -> bool {
        expires_ms != 0 && self.unix_ms().is_some_and(|now| now >= expires_ms)
    }

    /// SoftEther's checks after a right password: the user has not expired, its policy allows
    /// access, and it has fewer sessions on the hub than MultiLogins allows (sessions `except`
    /// picks, a client's own earlier session, do not count).
    pub fn admit(&self, grant: &Grant, except: impl Fn(&Link) -> bool) -> Result<(), AuthError> {
        let expires = self
            .accounts
            .user(&grant.hub, &grant.user)
            .map_or(0, |u| u.expires_ms);
        if self.expired(expires) || !grant.policy.access() {
            return Err(AuthError::Denied);
        }
        let max = grant.policy.multi_logins();
        if max != 0 {
            let hub = self.hub_id(&grant.hub);
            let user = fold(&grant.user);
            let live = self
                .links
                .values()
                .filter(|l| Some(l.hub) == hub && fold(&l.user) == user && !except(l))
                .count();
            if live >= max as usize {
                return Err(AuthError::TooManySessions);
            }
        }
        Ok(())
    }

    /// Renews the SecureNAT leases held for IP tunnels, and forgets lockouts that ended (run
    /// with the hub tick).
    pub fn renew_leases(&mut self) {
        let now = self.now;
        self.locked.retain(|_, until| *until > now);
        for l in self.links.values().filter(|l| l.leased) {
            if let Some(slot) = self.hubs.get_mut(&l.hub) {
                let session = slot.hub.session(l.session).map(|s| (s.mac, s.name));
                if let (Some((mac, name)), Some(host)) = (session, slot.hub.securenat_host_mut()) {
                    host.lease_for(mac, &name, now);
                }
            }
        }
    }

    /// Ends the sessions of users who have expired, and those older than their policy's
    /// AutoDisconnect (run with the hub tick).
    pub fn end_expired(&mut self) {
        let now = self.now;
        let overdue: Vec<TunnelId> = self
            .links
            .iter()
            .filter(|(_, l)| {
                let secs = self
                    .accounts
                    .user(&self.hub_name(l.hub), &l.user)
                    .map_or(0, |u| u.policy.named("AutoDisconnect"));
                secs != 0
                    && now.saturating_duration_since(l.opened_at)
                        >= Duration::from_secs(u64::from(secs))
            })
            .map(|(t, _)| *t)
            .collect();
        for t in overdue {
            self.end_tunnel(
                t,
                CloseReason::Admin("the policy's AutoDisconnect time has passed".into()),
            );
        }
        if self.wall.is_none() {
            return;
        }
        let expired: Vec<(HubId, String)> = self
            .links
            .values()
            .filter(|l| {
                self.accounts
                    .user(&self.hub_name(l.hub), &l.user)
                    .is_some_and(|u| self.expired(u.expires_ms))
            })
            .map(|l| (l.hub, fold(&l.user)))
            .collect();
        for (hub, user) in expired {
            self.end_tunnels_where(
                |l| l.hub == hub && fold(&l.user) == user,
                "the user has expired",
            );
        }
    }

    /// Puts a user's policy on its live sessions' hub ports; sessions it no longer admits
    /// (access denied, expired) end.
    pub fn apply_user_policy(&mut self, hub: &str, user: &str) {
        let Some(spec) = self.accounts.user(hub, user).cloned() else {
            return;
        };
        let (id, name) = (self.hub_id(hub), fold(user));
        if !spec.policy.access() || self.expired(spec.expires_ms) {
            self.end_tunnels_where(
                |l| Some(l.hub) == id && fold(&l.user) == name,
                "access denied by the user's policy",
            );
            return;
        }
        let Some(id) = id else { return };
        // a monitoring session whose policy no longer allows it ends
        if spec.policy.named("MonitorPort") == 0 {
            self.end_tunnels_where(
                |l| l.hub == id && fold(&l.user) == name && l.monitor,
                "monitoring mode is no longer allowed by the user's policy",
            );
        }
        let sessions: Vec<(SessionId, bool)> = self
            .links
            .values()
            .filter(|l| l.hub == id && fold(&l.user) == name)
            .map(|l| (l.session, l.monitor))
            .collect();
        if let Some(slot) = self.hubs.get_mut(&id) {
            for (s, monitor) in sessions {
                slot.hub
                    .set_session_policy(s, port_policy(&spec.policy, monitor));
                slot.hub.set_session_group(s, &spec.group);
            }
        }
    }

    /// Every tunnel that `pick` selects ends with `reason`.
    pub fn end_tunnels_where(&mut self, pick: impl Fn(&Link) -> bool, reason: &str) {
        let mut gone: Vec<TunnelId> = self
            .links
            .iter()
            .filter(|(_, l)| pick(l))
            .map(|(t, _)| *t)
            .collect();
        gone.sort_unstable();
        for t in gone {
            self.end_tunnel(t, CloseReason::Admin(reason.to_string()));
        }
    }
}

impl Io for Core {
    fn protocol(&self) -> ProtocolId {
        self.current
    }

    fn transmit(&mut self, local: SocketAddr, max_len: usize, write: &mut WriteDatagram<'_>) {
        self.transmits.push_with(local, max_len, write);
    }

    fn write_stream(&mut self, conn: ConnId, bytes: &[u8]) {
        self.streams.push_back(StreamOutput::Write {
            conn,
            bytes: bytes.to_vec(),
        });
    }

    fn close_stream(&mut self, conn: ConnId) {
        self.streams.push_back(StreamOutput::Close { conn });
    }

    fn lease_address(&mut self, tunnel: TunnelId) -> Option<crate::seam::IpConfig> {
        let link = self.links.get(&tunnel)?;
        let (hub, session) = (link.hub, link.session);
        let now = self.now;
        let slot = self.hubs.get_mut(&hub)?;
        let info = slot.hub.session(session)?;
        let host = slot.hub.securenat_host_mut()?;
        let dhcp = host.config().dhcp.clone()?;
        let address = host.lease_for(info.mac, &info.name, now)?;
        if let Some(l) = self.links.get_mut(&tunnel) {
            l.leased = true;
            l.rule = AddressRule::Fixed(address);
        }
        // the hub answers for the address from now on
        self.with_hub(hub, |slot, now, out| {
            slot.hub.assign_address(session, address, now, out)
        });
        Some(crate::seam::IpConfig {
            address,
            mask: dhcp.mask,
            gateway: dhcp.gateway,
            dns: [dhcp.dns, dhcp.dns2]
                .into_iter()
                .filter(|d| !d.is_unspecified())
                .collect(),
            domain: dhcp.domain,
        })
    }

    fn opened(&mut self, o: Opened) -> Option<String> {
        self.direct_changed();
        let id = self.hub_id(&o.hub);
        let refusal = match id.and_then(|id| self.hubs.get(&id)) {
            None => Some("no such Virtual Hub"),
            Some(s) if !s.spec.online => Some("the Virtual Hub is offline"),
            Some(_) => None,
        };
        if let Some(reason) = refusal {
            self.stats.refused_tunnels += 1;
            self.events.push_back(EngineEvent::Refused {
                hub: o.hub,
                user: o.user,
                label: o.label,
                reason: reason.to_string(),
            });
            self.to_close.push(o.tunnel);
            return None;
        }
        // a tunnel opened again (a core reusing an index) replaces its old session
        self.remove_link(o.tunnel, CloseReason::Ended);
        let now = self.now;
        let id = id.expect("checked above");
        let slot = self.hubs.get_mut(&id).expect("checked above");
        let session = match o.medium {
            Medium::Ip => {
                slot.hub
                    .add_l3_session(&o.user, &o.details.protocol, Some(o.client), now)
            }
            Medium::Ethernet if o.details.protocol.is_empty() => {
                slot.hub
                    .add_l2_session(&o.user, &o.details.protocol, Some(o.client), now)
            }
            Medium::Ethernet => {
                slot.hub
                    .add_tagged_l2_session(&o.user, &o.details.protocol, Some(o.client), now)
            }
        };
        slot.tunnels.insert(session, o.tunnel);
        if let Some(u) = self.accounts.user(&o.hub, &o.user) {
            slot.hub
                .set_session_policy(session, port_policy(&u.policy, o.monitor));
            slot.hub.set_session_group(session, &u.group);
        }
        let name = slot
            .hub
            .session(session)
            .map(|s| s.name)
            .unwrap_or_default();
        self.events.push_back(EngineEvent::SessionOpened {
            hub: slot.spec.name.clone(),
            session: name.clone(),
            user: o.user.clone(),
            client: o.client,
            label: o.label.clone(),
        });
        self.links.insert(
            o.tunnel,
            Link {
                hub: id,
                session,
                medium: o.medium,
                rule: o.address,
                credential: o.credential,
                user: o.user,
                label: o.label,
                details: o.details,
                monitor: o.monitor,
                leased: false,
                opened_at: now,
                spoofed: 0,
                unreported: 0,
                last_report: None,
            },
        );
        // a tunnel held to one address answers for it from the start (a client that has not
        // sent a packet yet is still reachable)
        if let (Medium::Ip, AddressRule::Fixed(address)) = (o.medium, o.address) {
            self.with_hub(id, |slot, now, out| {
                slot.hub.assign_address(session, address, now, out)
            });
        }
        Some(name)
    }

    fn packet(&mut self, tunnel: TunnelId, bytes: &[u8]) {
        let Some(link) = self.links.get(&tunnel) else {
            self.stats.orphan_packets += 1;
            return;
        };
        let medium = link.medium;
        if medium == Medium::Ip && !self.source_allowed(tunnel, bytes) {
            return;
        }
        let link = &self.links[&tunnel];
        let (hub, session) = (link.hub, link.session);
        self.last_packet = Some(self.now);
        #[cfg(test)]
        let inject = self.fault_on_port.is_some() && tcp_port(bytes) == self.fault_on_port;
        self.with_hub(hub, |slot, now, out| {
            #[cfg(test)]
            if inject {
                panic!("fault injected by a test");
            }
            match medium {
                Medium::Ip => slot.hub.input_ip(session, bytes, now, out),
                Medium::Ethernet => slot.hub.input_frame(session, bytes, now, out),
            }
        });
    }

    fn roamed(&mut self, tunnel: TunnelId, client: SocketAddr) {
        self.direct_changed();
        if let Some(link) = self.links.get(&tunnel) {
            let session = link.session;
            if let Some(slot) = self.hubs.get_mut(&link.hub) {
                slot.hub.set_client_addr(session, client);
            }
        }
    }

    fn closed(&mut self, tunnel: TunnelId, reason: CloseReason) {
        self.remove_link(tunnel, reason);
    }

    fn authenticate(&self, request: AuthRequest<'_>) -> Result<Grant, AuthError> {
        let grant = self.accounts.authenticate(request)?;
        self.admit(&grant, |_| false)?;
        Ok(grant)
    }

    fn locked_out(&self, client: IpAddr) -> bool {
        self.locked
            .get(&client)
            .is_some_and(|until| *until > self.now)
    }

    fn login_failed(&mut self, client: SocketAddr, hub: &str, user: &str) {
        self.events.push_back(EngineEvent::LoginFailed {
            client,
            hub: hub.to_string(),
            user: user.to_string(),
        });
    }

    fn peer_refused(&mut self, client: SocketAddr, protocol: &'static str, reason: &str) {
        self.events.push_back(EngineEvent::PeerRefused {
            client,
            protocol,
            reason: reason.to_string(),
        });
    }

    fn wireguard_key(&self, key: &Key) -> Option<KeyGrant> {
        let grant = self.accounts.wireguard_key(key)?;
        // a key's own session (its client handshaking again) does not count against it
        let own = etherhub_wireguard::key_to_base64(key);
        self.admit(&grant.grant, |l| l.label == own).ok()?;
        Some(grant)
    }

    fn unix_ms(&self) -> Option<u64> {
        Core::unix_ms(self)
    }
}
