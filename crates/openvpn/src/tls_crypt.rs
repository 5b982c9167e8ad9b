//! tls-crypt (version 1): every control packet authenticated and encrypted with a key both
//! sides had beforehand, so that a server answers no one without it and the TLS handshake
//! (certificates included) is hidden.
//!
//! The key is OpenVPN's static key file (`openvpn --genkey tls-crypt`): 256 bytes in hex
//! between `-----BEGIN OpenVPN Static key V1-----` and `-----END OpenVPN Static key V1-----`.
//! They are two halves of a 64-byte cipher key and a 64-byte HMAC key each. The server sends
//! with the first half and receives with the second; the client the other way round
//! (OpenVPN's key direction "normal" for the server, "inverse" for the client). AES-256 takes
//! the first 32 bytes of a cipher key, HMAC-SHA256 the first 32 of an HMAC key.
//!
//! A plain control packet (`op|kid, session id, acks, peer's session id, message id,
//! payload`, see [`crate::packet`]) goes on the wire as
//!
//! `op|kid (1), session id (8), packet id (4), net time (4), tag (32), ciphertext`
//!
//! where the tag is HMAC-SHA256 over everything before it followed by the plaintext (the rest
//! of the plain packet after the session id), and the ciphertext is that plaintext in
//! AES-256-CTR whose initial counter block is the tag's first 16 bytes. Packet ids count from
//! 1; the net time is the sender's clock (UNIX seconds) when it started counting. The
//! receiver keeps a window of 64 ids per net time, as the data channel does, and refuses
//! a time older than the newest it took.

use aes::cipher::generic_array::GenericArray;
use aes::cipher::{BlockEncrypt, KeyInit};
use ring::hmac;
use thiserror::Error;

use crate::data::ReplayWindow;

/// The key file's first and last lines.
pub const KEY_BEGIN: &str = "-----BEGIN OpenVPN Static key V1-----";
pub const KEY_END: &str = "-----END OpenVPN Static key V1-----";
/// The bytes of a tls-crypt key.
pub const KEY_LEN: usize = 256;
/// The HMAC-SHA256 tag.
pub const TAG_LEN: usize = 32;
/// Opcode, session id, packet id and net time: authenticated, not encrypted.
pub const HEADER_LEN: usize = 1 + 8 + 4 + 4;
/// The shortest wrapped packet (an empty plaintext).
pub const MIN_WRAPPED: usize = HEADER_LEN + TAG_LEN;
/// What wrapping adds to a plain control packet.
pub const OVERHEAD: usize = 4 + 4 + TAG_LEN;
/// The opcode byte and session id a plain packet starts with, kept in the clear.
const CLEAR_LEN: usize = 1 + 8;

/// Why a key file was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum KeyFileError {
    #[error("no line \"{KEY_BEGIN}\" (not an OpenVPN static key)")]
    NoBegin,
    #[error("no line \"{KEY_END}\" after the key")]
    NoEnd,
    #[error("line {line}: {found:?} is not a hex digit")]
    NotHex { line: usize, found: char },
    #[error("{0} hex digits of key (a tls-crypt key has 512)")]
    Length(usize),
}

/// An OpenVPN static key as tls-crypt uses it.
#[derive(Clone, PartialEq, Eq)]
pub struct StaticKey([u8; KEY_LEN]);

impl std::fmt::Debug for StaticKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StaticKey(..)")
    }
}

