//! SecureNAT's socket side: the tokio sockets behind each hub's [`NatHost`].
//!
//! The host asks for socket work ([`IoRequest`]); [`NatRuntime::dispatch`] carries it out with one
//! tokio task pair per TCP flow, one socket and task per UDP flow and one raw ICMP socket per hub.
//! Results come back as [`IoEvent`]s on one channel that [`nat_loop`] drains under the data plane
//! lock, feeding the host and sending what the hub then produces to WireGuard peers.
//!
//! Back-pressure: a TCP flow's reader only reads as many bytes as the host granted (a semaphore
//! of byte permits), and the host hands out client data only up to a bound of unwritten bytes.

use crate::runtime::Server;
use etherhub_config::SecureNatSettings;
use etherhub_hub::{Hub, VirtualHostConfig};
use etherhub_securenat::{
    parse_push_routes, DhcpConfig, FlowId, IoEvent, IoRequest, NatConfig, NatHost,
};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

/// Most NAT flows per hub.
pub const MAX_NAT_SESSIONS: usize = 4096;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const READ_CHUNK: usize = 64 * 1024;
/// A TCP flow's writer joins queued sends up to this many bytes into one write.
const WRITE_COALESCE: usize = 256 * 1024;

type Events = mpsc::UnboundedSender<(String, IoEvent)>;

enum TcpCmd {
    Send(Vec<u8>),
    Shutdown,
    Close,
}

struct TcpFlowIo {
    cmds: mpsc::UnboundedSender<TcpCmd>,
    credit: Arc<Semaphore>,
}

struct UdpFlowIo {
    /// Sends go through a plain clone of the socket: tokio's `try_send` reports WouldBlock
    /// until the reactor has seen the new socket writable, which would drop a flow's first
    /// datagram.
    send: std::net::UdpSocket,
    task: JoinHandle<()>,
}

/// Echo flows waiting for replies on the hub's raw ICMP socket: (peer, ident) -> flow.
type IcmpWaiters = Arc<Mutex<HashMap<(Ipv4Addr, u16), (FlowId, Instant)>>>;

struct IcmpIo {
    /// a plain clone for sending, for the reason [`UdpFlowIo::send`] gives
    send: std::net::UdpSocket,
    waiters: IcmpWaiters,
    task: JoinHandle<()>,
}

/// One hub's NAT sockets.
#[derive(Default)]
struct HubIo {
    tcp: HashMap<FlowId, TcpFlowIo>,
    udp: HashMap<FlowId, UdpFlowIo>,
    icmp: Option<IcmpIo>,
    /// set when the raw ICMP socket could not be opened (no CAP_NET_RAW); echoes are dropped
    icmp_unavailable: bool,
    /// what the host was built from, to tell a restart from a change of timeouts
    settings: Option<(SecureNatSettings, Vec<Ipv4Addr>)>,
}

impl Drop for HubIo {
    fn drop(&mut self) {
        for (_, t) in self.tcp.drain() {
            let _ = t.cmds.send(TcpCmd::Close);
        }
        for (_, u) in self.udp.drain() {
            u.task.abort();
        }
        if let Some(i) = self.icmp.take() {
            i.task.abort();
        }
    }
}

/// Counters for what the socket side could not do.
#[derive(Default, Debug, Clone, Copy)]
pub struct NatIoStats {
    pub udp_send_failures: u64,
    pub icmp_send_failures: u64,
}

/// The socket side of every hub's NAT; lives in the data plane.
pub struct NatRuntime {
    events: Option<Events>,
    hubs: HashMap<String, HubIo>,
    pub stats: NatIoStats,
}

impl Default for NatRuntime {
    fn default() -> Self {
        Self::new()
    }
}

/// The resolvers in /etc/resolv.conf (IPv4 ones).
pub fn system_resolvers() -> Vec<Ipv4Addr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == "nameserver").then_some(())?;
            w.next()?.parse().ok()
        })
        .collect()
}

