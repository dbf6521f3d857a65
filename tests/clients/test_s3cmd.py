"""s3cmd (PyPI, tests/clients/requirements-extra.txt) against a real Tessera server, SigV4 and
path-style addressing: mb, put of a small file and of a 30 MiB file (a multipart upload of
15 MiB parts), ls, la, get compared byte for byte, sync of a folder up and down (and again
after changes, with --delete-removed), info on an object and on a bucket, del, rb.

s3cmd retries failed requests by itself ("Retrying", "Waiting N sec..."): its retries are
cut to one and the test fails when it had to retry, so a server error is not hidden. s3cmd
must be installed (`pip install -r tests/clients/requirements-extra.txt` into the Python that
runs the tests): the test fails, it does not skip, when it is missing.

Run alone: python tests/clients/test_s3cmd.py [test_name ...]
"""

import hashlib
import os
import random
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import clients_util as cu  # noqa: E402
from clients_util import KIB, MIB  # noqa: E402

BUCKET = "s3cmd-test"

CONFIG = """\
[default]
access_key = {access_key}
secret_key = {secret_key}
host_base = {host_port}
host_bucket = {host_port}
use_https = False
signature_v2 = False
bucket_location = us-east-1
check_ssl_certificate = True
proxy_host =
proxy_port = 0
max_retries = 1
socket_timeout = 60
progress_meter = False
multipart_chunk_size_mb = 15
"""

# s3cmd's stderr lines that mean it met an error and then hid it: a retried request or
# upload, an MD5 or size mismatch, a failed region lookup or delete. (Its notice that
# python-magic cannot be used is harmless: it then guesses MIME types from file names.)
TROUBLE = re.compile(
    r"retry|waiting \d+ sec|failed|failures|don't match|do not match|does not match|"
    r"unable to verify|redirection error|could not determine|not deleted|^error:",
    re.IGNORECASE)


def trouble_lines(stderr):
    return [line for line in stderr.splitlines()
            if TROUBLE.search(line) and "python-magic" not in line]


def s3cmd_config(srv):
    home = srv.tmp / "s3cmd-home"
    home.mkdir(exist_ok=True)
    cfg = home / "s3cfg"
    if not cfg.exists():
        cfg.write_text(CONFIG.format(access_key=harness.ACCESS_KEY,
                                     secret_key=harness.SECRET_KEY,
                                     host_port=srv.host_port))
        cfg.chmod(0o600)
    return home, cfg


def s3cmd(srv, *args, check=True, timeout=300, strict=True):
    """Runs `s3cmd -c <private config> ARGS`. With `strict`, a stderr line that shows a retried
    request or an MD5 mismatch fails the test even when s3cmd exits 0."""
    home, cfg = s3cmd_config(srv)
    r = cu.run([cu.require_tool("s3cmd"), "-c", cfg, *args], cu.clean_env(home),
               timeout=timeout, check=check, label="s3cmd " + " ".join(map(str, args)))
    cu.log_step("s3cmd " + str(args[0]), r)
    if strict and r.returncode == 0:
        trouble = trouble_lines(r.stderr)
        assert not trouble, (
            f"s3cmd {' '.join(map(str, args))} exited 0 but reported trouble:\n"
            + "\n".join(trouble[:20]) + "\nstderr:\n" + r.stderr[-3000:]
        )
    return r


def ls(srv, *args):
    """`s3cmd ls ARGS`: {name: size} of its object lines (DIR lines as {prefix: 'DIR'})."""
    r = s3cmd(srv, "ls", *args)
    out = {}
    for line in r.stdout.splitlines():
        if not line.strip():
            continue
        parts = line.split(None, 3)
        if parts[0] == "DIR":
            out[line.split("DIR", 1)[1].strip()] = "DIR"
        else:
            assert len(parts) == 4, line
            out[parts[3]] = int(parts[2])
    return out


def md5_file(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MIB), b""):
            h.update(block)
    return h.hexdigest()


def info(srv, uri):
    """`s3cmd info URI` as {field: [values]} (ACL lines repeat)."""
    r = s3cmd(srv, "info", uri)
    out = {}
    for line in r.stdout.splitlines()[1:]:
        if ":" in line:
            k, v = line.strip().split(":", 1)
            out.setdefault(k.strip(), []).append(v.strip())
    return r, out


