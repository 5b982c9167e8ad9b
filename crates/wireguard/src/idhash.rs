//! Hashing for numbers the server hands out itself: peer numbers here, tunnel and session ids
//! in the engine. One multiplication per number instead of SipHash's rounds, on maps looked up
//! for every packet.
//!
//! Not for keys a client chooses (addresses, MACs): those keep std's keyed SipHash, so that
//! nobody can pick keys that all land in one bucket.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// See the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct IdHasher(u64);

/// An odd constant with well-mixed bits (2^64 divided by the golden ratio).
const K: u64 = 0x9e37_79b9_7f4a_7c15;

impl IdHasher {
    fn add(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(K);
    }
}

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u16(&mut self, n: u16) {
        self.add(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}

/// A map keyed by server-chosen numbers (see the module docs).
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hash};

    fn hash<T: Hash>(t: &T) -> u64 {
        BuildHasherDefault::<IdHasher>::default().hash_one(t)
    }

    #[test]
    fn consecutive_numbers_spread_over_the_buckets() {
        // the low bits pick hashbrown's bucket, the top 7 its tag: both must vary
        let mut low = std::collections::HashSet::new();
        let mut top = std::collections::HashSet::new();
        for n in 1000u32..1256 {
            let h = hash(&n);
            low.insert(h & 0xff);
            top.insert(h >> 57);
        }
        assert_eq!(low.len(), 256);
        assert!(top.len() > 100, "{} tags of 128", top.len());
        assert_ne!(hash(&(1u8, 2u32)), hash(&(2u8, 1u32)));
    }

    #[test]
    fn a_map_finds_what_it_holds() {
        let mut m: IdMap<u32, u32> = IdMap::default();
        for n in 0..10_000 {
            m.insert(n * 7, n);
        }
        assert!((0..10_000).all(|n| m.get(&(n * 7)) == Some(&n)));
        assert!(!m.contains_key(&1));
    }
}
