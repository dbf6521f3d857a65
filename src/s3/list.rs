//! ListObjects (v1) and ListObjectsV2.

use axum::response::Response;
use base64::{engine::general_purpose::URL_SAFE_NO_PAD as B64, Engine};

use super::error::{S3Error, S3Result};
use super::xml::{self, Xml};
use super::{xml_response, Ctx};

/// `GET /bucket` (v1) or `GET /bucket?list-type=2` (v2).
pub async fn list_objects(ctx: &Ctx<'_>, bucket: &str, v2: bool) -> S3Result<Response> {
    let q = ctx.query;
    let prefix = q.get("prefix").cloned().unwrap_or_default();
    let delimiter = q.get("delimiter").cloned().filter(|d| !d.is_empty());
    let max_keys = match q.get("max-keys") {
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| {
                S3Error::invalid_argument(
                    "Provided max-keys not an integer or within integer range",
                )
            })?
            .min(1000) as usize,
        None => 1000,
    };
    let url = match q.get("encoding-type").map(String::as_str) {
        None | Some("") => false,
        Some("url") => true,
        Some(_) => {
            return Err(S3Error::invalid_argument(
                "Invalid Encoding Method specified in Request",
            ))
        }
    };
    let enc = |s: &str| if url { url_encode(s) } else { s.to_string() };
    let token = q.get("continuation-token");
    let start_after = q.get("start-after").cloned().unwrap_or_default();
    let marker = q.get("marker").cloned().unwrap_or_default();
    let after: Vec<u8> = if v2 {
        match token {
            Some(t) => decode_token(t)?,
            None => start_after.clone().into_bytes(),
        }
    } else {
        marker.clone().into_bytes()
    };
    let page = ctx
        .state
        .store
        .list_objects(bucket, &prefix, delimiter.as_deref(), &after, max_keys)
        .await
        .map_err(|e| S3Error::from(e).with_resource(bucket))?;

    let mut x = Xml::new();
    x.root("ListBucketResult");
    x.elem("Name", bucket);
    x.elem("Prefix", &enc(&prefix));
    if v2 {
        x.elem(
            "KeyCount",
            &(page.objects.len() + page.prefixes.len()).to_string(),
        );
        if let Some(t) = token {
            x.elem("ContinuationToken", t);
        }
        if page.truncated {
            x.elem("NextContinuationToken", &B64.encode(&page.next_after));
        }
        if q.contains_key("start-after") {
            x.elem("StartAfter", &enc(&start_after));
        }
    } else {
        x.elem("Marker", &enc(&marker));
        // S3 documents NextMarker only with a delimiter, but it is sent on every truncated
        // page, as MinIO does: rclone's v1 listing with URL-encoded keys goes wrong without
        // it (tests/clients/test_rclone.py), and no client is harmed by it.
        if page.truncated {
            let next = String::from_utf8_lossy(&page.next_after);
            x.elem("NextMarker", &enc(next.trim_end_matches('\u{FFFD}')));
        }
    }
    x.elem("MaxKeys", &max_keys.to_string());
    if let Some(d) = &delimiter {
        x.elem("Delimiter", &enc(d));
    }
    if url {
        x.elem("EncodingType", "url");
    }
    x.elem("IsTruncated", if page.truncated { "true" } else { "false" });
    let owner = !v2 || q.get("fetch-owner").map(String::as_str) == Some("true");
    for (key, rec) in &page.objects {
        x.open("Contents");
        x.elem("Key", &enc(key));
        x.elem("LastModified", &xml::timestamp(rec.mod_time_ns));
        x.elem("ETag", &format!("\"{}\"", rec.etag));
        x.elem("Size", &rec.size.to_string());
        if let Some((alg, _)) = &rec.checksum {
            x.elem("ChecksumAlgorithm", alg);
        }
        x.elem("StorageClass", "STANDARD");
        if owner {
            x.open("Owner");
            x.elem("ID", &ctx.auth.access_key);
            x.elem("DisplayName", &ctx.auth.access_key);
            x.close("Owner");
        }
        x.close("Contents");
    }
    for p in &page.prefixes {
        x.open("CommonPrefixes");
        x.elem("Prefix", &enc(p));
        x.close("CommonPrefixes");
    }
    x.close("ListBucketResult");
    Ok(xml_response(x.finish()))
}

