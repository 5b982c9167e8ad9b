//! The HTTP front door of a TLS connection, as SoftEther's: JSON-RPC on `POST /api/` (the
//! `X-VPNADMIN-*` login and the JSON-RPC envelope), SoftEther's own pages for `GET /` and
//! unknown paths, and the signature POST (`/vpnsvc/connect.cgi`) that turns the connection
//! into SoftEther's native protocol ([`crate::native`]).
//!
//! One connection serves requests one after another (keep-alive). Every wait has a deadline so
//! a slow or silent peer cannot hold a task forever, and every size is capped before memory is
//! allocated for it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use etherhub_softether::{is_signature, page, signature_size_ok, SIGNATURE_TARGET};

use crate::backend::{Backend, Proof};
use crate::dispatch::dispatch;
use crate::error::{code, error_text, RpcError};
use crate::guard::{Admission, LoginGuard};
use crate::native::SessionRequest;
use crate::types::AdminScope;

/// Limits and timeouts of one admin connection.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest request line plus headers.
    pub max_head: usize,
    /// Largest body a server administrator may send (SetConfig carries the whole config).
    pub max_body_server_admin: usize,
    /// Largest body a hub administrator may send (SoftEther uses 8 MiB).
    pub max_body_hub_admin: usize,
    /// Largest body read (and thrown away) from a peer that is not logged in.
    pub max_body_unauthenticated: usize,
    /// How long an idle keep-alive connection waits for the next request.
    pub idle_timeout: Duration,
    /// How long the request head may take once its first byte has arrived.
    pub head_timeout: Duration,
    /// How long the body may take once the head is complete.
    pub body_timeout: Duration,
    /// Pause before answering a failed login, to slow down password guessing.
    pub auth_failure_delay: Duration,
    /// Per-address failure counts and lockouts; the default is one guard for the process.
    pub login_guard: Arc<LoginGuard>,
    /// How long a logged-in SoftEther admin connection (vpncmd) may sit idle; vpncmd
    /// reconnects by itself when it finds the connection closed.
    pub rpc_idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_head: 16 * 1024,
            max_body_server_admin: 32 * 1024 * 1024,
            max_body_hub_admin: 8 * 1024 * 1024,
            max_body_unauthenticated: 64 * 1024,
            idle_timeout: Duration::from_secs(60),
            head_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            auth_failure_delay: Duration::from_millis(500),
            login_guard: LoginGuard::global(),
            rpc_idle_timeout: Duration::from_secs(600),
        }
    }
}

/// The two ends of a connection: the peer's address, and ours (SoftEther's pages name it).
#[derive(Debug, Clone, Copy)]
pub struct Ends {
    pub peer: SocketAddr,
    pub local: SocketAddr,
}

/// How a connection left the front door.
pub enum Outcome<S> {
    /// Served and closed.
    Closed,
    /// A SoftEther VPN session's request: the connection goes on to the session core, with
    /// the bytes already read past the request.
    Session {
        stream: S,
        request: SessionRequest,
        rest: Vec<u8>,
    },
    /// An SSTP client's `SSTP_DUPLEX_POST`: the connection goes on to the SSTP core, with the
    /// bytes already read past the request (its answer is the core's to send).
    Sstp { stream: S, rest: Vec<u8> },
}

/// Serve requests on one connection until the peer closes it, a limit is hit or a timeout
/// expires, or a VPN session takes it over. Errors are logged, never returned.
pub async fn serve_connection<S>(stream: S, ends: Ends, backend: Arc<dyn Backend>) -> Outcome<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    serve_connection_with(stream, ends, backend, &Limits::default()).await
}

