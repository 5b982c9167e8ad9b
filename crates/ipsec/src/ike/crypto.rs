//! IKEv1's primitives: the negotiated hash and its HMAC (the prf), the MODP Diffie-Hellman
//! groups, AES-CBC over whole blocks, and RFC 2409's key expansion.

use aes::cipher::{generic_array::GenericArray, BlockDecrypt, BlockEncrypt, KeyInit};
use crypto_bigint::modular::runtime_mod::{DynResidue, DynResidueParams};
use crypto_bigint::{U2048, U256};
use ring::{digest, hmac};

/// Bytes that must not outlive their use nor appear in a Debug print.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Secret(pub(crate) Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.iter_mut().for_each(|b| *b = 0);
    }
}

impl std::ops::Deref for Secret {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// Constant-time equality of two byte strings (their lengths are not secret).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The phase-1 hash algorithm (RFC 2409 appendix A, attribute 2); its HMAC is the prf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HashAlg {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    pub(crate) fn from_attr(v: u64) -> Option<HashAlg> {
        Some(match v {
            2 => HashAlg::Sha1,
            4 => HashAlg::Sha256,
            5 => HashAlg::Sha384,
            6 => HashAlg::Sha512,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            HashAlg::Sha1 => "SHA1",
            HashAlg::Sha256 => "SHA2-256",
            HashAlg::Sha384 => "SHA2-384",
            HashAlg::Sha512 => "SHA2-512",
        }
    }

    fn hmac_alg(self) -> hmac::Algorithm {
        match self {
            HashAlg::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            HashAlg::Sha256 => hmac::HMAC_SHA256,
            HashAlg::Sha384 => hmac::HMAC_SHA384,
            HashAlg::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn digest_alg(self) -> &'static digest::Algorithm {
        match self {
            HashAlg::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            HashAlg::Sha256 => &digest::SHA256,
            HashAlg::Sha384 => &digest::SHA384,
            HashAlg::Sha512 => &digest::SHA512,
        }
    }

    /// prf(key, parts...) = HMAC-hash(key, concatenation of parts).
    pub(crate) fn prf(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        let key = hmac::Key::new(self.hmac_alg(), key);
        let mut ctx = hmac::Context::with_key(&key);
        for p in parts {
            ctx.update(p);
        }
        ctx.sign().as_ref().to_vec()
    }

    /// hash(parts...), for the IVs and NAT-D.
    pub(crate) fn hash(self, parts: &[&[u8]]) -> Vec<u8> {
        let mut ctx = digest::Context::new(self.digest_alg());
        for p in parts {
            ctx.update(p);
        }
        ctx.finish().as_ref().to_vec()
    }

    /// RFC 2409's expansion: `seed` itself when long enough, else K1 | K2 | ... with
    /// K1 = prf(key, first), Kn = prf(key, Kn-1 | rest), truncated to `len`. For the phase-1
    /// cipher key (appendix B) `key` is SKEYID_e, `first` a single zero byte and `rest` empty;
    /// for KEYMAT (section 5.5) `first` and `rest` are both the seed.
    pub(crate) fn expand(self, key: &[u8], first: &[&[u8]], rest: &[&[u8]], len: usize) -> Vec<u8> {
        let mut out = self.prf(key, first);
        let mut last = out.clone();
        while out.len() < len {
            let mut parts: Vec<&[u8]> = vec![&last];
            parts.extend_from_slice(rest);
            let next = self.prf(key, &parts);
            out.extend_from_slice(&next);
            last = next;
        }
        last.iter_mut().for_each(|b| *b = 0);
        out.truncate(len);
        out
    }
}

/// The phase-1 cipher key from SKEYID_e (RFC 2409 appendix B): SKEYID_e truncated when it is
/// long enough, else K1 | K2 | ... with K1 = prf(SKEYID_e, 0), Kn = prf(SKEYID_e, Kn-1).
pub(crate) fn phase1_key(hash: HashAlg, skeyid_e: &[u8], len: usize) -> Secret {
    if skeyid_e.len() >= len {
        Secret(skeyid_e[..len].to_vec())
    } else {
        Secret(hash.expand(skeyid_e, &[&[0]], &[], len))
    }
}

/// A MODP Diffie-Hellman group (generator 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Group {
    /// Group 2, RFC 2409 section 6.2.
    Modp1024,
    /// Group 5, RFC 3526 section 2.
    Modp1536,
    /// Group 14, RFC 3526 section 3.
    Modp2048,
}

const MODP_PREFIX: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1\
29024E088A67CC74020BBEA63B139B22514A08798E3404DD\
EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245\
E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED";
const MODP_1024_TAIL: &str = "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF";
const MODP_1536_TAIL: &str = "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3D\
C2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F\
83655D23DCA3AD961C62F356208552BB9ED529077096966D\
670C354E4ABC9804F1746C08CA237327FFFFFFFFFFFFFFFF";
const MODP_2048_TAIL: &str = "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3D\
C2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F\
83655D23DCA3AD961C62F356208552BB9ED529077096966D\
670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B\
E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9\
DE2BCBF6955817183995497CEA956AE515D2261898FA0510\
15728E5A8AACAA68FFFFFFFFFFFFFFFF";

fn hex_nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'A'..=b'F' => c - b'A' + 10,
        _ => c - b'a' + 10,
    }
}

/// 256 bytes, big-endian, left-padded: what U2048 reads.
fn pad256(bytes: &[u8]) -> [u8; 256] {
    let mut out = [0u8; 256];
    out[256 - bytes.len()..].copy_from_slice(bytes);
    out
}

