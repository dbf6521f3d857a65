//! The chaos suite: a 6-node, 2-gateway cluster on loopback (two erasure sets of 4+2, one
//! drive of each set per node) takes real faults while clients write objects of mixed sizes
//! (inline, one stripe, several stripes, multipart). After each scenario:
//! - every acknowledged object reads back byte for byte, through both gateways;
//! - no request took longer than `HUNG`;
//! - repair restores full redundancy: every drive of a set holds the same shard files, no
//!   heal hint is left, and with any two nodes down, everything still reads (so every
//!   metadata copy agrees, since a read needs 4 identical copies).
//!
//! Metadata rot (scenario 3b) is made on stopped nodes, so that the databases read it back
//! on restart rather than from their caches.
//!
//! Parity shards are not read by a healthy GET, so rot in them is found by the scanner's deep
//! pass (every 15 s here).
//!
//! It prints a table: scenario, objects written, acknowledged, read back intact, lost,
//! repaired, and seconds to full redundancy.
//!
//! It needs root: a cgroup and an iptables rule cut the gateways (only) off one node. The
//! full-disk scenario (a tmpfs drive) is in `tests/repair.rs`.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use common::cluster::{http_body, TestCluster};
use common::data;

/// A request slower than this counts as hung.
const HUNG: Duration = Duration::from_secs(60);
const BUCKET: &str = "chaos";
/// Sizes cycled through: inline, one stripe, several stripes; every 8th object is multipart.
const SIZES: [usize; 3] = [3_000, 300_000, (2 << 20) + 12_345];

const REPAIR: &str = r#"[repair]
scan_interval = "2s"
deep_interval = "15s"
bandwidth = "0"
grace = "3s"
"#;

/// One acknowledged (or failed) write.
#[derive(Clone)]
struct Written {
    key: String,
    body: Vec<u8>,
    acked: bool,
    /// Seconds the write took.
    secs: f64,
}

#[derive(Default)]
struct Row {
    name: String,
    written: usize,
    acked: usize,
    intact: usize,
    lost: usize,
    repaired: u64,
    secs_to_full: f64,
    slowest_write: f64,
}