/// A continuation token this server gave (ListObjectsV2, ListBuckets): the base64 of where
/// the next page starts.
pub(super) fn decode_token(token: &str) -> S3Result<Vec<u8>> {
    B64.decode(token).map_err(|_| bad_token())
}

/// A continuation token that this server cannot have given.
pub(super) fn bad_token() -> S3Error {
    S3Error::invalid_argument("The continuation token provided is incorrect")
}

/// S3's `encoding-type=url`: every byte but unreserved characters and `/` percent-encoded.
fn url_encode(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

/// `GET /bucket?versions`: every version and delete marker, newest first within a key.
pub async fn list_versions(ctx: &Ctx<'_>, bucket: &str) -> S3Result<Response> {
    let q = ctx.query;
    let prefix = q.get("prefix").cloned().unwrap_or_default();
    let delimiter = q.get("delimiter").cloned().filter(|d| !d.is_empty());
    let key_marker = q.get("key-marker").cloned().unwrap_or_default();
    let version_marker = q
        .get("version-id-marker")
        .cloned()
        .filter(|v| !v.is_empty());
    if version_marker.is_some() && key_marker.is_empty() {
        return Err(S3Error::invalid_argument(
            "A version-id marker cannot be specified without a key marker.",
        ));
    }
    let max_keys = match q.get("max-keys") {
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| {
                S3Error::invalid_argument(
                    "Provided max-keys not an integer or within integer range",
                )
            })?
            .min(1000) as usize,
        None => 1000,
    };
    let url = q.get("encoding-type").map(String::as_str) == Some("url");
    let enc = |s: &str| if url { url_encode(s) } else { s.to_string() };
    let page = ctx
        .state
        .store
        .list_object_versions(
            bucket,
            &prefix,
            delimiter.as_deref(),
            &key_marker,
            version_marker.as_deref(),
            max_keys,
        )
        .await
        .map_err(|e| S3Error::from(e).with_resource(bucket))?;
    let mut x = Xml::new();
    x.root("ListVersionsResult");
    x.elem("Name", bucket);
    x.elem("Prefix", &enc(&prefix));
    x.elem("KeyMarker", &enc(&key_marker));
    x.elem("VersionIdMarker", version_marker.as_deref().unwrap_or(""));
    if let Some(k) = &page.next_key {
        x.elem("NextKeyMarker", &enc(k));
    }
    if let Some(v) = &page.next_version {
        x.elem("NextVersionIdMarker", v);
    }
    x.elem("MaxKeys", &max_keys.to_string());
    if let Some(d) = &delimiter {
        x.elem("Delimiter", &enc(d));
    }
    if url {
        x.elem("EncodingType", "url");
    }
    x.elem("IsTruncated", if page.truncated { "true" } else { "false" });
    for (key, v, latest) in &page.entries {
        let tag = if v.delete_marker {
            "DeleteMarker"
        } else {
            "Version"
        };
        x.open(tag);
        x.elem("Key", &enc(key));
        x.elem("VersionId", &v.version_id);
        x.elem("IsLatest", if *latest { "true" } else { "false" });
        x.elem("LastModified", &xml::timestamp(v.mod_time_ns));
        if !v.delete_marker {
            x.elem("ETag", &format!("\"{}\"", v.etag));
            x.elem("Size", &v.size.to_string());
            x.elem("StorageClass", "STANDARD");
        }
        x.open("Owner");
        x.elem("ID", &ctx.auth.access_key);
        x.elem("DisplayName", &ctx.auth.access_key);
        x.close("Owner");
        x.close(tag);
    }
    for p in &page.prefixes {
        x.open("CommonPrefixes");
        x.elem("Prefix", &enc(p));
        x.close("CommonPrefixes");
    }
    x.close("ListVersionsResult");
    Ok(xml_response(x.finish()))
}
