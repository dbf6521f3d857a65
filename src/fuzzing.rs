//! The fuzz targets: one function per parser that takes bytes from the network or from a
//! peer. `fuzz/` runs them under libFuzzer (`cargo fuzz`), `tests/fuzz.rs` under proptest.
//! Each takes arbitrary bytes and must not panic; the asserts inside check what each answer
//! must satisfy.

use std::collections::BTreeMap;

pub use crate::s3::fuzz::{chunked, range, sigv4, xml};

/// IAM and bucket policies: parsed as both, and a parsed policy evaluated against a request
/// whose fields come from the same input.
pub fn policy(data: &[u8]) {
    use crate::iam::policy::{evaluate, Policy, Request};
    let text = String::from_utf8_lossy(data);
    for bucket_policy in [false, true] {
        let Ok(p) = Policy::parse(&text, bucket_policy) else {
            continue;
        };
        let mut context = BTreeMap::new();
        context.insert("aws:SourceIp".to_string(), "10.1.2.3".to_string());
        context.insert("s3:prefix".to_string(), "photos/2026/".to_string());
        context.insert(
            "s3:ExistingObjectTag/class".to_string(),
            "public".to_string(),
        );
        for (action, resource) in [
            ("s3:GetObject", "arn:aws:s3:::b/photos/2026/x.jpg"),
            ("s3:ListBucket", "arn:aws:s3:::b"),
            ("s3:PutObject", "arn:aws:s3:::other/k"),
        ] {
            for user in [None, Some("alice")] {
                let _ = evaluate(
                    &[&p],
                    &Request {
                        user,
                        action,
                        resource,
                        context: &context,
                    },
                );
            }
        }
    }
}

/// The node RPC: a shard upload body cut into pieces (the first byte sets their size) through
/// the frame decoder, and the input as a metadata call and as a stored version record.
pub fn rpc(data: &[u8]) {
    use crate::drive::proto::{Call, Frame, FrameDecoder};
    let Some((&step, body)) = data.split_first() else {
        return;
    };
    let mut frames = FrameDecoder::default();
    let mut out = 0usize;
    let (mut committed, mut refused) = (false, false);
    'body: for piece in body.chunks(1 + step as usize) {
        if frames.push(piece).is_err() {
            refused = true;
            break;
        }
        loop {
            match frames.next_frame() {
                Ok(Some(Frame::Data(d))) => out += d.len(),
                Ok(Some(Frame::Commit)) => committed = true,
                Ok(None) => break,
                Err(_) => {
                    refused = true;
                    break 'body;
                }
            }
        }
    }
    assert!(out <= body.len(), "decoded {out} bytes of {}", body.len());
    // A body is complete exactly when it reached its commit marker and nothing was refused.
    assert_eq!(committed && !refused, frames.finish().is_ok());
    let _ = serde_json::from_slice::<Call>(data);
    let _ = crate::drive::record::decode::<crate::drive::record::VersionRecord>(data);
    let _ = crate::drive::record::decode::<crate::drive::record::ListEntry>(data);
}
