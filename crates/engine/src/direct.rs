//! Direct forwarding: unicast IPv4 from one WireGuard peer to another on the same hub, carried
//! by a worker without the engine's lock, where the hub would pass it untouched anyway.
//!
//! Under its lock the engine builds a [`Direct`] table ([`crate::Engine::direct_table`]): the
//! WireGuard peers whose hub sessions are among the hub's [`Hub::direct_sessions`] (plain
//! policies, no access list or monitoring session on the hub, the address the session is held
//! to, its MAC known to the switch), each with the place it talks from. A worker that opened a
//! packet from such a peer, from that place, to the address of another such peer on the same
//! hub, seals it straight to that peer ([`Direct::route`]).
//!
//! Whatever may change the table (an admin change, a tunnel opening or ending, a peer moving,
//! an address learnt, the hubs' tick once a second) bumps a generation the workers read
//! without the lock ([`DirectGeneration`]): a worker whose table is older sends everything to
//! the engine until its next hold of the lock gives it the new one. A packet forwarded while
//! the engine changes is one the engine saw before the change, as with any batch in flight.
//!
//! The hub still counts every such packet and keeps its sender's MAC and IP table entries
//! fresh: the worker adds up what it carried ([`DirectCounts`]) and hands the sums in at its
//! next hold of the lock ([`crate::Engine::count_direct`]), at the latest after
//! [`DIRECT_COUNTS_MAX`] packets or before its task waits for more.
//!
//! [`Hub::direct_sessions`]: etherhub_hub::Hub::direct_sessions

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use etherhub_hash::{IdMap, KeyedMap};
use etherhub_hub::SessionId;
use etherhub_wireguard::{DataPath, PeerId};

use crate::core::HubId;

/// Packets a worker may forward before it hands their counts to the engine.
pub const DIRECT_COUNTS_MAX: u64 = 1024;

/// The generation of the engine's direct table, shared with the workers. Bumped under the
/// engine's lock by everything that may change the table; read by workers without it.
#[derive(Clone, Debug, Default)]
pub struct DirectGeneration(Arc<AtomicU64>);

impl DirectGeneration {
    pub(crate) fn bump(&self) -> u64 {
        self.0.fetch_add(1, Ordering::AcqRel) + 1
    }

    pub fn current(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// A peer the table forwards from and to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DirectPeer {
    hub: HubId,
    session: SessionId,
    ip: Ipv4Addr,
    /// The listener it talks to and its own address, as the engine last saw them: a packet
    /// from elsewhere goes to the engine, which notes the move.
    local: SocketAddr,
    endpoint: SocketAddr,
}

/// Where a packet the table forwards goes, and what the hub is to count for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hop {
    pub to: PeerId,
    /// The listener the receiving peer talks to.
    pub local: SocketAddr,
    /// The packet's length (its IPv4 total length: bytes after it are not part of it).
    pub len: usize,
    hub: HubId,
    from_session: SessionId,
    to_session: SessionId,
}

/// See the module docs. Built by [`crate::Engine::direct_table`].
pub struct Direct {
    pub(crate) generation: u64,
    path: DataPath,
    peers: IdMap<PeerId, DirectPeer>,
    /// Addresses are the admin's or the clients' choice: a keyed hash.
    by_ip: KeyedMap<(HubId, Ipv4Addr), PeerId>,
}

impl Direct {
    pub(crate) fn new(generation: u64, path: DataPath) -> Direct {
        Direct {
            generation,
            path,
            peers: IdMap::default(),
            by_ip: KeyedMap::default(),
        }
    }

    pub(crate) fn add(
        &mut self,
        peer: PeerId,
        (hub, session, ip): (HubId, SessionId, Ipv4Addr),
        (local, endpoint): (SocketAddr, SocketAddr),
    ) {
        let p = DirectPeer {
            hub,
            session,
            ip,
            local,
            endpoint,
        };
        self.peers.insert(peer, p);
        self.by_ip.insert((hub, ip), peer);
    }

    /// Peers in the table.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Whether it is current as of `generation` for the server `path` opens for.
    pub fn is_current(&self, generation: u64, path: &DataPath) -> bool {
        self.generation == generation && self.path.same_as(path)
    }

    /// Where `packet`, opened from `peer` arriving at `local` from `from`, goes without the
    /// engine; `None` for the engine to decide: a peer not in the table or talking from
    /// another place, anything but a well-formed unicast IPv4 packet from the peer's own
    /// address to another peer's in the table on its hub, and DHCP replies (the switch notes
    /// their leases).
    pub fn route(
        &self,
        peer: PeerId,
        local: SocketAddr,
        from: SocketAddr,
        packet: &[u8],
    ) -> Option<Hop> {
        let p = self.peers.get(&peer)?;
        if p.local != local || p.endpoint != from {
            return None;
        }
        let (src, dst, len) = forwardable(packet)?;
        if src != p.ip {
            return None;
        }
        let to = *self.by_ip.get(&(p.hub, dst))?;
        let q = self.peers.get(&to).filter(|_| to != peer)?;
        Some(Hop {
            to,
            local: q.local,
            len,
            hub: p.hub,
            from_session: p.session,
            to_session: q.session,
        })
    }
}

