//! One control connection (tunnel) with one LAC, and the sessions (calls) inside it.
//!
//! The LAC opens: SCCRQ, our SCCRP, its SCCCN; then per call ICRQ, our ICRP, its ICCN, after
//! which PPP frames flow in data messages. Either side ends a call with CDN and the tunnel
//! with StopCCN.
//!
//! Control messages are delivered reliably (RFC 2661 section 5.8): each carries Ns, its
//! sequence number, and Nr, the next Ns expected from the other side, which acknowledges
//! everything before it. A message arriving with nothing to send back is acknowledged by a
//! ZLB (a control header without AVPs). Unacknowledged messages are sent again after 1, 2, 4,
//! 8, 8... seconds; when the last try goes unanswered the tunnel is gone. No more than the
//! LAC's Receive Window Size messages are in flight; messages from the LAC that arrive early
//! within our window wait for the ones before them, duplicates are acknowledged again.
//!
//! Like SoftEther, this LNS does not authenticate tunnels: a Challenge AVP is ignored (no
//! secret is configured, so no Challenge Response can be made), and unknown AVPs are ignored
//! even when marked mandatory.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use crate::packet::{self, avp, emit_control, parse_message, Avp, Header, Message, MessageType};
use crate::server::{Config, Ctx, Event, SessionKey};

/// StopCCN result: general request to clear the control connection.
const STOPCCN_CLEAR: u16 = 1;
/// CDN results: administrative disconnect, and no room for another call.
const CDN_ADMINISTRATIVE: u16 = 3;
const CDN_NO_RESOURCES: u16 = 4;
/// Framing (sync and async) and bearer (digital and analog) capabilities, as SoftEther says.
const CAPABILITIES: [u8; 4] = [0, 0, 0, 3];
/// The send window when the LAC does not say (RFC 2661 section 4.4.3).
const DEFAULT_PEER_WINDOW: u16 = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Created for an SCCRQ not yet handled.
    Idle,
    /// SCCRP sent; waiting for SCCCN.
    WaitConnected,
    Established,
    /// We sent StopCCN; waiting for its acknowledgement.
    Closing,
    /// The LAC sent StopCCN; its retransmissions are acknowledged until `until`.
    Lingering {
        until: Instant,
    },
}

struct Outgoing {
    ns: u16,
    bytes: Vec<u8>,
    sent: bool,
    retries: u32,
    due: Instant,
}

struct Session {
    peer_id: u16,
    up: bool,
}

/// What the server does with a tunnel after handling something.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fate {
    Keep,
    Remove,
}

pub(crate) struct Tunnel<P> {
    pub(crate) peer: P,
    pub(crate) local_id: u16,
    pub(crate) peer_id: u16,
    state: State,
    /// The Ns of our next message.
    next_ns: u16,
    /// The Ns expected next from the LAC.
    next_nr: u16,
    /// Messages not yet acknowledged (the first `peer_window` of them in flight).
    queue: VecDeque<Outgoing>,
    peer_window: u16,
    /// Messages that came before their turn: Ns, header session id, AVP bytes.
    early: Vec<(u16, u16, Vec<u8>)>,
    /// A message from the LAC awaits acknowledgement.
    ack_owed: bool,
    last_heard: Instant,
    /// A HELLO went out and nothing has been heard since.
    hello_outstanding: bool,
    sessions: HashMap<u16, Session>,
}

impl<P: Copy> Tunnel<P> {
    pub(crate) fn new(now: Instant, peer: P, local_id: u16, peer_id: u16) -> Tunnel<P> {
        Tunnel {
            peer,
            local_id,
            peer_id,
            state: State::Idle,
            next_ns: 0,
            next_nr: 0,
            queue: VecDeque::new(),
            peer_window: DEFAULT_PEER_WINDOW,
            early: Vec::new(),
            ack_owed: false,
            last_heard: now,
            hello_outstanding: false,
            sessions: HashMap::new(),
        }
    }

    pub(crate) fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Whether the session is up (ICCN came) and frames may flow.
    pub(crate) fn session_peer_id(&self, local: u16) -> Option<u16> {
        self.sessions
            .get(&local)
            .filter(|s| s.up && self.state == State::Established)
            .map(|s| s.peer_id)
    }

