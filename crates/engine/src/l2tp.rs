//! L2TP behind the seam: the LNS (etherhub-l2tp) on UDP port 1701, each call a PPP link
//! ([`crate::ppplink`]) to a hub: sessions `SID-<USER>-[L2TP]-<n>`, addresses from SecureNAT.
//! Raw L2TP (SoftEther's `/L2TPRAW`) and L2TP over IPsec (`/L2TP`: IKE on UDP 500 and 4500,
//! ESP as IP protocol 50 or in UDP 4500, see [`crate::ipsec`]), both off by default.
//!
//! Options (from the IPsec settings): `RawEnabled` and `IpsecEnabled` (`true`/`false`), `Psk`
//! (IKE's pre-shared key) and `DefaultHub` (the hub of a user name that names none).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use etherhub_l2tp::{Config, Event, Server, SessionKey};

use crate::ipsec::Ipsec;
pub use crate::ipsec::{Peer, ESP_PORT, IKE_PORT, NAT_T_PORT};
use crate::ppplink::{next_index, LinkInfo, PppLink, PppStats};
use crate::seam::{Io, Protocol, TunnelId, DEFAULT_HUB};

/// L2TP's UDP port.
pub const PORT: u16 = 1701;

struct Call {
    peer: Peer,
    session: SessionKey,
    link: PppLink,
}

/// Counters of the core.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct L2tpStats {
    pub refused_disabled: u64,
    pub ppp: PppStats,
}

/// The L2TP protocol core.
pub struct L2tp {
    server: Server<Peer>,
    calls: HashMap<u32, Call>,
    by_session: HashMap<(Peer, SessionKey), u32>,
    next_index: u32,
    raw: bool,
    ipsec: Ipsec,
    default_hub: String,
    stats: L2tpStats,
}

impl L2tp {
    /// A core whose ids, IKE cookies, nonces and keys are drawn from `seed` (random, from the
    /// caller).
    pub fn new(seed: [u8; 32]) -> L2tp {
        let mut ids = [0u8; 8];
        ids.copy_from_slice(&seed[..8]);
        let mut ike = seed;
        ike[..8].fill(0);
        L2tp {
            server: Server::new(Config::default(), u64::from_le_bytes(ids)),
            calls: HashMap::new(),
            by_session: HashMap::new(),
            next_index: 0,
            raw: false,
            ipsec: Ipsec::new(ike),
            default_hub: DEFAULT_HUB.into(),
            stats: L2tpStats::default(),
        }
    }

    pub fn stats(&self) -> L2tpStats {
        let mut s = self.stats;
        for c in self.calls.values() {
            s.ppp.ppp_dropped += c.link.dropped();
        }
        s
    }

    /// Acts on the LNS's events.
    fn events(&mut self, now: Instant, events: Vec<Event<Peer>>, io: &mut dyn Io) {
        for ev in events {
            match ev {
                Event::Transmit { peer, datagram } => self.transmit(peer, &datagram, io),
                Event::TunnelUp { .. } | Event::TunnelDown { .. } => {}
                Event::SessionUp { peer, session } => self.start(now, peer, session, io),
                Event::Frame {
                    peer,
                    session,
                    frame,
                } => {
                    let Some(&index) = self.by_session.get(&(peer, session)) else {
                        continue;
                    };
                    let Some(call) = self.calls.get_mut(&index) else {
                        continue;
                    };
                    let mut frames = Vec::new();
                    let ended = call
                        .link
                        .frame(now, &frame, &mut self.stats.ppp, io, &mut frames);
                    self.send_frames(index, &frames, io);
                    if ended.is_some() {
                        let mut more = Vec::new();
                        self.server.close_session(now, session, &mut more);
                        self.forget(index);
                        self.events(now, more, io);
                    }
                }
                Event::SessionDown { peer, session, .. } => {
                    if let Some(index) = self.by_session.get(&(peer, session)).copied() {
                        if let Some(call) = self.calls.get_mut(&index) {
                            call.link.gone(io);
                        }
                        self.forget(index);
                    }
                }
            }
        }
    }

