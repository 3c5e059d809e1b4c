//! WSUS `SoftwareDistribution.log`:
//! `2014-01-16 18:53:54.231 UTC Change w3wp.58 AdminDataAccess.StartSubscriptionManually Synchronization manually started`.
//! Fields are separated by spaces or tabs, sometimes several.

use std::borrow::Cow;

use chrono::NaiveDate;
use statmsg_schema::{Format, Level, Record};

use crate::datetime::parse_clock;

/// Parses one line; `None` when it is not in this format.
pub fn parse(line: &str) -> Option<Record<'_>> {
    let mut rest = line;
    let mut field = || {
        let trimmed = rest.trim_start_matches([' ', '\t']);
        let end = trimmed.find([' ', '\t']).unwrap_or(trimmed.len());
        rest = &trimmed[end..];
        Some(&trimmed[..end]).filter(|f| !f.is_empty())
    };
    let date = NaiveDate::parse_from_str(field()?, "%Y-%m-%d").ok()?;
    let clock = parse_clock(field()?)?;
    if field()? != "UTC" {
        return None;
    }
    let level = match field()? {
        "Info" | "Change" => Level::Info,
        "Warning" => Level::Warning,
        "Error" => Level::Error,
        _ => return None,
    };
    let thread = field()?;
    let class_method = field()?;
    let message = rest.trim_start_matches([' ', '\t']);
    Some(Record {
        time: Some(date.and_time(clock).and_utc()),
        component: Some(Cow::Borrowed(class_method)),
        thread: thread.rsplit('.').next().and_then(|t| t.parse().ok()),
        text: Cow::Borrowed(message.trim_end()),
        format: Format::Wsus,
        level: Some(level),
        statmsg: None,
        statmsg_error: None,
        event: None,
    })
}

/// Whether a line looks like this format (for detection).
pub fn looks_like(line: &str) -> bool {
    let b = line.as_bytes();
    b.len() > 27
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b' '
        && b[..4].iter().all(u8::is_ascii_digit)
        && line.get(23..28).is_some_and(|s| s.contains("UTC"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_lines() {
        let r = parse("2014-01-16 18:53:56.168 UTC  Info         WsusService.15 EventLogEventReporter.ReportEvent  EventId=382,Type=Information,Category=Synchronization,Message=A manual synchronization was started.").unwrap();
        assert_eq!(r.time.unwrap().to_rfc3339(), "2014-01-16T18:53:56.168+00:00");
        assert_eq!(r.component.as_deref(), Some("EventLogEventReporter.ReportEvent"));
        assert_eq!(r.thread, Some(15));
        assert!(r.text.starts_with("EventId=382,"));
        let r = parse("2014-01-16 18:53:54.231 UTC Change w3wp.58 AdminDataAccess.StartSubscriptionManually Synchronization manually started").unwrap();
        assert_eq!(
            (r.level, r.thread, &*r.text),
            (Some(Level::Info), Some(58), "Synchronization manually started")
        );
        assert!(looks_like("2014-01-16 18:53:54.231 UTC Change w3wp.58 A B"));
        assert!(parse("2014-01-16 18:53:54.231 CET Info x.1 A.B m").is_none());
    }
}