impl StaticKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> StaticKey {
        StaticKey(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Reads a key file's text: lines before the first line are ignored (`openvpn --genkey`
    /// writes comments there), blanks between the hex digits too, and nothing after the last.
    pub fn parse(text: &str) -> Result<StaticKey, KeyFileError> {
        let mut lines = text.lines().enumerate();
        lines
            .by_ref()
            .find(|(_, l)| l.trim() == KEY_BEGIN)
            .ok_or(KeyFileError::NoBegin)?;
        let mut digits = Vec::with_capacity(2 * KEY_LEN);
        let mut ended = false;
        for (n, line) in lines {
            if line.trim() == KEY_END {
                ended = true;
                break;
            }
            for c in line.chars().filter(|c| !c.is_whitespace()) {
                let Some(d) = c.to_digit(16) else {
                    return Err(KeyFileError::NotHex {
                        line: n + 1,
                        found: c,
                    });
                };
                digits.push(d as u8);
            }
        }
        if !ended {
            return Err(KeyFileError::NoEnd);
        }
        if digits.len() != 2 * KEY_LEN {
            return Err(KeyFileError::Length(digits.len()));
        }
        let mut key = [0u8; KEY_LEN];
        for (k, pair) in key.iter_mut().zip(digits.chunks_exact(2)) {
            *k = pair[0] << 4 | pair[1];
        }
        Ok(StaticKey(key))
    }

    /// The key file's text, as `openvpn --genkey` lays it out (16 bytes a line).
    pub fn to_text(&self) -> String {
        let mut s = String::with_capacity(KEY_LEN * 2 + 128);
        s.push_str("#\n# 2048 bit OpenVPN static key\n#\n");
        s.push_str(KEY_BEGIN);
        s.push('\n');
        for line in self.0.chunks(16) {
            for b in line {
                s.push_str(&format!("{b:02x}"));
            }
            s.push('\n');
        }
        s.push_str(KEY_END);
        s.push('\n');
        s
    }

    /// One direction's keys: `half` 0 (what the server sends) or 1 (what the client sends).
    fn direction(&self, half: usize) -> Direction {
        let base = half * 128;
        let cipher = &self.0[base..base + 32];
        let mac = &self.0[base + 64..base + 64 + 32];
        Direction {
            cipher: aes::Aes256::new_from_slice(cipher).expect("32 bytes"),
            mac: hmac::Key::new(hmac::HMAC_SHA256, mac),
        }
    }
}

/// Which end of the tunnel uses the key (which half it sends with).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Server,
    Client,
}

/// Why a wrapped packet was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum UnwrapError {
    #[error("shorter than a tls-crypt packet")]
    Truncated,
    /// The tag did not verify: another key's packet, a damaged one, or a plain one.
    #[error("the tag does not verify")]
    Forged,
    #[error("a packet id seen before, or too old")]
    Replayed,
}

/// One direction: the AES-256 key of its CTR mode and the HMAC-SHA256 key of its tags.
#[derive(Clone)]
struct Direction {
    cipher: aes::Aes256,
    mac: hmac::Key,
}

impl Direction {
    /// AES-256-CTR in place: the counter block starts at `iv` and is incremented as one
    /// 128-bit big-endian number (OpenSSL's CTR mode).
    fn ctr(&self, iv: &[u8], data: &mut [u8]) {
        let mut counter = u128::from_be_bytes(iv[..16].try_into().expect("16 bytes"));
        for chunk in data.chunks_mut(16) {
            let mut block = GenericArray::from(counter.to_be_bytes());
            self.cipher.encrypt_block(&mut block);
            for (d, k) in chunk.iter_mut().zip(block.iter()) {
                *d ^= k;
            }
            counter = counter.wrapping_add(1);
        }
    }

    /// `header`, the tag of `header` and `plain`, and `plain` encrypted, onto `out`.
    fn seal(&self, header: &[u8], plain: &[u8], out: &mut Vec<u8>) {
        let mut ctx = hmac::Context::with_key(&self.mac);
        ctx.update(header);
        ctx.update(plain);
        let tag = ctx.sign();
        out.extend_from_slice(header);
        out.extend_from_slice(tag.as_ref());
        let at = out.len();
        out.extend_from_slice(plain);
        self.ctr(&tag.as_ref()[..16], &mut out[at..]);
    }

    /// The plaintext of `packet` (`header_len` bytes of header, the tag, the ciphertext), if
    /// its tag verifies.
    fn open(&self, header_len: usize, packet: &[u8]) -> Result<Vec<u8>, UnwrapError> {
        if packet.len() < header_len + TAG_LEN {
            return Err(UnwrapError::Truncated);
        }
        let (header, rest) = packet.split_at(header_len);
        let (tag, ciphertext) = rest.split_at(TAG_LEN);
        let mut plain = ciphertext.to_vec();
        self.ctr(&tag[..16], &mut plain);
        let mut signed = Vec::with_capacity(header.len() + plain.len());
        signed.extend_from_slice(header);
        signed.extend_from_slice(&plain);
        hmac::verify(&self.mac, &signed, tag).map_err(|_| UnwrapError::Forged)?;
        Ok(plain)
    }
}

