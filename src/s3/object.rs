//! Object operations: PutObject, GetObject, HeadObject, DeleteObject, CopyObject and
//! DeleteObjects.

use std::collections::BTreeMap;

use crate::md5sum::Md5;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::{engine::general_purpose::STANDARD as B64, Engine};
use futures::StreamExt;
use serde::Deserialize;

use super::body;
use super::error::{S3Error, S3Result};
use super::xml::{self, Xml};
use super::{small_body, xml_response, Ctx};
use crate::drive::VersionRecord;
use crate::object::{BoxError, ObjectReader, PutOptions, WriteCondition};

/// Largest single PUT, as S3: 5 GiB.
pub const MAX_PUT: u64 = 5 << 30;
/// Largest total of user metadata, as S3: 2 KiB.
const MAX_USER_META: usize = 2048;

/// System headers stored with an object and returned on GET.
const STORED_HEADERS: &[&str] = &[
    "content-type",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
];

/// The storage classes S3 names. Tessera keeps every object alike, but refuses a class that
/// does not exist, as S3 does.
const STORAGE_CLASSES: [&str; 11] = [
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
    "OUTPOSTS",
    "GLACIER_IR",
    "SNOW",
    "EXPRESS_ONEZONE",
];

/// The headers of a request that writes an object (PUT, copy, CreateMultipartUpload) that
/// are checked before anything is read: the canned ACL, Object Lock and the storage class.
pub(super) fn check_write_headers(ctx: &Ctx<'_>) -> S3Result<()> {
    if let Some(a) = ctx.header("x-amz-acl") {
        super::acl::check_canned(a)?;
    }
    // Object Lock is not kept: a retention or legal hold asked for must not be accepted and
    // then silently not enforced. S3 answers so for a bucket without Object Lock.
    if [
        "x-amz-object-lock-mode",
        "x-amz-object-lock-retain-until-date",
        "x-amz-object-lock-legal-hold",
    ]
    .iter()
    .any(|h| ctx.headers.contains_key(*h))
    {
        return Err(S3Error::invalid_request(
            "Bucket is missing Object Lock Configuration",
        ));
    }
    if let Some(class) = ctx.header("x-amz-storage-class") {
        if !STORAGE_CLASSES.contains(&class.trim()) {
            return Err(S3Error::bad(
                "InvalidStorageClass",
                "The storage class you specified is not valid",
            ));
        }
    }
    Ok(())
}

/// `PUT /bucket/key`, with `If-None-Match: *` or `If-Match` as conditional writes.
pub async fn put(ctx: &Ctx<'_>, bucket: &str, key: &str, body: Body) -> S3Result<Response> {
    check_write_headers(ctx)?;
    check_put_length(ctx)?;
    let condition = write_condition(ctx)?;
    let (stream, slot) = body::request_body(body, ctx.headers, ctx.auth)?;
    let opts = PutOptions {
        headers: stored_headers(ctx.headers),
        user_meta: user_meta(ctx.headers)?,
        tags: match ctx.header("x-amz-tagging") {
            Some(t) => super::tagging::parse_header(t)?,
            None => Default::default(),
        },
        content_md5: content_md5(ctx.headers)?,
        finish: Some(Box::new(move || {
            Ok(slot.lock().ok().and_then(|mut s| s.take()))
        })),
        condition,
    };
    let rec = ctx
        .state
        .store
        .put_object(bucket, key, opts, stream)
        .await?;
    let mut resp = StatusCode::OK.into_response();
    let h = resp.headers_mut();
    set(h, "etag", &format!("\"{}\"", rec.etag));
    version_header(h, &rec.version_id);
    if let Some((alg, v)) = &rec.checksum {
        set(
            h,
            &format!("x-amz-checksum-{}", alg.to_ascii_lowercase()),
            v,
        );
    }
    Ok(resp)
}

