//! The server "SMS trace" trailer: `$$<COMPONENT><MM-DD-YYYY HH:MM:SS.mmm+BIAS><thread=N (0xN)>`.
//!
//! The message is everything before the last `$$<` of the line. The bias is the Windows time
//! zone bias in minutes, so UTC = local + bias (`+480` is Pacific standard time).
//!
//! The SMS 2.0 form, `$$<COMP><Fri Sep 03 12:23:46.229 1999 Central Daylight Time><thread=...>`,
//! is read too; its time zone name gives the bias for the zones in [`zone_bias`] (others are
//! read as UTC).

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use nom::branch::alt;
use nom::bytes::complete::{tag, take_till, take_until, take_while_m_n};
use nom::character::complete::{char, digit1, hex_digit1, one_of, space0};
use nom::combinator::{all_consuming, map_res, opt};
use nom::sequence::delimited;
use nom::{IResult, Parser};

use crate::datetime::{cached_date, month_number, parse_clock, MAX_BIAS_MINUTES};

mod memo;

pub(super) use memo::TrailerMemo;

/// What the trailer of a server-format record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer<'a> {
    pub component: &'a str,
    /// Record time converted to UTC with the line's own bias.
    pub time: DateTime<Utc>,
    /// The bias in minutes as written (UTC = local + bias).
    pub bias_minutes: i32,
    pub thread: u32,
}

/// Splits a line into its message (trailing spaces removed) and parsed trailer, or `None` when
/// the line has no valid trailer.
#[inline]
pub fn split_record(line: &str) -> Option<(&str, Trailer<'_>)> {
    split_record_at(line, last_marker(line.as_bytes())?)
}

/// [`split_record`] when the caller already knows where the last `$$<` is (framing found it).
#[inline(always)]
pub fn split_record_at(line: &str, at: usize) -> Option<(&str, Trailer<'_>)> {
    let (message, trailer) = (line.get(..at)?, line.get(at..)?.strip_prefix("$$<")?);
    let trailer = parse_trailer(trailer).ok()?;
    Some((message.trim_end_matches(' '), trailer))
}

/// [`split_record_at`] for the layout every current server writes, `None` for anything else
/// (which [`split_record`] reads). A separate path, so that its result is not merged with the
/// general parser's through memory.
#[inline(always)]
pub(super) fn split_usual_record_at<'a>(
    line: &'a str,
    at: usize,
    memo: &mut TrailerMemo<'a>,
) -> Option<(&'a str, Trailer<'a>)> {
    let (message, trailer) = (line.get(..at)?, line.get(at..)?.strip_prefix("$$<")?);
    // Spaces are single bytes: trimmed without decoding characters backwards.
    let kept = message.as_bytes().iter().rposition(|&c| c != b' ').map_or(0, |i| i + 1);
    Some((&message[..kept], memo.read(trailer)?))
}

/// Offset of the last `$$<`, scanning back from the end (the trailer is at the end). Searching
/// for `$`, which is rare in messages and absent from trailers, finds it in one step where `<`
/// would take three (thread, time, component).
#[inline]
pub(super) fn last_marker(b: &[u8]) -> Option<usize> {
    let mut end = b.len();
    loop {
        let i = memchr::memrchr(b'$', &b[..end])?;
        if i >= 1 && b[i - 1] == b'$' && b.get(i + 1) == Some(&b'<') {
            return Some(i - 1);
        }
        end = i;
    }
}

/// Parses the trailer after `$$<`: `COMPONENT><MM-DD-YYYY HH:MM:SS.mmm+BIAS><thread=N (0xN)>`.
/// The layout every current server writes is read by a straight-line fast path; anything else
/// (one-digit months, SMS 2.0 dates, odd spacing) by the nom grammar below it.
#[inline(always)]
pub fn parse_trailer(input: &str) -> Result<Trailer<'_>, nom::Err<nom::error::Error<&str>>> {
    if let Some(trailer) = fast_trailer(input) {
        return Ok(trailer);
    }
    parse_trailer_general(input)
}

#[inline(always)]
fn fast_trailer(input: &str) -> Option<Trailer<'_>> {
    fast_trailer_on(input).map(|(trailer, _)| trailer)
}

