//! Batched UDP I/O: `recvmmsg` and `sendmmsg`, so a burst of datagrams costs one system call
//! each way instead of one per datagram (the profile of the WireGuard path was dominated by
//! per-datagram `sendto`/`recvfrom`). This is the crate's only unsafe code: filling the kernel's
//! message arrays and reading back the addresses it wrote, socket options, and the allocator's
//! limits ([`return_large_frees`]).
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
    /// Room for `BATCH` messages of `size` bytes each, in one allocation: large enough that the
    /// allocator maps it fresh, so the kernel backs only the pages datagrams were written to
    /// (a slot holds up to 64 KiB, most datagrams use one page of it).
    buf: Vec<u8>,
    size: usize,
    addrs: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    /// Control-message room per datagram (the destination address, where the socket has
    /// [`enable_pktinfo`]), as u64s for cmsghdr's alignment.
    controls: Vec<[u64; 8]>,
    /// (length, source) of each datagram of the last call
    pub got: Vec<(usize, SocketAddr)>,
    /// The address each datagram of the last call was sent to, where the socket says
    /// ([`enable_pktinfo`]).
    pub dst: Vec<Option<Ipv4Addr>>,
    /// Where the kernel coalesced a run of one sender's datagrams into one message
    /// ([`enable_gro`]): their size (the last may be shorter). See [`RecvBatch::datagrams`].
    pub segment: Vec<Option<usize>>,
}

// SAFETY: the raw pointers inside iovec/mmsghdr only ever point into this struct's own buffers
// and are rebuilt before each system call.
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    pub fn new(buf_size: usize) -> Self {
        RecvBatch {
            buf: vec![0u8; BATCH * buf_size],
            size: buf_size,
            // SAFETY: plain data, zero is valid.
            addrs: vec![unsafe { zeroed() }; BATCH],
            iovs: Vec::with_capacity(BATCH),
            msgs: Vec::with_capacity(BATCH),
            controls: vec![[0; 8]; BATCH],
            got: Vec::with_capacity(BATCH),
            dst: Vec::with_capacity(BATCH),
            segment: Vec::with_capacity(BATCH),
        }
    }

    /// Message `i` of the last call: one datagram, or a coalesced run (see
    /// [`RecvBatch::datagrams`]).
    pub fn datagram(&self, i: usize) -> &[u8] {
        let start = i * self.size;
        &self.buf[start..start + self.got[i].0]
    }

    /// The datagrams of message `i`, a coalesced run cut back into the datagrams it was.
    pub fn datagrams(&self, i: usize) -> impl Iterator<Item = &[u8]> {
        let all = self.datagram(i);
        let size = self.segment[i]
            .filter(|&s| s > 0)
            .unwrap_or(all.len().max(1));
        all.chunks(size)
    }

    /// One non-blocking `recvmmsg`; fills `got`. WouldBlock when nothing is waiting.
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.iovs.clear();
        self.msgs.clear();
        self.got.clear();
        self.dst.clear();
        self.segment.clear();
        for b in self.buf.chunks_exact_mut(self.size) {
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
            h.msg_control = self.controls[i].as_mut_ptr().cast();
            h.msg_controllen = size_of::<[u64; 8]>() as _;
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
            let (dst, segment) = control_of(&self.msgs[i].msg_hdr);
            self.dst.push(dst);
            self.segment.push(segment);
        }
        Ok(n as usize)
    }
}

/// What a received message's control messages say: its destination address (`IP_PKTINFO`)
/// and the size of the datagrams the kernel coalesced into it (`UDP_GRO`).
fn control_of(h: &libc::msghdr) -> (Option<Ipv4Addr>, Option<usize>) {
    let (mut dst, mut segment) = (None, None);
    // SAFETY: the kernel filled msg_control (msg_controllen bytes, within our buffer); the
    // CMSG macros walk it within those bounds.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::IPPROTO_IP && (*c).cmsg_type == libc::IP_PKTINFO {
                let info = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::in_pktinfo);
                dst = Some(Ipv4Addr::from(info.ipi_addr.s_addr.to_ne_bytes()));
            }
            if (*c).cmsg_level == libc::SOL_UDP && (*c).cmsg_type == UDP_GRO {
                let size = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::c_int);
                segment = usize::try_from(size).ok();
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    (dst, segment)
}

/// `UDP_GRO` from linux/udp.h: receive runs of one sender's equal-sized datagrams as one
/// message, with their size in a control message.
const UDP_GRO: libc::c_int = 104;

