//! The pure core of the consumer: Kafka messages in, one line-protocol body, the dead letters and
//! the offsets to commit out; with a [`Tracker`], every record also feeds its site's sync run and
//! the runs it changed become `sync_run` points. No I/O, so every decision is a plain function
//! under test.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use statmsg_schema::measurement::write_statmsg_point;
use statmsg_schema::{Envelope, SCHEMA_VERSION};

use statmsg_track::points::{write_propagation, write_sync_run};
use statmsg_track::{Position, Propagation, SiteKey, SyncRun, Tracker};

/// Where a message came from. The topic is shared: every message of a batch names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    #[serde(serialize_with = "shared_str")]
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
}

fn shared_str<S: serde::Serializer>(text: &Arc<str>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(text)
}

/// Kafka messages as received, copied out of librdkafka's buffers (the next batch is gathered
/// while they move on) into one arena: a message costs no allocation of its own.
#[derive(Debug, Default)]
pub struct Gathered {
    bytes: Vec<u8>,
    messages: Vec<Received>,
}

/// One message of [`Gathered`]: where it came from and where its key and payload are.
#[derive(Debug)]
pub struct Received {
    pub origin: Origin,
    key: Option<Range<usize>>,
    payload: Option<Range<usize>>,
}

impl Gathered {
    pub fn push(&mut self, origin: Origin, key: Option<&[u8]>, payload: Option<&[u8]>) {
        let mut copy = |part: Option<&[u8]>| {
            part.map(|part| {
                let start = self.bytes.len();
                self.bytes.extend_from_slice(part);
                start..self.bytes.len()
            })
        };
        let (key, payload) = (copy(key), copy(payload));
        self.messages.push(Received { origin, key, payload });
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Empties it, keeping its memory for the next messages.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.messages.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Each message: origin, key, payload.
    pub fn iter(&self) -> impl Iterator<Item = (&Origin, Option<&[u8]>, Option<&[u8]>)> {
        let part = |range: &Option<Range<usize>>| range.clone().map(|r| &self.bytes[r]);
        self.messages.iter().map(move |m| (&m.origin, part(&m.key), part(&m.payload)))
    }

    /// Keeps the messages for which `keep` holds (their bytes stay until the batch goes).
    pub fn retain(&mut self, keep: impl FnMut(&Received) -> bool) {
        self.messages.retain(keep);
    }
}

/// What a dead letter holds, which decides how `statmsg dlq replay` sends it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadKind {
    /// A Kafka message that could not be decoded or stored: its payload, as received.
    Message,
    /// A line-protocol point InfluxDB refused.
    Point,
    /// A point the tracker derived that could not be written (its JSON); the tracker derives
    /// it again, so it is not replayed.
    Derived,
}

/// A message statmsg cannot store, with the reason, for the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    pub kind: DeadKind,
    pub reason: String,
    #[serde(flatten)]
    pub origin: Origin,
    #[serde(skip)]
    pub key: Option<Vec<u8>>,
    /// The original payload (lossy UTF-8), or the refused line-protocol point.
    pub payload: String,
}

/// One batch being assembled.
#[derive(Debug, Default)]
pub struct Batch {
    body: String,
    points: Vec<(Range<usize>, Origin)>,
    dead: Vec<DeadLetter>,
    /// Per (topic, partition): the next offset to commit.
    next_offsets: BTreeMap<(Arc<str>, i32), i64>,
    messages: usize,
    /// Records that are not status messages: no `statmsg` point (they may still feed the tracker).
    pub skipped: usize,
    /// Sites whose records this batch fed to the tracker, with the last message of each.
    touched: BTreeMap<SiteKey, Origin>,
    /// The key last looked up in `touched`, kept to look up without allocating.
    touched_key: SiteKey,
    /// Records the tracker could not place: no site in the envelope nor in the record.
    pub untracked: usize,
}

impl Batch {
    /// Adds one Kafka message.
    pub fn add(&mut self, origin: Origin, key: Option<&[u8]>, payload: Option<&[u8]>) {
        self.add_tracked(origin, key, payload, None);
    }

