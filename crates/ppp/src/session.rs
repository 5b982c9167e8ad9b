//! One PPP peer's session on the server, sans-IO: LCP, then authentication asked of the
//! caller, then IPCP with an address asked of the caller, then IPv4 both ways.
//!
//! Call order: [`Session::new`] sends the first Configure-Request. Then feed each frame from
//! the transport to [`Session::handle_frame`], and the time to [`Session::handle_timeout`]
//! when [`Session::poll_timeout`] says. After every call, act on the events in `out`, in
//! order: send [`Event::Transmit`] frames, answer [`Event::Authenticate`] with
//! [`Session::auth_result`] and [`Event::NeedAddress`] with [`Session::set_addressing`] (now
//! or later: the session waits), route [`Event::Packet`]s, and once [`Event::Closed`] has come,
//! send the frames before it and drop the session. IPv4 packets to the peer go through
//! [`Session::send_ip`].
//!
//! Randomness comes from the caller as a seed; the magic number and every challenge are
//! derived from it (SHA-1 of the seed and a counter), so a seed must be fresh random bytes for
//! each session.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use etherhub_config::hash::{digest_eq, md5, sha1};

use crate::frame::{self, Protocol};
use crate::fsm::{Action, Fsm, RESTART};
use crate::ipcp::{Addressing, Ipcp};
use crate::lcp::{AuthMethod, Lcp, DEFAULT_MRU};
use crate::mschapv2::{self, KeyDirection, ResponseValue};
use crate::packet::{build, chap, pap, pap_reply_body, ChapValue, Code, Packet, PapRequest};

/// A session's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// The methods to offer, best first (the peer may Nak its way down the list).
    pub auth: Vec<AuthMethod>,
    /// The MRU we ask for (what we receive); 1500 is the default and then not asked.
    pub mru: u16,
    /// How often an LCP Echo-Request goes out once LCP is open (zero: never).
    pub echo_interval: Duration,
    /// Echo-Requests left unanswered in a row before the session ends (zero: echoes off).
    pub echo_failures: u32,
    /// The name in CHAP Challenges.
    pub name: String,
    /// MS-CHAPv2 attempts before the session ends (RFC 2759 lets the peer retry).
    pub auth_attempts: u32,
    /// How long authentication may take from LCP's opening (and from each retry), and how long
    /// the caller may take to answer [`Event::NeedAddress`].
    pub auth_timeout: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            auth: vec![AuthMethod::MsChapV2, AuthMethod::ChapMd5, AuthMethod::Pap],
            mru: DEFAULT_MRU,
            echo_interval: Duration::from_secs(5),
            echo_failures: 4,
            name: "etherhub".into(),
            auth_attempts: 3,
            auth_timeout: Duration::from_secs(30),
        }
    }
}

/// What the session asks the caller to decide about a login. The user name is as the peer
/// sent it (`user`, `user@HUB`, `HUB\user`): mapping it to a hub is the caller's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthRequest {
    /// PAP: is this the user's password? Answer [`AuthAnswer::Accept`] or
    /// [`AuthAnswer::Refuse`].
    Pap { user: String, password: String },
    /// CHAP-MD5: the user's password in plain text? Answer [`AuthAnswer::Password`],
    /// [`AuthAnswer::Unknown`] (the server keeps only hashes) or [`AuthAnswer::Refuse`].
    ChapMd5 { user: String },
    /// MS-CHAPv2: the user's NT hash? Answer [`AuthAnswer::NtHash`], [`AuthAnswer::Unknown`]
    /// or [`AuthAnswer::Refuse`].
    MsChapV2 { user: String },
}

impl AuthRequest {
    pub fn user(&self) -> &str {
        match self {
            AuthRequest::Pap { user, .. }
            | AuthRequest::ChapMd5 { user }
            | AuthRequest::MsChapV2 { user } => user,
        }
    }

    pub fn method(&self) -> AuthMethod {
        match self {
            AuthRequest::Pap { .. } => AuthMethod::Pap,
            AuthRequest::ChapMd5 { .. } => AuthMethod::ChapMd5,
            AuthRequest::MsChapV2 { .. } => AuthMethod::MsChapV2,
        }
    }
}

