//! Encodings shared by the server side (`dispatch`) and the client side (`etherhub cmd`):
//! SoftEther's `_dt` date-time strings, IPv4 addresses packed in a `_u32`, and typed access
//! to JSON-RPC parameters with errors that name the field.

use std::net::{IpAddr, Ipv4Addr};

use serde_json::{Map, Value};

use crate::error::AdminError;

/// Days since 1970-01-01 for a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day) for a count of days since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A broken-down UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millis: u32,
    /// 0 = Sunday.
    pub weekday: u32,
}

impl DateTime {
    /// Break down milliseconds since the Unix epoch.
    pub fn from_unix_ms(ms: u64) -> Self {
        let secs = ms / 1000;
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        let (year, month, day) = civil_from_days(days);
        Self {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: ((rem % 3600) / 60) as u32,
            second: (rem % 60) as u32,
            millis: (ms % 1000) as u32,
            weekday: ((days + 4).rem_euclid(7)) as u32,
        }
    }

    /// Milliseconds since the Unix epoch (0 for dates before it).
    pub fn to_unix_ms(&self) -> u64 {
        let days = days_from_civil(self.year, self.month, self.day);
        let secs = days * 86_400 + i64::from(self.hour * 3600 + self.minute * 60 + self.second);
        if secs < 0 {
            return 0;
        }
        secs as u64 * 1000 + u64::from(self.millis)
    }

    /// English three-letter weekday name, as vpncmd prints it.
    pub fn weekday_name(&self) -> &'static str {
        ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"][self.weekday as usize % 7]
    }
}

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

/// Typed, field-naming access to a JSON-RPC `params` object.
pub struct Params<'a> {
    map: Option<&'a Map<String, Value>>,
}

impl<'a> Params<'a> {
    /// Wrap a params value; anything but an object reads as empty.
    pub fn new(v: &'a Value) -> Self {
        Self { map: v.as_object() }
    }

    fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.and_then(|m| m.get(name)).filter(|v| !v.is_null())
    }

    /// A required non-empty string.
    pub fn str(&self, name: &str) -> Result<String, AdminError> {
        match self.opt_str(name)? {
            Some(s) if !s.is_empty() => Ok(s),
            Some(_) => Err(AdminError::invalid_param(name, "must not be empty")),
            None => Err(AdminError::invalid_param(name, "missing")),
        }
    }

    /// An optional string (numbers and booleans are accepted as SoftEther does).
    pub fn opt_str(&self, name: &str) -> Result<Option<String>, AdminError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(AdminError::invalid_param(name, "expected a string")),
        }
    }

    /// An optional unsigned 32-bit number (a decimal string is accepted too).
    pub fn opt_u32(&self, name: &str) -> Result<Option<u32>, AdminError> {
        let bad = || AdminError::invalid_param(name, "expected an unsigned 32-bit number");
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .map(Some)
                .ok_or_else(bad),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| bad()),
            Some(Value::Bool(b)) => Ok(Some(u32::from(*b))),
            Some(_) => Err(bad()),
        }
    }

    /// A required unsigned 32-bit number.
    pub fn u32(&self, name: &str) -> Result<u32, AdminError> {
        self.opt_u32(name)?
            .ok_or_else(|| AdminError::invalid_param(name, "missing"))
    }

    /// A required TCP/UDP port number (1..=65535).
    pub fn port(&self, name: &str) -> Result<u16, AdminError> {
        let v = self.u32(name)?;
        u16::try_from(v)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| AdminError::invalid_param(name, "port must be 1..65535"))
    }

    /// An optional unsigned 64-bit number.
    pub fn opt_u64(&self, name: &str) -> Result<Option<u64>, AdminError> {
        let bad = || AdminError::invalid_param(name, "expected an unsigned 64-bit number");
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(bad),
            Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| bad()),
            Some(_) => Err(bad()),
        }
    }

    /// An optional boolean (numbers and "true"/"false"/"yes"/"no" are accepted).
    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, AdminError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::Number(n)) => Ok(Some(n.as_f64().unwrap_or(0.0) != 0.0)),
            Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => Ok(Some(true)),
                "false" | "no" | "0" | "" => Ok(Some(false)),
                _ => Err(AdminError::invalid_param(name, "expected a boolean")),
            },
            Some(_) => Err(AdminError::invalid_param(name, "expected a boolean")),
        }
    }

    /// An optional IPv4 address in dotted form (`_ip` fields).
    pub fn opt_ipv4(&self, name: &str) -> Result<Option<Ipv4Addr>, AdminError> {
        match self.opt_str(name)? {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(Some(Ipv4Addr::UNSPECIFIED)),
            Some(s) => match s.parse::<IpAddr>() {
                Ok(IpAddr::V4(v4)) => Ok(Some(v4)),
                _ => Err(AdminError::invalid_param(name, "expected an IPv4 address")),
            },
        }
    }

    /// An optional `_dt` time in Unix milliseconds.
    pub fn opt_dt(&self, name: &str) -> Result<Option<u64>, AdminError> {
        match self.opt_str(name)? {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(Some(0)),
            Some(s) => parse_dt(&s).map(Some).ok_or_else(|| {
                AdminError::invalid_param(name, "expected a date-time like 2024-08-01T12:24:36.123")
            }),
        }
    }

    /// An optional `_bin` value (base64).
    pub fn opt_bin(&self, name: &str) -> Result<Option<Vec<u8>>, AdminError> {
        use base64::Engine as _;
        match self.opt_str(name)? {
            None => Ok(None),
            Some(s) => base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .map(Some)
                .map_err(|_| AdminError::invalid_param(name, "expected base64")),
        }
    }

    /// An array field: either a JSON array or, leniently, a single value. Missing = empty.
    pub fn array(&self, name: &str) -> Vec<&'a Value> {
        match self.get(name) {
            None => Vec::new(),
            Some(Value::Array(a)) => a.iter().collect(),
            Some(v) => vec![v],
        }
    }
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
    fn ip_u32_matches_softether_layout() {
        let ip = Ipv4Addr::new(192, 168, 30, 1);
        assert_eq!(ipv4_to_u32(ip), 0x011E_A8C0);
        assert_eq!(ipv4_from_u32(0x011E_A8C0), ip);
    }
}
