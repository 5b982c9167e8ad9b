//! SecureNAT's socket side: the tokio sockets behind the engine's SecureNAT hosts.
//!
//! The engine asks for socket work ([`Outside`]); [`NatIo::execute`] carries it out with one
//! tokio task pair per TCP flow, one socket and task per UDP flow and one raw ICMP socket per
//! host. Results come back as [`IoEvent`]s on one channel, tagged with the host they belong to
//! ([`NatRef`]); the data plane feeds them to the engine.
//!
//! Back-pressure: a TCP flow's reader only reads as many bytes as the host granted (a semaphore
//! of byte permits), and the host hands out client data only up to a bound of unwritten bytes.

use etherhub_engine::{NatRef, Outside};
use etherhub_securenat::{FlowId, IoEvent, IoRequest};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const READ_CHUNK: usize = 64 * 1024;
/// A TCP flow's writer joins queued sends up to this many bytes into one write.
const WRITE_COALESCE: usize = 256 * 1024;

/// Where socket tasks send their results.
pub type Events = mpsc::UnboundedSender<(NatRef, IoEvent)>;

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

/// Echo flows waiting for replies on the host's raw ICMP socket: (peer, ident) -> flow.
type IcmpWaiters = Arc<Mutex<HashMap<(Ipv4Addr, u16), (FlowId, Instant)>>>;

struct IcmpIo {
    /// a plain clone for sending, for the reason [`UdpFlowIo::send`] gives
    send: std::net::UdpSocket,
    waiters: IcmpWaiters,
    task: JoinHandle<()>,
}

/// One SecureNAT host's sockets.
#[derive(Default)]
struct HostIo {
    tcp: HashMap<FlowId, TcpFlowIo>,
    udp: HashMap<FlowId, UdpFlowIo>,
    icmp: Option<IcmpIo>,
    /// set when the raw ICMP socket could not be opened (no CAP_NET_RAW); echoes are dropped
    icmp_unavailable: bool,
}

impl Drop for HostIo {
    fn drop(&mut self) {
        for (_, t) in self.tcp.drain() {
            let _ = t.cmds.send(TcpCmd::Close);
            t.credit.close();
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

/// The sockets of every SecureNAT host.
pub struct NatIo {
    events: Events,
    hosts: HashMap<NatRef, HostIo>,
    pub stats: NatIoStats,
}

impl NatIo {
    pub fn new(events: Events) -> Self {
        Self {
            events,
            hosts: HashMap::new(),
            stats: NatIoStats::default(),
        }
    }

    /// Carries out one piece of socket work.
    pub fn execute(&mut self, work: Outside, now: Instant) {
        let (nat, req) = match work {
            Outside::Reset { nat } => {
                self.hosts.remove(&nat);
                return;
            }
            Outside::Io { nat, request } => (nat, request),
        };
        let events = &self.events;
        let io = self.hosts.entry(nat).or_default();
        match req {
            IoRequest::TcpConnect { flow, dst } => {
                let credit = Arc::new(Semaphore::new(0));
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(tcp_flow(nat, flow, dst, events.clone(), rx, credit.clone()));
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
                        match open_udp(nat, flow, dst, events) {
                            Ok(u) => v.insert(u),
                            Err(e) => {
                                tracing::debug!(error = %e, "NAT UDP socket not opened");
                                self.stats.udp_send_failures += 1;
                                return;
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
                    match open_icmp(nat, events) {
                        Ok(i) => io.icmp = Some(i),
                        Err(e) => {
                            tracing::warn!(error = %e, "no raw ICMP socket; NAT ping disabled");
                            io.icmp_unavailable = true;
                        }
                    }
                }
                let Some(icmp) = &io.icmp else {
                    self.stats.icmp_send_failures += 1;
                    return;
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

async fn tcp_flow(
    hub: NatRef,
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
    let _ = events.send((hub, IoEvent::TcpConnected { flow }));
    let (mut rd, mut wr) = stream.into_split();
    let reader = {
        let events = events.clone();
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
                        if events.send((hub, IoEvent::TcpData { flow, data })).is_err() {
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
                    let _ = events.send((hub, IoEvent::TcpError { flow }));
                    break;
                }
                let bytes = data.len();
                let _ = events.send((hub, IoEvent::TcpSent { flow, bytes }));
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
    hub: NatRef,
    flow: FlowId,
    dst: SocketAddrV4,
    events: &Events,
) -> std::io::Result<UdpFlowIo> {
    let std_sock = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    std_sock.connect(dst)?;
    std_sock.set_nonblocking(true)?;
    let send = std_sock.try_clone()?;
    let s = UdpSocket::from_std(std_sock)?;
    let events = events.clone();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        loop {
            match s.recv(&mut buf).await {
                Ok(n) => {
                    let data = buf[..n].to_vec();
                    if events.send((hub, IoEvent::UdpData { flow, data })).is_err() {
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
fn open_icmp(hub: NatRef, events: &Events) -> std::io::Result<IcmpIo> {
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
    let (w, events) = (waiters.clone(), events.clone());
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
                    .send((hub, IoEvent::IcmpReply { flow, seq_no, data }))
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
