//! SSTP (Microsoft's Secure Socket Tunneling Protocol, MS-SSTP) as a server speaks it,
//! sans-IO: the bytes of the TLS connection after the client's `SSTP_DUPLEX_POST` request in,
//! PPP frames and bytes to write out. Written from MS-SSTP and SoftEther's Proto_SSTP for the
//! facts; no code of theirs is in here.
//!
//! - [`packet`]: the packet header, control messages and their attributes;
//! - [`session`]: one call: connect request and ack with the crypto binding request, connected,
//!   echo, disconnect and abort, timers.

pub mod packet;
pub mod session;

/// The request line's method and the path every client asks for (MS-SSTP 2.2.1).
pub const METHOD: &str = "SSTP_DUPLEX_POST";
pub const PATH: &str = "/sra_{BA195980-CD49-458b-9E23-C84EE0ADCD75}/";