/// Asks the kernel to hand over runs of datagrams coalesced (`UDP_GRO`): a client sending with
/// GSO (wireguard-go does) has its run arrive in one message instead of being cut into
/// datagrams first, each its own read. Every message must then be cut with
/// [`RecvBatch::datagrams`].
pub fn enable_gro(fd: RawFd) -> io::Result<()> {
    turn_on(fd, libc::SOL_UDP, UDP_GRO)
}

/// Asks the kernel to say each datagram's destination address ([`RecvBatch::dst`]): IKE's
/// NAT detection hashes the address the peer sent to, which a wildcard bind does not tell.
pub fn enable_pktinfo(fd: RawFd) -> io::Result<()> {
    turn_on(fd, libc::IPPROTO_IP, libc::IP_PKTINFO)
}

/// Has the allocator hand blocks of 1 MiB and more back to the system when they are freed,
/// and trim its heap's free top beyond that. glibc's default raises both limits to the largest
/// block freed so far, so that the megabytes of a config of thousands of keys, written out on
/// every change, stayed resident after each save. Not lower: SecureNAT's flows move data in
/// blocks of up to 256 KiB, which would then each be mapped and unmapped (15% more CPU per GB
/// uploaded at 128 KiB). Call at start-up. False where the allocator refused (or is not
/// glibc's, whose limits these are).
pub fn return_large_frees() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const LIMIT: libc::c_int = 1024 * 1024;
        // SAFETY: mallopt only sets two of the allocator's parameters (under its own lock).
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, LIMIT) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, LIMIT) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    false
}

/// Sets a socket option whose value is the `int` 1.
fn turn_on(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a plain setsockopt with a c_int option value that outlives the call.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&on as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `UDP_SEGMENT` from linux/udp.h (not in libc for glibc targets): the segment size of a UDP
/// GSO send.
const UDP_SEGMENT: libc::c_int = 103;
/// Room for one control message carrying a u16.
const CMSG_BUF: usize = 32;

/// One message: a datagram, or a run of `segment`-sized datagrams for one GSO send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Msg {
    /// Where its bytes begin, in the caller's buffer, borrowed for one [`SendBatch::send`].
    base: *const u8,
    len: usize,
    to: SocketAddr,
    /// `Some`: a GSO run of this segment size (the engine formed it).
    segment: Option<usize>,
}

/// Datagrams leaving one socket together, with `sendmmsg`, straight from the buffers the
/// engine or a worker wrote them in ([`SendBatch::send`]): the only copy on their way out is
/// the kernel's.
///
/// A GSO run goes to the kernel as one send (`UDP_SEGMENT`), which routes, filters and hands it
/// to the device once and cuts it into datagrams as late as it can. Where the kernel or the
/// device refuses GSO (`EIO`), the batch sends every run as single datagrams from then on and
/// says so ([`SendBatch::uses_gso`]), so that the engine stops forming runs.
pub struct SendBatch {
    msgs: Vec<Msg>,
    addrs: Vec<(libc::sockaddr_storage, libc::socklen_t)>,
    iovs: Vec<libc::iovec>,
    cmsgs: Vec<[u64; CMSG_BUF / 8]>,
    hdrs: Vec<libc::mmsghdr>,
    gso: bool,
}

// SAFETY: the pointers refer to this struct's own vectors and, during one `send` call only, to
// the buffers that call borrows; none is kept between calls.
unsafe impl Send for SendBatch {}

impl Default for SendBatch {
    fn default() -> Self {
        SendBatch {
            msgs: Vec::with_capacity(BATCH),
            addrs: Vec::with_capacity(BATCH),
            iovs: Vec::with_capacity(BATCH),
            cmsgs: Vec::with_capacity(BATCH),
            hdrs: Vec::with_capacity(BATCH),
            gso: true,
        }
    }
}

impl SendBatch {
    /// A batch that sends every GSO run as single datagrams: for a raw socket (ESP), where
    /// the kernel would send a run as one packet.
    pub fn without_gso() -> SendBatch {
        SendBatch {
            gso: false,
            ..SendBatch::default()
        }
    }

    /// Sends `datagrams` (destination, bytes, and the segment size of a GSO run: the last
    /// segment may be shorter) from the buffers they lie in, `BATCH` messages to a
    /// `sendmmsg`; returns how many datagrams the kernel did not take (socket buffer full or an
    /// error), which are dropped.
    pub fn send<'a>(
        &mut self,
        fd: RawFd,
        datagrams: impl IntoIterator<Item = (SocketAddr, &'a [u8], Option<usize>)>,
    ) -> usize {
        // nothing from an earlier call can be left (its flush forgot it), not even after a
        // panic that call did not finish: such pointers would be dangling
        self.msgs.clear();
        for (to, bytes, segment) in datagrams {
            self.queue(bytes, to, segment);
        }
        // flush leaves no message behind: no pointer outlives the borrow of `datagrams`
        self.flush(fd)
    }

