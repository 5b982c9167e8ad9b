//! The server's shared state: the config and its store, the data plane, the TLS config and the
//! listeners. Every admin change goes through [`Server::change_config`]: saved first, then the
//! data plane and the listeners follow what changed.

use crate::changes::{diff, system_resolvers, NatEnv};
use crate::dataplane::Dataplane;
use crate::tcp::{ConnHandler, ConnLimits, ConnTracker};
use crate::udp::Carrier;
use etherhub_config::{Config, Store};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Instant, SystemTime};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

/// Bytes asked for as the receive and send buffer of each UDP listener.
const UDP_SOCKET_BUFFER: usize = 4 << 20;

/// Everything the tasks share. Lock order: `config` before the data plane, never the other way.
pub struct Server {
    pub store: Store,
    config: Mutex<Config>,
    pub dataplane: Arc<Dataplane>,
    tls: Mutex<Arc<rustls::ServerConfig>>,
    tcp_tasks: Mutex<HashMap<u16, JoinHandle<()>>>,
    udp_tasks: Mutex<HashMap<u16, Vec<JoinHandle<()>>>>,
    pub started: SystemTime,
    pub started_instant: Instant,
    /// where listeners bind (0.0.0.0 normally)
    pub bind_ip: Ipv4Addr,
    /// live TCP connections and their limits
    pub connections: Arc<ConnTracker>,
    /// serves accepted TCP connections (set once, by the runtime)
    conn_handler: OnceLock<ConnHandler>,
    /// the access rules' user lists the engine has, per hub
    user_lists: Mutex<std::collections::BTreeMap<String, etherhub_hub::UserLists>>,
}

/// A poisoned lock means a panic outside the engine's containment, after which the process
/// exits (`runtime::install_panic_hook`); the data is still the best there is meanwhile.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn decode_key(b64: &str) -> Option<etherhub_wireguard::Key> {
    etherhub_wireguard::key_from_base64(b64).ok()
}

/// The resolvers and a fresh seed for each SecureNAT host the engine builds.
pub fn nat_env() -> NatEnv {
    NatEnv {
        resolvers: system_resolvers(),
        seed: rand::random::<u64>,
    }
}

impl Server {
    pub fn new(
        store: Store,
        config: Config,
        dataplane: Arc<Dataplane>,
        tls: Arc<rustls::ServerConfig>,
        bind_ip: Ipv4Addr,
    ) -> Server {
        let connections = ConnTracker::new(ConnLimits::from_config(&config));
        Server {
            store,
            config: Mutex::new(config),
            dataplane,
            tls: Mutex::new(tls),
            tcp_tasks: Mutex::new(HashMap::new()),
            udp_tasks: Mutex::new(HashMap::new()),
            started: SystemTime::now(),
            started_instant: Instant::now(),
            bind_ip,
            connections,
            conn_handler: OnceLock::new(),
            user_lists: Mutex::new(Default::default()),
        }
    }

    /// Reads the user lists the access rules name (`include:`, `exclude:`) and gives the
    /// engine those that changed. Blocking (file reads).
    pub fn refresh_user_lists(&self) {
        let base = self
            .store
            .path()
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_default();
        let now = crate::userlists::lists_of(&self.config(), &base);
        let mut known = lock(&self.user_lists);
        let changes: Vec<etherhub_engine::Change> = now
            .iter()
            .filter(|(hub, lists)| known.get(*hub) != Some(lists))
            .map(|(hub, lists)| etherhub_engine::Change::AccessUserLists {
                hub: hub.clone(),
                lists: lists.clone(),
            })
            .collect();
        *known = now;
        drop(known);
        if !changes.is_empty() {
            self.dataplane.apply(changes);
        }
    }

    /// What serves TCP connections; set once, before any listener starts.
    pub fn set_conn_handler(&self, handler: ConnHandler) {
        let _ = self.conn_handler.set(handler);
    }

