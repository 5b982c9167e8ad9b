//! SoftEther's native protocol on the admin front door, served by `serve_connection_with`
//! over an in-memory stream against the in-memory backend (see front.rs). The first byte picks how far a
//! well-behaved client goes before the fuzzer's bytes take over:
//! 0: nothing (the bytes are the whole conversation after TLS);
//! 1: the signature (the bytes are the login request and whatever follows);
//! 2: the signature and a good server admin login (the bytes are the RPC stream);
//! 3: the same as a hub admin.
#![no_main]

#[path = "../../crates/admin/tests/common/mod.rs"]
mod fake;
mod front;

use etherhub_config::hash::{challenge_response, sha0};
use etherhub_pack::Pack;
use etherhub_softether::{Login, WATERMARK};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

fn post(path: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "POST {path} HTTP/1.1\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// Reads one HTTP response's body.
async fn body(s: &mut DuplexStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))?
                .trim()
                .parse()
                .ok()?;
            while buf.len() < end + 4 + len {
                let mut c = [0u8; 4096];
                let n = s.read(&mut c).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&c[..n]);
            }
            return Some(buf[end + 4..end + 4 + len].to_vec());
        }
        let mut c = [0u8; 4096];
        let n = s.read(&mut c).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&c[..n]);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    front::serve(|mut client| async move {
        let mut ok = true;
        if mode % 4 >= 1 {
            let _ = client.write_all(&post("/vpnsvc/connect.cgi", WATERMARK)).await;
            let hello = body(&mut client).await.and_then(|b| Pack::parse(&b).ok());
            match hello.and_then(|h| h.data("random").map(<[u8]>::to_vec)) {
                Some(random) if mode % 4 >= 2 => {
                    let (hub, pw) = if mode % 4 == 3 {
                        (Some("DEFAULT"), "hubpw")
                    } else {
                        (None, "serverpw")
                    };
                    let l = Login::vpncmd(hub, challenge_response(&sha0(pw.as_bytes()), &random))
                        .to_pack();
                    let _ = client.write_all(&post("/vpnsvc/vpn.cgi", &l.to_bytes())).await;
                    ok = body(&mut client).await.is_some();
                }
                Some(_) => {}
                None => ok = false,
            }
        }
        front::finish(client, if ok { rest } else { &[] }).await;
    });
});
