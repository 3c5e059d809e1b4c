//! Lines copied from a log viewer, as Microsoft's documentation shows them: the message, then
//! spaces, then the component (`Starting Sync     SMS_WSUS_SYNC_MANAGER`). No time, no thread.

use std::borrow::Cow;

use statmsg_schema::{Format, Record};

/// Components that contain a space, which the last-token rule cannot find.
const SPACED_COMPONENTS: [&str; 1] = ["SMS Provider"];

/// Parses one line; `None` when it does not end with a component.
pub fn parse(line: &str) -> Option<Record<'_>> {
    let line = line.trim_end();
    let (message, component) = split(line)?;
    Some(Record {
        time: None,
        component: Some(Cow::Borrowed(component)),
        thread: None,
        text: super::text::present_message(message.trim_end()),
        format: Format::Viewer,
        level: None,
        statmsg: None,
        statmsg_error: None,
        event: None,
    })
}

fn split(line: &str) -> Option<(&str, &str)> {
    for spaced in SPACED_COMPONENTS {
        if let Some(message) = line.strip_suffix(spaced) {
            if message.ends_with([' ', '\t']) {
                return Some((message, spaced));
            }
        }
    }
    let at = line.rfind([' ', '\t'])?;
    let component = &line[at + 1..];
    let is_component = component.len() > 3
        && component.contains('_')
        && component.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    is_component.then(|| (&line[..at], component))
}

/// Whether a line looks like this format (for detection).
pub fn looks_like(line: &str) -> bool {
    split(line.trim_end()).is_some() && !line.contains("$$<")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_then_component() {
        let r = parse("Wakeup for scheduled regular sync         SMS_WSUS_SYNC_MANAGER  ").unwrap();
        assert_eq!(
            (&*r.text, r.component.as_deref()),
            ("Wakeup for scheduled regular sync", Some("SMS_WSUS_SYNC_MANAGER"))
        );
        let r = parse("ExecMethodAsync : SMS_SoftwareUpdate::SyncNow        SMS Provider").unwrap();
        assert_eq!(
            (&*r.text, r.component.as_deref()),
            ("ExecMethodAsync : SMS_SoftwareUpdate::SyncNow", Some("SMS Provider"))
        );
        assert!(parse("no component here").is_none());
    }
}