/// [`fast_trailer`], with the local calendar date the line states.
#[inline(always)]
fn fast_trailer_on(input: &str) -> Option<(Trailer<'_>, NaiveDate)> {
    let b = input.as_bytes();
    let close = super::text::find_byte(b, b'>')?;
    let rest = b.get(close..)?.strip_prefix(b"><")?;
    let (rest, time, bias, local_date) = fixed_utc(rest)?;
    let rest = rest.strip_prefix(b"><thread=")?.trim_ascii_end().strip_suffix(b">")?;
    let (thread, digits) = decimal(rest)?;
    let tail = &rest[digits..];
    if !(tail.is_empty() || tail.starts_with(b" (0x") && tail.ends_with(b")")) {
        return None;
    }
    Some((Trailer { component: &input[..close], time, bias_minutes: bias, thread }, local_date))
}

/// A decimal `u32` at the start of `b` (1 to 10 digits, no overflow) and its length.
#[inline(always)]
fn decimal(b: &[u8]) -> Option<(u32, usize)> {
    // One pass; 11 digits are enough to tell "too many" (a u64 holds them without overflow).
    let (mut value, mut digits) = (0u64, 0);
    while let Some(d) = b.get(digits).filter(|_| digits <= 10).and_then(|&c| digit(c)) {
        value = value * 10 + u64::from(d);
        digits += 1;
    }
    if digits == 0 || digits > 10 {
        return None;
    }
    Some((u32::try_from(value).ok()?, digits))
}

/// `MM-DD-YYYY HH:MM:SS.mmm±BIAS` straight to UTC: digits read in place, the calendar date
/// looked up once per day of log (consecutive records share it), the bias applied as seconds.
#[inline(always)]
fn fixed_utc(b: &[u8]) -> Option<(&[u8], DateTime<Utc>, i32, NaiveDate)> {
    if b.len() < 25 {
        return None;
    }
    let [month, day, year, hour, minute, second, millis] = date_and_clock(b)?;
    let negative = match b[23] {
        b'+' => false,
        b'-' => true,
        _ => return None,
    };
    let (magnitude, digits) = decimal(&b[24..])?;
    if digits > 4 || magnitude > MAX_BIAS_MINUTES as u32 {
        return None;
    }
    let bias = if negative { -(magnitude as i32) } else { magnitude as i32 };
    let local_date = cached_date(year, month, day)?;
    let time = utc_of(local_date, [hour, minute, second, millis], bias)?;
    Some((&b[24 + digits..], time, bias, local_date))
}

/// `HH:MM:SS.mmm` on local date `date`, with the line's bias, in UTC.
#[inline(always)]
fn clock_utc(clock: &[u8], date: NaiveDate, bias: i32) -> Option<DateTime<Utc>> {
    let word = u64::from_le_bytes(<[u8; 8]>::try_from(clock.get(..8)?).unwrap_or_default());
    // `HH:MM:SS` has the layout of `MM-DD-YY` in `date_and_clock`.
    if word & PAIRS_SEPARATORS != (u64::from(b':') | u64::from(b':') << 24) << 16
        || clock.get(8) != Some(&b'.')
    {
        return None;
    }
    let v = digits(word, PAIRS_DIGITS)?;
    let at = |k: u32| ((v >> (8 * k)) & 0xFF) as u32;
    let millis = digit(*clock.get(9)?)? * 100 + digit(*clock.get(10)?)? * 10 + digit(*clock.get(11)?)?;
    utc_of(date, [at(0) * 10 + at(1), at(3) * 10 + at(4), at(6) * 10 + at(7), millis], bias)
}

/// Local `date` and `[hour, minute, second, millis]` with the bias, in UTC; `None` when the
/// clock is out of range.
#[inline(always)]
fn utc_of(date: NaiveDate, [hour, minute, second, millis]: [u32; 4], bias: i32) -> Option<DateTime<Utc>> {
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    // A leap second (`:60`) is chrono's second 59 with a nanosecond count past 1e9.
    let (second, leap_nanos) = if second == 60 { (59, 1_000_000_000) } else { (second, 0) };
    let secs = i64::from(hour * 3600 + minute * 60 + second) + i64::from(bias) * 60;
    // At most a day either way (|bias| <= a day): compares, not a division.
    let (shift, secs) = match secs {
        ..0 => (-1, secs + 86_400),
        86_400.. => (1, secs - 86_400),
        _ => (0, secs),
    };
    let date = if shift == 0 { date } else { date.checked_add_signed(Duration::days(shift))? };
    let secs = u32::try_from(secs).ok()?;
    let time = NaiveTime::from_num_seconds_from_midnight_opt(secs, millis * 1_000_000 + leap_nanos)?;
    Some(date.and_time(time).and_utc())
}

