//! A server session driven by an in-process client built from the crate's own layers and a
//! rustls client: the reset, TLS over the reliable channel (with loss), key method 2, the
//! login asked of the caller, the push reply, data both ways, a wrong password, a renegotiation
//! while data flows, forged and replayed packets; the same with tls-crypt, and plain clients
//! refused when it is required. (The stock openvpn client is the acceptance test's; this checks
//! the core alone.)

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etherhub_openvpn::data::{Cipher, DataChannel};
use etherhub_openvpn::keys::{ClientKeys, DataKeys, EKM_LABEL};
use etherhub_openvpn::packet::{
    Control, DataHeader, SessionId, P_CONTROL_HARD_RESET_CLIENT_V2, P_CONTROL_SOFT_RESET_V1,
    P_CONTROL_V1,
};
use etherhub_openvpn::reliable::Reliable;
use etherhub_openvpn::session::{Event, Login, Refused, Session, Wrapping};
use etherhub_openvpn::tls_crypt::{Role, StaticKey, TlsCrypt};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

const CLIENT: SessionId = SessionId([9; 8]);
const SERVER: SessionId = SessionId([7; 8]);

fn configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cert = rcgen::generate_simple_self_signed(vec!["etherhub".into()]).unwrap();
    let der = CertificateDer::from(cert.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der()));
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

/// One key of the test client.
struct ClientKey {
    id: u8,
    reliable: Reliable,
    tls: rustls::ClientConnection,
    plain: Vec<u8>,
    data: Option<DataChannel>,
}

struct Client {
    config: Arc<rustls::ClientConfig>,
    keys: Vec<ClientKey>,
    password: String,
    /// Announces TLS key export (an OpenVPN 2.6 client); else the older PRF is used.
    ekm: bool,
    user: String,
    texts: Vec<String>,
    received: Vec<Vec<u8>>,
    /// The client's tls-crypt state (`None`: plain).
    tls_crypt: Option<TlsCrypt>,
}

impl Client {
    fn new(config: Arc<rustls::ClientConfig>, password: &str, ekm: bool) -> Client {
        let mut c = Client {
            config,
            keys: Vec::new(),
            password: password.into(),
            ekm,
            user: "alice@DEFAULT".into(),
            texts: Vec::new(),
            received: Vec::new(),
            tls_crypt: None,
        };
        c.new_key(0);
        c
    }

    fn new_key(&mut self, id: u8) {
        let tls = rustls::ClientConnection::new(
            self.config.clone(),
            ServerName::try_from("etherhub").unwrap(),
        )
        .unwrap();
        let mut k = ClientKey {
            id,
            reliable: Reliable::default(),
            tls,
            plain: Vec::new(),
            data: None,
        };
        let mut km2 = Vec::new();
        ClientKeys {
            pre_master: [1; 48],
            random1: [2; 32],
            random2: [3; 32],
            options: "V4,dev-type tun,link-mtu 1541,tun-mtu 1500,proto UDPv4,auth SHA1,keysize 128,key-method 2,tls-client".into(),
            user: self.user.clone(),
            password: self.password.clone(),
            peer_info: format!(
                "IV_VER=2.6.14\nIV_PLAT=linux\nIV_NCP=2\nIV_CIPHERS=AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305\nIV_PROTO={}\n",
                if self.ekm { 990 } else { 990 - 8 }
            ),
        }
        .emit(&mut km2);
        k.tls.writer().write_all(&km2).unwrap();
        self.keys.insert(0, k);
    }

