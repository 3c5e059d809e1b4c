use super::*;
use statmsg_track::Outcome;

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../samples/contoso");

fn config(paths: Vec<PathBuf>, now: Option<DateTime<Utc>>) -> Config {
    Config { paths, now, hierarchy: None, tracker: TrackerConfig::default(), threads: 2 }
}

#[test]
fn the_reference_sample_gives_its_hierarchy_and_runs() {
    let report = run(&config(vec![SAMPLES.into()], None), &Progress::default()).unwrap();
    let sites: Vec<(&str, &str, Option<&str>)> =
        report.sites.iter().map(|s| (s.hierarchy.as_str(), s.site.as_str(), s.parent.as_deref())).collect();
    assert_eq!(
        sites,
        vec![("contoso", "CS1", None), ("contoso", "PS1", Some("CS1")), ("contoso", "PS2", Some("CS1"))]
    );
    let cs1 = &report.sites[0];
    assert_eq!(
        (cs1.children.clone(), cs1.status.as_str(), cs1.content_version),
        (vec!["PS1".into(), "PS2".into()], "succeeded", Some(35))
    );
    assert_eq!(report.runs.iter().filter(|r| r.site == "CS1").count(), 2);
    assert_eq!(report.files, 5, "WsyncMgr.log of each site, SMSProv.log and smsdbmon.log");
    // As of the newest record (CS1's second day), the children have not synced 35 yet.
    assert_eq!(report.now, report.sites.iter().filter_map(|s| s.last_record).max().unwrap());
}

#[test]
fn now_ignores_later_records() {
    let at = DateTime::parse_from_rfc3339("2014-01-16T19:00:00Z").unwrap().with_timezone(&Utc);
    let report = run(&config(vec![SAMPLES.into()], Some(at)), &Progress::default()).unwrap();
    assert_eq!(report.now, at);
    assert!(report.runs.iter().all(|r| r.start <= at), "{:?}", report.runs);
    let cs1 = report.runs.iter().filter(|r| r.site == "CS1").count();
    assert_eq!(cs1, 1, "the second day's run is after --now");
}

#[test]
fn json_lines_have_the_documented_shape() {
    let report = run(&config(vec![SAMPLES.into()], None), &Progress::default()).unwrap();
    let mut out = Vec::new();
    write_json(&report, &mut out).unwrap();
    let lines: Vec<serde_json::Value> =
        String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let of = |t: &str| lines.iter().filter(|l| l["type"] == t).collect::<Vec<_>>();
    assert_eq!(of("site").len(), 3);
    let run = of("sync_run")[0];
    for key in ["site", "start", "end", "outcome", "trigger", "duration_s", "content_version"] {
        assert!(!run[key].is_null(), "sync_run.{key} in {run}");
    }
    assert_eq!(run["trigger"], "manual");
    let ps1 = of("site").into_iter().find(|s| s["site"] == "PS1").unwrap();
    assert_eq!(ps1["propagation"]["parent"], "CS1");
    assert_eq!(ps1["propagation"]["last"]["version"], 35, "{ps1}");
    for alert in of("alert") {
        for key in ["kind", "site", "since", "detail"] {
            assert!(!alert[key].is_null(), "alert.{key} in {alert}");
        }
    }
    assert_eq!(of("alert").len(), 1, "PS2's last run failed");
    assert_eq!(lines.len(), of("site").len() + of("sync_run").len() + of("alert").len());
}

#[test]
fn the_table_names_every_site_and_alert() {
    let report = run(&config(vec![SAMPLES.into()], None), &Progress::default()).unwrap();
    let mut out = Vec::new();
    write_table(&report, false, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    for needle in
        ["hierarchy contoso", "CS1", "  PS1", "  PS2", "1 active alert", "[0x80131500]", "6 sync runs"]
    {
        assert!(text.contains(needle), "{needle:?} in\n{text}");
    }
    assert!(!text.contains('\x1b'), "no colour when asked for none");
}

#[test]
fn inputs_without_logs_are_an_error_and_odd_names_count_when_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
    let err = run(&config(vec![dir.path().into()], None), &Progress::default()).unwrap_err();
    assert!(err.to_string().contains("no log files"), "{err}");
    let odd = dir.path().join("WsyncMgr.copy");
    std::fs::copy(format!("{SAMPLES}/CS1/WsyncMgr.log"), &odd).unwrap();
    let report = run(&config(vec![odd], None), &Progress::default()).unwrap();
    assert_eq!(report.sites[0].site, "CS1", "the site code comes from the records");
    let missing = run(&config(vec![dir.path().join("nope")], None), &Progress::default()).unwrap_err();
    assert!(missing.to_string().contains("nope"), "{missing}");
}

