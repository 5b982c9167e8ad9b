//! Command-line values shared by the load tools (`wg-flood`, `wg-peers`): each takes the word
//! after its flag and says what was wrong with it.

use etherhub_wireguard::{key_from_base64, Key};
use std::net::SocketAddr;

/// A WireGuard key in base64.
pub fn key(v: Option<String>) -> Result<Key, String> {
    key_from_base64(&v.ok_or("a key is missing")?).map_err(|e| e.to_string())
}

/// A whole number.
pub fn num(v: Option<String>) -> Result<u64, String> {
    v.ok_or("a number is missing")?
        .parse()
        .map_err(|e| format!("{e}"))
}

/// An `ip:port` given to `flag`.
pub fn addr(flag: &str, v: Option<String>) -> Result<SocketAddr, String> {
    v.ok_or_else(|| format!("{flag} needs ip:port"))?
        .parse()
        .map_err(|e| format!("{flag}: {e}"))
}
