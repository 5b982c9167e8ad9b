//! Start-up, listeners and the shared server state.

use crate::dataplane::Dataplane;
use crate::defaults;
use anyhow::Context as _;
use etherhub_config::{Config, Store};
use etherhub_hub::VirtualHostConfig;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

/// Bytes asked for as the receive and send buffer of each UDP listener.
const UDP_SOCKET_BUFFER: usize = 4 << 20;

/// Everything the tasks share. Lock order: `config` before `dataplane`, never the other way.
pub struct Server {
    pub store: Store,
    config: Mutex<Config>,
    dataplane: Mutex<Dataplane>,
    tls: Mutex<Arc<rustls::ServerConfig>>,
    tcp_tasks: Mutex<HashMap<u16, JoinHandle<()>>>,
    udp_tasks: Mutex<HashMap<u16, JoinHandle<()>>>,
    pub started: SystemTime,
    pub started_instant: Instant,
    /// where listeners bind (0.0.0.0 normally)
    pub bind_ip: Ipv4Addr,
    /// live TCP connections and their limits
    pub connections: Arc<crate::tcp::ConnTracker>,
}

/// A poisoned lock means a task panicked mid-update; the data is still the best we have.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn decode_key(b64: &str) -> Option<etherhub_wireguard::Key> {
    etherhub_wireguard::key_from_base64(b64).ok()
}

/// The SecureNAT virtual host of a hub, when SecureNAT is enabled.
pub fn virtual_host_of(cfg: &Config, hub: &str) -> Option<VirtualHostConfig> {
    let h = cfg.hub(hub).ok()?;
    h.securenat.enabled.then_some(VirtualHostConfig {
        ip: h.securenat.host_ip,
        mask: h.securenat.host_mask,
        mac: h.securenat.host_mac,
    })
}

