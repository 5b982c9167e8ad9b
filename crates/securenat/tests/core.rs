//! The NAT core against an in-memory I/O side: a smoltcp client interface on the hub side, and
//! a test "internet" that answers the core's socket requests.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use etherhub_hub::{HostInput, VirtualHost, VirtualHostConfig};
use etherhub_securenat::{DhcpConfig, FlowId, IoEvent, IoRequest, NatConfig, NatHost, NatProtocol};
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};

const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x10];
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 30, 10);
const HOST_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 30, 1);
const OUTSIDE: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 5);

fn cfg() -> NatConfig {
    NatConfig {
        host: VirtualHostConfig::default(),
        nat_enabled: true,
        mtu: 1500,
        tcp_timeout: Duration::from_secs(60),
        udp_timeout: Duration::from_secs(10),
        max_sessions: 16,
        dhcp: Some(DhcpConfig {
            start: Ipv4Addr::new(192, 168, 30, 10),
            end: Ipv4Addr::new(192, 168, 30, 12),
            mask: Ipv4Addr::new(255, 255, 255, 0),
            lease: Duration::from_secs(7200),
            gateway: HOST_IP,
            dns: HOST_IP,
            dns2: Ipv4Addr::UNSPECIFIED,
            domain: "lan.example".into(),
            push_routes: Vec::new(),
        }),
        dns_servers: vec![Ipv4Addr::new(198, 19, 0, 53)],
        seed: 7,
    }
}

/// A device over two queues.
struct Queue<'a> {
    rx: &'a mut Vec<Vec<u8>>,
    tx: &'a mut Vec<Vec<u8>>,
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
impl Device for Queue<'_> {
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
        Some((Rx(self.rx.remove(0)), Tx(self.tx)))
    }
    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<Tx<'_>> {
        Some(Tx(self.tx))
    }
    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ethernet;
        c.max_transmission_unit = 1514;
        c
    }
}

struct Net {
    host: NatHost,
    iface: Interface,
    sockets: SocketSet<'static>,
    to_client: Vec<Vec<u8>>,
    start: Instant,
    now: Instant,
    /// what the "outside" received per TCP flow
    outside: HashMap<FlowId, Vec<u8>>,
    grants: HashMap<FlowId, usize>,
    refuse: bool,
    closed: Vec<FlowId>,
    shut: Vec<FlowId>,
    /// frames of TCP data from the host to drop on their way to the client (a lossy tunnel)
    lose_data: usize,
    /// then, frame by frame, which of the next data frames to drop
    lose_pattern: std::collections::VecDeque<bool>,
}

/// Whether an Ethernet frame carries TCP payload.
fn carries_tcp_data(frame: &[u8]) -> bool {
    use smoltcp::wire::{EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, TcpPacket};
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return false;
    };
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return false;
    }
    let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
        return false;
    };
    ip.next_header() == IpProtocol::Tcp
        && TcpPacket::new_checked(ip.payload()).is_ok_and(|t| !t.payload().is_empty())
}

impl Net {
    fn new() -> Net {
        let start = Instant::now();
        let host = NatHost::new(cfg(), start);
        let (mut rx, mut tx) = (Vec::new(), Vec::new());
        let mut dev = Queue {
            rx: &mut rx,
            tx: &mut tx,
        };
        let mut iface = Interface::new(
            Config::new(HardwareAddress::Ethernet(EthernetAddress(CLIENT_MAC))),
            &mut dev,
            smoltcp::time::Instant::ZERO,
        );
        iface.update_ip_addrs(|a| {
            a.push(IpCidr::new(IpAddress::Ipv4(CLIENT_IP), 24)).unwrap();
        });
        iface.routes_mut().add_default_ipv4_route(HOST_IP).unwrap();
        Net {
            host,
            iface,
            sockets: SocketSet::new(Vec::new()),
            to_client: Vec::new(),
            start,
            now: start,
            outside: HashMap::new(),
            grants: HashMap::new(),
            refuse: false,
            closed: Vec::new(),
            shut: Vec::new(),
            lose_data: 0,
            lose_pattern: Default::default(),
        }
    }

