//! The consumer's decode, the CPU it spends per Kafka message before InfluxDB sees a byte: a
//! simulated backlog (20 sites x 60 days of WsyncMgr.log, bundled as a collector bundles it)
//! through `Batch::add_tracked` with a tracker, against a baseline that only walks the same
//! payloads' JSON (`serde_json` into `IgnoredAny`), in the same run. Single thread, in memory.
//!
//! `cargo bench -p statmsg-consume --bench consume`; results in BENCHMARKS.md.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use statmsg_consume::batch::{Batch, KafkaOrigin};
use statmsg_parse::{for_each_record, FileKind};
use statmsg_schema::bundle::{Bundler, FileOrigin};
use statmsg_sim::{SimConfig, Simulation};
use statmsg_track::{Tracker, TrackerConfig};

/// Messages per batch: a backlog's batches are large (the default bound is 50,000 messages).
const BATCH_MESSAGES: usize = 2_000;

/// The backlog's Kafka messages (key, payload), in the order one partition would hold them.
fn backlog() -> Vec<(String, Vec<u8>)> {
    let config = SimConfig { hierarchy: "bench".into(), sites: 20, days: 60, ..SimConfig::default() };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (mut files, _) = Simulation::generate(config).write(dir.path()).expect("the simulated logs");
    files.sort();
    let mut messages = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file).expect("a simulated log");
        let (kind, bom) = FileKind::detect(&bytes[..bytes.len().min(FileKind::DETECT_BYTES)]);
        let path = file.to_string_lossy();
        let site = file.parent().and_then(|p| p.file_name()).map(|s| s.to_string_lossy()).unwrap_or_default();
        let origin = FileOrigin { hierarchy: "bench", host: "cm1", path: &path, file: Some("2049:1835") };
        let mut bundler = Bundler::new(origin);
        for_each_record(kind, &bytes[bom..], bom as u64, |offset, record| {
            bundler.push(&site, offset, record.clone())
        });
        messages.extend(bundler.finish());
    }
    messages
}

fn decode(c: &mut Criterion) {
    let messages = backlog();
    let bytes: usize = messages.iter().map(|(_, payload)| payload.len()).sum();
    let topic: Arc<str> = Arc::from("statmsg.records");
    let mut group = c.benchmark_group(format!("backlog_{}_messages", messages.len()));
    group.throughput(Throughput::Bytes(bytes as u64));
    group.sample_size(10);
    group.bench_function("baseline_json_walk", |b| {
        b.iter(|| {
            for (_, payload) in &messages {
                let walked: serde::de::IgnoredAny = serde_json::from_slice(black_box(payload)).expect("JSON");
                black_box(walked);
            }
        })
    });
    group.bench_function("batch_add_tracked", |b| {
        b.iter(|| {
            let mut tracker = Tracker::new(TrackerConfig::default());
            let mut points = 0;
            for (n, chunk) in messages.chunks(BATCH_MESSAGES).enumerate() {
                let mut batch = Batch::default();
                for (i, (key, payload)) in chunk.iter().enumerate() {
                    let offset = (n * BATCH_MESSAGES + i) as i64;
                    let origin = KafkaOrigin { topic: topic.clone(), partition: 0, offset };
                    batch.add_tracked(origin, Some(key.as_bytes()), Some(payload), Some(&mut tracker));
                }
                batch.add_runs(&tracker.take_runs());
                points += batch.points();
            }
            points
        })
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
