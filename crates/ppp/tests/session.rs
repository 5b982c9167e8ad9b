//! A server session driven by an in-process peer: a minimal client-side LCP, PAP, CHAP-MD5,
//! MS-CHAPv2 and IPCP written here from the RFCs, on a virtual clock. Each method up to
//! IPv4 both ways; wrong passwords; a method the caller cannot check; a peer that stops
//! answering echoes; protocols the server does not speak; malformed and truncated frames.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use etherhub_config::hash::{md5, nt_hash};
use etherhub_ppp::frame::{self, Protocol};
use etherhub_ppp::mschapv2::{self, ResponseValue};
use etherhub_ppp::packet::{build, parse_options, ChapValue, Code, Opt, Packet, PapRequest};
use etherhub_ppp::{Addressing, AuthAnswer, AuthMethod, AuthRequest, Config, Event, Session};

const PEER_CHALLENGE: [u8; 16] = *b"peer-challenge!!";
const PEER_ADDRESS: Ipv4Addr = Ipv4Addr::new(192, 168, 30, 10);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(192, 168, 30, 1);

/// The client side, as little of it as a session needs.
struct Peer {
    /// Methods it takes, best first (it Naks others with its first).
    methods: Vec<AuthMethod>,
    user: String,
    password: String,
    /// Passwords for retries after an MS-CHAPv2 failure that allows one.
    retries: Vec<String>,
    magic: u32,
    /// Its LCP request's options (shrinks on Reject, changes on Nak).
    lcp_request: Vec<(u8, Vec<u8>)>,
    lcp_id: u8,
    lcp_acked_ours: bool,
    lcp_acked_theirs: bool,
    method: Option<AuthMethod>,
    authenticated: bool,
    /// The server's MS-CHAPv2 authenticator string checked out.
    server_proved: bool,
    /// The challenge the latest CHAP Response answered.
    last_challenge: [u8; 16],
    ipcp_request: Vec<(u8, Vec<u8>)>,
    ipcp_id: u8,
    ipcp_acked_ours: bool,
    answer_echo: bool,
    echoes_answered: u32,
    failures: Vec<String>,
    protocol_rejects: Vec<u16>,
    terminated: bool,
    packets: Vec<Vec<u8>>,
    outbox: Vec<Vec<u8>>,
}

impl Peer {
    fn new(methods: &[AuthMethod], user: &str, password: &str) -> Peer {
        Peer {
            methods: methods.to_vec(),
            user: user.into(),
            password: password.into(),
            retries: Vec::new(),
            magic: 0x5045_4552,
            lcp_request: vec![
                (1, 1400u16.to_be_bytes().to_vec()),
                (5, 0x5045_4552u32.to_be_bytes().to_vec()),
                // what Windows and pppd ask and the server rejects
                (2, vec![0, 0, 0, 0]),
                (7, vec![]),
                (8, vec![]),
            ],
            lcp_id: 0,
            lcp_acked_ours: false,
            lcp_acked_theirs: false,
            method: None,
            authenticated: false,
            server_proved: false,
            last_challenge: [0; 16],
            ipcp_request: vec![
                (3, vec![0; 4]),
                (129, vec![0; 4]),
                (130, vec![0; 4]),
                (2, vec![0x00, 0x2d, 0x0f, 0x01]),
            ],
            ipcp_id: 0,
            ipcp_acked_ours: false,
            answer_echo: true,
            echoes_answered: 0,
            failures: Vec::new(),
            protocol_rejects: Vec::new(),
            terminated: false,
            packets: Vec::new(),
            outbox: Vec::new(),
        }
    }

    fn send(&mut self, protocol: Protocol, packet: Vec<u8>) {
        self.outbox.push(frame::frame(protocol, &packet));
    }

