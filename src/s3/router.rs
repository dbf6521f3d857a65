//! Turns a request's method, host, path and query into a typed `Endpoint`, once.

use std::collections::BTreeMap;

use axum::http::Method;

use super::bucket::{BucketSetting, BUCKET_SETTINGS};
use super::error::{S3Error, S3Result};
use super::names;

/// Decoded query parameters (last value wins).
pub type Query = BTreeMap<String, String>;

/// The S3 operation a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /`
    ListBuckets,
    /// `PUT /bucket`
    CreateBucket { bucket: String },
    /// `HEAD /bucket`
    HeadBucket { bucket: String },
    /// `DELETE /bucket`
    DeleteBucket { bucket: String },
    /// `GET /bucket?location`
    GetBucketLocation { bucket: String },
    /// `GET /bucket?versioning`
    GetBucketVersioning { bucket: String },
    /// `GET /bucket` (v1) or `GET /bucket?list-type=2`
    ListObjects { bucket: String, v2: bool },
    /// `POST /bucket?delete`
    DeleteObjects { bucket: String },
    /// `PUT /bucket/key`
    PutObject { bucket: String, key: String },
    /// `PUT /bucket/key` with `x-amz-copy-source`
    CopyObject { bucket: String, key: String },
    /// `GET /bucket/key`
    GetObject { bucket: String, key: String },
    /// `HEAD /bucket/key`
    HeadObject { bucket: String, key: String },
    /// `DELETE /bucket/key`
    DeleteObject { bucket: String, key: String },
    /// `GET /bucket?uploads`
    ListMultipartUploads { bucket: String },
    /// `POST /bucket/key?uploads`
    CreateMultipartUpload { bucket: String, key: String },
    /// `PUT /bucket/key?partNumber&uploadId`, with or without `x-amz-copy-source`
    UploadPart {
        bucket: String,
        key: String,
        copy: bool,
    },
    /// `POST /bucket/key?uploadId`
    CompleteMultipartUpload { bucket: String, key: String },
    /// `DELETE /bucket/key?uploadId`
    AbortMultipartUpload { bucket: String, key: String },
    /// `GET /bucket/key?uploadId`
    ListParts { bucket: String, key: String },
    /// `PUT /bucket?versioning`
    PutBucketVersioning { bucket: String },
    /// `GET /bucket?versions`
    ListObjectVersions { bucket: String },
    /// `PUT`, `GET` or `DELETE /bucket?tagging`
    BucketTagging { bucket: String, method: Method },
    /// `PUT`, `GET` or `DELETE /bucket/key?tagging`
    ObjectTagging {
        bucket: String,
        key: String,
        method: Method,
    },
    /// `GET /bucket/key?attributes`
    GetObjectAttributes { bucket: String, key: String },
    /// `PUT`, `GET` or `DELETE /bucket?policy`
    BucketPolicy { bucket: String, method: Method },
    /// `GET /bucket?policyStatus`
    GetBucketPolicyStatus { bucket: String },
    /// `GET` or `PUT /bucket?acl` and `/bucket/key?acl` (`key` empty for the bucket)
    Acl {
        bucket: String,
        key: String,
        method: Method,
    },
    /// `GET` or `DELETE /bucket?cors` (and the other settings of [`BUCKET_SETTINGS`]),
    /// which Tessera does not keep: answered as S3 answers for a bucket without them.
    BucketSetting {
        bucket: String,
        setting: &'static BucketSetting,
        method: Method,
    },
}

