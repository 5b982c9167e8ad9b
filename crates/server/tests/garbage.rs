//! Garbage on every listener of the real binary (free loopback ports, no root): random,
//! truncated and oversized UDP datagrams, non-TLS and broken-TLS bytes, half-open connections,
//! slowloris on the TLS handshake and on the HTTP head. The connection limits
//! (`MaxConnectionsPerIP`, `MaxUnestablishedConnections`) refuse what is over them, and the
//! server keeps answering real clients throughout and afterwards.

use rand::{Rng, RngCore};
use rustls::pki_types::ServerName;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

mod common;

use common::loopback::LoopbackServer;
use common::ETHERHUB;

fn start(per_ip: u32, unestablished: u32) -> LoopbackServer {
    let r = LoopbackServer::start_with(|cfg| {
        let s = cfg.root.folder_or_create("ServerConfiguration");
        s.set_u32("MaxConnectionsPerIP", per_ip);
        s.set_u32("MaxUnestablishedConnections", unestablished);
    });
    // let the probe connection above be closed and forgotten
    std::thread::sleep(Duration::from_millis(200));
    r
}

fn tls() -> tokio_rustls::TlsConnector {
    tokio_rustls::TlsConnector::from(etherhub_admin::tls_client_config_any_cert().unwrap())
}

/// A TCP connection to the server from source address `from` (any 127/8 address).
async fn connect_from(from: &str, port: u16) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))?;
    s.connect(SocketAddr::from(([127, 0, 0, 1], port))).await
}