    /// One round: client sends, host answers, the outside serves requests (echoing TCP data
    /// back within the granted credit).
    fn step(&mut self) {
        self.now += Duration::from_millis(5);
        let ts = smoltcp::time::Instant::from_micros((self.now - self.start).as_micros() as i64);
        let mut from_client = Vec::new();
        let mut dev = Queue {
            rx: &mut self.to_client,
            tx: &mut from_client,
        };
        self.iface.poll(ts, &mut dev, &mut self.sockets);
        let mut out = Vec::new();
        for f in from_client {
            let _ = self.host.handle_frame(&f, self.now, &mut out);
        }
        // as the hub does after every batch: the host finishes what it held back
        if self.host.has_deferred() {
            self.host.poll(self.now, &mut out);
        }
        while let Some(req) = self.host.poll_io() {
            match req {
                IoRequest::TcpConnect { flow, .. } => {
                    let ev = if self.refuse {
                        IoEvent::TcpError { flow }
                    } else {
                        IoEvent::TcpConnected { flow }
                    };
                    self.host.handle_io(ev, self.now);
                }
                IoRequest::TcpSend { flow, data } => {
                    let n = data.len();
                    self.outside
                        .entry(flow)
                        .or_default()
                        .extend_from_slice(&data);
                    self.host
                        .handle_io(IoEvent::TcpSent { flow, bytes: n }, self.now);
                }
                IoRequest::TcpGrant { flow, bytes } => {
                    *self.grants.entry(flow).or_default() += bytes;
                }
                IoRequest::TcpShutdown { flow } => self.shut.push(flow),
                IoRequest::TcpClose { flow } => self.closed.push(flow),
                IoRequest::UdpSend { flow, data, .. } => {
                    let mut reply = b"echo:".to_vec();
                    reply.extend_from_slice(&data);
                    self.host
                        .handle_io(IoEvent::UdpData { flow, data: reply }, self.now);
                }
                IoRequest::UdpClose { flow } => self.closed.push(flow),
                IoRequest::IcmpEcho {
                    flow, seq_no, data, ..
                } => self
                    .host
                    .handle_io(IoEvent::IcmpReply { flow, seq_no, data }, self.now),
            }
        }
        // echo what the outside got, never more than granted
        let flows: Vec<FlowId> = self.outside.keys().copied().collect();
        for flow in flows {
            let grant = self.grants.get(&flow).copied().unwrap_or(0);
            let buf = self.outside.get_mut(&flow).unwrap();
            let n = grant.min(buf.len());
            if n > 0 {
                let data: Vec<u8> = buf.drain(..n).collect();
                *self.grants.get_mut(&flow).unwrap() -= n;
                self.host
                    .handle_io(IoEvent::TcpData { flow, data }, self.now);
            }
        }
        self.host.poll(self.now, &mut out);
        for f in out {
            if self.lose_data > 0 && carries_tcp_data(&f) {
                self.lose_data -= 1;
                continue;
            }
            if !self.lose_pattern.is_empty()
                && carries_tcp_data(&f)
                && self.lose_pattern.pop_front() == Some(true)
            {
                continue;
            }
            self.to_client.push(f);
        }
    }
}

#[test]
fn tcp_echo_through_the_nat_with_back_pressure_and_close() {
    let mut net = Net::new();
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 65536]),
        tcp::SocketBuffer::new(vec![0; 65536]),
    );
    s.connect(net.iface.context(), (IpAddress::Ipv4(OUTSIDE), 80), 49152)
        .unwrap();
    let h = net.sockets.add(s);
    let payload: Vec<u8> = (0..600_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (mut sent, mut got) = (0, Vec::new());
    for _ in 0..20_000 {
        net.step();
        let s = net.sockets.get_mut::<tcp::Socket>(h);
        if s.can_send() && sent < payload.len() {
            sent += s.send_slice(&payload[sent..]).unwrap();
        }
        while s.can_recv() {
            s.recv(|b| {
                got.extend_from_slice(b);
                (b.len(), ())
            })
            .unwrap();
        }
        if got.len() == payload.len() {
            break;
        }
    }
    assert_eq!(got.len(), payload.len(), "echo incomplete");
    assert!(got == payload, "echo differs");
    let table = net.host.nat_table();
    assert_eq!(table.len(), 1);
    assert_eq!(table[0].protocol, NatProtocol::Tcp);
    assert_eq!(table[0].dst, SocketAddrV4::new(OUTSIDE, 80));
    assert_eq!(table[0].sent, payload.len() as u64);
    assert_eq!(table[0].recv, payload.len() as u64);
    // the client closes; the outside sees the shutdown, then closes too
    net.sockets.get_mut::<tcp::Socket>(h).close();
    for _ in 0..50 {
        net.step();
    }
    assert_eq!(net.shut.len(), 1, "client FIN not passed on");
    let flow = net.shut[0];
    net.host.handle_io(IoEvent::TcpEof { flow }, net.now);
    for _ in 0..100 {
        net.step();
    }
    assert!(net.closed.contains(&flow), "flow not closed");
    assert!(net.host.nat_table().is_empty());
    let st = net.sockets.get::<tcp::Socket>(h).state();
    assert!(
        matches!(st, tcp::State::TimeWait | tcp::State::Closed),
        "client socket in {st}"
    );
}

