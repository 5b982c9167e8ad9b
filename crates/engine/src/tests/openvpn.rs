//! OpenVPN through the engine with tls-crypt: an in-process client (the openvpn crate's
//! reliable layer and tls-crypt, a rustls client) logs in; then resets from its address show
//! which of them may start the session over.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etherhub_openvpn::keys::ClientKeys;
use etherhub_openvpn::packet::{
    Control, SessionId, P_CONTROL_HARD_RESET_CLIENT_V2, P_CONTROL_HARD_RESET_SERVER_V2,
    P_CONTROL_V1,
};
use etherhub_openvpn::reliable::Reliable;
use etherhub_openvpn::tls_crypt::{Role, StaticKey, TlsCrypt};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

use super::kit::{hub, user};
use super::GW;
use crate::{Change, Engine};

const LOCAL: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, 1)),
    1194,
);
const FROM: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, 2)),
    40000,
);

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

/// A `dev tap` client (no address lease needed) with tls-crypt, key 0 only.
struct Client {
    session: SessionId,
    server: SessionId,
    reliable: Reliable,
    tls: rustls::ClientConnection,
    tls_crypt: TlsCrypt,
    plain: Vec<u8>,
}

impl Client {
    fn new(config: Arc<rustls::ClientConfig>, key: &StaticKey, session: u8) -> Client {
        let mut tls =
            rustls::ClientConnection::new(config, ServerName::try_from("etherhub").unwrap())
                .unwrap();
        let mut km2 = Vec::new();
        ClientKeys {
            pre_master: [1; 48],
            random1: [2; 32],
            random2: [3; 32],
            options:
                "V4,dev-type tap,link-mtu 1573,tun-mtu 1500,proto UDPv4,key-method 2,tls-client"
                    .into(),
            user: "alice@DEFAULT".into(),
            password: "pw".into(),
            peer_info: "IV_VER=2.6.14\nIV_PLAT=linux\nIV_CIPHERS=AES-256-GCM\nIV_PROTO=990\n"
                .into(),
        }
        .emit(&mut km2);
        tls.writer().write_all(&km2).unwrap();
        let mut reliable = Reliable::default();
        reliable.send(P_CONTROL_HARD_RESET_CLIENT_V2, Vec::new());
        Client {
            session: SessionId([session; 8]),
            server: SessionId::default(),
            reliable,
            tls,
            tls_crypt: TlsCrypt::new(key, Role::Client, 1_700_000_000),
            plain: Vec::new(),
        }
    }

    fn transmit(&mut self, now: Instant) -> Vec<Vec<u8>> {
        let mut tls_out = Vec::new();
        while self.tls.wants_write() {
            self.tls.write_tls(&mut tls_out).unwrap();
        }
        for chunk in tls_out.chunks(1000) {
            self.reliable.send(P_CONTROL_V1, chunk.to_vec());
        }
        let mut plain = Vec::new();
        self.reliable
            .transmit(now, 0, self.session, self.server, &mut plain);
        plain
            .iter()
            .map(|p| {
                let mut w = Vec::new();
                self.tls_crypt.wrap(p, &mut w).unwrap();
                w
            })
            .collect()
    }

    fn receive(&mut self, wrapped: &[u8]) {
        let p = self.tls_crypt.unwrap(wrapped).expect("the server wraps");
        let c = Control::parse(&p).unwrap();
        self.server = c.session;
        self.reliable.receive(&c);
        while let Some((opcode, payload)) = self.reliable.next_message() {
            if opcode == P_CONTROL_V1 {
                let mut rd = &payload[..];
                while !rd.is_empty() {
                    self.tls.read_tls(&mut rd).unwrap();
                    self.tls.process_new_packets().unwrap();
                }
            }
        }
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.tls.reader().read(&mut buf) {
            if n == 0 {
                break;
            }
            self.plain.extend_from_slice(&buf[..n]);
        }
    }

    fn pushed(&self) -> bool {
        self.plain.windows(10).any(|w| w == b"PUSH_REPLY")
    }
}