/// A real admin call over TLS from `from`: the JSON-RPC `Test` method with an empty password
/// (allowed from loopback). True when it answered with a result.
async fn real_call(from: &str, port: u16) -> bool {
    let go = async {
        let tcp = connect_from(from, port).await.ok()?;
        let name = ServerName::try_from("etherhub").unwrap();
        let mut s = tls().connect(name, tcp).await.ok()?;
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"Test","params":{"IntValue_u32":1}}"#;
        let req = format!(
            "POST /api/ HTTP/1.1\r\nHost: x\r\nX-VPNADMIN-PASSWORD: \r\nConnection: close\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.ok()?;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        let text = String::from_utf8_lossy(&out);
        Some(text.starts_with("HTTP/1.1 200") && text.contains("\"result\""))
    };
    tokio::time::timeout(Duration::from_secs(10), go)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// True when the server closes `s` within `within` (whatever it says first, a TLS alert say).
async fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    let mut b = [0u8; 512];
    let end = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(end, s.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

fn udp_garbage(port: u16) -> u64 {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(("127.0.0.1", port)).unwrap();
    let mut rng = rand::thread_rng();
    let mut sent = 0;
    let end = Instant::now() + Duration::from_secs(5);
    let mut buf = vec![0u8; 65_507];
    for i in 0..30_000u32 {
        if Instant::now() > end {
            break;
        }
        let len = match i % 10 {
            // WireGuard types with lengths one off the exact ones
            0 => [147, 149, 91, 93, 63, 65, 31, 0, 1, 4][(i / 10 % 10) as usize],
            // oversized
            1 if i % 1000 == 1 => 65_507,
            _ => rng.gen_range(0..1500),
        };
        rng.fill_bytes(&mut buf[..len]);
        if len > 0 && i % 2 == 0 {
            buf[0] = rng.gen_range(1..=4);
            buf[1..4.min(len)].fill(0);
        }
        if sock.send(&buf[..len]).is_ok() {
            sent += 1;
        }
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_every_listener_and_connection_limits() {
    let mut s = start(4, 6);
    let port = s.port;
    assert!(real_call("127.0.0.1", port).await, "server not answering");

    // slowloris on the TLS handshake and on the HTTP head, running while the rest goes on
    let slow_tls = tokio::spawn(async move {
        let mut c = connect_from("127.0.0.9", port).await.unwrap();
        let hello = [
            0x16u8, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ];
        let start = Instant::now();
        for b in hello.iter().cycle().take(30) {
            if c.write_all(&[*b]).await.is_err() {
                break;
            }
            if closed_by_server(&mut c, Duration::from_millis(700)).await {
                return Some(start.elapsed());
            }
        }
        None
    });
    let slow_http = tokio::spawn(async move {
        let tcp = connect_from("127.0.0.10", port).await.unwrap();
        let name = ServerName::try_from("etherhub").unwrap();
        let mut c = tls().connect(name, tcp).await.unwrap();
        let start = Instant::now();
        for b in b"POST /api/ HTTP/1.1\r\nHost: slow\r\nX-Dribble: "
            .iter()
            .cycle()
            .take(40)
        {
            if c.write_all(&[*b]).await.is_err() || c.flush().await.is_err() {
                return Some(start.elapsed());
            }
            let mut buf = [0u8; 256];
            match tokio::time::timeout(Duration::from_millis(500), c.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
                // a 4xx answer then close is fine too
                Ok(Ok(_)) => return Some(start.elapsed()),
                Err(_) => {}
            }
        }
        None
    });

    // UDP: random, truncated, oversized datagrams
    let sent = tokio::task::spawn_blocking({
        let udp = s.udp;
        move || udp_garbage(udp)
    })
    .await
    .unwrap();
    assert!(sent > 1000, "only {sent} datagrams sent");

    // TCP garbage: not TLS, and TLS record headers followed by junk
    for i in 0..20u8 {
        let mut c = connect_from("127.0.0.5", port).await.unwrap();
        let mut junk = vec![0u8; 600];
        rand::thread_rng().fill_bytes(&mut junk);
        junk[0] = if i % 2 == 0 { 0x16 } else { b'G' };
        let _ = c.write_all(&junk).await;
        assert!(
            closed_by_server(&mut c, Duration::from_secs(11)).await,
            "garbage connection {i} was not closed"
        );
    }
    assert!(
        real_call("127.0.0.1", port).await,
        "no answer after garbage"
    );

    // the slow ones were cut off by the handshake and head deadlines (10 s)
    let slow_tls = slow_tls.await.unwrap();
    let slow_http = slow_http.await.unwrap();
    let slow_tls = slow_tls.expect("TLS slowloris never closed");
    let slow_http = slow_http.expect("HTTP slowloris never closed");
    assert!(slow_tls < Duration::from_secs(13), "{slow_tls:?}");
    assert!(slow_http < Duration::from_secs(13), "{slow_http:?}");

    // half-open connections: the per-address limit (4) refuses the fifth from 127.0.0.2 ...
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect_from("127.0.0.2", port).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut over = connect_from("127.0.0.2", port).await.unwrap();
    assert!(
        closed_by_server(&mut over, Duration::from_secs(2)).await,
        "fifth connection from one address was not refused"
    );
    // ... while another address is served
    assert!(real_call("127.0.0.3", port).await, "other address refused");
    // and the unestablished limit (6) refuses anyone once six handshakes are pending
    for _ in 0..2 {
        held.push(connect_from("127.0.0.4", port).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut over = connect_from("127.0.0.6", port).await.unwrap();
    assert!(
        closed_by_server(&mut over, Duration::from_secs(2)).await,
        "connection over MaxUnestablishedConnections was not refused"
    );
    for c in held.iter_mut() {
        // the held ones are still open (they are only refused later by the handshake timeout)
        let mut b = [0u8; 1];
        assert!(
            tokio::time::timeout(Duration::from_millis(10), c.read(&mut b))
                .await
                .is_err(),
            "a held connection was closed early"
        );
    }
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        real_call("127.0.0.2", port).await,
        "no answer after the limits"
    );

    assert!(s.alive(), "server died");
    assert!(real_call("127.0.0.1", port).await, "no answer at the end");
    let out = Command::new(ETHERHUB)
        .args([
            "cmd",
            &format!("127.0.0.1:{port}"),
            "/SERVER",
            "/CMD",
            "ServerStatusGet",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let log = s.log();
    assert!(
        log.contains("security: TCP connection refused by a connection limit"),
        "refusals not logged:\n{log}"
    );
}
