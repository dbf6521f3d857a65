//! The object layer: buckets and objects over one erasure set of `Drive`s. It knows quorums,
//! placement and the codec; it knows nothing of HTTP or S3 wire formats.

mod bucket;
#[cfg(test)]
mod faults;
mod get;
mod heal;
mod list;
mod multipart;
mod put;
mod repair;
pub mod setup;
mod store;
mod versions;

use std::sync::Arc;

use crate::drive::{Drive, DriveError, VersionRecord};
use crate::erasure::{frame, Codec};
use bytes::Bytes;

pub use get::ObjectReader;
pub use heal::HealReport;
pub use list::ListPage;
pub use multipart::{CompletedPart, UploadsPage, MIN_PART_SIZE};
pub use put::{BodyStream, DeleteOutcome, PutOptions, WriteCondition};
pub use repair::{HealCommand, RepairConfig, RepairHandle, RepairStatus, Repairer, TargetScan};
pub use store::Store;
pub use versions::VersionsPage;

/// A boxed error from a request body (signature, checksum or transport failure).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Errors of the object layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bucket does not exist.
    #[error("no such bucket")]
    NoSuchBucket,
    /// The key (or version) does not exist.
    #[error("no such key")]
    NoSuchKey,
    /// The bucket exists already.
    #[error("bucket exists")]
    BucketExists,
    /// The bucket still holds objects.
    #[error("bucket not empty")]
    BucketNotEmpty,
    /// A conditional write's condition does not hold.
    #[error("precondition failed")]
    PreconditionFailed,
    /// Another write to the key committed while a conditional write was in flight.
    #[error("conditional request conflict")]
    ConditionalConflict,
    /// The version does not exist.
    #[error("no such version")]
    NoSuchVersion,
    /// The version asked for (or the current one) is a delete marker.
    #[error("delete marker")]
    DeleteMarker {
        /// The marker's version id.
        version_id: String,
        /// Whether the request named that version.
        requested: bool,
        /// When the marker was made (S3 sends it as `Last-Modified`).
        mod_time_ns: i128,
    },
    /// The multipart upload does not exist (or was completed or aborted).
    #[error("no such upload")]
    NoSuchUpload,
    /// A part named in CompleteMultipartUpload is missing or its ETag differs.
    #[error("invalid part: {0}")]
    InvalidPart(String),
    /// The parts of CompleteMultipartUpload are not in ascending order.
    #[error("invalid part order")]
    InvalidPartOrder,
    /// A part other than the last is smaller than 5 MiB.
    #[error("part too small: {0}")]
    EntityTooSmall(String),
    /// A whole-object checksum given at completion does not match the parts'.
    #[error("checksum mismatch: {0}")]
    ChecksumMismatch(String),
    /// The body did not match its Content-MD5.
    #[error("content-md5 mismatch")]
    BadDigest,
    /// Too few drives answered to reach a quorum.
    #[error("insufficient drives: {0}")]
    Quorum(String),
    /// Enough drives answered, but no version of the key has a quorum of copies: a write to
    /// the key is committing its records right now (or a failed one left copies behind).
    #[error("key in flux: {0}")]
    InFlux(String),
    /// The request body failed (signature, checksum, truncation, transport).
    #[error("body: {0}")]
    Body(BoxError),
    /// A drive failed in a way no quorum logic could absorb.
    #[error("drive: {0}")]
    Drive(#[from] DriveError),
    /// Internal failure.
    #[error("internal: {0}")]
    Internal(String),
}

/// Result of the object layer.
pub type Result<T> = std::result::Result<T, Error>;

/// One erasure set: `k+m` drives, the codec, and the quorum rules.
pub struct ErasureSet {
    drives: Vec<Arc<dyn Drive>>,
    codec: Arc<Codec>,
    inline_limit: usize,
    /// Striped locks that serialise the commit of conditional writes per key (in-process:
    /// conditional writes through several gateways need the cluster's own arbitration).
    key_locks: Vec<tokio::sync::Mutex<()>>,
    /// Object reads of this set streaming now (see `ObjectReader::stream`).
    streaming: Arc<std::sync::atomic::AtomicUsize>,
}

