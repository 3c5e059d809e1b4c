//! `statmsg parse --stats`: counts per format, record kind and event type.

use std::collections::BTreeMap;

use statmsg_schema::Record;

/// Counters over many records. Plain arrays and small maps keyed by `&'static str`: counting
/// allocates nothing per record.
#[derive(Debug, Default)]
pub struct Stats {
    pub records: u64,
    pub bytes: u64,
    pub formats: BTreeMap<&'static str, u64>,
    pub kinds: BTreeMap<&'static str, u64>,
    pub events: BTreeMap<&'static str, u64>,
}

impl Stats {
    pub fn add(&mut self, record: &Record<'_>) {
        self.records += 1;
        *self.formats.entry(record.format.as_str()).or_default() += 1;
        let kind = if record.statmsg.is_some() {
            "status_message"
        } else if record.statmsg_error.is_some() {
            "malformed_status_message"
        } else if record.event.is_some() {
            "event"
        } else {
            "other"
        };
        *self.kinds.entry(kind).or_default() += 1;
        if let Some(event) = &record.event {
            *self.events.entry(event.type_name()).or_default() += 1;
        }
    }

    pub fn merge(&mut self, other: Stats) {
        self.records += other.records;
        self.bytes += other.bytes;
        for (map, theirs) in [
            (&mut self.formats, other.formats),
            (&mut self.kinds, other.kinds),
            (&mut self.events, other.events),
        ] {
            for (k, v) in theirs {
                *map.entry(k).or_default() += v;
            }
        }
    }

    /// A human-readable report; `seconds` is the elapsed parse time.
    pub fn report(&self, seconds: f64) -> String {
        let mut out = String::new();
        let mb = self.bytes as f64 / 1e6;
        out.push_str(&format!(
            "{} records, {:.1} MB in {:.3} s: {:.0} MB/s, {:.0} records/s\n",
            self.records,
            mb,
            seconds,
            mb / seconds.max(1e-9),
            self.records as f64 / seconds.max(1e-9)
        ));
        for (title, map) in [("format", &self.formats), ("kind", &self.kinds), ("event", &self.events)] {
            out.push_str(&format!("{title}:\n"));
            for (k, v) in map {
                out.push_str(&format!("  {k:<28} {v:>12}\n"));
            }
        }
        out
    }
}
