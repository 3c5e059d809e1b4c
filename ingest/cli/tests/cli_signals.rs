//! Stopping by signal when nobody reads the log any more (a pipe into `head` or `grep -m1`, a
//! closed console): the log line "shutdown requested" cannot be written, and the process must
//! still stop. It did not: the logger complained on the closed stderr, that panicked the signal
//! task, and the stop never came. No servers needed: the collector spools while Kafka is away.

#![cfg(unix)]
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn sigterm_stops_the_collector_whose_stderr_was_closed() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(logs.join("WsyncMgr.log"), "").unwrap();
    let config = dir.path().join("collect.toml");
    std::fs::write(
        &config,
        format!(
            "hierarchy = \"h\"\n[collect]\npaths = [\"{}/*.log\"]\nstate_dir = \"{}\"\nsite = \"CS1\"\n\
             [kafka]\nbrokers = \"127.0.0.1:1\"\ntopic = \"unused\"\n",
            logs.display(),
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_statmsg"))
        .args(["collect", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read until the collector is running, then stop reading for good.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 && !line.contains("watching") && !line.contains("collect")
    {
        line.clear();
    }
    drop(stderr);
    std::thread::sleep(Duration::from_millis(500));
    let signalled = Instant::now();
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "the collector ended with {status}");
            break;
        }
        if signalled.elapsed() > Duration::from_secs(10) {
            child.kill().unwrap();
            panic!("SIGTERM did not stop the collector within 10 s (its stderr closed)");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
