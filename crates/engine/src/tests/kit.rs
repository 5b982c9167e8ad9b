//! A world in memory for driving the engine: WireGuard clients (boringtun's noise with a
//! smoltcp TCP/IP stack behind it), a fake outside that answers SecureNAT's socket requests,
//! and a clock that moves only when told. No sockets, no threads.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use boringtun::noise::{Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use etherhub_hub::{StaticNetwork, VirtualHostConfig};
use etherhub_securenat::{FlowId, IoEvent, IoRequest, NatConfig};
use etherhub_wireguard::{generate_private_key, public_key_of, Key};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::wire::{
    HardwareAddress, Icmpv4Packet, Icmpv4Repr, IpAddress, IpCidr, IpProtocol, Ipv4Packet, Ipv4Repr,
};

use crate::{
    Change, Engine, EngineEvent, HubSpec, NatRef, UserAuth, UserSpec, WgKeySpec, WireGuardSpec,
};

/// The server's UDP listener.
pub const LOCAL: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)), 443);

/// SecureNAT's settings for a hub whose host is `ip`/24.
pub fn nat(ip: Ipv4Addr) -> NatConfig {
    NatConfig {
        host: VirtualHostConfig {
            ip,
            mask: Ipv4Addr::new(255, 255, 255, 0),
            mac: [0x5e, 0x10, 0, 0, 0, ip.octets()[3]],
        },
        nat_enabled: true,
        mtu: 1500,
        tcp_timeout: Duration::from_secs(1800),
        udp_timeout: Duration::from_secs(60),
        max_sessions: 64,
        dhcp: None,
        dns_servers: Vec::new(),
        seed: 1,
    }
}

/// A hub with SecureNAT on `gateway`/24, which is also its static network.
pub fn hub(name: &str, gateway: Ipv4Addr) -> HubSpec {
    HubSpec {
        name: name.into(),
        online: true,
        static_network: Some(StaticNetwork {
            gateway,
            mask: Ipv4Addr::new(255, 255, 255, 0),
        }),
        securenat: Some(nat(gateway)),
        access: Vec::new(),
    }
}

pub fn user(hub: &str, name: &str) -> Change {
    Change::User(UserSpec {
        hub: hub.into(),
        name: name.into(),
        auth: UserAuth::Password(etherhub_config::hash::hash_user_password(name, "pw")),
        ..Default::default()
    })
}

/// Packets the client's stack sends, and packets the tunnel gave it.
struct Pipe {
    rx: Vec<Vec<u8>>,
    tx: Vec<Vec<u8>>,
}
struct Rx(Vec<u8>);
struct Tx<'a>(&'a mut Vec<Vec<u8>>);
impl smoltcp::phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}
impl smoltcp::phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut b = vec![0; len];
        let r = f(&mut b);
        self.0.push(b);
        r
    }
}
impl Device for Pipe {
    type RxToken<'b>
        = Rx
    where
        Self: 'b;
    type TxToken<'b>
        = Tx<'b>
    where
        Self: 'b;
    fn receive(&mut self, _: smoltcp::time::Instant) -> Option<(Rx, Tx<'_>)> {
        if self.rx.is_empty() {
            return None;
        }
        Some((Rx(self.rx.remove(0)), Tx(&mut self.tx)))
    }
    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<Tx<'_>> {
        Some(Tx(&mut self.tx))
    }
    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ip;
        c.max_transmission_unit = 1420;
        c
    }
}

/// A WireGuard client with a TCP/IP stack behind its tunnel.
pub struct Client {
    pub tunn: Tunn,
    pub public: Key,
    pub underlay: SocketAddr,
    pub ip: Ipv4Addr,
    iface: Interface,
    pub sockets: SocketSet<'static>,
    pipe: Pipe,
    buf: Vec<u8>,
    /// Echo replies that came back: (source, ident, seq).
    pub echo_replies: Vec<(Ipv4Addr, u16, u16)>,
}

