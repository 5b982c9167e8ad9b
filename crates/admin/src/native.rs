//! SoftEther's native protocol after the signature, for its admin tools (vpncmd, the Server
//! Manager): the hello, the `admin` login checked against the hashed password, then PACK RPC
//! calls served by the same method table as JSON-RPC ([`crate::dispatch_pack`]).
//!
//! Every refusal is an `{"error": code}` PACK in SoftEther's words, then the connection
//! closes; failed logins count in the same per-address lockout as JSON-RPC's.

use std::net::SocketAddr;
use std::sync::Arc;

use etherhub_pack::{Limits as PackLimits, Pack};
use etherhub_softether::{
    admin_welcome, error_pack, frame, hello, page, Login, RpcReader, RpcReaderError, VPN_TARGET,
};
use rand::RngCore;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::backend::{Backend, Proof};
use crate::dispatch::dispatch_pack;
use crate::error::code;
use crate::guard::Admission;
use crate::http::{read_body, read_head, read_more, unix_secs, ConnError, Limits};
use crate::types::AdminScope;

/// What the hello says the server is.
pub const SERVER_STR: &str = "Etherhub VPN Server (SoftEther protocol)";
/// The SoftEther release whose protocol the hello claims (Debian's 5.01 build 9674).
pub const SOFTETHER_VERSION: u32 = 501;
pub const SOFTETHER_BUILD: u32 = 9674;

/// The largest login PACK SoftEther reads (`HTTP_PACK_MAX_SIZE`).
const MAX_LOGIN_PACK: usize = 65_536;

async fn send<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> Result<(), ConnError> {
    stream.write_all(bytes).await?;
    stream.flush().await?;
    Ok(())
}

/// Answers the login with an error PACK (the connection then closes).
async fn refuse<S: AsyncWrite + Unpin>(stream: &mut S, code: u32) -> Result<(), ConnError> {
    send(stream, &page::pack_response(&error_pack(code), unix_secs())).await
}

/// SoftEther's `password` method: a VPN user changes their password with the old one's
/// proof; the answer is an error PACK (0 when it worked), then the connection closes. A wrong
/// old password counts in the VPN login lockout.
async fn change_password<S: AsyncWrite + Unpin>(
    stream: &mut S,
    peer: SocketAddr,
    pack: &Pack,
    random: [u8; 20],
    backend: &Arc<dyn Backend>,
    limits: &Limits,
) -> Result<(), ConnError> {
    let (Some(hub), Some(user), Some(old), Some(new)) = (
        pack.str("hubname"),
        pack.str("username"),
        pack.data("secure_old_password")
            .and_then(|d| <[u8; 20]>::try_from(d).ok()),
        pack.data("new_password")
            .and_then(|d| <[u8; 20]>::try_from(d).ok()),
    ) else {
        return refuse(stream, code::ERR_PROTOCOL_ERROR).await;
    };
    let now = std::time::Instant::now();
    if let Admission::LockedOut(left) = limits.login_guard.check(peer.ip(), now) {
        tracing::warn!(%peer, locked_for_secs = left.as_secs(), "security: password change refused, address locked out");
        return refuse(stream, code::ERR_OLD_PASSWORD_WRONG).await;
    }
    let nt = pack
        .data("new_password_ntlm")
        .and_then(|d| <[u8; 16]>::try_from(d).ok())
        .filter(|d| d.iter().any(|b| *b != 0));
    let proof = Proof::Challenge {
        response: old,
        random,
    };
    let result = backend.change_user_password(hub, user, proof, new, nt);
    match &result {
        Ok(()) => tracing::info!(%peer, hub, user, "a VPN user changed their password"),
        Err(e) => {
            if e.code == code::ERR_OLD_PASSWORD_WRONG {
                let _ = limits.login_guard.failure(peer.ip(), now);
            }
            tracing::warn!(%peer, hub, user, code = e.code, "password change refused: {}", e.message);
        }
    }
    let code = result.err().map_or(code::ERR_NO_ERROR, |e| e.code);
    send(stream, &page::pack_response(&error_pack(code), unix_secs())).await
}

