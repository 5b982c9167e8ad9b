//! The Etherhub runtime: the only crate that owns sockets, tasks and clocks.
//!
//! It loads (or creates) the config, binds the TCP and UDP listeners, and wires the protocol
//! cores together: UDP -> WireGuard -> virtual hubs ([`dataplane`]), TCP -> TLS -> admin API
//! ([`tcp`], [`backend`]). Protocol logic lives in the sans-IO crates beside it.

pub mod backend;
pub mod dataplane;
pub mod defaults;
pub mod nat;
pub mod runtime;
mod sys;
pub mod tcp;
pub mod udp;
pub mod wgclient;

pub use runtime::{run, start, Server};
