//! `statmsg parse --stats`: counts per format, record kind and event type.

use statmsg_schema::{Event, Format, Record};

const FORMATS: [Format; 6] =
    [Format::Server, Format::Unframed, Format::RolloverMarker, Format::Cmtrace, Format::Wsus, Format::Viewer];
const KINDS: [&str; 4] = ["status_message", "malformed_status_message", "event", "other"];

/// Counters over many records: plain arrays indexed by enum position, so counting costs a few
/// increments per record and allocates nothing.
#[derive(Debug, Clone)]
pub struct Stats {
    pub records: u64,
    pub bytes: u64,
    formats: [u64; FORMATS.len()],
    kinds: [u64; KINDS.len()],
    events: [u64; Event::TYPE_NAMES.len()],
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            records: 0,
            bytes: 0,
            formats: [0; FORMATS.len()],
            kinds: [0; KINDS.len()],
            events: [0; Event::TYPE_NAMES.len()],
        }
    }
}

impl Stats {
    #[inline]
    pub fn add(&mut self, record: &Record<'_>) {
        self.records += 1;
        self.formats[FORMATS.iter().position(|f| *f == record.format).unwrap_or(1)] += 1;
        let kind = if record.statmsg.is_some() {
            0
        } else if record.statmsg_error.is_some() {
            1
        } else if record.event.is_some() {
            2
        } else {
            3
        };
        self.kinds[kind] += 1;
        if let Some(event) = &record.event {
            self.events[event.type_index()] += 1;
        }
    }

    pub fn merge(&mut self, other: &Stats) {
        self.records += other.records;
        self.bytes += other.bytes;
        self.formats.iter_mut().zip(other.formats).for_each(|(a, b)| *a += b);
        self.kinds.iter_mut().zip(other.kinds).for_each(|(a, b)| *a += b);
        self.events.iter_mut().zip(other.events).for_each(|(a, b)| *a += b);
    }

    /// Records of a kind: `status_message`, `malformed_status_message`, `event`, `other`.
    pub fn kind(&self, name: &str) -> u64 {
        KINDS.iter().position(|k| *k == name).map_or(0, |i| self.kinds[i])
    }

    /// Records with an event of this type.
    pub fn event(&self, type_name: &str) -> u64 {
        Event::TYPE_NAMES.iter().position(|k| *k == type_name).map_or(0, |i| self.events[i])
    }

    /// A human-readable report; `seconds` is the elapsed time.
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
        let sections: [(&str, Vec<(&str, u64)>); 3] = [
            ("format", FORMATS.iter().map(|f| f.as_str()).zip(self.formats).collect()),
            ("kind", KINDS.iter().copied().zip(self.kinds).collect()),
            ("event", Event::TYPE_NAMES.iter().copied().zip(self.events).collect()),
        ];
        for (title, counts) in sections {
            out.push_str(&format!("{title}:\n"));
            for (k, v) in counts.into_iter().filter(|(_, v)| *v > 0) {
                out.push_str(&format!("  {k:<28} {v:>12}\n"));
            }
        }
        out
    }
}
