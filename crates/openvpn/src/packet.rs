//! OpenVPN's packets: the first byte (`opcode << 3 | key_id`), control packets and data packet
//! headers. Every integer is big-endian. Over TCP each packet is preceded by a 16-bit length
//! ([`Framer`]).
//!
//! A control packet without tls-auth or tls-crypt:
//! `op|kid, own session id (8), ack count n, n acked message ids (4 each), the peer's session
//! id (8, only when n > 0), message id (4, not in P_ACK_V1), payload (TLS bytes)`.

use thiserror::Error;

pub const P_CONTROL_SOFT_RESET_V1: u8 = 3;
pub const P_CONTROL_V1: u8 = 4;
pub const P_ACK_V1: u8 = 5;
pub const P_DATA_V1: u8 = 6;
pub const P_CONTROL_HARD_RESET_CLIENT_V2: u8 = 7;
pub const P_CONTROL_HARD_RESET_SERVER_V2: u8 = 8;
pub const P_DATA_V2: u8 = 9;
pub const P_CONTROL_HARD_RESET_CLIENT_V3: u8 = 10;
pub const P_CONTROL_WKC_V1: u8 = 11;

/// Acknowledgements one packet may carry (a receiver refuses more).
pub const MAX_ACKS: usize = 8;
/// The peer-id meaning "none" in P_DATA_V2.
pub const NO_PEER_ID: u32 = 0x00ff_ffff;

/// A session id: 8 random bytes, never all zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SessionId(pub [u8; 8]);

impl SessionId {
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 8]
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PacketError {
    #[error("empty packet")]
    Empty,
    #[error("unknown opcode {0}")]
    Opcode(u8),
    #[error("truncated {0}")]
    Truncated(&'static str),
    #[error("{0} acknowledgements (at most 8)")]
    TooManyAcks(u8),
}

/// The opcode and key id of a packet's first byte.
pub fn split_op(byte: u8) -> (u8, u8) {
    (byte >> 3, byte & 7)
}

pub fn is_control(opcode: u8) -> bool {
    matches!(
        opcode,
        P_CONTROL_SOFT_RESET_V1..=P_ACK_V1 | P_CONTROL_HARD_RESET_CLIENT_V2..=P_CONTROL_HARD_RESET_SERVER_V2
            | P_CONTROL_HARD_RESET_CLIENT_V3..=P_CONTROL_WKC_V1
    )
}

/// A control packet (any opcode but the data ones), parsed; `payload` borrows the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Control<'a> {
    pub opcode: u8,
    pub key_id: u8,
    /// The sender's session id.
    pub session: SessionId,
    /// Message ids the sender acknowledges.
    pub acks: Vec<u32>,
    /// The session id the acknowledgements are for (the receiver's own), when there are any.
    pub acked_session: Option<SessionId>,
    /// `None` for P_ACK_V1.
    pub message_id: Option<u32>,
    pub payload: &'a [u8],
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], PacketError> {
        if self.0.len() < n {
            return Err(PacketError::Truncated(what));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, PacketError> {
        Ok(self.take(1, what)?[0])
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, PacketError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn session(&mut self, what: &'static str) -> Result<SessionId, PacketError> {
        let mut s = [0u8; 8];
        s.copy_from_slice(self.take(8, what)?);
        Ok(SessionId(s))
    }
}

impl<'a> Control<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Control<'a>, PacketError> {
        let mut r = Reader(bytes);
        let (opcode, key_id) = split_op(r.u8("opcode").map_err(|_| PacketError::Empty)?);
        if !is_control(opcode) {
            return Err(PacketError::Opcode(opcode));
        }
        let session = r.session("session id")?;
        let n = r.u8("ack count")?;
        if usize::from(n) > MAX_ACKS {
            return Err(PacketError::TooManyAcks(n));
        }
        let mut acks = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            acks.push(r.u32("acknowledgements")?);
        }
        let acked_session = if n > 0 {
            Some(r.session("acknowledged session id")?)
        } else {
            None
        };
        let message_id = if opcode == P_ACK_V1 {
            None
        } else {
            Some(r.u32("message id")?)
        };
        Ok(Control {
            opcode,
            key_id,
            session,
            acks,
            acked_session,
            message_id,
            payload: r.0,
        })
    }

    /// Appends the packet's bytes to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.push(self.opcode << 3 | (self.key_id & 7));
        out.extend_from_slice(&self.session.0);
        out.push(self.acks.len() as u8);
        for a in &self.acks {
            out.extend_from_slice(&a.to_be_bytes());
        }
        if !self.acks.is_empty() {
            out.extend_from_slice(&self.acked_session.unwrap_or_default().0);
        }
        if let Some(id) = self.message_id {
            out.extend_from_slice(&id.to_be_bytes());
        }
        out.extend_from_slice(self.payload);
    }

    /// The bytes `emit` writes before the payload, for `acks` acknowledgements.
    pub fn header_len(acks: usize, has_message_id: bool) -> usize {
        1 + 8 + 1 + 4 * acks + if acks > 0 { 8 } else { 0 } + if has_message_id { 4 } else { 0 }
    }
}

