//! The virtual hub: sessions as ports of a learning Ethernet switch.
//!
//! Every frame entering the switch (from an L2 session, from an L3 session's adapter, or from a
//! virtual host) goes through one path, [`Hub::switch`]: count it on the sending session, learn its
//! source MAC and IP, pick the ports (known unicast -> one, else every other session), count it on
//! each receiving session and hand it to that port. Ports that answer (adapters replying to ARP,
//! the virtual host replying to a ping) put their frames on an internal queue that is drained
//! before the call returns, so one `input_ip` can already carry a ping across an ARP exchange.

use std::borrow::Cow;
use std::collections::{BTreeSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use etherhub_hash::{IdMap, KeyedMap};
use smoltcp::wire::{EthernetFrame, EthernetProtocol, Ipv4Packet, Ipv6Packet, ETHERNET_HEADER_LEN};

use crate::access::{AccessList, FrameInfo, Ident, Verdict};
use crate::guard::{
    dhcp_ack, ra_without_default_router, redirect_reply, redirect_url_with_info, vlan_tag,
    vlan_untag, DelayLine, Impaired, StormLimiter, DHCP_HOLD_MAX, DHCP_HOLD_MIN,
};
use crate::l3::{L3Adapter, Route, SendError};
use crate::packet::{is_group_mac, is_host_ipv4, parse_arp, Spare};
use crate::policy::{Admit, Kinds, PortPolicy, Shaper, EXCLUSIVE_TIME};
use crate::table::AgeingTable;
use crate::vhost::{HostInput, SecureNatHost, VirtualHost, VirtualHostConfig};

/// MAC table ageing (SoftEther's MAC_TABLE_EXPIRE_TIME).
pub const MAC_TABLE_EXPIRE: Duration = Duration::from_secs(600);
/// IP table ageing (SoftEther's IP_TABLE_EXPIRE_TIME).
pub const IP_TABLE_EXPIRE: Duration = Duration::from_secs(60);
const MAX_MAC_ENTRIES: usize = 65536;
const MAX_IP_ENTRIES: usize = 65536;
/// Frames one call may move through the switch; a bound against forwarding loops between ports.
const MAX_FRAMES_PER_CALL: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u32);

/// Packet and byte counters, split as SoftEther splits them; bytes are Ethernet frame sizes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    pub unicast_packets: u64,
    pub unicast_bytes: u64,
    pub broadcast_packets: u64,
    pub broadcast_bytes: u64,
}

impl Traffic {
    /// Unicast frames counted together.
    fn count_many(&mut self, packets: u64, bytes: u64) {
        self.unicast_packets += packets;
        self.unicast_bytes += bytes;
    }

    fn count(&mut self, broadcast: bool, len: usize) {
        let len = len as u64;
        if broadcast {
            self.broadcast_packets += 1;
            self.broadcast_bytes += len;
        } else {
            self.unicast_packets += 1;
            self.unicast_bytes += len;
        }
    }
}

/// Hub-wide totals (StatusGet): `recv` is what sessions sent into the hub, `send` what the hub
/// delivered to sessions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HubTraffic {
    pub send: Traffic,
    pub recv: Traffic,
}

/// What kind of port a session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionKind {
    /// Sends and receives bare IP packets through an L3 adapter (WireGuard, later L2TP, ...).
    L3,
    /// Sends and receives Ethernet frames (local bridge, native clients).
    L2,
    /// A virtual host inside the hub (SecureNAT).
    VirtualHost,
}

#[derive(Clone, Debug)]
pub struct SessionInfo {
    pub id: SessionId,
    pub name: String,
    pub user: String,
    /// e.g. "WIREGUARD", "SECURENAT"
    pub protocol: String,
    pub client_addr: Option<SocketAddr>,
    pub created: Instant,
    pub last_comm: Instant,
    /// hub -> session
    pub send: Traffic,
    /// session -> hub
    pub recv: Traffic,
    pub mac: [u8; 6],
    pub ip: Option<Ipv4Addr>,
}

#[derive(Clone, Debug)]
pub struct MacEntry {
    pub mac: [u8; 6],
    pub session: SessionId,
    pub session_name: String,
    pub created: Instant,
    pub updated: Instant,
}

#[derive(Clone, Debug)]
pub struct IpEntry {
    pub ip: IpAddr,
    pub session: SessionId,
    pub session_name: String,
    pub mac: [u8; 6],
    pub created: Instant,
    pub updated: Instant,
}

/// Something for the caller to send to a session: an IP packet for an L3 session, a whole
/// Ethernet frame for an L2 session.
#[derive(Debug)]
pub struct Delivery {
    pub session: SessionId,
    pub packet: Vec<u8>,
}

/// Default gateway and subnet given to L3 sessions (SoftEther's hub options "Default gateway" and
/// "Default subnet"). Destinations outside the subnet are sent to the gateway's MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StaticNetwork {
    pub gateway: Ipv4Addr,
    pub mask: Ipv4Addr,
}

enum Port<H> {
    L3(L3Adapter),
    L2,
    /// Boxed: a hub has one or two hosts and may have thousands of sessions, each as large as
    /// its largest kind of port.
    Host(Box<H>),
}

struct Session<H> {
    name: String,
    user: String,
    protocol: String,
    client_addr: Option<SocketAddr>,
    created: Instant,
    last_comm: Instant,
    send: Traffic,
    recv: Traffic,
    port: Port<H>,
    policy: PortPolicy,
    /// MaxUpload: what the session sends into the hub.
    up: Shaper,
    /// MaxDownload: what the hub sends to the session.
    down: Shaper,
    /// Its user and group, as access rules name them.
    ident: Ident,
    /// Its broadcasts, counted against storms.
    storm: StormLimiter,
}

/// "SID-<USER>-[<PROTOCOL>]-": how SoftEther names the sessions of the protocols it serves
/// beside its own, before their number.
fn tagged_prefix(user: &str, protocol: &str) -> String {
    format!("SID-{}-[{}]-", user.to_uppercase(), protocol.to_uppercase())
}

