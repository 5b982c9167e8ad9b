//! L2TP version 2's packets (RFC 2661 section 3): the header, and the AVPs a control
//! message is made of.
//!
//! Header: a flags byte (T: control, L: a length follows, S: Ns and Nr follow, O: an offset
//! size follows, P: priority), a byte whose low four bits are the version (2), then the
//! optional length, tunnel id, session id, the optional Ns and Nr, the optional offset size
//! and that many bytes of padding. A control message always has L and S and never O or P.
//!
//! AVP: two bytes of M (mandatory), H (hidden), four reserved bits and a 10-bit length that
//! counts its own six-byte header, the vendor id, the attribute type, the value. Hidden AVPs
//! need a shared secret this server does not have; they are refused as errors.

use thiserror::Error;

/// L2TP version 2 in the low bits of the second byte.
pub const VERSION: u8 = 2;
/// A control message's header: flags, version, length, tunnel, session, Ns, Nr.
pub const CONTROL_HEADER_LEN: usize = 12;
/// The header this server writes in front of a data message: flags, version, length, tunnel,
/// session.
pub const DATA_HEADER_LEN: usize = 8;
/// An AVP's header: flags and length, vendor, type.
pub const AVP_HEADER_LEN: usize = 6;
/// The largest AVP the 10-bit length can say.
pub const MAX_AVP_LEN: usize = 0x3ff;

const BIT_T: u8 = 0x80;
const BIT_L: u8 = 0x40;
const BIT_S: u8 = 0x08;
const BIT_O: u8 = 0x02;
const BIT_P: u8 = 0x01;
const AVP_BIT_M: u8 = 0x80;
const AVP_BIT_H: u8 = 0x40;

/// AVP types of the IETF (vendor 0) this server reads or writes (RFC 2661 section 4.4).
pub mod avp {
    pub const MESSAGE_TYPE: u16 = 0;
    pub const RESULT_CODE: u16 = 1;
    pub const PROTOCOL_VERSION: u16 = 2;
    pub const FRAMING_CAPABILITIES: u16 = 3;
    pub const BEARER_CAPABILITIES: u16 = 4;
    pub const TIE_BREAKER: u16 = 5;
    pub const FIRMWARE_REVISION: u16 = 6;
    pub const HOST_NAME: u16 = 7;
    pub const VENDOR_NAME: u16 = 8;
    pub const ASSIGNED_TUNNEL_ID: u16 = 9;
    pub const RECEIVE_WINDOW_SIZE: u16 = 10;
    pub const CHALLENGE: u16 = 11;
    pub const CHALLENGE_RESPONSE: u16 = 13;
    pub const ASSIGNED_SESSION_ID: u16 = 14;
    pub const CALL_SERIAL_NUMBER: u16 = 15;
    pub const FRAMING_TYPE: u16 = 19;
    pub const TX_CONNECT_SPEED: u16 = 24;
    pub const PPP_DISCONNECT_CAUSE: u16 = 46;
}

/// Control message types (RFC 2661 section 3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    Sccrq,
    Sccrp,
    Scccn,
    StopCcn,
    Hello,
    Ocrq,
    Ocrp,
    Occn,
    Icrq,
    Icrp,
    Iccn,
    Cdn,
    Wen,
    Sli,
    Unknown(u16),
}

impl From<u16> for MessageType {
    fn from(v: u16) -> MessageType {
        match v {
            1 => MessageType::Sccrq,
            2 => MessageType::Sccrp,
            3 => MessageType::Scccn,
            4 => MessageType::StopCcn,
            6 => MessageType::Hello,
            7 => MessageType::Ocrq,
            8 => MessageType::Ocrp,
            9 => MessageType::Occn,
            10 => MessageType::Icrq,
            11 => MessageType::Icrp,
            12 => MessageType::Iccn,
            14 => MessageType::Cdn,
            15 => MessageType::Wen,
            16 => MessageType::Sli,
            n => MessageType::Unknown(n),
        }
    }
}

