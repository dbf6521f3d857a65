//! Degraded reads: shards deleted or corrupted on up to `m` drives while the server is down;
//! every object still reads back byte for byte. Beyond `m`, reads fail with 503.

mod common;

use common::cluster::http_status;

use aws_sdk_s3::primitives::ByteStream;
use common::{code, data, shard_files, status, TestServer};

/// inline, one partial stripe, one full stripe, several stripes with a tail.
const SIZES: [usize; 5] = [0, 1000, 300_000, 1 << 20, (4 << 20) + 4321];

async fn write_all(s: &TestServer) {
    let c = s.client().await;
    c.create_bucket().bucket("safe").send().await.unwrap();
    for (i, n) in SIZES.iter().enumerate() {
        c.put_object()
            .bucket("safe")
            .key(format!("dir/obj-{n}"))
            .body(ByteStream::from(data(*n, i as u64)))
            .send()
            .await
            .unwrap();
    }
    // A multipart object: two parts, each with its own shard files.
    let id = c
        .create_multipart_upload()
        .bucket("safe")
        .key("dir/multipart")
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_string();
    let mut parts = Vec::new();
    for (n, body) in [(1, data(5 << 20, 100)), (2, data(777_777, 101))] {
        let r = c
            .upload_part()
            .bucket("safe")
            .key("dir/multipart")
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap();
        parts.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(n)
                .e_tag(r.e_tag().unwrap())
                .build(),
        );
    }
    c.complete_multipart_upload()
        .bucket("safe")
        .key("dir/multipart")
        .upload_id(&id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
}

fn multipart_bytes() -> Vec<u8> {
    [data(5 << 20, 100), data(777_777, 101)].concat()
}

async fn read_all(s: &TestServer) {
    let c = s.client().await;
    for (i, n) in SIZES.iter().enumerate() {
        let key = format!("dir/obj-{n}");
        let got = c
            .get_object()
            .bucket("safe")
            .key(&key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("get {key}: {e:?}"))
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes();
        assert!(got[..] == data(*n, i as u64)[..], "{key} differs");
        let r = c
            .get_object()
            .bucket("safe")
            .key(&key)
            .range("bytes=10-")
            .send()
            .await;
        if *n > 10 {
            let got = r.unwrap().body.collect().await.unwrap().into_bytes();
            assert!(got[..] == data(*n, i as u64)[10..], "{key} range differs");
        }
        let h = c
            .head_object()
            .bucket("safe")
            .key(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(h.content_length(), Some(*n as i64));
    }
    let got = c
        .get_object()
        .bucket("safe")
        .key("dir/multipart")
        .send()
        .await
        .unwrap_or_else(|e| panic!("get multipart: {e:?}"))
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert!(got[..] == multipart_bytes()[..], "multipart object differs");
    let l = c
        .list_objects_v2()
        .bucket("safe")
        .prefix("dir/")
        .send()
        .await
        .unwrap();
    assert_eq!(l.key_count(), Some(SIZES.len() as i32 + 1));
}

#[tokio::test]
async fn shards_deleted_on_two_drives() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut s = TestServer::start(&data_dir, &[]);
    write_all(&s).await;
    s.kill();
    let mut removed = 0;
    for d in [1, 4] {
        for f in shard_files(&data_dir.join(format!("drive-{d}"))) {
            std::fs::remove_file(f).unwrap();
            removed += 1;
        }
    }
    assert!(
        removed >= 6,
        "expected shard files to delete, found {removed}"
    );
    let mut s = TestServer::start(&data_dir, &[]);
    read_all(&s).await;
    assert!(s.alive());
    assert!(!s.log_text().contains("panicked"));
}

#[tokio::test]
async fn two_drives_wiped_entirely() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut s = TestServer::start(&data_dir, &[]);
    write_all(&s).await;
    s.kill();
    for d in [0, 5] {
        std::fs::remove_dir_all(data_dir.join(format!("drive-{d}"))).unwrap();
    }
    let s = TestServer::start(&data_dir, &[]);
    read_all(&s).await;
}

#[tokio::test]
async fn bytes_flipped_in_shards_of_two_drives() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut s = TestServer::start(&data_dir, &[]);
    write_all(&s).await;
    s.kill();
    let mut flipped = 0;
    for d in [2, 3] {
        for f in shard_files(&data_dir.join(format!("drive-{d}"))) {
            let mut b = std::fs::read(&f).unwrap();
            // One byte in every 64 KiB, and the first block's hash.
            for i in (0..b.len()).step_by(65536) {
                b[i] ^= 0xA5;
            }
            let last = b.len() - 1;
            b[last] ^= 0x01;
            std::fs::write(&f, b).unwrap();
            flipped += 1;
        }
    }
    assert!(flipped >= 6);
    let mut s = TestServer::start(&data_dir, &[]);
    read_all(&s).await;
    assert!(s.alive());
}

