//! The S3 surface of `tessera server`, driven by `aws-sdk-s3` with its default checksums.

mod common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use common::{code, data, get_bytes, status, TestServer};

fn server() -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(&dir.path().join("data"), &[]);
    (dir, s)
}

#[tokio::test]
async fn buckets_create_list_head_delete() {
    let (_d, s) = server();
    let c = s.client().await;
    c.create_bucket().bucket("photos").send().await.unwrap();
    c.create_bucket().bucket("backups").send().await.unwrap();
    let again = c.create_bucket().bucket("photos").send().await.unwrap_err();
    assert_eq!(code(&again), "BucketAlreadyOwnedByYou");
    assert_eq!(common::bucket_names(&c).await, ["backups", "photos"]);
    // ListBuckets with a prefix, and in pages of one bucket.
    c.create_bucket().bucket("photos-old").send().await.unwrap();
    let only = c.list_buckets().prefix("photos").send().await.unwrap();
    let names: Vec<&str> = only.buckets().iter().filter_map(|b| b.name()).collect();
    assert_eq!(names, ["photos", "photos-old"]);
    let mut paged = Vec::new();
    let mut token = None;
    loop {
        let page = c
            .list_buckets()
            .max_buckets(1)
            .set_continuation_token(token)
            .send()
            .await
            .unwrap();
        assert!(page.buckets().len() <= 1);
        paged.extend(
            page.buckets()
                .iter()
                .filter_map(|b| b.name().map(str::to_string)),
        );
        token = page.continuation_token().map(str::to_string);
        if token.is_none() {
            break;
        }
        assert!(paged.len() < 10, "pages must end");
    }
    assert_eq!(paged, ["backups", "photos", "photos-old"]);
    let e = c.list_buckets().max_buckets(0).send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidArgument");
    c.delete_bucket().bucket("photos-old").send().await.unwrap();
    c.head_bucket().bucket("photos").send().await.unwrap();
    let missing = c.head_bucket().bucket("nothere").send().await.unwrap_err();
    assert_eq!(status(&missing), 404);
    let loc = c
        .get_bucket_location()
        .bucket("photos")
        .send()
        .await
        .unwrap();
    assert!(loc
        .location_constraint()
        .is_none_or(|l| l.as_str().is_empty()));

    let bad = c.create_bucket().bucket("ab").send().await.unwrap_err();
    assert_eq!(code(&bad), "InvalidBucketName");
    let bad = c
        .create_bucket()
        .bucket("Upper-Case")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&bad), "InvalidBucketName");

    c.put_object()
        .bucket("photos")
        .key("a.jpg")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    let full = c.delete_bucket().bucket("photos").send().await.unwrap_err();
    assert_eq!(code(&full), "BucketNotEmpty");
    c.delete_object()
        .bucket("photos")
        .key("a.jpg")
        .send()
        .await
        .unwrap();
    c.delete_bucket().bucket("photos").send().await.unwrap();
    let gone = c.head_bucket().bucket("photos").send().await.unwrap_err();
    assert_eq!(status(&gone), 404);
    let nb = c
        .list_objects_v2()
        .bucket("photos")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&nb), "NoSuchBucket");
}

#[tokio::test]
async fn objects_round_trip_every_size_class() {
    let (_d, s) = server();
    let c = s.client().await;
    c.create_bucket().bucket("sizes").send().await.unwrap();
    // empty, tiny, inline limit, just over, one stripe, many stripes with a partial tail.
    let sizes = [0usize, 1, 65536, 65537, 1 << 20, (5 << 20) + 12345];
    for (i, &n) in sizes.iter().enumerate() {
        let body = data(n, i as u64);
        let key = format!("obj-{n}");
        let put = c
            .put_object()
            .bucket("sizes")
            .key(&key)
            .content_type("application/x-test")
            .metadata("origin", "unit test")
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
        let md5 = format!("\"{}\"", hex::encode(md5_digest(&body)));
        assert_eq!(put.e_tag(), Some(md5.as_str()), "etag of {n}");
        assert_eq!(get_bytes(&c, "sizes", &key).await, body, "bytes of {n}");
        let head = c
            .head_object()
            .bucket("sizes")
            .key(&key)
            .send()
            .await
            .unwrap();
        assert_eq!(head.content_length(), Some(n as i64));
        assert_eq!(head.content_type(), Some("application/x-test"));
        assert_eq!(head.e_tag(), Some(md5.as_str()));
        assert_eq!(
            head.metadata().unwrap().get("origin").map(String::as_str),
            Some("unit test")
        );
    }
    // Overwrite replaces the bytes.
    c.put_object()
        .bucket("sizes")
        .key("obj-1")
        .body(ByteStream::from_static(b"second"))
        .send()
        .await
        .unwrap();
    assert_eq!(get_bytes(&c, "sizes", "obj-1").await, b"second");
}

