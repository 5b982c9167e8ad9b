//! OpenVPN behind the seam: etherhub-openvpn's sessions as tunnels, over UDP (a session per
//! client address) and TCP (a session per connection, packets after a 16-bit length).
//!
//! A client's hard reset from an address the core does not know, or first on a connection,
//! starts a session. When its
//! key exchange brings a user name and password, the core asks the engine
//! ([`Io::authenticate`]); a `dev tun` client's tunnel is an IP session whose address is a
//! SecureNAT lease taken on its behalf ([`Io::lease_address`]) and pushed to it with the
//! gateway and DNS; a `dev tap` client's is an Ethernet session (it runs DHCP itself).
//! User names are SoftEther's: `user`, `user@HUB`, `HUB\user` (hub DEFAULT when none is named).
//!
//! With the server's tls-crypt key (the option `TlsCryptKey`, which the runtime passes from the
//! config), a first packet that unwraps with it starts a tls-crypt session; with `TlsCrypt`
//! on, nothing else does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use etherhub_openvpn::keys::ClientKeys;
use etherhub_openvpn::packet::{
    looks_like_openvpn, split_op, Framer, SessionId, P_CONTROL_HARD_RESET_CLIENT_V2,
};
use etherhub_openvpn::session::{Event, Login, Refused, Session, Wrapping};
use etherhub_openvpn::tls_crypt::{Role, StaticKey, TlsCrypt};

pub use crate::seam::{split_user, DEFAULT_HUB};
use crate::seam::{
    AddressRule, AuthError, AuthRequest, CloseReason, ConnId, Credential, Io, Medium, Opened,
    Protocol, SessionDetails, TunnelId,
};

/// Sessions at most (OpenVPN's peer-ids are 24 bits; this bounds the memory a flood of resets
/// can take).
pub const MAX_SESSIONS: usize = 4096;

/// The address SoftEther pushes to a tap client (PushDummyIPv4AddressOnL2Mode), so that its
/// interface comes up; the client's own DHCP then gives the real one.
const L2_DUMMY_IFCONFIG: &str = "ifconfig 192.0.0.8 255.255.255.240";

/// What the protocol's options (ProtoOptions OpenVPN) set.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Options {
    enabled: bool,
    push_dummy_l2: bool,
    /// The options a client that sends none is taken to have.
    default_client: String,
    /// tls-crypt required of every client (Etherhub's own option `TlsCrypt`).
    tls_crypt: bool,
    /// The server's tls-crypt key (the runtime's option `TlsCryptKey`, the key file's text).
    tls_crypt_key: Option<StaticKey>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            enabled: true,
            push_dummy_l2: true,
            default_client: "dev-type tun".into(),
            tls_crypt: false,
            tls_crypt_key: None,
        }
    }
}

/// Whether the client's options say `dev-type tap`.
fn is_tap(options: &str) -> bool {
    options
        .split(',')
        .any(|o| o.trim().eq_ignore_ascii_case("dev-type tap"))
}

/// How a session's packets travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    /// Datagrams between a listener's address and the client's.
    Udp { local: SocketAddr },
    /// A TCP connection the runtime holds.
    Tcp(ConnId),
}

struct Entry {
    session: Session,
    transport: Transport,
    client: SocketAddr,
    tunnel: TunnelId,
    /// The engine linked the tunnel to a hub session.
    open: bool,
}

/// Counters of the core.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenVpnStats {
    pub logins: u64,
    pub refused_logins: u64,
    pub malformed_dropped: u64,
    pub forged_dropped: u64,
    pub replayed_dropped: u64,
    pub sessions_refused: u64,
    /// First packets refused because tls-crypt is required and they do not unwrap.
    pub tls_crypt_refused: u64,
}

