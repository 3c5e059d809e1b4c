//! The collector against real Kafka under the faults a site server sees: `kill -9` again and
//! again while ConfigMgr writes fast and rolls `WsyncMgr.log` (by rename and by copy-then-
//! truncate, with half-written lines), Kafka down while the log rolls three times, a spool that
//! fills up, and shutdown while Kafka is unreachable. Each test counts, in the Kafka topic, what
//! was lost (must be 0) and what was delivered twice (bounded by what was in flight per kill).
//! Ignored by a plain `cargo test`; `.ci/run` starts the stack and runs them.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use common::*;

/// A line of about 200 bytes carrying its number.
fn line(n: usize) -> String {
    let local = NaiveDate::from_ymd_opt(2025, 3, 1).unwrap().and_hms_opt(8, 0, 0).unwrap()
        + chrono::Duration::milliseconds(n as i64 * 7);
    server_line(
        &format!(
            "rec-{n:06} Synchronizing update 1a2b3c4d-0000-4000-8000-{n:012} - 2025-03 Cumulative Update"
        ),
        local,
        -60,
        4242,
    )
}

/// ConfigMgr writing `WsyncMgr.log`: appends lines (some in two writes, a moment apart) and rolls
/// the file to `WsyncMgr.lo_` at `roll_at` bytes, alternately by rename and by copy-then-truncate.
struct Writer {
    dir: PathBuf,
    roll_at: u64,
    rolls: usize,
    /// The collector's state folder: before a roll, wait until it has read the previous `.lo_`
    /// (ConfigMgr keeps one; a second roll before it was read loses it by design, which is not
    /// what these tests count).
    state: PathBuf,
}

impl Writer {
    fn log(&self) -> PathBuf {
        self.dir.join("WsyncMgr.log")
    }

    fn write(&mut self, n: usize) {
        let text = line(n);
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(self.log()).unwrap();
        if n % 7 == 0 {
            let cut = text.len() / 3;
            f.write_all(&text.as_bytes()[..cut]).unwrap();
            f.flush().unwrap();
            std::thread::sleep(Duration::from_micros(300));
            f.write_all(&text.as_bytes()[cut..]).unwrap();
        } else {
            f.write_all(text.as_bytes()).unwrap();
        }
        drop(f);
        if std::fs::metadata(self.log()).unwrap().len() >= self.roll_at {
            self.roll();
        }
    }