    /// A control message (or ZLB) whose header and payload parsed.
    pub(crate) fn handle_control(
        &mut self,
        now: Instant,
        ctx: &mut Ctx<'_>,
        header: &Header,
        payload: &[u8],
        events: &mut Vec<Event<P>>,
    ) -> Fate {
        let Some((ns, nr)) = header.sequence else {
            ctx.dropped.malformed += 1;
            return Fate::Keep;
        };
        let message = match parse_message(payload) {
            Ok(m) => m,
            Err(_) => {
                // not acknowledged: the LAC will send it again, and give up if it stays bad
                ctx.dropped.malformed += 1;
                return Fate::Keep;
            }
        };
        self.last_heard = now;
        self.hello_outstanding = false;
        if self.acknowledged(now, ctx, nr, events) == Fate::Remove {
            return Fate::Remove;
        }
        if let Some(m) = message {
            if ns == self.next_nr {
                self.next_nr = self.next_nr.wrapping_add(1);
                self.ack_owed = true;
                self.process(now, ctx, header.session, &m, events);
                while let Some(i) = self.early.iter().position(|e| e.0 == self.next_nr) {
                    let (_, session, bytes) = self.early.swap_remove(i);
                    self.next_nr = self.next_nr.wrapping_add(1);
                    if let Ok(Some(m)) = parse_message(&bytes) {
                        self.process(now, ctx, session, &m, events);
                    }
                }
            } else if packet::seq_before(ns, self.next_nr) {
                ctx.dropped.duplicate += 1;
                self.ack_owed = true;
            } else if ns.wrapping_sub(self.next_nr) < ctx.config.receive_window {
                if self.early.iter().all(|e| e.0 != ns) {
                    self.early.push((ns, header.session, payload.to_vec()));
                }
            } else {
                ctx.dropped.out_of_window += 1;
            }
        }
        if self.ack_owed {
            self.send_zlb(events);
        }
        Fate::Keep
    }

    /// A data message for this tunnel.
    pub(crate) fn handle_data(
        &mut self,
        now: Instant,
        ctx: &mut Ctx<'_>,
        header: &Header,
        payload: &[u8],
        events: &mut Vec<Event<P>>,
    ) {
        self.last_heard = now;
        self.hello_outstanding = false;
        if self.session_peer_id(header.session).is_none() || payload.is_empty() {
            ctx.dropped.unknown_session += 1;
            return;
        }
        events.push(Event::Frame {
            peer: self.peer,
            session: SessionKey {
                tunnel: self.local_id,
                session: header.session,
            },
            frame: payload.to_vec(),
        });
    }

    /// The LAC has everything before `nr`.
    fn acknowledged(
        &mut self,
        now: Instant,
        ctx: &Ctx<'_>,
        nr: u16,
        events: &mut Vec<Event<P>>,
    ) -> Fate {
        while self
            .queue
            .front()
            .is_some_and(|o| o.sent && packet::seq_before(o.ns, nr))
        {
            self.queue.pop_front();
        }
        if self.state == State::Closing && self.queue.is_empty() {
            return Fate::Remove;
        }
        self.transmit(now, ctx, events);
        Fate::Keep
    }

    fn process(
        &mut self,
        now: Instant,
        ctx: &mut Ctx<'_>,
        session: u16,
        m: &Message<'_>,
        events: &mut Vec<Event<P>>,
    ) {
        match (m.kind, self.state) {
            (MessageType::Sccrq, State::Idle) => {
                if let Some(w) = m.u16(avp::RECEIVE_WINDOW_SIZE).filter(|w| *w > 0) {
                    self.peer_window = w;
                }
                let c = ctx.config;
                let version = [1, 0];
                let firmware = c.firmware_revision.to_be_bytes();
                let tunnel = self.local_id.to_be_bytes();
                let window = c.receive_window.to_be_bytes();
                // the order SoftEther answers in, with the Firmware Revision RFC 2661 allows
                let avps = [
                    Avp::new(true, avp::PROTOCOL_VERSION, &version),
                    Avp::new(false, avp::FRAMING_CAPABILITIES, &CAPABILITIES),
                    Avp::new(false, avp::BEARER_CAPABILITIES, &CAPABILITIES),
                    Avp::new(false, avp::FIRMWARE_REVISION, &firmware),
                    Avp::new(true, avp::HOST_NAME, c.host_name.as_bytes()),
                    Avp::new(false, avp::VENDOR_NAME, c.vendor_name.as_bytes()),
                    Avp::new(true, avp::ASSIGNED_TUNNEL_ID, &tunnel),
                    Avp::new(false, avp::RECEIVE_WINDOW_SIZE, &window),
                ];
                self.send(now, ctx, 0, MessageType::Sccrp, &avps, events);
                self.state = State::WaitConnected;
            }
            (MessageType::Scccn, State::WaitConnected) => {
                self.state = State::Established;
                events.push(Event::TunnelUp {
                    peer: self.peer,
                    tunnel: self.local_id,
                });
            }
            (MessageType::StopCcn, _) => {
                self.end_sessions("the LAC stopped the tunnel", events);
                if !matches!(self.state, State::Closing | State::Lingering { .. }) {
                    events.push(Event::TunnelDown {
                        peer: self.peer,
                        tunnel: self.local_id,
                        reason: "the LAC sent StopCCN".into(),
                    });
                }
                self.queue.clear();
                self.early.clear();
                self.state = State::Lingering {
                    until: now + ctx.config.linger,
                };
            }
            (MessageType::Icrq, State::Established) => self.incoming_call(now, ctx, m, events),
            (MessageType::Iccn, State::Established) => {
                if let Some(s) = self.sessions.get_mut(&session).filter(|s| !s.up) {
                    s.up = true;
                    events.push(Event::SessionUp {
                        peer: self.peer,
                        session: SessionKey {
                            tunnel: self.local_id,
                            session,
                        },
                    });
                }
            }
            (MessageType::Cdn, State::Established) => {
                // SoftEther checks the Assigned Session ID against the call's; a CDN without
                // one is taken too
                let peer_id = m.u16(avp::ASSIGNED_SESSION_ID);
                let matches = self
                    .sessions
                    .get(&session)
                    .is_some_and(|s| peer_id.is_none_or(|p| p == s.peer_id));
                if matches {
                    self.drop_session(session, "the LAC sent CDN", events);
                }
            }
            // HELLO needs only its acknowledgement; the rest is out of place or unknown
            _ => {}
        }
    }

