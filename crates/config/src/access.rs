//! A Virtual Hub's access list as SoftEther keeps it (`declare AccessList { declare 1 { ... } }`):
//! rules that pass or discard frames by addresses, protocol, ports, user or group, MAC and TCP
//! state, first match by priority.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::model::{format_mac, parse_mac};
use crate::tree::Folder;

/// A MAC address and the mask of the bits that count.
pub type MacMatch = ([u8; 6], [u8; 6]);

/// One rule. Ranges and masks as SoftEther stores them: a port range (0, 0) is any port, an
/// address with mask 0 any address, protocol 0 any protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessRule {
    pub note: String,
    pub active: bool,
    /// Lower first.
    pub priority: u32,
    pub discard: bool,
    /// Addresses are the IPv6 ones (else the IPv4 ones).
    pub ipv6: bool,
    pub src_ip: Ipv4Addr,
    pub src_mask: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    pub dst_mask: Ipv4Addr,
    pub src_ip6: Ipv6Addr,
    pub src_mask6: Ipv6Addr,
    pub dst_ip6: Ipv6Addr,
    pub dst_mask6: Ipv6Addr,
    /// IP protocol number (0: any).
    pub protocol: u32,
    pub src_ports: (u16, u16),
    pub dst_ports: (u16, u16),
    /// A user or group name ("": anyone).
    pub src_user: String,
    pub dst_user: String,
    /// MAC address and mask to match, if checked.
    pub src_mac: Option<MacMatch>,
    pub dst_mac: Option<MacMatch>,
    /// Some(true): only established TCP (anything but a bare SYN); Some(false): only a SYN.
    pub tcp_established: Option<bool>,
    /// SoftEther's network simulation on a passing rule (milliseconds, percent, percent):
    /// the frames it passes are delayed, jittered and lost as it says.
    pub delay: u32,
    pub jitter: u32,
    pub loss: u32,
    pub redirect_url: String,
}

impl Default for AccessRule {
    fn default() -> Self {
        AccessRule {
            note: String::new(),
            active: true,
            priority: 1,
            discard: false,
            ipv6: false,
            src_ip: Ipv4Addr::UNSPECIFIED,
            src_mask: Ipv4Addr::UNSPECIFIED,
            dst_ip: Ipv4Addr::UNSPECIFIED,
            dst_mask: Ipv4Addr::UNSPECIFIED,
            src_ip6: Ipv6Addr::UNSPECIFIED,
            src_mask6: Ipv6Addr::UNSPECIFIED,
            dst_ip6: Ipv6Addr::UNSPECIFIED,
            dst_mask6: Ipv6Addr::UNSPECIFIED,
            protocol: 0,
            src_ports: (0, 0),
            dst_ports: (0, 0),
            src_user: String::new(),
            dst_user: String::new(),
            src_mac: None,
            dst_mac: None,
            tcp_established: None,
            delay: 0,
            jitter: 0,
            loss: 0,
            redirect_url: String::new(),
        }
    }
}

/// SoftEther's order: priority, then pass before discard; otherwise the order they came in.
pub fn sort(rules: &mut [AccessRule]) {
    rules.sort_by_key(|r| (r.priority, r.discard));
}

