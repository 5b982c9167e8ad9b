//! The TCP listener: one port carries every TCP protocol. The first bytes decide: a TLS
//! ClientHello goes to TLS and then to the HTTP admin API; other protocols come later.

use crate::runtime::Server;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// How long a client may take to send its first bytes and finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn accept_loop(server: Arc<Server>, listener: TcpListener) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let server = server.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(server, stream, peer).await {
                tracing::debug!(%peer, error = %e, "TCP connection ended");
            }
        });
    }
}

async fn handle(
    server: Arc<Server>,
    stream: TcpStream,
    peer: std::net::SocketAddr,
) -> anyhow::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut first = [0u8; 1];
    let n = tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first)).await??;
    if n == 0 {
        return Ok(());
    }
    if first[0] != 0x16 {
        anyhow::bail!(
            "not TLS (first byte {:#04x}); no other TCP protocol is served yet",
            first[0]
        );
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(server.tls_config());
    let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await??;
    let backend: Arc<dyn etherhub_admin::Backend> = Arc::new(crate::backend::AdminBackend(server));
    etherhub_admin::serve_connection(tls, peer, backend).await;
    Ok(())
}
