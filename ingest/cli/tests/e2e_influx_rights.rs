//! A consumer whose InfluxDB user may not create the database says so, clearly, and stops
//! instead of committing anything. Runs a private InfluxDB with authentication on. Ignored by a
//! plain `cargo test`; `.ci/run` starts the stack and runs it with `--include-ignored`.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::*;

fn influxql(url: &str, user: Option<(&str, &str)>, q: &str) -> String {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-XPOST", &format!("{url}/query")]).args(["--data-urlencode", &format!("q={q}")]);
    if let Some((u, p)) = user {
        cmd.args(["-u", &format!("{u}:{p}")]);
    }
    String::from_utf8(cmd.output().unwrap().stdout).unwrap()
}

#[test]
#[ignore = "needs the real servers: deploy/local/stack up (run by .ci/run)"]
fn a_user_without_rights_gets_a_clear_error() {
    let world = World::new("rights");
    let influx = PrivateInflux::start(&world.dir.path().join("influxdb"), free_port_pair(19_086), true);
    // The first user may be created without credentials; it is the admin.
    let created =
        influxql(&influx.url(), None, "CREATE USER admin WITH PASSWORD 'admin-pw' WITH ALL PRIVILEGES");
    assert!(!created.contains("error"), "{created}");
    let created =
        influxql(&influx.url(), Some(("admin", "admin-pw")), "CREATE USER writer WITH PASSWORD 'writer-pw'");
    assert!(!created.contains("error"), "{created}");

    let log = world.log_path("WsyncMgr.log");
    let gmt = chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap();
    append(&log, &server_line(&statmsg_message(6702, 'I', gmt, &[], None), gmt, 0, 1));
    let config = world.config(&format!(
        "url = \"{}\"\ndatabase = \"{}\"\nusername = \"writer\"\npassword = \"writer-pw\"",
        influx.url(),
        world.name
    ));
    let collector = Proc::start("collect", &config);
    let mut consumer = Proc::start("consume", &config);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = consumer.child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "the consumer kept running:\n{}", consumer.output());
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = consumer.output();
    assert!(!status.success(), "the consumer must stop with an error:\n{output}");
    assert!(
        output.contains(&format!("InfluxDB user lacks the right to set up database \"{}\"", world.name)),
        "{output}"
    );
    assert!(
        output.contains("statmsg: error: InfluxDB user lacks the right"),
        "the error ends the run: {output}"
    );
    // Nothing was committed: once an admin ran `statmsg influx setup` (the database, the short
    // retention policy, the continuous queries) and granted writing, a new consumer stores it all.
    let admin_config = config.with_file_name("admin.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &admin_config,
        text.replace("\"writer\"", "\"admin\"").replace("\"writer-pw\"", "\"admin-pw\""),
    )
    .unwrap();
    influx_setup(&admin_config);
    let granted = influxql(
        &influx.url(),
        Some(("admin", "admin-pw")),
        &format!("GRANT WRITE ON \"{}\" TO writer", world.name),
    );
    assert!(!granted.contains("error"), "{granted}");
    let consumer = Proc::start("consume", &config);
    let count = || {
        let out = influxql(
            &influx.url(),
            Some(("admin", "admin-pw")),
            &format!("SELECT count(pid) FROM \"{}\"..statmsg", world.name),
        );
        out.contains("[[\"1970-01-01T00:00:00Z\",1]]").then_some(())
    };
    wait_for(Duration::from_secs(60), count, || consumer.output());
    consumer.stop();
    collector.stop();
}
