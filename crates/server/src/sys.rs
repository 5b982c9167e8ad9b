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

/// `UDP_SEGMENT` from linux/udp.h (not in libc for glibc targets): the segment size of a UDP
/// GSO send.
const UDP_SEGMENT: libc::c_int = 103;
/// Most segments the kernel takes in one GSO send (`UDP_MAX_SEGMENTS`).
const GSO_MAX_SEGMENTS: usize = 64;
/// Most payload bytes in one GSO send: a UDP datagram's limit over IPv6 and IPv4 alike.
const GSO_MAX_BYTES: usize = 65_000;
/// Datagrams longer than this leave one by one: a segment must fit the path MTU (1500 less IP and
/// UDP headers); WireGuard's data messages on a 1420-byte tunnel are 1452 bytes.
const GSO_MAX_SEGMENT: usize = 1452;
/// Room for one control message carrying a u16.
const CMSG_BUF: usize = 32;

/// Datagrams waiting to leave one socket, sent together by [`SendBatch::flush`].
///
/// Runs of datagrams to the same destination leave as one UDP GSO send (`UDP_SEGMENT`): the
/// kernel routes, filters and hands the run to the device once and cuts it into datagrams as late
/// as it can. Where the kernel or the device refuses GSO (`EIO`), the batch falls back to one
/// message per datagram for good.
pub struct SendBatch {
    data: Vec<u8>,
    /// (start, len, destination) of each datagram in `data`
    items: Vec<(usize, usize, SocketAddr)>,
    /// (first item, item count, segment size) of each message to send
    groups: Vec<(usize, usize, usize)>,
    addrs: Vec<(libc::sockaddr_storage, libc::socklen_t)>,
    iovs: Vec<libc::iovec>,
    cmsgs: Vec<[u64; CMSG_BUF / 8]>,
    msgs: Vec<libc::mmsghdr>,
    gso: bool,
}

// SAFETY: as for RecvBatch, the pointers only refer to this struct's own buffers.
unsafe impl Send for SendBatch {}

impl Default for SendBatch {
    fn default() -> Self {
        SendBatch {
            data: Vec::with_capacity(BATCH * 1500),
            items: Vec::with_capacity(BATCH),
            groups: Vec::with_capacity(BATCH),
            addrs: Vec::with_capacity(BATCH),
            iovs: Vec::with_capacity(BATCH),
            cmsgs: Vec::with_capacity(BATCH),
            msgs: Vec::with_capacity(BATCH),
            gso: true,
        }
    }
}

impl SendBatch {
    /// A batch that never uses GSO (one message per datagram).
    #[cfg(test)]
    pub fn without_gso() -> Self {
        SendBatch {
            gso: false,
            ..Default::default()
        }
    }

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

    /// Whether runs to one destination still leave as GSO sends.
    #[cfg(test)]
    pub fn uses_gso(&self) -> bool {
        self.gso
    }

    /// Splits `items[from..]` into messages: with GSO, a run to one destination of equal sizes
    /// (the last may be shorter) is one message; otherwise, and for the items before `solo_until`,
    /// every datagram is its own.
    fn plan(&mut self, from: usize, solo_until: usize) {
        self.groups.clear();
        let items = &self.items;
        let mut i = from;
        while i < items.len() {
            let (_, seg, to) = items[i];
            let mut j = i + 1;
            if self.gso && seg <= GSO_MAX_SEGMENT && i >= solo_until {
                let mut total = seg;
                while j < items.len()
                    && j - i < GSO_MAX_SEGMENTS
                    && items[j].2 == to
                    && items[j].1 <= seg
                    && items[j].1 > 0
                    && total + items[j].1 <= GSO_MAX_BYTES
                {
                    total += items[j].1;
                    j += 1;
                    if items[j - 1].1 < seg {
                        break; // a shorter datagram ends a GSO run
                    }
                }
            }
            self.groups.push((i, j - i, seg));
            i = j;
        }
    }

