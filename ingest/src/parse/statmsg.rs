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

use std::borrow::Cow;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Utc};
use statmsg_schema::{Attribute, StatusMessage};
use thiserror::Error;

const PREFIX: &str = "STATMSG: ID=";

/// Why a message that starts with `STATMSG: ID=` is not a well-formed status message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StatmsgError {
    #[error("STATMSG: expected {expected} at byte {at}")]
    Expected { expected: &'static str, at: usize },
    #[error("STATMSG: {key}={value:?} is not valid")]
    Invalid { key: &'static str, value: String },
    #[error("STATMSG: unexpected text after the last key at byte {at}")]
    Trailing { at: usize },
}

/// Parses a status message. `Ok(None)` when the message is not one (including the symbolic
/// `STATMSG: (NAME).` form); `record_time` stands in for a missing `GMTDATE`.
pub fn parse_statmsg(
    message: &str,
    record_time: DateTime<Utc>,
) -> Result<Option<StatusMessage<'_>>, StatmsgError> {
    if !message.starts_with(PREFIX) {
        return Ok(None);
    }
    let body = message.trim_end_matches([' ', '~']);
    let mut c = Cursor { text: body, pos: "STATMSG: ".len() };
    let id = c.number("ID")?;
    let sev = c.token("SEV")?;
    let lev = c.token("LEV")?;
    let source = c.quoted("SOURCE", &[" COMP=\""])?;
    let comp = c.quoted("COMP", &[" SYS="])?;
    let sys = c.token("SYS")?;
    let site = c.token("SITE")?;
    let pid = c.number("PID")?;
    let tid = c.number("TID")?;
    let gmtdate = if c.at_key("GMTDATE") { c.gmtdate(record_time)? } else { record_time };

    let mut istr = vec![Cow::Borrowed(""); 10];
    for (k, slot) in istr.iter_mut().enumerate() {
        if !c.at_key(ISTR_KEYS[k]) {
            break;
        }
        let next = ISTR_TERMINATORS[k];
        *slot = Cow::Borrowed(c.quoted(ISTR_KEYS[k], next)?);
    }

    let mut attrs = Vec::new();
    if c.at_key("NUMATTRS") {
        let count: u32 = c.number("NUMATTRS")?;
        for k in 0..count {
            let aid = format!("AID{k}");
            let aval = format!("AVAL{k}");
            let id = c.number_dyn(&aid)?;
            let next_aid = format!(" AID{}=", k + 1);
            let value = c.quoted_dyn(&aval, &[next_aid.as_str(), " LE="])?;
            attrs.push(Attribute { id, value: Cow::Borrowed(value) });
        }
    }
    let le = if c.at_key("LE") { Some(c.hex("LE")?) } else { None };
    if c.pos < body.len() {
        return Err(StatmsgError::Trailing { at: c.pos });
    }
    Ok(Some(StatusMessage {
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
    }))
}

const ISTR_KEYS: [&str; 10] =
    ["ISTR0", "ISTR1", "ISTR2", "ISTR3", "ISTR4", "ISTR5", "ISTR6", "ISTR7", "ISTR8", "ISTR9"];

/// What may follow `ISTRk="...`: the next ISTR, or (when later ones are missing) NUMATTRS or LE.
const ISTR_TERMINATORS: [&[&str]; 10] = [
    &[" ISTR1=\"", " NUMATTRS=", " LE="],
    &[" ISTR2=\"", " NUMATTRS=", " LE="],
    &[" ISTR3=\"", " NUMATTRS=", " LE="],
    &[" ISTR4=\"", " NUMATTRS=", " LE="],
    &[" ISTR5=\"", " NUMATTRS=", " LE="],
    &[" ISTR6=\"", " NUMATTRS=", " LE="],
    &[" ISTR7=\"", " NUMATTRS=", " LE="],
    &[" ISTR8=\"", " NUMATTRS=", " LE="],
    &[" ISTR9=\"", " NUMATTRS=", " LE="],
    &[" NUMATTRS=", " LE="],
];

struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn at_key(&self, key: &str) -> bool {
        let rest = self.rest();
        rest.starts_with(key) && rest[key.len()..].starts_with('=')
    }

    fn expect_key(&mut self, key: &str, expected: &'static str) -> Result<(), StatmsgError> {
        if !self.at_key(key) {
            return Err(StatmsgError::Expected { expected, at: self.pos });
        }
        self.pos += key.len() + 1;
        Ok(())
    }

    fn skip_spaces(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start_matches(' ').len();
    }

    /// An unquoted value: up to the next space.
    fn token(&mut self, key: &'static str) -> Result<&'a str, StatmsgError> {
        self.token_dyn(key, key)
    }

    fn token_dyn(&mut self, key: &str, expected: &'static str) -> Result<&'a str, StatmsgError> {
        self.expect_key(key, expected)?;
        let rest = self.rest();
        let value = &rest[..rest.find(' ').unwrap_or(rest.len())];
        self.pos += value.len();
        self.skip_spaces();
        Ok(value)
    }

    fn number<T: std::str::FromStr>(&mut self, key: &'static str) -> Result<T, StatmsgError> {
        let value = self.token(key)?;
        value.parse().map_err(|_| StatmsgError::Invalid { key, value: value.to_owned() })
    }

    fn number_dyn<T: std::str::FromStr>(&mut self, key: &str) -> Result<T, StatmsgError> {
        let value = self.token_dyn(key, "AIDk")?;
        value.parse().map_err(|_| StatmsgError::Invalid { key: "AIDk", value: value.to_owned() })
    }

    fn hex(&mut self, key: &'static str) -> Result<u32, StatmsgError> {
        let value = self.token(key)?;
        let digits = value.strip_prefix("0X").or_else(|| value.strip_prefix("0x")).unwrap_or(value);
        u32::from_str_radix(digits, 16).map_err(|_| StatmsgError::Invalid { key, value: value.to_owned() })
    }

    fn quoted(&mut self, key: &'static str, next: &[&str]) -> Result<&'a str, StatmsgError> {
        self.quoted_inner(key, key, next)
    }

    fn quoted_dyn(&mut self, key: &str, next: &[&str]) -> Result<&'a str, StatmsgError> {
        self.quoted_inner(key, "AVALk", next)
    }

    /// `KEY="value"` where the value ends at the first `"` followed by one of `next` keys, or at
    /// the closing quote at the end of the message.
    fn quoted_inner(
        &mut self,
        key: &str,
        expected: &'static str,
        next: &[&str],
    ) -> Result<&'a str, StatmsgError> {
        self.expect_key(key, expected)?;
        if !self.rest().starts_with('"') {
            return Err(StatmsgError::Expected { expected: "an opening quote", at: self.pos });
        }
        self.pos += 1;
        let rest = self.rest();
        let end = next
            .iter()
            .filter_map(|n| find_quote_before(rest, n))
            .min()
            .or_else(|| rest.ends_with('"').then(|| rest.len() - 1))
            .ok_or(StatmsgError::Expected { expected: "a closing quote", at: self.pos })?;
        self.pos += end + 1;
        self.skip_spaces();
        Ok(&rest[..end])
    }

    /// `GMTDATE=Ddd Mmm DD HH:MM:SS.mmm YYYY`: five tokens, names possibly localized.
    fn gmtdate(&mut self, record_time: DateTime<Utc>) -> Result<DateTime<Utc>, StatmsgError> {
        self.expect_key("GMTDATE", "GMTDATE")?;
        let rest = self.rest();
        let mut tokens = rest.splitn(6, ' ');
        let parts: Vec<&str> = tokens.by_ref().take(5).collect();
        let invalid = || StatmsgError::Invalid { key: "GMTDATE", value: rest.chars().take(32).collect() };
        let [_, month, day, time, year] = parts[..] else {
            return Err(invalid());
        };
        let consumed: usize = parts.iter().map(|p| p.len() + 1).sum::<usize>() - 1;
        let day: u32 = day.parse().map_err(|_| invalid())?;
        let year: i32 = year.parse().map_err(|_| invalid())?;
        let time = NaiveTime::parse_from_str(time, "%H:%M:%S%.f").map_err(|_| invalid())?;
        let date = match month_number(month) {
            Some(m) => NaiveDate::from_ymd_opt(year, m, day),
            None => nearest_month(year, day, record_time),
        }
        .ok_or_else(invalid)?;
        self.pos += consumed;
        self.skip_spaces();
        Ok(date.and_time(time).and_utc())
    }
}

