//! Versioning, delete markers, tagging, conditional writes, GetObjectAttributes and
//! virtual-host-style addressing, through aws-sdk-s3.

mod common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, Delete, ObjectAttributes, ObjectIdentifier, Tag, Tagging,
};
use common::{code, set_versioning, status, TestServer};

fn server() -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(&dir.path().join("data"), &["--base-domain", "s3.localhost"]);
    (dir, s)
}

async fn body(c: &aws_sdk_s3::Client, b: &str, k: &str, v: Option<&str>) -> Vec<u8> {
    common::get_with(c, b, k, v, None).await
}

async fn put(c: &aws_sdk_s3::Client, b: &str, k: &str, data: impl AsRef<[u8]>) -> Option<String> {
    c.put_object()
        .bucket(b)
        .key(k)
        .body(ByteStream::from(data.as_ref().to_vec()))
        .send()
        .await
        .unwrap()
        .version_id()
        .map(str::to_string)
}

#[tokio::test]
async fn versioned_bucket_full_life() {
    let (_d, s) = server();
    let c = s.client().await;
    c.create_bucket().bucket("vers").send().await.unwrap();
    let g = c
        .get_bucket_versioning()
        .bucket("vers")
        .send()
        .await
        .unwrap();
    assert!(g.status().is_none());
    // Before versioning: the null version.
    assert_eq!(put(&c, "vers", "doc", b"v0").await, None);
    set_versioning(&c, "vers", BucketVersioningStatus::Enabled).await;
    let g = c
        .get_bucket_versioning()
        .bucket("vers")
        .send()
        .await
        .unwrap();
    assert_eq!(g.status(), Some(&BucketVersioningStatus::Enabled));
    let v1 = put(&c, "vers", "doc", b"v1").await.expect("version id");
    let v2 = put(&c, "vers", "doc", b"v2-longer")
        .await
        .expect("version id");
    assert_ne!(v1, v2);
    assert_eq!(body(&c, "vers", "doc", None).await, b"v2-longer");
    assert_eq!(body(&c, "vers", "doc", Some(&v1)).await, b"v1");
    assert_eq!(body(&c, "vers", "doc", Some("null")).await, b"v0");
    let h = c
        .head_object()
        .bucket("vers")
        .key("doc")
        .version_id(&v1)
        .send()
        .await
        .unwrap();
    assert_eq!(h.content_length(), Some(2));
    assert_eq!(h.version_id(), Some(v1.as_str()));

    // A delete makes a marker: GET is 404, the listing hides the key, versions remain.
    let del = c
        .delete_object()
        .bucket("vers")
        .key("doc")
        .send()
        .await
        .unwrap();
    assert_eq!(del.delete_marker(), Some(true));
    let marker = del.version_id().unwrap().to_string();
    let e = c
        .get_object()
        .bucket("vers")
        .key("doc")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchKey");
    // Both name the marker and say when it was made, as S3 does since 2023.
    fn header<E>(
        e: &aws_sdk_s3::error::SdkError<E, aws_smithy_runtime_api::http::Response>,
        name: &str,
    ) -> Option<String> {
        e.raw_response()
            .and_then(|r| r.headers().get(name))
            .map(str::to_string)
    }
    let made = header(&e, "last-modified").expect("Last-Modified of the marker");
    assert!(made.ends_with(" GMT"), "{made}");
    assert_eq!(header(&e, "x-amz-delete-marker").as_deref(), Some("true"));
    assert_eq!(header(&e, "x-amz-version-id"), Some(marker.clone()));
    let e = c
        .head_object()
        .bucket("vers")
        .key("doc")
        .version_id(&marker)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 405);
    assert_eq!(header(&e, "last-modified"), Some(made));
    // A copy naming the marker as its source is a bad request, not 405.
    let e = c
        .copy_object()
        .bucket("vers")
        .key("from-marker")
        .copy_source(format!("vers/doc?versionId={marker}"))
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidRequest"));
    let l = c.list_objects_v2().bucket("vers").send().await.unwrap();
    assert_eq!(l.key_count(), Some(0));
    // A full page followed only by keys whose current version is a delete marker is the
    // last page: nothing more would be listed after it (the markers take many rounds of
    // the merge when the page asks for few keys).
    c.create_bucket().bucket("markers").send().await.unwrap();
    set_versioning(&c, "markers", BucketVersioningStatus::Enabled).await;
    for k in ["live/1", "live/2", "m/x"] {
        put(&c, "markers", k, b"v").await;
    }
    for i in 0..40 {
        let k = format!("n/{i:02}");
        put(&c, "markers", &k, b"gone").await;
        c.delete_object()
            .bucket("markers")
            .key(&k)
            .send()
            .await
            .unwrap();
    }
    for (max, delimiter, want) in [
        (3, None, vec!["live/1", "live/2", "m/x"]),
        (2, Some("/"), vec!["live/", "m/"]),
    ] {
        let l = c
            .list_objects_v2()
            .bucket("markers")
            .max_keys(max)
            .set_delimiter(delimiter.map(str::to_string))
            .send()
            .await
            .unwrap();
        let got: Vec<&str> = l
            .contents()
            .iter()
            .map(|o| o.key().unwrap())
            .chain(l.common_prefixes().iter().map(|p| p.prefix().unwrap()))
            .collect();
        assert_eq!(got, want, "max-keys {max}, delimiter {delimiter:?}");
        assert_eq!(
            l.is_truncated(),
            Some(false),
            "max-keys {max}, delimiter {delimiter:?}"
        );
    }
    let l = c
        .list_objects_v2()
        .bucket("markers")
        .max_keys(2)
        .send()
        .await
        .unwrap();
    assert_eq!(l.is_truncated(), Some(true));
    let l = c
        .list_objects_v2()
        .bucket("markers")
        .continuation_token(l.next_continuation_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(l.contents().len(), 1);
    assert_eq!(l.is_truncated(), Some(false));
    let lv = c
        .list_object_versions()
        .bucket("vers")
        .send()
        .await
        .unwrap();
    let ids: Vec<&str> = lv
        .versions()
        .iter()
        .map(|v| v.version_id().unwrap())
        .collect();
    assert_eq!(ids, [v2.as_str(), v1.as_str(), "null"]);
    assert_eq!(lv.delete_markers().len(), 1);
    assert_eq!(lv.delete_markers()[0].is_latest(), Some(true));
    assert_eq!(lv.versions()[0].is_latest(), Some(false));

    // Restore an old version: delete the marker, then copy v1 over the top.
    c.delete_object()
        .bucket("vers")
        .key("doc")
        .version_id(&marker)
        .send()
        .await
        .unwrap();
    assert_eq!(body(&c, "vers", "doc", None).await, b"v2-longer");
    let cp = c
        .copy_object()
        .bucket("vers")
        .key("doc")
        .copy_source(format!("vers/doc?versionId={v1}"))
        .send()
        .await
        .unwrap();
    assert_eq!(cp.copy_source_version_id(), Some(v1.as_str()));
    assert_eq!(body(&c, "vers", "doc", None).await, b"v1");
    // A part copied from a version says which, as CopyObject does.
    let up = c
        .create_multipart_upload()
        .bucket("vers")
        .key("assembled")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let part = c
        .upload_part_copy()
        .bucket("vers")
        .key("assembled")
        .upload_id(id)
        .part_number(1)
        .copy_source(format!("vers/doc?versionId={v1}"))
        .send()
        .await
        .unwrap();
    assert_eq!(part.copy_source_version_id(), Some(v1.as_str()));
    c.abort_multipart_upload()
        .bucket("vers")
        .key("assembled")
        .upload_id(id)
        .send()
        .await
        .unwrap();
    // Deleting a version for good.
    c.delete_object()
        .bucket("vers")
        .key("doc")
        .version_id(&v2)
        .send()
        .await
        .unwrap();
    let e = c
        .get_object()
        .bucket("vers")
        .key("doc")
        .version_id(&v2)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchVersion");
    // DeleteObjects with versions, a delete marker among them.
    let marker2 = c
        .delete_object()
        .bucket("vers")
        .key("doc")
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_string();
    let all = c
        .list_object_versions()
        .bucket("vers")
        .send()
        .await
        .unwrap();
    let ids: Vec<ObjectIdentifier> = all
        .versions()
        .iter()
        .map(|v| v.version_id().unwrap())
        .chain(all.delete_markers().iter().map(|m| m.version_id().unwrap()))
        .map(|v| {
            ObjectIdentifier::builder()
                .key("doc")
                .version_id(v)
                .build()
                .unwrap()
        })
        .collect();
    let n = ids.len();
    let d = c
        .delete_objects()
        .bucket("vers")
        .delete(Delete::builder().set_objects(Some(ids)).build().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(d.deleted().len(), n);
    // The marker's entry says it was one, and which (the API reference's DeletedObject).
    let m = d
        .deleted()
        .iter()
        .find(|e| e.version_id() == Some(marker2.as_str()))
        .unwrap();
    assert_eq!(m.delete_marker(), Some(true));
    assert_eq!(m.delete_marker_version_id(), Some(marker2.as_str()));
    assert!(d
        .deleted()
        .iter()
        .filter(|e| e.version_id() != Some(marker2.as_str()))
        .all(|e| e.delete_marker() != Some(true) && e.delete_marker_version_id().is_none()));
    let lv = c
        .list_object_versions()
        .bucket("vers")
        .send()
        .await
        .unwrap();
    assert!(lv.versions().is_empty() && lv.delete_markers().is_empty());
    c.delete_bucket().bucket("vers").send().await.unwrap();
}

#[tokio::test]
async fn suspended_versioning_and_version_paging() {
    let (_d, s) = server();
    let c = s.client().await;
    c.create_bucket().bucket("susp").send().await.unwrap();
    set_versioning(&c, "susp", BucketVersioningStatus::Enabled).await;
    let mut kept = Vec::new();
    for k in ["a", "b", "c"] {
        for _ in 0..3 {
            kept.push((k, put(&c, "susp", k, b"x").await.unwrap()));
        }
    }
    // Page through 9 versions, 1 and 2 at a time: a page that starts inside a key with more
    // versions left than fit still names where the next one starts.
    for max in [1, 2] {
        let mut seen = Vec::new();
        let (mut km, mut vm): (Option<String>, Option<String>) = (None, None);
        for _ in 0..20 {
            let page = c
                .list_object_versions()
                .bucket("susp")
                .max_keys(max)
                .set_key_marker(km.clone())
                .set_version_id_marker(vm.clone())
                .send()
                .await
                .unwrap();
            for v in page.versions() {
                seen.push((
                    v.key().unwrap().to_string(),
                    v.version_id().unwrap().to_string(),
                ));
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            km = page.next_key_marker().map(str::to_string);
            vm = page.next_version_id_marker().map(str::to_string);
            assert!(km.is_some() && vm.is_some(), "max {max}: {seen:?}");
        }
        assert_eq!(seen.len(), 9, "max {max}: {seen:?}");
        let mut dedup = seen.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), 9);
    }
    // With a delimiter, a page that ends in a common prefix goes on after it.
    for k in ["d/1", "d/2", "e"] {
        put(&c, "susp", k, b"x").await;
    }
    let mut walked = Vec::new();
    let (mut km, mut vm): (Option<String>, Option<String>) = (None, None);
    for _ in 0..20 {
        let page = c
            .list_object_versions()
            .bucket("susp")
            .prefix("")
            .delimiter("/")
            .max_keys(2)
            .set_key_marker(km.clone())
            .set_version_id_marker(vm.clone())
            .send()
            .await
            .unwrap();
        let mut here: Vec<String> = page
            .versions()
            .iter()
            .map(|v| v.key().unwrap().to_string())
            .collect();
        here.extend(
            page.common_prefixes()
                .iter()
                .map(|p| p.prefix().unwrap().to_string()),
        );
        here.sort();
        walked.extend(here);
        if page.is_truncated() != Some(true) {
            break;
        }
        km = page.next_key_marker().map(str::to_string);
        vm = page.next_version_id_marker().map(str::to_string);
    }
    assert_eq!(
        walked,
        ["a", "a", "a", "b", "b", "b", "c", "c", "c", "d/", "e"]
    );
    // Suspended: writes replace the null version, older versions stay.
    set_versioning(&c, "susp", BucketVersioningStatus::Suspended).await;
    assert_eq!(put(&c, "susp", "a", b"n1").await, None);
    assert_eq!(put(&c, "susp", "a", b"n2").await, None);
    assert_eq!(body(&c, "susp", "a", None).await, b"n2");
    assert_eq!(body(&c, "susp", "a", Some("null")).await, b"n2");
    let lv = c
        .list_object_versions()
        .bucket("susp")
        .prefix("a")
        .send()
        .await
        .unwrap();
    assert_eq!(lv.versions().len(), 4);
    assert_eq!(body(&c, "susp", "a", Some(&kept[0].1)).await, b"x");
}

