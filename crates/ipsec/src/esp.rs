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
use ring::{aead, hmac};

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

/// The cipher of an SA, keys prepared.
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
    key: hmac::Key,
    icv_len: usize,
    name: &'static str,
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
        EspInteg::HmacSha1_96 { key } => Some((
            hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            key,
            20,
            12,
            "hmac-sha1-96",
        )),
        EspInteg::HmacSha256_128 { key } => {
            Some((hmac::HMAC_SHA256, key, 32, 16, "hmac-sha256-128"))
        }
        EspInteg::HmacSha384_192 { key } => {
            Some((hmac::HMAC_SHA384, key, 48, 24, "hmac-sha384-192"))
        }
        EspInteg::HmacSha512_256 { key } => {
            Some((hmac::HMAC_SHA512, key, 64, 32, "hmac-sha512-256"))
        }
    };
    let integ = match integ {
        None => None,
        Some((alg, key, key_len, icv_len, name)) => {
            if key.len() != key_len {
                return Err(EspError::BadKey("integrity key of the wrong length"));
            }
            Some(Integ {
                key: hmac::Key::new(alg, key),
                icv_len,
                name,
            })
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
        .zip(1u8..)
        .all(|(&byte, want)| byte == want);
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
                let tag = hmac::sign(&integ.key, signed);
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
        let ct_start = start + HEADER_LEN + iv.len();
        match &self.cipher {
            Cipher::Cbc(aes) => aes.cbc_encrypt(iv, &mut out[ct_start..]),
            Cipher::Gcm { key, salt, .. } => {
                let (head, ciphertext) = out[start..].split_at_mut(HEADER_LEN + iv.len());
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
            let tag = hmac::sign(&integ.key, &out[start..]);
            out.extend_from_slice(&tag.as_ref()[..integ.icv_len]);
        }
        Ok(())
    }
}
