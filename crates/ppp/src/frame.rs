//! A PPP frame as SSTP and L2TP carry it (RFC 1661 section 2, RFC 1662 section 3, without
//! HDLC's flags, escapes and FCS, which neither transport uses): the address and control
//! bytes `FF 03`, the protocol field, the information.
//!
//! On input both compressions are tolerated, though this server never agrees to them: a frame
//! may leave out `FF 03` (ACFC) and give a protocol below 0x0100 in one byte (PFC; the one
//! byte is odd, a two-byte field's first byte is even). On output frames are always complete.

use thiserror::Error;

/// The protocol field's values this server knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    Ipv4,
    Ipv6,
    Lcp,
    Pap,
    Chap,
    Eap,
    Ipcp,
    Ipv6cp,
    /// The Compression Control Protocol (what would negotiate MPPE); always rejected.
    Ccp,
    Unknown(u16),
}

impl From<u16> for Protocol {
    fn from(v: u16) -> Protocol {
        match v {
            0x0021 => Protocol::Ipv4,
            0x0057 => Protocol::Ipv6,
            0xc021 => Protocol::Lcp,
            0xc023 => Protocol::Pap,
            0xc223 => Protocol::Chap,
            0xc227 => Protocol::Eap,
            0x8021 => Protocol::Ipcp,
            0x8057 => Protocol::Ipv6cp,
            0x80fd => Protocol::Ccp,
            n => Protocol::Unknown(n),
        }
    }
}

impl From<Protocol> for u16 {
    fn from(p: Protocol) -> u16 {
        match p {
            Protocol::Ipv4 => 0x0021,
            Protocol::Ipv6 => 0x0057,
            Protocol::Lcp => 0xc021,
            Protocol::Pap => 0xc023,
            Protocol::Chap => 0xc223,
            Protocol::Eap => 0xc227,
            Protocol::Ipcp => 0x8021,
            Protocol::Ipv6cp => 0x8057,
            Protocol::Ccp => 0x80fd,
            Protocol::Unknown(n) => n,
        }
    }
}

#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("an empty frame")]
    Empty,
    #[error("address 0xff without control 0x03")]
    Control,
    #[error("the frame ends inside its protocol field")]
    Truncated,
    /// A two-byte protocol field whose second byte is even (RFC 1661: the least significant
    /// byte of every protocol number is odd).
    #[error("protocol field {0:#06x} is not a valid protocol number")]
    Protocol(u16),
}

/// A frame split into its protocol and information (which borrows the input).
pub fn parse(frame: &[u8]) -> Result<(Protocol, &[u8]), FrameError> {
    let mut rest = frame;
    match rest {
        [] => return Err(FrameError::Empty),
        [0xff, 0x03, tail @ ..] => rest = tail,
        [0xff, ..] => return Err(FrameError::Control),
        _ => {}
    }
    match rest {
        [] => Err(FrameError::Truncated),
        // a compressed protocol field: one odd byte
        [one, tail @ ..] if one & 1 == 1 => Ok((Protocol::from(u16::from(*one)), tail)),
        [_] => Err(FrameError::Truncated),
        [hi, lo, tail @ ..] => {
            let v = u16::from_be_bytes([*hi, *lo]);
            if lo & 1 == 0 {
                return Err(FrameError::Protocol(v));
            }
            Ok((Protocol::from(v), tail))
        }
    }
}

/// Appends a complete frame (`FF 03`, two-byte protocol, information) to `out`.
pub fn emit(protocol: Protocol, info: &[u8], out: &mut Vec<u8>) {
    out.reserve(4 + info.len());
    out.extend_from_slice(&[0xff, 0x03]);
    out.extend_from_slice(&u16::from(protocol).to_be_bytes());
    out.extend_from_slice(info);
}

/// A complete frame as a new buffer.
pub fn frame(protocol: Protocol, info: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + info.len());
    emit(protocol, info, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex;

    #[test]
    fn full_and_compressed_headers_parse_alike() {
        // an LCP Echo-Request with address and control, and without
        let full = hex("ff03 c021 0901 0008 01020304");
        let (p, info) = parse(&full).unwrap();
        assert_eq!(p, Protocol::Lcp);
        assert_eq!(info, &full[4..]);
        assert_eq!(parse(&full[2..]).unwrap(), (Protocol::Lcp, &full[4..]));
        // IPv4 with a one-byte protocol field, with and without address and control
        assert_eq!(
            parse(&hex("ff03 21 4500")).unwrap(),
            (Protocol::Ipv4, &[0x45, 0][..])
        );
        assert_eq!(
            parse(&hex("21 4500")).unwrap(),
            (Protocol::Ipv4, &[0x45, 0][..])
        );
        assert_eq!(
            parse(&hex("0021 4500")).unwrap(),
            (Protocol::Ipv4, &[0x45, 0][..])
        );
    }

    #[test]
    fn broken_headers_are_errors() {
        assert_eq!(parse(&[]), Err(FrameError::Empty));
        assert_eq!(parse(&hex("ff")), Err(FrameError::Control));
        assert_eq!(parse(&hex("ff05 c021")), Err(FrameError::Control));
        assert_eq!(parse(&hex("ff03")), Err(FrameError::Truncated));
        assert_eq!(parse(&hex("ff03 c0")), Err(FrameError::Truncated));
        assert_eq!(parse(&hex("c020 00")), Err(FrameError::Protocol(0xc020)));
    }

    #[test]
    fn emitted_frames_round_trip() {
        for p in [
            Protocol::Lcp,
            Protocol::Ipcp,
            Protocol::Ipv4,
            Protocol::Unknown(0x4021),
        ] {
            let f = frame(p, b"info");
            assert_eq!(&f[..2], &[0xff, 0x03]);
            assert_eq!(parse(&f).unwrap(), (p, &b"info"[..]));
            assert_eq!(Protocol::from(u16::from(p)), p);
        }
    }
}
