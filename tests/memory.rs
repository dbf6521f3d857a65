//! Memory per request stays bounded whatever the object's size (issue 7: at most 64 MiB per
//! concurrent large PUT or GET). Two objects of hundreds of MiB go up at once, from a file,
//! with the SDK's default checksum (an aws-chunked body with a CRC32 trailer), and come back
//! at once; every process's peak resident memory (`VmHWM`, which misses no spike) grows by
//! less than 64 MiB per request in flight, and every byte read back is the byte written. Once
//! through `tessera server`, once through a gateway and six nodes.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use aws_sdk_s3::primitives::ByteStream;
use common::cluster::TestCluster;
use common::TestServer;
use futures::future::join_all;

const STREAMS: usize = 2;
const PER_REQUEST: u64 = 64 << 20;

/// A file of `size` bytes, a different pseudo-random MiB at each offset (so that a block
/// read back from the wrong place cannot pass for the right one), and its BLAKE3 hash.
fn object_file(dir: &Path, size: usize) -> (PathBuf, blake3::Hash) {
    let path = dir.join("object");
    let mut hash = blake3::Hasher::new();
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for i in 0..size >> 20 {
        let mib = common::data(1 << 20, i as u64);
        hash.update(&mib);
        f.write_all(&mib).unwrap();
    }
    f.flush().unwrap();
    (path, hash.finalize())
}

/// PUTs `src` as `STREAMS` objects at once, then GETs them at once, hashing each body as it
/// arrives (the test holds no object in memory either), and checks every byte.
async fn round_trip(c: &aws_sdk_s3::Client, src: &Path, size: usize, want: blake3::Hash) {
    c.create_bucket().bucket("mem").send().await.unwrap();
    let keys: Vec<String> = (0..STREAMS).map(|i| format!("big-{i}")).collect();
    let puts = keys.iter().map(|key| async move {
        c.put_object()
            .bucket("mem")
            .key(key)
            .body(ByteStream::from_path(src).await.unwrap())
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e:?}"))
    });
    join_all(puts).await;
    let gets = keys.iter().map(|key| async move {
        let resp = c
            .get_object()
            .bucket("mem")
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("get {key}: {e:?}"));
        assert_eq!(resp.content_length(), Some(size as i64));
        let mut body = resp.body;
        let mut got = blake3::Hasher::new();
        let mut len = 0usize;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.unwrap_or_else(|e| panic!("get {key}: body: {e:?}"));
            len += chunk.len();
            got.update(&chunk);
        }
        (len, got.finalize())
    });
    for (key, (len, got)) in keys.iter().zip(join_all(gets).await) {
        assert_eq!(len, size, "{key}: length read back");
        assert_eq!(
            got, want,
            "{key}: bytes read back differ from those written"
        );
    }
}

/// Asserts that `peak` is within `PER_REQUEST` per stream of `start`.
fn check_peak(who: &str, start: u64, peak: u64, size: usize) {
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    eprintln!(
        "{who}: RSS {:.0} MiB before, peak {:.0} MiB over {STREAMS} PUTs and GETs of {} MiB",
        mib(start),
        mib(peak),
        size >> 20
    );
    assert!(
        peak < start + STREAMS as u64 * PER_REQUEST,
        "{who}: peak RSS {:.0} MiB over {STREAMS} concurrent {} MiB PUTs and GETs: more than \
         {} MiB per request above the {:.0} MiB before them",
        mib(peak),
        size >> 20,
        PER_REQUEST >> 20,
        mib(start)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_objects_stream_through_the_server_in_bounded_memory() {
    const SIZE: usize = 512 << 20;
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(&dir.path().join("data"), &[]);
    let (src, want) = object_file(dir.path(), SIZE);
    let start = s.rss();
    round_trip(&s.client().await, &src, SIZE, want).await;
    check_peak("server", start, s.peak_rss(), SIZE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_objects_stream_through_a_cluster_in_bounded_memory() {
    const SIZE: usize = 256 << 20;
    let cl = TestCluster::start(6, 2, 1);
    cl.wait_ready(0).await;
    let (src, want) = object_file(cl.dir.path(), SIZE);
    let procs: Vec<_> = cl.gateways.iter().chain(&cl.nodes).collect();
    let start: Vec<u64> = procs.iter().map(|p| p.rss()).collect();
    round_trip(&cl.client(0), &src, SIZE, want).await;
    for (p, start) in procs.iter().zip(start) {
        check_peak(&p.name, start, p.peak_rss(), SIZE);
    }
}
