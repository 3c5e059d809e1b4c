//! The status messages of WSUS synchronization (component `SMS_WSUS_SYNC_MANAGER`): what each
//! id means and how severe it is.

use serde::Serialize;

/// Severity as ConfigMgr states it (`SEV=I|W|E`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Informational,
    Warning,
    Error,
}

/// One catalogue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StatusInfo {
    pub id: u16,
    /// Stable snake_case name (used in events and dashboards).
    pub name: &'static str,
    pub severity: Severity,
    pub description: &'static str,
}

const fn entry(id: u16, name: &'static str, severity: Severity, description: &'static str) -> StatusInfo {
    StatusInfo { id, name, severity, description }
}

/// Ids 6700-6711.
pub const SYNC_STATUS: [StatusInfo; 12] = [
    entry(
        6700,
        "sync_manager_other",
        Severity::Informational,
        "WSUS Synchronization Manager message not described in the reference (kept as is)",
    ),
    entry(6701, "sync_started", Severity::Informational, "WSUS synchronization started"),
    entry(6702, "sync_done", Severity::Informational, "WSUS synchronization done"),
    entry(
        6703,
        "sync_failed",
        Severity::Error,
        "WSUS synchronization failed; ISTR0 is the exception source, ISTR1 the message, LE the HRESULT",
    ),
    entry(
        6704,
        "phase_wsus_server",
        Severity::Informational,
        "WSUS synchronization in progress, phase: synchronizing WSUS server",
    ),
    entry(
        6705,
        "phase_site_database",
        Severity::Informational,
        "WSUS synchronization in progress, phase: synchronizing site database",
    ),
    entry(
        6706,
        "phase_replicas",
        Severity::Informational,
        "WSUS synchronization in progress, phase: synchronizing Internet-facing (replica) WSUS servers",
    ),
    entry(
        6707,
        "wsus_out_of_sync",
        Severity::Warning,
        "content of WSUS server %1 is out of sync with upstream server %2",
    ),
    entry(
        6708,
        "sync_done_pending_license_terms",
        Severity::Warning,
        "synchronization complete, with pending license-terms downloads",
    ),
    entry(6709, "legacy_sync_started", Severity::Informational, "legacy update synchronization started"),
    entry(6710, "legacy_sync_done", Severity::Informational, "legacy update synchronization done"),
    entry(6711, "legacy_sync_failed", Severity::Error, "legacy update synchronization failed"),
];

/// The catalogue entry of a status message id, if it is one of WSUS synchronization's.
pub fn sync_status(id: u16) -> Option<&'static StatusInfo> {
    id.checked_sub(6700).and_then(|i| SYNC_STATUS.get(usize::from(i)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_in_order_and_found() {
        for (i, e) in SYNC_STATUS.iter().enumerate() {
            assert_eq!(usize::from(e.id), 6700 + i);
            assert_eq!(sync_status(e.id), Some(e));
        }
        assert_eq!(sync_status(6712), None);
        assert_eq!(sync_status(42), None);
        assert_eq!(sync_status(6703).map(|e| e.severity), Some(Severity::Error));
    }
}