/// The caller's answer to an [`AuthRequest`]. An answer that does not fit the request's
/// method counts as a refusal.
#[derive(Clone, PartialEq, Eq)]
pub enum AuthAnswer {
    /// PAP: the password is right.
    Accept,
    /// CHAP-MD5: the user's password; the session checks the response against it.
    Password(String),
    /// MS-CHAPv2: the user's NT hash; the session checks the response against it.
    NtHash([u8; 16]),
    /// No such user, a wrong PAP password, or a user who may not log in.
    Refuse,
    /// The server cannot check this method for this user (no plain password, no NT hash).
    Unknown,
}

impl std::fmt::Debug for AuthAnswer {
    // secrets stay out of logs
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AuthAnswer::Accept => "Accept",
            AuthAnswer::Password(_) => "Password(..)",
            AuthAnswer::NtHash(_) => "NtHash(..)",
            AuthAnswer::Refuse => "Refuse",
            AuthAnswer::Unknown => "Unknown",
        })
    }
}

/// What a session asks of, or tells, its caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A frame to send to the peer.
    Transmit(Vec<u8>),
    /// A login to decide: answer with [`Session::auth_result`].
    Authenticate(AuthRequest),
    /// A login failed (for the log; the session closes itself).
    AuthFailed {
        user: String,
        method: AuthMethod,
        reason: String,
    },
    /// The peer logged in: give it an address with [`Session::set_addressing`].
    NeedAddress { user: String, method: AuthMethod },
    /// IPCP is open both ways: IPv4 flows.
    Up {
        user: String,
        method: AuthMethod,
        address: Ipv4Addr,
        /// The largest frame information the peer takes (its MRU).
        peer_mru: u16,
    },
    /// An IPv4 packet from the peer.
    Packet(Vec<u8>),
    /// The session is over (the reason is for the log).
    Closed(String),
}

/// Counters of what the session did not use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Frames or packets that do not parse.
    pub malformed: u64,
    /// Valid packets that do not fit the session's state (stray replies, early NCP packets).
    pub unexpected: u64,
    /// Frames of protocols this server does not speak, answered with Protocol-Reject.
    pub rejected: u64,
    /// IPv4 packets before IPCP opened.
    pub early: u64,
}

/// MS-CHAPv2's keys once a peer has logged in with it (RFC 3079, 128-bit, server's view).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MsChapV2Keys {
    pub master: [u8; 16],
    pub server_send: [u8; 16],
    pub server_receive: [u8; 16],
}

impl std::fmt::Debug for MsChapV2Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MsChapV2Keys(..)")
    }
}

/// A challenge we sent.
#[derive(Clone)]
struct Challenge {
    id: u8,
    value: [u8; 16],
}

/// The peer's proof, kept while the caller decides.
#[derive(Clone)]
enum Proof {
    Pap,
    ChapMd5(Vec<u8>),
    MsChapV2(ResponseValue),
}

enum Auth {
    /// LCP is not open yet.
    Idle,
    /// Waiting for the peer's PAP request or CHAP response. `retry` after an MS-CHAPv2
    /// failure that allows another try (any identifier is taken then).
    Waiting {
        challenge: Option<Challenge>,
        retry: bool,
    },
    /// The caller decides.
    Asking {
        reply_id: u8,
        user: String,
        proof: Proof,
        challenge: Option<Challenge>,
    },
    /// Logged in; `reply` is the code and data to send again if the peer repeats itself.
    Passed {
        user: String,
        code: u8,
        data: Vec<u8>,
    },
    /// Refused; the session is closing.
    Failed,
}

pub struct Session {
    config: Config,
    seed: [u8; 32],
    /// Challenges drawn so far (the counter of the derivation).
    drawn: u32,
    lcp: Fsm<Lcp>,
    /// The method in force once LCP opened.
    method: Option<AuthMethod>,
    auth: Auth,
    /// MS-CHAPv2 tries used.
    attempts: u32,
    chap_id: u8,
    /// When a Challenge goes out again (while unanswered).
    challenge_at: Option<Instant>,
    auth_deadline: Option<Instant>,
    /// When the caller's address is overdue (it has as long as a login may take).
    address_deadline: Option<Instant>,
    keys: Option<MsChapV2Keys>,
    ipcp: Option<Fsm<Ipcp>>,
    /// The peer's IPCP Configure-Request that came before the caller's address.
    held_ipcp: Option<Vec<u8>>,
    asked_address: bool,
    up: bool,
    announced: bool,
    echo_at: Option<Instant>,
    echo_missed: u32,
    closed: bool,
    pub dropped: Dropped,
}