fn sent(engine: &mut Engine) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    while let Some(t) = engine.poll_transmit() {
        assert_eq!(t.to, FROM);
        v.push(t.contents.to_vec());
    }
    v
}

fn counter(engine: &Engine, name: &str) -> u64 {
    engine
        .counters()
        .into_iter()
        .find(|(p, c, _)| *p == "OpenVPN" && *c == name)
        .map(|(_, _, v)| v)
        .unwrap()
}

/// The OpenVPN sessions on the hub.
fn sessions(engine: &Engine) -> Vec<String> {
    engine
        .hub("DEFAULT")
        .map(|h| {
            h.sessions()
                .into_iter()
                .map(|s| s.name)
                .filter(|n| n.contains("OPENVPN"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_tls_crypt_session_is_started_over_only_by_a_new_tls_crypt_reset() {
    let now = Instant::now();
    let (server_config, client_config) = configs();
    let mut engine = Engine::new(now);
    engine.register(Box::new(crate::openvpn::OpenVpn::new(Some(server_config))));
    engine.apply(now, Change::Hub(hub("DEFAULT", GW)));
    engine.apply(now, user("DEFAULT", "alice"));
    let key = StaticKey::from_bytes([0x17; 256]);
    // tls-crypt not required: the key is used by the clients that have it
    engine.apply(
        now,
        Change::ProtoOptions {
            protocol: "OpenVPN".into(),
            options: vec![
                ("TlsCrypt".into(), "false".into()),
                ("TlsCryptKey".into(), key.to_text()),
            ],
        },
    );
    let mut c = Client::new(client_config.clone(), &key, 9);
    let mut t = now;
    let mut first = None;
    for _ in 0..50 {
        if c.pushed() {
            break;
        }
        for p in c.transmit(t) {
            first.get_or_insert_with(|| p.clone());
            engine.handle_datagram(t, LOCAL, FROM, &p);
        }
        for p in sent(&mut engine) {
            c.receive(&p);
        }
        t += Duration::from_millis(10);
    }
    assert!(c.pushed(), "the client logged in");
    for p in c.transmit(t) {
        engine.handle_datagram(t, LOCAL, FROM, &p);
    }
    sent(&mut engine);
    let before = sessions(&engine);
    assert_eq!(before.len(), 1, "{before:?}");
    assert!(before[0].contains("OPENVPN_L2"), "{before:?}");

    // a plain reset from the client's address: no answer, the session stays
    let mut plain = Vec::new();
    Control {
        opcode: P_CONTROL_HARD_RESET_CLIENT_V2,
        key_id: 0,
        session: SessionId([0x33; 8]),
        acks: vec![],
        acked_session: None,
        message_id: Some(0),
        payload: &[],
    }
    .emit(&mut plain);
    engine.handle_datagram(t, LOCAL, FROM, &plain);
    assert!(sent(&mut engine).is_empty());
    assert_eq!(counter(&engine, "tls_crypt_refused"), 1);
    assert_eq!(sessions(&engine), before);

    // the client's own first reset again (a replay): no restart, dropped as a replay
    engine.handle_datagram(t, LOCAL, FROM, first.as_ref().unwrap());
    assert!(sent(&mut engine).is_empty());
    assert_eq!(counter(&engine, "replayed_dropped"), 1);
    assert_eq!(sessions(&engine), before);

    // the client started over with tls-crypt: a new session answers, the old one goes
    let mut again = Client::new(client_config, &key, 0x44);
    let reset = again.transmit(t).remove(0);
    engine.handle_datagram(t, LOCAL, FROM, &reset);
    let answer = sent(&mut engine);
    assert_eq!(answer.len(), 1);
    let back = again.tls_crypt.unwrap(&answer[0]).unwrap();
    let c = Control::parse(&back).unwrap();
    assert_eq!(
        (c.opcode, c.acked_session),
        (P_CONTROL_HARD_RESET_SERVER_V2, Some(SessionId([0x44; 8])))
    );
    assert!(sessions(&engine).is_empty(), "the old session ended");
}
