//! ESP (RFC 4303) for one direction of a child SA, transport mode, sans-IO.
//!
//! The packet handed to [`Inbound::open`] and written by [`Outbound::seal`] starts at the SPI:
//! whatever carried it (the IP header for protocol 50, the UDP header on port 4500) is the
//! caller's. Two transforms: AES-CBC (RFC 3602) with HMAC-SHA1-96 (RFC 2404) or HMAC-SHA-2
//! (RFC 4868), and AES-GCM with a 16 byte ICV (RFC 4106). 32-bit sequence numbers (no ESN), an
//! anti-replay window of [`REPLAY_WINDOW`] packets.
//!
//! The data path allocates nothing when opening (decryption is in place) and at most grows the
//! caller's buffer when sealing; key schedules and HMAC keys are prepared once per SA.

use std::fmt;

use aes::cipher::consts::U16;
use aes::cipher::generic_array::GenericArray;
use aes::cipher::inout::InOutBuf;
use aes::cipher::{
    BlockCipher, BlockDecryptMut, BlockEncrypt, BlockEncryptMut, BlockSizeUser, InnerIvInit,
    KeyInit,
};
use ring::aead;
use ring::hmac as ring_hmac;

use crate::sa::{EspCipher, EspInteg, EspKeys};

/// How far behind the highest sequence number seen a packet may arrive and still be accepted.
pub const REPLAY_WINDOW: u32 = 1024;

/// SPI and sequence number.
const HEADER_LEN: usize = 8;
const AES_BLOCK: usize = 16;
const GCM_IV_LEN: usize = 8;
const GCM_ICV_LEN: usize = 16;

/// Why a packet could not be opened or sealed, or an SA not set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EspError {
    #[error("ESP packet truncated, or its ciphertext is not a whole number of blocks")]
    Truncated,
    #[error("ESP packet for SPI {0:08x}, not this SA's")]
    WrongSpi(u32),
    #[error("ESP integrity check failed")]
    Authentication,
    #[error("ESP sequence number {0} replayed, zero, or older than the anti-replay window")]
    Replay(u32),
    #[error("ESP padding, pad length or trailer invalid")]
    BadPadding,
    #[error("ESP SA unusable: {0}")]
    BadKey(&'static str),
    #[error("ESP sequence numbers exhausted: the SA must be rekeyed")]
    SequenceExhausted,
    #[error("payload too long for one ESP packet")]
    PayloadTooLong,
}

/// The SPI of an ESP packet (its first 4 bytes); `None` if the packet is shorter than an ESP
/// header or the SPI is 0 (reserved; on port 4500 the non-ESP marker).
pub fn spi_of(packet: &[u8]) -> Option<u32> {
    if packet.len() < HEADER_LEN {
        return None;
    }
    let spi = u32::from_be_bytes([packet[0], packet[1], packet[2], packet[3]]);
    (spi != 0).then_some(spi)
}

/// AES with its expanded key, one of the three key sizes.
#[derive(Clone)]
enum Aes {
    A128(aes::Aes128),
    A192(aes::Aes192),
    A256(aes::Aes256),
}

impl Aes {
    fn new(key: &[u8]) -> Result<Aes, EspError> {
        let bad = |_| EspError::BadKey("AES key length");
        Ok(match key.len() {
            16 => Aes::A128(aes::Aes128::new_from_slice(key).map_err(bad)?),
            24 => Aes::A192(aes::Aes192::new_from_slice(key).map_err(bad)?),
            32 => Aes::A256(aes::Aes256::new_from_slice(key).map_err(bad)?),
            _ => return Err(EspError::BadKey("AES-CBC key must be 16, 24 or 32 bytes")),
        })
    }

    fn bits(&self) -> u32 {
        match self {
            Aes::A128(_) => 128,
            Aes::A192(_) => 192,
            Aes::A256(_) => 256,
        }
    }

    /// CBC-encrypts `buf` (a whole number of blocks) in place.
    fn cbc_encrypt(&self, iv: &[u8], buf: &mut [u8]) {
        match self {
            Aes::A128(c) => cbc_encrypt_with(c, iv, buf),
            Aes::A192(c) => cbc_encrypt_with(c, iv, buf),
            Aes::A256(c) => cbc_encrypt_with(c, iv, buf),
        }
    }

    /// CBC-decrypts `buf` (a whole number of blocks) in place.
    fn cbc_decrypt(&self, iv: &[u8], buf: &mut [u8]) {
        match self {
            Aes::A128(c) => cbc_decrypt_with(c, iv, buf),
            Aes::A192(c) => cbc_decrypt_with(c, iv, buf),
            Aes::A256(c) => cbc_decrypt_with(c, iv, buf),
        }
    }
}

fn cbc_encrypt_with<C>(cipher: &C, iv: &[u8], buf: &mut [u8])
where
    C: BlockCipher + BlockEncryptMut + BlockSizeUser<BlockSize = U16> + Clone,
{
    debug_assert_eq!(buf.len() % AES_BLOCK, 0);
    let mut mode = cbc::Encryptor::<C>::inner_iv_init(cipher.clone(), GenericArray::from_slice(iv));
    let (blocks, _) = InOutBuf::from(buf).into_chunks::<U16>();
    mode.encrypt_blocks_inout_mut(blocks);
}

fn cbc_decrypt_with<C>(cipher: &C, iv: &[u8], buf: &mut [u8])
where
    C: BlockCipher + BlockDecryptMut + BlockSizeUser<BlockSize = U16> + Clone,
{
    debug_assert_eq!(buf.len() % AES_BLOCK, 0);
    let mut mode = cbc::Decryptor::<C>::inner_iv_init(cipher.clone(), GenericArray::from_slice(iv));
    let (blocks, _) = InOutBuf::from(buf).into_chunks::<U16>();
    mode.decrypt_blocks_inout_mut(blocks);
}

/// The cipher of an SA, keys prepared. One per SA, built once and never moved on the data
/// path, so the variants' sizes do not matter and boxing would only add an indirection.
#[allow(clippy::large_enum_variant)]
enum Cipher {
    Cbc(Aes),
    Gcm {
        key: aead::LessSafeKey,
        salt: [u8; 4],
        bits: u32,
    },
}

