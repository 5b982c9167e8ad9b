//! [`NatHost`]: the SecureNAT virtual host with NAT, DHCP and a DNS relay.
//!
//! TCP from the hub side ends in a smoltcp [`Interface`] in any-IP mode (a default route through
//! the host's own address makes it accept segments to every outside address); each connection
//! gets its own smoltcp TCP socket, created only once the runtime has connected the matching OS
//! socket, so a refused connection becomes a reset to the client rather than a half-open one.
//! UDP, DNS and ICMP echo are relayed packet by packet without smoltcp sockets.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use etherhub_hub::{parse_echo_request, HostInput, VirtualHost, VirtualHostConfig};
use smoltcp::iface::{
    Config, Interface, PollIngressSingleResult, PollResult, SocketHandle, SocketSet,
};
use smoltcp::phy::{ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::wire::{
    ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, HardwareAddress,
    Icmpv4Repr, IpAddress, IpCidr, IpListenEndpoint, IpProtocol, Ipv4Packet, Ipv4Repr, TcpControl,
    TcpPacket, TcpRepr, TcpSeqNumber, UdpPacket, UdpRepr,
};

use crate::dhcp::{DhcpConfig, DhcpServer, Lease};
use crate::io::{FlowId, IoEvent, IoRequest};
use crate::packet::{icmp_frame, tcp_frame, udp_frame};

/// Bytes of client data handed to the runtime and not yet written to the OS socket, per flow.
const MAX_IN_FLIGHT: usize = 256 * 1024;
/// smoltcp socket buffers per TCP flow (window scaling covers more than 64 KiB).
const TCP_RX_BUFFER: usize = 256 * 1024;
const TCP_TX_BUFFER: usize = 256 * 1024;
/// Credit is handed out in steps at least this large, to keep the request count low.
const GRANT_STEP: usize = 16 * 1024;
const DHCP_SERVER_PORT: u16 = 67;
const DHCP_CLIENT_PORT: u16 = 68;
const DNS_PORT: u16 = 53;
const IP_UDP_HEADERS: usize = 28;

/// The settings the host runs with (SoftEther's SecureNAT options).
#[derive(Clone, Debug)]
pub struct NatConfig {
    pub host: VirtualHostConfig,
    /// NAT on (UseNat); DHCP and the DNS relay work without it.
    pub nat_enabled: bool,
    /// NatMtu: the largest IP packet the host sends to the hub.
    pub mtu: usize,
    pub tcp_timeout: Duration,
    pub udp_timeout: Duration,
    /// Most NAT flows alive at once (TCP, UDP, DNS and ICMP together).
    pub max_sessions: usize,
    pub dhcp: Option<DhcpConfig>,
    /// Resolvers DNS queries to the host's address are relayed to.
    pub dns_servers: Vec<Ipv4Addr>,
    /// Seed for smoltcp's initial sequence numbers (the core never draws randomness itself).
    pub seed: u64,
}

/// EnumNAT's protocol numbers (SoftEther's NAT_TCP, NAT_UDP, NAT_DNS, NAT_ICMP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NatProtocol {
    Tcp = 0,
    Udp = 1,
    Dns = 2,
    Icmp = 3,
}

/// EnumNAT's TCP states (SoftEther's NAT_TCP_*).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpStatus {
    Connecting = 0,
    SendReset = 1,
    Connected = 2,
    Established = 3,
    WaitDisconnect = 4,
}

/// One row of the NAT table (EnumNAT).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatEntry {
    pub id: FlowId,
    pub protocol: NatProtocol,
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub created: Instant,
    pub last: Instant,
    /// bytes from the client to the outside
    pub sent: u64,
    /// bytes from the outside to the client
    pub recv: u64,
    pub tcp_status: TcpStatus,
}

/// Counters of what the host could not use (malformed input, limits, oversized replies).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatCounters {
    pub dropped: u64,
    pub refused_sessions: u64,
    /// TCP flows whose stalled retransmission was brought forward (see `NatHost::rescue`)
    pub stalls_rescued: u64,
}

type Key = (Ipv4Addr, u16, Ipv4Addr, u16);

struct Common {
    id: FlowId,
    client_mac: [u8; 6],
    src: SocketAddrV4,
    dst: SocketAddrV4,
    created: Instant,
    last: Instant,
    sent: u64,
    recv: u64,
}

struct TcpFlow {
    c: Common,
    /// the client's SYN frame, held until the OS socket connects
    syn: Option<Vec<u8>>,
    handle: Option<SocketHandle>,
    established: bool,
    in_flight: usize,
    granted: usize,
    pending: Vec<u8>,
    outside_eof: bool,
    fin_sent: bool,
    shutdown_sent: bool,
    /// bytes ever put in smoltcp's send buffer, and how many of them the client acknowledged
    pushed: u64,
    acked: u64,
    /// when the client last acknowledged data (or there was none outstanding), in both clocks
    progress: Instant,
    progress_ts: smoltcp::time::Instant,
    /// whether the stall since `progress` was already rescued (once per stall: see `rescue`)
    rescued: bool,
    /// While the client holds data beyond a gap: the end of the highest block its SACKs named
    /// beyond its acknowledgement, until the acknowledgement passes it ([`HOLE_STALL_MIN`]).
    /// Its other acknowledgements (window updates) carry no SACK and change nothing.
    gap_to: Option<TcpSeqNumber>,
    /// when the SYN-ACK went out, then the handshake's round trip once the client answered it
    synack_at: Option<Instant>,
    rtt: Duration,
}

