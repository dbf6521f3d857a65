//! ACLs: Tessera has one owner per deployment and no grants (access control by policies comes
//! with issue 8), so every bucket and object's ACL is the owner's FULL_CONTROL. GET answers
//! exactly that; PUT accepts the ACLs that mean exactly that (`private`) and refuses others
//! with `NotImplemented` rather than silently ignoring a request to make data public.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::{S3Error, S3Result};
use super::object::version_param;
use super::xml::Xml;
use super::{small_body, xml_response, Ctx};

/// `GET` or `PUT ?acl` on a bucket (`key` empty) or an object.
pub async fn acl(
    ctx: &Ctx<'_>,
    bucket: &str,
    key: &str,
    method: &Method,
    body: Body,
) -> S3Result<Response> {
    if key.is_empty() {
        ctx.state.store.get_bucket(bucket).await?;
    } else {
        ctx.state
            .store
            .open_object(bucket, key, version_param(ctx)?)
            .await?;
    }
    if *method == Method::PUT {
        check_private(ctx, body).await?;
        return Ok(StatusCode::OK.into_response());
    }
    Ok(xml_response(owner_full_control(&ctx.auth.access_key)))
}

/// Checks that a PutAcl request asks for nothing beyond the owner's full control.
async fn check_private(ctx: &Ctx<'_>, body: Body) -> S3Result<()> {
    if let Some(canned) = ctx.header("x-amz-acl") {
        return check_canned(canned);
    }
    let grant_headers = [
        "x-amz-grant-read",
        "x-amz-grant-write",
        "x-amz-grant-read-acp",
        "x-amz-grant-write-acp",
    ];
    if grant_headers.iter().any(|h| ctx.headers.contains_key(*h)) {
        return Err(S3Error::not_implemented("ACL grants"));
    }
    let raw = small_body(ctx, body, 64 * 1024).await?;
    let text = String::from_utf8_lossy(&raw);
    if text.trim().is_empty() {
        return Ok(());
    }
    let permissions = text.matches("<Permission>").count();
    let full = text
        .matches("<Permission>FULL_CONTROL</Permission>")
        .count();
    let to_groups = text.contains("AllUsers") || text.contains("AuthenticatedUsers");
    if permissions != full || to_groups || permissions > 1 {
        return Err(S3Error::not_implemented(
            "ACL grants other than the owner's FULL_CONTROL",
        ));
    }
    Ok(())
}

/// Accepts `private` (and the owner-only canned ACLs); refuses those that would grant others
/// as not implemented, and any other name as the bad argument it is (400, as S3 answers).
pub(super) fn check_canned(canned: &str) -> S3Result<()> {
    match canned.trim() {
        "private" | "bucket-owner-full-control" | "bucket-owner-read" => Ok(()),
        other @ ("public-read" | "public-read-write" | "authenticated-read" | "aws-exec-read"
        | "log-delivery-write") => Err(S3Error::not_implemented(&format!(
            "the canned ACL {other:?} (Tessera grants access by policies, not ACLs)"
        ))),
        other => Err(S3Error::invalid_argument(format!(
            "{other:?} is not a canned ACL"
        ))),
    }
}

fn owner_full_control(owner: &str) -> String {
    let mut x = Xml::new();
    x.root("AccessControlPolicy");
    x.open("Owner");
    x.elem("ID", owner);
    x.elem("DisplayName", owner);
    x.close("Owner");
    x.open("AccessControlList");
    x.open("Grant");
    x.raw("<Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"CanonicalUser\">");
    x.elem("ID", owner);
    x.elem("DisplayName", owner);
    x.close("Grantee");
    x.elem("Permission", "FULL_CONTROL");
    x.close("Grant");
    x.close("AccessControlList");
    x.close("AccessControlPolicy");
    x.finish()
}
