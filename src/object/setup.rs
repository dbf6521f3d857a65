//! Start-up of an erasure set: every drive's format record is read; blank drives are formatted
//! into the deployment; a drive from another deployment, or in the wrong place, stops start-up.

use std::sync::Arc;

use futures::future::join_all;

use crate::drive::record::RECORD_VERSION;
use crate::drive::{Drive, FormatRecord, HealHint, LocalDrive};

/// Why a set could not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Drives disagree on the deployment or sit in the wrong position.
    #[error("{0}")]
    Foreign(String),
    /// Too few drives could be read or formatted.
    #[error("{0}")]
    Quorum(String),
}

/// How long a start-up that finds blank drives beside formatted ones waits before it reads the
/// formats again: the time for another gateway that is formatting the same new set to finish.
const SECOND_LOOK: std::time::Duration = std::time::Duration::from_secs(1);

/// Checks (and, for blank drives, writes) the format records of the drives of set `set`.
/// Returns the deployment id (`expected`, when the topology names it). Unreadable drives are
/// tolerated down to `quorum`.
pub async fn check_formats(
    drives: &[Arc<dyn Drive>],
    set: u32,
    quorum: usize,
    expected: Option<&str>,
) -> Result<String, SetupError> {
    let read = || join_all(drives.iter().map(|d| d.read_format()));
    let mut formats = read().await;
    // Blank drives beside formatted ones were lost or replaced, or another gateway is
    // formatting this new set right now (the gateways of a new cluster start together): a
    // second look tells the two apart, so that a new set is not healed as a replaced one.
    if formats.iter().any(|f| matches!(f, Ok(Some(_))))
        && formats.iter().any(|f| matches!(f, Ok(None)))
    {
        tokio::time::sleep(SECOND_LOOK).await;
        formats = read().await;
    }
    let mut deployment: Option<String> = expected.map(str::to_string);
    for (pos, f) in formats.iter().enumerate() {
        if let Ok(Some(f)) = f {
            match &deployment {
                None => deployment = Some(f.deployment_id.clone()),
                Some(d) if *d != f.deployment_id => {
                    return Err(SetupError::Foreign(format!(
                    "drive {} belongs to deployment {}, but other drives to {d}: refusing to start",
                    drives[pos].endpoint(),
                    f.deployment_id
                )))
                }
                Some(_) => {}
            }
            if f.set != set || f.index as usize != pos {
                return Err(SetupError::Foreign(format!(
                    "drive {} was formatted as set {} position {}, but is configured as set {set} position {pos}: refusing to start",
                    drives[pos].endpoint(),
                    f.set,
                    f.index
                )));
            }
        }
    }
    // Blank drives still beside formatted ones were lost or replaced: repair rebuilds them.
    let existing = formats.iter().any(|f| matches!(f, Ok(Some(_))));
    let deployment = deployment.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    // All at once: another gateway that reads the set meanwhile finds it half formatted for
    // as short a time as can be.
    let deployment = &deployment;
    let usable = join_all(formats.into_iter().enumerate().map(|(pos, f)| async move {
        let d = &drives[pos];
        match f {
            Ok(Some(_)) => true,
            Ok(None) => {
                let rec = FormatRecord {
                    version: RECORD_VERSION,
                    deployment_id: deployment.clone(),
                    set,
                    index: pos as u32,
                    drive_id: uuid::Uuid::new_v4().to_string(),
                };
                if existing {
                    let _ = d.put_hint(&HealHint::drive(&rec.drive_id)).await;
                }
                match d.write_format(&rec).await {
                    Ok(()) => {
                        tracing::info!(drive = %d.endpoint(), "formatted blank drive");
                        true
                    }
                    Err(e) => {
                        tracing::error!(drive = %d.endpoint(), error = %e, "cannot format drive");
                        false
                    }
                }
            }
            Err(e) => {
                tracing::error!(drive = %d.endpoint(), error = %e, "cannot read format record");
                false
            }
        }
    }))
    .await
    .into_iter()
    .filter(|&ok| ok)
    .count();
    if usable < quorum {
        return Err(SetupError::Quorum(format!(
            "only {usable} of {} drives usable, need {quorum}",
            drives.len()
        )));
    }
    Ok(deployment.clone())
}

