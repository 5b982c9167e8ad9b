//! L2TP's IPsec carrier: IKEv1 on UDP 500 and 4500 (etherhub-ipsec's responder), and ESP in
//! transport mode around the L2TP datagrams of UDP 1701, as IP protocol 50 or in UDP 4500
//! (RFC 3948) when there is a NAT. [`crate::l2tp`] owns it: what ESP carries goes to the LNS as
//! the datagrams of a [`Peer::Ipsec`], and what the LNS sends to such a peer comes back here.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::Instant;

use etherhub_ipsec::esp::{EspError, Inbound, Outbound};
use etherhub_ipsec::ike::{self, Responder};
use etherhub_ipsec::natt::{self, Kind};
use etherhub_ipsec::{ChildSa, Encap};

use crate::seam::Io;

/// IKE's port.
pub const IKE_PORT: u16 = 500;
/// IKE and ESP in UDP after NAT traversal.
pub const NAT_T_PORT: u16 = 4500;
/// The port the runtime gives IP protocol 50 (ESP) on both addresses (see
/// [`crate::Protocol::udp_ports`]).
pub const ESP_PORT: u16 = 0;
/// IP protocol number of UDP, the only payload L2TP/IPsec's ESP carries.
const UDP: u8 = 17;

/// Who sent an L2TP datagram: the address and port it came from, raw or inside ESP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Peer {
    /// Raw L2TP: the listener's address it came to, and the sender's.
    Raw { local: SocketAddr, from: SocketAddr },
    /// Inside ESP from `outer` (the peer's address as we see it; port 0 for IP protocol 50),
    /// between its UDP port `client_port` and our `our_port` (1701).
    Ipsec {
        outer: SocketAddr,
        client_port: u16,
        our_port: u16,
    },
}

impl Peer {
    /// The client's address, for the session's listing.
    pub fn client(&self) -> SocketAddr {
        match *self {
            Peer::Raw { from, .. } => from,
            Peer::Ipsec { outer, .. } => outer,
        }
    }
}

/// One child SA: ESP both ways with one peer.
struct Child {
    inbound: Inbound,
    outbound: Outbound,
    /// Our address ESP leaves from: port 4500 in UDP, port [`ESP_PORT`] as protocol 50.
    local: SocketAddr,
    /// The peer's: likewise.
    peer: SocketAddr,
}

/// Counters of the carrier.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IpsecStats {
    pub children_up: u64,
    pub esp_received: u64,
    pub esp_sent: u64,
    /// ESP with an SPI we do not hold.
    pub esp_unknown_spi: u64,
    /// ESP whose integrity check failed (forged or damaged).
    pub esp_auth_failed: u64,
    /// ESP whose sequence number was seen already or is too old.
    pub esp_replayed: u64,
    /// ESP too short, with bad padding, or not UDP to L2TP inside.
    pub esp_malformed: u64,
    /// ESP that authenticated but came from another address than its SA's peer.
    pub esp_moved: u64,
    /// IKE or ESP while L2TP over IPsec is off.
    pub refused_disabled: u64,
    /// Peers IKE refused (wrong pre-shared key, nothing acceptable proposed).
    pub refused: u64,
}

/// IKE's responder and the ESP SAs it agreed.
pub struct Ipsec {
    responder: Responder,
    enabled: bool,
    children: HashMap<u32, Child>,
    /// The newest child SA of each peer address, which sends to it.
    newest: HashMap<SocketAddr, u32>,
    /// Makes each new outbound SA's IV secret (HMAC of a count under a random key).
    iv_key: ring::hmac::Key,
    iv_count: u64,
    /// Where the datagram being opened is decrypted.
    scratch: Vec<u8>,
    /// Where an outgoing datagram gets its UDP header, and then its ESP.
    inner: Vec<u8>,
    sealed: Vec<u8>,
    /// When a refusal was last logged, and how many since were not (at most one a second:
    /// a flood of bad proposals must not flood the log).
    refusal_logged: Option<Instant>,
    refusals_unlogged: u64,
    stats: IpsecStats,
}

/// What came in: an L2TP datagram (its bytes are [`Ipsec::opened`]`[range]`), or nothing
/// for the LNS.
pub struct Delivered {
    pub peer: Peer,
    pub range: Range<usize>,
}

