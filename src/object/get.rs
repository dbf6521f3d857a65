//! GET and HEAD: the version is chosen by a read quorum of metadata copies; data shards are
//! read first and every frame's BLAKE3 hash verified; a missing, unreadable or corrupt frame
//! makes the reader fetch parity and reconstruct. Range reads touch only their stripes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::stream::FuturesUnordered;
use futures::StreamExt;

use super::{ErasureSet, Error, Result, Segment, HEDGE_AFTER};
use crate::drive::{Drive, VersionRecord};
use crate::erasure::{frame, Codec};
use tokio_util::task::AbortOnDropHandle;

/// Object bytes to stream back (after the first batch has been read successfully).
pub type DataStream = BoxStream<'static, std::result::Result<Bytes, std::io::Error>>;

/// Object bytes per batch of reads from each drive.
const BATCH_BYTES: u64 = 4 << 20;

/// Batches read at once by a GET alone in its erasure set, after its first. Through a cluster
/// four gave 1.08-1.3x the MB/s of two for one 64 MiB GET; on the server no change. A GET
/// then holds at most about seven batches (28 MiB of object data, up to 1.5x that when parity
/// is read): these, one in the channel, one waiting to enter it, and the one being sent.
const AHEAD_ALONE: usize = 4;

/// A version chosen by quorum, ready to have its bytes read.
pub struct ObjectReader {
    /// The version's metadata.
    pub info: VersionRecord,
    /// `holders[i]`: the drive holding shard `i`, when it has a matching record.
    holders: Vec<Option<Arc<dyn Drive>>>,
    /// `offline[i]`: the drive meant to hold shard `i` is marked offline, so its shard being
    /// missing is no damage seen (see `open_object`).
    offline: Vec<bool>,
    /// Inline shard frames, per shard index.
    inline: Vec<Option<Bytes>>,
    codec: Arc<Codec>,
    bucket: String,
    key: String,
    /// The drives of the set, where a read that had to reconstruct leaves a heal hint.
    set_drives: Vec<Arc<dyn Drive>>,
    hinted: Arc<std::sync::atomic::AtomicBool>,
    /// The set's count of object reads streaming.
    streaming: Arc<AtomicUsize>,
}

