//! Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket,
//! GetBucketLocation, GetBucketVersioning, and the bucket settings Tessera does not keep
//! (CORS, lifecycle, ...), answered as S3 answers for a bucket without them.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD as B64, Engine};
use serde::Deserialize;

use super::error::{S3Error, S3Result};
use super::list::{bad_token, decode_token};
use super::xml::{self, Xml};
use super::{small_body, xml_response, Ctx};

/// A bucket setting (subresource) that Tessera does not keep, and how S3 answers for a
/// bucket that has none: GET is `get_reply`, DELETE (where S3 has it) 204, PUT 501
/// NotImplemented.
#[derive(Debug, PartialEq, Eq)]
pub struct BucketSetting {
    /// The query parameter, e.g. `cors`.
    pub name: &'static str,
    /// The operations' names, for logs: GET, and DELETE where S3 has one (elsewhere a
    /// DELETE is 405 MethodNotAllowed).
    pub ops: (&'static str, Option<&'static str>),
    /// The IAM actions of a GET and of a change (S3 checks DELETE with the PUT action).
    pub actions: (&'static str, &'static str),
    /// The answer to a GET.
    pub get_reply: SettingReply,
}

/// What a GET of a bucket setting that is not there answers.
#[derive(Debug, PartialEq, Eq)]
pub enum SettingReply {
    /// 404 with this code and message.
    NotFound(&'static str, &'static str),
    /// 200 with a document of this root element and these child elements (the setting's
    /// empty or default form).
    Document(&'static str, &'static [(&'static str, &'static str)]),
}

/// The bucket settings answered as "not configured" (AWS S3 API reference, each GET*).
pub const BUCKET_SETTINGS: &[BucketSetting] = &[
    BucketSetting {
        name: "cors",
        ops: ("GetBucketCors", Some("DeleteBucketCors")),
        actions: ("s3:GetBucketCORS", "s3:PutBucketCORS"),
        get_reply: SettingReply::NotFound(
            "NoSuchCORSConfiguration",
            "The CORS configuration does not exist",
        ),
    },
    BucketSetting {
        name: "lifecycle",
        ops: (
            "GetBucketLifecycleConfiguration",
            Some("DeleteBucketLifecycle"),
        ),
        actions: (
            "s3:GetLifecycleConfiguration",
            "s3:PutLifecycleConfiguration",
        ),
        get_reply: SettingReply::NotFound(
            "NoSuchLifecycleConfiguration",
            "The lifecycle configuration does not exist",
        ),
    },
    BucketSetting {
        name: "website",
        ops: ("GetBucketWebsite", Some("DeleteBucketWebsite")),
        actions: ("s3:GetBucketWebsite", "s3:DeleteBucketWebsite"),
        get_reply: SettingReply::NotFound(
            "NoSuchWebsiteConfiguration",
            "The specified bucket does not have a website configuration",
        ),
    },
    BucketSetting {
        name: "encryption",
        ops: ("GetBucketEncryption", Some("DeleteBucketEncryption")),
        actions: (
            "s3:GetEncryptionConfiguration",
            "s3:PutEncryptionConfiguration",
        ),
        get_reply: SettingReply::NotFound(
            "ServerSideEncryptionConfigurationNotFoundError",
            "The server side encryption configuration was not found",
        ),
    },
    BucketSetting {
        name: "replication",
        ops: ("GetBucketReplication", Some("DeleteBucketReplication")),
        actions: (
            "s3:GetReplicationConfiguration",
            "s3:PutReplicationConfiguration",
        ),
        get_reply: SettingReply::NotFound(
            "ReplicationConfigurationNotFoundError",
            "The replication configuration was not found",
        ),
    },
    BucketSetting {
        name: "object-lock",
        ops: ("GetObjectLockConfiguration", None),
        actions: (
            "s3:GetBucketObjectLockConfiguration",
            "s3:PutBucketObjectLockConfiguration",
        ),
        get_reply: SettingReply::NotFound(
            "ObjectLockConfigurationNotFoundError",
            "Object Lock configuration does not exist for this bucket",
        ),
    },
    BucketSetting {
        name: "publicAccessBlock",
        ops: ("GetPublicAccessBlock", Some("DeletePublicAccessBlock")),
        actions: (
            "s3:GetBucketPublicAccessBlock",
            "s3:PutBucketPublicAccessBlock",
        ),
        get_reply: SettingReply::NotFound(
            "NoSuchPublicAccessBlockConfiguration",
            "The public access block configuration was not found",
        ),
    },
    BucketSetting {
        name: "ownershipControls",
        ops: (
            "GetBucketOwnershipControls",
            Some("DeleteBucketOwnershipControls"),
        ),
        actions: (
            "s3:GetBucketOwnershipControls",
            "s3:PutBucketOwnershipControls",
        ),
        get_reply: SettingReply::NotFound(
            "OwnershipControlsNotFoundError",
            "The bucket ownership controls were not found",
        ),
    },
    BucketSetting {
        name: "notification",
        ops: ("GetBucketNotificationConfiguration", None),
        actions: ("s3:GetBucketNotification", "s3:PutBucketNotification"),
        get_reply: SettingReply::Document("NotificationConfiguration", &[]),
    },
    BucketSetting {
        name: "logging",
        ops: ("GetBucketLogging", None),
        actions: ("s3:GetBucketLogging", "s3:PutBucketLogging"),
        get_reply: SettingReply::Document("BucketLoggingStatus", &[]),
    },
    BucketSetting {
        name: "accelerate",
        ops: ("GetBucketAccelerateConfiguration", None),
        actions: (
            "s3:GetAccelerateConfiguration",
            "s3:PutAccelerateConfiguration",
        ),
        get_reply: SettingReply::Document("AccelerateConfiguration", &[]),
    },
    BucketSetting {
        name: "requestPayment",
        ops: ("GetBucketRequestPayment", None),
        actions: ("s3:GetBucketRequestPayment", "s3:PutBucketRequestPayment"),
        get_reply: SettingReply::Document(
            "RequestPaymentConfiguration",
            &[("Payer", "BucketOwner")],
        ),
    },
];