/// A virtual hub. Sans-IO: inputs carry `now`, outputs go to the caller's `Vec<Delivery>`.
///
/// `H` is the type of the virtual hosts on it (SecureNAT's): the hub hands each its frames and
/// gives the owner typed access to it ([`Hub::securenat_host_mut`]). The default is the minimal
/// [`SecureNatHost`] that answers ARP and ping.
///
/// Call order: [`Hub::input_ip`] / [`Hub::input_frame`] for each packet or frame a session sends,
/// [`Hub::tick`] about once a second; send every [`Delivery`] pushed by any of them.
pub struct Hub<H = SecureNatHost> {
    name: String,
    /// Looked up several times for every frame; listed in the order of their ids.
    sessions: IdMap<SessionId, Session<H>>,
    session_counter: u32,
    mac_table: AgeingTable<[u8; 6], SessionId>,
    ip_table: AgeingTable<IpAddr, (SessionId, [u8; 6])>,
    securenat: Option<(SessionId, VirtualHostConfig)>,
    static_network: Option<StaticNetwork>,
    traffic: HubTraffic,
    dropped: u64,
    /// Frames a session's policy held back (bandwidth, privacy filter).
    policy_dropped: u64,
    access: AccessList,
    /// Frames the access list discarded.
    access_dropped: u64,
    /// The latest `now` any call brought in.
    last_now: Option<Instant>,
    /// Frames produced by ports while the switch is busy, with the session that sent them.
    queue: VecDeque<(SessionId, Vec<u8>)>,
    /// A virtual host holds frames for its next poll ([`HostInput::Deferred`]).
    deferred: bool,
    /// IPv4 addresses handed out: by DHCP servers, as the hub saw their acks (to which session,
    /// until when), or by the server itself to an IP session ([`Hub::assign_address`], for the
    /// session's life). DHCPForce lets a session send from these only.
    dhcp: KeyedMap<Ipv4Addr, (SessionId, Option<Instant>)>,
    /// Frames access rules delay, with their sender and whether rules remain to check per
    /// receiver.
    delayed: DelayLine<(SessionId, bool)>,
    /// The wall clock at an instant (Unix milliseconds), once the owner has said.
    wall: Option<(Instant, u64)>,
    /// Sessions in monitoring mode (each gets a copy of every frame).
    monitors: BTreeSet<SessionId>,
    /// Emptied vectors kept for the next frame, so that switching one allocates only the
    /// frames and packets themselves.
    scratch: Scratch,
}

/// See [`Hub::scratch`]. Each is cleared before use too: a panic the engine contained may
/// have left one half-filled.
#[derive(Default)]
struct Scratch {
    frames: Vec<Vec<u8>>,
    packets: Vec<Vec<u8>>,
    targets: Vec<SessionId>,
    /// Buffers for the frames the L3 adapters build and the packets they unwrap.
    spare: Spare,
}

impl Hub {
    /// A hub whose SecureNAT host is the minimal one ([`Hub::set_securenat`]).
    pub fn new(name: &str) -> Self {
        Self::for_hosts(name)
    }

    /// Enable (Some) / disable (None) the minimal SecureNAT virtual host session; see
    /// [`Hub::set_securenat_host`].
    pub fn set_securenat(&mut self, cfg: Option<VirtualHostConfig>, now: Instant) {
        match cfg {
            Some(cfg) => {
                let host = SecureNatHost::new(cfg.clone());
                self.set_securenat_host(cfg, host, now);
            }
            None => self.clear_securenat(),
        }
    }
}

