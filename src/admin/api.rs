//! The JSON admin API under `/admin/v1/` (docs/openapi.yaml).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{error, view, AdminState};
use crate::object::{Error, HealCommand};

/// `GET /admin/v1/cluster`: deployment, version, uptime, health and request totals.
pub async fn cluster(State(state): State<Arc<AdminState>>) -> Response {
    let (drives, repair, h) = view::cluster(&state).await;
    let set0 = &state.store.sets()[0];
    Json(json!({
        "deployment_id": state.store.deployment_id(),
        "version": env!("CARGO_PKG_VERSION"),
        "mode": state.layout.mode,
        "uptime_secs": state.started.elapsed().as_secs(),
        "k": set0.k(),
        "m": set0.m(),
        "sets": state.store.sets().len(),
        "nodes": state.layout.nodes.len(),
        "drives": drives.len(),
        "drives_online": drives.iter().filter(|d| d.online()).count(),
        "status": h.status,
        "repair_paused": repair.iter().any(|r| r.paused),
        "s3": crate::metrics::get().s3_totals(),
    }))
    .into_response()
}

/// `GET /admin/v1/nodes`: every node, `up` when all its drives answer, `down` when none do.
pub async fn nodes(State(state): State<Arc<AdminState>>) -> Response {
    let drives = view::drives(&state).await;
    let nodes: Vec<_> = state
        .layout
        .nodes
        .iter()
        .map(|n| {
            let mine: Vec<_> = drives.iter().filter(|d| d.node == n.name).collect();
            let online = mine.iter().filter(|d| d.online()).count();
            let st = if online == mine.len() {
                "up"
            } else if online == 0 {
                "down"
            } else {
                "partial"
            };
            json!({
                "name": n.name,
                "address": n.address,
                "state": st,
                "drives": mine.len(),
                "drives_online": online,
            })
        })
        .collect();
    Json(json!({ "nodes": nodes })).into_response()
}

/// `GET /admin/v1/drives`: every drive with its state, space and errors.
pub async fn drives(State(state): State<Arc<AdminState>>) -> Response {
    Json(json!({ "drives": view::drives(&state).await })).into_response()
}

/// `GET /admin/v1/sets`: the redundancy of every set (as `/health/cluster`, always 200).
pub async fn sets(State(state): State<Arc<AdminState>>) -> Response {
    Json(view::cluster(&state).await.2).into_response()
}

/// `GET /admin/v1/heal`: repair status of every set, with totals.
pub async fn heal_status(State(state): State<Arc<AdminState>>) -> Response {
    let sets = (state.repair)().await;
    Json(json!({
        "paused": sets.iter().any(|s| s.paused),
        "hints_pending": sets.iter().map(|s| s.hints_pending).sum::<usize>(),
        "healed": sets.iter().map(|s| s.healed).sum::<u64>(),
        "bytes_rebuilt": sets.iter().map(|s| s.bytes_rebuilt).sum::<u64>(),
        "failed": sets.iter().map(|s| s.failed).sum::<u64>(),
        "sets": sets,
    }))
    .into_response()
}

/// Body of `POST /admin/v1/heal/start`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    #[serde(default)]
    bucket: Option<String>,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    deep: bool,
}

/// `POST /admin/v1/heal/start`: scan everything, a bucket, or a prefix of it.
pub async fn heal_start(State(state): State<Arc<AdminState>>, body: Bytes) -> Response {
    let b: StartBody = if body.iter().all(u8::is_ascii_whitespace) {
        StartBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("bad JSON body: {e}")),
        }
    };
    let bucket = b.bucket.filter(|b| !b.is_empty());
    let prefix = b.prefix.unwrap_or_default();
    match &bucket {
        None if !prefix.is_empty() => {
            return error(StatusCode::BAD_REQUEST, "a prefix needs a bucket")
        }
        Some(name) => match state.store.get_bucket(name).await {
            Ok(_) => {}
            Err(Error::NoSuchBucket) => return error(StatusCode::NOT_FOUND, "no such bucket"),
            Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
        },
        None => {}
    }
    let command = HealCommand::Start {
        bucket,
        prefix,
        deep: b.deep,
    };
    send(&state, command, StatusCode::ACCEPTED).await
}

/// `POST /admin/v1/heal/pause`.
pub async fn heal_pause(State(state): State<Arc<AdminState>>) -> Response {
    send(&state, HealCommand::Pause, StatusCode::OK).await
}

/// `POST /admin/v1/heal/resume`.
pub async fn heal_resume(State(state): State<Arc<AdminState>>) -> Response {
    send(&state, HealCommand::Resume, StatusCode::OK).await
}

/// Sends a command to every set's leader: `ok` when at least one took it, 503 when none did.
async fn send(state: &AdminState, command: HealCommand, ok: StatusCode) -> Response {
    let mut accepted = (state.control)(command).await;
    accepted.sort_unstable();
    accepted.dedup();
    let unreachable: Vec<usize> = (0..state.store.sets().len())
        .filter(|s| !accepted.contains(s))
        .collect();
    let status = if accepted.is_empty() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        ok
    };
    (
        status,
        Json(json!({ "accepted_sets": accepted, "unreachable_sets": unreachable })),
    )
        .into_response()
}

/// `GET /admin/v1/buckets`: usage of every bucket (counted at most every few seconds).
pub async fn buckets(State(state): State<Arc<AdminState>>) -> Response {
    match state.usage.get(&state.store).await {
        Ok(u) => Json(&*u).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

#[derive(Deserialize)]
struct LoginBody {
    access_key: String,
    secret_key: String,
}

/// `POST /admin/v1/login`: a session token for the root keys (the dashboard's sign-in).
pub async fn login(State(state): State<Arc<AdminState>>, body: Bytes) -> Response {
    if body.len() > super::MAX_BODY {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "the body is too large");
    }
    let Ok(b) = serde_json::from_slice::<LoginBody>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "send JSON: {\"access_key\": ..., \"secret_key\": ...}",
        );
    };
    match state.auth.login(&b.access_key, &b.secret_key) {
        Some((token, expires_ms)) => {
            Json(json!({ "token": token, "expires_ms": expires_ms })).into_response()
        }
        None => {
            tracing::warn!("admin sign-in refused: wrong keys");
            error(StatusCode::FORBIDDEN, "wrong access key or secret key")
        }
    }
}
