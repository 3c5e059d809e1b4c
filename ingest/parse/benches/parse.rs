//! Parse throughput on a realistic generated WsyncMgr.log (about 100 MB: mostly sync narrative,
//! about one status message per ten records), against baselines that only split the same bytes
//! into lines, in the same run: the SIMD splitter the parser itself uses (`memchr`), and std's
//! plain `split`. Single thread, bytes in memory.
//!
//! `cargo bench -p statmsg-parse --bench parse`; results in BENCHMARKS.md.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use statmsg_parse::stats::Stats;
use statmsg_parse::{for_each_record, FileKind, Lines};

fn log_bytes() -> Vec<u8> {
    let size: usize =
        std::env::var("STATMSG_BENCH_BYTES").ok().and_then(|s| s.parse().ok()).unwrap_or(100_000_000);
    let mut text = String::with_capacity(size + (1 << 20));
    let mut seed = 1;
    while text.len() < size {
        statmsg_parse::synth::wsyncmgr_log((size - text.len()).min(16 << 20), seed, &mut text);
        seed += 1;
    }
    text.into_bytes()
}

fn parse(c: &mut Criterion) {
    let bytes = log_bytes();
    let (kind, bom) = FileKind::detect(&bytes[..FileKind::DETECT_BYTES]);
    let mut group = c.benchmark_group("wsyncmgr_100MB");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.sample_size(10);
    group.bench_function("baseline_split_lines", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for (_, line) in Lines::new(black_box(&bytes[bom..])) {
                n += line.len();
            }
            n
        })
    });
    group.bench_function("baseline_std_split", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for line in black_box(&bytes[bom..]).split(|&b| b == b'\n') {
                n += line.len();
            }
            n
        })
    });
    group.bench_function("parse_records", |b| {
        b.iter(|| {
            let mut stats = Stats::default();
            for_each_record(kind, black_box(&bytes[bom..]), bom as u64, |_, record| stats.add(record));
            stats.records
        })
    });
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