    fn start(&mut self, now: Instant, peer: Peer, session: SessionKey, io: &mut dyn Io) {
        let calls = &self.calls;
        let index = next_index(&mut self.next_index, |i| calls.contains_key(&i));
        let tunnel = TunnelId {
            protocol: io.protocol(),
            index,
        };
        let mut frames = Vec::new();
        let link = PppLink::new(
            now,
            tunnel,
            peer.client(),
            LinkInfo {
                tag: "L2TP",
                client_product: "L2TP VPN Client",
                cipher: self.ipsec.suite(&peer).unwrap_or_default(),
                default_hub: self.default_hub.clone(),
            },
            &mut frames,
        );
        self.calls.insert(
            index,
            Call {
                peer,
                session,
                link,
            },
        );
        self.by_session.insert((peer, session), index);
        self.send_frames(index, &frames, io);
    }

    fn send_frames(&mut self, index: u32, frames: &[Vec<u8>], io: &mut dyn Io) {
        let Some(&Call { peer, session, .. }) = self.calls.get(&index) else {
            return;
        };
        for f in frames {
            if let Ok(d) = self.server.send_frame(session, f) {
                self.transmit(peer, &d, io);
            }
        }
    }

    fn forget(&mut self, index: u32) {
        if let Some(c) = self.calls.remove(&index) {
            self.by_session.remove(&(c.peer, c.session));
        }
    }
}

impl L2tp {
    /// Ends the calls of the peers `which` picks (their service was turned off): LCP's
    /// Terminate and the call's CDN go out while they still can, and the tunnels close.
    fn end_calls(
        &mut self,
        now: Instant,
        which: impl Fn(&Peer) -> bool,
        why: &str,
        io: &mut dyn Io,
    ) {
        let ending: Vec<u32> = self
            .calls
            .iter()
            .filter(|(_, c)| which(&c.peer))
            .map(|(i, _)| *i)
            .collect();
        for index in ending {
            let Some(call) = self.calls.get_mut(&index) else {
                continue;
            };
            // the tunnel is reported closed first: terminating marks the link closed
            call.link.gone(io);
            let mut frames = Vec::new();
            call.link.terminate(now, why, &mut frames);
            let session = call.session;
            self.send_frames(index, &frames, io);
            self.forget(index);
            let mut events = Vec::new();
            self.server.close_session(now, session, &mut events);
            self.events(now, events, io);
        }
    }

    /// An L2TP datagram to a peer, raw or inside ESP.
    fn transmit(&mut self, peer: Peer, datagram: &[u8], io: &mut dyn Io) {
        match peer {
            Peer::Raw { local, from } => io.transmit(local, datagram.len(), &mut |buf| {
                buf[..datagram.len()].copy_from_slice(datagram);
                Some((from, datagram.len()))
            }),
            Peer::Ipsec { .. } => self.ipsec.send(peer, datagram, io),
        }
    }
}