impl Endpoint {
    /// The bucket the request is about, if any.
    pub fn bucket(&self) -> Option<&str> {
        match self {
            Endpoint::ListBuckets => None,
            Endpoint::CreateBucket { bucket }
            | Endpoint::HeadBucket { bucket }
            | Endpoint::DeleteBucket { bucket }
            | Endpoint::GetBucketLocation { bucket }
            | Endpoint::GetBucketVersioning { bucket }
            | Endpoint::ListObjects { bucket, .. }
            | Endpoint::DeleteObjects { bucket }
            | Endpoint::ListMultipartUploads { bucket }
            | Endpoint::CreateMultipartUpload { bucket, .. }
            | Endpoint::UploadPart { bucket, .. }
            | Endpoint::CompleteMultipartUpload { bucket, .. }
            | Endpoint::AbortMultipartUpload { bucket, .. }
            | Endpoint::ListParts { bucket, .. }
            | Endpoint::PutBucketVersioning { bucket }
            | Endpoint::ListObjectVersions { bucket }
            | Endpoint::BucketTagging { bucket, .. }
            | Endpoint::BucketPolicy { bucket, .. }
            | Endpoint::GetBucketPolicyStatus { bucket }
            | Endpoint::ObjectTagging { bucket, .. }
            | Endpoint::GetObjectAttributes { bucket, .. }
            | Endpoint::Acl { bucket, .. }
            | Endpoint::BucketSetting { bucket, .. }
            | Endpoint::PutObject { bucket, .. }
            | Endpoint::CopyObject { bucket, .. }
            | Endpoint::GetObject { bucket, .. }
            | Endpoint::HeadObject { bucket, .. }
            | Endpoint::DeleteObject { bucket, .. } => Some(bucket),
        }
    }

    /// The object key the request is about, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            Endpoint::PutObject { key, .. }
            | Endpoint::CopyObject { key, .. }
            | Endpoint::GetObject { key, .. }
            | Endpoint::HeadObject { key, .. }
            | Endpoint::DeleteObject { key, .. }
            | Endpoint::CreateMultipartUpload { key, .. }
            | Endpoint::UploadPart { key, .. }
            | Endpoint::CompleteMultipartUpload { key, .. }
            | Endpoint::AbortMultipartUpload { key, .. }
            | Endpoint::ListParts { key, .. }
            | Endpoint::ObjectTagging { key, .. }
            | Endpoint::GetObjectAttributes { key, .. } => Some(key),
            Endpoint::Acl { key, .. } if !key.is_empty() => Some(key),
            _ => None,
        }
    }

    /// A short operation name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Endpoint::ListBuckets => "ListBuckets",
            Endpoint::CreateBucket { .. } => "CreateBucket",
            Endpoint::HeadBucket { .. } => "HeadBucket",
            Endpoint::DeleteBucket { .. } => "DeleteBucket",
            Endpoint::GetBucketLocation { .. } => "GetBucketLocation",
            Endpoint::GetBucketVersioning { .. } => "GetBucketVersioning",
            Endpoint::ListObjects { v2: false, .. } => "ListObjects",
            Endpoint::ListObjects { v2: true, .. } => "ListObjectsV2",
            Endpoint::DeleteObjects { .. } => "DeleteObjects",
            Endpoint::PutObject { .. } => "PutObject",
            Endpoint::CopyObject { .. } => "CopyObject",
            Endpoint::GetObject { .. } => "GetObject",
            Endpoint::HeadObject { .. } => "HeadObject",
            Endpoint::DeleteObject { .. } => "DeleteObject",
            Endpoint::ListMultipartUploads { .. } => "ListMultipartUploads",
            Endpoint::CreateMultipartUpload { .. } => "CreateMultipartUpload",
            Endpoint::UploadPart { copy: false, .. } => "UploadPart",
            Endpoint::UploadPart { copy: true, .. } => "UploadPartCopy",
            Endpoint::CompleteMultipartUpload { .. } => "CompleteMultipartUpload",
            Endpoint::AbortMultipartUpload { .. } => "AbortMultipartUpload",
            Endpoint::ListParts { .. } => "ListParts",
            Endpoint::PutBucketVersioning { .. } => "PutBucketVersioning",
            Endpoint::ListObjectVersions { .. } => "ListObjectVersions",
            Endpoint::BucketTagging { method, .. } => match *method {
                Method::PUT => "PutBucketTagging",
                Method::DELETE => "DeleteBucketTagging",
                _ => "GetBucketTagging",
            },
            Endpoint::BucketPolicy { method, .. } => match *method {
                Method::PUT => "PutBucketPolicy",
                Method::DELETE => "DeleteBucketPolicy",
                _ => "GetBucketPolicy",
            },
            Endpoint::ObjectTagging { method, .. } => match *method {
                Method::PUT => "PutObjectTagging",
                Method::DELETE => "DeleteObjectTagging",
                _ => "GetObjectTagging",
            },
            Endpoint::GetObjectAttributes { .. } => "GetObjectAttributes",
            Endpoint::GetBucketPolicyStatus { .. } => "GetBucketPolicyStatus",
            Endpoint::Acl { key, method, .. } => match (key.is_empty(), *method == Method::PUT) {
                (true, true) => "PutBucketAcl",
                (true, false) => "GetBucketAcl",
                (false, true) => "PutObjectAcl",
                (false, false) => "GetObjectAcl",
            },
            Endpoint::BucketSetting {
                setting, method, ..
            } => match *method {
                Method::GET => setting.ops.0,
                _ => setting.ops.1.unwrap_or("DeleteBucketSetting"),
            },
        }
    }
}