/// A request for a VPN session (`login`, `additional_connect`) the admin side does not serve:
/// the connection goes on to the session core with it.
pub struct SessionRequest {
    /// The 20 bytes the hello sent (a login's password proof is made with them).
    pub random: [u8; 20],
    /// The request PACK.
    pub request: Pack,
}

/// Serves a connection whose signature was just accepted; a VPN session's request comes back
/// for the runtime to hand on.
pub(crate) async fn serve<S>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    peer: SocketAddr,
    backend: &Arc<dyn Backend>,
    limits: &Limits,
) -> Result<Option<SessionRequest>, ConnError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut random = [0u8; 20];
    let mut padding = vec![0u8; (rand::random::<u32>() % 1000) as usize];
    rand::thread_rng().fill_bytes(&mut random);
    rand::thread_rng().fill_bytes(&mut padding);
    let h = hello(
        SERVER_STR,
        SOFTETHER_VERSION,
        SOFTETHER_BUILD,
        &random,
        &padding,
    );
    send(stream, &page::pack_response(&h, unix_secs())).await?;

    // The login: one POST of a PACK to /vpnsvc/vpn.cgi.
    let Some(head) = read_head(stream, buf, limits, limits.head_timeout).await? else {
        return Ok(None);
    };
    let len = head.content_length.unwrap_or(0);
    if head.method != "POST"
        || !head.path.eq_ignore_ascii_case(VPN_TARGET)
        || head.chunked
        || len == 0
        || len > MAX_LOGIN_PACK
    {
        tracing::warn!(%peer, method = %head.method, path = %head.path, len, "SoftEther client: the request after the hello is not a login; closing");
        return Ok(None);
    }
    let body = read_body(stream, buf, len, Instant::now() + limits.body_timeout).await?;
    let pack = match Pack::parse_with(&body, &PackLimits::default()) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "SoftEther client: malformed login; refused");
            refuse(stream, code::ERR_PROTOCOL_ERROR).await?;
            return Ok(None);
        }
    };
    let method = pack.str("method").unwrap_or("");
    if method.eq_ignore_ascii_case("login") || method.eq_ignore_ascii_case("additional_connect") {
        let login = method.eq_ignore_ascii_case("login");
        if let Admission::LockedOut(left) = limits
            .login_guard
            .check(peer.ip(), std::time::Instant::now())
        {
            if login {
                tracing::warn!(%peer, locked_for_secs = left.as_secs(), "security: VPN login refused, address locked out");
                refuse(stream, code::ERR_AUTH_FAILED).await?;
                return Ok(None);
            }
        }
        return Ok(Some(SessionRequest {
            random,
            request: pack,
        }));
    }
    if method.eq_ignore_ascii_case("password") {
        change_password(stream, peer, &pack, random, backend, limits).await?;
        return Ok(None);
    }
    let login = match Login::from_pack(&pack) {
        Ok(l) if l.is_admin() => l,
        Ok(l) => {
            tracing::warn!(%peer, method = %l.method, client = %l.client_str, "SoftEther client: a method Etherhub does not serve");
            refuse(stream, code::ERR_PROTOCOL_ERROR).await?;
            return Ok(None);
        }
        Err(e) => {
            tracing::warn!(%peer, error = %e, "SoftEther client: malformed login; refused");
            refuse(stream, code::ERR_PROTOCOL_ERROR).await?;
            return Ok(None);
        }
    };
    let Some(scope) = admin_login(stream, peer, &login, random, backend, limits).await? else {
        return Ok(None);
    };
    rpc_loop(stream, buf, peer, scope, backend, limits).await?;
    Ok(None)
}

