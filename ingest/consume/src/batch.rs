//! The pure core of the consumer: Kafka messages in, one line-protocol body, the dead letters and
//! the offsets to commit out; with a [`Tracker`], every record also feeds its site's sync run and
//! the runs it changed become `sync_run` points. No I/O, so every decision is a plain function
//! under test.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use statmsg_schema::measurement::write_statmsg_point;
use statmsg_schema::{CollectorHeartbeat, Envelope, Payload, SCHEMA_VERSION};

use statmsg_track::points::{write_propagation, write_sync_run};
use statmsg_track::{Position, Propagation, SiteKey, SyncRun, Tracker};

/// Where a message came from. The topic is shared: every message of a batch names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KafkaOrigin {
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
    pub origin: KafkaOrigin,
    key: Option<Range<usize>>,
    payload: Option<Range<usize>>,
}

impl Gathered {
    pub fn push(&mut self, origin: KafkaOrigin, key: Option<&[u8]>, payload: Option<&[u8]>) {
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

    /// Bytes of keys and payloads held.
    pub fn bytes(&self) -> usize {
        self.bytes.len()
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
    pub fn iter(&self) -> impl Iterator<Item = (&KafkaOrigin, Option<&[u8]>, Option<&[u8]>)> {
        let part = |range: &Option<Range<usize>>| range.clone().map(|r| &self.bytes[r]);
        self.messages.iter().map(move |m| (&m.origin, part(&m.key), part(&m.payload)))
    }

    /// Keeps the messages for which `keep` holds (their bytes stay until the batch goes).
    pub fn retain(&mut self, keep: impl FnMut(&Received) -> bool) {
        self.messages.retain(keep);
    }
}

/// Where a record came from: its Kafka message, and its source file ([`source_id`]).
#[derive(Clone, Copy)]
struct Provenance<'m> {
    origin: &'m KafkaOrigin,
    key: Option<&'m [u8]>,
    source: u64,
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
    pub origin: KafkaOrigin,
    #[serde(skip)]
    pub key: Option<Vec<u8>>,
    /// The original payload (lossy UTF-8), or the refused line-protocol point.
    pub payload: String,
}

/// One batch being assembled.
#[derive(Debug, Default)]
pub struct Batch {
    body: String,
    points: Vec<(Range<usize>, KafkaOrigin)>,
    dead: Vec<DeadLetter>,
    /// Per (topic, partition): the next offset to commit.
    next_offsets: BTreeMap<(Arc<str>, i32), i64>,
    messages: usize,
    /// Records decoded (a bundle holds many), heartbeats aside.
    pub records: usize,
    /// Records that are not status messages: no `statmsg` point (they may still feed the tracker).
    pub skipped: usize,
    /// Sites whose records this batch fed to the tracker, with the last message of each.
    touched: BTreeMap<SiteKey, KafkaOrigin>,
    /// The key last looked up in `touched`, kept to look up without allocating.
    touched_key: SiteKey,
    /// Records the tracker could not place: no site in the envelope nor in the record.
    pub untracked: usize,
    /// Collector heartbeats among the messages.
    pub heartbeats: usize,
}

impl Batch {
    /// Adds one Kafka message.
    pub fn add(&mut self, origin: KafkaOrigin, key: Option<&[u8]>, payload: Option<&[u8]>) {
        self.add_tracked(origin, key, payload, None);
    }

    /// Adds one Kafka message, feeding its record to `tracker` too.
    pub fn add_tracked(
        &mut self,
        origin: KafkaOrigin,
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
            .and_then(|text| statmsg_schema::decode(text).map_err(|e| e.to_string()));
        let mut tracker = tracker;
        match decoded {
            Ok(Payload::Bundle(bundle)) => {
                // The source is the same for all: its hash is computed once. So is the site:
                // its partition and last message are noted once, after its records.
                let source = source_id(&bundle.host, &bundle.path, bundle.file.as_deref());
                let (hierarchy, site) = (bundle.hierarchy.clone(), bundle.site.clone());
                let from = Provenance { origin: &origin, key, source };
                let mut tracked = false;
                bundle.each(|envelope| {
                    let tracker = tracker.as_deref_mut();
                    tracked |= self.add_envelope(envelope, from, None, tracker, Some(&site));
                });
                if let (true, Some(tracker)) = (tracked, tracker) {
                    tracker.set_partition(&hierarchy, &site, origin.partition);
                    self.touch(&hierarchy, &site, &origin);
                }
            }
            Ok(Payload::Damaged(bundle)) => {
                let source = source_id(&bundle.host, &bundle.path, bundle.file.as_deref());
                let from = Provenance { origin: &origin, key, source };
                for raw in &bundle.records {
                    match bundle.decode_record(raw) {
                        Ok(envelope) => {
                            self.add_envelope(envelope, from, None, tracker.as_deref_mut(), None);
                        }
                        Err(e) => {
                            let reason = format!("a record of a bundle: {e}");
                            self.dead_letter(
                                DeadKind::Message,
                                &reason,
                                origin.clone(),
                                key,
                                &bundle.alone(raw),
                            );
                        }
                    }
                }
            }
            Ok(Payload::Envelope(envelope)) => {
                let source =
                    source_id(&envelope.host, &envelope.source.path, envelope.source.file.as_deref());
                let from = Provenance { origin: &origin, key, source };
                self.add_envelope(envelope, from, Some(payload), tracker, None);
            }
            Ok(Payload::Heartbeat(beat)) => self.add_heartbeat(&beat, origin, key, payload, tracker),
            Ok(Payload::Newer { schema }) => {
                let reason =
                    format!("payload schema {schema} is newer than {SCHEMA_VERSION}: upgrade the consumer");
                self.dead_letter(DeadKind::Message, &reason, origin, key, &String::from_utf8_lossy(payload));
            }
            Err(e) => {
                let reason = format!("not a statmsg envelope: {e}");
                self.dead_letter(DeadKind::Message, &reason, origin, key, &String::from_utf8_lossy(payload));
            }
        }
    }

