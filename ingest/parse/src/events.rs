//! Typed events from a record's message: the narrative of a WSUS sync in WsyncMgr.log, WCM.log's
//! configuration state, the SMSProv/SMSDBMON trigger chain and WSUS's own log. Dispatches on the
//! first byte, then matches fixed phrases; strings borrow from the message.

use std::borrow::Cow;

use statmsg_schema::catalog::sync_status;
use statmsg_schema::event::{Phase, ProgressStage, SiteList, Trigger, Wakeup};
use statmsg_schema::{Event, StatusMessage};

/// The event a message stands for, if statmsg knows it. `message` is the raw message (trailing
/// spaces and `~` codes removed).
pub fn classify<'a>(message: &'a str, statmsg: Option<&StatusMessage<'a>>) -> Option<Event<'a>> {
    if let Some(m) = statmsg {
        return sync_status(m.id)
            .filter(|_| m.comp == "SMS_WSUS_SYNC_MANAGER")
            .map(|info| Event::SyncStatus { id: m.id, name: Cow::Borrowed(info.name) });
    }
    let b = message.as_bytes();
    match b.first()? {
        b'W' => wakeup(message),
        b'F' => found(message).or_else(|| firing(message)).or_else(|| update_failed(message)),
        b'S' => s_phrases(message),
        b's' => progress(message),
        b'P' => performing(message),
        b'R' => read_sups(message).or_else(|| dbmon_received(message)),
        b'D' => done_or_deleted(message),
        b'U' => items_updated(message),
        b'C' => cleanup(message),
        b'T' => (message == "Too many consecutive failures. Aborting sync.").then_some(Event::SyncAborted),
        b'E' => exec_or_wsus_event(message),
        _ => None,
    }
}

/// Substring search without building a searcher per call (these needles are short and the
/// haystacks short lines): candidates by their first byte, then a prefix compare; a word at a
/// time for short haystacks, where setting up a vector search costs more than it saves.
/// Inlined, so that each call site compares against its constant needle.
#[inline(always)]
fn find(hay: &str, needle: &str) -> Option<usize> {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    let first = *n.first()?;
    if h.len() <= 64 {
        let mut from = 0;
        while let Some(i) = super::text::find_byte(&h[from..], first) {
            if has_prefix(&h[from + i..], n) {
                return Some(from + i);
            }
            from += i + 1;
        }
        return None;
    }
    memchr::memchr_iter(first, h).find(|&i| has_prefix(&h[i..], n))
}

/// `starts_with`, compared inline: a `memcmp` call costs more than comparing a short needle.
#[inline(always)]
fn has_prefix(hay: &[u8], prefix: &[u8]) -> bool {
    hay.len() >= prefix.len() && hay.iter().zip(prefix).all(|(a, b)| a == b)
}

#[inline(always)]
fn split_once<'a>(hay: &'a str, needle: &str) -> Option<(&'a str, &'a str)> {
    let i = find(hay, needle)?;
    Some((&hay[..i], &hay[i + needle.len()..]))
}

fn cow(s: &str) -> Cow<'_, str> {
    Cow::Borrowed(s)
}

fn num<T: std::str::FromStr>(s: &str) -> Option<T> {
    s.trim().parse().ok()
}

fn wakeup(m: &str) -> Option<Event<'_>> {
    let reason = match m {
        "Wakeup for scheduled regular sync" => Wakeup::Schedule,
        "Wakeup by inbox drop" => Wakeup::InboxDrop,
        "Wakeup for a polling cycle" => Wakeup::Polling,
        _ => return None,
    };
    Some(Event::SyncWakeup { reason })
}

fn found(m: &str) -> Option<Event<'_>> {
    if let Some(rest) = m.strip_prefix("Found local sync request file") {
        let file = rest.trim().trim_end_matches('.');
        let file = (!file.is_empty()).then_some(file);
        return Some(Event::SyncRequestFile {
            trigger: Trigger::Local,
            file: file.map(cow),
            parent: None,
            full: file.map(|f| f.eq_ignore_ascii_case("FULL.SYN")),
        });
    }
    if let Some(rest) = m.strip_prefix("Found parent sync notification file ") {
        let file = rest.trim().trim_end_matches('.').trim_end();
        let is_syn = file.len() >= 4 && file.as_bytes()[file.len() - 4..].eq_ignore_ascii_case(b".SYN");
        let file = if is_syn { file } else { file.trim_end_matches('.') };
        let parent = if is_syn { file.get(..file.len() - 4).filter(|p| !p.is_empty()) } else { None };
        return Some(Event::SyncRequestFile {
            trigger: Trigger::Parent,
            file: Some(cow(file)),
            parent: parent.map(cow),
            full: None,
        });
    }
    if let Some(rest) = m.strip_prefix("Found active SUP ") {
        return Some(Event::SupFound { server: cow(rest.trim_end_matches(" from SCF File.").trim()) });
    }
    let count = m.strip_prefix("Found ")?.strip_suffix(" SUPs")?;
    Some(Event::SupCount { count: num(count)? })
}

