//! The virtual DHCP server (SoftEther's VirtualDhcpServer): a pool, leases by MAC address, and
//! the options SoftEther hands out (mask, gateway, DNS, domain, classless static routes).

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use smoltcp::wire::{
    DhcpMessageType, DhcpOption, DhcpPacket, DhcpRepr, EthernetAddress, DHCP_MAX_DNS_SERVER_COUNT,
};

/// DHCP option codes we emit or read beyond what `DhcpRepr` covers.
const OPT_HOSTNAME: u8 = 12;
const OPT_DOMAIN_NAME: u8 = 15;
const OPT_CLASSLESS_ROUTES: u8 = 121;

/// One pushed static route: network/prefix via gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PushRoute {
    pub network: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
}

/// Parses SoftEther's DhcpPushRoutes text: "network/mask/gateway" entries separated by commas
/// or spaces, the mask dotted or a prefix length. Entries that do not parse are skipped.
pub fn parse_push_routes(text: &str) -> Vec<PushRoute> {
    text.split([',', ' '])
        .filter_map(|e| {
            let mut parts = e.trim().split('/');
            let network: Ipv4Addr = parts.next()?.trim().parse().ok()?;
            let mask = parts.next()?.trim();
            let gateway: Ipv4Addr = parts.next()?.trim().parse().ok()?;
            let prefix = match mask.parse::<u8>() {
                Ok(p) if p <= 32 => p,
                Ok(_) => return None,
                Err(_) => {
                    let m = u32::from(mask.parse::<Ipv4Addr>().ok()?);
                    if m.leading_ones() + m.trailing_zeros() != 32 {
                        return None;
                    }
                    m.leading_ones() as u8
                }
            };
            let network = Ipv4Addr::from(u32::from(network) & prefix_mask(prefix));
            Some(PushRoute {
                network,
                prefix,
                gateway,
            })
        })
        .collect()
}

fn prefix_mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    }
}

/// Option 121 (RFC 3442) payload.
fn encode_routes(routes: &[PushRoute]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in routes {
        out.push(r.prefix);
        let significant = usize::from(r.prefix).div_ceil(8);
        out.extend_from_slice(&r.network.octets()[..significant]);
        out.extend_from_slice(&r.gateway.octets());
    }
    out
}

/// DhcpSet's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DhcpConfig {
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
    pub mask: Ipv4Addr,
    pub lease: Duration,
    pub gateway: Ipv4Addr,
    pub dns: Ipv4Addr,
    pub dns2: Ipv4Addr,
    pub domain: String,
    pub push_routes: Vec<PushRoute>,
}

/// One lease (EnumDHCP's row).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub id: u32,
    pub mac: [u8; 6],
    pub ip: Ipv4Addr,
    pub leased: Instant,
    pub expires: Instant,
    pub hostname: String,
}

/// A reply to send: the DHCP payload, and whether it goes to the broadcast address.
pub struct Reply {
    pub payload: Vec<u8>,
    pub to: Ipv4Addr,
    pub to_mac: [u8; 6],
}

pub struct DhcpServer {
    cfg: DhcpConfig,
    server_ip: Ipv4Addr,
    leases: BTreeMap<[u8; 6], Lease>,
    next_id: u32,
}

impl DhcpServer {
    pub fn new(cfg: DhcpConfig, server_ip: Ipv4Addr) -> Self {
        Self {
            cfg,
            server_ip,
            leases: BTreeMap::new(),
            next_id: 0,
        }
    }

    pub fn leases(&self) -> impl Iterator<Item = &Lease> {
        self.leases.values()
    }

    pub fn expire(&mut self, now: Instant) {
        self.leases.retain(|_, l| l.expires > now);
    }

    fn in_pool(&self, ip: Ipv4Addr) -> bool {
        let v = u32::from(ip);
        v >= u32::from(self.cfg.start) && v <= u32::from(self.cfg.end)
    }

    fn taken(&self, ip: Ipv4Addr, mac: [u8; 6], exclude: &HashSet<Ipv4Addr>) -> bool {
        ip == self.server_ip
            || exclude.contains(&ip)
            || self.leases.values().any(|l| l.ip == ip && l.mac != mac)
    }

