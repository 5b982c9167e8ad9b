//! RFC 1661's option negotiation automaton (section 4), shared by LCP and IPCP; what the
//! options mean is a [`Negotiator`]'s business.
//!
//! The server opens at once (the transport under it is up when a session starts), so the
//! automaton starts in Req-Sent and never returns to Starting; once it has finished (peer's
//! Terminate-Request, our own Terminate-Request answered or timed out, or negotiation given up)
//! it stays finished, and the session ends. Two choices beyond the RFC's table, for lossy
//! transports (L2TP carries PPP over UDP):
//! - a reply (Ack, Nak, Reject) counts only when it answers the Configure-Request we are still
//!   waiting on, so a duplicate Ack arriving in Opened does not restart negotiation;
//! - in Opened, a Configure-Request equal to the one we last acknowledged is the peer
//!   retransmitting because our Ack was lost: it gets the Ack again and the layer stays up.
//!   A different one renegotiates as the RFC says (this-layer-down, then Req-Sent/Ack-Sent).

use std::time::{Duration, Instant};

use crate::packet::{build, parse_options, Code, Opt, Packet};

/// The restart timer (RFC 1661 section 4.6: 3 seconds).
pub const RESTART: Duration = Duration::from_secs(3);
/// Configure-Requests sent before giving up (Max-Configure, 10).
pub const MAX_CONFIGURE: u32 = 10;
/// Terminate-Requests sent before giving up (Max-Terminate, 2).
pub const MAX_TERMINATE: u32 = 2;
/// Configure-Naks sent in a row before Naks turn into Rejects (Max-Failure, 5).
pub const MAX_FAILURE: u32 = 5;

/// The automaton's states that a server passes through (RFC 1661 numbering in brackets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Not opened yet (Initial, 0): IPCP before the network phase.
    Initial,
    /// Our Configure-Request is out (Req-Sent, 6).
    ReqSent,
    /// The peer acknowledged ours; theirs is awaited (Ack-Rcvd, 7).
    AckRcvd,
    /// We acknowledged theirs; an Ack of ours is awaited (Ack-Sent, 8).
    AckSent,
    /// Both acknowledged (Opened, 9).
    Opened,
    /// Our Terminate-Request is out (Closing, 4).
    Closing,
    /// Over (Closed or Stopped, 2 and 3).
    Finished,
}

/// A negotiator's verdict on the peer's Configure-Request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every option acceptable: acknowledge (the negotiator has taken the values).
    Ack,
    /// These options (encoded) would be acceptable instead.
    Nak(Vec<u8>),
    /// These options (encoded, as received) are not negotiable.
    Reject(Vec<u8>),
}