fn firing(m: &str) -> Option<Event<'_>> {
    m.starts_with("Firing event SyncFinish").then_some(Event::WsusSyncFinished)
}

/// `Failed to sync update <GUID>. Error: <message> Source: <source>`
fn update_failed(m: &str) -> Option<Event<'_>> {
    let rest = m.strip_prefix("Failed to sync update ")?;
    let (update_id, rest) = split_once(rest, ". Error: ")?;
    let (message, source) = match rest.rsplit_once(" Source: ") {
        Some((msg, src)) => (msg, Some(cow(src.trim()))),
        None => (rest, None),
    };
    Some(Event::UpdateFailed { update_id: cow(update_id), message: cow(message.trim()), source })
}

fn s_phrases(m: &str) -> Option<Event<'_>> {
    // The most frequent lines of a sync (one per update) first.
    if let Some(rest) = m.strip_prefix("Synchronizing ") {
        return synchronizing(rest);
    }
    if m == "Starting Sync" {
        return Some(Event::SyncStarting);
    }
    s_other(m)
}

/// After `Synchronizing `: an update, a phase.
fn synchronizing(rest: &str) -> Option<Event<'_>> {
    match rest.as_bytes().first()? {
        b'u' => update_synchronized(rest.strip_prefix("update ")?),
        b'r' => (rest == "replica WSUS servers")
            .then_some(Event::PhaseStarted { phase: Phase::Replicas, server: None }),
        b'S' => Some(Event::PhaseStarted {
            phase: Phase::SiteDatabase,
            server: Some(cow(server_name(rest.strip_prefix("SMS database with WSUS server ")?))),
        }),
        b'W' => Some(Event::PhaseStarted {
            phase: Phase::WsusServer,
            server: Some(cow(server_name(rest.strip_prefix("WSUS server ")?))),
        }),
        _ => None,
    }
}

/// `<GUID> - <title>`
#[inline]
fn update_synchronized(rest: &str) -> Option<Event<'_>> {
    let (update_id, title) = split_guid(rest).or_else(|| split_once(rest, " - "))?;
    let kb = kb_number(title);
    Some(Event::UpdateSynchronized { update_id: cow(update_id), title: cow(title.trim()), kb })
}

/// The number after the first `KB` of an update title, if digits follow it.
#[inline]
fn kb_number(title: &str) -> Option<u32> {
    static KB: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new("KB"));
    let b = title.as_bytes();
    let at = KB.find(b)? + 2;
    let len = b[at..].iter().take_while(|d| d.is_ascii_digit()).count();
    if len == 0 || len > 9 {
        // None, or too long for the straight read: as `parse` says.
        return title[at..at + len].parse().ok();
    }
    Some(b[at..at + len].iter().fold(0, |n, &d| n * 10 + u32::from(d - b'0')))
}

/// The usual `<36-character GUID> - <title>` split without a search: what `split_once(" - ")`
/// gives when the first 36 bytes hold no space.
#[inline]
fn split_guid(rest: &str) -> Option<(&str, &str)> {
    const GUID: usize = 36;
    let b = rest.as_bytes();
    // Without an early exit, the space check is a few vector compares.
    if b.get(GUID..GUID + 3)? != b" - " || b[..GUID].iter().fold(false, |space, &c| space | (c == b' ')) {
        return None;
    }
    Some((&rest[..GUID], &rest[GUID + 3..]))
}

