//! The control channel's reliability layer, one per key: message ids from 0 in each
//! direction, at most 6 messages out unacknowledged, 12 accepted ahead of the next expected,
//! every message acknowledged (duplicates too, since an acknowledgement can be lost),
//! delivered in order, and sent again after 2 s, then 4, 8 ... until acknowledged.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::packet::{Control, SessionId, P_ACK_V1};

/// Messages out and unacknowledged at once.
pub const SEND_WINDOW: u32 = 6;
/// Messages accepted ahead of the next one expected.
pub const RECEIVE_WINDOW: u32 = 12;
/// Acknowledgements piggybacked on a message, and in a P_ACK_V1 of their own.
const PIGGYBACK_ACKS: usize = 4;
const ACK_PACKET_ACKS: usize = 8;
/// The first retransmission timeout (OpenVPN's tls-timeout) and the longest.
pub const RETRANSMIT: Duration = Duration::from_secs(2);
const RETRANSMIT_MAX: Duration = Duration::from_secs(16);

#[derive(Debug)]
struct Outgoing {
    opcode: u8,
    payload: Vec<u8>,
    /// When it was last sent, and when it goes again.
    due: Option<Instant>,
    timeout: Duration,
}

/// What a received control packet was to the layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// A new message, stored for delivery in order.
    New,
    /// A message already had (acknowledged again), or only acknowledgements.
    Old,
    /// Beyond the receive window: dropped and not acknowledged.
    OutOfWindow,
}

#[derive(Debug, Default)]
pub struct Reliable {
    next_send: u32,
    waiting: VecDeque<(u8, Vec<u8>)>,
    unacked: BTreeMap<u32, Outgoing>,
    next_receive: u32,
    received: BTreeMap<u32, (u8, Vec<u8>)>,
    /// Ids to acknowledge, oldest first.
    to_ack: VecDeque<u32>,
}

impl Reliable {
    /// Queues a message (`opcode` and its payload) for reliable delivery.
    pub fn send(&mut self, opcode: u8, payload: Vec<u8>) {
        self.waiting.push_back((opcode, payload));
    }

    /// Messages not yet acknowledged, or not yet sent.
    pub fn pending(&self) -> usize {
        self.unacked.len() + self.waiting.len()
    }

    /// Takes in a control packet addressed to this key (its session id already checked).
    pub fn receive(&mut self, c: &Control<'_>) -> Received {
        for id in &c.acks {
            self.unacked.remove(id);
        }
        let Some(id) = c.message_id else {
            return Received::Old;
        };
        if id.wrapping_sub(self.next_receive) >= RECEIVE_WINDOW {
            // behind us: a retransmission of something delivered; ahead: too far
            if id < self.next_receive {
                self.ack(id);
                return Received::Old;
            }
            return Received::OutOfWindow;
        }
        self.ack(id);
        if self.received.contains_key(&id) {
            return Received::Old;
        }
        self.received.insert(id, (c.opcode, c.payload.to_vec()));
        Received::New
    }

    fn ack(&mut self, id: u32) {
        if !self.to_ack.contains(&id) {
            self.to_ack.push_back(id);
        }
    }

    /// The next message in order, if it has come.
    pub fn next_message(&mut self) -> Option<(u8, Vec<u8>)> {
        let m = self.received.remove(&self.next_receive)?;
        self.next_receive += 1;
        Some(m)
    }

    /// Packets to send now: new and due messages (with acknowledgements piggybacked), then
    /// acknowledgements left over in P_ACK_V1 packets.
    pub fn transmit(
        &mut self,
        now: Instant,
        key_id: u8,
        local: SessionId,
        remote: SessionId,
        out: &mut Vec<Vec<u8>>,
    ) {
        while self.unacked.len() < SEND_WINDOW as usize {
            let Some((opcode, payload)) = self.waiting.pop_front() else {
                break;
            };
            self.unacked.insert(
                self.next_send,
                Outgoing {
                    opcode,
                    payload,
                    due: None,
                    timeout: RETRANSMIT,
                },
            );
            self.next_send += 1;
        }
        for (id, o) in self.unacked.iter_mut() {
            if o.due.is_some_and(|d| d > now) {
                continue;
            }
            if o.due.is_some() {
                o.timeout = (o.timeout * 2).min(RETRANSMIT_MAX);
            }
            o.due = Some(now + o.timeout);
            let n = self.to_ack.len().min(PIGGYBACK_ACKS);
            let acks: Vec<u32> = self.to_ack.drain(..n).collect();
            let mut p = Vec::with_capacity(Control::header_len(n, true) + o.payload.len());
            Control {
                opcode: o.opcode,
                key_id,
                session: local,
                acked_session: (!acks.is_empty()).then_some(remote),
                acks,
                message_id: Some(*id),
                payload: &o.payload,
            }
            .emit(&mut p);
            out.push(p);
        }
        while !self.to_ack.is_empty() {
            let n = self.to_ack.len().min(ACK_PACKET_ACKS);
            let acks: Vec<u32> = self.to_ack.drain(..n).collect();
            let mut p = Vec::with_capacity(Control::header_len(n, false));
            Control {
                opcode: P_ACK_V1,
                key_id,
                session: local,
                acks,
                acked_session: Some(remote),
                message_id: None,
                payload: &[],
            }
            .emit(&mut p);
            out.push(p);
        }
    }

