//! What the switch enforces of a session's security policy: the privacy filter and the
//! bandwidth limits (SoftEther's MaxUpload and MaxDownload), the per-frame filters and the
//! limits on addresses.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket,
};

/// The parts of a policy a hub port enforces. The default limits nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortPolicy {
    /// Sessions that both have it cannot reach each other (anything else still can).
    pub privacy_filter: bool,
    /// Session to hub, bits per second (0: no limit).
    pub max_upload_bps: u32,
    /// Hub to session, bits per second (0: no limit).
    pub max_download_bps: u32,
    /// Kinds of frames the session may not send or receive.
    pub filters: Filters,
    /// MAC addresses the session may use (0: no limit; SoftEther's floor of 3 applies).
    pub max_mac: u32,
    /// IPv4 addresses the session may use (0: no limit; SoftEther's floor of 4 applies).
    pub max_ip: u32,
    /// CheckMac: a MAC address another session used within the last 13 s is not taken over.
    pub check_mac: bool,
    /// CheckIP: the same for IPv4 addresses.
    pub check_ip: bool,
    /// DHCPForce: the session sends from no IPv4 address but those a DHCP server's ack (seen
    /// by the hub) gave one of its MAC addresses, or the server assigned it
    /// ([`crate::Hub::assign_address`]).
    pub dhcp_force: bool,
    /// IPv6 addresses the session may use (0: no limit; SoftEther's floor of 5 applies).
    pub max_ipv6: u32,
    /// CheckIPv6: CheckIP for IPv6 addresses.
    pub check_ipv6: bool,
    /// NoBroadcastLimiter: the session's broadcasts are not held back when they storm.
    pub no_broadcast_limiter: bool,
    /// NoIPv6DefaultRouterInRA: router advertisements reach the session with router
    /// lifetime 0.
    pub ra_no_default_router: bool,
    /// NoIPv6DefaultRouterInRAWhenIPv6: the same, when the session's client reached the
    /// server over IPv6.
    pub ra_no_default_router_over_ipv6: bool,
    /// VLanId: frames the session sends get this 802.1Q tag; it receives only frames with it,
    /// untagged (0: no VLAN).
    pub vlan_id: u16,
    /// Monitoring mode: the session receives a copy of every frame on the hub and sends none
    /// into it (MonitorPort, when the client asked for it).
    pub monitor: bool,
}

impl PortPolicy {
    /// Whether the switch passes the session's unicast IPv4 frames, both ways, as they are:
    /// no privacy filter, bandwidth limit, frame filter, VLAN, monitoring, nor limit or check
    /// on its MAC and IPv4 addresses. (The IPv6 and router-advertisement rules and the
    /// broadcast limiter do not touch such frames.)
    pub fn is_plain(&self) -> bool {
        !self.privacy_filter
            && self.max_upload_bps == 0
            && self.max_download_bps == 0
            && self.filters.0 == 0
            && self.max_mac == 0
            && self.max_ip == 0
            && !self.check_mac
            && !self.check_ip
            && !self.dhcp_force
            && self.vlan_id == 0
            && !self.monitor
    }
}

/// How long an address stays its session's against another's under CheckMac and CheckIP
/// (SoftEther's MAC_TABLE_EXCLUSIVE_TIME).
pub const EXCLUSIVE_TIME: Duration = Duration::from_secs(13);

/// SoftEther's per-frame policy filters, as flags. Each drops silently, as SoftEther's do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Filters(pub u32);

impl Filters {
    /// FilterIPv4: IPv4 and ARP, both ways.
    pub const IPV4: u32 = 1;
    /// FilterIPv6: IPv6, both ways.
    pub const IPV6: u32 = 1 << 1;
    /// FilterNonIP: anything but IPv4, ARP and IPv6, both ways.
    pub const NON_IP: u32 = 1 << 2;
    /// DHCPFilter: DHCP (UDP 67/68), both ways.
    pub const DHCP: u32 = 1 << 3;
    /// DHCPNoServer: DHCP replies the session sends.
    pub const DHCP_NO_SERVER: u32 = 1 << 4;
    /// ArpDhcpOnly: broadcasts other than ARP, DHCP, ICMPv6 and DHCPv6, both ways.
    pub const ARP_DHCP_ONLY: u32 = 1 << 5;
    /// NoServer: TCP SYN+ACK the session sends over IPv4 (it may not accept connections).
    pub const NO_SERVER: u32 = 1 << 6;
    /// NoServerV6: the same over IPv6.
    pub const NO_SERVER_V6: u32 = 1 << 7;
    /// RSandRAFilter: ICMPv6 router solicitations and advertisements, both ways.
    pub const RS_RA: u32 = 1 << 8;
    /// RAFilter: router advertisements the session sends.
    pub const RA: u32 = 1 << 9;
    /// DHCPv6Filter: UDP to port 546 or 547, both ways.
    pub const DHCPV6: u32 = 1 << 10;
    /// DHCPv6NoServer: DHCPv6 server messages the session sends.
    pub const DHCPV6_NO_SERVER: u32 = 1 << 11;

