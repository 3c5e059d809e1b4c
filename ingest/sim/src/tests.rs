use super::*;
use statmsg_parse::stats::Stats;
use statmsg_parse::FileKind;

#[test]
fn the_same_seed_gives_the_same_simulation() {
    let a = Simulation::generate(SimConfig { sites: 4, days: 5, ..SimConfig::default() });
    let b = Simulation::generate(SimConfig { sites: 4, days: 5, ..SimConfig::default() });
    let c = Simulation::generate(SimConfig { sites: 4, days: 5, seed: 2, ..SimConfig::default() });
    assert_eq!(a.lines, b.lines);
    assert_ne!(a.lines, c.lines);
}

#[test]
fn ten_days_hold_every_fault_and_the_hierarchy_has_three_tiers() {
    let sim = Simulation::generate(SimConfig { sites: 7, days: 10, ..SimConfig::default() });
    let kinds: std::collections::BTreeSet<&str> = sim.faults.iter().map(|f| f.kind).collect();
    for kind in ["failure", "lost_notification", "stall", "slow", "near_slow", "manual_full_sync"] {
        assert!(kinds.contains(kind), "{kind} in {kinds:?}");
    }
    let parents: Vec<Option<&str>> = sim.sites.iter().map(|s| s.parent.as_deref()).collect();
    assert_eq!(
        parents,
        vec![None, Some("CAS"), Some("CAS"), Some("P01"), Some("P02"), Some("P01"), Some("P02")]
    );
    let triggers: std::collections::BTreeSet<&str> = sim.runs.iter().map(|r| r.trigger.as_str()).collect();
    assert_eq!(triggers.len(), 4, "schedule, manual, parent, retry: {triggers:?}");
}

#[test]
fn every_written_record_is_understood() {
    let dir = tempfile::tempdir().unwrap();
    let sim =
        Simulation::generate(SimConfig { sites: 5, days: 4, roll_bytes: 8_000, ..SimConfig::default() });
    let (files, bytes) = sim.write(dir.path()).unwrap();
    let history = files.iter().filter(|f| f.to_string_lossy().contains("WsyncMgr-")).count();
    assert!(history >= 5, "rolled into history files: {files:?}");
    let mut stats = Stats::default();
    let mut lines = 0;
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let (kind, bom) = FileKind::detect(&bytes[..bytes.len().min(FileKind::DETECT_BYTES)]);
        statmsg_parse::for_each_record(kind, &bytes[bom..], bom as u64, |_, r| stats.add(r));
    }
    for site in sim.lines.iter().chain([]) {
        lines += site.len() as u64;
    }
    lines += sim.other.iter().map(|o| o.len() as u64).sum::<u64>();
    let logs = files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "log") && !f.to_string_lossy().contains('-'))
        .count();
    let markers = files.len() as u64 - logs as u64;
    assert_eq!(stats.records, lines + markers, "every line is a record, plus one marker per roll");
    assert_eq!(stats.kind("other"), markers, "only the rollover markers lack an event: {stats:?}");
    assert!(bytes > 30_000);
}

#[test]
fn without_history_only_the_last_roll_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        SimConfig { sites: 1, days: 6, roll_bytes: 20_000, keep_history: false, ..SimConfig::default() };
    let (files, _) = Simulation::generate(config).write(dir.path()).unwrap();
    let names: Vec<String> =
        files.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, vec!["WsyncMgr.lo_", "WsyncMgr.log", "SMSProv.log", "smsdbmon.log"]);
}
