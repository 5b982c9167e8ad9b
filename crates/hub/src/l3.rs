//! The L3 adapter (SoftEther's IPC): puts a session that speaks bare IP packets, such as a
//! WireGuard peer, onto the Ethernet switch.
//!
//! Outgoing: the session's IPv4 packet is wrapped in a frame from the session's virtual MAC to the
//! MAC of the next hop, resolved by ARP on the session's behalf; packets wait in a short queue per
//! next hop until the reply arrives, and are dropped (and counted) if it never does.
//! Incoming: ARP requests for the session's own address are answered, ARP replies fill the cache,
//! and IPv4 frames addressed to the session's MAC (or IPv4 broadcasts) are unwrapped.
//! The session's address is learned from the source of its first IPv4 packet, as SoftEther does for
//! WireGuard.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use etherhub_hash::KeyedMap;
use smoltcp::wire::{ArpOperation, EthernetFrame, EthernetProtocol, Ipv4Packet};

use crate::packet::{
    arp_frame, directed_broadcast, ethernet_frame, ethernet_frame_in, ipv4_multicast_mac,
    is_host_ipv4, parse_arp, same_subnet, Spare, BROADCAST_MAC,
};

/// How long a resolved neighbour stays cached.
pub(crate) const ARP_CACHE_LIFETIME: Duration = Duration::from_secs(60);
/// Interval between ARP requests for a still unresolved next hop.
pub(crate) const ARP_RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// ARP requests sent for one next hop before its queued packets are dropped.
pub(crate) const ARP_MAX_TRIES: u32 = 3;
/// Packets queued per unresolved next hop; the oldest is dropped beyond this.
pub(crate) const PENDING_PER_HOP: usize = 16;
/// Unresolved next hops per session; packets to further ones are dropped.
pub(crate) const MAX_PENDING_HOPS: usize = 64;

/// The network an adapter routes in: off-subnet destinations go to the gateway.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Route {
    pub gateway: Option<Ipv4Addr>,
    pub mask: Option<Ipv4Addr>,
}

impl Route {
    pub(crate) fn is_broadcast(&self, dst: Ipv4Addr, own: Option<Ipv4Addr>) -> bool {
        if dst.is_broadcast() {
            return true;
        }
        match (self.mask, own.or(self.gateway)) {
            (Some(mask), Some(net)) => {
                dst == directed_broadcast(net, mask) && mask != Ipv4Addr::BROADCAST
            }
            _ => false,
        }
    }

    pub(crate) fn next_hop(&self, dst: Ipv4Addr) -> Ipv4Addr {
        match (self.gateway, self.mask) {
            (Some(gw), Some(mask)) if !same_subnet(dst, gw, mask) => gw,
            _ => dst,
        }
    }
}

/// Why an outgoing packet was not sent.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SendError {
    /// Not a well-formed IPv4 packet.
    Malformed,
    /// IPv6 over the L3 adapter needs neighbour discovery, which is not implemented yet.
    Unsupported,
    /// The ARP queue for this next hop, or the table of next hops, is full.
    QueueFull,
}

#[derive(Debug)]
struct Neighbour {
    mac: [u8; 6],
    expires: Instant,
}

#[derive(Debug)]
struct Pending {
    packets: VecDeque<Vec<u8>>,
    last_request: Instant,
    tries: u32,
}

#[derive(Debug)]
pub(crate) struct L3Adapter {
    mac: [u8; 6],
    ip: Option<Ipv4Addr>,
    neighbours: KeyedMap<Ipv4Addr, Neighbour>,
    pending: KeyedMap<Ipv4Addr, Pending>,
}

impl L3Adapter {
    pub fn new(mac: [u8; 6]) -> Self {
        Self {
            mac,
            ip: None,
            neighbours: KeyedMap::default(),
            pending: KeyedMap::default(),
        }
    }

    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    pub fn ip(&self) -> Option<Ipv4Addr> {
        self.ip
    }

