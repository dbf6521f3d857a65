//! A load generator against a live S3 endpoint: PUT, GET, HEAD, LIST and DELETE at given object
//! sizes and concurrencies, each phase bounded by a duration or an operation count.
//!
//! ```text
//! cargo bench --bench load -- --endpoint http://127.0.0.1:9000 --access-key K --secret-key S \
//!     [--ops put,get,head,list,delete] [--sizes 4KiB,1MiB,64MiB] [--concurrency 1,16,64] \
//!     [--duration 10s | --count N] [--json out.json] [--pid PID] [--cpu-pids PID,PID] \
//!     [--drop-caches] [--bucket B] [--prefix P] [--label L] [--part-size 8MiB]
//!     [--part-concurrency 10]
//! ```
//!
//! With `--part-size`, a PUT of an object of at least that size is a multipart upload, as
//! aws-cli sends one: CreateMultipartUpload, the parts (`--part-concurrency` of them in
//! flight), then CompleteMultipartUpload; its latency and MB/s are of the whole object.
//!
//! Requests are plain HTTP/1.1 over hyper with TCP_NODELAY and kept-alive connections, signed
//! with `aws-sigv4` using `UNSIGNED-PAYLOAD`, so the client hashes nothing and copies nothing:
//! every PUT sends the same reference-counted buffer, every GET body is counted and dropped.
//! For each (size, concurrency) the phases run in the order put, get, head, list, delete: GET
//! and HEAD cycle over the objects the PUT phase wrote (without a PUT phase, over the objects
//! already under the prefix, seeding a few if there are none), LIST pages through the prefix
//! (its objects/s are keys/s), DELETE removes what the PUT phase wrote. It reports, it does not
//! fail: errors are counted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, Context as _};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use clap::Parser;
use futures::{StreamExt as _, TryStreamExt as _};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde::Serialize;

/// No request may take longer than this; a stuck server ends the phase with errors, not a hang.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// How often the server's RSS is sampled during a phase.
const RSS_INTERVAL: Duration = Duration::from_millis(50);
/// Linux's USER_HZ, the unit of utime and stime in /proc/PID/stat.
const CLOCK_TICKS: f64 = 100.0;

#[derive(Parser, Debug)]
#[command(about = "S3 load generator: PUT/GET/HEAD/LIST/DELETE against a live endpoint")]
struct Args {
    /// S3 endpoint, e.g. http://127.0.0.1:9000
    #[arg(long)]
    endpoint: String,
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    access_key: String,
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY")]
    secret_key: String,
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Bucket to use (created if missing)
    #[arg(long, default_value = "tessera-bench")]
    bucket: String,
    /// Key prefix; objects are `PREFIX/SIZE/cC-wW-I`
    #[arg(long, default_value = "load")]
    prefix: String,
    /// Operations, run in the order put, get, head, list, delete whatever the order given
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "put,get,head,list,delete"
    )]
    ops: Vec<Op>,
    /// Object sizes (B, KiB, MiB, GiB, KB, MB)
    #[arg(long, value_delimiter = ',', default_value = "4KiB,1MiB,64MiB")]
    sizes: Vec<String>,
    /// Concurrent requests in flight
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    concurrency: Vec<usize>,
    /// Length of each phase (e.g. 10s, 500ms, 2m)
    #[arg(long, default_value = "10s", conflicts_with = "count")]
    duration: String,
    /// Operations per phase, instead of a duration
    #[arg(long)]
    count: Option<u64>,
    /// Write the results as JSON to this file
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// The server's process id: its peak RSS and CPU are reported per phase
    #[arg(long)]
    pid: Option<u32>,
    /// Further server processes (cluster nodes) whose CPU is added to the server's
    #[arg(long, value_delimiter = ',')]
    cpu_pids: Vec<u32>,
    /// Before each GET phase, write back and drop the page cache (root only), so that GETs
    /// read the disk rather than memory; best with --count so each object is read once
    #[arg(long)]
    drop_caches: bool,
    /// A label stored in the JSON (e.g. "server", "cluster", "degraded")
    #[arg(long, default_value = "")]
    label: String,
    /// Send each PUT of at least this size as a multipart upload of parts this size, as
    /// aws-cli does (its threshold and part size are both 8 MiB); at least 5 MiB, S3's
    /// smallest part; off unless given
    #[arg(long, value_parser = parse_part_size)]
    part_size: Option<u64>,
    /// Parts of one multipart upload in flight at once (aws-cli's default is 10)
    #[arg(long, default_value_t = 10)]
    part_concurrency: usize,
    /// Passed by `cargo bench`; ignored
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
enum Op {
    Put,
    Get,
    Head,
    List,
    Delete,
}

