use std::collections::VecDeque;

use proptest::prelude::*;

use super::*;

fn entries(from: usize, n: usize, size: usize) -> Vec<(String, Vec<u8>)> {
    (from..from + n)
        .map(|i| (format!("h/S{}", i % 3), format!("{i:08}{}", "x".repeat(size)).into_bytes()))
        .collect()
}

/// Everything unacknowledged, read in batches of `batch` entries.
fn drain(spool: &Spool, batch: usize) -> (Vec<Entry>, Cursor) {
    let mut out = Vec::new();
    let mut at = spool.acknowledged();
    loop {
        let b = spool.read(at, batch, u64::MAX).unwrap();
        assert_eq!(b.damaged_bytes, 0);
        if b.entries.is_empty() {
            return (out, b.end);
        }
        out.extend(b.entries);
        at = b.end;
    }
}

fn as_pairs(entries: &[Entry]) -> Vec<(String, Vec<u8>)> {
    entries.iter().map(|e| (e.key.clone(), e.payload.clone())).collect()
}

#[test]
fn entries_come_out_in_order_across_segments_and_leave_only_when_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), 4 << 20).unwrap();
    let written = entries(0, 2000, 300);
    for chunk in written.chunks(100) {
        spool.append(chunk).unwrap();
    }
    assert!(spool.segments.len() > 2, "{:?}", spool.segments);
    let (read, end) = drain(&spool, 77);
    assert_eq!(as_pairs(&read), written);
    // Nothing acknowledged: a reopened spool has it all again.
    drop(spool);
    let mut spool = Spool::open(dir.path(), 4 << 20).unwrap();
    assert_eq!(as_pairs(&drain(&spool, 1000).0), written);
    spool.acknowledge(end).unwrap();
    assert!(spool.is_empty());
    assert_eq!(spool.segments.len(), 1, "passed segments are deleted");
    drop(spool);
    let spool = Spool::open(dir.path(), 4 << 20).unwrap();
    assert!(drain(&spool, 10).0.is_empty());
}

#[test]
fn a_partly_acknowledged_spool_resumes_after_the_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    let written = entries(0, 50, 10);
    spool.append(&written).unwrap();
    let first = spool.read(spool.acknowledged(), 20, u64::MAX).unwrap();
    spool.acknowledge(first.end).unwrap();
    drop(spool);
    let spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(as_pairs(&drain(&spool, 7).0), written[20..]);
}

#[test]
fn a_frame_torn_by_a_crash_is_cut_and_the_rest_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    let written = entries(0, 10, 40);
    spool.append(&written).unwrap();
    let segment = segment_path(dir.path(), *spool.segments.last().unwrap());
    drop(spool);
    // Half of the next frame made it to disk before the power went.
    let next = entries(10, 1, 40);
    let mut torn = Vec::new();
    let body_len = 2 + next[0].0.len() + next[0].1.len();
    torn.extend_from_slice(&(body_len as u32).to_le_bytes());
    torn.extend_from_slice(&[1, 2, 3, 4, 0, 4, b'h']);
    std::fs::OpenOptions::new().append(true).open(&segment).unwrap().write_all(&torn).unwrap();
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(as_pairs(&drain(&spool, 100).0), written);
    spool.append(&next).unwrap();
    let mut all = written.clone();
    all.extend(next);
    assert_eq!(as_pairs(&drain(&spool, 100).0), all);
}

#[test]
fn a_full_spool_refuses_whole_batches_until_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), 100_000).unwrap();
    let mut n = 0;
    let full = loop {
        match spool.append(&entries(n, 10, 1000)) {
            Ok(()) => n += 10,
            Err(e) => break e,
        }
    };
    assert!(matches!(full, SpoolError::Full { .. }), "{full}");
    assert!(spool.used_bytes() <= 100_000);
    let before = drain(&spool, 1000).0;
    assert_eq!(before.len(), n, "a refused batch wrote nothing");
    let first = spool.read(spool.acknowledged(), 30, u64::MAX).unwrap();
    spool.acknowledge(first.end).unwrap();
    spool.append(&entries(n, 10, 1000)).unwrap();
    assert_eq!(drain(&spool, 1000).0.len(), n - 30 + 10);
}