/// The OpenVPN protocol core. Off until it has a TLS configuration (the server's certificate).
pub struct OpenVpn {
    tls: Option<Arc<rustls::ServerConfig>>,
    sessions: HashMap<u32, Entry>,
    by_addr: HashMap<(SocketAddr, SocketAddr), u32>,
    /// TCP connections: their framing, and their session once the reset came.
    streams: HashMap<ConnId, (Framer, SocketAddr, Option<u32>)>,
    next_index: u32,
    stats: OpenVpnStats,
    options: Options,
}

impl OpenVpn {
    pub fn new(tls: Option<Arc<rustls::ServerConfig>>) -> OpenVpn {
        OpenVpn {
            tls,
            sessions: HashMap::new(),
            by_addr: HashMap::new(),
            streams: HashMap::new(),
            next_index: 0,
            stats: OpenVpnStats::default(),
            options: Options::default(),
        }
    }

    pub fn stats(&self) -> OpenVpnStats {
        let mut s = self.stats;
        for e in self.sessions.values() {
            s.malformed_dropped += e.session.dropped.malformed + e.session.dropped.wrong_session;
            s.forged_dropped += e.session.dropped.forged;
            s.replayed_dropped += e.session.dropped.replayed;
        }
        s
    }

    /// A session for the hard reset `packet`; its index. `replacing`: a session of the same
    /// client that goes when this one is accepted (the client started over).
    fn new_session(
        &mut self,
        now: Instant,
        transport: Transport,
        from: SocketAddr,
        packet: &[u8],
        replacing: Option<u32>,
        io: &mut dyn Io,
    ) -> Option<u32> {
        let Some(tls) = self.tls.clone().filter(|_| self.options.enabled) else {
            self.stats.sessions_refused += 1;
            return None;
        };
        if self.sessions.len() >= MAX_SESSIONS && replacing.is_none() {
            self.stats.sessions_refused += 1;
            return None;
        }
        // the net time of the server's tls-crypt packets: the wall clock (0 while unknown,
        // which clients take as well)
        let unix = io.unix_ms().map_or(0, |ms| (ms / 1000) as u32);
        // a tls-crypt session is replaced by a tls-crypt one only (a reset without the key
        // cannot end it)
        let required = self.options.tls_crypt
            || replacing
                .and_then(|i| self.sessions.get(&i))
                .is_some_and(|e| e.session.is_tls_crypt());
        let wrapping = match (&self.options.tls_crypt_key, required) {
            (Some(k), true) => Wrapping::TlsCrypt(TlsCrypt::new(k, Role::Server, unix)),
            (Some(k), false) => Wrapping::Either(TlsCrypt::new(k, Role::Server, unix)),
            (None, false) => Wrapping::Plain,
            (None, true) => {
                self.stats.tls_crypt_refused += 1;
                return None;
            }
        };
        let mut id = [0u8; 8];
        if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id).is_err() {
            return None;
        }
        let mut next = self.next_index.wrapping_add(1).max(1);
        while self.sessions.contains_key(&next) {
            next = next.wrapping_add(1).max(1);
        }
        let index = next;
        let mut events = Vec::new();
        let peer_id = index & 0x00ff_ffff;
        let session = match Session::accept_with(
            now,
            tls,
            SessionId(id),
            peer_id,
            wrapping,
            packet,
            &mut events,
        ) {
            Ok(s) => s,
            Err(Refused::Malformed) => {
                self.stats.malformed_dropped += 1;
                return None;
            }
            Err(Refused::NotWrapped) => {
                self.stats.tls_crypt_refused += 1;
                return None;
            }
        };
        self.next_index = index;
        if let Some(old) = replacing.and_then(|i| self.sessions.get(&i)) {
            let (old_index, tunnel, open) = (old.tunnel.index, old.tunnel, old.open);
            self.forget(old_index);
            if open {
                io.closed(tunnel, CloseReason::Ended);
            }
        }
        let tunnel = TunnelId {
            protocol: io.protocol(),
            index,
        };
        self.sessions.insert(
            index,
            Entry {
                session,
                transport,
                client: from,
                tunnel,
                open: false,
            },
        );
        if let Transport::Udp { local } = transport {
            self.by_addr.insert((local, from), index);
        }
        self.events(index, events, io);
        Some(index)
    }

    /// Acts on a session's events.
    fn events(&mut self, index: u32, events: Vec<Event>, io: &mut dyn Io) {
        for ev in events {
            let Some(e) = self.sessions.get(&index) else {
                return;
            };
            match ev {
                Event::Transmit(bytes) => match e.transport {
                    Transport::Udp { local } => {
                        let to = e.client;
                        io.transmit(local, bytes.len(), &mut |buf| {
                            buf[..bytes.len()].copy_from_slice(&bytes);
                            Some((to, bytes.len()))
                        });
                    }
                    Transport::Tcp(conn) => io.write_stream(conn, &Framer::frame(&bytes)),
                },
                Event::Up { .. } => self.stats.logins += 1,
                Event::Packet(p) => {
                    if e.open {
                        io.packet(e.tunnel, &p);
                    }
                }
                Event::Closed(_why) => {
                    let (tunnel, open, transport) = (e.tunnel, e.open, e.transport);
                    self.forget(index);
                    if let Transport::Tcp(conn) = transport {
                        self.streams.remove(&conn);
                        io.close_stream(conn);
                    }
                    if open {
                        io.closed(tunnel, CloseReason::Ended);
                    }
                }
            }
        }
    }

    fn forget(&mut self, index: u32) {
        if let Some(e) = self.sessions.remove(&index) {
            if let Transport::Udp { local } = e.transport {
                self.by_addr.remove(&(local, e.client));
            }
        }
    }

    /// One packet of session `index` (UDP or TCP alike).
    fn packet(&mut self, now: Instant, index: u32, packet: &[u8], io: &mut dyn Io) {
        let Some(e) = self.sessions.get_mut(&index) else {
            return;
        };
        let (tunnel, client) = (e.tunnel, e.client);
        let mut events = Vec::new();
        let mut open = e.open;
        let (stats, options) = (&mut self.stats, &self.options);
        e.session.handle_packet(
            now,
            packet,
            &mut |keys: &ClientKeys| {
                let hint = etherhub_openvpn::data::Cipher::choose(&keys.ciphers())
                    .map(|c| c.name())
                    .unwrap_or("");
                login(keys, tunnel, client, hint, options, &mut open, stats, io)
            },
            &mut events,
        );
        e.open = open;
        self.events(index, events, io);
    }
}

