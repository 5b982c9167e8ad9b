//! A PPP link on a hub: what SSTP and L2TP carry, joined to the engine. The PPP core
//! (etherhub-ppp) negotiates; this asks the accounts about its logins (PAP with the password,
//! MS-CHAPv2 with the NT hash, which stays in the accounts: the core's check runs there), opens
//! an IP session on the hub once the peer is in, takes a SecureNAT lease for its address, and
//! moves IPv4 packets between the link and the hub. User names are SoftEther's (`user`,
//! `user@HUB`, `HUB\user`).

use std::cell::Cell;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use etherhub_ppp::ipcp::{Addressing, DUMMY};
use etherhub_ppp::session::{AuthAnswer, AuthRequest as PppAuth, Config, Event, Session};

use crate::seam::{
    split_user_or, AddressRule, AuthError, AuthRequest, CloseReason, Credential, Grant, Io, Medium,
    Opened, SessionDetails, TunnelId,
};

/// Counters of PPP links.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PppStats {
    pub logins: u64,
    pub refused_logins: u64,
    /// Frames the PPP cores could not use.
    pub ppp_dropped: u64,
}

/// What a link's owner (the SSTP or L2TP core) says the link is.
pub(crate) struct LinkInfo {
    /// The tag of the session name, `SID-<USER>-[<tag>]-<n>`.
    pub tag: &'static str,
    pub client_product: &'static str,
    /// The cipher of the outer transport (TLS for SSTP, ESP for L2TP/IPsec).
    pub cipher: String,
    /// The hub of a user name that names none.
    pub default_hub: String,
}

/// The next free tunnel index after `last` (never 0), which becomes the new `last`.
pub(crate) fn next_index(last: &mut u32, taken: impl Fn(u32) -> bool) -> u32 {
    let mut index = last.wrapping_add(1).max(1);
    while taken(index) {
        index = index.wrapping_add(1).max(1);
    }
    *last = index;
    index
}

pub(crate) struct PppLink {
    ppp: Session,
    tunnel: TunnelId,
    client: SocketAddr,
    info: LinkInfo,
    grant: Option<Grant>,
    /// The engine linked the tunnel to a hub session.
    open: bool,
}

