//! Records what SoftEther's own tools and server say to each other, for test fixtures: a TLS
//! relay between a SoftEther client (vpncmd) and a SoftEther server (vpnserver) that writes
//! every PACK of each connection to a file.
//!
//! ```text
//! softether_capture LISTEN UPSTREAM OUT_DIR CONNECTIONS
//! softether_capture 127.0.0.1:6443 127.0.0.1:5555 fixtures/softether-5.01.9674/pack 12
//! ```
//!
//! Per connection N it writes `NN-hello.pack` (the server's hello), `NN-login.pack` (the
//! client's login), `NN-login-reply.pack`, then `NN-MM-<function>.call.pack` and
//! `NN-MM-<function>.reply.pack` for each RPC. The relay's certificate is a throwaway one:
//! SoftEther clients do not check the server's. Run it only between namespaces of your own
//! (see `scripts/capture-softether`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use etherhub_pack::Pack;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Splits a recorded direction into HTTP messages (head, body) and then length-prefixed
/// frames; returns (bodies of the HTTP messages, frames).
fn split(stream: &[u8], responses: bool) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut at = 0;
    let mut bodies = Vec::new();
    while stream[at..].starts_with(b"HTTP/")
        || stream[at..].starts_with(b"POST ")
        || stream[at..].starts_with(b"GET ")
    {
        let Some(end) = stream[at..].windows(4).position(|w| w == b"\r\n\r\n") else {
            break;
        };
        let head = String::from_utf8_lossy(&stream[at..at + end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let body_at = at + end + 4;
        let body = stream[body_at..(body_at + len).min(stream.len())].to_vec();
        // the signature POST and pages carry no PACK
        let is_pack = head.contains("application/octet-stream");
        if is_pack || responses && head.starts_with("http/1.1 200") {
            bodies.push(body);
        }
        at = body_at + len;
    }
    let mut frames = Vec::new();
    while stream.len() >= at + 4 {
        let len = u32::from_be_bytes(stream[at..at + 4].try_into().unwrap()) as usize;
        if stream.len() < at + 4 + len {
            break;
        }
        frames.push(stream[at + 4..at + 4 + len].to_vec());
        at += 4 + len;
    }
    (bodies, frames)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    // only well-formed PACKs become fixtures
    if let Err(e) = Pack::parse(bytes) {
        eprintln!("{name}: not a PACK ({e}); skipped");
        return;
    }
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn save(dir: &Path, conn: usize, c2s: &[u8], s2c: &[u8]) {
    let (requests, calls) = split(c2s, false);
    let (responses, replies) = split(s2c, true);
    let names = ["hello", "login-reply"];
    for (i, body) in responses.iter().enumerate().take(2) {
        write(dir, &format!("{conn:02}-{}.pack", names[i]), body);
    }
    if let Some(login) = requests.first() {
        write(dir, &format!("{conn:02}-login.pack"), login);
    }
    for (i, call) in calls.iter().enumerate() {
        let f = Pack::parse(call)
            .ok()
            .and_then(|p| p.str("function_name").map(str::to_string))
            .unwrap_or_else(|| "unknown".into());
        write(dir, &format!("{conn:02}-{i:02}-{f}.call.pack"), call);
        if let Some(r) = replies.get(i) {
            write(dir, &format!("{conn:02}-{i:02}-{f}.reply.pack"), r);
        }
    }
    eprintln!(
        "connection {conn}: {} requests, {} calls, {} replies",
        requests.len(),
        calls.len(),
        replies.len()
    );
}

/// Copies `from` to `to` until `from` ends; everything copied.
async fn pump<R, W>(mut from: R, mut to: W) -> Vec<u8>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut log = Vec::new();
    let mut b = vec![0u8; 65536];
    loop {
        let n = from.read(&mut b).await.unwrap_or(0);
        if n == 0 {
            let _ = to.shutdown().await;
            return log;
        }
        log.extend_from_slice(&b[..n]);
        if to.write_all(&b[..n]).await.is_err() {
            return log;
        }
    }
}

async fn relay(
    client: TcpStream,
    upstream: SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    connector: tokio_rustls::TlsConnector,
) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let c = acceptor.accept(client).await?;
    let s = TcpStream::connect(upstream).await?;
    let name = ServerName::IpAddress(upstream.ip().into());
    let s = connector.connect(name, s).await?;
    let (cr, cw) = tokio::io::split(c);
    let (sr, sw) = tokio::io::split(s);
    Ok(tokio::join!(pump(cr, sw), pump(sr, cw)))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: softether_capture LISTEN UPSTREAM OUT_DIR CONNECTIONS");
        std::process::exit(2);
    }
    let listen: SocketAddr = args[1].parse().expect("LISTEN: an address:port");
    let upstream: SocketAddr = args[2].parse().expect("UPSTREAM: an address:port");
    let dir = PathBuf::from(&args[3]);
    let count: usize = args[4].parse().expect("CONNECTIONS: a number");
    std::fs::create_dir_all(&dir).unwrap();

    let cert = rcgen::generate_simple_self_signed(vec!["capture".into()]).unwrap();
    let server =
        etherhub_admin::tls_server_config(cert.cert.der().to_vec(), cert.key_pair.serialize_der())
            .unwrap();
    // SoftEther's tools take any certificate; the relay records, it does not trust
    let client = etherhub_admin::tls_client_config_any_cert().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(server);
    let connector = tokio_rustls::TlsConnector::from(client);
    let listener = TcpListener::bind(listen).await.unwrap();
    for conn in 0..count {
        let (s, _) = listener.accept().await.unwrap();
        match relay(s, upstream, acceptor.clone(), connector.clone()).await {
            Ok((c2s, s2c)) => save(&dir, conn, &c2s, &s2c),
            Err(e) => eprintln!("connection {conn}: {e}"),
        }
    }
}
