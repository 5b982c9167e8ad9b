//! OpenVPN's parsers and a server session fed arbitrary packets: control packets, acks, data
//! packets, key method 2 messages, TCP framing, the data channel's open with a fixed key.
//! Malformed input is dropped and counted, never a panic.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use etherhub_openvpn::data::{Auth, Cipher, DataChannel};
use etherhub_openvpn::keys::{ClientKeys, DataKeys};
use etherhub_openvpn::packet::{looks_like_openvpn, Control, DataHeader, Framer, SessionId};
use etherhub_openvpn::session::{Login, Session};
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