/// Sends `n` bytes from the client through the host to the outside, which echoes them; returns
/// how long until all of them were back.
fn echo(net: &mut Net, h: smoltcp::iface::SocketHandle, got: &mut Vec<u8>, n: usize) -> Duration {
    let payload: Vec<u8> = (0..n).map(|i| (i % 253) as u8).collect();
    let mut sent = 0;
    let from = net.now;
    let want = got.len() + n;
    for _ in 0..2000 {
        let s = net.sockets.get_mut::<tcp::Socket>(h);
        if s.can_send() && sent < n {
            sent += s.send_slice(&payload[sent..]).unwrap();
        }
        net.step();
        let s = net.sockets.get_mut::<tcp::Socket>(h);
        while s.can_recv() {
            s.recv(|b| {
                got.extend_from_slice(b);
                (b.len(), ())
            })
            .unwrap();
        }
        if got.len() == want {
            return net.now - from;
        }
    }
    panic!("echo of {n} bytes incomplete: {} of {want}", got.len());
}

/// A client connected through the host to the outside, its connection warmed up.
fn connected(net: &mut Net, got: &mut Vec<u8>) -> smoltcp::iface::SocketHandle {
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 65536]),
        tcp::SocketBuffer::new(vec![0; 65536]),
    );
    s.connect(net.iface.context(), (IpAddress::Ipv4(OUTSIDE), 80), 49153)
        .unwrap();
    let h = net.sockets.add(s);
    // the connection and its round-trip estimate
    echo(net, h, got, 20_000);
    h
}

/// Two segments lost apart in one window: smoltcp's fast retransmission sends the first again,
/// and the client's next acknowledgement, still showing a gap, has the host retransmit after a
/// few round trips, not after the 200 ms it waits when nothing shows a loss.
#[test]
fn a_second_gap_in_a_window_is_mended_within_round_trips() {
    let mut net = Net::new();
    let mut got = Vec::new();
    let h = connected(&mut net, &mut got);
    assert_eq!(net.host.counters().stalls_rescued, 0);
    // the echo's 3rd and 9th data frames are lost
    net.lose_pattern = (0..12).map(|i| i == 2 || i == 8).collect();
    let took = echo(&mut net, h, &mut got, 30_000);
    assert!(
        net.lose_pattern.is_empty(),
        "the frames were not lost as planned"
    );
    assert_eq!(net.host.counters().stalls_rescued, 1);
    assert!(
        took < Duration::from_millis(150),
        "the second gap took {took:?} to mend"
    );
    // every byte arrived once, in order
    let expect: Vec<u8> = (0..20_000)
        .chain(0..30_000)
        .map(|i| (i % 253) as u8)
        .collect();
    assert_eq!(got, expect);
}

/// A lost tail (the last segments of a burst, so no duplicate acknowledgements follow) is sent
/// again after the host's stall time, not after smoltcp's one-second retransmission floor.
#[test]
fn a_lost_tail_is_sent_again_well_before_smoltcps_one_second_timeout() {
    let mut net = Net::new();
    let mut got = Vec::new();
    let h = connected(&mut net, &mut got);
    let mut echo = |net: &mut Net, n: usize| echo(net, h, &mut got, n);
    assert_eq!(net.host.counters().stalls_rescued, 0);
    // every data frame of the next echo is lost once (the outside echoes within one step)
    net.lose_data = 3;
    let took = echo(&mut net, 3000);
    assert_eq!(net.lose_data, 0, "the echo was not lost as planned");
    assert!(
        took < Duration::from_millis(500),
        "the lost tail took {took:?} to arrive"
    );
    assert_eq!(net.host.counters().stalls_rescued, 1);
    // and the connection goes on as before
    let again = echo(&mut net, 5000);
    assert!(
        again < Duration::from_millis(200),
        "after the loss: {again:?}"
    );
}