impl Session {
    /// A session for a peer whose transport just came up. `seed` must be fresh random bytes.
    /// An empty `config.auth` means the default list.
    pub fn new(now: Instant, mut config: Config, seed: [u8; 32], out: &mut Vec<Event>) -> Session {
        if config.auth.is_empty() {
            config.auth = Config::default().auth;
        }
        let magic = u32::from_be_bytes(derive(&seed, b"magic", 0)[..4].try_into().expect("4"));
        let lcp = Lcp::new(config.mru, magic, config.auth.clone());
        let mut s = Session {
            config,
            seed,
            drawn: 0,
            lcp: Fsm::new(lcp),
            method: None,
            auth: Auth::Idle,
            attempts: 0,
            chap_id: derive(&seed, b"chap-id", 0)[0],
            challenge_at: None,
            auth_deadline: None,
            address_deadline: None,
            keys: None,
            ipcp: None,
            held_ipcp: None,
            asked_address: false,
            up: false,
            announced: false,
            echo_at: None,
            echo_missed: 0,
            closed: false,
            dropped: Dropped::default(),
        };
        let mut actions = Vec::new();
        s.lcp.open(now, &mut actions);
        s.lcp_actions(now, actions, out);
        s
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether IPv4 flows.
    pub fn is_up(&self) -> bool {
        self.up && !self.closed
    }

    /// The user name as the peer sent it, once logged in.
    pub fn user(&self) -> Option<&str> {
        match &self.auth {
            Auth::Passed { user, .. } => Some(user),
            _ => None,
        }
    }

    /// The method LCP agreed on.
    pub fn method(&self) -> Option<AuthMethod> {
        self.method
    }

    /// The peer's MRU (the largest frame information it takes).
    pub fn peer_mru(&self) -> u16 {
        self.lcp.negotiator.peer_mru
    }

    /// MS-CHAPv2's keys, once a peer logged in with it (for SSTP's crypto binding).
    pub fn mschapv2_keys(&self) -> Option<MsChapV2Keys> {
        self.keys
    }

    /// The peer's address, once the caller gave one.
    pub fn address(&self) -> Option<Ipv4Addr> {
        self.ipcp.as_ref().map(|i| i.negotiator.addressing.peer)
    }

    /// A frame from the peer.
    pub fn handle_frame(&mut self, now: Instant, bytes: &[u8], out: &mut Vec<Event>) {
        if self.closed {
            return;
        }
        let Ok((protocol, info)) = frame::parse(bytes) else {
            self.dropped.malformed += 1;
            return;
        };
        match protocol {
            Protocol::Ipv4 if self.up => out.push(Event::Packet(info.to_vec())),
            Protocol::Ipv4 => self.dropped.early += 1,
            Protocol::Lcp => self.lcp_input(now, info, out),
            Protocol::Pap | Protocol::Chap => self.auth_input(protocol, info, out),
            Protocol::Ipcp => self.ipcp_input(now, info, out),
            _ if self.lcp.is_opened() => self.protocol_reject(protocol, info, out),
            _ => self.dropped.unexpected += 1,
        }
    }

    /// An IPv4 packet to the peer; false (and nothing sent) before IPCP is open.
    pub fn send_ip(&mut self, packet: &[u8], out: &mut Vec<Event>) -> bool {
        if !self.is_up() {
            return false;
        }
        out.push(Event::Transmit(frame::frame(Protocol::Ipv4, packet)));
        true
    }

    /// Ends the session: LCP's Terminate-Request goes out, and [`Event::Closed`] follows the
    /// peer's Terminate-Ack or the last retransmission's timeout.
    pub fn close(&mut self, now: Instant, reason: &str, out: &mut Vec<Event>) {
        if self.closed {
            return;
        }
        self.up = false;
        // nothing more to ask of a leaving peer
        self.echo_at = None;
        self.auth_deadline = None;
        self.address_deadline = None;
        self.challenge_at = None;
        let mut actions = Vec::new();
        self.lcp.close(now, reason, &mut actions);
        self.lcp_actions(now, actions, out);
    }

    /// When [`Session::handle_timeout`] has work next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        [
            self.lcp.poll_timeout(),
            self.ipcp.as_ref().and_then(|i| i.poll_timeout()),
            self.echo_at,
            self.challenge_at,
            self.auth_deadline,
            self.address_deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<Event>) {
        if self.closed {
            return;
        }
        let mut actions = Vec::new();
        self.lcp.handle_timeout(now, &mut actions);
        self.lcp_actions(now, actions, out);
        if let Some(ipcp) = self.ipcp.as_mut() {
            let mut actions = Vec::new();
            ipcp.handle_timeout(now, &mut actions);
            self.ipcp_actions(now, actions, out);
        }
        if self.closed {
            return;
        }
        if self.auth_deadline.is_some_and(|t| now >= t) {
            self.auth_deadline = None;
            self.challenge_at = None;
            let user = match &self.auth {
                Auth::Asking { user, .. } => user.clone(),
                _ => String::new(),
            };
            self.fail_auth(now, &user, "authentication did not finish in time", out);
            return;
        }
        if self.address_deadline.is_some_and(|t| now >= t) {
            self.address_deadline = None;
            self.close(now, "no address for the peer in time", out);
            return;
        }
        if self.challenge_at.is_some_and(|t| now >= t) {
            // the Challenge again, same identifier and value
            if let Auth::Waiting {
                challenge: Some(c),
                retry: false,
            } = &self.auth
            {
                let c = c.clone();
                self.send_challenge(&c, out);
                self.challenge_at = Some(now + RESTART);
            } else {
                self.challenge_at = None;
            }
        }
        if self.echo_at.is_some_and(|t| now >= t) {
            if self.echo_missed >= self.config.echo_failures {
                // the peer is gone: one Terminate-Request for form, no waiting for its Ack
                let id = self.lcp.next_id();
                self.transmit(
                    Protocol::Lcp,
                    &build(Code::TerminateRequest.into(), id, &[]),
                    out,
                );
                self.finish("the peer stopped answering LCP Echo-Requests", out);
                return;
            }
            let id = self.lcp.next_id();
            let magic = self.lcp.negotiator.magic().to_be_bytes();
            self.transmit(
                Protocol::Lcp,
                &build(Code::EchoRequest.into(), id, &magic),
                out,
            );
            self.echo_missed += 1;
            self.echo_at = Some(now + self.config.echo_interval);
        }
    }

