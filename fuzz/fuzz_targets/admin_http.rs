//! The admin connection after TLS: HTTP/1.1 request heads and bodies, the X-VPNADMIN login and
//! the JSON-RPC envelope, served by `serve_connection_with` over an in-memory stream against
//! the in-memory backend. The input is everything the client sends.
#![no_main]

#[path = "../../crates/admin/tests/common/mod.rs"]
mod fake;

use etherhub_admin::{serve_connection_with, Backend, Ends, Limits, LoginGuard};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let backend: Arc<dyn Backend> = Arc::new(fake::Fake::new());
        let limits = Limits {
            max_head: 4096,
            max_body_unauthenticated: 1024,
            max_body_hub_admin: 64 * 1024,
            max_body_server_admin: 64 * 1024,
            auth_failure_delay: Duration::ZERO,
            // a fresh guard each run: no state carried from one input to the next
            login_guard: Arc::new(LoginGuard::default()),
            ..Limits::default()
        };
        let peer = "127.0.0.1:40000".parse().unwrap();
        let ends = Ends { peer, local: peer };
        let serve =
            tokio::spawn(
                async move { serve_connection_with(server, ends, backend, &limits).await },
            );
        let _ = client.write_all(data).await;
        let _ = client.shutdown().await;
        let mut sink = Vec::new();
        let _ = client.read_to_end(&mut sink).await;
        let _ = serve.await;
    });
});
