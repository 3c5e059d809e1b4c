//! Hostile and partial input: a bounded randomized no-panic test (the CI-sized sibling of the
//! `fuzz/` target), and properties of framing and the tailer's view of a file that grows by
//! arbitrary pieces.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use statmsg_parse::{for_each_record, parse_file_bytes, parse_record, FileKind, Frames};
use statmsg_schema::Format;

const SEED_LINES: &[&str] = &[
    "STATMSG: ID=6703 SEV=E LEV=M SOURCE=\"SMS Server\" COMP=\"SMS_WSUS_SYNC_MANAGER\" SYS=CM1 SITE=CHQ PID=2836 TID=9640 GMTDATE=Fri Aug 02 20:54:26.571 2024 ISTR0=\"a\" ISTR1=\"b\" ISTR2=\"\" ISTR3=\"\" ISTR4=\"\" ISTR5=\"\" ISTR6=\"\" ISTR7=\"\" ISTR8=\"\" ISTR9=\"\" NUMATTRS=1 AID0=409 AVAL0=\"CHQ\" LE=0X8013150a  $$<SMS_WSUS_SYNC_MANAGER><08-02-2024 16:54:26.580+240><thread=9640 (0x25A8)>",
    "sync: WSUS synchronizing updates, processed 122 out of 130 items (93%), ETA in 00:00:03  $$<SMS_WSUS_SYNC_MANAGER><08-02-2024 16:54:26.580+240><thread=9640 (0x25A8)>",
    "Sync failed: x. Source: y~~  $$<SMS_WSUS_SYNC_MANAGER><08-02-2024 16:54:26.580-330><thread=1 (0x1)>",
    "<![LOG[msg]LOG]!><time=\"14:23:05.1234567+480\" date=\"1-2-2015\" component=\"C\" context=\"\" type=\"3\" thread=\"4012\" file=\"x.cpp:1\">",
    "2014-01-16 18:53:56.168 UTC  Info WsusService.15 EventLogEventReporter.ReportEvent  EventId=382,Type=Information,Message=A",
    "Sending sync notification to child site(s): PS1, PS2 $$<C><Fri Sep 03 12:23:46.229 1999 Central Daylight Time><thread=250 (0xFA)>",
    "Set content version of update source {C2D17964} for site CS1 to 33   SMS_WSUS_SYNC_MANAGER",
];

/// Mutations of real records: bytes replaced, inserted, removed, records cut anywhere.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (0..SEED_LINES.len(), proptest::collection::vec((any::<u16>(), any::<u8>(), 0u8..4), 0..12)).prop_map(
        |(i, edits)| {
            let mut bytes = SEED_LINES[i].as_bytes().to_vec();
            for (at, byte, op) in edits {
                let at = usize::from(at) % (bytes.len() + 1);
                match op {
                    0 if at < bytes.len() => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    2 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => bytes.truncate(at),
                }
            }
            bytes
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    /// Nothing panics, and every non-blank line comes out as a record with its text.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let (_, records) = parse_file_bytes(&bytes);
        let _ = serde_json::to_string(&records.iter().map(|(_, r)| r).collect::<Vec<_>>()).unwrap();
    }

    #[test]
    fn mutated_records_never_panic(bytes in mutated()) {
        for format in [Format::Server, Format::Cmtrace, Format::Wsus, Format::Viewer] {
            let text = String::from_utf8_lossy(&bytes);
            let record = parse_record(format, &text);
            let _ = serde_json::to_string(&record).unwrap();
        }
        let (_, records) = parse_file_bytes(&bytes);
        let non_blank = bytes.split(|&b| b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)).count();
        prop_assert!(!records.is_empty() || non_blank == 0);
    }

    /// A file read as it grows, piece by piece (the tailer's view, complete records only, the rest
    /// carried over), yields exactly the records of reading it whole.
    #[test]
    fn reading_a_growing_file_in_pieces_equals_reading_it_whole(
        lines in proptest::collection::vec(0..SEED_LINES.len() + 2, 1..30),
        cuts in proptest::collection::vec(any::<u16>(), 0..10),
    ) {
        let mut text = String::new();
        for i in lines {
            match SEED_LINES.get(i) {
                Some(l) if !l.starts_with("<![LOG[") && !l.starts_with("2014") && !l.ends_with("MANAGER") => text.push_str(l),
                Some(_) => text.push_str("plain text without trailer"),
                None => text.push_str("part one of a message"),
            }
            text.push_str("\r\n");
        }
        let bytes = text.as_bytes();
        let kind = FileKind::detect(bytes).0;
        let mut whole = Vec::new();
        for_each_record(kind, bytes, 0, |o, r| whole.push((o, r.clone().into_owned())));

        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| usize::from(c) % (bytes.len() + 1)).collect();
        cuts.push(bytes.len());
        cuts.sort_unstable();
        let (mut pieces, mut consumed) = (Vec::new(), 0);
        for cut in cuts {
            // What the file holds at this moment; the writer has not finished the last line.
            let visible = &bytes[consumed..cut.max(consumed)];
            let final_read = cut == bytes.len();
            let mut frames = Frames::new(kind.format, visible, !final_read);
            for (o, raw) in frames.by_ref() {
                let raw = std::str::from_utf8(raw).unwrap();
                pieces.push(((consumed + o) as u64, parse_record(kind.format, raw).into_owned()));
            }
            consumed += if final_read { visible.len() } else { frames.consumed() };
        }
        prop_assert_eq!(pieces, whole);
    }
}
