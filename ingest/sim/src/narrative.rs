//! The lines of one sync run, as WSyncMgr writes them (see the seed reference): wake-up and
//! trigger, SUP list, phases with progress, synchronized updates, outcome, child notification.

use chrono::{DateTime, Duration, Utc};

use statmsg_parse::synth::Rng;

/// How a simulated run goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Succeed,
    Fail,
    /// Goes silent in the WSUS phase and never finishes.
    Stall,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Schedule,
    Manual { full: bool },
    Parent,
    Retry,
}

/// What the run is about.
pub struct RunPlan<'a> {
    pub site: &'a str,
    pub host: &'a str,
    pub parent: Option<&'a str>,
    pub children: &'a [String],
    pub start: DateTime<Utc>,
    /// Whole seconds from `Starting Sync` to the outcome.
    pub seconds: i64,
    pub cause: Cause,
    pub fate: Fate,
    /// Version before the run, and the one a success sets.
    pub version_before: u64,
    pub version_after: u64,
    pub updates: u32,
}

/// A line of the timeline: its time and its message (without trailer).
pub type Line = (DateTime<Utc>, String);

const SOURCE: &str = "{C2D17964-BBDD-4339-B9F3-12D7205B39CC}";

pub fn statmsg(
    id: u16,
    site: &str,
    host: &str,
    t: DateTime<Utc>,
    istr0: &str,
    istr1: &str,
    le: Option<u32>,
) -> String {
    let sev = if id == 6703 { 'E' } else { 'I' };
    let le = le.map(|c| format!(" LE=0X{c:08x}")).unwrap_or_default();
    format!(
        "STATMSG: ID={id} SEV={sev} LEV=M SOURCE=\"SMS Server\" COMP=\"SMS_WSUS_SYNC_MANAGER\" SYS={host} SITE={site} PID=2836 TID=9640 GMTDATE={} ISTR0=\"{istr0}\" ISTR1=\"{istr1}\" ISTR2=\"\" ISTR3=\"\" ISTR4=\"\" ISTR5=\"\" ISTR6=\"\" ISTR7=\"\" ISTR8=\"\" ISTR9=\"\" NUMATTRS=0{le}",
        t.format("%a %b %d %H:%M:%S%.3f %Y")
    )
}

