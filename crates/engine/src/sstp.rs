//! SSTP behind the seam: a TLS connection whose request was `SSTP_DUPLEX_POST` (the runtime's
//! front door decides) is one call of the SSTP core (etherhub-sstp) carrying one PPP link
//! ([`crate::ppplink`]) to a hub: sessions `SID-<USER>-[SSTP]-<n>`, addresses from SecureNAT.
//!
//! The link starts once the call is accepted (the client's Call Connect Request answered):
//! PPP frames before it would be dropped. The crypto binding's nonce is checked by the SSTP
//! core, and its certificate hash here against the server's certificate (option
//! `ServerCert`, the DER in hex): a client that hashed another certificate went through a TLS
//! relay, and its call ends. (SoftEther checks neither.) The compound MAC is not checked.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use etherhub_sstp::packet::{CERT_HASH_SHA1, CERT_HASH_SHA256};
use etherhub_sstp::session::{http_response, CryptoBinding, Event, Session};

use crate::ppplink::{next_index, LinkInfo, PppLink, PppStats};
use crate::seam::{ConnId, Io, Protocol, TunnelId};

/// Calls at most (each holds a TLS connection; this bounds what a crowd of half-open calls
/// can take).
pub const MAX_CALLS: usize = 4096;

struct Call {
    sstp: Session,
    peer: SocketAddr,
    link: Option<PppLink>,
}

/// Counters of the core.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SstpStats {
    pub calls: u64,
    pub calls_refused: u64,
    pub malformed_dropped: u64,
    pub early_dropped: u64,
    /// Calls ended because their crypto binding hashed another certificate than ours.
    pub binding_refused: u64,
    pub ppp: PppStats,
}

/// The SSTP protocol core.
pub struct Sstp {
    calls: HashMap<ConnId, Call>,
    by_tunnel: HashMap<u32, ConnId>,
    next_index: u32,
    enabled: bool,
    /// The hub of a user name that names none (the IPsec settings' `L2TP_DefaultHub`).
    default_hub: String,
    /// SHA-1 and SHA-256 of the server's certificate, as a crypto binding names it.
    cert_hashes: Option<([u8; 20], [u8; 32])>,
    stats: SstpStats,
}

impl Default for Sstp {
    fn default() -> Self {
        Sstp {
            calls: HashMap::new(),
            by_tunnel: HashMap::new(),
            next_index: 0,
            enabled: true,
            default_hub: crate::seam::DEFAULT_HUB.into(),
            cert_hashes: None,
            stats: SstpStats::default(),
        }
    }
}

impl Sstp {
    pub fn new() -> Sstp {
        Sstp::default()
    }

    pub fn stats(&self) -> SstpStats {
        let mut s = self.stats;
        for c in self.calls.values() {
            s.malformed_dropped += c.sstp.dropped.malformed;
            s.early_dropped += c.sstp.dropped.early;
            s.ppp.ppp_dropped += c.link.as_ref().map_or(0, |l| l.dropped());
        }
        s
    }

    /// Acts on the SSTP core's events for `conn`; frames for the link go through it.
    fn events(&mut self, now: Instant, conn: ConnId, events: Vec<Event>, io: &mut dyn Io) {
        let mut queue = std::collections::VecDeque::from(events);
        while let Some(ev) = queue.pop_front() {
            if matches!(ev, Event::Frame(_)) {
                // a frame right behind the request that opened the call
                self.start_link(now, conn, io);
            }
            let Some(call) = self.calls.get_mut(&conn) else {
                return;
            };
            match ev {
                Event::Write(bytes) => io.write_stream(conn, &bytes),
                Event::Frame(frame) => {
                    let Some(link) = call.link.as_mut() else {
                        continue;
                    };
                    let mut frames = Vec::new();
                    let ended = link.frame(now, &frame, &mut self.stats.ppp, io, &mut frames);
                    let mut more = framed(&mut call.sstp, frames);
                    if let Some(why) = ended {
                        call.sstp.disconnect(&why, &mut more);
                    }
                    queue.extend(more);
                }
                Event::Connected(binding) => {
                    if let Some(why) = self.cert_hashes.and_then(|h| foreign_cert(&binding, h)) {
                        self.stats.binding_refused += 1;
                        io.peer_refused(call.peer, "SSTP", why);
                        let mut more = Vec::new();
                        call.sstp.disconnect(why, &mut more);
                        queue.extend(more);
                    }
                }
                Event::Closed(_why) => {
                    self.forget(conn, io);
                    io.close_stream(conn);
                    return;
                }
            }
        }
        self.start_link(now, conn, io);
    }

