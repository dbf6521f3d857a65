//! `RemoteDrive`: the `Drive` trait over the node RPC (`drive::proto`). Calls share one
//! HTTP/2 connection per node, each has a deadline, and a drive whose calls keep failing is
//! marked offline for a while, so a dead node costs a request no more than one timeout; the
//! first call after that is the probe that brings it back.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use serde::de::DeserializeOwned;

use super::proto::{Call, WireError};
use super::record::{
    BucketRecord, FormatRecord, HealHint, ListEntry, PartRecord, UploadRecord, VersionRecord,
};
use super::{Drive, DriveError, HintRemoval, ShardWriter, Space};
use crate::cluster::auth;

/// Deadline of a metadata call.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Deadline of a shard read, and of each frame of a shard write.
const DATA_TIMEOUT: Duration = Duration::from_secs(30);
/// Consecutive failures after which the drive is treated as offline.
const FAILURES_TO_OFFLINE: u32 = 2;
/// How often an offline drive is probed in the background.
const PROBE_EVERY: Duration = Duration::from_millis(500);

/// The HTTP/2 client gateways and nodes use for node RPC: plain HTTP, or HTTPS verified
/// against the cluster's CA when the topology has `[rpc_tls]`. Cheap to clone (one
/// connection per node, shared).
#[derive(Clone)]
pub struct RpcClient {
    http: Client<HttpsConnector<HttpConnector>, Body>,
    scheme: &'static str,
}

impl RpcClient {
    /// The URL of `path` on the node at `address` (`host:port`).
    pub fn url(&self, address: &str, path: &str) -> String {
        format!("{}://{address}{path}", self.scheme)
    }

    /// Sends one request.
    pub fn request(&self, req: hyper::Request<Body>) -> hyper_util::client::legacy::ResponseFuture {
        self.http.request(req)
    }
}

/// The node RPC client; with `ca` (PEM file) it speaks only HTTPS and trusts only the
/// certificates that CA signed.
pub fn rpc_client(ca: Option<&std::path::Path>) -> anyhow::Result<RpcClient> {
    let mut conn = HttpConnector::new();
    conn.set_nodelay(true);
    conn.set_connect_timeout(Some(Duration::from_secs(2)));
    let tls =
        hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(crate::tls::client_config(ca)?);
    let (https, scheme) = match ca {
        None => (
            tls.https_or_http().enable_http2().wrap_connector(conn),
            "http",
        ),
        Some(_) => {
            conn.enforce_http(false);
            (
                tls.https_only().enable_http2().wrap_connector(conn),
                "https",
            )
        }
    };
    let http = Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .http2_adaptive_window(true)
        .http2_initial_stream_window_size(4 << 20)
        .http2_initial_connection_window_size(16 << 20)
        .http2_max_frame_size(crate::drive::proto::RPC_MAX_FRAME)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .http2_keep_alive_timeout(Duration::from_secs(5))
        .timer(hyper_util::rt::TokioTimer::new())
        .build(https);
    Ok(RpcClient { http, scheme })
}

#[derive(Default)]
struct Health {
    failures: AtomicU32,
    offline: AtomicBool,
    /// When a call last succeeded (ms since the epoch; 0: not yet).
    last_ok_ms: std::sync::atomic::AtomicU64,
    /// When the drive was last marked offline, and when it last came back (ms since the
    /// epoch; 0: never).
    offline_since_ms: std::sync::atomic::AtomicU64,
    back_online_ms: std::sync::atomic::AtomicU64,
}

/// A drive abandoned as too slow is marked offline only when none of its calls has succeeded
/// for this long: a stopped node, not one that is merely slower than its peers under load.
const SLOW_TO_OFFLINE_MS: u64 = 1000;

/// A drive of another node.
#[derive(Clone)]
pub struct RemoteDrive {
    client: RpcClient,
    base: String,
    /// `host:port`, the label of its metrics.
    address: Arc<str>,
    index: usize,
    secret: Arc<str>,
    topology: Arc<str>,
    health: Arc<Health>,
    /// Calls are repair's, not a client's: the node lets client calls go first.
    background: bool,
}

