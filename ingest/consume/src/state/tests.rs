//! The tracker's invariant the consumer relies on across restarts, rebalances and at-least-once
//! delivery, for record sequences from the simulator: tracking them straight through equals
//! tracking them with every site's state saved and restored through this topic's own encoding
//! at arbitrary cuts (a new owner, who then re-reads what came after the last commit), and equals
//! tracking them with arbitrary re-deliveries of records already seen.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use proptest::prelude::*;
use statmsg_parse::{for_each_record, FileKind};
use statmsg_schema::Record;
use statmsg_sim::{SimConfig, Simulation};
use statmsg_track::{Position, Tracker, TrackerConfig};

use super::{apply, encode};

/// A fleet's simulated logs: per file, its site and its bytes.
type Fleet = Vec<(String, Vec<u8>)>;

/// The simulated logs of a few fleets.
static FLEETS: LazyLock<Vec<Fleet>> = LazyLock::new(|| {
    (1..=3)
        .map(|seed| {
            let config = SimConfig {
                hierarchy: "inv".into(),
                sites: 5,
                days: 3,
                seed,
                interval: chrono::Duration::hours(3),
                // One file per log: a source's offsets then order all its records.
                roll_bytes: usize::MAX,
                ..SimConfig::default()
            };
            let dir = tempfile::tempdir().expect("a temporary directory");
            let (mut files, _) = Simulation::generate(config).write(dir.path()).expect("the simulated logs");
            files.sort();
            files
                .iter()
                .map(|file| {
                    let site = file.parent().and_then(|p| p.file_name()).expect("a site folder");
                    (site.to_string_lossy().into_owned(), std::fs::read(file).expect("a simulated log"))
                })
                .collect()
        })
        .collect()
});

/// One delivery: the site, where the record is in its file, the record.
type Delivery<'a> = (&'a str, Position, Record<'a>);

/// The records of `fleet`, every file's in its order, files interleaved as `interleave` picks.
fn deliveries(fleet: &[(String, Vec<u8>)], interleave: u64) -> Vec<Delivery<'_>> {
    let mut sources: Vec<std::collections::VecDeque<Delivery<'_>>> = fleet
        .iter()
        .enumerate()
        .map(|(source, (site, bytes))| {
            let (kind, bom) = FileKind::detect(&bytes[..bytes.len().min(FileKind::DETECT_BYTES)]);
            let mut records = std::collections::VecDeque::new();
            for_each_record(kind, &bytes[bom..], bom as u64, |offset, record| {
                // Owned: a UTF-16 file's records borrow a buffer transcoded for the call only.
                let at = Position { source: source as u64, offset };
                records.push_back((site.as_str(), at, record.clone().into_owned()));
            });
            records
        })
        .collect();
    let mut pick = interleave | 1;
    let mut out = Vec::new();
    while sources.iter().any(|s| !s.is_empty()) {
        // xorshift: any interleaving that keeps each file's order.
        pick ^= pick << 13;
        pick ^= pick >> 7;
        pick ^= pick << 17;
        let open: Vec<usize> = (0..sources.len()).filter(|&i| !sources[i].is_empty()).collect();
        let source = open[(pick % open.len() as u64) as usize];
        // A few records of a file at a time, as a bundle brings them.
        for _ in 0..1 + pick % 8 {
            if let Some(delivery) = sources[source].pop_front() {
                out.push(delivery);
            }
        }
    }
    out
}

/// What the consumer writes and keeps: every run (by site and start; later writes of a run
/// overwrite earlier ones, as InfluxDB does with a point's identity) and every site's state, as
/// JSON. A state's count of duplicates skipped is left out: it counts the re-deliveries.
#[derive(Debug, Default, PartialEq)]
struct Outcome {
    runs: BTreeMap<(String, String, String), serde_json::Value>,
    states: BTreeMap<(String, String), serde_json::Value>,
}

impl Outcome {
    fn take_runs(&mut self, tracker: &mut Tracker) {
        for run in tracker.take_runs() {
            let key = (run.hierarchy.clone(), run.site.clone(), run.start.to_rfc3339());
            self.runs.insert(key, serde_json::to_value(&run).expect("a run serializes"));
        }
    }