/// Source, destination and length of a packet a table may forward: a well-formed IPv4 packet
/// that is not (and may not be) a DHCP reply. What comes after its IPv4 total length is not
/// part of it.
pub fn forwardable(packet: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr, usize)> {
    let (src, dst, len) = ipv4_unicast(packet)?;
    (!is_dhcp_reply(&packet[..len])).then_some((src, dst, len))
}

/// Source, destination and total length of a well-formed IPv4 packet (version 4, a header of
/// at least 20 bytes, a total length that covers the header and fits).
fn ipv4_unicast(packet: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr, usize)> {
    let first = *packet.first()?;
    let header = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || header < 20 || packet.len() < header {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    if total < header || total > packet.len() {
        return None;
    }
    let addr =
        |at: usize| Ipv4Addr::new(packet[at], packet[at + 1], packet[at + 2], packet[at + 3]);
    Some((addr(12), addr(16), total))
}

/// Whether a well-formed IPv4 packet is (or may be) a DHCP reply: UDP from port 67 or to port
/// 68, or a UDP fragment after the first (whose ports it does not carry).
fn is_dhcp_reply(packet: &[u8]) -> bool {
    if packet[9] != 17 {
        return false;
    }
    let offset = u16::from_be_bytes([packet[6], packet[7]]) & 0x1fff;
    let header = usize::from(packet[0] & 0x0f) * 4;
    match packet.get(header..header + 4) {
        Some(ports) if offset == 0 => {
            u16::from_be_bytes([ports[0], ports[1]]) == 67
                || u16::from_be_bytes([ports[2], ports[3]]) == 68
        }
        _ => true,
    }
}

/// What a worker forwarded through its table, summed per pair of sessions, for the hub to
/// count ([`crate::Engine::count_direct`]).
#[derive(Debug, Default)]
pub struct DirectCounts {
    pairs: IdMap<(HubId, SessionId, SessionId), (u64, u64)>,
    packets: u64,
}

impl DirectCounts {
    pub(crate) fn add(&mut self, hop: &Hop) {
        let sums = (self.pairs)
            .entry((hop.hub, hop.from_session, hop.to_session))
            .or_default();
        sums.0 += 1;
        sums.1 += hop.len as u64;
        self.packets += 1;
    }

    /// Packets counted and not yet handed in.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Each pair's (hub, sender, receiver, packets, bytes), emptying the sums.
    pub(crate) fn drain(
        &mut self,
    ) -> impl Iterator<Item = (HubId, SessionId, SessionId, u64, u64)> + '_ {
        self.packets = 0;
        self.pairs
            .drain()
            .map(|((hub, from, to), (packets, bytes))| (hub, from, to, packets, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(proto: u8, src: [u8; 4], dst: [u8; 4], ports: (u16, u16), total: u16) -> Vec<u8> {
        let mut p = vec![0u8; usize::from(total).max(28)];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[9] = proto;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        p[20..22].copy_from_slice(&ports.0.to_be_bytes());
        p[22..24].copy_from_slice(&ports.1.to_be_bytes());
        p
    }

    #[test]
    fn only_well_formed_ipv4_is_read_and_its_padding_is_left_out() {
        let mut p = packet(6, [10, 0, 0, 2], [10, 0, 0, 3], (1, 2), 60);
        p.extend_from_slice(&[0; 4]);
        let want = (Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3), 60);
        assert_eq!(ipv4_unicast(&p), Some(want));
        let mut bad = p.clone();
        bad[0] = 0x65;
        assert_eq!(ipv4_unicast(&bad), None, "not version 4");
        bad[0] = 0x44;
        assert_eq!(ipv4_unicast(&bad), None, "a header under 20 bytes");
        bad = p.clone();
        bad[2..4].copy_from_slice(&200u16.to_be_bytes());
        assert_eq!(ipv4_unicast(&bad), None, "longer than what came");
        bad[2..4].copy_from_slice(&10u16.to_be_bytes());
        assert_eq!(ipv4_unicast(&bad), None, "shorter than its header");
        assert_eq!(ipv4_unicast(&p[..10]), None);
        assert_eq!(ipv4_unicast(&[]), None);
    }

    #[test]
    fn dhcp_replies_and_later_udp_fragments_are_left_to_the_hub() {
        let (a, b) = ([10, 0, 0, 2], [10, 0, 0, 3]);
        assert!(is_dhcp_reply(&packet(17, a, b, (67, 68), 300)));
        assert!(is_dhcp_reply(&packet(17, a, b, (5000, 68), 300)));
        assert!(is_dhcp_reply(&packet(17, a, b, (67, 5000), 300)));
        assert!(!is_dhcp_reply(&packet(17, a, b, (68, 67), 300)));
        assert!(!is_dhcp_reply(&packet(6, a, b, (67, 68), 300)));
        let mut later = packet(17, a, b, (1000, 2000), 300);
        later[6..8].copy_from_slice(&100u16.to_be_bytes());
        assert!(is_dhcp_reply(&later), "its ports are in the first fragment");
    }
}