/// One phase's figures.
#[derive(Debug, Serialize)]
struct Outcome {
    op: Op,
    size: u64,
    size_label: String,
    concurrency: usize,
    /// Part size of a PUT sent as a multipart upload.
    part_size: Option<u64>,
    ops: u64,
    errors: u64,
    seconds: f64,
    mb_per_s: f64,
    /// Objects per second; keys per second for LIST.
    objects_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    /// Resident set of `--pid` when the phase started.
    rss_before_mib: Option<f64>,
    /// Peak resident set of `--pid` during the phase (sampled every 50 ms).
    peak_rss_mib: Option<f64>,
    /// CPU cores the server processes used on average during the phase.
    server_cpu: Option<f64>,
    /// CPU cores this load generator used on average during the phase.
    client_cpu: f64,
    first_error: Option<String>,
}

impl Outcome {
    /// The operation as the table shows it: a PUT sent in 8 MiB parts is `put/8M`.
    fn op_label(&self) -> String {
        let op = format!("{:?}", self.op).to_lowercase();
        match self.part_size {
            Some(p) if p % (1 << 20) == 0 => format!("{op}/{}M", p >> 20),
            Some(p) => format!("{op}/{p}B"),
            None => op,
        }
    }
}

#[derive(Serialize)]
struct Report<'a> {
    label: &'a str,
    endpoint: &'a str,
    results: &'a [Outcome],
}

/// Signs and sends requests; shared by all workers.
struct S3 {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    host: String,
    bucket: String,
    region: String,
    identity: Identity,
    settings: SigningSettings,
}

/// What a request brought back.
struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    body_len: u64,
    body: Option<Bytes>,
}

impl S3 {
    fn new(args: &Args) -> anyhow::Result<Self> {
        let uri: http::Uri = args.endpoint.parse().context("--endpoint")?;
        if uri.scheme_str() != Some("http") {
            bail!("--endpoint must be http://HOST:PORT");
        }
        let host = uri
            .authority()
            .ok_or_else(|| anyhow!("--endpoint has no host"))?
            .to_string();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(usize::MAX)
            .build(connector);
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let identity =
            Credentials::new(&args.access_key, &args.secret_key, None, None, "load").into();
        Ok(Self {
            client,
            base: format!("http://{host}"),
            host,
            bucket: args.bucket.clone(),
            region: args.region.clone(),
            identity,
            settings,
        })
    }