impl Client {
    pub fn new(server_public: Key, n: u8, ip: Ipv4Addr, gateway: Ipv4Addr) -> Client {
        let private = generate_private_key();
        let tunn = Tunn::new(
            StaticSecret::from(private),
            PublicKey::from(server_public),
            None,
            None,
            u32::from(n),
            None,
        );
        let mut pipe = Pipe {
            rx: Vec::new(),
            tx: Vec::new(),
        };
        let mut iface = Interface::new(
            Config::new(HardwareAddress::Ip),
            &mut pipe,
            smoltcp::time::Instant::ZERO,
        );
        iface.update_ip_addrs(|a| {
            a.push(IpCidr::new(IpAddress::Ipv4(ip), 24)).unwrap();
        });
        iface.routes_mut().add_default_ipv4_route(gateway).unwrap();
        Client {
            tunn,
            public: public_key_of(&private),
            underlay: SocketAddr::from(([198, 18, 1, n], 50000 + u16::from(n))),
            ip,
            iface,
            sockets: SocketSet::new(Vec::new()),
            pipe,
            buf: vec![0; 65_600],
            echo_replies: Vec::new(),
        }
    }

    /// Routes everything off the hub's network to `gateway`.
    pub fn set_gateway(&mut self, gateway: Ipv4Addr) {
        self.iface
            .routes_mut()
            .add_default_ipv4_route(gateway)
            .unwrap();
    }

    /// Opens a TCP connection to `dst` from `port`.
    pub fn connect(&mut self, dst: SocketAddrV4, port: u16) -> SocketHandle {
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 256 * 1024]),
            tcp::SocketBuffer::new(vec![0; 256 * 1024]),
        );
        // a greedy sender that bursts its whole window (no congestion window: SecureNAT's
        // CUBIC turns it on for every smoltcp socket in the build)
        s.set_congestion_control(tcp::CongestionControl::None);
        s.connect(
            self.iface.context(),
            (IpAddress::Ipv4(*dst.ip()), dst.port()),
            port,
        )
        .unwrap();
        self.sockets.add(s)
    }

    pub fn tcp(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(h)
    }

    /// An IP packet straight into the tunnel, past the client's stack (spoofing, pings).
    pub fn send_raw(&mut self, packet: Vec<u8>) {
        self.pipe.tx.push(packet);
    }

    /// An ICMP echo request from `src` (the client's address unless told otherwise) to `dst`.
    pub fn ping(&mut self, src: Ipv4Addr, dst: Ipv4Addr, seq: u16) {
        let icmp = Icmpv4Repr::EchoRequest {
            ident: 0x4242,
            seq_no: seq,
            data: b"ping",
        };
        let ip = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Icmp,
            payload_len: icmp.buffer_len(),
            hop_limit: 64,
        };
        let mut buf = vec![0u8; ip.buffer_len() + icmp.buffer_len()];
        let caps = ChecksumCapabilities::default();
        let mut p = Ipv4Packet::new_unchecked(&mut buf[..]);
        ip.emit(&mut p, &caps);
        icmp.emit(&mut Icmpv4Packet::new_unchecked(p.payload_mut()), &caps);
        self.send_raw(buf);
    }

    pub fn initiation(&mut self) -> Vec<u8> {
        match self.tunn.format_handshake_initiation(&mut self.buf, true) {
            TunnResult::WriteToNetwork(b) => b.to_vec(),
            other => panic!("no initiation: {other:?}"),
        }
    }

    /// A datagram from the server: what the client sends back, if anything.
    fn receive(&mut self, datagram: &[u8]) -> Vec<Vec<u8>> {
        let mut back = Vec::new();
        match self.tunn.decapsulate(None, datagram, &mut self.buf) {
            TunnResult::WriteToNetwork(b) => {
                back.push(b.to_vec());
                // packets boringtun queued until the session was up
                while let TunnResult::WriteToNetwork(b) =
                    self.tunn.decapsulate(None, &[], &mut self.buf)
                {
                    back.push(b.to_vec());
                }
            }
            TunnResult::WriteToTunnelV4(p, _) => {
                let p = p.to_vec();
                if let Some(reply) = echo_reply(&p) {
                    self.echo_replies.push(reply);
                } else {
                    self.pipe.rx.push(p);
                }
            }
            _ => {}
        }
        back
    }

    /// Runs the stack; returns the datagrams for the server.
    fn poll(&mut self, now: Duration) -> Vec<Vec<u8>> {
        let ts = smoltcp::time::Instant::from_micros(now.as_micros() as i64);
        self.iface.poll(ts, &mut self.pipe, &mut self.sockets);
        let mut out = Vec::new();
        for p in std::mem::take(&mut self.pipe.tx) {
            match self.tunn.encapsulate(&p, &mut self.buf) {
                TunnResult::WriteToNetwork(b) => out.push(b.to_vec()),
                TunnResult::Done => {}
                other => panic!("client could not encrypt: {other:?}"),
            }
        }
        out
    }
}