fn md5_digest(b: &[u8]) -> [u8; 16] {
    use md5::Digest;
    md5::Md5::digest(b).into()
}

#[tokio::test]
async fn ranges_and_conditions() {
    let (_d, s) = server();
    let c = s.client().await;
    c.create_bucket().bucket("ranges").send().await.unwrap();
    let body = data(3 * (1 << 20) + 777, 9);
    let put = c
        .put_object()
        .bucket("ranges")
        .key("big")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    let etag = put.e_tag().unwrap().to_string();
    for (range, lo, hi) in [
        ("bytes=0-0", 0usize, 1usize),
        ("bytes=1048570-1048600", 1048570, 1048601),
        ("bytes=-100", body.len() - 100, body.len()),
        ("bytes=3000000-", 3000000, body.len()),
        ("bytes=5-99999999", 5, body.len()),
        // Across the blocks of one stripe (256 KiB each), across stripes, and through the
        // short, zero-padded blocks of the last stripe (777 bytes: blocks of 195).
        ("bytes=262140-262150", 262140, 262151),
        ("bytes=786430-1310730", 786430, 1310731),
        ("bytes=3145800-3146400", 3145800, 3146401),
        ("bytes=-5", body.len() - 5, body.len()),
    ] {
        let r = c
            .get_object()
            .bucket("ranges")
            .key("big")
            .range(range)
            .send()
            .await
            .unwrap();
        assert_eq!(r.content_length(), Some((hi - lo) as i64), "{range}");
        assert!(r
            .content_range()
            .unwrap()
            .starts_with(&format!("bytes {lo}-{}/", hi - 1)));
        let got = r.body.collect().await.unwrap().into_bytes();
        assert_eq!(&got[..], &body[lo..hi], "{range}");
    }
    let e = c
        .get_object()
        .bucket("ranges")
        .key("big")
        .range(format!("bytes={}-", body.len()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRange");
    assert_eq!(status(&e), 416);

    let e = c
        .get_object()
        .bucket("ranges")
        .key("big")
        .if_match("\"nope\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 412);
    c.get_object()
        .bucket("ranges")
        .key("big")
        .if_match(&etag)
        .send()
        .await
        .unwrap();
    let e = c
        .get_object()
        .bucket("ranges")
        .key("big")
        .if_none_match(&etag)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 304);
    let future = aws_smithy_types::DateTime::from_secs(4_000_000_000);
    let past = aws_smithy_types::DateTime::from_secs(1_000_000_000);
    let e = c
        .get_object()
        .bucket("ranges")
        .key("big")
        .if_modified_since(future)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 304);
    let e = c
        .get_object()
        .bucket("ranges")
        .key("big")
        .if_unmodified_since(past)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 412);

    let r = c
        .get_object()
        .bucket("ranges")
        .key("big")
        .range("bytes=0-3")
        .response_content_type("text/plain")
        .response_content_disposition("attachment; filename=\"x.txt\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.content_type(), Some("text/plain"));
    assert_eq!(
        r.content_disposition(),
        Some("attachment; filename=\"x.txt\"")
    );

    let e = c
        .get_object()
        .bucket("ranges")
        .key("missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchKey");
    let e = c
        .get_object()
        .bucket("nobucket")
        .key("missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchBucket");
}

#[tokio::test]
async fn listing_prefixes_delimiters_pages() {
    let (_d, s) = server();
    let c = s.client().await;
    c.create_bucket().bucket("tree").send().await.unwrap();
    let keys = [
        "a", "a/b", "a/b/c", "a/d", "b/x", "b/y/z", "c d", "e+f", "g%h", "h..i", "j/😀", "k~",
    ];
    for k in keys {
        c.put_object()
            .bucket("tree")
            .key(k)
            .body(ByteStream::from(k.as_bytes().to_vec()))
            .send()
            .await
            .unwrap();
    }
    // Plain listing: all keys in byte order.
    let all = c.list_objects_v2().bucket("tree").send().await.unwrap();
    let got: Vec<&str> = all.contents().iter().map(|o| o.key().unwrap()).collect();
    let mut want = keys.to_vec();
    want.sort();
    assert_eq!(got, want);
    for k in keys {
        assert_eq!(get_bytes(&c, "tree", k).await, k.as_bytes(), "{k}");
    }
    // Delimiter folding.
    let top = c
        .list_objects_v2()
        .bucket("tree")
        .delimiter("/")
        .send()
        .await
        .unwrap();
    let objs: Vec<&str> = top.contents().iter().map(|o| o.key().unwrap()).collect();
    let prefixes: Vec<&str> = top
        .common_prefixes()
        .iter()
        .map(|p| p.prefix().unwrap())
        .collect();
    assert_eq!(objs, ["a", "c d", "e+f", "g%h", "h..i", "k~"]);
    assert_eq!(prefixes, ["a/", "b/", "j/"]);
    let under = c
        .list_objects_v2()
        .bucket("tree")
        .prefix("a/")
        .delimiter("/")
        .send()
        .await
        .unwrap();
    let objs: Vec<&str> = under.contents().iter().map(|o| o.key().unwrap()).collect();
    let prefixes: Vec<&str> = under
        .common_prefixes()
        .iter()
        .map(|p| p.prefix().unwrap())
        .collect();
    assert_eq!(objs, ["a/b", "a/d"]);
    assert_eq!(prefixes, ["a/b/"]);
    // Pagination with continuation tokens, pages of 2, delimiter on.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut req = c
            .list_objects_v2()
            .bucket("tree")
            .delimiter("/")
            .max_keys(2);
        if let Some(t) = &token {
            req = req.continuation_token(t);
        }
        let page = req.send().await.unwrap();
        assert!(page.key_count().unwrap() <= 2);
        seen.extend(page.contents().iter().map(|o| o.key().unwrap().to_string()));
        seen.extend(
            page.common_prefixes()
                .iter()
                .map(|p| p.prefix().unwrap().to_string()),
        );
        match page.next_continuation_token() {
            Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
            _ => break,
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        ["a", "a/", "b/", "c d", "e+f", "g%h", "h..i", "j/", "k~"]
    );
    // start-after, and v1 with marker.
    let after = c
        .list_objects_v2()
        .bucket("tree")
        .start_after("b/x")
        .send()
        .await
        .unwrap();
    assert_eq!(after.contents()[0].key(), Some("b/y/z"));
    let mut v1 = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let mut req = c.list_objects().bucket("tree").max_keys(5);
        if let Some(m) = &marker {
            req = req.marker(m);
        }
        let page = req.send().await.unwrap();
        let keys: Vec<String> = page
            .contents()
            .iter()
            .map(|o| o.key().unwrap().to_string())
            .collect();
        v1.extend(keys.clone());
        if page.is_truncated() != Some(true) {
            break;
        }
        marker = Some(
            page.next_marker()
                .map(str::to_string)
                .unwrap_or_else(|| keys.last().unwrap().clone()),
        );
    }
    assert_eq!(v1, want);
    // max-keys=0 is an empty page that is not truncated (a paginator must not loop), in
    // both listings and in the versions' listing.
    let zero = c
        .list_objects_v2()
        .bucket("tree")
        .max_keys(0)
        .send()
        .await
        .unwrap();
    assert_eq!(zero.key_count(), Some(0));
    assert_eq!(zero.is_truncated(), Some(false));
    assert_eq!(zero.next_continuation_token(), None);
    let zero = c
        .list_objects()
        .bucket("tree")
        .max_keys(0)
        .send()
        .await
        .unwrap();
    assert!(zero.contents().is_empty());
    assert_eq!(zero.is_truncated(), Some(false));
    let zero = c
        .list_object_versions()
        .bucket("tree")
        .max_keys(0)
        .send()
        .await
        .unwrap();
    assert!(zero.versions().is_empty());
    assert_eq!(zero.is_truncated(), Some(false));
}

