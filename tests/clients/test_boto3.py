"""boto3 against a real Tessera server, with the SDK's default checksum behaviour (CRC32 on
requests, response checksum validation): put/get/head/list (paginated over 1,234 keys),
upload_file/download_file, copy_object, delete_objects, presigned GET and PUT URLs, an expired
presigned URL.

Run alone: python tests/clients/test_boto3.py [test_name ...]
"""

import hashlib
import io
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

MIB = 1 << 20


def client(srv, **config):
    return harness.boto3_client(srv, **config)


def make_bucket(c, name):
    from botocore.exceptions import ClientError

    try:
        c.create_bucket(Bucket=name)
    except ClientError as e:
        if e.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
            raise


def error_of(fn, *args, **kwargs):
    """Calls fn, which must fail with a ClientError; returns (HTTP status, S3 error code)."""
    from botocore.exceptions import ClientError

    try:
        fn(*args, **kwargs)
    except ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]
    raise AssertionError(f"{getattr(fn, '__name__', fn)} succeeded; an error was expected")


def all_keys(c, bucket, **kw):
    keys = []
    for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket, **kw):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


# --- tests -------------------------------------------------------------------------------------

def test_put_get_head(srv):
    c = client(srv)
    make_bucket(c, "b3-basic")
    body = os.urandom(300_001)
    r = c.put_object(
        Bucket="b3-basic", Key="dir/obj 1+ü.bin", Body=body,
        ContentType="application/x-test", Metadata={"colour": "blue", "n": "1"},
        CacheControl="no-cache",
    )
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert r["ETag"] == f'"{hashlib.md5(body).hexdigest()}"', r["ETag"]
    # The SDK sent a CRC32 checksum (its default); the server checked it and echoes it.
    assert r.get("ChecksumCRC32") == harness.crc32_b64(body), r

    g = c.get_object(Bucket="b3-basic", Key="dir/obj 1+ü.bin")
    assert g["Body"].read() == body
    assert g["ContentLength"] == len(body)
    assert g["ContentType"] == "application/x-test"
    assert g["Metadata"] == {"colour": "blue", "n": "1"}, g["Metadata"]
    assert g["CacheControl"] == "no-cache"
    assert g["ETag"] == r["ETag"]

    # With checksum mode on, botocore validates the response against the stored CRC32.
    g = c.get_object(Bucket="b3-basic", Key="dir/obj 1+ü.bin", ChecksumMode="ENABLED")
    assert g["Body"].read() == body
    assert g.get("ChecksumCRC32") == harness.crc32_b64(body), g

    h = c.head_object(Bucket="b3-basic", Key="dir/obj 1+ü.bin")
    assert h["ContentLength"] == len(body)
    assert h["ETag"] == r["ETag"]
    assert h["Metadata"] == {"colour": "blue", "n": "1"}

    # Ranges.
    g = c.get_object(Bucket="b3-basic", Key="dir/obj 1+ü.bin", Range="bytes=1000-1999")
    assert g["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert g["Body"].read() == body[1000:2000]
    assert g["ContentRange"] == f"bytes 1000-1999/{len(body)}"
    g = c.get_object(Bucket="b3-basic", Key="dir/obj 1+ü.bin", Range="bytes=-10")
    assert g["Body"].read() == body[-10:]

    # Empty object, from bytes and from a file object.
    c.put_object(Bucket="b3-basic", Key="empty", Body=b"")
    assert c.get_object(Bucket="b3-basic", Key="empty")["Body"].read() == b""
    c.put_object(Bucket="b3-basic", Key="empty2", Body=io.BytesIO(b""))
    c.put_object(Bucket="b3-basic", Key="after-empty", Body=io.BytesIO(b"abc"))
    assert c.get_object(Bucket="b3-basic", Key="after-empty")["Body"].read() == b"abc"

    # Missing key / bucket.
    assert error_of(c.get_object, Bucket="b3-basic", Key="nope") == (404, "NoSuchKey")
    assert error_of(c.head_object, Bucket="b3-basic", Key="nope")[0] == 404
    assert error_of(c.get_object, Bucket="no-such-bucket", Key="x") == (404, "NoSuchBucket")


# 1,234 keys whose byte order differs from locale or case-insensitive order.
def many_keys():
    prefixes = ["a/", "B/", "b/", "z", "Z", "é/", "e/", "~", "-", "_", "0", "日本/", "a b/",
                "a+b/", "a%b/", "ab", "a.b/", "A"]
    keys = set()
    i = 0
    while len(keys) < 1234:
        p = prefixes[i % len(prefixes)]
        keys.add(f"{p}{i:04d}" if i % 3 else f"{p}k{i}/x{i % 7}")
        i += 1
    return sorted(keys, key=lambda k: k.encode("utf-8"))


def test_list_objects_v2_paginator(srv):
    c = client(srv, max_pool_connections=8)
    make_bucket(c, "b3-list")
    keys = many_keys()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: c.put_object(Bucket="b3-list", Key=k, Body=k.encode()), keys))

    pages = list(c.get_paginator("list_objects_v2").paginate(
        Bucket="b3-list", PaginationConfig={"PageSize": 100}))
    got = []
    for i, page in enumerate(pages):
        contents = page.get("Contents", [])
        assert len(contents) <= 100, len(contents)
        assert page["KeyCount"] == len(contents), page["KeyCount"]
        assert page["IsTruncated"] == (i < len(pages) - 1), (i, page["IsTruncated"])
        got += [o["Key"] for o in contents]
        for o in contents:
            assert o["Size"] == len(o["Key"].encode()), o
    assert len(pages) == 13, len(pages)
    assert len(got) == len(set(got)) == 1234, (len(got), len(set(got)))
    assert got == keys, "keys not returned once each, in byte order"

    # Delimiter + paging: each prefix group once.
    prefixes, top = [], []
    for page in c.get_paginator("list_objects_v2").paginate(
            Bucket="b3-list", Delimiter="/", PaginationConfig={"PageSize": 7}):
        prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        top += [o["Key"] for o in page.get("Contents", [])]
    want_prefixes = sorted({k.split("/", 1)[0] + "/" for k in keys if "/" in k},
                           key=lambda k: k.encode())
    assert prefixes == want_prefixes, (prefixes, want_prefixes)
    assert top == [k for k in keys if "/" not in k]

    # Prefix + StartAfter.
    assert all_keys(c, "b3-list", Prefix="a+b/") == [k for k in keys if k.startswith("a+b/")]
    after = keys[600]
    assert all_keys(c, "b3-list", StartAfter=after) == keys[601:]

    # ListObjects v1 with markers agrees.
    got_v1 = []
    for page in c.get_paginator("list_objects").paginate(
            Bucket="b3-list", PaginationConfig={"PageSize": 250}):
        got_v1 += [o["Key"] for o in page.get("Contents", [])]
    assert got_v1 == keys