    fn queue(&mut self, bytes: &[u8], to: SocketAddr, segment: Option<usize>) {
        let len = bytes.len();
        let segment = segment.filter(|s| *s > 0 && *s < len);
        self.msgs.push(Msg {
            base: bytes.as_ptr(),
            len,
            to,
            segment,
        });
        if segment.is_some() && !self.gso {
            let last = self.msgs.len() - 1;
            self.split(last);
        }
    }

    /// Datagrams queued (a GSO run counts as its segments).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.msgs.iter().map(Msg::datagrams).sum()
    }

    /// Whether GSO runs still leave as one send each.
    pub fn uses_gso(&self) -> bool {
        self.gso
    }

    /// Replaces message `i`, a GSO run, by its datagrams.
    fn split(&mut self, i: usize) {
        let m = self.msgs[i];
        let Some(seg) = m.segment else {
            return;
        };
        let singles: Vec<Msg> = (0..m.len)
            .step_by(seg)
            .map(|off| Msg {
                base: m.base.wrapping_add(off),
                len: seg.min(m.len - off),
                to: m.to,
                segment: None,
            })
            .collect();
        self.msgs.splice(i..=i, singles);
    }

    /// Sends everything queued (see [`SendBatch::send`]) and forgets it.
    fn flush(&mut self, fd: RawFd) -> usize {
        let mut dropped = 0;
        let mut g = 0;
        while g < self.msgs.len() {
            let end = (g + BATCH).min(self.msgs.len());
            self.addrs.clear();
            self.iovs.clear();
            self.cmsgs.clear();
            self.hdrs.clear();
            for m in &self.msgs[g..end] {
                self.addrs.push(to_storage(&m.to));
                self.iovs.push(libc::iovec {
                    // the kernel only reads it
                    iov_base: m.base.cast_mut().cast(),
                    iov_len: m.len,
                });
                let mut c = [0u64; CMSG_BUF / 8];
                if let Some(seg) = m.segment {
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
            for k in 0..end - g {
                // SAFETY: plain data, zero is valid.
                let mut h: libc::msghdr = unsafe { zeroed() };
                h.msg_name = (&mut self.addrs[k].0 as *mut libc::sockaddr_storage).cast();
                h.msg_namelen = self.addrs[k].1;
                h.msg_iov = &mut self.iovs[k];
                h.msg_iovlen = 1;
                if self.msgs[g + k].segment.is_some() {
                    h.msg_control = self.cmsgs[k].as_mut_ptr().cast();
                    // SAFETY: CMSG_SPACE is a pure size computation.
                    h.msg_controllen = unsafe { libc::CMSG_SPACE(2) } as _;
                }
                self.hdrs.push(libc::mmsghdr {
                    msg_hdr: h,
                    msg_len: 0,
                });
            }
            let want = end - g;
            // SAFETY: hdrs holds `want` valid headers pointing into the buffers `send` borrows
            // (each message within its datagram's slice), self.addrs, self.iovs and
            // self.cmsgs, none of which move or end until the call returns.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    self.hdrs.as_mut_ptr(),
                    want as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if n > 0 {
                g += n as usize;
                continue;
            }
            let err = io::Error::last_os_error().raw_os_error();
            let run = self.msgs[g].segment.is_some();
            if run && err == Some(libc::EIO) {
                // the device cannot take GSO (no checksum offload): one by one from now on
                self.gso = false;
                let mut i = g;
                while i < self.msgs.len() {
                    let n = self.msgs[i].datagrams();
                    self.split(i);
                    i += n;
                }
                continue;
            }
            if run && matches!(err, Some(libc::EINVAL) | Some(libc::EMSGSIZE)) {
                // this destination's route is narrower than a segment: send this run one by
                // one (the kernel fragments as it would any datagram), keep GSO for the others
                self.split(g);
                continue;
            }
            // the first message failed (buffer full, unreachable...): drop it, go on
            dropped += self.msgs[g].datagrams();
            g += 1;
        }
        self.msgs.clear();
        dropped
    }
}

impl Msg {
    fn datagrams(&self) -> usize {
        match self.segment {
            Some(seg) => self.len.div_ceil(seg),
            None => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn the_allocator_takes_the_limits_for_returning_memory() {
        assert!(return_large_frees());
    }

    #[test]
    fn a_batch_goes_out_and_comes_back_in_order() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = b.local_addr().unwrap();
        let mut out = SendBatch::default();
        let data: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; 100 + usize::from(i)]).collect();
        let datagrams = data.iter().map(|d| (to, &d[..], None));
        assert_eq!(out.send(a.as_raw_fd(), datagrams), 0);
        assert!(out.msgs.is_empty(), "nothing kept once sent");
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
        drain_counting(sock, want).0
    }

    /// The datagrams that arrived, and how many messages were coalesced runs.
    fn drain_counting(
        sock: &std::net::UdpSocket,
        want: usize,
    ) -> (Vec<(SocketAddr, Vec<u8>)>, usize) {
        let mut inb = RecvBatch::new(65_536);
        let (mut seen, mut runs) = (Vec::new(), 0);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while seen.len() < want && std::time::Instant::now() < deadline {
            match inb.recv(sock.as_raw_fd()) {
                Ok(n) => {
                    for i in 0..n {
                        runs += usize::from(inb.segment[i].is_some());
                        for d in inb.datagrams(i) {
                            seen.push((inb.got[i].1, d.to_vec()));
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                Err(e) => panic!("{e}"),
            }
        }
        (seen, runs)
    }

    #[test]
    fn with_gro_a_run_arrives_in_one_message_and_is_cut_back_into_its_datagrams() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        enable_gro(b.as_raw_fd()).unwrap();
        let tb = b.local_addr().unwrap();
        let mut out = SendBatch::default();
        let (mut want, run) = numbered(0, 30, 1452);
        let (short, short_run) = numbered(30, 1, 100);
        want.extend(short);
        let run = [run, short_run].concat();
        let (single, _) = numbered(31, 1, 700);
        let datagrams = [(tb, &run[..], Some(1452)), (tb, &single[0][..], None)];
        want.extend(single.clone());
        assert_eq!(out.send(a.as_raw_fd(), datagrams), 0);
        let (got, runs) = drain_counting(&b, want.len());
        let got: Vec<Vec<u8>> = got.into_iter().map(|x| x.1).collect();
        assert_eq!(got, want);
        assert!(runs >= 1, "loopback hands a GSO send to a GRO socket whole");
    }

    /// `count` datagrams of `len` bytes numbered from `first`, and their concatenation.
    fn numbered(first: u32, count: u32, len: usize) -> (Vec<Vec<u8>>, Vec<u8>) {
        let one: Vec<Vec<u8>> = (first..first + count)
            .map(|n| {
                let mut d = vec![(n % 251) as u8; len];
                d[..4].copy_from_slice(&n.to_be_bytes());
                d
            })
            .collect();
        let all = one.concat();
        (one, all)
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
        // two full runs and a run ending in a short datagram to b, single datagrams to c
        let (mut want_b, run1) = numbered(0, 44, 1452);
        let (more, run2) = numbered(44, 44, 1452);
        want_b.extend(more);
        let (mut more, mut run3) = numbered(88, 10, 1000);
        let (short, short_run) = numbered(98, 1, 60);
        run3.extend(short_run);
        more.extend(short);
        want_b.extend(more);
        let (want_c, _) = numbered(200, 5, 3000);
        let mut datagrams = vec![
            (tb, &run1[..], Some(1452)),
            (tb, &run2[..], Some(1452)),
            (tb, &run3[..], Some(1000)),
        ];
        datagrams.extend(want_c.iter().map(|d| (tc, &d[..], None)));
        assert_eq!(out.send(a.as_raw_fd(), datagrams), 0);
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
    fn a_run_is_split_into_its_datagrams_when_gso_is_refused() {
        let mut out = SendBatch::default();
        let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let (single, run, later) = ([0u8; 100], [1u8; 2500], [2u8; 2000]);
        out.queue(&single, to, None);
        out.queue(&run, to, Some(1000));
        assert_eq!(out.len(), 4);
        out.split(1);
        let lens: Vec<(usize, Option<usize>)> =
            out.msgs.iter().map(|m| (m.len, m.segment)).collect();
        assert_eq!(
            lens,
            vec![(100, None), (1000, None), (1000, None), (500, None)]
        );
        assert_eq!(out.len(), 4);
        // each datagram of the run where it lies in the run's buffer
        for (k, m) in out.msgs[1..].iter().enumerate() {
            assert_eq!(m.base, run[k * 1000..].as_ptr());
        }
        // once GSO is off, runs are split as they come
        out.gso = false;
        out.queue(&later, to, Some(1000));
        assert_eq!(out.msgs.len(), 6);
        assert!(out.msgs.iter().all(|m| m.segment.is_none()));
        out.msgs.clear();
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
