//! Batched UDP I/O: `recvmmsg` and `sendmmsg`, so a burst of datagrams costs one system call
//! each way instead of one per datagram (the profile of the WireGuard path was dominated by
//! per-datagram `sendto`/`recvfrom`). This is the crate's only unsafe code: filling the kernel's
//! message arrays and reading back the addresses it wrote.
#![allow(unsafe_code)]

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Datagrams per system call.
pub const BATCH: usize = 32;

fn to_storage(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; all-zero is a valid (AF_UNSPEC) value.
    let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in, sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write(&mut ss as *mut _ as *mut libc::sockaddr_in6, sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

fn from_storage(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match ss.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in for AF_INET.
            let sin = unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the kernel wrote a sockaddr_in6 for AF_INET6.
            let sin6 = unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Buffers for one `recvmmsg` call, reused from call to call.
pub struct RecvBatch {
    bufs: Vec<Vec<u8>>,
    addrs: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    /// (length, source) of each datagram of the last call
    pub got: Vec<(usize, SocketAddr)>,
}

// SAFETY: the raw pointers inside iovec/mmsghdr only ever point into this struct's own buffers
// and are rebuilt before each system call.
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    pub fn new(buf_size: usize) -> Self {
        RecvBatch {
            bufs: (0..BATCH).map(|_| vec![0u8; buf_size]).collect(),
            // SAFETY: plain data, zero is valid.
            addrs: vec![unsafe { zeroed() }; BATCH],
            iovs: Vec::with_capacity(BATCH),
            msgs: Vec::with_capacity(BATCH),
            got: Vec::with_capacity(BATCH),
        }
    }

    pub fn datagram(&self, i: usize) -> &[u8] {
        &self.bufs[i][..self.got[i].0]
    }

    /// One non-blocking `recvmmsg`; fills `got`. WouldBlock when nothing is waiting.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.iovs.clear();
        self.msgs.clear();
        self.got.clear();
        for b in &mut self.bufs {
            self.iovs.push(libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            });
        }
        for i in 0..BATCH {
            // SAFETY: plain data, zero is valid.
            let mut h: libc::msghdr = unsafe { zeroed() };
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            self.msgs.push(libc::mmsghdr {
                msg_hdr: h,
                msg_len: 0,
            });
        }
        // SAFETY: msgs holds BATCH valid headers pointing at live buffers owned by self.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        for i in 0..n as usize {
            let len = self.msgs[i].msg_len as usize;
            match from_storage(&self.addrs[i]) {
                Some(a) => self.got.push((len, a)),
                // an address family we do not serve: keep the slot, mark it empty
                None => self.got.push((0, SocketAddr::from(([0, 0, 0, 0], 0)))),
            }
        }
        Ok(n as usize)
    }
}

/// Datagrams waiting to leave one socket, sent together by [`SendBatch::flush`].
pub struct SendBatch {
    data: Vec<u8>,
    /// (start, len, destination) of each datagram in `data`
    items: Vec<(usize, usize, SocketAddr)>,
    addrs: Vec<(libc::sockaddr_storage, libc::socklen_t)>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
}

// SAFETY: as for RecvBatch, the pointers only refer to this struct's own buffers.
unsafe impl Send for SendBatch {}

impl Default for SendBatch {
    fn default() -> Self {
        SendBatch {
            data: Vec::with_capacity(BATCH * 1500),
            items: Vec::with_capacity(BATCH),
            addrs: Vec::with_capacity(BATCH),
            iovs: Vec::with_capacity(BATCH),
            msgs: Vec::with_capacity(BATCH),
        }
    }
}

impl SendBatch {
    pub fn push(&mut self, to: SocketAddr, bytes: &[u8]) {
        self.items.push((self.data.len(), bytes.len(), to));
        self.data.extend_from_slice(bytes);
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Sends everything queued with `sendmmsg`, `BATCH` at a time; returns how many datagrams
    /// the kernel did not take (socket buffer full or an error), which are dropped.
    pub fn flush(&mut self, fd: RawFd) -> usize {
        let mut dropped = 0;
        let mut start = 0;
        while start < self.items.len() {
            let end = (start + BATCH).min(self.items.len());
            self.addrs.clear();
            self.iovs.clear();
            self.msgs.clear();
            for &(off, len, to) in &self.items[start..end] {
                self.addrs.push(to_storage(&to));
                self.iovs.push(libc::iovec {
                    iov_base: self.data[off..].as_mut_ptr().cast(),
                    iov_len: len,
                });
            }
            for i in 0..end - start {
                // SAFETY: plain data, zero is valid.
                let mut h: libc::msghdr = unsafe { zeroed() };
                h.msg_name = (&mut self.addrs[i].0 as *mut libc::sockaddr_storage).cast();
                h.msg_namelen = self.addrs[i].1;
                h.msg_iov = &mut self.iovs[i];
                h.msg_iovlen = 1;
                self.msgs.push(libc::mmsghdr {
                    msg_hdr: h,
                    msg_len: 0,
                });
            }
            let want = end - start;
            // SAFETY: msgs holds `want` valid headers pointing into self.data and self.addrs.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    self.msgs.as_mut_ptr(),
                    want as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if n <= 0 {
                // the first message failed (buffer full, unreachable...): drop it, go on
                dropped += 1;
                start += 1;
            } else {
                start += n as usize;
            }
        }
        self.items.clear();
        self.data.clear();
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_batch_goes_out_and_comes_back_in_order() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = b.local_addr().unwrap();
        let mut out = SendBatch::default();
        for i in 0..50u8 {
            out.push(to, &vec![i; 100 + usize::from(i)]);
        }
        assert_eq!(out.len(), 50);
        assert_eq!(out.flush(a.as_raw_fd()), 0);
        assert!(out.is_empty());
        let mut inb = RecvBatch::new(2048);
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while seen.len() < 50 && std::time::Instant::now() < deadline {
            match inb.recv(b.as_raw_fd()) {
                Ok(n) => {
                    for i in 0..n {
                        assert_eq!(inb.got[i].1, a.local_addr().unwrap());
                        seen.push(inb.datagram(i).to_vec());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(seen.len(), 50);
        for (i, d) in seen.iter().enumerate() {
            assert_eq!(d.len(), 100 + i);
            assert!(d.iter().all(|&x| x == i as u8));
        }
    }

    #[test]
    fn addresses_round_trip() {
        for a in ["198.18.0.1:443", "[2001:db8::1]:51820"] {
            let a: SocketAddr = a.parse().unwrap();
            let (ss, _) = to_storage(&a);
            assert_eq!(from_storage(&ss), Some(a));
        }
    }
}
