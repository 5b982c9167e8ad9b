//! One SSTP call on the server, sans-IO: the bytes of the TLS connection after the HTTP
//! request in, PPP frames and bytes to write out.
//!
//! The client's Call Connect Request (PPP encapsulated) is answered with a Call Connect Ack
//! that asks for the crypto binding (the server's nonce, SHA-256 or SHA-1); PPP frames flow
//! from then on. The client's Call Connected carries the binding: its nonce must be the
//! server's. Echo requests are answered; a call silent for [`HELLO`] gets one, and one more
//! silent [`HELLO`] ends it. Call Disconnect is acknowledged, Call Abort ends at once.

use std::time::{Duration, Instant};

use crate::packet::{
    self, emit_control, emit_data, Message, Packet, ATTRIB_STATUS_VALUE_NOT_SUPPORTED,
    ATTR_CRYPTO_BINDING, ATTR_CRYPTO_BINDING_REQ, ATTR_ENCAPSULATED_PROTOCOL_ID, ATTR_STATUS_INFO,
    CALL_ABORT, CALL_CONNECTED, CALL_CONNECT_ACK, CALL_CONNECT_NAK, CALL_CONNECT_REQUEST,
    CALL_DISCONNECT, CALL_DISCONNECT_ACK, CERT_HASH_SHA1, CERT_HASH_SHA256, ECHO_REQUEST,
    ECHO_RESPONSE, PROTOCOL_PPP,
};

/// How long a call may stay silent before the server sends an echo request, and how long it
/// then waits for anything (MS-SSTP's hello timer).
pub const HELLO: Duration = Duration::from_secs(60);
/// How long the client has from the connection to its Call Connected.
pub const NEGOTIATION: Duration = Duration::from_secs(60);
/// The most bytes of an unfinished packet held.
const MAX_PENDING: usize = 2 * packet::MAX_PACKET;

/// What the call asks of, or tells, its caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Bytes to write to the connection.
    Write(Vec<u8>),
    /// A PPP frame from the client.
    Frame(Vec<u8>),
    /// The client's Call Connected came with a crypto binding that names the server's nonce.
    Connected(CryptoBinding),
    /// The call is over (the reason is for the log); close the connection.
    Closed(String),
}

/// The crypto binding of a Call Connected (MS-SSTP 2.2.7): what the client hashed the
/// server's certificate with, that hash, and its compound MAC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CryptoBinding {
    pub hash_protocol: u8,
    pub cert_hash: [u8; 32],
    pub compound_mac: [u8; 32],
}

/// Counters of what the call dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Packets that did not parse, or control messages out of place.
    pub malformed: u64,
    /// PPP frames before the call was accepted.
    pub early: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for Call Connect Request.
    Request,
    /// Acked; PPP may run; waiting for Call Connected.
    Acked,
    Connected,
    Closed,
}

/// One SSTP call.
pub struct Session {
    state: State,
    nonce: [u8; 32],
    pending: Vec<u8>,
    started: Instant,
    last_heard: Instant,
    echo_sent: bool,
    pub dropped: Dropped,
}

/// The server's answer to the client's `SSTP_DUPLEX_POST` (MS-SSTP 3.2.5.1: status 200 and
/// the same "infinite" content length; the headers in SoftEther's order). `date`: an RFC 1123
/// date.
pub fn http_response(date: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\nDate: {date}\r\nServer: Microsoft-HTTPAPI/2.0\r\n\r\n"
    )
    .into_bytes()
}

impl Session {
    /// A call whose crypto binding request carries `nonce` (random, from the caller).
    pub fn new(now: Instant, nonce: [u8; 32]) -> Session {
        Session {
            state: State::Request,
            nonce,
            pending: Vec::new(),
            started: now,
            last_heard: now,
            echo_sent: false,
            dropped: Dropped::default(),
        }
    }