impl Cipher {
    fn iv_len(&self) -> usize {
        match self {
            Cipher::Cbc(_) => AES_BLOCK,
            Cipher::Gcm { .. } => GCM_IV_LEN,
        }
    }

    /// What the plaintext (payload, padding, pad length, next header) is padded to.
    fn align(&self) -> usize {
        match self {
            Cipher::Cbc(_) => AES_BLOCK,
            Cipher::Gcm { .. } => 4,
        }
    }

    fn name(&self) -> String {
        match self {
            Cipher::Cbc(aes) => format!("aes{}-cbc", aes.bits()),
            Cipher::Gcm { bits, .. } => format!("aes{bits}-gcm16"),
        }
    }
}

/// HMAC key prepared, and how much of the tag goes on the wire.
struct Integ {
    key: MacKey,
    icv_len: usize,
    name: &'static str,
}

/// A prepared HMAC key. SHA-1 through RustCrypto's `sha1`, which uses the CPU's SHA
/// extensions where there are some (ring's SHA-1 is portable code, and was a fifth of the
/// server's CPU time on the L2TP/IPsec path); the SHA-2 family through ring.
enum MacKey {
    Sha1(hmac::Hmac<sha1::Sha1>),
    Ring(ring::hmac::Key),
}

/// A tag: the longest HMAC output (SHA-512's), with its length.
struct Tag {
    bytes: [u8; 64],
    len: usize,
}

impl Tag {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl MacKey {
    fn sign(&self, data: &[u8]) -> Tag {
        use hmac::Mac as _;
        let mut bytes = [0u8; 64];
        match self {
            MacKey::Sha1(k) => {
                let mut m = k.clone();
                m.update(data);
                bytes[..20].copy_from_slice(&m.finalize().into_bytes());
                Tag { bytes, len: 20 }
            }
            MacKey::Ring(k) => {
                let t = ring::hmac::sign(k, data);
                let len = t.as_ref().len();
                bytes[..len].copy_from_slice(t.as_ref());
                Tag { bytes, len }
            }
        }
    }
}

/// Prepares the keys of one direction of an SA.
fn prepare(keys: &EspKeys) -> Result<(Cipher, Option<Integ>), EspError> {
    let cipher = match &keys.cipher {
        EspCipher::AesCbc { key } => Cipher::Cbc(Aes::new(key)?),
        EspCipher::AesGcm16 { key, salt } => {
            let alg = match key.len() {
                16 => &aead::AES_128_GCM,
                32 => &aead::AES_256_GCM,
                24 => return Err(EspError::BadKey("AES-192-GCM is not supported")),
                _ => return Err(EspError::BadKey("AES-GCM key must be 16 or 32 bytes")),
            };
            let unbound = aead::UnboundKey::new(alg, key)
                .map_err(|_| EspError::BadKey("AES-GCM key rejected"))?;
            Cipher::Gcm {
                key: aead::LessSafeKey::new(unbound),
                salt: *salt,
                bits: 8 * key.len() as u32,
            }
        }
    };
    let integ = match &keys.integ {
        EspInteg::None => None,
        EspInteg::HmacSha1_96 { key } => Some((None, key, 20, 12, "hmac-sha1-96")),
        EspInteg::HmacSha256_128 { key } => {
            Some((Some(ring_hmac::HMAC_SHA256), key, 32, 16, "hmac-sha256-128"))
        }
        EspInteg::HmacSha384_192 { key } => {
            Some((Some(ring_hmac::HMAC_SHA384), key, 48, 24, "hmac-sha384-192"))
        }
        EspInteg::HmacSha512_256 { key } => {
            Some((Some(ring_hmac::HMAC_SHA512), key, 64, 32, "hmac-sha512-256"))
        }
    };
    let integ = match integ {
        None => None,
        Some((alg, key, key_len, icv_len, name)) => {
            if key.len() != key_len {
                return Err(EspError::BadKey("integrity key of the wrong length"));
            }
            let key = match alg {
                Some(alg) => MacKey::Ring(ring_hmac::Key::new(alg, key)),
                None => MacKey::Sha1(
                    <hmac::Hmac<sha1::Sha1> as hmac::Mac>::new_from_slice(key)
                        .map_err(|_| EspError::BadKey("integrity key rejected"))?,
                ),
            };
            Some(Integ { key, icv_len, name })
        }
    };
    match (&cipher, &integ) {
        (Cipher::Cbc(_), None) => Err(EspError::BadKey("AES-CBC needs an integrity algorithm")),
        (Cipher::Gcm { .. }, Some(_)) => Err(EspError::BadKey(
            "AES-GCM takes no separate integrity algorithm",
        )),
        _ => Ok((cipher, integ)),
    }
}

fn icv_len(cipher: &Cipher, integ: &Option<Integ>) -> usize {
    match (cipher, integ) {
        (Cipher::Gcm { .. }, _) => GCM_ICV_LEN,
        (Cipher::Cbc(_), Some(i)) => i.icv_len,
        (Cipher::Cbc(_), None) => 0,
    }
}

fn gcm_nonce(salt: &[u8; 4], iv: &[u8]) -> aead::Nonce {
    let mut n = [0u8; aead::NONCE_LEN];
    n[..4].copy_from_slice(salt);
    n[4..].copy_from_slice(iv);
    aead::Nonce::assume_unique_for_key(n)
}

/// Equal, in time that depends only on the lengths.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Splits a decrypted plaintext into its payload and next header, checking the padding
/// (RFC 4303 2.4: 1, 2, 3, ...) and the pad length.
fn strip_trailer(plain: &[u8]) -> Result<(u8, &[u8]), EspError> {
    let n = plain.len();
    if n < 2 {
        return Err(EspError::BadPadding);
    }
    let next_header = plain[n - 1];
    let pad = usize::from(plain[n - 2]);
    if pad + 2 > n {
        return Err(EspError::BadPadding);
    }
    let end = n - 2 - pad;
    let monotone = plain[end..n - 2]
        .iter()
        .enumerate()
        .all(|(i, &byte)| usize::from(byte) == i + 1);
    if !monotone {
        return Err(EspError::BadPadding);
    }
    Ok((next_header, &plain[..end]))
}

const WINDOW_WORDS: usize = 32;

/// Sliding anti-replay window (RFC 4303 3.4.3): a ring of bits indexed by sequence number,
/// words cleared as the top advances. It remembers up to `(WINDOW_WORDS - 1) * 64` numbers
/// back; [`REPLAY_WINDOW`] is what is accepted.
#[derive(Clone)]
struct ReplayWindow {
    top: u32,
    bits: [u64; WINDOW_WORDS],
}

impl ReplayWindow {
    fn new() -> ReplayWindow {
        ReplayWindow {
            top: 0,
            bits: [0; WINDOW_WORDS],
        }
    }