#[tokio::test]
async fn three_of_six_drives_gone_is_503_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut s = TestServer::start(&data_dir, &[]);
    write_all(&s).await;
    s.kill();
    for d in [0, 2, 4] {
        std::fs::remove_dir_all(data_dir.join(format!("drive-{d}"))).unwrap();
    }
    let mut s = TestServer::start(&data_dir, &[]);
    let c = s.client().await;
    for n in SIZES {
        let e = c
            .get_object()
            .bucket("safe")
            .key(format!("dir/obj-{n}"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), 503, "obj-{n}");
        assert_eq!(code(&e), "ServiceUnavailable");
    }
    // Shards gone (not metadata) on three drives: also 503, for objects with shard files.
    assert!(s.alive());
    assert!(!s.log_text().contains("panicked"));
}

#[tokio::test]
async fn three_drives_lose_shard_files_is_503() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut s = TestServer::start(&data_dir, &[]);
    write_all(&s).await;
    s.kill();
    for d in [1, 2, 3] {
        for f in shard_files(&data_dir.join(format!("drive-{d}"))) {
            std::fs::remove_file(f).unwrap();
        }
    }
    let mut s = TestServer::start(&data_dir, &[]);
    let c = s.client().await;
    for key in ["dir/obj-300000", "dir/obj-4198625", "dir/multipart"] {
        let e = c
            .get_object()
            .bucket("safe")
            .key(key)
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), 503, "{key}");
    }
    // Inline objects live in metadata and still read.
    let ok = c
        .get_object()
        .bucket("safe")
        .key("dir/obj-1000")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.body.collect().await.unwrap().into_bytes().len(), 1000);
    assert!(s.alive());
}

#[tokio::test]
async fn restart_serves_everything_and_ready_reflects_drives() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut s = TestServer::start(&data_dir, &[]);
    write_all(&s).await;
    let ready = http_status(&format!("{}/health/ready", s.admin_url));
    assert_eq!(ready, 200);
    assert_eq!(http_status(&format!("{}/health/live", s.admin_url)), 200);
    s.kill();
    let s = TestServer::start(&data_dir, &[]);
    read_all(&s).await;
    // Three drives vanish while running: the set has lost write quorum.
    for d in [0, 1, 2] {
        common::remove_live_dir(&data_dir.join(format!("drive-{d}")));
    }
    assert_eq!(http_status(&format!("{}/health/ready", s.admin_url)), 503);
    assert_eq!(http_status(&format!("{}/health/live", s.admin_url)), 200);
}

/// Two drives restored from a copy taken before the newest writes hold the older version of
/// every key. Reads ask `k` drives first (the key's data shard drives) and must still never
/// serve the older version, whether the stale drives are among those asked or not: 24 keys,
/// so that their shard orders put the stale drives everywhere; inline and shard-file objects.
#[tokio::test]
async fn drives_that_missed_the_newest_writes_never_serve_the_older_version() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let snap = dir.path().join("snap");
    let keys: Vec<String> = (0..24).map(|i| format!("k/{i}")).collect();
    let mut s = TestServer::start(&root, &[]);
    let c = s.client().await;
    c.create_bucket().bucket("stale").send().await.unwrap();
    put_each(&c, &keys, 0).await;
    s.kill();
    std::fs::create_dir_all(&snap).unwrap();
    for d in ["drive-0", "drive-1"] {
        let ok = std::process::Command::new("cp")
            .arg("-a")
            .arg(root.join(d))
            .arg(snap.join(d))
            .status()
            .unwrap();
        assert!(ok.success());
    }
    let mut s = TestServer::start(&root, &[]);
    let etags = put_each(&s.client().await, &keys, 1000).await;
    s.kill();
    for d in ["drive-0", "drive-1"] {
        std::fs::remove_dir_all(root.join(d)).unwrap();
        std::fs::rename(snap.join(d), root.join(d)).unwrap();
    }
    let s = TestServer::start(&root, &[]);
    let c = s.client().await;
    for (i, key) in keys.iter().enumerate() {
        let got = common::get_bytes(&c, "stale", key).await;
        assert!(
            got == data(stale_size(i), 1000 + i as u64),
            "GET {key} served the older version"
        );
        let head = c
            .head_object()
            .bucket("stale")
            .key(key)
            .send()
            .await
            .unwrap();
        assert_eq!(head.e_tag(), Some(etags[i].as_str()), "HEAD {key}");
    }
}

/// Object `i` of the stale-drive test: inline or in shard files, by turns.
fn stale_size(i: usize) -> usize {
    if i.is_multiple_of(2) {
        3000
    } else {
        300_000
    }
}

/// PUTs `keys[i]` with `data(stale_size(i), seed + i)`; returns the ETags.
async fn put_each(c: &aws_sdk_s3::Client, keys: &[String], seed: u64) -> Vec<String> {
    let mut etags = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let body = ByteStream::from(data(stale_size(i), seed + i as u64));
        let r = c
            .put_object()
            .bucket("stale")
            .key(key)
            .body(body)
            .send()
            .await
            .unwrap();
        etags.push(r.e_tag().unwrap().to_string());
    }
    etags
}
