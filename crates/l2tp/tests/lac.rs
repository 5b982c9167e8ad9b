//! The LNS driven by a small LAC written here, on a virtual clock: tunnel and call set-up,
//! frames both ways, a lost and a retransmitted message, duplicates, teardown both ways, and
//! mangled packets.

use std::time::{Duration, Instant};

use etherhub_l2tp::packet::{self, avp, Avp, Header, MessageType};
use etherhub_l2tp::{Config, Event, Server, SessionKey};

const PEER: u32 = 7;
const LAC_TUNNEL: u16 = 0x1234;

/// A received control message: header and (type, AVPs as (type, value)), `None` for a ZLB.
type Received = (Header, Option<(MessageType, Vec<(u16, Vec<u8>)>)>);

struct Lac {
    /// The LNS's tunnel id, once its SCCRP said it.
    lns_tunnel: u16,
    ns: u16,
    nr: u16,
    /// Everything sent, for the mangling test.
    sent: Vec<Vec<u8>>,
}

impl Lac {
    fn new() -> Lac {
        Lac {
            lns_tunnel: 0,
            ns: 0,
            nr: 0,
            sent: Vec::new(),
        }
    }

    fn control(&mut self, session: u16, kind: MessageType, avps: &[Avp<'_>]) -> Vec<u8> {
        let kind = u16::from(kind).to_be_bytes();
        let mut all = vec![Avp::new(true, avp::MESSAGE_TYPE, &kind)];
        all.extend_from_slice(avps);
        let mut out = Vec::new();
        packet::emit_control(self.lns_tunnel, session, self.ns, self.nr, &all, &mut out).unwrap();
        self.ns = self.ns.wrapping_add(1);
        self.sent.push(out.clone());
        out
    }

    fn zlb(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        packet::emit_control(self.lns_tunnel, 0, self.ns, self.nr, &[], &mut out).unwrap();
        out
    }

    fn receive(&mut self, datagram: &[u8]) -> Received {
        let (h, payload) = packet::parse(datagram).expect("the LNS sends L2TP");
        assert_eq!(h.tunnel, LAC_TUNNEL, "sent to the LAC's tunnel id");
        let m = packet::parse_message(payload).unwrap().map(|m| {
            let (ns, _) = h.sequence.unwrap();
            if ns == self.nr {
                self.nr = self.nr.wrapping_add(1);
            }
            let avps = m.avps.iter().map(|a| (a.kind, a.value.to_vec())).collect();
            (m.kind, avps)
        });
        (h, m)
    }
}

fn value(avps: &[(u16, Vec<u8>)], kind: u16) -> Vec<u8> {
    avps.iter()
        .find(|a| a.0 == kind)
        .unwrap_or_else(|| panic!("AVP {kind} is there"))
        .1
        .clone()
}

fn u16_of(avps: &[(u16, Vec<u8>)], kind: u16) -> u16 {
    let v = value(avps, kind);
    u16::from_be_bytes([v[0], v[1]])
}

/// The datagrams among `events`, and the rest.
fn split(events: Vec<Event<u32>>) -> (Vec<Vec<u8>>, Vec<Event<u32>>) {
    let mut out = Vec::new();
    let mut rest = Vec::new();
    for e in events {
        match e {
            Event::Transmit { peer, datagram } => {
                assert_eq!(peer, PEER);
                out.push(datagram);
            }
            e => rest.push(e),
        }
    }
    (out, rest)
}

fn feed(s: &mut Server<u32>, now: Instant, d: &[u8]) -> (Vec<Vec<u8>>, Vec<Event<u32>>) {
    let mut events = Vec::new();
    s.handle_datagram(now, PEER, d, &mut events);
    split(events)
}

fn tick(s: &mut Server<u32>, now: Instant) -> (Vec<Vec<u8>>, Vec<Event<u32>>) {
    let mut events = Vec::new();
    s.handle_timeout(now, &mut events);
    split(events)
}

fn sccrq(lac: &mut Lac) -> Vec<u8> {
    lac.control(
        0,
        MessageType::Sccrq,
        &[
            Avp::new(true, avp::PROTOCOL_VERSION, &[1, 0]),
            Avp::new(true, avp::HOST_NAME, b"laptop"),
            Avp::new(true, avp::FRAMING_CAPABILITIES, &[0, 0, 0, 3]),
            Avp::new(false, avp::VENDOR_NAME, b"Microsoft"),
            Avp::new(true, avp::ASSIGNED_TUNNEL_ID, &LAC_TUNNEL.to_be_bytes()),
            Avp::new(false, avp::RECEIVE_WINDOW_SIZE, &[0, 8]),
        ],
    )
}

/// SCCRQ, SCCRP, SCCCN: the tunnel is up; returns the LNS's tunnel id.
fn open_tunnel(s: &mut Server<u32>, lac: &mut Lac, now: Instant) -> u16 {
    let d = sccrq(lac);
    let (out, ev) = feed(s, now, &d);
    assert!(ev.is_empty());
    assert_eq!(out.len(), 1);
    let (h, m) = lac.receive(&out[0]);
    let (kind, avps) = m.unwrap();
    assert_eq!(kind, MessageType::Sccrp);
    assert_eq!((h.session, h.sequence), (0, Some((0, 1))));
    assert_eq!(value(&avps, avp::PROTOCOL_VERSION), [1, 0]);
    assert_eq!(value(&avps, avp::HOST_NAME), b"etherhub");
    assert_eq!(value(&avps, avp::VENDOR_NAME), b"L2TP");
    assert_eq!(value(&avps, avp::FRAMING_CAPABILITIES), [0, 0, 0, 3]);
    assert_eq!(value(&avps, avp::BEARER_CAPABILITIES), [0, 0, 0, 3]);
    assert_eq!(u16_of(&avps, avp::RECEIVE_WINDOW_SIZE), 16);
    assert!(avps.iter().any(|a| a.0 == avp::FIRMWARE_REVISION));
    let tunnel = u16_of(&avps, avp::ASSIGNED_TUNNEL_ID);
    assert_ne!(tunnel, 0);
    lac.lns_tunnel = tunnel;

    let d = lac.control(0, MessageType::Scccn, &[]);
    let (out, ev) = feed(s, now, &d);
    assert_eq!(ev, [Event::TunnelUp { peer: PEER, tunnel }]);
    assert_eq!(out.len(), 1, "the SCCCN is acknowledged");
    let (h, m) = lac.receive(&out[0]);
    assert!(m.is_none());
    assert_eq!(h.sequence, Some((1, 2)));
    tunnel
}

/// ICRQ, ICRP, ICCN: the call is up; returns its key.
fn open_call(s: &mut Server<u32>, lac: &mut Lac, now: Instant, lac_session: u16) -> SessionKey {
    let d = lac.control(
        0,
        MessageType::Icrq,
        &[
            Avp::new(true, avp::ASSIGNED_SESSION_ID, &lac_session.to_be_bytes()),
            Avp::new(true, avp::CALL_SERIAL_NUMBER, &[0, 0, 0, 1]),
        ],
    );
    let (out, ev) = feed(s, now, &d);
    assert!(ev.is_empty());
    let (h, m) = lac.receive(&out[0]);
    let (kind, avps) = m.unwrap();
    assert_eq!((kind, h.session), (MessageType::Icrp, lac_session));
    let session = u16_of(&avps, avp::ASSIGNED_SESSION_ID);
    assert_ne!(session, 0);

    let d = lac.control(
        session,
        MessageType::Iccn,
        &[
            Avp::new(true, avp::TX_CONNECT_SPEED, &[0, 0, 0x27, 0x10]),
            Avp::new(true, avp::FRAMING_TYPE, &[0, 0, 0, 1]),
        ],
    );
    let (out, ev) = feed(s, now, &d);
    let key = SessionKey {
        tunnel: lac.lns_tunnel,
        session,
    };
    assert_eq!(
        ev,
        [Event::SessionUp {
            peer: PEER,
            session: key
        }]
    );
    assert!(lac.receive(&out[0]).1.is_none(), "a ZLB acknowledges ICCN");
    key
}

#[test]
fn a_lac_opens_a_tunnel_and_a_call_exchanges_frames_and_hangs_up() {
    let t0 = Instant::now();
    let mut s = Server::new(Config::default(), 42);
    let mut lac = Lac::new();
    let tunnel = open_tunnel(&mut s, &mut lac, t0);
    let key = open_call(&mut s, &mut lac, t0, 0x0042);
    assert_eq!((s.tunnel_count(), s.session_count()), (1, 1));

    // frames in: with FF 03, and without (address and control left out): both as they are
    for frame in [
        &[0xff, 0x03, 0xc0, 0x21, 1, 1, 0, 4][..],
        &[0xc0, 0x21, 9, 1, 0, 4],
    ] {
        let mut d = Vec::new();
        packet::emit_data(tunnel, key.session, frame, &mut d).unwrap();
        let (out, ev) = feed(&mut s, t0, &d);
        assert!(out.is_empty());
        assert_eq!(
            ev,
            [Event::Frame {
                peer: PEER,
                session: key,
                frame: frame.to_vec()
            }]
        );
    }
    // a frame out
    let d = s.send_frame(key, &[0xff, 0x03, 0x00, 0x21, 0x45]).unwrap();
    let (h, payload) = packet::parse(&d).unwrap();
    assert!(!h.control);
    assert_eq!((h.tunnel, h.session), (LAC_TUNNEL, 0x0042));
    assert_eq!(payload, [0xff, 0x03, 0x00, 0x21, 0x45]);

    // the LAC hangs up the call
    let d = lac.control(
        key.session,
        MessageType::Cdn,
        &[
            Avp::new(true, avp::RESULT_CODE, &[0, 3]),
            Avp::new(true, avp::ASSIGNED_SESSION_ID, &[0, 0x42]),
        ],
    );
    let (out, ev) = feed(&mut s, t0, &d);
    assert!(matches!(&ev[..], [Event::SessionDown { session, .. }] if *session == key));
    assert!(lac.receive(&out[0]).1.is_none());
    assert!(s.send_frame(key, &[0xff, 0x03]).is_err());

    // and stops the tunnel
    let d = lac.control(
        0,
        MessageType::StopCcn,
        &[
            Avp::new(true, avp::ASSIGNED_TUNNEL_ID, &LAC_TUNNEL.to_be_bytes()),
            Avp::new(true, avp::RESULT_CODE, &[0, 1]),
        ],
    );
    let (out, ev) = feed(&mut s, t0, &d);
    assert!(matches!(&ev[..], [Event::TunnelDown { tunnel: t, .. }] if *t == tunnel));
    assert!(lac.receive(&out[0]).1.is_none());
    // the StopCCN sent again (its ZLB lost) is acknowledged again while the tunnel lingers
    let again = lac.sent.last().unwrap().clone();
    let (out, ev) = feed(&mut s, t0 + Duration::from_secs(2), &again);
    assert!(ev.is_empty());
    assert_eq!(out.len(), 1);
    assert_eq!(s.dropped.duplicate, 1);
    let end = s.poll_timeout().unwrap();
    let (_, ev) = tick(&mut s, end);
    assert!(ev.is_empty());
    assert_eq!(s.tunnel_count(), 0);
}

#[test]
fn a_lost_message_is_sent_again_with_backoff_and_a_duplicate_is_acknowledged_not_redone() {
    let t0 = Instant::now();
    let mut s = Server::new(Config::default(), 7);
    let mut lac = Lac::new();
    open_tunnel(&mut s, &mut lac, t0);
    let a = open_call(&mut s, &mut lac, t0, 1);
    let b = open_call(&mut s, &mut lac, t0, 2);

    // the server hangs up call a; its CDN is lost on the way
    let mut events = Vec::new();
    s.close_session(t0, a, &mut events);
    let (out, ev) = split(events);
    assert!(matches!(&ev[..], [Event::SessionDown { session, .. }] if *session == a));
    assert_eq!(out.len(), 1);
    let lost = out[0].clone();
    // sent again after 1 s, then 2 s later, each time the same message
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(1)));
    let (out, _) = tick(&mut s, t0 + Duration::from_secs(1));
    assert_eq!(out, std::slice::from_ref(&lost));
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(3)));
    let (out, _) = tick(&mut s, t0 + Duration::from_secs(3));
    let (h, m) = lac.receive(&out[0]);
    let (kind, avps) = m.unwrap();
    assert_eq!((kind, h.session), (MessageType::Cdn, 1));
    assert_eq!(value(&avps, avp::RESULT_CODE), [0, 3]);
    assert_eq!(u16_of(&avps, avp::ASSIGNED_SESSION_ID), a.session);
    // the LAC's ZLB acknowledges it; nothing is due but the HELLO
    let (out, _) = feed(&mut s, t0 + Duration::from_secs(3), &lac.zlb());
    assert!(out.is_empty());
    assert_eq!(
        s.poll_timeout(),
        Some(t0 + Duration::from_secs(3) + Duration::from_secs(60))
    );

    // the LAC sends its ICCN of b again: acknowledged, counted, not a second SessionUp
    let iccn = lac.sent[lac.sent.len() - 1].clone();
    let (out, ev) = feed(&mut s, t0 + Duration::from_secs(4), &iccn);
    assert!(ev.is_empty());
    assert_eq!(out.len(), 1);
    assert_eq!(s.dropped.duplicate, 1);

    // a message of the LAC's overtakes the one before it: it waits for it
    let hello = lac.control(0, MessageType::Hello, &[]);
    let cdn = lac.control(
        b.session,
        MessageType::Cdn,
        &[Avp::new(true, avp::RESULT_CODE, &[0, 1])],
    );
    let (out, ev) = feed(&mut s, t0 + Duration::from_secs(5), &cdn);
    assert!(out.is_empty() && ev.is_empty());
    let (out, ev) = feed(&mut s, t0 + Duration::from_secs(5), &hello);
    assert!(matches!(&ev[..], [Event::SessionDown { session, .. }] if *session == b));
    let (h, m) = lac.receive(&out[0]);
    assert!(m.is_none());
    assert_eq!(h.sequence.unwrap().1, lac.ns, "both acknowledged");
    assert_eq!(s.session_count(), 0);
}