    /// Whether PPP frames may flow (the call was accepted).
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Acked | State::Connected)
    }

    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Bytes from the connection.
    pub fn handle_bytes(&mut self, now: Instant, bytes: &[u8], events: &mut Vec<Event>) {
        if self.state == State::Closed {
            return;
        }
        self.pending.extend_from_slice(bytes);
        let mut used = 0;
        loop {
            match packet::parse(&self.pending[used..]) {
                Ok(Some((p, n))) => {
                    let p = match p {
                        Packet::Data(f) => Owned::Data(f.to_vec()),
                        Packet::Control(m) => Owned::Control(owned(&m)),
                    };
                    used += n;
                    self.last_heard = now;
                    self.echo_sent = false;
                    self.packet(p, events);
                    if self.state == State::Closed {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.dropped.malformed += 1;
                    self.close(format!("not SSTP: {e}"), events);
                    return;
                }
            }
        }
        self.pending.drain(..used);
        if self.pending.len() > MAX_PENDING {
            self.dropped.malformed += 1;
            self.close("a packet longer than SSTP allows".into(), events);
        }
    }

    fn packet(&mut self, p: Owned, events: &mut Vec<Event>) {
        match p {
            Owned::Data(frame) => {
                if self.is_open() {
                    events.push(Event::Frame(frame));
                } else {
                    self.dropped.early += 1;
                }
            }
            Owned::Control((kind, attributes)) => self.control(kind, &attributes, events),
        }
    }

    fn control(&mut self, kind: u16, attributes: &[(u8, Vec<u8>)], events: &mut Vec<Event>) {
        let attr = |id: u8| {
            attributes
                .iter()
                .find(|(a, _)| *a == id)
                .map(|(_, v)| v.as_slice())
        };
        match (kind, self.state) {
            (CALL_CONNECT_REQUEST, State::Request) => {
                if attr(ATTR_ENCAPSULATED_PROTOCOL_ID) != Some(&PROTOCOL_PPP.to_be_bytes()[..]) {
                    // only PPP is carried: say so, and let the client try again
                    let status = packet::status_info(
                        ATTR_ENCAPSULATED_PROTOCOL_ID,
                        ATTRIB_STATUS_VALUE_NOT_SUPPORTED,
                    );
                    let mut out = Vec::new();
                    emit_control(
                        CALL_CONNECT_NAK,
                        &[(ATTR_STATUS_INFO, &status[..])],
                        &mut out,
                    );
                    events.push(Event::Write(out));
                    return;
                }
                let mut req = [0u8; 36];
                req[3] = CERT_HASH_SHA256 | CERT_HASH_SHA1;
                req[4..].copy_from_slice(&self.nonce);
                let mut out = Vec::new();
                emit_control(
                    CALL_CONNECT_ACK,
                    &[(ATTR_CRYPTO_BINDING_REQ, &req[..])],
                    &mut out,
                );
                events.push(Event::Write(out));
                self.state = State::Acked;
            }
            (CALL_CONNECTED, State::Acked) => {
                let Some(b) = attr(ATTR_CRYPTO_BINDING).filter(|b| b.len() >= 100) else {
                    self.dropped.malformed += 1;
                    self.abort("a Call Connected without its crypto binding", events);
                    return;
                };
                if b[4..36] != self.nonce {
                    self.abort("a crypto binding with another nonce", events);
                    return;
                }
                let mut binding = CryptoBinding {
                    hash_protocol: b[3],
                    cert_hash: [0; 32],
                    compound_mac: [0; 32],
                };
                binding.cert_hash.copy_from_slice(&b[36..68]);
                binding.compound_mac.copy_from_slice(&b[68..100]);
                self.state = State::Connected;
                events.push(Event::Connected(binding));
            }
            (ECHO_REQUEST, _) => {
                let mut out = Vec::new();
                emit_control(ECHO_RESPONSE, &[], &mut out);
                events.push(Event::Write(out));
            }
            (ECHO_RESPONSE, _) => {}
            (CALL_DISCONNECT, _) => {
                let mut out = Vec::new();
                emit_control(CALL_DISCONNECT_ACK, &[], &mut out);
                events.push(Event::Write(out));
                self.close("the client disconnected".into(), events);
            }
            (CALL_DISCONNECT_ACK, _) => self.close("disconnected".into(), events),
            (CALL_ABORT, _) => self.close("the client aborted the call".into(), events),
            _ => {
                // a message out of place (a second request, a connected before the ack)
                self.dropped.malformed += 1;
                self.abort("a control message out of place", events);
            }
        }
    }

    /// Sends a PPP frame to the client; dropped (counted) before the call is accepted or when
    /// longer than one packet.
    pub fn send_frame(&mut self, frame: &[u8], events: &mut Vec<Event>) {
        let mut out = Vec::with_capacity(frame.len() + packet::HEADER_LEN);
        if !self.is_open() || emit_data(frame, &mut out).is_none() {
            self.dropped.early += 1;
            return;
        }
        events.push(Event::Write(out));
    }

    /// Ends the call from the server's side (Call Disconnect, then the connection closes).
    pub fn disconnect(&mut self, why: &str, events: &mut Vec<Event>) {
        if self.state == State::Closed {
            return;
        }
        let mut out = Vec::new();
        emit_control(CALL_DISCONNECT, &[], &mut out);
        events.push(Event::Write(out));
        self.close(why.to_string(), events);
    }

    fn abort(&mut self, why: &str, events: &mut Vec<Event>) {
        let mut out = Vec::new();
        emit_control(CALL_ABORT, &[], &mut out);
        events.push(Event::Write(out));
        self.close(why.to_string(), events);
    }

    fn close(&mut self, why: String, events: &mut Vec<Event>) {
        self.state = State::Closed;
        self.pending = Vec::new();
        events.push(Event::Closed(why));
    }

    /// When [`Session::handle_timeout`] wants calling.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Closed => None,
            State::Request | State::Acked => {
                Some((self.started + NEGOTIATION).min(self.last_heard + HELLO))
            }
            State::Connected => Some(self.last_heard + HELLO),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant, events: &mut Vec<Event>) {
        match self.state {
            State::Closed => {}
            State::Request | State::Acked if now >= self.started + NEGOTIATION => {
                self.abort("the call was not connected in time", events)
            }
            _ if now >= self.last_heard + HELLO => {
                if self.echo_sent {
                    self.close("the client stopped answering".into(), events);
                } else {
                    let mut out = Vec::new();
                    emit_control(ECHO_REQUEST, &[], &mut out);
                    events.push(Event::Write(out));
                    self.echo_sent = true;
                    self.last_heard = now;
                }
            }
            _ => {}
        }
    }
}