impl Server {
    pub fn config(&self) -> MutexGuard<'_, Config> {
        lock(&self.config)
    }

    pub fn dataplane(&self) -> MutexGuard<'_, Dataplane> {
        lock(&self.dataplane)
    }

    pub fn tls_config(&self) -> Arc<rustls::ServerConfig> {
        lock(&self.tls).clone()
    }

    /// Applies a change to the config, saves it, and only then makes it current: a change the
    /// disk did not take is not made.
    pub fn change_config<T>(
        &self,
        f: impl FnOnce(&mut Config) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let mut current = self.config();
        let mut next = current.clone();
        let out = f(&mut next)?;
        next.bump_revision();
        self.store.save(&next)?;
        *current = next;
        Ok(out)
    }

    /// Brings the data plane in line with the config: hubs, SecureNAT hosts, WireGuard keys.
    pub fn sync_dataplane(&self) {
        let cfg = self.config();
        self.connections
            .set_limits(crate::tcp::ConnLimits::from_config(&cfg));
        let now = Instant::now();
        let mut dp = self.dataplane();
        let names = cfg.hub_names();
        let resolvers = crate::nat::system_resolvers();
        for name in &names {
            let securenat = cfg.hub(name).ok().map(|h| h.securenat);
            dp.ensure_hub_nat(name, securenat.as_ref(), &resolvers, now);
        }
        let stale: Vec<String> = dp
            .hubs
            .values()
            .map(|h| h.name().to_string())
            .filter(|h| !names.iter().any(|n| n.eq_ignore_ascii_case(h)))
            .collect();
        for h in stale {
            dp.remove_hub(&h);
        }
        type Wanted = (
            etherhub_wireguard::KeyEntry,
            Option<etherhub_wireguard::Key>,
            Option<Ipv4Addr>,
        );
        let wanted: HashMap<etherhub_wireguard::Key, Wanted> = cfg
            .wg_keys()
            .into_iter()
            .filter_map(|k| {
                let psk = k.preshared_key.as_deref().and_then(decode_key);
                Some((
                    decode_key(&k.key)?,
                    (
                        etherhub_wireguard::KeyEntry {
                            hub: k.hub,
                            user: k.user,
                        },
                        psk,
                        k.address,
                    ),
                ))
            })
            .collect();
        for key in dp.wg.keys() {
            if !wanted.contains_key(&key) {
                dp.remove_key(&key);
            }
        }
        for (key, (entry, psk, address)) in wanted {
            dp.wg.insert_key_with_psk(key, entry, psk);
            dp.wg.set_key_address(&key, address);
        }
    }

    /// Binds a TCP listener; a port that cannot be bound is reported and skipped.
    pub async fn start_tcp(self: &Arc<Self>, port: u16) -> bool {
        let addr = SocketAddr::from((self.bind_ip, port));
        match TcpListener::bind(addr).await {
            Ok(l) => {
                tracing::info!(%addr, "TCP listener started");
                let me = self.clone();
                let task = tokio::spawn(async move { crate::tcp::accept_loop(me, l).await });
                lock(&self.tcp_tasks).insert(port, task);
                true
            }
            Err(e) => {
                tracing::warn!(%addr, error = %e, "TCP listener not started (skipped)");
                false
            }
        }
    }

    pub fn stop_tcp(&self, port: u16) {
        if let Some(t) = lock(&self.tcp_tasks).remove(&port) {
            t.abort();
        }
    }

    pub fn tcp_ports_running(&self) -> Vec<u16> {
        let mut v: Vec<u16> = lock(&self.tcp_tasks).keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Binds a UDP port (every UDP protocol shares it); a port that cannot be bound is skipped.
    pub async fn start_udp(self: &Arc<Self>, port: u16) -> bool {
        let addr = SocketAddr::from((self.bind_ip, port));
        match UdpSocket::bind(addr).await {
            Ok(s) => {
                // Room for bursts: every client's datagrams meet in this one socket. The kernel
                // caps the sizes at net.core.rmem_max / wmem_max.
                let sr = socket2::SockRef::from(&s);
                let _ = sr.set_recv_buffer_size(UDP_SOCKET_BUFFER);
                let _ = sr.set_send_buffer_size(UDP_SOCKET_BUFFER);
                tracing::info!(
                    %addr,
                    recv_buffer = sr.recv_buffer_size().unwrap_or(0),
                    "UDP listener started"
                );
                let s = Arc::new(s);
                self.dataplane().sockets.insert(port, s.clone());
                let me = self.clone();
                let task = tokio::spawn(async move { crate::udp::recv_loop(me, s, port).await });
                lock(&self.udp_tasks).insert(port, task);
                true
            }
            Err(e) => {
                tracing::warn!(%addr, error = %e, "UDP listener not started (skipped)");
                false
            }
        }
    }

    pub fn stop_udp(&self, port: u16) {
        if let Some(t) = lock(&self.udp_tasks).remove(&port) {
            t.abort();
        }
        self.dataplane().sockets.remove(&port);
    }

    pub fn udp_ports_running(&self) -> Vec<u16> {
        let mut v: Vec<u16> = lock(&self.udp_tasks).keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Replaces the UDP listeners with `ports`.
    pub async fn apply_udp_ports(self: &Arc<Self>, ports: &[u16]) {
        for p in self.udp_ports_running() {
            if !ports.contains(&p) {
                self.stop_udp(p);
            }
        }
        for &p in ports {
            if !lock(&self.udp_tasks).contains_key(&p) {
                self.start_udp(p).await;
            }
        }
    }
}

/// Loads the config (or creates the embedded default) and builds the server state.
pub fn load_or_create(path: PathBuf) -> anyhow::Result<(Store, Config)> {
    let store = Store::new(path);
    // a save interrupted by a crash leaves its temporary file; the config itself is whole
    match store.remove_stale_temporaries() {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            removed = n,
            "removed temporary files of an interrupted save"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "cannot remove temporary files of an interrupted save")
        }
    }
    let cfg = match store.load()? {
        Some(cfg) => cfg,
        None => {
            let cfg = defaults::embedded_default()?;
            store.save(&cfg)?;
            tracing::info!(
                path = %store.path().display(),
                "created the embedded default config (hub DEFAULT, SecureNAT on 192.168.30.1/24, \
                 empty admin password: administration from this machine only until one is set)"
            );
            cfg
        }
    };
    Ok((store, cfg))
}