impl ErasureSet {
    /// Builds a set over `drives` (their order is their position in the set).
    pub fn new(drives: Vec<Arc<dyn Drive>>, codec: Codec, inline_limit: usize) -> Self {
        Self {
            drives,
            codec: Arc::new(codec),
            inline_limit,
            key_locks: (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
            streaming: Arc::default(),
        }
    }

    fn key_lock(&self, bucket: &str, key: &str) -> &tokio::sync::Mutex<()> {
        let h = blake3::hash(format!("{bucket}\0{key}").as_bytes());
        &self.key_locks[h.as_bytes()[0] as usize % self.key_locks.len()]
    }

    /// Data shards `k`.
    pub fn k(&self) -> usize {
        self.codec.data_shards()
    }

    /// Parity shards `m`.
    pub fn m(&self) -> usize {
        self.codec.parity_shards()
    }

    /// Drives that must commit a write: `k`, or `k+1` when `k == m`.
    pub fn write_quorum(&self) -> usize {
        let (k, m) = (self.k(), self.m());
        if k == m {
            k + 1
        } else {
            k
        }
    }

    /// Drives that must agree on a read: `k`.
    pub fn read_quorum(&self) -> usize {
        self.k()
    }

    /// The drives of the set, in set order.
    pub fn drives(&self) -> &[Arc<dyn Drive>] {
        &self.drives
    }

    /// Calls every drive of the set concurrently; once a write quorum has answered
    /// successfully, slower drives get a grace period and are then abandoned for this call
    /// (see [`quorum_join`]).
    pub(crate) async fn on_drives<'s, T, F, Fut>(
        &'s self,
        f: F,
    ) -> Vec<std::result::Result<T, DriveError>>
    where
        F: FnMut(&'s Arc<dyn Drive>) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, DriveError>>,
    {
        self.on_drives_until(self.write_quorum(), f).await
    }

    /// Successful answers that share a drive with every write quorum: a read that waits for
    /// this many sees every write that reached a quorum (more than a write quorum only where
    /// `k < m`, whose write quorums need not meet).
    pub(crate) fn meeting_quorum(&self) -> usize {
        let w = self.write_quorum();
        w.max(self.drives.len() + 1 - w)
    }

    /// [`Self::on_drives`], the grace starting once `need` drives have answered successfully.
    pub(crate) async fn on_drives_until<'s, T, F, Fut>(
        &'s self,
        need: usize,
        f: F,
    ) -> Vec<std::result::Result<T, DriveError>>
    where
        F: FnMut(&'s Arc<dyn Drive>) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, DriveError>>,
    {
        let futs: Vec<Fut> = self.drives.iter().map(f).collect();
        quorum_join(futs, need, |r| r.is_ok())
            .await
            .into_iter()
            .zip(&self.drives)
            .map(|(r, d)| r.unwrap_or_else(|| too_slow(d)))
            .collect()
    }

    /// Runs one future per shard (shard `i` on the drive at `distribution[i]`) under
    /// [`quorum_join`]; a shard whose drive is abandoned gets `abandoned()`, and its drive is
    /// told.
    pub(crate) async fn on_shards<T, F>(
        &self,
        distribution: &[u8],
        futs: Vec<F>,
        ok: impl Fn(&T) -> bool,
        abandoned: impl Fn() -> T,
    ) -> Vec<T>
    where
        F: std::future::Future<Output = T>,
    {
        quorum_join(futs, self.write_quorum(), ok)
            .await
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                r.unwrap_or_else(|| {
                    self.drives[distribution[i] as usize].note_slow();
                    abandoned()
                })
            })
            .collect()
    }

    /// How many drives answer a cheap probe right now.
    pub async fn online_drives(&self) -> usize {
        self.on_drives(|d| d.read_format())
            .await
            .into_iter()
            .filter(|r| matches!(r, Ok(Some(_))))
            .count()
    }

    /// Counts the drives that succeeded, logging each failure.
    fn count_ok<T>(&self, what: &str, answers: &[std::result::Result<T, DriveError>]) -> usize {
        for (d, a) in self.drives.iter().zip(answers) {
            if let Err(e) = a {
                crate::metrics::get().drive_error(&d.endpoint());
                // A drive marked offline was logged once when it was marked: a line for every
                // request it misses while a node is down would bury the log.
                if d.is_online() {
                    tracing::warn!(drive = %d.endpoint(), error = %e, "{what} failed");
                } else {
                    tracing::debug!(drive = %d.endpoint(), error = %e, "{what} failed");
                }
            }
        }
        answers.iter().filter(|a| a.is_ok()).count()
    }

    /// Shard placement of `key`: `distribution[i]` is the set position holding shard `i`.
    fn distribution(&self, bucket: &str, key: &str) -> Vec<u8> {
        let n = self.drives.len();
        let mut h = blake3::Hasher::new();
        h.update(bucket.as_bytes());
        h.update(&[0]);
        h.update(key.as_bytes());
        let b = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&b.as_bytes()[..8]);
        let off = (u64::from_le_bytes(first) % n as u64) as usize;
        (0..n).map(|i| ((i + off) % n) as u8).collect()
    }

    /// Reads the version records of `key` (all of them, or the one named) from every drive
    /// and picks the newest version that a read quorum holds identical copies of. Returns it
    /// with, per set position, that drive's copy (or `None`). The chosen version may be a
    /// delete marker.
    async fn quorum_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<(VersionRecord, Vec<Option<VersionRecord>>)> {
        let answers: Vec<std::result::Result<Vec<VersionRecord>, DriveError>> = self
            .on_drives(|d| versions_on(d, bucket, key, version_id))
            .await;
        let errors = self.drives.len() - self.count_ok("read version records", &answers);
        let per_drive: Vec<Vec<VersionRecord>> =
            answers.into_iter().map(|a| a.unwrap_or_default()).collect();
        let mut best: Option<&VersionRecord> = None;
        for c in per_drive.iter().flatten() {
            let agree = per_drive
                .iter()
                .filter(|vs| vs.iter().any(|o| same_version(o, c)))
                .count();
            let newer = best.is_none_or(|b| recency(c) > recency(b));
            // A version written with raised parity (drives were down) is readable from its
            // own `k` copies.
            let need = self.read_quorum().min((c.layout.k as usize).max(1));
            if agree >= need && newer {
                best = Some(c);
            }
        }
        match best {
            Some(best) => {
                // The copy whose tags changed last: drives away during a change hold older.
                let rec = per_drive
                    .iter()
                    .flatten()
                    .filter(|c| same_version(c, best))
                    .max_by(|a, b| a.meta_order().cmp(&b.meta_order()))
                    .unwrap_or(best)
                    .clone();
                let copies = per_drive
                    .into_iter()
                    .map(|vs| vs.into_iter().find(|c| same_version(c, &rec)))
                    .collect();
                Ok((rec, copies))
            }
            None => {
                let found = per_drive.iter().filter(|vs| !vs.is_empty()).count();
                let why = format!(
                    "{found} of {} drives hold {bucket}/{key}, {errors} failed; need {}",
                    self.drives.len(),
                    self.read_quorum()
                );
                if errors > self.m() {
                    Err(Error::Quorum(why))
                } else if found > 0 {
                    Err(Error::InFlux(why))
                } else if version_id.is_some() {
                    Err(Error::NoSuchVersion)
                } else {
                    Err(Error::NoSuchKey)
                }
            }
        }
    }

    /// The version a read wants, from `k` drives only: the first `k` online drives in the
    /// key's shard order, which for an intact set hold its data shards. It answers only when
    /// every one of them answers and each holds the same version as its newest (or the version
    /// named), or none holds any: a write acknowledged later than that version reached a write
    /// quorum, and `k` drives share at least one drive with every write quorum when
    /// `k + write quorum > k + m`, so one of them would hold it. The copies of an inline
    /// object must also verify. `None` sends the read to all drives ([`Self::quorum_version`]).
    /// Returns the version (or `NoSuchKey` / `NoSuchVersion`) and the copies per set position,
    /// `None` for the drives not asked.
    pub(crate) async fn version_from_k(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Option<Result<(VersionRecord, Vec<Option<VersionRecord>>)>> {
        let n = self.drives.len();
        let k = self.k();
        if k + self.write_quorum() <= n {
            return None;
        }
        let asked: Vec<usize> = self
            .distribution(bucket, key)
            .into_iter()
            .map(usize::from)
            .filter(|&p| self.drives[p].is_online())
            .take(k)
            .collect();
        if asked.len() < k {
            return None;
        }
        let reads = asked
            .iter()
            .map(|&p| versions_on(&self.drives[p], bucket, key, version_id));
        // A drive that has not answered within HEDGE_AFTER (a stopped node, before it is
        // known to be down) sends the read to all drives, where it is abandoned after the
        // grace that follows a quorum, instead of holding the read for the call's timeout.
        let answers: Vec<Vec<VersionRecord>> =
            tokio::time::timeout(HEDGE_AFTER, futures::future::join_all(reads))
                .await
                .ok()?
                .into_iter()
                .collect::<std::result::Result<_, _>>()
                .ok()?;
        if answers.iter().all(|vs| vs.is_empty()) {
            return Some(Err(match version_id {
                Some(_) => Error::NoSuchVersion,
                None => Error::NoSuchKey,
            }));
        }
        let newest = |vs: &Vec<VersionRecord>| vs.iter().max_by_key(|r| recency(r)).cloned();
        let mut copies: Vec<Option<VersionRecord>> = vec![None; n];
        for (&p, vs) in asked.iter().zip(&answers) {
            copies[p] = Some(newest(vs)?);
        }
        // Of agreeing copies, the one whose tags changed last: `k` drives share at least one
        // drive with the write quorum that took the latest change.
        let first = asked
            .iter()
            .filter_map(|&p| copies[p].as_ref())
            .max_by(|a, b| a.meta_order().cmp(&b.meta_order()))?
            .clone();
        let unanimous = asked.iter().all(|&p| {
            copies[p].as_ref().is_some_and(|c| {
                same_version(c, &first)
                    && (!is_inline(c)
                        || c.inline
                            .as_ref()
                            .is_some_and(|f| frame::decode(&Bytes::from(f.clone())).is_some()))
            })
        });
        unanimous.then_some(Ok((first, copies)))
    }
}