SYNC_TREE = {
    "a.txt": 100,
    "empty": 0,
    "docs/report 2024.pdf": 100 * KIB,
    "docs/plus+sign.txt": 2000,
    "docs/100% done.md": 300,
    "été/naïve café.json": 4000,
    "日本語/ファイル.txt": 700,
    "deep/a/b/c/d.bin": 20 * KIB,
    "amp&eq=/x.y": 10,
    "big/part.bin": 16 * MIB + 3,  # a multipart upload too (15 MiB parts)
}


# --- tests -------------------------------------------------------------------------------------

def test_mb_put_get_info_del_rb(srv):
    cu.require_tool("s3cmd")
    work = srv.scratch("s3cmd")
    r = s3cmd(srv, "mb", f"s3://{BUCKET}")
    assert f"Bucket 's3://{BUCKET}/' created" in r.stdout, r.stdout
    r = s3cmd(srv, "ls")
    assert any(line.split()[-1] == f"s3://{BUCKET}" for line in r.stdout.splitlines()), r.stdout

    # A small file and a 30 MiB one (2 parts of 15 MiB).
    small = work / "small.txt"
    small.write_bytes(b"Hello from s3cmd!\n" * 50)
    r = s3cmd(srv, "put", small, f"s3://{BUCKET}/docs/small.txt")
    assert "upload:" in r.stdout, r.stdout
    big = work / "big.bin"
    harness.write_random_file(big, 30 * MIB, seed=31)
    r = s3cmd(srv, "put", big, f"s3://{BUCKET}/big/big file+1.bin", timeout=600)
    assert "upload:" in r.stdout, r.stdout
    head = harness.boto3_client(srv).head_object(Bucket=BUCKET, Key="big/big file+1.bin")
    assert head["ETag"].strip('"').endswith("-2"), (
        f"30 MiB was not stored as a multipart upload of 2 parts: {head['ETag']}")
    assert head["ContentLength"] == 30 * MIB, head

    listing = ls(srv, f"s3://{BUCKET}")
    assert listing == {f"s3://{BUCKET}/big/": "DIR", f"s3://{BUCKET}/docs/": "DIR"}, listing
    listing = ls(srv, "--recursive", f"s3://{BUCKET}")
    assert listing == {
        f"s3://{BUCKET}/docs/small.txt": small.stat().st_size,
        f"s3://{BUCKET}/big/big file+1.bin": 30 * MIB,
    }, listing
    r = s3cmd(srv, "la", "--recursive")  # every object of every bucket
    assert f"s3://{BUCKET}/big/big file+1.bin" in r.stdout, r.stdout
    assert f"s3://{BUCKET}/docs/small.txt" in r.stdout, r.stdout

    # get: the same bytes (s3cmd also checks the MD5 it stored with the upload).
    got = work / "got"
    got.mkdir()
    s3cmd(srv, "get", f"s3://{BUCKET}/docs/small.txt", got / "small.txt")
    assert (got / "small.txt").read_bytes() == small.read_bytes()
    s3cmd(srv, "get", f"s3://{BUCKET}/big/big file+1.bin", got / "big.bin", timeout=600)
    assert harness.sha256_file(got / "big.bin") == harness.sha256_file(big)
    # get of a missing key fails (s3cmd lists the prefix first and finds nothing).
    r = s3cmd(srv, "get", f"s3://{BUCKET}/docs/missing", got / "missing", check=False,
              strict=False)
    assert r.returncode != 0 and "does not exist" in r.stderr, r.stderr
    assert not (got / "missing").exists()

    # info on an object: size, MD5 (of the whole file, from s3cmd's own metadata for the
    # multipart upload), and the ACL (the owner's FULL_CONTROL). s3cmd asks for GET ?acl of
    # the object and GET ?policy and ?cors of the bucket; it accepts 404 and 501 for them.
    r, fields = info(srv, f"s3://{BUCKET}/big/big file+1.bin")
    assert fields["File size"] == [str(30 * MIB)], r.stdout
    assert fields["MD5 sum"] == [md5_file(big)], r.stdout
    assert fields["Storage"] == ["STANDARD"], r.stdout
    assert fields.get("ACL") and all(v.endswith("FULL_CONTROL") for v in fields["ACL"]), r.stdout
    r, fields = info(srv, f"s3://{BUCKET}/docs/small.txt")
    assert fields["File size"] == [str(small.stat().st_size)], r.stdout
    assert fields["MD5 sum"] == [md5_file(small)], r.stdout
    # info on the bucket: location, versioning, lifecycle, ACL, ...
    r, fields = info(srv, f"s3://{BUCKET}")
    assert fields.get("Location") == ["us-east-1"], r.stdout
    assert fields.get("ACL") and all(v.endswith("FULL_CONTROL") for v in fields["ACL"]), r.stdout

    # del, then rb: refused while the bucket has objects, done when it is empty.
    r = s3cmd(srv, "del", f"s3://{BUCKET}/docs/small.txt")
    assert "delete:" in r.stdout, r.stdout
    assert ls(srv, "--recursive", f"s3://{BUCKET}") == {
        f"s3://{BUCKET}/big/big file+1.bin": 30 * MIB}
    r = s3cmd(srv, "rb", f"s3://{BUCKET}", check=False, strict=False)
    assert r.returncode != 0 and "BucketNotEmpty" in r.stderr, r.stdout + r.stderr
    s3cmd(srv, "del", f"s3://{BUCKET}/big/big file+1.bin")
    r = s3cmd(srv, "rb", f"s3://{BUCKET}")
    assert f"Bucket 's3://{BUCKET}/' removed" in r.stdout, r.stdout
    r = s3cmd(srv, "ls")
    assert f"s3://{BUCKET}" not in r.stdout.split(), r.stdout
    cu.rmtree(work)


