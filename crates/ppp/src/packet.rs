//! The packets inside a control protocol's frame (RFC 1661 section 5): code, identifier,
//! length, data; for the configuration codes the data is a list of options (type, length,
//! value). LCP, IPCP and IPV6CP share this shape; PAP (RFC 1334) and CHAP (RFC 1994) share the
//! header and have bodies of their own ([`PapRequest`], [`ChapValue`]).
//!
//! The length field is trusted only within the frame: a length beyond the frame or below 4 is
//! an error, bytes after it are padding and ignored.

use std::net::Ipv4Addr;

use thiserror::Error;

/// The codes of LCP and the NCPs (IPCP uses 1 to 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    ConfigureRequest,
    ConfigureAck,
    ConfigureNak,
    ConfigureReject,
    TerminateRequest,
    TerminateAck,
    CodeReject,
    ProtocolReject,
    EchoRequest,
    EchoReply,
    DiscardRequest,
    /// RFC 1570.
    Identification,
    /// RFC 1570.
    TimeRemaining,
    Unknown(u8),
}

impl From<u8> for Code {
    fn from(v: u8) -> Code {
        match v {
            1 => Code::ConfigureRequest,
            2 => Code::ConfigureAck,
            3 => Code::ConfigureNak,
            4 => Code::ConfigureReject,
            5 => Code::TerminateRequest,
            6 => Code::TerminateAck,
            7 => Code::CodeReject,
            8 => Code::ProtocolReject,
            9 => Code::EchoRequest,
            10 => Code::EchoReply,
            11 => Code::DiscardRequest,
            12 => Code::Identification,
            13 => Code::TimeRemaining,
            n => Code::Unknown(n),
        }
    }
}

impl From<Code> for u8 {
    fn from(c: Code) -> u8 {
        match c {
            Code::ConfigureRequest => 1,
            Code::ConfigureAck => 2,
            Code::ConfigureNak => 3,
            Code::ConfigureReject => 4,
            Code::TerminateRequest => 5,
            Code::TerminateAck => 6,
            Code::CodeReject => 7,
            Code::ProtocolReject => 8,
            Code::EchoRequest => 9,
            Code::EchoReply => 10,
            Code::DiscardRequest => 11,
            Code::Identification => 12,
            Code::TimeRemaining => 13,
            Code::Unknown(n) => n,
        }
    }
}

/// PAP's codes (RFC 1334 section 2.2).
pub mod pap {
    pub const REQUEST: u8 = 1;
    pub const ACK: u8 = 2;
    pub const NAK: u8 = 3;
}

/// CHAP's codes (RFC 1994 section 4).
pub mod chap {
    pub const CHALLENGE: u8 = 1;
    pub const RESPONSE: u8 = 2;
    pub const SUCCESS: u8 = 3;
    pub const FAILURE: u8 = 4;
}

#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum PacketError {
    #[error("a control packet shorter than its 4-byte header")]
    Short,
    #[error("length field {0} outside the 4..={1} the frame allows")]
    Length(u16, usize),
    #[error("an option whose length runs past the packet or is below 2")]
    Option,
    #[error("a PAP or CHAP body whose lengths run past the packet")]
    Body,
}

/// A control packet; `data` borrows the frame and stops at the length field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    pub code: u8,
    pub id: u8,
    pub data: &'a [u8],
}

impl<'a> Packet<'a> {
    pub fn parse(info: &'a [u8]) -> Result<Packet<'a>, PacketError> {
        let [code, id, hi, lo, ..] = *info else {
            return Err(PacketError::Short);
        };
        let len = u16::from_be_bytes([hi, lo]);
        if usize::from(len) > info.len() || len < 4 {
            return Err(PacketError::Length(len, info.len()));
        }
        Ok(Packet {
            code,
            id,
            data: &info[4..usize::from(len)],
        })
    }

    /// The code as LCP and the NCPs name it.
    pub fn lcp_code(&self) -> Code {
        Code::from(self.code)
    }

    /// The whole packet as bytes (header and data; padding dropped).
    pub fn to_vec(&self) -> Vec<u8> {
        build(self.code, self.id, self.data)
    }
}

/// A control packet's bytes; `data` is cut to what the 16-bit length can say.
pub fn build(code: u8, id: u8, data: &[u8]) -> Vec<u8> {
    let data = &data[..data.len().min(usize::from(u16::MAX) - 4)];
    let mut out = Vec::with_capacity(4 + data.len());
    out.push(code);
    out.push(id);
    out.extend_from_slice(&((4 + data.len()) as u16).to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// One configuration option; `data` borrows the packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opt<'a> {
    pub kind: u8,
    pub data: &'a [u8],
}

impl Opt<'_> {
    /// Appends the option (type, length, value) to `out`. Values longer than 253 bytes do not
    /// fit an option and are cut (the server never builds one).
    pub fn emit(&self, out: &mut Vec<u8>) {
        let data = &self.data[..self.data.len().min(253)];
        out.push(self.kind);
        out.push(2 + data.len() as u8);
        out.extend_from_slice(data);
    }

    /// The value as a big-endian u16, when it is exactly two bytes.
    pub fn u16(&self) -> Option<u16> {
        Some(u16::from_be_bytes(self.data.try_into().ok()?))
    }

    /// The value as a big-endian u32, when it is exactly four bytes.
    pub fn u32(&self) -> Option<u32> {
        Some(u32::from_be_bytes(self.data.try_into().ok()?))
    }

    /// The value as an IPv4 address, when it is exactly four bytes.
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        self.u32().map(Ipv4Addr::from)
    }
}

