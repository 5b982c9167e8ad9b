//! Stream connections the engine serves (SoftEther's VPN sessions): the TLS connection stays
//! here, its bytes go to the engine and the engine's writes come back through a bounded queue.
//! A client that reads slower than the hub sends loses frames (counted), never the server's
//! memory.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use etherhub_admin::SessionRequest;
use etherhub_softether::session::Handoff;
use rand::RngCore;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::dataplane::{Dataplane, StreamMsg};

/// The most bytes of queued writes joined into one write to the connection.
const GATHER: usize = 256 * 1024;

/// Runs a SoftEther VPN session's connection: hands the request (with a fresh session key)
/// to the engine, then moves bytes both ways until either side ends it.
pub async fn run_softether<S>(
    dp: Arc<Dataplane>,
    stream: S,
    peer: SocketAddr,
    request: SessionRequest,
    rest: Vec<u8>,
    cipher: String,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (conn, rx) = dp.new_stream();
    let protocol = dp.lock().softether;
    let mut session_key = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut session_key);
    let unix_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let handoff = Handoff {
        random: request.random,
        session_key,
        cipher,
        unix_secs,
        request: request.request,
    };
    dp.open_stream(Instant::now(), protocol, conn, peer, &handoff.to_bytes());
    if !rest.is_empty() {
        dp.on_stream(Instant::now(), protocol, conn, &rest);
    }
    pump(dp, protocol, conn, rx, stream).await;
}

/// Runs an OpenVPN client's TCP connection (OpenVPN's own framing and TLS inside): every byte
/// goes to the engine's OpenVPN core.
pub async fn run_openvpn<S>(dp: Arc<Dataplane>, stream: S, peer: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (conn, rx) = dp.new_stream();
    let protocol = dp.lock().openvpn;
    dp.open_stream(Instant::now(), protocol, conn, peer, &[]);
    pump(dp, protocol, conn, rx, stream).await;
}

/// Runs an SSTP client's connection (after its `SSTP_DUPLEX_POST`): every byte goes to the
/// engine's SSTP core, which answers the request itself.
pub async fn run_sstp<S>(dp: Arc<Dataplane>, stream: S, peer: SocketAddr, rest: Vec<u8>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (conn, rx) = dp.new_stream();
    let protocol = dp.lock().sstp;
    dp.open_stream(Instant::now(), protocol, conn, peer, &rest);
    pump(dp, protocol, conn, rx, stream).await;
}

/// Moves a stream connection's bytes to the engine and the engine's writes back, until either
/// side ends it.
async fn pump<S>(
    dp: Arc<Dataplane>,
    protocol: etherhub_engine::ProtocolId,
    conn: etherhub_engine::ConnId,
    mut rx: tokio::sync::mpsc::Receiver<StreamMsg>,
    stream: S,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let reading = {
        let dp = dp.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            // a client that just closes (SoftEther sends no TLS close_notify) ends it too
            while let Ok(n) = rd.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                dp.on_stream(Instant::now(), protocol, conn, &buf[..n]);
            }
            dp.stream_gone(Instant::now(), protocol, conn);
        })
    };
    let mut out = Vec::with_capacity(GATHER);
    'conn: while let Some(msg) = rx.recv().await {
        let StreamMsg::Write(bytes) = msg else {
            break;
        };
        out.clear();
        out.extend_from_slice(&bytes);
        let mut close = false;
        while out.len() < GATHER {
            match rx.try_recv() {
                Ok(StreamMsg::Write(more)) => out.extend_from_slice(&more),
                Ok(StreamMsg::Close) => {
                    close = true;
                    break;
                }
                Err(_) => break,
            }
        }
        if wr.write_all(&out).await.is_err() || wr.flush().await.is_err() {
            break 'conn;
        }
        if close {
            break;
        }
    }
    reading.abort();
    dp.stream_gone(Instant::now(), protocol, conn);
    let _ = wr.shutdown().await;
}