struct UdpFlow {
    c: Common,
    protocol: NatProtocol,
    real_dst: SocketAddrV4,
}

struct IcmpFlow {
    c: Common,
    ident: u16,
}

/// The SecureNAT host. Sans-IO: inputs carry `now`; frames go to the caller's `Vec`, socket work
/// to [`NatHost::poll_io`].
///
/// Call order: the hub calls [`VirtualHost::handle_frame`] with frames for the host and
/// [`VirtualHost::poll`] on its tick and after every batch of frames (segments of established
/// TCP connections wait in a queue until then, so smoltcp takes a whole batch in one pass and
/// answers it with one acknowledgement, as a receiver with GRO would); the runtime feeds socket
/// results with [`NatHost::handle_io`], then has the hub call `poll` (which emits the frames
/// those results made) and drains [`NatHost::poll_io`] after every one of these calls.
pub struct NatHost {
    cfg: NatConfig,
    epoch: Instant,
    iface: Interface,
    sockets: SocketSet<'static>,
    next_flow: u32,
    tcp: BTreeMap<FlowId, TcpFlow>,
    tcp_keys: HashMap<Key, FlowId>,
    udp: BTreeMap<FlowId, UdpFlow>,
    udp_keys: HashMap<Key, FlowId>,
    icmp: BTreeMap<FlowId, IcmpFlow>,
    icmp_keys: HashMap<(Ipv4Addr, Ipv4Addr, u16), FlowId>,
    dhcp: Option<DhcpServer>,
    in_use: HashSet<Ipv4Addr>,
    requests: VecDeque<IoRequest>,
    /// frames made while handling I/O events, sent on the next `poll`
    frames: Vec<Vec<u8>>,
    /// segments of established connections, waiting for smoltcp's next pass
    rx_queue: VecDeque<Vec<u8>>,
    /// when idle flows were last looked for
    last_reap: Option<Instant>,
    /// how far smoltcp's clock runs ahead of `now - epoch` (see `rescue`)
    skew: Duration,
    /// the earliest moment a flow with data outstanding counts as stalled
    next_stall: Option<Instant>,
    counters: NatCounters,
}

/// Most segments held for one smoltcp pass; more than a receive batch ever brings.
const RX_QUEUE_MAX: usize = 256;
/// Most frames smoltcp sends per poll; what is left goes on the next one (see `iface_poll`).
const EGRESS_BUDGET: usize = 64;
/// A flow whose data has gone unacknowledged this long, and for [`STALL_RTTS`] of its
/// handshake's round trip, is stalled: a lost tail or a lost retransmission that only
/// smoltcp's retransmission timer would end, a second later (its floor is RFC 6298's one
/// second; Linux's is 200 ms, and no SACK recovery helps smoltcp before it).
const STALL_MIN: Duration = Duration::from_millis(200);
const STALL_RTTS: u32 = 4;
/// The same for a flow whose client has said (SACK) that it holds data beyond a gap: a loss
/// for certain, and one smoltcp's fast retransmission does not mend when it is the second in
/// a window (smoltcp sends the first missing segment once, then waits for its timer). Four
/// round trips cover the duplicate acknowledgements smoltcp's own retransmission waits for.
const HOLE_STALL_MIN: Duration = Duration::from_millis(5);
/// smoltcp's smallest retransmission timeout (RFC 6298's one second).
const SMOLTCP_MIN_RTO: Duration = Duration::from_secs(1);
/// How often a busy host looks for idle and closed flows.
const REAP_EVERY: Duration = Duration::from_millis(100);

/// The device smoltcp polls: the queued segments, then at most one borrowed frame in, frames
/// out to a `Vec`.
struct Dev<'a> {
    queue: &'a mut VecDeque<Vec<u8>>,
    rx: Option<&'a [u8]>,
    tx: &'a mut Vec<Vec<u8>>,
    mtu: usize,
    /// frames `transmit` may still hand out
    budget: usize,
}

enum Rx<'a> {
    Queued(Vec<u8>),
    Borrowed(&'a [u8]),
}
struct Tx<'a>(&'a mut Vec<Vec<u8>>);

impl smoltcp::phy::RxToken for Rx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        match self {
            Rx::Queued(v) => f(&v),
            Rx::Borrowed(b) => f(b),
        }
    }
}

impl smoltcp::phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0u8; len];
        let r = f(&mut buf);
        self.0.push(buf);
        r
    }
}

impl Device for Dev<'_> {
    type RxToken<'b>
        = Rx<'b>
    where
        Self: 'b;
    type TxToken<'b>
        = Tx<'b>
    where
        Self: 'b;

    fn receive(
        &mut self,
        _: smoltcp::time::Instant,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let rx = match self.queue.pop_front() {
            Some(v) => Rx::Queued(v),
            None => Rx::Borrowed(self.rx.take()?),
        };
        Some((rx, Tx(self.tx)))
    }

    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
        self.budget = self.budget.checked_sub(1)?;
        Some(Tx(self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.mtu + 14;
        caps
    }
}

fn prefix_len(mask: Ipv4Addr) -> u8 {
    let m = u32::from(mask);
    if m.leading_ones() + m.trailing_zeros() == 32 {
        m.leading_ones() as u8
    } else {
        24
    }
}

