//! `statmsg analyze` as users run it: the binary on the committed sample.

#![allow(clippy::unwrap_used)]

use std::process::Command;

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../samples/fabrikam");

fn analyze(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_statmsg")).arg("analyze").args(args).output().unwrap();
    (out.status.success(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn json_lines_on_the_sample_and_thresholds_from_a_configuration() {
    let (ok, stdout, stderr) = analyze(&["--json", SAMPLE]);
    assert!(ok, "{stderr}");
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kinds: Vec<&str> =
        lines.iter().filter(|l| l["type"] == "alert").map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, vec!["stalled", "missing_success", "child_lag", "missing_success", "missing_success"]);
    assert_eq!(lines.iter().filter(|l| l["type"] == "site").count(), 7);
    assert_eq!(lines.iter().filter(|l| l["type"] == "sync_run").count(), 139);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("statmsg.toml");
    std::fs::write(&config, "[track]\nexpected_interval_hours = 1000.0\n").unwrap();
    let (ok, stdout, stderr) = analyze(&["--json", "--config", config.to_str().unwrap(), SAMPLE]);
    assert!(ok, "{stderr}");
    assert!(!stdout.contains("\"missing_success\""), "the interval is 1000 h now");

    std::fs::write(&config, "[track]\nstall_factor = 0.5\n").unwrap();
    let (ok, _, stderr) = analyze(&["--config", config.to_str().unwrap(), SAMPLE]);
    assert!(!ok && stderr.contains("track.stall_factor"), "{stderr}");
    let (ok, _, stderr) = analyze(&["--now", "yesterday", SAMPLE]);
    assert!(!ok && stderr.contains("RFC 3339"), "{stderr}");
}
