//! The admin listener: health checks (the admin API, metrics and dashboard come later).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::object::{RepairStatus, Store};

/// State of the admin listener.
pub struct AdminState {
    /// The store served by this process.
    pub store: Arc<Store>,
    /// Where the repair status of every set comes from: this process's workers (in
    /// `tessera server`), or the nodes that lead the sets (in a gateway).
    pub repair: RepairSource,
}

/// Fetches the repair status of every erasure set.
pub type RepairSource =
    Arc<dyn Fn() -> futures::future::BoxFuture<'static, Vec<RepairStatus>> + Send + Sync>;

/// A repair source over workers of this process.
pub fn local_repair(workers: Vec<Arc<std::sync::Mutex<RepairStatus>>>) -> RepairSource {
    Arc::new(move || {
        let list: Vec<RepairStatus> = workers
            .iter()
            .map(|r| r.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .collect();
        Box::pin(async move { list })
    })
}

/// The admin router: `GET /health/live`, `GET /health/ready`.
pub fn router(state: Arc<AdminState>) -> axum::Router {
    axum::Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .with_state(state)
}

async fn live() -> Response {
    (
        StatusCode::OK,
        axum::Json(serde_json::json!({"status": "live"})),
    )
        .into_response()
}

/// 200 when every erasure set has its write quorum of drives online, 503 otherwise.
async fn ready(State(state): State<Arc<AdminState>>) -> Response {
    let mut sets = Vec::new();
    let mut all_ok = true;
    for (i, set) in state.store.sets().iter().enumerate() {
        let online = set.online_drives().await;
        let ok = online >= set.write_quorum();
        all_ok &= ok;
        sets.push(serde_json::json!({
            "set": i,
            "drives": set.drives().len(),
            "online": online,
            "write_quorum": set.write_quorum(),
            "writable": ok,
        }));
    }
    let status = if all_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let repair: Vec<RepairStatus> = (state.repair)().await;
    let body = serde_json::json!({
        "status": if all_ok { "ready" } else { "degraded" },
        "sets": sets,
        "repair": repair,
    });
    (status, axum::Json(body)).into_response()
}
