//! Request bodies: the raw body is decoded (aws-chunked, with chunk signatures checked) and
//! checked against what the client declared (payload SHA-256, `x-amz-checksum-*` headers or
//! trailers, decoded length). A body that fails any check ends in an error, so nothing is
//! committed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::checksum::{ChecksumAlgorithm, ChecksumHasher};
use super::chunked::{ChunkSigner, ChunkedDecoder};
use super::error::{S3Error, S3Result};
use super::sigv4::{PayloadMode, Verified};
use crate::object::{BodyStream, BoxError};

/// What the body must match, checked as it ends.
struct Expect {
    sha256: Option<([u8; 32], Sha256)>,
    checksum: Option<(ChecksumAlgorithm, Option<String>, ChecksumHasher)>,
    decoded_len: Option<u64>,
    trailer: bool,
}

/// The checksum computed over a body, once it has been read whole and verified.
pub type ChecksumSlot = Arc<Mutex<Option<(String, String)>>>;

/// Builds the decoded, verified body stream of a request, and the slot where the verified
/// checksum (if the client sent one) is left when the stream ends.
pub fn request_body(
    body: axum::body::Body,
    headers: &HeaderMap,
    auth: &Verified,
) -> S3Result<(BodyStream, ChecksumSlot)> {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let (signer, chunked, trailer) = match &auth.payload {
        PayloadMode::StreamingSigned => (Some(signer(auth)), true, false),
        PayloadMode::StreamingSignedTrailer => (Some(signer(auth)), true, true),
        PayloadMode::StreamingUnsignedTrailer => (None, true, true),
        PayloadMode::Unsigned | PayloadMode::Sha256(_) => (None, false, false),
    };
    let sha256 = match &auth.payload {
        PayloadMode::Sha256(want) => Some((*want, Sha256::new())),
        _ => None,
    };
    let mut checksum = None;
    for alg in ChecksumAlgorithm::ALL {
        if let Some(v) = header(alg.header_name()) {
            if checksum.is_some() {
                return Err(S3Error::invalid_request(
                    "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.",
                ));
            }
            if !alg.valid_value(v) {
                return Err(S3Error::invalid_request(format!(
                    "Value for {} header is invalid.",
                    alg.header_name()
                )));
            }
            checksum = Some((alg, Some(v.trim().to_string()), alg.hasher()));
        }
    }
    if let Some(t) = header("x-amz-trailer") {
        let alg = ChecksumAlgorithm::from_header(t.trim())
            .ok_or_else(|| S3Error::invalid_argument(format!("Unsupported trailer {t}")))?;
        if !trailer && !chunked {
            return Err(S3Error::invalid_request(
                "x-amz-trailer needs an aws-chunked body",
            ));
        }
        checksum = Some((alg, None, alg.hasher()));
    } else if checksum.is_none() {
        if let Some(a) = header("x-amz-sdk-checksum-algorithm") {
            if ChecksumAlgorithm::from_name(a).is_none() {
                return Err(S3Error::invalid_argument(format!(
                    "Unsupported checksum algorithm {a}"
                )));
            }
        }
    }
    let decoded_len = if chunked {
        match header("x-amz-decoded-content-length") {
            Some(v) => Some(
                v.parse::<u64>()
                    .map_err(|_| S3Error::invalid_argument("Bad x-amz-decoded-content-length"))?,
            ),
            None => None,
        }
    } else {
        None
    };
    let decoder = chunked.then(|| ChunkedDecoder::new(signer, trailer));
    let slot: ChecksumSlot = Arc::new(Mutex::new(None));
    let state = BodyState {
        inner: body.into_data_stream().boxed(),
        decoder,
        ready: VecDeque::new(),
        expect: Expect {
            sha256,
            checksum,
            decoded_len,
            trailer,
        },
        seen: 0,
        slot: slot.clone(),
        deadline: tokio::time::Instant::now() + crate::limits::get().body_timeout,
        window: 0,
    };
    let stream = futures::stream::unfold(Some(state), |state| async move {
        let mut st = state?;
        match st.next().await {
            Ok(Some(b)) => Some((Ok(b), Some(st))),
            Ok(None) => None,
            Err(e) => Some((Err(Box::new(e) as BoxError), None)),
        }
    });
    Ok((stream.boxed(), slot))
}