    /// The client's packets now (TLS output into control messages, acks, retransmissions).
    fn transmit(&mut self, now: Instant) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for k in &mut self.keys {
            let mut tls_out = Vec::new();
            while k.tls.wants_write() {
                k.tls.write_tls(&mut tls_out).unwrap();
            }
            for chunk in tls_out.chunks(1000) {
                k.reliable.send(P_CONTROL_V1, chunk.to_vec());
            }
            k.reliable.transmit(now, k.id, CLIENT, SERVER, &mut out);
        }
        if let Some(t) = self.tls_crypt.as_mut() {
            for p in &mut out {
                let mut wrapped = Vec::new();
                t.wrap(p, &mut wrapped).unwrap();
                *p = wrapped;
            }
        }
        out
    }

    fn receive(&mut self, p: &[u8]) {
        let (op, key_id) = (p[0] >> 3, p[0] & 7);
        let unwrapped;
        let p = match self.tls_crypt.as_mut() {
            Some(t) if op != 9 && op != 6 => {
                unwrapped = t
                    .unwrap(p)
                    .expect("the server's control packets are wrapped");
                &unwrapped[..]
            }
            _ => p,
        };
        let Some(k) = self.keys.iter_mut().find(|k| k.id == key_id) else {
            return;
        };
        if op == 9 || op == 6 {
            let d = k.data.as_mut().expect("data after keys");
            self.received
                .push(d.open(p).expect("the server's data opens"));
            return;
        }
        let c = Control::parse(p).unwrap();
        assert_eq!(c.session, SERVER);
        k.reliable.receive(&c);
        while let Some((opcode, payload)) = k.reliable.next_message() {
            if opcode == P_CONTROL_V1 {
                let mut rd = &payload[..];
                while !rd.is_empty() {
                    k.tls.read_tls(&mut rd).unwrap();
                    k.tls.process_new_packets().unwrap();
                }
            }
        }
        let mut buf = [0u8; 4096];
        while let Ok(n) = k.tls.reader().read(&mut buf) {
            if n == 0 {
                break;
            }
            k.plain.extend_from_slice(&buf[..n]);
        }
        // the server's key method 2 message: 5 + 64 bytes, then three or four strings
        if k.data.is_none() && k.plain.len() > 69 && !k.tls.is_handshaking() {
            let mut at = 69;
            for _ in 0..4 {
                let len = usize::from(u16::from_be_bytes([k.plain[at], k.plain[at + 1]]));
                at += 2 + len;
            }
            let r1: [u8; 32] = k.plain[5..37].try_into().unwrap();
            let r2: [u8; 32] = k.plain[37..69].try_into().unwrap();
            k.plain.drain(..at);
            let mut block = [0u8; 256];
            if self.ekm {
                k.tls
                    .export_keying_material(&mut block, EKM_LABEL, None)
                    .unwrap();
            } else {
                block = etherhub_openvpn::prf::key_block(
                    &[1; 48],
                    (&[2; 32], &[3; 32]),
                    (&r1, &r2),
                    &CLIENT.0,
                    &SERVER.0,
                );
            }
            let server = DataKeys::from_block(&block);
            let mine = DataKeys {
                send: server.receive.clone(),
                receive: server.send.clone(),
            };
            k.data = Some(DataChannel::new(Cipher::Aes256Gcm, &mine));
        }
        while let Some(end) = k.plain.iter().position(|b| *b == 0) {
            let m: Vec<u8> = k.plain.drain(..=end).collect();
            self.texts
                .push(String::from_utf8_lossy(&m[..end]).into_owned());
        }
    }

    fn data(&mut self, payload: &[u8]) -> Vec<u8> {
        let k = self.keys.iter_mut().find(|k| k.data.is_some()).unwrap();
        let mut p = Vec::new();
        let h = DataHeader {
            key_id: k.id,
            peer_id: Some(3),
        };
        k.data.as_mut().unwrap().seal(h, payload, &mut p).unwrap();
        p
    }
}

fn transmits(events: &mut Vec<Event>) -> Vec<Vec<u8>> {
    let mut t = Vec::new();
    events.retain(|e| match e {
        Event::Transmit(p) => {
            t.push(p.clone());
            false
        }
        _ => true,
    });
    t
}

