//! `tessera node`: serves this node's local drives to gateways over the node RPC
//! (`drive::proto`), HTTP/2 or HTTP/1.1 on one port, every request but the health checks
//! authenticated with the cluster secret.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use futures::StreamExt;
use serde::Deserialize;

use crate::cluster::auth::Verifier;
use crate::cluster::Topology;
use crate::drive::proto::{Call, Frame, FrameDecoder, WireError};
use crate::drive::remote::{rpc_client, RemoteDrive};
use crate::drive::{Drive, DriveError, HintRemoval, LocalDrive, VersionRecord};
use crate::erasure::Codec;
use crate::object::{setup, ErasureSet, HealCommand, RepairHandle, RepairStatus, Repairer};

/// What the node serves.
pub struct NodeState {
    /// Its drives, by index in its topology entry.
    pub drives: Vec<Arc<LocalDrive>>,
    /// The topology hash peers must share.
    pub topology_hash: String,
    /// This node's name.
    pub name: String,
    /// Repair workers of the sets this node holds drives of (each works only while the node
    /// leads its set).
    pub repair: Vec<RepairHandle>,
    verifier: Verifier,
}

/// A started node: drives open, listener bound.
pub struct Node {
    /// Bound RPC address.
    pub addr: SocketAddr,
    state: Arc<NodeState>,
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Node {
    /// Opens the drives of node `name` and binds its RPC listener.
    pub async fn start(
        topo: &Topology,
        name: &str,
        listen: Option<String>,
        tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    ) -> anyhow::Result<Self> {
        let (_, spec) = topo
            .node(name)
            .ok_or_else(|| anyhow::anyhow!("node {name:?} is not in the topology"))?;
        let secret = topo.secret()?;
        let mut drives = Vec::new();
        for path in &spec.drives {
            let d = LocalDrive::open(path)
                .map_err(|e| anyhow::anyhow!("drive {}: {e}", path.display()))?;
            if let Some(f) = d.read_format().await? {
                if f.deployment_id != topo.file.deployment_id {
                    anyhow::bail!(
                        "drive {} belongs to deployment {}, not {}: refusing to start",
                        path.display(),
                        f.deployment_id,
                        topo.file.deployment_id
                    );
                }
            }
            drives.push(Arc::new(d));
        }
        let (me, _) = topo.node(name).expect("checked above");
        let sets = member_sets(topo, me, &drives, secret.clone().into())?;
        setup::spawn_drive_watch(
            drives
                .iter()
                .enumerate()
                .filter_map(|(j, d)| {
                    let (set, index) = topo.place_of(me, j)?;
                    let (_, set_drives) = sets.iter().find(|(s, _)| *s == set)?;
                    Some(setup::WatchedDrive {
                        drive: d.clone(),
                        deployment_id: topo.file.deployment_id.clone(),
                        set: set as u32,
                        index: index as u32,
                        set_drives: set_drives.clone(),
                    })
                })
                .collect(),
        );
        let repair = spawn_repair(topo, me, sets)?;
        let listen = listen
            .or_else(|| topo.file.node.listen.clone())
            .unwrap_or_else(|| spec.address.clone());
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
        let tls = match topo.node_tls(tls)? {
            Some((cert, key)) => Some(crate::tls::acceptor(&cert, &key)?),
            None => None,
        };
        Ok(Self {
            addr: listener.local_addr()?,
            tls,
            state: Arc::new(NodeState {
                drives,
                topology_hash: topo.hash.clone(),
                name: name.to_string(),
                repair,
                verifier: Verifier::new(secret),
            }),
            listener,
        })
    }

    /// Serves until the process is stopped.
    pub async fn serve(self) -> anyhow::Result<()> {
        let app = router(self.state);
        loop {
            let (tcp, _) = match self.listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let svc = hyper_util::service::TowerToHyperService::new(app.clone());
            let tls = self.tls.clone();
            tokio::spawn(async move {
                let mut builder = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                );
                builder
                    .http2()
                    .adaptive_window(true)
                    .initial_stream_window_size(4 << 20)
                    .initial_connection_window_size(16 << 20)
                    .max_frame_size(crate::drive::proto::RPC_MAX_FRAME);
                let result = match tls {
                    None => {
                        let io = hyper_util::rt::TokioIo::new(tcp);
                        builder.serve_connection(io, svc).await
                    }
                    Some(acceptor) => {
                        let handshake = tokio::time::timeout(
                            std::time::Duration::from_secs(10),
                            acceptor.accept(tcp),
                        )
                        .await;
                        let Ok(Ok(stream)) = handshake else {
                            tracing::debug!("node RPC: TLS handshake failed or timed out");
                            return;
                        };
                        let io = hyper_util::rt::TokioIo::new(stream);
                        builder.serve_connection(io, svc).await
                    }
                };
                if let Err(e) = result {
                    tracing::debug!(error = %e, "node connection ended");
                }
            });
        }
    }
}

