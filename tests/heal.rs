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