#[tokio::test]
async fn tagging_objects_and_buckets() {
    let (_d, s) = server();
    let c = s.client().await;
    c.create_bucket().bucket("tags").send().await.unwrap();
    c.put_object()
        .bucket("tags")
        .key("t")
        .tagging("project=alpha&team=storage%20ops")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    let t = c
        .get_object_tagging()
        .bucket("tags")
        .key("t")
        .send()
        .await
        .unwrap();
    let mut got: Vec<(String, String)> = t
        .tag_set()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("project".to_string(), "alpha".to_string()),
            ("team".to_string(), "storage ops".to_string())
        ]
    );
    let g = c.get_object().bucket("tags").key("t").send().await.unwrap();
    assert_eq!(g.tag_count(), Some(2));
    c.put_object_tagging()
        .bucket("tags")
        .key("t")
        .tagging(
            Tagging::builder()
                .tag_set(Tag::builder().key("k").value("v").build().unwrap())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let t = c
        .get_object_tagging()
        .bucket("tags")
        .key("t")
        .send()
        .await
        .unwrap();
    assert_eq!(t.tag_set().len(), 1);
    // Tags survive a copy (COPY directive) and the bytes are untouched.
    c.copy_object()
        .bucket("tags")
        .key("t2")
        .copy_source("tags/t")
        .send()
        .await
        .unwrap();
    assert_eq!(
        c.get_object_tagging()
            .bucket("tags")
            .key("t2")
            .send()
            .await
            .unwrap()
            .tag_set()
            .len(),
        1
    );
    assert_eq!(body(&c, "tags", "t", None).await, b"x");
    c.delete_object_tagging()
        .bucket("tags")
        .key("t")
        .send()
        .await
        .unwrap();
    assert!(c
        .get_object_tagging()
        .bucket("tags")
        .key("t")
        .send()
        .await
        .unwrap()
        .tag_set()
        .is_empty());
    let too_many: Vec<Tag> = (0..11)
        .map(|i| {
            Tag::builder()
                .key(format!("k{i}"))
                .value("v")
                .build()
                .unwrap()
        })
        .collect();
    let e = c
        .put_object_tagging()
        .bucket("tags")
        .key("t")
        .tagging(
            Tagging::builder()
                .set_tag_set(Some(too_many))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidTag");

    let e = c
        .get_bucket_tagging()
        .bucket("tags")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchTagSet");
    c.put_bucket_tagging()
        .bucket("tags")
        .tagging(
            Tagging::builder()
                .tag_set(Tag::builder().key("cost").value("1").build().unwrap())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let bt = c.get_bucket_tagging().bucket("tags").send().await.unwrap();
    assert_eq!(bt.tag_set()[0].key(), "cost");
    c.delete_bucket_tagging()
        .bucket("tags")
        .send()
        .await
        .unwrap();
    let e = c
        .get_bucket_tagging()
        .bucket("tags")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchTagSet");
}

#[tokio::test]
async fn conditional_writes() {
    let (_d, s) = server();
    let c = s.client().await;
    c.create_bucket().bucket("cond").send().await.unwrap();
    let first = c
        .put_object()
        .bucket("cond")
        .key("once")
        .if_none_match("*")
        .body(ByteStream::from_static(b"first"))
        .send()
        .await
        .unwrap();
    let e = c
        .put_object()
        .bucket("cond")
        .key("once")
        .if_none_match("*")
        .body(ByteStream::from_static(b"second"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "PreconditionFailed");
    assert_eq!(body(&c, "cond", "once", None).await, b"first");
    let e = c
        .put_object()
        .bucket("cond")
        .key("once")
        .if_match("\"00000000000000000000000000000000\"")
        .body(ByteStream::from_static(b"third"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 412);
    c.put_object()
        .bucket("cond")
        .key("once")
        .if_match(first.e_tag().unwrap())
        .body(ByteStream::from_static(b"fourth"))
        .send()
        .await
        .unwrap();
    assert_eq!(body(&c, "cond", "once", None).await, b"fourth");
    // Eight writers race If-None-Match on a fresh key: exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.put_object()
                .bucket("cond")
                .key("race")
                .if_none_match("*")
                .body(ByteStream::from(vec![i; 200_000]))
                .send()
                .await
                .map_err(|e| (status(&e), code(&e)))
        }));
    }
    let mut wins = 0;
    let mut winner = None;
    for (i, t) in tasks.into_iter().enumerate() {
        match t.await.unwrap() {
            Ok(_) => {
                wins += 1;
                winner = Some(i as u8);
            }
            Err((st, code)) => assert!(
                (st == 412 && code == "PreconditionFailed")
                    || (st == 409 && code == "ConditionalRequestConflict"),
                "{st} {code}"
            ),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(
        body(&c, "cond", "race", None).await,
        vec![winner.unwrap(); 200_000]
    );
}

/// A conditional write that arrives while another write to the key is committing its
/// records (some drives have the new record, too few for a quorum) is told to retry with
/// 409 ConditionalRequestConflict, not 503 "not enough drives": every drive answered.
#[tokio::test]
async fn a_conditional_write_during_another_writes_commit_conflicts() {
    use futures::StreamExt;
    use tessera::drive::VersionRecord;
    use tessera::object::{ErasureSet, Error, PutOptions, WriteCondition};

    /// Writes the records of `rec` for the shards in `shards` under key "b".
    async fn commit(set: &ErasureSet, rec: &VersionRecord, shards: std::ops::Range<usize>) {
        let positions = rec.layout.positions();
        for shard in shards {
            let mut copy = rec.clone();
            copy.layout.shard_index = shard as u8;
            set.drives()[positions[shard]]
                .put_version("cond", "b", &copy)
                .await
                .unwrap();
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let set = common::local_set(dir.path(), 4096);
    set.create_bucket("cond", None).await.unwrap();
    let body = |b: &'static [u8]| -> tessera::object::BodyStream {
        futures::stream::iter([Ok(bytes::Bytes::from_static(b))]).boxed()
    };
    let if_none_match = || PutOptions {
        condition: Some(WriteCondition::IfNoneMatch),
        ..PutOptions::default()
    };
    let rec = set
        .put_object("cond", "a", PutOptions::default(), body(b"first"))
        .await
        .unwrap();
    // Key "b" is being written: 3 of its 6 records are on their drives.
    commit(&set, &rec, 0..3).await;
    let racing = set
        .put_object("cond", "b", if_none_match(), body(b"second"))
        .await;
    assert!(
        matches!(racing, Err(Error::ConditionalConflict)),
        "{racing:?}"
    );
    // A plain read of the key is still "not enough drives" (503, retried by SDKs).
    let read = set.open_object("cond", "b", None).await;
    assert!(matches!(read, Err(Error::InFlux(_))), "{:?}", read.err());
    // The commit completes: the key exists, so If-None-Match fails outright.
    commit(&set, &rec, 3..6).await;
    let late = set
        .put_object("cond", "b", if_none_match(), body(b"third"))
        .await;
    assert!(matches!(late, Err(Error::PreconditionFailed)), "{late:?}");
    // A key with no record anywhere is created.
    set.put_object("cond", "c", if_none_match(), body(b"fresh"))
        .await
        .unwrap();
}

#[tokio::test]
async fn object_attributes_and_virtual_host_style() {
    let (_d, s) = server();
    let c = s.client().await;
    c.create_bucket().bucket("attrs").send().await.unwrap();
    c.put_object()
        .bucket("attrs")
        .key("a/b.txt")
        .checksum_crc32("DUoRhQ==")
        .body(ByteStream::from_static(b"hello world"))
        .send()
        .await
        .unwrap();
    let a = c
        .get_object_attributes()
        .bucket("attrs")
        .key("a/b.txt")
        .object_attributes(ObjectAttributes::Etag)
        .object_attributes(ObjectAttributes::ObjectSize)
        .object_attributes(ObjectAttributes::Checksum)
        .object_attributes(ObjectAttributes::StorageClass)
        .send()
        .await
        .unwrap();
    assert_eq!(a.object_size(), Some(11));
    assert_eq!(a.e_tag(), Some("5eb63bbbe01eeed093cb22bb8f5acdc3"));
    assert_eq!(a.checksum().unwrap().checksum_crc32(), Some("DUoRhQ=="));

    // Virtual-host style: the bucket named by the Host header, the path holding only the key.
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(&s.s3_url)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            common::ACCESS_KEY,
            common::SECRET_KEY,
            None,
            None,
            "t",
        ))
        .force_path_style(true)
        .interceptor(VirtualHost)
        .build();
    let vc = aws_sdk_s3::Client::from_conf(conf);
    let got = vc
        .get_object()
        .bucket("attrs")
        .key("a/b.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(
        &got.body.collect().await.unwrap().into_bytes()[..],
        b"hello world"
    );
    let l = vc.list_objects_v2().bucket("attrs").send().await.unwrap();
    assert_eq!(l.contents()[0].key(), Some("a/b.txt"));
}

/// Rewrites a path-style request `/bucket/key` into `Host: bucket.s3.localhost`, path `/key`,
/// before it is signed: what a client with DNS for the base domain would send.
#[derive(Debug)]
struct VirtualHost;

impl aws_smithy_runtime_api::client::interceptors::Intercept for VirtualHost {
    fn name(&self) -> &'static str {
        "VirtualHost"
    }

    fn modify_before_signing(
        &self,
        context: &mut aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut<'_>,
        _rc: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        _cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let req = context.request_mut();
        let uri: http::Uri = req.uri().parse()?;
        let path = uri.path().trim_start_matches('/');
        let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
        let host = format!("{bucket}.s3.localhost:{}", uri.port_u16().unwrap_or(80));
        let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
        let new = format!("http://{}/{key}{query}", uri.authority().unwrap());
        req.set_uri(new)?;
        req.headers_mut().insert("host", host);
        Ok(())
    }
}

