//! PUT: the body is streamed stripe by stripe (a reader task fills stripes, this task encodes
//! them on a blocking thread and writes each drive's frame), so memory stays a few stripes
//! whatever the object size. Shards are committed, then metadata; a quorum of both is needed.

use std::collections::BTreeMap;

use crate::md5sum::Md5;
use bytes::{Bytes, BytesMut};
use futures::future::join_all;
use futures::stream::BoxStream;
use futures::StreamExt;

use super::{new_version_id, now_ns, BoxError, ErasureSet, Error, Result};
use crate::drive::{ErasureLayout, ShardWriter, VersionRecord};
use crate::erasure::frame::Framed;

/// The layout of an object encoded with `codec` and placed by `distribution`.
fn layout(codec: &crate::erasure::Codec, distribution: &[u8]) -> ErasureLayout {
    ErasureLayout {
        k: codec.data_shards() as u8,
        m: codec.parity_shards() as u8,
        stripe_size: codec.stripe_size() as u32,
        shard_index: 0,
        distribution: distribution.to_vec(),
    }
}

/// A request body: data pieces, or the error that ended it.
pub type BodyStream = BoxStream<'static, std::result::Result<Bytes, BoxError>>;

/// Called once the body has been read whole, before any record names the object's shard
/// files (a failure deletes them): it checks what only the end of the body can tell
/// (trailing checksums, payload hashes) and returns the checksum to store, as
/// `(algorithm, base64 value)`.
pub type FinishCheck =
    Box<dyn FnOnce() -> std::result::Result<Option<(String, String)>, BoxError> + Send>;

/// What a PUT stores beside the data.
#[derive(Default)]
pub struct PutOptions {
    /// System headers kept with the object (lowercase names).
    pub headers: BTreeMap<String, String>,
    /// User metadata without the `x-amz-meta-` prefix.
    pub user_meta: BTreeMap<String, String>,
    /// Object tags.
    pub tags: BTreeMap<String, String>,
    /// The body's expected MD5 (`Content-MD5`).
    pub content_md5: Option<[u8; 16]>,
    /// End-of-body check; see [`FinishCheck`].
    pub finish: Option<FinishCheck>,
    /// A conditional write.
    pub condition: Option<WriteCondition>,
}

/// The conditions of a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteCondition {
    /// `If-None-Match: *`: only if the key has no current object.
    IfNoneMatch,
    /// `If-Match: etag`: only if the current object has this ETag.
    IfMatch(String),
}

/// The outcome of streaming a body into shards.
pub(super) struct Encoded {
    /// Bytes in the body.
    pub size: u64,
    /// MD5 of the body.
    pub md5: [u8; 16],
    /// The verified checksum the client sent, if any.
    pub checksum: Option<(String, String)>,
    /// The shard file name; empty when inline.
    pub data_dir: String,
    /// Per shard index: the framed shard, when inline.
    pub inline: Vec<Option<Vec<u8>>>,
    /// Per shard index: whether its drive committed the shard.
    pub committed: Vec<bool>,
}

