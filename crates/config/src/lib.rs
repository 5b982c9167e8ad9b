//! SoftEther's `vpn_server.config` format and Etherhub's typed view of it.
//!
//! For: parsing and writing the `declare` text tree byte-for-byte as SoftEther does ([`tree`]),
//! SoftEther's password hashes ([`hash`]), a typed model of what Etherhub uses that keeps every
//! unknown block and value ([`model`]), and saving that never loses a config ([`store`]).
//! Must not: open sockets, start tasks, or read the clock for anything but backup names.
#![forbid(unsafe_code)]

pub mod access;
pub mod hash;
pub mod ipsec;
pub mod model;
pub mod policy;
pub mod proto;
pub mod store;
pub mod tree;
pub mod wgaddr;

pub use access::AccessRule;
pub use model::{
    Config, GroupSettings, HubSettings, Listener, ModelError, SecureNatSettings, UserSettings,
    WgKey, WireGuardSettings, DEFAULT_HUB, DEFAULT_PORTS,
};
pub use policy::Policy;
pub use store::{Store, StoreError};
pub use tree::{Folder, Item, ParseError, Value};
pub use wgaddr::HubNetwork;
