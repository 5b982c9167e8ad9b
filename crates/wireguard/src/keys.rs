//! Curve25519 keys as WireGuard writes them: 32 raw bytes, shown as standard base64.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use boringtun::x25519::{PublicKey, StaticSecret};
use rand_core::OsRng;

/// A 32-byte Curve25519 key (private, public or preshared).
pub type Key = [u8; 32];

/// Why a text key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text is not standard base64.
    #[error("key is not valid base64")]
    Base64,
    /// The text decodes, but not to 32 bytes.
    #[error("key decodes to {0} bytes, expected 32")]
    Length(usize),
}

/// A fresh private key, clamped the way `wg genkey` prints it.
pub fn generate_private_key() -> Key {
    let mut key = StaticSecret::random_from_rng(OsRng).to_bytes();
    // Clamping is what X25519 does to the scalar anyway; doing it here makes the stored text
    // identical to what wg-quick users are used to.
    key[0] &= 248;
    key[31] &= 127;
    key[31] |= 64;
    key
}

/// The public key that belongs to `private` (what `wg pubkey` prints).
pub fn public_key_of(private: &Key) -> Key {
    PublicKey::from(&StaticSecret::from(*private)).to_bytes()
}

/// Parses a key written as base64 (surrounding whitespace is ignored).
pub fn key_from_base64(s: &str) -> Result<Key, KeyError> {
    let bytes = STANDARD.decode(s.trim()).map_err(|_| KeyError::Base64)?;
    Key::try_from(bytes.as_slice()).map_err(|_| KeyError::Length(bytes.len()))
}

/// Writes a key as standard base64 (44 characters).
pub fn key_to_base64(k: &Key) -> String {
    STANDARD.encode(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Produced with `echo <private> | wg pubkey`.
    const PRIVATE: &str = "oG8xtz2s3Dc6geSOzmpqo7tBbEJ2FKISPDt09HSopGA=";
    const PUBLIC: &str = "kYi8vN82dtkHOH6d2Orlj4fHU9cfQ0G2U59QFi/H4FQ=";

    #[test]
    fn known_vector_matches_wg_pubkey() {
        let private = key_from_base64(PRIVATE).unwrap();
        assert_eq!(key_to_base64(&private), PRIVATE);
        assert_eq!(key_to_base64(&public_key_of(&private)), PUBLIC);
    }

    #[test]
    fn round_trip_and_whitespace() {
        let k = generate_private_key();
        let text = key_to_base64(&k);
        assert_eq!(text.len(), 44);
        assert_eq!(key_from_base64(&format!(" {text}\n")).unwrap(), k);
    }

    #[test]
    fn generated_keys_are_clamped_and_distinct() {
        let a = generate_private_key();
        let b = generate_private_key();
        assert_ne!(a, b);
        assert_eq!(a[0] & 7, 0);
        assert_eq!(a[31] & 0xc0, 0x40);
    }

    #[test]
    fn bad_text_is_refused() {
        assert_eq!(key_from_base64("not base64!"), Err(KeyError::Base64));
        assert_eq!(key_from_base64("AAAA"), Err(KeyError::Length(3)));
    }
}