impl RemoteDrive {
    /// Drive `index` of the node at `address` (`host:port`), for a gateway whose topology
    /// hash is `topology` (sent with every call; a node of another topology refuses it).
    pub fn new(
        client: RpcClient,
        address: &str,
        index: usize,
        secret: Arc<str>,
        topology: Arc<str>,
    ) -> Self {
        Self {
            base: client.url(address, ""),
            address: address.into(),
            client,
            index,
            secret,
            topology,
            health: Arc::new(Health::default()),
            background: false,
        }
    }

    /// The same drive, for repair's calls (marked as background work).
    pub fn background(mut self) -> Self {
        self.background = true;
        self
    }

    fn check_online(&self) -> Result<(), DriveError> {
        if self.health.offline.load(Ordering::Relaxed) {
            return Err(DriveError::Offline(format!(
                "{} is offline",
                self.endpoint()
            )));
        }
        Ok(())
    }

    /// True while the drive is marked offline.
    pub fn is_offline(&self) -> bool {
        self.health.offline.load(Ordering::Relaxed)
    }

    fn record<T>(&self, r: &Result<T, DriveError>) {
        match r {
            Err(DriveError::Offline(_)) | Err(DriveError::Io(_)) => {
                let n = self.health.failures.fetch_add(1, Ordering::Relaxed) + 1;
                if n >= FAILURES_TO_OFFLINE && !self.health.offline.swap(true, Ordering::Relaxed) {
                    self.health
                        .offline_since_ms
                        .store(super::record::now_ms(), Ordering::Relaxed);
                    tracing::warn!(drive = %self.endpoint(), "drive marked offline; probing it in the background");
                    self.start_probe();
                }
            }
            _ => {
                self.health.failures.store(0, Ordering::Relaxed);
                self.health
                    .last_ok_ms
                    .store(super::record::now_ms(), Ordering::Relaxed);
            }
        }
    }

    /// Probes an offline drive until it answers, then puts it back in service.
    fn start_probe(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROBE_EVERY).await;
                let path = format!("/rpc/v1/drive/{}/call", this.index);
                let Ok(body) = serde_json::to_vec(&Call::ReadFormat) else {
                    return;
                };
                let Ok(req) = this.request("POST", &path, Body::from(body)) else {
                    return;
                };
                if this.exchange(req, CALL_TIMEOUT).await.is_ok() {
                    this.health.failures.store(0, Ordering::Relaxed);
                    this.health.offline.store(false, Ordering::Relaxed);
                    this.health
                        .back_online_ms
                        .store(super::record::now_ms(), Ordering::Relaxed);
                    tracing::info!(drive = %this.endpoint(), "drive back online");
                    return;
                }
            }
        });
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        body: Body,
    ) -> Result<hyper::Request<Body>, DriveError> {
        let mut b = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (k, v) in auth::sign(&self.secret, method, path) {
            b = b.header(k, v);
        }
        b = b.header(auth::TOPOLOGY, &*self.topology);
        if self.background {
            b = b.header(super::proto::BACKGROUND, "1");
        }
        b.body(body)
            .map_err(|e| DriveError::Offline(format!("request: {e}")))
    }

    /// Sends a request and reads the whole answer, within `deadline`, unless the drive is
    /// offline; failures count towards marking it offline.
    async fn send(
        &self,
        req: hyper::Request<Body>,
        deadline: Duration,
    ) -> Result<Bytes, DriveError> {
        self.check_online()?;
        let started = std::time::Instant::now();
        let r = self.exchange(req, deadline).await;
        let failed = matches!(&r, Err(e) if !matches!(e, DriveError::NotFound));
        crate::metrics::get().rpc_call(&self.address, failed, started.elapsed());
        self.record(&r);
        r
    }

    /// One request and its whole answer, within `deadline`.
    async fn exchange(
        &self,
        req: hyper::Request<Body>,
        deadline: Duration,
    ) -> Result<Bytes, DriveError> {
        let client = self.client.clone();
        let fut = async move {
            let resp = client
                .request(req)
                .await
                .map_err(|e| DriveError::Offline(format!("rpc: {e}")))?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| DriveError::Offline(format!("rpc body: {e}")))?
                .to_bytes();
            if status.is_success() {
                Ok(body)
            } else {
                match serde_json::from_slice::<WireError>(&body) {
                    Ok(w) => Err(w.into()),
                    Err(_) => Err(DriveError::Offline(format!(
                        "rpc status {status}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(300)])
                    ))),
                }
            }
        };
        match tokio::time::timeout(deadline, fut).await {
            Ok(r) => r,
            Err(_) => Err(DriveError::Offline(format!(
                "{} timed out",
                self.endpoint()
            ))),
        }
    }

    async fn call<T: DeserializeOwned>(&self, call: Call) -> Result<T, DriveError> {
        let body = serde_json::to_vec(&call).map_err(|e| DriveError::Corrupt(e.to_string()))?;
        let path = format!("/rpc/v1/drive/{}/call", self.index);
        let req = self.request("POST", &path, Body::from(body))?;
        let raw = self.send(req, CALL_TIMEOUT).await?;
        serde_json::from_slice(&raw).map_err(|e| DriveError::Corrupt(format!("rpc reply: {e}")))
    }
}

