//! The LNS: every tunnel of every peer, found by our tunnel id in each packet's header and
//! checked against the address it came from.
//!
//! Call order: feed each received UDP payload to [`Server::handle_datagram`]; when
//! [`Server::poll_timeout`] passes call [`Server::handle_timeout`]; send each
//! [`Event::Transmit`], start a PPP link at [`Event::SessionUp`] and feed it the
//! [`Event::Frame`]s; its frames go out through [`Server::send_frame`], and when it ends call
//! [`Server::close_session`].

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::packet::{self, avp, parse, parse_message, MessageType};
use crate::tunnel::{Fate, Tunnel};

/// What the LNS answers with, and its limits.
#[derive(Clone, Debug)]
pub struct Config {
    /// The SCCRP's Host Name.
    pub host_name: String,
    /// The SCCRP's Vendor Name ("L2TP", as SoftEther says).
    pub vendor_name: String,
    /// The SCCRP's Firmware Revision.
    pub firmware_revision: u16,
    /// How many control messages from a LAC we hold (our Receive Window Size).
    pub receive_window: u16,
    /// A tunnel silent this long gets a HELLO.
    pub hello_interval: Duration,
    /// The first retransmission's wait; each next one doubles, up to `retransmit_cap`.
    pub retransmit_initial: Duration,
    pub retransmit_cap: Duration,
    /// Retransmissions of one message before the tunnel is given up.
    pub max_retransmits: u32,
    /// How long a tunnel the LAC stopped is kept to acknowledge its StopCCN again.
    pub linger: Duration,
    pub max_tunnels: usize,
    pub max_tunnels_per_peer: usize,
    pub max_sessions_per_tunnel: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            host_name: "etherhub".into(),
            vendor_name: "L2TP".into(),
            firmware_revision: 0x0100,
            // SoftEther's window and quotas
            receive_window: 16,
            hello_interval: Duration::from_secs(60),
            retransmit_initial: Duration::from_secs(1),
            retransmit_cap: Duration::from_secs(8),
            max_retransmits: 5,
            // a full retransmission cycle: 1 + 2 + 4 + 8 + 8 + 8
            linger: Duration::from_secs(31),
            max_tunnels: 30000,
            max_tunnels_per_peer: 1000,
            max_sessions_per_tunnel: 1024,
        }
    }
}

/// A call: our tunnel id and our session id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey {
    pub tunnel: u16,
    pub session: u16,
}

/// What the server asks of, or tells, its caller. `P` is how the caller names a peer (its
/// UDP address, or an IPsec SA).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event<P> {
    /// A UDP payload to send to `peer`.
    Transmit { peer: P, datagram: Vec<u8> },
    /// The LAC's SCCCN came: the tunnel is established.
    TunnelUp { peer: P, tunnel: u16 },
    /// The LAC's ICCN came: start a PPP link for the session.
    SessionUp { peer: P, session: SessionKey },
    /// A PPP frame from the session, as the LAC sent it (with or without `FF 03`).
    Frame {
        peer: P,
        session: SessionKey,
        frame: Vec<u8>,
    },
    /// The session that came up is over; end its PPP link.
    SessionDown {
        peer: P,
        session: SessionKey,
        reason: String,
    },
    /// The tunnel is over (established or not); its sessions went down before.
    TunnelDown {
        peer: P,
        tunnel: u16,
        reason: String,
    },
}

/// Counters of what the server dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Packets that did not parse, or control messages missing what they need.
    pub malformed: u64,
    /// Control messages that came again (acknowledged again, not handled again).
    pub duplicate: u64,
    /// Control messages too far ahead of the one expected.
    pub out_of_window: u64,
    /// Packets naming no tunnel of their peer.
    pub unknown_tunnel: u64,
    /// Data messages for no session that is up.
    pub unknown_session: u64,
    /// Tunnels and sessions refused by the limits.
    pub refused: u64,
}

/// Why a frame could not be sent.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SendError {
    #[error("no session {0:?} is up")]
    NoSession(SessionKey),
    #[error("a frame of {0} bytes is longer than an L2TP message holds")]
    TooLong(usize),
}

/// The ids' randomness: SplitMix64 from the caller's seed (ids need to be unpredictable to
/// off-path guessers, not secret).
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn next_u16(&mut self) -> u16 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as u16
    }
}

/// What a tunnel borrows from the server while it handles something.
pub(crate) struct Ctx<'a> {
    pub(crate) config: &'a Config,
    pub(crate) rng: &'a mut Rng,
    pub(crate) dropped: &'a mut Dropped,
}

/// The L2TP network server: all tunnels, keyed by our tunnel id.
pub struct Server<P> {
    config: Config,
    rng: Rng,
    tunnels: HashMap<u16, Tunnel<P>>,
    /// (peer, the peer's tunnel id) to ours: a retransmitted SCCRQ finds its tunnel.
    by_peer_id: HashMap<(P, u16), u16>,
    per_peer: HashMap<P, usize>,
    pub dropped: Dropped,
}

impl<P: Copy + Eq + Hash> Server<P> {
    /// A server whose tunnel and session ids are drawn from `seed` (random, from the caller).
    pub fn new(config: Config, seed: u64) -> Server<P> {
        Server {
            config,
            rng: Rng(seed),
            tunnels: HashMap::new(),
            by_peer_id: HashMap::new(),
            per_peer: HashMap::new(),
            dropped: Dropped::default(),
        }
    }

    pub fn tunnel_count(&self) -> usize {
        self.tunnels.len()
    }

    pub fn session_count(&self) -> usize {
        self.tunnels.values().map(Tunnel::session_count).sum()
    }

