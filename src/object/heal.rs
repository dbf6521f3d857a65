//! Healing one object version: every shard and metadata copy that is missing or fails its
//! hash is rebuilt from any `k` good shards, written to its drive, and verified.
//!
//! Reads that had to reconstruct, reads that found copies missing, and writes that missed
//! drives persist a heal hint on the drives of the set; the set's repair worker
//! (`object::repair`) works the hints first and scans everything else.

use std::sync::Arc;

use bytes::Bytes;
use futures::future::join_all;
use tokio_util::task::AbortOnDropHandle;

use super::{segments, ErasureSet, Error, Result, Segment};
use crate::drive::{Drive, HealHint, ShardWriter, VersionRecord};
use crate::erasure::{frame, Codec};

/// What a heal did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HealReport {
    /// Shard files rebuilt (per segment).
    pub shards_rebuilt: usize,
    /// Metadata copies written.
    pub records_written: usize,
    /// Shard bytes written.
    pub bytes_written: u64,
    /// Shard bytes read (to verify or rebuild).
    pub bytes_read: u64,
    /// Every drive of the set now holds a verified shard and a matching record.
    pub complete: bool,
}

impl HealReport {
    /// Whether anything was repaired.
    pub fn repaired(&self) -> bool {
        self.shards_rebuilt > 0 || self.records_written > 0
    }
}

/// Object bytes per batch of shard reads while healing.
const HEAL_BATCH: u64 = 4 << 20;

impl ErasureSet {
    /// Persists a heal hint for a version on every drive that takes it (the drives that
    /// missed the write are likely down), so that repair finds it whatever process crashes.
    pub(super) async fn persist_hint(&self, bucket: &str, key: &str, version_id: &str, deep: bool) {
        persist_hint(
            &self.drives,
            HealHint::version(bucket, key, version_id, deep),
        )
        .await;
    }

    /// Rebuilds every missing or corrupt shard and metadata copy of one version.
    /// With `deep`, every block of every shard is read and verified; otherwise shard files
    /// are only checked to exist with the right size (and read in full where the size is off).
    pub async fn heal_object(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
        deep: bool,
    ) -> Result<HealReport> {
        let (rec, copies) = self.quorum_version(bucket, key, Some(version_id)).await?;
        let n = self.drives.len();
        let dist = rec.layout.positions();
        if dist.len() != n {
            return Err(Error::Internal("layout does not match the set".into()));
        }
        let codec = super::layout_codec(&rec.layout)?;
        // Shard i lacks its record when the drive at dist[i] holds no matching copy.
        let no_record: Vec<bool> = (0..n).map(|i| copies[dist[i]].is_none()).collect();
        let mut report = HealReport::default();
        let mut rewrite = no_record.clone();
        // Positions still lacking a verified shard after the heal.
        let mut unhealed = vec![false; n];
        let mut inline: Vec<Option<Vec<u8>>> = vec![None; n];
        if rec.data_dir.is_empty() && rec.parts.is_empty() && !rec.delete_marker {
            // Inline: rebuild the framed shards from the copies that verify.
            let mut shards: Vec<Option<Bytes>> = vec![None; n];
            for c in copies.iter().flatten() {
                let i = c.layout.shard_index as usize;
                if let Some(f) = c
                    .inline
                    .as_ref()
                    .and_then(|f| frame::decode(&Bytes::from(f.clone())))
                {
                    if i < n {
                        shards[i] = Some(f);
                    }
                }
            }
            let bad: Vec<bool> = shards.iter().map(|s| s.is_none()).collect();
            if bad.iter().any(|b| *b) {
                let rebuilt = codec
                    .rebuild(&shards)
                    .map_err(|e| Error::Quorum(e.to_string()))?;
                for (i, block) in rebuilt.into_iter().enumerate() {
                    if bad[i] {
                        rewrite[i] = true;
                        inline[i] = Some(frame::Framed::new(block).to_vec());
                    }
                }
            }
        } else if !rec.delete_marker {
            for seg in segments(&rec) {
                let bad = if deep {
                    self.verify_segment(bucket, &seg, &dist, &codec, &vec![false; n], &mut report)
                        .await
                } else {
                    self.check_segment(bucket, &seg, &dist, &codec, &mut report)
                        .await
                };
                let mut bad: Vec<bool> =
                    bad.iter().zip(&no_record).map(|(b, r)| *b || *r).collect();
                // A shard that fails while the others are read to rebuild is rebuilt in a
                // second round; two rounds bound the work.
                for round in 0..2 {
                    if !bad.iter().any(|b| *b) {
                        break;
                    }
                    let (written, suspect) = self
                        .rebuild_segment(bucket, &seg, &dist, &codec, &bad, &mut report)
                        .await?;
                    // A rebuilt shard counts once its file committed, as a PUT's does. A
                    // shard that failed to read is verified whole: the next round rebuilds
                    // it if it is corrupt.
                    let again = if suspect.iter().any(|s| *s) {
                        let unchecked: Vec<bool> = suspect.iter().map(|s| !s).collect();
                        self.verify_segment(bucket, &seg, &dist, &codec, &unchecked, &mut report)
                            .await
                    } else {
                        vec![false; n]
                    };
                    let mut next = vec![false; n];
                    for i in 0..n {
                        if bad[i] {
                            rewrite[i] |= written[i];
                            unhealed[i] |= !written[i];
                        } else if again[i] && round == 0 {
                            next[i] = true;
                        } else if again[i] {
                            unhealed[i] = true;
                        }
                    }
                    let rebuilt = written.iter().filter(|w| **w).count();
                    report.shards_rebuilt += rebuilt;
                    bad = next;
                }
            }
        }
        // A copy from before the last change of tags (its drive was away) takes the change,
        // keeping its own shard index and inline shard.
        let stale = |i: usize| {
            copies[dist[i]]
                .as_ref()
                .filter(|c| c.meta_order() < rec.meta_order())
        };
        let writes = (0..n)
            .filter(|&i| rewrite[i] || stale(i).is_some())
            .map(|i| {
                let r = match stale(i) {
                    Some(c) if !rewrite[i] => VersionRecord {
                        tags: rec.tags.clone(),
                        meta_ns: rec.meta_ns,
                        ..c.clone()
                    },
                    _ => {
                        let mut r = rec.clone();
                        r.layout.shard_index = i as u8;
                        r.inline = inline[i].take();
                        r
                    }
                };
                let drive = self.drives[dist[i]].clone();
                async move {
                    // A drive that kept a copy with later tags (a change that landed after
                    // the copies were read) did not take this write: the version is not
                    // whole yet, and its hint stays for the next round.
                    let took = match drive.put_version(bucket, key, &r).await {
                        Ok(Some(kept)) => {
                            !(super::same_version(&kept, &r) && kept.meta_order() > r.meta_order())
                        }
                        Ok(None) => true,
                        Err(_) => false,
                    };
                    (i, took)
                }
            });
        let written: Vec<(usize, bool)> = join_all(writes).await;
        report.records_written = written.iter().filter(|(_, ok)| *ok).count();
        for (i, ok) in written {
            if !ok {
                unhealed[i] = true;
            }
        }
        report.complete = !unhealed.iter().any(|u| *u);
        Ok(report)
    }

