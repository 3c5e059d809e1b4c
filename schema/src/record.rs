//! One log record as statmsg understands it.
//!
//! The JSON names of these types are a contract (`statmsg parse --json`, the Kafka payload):
//! fields may be added, never renamed.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::Event;

/// The physical format a record was read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Server "SMS trace" format: `message $$<COMP><MM-DD-YYYY HH:MM:SS.mmm+BIAS><thread=N (0xN)>`.
    Server,
    /// A physical line without a recognisable trailer, kept as text rather than dropped.
    Unframed,
    /// `<MAXIMUM LOG FILE SIZE REACHED - FILE RENAMED>`, the unframed last line of a rolled file.
    RolloverMarker,
    /// CMTrace / CCM: `<![LOG[message]LOG]!><time="..." date="..." component="..." ...>`, possibly
    /// spanning several lines.
    Cmtrace,
    /// WSUS `SoftwareDistribution.log`: `2014-01-16 18:53:54.231 UTC Change w3wp.58 Class.Method message`.
    Wsus,
    /// Copied from a log viewer, as in Microsoft's documentation: `message<spaces>COMPONENT`, no time.
    Viewer,
}

impl Format {
    /// The name used in JSON and in statistics.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Server => "server",
            Format::Unframed => "unframed",
            Format::RolloverMarker => "rollover_marker",
            Format::Cmtrace => "cmtrace",
            Format::Wsus => "wsus",
            Format::Viewer => "viewer",
        }
    }
}

/// One log record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record<'a> {
    /// Record time in UTC (local time plus the line's bias). `None` for unframed lines.
    #[serde(default, serialize_with = "millis::serialize_opt", deserialize_with = "millis::deserialize_opt")]
    pub time: Option<DateTime<Utc>>,
    /// Component from the trailer, e.g. `SMS_WSUS_SYNC_MANAGER`.
    #[serde(borrow, default, deserialize_with = "crate::borrow::option")]
    pub component: Option<Cow<'a, str>>,
    /// Writer thread id.
    pub thread: Option<u32>,
    /// The message for people: trailing spaces and trailing `~`/`~~` line-break codes removed,
    /// inner `~~` (CRLF) and `~` (LF) presented as `\n`. Status-message values keep the raw text.
    #[serde(borrow)]
    pub text: Cow<'a, str>,
    /// How the record was framed on disk.
    pub format: Format,
    /// Severity when the format states one (CMTrace `type`, WSUS level); status messages carry
    /// theirs in `statmsg.sev`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    /// The status message, when the message is a well-formed `STATMSG:` line. Boxed: it takes
    /// 464 bytes and about one record in ten has one, while every record is moved several times
    /// as it is decoded (184 bytes a record so, 640 with it inline).
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub statmsg: Option<Box<StatusMessage<'a>>>,
    /// Why a message that starts like a status message could not be read as one.
    #[serde(
        borrow,
        default,
        deserialize_with = "crate::borrow::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub statmsg_error: Option<Cow<'a, str>>,
    /// What the record means for synchronization, when statmsg recognises it.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Event<'a>>,
}

/// Severity stated by the log format itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Verbose,
    Info,
    Warning,
    Error,
}

/// A ConfigMgr status message (`STATMSG: ID=... SEV=... ...`). Keys are the STATMSG keys
/// lowercased. String values are exactly the bytes between the quotes on disk (nothing in a
/// STATMSG value is escaped by the writer, so nothing is unescaped here).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusMessage<'a> {
    pub id: u16,
    /// `I`, `W` or `E` (kept as written).
    #[serde(borrow)]
    pub sev: Cow<'a, str>,
    #[serde(borrow)]
    pub lev: Cow<'a, str>,
    #[serde(borrow)]
    pub source: Cow<'a, str>,
    #[serde(borrow)]
    pub comp: Cow<'a, str>,
    #[serde(borrow)]
    pub sys: Cow<'a, str>,
    #[serde(borrow)]
    pub site: Cow<'a, str>,
    pub pid: u32,
    pub tid: u32,
    /// `GMTDATE`, or the record time when the line has none.
    #[serde(serialize_with = "millis::serialize", deserialize_with = "millis::deserialize")]
    pub gmtdate: DateTime<Utc>,
    /// `ISTR0`..`ISTR9`; always ten entries, missing ones empty.
    #[serde(borrow, deserialize_with = "crate::borrow::array")]
    pub istr: [Cow<'a, str>; 10],
    #[serde(borrow, default)]
    pub attrs: Vec<Attribute<'a>>,
    /// `LE=0X...`, the last error (HRESULT or Win32), when the line has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub le: Option<u32>,
    /// `KEY=VALUE` tokens the grammar does not know, kept in order.
    #[serde(borrow, default, skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<ExtraKey<'a>>,
}

/// An unknown `KEY=VALUE` of a status message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraKey<'a> {
    #[serde(borrow)]
    pub key: Cow<'a, str>,
    #[serde(borrow)]
    pub value: Cow<'a, str>,
}

/// One `AIDk=<id> AVALk="<value>"` pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribute<'a> {
    pub id: u32,
    #[serde(borrow)]
    pub value: Cow<'a, str>,
}

impl Record<'_> {
    /// Detaches the record from the buffer it borrows from.
    pub fn into_owned(self) -> Record<'static> {
        Record {
            time: self.time,
            component: self.component.map(owned),
            thread: self.thread,
            text: owned(self.text),
            format: self.format,
            level: self.level,
            statmsg: self.statmsg.map(|m| Box::new(m.into_owned())),
            statmsg_error: self.statmsg_error.map(owned),
            event: self.event.map(Event::into_owned),
        }
    }
}