/// A data packet's header: P_DATA_V1 (one byte) or P_DATA_V2 (four, with the peer-id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataHeader {
    pub key_id: u8,
    /// `Some` for P_DATA_V2.
    pub peer_id: Option<u32>,
}

impl DataHeader {
    /// The header and what follows it; `None` if `bytes` is no data packet.
    pub fn parse(bytes: &[u8]) -> Option<(DataHeader, usize)> {
        let (op, key_id) = split_op(*bytes.first()?);
        match op {
            P_DATA_V1 => Some((
                DataHeader {
                    key_id,
                    peer_id: None,
                },
                1,
            )),
            P_DATA_V2 if bytes.len() >= 4 => Some((
                DataHeader {
                    key_id,
                    peer_id: Some(u32::from_be_bytes([0, bytes[1], bytes[2], bytes[3]])),
                },
                4,
            )),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        if self.peer_id.is_some() {
            4
        } else {
            1
        }
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        match self.peer_id {
            Some(p) => {
                out.push(P_DATA_V2 << 3 | (self.key_id & 7));
                out.extend_from_slice(&(p & NO_PEER_ID).to_be_bytes()[1..]);
            }
            None => out.push(P_DATA_V1 << 3 | (self.key_id & 7)),
        }
    }
}

/// Whether a datagram on a shared UDP port looks like a client's first OpenVPN packet or a
/// packet of a known session: a control packet that parses exactly, a control opcode with
/// room for a tls-crypt packet (whose ciphertext parses as nothing), or a data packet. It must
/// not take WireGuard's datagrams (first byte 1..4 followed by three zero bytes), which the
/// opcode byte alone cannot tell apart: P_DATA_V1 with key id 1..4 is 0x31..0x34, never
/// 0x01..0x04, and no control opcode byte is below 0x18.
pub fn looks_like_openvpn(datagram: &[u8]) -> bool {
    let Some(&first) = datagram.first() else {
        return false;
    };
    let (op, _) = split_op(first);
    if op == P_DATA_V1 || op == P_DATA_V2 {
        return datagram.len() >= 4 + 16;
    }
    Control::parse(datagram).is_ok()
        || (is_control(op) && datagram.len() >= crate::tls_crypt::MIN_WRAPPED)
}

/// OpenVPN over TCP: each packet after a 16-bit length.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
}

/// The largest packet Etherhub takes over TCP (a control packet is at most 1250 bytes, a data
/// packet an MTU's worth plus the overhead).
pub const MAX_TCP_PACKET: usize = 1 << 14;

impl Framer {
    /// Feeds stream bytes; calls `each` with every whole packet. An empty or oversized length
    /// is an error (the stream is not OpenVPN, or broken).
    pub fn feed(&mut self, bytes: &[u8], each: &mut dyn FnMut(&[u8])) -> Result<(), PacketError> {
        self.buf.extend_from_slice(bytes);
        let mut at = 0;
        while self.buf.len() - at >= 2 {
            let len = usize::from(u16::from_be_bytes([self.buf[at], self.buf[at + 1]]));
            if len == 0 || len > MAX_TCP_PACKET {
                return Err(PacketError::Truncated("TCP length"));
            }
            if self.buf.len() - at - 2 < len {
                break;
            }
            each(&self.buf[at + 2..at + 2 + len]);
            at += 2 + len;
        }
        self.buf.drain(..at);
        Ok(())
    }

