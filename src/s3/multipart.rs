//! Multipart uploads: CreateMultipartUpload, UploadPart, UploadPartCopy,
//! CompleteMultipartUpload, AbortMultipartUpload, ListParts, ListMultipartUploads.

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;

use super::body;
use super::checksum::ChecksumAlgorithm;
use super::error::{S3Error, S3Result};
use super::object::{
    check_put_length, check_write_headers, content_md5, open_copy_source, set, stored_headers,
    user_meta, write_condition, MAX_PUT,
};
use super::xml::{self, Xml};
use super::{small_body, xml_response, Ctx};
use crate::object::{BoxError, CompletedPart, PutOptions};

const MAX_PART_NUMBER: u32 = 10_000;

fn upload_id(ctx: &Ctx<'_>) -> S3Result<String> {
    ctx.query
        .get("uploadId")
        .filter(|u| !u.is_empty())
        .cloned()
        .ok_or_else(|| S3Error::invalid_argument("uploadId is required"))
}

/// `POST /bucket/key?uploads`.
pub async fn create(ctx: &Ctx<'_>, bucket: &str, key: &str) -> S3Result<Response> {
    check_write_headers(ctx)?;
    let algorithm = match ctx.header("x-amz-checksum-algorithm") {
        Some(a) => Some(ChecksumAlgorithm::from_name(a).ok_or_else(|| {
            S3Error::invalid_argument(format!("Unsupported checksum algorithm {a}"))
        })?),
        None => None,
    };
    // FULL_OBJECT: the CRC of the whole object, combined from the parts' CRCs (CRC64NVME only
    // has this form); COMPOSITE: a checksum of the parts' checksums (the SHAs only have this).
    let checksum = match (algorithm, ctx.header("x-amz-checksum-type")) {
        (None, Some(_)) => {
            return Err(S3Error::invalid_request(
                "x-amz-checksum-type needs x-amz-checksum-algorithm",
            ))
        }
        (None, None) => None,
        (Some(a), t) => {
            let full = match t.map(str::trim) {
                Some("FULL_OBJECT") => true,
                Some("COMPOSITE") => false,
                Some(other) => {
                    return Err(S3Error::invalid_argument(format!(
                        "Unknown checksum type {other}"
                    )))
                }
                None => a == ChecksumAlgorithm::Crc64Nvme,
            };
            if full && !a.combinable() {
                return Err(S3Error::invalid_request(format!(
                    "The FULL_OBJECT checksum type cannot be used with the {a} algorithm"
                )));
            }
            if !full && a == ChecksumAlgorithm::Crc64Nvme {
                return Err(S3Error::invalid_request(
                    "The COMPOSITE checksum type cannot be used with the CRC64NVME algorithm",
                ));
            }
            let kind = if full { "FULL_OBJECT" } else { "COMPOSITE" };
            Some((a.as_str().to_string(), kind.to_string()))
        }
    };
    let opts = PutOptions {
        headers: stored_headers(ctx.headers),
        user_meta: user_meta(ctx.headers)?,
        tags: match ctx.header("x-amz-tagging") {
            Some(t) => super::tagging::parse_header(t)?,
            None => Default::default(),
        },
        ..Default::default()
    };
    let id = ctx
        .state
        .store
        .create_upload(bucket, key, opts, checksum.clone())
        .await?;
    let mut x = Xml::new();
    x.root("InitiateMultipartUploadResult");
    x.elem("Bucket", bucket);
    x.elem("Key", key);
    x.elem("UploadId", &id);
    x.close("InitiateMultipartUploadResult");
    let mut resp = xml_response(x.finish());
    if let Some((a, kind)) = checksum {
        set(resp.headers_mut(), "x-amz-checksum-algorithm", &a);
        set(resp.headers_mut(), "x-amz-checksum-type", &kind);
    }
    Ok(resp)
}

fn part_number(ctx: &Ctx<'_>) -> S3Result<u32> {
    ctx.query
        .get("partNumber")
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|n| (1..=MAX_PART_NUMBER).contains(n))
        .ok_or_else(|| {
            S3Error::invalid_argument(
                "Part number must be an integer between 1 and 10000, inclusive",
            )
        })
}

