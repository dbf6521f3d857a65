//! Tagging: Put/Get/DeleteObjectTagging, Put/Get/DeleteBucketTagging, `x-amz-tagging` on PUT,
//! and GetObjectAttributes.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::{S3Error, S3Result};
use super::object::{set, version_header, version_param};
use super::xml::{self, Xml};
use super::{small_body, xml_response, Ctx};

/// Most tags on an object, as S3.
const MAX_OBJECT_TAGS: usize = 10;
/// Most tags on a bucket, as S3.
const MAX_BUCKET_TAGS: usize = 50;

#[derive(Deserialize)]
pub(crate) struct Tagging {
    #[serde(rename = "TagSet")]
    tag_set: TagSet,
}

#[derive(Deserialize)]
struct TagSet {
    #[serde(rename = "Tag", default)]
    tags: Vec<Tag>,
}

#[derive(Deserialize)]
struct Tag {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "Value", default)]
    value: String,
}

fn invalid_tag(message: impl Into<String>) -> S3Error {
    S3Error::bad("InvalidTag", message)
}

/// Checks S3's tag rules: keys 1..=128 characters and not `aws:...`, values up to 256, no
/// duplicates.
fn check(pairs: Vec<(String, String)>, max: usize) -> S3Result<BTreeMap<String, String>> {
    if pairs.len() > max {
        return Err(invalid_tag(format!("Cannot have more than {max} tags")));
    }
    let mut out = BTreeMap::new();
    for (k, v) in pairs {
        if k.is_empty() || k.chars().count() > 128 {
            return Err(invalid_tag("The TagKey you have provided is invalid"));
        }
        if k.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:")) {
            return Err(invalid_tag("Your TagKey cannot be prefixed with aws:"));
        }
        if v.chars().count() > 256 {
            return Err(invalid_tag("The TagValue you have provided is invalid"));
        }
        if !k.chars().chain(v.chars()).all(allowed_tag_char) {
            return Err(invalid_tag(
                "Tags may hold letters, digits, spaces and + - = . _ : / @ only",
            ));
        }
        if out.insert(k, v).is_some() {
            return Err(invalid_tag(
                "Cannot provide multiple Tags with the same key",
            ));
        }
    }
    Ok(out)
}

/// The characters S3 allows in tag keys and values.
fn allowed_tag_char(c: char) -> bool {
    c.is_alphanumeric() || c == ' ' || "+-=._:/@".contains(c)
}

/// Parses `x-amz-tagging: k1=v1&k2=v2` (URL-encoded).
pub fn parse_header(value: &str) -> S3Result<BTreeMap<String, String>> {
    let pairs = value
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect();
    check(pairs, MAX_OBJECT_TAGS)
}

async fn parse_body(ctx: &Ctx<'_>, body: Body, max: usize) -> S3Result<BTreeMap<String, String>> {
    let raw = small_body(ctx, body, 64 * 1024).await?;
    let t: Tagging = xml::parse(&raw)?;
    check(
        t.tag_set
            .tags
            .into_iter()
            .map(|t| (t.key, t.value))
            .collect(),
        max,
    )
}

fn tagging_xml(tags: &BTreeMap<String, String>) -> String {
    let mut x = Xml::new();
    x.root("Tagging");
    x.open("TagSet");
    for (k, v) in tags {
        x.open("Tag");
        x.elem("Key", k);
        x.elem("Value", v);
        x.close("Tag");
    }
    x.close("TagSet");
    x.close("Tagging");
    x.finish()
}

/// `PUT`, `GET`, `DELETE /bucket/key?tagging`.
pub async fn object(
    ctx: &Ctx<'_>,
    bucket: &str,
    key: &str,
    method: &Method,
    body: Body,
) -> S3Result<Response> {
    let version = version_param(ctx)?;
    let set_ = &ctx.state.store;
    let rec = match *method {
        Method::PUT => {
            let tags = parse_body(ctx, body, MAX_OBJECT_TAGS).await?;
            // Checked here, not before the handler: a policy may ask about the tags set.
            ctx.authz
                .check_object(
                    ctx,
                    "s3:PutObjectTagging",
                    Some(bucket),
                    Some(key),
                    version,
                    Some(&tags),
                )
                .await?;
            set_.update_version(bucket, key, version, move |v| v.tags = tags.clone())
                .await?
        }
        Method::DELETE => {
            set_.update_version(bucket, key, version, |v| v.tags.clear())
                .await?
        }
        _ => set_.open_object(bucket, key, version).await?.info,
    };
    let mut resp = match *method {
        Method::GET => xml_response(tagging_xml(&rec.tags)),
        Method::DELETE => StatusCode::NO_CONTENT.into_response(),
        _ => StatusCode::OK.into_response(),
    };
    version_header(resp.headers_mut(), &rec.version_id);
    Ok(resp)
}