/// The conditional-write headers of a PUT or a CompleteMultipartUpload.
pub(super) fn write_condition(ctx: &Ctx<'_>) -> S3Result<Option<WriteCondition>> {
    match (ctx.header("if-none-match"), ctx.header("if-match")) {
        (Some(_), Some(_)) => Err(S3Error::invalid_request(
            "If-Match and If-None-Match cannot be used together",
        )),
        (Some(v), None) if v.trim() == "*" => Ok(Some(WriteCondition::IfNoneMatch)),
        (Some(_), None) => Err(S3Error::new(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            "If-None-Match on a write only supports *",
        )),
        (None, Some(v)) => Ok(Some(WriteCondition::IfMatch(
            v.trim().trim_matches('"').to_string(),
        ))),
        (None, None) => Ok(None),
    }
}

/// `x-amz-version-id`, for every version but the `null` one.
pub(super) fn version_header(h: &mut HeaderMap, version_id: &str) {
    if version_id != "null" {
        set(h, "x-amz-version-id", version_id);
    }
}

/// The declared length of a PUT or UploadPart body: required, and at most 5 GiB.
pub(super) fn check_put_length(ctx: &Ctx<'_>) -> S3Result<()> {
    // An aws-chunked body declares its decoded length (and the body stream holds it to it);
    // any other is held to its Content-Length by HTTP itself.
    let declared = if ctx.auth.payload.is_streaming() {
        ctx.header("x-amz-decoded-content-length")
    } else {
        ctx.header("content-length")
    };
    match declared {
        // No length declared, for a chunked body or none at all: 411, as S3 answers, rather
        // than an empty object (a bare `curl -X PUT` sends neither body nor length).
        None => Err(S3Error::new(
            StatusCode::LENGTH_REQUIRED,
            "MissingContentLength",
            "You must provide the Content-Length HTTP header.",
        )),
        Some(v) => match v.trim().parse::<u64>() {
            Ok(n) if n > MAX_PUT => Err(S3Error::bad(
                "EntityTooLarge",
                "Your proposed upload exceeds the maximum allowed object size.",
            )),
            Ok(_) => Ok(()),
            Err(_) => Err(S3Error::invalid_argument("Bad Content-Length")),
        },
    }
}

/// Sets a response header; a value beyond ASCII goes out as its UTF-8 bytes.
pub(super) fn set(h: &mut HeaderMap, name: &str, value: &str) {
    if let (Ok(n), Ok(v)) = (
        HeaderName::try_from(name),
        HeaderValue::from_bytes(value.as_bytes()),
    ) {
        h.insert(n, v);
    }
}

pub(super) fn stored_headers(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for name in STORED_HEADERS {
        if let Some(v) = headers.get(*name).map(header_text) {
            let v = if *name == "content-encoding" {
                // aws-chunked is the transfer framing, not the object's encoding.
                v.split(',')
                    .map(str::trim)
                    .filter(|e| !e.eq_ignore_ascii_case("aws-chunked") && !e.is_empty())
                    .collect::<Vec<_>>()
                    .join(",")
            } else {
                v.to_string()
            };
            if !v.is_empty() {
                out.insert(name.to_string(), v);
            }
        }
    }
    out
}

/// A request header's value as text: UTF-8 where it is, else ISO-8859-1 (HTTP's historical
/// charset, and what Python's `http.client` sends), so that no byte is lost or replaced.
fn header_text(value: &HeaderValue) -> String {
    match std::str::from_utf8(value.as_bytes()) {
        Ok(s) => s.to_string(),
        Err(_) => value.as_bytes().iter().map(|&b| char::from(b)).collect(),
    }
}

/// A user metadata value as S3 returns it: as stored where it is printable ASCII, else
/// encoded as RFC 2047 (`=?UTF-8?B?...?=`), as S3 documents for non-ASCII metadata.
fn meta_value(v: &str) -> std::borrow::Cow<'_, str> {
    if v.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)) {
        v.into()
    } else {
        format!("=?UTF-8?B?{}?=", B64.encode(v.as_bytes())).into()
    }
}

pub(super) fn user_meta(headers: &HeaderMap) -> S3Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut total = 0;
    for (name, value) in headers {
        if let Some(k) = name.as_str().strip_prefix("x-amz-meta-") {
            let v = header_text(value);
            total += k.len() + v.len();
            out.insert(k.to_string(), v);
        }
    }
    if total > MAX_USER_META {
        return Err(S3Error::bad(
            "MetadataTooLarge",
            "Your metadata headers exceed the maximum allowed metadata size.",
        ));
    }
    Ok(out)
}