    /// The caller's answer to the latest [`Event::Authenticate`]. An answer with nothing
    /// asked is ignored.
    /// Whether the pending MS-CHAPv2 response was made with `nt_hash` (a check only: the
    /// answer still goes to [`Session::auth_result`]). Lets a caller whose accounts keep the
    /// hash to themselves check it there.
    pub fn proves(&self, nt_hash: &[u8; 16]) -> bool {
        match &self.auth {
            Auth::Asking {
                user,
                proof: Proof::MsChapV2(r),
                challenge: Some(c),
                ..
            } => mschapv2::verify(
                &c.value,
                &r.peer_challenge,
                user.as_bytes(),
                nt_hash,
                &r.nt_response,
            ),
            _ => false,
        }
    }

    pub fn auth_result(&mut self, now: Instant, answer: AuthAnswer, out: &mut Vec<Event>) {
        if self.closed {
            return;
        }
        let Auth::Asking {
            reply_id,
            user,
            proof,
            challenge,
        } = std::mem::replace(&mut self.auth, Auth::Failed)
        else {
            return;
        };
        match proof {
            Proof::Pap => match answer {
                AuthAnswer::Accept => {
                    self.pass(now, user, reply_id, pap_reply_body("Welcome"), out)
                }
                other => {
                    let body = pap_reply_body("Authentication failed");
                    self.transmit(Protocol::Pap, &build(pap::NAK, reply_id, &body), out);
                    let reason = refusal(&other, AuthMethod::Pap);
                    self.fail_auth(now, &user, &reason, out);
                }
            },
            Proof::ChapMd5(response) => {
                let c = challenge.expect("CHAP has a challenge");
                let ok = match &answer {
                    AuthAnswer::Password(pw) => {
                        let mut buf = vec![c.id];
                        buf.extend_from_slice(pw.as_bytes());
                        buf.extend_from_slice(&c.value);
                        digest_eq(&md5(&buf), &response)
                    }
                    _ => false,
                };
                if ok {
                    self.pass(now, user, reply_id, b"Welcome".to_vec(), out);
                } else {
                    let msg = b"Authentication failed";
                    self.transmit(Protocol::Chap, &build(chap::FAILURE, reply_id, msg), out);
                    let reason = match answer {
                        AuthAnswer::Password(_) => "wrong password".to_string(),
                        other => refusal(&other, AuthMethod::ChapMd5),
                    };
                    self.fail_auth(now, &user, &reason, out);
                }
            }
            Proof::MsChapV2(r) => {
                let c = challenge.expect("CHAP has a challenge");
                let name = user.as_bytes();
                let hash = match &answer {
                    AuthAnswer::NtHash(h) => Some(*h),
                    _ => None,
                };
                if let Some(h) = hash.filter(|h| {
                    mschapv2::verify(&c.value, &r.peer_challenge, name, h, &r.nt_response)
                }) {
                    let auth = mschapv2::authenticator_response(
                        &h,
                        &r.nt_response,
                        &r.peer_challenge,
                        &c.value,
                        name,
                    );
                    let master = mschapv2::master_key(&h, &r.nt_response);
                    self.keys = Some(MsChapV2Keys {
                        master,
                        server_send: mschapv2::asymmetric_start_key(
                            &master,
                            KeyDirection::ServerSend,
                        ),
                        server_receive: mschapv2::asymmetric_start_key(
                            &master,
                            KeyDirection::ServerReceive,
                        ),
                    });
                    let msg = format!("{} M=Welcome", mschapv2::authenticator_string(&auth));
                    self.pass(now, user, reply_id, msg.into_bytes(), out);
                    return;
                }
                self.attempts += 1;
                let reason = match &answer {
                    AuthAnswer::NtHash(_) => "wrong password".to_string(),
                    other => refusal(other, AuthMethod::MsChapV2),
                };
                // an unknown method cannot succeed on a retry; a wrong password might
                let retry =
                    answer != AuthAnswer::Unknown && self.attempts < self.config.auth_attempts;
                let next = if retry { self.draw_challenge() } else { c };
                // RFC 2759 section 6: error 691 (authentication failure), R (retry allowed),
                // C (the challenge a retry answers), V=3 (the protocol version)
                let msg = format!(
                    "E=691 R={} C={} V=3 M=Authentication failed",
                    u8::from(retry),
                    mschapv2::upper_hex(&next.value)
                );
                self.transmit(
                    Protocol::Chap,
                    &build(chap::FAILURE, reply_id, msg.as_bytes()),
                    out,
                );
                if retry {
                    out.push(Event::AuthFailed {
                        user,
                        method: AuthMethod::MsChapV2,
                        reason: format!("{reason}; the peer may retry"),
                    });
                    self.auth = Auth::Waiting {
                        challenge: Some(next),
                        retry: true,
                    };
                    self.auth_deadline = Some(now + self.config.auth_timeout);
                } else {
                    self.fail_auth(now, &user, &reason, out);
                }
            }
        }
    }

