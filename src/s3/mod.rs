//! The S3 API: SigV4 authentication, routing to a typed endpoint, one handler per operation
//! family, XML bodies and S3 errors.

mod acl;
mod authz;
pub mod body;
mod bucket;
pub use crate::checksum;
pub mod chunked;
pub mod error;
#[doc(hidden)]
pub mod fuzz;
mod list;
mod multipart;
pub mod names;
mod object;
pub mod router;
pub mod sigv4;
mod tagging;
pub mod xml;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;

use crate::object::Store;
use authz::{Authz, Identity};
use error::{S3Error, S3Result};
use router::Endpoint;
use sigv4::{AuthError, Verified};

/// Shared state of the S3 listener.
pub struct S3State {
    /// The object layer.
    pub store: Arc<Store>,
    /// Region requests must be signed for.
    pub region: String,
    /// Access key to secret key.
    pub credentials: HashMap<String, String>,
    /// Base domain for virtual-host-style requests (`bucket.<domain>`), if any.
    pub base_domain: Option<String>,
    /// Users and their policies.
    pub iam: Arc<crate::iam::Iam>,
}

/// The axum router of the S3 listener: every request goes to [`handle`].
pub fn router(state: Arc<S3State>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(state)
}

/// Serves one S3 request: authenticate, route, run the handler, and turn any error into an
/// S3 error response. Every response carries `x-amz-request-id`.
pub async fn handle(State(state): State<Arc<S3State>>, req: Request) -> Response {
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let secure = req.extensions().get::<crate::limits::Secure>().is_some();
    let _load = crate::load::enter();
    let request_id = format!("{:016X}", rand::random::<u64>());
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = std::time::Instant::now();
    let bytes_in = body_length(req.headers());
    // A request that sent `Expect: 100-continue` with an empty body gets its final answer
    // without a `100 Continue` (nothing is read). That is valid HTTP, but the botocore that
    // aws-cli v1 bundles then misreads the next response on the same connection
    // (boto/botocore#3755) and stalls for its read timeout; closing the connection avoids it.
    let close_after = req
        .headers()
        .get(axum::http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
        && req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() == b"0");
    // A slot among `max_requests`, held while the request is handled.
    let slot = crate::limits::request_slot();
    let result = match &slot {
        Some(_) => dispatch(&state, req, (peer, secure)).await,
        None => Err((
            "SlowDown",
            S3Error::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "SlowDown",
                "Please reduce your request rate.",
            ),
        )),
    };
    drop(slot);
    let (op, mut resp) = match result {
        Ok((op, r)) => (op, r),
        Err((op, e)) => {
            if e.status.is_server_error() {
                tracing::error!(code = e.code, message = %e.message, "request failed");
            }
            let mut r = if method == Method::HEAD {
                e.status.into_response()
            } else {
                let body = e.to_xml(&request_id);
                (
                    e.status,
                    [(axum::http::header::CONTENT_TYPE, "application/xml")],
                    body,
                )
                    .into_response()
            };
            for (name, value) in &e.headers {
                if let Ok(v) = HeaderValue::from_str(value) {
                    r.headers_mut().insert(*name, v);
                }
            }
            if e.status == StatusCode::SERVICE_UNAVAILABLE {
                r.headers_mut()
                    .insert("retry-after", HeaderValue::from_static("1"));
            }
            (op, r)
        }
    };
    tracing::info!(
        request_id = %request_id,
        %method,
        %path,
        op,
        status = resp.status().as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "s3 request"
    );
    let bytes_out = if method == Method::HEAD {
        0
    } else {
        header_u64(resp.headers(), "content-length")
    };
    crate::metrics::get().s3_request(
        op,
        resp.status().as_u16(),
        started.elapsed(),
        (bytes_in, bytes_out),
    );
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-amz-request-id", v.clone());
        resp.headers_mut().insert("x-amz-id-2", v);
    }
    resp.headers_mut().insert(
        axum::http::header::SERVER,
        HeaderValue::from_static("Tessera"),
    );
    if close_after {
        resp.headers_mut().insert(
            axum::http::header::CONNECTION,
            HeaderValue::from_static("close"),
        );
    }
    resp
}