/// The host's settings from the config's SecureNAT block.
pub fn nat_config(s: &SecureNatSettings, resolvers: Vec<Ipv4Addr>, seed: u64) -> NatConfig {
    NatConfig {
        host: VirtualHostConfig {
            ip: s.host_ip,
            mask: s.host_mask,
            mac: s.host_mac,
        },
        nat_enabled: s.nat_enabled,
        mtu: s.nat_mtu as usize,
        tcp_timeout: Duration::from_secs(u64::from(s.nat_tcp_timeout.max(1))),
        udp_timeout: Duration::from_secs(u64::from(s.nat_udp_timeout.max(1))),
        max_sessions: MAX_NAT_SESSIONS,
        dhcp: s.dhcp_enabled.then(|| DhcpConfig {
            start: s.dhcp_start,
            end: s.dhcp_end,
            mask: s.dhcp_mask,
            lease: Duration::from_secs(u64::from(s.dhcp_expire.max(60))),
            gateway: s.dhcp_gateway,
            dns: s.dhcp_dns,
            dns2: s.dhcp_dns2,
            domain: s.dhcp_domain.clone(),
            push_routes: parse_push_routes(&s.dhcp_push_routes),
        }),
        dns_servers: resolvers,
        seed,
    }
}

/// Tells the hub's DHCP pool which addresses other stations use (the hub's IP table).
pub fn refresh_in_use(hub: &mut Hub) {
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
    if let Some(h) = host_of(hub) {
        h.set_in_use(used);
    }
}

/// The hub's NAT host, if it runs one.
pub fn host_of(hub: &mut Hub) -> Option<&mut NatHost> {
    hub.securenat_host_mut()?
        .as_any_mut()?
        .downcast_mut::<NatHost>()
}

impl NatRuntime {
    pub fn new() -> Self {
        Self {
            events: None,
            hubs: HashMap::new(),
            stats: NatIoStats::default(),
        }
    }

    /// Where socket tasks send their results (set once the runtime starts [`nat_loop`]).
    pub fn set_events(&mut self, events: Events) {
        self.events = Some(events);
    }

    /// Installs, updates or removes hub `key`'s NAT host to match `settings` (None: SecureNAT
    /// off). A change of timeouts alone keeps the live flows.
    pub fn sync_hub(
        &mut self,
        key: &str,
        hub: &mut Hub,
        settings: Option<&SecureNatSettings>,
        resolvers: &[Ipv4Addr],
        now: Instant,
    ) {
        let Some(s) = settings.filter(|s| s.enabled) else {
            self.hubs.remove(key);
            hub.set_securenat(None, now);
            return;
        };
        let io = self.hubs.entry(key.to_string()).or_default();
        let mut fixed = s.clone();
        fixed.nat_tcp_timeout = 0;
        fixed.nat_udp_timeout = 0;
        let wanted = (fixed, resolvers.to_vec());
        if io.settings.as_ref() == Some(&wanted) {
            if let Some(h) = host_of(hub) {
                let c = nat_config(s, resolvers.to_vec(), 0);
                h.set_limits(c.tcp_timeout, c.udp_timeout, c.max_sessions);
                return;
            }
        }
        // a new host: the old one's sockets go with it
        *io = HubIo::default();
        io.settings = Some(wanted);
        let seed = rand::random::<u64>();
        let cfg = nat_config(s, resolvers.to_vec(), seed);
        let vcfg = cfg.host.clone();
        hub.set_securenat_host(vcfg, Box::new(NatHost::new(cfg, now)), now);
    }

    pub fn remove_hub(&mut self, key: &str) {
        self.hubs.remove(key);
    }

