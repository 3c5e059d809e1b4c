use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;

use statmsg_consume::settings::InfluxApi;
use statmsg_plumbing::config::{ConfigError, RawConfig, StartAt};

use super::*;

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn load(text: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let f = file(text);
    let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Settings::validate(RawConfig::load_with_env(Some(f.path()), Some(env))?)
}

#[test]
fn environment_overrides_every_section() {
    let s = load(
        "hierarchy = \"contoso\"\n[kafka]\nbrokers = \"a:1\"\n",
        &[
            ("STATMSG__HIERARCHY", "fabrikam"),
            ("STATMSG__KAFKA__BROKERS", "b:2,c:3"),
            ("STATMSG__KAFKA__PROPERTIES__MESSAGE_TIMEOUT_MS", "5000"),
            ("STATMSG__COLLECT__PATHS", "/logs/a.log,/logs/*.lo_"),
            ("STATMSG__COLLECT__START_AT", "beginning"),
            ("STATMSG__CONSUME__BATCH_MAX_POINTS", "10"),
            ("STATMSG__INFLUXDB__API", "v2"),
            ("STATMSG__INFLUXDB__TOKEN", "secret"),
            ("STATMSG__INFLUXDB__PASSWORD", "007"),
            ("STATMSG__INFLUXDB__DATABASE", "1e3"),
            ("STATMSG__KAFKA__GROUP_ID", "true"),
        ],
    )
    .unwrap();
    assert_eq!(s.collect.hierarchy, "fabrikam");
    assert_eq!(s.collect.kafka.brokers, "b:2,c:3");
    assert_eq!(s.collect.kafka.properties.get("message.timeout.ms").map(String::as_str), Some("5000"));
    assert_eq!(s.collect.collect.paths.len(), 2);
    assert_eq!(s.collect.collect.start_at, StartAt::Beginning);
    assert_eq!(s.consume.consume.batch_max_points, 10);
    assert!(matches!(s.consume.influxdb.api, InfluxApi::V2 { ref token, .. } if token.expose() == "secret"));
    // Values that look like numbers or booleans stay exactly as written.
    assert_eq!(s.collect.kafka.group_id, "true");
    let raw = RawConfig::load_with_env(
        None,
        Some(HashMap::from([
            ("STATMSG__INFLUXDB__PASSWORD".to_owned(), "007".to_owned()),
            ("STATMSG__INFLUXDB__DATABASE".to_owned(), "1e3".to_owned()),
        ])),
    )
    .unwrap();
    assert_eq!((raw.influxdb.password.as_str(), raw.influxdb.database.as_str()), ("007", "1e3"));
}

#[test]
fn errors_name_the_key() {
    let message = |text: &str, env: &[(&str, &str)]| {
        let e = load(text, env).unwrap_err();
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text.push_str(&format!(": {s}"));
            source = s.source();
        }
        text
    };
    assert!(message("[kafka]\nbrokerz = \"x\"\n", &[]).contains("brokerz"));
    assert!(message("[influxdb]\napi = \"v3\"\n", &[]).contains("v3"));
    assert!(message("[collect]\npoll_interval_ms = \"soon\"\n", &[]).contains("poll_interval_ms"));
    assert!(message("", &[("STATMSG__COLLECT__POLL_INTERVAL_MS", "soon")]).contains("poll_interval_ms"));
    assert!(message("", &[("STATMSG__KAFKA__NOPE", "1")]).contains("nope"));
    assert!(message("[kafka]\ntopic = \"bad topic\"\n", &[]).contains("kafka.topic"));
    assert!(message("[influxdb]\nurl = \"ftp://x\"\n", &[]).contains("influxdb.url"));
    assert!(message("hierarchy = \"a\\\\b\"\n", &[]).contains("hierarchy"));
    assert!(message("[influxdb]\ndatabase = \"\"\n", &[]).contains("influxdb.database"));
}

