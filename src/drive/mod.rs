//! The `Drive` seam: everything about bytes on disk lives below it, everything S3 above it.
//! The object layer only ever sees `Drive`s; `LocalDrive` serves a folder of this machine.

#[cfg(test)]
pub mod faulty;
pub mod local;
pub mod proto;
pub mod record;
pub mod remote;

use async_trait::async_trait;
use bytes::Bytes;

pub use local::LocalDrive;
pub use record::{
    BucketRecord, ErasureLayout, FormatRecord, HealHint, ListEntry, PartRecord, PartRef,
    UploadRecord, VersionRecord,
};

/// Errors a drive reports.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    /// An I/O error from the file system.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The metadata database failed.
    #[error("db: {0}")]
    Db(String),
    /// Stored data is unreadable or does not verify.
    #[error("corrupt: {0}")]
    Corrupt(String),
    /// The drive is not reachable.
    #[error("drive offline: {0}")]
    Offline(String),
    /// The shard file or record does not exist.
    #[error("not found")]
    NotFound,
}

/// Which stored heal hint a removal takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HintRemoval {
    /// Whatever is stored under the id.
    Any,
    /// Only the hint made at this time (its `created_ms`), as the remover listed it. One stored
    /// again since names damage that the heal may not have seen, and stays. Equality, not an
    /// order: hints are made by gateways and nodes, on clocks that need not agree.
    MadeAt(u64),
    /// Only a hint made before this time: what leaders of earlier versions ask for.
    MadeBefore(u64),
}

/// Free and total space of a drive.
#[derive(Clone, Copy, Debug, Default)]
pub struct Space {
    /// Bytes available to unprivileged writers.
    pub free: u64,
    /// Size of the file system.
    pub total: u64,
}

/// A shard file being written: blocks are appended, then the file is committed atomically
/// (temporary name, fsync, rename, directory fsync). Dropping it uncommitted removes it.
#[async_trait]
pub trait ShardWriter: Send {
    /// Appends one frame. Its return does not mean the bytes are on the disk: a writer may
    /// write behind, so an error can come from a later `write` or from `commit`.
    async fn write(&mut self, frame: crate::erasure::frame::Framed) -> Result<(), DriveError>;
    /// Makes the file durable under its final name.
    async fn commit(self: Box<Self>) -> Result<(), DriveError>;
}

