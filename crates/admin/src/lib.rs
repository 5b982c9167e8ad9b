//! Etherhub's admin API: the method table SoftEther's tools speak (`CreateHub`, `EnumSession`,
//! `AddWgk`, ...) with SoftEther's JSON-RPC field names, and its transport, JSON-RPC 2.0 over
//! HTTP/1.1 on `POST /api/` with the `X-VPNADMIN-HUBNAME` / `X-VPNADMIN-PASSWORD` login.
//!
//! The server implements [`Backend`] in domain terms; [`dispatch`] turns JSON into calls on it
//! and enforces scope (a hub administrator touches only its hub); [`serve_connection`] runs one
//! decrypted connection; [`tls_server_config`] builds the rustls config the caller accepts with.
//!
//! What this crate must not do: own sockets, listeners, tasks beyond the connection it is given,
//! or server state; store or log passwords (a failed login logs the peer, never the password);
//! let a hub administrator reach another hub or a server-wide method.

#![forbid(unsafe_code)]
#![recursion_limit = "256"]

mod backend;
mod dispatch;
mod error;
mod guard;
mod http;
mod native;
pub mod packjson;
mod tls;
mod types;
pub mod wire;

pub use backend::{AdminResult, Backend, Proof};
pub use dispatch::{caps, dispatch, dispatch_pack, method, Access, Method, METHODS};
pub use error::{code, error_text, AdminError, RpcError, JSONRPC_METHOD_NOT_FOUND};
/// A MAC address as access rules write it (`00-AC-...`, `00:ac:...`).
pub use etherhub_config::access::MacMatch as AccessMac;
/// MAC addresses as SoftEther writes them (`00-AC-...`) and reads them.
pub use etherhub_config::model::{format_mac, parse_mac};
/// SoftEther's security policy items (for tools that show or edit policies).
pub use etherhub_config::policy;
pub use etherhub_config::proto::ProtoValue;
pub use guard::{Admission, LoginGuard, DEFAULT_LOCKOUT, DEFAULT_MAX_FAILURES, DEFAULT_WINDOW};
pub use http::{serve_connection, serve_connection_with, Ends, Limits, Outcome};
pub use native::{SessionRequest, SERVER_STR, SOFTETHER_BUILD, SOFTETHER_VERSION};
pub use tls::{pem_certificate, tls_client_config_any_cert, tls_server_config, TlsConfigError};
pub use types::*;
