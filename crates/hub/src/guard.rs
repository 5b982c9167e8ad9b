//! What the switch does to frames beyond passing or dropping them: it reads DHCP acks (so that
//! DHCPForce knows which addresses a DHCP server gave to which session), holds back broadcast
//! storms (unless a session's NoBroadcastLimiter lifts that), tags and untags the frames of a
//! session with a VLanId, and clears the default router from IPv6 router advertisements for
//! sessions under NoIPv6DefaultRouterInRA.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket,
};

/// An address a DHCP server gave out, as the hub saw the ack go by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DhcpAck {
    /// The client's hardware address, from the BOOTP header.
    pub chaddr: [u8; 6],
    /// The address it was given.
    pub yiaddr: Ipv4Addr,
    /// How long the address is its (option 51), if the ack says.
    pub lease: Option<Duration>,
}

const BOOTP_MAGIC: [u8; 4] = [99, 130, 83, 99];

/// The DHCPACK in a frame (IPv4, UDP 67 to 68, BOOTP reply for Ethernet, option 53 = 5), if it
/// is one and gives a usable address.
pub(crate) fn dhcp_ack(frame: &[u8]) -> Option<DhcpAck> {
    // most frames are not: IPv4 carrying UDP, long enough for BOOTP (every frame comes here)
    if frame.len() < 14 + 20 + 8 + 240 || frame[12..14] != [0x08, 0x00] || frame[23] != 17 {
        return None;
    }
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if ip.next_header() != IpProtocol::Udp {
        return None;
    }
    let udp = UdpPacket::new_checked(ip.payload()).ok()?;
    if (udp.src_port(), udp.dst_port()) != (67, 68) {
        return None;
    }
    let b = udp.payload();
    // op 2 (reply), htype 1 (Ethernet), hlen 6, and the options' magic cookie
    if b.len() < 240 || b[0] != 2 || b[1] != 1 || b[2] != 6 || b[236..240] != BOOTP_MAGIC {
        return None;
    }
    let yiaddr = Ipv4Addr::new(b[16], b[17], b[18], b[19]);
    if yiaddr.is_unspecified() || yiaddr.is_broadcast() {
        return None;
    }
    let mut chaddr = [0u8; 6];
    chaddr.copy_from_slice(&b[28..34]);
    let (mut kind, mut lease) = (None, None);
    let mut opts = &b[240..];
    while let Some((&code, rest)) = opts.split_first() {
        match code {
            0 => {
                opts = rest;
                continue;
            }
            255 => break,
            _ => {}
        }
        let (&len, rest) = rest.split_first()?;
        let value = rest.get(..usize::from(len))?;
        match (code, value) {
            (53, [k]) => kind = Some(*k),
            (51, &[a, b, c, d]) => {
                lease = Some(Duration::from_secs(u64::from(u32::from_be_bytes([
                    a, b, c, d,
                ]))))
            }
            _ => {}
        }
        opts = &rest[usize::from(len)..];
    }
    (kind == Some(5)).then_some(DhcpAck {
        chaddr,
        yiaddr,
        lease,
    })
}

/// How long a snooped address counts as given by DHCP at the least (SoftEther keeps such
/// entries 5 minutes), and at the most (a lease of "forever" still ends).
pub(crate) const DHCP_HOLD_MIN: Duration = Duration::from_secs(300);
pub(crate) const DHCP_HOLD_MAX: Duration = Duration::from_secs(7 * 24 * 3600);

/// The span over which a session's broadcasts are counted (SoftEther's STORM_CHECK_SPAN).
const STORM_SPAN: Duration = Duration::from_millis(500);
/// Broadcasts per second of one flow from which the limiter starts discarding.
const STORM_THRESHOLD: u64 = 32;
/// From this discard value on, broadcasts are dropped at random; from `ALWAYS` on, all are.
const DISCARD_START: u32 = 3;
const DISCARD_ALWAYS: u32 = 128;
const DISCARD_END: u32 = 1024;
/// Flows one session's limiter keeps apart (SoftEther keeps any number; a flood of made-up
/// addresses must not grow the hub's memory).
const STORM_FLOWS: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Flow {
    mac: [u8; 6],
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
}

#[derive(Clone, Copy, Debug)]
struct Storm {
    count: u64,
    since: Instant,
    discard: u32,
    seen: Instant,
}