/// Starts the server from a config file and runs until SIGINT/SIGTERM.
pub fn run(path: PathBuf) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let server = start(path, Ipv4Addr::UNSPECIFIED).await?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
        tracing::info!("stopping");
        let cfg = server.config().clone();
        server.store.save(&cfg)?;
        Ok(())
    })
}

/// Builds the state and starts every listener and timer.
pub async fn start(path: PathBuf, bind_ip: Ipv4Addr) -> anyhow::Result<Arc<Server>> {
    let (store, mut cfg) = load_or_create(path)?;
    // a config without WireGuard keys (SoftEther's own, say) gets a fresh pair, saved at once
    let wg_settings = match cfg
        .wireguard()
        .filter(|w| decode_key(&w.private_key).is_some())
    {
        Some(w) => w,
        None => {
            let w = etherhub_config::WireGuardSettings {
                enabled: true,
                preshared_key: defaults::b64(&defaults::random_key()),
                private_key: defaults::b64(&etherhub_wireguard::generate_private_key()),
            };
            cfg.set_wireguard(&w);
            store.save(&cfg)?;
            w
        }
    };
    if cfg.server_cert().is_none() {
        let (c, k) = defaults::self_signed_cert("etherhub")?;
        cfg.set_server_cert(&c, &k);
        store.save(&cfg)?;
    }
    let (cert, key) = cfg.server_cert().context("server certificate")?;
    let tls = etherhub_admin::tls_server_config(cert, key)
        .map_err(|e| anyhow::anyhow!("the server certificate in the config is unusable: {e}"))?;
    let private = decode_key(&wg_settings.private_key).context("WireGuard private key")?;
    let psk = decode_key(&wg_settings.preshared_key);
    let wg = etherhub_wireguard::Server::new(private, psk);
    tracing::info!(
        public_key = etherhub_wireguard::key_to_base64(&wg.public_key()),
        "WireGuard server key"
    );
    let listeners = cfg.listeners();
    let udp_ports = cfg.udp_ports();
    let connections = crate::tcp::ConnTracker::new(crate::tcp::ConnLimits::from_config(&cfg));
    let server = Arc::new(Server {
        store,
        config: Mutex::new(cfg),
        dataplane: Mutex::new(Dataplane::new(wg)),
        tls: Mutex::new(tls),
        tcp_tasks: Mutex::new(HashMap::new()),
        udp_tasks: Mutex::new(HashMap::new()),
        started: SystemTime::now(),
        started_instant: Instant::now(),
        bind_ip,
        connections,
    });
    let (nat_tx, nat_rx) = tokio::sync::mpsc::unbounded_channel();
    server.dataplane().nat.set_events(nat_tx);
    server.sync_dataplane();
    let me = server.clone();
    tokio::spawn(async move { crate::nat::nat_loop(me, nat_rx).await });
    for l in listeners.iter().filter(|l| l.enabled) {
        server.start_tcp(l.port).await;
    }
    if wg_settings.enabled {
        for p in udp_ports {
            server.start_udp(p).await;
        }
    }
    let me = server.clone();
    tokio::spawn(async move { timer_loop(me).await });
    Ok(server)
}

async fn timer_loop(server: Arc<Server>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u64 = 0;
    let mut cookies_logged = 0;
    loop {
        tick.tick().await;
        n += 1;
        let mut dp = server.dataplane();
        dp.on_timer(Instant::now(), n.is_multiple_of(4));
        // every 5 s: say when handshakes came faster than the rate limit (cookie replies)
        if n.is_multiple_of(20) {
            let stats = dp.wg.stats();
            drop(dp);
            if stats.cookie_replies_sent > cookies_logged {
                tracing::warn!(
                    cookie_replies_sent = stats.cookie_replies_sent,
                    since_last = stats.cookie_replies_sent - cookies_logged,
                    handshakes_rate_limited = stats.handshakes_rate_limited,
                    unknown_key_initiations = stats.unknown_key_initiations,
                    malformed_dropped = stats.malformed_dropped,
                    "WireGuard under load: handshakes answered with cookie replies"
                );
                cookies_logged = stats.cookie_replies_sent;
            }
        }
    }
}