/// Full pages: 1,000 keys is one page and says so; 1,001 is two, the first one truncated.
#[tokio::test]
async fn full_pages_of_a_thousand_keys() {
    use futures::StreamExt;
    let (_d, s) = server();
    let c = s.client().await;
    c.create_bucket().bucket("full").send().await.unwrap();
    let put = |i: usize| {
        let c = c.clone();
        async move {
            c.put_object()
                .bucket("full")
                .key(format!("k{i:04}"))
                .body(ByteStream::from_static(b""))
                .send()
                .await
                .unwrap();
        }
    };
    futures::stream::iter(0..1000)
        .map(put)
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    let page = c.list_objects_v2().bucket("full").send().await.unwrap();
    assert_eq!(page.key_count(), Some(1000));
    assert_eq!(page.is_truncated(), Some(false));
    assert!(page.next_continuation_token().is_none());
    put(1000).await;
    let first = c.list_objects_v2().bucket("full").send().await.unwrap();
    assert_eq!(first.key_count(), Some(1000));
    assert_eq!(first.is_truncated(), Some(true));
    assert_eq!(first.contents().last().unwrap().key(), Some("k0999"));
    let rest = c
        .list_objects_v2()
        .bucket("full")
        .continuation_token(first.next_continuation_token().unwrap())
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = rest.contents().iter().map(|o| o.key().unwrap()).collect();
    assert_eq!(keys, ["k1000"]);
    assert_eq!(rest.is_truncated(), Some(false));
    let v1 = c.list_objects().bucket("full").send().await.unwrap();
    assert_eq!(v1.contents().len(), 1000);
    assert_eq!(v1.is_truncated(), Some(true));
}

