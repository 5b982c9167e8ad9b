//! The UDP listener: one socket per port, drained in batches under one lock of the data plane.

use crate::runtime::Server;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::UdpSocket;

/// Datagrams handled per lock of the data plane.
const BATCH: usize = 64;

pub async fn recv_loop(server: Arc<Server>, sock: Arc<UdpSocket>, port: u16) {
    let mut bufs: Vec<Vec<u8>> = (0..BATCH)
        .map(|_| vec![0u8; crate::dataplane::BUF_SIZE])
        .collect();
    let mut got = Vec::with_capacity(BATCH);
    loop {
        if let Err(e) = sock.readable().await {
            tracing::warn!(port, error = %e, "UDP socket failed; listener stopped");
            return;
        }
        got.clear();
        for buf in bufs.iter_mut() {
            match sock.try_recv_from(buf) {
                Ok((n, src)) => got.push((n, src)),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // ICMP errors from earlier sends surface here on Linux; they are not fatal
                Err(_) => continue,
            }
        }
        if got.is_empty() {
            continue;
        }
        let now = Instant::now();
        let mut dp = server.dataplane();
        for (i, (n, src)) in got.iter().enumerate() {
            dp.on_datagram(port, *src, &bufs[i][..*n], now);
        }
    }
}