    fn encode(opts: &[(u8, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (kind, data) in opts {
            Opt { kind: *kind, data }.emit(&mut out);
        }
        out
    }

    fn send_lcp_request(&mut self) {
        self.lcp_id += 1;
        let opts = Peer::encode(&self.lcp_request);
        self.send(Protocol::Lcp, build(1, self.lcp_id, &opts));
    }

    fn send_ipcp_request(&mut self) {
        self.ipcp_id += 1;
        let opts = Peer::encode(&self.ipcp_request);
        self.send(Protocol::Ipcp, build(1, self.ipcp_id, &opts));
    }

    fn lcp_open(&self) -> bool {
        self.lcp_acked_ours && self.lcp_acked_theirs
    }

    fn receive(&mut self, bytes: &[u8]) {
        let (protocol, info) = frame::parse(bytes).expect("the server frames well");
        if protocol == Protocol::Ipv4 {
            self.packets.push(info.to_vec());
            return;
        }
        let p = Packet::parse(info).expect("the server's packets parse");
        let was_open = self.lcp_open();
        match protocol {
            Protocol::Lcp => self.lcp(&p),
            Protocol::Pap => match p.code {
                2 => self.authenticated_now(),
                3 => self
                    .failures
                    .push(String::from_utf8_lossy(&p.data[1..]).into()),
                _ => panic!("PAP code {}", p.code),
            },
            Protocol::Chap => self.chap(&p),
            Protocol::Ipcp => self.ipcp(&p),
            other => panic!("a frame of {other:?}"),
        }
        if !was_open && self.lcp_open() && self.method == Some(AuthMethod::Pap) {
            let body = PapRequest {
                peer_id: self.user.as_bytes(),
                password: self.password.as_bytes(),
            }
            .emit();
            self.send(Protocol::Pap, build(1, 1, &body));
        }
    }

    fn lcp(&mut self, p: &Packet<'_>) {
        match p.lcp_code() {
            Code::ConfigureRequest => {
                let opts = parse_options(p.data).unwrap();
                let auth = opts
                    .iter()
                    .find(|o| o.kind == 3)
                    .expect("the server asks auth");
                let offered = AuthMethod::from_option(auth.data).expect("a known method");
                if self.methods.contains(&offered) {
                    self.method = Some(offered);
                    self.lcp_acked_theirs = true;
                    self.send(Protocol::Lcp, build(2, p.id, p.data));
                } else {
                    let mut nak = Vec::new();
                    Opt {
                        kind: 3,
                        data: self.methods[0].option_data(),
                    }
                    .emit(&mut nak);
                    self.send(Protocol::Lcp, build(3, p.id, &nak));
                }
            }
            Code::ConfigureAck => {
                assert_eq!(p.id, self.lcp_id);
                self.lcp_acked_ours = true;
            }
            Code::ConfigureNak | Code::ConfigureReject => {
                for o in parse_options(p.data).unwrap() {
                    if p.lcp_code() == Code::ConfigureReject {
                        self.lcp_request.retain(|(k, _)| *k != o.kind);
                    } else if let Some(e) = self.lcp_request.iter_mut().find(|(k, _)| *k == o.kind)
                    {
                        e.1 = o.data.to_vec();
                    }
                }
                self.send_lcp_request();
            }
            Code::EchoRequest => {
                if self.answer_echo {
                    self.echoes_answered += 1;
                    let mut data = self.magic.to_be_bytes().to_vec();
                    data.extend_from_slice(&p.data[4..]);
                    self.send(Protocol::Lcp, build(10, p.id, &data));
                }
            }
            Code::EchoReply => {}
            Code::TerminateRequest => {
                self.terminated = true;
                self.send(Protocol::Lcp, build(6, p.id, &[]));
            }
            Code::TerminateAck => self.terminated = true,
            Code::ProtocolReject => self
                .protocol_rejects
                .push(u16::from_be_bytes([p.data[0], p.data[1]])),
            other => panic!("LCP {other:?}"),
        }
    }

    fn chap(&mut self, p: &Packet<'_>) {
        match p.code {
            1 => {
                let c = ChapValue::parse(p.data).unwrap();
                assert_eq!(c.name, b"etherhub");
                let challenge: [u8; 16] = c.value.try_into().unwrap();
                self.chap_respond(p.id, &challenge);
            }
            3 => {
                if self.method == Some(AuthMethod::MsChapV2) {
                    self.server_proved = self.check_authenticator(p.data);
                }
                self.authenticated_now();
            }
            4 => {
                let msg = String::from_utf8_lossy(p.data).to_string();
                self.failures.push(msg.clone());
                // E=691 R=1 C=<32 hex> V=3 ...
                let retry = msg.contains(" R=1 ");
                if retry && !self.retries.is_empty() {
                    self.password = self.retries.remove(0);
                    let c = msg.split(' ').find_map(|f| f.strip_prefix("C=")).unwrap();
                    let challenge: Vec<u8> = (0..32)
                        .step_by(2)
                        .map(|i| u8::from_str_radix(&c[i..i + 2], 16).unwrap())
                        .collect();
                    let challenge: [u8; 16] = challenge.try_into().unwrap();
                    self.chap_respond(p.id.wrapping_add(1), &challenge);
                }
            }
            other => panic!("CHAP code {other}"),
        }
    }

    fn chap_respond(&mut self, id: u8, challenge: &[u8; 16]) {
        self.last_challenge = *challenge;
        let value = match self.method.expect("LCP chose CHAP") {
            AuthMethod::MsChapV2 => ResponseValue {
                peer_challenge: PEER_CHALLENGE,
                nt_response: mschapv2::nt_response(
                    challenge,
                    &PEER_CHALLENGE,
                    self.user.as_bytes(),
                    &nt_hash(&self.password),
                ),
                flags: 0,
            }
            .emit()
            .to_vec(),
            AuthMethod::ChapMd5 => {
                let mut buf = vec![id];
                buf.extend_from_slice(self.password.as_bytes());
                buf.extend_from_slice(challenge);
                md5(&buf).to_vec()
            }
            AuthMethod::Pap => unreachable!(),
        };
        let body = ChapValue {
            value: &value,
            name: self.user.as_bytes(),
        }
        .emit();
        self.send(Protocol::Chap, build(2, id, &body));
    }

    fn check_authenticator(&self, message: &[u8]) -> bool {
        let hash = nt_hash(&self.password);
        let nt = mschapv2::nt_response(
            &self.last_challenge,
            &PEER_CHALLENGE,
            self.user.as_bytes(),
            &hash,
        );
        let want = mschapv2::authenticator_string(&mschapv2::authenticator_response(
            &hash,
            &nt,
            &PEER_CHALLENGE,
            &self.last_challenge,
            self.user.as_bytes(),
        ));
        message.starts_with(want.as_bytes())
    }

    fn authenticated_now(&mut self) {
        if !self.authenticated {
            self.authenticated = true;
            self.send_ipcp_request();
        }
    }

    fn ipcp(&mut self, p: &Packet<'_>) {
        match p.lcp_code() {
            Code::ConfigureRequest => self.send(Protocol::Ipcp, build(2, p.id, p.data)),
            Code::ConfigureAck => self.ipcp_acked_ours = true,
            Code::ConfigureNak | Code::ConfigureReject => {
                for o in parse_options(p.data).unwrap() {
                    if p.lcp_code() == Code::ConfigureReject {
                        self.ipcp_request.retain(|(k, _)| *k != o.kind);
                    } else if let Some(e) = self.ipcp_request.iter_mut().find(|(k, _)| *k == o.kind)
                    {
                        e.1 = o.data.to_vec();
                    }
                }
                self.send_ipcp_request();
            }
            Code::TerminateRequest => self.send(Protocol::Ipcp, build(6, p.id, &[])),
            other => panic!("IPCP {other:?}"),
        }
    }

    fn address(&self) -> Option<Ipv4Addr> {
        self.ipcp_request
            .iter()
            .find(|(k, _)| *k == 3)
            .map(|(_, d)| Ipv4Addr::new(d[0], d[1], d[2], d[3]))
    }
}

/// The server, the peer, the clock, and what the server told its caller.
struct Pair {
    server: Session,
    peer: Peer,
    now: Instant,
    events: Vec<Event>,
    /// The caller's answer to an authentication request.
    answer: Box<dyn FnMut(&AuthRequest) -> AuthAnswer>,
    /// Whether the peer's frames reach the server at all.
    link: bool,
    /// Whether the caller answers the address request.
    give_address: bool,
}

impl Pair {
    fn new(
        config: Config,
        peer: Peer,
        answer: impl FnMut(&AuthRequest) -> AuthAnswer + 'static,
    ) -> Pair {
        let now = Instant::now();
        let mut out = Vec::new();
        let server = Session::new(now, config, [7; 32], &mut out);
        let mut p = Pair {
            server,
            peer,
            now,
            events: Vec::new(),
            answer: Box::new(answer),
            link: true,
            give_address: true,
        };
        p.peer.send_lcp_request();
        p.handle(out);
        p
    }

    /// Acts on the server's events as its caller would, passing frames to the peer.
    fn handle(&mut self, mut out: Vec<Event>) {
        while !out.is_empty() {
            let mut next = Vec::new();
            for e in out.drain(..) {
                match &e {
                    Event::Transmit(f) => self.peer.receive(f),
                    Event::Authenticate(req) => {
                        let a = (self.answer)(req);
                        self.server.auth_result(self.now, a, &mut next);
                    }
                    Event::NeedAddress { .. } if self.give_address => {
                        let addressing = Addressing {
                            peer: PEER_ADDRESS,
                            local: GATEWAY,
                            dns: [Some(GATEWAY), None],
                            nbns: [None, None],
                        };
                        self.server
                            .set_addressing(self.now, Some(addressing), &mut next);
                    }
                    _ => {}
                }
                self.events.push(e);
            }
            out = next;
        }
    }

    /// Delivers the peer's frames until both sides are quiet.
    fn settle(&mut self) {
        for _ in 0..100 {
            let frames: Vec<_> = self.peer.outbox.drain(..).collect();
            if frames.is_empty() {
                return;
            }
            for f in frames {
                if !self.link {
                    continue;
                }
                let mut out = Vec::new();
                self.server.handle_frame(self.now, &f, &mut out);
                self.handle(out);
            }
        }
        panic!("the exchange does not settle");
    }

    /// Runs the clock for `d`, firing the server's timers on the way.
    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        self.settle();
        while let Some(t) = self.server.poll_timeout().filter(|t| *t <= end) {
            self.now = t.max(self.now);
            let mut out = Vec::new();
            self.server.handle_timeout(self.now, &mut out);
            self.handle(out);
            self.settle();
        }
        self.now = end;
    }

    fn up(&self) -> Option<&Event> {
        self.events.iter().find(|e| matches!(e, Event::Up { .. }))
    }

    fn closed(&self) -> Option<&str> {
        self.events.iter().find_map(|e| match e {
            Event::Closed(r) => Some(r.as_str()),
            _ => None,
        })
    }

    fn auth_failures(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::AuthFailed { reason, .. } => Some(reason.clone()),
                _ => None,
            })
            .collect()
    }
}