impl From<MessageType> for u16 {
    fn from(t: MessageType) -> u16 {
        match t {
            MessageType::Sccrq => 1,
            MessageType::Sccrp => 2,
            MessageType::Scccn => 3,
            MessageType::StopCcn => 4,
            MessageType::Hello => 6,
            MessageType::Ocrq => 7,
            MessageType::Ocrp => 8,
            MessageType::Occn => 9,
            MessageType::Icrq => 10,
            MessageType::Icrp => 11,
            MessageType::Iccn => 12,
            MessageType::Cdn => 14,
            MessageType::Wen => 15,
            MessageType::Sli => 16,
            MessageType::Unknown(n) => n,
        }
    }
}

/// Why bytes are not an L2TP packet this server takes.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PacketError {
    #[error("{0} bytes, shorter than the header says")]
    Truncated(usize),
    #[error("L2TP version {0}, not 2")]
    Version(u8),
    #[error(
        "a control message without its length and sequence numbers, or with offset or priority"
    )]
    ControlFlags,
    #[error("a length of {length}, not within the {available} bytes received")]
    Length { length: usize, available: usize },
    #[error("an offset of {0} bytes past the end of the packet")]
    Offset(usize),
    #[error("AVP {index}: {why}")]
    Avp { index: usize, why: &'static str },
    #[error("AVP {index} (type {kind}) is hidden; no secret is shared to reveal it")]
    HiddenAvp { index: usize, kind: u16 },
    #[error("a control message whose first AVP is not a two-byte Message Type")]
    NoMessageType,
}

/// The header of any L2TP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// T: a control message (else data).
    pub control: bool,
    /// L: the length field was there.
    pub has_length: bool,
    /// S: Ns and Nr.
    pub sequence: Option<(u16, u16)>,
    /// P: a data message to be handled first.
    pub priority: bool,
    pub tunnel: u16,
    pub session: u16,
}

/// Parses the header of `datagram`; the payload (after any offset padding, cut to the
/// length field when there is one) comes back with it.
pub fn parse(datagram: &[u8]) -> Result<(Header, &[u8]), PacketError> {
    let short = || PacketError::Truncated(datagram.len());
    let (flags, ver) = match datagram {
        [f, v, ..] => (*f, *v),
        _ => return Err(short()),
    };
    if ver & 0x0f != VERSION {
        return Err(PacketError::Version(ver & 0x0f));
    }
    let control = flags & BIT_T != 0;
    let has_length = flags & BIT_L != 0;
    let has_sequence = flags & BIT_S != 0;
    let has_offset = flags & BIT_O != 0;
    let priority = flags & BIT_P != 0;
    if control && (!has_length || !has_sequence || has_offset || priority) {
        return Err(PacketError::ControlFlags);
    }
    let mut r = Reader {
        bytes: datagram,
        at: 2,
    };
    let mut bytes = datagram;
    if has_length {
        let length = usize::from(r.u16().ok_or_else(short)?);
        if length < r.at || length > datagram.len() {
            return Err(PacketError::Length {
                length,
                available: datagram.len(),
            });
        }
        // whatever follows the length (UDP padding) is not part of the packet
        bytes = &datagram[..length];
        r.bytes = bytes;
    }
    let tunnel = r.u16().ok_or_else(short)?;
    let session = r.u16().ok_or_else(short)?;
    let sequence = if has_sequence {
        let ns = r.u16().ok_or_else(short)?;
        let nr = r.u16().ok_or_else(short)?;
        Some((ns, nr))
    } else {
        None
    };
    if has_offset {
        let offset = usize::from(r.u16().ok_or_else(short)?);
        if offset > bytes.len() - r.at {
            return Err(PacketError::Offset(offset));
        }
        r.at += offset;
    }
    let header = Header {
        control,
        has_length,
        sequence,
        priority,
        tunnel,
        session,
    };
    Ok((header, &bytes[r.at..]))
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn u16(&mut self) -> Option<u16> {
        let b = self.bytes.get(self.at..self.at + 2)?;
        self.at += 2;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }
}