/// The login of a session's key exchange: the accounts' answer, and for the first key the
/// tunnel opened and its address leased.
#[allow(clippy::too_many_arguments)]
fn login(
    keys: &ClientKeys,
    tunnel: TunnelId,
    client: SocketAddr,
    cipher_hint: &str,
    options: &Options,
    open: &mut bool,
    stats: &mut OpenVpnStats,
    io: &mut dyn Io,
) -> Login {
    let (hub, user) = split_user(&keys.user);
    if io.locked_out(client.ip()) {
        // too many wrong passwords from this address lately: not even checked
        stats.refused_logins += 1;
        return Login::Refused;
    }
    let grant = match io.authenticate(AuthRequest::Password {
        hub,
        user,
        password: &keys.password,
    }) {
        Ok(g) => g,
        Err(e) => {
            stats.refused_logins += 1;
            if matches!(e, AuthError::AccessDenied | AuthError::WrongMethod) {
                io.login_failed(client, hub, user);
            }
            return Login::Refused;
        }
    };
    if *open {
        // a renegotiation: the same user again
        return Login::Accepted { push: Vec::new() };
    }
    let client_options = if keys.options.is_empty() {
        &options.default_client
    } else {
        &keys.options
    };
    let tap = is_tap(client_options);
    let tag = if tap { "OPENVPN_L2" } else { "OPENVPN_L3" };
    let name = io.opened(Opened {
        tunnel,
        hub: grant.hub.clone(),
        user: grant.user.clone(),
        medium: if tap { Medium::Ethernet } else { Medium::Ip },
        client,
        address: AddressRule::Any,
        credential: Credential::Password,
        label: format!("{}@{}", grant.user, grant.hub),
        details: SessionDetails {
            protocol: tag.into(),
            underlay: format!("Legacy VPN - {tag}"),
            cipher: cipher_hint.to_string(),
            client_product: "OpenVPN Client".into(),
            client: crate::seam::ClientReport {
                os_name: keys.info("IV_PLAT").unwrap_or("").to_string(),
                os_version: keys.info("IV_VER").unwrap_or("").to_string(),
                ..Default::default()
            },
        },
        monitor: false,
    });
    if name.is_none() {
        stats.refused_logins += 1;
        return Login::Refused;
    }
    *open = true;
    if tap {
        let push = if options.push_dummy_l2 {
            vec![L2_DUMMY_IFCONFIG.to_string()]
        } else {
            Vec::new()
        };
        return Login::Accepted { push };
    }
    let Some(ip) = io.lease_address(tunnel) else {
        // no address to give: the tunnel cannot work
        stats.refused_logins += 1;
        io.closed(tunnel, CloseReason::Refused("no address to lease".into()));
        *open = false;
        return Login::Refused;
    };
    let mut push = vec![
        "topology subnet".to_string(),
        format!("ifconfig {} {}", ip.address, ip.mask),
    ];
    if !ip.gateway.is_unspecified() {
        // SoftEther's way: the hub's gateway becomes the client's default route
        push.push(format!("route-gateway {}", ip.gateway));
        push.push("redirect-gateway def1".into());
    }
    for d in &ip.dns {
        push.push(format!("dhcp-option DNS {d}"));
    }
    if !ip.domain.is_empty() {
        push.push(format!("dhcp-option DOMAIN {}", ip.domain));
    }
    Login::Accepted { push }
}

