//! Addresses for WireGuard peers on a hub's static network (Option DefaultGateway and
//! DefaultSubnet, set by SetStaticNetwork).
//!
//! A peer's address is chosen when its key is registered and stored with the key, so that the
//! client config can name it and the server can refuse packets from any other source. Which
//! addresses are never handed out: the network and broadcast addresses, the hub's gateway, the
//! SecureNAT virtual host's address and its DHCP server's lease pool (when SecureNAT and its DHCP
//! are on: those clients must not collide with a peer), and every address another key of the
//! same hub holds.

use crate::model::{Config, ModelError};
use std::collections::HashSet;
use std::net::Ipv4Addr;

/// A hub's IPv4 network as SetStaticNetwork describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HubNetwork {
    pub gateway: Ipv4Addr,
    /// Prefix length of the subnet mask (its leading ones; a mask with holes is cut there).
    pub prefix: u8,
}

impl HubNetwork {
    pub fn new(gateway: Ipv4Addr, mask: Ipv4Addr) -> HubNetwork {
        HubNetwork {
            gateway,
            prefix: u32::from(mask).leading_ones() as u8,
        }
    }

    fn mask_bits(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.gateway) & self.mask_bits())
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.gateway) | !self.mask_bits())
    }

    /// `192.168.30.0/24`
    pub fn cidr(&self) -> String {
        format!("{}/{}", self.network(), self.prefix)
    }

    /// Inside the network and neither its network nor its broadcast address.
    pub fn is_host(&self, a: Ipv4Addr) -> bool {
        u32::from(a) & self.mask_bits() == u32::from(self.network())
            && a != self.network()
            && a != self.broadcast()
    }

    /// Host addresses in the network (0 for /31 and /32, which have none to give).
    pub fn host_count(&self) -> u64 {
        (1u64 << (32 - u32::from(self.prefix))).saturating_sub(2)
    }
}

/// What an address is reserved for, or `None` when it is free.
fn holder(a: Ipv4Addr, reserved: &[(Ipv4Addr, String)]) -> Option<&str> {
    reserved
        .iter()
        .find(|(r, _)| *r == a)
        .map(|(_, why)| why.as_str())
}

/// A range of addresses no peer gets, first to last inclusive, and who holds it.
pub type ReservedRange = (Ipv4Addr, Ipv4Addr, String);

fn in_range(a: Ipv4Addr, ranges: &[ReservedRange]) -> Option<&ReservedRange> {
    ranges.iter().find(|(lo, hi, _)| *lo <= a && a <= *hi)
}

/// The lowest free host address of `net`, or the one asked for when it is a free host address.
/// `reserved` pairs an address with who holds it (for the error text); `ranges` are whole
/// ranges held (SecureNAT's DHCP pool).
pub fn choose(
    hub: &str,
    net: HubNetwork,
    reserved: &[(Ipv4Addr, String)],
    ranges: &[ReservedRange],
    requested: Option<Ipv4Addr>,
) -> Result<Ipv4Addr, ModelError> {
    if let Some(a) = requested {
        if !net.is_host(a) {
            return Err(ModelError::WgAddressOutsideNetwork {
                hub: hub.to_string(),
                addr: a,
                network: net.cidr(),
            });
        }
        let by = holder(a, reserved)
            .map(str::to_string)
            .or_else(|| in_range(a, ranges).map(|(lo, hi, why)| format!("{why} {lo}-{hi}")));
        if let Some(by) = by {
            return Err(ModelError::WgAddressTaken {
                hub: hub.to_string(),
                addr: a,
                by,
            });
        }
        return Ok(a);
    }
    let taken: HashSet<u32> = reserved.iter().map(|(a, _)| u32::from(*a)).collect();
    let last = u64::from(u32::from(net.broadcast())).saturating_sub(1);
    let mut a = u64::from(u32::from(net.network())) + 1;
    // Every step moves past one taken address or one whole range: the loop ends within
    // |taken| + |ranges| + 1 steps.
    for _ in 0..=(taken.len() + ranges.len()) {
        if a > last {
            break;
        }
        let ip = Ipv4Addr::from(a as u32);
        if let Some((_, hi, _)) = in_range(ip, ranges) {
            a = u64::from(u32::from(*hi)) + 1;
        } else if taken.contains(&(a as u32)) {
            a += 1;
        } else {
            return Ok(ip);
        }
    }
    Err(ModelError::WgNetworkFull {
        hub: hub.to_string(),
        network: net.cidr(),
        peers: reserved
            .iter()
            .filter(|(_, why)| why.starts_with("WireGuard key"))
            .count(),
    })
}