#[test]
fn an_unanswered_sccrp_is_sent_five_more_times_then_the_tunnel_is_gone() {
    let t0 = Instant::now();
    let mut s = Server::new(Config::default(), 1);
    let mut lac = Lac::new();
    let (out, _) = feed(&mut s, t0, &sccrq(&mut lac));
    let first = out[0].clone();
    let mut at = Vec::new();
    let mut downs = Vec::new();
    while let Some(t) = s.poll_timeout() {
        let (out, ev) = tick(&mut s, t);
        if !out.is_empty() {
            assert_eq!(out, std::slice::from_ref(&first));
            at.push(t.duration_since(t0).as_secs());
        }
        downs.extend(ev);
    }
    assert_eq!(at, [1, 3, 7, 15, 23]);
    assert!(matches!(&downs[..], [Event::TunnelDown { .. }]));
    assert_eq!(s.tunnel_count(), 0);
}

#[test]
fn a_silent_tunnel_gets_a_hello_and_dies_when_it_goes_unanswered() {
    let t0 = Instant::now();
    let mut s = Server::new(Config::default(), 3);
    let mut lac = Lac::new();
    open_tunnel(&mut s, &mut lac, t0);
    open_call(&mut s, &mut lac, t0, 9);
    let t60 = t0 + Duration::from_secs(60);
    assert_eq!(s.poll_timeout(), Some(t60));
    let (out, _) = tick(&mut s, t60);
    let (_, m) = lac.receive(&out[0]);
    assert_eq!(m.unwrap().0, MessageType::Hello);
    // answered: the next HELLO is 60 s after the answer
    let (out, _) = feed(&mut s, t60, &lac.zlb());
    assert!(out.is_empty());
    assert_eq!(s.poll_timeout(), Some(t60 + Duration::from_secs(60)));

    // unanswered: a session down, then the tunnel
    let mut ev = Vec::new();
    while let Some(t) = s.poll_timeout() {
        ev.extend(tick(&mut s, t).1);
    }
    assert!(matches!(
        &ev[..],
        [Event::SessionDown { .. }, Event::TunnelDown { .. }]
    ));
}