impl<H: VirtualHost> Hub<H> {
    /// A hub whose virtual hosts are of type `H`.
    pub fn for_hosts(name: &str) -> Self {
        Self {
            name: name.to_string(),
            sessions: IdMap::default(),
            session_counter: 0,
            mac_table: AgeingTable::new(MAX_MAC_ENTRIES, MAC_TABLE_EXPIRE),
            ip_table: AgeingTable::new(MAX_IP_ENTRIES, IP_TABLE_EXPIRE),
            securenat: None,
            static_network: None,
            traffic: HubTraffic::default(),
            dropped: 0,
            policy_dropped: 0,
            access: AccessList::default(),
            access_dropped: 0,
            last_now: None,
            queue: VecDeque::new(),
            deferred: false,
            dhcp: KeyedMap::default(),
            delayed: DelayLine::default(),
            wall: None,
            monitors: BTreeSet::new(),
            scratch: Scratch::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The wall clock: Unix milliseconds at `at` (what a redirect's `<INFO>` stamps).
    pub fn set_wall_clock(&mut self, at: Instant, unix_ms: u64) {
        self.wall = Some((at, unix_ms));
    }

    /// The answer to a session's web request that an access rule redirects to `url`.
    fn redirect(&self, from: SessionId, frame: &[u8], url: &str, now: Instant) -> Option<Vec<u8>> {
        let s = self.sessions.get(&from)?;
        let unix_secs = self.wall.map_or(0, |(at, ms)| {
            (ms + now.saturating_duration_since(at).as_millis() as u64) / 1000
        });
        let client = s
            .client_addr
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        let url = redirect_url_with_info(url, &s.user, &s.name, &client, unix_secs);
        redirect_reply(frame, &url)
    }

    fn see(&mut self, now: Instant) {
        self.last_now = Some(self.last_now.map_or(now, |t| t.max(now)));
    }

    /// Take the next number of the hub-wide session counter (shared by every kind of session, as
    /// in SoftEther, so numbers are never reused within a hub's life).
    fn next_number(&mut self) -> u32 {
        self.session_counter = self.session_counter.wrapping_add(1).max(1);
        while self.sessions.contains_key(&SessionId(self.session_counter)) {
            self.session_counter = self.session_counter.wrapping_add(1).max(1);
        }
        self.session_counter
    }

    /// A locally administered unicast MAC for session `n`: 5E, a byte from the hub name (so
    /// bridged hubs differ), then the session number.
    fn virtual_mac(&self, n: u32) -> [u8; 6] {
        let h = self
            .name
            .bytes()
            .fold(0x33u8, |acc, b| acc.rotate_left(3) ^ b.to_ascii_uppercase());
        let n = n.to_be_bytes();
        [0x5e, h, n[0], n[1], n[2], n[3]]
    }

    fn add_session(
        &mut self,
        name_for: impl FnOnce(u32) -> String,
        user: &str,
        protocol: &str,
        client_addr: Option<SocketAddr>,
        port: impl FnOnce(&Self, u32) -> Port<H>,
        now: Instant,
    ) -> SessionId {
        self.see(now);
        let n = self.next_number();
        let port = port(self, n);
        let id = SessionId(n);
        let ident = Ident {
            host: matches!(port, Port::Host(_)),
            ..Ident::new(user, "")
        };
        self.sessions.insert(
            id,
            Session {
                name: name_for(n),
                user: user.to_string(),
                protocol: protocol.to_string(),
                client_addr,
                created: now,
                last_comm: now,
                send: Traffic::default(),
                recv: Traffic::default(),
                port,
                policy: PortPolicy::default(),
                up: Shaper::new(0),
                down: Shaper::new(0),
                ident,
                storm: StormLimiter::default(),
            },
        );
        id
    }

    /// name "SID-<USER upper case>-[<PROTOCOL>]-<n>", n counting up per hub from 1 (SoftEther
    /// numbers them with a hub-wide counter)
    pub fn add_l3_session(
        &mut self,
        user: &str,
        protocol: &str,
        client_addr: Option<SocketAddr>,
        now: Instant,
    ) -> SessionId {
        let tag = tagged_prefix(user, protocol);
        self.add_session(
            |n| format!("{tag}{n}"),
            user,
            protocol,
            client_addr,
            |hub, n| Port::L3(L3Adapter::new(hub.virtual_mac(n))),
            now,
        )
    }

    /// A session that exchanges Ethernet frames (named "SID-<USER>-<n>"); its deliveries carry
    /// whole frames.
    pub fn add_l2_session(
        &mut self,
        user: &str,
        protocol: &str,
        client_addr: Option<SocketAddr>,
        now: Instant,
    ) -> SessionId {
        let upper = user.to_uppercase();
        self.add_session(
            |n| format!("SID-{upper}-{n}"),
            user,
            protocol,
            client_addr,
            |_, _| Port::L2,
            now,
        )
    }

    /// An Ethernet session named with its protocol, as SoftEther names the sessions of the
    /// protocols it serves beside its own: "SID-<USER>-[<PROTOCOL>]-<n>" (OpenVPN's tap,
    /// `OPENVPN_L2`).
    pub fn add_tagged_l2_session(
        &mut self,
        user: &str,
        protocol: &str,
        client_addr: Option<SocketAddr>,
        now: Instant,
    ) -> SessionId {
        let tag = tagged_prefix(user, protocol);
        self.add_session(
            |n| format!("{tag}{n}"),
            user,
            protocol,
            client_addr,
            |_, _| Port::L2,
            now,
        )
    }

    /// Puts a policy on a session's port (its buckets start full).
    pub fn set_session_policy(&mut self, id: SessionId, policy: PortPolicy) {
        if let Some(s) = self.sessions.get_mut(&id) {
            if s.policy != policy {
                s.up = Shaper::new(policy.max_upload_bps);
                s.down = Shaper::new(policy.max_download_bps);
                s.policy = policy;
            }
            if policy.monitor {
                self.monitors.insert(id);
            } else {
                self.monitors.remove(&id);
            }
        }
    }

    /// The group of a session's user, for access rules that name groups.
    pub fn set_session_group(&mut self, id: SessionId, group: &str) {
        if let Some(s) = self.sessions.get_mut(&id) {
            s.ident = Ident {
                host: s.ident.host,
                ..Ident::new(&s.user, group)
            };
        }
    }

    /// Replaces the access list (rules in SoftEther's order); its match counts start at 0, the
    /// user lists stay.
    pub fn set_access_list(&mut self, rules: &[etherhub_config::AccessRule]) {
        let lists = self.access.take_user_lists();
        self.access = AccessList::new(rules);
        self.access.set_user_lists(lists);
    }

    /// The user lists that access rules name as `include:FILE` and `exclude:FILE`.
    pub fn set_access_user_lists(&mut self, lists: crate::access::UserLists) {
        self.access.set_user_lists(lists);
    }

    /// Matches of each access rule, in the list's order.
    pub fn access_matches(&self) -> &[u64] {
        self.access.matches()
    }

    /// Frames the access list discarded.
    pub fn access_dropped(&self) -> u64 {
        self.access_dropped
    }

    /// The policy on a session's port.
    pub fn session_policy(&self, id: SessionId) -> Option<PortPolicy> {
        self.sessions.get(&id).map(|s| s.policy)
    }

    /// Frames held back by sessions' policies (bandwidth limits, the privacy filter).
    pub fn policy_dropped(&self) -> u64 {
        self.policy_dropped
    }

    /// When a frame a bandwidth limit or an access rule's delay holds may go on
    /// ([`Hub::poll_shaped`] then).
    pub fn next_shaped(&self, now: Instant) -> Option<Instant> {
        self.sessions
            .values()
            .flat_map(|s| [s.up.next_ready(now), s.down.next_ready(now)])
            .flatten()
            .chain(self.delayed.next_due())
            .min()
    }

    /// Sends on the frames bandwidth limits held whose time has come.
    pub fn poll_shaped(&mut self, now: Instant, out: &mut Vec<Delivery>) {
        self.see(now);
        while let Some(((from, pending), frame)) = self.delayed.pop_due(now) {
            self.upload(from, &frame, pending, now, out);
        }
        let busy: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.up.has_queue() || s.down.has_queue())
            .map(|(id, _)| *id)
            .collect();
        for id in busy {
            while let Some((f, pending)) =
                self.sessions.get_mut(&id).and_then(|s| s.up.pop_ready(now))
            {
                self.forward(id, &f, pending, now, out);
            }
            while let Some((f, _)) = self
                .sessions
                .get_mut(&id)
                .and_then(|s| s.down.pop_ready(now))
            {
                let broadcast = f.len() >= 6 && is_group_mac(&[f[0], f[1], f[2], f[3], f[4], f[5]]);
                self.deliver(id, &f, broadcast, now, out);
            }
        }
        self.run(now, out);
    }

    /// Also forgets its MAC/IP entries; packets it still had waiting for ARP are dropped and
    /// counted.
    pub fn remove_session(&mut self, id: SessionId) {
        let Some(session) = self.sessions.remove(&id) else {
            return;
        };
        if let Port::L3(adapter) = &session.port {
            self.dropped += adapter.pending_packets();
        }
        self.mac_table.retain(|_, s| *s != id);
        self.ip_table.retain(|_, (s, _)| *s != id);
        self.dhcp.retain(|_, (s, _)| *s != id);
        self.monitors.remove(&id);
        self.delayed.forget(|(s, _)| *s == id);
        if self.securenat.as_ref().is_some_and(|(s, _)| *s == id) {
            self.securenat = None;
        }
    }

    pub fn set_client_addr(&mut self, id: SessionId, addr: SocketAddr) {
        if let Some(s) = self.sessions.get_mut(&id) {
            s.client_addr = Some(addr);
        }
    }

    /// Removes the SecureNAT virtual host session, if there is one.
    pub fn clear_securenat(&mut self) {
        if let Some((id, _)) = self.securenat.take() {
            self.remove_session(id);
        }
    }

    /// Enables the SecureNAT virtual host session with `host` (the securenat crate's NAT, DHCP
    /// and DNS host, or the minimal one). Its name is "SID-SECURENAT-<n>" from the hub-wide
    /// counter, as in SoftEther: SID-SECURENAT-1 when it is the hub's first session. Enabling it
    /// again while on replaces the host in place (same session, same counters). `cfg` is the
    /// host's address, used as L3 sessions' default gateway when no [`StaticNetwork`] is set.
    pub fn set_securenat_host(&mut self, cfg: VirtualHostConfig, host: H, now: Instant) {
        if let Some((id, old)) = &mut self.securenat {
            let id = *id;
            if old.mac != cfg.mac {
                self.mac_table.retain(|_, s| *s != id);
            }
            self.ip_table.retain(|_, (s, _)| *s != id);
            *old = cfg;
            if let Some(s) = self.sessions.get_mut(&id) {
                s.port = Port::Host(Box::new(host));
            }
            return;
        }
        let id = self.add_session(
            |n| format!("SID-SECURENAT-{n}"),
            "SecureNAT",
            "SECURENAT",
            None,
            |_, _| Port::Host(Box::new(host)),
            now,
        );
        self.securenat = Some((id, cfg));
    }

    /// The SecureNAT session, if enabled.
    pub fn securenat_session(&self) -> Option<SessionId> {
        self.securenat.as_ref().map(|(id, _)| *id)
    }

    /// The SecureNAT host, for an owner that drives its socket I/O.
    pub fn securenat_host_mut(&mut self) -> Option<&mut H> {
        let (id, _) = self.securenat.as_ref()?;
        match &mut self.sessions.get_mut(id)?.port {
            Port::Host(h) => Some(h),
            _ => None,
        }
    }

    /// The SecureNAT host, read-only (listings).
    pub fn securenat_host(&self) -> Option<&H> {
        let (id, _) = self.securenat.as_ref()?;
        match &self.sessions.get(id)?.port {
            Port::Host(h) => Some(h),
            _ => None,
        }
    }

    /// Polls only the SecureNAT host (after its runtime fed it socket results) and switches the
    /// frames it produces; same output as [`Hub::tick`].
    pub fn poll_securenat(&mut self, now: Instant, out: &mut Vec<Delivery>) {
        self.see(now);
        let Some((id, _)) = self.securenat.as_ref() else {
            return;
        };
        let id = *id;
        let mut frames = Vec::new();
        if let Some(Session {
            port: Port::Host(host),
            ..
        }) = self.sessions.get_mut(&id)
        {
            host.poll(now, &mut frames);
        }
        self.queue.extend(frames.into_iter().map(|f| (id, f)));
        self.run(now, out);
    }

    /// Lets virtual hosts finish the frames they held back ([`HostInput::Deferred`]) and
    /// switches what they answer. Call after each batch of input.
    pub fn flush_hosts(&mut self, now: Instant, out: &mut Vec<Delivery>) {
        if !std::mem::take(&mut self.deferred) {
            return;
        }
        self.see(now);
        let mut frames = Vec::new();
        for (id, s) in self.sessions.iter_mut() {
            if let Port::Host(host) = &mut s.port {
                if host.has_deferred() {
                    host.poll(now, &mut frames);
                    self.queue.extend(frames.drain(..).map(|f| (*id, f)));
                }
            }
        }
        self.run(now, out);
    }

    /// Packets this hub delivered, given back once their owner is done with them: the hub
    /// keeps what it has room for, to build the next frames and packets in.
    pub fn recycle(&mut self, buffers: &mut Vec<Vec<u8>>) {
        let spare = &mut self.scratch.spare;
        while spare.has_room() {
            match buffers.pop() {
                Some(buf) => spare.give(buf),
                None => return,
            }
        }
    }

    /// Whether a virtual host holds frames for [`Hub::flush_hosts`].
    pub fn has_deferred(&self) -> bool {
        self.deferred
    }

    /// Attach another virtual host as its own session named "SID-<USER>-<n>".
    pub fn add_virtual_host(
        &mut self,
        user: &str,
        protocol: &str,
        host: H,
        now: Instant,
    ) -> SessionId {
        let upper = user.to_uppercase();
        self.add_session(
            |n| format!("SID-{upper}-{n}"),
            user,
            protocol,
            None,
            |_, _| Port::Host(Box::new(host)),
            now,
        )
    }

    /// Default gateway and subnet for L3 sessions (None: use SecureNAT's address if enabled,
    /// else resolve every destination directly).
    pub fn set_static_network(&mut self, network: Option<StaticNetwork>) {
        self.static_network = network;
    }

    /// The static network set with [`Hub::set_static_network`].
    pub fn static_network(&self) -> Option<StaticNetwork> {
        self.static_network
    }

    fn route(&self) -> Route {
        if let Some(n) = self.static_network {
            return Route {
                gateway: Some(n.gateway),
                mask: Some(n.mask),
            };
        }
        match &self.securenat {
            Some((_, cfg)) => Route {
                gateway: Some(cfg.ip),
                mask: Some(cfg.mask),
            },
            None => Route::default(),
        }
    }

    /// an IP packet that an L3 session sent into the hub; IP packets for L3 sessions that result
    /// are pushed to `out`
    pub fn input_ip(
        &mut self,
        from: SessionId,
        packet: &[u8],
        now: Instant,
        out: &mut Vec<Delivery>,
    ) {
        self.see(now);
        let route = self.route();
        let Some(Session {
            port: Port::L3(adapter),
            last_comm,
            ..
        }) = self.sessions.get_mut(&from)
        else {
            self.dropped += 1;
            return;
        };
        *last_comm = now;
        let Scratch { frames, spare, .. } = &mut self.scratch;
        frames.clear();
        match adapter.send_ip(packet, route, now, frames, spare) {
            Ok(evicted) => self.dropped += evicted,
            Err(SendError::Malformed | SendError::Unsupported | SendError::QueueFull) => {
                self.dropped += 1
            }
        }
        self.queue.extend(frames.drain(..).map(|f| (from, f)));
        self.run(now, out);
    }

    /// The IP sessions between which a unicast IPv4 packet goes through the switch untouched,
    /// as of `now`: a packet one of them sends to another's address reaches that session alone,
    /// as it was sent, and the switch only counts it and refreshes its sender's table entries.
    /// Its owner may then carry such packets itself, outside the hub, and report them with
    /// [`Hub::count_direct`].
    ///
    /// None while the hub has access rules or monitoring sessions. A session is one when its
    /// policy neither filters, tags, limits nor polices addresses ([`PortPolicy::is_plain`]),
    /// its address is a host of the hub's network reached directly (not through the gateway),
    /// and the MAC table holds its MAC for it (a frame to an unknown MAC is flooded instead).
    pub fn direct_sessions(&self, now: Instant) -> Vec<(SessionId, Ipv4Addr)> {
        if !self.access.is_empty() || !self.monitors.is_empty() {
            return Vec::new();
        }
        let route = self.route();
        let mut direct: Vec<(SessionId, Ipv4Addr)> = (self.sessions.iter())
            .filter_map(|(id, s)| {
                let Port::L3(adapter) = &s.port else {
                    return None;
                };
                let ip = adapter.ip()?;
                let reached = route.next_hop(ip) == ip && !route.is_broadcast(ip, Some(ip));
                let known = self.mac_table.get(&adapter.mac(), now) == Some(id);
                (s.policy.is_plain() && is_host_ipv4(ip) && reached && known).then_some((*id, ip))
            })
            .collect();
        direct.sort_unstable();
        direct
    }

    /// `packets` unicast IPv4 packets of `bytes` bytes in all (IP headers on) that `from`
    /// sent to `to`, both of [`Hub::direct_sessions`], carried by the hub's owner: counted and
    /// learnt as the switch does when it forwards them itself (each as a frame 14 bytes longer).
    pub fn count_direct(
        &mut self,
        from: SessionId,
        to: SessionId,
        packets: u64,
        bytes: u64,
        now: Instant,
    ) {
        self.see(now);
        let frames = bytes + packets * ETHERNET_HEADER_LEN as u64;
        let Some(s) = self.sessions.get_mut(&from) else {
            return;
        };
        let Port::L3(adapter) = &s.port else {
            return;
        };
        let (mac, ip) = (adapter.mac(), adapter.ip());
        s.recv.count_many(packets, frames);
        s.last_comm = now;
        self.traffic.recv.count_many(packets, frames);
        self.mac_table.learn(mac, from, now);
        if let Some(ip) = ip.filter(|ip| is_host_ipv4(*ip)) {
            self.ip_table.learn(IpAddr::V4(ip), (from, mac), now);
        }
        if let Some(r) = self.sessions.get_mut(&to) {
            r.send.count_many(packets, frames);
            r.last_comm = now;
            self.traffic.send.count_many(packets, frames);
        }
    }

    /// Gives an IP session its address before its first packet (see [`L3Adapter::assign`]).
    pub fn assign_address(
        &mut self,
        session: SessionId,
        ip: Ipv4Addr,
        now: Instant,
        out: &mut Vec<Delivery>,
    ) {
        let Some(Session {
            port: Port::L3(adapter),
            ..
        }) = self.sessions.get_mut(&session)
        else {
            return;
        };
        let mut frames = Vec::new();
        adapter.assign(ip, &mut frames);
        // the server handed it out, as a DHCP server would have
        self.dhcp.insert(ip, (session, None));
        self.queue.extend(frames.into_iter().map(|f| (session, f)));
        self.run(now, out);
    }

    /// an Ethernet frame from an L2 session (for later bridges/native clients); same output
    pub fn input_frame(
        &mut self,
        from: SessionId,
        frame: &[u8],
        now: Instant,
        out: &mut Vec<Delivery>,
    ) {
        self.see(now);
        self.switch(from, frame, now, out);
        self.run(now, out);
    }

    /// ageing of MAC/IP tables, ARP retries/queue expiry; call about once a second
    pub fn tick(&mut self, now: Instant, out: &mut Vec<Delivery>) {
        self.see(now);
        self.mac_table.expire(now);
        self.ip_table.expire(now);
        self.dhcp
            .retain(|_, (_, until)| until.is_none_or(|t| t > now));
        let mut frames = Vec::new();
        let mut sessions: Vec<_> = self.sessions.iter_mut().collect();
        sessions.sort_unstable_by_key(|(id, _)| **id);
        for (id, session) in sessions {
            match &mut session.port {
                Port::L3(adapter) => self.dropped += adapter.tick(now, &mut frames),
                Port::Host(host) => host.poll(now, &mut frames),
                Port::L2 => {}
            }
            self.queue.extend(frames.drain(..).map(|f| (*id, f)));
        }
        self.run(now, out);
    }

    fn run(&mut self, now: Instant, out: &mut Vec<Delivery>) {
        let mut budget = MAX_FRAMES_PER_CALL;
        while let Some((from, frame)) = self.queue.pop_front() {
            if budget == 0 {
                self.dropped += 1 + self.queue.len() as u64;
                self.queue.clear();
                return;
            }
            budget -= 1;
            self.switch(from, &frame, now, out);
            self.scratch.spare.give(frame);
        }
    }

    /// Learn the source IP of a frame; `Err(())` if its ARP/IP header is malformed.
    fn learn_ip(
        &mut self,
        from: SessionId,
        src_mac: [u8; 6],
        eth: &EthernetFrame<&[u8]>,
        now: Instant,
    ) -> Result<(), ()> {
        let ip = match eth.ethertype() {
            EthernetProtocol::Arp => {
                let arp = parse_arp(eth.payload()).ok_or(())?;
                is_host_ipv4(arp.sender_ip).then_some(IpAddr::V4(arp.sender_ip))
            }
            EthernetProtocol::Ipv4 => {
                let p = Ipv4Packet::new_checked(eth.payload()).map_err(|_| ())?;
                if p.version() != 4 || p.header_len() < 20 {
                    return Err(());
                }
                is_host_ipv4(p.src_addr()).then_some(IpAddr::V4(p.src_addr()))
            }
            EthernetProtocol::Ipv6 => {
                let p = Ipv6Packet::new_checked(eth.payload()).map_err(|_| ())?;
                if p.version() != 6 {
                    return Err(());
                }
                let src = p.src_addr();
                (!src.is_unspecified() && !src.is_multicast()).then_some(IpAddr::V6(src))
            }
            _ => None,
        };
        if let Some(ip) = ip {
            self.ip_table.learn(ip, (from, src_mac), now);
        }
        Ok(())
    }

    /// MaxMac, MaxIP and MaxIPv6: whether the frame brings a new MAC, IPv4 or IPv6 source
    /// address to a session that already has as many as its policy allows (at least 3 MACs, 4
    /// IPv4 and 5 IPv6 addresses, as in SoftEther); CheckMac, CheckIP and CheckIPv6: whether
    /// it takes an address another session used within the last 13 s; DHCPForce: whether it
    /// sends from an IPv4 address no DHCP server gave the session.
    fn over_address_limits(
        &self,
        from: SessionId,
        policy: &PortPolicy,
        src_mac: [u8; 6],
        eth: &EthernetFrame<&[u8]>,
        kinds: &mut Option<Kinds>,
        now: Instant,
    ) -> bool {
        let taken = |owner: SessionId, updated: Instant| {
            owner != from && now.saturating_duration_since(updated) < EXCLUSIVE_TIME
        };
        // how many live addresses of a kind the session has
        let mine = |v4: bool| {
            self.ip_table
                .live(now)
                .iter()
                .filter(|(ip, slot)| ip.is_ipv4() == v4 && slot.value.0 == from)
                .count()
        };
        if policy.max_mac != 0 || policy.check_mac {
            match self.mac_table.slot(&src_mac, now) {
                Some(slot) if policy.check_mac && taken(slot.value, slot.updated) => return true,
                Some(_) => {}
                None if policy.max_mac != 0 => {
                    let mine = self
                        .mac_table
                        .live(now)
                        .iter()
                        .filter(|(_, slot)| slot.value == from)
                        .count();
                    if mine >= policy.max_mac.max(3) as usize {
                        return true;
                    }
                }
                None => {}
            }
        }
        let check_ip = policy.check_ip || policy.dhcp_force;
        if policy.max_ip != 0 || check_ip {
            let src = match eth.ethertype() {
                EthernetProtocol::Arp => parse_arp(eth.payload()).map(|a| a.sender_ip),
                EthernetProtocol::Ipv4 => Ipv4Packet::new_checked(eth.payload())
                    .ok()
                    .map(|p| p.src_addr()),
                _ => None,
            };
            let kinds = kinds.get_or_insert_with(|| Kinds::of(eth.as_ref()));
            // DHCP itself is how a session gets its address
            let src = src.filter(|ip| is_host_ipv4(*ip) && kinds.dhcp4_op.is_none());
            if let Some(ip) = src {
                if policy.dhcp_force
                    && !self.dhcp.get(&ip).is_some_and(|(owner, until)| {
                        *owner == from && until.is_none_or(|t| t > now)
                    })
                {
                    return true;
                }
                match self.ip_table.slot(&IpAddr::V4(ip), now) {
                    Some(slot) if check_ip && taken(slot.value.0, slot.updated) => return true,
                    Some(_) => {}
                    None if policy.max_ip != 0 && mine(true) >= policy.max_ip.max(4) as usize => {
                        return true
                    }
                    None => {}
                }
            }
        }
        if (policy.max_ipv6 != 0 || policy.check_ipv6) && eth.ethertype() == EthernetProtocol::Ipv6
        {
            let src = Ipv6Packet::new_checked(eth.payload())
                .ok()
                .map(|p| p.src_addr())
                .filter(|ip| !ip.is_unspecified() && !ip.is_multicast() && !ip.is_loopback());
            if let Some(ip) = src {
                let kinds = kinds.get_or_insert_with(|| Kinds::of(eth.as_ref()));
                // router discovery and DHCPv6 are how a session gets its addresses
                let exempt = matches!(kinds.icmp6, Some(133 | 134))
                    || kinds.udp6.is_some_and(|(_, dp)| dp == 546 || dp == 547);
                match self.ip_table.slot(&IpAddr::V6(ip), now) {
                    Some(slot) if policy.check_ipv6 && taken(slot.value.0, slot.updated) => {
                        return true
                    }
                    Some(_) => {}
                    None if policy.max_ipv6 != 0
                        && !exempt
                        && mine(false) >= policy.max_ipv6.max(5) as usize =>
                    {
                        return true
                    }
                    None => {}
                }
            }
        }
        false
    }

    /// Notes the address a DHCP ack in `frame` gives, for the session that owns its client's
    /// MAC address (DHCPForce).
    fn snoop_dhcp(&mut self, frame: &[u8], now: Instant) {
        let Some(ack) = dhcp_ack(frame) else { return };
        let Some(owner) = self.mac_table.get(&ack.chaddr, now).copied() else {
            return;
        };
        if self.dhcp.len() >= MAX_IP_ENTRIES && !self.dhcp.contains_key(&ack.yiaddr) {
            self.dhcp
                .retain(|_, (_, until)| until.is_none_or(|t| t > now));
            if self.dhcp.len() >= MAX_IP_ENTRIES {
                return;
            }
        }
        let hold = ack
            .lease
            .unwrap_or(DHCP_HOLD_MIN)
            .clamp(DHCP_HOLD_MIN, DHCP_HOLD_MAX);
        self.dhcp.insert(ack.yiaddr, (owner, Some(now + hold)));
    }

    /// The one way in for every frame a session sends: checked, its source learnt, past the
    /// session's upload limit, then forwarded.
    fn switch(&mut self, from: SessionId, frame: &[u8], now: Instant, out: &mut Vec<Delivery>) {
        let Some(policy) = self.sessions.get(&from).map(|s| s.policy) else {
            self.dropped += 1;
            return;
        };
        // a monitoring session only listens
        if policy.monitor {
            self.policy_dropped += 1;
            return;
        }
        let frame: Cow<[u8]> = if policy.vlan_id != 0 && frame.len() >= 14 {
            Cow::Owned(vlan_tag(frame, policy.vlan_id))
        } else {
            Cow::Borrowed(frame)
        };
        let frame = &frame[..];
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            self.dropped += 1;
            return;
        };
        let src_mac = eth.src_addr().0;
        // A group address as source is never valid; such frames would poison the MAC table.
        if is_group_mac(&src_mac) {
            self.dropped += 1;
            return;
        }
        // the session's policy: frames it may not send, addresses beyond its limits
        let mut kinds = (policy.filters.0 != 0).then(|| Kinds::of(frame));
        if kinds.is_some_and(|k| policy.filters.drops_from(&k))
            || self.over_address_limits(from, &policy, src_mac, &eth, &mut kinds, now)
        {
            self.policy_dropped += 1;
            return;
        }
        if self.learn_ip(from, src_mac, &eth, now).is_err() {
            self.dropped += 1;
            return;
        }
        self.snoop_dhcp(frame, now);
        // the access list: rules up to the first that names a receiving user decide here; if
        // none did, the rest are checked for each receiving session
        let mut pending = false;
        if !self.access.is_empty() {
            if let (Some(info), Some(s)) = (FrameInfo::of(frame), self.sessions.get(&from)) {
                let verdict = self.access.check_in(&info, &s.ident);
                // the rule's redirect answers a web request, whether the rule passes or
                // discards; the request goes no further
                if let Some(url) = self.access.redirect_url() {
                    if let Some(reply) = self.redirect(from, frame, url, now) {
                        self.access_dropped += 1;
                        self.deliver(from, &reply, false, now, out);
                        return;
                    }
                }
                match verdict {
                    Verdict::Discard => {
                        self.access_dropped += 1;
                        return;
                    }
                    Verdict::Pass => {}
                    Verdict::NoMatch => pending = self.access.per_destination(),
                }
                // the passing rule's simulated loss and delay
                if let Some(i) = self.access.impairment() {
                    let held = match self.delayed.impair(i, now) {
                        Impaired::Lost => false,
                        Impaired::Delayed(due) => self.delayed.hold((from, pending), frame, due),
                    };
                    if !held {
                        self.access_dropped += 1;
                    }
                    return;
                }
            }
        }
        // broadcast storms from a session are held back (the hub's own hosts are trusted)
        if is_group_mac(&eth.dst_addr().0)
            && !policy.no_broadcast_limiter
            && self
                .sessions
                .get_mut(&from)
                .is_some_and(|s| !matches!(s.port, Port::Host(_)) && !s.storm.admit(frame, now))
        {
            self.policy_dropped += 1;
            return;
        }
        self.upload(from, frame, pending, now, out);
    }

    /// A frame past the access list: through the sender's upload limit, then forwarded.
    fn upload(
        &mut self,
        from: SessionId,
        frame: &[u8],
        pending: bool,
        now: Instant,
        out: &mut Vec<Delivery>,
    ) {
        if let Some(s) = self.sessions.get_mut(&from) {
            let patient = matches!(s.port, Port::Host(_));
            match s.up.admit(frame, now, patient, pending) {
                Admit::Now => {}
                Admit::Queued => return,
                Admit::Dropped => {
                    self.policy_dropped += 1;
                    return;
                }
            }
        }
        self.forward(from, frame, pending, now, out);
    }

    /// Switches a frame a session sent (past its upload limit) to the sessions it is for;
    /// `pending`: the access list has rules to check for each of them.
    fn forward(
        &mut self,
        from: SessionId,
        frame: &[u8],
        pending: bool,
        now: Instant,
        out: &mut Vec<Delivery>,
    ) {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            self.dropped += 1;
            return;
        };
        let (src_mac, dst_mac) = (eth.src_addr().0, eth.dst_addr().0);
        let broadcast = is_group_mac(&dst_mac);
        let Some(s) = self.sessions.get_mut(&from) else {
            return;
        };
        let privacy = s.policy.privacy_filter;
        let patient = matches!(s.port, Port::Host(_));
        let mut kinds: Option<Kinds> = None;
        let per_destination = if pending {
            FrameInfo::of(frame).map(|info| (info, s.ident.clone()))
        } else {
            None
        };
        s.recv.count(broadcast, frame.len());
        s.last_comm = now;
        self.traffic.recv.count(broadcast, frame.len());
        self.mac_table.learn(src_mac, from, now);

        // every other session but those monitoring, which get their copy below
        let mut targets = std::mem::take(&mut self.scratch.targets);
        targets.clear();
        // in the order the sessions came
        let all_others = |targets: &mut Vec<SessionId>| {
            targets.extend(
                (self.sessions.keys())
                    .filter(|id| **id != from && !self.monitors.contains(id))
                    .copied(),
            );
            targets.sort_unstable();
        };
        if broadcast {
            all_others(&mut targets);
        } else {
            match self.mac_table.get(&dst_mac, now) {
                // Never reflect a frame back out of the port it came in on; a monitoring
                // session gets its copy below.
                Some(s) if *s == from || self.monitors.contains(s) => {}
                Some(s) => targets.push(*s),
                None => all_others(&mut targets),
            }
        }
        let regular = targets.len();
        targets.extend(self.monitors.iter().filter(|id| **id != from));

        for (i, &to) in targets.iter().enumerate() {
            let Some(session) = self.sessions.get_mut(&to) else {
                continue;
            };
            let monitoring = i >= regular;
            // two sessions under the privacy filter never see each other's frames
            if privacy && session.policy.privacy_filter && !monitoring {
                self.policy_dropped += 1;
                continue;
            }
            // a session on a VLAN receives its VLAN's frames only, untagged; a session under
            // NoIPv6DefaultRouterInRA gets router advertisements without the default router
            let p = &session.policy;
            let over_ipv6 = session.client_addr.is_some_and(|a| a.is_ipv6());
            let rewritten = if p.vlan_id != 0 {
                match vlan_untag(frame, p.vlan_id) {
                    Some(f) => Some(f),
                    None => {
                        self.policy_dropped += 1;
                        continue;
                    }
                }
            } else {
                None
            };
            let rewritten =
                if p.ra_no_default_router || (p.ra_no_default_router_over_ipv6 && over_ipv6) {
                    ra_without_default_router(rewritten.as_deref().unwrap_or(frame)).or(rewritten)
                } else {
                    rewritten
                };
            let frame = rewritten.as_deref().unwrap_or(frame);
            if session.policy.filters.0 != 0
                && session.policy.filters.drops_to(&match rewritten {
                    Some(_) => Kinds::of(frame),
                    None => *kinds.get_or_insert_with(|| Kinds::of(frame)),
                })
            {
                self.policy_dropped += 1;
                continue;
            }
            if let Some((info, src)) = &per_destination {
                if self.access.check_to(info, src, &session.ident) == Verdict::Discard {
                    self.access_dropped += 1;
                    continue;
                }
            }
            match session.down.admit(frame, now, patient, false) {
                Admit::Now => self.deliver(to, frame, broadcast, now, out),
                Admit::Queued => {}
                Admit::Dropped => self.policy_dropped += 1,
            }
        }
        targets.clear();
        self.scratch.targets = targets;
    }