    fn roll(&mut self) {
        let (log, lo_) = (self.log(), self.dir.join("WsyncMgr.lo_"));
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Ok(meta) = std::fs::metadata(&lo_) {
            if checkpoint_offset(&self.state, &lo_) >= meta.len() || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.rolls % 2 == 0 {
            std::fs::rename(&log, &lo_).unwrap();
        } else {
            std::fs::copy(&log, &lo_).unwrap();
            std::fs::OpenOptions::new().write(true).open(&log).unwrap().set_len(0).unwrap();
        }
        self.rolls += 1;
    }
}

/// How often each record number arrived in the topic.
fn arrivals(brokers: &str, topic: &str) -> BTreeMap<usize, usize> {
    let mut counts = BTreeMap::new();
    for payload in topic_payloads(brokers, topic) {
        if let Some(at) = payload.find("rec-") {
            if let Ok(n) = payload[at + 4..at + 10].parse::<usize>() {
                *counts.entry(n).or_default() += 1;
            }
        }
    }
    counts
}

/// (lost, duplicated) of records 0..total.
fn tally(counts: &BTreeMap<usize, usize>, total: usize) -> (Vec<usize>, usize) {
    let lost = (0..total).filter(|n| !counts.contains_key(n)).collect();
    let duplicated = counts.values().map(|c| c - 1).sum();
    (lost, duplicated)
}

fn collector_config(world: &World, brokers: &str, extra_collect: &str) -> PathBuf {
    let logs = world.dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let path = world.dir.path().join("collector.toml");
    let text = format!(
        r#"hierarchy = "{name}"
[collect]
paths = ["{logs}/*.log", "{logs}/*.lo_"]
state_dir = "{state}"
start_at = "beginning"
site = "CS1"
{extra_collect}
[kafka]
brokers = "{brokers}"
topic = "{name}.records"
partitions = 1
[kafka.properties]
"message.timeout.ms" = "10000"
"#,
        name = world.name,
        logs = logs.display(),
        state = world.dir.path().join("state").display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// SIGTERM and the time until the process exited (it must exit cleanly).
fn stop_timed(collector: Proc) -> Duration {
    let started = Instant::now();
    collector.stop();
    started.elapsed()
}

fn wait_all_arrived(brokers: &str, topic: &str, total: usize, context: impl Fn() -> String) {
    wait_for(
        Duration::from_secs(120),
        || (arrivals(brokers, topic).len() >= total).then_some(()),
        || {
            let (lost, _) = tally(&arrivals(brokers, topic), total);
            format!(
                "{} of {total} arrived, missing {:?}\n{}",
                total - lost.len(),
                &lost[..lost.len().min(40)],
                context()
            )
        },
    );
}

#[test]
#[ignore = "needs the real servers: deploy/local/stack up (run by .ci/run)"]
fn twenty_five_kills_during_fast_writes_and_both_kinds_of_rollover_lose_nothing() {
    let world = World::new("collector_kills");
    let brokers = kafka_brokers();
    // Small reads, so that a kill lands between checkpoints and the bound below means something.
    let max_read = 16_384;
    let config =
        collector_config(&world, &brokers, &format!("max_read_bytes = {max_read}\npoll_interval_ms = 50"));
    let topic = format!("{}.records", world.name);
    let total = 20_000;
    let mut writer = Writer {
        dir: world.dir.path().join("logs"),
        roll_at: 250_000,
        rolls: 0,
        state: world.dir.path().join("state"),
    };
    let done = Arc::new(AtomicBool::new(false));
    let writing = {
        let done = done.clone();
        std::thread::spawn(move || {
            // About 2,000 lines (400 KB) a second: a roll every 0.6 s.
            let started = Instant::now();
            for n in 0..total {
                writer.write(n);
                let due = started + Duration::from_micros(500 * n as u64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            done.store(true, Ordering::SeqCst);
            writer.rolls
        })
    };
    let mut kills = 0;
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut collector = Proc::start("collect", &config);
    while kills < 25 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(150 + rng % 300));
        collector.kill9();
        kills += 1;
        collector = Proc::start("collect", &config);
    }
    let rolls = writing.join().unwrap();
    assert!(done.load(Ordering::SeqCst));
    wait_all_arrived(&brokers, &topic, total, || collector.output());
    std::thread::sleep(Duration::from_secs(1));
    let stop = stop_timed(collector);
    let counts = arrivals(&brokers, &topic);
    let (lost, duplicated) = tally(&counts, total);
    // In flight at a kill: one read chunk (spooled, not yet checkpointed) and one drain batch
    // (sent, not yet acknowledged), each about `max_read` bytes of lines.
    let per_kill = 2 * (max_read / line(0).len() + 1);
    eprintln!(
        "{total} records, {rolls} rolls, {kills} kills: {} lost, {duplicated} duplicated (bound {}), stop took {stop:?}",
        lost.len(),
        kills * per_kill
    );
    assert!(lost.is_empty(), "lost {} records, first {:?}", lost.len(), &lost[..lost.len().min(10)]);
    assert!(rolls >= 12, "the writer rolled only {rolls} times");
    assert!(duplicated <= kills * per_kill, "{duplicated} duplicates after {kills} kills");
    assert!(stop < Duration::from_secs(2), "SIGTERM took {stop:?}");
}

#[test]
#[ignore = "needs the real servers: deploy/local/stack up (run by .ci/run)"]
fn kafka_down_while_the_log_rolls_three_times_loses_nothing() {
    let world = World::new("collector_outage");
    let mut kafka = PrivateKafka::start(&world.dir.path().join("kafka"));
    let brokers = kafka.brokers();
    let config = collector_config(&world, &brokers, "poll_interval_ms = 100");
    let topic = format!("{}.records", world.name);
    let mut writer = Writer {
        dir: world.dir.path().join("logs"),
        roll_at: 250_000,
        rolls: 0,
        state: world.dir.path().join("state"),
    };
    let collector = Proc::start("collect", &config);
    let first = 1_000;
    for n in 0..first {
        writer.write(n);
    }
    wait_all_arrived(&brokers, &topic, first, || collector.output());

    kafka.stop();
    let total = 7_000;
    for n in first..total {
        writer.write(n);
        if n % 100 == 0 {
            // Still far faster than ConfigMgr (a roll every 2.5 s), slow enough that no roll
            // overwrites a .lo_ the collector has not read yet.
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    assert!(writer.rolls >= 3, "the log rolled {} times while Kafka was down", writer.rolls);
    std::thread::sleep(Duration::from_secs(2));
    kafka.resume();
    wait_all_arrived(&brokers, &topic, total, || collector.output());
    std::thread::sleep(Duration::from_secs(1));
    let stop = stop_timed(collector);
    let (lost, duplicated) = tally(&arrivals(&brokers, &topic), total);
    eprintln!(
        "Kafka down for records {first}..{total} and {} rolls: {} lost, {duplicated} duplicated, stop took {stop:?}",
        writer.rolls,
        lost.len()
    );
    assert!(lost.is_empty(), "lost {} records, first {:?}", lost.len(), &lost[..lost.len().min(10)]);
    assert!(stop < Duration::from_secs(2), "SIGTERM took {stop:?}");
}

#[test]
#[ignore = "needs the real servers: deploy/local/stack up (run by .ci/run)"]
fn a_full_spool_stops_reading_and_it_resumes_with_nothing_lost() {
    let world = World::new("collector_spool");
    let mut kafka = PrivateKafka::start(&world.dir.path().join("kafka"));
    let brokers = kafka.brokers();
    let metrics_port = free_port_pair(18_600);
    let config = collector_config(
        &world,
        &brokers,
        &format!(
            "max_read_bytes = 65536\nspool_max_bytes = 1048576\npoll_interval_ms = 100\nmetrics_address = \"127.0.0.1:{metrics_port}\""
        ),
    );
    let metrics = || scrape_metrics(metrics_port);
    let topic = format!("{}.records", world.name);
    kafka.stop();
    let collector = Proc::start("collect", &config);
    // 10,000 lines, about 4 MB of bundled records: far more than the 1 MiB spool. No roll: the log keeps
    // what the spool cannot take.
    let mut writer = Writer {
        dir: world.dir.path().join("logs"),
        roll_at: u64::MAX,
        rolls: 0,
        state: world.dir.path().join("state"),
    };
    let total = 10_000;
    for n in 0..total {
        writer.write(n);
    }
    wait_for(
        Duration::from_secs(60),
        || collector.output().contains("spool full: reading stopped").then_some(()),
        || collector.output(),
    );
    let spool_bytes = dir_size(&world.dir.path().join("state/spool"));
    assert!(spool_bytes <= 1_200_000, "the spool grew to {spool_bytes} bytes");
    let full = metrics();
    assert!(full.contains("\nstatmsg_collect_spool_full 1\n"), "{full}");
    assert!(full.contains("\nstatmsg_collect_files_watched 1\n"), "{full}");
    assert!(full.contains("\nstatmsg_collect_messages_acknowledged_total 0\n"), "{full}");
    kafka.resume();
    wait_all_arrived(&brokers, &topic, total, || collector.output());
    assert!(collector.output().contains("spool has room again: reading resumed"), "{}", collector.output());
    let acknowledged =
        format!("\nstatmsg_collect_messages_acknowledged_total {}\n", topic_messages(&brokers, &topic));
    let after =
        wait_for(Duration::from_secs(10), || Some(metrics()).filter(|m| m.contains(&acknowledged)), metrics);
    assert!(after.contains("\nstatmsg_collect_spool_full 0\n"), "{after}");
    assert!(after.contains("\nstatmsg_collect_spool_entries 0\n"), "{after}");
    let stop = stop_timed(collector);
    let (lost, duplicated) = tally(&arrivals(&brokers, &topic), total);
    eprintln!("spool of 1 MiB, {total} records: {} lost, {duplicated} duplicated, spool at most {spool_bytes} bytes", lost.len());
    assert!(lost.is_empty(), "lost {} records", lost.len());
    assert!(stop < Duration::from_secs(2), "SIGTERM took {stop:?}");
}

#[test]
#[ignore = "needs the real servers: deploy/local/stack up (run by .ci/run)"]
fn with_kafka_unreachable_it_still_reads_and_stops_within_two_seconds() {
    let world = World::new("collector_unreachable");
    // A port nobody listens on.
    let port = free_port_pair(18_800);
    let config = collector_config(&world, &format!("127.0.0.1:{port}"), "poll_interval_ms = 100");
    let mut writer = Writer {
        dir: world.dir.path().join("logs"),
        roll_at: u64::MAX,
        rolls: 0,
        state: world.dir.path().join("state"),
    };
    for n in 0..500 {
        writer.write(n);
    }
    let collector = Proc::start("collect", &config);
    let log = world.dir.path().join("logs/WsyncMgr.log");
    let len = std::fs::metadata(&log).unwrap().len();
    // It reads into the spool although Kafka never answered (the topic check is still pending).
    wait_for(
        Duration::from_secs(20),
        || (checkpoint_offset(&world.dir.path().join("state"), &log) == len).then_some(()),
        || collector.output(),
    );
    let stop = stop_timed(collector);
    eprintln!("Kafka unreachable: read {len} bytes into the spool, stop took {stop:?}");
    assert!(stop < Duration::from_secs(2), "SIGTERM took {stop:?}");
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map_or(0, |d| d.filter_map(Result::ok).filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
}