#[tokio::test]
async fn acls_are_owner_full_control_and_public_ones_are_refused() {
    let (_d, s) = server();
    let c = s.client().await;
    c.create_bucket().bucket("acls").send().await.unwrap();
    c.put_object()
        .bucket("acls")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    let a = c.get_bucket_acl().bucket("acls").send().await.unwrap();
    assert_eq!(a.grants().len(), 1);
    assert_eq!(
        a.grants()[0].permission().map(|p| p.as_str()),
        Some("FULL_CONTROL")
    );
    let a = c
        .get_object_acl()
        .bucket("acls")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(a.owner().unwrap().id(), Some(common::ACCESS_KEY));
    c.put_object_acl()
        .bucket("acls")
        .key("k")
        .acl(aws_sdk_s3::types::ObjectCannedAcl::Private)
        .send()
        .await
        .unwrap();
    let e = c
        .put_object_acl()
        .bucket("acls")
        .key("k")
        .acl(aws_sdk_s3::types::ObjectCannedAcl::PublicRead)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NotImplemented");
    let e = c
        .put_object()
        .bucket("acls")
        .key("public")
        .acl(aws_sdk_s3::types::ObjectCannedAcl::PublicRead)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NotImplemented");
    let e = c
        .get_object_acl()
        .bucket("acls")
        .key("missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchKey");
}