    pub fn has(self, flag: u32) -> bool {
        self.0 & flag != 0
    }

    /// Whether the session may not send this frame.
    pub(crate) fn drops_from(self, k: &Kinds) -> bool {
        self.drops_both_ways(k)
            || (self.has(Self::DHCP_NO_SERVER) && k.dhcp4_op == Some(2))
            || (self.has(Self::NO_SERVER) && k.syn_ack == Some(false))
            || (self.has(Self::NO_SERVER_V6) && k.syn_ack == Some(true))
            || (self.has(Self::RA) && k.icmp6 == Some(134))
            || (self.has(Self::DHCPV6_NO_SERVER)
                && k.udp6.is_some_and(|(sp, dp)| dp == 546 || sp == 547))
    }

    /// Whether the session may not receive this frame.
    pub(crate) fn drops_to(self, k: &Kinds) -> bool {
        self.drops_both_ways(k)
    }

    fn drops_both_ways(self, k: &Kinds) -> bool {
        let ipv4 = matches!(k.ethertype, 0x0800 | 0x0806);
        let ipv6 = k.ethertype == 0x86dd;
        let dhcp6 = k.udp6.is_some_and(|(_, dp)| dp == 546 || dp == 547);
        let announced = k.ethertype == 0x0806 || k.dhcp4_op.is_some() || k.icmp6.is_some() || dhcp6;
        (self.has(Self::IPV4) && ipv4)
            || (self.has(Self::IPV6) && ipv6)
            || (self.has(Self::NON_IP) && !ipv4 && !ipv6)
            || (self.has(Self::DHCP) && k.dhcp4_op.is_some())
            || (self.has(Self::ARP_DHCP_ONLY) && k.broadcast && !announced)
            || (self.has(Self::RS_RA) && matches!(k.icmp6, Some(133 | 134)))
            || (self.has(Self::DHCPV6) && dhcp6)
    }
}

/// What the policy filters read of a frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Kinds {
    pub ethertype: u16,
    /// To a broadcast or multicast address.
    pub broadcast: bool,
    /// DHCPv4 (UDP 67 to 68 or 68 to 67): the BOOTP op (1 request, 2 reply).
    pub dhcp4_op: Option<u8>,
    /// ICMPv6: its type.
    pub icmp6: Option<u8>,
    /// UDP over IPv6: source and destination ports.
    pub udp6: Option<(u16, u16)>,
    /// A TCP SYN+ACK: whether over IPv6.
    pub syn_ack: Option<bool>,
}

impl Kinds {
    pub fn of(frame: &[u8]) -> Kinds {
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            return Kinds::default();
        };
        let mut k = Kinds {
            ethertype: u16::from(eth.ethertype()),
            broadcast: eth.dst_addr().0[0] & 1 != 0,
            ..Kinds::default()
        };
        let syn_ack =
            |payload: &[u8]| TcpPacket::new_checked(payload).is_ok_and(|t| t.syn() && t.ack());
        match eth.ethertype() {
            EthernetProtocol::Ipv4 => {
                let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
                    return k;
                };
                match ip.next_header() {
                    IpProtocol::Udp => {
                        if let Ok(u) = UdpPacket::new_checked(ip.payload()) {
                            if matches!((u.src_port(), u.dst_port()), (67, 68) | (68, 67)) {
                                k.dhcp4_op = u.payload().first().copied();
                            }
                        }
                    }
                    IpProtocol::Tcp if syn_ack(ip.payload()) => k.syn_ack = Some(false),
                    _ => {}
                }
            }
            EthernetProtocol::Ipv6 => {
                let Ok(ip) = Ipv6Packet::new_checked(eth.payload()) else {
                    return k;
                };
                match ip.next_header() {
                    IpProtocol::Icmpv6 => k.icmp6 = ip.payload().first().copied(),
                    IpProtocol::Udp => {
                        if let Ok(u) = UdpPacket::new_checked(ip.payload()) {
                            k.udp6 = Some((u.src_port(), u.dst_port()));
                        }
                    }
                    IpProtocol::Tcp if syn_ack(ip.payload()) => k.syn_ack = Some(true),
                    _ => {}
                }
            }
            _ => {}
        }
        k
    }
}

