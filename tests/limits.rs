//! Slow and abusive clients against a running `tessera server` with short limits: idle
//! connections are closed, a body trickled at a byte a second is refused, requests over the
//! cap get `SlowDown`, an oversized head gets 431, a 1 GiB XML body is cut off early; others
//! are served all along, and the server's memory stays bounded.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use common::{code, TestServer};

const LIMITS: [(&str, &str); 4] = [
    ("TESSERA_HEADER_TIMEOUT", "2s"),
    ("TESSERA_BODY_TIMEOUT", "2s"),
    ("TESSERA_MAX_REQUESTS", "4"),
    ("TESSERA_MAX_CONNECTIONS", "400"),
];

fn host(url: &str) -> String {
    url.trim_start_matches("http://").to_string()
}

/// Sends a request head (and `body_start`) on a new connection.
fn open(url: &str, head: &str, body_start: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(host(url)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body_start).unwrap();
    s
}

/// The whole answer on `s` (until the server closes it or 20 s pass).
fn answer(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A presigned PUT of `bucket/key`, as a raw request head with `Content-Length: len`.
async fn presigned_put_head(c: &aws_sdk_s3::Client, url: &str, key: &str, len: u64) -> String {
    let p = c
        .put_object()
        .bucket("lim")
        .key(key)
        .presigned(PresigningConfig::expires_in(Duration::from_secs(600)).unwrap())
        .await
        .unwrap();
    let path = p.uri().trim_start_matches(url);
    format!(
        "PUT {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {len}\r\n\r\n",
        host(url)
    )
}

/// A client with no pooled connection.
fn fresh(s: &TestServer) -> aws_sdk_s3::Client {
    common::client_with(&s.s3_url, common::ACCESS_KEY, common::SECRET_KEY)
}

/// A PUT and a GET of `key` on a fresh connection. (A pooled connection idle longer than the
/// 2 s header timeout is closed by the server; reusing it as it closes fails without a retry,
/// which is the client's business, not what these checks are about.)
async fn works(s: &TestServer, key: &str) {
    let c = fresh(s);
    c.put_object()
        .bucket("lim")
        .key(key)
        .body(ByteStream::from_static(b"fine"))
        .send()
        .await
        .unwrap();
    c.get_object().bucket("lim").key(key).send().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_abusive_clients_get_nothing_and_block_no_one() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_env(&dir.path().join("data"), &[], &LIMITS);
    let c = s.client().await;
    c.create_bucket().bucket("lim").send().await.unwrap();
    let rss_before = s.rss();

    // 300 connections that never send a byte: others are served meanwhile, and the server
    // closes every one of them after the header timeout.
    let idle: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(host(&s.s3_url)).unwrap())
        .collect();
    works(&s, "during-idle").await;
    let started = Instant::now();
    for mut conn in idle {
        conn.set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let mut buf = [0u8; 64];
        let n = conn.read(&mut buf);
        assert!(
            matches!(n, Ok(0) | Err(_))
                && !matches!(&n, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "an idle connection was not closed: {n:?}"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(15));

    // A body trickled at a byte a second: refused with RequestTimeout, nothing stored.
    let head = presigned_put_head(&c, &s.s3_url, "trickled", 100).await;
    let mut slow = open(&s.s3_url, &head, b"x");
    let trickle = std::thread::spawn(move || {
        for _ in 0..10 {
            std::thread::sleep(Duration::from_secs(1));
            if slow.write_all(b"x").is_err() {
                break;
            }
        }
        answer(&mut slow)
    });
    works(&s, "during-trickle").await;
    let got = tokio::task::spawn_blocking(move || trickle.join().unwrap())
        .await
        .unwrap();
    assert!(got.starts_with("HTTP/1.1 400"), "{got}");
    assert!(got.contains("<Code>RequestTimeout</Code>"), "{got}");
    let r = fresh(&s)
        .head_object()
        .bucket("lim")
        .key("trickled")
        .send()
        .await;
    assert!(r.is_err(), "a refused body stored nothing");

    // Four slow uploads hold the four request slots: the next request gets SlowDown; when
    // they are refused, requests are served again.
    let mut holders = Vec::new();
    for i in 0..4 {
        let head = presigned_put_head(&c, &s.s3_url, &format!("hold-{i}"), 1000).await;
        holders.push(open(&s.s3_url, &head, b"y"));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = fresh(&s).head_bucket().bucket("lim").send().await;
    let err = r.expect_err("a fifth request while four are held");
    assert_eq!(
        err.raw_response().map(|r| r.status().as_u16()),
        Some(503),
        "{err:?}"
    );
    let r = fresh(&s)
        .get_object()
        .bucket("lim")
        .key("during-idle")
        .send()
        .await;
    assert_eq!(code(&r.unwrap_err()), "SlowDown");
    for mut h in holders {
        let got = tokio::task::spawn_blocking(move || answer(&mut h))
            .await
            .unwrap();
        assert!(got.contains("RequestTimeout"), "{got}");
    }
    works(&s, "after-slots").await;

    // A head larger than the limit: 431, the connection closed.
    let big = format!(
        "GET /lim/x HTTP/1.1\r\nHost: {}\r\nX-Junk: {}\r\n\r\n",
        host(&s.s3_url),
        "j".repeat(200 << 10)
    );
    let mut conn = TcpStream::connect(host(&s.s3_url)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = conn.write_all(big.as_bytes());
    let got = answer(&mut conn);
    assert!(got.starts_with("HTTP/1.1 431"), "{got:.200}");

    // A CreateBucketConfiguration that claims 1 GiB: cut off just past its 64 KiB limit.
    let signed = tessera::s3::sigv4::sign_request(
        &http::Method::PUT,
        &host(&s.s3_url),
        "/bigxml",
        b"",
        (common::ACCESS_KEY, common::SECRET_KEY),
        "us-east-1",
        time::OffsetDateTime::now_utc(),
    );
    let mut head = format!(
        "PUT /bigxml HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
        host(&s.s3_url),
        1u64 << 30
    );
    for (k, v) in signed {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut conn = open(&s.s3_url, &head, b"<CreateBucketConfiguration>");
    conn.set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let chunk = vec![b' '; 1 << 20];
    let mut sent = 0usize;
    while sent < 64 << 20 && conn.write_all(&chunk).is_ok() {
        sent += chunk.len();
    }
    let got = answer(&mut conn);
    assert!(sent < 64 << 20, "the server kept reading: {sent} bytes");
    assert!(got.contains("MaxMessageLengthExceeded"), "{got:.300}");
    works(&s, "after-xml").await;

    let rss_after = s.rss();
    assert!(
        rss_after < rss_before + (64 << 20),
        "memory grew from {rss_before} to {rss_after} bytes"
    );
}
