//! SoftEther's VPN sessions behind the seam: the login a client (vpnclient) sent after the
//! hello, the welcome, and Ethernet frames in SoftEther's blocks over one or more TCP
//! connections per session (`additional_connect` adds them, with the session key the welcome
//! gave). The runtime keeps TLS and hands each connection over with a
//! [`etherhub_softether::session::Handoff`] as its first bytes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use etherhub_softether::blocks::{keep_alive, BlockReader, BlockWriter, Record};
use etherhub_softether::page;
use etherhub_softether::session::{
    additional_key, joined, refused, Auth, Direction, Handoff, SessionLogin, Welcome,
};

use crate::seam::{
    AddressRule, AuthError, AuthRequest, ClientReport, CloseReason, ConnId, Credential, Io, Live,
    Medium, Opened, Protocol, SessionDetails, TunnelId,
};

/// How long a connection may go without a record from the client, and a session without
/// connections, before it ends (SoftEther's default policy, 20 s).
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(20);
/// SoftEther's limit on TCP connections per session.
pub const MAX_CONNECTIONS: u32 = 32;

// SoftEther's error codes the sessions answer with.
const ERR_PROTOCOL_ERROR: u32 = 4;
const ERR_AUTHTYPE_NOT_SUPPORTED: u32 = 7;
const ERR_HUB_NOT_FOUND: u32 = 8;
const ERR_AUTH_FAILED: u32 = 9;
const ERR_ACCESS_DENIED: u32 = 12;
const ERR_HUB_STOPPING: u32 = 10;
const ERR_SESSION_TIMEOUT: u32 = 13;
const ERR_TOO_MANY_CONNECTION: u32 = 15;
const ERR_TOO_MANY_USER_SESSION: u32 = 20;
/// The client asked for monitoring mode, and its policy has no MonitorPort.
const ERR_MONITOR_MODE_DENIED: u32 = 107;

struct Conn {
    session: u32,
    direction: Direction,
    reader: BlockReader,
    /// The last complete record from the client.
    last_rx: Instant,
    next_keepalive: Instant,
}

struct Session {
    tunnel: TunnelId,
    key: [u8; 20],
    /// Where the login came from: connections join only from there.
    client: std::net::IpAddr,
    hub: String,
    user: String,
    conns: Vec<ConnId>,
    max: u32,
    half: bool,
    compress: bool,
    writer: BlockWriter,
    /// Since when the session has had no connection.
    orphan_since: Option<Instant>,
    /// Idle time after which a connection, and a session without any, ends (the policy's
    /// TimeOut).
    timeout: Duration,
    rng: u64,
}

impl Session {
    fn random(&mut self) -> u64 {
        // xorshift64*: keep-alive padding and timing only, nothing secret
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// When an idle connection's next keep-alive is due: SoftEther's `[T/5, T/2)`.
    fn keepalive_span(&mut self) -> Duration {
        let t = self.timeout.as_millis() as u64;
        Duration::from_millis(t / 5 + self.random() % (t / 2 - t / 5))
    }
}

/// Counters of the SoftEther sessions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SoftEtherStats {
    pub logins: u64,
    pub refused_logins: u64,
    /// Blocks dropped: over 1600 bytes, or not inflating.
    pub dropped_blocks: u64,
    /// Connections ended for breaking the framing.
    pub broken_streams: u64,
    /// `additional_connect`s with a session's key from another address than its login's.
    pub foreign_joins: u64,
    pub frames_in: u64,
    pub frames_out: u64,
}

/// The SoftEther session core.
#[derive(Default)]
pub struct SoftEtherSessions {
    conns: HashMap<ConnId, Conn>,
    sessions: HashMap<u32, Session>,
    keys: HashMap<[u8; 20], u32>,
    next_index: u32,
    next_conn_name: u64,
    stats: SoftEtherStats,
}