    fn slot(seq: u32) -> (usize, u64) {
        ((seq as usize >> 6) % WINDOW_WORDS, 1u64 << (seq & 63))
    }

    /// Would `seq` be accepted? Does not change the window.
    fn check(&self, seq: u32) -> bool {
        if seq == 0 {
            return false;
        }
        if seq > self.top {
            return true;
        }
        if self.top - seq >= REPLAY_WINDOW {
            return false;
        }
        let (word, bit) = ReplayWindow::slot(seq);
        self.bits[word] & bit == 0
    }

    /// Records `seq`, which passed [`check`](Self::check) and authentication.
    fn update(&mut self, seq: u32) {
        if seq > self.top {
            let current = (self.top >> 6) as usize;
            let new = (seq >> 6) as usize;
            for i in 1..=(new - current).min(WINDOW_WORDS) {
                self.bits[(current + i) % WINDOW_WORDS] = 0;
            }
            self.top = seq;
        }
        let (word, bit) = ReplayWindow::slot(seq);
        self.bits[word] |= bit;
    }
}

/// The receiving half of a child SA: authenticates, checks replay, decrypts.
pub struct Inbound {
    spi: u32,
    cipher: Cipher,
    integ: Option<Integ>,
    window: ReplayWindow,
    received: u64,
}

impl fmt::Debug for Inbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // never the keys
        f.debug_struct("Inbound")
            .field("spi", &format_args!("{:08x}", self.spi))
            .field("cipher", &self.cipher.name())
            .field("integ", &self.integ.as_ref().map(|i| i.name))
            .field("received", &self.received)
            .finish()
    }
}

impl Inbound {
    /// The SA's algorithms as people name them: `aes128-cbc/hmac-sha1-96`, `aes256-gcm16`.
    pub fn suite(&self) -> String {
        match &self.integ {
            Some(i) => format!("{}/{}", self.cipher.name(), i.name),
            None => self.cipher.name(),
        }
    }

    /// Prepares the SA; [`EspError::BadKey`] for key lengths that do not fit the algorithms,
    /// AES-192-GCM, AES-CBC without integrity, or AES-GCM with a separate integrity algorithm.
    pub fn new(keys: EspKeys) -> Result<Inbound, EspError> {
        let (cipher, integ) = prepare(&keys)?;
        Ok(Inbound {
            spi: keys.spi,
            cipher,
            integ,
            window: ReplayWindow::new(),
            received: 0,
        })
    }

    /// The SPI that packets of this SA carry.
    pub fn spi(&self) -> u32 {
        self.spi
    }

    /// Packets opened successfully.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The highest sequence number accepted so far (0 before the first packet).
    pub fn highest_seq(&self) -> u32 {
        self.window.top
    }

    /// Opens one ESP packet (starting at the SPI) in place: checks the SPI, the anti-replay
    /// window, the ICV, then decrypts and checks the padding. Returns the next header (17 for
    /// UDP; 59 is a dummy packet the caller should drop) and the payload, a slice of `packet`.
    /// The window only advances for packets that authenticate.
    /// After an error the contents of `packet` are unspecified (GCM may have decrypted it).
    pub fn open<'a>(&mut self, packet: &'a mut [u8]) -> Result<(u8, &'a [u8]), EspError> {
        if packet.len() < HEADER_LEN {
            return Err(EspError::Truncated);
        }
        let spi = u32::from_be_bytes([packet[0], packet[1], packet[2], packet[3]]);
        if spi != self.spi {
            return Err(EspError::WrongSpi(spi));
        }
        let iv_len = self.cipher.iv_len();
        let icv_len = icv_len(&self.cipher, &self.integ);
        let Some(ct_len) = packet.len().checked_sub(HEADER_LEN + iv_len + icv_len) else {
            return Err(EspError::Truncated);
        };
        let well_formed = match self.cipher {
            Cipher::Cbc(_) => ct_len >= AES_BLOCK && ct_len % AES_BLOCK == 0,
            Cipher::Gcm { .. } => ct_len >= 2,
        };
        if !well_formed {
            return Err(EspError::Truncated);
        }
        let seq = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        if !self.window.check(seq) {
            return Err(EspError::Replay(seq));
        }
        let ct_start = HEADER_LEN + iv_len;
        let ct_end = ct_start + ct_len;
        match &self.cipher {
            Cipher::Cbc(aes) => {
                let Some(integ) = &self.integ else {
                    return Err(EspError::BadKey("AES-CBC needs an integrity algorithm"));
                };
                let (signed, icv) = packet.split_at_mut(ct_end);
                let tag = integ.key.sign(signed);
                if !ct_eq(&tag.as_ref()[..integ.icv_len], icv) {
                    return Err(EspError::Authentication);
                }
                let (head, ciphertext) = signed.split_at_mut(ct_start);
                aes.cbc_decrypt(&head[HEADER_LEN..], ciphertext);
            }
            Cipher::Gcm { key, salt, .. } => {
                let (head, rest) = packet.split_at_mut(ct_start);
                let nonce = gcm_nonce(salt, &head[HEADER_LEN..]);
                key.open_in_place(nonce, aead::Aad::from(&head[..HEADER_LEN]), rest)
                    .map_err(|_| EspError::Authentication)?;
            }
        }
        self.window.update(seq);
        self.received += 1;
        let packet: &'a [u8] = packet;
        strip_trailer(&packet[ct_start..ct_end])
    }
}