    fn finish(mut self, tracker: &mut Tracker) -> Outcome {
        self.take_runs(tracker);
        for state in tracker.sites() {
            let mut state = state.clone();
            state.duplicates = 0;
            let key = (state.hierarchy.clone(), state.site.clone());
            self.states.insert(key, serde_json::to_value(&state).expect("a state serializes"));
        }
        self
    }
}

/// Records per batch: runs are taken (written) after each, as the consumer does.
const BATCH: usize = 50;

fn observe(tracker: &mut Tracker, outcome: &mut Outcome, (site, position, record): &Delivery<'_>, n: usize) {
    tracker.observe("inv", site, record, Some(*position));
    if n % BATCH == BATCH - 1 {
        outcome.take_runs(tracker);
    }
}

fn straight(records: &[Delivery<'_>]) -> Outcome {
    let mut tracker = Tracker::new(TrackerConfig::default());
    let mut outcome = Outcome::default();
    for (n, delivery) in records.iter().enumerate() {
        observe(&mut tracker, &mut outcome, delivery, n);
    }
    outcome.finish(&mut tracker)
}

/// At each cut the runs are written, every state goes through the topic's encoding into a new
/// tracker, and the new owner re-reads the last `reread` records before the cut (those after
/// the last commit).
fn with_restores(records: &[Delivery<'_>], cuts: &[(usize, usize)]) -> Outcome {
    let mut tracker = Tracker::new(TrackerConfig::default());
    let mut outcome = Outcome::default();
    let mut cuts: BTreeMap<usize, usize> =
        cuts.iter().map(|&(at, reread)| (at % records.len(), reread)).collect();
    for (n, delivery) in records.iter().enumerate() {
        if let Some(reread) = cuts.remove(&n) {
            outcome.take_runs(&mut tracker);
            let states: Vec<_> = tracker.sites().cloned().collect();
            let (mut latest, mut unreadable) = (HashMap::new(), 0);
            for (key, payload) in encode(&states) {
                apply(&mut latest, &mut unreadable, key.as_deref(), Some(&payload));
            }
            assert_eq!(unreadable, 0);
            tracker = Tracker::new(TrackerConfig::default());
            for state in latest.into_values() {
                tracker.restore(state);
            }
            for again in &records[n.saturating_sub(reread)..n] {
                observe(&mut tracker, &mut outcome, again, n);
            }
        }
        observe(&mut tracker, &mut outcome, delivery, n);
    }
    outcome.finish(&mut tracker)
}

/// After record `at`, the `len` records before it come again (a producer's retry, a consumer
/// that re-reads from its last commit).
fn with_redeliveries(records: &[Delivery<'_>], redeliveries: &[(usize, usize)]) -> Outcome {
    let mut tracker = Tracker::new(TrackerConfig::default());
    let mut outcome = Outcome::default();
    let mut again: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for &(at, len) in redeliveries {
        again.entry(at % records.len()).or_default().push(len);
    }
    for (n, delivery) in records.iter().enumerate() {
        observe(&mut tracker, &mut outcome, delivery, n);
        for len in again.remove(&n).unwrap_or_default() {
            for repeated in &records[(n + 1).saturating_sub(len)..=n] {
                observe(&mut tracker, &mut outcome, repeated, n);
            }
        }
    }
    outcome.finish(&mut tracker)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn tracking_through_restores_and_redeliveries_equals_tracking_straight(
        fleet in 0..3usize,
        interleave in any::<u64>(),
        cuts in proptest::collection::vec((any::<usize>(), 0..400usize), 1..6),
        redeliveries in proptest::collection::vec((any::<usize>(), 1..400usize), 1..12),
    ) {
        let records = deliveries(&FLEETS[fleet], interleave);
        prop_assert!(records.len() > 1000, "a fleet's records: {}", records.len());
        let expected = straight(&records);
        prop_assert!(expected.runs.len() > 50, "runs: {}", expected.runs.len());
        prop_assert_eq!(&with_restores(&records, &cuts), &expected, "cuts {:?}", cuts);
        prop_assert_eq!(&with_redeliveries(&records, &redeliveries), &expected, "re-deliveries {:?}", redeliveries);
    }
}
