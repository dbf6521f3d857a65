"""Bad input, byte for byte: raw requests signed with botocore's S3SigV4Auth and sent with
http.client, so the test controls every header and body byte. Each case checks the HTTP status
and the S3 error code of the XML body, and then that nothing was stored.

Run alone: python tests/clients/test_bad_input.py [test_name ...]
"""

import base64
import datetime
import hashlib
import http.client
import os
import socket
import sys
import time
import zlib
from unittest import mock
from urllib.parse import quote

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402

BUCKET = "raw-input"
TIMEOUT = 30


# --- raw signed requests -----------------------------------------------------------------------

class Response:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    @property
    def code(self):
        return harness.error_code(self.body)

    def __repr__(self):
        return f"<{self.status} {self.body[:400]!r}>"


def _signer(access_key, secret_key, payload_hash, region=harness.REGION):
    from botocore.auth import S3SigV4Auth
    from botocore.credentials import Credentials

    class Signer(S3SigV4Auth):
        def payload(self, request):
            if payload_hash is not None:
                return payload_hash
            return super().payload(request)

    return Signer(Credentials(access_key, secret_key), "s3", region)


def sign(srv, method, path, query="", headers=None, body=b"", *, access_key=None,
         secret_key=None, when=None, payload_hash=None, region=harness.REGION):
    """Signs a request the way an SDK does and returns (target, headers). `path` is sent as
    given (already percent-encoded); `payload_hash` overrides x-amz-content-sha256 (default:
    the SHA-256 of `body`); `when` (a datetime) overrides the signing time."""
    from botocore.awsrequest import AWSRequest

    target = path + (f"?{query}" if query else "")
    hdrs = {"Host": srv.host_port}
    hdrs.update(headers or {})
    req = AWSRequest(method=method, url=srv.s3_url + target, data=body, headers=hdrs)
    signer = _signer(access_key or harness.ACCESS_KEY, secret_key or harness.SECRET_KEY,
                     payload_hash, region)
    if when is not None:
        with mock.patch("botocore.auth.get_current_datetime", return_value=when):
            signer.add_auth(req)
    else:
        signer.add_auth(req)
    return target, dict(req.headers.items())


def send(srv, method, target, headers, body=b"", *, close_after_body=False):
    """Sends exactly these headers and body on a new connection and reads the response.
    With close_after_body, half-closes the connection after the body (the server sees EOF)."""
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=TIMEOUT)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders()
        if body:
            conn.send(body)
        if close_after_body:
            conn.sock.shutdown(socket.SHUT_WR)
        r = conn.getresponse()
        return Response(r.status, r.headers, r.read())
    finally:
        conn.close()


def request(srv, method, path, query="", headers=None, body=b"", **sign_kw):
    """Signs and sends; the body sent is the body signed."""
    headers = dict(headers or {})
    if method in ("PUT", "POST") or body:
        headers.setdefault("Content-Length", str(len(body)))
    target, hdrs = sign(srv, method, path, query, headers, body, **sign_kw)
    return send(srv, method, target, hdrs, body)


def key_path(key, bucket=BUCKET):
    return f"/{bucket}/" + quote(key, safe="/~")


def put(srv, key, body, headers=None, **kw):
    return request(srv, "PUT", key_path(key), headers=headers, body=body, **kw)


def head(srv, key):
    return request(srv, "HEAD", key_path(key))


def get(srv, key, headers=None):
    return request(srv, "GET", key_path(key), headers=headers)