/// A set's number and its drives, in position order.
type SetDrives = (usize, Vec<Arc<dyn Drive>>);

/// Every set that node `me` holds drives of: its own drives local, the others' through RPC at
/// background priority.
fn member_sets(
    topo: &Topology,
    me: usize,
    local: &[Arc<LocalDrive>],
    secret: Arc<str>,
) -> anyhow::Result<Vec<SetDrives>> {
    let client = rpc_client(topo.rpc_ca())?;
    let topology: Arc<str> = topo.hash.clone().into();
    Ok(topo
        .sets
        .iter()
        .enumerate()
        .filter(|(_, members)| members.iter().any(|d| d.node == me))
        .map(|(s, members)| {
            let drives = members
                .iter()
                .map(|d| {
                    if d.node == me {
                        local[d.drive].clone() as Arc<dyn Drive>
                    } else {
                        Arc::new(
                            RemoteDrive::new(
                                client.clone(),
                                &topo.file.nodes[d.node].address,
                                d.drive,
                                secret.clone(),
                                topology.clone(),
                            )
                            .background(),
                        ) as Arc<dyn Drive>
                    }
                })
                .collect();
            (s, drives)
        })
        .collect())
}

/// Starts a repair worker for every set this node holds a drive of. The set's leader is the
/// first node, in the order of the set's drives, whose drives answer: this node leads while
/// every node before it is offline (a probe calls them every second to find out).
fn spawn_repair(
    topo: &Topology,
    me: usize,
    sets: Vec<SetDrives>,
) -> anyhow::Result<Vec<RepairHandle>> {
    let mut out = Vec::new();
    for (s, drives) in sets {
        let members = &topo.sets[s];
        // Drives of the nodes that come before this one in the set.
        let first_mine = members.iter().position(|d| d.node == me).unwrap_or(0);
        let mine_first: Vec<usize> = members
            .iter()
            .map(|d| members.iter().position(|x| x.node == d.node).unwrap_or(0))
            .collect();
        let before: Vec<Arc<dyn Drive>> = (0..members.len())
            .filter(|&p| mine_first[p] < first_mine)
            .map(|p| drives[p].clone())
            .collect();
        let codec = Codec::new(topo.k, topo.m, topo.stripe_size)?;
        let set = Arc::new(ErasureSet::new(drives, codec, topo.inline_limit));
        {
            let before = before.clone();
            tokio::spawn(async move {
                loop {
                    for d in &before {
                        if d.is_online() {
                            let _ = d.read_format().await;
                        }
                    }
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            });
        }
        let leader = Arc::new(move || before.iter().all(|d| !d.is_online()));
        out.push(
            Repairer::new(
                set,
                s,
                topo.repair.clone(),
                leader,
                Arc::new(crate::load::busy),
            )
            .spawn(),
        );
    }
    Ok(out)
}

fn router(state: Arc<NodeState>) -> axum::Router {
    let rpc = axum::Router::new()
        .route("/rpc/v1/topology", get(topology))
        .route("/rpc/v1/repair", get(repair_status).post(repair_command))
        .route("/rpc/v1/drive/{d}/call", post(call))
        .route(
            "/rpc/v1/drive/{d}/shard/{bucket}/{data_dir}",
            put(write_shard).get(read_shard),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate,
        ));
    axum::Router::new()
        .route("/health/live", get(|| async { "live" }))
        .route("/health/ready", get(ready))
        .merge(rpc)
        .with_state(state)
}

async fn authenticate(
    State(state): State<Arc<NodeState>>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let headers = req.headers();
    let verdict = state.verifier.verify(req.method().as_str(), &pq, |n| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    });
    let theirs = headers
        .get(crate::cluster::auth::TOPOLOGY)
        .and_then(|v| v.to_str().ok());
    if verdict.is_ok() && theirs.is_some_and(|t| t != state.topology_hash) {
        tracing::warn!(theirs = ?theirs, ours = %state.topology_hash, "call from another topology refused");
        return (
            StatusCode::CONFLICT,
            format!(
                "topology mismatch: the caller holds {}, node {} holds {}; every process needs the same cluster file",
                theirs.unwrap_or_default(),
                state.name,
                state.topology_hash
            ),
        )
            .into_response();
    }
    let foreground = !req.headers().contains_key(crate::drive::proto::BACKGROUND);
    match verdict {
        Ok(()) => {
            let _load = foreground.then(crate::load::enter);
            next.run(req).await
        }
        Err(e) => {
            tracing::warn!(error = %e, path = %pq, "node RPC refused");
            (StatusCode::UNAUTHORIZED, e.to_string()).into_response()
        }
    }
}