def test_upload_download_file(srv):
    from boto3.s3.transfer import TransferConfig

    c = client(srv)
    make_bucket(c, "b3-files")
    d = srv.scratch("b3-files")
    src = d / "twenty.bin"
    want = harness.write_random_file(src, 20 * MIB)
    # Below the threshold: one PUT.
    single = TransferConfig(multipart_threshold=64 * MIB)
    c.upload_file(str(src), "b3-files", "big/twenty.bin", Config=single)
    h = c.head_object(Bucket="b3-files", Key="big/twenty.bin")
    assert h["ContentLength"] == 20 * MIB

    dst = d / "back.bin"
    c.download_file("b3-files", "big/twenty.bin", str(dst), Config=single)
    assert harness.sha256_file(dst) == want

    # A download above the threshold is done as concurrent ranged GETs.
    ranged = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB,
                            max_concurrency=4)
    dst2 = d / "back-ranged.bin"
    c.download_file("b3-files", "big/twenty.bin", str(dst2), Config=ranged)
    assert harness.sha256_file(dst2) == want

    # upload_fileobj / download_fileobj.
    data = os.urandom(1_000_003)
    c.upload_fileobj(io.BytesIO(data), "b3-files", "obj", Config=single)
    out = io.BytesIO()
    c.download_fileobj("b3-files", "obj", out)
    assert out.getvalue() == data