pub(super) fn content_md5(headers: &HeaderMap) -> S3Result<Option<[u8; 16]>> {
    let Some(v) = headers.get("content-md5") else {
        return Ok(None);
    };
    let invalid = || {
        S3Error::bad(
            "InvalidDigest",
            "The Content-MD5 you specified is not valid.",
        )
    };
    let raw = B64
        .decode(v.as_bytes().trim_ascii())
        .map_err(|_| invalid())?;
    raw.try_into().map(Some).map_err(|_| invalid())
}

/// `GET` or `HEAD /bucket/key`.
pub async fn get(ctx: &Ctx<'_>, bucket: &str, key: &str, head: bool) -> S3Result<Response> {
    let part = ctx
        .query
        .get("partNumber")
        .map(|n| part_number(n))
        .transpose()?;
    if part.is_some() && ctx.header("range").is_some() {
        return Err(S3Error::invalid_request(
            "Cannot specify both Range header and partNumber query parameter",
        ));
    }
    // The response-* overrides are for signed requests (a presigned URL among them): S3
    // refuses them on an anonymous one, which could otherwise serve an object under any
    // content type it likes.
    if ctx.auth.access_key.is_empty()
        && RESPONSE_OVERRIDES
            .iter()
            .any(|(p, _)| ctx.query.contains_key(*p))
    {
        return Err(S3Error::invalid_request(
            "Request specific response headers cannot be used for anonymous GET requests.",
        ));
    }
    let reader = ctx
        .state
        .store
        .open_object(bucket, key, version_param(ctx)?)
        .await
        .map_err(|e| S3Error::from(e).with_resource(format!("/{bucket}/{key}")))?;
    let info = reader.info.clone();
    if let Some(status) = check_conditions(ctx, &info, "")? {
        let mut r = status.into_response();
        set(r.headers_mut(), "etag", &format!("\"{}\"", info.etag));
        set(
            r.headers_mut(),
            "last-modified",
            &xml::http_date(info.mod_time_ns),
        );
        return Ok(r);
    }
    let range = match (part, ctx.header("range")) {
        (Some(n), _) => Some(part_range(&info, n)?),
        (None, Some(r)) => parse_range(r, info.size)?,
        (None, None) => None,
    };
    let (start, end) = range.unwrap_or((0, info.size));
    let mut resp = if head {
        Response::new(Body::empty())
    } else {
        let stream = reader.stream(start, end).await?;
        Response::new(Body::from_stream(stream))
    };
    let h = resp.headers_mut();
    object_headers(h, &info);
    if ctx.query.contains_key("partNumber") && !info.parts.is_empty() {
        set(h, "x-amz-mp-parts-count", &info.parts.len().to_string());
    }
    set(h, "content-length", &(end - start).to_string());
    if range.is_some() {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        set(
            resp.headers_mut(),
            "content-range",
            &format!("bytes {start}-{}/{}", end.saturating_sub(1), info.size),
        );
    } else if ctx
        .header("x-amz-checksum-mode")
        .is_some_and(|m| m.eq_ignore_ascii_case("ENABLED"))
    {
        if let Some((alg, v)) = &info.checksum {
            set(
                resp.headers_mut(),
                &format!("x-amz-checksum-{}", alg.to_ascii_lowercase()),
                v,
            );
            let kind = if v.contains('-') {
                "COMPOSITE"
            } else {
                "FULL_OBJECT"
            };
            set(resp.headers_mut(), "x-amz-checksum-type", kind);
        }
    }
    // response-* query parameters override the stored headers.
    for (param, header) in RESPONSE_OVERRIDES {
        if let Some(v) = ctx.query.get(param) {
            set(resp.headers_mut(), header, v);
        }
    }
    Ok(resp)
}

/// The query parameters of a GET or HEAD that override a response header, and the header.
const RESPONSE_OVERRIDES: [(&str, &str); 6] = [
    ("response-content-type", "content-type"),
    ("response-content-language", "content-language"),
    ("response-expires", "expires"),
    ("response-cache-control", "cache-control"),
    ("response-content-disposition", "content-disposition"),
    ("response-content-encoding", "content-encoding"),
];

