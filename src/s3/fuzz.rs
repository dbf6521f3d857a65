//! Entry points for the fuzzers (`fuzz/`, `tests/fuzz.rs`) into the S3 parsers that take
//! bytes from the network. Each takes arbitrary bytes, must never panic, and checks what it
//! can of the answer (a decoder never yields more than it was given, a range lies within the
//! object).

use bytes::Bytes;

use super::chunked::{ChunkSigner, ChunkedDecoder};

/// The XML request bodies: DeleteObjects, CompleteMultipartUpload, CreateBucket,
/// PutBucketVersioning, Put(Object|Bucket)Tagging. Returns how many parsed.
pub fn xml(data: &[u8]) -> usize {
    use super::xml::parse;
    [
        parse::<super::object::DeleteRequest>(data).is_ok(),
        parse::<super::multipart::CompleteRequest>(data).is_ok(),
        parse::<super::bucket::CreateBucketConfiguration>(data).is_ok(),
        parse::<super::bucket::VersioningConfiguration>(data).is_ok(),
        parse::<super::tagging::Tagging>(data).is_ok(),
    ]
    .into_iter()
    .filter(|ok| *ok)
    .count()
}

/// The `Range` header: the first 8 bytes are the object size, the rest the header.
pub fn range(data: &[u8]) {
    let (size, header) = split_u64(data);
    let size = size % (1 << 50);
    let header = String::from_utf8_lossy(header);
    if let Ok(Some((start, end))) = super::object::parse_range(&header, size) {
        assert!(
            start < end && end <= size,
            "range {start}..{end} of {size} bytes"
        );
    }
}

/// The aws-chunked decoder, unsigned or signed, with or without trailers: the first byte
/// picks the mode and how the body is cut into pieces, the rest is the body.
pub fn chunked(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let signer = (mode & 1 == 1).then(|| ChunkSigner {
        signing_key: [7; 32],
        amz_date: "20260101T000000Z".into(),
        scope: "20260101/us-east-1/s3/aws4_request".into(),
        seed_signature: "0".repeat(64),
    });
    let mut d = ChunkedDecoder::new(signer, mode & 2 == 2);
    let step = 1 + (mode >> 2) as usize * 7;
    let mut out = Vec::new();
    let mut ok = true;
    for piece in body.chunks(step) {
        if d.push(Bytes::copy_from_slice(piece), &mut out).is_err() {
            ok = false;
            break;
        }
    }
    if ok {
        let _ = d.finish();
    }
    let decoded: usize = out.iter().map(|b| b.len()).sum();
    assert!(
        decoded <= body.len(),
        "decoded {decoded} bytes of {}",
        body.len()
    );
}

/// SigV4 verification of a request made of the input's lines: method, URI (with a query
/// string, for presigned URLs), then `name: value` headers. A secret is known for every key,
/// so parsing goes all the way to the signature comparison, which random input never passes.
pub fn sigv4(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let method = lines
        .next()
        .and_then(|m| http::Method::from_bytes(m.as_bytes()).ok())
        .unwrap_or(http::Method::GET);
    let uri: http::Uri = lines
        .next()
        .and_then(|u| u.parse().ok())
        .unwrap_or_else(|| http::Uri::from_static("/b/k"));
    let mut headers = http::HeaderMap::new();
    headers.insert("host", http::HeaderValue::from_static("127.0.0.1:9000"));
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.trim().as_bytes()),
            http::HeaderValue::from_str(value.trim()),
        ) {
            headers.append(n, v);
        }
    }
    let secret = |_: &str| Some("fuzz-secret".to_string());
    let now = time::macros::datetime!(2026-01-01 00:00:00 UTC);
    let r = super::sigv4::verify(&method, &uri, &headers, "us-east-1", now, &secret);
    if let Ok(v) = r {
        // Only an anonymous (unsigned) request verifies without a signature.
        assert!(
            v.access_key.is_empty(),
            "a request verified as {}",
            v.access_key
        );
    }
}

fn split_u64(data: &[u8]) -> (u64, &[u8]) {
    if data.len() < 8 {
        return (0, data);
    }
    let (head, rest) = data.split_at(8);
    (
        u64::from_le_bytes(head.try_into().unwrap_or_default()),
        rest,
    )
}
