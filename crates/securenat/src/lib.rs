//! SecureNAT: the virtual host that gives a hub's sessions a way out.
//!
//! What it is for:
//! - [`NatHost`], a [`etherhub_hub::VirtualHost`] that answers ARP and ICMP echo for its own
//!   address, serves DHCP from a pool ([`DhcpConfig`]), relays DNS sent to its address to the
//!   server's resolvers, and NATs TCP (through smoltcp sockets, one per connection), UDP and
//!   ICMP echo to sockets the runtime opens on the server;
//! - the NAT table (EnumNAT), the DHCP lease table (EnumDHCP) and counters.
//!
//! What it must not do:
//! - no sockets, no tasks, no clock, no randomness: it asks for socket work with
//!   [`IoRequest`]s and learns the results from [`IoEvent`]s; every call carries `now`;
//! - never panic on what a client sends: frames are parsed through checked `smoltcp::wire`
//!   views and malformed input is reported to the hub (which counts it) or counted here.
#![forbid(unsafe_code)]

mod dhcp;
mod host;
mod io;
mod packet;

pub use dhcp::{parse_push_routes, DhcpConfig, Lease, PushRoute};
pub use host::{NatConfig, NatCounters, NatEntry, NatHost, NatProtocol, TcpStatus};
pub use io::{FlowId, IoEvent, IoRequest};