def list_keys(srv, bucket=BUCKET):
    import xml.etree.ElementTree as ET

    r = request(srv, "GET", f"/{bucket}", "list-type=2")
    assert r.status == 200, r
    root = ET.fromstring(r.body)
    return sorted(el.text for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Key")


def list_buckets(srv):
    import xml.etree.ElementTree as ET

    r = request(srv, "GET", "/")
    assert r.status == 200, r
    root = ET.fromstring(r.body)
    return sorted(el.text for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Name")


def ensure_bucket(srv):
    r = request(srv, "PUT", f"/{BUCKET}")
    assert r.status == 200 or r.code == "BucketAlreadyOwnedByYou", r


def expect_error(r, status, code):
    assert (r.status, r.code) == (status, code), f"want {status} {code}, got {r}"


def assert_not_stored(srv, key):
    r = head(srv, key)
    assert r.status == 404, f"{key!r} was stored: HEAD gave {r.status}"
    assert key not in list_keys(srv), f"{key!r} is listed"


def md5_b64(data):
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def assert_alive(srv):
    assert srv.alive(), f"server died (exit code {srv.proc.returncode})"
    r = request(srv, "GET", "/")
    assert r.status == 200, f"server does not answer after the bad request: {r}"


# --- tests -------------------------------------------------------------------------------------

def test_control_good_put(srv):
    """The helpers themselves: a correctly signed PUT is stored and read back."""
    ensure_bucket(srv)
    body = b"good body"
    r = put(srv, "good", body, headers={"Content-MD5": md5_b64(body),
                                        "x-amz-checksum-crc32": harness.crc32_b64(body)})
    assert r.status == 200, r
    r = get(srv, "good")
    assert r.status == 200 and r.body == body, r
    # Unsigned payload is accepted too.
    r = put(srv, "good-unsigned", body, payload_hash="UNSIGNED-PAYLOAD")
    assert r.status == 200, r
    assert get(srv, "good-unsigned").body == body


def test_bad_signature(srv):
    ensure_bucket(srv)
    r = put(srv, "bad-sig", b"data", secret_key=harness.SECRET_KEY[:-1] + "X")
    expect_error(r, 403, "SignatureDoesNotMatch")
    # A signature tampered with after signing.
    target, hdrs = sign(srv, "PUT", key_path("bad-sig"), body=b"data",
                        headers={"Content-Length": "4"})
    sig = hdrs["Authorization"]
    hdrs["Authorization"] = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    expect_error(send(srv, "PUT", target, hdrs, b"data"), 403, "SignatureDoesNotMatch")
    # A signed header changed after signing.
    target, hdrs = sign(srv, "PUT", key_path("bad-sig"), body=b"data",
                        headers={"Content-Length": "4", "x-amz-meta-a": "1"})
    hdrs["x-amz-meta-a"] = "2"
    expect_error(send(srv, "PUT", target, hdrs, b"data"), 403, "SignatureDoesNotMatch")
    assert_not_stored(srv, "bad-sig")


def test_unknown_access_key(srv):
    ensure_bucket(srv)
    r = put(srv, "unknown-key", b"data", access_key="AKIDONOTEXIST0000000")
    expect_error(r, 403, "InvalidAccessKeyId")
    assert_not_stored(srv, "unknown-key")


def test_request_time_too_skewed(srv):
    ensure_bucket(srv)
    old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=20)
    r = put(srv, "skewed", b"data", when=old.replace(tzinfo=None))
    expect_error(r, 403, "RequestTimeTooSkewed")
    future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=20)
    r = put(srv, "skewed", b"data", when=future.replace(tzinfo=None))
    expect_error(r, 403, "RequestTimeTooSkewed")
    assert_not_stored(srv, "skewed")


def test_wrong_content_md5(srv):
    ensure_bucket(srv)
    r = put(srv, "bad-md5", b"the real body", headers={"Content-MD5": md5_b64(b"another body")})
    expect_error(r, 400, "BadDigest")
    assert_not_stored(srv, "bad-md5")


def test_malformed_content_md5(srv):
    ensure_bucket(srv)
    for bad in ["not base64!!", base64.b64encode(b"0123456789").decode(), ""]:
        r = put(srv, "malformed-md5", b"body", headers={"Content-MD5": bad})
        expect_error(r, 400, "InvalidDigest")
    assert_not_stored(srv, "malformed-md5")