/// An IPv4 packet (a minimal header) from `src` to `dst`.
fn ipv4(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0];
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p
}

/// Brings a session up and checks IPv4 both ways.
fn comes_up_and_carries_packets(p: &mut Pair, method: AuthMethod, user: &str) {
    p.settle();
    match p.up() {
        Some(Event::Up {
            user: u,
            method: m,
            address,
            peer_mru,
        }) => {
            assert_eq!(
                (u.as_str(), *m, *address, *peer_mru),
                (user, method, PEER_ADDRESS, 1400)
            );
        }
        other => panic!("not up: {other:?}; events {:?}", p.events),
    }
    assert!(p.server.is_up());
    assert_eq!(p.peer.address(), Some(PEER_ADDRESS));
    // the peer learnt the DNS server and lost what the server rejects
    assert_eq!(
        p.peer
            .ipcp_request
            .iter()
            .map(|(k, _)| *k)
            .collect::<Vec<_>>(),
        vec![3, 129]
    );
    assert_eq!(
        p.peer
            .lcp_request
            .iter()
            .map(|(k, _)| *k)
            .collect::<Vec<_>>(),
        vec![1, 5]
    );

    // peer to server
    let up = ipv4(PEER_ADDRESS, Ipv4Addr::new(8, 8, 8, 8));
    let mut out = Vec::new();
    p.server
        .handle_frame(p.now, &frame::frame(Protocol::Ipv4, &up), &mut out);
    assert_eq!(out, vec![Event::Packet(up.clone())]);
    // and with a compressed header (no FF 03, one-byte protocol)
    let mut compressed = vec![0x21];
    compressed.extend_from_slice(&up);
    out.clear();
    p.server.handle_frame(p.now, &compressed, &mut out);
    assert_eq!(out, vec![Event::Packet(up)]);
    // server to peer
    let down = ipv4(Ipv4Addr::new(8, 8, 8, 8), PEER_ADDRESS);
    let mut out = Vec::new();
    assert!(p.server.send_ip(&down, &mut out));
    p.handle(out);
    assert_eq!(p.peer.packets, vec![down]);
}