    /// Adds one Kafka message, feeding its record to `tracker` too.
    pub fn add_tracked(
        &mut self,
        origin: Origin,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        tracker: Option<&mut Tracker>,
    ) {
        self.messages += 1;
        let next = self.next_offsets.entry((origin.topic.clone(), origin.partition)).or_insert(0);
        *next = (*next).max(origin.offset + 1);
        let Some(payload) = payload else {
            return self.dead_letter(DeadKind::Message, "empty message", origin, key, "");
        };
        // UTF-8 checked once for the whole payload, not string by string (`from_slice`).
        let decoded = std::str::from_utf8(payload)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_json::from_str::<Envelope<'_>>(text).map_err(|e| e.to_string()));
        let envelope = match decoded {
            Ok(e) => e,
            Err(e) => {
                let text = String::from_utf8_lossy(payload);
                let reason = format!("not a statmsg envelope: {e}");
                return self.dead_letter(DeadKind::Message, &reason, origin, key, &text);
            }
        };
        if envelope.schema > SCHEMA_VERSION {
            let reason = format!(
                "envelope schema {} is newer than {SCHEMA_VERSION}: upgrade the consumer",
                envelope.schema
            );
            return self.dead_letter(
                DeadKind::Message,
                &reason,
                origin,
                key,
                &String::from_utf8_lossy(payload),
            );
        }
        if let Some(tracker) = tracker {
            self.track(&envelope, &origin, tracker);
        }
        if let Some(error) = &envelope.record.statmsg_error {
            return self.dead_letter(
                DeadKind::Message,
                error,
                origin,
                key,
                &String::from_utf8_lossy(payload),
            );
        }
        let start = self.body.len();
        match write_statmsg_point(&envelope, &mut self.body) {
            Ok(true) => self.points.push((start..self.body.len(), origin)),
            Ok(false) => self.skipped += 1,
            Err(e) => {
                let payload = String::from_utf8_lossy(payload);
                self.dead_letter(DeadKind::Message, &e.to_string(), origin, key, &payload);
            }
        }
    }

    fn track(&mut self, envelope: &Envelope<'_>, origin: &Origin, tracker: &mut Tracker) {
        let site = if envelope.site.is_empty() { envelope.record_site() } else { &envelope.site };
        if site.is_empty() {
            self.untracked += 1;
            return;
        }
        let position = Position {
            source: source_id(&envelope.host, &envelope.source.path, envelope.source.file.as_deref()),
            offset: envelope.source.offset,
        };
        tracker.observe(&envelope.hierarchy, site, &envelope.record, Some(position));
        tracker.set_partition(&envelope.hierarchy, site, origin.partition);
        let key = &mut self.touched_key;
        if key.0 != *envelope.hierarchy || key.1 != site {
            key.0.clear();
            key.0.push_str(&envelope.hierarchy);
            key.1.clear();
            key.1.push_str(site);
        }
        match self.touched.get_mut(key) {
            Some(last) => last.clone_from(origin),
            None => {
                self.touched.insert(key.clone(), origin.clone());
            }
        }
    }

    /// Appends the `sync_run` points of `runs` (from [`Tracker::take_runs`]).
    pub fn add_runs(&mut self, runs: &[SyncRun]) {
        for run in runs {
            self.add_derived((&run.hierarchy, &run.site), "sync_run", run, write_sync_run);
        }
    }

    /// Appends `version_propagation` points.
    pub fn add_propagation(&mut self, rows: &[Propagation]) {
        for row in rows {
            self.add_derived((&row.hierarchy, &row.child), "version_propagation", row, write_propagation);
        }
    }

    /// Appends a point the tracker derived for `site`; one that cannot be written is a dead
    /// letter carried by the site's last message of the batch.
    fn add_derived<T: serde::Serialize>(
        &mut self,
        site: (&str, &str),
        measurement: &str,
        value: &T,
        write: impl FnOnce(&T, &mut String) -> Result<(), statmsg_schema::line_protocol::LineProtocolError>,
    ) {
        let key = (site.0.to_owned(), site.1.to_owned());
        let origin = self.touched.get(&key).cloned().unwrap_or(Origin {
            topic: Arc::from(""),
            partition: -1,
            offset: -1,
        });
        let start = self.body.len();
        match write(value, &mut self.body) {
            Ok(()) => self.points.push((start..self.body.len(), origin)),
            Err(e) => {
                let json = serde_json::to_string(value).unwrap_or_default();
                self.dead_letter(
                    DeadKind::Derived,
                    &format!("{measurement} point: {e}"),
                    origin,
                    None,
                    &json,
                );
            }
        }
    }