struct Chaos {
    cluster: TestCluster,
    /// The gateways' cgroup, so that firewall rules can cut gateways (only) off a node.
    cgroup: Cgroup,
    all: Vec<Written>,
    rows: Vec<Row>,
    seed: u64,
    progress: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Chaos {
    async fn new() -> Self {
        let cgroup = Cgroup::create();
        let cluster = TestCluster::start_full(6, 2, 2, REPAIR, Some(cgroup.path.clone()));
        cluster.wait_ready(0).await;
        cluster.wait_ready(1).await;
        cluster
            .client(0)
            .create_bucket()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        Self {
            cluster,
            cgroup,
            all: Vec::new(),
            rows: Vec::new(),
            seed: 0,
            progress: Default::default(),
        }
    }

    fn client(&self, i: usize) -> aws_sdk_s3::Client {
        self.cluster.client(i)
    }

    /// Starts writing `count` objects in the background, alternating gateways; `done`
    /// counts the writes finished so far.
    fn start_writes(
        &mut self,
        prefix: &str,
        count: usize,
    ) -> tokio::task::JoinHandle<Vec<Written>> {
        self.progress.store(0, std::sync::atomic::Ordering::SeqCst);
        let done = self.progress.clone();
        let clients = [self.client(0), self.client(1)];
        let prefix = prefix.to_string();
        let seed = self.seed;
        self.seed += count as u64;
        tokio::spawn(async move {
            let mut out = Vec::new();
            for i in 0..count {
                let c = &clients[i % 2];
                let key = format!("{prefix}/{i:04}");
                let multipart = i % 8 == 7;
                let body = if multipart {
                    data((5 << 20) + 777, seed + i as u64)
                } else {
                    data(SIZES[i % SIZES.len()], seed + i as u64)
                };
                let started = Instant::now();
                let acked = tokio::time::timeout(HUNG, async {
                    if multipart {
                        put_multipart(c, &key, &body).await
                    } else {
                        c.put_object()
                            .bucket(BUCKET)
                            .key(&key)
                            .body(ByteStream::from(body.clone()))
                            .send()
                            .await
                            .is_ok()
                    }
                })
                .await
                .unwrap_or_else(|_| panic!("PUT {key} hung for {:?}", started.elapsed()));
                let secs = started.elapsed().as_secs_f64();
                out.push(Written {
                    key,
                    body,
                    acked,
                    secs,
                });
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            out
        })
    }

    /// Waits until the background writes have finished `n`.
    async fn wait_progress(&self, n: usize) {
        while self.progress.load(std::sync::atomic::Ordering::SeqCst) < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Every acknowledged object, through both gateways: returns (intact, lost).
    async fn verify(&self, objects: &[Written]) -> (usize, usize) {
        let mut intact = 0;
        let mut lost = Vec::new();
        for w in objects {
            let mut ok = true;
            for g in 0..2 {
                match get(&self.client(g), &w.key).await {
                    Ok(b) if b == w.body => {}
                    Ok(b) => {
                        ok = false;
                        lost.push(format!(
                            "{} via gateway {g}: {} bytes differ",
                            w.key,
                            b.len()
                        ));
                    }
                    Err(e) if w.acked => {
                        ok = false;
                        lost.push(format!("{} via gateway {g}: {e}", w.key));
                    }
                    // A write that was not acknowledged may or may not exist; never wrong.
                    Err(_) => {}
                }
            }
            if ok && w.acked {
                intact += 1;
            }
        }
        assert!(
            lost.is_empty(),
            "objects lost or wrong:\n{}",
            lost.join("\n")
        );
        (intact, lost.len())
    }

    /// Healed versions counted by every node's repair workers.
    fn repaired(&self) -> u64 {
        self.node_repair()
            .iter()
            .map(|s| s["healed"].as_u64().unwrap_or(0))
            .sum()
    }

    fn node_repair(&self) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        for n in &self.cluster.nodes {
            let Some(url) = n.urls.first() else { continue };
            let body = http_body(&format!("{url}/health/ready"));
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) {
                if let Some(list) = v["repair"].as_array() {
                    out.extend(list.iter().cloned());
                }
            }
        }
        out
    }

    /// Shard file names of drive `d` of node `n`.
    fn files(&self, n: usize, d: usize) -> BTreeSet<String> {
        common::shard_files(&self.drive(n, d))
            .into_iter()
            .filter_map(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
            .collect()
    }

    fn drive(&self, n: usize, d: usize) -> PathBuf {
        self.cluster.dir.path().join(format!("node{n}/d{d}"))
    }

    /// Why the cluster is not at full redundancy yet, if it is not.
    fn not_full(&self) -> Option<String> {
        for d in 0..2 {
            let first = self.files(0, d);
            for n in 1..6 {
                let other = self.files(n, d);
                if other != first {
                    return Some(format!(
                        "set {d}: node0 holds {} shard files, node{n} {}",
                        first.len(),
                        other.len()
                    ));
                }
            }
        }
        let status = self.node_repair();
        let leaders: Vec<&serde_json::Value> =
            status.iter().filter(|s| s["leader"] == true).collect();
        if leaders.len() < 2 {
            return Some(format!("{} sets have a repair leader", leaders.len()));
        }
        for s in &leaders {
            if s["hints_pending"].as_u64().unwrap_or(1) > 0 {
                return Some(format!("set {} has heal hints pending", s["set"]));
            }
        }
        None
    }

    /// Waits (at most 180 s) for full redundancy and a finished scanner pass on every set;
    /// returns the seconds it took.
    async fn wait_full(&self, since: Instant) -> f64 {
        let passes: Vec<u64> = self.passes();
        let mut why = String::new();
        for _ in 0..1800 {
            let later = self
                .passes()
                .iter()
                .zip(&passes)
                .all(|(now, then)| *now > *then + 1);
            match self.not_full() {
                None if later => return since.elapsed().as_secs_f64(),
                None => why = "waiting for a scanner pass".into(),
                Some(w) => why = w,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "no full redundancy after 180 s: {why}\n{}",
            self.cluster.logs()
        );
    }

    fn passes(&self) -> Vec<u64> {
        let mut by_set = [0u64; 2];
        for s in self.node_repair() {
            if s["leader"] == true {
                let set = s["set"].as_u64().unwrap_or(0) as usize;
                by_set[set.min(1)] = s["pass"].as_u64().unwrap_or(0);
            }
        }
        by_set.to_vec()
    }

    /// Proves redundancy: with two nodes down (two different pairs), everything still reads.
    async fn two_down_reads(&mut self) {
        for pair in [[0, 1], [4, 5]] {
            for n in pair {
                self.cluster.nodes[n].kill();
            }
            let all: Vec<Written> = self.all.iter().filter(|w| w.acked).cloned().collect();
            for w in &all {
                let got = get(&self.client(0), &w.key)
                    .await
                    .unwrap_or_else(|e| panic!("{} with nodes {pair:?} down: {e}", w.key));
                assert!(got == w.body, "{} differs with nodes {pair:?} down", w.key);
            }
            for n in pair {
                self.cluster.start_node(n);
            }
            self.wait_all_online().await;
        }
    }

    /// Waits (at most 30 s) until both gateways see every drive online.
    async fn wait_all_online(&self) {
        for _ in 0..300 {
            let all = (0..2).all(|g| {
                let body = http_body(&format!("{}/health/ready", self.cluster.admin_url(g)));
                serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| {
                        v["sets"]
                            .as_array()
                            .map(|s| s.iter().all(|s| s["online"] == s["drives"]))
                    })
                    .unwrap_or(false)
            });
            if all {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "gateways do not see every drive online\n{}",
            self.cluster.logs()
        );
    }

    /// Verifies a scenario's writes (and everything before), waits for full redundancy,
    /// proves it, and records the row.
    async fn finish(
        &mut self,
        name: &str,
        writes: Vec<Written>,
        fault_over: Instant,
        repaired_before: u64,
    ) {
        let (intact, lost) = self.verify(&writes).await;
        let secs = self.wait_full(fault_over).await;
        self.all.extend(writes.iter().cloned());
        let all = self.all.clone();
        self.verify(&all).await;
        self.two_down_reads().await;
        self.rows.push(Row {
            name: name.into(),
            written: writes.len(),
            acked: writes.iter().filter(|w| w.acked).count(),
            intact,
            lost,
            repaired: self.repaired().saturating_sub(repaired_before),
            secs_to_full: secs,
            slowest_write: writes.iter().map(|w| w.secs).fold(0.0, f64::max),
        });
    }

    fn print(&self) {
        println!(
            "\n{:<44} {:>7} {:>6} {:>7} {:>5} {:>9} {:>12} {:>15}",
            "scenario",
            "written",
            "acked",
            "intact",
            "lost",
            "repaired",
            "to full (s)",
            "slowest PUT (s)"
        );
        for r in &self.rows {
            println!(
                "{:<44} {:>7} {:>6} {:>7} {:>5} {:>9} {:>12.1} {:>15.2}",
                r.name,
                r.written,
                r.acked,
                r.intact,
                r.lost,
                r.repaired,
                r.secs_to_full,
                r.slowest_write
            );
        }
    }
}

async fn put_multipart(c: &aws_sdk_s3::Client, key: &str, body: &[u8]) -> bool {
    common::put_multipart(c, BUCKET, key, body, 5 << 20)
        .await
        .is_ok()
}

/// GET within `HUNG` (a hung read fails the test).
async fn get(c: &aws_sdk_s3::Client, key: &str) -> Result<Vec<u8>, String> {
    let started = Instant::now();
    tokio::time::timeout(HUNG, async {
        match c.get_object().bucket(BUCKET).key(key).send().await {
            Ok(o) => o
                .body
                .collect()
                .await
                .map(|b| b.into_bytes().to_vec())
                .map_err(|e| e.to_string()),
            Err(e) => Err(format!("{} ({})", common::code(&e), common::status(&e))),
        }
    })
    .await
    .unwrap_or_else(|_| panic!("GET {key} hung for {:?}", started.elapsed()))
}

/// Flips bytes in the RocksDB files of a drive's metadata folder (tables, write-ahead logs
/// and manifests): one byte in every 4 KiB; returns how many files it changed.
fn rot_metadata(meta: &Path) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(meta).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.ends_with(".sst") || name.ends_with(".log") || name.starts_with("MANIFEST")) {
            continue;
        }
        let mut b = std::fs::read(e.path()).unwrap();
        if b.is_empty() {
            continue;
        }
        for at in (b.len() / 2..b.len()).step_by(4096) {
            b[at] ^= 0x5a;
        }
        std::fs::write(e.path(), &b).unwrap();
        n += 1;
    }
    n
}