    pub fn config(&self) -> MutexGuard<'_, Config> {
        lock(&self.config)
    }

    pub fn tls_config(&self) -> Arc<rustls::ServerConfig> {
        lock(&self.tls).clone()
    }

    /// Applies a change to the config and saves it; only a change the disk took is made
    /// current. Then the data plane gets what changed ([`crate::changes::diff`]) and the
    /// listeners and connection limits follow the new config. Every admin method comes here.
    /// Call it from a blocking thread (it may wait for listeners to start).
    pub fn change_config<T>(
        &self,
        f: impl FnOnce(&mut Config) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let mut current = self.config();
        let mut next = current.clone();
        let out = f(&mut next)?;
        next.bump_revision();
        self.store.save(&next)?;
        let changes = diff(Some(&current), &next, &nat_env());
        let old = std::mem::replace(&mut *current, next);
        self.dataplane.apply(changes);
        // a hub created again starts without lists: give them again
        lock(&self.user_lists).retain(|hub, _| current.hub(hub).is_ok() && old.hub(hub).is_ok());
        self.connections
            .set_limits(ConnLimits::from_config(&current));
        let (tcp, udp) = (listener_ports(&current), udp_listen_ports(&current));
        let changed = listener_ports(&old) != tcp || udp_listen_ports(&old) != udp;
        drop(current);
        self.refresh_user_lists();
        if changed {
            self.block_on(self.reconcile_listeners(&tcp, &udp));
        }
        Ok(out)
    }

    /// Admin methods run on blocking threads (`spawn_blocking`), which may wait for the
    /// listeners' async work.
    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        tokio::runtime::Handle::current().block_on(f)
    }

    /// Starts and stops listeners to match the enabled TCP ports and the UDP ports.
    pub async fn reconcile_listeners(&self, tcp: &[u16], udp: &[u16]) {
        for p in self.tcp_ports_running() {
            if !tcp.contains(&p) {
                self.stop_tcp(p);
            }
        }
        for &p in tcp {
            if !lock(&self.tcp_tasks).contains_key(&p) {
                self.start_tcp(p).await;
            }
        }
        for p in self.udp_ports_running() {
            if !udp.contains(&p) {
                self.stop_udp(p);
            }
        }
        for &p in udp {
            if !lock(&self.udp_tasks).contains_key(&p) {
                self.start_udp(p).await;
            }
        }
    }

    /// Binds a TCP listener; a port that cannot be bound is reported and skipped.
    pub async fn start_tcp(&self, port: u16) -> bool {
        let addr = SocketAddr::from((self.bind_ip, port));
        let Some(handler) = self.conn_handler.get().cloned() else {
            return false;
        };
        match TcpListener::bind(addr).await {
            Ok(l) => {
                tracing::info!(%addr, "TCP listener started");
                let tracker = self.connections.clone();
                let task = tokio::spawn(crate::tcp::accept_loop(l, tracker, handler));
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
    /// Port 0 stands for IP protocol 50 (ESP), a raw socket (L2TP/IPsec without NAT).
    pub async fn start_udp(&self, port: u16) -> bool {
        use etherhub_engine::l2tp::{ESP_PORT, IKE_PORT, NAT_T_PORT};
        let addr = SocketAddr::from((self.bind_ip, port));
        let bound = match port {
            ESP_PORT => raw_esp_socket(self.bind_ip).map(|s| vec![s]),
            IKE_PORT | NAT_T_PORT => UdpSocket::bind(addr).await.map(|s| vec![s]),
            _ => reuseport_sockets(addr, udp_sockets_per_port()),
        };
        match bound {
            Ok(sockets) => {
                // Room for bursts: many clients' datagrams meet in each socket. The kernel caps
                // the sizes at net.core.rmem_max / wmem_max.
                for s in &sockets {
                    let sr = socket2::SockRef::from(s);
                    let _ = sr.set_recv_buffer_size(UDP_SOCKET_BUFFER);
                    let _ = sr.set_send_buffer_size(UDP_SOCKET_BUFFER);
                }
                let sockets: Vec<Arc<UdpSocket>> = sockets.into_iter().map(Arc::new).collect();
                let s = &sockets[0];
                let carrier = match port {
                    ESP_PORT => Carrier::RawEsp,
                    IKE_PORT | NAT_T_PORT => {
                        if let Err(e) = crate::sys::enable_pktinfo(s.as_raw_fd()) {
                            tracing::warn!(%addr, error = %e, "IP_PKTINFO refused: IKE's NAT detection will see the wildcard address");
                        }
                        Carrier::UdpPktinfo
                    }
                    _ => Carrier::Udp,
                };
                if carrier == Carrier::RawEsp {
                    tracing::info!(ip = %self.bind_ip, "ESP (IP protocol 50) listener started");
                } else {
                    let recv_buffer = socket2::SockRef::from(&**s).recv_buffer_size();
                    tracing::info!(
                        %addr,
                        recv_buffer = recv_buffer.unwrap_or(0),
                        "UDP listener started"
                    );
                }
                self.dataplane
                    .add_listener(addr, s.clone(), carrier == Carrier::RawEsp);
                // every socket of the port (several with SO_REUSEPORT): a task and a worker each
                let tasks = (sockets.into_iter())
                    .map(|s| {
                        let dp = self.dataplane.clone();
                        tokio::spawn(crate::udp::recv_loop(dp, s, addr, carrier))
                    })
                    .collect();
                lock(&self.udp_tasks).insert(port, tasks);
                true
            }
            Err(e) if port == ESP_PORT => {
                tracing::warn!(error = %e, "ESP (IP protocol 50) listener not started (needs CAP_NET_RAW): L2TP/IPsec clients without a NAT between them and the server cannot connect");
                false
            }
            Err(e) => {
                tracing::warn!(%addr, error = %e, "UDP listener not started (skipped)");
                false
            }
        }
    }

    pub fn stop_udp(&self, port: u16) {
        for t in lock(&self.udp_tasks).remove(&port).unwrap_or_default() {
            t.abort();
        }
        self.dataplane
            .remove_listener(SocketAddr::from((self.bind_ip, port)));
    }

    pub fn udp_ports_running(&self) -> Vec<u16> {
        let mut v: Vec<u16> = lock(&self.udp_tasks).keys().copied().collect();
        v.sort_unstable();
        v
    }
}

/// The UDP ports to listen on: the configured ones (every UDP protocol shares them), L2TP's
/// 1701 while raw L2TP is on, and IKE's 500 and 4500 with ESP (port 0 here) while L2TP over
/// IPsec is on.
pub fn udp_listen_ports(cfg: &Config) -> Vec<u16> {
    use etherhub_engine::l2tp::{ESP_PORT, IKE_PORT, NAT_T_PORT, PORT};
    let mut ports = cfg.udp_ports();
    let ipsec = cfg.ipsec();
    let mut own = Vec::new();
    if ipsec.l2tp_raw {
        own.push(PORT);
    }
    if ipsec.l2tp_ipsec {
        own.extend([IKE_PORT, NAT_T_PORT, ESP_PORT]);
    }
    for p in own {
        if !ports.contains(&p) {
            ports.push(p);
        }
    }
    ports
}

/// Sockets per UDP port of the shared protocols: one per core (the runtime's threads), at
/// most 8.
fn udp_sockets_per_port() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(8))
}