/// Runs the exchange until `done`, losing every fifth packet each way.
fn run(
    s: &mut Session,
    c: &mut Client,
    now: &mut Instant,
    events: &mut Vec<Event>,
    logins: &mut Vec<String>,
    done: impl Fn(&Client, &[Event]) -> bool,
) {
    let mut n = 0usize;
    for _ in 0..200 {
        if done(c, events) {
            return;
        }
        for p in c.transmit(*now) {
            n += 1;
            if n.is_multiple_of(5) {
                continue;
            }
            s.handle_packet(
                *now,
                &p,
                &mut |k: &ClientKeys| {
                    logins.push(k.user.clone());
                    if k.password == "pw" {
                        Login::Accepted {
                            push: vec![
                                "topology subnet".into(),
                                "ifconfig 192.168.30.10 255.255.255.0".into(),
                                "route-gateway 192.168.30.1".into(),
                            ],
                        }
                    } else {
                        Login::Refused
                    }
                },
                events,
            );
        }
        for p in transmits(events) {
            n += 1;
            if n.is_multiple_of(5) {
                continue;
            }
            c.receive(&p);
        }
        *now += Duration::from_millis(500);
        s.handle_timeout(*now, events);
    }
    panic!("not done: texts {:?}, events {events:?}", c.texts);
}

/// Runs the exchange until the client has its push reply.
fn pushed(
    s: &mut Session,
    c: &mut Client,
    now: &mut Instant,
    events: &mut Vec<Event>,
    logins: &mut Vec<String>,
) {
    run(s, c, now, events, logins, |c, _| {
        c.texts.iter().any(|t| t.starts_with("PUSH_REPLY"))
    });
}

fn start(password: &str) -> (Session, Client, Instant, Vec<Event>) {
    start_with(password, true)
}

fn start_with(password: &str, ekm: bool) -> (Session, Client, Instant, Vec<Event>) {
    start_wrapped(password, ekm, None, Wrapping::Plain).expect("a reset")
}

/// A client with tls-crypt (`client_key`) or without, and a server that takes `wrapping`.
fn start_wrapped(
    password: &str,
    ekm: bool,
    client_key: Option<&StaticKey>,
    wrapping: Wrapping,
) -> Result<(Session, Client, Instant, Vec<Event>), Refused> {
    let (server_config, client_config) = configs();
    let mut c = Client::new(client_config, password, ekm);
    c.tls_crypt = client_key.map(|k| TlsCrypt::new(k, Role::Client, 1_700_000_000));
    let now = Instant::now();
    // the client's reset is message 0 of its side; its ClientHello follows as message 1 (lost
    // here, so it comes again when its timer runs)
    c.keys[0]
        .reliable
        .send(P_CONTROL_HARD_RESET_CLIENT_V2, Vec::new());
    let first = c.transmit(now).remove(0);
    let mut events = Vec::new();
    let s = Session::accept_with(now, server_config, SERVER, 3, wrapping, &first, &mut events)?;
    Ok((s, c, now, events))
}

/// A tls-crypt key (any 256 bytes are one).
fn static_key(fill: u8) -> StaticKey {
    let mut k = [0u8; 256];
    for (i, b) in k.iter_mut().enumerate() {
        *b = fill ^ i as u8;
    }
    StaticKey::from_bytes(k)
}

fn server_tls_crypt(key: &StaticKey) -> TlsCrypt {
    TlsCrypt::new(key, Role::Server, 1_700_000_050)
}