    /// Checks that every shard file of a segment exists with its expected size; `true` marks
    /// a shard that is missing, or (after reading it in full) corrupt.
    async fn check_segment(
        &self,
        bucket: &str,
        seg: &Segment,
        dist: &[usize],
        codec: &Codec,
        report: &mut HealReport,
    ) -> Vec<bool> {
        let expected = shard_file_size(seg.size, codec);
        let dirs = [seg.data_dir.clone()];
        let sizes = join_all(
            dist.iter()
                .map(|&pos| self.drives[pos].stat_shards(bucket, &dirs)),
        )
        .await;
        let mut bad: Vec<bool> = sizes
            .iter()
            .map(|s| !matches!(s, Ok(v) if v.first().copied().flatten().is_some()))
            .collect();
        let odd = sizes.iter().any(
            |s| matches!(s, Ok(v) if v.first().copied().flatten().is_some_and(|l| l != expected)),
        );
        if odd {
            let all = vec![false; dist.len()];
            let deep = self
                .verify_segment(bucket, seg, dist, codec, &all, report)
                .await;
            for (b, d) in bad.iter_mut().zip(deep) {
                *b |= d;
            }
        }
        bad
    }

    /// Reads every frame of every shard of a segment not in `skip`; `true` marks a shard
    /// that is missing, short or fails a hash anywhere.
    async fn verify_segment(
        &self,
        bucket: &str,
        seg: &Segment,
        dist: &[usize],
        codec: &Codec,
        skip: &[bool],
        report: &mut HealReport,
    ) -> Vec<bool> {
        let n = dist.len();
        let stripe = codec.stripe_size() as u64;
        let stripes = seg.size.div_ceil(stripe).max(1);
        let per_batch = (HEAL_BATCH / stripe).max(1);
        let mut bad = vec![false; n];
        let mut s0 = 0;
        while s0 < stripes {
            let s1 = (s0 + per_batch - 1).min(stripes - 1);
            let skip: Vec<bool> = bad.iter().zip(skip).map(|(b, s)| *b || *s).collect();
            let (frames, bytes) = self
                .batch_reader(bucket, seg, dist, codec, s0, s1, &skip)
                .await;
            report.bytes_read += bytes;
            for (i, f) in frames.iter().enumerate() {
                if !skip[i] && f.iter().any(|x| x.is_none()) {
                    bad[i] = true;
                }
            }
            s0 = s1 + 1;
        }
        bad
    }