impl Ipsec {
    pub fn new(seed: [u8; 32]) -> Ipsec {
        let config = ike::Config {
            psk: etherhub_config::ipsec::DEFAULT_SECRET.as_bytes().to_vec(),
            ..ike::Config::default()
        };
        // the IV key must differ from the responder's seed, though it comes from it
        let iv_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &seed);
        let iv_key = ring::hmac::Key::new(
            ring::hmac::HMAC_SHA256,
            ring::hmac::sign(&iv_key, b"ESP IV secrets").as_ref(),
        );
        Ipsec {
            responder: Responder::new(config, seed),
            enabled: false,
            children: HashMap::new(),
            newest: HashMap::new(),
            iv_key,
            iv_count: 0,
            scratch: Vec::with_capacity(2048),
            inner: Vec::with_capacity(2048),
            sealed: Vec::with_capacity(2048),
            refusal_logged: None,
            refusals_unlogged: 0,
            stats: IpsecStats::default(),
        }
    }

    pub fn set_enabled(&mut self, on: bool) {
        self.enabled = on;
    }

    pub fn set_psk(&mut self, psk: &str) {
        self.responder.set_psk(psk.as_bytes());
    }

    pub fn stats(&self) -> IpsecStats {
        self.stats
    }

    pub fn ike_dropped(&self) -> ike::Dropped {
        self.responder.dropped()
    }

    /// The bytes of the last [`Delivered`].
    pub fn opened(&self, range: Range<usize>) -> &[u8] {
        &self.scratch[range]
    }

    /// A datagram on IKE's ports or an ESP packet. Returns the L2TP datagram ESP carried.
    pub fn handle(
        &mut self,
        now: Instant,
        local: SocketAddr,
        from: SocketAddr,
        datagram: &[u8],
        io: &mut dyn Io,
    ) -> Option<Delivered> {
        if !self.enabled {
            self.stats.refused_disabled += 1;
            return None;
        }
        match local.port() {
            IKE_PORT => {
                self.ike(now, local, from, datagram, io);
                None
            }
            NAT_T_PORT => match natt::classify(datagram) {
                None => {
                    // neither IKE behind its marker, nor ESP, nor a keepalive
                    self.stats.esp_malformed += 1;
                    None
                }
                Some(Kind::Keepalive) => None,
                Some(Kind::Ike(message)) => {
                    self.ike(now, local, from, message, io);
                    None
                }
                Some(Kind::Esp(packet)) => self.esp(from, packet),
            },
            ESP_PORT => self.esp(from, datagram),
            _ => None,
        }
    }

    fn ike(
        &mut self,
        now: Instant,
        local: SocketAddr,
        from: SocketAddr,
        message: &[u8],
        io: &mut dyn Io,
    ) {
        let mut events = Vec::new();
        self.responder
            .handle(now, local, from, message, &mut events);
        self.events(now, events, io);
    }

    fn esp(&mut self, from: SocketAddr, packet: &[u8]) -> Option<Delivered> {
        let Some(spi) = etherhub_ipsec::esp::spi_of(packet) else {
            self.stats.esp_malformed += 1;
            return None;
        };
        let Some(child) = self.children.get_mut(&spi) else {
            self.stats.esp_unknown_spi += 1;
            return None;
        };
        self.scratch.clear();
        self.scratch.extend_from_slice(packet);
        let base = self.scratch.as_ptr() as usize;
        let (next, payload) = match child.inbound.open(&mut self.scratch) {
            Ok(p) => p,
            Err(EspError::Authentication) => {
                self.stats.esp_auth_failed += 1;
                return None;
            }
            Err(EspError::Replay(_)) => {
                self.stats.esp_replayed += 1;
                return None;
            }
            Err(_) => {
                self.stats.esp_malformed += 1;
                return None;
            }
        };
        self.stats.esp_received += 1;
        if child.peer != from {
            // authentic, but from elsewhere than the SA's peer (a NAT that moved it): the
            // L2TP tunnel stays with the address it began on
            self.stats.esp_moved += 1;
        }
        let (client_port, our_port, l2tp) = match (next, natt::udp_payload(payload)) {
            (UDP, Some(u)) => u,
            _ => {
                self.stats.esp_malformed += 1;
                return None;
            }
        };
        // where the L2TP datagram lies in the scratch buffer it was opened in
        let start = l2tp.as_ptr() as usize - base;
        let range = start..start + l2tp.len();
        Some(Delivered {
            peer: Peer::Ipsec {
                outer: child.peer,
                client_port,
                our_port,
            },
            range,
        })
    }

    /// What protects a peer's traffic (its newest child SA's algorithms), for its sessions.
    pub fn suite(&self, peer: &Peer) -> Option<String> {
        let Peer::Ipsec { outer, .. } = peer else {
            return None;
        };
        let spi = self.newest.get(outer)?;
        Some(format!(
            "IPsec ESP {}",
            self.children.get(spi)?.inbound.suite()
        ))
    }

    /// An L2TP datagram to a peer inside ESP, through its newest child SA.
    pub fn send(&mut self, peer: Peer, datagram: &[u8], io: &mut dyn Io) {
        let Peer::Ipsec {
            outer,
            client_port,
            our_port,
        } = peer
        else {
            return;
        };
        let Some(child) = self
            .newest
            .get(&outer)
            .and_then(|spi| self.children.get_mut(spi))
        else {
            return;
        };
        self.inner.clear();
        natt::push_udp(our_port, client_port, datagram, &mut self.inner);
        self.sealed.clear();
        if child
            .outbound
            .seal(UDP, &self.inner, &mut self.sealed)
            .is_err()
        {
            return;
        }
        let out = &self.sealed;
        self.stats.esp_sent += 1;
        let to = child.peer;
        io.transmit(child.local, out.len(), &mut |buf| {
            buf[..out.len()].copy_from_slice(out);
            Some((to, out.len()))
        });
    }

    pub fn handle_timeout(&mut self, now: Instant, io: &mut dyn Io) {
        if self.responder.poll_timeout().is_some_and(|t| t <= now) {
            let mut events = Vec::new();
            self.responder.handle_timeout(now, &mut events);
            self.events(now, events, io);
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.responder.poll_timeout()
    }

    fn events(&mut self, now: Instant, events: Vec<ike::Event>, io: &mut dyn Io) {
        for ev in events {
            match ev {
                ike::Event::Transmit {
                    local,
                    peer,
                    datagram,
                } => io.transmit(local, datagram.len(), &mut |buf| {
                    buf[..datagram.len()].copy_from_slice(&datagram);
                    Some((peer, datagram.len()))
                }),
                ike::Event::ChildUp { local, peer, sa } => self.child_up(local, peer, sa),
                ike::Event::ChildDown { inbound_spi, .. } => self.remove_child(inbound_spi),
                ike::Event::Refused { peer, reason } => self.refused(now, peer, &reason, io),
            }
        }
    }

    fn refused(&mut self, now: Instant, peer: SocketAddr, reason: &str, io: &mut dyn Io) {
        self.stats.refused += 1;
        if self
            .refusal_logged
            .is_some_and(|t| now.duration_since(t) < std::time::Duration::from_secs(1))
        {
            self.refusals_unlogged += 1;
            return;
        }
        self.refusal_logged = Some(now);
        match std::mem::take(&mut self.refusals_unlogged) {
            0 => io.peer_refused(peer, "IKE", reason),
            n => io.peer_refused(
                peer,
                "IKE",
                &format!("{reason} (and {n} more refusals in the last second, not logged)"),
            ),
        }
    }

    fn child_up(&mut self, local: SocketAddr, peer: SocketAddr, sa: ChildSa) {
        let (local, peer) = match sa.encap {
            Encap::Udp => (
                SocketAddr::new(local.ip(), NAT_T_PORT),
                if peer.port() == IKE_PORT {
                    SocketAddr::new(peer.ip(), NAT_T_PORT)
                } else {
                    peer
                },
            ),
            Encap::Esp => (
                SocketAddr::new(local.ip(), ESP_PORT),
                SocketAddr::new(peer.ip(), ESP_PORT),
            ),
        };
        self.iv_count += 1;
        let tag = ring::hmac::sign(&self.iv_key, &self.iv_count.to_be_bytes());
        let mut iv_secret = [0u8; 16];
        iv_secret.copy_from_slice(&tag.as_ref()[..16]);
        let (Ok(inbound), Ok(outbound)) = (
            Inbound::new(sa.inbound.clone()),
            Outbound::new(sa.outbound.clone(), iv_secret),
        ) else {
            return;
        };
        let spi = sa.inbound.spi;
        self.children.insert(
            spi,
            Child {
                inbound,
                outbound,
                local,
                peer,
            },
        );
        self.newest.insert(peer, spi);
        self.stats.children_up += 1;
    }

    fn remove_child(&mut self, spi: u32) {
        let Some(child) = self.children.remove(&spi) else {
            return;
        };
        if self.newest.get(&child.peer) == Some(&spi) {
            // another child of the same peer, if one is left, sends from now on
            match self
                .children
                .iter()
                .find(|(_, c)| c.peer == child.peer)
                .map(|(s, _)| *s)
            {
                Some(other) => self.newest.insert(child.peer, other),
                None => self.newest.remove(&child.peer),
            };
        }
    }
}