impl AccessRule {
    /// Reads one rule folder (missing items: 0, false or empty, as SoftEther reads them).
    pub fn from_folder(f: &Folder) -> AccessRule {
        let s = |n: &str| f.get_str(n).unwrap_or_default().to_string();
        let v4 = |n: &str| {
            f.get_str(n)
                .and_then(|t| t.parse().ok())
                .unwrap_or(Ipv4Addr::UNSPECIFIED)
        };
        let v6 = |n: &str| {
            f.get_str(n)
                .and_then(|t| t.parse().ok())
                .unwrap_or(Ipv6Addr::UNSPECIFIED)
        };
        let u = |n: &str| f.get_u32(n).unwrap_or(0);
        let port = |n: &str| u(n).min(65535) as u16;
        let b = |n: &str| f.get_bool(n).unwrap_or(false);
        let mac = |check: &str, addr: &str, mask: &str| {
            if !b(check) {
                return None;
            }
            Some((parse_mac(&s(addr))?, parse_mac(&s(mask))?))
        };
        AccessRule {
            note: s("Note"),
            active: b("Active"),
            priority: u("Priority"),
            discard: b("Discard"),
            ipv6: b("IsIPv6"),
            src_ip: v4("SrcIpAddress"),
            src_mask: v4("SrcSubnetMask"),
            dst_ip: v4("DestIpAddress"),
            dst_mask: v4("DestSubnetMask"),
            src_ip6: v6("SrcIpAddress6"),
            src_mask6: v6("SrcSubnetMask6"),
            dst_ip6: v6("DestIpAddress6"),
            dst_mask6: v6("DestSubnetMask6"),
            protocol: u("Protocol"),
            src_ports: (port("SrcPortStart"), port("SrcPortEnd")),
            dst_ports: (port("DestPortStart"), port("DestPortEnd")),
            src_user: s("SrcUsername"),
            dst_user: s("DestUsername"),
            src_mac: mac("CheckSrcMac", "SrcMacAddress", "SrcMacMask"),
            dst_mac: mac("CheckDstMac", "DstMacAddress", "DstMacMask"),
            tcp_established: b("CheckTcpState").then(|| b("Established")),
            delay: u("Delay").min(10_000),
            jitter: u("Jitter").min(100),
            loss: u("Loss").min(100),
            redirect_url: s("RedirectUrl"),
        }
    }

    /// Writes the items SoftEther writes.
    pub fn write(&self, f: &mut Folder) {
        f.set_str("Note", &self.note);
        f.set_bool("Active", self.active);
        f.set_u32("Priority", self.priority);
        f.set_bool("Discard", self.discard);
        f.set_bool("IsIPv6", self.ipv6);
        if self.ipv6 {
            f.set_str("SrcIpAddress6", &self.src_ip6.to_string());
            f.set_str("SrcSubnetMask6", &self.src_mask6.to_string());
            f.set_str("DestIpAddress6", &self.dst_ip6.to_string());
            f.set_str("DestSubnetMask6", &self.dst_mask6.to_string());
        } else {
            f.set_str("SrcIpAddress", &self.src_ip.to_string());
            f.set_str("SrcSubnetMask", &self.src_mask.to_string());
            f.set_str("DestIpAddress", &self.dst_ip.to_string());
            f.set_str("DestSubnetMask", &self.dst_mask.to_string());
        }
        f.set_u32("Protocol", self.protocol);
        f.set_u32("SrcPortStart", self.src_ports.0.into());
        f.set_u32("SrcPortEnd", self.src_ports.1.into());
        f.set_u32("DestPortStart", self.dst_ports.0.into());
        f.set_u32("DestPortEnd", self.dst_ports.1.into());
        f.set_str("SrcUsername", &self.src_user);
        f.set_str("DestUsername", &self.dst_user);
        for (check, addr, mask, mac) in [
            ("CheckSrcMac", "SrcMacAddress", "SrcMacMask", &self.src_mac),
            ("CheckDstMac", "DstMacAddress", "DstMacMask", &self.dst_mac),
        ] {
            f.set_bool(check, mac.is_some());
            if let Some((a, m)) = mac {
                f.set_str(addr, &format_mac(a));
                f.set_str(mask, &format_mac(m));
            }
        }
        f.set_bool("CheckTcpState", self.tcp_established.is_some());
        f.set_bool("Established", self.tcp_established.unwrap_or(false));
        f.set_str("RedirectUrl", &self.redirect_url);
        f.set_u32("Delay", self.delay);
        f.set_u32("Jitter", self.jitter);
        f.set_u32("Loss", self.loss);
    }
}