    /// Reads stripes `s0..=s1` of every shard not in `skip`: `frames[shard][stripe]`, and the
    /// bytes read. The future owns what it needs, so that it can run on its own task.
    #[allow(clippy::too_many_arguments)]
    fn batch_reader(
        &self,
        bucket: &str,
        seg: &Segment,
        dist: &[usize],
        codec: &Codec,
        s0: u64,
        s1: u64,
        skip: &[bool],
    ) -> impl std::future::Future<Output = (Vec<Vec<Option<Bytes>>>, u64)> + Send + 'static {
        let k = codec.data_shards() as u64;
        let stripe = codec.stripe_size() as u64;
        let spans: Vec<(u64, u64)> = (s0..=s1)
            .map(|s| frame::frame_span(s, seg.size, stripe, k))
            .collect();
        let offset = spans[0].0;
        let len: u64 = spans.iter().map(|(_, l)| l).sum();
        let reads: Vec<_> = dist
            .iter()
            .zip(skip)
            .map(|(&pos, &skip)| {
                let drive = (!skip).then(|| self.drives[pos].clone());
                let (bucket, dir) = (bucket.to_string(), seg.data_dir.clone());
                async move {
                    match drive {
                        Some(d) => d.read_shard(&bucket, &dir, offset, len).await.ok(),
                        None => None,
                    }
                }
            })
            .collect();
        async move {
            let frames: Vec<Vec<Option<Bytes>>> = join_all(reads)
                .await
                .into_iter()
                .map(|raw| {
                    let mut at = 0usize;
                    spans
                        .iter()
                        .map(|(_, l)| {
                            let l = *l as usize;
                            let f = raw
                                .as_ref()
                                .filter(|r| at + l <= r.len())
                                .and_then(|r| frame::decode(&r.slice(at..at + l)));
                            at += l;
                            f
                        })
                        .collect()
                })
                .collect();
            let read = frames
                .iter()
                .flatten()
                .flatten()
                .map(|b| b.len() as u64)
                .sum::<u64>();
            (frames, read)
        }
    }

    /// Writes new shard files for the shards marked `bad`, rebuilt from `k` of the others:
    /// the rest are read only for the stripes where one of those fails. Returns which shard
    /// files were written and committed, and which of the shards read failed somewhere.
    async fn rebuild_segment(
        &self,
        bucket: &str,
        seg: &Segment,
        dist: &[usize],
        codec: &Codec,
        bad: &[bool],
        report: &mut HealReport,
    ) -> Result<(Vec<bool>, Vec<bool>)> {
        let n = dist.len();
        let k = codec.data_shards();
        let mut writers: Vec<Option<Box<dyn ShardWriter>>> = Vec::new();
        for (i, &pos) in dist.iter().enumerate() {
            writers.push(if bad[i] {
                self.drives[pos]
                    .create_shard(bucket, &seg.data_dir)
                    .await
                    .ok()
            } else {
                None
            });
        }
        let mut failed = vec![false; n];
        let stripe = codec.stripe_size() as u64;
        let stripes = seg.size.div_ceil(stripe).max(1);
        let per_batch = (HEAL_BATCH / stripe).max(1);
        // The first k shards that are neither bad nor failed so far.
        let pick = |failed: &[bool]| -> Vec<bool> {
            let mut read = vec![false; n];
            for i in (0..n).filter(|&i| !bad[i] && !failed[i]).take(k) {
                read[i] = true;
            }
            read
        };
        // Each batch's reads (and their hash checks) run on their own task, started once the
        // batch before it has been read and checked and before it is rebuilt and written, so
        // that the disk reads of one batch overlap the coding and the writes of the other.
        let start = |s0: u64, read: Vec<bool>| {
            let s1 = (s0 + per_batch - 1).min(stripes - 1);
            let skip: Vec<bool> = read.iter().map(|r| !r).collect();
            let reader = self.batch_reader(bucket, seg, dist, codec, s0, s1, &skip);
            (s0, s1, read, AbortOnDropHandle::new(tokio::spawn(reader)))
        };
        let mut ahead = Some(start(0, pick(&failed)));
        while let Some((s0, s1, mut read, reading)) = ahead.take() {
            let (mut frames, bytes) = reading
                .await
                .map_err(|e| Error::Internal(format!("shard reads: {e}")))?;
            report.bytes_read += bytes;
            let short = |frames: &[Vec<Option<Bytes>>]| {
                (0..=(s1 - s0) as usize).any(|j| {
                    frames
                        .iter()
                        .filter(|f| f.get(j).is_some_and(|x| x.is_some()))
                        .count()
                        < k
                })
            };
            if short(&frames) {
                let rest: Vec<bool> = (0..n).map(|i| bad[i] || read[i]).collect();
                let (more, bytes) = self
                    .batch_reader(bucket, seg, dist, codec, s0, s1, &rest)
                    .await;
                report.bytes_read += bytes;
                for (i, f) in more.into_iter().enumerate() {
                    if !rest[i] {
                        frames[i] = f;
                        read[i] = true;
                    }
                }
            }
            for i in 0..n {
                if read[i] && frames[i].iter().any(|x| x.is_none()) {
                    failed[i] = true;
                }
            }
            if s1 + 1 < stripes {
                ahead = Some(start(s1 + 1, pick(&failed)));
            }
            for j in 0..=(s1 - s0) as usize {
                let shards: Vec<Option<Bytes>> = frames
                    .iter()
                    .map(|shard| shard.get(j).cloned().flatten())
                    .collect();
                // Only the shards being written are computed; the one not read is left out.
                let shards = codec
                    .recover(&shards, |i| writers[i].is_some())
                    .map_err(|e| Error::Quorum(format!("cannot rebuild: {e}")))?;
                for (i, block) in shards.into_iter().enumerate().take(n) {
                    let Some(w) = writers[i].as_mut() else {
                        continue;
                    };
                    // A shard file missing a block is never committed.
                    let written = match block {
                        Some(block) => {
                            let framed = frame::Framed::new(block);
                            report.bytes_written += framed.len() as u64;
                            w.write(framed).await.is_ok()
                        }
                        None => false,
                    };
                    if !written {
                        writers[i] = None;
                    }
                }
            }
            if writers.iter().all(Option::is_none) {
                // Every drive being rebuilt has failed its write: nothing left to read for.
                break;
            }
        }
        let commits = writers.into_iter().map(|w| async move {
            match w {
                Some(w) => w.commit().await.is_ok(),
                None => false,
            }
        });
        Ok((join_all(commits).await, failed))
    }
}