impl Protocol for OpenVpn {
    fn name(&self) -> &'static str {
        "OpenVPN"
    }

    fn claims_datagram(&self, datagram: &[u8]) -> bool {
        looks_like_openvpn(datagram)
    }

    fn set_option(&mut self, _now: Instant, name: &str, value: &str, _io: &mut dyn Io) {
        let yes = value.eq_ignore_ascii_case("true");
        if name.eq_ignore_ascii_case("Enabled") {
            self.options.enabled = yes;
        } else if name.eq_ignore_ascii_case("PushDummyIPv4AddressOnL2Mode") {
            self.options.push_dummy_l2 = yes;
        } else if name.eq_ignore_ascii_case("DefaultClientOption") {
            self.options.default_client = value.to_string();
        } else if name.eq_ignore_ascii_case("TlsCrypt") {
            self.options.tls_crypt = yes;
        } else if name.eq_ignore_ascii_case("TlsCryptKey") {
            self.options.tls_crypt_key = StaticKey::parse(value).ok();
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
        let udp = Transport::Udp { local };
        let (op, _) = split_op(datagram[0]);
        let Some(&index) = self.by_addr.get(&(local, from)) else {
            if op == P_CONTROL_HARD_RESET_CLIENT_V2 {
                self.new_session(now, udp, from, datagram, None, io);
            } else {
                self.stats.malformed_dropped += 1;
            }
            return;
        };
        // a hard reset after the login: the client started over (a restart), with a session id
        // of its own (its first reset again, late or replayed, is no restart)
        let restarted = op == P_CONTROL_HARD_RESET_CLIENT_V2
            && self.sessions.get(&index).is_some_and(|e| {
                e.session.user().is_some() && datagram.get(1..9) != Some(&e.session.remote().0[..])
            });
        if restarted {
            // the old session goes once the new one is accepted
            self.new_session(now, udp, from, datagram, Some(index), io);
            return;
        }
        self.packet(now, index, datagram, io);
    }

    fn open_stream(
        &mut self,
        now: Instant,
        conn: ConnId,
        peer: SocketAddr,
        bytes: &[u8],
        io: &mut dyn Io,
    ) {
        self.streams.insert(conn, (Framer::default(), peer, None));
        self.handle_stream(now, conn, bytes, io);
    }

    fn handle_stream(&mut self, now: Instant, conn: ConnId, bytes: &[u8], io: &mut dyn Io) {
        let Some((framer, _, _)) = self.streams.get_mut(&conn) else {
            return;
        };
        let mut packets = Vec::new();
        if framer
            .feed(bytes, &mut |p| packets.push(p.to_vec()))
            .is_err()
        {
            self.stats.malformed_dropped += 1;
            self.stream_closed(now, conn, io);
            io.close_stream(conn);
            return;
        }
        for p in packets {
            let Some(&(_, peer, index)) = self.streams.get(&conn) else {
                return;
            };
            match index {
                Some(index) => self.packet(now, index, &p, io),
                None if split_op(p[0]).0 == P_CONTROL_HARD_RESET_CLIENT_V2 => {
                    let index = self.new_session(now, Transport::Tcp(conn), peer, &p, None, io);
                    if index.is_none() {
                        self.streams.remove(&conn);
                        io.close_stream(conn);
                        return;
                    }
                    if let Some(s) = self.streams.get_mut(&conn) {
                        s.2 = index;
                    }
                }
                None => {
                    // not OpenVPN after all
                    self.stats.malformed_dropped += 1;
                    self.streams.remove(&conn);
                    io.close_stream(conn);
                    return;
                }
            }
        }
    }

    fn stream_closed(&mut self, _now: Instant, conn: ConnId, io: &mut dyn Io) {
        let Some((_, _, index)) = self.streams.remove(&conn) else {
            return;
        };
        let Some(index) = index else { return };
        if let Some(e) = self.sessions.get(&index) {
            let (tunnel, open) = (e.tunnel, e.open);
            self.forget(index);
            if open {
                io.closed(tunnel, CloseReason::Ended);
            }
        }
    }

    fn send(&mut self, now: Instant, tunnel: TunnelId, packet: Vec<u8>, io: &mut dyn Io) {
        let Some(e) = self.sessions.get_mut(&tunnel.index) else {
            return;
        };
        let mut events = Vec::new();
        e.session.send(now, &packet, &mut events);
        self.events(tunnel.index, events, io);
    }

    fn handle_timeout(&mut self, now: Instant, io: &mut dyn Io) {
        let due: Vec<u32> = self
            .sessions
            .iter()
            .filter(|(_, e)| e.session.next_timeout() <= now)
            .map(|(i, _)| *i)
            .collect();
        for index in due {
            let Some(e) = self.sessions.get_mut(&index) else {
                continue;
            };
            let mut events = Vec::new();
            e.session.handle_timeout(now, &mut events);
            self.events(index, events, io);
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.sessions
            .values()
            .map(|e| e.session.next_timeout())
            .min()
    }

    fn close(&mut self, _now: Instant, tunnel: TunnelId, io: &mut dyn Io) {
        if let Some(Transport::Tcp(conn)) = self.sessions.get(&tunnel.index).map(|e| e.transport) {
            self.streams.remove(&conn);
            io.close_stream(conn);
        }
        self.forget(tunnel.index);
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        let s = self.stats();
        vec![
            ("logins", s.logins),
            ("refused_logins", s.refused_logins),
            ("malformed_dropped", s.malformed_dropped),
            ("forged_dropped", s.forged_dropped),
            ("replayed_dropped", s.replayed_dropped),
            ("sessions_refused", s.sessions_refused),
            ("tls_crypt_refused", s.tls_crypt_refused),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherhub_openvpn::packet::{Control, P_CONTROL_HARD_RESET_SERVER_V2};

    fn tls() -> Arc<rustls::ServerConfig> {
        let cert = rcgen::generate_simple_self_signed(vec!["etherhub".into()]).unwrap();
        let der = rustls::pki_types::CertificateDer::from(cert.cert.der().to_vec());
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(
            rustls::pki_types::PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()),
        );
        Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der], key)
            .unwrap(),
        )
    }

    fn reset(session: u8) -> Vec<u8> {
        let mut p = Vec::new();
        Control {
            opcode: P_CONTROL_HARD_RESET_CLIENT_V2,
            key_id: 0,
            session: SessionId([session; 8]),
            acks: vec![],
            acked_session: None,
            message_id: Some(0),
            payload: &[],
        }
        .emit(&mut p);
        p
    }

    fn counter(engine: &crate::Engine, name: &str) -> u64 {
        engine
            .counters()
            .into_iter()
            .find(|(p, c, _)| *p == "OpenVPN" && *c == name)
            .map(|(_, _, v)| v)
            .unwrap()
    }

    /// The datagrams the engine sends now.
    fn sent(engine: &mut crate::Engine) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        while let Some(t) = engine.poll_transmit() {
            v.push(t.contents.to_vec());
        }
        v
    }

    #[test]
    fn tls_crypt_required_refuses_plain_resets_and_answers_wrapped_ones_wrapped() {
        let now = Instant::now();
        let mut engine = crate::Engine::new(now);
        engine.register(Box::new(OpenVpn::new(Some(tls()))));
        let key = StaticKey::from_bytes([0x42; 256]);
        let options = |on: bool| crate::Change::ProtoOptions {
            protocol: "OpenVPN".into(),
            options: vec![
                ("TlsCrypt".into(), on.to_string()),
                ("TlsCryptKey".into(), key.to_text()),
            ],
        };
        engine.apply(now, options(true));
        let local: SocketAddr = "198.18.0.1:1194".parse().unwrap();
        let (a, b): (SocketAddr, SocketAddr) = (
            "198.18.0.2:40000".parse().unwrap(),
            "198.18.0.3:40000".parse().unwrap(),
        );
        // a plain client: refused, counted
        engine.handle_datagram(now, local, a, &reset(1));
        assert!(sent(&mut engine).is_empty());
        assert_eq!(counter(&engine, "tls_crypt_refused"), 1);
        // a tls-crypt client: the server's reset comes back wrapped
        let mut client = TlsCrypt::new(&key, Role::Client, 1_000);
        let mut wrapped = Vec::new();
        client.wrap(&reset(2), &mut wrapped).unwrap();
        assert!(looks_like_openvpn(&wrapped));
        engine.handle_datagram(now, local, a, &wrapped);
        let answer = sent(&mut engine);
        assert_eq!(answer.len(), 1);
        let plain = client.unwrap(&answer[0]).expect("a wrapped answer");
        let c = Control::parse(&plain).unwrap();
        assert_eq!(
            (c.opcode, c.acks, c.acked_session),
            (
                P_CONTROL_HARD_RESET_SERVER_V2,
                vec![0],
                Some(SessionId([2; 8]))
            )
        );
        // the same datagram again: a replay, dropped
        engine.handle_datagram(now, local, a, &wrapped);
        assert!(sent(&mut engine).is_empty());
        assert_eq!(counter(&engine, "replayed_dropped"), 1);
        // TlsCrypt off: plain clients are served again
        engine.apply(now, options(false));
        engine.handle_datagram(now, local, b, &reset(3));
        let answer = sent(&mut engine);
        assert_eq!(answer.len(), 1);
        assert_eq!(
            Control::parse(&answer[0]).unwrap().opcode,
            P_CONTROL_HARD_RESET_SERVER_V2
        );
        assert_eq!(counter(&engine, "tls_crypt_refused"), 1);
    }

    #[test]
    fn user_names_name_their_hub_as_softether_reads_them() {
        assert_eq!(split_user("alice"), ("DEFAULT", "alice"));
        assert_eq!(split_user("alice@SALES"), ("SALES", "alice"));
        assert_eq!(split_user("SALES\\alice"), ("SALES", "alice"));
        assert!(is_tap("V4,dev-type tap,link-mtu 1573"));
        assert!(!is_tap("V4,dev-type tun,link-mtu 1541"));
    }
}
