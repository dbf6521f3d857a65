//! Cluster mode on loopback: 6 `tessera node` processes of 2 drives each (two erasure sets of
//! 4+2, one drive per node) and 2 `tessera gateway` processes.

mod common;

use aws_sdk_s3::primitives::ByteStream;
use common::cluster::TestCluster;
use common::{code, data, status};

const SIZES: [usize; 6] = [0, 1000, 70_000, 300_000, 1 << 20, (3 << 20) + 17];

async fn put_all(c: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (i, n) in SIZES.iter().enumerate() {
        let key = format!("{prefix}obj-{i}-{n}");
        let body = data(*n, i as u64 + prefix.len() as u64);
        c.put_object()
            .bucket(bucket)
            .key(&key)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
        out.push((key, body));
    }
    out
}

async fn check_all(c: &aws_sdk_s3::Client, bucket: &str, objects: &[(String, Vec<u8>)]) {
    for (key, body) in objects {
        let got = c
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("get {key}: {e:?}"))
            .body
            .collect()
            .await
            .unwrap()
            .into_bytes();
        assert!(got[..] == body[..], "{key} differs");
    }
}

async fn list_keys(c: &aws_sdk_s3::Client, bucket: &str, page: i32) -> Vec<String> {
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut req = c.list_objects_v2().bucket(bucket).max_keys(page);
        if let Some(t) = &token {
            req = req.continuation_token(t);
        }
        let r = req.send().await.unwrap();
        keys.extend(r.contents().iter().map(|o| o.key().unwrap().to_string()));
        match r.next_continuation_token() {
            Some(t) if r.is_truncated() == Some(true) => token = Some(t.to_string()),
            _ => break,
        }
    }
    keys
}

#[tokio::test]
async fn any_gateway_reads_what_another_wrote_and_survives_two_nodes_down() {
    let mut cl = TestCluster::start(6, 2, 2);
    let a = cl.client(0);
    let b = cl.client(1);
    a.create_bucket().bucket("shared").send().await.unwrap();
    // Both gateways see the bucket.
    b.head_bucket().bucket("shared").send().await.unwrap();
    let mut objects = put_all(&a, "shared", "from-a/").await;
    objects.extend(put_all(&b, "shared", "from-b/").await);
    check_all(&b, "shared", &objects).await;
    check_all(&a, "shared", &objects).await;

    // Keys hash to both sets; a listing merges them in byte order, also in small pages.
    for i in 0..40 {
        a.put_object()
            .bucket("shared")
            .key(format!("many/{i:03}"))
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap();
    }
    let mut want: Vec<String> = objects.iter().map(|(k, _)| k.clone()).collect();
    want.extend((0..40).map(|i| format!("many/{i:03}")));
    want.sort();
    assert_eq!(list_keys(&b, "shared", 1000).await, want);
    assert_eq!(list_keys(&a, "shared", 7).await, want);
    let top = b
        .list_objects_v2()
        .bucket("shared")
        .delimiter("/")
        .send()
        .await
        .unwrap();
    let prefixes: Vec<&str> = top
        .common_prefixes()
        .iter()
        .map(|p| p.prefix().unwrap())
        .collect();
    assert_eq!(prefixes, ["from-a/", "from-b/", "many/"]);

    // One node down (one drive of each set): reads and writes go on.
    cl.nodes[2].kill();
    check_all(&a, "shared", &objects).await;
    let more = put_all(&b, "shared", "one-down/").await;
    check_all(&a, "shared", &more).await;
    // A second node down: every set still has k = 4 drives; reads and writes go on.
    cl.nodes[4].kill();
    check_all(&b, "shared", &objects).await;
    check_all(&b, "shared", &more).await;
    let two_down = put_all(&a, "shared", "two-down/").await;
    check_all(&b, "shared", &two_down).await;
    for (key, body) in &objects {
        let h = a
            .head_object()
            .bucket("shared")
            .key(key)
            .send()
            .await
            .unwrap();
        assert_eq!(h.content_length(), Some(body.len() as i64));
    }
    let mut all = want.clone();
    all.extend(more.iter().chain(two_down.iter()).map(|(k, _)| k.clone()));
    all.sort();
    assert_eq!(list_keys(&b, "shared", 11).await, all);
    // A gateway restarts: the new one reads everything (gateways keep no state).
    cl.gateways[0].kill();
    cl.gateways.remove(0);
    cl.add_gateway().unwrap_or_else(|log| panic!("{log}"));
    let a = cl.client(1);
    let b = cl.client(0);
    check_all(&a, "shared", &objects).await;
    check_all(&a, "shared", &two_down).await;
    assert_eq!(list_keys(&a, "shared", 1000).await, all);
    // A third: below quorum, S3 answers 503 and nothing hangs.
    cl.nodes[0].kill();
    let e = a
        .get_object()
        .bucket("shared")
        .key(&objects[5].0)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 503, "{}", cl.logs());
    let e = a
        .put_object()
        .bucket("shared")
        .key("too-few")
        .body(ByteStream::from(data(200_000, 1)))
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 503);
    assert_eq!(code(&e), "ServiceUnavailable");
    let ready = format!("{}/health/ready", cl.admin_url(0));
    assert_eq!(common::cluster::http_status(&ready), 503);
    // The nodes come back: everything acknowledged reads back.
    for n in [0, 2, 4] {
        cl.start_node(n);
    }
    cl.wait_ready(0).await;
    cl.wait_ready(1).await;
    check_all(&a, "shared", &objects).await;
    check_all(&b, "shared", &two_down).await;
    assert!(cl.gateways.iter_mut().all(|g| g.alive()));
}