    /// One record: to the tracker, and a `statmsg` point if it is a status message. A record
    /// that cannot be stored is a dead letter of its own: `payload` when it came alone, else
    /// its envelope re-encoded (`statmsg dlq replay` sends it back alone). The caller notes the
    /// partition and last message of `noted_later` (a bundle's site) itself; returns whether
    /// the record went to that site.
    fn add_envelope(
        &mut self,
        envelope: Envelope<'_>,
        from: Provenance<'_>,
        payload: Option<&[u8]>,
        tracker: Option<&mut Tracker>,
        noted_later: Option<&str>,
    ) -> bool {
        self.records += 1;
        let Provenance { origin, key, .. } = from;
        let tracked = match tracker {
            Some(tracker) => self.track(&envelope, from, tracker, noted_later),
            None => false,
        };
        let alone = || match payload {
            Some(payload) => String::from_utf8_lossy(payload).into_owned(),
            // Infallible: the envelope holds only strings, numbers and string-keyed structs.
            None => serde_json::to_string(&envelope).expect("an envelope always serializes"),
        };
        if let Some(error) = &envelope.record.statmsg_error {
            self.dead_letter(DeadKind::Message, error, origin.clone(), key, &alone());
            return tracked;
        }
        let start = self.body.len();
        match write_statmsg_point(&envelope, &mut self.body) {
            Ok(true) => self.points.push((start..self.body.len(), origin.clone())),
            Ok(false) => self.skipped += 1,
            Err(e) => {
                self.body.truncate(start);
                self.dead_letter(DeadKind::Message, &e.to_string(), origin.clone(), key, &alone());
            }
        }
        tracked
    }

    /// Feeds the record to its site's run; notes the site's partition and last message unless
    /// the site is `noted_later`, and then says so.
    fn track(
        &mut self,
        envelope: &Envelope<'_>,
        Provenance { origin, source, .. }: Provenance<'_>,
        tracker: &mut Tracker,
        noted_later: Option<&str>,
    ) -> bool {
        let site = if envelope.site.is_empty() { envelope.record_site() } else { &envelope.site };
        if site.is_empty() {
            self.untracked += 1;
            return false;
        }
        let position = Position { source, offset: envelope.source.offset };
        tracker.observe(&envelope.hierarchy, site, &envelope.record, Some(position));
        if noted_later == Some(site) {
            return true;
        }
        tracker.set_partition(&envelope.hierarchy, site, origin.partition);
        self.touch(&envelope.hierarchy, site, origin);
        false
    }

    /// A collector's heartbeat: to the tracker (`silent`; the consumer's health write carries it
    /// with the site's state). Not a point of its own: one a minute per site is enough.
    fn add_heartbeat(
        &mut self,
        beat: &CollectorHeartbeat,
        origin: KafkaOrigin,
        key: Option<&[u8]>,
        payload: &[u8],
        tracker: Option<&mut Tracker>,
    ) {
        if beat.site.is_empty() {
            let payload = String::from_utf8_lossy(payload);
            return self.dead_letter(DeadKind::Message, "heartbeat without a site", origin, key, &payload);
        }
        self.heartbeats += 1;
        if let Some(tracker) = tracker {
            tracker.heartbeat(beat);
            tracker.set_partition(&beat.hierarchy, &beat.site, origin.partition);
            self.touch(&beat.hierarchy, &beat.site, &origin);
        }
    }

    /// Notes `origin` as the last message of the site in this batch.
    fn touch(&mut self, hierarchy: &str, site: &str, origin: &KafkaOrigin) {
        let key = &mut self.touched_key;
        if key.0 != hierarchy || key.1 != site {
            key.0.clear();
            key.0.push_str(hierarchy);
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
        let origin = self.touched.get(&key).cloned().unwrap_or(KafkaOrigin {
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
        origin: KafkaOrigin,
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
    pub fn point(&self, index: usize) -> (&str, &KafkaOrigin) {
        let (range, origin) = &self.points[index];
        (&self.body[range.clone()], origin)
    }

    /// Each point alone, with its origin (to find the ones InfluxDB refuses).
    pub fn each_point(&self) -> impl Iterator<Item = (&str, &KafkaOrigin)> {
        self.points.iter().map(|(range, origin)| (&self.body[range.clone()], origin))
    }

    /// Records a point that InfluxDB refused as a dead letter.
    pub fn refused(&mut self, line: &str, origin: &KafkaOrigin, reason: &str) {
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
#[path = "batch_tests.rs"]
mod tests;