#[test]
fn streaming_files_in_time_order_equals_merging_them() {
    let dir = tempfile::tempdir().unwrap();
    let sim = statmsg_sim::SimConfig { sites: 2, days: 6, roll_bytes: 6_000, ..Default::default() };
    statmsg_sim::Simulation::generate(sim).write(dir.path()).unwrap();
    let config = config(vec![dir.path().into()], None);
    let groups = discover(&config).unwrap();
    let cas = groups.iter().find(|g| g.site == "CAS").unwrap();
    assert!(cas.files.len() > 3, "rolled: {:?}", cas.files);
    let heads: Vec<Head> = cas.files.iter().map(|f| head_of(f).unwrap()).collect();
    let (mut order, side): (Vec<usize>, Vec<usize>) =
        (0..cas.files.len()).partition(|&i| family(&cas.files[i]) == "wsyncmgr");
    assert_eq!(side.len(), 2, "SMSProv.log and smsdbmon.log: {:?}", cas.files);
    order.sort_by_key(|&i| (heads[i].first.is_none(), heads[i].first, i));
    let (kept, _) = read_kept(cas, &side, &Progress::default()).unwrap();
    let (mut streamed, _, _) =
        stream_site(cas, &order, &heads, "CAS", &config, kept, &Progress::default()).unwrap().unwrap();
    let mut merged = Tracker::new(TrackerConfig::default());
    merge_site(cas, "CAS", &config, &mut merged, &Progress::default()).unwrap();
    let runs = streamed.take_runs();
    assert!(runs.len() >= 6, "{}", runs.len());
    assert!(runs.iter().any(|r| r.trigger == statmsg_track::RunTrigger::Manual));
    assert_eq!(runs, merged.take_runs());
    // Files whose times interleave cannot be streamed.
    let site = tempfile::tempdir().unwrap();
    let line = |m: &str, t: &str| server_line(m, &format!("03-01-2024 {t}.000"));
    std::fs::write(
        site.path().join("a.log"),
        line("Starting Sync", "10:00:00") + &line("Sync time: 0d00h00m02s", "10:00:02"),
    )
    .unwrap();
    std::fs::write(site.path().join("b.log"), line("Wakeup for a polling cycle", "10:00:01")).unwrap();
    let config = self::config(vec![site.path().into()], None);
    let groups = discover(&config).unwrap();
    let heads: Vec<Head> = groups[0].files.iter().map(|f| head_of(f).unwrap()).collect();
    let streamed = stream_site(&groups[0], &[0, 1], &heads, "X", &config, Vec::new(), &Progress::default());
    assert!(streamed.unwrap().is_none());
    let report = run(&config, &Progress::default()).unwrap();
    assert_eq!(report.records, 3, "b.log slipped into a.log's stream");
}

fn log_line(m: &str, t: &str) -> String {
    server_line(m, &format!("03-{t}.000"))
}

/// A server-format line at local time `local` (`MM-DD-YYYY HH:MM:SS.mmm`, bias 0).
fn server_line(message: &str, local: &str) -> String {
    let local = chrono::NaiveDateTime::parse_from_str(local, "%m-%d-%Y %H:%M:%S%.3f").unwrap();
    let mut line = String::new();
    statmsg_parse::synth::write_server_line(&mut line, message, "SMS_WSUS_SYNC_MANAGER", local, 0, 1);
    line
}

