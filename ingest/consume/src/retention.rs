//! Retention for a fleet over years (InfluxDB 1.x): the per-minute points (`site_sync_state`,
//! `site_alert`, `collector_status`: one per site per minute, 525,600 a year) live in a short
//! retention policy (`[influxdb] recent_retention_policy`, 30 days); continuous queries
//! downsample them hourly (`site_sync_state_1h`, `collector_status_1h`) into the long policy,
//! which also holds what is kept for good: status messages, sync runs, version propagation.
//! Sizes per site and year are in `schema/README.md`.
//!
//! [`plan`] is pure: the statements, each with what to do when InfluxDB says the object exists
//! already with other settings (the configuration is the truth: a changed duration is altered,
//! a changed continuous query replaced). [`setup`] runs them: `statmsg influx setup`, and the
//! consumer at start when `[influxdb] setup` allows it.

use super::influx::{quote_identifier, CreateError, InfluxClient};
use crate::settings::{InfluxApi, InfluxSettings};

/// Shard groups of the short policy: one day, so that expired days go whole.
const RECENT_SHARD_DURATION: &str = "1d";

/// One statement, and the one that replaces what exists when InfluxDB says it exists already.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub statement: String,
    pub when_exists: WhenExists,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WhenExists {
    /// `CREATE` is idempotent for identical settings: nothing else to do.
    Nothing,
    /// Run this instead (an `ALTER`).
    Alter(String),
    /// Run this first, then the statement again (a continuous query cannot be altered).
    DropAndCreate(String),
}

/// The hourly downsampling of a per-minute measurement: name of the continuous query, the
/// measurement, the downsampled one, and the aggregates (`max` of alerts and ages: an alert that
/// was active in the hour shows; `last` of states and versions).
struct Downsampling {
    query: &'static str,
    from: &'static str,
    into: &'static str,
    fields: &'static [(&'static str, &'static str)],
}

const DOWNSAMPLED: [Downsampling; 2] = [
    Downsampling {
        query: "statmsg_site_sync_state_1h",
        from: "site_sync_state",
        into: "site_sync_state_1h",
        fields: &[
            ("last", "status"),
            ("max", "alert_count"),
            ("max", "alert_stalled"),
            ("max", "alert_failed"),
            ("max", "alert_missing_success"),
            ("max", "alert_slow"),
            ("max", "alert_child_lag"),
            ("max", "alert_silent"),
            ("max", "last_success_age_s"),
            ("max", "running_s"),
            ("max", "version_lag"),
            ("max", "lag_s"),
            ("last", "content_version"),
            ("last", "parent_version"),
            ("last", "last_duration_s"),
            ("last", "median_duration_s"),
            ("max", "last_heartbeat_age_s"),
        ],
    },
    Downsampling {
        query: "statmsg_collector_status_1h",
        from: "collector_status",
        into: "collector_status_1h",
        fields: &[
            ("last", "host"),
            ("last", "version"),
            ("last", "files_watched"),
            ("max", "unread_bytes"),
            ("max", "spool_bytes"),
            ("max", "spool_records"),
            ("max", "heartbeat_age_s"),
        ],
    },
];

/// The measurements written into the short policy.
pub const RECENT_MEASUREMENTS: [&str; 3] = ["site_sync_state", "site_alert", "collector_status"];

/// What `setup` runs for `settings`, in order (pure). v2 and a configuration without a short
/// policy: nothing (buckets and their retention are the server owner's).
pub fn plan(settings: &InfluxSettings) -> Vec<Step> {
    let (InfluxApi::V1 { database, retention_policy, .. }, Some(recent)) = (&settings.api, &settings.recent)
    else {
        return Vec::new();
    };
    let db = quote_identifier(database);
    let policy = quote_identifier(&recent.policy);
    let duration = format!("{}d", recent.days);
    let mut steps = vec![Step {
        statement: format!(
            "CREATE RETENTION POLICY {policy} ON {db} DURATION {duration} REPLICATION 1 SHARD DURATION {RECENT_SHARD_DURATION}"
        ),
        when_exists: WhenExists::Alter(format!(
            "ALTER RETENTION POLICY {policy} ON {db} DURATION {duration} SHARD DURATION {RECENT_SHARD_DURATION}"
        )),
    }];
    for d in &DOWNSAMPLED {
        let into = match retention_policy.as_str() {
            "" => quote_identifier(d.into),
            long => format!("{db}.{}.{}", quote_identifier(long), quote_identifier(d.into)),
        };
        let fields: Vec<String> =
            d.fields.iter().map(|(f, name)| format!("{f}({q}) AS {q}", q = quote_identifier(name))).collect();
        let name = quote_identifier(d.query);
        steps.push(Step {
            statement: format!(
                "CREATE CONTINUOUS QUERY {name} ON {db} BEGIN SELECT {} INTO {into} FROM {policy}.{} GROUP BY time(1h), \"hierarchy\", \"site\" END",
                fields.join(", "),
                quote_identifier(d.from),
            ),
            when_exists: WhenExists::DropAndCreate(format!("DROP CONTINUOUS QUERY {name} ON {db}")),
        });
    }
    steps
}