/// [`serve_connection`] with explicit limits.
pub async fn serve_connection_with<S>(
    mut stream: S,
    ends: Ends,
    backend: Arc<dyn Backend>,
    limits: &Limits,
) -> Outcome<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let peer = ends.peer;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut pages = 0u32;
    loop {
        match serve_one(&mut stream, &mut buf, ends, &backend, limits, &mut pages).await {
            Ok(Next::Again) => continue,
            Ok(Next::Close) => break,
            Ok(Next::Sstp) => {
                return Outcome::Sstp {
                    stream,
                    rest: std::mem::take(&mut buf),
                }
            }
            Ok(Next::SoftEther) => {
                match crate::native::serve(&mut stream, &mut buf, peer, &backend, limits).await {
                    Ok(Some(request)) => {
                        return Outcome::Session {
                            stream,
                            request,
                            rest: buf,
                        }
                    }
                    Ok(None) => {}
                    Err(e) => tracing::debug!(%peer, error = %e, "SoftEther connection closed"),
                }
                break;
            }
            Err(e) => {
                tracing::debug!(%peer, error = %e, "admin connection closed");
                break;
            }
        }
    }
    let _ = stream.shutdown().await;
    Outcome::Closed
}

/// The request method of an SSTP client (MS-SSTP 2.2.1).
const SSTP_METHOD: &str = "SSTP_DUPLEX_POST";

/// What a connection does after a request.
pub(crate) enum Next {
    Again,
    Close,
    /// The client sent SoftEther's signature: the native protocol follows.
    SoftEther,
    /// An SSTP call follows (the request was `SSTP_DUPLEX_POST`).
    Sstp,
}

#[derive(Debug)]
pub(crate) enum ConnError {
    Io(std::io::Error),
    Timeout,
}

impl std::fmt::Display for ConnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnError::Io(e) => write!(f, "{e}"),
            ConnError::Timeout => write!(f, "timed out"),
        }
    }
}

impl From<std::io::Error> for ConnError {
    fn from(e: std::io::Error) -> Self {
        ConnError::Io(e)
    }
}

/// The parts of a request head we use.
pub(crate) struct Head {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) keep_alive: bool,
    pub(crate) content_length: Option<usize>,
    pub(crate) chunked: bool,
    pub(crate) hub: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) head_len: usize,
}

pub(crate) enum HeadParse {
    Complete(Head),
    Partial,
    Invalid,
}

pub(crate) fn parse_head(buf: &[u8]) -> HeadParse {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return HeadParse::Partial,
        Err(_) => return HeadParse::Invalid,
    };
    let version = req.version.unwrap_or(1);
    let mut h = Head {
        method: req.method.unwrap_or("").to_string(),
        path: req.path.unwrap_or("").to_string(),
        keep_alive: version >= 1,
        content_length: None,
        chunked: false,
        hub: None,
        password: None,
        head_len,
    };
    for hdr in req.headers.iter() {
        let value = String::from_utf8_lossy(hdr.value).trim().to_string();
        let name = hdr.name;
        if name.eq_ignore_ascii_case("content-length") {
            match value.parse::<usize>() {
                Ok(n) if h.content_length.is_none() || h.content_length == Some(n) => {
                    h.content_length = Some(n)
                }
                _ => return HeadParse::Invalid,
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            h.chunked = true;
        } else if name.eq_ignore_ascii_case("connection") {
            let v = value.to_ascii_lowercase();
            if v.split(',').any(|t| t.trim() == "close") {
                h.keep_alive = false;
            } else if v.split(',').any(|t| t.trim() == "keep-alive") {
                h.keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case("x-vpnadmin-hubname") {
            h.hub = Some(value);
        } else if name.eq_ignore_ascii_case("x-vpnadmin-password") {
            h.password = Some(value);
        }
    }
    HeadParse::Complete(h)
}

pub(crate) async fn read_more<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    deadline: Instant,
) -> Result<usize, ConnError> {
    let mut chunk = [0u8; 8192];
    match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
        Ok(Ok(n)) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(n)
        }
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(ConnError::Timeout),
    }
}

