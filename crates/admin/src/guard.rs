//! Brute-force protection for admin logins: failures are counted per source address, and an
//! address with too many recent failures is locked out for a while (its logins are refused
//! without looking at the password). The lockout is logged here as a security event, with the
//! peer address and never the password; the transport logs each failure.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Failures from one address, within [`LoginGuard::window`], that lock it out.
pub const DEFAULT_MAX_FAILURES: u32 = 5;
/// How long a locked-out address stays locked.
pub const DEFAULT_LOCKOUT: Duration = Duration::from_secs(60);
/// Failures older than this are forgotten.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(300);
/// Addresses tracked at most; beyond it old entries are dropped first, so the table stays
/// bounded under a spoofed-address flood (TCP needs a handshake, so it is hard to spoof anyway).
const MAX_TRACKED: usize = 16_384;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: Instant,
    locked_until: Option<Instant>,
}

/// What [`LoginGuard::check`] decided before a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The address may try.
    Allowed,
    /// The address is locked out for this long still.
    LockedOut(Duration),
}

/// Per-address login failure counts, shared by every admin connection.
#[derive(Debug)]
pub struct LoginGuard {
    pub max_failures: u32,
    pub lockout: Duration,
    pub window: Duration,
    entries: Mutex<HashMap<IpAddr, Entry>>,
}

impl Default for LoginGuard {
    fn default() -> Self {
        LoginGuard::new(DEFAULT_MAX_FAILURES, DEFAULT_LOCKOUT, DEFAULT_WINDOW)
    }
}

impl LoginGuard {
    pub fn new(max_failures: u32, lockout: Duration, window: Duration) -> Self {
        LoginGuard {
            max_failures: max_failures.max(1),
            lockout,
            window,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The guard [`crate::serve_connection`] uses: one per process.
    pub fn global() -> Arc<LoginGuard> {
        static GLOBAL: OnceLock<Arc<LoginGuard>> = OnceLock::new();
        GLOBAL
            .get_or_init(|| Arc::new(LoginGuard::default()))
            .clone()
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// May `ip` try to log in at `now`?
    pub fn check(&self, ip: IpAddr, now: Instant) -> Admission {
        match self.entries().get(&ip).and_then(|e| e.locked_until) {
            Some(until) if until > now => Admission::LockedOut(until - now),
            _ => Admission::Allowed,
        }
    }

    /// A failed login from `ip`; returns true when this failure locked the address out.
    pub fn failure(&self, ip: IpAddr, now: Instant) -> bool {
        let mut entries = self.entries();
        if entries.len() >= MAX_TRACKED && !entries.contains_key(&ip) {
            let window = self.window;
            entries.retain(|_, e| {
                now.duration_since(e.last_failure) < window
                    || e.locked_until.is_some_and(|u| u > now)
            });
            if entries.len() >= MAX_TRACKED {
                // still full of live entries: forget the oldest one
                if let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, e)| e.last_failure)
                    .map(|(ip, _)| *ip)
                {
                    entries.remove(&oldest);
                }
            }
        }
        let e = entries.entry(ip).or_insert(Entry {
            failures: 0,
            last_failure: now,
            locked_until: None,
        });
        if now.duration_since(e.last_failure) >= self.window
            || e.locked_until.is_some_and(|u| u <= now)
        {
            e.failures = 0;
            e.locked_until = None;
        }
        e.failures += 1;
        e.last_failure = now;
        let failures = e.failures;
        let locked = failures >= self.max_failures && e.locked_until.is_none();
        if locked {
            e.locked_until = Some(now + self.lockout);
        }
        drop(entries);
        if locked {
            tracing::warn!(
                peer = %ip,
                failures,
                lockout_secs = self.lockout.as_secs(),
                "security: admin logins from this address locked out after repeated failures"
            );
        }
        locked
    }

    /// A successful login from `ip` clears its failures.
    pub fn success(&self, ip: IpAddr) {
        self.entries().remove(&ip);
    }

    /// Failures counted for `ip` now (for tests and status).
    pub fn failures(&self, ip: IpAddr) -> u32 {
        self.entries().get(&ip).map_or(0, |e| e.failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_out_after_max_failures_and_unlocks_after_lockout() {
        let g = LoginGuard::new(3, Duration::from_secs(60), Duration::from_secs(300));
        let ip: IpAddr = "198.18.0.2".parse().unwrap();
        let other: IpAddr = "198.18.0.3".parse().unwrap();
        let t = Instant::now();
        assert!(!g.failure(ip, t));
        assert!(!g.failure(ip, t));
        assert_eq!(g.check(ip, t), Admission::Allowed);
        assert!(g.failure(ip, t));
        assert!(matches!(g.check(ip, t), Admission::LockedOut(_)));
        assert_eq!(g.check(other, t), Admission::Allowed);
        let later = t + Duration::from_secs(61);
        assert_eq!(g.check(ip, later), Admission::Allowed);
        // the count starts again after a lockout ended
        assert!(!g.failure(ip, later));
        assert_eq!(g.failures(ip), 1);
    }

    #[test]
    fn success_clears_and_old_failures_expire() {
        let g = LoginGuard::new(2, Duration::from_secs(60), Duration::from_secs(10));
        let ip: IpAddr = "::1".parse().unwrap();
        let t = Instant::now();
        g.failure(ip, t);
        g.success(ip);
        assert_eq!(g.failures(ip), 0);
        g.failure(ip, t);
        assert!(!g.failure(ip, t + Duration::from_secs(11)));
        assert_eq!(g.check(ip, t + Duration::from_secs(11)), Admission::Allowed);
    }

    #[test]
    fn table_stays_bounded() {
        let g = LoginGuard::new(5, Duration::from_secs(60), Duration::from_secs(300));
        let t = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 100) {
            g.failure(IpAddr::from(std::net::Ipv4Addr::from(i)), t);
        }
        assert!(g.entries().len() <= MAX_TRACKED);
    }
}
