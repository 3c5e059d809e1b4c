//! Whole-record tests: the JSON contract of `statmsg parse --json` on server-format lines.

use serde_json::{json, Value};

use super::*;
use statmsg_schema::Format;

const LINES: &str = concat!(
    "\u{feff}Wakeup for scheduled regular sync  $$<SMS_WSUS_SYNC_MANAGER><01-16-2014 10:53:50.117+480><thread=3404 (0xD4C)>\r\n",
    "STATMSG: ID=6701 SEV=I LEV=M SOURCE=\"SMS Server\" COMP=\"SMS_WSUS_SYNC_MANAGER\" SYS=CS1SITE.CONTOSO.COM SITE=CS1 PID=432 TID=3404 GMTDATE=Thu Jan 16 18:53:52.608 2014 ISTR0=\"\" ISTR1=\"\" ISTR2=\"\" ISTR3=\"\" ISTR4=\"\" ISTR5=\"\" ISTR6=\"\" ISTR7=\"\" ISTR8=\"\" ISTR9=\"\" NUMATTRS=0 $$<SMS_WSUS_SYNC_MANAGER><01-16-2014 10:53:52.610+480><thread=3404 (0xD4C)>\r\n",
    "Sync failed: WSUS server not configured.~~ $$<SMS_WSUS_SYNC_MANAGER><01-16-2014 10:54:00.000+480><thread=3404 (0xD4C)>\r\n",
    "<MAXIMUM LOG FILE SIZE REACHED - FILE RENAMED>\r\n",
    "a line without trailer\r\n",
);

fn records() -> Vec<Value> {
    let (_, records) = parse_file_bytes(LINES.as_bytes());
    records.iter().map(|(_, r)| serde_json::to_value(r).unwrap()).collect()
}

#[test]
fn json_contract_of_a_status_message() {
    let r = &records()[1];
    assert_eq!(
        r,
        &json!({
            "time": "2014-01-16T18:53:52.610Z",
            "component": "SMS_WSUS_SYNC_MANAGER",
            "thread": 3404,
            "text": LINES.lines().nth(1).unwrap().split(" $$<").next().unwrap(),
            "format": "server",
            "statmsg": {
                "id": 6701, "sev": "I", "lev": "M", "source": "SMS Server",
                "comp": "SMS_WSUS_SYNC_MANAGER", "sys": "CS1SITE.CONTOSO.COM", "site": "CS1",
                "pid": 432, "tid": 3404, "gmtdate": "2014-01-16T18:53:52.608Z",
                "istr": ["", "", "", "", "", "", "", "", "", ""], "attrs": []
            },
            "event": {"type": "sync_status", "id": 6701, "name": "sync_started"}
        })
    );
}

#[test]
fn every_line_is_a_record() {
    let all = records();
    assert_eq!(all.len(), 5);
    assert_eq!(all[0]["text"], "Wakeup for scheduled regular sync");
    assert_eq!(all[0]["time"], "2014-01-16T18:53:50.117Z");
    assert_eq!(all[2]["text"], "Sync failed: WSUS server not configured.");
    assert_eq!(all[2]["event"]["type"], "sync_failed");
    assert_eq!(all[3]["format"], "rollover_marker");
    assert_eq!(all[4]["format"], "unframed");
    assert_eq!(all[4]["text"], "a line without trailer");
    assert_eq!(all[4]["time"], Value::Null);
}

#[test]
fn a_malformed_status_message_is_kept_with_its_error() {
    let line = "STATMSG: ID=6701 SEV=I LEV=M SOURCE=\"SMS Server\" COMP=\"C\" SYS=S SITE=CS1 PID=oops TID=1 $$<C><01-16-2014 10:53:52.610+480><thread=1 (0x1)>";
    let r = parse_line(line);
    assert!(r.statmsg.is_none());
    assert_eq!(r.statmsg_error.as_deref(), Some("STATMSG: PID=\"oops\" is not valid"));
    assert!(r.text.starts_with("STATMSG: ID=6701"));
}

