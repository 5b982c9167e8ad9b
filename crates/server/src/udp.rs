//! The UDP listener: one socket per port, drained with `recvmmsg` in batches under one lock of
//! the data plane; the replies a batch produced leave together with `sendmmsg`.

use crate::runtime::Server;
use crate::sys::RecvBatch;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::Interest;
use tokio::net::UdpSocket;

pub async fn recv_loop(server: Arc<Server>, sock: Arc<UdpSocket>, port: u16) {
    let mut batch = RecvBatch::new(crate::dataplane::BUF_SIZE);
    let fd = sock.as_raw_fd();
    loop {
        if let Err(e) = sock.readable().await {
            tracing::warn!(port, error = %e, "UDP socket failed; listener stopped");
            return;
        }
        // try_io clears the readiness when the kernel says WouldBlock
        let n = match sock.try_io(Interest::READABLE, || batch.recv(fd)) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            // ICMP errors from earlier sends surface here on Linux; they are not fatal
            Err(_) => continue,
        };
        let now = Instant::now();
        let mut dp = server.dataplane();
        dp.sockets.begin_batch();
        for i in 0..n {
            let (len, src) = batch.got[i];
            if len > 0 {
                dp.on_datagram(port, src, batch.datagram(i), now);
            }
        }
        dp.flush_sends(now);
    }
}