/// The sending half of a child SA: numbers, pads, encrypts, signs.
pub struct Outbound {
    spi: u32,
    cipher: Cipher,
    integ: Option<Integ>,
    /// Makes CBC's IVs: AES-128 of the SPI and sequence number under a caller's secret.
    iv_maker: aes::Aes128,
    /// The last sequence number used; 0 before the first packet.
    seq: u32,
}

impl fmt::Debug for Outbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // never the keys
        f.debug_struct("Outbound")
            .field("spi", &format_args!("{:08x}", self.spi))
            .field("cipher", &self.cipher.name())
            .field("integ", &self.integ.as_ref().map(|i| i.name))
            .field("seq", &self.seq)
            .finish()
    }
}

impl Outbound {
    /// Prepares the SA (the same checks as [`Inbound::new`]). `iv_secret` must be random and
    /// secret: AES-CBC's IVs are AES-128 under it of the SPI and sequence number, which makes
    /// them unpredictable without an RNG per packet. AES-GCM's IVs are the sequence number.
    pub fn new(keys: EspKeys, iv_secret: [u8; 16]) -> Result<Outbound, EspError> {
        let (cipher, integ) = prepare(&keys)?;
        Ok(Outbound {
            spi: keys.spi,
            cipher,
            integ,
            iv_maker: aes::Aes128::new(&GenericArray::from(iv_secret)),
            seq: 0,
        })
    }

    /// The SPI that packets of this SA carry (the peer's).
    pub fn spi(&self) -> u32 {
        self.spi
    }

    /// Packets sealed so far, which is also the last sequence number used.
    pub fn sent(&self) -> u64 {
        u64::from(self.seq)
    }

    /// The most bytes [`seal`](Self::seal) adds to a payload: header, IV, padding, pad
    /// length, next header, ICV.
    pub fn overhead(&self) -> usize {
        HEADER_LEN
            + self.cipher.iv_len()
            + (self.cipher.align() - 1)
            + 2
            + icv_len(&self.cipher, &self.integ)
    }

    /// Appends one ESP packet, SPI | sequence number | IV | ciphertext | ICV, carrying
    /// `payload` with `next_header` (17 for UDP), to `out` (which is not cleared, so a caller
    /// may first put a header there). Sequence numbers start at 1;
    /// [`EspError::SequenceExhausted`] once 2^32 - 1 has been used.
    pub fn seal(
        &mut self,
        next_header: u8,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), EspError> {
        if self.seq == u32::MAX {
            return Err(EspError::SequenceExhausted);
        }
        let seq = self.seq + 1;
        let mut iv = [0u8; AES_BLOCK];
        let iv_len = match self.cipher {
            Cipher::Cbc(_) => {
                iv[..4].copy_from_slice(&self.spi.to_be_bytes());
                iv[12..].copy_from_slice(&seq.to_be_bytes());
                self.iv_maker
                    .encrypt_block(GenericArray::from_mut_slice(&mut iv));
                AES_BLOCK
            }
            Cipher::Gcm { .. } => {
                iv[..GCM_IV_LEN].copy_from_slice(&u64::from(seq).to_be_bytes());
                GCM_IV_LEN
            }
        };
        self.seal_with_iv(seq, &iv[..iv_len], next_header, payload, out)?;
        self.seq = seq;
        Ok(())
    }

    /// [`seal`](Self::seal) with the sequence number and IV given.
    fn seal_with_iv(
        &self,
        seq: u32,
        iv: &[u8],
        next_header: u8,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), EspError> {
        let align = self.cipher.align();
        let pad = (align - (payload.len() + 2) % align) % align;
        let ct_len = payload.len() + pad + 2;
        let icv_len = icv_len(&self.cipher, &self.integ);
        let start = out.len();
        out.reserve(HEADER_LEN + iv.len() + ct_len + icv_len);
        out.extend_from_slice(&self.spi.to_be_bytes());
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(iv);
        out.extend_from_slice(payload);
        out.extend((1..=pad).map(|i| i as u8));
        out.push(pad as u8);
        out.push(next_header);
        self.finish(start, out)
    }

