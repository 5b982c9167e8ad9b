//! SoftEther's native protocol, sans-IO: what a SoftEther client (vpncmd, the Server Manager,
//! vpnclient) and a server say to each other after TLS, before and around the PACKs.
//!
//! ```text
//! client                                   server
//! POST /vpnsvc/connect.cgi  (watermark) ->
//!                                       <- 200 application/octet-stream: hello PACK
//!                                          (server string, version, build, 20 random bytes)
//! POST /vpnsvc/vpn.cgi      (login PACK) ->  method "admin": SHA-0(SHA-0(password) || random)
//!                                       <- 200: empty PACK, or {error}
//! then, for "admin": u32 length + PACK, one call and one reply at a time
//! ```
//!
//! Old clients (vpncmd 5.01 connecting to anything but localhost) first send `GET /` with
//! `X-VPN: 1` and go on only if the answer is SoftEther's own 403 page ([`page::forbidden`]).
//!
//! This crate holds the facts and the parsers; the transport reads and writes the bytes.

#![forbid(unsafe_code)]

pub mod blocks;
pub mod handshake;
pub mod page;
pub mod rpc;
pub mod session;
pub mod signature;

pub use handshake::{admin_welcome, error_pack, hello, Login, LoginError};
pub use rpc::{frame, RpcReader, RpcReaderError};
pub use signature::{is_signature, signature_size_ok, SIGNATURE_TARGET, VPN_TARGET, WATERMARK};
