//! SoftEther's PACK: the serialization of its native protocol and of its admin RPC.
//!
//! A PACK is a list of named elements; each element has one type and one or more values of that
//! type (several values make an array: element `Name` with N values is "Name[0..N]"). On the
//! wire, every integer is big-endian:
//!
//! ```text
//! pack    = u32 element_count, element*
//! element = u32 (name_len + 1), name bytes (no NUL), u32 type, u32 value_count, value*
//! value   = int:    u32
//!           int64:  u64
//!           data:   u32 len, bytes
//!           str:    u32 len, bytes (no NUL)
//!           unistr: u32 (utf8_len + 1), UTF-8 bytes, NUL
//! ```
//!
//! Names compare without regard to ASCII case and are unique within a PACK; an element has at
//! least one value. An IP address `X` is four elements: `X@ipv6_bool`, `X@ipv6_array` (16
//! bytes), `X@ipv6_scope_id` and `X`, the IPv4 address as an int whose big-endian bytes are the
//! octets in reverse order (SoftEther copies the four octets into a little-endian `UINT`).
//!
//! [`Pack::parse`] reads a complete buffer (the transport frames it) and checks every length
//! against the bytes present and the [`Limits`] before it allocates; it never panics on any
//! input. Elements keep the order they arrived in, so parsing and writing again gives back
//! the same bytes for any well-formed PACK.

#![forbid(unsafe_code)]

pub mod time;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// SoftEther's value type codes (`VALUE_INT` ... `VALUE_INT64` in `Pack.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Int = 0,
    Data = 1,
    Str = 2,
    UniStr = 3,
    Int64 = 4,
}

impl Kind {
    fn from_code(code: u32) -> Option<Kind> {
        Some(match code {
            0 => Kind::Int,
            1 => Kind::Data,
            2 => Kind::Str,
            3 => Kind::UniStr,
            4 => Kind::Int64,
            _ => return None,
        })
    }

    /// The type's name as SoftEther's sources call it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Int => "int",
            Kind::Data => "data",
            Kind::Str => "str",
            Kind::UniStr => "unistr",
            Kind::Int64 => "int64",
        }
    }
}

/// The values of one element, all of one type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Values {
    Int(Vec<u32>),
    Data(Vec<Vec<u8>>),
    /// SoftEther's "ANSI" strings: bytes, in practice ASCII or UTF-8.
    Str(Vec<Vec<u8>>),
    UniStr(Vec<String>),
    Int64(Vec<u64>),
}