    /// Encrypts and signs the packet that starts at `out[start]` and runs to the end of `out`,
    /// its header, IV and plaintext (with the trailer) written.
    fn finish(&self, start: usize, out: &mut Vec<u8>) -> Result<(), EspError> {
        let iv_len = self.cipher.iv_len();
        match &self.cipher {
            Cipher::Cbc(aes) => {
                let (head, ciphertext) = out[start..].split_at_mut(HEADER_LEN + iv_len);
                aes.cbc_encrypt(&head[HEADER_LEN..], ciphertext);
            }
            Cipher::Gcm { key, salt, .. } => {
                let (head, ciphertext) = out[start..].split_at_mut(HEADER_LEN + iv_len);
                let nonce = gcm_nonce(salt, &head[HEADER_LEN..]);
                let sealed = key.seal_in_place_separate_tag(
                    nonce,
                    aead::Aad::from(&head[..HEADER_LEN]),
                    ciphertext,
                );
                match sealed {
                    Ok(tag) => out.extend_from_slice(tag.as_ref()),
                    Err(_) => {
                        out.truncate(start);
                        return Err(EspError::PayloadTooLong);
                    }
                }
            }
        }
        if let Some(integ) = &self.integ {
            let tag = integ.key.sign(&out[start..]);
            out.extend_from_slice(&tag.as_ref()[..integ.icv_len]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        let s: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        assert_eq!(s.len() % 2, 0);
        s.chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    fn key(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| seed.wrapping_add((i as u8).wrapping_mul(7)))
            .collect()
    }

    const SPI: u32 = 0xc0ffee01;
    const IV_SECRET: [u8; 16] = [0x5a; 16];

    fn cbc(key_len: usize, integ: EspInteg) -> EspKeys {
        EspKeys {
            spi: SPI,
            cipher: EspCipher::AesCbc {
                key: key(key_len, 1),
            },
            integ,
        }
    }

    fn gcm(key_len: usize) -> EspKeys {
        EspKeys {
            spi: SPI,
            cipher: EspCipher::AesGcm16 {
                key: key(key_len, 3),
                salt: [9, 8, 7, 6],
            },
            integ: EspInteg::None,
        }
    }

    fn integs() -> Vec<EspInteg> {
        vec![
            EspInteg::HmacSha1_96 { key: key(20, 11) },
            EspInteg::HmacSha256_128 { key: key(32, 12) },
            EspInteg::HmacSha384_192 { key: key(48, 13) },
            EspInteg::HmacSha512_256 { key: key(64, 14) },
        ]
    }

    /// Every supported cipher and integrity combination.
    fn all_suites() -> Vec<EspKeys> {
        let mut suites = Vec::new();
        for key_len in [16, 24, 32] {
            for integ in integs() {
                suites.push(cbc(key_len, integ));
            }
        }
        suites.push(gcm(16));
        suites.push(gcm(32));
        suites
    }

    fn pair(keys: &EspKeys) -> (Outbound, Inbound) {
        (
            Outbound::new(keys.clone(), IV_SECRET).unwrap(),
            Inbound::new(keys.clone()).unwrap(),
        )
    }

    fn sealed(out: &mut Outbound, payload: &[u8]) -> Vec<u8> {
        let mut packet = Vec::new();
        out.seal(17, payload, &mut packet).unwrap();
        packet
    }

    #[test]
    fn round_trip_every_suite() {
        for keys in all_suites() {
            let (mut tx, mut rx) = pair(&keys);
            let mut sizes: Vec<usize> = (0..=48).collect();
            sizes.extend([255, 256, 1400, 1500]);
            for (n, &size) in sizes.iter().enumerate() {
                let payload: Vec<u8> = (0..size).map(|i| (i * 31 + n) as u8).collect();
                let mut packet = vec![0xaa, 0xbb];
                tx.seal(17, &payload, &mut packet).unwrap();
                assert_eq!(&packet[..2], [0xaa, 0xbb], "seal appends");
                let packet = &mut packet[2..];
                assert!(packet.len() <= payload.len() + tx.overhead(), "{keys:?}");
                assert_eq!(spi_of(packet), Some(SPI));
                assert_eq!(&packet[4..8], (n as u32 + 1).to_be_bytes());
                let (next_header, got) = rx.open(packet).unwrap();
                assert_eq!(next_header, 17);
                assert_eq!(got, &payload[..], "{keys:?} size {size}");
            }
            assert_eq!(tx.sent(), sizes.len() as u64);
            assert_eq!(rx.received(), sizes.len() as u64);
            assert_eq!(rx.highest_seq(), sizes.len() as u32);
        }
    }

    #[test]
    fn wire_layout() {
        // CBC: ciphertext a whole number of blocks; ICV truncated to the suite's length
        for (integ, icv) in integs().into_iter().zip([12, 16, 24, 32]) {
            let (mut tx, _) = pair(&cbc(16, integ));
            for size in [0, 13, 14, 15, 100] {
                let packet = sealed(&mut tx, &vec![1; size]);
                let ct = packet.len() - 8 - 16 - icv;
                assert_eq!(ct % 16, 0);
                assert!(ct >= size + 2 && ct < size + 2 + 16);
            }
        }
        // GCM: 8 byte IV (the sequence number), plaintext aligned to 4, 16 byte ICV
        let (mut tx, _) = pair(&gcm(16));
        for (n, size) in [0usize, 1, 2, 3, 4, 5, 98].into_iter().enumerate() {
            let packet = sealed(&mut tx, &vec![1; size]);
            assert_eq!(&packet[8..16], (n as u64 + 1).to_be_bytes());
            let ct = packet.len() - 8 - 8 - 16;
            assert_eq!(ct % 4, 0);
            assert!(ct >= size + 2 && ct < size + 2 + 4);
        }
    }

    #[test]
    fn cbc_ivs_are_not_predictable_counters() {
        let (mut tx, _) = pair(&cbc(16, integs().remove(0)));
        let a = sealed(&mut tx, b"x");
        let b = sealed(&mut tx, b"x");
        assert_ne!(a[8..24], b[8..24]);
        assert_ne!(a[24..40], b[24..40]);
        // another secret, other IVs
        let mut other = Outbound::new(cbc(16, integs().remove(0)), [1; 16]).unwrap();
        assert_ne!(sealed(&mut other, b"x")[8..24], a[8..24]);
    }

    /// draft-mcgrew-gcm-test-01, test case 2: AES-128-GCM, SPI 0000a5f8, sequence number 10.
    #[test]
    fn gcm_known_answer_aes128() {
        let keys = EspKeys {
            spi: 0x0000a5f8,
            cipher: EspCipher::AesGcm16 {
                key: unhex("feffe9928665731c6d6a8f9467308308"),
                salt: [0xca, 0xfe, 0xba, 0xbe],
            },
            integ: EspInteg::None,
        };
        let plaintext = unhex(
            "4500003e698f000080114dccc0a80102c0a801010a980035002a2343b2d00100
             0001000000000000037369700963796265726369747902646b00000100010001",
        );
        let packet = unhex(
            "0000a5f8 0000000a facedbaddecaf888
             deb22cd9b07c72c16e3a65beeb8df304a5a5897d33ae530f1ba76d5d114d2a5c
             3de81827c10e9a4f51330d0eec416642cfbb85a5b47e48a4ec3b9ba95d918bd1
             83b70d3aa8bc6ee4c309e9d85a41ad4a",
        );
        // the trailer: no padding, next header 1
        let (payload, trailer) = plaintext.split_at(plaintext.len() - 2);
        assert_eq!(trailer, [0, 1]);
        known_answer(keys, 10, payload, 1, &packet);
    }

    /// draft-mcgrew-gcm-test-01, test case 3: AES-256-GCM, SPI 4a2cbfe3, sequence number 2.
    #[test]
    fn gcm_known_answer_aes256() {
        let keys = EspKeys {
            spi: 0x4a2cbfe3,
            cipher: EspCipher::AesGcm16 {
                key: unhex("abbccddef00112233445566778899aababbccddef00112233445566778899aab"),
                salt: [0x11, 0x22, 0x33, 0x44],
            },
            integ: EspInteg::None,
        };
        let plaintext = unhex(
            "4500003069a6400080062690c0a801029389155e0a9e008b2dc57ee000000000
             7002400020bf0000020405b40101040201020201",
        );
        let packet = unhex(
            "4a2cbfe3 00000002 0102030405060708
             ff425c9b724599df7a3bcd510194e00d6a78107f1b0b1cbf06efae9d65a5d763
             748a637985771d347f0545659f14e99def842d8e
             b335f4eecfdbf831824b4c4915956c96",
        );
        // the trailer: padding 1 2, pad length 2, next header 1
        let (payload, trailer) = plaintext.split_at(plaintext.len() - 4);
        assert_eq!(trailer, [1, 2, 2, 1]);
        known_answer(keys, 2, payload, 1, &packet);
    }

    /// Opens `packet` to `payload`, and seals `payload` with the packet's IV to `packet`.
    fn known_answer(keys: EspKeys, seq: u32, payload: &[u8], next_header: u8, packet: &[u8]) {
        let iv_len = match keys.cipher {
            EspCipher::AesCbc { .. } => 16,
            EspCipher::AesGcm16 { .. } => 8,
        };
        let tx = Outbound::new(keys.clone(), IV_SECRET).unwrap();
        let mut out = Vec::new();
        tx.seal_with_iv(seq, &packet[8..8 + iv_len], next_header, payload, &mut out)
            .unwrap();
        assert_eq!(out, packet);

        let mut rx = Inbound::new(keys).unwrap();
        let mut copy = packet.to_vec();
        assert_eq!(rx.open(&mut copy), Ok((next_header, payload)));
    }

    /// RFC 3602 case #5 (AES-128-CBC, SPI 4321, sequence number 1, a transport mode ICMP
    /// echo), given there without integrity; here with an HMAC-SHA1-96 ICV computed apart.
    #[test]
    fn cbc_known_answer_rfc3602_case5() {
        let payload = unhex(
            "08000ebda70a00008e9c083db95b070008090a0b0c0d0e0f1011121314151617
             18191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637",
        );
        let unsigned = unhex(
            "00004321 00000001 e96e8c08ab465763fd098d45dd3ff893
             f663c25d325c18c6a9453e194e120849a4870b66cc6b9965330013b4898dc856
             a4699e523a55db080b59ec3a8e4b7e52775b07d1db34ed9c538ab50c551b874a
             a269add047ad2d5913ac19b7cfbad4a6",
        );
        cbc_known_answer(0x4321, 1, &payload, &unsigned);
    }

    /// RFC 3602 case #6: the same SA, sequence number 8, a short ICMP echo.
    #[test]
    fn cbc_known_answer_rfc3602_case6() {
        let payload = unhex("0800b5e8a80a0500a69c083d0b660e00777777777777777777777777");
        let unsigned = unhex(
            "00004321 00000008 69d08df7d203329db093fc4924e5bd80
             f51995881ec4e0c4488987ce742e8109689bb379d2d750c0d915dca346a89f75",
        );
        cbc_known_answer(0x4321, 8, &payload, &unsigned);
    }

    fn cbc_known_answer(spi: u32, seq: u32, payload: &[u8], unsigned: &[u8]) {
        let sha1_key = key(20, 0x40);
        let keys = EspKeys {
            spi,
            cipher: EspCipher::AesCbc {
                key: unhex("90d382b410eeba7ad938c46cec1a82bf"),
            },
            integ: EspInteg::HmacSha1_96 {
                key: sha1_key.clone(),
            },
        };
        let icv_key = ring_hmac::Key::new(ring_hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &sha1_key);
        let mut packet = unsigned.to_vec();
        packet.extend_from_slice(&ring_hmac::sign(&icv_key, unsigned).as_ref()[..12]);
        known_answer(keys, seq, payload, 1, &packet);
    }

    #[test]
    fn tampering_fails_authentication() {
        for keys in all_suites() {
            let (mut tx, mut rx) = pair(&keys);
            let packet = sealed(&mut tx, b"some L2TP frame");
            // every byte after the SPI matters, header, IV, ciphertext and ICV alike
            for at in 4..packet.len() {
                let mut bad = packet.clone();
                bad[at] ^= 0x01;
                let got = rx.open(&mut bad);
                if at < 8 {
                    // the sequence number: authentication, or replay for 0
                    assert!(matches!(
                        got,
                        Err(EspError::Authentication | EspError::Replay(_))
                    ));
                } else {
                    assert_eq!(got, Err(EspError::Authentication), "{keys:?} byte {at}");
                }
            }
            // nothing was accepted, and the genuine packet still is
            assert_eq!(rx.received(), 0);
            let mut good = packet.clone();
            assert_eq!(rx.open(&mut good).unwrap().1, b"some L2TP frame");
        }
    }

    #[test]
    fn wrong_keys_fail_authentication() {
        let (mut tx, _) = pair(&cbc(16, integs().remove(1)));
        let mut rx = Inbound::new(cbc(16, EspInteg::HmacSha256_128 { key: key(32, 99) })).unwrap();
        let mut packet = sealed(&mut tx, b"x");
        assert_eq!(rx.open(&mut packet), Err(EspError::Authentication));

        let (mut tx, _) = pair(&gcm(16));
        let mut other = gcm(16);
        other.cipher = EspCipher::AesGcm16 {
            key: key(16, 3),
            salt: [0; 4],
        };
        let mut rx = Inbound::new(other).unwrap();
        let mut packet = sealed(&mut tx, b"x");
        assert_eq!(rx.open(&mut packet), Err(EspError::Authentication));
    }

    #[test]
    fn replayed_packet() {
        for keys in [cbc(32, integs().remove(0)), gcm(32)] {
            let (mut tx, mut rx) = pair(&keys);
            let packet = sealed(&mut tx, b"once");
            let mut first = packet.clone();
            assert!(rx.open(&mut first).is_ok());
            let mut again = packet.clone();
            assert_eq!(rx.open(&mut again), Err(EspError::Replay(1)));
            assert_eq!(rx.received(), 1);
        }
    }

    #[test]
    fn reordered_within_window_and_too_old() {
        for keys in [cbc(16, integs().remove(0)), gcm(16)] {
            let (mut tx, mut rx) = pair(&keys);
            let packets: Vec<Vec<u8>> = (0..1100).map(|_| sealed(&mut tx, b"p")).collect();
            let open = |rx: &mut Inbound, seq: u32| {
                let mut p = packets[seq as usize - 1].clone();
                rx.open(&mut p).map(|(nh, payload)| (nh, payload.to_vec()))
            };
            assert!(open(&mut rx, 1100).is_ok());
            // within the window, in any order
            for seq in [1099, 1050, 1098, 500, 77, 1000] {
                assert!(open(&mut rx, seq).is_ok(), "{seq}");
            }
            // 1100 - 1024 = 76 is the first one behind the window
            assert_eq!(open(&mut rx, 76), Err(EspError::Replay(76)));
            assert_eq!(open(&mut rx, 1), Err(EspError::Replay(1)));
            // duplicates within the window
            assert_eq!(open(&mut rx, 500), Err(EspError::Replay(500)));
            assert_eq!(open(&mut rx, 1100), Err(EspError::Replay(1100)));
            assert_eq!(rx.received(), 7);
        }
    }

    #[test]
    fn sequence_number_zero_is_refused() {
        let (tx, mut rx) = pair(&gcm(16));
        let mut packet = Vec::new();
        tx.seal_with_iv(0, &[0; 8], 17, b"zero", &mut packet)
            .unwrap();
        assert_eq!(rx.open(&mut packet), Err(EspError::Replay(0)));
    }

    #[test]
    fn a_forged_high_sequence_number_does_not_move_the_window() {
        let (mut tx, mut rx) = pair(&cbc(16, integs().remove(2)));
        let first = sealed(&mut tx, b"1");
        let mut forged = sealed(&mut tx, b"2");
        forged[4..8].copy_from_slice(&100_000u32.to_be_bytes());
        assert_eq!(rx.open(&mut forged), Err(EspError::Authentication));
        assert_eq!(rx.highest_seq(), 0);
        let mut first = first;
        assert!(rx.open(&mut first).is_ok());
    }

    #[test]
    fn jumps_ahead() {
        let (tx, mut rx) = pair(&gcm(16));
        let at = |seq: u32| {
            let mut p = Vec::new();
            tx.seal_with_iv(seq, &u64::from(seq).to_be_bytes(), 17, b"j", &mut p)
                .unwrap();
            p
        };
        for (seq, ok) in [
            (5, true),
            (100_000, true),
            (99_000, true),
            (5, false),
            (98_976, false),
            (98_977, true),
            (u32::MAX, true),
            (u32::MAX - 1023, true),
            (u32::MAX - 1024, false),
            (u32::MAX, false),
        ] {
            assert_eq!(rx.open(&mut at(seq)).is_ok(), ok, "{seq}");
        }
    }

    /// The bitmap against a set of every sequence number seen.
    #[test]
    fn window_matches_a_model() {
        let mut window = ReplayWindow::new();
        let mut seen = std::collections::HashSet::new();
        let mut top = 0u32;
        let mut state = 0x2545f491u32;
        let mut accepted = 0;
        for _ in 0..200_000 {
            state = state.wrapping_mul(1664525).wrapping_add(1013904223);
            let r = state >> 8;
            // mostly near the top, sometimes far ahead, sometimes far behind
            let seq = match r % 16 {
                0 => top.saturating_add(r % 5000),
                1 => top.saturating_sub(r % 3000),
                _ => top.saturating_sub(r % 1100).saturating_add(r % 80),
            };
            let expected =
                seq != 0 && !seen.contains(&seq) && (seq > top || top - seq < REPLAY_WINDOW);
            assert_eq!(window.check(seq), expected, "seq {seq} top {top}");
            if expected {
                window.update(seq);
                seen.insert(seq);
                top = top.max(seq);
                accepted += 1;
            }
        }
        assert!(accepted > 10_000);
    }

    #[test]
    fn truncated() {
        for keys in all_suites() {
            let (mut tx, mut rx) = pair(&keys);
            let packet = sealed(&mut tx, b"");
            for len in 0..packet.len() {
                let mut short = packet[..len].to_vec();
                let got = rx.open(&mut short);
                // cut inside the ICV of a long enough packet: the ICV is wrong instead
                assert!(
                    matches!(got, Err(EspError::Truncated | EspError::Authentication)),
                    "{keys:?} {len}: {got:?}"
                );
                if len < packet.len() - 20 {
                    assert_eq!(got, Err(EspError::Truncated), "{keys:?} {len}");
                }
            }
        }
        // CBC: a ciphertext that is not a whole number of blocks
        let (mut tx, mut rx) = pair(&cbc(16, integs().remove(0)));
        let mut packet = sealed(&mut tx, &[0; 40]);
        packet.remove(30);
        assert_eq!(rx.open(&mut packet), Err(EspError::Truncated));
    }

    #[test]
    fn wrong_spi() {
        let (mut tx, mut rx) = pair(&gcm(16));
        let mut packet = sealed(&mut tx, b"x");
        packet[..4].copy_from_slice(&0x01020304u32.to_be_bytes());
        assert_eq!(rx.open(&mut packet), Err(EspError::WrongSpi(0x01020304)));
        assert_eq!(rx.spi(), SPI);
        assert_eq!(tx.spi(), SPI);
    }

    /// Seals a plaintext whose trailer the test writes itself, with a valid ICV.
    fn sealed_raw(tx: &Outbound, seq: u32, plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&tx.spi.to_be_bytes());
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&vec![0x33; tx.cipher.iv_len()]);
        out.extend_from_slice(plaintext);
        tx.finish(0, &mut out).unwrap();
        out
    }

