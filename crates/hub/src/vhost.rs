//! Virtual hosts: sessions that live inside the hub rather than behind a tunnel.
//!
//! [`SecureNatHost`] is the minimal SecureNAT virtual host (ARP and ICMP echo for its own address).
//! The securenat crate implements [`VirtualHost`] with NAT, DHCP and DNS; a `Hub<NatHost>`
//! attaches it with [`crate::Hub::set_securenat_host`] and hands it back typed.

use std::net::Ipv4Addr;
use std::time::Instant;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, Icmpv4Packet,
    Icmpv4Repr, IpProtocol, Ipv4Packet, Ipv4Repr, ETHERNET_HEADER_LEN,
};

use crate::packet::{arp_frame, is_group_mac, is_host_ipv4, parse_arp};

/// Address settings of a virtual host (SecureNatHostGet: MAC Address, IP Address, Subnet Mask).
#[derive(Clone, Debug)]
pub struct VirtualHostConfig {
    pub ip: Ipv4Addr,
    pub mask: Ipv4Addr,
    pub mac: [u8; 6],
}

impl Default for VirtualHostConfig {
    /// SoftEther's SecureNAT defaults: 192.168.30.1/255.255.255.0 with a 5E-prefixed MAC.
    fn default() -> Self {
        Self {
            ip: Ipv4Addr::new(192, 168, 30, 1),
            mask: Ipv4Addr::new(255, 255, 255, 0),
            mac: [0x5e, 0x5a, 0x1c, 0x33, 0x53, 0x05],
        }
    }
}

/// What a virtual host made of a frame the switch gave it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostInput {
    /// The frame was for the host and was acted on.
    Handled,
    /// The frame was for the host, which holds it until its next [`VirtualHost::poll`] so that a
    /// batch is processed in one pass ([`crate::Hub::flush_hosts`] runs that poll).
    Deferred,
    /// The frame was well formed but not for the host (or not something it serves).
    Ignored,
    /// The frame was malformed; the hub counts it in [`crate::Hub::dropped`].
    Malformed,
}

/// A station inside the hub. The hub hands it every frame the switch delivers to its session and
/// puts the frames it pushes to `out` onto the switch as sent by that session.
pub trait VirtualHost: Send {
    /// The host's MAC address (shown in SessionGet and used for its session's MAC entry).
    fn mac(&self) -> [u8; 6];
    /// The host's IPv4 address, if it has one.
    fn ipv4(&self) -> Option<Ipv4Addr>;
    /// A frame from the switch.
    fn handle_frame(&mut self, frame: &[u8], now: Instant, out: &mut Vec<Vec<u8>>) -> HostInput;
    /// Timers and held frames; the hub calls this from [`crate::Hub::tick`] and
    /// [`crate::Hub::flush_hosts`].
    fn poll(&mut self, _now: Instant, _out: &mut Vec<Vec<u8>>) {}
    /// Whether frames wait for the next `poll` (after [`HostInput::Deferred`]).
    fn has_deferred(&self) -> bool {
        false
    }
}

/// Hosts of different kinds on one hub (`Hub<Box<dyn VirtualHost>>`).
impl VirtualHost for Box<dyn VirtualHost> {
    fn mac(&self) -> [u8; 6] {
        (**self).mac()
    }
    fn ipv4(&self) -> Option<Ipv4Addr> {
        (**self).ipv4()
    }
    fn handle_frame(&mut self, frame: &[u8], now: Instant, out: &mut Vec<Vec<u8>>) -> HostInput {
        (**self).handle_frame(frame, now, out)
    }
    fn poll(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        (**self).poll(now, out)
    }
    fn has_deferred(&self) -> bool {
        (**self).has_deferred()
    }
}

/// The SecureNAT virtual host as far as the hub itself goes: it answers ARP for its address and
/// ICMP echo requests sent to it.
#[derive(Clone, Debug)]
pub struct SecureNatHost {
    cfg: VirtualHostConfig,
}