impl Values {
    pub fn kind(&self) -> Kind {
        match self {
            Values::Int(_) => Kind::Int,
            Values::Data(_) => Kind::Data,
            Values::Str(_) => Kind::Str,
            Values::UniStr(_) => Kind::UniStr,
            Values::Int64(_) => Kind::Int64,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Values::Int(v) => v.len(),
            Values::Data(v) | Values::Str(v) => v.len(),
            Values::UniStr(v) => v.len(),
            Values::Int64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One named element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub values: Values,
}

impl Element {
    pub fn new(name: impl Into<String>, values: Values) -> Element {
        Element {
            name: name.into(),
            values,
        }
    }
}

/// Bounds on what [`Pack::parse`] accepts, besides the buffer's own length.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_elements: u32,
    pub max_values: u32,
    pub max_value_size: u32,
}

impl Default for Limits {
    /// SoftEther's 32-bit limits (`MAX_ELEMENT_NUM`, `MAX_VALUE_NUM`, `MAX_VALUE_SIZE`).
    fn default() -> Self {
        Limits {
            max_elements: 131_072,
            max_values: 65_536,
            max_value_size: 96 * 1024 * 1024,
        }
    }
}

/// The longest element name SoftEther stores (`MAX_ELEMENT_NAME_LEN`).
pub const MAX_NAME_LEN: usize = 63;

/// Why bytes are not a PACK. Offsets count from the start of the buffer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PackError {
    #[error("PACK ends at byte {at} in the middle of {what}")]
    Truncated { at: usize, what: &'static str },
    #[error("PACK declares {0} elements, more than the limit")]
    TooManyElements(u32),
    #[error("element name at byte {at} is empty or longer than {MAX_NAME_LEN} bytes")]
    BadName { at: usize },
    #[error("element name at byte {at} is not UTF-8")]
    NameNotUtf8 { at: usize },
    #[error("element {element:?} has unknown type {code}")]
    UnknownType { element: String, code: u32 },
    #[error("element {element:?} has no values")]
    NoValues { element: String },
    #[error("element {element:?} declares {count} values, more than the limit")]
    TooManyValues { element: String, count: u32 },
    #[error("a value of element {element:?} declares {size} bytes, more than the limit")]
    ValueTooLarge { element: String, size: u32 },
    #[error("a unistr value of element {element:?} is not UTF-8")]
    NotUtf8 { element: String },
    #[error("element {element:?} appears twice")]
    Duplicate { element: String },
    #[error("{0} bytes follow the last element")]
    Trailing(usize),
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], PackError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(PackError::Truncated { at: self.at, what })?;
        let s = &self.buf[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, PackError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, PackError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    fn left(&self) -> usize {
        self.buf.len() - self.at
    }
}

/// The smallest encoding of one value of `kind`: a count claiming more values than the bytes
/// left could hold is refused before anything is allocated for them.
fn min_value_len(kind: Kind) -> usize {
    match kind {
        Kind::Int | Kind::Data | Kind::Str | Kind::UniStr => 4,
        Kind::Int64 => 8,
    }
}

fn read_values(
    r: &mut Reader<'_>,
    name: &str,
    kind: Kind,
    count: usize,
    limits: &Limits,
) -> Result<Values, PackError> {
    let sized = |r: &mut Reader<'_>| -> Result<usize, PackError> {
        let size = r.u32("a value's length")?;
        if size > limits.max_value_size {
            return Err(PackError::ValueTooLarge {
                element: name.to_string(),
                size,
            });
        }
        Ok(size as usize)
    };
    Ok(match kind {
        Kind::Int => Values::Int(
            (0..count)
                .map(|_| r.u32("an int value"))
                .collect::<Result<_, _>>()?,
        ),
        Kind::Int64 => Values::Int64(
            (0..count)
                .map(|_| r.u64("an int64 value"))
                .collect::<Result<_, _>>()?,
        ),
        Kind::Data | Kind::Str => {
            let mut v = Vec::with_capacity(count);
            for _ in 0..count {
                let n = sized(r)?;
                v.push(r.take(n, "a data or str value")?.to_vec());
            }
            if kind == Kind::Data {
                Values::Data(v)
            } else {
                Values::Str(v)
            }
        }
        Kind::UniStr => {
            let mut v = Vec::with_capacity(count);
            for _ in 0..count {
                let n = sized(r)?;
                let bytes = r.take(n, "a unistr value")?;
                // the stored length counts a terminating NUL; C reads up to the first one
                let text = bytes.split(|&b| b == 0).next().unwrap_or(&[]);
                let s = std::str::from_utf8(text).map_err(|_| PackError::NotUtf8 {
                    element: name.to_string(),
                })?;
                v.push(s.to_string());
            }
            Values::UniStr(v)
        }
    })
}

/// A PACK: elements in order, names unique without regard to case.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pack {
    elements: Vec<Element>,
}

impl Pack {
    pub fn new() -> Pack {
        Pack::default()
    }

    /// Reads a whole buffer as one PACK with SoftEther's default limits.
    pub fn parse(bytes: &[u8]) -> Result<Pack, PackError> {
        Pack::parse_with(bytes, &Limits::default())
    }