/// A cgroup (v2) folder for the gateways; removed at the end.
struct Cgroup {
    path: PathBuf,
    /// Path relative to the cgroup2 root, as iptables matches it.
    name: String,
}

impl Cgroup {
    fn create() -> Self {
        // Hybrid hierarchies mount cgroup2 at `unified`; pure cgroup2 at the root.
        let root = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.join("cgroup.procs").exists())
            .expect("a cgroup2 hierarchy (the chaos suite cuts gateways off a node by cgroup)");
        let name = format!("tessera-chaos-{}", std::process::id());
        let path = root.join(&name);
        std::fs::create_dir_all(&path).expect("create a cgroup (needs root)");
        Self { path, name }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // The processes are gone by now (the cluster is dropped first).
        for _ in 0..50 {
            if std::fs::remove_dir(&self.path).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A firewall rule dropping every packet that processes of a cgroup send to a port on
/// loopback: the node behind the port is cut off from them, not from anyone else.
struct Cut(Vec<String>);

impl Cut {
    fn new(cgroup: &str, port: u16) -> Self {
        let rule: Vec<String> = [
            "OUTPUT",
            "-o",
            "lo",
            "-p",
            "tcp",
            "--dport",
            &port.to_string(),
            "-m",
            "cgroup",
            "--path",
            cgroup,
            "-j",
            "DROP",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let st = std::process::Command::new("iptables")
            .arg("-I")
            .args(&rule)
            .status()
            .expect("run iptables");
        assert!(st.success(), "iptables refused the rule (needs root)");
        Self(rule)
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        let _ = std::process::Command::new("iptables")
            .arg("-D")
            .args(&self.0)
            .status();
    }
}

/// The RPC port of a node, from the URL it printed.
fn node_port(p: &common::cluster::Proc) -> u16 {
    p.urls[0]
        .rsplit(':')
        .next()
        .and_then(|s| s.trim_end_matches('/').parse().ok())
        .expect("node URL with a port")
}

/// Flips one byte in the middle of every shard file under `dir`; returns the files' new
/// contents.
fn rot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for f in common::shard_files(dir) {
        let mut b = std::fs::read(&f).unwrap();
        let at = b.len() / 2;
        b[at] ^= 0xa5;
        std::fs::write(&f, &b).unwrap();
        out.push((f, b));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_suite() {
    let mut c = Chaos::new().await;

    // 1. kill -9 of m nodes in the middle of uploads; restart them; repair.
    let before = c.repaired();
    let load = c.start_writes("s1", 24);
    c.wait_progress(8).await;
    c.cluster.nodes[0].kill();
    c.cluster.nodes[1].kill();
    let writes = load.await.unwrap();
    c.cluster.start_node(0);
    c.cluster.start_node(1);
    let back = Instant::now();
    c.wait_all_online().await;
    c.finish("1 kill -9 of 2 nodes during uploads", writes, back, before)
        .await;

    // 2. SIGSTOP of one node for 30 s during reads and writes.
    let before = c.repaired();
    c.cluster.nodes[2].signal("STOP");
    let stopped = Instant::now();
    let load = c.start_writes("s2", 16);
    let reads = c.all.clone();
    c.verify(&reads).await;
    let writes = load.await.unwrap();
    let left = Duration::from_secs(30).saturating_sub(stopped.elapsed());
    tokio::time::sleep(left).await;
    c.cluster.nodes[2].signal("CONT");
    let back = Instant::now();
    c.finish(
        "2 SIGSTOP of a node for 30 s under load",
        writes,
        back,
        before,
    )
    .await;

    // 3. Random bytes flipped in the shard files of m drives (nodes 3 and 4, both sets).
    let before = c.repaired();
    let rotten: Vec<(PathBuf, Vec<u8>)> = [3, 4]
        .iter()
        .flat_map(|n| rot(&c.cluster.dir.path().join(format!("node{n}"))))
        .collect();
    assert!(!rotten.is_empty());
    let started = Instant::now();
    let load = c.start_writes("s3", 8);
    let writes = load.await.unwrap();
    // Reads find the rot, reconstruct, and leave hints; repair rewrites every rotten file.
    let all = c.all.clone();
    c.verify(&all).await;
    let mut still = rotten.len();
    for _ in 0..1200 {
        still = rotten
            .iter()
            .filter(|(f, bad)| std::fs::read(f).map(|b| b == *bad).unwrap_or(false))
            .count();
        if still == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(still, 0, "rotten shard files left unrepaired");
    c.finish(
        "3 bytes flipped in shards of 2 drives",
        writes,
        started,
        before,
    )
    .await;

    // 3b. Random bytes flipped in the metadata (RocksDB files) of m nodes' drives: each drive
    //     either replays what it can or finds its database corrupt and sets it aside; repair
    //     rewrites what is missing either way.
    let before = c.repaired();
    for n in [3, 4] {
        c.cluster.nodes[n].kill();
        for d in 0..2 {
            let flipped = rot_metadata(&c.drive(n, d).join("meta"));
            assert!(flipped > 0, "no metadata files on node{n}/d{d}");
        }
    }
    c.cluster.start_node(3);
    c.cluster.start_node(4);
    let started = Instant::now();
    c.wait_all_online().await;
    let load = c.start_writes("s3b", 8);
    let writes = load.await.unwrap();
    c.finish(
        "3b bytes flipped in metadata of 2 nodes",
        writes,
        started,
        before,
    )
    .await;

    // 4. A drive folder deleted and replaced by an empty one while the cluster serves.
    let before = c.repaired();
    let d = c.drive(5, 0);
    common::remove_live_dir(&d);
    std::fs::create_dir(&d).unwrap();
    let replaced = Instant::now();
    let load = c.start_writes("s4", 8);
    let writes = load.await.unwrap();
    c.finish(
        "4 drive folder replaced by an empty one",
        writes,
        replaced,
        before,
    )
    .await;

    // 5. A node cut off from the gateways but not from its peers: writes and reads go on
    //    without it, and the sets' repair leaders (which still reach it) give it its shards.
    let before = c.repaired();
    let port = node_port(&c.cluster.nodes[3]);
    let cut = Cut::new(&c.cgroup.name, port);
    let started = Instant::now();
    let load = c.start_writes("s5", 12);
    let reads = c.all.clone();
    c.verify(&reads).await;
    let writes = load.await.unwrap();
    c.verify(&writes).await;
    let healed_while_cut = c.wait_full(started).await;
    drop(cut);
    println!("scenario 5: full redundancy while the node was still cut off, after {healed_while_cut:.1} s");
    c.wait_all_online().await;
    c.finish(
        "5 node cut off from gateways, not peers",
        writes,
        started,
        before,
    )
    .await;

    // 7. Gateways killed and restarted in the middle of multipart uploads: the uploads
    //    complete (or abort) cleanly through the other gateway.
    let before = c.repaired();
    let g0 = c.client(0);
    let mut uploads = Vec::new();
    for i in 0..3 {
        let key = format!("s7/{i}");
        let up = g0
            .create_multipart_upload()
            .bucket(BUCKET)
            .key(&key)
            .send()
            .await
            .unwrap();
        let id = up.upload_id().unwrap().to_string();
        let part1 = data(5 << 20, 7000 + i);
        let p = g0
            .upload_part()
            .bucket(BUCKET)
            .key(&key)
            .upload_id(&id)
            .part_number(1)
            .body(ByteStream::from(part1.clone()))
            .send()
            .await
            .unwrap();
        uploads.push((key, id, part1, p.e_tag().unwrap().to_string()));
    }
    // A part in flight when the gateway dies.
    let in_flight = {
        let g0 = g0.clone();
        let (key, id) = (uploads[0].0.clone(), uploads[0].1.clone());
        tokio::spawn(async move {
            g0.upload_part()
                .bucket(BUCKET)
                .key(key)
                .upload_id(id)
                .part_number(2)
                .body(ByteStream::from(data(6 << 20, 1)))
                .send()
                .await
                .is_ok()
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.cluster.gateways[0].kill();
    let _ = in_flight.await;
    let killed = Instant::now();
    let g1 = c.client(1);
    let mut writes = Vec::new();
    for (i, (key, id, part1, etag1)) in uploads.iter().enumerate() {
        if i == 2 {
            g1.abort_multipart_upload()
                .bucket(BUCKET)
                .key(key)
                .upload_id(id)
                .send()
                .await
                .unwrap();
            let e = get(&g1, key).await.unwrap_err();
            assert!(e.starts_with("NoSuchKey"), "aborted upload left {e}");
            continue;
        }
        let part2 = data(1000 + i, 8000 + i as u64);
        let p2 = g1
            .upload_part()
            .bucket(BUCKET)
            .key(key)
            .upload_id(id)
            .part_number(2)
            .body(ByteStream::from(part2.clone()))
            .send()
            .await
            .unwrap();
        let parts = [(1, etag1.clone()), (2, p2.e_tag().unwrap().to_string())]
            .into_iter()
            .map(|(n, e)| {
                aws_sdk_s3::types::CompletedPart::builder()
                    .part_number(n)
                    .e_tag(e)
                    .build()
            })
            .collect();
        g1.complete_multipart_upload()
            .bucket(BUCKET)
            .key(key)
            .upload_id(id)
            .multipart_upload(
                aws_sdk_s3::types::CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        writes.push(Written {
            key: key.clone(),
            body: [part1.clone(), part2].concat(),
            acked: true,
            secs: 0.0,
        });
    }
    let gw = c
        .cluster
        .gateway_with(c.cluster.topology.to_str().unwrap())
        .unwrap();
    c.cluster.gateways[0] = gw;
    c.cluster.wait_ready(0).await;
    c.finish(
        "7 gateway killed during multipart uploads",
        writes,
        killed,
        before,
    )
    .await;

    // 8. m+1 nodes down: writes refused fast, nothing silently wrong; then all heals.
    let before = c.repaired();
    for n in [0, 2, 4] {
        c.cluster.nodes[n].kill();
    }
    let g = c.client(1);
    let mut refused = Vec::new();
    for i in 0..4 {
        let started = Instant::now();
        let r = g
            .put_object()
            .bucket(BUCKET)
            .key(format!("s8/{i}"))
            .body(ByteStream::from(data(200_000, i)))
            .send()
            .await;
        let took = started.elapsed();
        let e = r.expect_err("a write with 3 of 6 drives of a set up must be refused");
        assert_eq!(common::status(&e), 503, "refused with 503");
        refused.push(took);
    }
    // Reads of objects that lost their read quorum say so (503), never wrong bytes or 404.
    for w in c.all.iter().filter(|w| w.acked).take(10) {
        match get(&g, &w.key).await {
            Ok(b) => assert!(b == w.body, "{} wrong with 3 nodes down", w.key),
            Err(e) => assert!(e.contains("503"), "{}: {e}", w.key),
        }
    }
    for n in [0, 2, 4] {
        c.cluster.start_node(n);
    }
    let back = Instant::now();
    c.wait_all_online().await;
    // The refused writes left nothing visible.
    for i in 0..4 {
        let e = get(&g, &format!("s8/{i}")).await.unwrap_err();
        assert!(
            e.starts_with("NoSuchKey"),
            "refused write s8/{i} visible: {e}"
        );
    }
    println!("scenario 8: writes refused in {refused:?}");
    c.finish("8 three nodes down, then back", Vec::new(), back, before)
        .await;

    c.print();
    for r in &c.rows {
        assert_eq!(r.lost, 0);
        assert_eq!(r.intact, r.acked, "{}", r.name);
    }
}
