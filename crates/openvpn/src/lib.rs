//! OpenVPN's protocol as a server speaks it, sans-IO: bytes and time in, packets and events
//! out. Written from OpenVPN's documentation and source for the facts (wire formats,
//! constants); no code of OpenVPN's is in here.
//!
//! Layers, bottom up:
//! - [`packet`]: the opcode byte, control packets (session ids, acknowledgements, message ids)
//!   and data packet headers;
//! - [`reliable`]: the control channel's reliability layer (ordering, acknowledgement,
//!   retransmission);
//! - [`keys`]: key method 2 (the messages inside TLS) and the data channel's key material;
//! - [`data`]: the data channel (AEAD: AES-GCM, ChaCha20-Poly1305) with its replay window;
//! - [`tls_crypt`]: tls-crypt, the control channel wrapped in a key both sides had beforehand;
//! - [`session`]: one client's session: reset, TLS (rustls, driven without IO), key exchange,
//!   authentication asked of the caller, the push reply, data.

pub mod data;
pub mod keys;
pub mod packet;
pub mod prf;
pub mod reliable;
pub mod session;
pub mod tls_crypt;

/// Bytes from hex text (blanks between them allowed), for the unit tests' captured packets.
#[cfg(test)]
pub(crate) fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}
