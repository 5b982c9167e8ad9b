//! The UDP listener: one socket per port, drained with `recvmmsg` in batches, each batch handed
//! to the engine under one hold of its lock; what it answers leaves with `sendmmsg`.

use crate::dataplane::Dataplane;
use crate::sys::RecvBatch;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Largest datagram handled: WireGuard adds 32 bytes to an inner packet of at most 65535.
pub const BUF_SIZE: usize = 65_536 + 64;

pub async fn recv_loop(dp: Arc<Dataplane>, sock: Arc<UdpSocket>, local: SocketAddr) {
    let mut batch = RecvBatch::new(BUF_SIZE);
    let fd = sock.as_raw_fd();
    loop {
        if let Err(e) = sock.readable().await {
            tracing::warn!(%local, error = %e, "UDP socket failed; listener stopped");
            return;
        }
        // try_io clears the readiness when the kernel says WouldBlock
        let n = match sock.try_io(Interest::READABLE, || batch.recv(fd)) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            // ICMP errors from earlier sends surface here on Linux; they are not fatal
            Err(_) => continue,
        };
        let datagrams = (0..n)
            .filter(|&i| batch.got[i].0 > 0)
            .map(|i| (batch.got[i].1, batch.datagram(i)));
        dp.on_datagrams(Instant::now(), local, datagrams);
    }
}