#[tokio::test]
async fn copy_and_multi_delete() {
    let (_d, s) = server();
    let c = s.client().await;
    c.create_bucket().bucket("src-bucket").send().await.unwrap();
    c.create_bucket().bucket("dst-bucket").send().await.unwrap();
    let body = data(2 * (1 << 20) + 5, 3);
    c.put_object()
        .bucket("src-bucket")
        .key("dir/orig file")
        .content_type("image/png")
        .metadata("k", "v")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    let cp = c
        .copy_object()
        .bucket("dst-bucket")
        .key("copy")
        .copy_source("src-bucket/dir/orig%20file")
        .send()
        .await
        .unwrap();
    assert!(cp.copy_object_result().unwrap().e_tag().is_some());
    assert_eq!(get_bytes(&c, "dst-bucket", "copy").await, body);
    let h = c
        .head_object()
        .bucket("dst-bucket")
        .key("copy")
        .send()
        .await
        .unwrap();
    assert_eq!(h.content_type(), Some("image/png"));
    assert_eq!(
        h.metadata().unwrap().get("k").map(String::as_str),
        Some("v")
    );
    c.copy_object()
        .bucket("dst-bucket")
        .key("replaced")
        .copy_source("src-bucket/dir/orig%20file")
        .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
        .content_type("text/plain")
        .metadata("new", "yes")
        .send()
        .await
        .unwrap();
    let h = c
        .head_object()
        .bucket("dst-bucket")
        .key("replaced")
        .send()
        .await
        .unwrap();
    assert_eq!(h.content_type(), Some("text/plain"));
    assert!(h.metadata().unwrap().get("k").is_none());
    let selfcopy = c
        .copy_object()
        .bucket("dst-bucket")
        .key("copy")
        .copy_source("dst-bucket/copy")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&selfcopy), "InvalidRequest");
    let missing = c
        .copy_object()
        .bucket("dst-bucket")
        .key("x")
        .copy_source("src-bucket/none")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&missing), "NoSuchKey");
    // A canned ACL that would grant others is refused on a copy as on a PUT.
    let public = c
        .copy_object()
        .bucket("dst-bucket")
        .key("public")
        .copy_source("src-bucket/dir/orig%20file")
        .acl(aws_sdk_s3::types::ObjectCannedAcl::PublicRead)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&public), "NotImplemented");
    // A name that is no canned ACL at all is a bad argument, as in S3 (s3-tests'
    // test_bucket_put_bad_canned_acl), on an object and on a bucket.
    let bogus = c
        .put_object()
        .bucket("dst-bucket")
        .key("bogus")
        .acl(aws_sdk_s3::types::ObjectCannedAcl::from("public-ready"))
        .body(ByteStream::from_static(b"z"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&bogus), "InvalidArgument");
    let bogus = c
        .create_bucket()
        .bucket("bogus-acl")
        .acl(aws_sdk_s3::types::BucketCannedAcl::from("public-ready"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&bogus), "InvalidArgument");
    c.head_bucket()
        .bucket("bogus-acl")
        .send()
        .await
        .unwrap_err();

    for i in 0..5 {
        c.put_object()
            .bucket("dst-bucket")
            .key(format!("m/{i}"))
            .body(ByteStream::from_static(b"z"))
            .send()
            .await
            .unwrap();
    }
    let ids: Vec<ObjectIdentifier> = (0..6)
        .map(|i| {
            ObjectIdentifier::builder()
                .key(format!("m/{i}"))
                .build()
                .unwrap()
        })
        .collect();
    let del = c
        .delete_objects()
        .bucket("dst-bucket")
        .delete(Delete::builder().set_objects(Some(ids)).build().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(del.deleted().len(), 6);
    assert!(del.errors().is_empty());
    let left = c
        .list_objects_v2()
        .bucket("dst-bucket")
        .prefix("m/")
        .send()
        .await
        .unwrap();
    assert_eq!(left.key_count(), Some(0));
}