#[test]
fn ms_chap_v2_comes_up_and_carries_packets() {
    let peer = Peer::new(&[AuthMethod::MsChapV2], "HUB\\alice", "secret");
    let mut p = Pair::new(Config::default(), peer, |req| {
        assert_eq!(
            req,
            &AuthRequest::MsChapV2 {
                user: "HUB\\alice".into()
            }
        );
        AuthAnswer::NtHash(nt_hash("secret"))
    });
    comes_up_and_carries_packets(&mut p, AuthMethod::MsChapV2, "HUB\\alice");
    // the peer checked the server's authenticator response
    assert!(p.peer.server_proved);
    let keys = p.server.mschapv2_keys().expect("MS-CHAPv2 keys");
    assert_ne!(keys.server_send, keys.server_receive);
    assert_eq!(p.server.dropped.malformed, 0);
}

#[test]
fn chap_md5_comes_up_when_the_caller_knows_the_password() {
    // the peer Naks MS-CHAPv2 with CHAP-MD5, which the server offers next
    let peer = Peer::new(&[AuthMethod::ChapMd5], "bob@HUB", "pass word");
    let mut p = Pair::new(Config::default(), peer, |req| {
        assert_eq!(
            req,
            &AuthRequest::ChapMd5 {
                user: "bob@HUB".into()
            }
        );
        AuthAnswer::Password("pass word".into())
    });
    comes_up_and_carries_packets(&mut p, AuthMethod::ChapMd5, "bob@HUB");
    assert_eq!(p.server.mschapv2_keys(), None);
}

