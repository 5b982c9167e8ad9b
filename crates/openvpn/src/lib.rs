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
//! - [`session`]: one client's session: reset, TLS (rustls, driven without IO), key exchange,
//!   authentication asked of the caller, the push reply, data.

pub mod data;
pub mod keys;
pub mod packet;
pub mod reliable;
pub mod session;
