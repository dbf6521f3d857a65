//! Who may do what: the IAM action and resource of each operation, checked against the
//! user's policy and the bucket's policy (`iam::policy`). Root may do everything; a user what
//! a policy allows and none denies; an anonymous request only what a bucket policy allows
//! to `"*"`. Every denial is logged (target `audit`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::{S3Error, S3Result};
use super::router::{Endpoint, Query};
use super::Ctx;
use crate::iam::policy::{
    evaluate, Decision, Policy, Request, EXISTING_TAG, MAX_POLICY, REQUEST_TAG,
};

/// Who signed the request.
#[derive(Clone, Debug)]
pub enum Identity {
    /// The root keys.
    Root,
    /// A user: its name and policy.
    User {
        /// Name.
        name: String,
        /// Its policy, if any.
        policy: Option<Policy>,
    },
    /// No signature.
    Anonymous,
}

/// The request's identity and the condition keys it carries.
pub struct Authz {
    /// Who asks.
    pub identity: Identity,
    /// `aws:SourceIp`, `s3:prefix`, ...
    context: BTreeMap<String, String>,
    /// Bucket policies read for this request (DeleteObjects checks every key of one bucket);
    /// `None` for a bucket that does not exist.
    bucket_policies: tokio::sync::Mutex<BTreeMap<String, Option<Option<Policy>>>>,
}