/// SoftEther's broadcast storm limiter for one session: broadcasts are counted per flow
/// (source MAC, source and destination address); a flow sending 32 or more a second has its
/// discard value doubled, and while that value is 3 or more, all but one in that many of its
/// broadcasts are dropped (all of them from 128 on). A calm span halves the value again.
#[derive(Clone, Debug, Default)]
pub(crate) struct StormLimiter {
    flows: HashMap<Flow, Storm>,
    rng: u64,
}

impl StormLimiter {
    /// Whether the broadcast `frame` may go on now.
    pub fn admit(&mut self, frame: &[u8], now: Instant) -> bool {
        let flow = flow_of(frame);
        if !self.flows.contains_key(&flow) && self.flows.len() >= STORM_FLOWS {
            // forget the flow heard from longest ago
            if let Some(old) = self
                .flows
                .iter()
                .min_by_key(|(_, s)| s.seen)
                .map(|(f, _)| *f)
            {
                self.flows.remove(&old);
            }
        }
        let s = self.flows.entry(flow).or_insert(Storm {
            count: 0,
            since: now,
            discard: 0,
            seen: now,
        });
        s.count += 1;
        s.seen = now;
        let span = now.saturating_duration_since(s.since);
        if span > STORM_SPAN {
            // (SoftEther divides by the nominal span, so a flood's last broadcasts still
            // count as a storm when the flow speaks again long after; the real span does not)
            let per_sec = s.count * 1000 / span.as_millis().max(1) as u64;
            s.count = 0;
            s.since = now;
            if per_sec >= STORM_THRESHOLD {
                if s.discard < DISCARD_END {
                    s.discard = s.discard.max(1) * 2;
                }
                return false;
            }
            let spans = (span.as_millis() / STORM_SPAN.as_millis()).max(2) as u32;
            s.discard /= spans;
        }
        if s.discard >= DISCARD_ALWAYS {
            return false;
        }
        if s.discard >= DISCARD_START {
            // xorshift: the limiter only needs to spread its drops
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            if self.rng == 0 {
                self.rng = 0x9e37_79b9_7f4a_7c15;
            }
            return self.rng.is_multiple_of(u64::from(s.discard));
        }
        true
    }
}

/// The flow a broadcast belongs to, as the storm limiter counts it.
fn flow_of(frame: &[u8]) -> Flow {
    let mut flow = Flow {
        mac: [0; 6],
        src: None,
        dst: None,
    };
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return flow;
    };
    flow.mac = eth.src_addr().0;
    match eth.ethertype() {
        EthernetProtocol::Ipv4 => {
            if let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) {
                flow.src = Some(IpAddr::V4(ip.src_addr()));
                flow.dst = Some(IpAddr::V4(ip.dst_addr()));
            }
        }
        EthernetProtocol::Arp => {
            if let Some(arp) = crate::packet::parse_arp(eth.payload()) {
                flow.src = Some(IpAddr::V4(arp.sender_ip));
            }
        }
        EthernetProtocol::Ipv6 => {
            if let Ok(ip) = Ipv6Packet::new_checked(eth.payload()) {
                flow.src = Some(IpAddr::V6(ip.src_addr()));
                flow.dst = Some(IpAddr::V6(ip.dst_addr()));
            }
        }
        _ => {}
    }
    flow
}

/// What an access rule's simulation does with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Impaired {
    Lost,
    /// Goes on at this time.
    Delayed(Instant),
}

/// How many bytes of frames a hub holds back for access rules' delays; beyond, they are lost.
const DELAY_LINE_BYTES: usize = 8 << 20;

/// Frames an access rule's delay holds, each with its tag (the sending session, and whatever
/// else its owner needs), released in the order they are due.
#[derive(Debug)]
pub(crate) struct DelayLine<T> {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    held: HashMap<u64, (T, Vec<u8>)>,
    bytes: usize,
    seq: u64,
    rng: u64,
}

impl<T> Default for DelayLine<T> {
    fn default() -> Self {
        DelayLine {
            heap: BinaryHeap::new(),
            held: HashMap::new(),
            bytes: 0,
            seq: 0,
            rng: 0x2545_f491_4f6c_dd1d,
        }
    }
}

