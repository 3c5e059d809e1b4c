//! Golden tests on every example of the reference documents (`golden/*`): the examples of
//! `seed-track-software-update-sync.md` as copied from a log viewer (and WSUS's own log), and the
//! phrases and records of `log-formats.md` written as real server-format, WCM, SMSProv,
//! SMSDBMON, CMTrace and SoftwareDistribution logs, in every encoding.
//!
//! Each `X` has its expected records in `X.jsonl`. After an intended change of output, rewrite
//! them with `UPDATE_GOLDEN=1 cargo test -p statmsg-parse --test golden` and review the diff. The event types are
//! also asserted here, line by line, from the documents.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use serde_json::Value;
use statmsg_parse::parse_file_bytes;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn parse(name: &str) -> Vec<Value> {
    let bytes = std::fs::read(golden_dir().join(name)).unwrap();
    let (_, records) = parse_file_bytes(&bytes);
    records.iter().map(|(_, r)| serde_json::to_value(r).unwrap()).collect()
}

fn event_types(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| match (&r["event"]["type"], &r["statmsg"]["id"]) {
            (Value::String(t), Value::Number(id)) => format!("{t}:{id}"),
            (Value::String(t), _) => t.clone(),
            _ => format!("-{}", r["format"].as_str().unwrap()),
        })
        .collect()
}

#[test]
fn every_fixture_matches_its_golden_output() {
    let mut names: Vec<String> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.ends_with(".jsonl"))
        .collect();
    names.sort();
    assert!(names.len() >= 10, "{names:?}");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    for name in names {
        let actual: String = parse(&name).iter().map(|r| format!("{r}\n")).collect();
        let golden = golden_dir().join(format!("{name}.jsonl"));
        if update {
            std::fs::write(&golden, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&golden)
            .unwrap_or_else(|_| panic!("{} missing: run with UPDATE_GOLDEN=1 and review", golden.display()));
        for (i, (a, e)) in actual.lines().zip(expected.lines()).enumerate() {
            assert_eq!(a, e, "{name} record {i}");
        }
        assert_eq!(actual.lines().count(), expected.lines().count(), "{name}: number of records");
    }
}

#[test]
fn the_seed_documents_sync_narrative_as_events() {
    let records = parse("seed-viewer.txt");
    #[rustfmt::skip]
    let expected = [
        // top-level site, scheduled
        "sync_wakeup",
        "sync_starting",
        "sync_requested",
        // manual: SMSProv, SMSDBMON, WSyncMgr
        "sync_now_requested",
        "sync_notification_received",
        "sync_file_dropped",
        "sync_wakeup",
        "sync_request_file",
        "sync_starting",
        "sync_requested",
        "sup_list_read",
        "sup_count",
        "sup_found",
        "sync_status:6701",
        // step 2-3
        "sync_status:6704",
        "phase_started",
        "wsus_sync_starting",
        "progress",
        "progress",
        "progress",
        "progress",
        "progress",
        "phase_done",
        "waiting_for_wsus_results",
        "content_version_set",
        // step 4
        "sync_status:6705",
        "phase_started",
        "progress",
        "progress",
        "progress",
        "update_synchronized",
        "progress",
        "phase_done",
        "content_version_set",
        "sync_status:6702",
        "sync_succeeded",
        "items_updated",
        "sync_time",
        // step 5-6
        "phase_started",
        "sync_status:6706",
        "phase_started",
        "wsus_sync_starting",
        "progress",
        "progress",
        "phase_done",
        "children_notified",
        "notification_replicated",
        // child site
        "sync_wakeup",
        "sync_request_file",
        "sync_starting",
        "sync_requested",
        "sup_list_read",
        "sup_count",
        "sup_found",
        "sup_found",
        "sync_status:6701",
        "phase_started",
        "sync_status:6704",
        "phase_started",
        "wsus_sync_starting",
        "progress",
        "progress",
        "progress",
        "phase_done",
        "waiting_for_wsus_results",
        "content_version_set",
        "phase_started",
        "sync_status:6706",
        "phase_started",
        "wsus_sync_starting",
        "progress",
        "progress",
        "phase_done",
        "sync_status:6702",
        "sync_succeeded",
        "synced_with_parent",
        "sync_time",
        "children_notified",
    ];
    assert_eq!(event_types(&records), expected);
    let by_type = |t: &str| records.iter().filter(|r| r["event"]["type"] == t).cloned().collect::<Vec<_>>();
    assert_eq!(
        by_type("progress")[2]["event"],
        serde_json::json!({"type": "progress", "stage": "wsus", "items": "updates", "processed": 122, "total": 130, "percent": 93, "eta_s": 3})
    );
    assert_eq!(by_type("children_notified")[0]["event"]["sites"], serde_json::json!(["PS1", "PS2"]));
    assert_eq!(
        by_type("sync_request_file")[1]["event"],
        serde_json::json!({"type": "sync_request_file", "trigger": "parent", "file": "CS1.SYN", "parent": "CS1"})
    );
    assert_eq!(
        by_type("synced_with_parent")[0]["event"],
        serde_json::json!({"type": "synced_with_parent", "parent": "CS1", "version": 34})
    );
    assert_eq!(by_type("update_synchronized")[0]["event"]["kb"], 2_461_484);
    assert_eq!(by_type("sync_time")[0]["event"]["seconds"], 233);
    assert_eq!(
        by_type("sync_file_dropped")[0]["event"],
        serde_json::json!({"type": "sync_file_dropped", "path": "E:\\ConfigMgr\\inboxes\\WSyncMgr.box\\SELF.SYN", "full": false, "notification_id": 47788})
    );
    let status = records.iter().find(|r| r["statmsg"]["id"] == 6706).unwrap();
    assert_eq!(status["statmsg"]["gmtdate"], "2014-01-16T19:17:13.575Z");
    assert_eq!(status["statmsg"]["site"], "PS1");
}