    /// Sends `method /bucket/path_and_query` with `body`, signed with UNSIGNED-PAYLOAD;
    /// reads the whole response body, keeping it only when `keep` is set.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
        keep: bool,
    ) -> anyhow::Result<Reply> {
        let uri = format!("{}/{}{}", self.base, self.bucket, path);
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(self.settings.clone())
            .build()?
            .into();
        let headers = [("host", self.host.as_str())];
        let signable = SignableRequest::new(
            method.as_str(),
            uri.as_str(),
            headers.into_iter(),
            SignableBody::UnsignedPayload,
        )?;
        let (instructions, _) = sign(signable, &params)?.into_parts();
        let mut req = Request::builder()
            .method(method)
            .uri(&uri)
            .header(http::header::HOST, &self.host)
            .body(Full::new(body))?;
        instructions.apply_to_request_http1x(&mut req);
        let exchange = async {
            let resp = self.client.request(req).await?;
            let (parts, mut body) = resp.into_parts();
            let mut body_len = 0u64;
            let mut kept = Vec::new();
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame?.into_data() {
                    body_len += data.len() as u64;
                    if keep {
                        kept.extend_from_slice(&data);
                    }
                }
            }
            anyhow::Ok(Reply {
                status: parts.status,
                headers: parts.headers,
                body_len,
                body: keep.then(|| Bytes::from(kept)),
            })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| anyhow!("no answer within {REQUEST_TIMEOUT:?}"))?
    }
}

fn expect(reply: &Reply, want: StatusCode) -> anyhow::Result<()> {
    if reply.status == want {
        return Ok(());
    }
    let body = reply
        .body
        .as_ref()
        .map(|b| {
            String::from_utf8_lossy(b)
                .chars()
                .take(300)
                .collect::<String>()
        })
        .unwrap_or_default();
    bail!("{} (wanted {want}) {body}", reply.status)
}

/// The text of every `<tag>` element in `xml` (no entities unescaped: keys here are plain).
fn elements<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        rest = &rest[i + open.len()..];
        let Some(j) = rest.find(&close) else { break };
        out.push(&rest[..j]);
        rest = &rest[j + close.len()..];
    }
    out
}

/// One ListObjectsV2 page: (keys, response bytes, continuation token).
async fn list_page(
    s3: &S3,
    prefix: &str,
    token: Option<&str>,
) -> anyhow::Result<(Vec<String>, u64, Option<String>)> {
    let mut path = format!("?list-type=2&prefix={}", prefix.replace('/', "%2F"));
    if let Some(t) = token {
        path += &format!("&continuation-token={t}");
    }
    let reply = s3.call(Method::GET, &path, Bytes::new(), true).await?;
    expect(&reply, StatusCode::OK)?;
    let text = String::from_utf8_lossy(reply.body.as_deref().unwrap_or_default()).into_owned();
    let keys = elements(&text, "Key")
        .into_iter()
        .map(str::to_owned)
        .collect();
    let next = elements(&text, "NextContinuationToken")
        .first()
        .map(|t| query_value(t));
    Ok((keys, reply.body_len, next))
}

/// `value` escaped for a query string: the characters a continuation token or an upload id
/// may hold that a query string must escape.
fn query_value(value: &str) -> String {
    value
        .replace('%', "%25")
        .replace('=', "%3D")
        .replace('+', "%2B")
        .replace('/', "%2F")
}