/// The packet ids taken: the newest net time and a window of ids under it.
#[derive(Clone, Copy, Debug, Default)]
struct Received {
    time: Option<u32>,
    window: ReplayWindow,
}

impl Received {
    fn check(&self, id: u32, time: u32) -> bool {
        match self.time {
            _ if id == 0 => false,
            None => true,
            Some(t) if time > t => true,
            Some(t) if time < t => false,
            Some(_) => self.window.check(id),
        }
    }

    fn mark(&mut self, id: u32, time: u32) {
        if self.time != Some(time) {
            // a newer time starts the count again
            self.time = Some(time);
            self.window = ReplayWindow::default();
        }
        self.window.mark(id);
    }
}

/// One session's tls-crypt state: both directions' keys, the packet ids sent, the ids taken.
#[derive(Clone)]
pub struct TlsCrypt {
    send: Direction,
    receive: Direction,
    /// The id of the last packet sent (0: none yet).
    sent: u32,
    send_time: u32,
    received: Received,
}

impl std::fmt::Debug for TlsCrypt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsCrypt")
            .field("sent", &self.sent)
            .field("send_time", &self.send_time)
            .finish_non_exhaustive()
    }
}

impl TlsCrypt {
    /// `unix_time`: the clock now, in UNIX seconds; the net time of every packet sent.
    pub fn new(key: &StaticKey, role: Role, unix_time: u32) -> TlsCrypt {
        let (send, receive) = match role {
            Role::Server => (0, 1),
            Role::Client => (1, 0),
        };
        TlsCrypt {
            send: key.direction(send),
            receive: key.direction(receive),
            sent: 0,
            send_time: unix_time,
            received: Received::default(),
        }
    }

    /// Wraps `plain`, a control packet as [`crate::packet::Control::emit`] writes it, onto
    /// `out`. `None` (nothing written) when `plain` has no session id, or when the packet ids
    /// ran out (2^32 - 1 packets).
    pub fn wrap(&mut self, plain: &[u8], out: &mut Vec<u8>) -> Option<()> {
        if plain.len() < CLEAR_LEN {
            return None;
        }
        let id = self.sent.checked_add(1)?;
        self.sent = id;
        let mut header = [0u8; HEADER_LEN];
        header[..CLEAR_LEN].copy_from_slice(&plain[..CLEAR_LEN]);
        header[CLEAR_LEN..CLEAR_LEN + 4].copy_from_slice(&id.to_be_bytes());
        header[CLEAR_LEN + 4..].copy_from_slice(&self.send_time.to_be_bytes());
        out.reserve(plain.len() + OVERHEAD);
        self.send.seal(&header, &plain[CLEAR_LEN..], out);
        Some(())
    }

    /// The plain control packet inside `wrapped`, if its tag verifies and its packet id is
    /// new; the id is then taken (a second copy is [`UnwrapError::Replayed`]).
    pub fn unwrap(&mut self, wrapped: &[u8]) -> Result<Vec<u8>, UnwrapError> {
        let u = self.open(wrapped)?;
        self.take(&u);
        Ok(u.packet)
    }

    /// Like [`TlsCrypt::unwrap`], but the packet id is not taken yet: the caller takes it
    /// ([`TlsCrypt::take`]) once it has checked the packet is its peer's (the key is shared by
    /// every client, so a packet that verifies may be another session's).
    pub fn open(&self, wrapped: &[u8]) -> Result<Unwrapped, UnwrapError> {
        let plain = self.receive.open(HEADER_LEN, wrapped)?;
        let word = |at: usize| {
            u32::from_be_bytes(wrapped[at..at + 4].try_into().expect("inside the header"))
        };
        let (id, time) = (word(CLEAR_LEN), word(CLEAR_LEN + 4));
        if !self.received.check(id, time) {
            return Err(UnwrapError::Replayed);
        }
        let mut packet = Vec::with_capacity(CLEAR_LEN + plain.len());
        packet.extend_from_slice(&wrapped[..CLEAR_LEN]);
        packet.extend_from_slice(&plain);
        Ok(Unwrapped { packet, id, time })
    }