/// The options of a Configure-Request, -Ack, -Nak or -Reject, in order.
pub fn parse_options(data: &[u8]) -> Result<Vec<Opt<'_>>, PacketError> {
    let mut opts = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let [kind, len, ..] = *rest else {
            return Err(PacketError::Option);
        };
        let len = usize::from(len);
        if len < 2 || len > rest.len() {
            return Err(PacketError::Option);
        }
        opts.push(Opt {
            kind,
            data: &rest[2..len],
        });
        rest = &rest[len..];
    }
    Ok(opts)
}

/// Options back to bytes.
pub fn emit_options(opts: &[Opt<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for o in opts {
        o.emit(&mut out);
    }
    out
}

/// PAP's Authenticate-Request body: peer-id length, peer-id, password length, password.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PapRequest<'a> {
    pub peer_id: &'a [u8],
    pub password: &'a [u8],
}

impl<'a> PapRequest<'a> {
    pub fn parse(data: &'a [u8]) -> Result<PapRequest<'a>, PacketError> {
        let (peer_id, rest) = length_prefixed(data)?;
        let (password, _) = length_prefixed(rest)?;
        Ok(PapRequest { peer_id, password })
    }

    pub fn emit(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for field in [self.peer_id, self.password] {
            let field = &field[..field.len().min(255)];
            out.push(field.len() as u8);
            out.extend_from_slice(field);
        }
        out
    }
}

/// A one-byte length and that many bytes, and what follows.
fn length_prefixed(data: &[u8]) -> Result<(&[u8], &[u8]), PacketError> {
    let (&n, rest) = data.split_first().ok_or(PacketError::Body)?;
    if usize::from(n) > rest.len() {
        return Err(PacketError::Body);
    }
    Ok(rest.split_at(usize::from(n)))
}

/// PAP's Authenticate-Ack and -Nak body: message length, message.
pub fn pap_reply_body(message: &str) -> Vec<u8> {
    let m = &message.as_bytes()[..message.len().min(255)];
    let mut out = vec![m.len() as u8];
    out.extend_from_slice(m);
    out
}

/// CHAP's Challenge and Response body: value size, value, name (the rest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChapValue<'a> {
    pub value: &'a [u8],
    pub name: &'a [u8],
}

impl<'a> ChapValue<'a> {
    pub fn parse(data: &'a [u8]) -> Result<ChapValue<'a>, PacketError> {
        let (value, name) = length_prefixed(data)?;
        Ok(ChapValue { value, name })
    }

    pub fn emit(&self) -> Vec<u8> {
        let value = &self.value[..self.value.len().min(255)];
        let mut out = vec![value.len() as u8];
        out.extend_from_slice(value);
        out.extend_from_slice(self.name);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex;

    #[test]
    fn a_configure_request_parses_into_options() {
        // LCP Configure-Request id 1: MRU 1400, magic 0x01020304, PFC, ACFC, and 2 bytes of
        // padding after the length
        let bytes = hex("01 01 0012 0104 0578 0506 01020304 0702 0802 0000");
        let p = Packet::parse(&bytes).unwrap();
        assert_eq!((p.lcp_code(), p.id), (Code::ConfigureRequest, 1));
        let opts = parse_options(p.data).unwrap();
        assert_eq!(opts.len(), 4);
        assert_eq!((opts[0].kind, opts[0].u16()), (1, Some(1400)));
        assert_eq!((opts[1].kind, opts[1].u32()), (5, Some(0x0102_0304)));
        assert_eq!((opts[2].kind, opts[2].data), (7, &[][..]));
        assert_eq!(emit_options(&opts), p.data);
        assert_eq!(p.to_vec(), &bytes[..18]);
    }

    #[test]
    fn bad_lengths_are_errors() {
        assert_eq!(Packet::parse(&hex("0101 00")), Err(PacketError::Short));
        assert_eq!(
            Packet::parse(&hex("0101 0003")),
            Err(PacketError::Length(3, 4))
        );
        assert_eq!(
            Packet::parse(&hex("0101 0009 0104 05")),
            Err(PacketError::Length(9, 7))
        );
        assert_eq!(parse_options(&hex("0104 05")), Err(PacketError::Option));
        assert_eq!(parse_options(&hex("0101")), Err(PacketError::Option));
        assert_eq!(parse_options(&hex("01")), Err(PacketError::Option));
        assert_eq!(parse_options(&[]), Ok(vec![]));
    }

    #[test]
    fn pap_and_chap_bodies_round_trip() {
        let pap = PapRequest {
            peer_id: b"user@HUB",
            password: b"secret",
        };
        let body = pap.emit();
        assert_eq!(PapRequest::parse(&body), Ok(pap));
        assert_eq!(
            PapRequest::parse(&body[..body.len() - 1]),
            Err(PacketError::Body)
        );
        assert_eq!(PapRequest::parse(&[]), Err(PacketError::Body));
        let chap = ChapValue {
            value: &[7; 16],
            name: b"etherhub",
        };
        let body = chap.emit();
        assert_eq!(body[0], 16);
        assert_eq!(ChapValue::parse(&body), Ok(chap));
        assert_eq!(ChapValue::parse(&body[..10]), Err(PacketError::Body));
        assert_eq!(pap_reply_body("ok"), b"\x02ok");
    }

    #[test]
    fn codes_round_trip() {
        for v in 0..=255u8 {
            assert_eq!(u8::from(Code::from(v)), v);
        }
    }
}
