use super::*;

fn id(index: u64) -> FileId {
    FileId { device: 1, index }
}

fn seen(path: &str, index: u64, content: &str) -> Seen {
    let head = content.as_bytes()[..content.len().min(Fingerprint::MAX_LEN)].to_vec();
    Seen { path: path.into(), id: id(index), len: content.len() as u64, modified: None, head }
}

/// Plans `files` and then marks every file as read to its end.
fn scan(follower: &mut Follower, files: &[Seen]) -> Plan {
    let plan = follower.plan(files, |_| 0);
    for s in files {
        if follower.get(&s.path, s.id).is_some() {
            follower.advance(&s.path, s.id, s.len, None, &s.head);
        }
    }
    plan
}

fn reads(plan: &Plan) -> Vec<(&str, u64, &Why)> {
    plan.reads.iter().map(|r| (r.path.as_str(), r.start, &r.why)).collect()
}

const OLD: &str = "01-01-2024 00:00:00.001 first generation\nmore\n";
const NEW: &str = "01-01-2024 00:10:00.002 second generation\n";

#[test]
fn a_renamed_file_is_continued_where_it_was_left_then_the_new_one_from_its_start() {
    let mut f = Follower::default();
    scan(&mut f, &[seen("X.log", 1, &OLD[..30])]);
    // Rolled by rename: the old file (same id) grew before the roll and is now X.lo_.
    let plan = scan(&mut f, &[seen("X.lo_", 1, OLD), seen("X.log", 2, NEW)]);
    assert_eq!(
        reads(&plan),
        vec![("X.lo_", 30, &Why::Continued { renamed_from: Some("X.log".into()) }), ("X.log", 0, &Why::New),]
    );
    assert!(plan.gone.is_empty());
}

#[test]
fn a_copy_whose_original_was_truncated_continues_after_what_was_read() {
    let mut f = Follower::default();
    scan(&mut f, &[seen("X.log", 1, &OLD[..30])]);
    // Copy-then-truncate: X.lo_ is a new file with the old content; X.log (same id) starts over.
    let plan = scan(&mut f, &[seen("X.lo_", 7, OLD), seen("X.log", 1, NEW)]);
    assert_eq!(
        reads(&plan),
        vec![("X.lo_", 30, &Why::Copied { from: "X.log".into() }), ("X.log", 0, &Why::Rewritten)]
    );
}

#[test]
fn a_copy_of_a_file_still_intact_is_left_alone_until_the_original_is_truncated() {
    let mut f = Follower::default();
    scan(&mut f, &[seen("X.log", 1, &OLD[..30])]);
    // The copy exists, the original is not truncated yet: read the original only.
    let plan = scan(&mut f, &[seen("X.lo_", 7, OLD), seen("X.log", 1, OLD)]);
    assert_eq!(reads(&plan), vec![("X.log", 30, &Why::Continued { renamed_from: None })]);
    assert_eq!(plan.shadows, vec!["X.lo_".to_owned()]);
    // Truncated: the copy has nothing unread (the original was read to its end), X.log restarts.
    let plan = scan(&mut f, &[seen("X.lo_", 7, OLD), seen("X.log", 1, NEW)]);
    assert_eq!(
        reads(&plan),
        vec![
            ("X.lo_", OLD.len() as u64, &Why::Copied { from: "X.log".into() }),
            ("X.log", 0, &Why::Rewritten)
        ]
    );
}

#[test]
fn a_file_gone_before_it_was_read_to_its_end_is_reported_with_what_was_lost() {
    let mut f = Follower::default();
    f.plan(&[seen("X.log", 1, OLD)], |_| 0);
    f.advance("X.log", id(1), 10, None, OLD.as_bytes());
    // Rolled twice while the collector could not read: the first generation is gone.
    let now = [seen("X.lo_", 2, NEW), seen("X.log", 3, "01-01-2024 00:20:00.003 third\n")];
    let plan = scan(&mut f, &now);
    assert!(plan.gone.is_empty(), "not given up at the first scan that misses it");
    assert!(plan.reads.iter().all(|r| r.start == 0 && r.why == Why::New));
    for _ in 2..SCANS_BEFORE_GONE {
        assert!(scan(&mut f, &now).gone.is_empty());
    }
    let plan = scan(&mut f, &now);
    assert_eq!(plan.gone, vec![Gone { path: "X.log".into(), unread: OLD.len() as u64 - 10 }]);
}

