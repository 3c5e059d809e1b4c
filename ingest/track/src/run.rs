//! One sync run of one site: what started it, its phases, how it ended and what it changed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use statmsg_schema::event::{Phase, ProgressStage, Trigger};

/// How a run ended (or that it has not yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Running,
    Succeeded,
    Failed,
    /// A new run started while this one had not finished (WSyncMgr restarted, or lost its
    /// thread): it will never finish.
    Abandoned,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Running => "running",
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Abandoned => "abandoned",
        }
    }
}

/// What started a run, in the administrator's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunTrigger {
    /// The SUP component's sync schedule.
    Schedule,
    /// "Synchronize now" in the console, or a `SELF.SYN` / `FULL.SYN` dropped by hand.
    Manual,
    /// The parent site's sync notification.
    Parent,
    /// The retry an earlier failure scheduled.
    Retry,
    /// The log does not say (the start of the run is before the first record read).
    Unknown,
}

impl RunTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            RunTrigger::Schedule => "schedule",
            RunTrigger::Manual => "manual",
            RunTrigger::Parent => "parent",
            RunTrigger::Retry => "retry",
            RunTrigger::Unknown => "unknown",
        }
    }
}

impl From<Trigger> for RunTrigger {
    fn from(t: Trigger) -> Self {
        match t {
            Trigger::Schedule => RunTrigger::Schedule,
            Trigger::Local => RunTrigger::Manual,
            Trigger::Parent => RunTrigger::Parent,
            Trigger::Retry => RunTrigger::Retry,
        }
    }
}

/// One phase of a run on one WSUS server (or all replicas).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseSpan {
    pub phase: Phase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    pub start: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<DateTime<Utc>>,
}

/// The last progress line of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunProgress {
    pub stage: ProgressStage,
    pub items: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
    pub at: DateTime<Utc>,
}

/// Why a run failed: the `Sync failed:` line and status message 6703 together.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Failure {
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// HRESULT (`LE=0X...` of 6703, or a `0x8...` code in the message), as `0x8013150A`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hresult: Option<String>,
}

/// One sync run. Identified by hierarchy, site and `start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncRun {
    pub hierarchy: String,
    pub site: String,
    pub start: DateTime<Utc>,
    /// When the outcome was logged (6702 / 6703 / `Sync failed`), or when the next run
    /// abandoned this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<DateTime<Utc>>,
    pub outcome: Outcome,
    pub trigger: RunTrigger,
    /// A full sync (`FULL.SYN`) rather than a delta.
    pub full: bool,
    /// The logged `Sync time` when there is one, else `end - start`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
    /// `Sync time: 0d00h03m53s` as logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logged_duration_s: Option<u64>,
    /// Content version of the update source before the run (the site's last known one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_version_before: Option<u64>,
    /// Content version after the run (the last one it set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_version: Option<u64>,
    /// `Updated N items in SMS database` (top-level site).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items_updated: Option<u64>,
    /// `Synchronizing update ...` lines.
    pub updates_synchronized: u64,
    /// `Failed to sync update ...` lines.
    pub updates_failed: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<PhaseSpan>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<RunProgress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// `Sync failed. Will retry in N minutes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_in_minutes: Option<u32>,
    /// Failed runs of this site just before this one (0: the last run did not fail).
    pub retries: u32,
    /// The parent this (child) site synced with, and its version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children_notified: Vec<String>,
    /// The newest record that belongs to the run.
    pub last_event: DateTime<Utc>,
}

impl SyncRun {
    pub fn new(hierarchy: &str, site: &str, start: DateTime<Utc>, trigger: RunTrigger) -> Self {
        SyncRun {
            hierarchy: hierarchy.to_owned(),
            site: site.to_owned(),
            start,
            end: None,
            outcome: Outcome::Running,
            trigger,
            full: false,
            duration_s: None,
            logged_duration_s: None,
            content_version_before: None,
            content_version: None,
            items_updated: None,
            updates_synchronized: 0,
            updates_failed: 0,
            phases: Vec::new(),
            progress: None,
            failure: None,
            retry_in_minutes: None,
            retries: 0,
            parent: None,
            children_notified: Vec::new(),
            last_event: start,
        }
    }

    /// Ends the run (once: a later outcome line of the same run does not move the end).
    pub(super) fn finish(&mut self, outcome: Outcome, at: DateTime<Utc>) {
        if self.outcome == Outcome::Running
            || self.outcome == Outcome::Succeeded && outcome == Outcome::Failed
        {
            self.outcome = outcome;
            self.end.get_or_insert(at);
            self.close_phases(at);
            self.update_duration();
        }
    }

    pub(super) fn update_duration(&mut self) {
        self.duration_s = match (self.logged_duration_s, self.end) {
            (Some(s), _) => Some(s as f64),
            (None, Some(end)) => Some((end - self.start).num_milliseconds() as f64 / 1000.0),
            (None, None) => None,
        };
    }

    pub(super) fn close_phases(&mut self, at: DateTime<Utc>) {
        for p in self.phases.iter_mut().filter(|p| p.end.is_none()) {
            p.end = Some(at);
        }
    }

    /// Seconds spent in `phase` (all its servers), for finished phases.
    pub fn phase_seconds(&self, phase: Phase) -> Option<f64> {
        let spans: Vec<f64> = self
            .phases
            .iter()
            .filter(|p| p.phase == phase)
            .filter_map(|p| Some((p.end? - p.start).num_milliseconds() as f64 / 1000.0))
            .collect();
        (!spans.is_empty()).then(|| spans.iter().sum())
    }

    /// The phase the run is in (the last one started and not ended).
    pub fn current_phase(&self) -> Option<&PhaseSpan> {
        self.phases.iter().rev().find(|p| p.end.is_none())
    }

    /// Seconds from start to `now` while running, else the duration.
    pub fn running_seconds(&self, now: DateTime<Utc>) -> f64 {
        match self.outcome {
            Outcome::Running => (now - self.start).num_milliseconds().max(0) as f64 / 1000.0,
            _ => self.duration_s.unwrap_or(0.0),
        }
    }
}

/// A message on one line: the `~~` / `~` line-break codes and line breaks become spaces.
pub fn one_line(message: &str) -> String {
    let spaced = message.replace("~~", " ").replace(['~', '\r', '\n'], " ");
    spaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `0x8013150A` from `LE=0X8013150a`-style numbers.
pub fn hresult_hex(code: u32) -> String {
    format!("0x{code:08X}")
}

/// The first `0x` followed by 8 hex digits in a message, normalised.
pub fn hresult_in(message: &str) -> Option<String> {
    let b = message.as_bytes();
    (0..b.len().saturating_sub(9)).find_map(|i| {
        let hex = b.get(i + 2..i + 10)?;
        let prefix = b[i] == b'0' && (b[i + 1] | 0x20) == b'x';
        let boundary = b.get(i + 10).map_or(true, |c| !c.is_ascii_hexdigit());
        (prefix && boundary && hex.iter().all(u8::is_ascii_hexdigit))
            .then(|| std::str::from_utf8(hex).ok())
            .flatten()
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .map(hresult_hex)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hresults_are_found_and_normalised() {
        assert_eq!(hresult_in("failed with 0x80244010 while"), Some("0x80244010".into()));
        assert_eq!(hresult_in("code 0X8013150a"), Some("0x8013150A".into()));
        assert_eq!(hresult_in("0x801315 short"), None);
        assert_eq!(hresult_in("0x8013150AB too long"), None);
        assert_eq!(hresult_in(""), None);
    }
}
