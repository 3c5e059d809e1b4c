//! `statmsg report`: the capacity trend report, from log folders (the offline tracker of
//! `analyze`) or from InfluxDB's `sync_run` history. Reads the runs and hands them to the pure
//! `statmsg-report` crate, which computes the figures and writes the page.

use chrono::{DateTime, Utc};
use serde_json::Value;
use statmsg_report::{Cleanup, RunFacts};
use statmsg_track::Outcome;

use statmsg_consume::influx::{quote_identifier, InfluxClient};
use statmsg_consume::settings::{InfluxApi, InfluxSettings};
use statmsg_plumbing::config::raw::RawReport;
use statmsg_plumbing::config::{invalid, ConfigError};

use crate::analyze;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Analyze(#[from] analyze::AnalyzeError),
    #[error("InfluxDB: {0}")]
    Influx(String),
    #[error("InfluxDB answered something that is not a query result: {0}")]
    Answer(String),
    #[error("the report reads InfluxDB 1.x (InfluxQL); `api = \"v2\"` has no query path here")]
    V2,
}

/// The sync window of `[report]` (`None`: none configured).
pub fn window_minutes(raw: &RawReport) -> Result<Option<f64>, ConfigError> {
    let w = raw.window_minutes;
    if w == 0.0 {
        Ok(None)
    } else if w.is_finite() && w > 0.0 && w <= 7.0 * 24.0 * 60.0 {
        Ok(Some(w))
    } else {
        Err(invalid("report.window_minutes", format!("{w} must be between 0 (none) and 10080 minutes")))
    }
}

/// The runs (and clean-up lines) of log folders, read as `analyze` reads them, up to `to`.
pub fn from_logs(config: &analyze::Config) -> Result<(Vec<RunFacts>, Vec<Cleanup>), ReportError> {
    let report = analyze::run(config, &analyze::Progress::default())?;
    let runs = report.runs.iter().map(RunFacts::from).collect();
    let cleanups = report
        .tracker
        .sites()
        .filter_map(|s| {
            Some(Cleanup { hierarchy: s.hierarchy.clone(), site: s.site.clone(), at: s.last_cleanup? })
        })
        .collect();
    Ok((runs, cleanups))
}

/// The `sync_run` points between `from` and `to` (each run's latest version of its point).
pub async fn from_influx(
    settings: &InfluxSettings,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<Vec<RunFacts>, ReportError> {
    let InfluxApi::V1 { retention_policy, .. } = &settings.api else {
        return Err(ReportError::V2);
    };
    let measurement = match retention_policy.as_str() {
        "" => quote_identifier("sync_run"),
        rp => format!("{}.{}", quote_identifier(rp), quote_identifier("sync_run")),
    };
    let mut filter = Vec::new();
    if let Some(from) = from {
        filter.push(format!("time >= '{}'", from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
    }
    if let Some(to) = to {
        filter.push(format!("time < '{}'", to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
    }
    let filter = if filter.is_empty() { String::new() } else { format!(" WHERE {}", filter.join(" AND ")) };
    let query = format!("SELECT * FROM {measurement}{filter} GROUP BY \"hierarchy\", \"site\"");
    let influx = InfluxClient::new(settings).map_err(|e| ReportError::Influx(e.to_string()))?;
    let body = influx.execute(&query).await.map_err(|e| ReportError::Influx(e.to_string()))?;
    runs_of_query_result(&body)
}

/// The runs in an InfluxQL JSON answer of `SELECT * FROM sync_run GROUP BY hierarchy, site`
/// (pure; the fields are those `statmsg_track::points::write_sync_run` writes).
pub fn runs_of_query_result(body: &str) -> Result<Vec<RunFacts>, ReportError> {
    let answer: Value = serde_json::from_str(body).map_err(|e| ReportError::Answer(e.to_string()))?;
    let result = &answer["results"][0];
    if let Some(error) = result["error"].as_str() {
        return Err(ReportError::Influx(error.to_owned()));
    }
    let mut runs = Vec::new();
    for series in result["series"].as_array().into_iter().flatten() {
        let hierarchy = series["tags"]["hierarchy"].as_str().unwrap_or_default();
        let site = series["tags"]["site"].as_str().unwrap_or_default();
        let columns: Vec<&str> =
            series["columns"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        for row in series["values"].as_array().into_iter().flatten() {
            let get = |name: &str| columns.iter().position(|c| *c == name).map(|i| &row[i]);
            let text = |name: &str| get(name).and_then(Value::as_str).map(str::to_owned);
            let float = |name: &str| get(name).and_then(Value::as_f64);
            let time =
                |v: Option<&Value>| v.and_then(Value::as_str).and_then(|t| t.parse::<DateTime<Utc>>().ok());
            let Some(start) = time(get("time")) else {
                return Err(ReportError::Answer(format!("a sync_run row without a time: {row}")));
            };
            let outcome = match text("outcome").as_deref() {
                Some("succeeded") => Outcome::Succeeded,
                Some("failed") => Outcome::Failed,
                Some("abandoned") => Outcome::Abandoned,
                _ => Outcome::Running,
            };
            runs.push(RunFacts {
                hierarchy: hierarchy.to_owned(),
                site: site.to_owned(),
                parent: text("parent"),
                start,
                end: get("end_ms").and_then(Value::as_i64).and_then(DateTime::from_timestamp_millis),
                outcome,
                duration_s: float("duration_s"),
                content_version: get("content_version").and_then(Value::as_u64),
                wsus_s: float("wsus_s"),
                site_db_s: float("site_db_s"),
                updates_synchronized: get("updates_synchronized").and_then(Value::as_u64).unwrap_or(0),
                failure: text("failure"),
                hresult: text("hresult"),
            });
        }
    }
    Ok(runs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_result_becomes_runs() {
        let body = r#"{"results":[{"statement_id":0,"series":[{"name":"sync_run","tags":{"hierarchy":"contoso","site":"PS1"},
            "columns":["time","duration_s","end_ms","failure","hresult","outcome","parent","site_db_s","updates_synchronized","wsus_s","content_version"],
            "values":[["2024-03-01T06:30:00Z",412.5,1709275012500,null,null,"succeeded","CAS",30.5,41,300,101],
                      ["2024-03-02T06:30:00.123Z",null,1709361900000,"Sync failed: WSUS server not configured","0x80131500","failed","CAS",null,0,null,null]]}]}]}"#;
        let runs = runs_of_query_result(body).unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(
            (runs[0].site.as_str(), runs[0].outcome, runs[0].duration_s),
            ("PS1", Outcome::Succeeded, Some(412.5))
        );
        assert_eq!(
            (runs[0].wsus_s, runs[0].site_db_s, runs[0].content_version),
            (Some(300.0), Some(30.5), Some(101))
        );
        assert_eq!(runs[1].hresult.as_deref(), Some("0x80131500"));
        assert_eq!(runs[1].start.timestamp_subsec_millis(), 123);
        assert!(runs_of_query_result(r#"{"results":[{"error":"database not found: x"}]}"#).is_err());
        assert!(runs_of_query_result("<html>").is_err());
        assert!(runs_of_query_result(r#"{"results":[{"statement_id":0}]}"#).unwrap().is_empty());
    }
}