/// The `versionId` query parameter, if any.
pub(super) fn version_param<'a>(ctx: &'a Ctx<'_>) -> S3Result<Option<&'a str>> {
    match ctx.query.get("versionId").map(String::as_str) {
        Some(v) => check_version_id(v).map(Some),
        None => Ok(None),
    }
}

/// A version id is `null` or one Tessera made (32 hex digits); anything else is
/// `InvalidArgument`, as S3 answers.
pub(super) fn check_version_id(v: &str) -> S3Result<&str> {
    if v == "null" || (v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit())) {
        Ok(v)
    } else {
        Err(S3Error::invalid_argument("Invalid version id specified"))
    }
}

fn object_headers(h: &mut HeaderMap, info: &VersionRecord) {
    set(h, "etag", &format!("\"{}\"", info.etag));
    version_header(h, &info.version_id);
    if !info.tags.is_empty() {
        set(h, "x-amz-tagging-count", &info.tags.len().to_string());
    }
    set(h, "last-modified", &xml::http_date(info.mod_time_ns));
    set(h, "accept-ranges", "bytes");
    if !info.headers.contains_key("content-type") {
        set(h, "content-type", "binary/octet-stream");
    }
    for (k, v) in &info.headers {
        set(h, k, v);
    }
    for (k, v) in &info.user_meta {
        set(h, &format!("x-amz-meta-{k}"), &meta_value(v));
    }
}

/// Evaluates `If-Match`, `If-None-Match`, `If-Modified-Since` and `If-Unmodified-Since`
/// (with `prefix` `x-amz-copy-source-` for a copy's source) the way S3 does. Returns the
/// status to answer instead of the object, or `None` to go on.
fn check_conditions(
    ctx: &Ctx<'_>,
    info: &VersionRecord,
    prefix: &str,
) -> S3Result<Option<StatusCode>> {
    let h = |n: &str| ctx.header(&format!("{prefix}{n}"));
    let matches = |list: &str| {
        list.split(',')
            .map(|t| t.trim().trim_start_matches("W/").trim_matches('"'))
            .any(|t| t == "*" || t == info.etag)
    };
    let modified = info.mod_time_ns / 1_000_000_000;
    let date = |v: &str| {
        httpdate::parse_http_date(v).ok().and_then(|t| {
            t.duration_since(std::time::UNIX_EPOCH)
                .ok()
                .map(|d| d.as_secs() as i128)
        })
    };
    let if_match = h("if-match");
    if let Some(m) = if_match {
        if !matches(m) {
            return Err(S3Error::precondition_failed());
        }
    } else if let Some(t) = h("if-unmodified-since").and_then(date) {
        if modified > t {
            return Err(S3Error::precondition_failed());
        }
    }
    let not_modified = if prefix.is_empty() {
        Some(StatusCode::NOT_MODIFIED)
    } else {
        None
    };
    if let Some(m) = h("if-none-match") {
        if matches(m) {
            return not_modified
                .map(Some)
                .ok_or_else(S3Error::precondition_failed);
        }
    } else if let Some(t) = h("if-modified-since").and_then(date) {
        if modified <= t {
            return not_modified
                .map(Some)
                .ok_or_else(S3Error::precondition_failed);
        }
    }
    Ok(None)
}

/// A `partNumber` query parameter: an integer from 1 to 10,000, else `InvalidArgument`.
fn part_number(n: &str) -> S3Result<usize> {
    n.parse()
        .ok()
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| {
            S3Error::invalid_argument(
                "Part number must be an integer between 1 and 10000, inclusive",
            )
        })
}

/// The byte range of part `n` (`?partNumber=n`); a single PUT is one part.
fn part_range(info: &VersionRecord, n: usize) -> S3Result<(u64, u64)> {
    let invalid = || {
        S3Error::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "InvalidPartNumber",
            "The requested partnumber is not satisfiable",
        )
    };
    if info.parts.is_empty() {
        return if n == 1 {
            Ok((0, info.size))
        } else {
            Err(invalid())
        };
    }
    let index = n
        .checked_sub(1)
        .filter(|i| *i < info.parts.len())
        .ok_or_else(invalid)?;
    let start: u64 = info.parts[..index].iter().map(|p| p.size).sum();
    Ok((start, start + info.parts[index].size))
}