    /// When a message is due again (`None`: nothing outstanding, or something to send now
    /// that [`Reliable::transmit`] would take).
    pub fn next_timeout(&self) -> Option<Instant> {
        self.unacked.values().filter_map(|o| o.due).min()
    }

    /// Whether [`Reliable::transmit`] has something to send before any timer: new messages
    /// that fit the window, or acknowledgements.
    pub fn wants_transmit(&self) -> bool {
        !self.to_ack.is_empty()
            || self.unacked.values().any(|o| o.due.is_none())
            || (!self.waiting.is_empty() && self.unacked.len() < SEND_WINDOW as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::P_CONTROL_V1;

    const A: SessionId = SessionId([1; 8]);
    const B: SessionId = SessionId([2; 8]);

    /// Delivers `packets` from one side to the other, dropping those `lose` picks.
    fn deliver(
        packets: Vec<Vec<u8>>,
        to: &mut Reliable,
        lose: &mut dyn FnMut(usize) -> bool,
    ) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        for (i, p) in packets.iter().enumerate() {
            if lose(i) {
                continue;
            }
            let c = Control::parse(p).unwrap();
            to.receive(&c);
            while let Some((_, m)) = to.next_message() {
                got.push(m);
            }
        }
        got
    }

    #[test]
    fn messages_arrive_once_in_order_through_loss_and_reordering() {
        let t0 = Instant::now();
        let (mut a, mut b) = (Reliable::default(), Reliable::default());
        let sent: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 100]).collect();
        for m in &sent {
            a.send(P_CONTROL_V1, m.clone());
        }
        let mut got = Vec::new();
        let mut now = t0;
        let mut round = 0;
        while got.len() < sent.len() {
            round += 1;
            assert!(round < 50, "stuck: got {}", got.len());
            let mut out = Vec::new();
            a.transmit(now, 0, A, B, &mut out);
            // reverse the order and lose every third packet of the first rounds
            out.reverse();
            got.extend(deliver(out, &mut b, &mut |i| round < 4 && i % 3 == 0));
            let mut acks = Vec::new();
            b.transmit(now, 0, B, A, &mut acks);
            deliver(acks, &mut a, &mut |_| false);
            now = a.next_timeout().unwrap_or(now).max(now);
        }
        assert_eq!(got, sent);
        assert_eq!(a.pending(), 0, "everything acknowledged");
    }

    #[test]
    fn the_window_holds_back_messages_and_retransmissions_back_off() {
        let t0 = Instant::now();
        let mut a = Reliable::default();
        for i in 0..10u8 {
            a.send(P_CONTROL_V1, vec![i]);
        }
        let mut out = Vec::new();
        a.transmit(t0, 0, A, B, &mut out);
        assert_eq!(out.len(), SEND_WINDOW as usize);
        assert!(!a.wants_transmit());
        assert_eq!(a.next_timeout(), Some(t0 + RETRANSMIT));
        out.clear();
        a.transmit(t0 + RETRANSMIT, 0, A, B, &mut out);
        assert_eq!(out.len(), 6, "all sent again");
        assert_eq!(
            a.next_timeout(),
            Some(t0 + RETRANSMIT * 3),
            "then after 4 s"
        );
        // far beyond the receive window: not taken, not acknowledged
        let mut b = Reliable::default();
        let far = {
            let mut p = Vec::new();
            Control {
                opcode: P_CONTROL_V1,
                key_id: 0,
                session: A,
                acks: vec![],
                acked_session: None,
                message_id: Some(40),
                payload: b"x",
            }
            .emit(&mut p);
            p
        };
        assert_eq!(
            b.receive(&Control::parse(&far).unwrap()),
            Received::OutOfWindow
        );
        assert!(!b.wants_transmit());
    }
}
