//! Frame builders and small address predicates shared by the switch, the L3 adapter and the
//! virtual host. Everything is emitted through `smoltcp::wire` reprs.

use std::net::Ipv4Addr;

use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, ETHERNET_HEADER_LEN,
};

pub(crate) const BROADCAST_MAC: [u8; 6] = [0xff; 6];

/// Group bit (multicast or broadcast) of a MAC address.
pub(crate) fn is_group_mac(mac: &[u8; 6]) -> bool {
    mac[0] & 1 == 1
}

/// An address a single host can own (and so may appear in ARP and IP tables).
pub(crate) fn is_host_ipv4(ip: Ipv4Addr) -> bool {
    !ip.is_unspecified() && !ip.is_broadcast() && !ip.is_multicast()
}

/// The subnet-directed broadcast address of `net`/`mask`.
pub(crate) fn directed_broadcast(net: Ipv4Addr, mask: Ipv4Addr) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net) | !u32::from(mask))
}

pub(crate) fn same_subnet(a: Ipv4Addr, b: Ipv4Addr, mask: Ipv4Addr) -> bool {
    let m = u32::from(mask);
    u32::from(a) & m == u32::from(b) & m
}

/// The RFC 1112 Ethernet group address of an IPv4 multicast group.
pub(crate) fn ipv4_multicast_mac(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]
}

/// Emptied buffers kept for the next frame or packet, so that switching one does not allocate
/// each time: a frame the switch is done with comes back here.
#[derive(Debug, Default)]
pub(crate) struct Spare(Vec<Vec<u8>>);

/// How many buffers [`Spare`] keeps, and the largest it keeps.
const SPARE_BUFFERS: usize = 64;
const SPARE_CAPACITY: usize = 4096;

impl Spare {
    /// An empty buffer, kept or new.
    pub fn take(&mut self) -> Vec<u8> {
        let mut buf = self.0.pop().unwrap_or_default();
        buf.clear();
        buf
    }

    /// Keeps `buf` for a later [`Spare::take`], unless enough are kept or it is large.
    pub fn give(&mut self, buf: Vec<u8>) {
        if self.has_room() && buf.capacity() <= SPARE_CAPACITY {
            self.0.push(buf);
        }
    }

    pub fn has_room(&self) -> bool {
        self.0.len() < SPARE_BUFFERS
    }
}

/// An Ethernet frame around `payload`.
pub(crate) fn ethernet_frame(
    src: [u8; 6],
    dst: [u8; 6],
    ethertype: EthernetProtocol,
    payload: &[u8],
) -> Vec<u8> {
    ethernet_frame_in(Vec::new(), src, dst, ethertype, payload)
}

/// [`ethernet_frame`], written into `buf` (emptied first): no zeroing, and no allocation when
/// `buf` is large enough.
pub(crate) fn ethernet_frame_in(
    mut buf: Vec<u8>,
    src: [u8; 6],
    dst: [u8; 6],
    ethertype: EthernetProtocol,
    payload: &[u8],
) -> Vec<u8> {
    buf.clear();
    buf.reserve(ETHERNET_HEADER_LEN + payload.len());
    buf.extend_from_slice(&dst);
    buf.extend_from_slice(&src);
    buf.extend_from_slice(&u16::from(ethertype).to_be_bytes());
    buf.extend_from_slice(payload);
    buf
}

/// An Ethernet/IPv4 ARP frame (42 bytes, unpadded).
pub(crate) fn arp_frame(
    operation: ArpOperation,
    src_mac: [u8; 6],
    src_ip: Ipv4Addr,
    eth_dst: [u8; 6],
    target_mac: [u8; 6],
    target_ip: Ipv4Addr,
) -> Vec<u8> {
    let arp = ArpRepr::EthernetIpv4 {
        operation,
        source_hardware_addr: EthernetAddress(src_mac),
        source_protocol_addr: src_ip,
        target_hardware_addr: EthernetAddress(target_mac),
        target_protocol_addr: target_ip,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress(src_mac),
        dst_addr: EthernetAddress(eth_dst),
        ethertype: EthernetProtocol::Arp,
    };
    let mut buf = vec![0u8; ETHERNET_HEADER_LEN + arp.buffer_len()];
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut frame);
    let mut packet = ArpPacket::new_unchecked(frame.payload_mut());
    arp.emit(&mut packet);
    buf
}