#[test]
fn a_client_logs_in_gets_its_push_reply_and_exchanges_data() {
    let (mut s, mut c, mut now, mut events) = start("pw");
    let mut logins = Vec::new();
    pushed(&mut s, &mut c, &mut now, &mut events, &mut logins);
    let reply = c
        .texts
        .iter()
        .find(|t| t.starts_with("PUSH_REPLY"))
        .unwrap();
    assert_eq!(
        reply,
        "PUSH_REPLY,topology subnet,ifconfig 192.168.30.10 255.255.255.0,route-gateway 192.168.30.1,ping 5,ping-restart 30,peer-id 3,cipher AES-256-GCM,key-derivation tls-ekm"
    );
    assert_eq!(logins, vec!["alice@DEFAULT"]);
    assert!(events.iter().any(|e| matches!(e, Event::Up { user, cipher: Cipher::Aes256Gcm, .. } if user == "alice@DEFAULT")));
    assert_eq!(s.user(), Some("alice@DEFAULT"));
    // data both ways (the acks still in flight are delivered first)
    for p in c.transmit(now) {
        s.handle_packet(now, &p, &mut |_| Login::Refused, &mut events);
    }
    events.clear();
    let p = c.data(b"an IP packet from the client");
    s.handle_packet(now, &p, &mut |_| Login::Refused, &mut events);
    assert_eq!(
        events,
        vec![Event::Packet(b"an IP packet from the client".to_vec())]
    );
    // replayed and forged: dropped and counted
    events.clear();
    s.handle_packet(now, &p, &mut |_| Login::Refused, &mut events);
    let mut forged = c.data(b"x");
    let last = forged.len() - 1;
    forged[last] ^= 1;
    s.handle_packet(now, &forged, &mut |_| Login::Refused, &mut events);
    s.handle_packet(now, &p[..10], &mut |_| Login::Refused, &mut events);
    assert!(events.is_empty());
    assert_eq!(
        (s.dropped.replayed, s.dropped.forged, s.dropped.malformed),
        (1, 1, 1)
    );
    s.send(now, b"an IP packet to the client", &mut events);
    for p in transmits(&mut events) {
        c.receive(&p);
    }
    assert_eq!(c.received, vec![b"an IP packet to the client".to_vec()]);
}

#[test]
fn a_wrong_password_gets_auth_failed_and_the_session_ends() {
    let (mut s, mut c, mut now, mut events) = start("wrong");
    let mut logins = Vec::new();
    run(
        &mut s,
        &mut c,
        &mut now,
        &mut events,
        &mut logins,
        |c, _| c.texts.iter().any(|t| t == "AUTH_FAILED"),
    );
    assert!(s.is_closed());
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Closed(why) if why == "authentication failed")));
    assert!(!c.texts.iter().any(|t| t.starts_with("PUSH_REPLY")));
}

#[test]
fn a_renegotiation_moves_data_to_the_new_key_without_a_gap() {
    let (mut s, mut c, mut now, mut events) = start("pw");
    let mut logins = Vec::new();
    pushed(&mut s, &mut c, &mut now, &mut events, &mut logins);
    // the client starts key 1 with a soft reset; data on key 0 still goes meanwhile
    c.new_key(1);
    c.keys[0].reliable.send(P_CONTROL_SOFT_RESET_V1, Vec::new());
    let old = c.keys[1].id;
    assert_eq!(old, 0);
    run(
        &mut s,
        &mut c,
        &mut now,
        &mut events,
        &mut logins,
        |c, _| c.keys[0].data.is_some(),
    );
    events.clear();
    let on_new = c.data(b"after");
    assert_eq!(on_new[0] & 7, 1, "the new key carries it");
    s.handle_packet(now, &on_new, &mut |_| Login::Refused, &mut events);
    assert_eq!(events, vec![Event::Packet(b"after".to_vec())]);
    assert_eq!(logins.len(), 2, "the client logged in again on the new key");
    events.clear();
    s.send(now, b"back", &mut events);
    let back = transmits(&mut events);
    assert_eq!(back[0][0] & 7, 1);
    c.receive(&back[0]);
    assert_eq!(c.received.last().unwrap(), b"back");
}

#[test]
fn a_client_without_tls_key_export_gets_keys_from_the_older_prf() {
    let (mut s, mut c, mut now, mut events) = start_with("pw", false);
    let mut logins = Vec::new();
    pushed(&mut s, &mut c, &mut now, &mut events, &mut logins);
    let reply = c
        .texts
        .iter()
        .find(|t| t.starts_with("PUSH_REPLY"))
        .unwrap();
    assert!(!reply.contains("tls-ekm"), "{reply}");
    for p in c.transmit(now) {
        s.handle_packet(now, &p, &mut |_| Login::Refused, &mut events);
    }
    events.clear();
    let p = c.data(b"keys from the PRF");
    s.handle_packet(now, &p, &mut |_| Login::Refused, &mut events);
    assert_eq!(events, vec![Event::Packet(b"keys from the PRF".to_vec())]);
}