#[test]
fn refused_connection_resets_the_client() {
    let mut net = Net::new();
    net.refuse = true;
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 4096]),
        tcp::SocketBuffer::new(vec![0; 4096]),
    );
    s.connect(net.iface.context(), (IpAddress::Ipv4(OUTSIDE), 81), 49153)
        .unwrap();
    let h = net.sockets.add(s);
    for _ in 0..20 {
        net.step();
    }
    assert_eq!(
        net.sockets.get::<tcp::Socket>(h).state(),
        tcp::State::Closed
    );
    assert!(net.host.nat_table().is_empty());
}

fn udp_to(
    host: &mut NatHost,
    dst: SocketAddrV4,
    sport: u16,
    data: &[u8],
    now: Instant,
) -> Vec<Vec<u8>> {
    let frame = etherhub_securenat_test_frame(dst, sport, data);
    let mut out = Vec::new();
    assert_eq!(host.handle_frame(&frame, now, &mut out), HostInput::Handled);
    out
}

/// An Ethernet frame from the client to the host's MAC, carrying one IPv4 packet to `dst`
/// whose payload `emit` writes.
fn ip_frame(
    dst: Ipv4Addr,
    proto: smoltcp::wire::IpProtocol,
    payload_len: usize,
    emit: impl FnOnce(&mut [u8]),
) -> Vec<u8> {
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::*;
    let ip = Ipv4Repr {
        src_addr: CLIENT_IP,
        dst_addr: dst,
        next_header: proto,
        payload_len,
        hop_limit: 64,
    };
    let mut buf = vec![0u8; 14 + 20 + payload_len];
    let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
    EthernetRepr {
        src_addr: EthernetAddress(CLIENT_MAC),
        dst_addr: EthernetAddress(VirtualHostConfig::default().mac),
        ethertype: EthernetProtocol::Ipv4,
    }
    .emit(&mut eth);
    let mut p = Ipv4Packet::new_unchecked(eth.payload_mut());
    ip.emit(&mut p, &ChecksumCapabilities::default());
    emit(p.payload_mut());
    buf
}

fn etherhub_securenat_test_frame(dst: SocketAddrV4, sport: u16, data: &[u8]) -> Vec<u8> {
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::*;
    let udp = UdpRepr {
        src_port: sport,
        dst_port: dst.port(),
    };
    ip_frame(*dst.ip(), IpProtocol::Udp, 8 + data.len(), |b| {
        udp.emit(
            &mut UdpPacket::new_unchecked(b),
            &IpAddress::Ipv4(CLIENT_IP),
            &IpAddress::Ipv4(*dst.ip()),
            data.len(),
            |b| b.copy_from_slice(data),
            &ChecksumCapabilities::default(),
        )
    })
}

/// A TCP SYN from the client's `sport` to `dst`.
fn tcp_syn_frame(dst: SocketAddrV4, sport: u16) -> Vec<u8> {
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::*;
    let tcp = TcpRepr {
        src_port: sport,
        dst_port: dst.port(),
        control: TcpControl::Syn,
        seq_number: TcpSeqNumber(1000),
        ack_number: None,
        window_len: 65535,
        window_scale: None,
        max_seg_size: Some(1460),
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    };
    ip_frame(*dst.ip(), IpProtocol::Tcp, tcp.buffer_len(), |b| {
        tcp.emit(
            &mut TcpPacket::new_unchecked(b),
            &IpAddress::Ipv4(CLIENT_IP),
            &IpAddress::Ipv4(*dst.ip()),
            &ChecksumCapabilities::default(),
        )
    })
}