    /// The caller's answer to [`Event::NeedAddress`]: the peer's address and the server's,
    /// or `None` when there is none to give (the session closes).
    pub fn set_addressing(
        &mut self,
        now: Instant,
        addressing: Option<Addressing>,
        out: &mut Vec<Event>,
    ) {
        if self.closed || self.ipcp.is_some() || !self.asked_address {
            return;
        }
        self.address_deadline = None;
        let Some(addressing) = addressing else {
            self.close(now, "no address for the peer", out);
            return;
        };
        let mut ipcp = Fsm::new(Ipcp::new(addressing));
        let mut actions = Vec::new();
        ipcp.open(now, &mut actions);
        self.ipcp = Some(ipcp);
        self.ipcp_actions(now, actions, out);
        if let Some(held) = self.held_ipcp.take() {
            self.ipcp_input(now, &held, out);
        }
    }

    fn lcp_input(&mut self, now: Instant, info: &[u8], out: &mut Vec<Event>) {
        let Ok(p) = Packet::parse(info) else {
            self.dropped.malformed += 1;
            return;
        };
        match p.lcp_code() {
            Code::EchoRequest
            | Code::EchoReply
            | Code::DiscardRequest
            | Code::ProtocolReject
            | Code::Identification
            | Code::TimeRemaining => {
                if !self.lcp.is_opened() {
                    // RFC 1661: these mean something only in Opened
                    self.dropped.unexpected += 1;
                    return;
                }
                self.lcp_link_packet(now, &p, out);
            }
            _ => {
                let mut actions = Vec::new();
                match self.lcp.input(now, &p, &mut actions) {
                    Ok(()) => {}
                    Err(crate::fsm::Ignored::Malformed) => self.dropped.malformed += 1,
                    Err(crate::fsm::Ignored::Unexpected) => self.dropped.unexpected += 1,
                }
                self.lcp_actions(now, actions, out);
            }
        }
    }