/// The length of a request's payload: the decoded length of an aws-chunked body, else its
/// `Content-Length`.
fn body_length(headers: &HeaderMap) -> u64 {
    match header_u64(headers, "x-amz-decoded-content-length") {
        0 => header_u64(headers, "content-length"),
        n => n,
    }
}

fn header_u64(headers: &HeaderMap, name: &str) -> u64 {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

type Dispatched = Result<(&'static str, Response), (&'static str, S3Error)>;

/// Serves one request from `peer` (over TLS when `.1`).
async fn dispatch(
    state: &S3State,
    req: Request,
    peer: (Option<std::net::IpAddr>, bool),
) -> Dispatched {
    let (parts, body) = req.into_parts();
    let query = router::parse_query(parts.uri.query());
    let now = time::OffsetDateTime::now_utc();
    // Users come from the directory; root keeps working when it cannot be read.
    let users = state.iam.principals().await.ok();
    let user = |ak: &str| users.as_ref()?.get(ak).filter(|p| p.enabled);
    let verified = sigv4::verify(
        &parts.method,
        &parts.uri,
        &parts.headers,
        &state.region,
        now,
        &|ak: &str| {
            state
                .credentials
                .get(ak)
                .cloned()
                .or_else(|| user(ak).map(|p| p.secret.clone()))
        },
    );
    let (auth, identity) = match verified {
        Ok(v) if state.credentials.contains_key(&v.access_key) => (v, Identity::Root),
        Ok(v) => match user(&v.access_key) {
            Some(p) => {
                let identity = Identity::User {
                    name: p.name.clone(),
                    policy: p.policy.clone(),
                };
                (v, identity)
            }
            None => return Err(("Auth", AuthError::InvalidAccessKeyId.into())),
        },
        Err(AuthError::MissingAuth) => (sigv4::Verified::anonymous(), Identity::Anonymous),
        Err(e) => return Err(("Auth", e.into())),
    };
    let vhost = vhost_bucket(&parts.headers, state.base_domain.as_deref());
    let endpoint = router::route(
        &parts.method,
        parts.uri.path(),
        &query,
        parts.headers.contains_key("x-amz-copy-source"),
        vhost,
    )
    .map_err(|e| ("Route", e))?;
    let op = endpoint.name();
    let bucket_name = endpoint.bucket().map(str::to_string);
    // The writes whose x-amz-tagging header gives the new object's tags.
    let sets_tags = match &endpoint {
        Endpoint::PutObject { .. } | Endpoint::CreateMultipartUpload { .. } => true,
        Endpoint::CopyObject { .. } => parts
            .headers
            .get("x-amz-tagging-directive")
            .is_some_and(|d| d.as_bytes().eq_ignore_ascii_case(b"REPLACE")),
        _ => false,
    };
    let authz = Authz::new(identity, peer.0, peer.1, &query, &parts.headers, sets_tags);
    let ctx = Ctx {
        state,
        headers: &parts.headers,
        query: &query,
        auth: &auth,
        authz: &authz,
    };
    if let Some((action, on_object)) = authz::action(&endpoint, &query) {
        let key = if on_object { endpoint.key() } else { None };
        authz
            .check(&ctx, action, endpoint.bucket(), key)
            .await
            .map_err(|e| (op, e))?;
    }
    let result = match endpoint {
        Endpoint::ListBuckets => bucket::list_buckets(&ctx).await,
        Endpoint::CreateBucket { bucket } => bucket::create(&ctx, &bucket, body).await,
        Endpoint::HeadBucket { bucket } => bucket::head(&ctx, &bucket).await,
        Endpoint::DeleteBucket { bucket } => bucket::delete(&ctx, &bucket).await,
        Endpoint::GetBucketLocation { bucket } => bucket::location(&ctx, &bucket).await,
        Endpoint::GetBucketVersioning { bucket } => bucket::versioning(&ctx, &bucket).await,
        Endpoint::ListObjects { bucket, v2 } => list::list_objects(&ctx, &bucket, v2).await,
        Endpoint::DeleteObjects { bucket } => object::delete_objects(&ctx, &bucket, body).await,
        Endpoint::PutObject { bucket, key } => object::put(&ctx, &bucket, &key, body).await,
        Endpoint::CopyObject { bucket, key } => object::copy(&ctx, &bucket, &key).await,
        Endpoint::GetObject { bucket, key } => object::get(&ctx, &bucket, &key, false).await,
        Endpoint::HeadObject { bucket, key } => object::get(&ctx, &bucket, &key, true).await,
        Endpoint::DeleteObject { bucket, key } => object::delete(&ctx, &bucket, &key).await,
        Endpoint::ListMultipartUploads { bucket } => multipart::list_uploads(&ctx, &bucket).await,
        Endpoint::CreateMultipartUpload { bucket, key } => {
            multipart::create(&ctx, &bucket, &key).await
        }
        Endpoint::UploadPart { bucket, key, copy } => {
            multipart::upload_part(&ctx, &bucket, &key, copy, body).await
        }
        Endpoint::CompleteMultipartUpload { bucket, key } => {
            multipart::complete(&ctx, &bucket, &key, body).await
        }
        Endpoint::AbortMultipartUpload { bucket, key } => {
            multipart::abort(&ctx, &bucket, &key).await
        }
        Endpoint::ListParts { bucket, key } => multipart::list_parts(&ctx, &bucket, &key).await,
        Endpoint::PutBucketVersioning { bucket } => {
            bucket::put_versioning(&ctx, &bucket, body).await
        }
        Endpoint::ListObjectVersions { bucket } => list::list_versions(&ctx, &bucket).await,
        Endpoint::BucketTagging { bucket, method } => {
            tagging::bucket(&ctx, &bucket, &method, body).await
        }
        Endpoint::ObjectTagging {
            bucket,
            key,
            method,
        } => tagging::object(&ctx, &bucket, &key, &method, body).await,
        Endpoint::Acl {
            bucket,
            key,
            method,
        } => acl::acl(&ctx, &bucket, &key, &method, body).await,
        Endpoint::GetObjectAttributes { bucket, key } => {
            tagging::attributes(&ctx, &bucket, &key).await
        }
        Endpoint::GetBucketPolicyStatus { bucket } => {
            authz::bucket_policy_status(&ctx, &bucket).await
        }
        Endpoint::BucketPolicy { bucket, method } => {
            authz::bucket_policy(&ctx, &bucket, &method, body).await
        }
        Endpoint::BucketSetting {
            bucket,
            setting,
            method,
        } => bucket::setting(&ctx, &bucket, setting, &method).await,
    };
    result.map(|r| (op, r)).map_err(|e| match bucket_name {
        // S3 names the missing bucket in an element of its own.
        Some(b) if e.code == "NoSuchBucket" => (op, e.with_element("BucketName", b)),
        _ => (op, e),
    })
}

/// What every handler needs from the request besides its body.
pub(crate) struct Ctx<'a> {
    state: &'a S3State,
    headers: &'a HeaderMap,
    query: &'a router::Query,
    auth: &'a Verified,
    authz: &'a Authz,
}

