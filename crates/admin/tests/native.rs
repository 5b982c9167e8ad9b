//! SoftEther's native protocol on the admin front door, driven by an in-process client that
//! speaks it as vpncmd does (the interoperability proof with the real vpncmd is
//! crates/server/tests/vpncmd.rs): SoftEther's pages, the signature, the hello, the hashed
//! login, PACK RPC, and the refusals of bad input.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use etherhub_admin::*;
use etherhub_config::hash::{challenge_response, sha0};
use etherhub_pack::Pack;
use etherhub_softether::page::FORBIDDEN_PREFIX;
use etherhub_softether::{frame, Login, WATERMARK};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

fn limits(guard: Arc<LoginGuard>) -> Limits {
    Limits {
        auth_failure_delay: Duration::ZERO,
        head_timeout: Duration::from_millis(500),
        body_timeout: Duration::from_millis(500),
        login_guard: guard,
        ..Limits::default()
    }
}

fn guard() -> Arc<LoginGuard> {
    Arc::new(LoginGuard::new(
        3,
        Duration::from_secs(60),
        Duration::from_secs(60),
    ))
}

/// A connection to a fresh front door from `peer`.
fn connect(peer: &str, guard: &Arc<LoginGuard>) -> Client {
    let (client, server) = tokio::io::duplex(1 << 20);
    let backend: Arc<dyn Backend> = Arc::new(common::Fake::new());
    let peer: SocketAddr = peer.parse().unwrap();
    let local: SocketAddr = "198.18.0.1:443".parse().unwrap();
    let l = limits(guard.clone());
    tokio::spawn(
        async move { serve_connection_with(server, Ends { peer, local }, backend, &l).await },
    );
    Client {
        s: client,
        buf: Vec::new(),
    }
}

struct Client {
    s: DuplexStream,
    buf: Vec<u8>,
}

impl Client {
    async fn fill(&mut self, n: usize) -> bool {
        while self.buf.len() < n {
            let mut chunk = [0u8; 8192];
            match tokio::time::timeout(Duration::from_secs(5), self.s.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return false,
                Ok(Ok(k)) => self.buf.extend_from_slice(&chunk[..k]),
                Err(_) => panic!("no answer within 5 s"),
            }
        }
        true
    }

    /// The next HTTP response: status code, headers (lower case) and body.
    async fn response(&mut self) -> (u16, String, Vec<u8>) {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buf[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse().unwrap())
                    .unwrap();
                assert!(self.fill(end + 4 + len).await, "closed mid-body");
                let body = self.buf[end + 4..end + 4 + len].to_vec();
                self.buf.drain(..end + 4 + len);
                let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
                return (code, head, body);
            }
            let n = self.buf.len() + 1;
            assert!(self.fill(n).await, "closed before a response");
        }
    }

    /// True when the server has closed the connection (after anything it still sent).
    async fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.s.read_to_end(&mut rest)).await,
            Ok(Ok(_))
        )
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.unwrap();
    }

    async fn post(&mut self, path: &str, content_type: &str, body: &[u8]) {
        let head = format!(
            "POST {path} HTTP/1.1\r\nConnection: Keep-Alive\r\nContent-Length: {}\r\nContent-Type: {content_type}\r\nHost: 198.18.0.1\r\n\r\n",
            body.len()
        );
        self.send(head.as_bytes()).await;
        self.send(body).await;
    }

    /// The signature with some padding, as vpncmd sends it; returns the hello's random.
    async fn signature(&mut self) -> [u8; 20] {
        let mut body = WATERMARK.to_vec();
        body.extend_from_slice(&[7u8; 300]);
        self.post("/vpnsvc/connect.cgi", "image/jpeg", &body).await;
        let (code, head, body) = self.response().await;
        assert_eq!(code, 200);
        assert!(
            head.contains("content-type: application/octet-stream"),
            "{head}"
        );
        let hello = Pack::parse(&body).unwrap();
        assert!(hello.str("hello").unwrap().starts_with("Etherhub"));
        assert_eq!(hello.int("build"), Some(SOFTETHER_BUILD));
        hello.data("random").unwrap().try_into().unwrap()
    }

    /// vpncmd's admin login; the answer.
    async fn login(&mut self, hub: Option<&str>, password: &str) -> Pack {
        let random = self.signature().await;
        let l =
            Login::vpncmd(hub, challenge_response(&sha0(password.as_bytes()), &random)).to_pack();
        self.post("/vpnsvc/vpn.cgi", "application/octet-stream", &l.to_bytes())
            .await;
        let (code, _, body) = self.response().await;
        assert_eq!(code, 200);
        Pack::parse(&body).unwrap()
    }

    async fn call(&mut self, function: &str, params: &[(&str, &str)]) -> Pack {
        let mut p = Pack::new();
        for (k, v) in params {
            p.set_str(k, v);
        }
        p.set_str("function_name", function);
        self.send(&frame(&p)).await;
        assert!(self.fill(4).await, "closed instead of a reply");
        let len = u32::from_be_bytes(self.buf[..4].try_into().unwrap()) as usize;
        assert!(self.fill(4 + len).await);
        let reply = Pack::parse(&self.buf[4..4 + len]).unwrap();
        self.buf.drain(..4 + len);
        reply
    }
}