#[test]
fn udp_and_dns_flows_relay_and_expire() {
    let t0 = Instant::now();
    let mut host = NatHost::new(cfg(), t0);
    let out = udp_to(&mut host, SocketAddrV4::new(OUTSIDE, 7), 40000, b"hi", t0);
    assert!(out.is_empty());
    let Some(IoRequest::UdpSend { flow, dst, data }) = host.poll_io() else {
        panic!("no UdpSend");
    };
    assert_eq!(
        (dst, data.as_slice()),
        (SocketAddrV4::new(OUTSIDE, 7), &b"hi"[..])
    );
    // DNS to the host's address goes to the resolver, and answers come from the host's address
    let _ = udp_to(&mut host, SocketAddrV4::new(HOST_IP, 53), 40001, b"q", t0);
    let Some(IoRequest::UdpSend { flow: dns, dst, .. }) = host.poll_io() else {
        panic!("no DNS relay");
    };
    assert_eq!(dst, SocketAddrV4::new(Ipv4Addr::new(198, 19, 0, 53), 53));
    host.handle_io(
        IoEvent::UdpData {
            flow: dns,
            data: b"a".to_vec(),
        },
        t0,
    );
    let mut frames = Vec::new();
    host.poll(t0, &mut frames);
    assert_eq!(frames.len(), 1);
    let f = &frames[0];
    use smoltcp::wire::*;
    let eth = EthernetFrame::new_checked(&f[..]).unwrap();
    assert_eq!(eth.dst_addr().0, CLIENT_MAC);
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert_eq!((ip.src_addr(), ip.dst_addr()), (HOST_IP, CLIENT_IP));
    let udp = UdpPacket::new_checked(ip.payload()).unwrap();
    assert_eq!(
        (udp.src_port(), udp.dst_port(), udp.payload()),
        (53, 40001, &b"a"[..])
    );
    let kinds: Vec<NatProtocol> = host.nat_table().iter().map(|e| e.protocol).collect();
    assert_eq!(kinds, [NatProtocol::Udp, NatProtocol::Dns]);
    // idle past the UDP timeout: both forgotten, both sockets closed
    host.poll(t0 + Duration::from_secs(11), &mut frames);
    assert!(host.nat_table().is_empty());
    let mut closes = Vec::new();
    while let Some(r) = host.poll_io() {
        closes.push(r);
    }
    assert_eq!(
        closes,
        [
            IoRequest::UdpClose { flow },
            IoRequest::UdpClose { flow: dns }
        ]
    );
}

#[test]
fn garbage_is_dropped_not_panicked_on() {
    let t0 = Instant::now();
    let mut host = NatHost::new(cfg(), t0);
    let mut out = Vec::new();
    let good = etherhub_securenat_test_frame(SocketAddrV4::new(OUTSIDE, 7), 1, b"xyz");
    for cut in 0..good.len() {
        let _ = host.handle_frame(&good[..cut], t0, &mut out);
    }
    let mut bad = good.clone();
    bad[14 + 20 + 6] ^= 0xff; // UDP checksum
    assert_eq!(host.handle_frame(&bad, t0, &mut out), HostInput::Malformed);
    let mut x: u32 = 1;
    for _ in 0..2000 {
        let mut f = good.clone();
        for _ in 0..4 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let i = (x >> 8) as usize % f.len();
            f[i] = (x >> 20) as u8;
        }
        let _ = host.handle_frame(&f, t0, &mut out);
    }
}

#[test]
fn dhcp_offers_and_acks_from_the_pool_skipping_used_addresses() {
    use smoltcp::wire::*;
    let t0 = Instant::now();
    let mut host = NatHost::new(cfg(), t0);
    host.set_in_use([Ipv4Addr::new(192, 168, 30, 10)]);
    let dhcp = |kind, requested: Option<Ipv4Addr>| {
        let repr = DhcpRepr {
            message_type: kind,
            transaction_id: 0x1234,
            secs: 0,
            client_hardware_address: EthernetAddress(CLIENT_MAC),
            client_ip: Ipv4Addr::UNSPECIFIED,
            your_ip: Ipv4Addr::UNSPECIFIED,
            server_ip: Ipv4Addr::UNSPECIFIED,
            router: None,
            subnet_mask: None,
            relay_agent_ip: Ipv4Addr::UNSPECIFIED,
            broadcast: true,
            requested_ip: requested,
            client_identifier: None,
            server_identifier: requested.map(|_| HOST_IP),
            parameter_request_list: None,
            dns_servers: None,
            max_size: None,
            lease_duration: None,
            renew_duration: None,
            rebind_duration: None,
            additional_options: &[],
        };
        let mut b = vec![0; repr.buffer_len()];
        repr.emit(&mut DhcpPacket::new_unchecked(&mut b[..]))
            .unwrap();
        b
    };
    let answer = |host: &mut NatHost, payload: Vec<u8>| {
        let mut f =
            etherhub_securenat_test_frame(SocketAddrV4::new(Ipv4Addr::BROADCAST, 67), 68, &payload);
        // broadcast destination MAC
        f[..6].copy_from_slice(&[0xff; 6]);
        let mut out = Vec::new();
        assert_eq!(host.handle_frame(&f, t0, &mut out), HostInput::Handled);
        assert_eq!(out.len(), 1);
        let eth = EthernetFrame::new_checked(&out[0][..]).unwrap();
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(udp.dst_port(), 68);
        let p = DhcpPacket::new_checked(udp.payload()).unwrap();
        let r = DhcpRepr::parse(&p).unwrap();
        let domain = p.options().find(|o| o.kind == 15).map(|o| o.data.to_vec());
        (
            r.message_type,
            r.your_ip,
            r.router,
            r.subnet_mask,
            r.lease_duration,
            domain,
        )
    };
    let offer = answer(&mut host, dhcp(DhcpMessageType::Discover, None));
    assert_eq!(offer.0, DhcpMessageType::Offer);
    assert_eq!(
        offer.1,
        Ipv4Addr::new(192, 168, 30, 11),
        "skips the address in use"
    );
    assert_eq!(offer.2, Some(HOST_IP));
    assert_eq!(offer.3, Some(Ipv4Addr::new(255, 255, 255, 0)));
    assert_eq!(offer.4, Some(7200));
    assert_eq!(offer.5.as_deref(), Some(&b"lan.example"[..]));
    let ack = answer(&mut host, dhcp(DhcpMessageType::Request, Some(offer.1)));
    assert_eq!((ack.0, ack.1), (DhcpMessageType::Ack, offer.1));
    let leases = host.leases();
    assert_eq!(leases.len(), 1);
    assert_eq!((leases[0].mac, leases[0].ip), (CLIENT_MAC, offer.1));
    let nak = answer(
        &mut host,
        dhcp(DhcpMessageType::Request, Some(Ipv4Addr::new(10, 0, 0, 1))),
    );
    assert_eq!(nak.0, DhcpMessageType::Nak);
}

