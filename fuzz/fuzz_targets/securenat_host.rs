//! SecureNAT's host from both sides at once: frames from the hub (TCP segments with sequence and
//! acknowledgement numbers near and far from the connection's, UDP, DNS, DHCP, ICMP, ARP, raw
//! bytes) and the outside sockets' results (connects, refusals, data, EOF, errors, datagrams,
//! echo replies, for live and made-up flows), with time moving in steps. Segments are built with
//! valid checksums so that they reach smoltcp's TCP state machine, where smoltcp 0.12 panicked
//! on bytes outside the receive window.
#![no_main]

use etherhub_hub::{VirtualHost, VirtualHostConfig};
use etherhub_securenat::{DhcpConfig, FlowId, IoEvent, IoRequest, NatConfig, NatHost};
use libfuzzer_sys::fuzz_target;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, Icmpv4Packet, Icmpv4Repr, IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr,
    TcpControl, TcpPacket, TcpRepr, TcpSeqNumber, UdpPacket, UdpRepr,
};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x10];
const HOST_MAC: [u8; 6] = [0x5e, 0x5a, 0x1c, 0x33, 0x53, 0x05];
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 30, 10);
const HOST_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 30, 1);
const OUTSIDE: [Ipv4Addr; 3] = [
    Ipv4Addr::new(198, 19, 0, 5),
    Ipv4Addr::new(198, 19, 0, 6),
    HOST_IP,
];

/// Reads the fuzzer's bytes as numbers; zeros once they run out.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn u8(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One client connection as the harness sees it: the client's next sequence number, and the
/// host's, once a segment from the host told it.
struct Conn {
    src_port: u16,
    dst: SocketAddrV4,
    snd_nxt: TcpSeqNumber,
    rcv_nxt: Option<TcpSeqNumber>,
}

fn ip_frame(proto: IpProtocol, src: Ipv4Addr, dst: Ipv4Addr, dst_mac: [u8; 6], payload_len: usize, emit: impl FnOnce(&mut [u8])) -> Vec<u8> {
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: proto,
        payload_len,
        hop_limit: 64,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress(CLIENT_MAC),
        dst_addr: EthernetAddress(dst_mac),
        ethertype: EthernetProtocol::Ipv4,
    };
    let mut buf = vec![0u8; eth.buffer_len() + ip.buffer_len() + payload_len];
    let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut f);
    let mut p = Ipv4Packet::new_unchecked(f.payload_mut());
    ip.emit(&mut p, &ChecksumCapabilities::default());
    emit(p.payload_mut());
    buf
}

fn tcp_frame(c: &Conn, control: TcpControl, ack: Option<TcpSeqNumber>, seq: TcpSeqNumber, window: u16, scale: Option<u8>, sack: [Option<(u32, u32)>; 3], payload: &[u8]) -> Vec<u8> {
    let repr = TcpRepr {
        src_port: c.src_port,
        dst_port: c.dst.port(),
        control,
        seq_number: seq,
        ack_number: ack,
        window_len: window,
        window_scale: scale,
        max_seg_size: (control == TcpControl::Syn).then_some(1460),
        sack_permitted: control == TcpControl::Syn,
        sack_ranges: sack,
        timestamp: None,
        payload,
    };
    let (src, dst) = (IpAddress::Ipv4(CLIENT_IP), IpAddress::Ipv4(*c.dst.ip()));
    ip_frame(IpProtocol::Tcp, CLIENT_IP, *c.dst.ip(), HOST_MAC, repr.buffer_len(), |b| {
        repr.emit(&mut TcpPacket::new_unchecked(b), &src, &dst, &ChecksumCapabilities::default())
    })
}

fn udp_frame(src_port: u16, dst: SocketAddrV4, dst_mac: [u8; 6], payload: &[u8]) -> Vec<u8> {
    let repr = UdpRepr {
        src_port,
        dst_port: dst.port(),
    };
    let (s, d) = (IpAddress::Ipv4(CLIENT_IP), IpAddress::Ipv4(*dst.ip()));
    ip_frame(IpProtocol::Udp, CLIENT_IP, *dst.ip(), dst_mac, repr.header_len() + payload.len(), |b| {
        repr.emit(
            &mut UdpPacket::new_unchecked(b),
            &s,
            &d,
            payload.len(),
            |p| p.copy_from_slice(payload),
            &ChecksumCapabilities::default(),
        )
    })
}