impl Config {
    /// The hub's static network.
    pub fn hub_network(&self, hub: &str) -> Result<HubNetwork, ModelError> {
        let h = self.hub(hub)?;
        Ok(HubNetwork::new(h.default_gateway, h.default_subnet))
    }

    /// The address a new key of `hub` gets: `requested` if it is a free host address of the
    /// hub's network, else the lowest free one.
    pub fn wg_address_for(
        &self,
        hub: &str,
        requested: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr, ModelError> {
        let h = self.hub(hub)?;
        let net = HubNetwork::new(h.default_gateway, h.default_subnet);
        let mut reserved = vec![
            (net.network(), "the network address".to_string()),
            (net.broadcast(), "the broadcast address".to_string()),
            (h.default_gateway, "the hub's default gateway".to_string()),
        ];
        let mut ranges = Vec::new();
        if h.securenat.enabled {
            reserved.push((
                h.securenat.host_ip,
                "the SecureNAT virtual host".to_string(),
            ));
            // SecureNAT's DHCP server hands these out to other clients of the hub
            if h.securenat.dhcp_enabled && h.securenat.dhcp_start <= h.securenat.dhcp_end {
                ranges.push((
                    h.securenat.dhcp_start,
                    h.securenat.dhcp_end,
                    "SecureNAT's DHCP pool".to_string(),
                ));
            }
        }
        for k in self.wg_keys() {
            if let Some(a) = k.address.filter(|_| k.hub.eq_ignore_ascii_case(hub)) {
                reserved.push((a, format!("WireGuard key {} (user {})", k.key, k.user)));
            }
        }
        choose(hub, net, &reserved, &ranges, requested)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    /// The slow reference: walk every address of the network in order.
    fn reference(
        net: HubNetwork,
        reserved: &[(Ipv4Addr, String)],
        ranges: &[ReservedRange],
    ) -> Option<Ipv4Addr> {
        (u32::from(net.network())..=u32::from(net.broadcast()))
            .map(Ipv4Addr::from)
            .find(|a| {
                net.is_host(*a) && holder(*a, reserved).is_none() && in_range(*a, ranges).is_none()
            })
    }

    #[test]
    fn network_arithmetic() {
        let n = HubNetwork::new(ip("192.168.30.1"), ip("255.255.255.0"));
        assert_eq!(n.cidr(), "192.168.30.0/24");
        assert_eq!(n.broadcast(), ip("192.168.30.255"));
        assert_eq!(n.host_count(), 254);
        assert!(n.is_host(ip("192.168.30.254")));
        assert!(!n.is_host(ip("192.168.30.255")));
        assert!(!n.is_host(ip("192.168.30.0")));
        assert!(!n.is_host(ip("192.168.31.5")));
        let n = HubNetwork::new(ip("10.1.2.3"), ip("255.255.255.252"));
        assert_eq!(n.cidr(), "10.1.2.0/30");
        assert_eq!(n.host_count(), 2);
        assert_eq!(HubNetwork::new(ip("10.0.0.1"), ip("0.0.0.0")).prefix, 0);
    }

    #[test]
    fn fills_a_small_network_then_refuses() {
        let net = HubNetwork::new(ip("10.0.0.1"), ip("255.255.255.248")); // .1-.6 hosts
        let mut reserved = vec![(ip("10.0.0.1"), "the hub's default gateway".to_string())];
        let mut got = Vec::new();
        for _ in 0..5 {
            let a = choose("H", net, &reserved, &[], None).unwrap();
            got.push(a);
            reserved.push((a, "WireGuard key k".into()));
        }
        assert_eq!(got[0], ip("10.0.0.2"));
        assert_eq!(got[4], ip("10.0.0.6"));
        let e = choose("H", net, &reserved, &[], None).unwrap_err();
        assert!(
            matches!(e, ModelError::WgNetworkFull { peers: 5, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("10.0.0.0/29"), "{e}");
    }

    #[test]
    fn requested_addresses_are_checked() {
        let net = HubNetwork::new(ip("192.168.30.1"), ip("255.255.255.0"));
        let reserved = vec![
            (ip("192.168.30.1"), "the hub's default gateway".to_string()),
            (ip("192.168.30.7"), "WireGuard key K (user u)".to_string()),
        ];
        assert_eq!(
            choose("H", net, &reserved, &[], Some(ip("192.168.30.8"))),
            Ok(ip("192.168.30.8"))
        );
        let e = choose("H", net, &reserved, &[], Some(ip("192.168.30.7"))).unwrap_err();
        assert!(e.to_string().contains("WireGuard key K"), "{e}");
        let e = choose("H", net, &reserved, &[], Some(ip("192.168.30.1"))).unwrap_err();
        assert!(e.to_string().contains("gateway"), "{e}");
        for bad in ["192.168.30.0", "192.168.30.255", "10.0.0.1"] {
            let e = choose("H", net, &reserved, &[], Some(ip(bad))).unwrap_err();
            assert!(
                matches!(e, ModelError::WgAddressOutsideNetwork { .. }),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn agrees_with_the_reference_on_pseudo_random_tables() {
        let mut seed: u32 = 0x1234_5678;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        for _ in 0..300 {
            let prefix = 24 + next() % 7; // /24 ../30
            let mask = Ipv4Addr::from(u32::MAX << (32 - prefix));
            let net = HubNetwork::new(ip("172.16.5.1"), mask);
            let hosts = net.host_count() as u32;
            let mut reserved = vec![(ip("172.16.5.1"), "gw".to_string())];
            for _ in 0..next() % (hosts + 1) {
                let a = u32::from(net.network()) + 1 + next() % hosts;
                reserved.push((Ipv4Addr::from(a), "WireGuard key x".into()));
            }
            let mut ranges = Vec::new();
            for _ in 0..next() % 3 {
                let lo = u32::from(net.network()) + next() % (hosts + 2);
                let hi = lo + next() % 8;
                ranges.push((Ipv4Addr::from(lo), Ipv4Addr::from(hi), "pool".to_string()));
            }
            assert_eq!(
                choose("H", net, &reserved, &ranges, None).ok(),
                reference(net, &reserved, &ranges),
                "{reserved:?} {ranges:?} in {}",
                net.cidr()
            );
        }
    }

    fn key(name: &str, hub: &str, address: Option<Ipv4Addr>) -> crate::WgKey {
        crate::WgKey {
            key: name.into(),
            hub: hub.into(),
            user: "u".into(),
            address,
            preshared_key: Some("PSK=".into()),
        }
    }

    #[test]
    fn config_skips_securenat_host_and_keys_of_the_same_hub_only() {
        let mut c = Config::parse("declare root\n{\n}\n").unwrap();
        for hub in ["A", "B"] {
            c.create_hub(hub, "", 0).unwrap();
            c.create_user(hub, "u", "", "", 0).unwrap();
        }
        let mut sn = c.hub("A").unwrap().securenat;
        sn.enabled = true;
        sn.host_ip = ip("192.168.30.2");
        c.set_securenat("A", &sn).unwrap();
        // gateway .1 and SecureNAT's .2 are skipped
        let a = c.wg_address_for("a", None).unwrap();
        assert_eq!(a, ip("192.168.30.3"));
        c.add_wg_key_full(&key("K1", "A", Some(a))).unwrap();
        assert_eq!(c.wg_address_for("A", None), Ok(ip("192.168.30.4")));
        // SecureNAT's DHCP pool (.10-.200 by default) is skipped too
        let mut b = a;
        for _ in 0..6 {
            b = c.wg_address_for("A", None).unwrap();
            c.add_wg_key_full(&key(&format!("K{b}"), "A", Some(b)))
                .unwrap();
        }
        assert_eq!(b, ip("192.168.30.9"));
        assert_eq!(c.wg_address_for("A", None), Ok(ip("192.168.30.201")));
        let e = c
            .wg_address_for("A", Some(ip("192.168.30.50")))
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("DHCP pool 192.168.30.10-192.168.30.200"),
            "{e}"
        );
        // hub B is another network: A's key does not block it
        assert_eq!(c.wg_address_for("B", None), Ok(ip("192.168.30.2")));
        let e = c.wg_address_for("A", Some(ip("192.168.30.2"))).unwrap_err();
        assert!(e.to_string().contains("SecureNAT"), "{e}");
        // the values survive a save and are SoftEther's key block plus ours
        let back = Config::parse(&c.to_text()).unwrap();
        assert_eq!(back.wg_keys()[0], key("K1", "A", Some(a)));
        assert_eq!(back.wg_keys(), c.wg_keys());
        assert_eq!(c.remove_wg_key("K1").unwrap().address, Some(a));
    }

    #[test]
    fn public_host_is_checked_and_resettable() {
        let mut c = Config::parse("declare root\n{\n}\n").unwrap();
        assert_eq!(c.wireguard_public_host(), None);
        c.set_wireguard_public_host(" vpn.example.com:51820 ")
            .unwrap();
        assert_eq!(
            c.wireguard_public_host().as_deref(),
            Some("vpn.example.com:51820")
        );
        let e = c.set_wireguard_public_host("bad host").unwrap_err();
        assert!(e.to_string().contains("not a host name"), "{e}");
        c.set_wireguard_public_host("").unwrap();
        assert_eq!(c.wireguard_public_host(), None);
    }
}