    /// Wrap an IP packet from the session; frames for the switch are pushed to `frames`, in
    /// buffers from `spare`. Returns how many earlier queued packets were dropped to make room
    /// (0 or 1) on success.
    pub fn send_ip(
        &mut self,
        packet: &[u8],
        route: Route,
        now: Instant,
        frames: &mut Vec<Vec<u8>>,
        spare: &mut Spare,
    ) -> Result<u64, SendError> {
        match packet.first().map(|b| b >> 4) {
            Some(4) => {}
            Some(6) => return Err(SendError::Unsupported),
            _ => return Err(SendError::Malformed),
        }
        let ip = Ipv4Packet::new_checked(packet).map_err(|_| SendError::Malformed)?;
        if ip.header_len() < 20 {
            return Err(SendError::Malformed);
        }
        // Trailing bytes beyond the IPv4 total length are not part of the packet.
        let packet = &packet[..usize::from(ip.total_len())];
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        if self.ip.is_none() && is_host_ipv4(src) {
            self.ip = Some(src);
        }

        if route.is_broadcast(dst, self.ip) {
            frames.push(ethernet_frame_in(
                spare.take(),
                self.mac,
                BROADCAST_MAC,
                EthernetProtocol::Ipv4,
                packet,
            ));
            return Ok(0);
        }
        if dst.is_multicast() {
            let mac = ipv4_multicast_mac(dst);
            frames.push(ethernet_frame_in(
                spare.take(),
                self.mac,
                mac,
                EthernetProtocol::Ipv4,
                packet,
            ));
            return Ok(0);
        }
        if dst.is_unspecified() {
            return Err(SendError::Malformed);
        }

        let hop = route.next_hop(dst);
        if let Some(n) = self.neighbours.get(&hop).filter(|n| n.expires > now) {
            frames.push(ethernet_frame_in(
                spare.take(),
                self.mac,
                n.mac,
                EthernetProtocol::Ipv4,
                packet,
            ));
            return Ok(0);
        }

        if let Some(p) = self.pending.get_mut(&hop) {
            let mut dropped = 0;
            if p.packets.len() >= PENDING_PER_HOP {
                p.packets.pop_front();
                dropped = 1;
            }
            p.packets.push_back(packet.to_vec());
            return Ok(dropped);
        }
        if self.pending.len() >= MAX_PENDING_HOPS {
            return Err(SendError::QueueFull);
        }
        self.pending.insert(
            hop,
            Pending {
                packets: VecDeque::from([packet.to_vec()]),
                last_request: now,
                tries: 1,
            },
        );
        frames.push(self.arp_request(hop));
        Ok(0)
    }

    /// The session's address, known before its first packet (a WireGuard key registered with
    /// one): stations asking for it get answers at once, and a gratuitous ARP tells the
    /// segment (and the hub's tables) where it is.
    pub fn assign(&mut self, ip: Ipv4Addr, frames: &mut Vec<Vec<u8>>) {
        self.ip = Some(ip);
        frames.push(arp_frame(
            ArpOperation::Request,
            self.mac,
            ip,
            BROADCAST_MAC,
            [0; 6],
            ip,
        ));
    }

    fn arp_request(&self, target: Ipv4Addr) -> Vec<u8> {
        arp_frame(
            ArpOperation::Request,
            self.mac,
            self.ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
            BROADCAST_MAC,
            [0; 6],
            target,
        )
    }