/// `PUT /bucket/key?partNumber&uploadId`, the body or a copy source range being the part.
pub async fn upload_part(
    ctx: &Ctx<'_>,
    bucket: &str,
    key: &str,
    copy: bool,
    body: Body,
) -> S3Result<Response> {
    let number = part_number(ctx)?;
    let id = upload_id(ctx)?;
    if copy {
        return upload_part_copy(ctx, bucket, key, &id, number).await;
    }
    check_put_length(ctx)?;
    let (stream, slot) = body::request_body(body, ctx.headers, ctx.auth)?;
    let opts = PutOptions {
        content_md5: content_md5(ctx.headers)?,
        finish: Some(Box::new(move || {
            Ok(slot.lock().ok().and_then(|mut s| s.take()))
        })),
        ..Default::default()
    };
    let part = ctx
        .state
        .store
        .upload_part(bucket, key, &id, number, opts, stream)
        .await?;
    let mut resp = StatusCode::OK.into_response();
    set(resp.headers_mut(), "etag", &format!("\"{}\"", part.etag));
    if let Some((alg, v)) = &part.checksum {
        set(
            resp.headers_mut(),
            &format!("x-amz-checksum-{}", alg.to_ascii_lowercase()),
            v,
        );
    }
    Ok(resp)
}

async fn upload_part_copy(
    ctx: &Ctx<'_>,
    bucket: &str,
    key: &str,
    id: &str,
    number: u32,
) -> S3Result<Response> {
    let (_, _, reader) = open_copy_source(ctx).await?;
    let size = reader.info.size;
    let source_version = reader.info.version_id.clone();
    let (start, end) = match ctx.header("x-amz-copy-source-range") {
        Some(r) => copy_source_range(r, size)?,
        None => (0, size),
    };
    if end - start > MAX_PUT {
        return Err(S3Error::bad("EntityTooLarge", "The part exceeds 5 GiB."));
    }
    let data = reader
        .stream(start, end)
        .await?
        .map(|r| r.map_err(|e| Box::new(e) as BoxError))
        .boxed();
    let part = ctx
        .state
        .store
        .upload_part(bucket, key, id, number, PutOptions::default(), data)
        .await?;
    let mut x = Xml::new();
    x.root("CopyPartResult");
    x.elem("LastModified", &xml::timestamp(part.mod_time_ns));
    x.elem("ETag", &format!("\"{}\"", part.etag));
    x.close("CopyPartResult");
    let mut resp = xml_response(x.finish());
    // The version copied, where the source bucket keeps versions (as CopyObject says it).
    if source_version != "null" {
        set(
            resp.headers_mut(),
            "x-amz-copy-source-version-id",
            &source_version,
        );
    }
    Ok(resp)
}

/// An `x-amz-copy-source-range` against a source of `size` bytes, as `(start, end)` with
/// `end` exclusive. Unlike a GET's `Range`, only `bytes=first-last` is accepted, and a range
/// that runs past the source's end is refused (`InvalidRange`) rather than cut short.
fn copy_source_range(header: &str, size: u64) -> S3Result<(u64, u64)> {
    let malformed = || {
        S3Error::invalid_argument(
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy",
        )
    };
    let (first, last) = header
        .trim()
        .strip_prefix("bytes=")
        .and_then(|spec| spec.split_once('-'))
        .ok_or_else(malformed)?;
    let digits = |v: &str| {
        let v = v.trim();
        (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .then(|| v.parse::<u64>().ok())
            .flatten()
    };
    let (Some(first), Some(last)) = (digits(first), digits(last)) else {
        return Err(malformed());
    };
    if first > last {
        return Err(malformed());
    }
    if last >= size {
        return Err(S3Error::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "InvalidRange",
            format!("Range specified is not valid for source object of size: {size}"),
        ));
    }
    Ok((first, last + 1))
}

#[derive(Deserialize)]
pub(crate) struct CompleteRequest {
    #[serde(rename = "Part", default)]
    parts: Vec<CompleteEntry>,
}

#[derive(Deserialize)]
struct CompleteEntry {
    #[serde(rename = "PartNumber")]
    number: u32,
    #[serde(rename = "ETag")]
    etag: String,
    #[serde(rename = "ChecksumCRC32")]
    crc32: Option<String>,
    #[serde(rename = "ChecksumCRC32C")]
    crc32c: Option<String>,
    #[serde(rename = "ChecksumCRC64NVME")]
    crc64nvme: Option<String>,
    #[serde(rename = "ChecksumSHA1")]
    sha1: Option<String>,
    #[serde(rename = "ChecksumSHA256")]
    sha256: Option<String>,
}