    /// LCP's codes beyond negotiation, in Opened.
    fn lcp_link_packet(&mut self, now: Instant, p: &Packet<'_>, out: &mut Vec<Event>) {
        match p.lcp_code() {
            Code::EchoRequest => {
                // the reply carries our magic number, then the request's data
                if p.data.len() < 4 {
                    self.dropped.malformed += 1;
                    return;
                }
                let mut data = self.lcp.negotiator.magic().to_be_bytes().to_vec();
                data.extend_from_slice(&p.data[4..]);
                self.transmit(
                    Protocol::Lcp,
                    &build(Code::EchoReply.into(), p.id, &data),
                    out,
                );
            }
            Code::EchoReply => self.echo_missed = 0,
            Code::ProtocolReject => {
                let Some(rejected) = p.data.get(..2) else {
                    self.dropped.malformed += 1;
                    return;
                };
                let rejected = Protocol::from(u16::from_be_bytes([rejected[0], rejected[1]]));
                match rejected {
                    Protocol::Ipcp | Protocol::Ipv4 => {
                        self.close(now, "the peer rejected IPv4", out)
                    }
                    Protocol::Pap | Protocol::Chap => {
                        self.close(now, "the peer rejected authentication", out)
                    }
                    _ => {}
                }
            }
            // Discard-Request, Identification, Time-Remaining: nothing to do
            _ => {}
        }
    }

    fn lcp_actions(&mut self, now: Instant, actions: Vec<Action>, out: &mut Vec<Event>) {
        for a in actions {
            match a {
                Action::Send(p) => self.transmit(Protocol::Lcp, &p, out),
                Action::Up => self.lcp_up(now, out),
                Action::Down => {
                    // LCP going down after it opened would mean authenticating again: this
                    // server ends the session instead
                    self.up = false;
                    self.echo_at = None;
                    if self.lcp.state() != crate::fsm::State::Closing {
                        let mut more = Vec::new();
                        self.lcp.close(now, "the peer renegotiated LCP", &mut more);
                        self.lcp_actions(now, more, out);
                    }
                }
                Action::Finished(reason) => self.finish(&reason, out),
            }
        }
    }

    fn lcp_up(&mut self, now: Instant, out: &mut Vec<Event>) {
        if self.method.is_some() {
            // LCP opened once already; renegotiation is refused in `lcp_actions`
            return;
        }
        let method = self.lcp.negotiator.method();
        self.method = Some(method);
        // a zero interval or failure count turns echoes off
        let echo = self.config.echo_failures > 0 && !self.config.echo_interval.is_zero();
        self.echo_at = echo.then(|| now + self.config.echo_interval);
        self.auth_deadline = Some(now + self.config.auth_timeout);
        let challenge = match method {
            AuthMethod::Pap => None,
            AuthMethod::ChapMd5 | AuthMethod::MsChapV2 => {
                let c = self.draw_challenge();
                self.send_challenge(&c, out);
                self.challenge_at = Some(now + RESTART);
                Some(c)
            }
        };
        self.auth = Auth::Waiting {
            challenge,
            retry: false,
        };
    }

    /// A fresh challenge: a new identifier, 16 bytes from the seed.
    fn draw_challenge(&mut self) -> Challenge {
        self.drawn += 1;
        self.chap_id = self.chap_id.wrapping_add(1);
        let d = derive(&self.seed, b"challenge", self.drawn);
        Challenge {
            id: self.chap_id,
            value: d[..16].try_into().expect("16 of 20 bytes"),
        }
    }

