//! The data channel. With an AEAD cipher (AES-256-GCM, AES-128-GCM, ChaCha20-Poly1305):
//! `header, packet id (4), tag (16), ciphertext`. The nonce is the packet id and the 8 bytes
//! of implicit IV from the direction's HMAC key; the additional data is the header (P_DATA_V2
//! only) and the packet id. With AES-CBC (SoftEther's own data channel, AES-128-CBC with
//! HMAC-SHA1, as its configs ask): `header, HMAC (of IV and ciphertext), IV (16), ciphertext`,
//! the plaintext being the packet id and the payload, PKCS#7-padded. Packet ids start at 1;
//! the receiver keeps a window of 64.

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};

use crate::keys::DirectionKey;
use crate::packet::DataHeader;

/// The ping a peer sends when it has sent nothing else for a while; never forwarded.
pub const PING: [u8; 16] = [
    0x2a, 0x18, 0x7b, 0xf3, 0x64, 0x1e, 0xb4, 0xcb, 0x07, 0xed, 0x2d, 0x0a, 0x98, 0x1f, 0xc7, 0x48,
];
/// OCC messages start with this; type 6 is EXIT (the client is leaving).
pub const OCC_MAGIC: [u8; 16] = [
    0x28, 0x7f, 0x34, 0x6b, 0xd4, 0xef, 0x7a, 0x81, 0x2d, 0x56, 0xb8, 0xd3, 0xaf, 0xc5, 0x45, 0x9c,
];
pub const OCC_EXIT: u8 = 6;

/// Packets a receiver accepts behind the highest it has seen.
pub const REPLAY_WINDOW: u32 = 64;
const TAG: usize = 16;

/// The data ciphers Etherhub speaks, in its order of preference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cipher {
    Aes256Gcm,
    Aes128Gcm,
    Chacha20Poly1305,
    /// With an HMAC ([`Auth`]): SoftEther's configs use AES-128-CBC with SHA1.
    Aes128Cbc,
    Aes256Cbc,
}

/// The HMAC of a CBC data channel (the client's `auth`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    Sha1,
    Sha256,
}

impl Auth {
    /// From a client's options string (`auth SHA256`); SHA1, OpenVPN's default, otherwise.
    pub fn from_options(options: &str) -> Auth {
        let named = options
            .split(',')
            .find_map(|o| o.trim().strip_prefix("auth "))
            .unwrap_or("SHA1");
        if named.trim().eq_ignore_ascii_case("SHA256") {
            Auth::Sha256
        } else {
            Auth::Sha1
        }
    }

    fn algorithm(self) -> ring::hmac::Algorithm {
        match self {
            Auth::Sha1 => ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Auth::Sha256 => ring::hmac::HMAC_SHA256,
        }
    }

    fn len(self) -> usize {
        match self {
            Auth::Sha1 => 20,
            Auth::Sha256 => 32,
        }
    }
}

impl Cipher {
    pub const ALL: [Cipher; 5] = [
        Cipher::Aes256Gcm,
        Cipher::Aes128Gcm,
        Cipher::Chacha20Poly1305,
        Cipher::Aes128Cbc,
        Cipher::Aes256Cbc,
    ];

    /// OpenVPN's name (`data-ciphers`, `cipher` in the push reply).
    pub fn name(self) -> &'static str {
        match self {
            Cipher::Aes256Gcm => "AES-256-GCM",
            Cipher::Aes128Gcm => "AES-128-GCM",
            Cipher::Chacha20Poly1305 => "CHACHA20-POLY1305",
            Cipher::Aes128Cbc => "AES-128-CBC",
            Cipher::Aes256Cbc => "AES-256-CBC",
        }
    }

    pub fn from_name(name: &str) -> Option<Cipher> {
        Cipher::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name))
    }

    fn algorithm(self) -> Option<&'static aead::Algorithm> {
        match self {
            Cipher::Aes256Gcm => Some(&aead::AES_256_GCM),
            Cipher::Aes128Gcm => Some(&aead::AES_128_GCM),
            Cipher::Chacha20Poly1305 => Some(&aead::CHACHA20_POLY1305),
            Cipher::Aes128Cbc | Cipher::Aes256Cbc => None,
        }
    }

    /// The first of `offered` (the client's list) that Etherhub speaks, in the client's order.
    pub fn choose(offered: &[String]) -> Option<Cipher> {
        offered.iter().find_map(|n| Cipher::from_name(n))
    }
}