#[test]
fn the_server_stops_a_tunnel_and_it_is_gone_once_acknowledged() {
    let t0 = Instant::now();
    let mut s = Server::new(Config::default(), 5);
    let mut lac = Lac::new();
    let tunnel = open_tunnel(&mut s, &mut lac, t0);
    open_call(&mut s, &mut lac, t0, 3);
    let mut events = Vec::new();
    s.close_tunnel(t0, tunnel, &mut events);
    let (out, ev) = split(events);
    assert!(matches!(
        &ev[..],
        [Event::SessionDown { .. }, Event::TunnelDown { .. }]
    ));
    let (_, m) = lac.receive(&out[0]);
    let (kind, avps) = m.unwrap();
    assert_eq!(kind, MessageType::StopCcn);
    assert_eq!(u16_of(&avps, avp::ASSIGNED_TUNNEL_ID), tunnel);
    assert_eq!(s.tunnel_count(), 1);
    feed(&mut s, t0, &lac.zlb());
    assert_eq!(s.tunnel_count(), 0);
}

#[test]
fn strangers_repeats_and_limits_are_counted() {
    let t0 = Instant::now();
    let config = Config {
        max_tunnels_per_peer: 1,
        max_sessions_per_tunnel: 1,
        ..Config::default()
    };
    let mut s = Server::new(config, 9);
    let mut lac = Lac::new();
    let tunnel = open_tunnel(&mut s, &mut lac, t0);

    // the SCCRQ again (the LAC missed the SCCRP): the same tunnel acknowledges it
    let again = lac.sent[0].clone();
    let (out, _) = feed(&mut s, t0, &again);
    assert_eq!((s.tunnel_count(), out.len()), (1, 1));
    assert_eq!(s.dropped.duplicate, 1);

    // a second tunnel from the same peer is over its limit
    let mut other = Lac::new();
    let d = other.control(
        0,
        MessageType::Sccrq,
        &[Avp::new(true, avp::ASSIGNED_TUNNEL_ID, &[0, 9])],
    );
    assert_eq!(feed(&mut s, t0, &d).0.len(), 0);
    assert_eq!(s.dropped.refused, 1);

    // packets from another address for this tunnel, and for no tunnel
    let mut events = Vec::new();
    s.handle_datagram(t0, 8, &lac.zlb(), &mut events);
    let mut d = Vec::new();
    packet::emit_data(tunnel ^ 1, 1, &[1], &mut d).unwrap();
    s.handle_datagram(t0, PEER, &d, &mut events);
    assert!(events.is_empty());
    assert_eq!(s.dropped.unknown_tunnel, 2);
    s.handle_datagram(t0, PEER, &[0xc8], &mut events);
    assert_eq!(s.dropped.malformed, 1);

    // a second call is over the limit: refused with CDN
    open_call(&mut s, &mut lac, t0, 1);
    let d = lac.control(
        0,
        MessageType::Icrq,
        &[Avp::new(true, avp::ASSIGNED_SESSION_ID, &[0, 2])],
    );
    let (out, _) = feed(&mut s, t0, &d);
    let (h, m) = lac.receive(&out[0]);
    assert_eq!((m.unwrap().0, h.session), (MessageType::Cdn, 2));
    assert_eq!(s.dropped.refused, 2);
}

#[test]
fn truncated_and_mutated_messages_never_panic() {
    let t0 = Instant::now();
    let mut s = Server::new(Config::default(), 11);
    let mut lac = Lac::new();
    open_tunnel(&mut s, &mut lac, t0);
    let key = open_call(&mut s, &mut lac, t0, 5);
    let mut all = lac.sent.clone();
    let mut d = Vec::new();
    packet::emit_data(key.tunnel, key.session, &[0xff, 3, 0, 0x21, 0x45], &mut d).unwrap();
    all.push(d);
    let mut now = t0;
    let mut events = Vec::new();
    for m in &all {
        for cut in 0..=m.len() {
            s.handle_datagram(now, PEER, &m[..cut], &mut events);
        }
        for i in 0..m.len() {
            for x in [0x01, 0x40, 0x80, 0xff] {
                let mut b = m.clone();
                b[i] ^= x;
                s.handle_datagram(now, PEER, &b, &mut events);
                now += Duration::from_millis(10);
                if s.poll_timeout().is_some_and(|t| t <= now) {
                    s.handle_timeout(now, &mut events);
                }
            }
        }
    }
    assert!(s.dropped.malformed > 0);
}
