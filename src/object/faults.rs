//! The object layer over drives that fail on purpose ([`FaultyDrive`]): writes that miss
//! their quorum after some drives took them must leave every acknowledged byte readable.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use md5::Digest;

use super::multipart::CompletedPart;
use super::put::PutOptions;
use super::{ErasureSet, Error, Result};
use crate::drive::faulty::FaultyDrive;
use crate::drive::{Drive, LocalDrive};
use crate::erasure::Codec;

/// Six drives in temporary folders (4+2), each behind a [`FaultyDrive`], with bucket `b`.
struct Fixture {
    set: ErasureSet,
    drives: Vec<Arc<FaultyDrive>>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Fixture {
    async fn new() -> Self {
        let dirs: Vec<tempfile::TempDir> = (0..6).map(|_| tempfile::tempdir().unwrap()).collect();
        let drives: Vec<Arc<FaultyDrive>> = dirs
            .iter()
            .map(|d| {
                let local = Arc::new(LocalDrive::open(d.path()).unwrap()) as Arc<dyn Drive>;
                Arc::new(FaultyDrive::new(local))
            })
            .collect();
        let set = ErasureSet::new(
            drives.iter().map(|d| d.clone() as Arc<dyn Drive>).collect(),
            Codec::new(4, 2, 1 << 20).unwrap(),
            64 << 10,
        );
        set.create_bucket("b", None).await.unwrap();
        Self {
            set,
            drives,
            _dirs: dirs,
        }
    }

    /// Record writes fail on the first `n` drives (and work on the others).
    fn fail_records_on(&self, n: usize) {
        for (i, d) in self.drives.iter().enumerate() {
            d.fail_record_writes(i < n);
        }
    }

    async fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        self.set
            .put_object("b", key, PutOptions::default(), body(data))
            .await
            .map(|_| ())
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>> {
        let reader = self.set.open_object("b", key, None).await?;
        let size = reader.info.size;
        let mut stream = reader.stream(0, size).await?;
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.map_err(|e| Error::Internal(e.to_string()))?);
        }
        Ok(out)
    }
}

fn body(data: &[u8]) -> super::put::BodyStream {
    let data = Bytes::copy_from_slice(data);
    futures::stream::once(async move { Ok(data) }).boxed()
}