/// One drive: its format record, shard files and metadata records.
#[async_trait]
pub trait Drive: Send + Sync + 'static {
    /// Human-readable location of the drive (a path or a URL).
    fn endpoint(&self) -> String;
    /// The drive's format record, `None` when the drive is blank.
    async fn read_format(&self) -> Result<Option<FormatRecord>, DriveError>;
    /// Writes the format record durably.
    async fn write_format(&self, format: &FormatRecord) -> Result<(), DriveError>;

    /// Starts a new shard file `data_dir` of `bucket` under a temporary name.
    async fn create_shard(
        &self,
        bucket: &str,
        data_dir: &str,
    ) -> Result<Box<dyn ShardWriter>, DriveError>;
    /// Reads `len` bytes at `offset` of a committed shard file; a short file is `Corrupt`.
    async fn read_shard(
        &self,
        bucket: &str,
        data_dir: &str,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, DriveError>;
    /// Deletes a committed shard file; a missing one is not an error.
    async fn delete_shard(&self, bucket: &str, data_dir: &str) -> Result<(), DriveError>;

    /// Writes (or replaces) a version record, durably, unless the drive holds a newer record
    /// of the same version id ([`VersionRecord::write_order`], then
    /// [`VersionRecord::meta_order`]: a copy of the same version with later tags; then it keeps
    /// that one).
    /// Returns the record the version id held before, with its inline bytes (a write that
    /// misses its quorum restores it), whichever was kept.
    async fn put_version(
        &self,
        bucket: &str,
        key: &str,
        rec: &VersionRecord,
    ) -> Result<Option<VersionRecord>, DriveError>;
    /// Reads one version record.
    async fn get_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<Option<VersionRecord>, DriveError>;
    /// Deletes a version record, returning what was there.
    async fn delete_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<Option<VersionRecord>, DriveError>;
    /// Up to `limit` keys of `bucket` that start with `prefix` and sort strictly after `after`
    /// (bytes), in key byte order, each with what a listing shows of its newest version
    /// (which may be a delete marker).
    async fn list_keys(
        &self,
        bucket: &str,
        prefix: &str,
        after: &[u8],
        limit: usize,
    ) -> Result<Vec<(String, ListEntry)>, DriveError>;

    /// Every version of up to `limit` keys under `prefix` strictly after `after`, in key
    /// byte order (versions of a key in no particular order).
    async fn list_versions(
        &self,
        bucket: &str,
        prefix: &str,
        after: &[u8],
        limit: usize,
    ) -> Result<Vec<(String, Vec<VersionRecord>)>, DriveError>;
    /// Every version of one key.
    async fn key_versions(&self, bucket: &str, key: &str)
        -> Result<Vec<VersionRecord>, DriveError>;

    /// Writes a bucket record, unless the drive holds a newer copy of it
    /// ([`BucketRecord::precedence_cmp`]).
    async fn put_bucket(&self, rec: &BucketRecord) -> Result<(), DriveError>;
    /// Reads a bucket record.
    async fn get_bucket(&self, name: &str) -> Result<Option<BucketRecord>, DriveError>;
    /// Deletes a bucket record and the bucket's shard folder.
    async fn delete_bucket(&self, name: &str) -> Result<(), DriveError>;
    /// All bucket records, sorted by name.
    async fn list_buckets(&self) -> Result<Vec<BucketRecord>, DriveError>;

    /// Writes a multipart upload record.
    async fn put_upload(&self, bucket: &str, rec: &UploadRecord) -> Result<(), DriveError>;
    /// Reads a multipart upload record.
    async fn get_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Option<UploadRecord>, DriveError>;
    /// Deletes an upload record and all its part records (not their shard files).
    async fn delete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), DriveError>;
    /// Upload records of `bucket` whose keys start with `prefix`, sorted by (key, upload id),
    /// strictly after `(after_key, after_upload)`, at most `limit`.
    async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        after: (&str, &str),
        limit: usize,
    ) -> Result<Vec<UploadRecord>, DriveError>;
    /// Writes (or replaces) a part record, returning the one it replaced.
    async fn put_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        rec: &PartRecord,
    ) -> Result<Option<PartRecord>, DriveError>;
    /// All part records of an upload, by part number.
    async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<PartRecord>, DriveError>;

    /// Free and total space.
    async fn space(&self) -> Result<Space, DriveError>;

    /// Stores a heal hint durably (replacing one for the same version).
    async fn put_hint(&self, hint: &HealHint) -> Result<(), DriveError>;
    /// Up to `limit` heal hints whose ids ([`HealHint::id`]) sort strictly after `after`.
    async fn list_hints(&self, after: &[u8], limit: usize) -> Result<Vec<HealHint>, DriveError>;
    /// Removes the heal hint with this id, where `which` takes it; a missing one is not an
    /// error.
    async fn delete_hint(&self, id: &[u8], which: HintRemoval) -> Result<(), DriveError>;
    /// Stores a small named blob of repair state (the scanner's checkpoint), durably.
    async fn put_state(&self, name: &str, value: &[u8]) -> Result<(), DriveError>;
    /// Reads a named blob of repair state.
    async fn get_state(&self, name: &str) -> Result<Option<Vec<u8>>, DriveError>;
    /// Sizes of the committed shard files `data_dirs` of `bucket`; `None` where missing.
    async fn stat_shards(
        &self,
        bucket: &str,
        data_dirs: &[String],
    ) -> Result<Vec<Option<u64>>, DriveError>;
    /// Committed shard files of `bucket` named after `after`, in name order, at most `limit`,
    /// each with its age in seconds.
    async fn list_shard_files(
        &self,
        bucket: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, u64)>, DriveError>;

    /// Whether calls are expected to reach the drive (a remote drive that failed is offline
    /// until its probe answers).
    fn is_online(&self) -> bool {
        true
    }
    /// The drive's last outage that has ended: when it was marked offline and when it came
    /// back into service (ms since the epoch). Repair retries at once what failed during it.
    fn last_outage_ms(&self) -> Option<(u64, u64)> {
        None
    }
    /// Tells the drive that a call was abandoned because it was too slow: a remote drive
    /// counts it as a failure, so that a stuck node is soon skipped.
    fn note_slow(&self) {}
}
