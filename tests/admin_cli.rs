//! `tessera admin` against a running `tessera server`: tables of drives and buckets, the
//! cluster status, and repair steered from the command line (a scan limited to a prefix
//! rebuilds only what is under it; pause and resume), with the credentials it may use.

mod common;

use std::process::Output;

use aws_sdk_s3::primitives::ByteStream;
use common::{data, get_bytes, shard_files, TestServer, ACCESS_KEY, SECRET_KEY};

/// Runs `tessera admin --url <server> ARGS` with the given extra environment.
fn admin(s: &TestServer, args: &[&str], env: &[(&str, &str)]) -> Output {
    let empty = s.data.with_extension("no-credentials");
    std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("admin")
        .args(["--url", &s.admin_url])
        .arg("--data")
        .arg(&empty)
        .args(args)
        .env_remove("TESSERA_ADMIN_TOKEN")
        .env_remove("TESSERA_ROOT_ACCESS_KEY")
        .env_remove("TESSERA_ROOT_SECRET_KEY")
        .envs(env.iter().copied())
        .output()
        .expect("run tessera admin")
}

const KEYS: [(&str, &str); 2] = [
    ("TESSERA_ROOT_ACCESS_KEY", ACCESS_KEY),
    ("TESSERA_ROOT_SECRET_KEY", SECRET_KEY),
];

