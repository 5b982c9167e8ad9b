//! Brute-force protection on the admin transport: after repeated failed logins from one address
//! even the right password is refused from it until the lockout ends; other addresses are not
//! affected; a good login clears the count.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use etherhub_admin::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn request(pw: &str) -> Vec<u8> {
    let body =
        json!({"jsonrpc": "2.0", "id": 1, "method": "GetPortsUDP", "params": {}}).to_string();
    format!(
        "POST /api/ HTTP/1.1\r\nHost: x\r\nX-VPNADMIN-PASSWORD: {pw}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// One request on a fresh connection from `peer`; the HTTP status.
async fn call(guard: &Arc<LoginGuard>, peer: &str, pw: &str) -> u16 {
    let (mut client, server) = tokio::io::duplex(1 << 16);
    let backend: Arc<dyn Backend> = Arc::new(common::Fake::new());
    let peer: SocketAddr = peer.parse().unwrap();
    let limits = Limits {
        auth_failure_delay: Duration::ZERO,
        login_guard: guard.clone(),
        ..Limits::default()
    };
    let task = tokio::spawn(async move {
        serve_connection_with(server, Ends { peer, local: peer }, backend, &limits).await
    });
    let mut req = request(pw);
    // ask for the connection to close so read_to_end ends
    let at = req.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    req.splice(at..at, b"\r\nConnection: close".iter().copied());
    client.write_all(&req).await.unwrap();
    let mut out = Vec::new();
    client.read_to_end(&mut out).await.unwrap();
    task.await.unwrap();
    let text = String::from_utf8_lossy(&out);
    let code: u16 = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    if code == 200 {
        let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
        let v: Value = serde_json::from_str(body).unwrap();
        assert!(v.get("result").is_some(), "{v}");
    }
    code
}

#[tokio::test]
async fn lockout_after_failures_per_address() {
    let guard = Arc::new(LoginGuard::new(
        3,
        Duration::from_millis(400),
        Duration::from_secs(60),
    ));
    let attacker = "198.18.0.2:40000";
    let admin = "198.18.0.3:40000";
    assert_eq!(call(&guard, attacker, "serverpw").await, 200);
    for _ in 0..3 {
        assert_eq!(call(&guard, attacker, "guess").await, 401);
    }
    // locked out: the right password does not get through from this address
    assert_eq!(call(&guard, attacker, "serverpw").await, 401);
    // a locked-out attempt does not extend the count
    assert_eq!(guard.failures("198.18.0.2".parse().unwrap()), 3);
    // another address is not affected
    assert_eq!(call(&guard, admin, "serverpw").await, 200);
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(call(&guard, attacker, "serverpw").await, 200);
    assert_eq!(guard.failures("198.18.0.2".parse().unwrap()), 0);
}

#[tokio::test]
async fn success_resets_the_count() {
    let guard = Arc::new(LoginGuard::new(
        3,
        Duration::from_secs(60),
        Duration::from_secs(60),
    ));
    let peer = "198.18.0.4:40000";
    for _ in 0..5 {
        assert_eq!(call(&guard, peer, "guess").await, 401);
        assert_eq!(call(&guard, peer, "serverpw").await, 200);
    }
}