fn config(b: &mut Bytes<'_>) -> NatConfig {
    let knobs = b.u8();
    NatConfig {
        host: VirtualHostConfig {
            ip: HOST_IP,
            mask: Ipv4Addr::new(255, 255, 255, 0),
            mac: HOST_MAC,
        },
        nat_enabled: knobs & 1 == 0,
        mtu: 576 + usize::from(b.u16() % 1500),
        tcp_timeout: Duration::from_secs(1 + u64::from(knobs >> 4)),
        udp_timeout: Duration::from_secs(1 + u64::from(knobs & 0x0e)),
        max_sessions: 1 + usize::from(b.u8() % 32),
        dhcp: (knobs & 2 == 0).then(|| DhcpConfig {
            start: Ipv4Addr::new(192, 168, 30, 10),
            end: Ipv4Addr::new(192, 168, 30, 10 + (knobs & 7)),
            mask: Ipv4Addr::new(255, 255, 255, 0),
            lease: Duration::from_secs(60),
            gateway: HOST_IP,
            dns: HOST_IP,
            dns2: Ipv4Addr::UNSPECIFIED,
            domain: "lan.example".into(),
            push_routes: Vec::new(),
        }),
        dns_servers: vec![Ipv4Addr::new(198, 19, 0, 53)],
        seed: u64::from(b.u32()),
    }
}