/// Digits and separators of `MM-DD-YY`, `YY HH:MM` and `HH:MM:SS` read as a little-endian word
/// (byte k is bits 8k..8k+8): digits at 0, 1, 3, 4, 6, 7, separators at 2 and 5.
const PAIRS_DIGITS: u64 = 0xFFFF_00FF_FF00_FFFF;
const PAIRS_SEPARATORS: u64 = 0x0000_FF00_00FF_0000;

/// `MM-DD-YYYY HH:MM:SS.mmm` at the start of `b` (at least 24 bytes) as month, day, year, hour,
/// minute, second and milliseconds, read a word at a time: three 8-byte words, each checked for
/// its separators and its digits with a few masks instead of a branch per byte.
#[inline(always)]
fn date_and_clock(b: &[u8]) -> Option<[u32; 7]> {
    let word = |i: usize| u64::from_le_bytes(<[u8; 8]>::try_from(&b[i..i + 8]).unwrap_or_default());
    let (w0, w1, w2) = (word(0), word(8), word(16));
    // Byte k of a word is bits 8k..8k+8. `MM-DD-YY` and `YY HH:MM` share a layout: digits at
    // 0, 1, 3, 4, 6, 7, separators at 2 and 5. `:SS.mmm` has `:` at 0, `.` at 3, digits at 1, 2,
    // 4, 5, 6 (byte 7 is the bias sign, read by the caller).
    const CLOCK_DIGITS: u64 = 0x00FF_FFFF_00FF_FF00;
    const CLOCK_SEPARATORS: u64 = 0x0000_0000_FF00_00FF;
    let separators = |first: u8, second: u8, shift: u32| u64::from(first) | u64::from(second) << shift;
    if w0 & PAIRS_SEPARATORS != separators(b'-', b'-', 24) << 16
        || w1 & PAIRS_SEPARATORS != separators(b' ', b':', 24) << 16
        || w2 & CLOCK_SEPARATORS != separators(b':', b'.', 24)
    {
        return None;
    }
    let (v0, v1, v2) = (digits(w0, PAIRS_DIGITS)?, digits(w1, PAIRS_DIGITS)?, digits(w2, CLOCK_DIGITS)?);
    let at = |v: u64, k: u32| ((v >> (8 * k)) & 0xFF) as u32;
    let two = |v: u64, k: u32| at(v, k) * 10 + at(v, k + 1);
    let year = two(v0, 6) * 100 + two(v1, 0);
    let millis = at(v2, 4) * 100 + at(v2, 5) * 10 + at(v2, 6);
    Some([two(v0, 0), two(v0, 3), year, two(v1, 3), two(v1, 6), two(v2, 1), millis])
}

/// The bytes of `word` under `mask` (whole bytes) minus `'0'`, if every one of them is an ASCII
/// digit; the other bytes are zero.
#[inline(always)]
fn digits(word: u64, mask: u64) -> Option<u64> {
    let kept = word & mask;
    let (high, zero, six) =
        (mask & 0x8080_8080_8080_8080, mask & 0x3030_3030_3030_3030, mask & 0x4646_4646_4646_4646);
    // At least '0': with the high bit forced on, subtracting '0' never borrows from the next
    // byte and leaves the high bit on exactly when the byte is at least 0x30 (ignoring bit 7).
    let at_least_zero = ((kept | high) - zero) & high == high;
    // At most '9', and below 0x80: adding 0x46 sets the high bit from 0x3A up (a carry out of a
    // byte, even out of the word, only ever happens above 0x80, which fails anyway).
    let at_most_nine = (kept.wrapping_add(six) | kept) & high == 0;
    (at_least_zero && at_most_nine).then(|| kept - zero)
}

#[inline(always)]
fn digit(c: u8) -> Option<u32> {
    let x = c.wrapping_sub(b'0');
    (x < 10).then_some(u32::from(x))
}

