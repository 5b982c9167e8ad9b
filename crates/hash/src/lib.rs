//! Hashing for the maps the packet path looks up, cheaper than std's SipHash.
//!
//! - [`IdMap`]: numbers the server hands out itself (peer numbers, tunnel and session ids). One
//!   multiplication per number, no key: nobody outside chooses them.
//! - [`KeyedMap`]: keys a client chooses (MACs, IP addresses). A multiply-and-fold over the key
//!   with two random 64-bit words drawn for each map, the way hashbrown's default (foldhash)
//!   works. Not a cryptographic hash: it keeps a client who cannot see the words from picking
//!   keys that all land in one bucket, and the tables it serves are bounded in size besides.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

/// `Hasher` for a type with `add` (one 64-bit word in) and `done` (the hash): numbers go in
/// as one word each, bytes eight at a time with the chunk's length in the top bits, so that a
/// key and the same key with zeros after it differ.
macro_rules! word_hasher {
    ($t:ty) => {
        impl Hasher for $t {
            fn finish(&self) -> u64 {
                self.done()
            }

            fn write(&mut self, bytes: &[u8]) {
                for chunk in bytes.chunks(8) {
                    let mut word = [0u8; 8];
                    word[..chunk.len()].copy_from_slice(chunk);
                    self.add(u64::from_le_bytes(word) ^ ((chunk.len() as u64) << 59));
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
    };
}

/// The hasher of [`IdMap`].
#[derive(Clone, Copy, Debug, Default)]
pub struct IdHasher(u64);

/// An odd constant with well-mixed bits (2^64 divided by the golden ratio).
const K: u64 = 0x9e37_79b9_7f4a_7c15;

impl IdHasher {
    fn add(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(K);
    }

    fn done(&self) -> u64 {
        self.0
    }
}

word_hasher!(IdHasher);

/// A map keyed by server-chosen numbers (see the module docs).
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// A map keyed by what clients choose (see the module docs).
pub type KeyedMap<K, V> = HashMap<K, V, Keys>;

/// The two random words of one [`KeyedMap`], drawn when it is made.
#[derive(Clone, Copy, Debug)]
pub struct Keys {
    seed: u64,
    multiplier: u64,
}

impl Default for Keys {
    fn default() -> Self {
        // std's RandomState is seeded from the OS once per thread and then stepped for each
        // instance: hashing two constants with a fresh one gives two fresh words
        let random = std::collections::hash_map::RandomState::new();
        Keys {
            seed: random.hash_one(0x5eed_u64),
            // odd, so that multiplying by it loses no bit
            multiplier: random.hash_one(0x6d75_6c74_u64) | 1,
        }
    }
}

impl BuildHasher for Keys {
    type Hasher = KeyedHasher;

    fn build_hasher(&self) -> KeyedHasher {
        KeyedHasher {
            state: self.seed,
            multiplier: self.multiplier,
        }
    }
}

/// The hasher of [`KeyedMap`].
#[derive(Clone, Copy, Debug)]
pub struct KeyedHasher {
    state: u64,
    multiplier: u64,
}

/// The 128-bit product of `a` and `b`, its halves XORed: every bit of both reaches the middle
/// bits of the result.
fn fold(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

impl KeyedHasher {
    fn add(&mut self, word: u64) {
        self.state = fold(self.state ^ word, self.multiplier);
    }

    fn done(&self) -> u64 {
        // once more, so that the last word too is spread over the top bits (hashbrown's tags);
        // by another odd number than each word's
        fold(self.state, (self.multiplier ^ K) | 1)
    }
}

word_hasher!(KeyedHasher);

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::Hash;

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

    #[test]
    fn keyed_maps_hash_the_same_key_alike_and_each_map_with_its_own_words() {
        let (a, b) = (Keys::default(), Keys::default());
        let mac = [0x5e, 0, 0, 0, 0, 1u8];
        assert_eq!(a.hash_one(mac), a.hash_one(mac));
        assert_ne!(a.hash_one(mac), b.hash_one(mac));
        // a key and the same key with zeros after it are different keys
        assert_ne!(a.hash_one([1u8, 0]), a.hash_one([1u8, 0, 0]));
        assert_ne!(
            a.hash_one(std::net::Ipv4Addr::new(10, 0, 0, 1)),
            a.hash_one(std::net::Ipv4Addr::new(10, 0, 0, 2))
        );
    }

    #[test]
    fn neighbouring_addresses_spread_over_buckets_and_tags() {
        let keys = Keys::default();
        let mut low = std::collections::HashSet::new();
        let mut top = std::collections::HashSet::new();
        for n in 0..=255u8 {
            let h = keys.hash_one([0x5e, 0, 0, 0, 0, n]);
            low.insert(h & 0xff);
            top.insert(h >> 57);
        }
        // 256 keys in 256 buckets at random: about 162 distinct; far fewer means clustering
        assert!(low.len() > 130, "{} buckets of 256", low.len());
        assert!(top.len() > 90, "{} tags of 128", top.len());
    }

    #[test]
    fn a_keyed_map_finds_what_it_holds() {
        let mut m: KeyedMap<[u8; 6], u32> = KeyedMap::default();
        for n in 0..10_000u32 {
            let b = n.to_be_bytes();
            m.insert([2, 0, b[0], b[1], b[2], b[3]], n);
        }
        assert!((0..10_000u32).all(|n| {
            let b = n.to_be_bytes();
            m.get(&[2, 0, b[0], b[1], b[2], b[3]]) == Some(&n)
        }));
        assert!(!m.contains_key(&[3, 0, 0, 0, 0, 0]));
    }
}