/// What LCP or IPCP makes of options.
pub trait Negotiator {
    /// Our Configure-Request's options, encoded.
    fn request(&self) -> Vec<u8>;
    /// Judges the peer's Configure-Request. With `nak_allowed` false (Max-Failure reached), an
    /// option that would be Nak'd must be rejected instead.
    fn peer_request(&mut self, options: &[Opt<'_>], nak_allowed: bool) -> Verdict;
    /// The peer Nak'd some of our options; `Err` says why negotiation cannot go on.
    fn nak(&mut self, options: &[Opt<'_>]) -> Result<(), String>;
    /// The peer rejected some of our options; `Err` says why negotiation cannot go on.
    fn reject(&mut self, options: &[Opt<'_>]) -> Result<(), String>;
}

/// What the automaton asks of its session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// A control packet (code, id, length, data) to send in this protocol's frame.
    Send(Vec<u8>),
    /// This-Layer-Up: both directions configured.
    Up,
    /// This-Layer-Down: leaving Opened.
    Down,
    /// This-Layer-Finished: the automaton is done; the reason is for the log.
    Finished(String),
}

/// Why a packet was not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ignored {
    /// Not a valid packet (bad options).
    Malformed,
    /// Valid but not expected now (a stray reply, a packet after the end).
    Unexpected,
}

pub struct Fsm<N> {
    pub negotiator: N,
    state: State,
    /// The identifier of our latest Configure- or Terminate-Request.
    request_id: u8,
    /// Whether a reply to that request is still awaited.
    awaiting: bool,
    next_id: u8,
    /// The options of our latest Configure-Request.
    sent: Vec<u8>,
    restart_count: u32,
    restart_at: Option<Instant>,
    /// Configure-Naks sent since the last Configure-Ack.
    naks_sent: u32,
    /// The options of the peer's request we last acknowledged.
    acked: Option<Vec<u8>>,
    /// Why we are closing (reported when the close completes).
    closing_reason: String,
}

impl<N: Negotiator> Fsm<N> {
    pub fn new(negotiator: N) -> Fsm<N> {
        Fsm {
            negotiator,
            state: State::Initial,
            request_id: 0,
            awaiting: false,
            next_id: 1,
            sent: Vec::new(),
            restart_count: 0,
            restart_at: None,
            naks_sent: 0,
            acked: None,
            closing_reason: String::new(),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn is_opened(&self) -> bool {
        self.state == State::Opened
    }

    pub fn is_finished(&self) -> bool {
        self.state == State::Finished
    }

    /// A fresh identifier for a packet of this protocol outside negotiation (echo, rejects).
    pub fn next_id(&mut self) -> u8 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    /// Open: the first Configure-Request goes out.
    pub fn open(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.state == State::Initial {
            self.restart_count = MAX_CONFIGURE;
            self.send_request(now, true, out);
            self.state = State::ReqSent;
        }
    }

    /// Close: a Terminate-Request goes out; [`Action::Finished`] follows its Ack or the
    /// timeout of the last retransmission.
    pub fn close(&mut self, now: Instant, reason: &str, out: &mut Vec<Action>) {
        match self.state {
            State::Initial => self.finish(reason, out),
            State::Closing | State::Finished => {}
            s => {
                if s == State::Opened {
                    out.push(Action::Down);
                }
                self.closing_reason = reason.to_string();
                self.restart_count = MAX_TERMINATE;
                self.send_terminate(now, out);
                self.state = State::Closing;
            }
        }
    }

    /// The next time [`Fsm::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.restart_at
    }

    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<Action>) {
        let Some(at) = self.restart_at else {
            return;
        };
        if now < at {
            return;
        }
        self.restart_at = None;
        match self.state {
            State::ReqSent | State::AckRcvd | State::AckSent if self.restart_count > 0 => {
                // a retransmission keeps its identifier (the options have not changed)
                self.send_request(now, false, out);
                if self.state == State::AckRcvd {
                    self.state = State::ReqSent;
                }
            }
            State::ReqSent | State::AckRcvd | State::AckSent => {
                self.finish("the peer did not answer our Configure-Request", out);
            }
            State::Closing if self.restart_count > 0 => self.send_terminate(now, out),
            State::Closing => {
                let reason = std::mem::take(&mut self.closing_reason);
                self.finish(&reason, out);
            }
            _ => {}
        }
    }

    /// A control packet of this protocol from the peer. Codes other than 1 to 7 (LCP's echo
    /// and the like) are the session's; here they draw a Code-Reject.
    pub fn input(
        &mut self,
        now: Instant,
        p: &Packet<'_>,
        out: &mut Vec<Action>,
    ) -> Result<(), Ignored> {
        if matches!(self.state, State::Initial | State::Finished) {
            return Err(Ignored::Unexpected);
        }
        match p.lcp_code() {
            Code::ConfigureRequest => self.configure_request(now, p, out),
            Code::ConfigureAck => self.configure_ack(now, p, out),
            Code::ConfigureNak | Code::ConfigureReject => self.configure_nak(now, p, out),
            Code::TerminateRequest => {
                out.push(Action::Send(build(Code::TerminateAck.into(), p.id, &[])));
                if self.state == State::Closing {
                    return Ok(());
                }
                if self.state == State::Opened {
                    out.push(Action::Down);
                }
                // RFC 1661 waits a restart period before finishing; a server has nothing to
                // wait for once the Ack is out
                self.finish("the peer sent Terminate-Request", out);
                Ok(())
            }
            Code::TerminateAck => {
                match self.state {
                    State::Closing => {
                        let reason = std::mem::take(&mut self.closing_reason);
                        self.finish(&reason, out);
                    }
                    State::Opened => {
                        // the peer thinks the layer is down: negotiate again
                        out.push(Action::Down);
                        self.restart_count = MAX_CONFIGURE;
                        self.send_request(now, true, out);
                        self.state = State::ReqSent;
                    }
                    State::AckRcvd => self.state = State::ReqSent,
                    _ => {}
                }
                Ok(())
            }
            Code::CodeReject => {
                // the peer cannot handle one of our codes: fatal for the ones negotiation needs
                match p.data.first().copied().map(Code::from) {
                    Some(
                        Code::ConfigureRequest
                        | Code::ConfigureAck
                        | Code::ConfigureNak
                        | Code::ConfigureReject
                        | Code::TerminateRequest
                        | Code::TerminateAck,
                    ) => {
                        if self.state == State::Opened {
                            out.push(Action::Down);
                        }
                        self.finish("the peer rejected a code negotiation needs", out);
                        Ok(())
                    }
                    Some(_) => Ok(()),
                    None => Err(Ignored::Malformed),
                }
            }
            _ => {
                self.code_reject(p, out);
                Ok(())
            }
        }
    }

    /// Sends a Code-Reject carrying the packet (RFC 1661 section 5.6).
    pub fn code_reject(&mut self, p: &Packet<'_>, out: &mut Vec<Action>) {
        let id = self.next_id();
        // the rejected packet, cut so that the reply stays within the default MRU
        let mut rejected = p.to_vec();
        rejected.truncate(1500 - 4 - 4);
        out.push(Action::Send(build(Code::CodeReject.into(), id, &rejected)));
    }

    fn configure_request(
        &mut self,
        now: Instant,
        p: &Packet<'_>,
        out: &mut Vec<Action>,
    ) -> Result<(), Ignored> {
        let opts = parse_options(p.data).map_err(|_| Ignored::Malformed)?;
        if self.state == State::Closing {
            return Ok(());
        }
        if self.state == State::Opened && self.acked.as_deref() == Some(p.data) {
            // our Ack was lost: say it again
            out.push(Action::Send(build(Code::ConfigureAck.into(), p.id, p.data)));
            return Ok(());
        }
        let verdict = self
            .negotiator
            .peer_request(&opts, self.naks_sent < MAX_FAILURE);
        if self.state == State::Opened {
            // renegotiation: ours goes out again too
            out.push(Action::Down);
            self.restart_count = MAX_CONFIGURE;
            self.send_request(now, true, out);
            self.state = State::ReqSent;
        }
        let good = verdict == Verdict::Ack;
        let reply = match verdict {
            Verdict::Ack => {
                self.naks_sent = 0;
                self.acked = Some(p.data.to_vec());
                build(Code::ConfigureAck.into(), p.id, p.data)
            }
            Verdict::Nak(opts) => {
                self.naks_sent += 1;
                build(Code::ConfigureNak.into(), p.id, &opts)
            }
            Verdict::Reject(opts) => build(Code::ConfigureReject.into(), p.id, &opts),
        };
        out.push(Action::Send(reply));
        self.state = match (self.state, good) {
            (State::AckRcvd, true) => {
                self.restart_at = None;
                out.push(Action::Up);
                State::Opened
            }
            (State::AckRcvd, false) => State::AckRcvd,
            (_, true) => State::AckSent,
            (_, false) => State::ReqSent,
        };
        Ok(())
    }

    fn configure_ack(
        &mut self,
        _now: Instant,
        p: &Packet<'_>,
        out: &mut Vec<Action>,
    ) -> Result<(), Ignored> {
        // an Ack must answer our outstanding request and repeat its options exactly
        if !self.awaiting || p.id != self.request_id || p.data != self.sent.as_slice() {
            return Err(Ignored::Unexpected);
        }
        self.awaiting = false;
        self.restart_count = MAX_CONFIGURE;
        match self.state {
            State::ReqSent => self.state = State::AckRcvd,
            State::AckSent => {
                self.restart_at = None;
                self.state = State::Opened;
                out.push(Action::Up);
            }
            _ => return Err(Ignored::Unexpected),
        }
        Ok(())
    }

    fn configure_nak(
        &mut self,
        now: Instant,
        p: &Packet<'_>,
        out: &mut Vec<Action>,
    ) -> Result<(), Ignored> {
        if !self.awaiting || p.id != self.request_id {
            return Err(Ignored::Unexpected);
        }
        let opts = parse_options(p.data).map_err(|_| Ignored::Malformed)?;
        if !matches!(self.state, State::ReqSent | State::AckSent) {
            return Err(Ignored::Unexpected);
        }
        self.awaiting = false;
        let result = if p.lcp_code() == Code::ConfigureNak {
            self.negotiator.nak(&opts)
        } else {
            self.negotiator.reject(&opts)
        };
        match result {
            Ok(()) => {
                self.restart_count = MAX_CONFIGURE;
                self.send_request(now, true, out);
            }
            Err(reason) => self.close(now, &reason, out),
        }
        Ok(())
    }

    /// Sends our Configure-Request (a new identifier unless this is a retransmission).
    fn send_request(&mut self, now: Instant, fresh: bool, out: &mut Vec<Action>) {
        if fresh || !self.awaiting {
            self.request_id = self.next_id();
            self.sent = self.negotiator.request();
        }
        self.awaiting = true;
        self.restart_count = self.restart_count.saturating_sub(1);
        self.restart_at = Some(now + RESTART);
        out.push(Action::Send(build(
            Code::ConfigureRequest.into(),
            self.request_id,
            &self.sent,
        )));
    }

    fn send_terminate(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.request_id = self.next_id();
        self.awaiting = true;
        self.restart_count = self.restart_count.saturating_sub(1);
        self.restart_at = Some(now + RESTART);
        out.push(Action::Send(build(
            Code::TerminateRequest.into(),
            self.request_id,
            &[],
        )));
    }

    fn finish(&mut self, reason: &str, out: &mut Vec<Action>) {
        if self.state != State::Finished {
            self.state = State::Finished;
            self.restart_at = None;
            self.awaiting = false;
            out.push(Action::Finished(reason.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::emit_options;

    /// Wants option 1 with value [1] from the peer; asks for option 9 itself unless rejected.
    #[derive(Default)]
    struct Toy {
        ask: bool,
        rejected: bool,
    }

    impl Negotiator for Toy {
        fn request(&self) -> Vec<u8> {
            if self.rejected {
                Vec::new()
            } else {
                emit_options(&[Opt {
                    kind: 9,
                    data: &[self.ask as u8],
                }])
            }
        }
        fn peer_request(&mut self, options: &[Opt<'_>], nak_allowed: bool) -> Verdict {
            match options.first() {
                Some(o) if o.kind == 1 && o.data == [1] => Verdict::Ack,
                Some(o) if o.kind == 1 && nak_allowed => Verdict::Nak(emit_options(&[Opt {
                    kind: 1,
                    data: &[1],
                }])),
                Some(o) => Verdict::Reject(emit_options(&[*o])),
                None => Verdict::Ack,
            }
        }
        fn nak(&mut self, _: &[Opt<'_>]) -> Result<(), String> {
            self.ask = true;
            Ok(())
        }
        fn reject(&mut self, _: &[Opt<'_>]) -> Result<(), String> {
            self.rejected = true;
            Ok(())
        }
    }

    fn sent(actions: &[Action]) -> Vec<Vec<u8>> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(p) => Some(p.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn both_acks_open_the_layer_once() {
        let now = Instant::now();
        let mut f = Fsm::new(Toy::default());
        let mut out = Vec::new();
        f.open(now, &mut out);
        let ours = sent(&out).remove(0);
        assert_eq!(ours, build(1, 1, &[9, 3, 0]));
        out.clear();
        // the peer acks ours, then asks for its own
        f.input(
            now,
            &Packet::parse(&build(2, 1, &[9, 3, 0])).unwrap(),
            &mut out,
        )
        .unwrap();
        assert_eq!(f.state(), State::AckRcvd);
        let req = build(1, 42, &[1, 3, 1]);
        f.input(now, &Packet::parse(&req).unwrap(), &mut out)
            .unwrap();
        assert_eq!(
            out,
            vec![Action::Send(build(2, 42, &[1, 3, 1])), Action::Up]
        );
        assert!(f.is_opened());
        assert_eq!(f.poll_timeout(), None);
        // the same request again (our Ack lost) is acked again without leaving Opened
        out.clear();
        f.input(now, &Packet::parse(&req).unwrap(), &mut out)
            .unwrap();
        assert_eq!(out, vec![Action::Send(build(2, 42, &[1, 3, 1]))]);
        // a duplicate Ack is ignored
        assert_eq!(
            f.input(
                now,
                &Packet::parse(&build(2, 1, &[9, 3, 0])).unwrap(),
                &mut out
            ),
            Err(Ignored::Unexpected)
        );
        assert!(f.is_opened());
    }

    #[test]
    fn naks_and_rejects_change_our_request() {
        let now = Instant::now();
        let mut f = Fsm::new(Toy::default());
        let mut out = Vec::new();
        f.open(now, &mut out);
        out.clear();
        f.input(
            now,
            &Packet::parse(&build(3, 1, &[9, 3, 1])).unwrap(),
            &mut out,
        )
        .unwrap();
        assert_eq!(sent(&out), vec![build(1, 2, &[9, 3, 1])]);
        out.clear();
        // a reply to the old identifier is stale
        assert_eq!(
            f.input(
                now,
                &Packet::parse(&build(4, 1, &[9, 3, 1])).unwrap(),
                &mut out
            ),
            Err(Ignored::Unexpected)
        );
        f.input(
            now,
            &Packet::parse(&build(4, 2, &[9, 3, 1])).unwrap(),
            &mut out,
        )
        .unwrap();
        assert_eq!(sent(&out), vec![build(1, 3, &[])]);
    }

    #[test]
    fn naks_turn_into_rejects_after_max_failure() {
        let now = Instant::now();
        let mut f = Fsm::new(Toy::default());
        let mut out = Vec::new();
        f.open(now, &mut out);
        for i in 0..=MAX_FAILURE {
            out.clear();
            let req = build(1, i as u8, &[1, 3, 7]);
            f.input(now, &Packet::parse(&req).unwrap(), &mut out)
                .unwrap();
            let code = sent(&out)[0][0];
            let want = if i < MAX_FAILURE { 3 } else { 4 };
            assert_eq!(code, want, "request {i}");
        }
    }

    #[test]
    fn an_unanswered_request_is_retransmitted_then_given_up() {
        let start = Instant::now();
        let mut f = Fsm::new(Toy::default());
        let mut out = Vec::new();
        f.open(start, &mut out);
        let mut now = start;
        while let Some(t) = f.poll_timeout() {
            now = t;
            f.handle_timeout(now, &mut out);
        }
        assert_eq!(sent(&out).len() as u32, MAX_CONFIGURE);
        // retransmissions keep the identifier
        assert!(sent(&out).iter().all(|p| p[1] == 1));
        assert_eq!(
            out.last(),
            Some(&Action::Finished(
                "the peer did not answer our Configure-Request".into()
            ))
        );
        assert_eq!(now - start, RESTART * MAX_CONFIGURE);
    }

    #[test]
    fn terminate_both_ways() {
        let now = Instant::now();
        let mut f = Fsm::new(Toy::default());
        let mut out = Vec::new();
        f.open(now, &mut out);
        out.clear();
        f.input(now, &Packet::parse(&build(5, 9, &[])).unwrap(), &mut out)
            .unwrap();
        assert_eq!(out[0], Action::Send(build(6, 9, &[])));
        assert!(f.is_finished());

        let mut f = Fsm::new(Toy::default());
        f.open(now, &mut out);
        out.clear();
        f.close(now, "admin", &mut out);
        assert_eq!(sent(&out), vec![build(5, 2, &[])]);
        out.clear();
        f.input(now, &Packet::parse(&build(6, 2, &[])).unwrap(), &mut out)
            .unwrap();
        assert_eq!(out, vec![Action::Finished("admin".into())]);
    }

    #[test]
    fn unknown_codes_draw_a_code_reject() {
        let now = Instant::now();
        let mut f = Fsm::new(Toy::default());
        let mut out = Vec::new();
        f.open(now, &mut out);
        out.clear();
        let odd = build(99, 5, &[1, 2]);
        f.input(now, &Packet::parse(&odd).unwrap(), &mut out)
            .unwrap();
        let reply = sent(&out).remove(0);
        assert_eq!(reply[0], 7);
        assert_eq!(&reply[4..], &odd[..]);
    }
}
