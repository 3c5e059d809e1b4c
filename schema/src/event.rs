//! Typed events: what a record says about software-update synchronization (WsyncMgr.log), WSUS
//! configuration (WCM.log), the trigger chain of a console "Synchronize now" (SMSProv.log,
//! SMSDBMON.log) and WSUS itself (SoftwareDistribution.log).
//!
//! JSON: `{"type": "<snake_case name>", ...fields}`. Like the record, names are a contract.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What started a sync (`Performing sync on ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// `on regular schedule`
    Schedule,
    /// `on local request`: the console's "Synchronize now", or a `SELF.SYN`/`FULL.SYN` drop.
    Local,
    /// `on parent request`: the parent site's `<SITE>.SYN` notification.
    Parent,
    /// `on retry schedule`, after a failure.
    Retry,
}

/// Why WSyncMgr woke up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Wakeup {
    Schedule,
    InboxDrop,
    Polling,
}

/// The phases of a sync run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// WSUS server <- upstream (Microsoft Update or the parent's WSUS); status 6704.
    WsusServer,
    /// site database <- WSUS; status 6705 (top-level site only).
    SiteDatabase,
    /// replica / Internet-facing WSUS servers <- the site's first SUP; status 6706.
    Replicas,
}

/// Who reports progress in `sync: ...` lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgressStage {
    /// `sync: WSUS synchronizing ...`
    Wsus,
    /// `sync: SMS synchronizing ...`
    Sms,
    /// `sync: Replica WSUS synchronizing ...`
    Replica,
}

/// A comma-separated list of site codes as written in the log (`PS1, PS2`), borrowed;
/// serialized as a JSON array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteList<'a>(pub Cow<'a, str>);

impl SiteList<'_> {
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.split(',').map(str::trim).filter(|s| !s.is_empty())
    }
}

impl Serialize for SiteList<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for SiteList<'_> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let sites: Vec<String> = Vec::deserialize(d)?;
        Ok(SiteList(Cow::Owned(sites.join(", "))))
    }
}