#[test]
fn parsing_borrows_from_the_line() {
    let line = LINES.lines().nth(1).unwrap().trim_end();
    let r = parse_line(line);
    let m = r.statmsg.as_ref().unwrap();
    assert!(matches!(r.text, Cow::Borrowed(_)));
    assert!(matches!(m.sys, Cow::Borrowed(_)) && m.istr.iter().all(|s| matches!(s, Cow::Borrowed(_))));
}

/// Any printable insertion strings survive a render-then-parse round trip, as long as they do
/// not themselves contain the key that follows them (`" ISTRk+1="`), which no parser could tell
/// apart from the real one.
mod roundtrip {
    use proptest::prelude::*;

    use super::*;

    fn render(istr: &[String], le: Option<u32>) -> String {
        let mut s = String::from("STATMSG: ID=6703 SEV=E LEV=M SOURCE=\"SMS Server\" COMP=\"SMS_WSUS_SYNC_MANAGER\" SYS=cm1.contoso.com SITE=CHQ PID=2836 TID=9640 GMTDATE=Fri Aug 02 20:54:26.571 2024");
        for (k, v) in istr.iter().enumerate() {
            s.push_str(&format!(" ISTR{k}=\"{v}\""));
        }
        s.push_str(" NUMATTRS=0");
        if let Some(le) = le {
            s.push_str(&format!(" LE=0X{le:08x}"));
        }
        s.push_str("~~  $$<SMS_WSUS_SYNC_MANAGER><08-02-2024 13:54:26.580+420><thread=9640 (0x25A8)>");
        s
    }

    proptest! {
        #[test]
        fn insertion_strings_round_trip(
            istr in proptest::collection::vec("[ -~äöüß€字\"\\\\=~,]{0,24}", 10),
            le in proptest::option::of(any::<u32>()),
        ) {
            let istr: Vec<String> = istr.into_iter().map(|s| s.trim_end_matches('~').to_owned()).collect();
            let line = render(&istr, le);
            let r = parse_line(&line);
            prop_assume!(!istr.iter().enumerate().any(|(k, v)| v.contains(&format!("\" ISTR{}=\"", k + 1)) || v.contains("\" NUMATTRS=")));
            let m = r.statmsg.expect("parsed");
            prop_assert_eq!(m.istr.iter().map(|s| s.to_string()).collect::<Vec<_>>(), istr);
            prop_assert_eq!(m.le, le);
        }

        /// Whole records: trailer time with any bias, thread, GMTDATE, attributes and LE.
        #[test]
        fn whole_records_round_trip(
            secs in 0i64..4_000_000_000,
            millis in 0u32..1000,
            bias in -840i32..=720,
            thread in any::<u32>(),
            id in 0u16..=65535,
            attrs in proptest::collection::vec((any::<u32>(), "[ -~é\"=]{0,16}"), 0..4),
            le in proptest::option::of(any::<u32>()),
            istr1 in "[ -~äöü\"\\=,~]{0,30}",
        ) {
            let utc = chrono::DateTime::from_timestamp(secs, millis * 1_000_000).unwrap();
            let local = utc.naive_utc() - chrono::Duration::minutes(i64::from(bias));
            let attrs: Vec<(u32, String)> = attrs.into_iter().filter(|(_, v)| !v.contains("\" AID") && !v.contains("\" LE=")).collect();
            let mut msg = format!(
                "STATMSG: ID={id} SEV=W LEV=M SOURCE=\"SMS Server\" COMP=\"C\" SYS=s SITE=P01 PID=1 TID=2 GMTDATE={} ISTR0=\"\" ISTR1=\"{istr1}\" ISTR2=\"\" ISTR3=\"\" ISTR4=\"\" ISTR5=\"\" ISTR6=\"\" ISTR7=\"\" ISTR8=\"\" ISTR9=\"\" NUMATTRS={}",
                utc.format("%a %b %d %H:%M:%S%.3f %Y"),
                attrs.len()
            );
            for (k, (aid, aval)) in attrs.iter().enumerate() {
                msg.push_str(&format!(" AID{k}={aid} AVAL{k}=\"{aval}\""));
            }
            if let Some(le) = le {
                msg.push_str(&format!(" LE=0X{le:X}"));
            }
            let line = format!("{msg} $$<COMP_X><{}{bias:+}><thread={thread} (0x{thread:X})>", local.format("%m-%d-%Y %H:%M:%S%.3f"));
            prop_assume!(local.and_utc().timestamp() > 0 && local.format("%Y").to_string().len() == 4);
            let r = parse_line(&line);
            prop_assert_eq!(r.time, Some(utc));
            prop_assert_eq!(r.thread, Some(thread));
            let m = r.statmsg.expect("parsed");
            prop_assert_eq!(m.id, id);
            prop_assert_eq!(m.gmtdate, utc);
            prop_assert_eq!(&*m.istr[1], istr1.as_str());
            prop_assert_eq!(m.le, le);
            let got: Vec<(u32, String)> = m.attrs.iter().map(|a| (a.id, a.value.to_string())).collect();
            prop_assert_eq!(got, attrs);
        }
    }
}

