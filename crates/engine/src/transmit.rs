//! Datagrams waiting to leave, in one buffer, grouped for UDP GSO as they are queued.
//!
//! A run of datagrams from one local address to one destination, all of one size (the last may
//! be shorter and ends the run), becomes one [`Transmit`] with a `segment_size`: the runtime
//! hands it to the kernel as one send, which routes, filters and passes it to the device once.
//! Protocol cores write their datagrams straight into the queue's buffer, so a datagram is
//! copied once on its way out (into the kernel).

use std::net::SocketAddr;

use crate::seam::{Transmit, WriteDatagram};

/// Most segments in one GSO send (the kernel's `UDP_MAX_SEGMENTS`).
pub const GSO_MAX_SEGMENTS: usize = 64;
/// Most payload bytes in one GSO send: a UDP datagram's limit over IPv4 and IPv6 alike.
pub const GSO_MAX_BYTES: usize = 65_000;
/// Datagrams longer than this leave on their own: a segment must fit the path MTU (1500 less
/// the IP and UDP headers); WireGuard's data messages on a 1420-byte tunnel are 1452 bytes.
pub const GSO_MAX_SEGMENT: usize = 1452;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    local: SocketAddr,
    to: SocketAddr,
    start: usize,
    len: usize,
    segment: usize,
    count: usize,
    /// A shorter datagram ended the run.
    closed: bool,
}

impl Run {
    /// The run as the runtime sends it, its bytes in `data`.
    fn transmit<'d>(&self, data: &'d [u8]) -> Transmit<'d> {
        Transmit {
            local: self.local,
            to: self.to,
            contents: &data[self.start..self.start + self.len],
            segment_size: (self.count > 1).then_some(self.segment),
        }
    }
}

/// See the module docs. Call [`TransmitQueue::push_with`] to queue and
/// [`TransmitQueue::poll`] to take, until it returns `None` (or [`TransmitQueue::take_all`]);
/// the buffer is reused.
#[derive(Default)]
pub struct TransmitQueue {
    /// Datagrams back to back in `data[..used]`. The vector only grows: its bytes past `used`
    /// are overwritten by the next datagrams, never cleared first.
    data: Vec<u8>,
    used: usize,
    runs: Vec<Run>,
    next: usize,
    gso: bool,
}

impl TransmitQueue {
    /// A queue that groups runs for GSO (`gso`) or leaves every datagram on its own.
    pub fn new(gso: bool) -> Self {
        TransmitQueue {
            gso,
            ..Default::default()
        }
    }

    /// Whether runs are grouped.
    pub fn set_gso(&mut self, gso: bool) {
        self.gso = gso;
    }

    /// Datagrams queued and not yet taken.
    pub fn len(&self) -> usize {
        self.runs[self.next..].iter().map(|r| r.count).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.next == self.runs.len()
    }

    /// Queues one datagram: `write` gets at least `max_len` bytes to fill and returns the
    /// destination and the length it wrote, or `None` for nothing to send.
    pub fn push_with(&mut self, local: SocketAddr, max_len: usize, write: &mut WriteDatagram<'_>) {
        if self.is_empty() && !self.runs.is_empty() {
            self.runs.clear();
            self.used = 0;
            self.next = 0;
        }
        let start = self.used;
        if self.data.len() < start + max_len {
            self.data.resize(start + max_len, 0);
        }
        let Some((to, len)) = write(&mut self.data[start..start + max_len]) else {
            return;
        };
        let len = len.min(max_len);
        self.used = start + len;
        if len == 0 {
            return;
        }
        if self.gso && self.runs.len() > self.next {
            let last = self.runs.last_mut().expect("a run after next");
            if last.local == local
                && last.to == to
                && !last.closed
                && last.segment <= GSO_MAX_SEGMENT
                && len <= last.segment
                && last.count < GSO_MAX_SEGMENTS
                && last.len + len <= GSO_MAX_BYTES
            {
                last.len += len;
                last.count += 1;
                last.closed = len < last.segment;
                return;
            }
        }
        self.runs.push(Run {
            local,
            to,
            start,
            len,
            segment: len,
            count: 1,
            closed: false,
        });
    }

    /// Queues a copy of `bytes`.
    pub fn push(&mut self, local: SocketAddr, to: SocketAddr, bytes: &[u8]) {
        self.push_with(local, bytes.len(), &mut |buf| {
            buf[..bytes.len()].copy_from_slice(bytes);
            Some((to, bytes.len()))
        });
    }