#[tokio::test]
async fn bad_input_gets_s3_errors_and_stores_nothing() {
    let (_d, s) = server();
    let c = s.client().await;
    c.create_bucket().bucket("strict").send().await.unwrap();
    // Wrong secret: SignatureDoesNotMatch. Unknown key: InvalidAccessKeyId.
    let wrong = common::client_with(&s.s3_url, common::ACCESS_KEY, "not-the-secret");
    let e = wrong.list_buckets().send().await.unwrap_err();
    assert_eq!(code(&e), "SignatureDoesNotMatch");
    assert_eq!(status(&e), 403);
    let unknown = common::client_with(&s.s3_url, "NOSUCHKEY", "x");
    let e = unknown.list_buckets().send().await.unwrap_err();
    assert_eq!(code(&e), "InvalidAccessKeyId");
    // Wrong Content-MD5: BadDigest; malformed Content-MD5: InvalidDigest.
    let e = c
        .put_object()
        .bucket("strict")
        .key("md5")
        .content_md5("1B2M2Y8AsgTpgAmY7PhCfg==")
        .body(ByteStream::from_static(b"not empty"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "BadDigest");
    let e = c
        .put_object()
        .bucket("strict")
        .key("md5")
        .content_md5("nope")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidDigest");
    // Wrong CRC32 checksum: BadDigest.
    let e = c
        .put_object()
        .bucket("strict")
        .key("crc")
        .checksum_crc32("AAAAAA==")
        .body(ByteStream::from_static(b"hello world"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "BadDigest");
    // Bodies large enough for shard files, three stripes and one: their files are synced
    // while the MD5 is still being taken, and a wrong MD5 or CRC32 must remove them again.
    let big = common::data((2 << 20) + 12_345, 7);
    let e = c
        .put_object()
        .bucket("strict")
        .key("md5")
        .content_md5("1B2M2Y8AsgTpgAmY7PhCfg==")
        .body(ByteStream::from(big.clone()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "BadDigest");
    let e = c
        .put_object()
        .bucket("strict")
        .key("crc")
        .checksum_crc32("AAAAAA==")
        .body(ByteStream::from(big[..300_000].to_vec()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "BadDigest");
    assert_eq!(
        common::shard_files(&s.data),
        Vec::<std::path::PathBuf>::new()
    );
    let e = c
        .put_object()
        .bucket("strict")
        .key("k".repeat(1025))
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "KeyTooLongError");
    // A storage class S3 does not have: InvalidStorageClass (one it has is taken).
    let e = c
        .put_object()
        .bucket("strict")
        .key("class")
        .storage_class(aws_sdk_s3::types::StorageClass::from("BOGUS"))
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidStorageClass");
    for k in ["md5", "crc", "class"] {
        let e = c
            .head_object()
            .bucket("strict")
            .key(k)
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), 404, "{k} must not exist");
    }
    // A right checksum is stored and returned with checksum mode.
    c.put_object()
        .bucket("strict")
        .key("crc-ok")
        .checksum_crc32("DUoRhQ==")
        .body(ByteStream::from_static(b"hello world"))
        .send()
        .await
        .unwrap();
    let h = c
        .head_object()
        .bucket("strict")
        .key("crc-ok")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(h.checksum_crc32(), Some("DUoRhQ=="));
    for alg in [
        aws_sdk_s3::types::ChecksumAlgorithm::Crc32C,
        aws_sdk_s3::types::ChecksumAlgorithm::Crc64Nvme,
        aws_sdk_s3::types::ChecksumAlgorithm::Sha1,
        aws_sdk_s3::types::ChecksumAlgorithm::Sha256,
    ] {
        let key = format!("alg-{}", alg.as_str());
        c.put_object()
            .bucket("strict")
            .key(&key)
            .checksum_algorithm(alg)
            .body(ByteStream::from(data(200_000, 5)))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{key}: {e:?}"));
        assert_eq!(get_bytes(&c, "strict", &key).await, data(200_000, 5));
    }
}

/// Settings Tessera does not keep (CORS, lifecycle, encryption, Object Lock, ...) answer as
/// S3 does for a bucket without them, after the bucket is found; changing them is 501, and a
/// request for Object Lock or an `aws:` tag is refused rather than accepted and ignored.
#[tokio::test]
async fn bucket_settings_not_kept_and_refused_requests() {
    let (_d, s) = server();
    let c = s.client().await;
    c.create_bucket().bucket("plain").send().await.unwrap();
    let e = c
        .get_bucket_cors()
        .bucket("plain")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (status(&e), code(&e).as_str()),
        (404, "NoSuchCORSConfiguration")
    );
    let e = c
        .get_bucket_cors()
        .bucket("nothere")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchBucket");
    c.delete_bucket_cors().bucket("plain").send().await.unwrap();
    let e = c
        .get_bucket_lifecycle_configuration()
        .bucket("plain")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchLifecycleConfiguration");
    let e = c
        .get_bucket_encryption()
        .bucket("plain")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ServerSideEncryptionConfigurationNotFoundError");
    let e = c
        .get_object_lock_configuration()
        .bucket("plain")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ObjectLockConfigurationNotFoundError");
    let payer = c
        .get_bucket_request_payment()
        .bucket("plain")
        .send()
        .await
        .unwrap();
    assert_eq!(payer.payer().map(|p| p.as_str()), Some("BucketOwner"));
    let logging = c.get_bucket_logging().bucket("plain").send().await.unwrap();
    assert!(logging.logging_enabled().is_none());
    let e = c
        .put_bucket_cors()
        .bucket("plain")
        .cors_configuration(
            aws_sdk_s3::types::CorsConfiguration::builder()
                .cors_rules(
                    aws_sdk_s3::types::CorsRule::builder()
                        .allowed_methods("GET")
                        .allowed_origins("*")
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NotImplemented");
    // A subresource no operation here takes (DELETE ?metadataTable) never falls through to
    // DeleteBucket.
    let e = c
        .delete_bucket_metadata_table_configuration()
        .bucket("plain")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NotImplemented");
    c.head_bucket().bucket("plain").send().await.unwrap();

    // Object Lock asked for: refused, not silently left unenforced.
    let e = c
        .create_bucket()
        .bucket("locked")
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NotImplemented");
    let e = c
        .put_object()
        .bucket("plain")
        .key("held")
        .object_lock_legal_hold_status(aws_sdk_s3::types::ObjectLockLegalHoldStatus::On)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequest");
    // Tag keys starting with aws: are the system's.
    let e = c
        .put_object()
        .bucket("plain")
        .key("tagged")
        .tagging("aws%3Acreated=me")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidTag");
    // A copy source's version id must be one Tessera could have made.
    let e = c
        .copy_object()
        .bucket("plain")
        .key("copy")
        .copy_source("plain/held?versionId=garbage")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidArgument");
    for k in ["held", "tagged", "copy"] {
        let e = c
            .head_object()
            .bucket("plain")
            .key(k)
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&e), 404, "{k}");
    }
}