fn to_bytes(v: &U2048, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    for w in v.as_words().iter().rev() {
        out.extend_from_slice(&w.to_be_bytes());
    }
    out.split_off(out.len() - len)
}

impl Group {
    pub(crate) fn from_id(id: u64) -> Option<Group> {
        Some(match id {
            2 => Group::Modp1024,
            5 => Group::Modp1536,
            14 => Group::Modp2048,
            _ => return None,
        })
    }

    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn id(self) -> u16 {
        match self {
            Group::Modp1024 => 2,
            Group::Modp1536 => 5,
            Group::Modp2048 => 14,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Group::Modp1024 => "MODP-1024",
            Group::Modp1536 => "MODP-1536",
            Group::Modp2048 => "MODP-2048",
        }
    }

    /// The public values' and the shared secret's length in bytes.
    pub(crate) fn len(self) -> usize {
        match self {
            Group::Modp1024 => 128,
            Group::Modp1536 => 192,
            Group::Modp2048 => 256,
        }
    }

    /// The prime, big-endian, `len()` bytes.
    pub(crate) fn prime(self) -> Vec<u8> {
        let tail = match self {
            Group::Modp1024 => MODP_1024_TAIL,
            Group::Modp1536 => MODP_1536_TAIL,
            Group::Modp2048 => MODP_2048_TAIL,
        };
        let hex: Vec<u8> = MODP_PREFIX.bytes().chain(tail.bytes()).collect();
        hex.chunks(2)
            .map(|c| hex_nibble(c[0]) << 4 | hex_nibble(c[1]))
            .collect()
    }

    fn params(self) -> DynResidueParams<32> {
        DynResidueParams::new(&U2048::from_be_slice(&pad256(&self.prime())))
    }

    /// g^x mod p, left-padded to `len()` bytes. The exponent is 256 bits: twice the strength
    /// of the largest group here. Constant time in `secret`.
    pub(crate) fn public(self, secret: &[u8; 32]) -> Vec<u8> {
        let g = DynResidue::new(&U2048::from_u8(2), self.params());
        let x = U256::from_be_slice(secret);
        to_bytes(&g.pow(&x).retrieve(), self.len())
    }

    /// peer^x mod p, left-padded to `len()` bytes; None when the peer's value is not in
    /// 1 < y < p-1 or longer than the prime.
    pub(crate) fn shared(self, secret: &[u8; 32], peer: &[u8]) -> Option<Secret> {
        if peer.is_empty() || peer.len() > self.len() {
            return None;
        }
        let params = self.params();
        let y = U2048::from_be_slice(&pad256(peer));
        let p_minus_1 = params.modulus().wrapping_sub(&U2048::ONE);
        if y <= U2048::ONE || y >= p_minus_1 {
            return None;
        }
        let x = U256::from_be_slice(secret);
        let z = DynResidue::new(&y, params).pow(&x).retrieve();
        Some(Secret(to_bytes(&z, self.len())))
    }
}

/// AES with a 16, 24 or 32 byte key, in CBC mode over whole blocks (IKE's own padding is the
/// caller's).
pub(crate) enum Aes {
    A128(aes::Aes128),
    A192(aes::Aes192),
    A256(aes::Aes256),
}

impl Aes {
    pub(crate) fn new(key: &[u8]) -> Option<Aes> {
        Some(match key.len() {
            16 => Aes::A128(aes::Aes128::new_from_slice(key).ok()?),
            24 => Aes::A192(aes::Aes192::new_from_slice(key).ok()?),
            32 => Aes::A256(aes::Aes256::new_from_slice(key).ok()?),
            _ => return None,
        })
    }

    fn encrypt_block(&self, block: &mut [u8]) {
        let b = GenericArray::from_mut_slice(block);
        match self {
            Aes::A128(c) => c.encrypt_block(b),
            Aes::A192(c) => c.encrypt_block(b),
            Aes::A256(c) => c.encrypt_block(b),
        }
    }

    fn decrypt_block(&self, block: &mut [u8]) {
        let b = GenericArray::from_mut_slice(block);
        match self {
            Aes::A128(c) => c.decrypt_block(b),
            Aes::A192(c) => c.decrypt_block(b),
            Aes::A256(c) => c.decrypt_block(b),
        }
    }

    /// Encrypts `data` (a multiple of 16 bytes) in place; returns the last ciphertext block,
    /// the next message's IV.
    pub(crate) fn cbc_encrypt(&self, iv: &[u8; 16], data: &mut [u8]) -> [u8; 16] {
        let mut prev = *iv;
        for block in data.chunks_exact_mut(16) {
            block.iter_mut().zip(prev).for_each(|(b, p)| *b ^= p);
            self.encrypt_block(block);
            prev.copy_from_slice(block);
        }
        prev
    }

    /// Decrypts `data` (a multiple of 16 bytes) in place; returns the last ciphertext block.
    pub(crate) fn cbc_decrypt(&self, iv: &[u8; 16], data: &mut [u8]) -> [u8; 16] {
        let mut prev = *iv;
        for block in data.chunks_exact_mut(16) {
            let mut this = [0u8; 16];
            this.copy_from_slice(block);
            self.decrypt_block(block);
            block.iter_mut().zip(prev).for_each(|(b, p)| *b ^= p);
            prev = this;
        }
        prev
    }
}

/// The first `16` bytes of `hash(parts)`: the IVs of RFC 2409 appendix B.
pub(crate) fn iv_from(hash: HashAlg, parts: &[&[u8]]) -> [u8; 16] {
    let h = hash.hash(parts);
    let mut iv = [0u8; 16];
    iv.copy_from_slice(&h[..16]);
    iv
}
