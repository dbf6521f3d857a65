//! Background repair in `tessera server`: the scanner finds and rebuilds what no client read
//! asked for (deleted and bit-flipped shard files), a drive folder replaced by an empty one
//! while the server runs is rebuilt whole, and orphan shard files go. Each test ends by taking
//! two OTHER drives away: only restored redundancy lets everything read back byte for byte.

mod common;

use std::path::Path;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use common::{data, get_bytes, shard_files, TestServer};

const SIZES: [usize; 5] = [1000, 70_000, 300_000, 1 << 20, (3 << 20) + 99];
const BUCKET: &str = "repair";

/// Fast repair: a pass every second, every pass deep, orphans older than 1 s removed.
const FAST: [(&str, &str); 4] = [
    ("TESSERA_REPAIR_SCAN_INTERVAL", "1s"),
    ("TESSERA_REPAIR_DEEP_INTERVAL", "1s"),
    ("TESSERA_REPAIR_GRACE", "1s"),
    ("TESSERA_REPAIR_BANDWIDTH", "0"),
];

async fn write_all(s: &TestServer) -> Vec<(String, Vec<u8>)> {
    let c = s.client().await;
    c.create_bucket().bucket(BUCKET).send().await.unwrap();
    let mut out = Vec::new();
    for (i, n) in SIZES.iter().enumerate() {
        let key = format!("o{i}");
        let body = data(*n, i as u64);
        c.put_object()
            .bucket(BUCKET)
            .key(&key)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
        out.push((key, body));
    }
    // A multipart object of two parts (two shard files per drive).
    let body = data((5 << 20) + 4321, 77);
    common::put_multipart(&c, BUCKET, "mp", &body, 5 << 20)
        .await
        .unwrap();
    out.push(("mp".into(), body));
    out
}

async fn read_all(s: &TestServer, objects: &[(String, Vec<u8>)]) {
    let c = s.client().await;
    for (key, body) in objects {
        let got = get_bytes(&c, BUCKET, key).await;
        assert!(got == *body, "{key} differs after repair");
    }
}

/// The repair status of the server's one set, from `/health/ready`.
fn repair_status(s: &TestServer) -> serde_json::Value {
    let url = format!("{}/health/ready", s.admin_url);
    let body = common::cluster::http_body(&url);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["repair"][0].clone()
}

/// Waits (at most 60 s) until `cond` holds.
async fn eventually(what: &str, s: &TestServer, mut cond: impl FnMut() -> bool) {
    for _ in 0..600 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{what} did not happen within 60 s; status {}\n{}",
        repair_status(s),
        s.log_text()
    );
}

/// Waits until the scanner has finished a pass that started after this call.
async fn pass_finished(s: &TestServer) {
    let first = repair_status(s)["pass"].as_u64().unwrap_or(0);
    eventually("a full scanner pass", s, || {
        let st = repair_status(s);
        st["pass"].as_u64().unwrap_or(0) > first + 1
            || (st["pass"].as_u64().unwrap_or(0) > first && st["in_pass"] == false)
    })
    .await;
}

/// The log without its colour escapes.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn flip_byte(path: &Path, at: u64) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(at)).unwrap();
    f.read_exact(&mut b).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&[b[0] ^ 0x5a]).unwrap();
}

fn wipe(root: &Path, drives: &[usize]) {
    for d in drives {
        std::fs::remove_dir_all(root.join(format!("drive-{d}"))).unwrap();
    }
}

#[tokio::test]
async fn scanner_rebuilds_deleted_and_rotten_shards_that_nobody_read() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let mut s = TestServer::start(&root, &[]);
    let objects = write_all(&s).await;
    let per_drive = shard_files(&root.join("drive-0")).len();
    assert_eq!(
        per_drive, 6,
        "4 single-PUT shard files and 2 parts per drive"
    );
    s.kill();
    // Drive 1 loses every shard file; every shard file of drive 2 gets a flipped byte.
    for f in shard_files(&root.join("drive-1")) {
        std::fs::remove_file(f).unwrap();
    }
    for f in shard_files(&root.join("drive-2")) {
        let len = std::fs::metadata(&f).unwrap().len();
        flip_byte(&f, len / 2);
    }
    let mut s = TestServer::start_env(&root, &[], &FAST);
    // No client reads: only the scanner can find this.
    eventually("drive-1 shard files rebuilt", &s, || {
        shard_files(&root.join("drive-1")).len() == per_drive
    })
    .await;
    pass_finished(&s).await;
    pass_finished(&s).await;
    let st = repair_status(&s);
    assert!(
        st["healed"].as_u64().unwrap() >= 5,
        "all 5 versions with shard files healed: {st}"
    );
    assert_eq!(st["leader"], true);
    s.kill();
    wipe(&root, &[0, 5]);
    let mut s = TestServer::start(&root, &[]);
    read_all(&s, &objects).await;
    assert!(s.alive());
}

