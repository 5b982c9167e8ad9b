//! SSTP's packets (MS-SSTP 2.2): a four-byte header (version 1.0, the control bit, a 12-bit
//! length that counts the header), then either a PPP frame (data) or a control message: its
//! type, the number of attributes, and attributes of their own four-byte header (a reserved
//! byte, the id, a 12-bit length that counts that header) and value.

use thiserror::Error;

/// SSTP version 1.0 in the first byte.
pub const VERSION: u8 = 0x10;
/// The header of every packet and of every attribute.
pub const HEADER_LEN: usize = 4;
/// The largest packet the 12-bit length field can say.
pub const MAX_PACKET: usize = 0x0fff;

/// Control message types (MS-SSTP 2.2.4).
pub const CALL_CONNECT_REQUEST: u16 = 0x0001;
pub const CALL_CONNECT_ACK: u16 = 0x0002;
pub const CALL_CONNECT_NAK: u16 = 0x0003;
pub const CALL_CONNECTED: u16 = 0x0004;
pub const CALL_ABORT: u16 = 0x0005;
pub const CALL_DISCONNECT: u16 = 0x0006;
pub const CALL_DISCONNECT_ACK: u16 = 0x0007;
pub const ECHO_REQUEST: u16 = 0x0008;
pub const ECHO_RESPONSE: u16 = 0x0009;

/// Attribute ids (MS-SSTP 2.2.5).
pub const ATTR_NO_ERROR: u8 = 0x00;
pub const ATTR_ENCAPSULATED_PROTOCOL_ID: u8 = 0x01;
pub const ATTR_STATUS_INFO: u8 = 0x02;
pub const ATTR_CRYPTO_BINDING: u8 = 0x03;
pub const ATTR_CRYPTO_BINDING_REQ: u8 = 0x04;

/// The only encapsulated protocol: PPP.
pub const PROTOCOL_PPP: u16 = 0x0001;
/// Hash protocols of the crypto binding (a bitmask in the request, one of them in the answer).
pub const CERT_HASH_SHA1: u8 = 0x01;
pub const CERT_HASH_SHA256: u8 = 0x02;
/// Status values (MS-SSTP 2.2.5.2) this server uses.
pub const ATTRIB_STATUS_NO_ERROR: u32 = 0x0000_0000;
pub const ATTRIB_STATUS_VALUE_NOT_SUPPORTED: u32 = 0x0000_0006;

/// Why bytes are not an SSTP packet.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PacketError {
    #[error("SSTP version {0:#04x}, not 1.0")]
    Version(u8),
    #[error("a packet length of {0}, shorter than its header")]
    Length(usize),
    #[error("a control message shorter than its header ({0} bytes)")]
    ShortMessage(usize),
    #[error("attribute {index}: {why}")]
    Attribute { index: usize, why: &'static str },
}

/// One SSTP packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    /// A PPP frame.
    Data(&'a [u8]),
    Control(Message<'a>),
}

/// A control message: its type and attributes (id, value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    pub kind: u16,
    pub attributes: Vec<(u8, &'a [u8])>,
}

impl<'a> Message<'a> {
    /// The value of the first attribute `id`.
    pub fn attribute(&self, id: u8) -> Option<&'a [u8]> {
        self.attributes
            .iter()
            .find(|(a, _)| *a == id)
            .map(|(_, v)| *v)
    }
}

/// The packet that starts `bytes`, if all of it is there: the packet and its length.
/// `Ok(None)`: more bytes are needed.
pub fn parse(bytes: &[u8]) -> Result<Option<(Packet<'_>, usize)>, PacketError> {
    if bytes.len() < HEADER_LEN {
        return Ok(None);
    }
    if bytes[0] != VERSION {
        return Err(PacketError::Version(bytes[0]));
    }
    let len = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]) & 0x0fff);
    if len < HEADER_LEN {
        return Err(PacketError::Length(len));
    }
    let Some(body) = bytes.get(HEADER_LEN..len) else {
        return Ok(None);
    };
    if bytes[1] & 0x01 == 0 {
        return Ok(Some((Packet::Data(body), len)));
    }
    Ok(Some((Packet::Control(parse_message(body)?), len)))
}