fn icmp_echo_frame(dst: std::net::Ipv4Addr, ident: u16, seq_no: u16) -> Vec<u8> {
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::*;
    let icmp = Icmpv4Repr::EchoRequest {
        ident,
        seq_no,
        data: b"ping-data",
    };
    ip_frame(dst, IpProtocol::Icmp, icmp.buffer_len(), |b| {
        icmp.emit(
            &mut Icmpv4Packet::new_unchecked(b),
            &ChecksumCapabilities::default(),
        )
    })
}

#[test]
fn icmp_echo_to_outside_and_to_the_host() {
    use smoltcp::wire::*;
    let t0 = Instant::now();
    let mut host = NatHost::new(cfg(), t0);
    let mut out = Vec::new();
    // to an outside address: a request for the runtime, the reply comes back from that address
    let f = icmp_echo_frame(OUTSIDE, 77, 1);
    assert_eq!(host.handle_frame(&f, t0, &mut out), HostInput::Handled);
    assert!(out.is_empty());
    let Some(IoRequest::IcmpEcho {
        flow,
        dst,
        ident,
        seq_no,
        data,
    }) = host.poll_io()
    else {
        panic!("no IcmpEcho");
    };
    assert_eq!(
        (dst, ident, seq_no, data.as_slice()),
        (OUTSIDE, 77, 1, &b"ping-data"[..])
    );
    host.handle_io(IoEvent::IcmpReply { flow, seq_no, data }, t0);
    host.poll(t0, &mut out);
    assert_eq!(out.len(), 1);
    let eth = EthernetFrame::new_checked(&out[0][..]).unwrap();
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert_eq!((ip.src_addr(), ip.dst_addr()), (OUTSIDE, CLIENT_IP));
    let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
    let repr = Icmpv4Repr::parse(&icmp, &smoltcp::phy::ChecksumCapabilities::default()).unwrap();
    assert_eq!(
        repr,
        Icmpv4Repr::EchoReply {
            ident: 77,
            seq_no: 1,
            data: b"ping-data"
        }
    );
    assert_eq!(host.nat_table()[0].protocol, NatProtocol::Icmp);
    // to the host itself: answered at once, no socket work
    out.clear();
    let f = icmp_echo_frame(HOST_IP, 78, 1);
    assert_eq!(host.handle_frame(&f, t0, &mut out), HostInput::Handled);
    assert_eq!(out.len(), 1, "no echo reply from the host");
    assert!(host.poll_io().is_none());
}

#[test]
fn flows_beyond_the_limit_are_refused_and_counted() {
    let t0 = Instant::now();
    let mut c = cfg();
    c.max_sessions = 3;
    let mut host = NatHost::new(c, t0);
    for port in 0..5u16 {
        let _ = udp_to(
            &mut host,
            SocketAddrV4::new(OUTSIDE, 7),
            40000 + port,
            b"x",
            t0,
        );
    }
    assert_eq!(host.nat_table().len(), 3);
    assert_eq!(host.counters().refused_sessions, 2);
    let mut sends = 0;
    while let Some(r) = host.poll_io() {
        assert!(matches!(r, IoRequest::UdpSend { .. }));
        sends += 1;
    }
    assert_eq!(sends, 3);
}

