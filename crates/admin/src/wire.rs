//! Encodings shared by the server side (`dispatch`) and the client side (`etherhub cmd`):
//! SoftEther's field types by suffix (`_dt` date-times, `_ip` addresses, `_bin` base64, IPv4
//! addresses packed in a `_u32`, traffic counters), and the step from a client's JSON to a
//! typed message ([`decode`]) with errors that name the field.

use std::net::{IpAddr, Ipv4Addr};

use serde::de::{self, DeserializeOwned};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::AdminError;
use etherhub_config::policy::{self, Policy};

pub use etherhub_pack::time::DateTime;

/// SoftEther's JSON `_dt` form: `2024-08-01T12:24:36.123`.
pub fn format_dt(ms: u64) -> String {
    let t = DateTime::from_unix_ms(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.millis
    )
}

/// Parse a `_dt` string (fraction and a trailing `Z` optional). `None` if malformed.
pub fn parse_dt(s: &str) -> Option<u64> {
    let s = s.trim().trim_end_matches('Z');
    let (date, time) = s.split_once(['T', ' '])?;
    let mut d = date.split('-');
    let year: i64 = d.next()?.parse().ok()?;
    let month: u32 = d.next()?.parse().ok()?;
    let day: u32 = d.next()?.parse().ok()?;
    if d.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let (hms, frac) = match time.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (time, None),
    };
    let mut t = hms.split(':');
    let hour: u32 = t.next()?.parse().ok()?;
    let minute: u32 = t.next()?.parse().ok()?;
    let second: u32 = t.next().unwrap_or("0").parse().ok()?;
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let millis = match frac {
        Some(f) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => {
            let mut digits: String = f.chars().take(3).collect();
            while digits.len() < 3 {
                digits.push('0');
            }
            digits.parse().ok()?
        }
        Some(_) => return None,
        None => 0,
    };
    let dt = DateTime {
        year,
        month,
        day,
        hour,
        minute,
        second,
        millis,
        weekday: 0,
    };
    Some(dt.to_unix_ms())
}

/// SoftEther stores an IPv4 address in a `UINT` in network byte order in memory, which on the
/// little-endian machines it runs on reads as `u32::from_le_bytes(octets)`. Fields such as
/// `DefaultGateway_u32` carry that number.
pub fn ipv4_to_u32(ip: Ipv4Addr) -> u32 {
    u32::from_le_bytes(ip.octets())
}

/// Inverse of [`ipv4_to_u32`].
pub fn ipv4_from_u32(v: u32) -> Ipv4Addr {
    Ipv4Addr::from(v.to_le_bytes())
}

/// `_dt`: a SoftEther date-time, kept as Unix milliseconds (0: none), written as
/// `2024-08-01T12:24:36.123` in JSON.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dt(pub u64);

impl Serialize for Dt {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_dt(self.0))
    }
}

impl<'de> Deserialize<'de> for Dt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        match &v {
            Value::String(s) if s.trim().is_empty() => Ok(Dt(0)),
            Value::String(s) => parse_dt(s).map(Dt).ok_or_else(|| {
                de::Error::custom("expected a date-time like 2024-08-01T12:24:36.123")
            }),
            Value::Number(n) => n
                .as_u64()
                .map(Dt)
                .ok_or_else(|| de::Error::custom("expected a date-time")),
            Value::Null => Ok(Dt(0)),
            _ => Err(de::Error::custom("expected a date-time")),
        }
    }
}

/// `_ip`: an address written as text (`0.0.0.0` or empty when unset).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ip(pub IpAddr);

impl Default for Ip {
    fn default() -> Self {
        Ip(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }
}

impl Ip {
    /// The IPv4 address (`0.0.0.0` for an IPv6 one).
    pub fn v4(&self) -> Ipv4Addr {
        match self.0 {
            IpAddr::V4(a) => a,
            IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
        }
    }
}

impl From<Ipv4Addr> for Ip {
    fn from(a: Ipv4Addr) -> Self {
        Ip(IpAddr::V4(a))
    }
}

impl Serialize for Ip {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for Ip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let s = s.trim();
        if s.is_empty() {
            return Ok(Ip::default());
        }
        s.parse()
            .map(Ip)
            .map_err(|_| de::Error::custom("expected an IP address"))
    }
}

