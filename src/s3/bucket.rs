//! Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket,
//! GetBucketLocation, GetBucketVersioning.

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::{S3Error, S3Result};
use super::xml::{self, Xml};
use super::{small_body, xml_response, Ctx};

#[derive(Deserialize)]
pub(crate) struct CreateBucketConfiguration {
    #[serde(rename = "LocationConstraint", default)]
    location: Option<String>,
}

/// `GET /`: every bucket.
pub async fn list_buckets(ctx: &Ctx<'_>) -> S3Result<Response> {
    let buckets = ctx.state.store.list_buckets().await?;
    let mut x = Xml::new();
    x.root("ListAllMyBucketsResult");
    x.open("Owner");
    x.elem("ID", &ctx.auth.access_key);
    x.elem("DisplayName", &ctx.auth.access_key);
    x.close("Owner");
    x.open("Buckets");
    for b in buckets {
        x.open("Bucket");
        x.elem("Name", &b.name);
        x.elem("CreationDate", &xml::timestamp(b.created_ns));
        x.close("Bucket");
    }
    x.close("Buckets");
    x.close("ListAllMyBucketsResult");
    Ok(xml_response(x.finish()))
}

/// `PUT /bucket`, with an optional `CreateBucketConfiguration` body.
pub async fn create(ctx: &Ctx<'_>, bucket: &str, body: Body) -> S3Result<Response> {
    if let Some(a) = ctx.header("x-amz-acl") {
        super::acl::check_canned(a)?;
    }
    let raw = small_body(ctx, body, 64 * 1024).await?;
    let mut location = None;
    if !raw.iter().all(|b| b.is_ascii_whitespace()) {
        let conf: CreateBucketConfiguration = xml::parse(&raw)?;
        if let Some(loc) = conf.location.filter(|l| !l.is_empty()) {
            if loc != ctx.state.region {
                return Err(S3Error::bad(
                    "IllegalLocationConstraintException",
                    format!(
                        "The {loc} location constraint is incompatible for the region specific endpoint this request was sent to."
                    ),
                ));
            }
            location = Some(loc);
        }
    }
    ctx.state
        .store
        .create_bucket(bucket, location)
        .await
        .map_err(|e| S3Error::from(e).with_resource(bucket))?;
    Ok((StatusCode::OK, [("location", format!("/{bucket}"))]).into_response())
}

/// `HEAD /bucket`.
pub async fn head(ctx: &Ctx<'_>, bucket: &str) -> S3Result<Response> {
    ctx.state.store.get_bucket(bucket).await?;
    Ok((
        StatusCode::OK,
        [("x-amz-bucket-region", ctx.state.region.clone())],
    )
        .into_response())
}

/// `DELETE /bucket`: only an empty bucket.
pub async fn delete(ctx: &Ctx<'_>, bucket: &str) -> S3Result<Response> {
    ctx.state
        .store
        .delete_bucket(bucket)
        .await
        .map_err(|e| S3Error::from(e).with_resource(bucket))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /bucket?location`: empty for us-east-1, as S3 answers.
pub async fn location(ctx: &Ctx<'_>, bucket: &str) -> S3Result<Response> {
    ctx.state.store.get_bucket(bucket).await?;
    let region = if ctx.state.region == "us-east-1" {
        ""
    } else {
        ctx.state.region.as_str()
    };
    Ok(xml_response(format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<LocationConstraint xmlns=\"{}\">{}</LocationConstraint>",
        xml::S3_NS,
        quick_xml::escape::escape(region)
    )))
}

/// `GET /bucket?versioning`.
pub async fn versioning(ctx: &Ctx<'_>, bucket: &str) -> S3Result<Response> {
    let rec = ctx.state.store.get_bucket(bucket).await?;
    let mut x = Xml::new();
    x.root("VersioningConfiguration");
    if let Some(status) = &rec.versioning {
        x.elem("Status", status);
    }
    x.close("VersioningConfiguration");
    Ok(xml_response(x.finish()))
}

#[derive(Deserialize)]
pub(crate) struct VersioningConfiguration {
    #[serde(rename = "Status", default)]
    status: Option<String>,
    #[serde(rename = "MfaDelete", default)]
    mfa_delete: Option<String>,
}

/// `PUT /bucket?versioning`: `Enabled` or `Suspended` (a bucket never returns to unversioned).
pub async fn put_versioning(ctx: &Ctx<'_>, bucket: &str, body: Body) -> S3Result<Response> {
    let raw = small_body(ctx, body, 64 * 1024).await?;
    let conf: VersioningConfiguration = xml::parse(&raw)?;
    if conf.mfa_delete.as_deref() == Some("Enabled") {
        return Err(S3Error::not_implemented("MFA delete"));
    }
    match conf.status.as_deref() {
        Some(s @ ("Enabled" | "Suspended")) => {
            ctx.state.store.set_versioning(bucket, s).await?;
            Ok(StatusCode::OK.into_response())
        }
        None => {
            // An empty configuration changes nothing.
            ctx.state.store.get_bucket(bucket).await?;
            Ok(StatusCode::OK.into_response())
        }
        Some(_) => Err(S3Error::malformed_xml()),
    }
}