    #[test]
    fn bad_padding() {
        for keys in [cbc(16, integs().remove(0)), gcm(16)] {
            let (tx, mut rx) = pair(&keys);
            let mut seq = 0;
            let mut try_open = |plaintext: &[u8]| {
                seq += 1;
                let mut packet = sealed_raw(&tx, seq, plaintext);
                rx.open(&mut packet).map(|(nh, p)| (nh, p.to_vec()))
            };
            let mut good = vec![0xab; 10];
            good.extend([1, 2, 3, 4, 4, 17]);
            assert_eq!(try_open(&good), Ok((17, vec![0xab; 10])));
            // padding bytes not 1, 2, 3, ...
            let mut bad = vec![0xab; 10];
            bad.extend([1, 2, 4, 4, 4, 17]);
            assert_eq!(try_open(&bad), Err(EspError::BadPadding));
            let mut zeros = vec![0xab; 10];
            zeros.extend([0, 0, 0, 0, 4, 17]);
            assert_eq!(try_open(&zeros), Err(EspError::BadPadding));
            // a pad length longer than the plaintext
            let mut long = vec![1; 14];
            long.extend([15, 17]);
            assert_eq!(try_open(&long), Err(EspError::BadPadding));
            // a pad length exactly the plaintext: an empty payload
            let mut all: Vec<u8> = (1..=14).collect();
            all.extend([14, 59]);
            assert_eq!(try_open(&all), Ok((59, vec![])));
            // the longest padding there is
            let mut most = vec![0xcd; 15];
            most.extend((1..=255).map(|i: u32| i as u8));
            most.extend([255, 17]);
            assert_eq!(try_open(&most), Ok((17, vec![0xcd; 15])));
            *most.last_mut().unwrap() = 4;
            most[15 + 254] = 0;
            assert_eq!(try_open(&most), Err(EspError::BadPadding));
        }
        // GCM carries plaintexts of any length; 1 byte has no room for the trailer
        let (tx, mut rx) = pair(&gcm(16));
        let mut packet = sealed_raw(&tx, 1, &[0]);
        assert_eq!(rx.open(&mut packet), Err(EspError::Truncated));
        let mut packet = sealed_raw(&tx, 2, &[0, 4]);
        assert_eq!(rx.open(&mut packet), Ok((4, &[][..])));
    }