    /// A packet framed for the stream.
    pub fn frame(packet: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(packet.len() + 2);
        out.extend_from_slice(&(packet.len() as u16).to_be_bytes());
        out.extend_from_slice(packet);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex;

    #[test]
    fn captured_handshake_packets_parse_and_emit_byte_for_byte() {
        // a 2.6 client's reset, the server's answer, the ClientHello's packet, an ACK
        let client_reset = hex("38 8c5eb819310dfba6 00 00000000");
        let c = Control::parse(&client_reset).unwrap();
        assert_eq!(
            (c.opcode, c.key_id, c.message_id),
            (P_CONTROL_HARD_RESET_CLIENT_V2, 0, Some(0))
        );
        assert!(c.acks.is_empty() && c.payload.is_empty());
        let server_reset = hex("40 31ae2bc03ea03489 01 00000000 8c5eb819310dfba6 00000000");
        let s = Control::parse(&server_reset).unwrap();
        assert_eq!(s.acks, vec![0]);
        assert_eq!(s.acked_session, Some(c.session));
        let mut out = Vec::new();
        s.emit(&mut out);
        assert_eq!(out, server_reset);
        let hello = hex("20 8c5eb819310dfba6 01 00000000 31ae2bc03ea03489 00000001 16030101");
        let h = Control::parse(&hello).unwrap();
        assert_eq!((h.opcode, h.message_id), (P_CONTROL_V1, Some(1)));
        assert_eq!(h.payload, &[0x16, 0x03, 0x01, 0x01]);
        let ack = hex("28 8c5eb819310dfba6 02 00000001 00000000 31ae2bc03ea03489");
        let a = Control::parse(&ack).unwrap();
        assert_eq!((a.opcode, a.message_id), (P_ACK_V1, None));
        assert_eq!(a.acks, vec![1, 0]);
        assert_eq!(Control::header_len(2, false), ack.len());
        // every truncation is an error, never a panic
        for cut in 0..hello.len() - 4 {
            assert!(Control::parse(&hello[..cut]).is_err(), "{cut}");
        }
        let mut nine = hex("28 8c5eb819310dfba6 09");
        nine.extend(vec![0; 44]);
        assert_eq!(Control::parse(&nine), Err(PacketError::TooManyAcks(9)));
    }

    #[test]
    fn data_headers_and_tcp_framing() {
        let (h, n) = DataHeader::parse(&hex("48 00 00 05 aa")).unwrap();
        assert_eq!((h.key_id, h.peer_id, n), (0, Some(5), 4));
        let mut out = Vec::new();
        h.emit(&mut out);
        assert_eq!(out, hex("48 00 00 05"));
        assert_eq!(DataHeader::parse(&[0x31]).unwrap().0.peer_id, None);
        assert_eq!(DataHeader::parse(&[0x20]), None);
        let mut f = Framer::default();
        let mut got = Vec::new();
        let stream = [Framer::frame(b"one"), Framer::frame(b"second")].concat();
        for b in stream.chunks(3) {
            f.feed(b, &mut |p| got.push(p.to_vec())).unwrap();
        }
        assert_eq!(got, vec![b"one".to_vec(), b"second".to_vec()]);
        assert!(f.feed(&[0, 0], &mut |_| {}).is_err());
    }

    #[test]
    fn wireguard_datagrams_are_not_taken_for_openvpn() {
        // WireGuard: types 1..4, three reserved zero bytes
        for t in 1..=4u8 {
            let mut d = vec![t, 0, 0, 0];
            d.extend(vec![0x5a; 144]);
            assert!(!looks_like_openvpn(&d), "type {t}");
        }
        assert!(looks_like_openvpn(&hex("38 8c5eb819310dfba6 00 00000000")));
        assert!(!looks_like_openvpn(&[]));
        // tls-crypt: a packet id of 9 * 2^24 or more reads as too many acknowledgements
        let mut wrapped = hex("20 8c5eb819310dfba6 09000000 65000000");
        wrapped.extend(vec![0xa5; 40]);
        assert!(Control::parse(&wrapped).is_err());
        assert!(looks_like_openvpn(&wrapped));
        assert!(!looks_like_openvpn(&wrapped[..48]));
    }
}
