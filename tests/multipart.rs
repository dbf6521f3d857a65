//! Multipart uploads through aws-sdk-s3: parts erasure coded as they arrive, completion,
//! the S3 errors of bad completions, abort freeing shards, listing, part copies.

mod common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use common::{code, data, TestServer};
use md5::Digest;

const MIB: usize = 1 << 20;

fn server() -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(&dir.path().join("data"), &[]);
    (dir, s)
}

fn shard_file_count(data: &std::path::Path) -> usize {
    common::shard_files(data).len()
}

async fn get(c: &aws_sdk_s3::Client, b: &str, k: &str, range: Option<&str>) -> Vec<u8> {
    common::get_with(c, b, k, None, range).await
}

/// Starts an upload and returns its id.
async fn create_upload(c: &aws_sdk_s3::Client, bucket: &str, key: &str) -> String {
    c.create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_string()
}

async fn upload(
    c: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    id: &str,
    n: i32,
    body: Vec<u8>,
) -> CompletedPart {
    let r = c
        .upload_part()
        .bucket(bucket)
        .key(key)
        .upload_id(id)
        .part_number(n)
        .body(ByteStream::from(body))
        .send()
        .await
        .unwrap_or_else(|e| panic!("part {n}: {e:?}"));
    CompletedPart::builder()
        .part_number(n)
        .e_tag(r.e_tag().unwrap())
        .build()
}

#[tokio::test]
async fn upload_complete_read_and_replace() {
    let (_d, s) = server();
    let c = s.client().await;
    c.create_bucket().bucket("mpu").send().await.unwrap();
    let bodies = [data(5 * MIB, 1), data(5 * MIB + 17, 2), data(MIB + 3, 3)];
    let created = c
        .create_multipart_upload()
        .bucket("mpu")
        .key("dir/big.bin")
        .content_type("application/zip")
        .metadata("who", "test")
        .send()
        .await
        .unwrap();
    let id = created.upload_id().unwrap().to_string();
    // Parts arrive concurrently and out of order.
    let (p3, p1, p2) = tokio::join!(
        upload(&c, "mpu", "dir/big.bin", &id, 3, bodies[2].clone()),
        upload(&c, "mpu", "dir/big.bin", &id, 1, bodies[0].clone()),
        upload(&c, "mpu", "dir/big.bin", &id, 2, bodies[1].clone()),
    );
    let listed = c
        .list_parts()
        .bucket("mpu")
        .key("dir/big.bin")
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    let numbers: Vec<i32> = listed
        .parts()
        .iter()
        .map(|p| p.part_number().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2, 3]);
    assert_eq!(listed.parts()[1].size(), Some((5 * MIB + 17) as i64));
    let uploads = c
        .list_multipart_uploads()
        .bucket("mpu")
        .prefix("dir/")
        .send()
        .await
        .unwrap();
    assert_eq!(uploads.uploads().len(), 1);
    assert_eq!(uploads.uploads()[0].upload_id(), Some(id.as_str()));

    let done = c
        .complete_multipart_upload()
        .bucket("mpu")
        .key("dir/big.bin")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(vec![p1.clone(), p2.clone(), p3.clone()]))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut md5s = md5::Md5::new();
    for b in &bodies {
        md5s.update(md5::Md5::digest(b));
    }
    let want_etag = format!("\"{}-3\"", hex::encode(md5s.finalize()));
    assert_eq!(done.e_tag(), Some(want_etag.as_str()));
    let whole: Vec<u8> = bodies.concat();
    assert!(get(&c, "mpu", "dir/big.bin", None).await == whole);
    // A range across the boundary of parts 1 and 2, and one inside part 3.
    let lo = 5 * MIB - 100;
    assert!(
        get(
            &c,
            "mpu",
            "dir/big.bin",
            Some(&format!("bytes={lo}-{}", lo + 299))
        )
        .await
            == whole[lo..lo + 300]
    );
    assert!(get(&c, "mpu", "dir/big.bin", Some("bytes=-10")).await == whole[whole.len() - 10..]);
    let h = c
        .head_object()
        .bucket("mpu")
        .key("dir/big.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(h.content_length(), Some(whole.len() as i64));
    assert_eq!(h.content_type(), Some("application/zip"));
    assert_eq!(
        h.metadata().unwrap().get("who").map(String::as_str),
        Some("test")
    );
    let part2 = c
        .get_object()
        .bucket("mpu")
        .key("dir/big.bin")
        .part_number(2)
        .send()
        .await
        .unwrap();
    assert_eq!(part2.parts_count(), Some(3));
    assert!(part2.body.collect().await.unwrap().into_bytes()[..] == bodies[1][..]);
    // The upload is gone from the listing; completing it again answers the same object.
    let uploads = c
        .list_multipart_uploads()
        .bucket("mpu")
        .send()
        .await
        .unwrap();
    assert!(uploads.uploads().is_empty());
    let again = c
        .complete_multipart_upload()
        .bucket("mpu")
        .key("dir/big.bin")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(vec![p1, p2, p3]))
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(again.e_tag(), Some(want_etag.as_str()));
    // Replacing the object by a single PUT frees every part's shards.
    let before = shard_file_count(&s.data);
    assert!(before >= 18, "3 parts x 6 drives, found {before}");
    c.put_object()
        .bucket("mpu")
        .key("dir/big.bin")
        .body(ByteStream::from_static(b"small"))
        .send()
        .await
        .unwrap();
    assert_eq!(shard_file_count(&s.data), 0);
    assert_eq!(get(&c, "mpu", "dir/big.bin", None).await, b"small");
}