#[test]
fn a_batch_of_segments_is_taken_in_one_pass_and_acknowledged_once() {
    let mut net = Net::new();
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 262_144]),
        tcp::SocketBuffer::new(vec![0; 262_144]),
    );
    // a client that lets out its whole window at once (no congestion window)
    s.set_congestion_control(tcp::CongestionControl::None);
    s.connect(net.iface.context(), (IpAddress::Ipv4(OUTSIDE), 80), 49153)
        .unwrap();
    let h = net.sockets.add(s);
    for _ in 0..50 {
        net.step();
    }
    assert_eq!(
        net.sockets.get::<tcp::Socket>(h).state(),
        tcp::State::Established
    );
    // the client lets out as many segments as it may before the host sees any: one batch
    let payload: Vec<u8> = (0..40_000u32).map(|i| (i % 253) as u8).collect();
    net.sockets
        .get_mut::<tcp::Socket>(h)
        .send_slice(&payload)
        .unwrap();
    let ts = smoltcp::time::Instant::from_micros((net.now - net.start).as_micros() as i64);
    let mut batch = Vec::new();
    {
        let mut rx = std::mem::take(&mut net.to_client);
        let mut dev = Queue {
            rx: &mut rx,
            tx: &mut batch,
        };
        net.iface.poll(ts, &mut dev, &mut net.sockets);
        for _ in 0..64 {
            net.iface.poll_egress(ts, &mut dev, &mut net.sockets);
        }
    }
    let mut out = Vec::new();
    let deferred = batch
        .iter()
        .filter(|f| net.host.handle_frame(f, net.now, &mut out) == HostInput::Deferred)
        .count();
    assert!(
        deferred >= 20,
        "only {deferred} of {} frames held",
        batch.len()
    );
    assert!(
        out.is_empty(),
        "the host answered before the end of the batch"
    );
    assert!(net.host.has_deferred());
    net.host.poll(net.now, &mut out);
    assert!(!net.host.has_deferred());
    // one acknowledgement for the batch (and no data: the outside has sent nothing yet)
    assert!(
        (1..=2).contains(&out.len()),
        "{} frames answered a batch of {deferred} segments",
        out.len()
    );
    // and every byte reaches the outside, in order
    net.to_client.extend(out);
    let mut sent = 0;
    for _ in 0..2_000 {
        net.step();
        sent = net.host.nat_table().first().map(|e| e.sent).unwrap_or(0);
        if sent >= payload.len() as u64 {
            break;
        }
    }
    assert_eq!(sent, payload.len() as u64);
}

/// One step of the flow-table property test.
#[derive(Clone, Debug)]
enum FlowOp {
    Udp { sport: u16, dst: u8 },
    Icmp { dst: u8, ident: u16 },
    Syn { sport: u16, dst: u8 },
    Wait { ms: u64 },
}

fn flow_op() -> impl proptest::strategy::Strategy<Value = FlowOp> {
    use proptest::prelude::*;
    prop_oneof![
        (0u16..6, 0u8..3).prop_map(|(sport, dst)| FlowOp::Udp { sport, dst }),
        (0u8..3, 0u16..3).prop_map(|(dst, ident)| FlowOp::Icmp { dst, ident }),
        (0u16..6, 0u8..3).prop_map(|(sport, dst)| FlowOp::Syn { sport, dst }),
        (0u64..15_000).prop_map(|ms| FlowOp::Wait { ms }),
    ]
}

/// The NAT table as a slow, obvious model: a flow per key, alive while it has been used within
/// its protocol's timeout, admitted while fewer than the limit are alive.
#[derive(Default)]
struct FlowModel {
    live: HashMap<(NatProtocol, u16, u8), (FlowId, Instant)>,
    ever: std::collections::HashSet<FlowId>,
    refused: u64,
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