fn echo_reply(p: &[u8]) -> Option<(Ipv4Addr, u16, u16)> {
    let ip = Ipv4Packet::new_checked(p).ok()?;
    if ip.next_header() != IpProtocol::Icmp {
        return None;
    }
    let icmp = Icmpv4Packet::new_checked(ip.payload()).ok()?;
    match Icmpv4Repr::parse(&icmp, &ChecksumCapabilities::default()).ok()? {
        Icmpv4Repr::EchoReply { ident, seq_no, .. } => Some((ip.src_addr(), ident, seq_no)),
        _ => None,
    }
}

/// What the fake outside holds for one TCP flow.
#[derive(Default)]
struct Flow {
    /// bytes written to the outside socket and not yet echoed
    pending: Vec<u8>,
    /// what the outside may still send (the engine's grants)
    credit: usize,
    pub received: usize,
}

/// The network behind the server: accepts every TCP connection and echoes what it gets.
#[derive(Default)]
pub struct Internet {
    flows: HashMap<(NatRef, FlowId), Flow>,
    pub connects: Vec<SocketAddrV4>,
    pub resets: Vec<NatRef>,
}

impl Internet {
    /// Answers one request; returns the events to feed back.
    fn handle(&mut self, o: crate::Outside) -> Vec<(NatRef, IoEvent)> {
        let mut ev = Vec::new();
        match o {
            crate::Outside::Reset { nat } => {
                self.resets.push(nat);
                self.flows.retain(|(n, _), _| *n != nat);
            }
            crate::Outside::Io { nat, request } => match request {
                IoRequest::TcpConnect { flow, dst } => {
                    self.connects.push(dst);
                    self.flows.insert((nat, flow), Flow::default());
                    ev.push((nat, IoEvent::TcpConnected { flow }));
                }
                IoRequest::TcpSend { flow, data } => {
                    if let Some(f) = self.flows.get_mut(&(nat, flow)) {
                        f.received += data.len();
                        f.pending.extend_from_slice(&data);
                        ev.push((
                            nat,
                            IoEvent::TcpSent {
                                flow,
                                bytes: data.len(),
                            },
                        ));
                    }
                }
                IoRequest::TcpGrant { flow, bytes } => {
                    if let Some(f) = self.flows.get_mut(&(nat, flow)) {
                        f.credit += bytes;
                    }
                }
                IoRequest::TcpShutdown { flow } => ev.push((nat, IoEvent::TcpEof { flow })),
                IoRequest::TcpClose { flow } => {
                    self.flows.remove(&(nat, flow));
                }
                IoRequest::UdpSend { flow, data, .. } => {
                    ev.push((nat, IoEvent::UdpData { flow, data }));
                }
                IoRequest::UdpClose { .. } => {}
                IoRequest::IcmpEcho {
                    flow, seq_no, data, ..
                } => ev.push((nat, IoEvent::IcmpReply { flow, seq_no, data })),
            },
        }
        ev
    }

    /// The echo of what arrived, within the credit.
    fn echo(&mut self) -> Vec<(NatRef, IoEvent)> {
        let mut ev = Vec::new();
        for ((nat, flow), f) in self.flows.iter_mut() {
            let n = f.credit.min(f.pending.len());
            if n > 0 {
                f.credit -= n;
                let data: Vec<u8> = f.pending.drain(..n).collect();
                ev.push((*nat, IoEvent::TcpData { flow: *flow, data }));
            }
        }
        ev
    }
}

/// The engine, its clients and the outside, on one clock.
pub struct World {
    pub engine: Engine,
    pub t0: Instant,
    pub now: Instant,
    pub clients: Vec<Client>,
    pub outside: Internet,
    pub events: Vec<EngineEvent>,
    server_private: Key,
}

