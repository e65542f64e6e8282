//! Calendar days (UTC), the unit of agreement and application periods.
//!
//! Owns parsing `YYYY-MM-DD`, today's date and adding whole years (the seed's three-year limits).
//! It must never accept a date that does not exist (`2026-02-30`) or one outside 1970–9999.

use std::fmt;
use std::str::FromStr;

/// A day, counted from 1970-01-01 (UTC).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Day(i64);

/// Days from 1970-01-01 to (y, m, d) in the proleptic Gregorian calendar (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    // In range by construction: 1 ≤ m ≤ 12, 1 ≤ d ≤ 31.
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 0,
    }
}

/// Why a date was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a date (YYYY-MM-DD, 1970–9999)")]
pub struct BadDay(pub String);

impl Day {
    /// The day (y, m, d), if it exists and lies in 1970–9999.
    pub fn from_ymd(y: i64, m: u32, d: u32) -> Option<Day> {
        if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || d == 0 {
            return None;
        }
        (d <= days_in_month(y, m)).then(|| Day(days_from_civil(y, m, d)))
    }

    /// The day with this number (days since 1970-01-01), if in range.
    pub fn from_number(n: i64) -> Option<Day> {
        let (y, _, _) = civil_from_days(n);
        (n >= 0 && y <= 9999).then_some(Day(n))
    }

    /// Days since 1970-01-01.
    pub fn number(self) -> i64 {
        self.0
    }

    /// (year, month, day).
    pub fn ymd(self) -> (i64, u32, u32) {
        civil_from_days(self.0)
    }

    /// The day of the unix time `secs` (UTC).
    pub fn of_unix(secs: i64) -> Day {
        Day(secs.div_euclid(86_400).max(0))
    }

    /// Today (UTC), from the system clock.
    pub fn today() -> Day {
        Day::of_unix(crate::now())
    }

    /// The same date `years` later; 29 February becomes 28 February in a common year. `None`
    /// past 9999.
    pub fn plus_years(self, years: u32) -> Option<Day> {
        let (y, m, d) = self.ymd();
        let y = y.checked_add(i64::from(years))?;
        let d = d.min(days_in_month(y, m));
        Day::from_ymd(y, m, d)
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

impl FromStr for Day {
    type Err = BadDay;

    fn from_str(s: &str) -> Result<Day, BadDay> {
        let bad = || BadDay(s.escape_debug().take(32).collect());
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(bad());
        }
        let num = |r: std::ops::Range<usize>| -> Option<u32> {
            let part = s.get(r)?;
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            part.parse().ok()
        };
        let (y, m, d) = (
            num(0..4).ok_or_else(bad)?,
            num(5..7).ok_or_else(bad)?,
            num(8..10).ok_or_else(bad)?,
        );
        Day::from_ymd(i64::from(y), m, d).ok_or_else(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip_and_refuse_what_does_not_exist() {
        assert_eq!("1970-01-01".parse::<Day>().unwrap().number(), 0);
        assert_eq!("2000-03-01".parse::<Day>().unwrap().number(), 11_017);
        for s in ["2024-02-29", "2026-12-03", "9999-12-31", "2100-02-28"] {
            assert_eq!(s.parse::<Day>().unwrap().to_string(), s);
        }
        for s in [
            "2026-02-29",
            "2100-02-29",
            "2026-13-01",
            "2026-00-10",
            "2026-04-31",
            "1969-12-31",
            "2026-1-01",
            "+026-01-01",
            "2026-01-0x",
            "",
            "2026-01-01T00",
        ] {
            assert!(s.parse::<Day>().is_err(), "{s}");
        }
        let leap: Day = "2024-02-29".parse().unwrap();
        assert_eq!(leap.plus_years(3).unwrap().to_string(), "2027-02-28");
        assert_eq!(leap.plus_years(4).unwrap().to_string(), "2028-02-29");
        let d: Day = "2026-12-03".parse().unwrap();
        assert_eq!(d.plus_years(3).unwrap().to_string(), "2029-12-03");
        assert!("9998-01-01".parse::<Day>().unwrap().plus_years(3).is_none());
        for n in [0, 1, 59, 60, 365, 11_016, 20_000, 2_932_896] {
            assert_eq!(Day::from_number(n).unwrap().number(), n);
            let (y, m, dd) = Day(n).ymd();
            assert_eq!(Day::from_ymd(y, m, dd), Some(Day(n)));
        }
        assert!(Day::from_number(-1).is_none());
    }
}
