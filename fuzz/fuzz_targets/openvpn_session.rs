//! OpenVPN's parsers and a server session fed arbitrary packets: control packets, acks, data
//! packets, key method 2 messages, TCP framing, the data channel's open with a fixed key;
//! tls-crypt's key file parser and unwrap, a first packet taken as tls-crypt or plain, and a
//! tls-crypt session fed raw packets and packets wrapped with the right key.
//! Malformed input is dropped and counted, never a panic.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use etherhub_openvpn::data::{Auth, Cipher, DataChannel};
use etherhub_openvpn::keys::{ClientKeys, DataKeys};
use etherhub_openvpn::packet::{looks_like_openvpn, Control, DataHeader, Framer, SessionId};
use etherhub_openvpn::session::{Login, Session, Wrapping};
use etherhub_openvpn::tls_crypt::{Role, StaticKey, TlsCrypt};
use libfuzzer_sys::fuzz_target;

fn tls() -> Arc<rustls::ServerConfig> {
    static CONFIG: OnceLock<Arc<rustls::ServerConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
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
        })
        .clone()
}

fuzz_target!(|data: &[u8]| {
    let _ = looks_like_openvpn(data);
    let _ = Control::parse(data);
    let _ = DataHeader::parse(data);
    let _ = ClientKeys::parse(data);
    let mut framer = Framer::default();
    let _ = framer.feed(data, &mut |p| {
        let _ = Control::parse(p);
    });
    let keys = DataKeys::from_block(&[7u8; 256]);
    let _ = DataChannel::new(Cipher::Aes256Gcm, &keys).open(data);
    let _ = DataChannel::with_auth(Cipher::Aes128Cbc, Auth::Sha1, &keys).open(data);
    let _ = StaticKey::parse(&String::from_utf8_lossy(data));
    let key = StaticKey::from_bytes([0x42; 256]);
    let _ = TlsCrypt::new(&key, Role::Server, 0).unwrap(data);

    let now = Instant::now();
    let client = SessionId([9; 8]);
    let mut reset = Vec::new();
    Control {
        opcode: 7,
        key_id: 0,
        session: client,
        acks: vec![],
        acked_session: None,
        message_id: Some(0),
        payload: &[],
    }
    .emit(&mut reset);
    let mut out = Vec::new();
    // the input as a first packet, to a server that takes tls-crypt or plain
    let either = Wrapping::Either(TlsCrypt::new(&key, Role::Server, 0));
    let _ = Session::accept_with(now, tls(), SessionId([1; 8]), 1, either, data, &mut out);
    out.clear();
    // a tls-crypt session: its packets raw (refused at the unwrap) or wrapped with the key
    // (on to the control channel behind it)
    let mut wrapper = TlsCrypt::new(&key, Role::Client, 7);
    let mut wrapped = Vec::new();
    wrapper.wrap(&reset, &mut wrapped).unwrap();
    let required = Wrapping::TlsCrypt(TlsCrypt::new(&key, Role::Server, 0));
    if let Ok(mut s) =
        Session::accept_with(now, tls(), SessionId([1; 8]), 1, required, &wrapped, &mut out)
    {
        let mut t = now;
        for chunk in data.split(|b| *b == 0xfd) {
            let mut p = chunk.to_vec();
            if p.len() > 9 && p[0] & 2 == 0 {
                p[1..9].copy_from_slice(&client.0);
            }
            let mut w = Vec::new();
            if chunk.first().is_some_and(|b| b & 4 == 0) && wrapper.wrap(&p, &mut w).is_some() {
                p = w;
            }
            s.handle_packet(t, &p, &mut |_| Login::Refused, &mut out);
            t += Duration::from_millis(u64::from(chunk.first().copied().unwrap_or(0)) * 10);
            s.handle_timeout(t, &mut out);
            out.clear();
        }
    }
    let Some(mut s) = Session::accept(now, tls(), SessionId([1; 8]), 1, &reset, &mut out) else {
        return;
    };
    let mut t = now;
    for chunk in data.split(|b| *b == 0xfe) {
        // packets from the client's session (its id put in), or as they come
        let mut p = chunk.to_vec();
        if p.len() > 9 && p[0] & 1 == 0 {
            p[1..9].copy_from_slice(&client.0);
        }
        s.handle_packet(t, &p, &mut |_| Login::Refused, &mut out);
        t += Duration::from_millis(u64::from(chunk.first().copied().unwrap_or(0)) * 10);
        s.handle_timeout(t, &mut out);
        s.send(t, chunk, &mut out);
        out.clear();
    }
});