/// Parse the ARP payload of an Ethernet frame into its Ethernet/IPv4 form.
pub(crate) fn parse_arp(payload: &[u8]) -> Option<ArpFields> {
    let packet = ArpPacket::new_checked(payload).ok()?;
    match ArpRepr::parse(&packet).ok()? {
        ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr,
            source_protocol_addr,
            target_protocol_addr,
            ..
        } => Some(ArpFields {
            operation,
            sender_mac: source_hardware_addr.0,
            sender_ip: source_protocol_addr,
            target_ip: target_protocol_addr,
        }),
        // ArpRepr is non-exhaustive; other hardware/protocol pairs are not ours to answer.
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct ArpFields {
    pub operation: ArpOperation,
    pub sender_mac: [u8; 6],
    pub sender_ip: Ipv4Addr,
    pub target_ip: Ipv4Addr,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arp_frame_round_trips() {
        let a = Ipv4Addr::new(192, 168, 30, 233);
        let b = Ipv4Addr::new(192, 168, 30, 1);
        let f = arp_frame(
            ArpOperation::Request,
            [0x5e, 1, 2, 3, 4, 5],
            a,
            BROADCAST_MAC,
            [0; 6],
            b,
        );
        assert_eq!(f.len(), 42);
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!(eth.ethertype(), EthernetProtocol::Arp);
        assert_eq!(eth.dst_addr().0, BROADCAST_MAC);
        let arp = parse_arp(eth.payload()).unwrap();
        assert_eq!(arp.operation, ArpOperation::Request);
        assert_eq!(arp.sender_mac, [0x5e, 1, 2, 3, 4, 5]);
        assert_eq!((arp.sender_ip, arp.target_ip), (a, b));
    }

    #[test]
    fn a_frame_written_into_a_used_buffer_is_the_frame_and_nothing_else() {
        let payload = [0x45u8, 0, 0, 20, 1, 2, 3, 4];
        let mut spare = Spare::default();
        // a longer frame went through the buffer before
        spare.give(vec![0xaa; 1500]);
        let buf = spare.take();
        assert!(buf.is_empty() && buf.capacity() >= 1500);
        let (src, dst) = ([0x5e, 1, 2, 3, 4, 5], [0x5e, 6, 7, 8, 9, 10]);
        let f = ethernet_frame_in(buf, src, dst, EthernetProtocol::Ipv4, &payload);
        assert_eq!(f.len(), 14 + payload.len());
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        assert_eq!(
            (eth.src_addr().0, eth.dst_addr().0, eth.ethertype()),
            (src, dst, EthernetProtocol::Ipv4)
        );
        assert_eq!(eth.payload(), payload);
        assert_eq!(
            f,
            ethernet_frame(src, dst, EthernetProtocol::Ipv4, &payload)
        );
        // only so many, and none too large, are kept
        for _ in 0..SPARE_BUFFERS + 10 {
            spare.give(Vec::with_capacity(100));
        }
        spare.give(Vec::with_capacity(SPARE_CAPACITY + 1));
        assert_eq!(spare.0.len(), SPARE_BUFFERS);
        assert!(spare.0.iter().all(|b| b.capacity() <= SPARE_CAPACITY));
    }

    #[test]
    fn address_predicates() {
        let mask = Ipv4Addr::new(255, 255, 255, 0);
        let net = Ipv4Addr::new(192, 168, 30, 1);
        assert_eq!(
            directed_broadcast(net, mask),
            Ipv4Addr::new(192, 168, 30, 255)
        );
        assert!(same_subnet(net, Ipv4Addr::new(192, 168, 30, 200), mask));
        assert!(!same_subnet(net, Ipv4Addr::new(8, 8, 8, 8), mask));
        assert_eq!(
            ipv4_multicast_mac(Ipv4Addr::new(239, 255, 255, 250)),
            [0x01, 0x00, 0x5e, 0x7f, 0xff, 0xfa]
        );
        assert!(is_group_mac(&BROADCAST_MAC));
        assert!(!is_group_mac(&[0x5e, 0, 0, 0, 0, 1]));
        assert!(!is_host_ipv4(Ipv4Addr::UNSPECIFIED));
        assert!(is_host_ipv4(net));
    }

    #[test]
    fn parse_arp_rejects_short_input() {
        assert!(parse_arp(&[0u8; 10]).is_none());
    }
}
