//! Low-level readers of dates and clocks shared by every format: clocks with a fraction, month
//! names in the languages ConfigMgr servers run in, a one-entry cache of calendar dates and the
//! largest plausible time-zone bias.
//! They depend on nothing else in the parser, so the format modules (server trailer, STATMSG,
//! CMTrace, WSUS) use them without using each other.

use chrono::{NaiveDate, NaiveTime};

/// Largest plausible time-zone bias in minutes: time zones span UTC-12 to UTC+14.
pub(crate) const MAX_BIAS_MINUTES: i32 = 24 * 60;

/// Month abbreviations as servers running in English write them.
pub(crate) const ENGLISH_MONTHS: [&str; 12] =
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// `HH:MM:SS.fff` (1 to 9 fractional digits, or none).
pub(crate) fn parse_clock(s: &str) -> Option<NaiveTime> {
    let b = s.as_bytes();
    if b.len() < 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    let two = |i: usize| -> Option<u32> {
        let (x, y) = (b[i].wrapping_sub(b'0'), b[i + 1].wrapping_sub(b'0'));
        (x < 10 && y < 10).then(|| u32::from(x) * 10 + u32::from(y))
    };
    let mut nanos = 0u32;
    if b.len() > 8 {
        let fraction = s.get(8..)?.strip_prefix('.')?;
        if fraction.is_empty() || fraction.len() > 9 || !fraction.bytes().all(|d| d.is_ascii_digit()) {
            return None;
        }
        for (k, d) in fraction.bytes().enumerate() {
            nanos += u32::from(d - b'0') * 10u32.pow(8 - k as u32);
        }
    }
    match two(6)? {
        60 => NaiveTime::from_hms_nano_opt(two(0)?, two(3)?, 59, 1_000_000_000 + nanos),
        second => NaiveTime::from_hms_nano_opt(two(0)?, two(3)?, second, nanos),
    }
}

/// Month abbreviations in the languages ConfigMgr servers run in, without allocating.
pub(crate) fn month_number(name: &str) -> Option<u32> {
    const NAMES: [&[&str]; 12] = [
        &["jan", "jän", "janv", "ene", "gen"],
        &["feb", "fév", "fev", "févr"],
        &["mar", "mär", "mrz", "mars"],
        &["apr", "avr", "abr"],
        &["may", "mai", "mei", "mag"],
        &["jun", "juin", "giu"],
        &["jul", "juil", "lug"],
        &["aug", "aoû", "aou", "ago"],
        &["sep", "set", "sept"],
        &["oct", "okt", "ott", "out"],
        &["nov"],
        &["dec", "dez", "déc", "dic"],
    ];
    if let Some(i) = ENGLISH_MONTHS.iter().position(|m| *m == name) {
        return Some(i as u32 + 1);
    }
    let name = name.trim_end_matches('.');
    let same = |known: &str| {
        known.len() == name.len()
            && known.chars().zip(name.chars()).all(|(k, n)| n.to_lowercase().eq(std::iter::once(k)))
    };
    NAMES.iter().position(|names| names.iter().any(|k| same(k))).map(|i| i as u32 + 1)
}

/// `NaiveDate::from_ymd_opt`, remembered for the last date seen on this thread.
#[inline]
pub(crate) fn cached_date(year: u32, month: u32, day: u32) -> Option<NaiveDate> {
    thread_local! {
        static LAST: std::cell::Cell<(u32, Option<NaiveDate>)> = const { std::cell::Cell::new((0, None)) };
    }
    // Distinct for every (year, month, day) the caller can pass (two-digit fields, four-digit year).
    let key = year * 10_000 + month * 100 + day;
    LAST.with(|last| {
        let (k, date) = last.get();
        if k == key && date.is_some() {
            return date;
        }
        let date = NaiveDate::from_ymd_opt(year as i32, month, day);
        last.set((key, date));
        date
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_and_months() {
        assert_eq!(parse_clock("20:54:26.571"), NaiveTime::from_hms_milli_opt(20, 54, 26, 571));
        assert_eq!(parse_clock("20:54:26"), NaiveTime::from_hms_opt(20, 54, 26));
        assert_eq!(parse_clock("20:54:26."), None);
        assert_eq!(parse_clock("2:54:26.1"), None);
        assert_eq!(month_number("MÄR"), Some(3));
        assert_eq!(month_number("Dez."), Some(12));
        assert_eq!(month_number("Xyz"), None);
    }
}
