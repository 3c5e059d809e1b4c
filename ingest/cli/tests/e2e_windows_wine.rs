//! The Windows build (`x86_64-pc-windows-gnu`), run under Wine against the real Kafka of the
//! local stack. Wine is not Windows: what this checks is what Wine emulates faithfully (file
//! sharing modes and `MoveFileExW` between Windows processes, the registry, the service control
//! manager); `deploy/windows/README.md` says what was checked only on paper.
//!
//! - The collector (`statmsg.exe collect`) follows `WsyncMgr.log` while a Windows writer
//!   (`examples/win_roll_writer.rs`) appends to it and rolls it with `MoveFileExW` 14 times, each
//!   roll made while a handle opened the collector's way is held: every roll succeeds and every
//!   record reaches Kafka exactly once.
//! - Through a SASL_SSL listener (SCRAM-SHA-512, a CA made at test time): the Windows build's
//!   librdkafka has TLS (OpenSSL built for the target).
//! - As a service (`statmsg.exe service install/start/stop/uninstall`) with a configuration that
//!   leaves `paths` and `site` empty: the log folder and the site code come from the ConfigMgr
//!   registry keys, the records reach Kafka, the stop saves the checkpoint, the service logs to
//!   its rolling file.
//!
//! Needs the Windows build: `.ci/run` builds it and sets `STATMSG_WINDOWS_BUILD` (the target's
//! `debug` folder, with `bcryptprimitives.dll` beside the programs; `deploy/windows/wine/`).

#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

const WINE: &str = "/usr/lib/wine/wine64";
const RECORDS: usize = 20_000;
const ROLL_BYTES: u64 = 250_000;

/// One Wine prefix (a Windows installation of its own) for the whole test, and the build.
struct Wine {
    prefix: PathBuf,
    build: PathBuf,
}

impl Wine {
    fn new(dir: &Path) -> Wine {
        let build = std::env::var_os("STATMSG_WINDOWS_BUILD").map(PathBuf::from).expect(
            "STATMSG_WINDOWS_BUILD is not set: this test runs the Windows build under Wine; .ci/run builds it \
             (see deploy/windows/README.md)",
        );
        for program in ["statmsg.exe", "examples/win_roll_writer.exe", "bcryptprimitives.dll"] {
            assert!(build.join(program).exists(), "{} is missing", build.join(program).display());
        }
        Wine { prefix: dir.join("wineprefix"), build }
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(WINE);
        command.arg(self.build.join(program)).env("WINEPREFIX", &self.prefix).env("WINEDEBUG", "-all");
        command
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        self.command(program).args(args).stdin(Stdio::null()).output().unwrap()
    }

    fn spawn(&self, program: &str, args: &[&str], output: &Path) -> Child {
        let file = std::fs::File::create(output).unwrap();
        self.command(program)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap()
    }

    fn reg_add(&self, key: &str, value: &str, data: &str) {
        let mut command = Command::new(WINE);
        let status = command
            .args(["reg", "add", key, "/v", value, "/d", data, "/f"])
            .env("WINEPREFIX", &self.prefix)
            .env("WINEDEBUG", "-all")
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "wine reg add {key} {value}");
    }
}

impl Drop for Wine {
    fn drop(&mut self) {
        let _ = Command::new("wineserver").arg("-k").env("WINEPREFIX", &self.prefix).status();
    }
}

/// The same path as Wine's `Z:` drive sees it.
fn z(path: &Path) -> String {
    format!("Z:{}", path.display())
}

/// How often each `rec-NNNNNN` is in the topic.
fn delivered(topic: &str) -> BTreeMap<usize, usize> {
    delivered_from(&kafka_brokers(), topic)
}

fn delivered_from(brokers: &str, topic: &str) -> BTreeMap<usize, usize> {
    let mut seen = BTreeMap::new();
    for payload in topic_payloads(brokers, topic) {
        let v: serde_json::Value = serde_json::from_str(&payload).unwrap();
        let text = v["record"]["text"].as_str().unwrap_or_default();
        if let Some(n) = text.strip_prefix("rec-").and_then(|t| t.get(..6)).and_then(|n| n.parse().ok()) {
            *seen.entry(n).or_insert(0) += 1;
        }
    }
    seen
}