/// One attribute-value pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Avp<'a> {
    /// M: an unknown mandatory AVP should end the tunnel or session (see the tunnel's note
    /// on what this server does instead).
    pub mandatory: bool,
    pub vendor: u16,
    pub kind: u16,
    pub value: &'a [u8],
}

impl<'a> Avp<'a> {
    /// An IETF AVP.
    pub fn new(mandatory: bool, kind: u16, value: &'a [u8]) -> Avp<'a> {
        Avp {
            mandatory,
            vendor: 0,
            kind,
            value,
        }
    }

    /// The value as a big-endian u16, if it is two bytes.
    pub fn u16(&self) -> Option<u16> {
        match self.value {
            [a, b] => Some(u16::from_be_bytes([*a, *b])),
            _ => None,
        }
    }
}

/// A control message other than a ZLB: its type (the first AVP) and all its AVPs, the Message
/// Type included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    pub kind: MessageType,
    pub avps: Vec<Avp<'a>>,
}

impl<'a> Message<'a> {
    /// The first IETF AVP of type `kind`.
    pub fn avp(&self, kind: u16) -> Option<&Avp<'a>> {
        self.avps.iter().find(|a| a.vendor == 0 && a.kind == kind)
    }

    /// The value of the first IETF AVP of type `kind` as a u16.
    pub fn u16(&self, kind: u16) -> Option<u16> {
        self.avp(kind).and_then(Avp::u16)
    }
}

/// Parses a control message's payload into AVPs. An empty payload is a ZLB: `Ok(None)`.
pub fn parse_message(payload: &[u8]) -> Result<Option<Message<'_>>, PacketError> {
    if payload.is_empty() {
        return Ok(None);
    }
    let avps = parse_avps(payload)?;
    let kind = match avps.first() {
        Some(a) if a.vendor == 0 && a.kind == avp::MESSAGE_TYPE => {
            a.u16().ok_or(PacketError::NoMessageType)?
        }
        _ => return Err(PacketError::NoMessageType),
    };
    Ok(Some(Message {
        kind: kind.into(),
        avps,
    }))
}

/// Parses a run of AVPs.
pub fn parse_avps(mut rest: &[u8]) -> Result<Vec<Avp<'_>>, PacketError> {
    let mut avps = Vec::new();
    let mut index = 0;
    while !rest.is_empty() {
        let Some(h) = rest.get(..AVP_HEADER_LEN) else {
            return Err(PacketError::Avp {
                index,
                why: "truncated header",
            });
        };
        let len = usize::from(u16::from_be_bytes([h[0], h[1]]) & 0x03ff);
        let vendor = u16::from_be_bytes([h[2], h[3]]);
        let kind = u16::from_be_bytes([h[4], h[5]]);
        if h[0] & AVP_BIT_H != 0 {
            return Err(PacketError::HiddenAvp { index, kind });
        }
        if len < AVP_HEADER_LEN || len > rest.len() {
            return Err(PacketError::Avp {
                index,
                why: "length out of bounds",
            });
        }
        avps.push(Avp {
            mandatory: h[0] & AVP_BIT_M != 0,
            vendor,
            kind,
            value: &rest[AVP_HEADER_LEN..len],
        });
        rest = &rest[len..];
        index += 1;
    }
    Ok(avps)
}