    fn incoming_call(
        &mut self,
        now: Instant,
        ctx: &mut Ctx<'_>,
        m: &Message<'_>,
        events: &mut Vec<Event<P>>,
    ) {
        let Some(peer_id) = m.u16(avp::ASSIGNED_SESSION_ID).filter(|s| *s != 0) else {
            ctx.dropped.malformed += 1;
            return;
        };
        if self.sessions.values().any(|s| s.peer_id == peer_id) {
            return;
        }
        let local = (self.sessions.len() < ctx.config.max_sessions_per_tunnel)
            .then(|| {
                (0..64)
                    .map(|_| ctx.rng.next_u16())
                    .find(|id| *id != 0 && !self.sessions.contains_key(id))
            })
            .flatten();
        let Some(local) = local else {
            ctx.dropped.refused += 1;
            let result = CDN_NO_RESOURCES.to_be_bytes();
            let avps = [
                Avp::new(true, avp::RESULT_CODE, &result),
                Avp::new(true, avp::ASSIGNED_SESSION_ID, &[0, 0]),
            ];
            self.send(now, ctx, peer_id, MessageType::Cdn, &avps, events);
            return;
        };
        self.sessions.insert(local, Session { peer_id, up: false });
        let id = local.to_be_bytes();
        let avps = [Avp::new(true, avp::ASSIGNED_SESSION_ID, &id)];
        self.send(now, ctx, peer_id, MessageType::Icrp, &avps, events);
    }

    fn drop_session(&mut self, local: u16, reason: &str, events: &mut Vec<Event<P>>) {
        if let Some(s) = self.sessions.remove(&local) {
            if s.up {
                events.push(Event::SessionDown {
                    peer: self.peer,
                    session: SessionKey {
                        tunnel: self.local_id,
                        session: local,
                    },
                    reason: reason.into(),
                });
            }
        }
    }