fn parse_message(body: &[u8]) -> Result<Message<'_>, PacketError> {
    if body.len() < 4 {
        return Err(PacketError::ShortMessage(body.len()));
    }
    let kind = u16::from_be_bytes([body[0], body[1]]);
    let count = usize::from(u16::from_be_bytes([body[2], body[3]]));
    let mut rest = &body[4..];
    let mut attributes = Vec::with_capacity(count.min(8));
    for index in 0..count {
        if rest.len() < HEADER_LEN {
            return Err(PacketError::Attribute {
                index,
                why: "truncated header",
            });
        }
        let id = rest[1];
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]) & 0x0fff);
        if len < HEADER_LEN || len > rest.len() {
            return Err(PacketError::Attribute {
                index,
                why: "length out of bounds",
            });
        }
        attributes.push((id, &rest[HEADER_LEN..len]));
        rest = &rest[len..];
    }
    Ok(Message { kind, attributes })
}

/// Writes a data packet carrying `frame`; `None` when it is too long for one packet.
pub fn emit_data(frame: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let len = HEADER_LEN + frame.len();
    if len > MAX_PACKET {
        return None;
    }
    out.extend_from_slice(&[VERSION, 0x00]);
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(frame);
    Some(())
}

/// Writes a control message with `attributes` (id, value).
pub fn emit_control(kind: u16, attributes: &[(u8, &[u8])], out: &mut Vec<u8>) {
    let len = HEADER_LEN
        + 4
        + attributes
            .iter()
            .map(|(_, v)| HEADER_LEN + v.len())
            .sum::<usize>();
    out.extend_from_slice(&[VERSION, 0x01]);
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&(attributes.len() as u16).to_be_bytes());
    for (id, value) in attributes {
        out.extend_from_slice(&[0, *id]);
        out.extend_from_slice(&((HEADER_LEN + value.len()) as u16).to_be_bytes());
        out.extend_from_slice(value);
    }
}

/// A Status Info attribute's value: the attribute id it is about, and the status.
pub fn status_info(about: u8, status: u32) -> [u8; 8] {
    let mut v = [0u8; 8];
    v[3] = about;
    v[4..].copy_from_slice(&status.to_be_bytes());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_control_message_round_trips() {
        let mut out = Vec::new();
        emit_control(
            CALL_CONNECT_REQUEST,
            &[(ATTR_ENCAPSULATED_PROTOCOL_ID, &PROTOCOL_PPP.to_be_bytes())],
            &mut out,
        );
        // MS-SSTP's Call Connect Request: 14 bytes, one attribute of 6
        assert_eq!(
            out,
            [0x10, 0x01, 0x00, 0x0e, 0x00, 0x01, 0x00, 0x01, 0x00, 0x01, 0x00, 0x06, 0x00, 0x01]
        );
        let (p, n) = parse(&out).unwrap().unwrap();
        assert_eq!(n, out.len());
        let Packet::Control(m) = p else {
            panic!("not control")
        };
        assert_eq!(m.kind, CALL_CONNECT_REQUEST);
        assert_eq!(
            m.attribute(ATTR_ENCAPSULATED_PROTOCOL_ID),
            Some(&[0, 1][..])
        );
    }

    #[test]
    fn data_packets_carry_frames_and_wait_for_their_bytes() {
        let mut out = Vec::new();
        emit_data(&[0xff, 0x03, 0xc0, 0x21, 1, 2], &mut out).unwrap();
        assert_eq!(parse(&out[..5]).unwrap(), None);
        let (p, n) = parse(&out).unwrap().unwrap();
        assert_eq!(
            (p, n),
            (Packet::Data(&[0xff, 0x03, 0xc0, 0x21, 1, 2][..]), 10)
        );
        assert!(emit_data(&[0; MAX_PACKET], &mut Vec::new()).is_none());
    }

    #[test]
    fn bad_packets_say_what_is_wrong() {
        assert_eq!(parse(&[0x11, 0, 0, 4]), Err(PacketError::Version(0x11)));
        assert_eq!(parse(&[0x10, 0, 0, 3]), Err(PacketError::Length(3)));
        assert_eq!(
            parse(&[0x10, 1, 0, 6, 0, 1]),
            Err(PacketError::ShortMessage(2))
        );
        // one attribute announced, whose length runs past the message
        let bad = [0x10, 1, 0, 12, 0, 1, 0, 1, 0, 1, 0, 9];
        assert!(matches!(
            parse(&bad),
            Err(PacketError::Attribute { index: 0, .. })
        ));
        // every truncation of a good message is "more needed" or an error, never a panic
        let mut good = Vec::new();
        emit_control(
            CALL_CONNECTED,
            &[(ATTR_CRYPTO_BINDING, &[0u8; 100][..])],
            &mut good,
        );
        for cut in 0..good.len() {
            let _ = parse(&good[..cut]);
        }
    }
}