/// Why a data packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataError {
    Truncated,
    /// The tag did not verify (a forged or damaged packet, or another key's).
    Forged,
    /// A packet id seen before, or too old.
    Replayed,
}

/// One direction's AEAD state.
struct Sealer {
    key: LessSafeKey,
    iv: [u8; 8],
}

impl Sealer {
    fn new(alg: &'static aead::Algorithm, k: &DirectionKey) -> Sealer {
        let key = UnboundKey::new(alg, &k.cipher[..alg.key_len()]).expect("key length fits");
        let mut iv = [0u8; 8];
        iv.copy_from_slice(&k.hmac[..8]);
        Sealer {
            key: LessSafeKey::new(key),
            iv,
        }
    }

    fn nonce(&self, id: u32) -> Nonce {
        let mut n = [0u8; 12];
        n[..4].copy_from_slice(&id.to_be_bytes());
        n[4..].copy_from_slice(&self.iv);
        Nonce::assume_unique_for_key(n)
    }
}

/// The window of packet ids seen: the highest, and a bit for each of the 64 before it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ReplayWindow {
    highest: u32,
    seen: u64,
}

impl ReplayWindow {
    pub(crate) fn check(&self, id: u32) -> bool {
        if id == 0 {
            return false;
        }
        if id > self.highest {
            return true;
        }
        let back = self.highest - id;
        back < REPLAY_WINDOW && self.seen & (1 << back) == 0
    }

    pub(crate) fn mark(&mut self, id: u32) {
        if id > self.highest {
            let shift = id - self.highest;
            self.seen = if shift >= 64 { 0 } else { self.seen << shift };
            self.seen |= 1;
            self.highest = id;
        } else {
            self.seen |= 1 << (self.highest - id);
        }
    }
}

/// One direction of a CBC channel: the AES key and the HMAC key.
struct CbcKey {
    aes: Vec<u8>,
    hmac: ring::hmac::Key,
}

impl CbcKey {
    fn new(cipher: Cipher, auth: Auth, k: &DirectionKey) -> CbcKey {
        let n = if cipher == Cipher::Aes128Cbc { 16 } else { 32 };
        CbcKey {
            aes: k.cipher[..n].to_vec(),
            hmac: ring::hmac::Key::new(auth.algorithm(), &k.hmac[..auth.len()]),
        }
    }
}

/// What a channel seals with.
enum Keys {
    Aead {
        send: Box<Sealer>,
        receive: Box<Sealer>,
    },
    Cbc {
        auth: Auth,
        send: Box<CbcKey>,
        receive: Box<CbcKey>,
    },
}

/// A key's data channel, both directions, as the server uses it.
pub struct DataChannel {
    cipher: Cipher,
    keys: Keys,
    next_id: u32,
    window: ReplayWindow,
}

/// Pads `data` (PKCS#7) and encrypts it in place; `None` (nothing to send) if the cipher
/// refused it, so that no plaintext ever goes out.
fn cbc_encrypt(key: &[u8], iv: &[u8; 16], data: &mut Vec<u8>) -> Option<()> {
    use aes::cipher::block_padding::NoPadding;
    use aes::cipher::{BlockEncryptMut, KeyIvInit};
    let pad = 16 - data.len() % 16;
    data.extend(std::iter::repeat_n(pad as u8, pad));
    let len = data.len();
    let done = if key.len() == 16 {
        cbc::Encryptor::<aes::Aes128>::new(key.into(), iv.into())
            .encrypt_padded_mut::<NoPadding>(data, len)
            .is_ok()
    } else {
        cbc::Encryptor::<aes::Aes256>::new(key.into(), iv.into())
            .encrypt_padded_mut::<NoPadding>(data, len)
            .is_ok()
    };
    done.then_some(())
}