impl Protocol for L2tp {
    fn name(&self) -> &'static str {
        "L2TP"
    }

    fn udp_ports(&self) -> &'static [u16] {
        &[PORT, IKE_PORT, NAT_T_PORT, ESP_PORT]
    }

    fn set_option(&mut self, now: Instant, name: &str, value: &str, io: &mut dyn Io) {
        let on = value.eq_ignore_ascii_case("true");
        if name.eq_ignore_ascii_case("RawEnabled") {
            self.raw = on;
            if !on {
                self.end_calls(
                    now,
                    |p| matches!(p, Peer::Raw { .. }),
                    "raw L2TP turned off",
                    io,
                );
            }
        } else if name.eq_ignore_ascii_case("IpsecEnabled") {
            self.ipsec.set_enabled(on);
            if !on {
                let ipsec = |p: &Peer| matches!(p, Peer::Ipsec { .. });
                self.end_calls(now, ipsec, "L2TP over IPsec turned off", io);
            }
        } else if name.eq_ignore_ascii_case("Psk") && !value.is_empty() {
            self.ipsec.set_psk(value);
        } else if name.eq_ignore_ascii_case("DefaultHub") && !value.is_empty() {
            self.default_hub = value.to_string();
        }
    }

    fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        from: SocketAddr,
        datagram: &[u8],
        io: &mut dyn Io,
    ) {
        let mut events = Vec::new();
        if local.port() == PORT {
            if !self.raw {
                self.stats.refused_disabled += 1;
                return;
            }
            let peer = Peer::Raw { local, from };
            self.server
                .handle_datagram(now, peer, datagram, &mut events);
        } else {
            let Some(d) = self.ipsec.handle(now, local, from, datagram, io) else {
                return;
            };
            let bytes = self.ipsec.opened(d.range);
            self.server.handle_datagram(now, d.peer, bytes, &mut events);
        }
        self.events(now, events, io);
    }

    fn send(&mut self, _now: Instant, tunnel: TunnelId, packet: Vec<u8>, io: &mut dyn Io) {
        let Some(call) = self.calls.get_mut(&tunnel.index) else {
            return;
        };
        let mut frames = Vec::new();
        call.link.send_ip(&packet, &mut frames);
        self.send_frames(tunnel.index, &frames, io);
    }

    fn handle_timeout(&mut self, now: Instant, io: &mut dyn Io) {
        self.ipsec.handle_timeout(now, io);
        if self.server.poll_timeout().is_some_and(|t| t <= now) {
            let mut events = Vec::new();
            self.server.handle_timeout(now, &mut events);
            self.events(now, events, io);
        }
        let due: Vec<u32> = self
            .calls
            .iter()
            .filter(|(_, c)| c.link.poll_timeout().is_some_and(|t| t <= now))
            .map(|(i, _)| *i)
            .collect();
        for index in due {
            let Some(call) = self.calls.get_mut(&index) else {
                continue;
            };
            let mut frames = Vec::new();
            let ended = call.link.timeout(now, &mut self.stats.ppp, io, &mut frames);
            let session = call.session;
            self.send_frames(index, &frames, io);
            if ended.is_some() {
                let mut events = Vec::new();
                self.server.close_session(now, session, &mut events);
                self.forget(index);
                self.events(now, events, io);
            }
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let links = self.calls.values().filter_map(|c| c.link.poll_timeout());
        let ipsec = self.ipsec.poll_timeout();
        self.server
            .poll_timeout()
            .into_iter()
            .chain(ipsec)
            .chain(links)
            .min()
    }

    fn close(&mut self, now: Instant, tunnel: TunnelId, io: &mut dyn Io) {
        let Some(call) = self.calls.get_mut(&tunnel.index) else {
            return;
        };
        // the engine ended it: LCP's Terminate, then the call's CDN
        let mut frames = Vec::new();
        call.link.terminate(now, "ended by the server", &mut frames);
        let session = call.session;
        self.send_frames(tunnel.index, &frames, io);
        self.forget(tunnel.index);
        let mut events = Vec::new();
        self.server.close_session(now, session, &mut events);
        self.events(now, events, io);
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        let s = self.stats();
        let d = self.server.dropped;
        let (i, k) = (self.ipsec.stats(), self.ipsec.ike_dropped());
        vec![
            ("logins", s.ppp.logins),
            ("refused_logins", s.ppp.refused_logins),
            ("refused_disabled", s.refused_disabled),
            ("malformed_dropped", d.malformed),
            ("duplicate_dropped", d.duplicate),
            ("unknown_tunnel_dropped", d.unknown_tunnel),
            ("ppp_dropped", s.ppp.ppp_dropped),
            ("ipsec_children_up", i.children_up),
            ("esp_received", i.esp_received),
            ("esp_sent", i.esp_sent),
            ("esp_unknown_spi_dropped", i.esp_unknown_spi),
            ("esp_auth_failed_dropped", i.esp_auth_failed),
            ("esp_replayed_dropped", i.esp_replayed),
            ("esp_malformed_dropped", i.esp_malformed),
            ("esp_moved", i.esp_moved),
            ("ipsec_refused", i.refused),
            ("ipsec_refused_disabled", i.refused_disabled),
            ("ike_malformed_dropped", k.malformed),
            ("ike_flood_dropped", k.flood),
            ("ike_auth_failed", k.auth_failed),
        ]
    }
}
