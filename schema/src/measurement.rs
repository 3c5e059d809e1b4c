//! The InfluxDB measurements statmsg writes. `schema/README.md` documents them for users; the
//! tests here keep the two in step.

use crate::envelope::Envelope;
use crate::line_protocol::{LineProtocolError, PointBuilder};

/// Measurement of one point per status message.
pub const STATMSG: &str = "statmsg";

/// Appends the `statmsg` point of `envelope` to `out`, or does nothing and returns `Ok(false)`
/// when the record carries no status message.
///
/// The timestamp is `GMTDATE` (milliseconds) plus a sub-millisecond part derived from the record
/// itself ([`record_nanos`]), so that two different messages of the same site, component, id and
/// severity in the same millisecond stay two points, while the same record delivered twice
/// (at-least-once) overwrites itself: the write is idempotent.
pub fn write_statmsg_point(envelope: &Envelope<'_>, out: &mut String) -> Result<bool, LineProtocolError> {
    let Some(msg) = &envelope.record.statmsg else {
        return Ok(false);
    };
    let start = out.len();
    let mut point = PointBuilder::new(out, STATMSG)
        .tag("component", &msg.comp)?
        .tag("hierarchy", &envelope.hierarchy)?
        .tag("id", itoa_u16(msg.id).as_str())?
        .tag("sev", &msg.sev)?
        .tag("site", envelope.record_site())?;
    const ISTR_KEYS: [&str; 10] =
        ["istr0", "istr1", "istr2", "istr3", "istr4", "istr5", "istr6", "istr7", "istr8", "istr9"];
    for (i, key) in ISTR_KEYS.iter().enumerate() {
        point = point.field_str(key, msg.istr.get(i).map_or("", |s| s.as_ref()));
    }
    point = point
        .field_str("sys", &msg.sys)
        .field_int("pid", i64::from(msg.pid))
        .field_int("tid", i64::from(msg.tid))
        .field_str("source", &msg.source)
        .field_str("lev", &msg.lev)
        .field_str("host", &envelope.host);
    if let Some(le) = msg.le {
        point = point.field_int("le", i64::from(le));
    }
    for attr in &msg.attrs {
        point = point.field_str(&format!("attr{}", attr.id), &attr.value);
    }
    let nanos = msg
        .gmtdate
        .timestamp_millis()
        .checked_mul(1_000_000)
        .and_then(|ns| ns.checked_add(record_nanos(envelope)));
    let Some(nanos) = nanos else {
        out.truncate(start);
        return Err(LineProtocolError::TimestampOutOfRange(msg.gmtdate.to_rfc3339()));
    };
    point.finish(nanos)?;
    Ok(true)
}

/// A stable sub-millisecond offset (0..1_000_000 ns) from the record's text: FNV-1a, so that it
/// is the same on every machine and every build.
pub fn record_nanos(envelope: &Envelope<'_>) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in envelope.record.text.as_bytes() {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % 1_000_000) as i64
}

fn itoa_u16(n: u16) -> String {
    n.to_string()
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::{Attribute, Format, Record, SourcePosition, StatusMessage, SCHEMA_VERSION};

    fn envelope(istr1: &str) -> Envelope<'_> {
        let mut istr: [Cow<'_, str>; 10] = Default::default();
        istr[0] = Cow::Borrowed("CWSyncMgr::DoSync");
        istr[1] = Cow::Borrowed(istr1);
        let gmtdate =
            Utc.with_ymd_and_hms(2024, 8, 2, 20, 54, 26).unwrap() + chrono::Duration::milliseconds(571);
        Envelope {
            schema: SCHEMA_VERSION,
            hierarchy: "contoso prod".into(),
            site: "CHQ".into(),
            host: "cm1".into(),
            source: SourcePosition { path: "WsyncMgr.log".into(), offset: 0, file: None },
            truncated: None,
            record: Record {
                time: Some(gmtdate),
                component: Some("SMS_WSUS_SYNC_MANAGER".into()),
                thread: Some(9640),
                text: Cow::Borrowed(istr1),
                format: Format::Server,
                statmsg: Some(Box::new(StatusMessage {
                    id: 6703,
                    sev: "E".into(),
                    lev: "M".into(),
                    source: "SMS Server".into(),
                    comp: "SMS_WSUS_SYNC_MANAGER".into(),
                    sys: "CM1.contoso.com".into(),
                    site: "CHQ".into(),
                    pid: 2836,
                    tid: 9640,
                    gmtdate,
                    istr,
                    attrs: vec![Attribute { id: 419, value: "{C2D17964}".into() }],
                    le: Some(0x8013_150a),
                    extra: Vec::new(),
                })),
                statmsg_error: None,
                level: None,
                event: None,
            },
        }
    }

    #[test]
    fn one_point_per_status_message() {
        let env = envelope("The operation has timed out");
        let mut out = String::new();
        assert!(write_statmsg_point(&env, &mut out).unwrap());
        let ns = 1_722_632_066_571_000_000 + record_nanos(&env);
        assert_eq!(
            out,
            format!(
                "statmsg,component=SMS_WSUS_SYNC_MANAGER,hierarchy=contoso\\ prod,id=6703,sev=E,site=CHQ \
                 istr0=\"CWSyncMgr::DoSync\",istr1=\"The operation has timed out\",istr2=\"\",istr3=\"\",\
                 istr4=\"\",istr5=\"\",istr6=\"\",istr7=\"\",istr8=\"\",istr9=\"\",sys=\"CM1.contoso.com\",\
                 pid=2836i,tid=9640i,source=\"SMS Server\",lev=\"M\",host=\"cm1\",le=2148734218i,\
                 attr419=\"{{C2D17964}}\" {ns}\n"
            )
        );
    }

    #[test]
    fn the_sub_millisecond_part_depends_on_the_record_only() {
        let (a, b) = (envelope("one"), envelope("two"));
        assert_eq!(record_nanos(&a), record_nanos(&envelope("one")));
        assert_ne!(record_nanos(&a), record_nanos(&b));
        assert!((0..1_000_000).contains(&record_nanos(&a)));
    }

    #[test]
    fn records_without_status_message_write_nothing() {
        let mut env = envelope("x");
        env.record.statmsg = None;
        let mut out = String::new();
        assert!(!write_statmsg_point(&env, &mut out).unwrap());
        assert!(out.is_empty());
    }
}