/// Which of `n` connections carries a frame: the same for all frames of one flow (IPv4
/// addresses and ports, else the MAC addresses), so that spreading a session over several
/// connections does not reorder a flow.
fn lane(frame: &[u8], n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let key: &[u8] = if frame.len() >= 34 && frame[12..14] == [0x08, 0x00] {
        let ihl = usize::from(frame[14] & 0x0f) * 4;
        let end = (14 + ihl + 4).min(frame.len());
        // addresses (and the ports right after the header, if there)
        if matches!(frame[23], 6 | 17) && end == 14 + ihl + 4 {
            return fold(&[&frame[26..34], &frame[14 + ihl..end]], n);
        }
        &frame[26..34]
    } else {
        &frame[..frame.len().min(12)]
    };
    fold(&[key], n)
}

fn fold(parts: &[&[u8]], n: usize) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for b in parts.iter().flat_map(|p| p.iter()) {
        h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
    }
    h as usize % n
}

impl SoftEtherSessions {
    pub fn new() -> SoftEtherSessions {
        SoftEtherSessions::default()
    }

    pub fn stats(&self) -> SoftEtherStats {
        self.stats
    }

    /// Answers the request on `conn` with a PACK over HTTP (and, for a refusal, closes it).
    fn answer(io: &mut dyn Io, conn: ConnId, pack: &etherhub_pack::Pack, unix_secs: u64) {
        io.write_stream(conn, &page::pack_response(pack, unix_secs));
    }

    fn refuse(io: &mut dyn Io, conn: ConnId, code: u32, unix_secs: u64) {
        Self::answer(io, conn, &refused(code), unix_secs);
        io.close_stream(conn);
    }

