//! Bad input on SoftEther's VPN sessions, against the real binary on loopback (no root): a
//! client that logs in as vpnclient does, then sends a frame larger than any MTU, a block
//! larger than SoftEther allows, and a second connection with the session's key from another
//! address. Each is refused and counted; the session and the server go on.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::loopback::LoopbackServer;
use etherhub_config::hash::{challenge_response, hash_user_password};
use etherhub_pack::Pack;
use etherhub_softether::blocks::{BlockReader, BlockWriter, Record};
use etherhub_softether::WATERMARK;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

async fn connect_from(from: &str, port: u16) -> Tls {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))
        .unwrap();
    let tcp = s
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap();
    let tls =
        tokio_rustls::TlsConnector::from(etherhub_admin::tls_client_config_any_cert().unwrap());
    tls.connect(ServerName::try_from("etherhub").unwrap(), tcp)
        .await
        .unwrap()
}

async fn post(s: &mut Tls, path: &str, body: &[u8]) {
    let head = format!(
        "POST {path} HTTP/1.1\r\nConnection: Keep-Alive\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
}

/// One HTTP response's PACK; the bytes read past it stay in `buf`.
async fn answer(s: &mut Tls, buf: &mut Vec<u8>) -> Pack {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            while buf.len() < end + 4 + len {
                read_more(s, buf).await;
            }
            let p = Pack::parse(&buf[end + 4..end + 4 + len]).unwrap();
            buf.drain(..end + 4 + len);
            return p;
        }
        read_more(s, buf).await;
    }
}

async fn read_more(s: &mut Tls, buf: &mut Vec<u8>) -> usize {
    let mut chunk = [0u8; 16384];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
        .await
        .expect("an answer within 10 s")
        .unwrap_or(0);
    buf.extend_from_slice(&chunk[..n]);
    n
}

/// The watermark, the hello, then `request` built with the hello's random.
async fn start(
    from: &str,
    port: u16,
    request: impl FnOnce([u8; 20]) -> Pack,
) -> (Tls, Vec<u8>, Pack) {
    let mut s = connect_from(from, port).await;
    let mut buf = Vec::new();
    let mut sig = WATERMARK.to_vec();
    sig.extend_from_slice(&[0x42; 100]);
    post(&mut s, "/vpnsvc/connect.cgi", &sig).await;
    let hello = answer(&mut s, &mut buf).await;
    let random: [u8; 20] = hello.data("random").unwrap().try_into().unwrap();
    post(&mut s, "/vpnsvc/vpn.cgi", &request(random).to_bytes()).await;
    let reply = answer(&mut s, &mut buf).await;
    (s, buf, reply)
}

fn login(random: [u8; 20]) -> Pack {
    let mut p = Pack::new();
    p.set_str("method", "login");
    p.set_str("hubname", "DEFAULT");
    p.set_str("username", "alice");
    p.set_int("authtype", 1);
    p.set_data(
        "secure_password",
        &challenge_response(&hash_user_password("alice", "alicepw"), &random),
    );
    p.set_str("hello", "test client");
    p.set_int("max_connection", 2);
    p
}

fn additional(key: Vec<u8>) -> impl FnOnce([u8; 20]) -> Pack {
    move |_| {
        let mut p = Pack::new();
        p.set_str("method", "additional_connect");
        p.set_data("session_key", &key);
        p
    }
}

/// A server-status counter from `etherhub cmd ServerStatusGet`.
fn counter(server: &LoopbackServer, label: &str) -> u64 {
    let out = std::process::Command::new(common::ETHERHUB)
        .args([
            "cmd",
            &format!("127.0.0.1:{}", server.port),
            "/SERVER",
            "/CMD",
            "ServerStatusGet",
        ])
        .output()
        .unwrap();
    common::row(&String::from_utf8_lossy(&out.stdout), label)
        .replace(',', "")
        .parse()
        .unwrap_or(0)
}

