//! The step between SoftEther's binary RPC (PACK) and the JSON the typed messages read and
//! write. SoftEther's JSON-RPC names a field by its PACK element plus a type suffix, so the two
//! are one mapping:
//!
//! | JSON suffix | PACK element |
//! |---|---|
//! | `_u32`, `_bool` | int (bool: 0 or 1) |
//! | `_u64` | int64 |
//! | `_dt` | int64, SoftEther's milliseconds from 1970-01-01T09:00:00Z ([`etherhub_pack::time`]) |
//! | `_str` | str |
//! | `_utf` | unistr |
//! | `_bin` | data |
//! | `_ip` | int with its `@ipv6_*` companions |
//!
//! A JSON array of scalars is one element with a value each; an array of objects (`SessionList`,
//! `HubList`, ...) is one element per field with a value per object, the way SoftEther's
//! `OutRpcEnumSession` and friends write them (`PackAddStrEx(p, "Name", ..., i, count)`).
//!
//! A PACK says an element's type but not which suffix a message wants (an int may be a
//! `_u32`, a `_bool` or an `_ip`), so [`pack_to_json`] offers every reading of each element and
//! the typed message takes the one it names.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use base64::Engine as _;
use etherhub_pack::time::{from_time64, to_time64};
use etherhub_pack::{ip_companion_of, Element, Pack, Values};
use serde_json::{Map, Value};

use crate::wire::{format_dt, parse_dt};

/// Every reading of every element: a one-valued element as a scalar, a longer one as an array.
pub fn pack_to_json(p: &Pack) -> Value {
    let mut out = Map::new();
    for e in p.elements() {
        if ip_companion_of(&e.name).is_some() {
            continue;
        }
        let n = &e.name;
        let is_ip = p.get(&format!("{n}@ipv6_bool")).is_some();
        match &e.values {
            Values::Int(v) => {
                put(&mut out, n, "u32", v.iter().map(|&x| Value::from(x)));
                put(&mut out, n, "bool", v.iter().map(|&x| Value::Bool(x != 0)));
                if is_ip {
                    let ips = (0..v.len()).map(|i| {
                        Value::String(p.ip_at(n, i).map(|a| a.to_string()).unwrap_or_default())
                    });
                    put(&mut out, n, "ip", ips);
                }
            }
            Values::Int64(v) => {
                put(&mut out, n, "u64", v.iter().map(|&x| Value::from(x)));
                put(
                    &mut out,
                    n,
                    "dt",
                    v.iter().map(|&x| Value::String(format_dt(from_time64(x)))),
                );
            }
            Values::Str(v) => {
                let text = |b: &Vec<u8>| {
                    let b = b.split(|&c| c == 0).next().unwrap_or(&[]);
                    Value::String(String::from_utf8_lossy(b).into_owned())
                };
                put(&mut out, n, "str", v.iter().map(text));
                put(&mut out, n, "utf", v.iter().map(text));
            }
            Values::UniStr(v) => {
                put(
                    &mut out,
                    n,
                    "utf",
                    v.iter().map(|s| Value::String(s.clone())),
                );
                put(
                    &mut out,
                    n,
                    "str",
                    v.iter().map(|s| Value::String(s.clone())),
                );
            }
            Values::Data(v) => {
                let b64 = base64::engine::general_purpose::STANDARD;
                put(
                    &mut out,
                    n,
                    "bin",
                    v.iter().map(|d| Value::String(b64.encode(d))),
                );
            }
        }
    }
    Value::Object(out)
}

fn put(out: &mut Map<String, Value>, name: &str, suffix: &str, vals: impl Iterator<Item = Value>) {
    let mut vals: Vec<Value> = vals.collect();
    let v = if vals.len() == 1 {
        vals.pop().unwrap_or(Value::Null)
    } else {
        Value::Array(vals)
    };
    out.insert(format!("{name}_{suffix}"), v);
}

/// The PACK of a JSON object written by the typed messages. Fields without a known suffix
/// and not holding objects are left out; so are empty arrays (a PACK element has a value).
pub fn json_to_pack(v: &Value) -> Pack {
    let mut p = Pack::new();
    if let Value::Object(m) = v {
        for (k, x) in m {
            match x {
                Value::Array(items) if items.iter().any(Value::is_object) => table(&mut p, items),
                Value::Array(items) => field(&mut p, k, items),
                _ => field(&mut p, k, std::slice::from_ref(x)),
            }
        }
    }
    p
}

/// An array of objects: a column per field, a value per row; a row without the field gives
/// the field type's zero.
fn table(p: &mut Pack, rows: &[Value]) {
    let mut columns: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        let Value::Object(r) = row else { continue };
        for (k, x) in r {
            let col = columns.entry(k.as_str()).or_default();
            col.resize(i, Value::Null);
            col.push(x.clone());
        }
    }
    for (k, mut col) in columns {
        col.resize(rows.len(), Value::Null);
        field(p, k, &col);
    }
}