impl<T> DelayLine<T> {
    fn random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// SoftEther's simulation: lost with `loss_pct` percent's chance, else delayed by
    /// `delay_ms`, plus or minus a random part of `jitter_pct` percent of it.
    pub fn impair(&mut self, i: crate::access::Impairment, now: Instant) -> Impaired {
        if i.loss_pct >= 100 || (i.loss_pct > 0 && self.random() % 100 < u64::from(i.loss_pct)) {
            return Impaired::Lost;
        }
        let delay = u64::from(i.delay_ms);
        let spread = delay * u64::from(i.jitter_pct) / 100;
        let delay = if spread == 0 {
            delay
        } else {
            let r = self.random();
            let off = (r >> 1) % spread;
            if r & 1 == 0 {
                delay + off
            } else {
                delay - off
            }
        };
        Impaired::Delayed(now + Duration::from_millis(delay))
    }

    /// Holds `frame` until `due`; false (the frame is lost) when the line is full.
    pub fn hold(&mut self, tag: T, frame: &[u8], due: Instant) -> bool {
        if self.bytes + frame.len() > DELAY_LINE_BYTES {
            return false;
        }
        self.seq += 1;
        self.bytes += frame.len();
        self.heap.push(Reverse((due, self.seq)));
        self.held.insert(self.seq, (tag, frame.to_vec()));
        true
    }

    pub fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((due, _))| *due)
    }

    /// The next frame whose time has come.
    pub fn pop_due(&mut self, now: Instant) -> Option<(T, Vec<u8>)> {
        let Reverse((due, seq)) = *self.heap.peek()?;
        if due > now {
            return None;
        }
        self.heap.pop();
        let (tag, frame) = self.held.remove(&seq)?;
        self.bytes -= frame.len();
        Some((tag, frame))
    }

    /// Forgets the frames whose tag `drop` picks (a session that left).
    pub fn forget(&mut self, drop: impl Fn(&T) -> bool) {
        let gone: Vec<u64> = self
            .held
            .iter()
            .filter(|(_, (t, _))| drop(t))
            .map(|(s, _)| *s)
            .collect();
        for seq in gone {
            if let Some((_, f)) = self.held.remove(&seq) {
                self.bytes -= f.len();
            }
        }
        self.heap
            .retain(|Reverse((_, seq))| self.held.contains_key(seq));
    }
}

/// IEEE 802.1Q's tag protocol identifier.
const TPID: [u8; 2] = [0x81, 0x00];

/// The frame with a VLAN tag for `vlan` after its MAC addresses.
pub(crate) fn vlan_tag(frame: &[u8], vlan: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame.len() + 4);
    out.extend_from_slice(&frame[..12.min(frame.len())]);
    out.extend_from_slice(&TPID);
    out.extend_from_slice(&(vlan & 0x0fff).to_be_bytes());
    out.extend_from_slice(frame.get(12..).unwrap_or_default());
    out
}

/// The frame without its VLAN tag, if it carries one for `vlan`; `None` for an untagged frame
/// or one of another VLAN (SoftEther's VLanRemoveTag).
pub(crate) fn vlan_untag(frame: &[u8], vlan: u16) -> Option<Vec<u8>> {
    if frame.len() < 18 || frame[12..14] != TPID {
        return None;
    }
    if u16::from_be_bytes([frame[14], frame[15]]) & 0x0fff != vlan {
        return None;
    }
    let mut out = Vec::with_capacity(frame.len() - 4);
    out.extend_from_slice(&frame[..12]);
    out.extend_from_slice(&frame[16..]);
    Some(out)
}

/// A router advertisement with a non-zero router lifetime, rewritten to lifetime 0 (the
/// router stays a source of prefixes but is no default route), its checksum made right; `None`
/// for any other frame.
pub(crate) fn ra_without_default_router(frame: &[u8]) -> Option<Vec<u8>> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv6 {
        return None;
    }
    let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
    if ip.next_header() != IpProtocol::Icmpv6 {
        return None;
    }
    let icmp = ip.payload();
    // type 134, code 0; the lifetime is bytes 6..8
    if icmp.len() < 16 || icmp[0] != 134 || icmp[6..8] == [0, 0] {
        return None;
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let start = 14 + 40;
    let len = icmp.len();
    let mut out = frame.to_vec();
    let body = &mut out[start..start + len];
    body[6] = 0;
    body[7] = 0;
    body[2] = 0;
    body[3] = 0;
    let sum = icmpv6_checksum(&src.octets(), &dst.octets(), body);
    body[2..4].copy_from_slice(&sum.to_be_bytes());
    Some(out)
}