    fn login(&mut self, now: Instant, conn: ConnId, peer: SocketAddr, h: Handoff, io: &mut dyn Io) {
        let t = h.unix_secs;
        let login = match SessionLogin::from_pack(&h.request) {
            Ok(l) => l,
            Err(_) => return Self::refuse(io, conn, ERR_PROTOCOL_ERROR, t),
        };
        let (hub, user) = (login.hub.as_str(), login.user.as_str());
        let request = match &login.auth {
            Auth::Anonymous => AuthRequest::Anonymous { hub, user },
            Auth::Password { secure } => AuthRequest::Challenge {
                hub,
                user,
                response: secure,
                random: &h.random,
            },
            Auth::PlainPassword(password) => AuthRequest::Password {
                hub,
                user,
                password,
            },
            Auth::Other(_) => {
                self.stats.refused_logins += 1;
                return Self::refuse(io, conn, ERR_AUTHTYPE_NOT_SUPPORTED, t);
            }
        };
        let credential = match login.auth {
            Auth::Anonymous => Credential::Anonymous,
            _ => Credential::Password,
        };
        let grant = match io.authenticate(request) {
            Ok(g) => g,
            Err(e) => {
                self.stats.refused_logins += 1;
                let code = match e {
                    AuthError::NoSuchHub => ERR_HUB_NOT_FOUND,
                    AuthError::HubOffline => ERR_HUB_STOPPING,
                    AuthError::AccessDenied | AuthError::WrongMethod => {
                        io.login_failed(peer, hub, user);
                        ERR_AUTH_FAILED
                    }
                    AuthError::Denied => ERR_ACCESS_DENIED,
                    AuthError::TooManySessions => ERR_TOO_MANY_USER_SESSION,
                };
                return Self::refuse(io, conn, code, t);
            }
        };
        // monitoring mode needs the policy's MonitorPort (SoftEther's rule and error)
        if login.monitor_mode && grant.policy.named("MonitorPort") == 0 {
            self.stats.refused_logins += 1;
            return Self::refuse(io, conn, ERR_MONITOR_MODE_DENIED, t);
        }
        self.next_index = self.next_index.wrapping_add(1).max(1);
        let index = self.next_index;
        let tunnel = TunnelId {
            protocol: io.protocol(),
            index,
        };
        let c = &login.client;
        let opened = Opened {
            tunnel,
            hub: grant.hub.clone(),
            user: grant.user.clone(),
            medium: Medium::Ethernet,
            client: peer,
            address: AddressRule::Any,
            credential,
            label: format!("{}@{}", grant.user, grant.hub),
            details: SessionDetails {
                protocol: String::new(),
                underlay: match peer {
                    SocketAddr::V4(_) => "Standard TCP/IP (IPv4)".into(),
                    SocketAddr::V6(_) => "Standard TCP/IP (IPv6)".into(),
                },
                cipher: h.cipher.clone(),
                client_product: c.product.clone(),
                client: ClientReport {
                    version: c.version,
                    build: c.build,
                    os_name: c.os_name.clone(),
                    os_version: c.os_version.clone(),
                    os_product_id: c.os_product_id.clone(),
                    hostname: c.hostname.clone(),
                    local: c.local_ip.map(|ip| SocketAddr::new(ip, c.local_port)),
                },
            },
            monitor: login.monitor_mode,
        };
        let Some(session_name) = io.opened(opened) else {
            // the engine refused it (the hub went away meanwhile) and closes the tunnel
            self.stats.refused_logins += 1;
            Self::answer(io, conn, &refused(ERR_HUB_STOPPING), t);
            io.close_stream(conn);
            return;
        };
        self.stats.logins += 1;
        // the client's wish within the policy's MaxConnection (SoftEther's rule); half duplex
        // needs two
        let allowed = grant.policy.max_connection().min(MAX_CONNECTIONS);
        let half = login.half_connection && allowed >= 2;
        let max = if half {
            login.max_connection.clamp(2, allowed)
        } else {
            login.max_connection.clamp(1, allowed)
        };
        let timeout = Duration::from_secs(u64::from(grant.policy.timeout_secs()));
        self.next_conn_name += 1;
        let welcome = Welcome {
            session_name,
            connection_name: format!("CID-{}", self.next_conn_name),
            session_key: h.session_key,
            max_connection: max,
            use_compress: login.use_compress,
            half_connection: half,
            timeout_ms: timeout.as_millis() as u32,
            message: String::new(),
            policy: grant.policy,
        };
        Self::answer(io, conn, &welcome.to_pack(), t);
        let seed = u64::from_le_bytes(h.session_key[..8].try_into().unwrap_or([1; 8])) | 1;
        let session = Session {
            tunnel,
            key: h.session_key,
            client: peer.ip(),
            hub: grant.hub,
            user: grant.user,
            conns: Vec::new(),
            max,
            half,
            compress: login.use_compress,
            writer: BlockWriter::new(login.use_compress),
            orphan_since: None,
            timeout,
            rng: seed,
        };
        self.keys.insert(h.session_key, index);
        self.sessions.insert(index, session);
        // the login connection goes client-to-server in half-duplex mode
        let direction = if half {
            Direction::ClientToServer
        } else {
            Direction::Both
        };
        self.join(now, conn, index, direction, io);
    }

    fn additional(
        &mut self,
        now: Instant,
        conn: ConnId,
        peer: SocketAddr,
        h: Handoff,
        io: &mut dyn Io,
    ) {
        let t = h.unix_secs;
        let Ok(key) = additional_key(&h.request) else {
            return Self::refuse(io, conn, ERR_PROTOCOL_ERROR, t);
        };
        let Some(&index) = self.keys.get(&key) else {
            return Self::refuse(io, conn, ERR_SESSION_TIMEOUT, t);
        };
        let s = &self.sessions[&index];
        if s.client != peer.ip() {
            // a session key used from elsewhere than its login: as if the session were gone
            self.stats.foreign_joins += 1;
            io.login_failed(peer, &s.hub, &s.user);
            return Self::refuse(io, conn, ERR_SESSION_TIMEOUT, t);
        }
        if s.conns.len() as u32 >= s.max {
            return Self::refuse(io, conn, ERR_TOO_MANY_CONNECTION, t);
        }
        let direction = if s.half {
            let s2c = s
                .conns
                .iter()
                .filter(|c| {
                    self.conns
                        .get(c)
                        .is_some_and(|c| c.direction == Direction::ServerToClient)
                })
                .count();
            if s2c > s.conns.len() - s2c {
                Direction::ClientToServer
            } else {
                Direction::ServerToClient
            }
        } else {
            Direction::Both
        };
        Self::answer(io, conn, &joined(direction), t);
        self.join(now, conn, index, direction, io);
    }