impl NatHost {
    pub fn new(mut cfg: NatConfig, now: Instant) -> Self {
        // smoltcp refuses a group MAC; the low bit of the first byte is never ours to keep
        cfg.host.mac[0] &= 0xfe;
        cfg.mtu = cfg.mtu.clamp(576, 9000);
        let mut out = Vec::new();
        let mut queue = VecDeque::new();
        let mut dev = Dev {
            queue: &mut queue,
            rx: None,
            tx: &mut out,
            mtu: cfg.mtu,
            budget: 0,
        };
        let mut icfg = Config::new(HardwareAddress::Ethernet(EthernetAddress(cfg.host.mac)));
        icfg.random_seed = cfg.seed;
        let mut iface = Interface::new(icfg, &mut dev, smoltcp::time::Instant::ZERO);
        let ip = cfg.host.ip;
        let prefix = prefix_len(cfg.host.mask);
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::new(IpAddress::Ipv4(ip), prefix));
        });
        iface.set_any_ip(true);
        let _ = iface.routes_mut().add_default_ipv4_route(ip);
        let dhcp = cfg.dhcp.clone().map(|d| DhcpServer::new(d, ip));
        Self {
            cfg,
            epoch: now,
            iface,
            sockets: SocketSet::new(Vec::new()),
            next_flow: 0,
            tcp: BTreeMap::new(),
            tcp_keys: HashMap::new(),
            udp: BTreeMap::new(),
            udp_keys: HashMap::new(),
            icmp: BTreeMap::new(),
            icmp_keys: HashMap::new(),
            dhcp,
            in_use: HashSet::new(),
            requests: VecDeque::new(),
            frames: Vec::new(),
            rx_queue: VecDeque::new(),
            last_reap: None,
            skew: Duration::ZERO,
            next_stall: None,
            counters: NatCounters::default(),
        }
    }

    pub fn config(&self) -> &NatConfig {
        &self.cfg
    }

    /// Changes the timeouts and limits in place (NatSet); live flows keep going.
    pub fn set_limits(&mut self, tcp_timeout: Duration, udp_timeout: Duration, max: usize) {
        self.cfg.tcp_timeout = tcp_timeout;
        self.cfg.udp_timeout = udp_timeout;
        self.cfg.max_sessions = max;
    }

    /// Addresses other stations on the hub use (the hub's IP table); the DHCP pool skips them.
    pub fn set_in_use(&mut self, ips: impl IntoIterator<Item = Ipv4Addr>) {
        self.in_use = ips.into_iter().collect();
    }

    /// The next socket request, if any.
    #[must_use]
    pub fn poll_io(&mut self) -> Option<IoRequest> {
        self.requests.pop_front()
    }

    pub fn counters(&self) -> NatCounters {
        self.counters
    }

    /// When smoltcp next wants [`VirtualHost::poll`] (retransmissions, delayed ACKs), or a
    /// stalled flow wants rescuing.
    pub fn poll_delay(&mut self, now: Instant) -> Option<Duration> {
        let ts = self.ts(now);
        let smol = self
            .iface
            .poll_delay(ts, &self.sockets)
            .map(|d| Duration::from_micros(d.total_micros()));
        let stall = self.next_stall.map(|t| t.saturating_duration_since(now));
        match (smol, stall) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The live NAT flows, TCP first, each kind by id.
    pub fn nat_table(&self) -> Vec<NatEntry> {
        let row = |c: &Common, protocol, tcp_status| NatEntry {
            id: c.id,
            protocol,
            src: c.src,
            dst: c.dst,
            created: c.created,
            last: c.last,
            sent: c.sent,
            recv: c.recv,
            tcp_status,
        };
        let mut v: Vec<NatEntry> = self
            .tcp
            .values()
            .map(|f| {
                let status = match f.handle {
                    None => TcpStatus::Connecting,
                    Some(_) if f.fin_sent || f.shutdown_sent => TcpStatus::WaitDisconnect,
                    Some(_) if f.established => TcpStatus::Established,
                    Some(_) => TcpStatus::Connected,
                };
                row(&f.c, NatProtocol::Tcp, status)
            })
            .collect();
        v.extend(
            self.udp
                .values()
                .map(|f| row(&f.c, f.protocol, TcpStatus::Connecting)),
        );
        v.extend(
            self.icmp
                .values()
                .map(|f| row(&f.c, NatProtocol::Icmp, TcpStatus::Connecting)),
        );
        v
    }

    /// A lease from the DHCP server for `mac`, as if it had asked (see
    /// [`DhcpServer::lease_for`]); `None` without a DHCP server or a free address.
    pub fn lease_for(&mut self, mac: [u8; 6], hostname: &str, now: Instant) -> Option<Ipv4Addr> {
        let in_use = &self.in_use;
        self.dhcp.as_mut()?.lease_for(mac, hostname, now, in_use)
    }

    /// Ends a lease [`NatHost::lease_for`] gave.
    pub fn release(&mut self, mac: [u8; 6]) {
        if let Some(d) = &mut self.dhcp {
            d.release(mac);
        }
    }

    /// The DHCP leases (EnumDHCP).
    pub fn leases(&self) -> Vec<Lease> {
        self.dhcp
            .as_ref()
            .map(|d| d.leases().cloned().collect())
            .unwrap_or_default()
    }

    fn ts(&self, now: Instant) -> smoltcp::time::Instant {
        let d = now.saturating_duration_since(self.epoch) + self.skew;
        smoltcp::time::Instant::from_micros(d.as_micros().min(i64::MAX as u128) as i64)
    }

    fn flows(&self) -> usize {
        self.tcp.len() + self.udp.len() + self.icmp.len()
    }

    /// Whether one more flow may start; a full table is first cleared of idle flows, so a
    /// client is never refused for flows that have already timed out. A refusal is counted.
    fn room_for_flow(&mut self, now: Instant) -> bool {
        if self.flows() >= self.cfg.max_sessions {
            self.reap(now);
        }
        let room = self.flows() < self.cfg.max_sessions;
        if !room {
            self.counters.refused_sessions += 1;
        }
        room
    }

    fn new_flow_id(&mut self) -> FlowId {
        self.next_flow = self.next_flow.wrapping_add(1).max(1);
        FlowId(self.next_flow)
    }

    /// Runs smoltcp over the queued segments and at most one more frame, and collects what it
    /// sends.
    fn iface_poll(&mut self, frame: Option<&[u8]>, now: Instant, out: &mut Vec<Vec<u8>>) {
        let ts = self.ts(now);
        let mut dev = Dev {
            queue: &mut self.rx_queue,
            rx: frame,
            tx: out,
            mtu: self.cfg.mtu,
            budget: 0,
        };
        // Not `Interface::poll`: since smoltcp 0.13 it sends until the sockets have nothing left.
        // Every frame in, then egress within a budget: each socket's congestion window (CUBIC)
        // paces it by the acknowledgements it gets, and the budget bounds the burst one poll
        // puts in the client's socket buffer (wireguard-go's is 208 KiB by default).
        self.iface.poll_maintenance(ts);
        while !matches!(
            self.iface
                .poll_ingress_single(ts, &mut dev, &mut self.sockets),
            PollIngressSingleResult::None
        ) {}
        dev.budget = EGRESS_BUDGET;
        while dev.budget > 0
            && !matches!(
                self.iface.poll_egress(ts, &mut dev, &mut self.sockets),
                PollResult::None
            )
        {}
    }

    /// One socket result from the runtime.
    pub fn handle_io(&mut self, event: IoEvent, now: Instant) {
        match event {
            IoEvent::TcpConnected { flow } => self.tcp_connected(flow, now),
            IoEvent::TcpSent { flow, bytes } => {
                if let Some(f) = self.tcp.get_mut(&flow) {
                    f.in_flight = f.in_flight.saturating_sub(bytes);
                }
            }
            IoEvent::TcpData { flow, data } => {
                let ts = self.ts(now);
                let Some(f) = self.tcp.get_mut(&flow) else {
                    return;
                };
                f.c.last = now;
                f.c.recv += data.len() as u64;
                f.granted = f.granted.saturating_sub(data.len());
                let mut taken = 0;
                if let Some(h) = f.handle {
                    let s = self.sockets.get_mut::<tcp::Socket>(h);
                    if f.pending.is_empty() && s.may_send() {
                        taken = push(f, s, &data, now, ts);
                    }
                }
                f.pending.extend_from_slice(&data[taken..]);
            }
            IoEvent::TcpEof { flow } => {
                if let Some(f) = self.tcp.get_mut(&flow) {
                    f.outside_eof = true;
                }
            }
            IoEvent::TcpError { flow } => self.tcp_error(flow),
            IoEvent::UdpData { flow, data } => {
                let Some(f) = self.udp.get_mut(&flow) else {
                    return;
                };
                if data.len() + IP_UDP_HEADERS > self.cfg.mtu {
                    self.counters.dropped += 1;
                    return;
                }
                f.c.last = now;
                f.c.recv += data.len() as u64;
                self.frames.push(udp_frame(
                    self.cfg.host.mac,
                    f.c.client_mac,
                    f.c.dst,
                    f.c.src,
                    data.len(),
                    |b| b.copy_from_slice(&data),
                ));
            }
            IoEvent::IcmpReply { flow, seq_no, data } => {
                let Some(f) = self.icmp.get_mut(&flow) else {
                    return;
                };
                if data.len() + IP_UDP_HEADERS > self.cfg.mtu {
                    self.counters.dropped += 1;
                    return;
                }
                f.c.last = now;
                f.c.recv += data.len() as u64;
                let reply = Icmpv4Repr::EchoReply {
                    ident: f.ident,
                    seq_no,
                    data: &data,
                };
                self.frames.push(icmp_frame(
                    self.cfg.host.mac,
                    f.c.client_mac,
                    (*f.c.dst.ip(), *f.c.src.ip()),
                    &reply,
                ));
            }
        }
    }

    fn tcp_connected(&mut self, flow: FlowId, now: Instant) {
        let Some(f) = self.tcp.get_mut(&flow) else {
            return;
        };
        let Some(syn) = f.syn.take() else {
            return;
        };
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; TCP_RX_BUFFER]),
            tcp::SocketBuffer::new(vec![0; TCP_TX_BUFFER]),
        );
        s.set_nagle_enabled(false);
        s.set_congestion_control(tcp::CongestionControl::Cubic);
        let ep = IpListenEndpoint {
            addr: Some(IpAddress::Ipv4(*f.c.dst.ip())),
            port: f.c.dst.port(),
        };
        if s.listen(ep).is_err() {
            self.remove_tcp(flow);
            return;
        }
        let h = self.sockets.add(s);
        f.handle = Some(h);
        f.c.last = now;
        f.synack_at = Some(now);
        let mut out = std::mem::take(&mut self.frames);
        self.iface_poll(Some(&syn), now, &mut out);
        self.frames = out;
        // Only this socket listens on that endpoint; if it did not take the SYN, give up.
        if self.sockets.get::<tcp::Socket>(h).state() == tcp::State::Listen {
            self.counters.dropped += 1;
            self.remove_tcp(flow);
        }
    }

    fn tcp_error(&mut self, flow: FlowId) {
        let Some(f) = self.tcp.get_mut(&flow) else {
            return;
        };
        match (f.handle, f.syn.take()) {
            (Some(h), _) => self.sockets.get_mut::<tcp::Socket>(h).abort(),
            (None, Some(syn)) => {
                // answer the held SYN with a reset, as a refused connection would
                if let Some((seq, len)) = syn_seq(&syn) {
                    let rst = TcpRepr {
                        src_port: f.c.dst.port(),
                        dst_port: f.c.src.port(),
                        control: TcpControl::Rst,
                        seq_number: TcpSeqNumber(0),
                        ack_number: Some(seq + len),
                        window_len: 0,
                        window_scale: None,
                        max_seg_size: None,
                        sack_permitted: false,
                        sack_ranges: [None; 3],
                        timestamp: None,
                        payload: &[],
                    };
                    self.frames.push(tcp_frame(
                        self.cfg.host.mac,
                        f.c.client_mac,
                        (*f.c.dst.ip(), *f.c.src.ip()),
                        &rst,
                    ));
                }
                self.remove_tcp(flow);
            }
            (None, None) => self.remove_tcp(flow),
        }
    }

    fn remove_tcp(&mut self, flow: FlowId) {
        if let Some(f) = self.tcp.remove(&flow) {
            self.tcp_keys
                .remove(&(*f.c.src.ip(), f.c.src.port(), *f.c.dst.ip(), f.c.dst.port()));
            if let Some(h) = f.handle {
                self.sockets.remove(h);
            }
            self.requests.push_back(IoRequest::TcpClose { flow });
        }
    }

    /// Moves bytes between smoltcp's sockets and the runtime, both ways, within the credit each
    /// side has; maps FIN and close states.
    fn service(&mut self, now: Instant) {
        let ts = self.ts(now);
        let mut next_stall = None;
        for (id, f) in self.tcp.iter_mut() {
            let Some(h) = f.handle else { continue };
            let s = self.sockets.get_mut::<tcp::Socket>(h);
            if s.state() == tcp::State::Established && !f.established {
                f.established = true;
                if let Some(at) = f.synack_at.take() {
                    f.rtt = now.saturating_duration_since(at);
                }
            }
            // client -> outside, at most MAX_IN_FLIGHT unwritten bytes
            while f.in_flight < MAX_IN_FLIGHT && s.can_recv() {
                let room = MAX_IN_FLIGHT - f.in_flight;
                let Ok(data) = s.recv(|b| {
                    let n = b.len().min(room);
                    (n, b[..n].to_vec())
                }) else {
                    break;
                };
                if data.is_empty() {
                    break;
                }
                f.in_flight += data.len();
                f.c.sent += data.len() as u64;
                f.c.last = now;
                self.requests
                    .push_back(IoRequest::TcpSend { flow: *id, data });
            }
            // outside -> client
            if !f.pending.is_empty() && s.may_send() {
                let pending = std::mem::take(&mut f.pending);
                let n = push(f, s, &pending, now, ts);
                f.pending = pending;
                f.pending.drain(..n);
            }
            // the client's acknowledgements, for `rescue`
            let queued = s.send_queue() as u64;
            let acked = f.pushed.saturating_sub(queued);
            if queued == 0 || acked != f.acked {
                f.acked = acked;
                f.progress = now;
                f.progress_ts = ts;
                f.rescued = false;
            }
            if queued > 0 && f.established && !f.rescued {
                let at = f.progress + stall_after(f.rtt, f.gap_to.is_some());
                next_stall = Some(next_stall.map_or(at, |t: Instant| t.min(at)));
            }
            if s.may_send() && !f.outside_eof {
                let free = (s.send_capacity() - s.send_queue()).saturating_sub(f.pending.len());
                if free > f.granted && (free - f.granted >= GRANT_STEP || f.granted == 0) {
                    self.requests.push_back(IoRequest::TcpGrant {
                        flow: *id,
                        bytes: free - f.granted,
                    });
                    f.granted = free;
                }
            }
            if f.outside_eof && f.pending.is_empty() && !f.fin_sent && f.established {
                s.close();
                f.fin_sent = true;
            }
            // the client's FIN, once all its data is out
            let client_done = matches!(
                s.state(),
                tcp::State::CloseWait
                    | tcp::State::LastAck
                    | tcp::State::Closing
                    | tcp::State::TimeWait
                    | tcp::State::Closed
            );
            if f.established && !f.shutdown_sent && client_done && s.recv_queue() == 0 {
                self.requests
                    .push_back(IoRequest::TcpShutdown { flow: *id });
                f.shutdown_sent = true;
            }
        }
        self.next_stall = next_stall;
    }

    /// Brings forward smoltcp's retransmission for flows stalled since their last progress
    /// (see [`STALL_MIN`] and [`HOLE_STALL_MIN`]): smoltcp's timeout has a one-second floor and
    /// no setting, so its clock is moved ahead until these flows' timers fire. Timers are armed
    /// at each flow's own progress: any other flow whose timer that reaches has gone without
    /// progress longer still, and is retransmitted with them. Once per stall: a flow whose
    /// retransmission is lost again waits for smoltcp's own, doubled, timer, so a client gone
    /// for good never drives the clock.
    fn rescue(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        if self.next_stall.is_none_or(|t| now < t) {
            return;
        }
        let mut target = None;
        for f in self.tcp.values_mut() {
            let Some(h) = f.handle else { continue };
            let s = self.sockets.get::<tcp::Socket>(h);
            if f.rescued
                || !f.established
                || s.send_queue() == 0
                || now < f.progress + stall_after(f.rtt, f.gap_to.is_some())
            {
                continue;
            }
            f.rescued = true;
            self.counters.stalls_rescued += 1;
            let fires = f.progress_ts + smoltcp::time::Duration::from(SMOLTCP_MIN_RTO);
            target = Some(target.map_or(fires, |t: smoltcp::time::Instant| t.max(fires)));
        }
        if let Some(t) = target {
            let ahead = t - self.ts(now);
            if ahead > smoltcp::time::Duration::ZERO {
                // one millisecond more: smoltcp's timer fires strictly after its deadline
                self.skew += Duration::from_micros(ahead.total_micros() + 1000);
            }
            self.iface_poll(None, now, out);
            self.service(now);
        }
    }

    /// Forgets closed connections and idle flows.
    fn reap(&mut self, now: Instant) {
        let tcp_timeout = self.cfg.tcp_timeout;
        let mut gone = Vec::new();
        for (id, f) in self.tcp.iter_mut() {
            let idle = now.saturating_duration_since(f.c.last) > tcp_timeout;
            match f.handle {
                Some(h) => {
                    let s = self.sockets.get_mut::<tcp::Socket>(h);
                    let closed = matches!(s.state(), tcp::State::Closed | tcp::State::TimeWait);
                    // keep a closed socket until everything the client sent has been handed on
                    if closed && (s.recv_queue() == 0 || idle) {
                        gone.push(*id);
                    } else if idle {
                        // the reset goes out on the next poll; the socket is reaped after it
                        s.abort();
                    }
                }
                None if idle => gone.push(*id),
                None => {}
            }
        }
        for id in gone {
            self.remove_tcp(id);
        }
        let udp_timeout = self.cfg.udp_timeout;
        let stale: Vec<FlowId> = self
            .udp
            .values()
            .filter(|f| now.saturating_duration_since(f.c.last) > udp_timeout)
            .map(|f| f.c.id)
            .collect();
        for id in stale {
            if let Some(f) = self.udp.remove(&id) {
                self.udp_keys.remove(&(
                    *f.c.src.ip(),
                    f.c.src.port(),
                    *f.c.dst.ip(),
                    f.c.dst.port(),
                ));
                self.requests.push_back(IoRequest::UdpClose { flow: id });
            }
        }
        let stale: Vec<FlowId> = self
            .icmp
            .values()
            .filter(|f| now.saturating_duration_since(f.c.last) > udp_timeout)
            .map(|f| f.c.id)
            .collect();
        for id in stale {
            if let Some(f) = self.icmp.remove(&id) {
                self.icmp_keys
                    .remove(&(*f.c.src.ip(), *f.c.dst.ip(), f.ident));
            }
        }
        if let Some(d) = &mut self.dhcp {
            d.expire(now);
        }
    }

    fn tcp_input(
        &mut self,
        frame: &[u8],
        ip: &Ipv4Repr,
        payload: &[u8],
        src_mac: [u8; 6],
        now: Instant,
        out: &mut Vec<Vec<u8>>,
    ) -> HostInput {
        let Ok(seg) = TcpPacket::new_checked(payload) else {
            return HostInput::Malformed;
        };
        let key = (ip.src_addr, seg.src_port(), ip.dst_addr, seg.dst_port());
        if let Some(id) = self.tcp_keys.get(&key).copied() {
            let Some(f) = self.tcp.get_mut(&id) else {
                return HostInput::Ignored;
            };
            f.c.last = now;
            if f.handle.is_some() {
                note_gap(&mut f.gap_to, &seg);
                if self.rx_queue.len() < RX_QUEUE_MAX {
                    // the next poll takes it, with the rest of the batch
                    self.rx_queue.push_back(frame.to_vec());
                    return HostInput::Deferred;
                }
                self.iface_poll(Some(frame), now, out);
            } else if seg.rst() {
                self.remove_tcp(id);
            }
            return HostInput::Handled;
        }
        if seg.syn() && !seg.ack() && !seg.rst() {
            if !self.room_for_flow(now) {
                return HostInput::Handled;
            }
            let id = self.new_flow_id();
            let dst = SocketAddrV4::new(ip.dst_addr, seg.dst_port());
            self.tcp.insert(
                id,
                TcpFlow {
                    c: Common {
                        id,
                        client_mac: src_mac,
                        src: SocketAddrV4::new(ip.src_addr, seg.src_port()),
                        dst,
                        created: now,
                        last: now,
                        sent: 0,
                        recv: 0,
                    },
                    syn: Some(frame.to_vec()),
                    handle: None,
                    established: false,
                    in_flight: 0,
                    granted: 0,
                    pending: Vec::new(),
                    outside_eof: false,
                    fin_sent: false,
                    shutdown_sent: false,
                    pushed: 0,
                    acked: 0,
                    progress: now,
                    progress_ts: smoltcp::time::Instant::ZERO,
                    rescued: false,
                    gap_to: None,
                    synack_at: None,
                    rtt: Duration::ZERO,
                },
            );
            self.tcp_keys.insert(key, id);
            self.requests
                .push_back(IoRequest::TcpConnect { flow: id, dst });
            return HostInput::Handled;
        }
        // a segment of no connection we know: smoltcp answers it with a reset
        self.iface_poll(Some(frame), now, out);
        HostInput::Handled
    }

    #[allow(clippy::too_many_arguments)]
    fn udp_input(
        &mut self,
        ip: &Ipv4Repr,
        payload: &[u8],
        src_mac: [u8; 6],
        broadcast: bool,
        now: Instant,
        out: &mut Vec<Vec<u8>>,
    ) -> HostInput {
        let caps = ChecksumCapabilities::default();
        let Ok(pkt) = UdpPacket::new_checked(payload) else {
            return HostInput::Malformed;
        };
        let Ok(udp) = UdpRepr::parse(
            &pkt,
            &IpAddress::Ipv4(ip.src_addr),
            &IpAddress::Ipv4(ip.dst_addr),
            &caps,
        ) else {
            return HostInput::Malformed;
        };
        let data = pkt.payload();
        let to_host = ip.dst_addr == self.cfg.host.ip || ip.dst_addr == Ipv4Addr::BROADCAST;
        if to_host && udp.dst_port == DHCP_SERVER_PORT {
            let Some(dhcp) = &mut self.dhcp else {
                return HostInput::Ignored;
            };
            return match dhcp.handle(data, now, &self.in_use) {
                Ok(Some(reply)) => {
                    out.push(udp_frame(
                        self.cfg.host.mac,
                        reply.to_mac,
                        SocketAddrV4::new(self.cfg.host.ip, DHCP_SERVER_PORT),
                        SocketAddrV4::new(reply.to, DHCP_CLIENT_PORT),
                        reply.payload.len(),
                        |b| b.copy_from_slice(&reply.payload),
                    ));
                    HostInput::Handled
                }
                Ok(None) => HostInput::Handled,
                Err(()) => HostInput::Malformed,
            };
        }
        if broadcast {
            return HostInput::Ignored;
        }
        let (protocol, real_dst) = if ip.dst_addr == self.cfg.host.ip {
            if udp.dst_port != DNS_PORT {
                return HostInput::Ignored;
            }
            let Some(resolver) = self.cfg.dns_servers.first() else {
                self.counters.dropped += 1;
                return HostInput::Handled;
            };
            (NatProtocol::Dns, SocketAddrV4::new(*resolver, DNS_PORT))
        } else if self.cfg.nat_enabled {
            (
                NatProtocol::Udp,
                SocketAddrV4::new(ip.dst_addr, udp.dst_port),
            )
        } else {
            return HostInput::Ignored;
        };
        let key = (ip.src_addr, udp.src_port, ip.dst_addr, udp.dst_port);
        let id = match self.udp_keys.get(&key) {
            Some(id) => *id,
            None => {
                if !self.room_for_flow(now) {
                    return HostInput::Handled;
                }
                let id = self.new_flow_id();
                self.udp.insert(
                    id,
                    UdpFlow {
                        c: Common {
                            id,
                            client_mac: src_mac,
                            src: SocketAddrV4::new(ip.src_addr, udp.src_port),
                            dst: SocketAddrV4::new(ip.dst_addr, udp.dst_port),
                            created: now,
                            last: now,
                            sent: 0,
                            recv: 0,
                        },
                        protocol,
                        real_dst,
                    },
                );
                self.udp_keys.insert(key, id);
                id
            }
        };
        if let Some(f) = self.udp.get_mut(&id) {
            f.c.last = now;
            f.c.sent += data.len() as u64;
            f.c.client_mac = src_mac;
            self.requests.push_back(IoRequest::UdpSend {
                flow: id,
                dst: f.real_dst,
                data: data.to_vec(),
            });
        }
        HostInput::Handled
    }

    fn icmp_input(
        &mut self,
        ip: &Ipv4Repr,
        payload: &[u8],
        src_mac: [u8; 6],
        now: Instant,
    ) -> HostInput {
        let (ident, seq_no, data) = match parse_echo_request(payload) {
            Ok(echo) => echo,
            Err(verdict) => return verdict,
        };
        let key = (ip.src_addr, ip.dst_addr, ident);
        let id = match self.icmp_keys.get(&key) {
            Some(id) => *id,
            None => {
                if !self.room_for_flow(now) {
                    return HostInput::Handled;
                }
                let id = self.new_flow_id();
                self.icmp.insert(
                    id,
                    IcmpFlow {
                        c: Common {
                            id,
                            client_mac: src_mac,
                            src: SocketAddrV4::new(ip.src_addr, 0),
                            dst: SocketAddrV4::new(ip.dst_addr, 0),
                            created: now,
                            last: now,
                            sent: 0,
                            recv: 0,
                        },
                        ident,
                    },
                );
                self.icmp_keys.insert(key, id);
                id
            }
        };
        if let Some(f) = self.icmp.get_mut(&id) {
            f.c.last = now;
            f.c.sent += data.len() as u64;
            self.requests.push_back(IoRequest::IcmpEcho {
                flow: id,
                dst: ip.dst_addr,
                ident,
                seq_no,
                data: data.to_vec(),
            });
        }
        HostInput::Handled
    }

    fn input(&mut self, frame: &[u8], now: Instant, out: &mut Vec<Vec<u8>>) -> HostInput {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return HostInput::Malformed;
        };
        let dst_mac = eth.dst_addr().0;
        let src_mac = eth.src_addr().0;
        let broadcast = dst_mac == [0xff; 6];
        if dst_mac != self.cfg.host.mac && !broadcast {
            return HostInput::Ignored;
        }
        match eth.ethertype() {
            EthernetProtocol::Arp => {
                let Ok(arp) = ArpPacket::new_checked(eth.payload()) else {
                    return HostInput::Malformed;
                };
                match ArpRepr::parse(&arp) {
                    Ok(ArpRepr::EthernetIpv4 {
                        target_protocol_addr,
                        ..
                    }) if target_protocol_addr == self.cfg.host.ip => {
                        self.iface_poll(Some(frame), now, out);
                        HostInput::Handled
                    }
                    Ok(_) => HostInput::Ignored,
                    Err(_) => HostInput::Malformed,
                }
            }
            EthernetProtocol::Ipv4 => {
                let caps = ChecksumCapabilities::default();
                let Ok(pkt) = Ipv4Packet::new_checked(eth.payload()) else {
                    return HostInput::Malformed;
                };
                let Ok(ip) = Ipv4Repr::parse(&pkt, &caps) else {
                    return HostInput::Malformed;
                };
                let payload = pkt.payload();
                let own = ip.dst_addr == self.cfg.host.ip;
                match ip.next_header {
                    IpProtocol::Udp => self.udp_input(&ip, payload, src_mac, broadcast, now, out),
                    _ if broadcast => HostInput::Ignored,
                    IpProtocol::Icmp if own => {
                        self.iface_poll(Some(frame), now, out);
                        HostInput::Handled
                    }
                    IpProtocol::Icmp if self.cfg.nat_enabled => {
                        self.icmp_input(&ip, payload, src_mac, now)
                    }
                    IpProtocol::Tcp if own || self.cfg.nat_enabled => {
                        self.tcp_input(frame, &ip, payload, src_mac, now, out)
                    }
                    _ => HostInput::Ignored,
                }
            }
            _ => HostInput::Ignored,
        }
    }
}