    /// Starts the PPP link once the call is accepted.
    fn start_link(&mut self, now: Instant, conn: ConnId, io: &mut dyn Io) {
        let Some(call) = self.calls.get_mut(&conn) else {
            return;
        };
        if call.link.is_some() || !call.sstp.is_open() {
            return;
        }
        let by_tunnel = &self.by_tunnel;
        let index = next_index(&mut self.next_index, |i| by_tunnel.contains_key(&i));
        let tunnel = TunnelId {
            protocol: io.protocol(),
            index,
        };
        let mut frames = Vec::new();
        let link = PppLink::new(
            now,
            tunnel,
            call.peer,
            LinkInfo {
                tag: "SSTP",
                client_product: "Microsoft SSTP VPN Client",
                cipher: String::new(),
                default_hub: self.default_hub.clone(),
            },
            &mut frames,
        );
        call.link = Some(link);
        self.by_tunnel.insert(index, conn);
        write_out(conn, framed(&mut call.sstp, frames), io);
    }

    /// Forgets a call; its tunnel, if open, is reported closed.
    fn forget(&mut self, conn: ConnId, io: &mut dyn Io) {
        if let Some(mut call) = self.calls.remove(&conn) {
            if let Some(link) = call.link.as_mut() {
                self.by_tunnel.remove(&link.tunnel().index);
                link.gone(io);
            }
        }
    }
}

impl Protocol for Sstp {
    fn name(&self) -> &'static str {
        "SSTP"
    }

    fn set_option(&mut self, _now: Instant, name: &str, value: &str, _io: &mut dyn Io) {
        if name.eq_ignore_ascii_case("Enabled") {
            self.enabled = value.eq_ignore_ascii_case("true");
        } else if name.eq_ignore_ascii_case("DefaultHub") && !value.is_empty() {
            self.default_hub = value.to_string();
        } else if name.eq_ignore_ascii_case("ServerCert") {
            self.cert_hashes = cert_hashes(value);
        }
    }

    fn open_stream(
        &mut self,
        now: Instant,
        conn: ConnId,
        peer: SocketAddr,
        bytes: &[u8],
        io: &mut dyn Io,
    ) {
        if !self.enabled || self.calls.len() >= MAX_CALLS {
            self.stats.calls_refused += 1;
            io.close_stream(conn);
            return;
        }
        let mut nonce = [0u8; 32];
        if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce).is_err() {
            self.stats.calls_refused += 1;
            io.close_stream(conn);
            return;
        }
        self.stats.calls += 1;
        let unix = io.unix_ms().map_or(0, |ms| ms / 1000);
        io.write_stream(
            conn,
            &http_response(&etherhub_softether::page::http_date(unix)),
        );
        self.calls.insert(
            conn,
            Call {
                sstp: Session::new(now, nonce),
                peer,
                link: None,
            },
        );
        self.handle_stream(now, conn, bytes, io);
    }

    fn handle_stream(&mut self, now: Instant, conn: ConnId, bytes: &[u8], io: &mut dyn Io) {
        let Some(call) = self.calls.get_mut(&conn) else {
            return;
        };
        let mut events = Vec::new();
        call.sstp.handle_bytes(now, bytes, &mut events);
        self.events(now, conn, events, io);
    }

    fn stream_closed(&mut self, _now: Instant, conn: ConnId, io: &mut dyn Io) {
        self.forget(conn, io);
    }

    fn send(&mut self, _now: Instant, tunnel: TunnelId, packet: Vec<u8>, io: &mut dyn Io) {
        let Some(&conn) = self.by_tunnel.get(&tunnel.index) else {
            return;
        };
        let Some(call) = self.calls.get_mut(&conn) else {
            return;
        };
        let Some(link) = call.link.as_mut() else {
            return;
        };
        let mut frames = Vec::new();
        link.send_ip(&packet, &mut frames);
        write_out(conn, framed(&mut call.sstp, frames), io);
    }

    fn handle_timeout(&mut self, now: Instant, io: &mut dyn Io) {
        let due: Vec<ConnId> = self
            .calls
            .iter()
            .filter(|(_, c)| call_timeout(c).is_some_and(|t| t <= now))
            .map(|(k, _)| *k)
            .collect();
        for conn in due {
            let Some(call) = self.calls.get_mut(&conn) else {
                continue;
            };
            let mut events = Vec::new();
            if call.sstp.poll_timeout().is_some_and(|t| t <= now) {
                call.sstp.handle_timeout(now, &mut events);
            }
            if let Some(link) = call.link.as_mut() {
                if link.poll_timeout().is_some_and(|t| t <= now) {
                    let mut frames = Vec::new();
                    let ended = link.timeout(now, &mut self.stats.ppp, io, &mut frames);
                    events.extend(framed(&mut call.sstp, frames));
                    if let Some(why) = ended {
                        call.sstp.disconnect(&why, &mut events);
                    }
                }
            }
            self.events(now, conn, events, io);
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.calls.values().filter_map(call_timeout).min()
    }

    fn close(&mut self, now: Instant, tunnel: TunnelId, io: &mut dyn Io) {
        let Some(conn) = self.by_tunnel.remove(&tunnel.index) else {
            return;
        };
        let Some(mut call) = self.calls.remove(&conn) else {
            return;
        };
        // the engine ended it: LCP's Terminate and SSTP's disconnect, then the connection goes
        let mut frames = Vec::new();
        if let Some(link) = call.link.as_mut() {
            link.terminate(now, "ended by the server", &mut frames);
        }
        let mut writes = framed(&mut call.sstp, frames);
        call.sstp.disconnect("ended by the server", &mut writes);
        write_out(conn, writes, io);
        io.close_stream(conn);
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        let s = self.stats();
        vec![
            ("calls", s.calls),
            ("calls_refused", s.calls_refused),
            ("logins", s.ppp.logins),
            ("refused_logins", s.ppp.refused_logins),
            ("malformed_dropped", s.malformed_dropped),
            ("early_dropped", s.early_dropped),
            ("binding_refused", s.binding_refused),
            ("ppp_dropped", s.ppp.ppp_dropped),
        ]
    }
}

