//! Etherhub's WireGuard engine: a sans-IO, multi-peer WireGuard *server* built on boringtun's
//! noise core (`boringtun::noise`).
//!
//! What it does: takes received UDP datagrams and the current time, finds the peer (a handshake
//! initiation by the initiator's static key, which it asks the caller's [`KeyDirectory`]
//! about; everything else by the receiver index), runs the Noise IKpsk2 handshake, decrypts and
//! encrypts transport data, sends cookie replies when handshakes arrive faster than it wants to
//! answer them, follows roaming clients, and drives per-peer timers. It reports what to send as [`Action`]s written into
//! buffers the caller owns, and what happened to peers as [`Event`]s.
//!
//! What it must not do: open sockets, spawn tasks or threads, take locks the caller could block
//! on, keep the list of registered keys (accounts belong to the engine, asked through
//! [`KeyDirectory`]), or know about hubs, users and addresses. The engine around it owns the
//! mapping of peers to hub sessions and checks their inner source addresses; the runtime owns
//! the UDP sockets and the clock.
//!
//! Known compromise: boringtun's per-peer timers and its cookie secret read the monotonic clock
//! themselves (`Tunn::update_timers`, `RateLimiter`). Everything this crate decides on its own
//! (the 180 s peer expiry, `last_handshake`) uses the `now` it is given, but keepalive, rekey and
//! session expiry inside boringtun follow the real clock, so tests cannot fast-forward them.
//!
//! Call order, per received datagram: [`Server::handle_datagram`], then [`Server::poll_queued`]
//! until it returns [`Action::Nothing`] (packets boringtun held back until a session existed),
//! then [`Server::poll_event`] until `None`. Every ~250 ms: [`Server::handle_timers`].
#![forbid(unsafe_code)]

mod keys;
mod ratelimit;
mod server;
pub mod wire;

use std::net::SocketAddr;
use std::time::Instant;

pub use keys::{
    generate_private_key, key_from_base64, key_to_base64, public_key_of, Key, KeyError,
};
pub use ratelimit::{PER_SOURCE_BURST, PER_SOURCE_PER_SECOND};
pub use server::{
    DataPath, Opened, PathReader, Server, DEFAULT_HANDSHAKE_RATE_LIMIT, MIN_BUFFER_LEN, PEER_EXPIRY,
};
pub use wire::is_wireguard;

/// A live peer, valid until its [`Event::Disconnected`]. It is also the upper 24 bits of the
/// receiver index the server puts in every session it negotiates, so it is below 2^24.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u32);

/// What the server needs to know of a client key it may accept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyAccess {
    /// This client's own preshared key (`None`: the server-wide one).
    pub psk: Option<Key>,
}

/// Who may connect. The server asks it during every handshake initiation from a key without
/// a live peer, so the keys live with whoever owns the accounts (Etherhub's engine), not here.
pub trait KeyDirectory {
    /// `None`: the key is not registered, and its initiation is answered with silence.
    fn lookup(&self, client_public: &Key) -> Option<KeyAccess>;
}

impl<S: std::hash::BuildHasher> KeyDirectory for std::collections::HashMap<Key, KeyAccess, S> {
    fn lookup(&self, client_public: &Key) -> Option<KeyAccess> {
        self.get(client_public).cloned()
    }
}

/// What the caller should do with the bytes the server wrote into its buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Action<'a> {
    /// Nothing to do.
    Nothing,
    /// Send this datagram to this UDP address.
    Send(SocketAddr, &'a [u8]),
    /// A decrypted IPv4/IPv6 packet from this peer, for the hub.
    Packet(PeerId, &'a [u8]),
}

/// Changes in the set of live peers, read with [`Server::poll_event`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The server answered the first initiation of a key the directory knows; a hub session
    /// should be created. This comes before the client has used the session: a client with the wrong
    /// preshared key, or a replay of an initiation captured before this key's last peer was
    /// removed, also produces it (such a peer never passes data and expires after
    /// [`PEER_EXPIRY`]).
    Connected {
        /// The new peer.
        peer: PeerId,
        /// The client's static public key.
        key: Key,
        /// Where the initiation came from.
        endpoint: SocketAddr,
    },
    /// The peer is gone (key removed or changed, or the session expired); its id is dead.
    Disconnected {
        /// The peer that went away.
        peer: PeerId,
    },
}

/// A snapshot of one peer, for admin listings and metrics.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    /// The client's static public key.
    pub public_key: Key,
    /// Where the last authenticated packet came from.
    pub endpoint: SocketAddr,
    /// When the last handshake completed (by the `now` given to the server).
    pub last_handshake: Option<Instant>,
    /// Bytes of IP packets received through the tunnel (inner packets, keepalives excluded).
    pub rx_bytes: u64,
    /// Bytes of IP packets sent through the tunnel.
    pub tx_bytes: u64,
    /// IP packets received through the tunnel.
    pub rx_packets: u64,
    /// IP packets sent through the tunnel.
    pub tx_packets: u64,
    /// Datagrams addressed to this peer that failed authentication or were refused (replays,
    /// bad tags, stale handshakes), and outgoing packets that did not fit the caller's buffer.
    pub dropped: u64,
}

/// Server-wide counters, never reset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Handshakes completed (as responder or initiator).
    pub handshakes_ok: u64,
    /// Valid initiations from a static key that is not registered (answered with silence).
    pub unknown_key_initiations: u64,
    /// Datagrams dropped because they were malformed or failed authentication (bad MAC1,
    /// undecryptable initiation, bad tag, replay, wrong length or type).
    pub malformed_dropped: u64,
    /// Datagrams addressed to a receiver index that has no live peer (for instance after
    /// [`Server::remove_key`]).
    pub unknown_index_dropped: u64,
    /// Cookie replies sent because handshakes arrived faster than the rate limit.
    pub cookie_replies_sent: u64,
    /// Handshakes with a valid MAC2 dropped under load because their source address sent more
    /// than [`PER_SOURCE_PER_SECOND`] a second (bursts of [`PER_SOURCE_BURST`]).
    pub handshakes_rate_limited: u64,
    /// Peers removed because their session died (expiry or no handshake for [`PEER_EXPIRY`]).
    pub peers_expired: u64,
}