/// Standard output of a command that must succeed.
fn ok(o: Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "tessera admin failed: {}\nstdout:\n{out}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_cli_shows_the_server_and_steers_repair() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_env(
        &dir.path().join("data"),
        &[],
        &[("TESSERA_ADMIN_TOKEN", "cli-test-token")],
    );
    let c = s.client().await;
    c.create_bucket().bucket("cli").send().await.unwrap();
    let mut written = Vec::new();
    for key in ["p/0", "p/1", "p/2", "q/0"] {
        let body = data(300_000, key.len() as u64 + written.len() as u64);
        c.put_object()
            .bucket("cli")
            .key(key)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
        written.push((key, body));
    }

    let out = ok(admin(&s, &["buckets"], &KEYS));
    let row = out.lines().find(|l| l.starts_with("cli ")).expect(&out);
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[1], "4", "objects: {out}");
    assert_eq!(cells[2], "4", "versions: {out}");

    let out = ok(admin(&s, &["drives"], &KEYS));
    assert_eq!(
        out.lines().filter(|l| l.contains(" online ")).count(),
        6,
        "{out}"
    );

    let out = ok(admin(&s, &["status"], &KEYS));
    assert!(out.contains("health: HEALTHY"), "{out}");
    assert!(out.contains("6 of 6 drives online"), "{out}");

    // Every shard file of drive 0 goes; the scanner's next pass is an hour away, so only the
    // requested scan of `p/` puts anything back, and only what is under `p/`.
    let drive0 = s.data.join("drive-0");
    let before = shard_files(&drive0);
    assert_eq!(before.len(), 4, "one shard file per object on drive 0");
    for f in &before {
        std::fs::remove_file(f).unwrap();
    }
    let out = ok(admin(
        &s,
        &[
            "heal", "start", "--bucket", "cli", "--prefix", "p/", "--wait",
        ],
        &[("TESSERA_ADMIN_TOKEN", "cli-test-token")],
    ));
    assert!(out.contains("scan started on sets 0"), "{out}");
    assert!(
        out.contains("requested scan of cli/p/: done, 3 versions checked"),
        "{out}"
    );
    assert_eq!(
        shard_files(&drive0).len(),
        3,
        "the p/ objects rebuilt on drive 0, q/0 not: {out}"
    );
    let out = ok(admin(&s, &["heal", "status"], &KEYS));
    assert!(out.contains("healed 3 versions"), "{out}");

    let out = ok(admin(&s, &["heal", "pause"], &KEYS));
    assert!(out.contains("repair paused on sets 0"), "{out}");
    let out = ok(admin(&s, &["heal", "status"], &KEYS));
    assert!(out.starts_with("repair: PAUSED"), "{out}");
    let out = ok(admin(&s, &["status"], &KEYS));
    assert!(out.contains("(repair PAUSED)"), "{out}");
    ok(admin(&s, &["heal", "resume"], &KEYS));
    let out = ok(admin(&s, &["heal", "status"], &KEYS));
    assert!(out.starts_with("repair: running"), "{out}");

    // A full deep scan, followed to its end, rebuilds q/0 too.
    let out = ok(admin(&s, &["heal", "start", "--deep", "--wait"], &KEYS));
    assert!(out.contains("idle, last pass"), "{out}");
    assert_eq!(shard_files(&drive0).len(), 4, "{out}");
    for (key, body) in &written {
        assert_eq!(&get_bytes(&c, "cli", key).await, body, "{key}");
    }

    // Wrong or missing credentials: a clear refusal and a failing exit status.
    let o = admin(&s, &["--token", "wrong", "drives"], &[]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("403"), "{err}");
    let o = admin(&s, &["drives"], &[]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no credentials"), "{err}");
    let o = admin(
        &s,
        &["drives"],
        &[
            ("TESSERA_ROOT_ACCESS_KEY", ACCESS_KEY),
            ("TESSERA_ROOT_SECRET_KEY", "not-the-secret"),
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("403"), "{err}");
}

/// With `TESSERA_LOG_FORMAT=json`, each S3 request is one JSON log line carrying the request
/// id that the client got in `x-amz-request-id`, with its operation and status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_s3_request_is_one_json_log_line_with_its_request_id() {
    use aws_sdk_s3::operation::RequestId;
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_env(
        &dir.path().join("data"),
        &[],
        &[("TESSERA_LOG_FORMAT", "json")],
    );
    let c = s.client().await;
    c.create_bucket().bucket("logs").send().await.unwrap();
    let put = c
        .put_object()
        .bucket("logs")
        .key("k")
        .body(ByteStream::from_static(b"hello"))
        .send()
        .await
        .unwrap();
    let put_id = put.request_id().expect("x-amz-request-id").to_string();
    let err = c
        .get_object()
        .bucket("logs")
        .key("missing")
        .send()
        .await
        .unwrap_err();
    let get_id = err
        .as_service_error()
        .and_then(|e| e.request_id())
        .expect("x-amz-request-id on the error")
        .to_string();
    assert_ne!(put_id, get_id);
    let log = s.log_text();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(!lines.is_empty(), "no JSON log lines:\n{log}");
    for (id, op, status) in [(&put_id, "PutObject", 200), (&get_id, "GetObject", 404)] {
        let mine: Vec<&serde_json::Value> = lines
            .iter()
            .filter(|l| l["fields"]["request_id"] == id.as_str())
            .collect();
        assert_eq!(mine.len(), 1, "one line for request {id}:\n{log}");
        let f = &mine[0]["fields"];
        assert_eq!(f["message"], "s3 request", "{f}");
        assert_eq!(f["op"], op, "{f}");
        assert_eq!(f["status"], status, "{f}");
        assert_eq!(mine[0]["level"], "INFO", "{f}");
    }
}

/// `tessera admin` over HTTPS: trusts the certificate through `--ca-bundle`, and refuses one
/// that the given CA did not sign (or that the system does not trust) with a clear message.
#[test]
fn the_admin_cli_speaks_https() {
    let dir = tempfile::tempdir().unwrap();
    let certs = common::make_certs(dir.path());
    let s = TestServer::start_env(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            certs.cert.to_str().unwrap(),
            "--tls-key",
            certs.key.to_str().unwrap(),
        ],
        &[],
    );
    assert!(s.admin_url.starts_with("https://"), "{}", s.admin_url);
    let ca = certs.ca.to_str().unwrap();
    let out = ok(admin(&s, &["--ca-bundle", ca, "status"], &KEYS));
    assert!(out.contains("health: HEALTHY"), "{out}");
    let out = ok(admin(
        &s,
        &["drives"],
        &[KEYS[0], KEYS[1], ("TESSERA_CA_BUNDLE", ca)],
    ));
    assert!(out.contains("online"), "{out}");

    for args in [
        vec!["--ca-bundle", certs.other_ca.to_str().unwrap(), "status"],
        vec!["status"],
    ] {
        let o = admin(&s, &args, &KEYS);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(err.contains("TLS"), "{args:?}: {err}");
    }
}