fn signer(auth: &Verified) -> ChunkSigner {
    ChunkSigner {
        signing_key: auth.signing_key,
        amz_date: auth.amz_date.clone(),
        scope: auth.scope.clone(),
        seed_signature: auth.seed_signature.clone(),
    }
}

struct BodyState {
    inner: futures::stream::BoxStream<'static, Result<Bytes, axum::Error>>,
    decoder: Option<ChunkedDecoder>,
    ready: VecDeque<Bytes>,
    expect: Expect,
    seen: u64,
    slot: ChecksumSlot,
    /// When the current 64 KiB of body must have arrived by (see `crate::limits`).
    deadline: tokio::time::Instant,
    /// Bytes received towards the current 64 KiB.
    window: usize,
}

impl BodyState {
    async fn next(&mut self) -> S3Result<Option<Bytes>> {
        loop {
            if let Some(b) = self.ready.pop_front() {
                self.seen += b.len() as u64;
                // More than the declared decoded length is refused as it arrives, not after
                // the whole body was written.
                if self.expect.decoded_len.is_some_and(|want| self.seen > want) {
                    return Err(S3Error::incomplete_body());
                }
                if let Some((_, h)) = &mut self.expect.sha256 {
                    h.update(&b);
                }
                if let Some((_, _, h)) = &mut self.expect.checksum {
                    h.update(&b);
                }
                return Ok(Some(b));
            }
            let next = tokio::time::timeout_at(self.deadline, self.inner.next()).await;
            let Ok(next) = next else {
                tracing::warn!(received = self.seen, "request body too slow: refused");
                return Err(S3Error::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "RequestTimeout",
                    "Your socket connection to the server was not read from or written to within the timeout period. Idle connections will be closed.",
                ));
            };
            if let Some(Ok(raw)) = &next {
                self.window += raw.len();
                if self.window >= crate::limits::BODY_WINDOW_BYTES {
                    self.window = 0;
                    self.deadline = tokio::time::Instant::now() + crate::limits::get().body_timeout;
                }
            }
            match next {
                Some(Ok(raw)) => match &mut self.decoder {
                    Some(d) => {
                        let mut out = Vec::new();
                        d.push(raw, &mut out)?;
                        self.ready.extend(out);
                    }
                    None => self.ready.push_back(raw),
                },
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "body read failed");
                    return Err(S3Error::incomplete_body());
                }
                None => {
                    self.finish()?;
                    return Ok(None);
                }
            }
        }
    }

    fn finish(&mut self) -> S3Result<()> {
        let trailers = match &mut self.decoder {
            Some(d) => d.finish()?,
            None => Vec::new(),
        };
        if let Some(want) = self.expect.decoded_len {
            if want != self.seen {
                return Err(S3Error::incomplete_body());
            }
        }
        if let Some((want, h)) = self.expect.sha256.take() {
            let got: [u8; 32] = h.finalize().into();
            if got != want {
                return Err(S3Error::bad(
                    "XAmzContentSHA256Mismatch",
                    "The provided 'x-amz-content-sha256' header does not match what was computed.",
                ));
            }
        }
        if let Some((alg, declared, h)) = self.expect.checksum.take() {
            let got = h.finish();
            let want = match declared {
                Some(w) => Some(w),
                None => trailers
                    .iter()
                    .find(|(n, _)| n == alg.header_name())
                    .map(|(_, v)| v.clone()),
            };
            match want {
                Some(w) if w == got => {
                    if let Ok(mut slot) = self.slot.lock() {
                        *slot = Some((alg.as_str().to_string(), got));
                    }
                }
                Some(_) => {
                    return Err(S3Error::bad(
                        "BadDigest",
                        format!("The {} you specified did not match the calculated checksum.", alg.header_name()),
                    ))
                }
                None if self.expect.trailer => {
                    return Err(S3Error::bad(
                        "MalformedTrailerError",
                        "The request contained trailing data that was not well-formed or did not conform to our published schema.",
                    ))
                }
                None => {}
            }
        }
        Ok(())
    }
}
