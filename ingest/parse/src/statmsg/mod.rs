//! The `STATMSG:` grammar of a record's message:
//!
//! ```text
//! STATMSG: ID=6703 SEV=E LEV=M SOURCE="SMS Server" COMP="SMS_WSUS_SYNC_MANAGER" SYS=CM1 SITE=CHQ
//!   PID=2836 TID=9640 GMTDATE=Fri Aug 02 20:54:26.571 2024 ISTR0="..." ... ISTR9="..."
//!   NUMATTRS=1 AID0=419 AVAL0="..." LE=0X8013150a
//! ```
//!
//! Quotes inside quoted values are not escaped by the writer, so a quoted value ends where the
//! next key that may follow it begins (`" ISTR3="`, `" NUMATTRS=`, ...), not at the next quote.

mod canonical;

use std::borrow::Cow;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use statmsg_schema::{Attribute, ExtraKey, StatusMessage};
use thiserror::Error;

use crate::datetime::{month_number, parse_clock};

const PREFIX: &str = "STATMSG: ";

/// Why a message that starts with `STATMSG: ID=` is not a well-formed status message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StatmsgError {
    #[error("STATMSG: expected {expected} at byte {at}")]
    Expected { expected: &'static str, at: usize },
    #[error("STATMSG: {key}={value:?} is not valid")]
    Invalid { key: &'static str, value: String },
}

/// What a `STATMSG:` message is.
#[derive(Debug, Clone, PartialEq)]
// Boxing the large variant would allocate once per status message on the hot path.
#[allow(clippy::large_enum_variant)]
pub enum Parsed<'a> {
    /// The full grammar.
    Full(StatusMessage<'a>),
    /// `STATMSG: (NAME).`
    Symbolic(&'a str),
}

/// Parses a status message. `Ok(None)` when the message is not one; `record_time` stands in for
/// a missing `GMTDATE` (and places a GMTDATE whose month name is in an unknown language).
pub fn parse_statmsg(
    message: &str,
    record_time: Option<DateTime<Utc>>,
) -> Result<Option<Parsed<'_>>, StatmsgError> {
    let Some(rest) = message.strip_prefix(PREFIX) else { return Ok(None) };
    if let Some(symbol) = rest.strip_prefix('(') {
        let name = symbol.trim_end_matches([' ', '~', '.']).trim_end_matches(')');
        return Ok(Some(Parsed::Symbolic(name)));
    }
    if !rest.starts_with("ID=") {
        return Ok(None);
    }
    let body = message.trim_end_matches([' ', '~']);
    if let Some(m) = canonical::canonical(body, PREFIX.len()) {
        return Ok(Some(Parsed::Full(m)));
    }
    general(body, record_time)
}

/// The whole grammar, for `body` (a trimmed message starting with `STATMSG: `).
fn general(body: &str, record_time: Option<DateTime<Utc>>) -> Result<Option<Parsed<'_>>, StatmsgError> {
    let mut c = Cursor { text: body, pos: PREFIX.len(), extra: Vec::new() };
    let id = c.number("ID")?;
    let sev = c.token("SEV")?;
    let lev = c.token("LEV")?;
    let source = c.quoted("SOURCE", " COMP=\"", &[])?;
    let comp = c.quoted("COMP", " SYS=", &[])?;
    let sys = c.token("SYS")?;
    let site = c.token("SITE")?;
    let pid = c.number("PID")?;
    let tid = c.number("TID")?;
    let gmtdate = if c.at_optional("GMTDATE") {
        c.gmtdate(record_time)?
    } else {
        record_time
            .ok_or(StatmsgError::Expected { expected: "GMTDATE (the record has no time)", at: c.pos })?
    };

    let mut istr: [Cow<'_, str>; 10] = Default::default();
    for (k, slot) in istr.iter_mut().enumerate() {
        if !c.at_optional(ISTR_KEYS[k]) {
            continue; // missing: stays empty; a later ISTR may follow
        }
        let next = if k < 9 { ISTR_NEXT[k] } else { " NUMATTRS=" };
        // When the next ISTR is missing, any later one (or what follows the ISTRs) ends it.
        let later = if k < 8 { &ISTR_NEXT[k + 1..] } else { &[][..] };
        *slot = Cow::Borrowed(c.quoted(ISTR_KEYS[k], next, later)?);
    }

    let mut attrs = Vec::new();
    if c.at_optional("NUMATTRS") {
        let count: u32 = c.number("NUMATTRS")?;
        for k in 0..count {
            c.skip_extras();
            let id = c.indexed_number("AID", k)?;
            let value = c.indexed_quoted("AVAL", k, k + 1 == count)?;
            attrs.push(Attribute { id, value: Cow::Borrowed(value) });
        }
    }
    let le = if c.at_optional("LE") { Some(c.hex("LE")?) } else { None };
    c.skip_extras();
    if c.pos < body.len() {
        return Err(StatmsgError::Expected { expected: "a KEY=VALUE", at: c.pos });
    }
    Ok(Some(Parsed::Full(StatusMessage {
        id,
        sev: Cow::Borrowed(sev),
        lev: Cow::Borrowed(lev),
        source: Cow::Borrowed(source),
        comp: Cow::Borrowed(comp),
        sys: Cow::Borrowed(sys),
        site: Cow::Borrowed(site),
        pid,
        tid,
        gmtdate,
        istr,
        attrs,
        le,
        extra: c.extra,
    })))
}

const ISTR_KEYS: [&str; 10] =
    ["ISTR0", "ISTR1", "ISTR2", "ISTR3", "ISTR4", "ISTR5", "ISTR6", "ISTR7", "ISTR8", "ISTR9"];

/// The key that normally follows `ISTRk="...`.
const ISTR_NEXT: [&str; 9] = [
    " ISTR1=\"",
    " ISTR2=\"",
    " ISTR3=\"",
    " ISTR4=\"",
    " ISTR5=\"",
    " ISTR6=\"",
    " ISTR7=\"",
    " ISTR8=\"",
    " ISTR9=\"",
];

/// `LE=0X8013150a`: hexadecimal, with or without `0X`/`0x`.
fn last_error(value: &str) -> Option<u32> {
    let digits = value.strip_prefix("0X").or_else(|| value.strip_prefix("0x")).unwrap_or(value);
    u32::from_str_radix(digits, 16).ok()
}

/// Keys of the grammar; any other `KEY=` is kept as an extra.
fn is_known_key(key: &str) -> bool {
    matches!(
        key,
        "ID" | "SEV"
            | "LEV"
            | "SOURCE"
            | "COMP"
            | "SYS"
            | "SITE"
            | "PID"
            | "TID"
            | "GMTDATE"
            | "NUMATTRS"
            | "LE"
    ) || ["ISTR", "AID", "AVAL"]
        .iter()
        .any(|p| key.strip_prefix(p).is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())))
}