impl Authz {
    /// The identity of a request from `peer` (over TLS when `secure`), with the condition
    /// keys of its query and headers; `sets_tags`: the request's `x-amz-tagging` header
    /// gives the tags of the object it writes (`s3:RequestObjectTag/<tag>`).
    pub fn new(
        identity: Identity,
        peer: Option<IpAddr>,
        secure: bool,
        query: &Query,
        headers: &HeaderMap,
        sets_tags: bool,
    ) -> Self {
        let mut context = BTreeMap::new();
        if let Some(ip) = peer {
            context.insert("aws:SourceIp".to_string(), ip.to_string());
        }
        context.insert("aws:SecureTransport".to_string(), secure.to_string());
        if let Identity::User { name, .. } = &identity {
            context.insert("aws:username".to_string(), name.clone());
        }
        for (key, param) in [
            ("s3:prefix", "prefix"),
            ("s3:delimiter", "delimiter"),
            ("s3:versionid", "versionId"),
        ] {
            if let Some(v) = query.get(param) {
                context.insert(key.to_string(), v.clone());
            }
        }
        for (key, header) in [
            ("aws:Referer", "referer"),
            ("aws:UserAgent", "user-agent"),
            ("s3:x-amz-acl", "x-amz-acl"),
            ("s3:x-amz-metadata-directive", "x-amz-metadata-directive"),
        ] {
            if let Some(v) = headers.get(header).and_then(|v| v.to_str().ok()) {
                context.insert(key.to_string(), v.trim().to_string());
            }
        }
        // `bucket/key`, decoded, without a leading slash or a version id, as AWS's examples
        // match it (`"s3:x-amz-copy-source": "source-bucket/public/*"`).
        if let Some(v) = headers
            .get("x-amz-copy-source")
            .and_then(|v| v.to_str().ok())
        {
            let path = v.split_once('?').map_or(v, |(p, _)| p);
            let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
            context.insert(
                "s3:x-amz-copy-source".to_string(),
                decoded.trim_start_matches('/').to_string(),
            );
        }
        // The tags a request sets; a header that does not parse fails in its handler.
        if let Some(tags) = headers
            .get("x-amz-tagging")
            .filter(|_| sets_tags)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| super::tagging::parse_header(v).ok())
        {
            for (k, v) in tags {
                context.insert(format!("{REQUEST_TAG}{k}"), v);
            }
        }
        Self {
            identity,
            context,
            bucket_policies: Default::default(),
        }
    }

    /// The policy of `bucket`, or `None` when the bucket does not exist, read once per
    /// request.
    async fn bucket_policy(&self, ctx: &Ctx<'_>, bucket: &str) -> S3Result<Option<Option<Policy>>> {
        let mut known = self.bucket_policies.lock().await;
        if let Some(p) = known.get(bucket) {
            return Ok(p.clone());
        }
        let policy = match ctx.state.store.get_bucket(bucket).await {
            Ok(rec) => Some(rec.policy.and_then(|p| Policy::parse(&p, true).ok())),
            Err(crate::object::Error::NoSuchBucket) => None,
            Err(e) => return Err(e.into()),
        };
        known.insert(bucket.to_string(), policy.clone());
        Ok(policy)
    }

    /// Checks `action` on `bucket` (and `key`, for object actions, in the version the
    /// request's query names).
    pub async fn check(
        &self,
        ctx: &Ctx<'_>,
        action: &str,
        bucket: Option<&str>,
        key: Option<&str>,
    ) -> S3Result<()> {
        let version = ctx.query.get("versionId").map(String::as_str);
        self.check_object(ctx, action, bucket, key, version, None)
            .await
    }

    /// Checks `action` on `bucket` and `key` in `version` (a copy's source, an entry of
    /// DeleteObjects), with `request_tags` as the tags the request sets where they come
    /// from its body (PutObjectTagging).
    pub async fn check_object(
        &self,
        ctx: &Ctx<'_>,
        action: &str,
        bucket: Option<&str>,
        key: Option<&str>,
        version: Option<&str>,
        request_tags: Option<&BTreeMap<String, String>>,
    ) -> S3Result<()> {
        let (user, own) = match &self.identity {
            Identity::Root => return Ok(()),
            Identity::User { name, policy } => (Some(name.as_str()), policy.as_ref()),
            Identity::Anonymous => (None, None),
        };
        let resource = match (bucket, key) {
            (None, _) => "arn:aws:s3:::*".to_string(),
            (Some(b), None) => format!("arn:aws:s3:::{b}"),
            (Some(b), Some(k)) => format!("arn:aws:s3:::{b}/{k}"),
        };
        let (bucket_policy, no_bucket) = match bucket {
            Some(b) => match self.bucket_policy(ctx, b).await? {
                Some(policy) => (policy, false),
                None => (None, true),
            },
            None => (None, false),
        };
        let policies: Vec<&Policy> = own.into_iter().chain(bucket_policy.as_ref()).collect();
        let mut context = std::borrow::Cow::Borrowed(&self.context);
        if key.is_some() && self.context.get("s3:versionid").map(String::as_str) != version {
            let c = context.to_mut();
            match version {
                Some(v) => c.insert("s3:versionid".to_string(), v.to_string()),
                None => c.remove("s3:versionid"),
            };
        }
        if let Some(tags) = request_tags {
            let c = context.to_mut();
            for (k, v) in tags {
                c.insert(format!("{REQUEST_TAG}{k}"), v.clone());
            }
        }
        // The object's tags, read only for the actions that AWS gives them to, and only
        // for a policy that asks about them. A read that fails for another reason than a
        // missing object fails the check: a Deny on a tag must not lapse for want of it.
        if let (Some(b), Some(k)) = (bucket, key) {
            if !no_bucket
                && TAGGED_ACTIONS.contains(&action)
                && policies.iter().any(|p| p.mentions(EXISTING_TAG))
            {
                use crate::object::Error as E;
                match ctx.state.store.open_object(b, k, version).await {
                    Ok(found) => {
                        let c = context.to_mut();
                        for (tk, tv) in &found.info.tags {
                            c.insert(format!("{EXISTING_TAG}{tk}"), tv.clone());
                        }
                    }
                    Err(E::NoSuchKey | E::NoSuchVersion | E::DeleteMarker { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let decision = evaluate(
            &policies,
            &Request {
                user,
                action,
                resource: &resource,
                context: &context,
            },
        );
        if decision == Decision::Allow {
            return Ok(());
        }
        tracing::warn!(
            target: "audit",
            user = user.unwrap_or("anonymous"),
            action,
            resource = %resource,
            source_ip = self.context.get("aws:SourceIp").map(String::as_str).unwrap_or("-"),
            explicit_deny = (decision == Decision::Deny),
            "access denied"
        );
        // A bucket that does not exist is 404 to anyone, as in S3 (which tells whether a
        // name is taken on every CreateBucket anyway); creating it is checked as usual.
        if no_bucket && action != "s3:CreateBucket" {
            return Err(crate::object::Error::NoSuchBucket.into());
        }
        Err(S3Error::access_denied("Access Denied"))
    }
}

/// The actions whose requests carry `s3:ExistingObjectTag/<tag>` (the Service
/// Authorization Reference for S3).
const TAGGED_ACTIONS: &[&str] = &[
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:GetObjectAcl",
    "s3:GetObjectVersionAcl",
    "s3:PutObjectAcl",
    "s3:PutObjectVersionAcl",
    "s3:GetObjectTagging",
    "s3:GetObjectVersionTagging",
    "s3:PutObjectTagging",
    "s3:PutObjectVersionTagging",
    "s3:DeleteObjectTagging",
    "s3:DeleteObjectVersionTagging",
];

/// The action an operation needs, checked before its handler runs; `None` where the handler
/// checks for itself (DeleteObjects: each key; PutObjectTagging: with the tags of its
/// body).
pub fn action(endpoint: &Endpoint, query: &Query) -> Option<(&'static str, bool)> {
    let versioned = query.contains_key("versionId");
    // (action, whether the resource is the object rather than the bucket)
    let a = match endpoint {
        Endpoint::ListBuckets => ("s3:ListAllMyBuckets", false),
        Endpoint::CreateBucket { .. } => ("s3:CreateBucket", false),
        Endpoint::HeadBucket { .. } | Endpoint::ListObjects { .. } => ("s3:ListBucket", false),
        Endpoint::DeleteBucket { .. } => ("s3:DeleteBucket", false),
        Endpoint::GetBucketLocation { .. } => ("s3:GetBucketLocation", false),
        Endpoint::GetBucketVersioning { .. } => ("s3:GetBucketVersioning", false),
        Endpoint::PutBucketVersioning { .. } => ("s3:PutBucketVersioning", false),
        Endpoint::ListObjectVersions { .. } => ("s3:ListBucketVersions", false),
        Endpoint::ListMultipartUploads { .. } => ("s3:ListBucketMultipartUploads", false),
        Endpoint::DeleteObjects { .. } => return None,
        Endpoint::PutObject { .. }
        | Endpoint::CopyObject { .. }
        | Endpoint::CreateMultipartUpload { .. }
        | Endpoint::UploadPart { .. }
        | Endpoint::CompleteMultipartUpload { .. } => ("s3:PutObject", true),
        Endpoint::GetObject { .. } | Endpoint::HeadObject { .. } if versioned => {
            ("s3:GetObjectVersion", true)
        }
        Endpoint::GetObject { .. } | Endpoint::HeadObject { .. } => ("s3:GetObject", true),
        Endpoint::DeleteObject { .. } if versioned => ("s3:DeleteObjectVersion", true),
        Endpoint::DeleteObject { .. } => ("s3:DeleteObject", true),
        Endpoint::AbortMultipartUpload { .. } => ("s3:AbortMultipartUpload", true),
        Endpoint::ListParts { .. } => ("s3:ListMultipartUploadParts", true),
        Endpoint::GetObjectAttributes { .. } => ("s3:GetObjectAttributes", true),
        Endpoint::BucketTagging { method, .. } => match *method {
            Method::GET => ("s3:GetBucketTagging", false),
            _ => ("s3:PutBucketTagging", false),
        },
        Endpoint::ObjectTagging { method, .. } => match *method {
            Method::GET => ("s3:GetObjectTagging", true),
            Method::DELETE => ("s3:DeleteObjectTagging", true),
            _ => return None,
        },
        Endpoint::Acl { key, method, .. } => match (key.is_empty(), method == Method::GET) {
            (true, true) => ("s3:GetBucketAcl", false),
            (true, false) => ("s3:PutBucketAcl", false),
            (false, true) => ("s3:GetObjectAcl", true),
            (false, false) => ("s3:PutObjectAcl", true),
        },
        Endpoint::GetBucketPolicyStatus { .. } => ("s3:GetBucketPolicyStatus", false),
        Endpoint::BucketPolicy { method, .. } => match *method {
            Method::GET => ("s3:GetBucketPolicy", false),
            Method::DELETE => ("s3:DeleteBucketPolicy", false),
            _ => ("s3:PutBucketPolicy", false),
        },
        Endpoint::BucketSetting {
            setting, method, ..
        } => match *method {
            Method::GET => (setting.actions.0, false),
            _ => (setting.actions.1, false),
        },
    };
    Some(a)
}

/// `GET /bucket?policyStatus`: whether the bucket's policy makes it public (a bucket without
/// one has no status: 404 `NoSuchBucketPolicy`, as S3 answers).
pub async fn bucket_policy_status(ctx: &Ctx<'_>, bucket: &str) -> S3Result<Response> {
    let public = match ctx.state.store.get_bucket(bucket).await?.policy {
        Some(text) => Policy::parse(&text, true).is_ok_and(|p| p.is_public()),
        None => return Err(no_policy(bucket)),
    };
    let mut x = super::xml::Xml::new();
    x.root("PolicyStatus");
    x.elem("IsPublic", if public { "true" } else { "false" });
    x.close("PolicyStatus");
    Ok(super::xml_response(x.finish()))
}

/// `GET`, `PUT` or `DELETE /bucket?policy`.
pub async fn bucket_policy(
    ctx: &Ctx<'_>,
    bucket: &str,
    method: &Method,
    body: Body,
) -> S3Result<Response> {
    let store = &ctx.state.store;
    match *method {
        Method::PUT => {
            let raw = super::small_body(ctx, body, MAX_POLICY).await?;
            let text = String::from_utf8(raw.to_vec())
                .map_err(|_| S3Error::bad("MalformedPolicy", "The policy is not UTF-8"))?;
            Policy::parse(&text, true).map_err(|e| S3Error::bad("MalformedPolicy", e.0))?;
            store
                .update_bucket(bucket, move |b| b.policy = Some(text.clone()))
                .await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Method::DELETE => {
            store.update_bucket(bucket, |b| b.policy = None).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => match store.get_bucket(bucket).await?.policy {
            Some(p) => Ok((
                StatusCode::OK,
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                p,
            )
                .into_response()),
            None => Err(no_policy(bucket)),
        },
    }
}

fn no_policy(bucket: &str) -> S3Error {
    S3Error::new(
        StatusCode::NOT_FOUND,
        "NoSuchBucketPolicy",
        "The bucket policy does not exist",
    )
    .with_resource(format!("/{bucket}"))
}