/// One suffixed field with its values (nulls become the type's zero).
fn field(p: &mut Pack, key: &str, vals: &[Value]) {
    let Some((name, suffix)) = key.rsplit_once('_') else {
        return;
    };
    if vals.is_empty() || name.is_empty() {
        return;
    }
    let u64_of = |x: &Value| match x {
        Value::Bool(b) => u64::from(*b),
        Value::Number(n) => n.as_u64().unwrap_or(0),
        Value::String(s) => s.trim().parse().unwrap_or(0),
        _ => 0,
    };
    let text = |x: &Value| match x {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let values = match suffix {
        "u32" | "bool" => Values::Int(vals.iter().map(|x| u64_of(x) as u32).collect()),
        "u64" => Values::Int64(vals.iter().map(u64_of).collect()),
        "dt" => Values::Int64(
            vals.iter()
                .map(|x| match x {
                    Value::String(s) => to_time64(parse_dt(s).unwrap_or(0)),
                    other => u64_of(other),
                })
                .collect(),
        ),
        "str" => Values::Str(vals.iter().map(|x| text(x).into_bytes()).collect()),
        "utf" => Values::UniStr(vals.iter().map(text).collect()),
        "bin" => Values::Data(
            vals.iter()
                .map(|x| {
                    base64::engine::general_purpose::STANDARD
                        .decode(text(x).trim())
                        .unwrap_or_default()
                })
                .collect(),
        ),
        "ip" => {
            let ips: Vec<IpAddr> = vals
                .iter()
                .map(|x| {
                    text(x)
                        .trim()
                        .parse()
                        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
                })
                .collect();
            p.set_ips(name, &ips);
            return;
        }
        _ => return,
    };
    p.set(Element::new(name, values));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_suffix_maps_to_its_element_type_and_back() {
        let v = json!({
            "HubName_str": "DEFAULT", "Note_utf": "héllo", "Port_u32": 443, "Online_bool": true,
            "Bytes_u64": 5_000_000_000u64, "Created_dt": "2026-11-24T21:01:40.123",
            "Mac_bin": "AAECAwQF", "Ip_ip": "192.168.30.1", "Ports_u32": [443, 992],
            "Ignored": 1
        });
        let p = json_to_pack(&v);
        assert_eq!(p.str("HubName"), Some("DEFAULT"));
        assert_eq!(p.unistr("Note"), Some("héllo"));
        assert_eq!(p.int("Port"), Some(443));
        assert_eq!(p.int("Online"), Some(1));
        assert_eq!(p.int64("Bytes"), Some(5_000_000_000));
        assert_eq!(
            p.int64("Created"),
            parse_dt("2026-11-24T21:01:40.123").map(|ms| ms - 32_400_000)
        );
        assert_eq!(p.data("Mac"), Some(&[0u8, 1, 2, 3, 4, 5][..]));
        assert_eq!(p.ip("Ip"), Some("192.168.30.1".parse().unwrap()));
        assert_eq!(p.count("Ports"), 2);
        assert!(p.get("Ignored").is_none());

        let back = pack_to_json(&p);
        for k in [
            "HubName_str",
            "Note_utf",
            "Port_u32",
            "Online_bool",
            "Bytes_u64",
            "Created_dt",
            "Mac_bin",
            "Ip_ip",
            "Ports_u32",
        ] {
            assert_eq!(back[k], v[k], "{k}");
        }
        assert!(
            back.get("Ip@ipv6_bool_bool").is_none(),
            "companions are not fields"
        );
    }

    #[test]
    fn a_list_of_objects_is_a_column_per_field() {
        let v = json!({
            "HubName_str": "DEFAULT",
            "SessionList": [
                {"Name_str": "SID-A", "Ip_ip": "10.0.0.2", "Packets_u64": 1},
                {"Name_str": "SID-B", "Ip_ip": "10.0.0.3"}
            ]
        });
        let p = json_to_pack(&v);
        assert_eq!(p.count("Name"), 2);
        assert_eq!(p.str_at("Name", 1), Some("SID-B"));
        assert_eq!(p.ip_at("Ip", 1), Some("10.0.0.3".parse().unwrap()));
        assert_eq!(p.int64_at("Packets", 1), Some(0), "a missing field is zero");
        assert_eq!(p.count("HubName"), 1);
        let empty = json_to_pack(&json!({"SessionList": [], "N_u32": 0}));
        assert_eq!(empty.len(), 1, "an empty list has no elements");
    }
}