/// How long a read waits for the drives it asked first before it asks the others too: the
/// `k` drives of [`ErasureSet::version_from_k`], and the data shards of a GET's batch before
/// parity is read as well.
const HEDGE_AFTER: std::time::Duration = std::time::Duration::from_millis(500);
/// Shortest and longest grace that drives slower than a quorum get.
const GRACE_MIN: std::time::Duration = std::time::Duration::from_millis(250);
const GRACE_MAX: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs `futs` concurrently. Once `need` of them have produced an answer that `ok` accepts,
/// the rest get a grace period (twice the time the quorum took, within 250 ms..2 s); any
/// still running then are abandoned and reported as `None`. So a stopped or slow drive delays
/// a request by the grace, not by its timeout.
pub(crate) async fn quorum_join<T, F>(
    futs: Vec<F>,
    need: usize,
    ok: impl Fn(&T) -> bool,
) -> Vec<Option<T>>
where
    F: std::future::Future<Output = T>,
{
    use futures::stream::{FuturesUnordered, StreamExt};
    let n = futs.len();
    let mut out: Vec<Option<T>> = (0..n).map(|_| None).collect();
    let mut pending: FuturesUnordered<_> = futs
        .into_iter()
        .enumerate()
        .map(|(i, f)| async move { (i, f.await) })
        .collect();
    let start = tokio::time::Instant::now();
    let mut good = 0;
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let next = match deadline {
            None => pending.next().await,
            Some(d) => match tokio::time::timeout_at(d, pending.next()).await {
                Ok(next) => next,
                Err(_) => break,
            },
        };
        let Some((i, r)) = next else { break };
        if ok(&r) {
            good += 1;
        }
        out[i] = Some(r);
        if good >= need && deadline.is_none() {
            let grace = (start.elapsed() * 2).clamp(GRACE_MIN, GRACE_MAX);
            deadline = Some(tokio::time::Instant::now() + grace);
        }
    }
    out
}