/// `n` UDP sockets on one address with `SO_REUSEPORT`: the kernel spreads clients over them by
/// their addresses, each client keeping to one. The port is first bound alone, so that a port
/// another program holds is refused as before rather than shared.
fn reuseport_sockets(addr: SocketAddr, n: usize) -> std::io::Result<Vec<UdpSocket>> {
    drop(std::net::UdpSocket::bind(addr)?);
    (0..n.max(1))
        .map(|_| {
            let s = socket2::Socket::new(
                socket2::Domain::for_address(addr),
                socket2::Type::DGRAM,
                Some(socket2::Protocol::UDP),
            )?;
            s.set_reuse_port(true)?;
            s.bind(&addr.into())?;
            if let Err(e) = crate::sys::enable_gro(s.as_raw_fd()) {
                tracing::debug!(%addr, error = %e, "UDP_GRO refused: datagrams arrive one by one");
            }
            s.set_nonblocking(true)?;
            UdpSocket::from_std(std::net::UdpSocket::from(s))
        })
        .collect()
}

/// A raw socket for IP protocol 50, as a tokio `UdpSocket` (the same datagram calls work on
/// it; what it reads carries the IP header).
fn raw_esp_socket(ip: std::net::Ipv4Addr) -> std::io::Result<UdpSocket> {
    let s = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::RAW,
        Some(socket2::Protocol::from(50)),
    )?;
    s.bind(&SocketAddr::from((ip, 0)).into())?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(std::net::UdpSocket::from(s))
}

/// The enabled TCP listener ports of a config.
pub fn listener_ports(cfg: &Config) -> Vec<u16> {
    cfg.listeners()
        .into_iter()
        .filter(|l| l.enabled)
        .map(|l| l.port)
        .collect()
}