/// Learns the host's sequence numbers from what it sent to the client.
fn observe(frames: &[Vec<u8>], conns: &mut [Conn]) {
    for f in frames {
        let Ok(eth) = EthernetFrame::new_checked(&f[..]) else { continue };
        let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else { continue };
        if ip.next_header() != IpProtocol::Tcp {
            continue;
        }
        let Ok(seg) = TcpPacket::new_checked(ip.payload()) else { continue };
        for c in conns.iter_mut() {
            if c.src_port == seg.dst_port() && c.dst.port() == seg.src_port() && *c.dst.ip() == ip.src_addr() {
                let len = seg.payload().len() + usize::from(seg.syn()) + usize::from(seg.fin());
                c.rcv_nxt = Some(seg.seq_number() + len);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let start = Instant::now();
    let mut now = start;
    let mut host = NatHost::new(config(&mut b), now);
    let mut conns: Vec<Conn> = Vec::new();
    let mut flows: Vec<FlowId> = Vec::new();
    let mut out = Vec::new();
    let mut steps = 0;
    while !b.is_empty() && steps < 512 {
        steps += 1;
        let op = b.u8();
        match op % 12 {
            // a new connection from the client
            0 => {
                let dst = SocketAddrV4::new(OUTSIDE[usize::from(b.u8()) % 3], 1 + b.u16() % 1024);
                let c = Conn {
                    src_port: 1024 + b.u16() % 64,
                    dst,
                    snd_nxt: TcpSeqNumber(b.u32() as i32),
                    rcv_nxt: None,
                };
                let f = tcp_frame(&c, TcpControl::Syn, None, c.snd_nxt, 65535, Some(b.u8() % 15), [None; 3], &[]);
                let _ = host.handle_frame(&f, now, &mut out);
                let mut c = c;
                c.snd_nxt = c.snd_nxt + 1;
                conns.push(c);
            }
            // a segment of a known connection, its numbers near or far from the right ones
            1 | 2 => {
                if conns.is_empty() {
                    continue;
                }
                let i = usize::from(b.u8()) % conns.len();
                let flags = b.u8();
                let seq_off = i32::from(b.u16() as i16) * i32::from(flags >> 6);
                let ack_off = i32::from(b.u16() as i16) * i32::from((flags >> 4) & 3);
                let window = b.u16();
                let len = usize::from(b.u8()) * 8;
                let payload = b.take(len).to_vec();
                let c = &conns[i];
                let control = match flags & 7 {
                    0 | 1 | 2 => TcpControl::None,
                    3 => TcpControl::Psh,
                    4 => TcpControl::Fin,
                    5 => TcpControl::Rst,
                    _ => TcpControl::Syn,
                };
                let ack = c.rcv_nxt.map(|n| TcpSeqNumber(n.0.wrapping_add(ack_off)));
                let seq = TcpSeqNumber(c.snd_nxt.0.wrapping_add(seq_off));
                // SACK blocks above (or, wrapping, below) the acknowledgement: the gaps the host
                // mends sooner
                let sack_sel = b.u8();
                let block = |k: u32| {
                    ack.filter(|_| sack_sel & (1 << k) != 0).map(|a| {
                        let left = a.0.wrapping_add((i32::from(sack_sel >> 4) - 4) * 1380 * (k as i32 + 1)) as u32;
                        (left, left.wrapping_add(1380 * (1 + k)))
                    })
                };
                let sack = [block(0), block(1), block(2)];
                let f = tcp_frame(c, control, ack.filter(|_| flags & 8 == 0), seq, window, None, sack, &payload);
                let _ = host.handle_frame(&f, now, &mut out);
                if seq_off == 0 {
                    let c = &mut conns[i];
                    c.snd_nxt = c.snd_nxt + payload.len() + usize::from(control == TcpControl::Fin);
                }
            }
            // UDP to the outside, DNS to the host, DHCP to everyone
            3 => {
                let sel = b.u8();
                let len = usize::from(b.u8());
                let payload = b.take(len).to_vec();
                let f = match sel % 3 {
                    0 => udp_frame(1024 + u16::from(sel >> 2), SocketAddrV4::new(OUTSIDE[usize::from(sel) % 2], 7), HOST_MAC, &payload),
                    1 => udp_frame(5353, SocketAddrV4::new(HOST_IP, 53), HOST_MAC, &payload),
                    _ => udp_frame(68, SocketAddrV4::new(Ipv4Addr::BROADCAST, 67), [0xff; 6], &payload),
                };
                let _ = host.handle_frame(&f, now, &mut out);
            }
            // ICMP echo to the outside or the host
            4 => {
                let dst = OUTSIDE[usize::from(b.u8()) % 3];
                let len = usize::from(b.u8());
                let data = b.take(len).to_vec();
                let repr = Icmpv4Repr::EchoRequest { ident: b.u16(), seq_no: b.u16(), data: &data };
                let f = ip_frame(IpProtocol::Icmp, CLIENT_IP, dst, HOST_MAC, repr.buffer_len(), |p| {
                    repr.emit(&mut Icmpv4Packet::new_unchecked(p), &ChecksumCapabilities::default())
                });
                let _ = host.handle_frame(&f, now, &mut out);
            }
            // ARP for the host (or someone else)
            5 => {
                let target = if b.u8() & 1 == 0 { HOST_IP } else { OUTSIDE[0] };
                let repr = ArpRepr::EthernetIpv4 {
                    operation: ArpOperation::Request,
                    source_hardware_addr: EthernetAddress(CLIENT_MAC),
                    source_protocol_addr: CLIENT_IP,
                    target_hardware_addr: EthernetAddress([0; 6]),
                    target_protocol_addr: target,
                };
                let eth = EthernetRepr {
                    src_addr: EthernetAddress(CLIENT_MAC),
                    dst_addr: EthernetAddress([0xff; 6]),
                    ethertype: EthernetProtocol::Arp,
                };
                let mut buf = vec![0u8; eth.buffer_len() + repr.buffer_len()];
                let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
                eth.emit(&mut f);
                repr.emit(&mut ArpPacket::new_unchecked(f.payload_mut()));
                let _ = host.handle_frame(&buf, now, &mut out);
            }
            // raw bytes, whatever they are
            6 => {
                let len = usize::from(b.u16() % 1600);
                let f = b.take(len).to_vec();
                let _ = host.handle_frame(&f, now, &mut out);
            }
            // what the outside sockets did
            7 | 8 => {
                let pick = b.u8();
                let flow = match flows.get(usize::from(pick) % (flows.len() + 1)) {
                    Some(f) => *f,
                    None => FlowId(u32::from(b.u8())),
                };
                let len = usize::from(b.u16() % 4096);
                let payload = b.take(len).to_vec();
                let ev = match b.u8() % 8 {
                    0 => IoEvent::TcpConnected { flow },
                    1 => IoEvent::TcpError { flow },
                    2 => IoEvent::TcpData { flow, data: payload },
                    3 => IoEvent::TcpEof { flow },
                    4 => IoEvent::TcpSent { flow, bytes: len },
                    5 => IoEvent::UdpData { flow, data: payload },
                    6 => IoEvent::IcmpReply { flow, seq_no: b.u16(), data: payload },
                    _ => IoEvent::TcpData { flow, data: vec![0x5a; 65536] },
                };
                host.handle_io(ev, now);
                host.poll(now, &mut out);
            }
            // time passes
            9 | 10 => {
                now += Duration::from_millis(u64::from(b.u16()) * u64::from(op >> 4).max(1));
                host.poll(now, &mut out);
            }
            _ => {
                host.poll(now, &mut out);
                let _ = host.poll_delay(now);
                let _ = host.nat_table();
                let _ = host.leases();
            }
        }
        if host.has_deferred() {
            host.poll(now, &mut out);
        }
        observe(&out, &mut conns);
        out.clear();
        while let Some(req) = host.poll_io() {
            match req {
                IoRequest::TcpConnect { flow, .. } | IoRequest::UdpSend { flow, .. } | IoRequest::IcmpEcho { flow, .. } => {
                    if !flows.contains(&flow) {
                        flows.push(flow);
                    }
                }
                IoRequest::TcpClose { flow } | IoRequest::UdpClose { flow } => flows.retain(|f| *f != flow),
                IoRequest::TcpSend { .. } | IoRequest::TcpGrant { .. } | IoRequest::TcpShutdown { .. } => {}
            }
        }
    }
    // long after: every flow times out and the table empties
    let later = now + Duration::from_secs(3600);
    host.poll(later, &mut out);
    host.poll(later + Duration::from_secs(1), &mut out);
    while host.poll_io().is_some() {}
    let table = host.nat_table();
    assert!(table.is_empty(), "flows outlived their timeouts: {table:?}");
});