#[test]
fn the_log_formats_narrative_as_events() {
    let records = parse("log-formats-wsyncmgr.log");
    #[rustfmt::skip]
    let expected = [
        "sync_wakeup",
        "sync_wakeup",
        "sync_request_file",
        "sync_request_file",
        "sync_wakeup",
        "sync_starting",
        "sync_requested",
        "sync_requested",
        "sync_requested",
        "sync_requested",
        "sup_list_read",
        "sup_count",
        "sup_found",
        "phase_started",
        "wsus_sync_starting",
        "progress",
        "progress",
        "phase_done",
        "waiting_for_wsus_results",
        "waiting_for_wsus_results",
        "content_version_set",
        "phase_started",
        "progress",
        "progress",
        "update_synchronized",
        "phase_done",
        "phase_started",
        "wsus_sync_starting",
        "progress",
        "sync_succeeded",
        "items_updated",
        "synced_with_parent",
        "sync_time",
        "children_notified",
        "sync_failed",
        "retry_scheduled",
        "update_failed",
        "sync_aborted",
        "sync_failed",
        "cleanup_done",
        "expired_updates_deleting",
        "expired_updates_deleted",
        "orphaned_content_deleted",
        "sync_status:6703",
        "sync_status:6702",
        "symbolic_status",
        "-rollover_marker",
    ];
    assert_eq!(event_types(&records), expected);
    let triggers: Vec<&Value> = records
        .iter()
        .filter(|r| r["event"]["type"] == "sync_requested")
        .map(|r| &r["event"]["trigger"])
        .collect();
    assert_eq!(triggers, ["schedule", "local", "parent", "retry"]);
    let failed = &records[34]["event"];
    assert_eq!(failed["source"], "Microsoft.UpdateServices.Administration.AdminProxy.CreateUpdateServer");
    assert!(failed["message"]
        .as_str()
        .unwrap()
        .starts_with("UssCommunicationError: WebException: The operation has timed out~~"));
    assert_eq!(records[19]["event"]["seconds"], 120);
    assert_eq!(records[18]["event"]["seconds"], 120);
    // The record that proves the bias sign: local 16:39:05.707 at +240, GMTDATE 20:39:05.718.
    let proof = &records[43];
    assert_eq!(proof["time"], "2024-08-02T20:39:05.707Z");
    assert_eq!(proof["statmsg"]["gmtdate"], "2024-08-02T20:39:05.718Z");
    assert_eq!(proof["statmsg"]["le"], 0x8013_150a_u32);
    // A German day name; attributes.
    let german = &records[44]["statmsg"];
    assert_eq!(german["gmtdate"], "2024-08-05T08:00:00.001Z");
    assert_eq!(
        german["attrs"],
        serde_json::json!([{"id": 409, "value": "CHQ"}, {"id": 419, "value": "{C2D17964-BBDD-4339-B9F3-12D7205B39CC}"}])
    );
}

#[test]
fn the_other_logs_as_events() {
    assert_eq!(event_types(&parse("log-formats-wcm.log")), vec!["wsus_config_state"; 5]);
    assert_eq!(
        parse("log-formats-wcm.log")[4]["event"],
        serde_json::json!({"type": "wsus_config_state", "state": 4, "name": "WSUS_CONFIG_SUBSCRIPTION_PENDING"})
    );
    let chain = parse("log-formats-trigger-chain.log");
    assert_eq!(
        event_types(&chain),
        [
            "sync_now_requested",
            "sync_notification_received",
            "sync_file_dropped",
            "sync_file_dropped",
            "-server"
        ]
    );
    assert_eq!(chain[3]["event"]["full"], true);
    assert_eq!(chain[4]["time"], "1999-09-03T17:23:46.229Z", "SMS 2.0 trailer");
    let wsus = parse("seed-softwaredistribution.log");
    assert_eq!(
        event_types(&wsus),
        ["wsus_manual_sync_started", "wsus_event", "wsus_event", "wsus_sync_finished"]
    );
    assert_eq!(
        wsus[2]["event"],
        serde_json::json!({"type": "wsus_event", "event_id": 384, "message": "Synchronization completed successfully."})
    );
    assert!(parse("log-formats-softwaredistribution.log")[1]["text"]
        .as_str()
        .unwrap()
        .ends_with("at System.Net.HttpWebRequest.GetResponse()"));
    let cm = parse("log-formats-cmtrace.log");
    assert_eq!(cm.len(), 3);
    assert_eq!(cm[0]["level"], "error");
    assert_eq!(cm[0]["time"], "2015-01-02T22:23:05.123Z");
    assert!(cm[0]["text"].as_str().unwrap().contains("\r\nRetrying"));
    assert_eq!(event_types(&parse("seed-sql-profiler.txt")), ["-unframed", "-unframed"]);
}

#[test]
fn every_encoding_reads_the_same() {
    let utf16 = parse("encoding-utf16le.log");
    assert_eq!(utf16, parse("encoding-windows1252.log"));
    assert_eq!(utf16, parse("encoding-lf-nobom.log"));
    assert_eq!(utf16[1]["event"]["server"], "SÜP.contoso.com");
}