impl CompleteEntry {
    /// The part's checksum as the client listed it, `(algorithm, base64)`.
    fn checksum(&self) -> Option<(String, String)> {
        [
            ("CRC32", &self.crc32),
            ("CRC32C", &self.crc32c),
            ("CRC64NVME", &self.crc64nvme),
            ("SHA1", &self.sha1),
            ("SHA256", &self.sha256),
        ]
        .into_iter()
        .find_map(|(alg, v)| v.as_ref().map(|v| (alg.to_string(), v.trim().to_string())))
    }
}

/// `POST /bucket/key?uploadId`.
pub async fn complete(ctx: &Ctx<'_>, bucket: &str, key: &str, body: Body) -> S3Result<Response> {
    let id = upload_id(ctx)?;
    let condition = write_condition(ctx)?;
    // Here an `x-amz-checksum-*` header is the checksum of the whole object, checked below
    // against the parts', not the checksum of this request's XML body.
    let mut headers = ctx.headers.clone();
    for alg in ChecksumAlgorithm::ALL {
        headers.remove(alg.header_name());
    }
    let raw = small_body(
        &Ctx {
            headers: &headers,
            ..*ctx
        },
        body,
        4 << 20,
    )
    .await?;
    let req: CompleteRequest = xml::parse(&raw)?;
    if req.parts.is_empty() || req.parts.len() > MAX_PART_NUMBER as usize {
        return Err(S3Error::malformed_xml());
    }
    let parts: Vec<CompletedPart> = req
        .parts
        .into_iter()
        .map(|p| CompletedPart {
            number: p.number,
            checksum: p.checksum(),
            etag: p.etag,
        })
        .collect();
    // A whole-object checksum the client computed, to check against the parts'. A
    // composite one may come with its part count (`-N`) or without.
    let mut expected = None;
    for a in ChecksumAlgorithm::ALL {
        let Some(v) = ctx.header(a.header_name()).map(str::trim) else {
            continue;
        };
        let bare = match v.rsplit_once('-') {
            Some((b, n)) if !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()) => b,
            _ => v,
        };
        if !a.valid_value(bare) {
            return Err(S3Error::invalid_request(format!(
                "Value for {} header is invalid.",
                a.header_name()
            )));
        }
        expected = Some((a.as_str().to_string(), v.to_string()));
        break;
    }
    let rec = ctx
        .state
        .store
        .complete_upload(bucket, key, &id, &parts, expected, condition.as_ref())
        .await?;
    let host = ctx.header("host").unwrap_or("localhost");
    let mut x = Xml::new();
    x.root("CompleteMultipartUploadResult");
    x.elem("Location", &format!("http://{host}/{bucket}/{key}"));
    x.elem("Bucket", bucket);
    x.elem("Key", key);
    x.elem("ETag", &format!("\"{}\"", rec.etag));
    if let Some((alg, v)) = &rec.checksum {
        x.elem(&format!("Checksum{}", alg.to_ascii_uppercase()), v);
        let kind = if v.contains('-') {
            "COMPOSITE"
        } else {
            "FULL_OBJECT"
        };
        x.elem("ChecksumType", kind);
    }
    x.close("CompleteMultipartUploadResult");
    let mut resp = xml_response(x.finish());
    super::object::version_header(resp.headers_mut(), &rec.version_id);
    Ok(resp)
}