/// A local drive and where it belongs.
pub struct WatchedDrive {
    /// The drive.
    pub drive: Arc<LocalDrive>,
    /// The deployment it belongs to.
    pub deployment_id: String,
    /// Its erasure set.
    pub set: u32,
    /// Its position in the set.
    pub index: u32,
    /// Every drive of its set, in position order (itself included): the local ones, and the
    /// other nodes' through RPC.
    pub set_drives: Vec<Arc<dyn Drive>>,
}

/// Watches local drives every second: a drive folder that was removed or replaced under the
/// running process is reopened; a metadata database found corrupt is set aside and rebuilt.
/// A drive found blank beside a formatted drive of its set (one online that holds a format of
/// the deployment) at two checks in a row, a second apart, was replaced by an empty one: it is
/// formatted into its place and leaves a "drive" heal hint, so that the set's repair rebuilds
/// everything onto it without an operator command. A set none of whose drives is formatted is
/// new, and has nothing to rebuild: its gateway formats it when it starts (`check_formats`),
/// without hints. The second check leaves a gateway that was formatting the set at the first
/// time to finish.
///
/// Every [`IDLE_CHECK`] ticks it also flushes the memtables and empties the block caches of
/// the drives that nobody wrote to since the last check, and drops the pooled buffers of
/// direct reads if none was taken for a while; a tick later (RocksDB frees some of that memory
/// from its own threads) it hands the allocator's free memory back to the system, so that an
/// idle process shrinks back after a burst of requests.
pub fn spawn_drive_watch(drives: Vec<WatchedDrive>) {
    tokio::spawn(async move {
        let local: Arc<[Arc<LocalDrive>]> = drives.iter().map(|w| w.drive.clone()).collect();
        let mut trim = false;
        // Checks in a row at which each drive was found blank beside a formatted drive.
        let mut replaced_checks = vec![0u32; drives.len()];
        for tick in 1u64.. {
            if std::mem::take(&mut trim) {
                let _ = tokio::task::spawn_blocking(crate::heap::release_free_memory).await;
            }
            if tick % IDLE_CHECK == 0 {
                let ds = local.clone();
                trim = tokio::task::spawn_blocking(move || {
                    let unread = crate::drive::local::release_read_buffers();
                    ds.iter().fold(unread, |any, d| match d.release_if_idle() {
                        Ok(done) => any | done,
                        Err(e) => {
                            tracing::warn!(drive = %d.endpoint(), error = %e, "idle flush failed");
                            any
                        }
                    })
                })
                .await
                .unwrap_or(false);
            }
            // One blocking task per tick for every drive: each task on the blocking pool wakes
            // one of its idle threads, and a thread woken within its keep-alive never exits.
            let ds = local.clone();
            let blank = tokio::task::spawn_blocking(move || {
                ds.iter().map(|d| check_drive(d)).collect::<Vec<bool>>()
            })
            .await
            .unwrap_or_default();
            for ((w, blank), checks) in drives.iter().zip(blank).zip(&mut replaced_checks) {
                let replaced = blank && set_formatted(w).await;
                if blank && !replaced && tick == 1 {
                    tracing::info!(drive = %w.drive.endpoint(), set = w.set, "blank drive in a set with no formatted drive: a gateway formats the new set when it starts");
                }
                *checks = if replaced { *checks + 1 } else { 0 };
                // Looked at again: a gateway may have formatted it while its set was read.
                if *checks < 2 || !w.drive.format_missing() {
                    continue;
                }
                if let Err(e) = format_blank(w).await {
                    tracing::error!(drive = %w.drive.endpoint(), error = %e, "cannot format blank drive");
                }
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    });
}

/// Reopens a drive folder that was replaced, sets a corrupt database aside; returns whether
/// the drive (now) lacks its format record.
fn check_drive(d: &LocalDrive) -> bool {
    if let Err(e) = d.reopen_if_replaced() {
        tracing::error!(drive = %d.endpoint(), error = %e, "cannot reopen drive");
        return false;
    }
    if let Err(e) = d.set_aside_if_corrupt() {
        tracing::error!(drive = %d.endpoint(), error = %e, "cannot set a corrupt database aside");
        return false;
    }
    d.format_missing()
}

/// Seconds between idle checks of the drive watch.
const IDLE_CHECK: u64 = 10;

/// Whether another drive of `w`'s set, among those online that answer within [`SET_READ`],
/// holds a format of its deployment.
async fn set_formatted(w: &WatchedDrive) -> bool {
    let others = w
        .set_drives
        .iter()
        .enumerate()
        .filter(|&(p, d)| p != w.index as usize && d.is_online())
        .map(|(_, d)| tokio::time::timeout(SET_READ, d.read_format()));
    join_all(others)
        .await
        .into_iter()
        .any(|f| matches!(f, Ok(Ok(Some(f))) if f.deployment_id == w.deployment_id))
}

/// How long the drive watch waits for each format of a blank drive's set: a peer that does
/// not answer (a stopped node) must not hold up the checks of the other drives, nor keep a
/// replaced drive from its place when the others answer.
const SET_READ: std::time::Duration = std::time::Duration::from_secs(2);

async fn format_blank(w: &WatchedDrive) -> Result<(), crate::drive::DriveError> {
    let drive_id = uuid::Uuid::new_v4().to_string();
    // The hint first: a crash between the two leaves a formatted drive that nobody heals.
    w.drive.put_hint(&HealHint::drive(&drive_id)).await?;
    w.drive
        .write_format(&FormatRecord {
            version: RECORD_VERSION,
            deployment_id: w.deployment_id.clone(),
            set: w.set,
            index: w.index,
            drive_id,
        })
        .await?;
    tracing::warn!(drive = %w.drive.endpoint(), set = w.set, index = w.index, "blank drive formatted into its place; repair will rebuild it");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drives(dir: &std::path::Path) -> Vec<Arc<dyn Drive>> {
        (0..6)
            .map(|i| {
                Arc::new(LocalDrive::open(&dir.join(format!("d{i}"))).unwrap()) as Arc<dyn Drive>
            })
            .collect()
    }

    async fn hints(drives: &[Arc<dyn Drive>]) -> usize {
        let mut n = 0;
        for d in drives {
            n += d.list_hints(b"", 100).await.unwrap().len();
        }
        n
    }

    /// Two gateways of a new cluster format its set at once: the one that finds it half
    /// formatted leaves no hint. A drive that stays blank beside formatted ones gets its hint.
    #[tokio::test]
    async fn a_set_being_formatted_is_new_and_a_drive_left_blank_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let ds = drives(dir.path());
        let dep = "0b5c2d1e-3f4a-4b6c-8d9e-0f1a2b3c4d5e";
        // The other gateway has written three formats and writes the rest 50 ms later.
        check_formats(&ds[..3], 0, 1, Some(dep)).await.unwrap();
        let rest: Vec<Arc<dyn Drive>> = ds[3..].to_vec();
        let other = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            for (i, d) in rest.iter().enumerate() {
                d.write_format(&FormatRecord {
                    version: RECORD_VERSION,
                    deployment_id: dep.into(),
                    set: 0,
                    index: 3 + i as u32,
                    drive_id: uuid::Uuid::new_v4().to_string(),
                })
                .await
                .unwrap();
            }
        });
        assert_eq!(check_formats(&ds, 0, 4, Some(dep)).await.unwrap(), dep);
        other.await.unwrap();
        assert_eq!(hints(&ds).await, 0, "a new set healed as a replaced one");
        // Drive 4 is replaced by an empty one while the gateway is down.
        drop(ds);
        std::fs::remove_dir_all(dir.path().join("d4")).unwrap();
        let ds = drives(dir.path());
        check_formats(&ds, 0, 4, Some(dep)).await.unwrap();
        assert!(matches!(ds[4].read_format().await, Ok(Some(f)) if f.index == 4));
        assert_eq!(ds[4].list_hints(b"", 100).await.unwrap().len(), 1);
    }
}