/// How long a flow with data outstanding may go without an acknowledgement; `hole`: a gap its
/// client's SACKs showed is still open.
fn stall_after(rtt: Duration, hole: bool) -> Duration {
    let floor = if hole { HOLE_STALL_MIN } else { STALL_MIN };
    floor.max(rtt * STALL_RTTS)
}

/// Keeps `gap_to` (see [`TcpFlow::gap_to`]) up to date with a segment from the client.
fn note_gap(gap_to: &mut Option<TcpSeqNumber>, seg: &TcpPacket<&[u8]>) {
    if !seg.ack() {
        return;
    }
    let ack = seg.ack_number();
    if let Ok(o) = seg.options_summary() {
        for &(left, right) in o.sack_ranges.iter().flatten() {
            let (left, right) = (TcpSeqNumber(left as i32), TcpSeqNumber(right as i32));
            if left > ack && right > left {
                *gap_to = Some(gap_to.map_or(right, |g| g.max(right)));
            }
        }
    }
    if gap_to.is_some_and(|g| ack >= g) {
        *gap_to = None;
    }
}

/// Puts `data` in the flow's send buffer; returns how much fit. Data into an empty buffer
/// starts the wait for its acknowledgement (smoltcp arms its timer when it sends it).
fn push(
    f: &mut TcpFlow,
    s: &mut tcp::Socket,
    data: &[u8],
    now: Instant,
    ts: smoltcp::time::Instant,
) -> usize {
    if s.send_queue() == 0 {
        f.progress = now;
        f.progress_ts = ts;
        f.rescued = false;
    }
    let n = s.send_slice(data).unwrap_or(0);
    f.pushed += n as u64;
    n
}