async fn ready(State(state): State<Arc<NodeState>>) -> Response {
    let mut formatted = 0;
    for d in &state.drives {
        if matches!(d.read_format().await, Ok(Some(_))) {
            formatted += 1;
        }
    }
    let status = if formatted == state.drives.len() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(serde_json::json!({
            "node": state.name,
            "drives": state.drives.len(),
            "formatted": formatted,
            "repair": repair_snapshot(&state),
        })),
    )
        .into_response()
}

fn repair_snapshot(state: &NodeState) -> Vec<RepairStatus> {
    state.repair.iter().map(RepairHandle::status).collect()
}

/// An operator's repair command, from a gateway: queued on the workers that lead their set
/// here; answers the sets that took it.
async fn repair_command(
    State(state): State<Arc<NodeState>>,
    axum::Json(command): axum::Json<HealCommand>,
) -> Response {
    let taken: Vec<usize> = state
        .repair
        .iter()
        .filter(|r| r.send(command.clone()))
        .map(|r| r.status().set)
        .collect();
    axum::Json(taken).into_response()
}

async fn repair_status(State(state): State<Arc<NodeState>>) -> Response {
    axum::Json(repair_snapshot(&state)).into_response()
}

async fn topology(State(state): State<Arc<NodeState>>) -> Response {
    axum::Json(serde_json::json!({ "hash": state.topology_hash, "node": state.name }))
        .into_response()
}

fn drive(state: &NodeState, d: usize) -> Result<Arc<LocalDrive>, Box<Response>> {
    state
        .drives
        .get(d)
        .cloned()
        .ok_or_else(|| Box::new((StatusCode::NOT_FOUND, "no such drive").into_response()))
}

fn error(e: &DriveError) -> Response {
    let status = match e {
        DriveError::NotFound => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, axum::Json(WireError::from(e))).into_response()
}

fn json<T: serde::Serialize>(r: Result<T, DriveError>) -> Response {
    match r {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => error(&e),
    }
}

/// Each key's newest version as a whole record: the answer to a listing call from a gateway
/// that predates `ListEntry` (see `Call::ListKeys`).
fn newest_records(keys: Vec<(String, Vec<VersionRecord>)>) -> Vec<(String, VersionRecord)> {
    keys.into_iter()
        .filter_map(|(k, versions)| {
            versions
                .into_iter()
                .max_by(|a, b| (a.mod_time_ns, &a.version_id).cmp(&(b.mod_time_ns, &b.version_id)))
                .map(|v| (k, v))
        })
        .collect()
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap_or_default()
}

async fn call(
    State(state): State<Arc<NodeState>>,
    Path(d): Path<usize>,
    body: axum::body::Bytes,
) -> Response {
    let drive = match drive(&state, d) {
        Ok(d) => d,
        Err(r) => return *r,
    };
    let call: Call = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let d = drive.as_ref();
    match call {
        Call::ReadFormat => json(d.read_format().await),
        Call::WriteFormat { format } => json(d.write_format(&format).await),
        Call::DeleteShard { bucket, data_dir } => json(d.delete_shard(&bucket, &data_dir).await),
        Call::PutVersion { bucket, key, rec } => json(d.put_version(&bucket, &key, &rec).await),
        Call::GetVersion {
            bucket,
            key,
            version_id,
        } => json(d.get_version(&bucket, &key, &version_id).await),
        Call::DeleteVersion {
            bucket,
            key,
            version_id,
        } => json(d.delete_version(&bucket, &key, &version_id).await),
        Call::ListKeys {
            bucket,
            prefix,
            after_hex,
            limit,
            entries: true,
        } => json(
            d.list_keys(&bucket, &prefix, &unhex(&after_hex), limit)
                .await,
        ),
        Call::ListKeys {
            bucket,
            prefix,
            after_hex,
            limit,
            entries: false,
        } => json(
            d.list_versions(&bucket, &prefix, &unhex(&after_hex), limit)
                .await
                .map(newest_records),
        ),
        Call::ListVersions {
            bucket,
            prefix,
            after_hex,
            limit,
        } => json(
            d.list_versions(&bucket, &prefix, &unhex(&after_hex), limit)
                .await,
        ),
        Call::KeyVersions { bucket, key } => json(d.key_versions(&bucket, &key).await),
        Call::PutBucket { rec } => json(d.put_bucket(&rec).await),
        Call::GetBucket { name } => json(d.get_bucket(&name).await),
        Call::DeleteBucket { name } => json(d.delete_bucket(&name).await),
        Call::ListBuckets => json(d.list_buckets().await),
        Call::PutUpload { bucket, rec } => json(d.put_upload(&bucket, &rec).await),
        Call::GetUpload {
            bucket,
            key,
            upload_id,
        } => json(d.get_upload(&bucket, &key, &upload_id).await),
        Call::DeleteUpload {
            bucket,
            key,
            upload_id,
        } => json(d.delete_upload(&bucket, &key, &upload_id).await),
        Call::ListUploads {
            bucket,
            prefix,
            after_key,
            after_upload,
            limit,
        } => json(
            d.list_uploads(&bucket, &prefix, (&after_key, &after_upload), limit)
                .await,
        ),
        Call::PutPart {
            bucket,
            key,
            upload_id,
            rec,
        } => json(d.put_part(&bucket, &key, &upload_id, &rec).await),
        Call::ListParts {
            bucket,
            key,
            upload_id,
        } => json(d.list_parts(&bucket, &key, &upload_id).await),
        Call::Space => json(d.space().await.map(|s| (s.free, s.total))),
        Call::PutHint { hint } => json(d.put_hint(&hint).await),
        Call::ListHints { after_hex, limit } => json(d.list_hints(&unhex(&after_hex), limit).await),
        Call::DeleteHint {
            id_hex,
            created_before_ms,
            made_ms,
        } => {
            let which = HintRemoval::from_wire(made_ms, created_before_ms);
            json(d.delete_hint(&unhex(&id_hex), which).await)
        }
        Call::PutState { name, value_hex } => json(d.put_state(&name, &unhex(&value_hex)).await),
        Call::GetState { name } => json(d.get_state(&name).await.map(|v| v.map(hex::encode))),
        Call::StatShards { bucket, data_dirs } => {
            if !valid_name(&bucket) || !data_dirs.iter().all(|d| valid_name(d)) {
                return (StatusCode::BAD_REQUEST, "bad shard name").into_response();
            }
            json(d.stat_shards(&bucket, &data_dirs).await)
        }
        Call::ListShardFiles {
            bucket,
            after,
            limit,
        } => {
            if !valid_name(&bucket) {
                return (StatusCode::BAD_REQUEST, "bad bucket name").into_response();
            }
            json(d.list_shard_files(&bucket, &after, limit.min(10_000)).await)
        }
    }
}