    /// The sites whose records this batch fed to the tracker.
    pub fn touched_sites(&self) -> impl Iterator<Item = &SiteKey> {
        self.touched.keys()
    }

    fn dead_letter(
        &mut self,
        kind: DeadKind,
        reason: &str,
        origin: Origin,
        key: Option<&[u8]>,
        payload: &str,
    ) {
        self.dead.push(DeadLetter {
            kind,
            reason: reason.to_owned(),
            origin,
            key: key.map(<[u8]>::to_vec),
            payload: payload.to_owned(),
        });
    }

    pub fn messages(&self) -> usize {
        self.messages
    }

    pub fn points(&self) -> usize {
        self.points.len()
    }

    /// The whole line-protocol body.
    pub fn body(&self) -> &str {
        &self.body
    }

    /// The body in pieces of at most `max_points` points each (one write request each), with
    /// the indices of their points (for [`Batch::point`]).
    pub fn pieces(&self, max_points: usize) -> impl Iterator<Item = (Range<usize>, &str)> {
        let max_points = max_points.max(1);
        (0..self.points.len()).step_by(max_points).map(move |first| {
            let end = (first + max_points).min(self.points.len());
            let bytes = self.points[first].0.start..self.points[end - 1].0.end;
            (first..end, &self.body[bytes])
        })
    }

    /// Points per measurement, leaving out those at `refused` (indices).
    pub fn points_per_measurement(&self, refused: &[usize]) -> BTreeMap<&str, u64> {
        let mut counts = BTreeMap::new();
        for (index, (range, _)) in self.points.iter().enumerate() {
            if refused.contains(&index) {
                continue;
            }
            let line = &self.body[range.clone()];
            // Measurements statmsg writes need no escaping: the name ends at the first comma
            // or space.
            let end = line.find([',', ' ']).unwrap_or(line.len());
            *counts.entry(&line[..end]).or_insert(0) += 1;
        }
        counts
    }

    /// The point at `index`, with its origin.
    pub fn point(&self, index: usize) -> (&str, &Origin) {
        let (range, origin) = &self.points[index];
        (&self.body[range.clone()], origin)
    }

    /// Each point alone, with its origin (to find the ones InfluxDB refuses).
    pub fn each_point(&self) -> impl Iterator<Item = (&str, &Origin)> {
        self.points.iter().map(|(range, origin)| (&self.body[range.clone()], origin))
    }

    /// Records a point that InfluxDB refused as a dead letter.
    pub fn refused(&mut self, line: &str, origin: &Origin, reason: &str) {
        let reason = format!("InfluxDB refused the point: {reason}");
        self.dead_letter(DeadKind::Point, &reason, origin.clone(), None, line);
    }

    pub fn dead_letters(&self) -> &[DeadLetter] {
        &self.dead
    }

    /// Drops the offsets of `partitions` (revoked: their new owner commits them).
    pub fn forget_partitions(&mut self, partitions: &std::collections::BTreeSet<i32>) {
        self.next_offsets.retain(|(_, p), _| !partitions.contains(p));
    }

    /// The offsets to commit once everything above is stored: per partition, one past the
    /// highest offset seen.
    pub fn next_offsets(&self) -> impl Iterator<Item = (&str, i32, i64)> {
        self.next_offsets.iter().map(|((t, p), o)| (&**t, *p, *o))
    }
}

