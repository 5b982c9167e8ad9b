//! Per-source-address limit on handshakes while the server is under load, as wireguard-go's
//! `ratelimiter.go` does (20 a second, bursts of 5). The cookie gate alone lets through every
//! handshake with a valid MAC2, and a MAC2 only proves the sender can receive at its address:
//! one such sender could still make the server do Diffie-Hellman work as fast as it can send.
//! Time is passed in; the table is swept once a second and bounded in size.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Handshakes a second one source address may have processed while under load.
pub const PER_SOURCE_PER_SECOND: u32 = 20;
/// Handshakes one source address may burst above that rate.
pub const PER_SOURCE_BURST: u32 = 5;
/// Addresses tracked at most (only addresses that passed the cookie gate get here).
const MAX_SOURCES: usize = 65_536;

/// Counts handshake messages to know whether the server is under load, and holds one token
/// bucket per source address for when it is.
#[derive(Debug)]
pub struct HandshakeLimiter {
    /// handshake messages a second above which the server is under load
    load_threshold: u64,
    window_start: Option<Instant>,
    in_window: u64,
    previous_window: u64,
    buckets: HashMap<IpAddr, Bucket>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// tokens in nanoseconds of credit (one handshake costs `COST`)
    tokens: u64,
    last: Instant,
}

const NANOS: u64 = 1_000_000_000;
const COST: u64 = NANOS / PER_SOURCE_PER_SECOND as u64;
const MAX_TOKENS: u64 = COST * PER_SOURCE_BURST as u64;

impl HandshakeLimiter {
    pub fn new(load_threshold: u64) -> Self {
        HandshakeLimiter {
            load_threshold,
            window_start: None,
            in_window: 0,
            previous_window: 0,
            buckets: HashMap::new(),
        }
    }

    /// Counts one handshake message (any, before the cookie gate) received at `now`.
    pub fn count(&mut self, now: Instant) {
        match self.window_start {
            Some(start) if now.saturating_duration_since(start) < Duration::from_secs(1) => {}
            Some(start) => {
                let elapsed = now.saturating_duration_since(start);
                self.previous_window = if elapsed < Duration::from_secs(2) {
                    self.in_window
                } else {
                    0
                };
                self.in_window = 0;
                self.window_start = Some(now);
                // forget sources whose buckets are full again
                self.buckets
                    .retain(|_, b| now.saturating_duration_since(b.last) < Duration::from_secs(1));
            }
            None => self.window_start = Some(now),
        }
        self.in_window += 1;
    }

    /// Whether more handshakes arrived in the last second than the threshold.
    pub fn under_load(&self) -> bool {
        self.in_window.max(self.previous_window) > self.load_threshold
    }

    /// May a handshake from `ip` that passed the cookie gate be processed at `now`? Always yes
    /// when not under load.
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        if !self.under_load() {
            return true;
        }
        if !self.buckets.contains_key(&ip) && self.buckets.len() >= MAX_SOURCES {
            return false;
        }
        let b = self.buckets.entry(ip).or_insert(Bucket {
            tokens: MAX_TOKENS,
            last: now,
        });
        let earned = now.saturating_duration_since(b.last).as_nanos() as u64;
        b.tokens = (b.tokens.saturating_add(earned)).min(MAX_TOKENS);
        b.last = now;
        if b.tokens >= COST {
            b.tokens -= COST;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([198, 18, 0, n])
    }

    #[test]
    fn no_limit_without_load() {
        let mut l = HandshakeLimiter::new(100);
        let t = Instant::now();
        for _ in 0..50 {
            l.count(t);
            assert!(l.allow(ip(1), t));
        }
    }

    #[test]
    fn under_load_one_source_gets_burst_then_rate() {
        let mut l = HandshakeLimiter::new(100);
        let t = Instant::now();
        for _ in 0..200 {
            l.count(t);
        }
        assert!(l.under_load());
        let allowed = (0..100).filter(|_| l.allow(ip(1), t)).count();
        assert_eq!(allowed, PER_SOURCE_BURST as usize);
        // another source has its own bucket
        assert!(l.allow(ip(2), t));
        // over one second at 1000 tries a second: the rate, within a token
        let mut allowed = 0;
        for ms in 1..=1000 {
            let now = t + Duration::from_millis(ms);
            l.count(now);
            if l.allow(ip(1), now) {
                allowed += 1;
            }
        }
        assert!(
            (PER_SOURCE_PER_SECOND as usize..=PER_SOURCE_PER_SECOND as usize + 1)
                .contains(&allowed),
            "{allowed}"
        );
    }

    #[test]
    fn load_ends_two_quiet_seconds_later() {
        let mut l = HandshakeLimiter::new(10);
        let t = Instant::now();
        for _ in 0..50 {
            l.count(t);
        }
        assert!(l.under_load());
        l.count(t + Duration::from_millis(1500));
        assert!(l.under_load(), "the last full second was loaded");
        l.count(t + Duration::from_secs(4));
        assert!(!l.under_load());
        for _ in 0..50 {
            assert!(l.allow(ip(1), t + Duration::from_secs(4)));
        }
    }
}