    /// Sends everything queued with `sendmmsg`, `BATCH` messages at a time; returns how many
    /// datagrams the kernel did not take (socket buffer full or an error), which are dropped.
    pub fn flush(&mut self, fd: RawFd) -> usize {
        let mut dropped = 0;
        self.plan(0, 0);
        let mut g = 0;
        while g < self.groups.len() {
            let end = (g + BATCH).min(self.groups.len());
            self.addrs.clear();
            self.iovs.clear();
            self.cmsgs.clear();
            self.msgs.clear();
            for &(first, count, seg) in &self.groups[g..end] {
                let (off, _, to) = self.items[first];
                let bytes: usize = self.items[first..first + count].iter().map(|i| i.1).sum();
                self.addrs.push(to_storage(&to));
                self.iovs.push(libc::iovec {
                    iov_base: self.data[off..].as_mut_ptr().cast(),
                    iov_len: bytes,
                });
                let mut c = [0u64; CMSG_BUF / 8];
                if count > 1 {
                    // SAFETY: c is CMSG_BUF bytes, 8-aligned, larger than CMSG_SPACE(2) (24).
                    unsafe {
                        let h = c.as_mut_ptr() as *mut libc::cmsghdr;
                        (*h).cmsg_level = libc::SOL_UDP;
                        (*h).cmsg_type = UDP_SEGMENT;
                        (*h).cmsg_len = libc::CMSG_LEN(2) as _;
                        let d = (h as *mut u8).add(size_of::<libc::cmsghdr>());
                        std::ptr::write_unaligned(d as *mut u16, seg as u16);
                    }
                }
                self.cmsgs.push(c);
            }
            for (k, &(_, count, _)) in self.groups[g..end].iter().enumerate() {
                // SAFETY: plain data, zero is valid.
                let mut h: libc::msghdr = unsafe { zeroed() };
                h.msg_name = (&mut self.addrs[k].0 as *mut libc::sockaddr_storage).cast();
                h.msg_namelen = self.addrs[k].1;
                h.msg_iov = &mut self.iovs[k];
                h.msg_iovlen = 1;
                if count > 1 {
                    h.msg_control = self.cmsgs[k].as_mut_ptr().cast();
                    // SAFETY: CMSG_SPACE is a pure size computation.
                    h.msg_controllen = unsafe { libc::CMSG_SPACE(2) } as _;
                }
                self.msgs.push(libc::mmsghdr {
                    msg_hdr: h,
                    msg_len: 0,
                });
            }
            let want = end - g;
            // SAFETY: msgs holds `want` valid headers pointing into self.data, self.addrs and
            // self.cmsgs, none of which move until the call returns.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    self.msgs.as_mut_ptr(),
                    want as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if n > 0 {
                g += n as usize;
                continue;
            }
            let err = io::Error::last_os_error().raw_os_error();
            let (first, count, _) = self.groups[g];
            if count > 1 && err == Some(libc::EIO) {
                // the device cannot take GSO (no checksum offload): one by one from now on
                self.gso = false;
                self.plan(first, 0);
                g = 0;
                continue;
            }
            if count > 1 && matches!(err, Some(libc::EINVAL) | Some(libc::EMSGSIZE)) {
                // this destination's route is narrower than a segment: send this run one by one
                // (the kernel fragments as it would any datagram), keep GSO for the others
                self.plan(first, first + count);
                g = 0;
                continue;
            }
            // the first message failed (buffer full, unreachable...): drop it, go on
            dropped += count;
            g += 1;
        }
        self.items.clear();
        self.data.clear();
        self.groups.clear();
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
        let seen: Vec<Vec<u8>> = drain(&b, 50)
            .into_iter()
            .map(|(from, d)| {
                assert_eq!(from, a.local_addr().unwrap());
                d
            })
            .collect();
        assert_eq!(seen.len(), 50);
        for (i, d) in seen.iter().enumerate() {
            assert_eq!(d.len(), 100 + i);
            assert!(d.iter().all(|&x| x == i as u8));
        }
    }