/// A shard file streamed to a node: frames go through a bounded channel into the request
/// body; `commit` sends the zero-length marker and waits for the node's answer.
struct RemoteShardWriter {
    tx: Option<tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>>,
    response: tokio::task::JoinHandle<Result<Bytes, DriveError>>,
}

#[async_trait]
impl ShardWriter for RemoteShardWriter {
    async fn write(&mut self, frame: crate::erasure::frame::Framed) -> Result<(), DriveError> {
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| DriveError::Offline("shard stream closed".into()))?;
        // The length and hash go as one small chunk, the block as another: it is not copied.
        let mut head = Vec::with_capacity(4 + frame.hash.len());
        head.extend_from_slice(&super::proto::frame_header(frame.len()));
        head.extend_from_slice(&frame.hash);
        let sent = tokio::time::timeout(DATA_TIMEOUT, async {
            tx.send(Ok(Bytes::from(head))).await?;
            tx.send(Ok(frame.block)).await
        })
        .await;
        match sent {
            Ok(Ok(())) => Ok(()),
            _ => Err(DriveError::Offline("shard stream to node failed".into())),
        }
    }

    async fn commit(mut self: Box<Self>) -> Result<(), DriveError> {
        let tx = self
            .tx
            .take()
            .ok_or_else(|| DriveError::Offline("shard stream closed".into()))?;
        if tx
            .send(Ok(Bytes::from_static(&super::proto::COMMIT)))
            .await
            .is_err()
        {
            return Err(DriveError::Offline("shard stream to node failed".into()));
        }
        drop(tx);
        match tokio::time::timeout(DATA_TIMEOUT, &mut self.response).await {
            Ok(Ok(r)) => r.map(|_| ()),
            _ => Err(DriveError::Offline("no answer to shard commit".into())),
        }
    }
}

impl Drop for RemoteShardWriter {
    fn drop(&mut self) {
        // Without the commit marker the node discards the file; end the body with an error
        // so it learns at once.
        if let Some(tx) = self.tx.take() {
            let _ = tx.try_send(Err(std::io::Error::other("aborted")));
            // A node that is stopped would hold the request open: drop it here.
            self.response.abort();
        }
    }
}

#[async_trait]
impl Drive for RemoteDrive {
    fn endpoint(&self) -> String {
        format!("{}/drive/{}", self.base, self.index)
    }

    async fn read_format(&self) -> Result<Option<FormatRecord>, DriveError> {
        self.call(Call::ReadFormat).await
    }

    async fn write_format(&self, format: &FormatRecord) -> Result<(), DriveError> {
        self.call(Call::WriteFormat {
            format: format.clone(),
        })
        .await
    }