async fn write_response<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: &str,
    content_type: &str,
    body: &[u8],
    keep_alive: bool,
) -> Result<(), ConnError> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nConnection: {}\r\n\r\n",
        body.len(),
        if keep_alive { "Keep-Alive" } else { "close" }
    );
    let mut out = Vec::with_capacity(head.len() + body.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body);
    stream.write_all(&out).await?;
    stream.flush().await?;
    Ok(())
}

async fn plain_error<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: &str,
) -> Result<Next, ConnError> {
    let body = format!("{status}\r\n");
    write_response(
        stream,
        status,
        "text/plain; charset=utf-8",
        body.as_bytes(),
        false,
    )
    .await?;
    Ok(Next::Close)
}

fn envelope(id: &Value, outcome: Result<Value, RpcError>) -> Vec<u8> {
    let v = match outcome {
        Ok(result) => json!({ "jsonrpc": "2.0", "id": id, "result": result }),
        Err(e) => json!({ "jsonrpc": "2.0", "id": id, "error": e.to_json() }),
    };
    serde_json::to_vec(&v).unwrap_or_default()
}

/// Read `len` body bytes (some may already be in `buf` after the head).
pub(crate) async fn read_body<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    len: usize,
    deadline: Instant,
) -> Result<Vec<u8>, ConnError> {
    while buf.len() < len {
        if read_more(stream, buf, deadline).await? == 0 {
            return Err(ConnError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
    }
    let rest = buf.split_off(len);
    Ok(std::mem::replace(buf, rest))
}

/// Reads the next request head: `Ok(None)` when the peer closed the connection, stayed idle
/// past `idle`, or sent a head that is not HTTP or too large (answered, then to be closed).
pub(crate) async fn read_head<S>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    limits: &Limits,
    idle: std::time::Duration,
) -> Result<Option<Head>, ConnError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Wait for the first byte of the next request (idle), then for the whole head.
    if buf.is_empty() {
        match read_more(stream, buf, Instant::now() + idle).await {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(ConnError::Timeout) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    let head_deadline = Instant::now() + limits.head_timeout;
    let head = loop {
        match parse_head(buf) {
            HeadParse::Complete(h) => break h,
            HeadParse::Invalid => {
                plain_error(stream, "400 Bad Request").await?;
                return Ok(None);
            }
            HeadParse::Partial => {
                if buf.len() > limits.max_head {
                    plain_error(stream, "431 Request Header Fields Too Large").await?;
                    return Ok(None);
                }
                if read_more(stream, buf, head_deadline).await? == 0 {
                    return Ok(None);
                }
            }
        }
    };
    if head.head_len > limits.max_head {
        plain_error(stream, "431 Request Header Fields Too Large").await?;
        return Ok(None);
    }
    buf.drain(..head.head_len);
    Ok(Some(head))
}

/// Unix seconds now (for the `Date` header).
pub(crate) fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Serve one request.
async fn serve_one<S>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    ends: Ends,
    backend: &Arc<dyn Backend>,
    limits: &Limits,
    pages: &mut u32,
) -> Result<Next, ConnError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(head) = read_head(stream, buf, limits, limits.idle_timeout).await? else {
        return Ok(Next::Close);
    };
    let path = head.path.split('?').next().unwrap_or("");
    if head.method == SSTP_METHOD {
        // any path: SoftEther takes the method alone (clients all ask for the same one)
        return Ok(Next::Sstp);
    }
    if !path.eq_ignore_ascii_case("/api") && !path.eq_ignore_ascii_case("/api/") {
        return front_page(stream, buf, ends, &head, limits, pages).await;
    }
    *pages = 0;
    json_rpc(stream, buf, ends.peer, head, backend, limits).await
}