#[test]
fn a_file_missed_by_one_scan_in_the_middle_of_a_roll_is_continued_when_seen_again() {
    let mut f = Follower::default();
    f.plan(&[seen("X.log", 1, OLD)], |_| 0);
    f.advance("X.log", id(1), 10, None, OLD.as_bytes());
    // The listing saw the old X.lo_ and, by the time of the stat, X.log was the new file.
    let plan = scan(&mut f, &[seen("X.log", 2, NEW)]);
    assert_eq!(reads(&plan), vec![("X.log", 0, &Why::New)]);
    let plan = scan(&mut f, &[seen("X.lo_", 1, OLD), seen("X.log", 2, NEW)]);
    assert_eq!(plan.reads[0].start, 10, "{plan:?}");
    assert!(plan.gone.is_empty());
}

#[test]
fn new_files_are_read_oldest_first_and_may_start_at_their_end() {
    let mut f = Follower::default();
    let at = |s: u64| Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s));
    let files = [
        Seen { modified: at(300), ..seen("X.log", 1, NEW) },
        Seen { modified: at(100), ..seen("X-20240101-000000.log", 2, OLD) },
        Seen { modified: at(200), ..seen("X.lo_", 3, "01-01-2024 00:05:00.000 middle\n") },
    ];
    let plan = f.plan(&files, |s| s.len);
    let order: Vec<&str> = plan.reads.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(order, ["X-20240101-000000.log", "X.lo_", "X.log"]);
    assert!(plan.reads.iter().all(|r| r.start > 0), "started at their ends");
}

#[test]
fn a_file_shorter_than_what_was_read_is_a_new_generation() {
    let mut f = Follower::default();
    scan(&mut f, &[seen("X.log", 1, OLD)]);
    // Truncated in place and rewritten with the same first bytes but shorter (cannot be the
    // same content: it would have kept growing).
    let plan = scan(&mut f, &[seen("X.log", 1, &OLD[..20])]);
    assert_eq!(reads(&plan), vec![("X.log", 0, &Why::Rewritten)]);
}

#[test]
fn the_fingerprint_grows_with_the_file() {
    let mut f = Follower::default();
    scan(&mut f, &[seen("X.log", 1, &OLD[..5])]);
    assert_eq!(f.files()[0].fingerprint.len, 5);
    scan(&mut f, &[seen("X.log", 1, OLD)]);
    assert_eq!(f.files()[0].fingerprint.len as usize, OLD.len());
}

#[test]
fn an_empty_new_file_claims_no_copy() {
    let mut f = Follower::default();
    scan(&mut f, &[seen("X.log", 1, "")]);
    // An empty fingerprint matches every file: it may only be followed by its id.
    let plan = scan(&mut f, &[seen("Y.log", 2, OLD)]);
    assert_eq!(reads(&plan), vec![("Y.log", 0, &Why::New)]);
}

#[test]
fn reads_go_oldest_first_even_when_a_freed_inode_comes_back_as_the_new_log() {
    let at = |s: u64| Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s));
    let mut f = Follower::default();
    // An empty X.lo_ (inode 1) and the live X.log (inode 2), half read.
    scan(&mut f, &[Seen { modified: at(10), ..seen("X.lo_", 1, "") }]);
    f.plan(&[seen("X.lo_", 1, ""), seen("X.log", 2, OLD)], |_| 0);
    f.advance("X.log", id(2), 20, None, OLD.as_bytes());
    // Rolled by rename over X.lo_ (inode 1 freed), and the new X.log got inode 1 back.
    let plan = f.plan(
        &[
            Seen { modified: at(200), ..seen("X.log", 1, NEW) },
            Seen { modified: at(100), ..seen("X.lo_", 2, OLD) },
        ],
        |_| 0,
    );
    let order: Vec<(&str, u64)> = plan.reads.iter().map(|r| (r.path.as_str(), r.start)).collect();
    assert_eq!(order, [("X.lo_", 20), ("X.log", 0)]);
}

#[test]
fn a_copy_shorter_than_what_was_read_is_never_read_again_from_its_start() {
    let long = OLD.repeat(60); // longer than a fingerprint
    let mut f = Follower::default();
    f.plan(&[seen("X.log", 1, &long)], |_| 0);
    f.advance("X.log", id(1), 2500, None, long.as_bytes());
    // Caught mid-copy: the copy has 2,000 bytes, the original is intact.
    let plan = f.plan(&[seen("X.lo_", 7, &long[..2000]), seen("X.log", 1, &long)], |_| 0);
    assert_eq!(plan.shadows, vec!["X.lo_".to_owned()]);
    // The original truncated while the copy lacks what was written after it was taken.
    let plan = f.plan(&[seen("X.lo_", 7, &long[..2200]), seen("X.log", 1, NEW)], |_| 0);
    assert_eq!(
        reads(&plan),
        vec![("X.lo_", 2500, &Why::Copied { from: "X.log".into() }), ("X.log", 0, &Why::Rewritten)]
    );
}