/// `PUT`, `GET`, `DELETE /bucket?tagging`.
pub async fn bucket(
    ctx: &Ctx<'_>,
    bucket: &str,
    method: &Method,
    body: Body,
) -> S3Result<Response> {
    let set_ = &ctx.state.store;
    match *method {
        Method::PUT => {
            let tags = parse_body(ctx, body, MAX_BUCKET_TAGS).await?;
            set_.update_bucket(bucket, move |b| b.tags = tags.clone())
                .await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Method::DELETE => {
            set_.update_bucket(bucket, |b| b.tags.clear()).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => {
            let rec = set_.get_bucket(bucket).await?;
            if rec.tags.is_empty() {
                return Err(S3Error::new(
                    StatusCode::NOT_FOUND,
                    "NoSuchTagSet",
                    "The TagSet does not exist",
                ));
            }
            Ok(xml_response(tagging_xml(&rec.tags)))
        }
    }
}

/// `GET /bucket/key?attributes`, answering the attributes named in `x-amz-object-attributes`.
pub async fn attributes(ctx: &Ctx<'_>, bucket: &str, key: &str) -> S3Result<Response> {
    let wanted: Vec<String> = ctx
        .headers
        .get_all("x-amz-object-attributes")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty())
        .collect();
    if wanted.is_empty() {
        return Err(S3Error::invalid_argument(
            "The x-amz-object-attributes header specifying the attributes to be retrieved is either missing or empty",
        ));
    }
    let known = [
        "ETag",
        "Checksum",
        "ObjectParts",
        "StorageClass",
        "ObjectSize",
    ];
    if let Some(bad) = wanted.iter().find(|a| !known.contains(&a.as_str())) {
        return Err(S3Error::invalid_argument(format!(
            "Invalid attribute name specified: {bad}"
        )));
    }
    let info = ctx
        .state
        .store
        .open_object(bucket, key, version_param(ctx)?)
        .await?
        .info;
    let has = |a: &str| wanted.iter().any(|w| w == a);
    let mut x = Xml::new();
    x.root("GetObjectAttributesResponse");
    if has("ETag") {
        x.elem("ETag", &info.etag);
    }
    if has("Checksum") {
        if let Some((alg, v)) = &info.checksum {
            // A composite checksum goes without its part count here, unlike in GET and
            // HEAD: S3 gives the count as ObjectParts' TotalPartsCount instead.
            let (value, kind) = match v.rsplit_once('-') {
                Some((bare, _)) => (bare, "COMPOSITE"),
                None => (v.as_str(), "FULL_OBJECT"),
            };
            x.open("Checksum");
            x.elem(&format!("Checksum{}", alg.to_ascii_uppercase()), value);
            x.elem("ChecksumType", kind);
            x.close("Checksum");
        }
    }
    if has("ObjectParts") && !info.parts.is_empty() {
        let max = ctx
            .header("x-amz-max-parts")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(1000);
        let marker = ctx
            .header("x-amz-part-number-marker")
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0);
        let after: Vec<_> = info.parts.iter().filter(|p| p.number > marker).collect();
        let page = &after[..after.len().min(max)];
        x.open("ObjectParts");
        x.elem("TotalPartsCount", &info.parts.len().to_string());
        x.elem("PartNumberMarker", &marker.to_string());
        if let Some(last) = page.last() {
            x.elem("NextPartNumberMarker", &last.number.to_string());
        }
        x.elem("MaxParts", &max.to_string());
        x.elem(
            "IsTruncated",
            if after.len() > max { "true" } else { "false" },
        );
        for p in page {
            x.open("Part");
            x.elem("PartNumber", &p.number.to_string());
            x.elem("Size", &p.size.to_string());
            x.close("Part");
        }
        x.close("ObjectParts");
    }
    if has("StorageClass") {
        x.elem("StorageClass", "STANDARD");
    }
    if has("ObjectSize") {
        x.elem("ObjectSize", &info.size.to_string());
    }
    x.close("GetObjectAttributesResponse");
    let mut resp = xml_response(x.finish());
    version_header(resp.headers_mut(), &info.version_id);
    set(
        resp.headers_mut(),
        "last-modified",
        &xml::http_date(info.mod_time_ns),
    );
    Ok(resp)
}
