//! Etherhub's virtual hub: the SoftEther-style learning Ethernet switch that every VPN session
//! plugs into.
//!
//! What it is for:
//! - one [`Hub`] per virtual hub; each session is a port on a learning L2 switch with a MAC table
//!   (ageing 600 s), an IP table (ageing 60 s, learned from ARP senders and IP sources), flooding of
//!   broadcast, multicast and unknown unicast, and per-session traffic counters as SoftEther keeps them;
//! - the L3 adapter (SoftEther's IPC) for sessions that speak bare IP packets, such as WireGuard
//!   peers: a virtual MAC per session, ARP on the session's behalf with a small queue, answers to ARP
//!   for the session's own address, and unwrapping of frames back into IP packets;
//! - the SecureNAT virtual host session (ARP and ICMP echo for its address) and a [`VirtualHost`]
//!   trait so that the securenat crate can attach a fuller host (NAT, DHCP, DNS) later.
//!
//! What it must not do:
//! - no I/O, no sockets, no tasks, no locks and no clock: every input carries `now`, and every output
//!   is pushed into a caller-owned `Vec`;
//! - never panic on what a peer sends: frames and packets are parsed through checked
//!   `smoltcp::wire` views, and malformed or undeliverable input is dropped and counted
//!   ([`Hub::dropped`]);
//! - no knowledge of users, authentication or configuration files; those live in other crates
//!   (a session's port only enforces the [`PortPolicy`] it is given, the hub the access rules;
//!   their data types come from etherhub-config).
//!
//! Call order: feed packets with [`Hub::input_ip`] / [`Hub::input_frame`] and call [`Hub::tick`]
//! about once a second; each call may push [`Delivery`] values for the caller to send on.
#![forbid(unsafe_code)]

mod access;
mod guard;
mod hub;
mod l3;
mod packet;
mod policy;
mod table;
mod vhost;

pub use access::{rule_matches, AccessList, FrameInfo, Ident, Impairment, UserLists, Verdict};
pub use hub::{
    Delivery, Hub, HubTraffic, IpEntry, MacEntry, SessionId, SessionInfo, SessionKind,
    StaticNetwork, Traffic, IP_TABLE_EXPIRE, MAC_TABLE_EXPIRE,
};
pub use policy::{Filters, PortPolicy};
pub use vhost::{parse_echo_request, HostInput, SecureNatHost, VirtualHost, VirtualHostConfig};