def test_sync_up_and_down(srv):
    cu.require_tool("s3cmd")
    work = srv.scratch("s3cmd-sync")
    up = work / "up"
    cu.write_tree(up, SYNC_TREE, seed=41)
    bucket = BUCKET + "-sync"
    s3cmd(srv, "mb", f"s3://{bucket}")
    r = s3cmd(srv, "sync", f"{up}/", f"s3://{bucket}/tree/", timeout=600)
    assert r.stdout.count("upload:") >= len(SYNC_TREE), r.stdout
    listing = ls(srv, "--recursive", f"s3://{bucket}")
    assert listing == {f"s3://{bucket}/tree/{k}": v for k, v in SYNC_TREE.items()}, listing

    # Nothing to do the second time (s3cmd compares sizes and MD5s: the ETags, and the MD5
    # it stored for the multipart upload).
    r = s3cmd(srv, "sync", f"{up}/", f"s3://{bucket}/tree/", timeout=600)
    assert "upload:" not in r.stdout, "second sync uploaded again:\n" + r.stdout

    down = work / "down"
    down.mkdir()
    s3cmd(srv, "sync", f"s3://{bucket}/tree/", f"{down}/", timeout=600)
    cu.assert_same_tree(up, down, "s3cmd sync down")
    r = s3cmd(srv, "sync", f"s3://{bucket}/tree/", f"{down}/", timeout=600)
    assert "download:" not in r.stdout, "second sync down downloaded again:\n" + r.stdout

    # Changes: one file rewritten (same size), one grown, one deleted, one added.
    rng = random.Random(42)
    cu.write_file(up / "a.txt", 100, rng)
    cu.write_file(up / "docs/plus+sign.txt", 5000, rng)
    (up / "été/naïve café.json").unlink()
    cu.write_file(up / "new dir/new+file é.txt", 1234, rng)
    r = s3cmd(srv, "sync", "--delete-removed", f"{up}/", f"s3://{bucket}/tree/", timeout=600)
    assert r.stdout.count("upload:") == 3, r.stdout
    assert r.stdout.count("delete:") == 1, r.stdout
    r = s3cmd(srv, "sync", "--delete-removed", f"s3://{bucket}/tree/", f"{down}/", timeout=600)
    cu.assert_same_tree(up, down, "s3cmd sync down after changes")

    # Clean up: del --recursive, rb.
    s3cmd(srv, "del", "--recursive", "--force", f"s3://{bucket}/tree/")
    assert ls(srv, "--recursive", f"s3://{bucket}") == {}
    s3cmd(srv, "rb", f"s3://{bucket}")
    cu.rmtree(work)


if __name__ == "__main__":
    sys.exit(harness.run_module(globals()))
