//! One OpenVPN client's session on the server, sans-IO.
//!
//! The client's hard reset opens it; the server answers with its own. TLS (a rustls server
//! connection, fed and drained without IO) runs over the control channel's reliable messages.
//! Inside TLS the client sends its key method 2 message with its user name and password; the
//! caller decides ([`Login`]), and the server answers with its own key method 2 message and the
//! push reply (or `AUTH_FAILED`). The data keys come from TLS's exporter (OpenVPN 2.6 clients)
//! or from OpenVPN's older PRF ([`crate::prf`], older clients). A soft reset from the
//! client (a new key id) runs the same exchange again on a new key, while the old one keeps
//! carrying data until the new one is ready (renegotiation without a gap).
//!
//! A session is plain or tls-crypt ([`Wrapping`]), as its first packet came: a tls-crypt
//! session's control packets are all wrapped, both ways (acknowledgements too); its data
//! packets are as a plain session's.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection};

use crate::data::{Auth, Cipher, DataChannel, DataError, OCC_EXIT, OCC_MAGIC, PING};
use crate::keys::{
    server_keys, ClientKeys, DataKeys, EKM_LABEL, IV_PROTO_DATA_V2, IV_PROTO_TLS_KEY_EXPORT,
};
use crate::packet::{
    split_op, Control, DataHeader, SessionId, P_CONTROL_HARD_RESET_CLIENT_V2,
    P_CONTROL_HARD_RESET_SERVER_V2, P_CONTROL_SOFT_RESET_V1, P_CONTROL_V1, P_DATA_V1, P_DATA_V2,
};
use crate::reliable::{Received, Reliable};
use crate::tls_crypt::{TlsCrypt, UnwrapError};

/// TLS bytes per control packet (OpenVPN's 1250-byte control datagrams, less headers).
pub const CONTROL_CHUNK: usize = 1100;
/// How long a key's handshake may take (OpenVPN's hand-window).
pub const HANDSHAKE_WINDOW: Duration = Duration::from_secs(60);
/// The server pings when it has sent nothing for this long, and says so in the push reply.
pub const PING_INTERVAL: Duration = Duration::from_secs(5);
/// A session with nothing received for this long is over (pushed as ping-restart, so that a
/// client whose server restarted comes back within it: SoftEther pushes 10 s, OpenVPN's sample
/// servers 120 s).
pub const PING_RESTART: Duration = Duration::from_secs(30);
/// How long a replaced key still opens the client's packets (OpenVPN keeps it far longer,
/// its tran-window of an hour; packets in flight need seconds).
pub const LAME_DUCK: Duration = Duration::from_secs(60);
/// The longest control text message (one TLS record, with its NUL).
const MAX_TEXT: usize = 2048;

/// What the server's caller says of a login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Login {
    /// Accepted: these options go in the push reply (`ifconfig ...`, `route-gateway ...`,
    /// `dhcp-option DNS ...`; the session adds ping, peer-id, cipher and key derivation).
    Accepted { push: Vec<String> },
    /// Refused: the client gets `AUTH_FAILED` (the reason goes to the caller's log only).
    Refused,
}

/// What a session asks of, or tells, its caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Bytes to send to the client (one datagram, or one packet to frame for TCP).
    Transmit(Vec<u8>),
    /// The client logged in and the data channel is up (first key only).
    Up {
        user: String,
        cipher: Cipher,
        peer_info: String,
        /// The client's options string (`dev-type tun` or `tap` in it).
        options: String,
    },
    /// An inner packet (tun) or frame (tap) from the client.
    Packet(Vec<u8>),
    /// The session is over (the reason is for the log).
    Closed(String),
}

/// Counters of what the session dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    pub malformed: u64,
    pub forged: u64,
    pub replayed: u64,
    pub wrong_session: u64,
}