#[test]
fn pap_comes_up_and_yields_the_password() {
    let peer = Peer::new(&[AuthMethod::Pap], "carol", "hunter2");
    let mut p = Pair::new(Config::default(), peer, |req| match req {
        AuthRequest::Pap { user, password } if user == "carol" && password == "hunter2" => {
            AuthAnswer::Accept
        }
        other => panic!("{other:?}"),
    });
    comes_up_and_carries_packets(&mut p, AuthMethod::Pap, "carol");
}

#[test]
fn chap_md5_fails_cleanly_when_the_caller_has_no_plain_password() {
    let peer = Peer::new(&[AuthMethod::ChapMd5], "bob", "pw");
    let mut p = Pair::new(Config::default(), peer, |_| AuthAnswer::Unknown);
    p.settle();
    let failures = p.auth_failures();
    assert_eq!(failures.len(), 1);
    assert!(failures[0].contains("plain text"), "{failures:?}");
    assert_eq!(p.peer.failures, vec!["Authentication failed".to_string()]);
    // the server terminated and the peer acknowledged
    assert!(p.peer.terminated);
    assert!(
        p.closed().unwrap().contains("CHAP-MD5 login failed"),
        "{:?}",
        p.closed()
    );
    assert!(p.up().is_none());
}

#[test]
fn a_wrong_ms_chap_v2_password_is_refused_after_the_retries() {
    let mut peer = Peer::new(&[AuthMethod::MsChapV2], "alice", "wrong");
    peer.retries = vec![
        "wrong again".into(),
        "still wrong".into(),
        "never tried".into(),
    ];
    let mut p = Pair::new(Config::default(), peer, |_| {
        AuthAnswer::NtHash(nt_hash("secret"))
    });
    p.settle();
    // three attempts (the default), the first two allowing a retry
    assert_eq!(p.peer.failures.len(), 3);
    assert!(
        p.peer.failures[0].starts_with("E=691 R=1 C="),
        "{:?}",
        p.peer.failures
    );
    assert!(
        p.peer.failures[2].starts_with("E=691 R=0 C="),
        "{:?}",
        p.peer.failures
    );
    assert!(p.peer.failures.iter().all(|f| f.contains(" V=3 M=")));
    assert_eq!(p.peer.retries, vec!["never tried".to_string()]);
    assert!(p.peer.terminated);
    assert!(p.closed().is_some());
    assert!(p.up().is_none());
    assert_eq!(p.auth_failures().len(), 3);
}

