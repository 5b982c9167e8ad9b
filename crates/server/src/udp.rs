//! The UDP listener: sockets drained with `recvmmsg` in batches, each batch handed to the
//! engine under one hold of its lock; what it answers leaves with `sendmmsg`. A port of the
//! shared UDP protocols has a socket per thread (`SO_REUSEPORT`: the kernel keeps each client on
//! one of them), each drained by its own task with its own worker (see `crate::dataplane`).
//! Those sockets take a client's GSO runs whole (`UDP_GRO`), cut into datagrams here.

use crate::dataplane::{Dataplane, WorkerIo};
use crate::sys::RecvBatch;
use etherhub_engine::workers::Datagram;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Largest datagram handled: WireGuard adds 32 bytes to an inner packet of at most 65535.
pub const BUF_SIZE: usize = 65_536 + 64;

/// What a listener's socket delivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Carrier {
    /// UDP datagrams; the engine hears the listener's own address as their destination.
    Udp,
    /// UDP datagrams, each with the address it was sent to (`IP_PKTINFO`: IKE's ports).
    UdpPktinfo,
    /// IP protocol 50 (ESP) on a raw socket: each packet with its IP header, which is taken
    /// off; the engine hears port 0 on both sides (see `etherhub_engine::l2tp::ESP_PORT`).
    RawEsp,
}

pub async fn recv_loop(
    dp: Arc<Dataplane>,
    sock: Arc<UdpSocket>,
    local: SocketAddr,
    carrier: Carrier,
) {
    let mut batch = RecvBatch::new(BUF_SIZE);
    let fd = sock.as_raw_fd();
    let mut worker = WorkerIo::new(local, sock.clone());
    loop {
        // try_io clears the readiness when the kernel says WouldBlock
        let n = match sock.try_io(Interest::READABLE, || batch.recv(fd)) {
            Ok(n) => n,
            // nothing more to read, or an error (ICMP errors from earlier sends surface here on
            // Linux; they are not fatal): what the last batch left unsealed leaves and what it
            // forwarded directly is counted, then the task waits (after an error the readiness
            // stays set: that wait ends at once)
            Err(_) => {
                dp.idle(&mut worker);
                if let Err(e) = sock.readable().await {
                    tracing::warn!(%local, error = %e, "UDP socket failed; listener stopped");
                    return;
                }
                continue;
            }
        };
        let batch = &batch;
        let datagrams: Vec<Datagram> = (0..n)
            .filter(|&i| batch.got[i].0 > 0)
            .flat_map(|i| {
                let from = batch.got[i].1;
                // a coalesced run (UDP_GRO) cut back into its datagrams, each with the
                // address it came to where the socket tells (IKE's ports, ESP)
                batch.datagrams(i).filter_map(move |bytes| match carrier {
                    Carrier::Udp => Some(Datagram { local, from, bytes }),
                    Carrier::UdpPktinfo => Some(Datagram {
                        local: batch.dst[i].map_or(local, |d| SocketAddr::from((d, local.port()))),
                        from,
                        bytes,
                    }),
                    Carrier::RawEsp => {
                        let (dst, payload) = strip_ipv4(bytes)?;
                        Some(Datagram {
                            local: SocketAddr::from((dst, 0)),
                            from: SocketAddr::new(from.ip(), 0),
                            bytes: payload,
                        })
                    }
                })
            })
            .collect();
        dp.on_datagrams(Instant::now(), &datagrams, &mut worker);
    }
}

/// An IPv4 packet's destination and payload (what a raw socket hands over).
fn strip_ipv4(packet: &[u8]) -> Option<(std::net::Ipv4Addr, &[u8])> {
    if packet.len() < 20 || packet[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(packet[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    if ihl < 20 || packet.len() < ihl {
        return None;
    }
    let end = total.clamp(ihl, packet.len());
    let dst = std::net::Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
    Some((dst, &packet[ihl..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raw_packet_loses_its_ip_header_and_keeps_its_destination() {
        let mut p = vec![
            0x45, 0, 0, 28, 0, 0, 0, 0, 64, 50, 0, 0, 198, 18, 0, 2, 198, 18, 0, 1,
        ];
        p.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        p.extend_from_slice(&[0xee; 4]); // trailing bytes past the IP length are not payload
        let (dst, payload) = strip_ipv4(&p).unwrap();
        assert_eq!(dst, std::net::Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(payload, &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(strip_ipv4(&p[..19]).is_none());
        p[0] = 0x65;
        assert!(strip_ipv4(&p).is_none());
    }
}