/// Creates the database, the short policy and the continuous queries, or brings them in line
/// with the configuration. Returns what it did, one line each.
pub async fn setup(influx: &InfluxClient) -> Result<Vec<String>, CreateError> {
    let mut done = Vec::new();
    influx.ensure_database().await?;
    if let InfluxApi::V1 { database, .. } = &influx.settings().api {
        done.push(format!("database {database:?}: present"));
    }
    for step in plan(influx.settings()) {
        match influx.execute(&step.statement).await {
            Ok(_) => done.push(step.statement),
            Err(e) if e.already_exists() => match &step.when_exists {
                WhenExists::Nothing => done.push(format!("exists: {}", step.statement)),
                WhenExists::Alter(alter) => {
                    influx.execute(alter).await?;
                    done.push(alter.clone());
                }
                WhenExists::DropAndCreate(drop) => {
                    influx.execute(drop).await?;
                    influx.execute(&step.statement).await?;
                    done.push(format!("replaced: {}", step.statement));
                }
            },
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::RecentRetention;
    use statmsg_plumbing::config::Secret;

    fn settings(long: &str, recent: Option<(&str, u32)>) -> InfluxSettings {
        InfluxSettings {
            url: "http://127.0.0.1:8086".parse().unwrap(),
            api: InfluxApi::V1 {
                database: "stat\"msg".into(),
                retention_policy: long.into(),
                username: String::new(),
                password: Secret::default(),
            },
            timeout: std::time::Duration::from_secs(1),
            ca_file: None,
            recent: recent.map(|(policy, days)| RecentRetention { policy: policy.into(), days }),
            setup: true,
        }
    }

    #[test]
    fn the_short_policy_and_its_downsampling_into_the_default_or_the_configured_long_policy() {
        let steps = plan(&settings("", Some(("statmsg_recent", 30))));
        assert_eq!(steps.len(), 3);
        assert_eq!(
            steps[0].statement,
            r#"CREATE RETENTION POLICY "statmsg_recent" ON "stat\"msg" DURATION 30d REPLICATION 1 SHARD DURATION 1d"#
        );
        assert!(
            matches!(&steps[0].when_exists, WhenExists::Alter(a) if a.starts_with("ALTER RETENTION POLICY \"statmsg_recent\""))
        );
        let cq = &steps[1].statement;
        assert!(cq.starts_with(r#"CREATE CONTINUOUS QUERY "statmsg_site_sync_state_1h" ON "stat\"msg" BEGIN SELECT last("status") AS "status", max("alert_count") AS "alert_count","#), "{cq}");
        assert!(cq.ends_with(r#" INTO "site_sync_state_1h" FROM "statmsg_recent"."site_sync_state" GROUP BY time(1h), "hierarchy", "site" END"#), "{cq}");
        let long = plan(&settings("years", Some(("statmsg_recent", 7))));
        assert!(long[2].statement.contains(
            r#" INTO "stat\"msg"."years"."collector_status_1h" FROM "statmsg_recent"."collector_status" "#
        ));
        assert!(long[0].statement.contains("DURATION 7d"));
    }

    #[test]
    fn without_a_short_policy_or_on_v2_there_is_nothing_to_set_up() {
        assert!(plan(&settings("", None)).is_empty());
        let mut v2 = settings("", Some(("statmsg_recent", 30)));
        v2.api = InfluxApi::V2 { org: "o".into(), bucket: "b".into(), token: Secret::default() };
        assert!(plan(&v2).is_empty());
    }

    #[test]
    fn every_field_of_the_per_minute_points_is_downsampled_or_deliberately_not() {
        // The fields site_sync_state has (statmsg_track::points::write_site_state): each is kept
        // hourly, but `alerts` (the names; the alert_* flags keep them) and `last_success_ms`
        // (its age is kept), `parent` (a constant).
        let view = statmsg_track::SiteView {
            hierarchy: "h".into(),
            site: "S".into(),
            parent: Some("P".into()),
            children: vec![],
            status: "succeeded".into(),
            last_success: Some(chrono::DateTime::UNIX_EPOCH),
            last_success_age_s: Some(1.0),
            last_duration_s: Some(1.0),
            median_duration_s: Some(1.0),
            running_s: 0.0,
            content_version: Some(1),
            parent_version: Some(1),
            version_lag: 0,
            lag_s: 0.0,
            alerts: vec![],
            last_record: None,
            last_heartbeat_age_s: Some(1.0),
        };
        let mut line = String::new();
        statmsg_track::points::write_site_state(&view, chrono::DateTime::UNIX_EPOCH, &mut line).unwrap();
        let fields = line.split(' ').nth(1).unwrap();
        let names: Vec<&str> = fields.split(',').map(|f| f.split('=').next().unwrap()).collect();
        let kept: Vec<&str> = DOWNSAMPLED[0].fields.iter().map(|(_, n)| *n).collect();
        for name in names {
            assert!(
                kept.contains(&name) || ["alerts", "last_success_ms", "parent"].contains(&name),
                "{name} is not downsampled"
            );
        }
    }
}
