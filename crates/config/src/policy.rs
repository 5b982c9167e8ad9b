//! SoftEther's security policy: 38 items in SoftEther's order (its item ids), each a flag or a
//! number, with SoftEther's names (the same in the config's `declare Policy` block, in PACK as
//! `policy:<Name>` and in vpncmd), ranges and titles.

use crate::tree::Folder;

/// What an item holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Flag,
    /// A number in `min..=max`; with `zero_unset`, 0 means "no limit".
    Number {
        min: u32,
        max: u32,
        zero_unset: bool,
        unit: Unit,
    },
}

/// How a number is shown (SoftEther's `POL_INT_*` strings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Count,
    Seconds,
    Bps,
    Vlan,
}

impl Unit {
    pub fn format(self, v: u32) -> String {
        match self {
            // SoftEther's "%u " keeps its trailing space
            Unit::Count => format!("{v} "),
            Unit::Seconds => format!("{v} seconds"),
            Unit::Bps => format!("{v} bps"),
            Unit::Vlan => v.to_string(),
        }
    }
}

pub struct Item {
    pub name: &'static str,
    pub kind: Kind,
    /// SoftEther's `POL_<id>` title.
    pub title: &'static str,
}

const fn flag(name: &'static str, title: &'static str) -> Item {
    Item {
        name,
        kind: Kind::Flag,
        title,
    }
}

const fn number(
    name: &'static str,
    title: &'static str,
    (min, max, zero_unset, unit): (u32, u32, bool, Unit),
) -> Item {
    Item {
        name,
        kind: Kind::Number {
            min,
            max,
            zero_unset,
            unit,
        },
        title,
    }
}

const COUNT: (u32, u32, bool, Unit) = (1, 65535, true, Unit::Count);

/// Every item, at its SoftEther id.
pub const ITEMS: [Item; 38] = [
    flag("Access", "Allow Access"),
    flag("DHCPFilter", "Filter DHCP Packets (IPv4)"),
    flag("DHCPNoServer", "Disallow DHCP Server Operation (IPv4)"),
    flag("DHCPForce", "Enforce DHCP Allocated IP Addresses (IPv4)"),
    flag("NoBridge", "Deny Bridge Operation"),
    flag("NoRouting", "Deny Routing Operation (IPv4)"),
    flag("CheckMac", "Deny MAC Addresses Duplication"),
    flag("CheckIP", "Deny IP Address Duplication (IPv4)"),
    flag(
        "ArpDhcpOnly",
        "Deny Non-ARP / Non-DHCP / Non-ICMPv6 broadcasts",
    ),
    flag("PrivacyFilter", "Privacy Filter Mode"),
    flag("NoServer", "Deny Operation as TCP/IP Server (IPv4)"),
    flag("NoBroadcastLimiter", "Unlimited Number of Broadcasts"),
    flag("MonitorPort", "Allow Monitoring Mode"),
    number(
        "MaxConnection",
        "Maximum Number of TCP Connections",
        (1, 32, false, Unit::Count),
    ),
    number("TimeOut", "Time-out Period", (5, 60, false, Unit::Seconds)),
    number("MaxMac", "Maximum Number of MAC Addresses", COUNT),
    number("MaxIP", "Maximum Number of IP Addresses (IPv4)", COUNT),
    number(
        "MaxUpload",
        "Upload Bandwidth",
        (1, u32::MAX, true, Unit::Bps),
    ),
    number(
        "MaxDownload",
        "Download Bandwidth",
        (1, u32::MAX, true, Unit::Bps),
    ),
    flag("FixPassword", "Deny Changing Password"),
    number("MultiLogins", "Maximum Number of Multiple Logins", COUNT),
    flag("NoQoS", "Deny VoIP / QoS Function"),
    flag("RSandRAFilter", "Filter RS / RA Packets (IPv6)"),
    flag("RAFilter", "Filter RA Packets (IPv6)"),
    flag("DHCPv6Filter", "Filter DHCP Packets (IPv6)"),
    flag("DHCPv6NoServer", "Disallow DHCP Server Operation (IPv6)"),
    flag("NoRoutingV6", "Deny Routing Operation (IPv6)"),
    flag("CheckIPv6", "Deny IP Address Duplication (IPv6)"),
    flag("NoServerV6", "Deny Operation as TCP/IP Server (IPv6)"),
    number("MaxIPv6", "Maximum Number of IP Addresses (IPv6)", COUNT),
    flag("NoSavePassword", "Disallow Password Save in VPN Client"),
    number(
        "AutoDisconnect",
        "VPN Client Automatic Disconnect",
        (1, u32::MAX, true, Unit::Seconds),
    ),
    flag("FilterIPv4", "Filter All IPv4 Packets"),
    flag("FilterIPv6", "Filter All IPv6 Packets"),
    flag("FilterNonIP", "Filter All Non-IP Packets"),
    flag("NoIPv6DefaultRouterInRA", "No Default-Router on IPv6 RA"),
    flag(
        "NoIPv6DefaultRouterInRAWhenIPv6",
        "No Default-Router on IPv6 RA (physical IPv6)",
    ),
    number(
        "VLanId",
        "VLAN ID (IEEE802.1Q)",
        (1, 4095, true, Unit::Vlan),
    ),
];