/// A subfolder sorting between a site's files, and a second folder naming the same site, do not
/// split the site into states that replace each other.
#[test]
fn a_site_is_one_group_whatever_its_folders() {
    let root = tempfile::tempdir().unwrap();
    let cs1 = root.path().join("contoso").join("CS1");
    std::fs::create_dir_all(cs1.join("archive")).unwrap();
    for f in ["WsyncMgr.log", "smsdbmon.log"] {
        std::fs::copy(format!("{SAMPLES}/CS1/{f}"), cs1.join(f)).unwrap();
    }
    let one_thread = |p: &PathBuf| Config { threads: 1, ..config(vec![p.clone()], None) };
    let view = |r: &Report| {
        let v = r.sites.iter().find(|s| s.site == "CS1").unwrap();
        (v.status.clone(), v.content_version, v.last_success, v.children.clone())
    };
    let plain = run(&one_thread(&cs1), &Progress::default()).unwrap();
    std::fs::write(cs1.join("archive").join("WCM.log"), "x\r\n").unwrap();
    let with = run(&one_thread(&cs1), &Progress::default()).unwrap();
    assert_eq!(view(&with), view(&plain));
    assert_eq!(view(&plain).1, Some(35));
    let groups = discover(&one_thread(&cs1)).unwrap();
    let mut sites: Vec<&str> = groups.iter().map(|g| g.site.as_str()).collect();
    sites.sort_unstable();
    assert_eq!(sites, vec!["CS1", "archive"], "the subfolder is a folder of its own");
    // The same site's logs in a second folder join it.
    let old = root.path().join("contoso").join("CS1-old");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::copy(format!("{SAMPLES}/CS1/SMSProv.log"), old.join("SMSProv.log")).unwrap();
    let status = "STATMSG: ID=6701 SEV=I LEV=M SOURCE=\"SMS Server\" COMP=\"SMS_WSUS_SYNC_MANAGER\" SYS=X SITE=CS1 PID=1 TID=1 ISTR0=\"\" ISTR1=\"\" ISTR2=\"\" ISTR3=\"\" ISTR4=\"\" ISTR5=\"\" ISTR6=\"\" ISTR7=\"\" ISTR8=\"\" ISTR9=\"\" NUMATTRS=0";
    let earlier =
        format!("{status}  $$<SMS_WSUS_SYNC_MANAGER><01-10-2014 10:00:00.000+480><thread=1 (0x1)>\r\n");
    std::fs::write(old.join("WsyncMgr-20140110-100000.log"), earlier).unwrap();
    let both = run(&config(vec![cs1.clone(), old], None), &Progress::default()).unwrap();
    assert_eq!(both.sites.len(), 1, "CS1, from both folders (archive has no timed record): {:?}", both.sites);
    assert_eq!(view(&both), view(&plain));
    let starts: Vec<_> = both.runs.iter().filter(|r| r.site == "CS1").map(|r| r.outcome).collect();
    assert_eq!(
        starts,
        vec![Outcome::Abandoned, Outcome::Succeeded, Outcome::Succeeded],
        "the older run comes first"
    );
}

#[test]
fn merging_gives_the_same_alerts_as_streaming() {
    let now = DateTime::parse_from_rfc3339("2024-03-02T05:00:00Z").unwrap().with_timezone(&Utc);
    let a = log_line("Checking runtime v4.0.30319", "01-2024 00:00:00")
        + &log_line("Wakeup for a polling cycle", "01-2024 06:00:00");
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("h").join("CS1");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("a.log"), &a).unwrap();
    let streamed = run(&config(vec![site.clone()], Some(now)), &Progress::default()).unwrap();
    std::fs::write(site.join("b.log"), log_line("SQL connection ok", "01-2024 01:00:00")).unwrap();
    let merged = run(&config(vec![site.clone()], Some(now)), &Progress::default()).unwrap();
    let kinds = |r: &Report| r.alerts.iter().map(|a| (a.kind, a.since)).collect::<Vec<_>>();
    assert_eq!(kinds(&streamed).len(), 1, "missing_success 26 h after the first record");
    assert_eq!(kinds(&merged), kinds(&streamed));
    assert_eq!((streamed.records, merged.records), (2, 3));
    // The same file as part of the main log's family: its times interleave, everything merges.
    std::fs::rename(site.join("b.log"), site.join("a-20240301-000000.log")).unwrap();
    let merged = run(&config(vec![site.clone()], Some(now)), &Progress::default()).unwrap();
    assert_eq!(kinds(&merged), kinds(&streamed));
    assert_eq!(family(Path::new("x/WsyncMgr-20240301-063000.log")), family(Path::new("WSYNCMGR.lo_")));
}