/// Uploads `body` to `key` as a multipart upload of `part`-byte parts, `parallel` of them in
/// flight at once, as aws-cli does; aborts the upload when a step fails.
async fn put_multipart(
    s3: &S3,
    key: &str,
    body: &Bytes,
    part: u64,
    parallel: usize,
) -> anyhow::Result<()> {
    let reply = s3
        .call(Method::POST, &format!("/{key}?uploads"), Bytes::new(), true)
        .await?;
    expect(&reply, StatusCode::OK)?;
    let text = String::from_utf8_lossy(reply.body.as_deref().unwrap_or_default()).into_owned();
    let id = elements(&text, "UploadId")
        .first()
        .map(|s| query_value(s))
        .ok_or_else(|| anyhow!("CreateMultipartUpload answered without an UploadId"))?;
    let upload = format!("/{key}?uploadId={id}");
    let len = body.len() as u64;
    let uploads = (0..len.div_ceil(part)).map(|i| {
        let range = (i * part) as usize..((i + 1) * part).min(len) as usize;
        let path = format!("/{key}?partNumber={}&uploadId={id}", i + 1);
        async move {
            let reply = s3
                .call(Method::PUT, &path, body.slice(range), false)
                .await?;
            expect(&reply, StatusCode::OK)?;
            let etag = reply
                .headers
                .get(http::header::ETAG)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| anyhow!("UploadPart answered without an ETag"))?;
            anyhow::Ok(format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{etag}</ETag></Part>",
                i + 1
            ))
        }
    });
    let parts: anyhow::Result<Vec<String>> = futures::stream::iter(uploads)
        .buffered(parallel.max(1))
        .try_collect()
        .await;
    let done = match parts {
        Ok(parts) => {
            let xml = format!(
                "<CompleteMultipartUpload>{}</CompleteMultipartUpload>",
                parts.concat()
            );
            match s3.call(Method::POST, &upload, Bytes::from(xml), true).await {
                // S3 may answer 200 and still report an error in the body.
                Ok(r) if r.status == StatusCode::OK => {
                    let text = String::from_utf8_lossy(r.body.as_deref().unwrap_or_default());
                    if text.contains("<Error>") {
                        Err(anyhow!("CompleteMultipartUpload: {text}"))
                    } else {
                        Ok(())
                    }
                }
                Ok(r) => expect(&r, StatusCode::OK),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    if done.is_err() {
        let _ = s3.call(Method::DELETE, &upload, Bytes::new(), false).await;
    }
    done
}

/// When a phase stops.
#[derive(Clone, Copy)]
enum Bound {
    Until(Instant),
    Count(u64),
}

/// The objects a PUT phase wrote, for GET, HEAD and DELETE.
#[derive(Default)]
struct Pool {
    keys: Mutex<Vec<String>>,
    cursor: AtomicUsize,
}

impl Pool {
    fn nth(&self, i: usize) -> Option<String> {
        let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        (!keys.is_empty()).then(|| keys[i % keys.len()].clone())
    }
}

/// What one worker measured.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    bytes: u64,
    objects: u64,
    errors: u64,
    first_error: Option<String>,
}

/// Runs one operation; returns (bytes moved, objects counted).
async fn one(
    s3: &S3,
    op: Op,
    ctx: &Phase,
    worker: usize,
    i: u64,
    walk: &mut Option<String>,
) -> anyhow::Result<(u64, u64)> {
    let size = ctx.payload.len() as u64;
    match op {
        Op::Put => {
            let key = format!("{}/c{}-w{worker}-{i}", ctx.prefix, ctx.concurrency);
            match ctx.part_size {
                Some(part) if size >= part => {
                    put_multipart(s3, &key, &ctx.payload, part, ctx.part_concurrency).await?
                }
                _ => {
                    let reply = s3
                        .call(Method::PUT, &format!("/{key}"), ctx.payload.clone(), false)
                        .await?;
                    expect(&reply, StatusCode::OK)?;
                }
            }
            ctx.pool
                .keys
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(key);
            Ok((size, 1))
        }
        Op::Get | Op::Head => {
            let n = ctx.pool.cursor.fetch_add(1, Ordering::Relaxed);
            let key = ctx
                .pool
                .nth(n)
                .ok_or_else(|| anyhow!("no objects to read"))?;
            let method = if op == Op::Get {
                Method::GET
            } else {
                Method::HEAD
            };
            let reply = s3
                .call(method, &format!("/{key}"), Bytes::new(), false)
                .await?;
            expect(&reply, StatusCode::OK)?;
            let length = reply
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            if length != Some(size) || (op == Op::Get && reply.body_len != size) {
                bail!(
                    "{key}: content-length {length:?}, {} body bytes, wanted {size}",
                    reply.body_len
                );
            }
            Ok((reply.body_len, 1))
        }
        Op::List => {
            let (keys, bytes, next) =
                list_page(s3, &format!("{}/", ctx.prefix), walk.as_deref()).await?;
            *walk = next;
            Ok((bytes, keys.len() as u64))
        }
        Op::Delete => unreachable!("deletes are taken from the pool in `worker`"),
    }
}

/// The shared inputs of a phase.
struct Phase {
    prefix: String,
    concurrency: usize,
    payload: Bytes,
    /// PUTs of at least this size go as multipart uploads of parts this size.
    part_size: Option<u64>,
    part_concurrency: usize,
    pool: Arc<Pool>,
    bound: Bound,
    started: AtomicU64,
}

impl Phase {
    /// Claims the next operation number, or `None` when the phase is over.
    fn next(&self) -> Option<u64> {
        let i = self.started.fetch_add(1, Ordering::Relaxed);
        match self.bound {
            Bound::Until(deadline) => (Instant::now() < deadline).then_some(i),
            Bound::Count(n) => (i < n).then_some(i),
        }
    }
}

async fn worker(s3: Arc<S3>, op: Op, ctx: Arc<Phase>, w: usize) -> Tally {
    let mut t = Tally::default();
    if matches!(op, Op::Get | Op::Head | Op::Delete) && ctx.pool.nth(0).is_none() {
        t.errors = 1;
        t.first_error = Some(format!("{op:?}: no objects to work on"));
        return t;
    }
    let mut walk = None;
    while let Some(i) = ctx.next() {
        let start = Instant::now();
        let result = if op == Op::Delete {
            let n = ctx.pool.cursor.fetch_add(1, Ordering::Relaxed);
            let key = ctx
                .pool
                .keys
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(n)
                .cloned();
            let Some(key) = key else { break };
            match s3
                .call(Method::DELETE, &format!("/{key}"), Bytes::new(), false)
                .await
            {
                Ok(r) => expect(&r, StatusCode::NO_CONTENT).map(|()| (0, 1)),
                Err(e) => Err(e),
            }
        } else {
            one(&s3, op, &ctx, w, i, &mut walk).await
        };
        match result {
            Ok((bytes, objects)) => {
                let us = start.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                t.latencies_us.push(us);
                t.bytes += bytes;
                t.objects += objects;
            }
            Err(e) => {
                t.errors += 1;
                t.first_error
                    .get_or_insert_with(|| format!("{op:?}: {e:#}"));
            }
        }
    }
    t
}

/// `sync`, then drops clean pages, dentries and inodes; warns when not permitted.
fn drop_page_cache() {
    let synced = std::process::Command::new("sync")
        .status()
        .is_ok_and(|s| s.success());
    if let Err(e) = std::fs::write("/proc/sys/vm/drop_caches", "3") {
        eprintln!("load: cannot drop the page cache ({e}); GETs may be served from memory");
    } else if !synced {
        eprintln!("load: sync failed; dirty pages stayed cached");
    }
}

/// Resident set and CPU seconds of a process, from /proc.
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / CLOCK_TICKS)
}