/// How a new session's control channel may come.
#[derive(Clone, Debug)]
pub enum Wrapping {
    /// Plain only.
    Plain,
    /// tls-crypt with this (the server's) state when the first packet unwraps with it, else
    /// plain.
    Either(TlsCrypt),
    /// tls-crypt only: a first packet that does not unwrap is refused.
    TlsCrypt(TlsCrypt),
}

/// Why [`Session::accept_with`] took no session from a first packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Not a client's hard reset (message 0 of a session id), wrapped or not.
    Malformed,
    /// tls-crypt is required and the packet does not unwrap with the server's key: a plain
    /// client, or one with another key.
    NotWrapped,
}

/// One key's state: its reliable channel, its TLS, its key exchange, its data channel.
struct KeyState {
    key_id: u8,
    reliable: Reliable,
    tls: ServerConnection,
    /// TLS plaintext from the client not yet used.
    plain: Vec<u8>,
    client_keys: Option<ClientKeys>,
    data: Option<DataChannel>,
    started: Instant,
    /// Whether this key's login has been answered.
    answered: bool,
    /// A key a newer one replaced still opens the client's packets until then (they may be
    /// on their way), then goes.
    retire_at: Option<Instant>,
}

impl KeyState {
    fn new(key_id: u8, config: &Arc<ServerConfig>, now: Instant) -> Option<KeyState> {
        Some(KeyState {
            key_id,
            reliable: Reliable::default(),
            tls: ServerConnection::new(config.clone()).ok()?,
            plain: Vec::new(),
            client_keys: None,
            data: None,
            started: now,
            answered: false,
            retire_at: None,
        })
    }
}

/// The decision a caller makes on a login, asked during [`Session::handle_packet`].
pub type Authenticate<'a> = dyn FnMut(&ClientKeys) -> Login + 'a;

pub struct Session {
    config: Arc<ServerConfig>,
    local: SessionId,
    remote: SessionId,
    peer_id: u32,
    /// The newest key first; an older one stays for data until the newest has its own.
    keys: Vec<KeyState>,
    cipher: Option<Cipher>,
    push: Vec<String>,
    user: Option<String>,
    data_v2: bool,
    /// The data keys come from TLS's exporter (else from OpenVPN's older PRF).
    ekm: bool,
    last_received: Instant,
    last_sent: Instant,
    closed: bool,
    /// A tls-crypt session's wrapping state (`None`: plain).
    tls_crypt: Option<TlsCrypt>,
    pub dropped: Dropped,
}

impl Session {
    /// A plain session for the client whose hard reset is `first` (its session id and
    /// message 0), with the server's session id `local` (random, from the caller) and peer-id.
    pub fn accept(
        now: Instant,
        config: Arc<ServerConfig>,
        local: SessionId,
        peer_id: u32,
        first: &[u8],
        out: &mut Vec<Event>,
    ) -> Option<Session> {
        Session::accept_with(now, config, local, peer_id, Wrapping::Plain, first, out).ok()
    }

    /// A session for the client whose hard reset is `first`, plain or tls-crypt as
    /// `wrapping` allows and the packet came.
    pub fn accept_with(
        now: Instant,
        config: Arc<ServerConfig>,
        local: SessionId,
        peer_id: u32,
        wrapping: Wrapping,
        first: &[u8],
        out: &mut Vec<Event>,
    ) -> Result<Session, Refused> {
        let (tls_crypt, plain) = match wrapping {
            Wrapping::Plain => (None, first.to_vec()),
            Wrapping::Either(mut t) => match t.unwrap(first) {
                Ok(p) => (Some(t), p),
                Err(_) => (None, first.to_vec()),
            },
            Wrapping::TlsCrypt(mut t) => match t.unwrap(first) {
                Ok(p) => (Some(t), p),
                Err(_) => return Err(Refused::NotWrapped),
            },
        };
        let c = Control::parse(&plain).map_err(|_| Refused::Malformed)?;
        if c.opcode != P_CONTROL_HARD_RESET_CLIENT_V2
            || c.message_id != Some(0)
            || c.session.is_zero()
        {
            return Err(Refused::Malformed);
        }
        let key = KeyState::new(c.key_id, &config, now).ok_or(Refused::Malformed)?;
        let mut s = Session {
            config,
            local,
            remote: c.session,
            peer_id,
            keys: vec![key],
            cipher: None,
            push: Vec::new(),
            user: None,
            data_v2: false,
            ekm: false,
            last_received: now,
            last_sent: now,
            closed: false,
            tls_crypt,
            dropped: Dropped::default(),
        };
        s.handle_control(now, c, &mut |_| Login::Refused, out);
        Ok(s)
    }