/// Parses a `Range` header against an object of `size` bytes: `Ok(None)` when the header is
/// not a single byte range S3 honours (the whole object is sent), `InvalidRange` when the
/// range is unsatisfiable. Returns `(start, end)` with `end` exclusive.
pub fn parse_range(header: &str, size: u64) -> S3Result<Option<(u64, u64)>> {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let invalid = || {
        S3Error::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "InvalidRange",
            "The requested range is not satisfiable",
        )
    };
    let range = match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(start), Ok(last)) if start <= last => {
            if start >= size {
                return Err(invalid());
            }
            (start, last.saturating_add(1).min(size))
        }
        (Ok(start), Err(_)) if b.is_empty() => {
            if start >= size {
                return Err(invalid());
            }
            (start, size)
        }
        (Err(_), Ok(n)) if a.is_empty() => {
            if n == 0 {
                return Err(invalid());
            }
            (size.saturating_sub(n), size)
        }
        _ => return Ok(None),
    };
    if size == 0 {
        return Err(invalid());
    }
    Ok(Some(range))
}

/// `DELETE /bucket/key`: 204 whether or not the key existed.
pub async fn delete(ctx: &Ctx<'_>, bucket: &str, key: &str) -> S3Result<Response> {
    let out = ctx
        .state
        .store
        .delete_object(bucket, key, version_param(ctx)?)
        .await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if let Some(v) = &out.version_id {
        set(resp.headers_mut(), "x-amz-version-id", v);
    }
    if out.delete_marker {
        set(resp.headers_mut(), "x-amz-delete-marker", "true");
    }
    Ok(resp)
}

/// Resolves `x-amz-copy-source` (and its conditions) to a reader of the source object.
pub(super) async fn open_copy_source(ctx: &Ctx<'_>) -> S3Result<(String, String, ObjectReader)> {
    let source = ctx.header("x-amz-copy-source").unwrap_or_default();
    let (src_path, version) = match source.split_once('?') {
        Some((p, q)) => (p, q.strip_prefix("versionId=")),
        None => (source, None),
    };
    if version == Some("") {
        return Err(S3Error::invalid_argument(
            "Version id cannot be the empty string",
        ));
    }
    if let Some(v) = version {
        check_version_id(v)?;
    }
    let decoded = percent_encoding::percent_decode_str(src_path)
        .decode_utf8()
        .map_err(|_| S3Error::invalid_argument("Invalid copy source encoding"))?;
    let decoded = decoded.trim_start_matches('/');
    let (src_bucket, src_key) = decoded
        .split_once('/')
        .filter(|(b, k)| !b.is_empty() && !k.is_empty())
        .ok_or_else(|| {
            S3Error::invalid_argument(
                "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
            )
        })?;
    super::names::check_bucket(src_bucket)?;
    super::names::check_key(src_key)?;
    let action = match version {
        Some(_) => "s3:GetObjectVersion",
        None => "s3:GetObject",
    };
    ctx.authz
        .check_object(ctx, action, Some(src_bucket), Some(src_key), version, None)
        .await?;
    let reader = ctx
        .state
        .store
        .open_object(src_bucket, src_key, version)
        .await
        .map_err(|e| match e {
            // A GET naming a delete marker is 405; a copy naming one is a bad request.
            crate::object::Error::DeleteMarker {
                requested: true, ..
            } => S3Error::invalid_request(
                "The source of a copy request may not specifically refer to a delete marker by version id.",
            ),
            e => S3Error::from(e),
        })
        .map_err(|e| e.with_resource(format!("/{src_bucket}/{src_key}")))?;
    check_conditions(ctx, &reader.info, "x-amz-copy-source-")?;
    Ok((src_bucket.to_string(), src_key.to_string(), reader))
}