    /// Hands a frame to one session's port.
    fn deliver(
        &mut self,
        to: SessionId,
        frame: &[u8],
        broadcast: bool,
        now: Instant,
        out: &mut Vec<Delivery>,
    ) {
        let route = self.route();
        let Some(session) = self.sessions.get_mut(&to) else {
            return;
        };
        let Scratch {
            frames,
            packets,
            spare,
            ..
        } = &mut self.scratch;
        frames.clear();
        packets.clear();
        session.send.count(broadcast, frame.len());
        session.last_comm = now;
        self.traffic.send.count(broadcast, frame.len());
        let malformed = match &mut session.port {
            Port::L3(adapter) => adapter
                .receive_frame(frame, route, now, packets, frames, spare)
                .is_err(),
            Port::L2 => {
                out.push(Delivery {
                    session: to,
                    packet: frame.to_vec(),
                });
                false
            }
            Port::Host(host) => match host.handle_frame(frame, now, frames) {
                HostInput::Malformed => true,
                HostInput::Deferred => {
                    self.deferred = true;
                    false
                }
                HostInput::Handled | HostInput::Ignored => false,
            },
        };
        if malformed {
            self.dropped += 1;
        }
        out.extend(packets.drain(..).map(|packet| Delivery {
            session: to,
            packet,
        }));
        self.queue.extend(frames.drain(..).map(|f| (to, f)));
    }