struct Cursor<'a> {
    text: &'a str,
    pos: usize,
    extra: Vec<ExtraKey<'a>>,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    #[inline]
    fn at_key(&self, key: &str) -> bool {
        let rest = self.rest().as_bytes();
        has_prefix(rest, key.as_bytes()) && rest.get(key.len()) == Some(&b'=')
    }

    /// Whether an optional key comes next (after any unknown keys, which are kept).
    fn at_optional(&mut self, key: &str) -> bool {
        if self.at_key(key) {
            return true;
        }
        self.skip_extras();
        self.at_key(key)
    }

    fn expect_key(&mut self, key: &str, expected: &'static str) -> Result<(), StatmsgError> {
        if !self.at_key(key) {
            self.skip_extras();
        }
        if !self.at_key(key) {
            return Err(StatmsgError::Expected { expected, at: self.pos });
        }
        self.pos += key.len() + 1;
        Ok(())
    }

    /// The `KEY=` at the cursor, if it is one.
    fn key_here(&self) -> Option<&'a str> {
        let rest = self.rest();
        let len =
            rest.bytes().take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_').count();
        (len > 0 && rest.as_bytes().get(len) == Some(&b'=')).then(|| &rest[..len])
    }

    /// Consumes unknown `KEY=value` / `KEY="value"` tokens into `extra`.
    fn skip_extras(&mut self) {
        while let Some(key) = self.key_here().filter(|k| !is_known_key(k)) {
            self.pos += key.len() + 1;
            let rest = self.rest();
            let value = match rest.strip_prefix('"') {
                Some(quoted) => {
                    let end =
                        next_key_after_quote(quoted).unwrap_or_else(|| quoted.trim_end_matches('"').len());
                    self.pos += 1;
                    let v = &quoted[..end];
                    self.pos += end + usize::from(quoted[end..].starts_with('"'));
                    v
                }
                None => {
                    let v = &rest[..rest.find(' ').unwrap_or(rest.len())];
                    self.pos += v.len();
                    v
                }
            };
            self.skip_spaces();
            self.extra.push(ExtraKey { key: Cow::Borrowed(key), value: Cow::Borrowed(value) });
        }
    }

    fn skip_spaces(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start_matches(' ').len();
    }

    /// An unquoted value: up to the next space.
    fn token(&mut self, key: &'static str) -> Result<&'a str, StatmsgError> {
        self.expect_key(key, key)?;
        Ok(self.unquoted_value())
    }

    fn unquoted_value(&mut self) -> &'a str {
        let rest = self.rest();
        let value = &rest[..memchr::memchr(b' ', rest.as_bytes()).unwrap_or(rest.len())];
        self.pos += value.len();
        self.skip_spaces();
        value
    }

    fn number<T: std::str::FromStr>(&mut self, key: &'static str) -> Result<T, StatmsgError> {
        let value = self.token(key)?;
        value.parse().map_err(|_| StatmsgError::Invalid { key, value: value.to_owned() })
    }

    fn hex(&mut self, key: &'static str) -> Result<u32, StatmsgError> {
        let value = self.token(key)?;
        last_error(value).ok_or_else(|| StatmsgError::Invalid { key, value: value.to_owned() })
    }

    /// Whether `PREFIXk=` is at the cursor, without formatting the key.
    fn at_indexed(&self, prefix: &str, k: u32) -> Option<usize> {
        let rest = self.rest().strip_prefix(prefix)?;
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        (rest[..digits].parse::<u32>().ok() == Some(k) && rest.as_bytes().get(digits) == Some(&b'='))
            .then_some(prefix.len() + digits + 1)
    }

    fn indexed_number(&mut self, prefix: &'static str, k: u32) -> Result<u32, StatmsgError> {
        let len =
            self.at_indexed(prefix, k).ok_or(StatmsgError::Expected { expected: "AIDk", at: self.pos })?;
        self.pos += len;
        let value = self.unquoted_value();
        value.parse().map_err(|_| StatmsgError::Invalid { key: "AIDk", value: value.to_owned() })
    }

    fn indexed_quoted(&mut self, prefix: &'static str, k: u32, last: bool) -> Result<&'a str, StatmsgError> {
        self.skip_extras();
        let len =
            self.at_indexed(prefix, k).ok_or(StatmsgError::Expected { expected: "AVALk", at: self.pos })?;
        self.pos += len;
        // The next attribute's id key, exactly; after the last one, LE or the end.
        if last {
            return self.quoted_value(" LE=", &[]);
        }
        let next = format!(" AID{}=", k + 1);
        self.quoted_value(&next, &[" LE="])
    }

    /// `KEY="value"`: the value ends at the first `"` followed by `next` (the key that normally
    /// follows), else by one of `fallback`, else at the closing quote at the end of the message.
    fn quoted(&mut self, key: &'static str, next: &str, fallback: &[&str]) -> Result<&'a str, StatmsgError> {
        self.expect_key(key, key)?;
        self.quoted_value(next, fallback)
    }

    fn quoted_value(&mut self, next: &str, fallback: &[&str]) -> Result<&'a str, StatmsgError> {
        if !self.rest().starts_with('"') {
            return Err(StatmsgError::Expected { expected: "an opening quote", at: self.pos });
        }
        self.pos += 1;
        let rest = self.rest();
        let end = find_quote_before(rest, next)
            .or_else(|| {
                fallback
                    .iter()
                    .chain(&[" NUMATTRS=", " LE="])
                    .filter_map(|n| find_quote_before(rest, n))
                    .min()
            })
            .or_else(|| rest.ends_with('"').then(|| rest.len() - 1))
            .ok_or(StatmsgError::Expected { expected: "a closing quote", at: self.pos })?;
        self.pos += end + 1;
        self.skip_spaces();
        Ok(&rest[..end])
    }

    /// `GMTDATE=Ddd Mmm DD HH:MM:SS.mmm YYYY`: five tokens, names possibly localized.
    fn gmtdate(&mut self, record_time: Option<DateTime<Utc>>) -> Result<DateTime<Utc>, StatmsgError> {
        self.expect_key("GMTDATE", "GMTDATE")?;
        let rest = self.rest();
        if let Some(time) = canonical::english_gmtdate(rest.as_bytes()) {
            self.pos += canonical::ENGLISH_GMTDATE_LEN;
            self.skip_spaces();
            return Ok(time);
        }
        let invalid = || StatmsgError::Invalid { key: "GMTDATE", value: rest.chars().take(32).collect() };
        // Runs of spaces happen (a space-padded day: `Jan  6`).
        let mut tokens = rest.split_ascii_whitespace();
        let (Some(_), Some(month), Some(day), Some(time), Some(year)) =
            (tokens.next(), tokens.next(), tokens.next(), tokens.next(), tokens.next())
        else {
            return Err(invalid());
        };
        let consumed = year.as_ptr() as usize + year.len() - rest.as_ptr() as usize;
        let day: u32 = day.parse().map_err(|_| invalid())?;
        let year: i32 = year.parse().map_err(|_| invalid())?;
        let time = parse_clock(time).ok_or_else(invalid)?;
        let date = match month_number(month) {
            Some(m) => NaiveDate::from_ymd_opt(year, m, day),
            None => record_time.and_then(|t| nearest_month(year, day, t)),
        }
        .ok_or_else(invalid)?;
        self.pos += consumed;
        self.skip_spaces();
        Ok(date.and_time(time).and_utc())
    }
}