def test_wrong_checksum_crc32(srv):
    ensure_bucket(srv)
    body = b"checksummed body"
    r = put(srv, "bad-crc", body, headers={
        "x-amz-checksum-crc32": harness.crc32_b64(b"other bytes"),
        "x-amz-sdk-checksum-algorithm": "CRC32"})
    expect_error(r, 400, "BadDigest")
    assert_not_stored(srv, "bad-crc")


def test_content_sha256_mismatch(srv):
    ensure_bucket(srv)
    signed = b"A" * 1000
    sent = b"B" * 1000
    target, hdrs = sign(srv, "PUT", key_path("sha-mismatch"), body=signed,
                        headers={"Content-Length": str(len(signed))})
    assert hdrs["X-Amz-Content-SHA256"] == hashlib.sha256(signed).hexdigest()
    r = send(srv, "PUT", target, hdrs, sent)
    expect_error(r, 400, "XAmzContentSHA256Mismatch")
    assert_not_stored(srv, "sha-mismatch")


def test_body_shorter_than_content_length(srv):
    ensure_bucket(srv)
    body = os.urandom(1000)
    # Signed with UNSIGNED-PAYLOAD so the only thing wrong is the length.
    target, hdrs = sign(srv, "PUT", key_path("short-body"), body=b"",
                        headers={"Content-Length": str(len(body))},
                        payload_hash="UNSIGNED-PAYLOAD")
    sock = socket.create_connection((srv.host, srv.port), timeout=TIMEOUT)
    try:
        head_bytes = f"PUT {target} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
        sock.sendall(head_bytes.encode() + body[:400])
        time.sleep(0.2)
        sock.shutdown(socket.SHUT_WR)
        # The server may answer (400 IncompleteBody) or just close; either way it must not
        # store anything or crash. Drain what it sends.
        sock.settimeout(10)
        answer = b""
        try:
            while True:
                piece = sock.recv(65536)
                if not piece:
                    break
                answer += piece
        except (socket.timeout, ConnectionResetError):
            pass
    finally:
        sock.close()
    if answer:
        status = int(answer.split(b" ", 2)[1])
        code = harness.error_code(answer.split(b"\r\n\r\n", 1)[-1])
        assert (status, code) == (400, "IncompleteBody"), answer[:500]
    time.sleep(0.3)
    assert_alive(srv)
    assert_not_stored(srv, "short-body")
    # Same with a signed payload hash, and an abrupt close (RST) mid-body.
    target, hdrs = sign(srv, "PUT", key_path("short-body"), body=body,
                        headers={"Content-Length": str(len(body))})
    sock = socket.create_connection((srv.host, srv.port), timeout=TIMEOUT)
    head_bytes = f"PUT {target} HTTP/1.1\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
    sock.sendall(head_bytes.encode() + body[:10])
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()
    time.sleep(0.3)
    assert_alive(srv)
    assert_not_stored(srv, "short-body")


def test_malformed_delete_xml(srv):
    ensure_bucket(srv)
    assert put(srv, "sentinel", b"keep me").status == 200
    before = list_keys(srv)
    for bad in [b"<Delete><Object><Key>sentinel</Key></Object>",  # unterminated
                b"this is not xml",
                b"<Delete></Delete>"]:  # no objects
        r = request(srv, "POST", f"/{BUCKET}", "delete", body=bad,
                    headers={"Content-MD5": md5_b64(bad), "Content-Type": "application/xml"})
        expect_error(r, 400, "MalformedXML")
    assert list_keys(srv) == before
    assert get(srv, "sentinel").body == b"keep me"


