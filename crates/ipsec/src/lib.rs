//! IPsec for L2TP/IPsec, sans-IO: an IKEv1 responder ([`ike`]: main and aggressive mode with a
//! pre-shared key, quick mode for ESP in transport mode, NAT traversal, DPD, deletes) and the
//! ESP data path ([`esp`]: AES-CBC with HMAC, AES-GCM, anti-replay; [`natt`]: RFC 3948's UDP
//! encapsulation on port 4500). Bytes and time in, datagrams and events out; no sockets.

pub mod esp;
pub mod ike;
pub mod natt;
pub mod sa;

pub use sa::{ChildSa, Encap, EspCipher, EspInteg, EspKeys};