/// `_bin`: bytes, base64 in JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bin(pub Vec<u8>);

impl Serialize for Bin {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine as _;
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Bin {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use base64::Engine as _;
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .map(Bin)
            .map_err(|_| de::Error::custom("expected base64"))
    }
}

impl Bin {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The bytes as an array of `N` that is not all zero (SoftEther's "no value" for a hash).
    pub fn nonzero<const N: usize>(&self) -> Option<[u8; N]> {
        let a: [u8; N] = self.0.as_slice().try_into().ok()?;
        a.iter().any(|&b| b != 0).then_some(a)
    }
}

/// A list that also reads a single value as a list of one: a PACK cannot tell one value from
/// an array of one, so a request read from one carries a scalar.
pub fn one_or_many<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    match Value::deserialize(d)? {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .into_iter()
            .map(|v| serde_json::from_value(v).map_err(de::Error::custom))
            .collect(),
        one => serde_json::from_value(one)
            .map(|v| vec![v])
            .map_err(de::Error::custom),
    }
}

/// A number as SoftEther's session node information carries it (version, build, ports):
/// with its bytes swapped, both ways.
pub fn node_u32(v: u32) -> u32 {
    v.swap_bytes()
}

/// An IPv4 address in a `_u32` field, as SoftEther packs it ([`ipv4_to_u32`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpU32(pub Ipv4Addr);

impl Default for IpU32 {
    fn default() -> Self {
        IpU32(Ipv4Addr::UNSPECIFIED)
    }
}

impl Serialize for IpU32 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(ipv4_to_u32(self.0))
    }
}

impl<'de> Deserialize<'de> for IpU32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(IpU32(ipv4_from_u32(u32::deserialize(d)?)))
    }
}

/// Packet and byte counters, as SoftEther's `TRAFFIC` (send = from the hub to the client).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    pub send_unicast_count: u64,
    pub send_unicast_bytes: u64,
    pub send_broadcast_count: u64,
    pub send_broadcast_bytes: u64,
    pub recv_unicast_count: u64,
    pub recv_unicast_bytes: u64,
    pub recv_broadcast_count: u64,
    pub recv_broadcast_bytes: u64,
}

impl Traffic {
    /// Sum of all byte counters (vpncmd's "Transfer Bytes").
    pub fn total_bytes(&self) -> u64 {
        self.send_unicast_bytes
            .saturating_add(self.send_broadcast_bytes)
            .saturating_add(self.recv_unicast_bytes)
            .saturating_add(self.recv_broadcast_bytes)
    }

    /// Sum of all packet counters (vpncmd's "Transfer Packets").
    pub fn total_packets(&self) -> u64 {
        self.send_unicast_count
            .saturating_add(self.send_broadcast_count)
            .saturating_add(self.recv_unicast_count)
            .saturating_add(self.recv_broadcast_count)
    }

    fn fields(&mut self) -> [(&'static str, &mut u64); 8] {
        [
            ("Recv.BroadcastBytes", &mut self.recv_broadcast_bytes),
            ("Recv.BroadcastCount", &mut self.recv_broadcast_count),
            ("Recv.UnicastBytes", &mut self.recv_unicast_bytes),
            ("Recv.UnicastCount", &mut self.recv_unicast_count),
            ("Send.BroadcastBytes", &mut self.send_broadcast_bytes),
            ("Send.BroadcastCount", &mut self.send_broadcast_count),
            ("Send.UnicastBytes", &mut self.send_unicast_bytes),
            ("Send.UnicastCount", &mut self.send_unicast_count),
        ]
    }
}

/// A [`Traffic`] flattened into its message as SoftEther writes it: `Recv.UnicastBytes_u64` and
/// so on, with `Ex.` in front when `EX` (the `TRAFFIC_EX` of list rows and session status).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficFields<const EX: bool>(pub Traffic);

impl<const EX: bool> TrafficFields<EX> {
    const PREFIX: &'static str = if EX { "Ex." } else { "" };
}

impl<const EX: bool> Serialize for TrafficFields<EX> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut t = self.0;
        let mut m = s.serialize_map(Some(8))?;
        for (name, v) in t.fields() {
            m.serialize_entry(&format!("{}{name}_u64", Self::PREFIX), v)?;
        }
        m.end()
    }
}