/// An ICMPv4 echo request's identifier, sequence number and data; any other valid ICMP message
/// is `Err(Ignored)`, a truncated or badly checksummed one `Err(Malformed)`. Shared by every
/// virtual host that answers or relays pings.
pub fn parse_echo_request(icmp: &[u8]) -> Result<(u16, u16, &[u8]), HostInput> {
    let Ok(pkt) = Icmpv4Packet::new_checked(icmp) else {
        return Err(HostInput::Malformed);
    };
    match Icmpv4Repr::parse(&pkt, &ChecksumCapabilities::default()) {
        Ok(Icmpv4Repr::EchoRequest {
            ident,
            seq_no,
            data,
        }) => Ok((ident, seq_no, data)),
        Ok(_) => Err(HostInput::Ignored),
        Err(_) => Err(HostInput::Malformed),
    }
}

impl SecureNatHost {
    pub fn new(cfg: VirtualHostConfig) -> Self {
        Self { cfg }
    }

    fn echo_reply(&self, eth: &EthernetFrame<&[u8]>, out: &mut Vec<Vec<u8>>) -> HostInput {
        let caps = ChecksumCapabilities::default();
        let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
            return HostInput::Malformed;
        };
        // Checks the version and the header checksum (and refuses fragments, which a ping to us
        // does not need).
        let Ok(ip_repr) = Ipv4Repr::parse(&ip, &caps) else {
            return HostInput::Malformed;
        };
        if ip_repr.dst_addr != self.cfg.ip || ip_repr.next_header != IpProtocol::Icmp {
            return HostInput::Ignored;
        }
        if !is_host_ipv4(ip_repr.src_addr) {
            return HostInput::Ignored;
        }
        let (ident, seq_no, data) = match parse_echo_request(ip.payload()) {
            Ok(echo) => echo,
            Err(verdict) => return verdict,
        };
        let icmp_reply = Icmpv4Repr::EchoReply {
            ident,
            seq_no,
            data,
        };
        let ip_reply = Ipv4Repr {
            src_addr: self.cfg.ip,
            dst_addr: ip_repr.src_addr,
            next_header: IpProtocol::Icmp,
            payload_len: icmp_reply.buffer_len(),
            hop_limit: 64,
        };
        let eth_reply = EthernetRepr {
            src_addr: EthernetAddress(self.cfg.mac),
            dst_addr: eth.src_addr(),
            ethertype: EthernetProtocol::Ipv4,
        };
        let mut buf =
            vec![0u8; ETHERNET_HEADER_LEN + ip_reply.buffer_len() + icmp_reply.buffer_len()];
        let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
        eth_reply.emit(&mut frame);
        let mut ip_out = Ipv4Packet::new_unchecked(frame.payload_mut());
        ip_reply.emit(&mut ip_out, &caps);
        let mut icmp_out = Icmpv4Packet::new_unchecked(ip_out.payload_mut());
        icmp_reply.emit(&mut icmp_out, &caps);
        out.push(buf);
        HostInput::Handled
    }
}

impl VirtualHost for SecureNatHost {
    fn mac(&self) -> [u8; 6] {
        self.cfg.mac
    }

    fn ipv4(&self) -> Option<Ipv4Addr> {
        Some(self.cfg.ip)
    }

    fn handle_frame(&mut self, frame: &[u8], _now: Instant, out: &mut Vec<Vec<u8>>) -> HostInput {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return HostInput::Malformed;
        };
        let dst = eth.dst_addr().0;
        match eth.ethertype() {
            EthernetProtocol::Arp => {
                let Some(arp) = parse_arp(eth.payload()) else {
                    return HostInput::Malformed;
                };
                if arp.operation != ArpOperation::Request
                    || arp.target_ip != self.cfg.ip
                    || arp.sender_ip == arp.target_ip
                    || is_group_mac(&arp.sender_mac)
                {
                    return HostInput::Ignored;
                }
                out.push(arp_frame(
                    ArpOperation::Reply,
                    self.cfg.mac,
                    self.cfg.ip,
                    arp.sender_mac,
                    arp.sender_mac,
                    arp.sender_ip,
                ));
                HostInput::Handled
            }
            EthernetProtocol::Ipv4 if dst == self.cfg.mac => self.echo_reply(&eth, out),
            _ => HostInput::Ignored,
        }
    }
}
