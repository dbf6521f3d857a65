//! Healing one object version: every shard and metadata copy that is missing or fails its
//! hash is rebuilt from any `k` good shards, written to its drive, and verified.
//!
//! Reads that had to reconstruct, reads that found copies missing, and writes that missed
//! drives ask for a heal through [`ErasureSet::request_heal`]; a background task per set
//! works those requests. (The persisted heal-hint queue, the scanner and node-led repair are
//! issue 5.)

use std::sync::Arc;

use bytes::Bytes;
use futures::future::join_all;

use super::{ErasureSet, Error, Result};
use crate::drive::{ShardWriter, VersionRecord};
use crate::erasure::{frame, Codec};

/// A version that should be healed.
#[derive(Debug, Clone)]
pub struct HealRequest {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Version id.
    pub version_id: String,
}

/// What a heal did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HealReport {
    /// Shard files rebuilt (per segment).
    pub shards_rebuilt: usize,
    /// Metadata copies written.
    pub records_written: usize,
}

/// Object bytes per batch of shard reads while healing.
const HEAL_BATCH: u64 = 4 << 20;

impl ErasureSet {
    /// Starts the background task that works heal requests for this set.
    pub fn spawn_healer(self: &Arc<Self>) {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<HealRequest>(1024);
        if self.heal_tx.set(tx).is_err() {
            return;
        }
        let set = Arc::downgrade(self);
        tokio::spawn(async move {
            // Reads of a damaged object ask again and again; heal each version once a while.
            let mut recent: std::collections::HashMap<
                (String, String, String),
                std::time::Instant,
            > = Default::default();
            while let Some(req) = rx.recv().await {
                let Some(set) = set.upgrade() else { return };
                let id = (req.bucket.clone(), req.key.clone(), req.version_id.clone());
                recent.retain(|_, at| at.elapsed() < std::time::Duration::from_secs(30));
                if recent.contains_key(&id) {
                    continue;
                }
                recent.insert(id, std::time::Instant::now());
                match set
                    .heal_object(&req.bucket, &req.key, &req.version_id)
                    .await
                {
                    Ok(r) if r != HealReport::default() => tracing::info!(
                        bucket = %req.bucket, key = %req.key, version = %req.version_id,
                        shards = r.shards_rebuilt, records = r.records_written, "healed"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(
                        bucket = %req.bucket, key = %req.key, error = %e, "heal failed"
                    ),
                }
            }
        });
    }

    /// Asks the healer (if running) to heal a version; never blocks, drops when full.
    pub(super) fn request_heal(&self, bucket: &str, key: &str, version_id: &str) {
        if let Some(tx) = self.heal_tx.get() {
            let _ = tx.try_send(HealRequest {
                bucket: bucket.into(),
                key: key.into(),
                version_id: version_id.into(),
            });
        }
    }

    /// Rebuilds every missing or corrupt shard and metadata copy of one version.
    pub async fn heal_object(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<HealReport> {
        let (rec, copies) = self.quorum_version(bucket, key, Some(version_id)).await?;
        let n = self.drives.len();
        let dist: Vec<usize> = rec
            .layout
            .distribution
            .iter()
            .map(|&p| p as usize)
            .collect();
        if dist.len() != n {
            return Err(Error::Internal("layout does not match the set".into()));
        }
        let codec = Codec::new(
            rec.layout.k as usize,
            rec.layout.m as usize,
            rec.layout.stripe_size as usize,
        )
        .map_err(|e| Error::Internal(e.to_string()))?;
        // Shard i lacks its record when the drive at dist[i] holds no matching copy.
        let no_record: Vec<bool> = (0..n).map(|i| copies[dist[i]].is_none()).collect();
        let mut report = HealReport::default();
        let mut rewrite = no_record.clone();
        let mut inline: Vec<Option<Vec<u8>>> = vec![None; n];
        if rec.data_dir.is_empty() && rec.parts.is_empty() && !rec.delete_marker {
            // Inline: rebuild the framed shards from the copies that verify.
            let mut shards: Vec<Option<Vec<u8>>> = vec![None; n];
            for c in copies.iter().flatten() {
                let i = c.layout.shard_index as usize;
                if let Some(f) = c
                    .inline
                    .as_ref()
                    .and_then(|f| frame::decode(&Bytes::from(f.clone())))
                {
                    if i < n {
                        shards[i] = Some(f.to_vec());
                    }
                }
            }
            let bad: Vec<bool> = shards.iter().map(|s| s.is_none()).collect();
            if bad.iter().any(|b| *b) {
                codec
                    .reconstruct_all(&mut shards)
                    .map_err(|e| Error::Quorum(e.to_string()))?;
                for i in 0..n {
                    if bad[i] {
                        rewrite[i] = true;
                        inline[i] = shards[i].as_ref().map(|s| frame::encode(s).to_vec());
                    }
                }
            }
        } else if !rec.delete_marker {
            for seg in segments(&rec) {
                let bad = self.verify_segment(bucket, &seg, &dist, &codec).await;
                let mut bad: Vec<bool> =
                    bad.iter().zip(&no_record).map(|(b, r)| *b || *r).collect();
                if !bad.iter().any(|b| *b) {
                    continue;
                }
                let mut rebuilt = self
                    .rebuild_segment(bucket, &seg, &dist, &codec, &bad)
                    .await?;
                // Verify what was written before counting it.
                let again = self.verify_segment(bucket, &seg, &dist, &codec).await;
                for i in 0..n {
                    if bad[i] && again[i] {
                        rebuilt -= 1;
                        bad[i] = false;
                        tracing::warn!(drive = %self.drives[dist[i]].endpoint(), "rebuilt shard does not verify");
                    }
                    rewrite[i] |= bad[i];
                }
                report.shards_rebuilt += rebuilt;
            }
        }
        let writes = (0..n).filter(|i| rewrite[*i]).map(|i| {
            let mut r = rec.clone();
            r.layout.shard_index = i as u8;
            r.inline = inline[i].take();
            let drive = self.drives[dist[i]].clone();
            async move { drive.put_version(bucket, key, &r).await.is_ok() }
        });
        report.records_written = join_all(writes).await.into_iter().filter(|ok| *ok).count();
        Ok(report)
    }

    /// Reads every frame of every shard of a segment; `true` marks a shard that is missing,
    /// short or fails a hash anywhere.
    async fn verify_segment(
        &self,
        bucket: &str,
        seg: &Seg,
        dist: &[usize],
        codec: &Codec,
    ) -> Vec<bool> {
        let n = dist.len();
        let stripe = codec.stripe_size() as u64;
        let stripes = seg.size.div_ceil(stripe).max(1);
        let per_batch = (HEAL_BATCH / stripe).max(1);
        let mut bad = vec![false; n];
        let mut s0 = 0;
        while s0 < stripes {
            let s1 = (s0 + per_batch - 1).min(stripes - 1);
            let frames = self
                .read_batch(bucket, seg, dist, codec, s0, s1, &bad)
                .await;
            for (i, f) in frames.iter().enumerate() {
                if !bad[i] && f.iter().any(|x| x.is_none()) {
                    bad[i] = true;
                }
            }
            s0 = s1 + 1;
        }
        bad
    }

    /// Reads stripes `s0..=s1` of every shard not in `skip`: `frames[shard][stripe]`.
    #[allow(clippy::too_many_arguments)]
    async fn read_batch(
        &self,
        bucket: &str,
        seg: &Seg,
        dist: &[usize],
        codec: &Codec,
        s0: u64,
        s1: u64,
        skip: &[bool],
    ) -> Vec<Vec<Option<Bytes>>> {
        let k = codec.data_shards() as u64;
        let stripe = codec.stripe_size() as u64;
        let spans: Vec<(u64, u64)> = (s0..=s1)
            .map(|s| frame::frame_span(s, seg.size, stripe, k))
            .collect();
        let offset = spans[0].0;
        let len: u64 = spans.iter().map(|(_, l)| l).sum();
        let reads = dist.iter().enumerate().map(|(i, &pos)| {
            let drive = self.drives[pos].clone();
            let dir = seg.data_dir.clone();
            let skip = skip[i];
            async move {
                if skip {
                    return None;
                }
                drive.read_shard(bucket, &dir, offset, len).await.ok()
            }
        });
        join_all(reads)
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
            .collect()
    }

    /// Writes new shard files for the shards marked `bad`, rebuilt from the others.
    async fn rebuild_segment(
        &self,
        bucket: &str,
        seg: &Seg,
        dist: &[usize],
        codec: &Codec,
        bad: &[bool],
    ) -> Result<usize> {
        let n = dist.len();
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
        let stripe = codec.stripe_size() as u64;
        let stripes = seg.size.div_ceil(stripe).max(1);
        let per_batch = (HEAL_BATCH / stripe).max(1);
        let mut s0 = 0;
        while s0 < stripes {
            let s1 = (s0 + per_batch - 1).min(stripes - 1);
            let frames = self.read_batch(bucket, seg, dist, codec, s0, s1, bad).await;
            for j in 0..=(s1 - s0) as usize {
                let mut shards: Vec<Option<Vec<u8>>> = frames
                    .iter()
                    .map(|shard| shard.get(j).cloned().flatten().map(|b| b.to_vec()))
                    .collect();
                codec
                    .reconstruct_all(&mut shards)
                    .map_err(|e| Error::Quorum(format!("cannot rebuild: {e}")))?;
                for i in 0..n {
                    if let (Some(w), Some(block)) = (writers[i].as_mut(), shards[i].as_ref()) {
                        if w.write(frame::encode(block)).await.is_err() {
                            writers[i] = None;
                        }
                    }
                }
            }
            s0 = s1 + 1;
        }
        let commits = writers.into_iter().map(|w| async move {
            match w {
                Some(w) => w.commit().await.is_ok(),
                None => false,
            }
        });
        Ok(join_all(commits).await.into_iter().filter(|ok| *ok).count())
    }
}

/// One erasure-coded run of an object.
struct Seg {
    data_dir: String,
    size: u64,
}

fn segments(rec: &VersionRecord) -> Vec<Seg> {
    if rec.parts.is_empty() {
        vec![Seg {
            data_dir: rec.data_dir.clone(),
            size: rec.size,
        }]
    } else {
        rec.parts
            .iter()
            .map(|p| Seg {
                data_dir: p.data_dir.clone(),
                size: p.size,
            })
            .collect()
    }
}
