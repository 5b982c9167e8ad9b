//! L2TP version 2 (RFC 2661) as the LNS of L2TP/IPsec speaks it, sans-IO: the UDP payloads
//! a peer sends (after IPsec has been taken off) and `now` in; datagrams to send, PPP frames
//! and session events out.
//!
//! Must not: open sockets, read the clock, draw randomness (the caller seeds the ids), spawn,
//! or run PPP (each session's frames go to the caller's PPP link, `etherhub-ppp`).
//!
//! Written from RFC 2661 for the wire and behaviour, and from SoftEther's Proto_L2TP for what
//! its clients meet; no code of SoftEther's is in here.
//!
//! - [`packet`]: the header and the AVPs of control messages.
//! - [`server`]: the LNS: tunnels by id and peer, limits, counters, timers;
//! - `tunnel`: one control connection, its reliable delivery and its sessions.
pub mod packet;
pub mod server;
mod tunnel;

pub use server::{Config, Dropped, Event, SendError, Server, SessionKey};