/// Parses the raw query string into decoded pairs.
pub fn parse_query(raw: Option<&str>) -> Query {
    let mut q = Query::new();
    for part in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        q.insert(decode(k), decode(v));
    }
    q
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Object-level subresources that Tessera does not serve yet.
const OBJECT_UNSUPPORTED: &[&str] = &["retention", "legal-hold", "torrent", "restore", "select"];

/// Bucket-level subresources that Tessera does not serve yet (beyond [`BUCKET_SETTINGS`]).
const BUCKET_UNSUPPORTED: &[&str] = &[
    "analytics",
    "metrics",
    "inventory",
    "intelligent-tiering",
    "metadataTable",
    "metadataConfiguration",
    "metadataInventoryTable",
    "metadataJournalTable",
    "session",
];

/// A query parameter on a bucket-level PUT or DELETE that no operation Tessera serves takes:
/// such a request must not fall through to CreateBucket or DeleteBucket. Presigned URLs'
/// `X-Amz-*` parameters and the SDKs' `x-id` are not subresources.
fn stray_subresource(query: &Query) -> Option<&str> {
    query
        .keys()
        .map(String::as_str)
        .find(|k| !k.to_ascii_lowercase().starts_with("x-amz-") && *k != "x-id")
}

/// Routes a request. `vhost_bucket` is the bucket named by the Host header, when the request
/// uses virtual-host-style addressing.
pub fn route(
    method: &Method,
    raw_path: &str,
    query: &Query,
    has_copy_source: bool,
    vhost_bucket: Option<String>,
) -> S3Result<Endpoint> {
    let path = percent_encoding::percent_decode_str(raw_path)
        .decode_utf8()
        .map_err(|_| S3Error::invalid_argument("The path is not valid UTF-8"))?;
    let path = path.strip_prefix('/').unwrap_or(&path);
    let (bucket, key) = match vhost_bucket {
        Some(b) => (b, path.to_string()),
        None => match path.split_once('/') {
            Some((b, k)) => (b.to_string(), k.to_string()),
            None => (path.to_string(), String::new()),
        },
    };
    if bucket.is_empty() {
        return match *method {
            Method::GET => Ok(Endpoint::ListBuckets),
            _ => Err(method_not_allowed()),
        };
    }
    names::check_bucket(&bucket)?;
    if key.is_empty() {
        if let Some(setting) = BUCKET_SETTINGS.iter().find(|s| query.contains_key(s.name)) {
            return match *method {
                Method::DELETE if setting.ops.1.is_none() => Err(method_not_allowed()),
                Method::GET | Method::DELETE => Ok(Endpoint::BucketSetting {
                    bucket,
                    setting,
                    method: method.clone(),
                }),
                _ => Err(S3Error::not_implemented(&format!(
                    "bucket ?{} (Tessera keeps no such setting)",
                    setting.name
                ))),
            };
        }
        if let Some(sub) = BUCKET_UNSUPPORTED.iter().find(|s| query.contains_key(**s)) {
            return Err(S3Error::not_implemented(&format!("bucket ?{sub}")));
        }
        if query.contains_key("acl") {
            return acl(method, bucket, key);
        }
        if query.contains_key("tagging") {
            return match *method {
                Method::PUT | Method::GET | Method::DELETE => Ok(Endpoint::BucketTagging {
                    bucket,
                    method: method.clone(),
                }),
                _ => Err(method_not_allowed()),
            };
        }
        if query.contains_key("policyStatus") {
            return match *method {
                Method::GET => Ok(Endpoint::GetBucketPolicyStatus { bucket }),
                _ => Err(method_not_allowed()),
            };
        }
        if query.contains_key("policy") {
            return match *method {
                Method::PUT | Method::GET | Method::DELETE => Ok(Endpoint::BucketPolicy {
                    bucket,
                    method: method.clone(),
                }),
                _ => Err(method_not_allowed()),
            };
        }
        return match *method {
            Method::PUT if query.contains_key("versioning") => {
                Ok(Endpoint::PutBucketVersioning { bucket })
            }
            Method::GET if query.contains_key("versions") => {
                Ok(Endpoint::ListObjectVersions { bucket })
            }
            Method::PUT | Method::DELETE => match stray_subresource(query) {
                Some(sub) => Err(S3Error::not_implemented(&format!("bucket ?{sub}"))),
                None if *method == Method::PUT => Ok(Endpoint::CreateBucket { bucket }),
                None => Ok(Endpoint::DeleteBucket { bucket }),
            },
            Method::HEAD => Ok(Endpoint::HeadBucket { bucket }),
            Method::GET if query.contains_key("location") => {
                Ok(Endpoint::GetBucketLocation { bucket })
            }
            Method::GET if query.contains_key("uploads") => {
                Ok(Endpoint::ListMultipartUploads { bucket })
            }
            Method::GET if query.contains_key("versioning") => {
                Ok(Endpoint::GetBucketVersioning { bucket })
            }
            Method::GET => Ok(Endpoint::ListObjects {
                v2: query.get("list-type").map(String::as_str) == Some("2"),
                bucket,
            }),
            Method::POST if query.contains_key("delete") => Ok(Endpoint::DeleteObjects { bucket }),
            Method::POST if query.is_empty() => Err(S3Error::not_implemented(
                "POST Object (browser-based uploads with an HTML form)",
            )),
            _ => Err(method_not_allowed()),
        };
    }
    names::check_key(&key)?;
    if let Some(sub) = OBJECT_UNSUPPORTED.iter().find(|s| query.contains_key(**s)) {
        return Err(S3Error::not_implemented(&format!("object ?{sub}")));
    }
    if query.contains_key("tagging") {
        return match *method {
            Method::PUT | Method::GET | Method::DELETE => Ok(Endpoint::ObjectTagging {
                bucket,
                key,
                method: method.clone(),
            }),
            _ => Err(method_not_allowed()),
        };
    }
    if query.contains_key("acl") {
        return acl(method, bucket, key);
    }
    if query.contains_key("attributes") {
        return match *method {
            Method::GET => Ok(Endpoint::GetObjectAttributes { bucket, key }),
            _ => Err(method_not_allowed()),
        };
    }
    if query.contains_key("uploadId") {
        return match *method {
            Method::PUT if query.contains_key("partNumber") => Ok(Endpoint::UploadPart {
                bucket,
                key,
                copy: has_copy_source,
            }),
            Method::POST => Ok(Endpoint::CompleteMultipartUpload { bucket, key }),
            Method::DELETE => Ok(Endpoint::AbortMultipartUpload { bucket, key }),
            Method::GET => Ok(Endpoint::ListParts { bucket, key }),
            _ => Err(method_not_allowed()),
        };
    }
    match *method {
        Method::POST if query.contains_key("uploads") => {
            Ok(Endpoint::CreateMultipartUpload { bucket, key })
        }
        Method::PUT if has_copy_source => Ok(Endpoint::CopyObject { bucket, key }),
        Method::PUT => Ok(Endpoint::PutObject { bucket, key }),
        Method::GET => Ok(Endpoint::GetObject { bucket, key }),
        Method::HEAD => Ok(Endpoint::HeadObject { bucket, key }),
        Method::DELETE => Ok(Endpoint::DeleteObject { bucket, key }),
        Method::POST => Err(S3Error::not_implemented("POST on an object")),
        _ => Err(method_not_allowed()),
    }
}