fn cbc_decrypt(key: &[u8], iv: &[u8], data: &mut [u8]) -> Option<usize> {
    use aes::cipher::{BlockDecryptMut, KeyIvInit};
    let plain = if key.len() == 16 {
        cbc::Decryptor::<aes::Aes128>::new(key.into(), iv.into())
            .decrypt_padded_mut::<aes::cipher::block_padding::Pkcs7>(data)
            .ok()?
    } else {
        cbc::Decryptor::<aes::Aes256>::new(key.into(), iv.into())
            .decrypt_padded_mut::<aes::cipher::block_padding::Pkcs7>(data)
            .ok()?
    };
    Some(plain.len())
}

impl DataChannel {
    /// An AEAD channel, or a CBC one with HMAC-SHA1 (see [`DataChannel::with_auth`]).
    pub fn new(cipher: Cipher, keys: &crate::keys::DataKeys) -> DataChannel {
        DataChannel::with_auth(cipher, Auth::Sha1, keys)
    }

    /// `auth` is the HMAC of a CBC channel (AEAD channels have none).
    pub fn with_auth(cipher: Cipher, auth: Auth, keys: &crate::keys::DataKeys) -> DataChannel {
        let keys = match cipher.algorithm() {
            Some(alg) => Keys::Aead {
                send: Box::new(Sealer::new(alg, &keys.send)),
                receive: Box::new(Sealer::new(alg, &keys.receive)),
            },
            None => Keys::Cbc {
                auth,
                send: Box::new(CbcKey::new(cipher, auth, &keys.send)),
                receive: Box::new(CbcKey::new(cipher, auth, &keys.receive)),
            },
        };
        DataChannel {
            cipher,
            keys,
            next_id: 0,
            window: ReplayWindow::default(),
        }
    }

    pub fn cipher(&self) -> Cipher {
        self.cipher
    }

    /// Packets sent so far (the id of the last one).
    pub fn sent(&self) -> u32 {
        self.next_id
    }

    /// Appends a data packet carrying `payload` under `header` to `out`; `None` when the ids
    /// are used up (the key must be renegotiated long before).
    pub fn seal(&mut self, header: DataHeader, payload: &[u8], out: &mut Vec<u8>) -> Option<()> {
        self.next_id = self.next_id.checked_add(1)?;
        let id = self.next_id;
        let start = out.len();
        header.emit(out);
        let sealed = self.seal_after_header(header, id, start, payload, out);
        if sealed.is_none() {
            out.truncate(start);
        }
        sealed
    }

    fn seal_after_header(
        &self,
        header: DataHeader,
        id: u32,
        start: usize,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<()> {
        match &self.keys {
            Keys::Aead { send, .. } => {
                out.extend_from_slice(&id.to_be_bytes());
                let aad_end = out.len();
                out.extend_from_slice(&[0u8; TAG]);
                let body = out.len();
                out.extend_from_slice(payload);
                let (head, rest) = out[start..].split_at_mut(body - start);
                let aad = if header.peer_id.is_some() {
                    &head[..aad_end - start]
                } else {
                    &head[header.len()..aad_end - start]
                };
                let tag = send
                    .key
                    .seal_in_place_separate_tag(send.nonce(id), Aad::from(aad), rest)
                    .ok()?;
                out[aad_end..body].copy_from_slice(tag.as_ref());
            }
            Keys::Cbc { auth, send, .. } => {
                let mut iv = [0u8; 16];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut iv).ok()?;
                let mut body = Vec::with_capacity(payload.len() + 4 + 16);
                body.extend_from_slice(&id.to_be_bytes());
                body.extend_from_slice(payload);
                cbc_encrypt(&send.aes, &iv, &mut body)?;
                let mut ctx = ring::hmac::Context::with_key(&send.hmac);
                ctx.update(&iv);
                ctx.update(&body);
                let mac = ctx.sign();
                out.extend_from_slice(&mac.as_ref()[..auth.len()]);
                out.extend_from_slice(&iv);
                out.extend_from_slice(&body);
            }
        }
        Some(())
    }