/// `PUT /bucket/key` with `x-amz-copy-source`.
pub async fn copy(ctx: &Ctx<'_>, bucket: &str, key: &str) -> S3Result<Response> {
    check_write_headers(ctx)?;
    let directive = ctx.header("x-amz-metadata-directive").unwrap_or("COPY");
    let replace = match directive {
        "COPY" => false,
        "REPLACE" => true,
        other => {
            return Err(S3Error::invalid_argument(format!(
                "Unknown metadata directive {other}"
            )))
        }
    };
    let (src_bucket, src_key, reader) = open_copy_source(ctx).await?;
    let names_version = ctx
        .header("x-amz-copy-source")
        .is_some_and(|c| c.contains("?versionId="));
    let changes_class = ctx.headers.contains_key("x-amz-storage-class");
    if src_bucket == bucket && src_key == key && !replace && !names_version && !changes_class {
        return Err(S3Error::invalid_request(
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
        ));
    }
    let info = reader.info.clone();
    if info.size > MAX_PUT {
        return Err(S3Error::invalid_request(
            "The specified copy source is larger than the maximum allowable size for a copy source: 5368709120",
        ));
    }
    let (headers, user_meta) = if replace {
        (stored_headers(ctx.headers), user_meta(ctx.headers)?)
    } else {
        (info.headers.clone(), info.user_meta.clone())
    };
    let tags = match ctx.header("x-amz-tagging-directive").unwrap_or("COPY") {
        "COPY" => info.tags.clone(),
        "REPLACE" => match ctx.header("x-amz-tagging") {
            Some(t) => super::tagging::parse_header(t)?,
            None => Default::default(),
        },
        other => {
            return Err(S3Error::invalid_argument(format!(
                "Unknown tagging directive {other}"
            )))
        }
    };
    let checksum = info.checksum.clone();
    let data = reader
        .stream(0, info.size)
        .await?
        .map(|r| r.map_err(|e| Box::new(e) as BoxError))
        .boxed();
    let opts = PutOptions {
        headers,
        user_meta,
        tags,
        content_md5: None,
        finish: Some(Box::new(move || Ok(checksum))),
        condition: write_condition(ctx)?,
    };
    let rec = ctx.state.store.put_object(bucket, key, opts, data).await?;
    let mut x = Xml::new();
    x.root("CopyObjectResult");
    x.elem("LastModified", &xml::timestamp(rec.mod_time_ns));
    x.elem("ETag", &format!("\"{}\"", rec.etag));
    x.close("CopyObjectResult");
    let mut resp = xml_response(x.finish());
    version_header(resp.headers_mut(), &rec.version_id);
    if info.version_id != "null" {
        set(
            resp.headers_mut(),
            "x-amz-copy-source-version-id",
            &info.version_id,
        );
    }
    Ok(resp)
}

#[derive(Deserialize)]
pub(crate) struct DeleteRequest {
    #[serde(rename = "Object", default)]
    objects: Vec<DeleteEntry>,
    #[serde(rename = "Quiet", default)]
    quiet: bool,
}

#[derive(Deserialize)]
struct DeleteEntry {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "VersionId", default)]
    version_id: Option<String>,
}