/// `DELETE /bucket/key?uploadId`.
pub async fn abort(ctx: &Ctx<'_>, bucket: &str, key: &str) -> S3Result<Response> {
    let id = upload_id(ctx)?;
    ctx.state.store.abort_upload(bucket, key, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn bounded(ctx: &Ctx<'_>, name: &str) -> S3Result<usize> {
    match ctx.query.get(name) {
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(|n| n.min(1000) as usize)
            .ok_or_else(|| S3Error::invalid_argument(format!("Invalid {name}"))),
        None => Ok(1000),
    }
}

/// `GET /bucket/key?uploadId`.
pub async fn list_parts(ctx: &Ctx<'_>, bucket: &str, key: &str) -> S3Result<Response> {
    let id = upload_id(ctx)?;
    let max = bounded(ctx, "max-parts")?;
    let marker: u32 = match ctx.query.get("part-number-marker") {
        Some(m) => m
            .parse()
            .map_err(|_| S3Error::invalid_argument("Invalid part-number-marker"))?,
        None => 0,
    };
    let parts = ctx.state.store.list_parts(bucket, key, &id).await?;
    let after: Vec<_> = parts.into_iter().filter(|p| p.number > marker).collect();
    let truncated = after.len() > max;
    let page = &after[..after.len().min(max)];
    let mut x = Xml::new();
    x.root("ListPartsResult");
    x.elem("Bucket", bucket);
    x.elem("Key", key);
    x.elem("UploadId", &id);
    x.elem("PartNumberMarker", &marker.to_string());
    if let Some(last) = page.last() {
        x.elem("NextPartNumberMarker", &last.number.to_string());
    }
    x.elem("MaxParts", &max.to_string());
    x.elem("IsTruncated", if truncated { "true" } else { "false" });
    for p in page {
        x.open("Part");
        x.elem("PartNumber", &p.number.to_string());
        x.elem("LastModified", &xml::timestamp(p.mod_time_ns));
        x.elem("ETag", &format!("\"{}\"", p.etag));
        x.elem("Size", &p.size.to_string());
        if let Some((alg, v)) = &p.checksum {
            x.elem(&format!("Checksum{}", alg.to_ascii_uppercase()), v);
        }
        x.close("Part");
    }
    owner(&mut x, "Initiator", &ctx.auth.access_key);
    owner(&mut x, "Owner", &ctx.auth.access_key);
    x.elem("StorageClass", "STANDARD");
    x.close("ListPartsResult");
    Ok(xml_response(x.finish()))
}

fn owner(x: &mut Xml, tag: &str, id: &str) {
    x.open(tag);
    x.elem("ID", id);
    x.elem("DisplayName", id);
    x.close(tag);
}

/// `GET /bucket?uploads`.
pub async fn list_uploads(ctx: &Ctx<'_>, bucket: &str) -> S3Result<Response> {
    let q = ctx.query;
    let prefix = q.get("prefix").cloned().unwrap_or_default();
    let delimiter = q.get("delimiter").cloned().filter(|d| !d.is_empty());
    let key_marker = q.get("key-marker").cloned().unwrap_or_default();
    let upload_marker = q.get("upload-id-marker").cloned().unwrap_or_default();
    let max = bounded(ctx, "max-uploads")?;
    // With only a key marker, every upload of that key is skipped.
    let after_upload = if upload_marker.is_empty() && !key_marker.is_empty() {
        "\u{10FFFF}".to_string()
    } else {
        upload_marker.clone()
    };
    let page = ctx
        .state
        .store
        .list_uploads(
            bucket,
            &prefix,
            delimiter.as_deref(),
            (&key_marker, &after_upload),
            max,
        )
        .await?;
    let mut x = Xml::new();
    x.root("ListMultipartUploadsResult");
    x.elem("Bucket", bucket);
    x.elem("KeyMarker", &key_marker);
    x.elem("UploadIdMarker", &upload_marker);
    if let Some((key, upload)) = &page.next {
        x.elem("NextKeyMarker", key);
        x.elem("NextUploadIdMarker", upload);
    }
    if let Some(d) = &delimiter {
        x.elem("Delimiter", d);
    }
    x.elem("Prefix", &prefix);
    x.elem("MaxUploads", &max.to_string());
    x.elem("IsTruncated", if page.truncated { "true" } else { "false" });
    for u in &page.uploads {
        x.open("Upload");
        x.elem("Key", &u.key);
        x.elem("UploadId", &u.upload_id);
        owner(&mut x, "Initiator", &ctx.auth.access_key);
        owner(&mut x, "Owner", &ctx.auth.access_key);
        x.elem("StorageClass", "STANDARD");
        x.elem("Initiated", &xml::timestamp(u.initiated_ns));
        if let Some(a) = &u.checksum_algorithm {
            x.elem("ChecksumAlgorithm", a);
        }
        x.close("Upload");
    }
    for p in &page.prefixes {
        x.open("CommonPrefixes");
        x.elem("Prefix", p);
        x.close("CommonPrefixes");
    }
    x.close("ListMultipartUploadsResult");
    Ok(xml_response(x.finish()))
}