impl Ctx<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The bucket named by a `Host: bucket.<base_domain>` header.
fn vhost_bucket(headers: &HeaderMap, base: Option<&str>) -> Option<String> {
    let base = base?;
    let host = headers.get("host")?.to_str().ok()?;
    let host = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    let bucket = host.strip_suffix(base)?.strip_suffix('.')?;
    (!bucket.is_empty()).then(|| bucket.to_string())
}

/// Reads a small request body whole (XML documents), verified like any body, refusing more
/// than `limit` bytes.
async fn small_body(ctx: &Ctx<'_>, body: Body, limit: usize) -> S3Result<Bytes> {
    let (mut stream, _) = body::request_body(body, ctx.headers, ctx.auth)?;
    let mut out = bytes::BytesMut::new();
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|e| match e.downcast::<S3Error>() {
            Ok(s3) => *s3,
            Err(_) => S3Error::incomplete_body(),
        })?;
        if out.len() + piece.len() > limit {
            return Err(S3Error::bad(
                "MaxMessageLengthExceeded",
                "Your request was too big.",
            ));
        }
        out.extend_from_slice(&piece);
    }
    Ok(out.freeze())
}

/// A 200 response with an XML body.
fn xml_response(body: String) -> Response {
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/xml")],
        body,
    )
        .into_response()
}