    fn drain(sock: &std::net::UdpSocket, want: usize) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut inb = RecvBatch::new(4096);
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while seen.len() < want && std::time::Instant::now() < deadline {
            match inb.recv(sock.as_raw_fd()) {
                Ok(n) => {
                    for i in 0..n {
                        seen.push((inb.got[i].1, inb.datagram(i).to_vec()));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                Err(e) => panic!("{e}"),
            }
        }
        seen
    }

    #[test]
    fn gso_runs_arrive_as_the_datagrams_they_were() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for s in [&b, &c] {
            socket2::SockRef::from(s)
                .set_recv_buffer_size(4 << 20)
                .unwrap();
        }
        let (tb, tc) = (b.local_addr().unwrap(), c.local_addr().unwrap());
        let mut out = SendBatch::default();
        let mut want_b = Vec::new();
        let mut want_c = Vec::new();
        // 150 full-size datagrams to b (more than one GSO message holds), a short one ending
        // the run, then b and c interleaved, then oversized ones that must leave alone
        let mut n = 0u32;
        let mut push = |out: &mut SendBatch, to, len: usize, want: &mut Vec<Vec<u8>>| {
            n += 1;
            let mut d = vec![(n % 251) as u8; len];
            d[..4].copy_from_slice(&n.to_be_bytes());
            out.push(to, &d);
            want.push(d);
        };
        for _ in 0..150 {
            push(&mut out, tb, GSO_MAX_SEGMENT, &mut want_b);
        }
        push(&mut out, tb, 60, &mut want_b);
        for _ in 0..10 {
            push(&mut out, tb, 1000, &mut want_b);
            push(&mut out, tc, 1000, &mut want_c);
        }
        push(&mut out, tc, 3000, &mut want_c);
        push(&mut out, tc, 3000, &mut want_c);
        out.plan(0, 0);
        assert!(
            out.groups.len() < out.items.len() / 2,
            "runs were not grouped: {} messages for {} datagrams",
            out.groups.len(),
            out.items.len()
        );
        assert!(out.groups.iter().all(|g| g.1 <= GSO_MAX_SEGMENTS));
        assert_eq!(out.flush(a.as_raw_fd()), 0);
        assert!(out.uses_gso(), "loopback takes GSO sends");
        let got_b: Vec<Vec<u8>> = drain(&b, want_b.len()).into_iter().map(|x| x.1).collect();
        let got_c: Vec<Vec<u8>> = drain(&c, want_c.len()).into_iter().map(|x| x.1).collect();
        for (got, want, who) in [(&got_b, &want_b, "b"), (&got_c, &want_c, "c")] {
            assert_eq!(got.len(), want.len(), "datagrams at {who}");
            for (i, (g, w)) in got.iter().zip(want.iter()).enumerate() {
                assert!(
                    g == w,
                    "datagram {i} at {who}: got {} bytes starting {:?}, want {} bytes starting {:?}",
                    g.len(),
                    &g[..g.len().min(8)],
                    w.len(),
                    &w[..w.len().min(8)]
                );
            }
        }
    }

    #[test]
    fn without_gso_every_datagram_is_its_own_message() {
        let mut out = SendBatch::without_gso();
        let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
        for _ in 0..10 {
            out.push(to, &[0u8; 1000]);
        }
        out.plan(0, 0);
        assert_eq!(out.groups.len(), 10);
        assert!(out.groups.iter().all(|g| g.1 == 1));
    }

    #[test]
    fn a_run_the_route_refused_as_gso_is_planned_one_by_one() {
        let mut out = SendBatch::default();
        let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
        for _ in 0..10 {
            out.push(to, &[0u8; 1000]);
        }
        out.plan(0, 0);
        assert_eq!(out.groups, vec![(0, 10, 1000)]);
        // as flush re-plans after EINVAL/EMSGSIZE for a run of the first four items
        out.plan(0, 4);
        assert_eq!(
            out.groups,
            vec![
                (0, 1, 1000),
                (1, 1, 1000),
                (2, 1, 1000),
                (3, 1, 1000),
                (4, 6, 1000)
            ]
        );
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