#[tokio::test]
async fn a_drive_replaced_while_serving_is_rebuilt_whole() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    // Scans are hourly: only the blank drive's own hint can start this rebuild.
    let mut s = TestServer::start_env(&root, &[], &[("TESSERA_REPAIR_BANDWIDTH", "0")]);
    let objects = write_all(&s).await;
    let per_drive = shard_files(&root.join("drive-0")).len();
    // Let the start-up pass finish so that what follows is the hint's doing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let d3 = root.join("drive-3");
    common::remove_live_dir(&d3);
    std::fs::create_dir(&d3).unwrap();
    // The server keeps serving while the drive is rebuilt.
    read_all(&s, &objects).await;
    eventually("drive-3 formatted and rebuilt", &s, || {
        d3.join("format.json").exists() && shard_files(&d3).len() == per_drive
    })
    .await;
    eventually("the rebuild pass finished", &s, || {
        repair_status(&s)["in_pass"] == false
    })
    .await;
    assert!(s
        .log_text()
        .contains("blank drive formatted into its place"));
    s.kill();
    // Records (inline objects too) and shards of drive 3 are back: lose two others.
    wipe(&root, &[0, 1]);
    let mut s = TestServer::start(&root, &[]);
    read_all(&s, &objects).await;
    assert!(s.alive());
}

#[tokio::test]
async fn orphan_shard_files_are_removed_and_live_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let mut s = TestServer::start(&root, &[]);
    let objects = write_all(&s).await;
    let live = shard_files(&root.join("drive-0")).len();
    s.kill();
    // An orphan: a shard file no record points at, as a crash between file and record leaves.
    let fan = root.join("drive-0/shards").join(BUCKET).join("ff");
    std::fs::create_dir_all(&fan).unwrap();
    let orphan = fan.join("ffffffff-0000-4000-8000-000000000000");
    std::fs::write(&orphan, b"left behind by a crash").unwrap();
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&orphan)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let mut s = TestServer::start_env(&root, &[], &FAST);
    eventually("the orphan removed", &s, || !orphan.exists()).await;
    pass_finished(&s).await;
    assert_eq!(shard_files(&root.join("drive-0")).len(), live);
    assert!(repair_status(&s)["orphans_removed"].as_u64().unwrap() >= 1);
    read_all(&s, &objects).await;
    assert!(s.alive());
}

/// A tmpfs mounted for the test, unmounted at the end.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Self {
        std::fs::create_dir_all(at).unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("run mount");
        assert!(
            st.success(),
            "mounting a tmpfs needs root (the full-disk test)"
        );
        Self(at.to_path_buf())
    }

    fn resize(&self, size: &str) {
        let st = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[tokio::test]
async fn a_full_drive_fails_its_writes_cleanly_and_is_healed_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    // Drive 5 is a 6 MiB file system: it fills up after a few objects.
    let small = Tmpfs::mount(&root.join("drive-5"), "6m");
    let mut s = TestServer::start_env(&root, &[], &FAST);
    let c = s.client().await;
    c.create_bucket().bucket(BUCKET).send().await.unwrap();
    let mut objects = Vec::new();
    for i in 0..40 {
        let key = format!("full/{i}");
        let body = data(if i % 4 == 0 { 5000 } else { 1 << 20 }, 900 + i);
        c.put_object()
            .bucket(BUCKET)
            .key(&key)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PUT {key} with one drive full: {e:?}\nserver log:\n{}",
                    s.log_text()
                )
            });
        objects.push((key, body));
    }
    // The drive is full and missed writes; everything still reads.
    let on_small = shard_files(&root.join("drive-5")).len();
    let on_other = shard_files(&root.join("drive-0")).len();
    assert!(
        on_small < on_other,
        "the small drive should have run out: {on_small} vs {on_other} shard files"
    );
    read_all(&s, &objects).await;
    let log = s.log_text();
    assert!(
        log.contains("space"),
        "no out-of-space error logged:\n{log}"
    );
    // Every shard file the full drive kept is whole: its size is what its object needs.
    let sizes: std::collections::HashMap<String, u64> = shard_files(&root.join("drive-0"))
        .into_iter()
        .map(|p| {
            let len = std::fs::metadata(&p).unwrap().len();
            (p.file_name().unwrap().to_string_lossy().into_owned(), len)
        })
        .collect();
    for f in shard_files(&root.join("drive-5")) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let len = std::fs::metadata(&f).unwrap().len();
        assert_eq!(
            Some(&len),
            sizes.get(&name),
            "{name} is cut short on the full drive"
        );
    }
    // Space comes back: repair fills the drive in, without a restart.
    small.resize("256m");
    eventually("the full drive healed once space returned", &s, || {
        shard_files(&root.join("drive-5")).len() == on_other
    })
    .await;
    pass_finished(&s).await;
    s.kill();
    wipe(&root, &[0, 1]);
    let mut s = TestServer::start(&root, &[]);
    read_all(&s, &objects).await;
    assert!(s.alive());
    drop(s);
    drop(small);
}