    /// A connection carries the session's blocks from now on; it starts with a keep-alive,
    /// as SoftEther's do.
    fn join(&mut self, now: Instant, conn: ConnId, index: u32, dir: Direction, io: &mut dyn Io) {
        let Some(s) = self.sessions.get_mut(&index) else {
            return;
        };
        s.conns.push(conn);
        s.orphan_since = None;
        let mut c = Conn {
            session: index,
            direction: dir,
            reader: BlockReader::new(s.compress),
            last_rx: now,
            next_keepalive: now,
        };
        if dir.server_sends() {
            Self::send_keepalive(s, &mut c, now, conn, io);
        }
        self.conns.insert(conn, c);
    }

    fn send_keepalive(s: &mut Session, c: &mut Conn, now: Instant, conn: ConnId, io: &mut dyn Io) {
        let len = (s.random() % 512) as usize;
        let mut pad = Vec::with_capacity(len + 8);
        while pad.len() < len {
            pad.extend_from_slice(&s.random().to_le_bytes());
        }
        pad.truncate(len);
        let mut out = Vec::with_capacity(len + 8);
        keep_alive(&pad, &mut out);
        io.write_stream(conn, &out);
        c.next_keepalive = now + s.keepalive_span();
    }

    /// A connection is gone (closed by either side or broken); a session left without one
    /// waits [`SESSION_TIMEOUT`] for the client to come back.
    fn drop_conn(&mut self, now: Instant, conn: ConnId) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        if let Some(s) = self.sessions.get_mut(&c.session) {
            s.conns.retain(|x| *x != conn);
            if s.conns.is_empty() {
                s.orphan_since = Some(now);
            }
        }
    }

    fn end_session(&mut self, index: u32, io: &mut dyn Io) -> Option<Session> {
        let s = self.sessions.remove(&index)?;
        self.keys.remove(&s.key);
        for conn in &s.conns {
            self.conns.remove(conn);
            io.close_stream(*conn);
        }
        Some(s)
    }
}

