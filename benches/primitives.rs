//! The per-request primitives of the S3 layer: MD5 (the ETag), the `x-amz-checksum-*`
//! algorithms, SigV4 header verification, aws-chunked decoding and ListObjects XML output.
//! Reports throughput; it does not fail.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hmac::{Hmac, Mac};
use md5::{Digest as _, Md5};
use sha2::Sha256;
use tessera::checksum::ChecksumAlgorithm;
use tessera::s3::chunked::{ChunkSigner, ChunkedDecoder};
use tessera::s3::sigv4;
use tessera::s3::xml::{self, Xml};
use time::OffsetDateTime;

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;
const SIZES: [usize; 2] = [4 * KIB, MIB];
const ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const REGION: &str = "us-east-1";
/// 2013-05-24T00:00:00Z, the date of AWS's published SigV4 examples.
const T0_UNIX: u64 = 1_369_353_600;
const AMZ_DATE: &str = "20130524T000000Z";
const SCOPE: &str = "20130524/us-east-1/s3/aws4_request";
/// The aws-chunked chunk size the AWS SDKs use.
const CHUNK: usize = 64 * KIB;
/// The piece size the body arrives in (as hyper frames would deliver it).
const PIECE: usize = 16 * KIB;

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn label(len: usize) -> String {
    if len >= MIB {
        format!("{}MiB", len / MIB)
    } else {
        format!("{}KiB", len / KIB)
    }
}

fn digests(c: &mut Criterion) {
    let mut g = c.benchmark_group("digest");
    for len in SIZES {
        let d = data(len);
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_with_input(BenchmarkId::new("md5", label(len)), &d, |b, d| {
            b.iter(|| tessera::md5sum::Md5::digest(d))
        });
        // The md-5 crate's portable code, which `tessera::md5sum` replaced.
        g.bench_with_input(BenchmarkId::new("md5-crate", label(len)), &d, |b, d| {
            b.iter(|| Md5::digest(d))
        });
        for alg in ChecksumAlgorithm::ALL {
            let name = alg.as_str().to_ascii_lowercase();
            g.bench_with_input(BenchmarkId::new(name, label(len)), &d, |b, d| {
                b.iter(|| {
                    let mut h = alg.hasher();
                    h.update(d);
                    h.finish_raw()
                })
            });
        }
    }
    g.finish();
}