    /// Takes an opened packet's id: another packet with it is a replay.
    pub fn take(&mut self, u: &Unwrapped) {
        if self.received.check(u.id, u.time) {
            self.received.mark(u.id, u.time);
        }
    }
}

/// A packet [`TlsCrypt::open`] unwrapped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unwrapped {
    /// The plain control packet.
    pub packet: Vec<u8>,
    id: u32,
    time: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex;
    use crate::packet::{Control, SessionId, P_CONTROL_HARD_RESET_CLIENT_V2, P_CONTROL_V1};

    /// A key `openvpn --genkey tls-crypt` (2.6.14) wrote.
    const SAMPLE: &str = "#
# 2048 bit OpenVPN static key
#
-----BEGIN OpenVPN Static key V1-----
60311542892824fb0741746dbd85ce87
a61c64512ee626e4f6965f12aec2904e
169268a3cdfe448640e54ec3300e49f9
36deff927d8bb20de84d8767a091179d
b5ce33346c089d3aa41be002495bc8ec
e5f43535745696d23fd1570bf7e27e60
82d1aeb7b4a8a2483389998c8812c2d3
9d4966d1266e95adac7514010cc6ca0b
8f71b88048d993e365953ecbaa429b93
868eb71faf254e00626374598fa8a937
f89b05676efa8908563346d021cf1fed
52c5a474190235d5c86eef516bffc279
0b8f5b1d3100dcdeab2c32d4cdb94319
1d6bb1ad748d497932c5fbc84f6f40df
b24e272e43ea134ba3059ac095f1242b
d22a94bc3546244c3423121056d6c9c6
-----END OpenVPN Static key V1-----
";

    fn pair() -> (TlsCrypt, TlsCrypt) {
        let key = StaticKey::parse(SAMPLE).unwrap();
        (
            TlsCrypt::new(&key, Role::Server, 1_700_000_000),
            TlsCrypt::new(&key, Role::Client, 1_700_000_100),
        )
    }

    fn control(opcode: u8, message_id: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = Vec::new();
        Control {
            opcode,
            key_id: 0,
            session: SessionId([9; 8]),
            acks: vec![3, 4],
            acked_session: Some(SessionId([7; 8])),
            message_id: Some(message_id),
            payload,
        }
        .emit(&mut p);
        p
    }

    #[test]
    fn openvpns_known_answer() {
        // OpenVPN's unit test (test_tls_crypt.c, the dynamic tls-crypt key case): both keys
        // 32 bytes of 0xba, no opcode or session id before the packet id (1) and net time (0),
        // the plaintext "1234567890"
        let key = StaticKey::from_bytes([0xba; KEY_LEN]);
        let d = key.direction(1);
        let header = hex("00000001 00000000");
        let mut out = Vec::new();
        d.seal(&header, b"1234567890", &mut out);
        let expected = hex("00000001 00000000
             e319277f1c8d6e6a7796a855337b9cfb56e1f13a870e6647dfa195c92c17a015
             ba4967a11d55ea1a06a7");
        assert_eq!(out, expected);
        assert_eq!(d.open(8, &out).unwrap(), b"1234567890");
    }

    #[test]
    fn the_key_file_reads_and_writes_back() {
        let key = StaticKey::parse(SAMPLE).unwrap();
        assert_eq!(&key.as_bytes()[..4], &[0x60, 0x31, 0x15, 0x42]);
        assert_eq!(&key.as_bytes()[252..], &[0x56, 0xd6, 0xc9, 0xc6]);
        assert_eq!(key.to_text(), SAMPLE);
        // CRLF line ends and indentation, as a config's inline block may have them
        let crlf = SAMPLE.replace('\n', "\r\n  ");
        assert_eq!(StaticKey::parse(&crlf).unwrap(), key);
        assert_eq!(format!("{key:?}"), "StaticKey(..)", "never printed");
    }

    #[test]
    fn malformed_key_files_say_what_is_wrong() {
        assert_eq!(StaticKey::parse(""), Err(KeyFileError::NoBegin));
        assert_eq!(
            StaticKey::parse("-----BEGIN OpenVPN tls-crypt-v2 client key-----\n"),
            Err(KeyFileError::NoBegin)
        );
        let cut = SAMPLE.replace(KEY_END, "");
        assert_eq!(StaticKey::parse(&cut), Err(KeyFileError::NoEnd));
        let short = SAMPLE.replace("d22a94bc3546244c3423121056d6c9c6\n", "");
        assert_eq!(StaticKey::parse(&short), Err(KeyFileError::Length(480)));
        let odd = SAMPLE.replace("d22a94bc", "d22a94b");
        assert_eq!(StaticKey::parse(&odd), Err(KeyFileError::Length(511)));
        let bad = SAMPLE.replace("60311542", "6031154g");
        assert_eq!(
            StaticKey::parse(&bad),
            Err(KeyFileError::NotHex {
                line: 5,
                found: 'g'
            })
        );
        let e = StaticKey::parse(&bad).unwrap_err().to_string();
        assert!(e.contains("line 5"), "{e}");
    }

    #[test]
    fn the_server_uses_the_first_half_to_send_and_the_client_the_second() {
        // a key whose halves differ only in their first bytes
        let mut bytes = [0u8; KEY_LEN];
        bytes[0] = 1; // the server's cipher key
        bytes[64] = 2; // the server's HMAC key
        bytes[128] = 3; // the client's cipher key
        bytes[192] = 4; // the client's HMAC key
        let key = StaticKey::from_bytes(bytes);
        let mut server = TlsCrypt::new(&key, Role::Server, 5);
        let plain = control(P_CONTROL_V1, 1, b"hello");
        let mut wrapped = Vec::new();
        server.wrap(&plain, &mut wrapped).unwrap();
        // the tag by hand: HMAC-SHA256 with the server's HMAC key (32 bytes of slot 1)
        let mut mac = [0u8; 32];
        mac[0] = 2;
        let mut signed = wrapped[..HEADER_LEN].to_vec();
        signed.extend_from_slice(&plain[CLEAR_LEN..]);
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &mac), &signed);
        assert_eq!(&wrapped[HEADER_LEN..MIN_WRAPPED], tag.as_ref());
        // the header: the opcode and session id in the clear, packet id 1, the time given
        assert_eq!(&wrapped[..CLEAR_LEN], &plain[..CLEAR_LEN]);
        assert_eq!(&wrapped[CLEAR_LEN..HEADER_LEN], &hex("00000001 00000005"));
        assert_eq!(wrapped.len(), plain.len() + OVERHEAD);
        // the ciphertext by hand: AES-256 of the counter block (the tag's first 16 bytes)
        let mut aes_key = [0u8; 32];
        aes_key[0] = 1;
        let aes = aes::Aes256::new_from_slice(&aes_key).unwrap();
        let mut block = GenericArray::clone_from_slice(&tag.as_ref()[..16]);
        aes.encrypt_block(&mut block);
        assert_eq!(wrapped[MIN_WRAPPED] ^ block[0], plain[CLEAR_LEN]);
        // the client opens it, the server does not open its own
        let mut client = TlsCrypt::new(&key, Role::Client, 5);
        assert_eq!(client.unwrap(&wrapped).unwrap(), plain);
        assert_eq!(server.unwrap(&wrapped), Err(UnwrapError::Forged));
    }

    #[test]
    fn packets_round_trip_both_ways_longer_than_a_block() {
        let (mut server, mut client) = pair();
        for (i, len) in [0usize, 1, 15, 16, 17, 1100].into_iter().enumerate() {
            let payload: Vec<u8> = (0..len).map(|b| b as u8).collect();
            let plain = control(P_CONTROL_V1, i as u32, &payload);
            let mut wrapped = Vec::new();
            client.wrap(&plain, &mut wrapped).unwrap();
            assert_ne!(&wrapped[MIN_WRAPPED..], &plain[CLEAR_LEN..], "encrypted");
            assert_eq!(server.unwrap(&wrapped).unwrap(), plain);
            let mut back = Vec::new();
            server.wrap(&plain, &mut back).unwrap();
            assert_eq!(client.unwrap(&back).unwrap(), plain);
        }
        assert_eq!(client.sent, 6);
    }

    #[test]
    fn a_flipped_bit_anywhere_is_refused() {
        let (mut server, mut client) = pair();
        let plain = control(P_CONTROL_HARD_RESET_CLIENT_V2, 0, b"");
        let mut wrapped = Vec::new();
        client.wrap(&plain, &mut wrapped).unwrap();
        for at in 0..wrapped.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = wrapped.clone();
                bad[at] ^= bit;
                assert_eq!(server.unwrap(&bad), Err(UnwrapError::Forged), "byte {at}");
            }
        }
        // a plain packet is no wrapped one
        assert_eq!(
            server.unwrap(&control(P_CONTROL_V1, 1, &[0; 64])),
            Err(UnwrapError::Forged)
        );
        // nothing was taken by the refused ones
        assert_eq!(server.unwrap(&wrapped).unwrap(), plain);
    }

    #[test]
    fn a_replay_is_refused_and_late_packets_are_taken_once() {
        let (mut server, mut client) = pair();
        let mut wrapped = Vec::new();
        for i in 0..70u32 {
            let mut w = Vec::new();
            client
                .wrap(&control(P_CONTROL_V1, i, b"x"), &mut w)
                .unwrap();
            wrapped.push(w);
        }
        assert!(server.unwrap(&wrapped[0]).is_ok());
        assert_eq!(server.unwrap(&wrapped[0]), Err(UnwrapError::Replayed));
        assert!(server.unwrap(&wrapped[5]).is_ok());
        assert!(
            server.unwrap(&wrapped[3]).is_ok(),
            "late, within the window"
        );
        assert_eq!(server.unwrap(&wrapped[3]), Err(UnwrapError::Replayed));
        assert!(server.unwrap(&wrapped[69]).is_ok());
        assert_eq!(
            server.unwrap(&wrapped[4]),
            Err(UnwrapError::Replayed),
            "more than 64 behind"
        );
        // opened but not taken: still new
        let late = server.open(&wrapped[10]).unwrap();
        assert!(server.open(&wrapped[10]).is_ok());
        server.take(&late);
        assert_eq!(server.open(&wrapped[10]), Err(UnwrapError::Replayed));
        // the same client's ids under a newer time are new; back under the older one are not
        let key = StaticKey::parse(SAMPLE).unwrap();
        let mut restarted = TlsCrypt::new(&key, Role::Client, 1_700_000_200);
        let mut w = Vec::new();
        restarted
            .wrap(&control(P_CONTROL_V1, 0, b"x"), &mut w)
            .unwrap();
        assert!(server.unwrap(&w).is_ok());
        assert_eq!(server.unwrap(&wrapped[68]), Err(UnwrapError::Replayed));
        // when the ids run out nothing more is wrapped (id 0 is never sent)
        let mut spent = TlsCrypt::new(&key, Role::Client, 1_700_000_300);
        spent.sent = u32::MAX;
        let mut none = Vec::new();
        assert!(spent
            .wrap(&control(P_CONTROL_V1, 0, b"x"), &mut none)
            .is_none());
        assert!(none.is_empty());
    }

    #[test]
    fn truncated_packets_are_refused_without_a_panic() {
        let (mut server, mut client) = pair();
        let mut wrapped = Vec::new();
        client
            .wrap(&control(P_CONTROL_V1, 1, b"payload"), &mut wrapped)
            .unwrap();
        for cut in 0..wrapped.len() {
            let want = if cut < MIN_WRAPPED {
                UnwrapError::Truncated
            } else {
                UnwrapError::Forged
            };
            assert_eq!(server.unwrap(&wrapped[..cut]), Err(want), "{cut}");
        }
        let mut out = Vec::new();
        assert!(client.wrap(&[0x20; 8], &mut out).is_none());
        assert!(out.is_empty());
    }
}