    /// Carries out every request hub `key`'s host has queued.
    pub fn dispatch(&mut self, key: &str, hub: &mut Hub, now: Instant) {
        let Some(events) = self.events.clone() else {
            return;
        };
        let Some(host) = host_of(hub) else {
            return;
        };
        let io = self.hubs.entry(key.to_string()).or_default();
        while let Some(req) = host.poll_io() {
            match req {
                IoRequest::TcpConnect { flow, dst } => {
                    let credit = Arc::new(Semaphore::new(0));
                    let (tx, rx) = mpsc::unbounded_channel();
                    tokio::spawn(tcp_flow(
                        key.to_string(),
                        flow,
                        dst,
                        events.clone(),
                        rx,
                        credit.clone(),
                    ));
                    io.tcp.insert(flow, TcpFlowIo { cmds: tx, credit });
                }
                IoRequest::TcpSend { flow, data } => {
                    if let Some(t) = io.tcp.get(&flow) {
                        let _ = t.cmds.send(TcpCmd::Send(data));
                    }
                }
                IoRequest::TcpGrant { flow, bytes } => {
                    if let Some(t) = io.tcp.get(&flow) {
                        t.credit.add_permits(bytes);
                    }
                }
                IoRequest::TcpShutdown { flow } => {
                    if let Some(t) = io.tcp.get(&flow) {
                        let _ = t.cmds.send(TcpCmd::Shutdown);
                    }
                }
                IoRequest::TcpClose { flow } => {
                    if let Some(t) = io.tcp.remove(&flow) {
                        let _ = t.cmds.send(TcpCmd::Close);
                        // wake a reader waiting for credit so it sees the close
                        t.credit.close();
                    }
                }
                IoRequest::UdpSend { flow, dst, data } => {
                    let u = match io.udp.entry(flow) {
                        std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                        std::collections::hash_map::Entry::Vacant(v) => {
                            match open_udp(key, flow, dst, &events) {
                                Ok(u) => v.insert(u),
                                Err(e) => {
                                    tracing::debug!(error = %e, "NAT UDP socket not opened");
                                    self.stats.udp_send_failures += 1;
                                    continue;
                                }
                            }
                        }
                    };
                    if u.send.send(&data).is_err() {
                        self.stats.udp_send_failures += 1;
                    }
                }
                IoRequest::UdpClose { flow } => {
                    if let Some(u) = io.udp.remove(&flow) {
                        u.task.abort();
                    }
                }
                IoRequest::IcmpEcho {
                    flow,
                    dst,
                    ident,
                    seq_no,
                    data,
                } => {
                    if io.icmp.is_none() && !io.icmp_unavailable {
                        match open_icmp(key, &events) {
                            Ok(i) => io.icmp = Some(i),
                            Err(e) => {
                                tracing::warn!(error = %e, "no raw ICMP socket; NAT ping disabled");
                                io.icmp_unavailable = true;
                            }
                        }
                    }
                    let Some(icmp) = &io.icmp else {
                        self.stats.icmp_send_failures += 1;
                        continue;
                    };
                    let packet = echo_request(ident, seq_no, &data);
                    {
                        let mut w = icmp.waiters.lock().unwrap_or_else(|p| p.into_inner());
                        w.retain(|_, (_, t)| {
                            now.saturating_duration_since(*t) < Duration::from_secs(60)
                        });
                        w.insert((dst, ident), (flow, now));
                    }
                    if icmp
                        .send
                        .send_to(&packet, SocketAddr::from((dst, 0)))
                        .is_err()
                    {
                        self.stats.icmp_send_failures += 1;
                    }
                }
            }
        }
    }
}