def test_concurrent_multipart_upload_file(srv):
    from boto3.s3.transfer import TransferConfig

    c = client(srv)
    make_bucket(c, "b3-multipart")
    d = srv.scratch("b3-multipart")
    src = d / "sixty.bin"
    want = harness.write_random_file(src, 60 * MIB + 12345)
    parts = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB,
                           max_concurrency=8)
    c.upload_file(str(src), "b3-multipart", "sixty.bin", Config=parts)
    h = c.head_object(Bucket="b3-multipart", Key="sixty.bin")
    assert h["ContentLength"] == 60 * MIB + 12345
    assert h["ETag"].endswith('-13"'), h["ETag"]
    dst = d / "back.bin"
    c.download_file("b3-multipart", "sixty.bin", str(dst), Config=parts)
    assert harness.sha256_file(dst) == want
    assert c.list_multipart_uploads(Bucket="b3-multipart").get("Uploads", []) == []


def test_versioned_bucket_life(srv):
    c = client(srv)
    make_bucket(c, "b3-versions")
    c.put_bucket_versioning(Bucket="b3-versions",
                            VersioningConfiguration={"Status": "Enabled"})
    v1 = c.put_object(Bucket="b3-versions", Key="k", Body=b"one")["VersionId"]
    v2 = c.put_object(Bucket="b3-versions", Key="k", Body=b"two")["VersionId"]
    assert c.get_object(Bucket="b3-versions", Key="k")["Body"].read() == b"two"
    d = c.delete_object(Bucket="b3-versions", Key="k")
    assert d["DeleteMarker"] is True
    assert error_of(c.get_object, Bucket="b3-versions", Key="k")[0] == 404
    vs = c.list_object_versions(Bucket="b3-versions")
    assert [v["VersionId"] for v in vs["Versions"]] == [v2, v1]
    assert vs["DeleteMarkers"][0]["IsLatest"] is True
    # Restore the first version by copying it over the top.
    c.copy_object(Bucket="b3-versions", Key="k",
                  CopySource={"Bucket": "b3-versions", "Key": "k", "VersionId": v1})
    assert c.get_object(Bucket="b3-versions", Key="k")["Body"].read() == b"one"
    assert c.get_object(Bucket="b3-versions", Key="k", VersionId=v2)["Body"].read() == b"two"
    # Clean up every version and marker; then the bucket can go.
    vs = c.list_object_versions(Bucket="b3-versions")
    objs = [{"Key": v["Key"], "VersionId": v["VersionId"]}
            for v in vs.get("Versions", []) + vs.get("DeleteMarkers", [])]
    out = c.delete_objects(Bucket="b3-versions", Delete={"Objects": objs})
    assert len(out["Deleted"]) == len(objs) and not out.get("Errors")
    c.delete_bucket(Bucket="b3-versions")