impl StatusMessage<'_> {
    /// Detaches the status message from the buffer it borrows from.
    pub fn into_owned(self) -> StatusMessage<'static> {
        StatusMessage {
            id: self.id,
            sev: owned(self.sev),
            lev: owned(self.lev),
            source: owned(self.source),
            comp: owned(self.comp),
            sys: owned(self.sys),
            site: owned(self.site),
            pid: self.pid,
            tid: self.tid,
            gmtdate: self.gmtdate,
            istr: self.istr.map(owned),
            attrs: self.attrs.into_iter().map(|a| Attribute { id: a.id, value: owned(a.value) }).collect(),
            le: self.le,
            extra: self
                .extra
                .into_iter()
                .map(|e| ExtraKey { key: owned(e.key), value: owned(e.value) })
                .collect(),
        }
    }
}

fn owned(s: Cow<'_, str>) -> Cow<'static, str> {
    Cow::Owned(s.into_owned())
}

/// Serializes times as RFC 3339 UTC with milliseconds (`2024-08-02T20:54:26.571Z`), the form the
/// JSON contract promises; chrono's default would print nanoseconds and `+00:00`. Reads that form
/// on a fast path (the consumer reads two times per status message: chrono's general RFC 3339
/// parser was a twentieth of its decoding), any other RFC 3339 time through chrono.
pub(crate) mod millis {
    use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
    use serde::{Deserializer, Serializer};

    pub fn format(t: &DateTime<Utc>) -> String {
        t.to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(t))
    }

    pub fn serialize_opt<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => serialize(t, s),
            None => s.serialize_none(),
        }
    }

    /// Reads an RFC 3339 time; `YYYY-MM-DDTHH:MM:SS.mmmZ` without chrono's general parser.
    pub fn parse(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
        match parse_millis(text.as_bytes()) {
            Some(t) => Ok(t),
            None => Ok(DateTime::parse_from_rfc3339(text)?.with_timezone(&Utc)),
        }
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ` exactly, else `None` (the caller falls back to chrono).
    fn parse_millis(b: &[u8]) -> Option<DateTime<Utc>> {
        let &[y0, y1, y2, y3, b'-', mo0, mo1, b'-', d0, d1, b'T', h0, h1, b':', mi0, mi1, b':', s0, s1, b'.', f0, f1, f2, b'Z'] =
            b
        else {
            return None;
        };
        let digits = |ds: &[u8]| {
            ds.iter().try_fold(0u32, |n, &d| d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0')))
        };
        let year = i32::try_from(digits(&[y0, y1, y2, y3])?).ok()?;
        let date = NaiveDate::from_ymd_opt(year, digits(&[mo0, mo1])?, digits(&[d0, d1])?)?;
        let time = date.and_hms_milli_opt(
            digits(&[h0, h1])?,
            digits(&[mi0, mi1])?,
            digits(&[s0, s1])?,
            digits(&[f0, f1, f2])?,
        )?;
        Some(time.and_utc())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = crate::borrow::cow(d)?;
        parse(&text).map_err(serde::de::Error::custom)
    }

    pub fn deserialize_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        match crate::borrow::option(d)? {
            Some(text) => parse(&text).map(Some).map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeZone, Utc};
    use proptest::prelude::*;

    use super::millis;

    /// The oracle: chrono's own RFC 3339 parser.
    fn chrono_parse(text: &str) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc))
    }

    #[test]
    fn reads_the_written_form_and_other_rfc3339_times() {
        let t = Utc.with_ymd_and_hms(2024, 8, 2, 20, 54, 26).unwrap() + chrono::Duration::milliseconds(571);
        assert_eq!(millis::parse("2024-08-02T20:54:26.571Z").ok(), Some(t));
        assert_eq!(millis::parse("2024-08-02T22:54:26.571+02:00").ok(), Some(t));
        assert_eq!(millis::parse(&millis::format(&t)).ok(), Some(t));
        for wrong in
            ["2024-02-30T00:00:00.000Z", "2024-13-01T00:00:00.000Z", "2024-08-02T24:00:00.000Z", "", "x"]
        {
            assert!(millis::parse(wrong).is_err(), "{wrong}");
        }
    }

    proptest! {
        #[test]
        fn the_fast_path_agrees_with_chrono(millis_since_epoch in -62_000_000_000_000i64..250_000_000_000_000) {
            let t = Utc.timestamp_millis_opt(millis_since_epoch).unwrap();
            let text = millis::format(&t);
            prop_assert_eq!(millis::parse(&text).ok(), Some(t));
            prop_assert_eq!(chrono_parse(&text), Some(t));
        }

        #[test]
        fn a_mutated_time_reads_as_chrono_reads_it(
            millis_since_epoch in 0i64..4_000_000_000_000,
            at in 0usize..24,
            byte in proptest::sample::select(b"0123456789-:.TZ+ x".to_vec()),
        ) {
            let mut text = millis::format(&Utc.timestamp_millis_opt(millis_since_epoch).unwrap()).into_bytes();
            text[at] = byte;
            let text = String::from_utf8(text).unwrap();
            prop_assert_eq!(millis::parse(&text).ok(), chrono_parse(&text), "{}", text);
        }
    }
}
