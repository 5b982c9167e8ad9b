//! The Etherhub runtime: the only crate that owns sockets, tasks and clocks.
//!
//! It loads (or creates) the config, builds the engine from it, binds the TCP and UDP
//! listeners, and moves bytes between sockets and the engine ([`dataplane`], [`udp`], [`nat`]);
//! TCP connections go through TLS to the HTTPS front door ([`tcp`], [`backend`]), SoftEther
//! VPN sessions on to the engine (`streams`). Admin changes are
//! saved, then reach the engine as values ([`changes`], [`server::Server::change_config`]).
//! Protocol logic lives in the sans-IO crates beside it.

pub mod backend;
pub mod changes;
pub mod dataplane;
pub mod defaults;
mod events;
pub mod nat;
pub mod ovpnconfig;
pub mod runtime;
pub mod server;
mod streams;
mod sys;
pub mod tcp;
pub mod udp;
pub mod userlists;
pub mod wgclient;

pub use runtime::{run, start};
pub use server::Server;