/// How many of SoftEther's items came with its policy version 2 (the rest with version 3).
pub const VER2_ITEMS: usize = 22;

/// The id of the first item whose name starts with `prefix`, case aside (SoftEther's rule, so
/// "maxd" names MaxDownload and "max" MaxConnection).
pub fn find(prefix: &str) -> Option<usize> {
    if prefix.is_empty() {
        return None;
    }
    let p = prefix.to_ascii_lowercase();
    ITEMS
        .iter()
        .position(|i| i.name.eq_ignore_ascii_case(prefix))
        .or_else(|| {
            ITEMS
                .iter()
                .position(|i| i.name.to_ascii_lowercase().starts_with(&p))
        })
}

/// A security policy: one value per item (flags as 0 or 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy(pub [u32; 38]);

impl Default for Policy {
    /// SoftEther's default policy: access allowed, 32 TCP connections, 20 s timeout, nothing
    /// else.
    fn default() -> Self {
        let mut p = Policy([0; 38]);
        p.0[ACCESS] = 1;
        p.0[MAX_CONNECTION] = 32;
        p.0[TIME_OUT] = 20;
        p
    }
}

pub const ACCESS: usize = 0;
pub const PRIVACY_FILTER: usize = 9;
pub const MAX_CONNECTION: usize = 13;
pub const TIME_OUT: usize = 14;
pub const MAX_UPLOAD: usize = 17;
pub const MAX_DOWNLOAD: usize = 18;
pub const MULTI_LOGINS: usize = 20;
pub const NO_QOS: usize = 21;

/// Why a value does not fit an item.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the specified policy name {0:?} is invalid; PolicyList lists the names")]
    UnknownName(String),
    #[error("specify policy {name:?} within the range of {range}")]
    OutOfRange { name: &'static str, range: String },
}

impl Policy {
    pub fn flag(&self, id: usize) -> bool {
        self.0[id] != 0
    }

    /// An item's value by its exact name (0 for a name that is not one).
    pub fn named(&self, name: &str) -> u32 {
        ITEMS
            .iter()
            .position(|i| i.name == name)
            .map_or(0, |id| self.0[id])
    }

    pub fn access(&self) -> bool {
        self.flag(ACCESS)
    }

    pub fn privacy_filter(&self) -> bool {
        self.flag(PRIVACY_FILTER)
    }

    /// bits per second, 0 for none
    pub fn max_upload(&self) -> u32 {
        self.0[MAX_UPLOAD]
    }

    pub fn max_download(&self) -> u32 {
        self.0[MAX_DOWNLOAD]
    }

    /// 0 for no limit
    pub fn multi_logins(&self) -> u32 {
        self.0[MULTI_LOGINS]
    }

    /// TCP connections a SoftEther session may have, 1..=32 (SoftEther reads 0 as 32).
    pub fn max_connection(&self) -> u32 {
        match self.0[MAX_CONNECTION] {
            0 => 32,
            n => n.min(32),
        }
    }

    /// The session timeout in seconds, 5..=60 (SoftEther reads 0 as 20).
    pub fn timeout_secs(&self) -> u32 {
        match self.0[TIME_OUT] {
            0 => 20,
            n => n.clamp(5, 60),
        }
    }

    /// Checks a value for item `id` (a flag takes any value, nonzero meaning on).
    pub fn check(id: usize, value: u32) -> Result<u32, PolicyError> {
        let item = &ITEMS[id];
        match item.kind {
            Kind::Flag => Ok(u32::from(value != 0)),
            Kind::Number {
                min,
                max,
                zero_unset,
                ..
            } => {
                if (value == 0 && zero_unset) || (min..=max).contains(&value) {
                    Ok(value)
                } else {
                    Err(PolicyError::OutOfRange {
                        name: item.name,
                        range: range_text(id),
                    })
                }
            }
        }
    }

    /// vpncmd's `UserPolicySet /NAME:.. /VALUE:..`: a name or its prefix, a value as vpncmd
    /// reads it (a flag is on for "yes", "true" or a nonzero number).
    pub fn set_named(&mut self, name: &str, value: &str) -> Result<usize, PolicyError> {
        let id = find(name).ok_or_else(|| PolicyError::UnknownName(name.to_string()))?;
        let v = value.trim();
        let n = match ITEMS[id].kind {
            Kind::Flag => {
                let l = v.to_ascii_lowercase();
                u32::from(l.starts_with('y') || l.starts_with('t') || leading_int(v) != 0)
            }
            Kind::Number { .. } => leading_int(v),
        };
        self.0[id] = Self::check(id, n)?;
        Ok(id)
    }

