//! What the front-door targets share: the admin crate's in-memory backend behind
//! `serve_connection_with` on an in-memory stream, in a paused-clock runtime; the target
//! drives the client end.

use crate::fake::Fake;
use etherhub_admin::{serve_connection_with, Backend, Ends, Limits, LoginGuard};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// Small limits, no delays, and a fresh login guard: no state carried between inputs.
pub fn limits() -> Limits {
    Limits {
        max_head: 4096,
        max_body_unauthenticated: 1024,
        max_body_hub_admin: 64 * 1024,
        max_body_server_admin: 64 * 1024,
        auth_failure_delay: Duration::ZERO,
        login_guard: Arc::new(LoginGuard::default()),
        ..Limits::default()
    }
}

/// Serves one connection while `client` talks on the other end.
pub fn serve<F, Fut>(client: F)
where
    F: FnOnce(DuplexStream) -> Fut,
    Fut: Future<Output = ()>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let (end, server) = tokio::io::duplex(1 << 20);
        let backend: Arc<dyn Backend> = Arc::new(Fake::new());
        let peer = "198.18.0.2:40000".parse().unwrap();
        let ends = Ends { peer, local: peer };
        let limits = limits();
        let task =
            tokio::spawn(async move { serve_connection_with(server, ends, backend, &limits).await });
        client(end).await;
        let _ = task.await;
    });
}

/// Sends the rest of the input, closes the client's side and reads whatever comes back.
pub async fn finish(mut end: DuplexStream, bytes: &[u8]) {
    let _ = end.write_all(bytes).await;
    let _ = end.shutdown().await;
    let mut sink = Vec::new();
    let _ = end.read_to_end(&mut sink).await;
}