    /// The address for `mac`: its lease, else the address it asks for if free, else the first
    /// free one in the pool (skipping addresses other stations use).
    fn pick(
        &self,
        mac: [u8; 6],
        wanted: Option<Ipv4Addr>,
        exclude: &HashSet<Ipv4Addr>,
    ) -> Option<Ipv4Addr> {
        if let Some(l) = self.leases.get(&mac) {
            return Some(l.ip);
        }
        if let Some(w) = wanted.filter(|w| self.in_pool(*w) && !self.taken(*w, mac, exclude)) {
            return Some(w);
        }
        (u32::from(self.cfg.start)..=u32::from(self.cfg.end))
            .map(Ipv4Addr::from)
            .find(|ip| !self.taken(*ip, mac, exclude))
    }

    fn record(&mut self, mac: [u8; 6], ip: Ipv4Addr, hostname: String, now: Instant) {
        let expires = now + self.cfg.lease;
        match self.leases.get_mut(&mac) {
            Some(l) if l.ip == ip => {
                l.expires = expires;
                if !hostname.is_empty() {
                    l.hostname = hostname;
                }
            }
            _ => {
                self.next_id += 1;
                self.leases.insert(
                    mac,
                    Lease {
                        id: self.next_id,
                        mac,
                        ip,
                        leased: now,
                        expires,
                        hostname,
                    },
                );
            }
        }
    }

    /// A lease for `mac` without DHCP messages: for an IP tunnel whose client gets its address
    /// from the server (OpenVPN's tun, PPP), the server asks on its behalf. The same call renews
    /// it. `None` when the pool is full.
    pub fn lease_for(
        &mut self,
        mac: [u8; 6],
        hostname: &str,
        now: Instant,
        exclude: &HashSet<Ipv4Addr>,
    ) -> Option<Ipv4Addr> {
        let ip = self.pick(mac, None, exclude)?;
        self.record(mac, ip, hostname.to_string(), now);
        Some(ip)
    }

    /// Ends `mac`'s lease (its tunnel closed).
    pub fn release(&mut self, mac: [u8; 6]) {
        self.leases.remove(&mac);
    }