    /// How vpncmd shows item `id`'s value: "Yes"/"No", a number with its unit, "-" for an
    /// unset limit.
    pub fn format(&self, id: usize) -> String {
        format_value(id, self.0[id])
    }

    /// Reads a `declare Policy` block (a missing item reads as 0, as in SoftEther).
    pub fn from_folder(f: &Folder) -> Policy {
        let mut p = Policy([0; 38]);
        for (id, item) in ITEMS.iter().enumerate() {
            p.0[id] = match item.kind {
                Kind::Flag => u32::from(f.get_bool(item.name).unwrap_or(false)),
                Kind::Number { .. } => f.get_u32(item.name).unwrap_or(0),
            };
        }
        p
    }

    /// Writes every item, as SoftEther does.
    pub fn write(&self, f: &mut Folder) {
        for (id, item) in ITEMS.iter().enumerate() {
            match item.kind {
                Kind::Flag => f.set_bool(item.name, self.flag(id)),
                Kind::Number { .. } => f.set_u32(item.name, self.0[id]),
            }
        }
    }
}

/// How vpncmd shows a value of item `id`.
pub fn format_value(id: usize, v: u32) -> String {
    match ITEMS[id].kind {
        Kind::Flag => if v != 0 { "Yes" } else { "No" }.to_string(),
        Kind::Number {
            zero_unset: true, ..
        } if v == 0 => "-".to_string(),
        Kind::Number { unit, .. } => unit.format(v),
    }
}

/// vpncmd's text for the values item `id` takes.
pub fn range_text(id: usize) -> String {
    match ITEMS[id].kind {
        Kind::Flag => "yes or no".to_string(),
        Kind::Number {
            min,
            max,
            zero_unset,
            unit,
        } => format!(
            "Range from {} to {} ({})",
            unit.format(min),
            unit.format(max),
            if zero_unset {
                "if 0 is specified, nothing is set"
            } else {
                "0 cannot be specified"
            }
        ),
    }
}

/// The number a text starts with, as C's atoi reads it (0 for none).
fn leading_int(s: &str) -> u32 {
    let digits: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits
        .parse::<u64>()
        .map_or(0, |n| n.min(u64::from(u32::MAX)) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_prefixes_as_softether_finds_them() {
        assert_eq!(find("max"), Some(MAX_CONNECTION));
        assert_eq!(find("MAXD"), Some(MAX_DOWNLOAD));
        assert_eq!(find("dhcp"), Some(1));
        assert_eq!(find("privacyfilter"), Some(PRIVACY_FILTER));
        assert_eq!(find("nope"), None);
        assert_eq!(find(""), None);
        // an exact name wins over an earlier item it is a prefix of
        assert_eq!(find("RAFilter"), Some(23));
    }

    #[test]
    fn values_are_checked_against_their_ranges() {
        let mut p = Policy::default();
        assert!(p.access() && p.max_connection() == 32 && p.timeout_secs() == 20);
        assert_eq!(p.set_named("MaxDownload", "10000000"), Ok(MAX_DOWNLOAD));
        assert_eq!(p.max_download(), 10_000_000);
        p.set_named("privacy", "yes").unwrap();
        assert!(p.privacy_filter());
        p.set_named("Access", "no").unwrap();
        assert!(!p.access());
        let e = p.set_named("MaxConnection", "0").unwrap_err();
        assert_eq!(
            e.to_string(),
            "specify policy \"MaxConnection\" within the range of Range from 1  to 32  (0 cannot be specified)"
        );
        assert!(p.set_named("TimeOut", "61").is_err());
        assert_eq!(p.set_named("MultiLogins", "0"), Ok(MULTI_LOGINS));
        assert!(matches!(
            p.set_named("Bogus", "1"),
            Err(PolicyError::UnknownName(_))
        ));
        assert_eq!(p.format(MAX_DOWNLOAD), "10000000 bps");
        assert_eq!(p.format(MULTI_LOGINS), "-");
        assert_eq!(p.format(MAX_CONNECTION), "32 ");
        assert_eq!(p.format(ACCESS), "No");
    }

    #[test]
    fn a_policy_block_round_trips() {
        let mut p = Policy::default();
        p.set_named("MaxMac", "10").unwrap();
        p.set_named("MaxUpload", "5000").unwrap();
        let mut f = Folder::new("Policy");
        p.write(&mut f);
        assert_eq!(f.get_bool("Access"), Some(true));
        assert_eq!(f.get_u32("MaxUpload"), Some(5000));
        assert_eq!(Policy::from_folder(&f), p);
        // every item turned on round-trips too
        for item in ITEMS.iter() {
            let on = match item.kind {
                Kind::Flag => "yes".to_string(),
                Kind::Number { min, .. } => min.max(1).to_string(),
            };
            p.set_named(item.name, &on).unwrap();
        }
        let mut f = Folder::new("Policy");
        p.write(&mut f);
        assert_eq!(Policy::from_folder(&f), p);
    }
}