/// Position of the `"` that immediately precedes `key` in `rest` (quotes are few: look at each).
#[inline]
fn find_quote_before(rest: &str, key: &str) -> Option<usize> {
    let bytes = rest.as_bytes();
    memchr::memchr_iter(b'"', bytes).find(|&i| has_prefix(&bytes[i + 1..], key.as_bytes()))
}

/// `starts_with` for the short keys of this grammar, compared inline (a `memcmp` call costs
/// more than the comparison).
#[inline]
fn has_prefix(hay: &[u8], prefix: &[u8]) -> bool {
    hay.len() >= prefix.len() && hay.iter().zip(prefix).all(|(a, b)| a == b)
}

/// In the text after an opening quote: the position of a `"` followed by ` KEY=`.
fn next_key_after_quote(quoted: &str) -> Option<usize> {
    let bytes = quoted.as_bytes();
    memchr::memchr_iter(b'"', bytes).find(|&i| {
        let after = &quoted[i + 1..];
        after.strip_prefix(' ').is_some_and(|a| {
            let len =
                a.bytes().take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_').count();
            len > 0 && a.as_bytes().get(len) == Some(&b'=')
        })
    })
}

/// For a month name we do not know: the month that puts the date nearest the record time
/// (GMTDATE and the record time are milliseconds apart).
fn nearest_month(year: i32, day: u32, record_time: DateTime<Utc>) -> Option<NaiveDate> {
    let anchor = record_time.date_naive();
    (1..=12)
        .filter_map(|m| NaiveDate::from_ymd_opt(year, m, day))
        .min_by_key(|d| (*d - anchor).num_days().abs())
        .filter(|d| (*d - anchor).num_days().abs() <= 1 || d.month() == anchor.month())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-08-02T20:54:26.500Z").unwrap().with_timezone(&Utc)
    }

    fn record_time() -> Option<DateTime<Utc>> {
        Some(at())
    }

    fn full(msg: &str) -> StatusMessage<'_> {
        match parse_statmsg(msg, record_time()) {
            Ok(Some(Parsed::Full(m))) => m,
            other => panic!("{other:?}"),
        }
    }

    const FAILED: &str = r#"STATMSG: ID=6703 SEV=E LEV=M SOURCE="SMS Server" COMP="SMS_WSUS_SYNC_MANAGER" SYS=CM1.contoso.com SITE=CHQ PID=2836 TID=9640 GMTDATE=Fri Aug 02 20:54:26.571 2024 ISTR0="Microsoft.UpdateServices.Administration.AdminProxy.CreateUpdateServer" ISTR1="The request failed with HTTP status 503: Service Unavailable." ISTR2="" ISTR3="" ISTR4="" ISTR5="" ISTR6="" ISTR7="" ISTR8="" ISTR9="" NUMATTRS=0 LE=0X8013150a"#;

    #[test]
    fn a_failure_with_last_error() {
        let m = full(FAILED);
        assert_eq!((m.id, &*m.sev, &*m.lev, &*m.site, m.pid, m.tid), (6703, "E", "M", "CHQ", 2836, 9640));
        assert_eq!(
            (&*m.source, &*m.comp, &*m.sys),
            ("SMS Server", "SMS_WSUS_SYNC_MANAGER", "CM1.contoso.com")
        );
        assert_eq!(m.gmtdate.to_rfc3339(), "2024-08-02T20:54:26.571+00:00");
        assert_eq!(m.istr[1], "The request failed with HTTP status 503: Service Unavailable.");
        assert!(m.istr[2..].iter().all(|s| s.is_empty()));
        assert_eq!(m.le, Some(0x8013_150a));
        assert!(m.attrs.is_empty());
    }

    #[test]
    fn unescaped_quotes_and_keys_inside_values() {
        let msg = r#"STATMSG: ID=6703 SEV=E LEV=M SOURCE="SMS Server" COMP="C" SYS=S SITE=P01 PID=1 TID=2 GMTDATE=Fri Aug 02 20:54:26.571 2024 ISTR0="say "hi" ISTR1=x" ISTR1="a\b=c, ~~ ü" ISTR2="" ISTR3="" ISTR4="" ISTR5="" ISTR6="" ISTR7="" ISTR8="" ISTR9="end"" NUMATTRS=2 AID0=409 AVAL0="P01" AID1=412 AVAL1="{x "y"}" LE=0X1"#;
        let m = full(msg);
        assert_eq!(m.istr[0], r#"say "hi" ISTR1=x"#);
        assert_eq!(m.istr[1], r"a\b=c, ~~ ü");
        assert_eq!(m.istr[9], r#"end""#);
        assert_eq!(
            m.attrs,
            vec![
                Attribute { id: 409, value: "P01".into() },
                Attribute { id: 412, value: r#"{x "y"}"#.into() }
            ]
        );
        assert_eq!(m.le, Some(1));
    }

    #[test]
    fn missing_gmtdate_falls_back_to_record_time() {
        let msg = r#"STATMSG: ID=6701 SEV=I LEV=M SOURCE="SMS Server" COMP="C" SYS=S SITE=P01 PID=1 TID=2 ISTR0="" ISTR1="" ISTR2="" ISTR3="" ISTR4="" ISTR5="" ISTR6="" ISTR7="" ISTR8="" ISTR9="" NUMATTRS=0"#;
        let m = full(msg);
        assert_eq!(m.gmtdate, at());
        assert!(parse_statmsg(msg, None).is_err(), "no time at all");
        assert_eq!(m.le, None);
    }

    #[test]
    fn localized_day_and_month_names() {
        let german = FAILED.replace("Fri Aug 02", "Fr Okt 04");
        let m = full(&german);
        assert_eq!((m.gmtdate.month(), m.gmtdate.day()), (10, 4));
        let march = FAILED.replace("Fri Aug 02", "Mo Mär 04");
        let m = full(&march);
        assert_eq!((m.gmtdate.month(), m.gmtdate.day()), (3, 4));
        // An unknown language: the month that puts GMTDATE next to the record time.
        let unknown = FAILED.replace("Fri Aug 02", "Xx Qqq 02");
        let m = full(&unknown);
        assert_eq!((m.gmtdate.month(), m.gmtdate.day()), (8, 2));
    }

    #[test]
    fn not_a_status_message() {
        assert_eq!(parse_statmsg("Sync time: 0d00h03m53s", record_time()), Ok(None));
        assert_eq!(
            parse_statmsg("STATMSG: (SOME_COMPONENT_STARTED).", record_time()),
            Ok(Some(Parsed::Symbolic("SOME_COMPONENT_STARTED")))
        );
        assert_eq!(parse_statmsg("STATMSG: nothing", record_time()), Ok(None));
    }

    #[test]
    fn unknown_keys_are_kept() {
        let msg =
            FAILED.replace(" GMTDATE=", " NEWKEY=abc GMTDATE=").replace(" LE=", " QUOTED=\"a \"b\" c\" LE=")
                + " TRAILING=1";
        let m = full(&msg);
        let extra: Vec<(&str, &str)> = m.extra.iter().map(|e| (&*e.key, &*e.value)).collect();
        assert_eq!(extra, vec![("NEWKEY", "abc"), ("QUOTED", "a \"b\" c"), ("TRAILING", "1")]);
        assert_eq!(m.le, Some(0x8013_150a));
        assert_eq!(m.gmtdate.day(), 2);
    }

    #[test]
    fn cut_rules_for_missing_istrs_attribute_values_and_padded_days() {
        let msg =
            FAILED.replace(" ISTR1=\"The request failed with HTTP status 503: Service Unavailable.\"", "");
        let m = full(&msg);
        assert_eq!(m.istr[0], "Microsoft.UpdateServices.Administration.AdminProxy.CreateUpdateServer");
        let msg = FAILED.replace(
            "NUMATTRS=0",
            "NUMATTRS=2 AID0=402 AVAL0=\"Coll \"Pilot\" AIDE group\" AID1=409 AVAL1=\"x \" AIDE\"",
        );
        let m = full(&msg);
        assert_eq!(m.attrs[0].value, "Coll \"Pilot\" AIDE group");
        assert_eq!(m.attrs[1].value, "x \" AIDE");
        let padded = FAILED.replace("Fri Aug 02 20:54", "Fri Aug  2 20:54");
        assert_eq!(full(&padded).gmtdate, full(FAILED).gmtdate);
        let leap = FAILED.replace("20:54:26.571", "23:59:60.500");
        assert_eq!(full(&leap).gmtdate.to_rfc3339(), "2024-08-02T23:59:60.500+00:00");
    }

    #[test]
    fn malformed_status_messages_say_why() {
        let broken = FAILED.replace("PID=2836", "PID=x");
        assert_eq!(
            parse_statmsg(&broken, record_time()),
            Err(StatmsgError::Invalid { key: "PID", value: "x".into() })
        );
        let cut = &FAILED[..FAILED.find(" ISTR0").unwrap() + 10];
        assert!(parse_statmsg(cut, record_time()).is_err());
        // Found by review: a blank day name leaves four words where GMTDATE needs five.
        let gmtdate = &FAILED[FAILED.find("GMTDATE=").unwrap() + 8..][..3];
        for blank in ["   ", "T h", "T\th"] {
            let broken = FAILED.replacen(gmtdate, blank, 1);
            assert!(
                matches!(
                    parse_statmsg(&broken, record_time()),
                    Err(StatmsgError::Invalid { key: "GMTDATE", .. })
                ),
                "{broken}"
            );
        }
    }
}