/// The answer recorded for a drive abandoned by [`quorum_join`]; the drive is told.
fn too_slow<T>(drive: &Arc<dyn Drive>) -> std::result::Result<T, DriveError> {
    drive.note_slow();
    Err(DriveError::Offline(format!(
        "{} did not answer within the grace after quorum",
        drive.endpoint()
    )))
}

/// The codec a version was written with (its layout's `k`, `m` and stripe size).
pub(crate) fn layout_codec(layout: &crate::drive::ErasureLayout) -> Result<Codec> {
    Codec::new(
        layout.k as usize,
        layout.m as usize,
        layout.stripe_size as usize,
    )
    .map_err(|e| Error::Internal(e.to_string()))
}

/// One erasure-coded run of bytes with its own shard file: a whole single-PUT object, or one
/// part of a multipart one.
#[derive(Clone)]
pub(crate) struct Segment {
    pub data_dir: String,
    pub size: u64,
}

/// The segments of a version, in order.
pub(crate) fn segments(rec: &VersionRecord) -> Vec<Segment> {
    if rec.parts.is_empty() {
        vec![Segment {
            data_dir: rec.data_dir.clone(),
            size: rec.size,
        }]
    } else {
        rec.parts
            .iter()
            .map(|p| Segment {
                data_dir: p.data_dir.clone(),
                size: p.size,
            })
            .collect()
    }
}