    #[test]
    fn sequence_exhausted() {
        let (mut tx, mut rx) = pair(&cbc(16, integs().remove(0)));
        tx.seq = u32::MAX - 1;
        let mut last = sealed(&mut tx, b"last");
        assert_eq!(&last[4..8], [0xff; 4]);
        let mut out = vec![1, 2];
        assert_eq!(
            tx.seal(17, b"one too many", &mut out),
            Err(EspError::SequenceExhausted)
        );
        assert_eq!(out, [1, 2]);
        assert_eq!(tx.sent(), u64::from(u32::MAX));
        assert_eq!(rx.open(&mut last).unwrap().1, b"last");
    }

    #[test]
    fn bad_keys() {
        let bad = |keys: EspKeys| {
            let inbound = Inbound::new(keys.clone()).map(|_| ());
            let outbound = Outbound::new(keys, IV_SECRET).map(|_| ());
            assert_eq!(inbound, outbound);
            match inbound {
                Err(EspError::BadKey(why)) => why,
                other => panic!("{other:?}"),
            }
        };
        let sha1 = || EspInteg::HmacSha1_96 { key: key(20, 0) };
        for len in [0, 8, 15, 17, 20, 33] {
            bad(cbc(len, sha1()));
        }
        assert!(bad(gcm(24)).contains("AES-192-GCM"));
        for len in [0, 12, 20, 33] {
            bad(gcm(len));
        }
        assert!(bad(cbc(16, EspInteg::None)).contains("integrity"));
        let mut gcm_with_hmac = gcm(16);
        gcm_with_hmac.integ = sha1();
        bad(gcm_with_hmac);
        for integ in [
            EspInteg::HmacSha1_96 { key: key(16, 0) },
            EspInteg::HmacSha256_128 { key: key(20, 0) },
            EspInteg::HmacSha384_192 { key: key(32, 0) },
            EspInteg::HmacSha512_256 { key: key(48, 0) },
        ] {
            bad(cbc(16, integ));
        }
        // the messages say what is wrong
        let e = Inbound::new(gcm(24)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ESP SA unusable: AES-192-GCM is not supported"
        );
    }