impl<'de, const EX: bool> Deserialize<'de> for TrafficFields<EX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const EX: bool>;
        impl<'de, const EX: bool> de::Visitor<'de> for V<EX> {
            type Value = TrafficFields<EX>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("traffic counters")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut t = Traffic::default();
                while let Some(key) = map.next_key::<String>()? {
                    let name = key
                        .strip_prefix(TrafficFields::<EX>::PREFIX)
                        .and_then(|k| k.strip_suffix("_u64"));
                    match t.fields().into_iter().find(|(n, _)| Some(*n) == name) {
                        Some((_, slot)) => *slot = map.next_value()?,
                        None => {
                            map.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(TrafficFields(t))
            }
        }
        d.deserialize_map(V::<EX>)
    }
}

/// A security policy flattened into its message as SoftEther writes it: `policy:Access_bool`,
/// `policy:MaxUpload_u32`, ... and `policy:Ver3_bool`. `None` when the message carries none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicyFields {
    pub policy: Option<Policy>,
    /// The message said `policy:Ver3`: its version 3 items count (SoftEther keeps a stored
    /// policy's version 3 items when a client sends only version 2's).
    pub ver3: bool,
}

impl PolicyFields {
    pub fn of(policy: Option<Policy>) -> Self {
        PolicyFields {
            policy,
            ver3: policy.is_some(),
        }
    }

    /// The policy a set request leaves: none without `use_policy`, else the request's items
    /// (missing ones 0, as SoftEther reads them) over `old`'s version 3 items when the
    /// request has no `policy:Ver3`.
    pub fn applied(&self, use_policy: bool, old: Option<Policy>) -> Option<Policy> {
        if !use_policy {
            return None;
        }
        let mut p = self.policy.unwrap_or(Policy([0; 38]));
        if let (false, Some(old)) = (self.ver3, old) {
            p.0[policy::VER2_ITEMS..].copy_from_slice(&old.0[policy::VER2_ITEMS..]);
        }
        Some(p)
    }
}

