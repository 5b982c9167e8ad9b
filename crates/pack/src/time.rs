//! Time as SoftEther writes it: broken-down UTC dates, and the int64 date-times of PACKs.
//!
//! SoftEther's `SystemTime64` counts milliseconds from 1970-01-01T09:00:00Z (its
//! `SystemToUINT64` subtracts nine hours, Japan's offset, from the Unix time), and 0 means
//! "never". [`to_time64`] and [`from_time64`] convert.

/// Nine hours in milliseconds: the offset of SoftEther's int64 date-times.
pub const TIME64_OFFSET_MS: u64 = 9 * 3600 * 1000;

/// SoftEther's int64 date-time of Unix milliseconds (0 stays 0, "never"; a time before
/// SoftEther's epoch is 0 too).
pub fn to_time64(unix_ms: u64) -> u64 {
    unix_ms.saturating_sub(TIME64_OFFSET_MS)
}

/// Unix milliseconds of SoftEther's int64 date-time (0 stays 0).
pub fn from_time64(t: u64) -> u64 {
    if t == 0 {
        0
    } else {
        t.saturating_add(TIME64_OFFSET_MS)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time64_is_nine_hours_behind_unix_time() {
        // 2026-11-24T21:01:40.123Z
        let unix = 1_795_554_100_123;
        assert_eq!(to_time64(unix), unix - 32_400_000);
        assert_eq!(from_time64(to_time64(unix)), unix);
        assert_eq!(to_time64(0), 0);
        assert_eq!(from_time64(0), 0);
        let t = DateTime::from_unix_ms(unix);
        assert_eq!(
            (t.year, t.month, t.day, t.hour, t.minute, t.second, t.millis),
            (2026, 11, 24, 21, 1, 40, 123)
        );
        assert_eq!(t.weekday_name(), "Tue");
        assert_eq!(t.to_unix_ms(), unix);
    }
}