    /// Handles one DHCP message from a client; `None` when there is nothing to answer or the
    /// message is malformed (`Err`).
    pub fn handle(
        &mut self,
        payload: &[u8],
        now: Instant,
        exclude: &HashSet<Ipv4Addr>,
    ) -> Result<Option<Reply>, ()> {
        let packet = DhcpPacket::new_checked(payload).map_err(|_| ())?;
        let req = DhcpRepr::parse(&packet).map_err(|_| ())?;
        let hostname = packet
            .options()
            .find(|o| o.kind == OPT_HOSTNAME)
            .map(|o| String::from_utf8_lossy(o.data).into_owned())
            .unwrap_or_default();
        let mac = req.client_hardware_address.0;
        let (kind, your_ip) = match req.message_type {
            DhcpMessageType::Discover => {
                let Some(ip) = self.pick(mac, req.requested_ip, exclude) else {
                    return Ok(None);
                };
                // held for this client while it decides
                self.record(mac, ip, hostname, now);
                (DhcpMessageType::Offer, ip)
            }
            DhcpMessageType::Request => {
                if req.server_identifier.is_some_and(|s| s != self.server_ip) {
                    // the client chose another server
                    self.leases.remove(&mac);
                    return Ok(None);
                }
                let asked = req.requested_ip.unwrap_or(req.client_ip);
                match self.pick(mac, Some(asked), exclude) {
                    Some(ip) if ip == asked => {
                        self.record(mac, ip, hostname, now);
                        (DhcpMessageType::Ack, ip)
                    }
                    _ => (DhcpMessageType::Nak, Ipv4Addr::UNSPECIFIED),
                }
            }
            DhcpMessageType::Release | DhcpMessageType::Decline => {
                self.leases.remove(&mac);
                return Ok(None);
            }
            _ => return Ok(None),
        };
        let nak = kind == DhcpMessageType::Nak;
        let lease_secs = self.cfg.lease.as_secs().min(u64::from(u32::MAX)) as u32;
        let mut dns = heapless::Vec::<Ipv4Addr, DHCP_MAX_DNS_SERVER_COUNT>::new();
        for d in [self.cfg.dns, self.cfg.dns2] {
            if !d.is_unspecified() {
                let _ = dns.push(d);
            }
        }
        let gateway = (!self.cfg.gateway.is_unspecified()).then_some(self.cfg.gateway);
        let mut routes = self.cfg.push_routes.clone();
        if let (Some(gw), false) = (gateway, routes.is_empty()) {
            // a client that takes option 121 ignores option 3 (RFC 3442)
            routes.push(PushRoute {
                network: Ipv4Addr::UNSPECIFIED,
                prefix: 0,
                gateway: gw,
            });
        }
        let routes = encode_routes(&routes);
        let mut extra = Vec::new();
        if !nak && !self.cfg.domain.is_empty() {
            extra.push(DhcpOption {
                kind: OPT_DOMAIN_NAME,
                data: self.cfg.domain.as_bytes(),
            });
        }
        if !nak && !routes.is_empty() {
            extra.push(DhcpOption {
                kind: OPT_CLASSLESS_ROUTES,
                data: &routes,
            });
        }
        let reply = DhcpRepr {
            message_type: kind,
            transaction_id: req.transaction_id,
            secs: 0,
            client_hardware_address: EthernetAddress(mac),
            client_ip: Ipv4Addr::UNSPECIFIED,
            your_ip,
            server_ip: self.server_ip,
            router: if nak { None } else { gateway },
            subnet_mask: (!nak).then_some(self.cfg.mask),
            relay_agent_ip: Ipv4Addr::UNSPECIFIED,
            broadcast: req.broadcast,
            requested_ip: None,
            client_identifier: None,
            server_identifier: Some(self.server_ip),
            parameter_request_list: None,
            dns_servers: (!nak && !dns.is_empty()).then_some(dns),
            max_size: None,
            lease_duration: (!nak).then_some(lease_secs),
            renew_duration: (!nak).then_some(lease_secs / 2),
            rebind_duration: (!nak).then_some(lease_secs / 8 * 7),
            additional_options: &extra,
        };
        let mut payload = vec![0u8; reply.buffer_len()];
        let mut out = DhcpPacket::new_unchecked(&mut payload[..]);
        reply.emit(&mut out).map_err(|_| ())?;
        let unicast = !req.client_ip.is_unspecified() && !nak;
        Ok(Some(Reply {
            payload,
            to: if unicast {
                req.client_ip
            } else {
                Ipv4Addr::BROADCAST
            },
            to_mac: if unicast { mac } else { [0xff; 6] },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_routes_parse_both_mask_forms() {
        let r = parse_push_routes("10.1.0.0/255.255.0.0/192.168.30.1, 198.19.0.0/16/192.168.30.1");
        assert_eq!(
            r,
            vec![
                PushRoute {
                    network: Ipv4Addr::new(10, 1, 0, 0),
                    prefix: 16,
                    gateway: Ipv4Addr::new(192, 168, 30, 1)
                },
                PushRoute {
                    network: Ipv4Addr::new(198, 19, 0, 0),
                    prefix: 16,
                    gateway: Ipv4Addr::new(192, 168, 30, 1)
                }
            ]
        );
        assert!(parse_push_routes("garbage, 1.2.3.4/255.0.255.0/1.1.1.1").is_empty());
    }

    #[test]
    fn option_121_encoding_matches_rfc3442() {
        let r = encode_routes(&[
            PushRoute {
                network: Ipv4Addr::new(10, 17, 0, 0),
                prefix: 16,
                gateway: Ipv4Addr::new(10, 0, 0, 1),
            },
            PushRoute {
                network: Ipv4Addr::UNSPECIFIED,
                prefix: 0,
                gateway: Ipv4Addr::new(10, 0, 0, 1),
            },
        ]);
        assert_eq!(r, [16, 10, 17, 10, 0, 0, 1, 0, 10, 0, 0, 1]);
    }
}