impl Serialize for PolicyFields {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        if let Some(p) = &self.policy {
            for (id, item) in policy::ITEMS.iter().enumerate() {
                match item.kind {
                    policy::Kind::Flag => {
                        m.serialize_entry(&format!("policy:{}_bool", item.name), &p.flag(id))?
                    }
                    policy::Kind::Number { .. } => {
                        m.serialize_entry(&format!("policy:{}_u32", item.name), &p.0[id])?
                    }
                }
            }
            m.serialize_entry("policy:Ver3_bool", &true)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for PolicyFields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = PolicyFields;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("policy items")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = PolicyFields::default();
                while let Some(key) = map.next_key::<String>()? {
                    let name = key
                        .strip_prefix("policy:")
                        .and_then(|k| k.rsplit_once('_'))
                        .map(|(n, _)| n);
                    let Some(name) = name else {
                        map.next_value::<de::IgnoredAny>()?;
                        continue;
                    };
                    // a boolean or a number, whichever the client wrote
                    let v = match map.next_value::<Value>()? {
                        Value::Bool(b) => u64::from(b),
                        Value::Number(n) => n.as_u64().unwrap_or(0),
                        Value::String(t) => t.trim().parse().unwrap_or(0),
                        _ => 0,
                    };
                    let v = v.min(u64::from(u32::MAX)) as u32;
                    if name == "Ver3" {
                        out.ver3 = v != 0;
                        continue;
                    }
                    if let Some(id) = policy::ITEMS.iter().position(|i| i.name == name) {
                        let p = out.policy.get_or_insert(Policy([0; 38]));
                        p.0[id] = match policy::ITEMS[id].kind {
                            policy::Kind::Flag => u32::from(v != 0),
                            policy::Kind::Number { .. } => v,
                        };
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}

/// SoftEther's field types by suffix; JSON values of the wrong JSON type are converted where
/// SoftEther's own server converts them (a number in a string, a boolean as 0/1).
fn coerce(name: &str, v: &mut Value) -> Result<(), AdminError> {
    let bad = |what: &str| AdminError::invalid_param(name, &format!("expected {what}"));
    let number = |v: &Value, max: u64| -> Option<u64> {
        match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse().ok(),
            Value::Bool(b) => Some(u64::from(*b)),
            _ => None,
        }
        .filter(|n| *n <= max)
    };
    let suffix = name.rsplit_once('_').map(|(_, s)| s).unwrap_or("");
    match (suffix, &*v) {
        (_, Value::Null) => {}
        ("u32" | "u64", Value::Array(items)) => {
            let max = if suffix == "u32" {
                u64::from(u32::MAX)
            } else {
                u64::MAX
            };
            let nums: Option<Vec<Value>> = items
                .iter()
                .map(|x| number(x, max).map(Value::from))
                .collect();
            *v = Value::Array(nums.ok_or_else(|| bad("an array of numbers"))?);
        }
        ("u32", _) => {
            *v = Value::from(
                number(v, u64::from(u32::MAX)).ok_or_else(|| bad("an unsigned 32-bit number"))?,
            )
        }
        ("u64", _) => {
            *v = Value::from(number(v, u64::MAX).ok_or_else(|| bad("an unsigned 64-bit number"))?)
        }
        ("bool", Value::Array(_)) => {}
        ("bool", _) => {
            let b = match &*v {
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64().unwrap_or(0.0) != 0.0,
                Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                    "true" | "yes" | "1" => true,
                    "false" | "no" | "0" | "" => false,
                    _ => return Err(bad("a boolean")),
                },
                _ => return Err(bad("a boolean")),
            };
            *v = Value::Bool(b);
        }
        ("str" | "utf" | "ip" | "dt" | "bin", Value::Number(n)) => {
            *v = Value::String(n.to_string())
        }
        ("str" | "utf" | "ip" | "dt" | "bin", Value::Bool(b)) => *v = Value::String(b.to_string()),
        ("str" | "utf" | "ip" | "dt" | "bin", Value::String(_) | Value::Array(_)) => {}
        ("str" | "utf" | "ip" | "dt" | "bin", _) => return Err(bad("a string")),
        _ => {}
    }
    Ok(())
}

/// Converts what a client sent into what the typed messages read: every field coerced to its
/// suffix's type, in nested lists too. Errors name the field.
pub fn normalize(v: &mut Value) -> Result<(), AdminError> {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if matches!(x, Value::Object(_))
                    || (matches!(x, Value::Array(a) if a.iter().any(Value::is_object)))
                {
                    normalize(x)?;
                } else {
                    coerce(k, x)?;
                }
            }
        }
        Value::Array(a) => {
            for x in a {
                normalize(x)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Reads a typed message from JSON (normalized first); an error names the field it could.
pub fn decode<T: DeserializeOwned>(mut v: Value) -> Result<T, AdminError> {
    if v.is_null() {
        v = Value::Object(Map::new());
    }
    normalize(&mut v)?;
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        AdminError::invalid_param(&path, &e.into_inner().to_string())
    })
}

/// Writes a typed message as JSON.
pub fn encode<T: Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

/// `base` with the fields present in `patch` laid over it (SetHub and SetSecureNATOption keep
/// what a request leaves out).
pub fn overlay<T: Serialize + DeserializeOwned>(base: &T, patch: &Value) -> Result<T, AdminError> {
    let mut merged = encode(base);
    if let (Value::Object(m), Value::Object(p)) = (&mut merged, patch) {
        for (k, v) in p {
            if !v.is_null() {
                m.insert(k.clone(), v.clone());
            }
        }
    }
    decode(merged)
}