/// PPP frames as the call's SSTP data packets (write events).
fn framed(sstp: &mut Session, frames: Vec<Vec<u8>>) -> Vec<Event> {
    let mut out = Vec::new();
    for f in frames {
        sstp.send_frame(&f, &mut out);
    }
    out
}

/// Writes what the call wrote (sending frames and disconnecting make writes only).
fn write_out(conn: ConnId, events: Vec<Event>, io: &mut dyn Io) {
    for e in events {
        if let Event::Write(bytes) = e {
            io.write_stream(conn, &bytes);
        }
    }
}

fn call_timeout(c: &Call) -> Option<Instant> {
    let link = c.link.as_ref().and_then(|l| l.poll_timeout());
    match (c.sstp.poll_timeout(), link) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Why a crypto binding names another certificate than the server's, if it does. SHA-1's
/// hash fills the first 20 of the field's 32 bytes (MS-SSTP 2.2.7).
fn foreign_cert(b: &CryptoBinding, (sha1, sha256): ([u8; 20], [u8; 32])) -> Option<&'static str> {
    let matches = match b.hash_protocol {
        CERT_HASH_SHA256 => b.cert_hash == sha256,
        CERT_HASH_SHA1 => b.cert_hash[..20] == sha1 && b.cert_hash[20..] == [0; 12],
        _ => return Some("a crypto binding with an unknown hash protocol"),
    };
    (!matches).then_some(
        "the crypto binding hashes another certificate than the server's (a TLS relay between \
         the client and the server?)",
    )
}

/// SHA-1 and SHA-256 of a certificate given as its DER in hex; `None` for text that is not
/// hex (no check then, rather than a wrong one).
fn cert_hashes(hex: &str) -> Option<([u8; 20], [u8; 32])> {
    let der = unhex(hex)?;
    let (mut sha1, mut sha256) = ([0u8; 20], [0u8; 32]);
    let d = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &der);
    sha1.copy_from_slice(d.as_ref());
    let d = ring::digest::digest(&ring::digest::SHA256, &der);
    sha256.copy_from_slice(d.as_ref());
    Some((sha1, sha256))
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crypto_binding_must_hash_the_servers_certificate() {
        let der = b"not really DER, but bytes all the same";
        let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
        let hashes = cert_hashes(&hex).expect("hashes from the certificate");
        let sha256 = ring::digest::digest(&ring::digest::SHA256, der);
        let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der);
        let binding = |protocol, hash: &[u8]| {
            let mut b = CryptoBinding {
                hash_protocol: protocol,
                cert_hash: [0; 32],
                compound_mac: [0; 32],
            };
            b.cert_hash[..hash.len()].copy_from_slice(hash);
            b
        };
        assert_eq!(
            foreign_cert(&binding(CERT_HASH_SHA256, sha256.as_ref()), hashes),
            None
        );
        assert_eq!(
            foreign_cert(&binding(CERT_HASH_SHA1, sha1.as_ref()), hashes),
            None
        );
        // another certificate, the right hash under the wrong protocol, junk after SHA-1's
        assert!(foreign_cert(&binding(CERT_HASH_SHA256, &[7; 32]), hashes).is_some());
        assert!(foreign_cert(&binding(CERT_HASH_SHA1, sha256.as_ref()), hashes).is_some());
        let mut padded = binding(CERT_HASH_SHA1, sha1.as_ref());
        padded.cert_hash[31] = 1;
        assert!(foreign_cert(&padded, hashes).is_some());
        assert!(foreign_cert(&binding(9, sha256.as_ref()), hashes).is_some());
        // a value that is not hex leaves no hashes (and so no check), rather than wrong ones
        assert!(cert_hashes("zz").is_none());
        assert!(cert_hashes("abc").is_none());
    }
}
