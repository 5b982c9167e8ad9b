//! A minimal JSON-RPC over HTTPS client for the admin API: one TLS connection per session.

use std::sync::Mutex;
use std::time::Duration;

use rustls::pki_types::ServerName;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The server answered with a JSON-RPC error (SoftEther code or -32601).
    Rpc { code: i64, message: String },
    /// Login refused (HTTP 401).
    Auth,
    /// TCP or TLS connection failed.
    Connect(String),
    /// The answer was not what the protocol says.
    Protocol(String),
}

/// The admin client: one TLS connection, kept open for a whole command or interactive session
/// (HTTP keep-alive), opened again if the server closed it while idle.
pub struct Client {
    pub host: String,
    pub port: u16,
    /// `X-VPNADMIN-HUBNAME` (empty for the server administrator).
    pub admin_hub: String,
    password: Mutex<String>,
    runtime: tokio::runtime::Runtime,
    connector: tokio_rustls::TlsConnector,
    conn: Mutex<Option<Tls>>,
}

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

const TIMEOUT: Duration = Duration::from_secs(30);
const MAX_RESPONSE: usize = 64 * 1024 * 1024;

fn io(e: std::io::Error) -> CallError {
    CallError::Connect(e.to_string())
}

impl Client {
    pub fn new(host: &str, port: u16, admin_hub: &str, password: &str) -> Result<Self, CallError> {
        let cfg = etherhub_admin::tls_client_config_any_cert()
            .map_err(|e| CallError::Connect(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CallError::Connect(e.to_string()))?;
        Ok(Self {
            host: host.to_string(),
            port,
            admin_hub: admin_hub.to_string(),
            password: Mutex::new(password.to_string()),
            runtime,
            connector: tokio_rustls::TlsConnector::from(cfg),
            conn: Mutex::new(None),
        })
    }

    /// The password for the calls from now on.
    pub fn set_password(&self, password: &str) {
        *self.password.lock().unwrap_or_else(|p| p.into_inner()) = password.to_string();
    }

    /// Call one method and return its `result`.
    pub fn call(&self, method: &str, params: Value) -> Result<Value, CallError> {
        let body =
            json!({ "jsonrpc": "2.0", "id": "1", "method": method, "params": params }).to_string();
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let (status, resp) = self.runtime.block_on(async {
            tokio::time::timeout(TIMEOUT, self.exchange(&mut conn, &body))
                .await
                .map_err(|_| CallError::Connect("timed out".into()))?
        })?;
        if status == 401 {
            return Err(CallError::Auth);
        }
        let v: Value = serde_json::from_slice(&resp).map_err(|_| {
            CallError::Protocol(format!("HTTP {status} with a body that is not JSON"))
        })?;
        if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
            let code = e.get("code").and_then(Value::as_i64).unwrap_or(-1);
            let message = e
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            return Err(CallError::Rpc { code, message });
        }
        v.get("result")
            .cloned()
            .ok_or_else(|| CallError::Protocol("response has neither result nor error".into()))
    }

    async fn connect(&self) -> Result<Tls, CallError> {
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(io)?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(self.host.clone())
            .unwrap_or_else(|_| ServerName::try_from("localhost").expect("static name"));
        self.connector
            .connect(name, tcp)
            .await
            .map_err(|e| CallError::Connect(format!("TLS: {e}")))
    }

    /// One request on the kept connection; a connection the server closed while idle is opened
    /// again once (nothing of the request reached the server then).
    async fn exchange(
        &self,
        conn: &mut Option<Tls>,
        body: &str,
    ) -> Result<(u16, Vec<u8>), CallError> {
        let head = format!(
            "POST /api/ HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\nX-VPNADMIN-HUBNAME: {}\r\nX-VPNADMIN-PASSWORD: {}\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n",
            self.host,
            self.port,
            self.admin_hub,
            self.password.lock().unwrap_or_else(|p| p.into_inner()),
            body.len()
        );
        let mut request = head.into_bytes();
        request.extend_from_slice(body.as_bytes());
        for attempt in 0..2 {
            let reused = conn.is_some();
            let mut tls = match conn.take() {
                Some(t) => t,
                None => self.connect().await?,
            };
            match send_and_read(&mut tls, &request).await {
                Ok((status, body, keep)) => {
                    if keep {
                        *conn = Some(tls);
                    }
                    return Ok((status, body));
                }
                Err(Stale) if reused && attempt == 0 => continue,
                Err(Stale) => {
                    return Err(CallError::Protocol(
                        "connection closed before a response".into(),
                    ))
                }
                Err(Failed(e)) => return Err(e),
            }
        }
        Err(CallError::Protocol(
            "connection closed before a response".into(),
        ))
    }
}

/// Why an exchange on a connection failed.
enum Outcome {
    /// The connection was closed before any byte of a response: try a fresh one.
    Stale,
    Failed(CallError),
}
use Outcome::{Failed, Stale};

async fn send_and_read(tls: &mut Tls, request: &[u8]) -> Result<(u16, Vec<u8>, bool), Outcome> {
    if tls.write_all(request).await.is_err() || tls.flush().await.is_err() {
        return Err(Stale);
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        match parse_response_head(&buf).map_err(Failed)? {
            Some((status, head_len, len, keep)) => {
                while buf.len() < head_len + len {
                    let n = tls.read(&mut chunk).await.map_err(|e| Failed(io(e)))?;
                    if n == 0 {
                        return Err(Failed(CallError::Protocol(
                            "connection closed in the middle of the response".into(),
                        )));
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                return Ok((status, buf[head_len..head_len + len].to_vec(), keep));
            }
            None if buf.len() > 64 * 1024 => {
                return Err(Failed(CallError::Protocol(
                    "response head too large".into(),
                )))
            }
            None => {}
        }
        let n = match tls.read(&mut chunk).await {
            Ok(n) => n,
            Err(_) if buf.is_empty() => return Err(Stale),
            Err(e) => return Err(Failed(io(e))),
        };
        if n == 0 {
            return Err(if buf.is_empty() {
                Stale
            } else {
                Failed(CallError::Protocol(
                    "connection closed before a response".into(),
                ))
            });
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// `Some((status, head_len, content_length, keep_alive))` once the head is complete.
fn parse_response_head(buf: &[u8]) -> Result<Option<(u16, usize, usize, bool)>, CallError> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .filter(|_| status_line.starts_with("HTTP/1."))
        .ok_or_else(|| CallError::Protocol("not an HTTP server".into()))?;
    let mut len = None;
    let mut keep = true;
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                len = v.trim().parse::<usize>().ok();
            } else if k.trim().eq_ignore_ascii_case("connection") {
                keep = !v.trim().eq_ignore_ascii_case("close");
            }
        }
    }
    let len = len.ok_or_else(|| CallError::Protocol("response without Content-Length".into()))?;
    if len > MAX_RESPONSE {
        return Err(CallError::Protocol("response too large".into()));
    }
    Ok(Some((status, end + 4, len, keep)))
}