async fn tcp_flow(
    hub: String,
    flow: FlowId,
    dst: SocketAddrV4,
    events: Events,
    mut cmds: mpsc::UnboundedReceiver<TcpCmd>,
    credit: Arc<Semaphore>,
) {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(dst)).await {
        Ok(Ok(s)) => s,
        _ => {
            let _ = events.send((hub, IoEvent::TcpError { flow }));
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let _ = events.send((hub.clone(), IoEvent::TcpConnected { flow }));
    let (mut rd, mut wr) = stream.into_split();
    let reader = {
        let (hub, events) = (hub.clone(), events.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; READ_CHUNK];
            loop {
                // wait for at least one byte of credit, then take all there is
                let Ok(p) = credit.acquire().await else {
                    return;
                };
                p.forget();
                let mut avail = 1;
                let more = credit.available_permits().min(READ_CHUNK - 1);
                if more > 0 {
                    if let Ok(p) = credit.try_acquire_many(more as u32) {
                        p.forget();
                        avail += more;
                    }
                }
                match rd.read(&mut buf[..avail]).await {
                    Ok(0) => {
                        let _ = events.send((hub, IoEvent::TcpEof { flow }));
                        return;
                    }
                    Ok(n) => {
                        credit.add_permits(avail - n);
                        let data = buf[..n].to_vec();
                        if events
                            .send((hub.clone(), IoEvent::TcpData { flow, data }))
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(_) => {
                        let _ = events.send((hub, IoEvent::TcpError { flow }));
                        return;
                    }
                }
            }
        })
    };
    let mut next = None;
    loop {
        let cmd = match next.take() {
            Some(c) => c,
            None => match cmds.recv().await {
                Some(c) => c,
                None => break,
            },
        };
        match cmd {
            TcpCmd::Send(mut data) => {
                // what queued meanwhile goes out in the same write (one system call, one event)
                while data.len() < WRITE_COALESCE {
                    match cmds.try_recv() {
                        Ok(TcpCmd::Send(more)) => data.extend_from_slice(&more),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                if wr.write_all(&data).await.is_err() {
                    let _ = events.send((hub.clone(), IoEvent::TcpError { flow }));
                    break;
                }
                let bytes = data.len();
                let _ = events.send((hub.clone(), IoEvent::TcpSent { flow, bytes }));
            }
            TcpCmd::Shutdown => {
                let _ = wr.shutdown().await;
            }
            TcpCmd::Close => break,
        }
    }
    reader.abort();
}

fn open_udp(
    hub: &str,
    flow: FlowId,
    dst: SocketAddrV4,
    events: &Events,
) -> std::io::Result<UdpFlowIo> {
    let std_sock = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    std_sock.connect(dst)?;
    std_sock.set_nonblocking(true)?;
    let send = std_sock.try_clone()?;
    let s = UdpSocket::from_std(std_sock)?;
    let (events, hub) = (events.clone(), hub.to_string());
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        loop {
            match s.recv(&mut buf).await {
                Ok(n) => {
                    let data = buf[..n].to_vec();
                    if events
                        .send((hub.clone(), IoEvent::UdpData { flow, data }))
                        .is_err()
                    {
                        return;
                    }
                }
                // ICMP errors from the far side surface here; the flow lives on
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    });
    Ok(UdpFlowIo { send, task })
}

fn echo_request(ident: u16, seq_no: u16, data: &[u8]) -> Vec<u8> {
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr};
    let repr = Icmpv4Repr::EchoRequest {
        ident,
        seq_no,
        data,
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(
        &mut Icmpv4Packet::new_unchecked(&mut buf[..]),
        &ChecksumCapabilities::default(),
    );
    buf
}

/// A raw ICMP socket (needs CAP_NET_RAW), wrapped as a tokio datagram socket: the kernel hands
/// it every ICMP packet with its IP header, and replies are matched to flows by source and ident.
fn open_icmp(hub: &str, events: &Events) -> std::io::Result<IcmpIo> {
    let raw = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::RAW,
        Some(socket2::Protocol::ICMPV4),
    )?;
    raw.set_nonblocking(true)?;
    let std_sock = std::net::UdpSocket::from(raw);
    let send = std_sock.try_clone()?;
    let s = UdpSocket::from_std(std_sock)?;
    let waiters: IcmpWaiters = Arc::default();
    let (w, events, hub) = (waiters.clone(), events.clone(), hub.to_string());
    let task = tokio::spawn(async move {
        use smoltcp::phy::ChecksumCapabilities;
        use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, Ipv4Packet};
        let mut buf = vec![0u8; 65536];
        loop {
            let Ok((n, _)) = s.recv_from(&mut buf).await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let Ok(ip) = Ipv4Packet::new_checked(&buf[..n]) else {
                continue;
            };
            let Ok(icmp) = Icmpv4Packet::new_checked(ip.payload()) else {
                continue;
            };
            let Ok(Icmpv4Repr::EchoReply {
                ident,
                seq_no,
                data,
            }) = Icmpv4Repr::parse(&icmp, &ChecksumCapabilities::default())
            else {
                continue;
            };
            let flow = w
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&(ip.src_addr(), ident))
                .map(|(f, _)| *f);
            if let Some(flow) = flow {
                let data = data.to_vec();
                if events
                    .send((hub.clone(), IoEvent::IcmpReply { flow, seq_no, data }))
                    .is_err()
                {
                    return;
                }
            }
        }
    });
    Ok(IcmpIo {
        send,
        waiters,
        task,
    })
}

/// Drains the sockets' results into the hosts, every few milliseconds also polling them for
/// retransmissions and timeouts.
pub async fn nat_loop(server: Arc<Server>, mut rx: mpsc::UnboundedReceiver<(String, IoEvent)>) {
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::with_capacity(256);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut batch, 256) => if n == 0 { return },
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        server.dataplane().on_nat_events(batch.drain(..), now);
    }
}