impl ErasureSet {
    /// Reads the metadata of `key` (its current version, or the one named) and prepares to
    /// read its data. A delete marker is `Error::DeleteMarker`.
    pub async fn open_object(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<ObjectReader> {
        // Most reads need only the k drives of the data shards; the rest are asked when those
        // disagree, fail or are offline.
        let fast = self.version_from_k(bucket, key, version_id).await;
        let asked_all = fast.is_none();
        let found = match fast {
            Some(found) => found,
            None => self.quorum_version(bucket, key, version_id).await,
        };
        let (info, copies) = match found {
            Err(e @ (Error::NoSuchKey | Error::NoSuchVersion)) => {
                // Distinguish a missing bucket from a missing key, as S3 does.
                self.get_bucket(bucket).await?;
                return Err(e);
            }
            other => other?,
        };
        if info.delete_marker {
            return Err(Error::DeleteMarker {
                version_id: info.version_id,
                requested: version_id.is_some(),
                mod_time_ns: info.mod_time_ns,
            });
        }
        let n = self.drives.len();
        // Only a copy missing from a drive that answered is damage worth a heal hint. A drive
        // marked offline may well still hold its copy; repair's scanner checks it once the
        // drive is back (and a drive that comes back blank leaves its own hint), while writes
        // it missed left hints when they were made. Hinting it here would make every read
        // during a node's outage write a hint, with an fsync, to every live drive.
        let copies_missing = asked_all
            && copies
                .iter()
                .zip(&self.drives)
                .any(|(c, d)| c.is_none() && d.is_online());
        let offline: Vec<bool> = (0..n)
            .map(|i| {
                info.layout
                    .distribution
                    .get(i)
                    .and_then(|&p| self.drives.get(p as usize))
                    .is_some_and(|d| !d.is_online())
            })
            .collect();
        let mut holders: Vec<Option<Arc<dyn Drive>>> = vec![None; n];
        let mut inline: Vec<Option<Bytes>> = vec![None; n];
        for (pos, copy) in copies.into_iter().enumerate() {
            if let Some(c) = copy {
                let i = c.layout.shard_index as usize;
                if i < n {
                    holders[i] = Some(self.drives[pos].clone());
                    inline[i] = c.inline.map(Bytes::from);
                }
            }
        }
        if !asked_all {
            // The drives not asked hold the other shards where the version's layout puts
            // them; a shard read from one that lacks the version finds no such data folder.
            for (i, h) in holders.iter_mut().enumerate() {
                if h.is_none() {
                    *h = info
                        .layout
                        .distribution
                        .get(i)
                        .and_then(|&p| self.drives.get(p as usize))
                        .cloned();
                }
            }
        }
        let codec = if info.layout.k as usize == self.k()
            && info.layout.m as usize == self.m()
            && info.layout.stripe_size as usize == self.codec.stripe_size()
        {
            self.codec.clone()
        } else {
            Arc::new(super::layout_codec(&info.layout)?)
        };
        let hinted = Arc::new(std::sync::atomic::AtomicBool::new(false));
        if copies_missing {
            leave_hint(&self.drives, &hinted, bucket, key, &info.version_id, false);
        }
        let mut info = info;
        info.inline = None;
        Ok(ObjectReader {
            info,
            holders,
            offline,
            inline,
            codec,
            bucket: bucket.to_string(),
            key: key.to_string(),
            set_drives: self.drives.clone(),
            hinted,
            streaming: self.streaming.clone(),
        })
    }
}

impl ObjectReader {
    /// Streams bytes `start..end` of the object. The first batch is read before this returns,
    /// so an object that cannot be read fails here, before any response is sent.
    pub async fn stream(self, start: u64, end: u64) -> Result<DataStream> {
        let size = self.info.size;
        let end = end.min(size);
        if start >= end {
            return Ok(Box::pin(futures::stream::empty()));
        }
        if self.info.data_dir.is_empty() && self.info.parts.is_empty() {
            let shards = self
                .inline
                .iter()
                .map(|f| f.as_ref().and_then(frame::decode))
                .collect();
            let data = self
                .codec
                .decode(shards, size as usize)
                .map_err(|e| Error::Quorum(e.to_string()))?;
            let part = data.slice(start as usize..end as usize);
            return Ok(Box::pin(futures::stream::once(async move { Ok(part) })));
        }
        // A GET alone in its erasure set reads up to `AHEAD_ALONE` batches at once after its
        // first, so that one batch's round trips and disk reads overlap the next ones'; with
        // other reads running, the disks and cores already have work, and reading ahead only
        // adds memory and queueing (measured in docs/performance.md). Finished batches wait
        // in the channel for the client.
        let active = Streaming::start(&self.streaming);
        let ahead = if active.others() == 0 { AHEAD_ALONE } else { 1 };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<Bytes>>>(1);
        let this = Arc::new(self);
        tokio::spawn(async move {
            let _active = active;
            let stripe = this.codec.stripe_size() as u64;
            let per_batch = (BATCH_BYTES / stripe).max(1);
            let mut todo = batches(super::segments(&this.info), stripe, per_batch, start, end);
            // The first batch is read alone: the response waits for it.
            let reader = &this;
            let first = futures::stream::iter(todo.next()).then(|b: Batch| async move {
                reader.read_stripes(&b.seg, b.s0, b.s1, b.lo, b.hi).await
            });
            // Each later batch is read on its own task, so that the batches already started
            // (`ahead - 1` of them while this loop waits for the client to take the one
            // before) go on with their reads and hash checks, on either core.
            let ahead_read = |b: Batch| {
                let reader = this.clone();
                let task = AbortOnDropHandle::new(tokio::spawn(async move {
                    reader.read_stripes(&b.seg, b.s0, b.s1, b.lo, b.hi).await
                }));
                async move {
                    task.await
                        .unwrap_or_else(|e| Err(Error::Internal(e.to_string())))
                }
            };
            let rest = futures::stream::iter(todo).map(ahead_read).buffered(ahead);
            let mut reads = std::pin::pin!(first.chain(rest));
            while let Some(item) = reads.next().await {
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    return;
                }
            }
        });
        let first = match rx.recv().await {
            Some(r) => r?,
            None => return Err(Error::Internal("reader stopped".into())),
        };
        // Each batch is a list of chunks (slices of the blocks read): one stream item each.
        let rest = tokio_stream_from(rx).flat_map(|r| {
            let items: Vec<std::io::Result<Bytes>> = match r {
                Ok(chunks) => chunks.into_iter().map(Ok).collect(),
                Err(e) => vec![Err(std::io::Error::other(e.to_string()))],
            };
            futures::stream::iter(items)
        });
        Ok(Box::pin(
            futures::stream::iter(first.into_iter().map(Ok)).chain(rest),
        ))
    }