#[tokio::test]
async fn concurrent_writers_through_two_gateways_last_writer_wins() {
    let cl = TestCluster::start(6, 2, 2);
    let a = cl.client(0);
    let b = cl.client(1);
    a.create_bucket().bucket("race").send().await.unwrap();
    for round in 0..5u8 {
        let (ra, rb) = tokio::join!(
            a.put_object()
                .bucket("race")
                .key("k")
                .body(ByteStream::from(vec![round * 2; 150_000]))
                .send(),
            b.put_object()
                .bucket("race")
                .key("k")
                .body(ByteStream::from(vec![round * 2 + 1; 150_000]))
                .send(),
        );
        ra.unwrap();
        rb.unwrap();
        let mut seen = Vec::new();
        for c in [&a, &b, &a, &b] {
            let got = c.get_object().bucket("race").key("k").send().await.unwrap();
            let bytes = got.body.collect().await.unwrap().into_bytes();
            assert!(bytes.iter().all(|x| *x == bytes[0]), "torn object");
            seen.push(bytes[0]);
        }
        assert!(
            seen.iter().all(|x| *x == seen[0]),
            "readers disagree: {seen:?}"
        );
        assert!(seen[0] == round * 2 || seen[0] == round * 2 + 1);
    }
}

#[tokio::test]
async fn processes_refuse_a_different_topology_or_secret() {
    let cl = TestCluster::start(6, 2, 0);
    // A gateway whose file differs (a node moved) is refused by the nodes' topology hash.
    let text = std::fs::read_to_string(&cl.topology).unwrap();
    let other = cl.dir.path().join("other.toml");
    std::fs::write(
        &other,
        text.replace("ec = \"4+2\"", "ec = \"4+2\"\nstripe_size = \"2MiB\""),
    )
    .unwrap();
    let log = match cl.gateway_with(other.to_str().unwrap()) {
        Ok(_) => panic!("gateway with another topology started"),
        Err(log) => log,
    };
    assert!(log.contains("same cluster file"), "{log}");
    // A gateway with another secret is refused by the nodes.
    let mut g = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args([
            "gateway",
            "--config",
            cl.topology.to_str().unwrap(),
            "--address",
            "127.0.0.1:0",
            "--admin-address",
            "127.0.0.1:0",
        ])
        .env("TESSERA_CLUSTER_SECRET", "wrong")
        .env("TESSERA_ROOT_ACCESS_KEY", "a")
        .env("TESSERA_ROOT_SECRET_KEY", "b")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = g.wait_with_output_timeout();
    assert!(out.contains("cluster secret"), "{out}");
}

trait WaitOutput {
    fn wait_with_output_timeout(&mut self) -> String;
}