impl World {
    /// An engine with WireGuard on and `hubs`, no users or keys yet.
    pub fn new(hubs: &[HubSpec]) -> World {
        let t0 = Instant::now();
        let mut engine = Engine::new(t0);
        let server_private = generate_private_key();
        engine.apply(
            t0,
            Change::WireGuard(Some(WireGuardSpec {
                private_key: server_private,
                psk: None,
            })),
        );
        for h in hubs {
            engine.apply(t0, Change::Hub(h.clone()));
        }
        World {
            engine,
            t0,
            now: t0,
            clients: Vec::new(),
            outside: Internet::default(),
            events: Vec::new(),
            server_private,
        }
    }

    /// A new client with a registered key for `user` on `hub`; `address`: the key's address
    /// (`None`: registered without one). Returns its index.
    pub fn add_client(
        &mut self,
        hub: &str,
        user_name: &str,
        ip: Ipv4Addr,
        gateway: Ipv4Addr,
        address: Option<Ipv4Addr>,
    ) -> usize {
        let n = self.clients.len() as u8 + 1;
        let c = Client::new(public_key_of(&self.server_private), n, ip, gateway);
        self.engine.apply(self.now, user(hub, user_name));
        self.engine.apply(
            self.now,
            Change::WgKey(WgKeySpec {
                key: c.public,
                hub: hub.into(),
                user: user_name.into(),
                psk: None,
                address,
            }),
        );
        self.clients.push(c);
        self.clients.len() - 1
    }

    /// Runs the handshake of client `i`.
    pub fn handshake(&mut self, i: usize) {
        let init = self.clients[i].initiation();
        let from = self.clients[i].underlay;
        self.engine.handle_datagram(self.now, LOCAL, from, &init);
        self.engine.end_of_batch(self.now);
        self.deliver();
    }

    /// Datagrams the engine sends go to their clients; what the clients answer goes back.
    fn deliver(&mut self) {
        for _ in 0..8 {
            let mut answers = Vec::new();
            while let Some(t) = self.engine.poll_transmit() {
                assert_eq!(t.local, LOCAL);
                let seg = t.segment_size.unwrap_or(t.contents.len());
                for d in t.contents.chunks(seg) {
                    if let Some(i) = self.clients.iter().position(|c| c.underlay == t.to) {
                        answers.push((i, d.to_vec()));
                    }
                }
            }
            if answers.is_empty() {
                return;
            }
            for (i, d) in answers {
                let back = self.clients[i].receive(&d);
                let from = self.clients[i].underlay;
                for b in back {
                    self.engine.handle_datagram(self.now, LOCAL, from, &b);
                }
            }
            self.engine.end_of_batch(self.now);
        }
    }

    /// One millisecond of everything.
    pub fn step(&mut self) {
        self.now += Duration::from_millis(1);
        let since = self.now - self.t0;
        for i in 0..self.clients.len() {
            let from = self.clients[i].underlay;
            for d in self.clients[i].poll(since) {
                self.engine.handle_datagram(self.now, LOCAL, from, &d);
            }
        }
        self.engine.end_of_batch(self.now);
        self.deliver();
        for _ in 0..4 {
            let mut ev = Vec::new();
            while let Some(o) = self.engine.poll_outside() {
                ev.extend(self.outside.handle(o));
            }
            ev.extend(self.outside.echo());
            if ev.is_empty() {
                break;
            }
            for (nat, e) in ev {
                self.engine.handle_outside(self.now, nat, e);
            }
            self.engine.end_of_batch(self.now);
            self.deliver();
        }
        if self.engine.poll_timeout().is_some_and(|t| t <= self.now) {
            self.engine.handle_timeout(self.now);
            self.deliver();
        }
        while let Some(e) = self.engine.poll_event() {
            self.events.push(e);
        }
    }

    pub fn run(&mut self, ms: u32) {
        for _ in 0..ms {
            self.step();
        }
    }

    /// Steps until `done` or `ms` milliseconds passed; whether it got done.
    pub fn run_until(&mut self, ms: u32, mut done: impl FnMut(&mut World) -> bool) -> bool {
        for _ in 0..ms {
            if done(self) {
                return true;
            }
            self.step();
        }
        done(self)
    }

    /// Session names on a hub.
    pub fn sessions(&self, hub: &str) -> Vec<String> {
        self.engine
            .hub(hub)
            .map(|h| h.sessions().into_iter().map(|s| s.name).collect())
            .unwrap_or_default()
    }
}
