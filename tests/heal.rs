//! Read repair: a GET that had to reconstruct (or found metadata copies missing) makes the
//! server rebuild the missing shards and copies, so redundancy is back: afterwards two OTHER
//! drives can be lost and everything still reads.

mod common;

use aws_sdk_s3::primitives::ByteStream;
use common::{data, shard_files, TestServer};

const SIZES: [usize; 4] = [1000, 300_000, 1 << 20, (3 << 20) + 99];

async fn read_all(s: &TestServer) {
    let c = s.client().await;
    for (i, n) in SIZES.iter().enumerate() {
        let got = c
            .get_object()
            .bucket("heal")
            .key(format!("o{i}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("o{i}: {e:?}"))
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes();
        assert!(got[..] == data(*n, i as u64)[..], "o{i} differs");
    }
}

/// Waits (bounded) until `cond` holds.
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..100 {
        if cond() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within 10 s");
}

#[tokio::test]
async fn reads_heal_lost_shards_and_wiped_drives() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let mut s = TestServer::start(&root, &[]);
    let c = s.client().await;
    c.create_bucket().bucket("heal").send().await.unwrap();
    for (i, n) in SIZES.iter().enumerate() {
        c.put_object()
            .bucket("heal")
            .key(format!("o{i}"))
            .body(ByteStream::from(data(*n, i as u64)))
            .send()
            .await
            .unwrap();
    }
    let per_drive = shard_files(&root.join("drive-1")).len();
    assert!(per_drive >= 3);
    s.kill();
    // Drive 1 loses its shard files; drive 4 is wiped whole (format, metadata, shards).
    for f in shard_files(&root.join("drive-1")) {
        std::fs::remove_file(f).unwrap();
    }
    std::fs::remove_dir_all(root.join("drive-4")).unwrap();
    let mut s = TestServer::start(&root, &[]);
    read_all(&s).await;
    // The reads asked for heals: the shard files come back on both drives.
    eventually("shards rebuilt on drive-1 and drive-4", || {
        shard_files(&root.join("drive-1")).len() == per_drive
            && shard_files(&root.join("drive-4")).len() == per_drive
    })
    .await;
    // Give the healer a moment to write the last metadata copies after the last shard.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    s.kill();
    // Now two OTHER drives go: only the healed copies make this readable.
    for d in [0, 5] {
        std::fs::remove_dir_all(root.join(format!("drive-{d}"))).unwrap();
    }
    let mut s = TestServer::start(&root, &[]);
    read_all(&s).await;
    assert!(s.alive());
    assert!(s.log_text().contains("healed"));
}

/// Repair reads only `k` of the good shards to rebuild a lost one. When one of those turns
/// out corrupt (its size is right, so a quick check passed it), the heal must rebuild that
/// shard too, from the shards it had not read, and verify both.
#[tokio::test]
async fn a_shard_found_corrupt_while_rebuilding_another_is_rebuilt_too() {
    use futures::StreamExt;
    use tessera::object::PutOptions;

    let dir = tempfile::tempdir().unwrap();
    let set = common::local_set(dir.path(), 0);
    set.create_bucket("heal", None).await.unwrap();
    let body = data((5 << 20) + 4321, 9);
    let stream: tessera::object::BodyStream = futures::stream::iter(
        body.chunks(1 << 20)
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    )
    .boxed();
    let rec = set
        .put_object("heal", "o", PutOptions::default(), stream)
        .await
        .unwrap();
    let dist = rec.layout.positions();
    let shard_file = |shard: usize| {
        dir.path()
            .join(format!("drive-{}", dist[shard]))
            .join("shards/heal")
            .join(&rec.data_dir[..2])
            .join(&rec.data_dir)
    };
    // Shard 5 (parity) is lost; shard 0, which a rebuild always reads first, rots in its
    // second stripe and in its last one, so in both batches of reads (4 stripes each).
    std::fs::remove_file(shard_file(5)).unwrap();
    let rotten = shard_file(0);
    let mut bytes = std::fs::read(&rotten).unwrap();
    for at in [bytes.len() / 3, bytes.len() - 100] {
        bytes[at] ^= 0x40;
    }
    std::fs::write(&rotten, &bytes).unwrap();

    let report = set
        .heal_object("heal", "o", &rec.version_id, false)
        .await
        .unwrap();
    assert_eq!(report.shards_rebuilt, 2, "{report:?}");
    assert!(report.complete, "{report:?}");
    assert!(
        std::fs::read(&rotten).unwrap() != bytes,
        "shard 0 rewritten"
    );
    // A deep heal now finds every shard sound.
    let again = set
        .heal_object("heal", "o", &rec.version_id, true)
        .await
        .unwrap();
    assert!(!again.repaired() && again.complete, "{again:?}");
    // And the object reads whole without shards 1 and 2.
    std::fs::remove_file(shard_file(1)).unwrap();
    std::fs::remove_file(shard_file(2)).unwrap();
    let reader = set.open_object("heal", "o", None).await.unwrap();
    let mut got = Vec::new();
    let mut s = reader.stream(0, body.len() as u64).await.unwrap();
    while let Some(chunk) = s.next().await {
        got.extend_from_slice(&chunk.unwrap());
    }
    assert!(got == body, "object differs after the heal");
}