    fn end_sessions(&mut self, reason: &str, events: &mut Vec<Event<P>>) {
        let mut ids: Vec<u16> = self.sessions.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            self.drop_session(id, reason, events);
        }
    }

    /// Ends one call with CDN (the caller's PPP link is over).
    pub(crate) fn close_session(
        &mut self,
        now: Instant,
        ctx: &mut Ctx<'_>,
        local: u16,
        events: &mut Vec<Event<P>>,
    ) {
        let Some(peer_id) = self.sessions.get(&local).map(|s| s.peer_id) else {
            return;
        };
        if self.state != State::Established {
            return;
        }
        self.drop_session(local, "closed by this server", events);
        let result = CDN_ADMINISTRATIVE.to_be_bytes();
        let id = local.to_be_bytes();
        let avps = [
            Avp::new(true, avp::RESULT_CODE, &result),
            Avp::new(true, avp::ASSIGNED_SESSION_ID, &id),
        ];
        self.send(now, ctx, peer_id, MessageType::Cdn, &avps, events);
    }

    /// Ends the tunnel with StopCCN; it is gone once that is acknowledged or given up on.
    pub(crate) fn close(
        &mut self,
        now: Instant,
        ctx: &mut Ctx<'_>,
        reason: &str,
        events: &mut Vec<Event<P>>,
    ) {
        if matches!(self.state, State::Closing | State::Lingering { .. }) {
            return;
        }
        self.end_sessions(reason, events);
        events.push(Event::TunnelDown {
            peer: self.peer,
            tunnel: self.local_id,
            reason: reason.into(),
        });
        let tunnel = self.local_id.to_be_bytes();
        let result = STOPCCN_CLEAR.to_be_bytes();
        let avps = [
            Avp::new(true, avp::ASSIGNED_TUNNEL_ID, &tunnel),
            Avp::new(true, avp::RESULT_CODE, &result),
        ];
        self.send(now, ctx, 0, MessageType::StopCcn, &avps, events);
        self.state = State::Closing;
    }

    /// Queues a control message and sends what the window allows.
    fn send(
        &mut self,
        now: Instant,
        ctx: &Ctx<'_>,
        session: u16,
        kind: MessageType,
        avps: &[Avp<'_>],
        events: &mut Vec<Event<P>>,
    ) {
        let kind = u16::from(kind).to_be_bytes();
        let mut all = Vec::with_capacity(avps.len() + 1);
        all.push(Avp::new(true, avp::MESSAGE_TYPE, &kind));
        all.extend_from_slice(avps);
        let mut bytes = Vec::new();
        if emit_control(self.peer_id, session, self.next_ns, 0, &all, &mut bytes).is_none() {
            // only a host or vendor name longer than an AVP holds gets here
            return;
        }
        self.queue.push_back(Outgoing {
            ns: self.next_ns,
            bytes,
            sent: false,
            retries: 0,
            due: now,
        });
        self.next_ns = self.next_ns.wrapping_add(1);
        self.transmit(now, ctx, events);
    }

    /// Sends the queued messages inside the LAC's window that have not been sent yet.
    fn transmit(&mut self, now: Instant, ctx: &Ctx<'_>, events: &mut Vec<Event<P>>) {
        let window = usize::from(self.peer_window);
        for o in self.queue.iter_mut().take(window).filter(|o| !o.sent) {
            o.sent = true;
            o.due = now + ctx.config.retransmit_initial;
            packet::set_nr(&mut o.bytes, self.next_nr);
            self.ack_owed = false;
            events.push(Event::Transmit {
                peer: self.peer,
                datagram: o.bytes.clone(),
            });
        }
    }

    fn send_zlb(&mut self, events: &mut Vec<Event<P>>) {
        let mut bytes = Vec::with_capacity(packet::CONTROL_HEADER_LEN);
        if emit_control(self.peer_id, 0, self.next_ns, self.next_nr, &[], &mut bytes).is_some() {
            events.push(Event::Transmit {
                peer: self.peer,
                datagram: bytes,
            });
        }
        self.ack_owed = false;
    }

    fn hello_due(&self, config: &Config) -> Option<Instant> {
        let live = matches!(self.state, State::WaitConnected | State::Established);
        (live && !self.hello_outstanding).then(|| self.last_heard + config.hello_interval)
    }

    /// When [`Tunnel::handle_timeout`] is next wanted.
    pub(crate) fn poll_timeout(&self, config: &Config) -> Option<Instant> {
        let retransmit = self.queue.iter().filter(|o| o.sent).map(|o| o.due).min();
        let linger = match self.state {
            State::Lingering { until } => Some(until),
            _ => None,
        };
        [retransmit, linger, self.hello_due(config)]
            .into_iter()
            .flatten()
            .min()
    }

    pub(crate) fn handle_timeout(
        &mut self,
        now: Instant,
        ctx: &mut Ctx<'_>,
        events: &mut Vec<Event<P>>,
    ) -> Fate {
        if let State::Lingering { until } = self.state {
            return if now >= until {
                Fate::Remove
            } else {
                Fate::Keep
            };
        }
        let c = ctx.config;
        for i in 0..self.queue.len() {
            let o = &mut self.queue[i];
            if !o.sent || o.due > now {
                continue;
            }
            if o.retries >= c.max_retransmits {
                if self.state != State::Closing {
                    self.end_sessions("the LAC stopped acknowledging", events);
                    events.push(Event::TunnelDown {
                        peer: self.peer,
                        tunnel: self.local_id,
                        reason: "the LAC stopped acknowledging".into(),
                    });
                }
                return Fate::Remove;
            }
            o.retries += 1;
            let backoff = c
                .retransmit_initial
                .saturating_mul(1 << o.retries.min(16))
                .min(c.retransmit_cap);
            o.due = now + backoff;
            packet::set_nr(&mut o.bytes, self.next_nr);
            self.ack_owed = false;
            events.push(Event::Transmit {
                peer: self.peer,
                datagram: o.bytes.clone(),
            });
        }
        if self.hello_due(c).is_some_and(|t| t <= now) {
            self.hello_outstanding = true;
            self.send(now, ctx, 0, MessageType::Hello, &[], events);
        }
        Fate::Keep
    }
}
