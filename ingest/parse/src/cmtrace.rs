//! CMTrace / CCM records:
//! `<![LOG[message]LOG]!><time="HH:MM:SS.mmm+BIAS" date="M-D-YYYY" component="X" context="" type="1" thread="123" file="x.cpp:42">`.
//! A message may span several lines; framing ([`super::frame`]) hands over whole records.

use std::borrow::Cow;

use chrono::{Duration, NaiveDate};
use statmsg_schema::{Format, Level, Record};

use crate::datetime::parse_clock;

pub const START: &str = "<![LOG[";
pub const END: &str = "]LOG]!><";

/// Parses one framed record; `None` when it is not one (the caller keeps the text).
pub fn parse(raw: &str) -> Option<Record<'_>> {
    let body = raw.trim_start_matches(['\r', '\n', ' ']).strip_prefix(START)?;
    let end = memchr::memmem::find(body.as_bytes(), END.as_bytes())?;
    let message = &body[..end];
    let attrs = body[end + END.len()..].trim_end();
    let attr = |name: &str| attribute(attrs, name);
    let (clock, bias) = split_bias(attr("time")?);
    let date = parse_date(attr("date")?)?;
    let local = date.and_time(parse_clock(clock)?);
    // Without a bias the time zone is unknown: the local time is kept as if it were UTC.
    let bias = bias.unwrap_or(0);
    if bias.abs() > crate::datetime::MAX_BIAS_MINUTES {
        return None;
    }
    let time = local.checked_add_signed(Duration::minutes(i64::from(bias)))?.and_utc();
    let level = match attr("type") {
        Some("0") => Some(Level::Verbose),
        Some("1") => Some(Level::Info),
        Some("2") => Some(Level::Warning),
        Some("3") => Some(Level::Error),
        _ => None,
    };
    Some(Record {
        time: Some(time),
        component: attr("component").map(Cow::Borrowed),
        thread: attr("thread").and_then(|t| t.parse().ok()),
        // `~` means a line break only in the server format; CMTrace writes real line breaks.
        text: Cow::Borrowed(message),
        format: Format::Cmtrace,
        level,
        statmsg: None,
        statmsg_error: None,
        event: None,
    })
}

/// `name="value"` in the attribute part.
fn attribute<'a>(attrs: &'a str, name: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(i) = attrs[from..].find(name) {
        let at = from + i;
        let before_ok = at == 0 || attrs.as_bytes()[at - 1] == b' ' || attrs.as_bytes()[at - 1] == b'<';
        if let Some(value) = attrs[at + name.len()..].strip_prefix("=\"") {
            if before_ok {
                return value.find('"').map(|end| &value[..end]);
            }
        }
        from = at + name.len();
    }
    None
}

/// `14:23:05.1234567+480` -> (`14:23:05.1234567`, Some(480)).
fn split_bias(time: &str) -> (&str, Option<i32>) {
    match time.rfind(['+', '-']) {
        Some(i) if i >= 8 => (&time[..i], time[i..].parse().ok()),
        _ => (time, None),
    }
}

/// `MM-DD-YYYY`, zero padding optional.
fn parse_date(date: &str) -> Option<NaiveDate> {
    let mut parts = date.split('-');
    let (m, d, y) = (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
    NaiveDate::from_ymd_opt(y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_line_record() {
        let raw = "<![LOG[Update scan failed.\r\nError = 0x80072ee2]LOG]!><time=\"14:23:05.1234567+480\" date=\"1-2-2015\" component=\"ScanAgent\" context=\"\" type=\"3\" thread=\"4012\" file=\"scanagent.cpp:1063\">";
        let r = parse(raw).unwrap();
        assert_eq!(r.text, "Update scan failed.\r\nError = 0x80072ee2");
        assert_eq!(r.time.unwrap().to_rfc3339(), "2015-01-02T22:23:05.123456700+00:00");
        assert_eq!(
            (r.component.as_deref(), r.thread, r.level),
            (Some("ScanAgent"), Some(4012), Some(Level::Error))
        );
    }

    #[test]
    fn no_bias_and_type_zero() {
        let raw = "<![LOG[x]LOG]!><time=\"01:02:03.004\" date=\"12-31-2024\" component=\"C\" context=\"\" type=\"0\" thread=\"1\" file=\"\">";
        let r = parse(raw).unwrap();
        assert_eq!(r.time.unwrap().to_rfc3339(), "2024-12-31T01:02:03.004+00:00");
        assert_eq!(r.level, Some(Level::Verbose));
    }

    #[test]
    fn not_a_record() {
        assert!(parse("plain text").is_none());
        assert!(parse("<![LOG[no end").is_none());
        assert!(parse("<![LOG[x]LOG]!><time=\"bad\" date=\"1-1-2020\">").is_none());
    }
}
