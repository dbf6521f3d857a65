//! A drive for tests that fails chosen calls on purpose and passes every other call to a real
//! drive: the faults that cannot be timed from outside a process (a drive that takes a PUT's
//! shard file and then fails its record). It also counts its shard reads and the calls
//! abandoned as too slow.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use super::{
    BucketRecord, Drive, DriveError, FormatRecord, HealHint, HintRemoval, ListEntry, PartRecord,
    ShardWriter, Space, UploadRecord, VersionRecord,
};

/// Wraps a drive; `put_version` fails as [`FaultyDrive::fail_record_writes`] and
/// [`FaultyDrive::fail_record_writes_after`] say.
pub struct FaultyDrive {
    inner: Arc<dyn Drive>,
    /// Record writes that still succeed before they fail (`u64::MAX`: all of them).
    records_left: AtomicU64,
    /// The next record written is deleted right after, as by a DELETE landing just then.
    delete_after_write: AtomicBool,
    /// Stored just before the next record written, as a write landing just then would be.
    put_before_write: std::sync::Mutex<Option<VersionRecord>>,
    /// Shard reads made on this drive.
    shard_reads: AtomicU64,
    /// Calls abandoned as too slow ([`Drive::note_slow`]).
    slow_notes: AtomicU64,
    /// State blobs written ([`Drive::put_state`]).
    state_writes: AtomicU64,
    /// Marked offline: repair's state calls fail, as a remote drive's do while its node is
    /// down.
    offline: AtomicBool,
}

impl FaultyDrive {
    pub fn new(inner: Arc<dyn Drive>) -> Self {
        Self {
            inner,
            records_left: AtomicU64::new(u64::MAX),
            delete_after_write: AtomicBool::new(false),
            put_before_write: std::sync::Mutex::new(None),
            shard_reads: AtomicU64::new(0),
            slow_notes: AtomicU64::new(0),
            state_writes: AtomicU64::new(0),
            offline: AtomicBool::new(false),
        }
    }

    /// State blobs written on this drive so far.
    pub fn state_writes(&self) -> u64 {
        self.state_writes.load(Ordering::SeqCst)
    }

    /// Marks the drive offline (or, with `false`, back online).
    pub fn set_offline(&self, offline: bool) {
        self.offline.store(offline, Ordering::SeqCst);
    }

    fn check_online(&self) -> Result<(), DriveError> {
        if self.offline.load(Ordering::SeqCst) {
            return Err(DriveError::Offline("marked offline by the test".into()));
        }
        Ok(())
    }

    /// Shard reads made on this drive so far.
    pub fn shard_reads(&self) -> u64 {
        self.shard_reads.load(Ordering::SeqCst)
    }

    /// Calls on this drive abandoned as too slow so far.
    pub fn slow_notes(&self) -> u64 {
        self.slow_notes.load(Ordering::SeqCst)
    }

    /// From now on, version record writes fail (or, with `false`, work again).
    pub fn fail_record_writes(&self, fail: bool) {
        let left = if fail { 0 } else { u64::MAX };
        self.records_left.store(left, Ordering::SeqCst);
    }

    /// The next version record written is deleted right after it is stored, as a DELETE of
    /// the key landing just then would.
    pub fn delete_after_next_record_write(&self) {
        self.delete_after_write.store(true, Ordering::SeqCst);
    }

    /// `rec` is stored just before the next version record written (under that write's key),
    /// as another writer's record landing just then would be.
    pub fn put_before_next_record_write(&self, rec: VersionRecord) {
        *self.put_before_write.lock().expect("lock") = Some(rec);
    }

    /// The next `n` version record writes succeed, and the ones after them fail.
    pub fn fail_record_writes_after(&self, n: u64) {
        self.records_left.store(n, Ordering::SeqCst);
    }
}