#[test]
fn a_ms_chap_v2_retry_with_the_right_password_gets_in() {
    let mut peer = Peer::new(&[AuthMethod::MsChapV2], "alice", "typo");
    peer.retries = vec!["secret".into()];
    let mut p = Pair::new(Config::default(), peer, |_| {
        AuthAnswer::NtHash(nt_hash("secret"))
    });
    comes_up_and_carries_packets(&mut p, AuthMethod::MsChapV2, "alice");
    assert_eq!(p.peer.failures.len(), 1);
    assert!(p.peer.server_proved);
}

#[test]
fn a_wrong_pap_password_is_refused() {
    let peer = Peer::new(&[AuthMethod::Pap], "carol", "nope");
    let mut p = Pair::new(Config::default(), peer, |_| AuthAnswer::Refuse);
    p.settle();
    assert_eq!(p.peer.failures, vec!["Authentication failed".to_string()]);
    assert!(p.peer.terminated);
    assert!(p.closed().unwrap().contains("PAP login failed"));
}

#[test]
fn a_peer_that_stops_answering_echoes_is_ended() {
    let peer = Peer::new(&[AuthMethod::MsChapV2], "alice", "secret");
    let mut p = Pair::new(Config::default(), peer, |_| {
        AuthAnswer::NtHash(nt_hash("secret"))
    });
    p.settle();
    assert!(p.up().is_some());
    // a minute of answered echoes keeps the session
    p.run(Duration::from_secs(60));
    assert!(p.peer.echoes_answered >= 10, "{}", p.peer.echoes_answered);
    assert!(p.closed().is_none());
    // then silence: the default 4 missed echoes at 5 s end it within about 25 s
    p.peer.answer_echo = false;
    p.run(Duration::from_secs(30));
    assert_eq!(
        p.closed(),
        Some("the peer stopped answering LCP Echo-Requests")
    );
    assert!(p.server.is_closed());
    assert_eq!(p.server.poll_timeout(), None);
}

#[test]
fn echoes_can_be_turned_off() {
    let config = Config {
        echo_failures: 0,
        ..Config::default()
    };
    let mut peer = Peer::new(&[AuthMethod::MsChapV2], "alice", "secret");
    peer.answer_echo = false;
    let mut p = Pair::new(config, peer, |_| AuthAnswer::NtHash(nt_hash("secret")));
    p.run(Duration::from_secs(120));
    assert!(p.server.is_up());
    assert_eq!(p.server.poll_timeout(), None);
}

