//! Background repair of one erasure set, run by the set's leader (the first live node of the
//! set, or the one process of `tessera server`):
//!
//! 1. the **heal-hint queue** is worked first: hints persisted on the set's drives by degraded
//!    writes and by reads that had to reconstruct; a hint goes once its version is back at full
//!    redundancy and verified, and is retried with backoff until then;
//! 2. the **scanner** walks every version of every bucket, page by page: metadata copies and
//!    shard files are compared with what the version's layout says should exist; what is
//!    missing is rebuilt from any `k`; versions that never reached quorum and orphan shard
//!    files (both older than a grace period) are removed. Every `deep_interval`, a pass re-reads
//!    every block to find bitrot. A pass checkpoints its position on the drives after every
//!    page, so a restarted or new leader resumes it;
//! 3. a drive that came up blank leaves a "drive" hint, which starts a pass at once.
//!
//! Repair reads and writes are throttled to `bandwidth` bytes per second, and wait while
//! foreground requests are in flight (up to a bound, so repair is never starved).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::heal::shard_file_size;
use super::{same_version, segments, ErasureSet, Error};
use crate::drive::record::now_ms;
use crate::drive::{HealHint, HintRemoval, VersionRecord};
use crate::erasure::frame;

/// Keys per scanner page.
const PAGE: usize = 250;
/// Hints read per round.
const HINT_BATCH: usize = 256;
/// Versions healed from hints at once.
const HINT_HEALS: usize = 4;
/// What the scanner heals at once, in units of a small version's heal: two large versions
/// (one heal of a large version is a chain of reads, hashing, decoding and writes that keeps
/// about one core busy), or up to 16 small ones, whose heal is mostly waiting for the synced
/// write of one record and whose writes then share a group commit on the drive.
const HEAL_BUDGET: u32 = 16;
/// The share of [`HEAL_BUDGET`] a heal of a version with shard files takes.
const HEAL_LARGE: u32 = HEAL_BUDGET / 2;
/// Longest a repair step waits for foreground requests to finish.
const MAX_YIELD: Duration = Duration::from_millis(500);
/// Name of the scanner's checkpoint on the drives.
const CHECKPOINT: &str = "scan";
/// The wait before spreading the checkpoint again after a drive did not take it.
const SPREAD_RETRY: Duration = Duration::from_secs(30);

/// The wait before retrying a hint after its `attempts`-th failure: 2 s, 4 s, 8 s ... up to
/// 5 minutes.
fn backoff_ms(attempts: u32) -> u64 {
    (1000u64 << attempts.min(9)).min(300_000)
}

/// Whether a hint is to be worked now: its retry time has come, or it was put back during an
/// outage of a drive of the set that has since ended (`outages`: from when the drive was
/// marked offline to when it came back; the hint most likely failed for want of it). After
/// an outage, the hints of the writes it degraded are retried once the node answers again,
/// rather than each waiting out a backoff that grew while it was down. A hint that failed
/// while every drive answered keeps its backoff, however often another drive comes and goes.
fn hint_due(hint: &HealHint, now_ms: u64, outages: &[(u64, u64)]) -> bool {
    if hint.not_before_ms <= now_ms {
        return true;
    }
    let put_back_ms = hint.not_before_ms.saturating_sub(backoff_ms(hint.attempts));
    hint.attempts > 0
        && outages
            .iter()
            .any(|&(since, back)| since <= put_back_ms && put_back_ms < back)
}

/// Settings of repair.
#[derive(Clone, Debug)]
pub struct RepairConfig {
    /// Time from the end of one scanner pass to the start of the next.
    pub scan_interval: Duration,
    /// How often a pass re-reads every block for bitrot; zero: never.
    pub deep_interval: Duration,
    /// Bytes per second repair may read and write; zero: unlimited.
    pub bandwidth: u64,
    /// Orphan shard files and versions below quorum younger than this are left alone
    /// (they may belong to writes in flight).
    pub grace: Duration,
    /// Pause between rounds when there is nothing to do.
    pub poll: Duration,
}

impl Default for RepairConfig {
    fn default() -> Self {
        Self {
            scan_interval: Duration::from_secs(3600),
            deep_interval: Duration::from_secs(30 * 86400),
            bandwidth: 256 << 20,
            grace: Duration::from_secs(3600),
            poll: Duration::from_secs(1),
        }
    }
}

/// Where the scanner is in its pass.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Checking the versions of `bucket`.
    #[default]
    Objects,
    /// Removing orphan shard files of `bucket`.
    Orphans,
}

/// What an operator asks of a set's repair (through the admin API).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum HealCommand {
    /// Scan now: everything (a new pass), or the keys of `bucket` under `prefix`; `deep`
    /// re-reads every block.
    Start {
        /// Bucket to scan; none: a whole pass.
        #[serde(default)]
        bucket: Option<String>,
        /// Key prefix within `bucket`.
        #[serde(default)]
        prefix: String,
        /// Re-read every block (bitrot check), not only compare records and file sizes.
        #[serde(default)]
        deep: bool,
    },
    /// Stop working hints and scanning until resumed.
    Pause,
    /// Resume after a pause.
    Resume,
}

/// A scan of one bucket or prefix that an operator asked for.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct TargetScan {
    /// Bucket scanned.
    pub bucket: String,
    /// Key prefix scanned.
    pub prefix: String,
    /// Every block is re-read.
    pub deep: bool,
    /// Last key done (hex of its bytes).
    pub after_hex: String,
    /// Versions checked.
    pub scanned: u64,
    /// When it was asked for (ms since the epoch).
    pub started_ms: u64,
    /// When it finished (0: running).
    pub finished_ms: u64,
}

/// The scanner's persisted checkpoint and the repair counters.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RepairStatus {
    /// The erasure set.
    pub set: usize,
    /// Whether this process leads the set's repair now.
    pub leader: bool,
    /// An operator paused repair of the set (kept across restarts and leaders).
    pub paused: bool,
    /// The scan an operator asked for, running or last finished.
    pub target: Option<TargetScan>,
    /// Heal hints seen in the last round.
    pub hints_pending: usize,
    /// Pass number (1 is the first).
    pub pass: u64,
    /// A pass is running.
    pub in_pass: bool,
    /// The running (or last) pass re-reads every block.
    pub deep: bool,
    /// Bucket being scanned.
    pub bucket: String,
    /// Last key scanned in `bucket` (hex of its bytes).
    pub after_hex: String,
    /// Phase within the bucket.
    pub phase: Phase,
    /// When the running pass started (ms since the epoch).
    pub pass_started_ms: u64,
    /// Versions checked in the running pass.
    pub scanned: u64,
    /// Versions healed, all time.
    pub healed: u64,
    /// Heals that failed, all time.
    pub failed: u64,
    /// Shard bytes rebuilt, all time.
    pub bytes_rebuilt: u64,
    /// Orphan shard files removed, all time.
    pub orphans_removed: u64,
    /// Versions that never reached quorum, removed, all time.
    pub partial_removed: u64,
    /// When the last pass finished (ms since the epoch; 0: never).
    pub last_pass_finished_ms: u64,
    /// How long the last pass took.
    pub last_pass_ms: u64,
    /// Versions the last pass checked.
    pub last_pass_objects: u64,
    /// When the last deep pass finished.
    pub last_deep_finished_ms: u64,
    /// Estimated seconds to the end of the running pass (from the last pass's size).
    pub eta_secs: Option<u64>,
    /// When this checkpoint was saved.
    pub saved_ms: u64,
}