/// A MAC and mask from two 6-byte fields, when checked.
fn mac_pair(
    check: bool,
    mac: &Bin,
    mask: &Bin,
) -> Result<Option<etherhub_config::access::MacMatch>, AdminError> {
    if !check {
        return Ok(None);
    }
    match (
        <[u8; 6]>::try_from(mac.0.as_slice()),
        <[u8; 6]>::try_from(mask.0.as_slice()),
    ) {
        (Ok(a), Ok(m)) => Ok(Some((a, m))),
        _ => Err(AdminError::invalid_param(
            "SrcMacAddress_bin",
            "a checked MAC address and its mask are 6 bytes each",
        )),
    }
}

fn v6(b: &Bin, field: &str) -> Result<std::net::Ipv6Addr, AdminError> {
    if b.0.is_empty() {
        return Ok(std::net::Ipv6Addr::UNSPECIFIED);
    }
    <[u8; 16]>::try_from(b.0.as_slice())
        .map(std::net::Ipv6Addr::from)
        .map_err(|_| AdminError::invalid_param(field, "an IPv6 address is 16 bytes"))
}

fn port(v: u32, field: &str) -> Result<u16, AdminError> {
    u16::try_from(v).map_err(|_| AdminError::invalid_param(field, "a port is 0..65535"))
}

impl crate::types::AccessEntry {
    /// The rule it describes, checked: ports within range and in order, MACs of 6 bytes.
    pub fn to_rule(&self) -> Result<etherhub_config::AccessRule, AdminError> {
        let range = |a: u32, b: u32, fa: &str, fb: &str| -> Result<(u16, u16), AdminError> {
            let (a, b) = (port(a, fa)?, port(b, fb)?);
            // SoftEther: an end below the start becomes the start
            Ok((a, if a != 0 { b.max(a) } else { b }))
        };
        Ok(etherhub_config::AccessRule {
            note: self.note.clone(),
            active: self.active,
            priority: self.priority,
            discard: self.discard,
            ipv6: self.ipv6,
            src_ip: self.src_ip.v4(),
            src_mask: self.src_mask.v4(),
            dst_ip: self.dst_ip.v4(),
            dst_mask: self.dst_mask.v4(),
            src_ip6: v6(&self.src_ip6, "SrcIpAddress6_bin")?,
            src_mask6: v6(&self.src_mask6, "SrcSubnetMask6_bin")?,
            dst_ip6: v6(&self.dst_ip6, "DestIpAddress6_bin")?,
            dst_mask6: v6(&self.dst_mask6, "DestSubnetMask6_bin")?,
            protocol: self.protocol,
            src_ports: range(
                self.src_port_start,
                self.src_port_end,
                "SrcPortStart_u32",
                "SrcPortEnd_u32",
            )?,
            dst_ports: range(
                self.dst_port_start,
                self.dst_port_end,
                "DestPortStart_u32",
                "DestPortEnd_u32",
            )?,
            src_user: self.src_user.clone(),
            dst_user: self.dst_user.clone(),
            src_mac: mac_pair(self.check_src_mac, &self.src_mac, &self.src_mac_mask)?,
            dst_mac: mac_pair(self.check_dst_mac, &self.dst_mac, &self.dst_mac_mask)?,
            tcp_established: self.check_tcp_state.then_some(self.established),
            delay: self.delay,
            jitter: self.jitter,
            loss: self.loss,
            redirect_url: self.redirect_url.clone(),
        })
    }