#[test]
fn an_empty_spool_takes_a_batch_larger_than_itself() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), 1000).unwrap();
    let big = entries(0, 3, 3 << 20); // frames larger than one read window
    spool.append(&big).unwrap();
    assert!(matches!(spool.append(&entries(3, 1, 1)), Err(SpoolError::Full { .. })));
    let (read, _) = drain(&spool, 1);
    assert_eq!(as_pairs(&read), big);
}

#[test]
fn damage_inside_a_segment_is_skipped_and_counted_not_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    spool.append(&entries(0, 10, 40)).unwrap();
    let segment = segment_path(dir.path(), spool.segments[0]);
    let mut bytes = std::fs::read(&segment).unwrap();
    let frame = bytes.len() / 10;
    bytes[frame * 5 + 20] ^= 0xFF; // inside the sixth frame's body
    std::fs::write(&segment, &bytes).unwrap();
    let batch = spool.read(spool.acknowledged(), 100, u64::MAX).unwrap();
    assert_eq!(batch.entries.len(), 5);
    assert_eq!(batch.damaged_bytes, (bytes.len() - frame * 5) as u64);
}

#[derive(Debug, Clone)]
enum Op {
    Append(usize),
    /// Read up to n entries and acknowledge them.
    Deliver(usize),
    /// Read up to n entries, "send" them, and crash before acknowledging.
    SendThenCrash(usize),
    /// Crash while appending: part of a frame reaches the disk.
    TornAppend(usize),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1usize..40).prop_map(Op::Append),
        (1usize..60).prop_map(Op::Deliver),
        (1usize..60).prop_map(Op::SendThenCrash),
        (1usize..30).prop_map(Op::TornAppend),
        Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever the sequence of appends, deliveries and crashes: what the spool holds is exactly
    /// what was appended and not acknowledged, in order (nothing lost, nothing delivered twice
    /// after an acknowledgement).
    #[test]
    fn the_spool_holds_exactly_the_unacknowledged_entries(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let max = 200_000;
        let mut spool = Spool::open(dir.path(), max).unwrap();
        let mut model: VecDeque<(String, Vec<u8>)> = VecDeque::new();
        let mut n = 0;
        for op in ops {
            match op {
                Op::Append(k) => {
                    let batch = entries(n, k, 200);
                    match spool.append(&batch) {
                        Ok(()) => { model.extend(batch); n += k; }
                        Err(SpoolError::Full { .. }) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                Op::Deliver(k) => {
                    let b = spool.read(spool.acknowledged(), k, u64::MAX).unwrap();
                    let expected: Vec<_> = model.iter().take(k).cloned().collect();
                    prop_assert_eq!(as_pairs(&b.entries), expected);
                    spool.acknowledge(b.end).unwrap();
                    for _ in 0..b.entries.len() { model.pop_front(); }
                }
                Op::SendThenCrash(k) => {
                    let _ = spool.read(spool.acknowledged(), k, u64::MAX).unwrap();
                    drop(spool);
                    spool = Spool::open(dir.path(), max).unwrap();
                }
                Op::TornAppend(cut) => {
                    let last = spool.segments.last().copied();
                    drop(spool);
                    if let Some(last) = last {
                        let mut f = std::fs::OpenOptions::new().append(true).open(segment_path(dir.path(), last)).unwrap();
                        f.write_all(&vec![7u8; cut]).unwrap();
                    }
                    spool = Spool::open(dir.path(), max).unwrap();
                }
                Op::Reopen => {
                    drop(spool);
                    spool = Spool::open(dir.path(), max).unwrap();
                }
            }
            prop_assert!(spool.used_bytes() <= max);
        }
        let (all, _) = drain(&spool, 13);
        prop_assert_eq!(as_pairs(&all), model.into_iter().collect::<Vec<_>>());
    }
}

#[test]
fn a_failed_append_leaves_nothing_of_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
    let first = entries(0, 5, 40);
    spool.append(&first).unwrap();
    // What a write that failed half-way leaves: part of a frame after the recorded length.
    let segment = segment_path(dir.path(), *spool.segments.last().unwrap());
    std::fs::OpenOptions::new().append(true).open(&segment).unwrap().write_all(&[9; 30]).unwrap();
    spool.writer = None;
    spool.tail_unsure = true;
    let second = entries(5, 5, 40);
    spool.append(&second).unwrap();
    assert_eq!(spool.segments.len(), 2, "an unsure tail is never written after");
    let batch = spool.read(spool.acknowledged(), 100, u64::MAX).unwrap();
    let mut all = first;
    all.extend(second);
    assert_eq!(as_pairs(&batch.entries), all);
}