/// Everything but the API, as SoftEther's server answers it: the signature POST hands the
/// connection to the native protocol; `GET /` gets the 403 page SoftEther clients look for;
/// other paths 404; other methods 501. SoftEther serves 19 such requests on a connection.
async fn front_page<S>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    ends: Ends,
    head: &Head,
    limits: &Limits,
    pages: &mut u32,
) -> Result<Next, ConnError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let peer = ends.peer;
    *pages += 1;
    if *pages > page::MAX_REQUESTS {
        tracing::debug!(%peer, "too many requests before a signature; closing");
        return Ok(Next::Close);
    }
    let (host, port) = (ends.local.ip().to_string(), ends.local.port());
    let target = head.path.as_str();
    let path = target.split('?').next().unwrap_or("");
    let len = head.content_length.unwrap_or(0);
    let deadline = Instant::now() + limits.body_timeout;
    let (reply, next) = match head.method.as_str() {
        "POST" => {
            if head.chunked || !signature_size_ok(len) {
                // SoftEther answers 403 and closes without reading such a body
                tracing::debug!(%peer, %target, len, "POST of a size no SoftEther client sends");
                (
                    page::forbidden(target, &host, port, unix_secs()),
                    Next::Close,
                )
            } else {
                let body = read_body(stream, buf, len, deadline).await?;
                if !path.eq_ignore_ascii_case(SIGNATURE_TARGET) {
                    (
                        page::not_found(target, &host, port, unix_secs()),
                        Next::Again,
                    )
                } else if is_signature(&body) {
                    return Ok(Next::SoftEther);
                } else {
                    tracing::warn!(%peer, len, "security: a POST to the SoftEther signature path without SoftEther's watermark");
                    (
                        page::forbidden(target, &host, port, unix_secs()),
                        Next::Again,
                    )
                }
            }
        }
        "GET" | "HEAD" => {
            if head.chunked || len > limits.max_body_unauthenticated {
                return Ok(Next::Close);
            }
            read_body(stream, buf, len, deadline).await?;
            let p = if path == "/" {
                page::forbidden(target, &host, port, unix_secs())
            } else {
                page::not_found(target, &host, port, unix_secs())
            };
            (p, Next::Again)
        }
        other => (
            page::not_implemented(other, &host, port, unix_secs()),
            Next::Close,
        ),
    };
    stream.write_all(&reply).await?;
    stream.flush().await?;
    Ok(if head.keep_alive { next } else { Next::Close })
}