/// The handle of a running repair worker: its live status, and a queue for commands.
#[derive(Clone)]
pub struct RepairHandle {
    status: Arc<Mutex<RepairStatus>>,
    commands: Arc<Mutex<Vec<HealCommand>>>,
}

impl RepairHandle {
    /// The status now.
    pub fn status(&self) -> RepairStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Queues `command` when this worker leads its set now; false otherwise (a worker that
    /// does not lead would drop it).
    pub fn send(&self, command: HealCommand) -> bool {
        let leader = self.status().leader;
        if leader {
            // Pausing shows at once; the worker persists it on its next round.
            let paused = match command {
                HealCommand::Pause => Some(true),
                HealCommand::Resume => Some(false),
                HealCommand::Start { .. } => None,
            };
            if let Some(p) = paused {
                self.status.lock().unwrap_or_else(|e| e.into_inner()).paused = p;
            }
            self.commands
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(command);
        }
        leader
    }
}

/// The repair worker of one erasure set.
pub struct Repairer {
    set: Arc<ErasureSet>,
    cfg: RepairConfig,
    leader: Arc<dyn Fn() -> bool + Send + Sync>,
    busy: Arc<dyn Fn() -> bool + Send + Sync>,
    status: Arc<Mutex<RepairStatus>>,
    commands: Arc<Mutex<Vec<HealCommand>>>,
    /// Data dirs referenced in the bucket being scanned, when its scan began in this process
    /// (so the orphan sweep knows every reference).
    refs: Option<(String, HashSet<String>)>,
    hint_cursor: Vec<u8>,
    /// Per drive of the set: whether it holds the checkpoint as last saved (or as loaded). A
    /// drive that was offline at a save gets it once it is back, so that a new leader finds
    /// where the last one was, whichever drives it can still reach.
    holds_checkpoint: Vec<bool>,
    /// No spreading of the checkpoint before this (ms since the epoch): a write failed.
    spread_not_before_ms: u64,
    /// When the repair I/O already let through has used up the bandwidth: heals that run at
    /// once take their turns on this one timeline.
    paced_until: Mutex<Option<tokio::time::Instant>>,
}

impl Repairer {
    /// A worker for set number `index`. `leader` tells whether this process should work the
    /// set now; `busy` whether foreground requests are in flight.
    pub fn new(
        set: Arc<ErasureSet>,
        index: usize,
        cfg: RepairConfig,
        leader: Arc<dyn Fn() -> bool + Send + Sync>,
        busy: Arc<dyn Fn() -> bool + Send + Sync>,
    ) -> Self {
        Self {
            set,
            cfg,
            leader,
            busy,
            status: Arc::new(Mutex::new(RepairStatus {
                set: index,
                ..Default::default()
            })),
            commands: Arc::default(),
            refs: None,
            hint_cursor: Vec::new(),
            holds_checkpoint: Vec::new(),
            spread_not_before_ms: 0,
            paced_until: Mutex::new(None),
        }
    }

    /// Runs the worker in the background; returns its handle.
    pub fn spawn(self) -> RepairHandle {
        let handle = RepairHandle {
            status: self.status.clone(),
            commands: self.commands.clone(),
        };
        tokio::spawn(self.run());
        handle
    }

    fn snapshot(&self) -> RepairStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn update(&self, f: impl FnOnce(&mut RepairStatus)) {
        f(&mut self.status.lock().unwrap_or_else(|e| e.into_inner()));
    }

    async fn run(mut self) {
        let mut loaded = false;
        loop {
            if !(self.leader)() {
                if loaded {
                    tracing::info!(set = self.snapshot().set, "no longer leading repair");
                }
                self.update(|s| s.leader = false);
                // Commands are for the leader: a later takeover must not act on stale ones.
                self.commands
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clear();
                loaded = false;
                self.refs = None;
                tokio::time::sleep(self.cfg.poll).await;
                continue;
            }
            if !loaded {
                self.load_checkpoint().await;
                loaded = true;
            }
            if self.apply_commands().await {
                self.save_checkpoint().await;
            }
            if self.snapshot().paused {
                // Paused is kept on the drives too, for a later leader.
                self.spread_checkpoint().await;
                tokio::time::sleep(self.cfg.poll).await;
                continue;
            }
            let mut worked = self.work_hints().await > 0;
            if self.target_step().await {
                tokio::task::yield_now().await;
                continue;
            }
            let st = self.snapshot();
            let due = st.in_pass
                || now_ms().saturating_sub(st.last_pass_finished_ms)
                    >= self.cfg.scan_interval.as_millis() as u64;
            if due {
                if !st.in_pass {
                    self.start_pass(false).await;
                }
                self.scan_step().await;
                self.save_checkpoint().await;
                worked = true;
            }
            if worked {
                tokio::task::yield_now().await;
            } else {
                self.spread_checkpoint().await;
                tokio::time::sleep(self.cfg.poll).await;
            }
        }
    }

    /// Takes the newest checkpoint any drive holds.
    async fn load_checkpoint(&mut self) {
        let found: Vec<Option<RepairStatus>> =
            join_all(self.set.drives.iter().map(|d| d.get_state(CHECKPOINT)))
                .await
                .into_iter()
                .map(|r| {
                    let raw = r.ok().flatten()?;
                    serde_json::from_slice::<RepairStatus>(&raw).ok()
                })
                .collect();
        let best = found.iter().flatten().max_by_key(|s| s.saved_ms).cloned();
        // With no checkpoint anywhere, nothing is there to spread until the first save.
        self.holds_checkpoint = found
            .iter()
            .map(|f| match (f, &best) {
                (Some(f), Some(b)) => f.saved_ms == b.saved_ms,
                _ => best.is_none(),
            })
            .collect();
        let set = self.snapshot().set;
        let mut st = best.unwrap_or_else(|| RepairStatus {
            // A new deployment has nothing to re-read yet: the first deep pass comes after
            // one interval.
            last_deep_finished_ms: now_ms(),
            ..Default::default()
        });
        st.set = set;
        st.leader = true;
        tracing::info!(set, pass = st.pass, in_pass = st.in_pass, bucket = %st.bucket, "leading repair of the set");
        self.refs = None;
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = st;
    }

    async fn save_checkpoint(&mut self) {
        self.update(|s| s.saved_ms = now_ms());
        self.holds_checkpoint = self.put_checkpoint().await;
    }