#[test]
fn tracker_thresholds_are_validated_and_overrides_named() {
    let settings = load(
        "[track]\nstall_after_minutes = 90\n[track.expected_interval_hours_for]\n\"contoso/PS2\" = 50.0\n",
        &[],
    )
    .unwrap();
    assert_eq!(settings.consume.track.stall_after, chrono::Duration::minutes(90));
    assert_eq!(settings.consume.track.expected_interval_for("contoso", "PS2"), chrono::Duration::hours(50));
    assert_eq!(settings.consume.track.expected_interval_for("contoso", "PS1"), chrono::Duration::hours(26));
    for (text, key) in [
        ("[track]\nstall_factor = 0.5\n", "track.stall_factor"),
        ("[track]\nexpected_interval_hours = -1.0\n", "track.expected_interval_hours"),
        ("[track.expected_interval_hours_for]\n\"a/b/c\" = 5.0\n", "track.expected_interval_hours_for"),
        ("[consume]\nheartbeat_s = 0\n", "consume.heartbeat_s"),
        ("[consume]\nbatch_max_messages = 0\n", "consume.batch_max_messages"),
        ("[consume]\nmetrics_address = \"localhost:9899\"\n", "consume.metrics_address"),
        ("[kafka]\nstate_topic = \"statmsg.records\"\n", "kafka.state_topic"),
    ] {
        let err = load(text, &[]).unwrap_err().to_string();
        assert!(err.contains(key), "{text}: {err}");
    }
}

/// The configurations shipped in `deploy/` are valid, and say what they promise.
#[test]
fn the_deploy_configurations_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let empty = HashMap::new();
    for file in ["deploy/windows/statmsg.toml", "deploy/linux/statmsg.toml"] {
        let path = root.join(file);
        let raw = RawConfig::load_with_env(Some(&path), Some(empty.clone()))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        Settings::validate(raw.clone()).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_ne!(raw.hierarchy, "default", "{file} names its hierarchy");
    }
    // On a site server, the registry fills what the Windows configuration leaves empty.
    let windows =
        RawConfig::load_with_env(Some(&root.join("deploy/windows/statmsg.toml")), Some(empty)).unwrap();
    assert!(windows.collect.paths.is_empty() && windows.collect.site.is_empty());
    assert!(windows.collect.state_dir.is_relative(), "relative to the configuration's folder");
}

/// Secrets come from files the configuration names, and no `Debug` or `statmsg config` output
/// shows them.
#[test]
fn secrets_are_read_from_files_and_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let kafka_password = dir.path().join("kafka.password");
    let influx_password = dir.path().join("influx.password");
    std::fs::write(&kafka_password, "kafka-s3cret\n").unwrap();
    std::fs::write(&influx_password, "influx-s3cret").unwrap();
    let text = format!(
        "[kafka.properties]\n\"security.protocol\" = \"sasl_ssl\"\n\"sasl.username\" = \"statmsg\"\n\
         \"ssl.key.password\" = \"inline-s3cret\"\n\
         [kafka.secret_files]\n\"sasl.password\" = {kafka:?}\n\
         [influxdb]\nusername = \"statmsg\"\npassword_file = {influx:?}\n",
        kafka = kafka_password.display().to_string(),
        influx = influx_password.display().to_string(),
    );
    let settings = load(&text, &[]).unwrap();
    assert_eq!(settings.collect.kafka.properties["sasl.password"], "kafka-s3cret");
    assert!(
        matches!(&settings.consume.influxdb.api, InfluxApi::V1 { password, .. } if password.expose() == "influx-s3cret")
    );
    let shown = format!("{settings:?}");
    let f = file(&text);
    let raw = RawConfig::load_with_env(Some(f.path()), Some(HashMap::new())).unwrap();
    let printed = toml::to_string_pretty(&raw.redacted()).unwrap();
    for secret in ["kafka-s3cret", "influx-s3cret", "inline-s3cret"] {
        assert!(!shown.contains(secret), "Debug shows {secret}: {shown}");
        assert!(!printed.contains(secret), "statmsg config shows {secret}: {printed}");
    }
    assert!(shown.contains("sasl_ssl") && printed.contains("kafka.password"));

    // Set twice, or from a file that is not there: an error naming the key, never the secret.
    let twice = text.replace("[kafka.properties]\n", "[kafka.properties]\n\"sasl.password\" = \"x\"\n");
    let error = load(&twice, &[]).unwrap_err().to_string();
    assert!(error.contains("kafka.secret_files") && error.contains("one place"), "{error}");
    std::fs::remove_file(&kafka_password).unwrap();
    let error = load(&text, &[]).unwrap_err().to_string();
    assert!(error.contains("kafka.secret_files") && error.contains("kafka.password"), "{error}");
}

