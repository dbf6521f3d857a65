//! Property-based fuzzing (proptest, a bounded number of cases per target so CI stays short)
//! of the parsers that take bytes from the network: the aws-chunked decoder, SigV4 headers,
//! XML bodies, IAM policies, BLAKE3 shard frames and the node RPC (the Range header is also
//! fuzzed beside its parser, in `s3/object.rs`). Each must answer or refuse, never panic,
//! and never produce more than it was given. A failing case prints its minimal input: add it
//! to the unit tests beside the parser it broke.
//!
//! The coverage-guided fuzzers in `fuzz/` (`scripts/fuzz`) run the same targets
//! (`tessera::fuzzing`); every input in `fuzz/seeds/` and `fuzz/regressions/` (the crashes
//! they found) is replayed here on every test run.

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

/// Every target, by the name of its folder under `fuzz/seeds` and `fuzz/regressions`.
type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 6] = [
    ("sigv4", tessera::fuzzing::sigv4),
    ("chunked", tessera::fuzzing::chunked),
    ("xml", |d| {
        tessera::fuzzing::xml(d);
    }),
    ("range", tessera::fuzzing::range),
    ("policy", tessera::fuzzing::policy),
    ("rpc", tessera::fuzzing::rpc),
];

#[test]
fn seeds_and_found_crashes_replay() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    for (name, target) in TARGETS {
        for folder in ["seeds", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(folder).join(name)) else {
                continue;
            };
            for e in entries {
                let path = e.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                let caught = std::panic::catch_unwind(|| target(&data));
                assert!(caught.is_ok(), "{} panics", path.display());
                replayed += 1;
            }
        }
    }
    assert!(replayed >= 6 * 2, "only {replayed} seed files were found");
}

#[test]
fn seeds_are_inputs_the_parsers_accept() {
    // The seeds are the fuzzers' starting points: valid inputs, so that mutations explore the
    // parsers' depths rather than their first check.
    let seed = |t: &str, n: &str| {
        std::fs::read(format!("{}/fuzz/seeds/{t}/{n}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    };
    // (The request types' fields are optional, so a well-formed document parses as several.)
    for name in [
        "delete",
        "complete",
        "tagging",
        "versioning",
        "create-bucket",
    ] {
        assert!(tessera::fuzzing::xml(&seed("xml", name)) >= 1, "{name}");
    }
    assert_eq!(tessera::fuzzing::xml(b"\xff\xfe<Delete>"), 0);
    let policy = String::from_utf8(seed("policy", "bucket")).unwrap();
    assert!(Policy::parse(&policy, true).is_ok());
    let policy = String::from_utf8(seed("policy", "user")).unwrap();
    assert!(Policy::parse(&policy, false).is_ok());
    let body = seed("chunked", "unsigned-trailer");
    assert_eq!(decode(&body[1..], &[]), Ok(5));
    let shard = seed("rpc", "shard");
    let mut d = tessera::drive::proto::FrameDecoder::default();
    d.push(&shard[1..]).unwrap();
    let mut n = 0;
    while let Some(f) = d.next_frame().unwrap() {
        n += 1;
        if f == tessera::drive::proto::Frame::Commit {
            break;
        }
    }
    assert_eq!(n, 3);
    assert!(serde_json::from_slice::<tessera::drive::proto::Call>(&seed("rpc", "call")).is_ok());
}

proptest! {
    #![proptest_config(config())]

    /// Every fuzz target on arbitrary bytes.
    #[test]
    fn targets_take_any_bytes(which in 0usize..6, data in proptest::collection::vec(any::<u8>(), 0..600)) {
        (TARGETS[which].1)(&data);
    }

    /// Node RPC shard uploads: a valid body yields its frames and the commit, however the
    /// network cuts it; a cut short or corrupted length never yields more than was sent.
    #[test]
    fn rpc_frames_decode_whole(blocks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..300), 0..6),
                               cut in 1usize..50, truncate in any::<usize>(), flip in any::<usize>()) {
        use tessera::drive::proto::{frame_header, Frame, FrameDecoder, COMMIT};
        let mut body = Vec::new();
        for b in &blocks {
            body.extend_from_slice(&frame_header(b.len()));
            body.extend_from_slice(b);
        }
        body.extend_from_slice(&COMMIT);
        let run = |raw: &[u8]| -> (Vec<Vec<u8>>, bool) {
            let mut d = FrameDecoder::default();
            let mut got = Vec::new();
            let mut committed = false;
            'outer: for piece in raw.chunks(cut) {
                if d.push(piece).is_err() { break; }
                loop {
                    match d.next_frame() {
                        Ok(Some(Frame::Data(x))) => got.push(x.to_vec()),
                        Ok(Some(Frame::Commit)) => committed = true,
                        Ok(None) => break,
                        Err(_) => break 'outer,
                    }
                }
            }
            (got, committed && d.finish().is_ok())
        };
        let (got, committed) = run(&body);
        prop_assert!(committed);
        prop_assert_eq!(&got, &blocks);
        let short = &body[..truncate % body.len()];
        let (got, committed) = run(short);
        prop_assert!(!committed, "a truncated body committed");
        prop_assert!(got.iter().map(Vec::len).sum::<usize>() <= short.len());
        let mut bad = body.clone();
        let i = flip % bad.len();
        bad[i] ^= 0x80;
        let (got, _) = run(&bad);
        prop_assert!(got.iter().map(Vec::len).sum::<usize>() <= bad.len());
    }

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
            context.insert("aws:SourceIp".to_string(), ip);
            context.insert("s3:prefix".to_string(), resource.clone());
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