#[cold]
#[inline(never)]
fn parse_trailer_general(input: &str) -> Result<Trailer<'_>, nom::Err<nom::error::Error<&str>>> {
    let (_, (component, _, (local, bias), _, thread)) = all_consuming((
        take_till(|c| c == '>'),
        tag("><"),
        alt(((local_time, bias), sms2_time)),
        tag("><thread="),
        thread,
    ))
    .parse(input.trim_end())?;
    let time = local
        .checked_add_signed(Duration::minutes(i64::from(bias)))
        .filter(|_| bias.abs() <= MAX_BIAS_MINUTES)
        .ok_or(nom::Err::Error(nom::error::Error::new(input, nom::error::ErrorKind::Verify)))?
        .and_utc();
    Ok(Trailer { component, time, bias_minutes: bias, thread })
}

/// `Fri Sep 03 12:23:46.229 1999 Central Daylight Time` (SMS 2.0).
fn sms2_time(i: &str) -> IResult<&str, (NaiveDateTime, i32)> {
    let (rest, text) = take_until(">").parse(i)?;
    let fail = || nom::Err::Error(nom::error::Error::new(i, nom::error::ErrorKind::Verify));
    // Runs of spaces happen (a space-padded day: `Sep  3`).
    let mut parts = text.split_ascii_whitespace();
    let (Some(_day), Some(month), Some(day), Some(time), Some(year)) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(fail());
    };
    let zone = text[year.as_ptr() as usize - text.as_ptr() as usize + year.len()..].trim();
    let month = month_number(month).ok_or_else(fail)?;
    let date =
        NaiveDate::from_ymd_opt(year.parse().map_err(|_| fail())?, month, day.parse().map_err(|_| fail())?)
            .ok_or_else(fail)?;
    let time = parse_clock(time).ok_or_else(fail)?;
    Ok((rest, (date.and_time(time), zone_bias(zone))))
}

/// Windows bias (minutes, UTC = local + bias) of the zone names SMS 2.0 wrote.
pub fn zone_bias(name: &str) -> i32 {
    match name {
        "Pacific Standard Time" => 480,
        "Pacific Daylight Time" | "Mountain Standard Time" => 420,
        "Mountain Daylight Time" | "Central Standard Time" => 360,
        "Central Daylight Time" | "Eastern Standard Time" => 300,
        "Eastern Daylight Time" | "Atlantic Standard Time" => 240,
        "W. Europe Standard Time"
        | "Romance Standard Time"
        | "Central Europe Standard Time"
        | "GMT Daylight Time" => -60,
        "W. Europe Daylight Time" | "Romance Daylight Time" | "Central Europe Daylight Time" => -120,
        "India Standard Time" => -330,
        "Tokyo Standard Time" => -540,
        _ => 0,
    }
}

fn number<T: std::str::FromStr>(digits: usize) -> impl Fn(&str) -> IResult<&str, T> {
    move |i| map_res(take_while_m_n(digits, digits, |c: char| c.is_ascii_digit()), str::parse).parse(i)
}

/// `MM-DD-YYYY HH:MM:SS.fff` (1 to 7 fractional digits; months and days zero-padded on disk, but
/// one digit is accepted).
fn local_time(i: &str) -> IResult<&str, NaiveDateTime> {
    let one_or_two = || map_res(take_while_m_n(1, 2, |c: char| c.is_ascii_digit()), str::parse::<u32>);
    let (i, (month, _, day, _, year, _)) =
        (one_or_two(), char('-'), one_or_two(), char('-'), number::<i32>(4), char(' ')).parse(i)?;
    let (i, (hour, _, minute, _, second, _, fraction)) = (
        number::<u32>(2),
        char(':'),
        number::<u32>(2),
        char(':'),
        number::<u32>(2),
        char('.'),
        take_while_m_n(1, 7, |c: char| c.is_ascii_digit()),
    )
        .parse(i)?;
    let nanos = fraction_to_nanos(fraction);
    let date = NaiveDate::from_ymd_opt(year, month, day);
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos);
    match (date, time) {
        (Some(d), Some(t)) => Ok((i, d.and_time(t))),
        _ => Err(nom::Err::Error(nom::error::Error::new(i, nom::error::ErrorKind::Verify))),
    }
}