#[test]
fn a_ca_file_must_hold_certificates_for_an_https_url() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    let text =
        format!("[influxdb]\nurl = \"https://influx:8086\"\nca_file = {:?}\n", not_pem.display().to_string());
    let error = load(&text, &[]).unwrap_err().to_string();
    assert!(error.contains("influxdb.ca_file"), "{error}");
    let missing = text.replace("ca.pem", "absent.pem");
    assert!(load(&missing, &[]).unwrap_err().to_string().contains("cannot read"));
}

/// librdkafka checks the properties with the configuration, and never repeats a secret.
#[test]
fn kafka_properties_are_checked_without_showing_secrets() {
    let error = load("[kafka.properties]\n\"no.such.property\" = \"x\"\n", &[]).unwrap_err().to_string();
    assert!(error.contains("no.such.property"), "{error}");
    let jaas = "org.apache.kafka.common.security.plain.PlainLoginModule required password=\\\"hunter2\\\";";
    let error = load(&format!("[kafka.properties]\n\"sasl.jaas.config\" = \"{jaas}\"\n"), &[])
        .unwrap_err()
        .to_string();
    assert!(error.contains("sasl.jaas.config") && !error.contains("hunter2"), "{error}");
    let error = load("[kafka.properties]\n\"security.protocol\" = \"carrier pigeon\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(error.contains("security.protocol"), "{error}");
}

/// Files the configuration reads are found beside it, whatever the working directory; what
/// statmsg writes stays relative to the working directory.
#[test]
fn relative_files_read_are_taken_from_the_configuration_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("kafka.password"), "kafka-s3cret\n").unwrap();
    std::fs::write(dir.path().join("influx.password"), "influx-s3cret").unwrap();
    let config = dir.path().join("statmsg.toml");
    std::fs::write(
        &config,
        "[collect]\nstate_dir = \"state\"\n\
         [kafka.properties]\n\"security.protocol\" = \"sasl_ssl\"\n\"ssl.ca.location\" = \"ca.pem\"\n\
         \"ssl.crl.location\" = \"/etc/ssl/crl.pem\"\n\
         [kafka.secret_files]\n\"sasl.password\" = \"kafka.password\"\n\
         [influxdb]\nusername = \"statmsg\"\npassword_file = \"influx.password\"\n",
    )
    .unwrap();
    assert_ne!(std::env::current_dir().unwrap(), dir.path(), "the test must run elsewhere");
    let raw = RawConfig::load_with_env(Some(&config), Some(HashMap::new())).unwrap();
    assert_eq!(raw.kafka.properties["ssl.ca.location"], dir.path().join("ca.pem").display().to_string());
    assert_eq!(raw.kafka.properties["ssl.crl.location"], "/etc/ssl/crl.pem", "absolute stays");
    assert_eq!(
        raw.collect.state_dir,
        Path::new("state"),
        "written files stay relative to the working directory"
    );
    let settings = Settings::validate(raw).unwrap();
    assert_eq!(settings.collect.kafka.properties["sasl.password"], "kafka-s3cret");
    assert!(
        matches!(&settings.consume.influxdb.api, InfluxApi::V1 { password, .. } if password.expose() == "influx-s3cret")
    );
    let probe = "[kafka.properties]\n\"ssl.ca.location\" = \"probe\"\n";
    std::fs::write(&config, probe).unwrap();
    let raw = RawConfig::load_with_env(Some(&config), Some(HashMap::new())).unwrap();
    assert_eq!(raw.kafka.properties["ssl.ca.location"], "probe");
}

#[test]
fn the_report_window_is_optional_and_checked() {
    let window = |w: f64| {
        crate::report::window_minutes(&statmsg_plumbing::config::raw::RawReport { window_minutes: w })
    };
    assert_eq!(window(0.0).unwrap(), None);
    assert_eq!(window(240.0).unwrap(), Some(240.0));
    for bad in [-1.0, f64::NAN, 20_000.0] {
        assert!(window(bad).unwrap_err().to_string().contains("report.window_minutes"), "{bad}");
    }
    let raw =
        RawConfig::load_with_env(Some(file("[report]\nwindow_minutes = 90\n").path()), Some(HashMap::new()));
    assert_eq!(raw.unwrap().report.window_minutes, 90.0);
}