#[test]
fn a_caller_that_gives_no_address_in_time_ends_the_session() {
    let peer = Peer::new(&[AuthMethod::Pap], "carol", "pw");
    let mut p = Pair::new(Config::default(), peer, |_| AuthAnswer::Accept);
    p.give_address = false;
    p.run(Duration::from_secs(40));
    assert!(p
        .events
        .iter()
        .any(|e| matches!(e, Event::NeedAddress { .. })));
    assert_eq!(p.closed(), Some("no address for the peer in time"));
}

#[test]
fn a_peer_that_never_answers_lcp_is_given_up() {
    let peer = Peer::new(&[AuthMethod::MsChapV2], "alice", "secret");
    let mut p = Pair::new(Config::default(), peer, |_| AuthAnswer::Refuse);
    p.link = false;
    p.run(Duration::from_secs(60));
    assert_eq!(
        p.closed(),
        Some("the peer did not answer our Configure-Request")
    );
}

#[test]
fn other_protocols_are_protocol_rejected_once_lcp_is_open() {
    let peer = Peer::new(&[AuthMethod::MsChapV2], "alice", "secret");
    let mut p = Pair::new(Config::default(), peer, |_| {
        AuthAnswer::NtHash(nt_hash("secret"))
    });
    p.settle();
    // IPv6CP (as Windows and pppd send it), CCP (MPPE), IPv6
    for (proto, info) in [
        (
            Protocol::Ipv6cp,
            build(1, 1, &[1, 10, 1, 2, 3, 4, 5, 6, 7, 8]),
        ),
        (Protocol::Ccp, build(1, 1, &[18, 6, 1, 0, 0, 0x40])),
        (Protocol::Ipv6, vec![0x60, 0, 0, 0]),
    ] {
        let mut out = Vec::new();
        p.server
            .handle_frame(p.now, &frame::frame(proto, &info), &mut out);
        p.handle(out);
    }
    assert_eq!(p.peer.protocol_rejects, vec![0x8057, 0x80fd, 0x0057]);
    assert_eq!(p.server.dropped.rejected, 3);
    assert!(p.server.is_up());
}

#[test]
fn ipv4_before_ipcp_is_dropped_and_counted() {
    let peer = Peer::new(&[AuthMethod::Pap], "carol", "pw");
    let mut p = Pair::new(Config::default(), peer, |_| AuthAnswer::Accept);
    let mut out = Vec::new();
    let early = frame::frame(Protocol::Ipv4, &ipv4(PEER_ADDRESS, GATEWAY));
    p.server.handle_frame(p.now, &early, &mut out);
    assert!(out.is_empty());
    assert_eq!(p.server.dropped.early, 1);
    assert!(!p.server.send_ip(&[0x45], &mut out));
}

#[test]
fn the_caller_can_close_a_session() {
    let peer = Peer::new(&[AuthMethod::MsChapV2], "alice", "secret");
    let mut p = Pair::new(Config::default(), peer, |_| {
        AuthAnswer::NtHash(nt_hash("secret"))
    });
    p.settle();
    let mut out = Vec::new();
    p.server
        .close(p.now, "administrator disconnected the session", &mut out);
    p.handle(out);
    p.settle();
    assert!(p.peer.terminated);
    assert_eq!(p.closed(), Some("administrator disconnected the session"));
}

/// Every frame a peer sent in a good session, to cut up.
fn recorded_frames() -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    for (methods, answer) in [
        (AuthMethod::MsChapV2, AuthAnswer::NtHash(nt_hash("secret"))),
        (AuthMethod::ChapMd5, AuthAnswer::Password("secret".into())),
        (AuthMethod::Pap, AuthAnswer::Accept),
    ] {
        let peer = Peer::new(&[methods], "alice", "secret");
        let mut p = Pair::new(Config::default(), peer, move |_| answer.clone());
        for _ in 0..20 {
            let batch: Vec<_> = p.peer.outbox.drain(..).collect();
            for f in batch {
                frames.push(f.clone());
                let mut out = Vec::new();
                p.server.handle_frame(p.now, &f, &mut out);
                p.handle(out);
            }
        }
    }
    frames
}

