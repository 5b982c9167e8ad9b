//! The TCP listener: one port carries every TCP protocol; the connection handler looks at the
//! first bytes and decides (see `runtime::serve_tcp`).
//!
//! Connection limits (SoftEther's names, in `ServerConfiguration`): `MaxConnectionsPerIP`
//! concurrent connections from one source address, `MaxUnestablishedConnections` connections
//! still before the end of their TLS handshake (half-open floods, slowloris on the handshake),
//! and Etherhub's own `MaxConnections` for all connections together. A connection over a limit
//! is closed at once, before a byte is read; the refusals are counted and logged, rate-limited.

use etherhub_config::Config;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};

/// How long a client may take to send its first bytes and finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// SoftEther's default `MaxConnectionsPerIP`.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: u32 = 256;
/// SoftEther's default `MaxUnestablishedConnections`.
pub const DEFAULT_MAX_UNESTABLISHED: u32 = 1000;
/// Default for Etherhub's `MaxConnections` (every TCP connection on every listener).
pub const DEFAULT_MAX_CONNECTIONS: u32 = 4096;

/// The TCP connection limits; 0 in the config means the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnLimits {
    pub per_ip: u32,
    pub unestablished: u32,
    pub total: u32,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            unestablished: DEFAULT_MAX_UNESTABLISHED,
            total: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

impl ConnLimits {
    /// Reads `ServerConfiguration/MaxConnectionsPerIP`, `MaxUnestablishedConnections` and
    /// `MaxConnections`.
    pub fn from_config(cfg: &Config) -> ConnLimits {
        let d = ConnLimits::default();
        let s = cfg.root.folder("ServerConfiguration");
        let get = |name: &str, default: u32| {
            s.and_then(|s| s.get_u32(name))
                .filter(|&n| n > 0)
                .unwrap_or(default)
        };
        ConnLimits {
            per_ip: get("MaxConnectionsPerIP", d.per_ip),
            unestablished: get("MaxUnestablishedConnections", d.unestablished),
            total: get("MaxConnections", d.total),
        }
    }
}

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    PerIp,
    Unestablished,
    Total,
}

#[derive(Default)]
struct Counts {
    per_ip: HashMap<IpAddr, u32>,
    unestablished: u32,
    total: u32,
}

/// Live TCP connections, counted for the limits. Shared by every listener.
pub struct ConnTracker {
    limits: Mutex<ConnLimits>,
    counts: Mutex<Counts>,
    refused: AtomicU64,
    last_refusal_log: Mutex<Option<Instant>>,
}

impl ConnTracker {
    pub fn new(limits: ConnLimits) -> Arc<ConnTracker> {
        Arc::new(ConnTracker {
            limits: Mutex::new(limits),
            counts: Mutex::new(Counts::default()),
            refused: AtomicU64::new(0),
            last_refusal_log: Mutex::new(None),
        })
    }

    pub fn set_limits(&self, limits: ConnLimits) {
        *self.limits.lock().unwrap_or_else(|p| p.into_inner()) = limits;
    }

    pub fn limits(&self) -> ConnLimits {
        *self.limits.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Connections refused since start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// (total, unestablished) connections now.
    pub fn current(&self) -> (u32, u32) {
        let c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        (c.total, c.unestablished)
    }

    /// Admits a new, unestablished connection from `ip`, or says which limit it hit.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnSlot, Refusal> {
        let limits = self.limits();
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let from_ip = c.per_ip.get(&ip).copied().unwrap_or(0);
        let refusal = if c.total >= limits.total {
            Some(Refusal::Total)
        } else if c.unestablished >= limits.unestablished {
            Some(Refusal::Unestablished)
        } else if from_ip >= limits.per_ip {
            Some(Refusal::PerIp)
        } else {
            None
        };
        if let Some(r) = refusal {
            drop(c);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(r);
        }
        c.total += 1;
        c.unestablished += 1;
        *c.per_ip.entry(ip).or_insert(0) += 1;
        Ok(ConnSlot {
            tracker: self.clone(),
            ip,
            established: false,
        })
    }

    /// Logs a refusal at most once per second (a flood must not flood the log too).
    fn log_refusal(&self, peer: std::net::SocketAddr, why: Refusal) {
        let now = Instant::now();
        let mut last = self
            .last_refusal_log
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let due = match *last {
            Some(t) => now.duration_since(t) >= Duration::from_secs(1),
            None => true,
        };
        if due {
            *last = Some(now);
            let limits = self.limits();
            tracing::warn!(
                %peer,
                limit = ?why,
                ?limits,
                refused_total = self.refused(),
                "security: TCP connection refused by a connection limit"
            );
        }
    }
}

/// One admitted connection; gives its place back when dropped.
pub struct ConnSlot {
    tracker: Arc<ConnTracker>,
    ip: IpAddr,
    established: bool,
}

impl ConnSlot {
    /// The TLS handshake is done: the connection no longer counts as unestablished.
    pub fn established(&mut self) {
        if !self.established {
            self.established = true;
            let mut c = self
                .tracker
                .counts
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            c.unestablished -= 1;
        }
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut c = self
            .tracker
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        c.total -= 1;
        if !self.established {
            c.unestablished -= 1;
        }
        if let Some(n) = c.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                c.per_ip.remove(&self.ip);
            }
        }
    }
}

/// What serves an admitted TCP connection (the first-bytes demux, TLS, the protocols behind).
pub type ConnHandler = Arc<
    dyn Fn(
            TcpStream,
            std::net::SocketAddr,
            ConnSlot,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

pub async fn accept_loop(listener: TcpListener, tracker: Arc<ConnTracker>, handler: ConnHandler) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let slot = match tracker.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                tracker.log_refusal(peer, why);
                drop(stream);
                continue;
            }
        };
        tokio::spawn(handler(stream, peer, slot));
    }
}