/// [`Event`], and its externally tagged twin that decodes it without buffering (see
/// [`crate::tagged`]), from one list of variants and container attributes: the twin cannot
/// drift from it. (rustfmt leaves the inside of a macro call as it is: the variants are kept in
/// its style by hand.) Tests also get serde's own internally tagged decoder of the same
/// variants, to hold the twin to it.
macro_rules! events {
    ($(#[$attr:meta])* pub enum Event<'a> { $($variants:tt)* }) => {
        #[derive(Debug, Clone, PartialEq, Serialize)]
        $(#[$attr])*
        #[serde(tag = "type")]
        pub enum Event<'a> { $($variants)* }

        /// `Event` as `{"<type>": {...fields}}`: its derive constructs `Event` itself.
        #[derive(Deserialize)]
        $(#[$attr])*
        #[serde(remote = "Event")]
        #[allow(dead_code)] // only its derive is used
        enum EventByVariant<'a> { $($variants)* }

        /// `Event` as serde's derive decodes it: the oracle of `tagged`'s tests.
        #[cfg(test)]
        #[derive(Debug, Serialize, Deserialize)]
        $(#[$attr])*
        #[serde(tag = "type")]
        pub(crate) enum SerdeTagged<'a> { $($variants)* }
    };
}

/// The key of an event's JSON that names its type.
const TAG: &str = "type";

events! {
/// One typed event. Strings borrow from the record's text.
#[serde(rename_all = "snake_case")]
pub enum Event<'a> {
    // --- WsyncMgr.log: trigger
    /// `Wakeup for scheduled regular sync`, `Wakeup by inbox drop`, `Wakeup for a polling cycle`.
    SyncWakeup { reason: Wakeup },
    /// `Found local sync request file` / `Found parent sync notification file CS1.SYN.`;
    /// `full` when the file says so (`FULL.SYN`), `parent` the site code of a parent's file.
    SyncRequestFile {
        trigger: Trigger,
        #[serde(
            borrow,
            skip_serializing_if = "Option::is_none",
            default,
            deserialize_with = "crate::borrow::option"
        )]
        file: Option<Cow<'a, str>>,
        #[serde(
            borrow,
            skip_serializing_if = "Option::is_none",
            default,
            deserialize_with = "crate::borrow::option"
        )]
        parent: Option<Cow<'a, str>>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        full: Option<bool>,
    },
    /// `Starting Sync`
    SyncStarting,
    /// `Performing sync on regular schedule | local request | parent request | retry schedule`
    SyncRequested { trigger: Trigger },
    /// `Read SUPs from SCF for X`
    SupListRead {
        #[serde(borrow)]
        server: Cow<'a, str>,
    },
    /// `Found N SUPs`
    SupCount { count: u32 },
    /// `Found active SUP X from SCF File.`
    SupFound {
        #[serde(borrow)]
        server: Cow<'a, str>,
    },
    // --- phases
    /// `Synchronizing WSUS server X ...`, `Synchronizing SMS database with WSUS server X ...`,
    /// `Synchronizing replica WSUS servers` (no server).
    PhaseStarted {
        phase: Phase,
        #[serde(
            borrow,
            skip_serializing_if = "Option::is_none",
            default,
            deserialize_with = "crate::borrow::option"
        )]
        server: Option<Cow<'a, str>>,
    },
    /// `Done synchronizing WSUS Server X`, `Done synchronizing SMS with WSUS Server X`.
    PhaseDone {
        phase: Phase,
        #[serde(borrow)]
        server: Cow<'a, str>,
    },
    /// `sync: Starting WSUS synchronization` / `sync: Starting Replica WSUS synchronization`.
    WsusSyncStarting { replica: bool },
    /// `sync: WSUS synchronizing updates, processed 122 out of 130 items (93%), ETA in 00:00:03`
    Progress {
        stage: ProgressStage,
        /// `categories`, `updates`, `other items`, ...
        #[serde(borrow)]
        items: Cow<'a, str>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        processed: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        total: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        percent: Option<u8>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        eta_s: Option<u32>,
    },
    /// `Sleeping 2 more minutes ...` / `Sleeping 120 more seconds ...`
    WaitingForWsusResults { seconds: u32 },
    /// `Set content version of update source {GUID} for site CS1 to 33`
    ContentVersionSet {
        #[serde(borrow)]
        update_source: Cow<'a, str>,
        #[serde(borrow)]
        site: Cow<'a, str>,
        version: u64,
    },
    /// `Synchronizing update <GUID> - <title>` (title with its KB, when it has one).
    UpdateSynchronized {
        #[serde(borrow)]
        update_id: Cow<'a, str>,
        #[serde(borrow)]
        title: Cow<'a, str>,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        kb: Option<u32>,
    },
    // --- outcome
    /// `Sync succeeded. Setting sync alert to canceled state on site CS1`
    SyncSucceeded {
        #[serde(borrow)]
        site: Cow<'a, str>,
    },
    /// `Updated 130 items in SMS database, new update source content version is 34`
    ItemsUpdated { items: u64, version: u64 },
    /// `Successfully synced site with parent CS1, version 34`
    SyncedWithParent {
        #[serde(borrow)]
        parent: Cow<'a, str>,
        version: u64,
    },
    /// `Sync time: 0d00h03m53s`
    SyncTime { seconds: u64 },
    /// `Sending sync notification to child site(s): PS1, PS2`
    ChildrenNotified {
        #[serde(borrow)]
        sites: SiteList<'a>,
    },
    /// `SQL Replication type has not been set for ...\CS1.SYN, replicating to (PS1, PS2), inbox: ...`
    NotificationReplicated {
        #[serde(borrow)]
        file: Cow<'a, str>,
        #[serde(borrow)]
        sites: SiteList<'a>,
    },
    /// `Sync failed: <message>. Source: <source>`
    SyncFailed {
        #[serde(borrow)]
        message: Cow<'a, str>,
        #[serde(
            borrow,
            skip_serializing_if = "Option::is_none",
            default,
            deserialize_with = "crate::borrow::option"
        )]
        source: Option<Cow<'a, str>>,
    },
    /// `Sync failed. Will retry in 60 minutes`
    RetryScheduled { minutes: u32 },
    /// `Failed to sync update <GUID>. Error: <message> Source: <source>`
    UpdateFailed {
        #[serde(borrow)]
        update_id: Cow<'a, str>,
        #[serde(borrow)]
        message: Cow<'a, str>,
        #[serde(
            borrow,
            skip_serializing_if = "Option::is_none",
            default,
            deserialize_with = "crate::borrow::option"
        )]
        source: Option<Cow<'a, str>>,
    },
    /// `Too many consecutive failures. Aborting sync.`
    SyncAborted,
    // --- maintenance
    /// `Cleanup processed N total updates and declined N`
    CleanupDone { processed: u64, declined: u64 },
    /// `Deleting old expired updates...`
    ExpiredUpdatesDeleting,
    /// `Deleted N expired updates total`
    ExpiredUpdatesDeleted { count: u64 },
    /// `Deleted N orphaned content folders`
    OrphanedContentDeleted { count: u64 },
    /// A status message of the WSUS sync catalogue (6700-6711), with its meaning.
    SyncStatus {
        id: u16,
        #[serde(borrow)]
        name: Cow<'a, str>,
    },
    /// `STATMSG: (NAME).`, the symbolic form some components write.
    SymbolicStatus {
        #[serde(borrow)]
        name: Cow<'a, str>,
    },
    // --- WCM.log
    /// `Setting new configuration state to 2 (WSUS_CONFIG_SUCCESS)`
    WsusConfigState {
        state: u8,
        #[serde(borrow)]
        name: Cow<'a, str>,
    },
    // --- SMSProv.log / SMSDBMON.log
    /// `ExecMethodAsync : SMS_SoftwareUpdate::SyncNow`
    SyncNowRequested,
    /// `RCV: UPDATE on Update_SyncStatus for SyncNotif_WSyncMgr [SELF][47788]`
    SyncNotificationReceived {
        #[serde(borrow)]
        request: Cow<'a, str>,
        notification_id: u64,
    },
    /// `SND: Dropped E:\...\WSyncMgr.box\SELF.SYN [47788]`
    SyncFileDropped {
        #[serde(borrow)]
        path: Cow<'a, str>,
        full: bool,
        notification_id: u64,
    },
    // --- SoftwareDistribution.log
    /// `AdminDataAccess.StartSubscriptionManually Synchronization manually started`
    WsusManualSyncStarted,
    /// `EventId=382,...` (manual sync started) or `EventId=384,...` (completed successfully).
    WsusEvent {
        event_id: u32,
        #[serde(borrow)]
        message: Cow<'a, str>,
    },
    /// `Firing event SyncFinish...`
    WsusSyncFinished,
}
}