fn pattern(size: usize, step: usize) -> Vec<u8> {
    (0..size).map(|i| (i % step) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overwrite_that_misses_its_quorum_leaves_the_object_it_replaced() {
    let f = Fixture::new().await;
    // An inline object (its bytes live in the records) and one in shard files.
    for (key, size) in [("small", 1000usize), ("large", 3 << 20)] {
        let old = pattern(size, 251);
        f.put(key, &old).await.unwrap();
        // Three drives take the new shards and then fail its record: three records of the
        // four needed, so the write fails and is undone on the three that took it.
        f.fail_records_on(3);
        let err = f.put(key, &pattern(size, 13)).await.unwrap_err();
        assert!(matches!(err, Error::Quorum(_)), "{key}: {err:?}");
        f.fail_records_on(0);
        // The acknowledged object is still whole on every drive, not only on the three that
        // missed the failed write.
        assert_eq!(f.get(key).await.unwrap(), old, "{key}");
        let etag = format!("{:x}", md5::Md5::digest(&old));
        for (i, d) in f.drives.iter().enumerate() {
            let rec = d.get_version("b", key, "null").await.unwrap();
            assert_eq!(rec.map(|r| r.etag), Some(etag.clone()), "{key}: drive {i}");
            // The failed write's shard files went; the old object's stayed.
            let files = d.list_shard_files("b", "", 10).await.unwrap();
            assert_eq!(files.len(), usize::from(key == "large"), "{key}: drive {i}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_that_misses_its_quorum_keeps_the_parts_for_a_retry() {
    let f = Fixture::new().await;
    let data = pattern(3 << 20, 251);
    let id = f
        .set
        .create_upload("b", "mp", PutOptions::default(), None)
        .await
        .unwrap();
    let part = f
        .set
        .upload_part("b", "mp", &id, 1, PutOptions::default(), body(&data))
        .await
        .unwrap();
    let parts = [CompletedPart {
        number: 1,
        etag: part.etag.clone(),
        checksum: None,
    }];
    f.fail_records_on(3);
    let err = f
        .set
        .complete_upload("b", "mp", &id, &parts, None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Quorum(_)), "{err:?}");
    f.fail_records_on(0);
    // The client retries, as the SDKs do after a 503: the parts it uploaded are still there.
    f.set
        .complete_upload("b", "mp", &id, &parts, None, None)
        .await
        .unwrap();
    assert_eq!(f.get("mp").await.unwrap(), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drive_that_cannot_take_the_old_record_back_gets_a_heal_hint() {
    let f = Fixture::new().await;
    f.put("k", &pattern(1000, 251)).await.unwrap();
    assert!(f.drives[0].list_hints(b"", 10).await.unwrap().is_empty());
    // Three drives fail the new record; the other three take it, and then fail to take the
    // old record back when the write is undone.
    for (i, d) in f.drives.iter().enumerate() {
        match i {
            0..3 => d.fail_record_writes(true),
            _ => d.fail_record_writes_after(1),
        }
    }
    let err = f.put("k", &pattern(1000, 13)).await.unwrap_err();
    assert!(matches!(err, Error::Quorum(_)), "{err:?}");
    f.fail_records_on(0);
    // Those three hold neither record now: repair is told to look at the key.
    let mut hinted = 0;
    for (i, d) in f.drives.iter().enumerate() {
        let held = d.get_version("b", "k", "null").await.unwrap().is_some();
        assert_eq!(held, i < 3, "drive {i}");
        let hints = d.list_hints(b"", 10).await.unwrap();
        hinted += usize::from(hints.iter().any(|h| h.key == "k"));
    }
    assert!(hinted > 0, "no drive holds a heal hint for the key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undo_puts_nothing_back_where_a_delete_came_first() {
    let f = Fixture::new().await;
    f.put("k", &pattern(1000, 251)).await.unwrap();
    // Three drives fail the new record; on the three that take it, a DELETE of the key lands
    // right after the write, before its undo.
    for (i, d) in f.drives.iter().enumerate() {
        if i < 3 {
            d.fail_record_writes(true);
        } else {
            d.delete_after_next_record_write();
        }
    }
    let err = f.put("k", &pattern(1000, 13)).await.unwrap_err();
    assert!(matches!(err, Error::Quorum(_)), "{err:?}");
    f.fail_records_on(0);
    // The DELETE has the last word there: the replaced object is not written back under it.
    for d in &f.drives[3..] {
        assert_eq!(d.get_version("b", "k", "null").await.unwrap(), None);
    }
}

/// A client that takes each 4 MiB batch more slowly than the hedge delay (500 ms) must not
/// make the data drives look slow: no parity is asked for and no drive is noted as slow (a
/// remote drive so noted too often is marked offline). Batches read ahead run on their own
/// tasks, so their answers are taken as they come; before, such a batch could sit unpolled
/// with its hedge timer running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_gets_its_object_without_parity_reads() {
    let f = Fixture::new().await;
    // Ten batches of four 1 MiB stripes.
    let data = pattern(40 << 20, 251);
    f.put("slow", &data).await.unwrap();
    let reads = || f.drives.iter().map(|d| d.shard_reads()).sum::<u64>();
    let before = reads();
    let reader = f.set.open_object("b", "slow", None).await.unwrap();
    let mut stream = reader.stream(0, data.len() as u64).await.unwrap();
    let mut out = Vec::new();
    let mut pause_at = 4 << 20;
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
        if out.len() >= pause_at {
            tokio::time::sleep(std::time::Duration::from_millis(600)).await;
            pause_at += 4 << 20;
        }
    }
    assert!(out == data, "the object read back differs");
    // One read of each data shard per batch, no parity, and no drive taken for slow.
    assert_eq!(reads() - before, 10 * 4);
    let slow: Vec<u64> = f.drives.iter().map(|d| d.slow_notes()).collect();
    assert_eq!(slow, vec![0; 6], "calls abandoned as slow, per drive");
}

/// A read that waits for `meeting_quorum` answers shares a drive with every write quorum,
/// also where `k < m` and two write quorums need not meet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_quorum_meets_every_write_quorum() {
    for (k, m, want) in [
        (4, 2, 4),
        (3, 3, 4),
        (2, 2, 3),
        (2, 4, 5),
        (1, 2, 3),
        (12, 4, 12),
    ] {
        let dirs: Vec<tempfile::TempDir> =
            (0..k + m).map(|_| tempfile::tempdir().unwrap()).collect();
        let drives = dirs
            .iter()
            .map(|d| Arc::new(LocalDrive::open(d.path()).unwrap()) as Arc<dyn Drive>)
            .collect();
        let set = ErasureSet::new(drives, Codec::new(k, m, 1 << 20).unwrap(), 0);
        let (read, write) = (set.meeting_quorum(), set.write_quorum());
        assert_eq!(read, want, "{k}+{m}");
        assert!(
            read + write > k + m,
            "{k}+{m}: {read} and {write} need not meet"
        );
        assert!(read <= k + m && read >= write, "{k}+{m}");
    }
}

/// A heal whose write a drive refuses, because a tag change reached that drive after the heal
/// read the copies, is not complete: the drive keeps its corrupt shard with the new tags, and
/// the repair keeps the hint. The next heal takes the rebuilt shard there under the new tags.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heal_that_a_tag_change_overtook_is_not_complete() {
    let f = Fixture::new().await;
    f.put("small", &pattern(1000, 251)).await.unwrap();
    let good = f.drives[0].get_version("b", "small", "null").await.unwrap();
    let good = good.unwrap();
    // Drive 0's inline shard is corrupt.
    let mut bad = good.clone();
    let frame = bad.inline.as_mut().expect("an inline object");
    let last = frame.len() - 1;
    frame[last] ^= 0xff;
    f.drives[0]
        .delete_version("b", "small", "null")
        .await
        .unwrap();
    f.drives[0].put_version("b", "small", &bad).await.unwrap();
    // Just before the heal's write reaches drive 0, a tag change lands there.
    let mut tagged = bad.clone();
    tagged.tags.insert("t".into(), "v".into());
    tagged.meta_ns = super::now_ns();
    f.drives[0].put_before_next_record_write(tagged.clone());
    let report = f
        .set
        .heal_object("b", "small", "null", false)
        .await
        .unwrap();
    assert!(!report.complete, "{report:?}");
    let kept = f.drives[0].get_version("b", "small", "null").await.unwrap();
    assert_eq!(kept.unwrap(), tagged);
    // The next heal reads the change, and every drive ends with the tags and a whole shard.
    let report = f
        .set
        .heal_object("b", "small", "null", false)
        .await
        .unwrap();
    assert!(report.complete, "{report:?}");
    for d in &f.drives {
        let c = d.get_version("b", "small", "null").await.unwrap().unwrap();
        assert_eq!(
            (c.tags.clone(), c.meta_ns),
            (tagged.tags.clone(), tagged.meta_ns)
        );
    }
    let healed = f.drives[0].get_version("b", "small", "null").await.unwrap();
    assert_eq!(healed.unwrap().inline, good.inline);
    assert_eq!(f.get("small").await.unwrap(), pattern(1000, 251));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_change_two_drives_missed_is_read_and_healed() {
    let f = Fixture::new().await;
    let tags: std::collections::BTreeMap<String, String> =
        [("color".to_string(), "blue".to_string())].into();
    // An inline object (its bytes live in the records) and one in shard files.
    for (key, size) in [("small", 1000usize), ("large", 3 << 20)] {
        f.put(key, &pattern(size, 251)).await.unwrap();
        // The first two drives a read of the key asks were away: the change lands on the
        // four others, a write quorum.
        let away: Vec<usize> = f.set.distribution("b", key)[..2]
            .iter()
            .map(|&p| usize::from(p))
            .collect();
        for (i, d) in f.drives.iter().enumerate() {
            d.fail_record_writes(away.contains(&i));
        }
        let t = tags.clone();
        f.set
            .update_version("b", key, None, move |v| v.tags = t.clone())
            .await
            .unwrap();
        f.fail_records_on(0);
        for &i in &away {
            let stale = f.drives[i]
                .get_version("b", key, "null")
                .await
                .unwrap()
                .unwrap();
            assert!(stale.tags.is_empty(), "{key}");
        }
        // Whichever `k` drives a read asks, and when it asks them all, the change shows.
        assert_eq!(
            f.set.open_object("b", key, None).await.unwrap().info.tags,
            tags,
            "{key}"
        );
        let (rec, _) = f.set.quorum_version("b", key, None).await.unwrap();
        assert_eq!(rec.tags, tags, "{key}");
        // The drives that missed it are named in a hint, and the heal brings them up to date,
        // each copy keeping its own shard.
        let took = (0..6).find(|i| !away.contains(i)).unwrap();
        let hints = f.drives[took].list_hints(b"", 10).await.unwrap();
        assert!(hints.iter().any(|h| h.key == key), "{key}: {hints:?}");
        let drives = &f.drives;
        let before: Vec<_> = away
            .iter()
            .map(|&i| async move {
                drives[i]
                    .get_version("b", key, "null")
                    .await
                    .unwrap()
                    .unwrap()
            })
            .collect();
        let before = futures::future::join_all(before).await;
        let report = f.set.heal_object("b", key, "null", false).await.unwrap();
        assert!(
            report.complete && report.records_written == 2,
            "{key}: {report:?}"
        );
        for (&i, old) in away.iter().zip(before) {
            let healed = f.drives[i]
                .get_version("b", key, "null")
                .await
                .unwrap()
                .unwrap();
            assert_eq!(healed.tags, tags, "{key}");
            assert_eq!(healed.layout.shard_index, old.layout.shard_index, "{key}");
            assert_eq!(healed.inline, old.inline, "{key}");
        }
        assert_eq!(f.get(key).await.unwrap(), pattern(size, 251), "{key}");
    }
}
