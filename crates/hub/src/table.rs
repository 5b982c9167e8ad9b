//! An ageing key -> value table: the shape shared by the MAC table and the IP table.
//!
//! Entries older than `expire` (measured from their last update) are invisible to lookups even
//! before [`AgeingTable::expire`] removes them, so behaviour never depends on how often the caller
//! ticks. When the table is full, a new key first evicts expired entries and then the least
//! recently updated one, so a flood of fake addresses cannot lock real stations out.

use std::hash::Hash;
use std::time::{Duration, Instant};

use etherhub_hash::KeyedMap;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Slot<V> {
    pub value: V,
    pub created: Instant,
    pub updated: Instant,
}

#[derive(Debug)]
pub(crate) struct AgeingTable<K, V> {
    entries: KeyedMap<K, Slot<V>>,
    capacity: usize,
    expire: Duration,
}

impl<K: Copy + Eq + Hash + Ord, V: Clone + PartialEq> AgeingTable<K, V> {
    pub fn new(capacity: usize, expire: Duration) -> Self {
        Self {
            entries: KeyedMap::default(),
            capacity: capacity.max(1),
            expire,
        }
    }

    fn is_live(&self, slot: &Slot<V>, now: Instant) -> bool {
        now.saturating_duration_since(slot.updated) < self.expire
    }

    /// Insert or refresh `key`. A refreshed entry keeps its creation time (also when its value,
    /// e.g. the session, changes: SoftEther moves the entry rather than recreating it).
    pub fn learn(&mut self, key: K, value: V, now: Instant) {
        if let Some(slot) = self.entries.get_mut(&key) {
            if now.saturating_duration_since(slot.updated) < self.expire {
                // the same station again within one batch (one `now`) changes nothing: the
                // entry is left unwritten, so that other threads' copies of it stay valid
                if slot.updated != now || slot.value != value {
                    slot.value = value;
                    slot.updated = now;
                }
                return;
            }
            // An expired entry that was not aged out yet counts as new.
            *slot = Slot {
                value,
                created: now,
                updated: now,
            };
            return;
        }
        if self.entries.len() >= self.capacity {
            self.expire(now);
        }
        if self.entries.len() >= self.capacity {
            // Linear scan, only when full: the oldest update goes, ties broken by the smaller key.
            let victim = self
                .entries
                .iter()
                .min_by(|a, b| a.1.updated.cmp(&b.1.updated).then(a.0.cmp(b.0)))
                .map(|(k, _)| *k);
            if let Some(victim) = victim {
                self.entries.remove(&victim);
            }
        }
        self.entries.insert(
            key,
            Slot {
                value,
                created: now,
                updated: now,
            },
        );
    }

    pub fn get(&self, key: &K, now: Instant) -> Option<&V> {
        self.entries
            .get(key)
            .filter(|slot| self.is_live(slot, now))
            .map(|slot| &slot.value)
    }

    /// A live entry with its times.
    pub fn slot(&self, key: &K, now: Instant) -> Option<&Slot<V>> {
        self.entries.get(key).filter(|slot| self.is_live(slot, now))
    }

    /// Remove entries not updated within the expiry time; returns how many went.
    pub fn expire(&mut self, now: Instant) -> usize {
        let before = self.entries.len();
        let expire = self.expire;
        self.entries
            .retain(|_, slot| now.saturating_duration_since(slot.updated) < expire);
        before - self.entries.len()
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) {
        self.entries.retain(|k, slot| keep(k, &slot.value));
    }