/// How much a bucket holds: this long at its rate, so that a TCP sender's window fits and its
/// rate settles at the limit rather than far below it.
const BURST: Duration = Duration::from_millis(200);
/// A bucket never holds less than a few full frames.
const MIN_BURST_BITS: u64 = 4 * 1514 * 8;

/// A token bucket of bits: frames pass while it has the bits for them.
#[derive(Clone, Debug)]
pub(crate) struct Bucket {
    rate_bps: u32,
    bits: u64,
    last: Option<Instant>,
}

impl Bucket {
    pub fn new(rate_bps: u32) -> Self {
        Bucket {
            rate_bps,
            bits: Self::depth(rate_bps),
            last: None,
        }
    }

    fn depth(rate_bps: u32) -> u64 {
        (u64::from(rate_bps) * BURST.as_millis() as u64 / 1000).max(MIN_BURST_BITS)
    }

    /// Whether a frame of `len` bytes may pass now (and takes its bits if so).
    pub fn take(&mut self, len: usize, now: Instant) -> bool {
        if self.rate_bps == 0 {
            return true;
        }
        if let Some(last) = self.last {
            let gained = now.saturating_duration_since(last).as_micros() as u64
                * u64::from(self.rate_bps)
                / 1_000_000;
            if gained > 0 {
                self.bits = (self.bits + gained).min(Self::depth(self.rate_bps));
                self.last = Some(now);
            }
        } else {
            self.last = Some(now);
        }
        let need = len as u64 * 8;
        if self.bits >= need {
            self.bits -= need;
            true
        } else {
            false
        }
    }
}

impl Bucket {
    /// When a frame of `len` bytes could pass (`now` if it can already).
    fn ready_at(&self, len: usize, now: Instant) -> Instant {
        let need = len as u64 * 8;
        if self.rate_bps == 0 || self.bits >= need {
            return now;
        }
        // the bits count from `last`; the rest come at the rate
        let wait_us = (need - self.bits) * 1_000_000 / u64::from(self.rate_bps) + 1;
        (self.last.unwrap_or(now) + Duration::from_micros(wait_us)).max(now)
    }
}

/// What a shaper does with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Goes on now.
    Now,
    /// Held in the shaper's queue until the bucket has its bits.
    Queued,
    /// The queue is full: dropped, as a router drops, so that TCP slows down.
    Dropped,
}

/// A bandwidth limit on one direction of a port: a token bucket with a queue behind it, so
/// that a sender over the rate is delayed (TCP's clock slows to the rate) and only a sender
/// that keeps pushing loses frames.
#[derive(Clone, Debug)]
pub(crate) struct Shaper {
    bucket: Bucket,
    /// Frames waiting, each with a flag its owner keeps with it.
    queue: VecDeque<(Vec<u8>, bool)>,
    queued: usize,
    cap: usize,
}

/// How much a shaper's queue holds: this long at its rate, and at least a few dozen frames.
const QUEUE_TIME: Duration = Duration::from_millis(100);
const MIN_QUEUE_BYTES: usize = 32 * 1514;
/// How much it holds of what the hub's own hosts send (SecureNAT's): their TCP sends as much
/// as its window allows, and drops would stall its slow loss recovery, while its socket
/// buffers already bound what it can have in flight; this only bounds the rest (UDP).
pub(crate) const PATIENT_QUEUE_BYTES: usize = 4 << 20;

impl Shaper {
    pub fn new(rate_bps: u32) -> Self {
        Shaper {
            bucket: Bucket::new(rate_bps),
            queue: VecDeque::new(),
            queued: 0,
            cap: ((u64::from(rate_bps) / 8 * QUEUE_TIME.as_millis() as u64 / 1000) as usize)
                .max(MIN_QUEUE_BYTES),
        }
    }

    /// `patient`: the frame comes from a sender that slows down when delayed (the hub's own
    /// hosts), so it waits in a deeper queue rather than being dropped.
    /// `tag` waits with a queued frame and comes back with it.
    pub fn admit(&mut self, frame: &[u8], now: Instant, patient: bool, tag: bool) -> Admit {
        if self.bucket.rate_bps == 0 || always_passes(frame) {
            return Admit::Now;
        }
        if self.queue.is_empty() && self.bucket.take(frame.len(), now) {
            return Admit::Now;
        }
        let cap = if patient {
            PATIENT_QUEUE_BYTES
        } else {
            self.cap
        };
        if self.queued + frame.len() > cap {
            return Admit::Dropped;
        }
        self.queued += frame.len();
        self.queue.push_back((frame.to_vec(), tag));
        Admit::Queued
    }