/// Sends an ARP request for the gateway and waits for SecureNAT's answer.
async fn gateway_answers(s: &mut Tls, buf: &mut Vec<u8>) -> bool {
    let mut frame = vec![0xffu8; 6];
    frame.extend_from_slice(&[2, 0, 0, 0, 0, 0x77, 0x08, 0x06]);
    frame.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 0x77]);
    frame.extend_from_slice(&[192, 168, 30, 77, 0, 0, 0, 0, 0, 0, 192, 168, 30, 1]);
    let mut out = Vec::new();
    BlockWriter::new(false).frames([&frame[..]], &mut out);
    s.write_all(&out).await.unwrap();
    let mut reader = BlockReader::new(false);
    for _ in 0..20 {
        let mut found = false;
        let fed = std::mem::take(buf);
        reader
            .feed(&fed, &mut |r| {
                if let Record::Frame(f) = r {
                    found |= f.len() >= 42 && f[12..14] == [0x08, 0x06] && f[21] == 2;
                }
            })
            .unwrap();
        if found {
            return true;
        }
        if read_more(s, buf).await == 0 {
            return false;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_blocks_and_stolen_keys_are_refused_counted_and_harmless() {
    let server = LoopbackServer::start_with(|cfg| {
        cfg.create_user("DEFAULT", "alice", "", "", 0).unwrap();
        cfg.set_user_password("DEFAULT", "alice", "alicepw", 0)
            .unwrap();
    });
    let port = server.port;
    let (mut a, mut abuf, welcome) = start("127.0.0.1", port, login).await;
    assert_eq!(welcome.int("error").unwrap_or(0), 0, "{welcome:?}");
    let key = welcome.data("session_key").unwrap().to_vec();
    assert!(
        gateway_answers(&mut a, &mut abuf).await,
        "the session works"
    );

    // a frame larger than any MTU, in a block SoftEther's limit allows: dropped, counted
    let mut big = vec![0, 0, 0, 1, 0, 0, 0x07, 0xd0];
    big.extend(vec![0x11u8; 2000]);
    a.write_all(&big).await.unwrap();
    assert!(
        gateway_answers(&mut a, &mut abuf).await,
        "the session goes on"
    );

    // the session's key from another address: refused as if the session were gone
    let (mut thief, mut tbuf, stolen) = start("127.0.0.9", port, additional(key.clone())).await;
    assert_eq!(stolen.int("error"), Some(13), "{stolen:?}");
    assert_eq!(read_more(&mut thief, &mut tbuf).await, 0, "and closed");
    // ... while the key from the login's own address joins
    let (b, _, joined) = start("127.0.0.1", port, additional(key)).await;
    assert_eq!(joined.int("error"), Some(0), "{joined:?}");
    // (frames spread over both connections; with the second one gone, all come on the first)
    drop(b);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(gateway_answers(&mut a, &mut abuf).await);

    // a block announcing more than SoftEther's 3200 bytes: that connection ends
    a.write_all(&[0, 0, 0, 1, 0, 0, 0x0c, 0x81]).await.unwrap();
    let mut closed = false;
    for _ in 0..50 {
        if read_more(&mut a, &mut abuf).await == 0 {
            closed = true;
            break;
        }
    }
    assert!(closed, "the connection that broke the framing is closed");

    // counted, logged, and the server still takes logins
    let s = tokio::task::spawn_blocking(move || {
        let counts = (
            counter(&server, "SoftEther Blocks Dropped"),
            counter(&server, "SoftEther Session Keys From Other Addresses"),
            counter(&server, "SoftEther Connections Ended for Bad Framing"),
        );
        (server, counts)
    })
    .await
    .unwrap();
    let (server, (dropped, foreign, broken)) = s;
    assert_eq!((dropped, foreign, broken), (1, 1, 1));
    let (_c, _, again) = start("127.0.0.1", port, login).await;
    assert_eq!(again.int("error").unwrap_or(0), 0);
    assert!(
        server.log().contains("security: VPN login failed"),
        "the stolen key is logged"
    );
}

/// SoftEther's `password` method (the Windows client's "Change Password") for alice.
fn change_password(old: &'static str, new: &'static str) -> impl FnOnce([u8; 20]) -> Pack {
    move |random| {
        let mut p = Pack::new();
        p.set_str("method", "password");
        p.set_str("hubname", "DEFAULT");
        p.set_str("username", "alice");
        p.set_data(
            "secure_old_password",
            &challenge_response(&hash_user_password("alice", old), &random),
        );
        p.set_data("new_password", &hash_user_password("alice", new));
        p.set_data("new_password_ntlm", &[0x77; 16]);
        p
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_changes_their_password_unless_fix_password_denies_it() {
    let server = LoopbackServer::start_with(|cfg| {
        cfg.create_user("DEFAULT", "alice", "", "", 0).unwrap();
        cfg.set_user_password("DEFAULT", "alice", "alicepw", 0)
            .unwrap();
    });
    let port = server.port;
    // a wrong old password: 69, nothing changes
    let (_, _, wrong) = start("127.0.0.1", port, change_password("guess", "x")).await;
    assert_eq!(wrong.int("error"), Some(69), "{wrong:?}");
    // the right one: 0, and the new password logs in while the old one no longer does
    let (_, _, done) = start("127.0.0.1", port, change_password("alicepw", "newpw")).await;
    assert_eq!(done.int("error"), Some(0), "{done:?}");
    let (_, _, old) = start("127.0.0.1", port, login).await;
    assert_eq!(old.int("error"), Some(9), "{old:?}");
    let new_login = |random| {
        let mut p = login(random);
        p.set_data(
            "secure_password",
            &challenge_response(&hash_user_password("alice", "newpw"), &random),
        );
        p
    };
    let (_, _, welcome) = start("127.0.0.1", port, new_login).await;
    assert_eq!(welcome.int("error").unwrap_or(0), 0, "{welcome:?}");
    let config = std::fs::read_to_string(server.config_path()).unwrap();
    assert!(
        config.contains("AuthNtLmSecureHash"),
        "the NT hash is kept for MS-CHAPv2"
    );
    // FixPassword: 52, and the password stays
    let out = std::process::Command::new(common::ETHERHUB)
        .args([
            "cmd",
            &format!("127.0.0.1:{port}"),
            "/SERVER",
            "/HUB:DEFAULT",
            "/CMD",
        ])
        .args(["UserPolicySet", "alice", "/NAME:FixPassword", "/VALUE:yes"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::out_text(&out));
    let (_, _, fixed) = start("127.0.0.1", port, change_password("newpw", "third")).await;
    assert_eq!(fixed.int("error"), Some(52), "{fixed:?}");
    let (_, _, still) = start("127.0.0.1", port, new_login).await;
    assert_eq!(still.int("error").unwrap_or(0), 0, "{still:?}");
}