fn fraction_to_nanos(digits: &str) -> u32 {
    let mut nanos: u32 = 0;
    for (k, b) in digits.bytes().enumerate() {
        nanos += u32::from(b - b'0') * 10u32.pow(8 - k as u32);
    }
    nanos
}

/// `+480`, `-60`, `+0`.
fn bias(i: &str) -> IResult<&str, i32> {
    let (i, (sign, minutes)) = (one_of("+-"), map_res(digit1, str::parse::<i32>)).parse(i)?;
    Ok((i, if sign == '-' { -minutes } else { minutes }))
}

/// `9640 (0x25A8)>`; the hex part is optional, and is trusted only when the decimal is absent.
fn thread(i: &str) -> IResult<&str, u32> {
    let (i, decimal) = opt(map_res(digit1, str::parse::<u32>)).parse(i)?;
    let (i, _) = space0(i)?;
    let (i, hex) = opt(delimited(tag("(0x"), map_res(hex_digit1, |h| u32::from_str_radix(h, 16)), char(')')))
        .parse(i)?;
    let (i, _) = char('>')(i)?;
    match decimal.or(hex) {
        Some(t) => Ok((i, t)),
        None => Err(nom::Err::Error(nom::error::Error::new(i, nom::error::ErrorKind::Digit))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn message_is_everything_before_the_last_marker() {
        let line = "Price is $$<5> today $$<SMS_WSUS_SYNC_MANAGER><01-16-2014 10:53:52.608+480><thread=3404 (0xD4C)>";
        let (message, trailer) = split_record(line).unwrap();
        assert_eq!(message, "Price is $$<5> today");
        assert_eq!(trailer.component, "SMS_WSUS_SYNC_MANAGER");
        assert_eq!(trailer.thread, 3404);
        assert_eq!(trailer.time, utc("2014-01-16T18:53:52.608Z"));
    }

    #[test]
    fn bias_sign_is_the_opposite_of_iso_8601() {
        // The real record in log-formats.md: local 16:39:05.707 with +240 is 20:39:05.707 UTC.
        let t = parse_trailer("SMS_WSUS_SYNC_MANAGER><08-02-2024 16:39:05.707+240><thread=9640 (0x25A8)>")
            .unwrap();
        assert_eq!(t.time, utc("2024-08-02T20:39:05.707Z"));
        let cet = parse_trailer("X><03-01-2024 10:00:00.000-60><thread=1 (0x1)>").unwrap();
        assert_eq!(cet.time, utc("2024-03-01T09:00:00Z"));
        let india = parse_trailer("X><03-01-2024 10:00:00.000-330><thread=1 (0x1)>").unwrap();
        assert_eq!(india.time, utc("2024-03-01T04:30:00Z"));
    }

    #[test]
    fn local_time_may_step_back_at_dst_while_utc_advances() {
        // US Eastern, first Sunday of November: 01:59 EDT (+240), then 01:00 EST (+300).
        let before = parse_trailer("X><11-03-2024 01:59:59.000+240><thread=1 (0x1)>").unwrap();
        let after = parse_trailer("X><11-03-2024 01:00:01.000+300><thread=1 (0x1)>").unwrap();
        assert!(after.time > before.time);
        assert_eq!((after.time - before.time).num_seconds(), 2);
    }

    #[test]
    fn the_bias_can_move_the_record_to_another_day_and_year() {
        let t = |s: &str| parse_trailer(&format!("X><{s}><thread=1 (0x1)>")).unwrap().time;
        assert_eq!(t("12-31-2024 22:30:00.250+240"), utc("2025-01-01T02:30:00.250Z"));
        assert_eq!(t("01-01-2025 01:00:00.000-330"), utc("2024-12-31T19:30:00Z"));
        assert_eq!(t("02-29-2024 23:59:59.999+1"), utc("2024-03-01T00:00:59.999Z"));
        assert!(parse_trailer("X><02-30-2024 10:00:00.000+0><thread=1 (0x1)>").is_err());
        // The date cache must not leak one day into the next record.
        assert_eq!(t("03-01-2024 10:00:00.000+0"), utc("2024-03-01T10:00:00Z"));
        assert_eq!(t("03-02-2024 10:00:00.000+0"), utc("2024-03-02T10:00:00Z"));
    }

    #[test]
    fn dates_and_clocks_are_read_a_word_at_a_time_exactly() {
        let good = *b"08-02-2024 16:39:05.707+";
        assert_eq!(date_and_clock(&good), Some([8, 2, 2024, 16, 39, 5, 707]));
        assert_eq!(date_and_clock(b"00-00-0000 00:00:00.000-"), Some([0; 7]));
        assert_eq!(date_and_clock(b"99-99-9999 99:99:99.999+"), Some([99, 99, 9999, 99, 99, 99, 999]));
        // Every byte of every position, against a byte-by-byte reading.
        let by_bytes = |b: &[u8]| -> Option<[u32; 7]> {
            let layout = b"00-00-0000 00:00:00.000";
            for (k, &expected) in layout.iter().enumerate() {
                let ok = if expected == b'0' { b[k].is_ascii_digit() } else { b[k] == expected };
                if !ok {
                    return None;
                }
            }
            let n = |from: usize, len: usize| {
                b[from..from + len].iter().fold(0, |v, &d| v * 10 + u32::from(d - b'0'))
            };
            Some([n(0, 2), n(3, 2), n(6, 4), n(11, 2), n(14, 2), n(17, 2), n(20, 3)])
        };
        for k in 0..good.len() - 1 {
            for byte in 0..=255u8 {
                let mut b = good;
                b[k] = byte;
                assert_eq!(date_and_clock(&b), by_bytes(&b), "byte {k} = {byte:#x}");
            }
        }
    }

    #[test]
    fn thread_forms() {
        let t = |s: &str| {
            parse_trailer(&format!("X><01-01-2024 00:00:00.000+0><thread={s}>")).map(|t| t.thread).ok()
        };
        assert_eq!(t("4008 (0xFA8)"), Some(4008));
        assert_eq!(t("4008"), Some(4008));
        assert_eq!(t("(0xfa8)"), Some(4008));
        assert_eq!(t(""), None);
    }

    #[test]
    fn sms_2_0_trailer() {
        let t = parse_trailer(
            "SMS_HIERARCHY_MANAGER><Fri Sep 03 12:23:46.229 1999 Central Daylight Time><thread=250 (0xFA)>",
        )
        .unwrap();
        assert_eq!(t.time, utc("1999-09-03T17:23:46.229Z"));
        assert_eq!((t.component, t.thread, t.bias_minutes), ("SMS_HIERARCHY_MANAGER", 250, 300));
    }

    #[test]
    fn no_panic_and_no_nonsense_at_the_edges() {
        assert!(parse_trailer("X><Fri Dec 31 23:00:00.000 262142 Pacific Standard Time><thread=1 (0x1)>")
            .is_err());
        assert!(parse_trailer("X><12-31-2024 10:00:00.000+2000000000><thread=1 (0x1)>").is_err());
        let padded =
            parse_trailer("X><Fri Sep  3 12:23:46.229 1999 Central Daylight Time><thread=250 (0xFA)>")
                .unwrap();
        assert_eq!(padded.time, utc("1999-09-03T17:23:46.229Z"));
        let leap = parse_trailer("X><12-31-2016 23:59:60.500+0><thread=1 (0x1)>").unwrap();
        assert!(leap.time > utc("2016-12-31T23:59:59.900Z") && leap.time < utc("2017-01-01T00:00:00Z"));
        // After a valid date, an invalid one is not read as the cached one.
        assert!(parse_trailer("X><01-01-2024 10:00:00.000+0><thread=1 (0x1)>").is_ok());
        assert!(parse_trailer("X><01-33-2024 10:00:00.000+0><thread=1 (0x1)>").is_err());
    }

    #[test]
    fn rejects_broken_trailers() {
        for bad in [
            "X><13-01-2024 00:00:00.000+0><thread=1 (0x1)>",
            "X><01-01-2024 00:00:00+0><thread=1 (0x1)>",
            "X><01-01-2024 00:00:00.000><thread=1 (0x1)>",
            "X><01-01-2024 00:00:00.000+0><thread=1 (0x1)> trailing",
            "X01-01-2024",
        ] {
            assert!(parse_trailer(bad).is_err(), "{bad}");
        }
    }
}