#[tokio::test]
async fn bad_completions_and_abort() {
    let (_d, s) = server();
    let c = s.client().await;
    c.create_bucket().bucket("mpu").send().await.unwrap();
    let id = create_upload(&c, "mpu", "k").await;
    let p1 = upload(&c, "mpu", "k", &id, 1, data(MIB, 1)).await;
    let p2 = upload(&c, "mpu", "k", &id, 2, data(MIB, 2)).await;
    let complete = |parts: Vec<CompletedPart>| {
        c.complete_multipart_upload()
            .bucket("mpu")
            .key("k")
            .upload_id(&id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
    };
    let e = complete(vec![p1.clone(), p2.clone()]).await.unwrap_err();
    assert_eq!(code(&e), "EntityTooSmall");
    let e = complete(vec![p2.clone(), p1.clone()]).await.unwrap_err();
    assert_eq!(code(&e), "InvalidPartOrder");
    let wrong = CompletedPart::builder()
        .part_number(1)
        .e_tag("\"0123456789abcdef0123456789abcdef\"")
        .build();
    let e = complete(vec![wrong]).await.unwrap_err();
    assert_eq!(code(&e), "InvalidPart");
    let missing = CompletedPart::builder()
        .part_number(7)
        .e_tag(p1.e_tag().unwrap())
        .build();
    let e = complete(vec![missing]).await.unwrap_err();
    assert_eq!(code(&e), "InvalidPart");
    let e = c
        .upload_part()
        .bucket("mpu")
        .key("k")
        .upload_id(&id)
        .part_number(10001)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidArgument");
    // Re-uploading a part replaces it and frees the old shards.
    let before = shard_file_count(&s.data);
    upload(&c, "mpu", "k", &id, 2, data(MIB, 3)).await;
    assert_eq!(shard_file_count(&s.data), before);
    // A single small part is a valid object.
    c.abort_multipart_upload()
        .bucket("mpu")
        .key("k")
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(shard_file_count(&s.data), 0, "abort frees every part");
    let e = complete(vec![p1]).await.unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");
    let e = c
        .list_parts()
        .bucket("mpu")
        .key("k")
        .upload_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");
    let e = c
        .abort_multipart_upload()
        .bucket("mpu")
        .key("k")
        .upload_id("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");
    let e = c
        .head_object()
        .bucket("mpu")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(common::status(&e), 404);
}

#[tokio::test]
async fn part_copy_and_checksums() {
    let (_d, s) = server();
    let c = s.client().await;
    c.create_bucket().bucket("mpu").send().await.unwrap();
    let src = data(7 * MIB, 11);
    c.put_object()
        .bucket("mpu")
        .key("src")
        .body(ByteStream::from(src.clone()))
        .send()
        .await
        .unwrap();
    let id = c
        .create_multipart_upload()
        .bucket("mpu")
        .key("assembled")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_string();
    let copied = c
        .upload_part_copy()
        .bucket("mpu")
        .key("assembled")
        .upload_id(&id)
        .part_number(1)
        .copy_source("mpu/src")
        .copy_source_range(format!("bytes=0-{}", 5 * MIB - 1))
        .send()
        .await
        .unwrap();
    let e1 = copied
        .copy_part_result()
        .unwrap()
        .e_tag()
        .unwrap()
        .to_string();
    let tail = data(1000, 12);
    let p2 = c
        .upload_part()
        .bucket("mpu")
        .key("assembled")
        .upload_id(&id)
        .part_number(2)
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .body(ByteStream::from(tail.clone()))
        .send()
        .await
        .unwrap();
    assert!(p2.checksum_crc32().is_some());
    c.complete_multipart_upload()
        .bucket("mpu")
        .key("assembled")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(CompletedPart::builder().part_number(1).e_tag(e1).build())
                .parts(
                    CompletedPart::builder()
                        .part_number(2)
                        .e_tag(p2.e_tag().unwrap())
                        .checksum_crc32(p2.checksum_crc32().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let got = get(&c, "mpu", "assembled", None).await;
    assert!(got[..5 * MIB] == src[..5 * MIB]);
    assert!(got[5 * MIB..] == tail[..]);
}

#[tokio::test]
async fn abandoned_uploads_expire_and_free_their_shards() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("tessera.toml");
    std::fs::write(&conf, "upload_expiry = \"2s\"\n").unwrap();
    let s = TestServer::start(
        &dir.path().join("data"),
        &["--config", conf.to_str().unwrap()],
    );
    let c = s.client().await;
    c.create_bucket().bucket("expiry").send().await.unwrap();
    let id = create_upload(&c, "expiry", "forgotten").await;
    upload(&c, "expiry", "forgotten", &id, 1, data(MIB, 1)).await;
    assert!(shard_file_count(&s.data) > 0);
    // The expiry runs every 2 s here; poll (bounded) until it has run past the upload's age.
    let mut gone = false;
    for _ in 0..60 {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        let ups = c
            .list_multipart_uploads()
            .bucket("expiry")
            .send()
            .await
            .unwrap();
        if ups.uploads().is_empty() {
            gone = true;
            break;
        }
    }
    assert!(gone, "upload not expired after 15 s");
    assert_eq!(shard_file_count(&s.data), 0);
    let e = c
        .list_parts()
        .bucket("expiry")
        .key("forgotten")
        .upload_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");

    // Uploads in progress go with their bucket, as in S3: a bucket made again with the same
    // name has none of them.
    c.create_bucket().bucket("dropped").send().await.unwrap();
    let id = create_upload(&c, "dropped", "half").await;
    upload(&c, "dropped", "half", &id, 1, data(MIB, 2)).await;
    c.delete_bucket().bucket("dropped").send().await.unwrap();
    c.create_bucket().bucket("dropped").send().await.unwrap();
    let ups = c
        .list_multipart_uploads()
        .bucket("dropped")
        .send()
        .await
        .unwrap();
    assert!(ups.uploads().is_empty(), "{:?}", ups.uploads());
    assert_eq!(shard_file_count(&s.data), 0);
}

#[tokio::test]
async fn failed_requests_leave_no_object_and_no_shards() {
    let (_d, s) = server();
    let c = s.client().await;
    c.create_bucket().bucket("clean").send().await.unwrap();
    // A multi-stripe PUT whose checksum is wrong, and a part whose Content-MD5 is wrong.
    let e = c
        .put_object()
        .bucket("clean")
        .key("bad")
        .checksum_crc32("AAAAAA==")
        .body(ByteStream::from(data(3 * MIB, 1)))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "BadDigest");
    let id = create_upload(&c, "clean", "mp").await;
    let e = c
        .upload_part()
        .bucket("clean")
        .key("mp")
        .upload_id(&id)
        .part_number(1)
        .content_md5("1B2M2Y8AsgTpgAmY7PhCfg==")
        .body(ByteStream::from(data(2 * MIB, 2)))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "BadDigest");
    assert_eq!(
        shard_file_count(&s.data),
        0,
        "a failed write left shard files"
    );
    let tmp_files: usize = (0..6)
        .map(|d| {
            std::fs::read_dir(s.data.join(format!("drive-{d}/tmp")))
                .unwrap()
                .count()
        })
        .sum();
    assert_eq!(tmp_files, 0, "a failed write left temporary files");
    let e = c
        .head_object()
        .bucket("clean")
        .key("bad")
        .send()
        .await
        .unwrap_err();
    assert_eq!(common::status(&e), 404);
    let parts = c
        .list_parts()
        .bucket("clean")
        .key("mp")
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    assert!(parts.parts().is_empty());
    // Bad version ids and tag characters.
    c.put_object()
        .bucket("clean")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    let e = c
        .get_object()
        .bucket("clean")
        .key("k")
        .version_id("not-a-version")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidArgument");
    let e = c
        .get_object()
        .bucket("clean")
        .key("k")
        .version_id("0123456789abcdef0123456789abcdef")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchVersion");
    let e = c
        .put_object_tagging()
        .bucket("clean")
        .key("k")
        .tagging(
            aws_sdk_s3::types::Tagging::builder()
                .tag_set(
                    aws_sdk_s3::types::Tag::builder()
                        .key("bad<key>")
                        .value("v")
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidTag");
}

#[tokio::test]
async fn full_object_and_composite_checksums() {
    use base64::Engine;
    let (_d, s) = server();
    let c = s.client().await;
    c.create_bucket().bucket("sums").send().await.unwrap();
    let parts_data = [data(5 * MIB, 31), data(5 * MIB + 7, 32), data(1234, 33)];
    let whole: Vec<u8> = parts_data.concat();
    for (alg, kind) in [
        (
            ChecksumAlgorithm::Crc64Nvme,
            aws_sdk_s3::types::ChecksumType::FullObject,
        ),
        (
            ChecksumAlgorithm::Crc32C,
            aws_sdk_s3::types::ChecksumType::FullObject,
        ),
        (
            ChecksumAlgorithm::Crc32,
            aws_sdk_s3::types::ChecksumType::Composite,
        ),
    ] {
        let key = format!("obj-{}", alg.as_str());
        let created = c
            .create_multipart_upload()
            .bucket("sums")
            .key(&key)
            .checksum_algorithm(alg.clone())
            .checksum_type(kind.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(created.checksum_type(), Some(&kind));
        let id = created.upload_id().unwrap().to_string();
        let mut done = Vec::new();
        for (i, body) in parts_data.iter().enumerate() {
            let n = i as i32 + 1;
            let r = c
                .upload_part()
                .bucket("sums")
                .key(&key)
                .upload_id(&id)
                .part_number(n)
                .checksum_algorithm(alg.clone())
                .body(ByteStream::from(body.clone()))
                .send()
                .await
                .unwrap();
            let mut p = CompletedPart::builder()
                .part_number(n)
                .e_tag(r.e_tag().unwrap());
            p = match alg {
                ChecksumAlgorithm::Crc64Nvme => {
                    p.checksum_crc64_nvme(r.checksum_crc64_nvme().unwrap())
                }
                ChecksumAlgorithm::Crc32C => p.checksum_crc32_c(r.checksum_crc32_c().unwrap()),
                _ => p.checksum_crc32(r.checksum_crc32().unwrap()),
            };
            done.push(p.build());
        }
        // The CRC of the whole object, computed independently here.
        let want = match alg {
            ChecksumAlgorithm::Crc64Nvme => {
                let mut d = crc64fast_nvme::Digest::new();
                d.write(&whole);
                base64::engine::general_purpose::STANDARD.encode(d.sum64().to_be_bytes())
            }
            _ => base64::engine::general_purpose::STANDARD
                .encode(crc32c::crc32c(&whole).to_be_bytes()),
        };
        let full = kind == aws_sdk_s3::types::ChecksumType::FullObject;
        let complete = |parts: Vec<CompletedPart>, whole_sum: Option<&str>| {
            let mut req = c
                .complete_multipart_upload()
                .bucket("sums")
                .key(&key)
                .upload_id(&id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                );
            // The client's checksum of the whole object, in the header of its algorithm: the
            // server checks it against the parts' (not against the XML body).
            if let Some(v) = whole_sum {
                req = match alg {
                    ChecksumAlgorithm::Crc64Nvme => req.checksum_crc64_nvme(v),
                    ChecksumAlgorithm::Crc32 => req.checksum_crc32(v),
                    _ => req.checksum_crc32_c(v),
                };
            }
            req.send()
        };
        // A value that is no checksum of this algorithm at all is a bad request.
        let e = complete(done.clone(), Some("bad")).await.unwrap_err();
        assert_eq!(code(&e), "InvalidRequest", "{key}");
        if full {
            // A checksum of the algorithm's size, but not the object's.
            let zero = match alg {
                ChecksumAlgorithm::Crc64Nvme => "AAAAAAAAAAA=",
                _ => "AAAAAA==",
            };
            let wrong = complete(done.clone(), Some(zero)).await.unwrap_err();
            assert_eq!(code(&wrong), "BadDigest", "{key}");
            // A part listed with a checksum that is not the one it was uploaded with.
            let mut bad_part = done.clone();
            let p = CompletedPart::builder()
                .part_number(2)
                .e_tag(done[1].e_tag().unwrap());
            bad_part[1] = match alg {
                ChecksumAlgorithm::Crc64Nvme => p.checksum_crc64_nvme("AAAAAAAAAAA="),
                _ => p.checksum_crc32_c("AAAAAA=="),
            }
            .build();
            let e = complete(bad_part, None).await.unwrap_err();
            assert_eq!(code(&e), "InvalidPart", "{key}");
        }
        // A composite checksum: the CRC of the parts' CRCs, which the client may name with
        // its part count or without (S3 takes both).
        let composite = {
            let mut h = crc32fast::Hasher::new();
            for p in &done {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(p.checksum_crc32().unwrap_or_default())
                    .unwrap();
                h.update(&raw);
            }
            base64::engine::general_purpose::STANDARD.encode(h.finalize().to_be_bytes())
        };
        if !full {
            // With a part count, the count must be the object's.
            let e = complete(done.clone(), Some(&format!("{composite}-2")))
                .await
                .unwrap_err();
            assert_eq!(code(&e), "BadDigest", "{key}");
        }
        let whole_sum = if full { &want } else { &composite };
        let out = complete(done, Some(whole_sum))
            .await
            .unwrap_or_else(|e| panic!("{key}: {e:?}"));
        let head = c
            .head_object()
            .bucket("sums")
            .key(&key)
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        if full {
            let got = out
                .checksum_crc64_nvme()
                .or(out.checksum_crc32_c())
                .unwrap();
            assert_eq!(got, want, "{key}");
            assert_eq!(
                head.checksum_crc64_nvme().or(head.checksum_crc32_c()),
                Some(want.as_str())
            );
        } else {
            assert_eq!(
                out.checksum_crc32(),
                Some(format!("{composite}-3").as_str())
            );
            // GetObjectAttributes gives it without the part count, as S3 does.
            let attrs = c
                .get_object_attributes()
                .bucket("sums")
                .key(&key)
                .object_attributes(aws_sdk_s3::types::ObjectAttributes::Checksum)
                .send()
                .await
                .unwrap();
            let sum = attrs.checksum().unwrap();
            assert_eq!(sum.checksum_crc32(), Some(composite.as_str()));
            assert_eq!(
                sum.checksum_type(),
                Some(&aws_sdk_s3::types::ChecksumType::Composite)
            );
        }
        // The bytes are right, with the SDK validating the response checksum where it can.
        let got = c
            .get_object()
            .bucket("sums")
            .key(&key)
            .send()
            .await
            .unwrap();
        assert!(got.body.collect().await.unwrap().into_bytes()[..] == whole[..]);
    }
}

/// A conditional completion (If-None-Match: *, If-Match) holds as a conditional PUT does; a
/// part copy's range must lie within its source; ListMultipartUploads pages over common
/// prefixes; a GET may not name both a part and a range.
#[tokio::test]
async fn conditional_completions_copy_ranges_and_upload_pages() {
    let (_d, s) = server();
    let c = s.client().await;
    c.create_bucket().bucket("mpu").send().await.unwrap();
    let old = c
        .put_object()
        .bucket("mpu")
        .key("taken")
        .body(ByteStream::from_static(b"first"))
        .send()
        .await
        .unwrap();
    let start = |key: &'static str| {
        let c = c.clone();
        async move {
            let id = create_upload(&c, "mpu", key).await;
            let part = upload(&c, "mpu", key, &id, 1, data(1000, 5)).await;
            (id, part)
        }
    };
    let complete = |key: &'static str, id: String, part: CompletedPart| {
        c.complete_multipart_upload()
            .bucket("mpu")
            .key(key)
            .upload_id(id)
            .multipart_upload(CompletedMultipartUpload::builder().parts(part).build())
    };
    let (id, part) = start("taken").await;
    let e = complete("taken", id.clone(), part.clone())
        .if_none_match("*")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "PreconditionFailed");
    let e = complete("taken", id.clone(), part.clone())
        .if_match("\"0123456789abcdef0123456789abcdef\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "PreconditionFailed");
    assert_eq!(get(&c, "mpu", "taken", None).await, b"first");
    complete("taken", id, part)
        .if_match(old.e_tag().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(get(&c, "mpu", "taken", None).await, data(1000, 5));
    let (id, part) = start("fresh").await;
    let e = complete("fresh", id.clone(), part.clone())
        .if_match(old.e_tag().unwrap())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchKey");
    complete("fresh", id, part)
        .if_none_match("*")
        .send()
        .await
        .unwrap();

    // A part copy's range: only bytes=first-last, and within the source.
    let (id, _) = start("copied").await;
    for (range, want) in [
        ("bytes=0-1000", "InvalidRange"),
        ("bytes=2000-3000", "InvalidRange"),
        ("bytes=-10", "InvalidArgument"),
        ("bytes=10-", "InvalidArgument"),
        ("bytes=9-3", "InvalidArgument"),
    ] {
        let e = c
            .upload_part_copy()
            .bucket("mpu")
            .key("copied")
            .upload_id(&id)
            .part_number(2)
            .copy_source("mpu/fresh")
            .copy_source_range(range)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), want, "{range}");
    }
    c.upload_part_copy()
        .bucket("mpu")
        .key("copied")
        .upload_id(&id)
        .part_number(2)
        .copy_source("mpu/fresh")
        .copy_source_range("bytes=0-999")
        .send()
        .await
        .unwrap();

    // partNumber and Range together, or a part number out of 1..10000: refused.
    let e = c
        .get_object()
        .bucket("mpu")
        .key("fresh")
        .part_number(1)
        .range("bytes=0-9")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRequest");
    let e = c
        .get_object()
        .bucket("mpu")
        .key("fresh")
        .part_number(10001)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidArgument");

    // Uploads under a/ and b/ fold into one prefix each; a page of one entry at a time
    // walks a/, b/, then the upload of "c" (and of "copied"), each entry once.
    for key in ["a/1", "a/2", "b/1", "c"] {
        start(key).await;
    }
    let mut seen = Vec::new();
    let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
    for _ in 0..10 {
        let page = c
            .list_multipart_uploads()
            .bucket("mpu")
            .delimiter("/")
            .max_uploads(1)
            .set_key_marker(key_marker.clone())
            .set_upload_id_marker(id_marker.clone())
            .send()
            .await
            .unwrap();
        for p in page.common_prefixes() {
            seen.push(p.prefix().unwrap().to_string());
        }
        for u in page.uploads() {
            seen.push(u.key().unwrap().to_string());
        }
        if page.is_truncated() != Some(true) {
            break;
        }
        key_marker = page.next_key_marker().map(str::to_string);
        id_marker = page.next_upload_id_marker().map(str::to_string);
        assert!(
            key_marker.is_some(),
            "a truncated page names where to go on"
        );
    }
    assert_eq!(seen, ["a/", "b/", "c", "copied"]);
}