    /// Whatever clients open and however time passes, the host's live flows are the model's:
    /// same keys, ids never reused, the limit respected (idle flows make room), every flow that
    /// goes away closed on the socket side.
    #[test]
    fn nat_flow_table_matches_a_reference_model(ops in proptest::collection::vec(flow_op(), 1..120)) {
        const MAX: usize = 5;
        let udp_timeout = Duration::from_secs(4);
        let tcp_timeout = Duration::from_secs(9);
        let t0 = Instant::now();
        let mut c = cfg();
        c.max_sessions = MAX;
        c.udp_timeout = udp_timeout;
        c.tcp_timeout = tcp_timeout;
        let mut host = NatHost::new(c, t0);
        let mut model = FlowModel::default();
        let (mut now, mut out) = (t0, Vec::new());
        let mut opened = std::collections::HashSet::new();
        let mut closed = std::collections::HashSet::new();
        let dsts = [OUTSIDE, Ipv4Addr::new(198, 19, 0, 6), Ipv4Addr::new(198, 19, 0, 7)];
        for op in ops {
            let key = match op {
                FlowOp::Udp { sport, dst } => {
                    let f = etherhub_securenat_test_frame(SocketAddrV4::new(dsts[dst as usize], 7), 40000 + sport, b"u");
                    proptest::prop_assert_eq!(host.handle_frame(&f, now, &mut out), HostInput::Handled);
                    Some((NatProtocol::Udp, 40000 + sport, dst))
                }
                FlowOp::Icmp { dst, ident } => {
                    let f = icmp_echo_frame(dsts[dst as usize], 100 + ident, 1);
                    proptest::prop_assert_eq!(host.handle_frame(&f, now, &mut out), HostInput::Handled);
                    Some((NatProtocol::Icmp, 100 + ident, dst))
                }
                FlowOp::Syn { sport, dst } => {
                    let f = tcp_syn_frame(SocketAddrV4::new(dsts[dst as usize], 80), 41000 + sport);
                    proptest::prop_assert_eq!(host.handle_frame(&f, now, &mut out), HostInput::Handled);
                    Some((NatProtocol::Tcp, 41000 + sport, dst))
                }
                FlowOp::Wait { ms } => {
                    now += Duration::from_millis(ms);
                    host.poll(now, &mut out);
                    None
                }
            };
            // the model: idle flows go, then the packet's flow is used, or made if there is room
            model.live.retain(|(p, _, _), (_, last)| {
                let timeout = if *p == NatProtocol::Tcp { tcp_timeout } else { udp_timeout };
                now.saturating_duration_since(*last) <= timeout
            });
            if let Some(key) = key {
                let known = model.live.get_mut(&key).map(|(_, last)| *last = now).is_some();
                match known {
                    true => {}
                    false if model.live.len() < MAX => {
                        let id = host.nat_table().iter().map(|e| e.id).find(|id| !model.ever.contains(id));
                        let id = id.expect("an admitted flow shows in the table");
                        model.ever.insert(id);
                        model.live.insert(key, (id, now));
                    }
                    false => model.refused += 1,
                }
            }
            while let Some(req) = host.poll_io() {
                match req {
                    IoRequest::TcpConnect { flow, .. } | IoRequest::UdpSend { flow, .. } => { opened.insert(flow); }
                    IoRequest::TcpClose { flow } | IoRequest::UdpClose { flow } => {
                        proptest::prop_assert!(closed.insert(flow), "flow {:?} closed twice", flow);
                    }
                    _ => {}
                }
            }
            let live_in_host: std::collections::BTreeSet<FlowId> = host
                .nat_table()
                .iter()
                .filter(|e| {
                    let timeout = if e.protocol == NatProtocol::Tcp { tcp_timeout } else { udp_timeout };
                    now.saturating_duration_since(e.last) <= timeout
                })
                .map(|e| e.id)
                .collect();
            let live_in_model: std::collections::BTreeSet<FlowId> = model.live.values().map(|(id, _)| *id).collect();
            proptest::prop_assert_eq!(live_in_host, live_in_model);
            proptest::prop_assert!(host.nat_table().len() <= MAX);
            proptest::prop_assert_eq!(host.counters().refused_sessions, model.refused);
        }
        // long after: nothing is left, and every socket the host opened was closed
        now += Duration::from_secs(60);
        host.poll(now, &mut out);
        while let Some(req) = host.poll_io() {
            if let IoRequest::TcpClose { flow } | IoRequest::UdpClose { flow } = req {
                proptest::prop_assert!(closed.insert(flow), "flow {:?} closed twice", flow);
            }
        }
        proptest::prop_assert!(host.nat_table().is_empty());
        proptest::prop_assert_eq!(&opened, &closed);
    }
}