impl<'de: 'a, 'a> Deserialize<'de> for Event<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::tagged::deserialize(d, TAG)
    }
}

impl<'de: 'a, 'a> crate::tagged::ByVariant<'de> for Event<'a> {
    const EXPECTING: &'static str = "an event";

    fn by_variant<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        EventByVariant::deserialize(d)
    }
}

impl Event<'_> {
    /// Every type name, as in JSON; [`Event::type_index`] indexes it.
    pub const TYPE_NAMES: [&'static str; 37] = [
        "sync_wakeup",
        "sync_request_file",
        "sync_starting",
        "sync_requested",
        "sup_list_read",
        "sup_count",
        "sup_found",
        "phase_started",
        "phase_done",
        "wsus_sync_starting",
        "progress",
        "waiting_for_wsus_results",
        "content_version_set",
        "update_synchronized",
        "sync_succeeded",
        "items_updated",
        "synced_with_parent",
        "sync_time",
        "children_notified",
        "notification_replicated",
        "sync_failed",
        "retry_scheduled",
        "update_failed",
        "sync_aborted",
        "cleanup_done",
        "expired_updates_deleting",
        "expired_updates_deleted",
        "orphaned_content_deleted",
        "sync_status",
        "symbolic_status",
        "wsus_config_state",
        "sync_now_requested",
        "sync_notification_received",
        "sync_file_dropped",
        "wsus_manual_sync_started",
        "wsus_event",
        "wsus_sync_finished",
    ];

    /// The event's type name, as in JSON.
    pub fn type_name(&self) -> &'static str {
        Self::TYPE_NAMES[self.type_index()]
    }

    /// Position of the type in [`Event::TYPE_NAMES`] (for counting without maps).
    pub fn type_index(&self) -> usize {
        match self {
            Event::SyncWakeup { .. } => 0,
            Event::SyncRequestFile { .. } => 1,
            Event::SyncStarting => 2,
            Event::SyncRequested { .. } => 3,
            Event::SupListRead { .. } => 4,
            Event::SupCount { .. } => 5,
            Event::SupFound { .. } => 6,
            Event::PhaseStarted { .. } => 7,
            Event::PhaseDone { .. } => 8,
            Event::WsusSyncStarting { .. } => 9,
            Event::Progress { .. } => 10,
            Event::WaitingForWsusResults { .. } => 11,
            Event::ContentVersionSet { .. } => 12,
            Event::UpdateSynchronized { .. } => 13,
            Event::SyncSucceeded { .. } => 14,
            Event::ItemsUpdated { .. } => 15,
            Event::SyncedWithParent { .. } => 16,
            Event::SyncTime { .. } => 17,
            Event::ChildrenNotified { .. } => 18,
            Event::NotificationReplicated { .. } => 19,
            Event::SyncFailed { .. } => 20,
            Event::RetryScheduled { .. } => 21,
            Event::UpdateFailed { .. } => 22,
            Event::SyncAborted => 23,
            Event::CleanupDone { .. } => 24,
            Event::ExpiredUpdatesDeleting => 25,
            Event::ExpiredUpdatesDeleted { .. } => 26,
            Event::OrphanedContentDeleted { .. } => 27,
            Event::SyncStatus { .. } => 28,
            Event::SymbolicStatus { .. } => 29,
            Event::WsusConfigState { .. } => 30,
            Event::SyncNowRequested => 31,
            Event::SyncNotificationReceived { .. } => 32,
            Event::SyncFileDropped { .. } => 33,
            Event::WsusManualSyncStarted => 34,
            Event::WsusEvent { .. } => 35,
            Event::WsusSyncFinished => 36,
        }
    }

    /// Detaches the event from the text it borrows from.
    pub fn into_owned(self) -> Event<'static> {
        // Round-trip through the serde model would allocate twice; the match is explicit instead.
        fn o(c: Cow<'_, str>) -> Cow<'static, str> {
            Cow::Owned(c.into_owned())
        }
        fn oo(c: Option<Cow<'_, str>>) -> Option<Cow<'static, str>> {
            c.map(o)
        }
        match self {
            Event::SyncWakeup { reason } => Event::SyncWakeup { reason },
            Event::SyncRequestFile { trigger, file, parent, full } => {
                Event::SyncRequestFile { trigger, file: oo(file), parent: oo(parent), full }
            }
            Event::SyncStarting => Event::SyncStarting,
            Event::SyncRequested { trigger } => Event::SyncRequested { trigger },
            Event::SupListRead { server } => Event::SupListRead { server: o(server) },
            Event::SupCount { count } => Event::SupCount { count },
            Event::SupFound { server } => Event::SupFound { server: o(server) },
            Event::PhaseStarted { phase, server } => Event::PhaseStarted { phase, server: oo(server) },
            Event::PhaseDone { phase, server } => Event::PhaseDone { phase, server: o(server) },
            Event::WsusSyncStarting { replica } => Event::WsusSyncStarting { replica },
            Event::Progress { stage, items, processed, total, percent, eta_s } => {
                Event::Progress { stage, items: o(items), processed, total, percent, eta_s }
            }
            Event::WaitingForWsusResults { seconds } => Event::WaitingForWsusResults { seconds },
            Event::ContentVersionSet { update_source, site, version } => {
                Event::ContentVersionSet { update_source: o(update_source), site: o(site), version }
            }
            Event::UpdateSynchronized { update_id, title, kb } => {
                Event::UpdateSynchronized { update_id: o(update_id), title: o(title), kb }
            }
            Event::SyncSucceeded { site } => Event::SyncSucceeded { site: o(site) },
            Event::ItemsUpdated { items, version } => Event::ItemsUpdated { items, version },
            Event::SyncedWithParent { parent, version } => {
                Event::SyncedWithParent { parent: o(parent), version }
            }
            Event::SyncTime { seconds } => Event::SyncTime { seconds },
            Event::ChildrenNotified { sites } => Event::ChildrenNotified { sites: SiteList(o(sites.0)) },
            Event::NotificationReplicated { file, sites } => {
                Event::NotificationReplicated { file: o(file), sites: SiteList(o(sites.0)) }
            }
            Event::SyncFailed { message, source } => {
                Event::SyncFailed { message: o(message), source: oo(source) }
            }
            Event::RetryScheduled { minutes } => Event::RetryScheduled { minutes },
            Event::UpdateFailed { update_id, message, source } => {
                Event::UpdateFailed { update_id: o(update_id), message: o(message), source: oo(source) }
            }
            Event::SyncAborted => Event::SyncAborted,
            Event::CleanupDone { processed, declined } => Event::CleanupDone { processed, declined },
            Event::ExpiredUpdatesDeleting => Event::ExpiredUpdatesDeleting,
            Event::ExpiredUpdatesDeleted { count } => Event::ExpiredUpdatesDeleted { count },
            Event::OrphanedContentDeleted { count } => Event::OrphanedContentDeleted { count },
            Event::SyncStatus { id, name } => Event::SyncStatus { id, name: o(name) },
            Event::SymbolicStatus { name } => Event::SymbolicStatus { name: o(name) },
            Event::WsusConfigState { state, name } => Event::WsusConfigState { state, name: o(name) },
            Event::SyncNowRequested => Event::SyncNowRequested,
            Event::SyncNotificationReceived { request, notification_id } => {
                Event::SyncNotificationReceived { request: o(request), notification_id }
            }
            Event::SyncFileDropped { path, full, notification_id } => {
                Event::SyncFileDropped { path: o(path), full, notification_id }
            }
            Event::WsusManualSyncStarted => Event::WsusManualSyncStarted,
            Event::WsusEvent { event_id, message } => Event::WsusEvent { event_id, message: o(message) },
            Event::WsusSyncFinished => Event::WsusSyncFinished,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_match_the_json_tag() {
        let samples = [
            Event::SyncStarting,
            Event::SyncTime { seconds: 1 },
            Event::WsusSyncFinished,
            Event::SupCount { count: 2 },
        ];
        for e in samples {
            let json = serde_json::to_value(&e).unwrap();
            assert_eq!(json["type"], e.type_name());
        }
        let mut sorted = Event::TYPE_NAMES.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), Event::TYPE_NAMES.len());
    }
}