    /// Whether the session's control channel is tls-crypt.
    pub fn is_tls_crypt(&self) -> bool {
        self.tls_crypt.is_some()
    }

    /// The client's session id.
    pub fn remote(&self) -> SessionId {
        self.remote
    }

    pub fn peer_id(&self) -> u32 {
        self.peer_id
    }

    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    pub fn cipher(&self) -> Option<Cipher> {
        self.cipher
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// A packet from the client.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        bytes: &[u8],
        auth: &mut Authenticate<'_>,
        out: &mut Vec<Event>,
    ) {
        if self.closed {
            return;
        }
        let Some(&first) = bytes.first() else {
            self.dropped.malformed += 1;
            return;
        };
        let (op, key_id) = split_op(first);
        if op == P_DATA_V1 || op == P_DATA_V2 {
            self.handle_data(now, key_id, bytes, out);
            return;
        }
        // a tls-crypt session's control packets unwrap first; their packet ids are taken once
        // they are known to be this session's
        let opened = match &self.tls_crypt {
            None => None,
            Some(t) => match t.open(bytes) {
                Ok(u) => Some(u),
                Err(e) => {
                    match e {
                        UnwrapError::Truncated => self.dropped.malformed += 1,
                        UnwrapError::Forged => self.dropped.forged += 1,
                        UnwrapError::Replayed => self.dropped.replayed += 1,
                    }
                    return;
                }
            },
        };
        let plain = opened.as_ref().map_or(bytes, |u| &u.packet[..]);
        let c = match Control::parse(plain) {
            Ok(c) => c,
            Err(_) => {
                self.dropped.malformed += 1;
                return;
            }
        };
        if c.session != self.remote || c.acked_session.is_some_and(|s| s != self.local) {
            self.dropped.wrong_session += 1;
            return;
        }
        if let (Some(t), Some(u)) = (self.tls_crypt.as_mut(), opened.as_ref()) {
            t.take(u);
        }
        self.handle_control(now, c, auth, out);
    }

    /// A control packet of the client's session (plain, or unwrapped).
    fn handle_control(
        &mut self,
        now: Instant,
        c: Control<'_>,
        auth: &mut Authenticate<'_>,
        out: &mut Vec<Event>,
    ) {
        let key_id = c.key_id;
        self.last_received = now;
        if c.opcode == P_CONTROL_SOFT_RESET_V1 && !self.keys.iter().any(|k| k.key_id == key_id) {
            // the client renegotiates: a new key beside the current one
            if self.keys.first().is_some_and(|k| k.data.is_none()) {
                self.dropped.malformed += 1;
                return;
            }
            let Some(k) = KeyState::new(key_id, &self.config, now) else {
                return;
            };
            self.keys.insert(0, k);
            self.keys.truncate(2);
        }
        let Some(i) = self.keys.iter().position(|k| k.key_id == key_id) else {
            self.dropped.wrong_session += 1;
            return;
        };
        // the answer to a soft reset is a soft reset (message 0 of the new key)
        if self.keys[i].reliable.receive(&c) == Received::New
            && c.opcode == P_CONTROL_SOFT_RESET_V1
            && i == 0
        {
            self.keys[0]
                .reliable
                .send(P_CONTROL_SOFT_RESET_V1, Vec::new());
        }
        self.run_key(now, i, auth, out);
        self.flush(now, out);
    }