    async fn create_shard(
        &self,
        bucket: &str,
        data_dir: &str,
    ) -> Result<Box<dyn ShardWriter>, DriveError> {
        self.check_online()?;
        // A frame is two chunks (header, block): room for four blocks in flight.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
        let stream = ReceiverStream(rx);
        let path = format!("/rpc/v1/drive/{}/shard/{bucket}/{data_dir}", self.index);
        let req = self.request("PUT", &path, Body::from_stream(stream))?;
        let this = self.clone();
        let response = tokio::spawn(async move {
            // The whole upload may take long; each frame has its own deadline in `write`.
            this.send(req, Duration::from_secs(24 * 3600)).await
        });
        Ok(Box::new(RemoteShardWriter {
            tx: Some(tx),
            response,
        }))
    }

    async fn read_shard(
        &self,
        bucket: &str,
        data_dir: &str,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, DriveError> {
        let path = format!(
            "/rpc/v1/drive/{}/shard/{bucket}/{data_dir}?offset={offset}&len={len}",
            self.index
        );
        let req = self.request("GET", &path, Body::empty())?;
        let b = self.send(req, DATA_TIMEOUT).await?;
        if b.len() as u64 != len {
            return Err(DriveError::Corrupt(format!(
                "node sent {} bytes, wanted {len}",
                b.len()
            )));
        }
        Ok(b)
    }

    async fn delete_shard(&self, bucket: &str, data_dir: &str) -> Result<(), DriveError> {
        self.call(Call::DeleteShard {
            bucket: bucket.into(),
            data_dir: data_dir.into(),
        })
        .await
    }

    async fn put_version(
        &self,
        bucket: &str,
        key: &str,
        rec: &VersionRecord,
    ) -> Result<Option<VersionRecord>, DriveError> {
        self.call(Call::PutVersion {
            bucket: bucket.into(),
            key: key.into(),
            rec: rec.clone(),
        })
        .await
    }

    async fn get_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<Option<VersionRecord>, DriveError> {
        self.call(Call::GetVersion {
            bucket: bucket.into(),
            key: key.into(),
            version_id: version_id.into(),
        })
        .await
    }

    async fn delete_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<Option<VersionRecord>, DriveError> {
        self.call(Call::DeleteVersion {
            bucket: bucket.into(),
            key: key.into(),
            version_id: version_id.into(),
        })
        .await
    }

    async fn list_keys(
        &self,
        bucket: &str,
        prefix: &str,
        after: &[u8],
        limit: usize,
    ) -> Result<Vec<(String, ListEntry)>, DriveError> {
        self.call(Call::ListKeys {
            bucket: bucket.into(),
            prefix: prefix.into(),
            after_hex: hex::encode(after),
            limit,
            entries: true,
        })
        .await
    }

    async fn list_versions(
        &self,
        bucket: &str,
        prefix: &str,
        after: &[u8],
        limit: usize,
    ) -> Result<Vec<(String, Vec<VersionRecord>)>, DriveError> {
        self.call(Call::ListVersions {
            bucket: bucket.into(),
            prefix: prefix.into(),
            after_hex: hex::encode(after),
            limit,
        })
        .await
    }

    async fn key_versions(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Vec<VersionRecord>, DriveError> {
        self.call(Call::KeyVersions {
            bucket: bucket.into(),
            key: key.into(),
        })
        .await
    }

    async fn put_bucket(&self, rec: &BucketRecord) -> Result<(), DriveError> {
        self.call(Call::PutBucket { rec: rec.clone() }).await
    }

    async fn get_bucket(&self, name: &str) -> Result<Option<BucketRecord>, DriveError> {
        self.call(Call::GetBucket { name: name.into() }).await
    }

    async fn delete_bucket(&self, name: &str) -> Result<(), DriveError> {
        self.call(Call::DeleteBucket { name: name.into() }).await
    }

    async fn list_buckets(&self) -> Result<Vec<BucketRecord>, DriveError> {
        self.call(Call::ListBuckets).await
    }

    async fn put_upload(&self, bucket: &str, rec: &UploadRecord) -> Result<(), DriveError> {
        self.call(Call::PutUpload {
            bucket: bucket.into(),
            rec: rec.clone(),
        })
        .await
    }

    async fn get_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Option<UploadRecord>, DriveError> {
        self.call(Call::GetUpload {
            bucket: bucket.into(),
            key: key.into(),
            upload_id: upload_id.into(),
        })
        .await
    }

    async fn delete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), DriveError> {
        self.call(Call::DeleteUpload {
            bucket: bucket.into(),
            key: key.into(),
            upload_id: upload_id.into(),
        })
        .await
    }

    async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        after: (&str, &str),
        limit: usize,
    ) -> Result<Vec<UploadRecord>, DriveError> {
        self.call(Call::ListUploads {
            bucket: bucket.into(),
            prefix: prefix.into(),
            after_key: after.0.into(),
            after_upload: after.1.into(),
            limit,
        })
        .await
    }