    /// Writes the checkpoint, as it is now, to the drives of the set that missed the last save
    /// (they were offline, or the write failed) and are online again. A checkpoint reached
    /// only the drives online at the time: if those were later lost, a new leader would find
    /// none and start a whole pass at once, beside the clients' requests of a degraded set.
    /// A drive that holds a newer checkpoint (another leader's, saved while this one could
    /// not reach it) keeps it. After a failed write the next try waits [`SPREAD_RETRY`].
    async fn spread_checkpoint(&mut self) {
        if now_ms() < self.spread_not_before_ms {
            return;
        }
        let todo: Vec<usize> = (0..self.holds_checkpoint.len())
            .filter(|&i| !self.holds_checkpoint[i] && self.set.drives[i].is_online())
            .collect();
        if todo.is_empty() {
            return;
        }
        let st = self.snapshot();
        let Ok(raw) = serde_json::to_vec(&st) else {
            return;
        };
        let raw = &raw;
        let drives = &self.set.drives;
        let done = join_all(todo.iter().map(|&i| async move {
            let held = drives[i].get_state(CHECKPOINT).await.map(|h| {
                h.and_then(|h| serde_json::from_slice::<RepairStatus>(&h).ok())
                    .is_some_and(|h| h.saved_ms > st.saved_ms)
            });
            match held {
                Ok(true) => true,
                Ok(false) => drives[i].put_state(CHECKPOINT, raw).await.is_ok(),
                Err(_) => false,
            }
        }))
        .await;
        for (&i, ok) in todo.iter().zip(&done) {
            self.holds_checkpoint[i] = *ok;
        }
        if done.contains(&false) {
            tracing::debug!(
                set = st.set,
                "a drive did not take the repair checkpoint; retrying later"
            );
            self.spread_not_before_ms = now_ms() + SPREAD_RETRY.as_millis() as u64;
        }
    }

    /// Writes the checkpoint to the drives of the set that are online; returns, per drive,
    /// whether it was written.
    async fn put_checkpoint(&self) -> Vec<bool> {
        let Ok(raw) = serde_json::to_vec(&self.snapshot()) else {
            return vec![false; self.set.drives.len()];
        };
        let raw = &raw;
        join_all(
            self.set.drives.iter().map(|d| async move {
                d.is_online() && d.put_state(CHECKPOINT, raw).await.is_ok()
            }),
        )
        .await
    }

    /// Applies the operators' commands; true when any came.
    async fn apply_commands(&mut self) -> bool {
        let commands =
            std::mem::take(&mut *self.commands.lock().unwrap_or_else(|e| e.into_inner()));
        let any = !commands.is_empty();
        for c in commands {
            let set = self.snapshot().set;
            tracing::info!(set, command = ?c, "repair command");
            match c {
                HealCommand::Pause => self.update(|s| s.paused = true),
                HealCommand::Resume => self.update(|s| s.paused = false),
                HealCommand::Start {
                    bucket: None, deep, ..
                } => {
                    self.update(|s| s.in_pass = false);
                    self.start_pass(deep).await;
                }
                HealCommand::Start {
                    bucket: Some(bucket),
                    prefix,
                    deep,
                } => self.update(|s| {
                    s.target = Some(TargetScan {
                        bucket,
                        prefix,
                        deep,
                        started_ms: now_ms(),
                        ..Default::default()
                    })
                }),
            }
        }
        any
    }

    /// One page of the scan an operator asked for; false when none is running.
    async fn target_step(&mut self) -> bool {
        let Some(t) = self.snapshot().target.filter(|t| t.finished_ms == 0) else {
            return false;
        };
        let next = if self.bucket_names().await.contains(&t.bucket) {
            let after = hex::decode(&t.after_hex).unwrap_or_default();
            self.scan_page(&t.bucket, &t.prefix, &after, t.deep).await
        } else {
            (None, 0)
        };
        self.update(|s| {
            if let Some(t) = s.target.as_mut() {
                t.scanned += next.1;
                match next.0 {
                    Some(last) => t.after_hex = hex::encode(last),
                    None => t.finished_ms = now_ms(),
                }
            }
        });
        if let Some(t) = self.snapshot().target.filter(|t| t.finished_ms > 0) {
            tracing::info!(bucket = %t.bucket, prefix = %t.prefix, deep = t.deep, objects = t.scanned, "requested scan finished");
        }
        self.save_checkpoint().await;
        true
    }

    /// Starts a pass: a deep one when `deep` or when one is due.
    async fn start_pass(&mut self, deep: bool) {
        let deep_every = self.cfg.deep_interval.as_millis() as u64;
        let last_deep = self.snapshot().last_deep_finished_ms;
        let deep = deep || (deep_every > 0 && now_ms().saturating_sub(last_deep) >= deep_every);
        self.update(|s| {
            s.pass += 1;
            s.in_pass = true;
            s.deep = deep;
            s.bucket.clear();
            s.after_hex.clear();
            s.phase = Phase::Objects;
            s.pass_started_ms = now_ms();
            s.scanned = 0;
        });
        self.refs = None;
        let st = self.snapshot();
        tracing::info!(set = st.set, pass = st.pass, deep, "scanner pass started");
        self.heal_buckets().await;
    }

    fn finish_pass(&mut self) {
        let now = now_ms();
        self.update(|s| {
            s.in_pass = false;
            s.last_pass_finished_ms = now;
            s.last_pass_ms = now.saturating_sub(s.pass_started_ms);
            s.last_pass_objects = s.scanned;
            if s.deep {
                s.last_deep_finished_ms = now;
            }
            s.eta_secs = None;
        });
        let st = self.snapshot();
        tracing::info!(
            set = st.set,
            pass = st.pass,
            objects = st.scanned,
            ms = st.last_pass_ms,
            healed = st.healed,
            failed = st.failed,
            "scanner pass finished"
        );
    }