#[test]
fn truncated_frames_are_counted_not_fatal() {
    let frames = recorded_frames();
    assert!(frames.len() > 10);
    let peer = Peer::new(&[AuthMethod::MsChapV2], "alice", "secret");
    let mut p = Pair::new(Config::default(), peer, |_| {
        AuthAnswer::NtHash(nt_hash("secret"))
    });
    p.settle();
    assert!(p.server.is_up());
    let before = p.server.dropped;
    let mut out = Vec::new();
    for f in &frames {
        for cut in 0..f.len() {
            p.server.handle_frame(p.now, &f[..cut], &mut out);
        }
    }
    let after = p.server.dropped;
    assert!(after.malformed > before.malformed + frames.len() as u64);
    // nothing in the cut-up frames ends an open session on its own...
    assert!(
        !out.iter().any(|e| matches!(e, Event::Closed(_))),
        "{out:?}"
    );
    // ...and every frame still parses at full length on a fresh session
    let mut out = Vec::new();
    let mut fresh = Session::new(Instant::now(), Config::default(), [1; 32], &mut out);
    for f in &frames {
        fresh.handle_frame(Instant::now(), f, &mut out);
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_frames_never_panic(frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..40)) {
            let mut now = Instant::now();
            let mut out = Vec::new();
            let mut s = Session::new(now, Config::default(), [3; 32], &mut out);
            for f in &frames {
                s.handle_frame(now, f, &mut out);
                for e in std::mem::take(&mut out) {
                    match e {
                        Event::Authenticate(_) => s.auth_result(now, AuthAnswer::Accept, &mut out),
                        Event::NeedAddress { .. } => s.set_addressing(now, Some(Addressing {
                            peer: PEER_ADDRESS, local: GATEWAY, dns: [None, None], nbns: [None, None],
                        }), &mut out),
                        _ => {}
                    }
                }
                now += Duration::from_millis(u64::from(f.first().copied().unwrap_or(0)) * 50);
                s.handle_timeout(now, &mut out);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// A good session's frames with bytes changed, dropped or repeated: the session may
        /// close, never panic.
        #[test]
        fn mutated_sessions_never_panic(
            edits in proptest::collection::vec((any::<usize>(), any::<usize>(), any::<u8>(), 0u8..4), 0..30),
        ) {
            let mut frames = recorded_frames();
            for (which, at, byte, kind) in edits {
                let i = which % frames.len();
                let f = &mut frames[i];
                let at = at % f.len().max(1);
                match kind {
                    0 if !f.is_empty() => f[at] = byte,
                    1 => f.truncate(at),
                    2 => { let copy = f.clone(); frames.insert(i, copy); }
                    _ => { frames.remove(i); if frames.is_empty() { return Ok(()); } }
                }
            }
            let mut now = Instant::now();
            let mut out = Vec::new();
            let mut s = Session::new(now, Config::default(), [7; 32], &mut out);
            for f in &frames {
                s.handle_frame(now, f, &mut out);
                for e in std::mem::take(&mut out) {
                    match e {
                        Event::Authenticate(_) => s.auth_result(now, AuthAnswer::NtHash(nt_hash("secret")), &mut out),
                        Event::NeedAddress { .. } => s.set_addressing(now, Some(Addressing {
                            peer: PEER_ADDRESS, local: GATEWAY, dns: [Some(GATEWAY), None], nbns: [None, None],
                        }), &mut out),
                        _ => {}
                    }
                }
                now += Duration::from_millis(700);
                s.handle_timeout(now, &mut out);
                let _ = s.send_ip(&[0x45, 0, 0, 20], &mut out);
            }
        }
    }
}
