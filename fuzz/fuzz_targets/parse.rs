//! Any bytes, as a whole file and as one record of each format: no panic, and whatever comes
//! out serializes (the JSON contract holds for every record).
#![no_main]

use libfuzzer_sys::fuzz_target;
use statmsg_parse::{parse_file_bytes, parse_record};
use statmsg_schema::Format;

fuzz_target!(|data: &[u8]| {
    let (_, records) = parse_file_bytes(data);
    for (_, record) in &records {
        let _ = serde_json::to_vec(record).expect("records serialize");
    }
    let text = String::from_utf8_lossy(data);
    for format in [Format::Server, Format::Cmtrace, Format::Wsus, Format::Viewer] {
        let record = parse_record(format, &text);
        let _ = serde_json::to_vec(&record).expect("records serialize");
    }
});