def test_copy_object(srv):
    c = client(srv)
    make_bucket(c, "b3-copy")
    make_bucket(c, "b3-copy-dst")
    body = os.urandom(70_000)
    src_key = "src dir/a+b é.bin"
    c.put_object(Bucket="b3-copy", Key=src_key, Body=body, Metadata={"k": "v"},
                 ContentType="image/png")

    r = c.copy_object(Bucket="b3-copy-dst", Key="copy 1",
                      CopySource={"Bucket": "b3-copy", "Key": src_key})
    assert r["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(body).hexdigest()}"', r
    g = c.get_object(Bucket="b3-copy-dst", Key="copy 1")
    assert g["Body"].read() == body
    assert g["Metadata"] == {"k": "v"} and g["ContentType"] == "image/png", g

    # REPLACE takes the new metadata.
    c.copy_object(Bucket="b3-copy", Key="copy 2", CopySource=f"b3-copy/{src_key}",
                  MetadataDirective="REPLACE", Metadata={"new": "yes"},
                  ContentType="text/plain")
    h = c.head_object(Bucket="b3-copy", Key="copy 2")
    assert h["Metadata"] == {"new": "yes"} and h["ContentType"] == "text/plain", h
    assert c.get_object(Bucket="b3-copy", Key="copy 2")["Body"].read() == body

    # Copying onto itself without changing anything is refused, as S3 does.
    status, code = error_of(c.copy_object, Bucket="b3-copy", Key=src_key,
                            CopySource={"Bucket": "b3-copy", "Key": src_key})
    assert (status, code) == (400, "InvalidRequest"), (status, code)
    # Missing source.
    status, code = error_of(c.copy_object, Bucket="b3-copy", Key="x",
                            CopySource={"Bucket": "b3-copy", "Key": "missing"})
    assert (status, code) == (404, "NoSuchKey"), (status, code)


def test_delete_objects(srv):
    c = client(srv)
    make_bucket(c, "b3-del")
    keys = [f"d/{i} +é" for i in range(10)] + ["keep"]
    for k in keys:
        c.put_object(Bucket="b3-del", Key=k, Body=b"x")
    r = c.delete_objects(Bucket="b3-del", Delete={
        "Objects": [{"Key": k} for k in keys[:10]] + [{"Key": "never-existed"}]})
    deleted = sorted(o["Key"] for o in r.get("Deleted", []))
    assert deleted == sorted(keys[:10] + ["never-existed"]), r
    assert not r.get("Errors"), r["Errors"]
    assert all_keys(c, "b3-del") == ["keep"]
    # Quiet mode reports nothing on success.
    r = c.delete_objects(Bucket="b3-del", Delete={"Objects": [{"Key": "keep"}], "Quiet": True})
    assert not r.get("Deleted") and not r.get("Errors"), r
    assert all_keys(c, "b3-del") == []
    c.delete_bucket(Bucket="b3-del")
    assert error_of(c.head_bucket, Bucket="b3-del")[0] == 404


def test_presigned_get_put(srv):
    c = client(srv, signature_version="s3v4")
    make_bucket(c, "b3-presign")
    body = os.urandom(50_000)
    key = "p/a file+é%.bin"
    c.put_object(Bucket="b3-presign", Key=key, Body=body)

    url = c.generate_presigned_url("get_object", Params={"Bucket": "b3-presign", "Key": key},
                                   ExpiresIn=300)
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url, url
    status, _, got = harness.urlopen(url)
    assert status == 200, (status, got[:300])
    assert got == body
    # response-content-type override through a signed query parameter.
    url = c.generate_presigned_url(
        "get_object", ExpiresIn=300,
        Params={"Bucket": "b3-presign", "Key": key, "ResponseContentType": "text/x-over"})
    status, headers, got = harness.urlopen(url)
    assert status == 200 and got == body
    assert headers.get("Content-Type") == "text/x-over", dict(headers)

    put_body = os.urandom(33_333)
    url = c.generate_presigned_url("put_object",
                                   Params={"Bucket": "b3-presign", "Key": "uploaded/x y"},
                                   ExpiresIn=300)
    status, _, got = harness.urlopen(url, method="PUT", data=put_body)
    assert status == 200, (status, got[:300])
    assert c.get_object(Bucket="b3-presign", Key="uploaded/x y")["Body"].read() == put_body

    # A presigned PUT URL is not a GET URL.
    status, _, got = harness.urlopen(url)
    assert status == 403 and harness.error_code(got) == "SignatureDoesNotMatch", (status, got)


def test_presigned_expired(srv):
    c = client(srv, signature_version="s3v4")
    make_bucket(c, "b3-expire")
    c.put_object(Bucket="b3-expire", Key="k", Body=b"secret")
    url = c.generate_presigned_url("get_object", Params={"Bucket": "b3-expire", "Key": "k"},
                                   ExpiresIn=1)
    time.sleep(2)
    status, _, got = harness.urlopen(url)
    assert status == 403, (status, got[:300])
    assert harness.error_code(got) == "AccessDenied", got
    assert b"secret" not in got

    put_url = c.generate_presigned_url("put_object",
                                       Params={"Bucket": "b3-expire", "Key": "late"},
                                       ExpiresIn=1)
    time.sleep(2)
    status, _, got = harness.urlopen(put_url, method="PUT", data=b"too late")
    assert status == 403 and harness.error_code(got) == "AccessDenied", (status, got)
    assert error_of(c.head_object, Bucket="b3-expire", Key="late")[0] == 404


if __name__ == "__main__":
    sys.exit(harness.run_module(globals()))