fn acl(method: &Method, bucket: String, key: String) -> S3Result<Endpoint> {
    match *method {
        Method::GET | Method::PUT => Ok(Endpoint::Acl {
            bucket,
            key,
            method: method.clone(),
        }),
        _ => Err(method_not_allowed()),
    }
}

fn method_not_allowed() -> S3Error {
    S3Error::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "The specified method is not allowed against this resource.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(m: Method, p: &str, q: &str) -> S3Result<Endpoint> {
        route(&m, p, &parse_query(Some(q)), false, None)
    }

    #[test]
    fn routes_path_style() {
        assert!(matches!(r(Method::GET, "/", ""), Ok(Endpoint::ListBuckets)));
        assert!(matches!(
            r(Method::PUT, "/photos", ""),
            Ok(Endpoint::CreateBucket { .. })
        ));
        assert!(matches!(
            r(Method::GET, "/photos", "list-type=2&prefix=a"),
            Ok(Endpoint::ListObjects { v2: true, .. })
        ));
        match r(Method::GET, "/photos/a%20b/c%2Bd", "") {
            Ok(Endpoint::GetObject { bucket, key }) => {
                assert_eq!(bucket, "photos");
                assert_eq!(key, "a b/c+d");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            r(Method::POST, "/photos", "delete"),
            Ok(Endpoint::DeleteObjects { .. })
        ));
        assert_eq!(
            r(Method::PATCH, "/photos/x", "").unwrap_err().code,
            "MethodNotAllowed"
        );
        assert_eq!(
            r(Method::GET, "/ab/x", "").unwrap_err().code,
            "InvalidBucketName"
        );
        // Settings Tessera does not keep: GET (and DELETE where S3 has one) are answered as
        // for a bucket without them, a change is 501; unknown subresources never fall
        // through to CreateBucket or DeleteBucket.
        assert!(matches!(
            r(Method::GET, "/photos", "cors"),
            Ok(Endpoint::BucketSetting { setting, .. }) if setting.name == "cors"
        ));
        assert!(matches!(
            r(Method::DELETE, "/photos", "lifecycle"),
            Ok(Endpoint::BucketSetting { .. })
        ));
        assert_eq!(
            r(Method::DELETE, "/photos", "logging").unwrap_err().code,
            "MethodNotAllowed"
        );
        for (m, q) in [
            (Method::PUT, "cors"),
            (Method::GET, "analytics"),
            (Method::DELETE, "metadataTable"),
            (Method::DELETE, "somethingNew"),
            (Method::PUT, "somethingNew"),
        ] {
            assert_eq!(
                r(m.clone(), "/photos", q).unwrap_err().code,
                "NotImplemented",
                "{m} {q}"
            );
        }
        assert!(matches!(
            r(Method::DELETE, "/photos", "x-id=DeleteBucket"),
            Ok(Endpoint::DeleteBucket { .. })
        ));
    }

    #[test]
    fn routes_virtual_host_style() {
        let q = parse_query(None);
        match route(
            &Method::GET,
            "/dir/file.txt",
            &q,
            false,
            Some("photos".into()),
        ) {
            Ok(Endpoint::GetObject { bucket, key }) => {
                assert_eq!((bucket.as_str(), key.as_str()), ("photos", "dir/file.txt"))
            }
            other => panic!("{other:?}"),
        }
    }
}