#[test]
fn a_renegotiation_as_another_user_ends_the_session() {
    let (mut s, mut c, mut now, mut events) = start("pw");
    let mut logins = Vec::new();
    pushed(&mut s, &mut c, &mut now, &mut events, &mut logins);
    // the new key's login names someone else (whose password the caller would take)
    c.user = "mallory@DEFAULT".into();
    c.new_key(1);
    c.keys[0].reliable.send(P_CONTROL_SOFT_RESET_V1, Vec::new());
    run(
        &mut s,
        &mut c,
        &mut now,
        &mut events,
        &mut logins,
        |c, _| c.texts.iter().any(|t| t == "AUTH_FAILED"),
    );
    assert!(s.is_closed());
    assert_eq!(
        logins,
        vec!["alice@DEFAULT"],
        "mallory's login was not even asked"
    );
}

#[test]
fn a_tls_crypt_client_logs_in_renegotiates_and_exchanges_data_all_wrapped() {
    let key = static_key(0x5a);
    let (mut s, mut c, mut now, mut events) = start_wrapped(
        "pw",
        true,
        Some(&key),
        Wrapping::Either(server_tls_crypt(&key)),
    )
    .expect("a wrapped reset");
    assert!(s.is_tls_crypt());
    let mut logins = Vec::new();
    // (the client unwraps every control packet of the server's, or fails the test)
    pushed(&mut s, &mut c, &mut now, &mut events, &mut logins);
    assert_eq!(logins, vec!["alice@DEFAULT"]);
    for p in c.transmit(now) {
        s.handle_packet(now, &p, &mut |_| Login::Refused, &mut events);
    }
    events.clear();
    let p = c.data(b"data is not wrapped");
    assert_eq!(p[0] >> 3, 9);
    s.handle_packet(now, &p, &mut |_| Login::Refused, &mut events);
    assert_eq!(events, vec![Event::Packet(b"data is not wrapped".to_vec())]);
    // a renegotiation: the soft reset and what follows, wrapped too
    c.new_key(1);
    c.keys[0].reliable.send(P_CONTROL_SOFT_RESET_V1, Vec::new());
    run(
        &mut s,
        &mut c,
        &mut now,
        &mut events,
        &mut logins,
        |c, _| c.keys[0].data.is_some(),
    );
    events.clear();
    let on_new = c.data(b"after");
    s.handle_packet(now, &on_new, &mut |_| Login::Refused, &mut events);
    assert_eq!(events, vec![Event::Packet(b"after".to_vec())]);
    s.send(now, b"back", &mut events);
    for p in transmits(&mut events) {
        c.receive(&p);
    }
    assert_eq!(c.received.last().unwrap(), b"back");
    assert_eq!(s.dropped, Default::default(), "nothing dropped on the way");
}