    fn send_challenge(&mut self, c: &Challenge, out: &mut Vec<Event>) {
        let body = ChapValue {
            value: &c.value,
            name: self.config.name.as_bytes(),
        }
        .emit();
        self.transmit(Protocol::Chap, &build(chap::CHALLENGE, c.id, &body), out);
    }

    fn auth_input(&mut self, protocol: Protocol, info: &[u8], out: &mut Vec<Event>) {
        let Ok(p) = Packet::parse(info) else {
            self.dropped.malformed += 1;
            return;
        };
        let method = self.method;
        let fits = match (protocol, method) {
            (Protocol::Pap, Some(AuthMethod::Pap)) => p.code == pap::REQUEST,
            (Protocol::Chap, Some(AuthMethod::ChapMd5 | AuthMethod::MsChapV2)) => {
                p.code == chap::RESPONSE
            }
            _ => false,
        };
        if !fits {
            self.dropped.unexpected += 1;
            return;
        }
        match &self.auth {
            Auth::Passed { code, data, .. } => {
                // the peer did not get our reply: the same again, to this identifier
                let reply = build(*code, p.id, data);
                self.transmit(protocol, &reply, out);
            }
            Auth::Waiting { challenge, retry } => {
                let (challenge, retry) = (challenge.clone(), *retry);
                let request = match (method, &challenge) {
                    (Some(AuthMethod::Pap), _) => PapRequest::parse(p.data).ok().map(|r| {
                        let user = text(r.peer_id);
                        let password = text(r.password);
                        (
                            user.clone(),
                            Proof::Pap,
                            AuthRequest::Pap { user, password },
                        )
                    }),
                    (Some(m), Some(c)) => {
                        if p.id != c.id && !retry {
                            // an answer to another challenge
                            self.dropped.unexpected += 1;
                            return;
                        }
                        ChapValue::parse(p.data).ok().and_then(|v| {
                            let user = text(v.name);
                            if m == AuthMethod::MsChapV2 {
                                let r = ResponseValue::parse(v.value)?;
                                Some((
                                    user.clone(),
                                    Proof::MsChapV2(r),
                                    AuthRequest::MsChapV2 { user },
                                ))
                            } else {
                                Some((
                                    user.clone(),
                                    Proof::ChapMd5(v.value.to_vec()),
                                    AuthRequest::ChapMd5 { user },
                                ))
                            }
                        })
                    }
                    _ => None,
                };
                let Some((user, proof, request)) = request else {
                    self.dropped.malformed += 1;
                    return;
                };
                self.challenge_at = None;
                self.auth = Auth::Asking {
                    reply_id: p.id,
                    user,
                    proof,
                    challenge,
                };
                out.push(Event::Authenticate(request));
            }
            // deciding already, or refused
            _ => self.dropped.unexpected += 1,
        }
    }

    /// Logged in: the method's Ack or Success with `data` goes out to identifier `id`, and the
    /// caller is asked for an address.
    fn pass(&mut self, now: Instant, user: String, id: u8, data: Vec<u8>, out: &mut Vec<Event>) {
        let method = self.method.expect("authenticating after LCP opened");
        let (protocol, code) = match method {
            AuthMethod::Pap => (Protocol::Pap, pap::ACK),
            AuthMethod::ChapMd5 | AuthMethod::MsChapV2 => (Protocol::Chap, chap::SUCCESS),
        };
        self.transmit(protocol, &build(code, id, &data), out);
        self.auth = Auth::Passed {
            user: user.clone(),
            code,
            data,
        };
        self.auth_deadline = None;
        self.challenge_at = None;
        self.asked_address = true;
        self.address_deadline = Some(now + self.config.auth_timeout);
        out.push(Event::NeedAddress { user, method });
    }

    fn fail_auth(&mut self, now: Instant, user: &str, reason: &str, out: &mut Vec<Event>) {
        self.auth = Auth::Failed;
        self.auth_deadline = None;
        self.challenge_at = None;
        let method = self.method.unwrap_or(AuthMethod::Pap);
        out.push(Event::AuthFailed {
            user: user.to_string(),
            method,
            reason: reason.to_string(),
        });
        self.close(
            now,
            &format!("{} login failed: {reason}", method.name()),
            out,
        );
    }