fn s_other(m: &str) -> Option<Event<'_>> {
    if let Some(rest) = m.strip_prefix("Sync succeeded. Setting sync alert to canceled state on site ") {
        return Some(Event::SyncSucceeded { site: cow(rest.trim()) });
    }
    if let Some(rest) = m.strip_prefix("Sync failed. Will retry in ") {
        return Some(Event::RetryScheduled { minutes: num(rest.strip_suffix(" minutes")?)? });
    }
    if let Some(rest) = m.strip_prefix("Sync failed: ") {
        // The message itself may end in a period: split at the last ". Source: ".
        let (message, source) = match rest.rsplit_once(". Source: ") {
            Some((msg, src)) => (msg, Some(cow(src.trim()))),
            None => (rest, None),
        };
        return Some(Event::SyncFailed { message: cow(message), source });
    }
    if let Some(rest) = m.strip_prefix("Sync time: ") {
        return Some(Event::SyncTime { seconds: duration_dhms(rest.trim())? });
    }
    if let Some(rest) = m.strip_prefix("Sleeping ") {
        let (n, unit) = rest.split_once(' ')?;
        let n: u32 = num(n)?;
        let seconds = if unit.starts_with("more minute") {
            n * 60
        } else if unit.starts_with("more second") {
            n
        } else {
            return None;
        };
        return Some(Event::WaitingForWsusResults { seconds });
    }
    if let Some(rest) = m.strip_prefix("Set content version of update source ") {
        let (source, rest) = split_once(rest, " for site ")?;
        let (site, version) = split_once(rest, " to ")?;
        return Some(Event::ContentVersionSet {
            update_source: cow(source),
            site: cow(site),
            version: num(version)?,
        });
    }
    if let Some(rest) = m.strip_prefix("Sending sync notification to child site(s): ") {
        return Some(Event::ChildrenNotified { sites: SiteList(cow(rest.trim())) });
    }
    if let Some(rest) = m.strip_prefix("Successfully synced site with parent ") {
        let (parent, version) = split_once(rest, ", version ")?;
        return Some(Event::SyncedWithParent { parent: cow(parent), version: num(version)? });
    }
    if let Some(rest) = m.strip_prefix("SQL Replication type has not been set for ") {
        let (file, rest) = split_once(rest, ", replicating to (")?;
        let (sites, _) = rest.split_once(')')?;
        return Some(Event::NotificationReplicated { file: cow(file), sites: SiteList(cow(sites)) });
    }
    if let Some(rest) = m.strip_prefix("Setting new configuration state to ") {
        let (state, name) = rest.split_once(' ')?;
        let name = name.trim().trim_start_matches('(').trim_end_matches(')');
        return Some(Event::WsusConfigState { state: num(state)?, name: cow(name) });
    }
    if let Some(rest) = m.strip_prefix("SND: Dropped ") {
        let (path, id) = rest.rsplit_once(" [")?;
        let file = path.rsplit(['\\', '/']).next()?;
        if !file.to_ascii_uppercase().ends_with(".SYN") {
            return None;
        }
        return Some(Event::SyncFileDropped {
            path: cow(path),
            full: file.eq_ignore_ascii_case("FULL.SYN"),
            notification_id: num(id.trim_end_matches(']'))?,
        });
    }
    None
}

/// `ps1site.contoso.com ...` -> `ps1site.contoso.com`
fn server_name(rest: &str) -> &str {
    rest.trim_end_matches('.').trim()
}

/// `0d00h03m53s` -> 233
fn duration_dhms(s: &str) -> Option<u64> {
    let (d, rest) = s.split_once('d')?;
    let (h, rest) = rest.split_once('h')?;
    let (m, rest) = rest.split_once('m')?;
    let sec = rest.strip_suffix('s')?;
    Some(num::<u64>(d)? * 86_400 + num::<u64>(h)? * 3600 + num::<u64>(m)? * 60 + num::<u64>(sec)?)
}

/// `sync: WSUS synchronizing updates, processed 122 out of 130 items (93%), ETA in 00:00:03`
fn progress(m: &str) -> Option<Event<'_>> {
    let rest = m.strip_prefix("sync: ")?;
    match rest {
        "Starting WSUS synchronization" => return Some(Event::WsusSyncStarting { replica: false }),
        "Starting Replica WSUS synchronization" => return Some(Event::WsusSyncStarting { replica: true }),
        _ => {}
    }
    let (stage, rest) = if let Some(r) = rest.strip_prefix("WSUS synchronizing ") {
        (ProgressStage::Wsus, r)
    } else if let Some(r) = rest.strip_prefix("SMS synchronizing ") {
        (ProgressStage::Sms, r)
    } else if let Some(r) = rest.strip_prefix("Replica WSUS synchronizing ") {
        (ProgressStage::Replica, r)
    } else {
        return None;
    };
    let (items, counts) = match split_once(rest, ", processed ") {
        Some((items, counts)) => (items, Some(counts)),
        None => (rest, None),
    };
    let (processed, total, percent, eta_s) = match counts {
        Some(counts) => usual_counts(counts).or_else(|| counts_by_search(counts))?,
        None => (None, None, None, None),
    };
    Some(Event::Progress { stage, items: cow(items.trim()), processed, total, percent, eta_s })
}