impl Protocol for SoftEtherSessions {
    fn name(&self) -> &'static str {
        "SoftEther"
    }

    fn open_stream(
        &mut self,
        now: Instant,
        conn: ConnId,
        peer: SocketAddr,
        bytes: &[u8],
        io: &mut dyn Io,
    ) {
        let Some(h) = Handoff::from_bytes(bytes) else {
            io.close_stream(conn);
            return;
        };
        match h.request.str("method").unwrap_or("") {
            m if m.eq_ignore_ascii_case("login") => self.login(now, conn, peer, h, io),
            m if m.eq_ignore_ascii_case("additional_connect") => {
                self.additional(now, conn, peer, h, io)
            }
            _ => Self::refuse(io, conn, ERR_PROTOCOL_ERROR, h.unix_secs),
        }
    }

    fn handle_stream(&mut self, now: Instant, conn: ConnId, bytes: &[u8], io: &mut dyn Io) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some(tunnel) = self.sessions.get(&c.session).map(|s| s.tunnel) else {
            return;
        };
        let (mut records, mut frames, mut dropped) = (0u64, 0u64, 0u64);
        let fed = c.reader.feed(bytes, &mut |r| {
            records += 1;
            match r {
                Record::Frame(f) => {
                    frames += 1;
                    io.packet(tunnel, f);
                }
                Record::KeepAlive => {}
                Record::Dropped => dropped += 1,
            }
        });
        if records > 0 {
            c.last_rx = now;
        }
        self.stats.frames_in += frames;
        self.stats.dropped_blocks += dropped;
        if fed.is_err() {
            self.stats.broken_streams += 1;
            self.drop_conn(now, conn);
            io.close_stream(conn);
        }
    }

    fn stream_closed(&mut self, now: Instant, conn: ConnId, _io: &mut dyn Io) {
        self.drop_conn(now, conn);
    }

    fn send(&mut self, now: Instant, tunnel: TunnelId, frame: Vec<u8>, io: &mut dyn Io) {
        let Some(s) = self.sessions.get_mut(&tunnel.index) else {
            return;
        };
        let lanes: Vec<ConnId> = s
            .conns
            .iter()
            .copied()
            .filter(|c| {
                self.conns
                    .get(c)
                    .is_some_and(|c| c.direction.server_sends())
            })
            .collect();
        if lanes.is_empty() {
            return;
        }
        let conn = lanes[lane(&frame, lanes.len())];
        let mut out = Vec::with_capacity(frame.len() + 8);
        s.writer.frames([&frame[..]], &mut out);
        if out.is_empty() {
            return;
        }
        io.write_stream(conn, &out);
        self.stats.frames_out += 1;
        if let Some(c) = self.conns.get_mut(&conn) {
            // data keeps the client's side of the connection alive as a keep-alive would
            c.next_keepalive = now + s.keepalive_span();
        }
    }

    fn handle_timeout(&mut self, now: Instant, io: &mut dyn Io) {
        let mut dead = Vec::new();
        for (id, c) in self.conns.iter_mut() {
            let Some(s) = self.sessions.get_mut(&c.session) else {
                continue;
            };
            if c.direction != Direction::ServerToClient && now >= c.last_rx + s.timeout {
                dead.push(*id);
                continue;
            }
            if c.direction.server_sends() && now >= c.next_keepalive {
                Self::send_keepalive(s, c, now, *id, io);
            }
        }
        for id in dead {
            self.drop_conn(now, id);
            io.close_stream(id);
        }
        let expired: Vec<u32> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.orphan_since.is_some_and(|t| now >= t + s.timeout))
            .map(|(i, _)| *i)
            .collect();
        for index in expired {
            if let Some(s) = self.end_session(index, io) {
                io.closed(s.tunnel, CloseReason::Ended);
            }
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let conns = self.conns.values().flat_map(|c| {
            let timeout = self
                .sessions
                .get(&c.session)
                .map_or(SESSION_TIMEOUT, |s| s.timeout);
            let rx = (c.direction != Direction::ServerToClient).then(|| c.last_rx + timeout);
            let ka = c.direction.server_sends().then_some(c.next_keepalive);
            rx.into_iter().chain(ka)
        });
        let orphans = self
            .sessions
            .values()
            .filter_map(|s| s.orphan_since.map(|t| t + s.timeout));
        conns.chain(orphans).min()
    }

    fn close(&mut self, _now: Instant, tunnel: TunnelId, io: &mut dyn Io) {
        self.end_session(tunnel.index, io);
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        let s = self.stats;
        vec![
            ("logins", s.logins),
            ("refused_logins", s.refused_logins),
            ("dropped_blocks", s.dropped_blocks),
            ("broken_streams", s.broken_streams),
            ("foreign_joins", s.foreign_joins),
            ("frames_in", s.frames_in),
            ("frames_out", s.frames_out),
        ]
    }

    fn live(&self, tunnel: TunnelId) -> Option<Live> {
        let s = self.sessions.get(&tunnel.index)?;
        Some(Live {
            connections: s.conns.len() as u32,
            max_connections: s.max,
            compressed: s.compress,
            half_duplex: s.half,
        })
    }
}

impl SoftEtherSessions {
    /// The hub and user of a session (for tests and logs).
    pub fn session_of(&self, tunnel: TunnelId) -> Option<(&str, &str)> {
        self.sessions
            .get(&tunnel.index)
            .map(|s| (s.hub.as_str(), s.user.as_str()))
    }
}