/// The ICMPv6 checksum of `body` (its checksum field zero) between two addresses.
fn icmpv6_checksum(src: &[u8; 16], dst: &[u8; 16], body: &[u8]) -> u16 {
    transport_checksum(src, dst, 58, body)
}

/// The checksum of a transport segment `body` (its checksum field zero) from `src` to `dst`
/// (4 or 16 bytes each) with protocol number `proto`, over RFC 768/8200's pseudo-header.
fn transport_checksum(src: &[u8], dst: &[u8], proto: u8, body: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            sum += u64::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
        }
    };
    add(src);
    add(dst);
    add(&(body.len() as u32).to_be_bytes());
    add(&[0, proto]);
    add(body);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The IPv4 header checksum.
fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|p| u32::from(u16::from_be_bytes([p[0], p[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// What a session's web request gets from an access rule with a redirect URL: an HTTP 302 to
/// the URL, sent as if from the web server, on the request's own TCP connection; `None` unless
/// `frame` is a TCP segment carrying data (ACK set, no SYN, RST or URG), over IPv4 or IPv6.
pub(crate) fn redirect_reply(frame: &[u8], url: &str) -> Option<Vec<u8>> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let (src, dst, ip_payload): (Vec<u8>, Vec<u8>, &[u8]) = match eth.ethertype() {
        EthernetProtocol::Ipv4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
            if ip.next_header() != IpProtocol::Tcp {
                return None;
            }
            (
                ip.src_addr().octets().to_vec(),
                ip.dst_addr().octets().to_vec(),
                ip.payload(),
            )
        }
        EthernetProtocol::Ipv6 => {
            let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
            if ip.next_header() != IpProtocol::Tcp {
                return None;
            }
            (
                ip.src_addr().octets().to_vec(),
                ip.dst_addr().octets().to_vec(),
                ip.payload(),
            )
        }
        _ => return None,
    };
    let tcp = TcpPacket::new_checked(ip_payload).ok()?;
    if !tcp.ack() || tcp.syn() || tcp.rst() || tcp.urg() || tcp.payload().is_empty() {
        return None;
    }
    // no line breaks from the URL into the header
    let url: String = url.chars().filter(|c| !c.is_control()).collect();
    let html = format!(
        "<html><head><title>Object moved</title></head><body>\r\n<h2>Object moved to <a href=\"{url}\">here</a>.</h2>\r\n</body></html>\r\n"
    );
    let http = format!(
        "HTTP/1.1 302 Found\r\nLocation: {url}\r\nCache-Control: private\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{html}",
        html.len()
    );
    // the segment: ports swapped, our sequence where theirs was acknowledged, their data
    // acknowledged
    let mut seg = vec![0u8; 20];
    seg[0..2].copy_from_slice(&tcp.dst_port().to_be_bytes());
    seg[2..4].copy_from_slice(&tcp.src_port().to_be_bytes());
    seg[4..8].copy_from_slice(&tcp.ack_number().0.to_be_bytes());
    let acked = tcp.seq_number().0.wrapping_add(tcp.payload().len() as i32);
    seg[8..12].copy_from_slice(&acked.to_be_bytes());
    seg[12] = 5 << 4;
    seg[13] = 0x18; // PSH, ACK
    seg[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
    seg.extend_from_slice(http.as_bytes());
    let sum = transport_checksum(&dst, &src, 6, &seg);
    seg[16..18].copy_from_slice(&sum.to_be_bytes());
    let mut out = Vec::with_capacity(14 + 40 + seg.len());
    out.extend_from_slice(&eth.src_addr().0);
    out.extend_from_slice(&eth.dst_addr().0);
    out.extend_from_slice(&frame[12..14]);
    if src.len() == 4 {
        let mut h = [0u8; 20];
        h[0] = 0x45;
        h[2..4].copy_from_slice(&((20 + seg.len()) as u16).to_be_bytes());
        h[6] = 0x40; // don't fragment
        h[8] = 64;
        h[9] = 6;
        h[12..16].copy_from_slice(&dst);
        h[16..20].copy_from_slice(&src);
        let sum = ipv4_checksum(&h);
        h[10..12].copy_from_slice(&sum.to_be_bytes());
        out.extend_from_slice(&h);
    } else {
        out.extend_from_slice(&[0x60, 0, 0, 0]);
        out.extend_from_slice(&(seg.len() as u16).to_be_bytes());
        out.extend_from_slice(&[6, 64]);
        out.extend_from_slice(&dst);
        out.extend_from_slice(&src);
    }
    out.extend_from_slice(&seg);
    Some(out)
}

/// SoftEther's `<INFO>` in a redirect URL: `user|session|client address|YYYYMMDDhhmmss` (UTC),
/// and when the URL ends with `|secret`, that secret is cut off and the SHA-1 of the string
/// and the secret, in upper-case hex, follows another `|`; the web server behind the URL can
/// check it came from the hub.
pub(crate) fn redirect_url_with_info(
    url: &str,
    user: &str,
    session: &str,
    client: &str,
    unix_secs: u64,
) -> String {
    const TAG: &str = "<INFO>";
    let url = url.trim();
    if !url.contains(TAG) {
        return url.to_string();
    }
    let (url, secret) = match url.rfind('|') {
        Some(at) => (&url[..at], &url[at + 1..]),
        None => (url, ""),
    };
    let (y, mo, d) = civil_date(unix_secs / 86_400);
    let t = unix_secs % 86_400;
    let mut info = format!(
        "{user}|{session}|{client}|{y:04}{mo:02}{d:02}{:02}{:02}{:02}",
        t / 3600,
        t / 60 % 60,
        t % 60
    );
    if !secret.is_empty() {
        info.push('|');
        let mut signed = info.clone().into_bytes();
        signed.extend_from_slice(secret.as_bytes());
        let hash = etherhub_config::hash::sha1(&signed);
        info.extend(hash.iter().map(|b| format!("{b:02X}")));
    }
    url.replace(TAG, &info)
}

/// The year, month and day of a day count since 1970-01-01 (the proleptic Gregorian calendar).
fn civil_date(days: u64) -> (u64, u64, u64) {
    // shifted so that years start in March: leap days come last
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack_frame(kind: u8, lease: Option<u32>) -> Vec<u8> {
        let mut bootp = vec![0u8; 240];
        bootp[0] = 2;
        bootp[1] = 1;
        bootp[2] = 6;
        bootp[16..20].copy_from_slice(&[192, 168, 30, 10]);
        bootp[28..34].copy_from_slice(&[2, 0, 0, 0, 0, 7]);
        bootp[236..240].copy_from_slice(&BOOTP_MAGIC);
        bootp.extend_from_slice(&[0, 53, 1, kind]);
        if let Some(l) = lease {
            bootp.extend_from_slice(&[51, 4]);
            bootp.extend_from_slice(&l.to_be_bytes());
        }
        bootp.push(255);
        let udp_len = 8 + bootp.len();
        let mut f = vec![0u8; 14 + 20 + 8];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[14] = 0x45;
        f[16..18].copy_from_slice(&((20 + udp_len) as u16).to_be_bytes());
        f[22] = 64;
        f[23] = 17;
        f[34..36].copy_from_slice(&67u16.to_be_bytes());
        f[36..38].copy_from_slice(&68u16.to_be_bytes());
        f[38..40].copy_from_slice(&(udp_len as u16).to_be_bytes());
        f.extend_from_slice(&bootp);
        f
    }

    #[test]
    fn a_dhcp_ack_is_read_and_nothing_else_is() {
        let ack = dhcp_ack(&ack_frame(5, Some(7200))).expect("an ack");
        assert_eq!(ack.yiaddr, Ipv4Addr::new(192, 168, 30, 10));
        assert_eq!(ack.chaddr, [2, 0, 0, 0, 0, 7]);
        assert_eq!(ack.lease, Some(Duration::from_secs(7200)));
        assert_eq!(dhcp_ack(&ack_frame(5, None)).unwrap().lease, None);
        // an offer is not an ack
        assert_eq!(dhcp_ack(&ack_frame(2, Some(7200))), None);
        // truncated options: no ack rather than a panic
        let f = ack_frame(5, Some(7200));
        for cut in 0..f.len() {
            let _ = dhcp_ack(&f[..cut]);
        }
    }

    #[test]
    fn the_storm_limiter_lets_a_few_broadcasts_through_and_stops_a_flood() {
        let mut frame = vec![0u8; 60];
        frame[..6].copy_from_slice(&[0xff; 6]);
        frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        frame[12..14].copy_from_slice(&[0x88, 0xb5]);
        let t0 = Instant::now();
        // 10 a second for 10 s: never held back
        let mut calm = StormLimiter::default();
        assert!((0..100).all(|i| calm.admit(&frame, t0 + Duration::from_millis(i * 100))));
        // 1000 a second for 5 s: the first second passes (the discard value climbs 2, 4, 8, ...
        // a span at a time), then less and less, then nothing
        let mut flood = StormLimiter::default();
        let verdicts: Vec<bool> = (0..5000)
            .map(|i| flood.admit(&frame, t0 + Duration::from_millis(i)))
            .collect();
        assert!(verdicts[..500].iter().all(|v| *v));
        // (the broadcast that ends a stormy span is dropped)
        assert!(verdicts[..900].iter().filter(|v| !**v).count() <= 1);
        let middle = verdicts[1100..3000].iter().filter(|v| **v).count();
        assert!(middle > 50 && middle < 500, "{middle} of 1900 passed");
        let late = verdicts[3000..].iter().filter(|v| **v).count();
        assert!(late < 30, "{late} of the last 2000 passed");
        // once the flow calms down to 10 a second, its broadcasts pass again
        let later = t0 + Duration::from_secs(30);
        let calm_again: Vec<bool> = (0..50)
            .map(|i| flood.admit(&frame, later + Duration::from_millis(i * 100)))
            .collect();
        assert!(calm_again[30..].iter().all(|v| *v), "{calm_again:?}");
        // a flood of made-up sources does not grow the limiter without bound
        let mut many = StormLimiter::default();
        for i in 0..10_000u32 {
            frame[8..12].copy_from_slice(&i.to_be_bytes());
            many.admit(&frame, t0);
        }
        assert!(many.flows.len() <= STORM_FLOWS);
    }

    #[test]
    fn the_delay_line_releases_frames_when_due_and_simulates_loss_and_jitter() {
        use crate::access::Impairment;
        let t0 = Instant::now();
        let mut line: DelayLine<u32> = DelayLine::default();
        let at = |ms| t0 + Duration::from_millis(ms);
        assert!(line.hold(1, b"late", at(200)));
        assert!(line.hold(2, b"early", at(100)));
        assert_eq!(line.next_due(), Some(at(100)));
        assert_eq!(line.pop_due(at(99)), None);
        assert_eq!(line.pop_due(at(150)), Some((2, b"early".to_vec())));
        assert_eq!(line.pop_due(at(150)), None);
        line.forget(|t| *t == 1);
        assert_eq!(line.next_due(), None);
        assert_eq!(line.bytes, 0);
        // loss 30 %: about 300 of 1000 lost; 100 %: all
        let lossy = Impairment {
            loss_pct: 30,
            ..Impairment::default()
        };
        let lost = (0..1000)
            .filter(|_| line.impair(lossy, t0) == Impaired::Lost)
            .count();
        assert!((200..400).contains(&lost), "{lost}");
        let all = Impairment {
            loss_pct: 100,
            ..Impairment::default()
        };
        assert_eq!(line.impair(all, t0), Impaired::Lost);
        // 100 ms with 50 % jitter: between 50 and 150 ms, and not always the same
        let jittery = Impairment {
            delay_ms: 100,
            jitter_pct: 50,
            loss_pct: 0,
        };
        let delays: Vec<Duration> = (0..100)
            .map(|_| match line.impair(jittery, t0) {
                Impaired::Delayed(t) => t - t0,
                Impaired::Lost => panic!("no loss asked"),
            })
            .collect();
        assert!(delays
            .iter()
            .all(|d| *d > Duration::from_millis(50) && *d < Duration::from_millis(150)));
        assert!(delays.iter().any(|d| *d != delays[0]));
        // a full line refuses
        let big = vec![0u8; 1 << 20];
        let held = (0..20).filter(|_| line.hold(0, &big, t0)).count();
        assert_eq!(held, 8);
    }

    #[test]
    fn a_web_request_gets_a_redirect_on_its_own_connection() {
        // a client's HTTP request: 10.0.0.2:40000 -> 10.0.0.1:80, seq 1000, ack 5000
        let req = b"GET / HTTP/1.1\r\n\r\n";
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
        tcp[4..8].copy_from_slice(&1000u32.to_be_bytes());
        tcp[8..12].copy_from_slice(&5000u32.to_be_bytes());
        tcp[12] = 5 << 4;
        tcp[13] = 0x18;
        tcp.extend_from_slice(req);
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1,
        ];
        ip[2..4].copy_from_slice(&((20 + tcp.len()) as u16).to_be_bytes());
        ip.extend_from_slice(&tcp);
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        f.extend_from_slice(&ip);
        let reply = redirect_reply(&f, "http://portal.example/\r\nX: y").expect("a reply");
        let eth = EthernetFrame::new_checked(&reply[..]).unwrap();
        assert_eq!(eth.dst_addr().0, [2, 0, 0, 0, 0, 2]);
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.src_addr(), std::net::Ipv4Addr::new(10, 0, 0, 1));
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(tcp.verify_checksum(&ip.src_addr().into(), &ip.dst_addr().into()));
        assert_eq!((tcp.src_port(), tcp.dst_port()), (80, 40000));
        assert_eq!(tcp.seq_number().0, 5000);
        assert_eq!(tcp.ack_number().0, 1000 + req.len() as i32);
        let text = String::from_utf8_lossy(tcp.payload());
        assert!(
            text.starts_with("HTTP/1.1 302 Found\r\nLocation: http://portal.example/X: y\r\n"),
            "{text}"
        );
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        // a bare ACK, or a SYN, is left alone
        let mut bare = f.clone();
        bare.truncate(14 + 40);
        bare[16..18].copy_from_slice(&40u16.to_be_bytes());
        assert_eq!(redirect_reply(&bare, "http://x/"), None);
    }

    #[test]
    fn info_in_a_redirect_url_names_the_session_and_can_be_signed() {
        // 2026-11-29 23:30:05 UTC
        let t = 1_795_995_005;
        let plain = redirect_url_with_info(
            "http://p/?i=<INFO>",
            "alice",
            "SID-ALICE-3",
            "198.18.0.2",
            t,
        );
        assert_eq!(
            plain,
            "http://p/?i=alice|SID-ALICE-3|198.18.0.2|20261129233005"
        );
        let signed = redirect_url_with_info(
            "http://p/?i=<INFO>|s3cret",
            "alice",
            "SID-ALICE-3",
            "198.18.0.2",
            t,
        );
        let info = "alice|SID-ALICE-3|198.18.0.2|20261129233005|";
        let hash = etherhub_config::hash::sha1(format!("{info}s3cret").as_bytes());
        let hex: String = hash.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(signed, format!("http://p/?i={info}{hex}"));
        assert_eq!(
            redirect_url_with_info(" http://p/ ", "a", "b", "c", t),
            "http://p/"
        );
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
    }

    #[test]
    fn vlan_tags_go_on_and_come_off_for_their_own_vlan_only() {
        let frame: Vec<u8> = (0..64).collect();
        let tagged = vlan_tag(&frame, 42);
        assert_eq!(tagged.len(), 68);
        assert_eq!(&tagged[12..16], &[0x81, 0x00, 0, 42]);
        assert_eq!(vlan_untag(&tagged, 42), Some(frame.clone()));
        assert_eq!(vlan_untag(&tagged, 43), None);
        assert_eq!(vlan_untag(&frame, 42), None);
    }

    #[test]
    fn a_router_advertisement_loses_its_default_router_and_keeps_a_valid_checksum() {
        let src = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let dst = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let mut icmp = vec![134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
        let sum = icmpv6_checksum(&src, &dst, &icmp);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        let mut f = vec![0u8; 14];
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        f.extend_from_slice(&[0x60, 0, 0, 0, 0, icmp.len() as u8, 58, 255]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&icmp);
        let out = ra_without_default_router(&f).expect("rewritten");
        let body = &out[54..];
        assert_eq!(&body[6..8], &[0, 0]);
        // a valid checksum sums to zero over the pseudo-header and the message
        let mut check = body.to_vec();
        let stored = u16::from_be_bytes([check[2], check[3]]);
        check[2..4].copy_from_slice(&[0, 0]);
        assert_eq!(icmpv6_checksum(&src, &dst, &check), stored);
        // a lifetime of 0 already, or not an RA: left alone
        assert_eq!(ra_without_default_router(&out), None);
        let mut ns = f.clone();
        ns[54] = 135;
        assert_eq!(ra_without_default_router(&ns), None);
    }
}