def test_oversized_xml_bodies(srv):
    """Every XML body has a limit: a 3 MiB DeleteObjects, a 5 MiB CompleteMultipartUpload and a
    100 KiB tagging document are refused, and change nothing."""
    ensure_bucket(srv)
    assert put(srv, "sentinel", b"keep me").status == 200
    before = list_keys(srv)
    one = b"<Object><Key>sentinel</Key></Object>"
    huge = b"<Delete>" + one * (3 * 1024 * 1024 // len(one)) + b"</Delete>"
    r = request(srv, "POST", f"/{BUCKET}", "delete", body=huge,
                headers={"Content-MD5": md5_b64(huge), "Content-Type": "application/xml"})
    expect_error(r, 400, "MaxMessageLengthExceeded")
    part = b"<Part><PartNumber>1</PartNumber><ETag>\"x\"</ETag></Part>"
    complete = b"<CompleteMultipartUpload>" + part * (5 * 1024 * 1024 // len(part)) + \
        b"</CompleteMultipartUpload>"
    r = request(srv, "POST", f"/{BUCKET}/sentinel", "uploadId=00000000000000000000000000000000",
                body=complete, headers={"Content-Type": "application/xml"})
    expect_error(r, 400, "MaxMessageLengthExceeded")
    tag = b"<Tag><Key>k</Key><Value>v</Value></Tag>"
    tagging = b"<Tagging><TagSet>" + tag * (100 * 1024 // len(tag)) + b"</TagSet></Tagging>"
    r = request(srv, "PUT", f"/{BUCKET}/sentinel", "tagging", body=tagging,
                headers={"Content-MD5": md5_b64(tagging), "Content-Type": "application/xml"})
    expect_error(r, 400, "MaxMessageLengthExceeded")
    assert list_keys(srv) == before
    assert get(srv, "sentinel").body == b"keep me"


def test_invalid_bucket_name(srv):
    before = list_buckets(srv)
    for bad in ["ab", "Upper-Case", "under_score", "-dash-first", "a" * 64, "192.168.1.1",
                "dots..twice"]:
        r = request(srv, "PUT", f"/{bad}")
        expect_error(r, 400, "InvalidBucketName")
    assert list_buckets(srv) == before


def test_bucket_errors_name_the_bucket_and_the_location(srv):
    """NoSuchBucket names the bucket in BucketName; a location constraint that is no region
    is InvalidLocationConstraint (a real one other than the server's region is
    IllegalLocationConstraintException); nothing is created."""
    r = request(srv, "GET", "/no-such-bucket-here", "list-type=2")
    expect_error(r, 404, "NoSuchBucket")
    assert b"<BucketName>no-such-bucket-here</BucketName>" in r.body, r
    for loc, code in [("coco", "InvalidLocationConstraint"),
                      ("eu-west-1", "IllegalLocationConstraintException")]:
        body = ("<CreateBucketConfiguration><LocationConstraint>" + loc +
                "</LocationConstraint></CreateBucketConfiguration>").encode()
        r = request(srv, "PUT", "/located-bucket", body=body)
        expect_error(r, 400, code)
    assert "located-bucket" not in list_buckets(srv)


def test_key_too_long(srv):
    ensure_bucket(srv)
    before = list_keys(srv)
    long_key = "k" * 1025
    r = put(srv, long_key, b"data")
    expect_error(r, 400, "KeyTooLongError")
    # 1025 bytes made of multi-byte characters (513 x 'é' = 1026 bytes) too.
    r = put(srv, "é" * 513, b"data")
    expect_error(r, 400, "KeyTooLongError")
    assert list_keys(srv) == before
    # 1024 bytes is the limit and is fine.
    ok_key = "k" * 1024
    assert put(srv, ok_key, b"data").status == 200
    assert get(srv, ok_key).body == b"data"
    assert request(srv, "DELETE", key_path(ok_key)).status == 204


def test_range_beyond_end(srv):
    ensure_bucket(srv)
    body = bytes(range(100))
    assert put(srv, "ranged", body).status == 200
    for rng in ["bytes=100-200", "bytes=1000-", "bytes=100-"]:
        r = get(srv, "ranged", headers={"Range": rng})
        expect_error(r, 416, "InvalidRange")
    # A range that starts inside and ends beyond is clipped, not refused.
    r = get(srv, "ranged", headers={"Range": "bytes=90-1000"})
    assert r.status == 206 and r.body == body[90:], r
    assert get(srv, "ranged").body == body  # object intact


def test_content_length_too_large(srv):
    ensure_bucket(srv)
    six_gib = 6 << 30
    target, hdrs = sign(srv, "PUT", key_path("too-large"), body=b"",
                        headers={"Content-Length": str(six_gib)},
                        payload_hash="UNSIGNED-PAYLOAD")
    # Only the headers are sent: the server must refuse from the declared length.
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=TIMEOUT)
    try:
        conn.putrequest("PUT", target, skip_host=True, skip_accept_encoding=True)
        for k, v in hdrs.items():
            conn.putheader(k, v)
        conn.endheaders()
        conn.send(b"tiny")
        resp = conn.getresponse()
        r = Response(resp.status, resp.headers, resp.read())
    finally:
        conn.close()
    expect_error(r, 400, "EntityTooLarge")
    assert_alive(srv)
    assert_not_stored(srv, "too-large")


def test_method_not_allowed(srv):
    ensure_bucket(srv)
    r = request(srv, "PATCH", key_path("patched"), body=b"x")
    expect_error(r, 405, "MethodNotAllowed")
    assert_not_stored(srv, "patched")


def test_put_without_content_length(srv):
    """A PUT or UploadPart that declares no length (no Content-Length, no
    x-amz-decoded-content-length) is 411 MissingContentLength, as S3 answers, not an empty
    object."""
    ensure_bucket(srv)
    target, hdrs = sign(srv, "PUT", key_path("no-length"), body=b"")
    hdrs = {k: v for k, v in hdrs.items() if k.lower() != "content-length"}
    r = send(srv, "PUT", target, hdrs)
    expect_error(r, 411, "MissingContentLength")
    # A chunked transfer that is not aws-chunked is held to no decoded length: it too must
    # declare its Content-Length, or it could run on unbounded.
    target, hdrs = sign(srv, "PUT", key_path("no-length"), body=b"",
                        headers={"x-amz-decoded-content-length": "1"},
                        payload_hash="UNSIGNED-PAYLOAD")
    hdrs = {k: v for k, v in hdrs.items() if k.lower() != "content-length"}
    hdrs["Transfer-Encoding"] = "chunked"
    r = send(srv, "PUT", target, hdrs, b"5\r\nhello\r\n0\r\n\r\n")
    expect_error(r, 411, "MissingContentLength")
    assert_alive(srv)
    assert_not_stored(srv, "no-length")


def test_delete_objects_needs_an_integrity_header(srv):
    """DeleteObjects without Content-MD5 or an x-amz-checksum-* header is refused (S3 requires
    one), and deletes nothing; with a checksum header instead of Content-MD5 it works."""
    ensure_bucket(srv)
    assert put(srv, "kept", b"still here").status == 200
    body = b"<Delete><Object><Key>kept</Key></Object></Delete>"
    r = request(srv, "POST", f"/{BUCKET}", "delete", body=body,
                headers={"Content-Type": "application/xml"})
    expect_error(r, 400, "InvalidRequest")
    assert get(srv, "kept").body == b"still here"
    crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    r = request(srv, "POST", f"/{BUCKET}", "delete", body=body,
                headers={"Content-Type": "application/xml", "x-amz-checksum-crc32": crc})
    assert r.status == 200, r
    assert_not_stored(srv, "kept")


def test_non_ascii_metadata_is_kept(srv):
    """User metadata beyond ASCII (sent as UTF-8 bytes) is stored whole, not dropped, and
    comes back RFC 2047-encoded, as S3 returns it."""
    ensure_bucket(srv)
    value = "Hello World \u00e9\u00e8 \u6f22"
    target, hdrs = sign(srv, "PUT", key_path("meta"), body=b"x",
                        headers={"Content-Length": "1", "x-amz-meta-text": value,
                                 "x-amz-meta-plain": "ascii only"})
    hdrs["x-amz-meta-text"] = value.encode()  # the signature covers these UTF-8 bytes
    r = send(srv, "PUT", target, hdrs, b"x")
    assert r.status == 200, r
    r = head(srv, "meta")
    assert r.status == 200, r
    want = "=?UTF-8?B?" + base64.b64encode(value.encode()).decode() + "?="
    assert r.headers["x-amz-meta-text"] == want, r.headers
    assert r.headers["x-amz-meta-plain"] == "ascii only", r.headers


def test_anonymous_request(srv):
    ensure_bucket(srv)
    hdrs = {"Host": srv.host_port}
    r = send(srv, "GET", f"/{BUCKET}?list-type=2", hdrs)
    expect_error(r, 403, "AccessDenied")
    r = send(srv, "GET", "/", hdrs)
    expect_error(r, 403, "AccessDenied")
    r = send(srv, "PUT", key_path("anon"), dict(hdrs, **{"Content-Length": "4"}), b"data")
    expect_error(r, 403, "AccessDenied")
    assert_not_stored(srv, "anon")


def aws_chunked(data, trailer_value, chunk=64 * 1024):
    """An aws-chunked body (STREAMING-UNSIGNED-PAYLOAD-TRAILER) with an
    x-amz-checksum-crc32 trailer, as the SDKs frame it."""
    out = bytearray()
    for i in range(0, len(data), chunk):
        piece = data[i:i + chunk]
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    out += b"0\r\n"
    out += f"x-amz-checksum-crc32:{trailer_value}\r\n".encode()
    out += b"\r\n"
    return bytes(out)


def chunked_put(srv, key, data, trailer_value, declared=None):
    """An aws-chunked PUT of `data`, declaring `declared` bytes (default: the true length)."""
    body = aws_chunked(data, trailer_value)
    headers = {
        "Content-Encoding": "aws-chunked",
        "Content-Length": str(len(body)),
        "x-amz-decoded-content-length": str(len(data) if declared is None else declared),
        "x-amz-trailer": "x-amz-checksum-crc32",
        "x-amz-sdk-checksum-algorithm": "CRC32",
    }
    target, hdrs = sign(srv, "PUT", key_path(key), headers=headers, body=b"",
                        payload_hash="STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    return send(srv, "PUT", target, hdrs, body)


def test_aws_chunked_trailer_good(srv):
    ensure_bucket(srv)
    data = os.urandom(200_000)  # four chunks, the last one short
    r = chunked_put(srv, "chunked-good", data, harness.crc32_b64(data))
    assert r.status == 200, r
    assert r.headers.get("x-amz-checksum-crc32") in (None, harness.crc32_b64(data)), dict(r.headers)
    g = get(srv, "chunked-good")
    assert g.status == 200 and g.body == data, g
    h = head(srv, "chunked-good")
    assert int(h.headers["Content-Length"]) == len(data)
    # aws-chunked is framing, not the stored object's encoding.
    assert "aws-chunked" not in (h.headers.get("Content-Encoding") or ""), dict(h.headers)


def test_aws_chunked_trailer_wrong(srv):
    ensure_bucket(srv)
    data = os.urandom(200_000)
    r = chunked_put(srv, "chunked-bad", data, harness.crc32_b64(data + b"x"))
    expect_error(r, 400, "BadDigest")
    assert_not_stored(srv, "chunked-bad")


def test_aws_chunked_longer_than_declared(srv):
    """An aws-chunked body that runs past its x-amz-decoded-content-length is refused as the
    excess arrives, and nothing is stored."""
    ensure_bucket(srv)
    data = os.urandom(200_000)
    r = chunked_put(srv, "chunked-long", data, harness.crc32_b64(data), declared=70_000)
    expect_error(r, 400, "IncompleteBody")
    assert_alive(srv)
    assert_not_stored(srv, "chunked-long")


def test_unsigned_amz_header(srv):
    """An x-amz-* header that the signature does not cover is refused (403 AccessDenied, as
    S3 answers), so a signed PUT cannot be turned into a copy by adding x-amz-copy-source."""
    ensure_bucket(srv)
    assert put(srv, "secret", b"not yours").status == 200
    target, hdrs = sign(srv, "PUT", key_path("innocent"), body=b"",
                        headers={"Content-Length": "0"})
    hdrs["x-amz-copy-source"] = f"/{BUCKET}/secret"
    r = send(srv, "PUT", target, hdrs)
    expect_error(r, 403, "AccessDenied")
    assert b"<HeadersNotSigned>x-amz-copy-source</HeadersNotSigned>" in r.body, r
    assert_not_stored(srv, "innocent")


def test_wrong_region_names_the_right_one(srv):
    """A credential scoped to another region is AuthorizationHeaderMalformed with the
    server's region in a Region element and x-amz-bucket-region, as S3 answers."""
    ensure_bucket(srv)
    r = request(srv, "GET", f"/{BUCKET}", "list-type=2", region="eu-west-1")
    expect_error(r, 400, "AuthorizationHeaderMalformed")
    assert f"<Region>{harness.REGION}</Region>".encode() in r.body, r
    assert r.headers.get("x-amz-bucket-region") == harness.REGION, dict(r.headers)


def test_missing_content_sha256(srv):
    ensure_bucket(srv)
    target, hdrs = sign(srv, "GET", f"/{BUCKET}", "list-type=2")
    hdrs = {k: v for k, v in hdrs.items() if k.lower() != "x-amz-content-sha256"}
    r = send(srv, "GET", target, hdrs)
    expect_error(r, 400, "InvalidRequest")


def test_checksum_headers_malformed_or_doubled(srv):
    """A checksum header whose value is not a digest of its algorithm's length, or two
    checksum headers at once, are InvalidRequest; nothing is stored."""
    ensure_bucket(srv)
    body = b"hello world"
    r = put(srv, "sum-bad-form", body, headers={"x-amz-checksum-crc32": "abc"})
    expect_error(r, 400, "InvalidRequest")
    crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    sha = base64.b64encode(hashlib.sha256(body).digest()).decode()
    r = put(srv, "sum-two", body, headers={"x-amz-checksum-crc32": crc,
                                            "x-amz-checksum-sha256": sha})
    expect_error(r, 400, "InvalidRequest")
    for k in ["sum-bad-form", "sum-two"]:
        assert_not_stored(srv, k)


def test_browser_post_upload(srv):
    """POST /bucket (an HTML form upload) is not served: 501, not a misleading 405."""
    ensure_bucket(srv)
    r = send(srv, "POST", f"/{BUCKET}", {"Host": srv.host_port,
                                         "Content-Type": "multipart/form-data; boundary=x",
                                         "Content-Length": "0"})
    expect_error(r, 501, "NotImplemented")


def test_failed_overwrite_keeps_old_object(srv):
    """A rejected PUT over an existing key leaves the old object as it was."""
    ensure_bucket(srv)
    old = b"old contents"
    assert put(srv, "overwrite", old).status == 200
    new = b"new contents that fail"
    expect_error(put(srv, "overwrite", new, headers={"Content-MD5": md5_b64(b"x")}),
                 400, "BadDigest")
    expect_error(put(srv, "overwrite", new,
                     headers={"x-amz-checksum-crc32": harness.crc32_b64(b"x")}),
                 400, "BadDigest")
    expect_error(chunked_put(srv, "overwrite", new, harness.crc32_b64(b"x")), 400, "BadDigest")
    target, hdrs = sign(srv, "PUT", key_path("overwrite"), body=new,
                        headers={"Content-Length": str(len(new))})
    expect_error(send(srv, "PUT", target, hdrs, new[::-1]), 400, "XAmzContentSHA256Mismatch")
    r = get(srv, "overwrite")
    assert r.status == 200 and r.body == old, r


if __name__ == "__main__":
    sys.exit(harness.run_module(globals()))
