//! UDP encapsulation of IKE and ESP on port 4500 (RFC 3948), and the UDP header that ESP in
//! transport mode carries for L2TP.
//!
//! On port 4500 one socket carries three things: NAT keepalives (a single 0xFF byte), IKE
//! messages behind a 4 byte non-ESP marker of zeros, and ESP packets starting at their SPI
//! (never 0).

/// The UDP port of NAT traversal (RFC 3948).
pub const PORT: u16 = 4500;

/// The 4 zero bytes in front of an IKE message on port 4500 (RFC 3948 2.2).
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];

/// A NAT keepalive (RFC 3948 2.3): one byte, 0xFF. Receivers ignore it.
pub const KEEPALIVE: [u8; 1] = [0xff];

/// The length of a UDP header.
pub const UDP_HEADER_LEN: usize = 8;

/// What a datagram on port 4500 carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind<'a> {
    /// A NAT keepalive: nothing to do.
    Keepalive,
    /// An IKE message, the non-ESP marker removed.
    Ike(&'a [u8]),
    /// An ESP packet, starting at the SPI.
    Esp(&'a [u8]),
}

/// Sorts a datagram received on port 4500; `None` for one that is none of the three.
pub fn classify(datagram: &[u8]) -> Option<Kind<'_>> {
    if datagram == KEEPALIVE {
        return Some(Kind::Keepalive);
    }
    if let Some(message) = datagram.strip_prefix(&NON_ESP_MARKER) {
        return (!message.is_empty()).then_some(Kind::Ike(message));
    }
    // the SPI is not 0 here: 4 zero bytes are the marker
    (datagram.len() >= 8).then_some(Kind::Esp(datagram))
}

/// Appends an IKE message as sent on port 4500: the non-ESP marker, then the message.
pub fn push_ike(message: &[u8], out: &mut Vec<u8>) {
    out.reserve(NON_ESP_MARKER.len() + message.len());
    out.extend_from_slice(&NON_ESP_MARKER);
    out.extend_from_slice(message);
}

/// The source port, destination port and payload of a UDP datagram (header included, as ESP
/// in transport mode with next header 17 carries it). The length field must cover the header
/// and fit in `inner`; bytes after it are ignored. The checksum is not checked: behind a NAT
/// the pseudo-header's addresses are not the ones it was computed over (RFC 3948 3.1.2).
pub fn udp_payload(inner: &[u8]) -> Option<(u16, u16, &[u8])> {
    if inner.len() < UDP_HEADER_LEN {
        return None;
    }
    let src = u16::from_be_bytes([inner[0], inner[1]]);
    let dst = u16::from_be_bytes([inner[2], inner[3]]);
    let len = usize::from(u16::from_be_bytes([inner[4], inner[5]]));
    if len < UDP_HEADER_LEN || len > inner.len() {
        return None;
    }
    Some((src, dst, &inner[UDP_HEADER_LEN..len]))
}

/// Appends a UDP datagram (header and `payload`) with checksum 0, which IPv4 allows and
/// transport mode over a NAT calls for. `payload` must fit a UDP datagram (at most 65527
/// bytes); beyond that the length field is wrong (and a debug build panics).
pub fn push_udp(src_port: u16, dst_port: u16, payload: &[u8], out: &mut Vec<u8>) {
    let len = UDP_HEADER_LEN + payload.len();
    debug_assert!(len <= usize::from(u16::MAX), "UDP payload too long");
    out.reserve(len);
    out.extend_from_slice(&src_port.to_be_bytes());
    out.extend_from_slice(&dst_port.to_be_bytes());
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive() {
        assert_eq!(classify(&[0xff]), Some(Kind::Keepalive));
        assert_eq!(classify(&KEEPALIVE), Some(Kind::Keepalive));
        // a lone other byte, or 0xFF with more, is nothing
        assert_eq!(classify(&[0x00]), None);
        assert_eq!(classify(&[0xff, 0xff]), None);
        assert_eq!(classify(&[]), None);
    }

    #[test]
    fn ike_behind_the_marker() {
        let message: Vec<u8> = (1..=28).collect();
        let mut datagram = Vec::new();
        push_ike(&message, &mut datagram);
        assert_eq!(&datagram[..4], &NON_ESP_MARKER);
        assert_eq!(datagram.len(), 32);
        assert_eq!(classify(&datagram), Some(Kind::Ike(&message[..])));
        // the marker alone carries nothing
        assert_eq!(classify(&[0, 0, 0, 0]), None);
        // push_ike appends
        let mut out = vec![9];
        push_ike(&[7], &mut out);
        assert_eq!(out, [9, 0, 0, 0, 0, 7]);
    }

    #[test]
    fn esp_from_its_spi() {
        let packet = [0, 0, 0x43, 0x21, 0, 0, 0, 1, 0xaa, 0xbb];
        assert_eq!(classify(&packet), Some(Kind::Esp(&packet[..])));
        assert_eq!(classify(&packet[..8]), Some(Kind::Esp(&packet[..8])));
        // shorter than an ESP header
        assert_eq!(classify(&packet[..7]), None);
        assert_eq!(classify(&[1, 2, 3]), None);
    }

    #[test]
    fn udp_round_trip() {
        let mut out = vec![0xee];
        push_udp(1701, 1702, b"l2tp", &mut out);
        assert_eq!(
            out,
            [0xee, 0x06, 0xa5, 0x06, 0xa6, 0, 12, 0, 0, b'l', b'2', b't', b'p']
        );
        assert_eq!(udp_payload(&out[1..]), Some((1701, 1702, &b"l2tp"[..])));
        let mut empty = Vec::new();
        push_udp(1, 2, &[], &mut empty);
        assert_eq!(udp_payload(&empty), Some((1, 2, &[][..])));
    }

    #[test]
    fn udp_length_field_checked() {
        let mut d = Vec::new();
        push_udp(1701, 1701, b"abcdef", &mut d);
        // truncated below the header
        assert_eq!(udp_payload(&d[..7]), None);
        // truncated below the length field
        assert_eq!(udp_payload(&d[..13]), None);
        // a length shorter than the header
        let mut short = d.clone();
        short[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(udp_payload(&short), None);
        // a length shorter than the buffer: the rest is ignored
        let mut less = d.clone();
        less[4..6].copy_from_slice(&10u16.to_be_bytes());
        assert_eq!(udp_payload(&less), Some((1701, 1701, &b"ab"[..])));
        // the checksum is not looked at
        let mut summed = d.clone();
        summed[6..8].copy_from_slice(&[0x12, 0x34]);
        assert_eq!(udp_payload(&summed), Some((1701, 1701, &b"abcdef"[..])));
    }
}