    #[test]
    fn debug_shows_no_keys() {
        let keys = cbc(
            16,
            EspInteg::HmacSha256_128 {
                key: vec![0xab; 32],
            },
        );
        let (tx, rx) = pair(&keys);
        for text in [format!("{tx:?}"), format!("{rx:?}")] {
            assert!(text.contains("c0ffee01"), "{text}");
            assert!(text.contains("aes128-cbc") && text.contains("hmac-sha256-128"));
            assert!(!text.contains("171") && !text.to_lowercase().contains("ab, "));
        }
        let (tx, _) = pair(&gcm(32));
        assert!(format!("{tx:?}").contains("aes256-gcm16"));
    }

    #[test]
    fn spi_of_packets() {
        assert_eq!(spi_of(&[0, 0, 0x43, 0x21, 0, 0, 0, 1]), Some(0x4321));
        assert_eq!(spi_of(&[0, 0, 0x43, 0x21, 0, 0, 0]), None);
        assert_eq!(spi_of(&[0, 0, 0, 0, 0, 0, 0, 1]), None);
        assert_eq!(spi_of(&[]), None);
    }

    #[test]
    fn overhead_is_an_upper_bound() {
        for keys in all_suites() {
            let (mut tx, _) = pair(&keys);
            let worst = (0..32)
                .map(|size| sealed(&mut tx, &vec![0; size]).len() - size)
                .max()
                .unwrap();
            assert_eq!(worst, tx.overhead(), "{keys:?}");
        }
    }
}
