//! Etherhub's engine: the sans-IO data plane every VPN protocol plugs into.
//!
//! What it is for: [`Engine`] owns the virtual hubs, their SecureNAT hosts, the protocol cores
//! (WireGuard first; SoftEther's own sessions in [`softether`]; each further protocol is a
//! [`Protocol`] core and a [`Engine::register`]) and the links between a protocol's tunnels and hub sessions. It
//! answers the cores' login questions from its accounts, checks the inner source address of IP
//! tunnels, takes admin changes as [`Change`] values at one point, and contains a panic on the
//! packet path to the tunnel or SecureNAT host it happened in.
//!
//! What it must not do: open sockets, spawn tasks or threads, read the clock or files, draw
//! randomness (beyond what the protocols' cryptography draws from the OS as its libraries
//! do: WireGuard's and TLS's handshakes), or log. Time comes in as `now`; datagrams, stream bytes, socket work for
//! SecureNAT and events go out through the `poll_*` methods, for the runtime to carry out.
//! Its state is one value. A runtime with several threads keeps it behind one lock and lets each
//! receiving thread be a [`workers::Worker`]: WireGuard's data messages are decrypted and
//! encrypted on that thread, under their own peer's lock only, and the engine's lock covers the
//! switching between them, but for unicast between plain WireGuard sessions of one hub, which
//! a worker forwards itself through the engine's [`direct`] table.
#![forbid(unsafe_code)]

mod accounts;
mod change;
mod core;
pub mod direct;
mod engine;
pub mod fault;
pub mod ipsec;
pub mod l2tp;
pub mod openvpn;
mod ppplink;
mod seam;
pub mod softether;
pub mod sstp;
pub mod transmit;
pub mod wireguard;
pub mod workers;

#[cfg(test)]
mod tests;

pub use change::{Change, HubSpec, UserAuth, UserSpec, WgKeySpec, WireGuardSpec};
pub use core::{EngineEvent, EngineStats, HubId, NatRef, Outside, HUB_TICK, NAT_TIMER_MIN};
pub use engine::{DisconnectError, Engine, Health, TunnelView};
pub use fault::{in_containment, Fault};
pub use seam::{
    AddressRule, AuthError, AuthRequest, ClientReport, CloseReason, ConnId, Credential, Grant, Io,
    IpConfig, KeyGrant, Live, Medium, Opened, Protocol, ProtocolId, SessionDetails, StreamOutput,
    Transmit, TunnelId, WriteDatagram,
};