    /// Feeds a key's in-order messages to TLS and acts on what comes out.
    fn run_key(
        &mut self,
        now: Instant,
        i: usize,
        auth: &mut Authenticate<'_>,
        out: &mut Vec<Event>,
    ) {
        while let Some((opcode, payload)) = self.keys[i].reliable.next_message() {
            match opcode {
                P_CONTROL_HARD_RESET_CLIENT_V2 => {
                    self.keys[i]
                        .reliable
                        .send(P_CONTROL_HARD_RESET_SERVER_V2, Vec::new());
                }
                P_CONTROL_SOFT_RESET_V1 => {}
                P_CONTROL_V1 => {
                    let k = &mut self.keys[i];
                    let mut rd = &payload[..];
                    while !rd.is_empty() {
                        match k.tls.read_tls(&mut rd) {
                            Ok(0) | Err(_) => break,
                            Ok(_) => {}
                        }
                        if let Err(e) = k.tls.process_new_packets() {
                            // the alert rustls queued goes out with the next flush
                            self.close(out, &format!("TLS failed: {e}"));
                            return;
                        }
                    }
                }
                _ => self.dropped.malformed += 1,
            }
        }
        // TLS plaintext: the key exchange, then text messages
        let k = &mut self.keys[i];
        let mut buf = [0u8; 4096];
        loop {
            match k.tls.reader().read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => k.plain.extend_from_slice(&buf[..n]),
            }
        }
        if k.client_keys.is_none() && !k.plain.is_empty() {
            match ClientKeys::parse(&k.plain) {
                Ok((ck, used)) => {
                    k.plain.drain(..used);
                    k.client_keys = Some(ck);
                }
                Err(crate::keys::KeyError::Truncated) => {}
                Err(_) => {
                    self.close(out, "a malformed key exchange");
                    return;
                }
            }
        }
        if !self.keys[i].answered
            && self.keys[i].client_keys.is_some()
            && !self.keys[i].tls.is_handshaking()
        {
            self.answer_login(now, i, auth, out);
        }
        // text messages (NUL-terminated) after the key exchange
        while let Some(end) = self.keys[i].plain.iter().position(|b| *b == 0) {
            let msg: Vec<u8> = self.keys[i].plain.drain(..=end).collect();
            let text = String::from_utf8_lossy(&msg[..end]).trim().to_string();
            self.control_message(&text, i, out);
        }
        if self.keys[i].plain.len() > MAX_TEXT {
            self.close(out, "an overlong control message");
        }
    }

    fn answer_login(
        &mut self,
        now: Instant,
        i: usize,
        auth: &mut Authenticate<'_>,
        out: &mut Vec<Event>,
    ) {
        self.keys[i].answered = true;
        let ck = self.keys[i]
            .client_keys
            .clone()
            .expect("checked by the caller");
        let mut random = [0u8; 64];
        if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random).is_err() {
            self.close(out, "no randomness for the key exchange");
            return;
        }
        let r1: [u8; 32] = random[..32].try_into().expect("32 bytes");
        let r2: [u8; 32] = random[32..].try_into().expect("32 bytes");
        let options = ck.options.replace("tls-client", "tls-server");
        let first = self.user.is_none();
        // OpenVPN 2.6 clients take their keys from TLS's exporter; older ones from the PRF
        let ekm = ck.iv_proto() & IV_PROTO_TLS_KEY_EXPORT != 0;
        // a renegotiation is the same user again, with its password checked again
        let verdict = if first || self.user.as_deref() == Some(ck.user.as_str()) {
            auth(&ck)
        } else {
            Login::Refused
        };
        let _ = self.keys[i]
            .tls
            .writer()
            .write_all(&server_keys(&r1, &r2, &options));
        let cipher = if first {
            Cipher::choose(&ck.ciphers())
        } else {
            self.cipher
        };
        match (verdict, cipher) {
            (Login::Accepted { push }, Some(cipher)) => {
                let mut block = [0u8; 256];
                if ekm {
                    if self.keys[i]
                        .tls
                        .export_keying_material(&mut block, EKM_LABEL, None)
                        .is_err()
                    {
                        self.close(out, "no TLS key export");
                        return;
                    }
                } else {
                    block = crate::prf::key_block(
                        &ck.pre_master,
                        (&ck.random1, &ck.random2),
                        (&r1, &r2),
                        &self.remote.0,
                        &self.local.0,
                    );
                }
                let keys = DataKeys::from_block(&block);
                // a CBC channel's HMAC is the client's `auth` (SoftEther's configs: SHA1)
                let auth = Auth::from_options(&ck.options);
                self.keys[i].data = Some(DataChannel::with_auth(cipher, auth, &keys));
                if first {
                    self.ekm = ekm;
                    self.cipher = Some(cipher);
                    self.push = push;
                    self.data_v2 = ck.iv_proto() & IV_PROTO_DATA_V2 != 0;
                    self.user = Some(ck.user.clone());
                    // OpenVPN 2.6 servers push at once; a PUSH_REQUEST gets it again
                    let reply = self.push_reply();
                    self.text(i, &reply);
                    out.push(Event::Up {
                        user: ck.user.clone(),
                        cipher,
                        peer_info: ck.peer_info.clone(),
                        options: ck.options.clone(),
                    });
                } else if let Some(old) = self.keys.get_mut(1) {
                    // the older key stays a while for packets on their way
                    old.retire_at = Some(now + LAME_DUCK);
                }
            }
            _ => {
                self.text(i, "AUTH_FAILED");
                self.flush(now, out);
                // the client reads AUTH_FAILED and leaves; nothing more is served
                self.close(out, "authentication failed");
            }
        }
    }

    /// The push reply: the caller's options, then keepalive, peer-id, cipher and the key
    /// derivation.
    fn push_reply(&self) -> String {
        let mut r = String::from("PUSH_REPLY");
        for o in &self.push {
            r.push(',');
            r.push_str(o);
        }
        r.push_str(&format!(
            ",ping {},ping-restart {}",
            PING_INTERVAL.as_secs(),
            PING_RESTART.as_secs()
        ));
        if self.data_v2 {
            r.push_str(&format!(",peer-id {}", self.peer_id));
        }
        if let Some(c) = self.cipher {
            r.push_str(&format!(",cipher {}", c.name()));
        }
        if self.ekm {
            r.push_str(",key-derivation tls-ekm");
        }
        r
    }

    /// A control text message (one TLS record, NUL-terminated).
    fn text(&mut self, i: usize, text: &str) {
        let mut m = text.as_bytes().to_vec();
        m.push(0);
        let _ = self.keys[i].tls.writer().write_all(&m);
    }

    fn control_message(&mut self, text: &str, i: usize, out: &mut Vec<Event>) {
        if text == "PUSH_REQUEST" {
            if self.user.is_some() {
                let reply = self.push_reply();
                self.text(i, &reply);
            }
        } else if text == "EXIT" || text.starts_with("EXIT,") {
            self.close(out, "the client left");
        }
    }

    fn handle_data(&mut self, now: Instant, key_id: u8, bytes: &[u8], out: &mut Vec<Event>) {
        let Some(k) = self.keys.iter_mut().find(|k| k.key_id == key_id) else {
            self.dropped.wrong_session += 1;
            return;
        };
        let Some(data) = k.data.as_mut() else {
            self.dropped.malformed += 1;
            return;
        };
        match data.open(bytes) {
            Ok(payload) => {
                self.last_received = now;
                if payload == PING {
                    return;
                }
                if payload.len() == 17 && payload[..16] == OCC_MAGIC && payload[16] == OCC_EXIT {
                    self.close(out, "the client left");
                    return;
                }
                out.push(Event::Packet(payload));
            }
            Err(DataError::Truncated) => self.dropped.malformed += 1,
            Err(DataError::Forged) => self.dropped.forged += 1,
            Err(DataError::Replayed) => self.dropped.replayed += 1,
        }
    }

    /// An inner packet (or frame) to the client, on the newest key with a data channel.
    pub fn send(&mut self, now: Instant, payload: &[u8], out: &mut Vec<Event>) {
        if self.closed {
            return;
        }
        let peer_id = self.data_v2.then_some(self.peer_id);
        let Some(k) = self.keys.iter_mut().find(|k| k.data.is_some()) else {
            return;
        };
        let header = DataHeader {
            key_id: k.key_id,
            peer_id,
        };
        let mut p = Vec::with_capacity(payload.len() + 24);
        if k.data
            .as_mut()
            .and_then(|d| d.seal(header, payload, &mut p))
            .is_some()
        {
            self.last_sent = now;
            out.push(Event::Transmit(p));
        }
    }

    /// TLS output into control messages, then what the reliable layer has to send.
    fn flush(&mut self, now: Instant, out: &mut Vec<Event>) {
        let mut spent = false;
        for k in &mut self.keys {
            let mut tls_out = Vec::new();
            while k.tls.wants_write() {
                if k.tls.write_tls(&mut tls_out).is_err() {
                    break;
                }
            }
            for chunk in tls_out.chunks(CONTROL_CHUNK) {
                k.reliable.send(P_CONTROL_V1, chunk.to_vec());
            }
            let mut packets = Vec::new();
            k.reliable
                .transmit(now, k.key_id, self.local, self.remote, &mut packets);
            if !packets.is_empty() {
                self.last_sent = now;
            }
            for p in packets {
                let Some(t) = self.tls_crypt.as_mut() else {
                    out.push(Event::Transmit(p));
                    continue;
                };
                let mut wrapped = Vec::new();
                if t.wrap(&p, &mut wrapped).is_some() {
                    out.push(Event::Transmit(wrapped));
                } else {
                    spent = true;
                }
            }
        }
        // a replaced key goes when its time is up
        self.keys.retain(|k| k.retire_at.is_none_or(|t| t > now));
        if spent {
            self.close(out, "tls-crypt packet ids ran out");
        }
    }

    /// Timers: retransmissions, pings, the handshake window, silence.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<Event>) {
        if self.closed {
            return;
        }
        if now.saturating_duration_since(self.last_received) >= PING_RESTART {
            self.close(out, "the client went silent");
            return;
        }
        if self.keys.iter().any(|k| {
            k.data.is_none() && now.saturating_duration_since(k.started) >= HANDSHAKE_WINDOW
        }) {
            if self.user.is_none() {
                self.close(out, "the handshake did not finish in time");
                return;
            }
            // a renegotiation that failed: keep the old key
            self.keys.retain(|k| k.data.is_some());
        }
        self.flush(now, out);
        if self.user.is_some() && now.saturating_duration_since(self.last_sent) >= PING_INTERVAL {
            self.send(now, &PING, out);
        }
    }

    /// When [`Session::handle_timeout`] is next needed.
    pub fn next_timeout(&self) -> Instant {
        let mut t = self.last_received + PING_RESTART;
        if self.user.is_some() {
            t = t.min(self.last_sent + PING_INTERVAL);
        }
        for k in &self.keys {
            if let Some(r) = k.retire_at {
                t = t.min(r);
            }
            if let Some(r) = k.reliable.next_timeout() {
                t = t.min(r);
            }
            if k.data.is_none() {
                t = t.min(k.started + HANDSHAKE_WINDOW);
            }
        }
        t
    }

    fn close(&mut self, out: &mut Vec<Event>, why: &str) {
        if !self.closed {
            self.closed = true;
            out.push(Event::Closed(why.to_string()));
        }
    }
}
