//! `/admin/v1/users`: users, their keys and policies (`iam`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{error, AdminState};
use crate::iam::IamError;

fn failed(e: IamError) -> Response {
    let status = match e {
        IamError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        IamError::Invalid(_) => StatusCode::BAD_REQUEST,
        IamError::NoSuchUser => StatusCode::NOT_FOUND,
    };
    error(status, &e.to_string())
}

/// A policy given as a JSON object or as a string holding one.
fn policy_text(v: Option<Value>) -> Option<String> {
    match v? {
        Value::Null => None,
        Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

/// `GET /admin/v1/users`: every user, without secrets.
pub async fn list(State(state): State<Arc<AdminState>>) -> Response {
    match state.iam.users().await {
        Ok(dir) => {
            let users: Vec<Value> = dir
                .users
                .iter()
                .map(|u| {
                    json!({
                        "name": u.name,
                        "access_key": u.access_key,
                        "enabled": u.enabled,
                        "created_ms": u.created_ms,
                        "policy": u.policy.as_deref().and_then(|p| serde_json::from_str::<Value>(p).ok()),
                    })
                })
                .collect();
            Json(json!({ "users": users })).into_response()
        }
        Err(e) => failed(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    #[serde(default)]
    policy: Option<Value>,
}

/// `POST /admin/v1/users`: a new user with fresh keys; the secret is in this answer only.
pub async fn create(State(state): State<Arc<AdminState>>, body: Bytes) -> Response {
    let b: CreateBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("bad JSON body: {e}")),
    };
    match state.iam.create_user(&b.name, policy_text(b.policy)).await {
        Ok((access_key, secret_key)) => (
            StatusCode::CREATED,
            Json(json!({ "name": b.name, "access_key": access_key, "secret_key": secret_key })),
        )
            .into_response(),
        Err(e) => failed(e),
    }
}

/// `DELETE /admin/v1/users/{name}`.
pub async fn delete(State(state): State<Arc<AdminState>>, Path(name): Path<String>) -> Response {
    match state.iam.delete_user(&name).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => failed(e),
    }
}

/// `POST /admin/v1/users/{name}/enable`.
pub async fn enable(State(state): State<Arc<AdminState>>, Path(name): Path<String>) -> Response {
    set_enabled(&state, &name, true).await
}

/// `POST /admin/v1/users/{name}/disable`.
pub async fn disable(State(state): State<Arc<AdminState>>, Path(name): Path<String>) -> Response {
    set_enabled(&state, &name, false).await
}

async fn set_enabled(state: &AdminState, name: &str, enabled: bool) -> Response {
    match state.iam.set_enabled(name, enabled).await {
        Ok(()) => Json(json!({ "name": name, "enabled": enabled })).into_response(),
        Err(e) => failed(e),
    }
}

/// `PUT /admin/v1/users/{name}/policy` (the body is the policy document).
pub async fn put_policy(
    State(state): State<Arc<AdminState>>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(text) = String::from_utf8(body.to_vec()) else {
        return error(StatusCode::BAD_REQUEST, "the policy is not UTF-8");
    };
    match state.iam.set_policy(&name, Some(text)).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => failed(e),
    }
}

/// `DELETE /admin/v1/users/{name}/policy`: the user may then do nothing.
pub async fn delete_policy(
    State(state): State<Arc<AdminState>>,
    Path(name): Path<String>,
) -> Response {
    match state.iam.set_policy(&name, None).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => failed(e),
    }
}