    async fn put_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        rec: &PartRecord,
    ) -> Result<Option<PartRecord>, DriveError> {
        self.call(Call::PutPart {
            bucket: bucket.into(),
            key: key.into(),
            upload_id: upload_id.into(),
            rec: rec.clone(),
        })
        .await
    }

    async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<PartRecord>, DriveError> {
        self.call(Call::ListParts {
            bucket: bucket.into(),
            key: key.into(),
            upload_id: upload_id.into(),
        })
        .await
    }

    async fn space(&self) -> Result<Space, DriveError> {
        let (free, total): (u64, u64) = self.call(Call::Space).await?;
        Ok(Space { free, total })
    }

    async fn put_hint(&self, hint: &HealHint) -> Result<(), DriveError> {
        self.call(Call::PutHint { hint: hint.clone() }).await
    }

    async fn list_hints(&self, after: &[u8], limit: usize) -> Result<Vec<HealHint>, DriveError> {
        self.call(Call::ListHints {
            after_hex: hex::encode(after),
            limit,
        })
        .await
    }

    async fn delete_hint(&self, id: &[u8], which: HintRemoval) -> Result<(), DriveError> {
        let (made_ms, created_before_ms) = which.to_wire();
        self.call(Call::DeleteHint {
            id_hex: hex::encode(id),
            created_before_ms,
            made_ms,
        })
        .await
    }

    async fn put_state(&self, name: &str, value: &[u8]) -> Result<(), DriveError> {
        self.call(Call::PutState {
            name: name.into(),
            value_hex: hex::encode(value),
        })
        .await
    }

    async fn get_state(&self, name: &str) -> Result<Option<Vec<u8>>, DriveError> {
        let v: Option<String> = self.call(Call::GetState { name: name.into() }).await?;
        v.map(|h| hex::decode(h).map_err(|e| DriveError::Corrupt(e.to_string())))
            .transpose()
    }

    async fn stat_shards(
        &self,
        bucket: &str,
        data_dirs: &[String],
    ) -> Result<Vec<Option<u64>>, DriveError> {
        self.call(Call::StatShards {
            bucket: bucket.into(),
            data_dirs: data_dirs.to_vec(),
        })
        .await
    }

    async fn list_shard_files(
        &self,
        bucket: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, u64)>, DriveError> {
        self.call(Call::ListShardFiles {
            bucket: bucket.into(),
            after: after.into(),
            limit,
        })
        .await
    }

    fn is_online(&self) -> bool {
        !self.is_offline()
    }

    fn last_outage_ms(&self) -> Option<(u64, u64)> {
        let back = self.health.back_online_ms.load(Ordering::Relaxed);
        let since = self.health.offline_since_ms.load(Ordering::Relaxed);
        // While offline again, `since` is past `back`: no outage has ended since.
        (back > 0 && since <= back).then_some((since, back))
    }

    fn note_slow(&self) {
        let last = self.health.last_ok_ms.load(Ordering::Relaxed);
        if super::record::now_ms().saturating_sub(last) >= SLOW_TO_OFFLINE_MS {
            self.record::<()>(&Err(DriveError::Offline("too slow".into())));
        }
    }
}

/// A receiver as a stream.
struct ReceiverStream(tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl futures::Stream for ReceiverStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}