fn server_cpu(pids: &[u32]) -> Option<f64> {
    pids.iter().map(|p| cpu_seconds(&p.to_string())).sum()
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[i]) / 1000.0
}

#[allow(clippy::too_many_arguments)]
async fn run_phase(
    s3: &Arc<S3>,
    args: &Args,
    op: Op,
    size_label: &str,
    payload: &Bytes,
    concurrency: usize,
    pool: &Arc<Pool>,
    bound: Bound,
) -> Outcome {
    let phase = Arc::new(Phase {
        prefix: format!("{}/{size_label}", args.prefix),
        concurrency,
        payload: payload.clone(),
        part_size: args.part_size,
        part_concurrency: args.part_concurrency,
        pool: pool.clone(),
        bound,
        started: AtomicU64::new(0),
    });
    pool.cursor.store(0, Ordering::Relaxed);
    if op == Op::Get && args.drop_caches {
        drop_page_cache();
    }
    let mut pids: Vec<u32> = args.pid.into_iter().collect();
    pids.extend(&args.cpu_pids);
    let rss_before = args.pid.and_then(rss_mib);
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = args.pid.map(|pid| {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut peak = 0.0f64;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(rss_mib(pid).unwrap_or(0.0));
                tokio::time::sleep(RSS_INTERVAL).await;
            }
            peak.max(rss_mib(pid).unwrap_or(0.0))
        })
    });
    let (cpu0, self0) = (server_cpu(&pids), cpu_seconds("self"));
    let start = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|w| tokio::spawn(worker(s3.clone(), op, phase.clone(), w)))
        .collect();
    let mut all = Tally::default();
    for w in workers {
        let t = w.await.unwrap_or_default();
        all.latencies_us.extend(t.latencies_us);
        all.bytes += t.bytes;
        all.objects += t.objects;
        all.errors += t.errors;
        if all.first_error.is_none() {
            all.first_error = t.first_error;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu = |before: Option<f64>, after: Option<f64>| Some((after? - before?) / seconds);
    let server = if pids.is_empty() {
        None
    } else {
        cpu(cpu0, server_cpu(&pids))
    };
    let client = cpu(self0, cpu_seconds("self")).unwrap_or(0.0);
    stop.store(true, Ordering::Relaxed);
    let peak = match sampler {
        Some(s) => s.await.ok(),
        None => None,
    };
    all.latencies_us.sort_unstable();
    Outcome {
        op,
        size: payload.len() as u64,
        size_label: size_label.to_owned(),
        concurrency,
        part_size: args
            .part_size
            .filter(|&p| op == Op::Put && payload.len() as u64 >= p),
        ops: all.latencies_us.len() as u64,
        errors: all.errors,
        seconds,
        mb_per_s: all.bytes as f64 / seconds / 1e6,
        objects_per_s: all.objects as f64 / seconds,
        p50_ms: percentile(&all.latencies_us, 0.50),
        p99_ms: percentile(&all.latencies_us, 0.99),
        p999_ms: percentile(&all.latencies_us, 0.999),
        rss_before_mib: rss_before,
        peak_rss_mib: peak,
        server_cpu: server,
        client_cpu: client,
        first_error: all.first_error,
    }
}

fn parse_size(s: &str) -> anyhow::Result<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().with_context(|| format!("size {s:?}"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => bail!("unknown size unit {other:?}"),
    };
    Ok(n * mult)
}

/// A `--part-size`: S3 takes no part but the last below 5 MiB.
fn parse_part_size(s: &str) -> anyhow::Result<u64> {
    let n = parse_size(s)?;
    if n < 5 << 20 {
        bail!("a part is at least 5 MiB (S3's smallest part but the last), not {s}");
    }
    Ok(n)
}

fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().with_context(|| format!("duration {s:?}"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        other => bail!("unknown duration unit {other:?}"),
    };
    Ok(Duration::from_secs_f64(secs))
}

/// Makes sure the bucket exists.
async fn create_bucket(s3: &S3) -> anyhow::Result<()> {
    let reply = s3.call(Method::PUT, "", Bytes::new(), true).await?;
    let body = String::from_utf8_lossy(reply.body.as_deref().unwrap_or_default()).into_owned();
    if reply.status.is_success() || body.contains("BucketAlreadyOwnedByYou") {
        return Ok(());
    }
    expect(&reply, StatusCode::OK)
}

/// Objects already under `prefix` (at most `limit`), for a run without a PUT phase.
async fn existing(s3: &S3, prefix: &str, limit: usize) -> anyhow::Result<Vec<String>> {
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let (page, _, next) = list_page(s3, prefix, token.as_deref()).await?;
        keys.extend(page);
        token = next;
        if token.is_none() || keys.len() >= limit {
            return Ok(keys);
        }
    }
}