#[tokio::test]
async fn a_pass_interrupted_by_a_crash_resumes_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let mut s = TestServer::start(&root, &[]);
    let c = s.client().await;
    c.create_bucket().bucket(BUCKET).send().await.unwrap();
    // 600 objects just above the inline limit: three scanner pages of 250 keys.
    let body = data(70_000, 3);
    for batch in 0..(600 / 20) {
        let puts = (0..20).map(|i| {
            c.put_object()
                .bucket(BUCKET)
                .key(format!("many/{:04}", batch * 20 + i))
                .body(ByteStream::from(body.clone()))
                .send()
        });
        for r in futures::future::join_all(puts).await {
            r.unwrap();
        }
    }
    s.kill();
    // Deep passes throttled to 4 MiB/s: each page of 250 versions takes seconds.
    let slow = [
        ("TESSERA_REPAIR_SCAN_INTERVAL", "1s"),
        ("TESSERA_REPAIR_DEEP_INTERVAL", "1s"),
        ("TESSERA_REPAIR_BANDWIDTH", "4MiB"),
    ];
    let mut s = TestServer::start_env(&root, &[], &slow);
    let mut during = serde_json::Value::Null;
    eventually("a deep pass past its first page", &s, || {
        let st = repair_status(&s);
        let going = st["in_pass"] == true && st["deep"] == true && st["after_hex"] != "";
        if going {
            during = st;
        }
        going
    })
    .await;
    let pass = during["pass"].as_u64().unwrap();
    s.kill();
    let mut s = TestServer::start_env(&root, &[], &slow);
    eventually("the restarted server leading the set", &s, || {
        repair_status(&s)["leader"] == true
    })
    .await;
    // The checkpoint brought the pass back where it was, not to its start.
    let log = strip_ansi(&s.log_text());
    let resumed = log
        .lines()
        .rfind(|l| l.contains("leading repair of the set"))
        .unwrap()
        .to_string();
    assert!(
        resumed.contains(&format!("pass={pass}")) && resumed.contains("in_pass=true"),
        "resumed: {resumed}"
    );
    assert!(s.alive());
}

#[tokio::test]
async fn versions_below_quorum_are_removed_after_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let mut s = TestServer::start(&root, &[]);
    let c = s.client().await;
    c.create_bucket().bucket(BUCKET).send().await.unwrap();
    for key in ["gone", "kept"] {
        c.put_object()
            .bucket(BUCKET)
            .key(key)
            .body(ByteStream::from(data(300_000, 5)))
            .send()
            .await
            .unwrap();
    }
    s.kill();
    // Three of six drives lost: "gone" keeps 3 copies, fewer than k = 4, as a write that
    // failed half-way leaves it. ("kept" is written again below, at full quorum.)
    wipe(&root, &[0, 1, 2]);
    let mut s = TestServer::start_env(&root, &[], &FAST);
    let c = s.client().await;
    c.put_object()
        .bucket(BUCKET)
        .key("kept")
        .body(ByteStream::from(data(1000, 6)))
        .send()
        .await
        .unwrap();
    eventually("the version below quorum removed", &s, || {
        repair_status(&s)["partial_removed"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    let e = c
        .get_object()
        .bucket(BUCKET)
        .key("gone")
        .send()
        .await
        .unwrap_err();
    assert_eq!(common::code(&e), "NoSuchKey");
    assert_eq!(get_bytes(&c, BUCKET, "kept").await, data(1000, 6));
    // Its shard files go with the orphan sweep.
    eventually("its shard files removed", &s, || {
        shard_files(&root).is_empty()
    })
    .await;
    assert!(s.alive());
}