    /// A rule as the admin messages show it: `id` its place (1..N), `matches` its count.
    pub fn of_rule(r: &etherhub_config::AccessRule, id: u32, matches: u64) -> Self {
        let mac = |m: &Option<([u8; 6], [u8; 6])>| {
            m.map(|(a, k)| (Bin(a.to_vec()), Bin(k.to_vec())))
                .unwrap_or_default()
        };
        let (src_mac, src_mac_mask) = mac(&r.src_mac);
        let (dst_mac, dst_mac_mask) = mac(&r.dst_mac);
        let six = |a: std::net::Ipv6Addr| Bin(a.octets().to_vec());
        crate::types::AccessEntry {
            id,
            note: r.note.clone(),
            active: r.active,
            priority: r.priority,
            discard: r.discard,
            ipv6: r.ipv6,
            src_ip: r.src_ip.into(),
            src_mask: r.src_mask.into(),
            dst_ip: r.dst_ip.into(),
            dst_mask: r.dst_mask.into(),
            src_ip6: six(r.src_ip6),
            src_mask6: six(r.src_mask6),
            dst_ip6: six(r.dst_ip6),
            dst_mask6: six(r.dst_mask6),
            protocol: r.protocol,
            src_port_start: r.src_ports.0.into(),
            src_port_end: r.src_ports.1.into(),
            dst_port_start: r.dst_ports.0.into(),
            dst_port_end: r.dst_ports.1.into(),
            src_user: r.src_user.clone(),
            dst_user: r.dst_user.clone(),
            check_src_mac: r.src_mac.is_some(),
            src_mac,
            src_mac_mask,
            check_dst_mac: r.dst_mac.is_some(),
            dst_mac,
            dst_mac_mask,
            check_tcp_state: r.tcp_established.is_some(),
            established: r.tcp_established.unwrap_or(false),
            delay: r.delay,
            jitter: r.jitter,
            loss: r.loss,
            redirect_url: r.redirect_url.clone(),
            unique_id: unique_id(r),
            matches,
        }
    }
}

/// A rule's UniqueId: from its contents, 32768 and above (SoftEther hashes the entry's address).
pub fn unique_id(r: &etherhub_config::AccessRule) -> u32 {
    let text = format!("{r:?}");
    let h = etherhub_config::hash::sha0(text.as_bytes());
    u32::from_be_bytes([h[0], h[1], h[2], h[3]]) | 0x8000_0000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dt_round_trip() {
        let ms = parse_dt("2026-11-24T21:01:40.123").unwrap();
        assert_eq!(format_dt(ms), "2026-11-24T21:01:40.123");
        let t = DateTime::from_unix_ms(ms);
        assert_eq!(t.weekday_name(), "Tue");
        assert_eq!(parse_dt("1970-01-01T00:00:00"), Some(0));
        assert_eq!(parse_dt("2000-02-29 12:00:00Z"), Some(951_825_600_000));
        assert_eq!(parse_dt("garbage"), None);
        assert_eq!(parse_dt("2020-13-01T00:00:00"), None);
    }

    #[test]
    fn loose_json_is_coerced_by_suffix_and_errors_name_the_field() {
        let mut v = serde_json::json!({
            "Port_u32": "443", "Online_bool": "yes", "Name_str": 7, "Ports_u32": ["1", 2],
            "List": [{"Id_u32": "5"}]
        });
        normalize(&mut v).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "Port_u32": 443, "Online_bool": true, "Name_str": "7", "Ports_u32": [1, 2],
                "List": [{"Id_u32": 5}]
            })
        );
        let e = normalize(&mut serde_json::json!({"MaxSession_u32": "lots"})).unwrap_err();
        assert!(e.message.contains("MaxSession_u32"), "{}", e.message);
        let e = normalize(&mut serde_json::json!({"Port_u32": 70000000000u64})).unwrap_err();
        assert!(e.message.contains("Port_u32"), "{}", e.message);
    }

    #[test]
    fn traffic_fields_carry_their_prefix_both_ways() {
        let t = Traffic {
            recv_unicast_bytes: 5,
            send_broadcast_count: 2,
            ..Traffic::default()
        };
        let v = encode(&TrafficFields::<true>(t));
        assert_eq!(v["Ex.Recv.UnicastBytes_u64"], 5);
        assert_eq!(v["Ex.Send.BroadcastCount_u64"], 2);
        let back: TrafficFields<true> = decode(v).unwrap();
        assert_eq!(back.0, t);
        let plain = encode(&TrafficFields::<false>(t));
        assert_eq!(plain["Recv.UnicastBytes_u64"], 5);
    }

    #[test]
    fn ip_u32_matches_softether_layout() {
        let ip = Ipv4Addr::new(192, 168, 30, 1);
        assert_eq!(ipv4_to_u32(ip), 0x011E_A8C0);
        assert_eq!(ipv4_from_u32(0x011E_A8C0), ip);
    }
}