/// Processed, total, percent and ETA of a progress line.
type Counts = (Option<u64>, Option<u64>, Option<u8>, Option<u32>);

/// `122 out of 130 items (93%), ETA in 00:00:03`, read by searching for each part; `None` when
/// the line is not a progress line at all.
fn counts_by_search(counts: &str) -> Option<Counts> {
    let (p, rest) = split_once(counts, " out of ")?;
    let (t, rest) = split_once(rest, " items")?;
    let percent = split_once(rest, "(").and_then(|(_, r)| split_once(r, "%)")).and_then(|(p, _)| num(p));
    let eta_s = split_once(rest, "ETA in ").and_then(|(_, t)| clock_seconds(t.trim()));
    Some((count(p), count(t), percent, eta_s))
}

/// The layout WsyncMgr writes (`122 out of 130 items (93%)`, then `, ETA in HH:MM:SS` or
/// nothing) read straight through, as [`counts_by_search`] would read it; `None` for anything
/// else, left to it.
#[inline]
fn usual_counts(counts: &str) -> Option<Counts> {
    let b = counts.as_bytes();
    let (processed, b) = leading_count(b)?;
    let (total, b) = leading_count(b.strip_prefix(b" out of ")?)?;
    let (percent, b) = leading_count(b.strip_prefix(b" items (")?)?;
    let b = b.strip_prefix(b"%)")?;
    let eta_s = match b {
        [] => None,
        _ => Some(clock_seconds(std::str::from_utf8(b.strip_prefix(b", ETA in ")?).ok()?.trim())?),
    };
    Some((Some(processed), Some(total), Some(u8::try_from(percent).ok()?), eta_s))
}

/// The 1 to 19 digits at the start of `b`, and what follows them.
#[inline]
fn leading_count(b: &[u8]) -> Option<(u64, &[u8])> {
    let len = b.iter().take_while(|d| d.is_ascii_digit()).count();
    if len == 0 || len > 19 {
        return None;
    }
    Some((b[..len].iter().fold(0, |n, &d| n * 10 + u64::from(d - b'0')), &b[len..]))
}

/// A count: plain digits read in place (the usual case), anything else as [`num`] reads it.
#[inline]
fn count(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 19 || !b.iter().all(u8::is_ascii_digit) {
        return num(s);
    }
    Some(b.iter().fold(0, |n, &d| n * 10 + u64::from(d - b'0')))
}

/// `00:00:03` -> 3
fn clock_seconds(s: &str) -> Option<u32> {
    let b = s.as_bytes();
    if b.len() == 8 && b[2] == b':' && b[5] == b':' {
        let two = |i: usize| {
            let (t, o) = (b[i].wrapping_sub(b'0'), b[i + 1].wrapping_sub(b'0'));
            (t < 10 && o < 10).then(|| u32::from(t) * 10 + u32::from(o))
        };
        if let (Some(h), Some(m), Some(sec)) = (two(0), two(3), two(6)) {
            return Some(h * 3600 + m * 60 + sec);
        }
    }
    let mut parts = s.split(':');
    let (h, m, sec) = (num::<u32>(parts.next()?)?, num::<u32>(parts.next()?)?, num::<u32>(parts.next()?)?);
    // An absurd ETA is no ETA (never an overflow).
    h.checked_mul(3600)?.checked_add(m.checked_mul(60)?)?.checked_add(sec)
}

fn performing(m: &str) -> Option<Event<'_>> {
    let trigger = match m.strip_prefix("Performing sync on ")? {
        "regular schedule" => Trigger::Schedule,
        "local request" => Trigger::Local,
        "parent request" => Trigger::Parent,
        "retry schedule" => Trigger::Retry,
        _ => return None,
    };
    Some(Event::SyncRequested { trigger })
}

fn read_sups(m: &str) -> Option<Event<'_>> {
    Some(Event::SupListRead { server: cow(m.strip_prefix("Read SUPs from SCF for ")?.trim()) })
}

/// `RCV: UPDATE on Update_SyncStatus for SyncNotif_WSyncMgr [SELF][47788]`
fn dbmon_received(m: &str) -> Option<Event<'_>> {
    let rest = m.strip_prefix("RCV: UPDATE on Update_SyncStatus for SyncNotif_WSyncMgr [")?;
    let (request, rest) = split_once(rest, "][")?;
    Some(Event::SyncNotificationReceived {
        request: cow(request),
        notification_id: num(rest.trim_end_matches(']'))?,
    })
}

