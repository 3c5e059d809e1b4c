//! "No heap allocation per record on the server-format hot path", shown rather than claimed: a
//! counting global allocator around parsing a realistic log (narrative lines, status messages,
//! events) counts the allocations made while records are parsed and counted. The one allowed is
//! a status message's box (`Record::statmsg`): one per status message, nothing else.

// A global allocator is the one place this project needs `unsafe`: it only forwards to the
// system allocator and counts.
#![allow(unsafe_code, clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use statmsg_parse::stats::Stats;
use statmsg_parse::{for_each_record, FileKind};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn parsing_server_records_allocates_nothing_per_record_but_a_status_message_box() {
    let mut text = String::new();
    statmsg_parse::synth::wsyncmgr_log(2_000_000, 3, &mut text);
    let bytes = text.into_bytes();
    let (kind, bom) = FileKind::detect(&bytes[..FileKind::DETECT_BYTES]);
    let mut stats = Stats::default();
    let before = allocations();
    for_each_record(kind, &bytes[bom..], bom as u64, |_, record| stats.add(record));
    let during = allocations() - before;
    assert!(stats.records > 8_000, "{}", stats.records);
    assert!(stats.kind("status_message") > 800);
    assert!(stats.event("progress") > 1_000 && stats.event("update_synchronized") > 1_000);
    let boxes = stats.kind("status_message");
    assert_eq!(during, boxes, "{during} allocations for {} records, {boxes} status messages", stats.records);
}

#[test]
fn the_counter_sees_allocations() {
    let before = allocations();
    let v: Vec<u8> = Vec::with_capacity(std::hint::black_box(64));
    drop(v);
    assert_eq!(allocations() - before, 1, "the test above would be meaningless otherwise");
}