/// Every shard file of the server's six drives, per drive.
fn shards_per_drive(data: &std::path::Path) -> Vec<usize> {
    (0..6)
        .map(|i| common::shard_files(&data.join(format!("drive-{i}"))).len())
        .collect()
}

#[tokio::test]
async fn a_replaced_version_leaves_no_shard_files_and_kept_versions_keep_theirs() {
    let (dir, s) = server();
    let data = dir.path().join("data");
    let c = s.client().await;
    c.create_bucket().bucket("bkt").send().await.unwrap();
    // Larger than the inline limit, so each version has a shard file on every drive.
    let big = |seed| common::data(200 << 10, seed);
    let put_big = |seed| put(&c, "bkt", "k", big(seed));
    // Unversioned: each PUT replaces the `null` version, whose file goes before the answer.
    for seed in 0..3 {
        put_big(seed).await;
        assert_eq!(shards_per_drive(&data), vec![1; 6], "after PUT {seed}");
    }
    assert_eq!(common::get_bytes(&c, "bkt", "k").await, big(2));

    // Versioned: every version keeps its file.
    set_versioning(&c, "bkt", BucketVersioningStatus::Enabled).await;
    let v3 = put_big(3).await.unwrap();
    put_big(4).await.unwrap();
    // The `null` version from before, and the two new ones.
    assert_eq!(shards_per_drive(&data), vec![3; 6]);

    // Suspended: a PUT replaces the `null` version only.
    set_versioning(&c, "bkt", BucketVersioningStatus::Suspended).await;
    put_big(5).await;
    assert_eq!(shards_per_drive(&data), vec![3; 6]);
    assert_eq!(body(&c, "bkt", "k", Some("null")).await, big(5));
    assert_eq!(body(&c, "bkt", "k", Some(&v3)).await, big(3));
}