/// `GET` or `DELETE /bucket?cors` and the other settings Tessera does not keep: for an
/// existing bucket, what S3 answers for a bucket without the setting.
pub async fn setting(
    ctx: &Ctx<'_>,
    bucket: &str,
    setting: &BucketSetting,
    method: &Method,
) -> S3Result<Response> {
    ctx.state
        .store
        .get_bucket(bucket)
        .await
        .map_err(|e| S3Error::from(e).with_resource(bucket))?;
    if *method == Method::DELETE {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    match setting.get_reply {
        SettingReply::NotFound(code, message) => {
            Err(S3Error::new(StatusCode::NOT_FOUND, code, message).with_resource(bucket))
        }
        SettingReply::Document(root, elements) => {
            let mut x = Xml::new();
            x.root(root);
            for (name, value) in elements {
                x.elem(name, value);
            }
            x.close(root);
            Ok(xml_response(x.finish()))
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct CreateBucketConfiguration {
    #[serde(rename = "LocationConstraint", default)]
    location: Option<String>,
}

/// `GET /`: the buckets, in name order; `prefix` filters them, and with `max-buckets` (1 to
/// 10,000) they come in pages that a `continuation-token` continues.
pub async fn list_buckets(ctx: &Ctx<'_>) -> S3Result<Response> {
    let q = ctx.query;
    let prefix = q.get("prefix").map(String::as_str).unwrap_or_default();
    let max = match q.get("max-buckets") {
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| {
                S3Error::invalid_argument("max-buckets must be an integer from 1 to 10000")
            })?,
        None => usize::MAX,
    };
    let after = match q.get("continuation-token") {
        Some(t) => String::from_utf8(decode_token(t)?).map_err(|_| bad_token())?,
        None => String::new(),
    };
    let mut buckets = ctx.state.store.list_buckets().await?;
    buckets.sort_by(|a, b| a.name.cmp(&b.name));
    let mut page = buckets
        .into_iter()
        .filter(|b| b.name.starts_with(prefix) && b.name > after);
    let shown: Vec<_> = page.by_ref().take(max).collect();
    let more = page.next().is_some();
    let mut x = Xml::new();
    x.root("ListAllMyBucketsResult");
    x.open("Owner");
    x.elem("ID", &ctx.auth.access_key);
    x.elem("DisplayName", &ctx.auth.access_key);
    x.close("Owner");
    x.open("Buckets");
    for b in &shown {
        x.open("Bucket");
        x.elem("Name", &b.name);
        x.elem("CreationDate", &xml::timestamp(b.created_ns));
        x.close("Bucket");
    }
    x.close("Buckets");
    if let (true, Some(last)) = (more, shown.last()) {
        x.elem("ContinuationToken", &B64.encode(&last.name));
    }
    if q.contains_key("prefix") {
        x.elem("Prefix", prefix);
    }
    x.close("ListAllMyBucketsResult");
    Ok(xml_response(x.finish()))
}

/// `PUT /bucket`, with an optional `CreateBucketConfiguration` body.
pub async fn create(ctx: &Ctx<'_>, bucket: &str, body: Body) -> S3Result<Response> {
    if let Some(a) = ctx.header("x-amz-acl") {
        super::acl::check_canned(a)?;
    }
    if ctx
        .header("x-amz-bucket-object-lock-enabled")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    {
        return Err(S3Error::not_implemented("Object Lock"));
    }
    let raw = small_body(ctx, body, 64 * 1024).await?;
    let mut location = None;
    if !raw.iter().all(|b| b.is_ascii_whitespace()) {
        let conf: CreateBucketConfiguration = xml::parse(&raw)?;
        if let Some(loc) = conf.location.filter(|l| !l.is_empty()) {
            // The server's own region is taken whatever its form (a deployment may name it
            // `local`).
            if loc != ctx.state.region && !is_region_name(&loc) {
                return Err(S3Error::bad(
                    "InvalidLocationConstraint",
                    "The specified location-constraint is not valid",
                ));
            }
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

/// Whether `s` has the form of an AWS region name (`eu-west-1`, `us-gov-east-1`, `EU`):
/// S3 answers `InvalidLocationConstraint` to anything else, and
/// `IllegalLocationConstraintException` to a real region other than the endpoint's.
fn is_region_name(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    s == "EU"
        || (parts.len() >= 3
            && parts.iter().all(|p| !p.is_empty())
            && parts[..parts.len() - 1]
                .iter()
                .all(|p| p.bytes().all(|b| b.is_ascii_lowercase()))
            && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit()))
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

#[cfg(test)]
mod tests {
    #[test]
    fn region_names() {
        for ok in [
            "us-east-1",
            "eu-west-1",
            "us-gov-east-1",
            "ap-southeast-2",
            "EU",
        ] {
            assert!(super::is_region_name(ok), "{ok}");
        }
        for bad in [
            "coco",
            "us-east",
            "US-EAST-1",
            "eu-west-",
            "-1",
            "",
            "us--1",
        ] {
            assert!(!super::is_region_name(bad), "{bad}");
        }
    }
}