/// A configuration; `state` is its `state_dir` (relative: to the configuration's folder when run
/// as the service).
fn config(dir: &Path, name: &str, collect: &str, state: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        "hierarchy = \"wine\"\n[collect]\n{collect}\nstate_dir = \"{state}\"\nstart_at = \"beginning\"\n\
         poll_interval_ms = 100\n[kafka]\nbrokers = \"{brokers}\"\ntopic = \"{name}.records\"\n",
        brokers = kafka_brokers(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
#[ignore = "needs the Windows build, Wine and the local stack (.ci/run)"]
fn under_wine_the_windows_collector_loses_nothing_across_movefileexw_rolls_and_runs_as_a_service() {
    let world = World::new("wine");
    let wine = Wine::new(world.dir.path());
    let version = wine.run("statmsg.exe", &["--version"]);
    assert!(version.status.success(), "statmsg.exe --version: {}", String::from_utf8_lossy(&version.stderr));

    collector_follows_movefileexw_rolls(&wine, &world);
    collector_delivers_through_sasl_ssl(&wine, &world);
    service_with_the_registrys_paths_and_site(&wine, &world);
}

/// The Windows build's librdkafka has TLS (OpenSSL built for the target) and SCRAM: it delivers
/// through a SASL_SSL listener, trusting a CA made at test time, with the password from a file.
fn collector_delivers_through_sasl_ssl(wine: &Wine, world: &World) {
    const RECORDS: usize = 300;
    let dir = world.dir.path().join("tls");
    let ca = TestCa::new(&dir.join("ca"), "statmsg test CA");
    let certificate = ca.issue("kafka");
    let password = "correct horse battery staple";
    let kafka = PrivateKafka::start_with(
        &dir.join("kafka"),
        Some(SaslSsl { user: "statmsg", password, certificate: &certificate }),
    );
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let lines: String = (0..RECORDS)
        .map(|n| format!("rec-{n:06} through TLS  $$<SMS_WSUS_SYNC_MANAGER><03-01-2025 08:00:00.000-60><thread=1 (0x1)>\r\n"))
        .collect();
    std::fs::write(logs.join("WsyncMgr.log"), lines).unwrap();
    let password_file = dir.join("kafka.password");
    std::fs::write(&password_file, format!("{password}\r\n")).unwrap();
    let name = format!("{}-tls", world.name);
    let path = dir.join("statmsg.toml");
    std::fs::write(
        &path,
        format!(
            "hierarchy = \"wine\"\n[collect]\npaths = [\"{logs}/WsyncMgr.log\"]\nsite = \"WN2\"\nstate_dir = \"{state}\"\n\
             start_at = \"beginning\"\n[kafka]\nbrokers = \"{brokers}\"\ntopic = \"{name}.records\"\n\
             [kafka.properties]\n\"security.protocol\" = \"sasl_ssl\"\n\"sasl.mechanisms\" = \"SCRAM-SHA-512\"\n\
             \"sasl.username\" = \"statmsg\"\n\"ssl.ca.location\" = \"{ca}\"\n\
             [kafka.secret_files]\n\"sasl.password\" = \"{password_file}\"\n",
            logs = z(&logs),
            state = z(&dir.join("state")),
            brokers = kafka.secure_brokers(),
            ca = z(&ca.cert),
            password_file = z(&password_file),
        ),
    )
    .unwrap();
    let output = dir.join("collector.out");
    let mut collector = wine.spawn("statmsg.exe", &["collect", "--config", &z(&path)], &output);
    let topic = format!("{name}.records");
    let seen = wait_for(
        Duration::from_secs(90),
        || {
            let seen = delivered_from(&kafka.brokers(), &topic);
            (seen.len() == RECORDS).then_some(seen)
        },
        || {
            format!(
                "not delivered through SASL_SSL:\n{}",
                std::fs::read_to_string(&output).unwrap_or_default()
            )
        },
    );
    let _ = collector.kill();
    let _ = collector.wait();
    assert!(seen.values().all(|&c| c == 1), "no kill, no duplicate");
    eprintln!(
        "under Wine: {RECORDS} records through SASL_SSL (SCRAM-SHA-512, a private CA), 0 lost, 0 duplicated"
    );
}

fn collector_follows_movefileexw_rolls(wine: &Wine, world: &World) {
    let dir = world.dir.path();
    let logs = dir.join("logs");
    let handshake = dir.join("handshake");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::create_dir_all(&handshake).unwrap();
    let name = format!("{}-rolls", world.name);
    let state = z(&dir.join(format!("{name}-state")));
    let config =
        config(dir, &name, &format!("paths = [\"{}/WsyncMgr.lo[g_]\"]\nsite = \"WN1\"", z(&logs)), &state);
    let topic = format!("{name}.records");

    let collector_log = dir.join("collector.out");
    let mut collector = wine.spawn("statmsg.exe", &["collect", "--config", &z(&config)], &collector_log);
    let started = Instant::now();
    let writer_log = dir.join("writer.out");
    let mut writer = wine.spawn(
        "examples/win_roll_writer.exe",
        &[&z(&logs), &RECORDS.to_string(), &ROLL_BYTES.to_string(), &z(&handshake)],
        &writer_log,
    );
    let context = || {
        format!(
            "writer:\n{}\ncollector:\n{}",
            std::fs::read_to_string(&writer_log).unwrap_or_default(),
            std::fs::read_to_string(&collector_log).unwrap_or_default()
        )
    };

    // Let roll k+1 happen once what roll k rolled away is in Kafka (ConfigMgr keeps one .lo_).
    let mut roll = 1;
    loop {
        if let Some(status) = writer.try_wait().unwrap() {
            assert!(status.success(), "the writer failed ({status}):\n{}", context());
            break;
        }
        let rolled = handshake.join(format!("rolled-{roll}"));
        // Created before its number is written: an empty file is not there yet.
        let Some(before) = std::fs::read_to_string(&rolled).ok().and_then(|t| t.trim().parse::<usize>().ok())
        else {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        wait_for(
            Duration::from_secs(90),
            || (delivered(&topic).range(..before).count() == before).then_some(()),
            || format!("records before roll {roll} did not reach Kafka\n{}", context()),
        );
        std::fs::write(handshake.join(format!("go-{roll}")), "").unwrap();
        roll += 1;
    }
    let seen = wait_for(
        Duration::from_secs(90),
        || {
            let seen = delivered(&topic);
            (seen.len() == RECORDS).then_some(seen)
        },
        || format!("not every record reached Kafka\n{}", context()),
    );
    let elapsed = started.elapsed();
    let lost = (0..RECORDS).filter(|n| !seen.contains_key(n)).count();
    let duplicates: usize = seen.values().map(|c| c - 1).sum();
    let writer_said = std::fs::read_to_string(&writer_log).unwrap();
    eprintln!(
        "under Wine: {RECORDS} records, {} rolls by MoveFileExW, {lost} lost, {duplicates} duplicated, {:.1} s; writer: {}",
        roll - 1,
        elapsed.as_secs_f64(),
        writer_said.trim()
    );
    assert_eq!((lost, duplicates), (0, 0), "{}", context());
    assert!(roll > 10, "only {} rolls", roll - 1);
    let _ = collector.kill();
    let _ = collector.wait();
}

fn service_with_the_registrys_paths_and_site(wine: &Wine, world: &World) {
    let dir = world.dir.path();
    // A site server's log folder, as the registry names it (lower case, as ConfigMgr writes it).
    let logs = dir.join("Configuration Manager").join("Logs");
    std::fs::create_dir_all(&logs).unwrap();
    let lines: String = (0..500).map(|n| format!("rec-{n:06} service record  $$<SMS_WSUS_SYNC_MANAGER><03-01-2025 08:00:00.000-60><thread=1 (0x1)>\r\n")).collect();
    std::fs::write(logs.join("wsyncmgr.log"), &lines).unwrap();
    let trace_file = format!("{}\\wsyncmgr.log", z(&logs).replace('/', "\\"));
    wine.reg_add(r"HKLM\SOFTWARE\Microsoft\SMS\Identification", "Site Code", "WN9");
    wine.reg_add(r"HKLM\SOFTWARE\Microsoft\SMS\Tracing\SMS_WSUS_SYNC_MANAGER", "TraceFilename", &trace_file);

    // Wine ends its service manager, and the services, once no other program runs in the
    // prefix (Windows does not): a program waiting on its input keeps it alive meanwhile.
    let mut keep_alive = Command::new(WINE)
        .args(["cmd", "/c", "pause"])
        .env("WINEPREFIX", &wine.prefix)
        .env("WINEDEBUG", "-all")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let name = format!("{}-svc", world.name);
    // In a folder of its own: the service logs to `logs\` beside its configuration.
    let service_dir = dir.join("service");
    std::fs::create_dir_all(&service_dir).unwrap();
    // A relative state folder: the service takes it from its configuration's folder.
    let config = config(&service_dir, &name, "", "state");
    let topic = format!("{name}.records");
    let service = name.as_str();
    let service_cmd = |action: &str| {
        let out = wine.run("statmsg.exe", &["service", action, "--name", service]);
        let said =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), said)
    };

    let install =
        wine.run("statmsg.exe", &["service", "install", "--config", &z(&config), "--name", service]);
    let said = String::from_utf8_lossy(&install.stderr).into_owned();
    assert!(install.status.success(), "service install: {said}");
    let (ok, said) = service_cmd("start");
    assert!(ok, "service start: {said}");

    let logs_dir = config.parent().unwrap().join("logs");
    let service_log = || {
        std::fs::read_dir(&logs_dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect::<String>()
    };
    let payloads = wait_for(
        Duration::from_secs(60),
        || {
            let payloads = topic_payloads(&kafka_brokers(), &topic);
            (payloads.len() >= 500).then_some(payloads)
        },
        || format!("the service delivered nothing; its log:\n{}", service_log()),
    );
    let first: serde_json::Value = serde_json::from_str(&payloads[0]).unwrap();
    assert_eq!(first["site"], "WN9", "the site code from the registry");
    assert_eq!(payloads.len(), 500);
    // Its heartbeat, for the site the registry named, describing the files it watches.
    wait_for(
        Duration::from_secs(30),
        || {
            let beats = heartbeat_payloads(&kafka_brokers(), &topic);
            let watching = |b: &serde_json::Value| {
                b["site"] == "WN9" && b["collector"]["files_watched"].as_u64() >= Some(1)
            };
            beats.iter().any(watching).then_some(())
        },
        || {
            format!(
                "no heartbeat of WN9 watching its log: {:?}",
                heartbeat_payloads(&kafka_brokers(), &topic)
            )
        },
    );

    let stopping = Instant::now();
    let (ok, said) = service_cmd("stop");
    let stop_took = stopping.elapsed();
    assert!(ok, "service stop: {said}\n{}", service_log());
    // The stop command's own start under Wine included; the collector itself stops within 2 s.
    assert!(stop_took < Duration::from_secs(5), "service stop took {stop_took:?}");
    let state = service_dir.join("state");
    let checkpoints = std::fs::read_to_string(state.join("checkpoints.json")).unwrap_or_default();
    let saved: serde_json::Value = serde_json::from_str(&checkpoints).unwrap_or_default();
    let offsets: Vec<u64> =
        saved["followed"].as_array().into_iter().flatten().filter_map(|f| f["offset"].as_u64()).collect();
    assert_eq!(offsets, [lines.len() as u64], "checkpoint after stop: {checkpoints}");
    let log = service_log();
    assert!(log.contains("running as a Windows service"), "service log: {log}");
    assert!(log.contains("from the registry: collect.site: WN9"), "service log: {log}");

    let (ok, said) = service_cmd("uninstall");
    assert!(ok, "service uninstall: {said}");
    let (ok, _) = service_cmd("start");
    assert!(!ok, "the service is gone after uninstall");
    let _ = keep_alive.kill();
    let _ = keep_alive.wait();
    eprintln!(
        "under Wine: service install, start (registry paths and site), stop in {:.2} s (checkpoint saved), uninstall: ok",
        stop_took.as_secs_f64()
    );
}