/// One JSON-RPC request on `/api/`.
async fn json_rpc<S>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    peer: SocketAddr,
    head: Head,
    backend: &Arc<dyn Backend>,
    limits: &Limits,
) -> Result<Next, ConnError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if head.method != "POST" {
        return plain_error(stream, "405 Method Not Allowed").await;
    }
    if head.chunked {
        return plain_error(stream, "501 Not Implemented").await;
    }
    let Some(len) = head.content_length else {
        return plain_error(stream, "411 Length Required").await;
    };
    let body_deadline = Instant::now() + limits.body_timeout;

    // Log in from the headers alone; the password is never logged.
    let hub = head.hub.clone().filter(|h| !h.is_empty());
    // A missing password header is an empty password (curl drops a header given as `Name:`);
    // the backend decides whether an empty one is good enough.
    let admission = limits
        .login_guard
        .check(peer.ip(), std::time::Instant::now());
    let scope = match (admission, head.password.clone().unwrap_or_default()) {
        (Admission::LockedOut(left), _) => {
            tracing::warn!(
                %peer,
                locked_for_secs = left.as_secs(),
                "security: admin login refused, address locked out"
            );
            None
        }
        (Admission::Allowed, password) => {
            let b = Arc::clone(backend);
            let hub2 = hub.clone();
            let loopback = peer.ip().is_loopback();
            tokio::task::spawn_blocking(move || {
                b.authenticate(hub2.as_deref(), Proof::Password(&password), loopback)
            })
            .await
            .ok()
            .and_then(|r| r.ok())
        }
    };
    let Some(scope) = scope else {
        // An empty password is what vpncmd tries first to learn whether the server wants one:
        // that is no guess at a password, so it costs no failure, no lockout and no delay.
        let probe =
            admission == Admission::Allowed && head.password.as_deref().unwrap_or("").is_empty();
        if probe {
            tracing::debug!(%peer, "admin login with an empty password refused (a password is set)");
        } else if admission == Admission::Allowed {
            let guard = &limits.login_guard;
            guard.failure(peer.ip(), std::time::Instant::now());
            tracing::warn!(
                %peer,
                hub = hub.as_deref().unwrap_or(""),
                failures = guard.failures(peer.ip()),
                "security: admin login failed"
            );
        }
        // Read a small body to echo its id; a large one is not worth reading.
        let id = if len <= limits.max_body_unauthenticated {
            let body = read_body(stream, buf, len, body_deadline).await?;
            serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("id").cloned())
                .unwrap_or(Value::Null)
        } else {
            Value::Null
        };
        if !probe {
            tokio::time::sleep(limits.auth_failure_delay).await;
        }
        let err = RpcError {
            code: i64::from(code::ERR_ACCESS_DENIED),
            message: format!(
                "Error code {}: {}",
                code::ERR_ACCESS_DENIED,
                error_text(code::ERR_ACCESS_DENIED)
            ),
        };
        let keep = head.keep_alive && len <= limits.max_body_unauthenticated;
        write_response(
            stream,
            "401 Unauthorized",
            "application/json",
            &envelope(&id, Err(err)),
            keep,
        )
        .await?;
        return Ok(if keep { Next::Again } else { Next::Close });
    };

    limits.login_guard.success(peer.ip());
    let max_body = match scope {
        AdminScope::Server => limits.max_body_server_admin,
        AdminScope::Hub(_) => limits.max_body_hub_admin,
    };
    if len > max_body {
        return plain_error(stream, "413 Payload Too Large").await;
    }
    let body = read_body(stream, buf, len, body_deadline).await?;

    let (id, outcome) = match serde_json::from_slice::<Value>(&body) {
        Err(_) => (
            Value::Null,
            Err(invalid("Parameter is invalid: JSON-RPC Parse Error")),
        ),
        Ok(req) => {
            let id = req.get("id").cloned().unwrap_or(Value::Null);
            let version_ok = req.get("jsonrpc").and_then(Value::as_str) == Some("2.0");
            let method = req
                .get("method")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let params = req.get("params").cloned().unwrap_or_else(|| json!({}));
            if !version_ok {
                (id, Err(invalid("JSON-RPC version is invalid")))
            } else if method.is_empty() {
                (id, Err(invalid("JSON-RPC method name is empty")))
            } else if !params.is_object() {
                (id, Err(invalid("JSON-RPC parameter is not an object")))
            } else {
                let b = Arc::clone(backend);
                let scope2 = scope.clone();
                let m = method.clone();
                let outcome =
                    tokio::task::spawn_blocking(move || dispatch(b.as_ref(), &scope2, &m, &params))
                        .await
                        .unwrap_or_else(|_| {
                            Err(RpcError {
                                code: i64::from(code::ERR_INTERNAL_ERROR),
                                message: "Error code 23: Internal error".into(),
                            })
                        });
                match &outcome {
                    Ok(_) => tracing::info!(%peer, method = %method, ?scope, "admin call"),
                    Err(e) => {
                        tracing::info!(%peer, method = %method, ?scope, code = e.code, "admin call failed")
                    }
                }
                (id, outcome)
            }
        }
    };
    write_response(
        stream,
        "200 OK",
        "application/json",
        &envelope(&id, outcome),
        head.keep_alive,
    )
    .await?;
    Ok(if head.keep_alive {
        Next::Again
    } else {
        Next::Close
    })
}

fn invalid(msg: &str) -> RpcError {
    RpcError {
        code: i64::from(code::ERR_INVALID_PARAMETER),
        message: format!("Error code {}: {msg}", code::ERR_INVALID_PARAMETER),
    }
}