fn done_or_deleted(m: &str) -> Option<Event<'_>> {
    if let Some(rest) = m.strip_prefix("Done synchronizing SMS with WSUS Server ") {
        return Some(Event::PhaseDone { phase: Phase::SiteDatabase, server: cow(rest.trim()) });
    }
    if let Some(rest) = m.strip_prefix("Done synchronizing WSUS Server ") {
        return Some(Event::PhaseDone { phase: Phase::WsusServer, server: cow(rest.trim()) });
    }
    if m.starts_with("Deleting old expired updates") {
        return Some(Event::ExpiredUpdatesDeleting);
    }
    let rest = m.strip_prefix("Deleted ")?;
    let (n, what) = rest.split_once(' ')?;
    if what.starts_with("expired updates") {
        return Some(Event::ExpiredUpdatesDeleted { count: num(n)? });
    }
    if what.starts_with("orphaned content folders") {
        return Some(Event::OrphanedContentDeleted { count: num(n)? });
    }
    None
}

/// `Updated 130 items in SMS database, new update source content version is 34`
fn items_updated(m: &str) -> Option<Event<'_>> {
    let rest = m.strip_prefix("Updated ")?;
    let (items, rest) = split_once(rest, " items in SMS database, new update source content version is ")?;
    Some(Event::ItemsUpdated { items: num(items)?, version: num(rest)? })
}

/// `Cleanup processed 12 total updates and declined 3`
fn cleanup(m: &str) -> Option<Event<'_>> {
    let rest = m.strip_prefix("Cleanup processed ")?;
    let (processed, declined) = split_once(rest, " total updates and declined ")?;
    Some(Event::CleanupDone { processed: num(processed)?, declined: num(declined)? })
}

fn exec_or_wsus_event(m: &str) -> Option<Event<'_>> {
    if m.starts_with("ExecMethodAsync : SMS_SoftwareUpdate::SyncNow") {
        return Some(Event::SyncNowRequested);
    }
    let rest = m.strip_prefix("EventId=")?;
    let (id, rest) = rest.split_once(',')?;
    let message = split_once(rest, "Message=").map_or("", |(_, msg)| msg);
    Some(Event::WsusEvent { event_id: num(id)?, message: cow(message.trim()) })
}

/// WSUS's own `Synchronization manually started` (its class names the manual start).
pub fn classify_wsus<'a>(component: &str, message: &'a str) -> Option<Event<'a>> {
    if component.ends_with("StartSubscriptionManually") {
        return Some(Event::WsusManualSyncStarted);
    }
    classify(message, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_clocks() {
        assert_eq!(duration_dhms("0d00h03m53s"), Some(233));
        assert_eq!(duration_dhms("1d02h00m00s"), Some(93_600));
        assert_eq!(clock_seconds("00:01:03"), Some(63));
        assert_eq!(clock_seconds("4294967295:00:00"), None, "found by review: overflowed");
    }

    #[test]
    fn sync_failed_splits_at_the_last_source() {
        let e = classify("Sync failed: WSUS server not configured. Please refer to WCM.log for configuration error details.. Source: CWSyncMgr::DoSync", None);
        assert_eq!(
            e,
            Some(Event::SyncFailed {
                message: cow(
                    "WSUS server not configured. Please refer to WCM.log for configuration error details."
                ),
                source: Some(cow("CWSyncMgr::DoSync"))
            })
        );
    }

    #[test]
    fn progress_counts_read_straight_as_by_search() {
        for counts in [
            "122 out of 130 items (93%), ETA in 00:00:03",
            "0 out of 284 items (0%)",
            "007 out of 9 items (100%), ETA in 99:59:59",
            "5 out of 9 items (300%), ETA in 00:00:01",
            "5 out of 9 items (3%), ETA in 0:00:01",
            "5 out of 9 items (3%), ETA in 00:00:1x",
            "5 out of 9 items (3%) trailing",
            "5 out of 9 items, ETA in 00:00:01",
            "5  out of 9 items (3%)",
            "99999999999999999999 out of 9 items (3%)",
        ] {
            let straight = usual_counts(counts);
            assert!(straight.is_none() || straight == counts_by_search(counts), "{counts}");
        }
        assert!(usual_counts("122 out of 130 items (93%), ETA in 00:00:03").is_some());
        assert!(usual_counts("0 out of 284 items (0%)").is_some());
    }

    #[test]
    fn near_misses_are_not_events() {
        for m in [
            "Wakeup",
            "Found 3 things",
            "sync: something else",
            "Performing sync on Tuesday",
            "Deleted everything",
            "Sleeping 5 more hours",
        ] {
            assert_eq!(classify(m, None), None, "{m}");
        }
    }
}