/// Receives a shard file: length-prefixed frames, then a zero length to commit.
async fn write_shard(
    State(state): State<Arc<NodeState>>,
    Path((d, bucket, data_dir)): Path<(usize, String, String)>,
    body: Body,
) -> Response {
    let drive = match drive(&state, d) {
        Ok(d) => d,
        Err(r) => return *r,
    };
    if !valid_name(&bucket) || !valid_name(&data_dir) {
        return (StatusCode::BAD_REQUEST, "bad shard name").into_response();
    }
    let mut writer = match drive.create_shard(&bucket, &data_dir).await {
        Ok(w) => w,
        Err(e) => return error(&e),
    };
    let mut stream = body.into_data_stream();
    let mut frames = FrameDecoder::default();
    loop {
        // Take every complete frame out of the buffer.
        loop {
            match frames.next_frame() {
                Ok(None) => break,
                Ok(Some(Frame::Data(data))) => {
                    let Some(framed) = crate::erasure::frame::Framed::split(data) else {
                        return (StatusCode::BAD_REQUEST, "frame shorter than its hash")
                            .into_response();
                    };
                    if let Err(e) = writer.write(framed).await {
                        return error(&e);
                    }
                }
                Ok(Some(Frame::Commit)) => return json(writer.commit().await),
                Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
            }
        }
        let pushed = match stream.next().await {
            Some(Ok(chunk)) => frames.push(&chunk),
            Some(Err(e)) => {
                tracing::debug!(error = %e, "shard upload broken off");
                return (StatusCode::BAD_REQUEST, "body broken off").into_response();
            }
            None => frames.finish(),
        };
        if let Err(e) = pushed {
            return (StatusCode::BAD_REQUEST, e.to_string()).into_response();
        }
    }
}

/// Bucket names and data dirs only: no separators, no dots-only names.
fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && s != "."
        && s != ".."
}

#[derive(Deserialize)]
struct Range {
    offset: u64,
    len: u64,
}

async fn read_shard(
    State(state): State<Arc<NodeState>>,
    Path((d, bucket, data_dir)): Path<(usize, String, String)>,
    Query(r): Query<Range>,
) -> Response {
    let drive = match drive(&state, d) {
        Ok(d) => d,
        Err(r) => return *r,
    };
    if !valid_name(&bucket) || !valid_name(&data_dir) || r.len > 256 << 20 {
        return (StatusCode::BAD_REQUEST, "bad shard request").into_response();
    }
    match drive.read_shard(&bucket, &data_dir, r.offset, r.len).await {
        Ok(b) => b.into_response(),
        Err(e) => error(&e),
    }
}