/// Writes a control message (a ZLB when `avps` is empty) to `out`; `None` when an AVP is too
/// long for its 10-bit length or the message for its 16-bit one (`out` is then unchanged).
pub fn emit_control(
    tunnel: u16,
    session: u16,
    ns: u16,
    nr: u16,
    avps: &[Avp<'_>],
    out: &mut Vec<u8>,
) -> Option<()> {
    let mut len = CONTROL_HEADER_LEN;
    for a in avps {
        let n = AVP_HEADER_LEN + a.value.len();
        if n > MAX_AVP_LEN {
            return None;
        }
        len += n;
    }
    let len = u16::try_from(len).ok()?;
    out.extend_from_slice(&[BIT_T | BIT_L | BIT_S, VERSION]);
    for v in [len, tunnel, session, ns, nr] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    for a in avps {
        let flags = if a.mandatory { AVP_BIT_M } else { 0 };
        let n = (AVP_HEADER_LEN + a.value.len()) as u16;
        out.extend_from_slice(&[flags | (n >> 8) as u8, n as u8]);
        out.extend_from_slice(&a.vendor.to_be_bytes());
        out.extend_from_slice(&a.kind.to_be_bytes());
        out.extend_from_slice(a.value);
    }
    Some(())
}

/// Writes a data message carrying `payload` (with the length field, without sequence numbers
/// or offset, as SoftEther sends them); `None` when it is too long for the length field.
pub fn emit_data(tunnel: u16, session: u16, payload: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let len = u16::try_from(DATA_HEADER_LEN + payload.len()).ok()?;
    out.extend_from_slice(&[BIT_L, VERSION]);
    for v in [len, tunnel, session] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(payload);
    Some(())
}

/// Overwrites the Nr of a control message written by [`emit_control`] (a retransmission
/// acknowledges what has arrived since the first sending).
pub fn set_nr(message: &mut [u8], nr: u16) {
    if let Some(b) = message.get_mut(10..12) {
        b.copy_from_slice(&nr.to_be_bytes());
    }
}

/// Whether sequence number `a` comes before `b` (modulo 2^16, RFC 2661 section 5.8).
pub fn seq_before(a: u16, b: u16) -> bool {
    (a.wrapping_sub(b) as i16) < 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    /// An SCCRQ built by hand from RFC 2661 sections 3.1, 4.1 and 6.1, with the AVPs an
    /// L2TP/IPsec client puts in one: Message Type, Protocol Version 1.0, Host Name "pc",
    /// Framing Capabilities (sync and async), Bearer Capabilities (none), Firmware Revision,
    /// Vendor Name "MS", Assigned Tunnel ID 0x1234, Receive Window Size 8.
    const SCCRQ: &str = "c802 0058 0000 0000 0000 0000
        8008 0000 0000 0001
        8008 0000 0002 0100
        8008 0000 0007 7063
        800a 0000 0003 0000 0003
        000a 0000 0004 0000 0000
        0008 0000 0006 0600
        0008 0000 0008 4d53
        8008 0000 0009 1234
        0008 0000 000a 0008";

    #[test]
    fn an_sccrq_parses_to_its_avps() {
        let bytes = hex(SCCRQ);
        let (h, payload) = parse(&bytes).unwrap();
        assert_eq!(
            h,
            Header {
                control: true,
                has_length: true,
                sequence: Some((0, 0)),
                priority: false,
                tunnel: 0,
                session: 0,
            }
        );
        let m = parse_message(payload).unwrap().unwrap();
        assert_eq!(m.kind, MessageType::Sccrq);
        assert_eq!(m.avps.len(), 9);
        assert_eq!(m.u16(avp::ASSIGNED_TUNNEL_ID), Some(0x1234));
        assert_eq!(m.u16(avp::RECEIVE_WINDOW_SIZE), Some(8));
        assert_eq!(m.avp(avp::HOST_NAME).unwrap().value, b"pc");
        assert!(m.avp(avp::HOST_NAME).unwrap().mandatory);
        assert!(!m.avp(avp::VENDOR_NAME).unwrap().mandatory);
        assert_eq!(m.avp(avp::PROTOCOL_VERSION).unwrap().value, [1, 0]);
    }

    #[test]
    fn control_messages_round_trip() {
        let bytes = hex(SCCRQ);
        let (_, payload) = parse(&bytes).unwrap();
        let m = parse_message(payload).unwrap().unwrap();
        let mut out = Vec::new();
        emit_control(0, 0, 0, 0, &m.avps, &mut out).unwrap();
        assert_eq!(out, bytes);

        let mut zlb = Vec::new();
        emit_control(7, 0, 3, 9, &[], &mut zlb).unwrap();
        assert_eq!(zlb, hex("c802 000c 0007 0000 0003 0009"));
        let (h, p) = parse(&zlb).unwrap();
        assert_eq!((h.tunnel, h.sequence), (7, Some((3, 9))));
        assert_eq!(parse_message(p), Ok(None));
        set_nr(&mut zlb, 10);
        assert_eq!(parse(&zlb).unwrap().0.sequence, Some((3, 10)));
    }

    #[test]
    fn data_messages_round_trip_with_and_without_options() {
        let mut out = Vec::new();
        emit_data(5, 6, &[0xff, 0x03, 0xc0, 0x21, 1], &mut out).unwrap();
        assert_eq!(out, hex("4002 000d 0005 0006 ff03 c021 01"));
        let (h, p) = parse(&out).unwrap();
        assert!(!h.control && h.has_length && h.sequence.is_none());
        assert_eq!((h.tunnel, h.session, p), (5, 6, &out[8..]));

        // no length; Ns/Nr; an offset of two padding bytes; priority
        let bytes = hex("0b02 0005 0006 0001 0000 0002 eeee ff03 0021 45");
        let (h, p) = parse(&bytes).unwrap();
        assert_eq!(h.sequence, Some((1, 0)));
        assert!(h.priority && !h.has_length);
        assert_eq!(p, hex("ff03 0021 45"));

        // bytes after the length are UDP padding, not data
        let mut padded = out.clone();
        padded.extend_from_slice(&[0, 0]);
        assert_eq!(parse(&padded).unwrap().1, &out[8..]);
        assert!(emit_data(1, 1, &[0; 65535], &mut Vec::new()).is_none());
    }

    #[test]
    fn bad_packets_say_what_is_wrong() {
        assert_eq!(parse(&[0xc8]), Err(PacketError::Truncated(1)));
        assert_eq!(parse(&hex("c803 000c")), Err(PacketError::Version(3)));
        // a control message without S
        assert_eq!(parse(&hex("c002 000c")), Err(PacketError::ControlFlags));
        assert_eq!(
            parse(&hex("c802 0020 0000 0000 0000 0000")),
            Err(PacketError::Length {
                length: 32,
                available: 12
            })
        );
        assert_eq!(
            parse(&hex("0202 0001 0001 0009 ff")),
            Err(PacketError::Offset(9))
        );
        let hidden = hex("8008 0000 0000 0001 c008 0000 0007 0000");
        assert_eq!(
            parse_message(&hidden),
            Err(PacketError::HiddenAvp { index: 1, kind: 7 })
        );
        assert!(matches!(
            parse_message(&hex("8009 0000 0000 0001")),
            Err(PacketError::Avp { index: 0, .. })
        ));
        assert_eq!(
            parse_message(&hex("8008 0000 0007 7063")),
            Err(PacketError::NoMessageType)
        );
    }

    #[test]
    fn every_truncation_and_bit_flip_of_an_sccrq_is_an_answer_not_a_panic() {
        let good = hex(SCCRQ);
        for cut in 0..good.len() {
            if let Ok((_, p)) = parse(&good[..cut]) {
                let _ = parse_message(p);
            }
        }
        for i in 0..good.len() {
            for bit in 0..8 {
                let mut b = good.clone();
                b[i] ^= 1 << bit;
                if let Ok((_, p)) = parse(&b) {
                    let _ = parse_message(p);
                }
            }
        }
    }

    #[test]
    fn sequence_numbers_compare_modulo_2_16() {
        assert!(seq_before(1, 2));
        assert!(seq_before(0xffff, 0));
        assert!(!seq_before(2, 2));
        assert!(!seq_before(0, 0xffff));
    }
}