    /// The payload of a data packet (`packet` whole, header included): checked, decrypted, its
    /// id marked as seen.
    pub fn open(&mut self, packet: &[u8]) -> Result<Vec<u8>, DataError> {
        let (header, hl) = DataHeader::parse(packet).ok_or(DataError::Truncated)?;
        let (id, payload) = match &self.keys {
            Keys::Aead { receive, .. } => {
                if packet.len() < hl + 4 + TAG {
                    return Err(DataError::Truncated);
                }
                let id = u32::from_be_bytes([
                    packet[hl],
                    packet[hl + 1],
                    packet[hl + 2],
                    packet[hl + 3],
                ]);
                if !self.window.check(id) {
                    return Err(DataError::Replayed);
                }
                let aad = if header.peer_id.is_some() {
                    &packet[..hl + 4]
                } else {
                    &packet[hl..hl + 4]
                };
                let tag = &packet[hl + 4..hl + 4 + TAG];
                let mut buf = Vec::with_capacity(packet.len() - hl - 4);
                buf.extend_from_slice(&packet[hl + 4 + TAG..]);
                buf.extend_from_slice(tag);
                let n = receive
                    .key
                    .open_in_place(receive.nonce(id), Aad::from(aad), &mut buf)
                    .map_err(|_| DataError::Forged)?
                    .len();
                buf.truncate(n);
                (id, buf)
            }
            Keys::Cbc { auth, receive, .. } => {
                let h = auth.len();
                let body = &packet[hl..];
                // the HMAC, the IV, at least one block
                if body.len() < h + 16 + 16 || !(body.len() - h - 16).is_multiple_of(16) {
                    return Err(DataError::Truncated);
                }
                ring::hmac::verify(&receive.hmac, &body[h..], &body[..h])
                    .map_err(|_| DataError::Forged)?;
                let iv = &body[h..h + 16];
                let mut data = body[h + 16..].to_vec();
                let n = cbc_decrypt(&receive.aes, iv, &mut data).ok_or(DataError::Forged)?;
                if n < 4 {
                    return Err(DataError::Truncated);
                }
                let id = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
                if !self.window.check(id) {
                    return Err(DataError::Replayed);
                }
                data.truncate(n);
                data.drain(..4);
                (id, data)
            }
        };
        self.window.mark(id);
        Ok(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex;
    use crate::keys::{DataKeys, DirectionKey};

    fn direction(cipher: &str, iv: &str) -> DirectionKey {
        let mut k = DirectionKey {
            cipher: [0; 64],
            hmac: [0; 64],
        };
        let c = hex(cipher);
        k.cipher[..c.len()].copy_from_slice(&c);
        k.hmac[..8].copy_from_slice(&hex(iv));
        k
    }

    #[test]
    fn a_captured_aes_256_gcm_ping_seals_and_opens_byte_for_byte() {
        // OpenVPN 2.6.14's server to its client, key id 0, peer-id 0, packet id 3
        let server_send = direction(
            "ffa22cd3cb7714943f00a3bf1a42a52014b312248dc259306c8854f6354bed79",
            "92372b21d9177abc",
        );
        let captured = hex(
            "48000000 00000003 5aa4d06d6d702c2fd2c550e73e9cf66a 4b709ea968b812997d40988f10d362da",
        );
        let keys = DataKeys {
            send: server_send.clone(),
            receive: server_send,
        };
        let mut ch = DataChannel::new(Cipher::Aes256Gcm, &keys);
        ch.next_id = 2;
        let mut out = Vec::new();
        let header = DataHeader {
            key_id: 0,
            peer_id: Some(0),
        };
        ch.seal(header, &PING, &mut out).unwrap();
        assert_eq!(out, captured);
        // opening the same (as if it came in under this key)
        assert_eq!(ch.open(&captured).unwrap(), PING.to_vec());
        assert_eq!(ch.open(&captured), Err(DataError::Replayed));
        let mut forged = captured.clone();
        forged[20] ^= 1;
        forged[7] = 9;
        assert_eq!(ch.open(&forged), Err(DataError::Forged));
        for cut in 0..captured.len() - 16 {
            assert!(ch.open(&captured[..cut]).is_err());
        }
    }

    #[test]
    fn a_captured_aes_128_cbc_sha256_ping_opens_and_a_cbc_channel_round_trips() {
        // OpenVPN 2.6.14's server to its client over TCP, key id 0, packet id 3
        let mut k = direction("05b5cb4648ff89c1f7c3322f372f1cd2", "0000000000000000");
        k.hmac[..32].copy_from_slice(&hex(
            "374e83793ddd9e71b3d06e8e0ba2ffe79cf5ad74a717379567ab4ef8ba6235bf",
        ));
        let captured = hex(
            "48000000 3770087f499f3fe52cc70752693d452be13c29f2e2319c4adc0c61dc258570d2 \
             25525b84b8b74391a6843e580858cc3f \
             f5b4e3956d246668fe934f1d30dd6e64dbe52ce9c025e1cfbeff4e152d22b701",
        );
        let keys = DataKeys {
            send: k.clone(),
            receive: k,
        };
        let mut ch = DataChannel::with_auth(Cipher::Aes128Cbc, Auth::Sha256, &keys);
        assert_eq!(ch.open(&captured).unwrap(), PING.to_vec());
        assert_eq!(ch.open(&captured), Err(DataError::Replayed));
        let mut forged = captured.clone();
        forged[40] ^= 1;
        let mut fresh = DataChannel::with_auth(Cipher::Aes128Cbc, Auth::Sha256, &keys);
        assert_eq!(fresh.open(&forged), Err(DataError::Forged));
        for cut in 0..captured.len() {
            assert!(fresh.open(&captured[..cut]).is_err(), "{cut}");
        }
        // SoftEther's own: AES-128-CBC with HMAC-SHA1, both ways
        let keys = DataKeys {
            send: direction("11", "0102030405060708"),
            receive: direction("22", "0807060504030201"),
        };
        let mirror = DataKeys {
            send: keys.receive.clone(),
            receive: keys.send.clone(),
        };
        let mut server = DataChannel::with_auth(Cipher::Aes128Cbc, Auth::Sha1, &keys);
        let mut client = DataChannel::with_auth(Cipher::Aes128Cbc, Auth::Sha1, &mirror);
        for len in [0usize, 1, 15, 16, 1400] {
            let payload = vec![0x5a; len];
            let mut p = Vec::new();
            server
                .seal(
                    DataHeader {
                        key_id: 0,
                        peer_id: None,
                    },
                    &payload,
                    &mut p,
                )
                .unwrap();
            assert_eq!(client.open(&p).unwrap(), payload, "{len}");
        }
        assert_eq!(
            Auth::from_options("V4,dev-type tun,auth SHA256,keysize 128"),
            Auth::Sha256
        );
        assert_eq!(Auth::from_options("V4,dev-type tun"), Auth::Sha1);
    }

    #[test]
    fn every_cipher_round_trips_with_v1_and_v2_headers() {
        let keys = DataKeys {
            send: direction("11", "0102030405060708"),
            receive: direction("22", "0807060504030201"),
        };
        let mirror = DataKeys {
            send: keys.receive.clone(),
            receive: keys.send.clone(),
        };
        for c in Cipher::ALL {
            let (mut server, mut client) =
                (DataChannel::new(c, &keys), DataChannel::new(c, &mirror));
            for peer_id in [None, Some(7)] {
                let mut p = Vec::new();
                let h = DataHeader { key_id: 1, peer_id };
                server.seal(h, b"an IP packet", &mut p).unwrap();
                assert_eq!(client.open(&p).unwrap(), b"an IP packet");
            }
        }
        assert_eq!(
            Cipher::choose(&["BF-CBC".into(), "CHACHA20-POLY1305".into()]),
            Some(Cipher::Chacha20Poly1305)
        );
    }

    #[test]
    fn the_replay_window_takes_late_packets_once_and_refuses_old_ones() {
        let mut w = ReplayWindow::default();
        assert!(!w.check(0));
        for id in [5, 3, 4, 1, 70, 10] {
            assert!(w.check(id), "{id}");
            w.mark(id);
            assert!(!w.check(id), "{id} again");
        }
        assert!(!w.check(5), "more than 64 behind 70");
        assert!(w.check(69));
    }
}