    /// Live entries, sorted by key.
    pub fn live(&self, now: Instant) -> Vec<(K, Slot<V>)> {
        let mut v: Vec<(K, Slot<V>)> = self
            .entries
            .iter()
            .filter(|(_, slot)| self.is_live(slot, now))
            .map(|(k, slot)| (*k, slot.clone()))
            .collect();
        v.sort_by_key(|e| e.0);
        v
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slow, obviously-correct model: a list scanned from end to end.
    struct Reference {
        rows: Vec<([u8; 6], u32, Instant, Instant)>,
        capacity: usize,
        expire: Duration,
    }

    impl Reference {
        fn live(&self, row: &([u8; 6], u32, Instant, Instant), now: Instant) -> bool {
            now.saturating_duration_since(row.3) < self.expire
        }
        fn learn(&mut self, mac: [u8; 6], session: u32, now: Instant) {
            let expire = self.expire;
            if let Some(row) = self.rows.iter_mut().find(|r| r.0 == mac) {
                if now.saturating_duration_since(row.3) < expire {
                    row.1 = session;
                    row.3 = now;
                } else {
                    *row = (mac, session, now, now);
                }
                return;
            }
            if self.rows.len() >= self.capacity {
                self.rows
                    .retain(|r| now.saturating_duration_since(r.3) < expire);
            }
            if self.rows.len() >= self.capacity {
                let mut best = 0;
                for (i, r) in self.rows.iter().enumerate() {
                    let b = &self.rows[best];
                    if r.3 < b.3 || (r.3 == b.3 && r.0 < b.0) {
                        best = i;
                    }
                }
                self.rows.remove(best);
            }
            self.rows.push((mac, session, now, now));
        }
        fn get(&self, mac: [u8; 6], now: Instant) -> Option<u32> {
            self.rows
                .iter()
                .find(|r| r.0 == mac && self.live(r, now))
                .map(|r| r.1)
        }
        fn expire(&mut self, now: Instant) {
            let expire = self.expire;
            self.rows
                .retain(|r| now.saturating_duration_since(r.3) < expire);
        }
        fn forget(&mut self, session: u32) {
            self.rows.retain(|r| r.1 != session);
        }
        fn listing(&self, now: Instant) -> Vec<([u8; 6], u32, Instant, Instant)> {
            let mut v: Vec<_> = self
                .rows
                .iter()
                .filter(|r| self.live(r, now))
                .copied()
                .collect();
            v.sort_by_key(|r| r.0);
            v
        }
    }

    /// xorshift64*: deterministic, so a failure replays from its seed.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn mac_table_matches_reference_model_on_random_operations() {
        for seed in 1..=40u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let capacity = 1 + rng.below(12) as usize;
            let expire = Duration::from_secs(1 + rng.below(20));
            let mut table: AgeingTable<[u8; 6], u32> = AgeingTable::new(capacity, expire);
            let mut reference = Reference {
                rows: Vec::new(),
                capacity,
                expire,
            };
            let start = Instant::now();
            let mut now = start;
            for step in 0..600 {
                // A small key space, so refreshes, moves and evictions all happen often.
                let mac = [0x5e, 0, 0, 0, 0, rng.below(16) as u8];
                let session = rng.below(5) as u32;
                match rng.below(10) {
                    0..=4 => {
                        table.learn(mac, session, now);
                        reference.learn(mac, session, now);
                    }
                    5 => now += Duration::from_millis(rng.below(4000)),
                    6 => {
                        table.expire(now);
                        reference.expire(now);
                    }
                    7 => {
                        table.retain(|_, s| *s != session);
                        reference.forget(session);
                    }
                    _ => {}
                }
                assert_eq!(
                    table.get(&mac, now).copied(),
                    reference.get(mac, now),
                    "seed {seed} step {step}: lookup"
                );
                let ours: Vec<_> = table
                    .live(now)
                    .into_iter()
                    .map(|(k, s)| (k, s.value, s.created, s.updated))
                    .collect();
                assert_eq!(ours, reference.listing(now), "seed {seed} step {step}");
                assert!(table.len() <= capacity);
            }
        }
    }

    #[test]
    fn full_table_evicts_least_recently_updated() {
        let t0 = Instant::now();
        let mut t: AgeingTable<u8, u32> = AgeingTable::new(2, Duration::from_secs(600));
        t.learn(1, 10, t0);
        t.learn(2, 20, t0 + Duration::from_secs(1));
        t.learn(1, 11, t0 + Duration::from_secs(2)); // refresh: 2 is now the oldest
        t.learn(3, 30, t0 + Duration::from_secs(3));
        let now = t0 + Duration::from_secs(3);
        assert_eq!(t.get(&1, now), Some(&11));
        assert_eq!(t.get(&2, now), None);
        assert_eq!(t.get(&3, now), Some(&30));
    }
}