/// Found by review: each was wrong or panicked before.
mod review_cases {
    use super::*;

    const T: &str = "$$<SMS_WSUS_SYNC_MANAGER><08-02-2024 16:00:00.000+240><thread=1 (0x1)>";

    #[test]
    fn non_ascii_file_names_do_not_panic() {
        let line = format!("Found parent sync notification file x€ab. {T}");
        assert_eq!(parse_line(&line).event.unwrap().type_name(), "sync_request_file");
    }

    #[test]
    fn a_line_ending_in_a_tag_still_joins_its_record() {
        let text = format!("Result XML: <Result>\r\n<Item Name=\"x\"/>\r\n</Result> {T}\r\n");
        let (_, records) = parse_file_bytes(text.as_bytes());
        assert_eq!(records.len(), 1);
        assert!(records[0].1.text.starts_with("Result XML: <Result>\r\n<Item"));
    }

    #[test]
    fn a_whitespace_only_line_is_blank() {
        let statmsg = "STATMSG: ID=6702 SEV=I LEV=M SOURCE=\"SMS Server\" COMP=\"SMS_WSUS_SYNC_MANAGER\" SYS=S SITE=CS1 PID=1 TID=2 GMTDATE=Fri Aug 02 20:00:00.000 2024 ISTR0=\"\" ISTR1=\"\" ISTR2=\"\" ISTR3=\"\" ISTR4=\"\" ISTR5=\"\" ISTR6=\"\" ISTR7=\"\" ISTR8=\"\" ISTR9=\"\" NUMATTRS=0";
        let text = format!("   \r\n{statmsg} {T}\r\n");
        let (_, records) = parse_file_bytes(text.as_bytes());
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].1.statmsg.as_ref().map(|m| m.id), Some(6702));
    }

    #[test]
    fn detection_follows_most_lines_not_the_first() {
        let text = format!(
            "Copied <![LOG[ into a message {T}\r\nStarting Sync {T}\r\nSync time: 0d00h03m53s {T}\r\n"
        );
        assert_eq!(FileKind::detect(text.as_bytes()).0.format, Format::Server);
        let text = format!("Done FOO_BAR {T}\r\nStarting Sync {T}\r\n");
        assert_eq!(FileKind::detect(text.as_bytes()).0.format, Format::Server);
    }

    #[test]
    fn cmtrace_keeps_tildes() {
        let line = "<![LOG[Running C:\\PROGRA~1\\MICROS~1\\setup.exe~]LOG]!><time=\"01:02:03.004+0\" date=\"1-1-2024\" component=\"C\" context=\"\" type=\"1\" thread=\"1\" file=\"\">";
        let r = parse_record(Format::Cmtrace, line);
        assert_eq!(r.text, "Running C:\\PROGRA~1\\MICROS~1\\setup.exe~");
    }
}