impl ErasureSet {
    /// Stores an object from a streamed body. Nothing is visible unless the whole body arrived,
    /// passed its checks, and a write quorum of drives committed both shards and metadata.
    #[tracing::instrument(skip(self, opts, body))]
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        opts: PutOptions,
        body: BodyStream,
    ) -> Result<VersionRecord> {
        let bucket_rec = self.get_bucket(bucket).await?;
        // A conditional write is checked before the body is read (412 at once), and again,
        // under the key's lock, just before it commits: a write that raced it in between
        // makes it fail with 409 ConditionalRequestConflict.
        let witness = match &opts.condition {
            Some(c) => Some(self.check_write_condition(bucket, key, c).await?),
            None => None,
        };
        let distribution = self.distribution(bucket, key);
        let codec = self.write_codec();
        let enc = self
            .encode_body(
                bucket,
                &distribution,
                &codec,
                body,
                opts.content_md5,
                opts.finish,
                true,
            )
            .await?;
        let rec = VersionRecord {
            version_id: super::new_version_id(&bucket_rec),
            mod_time_ns: now_ns(),
            size: enc.size,
            etag: hex::encode(enc.md5),
            headers: opts.headers,
            user_meta: opts.user_meta,
            checksum: enc.checksum.clone(),
            layout: layout(&codec, &distribution),
            data_dir: enc.data_dir.clone(),
            inline: None,
            parts: Vec::new(),
            upload_id: None,
            delete_marker: false,
            tags: opts.tags,
            meta_ns: 0,
        };
        let Some(witness) = witness else {
            return self
                .commit_version(bucket, key, rec, enc.inline, &enc.committed)
                .await;
        };
        let _guard = self.key_lock(bucket, key).lock().await;
        let now = self.current_witness(bucket, key).await;
        if now.as_ref().ok() != Some(&witness) {
            self.on_drives(|d| d.delete_shard(bucket, &enc.data_dir))
                .await;
            return Err(Error::ConditionalConflict);
        }
        self.commit_version(bucket, key, rec, enc.inline, &enc.committed)
            .await
    }

    /// The identity of a key's current object (`None` when there is none), for detecting
    /// writes that race a conditional one.
    async fn current_witness(&self, bucket: &str, key: &str) -> Result<Option<(i128, String)>> {
        match self.quorum_version(bucket, key, None).await {
            Ok((v, _)) if !v.delete_marker => Ok(Some((v.mod_time_ns, v.version_id))),
            Ok(_) | Err(Error::NoSuchKey) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn check_write_condition(
        &self,
        bucket: &str,
        key: &str,
        cond: &WriteCondition,
    ) -> Result<Option<(i128, String)>> {
        let current = match self.quorum_version(bucket, key, None).await {
            Ok((v, _)) if !v.delete_marker => Some(v),
            Ok(_) | Err(Error::NoSuchKey) => None,
            // Another write to the key is committing: the client may retry (S3's answer to
            // a conditional write racing another write).
            Err(Error::InFlux(_)) => return Err(Error::ConditionalConflict),
            Err(e) => return Err(e),
        };
        let ok = match (cond, &current) {
            (WriteCondition::IfNoneMatch, None) => true,
            (WriteCondition::IfNoneMatch, Some(_)) => false,
            (WriteCondition::IfMatch(_), None) => return Err(Error::NoSuchKey),
            (WriteCondition::IfMatch(e), Some(v)) => e == "*" || *e == v.etag,
        };
        if !ok {
            return Err(Error::PreconditionFailed);
        }
        Ok(current.map(|v| (v.mod_time_ns, v.version_id)))
    }

    pub(super) fn layout(&self, distribution: &[u8]) -> ErasureLayout {
        layout(&self.codec, distribution)
    }

    /// The codec for a new single-PUT object: the set's, or, when drives are known to be
    /// offline and a write quorum is still up, one with the parity raised by the number of
    /// drives down, so that the object written to the drives that are up still survives `m`
    /// further losses (DESIGN section 4). Repair fills the missing shards in later; the
    /// object keeps its raised layout.
    pub(super) fn write_codec(&self) -> std::sync::Arc<crate::erasure::Codec> {
        let n = self.drives.len();
        let down = self.drives.iter().filter(|d| !d.is_online()).count();
        if down == 0 || n - down < self.write_quorum() {
            return self.codec.clone();
        }
        let m = self.m() + down;
        match crate::erasure::Codec::new(n - m, m, self.codec.stripe_size()) {
            Ok(c) if n > m => std::sync::Arc::new(c),
            _ => self.codec.clone(),
        }
    }

    /// Streams `body` into shard files (or inline shards, when `allow_inline` and it is
    /// small), verifying its MD5 and the end-of-body checks. Shard files are committed on
    /// every drive that can; fewer than a write quorum is an error and leaves nothing.
    #[allow(clippy::too_many_arguments)] // each is one fact about this body; no natural group
    pub(super) async fn encode_body(
        &self,
        bucket: &str,
        distribution: &[u8],
        codec: &std::sync::Arc<crate::erasure::Codec>,
        body: BodyStream,
        content_md5: Option<[u8; 16]>,
        finish: Option<FinishCheck>,
        allow_inline: bool,
    ) -> Result<Encoded> {
        let stripe_size = codec.stripe_size();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<std::result::Result<Bytes, BoxError>>(2);
        let reader = tokio::spawn(read_stripes(body, stripe_size, tx));
        let n = self.drives.len();
        let mut size: u64 = 0;

        let first = match rx.recv().await {
            Some(Ok(b)) => b,
            Some(Err(e)) => return Err(Error::Body(e)),
            None => Bytes::new(),
        };
        // The stripe after the one being encoded, read ahead.
        let mut ahead = if first.len() == stripe_size {
            rx.recv().await.transpose().map_err(Error::Body)?
        } else {
            None
        };
        let inline = allow_inline && ahead.is_none() && first.len() <= self.inline_limit;
        // An inline object: its MD5 is taken beside its encoding. Any body with shard files:
        // elsewhere (the vector engine, or a thread of its own), so that hashing runs while
        // the stripes are encoded, written and synced (MD5 is one sequential chain, the
        // slowest step of a PUT; 2 ms of a 1 MiB one), and the digest is awaited only beside
        // the shard files' commit.
        let mut md5 = if inline {
            Md5Stage::Inline(Some(Md5::new()))
        } else {
            Md5Stage::pipe()
        };

        let data_dir = if inline {
            String::new()
        } else {
            uuid::Uuid::new_v4().to_string()
        };
        let mut inline_shards: Vec<Option<Vec<u8>>> = vec![None; n];
        let mut writers: Vec<Option<Box<dyn ShardWriter>>> = Vec::new();
        if !inline {
            writers = join_all(
                distribution
                    .iter()
                    .map(|&pos| self.drives[pos as usize].create_shard(bucket, &data_dir)),
            )
            .await
            .into_iter()
            .zip(distribution)
            .map(|(w, &pos)| {
                w.map_err(|e| {
                    let drive = self.drives[pos as usize].endpoint();
                    tracing::warn!(%drive, error = %e, "cannot create shard file");
                    crate::metrics::get().drive_error(&drive);
                })
                .ok()
            })
            .collect();
            self.check_alive(&writers, "creating shard files")?;
        }

        // Stripe i+1 is encoded (on a blocking thread) while stripe i's encoding is awaited
        // and its frames are written.
        size += first.len() as u64;
        let mut encoding = std::collections::VecDeque::with_capacity(ENCODE_AHEAD);
        encoding.push_back(md5.encode(codec, first).await?);
        loop {
            while encoding.len() < ENCODE_AHEAD {
                let Some(stripe) = ahead.take() else { break };
                let more = stripe.len() == stripe_size;
                size += stripe.len() as u64;
                encoding.push_back(md5.encode(codec, stripe).await?);
                if more {
                    ahead = rx.recv().await.transpose().map_err(Error::Body)?;
                }
            }
            let Some(job) = encoding.pop_front() else {
                break;
            };
            let frames = md5.encoded(job).await?;
            if inline {
                for (i, f) in frames.into_iter().enumerate() {
                    inline_shards[i] = Some(f.to_vec());
                }
                continue;
            }
            let writes: Vec<_> = writers
                .iter_mut()
                .zip(frames)
                .zip(distribution)
                .map(|((w, f), &pos)| async move {
                    let Some(wr) = w.as_mut() else { return false };
                    match wr.write(f).await {
                        Ok(()) => true,
                        Err(e) => {
                            let drive = self.drives[pos as usize].endpoint();
                            tracing::warn!(%drive, error = %e, "shard write failed");
                            crate::metrics::get().drive_error(&drive);
                            *w = None;
                            false
                        }
                    }
                })
                .collect();
            let done = self
                .on_shards(distribution, writes, |ok| *ok, || false)
                .await;
            // A drive that failed, or could not take its frame within the grace, is
            // dropped from this write (and gets its shard from repair).
            for (i, ok) in done.into_iter().enumerate() {
                if !ok {
                    writers[i] = None;
                }
            }
            self.check_alive(&writers, "writing shards")?;
        }
        // The reader has finished; any error it met was sent on the channel.
        let _ = reader.await;

        // The shard files are synced while the last stripes' MD5 is still being taken. They
        // are only data until a record names them: a digest or checksum that turns out wrong
        // deletes them below, and a crash in between leaves orphans that repair removes.
        let commits = async {
            if inline {
                return vec![true; n];
            }
            let commits: Vec<_> = writers
                .into_iter()
                .zip(distribution)
                .map(|(w, &pos)| async move {
                    let Some(w) = w else { return false };
                    match w.commit().await {
                        Ok(()) => true,
                        Err(e) => {
                            let drive = self.drives[pos as usize].endpoint();
                            tracing::warn!(%drive, error = %e, "shard commit failed");
                            crate::metrics::get().drive_error(&drive);
                            false
                        }
                    }
                })
                .collect();
            self.on_shards(distribution, commits, |ok| *ok, || false)
                .await
        };
        let (digest, committed) = tokio::join!(md5.finish(), commits);
        let checked = digest.and_then(|digest| {
            if content_md5.is_some_and(|want| want != digest) {
                return Err(Error::BadDigest);
            }
            let checksum = match finish {
                Some(check) => check().map_err(Error::Body)?,
                None => None,
            };
            Ok((digest, checksum))
        });
        // A wrong digest or checksum is reported before a missed quorum, as before.
        let ok = committed.iter().filter(|c| **c).count();
        let checked = checked.and_then(|c| {
            if ok < self.write_quorum() {
                return Err(Error::Quorum(format!(
                    "{ok} of {n} drives committed shards; need {}",
                    self.write_quorum()
                )));
            }
            Ok(c)
        });
        let (digest, checksum) = match checked {
            Ok(c) => c,
            Err(e) => {
                if !inline {
                    self.on_drives(|d| d.delete_shard(bucket, &data_dir)).await;
                }
                return Err(e);
            }
        };
        Ok(Encoded {
            size,
            md5: digest,
            checksum,
            data_dir,
            inline: inline_shards,
            committed,
        })
    }

    /// Writes a version's records on the drives whose shards committed, then removes the
    /// data of the version it replaced. Below a write quorum, everything written is undone.
    pub(super) async fn commit_version(
        &self,
        bucket: &str,
        key: &str,
        base: VersionRecord,
        mut inline: Vec<Option<Vec<u8>>>,
        committed: &[bool],
    ) -> Result<VersionRecord> {
        let distribution = base.layout.distribution.clone();
        let n = self.drives.len();
        let puts: Vec<_> = (0..n)
            .map(|shard| {
                let pos = distribution[shard] as usize;
                let mut rec = base.clone();
                rec.layout.shard_index = shard as u8;
                rec.inline = inline[shard].take();
                let ok = committed[shard];
                let drive = self.drives[pos].clone();
                async move {
                    if !ok {
                        return None;
                    }
                    match drive.put_version(bucket, key, &rec).await {
                        Ok(found) => Some(found),
                        Err(e) => {
                            tracing::warn!(drive = %drive.endpoint(), error = %e, "metadata write failed");
                            crate::metrics::get().drive_error(&drive.endpoint());
                            None
                        }
                    }
                }
            })
            .collect();
        let metas: Vec<Option<Option<VersionRecord>>> = self
            .on_shards(&distribution, puts, |r| r.is_some(), || None)
            .await;
        let written = metas.iter().filter(|m| m.is_some()).count();
        if written < self.write_quorum() {
            self.roll_back(bucket, key, &base, &distribution, &metas)
                .await;
            return Err(Error::Quorum(format!(
                "{written} of {n} drives committed; need {}",
                self.write_quorum()
            )));
        }
        if written < n {
            // A degraded write: the drives that missed it get their copies from repair, which
            // finds the hint persisted on the drives that took the write.
            self.persist_hint(bucket, key, &base.version_id, false)
                .await;
        }
        let found: Vec<VersionRecord> = metas.into_iter().flatten().flatten().collect();
        for dir in superseded_dirs(&base, &found, self.write_quorum()) {
            self.on_drives(|d| d.delete_shard(bucket, &dir)).await;
        }
        Ok(base)
    }

    fn check_alive(&self, writers: &[Option<Box<dyn ShardWriter>>], what: &str) -> Result<()> {
        let alive = writers.iter().filter(|w| w.is_some()).count();
        if alive < self.write_quorum() {
            return Err(Error::Quorum(format!(
                "{what}: {alive} drives left, need {}",
                self.write_quorum()
            )));
        }
        Ok(())
    }

    /// Undoes a write that missed its quorum: its records and its own shard file go, and each
    /// drive where it replaced an older record of the same version id (the `null` version of
    /// an unversioned bucket) gets that record back. `metas[shard]` is what the drive answered:
    /// `Some(found)` where the write landed. Without the restore, a key overwritten while
    /// drives fail would lose its acknowledged object: only the drives the failed write missed
    /// would still hold it, fewer than a read needs.
    async fn roll_back(
        &self,
        bucket: &str,
        key: &str,
        rec: &VersionRecord,
        distribution: &[u8],
        metas: &[Option<Option<VersionRecord>>],
    ) {
        // The parts of a completed upload stay with the upload, which the client may complete
        // again (the SDKs retry a 503) or abort: only a PUT's own file is the write's to undo.
        let dirs = if rec.upload_id.is_some() {
            Vec::new()
        } else {
            rec.data_dirs()
        };
        let vid = rec.version_id.as_str();
        let undo = distribution.iter().zip(metas).map(|(&pos, meta)| {
            let drive = self.drives[pos as usize].clone();
            let dirs = dirs.clone();
            async move {
                let mut restored = true;
                // Only where this write landed and its record is still there: a DELETE or a
                // newer write that came since has the last word, and nothing goes back under it.
                let ours = match meta {
                    Some(_) => matches!(drive.get_version(bucket, key, vid).await,
                        Ok(Some(cur)) if super::same_version(&cur, rec)),
                    None => false,
                };
                if let (true, Some(found)) = (ours, meta) {
                    let back = match drive.delete_version(bucket, key, vid).await {
                        Ok(Some(gone)) if super::same_version(&gone, rec) => {
                            found.clone().filter(|f| restorable(f, rec))
                        }
                        // A write that landed between the read and the delete: it goes back.
                        Ok(Some(gone)) => Some(gone),
                        _ => None,
                    };
                    if let Some(back) = back {
                        if let Err(e) = drive.put_version(bucket, key, &back).await {
                            tracing::warn!(drive = %drive.endpoint(), error = %e, "could not restore the record a failed write replaced");
                            restored = false;
                        }
                    }
                }
                for dir in dirs {
                    let _ = drive.delete_shard(bucket, &dir).await;
                }
                restored
            }
        });
        // A drive left holding neither record gets it from repair.
        if join_all(undo).await.contains(&false) {
            self.persist_hint(bucket, key, vid, false).await;
        }
    }

    /// Deletes a key. Without a version id: in a bucket that never had versioning the object
    /// goes; with versioning enabled (or suspended) a delete marker becomes the current
    /// version (id fresh, or `null`). With a version id, that version goes for good.
    /// Deleting what does not exist succeeds, as S3 does.
    pub async fn delete_object(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<DeleteOutcome> {
        let bucket_rec = self.get_bucket(bucket).await?;
        if version_id.is_none() && bucket_rec.versioning.is_some() {
            let distribution = self.distribution(bucket, key);
            let marker = VersionRecord {
                version_id: new_version_id(&bucket_rec),
                mod_time_ns: now_ns(),
                size: 0,
                etag: String::new(),
                headers: BTreeMap::new(),
                user_meta: BTreeMap::new(),
                checksum: None,
                layout: self.layout(&distribution),
                data_dir: String::new(),
                inline: None,
                parts: Vec::new(),
                upload_id: None,
                delete_marker: true,
                tags: BTreeMap::new(),
                meta_ns: 0,
            };
            let n = self.drives.len();
            let rec = self
                .commit_version(bucket, key, marker, vec![None; n], &vec![true; n])
                .await?;
            return Ok(DeleteOutcome {
                version_id: Some(rec.version_id),
                delete_marker: true,
            });
        }
        let target = version_id.unwrap_or("null");
        let answers = self
            .on_drives(|d| d.delete_version(bucket, key, target))
            .await;
        let ok = answers.iter().filter(|a| a.is_ok()).count();
        let removed: Vec<VersionRecord> = answers
            .into_iter()
            .filter_map(|a| a.ok().flatten())
            .collect();
        let was_marker = removed.iter().any(|r| r.delete_marker);
        let mut dirs: Vec<String> = removed.iter().flat_map(|r| r.data_dirs()).collect();
        dirs.sort();
        dirs.dedup();
        for dir in dirs {
            self.on_drives(|d| d.delete_shard(bucket, &dir)).await;
        }
        if ok < self.write_quorum() {
            return Err(Error::Quorum(format!("delete reached {ok} drives")));
        }
        Ok(DeleteOutcome {
            version_id: version_id.map(str::to_string),
            delete_marker: was_marker,
        })
    }
}

/// What a delete did.
#[derive(Debug, Clone, Default)]
pub struct DeleteOutcome {
    /// The version deleted, or the delete marker's version id.
    pub version_id: Option<String>,
    /// A delete marker was created, or the version deleted was one.
    pub delete_marker: bool,
}

/// Cuts the body into stripes of exactly `stripe_size` bytes (the last may be shorter) and
/// sends them on; at most the channel's capacity plus one stripe is held.
/// The shard files a committed write of `ours` leaves without a record, given the records
/// its drives held under its version id before (`found`, one per drive that answered):
/// those of every record it replaced, and its own when a write quorum kept a newer record
/// (a write that lost to a newer one). Shard files `ours` shares with a record are kept.
fn superseded_dirs(ours: &VersionRecord, found: &[VersionRecord], quorum: usize) -> Vec<String> {
    let newer: Vec<&VersionRecord> = found
        .iter()
        .filter(|f| f.write_order() > ours.write_order())
        .collect();
    let mut keep = ours.data_dirs();
    let mut drop: Vec<String> = Vec::new();
    if newer.len() >= quorum {
        drop = keep.clone();
        keep = newer.iter().flat_map(|f| f.data_dirs()).collect();
    }
    for f in found
        .iter()
        .filter(|f| f.write_order() < ours.write_order())
    {
        drop.extend(f.data_dirs());
    }
    drop.sort();
    drop.dedup();
    drop.retain(|d| !keep.contains(d));
    drop
}

/// Whether `found`, the record a failed write `ours` replaced, is to be put back: an older
/// record that is whole. A node from before records came back with their inline bytes
/// answers with a small object's record stripped of them, which would be no object at all.
fn restorable(found: &VersionRecord, ours: &VersionRecord) -> bool {
    let stripped = found.inline.is_none()
        && found.data_dir.is_empty()
        && found.parts.is_empty()
        && !found.delete_marker
        && found.size > 0;
    found.write_order() < ours.write_order() && !stripped
}

/// What encoding a stripe yields: its frames, and the MD5 state when it was hashed with it.
type EncodeResult = std::result::Result<(Vec<Framed>, Option<Md5>), crate::erasure::Error>;

/// A stripe being encoded and framed (with its MD5, when inline).
enum EncodeJob {
    /// A small stripe, done on the request's own task.
    Done(EncodeResult),
    /// On a blocking thread.
    Blocking(tokio::task::JoinHandle<EncodeResult>),
}

/// Stripes in encoding at once: the one awaited next and the one after it. With one, the
/// next stripe's encoding only began once this one's frames were back, and a 64 MiB PUT at
/// c1 waited about a third of its time for encodings (docs/performance.md).
const ENCODE_AHEAD: usize = 2;

/// Stripes up to this size are encoded on the request's task: handing 4 KiB to a blocking
/// thread and back cost more CPU in thread wake-ups than the encoding (tens of
/// microseconds), and a 4 KiB PUT waited for it.
const ENCODE_ON_TASK_MAX: usize = 16 << 10;

fn encode_stripe(
    codec: &crate::erasure::Codec,
    stripe: &Bytes,
    hasher: Option<Md5>,
) -> EncodeResult {
    let hasher = hasher.map(|mut h| {
        h.update(stripe);
        h
    });
    let frames = codec.encode(stripe)?.into_iter().map(Framed::new).collect();
    Ok((frames, hasher))
}

/// Where a PUT's MD5 is computed.
enum Md5Stage {
    /// In the encoding job (a body of one stripe); `None` while a job holds it.
    Inline(Option<Md5>),
    /// On a blocking thread fed through a bounded channel: at most 4 stripes wait for it.
    Pipe {
        tx: Option<tokio::sync::mpsc::Sender<Bytes>>,
        done: tokio::task::JoinHandle<[u8; 16]>,
    },
    /// A lane of the process's vector MD5 engine, beside the other large PUTs (where the CPU
    /// has AVX2 or AVX-512); at most 4 stripes wait for it.
    Lanes(crate::md5lanes::Md5Lanes),
}

impl Md5Stage {
    fn pipe() -> Self {
        match crate::md5lanes::Md5Lanes::open() {
            Some(lane) => Md5Stage::Lanes(lane),
            None => Md5Stage::thread(),
        }
    }

    /// A thread of this PUT's own (where the CPU has neither AVX2 nor AVX-512).
    fn thread() -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let done = tokio::task::spawn_blocking(move || {
            let mut h = Md5::new();
            while let Some(b) = rx.blocking_recv() {
                h.update(&b);
            }
            h.finalize()
        });
        Md5Stage::Pipe { tx: Some(tx), done }
    }

    /// Starts encoding `stripe` (and hashing it).
    async fn encode(
        &mut self,
        codec: &std::sync::Arc<crate::erasure::Codec>,
        stripe: Bytes,
    ) -> Result<EncodeJob> {
        let hasher = match self {
            Md5Stage::Inline(h) => Some(h.take().ok_or_else(|| Error::Internal("md5".into()))?),
            Md5Stage::Pipe { tx, .. } => {
                let tx = tx.as_ref().ok_or_else(|| Error::Internal("md5".into()))?;
                tx.send(stripe.clone())
                    .await
                    .map_err(|_| Error::Internal("md5 worker stopped".into()))?;
                None
            }
            Md5Stage::Lanes(lane) => {
                if !lane.update(stripe.clone()).await {
                    return Err(Error::Internal("md5 engine stopped".into()));
                }
                None
            }
        };
        if stripe.len() <= ENCODE_ON_TASK_MAX {
            return Ok(EncodeJob::Done(encode_stripe(codec, &stripe, hasher)));
        }
        let codec = codec.clone();
        Ok(EncodeJob::Blocking(tokio::task::spawn_blocking(
            move || encode_stripe(&codec, &stripe, hasher),
        )))
    }

    /// The frames of an encoding job.
    async fn encoded(&mut self, job: EncodeJob) -> Result<Vec<Framed>> {
        let done = match job {
            EncodeJob::Done(r) => r,
            EncodeJob::Blocking(h) => h.await.map_err(|e| Error::Internal(e.to_string()))?,
        };
        let (frames, hasher) = done.map_err(|e| Error::Internal(e.to_string()))?;
        if let (Md5Stage::Inline(slot), Some(h)) = (self, hasher) {
            *slot = Some(h);
        }
        Ok(frames)
    }

    /// The MD5 of everything encoded.
    async fn finish(self) -> Result<[u8; 16]> {
        match self {
            Md5Stage::Inline(h) => Ok(h.ok_or_else(|| Error::Internal("md5".into()))?.finalize()),
            Md5Stage::Pipe { tx, done } => {
                drop(tx);
                done.await.map_err(|e| Error::Internal(e.to_string()))
            }
            Md5Stage::Lanes(lane) => lane
                .finish()
                .await
                .ok_or_else(|| Error::Internal("md5 engine stopped".into())),
        }
    }
}

async fn read_stripes(
    mut body: BodyStream,
    stripe_size: usize,
    tx: tokio::sync::mpsc::Sender<std::result::Result<Bytes, BoxError>>,
) {
    // A body that arrives whole in one piece smaller than a stripe (most small objects) is
    // passed on as it came, rather than copied into a stripe-sized buffer (1 MiB by default).
    let mut held: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    while let Some(item) = body.next().await {
        match item {
            Ok(mut data) => {
                if data.is_empty() {
                    continue;
                }
                if buf.is_empty() && held.is_none() && data.len() < stripe_size {
                    held = Some(data);
                    continue;
                }
                if buf.capacity() < stripe_size {
                    buf.reserve(stripe_size - buf.len());
                }
                if let Some(h) = held.take() {
                    buf.extend_from_slice(&h);
                }
                while !data.is_empty() {
                    let take = (stripe_size - buf.len()).min(data.len());
                    buf.extend_from_slice(&data.split_to(take));
                    if buf.len() == stripe_size {
                        let full =
                            std::mem::replace(&mut buf, BytesMut::with_capacity(stripe_size));
                        if tx.send(Ok(full.freeze())).await.is_err() {
                            return;
                        }
                    }
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
    }
    if let Some(h) = held {
        let _ = tx.send(Ok(h)).await;
    } else if !buf.is_empty() {
        let _ = tx.send(Ok(buf.freeze())).await;
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures::StreamExt;

    use super::{read_stripes, restorable, superseded_dirs, Md5Stage};
    use crate::drive::record::sample_version;
    use crate::drive::{PartRef, VersionRecord};

    /// Every way a PUT's MD5 is taken gives the md-5 crate's digest, whichever this CPU uses:
    /// beside the encoding (one stripe), on the PUT's own thread, in the vector engine.
    #[tokio::test]
    async fn every_md5_stage_gives_the_same_digest() {
        use md5::Digest;
        let codec = std::sync::Arc::new(crate::erasure::Codec::new(4, 2, 1 << 16).unwrap());
        let body: Vec<u8> = (0..(5 << 16) + 4321u32)
            .map(|i| (i * 31 + i / 977) as u8)
            .collect();
        let want: [u8; 16] = md5::Md5::digest(&body).into();
        let mut stages = vec![("thread", Md5Stage::thread()), ("pipe", Md5Stage::pipe())];
        if let Some(lane) = crate::md5lanes::Md5Lanes::open() {
            stages.push(("lanes", Md5Stage::Lanes(lane)));
        }
        for (name, mut stage) in stages {
            for stripe in body.chunks(1 << 16) {
                let job = stage
                    .encode(&codec, Bytes::copy_from_slice(stripe))
                    .await
                    .unwrap();
                stage.encoded(job).await.unwrap();
            }
            assert_eq!(stage.finish().await.unwrap(), want, "{name}");
        }
        let mut one = Md5Stage::Inline(Some(crate::md5sum::Md5::new()));
        let stripe = Bytes::copy_from_slice(&body[..1 << 16]);
        let job = one.encode(&codec, stripe.clone()).await.unwrap();
        one.encoded(job).await.unwrap();
        let want_one: [u8; 16] = md5::Md5::digest(&stripe).into();
        assert_eq!(one.finish().await.unwrap(), want_one, "inline");
    }

    fn version(time: i128, dir: &str) -> VersionRecord {
        let mut r = sample_version("null");
        r.mod_time_ns = time;
        r.data_dir = dir.into();
        r.inline = None;
        r
    }

    #[test]
    fn a_write_drops_what_it_replaced_and_keeps_what_it_shares() {
        let ours = version(20, "d-ours");
        // Nothing found: nothing to drop. An inline record found: no file.
        assert!(superseded_dirs(&ours, &[], 5).is_empty());
        assert!(superseded_dirs(&ours, &[version(10, "")], 5).is_empty());
        // Older records (a stale drive may hold an even older one) go, once each.
        let found = [
            version(10, "d-old"),
            version(10, "d-old"),
            version(5, "d-older"),
        ];
        assert_eq!(superseded_dirs(&ours, &found, 5), ["d-old", "d-older"]);
        // A multipart record's parts go with it.
        let mut parts = version(10, "");
        for dir in ["p1", "p2"] {
            parts.parts.push(PartRef {
                number: 1,
                size: 1,
                etag: "e".into(),
                data_dir: dir.into(),
            });
        }
        assert_eq!(superseded_dirs(&ours, &[parts], 5), ["p1", "p2"]);
        // The same version written again (a heal, new tags) drops nothing.
        assert!(superseded_dirs(&ours, std::slice::from_ref(&ours), 5).is_empty());
        // An older record that shares our file never takes it along.
        assert!(superseded_dirs(&ours, &[version(10, "d-ours")], 5).is_empty());
    }

    #[test]
    fn a_write_that_lost_to_a_newer_one_drops_its_own_files_only_past_a_quorum() {
        let ours = version(20, "d-ours");
        let newer = version(30, "d-new");
        // Below a write quorum the newer write may still roll back: ours stays.
        let found = vec![newer.clone(); 4];
        assert!(superseded_dirs(&ours, &found, 5).is_empty());
        // On a write quorum it is there to stay: our file goes, the newer one's never.
        let found = vec![newer.clone(); 5];
        assert_eq!(superseded_dirs(&ours, &found, 5), ["d-ours"]);
        let mut shared = version(30, "d-ours");
        shared.etag = "other".into();
        assert!(superseded_dirs(&ours, &vec![shared; 5], 5).is_empty());
        // Mixed: drives that held an older record drop it as well.
        let mut found = vec![newer; 5];
        found.push(version(10, "d-old"));
        assert_eq!(superseded_dirs(&ours, &found, 5), ["d-old", "d-ours"]);
    }

    #[test]
    fn a_failed_write_restores_only_older_whole_records() {
        let ours = version(20, "d-ours");
        assert!(restorable(&version(10, "d-old"), &ours));
        let mut small = version(10, "");
        small.inline = Some(b"frame".to_vec());
        assert!(restorable(&small, &ours));
        // An inline record whose bytes an older node left out is no object: not restored.
        small.inline = None;
        assert!(!restorable(&small, &ours));
        // An empty object or a delete marker has no bytes to leave out.
        let mut empty = version(10, "");
        empty.size = 0;
        assert!(restorable(&empty, &ours));
        let mut marker = version(10, "");
        marker.delete_marker = true;
        assert!(restorable(&marker, &ours));
        // A newer record is not ours to replace.
        assert!(!restorable(&version(30, "d-new"), &ours));
    }

    /// The stripes `read_stripes` cuts from a body arriving in `chunks`, with stripes of 8.
    async fn stripes(chunks: &[&[u8]]) -> Vec<Bytes> {
        let items: Vec<Result<Bytes, super::BoxError>> = chunks
            .iter()
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        read_stripes(futures::stream::iter(items).boxed(), 8, tx).await;
        let mut out = Vec::new();
        while let Some(s) = rx.recv().await {
            out.push(s.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn a_body_is_cut_into_whole_stripes_however_it_arrives() {
        assert!(stripes(&[]).await.is_empty());
        assert!(stripes(&[b"", b""]).await.is_empty());
        assert_eq!(stripes(&[b"abc"]).await, [&b"abc"[..]]);
        assert_eq!(stripes(&[b"abc", b"", b"defg"]).await, [&b"abcdefg"[..]]);
        assert_eq!(
            stripes(&[b"abcde", b"fghij", b"klmno"]).await,
            [&b"abcdefgh"[..], b"ijklmno"]
        );
        assert_eq!(
            stripes(&[b"abcdefghijklmnopqrst"]).await,
            [&b"abcdefgh"[..], b"ijklmnop", b"qrst"]
        );
        assert_eq!(
            stripes(&[b"abc", b"defghijklmnopqrs"]).await,
            [&b"abcdefgh"[..], b"ijklmnop", b"qrs"]
        );
    }

    #[tokio::test]
    async fn a_small_body_in_one_piece_is_passed_on_without_a_copy() {
        let body = Bytes::from_static(b"small object");
        let at = body.as_ptr();
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        read_stripes(futures::stream::iter([Ok(body)]).boxed(), 1 << 20, tx).await;
        let got = rx.recv().await.unwrap().unwrap();
        assert_eq!((got.as_ptr(), &got[..]), (at, &b"small object"[..]));
        assert!(rx.recv().await.is_none());
    }
}