    /// The next queued frame, if the bucket has its bits now.
    pub fn pop_ready(&mut self, now: Instant) -> Option<(Vec<u8>, bool)> {
        let len = self.queue.front()?.0.len();
        if !self.bucket.take(len, now) {
            return None;
        }
        self.queued -= len;
        self.queue.pop_front()
    }

    /// When the next queued frame can go.
    pub fn next_ready(&self, now: Instant) -> Option<Instant> {
        self.queue
            .front()
            .map(|(f, _)| self.bucket.ready_at(f.len(), now))
    }

    pub fn has_queue(&self) -> bool {
        !self.queue.is_empty()
    }
}

/// Frames SoftEther never holds back for bandwidth: ARP, ICMP, TCP segments that open or
/// close a connection, DHCP. Dropping them would only stall what the limit lets through.
pub(crate) fn always_passes(frame: &[u8]) -> bool {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return false;
    };
    match eth.ethertype() {
        EthernetProtocol::Arp => true,
        EthernetProtocol::Ipv4 => {
            let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
                return false;
            };
            match ip.next_header() {
                IpProtocol::Icmp => true,
                IpProtocol::Tcp => TcpPacket::new_checked(ip.payload())
                    .is_ok_and(|t| t.syn() || t.fin() || t.rst()),
                IpProtocol::Udp => UdpPacket::new_checked(ip.payload())
                    .is_ok_and(|u| matches!((u.src_port(), u.dst_port()), (67 | 68, 67 | 68))),
                _ => false,
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_passes_its_rate_and_no_more() {
        let t0 = Instant::now();
        let mut b = Bucket::new(8_000_000); // 1 MB/s
        let mut passed = 0usize;
        // 3 s of 1000-byte frames offered at 10 MB/s
        for i in 0..30_000u64 {
            if b.take(1000, t0 + Duration::from_micros(i * 100)) {
                passed += 1000;
            }
        }
        // 3 s at 1 MB/s, plus the 200 ms the bucket starts with
        let expected = 3_000_000 + 200_000;
        assert!(
            passed.abs_diff(expected) < 20_000,
            "passed {passed}, expected about {expected}"
        );
        let mut open = Bucket::new(0);
        assert!((0..1000).all(|_| open.take(1500, t0)));
    }

    /// An IPv4 UDP frame of `len` bytes (not one that always passes).
    fn udp_frame(len: usize) -> Vec<u8> {
        let mut f = vec![0u8; len];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&((len - 14) as u16).to_be_bytes());
        f[22] = 64;
        f[23] = 17;
        f[34..36].copy_from_slice(&5000u16.to_be_bytes());
        f[36..38].copy_from_slice(&5001u16.to_be_bytes());
        f[38..40].copy_from_slice(&((len - 34) as u16).to_be_bytes());
        f
    }

    #[test]
    fn a_shaper_delays_frames_to_its_rate_and_drops_only_what_its_queue_cannot_hold() {
        let t0 = Instant::now();
        let frame = udp_frame(1000);
        assert!(!always_passes(&frame));
        let mut s = Shaper::new(800_000); // 100 kB/s: bucket 20 kB, queue 48 kB (32 frames min)
        let verdicts: Vec<Admit> = (0..100)
            .map(|_| s.admit(&frame, t0, false, false))
            .collect();
        let now = verdicts.iter().filter(|v| **v == Admit::Now).count();
        let queued = verdicts.iter().filter(|v| **v == Admit::Queued).count();
        assert_eq!(now, 20, "the bucket's 200 ms pass at once");
        assert_eq!(queued, 48, "the queue holds 32 full frames' worth");
        assert_eq!(100 - now - queued, 32);
        // the queue drains at the rate: 48 frames of 1000 bytes take 480 ms
        let mut released = 0;
        let mut t = t0;
        while let Some(at) = s.next_ready(t) {
            assert!(at >= t);
            t = at;
            while s.pop_ready(t).is_some() {
                released += 1;
            }
        }
        assert_eq!(released, 48);
        let took = t - t0;
        assert!(
            took >= Duration::from_millis(470) && took <= Duration::from_millis(500),
            "{took:?}"
        );
        // an ARP frame is never held
        let mut arp = vec![0u8; 60];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(Shaper::new(8).admit(&arp, t0, false, false), Admit::Now);
        // what the hub's own host sends waits rather than drops
        let mut host = Shaper::new(800_000);
        let verdicts: Vec<Admit> = (0..1000)
            .map(|_| host.admit(&frame, t0, true, false))
            .collect();
        assert!(!verdicts.contains(&Admit::Dropped));
    }
}