#[async_trait]
impl Drive for FaultyDrive {
    fn endpoint(&self) -> String {
        self.inner.endpoint()
    }
    async fn read_format(&self) -> Result<Option<FormatRecord>, DriveError> {
        self.inner.read_format().await
    }
    async fn write_format(&self, format: &FormatRecord) -> Result<(), DriveError> {
        self.inner.write_format(format).await
    }
    async fn create_shard(
        &self,
        bucket: &str,
        data_dir: &str,
    ) -> Result<Box<dyn ShardWriter>, DriveError> {
        self.inner.create_shard(bucket, data_dir).await
    }
    async fn read_shard(
        &self,
        bucket: &str,
        data_dir: &str,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, DriveError> {
        self.shard_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read_shard(bucket, data_dir, offset, len).await
    }
    async fn delete_shard(&self, bucket: &str, data_dir: &str) -> Result<(), DriveError> {
        self.inner.delete_shard(bucket, data_dir).await
    }
    async fn put_version(
        &self,
        bucket: &str,
        key: &str,
        rec: &VersionRecord,
    ) -> Result<Option<VersionRecord>, DriveError> {
        let took = self
            .records_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| match left {
                u64::MAX => Some(left),
                _ => left.checked_sub(1),
            });
        if took.is_err() {
            return Err(DriveError::Db("injected: record write failed".into()));
        }
        let before = self.put_before_write.lock().expect("lock").take();
        if let Some(before) = before {
            self.inner.put_version(bucket, key, &before).await?;
        }
        let found = self.inner.put_version(bucket, key, rec).await?;
        if self.delete_after_write.swap(false, Ordering::SeqCst) {
            self.inner
                .delete_version(bucket, key, &rec.version_id)
                .await?;
        }
        Ok(found)
    }
    async fn get_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<Option<VersionRecord>, DriveError> {
        self.inner.get_version(bucket, key, version_id).await
    }
    async fn delete_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<Option<VersionRecord>, DriveError> {
        self.inner.delete_version(bucket, key, version_id).await
    }
    async fn list_keys(
        &self,
        bucket: &str,
        prefix: &str,
        after: &[u8],
        limit: usize,
    ) -> Result<Vec<(String, ListEntry)>, DriveError> {
        self.inner.list_keys(bucket, prefix, after, limit).await
    }
    async fn list_versions(
        &self,
        bucket: &str,
        prefix: &str,
        after: &[u8],
        limit: usize,
    ) -> Result<Vec<(String, Vec<VersionRecord>)>, DriveError> {
        self.inner.list_versions(bucket, prefix, after, limit).await
    }
    async fn key_versions(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Vec<VersionRecord>, DriveError> {
        self.inner.key_versions(bucket, key).await
    }
    async fn put_bucket(&self, rec: &BucketRecord) -> Result<(), DriveError> {
        self.inner.put_bucket(rec).await
    }
    async fn get_bucket(&self, name: &str) -> Result<Option<BucketRecord>, DriveError> {
        self.inner.get_bucket(name).await
    }
    async fn delete_bucket(&self, name: &str) -> Result<(), DriveError> {
        self.inner.delete_bucket(name).await
    }
    async fn list_buckets(&self) -> Result<Vec<BucketRecord>, DriveError> {
        self.inner.list_buckets().await
    }
    async fn put_upload(&self, bucket: &str, rec: &UploadRecord) -> Result<(), DriveError> {
        self.inner.put_upload(bucket, rec).await
    }
    async fn get_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Option<UploadRecord>, DriveError> {
        self.inner.get_upload(bucket, key, upload_id).await
    }
    async fn delete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), DriveError> {
        self.inner.delete_upload(bucket, key, upload_id).await
    }
    async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        after: (&str, &str),
        limit: usize,
    ) -> Result<Vec<UploadRecord>, DriveError> {
        self.inner.list_uploads(bucket, prefix, after, limit).await
    }
    async fn put_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        rec: &PartRecord,
    ) -> Result<Option<PartRecord>, DriveError> {
        self.inner.put_part(bucket, key, upload_id, rec).await
    }
    async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<PartRecord>, DriveError> {
        self.inner.list_parts(bucket, key, upload_id).await
    }
    async fn space(&self) -> Result<Space, DriveError> {
        self.inner.space().await
    }
    async fn put_hint(&self, hint: &HealHint) -> Result<(), DriveError> {
        self.inner.put_hint(hint).await
    }
    async fn list_hints(&self, after: &[u8], limit: usize) -> Result<Vec<HealHint>, DriveError> {
        self.inner.list_hints(after, limit).await
    }
    async fn delete_hint(&self, id: &[u8], which: HintRemoval) -> Result<(), DriveError> {
        self.inner.delete_hint(id, which).await
    }
    async fn put_state(&self, name: &str, value: &[u8]) -> Result<(), DriveError> {
        self.check_online()?;
        self.state_writes.fetch_add(1, Ordering::SeqCst);
        self.inner.put_state(name, value).await
    }
    async fn get_state(&self, name: &str) -> Result<Option<Vec<u8>>, DriveError> {
        self.check_online()?;
        self.inner.get_state(name).await
    }
    async fn stat_shards(
        &self,
        bucket: &str,
        data_dirs: &[String],
    ) -> Result<Vec<Option<u64>>, DriveError> {
        self.inner.stat_shards(bucket, data_dirs).await
    }
    async fn list_shard_files(
        &self,
        bucket: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, u64)>, DriveError> {
        self.inner.list_shard_files(bucket, after, limit).await
    }
    fn is_online(&self) -> bool {
        !self.offline.load(Ordering::SeqCst) && self.inner.is_online()
    }
    fn note_slow(&self) {
        self.slow_notes.fetch_add(1, Ordering::SeqCst);
        self.inner.note_slow()
    }
    fn last_outage_ms(&self) -> Option<(u64, u64)> {
        self.inner.last_outage_ms()
    }
}
