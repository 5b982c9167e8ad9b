mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use etherhub_admin::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn limits() -> Limits {
    Limits {
        auth_failure_delay: Duration::ZERO,
        head_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(500),
        ..Limits::default()
    }
}

fn request(hub: &str, pw: &str, body: &Value) -> Vec<u8> {
    let body = body.to_string();
    format!("POST /api/ HTTP/1.1\r\nHost: x\r\nX-VPNADMIN-HUBNAME: {hub}\r\nX-VPNADMIN-PASSWORD: {pw}\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

/// Read one response: status code and parsed JSON body (if any).
async fn response<S: tokio::io::AsyncRead + Unpin>(s: &mut S, buf: &mut Vec<u8>) -> (u16, Vec<u8>) {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(n)) = resp.parse(buf) {
            let code = resp.code.unwrap();
            let len: usize = resp
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .map(|h| std::str::from_utf8(h.value).unwrap().parse().unwrap())
                .unwrap();
            while buf.len() < n + len {
                let mut chunk = [0u8; 4096];
                let k = s.read(&mut chunk).await.unwrap();
                assert!(k > 0);
                buf.extend_from_slice(&chunk[..k]);
            }
            let body = buf[n..n + len].to_vec();
            buf.drain(..n + len);
            return (code, body);
        }
        let mut chunk = [0u8; 4096];
        let k = s.read(&mut chunk).await.unwrap();
        assert!(k > 0, "connection closed early");
        buf.extend_from_slice(&chunk[..k]);
    }
}

fn spawn_server() -> tokio::io::DuplexStream {
    let (client, server) = tokio::io::duplex(1 << 16);
    let backend: Arc<dyn Backend> = Arc::new(common::Fake::new());
    let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    tokio::spawn(async move {
        serve_connection_with(server, Ends { peer, local: peer }, backend, &limits()).await
    });
    client
}

#[tokio::test]
async fn keep_alive_calls_and_errors() {
    let mut c = spawn_server();
    let mut buf = Vec::new();
    c.write_all(&request(
        "",
        "serverpw",
        &json!({"jsonrpc": "2.0", "id": "7", "method": "GetPortsUDP", "params": {}}),
    ))
    .await
    .unwrap();
    let (code, body) = response(&mut c, &mut buf).await;
    assert_eq!(code, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v,
        json!({"jsonrpc": "2.0", "id": "7", "result": {"Ports_u32": [443, 992, 1194, 5555]}})
    );

    // Same connection: unknown method.
    c.write_all(&request(
        "",
        "serverpw",
        &json!({"jsonrpc": "2.0", "id": 8, "method": "Nope", "params": {}}),
    ))
    .await
    .unwrap();
    let (_, body) = response(&mut c, &mut buf).await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], -32601);
    assert_eq!(v["id"], 8);

    // Hub admin login.
    c.write_all(&request(
        "DEFAULT",
        "hubpw",
        &json!({"jsonrpc": "2.0", "id": 9, "method": "GetConfig", "params": {}}),
    ))
    .await
    .unwrap();
    let (_, body) = response(&mut c, &mut buf).await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], 52);

    // Wrong password: 401 with a JSON-RPC error that does not say what was wrong.
    c.write_all(&request(
        "DEFAULT",
        "bad",
        &json!({"jsonrpc": "2.0", "id": 10, "method": "Test", "params": {}}),
    ))
    .await
    .unwrap();
    let (code, body) = response(&mut c, &mut buf).await;
    assert_eq!(code, 401);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], 12);
    assert_eq!(v["id"], 10);
    c.write_all(&request(
        "NOHUB",
        "bad",
        &json!({"jsonrpc": "2.0", "id": 10, "method": "Test", "params": {}}),
    ))
    .await
    .unwrap();
    let (_, body2) = response(&mut c, &mut buf).await;
    assert_eq!(body, body2, "unknown hub and wrong password look the same");

    // Bad JSON.
    let raw =
        b"POST /api/ HTTP/1.1\r\nX-VPNADMIN-PASSWORD: serverpw\r\nContent-Length: 3\r\n\r\n{x}";
    c.write_all(raw).await.unwrap();
    let (_, body) = response(&mut c, &mut buf).await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], 38);
}

#[tokio::test]
async fn other_paths_404_and_limits() {
    let mut c = spawn_server();
    let mut buf = Vec::new();
    c.write_all(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (code, _) = response(&mut c, &mut buf).await;
    assert_eq!(code, 404);

    let mut c = spawn_server();
    let big = format!("POST /api/ HTTP/1.1\r\nX-VPNADMIN-HUBNAME: DEFAULT\r\nX-VPNADMIN-PASSWORD: hubpw\r\nContent-Length: {}\r\n\r\n", 9 * 1024 * 1024);
    c.write_all(big.as_bytes()).await.unwrap();
    let (code, _) = response(&mut c, &mut buf).await;
    assert_eq!(code, 413);

    // Slowloris: a head that never completes is dropped.
    let mut c = spawn_server();
    c.write_all(b"POST /api/ HTTP/1.1\r\nX-Slow: ")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut rest))
        .await
        .expect("server must hang up")
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn loopback_tls_round_trip() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cfg = tls_server_config(cert.cert.der().to_vec(), cert.key_pair.serialize_der()).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, peer) = listener.accept().await.unwrap();
        let tls = acceptor.accept(tcp).await.unwrap();
        let backend: Arc<dyn Backend> = Arc::new(common::Fake::new());
        serve_connection_with(tls, Ends { peer, local: peer }, backend, &limits()).await;
    });

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let client_cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_cfg));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = connector
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(&request(
        "",
        "serverpw",
        &json!({"jsonrpc": "2.0", "id": 1, "method": "GetWgServerInfo", "params": {}}),
    ))
    .await
    .unwrap();
    let mut buf = Vec::new();
    let (code, body) = response(&mut tls, &mut buf).await;
    assert_eq!(code, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["result"]["PresharedKey_str"], "PSK=");
}

#[test]
fn tls_config_rejects_garbage_key() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    assert!(tls_server_config(cert.cert.der().to_vec(), vec![1, 2, 3]).is_err());
}