    /// Reads a whole buffer as one PACK; bytes after the last element are an error.
    pub fn parse_with(bytes: &[u8], limits: &Limits) -> Result<Pack, PackError> {
        let mut r = Reader { buf: bytes, at: 0 };
        let count = r.u32("the element count")?;
        // an element takes at least 16 bytes (name length, one name byte, type, count, a value)
        if count > limits.max_elements {
            return Err(PackError::TooManyElements(count));
        }
        if count as usize > r.left() / 16 + 1 {
            return Err(PackError::Truncated {
                at: bytes.len(),
                what: "the elements its count announces",
            });
        }
        let mut elements = Vec::with_capacity(count as usize);
        let mut seen = HashSet::with_capacity(count as usize);
        for _ in 0..count {
            let name_at = r.at;
            let stored = r.u32("an element name's length")? as usize;
            if stored < 2 || stored - 1 > MAX_NAME_LEN {
                return Err(PackError::BadName { at: name_at });
            }
            let name = r.take(stored - 1, "an element name")?;
            let name = std::str::from_utf8(name)
                .map_err(|_| PackError::NameNotUtf8 { at: name_at })?
                .to_string();
            let code = r.u32("an element's type")?;
            let kind = Kind::from_code(code).ok_or_else(|| PackError::UnknownType {
                element: name.clone(),
                code,
            })?;
            let n = r.u32("an element's value count")?;
            if n == 0 {
                return Err(PackError::NoValues { element: name });
            }
            if n > limits.max_values {
                return Err(PackError::TooManyValues {
                    element: name,
                    count: n,
                });
            }
            if n as usize > r.left() / min_value_len(kind) {
                return Err(PackError::Truncated {
                    at: bytes.len(),
                    what: "the values an element's count announces",
                });
            }
            let values = read_values(&mut r, &name, kind, n as usize, limits)?;
            if !seen.insert(name.to_ascii_lowercase()) {
                return Err(PackError::Duplicate { element: name });
            }
            elements.push(Element { name, values });
        }
        if r.left() != 0 {
            return Err(PackError::Trailing(r.left()));
        }
        Ok(Pack { elements })
    }