/// Checks an admin login and answers it; `None` when refused (already answered).
async fn admin_login<S>(
    stream: &mut S,
    peer: SocketAddr,
    login: &Login,
    random: [u8; 20],
    backend: &Arc<dyn Backend>,
    limits: &Limits,
) -> Result<Option<AdminScope>, ConnError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let guard = &limits.login_guard;
    let hub = login.hub.clone();
    if let Admission::LockedOut(left) = guard.check(peer.ip(), std::time::Instant::now()) {
        tracing::warn!(%peer, locked_for_secs = left.as_secs(), "security: admin login (SoftEther protocol) refused, address locked out");
        refuse(stream, code::ERR_ACCESS_DENIED).await?;
        return Ok(None);
    }
    let response = login.secure_password.unwrap_or_default();
    let proof = Proof::Challenge { response, random };
    let b = Arc::clone(backend);
    let hub2 = hub.clone();
    let loopback = peer.ip().is_loopback();
    let outcome =
        tokio::task::spawn_blocking(move || b.authenticate(hub2.as_deref(), proof, loopback))
            .await
            .ok()
            .and_then(|r| r.ok());
    let Some(scope) = outcome else {
        // vpncmd tries the empty password first to learn whether one is needed: no guess
        if proof.is_empty() {
            tracing::debug!(%peer, "admin login with the empty password refused (a password is set)");
        } else {
            guard.failure(peer.ip(), std::time::Instant::now());
            tracing::warn!(%peer, hub = hub.as_deref().unwrap_or(""), client = %login.client_str, failures = guard.failures(peer.ip()), "security: admin login (SoftEther protocol) failed");
            tokio::time::sleep(limits.auth_failure_delay).await;
        }
        refuse(stream, code::ERR_ACCESS_DENIED).await?;
        return Ok(None);
    };
    guard.success(peer.ip());
    tracing::info!(%peer, ?scope, client = %login.client_str, "admin login (SoftEther protocol)");
    let welcome = admin_welcome(login.accept_empty_password && proof.is_empty());
    send(stream, &page::pack_response(&welcome, unix_secs())).await?;
    Ok(Some(scope))
}

/// Serves RPC calls, one at a time, until the peer closes, idles out or breaks the framing.
async fn rpc_loop<S>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    peer: SocketAddr,
    scope: AdminScope,
    backend: &Arc<dyn Backend>,
    limits: &Limits,
) -> Result<(), ConnError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let max = match scope {
        AdminScope::Server => limits.max_body_server_admin,
        AdminScope::Hub(_) => limits.max_body_hub_admin,
    };
    let mut reader = RpcReader::new(u32::try_from(max).unwrap_or(u32::MAX));
    reader.push(buf);
    buf.clear();
    loop {
        match reader.next_pack() {
            Ok(Some(call)) => {
                let name = call.str("function_name").unwrap_or("").to_string();
                let b = Arc::clone(backend);
                let s = scope.clone();
                let reply =
                    tokio::task::spawn_blocking(move || dispatch_pack(b.as_ref(), &s, &call))
                        .await
                        .unwrap_or_else(|_| error_pack(code::ERR_INTERNAL_ERROR));
                match reply.int("error") {
                    Some(e) if e != 0 => {
                        tracing::info!(%peer, method = %name, ?scope, code = e, "admin call failed")
                    }
                    _ => tracing::info!(%peer, method = %name, ?scope, "admin call"),
                }
                send(stream, &frame(&reply)).await?;
            }
            Ok(None) => {
                let deadline = Instant::now()
                    + if reader.buffered() == 0 {
                        limits.rpc_idle_timeout
                    } else {
                        limits.body_timeout
                    };
                let mut chunk = Vec::new();
                match read_more(stream, &mut chunk, deadline).await {
                    Ok(0) => return Ok(()),
                    Ok(_) => reader.push(&chunk),
                    Err(ConnError::Timeout) if reader.buffered() == 0 => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
            Err(e @ RpcReaderError::TooLarge(_)) | Err(e @ RpcReaderError::Malformed(_)) => {
                tracing::warn!(%peer, error = %e, "admin RPC (SoftEther protocol): bad frame; closing");
                return Ok(());
            }
        }
    }
}