impl WaitOutput for std::process::Child {
    fn wait_with_output_timeout(&mut self) -> String {
        use std::io::Read;
        for _ in 0..100 {
            if let Ok(Some(_)) = self.try_wait() {
                let mut s = String::new();
                if let Some(e) = self.stderr.as_mut() {
                    let _ = e.read_to_string(&mut s);
                }
                return s;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.kill();
        "gateway did not exit within 10 s".into()
    }
}

#[test]
fn node_rpc_refuses_unsigned_tampered_and_replayed_requests() {
    let cl = TestCluster::start(6, 2, 0);
    let addr = cl.nodes[0].urls[0]
        .trim_start_matches("http://")
        .to_string();
    let send = |method: &str, path: &str, headers: &[(&str, String)]| -> u16 {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (k, v) in headers {
            req += &format!("{k}: {v}\r\n");
        }
        req += "Content-Length: 0\r\n\r\n";
        s.write_all(req.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let path = "/rpc/v1/topology";
    let signed: Vec<(&str, String)> =
        tessera::cluster::auth::sign(common::cluster::CLUSTER_SECRET, "GET", path)
            .into_iter()
            .collect();
    assert_eq!(send("GET", path, &signed), 200);
    assert_eq!(
        send("GET", path, &signed),
        401,
        "a replayed request must be refused"
    );
    assert_eq!(
        send("GET", path, &[]),
        401,
        "an unsigned request must be refused"
    );
    let fresh: Vec<(&str, String)> =
        tessera::cluster::auth::sign(common::cluster::CLUSTER_SECRET, "GET", path)
            .into_iter()
            .collect();
    assert_eq!(
        send("GET", "/rpc/v1/drive/0/shard/b/x?offset=0&len=1", &fresh),
        401,
        "signature for another path"
    );
    let forged: Vec<(&str, String)> = tessera::cluster::auth::sign("not-the-secret", "GET", path)
        .into_iter()
        .collect();
    assert_eq!(send("GET", path, &forged), 401);
    // A correctly signed call from a process holding another topology is refused, saying why.
    let mut other: Vec<(&str, String)> =
        tessera::cluster::auth::sign(common::cluster::CLUSTER_SECRET, "GET", path)
            .into_iter()
            .collect();
    other.push(("x-tessera-topology", "0123456789abcdef".into()));
    assert_eq!(send("GET", path, &other), 409);
    // Health checks need no credentials.
    assert_eq!(send("GET", "/health/live", &[]), 200);
}

/// A node answers a listing call with light entries for the gateways of this version, and
/// with whole version records for a gateway from before them (which sends no `entries`), so
/// a rolling update never breaks LIST.
#[tokio::test]
async fn nodes_answer_listings_to_gateways_of_either_version() {
    let cl = TestCluster::start(6, 1, 1);
    cl.wait_ready(0).await;
    let c = cl.client(0);
    c.create_bucket().bucket("either").send().await.unwrap();
    c.put_object()
        .bucket("either")
        .key("k")
        .content_type("text/plain")
        .body(ByteStream::from_static(b"hello"))
        .send()
        .await
        .unwrap();
    let list = |entries: Option<bool>| -> serde_json::Value {
        let mut call = serde_json::json!({"list_keys": {
            "bucket": "either", "prefix": "", "after_hex": "", "limit": 10}});
        if let Some(e) = entries {
            call["list_keys"]["entries"] = e.into();
        }
        drive_call(&cl, call)
    };
    for old in [list(None), list(Some(false))] {
        assert_eq!(old[0][0], "k", "{old}");
        assert_eq!(old[0][1]["size"], 5, "{old}");
        assert_eq!(old[0][1]["headers"]["content-type"], "text/plain", "{old}");
        assert!(old[0][1]["layout"].is_object(), "a whole record: {old}");
    }
    let new = list(Some(true));
    assert_eq!(new[0][0], "k", "{new}");
    assert_eq!(new[0][1]["size"], 5, "{new}");
    assert!(new[0][1].get("layout").is_none(), "an entry: {new}");
    assert!(new[0][1].get("inline").is_none(), "an entry: {new}");
}

/// Versioning enabled while a node is down stays enabled once the node is back, though its
/// drive, the first of the set, still holds the bucket's record from before; and a PUT then
/// keeps the version it replaces. A bucket deleted meanwhile stays deleted, though that drive
/// still holds its record. Tags set on objects meanwhile hold too (here the restarted
/// node may already have healed its copies from the change's hint; the unit test
/// `a_tag_change_two_drives_missed_is_read_and_healed` pins the reads themselves).
#[tokio::test]
async fn a_bucket_change_made_while_a_node_was_down_holds_once_it_is_back() {
    let mut cl = TestCluster::start(6, 1, 1);
    cl.wait_ready(0).await;
    let c = cl.client(0);
    c.create_bucket().bucket("vers").send().await.unwrap();
    c.create_bucket().bucket("gone").send().await.unwrap();
    let keys: Vec<String> = (0..8).map(|i| format!("tagged-{i}")).collect();
    for k in &keys {
        c.put_object()
            .bucket("vers")
            .key(k)
            .body(ByteStream::from_static(b"tag me"))
            .send()
            .await
            .unwrap();
    }
    cl.nodes[0].kill();
    let tagging = aws_sdk_s3::types::Tagging::builder()
        .tag_set(
            aws_sdk_s3::types::Tag::builder()
                .key("color")
                .value("blue")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    for k in &keys {
        c.put_object_tagging()
            .bucket("vers")
            .key(k)
            .tagging(tagging.clone())
            .send()
            .await
            .unwrap();
    }
    common::set_versioning(
        &c,
        "vers",
        aws_sdk_s3::types::BucketVersioningStatus::Enabled,
    )
    .await;
    c.delete_bucket().bucket("gone").send().await.unwrap();
    cl.start_node(0);
    // Back once the gateway counts all six drives online again (bounded: 30 s).
    let url = format!("{}/health/ready", cl.admin_url(0));
    let mut online = serde_json::Value::Null;
    for _ in 0..300 {
        let body = common::cluster::http_body(&url);
        online = serde_json::from_str::<serde_json::Value>(&body).unwrap_or_default()["sets"][0]
            ["online"]
            .clone();
        if online == 6 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(online, 6, "{}", cl.logs());
    let v = c
        .get_bucket_versioning()
        .bucket("vers")
        .send()
        .await
        .unwrap();
    assert_eq!(
        v.status(),
        Some(&aws_sdk_s3::types::BucketVersioningStatus::Enabled)
    );
    let head = c.head_bucket().bucket("gone").send().await;
    assert_eq!(
        head.map_err(|e| common::status(&e)).err(),
        Some(404),
        "deleted bucket is back"
    );
    assert_eq!(common::bucket_names(&c).await, ["vers"]);
    for k in &keys {
        let t = c
            .get_object_tagging()
            .bucket("vers")
            .key(k)
            .send()
            .await
            .unwrap();
        assert_eq!(t.tag_set(), tagging.tag_set(), "{k}");
    }
    for body in [&b"one"[..], b"two"] {
        c.put_object()
            .bucket("vers")
            .key("k")
            .body(ByteStream::from_static(body))
            .send()
            .await
            .unwrap();
    }
    let versions = c
        .list_object_versions()
        .bucket("vers")
        .prefix("k")
        .send()
        .await
        .unwrap();
    assert_eq!(versions.versions().len(), 2, "{versions:?}");
}

/// One call to drive 0 of node 0, signed as a peer would; its answer.
fn drive_call(cl: &TestCluster, call: serde_json::Value) -> serde_json::Value {
    let path = "/rpc/v1/drive/0/call";
    let signed = tessera::cluster::auth::sign(common::cluster::CLUSTER_SECRET, "POST", path);
    let headers: Vec<(&str, &str)> = signed.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, body) = common::cluster::http_request(
        "POST",
        &format!("{}{path}", cl.nodes[0].urls[0]),
        &headers,
        call.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// A heal removes the hint it listed and no other: nodes match a hint by the time it was
/// made, never against the clock of the leader that healed (gateways and nodes on other
/// machines make hints on clocks that need not agree). A leader of an earlier version, which
/// asks for hints made before its heal began, is still answered that way.
#[tokio::test]
async fn nodes_remove_hints_as_listed_for_leaders_of_either_version() {
    let cl = TestCluster::start(6, 1, 1);
    cl.wait_ready(0).await;
    // Not due for an hour: the set's leader leaves it alone.
    let mut hint = tessera::drive::HealHint::version("b", "k", "v", false);
    hint.not_before_ms = hint.created_ms + 3_600_000;
    let id_hex = hex::encode(hint.id());
    // Listed after id "\0", not from the start: a listing from the start may answer from the
    // "no hints" flag that the leader's own listing clears while it reads.
    let stored = || -> Vec<u64> {
        let listed = drive_call(
            &cl,
            serde_json::json!({"list_hints": {"after_hex": "00", "limit": 10}}),
        );
        let hints: Vec<tessera::drive::HealHint> = serde_json::from_value(listed).unwrap();
        hints.iter().map(|h| h.created_ms).collect()
    };
    let remove = |fields: serde_json::Value| {
        let mut call = serde_json::json!({"delete_hint": {"id_hex": id_hex}});
        for (k, v) in fields.as_object().unwrap() {
            call["delete_hint"][k] = v.clone();
        }
        drive_call(&cl, call);
    };
    let put = |created_ms: u64| {
        let h = tessera::drive::HealHint {
            created_ms,
            ..hint.clone()
        };
        drive_call(&cl, serde_json::json!({"put_hint": {"hint": h}}));
    };
    let made = hint.created_ms;
    put(made);
    assert_eq!(stored(), [made]);
    // Stored again since it was listed, on a clock a minute behind: it stays.
    put(made - 60_000);
    remove(serde_json::json!({"made_ms": made, "created_before_ms": made + 1}));
    assert_eq!(stored(), [made - 60_000]);
    remove(serde_json::json!({"made_ms": made - 60_000, "created_before_ms": made - 59_999}));
    assert!(stored().is_empty());
    // An earlier leader: only hints made before the bound go.
    put(made);
    remove(serde_json::json!({"created_before_ms": made}));
    assert_eq!(stored(), [made]);
    remove(serde_json::json!({"created_before_ms": made + 1}));
    assert!(stored().is_empty());
}

/// A write while 2 of 6 drives are down raises the object's parity (2+4 on the 4 drives that
/// are up), so it survives two FURTHER losses: with only 2 nodes left, it still reads.
#[tokio::test]
async fn degraded_writes_raise_parity_and_survive_two_more_losses() {
    let mut cl = TestCluster::start(6, 1, 1);
    cl.wait_ready(0).await;
    let c = cl.client(0);
    c.create_bucket().bucket("raised").send().await.unwrap();
    cl.nodes[0].kill();
    cl.nodes[1].kill();
    // The gateway learns that they are down (its readiness probe calls every drive).
    let url = format!("{}/health/ready", cl.admin_url(0));
    for _ in 0..100 {
        let body = common::cluster::http_body(&url);
        if body.contains("\"online\":4") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let objects = put_all(&c, "raised", "degraded/").await;
    // Two more nodes go: only nodes 4 and 5 are left, 2 of 6 drives.
    cl.nodes[2].kill();
    cl.nodes[3].kill();
    check_all(&c, "raised", &objects).await;
    // Everything comes back, and repair gives the returning drives their shards.
    for n in 0..4 {
        cl.start_node(n);
    }
    cl.wait_ready(0).await;
    check_all(&c, "raised", &objects).await;
    // The gateway's readiness shows each set's repair, as its leading node reports it.
    let mut st = serde_json::Value::Null;
    for _ in 0..100 {
        let body = common::cluster::http_body(&url);
        st = serde_json::from_str::<serde_json::Value>(&body).unwrap_or_default()["repair"][0]
            .clone();
        if st["leader"] == true && st["pass"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        st["leader"], true,
        "repair status through the gateway: {st}"
    );
    assert!(st["pass"].as_u64().unwrap_or(0) >= 1, "{st}");
}

/// The repair status of set 0 as gateway 0's readiness shows it, once it comes from the
/// set's leading node (bounded: 10 s).
async fn repair_status(cl: &TestCluster) -> serde_json::Value {
    let url = format!("{}/health/ready", cl.admin_url(0));
    for _ in 0..100 {
        let body = common::cluster::http_body(&url);
        let st = serde_json::from_str::<serde_json::Value>(&body).unwrap_or_default()["repair"][0]
            .clone();
        if st["leader"] == true {
            return st;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no repair status from a leader\n{}", cl.logs());
}

/// Waits (bounded: 60 s) until the leader has listed no heal hint for 2 s while `also`
/// holds (its rounds are 1 s apart, so a leader that just took over has looked by then), and
/// returns the last repair status.
async fn no_hints_for_2s(cl: &TestCluster, also: impl Fn() -> bool) -> serde_json::Value {
    let mut st = serde_json::Value::Null;
    let mut quiet = 0;
    for _ in 0..600 {
        st = repair_status(cl).await;
        quiet = if st["hints_pending"] == 0 && also() {
            quiet + 1
        } else {
            0
        };
        if quiet == 20 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    st
}

/// Reads while a node is down rebuild its shards from parity, but leave no heal hint for it:
/// the node may still hold them, and every read would otherwise write a hint, with an fsync,
/// to every live drive. A shard lost on a live drive is damage and still gets its hint, and
/// once the node is back, repair restores both.
#[tokio::test]
async fn reads_during_an_outage_hint_only_the_damage_on_live_drives() {
    let mut cl = TestCluster::start(6, 1, 1);
    cl.wait_ready(0).await;
    let c = cl.client(0);
    c.create_bucket().bucket("outage").send().await.unwrap();
    let objects = put_all(&c, "outage", "o/").await;
    let node5 = cl.dir.path().join("node5/d0");
    let shards = common::shard_files(&node5).len();
    assert!(shards >= 3, "{shards} shard files on node5");
    // The outage starts from no hints: a PUT that abandoned a drive slow under the load of
    // the other tests leaves one, healed at once while every node is up.
    let st = no_hints_for_2s(&cl, || true).await;
    assert_eq!(st["hints_pending"], 0, "hints before the outage: {st}");
    // node0's RPC URL, as the gateway names its drive (`drive=http://...:port/drive/0`).
    let node0 = cl.nodes[0].urls[0].clone();
    cl.nodes[0].kill();
    // The gateway marks node0's drive offline after two failed calls: its readiness probes.
    let url = format!("{}/health/ready", cl.admin_url(0));
    for _ in 0..100 {
        common::cluster::http_body(&url);
        let log = std::fs::read_to_string(&cl.gateways[0].log).unwrap_or_default();
        if log
            .lines()
            .any(|l| l.contains("drive marked offline") && l.contains(&node0))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for _ in 0..3 {
        check_all(&c, "outage", &objects).await;
    }
    // The leader lists the hints once a second: three rounds find none.
    for _ in 0..30 {
        let st = repair_status(&cl).await;
        assert_eq!(
            st["hints_pending"],
            0,
            "reads hinted the node that is down: {st}\n{}",
            cl.logs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // node5, which is up, loses its shard files: reads hint that.
    for f in common::shard_files(&node5) {
        std::fs::remove_file(f).unwrap();
    }
    check_all(&c, "outage", &objects).await;
    let mut hinted = serde_json::Value::Null;
    for _ in 0..100 {
        hinted = repair_status(&cl).await;
        if hinted["hints_pending"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        hinted["hints_pending"].as_u64().unwrap_or(0) > 0,
        "no hint for the shards lost on a live drive: {hinted}"
    );
    // node0 comes back: the hints are worked off, and the shards they name are rebuilt on
    // node5. (A parity shard that no read touched has no hint; the scanner finds it.) A hint
    // that failed while node0 was down waits out its backoff (2 s, 4 s, 8 s ...) first.
    cl.start_node(0);
    cl.wait_ready(0).await;
    // Done once node5 has shard files back and the leader has listed no hint for 2 s.
    let st = no_hints_for_2s(&cl, || !common::shard_files(&node5).is_empty()).await;
    assert_eq!(st["hints_pending"], 0, "{st}\n{}", cl.logs());
    let rebuilt = common::shard_files(&node5).len();
    assert!(
        rebuilt > 0 && rebuilt <= shards,
        "{rebuilt} of {shards} shard files back"
    );
    check_all(&c, "outage", &objects).await;
}

/// A new cluster has nothing to rebuild: its gateway formats the blank drives at start, and no
/// node takes one of them for a replaced drive (which leaves a hint and starts a full scan, and
/// had a new cluster report itself degraded for its first seconds). A drive emptied under a
/// running node is formatted into its place and rebuilt whole, records and shards, and then
/// serves reads that cannot do without it.
#[tokio::test]
async fn a_new_cluster_has_no_hints_and_a_replaced_drive_is_rebuilt() {
    let mut cl = TestCluster::start(6, 1, 1);
    cl.wait_ready(0).await;
    // The drive watches check every second; a blank drive is formatted at its second check.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    for p in cl.nodes.iter().chain(&cl.gateways) {
        let log = std::fs::read_to_string(&p.log).unwrap();
        assert!(
            !log.contains("formatted into its place") && !log.contains("came up blank"),
            "a new cluster's drives taken for replaced ones:\n{log}"
        );
    }
    let st = repair_status(&cl).await;
    assert_eq!(st["hints_pending"], 0, "{st}");
    let c = cl.client(0);
    c.create_bucket().bucket("replaced").send().await.unwrap();
    let objects = put_all(&c, "replaced", "r/").await;
    let d = cl.dir.path().join("node3/d0");
    let shards = common::shard_files(&d).len();
    assert!(shards >= 3, "{shards} shard files on node3");
    common::remove_live_dir(&d);
    // The node may have made the folder again already (RocksDB reopening there).
    std::fs::create_dir_all(&d).unwrap();
    // Rebuilt once its shard files are back and the pass that rebuilt them is over.
    let mut st = serde_json::Value::Null;
    let mut back = false;
    for _ in 0..600 {
        st = repair_status(&cl).await;
        back |= common::shard_files(&d).len() == shards;
        if back && st["in_pass"] == false && st["hints_pending"] == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(back && st["in_pass"] == false, "{st}\n{}", cl.logs());
    assert!(d.join("format.json").exists());
    assert!(cl.logs().contains("blank drive formatted into its place"));
    // Four drives left of six: every read needs node3's.
    cl.nodes[0].kill();
    cl.nodes[1].kill();
    check_all(&c, "replaced", &objects).await;
}

/// `[rpc_tls]`: nodes serve their RPC over TLS only, gateways and peers verify the nodes'
/// certificate against the cluster's CA; a gateway that trusts another CA refuses to start.
#[tokio::test]
async fn node_rpc_over_tls() {
    let certs_dir = tempfile::tempdir().unwrap();
    let certs = common::make_certs(certs_dir.path());
    let tls = format!(
        "[rpc_tls]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n",
        certs.ca.display(),
        certs.cert.display(),
        certs.key.display()
    );
    let mut cl = TestCluster::start_with(6, 1, 1, &tls);
    let c = cl.client(0);
    c.create_bucket().bucket("sealed").send().await.unwrap();
    let objects = put_all(&c, "sealed", "tls/").await;
    check_all(&c, "sealed", &objects).await;

    // A node's RPC port speaks TLS only: a plain HTTP request gets no HTTP answer.
    let topo = std::fs::read_to_string(&cl.topology).unwrap();
    let addr = topo
        .lines()
        .find_map(|l| l.strip_prefix("address = \""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap()
        .to_string();
    let answer =
        common::cluster::http_request("GET", &format!("http://{addr}/rpc/v1/topology"), &[], b"");
    assert!(
        answer.as_ref().is_none_or(|(status, _)| *status == 0),
        "plain HTTP to the node answered {answer:?}"
    );

    // A gateway whose CA did not sign the nodes' certificate refuses to serve.
    let wrong = cl.dir.path().join("wrong-ca.toml");
    std::fs::write(
        &wrong,
        topo.replace(
            &certs.ca.display().to_string(),
            &certs.other_ca.display().to_string(),
        ),
    )
    .unwrap();
    let refused = cl.gateway_with(wrong.to_str().unwrap());
    let log = refused
        .err()
        .expect("a gateway trusting another CA started");
    assert!(log.contains("TLS failed"), "gateway log:\n{log}");

    // Degraded reads and repair go over TLS too: two nodes down, every byte still there.
    cl.nodes[0].kill();
    cl.nodes[1].kill();
    check_all(&c, "sealed", &objects).await;
}

/// A node stopped (SIGSTOP) that the gateway does not know about yet holds no request for the
/// RPC call's timeout (5 s). Neither the refresh of the user directory, which every request
/// waits for once the cache is 5 s old, nor the metadata read of a GET, which first asks only
/// `k` drives, waits for it: they go on after a quorum and a grace, or after 500 ms.
#[tokio::test]
async fn a_stopped_node_holds_no_request_for_the_call_timeout() {
    use std::time::{Duration, Instant};
    let cl = TestCluster::start(6, 1, 1);
    cl.wait_ready(0).await;
    let c = cl.client(0);
    c.create_bucket().bucket("stall").send().await.unwrap();
    let objects = put_all(&c, "stall", "before/").await;
    cl.nodes[2].signal("STOP");
    // Past the directory cache's age, with no request in between to find the node out.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let started = Instant::now();
    check_all(&c, "stall", &objects).await;
    let took = started.elapsed();
    cl.nodes[2].signal("CONT");
    assert!(
        took < Duration::from_secs(5),
        "{} GETs took {took:?} with a stopped node: some call waited for its timeout",
        objects.len()
    );
}