#[tokio::test]
async fn get_slash_is_softethers_403_and_the_connection_goes_on_to_the_protocol() {
    let mut c = connect("198.18.0.2:40000", &guard());
    // what vpncmd 5.01 sends first to anything but localhost
    c.send(b"GET / HTTP/1.1\r\nX-VPN: 1\r\nHost: 198.18.0.1\r\nKeep-Alive: timeout=15; max=19\r\nConnection: Keep-Alive\r\n\r\n")
        .await;
    let (code, _, body) = c.response().await;
    assert_eq!(code, 403);
    assert!(body.starts_with(FORBIDDEN_PREFIX.as_bytes()));
    c.send(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(c.response().await.0, 404);
    // the same connection then logs in
    let welcome = c.login(None, "serverpw").await;
    assert_eq!(welcome.int("error").unwrap_or(0), 0);
    let info = c.call("GetServerInfo", &[]).await;
    assert!(info.str("ServerProductName").is_some(), "{info:?}");
}

#[tokio::test]
async fn rpc_calls_and_their_errors() {
    let mut c = connect("198.18.0.2:40001", &guard());
    c.login(None, "serverpw").await;
    let hubs = c.call("EnumHub", &[]).await;
    assert_eq!(hubs.count("HubName"), 2, "{hubs:?}");
    // names compare without regard to case, as in SoftEther
    let ports = c.call("getportsudp", &[]).await;
    assert_eq!(ports.count("Ports"), 4);
    // an unknown method, and a call without a name: 33, and the connection goes on
    assert_eq!(c.call("NoSuchMethod", &[]).await.int("error"), Some(33));
    let mut nameless = Pack::new();
    nameless.set_int("x", 1);
    c.send(&frame(&nameless)).await;
    assert!(c.fill(4).await);
    let len = u32::from_be_bytes(c.buf[..4].try_into().unwrap()) as usize;
    assert!(c.fill(4 + len).await);
    assert_eq!(
        Pack::parse(&c.buf[4..4 + len]).unwrap().int("error"),
        Some(33)
    );
    c.buf.drain(..4 + len);
    // a backend error keeps its code
    let e = c.call("CreateHub", &[("HubName", "DEFAULT")]).await;
    assert_eq!(e.int("error"), Some(57));
    assert_eq!(e.len(), 1, "an error reply is the error alone");
}

#[tokio::test]
async fn a_hub_admin_is_kept_to_its_hub() {
    let mut c = connect("198.18.0.2:40002", &guard());
    let welcome = c.login(Some("DEFAULT"), "hubpw").await;
    assert_eq!(welcome.int("error").unwrap_or(0), 0);
    assert_eq!(
        c.call("CreateHub", &[("HubName", "X")]).await.int("error"),
        Some(52)
    );
    assert_eq!(
        c.call("EnumUser", &[("HubName", "OTHER")])
            .await
            .int("error"),
        Some(52)
    );
    let status = c.call("GetHubStatus", &[("HubName", "DEFAULT")]).await;
    assert_eq!(status.str("HubName"), Some("DEFAULT"));
}

#[tokio::test]
async fn wrong_passwords_are_refused_counted_and_lock_the_address_out() {
    let g = guard();
    // the empty password is vpncmd's probe: refused, not counted
    let mut c = connect("198.18.0.3:40000", &g);
    assert_eq!(c.login(None, "").await.int("error"), Some(12));
    assert!(c.closed().await);
    assert_eq!(g.failures("198.18.0.3".parse().unwrap()), 0);
    for i in 1..=3 {
        let mut c = connect("198.18.0.3:40000", &g);
        assert_eq!(c.login(None, "guess").await.int("error"), Some(12));
        assert!(c.closed().await);
        assert_eq!(g.failures("198.18.0.3".parse().unwrap()), i);
    }
    // locked out: even the right password is refused from there
    let mut c = connect("198.18.0.3:40000", &g);
    assert_eq!(c.login(None, "serverpw").await.int("error"), Some(12));
    // another address is not disturbed
    let mut other = connect("198.18.0.4:40000", &g);
    assert_eq!(
        other
            .login(None, "serverpw")
            .await
            .int("error")
            .unwrap_or(0),
        0
    );
    assert!(other
        .call("GetServerInfo", &[])
        .await
        .int("error")
        .is_none());
}

#[tokio::test]
async fn bad_signatures_and_logins_are_refused() {
    let g = guard();
    // a POST to the signature path without the watermark: 403, the connection goes on
    let mut c = connect("198.18.0.5:40000", &g);
    c.post("/vpnsvc/connect.cgi", "image/jpeg", &[0u8; 1500])
        .await;
    assert_eq!(c.response().await.0, 403);
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(c.response().await.0, 403);
    // a POST of a size no SoftEther client sends: 403 and closed, the body unread
    let mut c = connect("198.18.0.5:40001", &g);
    c.send(b"POST /vpnsvc/connect.cgi HTTP/1.1\r\nContent-Length: 100000\r\n\r\n")
        .await;
    assert_eq!(c.response().await.0, 403);
    assert!(c.closed().await);
    // a login that is not a PACK: SoftEther's protocol error, then closed
    let mut c = connect("198.18.0.5:40002", &g);
    c.signature().await;
    c.post(
        "/vpnsvc/vpn.cgi",
        "application/octet-stream",
        &[0, 0, 0, 9, 1],
    )
    .await;
    let (_, _, body) = c.response().await;
    assert_eq!(Pack::parse(&body).unwrap().int("error"), Some(4));
    assert!(c.closed().await);
    // a truncated login PACK, the same
    let mut c = connect("198.18.0.5:40003", &g);
    c.signature().await;
    let mut l = Pack::new();
    l.set_str("method", "admin");
    l.set_data("secure_password", &[1; 20]);
    let bytes = l.to_bytes();
    c.post(
        "/vpnsvc/vpn.cgi",
        "application/octet-stream",
        &bytes[..bytes.len() - 3],
    )
    .await;
    let (_, _, body) = c.response().await;
    assert_eq!(Pack::parse(&body).unwrap().int("error"), Some(4));
    // an unknown method
    let mut c = connect("198.18.0.5:40004", &g);
    c.signature().await;
    let mut l = Pack::new();
    l.set_str("method", "farm_connect");
    c.post("/vpnsvc/vpn.cgi", "application/octet-stream", &l.to_bytes())
        .await;
    let (_, _, body) = c.response().await;
    assert_eq!(Pack::parse(&body).unwrap().int("error"), Some(4));
    assert_eq!(
        g.failures("198.18.0.5".parse().unwrap()),
        0,
        "none of these was a guess"
    );
}

#[tokio::test]
async fn a_vpn_session_request_goes_on_with_the_connection() {
    let (client, server) = tokio::io::duplex(1 << 20);
    let backend: Arc<dyn Backend> = Arc::new(common::Fake::new());
    let peer: SocketAddr = "198.18.0.7:40000".parse().unwrap();
    let l = limits(guard());
    let task = tokio::spawn(async move {
        serve_connection_with(server, Ends { peer, local: peer }, backend, &l).await
    });
    let mut c = Client {
        s: client,
        buf: Vec::new(),
    };
    let random = c.signature().await;
    let mut l = Pack::new();
    l.set_str("method", "login");
    l.set_str("hubname", "DEFAULT");
    l.set_str("username", "alice");
    let body = l.to_bytes();
    let mut bytes = format!(
        "POST /vpnsvc/vpn.cgi HTTP/1.1\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\r\n",
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(&body);
    // the first record of the data channel, sent early, stays with the connection
    bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
    c.send(&bytes).await;
    match task.await.unwrap() {
        Outcome::Session { request, rest, .. } => {
            assert_eq!(request.random, random);
            assert_eq!(request.request.str("username"), Some("alice"));
            assert_eq!(rest, vec![0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
        }
        Outcome::Closed | Outcome::Sstp { .. } => panic!("the session request was not handed on"),
    }
}

#[tokio::test]
async fn oversized_or_broken_rpc_frames_close_the_connection() {
    let g = guard();
    let mut c = connect("198.18.0.6:40000", &g);
    c.login(Some("DEFAULT"), "hubpw").await;
    // a hub admin's frame may be 8 MiB at most: announcing more closes at once
    c.send(&(64u32 << 20).to_be_bytes()).await;
    assert!(c.closed().await);
    let mut c = connect("198.18.0.6:40001", &g);
    c.login(None, "serverpw").await;
    c.send(&[0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0]).await;
    assert!(c.closed().await);
    // and a fresh connection still works
    let mut c = connect("198.18.0.6:40002", &g);
    c.login(None, "serverpw").await;
    assert!(c.call("GetServerInfo", &[]).await.int("error").is_none());
}