    /// Waits while foreground requests are in flight, at most [`MAX_YIELD`]: under a steady
    /// load repair still moves, one step per wait.
    async fn yield_to_clients(&self) {
        let start = tokio::time::Instant::now();
        while (self.busy)() && start.elapsed() < MAX_YIELD {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits while foreground requests are in flight (bounded), then for the bandwidth that
    /// `bytes` of repair I/O use: after the time those bytes take, counted from the end of the
    /// turns already taken, so that heals throttled at once share the bandwidth.
    async fn throttle(&self, bytes: u64) {
        self.yield_to_clients().await;
        if self.cfg.bandwidth > 0 && bytes > 0 {
            let turn =
                Duration::from_secs_f64((bytes as f64 / self.cfg.bandwidth as f64).min(10.0));
            let until = {
                let mut paced = self.paced_until.lock().unwrap_or_else(|e| e.into_inner());
                let now = tokio::time::Instant::now();
                let until = paced.filter(|t| *t > now).unwrap_or(now) + turn;
                *paced = Some(until);
                until
            };
            tokio::time::sleep_until(until).await;
        }
    }

    /// Works the due heal hints of one batch; returns how many were worked.
    async fn work_hints(&mut self) -> usize {
        let after = self.hint_cursor.clone();
        let lists = join_all(
            self.set
                .drives
                .iter()
                .map(|d| d.list_hints(&after, HINT_BATCH)),
        )
        .await;
        let mut hints: BTreeMap<Vec<u8>, HealHint> = BTreeMap::new();
        let mut full = false;
        for list in lists.into_iter().flatten() {
            full |= list.len() >= HINT_BATCH;
            for h in list {
                hints
                    .entry(h.id())
                    .and_modify(|e| {
                        e.deep |= h.deep;
                        e.attempts = e.attempts.max(h.attempts);
                        e.not_before_ms = e.not_before_ms.max(h.not_before_ms);
                    })
                    .or_insert(h);
            }
        }
        self.hint_cursor = if full {
            hints.keys().next_back().cloned().unwrap_or_default()
        } else {
            Vec::new()
        };
        self.update(|s| s.hints_pending = hints.len());
        let now = now_ms();
        let outages: Vec<(u64, u64)> = self
            .set
            .drives
            .iter()
            .filter_map(|d| d.last_outage_ms())
            .collect();
        let mut worked = 0;
        let mut versions = Vec::new();
        for (id, hint) in hints {
            if !hint_due(&hint, now, &outages) || !(self.leader)() {
                continue;
            }
            worked += 1;
            if hint.is_drive() {
                // A drive came up blank: a pass that started before it must start over.
                let st = self.snapshot();
                if !st.in_pass || st.pass_started_ms < hint.created_ms {
                    tracing::info!(set = st.set, "a drive came up blank: starting a full scan");
                    self.update(|s| s.in_pass = false);
                    self.start_pass(false).await;
                    self.save_checkpoint().await;
                }
                self.delete_hint(&id, HintRemoval::Any).await;
            } else {
                versions.push((id, hint));
            }
        }
        // Versions heal HINT_HEALS at once, each with its hint's removal or retry: one after
        // the other, the hints an outage left took longer to work through than the outage
        // lasted (a heal is mostly waiting for reads, synced writes and the hint's removal).
        // A hint does not say how large its version is, so every heal takes the same share.
        let this = &*self;
        let leader = this.leader.clone();
        let mut heals = futures::stream::iter(versions)
            .take_while(|_| std::future::ready(leader()))
            .map(|(id, hint)| async move {
                // A hint stored again since it was listed (the same version damaged again,
                // or a write of the same key and version id that missed a drive) outlives
                // this heal: only the hint as listed goes.
                let listed = HintRemoval::MadeAt(hint.created_ms);
                let result = this
                    .set
                    .heal_object(&hint.bucket, &hint.key, &hint.version_id, hint.deep)
                    .await;
                match result {
                    Ok(r) => {
                        this.count(&hint.bucket, &hint.key, &r);
                        if r.complete {
                            this.delete_hint(&id, listed).await;
                        } else {
                            this.retry_later(hint).await;
                        }
                        // Here, not in the loop below: heals still running would not be
                        // polled while it slept, and their transfers would stall.
                        this.throttle(r.bytes_read + r.bytes_written).await;
                    }
                    Err(Error::NoSuchKey | Error::NoSuchVersion | Error::NoSuchBucket) => {
                        this.delete_hint(&id, listed).await;
                    }
                    Err(e) => {
                        let (bucket, key) = (&hint.bucket, &hint.key);
                        tracing::warn!(bucket, key, error = %e, "heal from hint failed");
                        this.update(|s| s.failed += 1);
                        this.retry_later(hint).await;
                    }
                }
            })
            .buffer_unordered(HINT_HEALS);
        while heals.next().await.is_some() {}
        worked
    }

    fn count(&self, bucket: &str, key: &str, r: &super::HealReport) {
        if r.repaired() {
            tracing::info!(
                bucket,
                key,
                shards = r.shards_rebuilt,
                records = r.records_written,
                bytes = r.bytes_written,
                complete = r.complete,
                "healed"
            );
            self.update(|s| {
                s.healed += 1;
                s.bytes_rebuilt += r.bytes_written;
            });
        }
    }

    /// Removes a hint from the set's drives, where `which` takes it.
    async fn delete_hint(&self, id: &[u8], which: HintRemoval) {
        // A drive that keeps the hint (it missed the grace) has it worked again: the heal
        // then finds the version whole and removes it.
        self.set.on_drives(|d| d.delete_hint(id, which)).await;
    }

    /// Puts a hint back with its next attempt pushed out: 2 s, 4 s, 8 s ... up to 5 minutes.
    async fn retry_later(&self, mut hint: HealHint) {
        hint.attempts += 1;
        hint.not_before_ms = now_ms() + backoff_ms(hint.attempts);
        super::heal::persist_hint(&self.set.drives, hint).await;
    }

    /// Writes every bucket record that a read quorum holds, as it was written last, to the
    /// drives that lack it or hold an older copy (they missed a change while away). A
    /// tombstone is spread the same way, over the copies of the deleted bucket.
    async fn heal_buckets(&self) {
        let lists = join_all(self.set.drives.iter().map(|d| d.list_buckets())).await;
        let newest = super::bucket::newest_copies(lists.iter().flatten().flatten());
        for (name, (rec, n)) in newest {
            if n < self.set.read_quorum() {
                continue;
            }
            for (d, list) in self.set.drives.iter().zip(&lists) {
                let Ok(list) = list else { continue };
                let current = list
                    .iter()
                    .any(|b| b.name == name && b.precedence_cmp(&rec).is_ge());
                if !current && d.put_bucket(&rec).await.is_ok() {
                    tracing::info!(drive = %d.endpoint(), bucket = %name, "healed bucket record");
                }
            }
        }
    }

    /// Bucket names that any answering drive holds, sorted, but for those whose newest copy
    /// is a tombstone.
    async fn bucket_names(&self) -> Vec<String> {
        let lists = join_all(self.set.drives.iter().map(|d| d.list_buckets())).await;
        super::bucket::newest_copies(lists.iter().flatten().flatten())
            .into_iter()
            .filter(|(_, (rec, _))| !rec.is_deleted())
            .map(|(name, _)| name)
            .collect()
    }

    /// One step of the pass: a page of versions, or the orphan sweep of a bucket.
    async fn scan_step(&mut self) {
        let st = self.snapshot();
        let buckets = self.bucket_names().await;
        let Some(bucket) = buckets.iter().find(|b| **b >= st.bucket).cloned() else {
            self.finish_pass();
            return;
        };
        if bucket != st.bucket {
            self.update(|s| {
                s.bucket = bucket.clone();
                s.after_hex.clear();
                s.phase = Phase::Objects;
            });
        }
        let st = self.snapshot();
        match st.phase {
            Phase::Objects => {
                let after = hex::decode(&st.after_hex).unwrap_or_default();
                if after.is_empty() {
                    self.refs = Some((bucket.clone(), HashSet::new()));
                }
                let (next, scanned) = self.scan_page(&bucket, "", &after, st.deep).await;
                self.update(|s| s.scanned += scanned);
                match next {
                    Some(last) => self.update(|s| s.after_hex = hex::encode(&last)),
                    None => self.update(|s| {
                        s.phase = Phase::Orphans;
                        s.after_hex.clear();
                    }),
                }
            }
            Phase::Orphans => {
                self.sweep_orphans(&bucket).await;
                self.refs = None;
                let next = buckets.iter().find(|b| **b > bucket).cloned();
                match next {
                    Some(n) => self.update(|s| {
                        s.bucket = n;
                        s.after_hex.clear();
                        s.phase = Phase::Objects;
                    }),
                    None => self.finish_pass(),
                }
            }
        }
        let st = self.snapshot();
        if st.in_pass && st.last_pass_objects > 0 && st.scanned > 0 {
            let elapsed = now_ms().saturating_sub(st.pass_started_ms) / 1000;
            let left = st.last_pass_objects.saturating_sub(st.scanned);
            self.update(|s| s.eta_secs = Some(elapsed * left / st.scanned));
        }
    }

    /// Checks one page of the keys of `bucket` under `prefix` after `after`; returns the last
    /// key (`None` at the end) and how many versions it checked.
    async fn scan_page(
        &mut self,
        bucket: &str,
        prefix: &str,
        after: &[u8],
        deep: bool,
    ) -> (Option<Vec<u8>>, u64) {
        // A page costs every drive of the set a listing, and the shard files a stat each: it
        // waits its turn like a heal does, or a pass that a new leader starts under load
        // takes the clients' share of the cores for as long as it runs.
        self.yield_to_clients().await;
        let set = self.set.clone();
        let n = set.drives.len();
        let k = set.read_quorum();
        let lists = join_all(
            set.drives
                .iter()
                .map(|d| d.list_versions(bucket, prefix, after, PAGE)),
        )
        .await;
        let answered: Vec<bool> = lists.iter().map(|l| l.is_ok()).collect();
        let unanswered = answered.iter().filter(|a| !**a).count();
        // Keys up to the smallest last key of the drives that returned a full page are
        // complete on every drive; the rest come with the next page.
        let bound: Option<String> = lists
            .iter()
            .flatten()
            .filter(|l| l.len() >= PAGE)
            .filter_map(|l| l.last().map(|(key, _)| key.clone()))
            .min();
        let mut by_key: BTreeMap<String, Vec<(usize, VersionRecord)>> = BTreeMap::new();
        for (pos, list) in lists.into_iter().enumerate() {
            for (key, versions) in list.unwrap_or_default() {
                if bound.as_ref().is_some_and(|b| key > *b) {
                    continue;
                }
                let entry = by_key.entry(key).or_default();
                entry.extend(versions.into_iter().map(|v| (pos, v)));
            }
        }
        if unanswered > set.m() {
            // Too few drives answer to tell a partial write from a lost drive: wait.
            tokio::time::sleep(self.cfg.poll).await;
            return (Some(after.to_vec()), 0);
        }
        let last = by_key.keys().next_back().cloned();
        let grace_ns = self.cfg.grace.as_nanos() as i128;
        // Versions to heal (key, version id, whether a check found it damaged, its share of
        // HEAL_BUDGET), and the shard files to check on each drive: (data dir, expected size,
        // index into `todo`).
        let mut todo: Vec<(String, String, bool, u32)> = Vec::new();
        let mut checks: Vec<Vec<(String, u64, usize)>> = vec![Vec::new(); n];
        let mut scanned = 0u64;
        for (key, copies) in &by_key {
            // Group the copies by version identity.
            let mut groups: Vec<(VersionRecord, Vec<usize>)> = Vec::new();
            for (pos, v) in copies {
                match groups.iter_mut().find(|(g, _)| same_version(g, v)) {
                    Some((_, holders)) => holders.push(*pos),
                    None => groups.push((v.clone(), vec![*pos])),
                }
            }
            for (rec, holders) in groups {
                scanned += 1;
                if let Some((_, refs)) = self.refs.as_mut().filter(|(b, _)| b == bucket) {
                    refs.extend(rec.data_dirs());
                }
                // Versions written with raised parity need only their own `k` copies.
                let k = k.min((rec.layout.k as usize).max(1));
                if holders.len() < k {
                    let age = super::now_ns() - rec.mod_time_ns;
                    if holders.len() + unanswered < k && age > grace_ns {
                        self.remove_partial(bucket, key, &rec, &holders).await;
                    }
                    continue;
                }
                let dist = rec.layout.positions();
                if dist.len() != n {
                    continue;
                }
                let missing_record = (0..n).any(|pos| answered[pos] && !holders.contains(&pos));
                let inline_bad = copies.iter().any(|(_, c)| {
                    same_version(c, &rec)
                        && c.inline.as_ref().is_some_and(|f| {
                            frame::decode(&bytes::Bytes::from(f.clone())).is_none()
                        })
                });
                // A copy that missed a tag change (its drive was away, and the hint that names
                // it is lost) differs from the others in `meta_order`.
                let stale_copy = copies
                    .iter()
                    .any(|(_, c)| same_version(c, &rec) && c.meta_order() != rec.meta_order());
                let has_files = !rec.delete_marker && !rec.data_dirs().is_empty();
                let damaged = missing_record || inline_bad || stale_copy || (deep && has_files);
                let tag = todo.len();
                let cost = if has_files { HEAL_LARGE } else { 1 };
                todo.push((key.clone(), rec.version_id.clone(), damaged, cost));
                if damaged || !has_files {
                    continue;
                }
                let Ok(codec) = super::layout_codec(&rec.layout) else {
                    continue;
                };
                for seg in segments(&rec) {
                    let size = shard_file_size(seg.size, &codec);
                    for &pos in &dist {
                        checks[pos].push((seg.data_dir.clone(), size, tag));
                    }
                }
            }
        }
        // One stat call per drive for every shard file of the page.
        let stats = join_all(checks.iter().enumerate().map(|(pos, list)| {
            let drive = set.drives[pos].clone();
            let dirs: Vec<String> = list.iter().map(|c| c.0.clone()).collect();
            let answered = answered[pos];
            async move {
                if dirs.is_empty() || !answered {
                    return None;
                }
                drive.stat_shards(bucket, &dirs).await.ok()
            }
        }))
        .await;
        for (pos, list) in checks.iter().enumerate() {
            let Some(sizes) = &stats[pos] else { continue };
            for ((_, want, tag), got) in list.iter().zip(sizes) {
                if *got != Some(*want) {
                    todo[*tag].2 = true;
                }
            }
        }
        // Heals run at once within HEAL_BUDGET, in the order of the page (the semaphore is
        // fair: a large version waiting for its share holds back the small ones after it).
        let leader = self.leader.clone();
        let budget = Arc::new(tokio::sync::Semaphore::new(HEAL_BUDGET as usize));
        let mut heals = futures::stream::iter(todo.into_iter().filter(|t| t.2))
            .take_while(|_| std::future::ready(leader()))
            .map(|(key, vid, _, cost)| {
                let set = set.clone();
                let budget = budget.clone();
                async move {
                    let _share = budget.acquire_many(cost).await;
                    let r = set.heal_object(bucket, &key, &vid, deep).await;
                    (key, r)
                }
            })
            .buffer_unordered(HEAL_BUDGET as usize);
        while let Some((key, result)) = heals.next().await {
            match result {
                Ok(r) => {
                    self.count(bucket, &key, &r);
                    if !r.complete && unanswered == 0 {
                        self.update(|s| s.failed += 1);
                    }
                    self.throttle(r.bytes_read + r.bytes_written).await;
                }
                Err(Error::NoSuchKey | Error::NoSuchVersion) => {}
                Err(e) => {
                    tracing::warn!(bucket, key = %key, error = %e, "scanner could not heal");
                    self.update(|s| s.failed += 1);
                }
            }
        }
        drop(heals);
        if !(self.leader)() {
            return (Some(after.to_vec()), 0);
        }
        let next = if bound.is_none() {
            None
        } else {
            last.map(String::into_bytes)
        };
        (next, scanned)
    }

    /// Removes the records of a version that a quorum never held (a write that failed
    /// half-way, or a delete that a down drive missed); its shard files go with the orphan
    /// sweep.
    async fn remove_partial(
        &self,
        bucket: &str,
        key: &str,
        rec: &VersionRecord,
        holders: &[usize],
    ) {
        for &pos in holders {
            let d = &self.set.drives[pos];
            if let Ok(Some(cur)) = d.get_version(bucket, key, &rec.version_id).await {
                if same_version(&cur, rec) {
                    let _ = d.delete_version(bucket, key, &rec.version_id).await;
                }
            }
        }
        tracing::info!(bucket, key, version = %rec.version_id, copies = holders.len(), "removed a version that never reached quorum");
        self.update(|s| s.partial_removed += 1);
    }

    /// Deletes shard files of `bucket` that no version or upload part references and that
    /// are older than the grace period. Only done when this process saw the whole bucket's
    /// references in this pass.
    async fn sweep_orphans(&mut self, bucket: &str) {
        let Some((b, mut refs)) = self.refs.take() else {
            return;
        };
        if b != bucket {
            return;
        }
        let set = self.set.clone();
        if set.drives.iter().any(|d| !d.is_online()) {
            return;
        }
        // Parts of uploads in flight are referenced too.
        let mut after = (String::new(), String::new());
        loop {
            let mut page = Vec::new();
            for d in &set.drives {
                match d.list_uploads(bucket, "", (&after.0, &after.1), 1000).await {
                    Ok(list) => page.extend(list),
                    Err(_) => return,
                }
            }
            page.sort_by(|a, b| (&a.key, &a.upload_id).cmp(&(&b.key, &b.upload_id)));
            page.dedup_by(|a, b| a.key == b.key && a.upload_id == b.upload_id);
            page.truncate(1000);
            for u in &page {
                for d in &set.drives {
                    match d.list_parts(bucket, &u.key, &u.upload_id).await {
                        Ok(parts) => refs.extend(parts.into_iter().map(|p| p.data_dir)),
                        Err(_) => return,
                    }
                }
            }
            match page.last() {
                Some(u) if page.len() >= 1000 => after = (u.key.clone(), u.upload_id.clone()),
                _ => break,
            }
        }
        let grace = self.cfg.grace.as_secs();
        for d in &set.drives {
            let mut after = String::new();
            loop {
                let Ok(files) = d.list_shard_files(bucket, &after, 1000).await else {
                    break;
                };
                for (name, age) in &files {
                    if age > &grace
                        && !refs.contains(name)
                        && d.delete_shard(bucket, name).await.is_ok()
                    {
                        tracing::info!(drive = %d.endpoint(), bucket, file = %name, "removed orphan shard file");
                        self.update(|s| s.orphans_removed += 1);
                    }
                }
                match files.last() {
                    Some((name, _)) if files.len() >= 1000 => after = name.clone(),
                    _ => break,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hint_put_back_during_an_outage_is_due_once_it_ends() {
        let mut hint = HealHint::version("b", "k", "v", false);
        // A new hint is due.
        assert!(hint_due(&hint, 1_000_000, &[]));
        // Put back at t = 1,000,000 after its third failure: due 8 s later.
        hint.attempts = 3;
        hint.not_before_ms = 1_000_000 + backoff_ms(3);
        assert_eq!(backoff_ms(3), 8_000);
        assert!(!hint_due(&hint, 1_001_000, &[]));
        assert!(hint_due(&hint, 1_008_000, &[]));
        // An outage it was put back in, now over, makes it due now...
        assert!(hint_due(&hint, 1_001_000, &[(990_000, 1_000_500)]));
        // ...but not an outage over before it failed, nor one that began after: a drive that
        // comes and goes does not undo the backoff of a hint that failed while it answered.
        assert!(!hint_due(&hint, 1_001_000, &[(990_000, 999_000)]));
        assert!(!hint_due(&hint, 1_001_000, &[(1_000_200, 1_000_800)]));
        // The backoff stops growing at 5 minutes.
        assert_eq!(backoff_ms(30), 300_000);
    }

    /// Six drives in temporary folders and their 4+2 set.
    fn six_drives() -> (
        Vec<tempfile::TempDir>,
        Vec<Arc<dyn crate::drive::Drive>>,
        Arc<ErasureSet>,
    ) {
        let dirs: Vec<tempfile::TempDir> = (0..6).map(|_| tempfile::tempdir().unwrap()).collect();
        let drives: Vec<Arc<dyn crate::drive::Drive>> = dirs
            .iter()
            .map(|d| Arc::new(crate::drive::LocalDrive::open(d.path()).unwrap()) as _)
            .collect();
        let codec = crate::erasure::Codec::new(4, 2, 1 << 20).unwrap();
        let set = Arc::new(ErasureSet::new(drives.clone(), codec, 0));
        (dirs, drives, set)
    }

    /// The repair worker of `set`, leading it, with nothing in flight.
    fn leader(set: Arc<ErasureSet>) -> Repairer {
        Repairer::new(
            set,
            0,
            RepairConfig::default(),
            Arc::new(|| true),
            Arc::new(|| false),
        )
    }

    /// A heal removes the hint as it was listed. A copy stored again meanwhile by a writer
    /// whose clock runs a minute behind the leader's stays, and the next round takes it.
    #[tokio::test]
    async fn a_heal_removes_the_hint_it_listed_and_leaves_one_stored_since() {
        let (_dirs, drives, set) = six_drives();
        // Its version does not exist: the heal finds nothing to do, and removes the hint.
        let hint = HealHint::version("b", "k", "v", false);
        for d in &drives[..5] {
            d.put_hint(&hint).await.unwrap();
        }
        let again = HealHint {
            created_ms: hint.created_ms - 60_000,
            ..hint.clone()
        };
        drives[5].put_hint(&again).await.unwrap();
        let mut r = leader(set);
        assert_eq!(r.work_hints().await, 1);
        for d in &drives[..5] {
            assert!(d.list_hints(b"", 10).await.unwrap().is_empty());
        }
        assert_eq!(drives[5].list_hints(b"", 10).await.unwrap(), vec![again]);
        assert_eq!(r.work_hints().await, 1);
        assert!(drives[5].list_hints(b"", 10).await.unwrap().is_empty());
    }

    /// A set over `drives` that keeps objects up to `inline_limit` inline, holding bucket `b`
    /// and in it a 3000-byte object `key` (in shard files when `inline_limit` is 0).
    async fn set_with_object(
        drives: &[Arc<dyn crate::drive::Drive>],
        key: &str,
        inline_limit: usize,
    ) -> Arc<ErasureSet> {
        let codec = crate::erasure::Codec::new(4, 2, 1 << 20).unwrap();
        let set = Arc::new(ErasureSet::new(drives.to_vec(), codec, inline_limit));
        if set.get_bucket("b").await.is_err() {
            set.create_bucket("b", None).await.unwrap();
        }
        let data = bytes::Bytes::from(vec![7u8; 3000]);
        let body = futures::stream::once(async move { Ok(data) }).boxed();
        set.put_object("b", key, Default::default(), body)
            .await
            .unwrap();
        set
    }

    /// A copy that missed a tag change, with no hint left to name it, is found by the
    /// scanner's pass and brought up to date, keeping its own shard (inline, or in a shard
    /// file); the pass after it finds nothing left to heal.
    #[tokio::test]
    async fn the_scanner_heals_a_copy_that_missed_a_tag_change() {
        let (_dirs, drives, _) = six_drives();
        for (key, inline_limit) in [("in-files", 0), ("inline", 64 << 10)] {
            let set = set_with_object(&drives, key, inline_limit).await;
            let old = drives[0].get_version("b", key, "null").await.unwrap();
            let old = old.unwrap();
            assert_eq!(old.inline.is_some(), inline_limit > 0, "{key}");
            set.update_version("b", key, None, |v| {
                v.tags.insert("t".into(), "v".into());
            })
            .await
            .unwrap();
            let current = drives[1].get_version("b", key, "null").await.unwrap();
            let current = current.unwrap();
            // Drive 0 still holds the copy from before (it was away, and its hint is gone).
            drives[0].delete_version("b", key, "null").await.unwrap();
            drives[0].put_version("b", key, &old).await.unwrap();
            let mut r = leader(set);
            r.scan_page("b", "", b"", false).await;
            let healed = drives[0].get_version("b", key, "null").await.unwrap();
            let healed = healed.unwrap();
            assert_eq!(healed.tags, current.tags, "{key}");
            assert_eq!(healed.meta_ns, current.meta_ns, "{key}");
            assert_eq!(healed.layout.shard_index, old.layout.shard_index, "{key}");
            assert_eq!(healed.inline, old.inline, "{key}");
            let done = r.snapshot().healed;
            assert!(done >= 1, "{key}");
            r.scan_page("b", "", b"", false).await;
            assert_eq!(r.snapshot().healed, done, "{key}: healed again");
        }
    }

    /// Two tag changes stamped alike (two gateways read the same copy, on clocks behind its
    /// stamp) that reached different drives: every read serves the greater tags, whichever
    /// drives it asks, and the scanner heals the other copies to them.
    #[tokio::test]
    async fn tag_changes_stamped_alike_are_read_and_healed_alike() {
        let (_dirs, drives, _) = six_drives();
        for (key, inline_limit) in [("in-files", 0), ("inline", 64 << 10)] {
            let set = set_with_object(&drives, key, inline_limit).await;
            let a = set
                .update_version("b", key, None, |v| {
                    v.tags.insert("t".into(), "a".into());
                })
                .await
                .unwrap();
            // The other change, with the same stamp, reached the last three drives.
            for d in &drives[3..] {
                let mut c = d.get_version("b", key, "null").await.unwrap().unwrap();
                c.tags.insert("t".into(), "z".into());
                d.put_version("b", key, &c).await.unwrap();
                let kept = d.get_version("b", key, "null").await.unwrap().unwrap();
                assert_eq!((kept.tags["t"].as_str(), kept.meta_ns), ("z", a.meta_ns));
            }
            let (all, _) = set.quorum_version("b", key, None).await.unwrap();
            assert_eq!(all.tags["t"], "z", "{key}: read of all drives");
            let fast = set.version_from_k("b", key, None).await;
            let fast = fast.expect("at 4+2 a read asks k drives first").unwrap();
            assert_eq!(fast.0.tags["t"], "z", "{key}: read of k drives");
            // A copy with the lesser tags and the same stamp is refused.
            let mut back = drives[3]
                .get_version("b", key, "null")
                .await
                .unwrap()
                .unwrap();
            back.tags.insert("t".into(), "a".into());
            drives[3].put_version("b", key, &back).await.unwrap();
            let kept = drives[3]
                .get_version("b", key, "null")
                .await
                .unwrap()
                .unwrap();
            assert_eq!(kept.tags["t"], "z", "{key}");
            let mut before = Vec::new();
            for d in &drives {
                before.push(d.get_version("b", key, "null").await.unwrap().unwrap());
            }
            let mut r = leader(set);
            r.scan_page("b", "", b"", false).await;
            for (i, (d, b)) in drives.iter().zip(before).enumerate() {
                let c = d.get_version("b", key, "null").await.unwrap().unwrap();
                assert_eq!(c.tags["t"], "z", "{key}: drive {i}");
                assert_eq!(
                    (c.layout.shard_index, c.inline),
                    (b.layout.shard_index, b.inline),
                    "{key}: drive {i}"
                );
            }
            let done = r.snapshot().healed;
            r.scan_page("b", "", b"", false).await;
            assert_eq!(r.snapshot().healed, done, "{key}: healed again");
        }
    }

    /// A bucket change that a drive missed (it was away) is read from the drives that took
    /// it, whatever their order, and the scanner's pass brings the drive's copy up to date.
    #[tokio::test]
    async fn a_bucket_change_a_drive_missed_is_read_and_healed() {
        let (_dirs, drives, set) = six_drives();
        set.create_bucket("b", None).await.unwrap();
        let before = drives[0].get_bucket("b").await.unwrap().unwrap();
        set.set_versioning("b", "Enabled").await.unwrap();
        // Drive 0 was away: it still holds the record from before. (A drive refuses an older
        // copy over a newer one, so the newer one is taken out first.)
        drives[0].put_bucket(&before).await.unwrap();
        assert!(drives[0]
            .get_bucket("b")
            .await
            .unwrap()
            .unwrap()
            .versioning
            .is_some());
        drives[0].delete_bucket("b").await.unwrap();
        drives[0].put_bucket(&before).await.unwrap();
        assert_eq!(
            drives[0].get_bucket("b").await.unwrap(),
            Some(before.clone())
        );
        let rec = set.get_bucket("b").await.unwrap();
        assert_eq!(rec.versioning.as_deref(), Some("Enabled"));
        let listed = set.list_buckets().await.unwrap();
        assert_eq!(listed[0].versioning.as_deref(), Some("Enabled"));
        let r = leader(set);
        r.heal_buckets().await;
        let healed = drives[0].get_bucket("b").await.unwrap().unwrap();
        assert_eq!(healed, rec);
    }

    /// A bucket deleted while a drive was away stays deleted when the drive is back with its
    /// old copy: the delete left tombstones, which the scanner spreads over that copy. A
    /// bucket of the name made again later is newer than the tombstones.
    #[tokio::test]
    async fn a_bucket_deleted_while_a_drive_was_away_does_not_come_back() {
        let (dirs, drives, set) = six_drives();
        set.create_bucket("b", None).await.unwrap();
        set.set_versioning("b", "Enabled").await.unwrap();
        let live = drives[0].get_bucket("b").await.unwrap().unwrap();
        set.delete_bucket("b").await.unwrap();
        for d in &drives {
            let tomb = d.get_bucket("b").await.unwrap().unwrap();
            assert!(tomb.is_deleted() && tomb.stamp() > live.stamp(), "{tomb:?}");
        }
        // Drive 0 was away: it still holds the live copy (and a shard folder), and drive 5
        // holds no copy at all (replaced by a blank one), so only four tombstones answer.
        // Drive 0 refuses the live copy over its tombstone; taken out, it takes it.
        drives[0].put_bucket(&live).await.unwrap();
        assert!(drives[0]
            .get_bucket("b")
            .await
            .unwrap()
            .unwrap()
            .is_deleted());
        drives[0].delete_bucket("b").await.unwrap();
        drives[0].put_bucket(&live).await.unwrap();
        let folder = dirs[0].path().join("shards").join("b");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("left"), b"x").unwrap();
        drives[5].delete_bucket("b").await.unwrap();
        assert!(matches!(
            set.get_bucket("b").await,
            Err(Error::NoSuchBucket)
        ));
        assert!(set.list_buckets().await.unwrap().is_empty());
        let r = leader(set.clone());
        assert!(r.bucket_names().await.is_empty());
        let body = futures::stream::once(async { Ok(bytes::Bytes::from_static(b"x")) }).boxed();
        assert!(matches!(
            set.put_object("b", "k", Default::default(), body).await,
            Err(Error::NoSuchBucket)
        ));
        r.heal_buckets().await;
        let mut tombs = Vec::new();
        for d in &drives {
            tombs.push(d.get_bucket("b").await.unwrap().unwrap());
        }
        assert!(tombs.iter().all(|t| *t == tombs[0] && t.is_deleted()));
        assert!(
            !folder.exists(),
            "the tombstone's heal left the shard folder"
        );
        // Made by a gateway whose clock ran an hour ahead, so the tombstone is stamped in
        // this clock's future: a bucket made again is still newer.
        let mut ahead = tombs[0].clone();
        ahead.created_ns += 3_600_000_000_000;
        ahead.updated_ns += 3_600_000_000_000;
        ahead.deleted_ns = ahead.updated_ns;
        for d in &drives {
            d.put_bucket(&ahead).await.unwrap();
        }
        set.create_bucket("b", None).await.unwrap();
        let again = set.get_bucket("b").await.unwrap();
        assert!(!again.is_deleted() && again.created_ns > ahead.created_ns);
        assert_eq!(again.versioning, None);
        assert!(matches!(
            set.create_bucket("b", None).await,
            Err(Error::BucketExists)
        ));
        assert_eq!(r.bucket_names().await, vec!["b".to_string()]);
        // A heal or a delete that read the tombstones before the bucket was made again, and
        // lands after, is refused: the new record and its shard folder stay.
        std::fs::create_dir_all(&folder).unwrap();
        drives[0].put_bucket(&ahead).await.unwrap();
        assert_eq!(drives[0].get_bucket("b").await.unwrap().unwrap(), again);
        assert!(folder.exists());
    }

    /// A checkpoint saved while two drives were away reaches them once they are back: a new
    /// leader that can reach only those two then resumes from it (no pass due) instead of
    /// starting a whole pass at once. A drive is written once, and one holding a newer
    /// checkpoint (another leader's) keeps it.
    #[tokio::test]
    async fn a_checkpoint_reaches_the_drives_that_were_away_at_its_save() {
        let dirs: Vec<tempfile::TempDir> = (0..6).map(|_| tempfile::tempdir().unwrap()).collect();
        let faulty: Vec<Arc<crate::drive::faulty::FaultyDrive>> = dirs
            .iter()
            .map(|d| {
                let local = crate::drive::LocalDrive::open(d.path()).unwrap();
                Arc::new(crate::drive::faulty::FaultyDrive::new(Arc::new(local)))
            })
            .collect();
        let drives: Vec<Arc<dyn crate::drive::Drive>> =
            faulty.iter().map(|d| d.clone() as _).collect();
        let codec = crate::erasure::Codec::new(4, 2, 1 << 20).unwrap();
        let set = Arc::new(ErasureSet::new(drives.clone(), codec, 0));
        set.create_bucket("b", None).await.unwrap();
        for f in &faulty[..3] {
            f.set_offline(true);
        }
        let mut r = leader(set.clone());
        r.load_checkpoint().await;
        r.start_pass(false).await;
        while r.snapshot().in_pass {
            r.scan_step().await;
            r.save_checkpoint().await;
        }
        let saved = r.snapshot();
        assert_eq!(saved.pass, 1);
        // Nothing to spread while they are away.
        r.spread_checkpoint().await;
        for (f, d) in faulty.iter().zip(&drives).take(3) {
            assert_eq!(f.state_writes(), 0);
            f.set_offline(false);
            assert_eq!(d.get_state(CHECKPOINT).await.unwrap(), None);
        }
        // Drive 2 took a newer checkpoint meanwhile, from another leader.
        let newer = RepairStatus {
            pass: 7,
            saved_ms: saved.saved_ms + 1,
            ..saved.clone()
        };
        let newer_raw = serde_json::to_vec(&newer).unwrap();
        drives[2].put_state(CHECKPOINT, &newer_raw).await.unwrap();
        let writes: Vec<u64> = faulty.iter().map(|f| f.state_writes()).collect();
        r.spread_checkpoint().await;
        r.spread_checkpoint().await;
        let added: Vec<u64> = faulty
            .iter()
            .zip(&writes)
            .map(|(f, w)| f.state_writes() - w)
            .collect();
        assert_eq!(added, [1, 1, 0, 0, 0, 0]);
        let kept = drives[2].get_state(CHECKPOINT).await.unwrap();
        assert_eq!(kept, Some(newer_raw));
        for f in &faulty[2..] {
            f.set_offline(true);
        }
        let mut next = leader(set);
        next.load_checkpoint().await;
        let st = next.snapshot();
        assert_eq!(
            (st.pass, st.in_pass, st.last_pass_finished_ms, st.saved_ms),
            (1, false, saved.last_pass_finished_ms, saved.saved_ms)
        );
    }

    /// The scanner waits for clients like a heal does: a page under a steady foreground load
    /// waits the bound of that wait and then goes on, so a pass is never starved.
    #[tokio::test]
    async fn a_scanner_page_waits_for_clients_within_a_bound() {
        let (_dirs, _drives, set) = six_drives();
        set.create_bucket("b", None).await.unwrap();
        let body = futures::stream::once(async { Ok(bytes::Bytes::from_static(b"x")) }).boxed();
        set.put_object("b", "k", Default::default(), body)
            .await
            .unwrap();
        let mut r = Repairer::new(
            set,
            0,
            RepairConfig::default(),
            Arc::new(|| true),
            Arc::new(|| true),
        );
        let started = tokio::time::Instant::now();
        let (next, scanned) = r.scan_page("b", "", b"", false).await;
        assert!(started.elapsed() >= MAX_YIELD, "{:?}", started.elapsed());
        assert_eq!((next, scanned), (None, 1));
    }
}
