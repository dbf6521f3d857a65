//! Test harness: starts the real `tessera` binary on free ports over a temporary data folder,
//! and kills it (and removes the folder) when the test ends, even when it fails.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};

pub const ACCESS_KEY: &str = "TESTACCESSKEY0000001";
pub const SECRET_KEY: &str = "testsecretkey/with+chars0000000000000001";

/// A running `tessera server`.
pub struct TestServer {
    child: Option<Child>,
    pub s3_url: String,
    pub admin_url: String,
    pub data: PathBuf,
    pub log: PathBuf,
}

impl TestServer {
    /// Starts a server over `data` (created if needed) with extra flags.
    pub fn start(data: &Path, extra: &[&str]) -> Self {
        Self::start_env(data, extra, &[])
    }

    /// Starts a server with extra flags and environment variables.
    pub fn start_env(data: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let log = data.with_extension("log");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .arg("server")
            .arg("--data")
            .arg(data)
            .args(["--address", "127.0.0.1:0", "--admin-address", "127.0.0.1:0"])
            .args(extra)
            .env("TESSERA_ROOT_ACCESS_KEY", ACCESS_KEY)
            .env("TESSERA_ROOT_SECRET_KEY", SECRET_KEY)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start tessera");
        let out = child.stdout.take().expect("stdout");
        let mut s3_url = String::new();
        let mut admin_url = String::new();
        for line in BufReader::new(out).lines() {
            let line = line.expect("read stdout");
            if let Some(u) = line.trim().strip_prefix("S3 API:") {
                s3_url = u.trim().to_string();
            }
            if let Some(u) = line.trim().strip_prefix("admin:") {
                admin_url = u.trim().to_string();
            }
            if line.trim() == "ready" {
                break;
            }
        }
        if s3_url.is_empty() {
            let _ = child.kill();
            panic!(
                "tessera did not start; log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        Self {
            child: Some(child),
            s3_url,
            admin_url,
            data: data.to_path_buf(),
            log,
        }
    }

    /// An SDK client with its default checksum behaviour and no retries.
    pub async fn client(&self) -> aws_sdk_s3::Client {
        client_with(&self.s3_url, ACCESS_KEY, SECRET_KEY)
    }

    /// The server's resident memory in bytes (from /proc), 0 when it is not running.
    pub fn rss(&self) -> u64 {
        self.status_bytes("VmRSS:")
    }

    /// The server's peak resident memory since it started, in bytes (`VmHWM`): unlike a
    /// sampled `rss`, it misses no spike.
    pub fn peak_rss(&self) -> u64 {
        self.status_bytes("VmHWM:")
    }

    fn status_bytes(&self, field: &str) -> u64 {
        self.child
            .as_ref()
            .map_or(0, |c| proc_status_bytes(c.id(), field))
    }

    /// Stops the server with SIGKILL and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// True while the process runs.
    pub fn alive(&mut self) -> bool {
        match &mut self.child {
            Some(c) => c.try_wait().ok().flatten().is_none(),
            None => false,
        }
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A client for `url` with the given keys.
pub fn client_with(url: &str, ak: &str, sk: &str) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(Credentials::new(ak, sk, None, None, "test"))
        .force_path_style(true)
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// A size field of `/proc/PID/status` (`VmRSS:`, `VmHWM:`), in bytes; 0 when the process
/// is gone.
pub fn proc_status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Deterministic pseudo-random bytes.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The bytes of `bucket/key` (a version, a byte range, when given); panics with the error.
pub async fn get_with(
    c: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    version: Option<&str>,
    range: Option<&str>,
) -> Vec<u8> {
    c.get_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(version.map(str::to_string))
        .set_range(range.map(str::to_string))
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {key} {version:?} {range:?}: {e:?}"))
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes()
        .to_vec()
}

/// Sets `bucket`'s versioning to `status`.
pub async fn set_versioning(
    c: &aws_sdk_s3::Client,
    bucket: &str,
    status: aws_sdk_s3::types::BucketVersioningStatus,
) {
    c.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(status)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// The bytes of `bucket/key`.
pub async fn get_bytes(c: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    get_with(c, bucket, key, None, None).await
}

/// Every shard file under a drive folder (or under every drive of a data folder).
pub fn shard_files(root: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.components().any(|c| c.as_os_str() == "shards") {
                out.push(p);
            }
        }
    }
    out
}

/// The S3 error code of a failed SDK call.
pub fn code<E, R>(err: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    match err.as_service_error() {
        Some(e) => e.code().unwrap_or("<none>").to_string(),
        None => format!("<not a service error: {err:?}>"),
    }
}

/// The names `ListBuckets` gives, in its order.
pub async fn bucket_names(c: &aws_sdk_s3::Client) -> Vec<String> {
    c.list_buckets()
        .send()
        .await
        .unwrap()
        .buckets()
        .iter()
        .map(|b| b.name().unwrap().to_string())
        .collect()
}

/// The HTTP status of a failed SDK call.
pub fn status<E>(
    err: &aws_sdk_s3::error::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> u16 {
    err.raw_response().map(|r| r.status().as_u16()).unwrap_or(0)
}
/// Uploads `body` as a multipart object in parts of `part` bytes (the last may be shorter)
/// and completes it; the first failure is returned as its S3 error code.
pub async fn put_multipart(
    c: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: &[u8],
    part: usize,
) -> Result<(), String> {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    let up = c
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| code(&e))?;
    let id = up.upload_id().unwrap_or_default().to_string();
    let mut parts = Vec::new();
    for (n, chunk) in body.chunks(part).enumerate() {
        let p = c
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(&id)
            .part_number(n as i32 + 1)
            .body(aws_sdk_s3::primitives::ByteStream::from(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| code(&e))?;
        parts.push(
            CompletedPart::builder()
                .part_number(n as i32 + 1)
                .e_tag(p.e_tag().unwrap_or_default())
                .build(),
        );
    }
    c.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .map_err(|e| code(&e))?;
    Ok(())
}

pub mod cluster;

/// Certificates made by openssl (Debian's) for a test: a CA, a server certificate it signed
/// for 127.0.0.1 and localhost, and an unrelated second CA.
pub struct TestCerts {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub other_ca: PathBuf,
}

/// Makes [`TestCerts`] in `dir`.
pub fn make_certs(dir: &Path) -> TestCerts {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for name in ["ca", "other-ca"] {
        let subj = format!("/CN=tessera test {name}");
        let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
        let mut a = vec![
            "req", "-x509", "-days", "2", "-subj", &subj, "-keyout", &key, "-out", &pem,
        ];
        a.extend(ec);
        run(&a);
    }
    let mut a = vec![
        "req",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ];
    a.extend(ec);
    run(&a);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ]);
    TestCerts {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        other_ca: dir.join("other-ca.pem"),
    }
}

/// Removes a drive folder that a running process is still writing into (RocksDB may create a
/// file in it between `rm`'s listing and its last `rmdir`), as an operator's `rm -rf` repeated
/// until it succeeds would; bounded to 5 s.
pub fn remove_live_dir(dir: &std::path::Path) {
    for _ in 0..250 {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
    std::fs::remove_dir_all(dir).unwrap_or_else(|e| panic!("cannot remove {}: {e}", dir.display()));
}

/// An erasure set of six drive folders `drive-0`..`drive-5` under `dir`, 4+2 with 1 MiB
/// stripes, for tests that drive the object layer directly.
pub fn local_set(dir: &Path, inline_limit: usize) -> tessera::object::ErasureSet {
    use std::sync::Arc;
    use tessera::drive::{local::LocalDrive, Drive};
    let drives = (0..6)
        .map(|i| -> Arc<dyn Drive> {
            Arc::new(LocalDrive::open(&dir.join(format!("drive-{i}"))).unwrap())
        })
        .collect();
    tessera::object::ErasureSet::new(
        drives,
        tessera::erasure::Codec::new(4, 2, 1 << 20).unwrap(),
        inline_limit,
    )
}
