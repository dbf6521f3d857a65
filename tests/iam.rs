//! Users, their policies and bucket policies against a running `tessera server`: two users
//! and anonymous requests, allowed and denied on buckets and prefixes, deny winning, presigned
//! URLs carrying their signer's rights, disabled and deleted users, and the audit log.

mod common;

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use common::cluster::{http_request, http_status};
use common::{client_with, code, TestServer};

const TOKEN: &str = "iam-test-admin-token";

/// An admin API call with the bearer token: status and JSON body.
fn admin(s: &TestServer, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    let auth = format!("Bearer {TOKEN}");
    let (status, text) = http_request(
        method,
        &format!("{}{path}", s.admin_url),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
    .expect("admin API reachable");
    (status, serde_json::from_str(&text).unwrap_or_default())
}

/// Creates a user with `policy`; returns an S3 client with its keys.
/// A server with the admin API on, over a fresh data folder.
fn server() -> (tempfile::TempDir, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_env(
        &dir.path().join("data"),
        &[],
        &[("TESSERA_ADMIN_TOKEN", TOKEN)],
    );
    (dir, s)
}

fn user(s: &TestServer, name: &str, policy: &str) -> aws_sdk_s3::Client {
    let body = format!(r#"{{"name":"{name}","policy":{policy}}}"#);
    let (status, v) = admin(s, "POST", "/admin/v1/users", &body);
    assert_eq!(status, 201, "create {name}: {v}");
    client_with(
        &s.s3_url,
        v["access_key"].as_str().unwrap(),
        v["secret_key"].as_str().unwrap(),
    )
}

async fn put(c: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<(), String> {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from_static(b"data"))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| code(&e))
}

async fn get(c: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<(), String> {
    c.get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| code(&e))
}

async fn list(c: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Result<(), String> {
    c.list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| code(&e))
}

fn denied(r: Result<(), String>) -> bool {
    r == Err("AccessDenied".to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_bucket_policies_allow_and_deny_as_written() {
    let (_dir, s) = server();
    let root = s.client().await;
    for b in ["alpha", "beta"] {
        root.create_bucket().bucket(b).send().await.unwrap();
    }
    for key in ["x", "public/a", "bob/seed"] {
        put(&root, "alpha", key).await.unwrap();
    }
    for key in ["pub/a", "pub/secret-1", "priv/a"] {
        put(&root, "beta", key).await.unwrap();
    }

    // alice: everything in alpha, nothing else.
    let alice = user(
        &s,
        "alice",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*",
            "Resource":["arn:aws:s3:::alpha","arn:aws:s3:::alpha/*"]}]}"#,
    );
    // bob: reads beta/pub/ (listing only under it), never a secret.
    let bob = user(
        &s,
        "bob",
        r#"{"Statement":[
            {"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::beta/pub/*"},
            {"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::beta",
             "Condition":{"StringLike":{"s3:prefix":"pub/*"}}},
            {"Effect":"Deny","Action":"s3:*","Resource":"arn:aws:s3:::beta/pub/secret*"}]}"#,
    );

    put(&alice, "alpha", "by-alice").await.unwrap();
    get(&alice, "alpha", "x").await.unwrap();
    list(&alice, "alpha", "").await.unwrap();
    assert!(denied(put(&alice, "beta", "x").await));
    assert!(denied(get(&alice, "beta", "pub/a").await));
    let r = alice.list_buckets().send().await.map_err(|e| code(&e));
    assert_eq!(r.err().as_deref(), Some("AccessDenied"));
    let r = alice.create_bucket().bucket("gamma").send().await;
    assert_eq!(
        r.map_err(|e| code(&e)).err().as_deref(),
        Some("AccessDenied")
    );
    // A bucket that does not exist is 404 to anyone, whatever they may do, as in S3.
    let none = Err("NoSuchBucket".to_string());
    assert_eq!(get(&alice, "gamma", "x").await, none);
    assert_eq!(put(&alice, "gamma", "x").await, none);
    assert_eq!(list(&alice, "gamma", "").await, none);

    get(&bob, "beta", "pub/a").await.unwrap();
    assert!(denied(get(&bob, "beta", "priv/a").await));
    assert!(denied(get(&bob, "beta", "pub/secret-1").await), "deny wins");
    list(&bob, "beta", "pub/").await.unwrap();
    assert!(denied(list(&bob, "beta", "").await));
    assert!(denied(list(&bob, "beta", "priv/").await));
    assert!(denied(put(&bob, "beta", "pub/new").await));
    assert!(denied(get(&bob, "alpha", "x").await));

    // DeleteObjects is checked key by key.
    let del = aws_sdk_s3::types::Delete::builder()
        .objects(
            aws_sdk_s3::types::ObjectIdentifier::builder()
                .key("by-alice")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let out = bob
        .delete_objects()
        .bucket("alpha")
        .delete(del.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(out.errors().len(), 1);
    assert_eq!(out.errors()[0].code(), Some("AccessDenied"));
    get(&root, "alpha", "by-alice").await.unwrap();
    let out = alice
        .delete_objects()
        .bucket("alpha")
        .delete(del)
        .send()
        .await
        .unwrap();
    assert_eq!((out.deleted().len(), out.errors().len()), (1, 0));

    // Presigned URLs carry their signer's rights.
    let presign = PresigningConfig::expires_in(Duration::from_secs(300)).unwrap();
    let url = alice
        .get_object()
        .bucket("alpha")
        .key("x")
        .presigned(presign.clone())
        .await
        .unwrap();
    assert_eq!(http_status(url.uri()), 200);
    let url = alice
        .get_object()
        .bucket("beta")
        .key("pub/a")
        .presigned(presign)
        .await
        .unwrap();
    assert_eq!(http_status(url.uri()), 403);

    // Anonymous: nothing, until a bucket policy opens a prefix to everyone; a bucket
    // policy can also grant a named user.
    let public = format!("{}/alpha/public/a", s.s3_url);
    let private = format!("{}/alpha/x", s.s3_url);
    assert_eq!(http_status(&public), 403);
    assert_eq!(http_status(&format!("{}/no-such-bucket/k", s.s3_url)), 404);
    let policy = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::alpha/public/*"},
        {"Effect":"Allow","Principal":{"AWS":["arn:aws:iam:::user/bob"]},"Action":"s3:PutObject","Resource":"arn:aws:s3:::alpha/bob/*"}]}"#;
    root.put_bucket_policy()
        .bucket("alpha")
        .policy(policy)
        .send()
        .await
        .unwrap();
    let got = root
        .get_bucket_policy()
        .bucket("alpha")
        .send()
        .await
        .unwrap();
    assert_eq!(got.policy(), Some(policy));
    // The policy lets everyone read: the bucket is public; beta, without a policy, has no
    // status (as S3 answers).
    let st = root
        .get_bucket_policy_status()
        .bucket("alpha")
        .send()
        .await
        .unwrap();
    assert_eq!(st.policy_status().unwrap().is_public(), Some(true));
    let e = root
        .get_bucket_policy_status()
        .bucket("beta")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchBucketPolicy");
    assert_eq!(http_status(&public), 200);
    assert_eq!(http_status(&private), 403);
    // An anonymous GET may not choose the response's headers (S3: 400 InvalidRequest), or
    // anyone could serve the object as, say, text/html; a signed one may.
    let (status, body) = http_request(
        "GET",
        &format!("{public}?response-content-type=text%2Fhtml"),
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("<Code>InvalidRequest</Code>"), "{body}");
    let signed = root
        .get_object()
        .bucket("alpha")
        .key("public/a")
        .response_content_type("text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(signed.content_type(), Some("text/html"));
    put(&bob, "alpha", "bob/mine").await.unwrap();
    assert!(denied(put(&bob, "alpha", "not-bob").await));
    // A policy that is not valid is refused whole.
    let r = root
        .put_bucket_policy()
        .bucket("alpha")
        .policy(r#"{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#)
        .send()
        .await;
    assert_eq!(
        r.map_err(|e| code(&e)).err().as_deref(),
        Some("MalformedPolicy")
    );
    // Only from addresses the policy names.
    let from_lan = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject",
        "Resource":"arn:aws:s3:::beta/*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}"#;
    root.put_bucket_policy()
        .bucket("beta")
        .policy(from_lan)
        .send()
        .await
        .unwrap();
    assert_eq!(http_status(&format!("{}/beta/pub/a", s.s3_url)), 403);
    root.delete_bucket_policy()
        .bucket("alpha")
        .send()
        .await
        .unwrap();
    assert_eq!(http_status(&public), 403);
    let r = root.get_bucket_policy().bucket("alpha").send().await;
    assert_eq!(
        r.map_err(|e| code(&e)).err().as_deref(),
        Some("NoSuchBucketPolicy")
    );

    // Disabled, enabled, deleted.
    assert_eq!(
        admin(&s, "POST", "/admin/v1/users/alice/disable", "").0,
        200
    );
    assert_eq!(
        get(&alice, "alpha", "x").await.err().as_deref(),
        Some("InvalidAccessKeyId")
    );
    assert_eq!(admin(&s, "POST", "/admin/v1/users/alice/enable", "").0, 200);
    get(&alice, "alpha", "x").await.unwrap();
    let (status, v) = admin(&s, "GET", "/admin/v1/users", "");
    assert_eq!(status, 200);
    let names: Vec<&str> = v["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    let listed = v.to_string();
    assert!(
        !listed.contains("secret_key") && !listed.contains("secret_sealed"),
        "no secret is listed: {v}"
    );
    assert_eq!(admin(&s, "DELETE", "/admin/v1/users/alice", "").0, 204);
    assert_eq!(
        get(&alice, "alpha", "x").await.err().as_deref(),
        Some("InvalidAccessKeyId")
    );
    assert_eq!(admin(&s, "DELETE", "/admin/v1/users/alice", "").0, 404);
    // Bad input to the user API.
    assert_eq!(
        admin(&s, "POST", "/admin/v1/users", r#"{"name":"bad name!"}"#).0,
        400
    );
    assert_eq!(
        admin(&s, "POST", "/admin/v1/users", r#"{"name":"bob"}"#).0,
        400,
        "duplicate"
    );
    assert_eq!(
        admin(
            &s,
            "PUT",
            "/admin/v1/users/bob/policy",
            r#"{"Statement":"x"}"#
        )
        .0,
        400
    );

    // Every denial and every admin action is in the audit log.
    let log = s.log_text();
    assert!(log.contains("access denied"), "{log}");
    assert!(
        log.contains("user=\"bob\"") || log.contains("user=bob"),
        "{log}"
    );
    assert!(log.contains("admin action"), "{log}");
}

/// Users outlive a restart: the directory is on the drives, the secrets sealed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_survive_a_restart_and_secrets_are_not_stored_in_the_clear() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut s = TestServer::start_env(&data, &[], &[("TESSERA_ADMIN_TOKEN", TOKEN)]);
    s.client()
        .await
        .create_bucket()
        .bucket("keep")
        .send()
        .await
        .unwrap();
    let body = r#"{"name":"carol","policy":{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::keep/*"}]}}"#;
    let (status, v) = admin(&s, "POST", "/admin/v1/users", body);
    assert_eq!(status, 201, "{v}");
    let (ak, sk) = (
        v["access_key"].as_str().unwrap().to_string(),
        v["secret_key"].as_str().unwrap().to_string(),
    );
    s.kill();
    // No file under the data folder holds the secret in the clear.
    let mut stack = vec![data.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                assert!(
                    !bytes.windows(sk.len()).any(|w| w == sk.as_bytes()),
                    "secret in the clear in {}",
                    p.display()
                );
            }
        }
    }
    let s = TestServer::start_env(&data, &[], &[("TESSERA_ADMIN_TOKEN", TOKEN)]);
    let carol = client_with(&s.s3_url, &ak, &sk);
    put(&carol, "keep", "k").await.unwrap();
    assert!(denied(list(&carol, "keep", "").await));
}

/// Bucket policies with conditions on the object's tags (s3-tests'
/// test_bucket_policy_get_obj_existing_tag), on the tags and canned ACL a PUT sets, and on
/// the Referer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_conditions_on_object_tags_and_request_headers() {
    let (_dir, s) = server();
    let root = s.client().await;
    root.create_bucket().bucket("tagged").send().await.unwrap();
    for (key, tags) in [
        ("open", Some("security=public")),
        ("shut", Some("security=private")),
        ("bare", None),
    ] {
        root.put_object()
            .bucket("tagged")
            .key(key)
            .set_tagging(tags.map(str::to_string))
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap();
    }
    root.put_bucket_policy()
        .bucket("tagged")
        .policy(
            r#"{"Statement":[
            {"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::tagged/*",
             "Condition":{"StringEquals":{"s3:ExistingObjectTag/security":"public"}}},
            {"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::tagged/*",
             "Condition":{"StringLike":{"aws:Referer":"https://bad.example/*"}}}]}"#,
        )
        .send()
        .await
        .unwrap();
    let url = |k: &str| format!("{}/tagged/{k}", s.s3_url);
    assert_eq!(http_status(&url("open")), 200);
    assert_eq!(http_status(&url("shut")), 403);
    assert_eq!(http_status(&url("bare")), 403);
    assert_eq!(http_status(&url("missing")), 403);
    let referred =
        |from: &str| http_request("GET", &url("open"), &[("Referer", from)], b"").map(|(st, _)| st);
    assert_eq!(referred("https://good.example/page"), Some(200));
    assert_eq!(referred("https://bad.example/page"), Some(403));

    // carol may write only with the bucket owner's ACL and her team's tag, and tag only
    // with her team's tag (the tags of PutObjectTagging's body, not of a header).
    let carol = user(
        &s,
        "carol",
        r#"{"Statement":[{"Effect":"Allow","Action":"s3:PutObject","Resource":"arn:aws:s3:::tagged/*",
            "Condition":{"StringEquals":{"s3:x-amz-acl":"bucket-owner-full-control",
                                         "s3:RequestObjectTag/team":"carol"}}},
            {"Effect":"Allow","Action":"s3:PutObjectTagging","Resource":"arn:aws:s3:::tagged/*",
             "Condition":{"StringEquals":{"s3:RequestObjectTag/team":"carol"}}}]}"#,
    );
    for (team, allowed) in [("carol", true), ("dave", false)] {
        let tagging = aws_sdk_s3::types::Tagging::builder()
            .tag_set(
                aws_sdk_s3::types::Tag::builder()
                    .key("team")
                    .value(team)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let r = carol
            .put_object_tagging()
            .bucket("tagged")
            .key("bare")
            .tagging(tagging)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| code(&e));
        assert_eq!(r.is_ok(), allowed, "tagging team={team}: {r:?}");
        if !allowed {
            assert!(denied(r));
        }
    }
    // A Deny on the object's tags holds for the version the request names: a copy from an
    // old version, and a GET of it, read that version's tags.
    root.create_bucket().bucket("vtag").send().await.unwrap();
    common::set_versioning(
        &root,
        "vtag",
        aws_sdk_s3::types::BucketVersioningStatus::Enabled,
    )
    .await;
    let mut versions = Vec::new();
    for tags in [Some("class=secret"), None] {
        let out = root
            .put_object()
            .bucket("vtag")
            .key("doc")
            .set_tagging(tags.map(str::to_string))
            .body(ByteStream::from_static(b"v"))
            .send()
            .await
            .unwrap();
        versions.push(out.version_id().unwrap().to_string());
    }
    root.put_bucket_policy()
        .bucket("vtag")
        .policy(
            r#"{"Statement":[
            {"Effect":"Allow","Principal":"*","Action":["s3:GetObject","s3:GetObjectVersion"],"Resource":"arn:aws:s3:::vtag/*"},
            {"Effect":"Allow","Principal":{"AWS":["arn:aws:iam:::user/carol"]},"Action":"s3:PutObject","Resource":"arn:aws:s3:::vtag/*"},
            {"Effect":"Deny","Principal":"*","Action":["s3:GetObject","s3:GetObjectVersion"],"Resource":"arn:aws:s3:::vtag/*",
             "Condition":{"StringEquals":{"s3:ExistingObjectTag/class":"secret"}}}]}"#,
        )
        .send()
        .await
        .unwrap();
    let doc = format!("{}/vtag/doc", s.s3_url);
    assert_eq!(http_status(&doc), 200);
    assert_eq!(
        http_status(&format!("{doc}?versionId={}", versions[0])),
        403
    );
    let copy = |source: String| {
        carol
            .copy_object()
            .bucket("vtag")
            .key("copy")
            .copy_source(source)
            .send()
    };
    let r = copy(format!("vtag/doc?versionId={}", versions[0]))
        .await
        .map(|_| ())
        .map_err(|e| code(&e));
    assert!(denied(r));
    copy("vtag/doc".to_string()).await.unwrap();

    for (acl, tags, allowed) in [
        (Some("bucket-owner-full-control"), Some("team=carol"), true),
        (None, Some("team=carol"), false),
        (Some("bucket-owner-full-control"), Some("team=dave"), false),
        (Some("bucket-owner-full-control"), None, false),
        (Some("private"), Some("team=carol&x=y"), false),
    ] {
        let r = carol
            .put_object()
            .bucket("tagged")
            .key("by-carol")
            .set_acl(acl.map(aws_sdk_s3::types::ObjectCannedAcl::from))
            .set_tagging(tags.map(str::to_string))
            .body(ByteStream::from_static(b"c"))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| code(&e));
        assert_eq!(r.is_ok(), allowed, "{acl:?} {tags:?}: {r:?}");
        if !allowed {
            assert!(denied(r), "{acl:?} {tags:?}");
        }
    }
}