    /// Every datagram and GSO run queued, oldest first, all taken at once (as if polled): for a
    /// runtime that hands them to the kernel from this buffer, in one call.
    pub fn take_all(&mut self) -> impl Iterator<Item = Transmit<'_>> + Clone {
        let from = self.next;
        self.next = self.runs.len();
        let data = &self.data;
        self.runs[from..].iter().map(move |r| r.transmit(data))
    }

    /// The next datagram or GSO run, oldest first.
    pub fn poll(&mut self) -> Option<Transmit<'_>> {
        let r = self.runs.get(self.next)?;
        self.next += 1;
        Some(r.transmit(&self.data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([198, 18, 0, 1], port))
    }

    /// (destination port, total length, segment size) of every transmit.
    fn drain(q: &mut TransmitQueue) -> Vec<(u16, usize, Option<usize>)> {
        let mut v = Vec::new();
        while let Some(t) = q.poll() {
            v.push((t.to.port(), t.contents.len(), t.segment_size));
        }
        v
    }

    #[test]
    fn runs_to_one_destination_become_gso_sends() {
        let mut q = TransmitQueue::new(true);
        let local = addr(443);
        for _ in 0..150 {
            q.push(local, addr(1), &[1u8; GSO_MAX_SEGMENT]);
        }
        q.push(local, addr(1), &[2u8; 60]);
        for _ in 0..3 {
            q.push(local, addr(1), &[3u8; 1000]);
            q.push(local, addr(2), &[4u8; 1000]);
        }
        q.push(local, addr(2), &[5u8; 3000]);
        q.push(local, addr(2), &[5u8; 3000]);
        assert_eq!(q.len(), 150 + 1 + 6 + 2);
        let got = drain(&mut q);
        let full = GSO_MAX_BYTES / GSO_MAX_SEGMENT;
        let runs = 150 / full;
        for t in &got[..runs] {
            assert_eq!(*t, (1, full * GSO_MAX_SEGMENT, Some(GSO_MAX_SEGMENT)));
        }
        // what is left of the full-size run, closed by the short datagram
        let left = 150 - runs * full;
        assert_eq!(
            got[runs],
            (1, left * GSO_MAX_SEGMENT + 60, Some(GSO_MAX_SEGMENT))
        );
        // alternating destinations and oversized datagrams leave one by one
        let rest = &got[runs + 1..];
        assert_eq!(rest.len(), 8);
        assert!(rest[..6].iter().all(|t| t.1 == 1000 && t.2.is_none()));
        assert_eq!(&rest[6..], &[(2, 3000, None), (2, 3000, None)]);
        assert!(q.is_empty());
        assert!(q.poll().is_none());
    }

    #[test]
    fn contents_are_the_datagrams_in_order() {
        let mut q = TransmitQueue::new(true);
        for i in 0..10u8 {
            q.push(addr(443), addr(1), &[i; 100]);
        }
        let t = q.poll().unwrap();
        assert_eq!(t.segment_size, Some(100));
        for (i, seg) in t.contents.chunks(100).enumerate() {
            assert!(seg.iter().all(|&b| b == i as u8));
        }
    }

    #[test]
    fn without_gso_or_from_another_local_address_runs_do_not_join() {
        let mut q = TransmitQueue::new(false);
        for _ in 0..5 {
            q.push(addr(443), addr(1), &[0u8; 500]);
        }
        assert_eq!(drain(&mut q).len(), 5);
        q.set_gso(true);
        q.push(addr(443), addr(1), &[0u8; 500]);
        q.push(addr(992), addr(1), &[0u8; 500]);
        assert_eq!(drain(&mut q), vec![(1, 500, None), (1, 500, None)]);
    }

    #[test]
    fn taking_all_at_once_gives_what_polling_would() {
        let fill = |q: &mut TransmitQueue| {
            for i in 0..5u8 {
                q.push(addr(443), addr(1), &[i; 300]);
            }
            q.push(addr(443), addr(2), &[9; 40]);
            q.push(addr(992), addr(2), &[8; 40]);
        };
        let (mut a, mut b) = (TransmitQueue::new(true), TransmitQueue::new(true));
        fill(&mut a);
        fill(&mut b);
        // one polled first: the rest are what is left
        let first = a
            .poll()
            .map(|t| (t.local, t.to, t.contents.to_vec(), t.segment_size));
        let owned = |t: Transmit<'_>| (t.local, t.to, t.contents.to_vec(), t.segment_size);
        let polled: Vec<_> = std::iter::from_fn(|| b.poll().map(owned)).collect();
        assert_eq!(polled.len(), 3);
        assert_eq!(polled[0].3, Some(300));
        assert_eq!(Some(&polled[0]), first.as_ref());
        let taken: Vec<_> = a.take_all().map(owned).collect();
        assert_eq!(taken, polled[1..]);
        assert!(a.is_empty());
        assert_eq!(a.take_all().count(), 0);
        // the buffer is reused for what comes next
        fill(&mut a);
        assert_eq!(a.take_all().map(owned).collect::<Vec<_>>(), polled);
    }

    #[test]
    fn a_write_that_sends_nothing_leaves_nothing() {
        let mut q = TransmitQueue::new(true);
        q.push_with(addr(443), 2000, &mut |_| None);
        assert!(q.is_empty());
        q.push(addr(443), addr(1), b"x");
        assert_eq!(drain(&mut q), vec![(1, 1, None)]);
    }
}