impl PppLink {
    /// A link for `tunnel`; the first frames (LCP's Configure-Request) go to `out`.
    pub fn new(
        now: Instant,
        tunnel: TunnelId,
        client: SocketAddr,
        info: LinkInfo,
        out: &mut Vec<Vec<u8>>,
    ) -> PppLink {
        let mut seed = [0u8; 32];
        // without the OS's randomness the session's challenges would repeat: refuse to run
        let drawn = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed);
        let mut events = Vec::new();
        let ppp = Session::new(now, Config::default(), seed, &mut events);
        let mut link = PppLink {
            ppp,
            tunnel,
            client,
            info,
            grant: None,
            open: false,
        };
        if drawn.is_err() {
            link.ppp
                .close(now, "no randomness for challenges", &mut events);
        }
        link.frames(events, out);
        link
    }

    pub fn tunnel(&self) -> TunnelId {
        self.tunnel
    }

    pub fn dropped(&self) -> u64 {
        let d = self.ppp.dropped;
        d.malformed + d.unexpected + d.rejected + d.early
    }

    /// A frame from the peer. Returns why the link ended, if it did (the tunnel, if open, is
    /// already reported closed).
    pub fn frame(
        &mut self,
        now: Instant,
        frame: &[u8],
        stats: &mut PppStats,
        io: &mut dyn Io,
        out: &mut Vec<Vec<u8>>,
    ) -> Option<String> {
        let mut events = Vec::new();
        self.ppp.handle_frame(now, frame, &mut events);
        self.events(now, events, stats, io, out)
    }

    /// An IPv4 packet from the hub.
    pub fn send_ip(&mut self, packet: &[u8], out: &mut Vec<Vec<u8>>) {
        let mut events = Vec::new();
        self.ppp.send_ip(packet, &mut events);
        self.frames(events, out);
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.ppp.poll_timeout()
    }

    pub fn timeout(
        &mut self,
        now: Instant,
        stats: &mut PppStats,
        io: &mut dyn Io,
        out: &mut Vec<Vec<u8>>,
    ) -> Option<String> {
        let mut events = Vec::new();
        self.ppp.handle_timeout(now, &mut events);
        self.events(now, events, stats, io, out)
    }

    /// Ends the link from the server's side (LCP Terminate); reports nothing to the engine.
    pub fn terminate(&mut self, now: Instant, why: &str, out: &mut Vec<Vec<u8>>) {
        let mut events = Vec::new();
        self.ppp.close(now, why, &mut events);
        self.open = false;
        self.frames(events, out);
    }

    /// The transport under the link is gone: the tunnel, if open, closes.
    pub fn gone(&mut self, io: &mut dyn Io) {
        if std::mem::take(&mut self.open) {
            io.closed(self.tunnel, CloseReason::Ended);
        }
    }

    /// Frames only (the link is closing or the events carry nothing else).
    fn frames(&mut self, events: impl IntoIterator<Item = Event>, out: &mut Vec<Vec<u8>>) {
        for ev in events {
            if let Event::Transmit(f) = ev {
                out.push(f);
            }
        }
    }

    fn events(
        &mut self,
        now: Instant,
        events: Vec<Event>,
        stats: &mut PppStats,
        io: &mut dyn Io,
        out: &mut Vec<Vec<u8>>,
    ) -> Option<String> {
        let mut queue = std::collections::VecDeque::from(events);
        while let Some(ev) = queue.pop_front() {
            let mut more = Vec::new();
            match ev {
                Event::Transmit(f) => out.push(f),
                Event::Authenticate(req) => {
                    let answer = self.login(&req, stats, io);
                    self.ppp.auth_result(now, answer, &mut more);
                }
                Event::AuthFailed { .. } => {}
                Event::NeedAddress { .. } => {
                    let addressing = self.open_tunnel(stats, io);
                    self.ppp.set_addressing(now, addressing, &mut more);
                }
                Event::Up { .. } => stats.logins += 1,
                Event::Packet(p) => {
                    if self.open {
                        io.packet(self.tunnel, &p);
                    }
                }
                Event::Closed(why) => {
                    self.gone(io);
                    // the frames queued with it (a Terminate-Ack, a Failure) still go out
                    self.frames(queue, out);
                    return Some(why);
                }
            }
            queue.extend(more);
        }
        None
    }

    /// The accounts' answer to a login.
    fn login(&mut self, req: &PppAuth, stats: &mut PppStats, io: &mut dyn Io) -> AuthAnswer {
        let (hub, user) = split_user_or(req.user(), &self.info.default_hub);
        if io.locked_out(self.client.ip()) {
            // too many wrong passwords from this address lately: not even checked
            stats.refused_logins += 1;
            return AuthAnswer::Refuse;
        }
        let found = Cell::new(None);
        let (result, answer) = match req {
            PppAuth::Pap { password, .. } => (
                io.authenticate(AuthRequest::Password {
                    hub,
                    user,
                    password,
                }),
                AuthAnswer::Accept,
            ),
            PppAuth::MsChapV2 { .. } => {
                let ppp = &self.ppp;
                let proves = |h: &[u8; 16]| {
                    let ok = ppp.proves(h);
                    if ok {
                        found.set(Some(*h));
                    }
                    ok
                };
                let r = io.authenticate(AuthRequest::NtHash {
                    hub,
                    user,
                    proves: &proves,
                });
                let answer = found.get().map_or(AuthAnswer::Refuse, AuthAnswer::NtHash);
                (r, answer)
            }
            // the accounts keep hashes, never the password CHAP-MD5 needs
            PppAuth::ChapMd5 { .. } => return AuthAnswer::Unknown,
        };
        match result {
            Ok(grant) => {
                self.grant = Some(grant);
                answer
            }
            Err(e) => {
                stats.refused_logins += 1;
                match e {
                    AuthError::WrongMethod => AuthAnswer::Unknown,
                    AuthError::AccessDenied => {
                        io.login_failed(self.client, hub, user);
                        AuthAnswer::Refuse
                    }
                    _ => AuthAnswer::Refuse,
                }
            }
        }
    }

    /// Opens the tunnel on the hub and leases its address; `None` when either fails.
    fn open_tunnel(&mut self, stats: &mut PppStats, io: &mut dyn Io) -> Option<Addressing> {
        let grant = self.grant.clone()?;
        let tag = self.info.tag;
        let name = io.opened(Opened {
            tunnel: self.tunnel,
            hub: grant.hub.clone(),
            user: grant.user.clone(),
            medium: Medium::Ip,
            client: self.client,
            address: AddressRule::Any,
            credential: Credential::Password,
            label: format!("{}@{}", grant.user, grant.hub),
            details: SessionDetails {
                protocol: tag.into(),
                underlay: format!("Legacy VPN - {tag}"),
                cipher: self.info.cipher.clone(),
                client_product: self.info.client_product.into(),
                client: Default::default(),
            },
            monitor: false,
        });
        if name.is_none() {
            stats.refused_logins += 1;
            return None;
        }
        self.open = true;
        let Some(ip) = io.lease_address(self.tunnel) else {
            // no address to give: the link cannot work
            stats.refused_logins += 1;
            self.open = false;
            io.closed(
                self.tunnel,
                CloseReason::Refused("no address to lease".into()),
            );
            return None;
        };
        let local = if ip.gateway.is_unspecified() {
            DUMMY
        } else {
            ip.gateway
        };
        let dns = |i: usize| {
            ip.dns
                .get(i)
                .copied()
                .filter(|d| *d != Ipv4Addr::UNSPECIFIED)
        };
        Some(Addressing {
            peer: ip.address,
            local,
            dns: [dns(0), dns(1)],
            nbns: [None, None],
        })
    }
}