#[test]
fn a_tls_crypt_session_drops_plain_forged_replayed_and_truncated_control_packets() {
    let key = static_key(1);
    let (mut s, mut c, mut now, mut events) = start_wrapped(
        "pw",
        true,
        Some(&key),
        Wrapping::TlsCrypt(server_tls_crypt(&key)),
    )
    .unwrap();
    let mut logins = Vec::new();
    pushed(&mut s, &mut c, &mut now, &mut events, &mut logins);
    for p in c.transmit(now) {
        s.handle_packet(now, &p, &mut |_| Login::Refused, &mut events);
    }
    events.clear();
    // a PUSH_REQUEST as a wrapped packet the server takes once
    c.keys[0].tls.writer().write_all(b"PUSH_REQUEST\0").unwrap();
    let wrapped = c.transmit(now).remove(0);
    // its retransmission, plain
    let t = c.tls_crypt.take();
    let plain = c.transmit(now + Duration::from_secs(3));
    c.tls_crypt = t;
    assert!(!plain.is_empty());
    s.handle_packet(now, &wrapped, &mut |_| Login::Refused, &mut events);
    assert!(!transmits(&mut events).is_empty(), "acknowledged");
    let before = s.dropped;
    s.handle_packet(now, &wrapped, &mut |_| Login::Refused, &mut events);
    let mut forged = wrapped.clone();
    let last = forged.len() - 1;
    forged[last] ^= 0x40;
    s.handle_packet(now, &forged, &mut |_| Login::Refused, &mut events);
    s.handle_packet(now, &wrapped[..40], &mut |_| Login::Refused, &mut events);
    for p in &plain {
        // the same message (a retransmission) without tls-crypt
        s.handle_packet(now, p, &mut |_| Login::Refused, &mut events);
    }
    assert!(transmits(&mut events).is_empty(), "none of them answered");
    assert_eq!(s.dropped.replayed - before.replayed, 1);
    assert_eq!(
        s.dropped.forged - before.forged,
        1 + plain.len() as u64,
        "the forged one and the plain ones"
    );
    assert_eq!(s.dropped.malformed - before.malformed, 1);
    assert!(!s.is_closed());
    // another client's packet (the key is everyone's), its clock ahead: not this session's,
    // and its packet id is not taken (which would refuse this client's older time)
    let mut other = TlsCrypt::new(&key, Role::Client, 1_800_000_000);
    let mut theirs = Vec::new();
    let mut p = Vec::new();
    Control {
        opcode: P_CONTROL_V1,
        key_id: 0,
        session: SessionId([5; 8]),
        acks: vec![],
        acked_session: None,
        message_id: Some(9),
        payload: b"x",
    }
    .emit(&mut p);
    other.wrap(&p, &mut theirs).unwrap();
    s.handle_packet(now, &theirs, &mut |_| Login::Refused, &mut events);
    assert_eq!(s.dropped.wrong_session - before.wrong_session, 1);
    c.keys[0].tls.writer().write_all(b"PUSH_REQUEST\0").unwrap();
    for p in c.transmit(now + Duration::from_secs(3)) {
        s.handle_packet(now, &p, &mut |_| Login::Refused, &mut events);
    }
    assert!(
        !transmits(&mut events).is_empty(),
        "this client is still heard"
    );
    assert_eq!(s.dropped.replayed - before.replayed, 1);
}

#[test]
fn first_packets_follow_the_servers_wrapping() {
    let key = static_key(7);
    let other = static_key(8);
    // tls-crypt required: a plain client and one with another key are refused
    let plain = start_wrapped("pw", true, None, Wrapping::TlsCrypt(server_tls_crypt(&key)));
    assert_eq!(plain.err(), Some(Refused::NotWrapped));
    let wrong = start_wrapped(
        "pw",
        true,
        Some(&other),
        Wrapping::TlsCrypt(server_tls_crypt(&key)),
    );
    assert_eq!(wrong.err(), Some(Refused::NotWrapped));
    // either: a plain client gets a plain session, and logs in
    let (mut s, mut c, mut now, mut events) =
        start_wrapped("pw", true, None, Wrapping::Either(server_tls_crypt(&key))).unwrap();
    assert!(!s.is_tls_crypt());
    pushed(&mut s, &mut c, &mut now, &mut events, &mut Vec::new());
    // a plain server takes no wrapped reset (it is no plain one)
    let wrapped = start_wrapped("pw", true, Some(&key), Wrapping::Plain);
    assert_eq!(wrapped.err(), Some(Refused::Malformed));
    // a wrapped packet that is no reset
    let (server_config, _) = configs();
    let mut t = TlsCrypt::new(&key, Role::Client, 5);
    let mut ack = Vec::new();
    let mut plain_ack = Vec::new();
    Control {
        opcode: 5,
        key_id: 0,
        session: CLIENT,
        acks: vec![0],
        acked_session: Some(SERVER),
        message_id: None,
        payload: &[],
    }
    .emit(&mut plain_ack);
    t.wrap(&plain_ack, &mut ack).unwrap();
    let r = Session::accept_with(
        Instant::now(),
        server_config,
        SERVER,
        3,
        Wrapping::TlsCrypt(server_tls_crypt(&key)),
        &ack,
        &mut Vec::new(),
    );
    assert_eq!(r.err(), Some(Refused::Malformed));
}
