//! What the cluster looks like now: every drive probed, every set's redundancy judged. The
//! health checks, the admin API, the metrics and the dashboard all read this one view.

use std::time::Duration;

use futures::future::join_all;
use serde::Serialize;

use super::AdminState;
use crate::object::RepairStatus;

/// Longest a drive probe waits for an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// One drive as probed now.
#[derive(Clone, Debug, Serialize)]
pub struct DriveView {
    /// Erasure set.
    pub set: usize,
    /// Position in the set.
    pub index: usize,
    /// Name of the node that holds it.
    pub node: String,
    /// Where it is.
    pub endpoint: String,
    /// `online` or `offline`.
    pub state: &'static str,
    /// Size of its file system.
    pub total_bytes: u64,
    /// Space left.
    pub free_bytes: u64,
    /// Space used.
    pub used_bytes: u64,
    /// Operations it failed, as this process saw them.
    pub errors: u64,
}

impl DriveView {
    /// Whether the drive answered with its format record.
    pub fn online(&self) -> bool {
        self.state == "online"
    }
}

/// The redundancy of one erasure set.
#[derive(Clone, Debug, Serialize)]
pub struct SetView {
    /// Set number.
    pub set: usize,
    /// `full`, `degraded`, `below_write_quorum` or `below_read_quorum`.
    pub state: &'static str,
    /// Drives in the set.
    pub drives: usize,
    /// Drives that answer.
    pub online: usize,
    /// Drives a write needs.
    pub write_quorum: usize,
    /// Drives a read needs.
    pub read_quorum: usize,
    /// Drives it can lose and still be read.
    pub tolerance: usize,
    /// Heal hints waiting.
    pub hints_pending: usize,
    /// Repair has work in hand for it.
    pub repairing: bool,
}

/// Counts of sets by state, and the cluster's health word.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterHealth {
    /// `healthy`, `degraded`, `at_risk` or `unavailable`.
    pub status: &'static str,
    /// Sets in all.
    pub sets_total: usize,
    /// Sets at full redundancy.
    pub sets_full: usize,
    /// Sets missing a drive or a heal, still writable.
    pub sets_degraded: usize,
    /// Sets that take no writes.
    pub sets_below_write_quorum: usize,
    /// Sets that cannot be read.
    pub sets_below_read_quorum: usize,
    /// Every set.
    pub sets: Vec<SetView>,
}

/// Probes every drive of every set concurrently.
pub async fn drives(state: &AdminState) -> Vec<DriveView> {
    let mut probes = Vec::new();
    for (s, set) in state.store.sets().iter().enumerate() {
        for (i, d) in set.drives().iter().enumerate() {
            let node = state
                .layout
                .sets
                .get(s)
                .and_then(|nodes| nodes.get(i))
                .and_then(|n| state.layout.nodes.get(*n))
                .map(|n| n.name.clone())
                .unwrap_or_default();
            let d = d.clone();
            probes.push(async move {
                let probe = async { (d.read_format().await, d.space().await) };
                let (online, space) = match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
                    Ok((Ok(Some(_)), Ok(space))) => (true, space),
                    Ok((Ok(Some(_)), Err(_))) => (true, Default::default()),
                    _ => (false, Default::default()),
                };
                let endpoint = d.endpoint();
                DriveView {
                    set: s,
                    index: i,
                    node,
                    errors: crate::metrics::get().drive_errors(&endpoint),
                    endpoint,
                    state: if online { "online" } else { "offline" },
                    total_bytes: space.total,
                    free_bytes: space.free,
                    used_bytes: space.total.saturating_sub(space.free),
                }
            });
        }
    }
    join_all(probes).await
}

/// Every drive probed and every set's repair status, fetched together, and the health
/// judged from both.
pub async fn cluster(state: &AdminState) -> (Vec<DriveView>, Vec<RepairStatus>, ClusterHealth) {
    let (drives, repair) = tokio::join!(drives(state), (state.repair)());
    let h = health(state, &drives, &repair);
    (drives, repair, h)
}

/// Judges every set from its drives and its repair status.
fn health(state: &AdminState, drives: &[DriveView], repair: &[RepairStatus]) -> ClusterHealth {
    let mut sets = Vec::new();
    for (s, set) in state.store.sets().iter().enumerate() {
        let mine: Vec<&DriveView> = drives.iter().filter(|d| d.set == s).collect();
        let online = mine.iter().filter(|d| d.online()).count();
        let (wq, rq) = (set.write_quorum(), set.read_quorum());
        let r = repair.iter().find(|r| r.set == s);
        let hints = r.map_or(0, |r| r.hints_pending);
        let state = if online < rq {
            "below_read_quorum"
        } else if online < wq {
            "below_write_quorum"
        } else if online < mine.len() || hints > 0 {
            "degraded"
        } else {
            "full"
        };
        let repairing = r.is_some_and(|r| {
            r.leader
                && !r.paused
                && (r.hints_pending > 0 || r.target.as_ref().is_some_and(|t| t.finished_ms == 0))
        });
        sets.push(SetView {
            set: s,
            state,
            drives: mine.len(),
            online,
            write_quorum: wq,
            read_quorum: rq,
            tolerance: online.saturating_sub(rq),
            hints_pending: hints,
            repairing,
        });
    }
    let count = |st: &str| sets.iter().filter(|s| s.state == st).count();
    let status = if count("below_read_quorum") > 0 {
        "unavailable"
    } else if count("below_write_quorum") > 0 || sets.iter().any(|s| s.tolerance == 0) {
        "at_risk"
    } else if count("degraded") > 0 {
        "degraded"
    } else {
        "healthy"
    };
    ClusterHealth {
        status,
        sets_total: sets.len(),
        sets_full: count("full"),
        sets_degraded: count("degraded"),
        sets_below_write_quorum: count("below_write_quorum"),
        sets_below_read_quorum: count("below_read_quorum"),
        sets,
    }
}
