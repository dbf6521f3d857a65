//! The admin listener: health checks, Prometheus metrics, the JSON admin API under
//! `/admin/v1/`, and the dashboard page (docs/admin-api.md, docs/openapi.yaml).

mod api;
pub mod auth;
pub mod client;
mod prometheus;
pub mod usage;
mod users;
pub mod view;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use futures::future::BoxFuture;

use crate::object::{HealCommand, RepairHandle, RepairStatus, Store};

pub use auth::AdminAuth;

/// Largest request body the admin API reads.
const MAX_BODY: usize = 64 << 10;

/// Where the processes of the deployment are: the nodes, and which node holds each drive of
/// each set.
#[derive(Clone, Debug, Default)]
pub struct Layout {
    /// `server` (one process) or `gateway`.
    pub mode: &'static str,
    /// The nodes.
    pub nodes: Vec<NodeEntry>,
    /// For each set, the index in `nodes` of the node holding each of its drives.
    pub sets: Vec<Vec<usize>>,
}

/// One node of the deployment.
#[derive(Clone, Debug)]
pub struct NodeEntry {
    /// Its name.
    pub name: String,
    /// Its RPC address (or, for `tessera server`, "local").
    pub address: String,
}

/// State of the admin listener.
pub struct AdminState {
    /// The store served by this process.
    pub store: Arc<Store>,
    /// Users and their policies.
    pub iam: Arc<crate::iam::Iam>,
    /// Where the repair status of every set comes from: this process's workers (in
    /// `tessera server`), or the nodes that lead the sets (in a gateway).
    pub repair: RepairSource,
    /// Where operators' repair commands go.
    pub control: RepairControl,
    /// Nodes and drives.
    pub layout: Layout,
    /// Credentials the API takes.
    pub auth: AdminAuth,
    /// When this process started.
    pub started: Instant,
    usage: usage::UsageCache,
}

impl AdminState {
    /// The state of a listener over `store`.
    pub fn new(
        store: Arc<Store>,
        iam: Arc<crate::iam::Iam>,
        repair: RepairSource,
        control: RepairControl,
        layout: Layout,
        auth: AdminAuth,
    ) -> Self {
        Self {
            store,
            iam,
            repair,
            control,
            layout,
            auth,
            started: Instant::now(),
            usage: Default::default(),
        }
    }
}

/// Fetches the repair status of every erasure set.
pub type RepairSource = Arc<dyn Fn() -> BoxFuture<'static, Vec<RepairStatus>> + Send + Sync>;

/// Sends a repair command to the leader of every set; answers the sets whose leader took it.
pub type RepairControl = Arc<dyn Fn(HealCommand) -> BoxFuture<'static, Vec<usize>> + Send + Sync>;

/// A repair source over workers of this process.
pub fn local_repair(workers: Vec<RepairHandle>) -> RepairSource {
    Arc::new(move || {
        let list: Vec<RepairStatus> = workers.iter().map(RepairHandle::status).collect();
        Box::pin(async move { list })
    })
}

/// Repair commands to workers of this process.
pub fn local_control(workers: Vec<RepairHandle>) -> RepairControl {
    Arc::new(move |command| {
        let taken: Vec<usize> = workers
            .iter()
            .filter(|w| w.send(command.clone()))
            .map(|w| w.status().set)
            .collect();
        Box::pin(async move { taken })
    })
}

/// The admin router.
pub fn router(state: Arc<AdminState>) -> axum::Router {
    let protected = axum::Router::new()
        .route("/metrics", get(prometheus::metrics))
        .route("/admin/v1/cluster", get(api::cluster))
        .route("/admin/v1/nodes", get(api::nodes))
        .route("/admin/v1/drives", get(api::drives))
        .route("/admin/v1/sets", get(api::sets))
        .route("/admin/v1/heal", get(api::heal_status))
        .route("/admin/v1/heal/start", post(api::heal_start))
        .route("/admin/v1/heal/pause", post(api::heal_pause))
        .route("/admin/v1/heal/resume", post(api::heal_resume))
        .route("/admin/v1/buckets", get(api::buckets))
        .route("/admin/v1/users", get(users::list).post(users::create))
        .route(
            "/admin/v1/users/{name}",
            axum::routing::delete(users::delete),
        )
        .route("/admin/v1/users/{name}/enable", post(users::enable))
        .route("/admin/v1/users/{name}/disable", post(users::disable))
        .route(
            "/admin/v1/users/{name}/policy",
            put(users::put_policy).delete(users::delete_policy),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate,
        ));
    axum::Router::new()
        .route("/", get(dashboard))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/health/cluster", get(cluster_health))
        .route("/admin/v1/login", post(api::login))
        .merge(protected)
        .fallback(not_found)
        .with_state(state)
}

/// A JSON error body: `{"error": why}`.
pub(crate) fn error(status: StatusCode, why: &str) -> Response {
    let mut r = (status, axum::Json(serde_json::json!({ "error": why }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"tessera-admin\""),
        );
    }
    r
}

/// Reads the body (bounded) and checks the credentials before the handler runs.
async fn authenticate(
    State(state): State<Arc<AdminState>>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "the body is too large");
    };
    let who = match state
        .auth
        .check(&parts.method, &parts.uri, &parts.headers, &body)
    {
        Ok(who) => who,
        Err((status, why)) => {
            tracing::warn!(target: "audit", method = %parts.method, path = %parts.uri.path(), %status, why, "admin request refused");
            return error(status, &why);
        }
    };
    let (method, path) = (parts.method.clone(), parts.uri.path().to_string());
    let resp = next
        .run(Request::from_parts(parts, axum::body::Body::from(body)))
        .await;
    if method != axum::http::Method::GET {
        tracing::info!(target: "audit", %method, path, who, status = resp.status().as_u16(), "admin action");
    }
    resp
}

/// Unknown paths: credentials first (so nothing is told to strangers), then 404.
async fn not_found(State(state): State<Arc<AdminState>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    if let Err((status, why)) = state
        .auth
        .check(&parts.method, &parts.uri, &parts.headers, b"")
    {
        return error(status, &why);
    }
    error(StatusCode::NOT_FOUND, "no such admin endpoint")
}

/// The dashboard: a static page (no data in it) that signs in and calls the API.
async fn dashboard() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("dashboard.html"),
    )
        .into_response()
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

/// The redundancy of every set: 200, or 503 when a set takes no writes.
async fn cluster_health(State(state): State<Arc<AdminState>>) -> Response {
    let (_, _, h) = view::cluster(&state).await;
    let status = if h.sets_below_write_quorum + h.sets_below_read_quorum > 0 {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (status, axum::Json(h)).into_response()
}