/// The run's lines, in order. The outcome is at exactly `start + seconds`.
pub fn run_lines(plan: &RunPlan<'_>, rng: &mut Rng) -> Vec<Line> {
    let mut out: Vec<Line> = Vec::with_capacity(64 + plan.updates as usize);
    let (site, host) = (plan.site, plan.host);
    let start = plan.start;
    let end = start + Duration::seconds(plan.seconds);
    let ms = Duration::milliseconds;
    let before = |out: &mut Vec<Line>, back: i64, text: String| out.push((start - ms(back), text));
    match plan.cause {
        Cause::Schedule => before(&mut out, 20, "Wakeup for scheduled regular sync".into()),
        Cause::Manual { full } => {
            before(&mut out, 30, "Wakeup by inbox drop".into());
            let file = if full { " FULL.SYN" } else { "" };
            before(&mut out, 20, format!("Found local sync request file{file}"));
        }
        Cause::Parent => {
            before(&mut out, 30, "Wakeup by inbox drop".into());
            before(
                &mut out,
                20,
                format!("Found parent sync notification file {}.SYN.", plan.parent.unwrap_or("CAS")),
            );
        }
        Cause::Retry => before(&mut out, 20, "Wakeup for a polling cycle".into()),
    }
    out.push((start, "Starting Sync".into()));
    let performing = match plan.cause {
        Cause::Schedule => "regular schedule",
        Cause::Manual { .. } => "local request",
        Cause::Parent => "parent request",
        Cause::Retry => "retry schedule",
    };
    let at = |f: f64| start + ms((plan.seconds as f64 * 1000.0 * f) as i64);
    out.push((start + ms(10), format!("Performing sync on {performing}")));
    out.push((start + ms(300), format!("Read SUPs from SCF for {host}")));
    out.push((start + ms(310), "Found 1 SUPs".into()));
    out.push((start + ms(320), format!("Found active SUP {host} from SCF File.")));
    out.push((start + ms(1400), statmsg(6701, site, host, start + ms(1400), "", "", None)));
    out.push((start + ms(2700), statmsg(6704, site, host, start + ms(2700), "", "", None)));
    out.push((start + ms(2710), format!("Synchronizing WSUS server {} ...", host.to_lowercase())));
    out.push((start + ms(3200), "sync: Starting WSUS synchronization".into()));
    out.push((start + ms(6200), "sync: WSUS synchronizing categories".into()));
    out.push((start + ms(11_200), "sync: WSUS synchronizing updates".into()));
    let top = plan.parent.is_none();
    let wsus_end = if top { 0.45 } else { 0.8 };
    let total = u64::from(plan.updates) + 20 + rng.below(200);
    let steps = (total / 40).max(1);
    let stall_at = if plan.fate == Fate::Stall { 1 + rng.below(steps) } else { u64::MAX };
    for k in 1..=steps {
        let done = total * k / steps;
        let f = 0.05 + (wsus_end - 0.1) * k as f64 / steps as f64;
        let eta = if done < total {
            format!(", ETA in 00:{:02}:{:02}", rng.below(60), rng.below(60))
        } else {
            String::new()
        };
        out.push((
            at(f),
            format!(
                "sync: WSUS synchronizing updates, processed {done} out of {total} items ({}%){eta}",
                done * 100 / total
            ),
        ));
        if k == stall_at {
            return out; // silent from here on
        }
    }
    if plan.fate == Fate::Fail {
        let message = "The operation has timed out";
        let source = "Microsoft.UpdateServices.Administration.AdminProxy.CreateUpdateServer";
        out.push((end, format!("Sync failed: {message}. Source: {source}")));
        out.push((end, statmsg(6703, site, host, end, source, message, Some(0x8013_150A))));
        out.push((end + ms(10), "Sync failed. Will retry in 60 minutes".into()));
        return out;
    }
    out.push((at(wsus_end), format!("Done synchronizing WSUS Server {host}")));
    out.push((
        at(wsus_end) + ms(10),
        "Sleeping 2 more minutes for WSUS server sync results to become available".into(),
    ));
    let content_at = at(wsus_end + 0.05);
    if top {
        out.push((
            content_at,
            format!(
                "Set content version of update source {SOURCE} for site {site} to {}",
                plan.version_before
            ),
        ));
        out.push((at(0.55), statmsg(6705, site, host, at(0.55), "", "", None)));
        out.push((at(0.55) + ms(10), format!("Synchronizing SMS database with WSUS server {host} ...")));
        out.push((at(0.56), "sync: SMS synchronizing categories".into()));
        out.push((at(0.58), "sync: SMS synchronizing updates".into()));
        for u in 0..plan.updates {
            let f = 0.6 + 0.35 * f64::from(u) / f64::from(plan.updates.max(1));
            let guid = rng.guid();
            let kb = 5_000_000 + rng.below(99_999);
            out.push((at(f), format!("Synchronizing update {guid} - 2024-08 Cumulative Update for Windows 11 Version 23H2 for x64-based Systems (KB{kb})")));
        }
        out.push((
            at(0.96),
            format!("sync: SMS synchronizing updates, processed {0} out of {0} items (100%)", plan.updates),
        ));
        out.push((at(0.97), format!("Done synchronizing SMS with WSUS Server {}", host.to_lowercase())));
        out.push((
            at(0.98),
            format!(
                "Set content version of update source {SOURCE} for site {site} to {}",
                plan.version_after
            ),
        ));
    } else {
        out.push((
            content_at,
            format!(
                "Set content version of update source {SOURCE} for site {site} to {}",
                plan.version_after
            ),
        ));
    }
    out.push((end, statmsg(6702, site, host, end, "", "", None)));
    out.push((end + ms(10), format!("Sync succeeded. Setting sync alert to canceled state on site {site}")));
    match plan.parent {
        None => out.push((
            end + ms(20),
            format!(
                "Updated {} items in SMS database, new update source content version is {}",
                plan.updates, plan.version_after
            ),
        )),
        Some(parent) => out.push((
            end + ms(20),
            format!("Successfully synced site with parent {parent}, version {}", plan.version_after),
        )),
    }
    let s = plan.seconds;
    out.push((
        end + ms(30),
        format!("Sync time: {}d{:02}h{:02}m{:02}s", s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60),
    ));
    if !plan.children.is_empty() {
        let list = plan.children.join(", ");
        out.push((end + ms(300), format!("Sending sync notification to child site(s): {list}")));
        out.push((end + ms(310), format!("SQL Replication type has not been set for E:\\ConfigMgr\\inboxes\\WSyncMgr.box\\outbox\\{site}.SYN, replicating to ({list}), inbox: E:\\ConfigMgr\\inboxes\\replmgr.box")));
    }
    if plan.parent.is_none() {
        // WSUS maintenance after a successful sync of the top site (never after a failure).
        let processed = 400 + 3 * u64::from(plan.updates);
        let declined = u64::from(plan.updates) / 4;
        out.push((
            end + ms(900),
            format!("Cleanup processed {processed} total updates and declined {declined}"),
        ));
    }
    out
}

/// The trigger chain of a console "Synchronize now" before the run it starts at `start`:
/// SMSProv.log's `SyncNow`, then SMSDBMON's notification and `SELF.SYN` drop.
pub fn console_trigger(start: DateTime<Utc>, id: u64) -> Vec<super::OtherLine> {
    let ms = Duration::milliseconds;
    vec![
        (
            "SMSProv",
            "SMS Provider",
            start - ms(3000),
            "ExecMethodAsync : SMS_SoftwareUpdate::SyncNow".to_owned(),
        ),
        (
            "smsdbmon",
            "SMS_DATABASE_NOTIFICATION_MONITOR",
            start - ms(2000),
            format!("RCV: UPDATE on Update_SyncStatus for SyncNotif_WSyncMgr [SELF][{id}]"),
        ),
        (
            "smsdbmon",
            "SMS_DATABASE_NOTIFICATION_MONITOR",
            start - ms(1500),
            format!("SND: Dropped E:\\ConfigMgr\\inboxes\\WSyncMgr.box\\SELF.SYN [{id}]"),
        ),
    ]
}
