//! PPP as a server speaks it, sans-IO: the layer under SSTP and L2TP. PPP frames and time in;
//! PPP frames, events and IPv4 packets out.
//!
//! Must not: open sockets, read the clock, draw randomness (the caller hands in the magic
//! number and the challenges), or know users (authentication is asked of the caller).
//!
//! Written from RFC 1661 (LCP), 1332 and 1877 (IPCP), 1334 (PAP), 1994 (CHAP), 2759
//! (MS-CHAPv2) and 3079 (MPPE keys) for the behaviour, and from SoftEther's PPP for what its
//! clients meet; no code of SoftEther's is in here.

pub mod des;
pub mod frame;
pub mod fsm;
pub mod ipcp;
pub mod lcp;
pub mod mschapv2;
pub mod packet;
pub mod session;

pub use ipcp::Addressing;
pub use lcp::AuthMethod;
pub use session::{AuthAnswer, AuthRequest, Config, Dropped, Event, MsChapV2Keys, Session};

/// Bytes from hex text (blanks between them allowed), for the unit tests' vectors.
#[cfg(test)]
pub(crate) fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}