fn print_table(results: &[Outcome]) {
    println!(
        "{:<7}{:>8}{:>6}{:>9}{:>7}{:>10}{:>11}{:>9}{:>9}{:>10}{:>10}{:>8}{:>8}",
        "op",
        "size",
        "conc",
        "ops",
        "errors",
        "MB/s",
        "obj/s",
        "p50 ms",
        "p99 ms",
        "p999 ms",
        "RSS MiB",
        "srv cpu",
        "cli cpu"
    );
    let opt = |v: Option<f64>, prec: usize| v.map_or("-".to_owned(), |v| format!("{v:.prec$}"));
    for r in results {
        println!(
            "{:<7}{:>8}{:>6}{:>9}{:>7}{:>10.1}{:>11.1}{:>9.2}{:>9.2}{:>10.2}{:>10}{:>8}{:>8.2}",
            r.op_label(),
            r.size_label,
            r.concurrency,
            r.ops,
            r.errors,
            r.mb_per_s,
            r.objects_per_s,
            r.p50_ms,
            r.p99_ms,
            r.p999_ms,
            opt(r.peak_rss_mib, 0),
            opt(r.server_cpu, 2),
            r.client_cpu
        );
    }
    for r in results.iter().filter(|r| r.first_error.is_some()) {
        eprintln!(
            "first error, {:?} {} c{}: {}",
            r.op,
            r.size_label,
            r.concurrency,
            r.first_error.as_deref().unwrap_or("")
        );
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let s3 = Arc::new(S3::new(&args)?);
    let bound = |d: Duration| match args.count {
        Some(n) => Bound::Count(n),
        None => Bound::Until(Instant::now() + d),
    };
    let duration = parse_duration(&args.duration)?;
    let mut ops = args.ops.clone();
    ops.sort_unstable();
    ops.dedup();
    create_bucket(&s3).await.context("creating the bucket")?;
    let mut results = Vec::new();
    let mut payloads: HashMap<u64, Bytes> = HashMap::new();
    for label in &args.sizes {
        let size = parse_size(label)?;
        let payload = payloads
            .entry(size)
            .or_insert_with(|| {
                (0..size)
                    .map(|i| (i * 7 + i / 251) as u8)
                    .collect::<Vec<u8>>()
                    .into()
            })
            .clone();
        for &concurrency in &args.concurrency {
            let pool = Arc::new(Pool::default());
            let reads = ops
                .iter()
                .any(|o| matches!(o, Op::Get | Op::Head | Op::Delete));
            if !ops.contains(&Op::Put) && reads {
                // Objects written by an earlier run (e.g. before nodes were stopped).
                let prefix = format!("{}/{label}/", args.prefix);
                let found = existing(&s3, &prefix, 100_000)
                    .await
                    .context("listing existing objects")?;
                *pool.keys.lock().unwrap_or_else(|e| e.into_inner()) = found;
                if pool.nth(0).is_none() {
                    let seed = run_phase(
                        &s3,
                        &args,
                        Op::Put,
                        label,
                        &payload,
                        concurrency,
                        &pool,
                        Bound::Count(concurrency.max(4) as u64),
                    )
                    .await;
                    if seed.errors > 0 {
                        bail!("seeding {label}: {}", seed.first_error.unwrap_or_default());
                    }
                }
            }
            for &op in &ops {
                let r = run_phase(
                    &s3,
                    &args,
                    op,
                    label,
                    &payload,
                    concurrency,
                    &pool,
                    bound(duration),
                )
                .await;
                eprintln!(
                    "{} {label} c{concurrency}: {} ops, {:.1} MB/s, {:.1}/s, p99 {:.2} ms, {} errors",
                    r.op_label(), r.ops, r.mb_per_s, r.objects_per_s, r.p99_ms, r.errors
                );
                results.push(r);
            }
        }
    }
    print_table(&results);
    if let Some(path) = &args.json {
        let report = Report {
            label: &args.label,
            endpoint: &args.endpoint,
            results: &results,
        };
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn main() {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("load: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(args)) {
        eprintln!("load: {e:#}");
        std::process::exit(1);
    }
}
