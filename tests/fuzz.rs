//! Property-based fuzzing (proptest, a bounded number of cases per target so CI stays short)
//! of the parsers that take bytes from the network: the aws-chunked decoder, SigV4 headers,
//! XML bodies, IAM policies and BLAKE3 shard frames (the Range header is fuzzed beside its
//! parser, in `s3/object.rs`). Each must answer or refuse, never panic,
//! and never produce more than it was given. A failing case prints its minimal input: add it
//! to the unit tests beside the parser it broke.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;
use tessera::iam::policy::{evaluate, Policy, Request};
use tessera::s3::chunked::ChunkedDecoder;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 1500,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A well-formed unsigned aws-chunked body of `data`, in chunks of `size`, with a trailer.
fn chunked(data: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in data.chunks(size.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n");
    out
}

/// Feeds `input` to a decoder in pieces cut at `cuts`; the bytes it decoded.
fn decode(input: &[u8], cuts: &[usize]) -> Result<usize, ()> {
    let mut d = ChunkedDecoder::new(None, true);
    let mut out = Vec::new();
    let mut at = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    points.sort_unstable();
    points.push(input.len());
    for p in points {
        if p > at {
            d.push(Bytes::copy_from_slice(&input[at..p]), &mut out)
                .map_err(|_| ())?;
            at = p;
        }
    }
    d.finish().map_err(|_| ())?;
    Ok(out.iter().map(|b| b.len()).sum())
}

const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":["s3:Get*","s3:ListBucket"],"Resource":["arn:aws:s3:::b","arn:aws:s3:::b/p/*"],"Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"},"StringLike":{"s3:prefix":"p/*"}}},{"Effect":"Deny","Principal":{"AWS":"*"},"NotAction":"s3:GetObject","Resource":"*"}]}"#;

proptest! {
    #![proptest_config(config())]

    /// Valid bodies decode to exactly their data, however the network cuts them.
    #[test]
    fn chunked_valid_bodies_decode_whole(data in proptest::collection::vec(any::<u8>(), 0..3000),
                                         size in 1usize..700,
                                         cuts in proptest::collection::vec(any::<usize>(), 0..8)) {
        prop_assert_eq!(decode(&chunked(&data, size), &cuts), Ok(data.len()));
    }

    /// Mutated bodies are refused or decode to no more bytes than came in.
    #[test]
    fn chunked_mutations_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600),
                                     flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
                                     cut in 0usize..64,
                                     cuts in proptest::collection::vec(any::<usize>(), 0..4)) {
        let mut body = chunked(&data, 97);
        for (at, b) in flips {
            let i = at % body.len();
            body[i] = b;
        }
        let keep = body.len().saturating_sub(cut);
        body.truncate(keep);
        if let Ok(n) = decode(&body, &cuts) {
            prop_assert!(n <= body.len());
        }
    }

    /// Arbitrary bytes as a chunked body: refused or decoded, never a panic.
    #[test]
    fn chunked_garbage_never_panics(body in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = decode(&body, &[]);
    }

    /// Policies: arbitrary text and mutated valid documents parse or are refused; what
    /// parses evaluates without panicking.
    #[test]
    fn policies_parse_or_refuse(flips in proptest::collection::vec((any::<usize>(), any::<char>()), 0..5),
                                text in ".{0,200}",
                                resource in "[a-z/*?]{0,30}",
                                ip in "[0-9.:a-f]{0,20}") {
        let _ = Policy::parse(&text, false);
        let mut chars: Vec<char> = POLICY.chars().collect();
        for (at, c) in flips {
            let i = at % chars.len();
            chars[i] = c;
        }
        let doc: String = chars.into_iter().collect();
        if let Ok(p) = Policy::parse(&doc, true) {
            let mut context = BTreeMap::new();
            context.insert("aws:SourceIp", ip);
            context.insert("s3:prefix", resource.clone());
            let arn = format!("arn:aws:s3:::{resource}");
            let _ = evaluate(&[&p], &Request { user: Some("u"), action: "s3:GetObject", resource: &arn, context: &context });
        }
    }

    /// Shard frames: arbitrary bytes never decode by accident, a flipped bit is caught.
    #[test]
    fn frames_verify(data in proptest::collection::vec(any::<u8>(), 0..2000),
                     garbage in proptest::collection::vec(any::<u8>(), 0..200),
                     flip in any::<usize>(), bit in 0u8..8) {
        let raw = Bytes::from(garbage);
        if let Some(d) = tessera::erasure::frame::decode(&raw) {
            prop_assert!(d.len() < raw.len(), "a frame is longer than its block");
        }
        let framed = tessera::erasure::frame::encode(&data);
        let back = tessera::erasure::frame::decode(&framed);
        prop_assert_eq!(back.as_deref(), Some(&data[..]));
        let mut bad = framed.to_vec();
        let i = flip % bad.len();
        bad[i] ^= 1 << bit;
        prop_assert!(tessera::erasure::frame::decode(&Bytes::from(bad)).is_none());
    }

    /// SigV4: arbitrary Authorization headers and query strings are refused, never a panic.
    #[test]
    fn sigv4_garbage_is_refused(auth in ".{0,300}", query in "[A-Za-z0-9=&%-]{0,200}",
                                date in "[0-9TZ]{0,20}", sha in "[0-9a-fA-Z-]{0,70}") {
        let uri: http::Uri = format!("/b/k?{query}").parse().unwrap_or_else(|_| "/b/k".parse().unwrap());
        let mut h = http::HeaderMap::new();
        h.insert("host", "127.0.0.1:9000".parse().unwrap());
        if let Ok(v) = http::HeaderValue::from_str(&auth) {
            h.insert("authorization", v);
        }
        if let Ok(v) = http::HeaderValue::from_str(&date) {
            h.insert("x-amz-date", v);
        }
        if let Ok(v) = http::HeaderValue::from_str(&sha) {
            h.insert("x-amz-content-sha256", v);
        }
        let secret = |_: &str| Some("secret".to_string());
        let r = tessera::s3::sigv4::verify(&http::Method::GET, &uri, &h, "us-east-1",
                                            time::OffsetDateTime::now_utc(), &secret);
        prop_assert!(r.is_err());
    }

    /// XML bodies: arbitrary and mutated documents parse or are refused.
    #[test]
    fn xml_parse_or_refuse(text in ".{0,300}",
                           flips in proptest::collection::vec((any::<usize>(), any::<char>()), 0..4)) {
        #[derive(serde::Deserialize, Debug)]
        #[serde(rename_all = "PascalCase")]
        #[allow(dead_code)]
        struct Obj { key: String, version_id: Option<String> }
        #[derive(serde::Deserialize, Debug)]
        #[serde(rename_all = "PascalCase")]
        #[allow(dead_code)]
        struct Delete { #[serde(rename = "Object", default)] objects: Vec<Obj>, quiet: Option<bool> }
        let _ = tessera::s3::xml::parse::<Delete>(text.as_bytes());
        let mut chars: Vec<char> = "<Delete><Quiet>true</Quiet><Object><Key>a&amp;b</Key><VersionId>v</VersionId></Object></Delete>".chars().collect();
        for (at, c) in flips {
            let i = at % chars.len();
            chars[i] = c;
        }
        let doc: String = chars.into_iter().collect();
        let _ = tessera::s3::xml::parse::<Delete>(doc.as_bytes());
    }
}