/// Position of the `"` that immediately precedes `key` in `rest`.
fn find_quote_before(rest: &str, key: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = rest[from..].find(key) {
        let at = from + i;
        if at > 0 && rest.as_bytes()[at - 1] == b'"' {
            return Some(at - 1);
        }
        from = at + 1;
    }
    None
}

/// Month abbreviations in the languages ConfigMgr servers run in (first three letters).
fn month_number(name: &str) -> Option<u32> {
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
    let lower = name.trim_end_matches('.').to_lowercase();
    NAMES.iter().position(|names| names.contains(&lower.as_str())).map(|i| i as u32 + 1)
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

    fn record_time() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-08-02T20:54:26.500Z").unwrap().with_timezone(&Utc)
    }

    const FAILED: &str = r#"STATMSG: ID=6703 SEV=E LEV=M SOURCE="SMS Server" COMP="SMS_WSUS_SYNC_MANAGER" SYS=CM1.contoso.com SITE=CHQ PID=2836 TID=9640 GMTDATE=Fri Aug 02 20:54:26.571 2024 ISTR0="Microsoft.UpdateServices.Administration.AdminProxy.CreateUpdateServer" ISTR1="The request failed with HTTP status 503: Service Unavailable." ISTR2="" ISTR3="" ISTR4="" ISTR5="" ISTR6="" ISTR7="" ISTR8="" ISTR9="" NUMATTRS=0 LE=0X8013150a"#;

    #[test]
    fn a_failure_with_last_error() {
        let m = parse_statmsg(FAILED, record_time()).unwrap().unwrap();
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
        let m = parse_statmsg(msg, record_time()).unwrap().unwrap();
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
        let m = parse_statmsg(msg, record_time()).unwrap().unwrap();
        assert_eq!(m.gmtdate, record_time());
        assert_eq!(m.le, None);
    }

    #[test]
    fn localized_day_and_month_names() {
        let german = FAILED.replace("Fri Aug 02", "Fr Okt 04");
        let m = parse_statmsg(&german, record_time()).unwrap().unwrap();
        assert_eq!((m.gmtdate.month(), m.gmtdate.day()), (10, 4));
        let march = FAILED.replace("Fri Aug 02", "Mo Mär 04");
        let m = parse_statmsg(&march, record_time()).unwrap().unwrap();
        assert_eq!((m.gmtdate.month(), m.gmtdate.day()), (3, 4));
        // An unknown language: the month that puts GMTDATE next to the record time.
        let unknown = FAILED.replace("Fri Aug 02", "Xx Qqq 02");
        let m = parse_statmsg(&unknown, record_time()).unwrap().unwrap();
        assert_eq!((m.gmtdate.month(), m.gmtdate.day()), (8, 2));
    }

    #[test]
    fn not_a_status_message() {
        assert_eq!(parse_statmsg("Sync time: 0d00h03m53s", record_time()), Ok(None));
        assert_eq!(parse_statmsg("STATMSG: (SOME_COMPONENT_STARTED).", record_time()), Ok(None));
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
    }
}