/// A parsed packet, owned (the connection's buffer moves on).
enum Owned {
    Data(Vec<u8>),
    Control((u16, Vec<(u8, Vec<u8>)>)),
}

fn owned(m: &Message<'_>) -> (u16, Vec<(u8, Vec<u8>)>) {
    (
        m.kind,
        m.attributes
            .iter()
            .map(|(id, v)| (*id, v.to_vec()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE: [u8; 32] = [7; 32];

    fn control(kind: u16, attributes: &[(u8, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        emit_control(kind, attributes, &mut out);
        out
    }

    fn writes(events: &[Event]) -> Vec<Vec<u8>> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Write(b) => Some(b.clone()),
                _ => None,
            })
            .collect()
    }

    fn kind_of(bytes: &[u8]) -> u16 {
        match packet::parse(bytes).unwrap().unwrap().0 {
            Packet::Control(m) => m.kind,
            Packet::Data(_) => panic!("data"),
        }
    }

    fn connected(now: Instant) -> Session {
        let mut s = Session::new(now, NONCE);
        let mut ev = Vec::new();
        let req = control(
            CALL_CONNECT_REQUEST,
            &[(ATTR_ENCAPSULATED_PROTOCOL_ID, &[0, 1])],
        );
        s.handle_bytes(now, &req, &mut ev);
        let ack = &writes(&ev)[0];
        let Packet::Control(m) = packet::parse(ack).unwrap().unwrap().0 else {
            panic!("no ack")
        };
        assert_eq!(m.kind, CALL_CONNECT_ACK);
        let req = m.attribute(ATTR_CRYPTO_BINDING_REQ).unwrap();
        assert_eq!(req.len(), 36);
        assert_eq!(req[3], CERT_HASH_SHA1 | CERT_HASH_SHA256);
        assert_eq!(req[4..], NONCE);
        let mut binding = [0u8; 100];
        binding[3] = CERT_HASH_SHA256;
        binding[4..36].copy_from_slice(&NONCE);
        binding[36..68].copy_from_slice(&[0xaa; 32]);
        ev.clear();
        s.handle_bytes(
            now,
            &control(CALL_CONNECTED, &[(ATTR_CRYPTO_BINDING, &binding[..])]),
            &mut ev,
        );
        assert!(matches!(&ev[..], [Event::Connected(b)] if b.cert_hash == [0xaa; 32]));
        s
    }

    #[test]
    fn a_call_connects_and_carries_ppp_frames_both_ways_in_pieces() {
        let now = Instant::now();
        let mut s = connected(now);
        let mut wire = Vec::new();
        emit_data(&[0xff, 0x03, 0xc0, 0x21, 1, 1, 0, 4], &mut wire).unwrap();
        emit_data(&[0xff, 0x03, 0x00, 0x21, 0x45], &mut wire).unwrap();
        let mut ev = Vec::new();
        for b in wire.chunks(3) {
            s.handle_bytes(now, b, &mut ev);
        }
        assert_eq!(
            ev,
            vec![
                Event::Frame(vec![0xff, 0x03, 0xc0, 0x21, 1, 1, 0, 4]),
                Event::Frame(vec![0xff, 0x03, 0x00, 0x21, 0x45])
            ]
        );
        ev.clear();
        s.send_frame(&[0xff, 0x03, 0x00, 0x21, 0x45], &mut ev);
        assert_eq!(
            writes(&ev),
            vec![vec![0x10, 0, 0, 9, 0xff, 0x03, 0x00, 0x21, 0x45]]
        );
    }

    #[test]
    fn frames_before_the_ack_are_dropped_and_counted() {
        let now = Instant::now();
        let mut s = Session::new(now, NONCE);
        let mut wire = Vec::new();
        emit_data(&[0xff, 0x03, 0xc0, 0x21], &mut wire).unwrap();
        let mut ev = Vec::new();
        s.handle_bytes(now, &wire, &mut ev);
        assert!(ev.is_empty());
        assert_eq!(s.dropped.early, 1);
        s.send_frame(&[1, 2, 3], &mut ev);
        assert!(ev.is_empty());
    }

    #[test]
    fn a_binding_with_another_nonce_aborts_the_call() {
        let now = Instant::now();
        let mut s = Session::new(now, NONCE);
        let mut ev = Vec::new();
        s.handle_bytes(
            now,
            &control(
                CALL_CONNECT_REQUEST,
                &[(ATTR_ENCAPSULATED_PROTOCOL_ID, &[0, 1])],
            ),
            &mut ev,
        );
        let mut binding = [0u8; 100];
        binding[4..36].copy_from_slice(&[9; 32]);
        ev.clear();
        s.handle_bytes(
            now,
            &control(CALL_CONNECTED, &[(ATTR_CRYPTO_BINDING, &binding[..])]),
            &mut ev,
        );
        assert_eq!(kind_of(&writes(&ev)[0]), CALL_ABORT);
        assert!(matches!(ev.last(), Some(Event::Closed(_))));
        assert!(s.is_closed());
    }

    #[test]
    fn another_protocol_is_refused_with_a_nak() {
        let now = Instant::now();
        let mut s = Session::new(now, NONCE);
        let mut ev = Vec::new();
        s.handle_bytes(
            now,
            &control(
                CALL_CONNECT_REQUEST,
                &[(ATTR_ENCAPSULATED_PROTOCOL_ID, &[0, 2])],
            ),
            &mut ev,
        );
        assert_eq!(kind_of(&writes(&ev)[0]), CALL_CONNECT_NAK);
        assert!(!s.is_open());
    }

    #[test]
    fn echo_disconnect_and_silence() {
        let now = Instant::now();
        let mut s = connected(now);
        let mut ev = Vec::new();
        s.handle_bytes(now, &control(ECHO_REQUEST, &[]), &mut ev);
        assert_eq!(kind_of(&writes(&ev)[0]), ECHO_RESPONSE);
        // silence: one echo request, then the end
        ev.clear();
        let t = s.poll_timeout().unwrap();
        assert_eq!(t, now + HELLO);
        s.handle_timeout(t, &mut ev);
        assert_eq!(kind_of(&writes(&ev)[0]), ECHO_REQUEST);
        ev.clear();
        let t2 = s.poll_timeout().unwrap();
        s.handle_timeout(t2, &mut ev);
        assert!(matches!(&ev[..], [Event::Closed(_)]));
        // a client's disconnect is acknowledged
        let mut s = connected(now);
        ev.clear();
        s.handle_bytes(now, &control(CALL_DISCONNECT, &[]), &mut ev);
        assert_eq!(kind_of(&writes(&ev)[0]), CALL_DISCONNECT_ACK);
        assert!(s.is_closed());
    }

    #[test]
    fn garbage_ends_the_call_and_is_counted() {
        let now = Instant::now();
        let mut s = Session::new(now, NONCE);
        let mut ev = Vec::new();
        s.handle_bytes(now, b"GET / HTTP/1.1\r\n", &mut ev);
        assert!(matches!(&ev[..], [Event::Closed(_)]));
        assert_eq!(s.dropped.malformed, 1);
        // a call that never connects is aborted after the negotiation time
        let mut s = Session::new(now, NONCE);
        ev.clear();
        s.handle_timeout(now + NEGOTIATION, &mut ev);
        assert_eq!(kind_of(&writes(&ev)[0]), CALL_ABORT);
    }
}