/// The version id a new write to a bucket gets: a fresh id where versioning is enabled,
/// `null` otherwise (never enabled, or suspended).
pub fn new_version_id(bucket: &crate::drive::BucketRecord) -> String {
    if bucket.versioning.as_deref() == Some("Enabled") {
        uuid::Uuid::new_v4().simple().to_string()
    } else {
        "null".to_string()
    }
}

/// A drive's records of `key`: every version, or only the one named.
async fn versions_on(
    d: &Arc<dyn Drive>,
    bucket: &str,
    key: &str,
    version_id: Option<&str>,
) -> std::result::Result<Vec<VersionRecord>, DriveError> {
    match version_id {
        Some(v) => d
            .get_version(bucket, key, v)
            .await
            .map(|r| r.into_iter().collect()),
        None => d.key_versions(bucket, key).await,
    }
}

/// What orders the versions of a key, newest last: time, then version id and ETag.
fn recency(rec: &VersionRecord) -> (i128, &str, &str) {
    (rec.mod_time_ns, &rec.version_id, &rec.etag)
}

/// Whether a version keeps its data in its records (not a delete marker).
fn is_inline(rec: &VersionRecord) -> bool {
    rec.data_dir.is_empty() && rec.parts.is_empty() && !rec.delete_marker
}

/// Two copies describe the same version (they differ only in shard index and inline bytes).
fn same_version(a: &VersionRecord, b: &VersionRecord) -> bool {
    a.version_id == b.version_id
        && a.mod_time_ns == b.mod_time_ns
        && a.data_dir == b.data_dir
        && a.etag == b.etag
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_ns() -> i128 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos()
}