    /// A UDP payload from `peer`.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        peer: P,
        datagram: &[u8],
        events: &mut Vec<Event<P>>,
    ) {
        let Ok((header, payload)) = parse(datagram) else {
            self.dropped.malformed += 1;
            return;
        };
        let mut ctx = Ctx {
            config: &self.config,
            rng: &mut self.rng,
            dropped: &mut self.dropped,
        };
        let local = if header.control && header.tunnel == 0 {
            // only an SCCRQ opens a tunnel; it names the LAC's id for it
            let their = match parse_message(payload) {
                Ok(Some(m)) if m.kind == MessageType::Sccrq => m.u16(avp::ASSIGNED_TUNNEL_ID),
                Ok(_) => {
                    ctx.dropped.unknown_tunnel += 1;
                    return;
                }
                Err(_) => None,
            };
            let Some(their) = their.filter(|t| *t != 0) else {
                ctx.dropped.malformed += 1;
                return;
            };
            match self.by_peer_id.get(&(peer, their)) {
                Some(local) => *local,
                None => {
                    let per_peer = self.per_peer.get(&peer).copied().unwrap_or(0);
                    let id = (self.tunnels.len() < ctx.config.max_tunnels
                        && per_peer < ctx.config.max_tunnels_per_peer)
                        .then(|| {
                            (0..64)
                                .map(|_| ctx.rng.next_u16())
                                .find(|id| *id != 0 && !self.tunnels.contains_key(id))
                        })
                        .flatten();
                    let Some(id) = id else {
                        ctx.dropped.refused += 1;
                        return;
                    };
                    self.tunnels.insert(id, Tunnel::new(now, peer, id, their));
                    self.by_peer_id.insert((peer, their), id);
                    *self.per_peer.entry(peer).or_insert(0) += 1;
                    id
                }
            }
        } else {
            header.tunnel
        };
        let Some(t) = self.tunnels.get_mut(&local).filter(|t| t.peer == peer) else {
            ctx.dropped.unknown_tunnel += 1;
            return;
        };
        if header.control {
            if t.handle_control(now, &mut ctx, &header, payload, events) == Fate::Remove {
                self.remove(local);
            }
        } else {
            t.handle_data(now, &mut ctx, &header, payload, events);
        }
    }

    /// Writes the data message that carries `frame` (a PPP frame, sent as it is) to the
    /// session's LAC into `out`; the peer to send it to comes back.
    pub fn emit_frame(
        &self,
        session: SessionKey,
        frame: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<P, SendError> {
        let t = self
            .tunnels
            .get(&session.tunnel)
            .ok_or(SendError::NoSession(session))?;
        let peer_session = t
            .session_peer_id(session.session)
            .ok_or(SendError::NoSession(session))?;
        packet::emit_data(t.peer_id, peer_session, frame, out)
            .ok_or(SendError::TooLong(frame.len()))?;
        Ok(t.peer)
    }

    /// The datagram that carries `frame` to the session's LAC.
    pub fn send_frame(&self, session: SessionKey, frame: &[u8]) -> Result<Vec<u8>, SendError> {
        let mut out = Vec::with_capacity(packet::DATA_HEADER_LEN + frame.len());
        self.emit_frame(session, frame, &mut out)?;
        Ok(out)
    }

    /// Ends a session with CDN (its PPP link is over); [`Event::SessionDown`] follows.
    pub fn close_session(&mut self, now: Instant, session: SessionKey, events: &mut Vec<Event<P>>) {
        let mut ctx = Ctx {
            config: &self.config,
            rng: &mut self.rng,
            dropped: &mut self.dropped,
        };
        if let Some(t) = self.tunnels.get_mut(&session.tunnel) {
            t.close_session(now, &mut ctx, session.session, events);
        }
    }

    /// Ends a tunnel with StopCCN; its sessions and the tunnel go down at once.
    pub fn close_tunnel(&mut self, now: Instant, tunnel: u16, events: &mut Vec<Event<P>>) {
        let mut ctx = Ctx {
            config: &self.config,
            rng: &mut self.rng,
            dropped: &mut self.dropped,
        };
        if let Some(t) = self.tunnels.get_mut(&tunnel) {
            t.close(now, &mut ctx, "closed by this server", events);
        }
    }

    /// When [`Server::handle_timeout`] is next wanted (a scan of all tunnels).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.tunnels
            .values()
            .filter_map(|t| t.poll_timeout(&self.config))
            .min()
    }

    /// Retransmissions, HELLOs and the end of tunnels given up.
    pub fn handle_timeout(&mut self, now: Instant, events: &mut Vec<Event<P>>) {
        let mut ctx = Ctx {
            config: &self.config,
            rng: &mut self.rng,
            dropped: &mut self.dropped,
        };
        let mut gone = Vec::new();
        let mut ids: Vec<u16> = self.tunnels.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            if let Some(t) = self.tunnels.get_mut(&id) {
                if t.poll_timeout(ctx.config).is_some_and(|d| d <= now)
                    && t.handle_timeout(now, &mut ctx, events) == Fate::Remove
                {
                    gone.push(id);
                }
            }
        }
        for id in gone {
            self.remove(id);
        }
    }

    fn remove(&mut self, local: u16) {
        if let Some(t) = self.tunnels.remove(&local) {
            self.by_peer_id.remove(&(t.peer, t.peer_id));
            if let Some(n) = self.per_peer.get_mut(&t.peer) {
                *n -= 1;
                if *n == 0 {
                    self.per_peer.remove(&t.peer);
                }
            }
        }
    }
}