/// MD5 of several streams at once through the vector engine (`tessera::md5lanes`, where the
/// CPU has AVX2 or AVX-512), 8 MiB each in 1 MiB stripes as a PUT hands them over: aggregate
/// bytes per second (one stream is hashed by `tessera::md5sum`).
fn md5_lanes(c: &mut Criterion) {
    use tessera::md5lanes::Md5Lanes;
    if Md5Lanes::open().is_none() {
        eprintln!("md5 lanes: neither AVX2 nor AVX-512 on this CPU, skipped");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    let stripe = Bytes::from(data(MIB));
    let mut g = c.benchmark_group("md5-lanes");
    g.measurement_time(Duration::from_secs(3));
    for streams in [1usize, 2, 4, 8, 16] {
        g.throughput(Throughput::Bytes((streams * 8 * MIB) as u64));
        g.bench_function(BenchmarkId::new("streams", streams), |b| {
            b.iter(|| {
                rt.block_on(futures::future::join_all((0..streams).map(|_| {
                    let stripe = stripe.clone();
                    async move {
                        let lane = Md5Lanes::open().expect("engine");
                        for _ in 0..8 {
                            lane.update(stripe.clone()).await;
                        }
                        lane.finish().await
                    }
                })))
            })
        });
    }
    g.finish();
}

/// A GET as the AWS SDK signs it (UNSIGNED-PAYLOAD, a few headers), signed by `aws-sigv4`.
fn signed_request() -> (http::Method, http::Uri, http::HeaderMap) {
    let uri = "http://127.0.0.1:9000/bench-bucket/photos/2026/holiday.jpg?x-id=GetObject";
    let headers = [
        ("host", "127.0.0.1:9000"),
        ("range", "bytes=0-1048575"),
        ("user-agent", "aws-sdk-rust/1.0 os/linux lang/rust"),
        (
            "amz-sdk-invocation-id",
            "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        ),
        ("amz-sdk-request", "attempt=1; max=3"),
    ];
    let identity: Identity = Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "bench").into();
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("s3")
        .time(SystemTime::UNIX_EPOCH + Duration::from_secs(T0_UNIX))
        .settings(settings)
        .build()
        .expect("signing parameters")
        .into();
    let signable = SignableRequest::new(
        "GET",
        uri,
        headers.iter().copied(),
        SignableBody::UnsignedPayload,
    )
    .expect("signable request");
    let (instructions, _) = sign(signable, &params).expect("signing").into_parts();
    let mut req = http::Request::builder().method("GET").uri(uri);
    for (name, value) in headers {
        req = req.header(name, value);
    }
    let mut req = req.body(()).expect("request");
    instructions.apply_to_request_http1x(&mut req);
    let (parts, ()) = req.into_parts();
    (parts.method, parts.uri, parts.headers)
}

fn sigv4_verify(c: &mut Criterion) {
    let (method, uri, headers) = signed_request();
    let now = OffsetDateTime::from_unix_timestamp(T0_UNIX as i64).expect("time");
    let secret_for = |ak: &str| (ak == ACCESS_KEY).then(|| SECRET_KEY.to_owned());
    // Fails loudly here, not silently inside the measurement.
    sigv4::verify(&method, &uri, &headers, REGION, now, &secret_for).expect("signature verifies");
    let mut g = c.benchmark_group("sigv4");
    g.throughput(Throughput::Elements(1));
    g.bench_function("verify_header", |b| {
        b.iter(|| sigv4::verify(&method, &uri, &headers, REGION, now, &secret_for).is_ok())
    });
    g.bench_function("signing_key", |b| {
        b.iter(|| sigv4::signing_key(SECRET_KEY, "20130524", REGION, "s3"))
    });
    g.finish();
}

fn hmac_hex(key: &[u8], text: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(text.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

const SEED: &str = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";

/// `payload` framed as `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`, 64 KiB chunks, each signed.
fn signed_body(payload: &[u8], key: &[u8; 32]) -> Vec<u8> {
    let empty = hex::encode(Sha256::digest(b""));
    let mut previous = SEED.to_owned();
    let mut body = Vec::with_capacity(payload.len() + payload.len() / CHUNK * 100 + 200);
    for chunk in payload.chunks(CHUNK).chain([&b""[..]]) {
        let sts = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{AMZ_DATE}\n{SCOPE}\n{previous}\n{empty}\n{}",
            hex::encode(Sha256::digest(chunk))
        );
        previous = hmac_hex(key, &sts);
        body.extend_from_slice(
            format!("{:x};chunk-signature={previous}\r\n", chunk.len()).as_bytes(),
        );
        body.extend_from_slice(chunk);
        body.extend_from_slice(b"\r\n");
    }
    body
}

/// `payload` framed as `STREAMING-UNSIGNED-PAYLOAD-TRAILER`, 64 KiB chunks, a CRC32 trailer.
fn unsigned_trailer_body(payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(payload.len() + payload.len() / CHUNK * 10 + 100);
    for chunk in payload.chunks(CHUNK) {
        body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        body.extend_from_slice(chunk);
        body.extend_from_slice(b"\r\n");
    }
    let mut crc = ChecksumAlgorithm::Crc32.hasher();
    crc.update(payload);
    body.extend_from_slice(
        format!("0\r\nx-amz-checksum-crc32:{}\r\n\r\n", crc.finish()).as_bytes(),
    );
    body
}

/// Feeds `pieces` to a fresh decoder; returns the payload length.
fn decode(signer: Option<ChunkSigner>, trailer: bool, pieces: &[Bytes]) -> usize {
    let mut decoder = ChunkedDecoder::new(signer, trailer);
    let mut out = Vec::new();
    let mut len = 0;
    for piece in pieces {
        decoder.push(piece.clone(), &mut out).expect("valid body");
        len += out.drain(..).map(|b| b.len()).sum::<usize>();
    }
    decoder.finish().expect("complete body");
    len
}

fn chunked(c: &mut Criterion) {
    let payload = data(MIB);
    let key = sigv4::signing_key(SECRET_KEY, "20130524", REGION, "s3");
    let signer = ChunkSigner {
        signing_key: key,
        amz_date: AMZ_DATE.to_owned(),
        scope: SCOPE.to_owned(),
        seed_signature: SEED.to_owned(),
    };
    let pieces = |body: Vec<u8>| -> Vec<Bytes> {
        let body = Bytes::from(body);
        (0..body.len())
            .step_by(PIECE)
            .map(|i| body.slice(i..(i + PIECE).min(body.len())))
            .collect()
    };
    let signed = pieces(signed_body(&payload, &key));
    let unsigned = pieces(unsigned_trailer_body(&payload));
    assert_eq!(decode(Some(signer.clone()), false, &signed), MIB);
    assert_eq!(decode(None, true, &unsigned), MIB);

    let mut g = c.benchmark_group("aws_chunked_decode");
    g.throughput(Throughput::Bytes(MIB as u64));
    g.bench_with_input(
        BenchmarkId::new("signed", label(MIB)),
        &signed,
        |b, pieces| b.iter(|| decode(Some(signer.clone()), false, pieces)),
    );
    g.bench_with_input(
        BenchmarkId::new("unsigned_trailer", label(MIB)),
        &unsigned,
        |b, pieces| b.iter(|| decode(None, true, pieces)),
    );
    g.finish();
}

/// A ListObjectsV2 page as `s3/list.rs` writes it, `n` entries.
fn list_page(n: usize) -> String {
    let mut x = Xml::new();
    x.root("ListBucketResult");
    x.elem("Name", "bench-bucket");
    x.elem("Prefix", "");
    x.elem("KeyCount", &n.to_string());
    x.elem("NextContinuationToken", "cGhvdG9zLzIwMjYvMDAwOTk5LmpwZw");
    x.elem("MaxKeys", "1000");
    x.elem("IsTruncated", "true");
    for i in 0..n {
        x.open("Contents");
        x.elem("Key", &format!("photos/2026/{i:06}-holiday & friends.jpg"));
        x.elem(
            "LastModified",
            &xml::timestamp(1_767_225_600_000_000_000 + i as i128 * 1_000_000),
        );
        x.elem("ETag", "\"9b2cf535f27731c974343645a3985328\"");
        x.elem("Size", &(1_048_576 + i).to_string());
        x.elem("StorageClass", "STANDARD");
        x.close("Contents");
    }
    x.close("ListBucketResult");
    x.finish()
}

fn xml_listing(c: &mut Criterion) {
    const ENTRIES: usize = 1000;
    let mut g = c.benchmark_group("xml_list_objects");
    // Keys per second: the unit of the LIST target in issue 7.
    g.throughput(Throughput::Elements(ENTRIES as u64));
    g.bench_function(
        BenchmarkId::from_parameter(format!("{ENTRIES}_keys")),
        |b| b.iter(|| list_page(ENTRIES).len()),
    );
    g.finish();
}

criterion_group!(
    benches,
    digests,
    md5_lanes,
    sigv4_verify,
    chunked,
    xml_listing
);
criterion_main!(benches);