    /// The PACK's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 * self.elements.len() + 4);
        self.write_to(&mut out);
        out
    }

    /// Appends the PACK's bytes to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let be = |out: &mut Vec<u8>, n: usize| out.extend_from_slice(&(n as u32).to_be_bytes());
        be(out, self.elements.len());
        for e in &self.elements {
            be(out, e.name.len() + 1);
            out.extend_from_slice(e.name.as_bytes());
            be(out, e.values.kind() as usize);
            be(out, e.values.len());
            match &e.values {
                Values::Int(v) => v
                    .iter()
                    .for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
                Values::Int64(v) => v
                    .iter()
                    .for_each(|x| out.extend_from_slice(&x.to_be_bytes())),
                Values::Data(v) | Values::Str(v) => {
                    for x in v {
                        be(out, x.len());
                        out.extend_from_slice(x);
                    }
                }
                Values::UniStr(v) => {
                    for x in v {
                        be(out, x.len() + 1);
                        out.extend_from_slice(x.as_bytes());
                        out.push(0);
                    }
                }
            }
        }
    }

    pub fn elements(&self) -> &[Element] {
        &self.elements
    }

    pub fn into_elements(self) -> Vec<Element> {
        self.elements
    }

    pub fn is_empty(&self) -> bool {
        self.elements.is_empty()
    }

    pub fn len(&self) -> usize {
        self.elements.len()
    }

    /// The element of this name, ignoring ASCII case.
    pub fn get(&self, name: &str) -> Option<&Element> {
        self.elements
            .iter()
            .find(|e| e.name.eq_ignore_ascii_case(name))
    }

    /// Adds an element, or replaces the one of the same name (ignoring case) in its place.
    /// An element without values is not stored: SoftEther cannot carry one.
    pub fn set(&mut self, element: Element) {
        if element.values.is_empty() {
            self.remove(&element.name);
            return;
        }
        match self
            .elements
            .iter_mut()
            .find(|e| e.name.eq_ignore_ascii_case(&element.name))
        {
            Some(e) => *e = element,
            None => self.elements.push(element),
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<Element> {
        let i = self
            .elements
            .iter()
            .position(|e| e.name.eq_ignore_ascii_case(name))?;
        Some(self.elements.remove(i))
    }

    /// How many values the element has (SoftEther's `PackGetIndexCount`); 0 if it is absent.
    pub fn count(&self, name: &str) -> usize {
        self.get(name).map_or(0, |e| e.values.len())
    }

    pub fn int_at(&self, name: &str, i: usize) -> Option<u32> {
        match &self.get(name)?.values {
            Values::Int(v) => v.get(i).copied(),
            _ => None,
        }
    }

    pub fn int(&self, name: &str) -> Option<u32> {
        self.int_at(name, 0)
    }

    pub fn int64_at(&self, name: &str, i: usize) -> Option<u64> {
        match &self.get(name)?.values {
            Values::Int64(v) => v.get(i).copied(),
            _ => None,
        }
    }

    pub fn int64(&self, name: &str) -> Option<u64> {
        self.int64_at(name, 0)
    }

    /// An int read as a bool (non-zero is true), as `PackGetBool` does.
    pub fn bool(&self, name: &str) -> Option<bool> {
        self.int(name).map(|v| v != 0)
    }

    /// A str value as text (`None` if absent, another type, or not UTF-8). SoftEther's C
    /// strings end at a NUL byte, so this does too.
    pub fn str_at(&self, name: &str, i: usize) -> Option<&str> {
        match &self.get(name)?.values {
            Values::Str(v) => {
                let b = v.get(i)?;
                std::str::from_utf8(b.split(|&c| c == 0).next().unwrap_or(&[])).ok()
            }
            _ => None,
        }
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        self.str_at(name, 0)
    }

    pub fn unistr_at(&self, name: &str, i: usize) -> Option<&str> {
        match &self.get(name)?.values {
            Values::UniStr(v) => v.get(i).map(String::as_str),
            _ => None,
        }
    }

    pub fn unistr(&self, name: &str) -> Option<&str> {
        self.unistr_at(name, 0)
    }

    pub fn data_at(&self, name: &str, i: usize) -> Option<&[u8]> {
        match &self.get(name)?.values {
            Values::Data(v) => v.get(i).map(Vec::as_slice),
            _ => None,
        }
    }

    pub fn data(&self, name: &str) -> Option<&[u8]> {
        self.data_at(name, 0)
    }

    pub fn set_int(&mut self, name: &str, v: u32) {
        self.set(Element::new(name, Values::Int(vec![v])));
    }

    pub fn set_bool(&mut self, name: &str, v: bool) {
        self.set_int(name, u32::from(v));
    }

    pub fn set_int64(&mut self, name: &str, v: u64) {
        self.set(Element::new(name, Values::Int64(vec![v])));
    }

    pub fn set_str(&mut self, name: &str, v: &str) {
        self.set(Element::new(name, Values::Str(vec![v.as_bytes().to_vec()])));
    }

    pub fn set_unistr(&mut self, name: &str, v: &str) {
        self.set(Element::new(name, Values::UniStr(vec![v.to_string()])));
    }

    pub fn set_data(&mut self, name: &str, v: &[u8]) {
        self.set(Element::new(name, Values::Data(vec![v.to_vec()])));
    }

    /// The address at index `i` of the IP `name`: the IPv6 form when `name@ipv6_bool` says
    /// so, else the IPv4 int (SoftEther's `PackGetIpEx`).
    pub fn ip_at(&self, name: &str, i: usize) -> Option<IpAddr> {
        if self.int_at(&format!("{name}@ipv6_bool"), i).unwrap_or(0) != 0 {
            let mut a = [0u8; 16];
            if let Some(d) = self.data_at(&format!("{name}@ipv6_array"), i) {
                if d.len() == 16 {
                    a.copy_from_slice(d);
                }
            }
            return Some(IpAddr::V6(Ipv6Addr::from(a)));
        }
        self.int_at(name, i).map(|v| IpAddr::V4(ip4_from_int(v)))
    }

    pub fn ip(&self, name: &str) -> Option<IpAddr> {
        self.ip_at(name, 0)
    }

    /// Sets the IP `name` to these addresses (one value each), with its three companion
    /// elements, as SoftEther's `PackAddIpEx` does.
    pub fn set_ips(&mut self, name: &str, ips: &[IpAddr]) {
        let mut is6 = Vec::with_capacity(ips.len());
        let mut array = Vec::with_capacity(ips.len());
        let mut v4 = Vec::with_capacity(ips.len());
        for ip in ips {
            match ip {
                IpAddr::V4(a) => {
                    is6.push(0);
                    array.push(vec![0u8; 16]);
                    v4.push(ip4_to_int(*a));
                }
                IpAddr::V6(a) => {
                    is6.push(1);
                    array.push(a.octets().to_vec());
                    v4.push(0);
                }
            }
        }
        let scope = vec![0; ips.len()];
        self.set(Element::new(format!("{name}@ipv6_bool"), Values::Int(is6)));
        self.set(Element::new(
            format!("{name}@ipv6_array"),
            Values::Data(array),
        ));
        self.set(Element::new(
            format!("{name}@ipv6_scope_id"),
            Values::Int(scope),
        ));
        self.set(Element::new(name, Values::Int(v4)));
    }

    pub fn set_ip(&mut self, name: &str, ip: IpAddr) {
        self.set_ips(name, &[ip]);
    }
}

/// The int SoftEther stores an IPv4 address as: its octets read as a little-endian `u32`.
pub fn ip4_to_int(a: Ipv4Addr) -> u32 {
    u32::from_le_bytes(a.octets())
}

/// Inverse of [`ip4_to_int`].
pub fn ip4_from_int(v: u32) -> Ipv4Addr {
    Ipv4Addr::from(v.to_le_bytes())
}

/// True for the companion elements of an IP (`X@ipv6_bool`, `X@ipv6_array`,
/// `X@ipv6_scope_id`); returns `X`.
pub fn ip_companion_of(name: &str) -> Option<&str> {
    let (base, suffix) = name.rsplit_once('@')?;
    matches!(suffix, "ipv6_bool" | "ipv6_array" | "ipv6_scope_id").then_some(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_every_type_as_softether_lays_it_out() {
        let mut p = Pack::new();
        p.set_int("a", 0x0102_0304);
        p.set_int64("b", 0x0102_0304_0506_0708);
        p.set_str("c", "xy");
        p.set_unistr("d", "é");
        p.set_data("e", &[9]);
        let b = p.to_bytes();
        let expect: Vec<u8> = [
            &[0, 0, 0, 5][..],
            &[0, 0, 0, 2, b'a', 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4],
            &[
                0, 0, 0, 2, b'b', 0, 0, 0, 4, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8,
            ],
            &[
                0, 0, 0, 2, b'c', 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2, b'x', b'y',
            ],
            &[
                0, 0, 0, 2, b'd', 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 3, 0xc3, 0xa9, 0,
            ],
            &[0, 0, 0, 2, b'e', 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 9],
        ]
        .concat();
        assert_eq!(b, expect);
        assert_eq!(Pack::parse(&b).unwrap(), p);
    }

    #[test]
    fn names_ignore_case_and_set_replaces_in_place() {
        let mut p = Pack::new();
        p.set_int("Port", 1);
        p.set_str("HubName", "DEFAULT");
        p.set_int("PORT", 2);
        assert_eq!(p.len(), 2);
        assert_eq!(p.int("port"), Some(2));
        assert_eq!(p.elements()[0].name, "PORT");
        assert_eq!(p.str("hubname"), Some("DEFAULT"));
        assert_eq!(p.int("HubName"), None, "a str is not an int");
    }

    #[test]
    fn ipv4_is_the_octets_as_a_little_endian_int_with_companions() {
        let mut p = Pack::new();
        p.set_ip("Ip", "192.168.30.1".parse().unwrap());
        assert_eq!(p.int("Ip"), Some(0x011e_a8c0));
        assert_eq!(p.int("Ip@ipv6_bool"), Some(0));
        assert_eq!(p.data("Ip@ipv6_array"), Some(&[0u8; 16][..]));
        assert_eq!(p.ip("Ip"), Some("192.168.30.1".parse().unwrap()));
        let v6: IpAddr = "fe80::1".parse().unwrap();
        p.set_ips("Ip", &["10.0.0.1".parse().unwrap(), v6]);
        assert_eq!(p.ip_at("Ip", 1), Some(v6));
        assert_eq!(p.ip_at("Ip", 0), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(ip_companion_of("Ip@ipv6_scope_id"), Some("Ip"));
        assert_eq!(ip_companion_of("Ip"), None);
    }

    #[test]
    fn refuses_what_softether_refuses() {
        let ok = {
            let mut p = Pack::new();
            p.set_int("a", 1);
            p.to_bytes()
        };
        // truncated anywhere
        for n in 0..ok.len() {
            assert!(
                matches!(Pack::parse(&ok[..n]), Err(PackError::Truncated { .. })),
                "{n}"
            );
        }
        // trailing bytes
        let mut t = ok.clone();
        t.push(0);
        assert_eq!(Pack::parse(&t), Err(PackError::Trailing(1)));
        // zero values
        let none = [
            &[0, 0, 0, 1][..],
            &[0, 0, 0, 2, b'a', 0, 0, 0, 0, 0, 0, 0, 0],
        ]
        .concat();
        assert!(matches!(
            Pack::parse(&none),
            Err(PackError::NoValues { .. })
        ));
        // unknown type
        let mut bad = ok.clone();
        bad[12] = 9;
        assert!(matches!(
            Pack::parse(&bad),
            Err(PackError::UnknownType { code: 9, .. })
        ));
        // duplicate names, whatever their case
        let dup = [
            &[0, 0, 0, 2][..],
            &ok[4..],
            &[0, 0, 0, 2, b'A', 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2],
        ]
        .concat();
        assert!(matches!(
            Pack::parse(&dup),
            Err(PackError::Duplicate { .. })
        ));
        // a count larger than the bytes could hold is refused before allocating
        let huge = [0xff, 0xff, 0xff, 0x00];
        assert!(matches!(
            Pack::parse(&huge),
            Err(PackError::TooManyElements(_))
        ));
        let many = [
            &[0, 0, 0, 1][..],
            &[0, 0, 0, 2, b'a', 0, 0, 0, 0, 0, 0xff, 0xff, 0xff],
        ]
        .concat();
        assert!(matches!(
            Pack::parse(&many),
            Err(PackError::TooManyValues { .. })
        ));
        // names: empty, or longer than 63
        let empty_name = [&[0, 0, 0, 1][..], &[0, 0, 0, 1, 0, 0, 0, 0]].concat();
        assert!(matches!(
            Pack::parse(&empty_name),
            Err(PackError::BadName { at: 4 })
        ));
    }

    #[test]
    fn value_size_limit_is_checked_before_reading() {
        let mut p = Pack::new();
        p.set_data("d", &[0u8; 100]);
        let b = p.to_bytes();
        let tight = Limits {
            max_value_size: 99,
            ..Limits::default()
        };
        assert!(matches!(
            Pack::parse_with(&b, &tight),
            Err(PackError::ValueTooLarge { size: 100, .. })
        ));
        assert!(Pack::parse(&b).is_ok());
    }
}