    /// Reads stripes `s0..=s1` of a segment, reconstructing where needed, and returns the
    /// bytes of the segment range `start..end` that they cover, as slices of the blocks read
    /// (a healthy read copies nothing) or of the rebuilt stripes.
    async fn read_stripes(
        &self,
        seg: &Segment,
        s0: u64,
        s1: u64,
        start: u64,
        end: u64,
    ) -> Result<Vec<Bytes>> {
        let k = self.codec.data_shards();
        let n = self.codec.total_shards();
        let size = seg.size;
        let stripe = self.codec.stripe_size() as u64;
        let count = (s1 - s0 + 1) as usize;
        let spans: Vec<(u64, u64)> = (s0..=s1)
            .map(|s| frame::frame_span(s, size, stripe, k as u64))
            .collect();
        let offset = spans[0].0;
        let len: u64 = spans.iter().map(|(_, l)| l).sum();
        // frames[stripe][shard]
        let mut frames: Vec<Vec<Option<Bytes>>> = vec![vec![None; n]; count];
        let fetch = |i: usize| {
            let drive = self.holders[i].clone();
            let bucket = self.bucket.clone();
            let dir = seg.data_dir.clone();
            async move {
                match drive {
                    Some(d) => d.read_shard(&bucket, &dir, offset, len).await.ok(),
                    None => None,
                }
            }
        };
        // Data shards first. Parity is read when a data shard fails, or (hedging) when one
        // has not answered within HEDGE_AFTER; then the first k good shards win and the
        // laggards are abandoned, so a stopped node costs a read that delay, not a timeout.
        let place = |i: usize, raw: Option<Bytes>, frames: &mut Vec<Vec<Option<Bytes>>>| {
            if let Some(raw) = raw {
                let mut at = 0usize;
                for (j, (_, l)) in spans.iter().enumerate() {
                    let l = *l as usize;
                    if at + l <= raw.len() {
                        frames[j][i] = frame::decode(&raw.slice(at..at + l));
                    }
                    at += l;
                }
            }
        };
        let indexed = |i: usize| {
            let f = fetch(i);
            async move { (i, f.await) }
        };
        let mut pending: FuturesUnordered<_> = (0..k).map(indexed).collect();
        let mut asked = vec![false; n];
        let mut answered = vec![false; n];
        asked[..k].iter_mut().for_each(|a| *a = true);
        let hedge = tokio::time::sleep(HEDGE_AFTER);
        tokio::pin!(hedge);
        let mut parity_asked = false;
        let enough = |frames: &Vec<Vec<Option<Bytes>>>| {
            frames
                .iter()
                .all(|f| f.iter().filter(|s| s.is_some()).count() >= k)
        };
        loop {
            if enough(&frames) {
                break;
            }
            // Answers already there count before the hedge: a task that went unpolled for a
            // while (a busy runtime) must not ask for parity that those answers make needless.
            let got = tokio::select! {
                biased;
                got = pending.next() => got,
                _ = &mut hedge, if !parity_asked => None,
            };
            let ask_parity = match got {
                Some((i, raw)) => {
                    answered[i] = true;
                    let failed = raw.is_none();
                    place(i, raw, &mut frames);
                    failed || frames.iter().any(|f| f[i].is_none())
                }
                None if pending.is_empty() => break,
                None => true,
            };
            if ask_parity && !parity_asked {
                parity_asked = true;
                for (i, a) in asked.iter_mut().enumerate().skip(k) {
                    *a = true;
                    pending.push(indexed(i));
                }
            }
        }
        if !pending.is_empty() {
            drop(pending);
            // Whoever did not answer in time is slow: let the drive know.
            for (i, h) in self.holders.iter().enumerate() {
                if asked[i] && frames.iter().all(|f| f[i].is_none()) {
                    if let Some(d) = h {
                        d.note_slow();
                    }
                }
            }
        }
        // A shard that a live drive answered without (missing, unreadable or corrupt) is
        // damage. One whose drive is marked offline is only an outage, rebuilt on every read
        // until the drive is back; one abandoned because enough others came first is neither.
        let damaged = (0..n)
            .any(|i| answered[i] && !self.offline[i] && frames.iter().any(|f| f[i].is_none()));
        if damaged {
            tracing::warn!(bucket = %self.bucket, data_dir = %seg.data_dir, "reconstructing from parity");
            leave_hint(
                &self.set_drives,
                &self.hinted,
                &self.bucket,
                &self.key,
                &self.info.version_id,
                true,
            );
        }
        // Rebuild the data shards that are missing, all stripes of the batch in one go off
        // the runtime; the shards read are used as they are, never copied.
        if frames.iter().any(|f| f[..k].iter().any(|x| x.is_none())) {
            let codec = self.codec.clone();
            frames = tokio::task::spawn_blocking(move || {
                frames
                    .into_iter()
                    .enumerate()
                    .map(|(j, f)| {
                        codec
                            .recover(&f, |i| i < k)
                            .map_err(|e| Error::Quorum(format!("stripe {}: {e}", s0 + j as u64)))
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
        }
        let mut out = Vec::new();
        for (j, shards) in frames.into_iter().enumerate() {
            let stripe_start = (s0 + j as u64) * stripe;
            let stripe_len = (size - stripe_start).min(stripe) as usize;
            let lo = start.saturating_sub(stripe_start).min(stripe_len as u64) as usize;
            let hi = (end - stripe_start).min(stripe_len as u64) as usize;
            // The data blocks in order are the stripe (the last one zero-padded).
            let block = self.codec.shard_len(stripe_len);
            for (i, b) in shards.into_iter().take(k).enumerate() {
                let (a, z) = ((i * block).max(lo), ((i + 1) * block).min(hi));
                match b {
                    Some(b) if a < z => out.push(b.slice(a - i * block..z - i * block)),
                    Some(_) => {}
                    None => {
                        return Err(Error::Quorum(format!(
                            "stripe {}: shard {i} missing",
                            s0 + j as u64
                        )))
                    }
                }
            }
        }
        Ok(out)
    }
}

/// One object read counted among its erasure set's streaming reads until dropped.
struct Streaming(Arc<AtomicUsize>);

impl Streaming {
    fn start(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Streaming(count.clone())
    }

    /// How many other object reads of the set are streaming.
    fn others(&self) -> usize {
        self.0.load(Ordering::Relaxed).saturating_sub(1)
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Stripes `s0..=s1` of a segment, of which the bytes `lo..hi` are wanted.
struct Batch {
    seg: Segment,
    s0: u64,
    s1: u64,
    lo: u64,
    hi: u64,
}

/// The batches that cover bytes `start..end` of an object made of `segs`, in order, each of
/// at most `per_batch` stripes; made one at a time, however many parts the object has.
fn batches(
    segs: Vec<Segment>,
    stripe: u64,
    per_batch: u64,
    start: u64,
    end: u64,
) -> impl Iterator<Item = Batch> + Send {
    let mut seg_end = 0u64;
    segs.into_iter()
        .map(move |seg| {
            seg_end += seg.size;
            (seg_end - seg.size, seg)
        })
        .take_while(move |(seg_start, _)| *seg_start < end)
        .filter(move |(seg_start, seg)| seg.size > 0 && seg_start + seg.size > start)
        .flat_map(move |(seg_start, seg)| {
            let lo = start.saturating_sub(seg_start);
            let hi = end.min(seg_start + seg.size) - seg_start;
            let last = (hi - 1) / stripe;
            (lo / stripe..=last)
                .step_by(per_batch as usize)
                .map(move |s0| Batch {
                    seg: seg.clone(),
                    s0,
                    s1: (s0 + per_batch - 1).min(last),
                    lo,
                    hi,
                })
        })
}

/// Leaves a heal hint for a version in the background (once per reader): the client's read
/// does not wait for it.
fn leave_hint(
    drives: &[Arc<dyn Drive>],
    hinted: &std::sync::atomic::AtomicBool,
    bucket: &str,
    key: &str,
    version_id: &str,
    deep: bool,
) {
    if hinted.swap(true, std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let drives = drives.to_vec();
    let hint = crate::drive::HealHint::version(bucket, key, version_id, deep);
    tokio::spawn(async move {
        super::heal::persist_hint(&drives, hint).await;
    });
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(name: &str, size: u64) -> Segment {
        Segment {
            data_dir: name.into(),
            size,
        }
    }

    /// (segment, first stripe, last stripe, lo, hi) of each batch.
    fn plan(segs: Vec<Segment>, start: u64, end: u64) -> Vec<(String, u64, u64, u64, u64)> {
        batches(segs, 10, 3, start, end)
            .map(|b| (b.seg.data_dir, b.s0, b.s1, b.lo, b.hi))
            .collect()
    }

    #[test]
    fn batches_cover_a_range_across_parts() {
        let parts = || vec![seg("a", 75), seg("empty", 0), seg("b", 25), seg("c", 40)];
        // The whole object: part a in batches of 3 stripes of 10 bytes, then b, then c.
        assert_eq!(
            plan(parts(), 0, 140),
            vec![
                ("a".into(), 0, 2, 0, 75),
                ("a".into(), 3, 5, 0, 75),
                ("a".into(), 6, 7, 0, 75),
                ("b".into(), 0, 2, 0, 25),
                ("c".into(), 0, 2, 0, 40),
                ("c".into(), 3, 3, 0, 40),
            ]
        );
        // A range from inside a to inside b skips a's first stripes and stops before c.
        assert_eq!(
            plan(parts(), 42, 80),
            vec![
                ("a".into(), 4, 6, 42, 75),
                ("a".into(), 7, 7, 42, 75),
                ("b".into(), 0, 0, 0, 5),
            ]
        );
        // A range inside one stripe of c.
        assert_eq!(plan(parts(), 131, 133), vec![("c".into(), 3, 3, 31, 33)]);
    }
}
