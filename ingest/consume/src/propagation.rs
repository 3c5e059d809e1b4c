//! Which `version_propagation` rows a consumer writes: for every child site it owns (the sites of
//! its partitions), each version of the child's parent with when the child reached it, whenever
//! that row differs from what this consumer last wrote. Only the child's owner writes a pair's
//! rows: it alone knows when the child reached a version; the parent's versions come from the
//! tracker, for a parent another consumer owns through the state topic. So what is stored does
//! not depend on how records were batched nor on which consumer read which partition, and a row
//! is written again when it changes (the child reaching a version later).
//!
//! Pure: tracker states in, rows out. After a restart nothing is remembered, and every owned
//! child's rows are written once more (idempotent).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use statmsg_track::{Propagation, SiteState, Tracker, VERSION_HISTORY};

/// A pair: (hierarchy, parent, child).
type Pair = (String, String, String);

/// What a row said when it was last written: when the parent and the child reached the version.
type Written = (DateTime<Utc>, Option<DateTime<Utc>>);

#[derive(Debug, Default)]
pub struct PropagationMemo {
    /// Per pair, per version: the newest [`VERSION_HISTORY`] versions written (the parent keeps
    /// no more).
    written: HashMap<Pair, BTreeMap<u64, Written>>,
}

impl PropagationMemo {
    /// The rows of `children` (sites this consumer owns) that differ from what was last written.
    pub fn changed<'a>(
        &self,
        tracker: &Tracker,
        children: impl Iterator<Item = &'a SiteState>,
    ) -> Vec<Propagation> {
        let mut rows = Vec::new();
        for child in children {
            let Some(parent) = tracker.parent_of(child) else { continue };
            let pair = (child.hierarchy.clone(), parent.site.clone(), child.site.clone());
            let written = self.written.get(&pair);
            for row in tracker.propagation_since(parent, child, None) {
                let now = (row.parent_reached, row.child_reached);
                if written.and_then(|w| w.get(&row.version)) != Some(&now) {
                    rows.push(row);
                }
            }
        }
        rows
    }

    /// Notes `rows` as written (once InfluxDB acknowledged them).
    pub fn written(&mut self, rows: &[Propagation]) {
        for row in rows {
            let pair = (row.hierarchy.clone(), row.parent.clone(), row.child.clone());
            let versions = self.written.entry(pair).or_default();
            versions.insert(row.version, (row.parent_reached, row.child_reached));
            while versions.len() > VERSION_HISTORY {
                versions.pop_first();
            }
        }
    }
}