/// Persists `hint` on every drive of `drives` that takes it in time (see below); returns how
/// many did.
pub(super) async fn persist_hint(drives: &[Arc<dyn Drive>], hint: HealHint) -> usize {
    // A stalled drive (a stopped node: no answer until the call's timeout) must not hold up
    // the write that leaves the hint: once one drive has it, the others get the grace of
    // `quorum_join`, and one that misses it is told it is slow.
    let writes = drives
        .iter()
        .map(|d| {
            let hint = &hint;
            async move { d.is_online() && d.put_hint(hint).await.is_ok() }
        })
        .collect();
    let done = super::quorum_join(writes, 1, |ok| *ok).await;
    for (d, r) in drives.iter().zip(&done) {
        if r.is_none() {
            d.note_slow();
        }
    }
    let n = done.iter().filter(|ok| **ok == Some(true)).count();
    if n == 0 {
        tracing::error!(bucket = %hint.bucket, key = %hint.key, "no drive took the heal hint");
    }
    n
}

/// Bytes in a complete shard file of a segment of `size` bytes.
pub(super) fn shard_file_size(size: u64, codec: &Codec) -> u64 {
    let stripe = codec.stripe_size() as u64;
    let stripes = size.div_ceil(stripe).max(1);
    let (off, len) = frame::frame_span(stripes - 1, size, stripe, codec.data_shards() as u64);
    off + len
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::persist_hint;
    use crate::drive::remote::{rpc_client, RemoteDrive, CALL_TIMEOUT};
    use crate::drive::{Drive, HealHint, LocalDrive};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_drive_does_not_hold_up_a_heal_hint() {
        // A node that takes connections and never answers, as a stopped process does: a
        // call to it fails only at its timeout.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                held.push(conn);
            }
        });
        let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
        let mut drives: Vec<Arc<dyn Drive>> = dirs
            .iter()
            .map(|d| Arc::new(LocalDrive::open(d.path()).unwrap()) as Arc<dyn Drive>)
            .collect();
        let stalled = RemoteDrive::new(
            rpc_client(None).unwrap(),
            &address,
            0,
            "secret".into(),
            "topology".into(),
        );
        drives.push(Arc::new(stalled));

        let started = std::time::Instant::now();
        let took = persist_hint(&drives, HealHint::version("b", "k", "v1", false)).await;
        // Waiting for the stalled drive would take its whole timeout.
        assert!(
            started.elapsed() < CALL_TIMEOUT,
            "the hint waited {:?} for a drive that does not answer",
            started.elapsed()
        );
        assert_eq!(took, 2);
        for d in &drives[..2] {
            let hints = d.list_hints(b"", 10).await.unwrap();
            assert_eq!(hints.len(), 1);
            assert_eq!(hints[0].key, "k");
        }
        silent.abort();
    }
}