    fn info(&self, id: SessionId, s: &Session<H>) -> SessionInfo {
        let (mac, ip) = match &s.port {
            Port::L3(a) => (a.mac(), a.ip()),
            Port::Host(h) => (h.mac(), h.ipv4()),
            Port::L2 => (
                self.mac_table
                    .live(self.last_now.unwrap_or(s.last_comm))
                    .into_iter()
                    .find(|(_, slot)| slot.value == id)
                    .map(|(mac, _)| mac)
                    .unwrap_or([0; 6]),
                None,
            ),
        };
        SessionInfo {
            id,
            name: s.name.clone(),
            user: s.user.clone(),
            protocol: s.protocol.clone(),
            client_addr: s.client_addr,
            created: s.created,
            last_comm: s.last_comm,
            send: s.send.clone(),
            recv: s.recv.clone(),
            mac,
            ip,
        }
    }

    /// All sessions, in creation order.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        let mut all: Vec<SessionInfo> = (self.sessions.iter())
            .map(|(id, s)| self.info(*id, s))
            .collect();
        all.sort_unstable_by_key(|s| s.id);
        all
    }

    pub fn session(&self, id: SessionId) -> Option<SessionInfo> {
        self.sessions.get(&id).map(|s| self.info(id, s))
    }

    /// What kind of port a session is.
    pub fn session_kind(&self, id: SessionId) -> Option<SessionKind> {
        self.sessions.get(&id).map(|s| match s.port {
            Port::L3(_) => SessionKind::L3,
            Port::L2 => SessionKind::L2,
            Port::Host(_) => SessionKind::VirtualHost,
        })
    }

    pub fn session_by_name(&self, name: &str) -> Option<SessionId> {
        (self.sessions.iter())
            .filter(|(_, s)| s.name.eq_ignore_ascii_case(name))
            .map(|(id, _)| *id)
            .min()
    }

    fn session_name(&self, id: SessionId) -> String {
        self.sessions
            .get(&id)
            .map(|s| s.name.clone())
            .unwrap_or_default()
    }

    /// Live MAC table entries, sorted by MAC. Entries past their ageing time are not listed even
    /// if `tick` has not removed them yet.
    pub fn mac_table(&self) -> Vec<MacEntry> {
        let Some(now) = self.listing_time() else {
            return Vec::new();
        };
        self.mac_table
            .live(now)
            .into_iter()
            .map(|(mac, slot)| MacEntry {
                mac,
                session: slot.value,
                session_name: self.session_name(slot.value),
                created: slot.created,
                updated: slot.updated,
            })
            .collect()
    }

    /// Live IP table entries, sorted by address.
    pub fn ip_table(&self) -> Vec<IpEntry> {
        let Some(now) = self.listing_time() else {
            return Vec::new();
        };
        self.ip_table
            .live(now)
            .into_iter()
            .map(|(ip, slot)| IpEntry {
                ip,
                session: slot.value.0,
                session_name: self.session_name(slot.value.0),
                mac: slot.value.1,
                created: slot.created,
                updated: slot.updated,
            })
            .collect()
    }

    /// The listings have no `now` argument; the latest instant the hub was given stands in for
    /// it (ageing itself happens in `tick`).
    fn listing_time(&self) -> Option<Instant> {
        self.last_now
    }

    /// malformed/undeliverable frames
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Hub-wide counters (StatusGet).
    pub fn traffic(&self) -> HubTraffic {
        self.traffic.clone()
    }
}
