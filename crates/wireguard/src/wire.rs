//! WireGuard message framing: the four message types, their sizes, and the receiver index that
//! routes every message except an initiation to its peer.
//!
//! Only the outer framing lives here; the cryptographic contents are boringtun's business.

/// A WireGuard message type (the first byte; the next three bytes are reserved and zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    /// Type 1: handshake initiation, always 148 bytes.
    HandshakeInit,
    /// Type 2: handshake response, always 92 bytes.
    HandshakeResponse,
    /// Type 3: cookie reply, always 64 bytes.
    CookieReply,
    /// Type 4: transport data, a 16-byte header and a 16-byte tag around the payload.
    Data,
}

/// Size of a handshake initiation.
pub const HANDSHAKE_INIT_LEN: usize = 148;
/// Size of a handshake response.
pub const HANDSHAKE_RESPONSE_LEN: usize = 92;
/// Size of a cookie reply.
pub const COOKIE_REPLY_LEN: usize = 64;
/// Header (type, receiver index, counter) plus AEAD tag of a data message; also the size of a
/// keepalive, which carries no payload.
pub const DATA_OVERHEAD: usize = 32;

/// A borrowed view of a datagram whose type and length have been checked together, so the
/// accessors cannot go out of bounds.
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    kind: MessageType,
    bytes: &'a [u8],
}

impl<'a> Message<'a> {
    /// Checks type, the reserved zero bytes and the exact length of the type.
    ///
    /// Data messages are accepted at any length from [`DATA_OVERHEAD`] up: the protocol asks
    /// senders to pad the payload to a multiple of 16, but boringtun (and so every client built on
    /// it) does not pad, and receivers such as the Linux kernel accept both.
    pub fn new_checked(bytes: &'a [u8]) -> Option<Self> {
        let head: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
        if head[1..] != [0, 0, 0] {
            return None;
        }
        let kind = match (head[0], bytes.len()) {
            (1, HANDSHAKE_INIT_LEN) => MessageType::HandshakeInit,
            (2, HANDSHAKE_RESPONSE_LEN) => MessageType::HandshakeResponse,
            (3, COOKIE_REPLY_LEN) => MessageType::CookieReply,
            (4, n) if n >= DATA_OVERHEAD => MessageType::Data,
            _ => return None,
        };
        Some(Message { kind, bytes })
    }

    /// The message type.
    pub fn kind(&self) -> MessageType {
        self.kind
    }

    /// For responses, cookie replies and data: the index the *receiver* chose for this session.
    /// For an initiation there is none yet (it carries only the sender's index).
    pub fn receiver_index(&self) -> Option<u32> {
        let at = match self.kind {
            MessageType::HandshakeInit => return None,
            MessageType::HandshakeResponse => 8,
            MessageType::CookieReply | MessageType::Data => 4,
        };
        let field: [u8; 4] = self.bytes[at..at + 4].try_into().ok()?;
        Some(u32::from_le_bytes(field))
    }

    /// For data messages, the length of the plaintext the message carries (0 for a keepalive).
    pub fn payload_len(&self) -> Option<usize> {
        match self.kind {
            MessageType::Data => Some(self.bytes.len() - DATA_OVERHEAD),
            _ => None,
        }
    }
}

/// UDP demux: `true` when the datagram is a WireGuard message by type (1..=4, reserved bytes
/// zero) and length (148, 92, 64, or at least 32 for data).
///
/// Data lengths are not required to be a multiple of 16, see [`Message::new_checked`].
pub fn is_wireguard(datagram: &[u8]) -> bool {
    Message::new_checked(datagram).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: u8, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        if len > 0 {
            v[0] = kind;
        }
        v
    }

    #[test]
    fn exact_lengths_are_accepted() {
        assert!(is_wireguard(&msg(1, 148)));
        assert!(is_wireguard(&msg(2, 92)));
        assert!(is_wireguard(&msg(3, 64)));
        assert!(is_wireguard(&msg(4, 32)));
        assert!(is_wireguard(&msg(4, 48)));
        assert!(is_wireguard(&msg(4, 1452)));
        // unpadded data as boringtun sends it
        assert!(is_wireguard(&msg(4, 32 + 20)));
    }

    #[test]
    fn wrong_lengths_types_and_reserved_bytes_are_rejected() {
        assert!(!is_wireguard(&[]));
        assert!(!is_wireguard(&[1, 0, 0]));
        assert!(!is_wireguard(&msg(1, 147)));
        assert!(!is_wireguard(&msg(1, 149)));
        assert!(!is_wireguard(&msg(2, 148)));
        assert!(!is_wireguard(&msg(3, 92)));
        assert!(!is_wireguard(&msg(4, 31)));
        assert!(!is_wireguard(&msg(0, 148)));
        assert!(!is_wireguard(&msg(5, 64)));
        let mut reserved = msg(1, 148);
        reserved[2] = 1;
        assert!(!is_wireguard(&reserved));
    }

    #[test]
    fn receiver_index_is_read_from_the_right_offset() {
        let mut resp = msg(2, 92);
        resp[4..8].copy_from_slice(&7u32.to_le_bytes());
        resp[8..12].copy_from_slice(&0x0102_0304u32.to_le_bytes());
        let m = Message::new_checked(&resp).unwrap();
        assert_eq!(m.kind(), MessageType::HandshakeResponse);
        assert_eq!(m.receiver_index(), Some(0x0102_0304));

        let mut data = msg(4, 52);
        data[4..8].copy_from_slice(&0xaabb_cc01u32.to_le_bytes());
        let m = Message::new_checked(&data).unwrap();
        assert_eq!(m.receiver_index(), Some(0xaabb_cc01));
        assert_eq!(m.payload_len(), Some(20));

        let init = msg(1, 148);
        assert_eq!(Message::new_checked(&init).unwrap().receiver_index(), None);
    }
}