/// `POST /bucket?delete`: up to 1000 keys in one request.
pub async fn delete_objects(ctx: &Ctx<'_>, bucket: &str, body: Body) -> S3Result<Response> {
    // S3 requires an integrity check on this request: Content-MD5, or a checksum of the body
    // (as a header or, for aws-chunked bodies, a trailer), which `small_body` verifies.
    let checksummed =
        ctx.headers.keys().any(|k| {
            k.as_str().starts_with("x-amz-checksum-") && k.as_str() != "x-amz-checksum-type"
        }) || ctx.header("x-amz-trailer").is_some();
    if !checksummed && !ctx.headers.contains_key("content-md5") {
        return Err(S3Error::invalid_request(
            "Missing required header for this request: Content-MD5",
        ));
    }
    let raw = small_body(ctx, body, 2 << 20).await?;
    if let Some(want) = content_md5(ctx.headers)? {
        let got = Md5::digest(&raw);
        if got != want {
            return Err(S3Error::bad(
                "BadDigest",
                "The Content-MD5 you specified did not match what we received.",
            ));
        }
    }
    let req: DeleteRequest = xml::parse(&raw)?;
    if req.objects.is_empty() || req.objects.len() > 1000 {
        return Err(S3Error::malformed_xml());
    }
    ctx.state.store.get_bucket(bucket).await?;
    let mut x = Xml::new();
    x.root("DeleteResult");
    for entry in req.objects {
        let checked = super::names::check_key(&entry.key).and_then(|()| {
            entry
                .version_id
                .as_deref()
                .map(check_version_id)
                .transpose()
                .map(|_| ())
        });
        let action = match entry.version_id {
            Some(_) => "s3:DeleteObjectVersion",
            None => "s3:DeleteObject",
        };
        let checked = match checked {
            Ok(()) => {
                ctx.authz
                    .check_object(
                        ctx,
                        action,
                        Some(bucket),
                        Some(&entry.key),
                        entry.version_id.as_deref(),
                        None,
                    )
                    .await
            }
            e => e,
        };
        let result = match checked {
            Err(e) => Err(e),
            Ok(()) => ctx
                .state
                .store
                .delete_object(bucket, &entry.key, entry.version_id.as_deref())
                .await
                .map_err(S3Error::from),
        };
        match result {
            Ok(_) if req.quiet => {}
            Ok(out) => {
                x.open("Deleted");
                x.elem("Key", &entry.key);
                if let Some(v) = &entry.version_id {
                    x.elem("VersionId", v);
                }
                if out.delete_marker {
                    // The marker made, or the marker version deleted (the API reference's
                    // `DeletedObject`).
                    x.elem("DeleteMarker", "true");
                    if let Some(v) = entry.version_id.as_ref().or(out.version_id.as_ref()) {
                        x.elem("DeleteMarkerVersionId", v);
                    }
                }
                x.close("Deleted");
            }
            Err(e) => {
                x.open("Error");
                x.elem("Key", &entry.key);
                if let Some(v) = &entry.version_id {
                    x.elem("VersionId", v);
                }
                x.elem("Code", e.code);
                x.elem("Message", &e.message);
                x.close("Error");
            }
        }
    }
    x.close("DeleteResult");
    Ok(xml_response(x.finish()))
}

#[cfg(test)]
mod tests {
    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 3000,
            failure_persistence: None,
            ..Default::default()
        })]

        /// Any Range header against any size: ignored, refused, or a non-empty range inside
        /// the object.
        #[test]
        fn ranges_parse_or_refuse(h in "(bytes=)?[0-9 ,-]{0,24}(18446744073709551615)?", size in 0u64..10_000) {
            if let Ok(Some((a, b))) = super::parse_range(&h, size) {
                proptest::prop_assert!(a < b && b <= size, "{h:?} of {size}: {a}..{b}");
            }
        }
    }

    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100).unwrap(), Some((0, 10)));
        assert_eq!(parse_range("bytes=90-200", 100).unwrap(), Some((90, 100)));
        assert_eq!(parse_range("bytes=95-", 100).unwrap(), Some((95, 100)));
        assert_eq!(parse_range("bytes=-10", 100).unwrap(), Some((90, 100)));
        assert_eq!(parse_range("bytes=-1000", 100).unwrap(), Some((0, 100)));
        assert_eq!(
            parse_range("bytes=100-", 100).unwrap_err().code,
            "InvalidRange"
        );
        assert_eq!(
            parse_range("bytes=100-200", 100).unwrap_err().code,
            "InvalidRange"
        );
        assert_eq!(
            parse_range("bytes=-0", 100).unwrap_err().code,
            "InvalidRange"
        );
        assert_eq!(
            parse_range("bytes=0-0", 0).unwrap_err().code,
            "InvalidRange"
        );
        // The last byte may be any u64, u64::MAX too (found by cargo fuzz).
        assert_eq!(
            parse_range("bytes=11-18446744073709551615", 100).unwrap(),
            Some((11, 100))
        );
        assert_eq!(
            parse_range("bytes=\u{b}11-000018446744073709551615", 100).unwrap(),
            Some((11, 100))
        );
        assert_eq!(parse_range("bytes=5-2", 100).unwrap(), None);
        assert_eq!(parse_range("bytes=0-1,4-5", 100).unwrap(), None);
        assert_eq!(parse_range("items=0-1", 100).unwrap(), None);
    }
}