    fn ipcp_input(&mut self, now: Instant, info: &[u8], out: &mut Vec<Event>) {
        let Ok(p) = Packet::parse(info) else {
            self.dropped.malformed += 1;
            return;
        };
        let Some(ipcp) = self.ipcp.as_mut() else {
            // before the network phase RFC 1661 discards NCP packets; between login and the
            // caller's address the peer's request waits here
            if self.asked_address && p.lcp_code() == Code::ConfigureRequest {
                self.held_ipcp = Some(info.to_vec());
            } else {
                self.dropped.unexpected += 1;
            }
            return;
        };
        let mut actions = Vec::new();
        match ipcp.input(now, &p, &mut actions) {
            Ok(()) => {}
            Err(crate::fsm::Ignored::Malformed) => self.dropped.malformed += 1,
            Err(crate::fsm::Ignored::Unexpected) => self.dropped.unexpected += 1,
        }
        self.ipcp_actions(now, actions, out);
    }

    fn ipcp_actions(&mut self, now: Instant, actions: Vec<Action>, out: &mut Vec<Event>) {
        for a in actions {
            match a {
                Action::Send(p) => self.transmit(Protocol::Ipcp, &p, out),
                Action::Up => {
                    self.up = true;
                    if !self.announced {
                        self.announced = true;
                        let address = self.address().expect("IPCP has an address");
                        out.push(Event::Up {
                            user: self.user().unwrap_or_default().to_string(),
                            method: self.method.expect("LCP opened"),
                            address,
                            peer_mru: self.peer_mru(),
                        });
                    }
                }
                Action::Down => self.up = false,
                // IPv4 is the only network protocol: without it the session has no use
                Action::Finished(reason) => self.close(now, &format!("IPCP: {reason}"), out),
            }
        }
    }

    /// Protocol-Reject (RFC 1661 section 5.7) for a protocol this server does not speak
    /// (IPv6CP and IPv6 among them, as SoftEther answers when IPv6 is off; CCP, EAP).
    fn protocol_reject(&mut self, protocol: Protocol, info: &[u8], out: &mut Vec<Event>) {
        self.dropped.rejected += 1;
        let id = self.lcp.next_id();
        let mut data = u16::from(protocol).to_be_bytes().to_vec();
        // the rejected information, cut to the peer's MRU
        let room = usize::from(self.peer_mru()).saturating_sub(6);
        data.extend_from_slice(&info[..info.len().min(room)]);
        self.transmit(
            Protocol::Lcp,
            &build(Code::ProtocolReject.into(), id, &data),
            out,
        );
    }

    fn transmit(&mut self, protocol: Protocol, packet: &[u8], out: &mut Vec<Event>) {
        out.push(Event::Transmit(frame::frame(protocol, packet)));
    }

    fn finish(&mut self, reason: &str, out: &mut Vec<Event>) {
        if !self.closed {
            self.closed = true;
            self.up = false;
            out.push(Event::Closed(reason.to_string()));
        }
    }
}

/// 20 bytes of SHA-1 over the seed, a label and a counter.
fn derive(seed: &[u8; 32], label: &[u8], n: u32) -> [u8; 20] {
    let mut buf = seed.to_vec();
    buf.extend_from_slice(label);
    buf.extend_from_slice(&n.to_be_bytes());
    sha1(&buf)
}

/// Peer-sent bytes as text (names and passwords; not UTF-8 is replaced, not refused).
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Why an answer other than the right credential failed a method.
fn refusal(answer: &AuthAnswer, method: AuthMethod) -> String {
    match (answer, method) {
        (AuthAnswer::Unknown, AuthMethod::ChapMd5) => {
            "CHAP-MD5 needs the user's password in plain text, which the server does not keep \
             (offer MS-CHAPv2 or PAP)"
                .into()
        }
        (AuthAnswer::Unknown, AuthMethod::MsChapV2) => {
            "MS-CHAPv2 needs the user's NT hash, which the server does not have for this user"
                .into()
        }
        (AuthAnswer::Unknown, _) => "the server cannot check this user's password".into(),
        (AuthAnswer::Refuse, AuthMethod::Pap) => "wrong user name or password".into(),
        (AuthAnswer::Refuse, _) => "unknown user, or a user who may not log in".into(),
        (other, m) => format!("an answer ({other:?}) that does not fit {}", m.name()),
    }
}
