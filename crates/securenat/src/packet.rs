//! Building the frames the host sends: Ethernet / IPv4 / UDP or ICMP, through smoltcp's reprs.

use std::net::SocketAddrV4;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, Icmpv4Packet, Icmpv4Repr,
    IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr, TcpPacket, TcpRepr, UdpPacket, UdpRepr,
    ETHERNET_HEADER_LEN,
};

const IPV4_HEADER_LEN: usize = 20;
const UDP_HEADER_LEN: usize = 8;

fn frame(src_mac: [u8; 6], dst_mac: [u8; 6], ip: &Ipv4Repr, body_len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + body_len];
    let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
    EthernetRepr {
        src_addr: EthernetAddress(src_mac),
        dst_addr: EthernetAddress(dst_mac),
        ethertype: EthernetProtocol::Ipv4,
    }
    .emit(&mut eth);
    let mut ip_out = Ipv4Packet::new_unchecked(eth.payload_mut());
    ip.emit(&mut ip_out, &ChecksumCapabilities::default());
    buf
}

/// An Ethernet frame carrying one UDP datagram from `src` to `dst`; `fill` writes the payload.
pub fn udp_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: SocketAddrV4,
    dst: SocketAddrV4,
    payload_len: usize,
    fill: impl FnOnce(&mut [u8]),
) -> Vec<u8> {
    let udp = UdpRepr {
        src_port: src.port(),
        dst_port: dst.port(),
    };
    let ip = Ipv4Repr {
        src_addr: *src.ip(),
        dst_addr: *dst.ip(),
        next_header: IpProtocol::Udp,
        payload_len: UDP_HEADER_LEN + payload_len,
        hop_limit: 64,
    };
    let mut buf = frame(src_mac, dst_mac, &ip, UDP_HEADER_LEN + payload_len);
    let start = ETHERNET_HEADER_LEN + IPV4_HEADER_LEN;
    let mut pkt = UdpPacket::new_unchecked(&mut buf[start..]);
    udp.emit(
        &mut pkt,
        &IpAddress::Ipv4(*src.ip()),
        &IpAddress::Ipv4(*dst.ip()),
        payload_len,
        fill,
        &ChecksumCapabilities::default(),
    );
    buf
}

/// An ICMP echo reply frame.
pub fn icmp_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    ip: (std::net::Ipv4Addr, std::net::Ipv4Addr),
    icmp: &Icmpv4Repr<'_>,
) -> Vec<u8> {
    let ip_repr = Ipv4Repr {
        src_addr: ip.0,
        dst_addr: ip.1,
        next_header: IpProtocol::Icmp,
        payload_len: icmp.buffer_len(),
        hop_limit: 64,
    };
    let mut buf = frame(src_mac, dst_mac, &ip_repr, icmp.buffer_len());
    let start = ETHERNET_HEADER_LEN + IPV4_HEADER_LEN;
    let mut pkt = Icmpv4Packet::new_unchecked(&mut buf[start..]);
    icmp.emit(&mut pkt, &ChecksumCapabilities::default());
    buf
}

/// A TCP segment with no payload (a reset for a connection the outside refused).
pub fn tcp_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    ip: (std::net::Ipv4Addr, std::net::Ipv4Addr),
    tcp: &TcpRepr<'_>,
) -> Vec<u8> {
    let ip_repr = Ipv4Repr {
        src_addr: ip.0,
        dst_addr: ip.1,
        next_header: IpProtocol::Tcp,
        payload_len: tcp.buffer_len(),
        hop_limit: 64,
    };
    let mut buf = frame(src_mac, dst_mac, &ip_repr, tcp.buffer_len());
    let start = ETHERNET_HEADER_LEN + IPV4_HEADER_LEN;
    let mut pkt = TcpPacket::new_unchecked(&mut buf[start..]);
    tcp.emit(
        &mut pkt,
        &IpAddress::Ipv4(ip.0),
        &IpAddress::Ipv4(ip.1),
        &ChecksumCapabilities::default(),
    );
    buf
}