/// The sequence number of a held SYN and the length it occupies (1 plus any payload).
fn syn_seq(frame: &[u8]) -> Option<(TcpSeqNumber, usize)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let seg = TcpPacket::new_checked(ip.payload()).ok()?;
    Some((seg.seq_number(), 1 + seg.payload().len()))
}

impl VirtualHost for NatHost {
    fn mac(&self) -> [u8; 6] {
        self.cfg.host.mac
    }

    fn ipv4(&self) -> Option<Ipv4Addr> {
        Some(self.cfg.host.ip)
    }

    fn handle_frame(&mut self, frame: &[u8], now: Instant, out: &mut Vec<Vec<u8>>) -> HostInput {
        let r = self.input(frame, now, out);
        if r == HostInput::Handled {
            self.service(now);
            self.iface_poll(None, now, out);
            self.reap(now);
        }
        r
    }

    fn poll(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        out.append(&mut self.frames);
        // the queued segments first: service then sees their data
        if !self.rx_queue.is_empty() {
            self.iface_poll(None, now, out);
        }
        self.service(now);
        self.iface_poll(None, now, out);
        self.rescue(now, out);
        let due = self
            .last_reap
            .is_none_or(|t| now.saturating_duration_since(t) >= REAP_EVERY);
        if due {
            self.last_reap = Some(now);
            self.reap(now);
            // reaping may have aborted sockets; let their resets out
            self.iface_poll(None, now, out);
        }
    }

    fn has_deferred(&self) -> bool {
        !self.rx_queue.is_empty()
    }
}
