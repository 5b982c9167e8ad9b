//! Start-up and the tasks: load the config, build the engine from it, bind the listeners, and
//! run the timer, SecureNAT's sockets and the saving of what the engine learns.

use crate::dataplane::{nat_loop, timer_loop, Dataplane};
use crate::defaults;
use crate::server::{decode_key, listener_ports, nat_env, Server};
use crate::tcp::{ConnSlot, HANDSHAKE_TIMEOUT};
use anyhow::Context as _;
use etherhub_config::{Config, Store};
use etherhub_engine::EngineEvent;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

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
    install_panic_hook();
    if !crate::sys::return_large_frees() {
        tracing::debug!("the allocator keeps its own limits for returning memory");
    }
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

/// A panic inside the engine is contained there (the session it happened in is reset, see
/// `etherhub_engine::fault`). A panic anywhere else could leave a task dead behind a live
/// process, so the process exits at once with status 70 and its supervisor (the systemd unit
/// in README) starts it again.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        if etherhub_engine::in_containment() {
            return;
        }
        eprintln!("etherhub: a panic outside the data plane's containment; exiting so that the supervisor restarts the server");
        std::process::exit(70);
    }));
}

/// Builds the state and starts every listener and timer.
pub async fn start(path: PathBuf, bind_ip: Ipv4Addr) -> anyhow::Result<Arc<Server>> {
    let (store, mut cfg) = load_or_create(path)?;
    // a config without WireGuard keys (SoftEther's own, say) gets a fresh pair, saved at once
    let wg_ok = cfg
        .wireguard()
        .is_some_and(|w| decode_key(&w.private_key).is_some());
    if !wg_ok {
        cfg.set_wireguard(&etherhub_config::WireGuardSettings {
            enabled: true,
            preshared_key: defaults::b64(&defaults::random_key()),
            private_key: defaults::b64(&etherhub_wireguard::generate_private_key()),
        });
        store.save(&cfg)?;
    }
    // likewise an OpenVPN tls-crypt key
    if cfg.openvpn_tls_crypt_key().is_none() {
        cfg.set_openvpn_tls_crypt_key(&defaults::tls_crypt_key());
        store.save(&cfg)?;
    }
    if cfg.server_cert().is_none() {
        let (c, k) = defaults::self_signed_cert("etherhub")?;
        cfg.set_server_cert(&c, &k);
        store.save(&cfg)?;
    }
    let (cert, key) = cfg.server_cert().context("server certificate")?;
    let tls = etherhub_admin::tls_server_config(cert, key)
        .map_err(|e| anyhow::anyhow!("the server certificate in the config is unusable: {e}"))?;
    if let Some(w) = cfg.wireguard().and_then(|w| decode_key(&w.private_key)) {
        tracing::info!(
            public_key = etherhub_wireguard::key_to_base64(&etherhub_wireguard::public_key_of(&w)),
            "WireGuard server key"
        );
    }
    let now = Instant::now();
    let (dataplane, nat_rx, persist_rx) = Dataplane::new(now, tls.clone());
    dataplane.apply(crate::changes::diff(None, &cfg, &nat_env()));
    let (tcp_ports, udp_ports) = (listener_ports(&cfg), crate::server::udp_listen_ports(&cfg));
    let server = Arc::new(Server::new(store, cfg, dataplane.clone(), tls, bind_ip));
    let me = server.clone();
    server.set_conn_handler(Arc::new(move |stream, peer, slot| {
        Box::pin(serve_tcp(me.clone(), stream, peer, slot))
    }));
    tokio::spawn(nat_loop(dataplane.clone(), nat_rx));
    tokio::spawn(timer_loop(dataplane.clone()));
    tokio::spawn(persist_loop(server.clone(), persist_rx));
    tokio::spawn(load_log_loop(server.clone()));
    tokio::spawn(user_lists_loop(server.clone()));
    server.reconcile_listeners(&tcp_ports, &udp_ports).await;
    Ok(server)
}

/// Saves what the engine learnt: the address a key without one took.
async fn persist_loop(server: Arc<Server>, mut rx: mpsc::UnboundedReceiver<EngineEvent>) {
    while let Some(ev) = rx.recv().await {
        let EngineEvent::AddressLearned { key, address, .. } = ev else {
            continue;
        };
        let server = server.clone();
        let key = etherhub_wireguard::key_to_base64(&key);
        let saved = tokio::task::spawn_blocking(move || {
            server.change_config(|c| Ok(c.set_wg_key_address(&key, address)?))
        })
        .await;
        if let Ok(Err(e)) = saved {
            tracing::warn!(error = %e, "the address a WireGuard key took could not be saved");
        }
    }
}

/// The access rules' user lists, read now and every 30 s.
async fn user_lists_loop(server: Arc<Server>) {
    let mut tick = tokio::time::interval(crate::userlists::REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let s = server.clone();
        let _ = tokio::task::spawn_blocking(move || s.refresh_user_lists()).await;
    }
}

/// Every 5 s: says when handshakes came faster than the rate limit (cookie replies).
async fn load_log_loop(server: Arc<Server>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut cookies_logged = 0;
    loop {
        tick.tick().await;
        let stats = server.dataplane.lock().engine.wireguard().stats();
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

/// One accepted TCP connection: its first bytes decide. A TLS ClientHello goes to TLS and then
/// to the HTTP front door (JSON-RPC, SoftEther's native protocol: vpncmd's admin RPC here,
/// VPN sessions handed on to the engine; SoftEther's pages); other protocols come later.
async fn serve_tcp(server: Arc<Server>, stream: TcpStream, peer: SocketAddr, mut slot: ConnSlot) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap_or(peer);
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    let mut first = [0u8; 3];
    let mut n;
    loop {
        n = match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
            Ok(Ok(n)) => n,
            _ => return,
        };
        // a zero byte first may be OpenVPN's length: wait for the opcode after it
        if n == 0 || n >= 3 || first[0] != 0 {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if n == 0 {
        return;
    }
    // OpenVPN over TCP: a 16-bit length (a client's first packet is short), then a client's
    // hard reset (opcode 7, key 0)
    if n >= 3 && first[0] == 0 && first[2] == 0x38 {
        slot.established();
        crate::streams::run_openvpn(server.dataplane.clone(), stream, peer).await;
        drop(slot);
        return;
    }
    if first[0] != 0x16 {
        tracing::debug!(%peer, first = first[0], "neither TLS nor OpenVPN; closed");
        return;
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(server.tls_config());
    // one deadline for the first byte and the whole handshake: a client dribbling bytes
    // cannot stretch it
    let tls = match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        _ => return,
    };
    slot.established();
    let cipher = tls
        .get_ref()
        .1
        .negotiated_cipher_suite()
        .map(|c| format!("{:?}", c.suite()))
        .unwrap_or_default();
    let dataplane = server.dataplane.clone();
    let backend: Arc<dyn etherhub_admin::Backend> = Arc::new(crate::backend::AdminBackend(server));
    let ends = etherhub_admin::Ends { peer, local };
    match etherhub_admin::serve_connection(tls, ends, backend).await {
        etherhub_admin::Outcome::Session {
            stream,
            request,
            rest,
        } => crate::streams::run_softether(dataplane, stream, peer, request, rest, cipher).await,
        etherhub_admin::Outcome::Sstp { stream, rest } => {
            crate::streams::run_sstp(dataplane, stream, peer, rest).await
        }
        etherhub_admin::Outcome::Closed => {}
    }
    drop(slot);
}