/// Identifies a record's source file across hosts and rollovers (FNV-1a of host, path and the
/// file's identity).
pub fn source_id(host: &str, path: &str, file: Option<&str>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let file = file.unwrap_or("").bytes();
    for b in host.bytes().chain([0]).chain(path.bytes()).chain([0]).chain(file) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(offset: i64) -> Origin {
        Origin { topic: Arc::from("t"), partition: 0, offset }
    }

    const STATUS: &str = r#"{"schema":1,"hierarchy":"h","site":"CS1","host":"cm1","source":{"path":"a","offset":0},"record":{"time":"2014-01-16T18:53:52.610Z","component":"SMS_WSUS_SYNC_MANAGER","thread":1,"text":"STATMSG: ID=6701","format":"server","statmsg":{"id":6701,"sev":"I","lev":"M","source":"SMS Server","comp":"SMS_WSUS_SYNC_MANAGER","sys":"S","site":"CS1","pid":1,"tid":2,"gmtdate":"2014-01-16T18:53:52.608Z","istr":["a","","","","","","","","",""],"attrs":[]}}}"#;
    const PLAIN: &str = r#"{"schema":1,"hierarchy":"h","site":"CS1","host":"cm1","source":{"path":"a","offset":0},"record":{"time":null,"component":null,"thread":null,"text":"x","format":"unframed"}}"#;

    #[test]
    fn sorts_messages_into_points_skips_and_dead_letters() {
        let mut batch = Batch::default();
        batch.add(origin(5), Some(b"h/CS1"), Some(STATUS.as_bytes()));
        batch.add(origin(6), None, Some(PLAIN.as_bytes()));
        batch.add(origin(7), None, Some(b"{garbage"));
        batch.add(origin(8), None, Some(STATUS.replace("\"schema\":1", "\"schema\":99").as_bytes()));
        batch.add(origin(9), None, None);
        batch.add(Origin { topic: Arc::from("t"), partition: 2, offset: 1 }, None, Some(STATUS.as_bytes()));
        assert_eq!((batch.messages(), batch.points(), batch.skipped), (6, 2, 1));
        assert!(batch.body().starts_with(
            "statmsg,hierarchy=h,site=CS1,component=SMS_WSUS_SYNC_MANAGER,id=6701,sev=I istr0=\"a\""
        ));
        let reasons: Vec<&str> = batch.dead_letters().iter().map(|d| d.reason.as_str()).collect();
        assert!(reasons[0].starts_with("not a statmsg envelope"), "{reasons:?}");
        assert!(reasons[1].contains("newer"));
        assert_eq!(reasons[2], "empty message");
        assert_eq!(batch.next_offsets().collect::<Vec<_>>(), vec![("t", 0, 10), ("t", 2, 2)]);
    }

    #[test]
    fn pieces_cover_every_point_once_in_order() {
        let mut batch = Batch::default();
        for offset in 0..7 {
            batch.add(
                origin(offset),
                None,
                Some(STATUS.replace("ID=6701", &format!("ID={offset}")).as_bytes()),
            );
        }
        assert_eq!(batch.points(), 7);
        let pieces: Vec<_> = batch.pieces(3).collect();
        assert_eq!(pieces.iter().map(|(r, _)| r.clone()).collect::<Vec<_>>(), vec![0..3, 3..6, 6..7]);
        assert_eq!(pieces.iter().map(|(_, body)| *body).collect::<String>(), batch.body());
        for (indices, body) in &pieces {
            let lines: String = indices.clone().map(|i| batch.point(i).0).collect();
            assert_eq!(&lines, body);
            assert_eq!(body.lines().count(), indices.len());
        }
        assert_eq!(batch.point(6).1, &origin(6));
        assert_eq!(batch.points_per_measurement(&[]), BTreeMap::from([("statmsg", 7)]));
        assert_eq!(batch.points_per_measurement(&[0, 6]), BTreeMap::from([("statmsg", 5)]));
        assert_eq!(batch.pieces(100).count(), 1);
        assert_eq!(Batch::default().pieces(3).count(), 0);
    }

    #[test]
    fn malformed_status_messages_and_unwritable_points_are_dead_letters() {
        let mut batch = Batch::default();
        let malformed = PLAIN.replace(
            "\"format\":\"unframed\"",
            "\"format\":\"server\",\"statmsg_error\":\"STATMSG: PID=\\\"x\\\" is not valid\"",
        );
        batch.add(origin(1), None, Some(malformed.as_bytes()));
        batch.add(
            origin(2),
            None,
            Some(STATUS.replace("\"site\":\"CS1\",\"pid\"", "\"site\":\"C\\\\\",\"pid\"").as_bytes()),
        );
        assert_eq!(batch.points(), 0);
        assert_eq!(batch.dead_letters().len(), 2, "{:?}", batch.dead_letters());
        assert!(batch.dead_letters()[1].reason.contains("cannot carry"));
        assert!(batch.body().is_empty());
    }

    #[test]
    fn records_feed_the_tracker_and_runs_become_points_of_their_site() {
        let mut tracker = Tracker::new(statmsg_track::TrackerConfig::default());
        let mut batch = Batch::default();
        let started = PLAIN.replace("\"time\":null", "\"time\":\"2014-01-16T18:53:50.147Z\"").replace(
            "\"format\":\"unframed\"}",
            "\"format\":\"server\",\"event\":{\"type\":\"sync_starting\"}}",
        );
        batch.add_tracked(origin(1), None, Some(started.as_bytes()), Some(&mut tracker));
        batch.add_tracked(origin(2), None, Some(STATUS.as_bytes()), Some(&mut tracker));
        // The same record again (at-least-once): the tracker ignores it.
        batch.add_tracked(origin(3), None, Some(started.as_bytes()), Some(&mut tracker));
        assert_eq!(tracker.site("h", "CS1").map(|s| s.duplicates), Some(1));
        let runs = tracker.take_runs();
        assert_eq!(runs.len(), 1);
        batch.add_runs(&runs);
        assert_eq!(batch.points(), 2, "the status message and the run");
        assert!(
            batch.body().contains("\nsync_run,hierarchy=h,site=CS1 outcome=\"running\""),
            "{}",
            batch.body()
        );
        assert_eq!(batch.touched_sites().collect::<Vec<_>>(), vec![&("h".to_owned(), "CS1".to_owned())]);
        assert_eq!(tracker.site("h", "CS1").and_then(|s| s.partition), Some(0));
    }

    #[test]
    fn a_child_reaching_its_parents_version_becomes_a_propagation_point() {
        let envelope = |site: &str, offset: u64, message: &str, time: &str| {
            server_envelope(site, offset, message.to_owned(), time.to_owned())
        };
        let parent = [
            ("Starting Sync", "03-01-2024 10:00:00.000"),
            ("Set content version of update source {X} for site CAS to 34", "03-01-2024 10:05:00.000"),
            ("Sync succeeded. Setting sync alert to canceled state on site CAS", "03-01-2024 10:05:01.000"),
            ("Sending sync notification to child site(s): P01", "03-01-2024 10:05:02.000"),
        ];
        let child = [
            ("Found parent sync notification file CAS.SYN.", "03-01-2024 10:06:00.000"),
            ("Starting Sync", "03-01-2024 10:06:00.000"),
            ("Set content version of update source {X} for site P01 to 34", "03-01-2024 10:09:00.000"),
            ("Sync succeeded. Setting sync alert to canceled state on site P01", "03-01-2024 10:10:01.000"),
        ];
        let mut tracker = Tracker::new(statmsg_track::TrackerConfig::default());
        let mut batch = Batch::default();
        for (site, lines, partition) in [("CAS", &parent, 0), ("P01", &child, 1)] {
            for (k, (m, t)) in lines.iter().enumerate() {
                let payload = envelope(site, k as u64 * 100, m, t);
                let origin = Origin { topic: Arc::from("t"), partition, offset: k as i64 };
                batch.add_tracked(origin, None, Some(&payload), Some(&mut tracker));
            }
        }
        let owned: Vec<_> = tracker.sites().cloned().collect();
        batch.add_propagation(
            &super::super::propagation::PropagationMemo::default().changed(&tracker, owned.iter()),
        );
        assert!(
            batch.body().contains(
                "version_propagation,hierarchy=h,parent=CAS,child=P01 version=34i,reached=true,child_reached_ms=1709287801000i,delay_s=300.0 1709287501000000000\n"
            ),
            "{}",
            batch.body()
        );
    }

    /// The envelope of a server-format line of `site` at `time` (local, bias 0).
    fn server_envelope(site: &str, offset: u64, message: String, time: String) -> Vec<u8> {
        use statmsg_schema::SourcePosition;
        let line = format!("{message}  $$<SMS_WSUS_SYNC_MANAGER><{time}+0><thread=1 (0x1)>");
        let record = statmsg_parse::parse_line(&line).into_owned();
        let env = Envelope {
            schema: SCHEMA_VERSION,
            hierarchy: "h".into(),
            site: site.to_owned().into(),
            host: site.to_lowercase().into(),
            source: SourcePosition { path: "WsyncMgr.log".into(), offset, file: Some("1:2".into()) },
            truncated: None,
            record,
        };
        serde_json::to_vec(&env).unwrap()
    }

    /// A parent reaching a new version every day and its child following an hour later, as
    /// (site, partition, payload) in log order.
    fn days_of_propagation(days: u32) -> Vec<(&'static str, i32, Vec<u8>)> {
        let envelope = server_envelope;
        let mut out = Vec::new();
        for day in 1..=days {
            let at = |h: u32, m: u32| format!("03-{day:02}-2024 {h:02}:{m:02}:00.000");
            let version = 100 + day;
            let parent = [
                ("Starting Sync".to_owned(), at(10, 0)),
                (format!("Set content version of update source {{X}} for site CAS to {version}"), at(10, 5)),
                ("Sync succeeded. Setting sync alert to canceled state on site CAS".to_owned(), at(10, 6)),
                ("Sending sync notification to child site(s): P01".to_owned(), at(10, 7)),
            ];
            let child = [
                ("Found parent sync notification file CAS.SYN.".to_owned(), at(11, 0)),
                ("Starting Sync".to_owned(), at(11, 0)),
                (format!("Set content version of update source {{X}} for site P01 to {version}"), at(11, 5)),
                ("Sync succeeded. Setting sync alert to canceled state on site P01".to_owned(), at(11, 6)),
            ];
            for (site, partition, lines) in [("CAS", 0, parent), ("P01", 1, child)] {
                for (k, (message, time)) in lines.into_iter().enumerate() {
                    let offset = u64::from(day) * 1000 + k as u64 * 100;
                    out.push((site, partition, envelope(site, offset, message, time)));
                }
            }
        }
        out
    }

    /// The `version_propagation` rows stored after writing `messages` in batches of `size`:
    /// per series and time, the last line written.
    fn stored_propagation(messages: &[(&str, i32, Vec<u8>)], size: usize) -> BTreeMap<String, String> {
        let mut tracker = Tracker::new(statmsg_track::TrackerConfig::default());
        let mut memo = super::super::propagation::PropagationMemo::default();
        let mut stored = BTreeMap::new();
        for (n, chunk) in messages.chunks(size).enumerate() {
            let mut batch = Batch::default();
            for (k, (_, partition, payload)) in chunk.iter().enumerate() {
                let origin =
                    Origin { topic: Arc::from("t"), partition: *partition, offset: (n * size + k) as i64 };
                batch.add_tracked(origin, None, Some(payload), Some(&mut tracker));
            }
            let owned: Vec<_> = tracker.sites().cloned().collect();
            let rows = memo.changed(&tracker, owned.iter());
            memo.written(&rows);
            batch.add_propagation(&rows);
            for line in batch.body().lines().filter(|l| l.starts_with("version_propagation,")) {
                let (series, rest) = line.split_once(' ').unwrap();
                let time = rest.rsplit_once(' ').unwrap().1;
                stored.insert(format!("{series} {time}"), line.to_owned());
            }
        }
        stored
    }

    #[test]
    fn propagation_rows_stored_do_not_depend_on_batching() {
        let messages = days_of_propagation(12);
        let whole = stored_propagation(&messages, messages.len());
        assert_eq!(whole.len(), 12, "one row per version: {whole:#?}");
        assert!(
            whole.values().all(|l| l.contains("reached=true") && l.contains("delay_s=3600.0")),
            "{whole:#?}"
        );
        for size in [1, 3, 8, 40] {
            assert_eq!(stored_propagation(&messages, size), whole, "batches of {size}");
        }
    }
}