    /// A frame the switch delivered to this port. IP packets for the session go to `packets`
    /// (in buffers from `spare`), frames back into the switch (ARP replies, released queue) to
    /// `frames`. Returns `Err(())` for a malformed frame.
    pub fn receive_frame(
        &mut self,
        frame: &[u8],
        route: Route,
        now: Instant,
        packets: &mut Vec<Vec<u8>>,
        frames: &mut Vec<Vec<u8>>,
        spare: &mut Spare,
    ) -> Result<(), ()> {
        let eth = EthernetFrame::new_checked(frame).map_err(|_| ())?;
        let dst_mac = eth.dst_addr().0;
        match eth.ethertype() {
            EthernetProtocol::Arp => {
                let arp = parse_arp(eth.payload()).ok_or(())?;
                let for_us = Some(arp.target_ip) == self.ip;
                if arp.operation == ArpOperation::Request
                    && for_us
                    && arp.sender_ip != arp.target_ip
                    && !crate::packet::is_group_mac(&arp.sender_mac)
                {
                    frames.push(arp_frame(
                        ArpOperation::Reply,
                        self.mac,
                        arp.target_ip,
                        arp.sender_mac,
                        arp.sender_mac,
                        arp.sender_ip,
                    ));
                }
                // Learn the sender when it talks to us, or when we already care about it
                // (refreshing a cached entry or resolving a queued next hop, e.g. from a
                // gratuitous ARP after the other side reconnected with a new MAC).
                let addressed =
                    for_us || (arp.operation == ArpOperation::Reply && dst_mac == self.mac);
                let known = self.neighbours.contains_key(&arp.sender_ip)
                    || self.pending.contains_key(&arp.sender_ip);
                if is_host_ipv4(arp.sender_ip)
                    && !crate::packet::is_group_mac(&arp.sender_mac)
                    && (addressed || known)
                {
                    self.learn(arp.sender_ip, arp.sender_mac, now, frames);
                }
                Ok(())
            }
            EthernetProtocol::Ipv4 => {
                let ip = Ipv4Packet::new_checked(eth.payload()).map_err(|_| ())?;
                if ip.version() != 4 || ip.header_len() < 20 {
                    return Err(());
                }
                let accept = if dst_mac == self.mac {
                    true
                } else if dst_mac == BROADCAST_MAC {
                    route.is_broadcast(ip.dst_addr(), self.ip)
                } else {
                    // Other stations' unicast (flooded) and multicast are not for this session.
                    false
                };
                if accept {
                    // Ethernet padding after the IPv4 total length is cut off.
                    let mut packet = spare.take();
                    packet.extend_from_slice(&eth.payload()[..usize::from(ip.total_len())]);
                    packets.push(packet);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn learn(&mut self, ip: Ipv4Addr, mac: [u8; 6], now: Instant, frames: &mut Vec<Vec<u8>>) {
        self.neighbours.insert(
            ip,
            Neighbour {
                mac,
                expires: now + ARP_CACHE_LIFETIME,
            },
        );
        if let Some(p) = self.pending.remove(&ip) {
            for packet in p.packets {
                frames.push(ethernet_frame(
                    self.mac,
                    mac,
                    EthernetProtocol::Ipv4,
                    &packet,
                ));
            }
        }
    }

    /// ARP retries and expiry; returns how many queued packets were given up.
    pub fn tick(&mut self, now: Instant, frames: &mut Vec<Vec<u8>>) -> u64 {
        self.neighbours.retain(|_, n| n.expires > now);
        let mut dropped = 0u64;
        let mut retry = Vec::new();
        self.pending.retain(|hop, p| {
            if now.saturating_duration_since(p.last_request) < ARP_RETRY_INTERVAL {
                return true;
            }
            if p.tries >= ARP_MAX_TRIES {
                dropped += p.packets.len() as u64;
                return false;
            }
            p.tries += 1;
            p.last_request = now;
            retry.push(*hop);
            true
        });
        retry.sort();
        for hop in retry {
            frames.push(self.arp_request(hop));
        }
        dropped
    }

    /// Packets still waiting for ARP (dropped and counted when the session goes away).
    pub fn pending_packets(&self) -> u64 {
        self.pending.values().map(|p| p.packets.len() as u64).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::phy::ChecksumCapabilities;
    use smoltcp::wire::{IpProtocol, Ipv4Repr};

    fn udp_like(src: Ipv4Addr, dst: Ipv4Addr, payload_len: usize) -> Vec<u8> {
        let repr = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Udp,
            payload_len,
            hop_limit: 64,
        };
        let mut buf = vec![0u8; repr.buffer_len() + payload_len];
        repr.emit(
            &mut Ipv4Packet::new_unchecked(&mut buf[..]),
            &ChecksumCapabilities::default(),
        );
        buf
    }

    const ME: Ipv4Addr = Ipv4Addr::new(192, 168, 30, 233);
    const GW: Ipv4Addr = Ipv4Addr::new(192, 168, 30, 1);

    #[test]
    fn off_subnet_goes_to_gateway_and_queue_releases_on_reply() {
        let t0 = Instant::now();
        let mut a = L3Adapter::new([0x5e, 0, 0, 0, 0, 1]);
        let route = Route {
            gateway: Some(GW),
            mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
        };
        let mut frames = Vec::new();
        let pkt = udp_like(ME, Ipv4Addr::new(8, 8, 8, 8), 4);
        assert_eq!(
            a.send_ip(&pkt, route, t0, &mut frames, &mut Spare::default()),
            Ok(0)
        );
        assert_eq!(a.ip(), Some(ME));
        assert_eq!(frames.len(), 1);
        let eth = EthernetFrame::new_checked(&frames[0][..]).unwrap();
        let arp = parse_arp(eth.payload()).unwrap();
        assert_eq!((arp.sender_ip, arp.target_ip), (ME, GW));
        assert_eq!(a.pending_packets(), 1);

        // The gateway answers; the queued packet goes out to its MAC.
        let gw_mac = [0x5e, 0x5a, 0x1c, 0x33, 0x53, 0x05];
        let reply = arp_frame(ArpOperation::Reply, gw_mac, GW, a.mac(), a.mac(), ME);
        let (mut packets, mut frames) = (Vec::new(), Vec::new());
        a.receive_frame(
            &reply,
            route,
            t0,
            &mut packets,
            &mut frames,
            &mut Spare::default(),
        )
        .unwrap();
        assert!(packets.is_empty());
        assert_eq!(frames.len(), 1);
        let eth = EthernetFrame::new_checked(&frames[0][..]).unwrap();
        assert_eq!(eth.dst_addr().0, gw_mac);
        assert_eq!(eth.payload(), &pkt[..]);
        assert_eq!(a.pending_packets(), 0);
    }

    #[test]
    fn unanswered_arp_retries_then_drops() {
        let t0 = Instant::now();
        let mut a = L3Adapter::new([0x5e, 0, 0, 0, 0, 1]);
        let mut frames = Vec::new();
        let pkt = udp_like(ME, Ipv4Addr::new(192, 168, 30, 99), 0);
        for _ in 0..2 {
            let mut spare = Spare::default();
            a.send_ip(&pkt, Route::default(), t0, &mut frames, &mut spare)
                .unwrap();
        }
        assert_eq!(frames.len(), 1, "one ARP request per next hop");
        frames.clear();
        let mut dropped = 0;
        for s in 1..=3 {
            dropped += a.tick(t0 + Duration::from_secs(s), &mut frames);
        }
        assert_eq!(frames.len(), 2, "two retries after the first request");
        assert_eq!(dropped, 2);
        assert_eq!(a.pending_packets(), 0);
    }

    #[test]
    fn rejects_garbage_and_ipv6() {
        let mut a = L3Adapter::new([0x5e, 0, 0, 0, 0, 1]);
        let mut frames = Vec::new();
        let now = Instant::now();
        assert_eq!(
            a.send_ip(
                &[0x45, 0, 0],
                Route::default(),
                now,
                &mut frames,
                &mut Spare::default()
            ),
            Err(SendError::Malformed)
        );
        assert_eq!(
            a.send_ip(
                &[0x60; 40],
                Route::default(),
                now,
                &mut frames,
                &mut Spare::default()
            ),
            Err(SendError::Unsupported)
        );
        assert_eq!(
            a.send_ip(
                &[],
                Route::default(),
                now,
                &mut frames,
                &mut Spare::default()
            ),
            Err(SendError::Malformed)
        );
        assert!(frames.is_empty());
    }
}
