"""rclone (Debian's 1.60) against a real Tessera server: mkdir, sync of a tree of 300 files up
(0 B to 20 MiB, the big ones as multipart uploads of 5 MiB parts; nested folders; names with
spaces, `+`, `%`, `&`, `=` and non-ASCII characters), check --download and check by hash,
changes (new, modified, deleted, touched files) synced again, sync back down and compare byte
for byte (and modification times), lsf -R, purge.

rclone is configured only through the environment (RCLONE_CONFIG_TESS_*), with AWS_CA_BUNDLE
and every other host AWS_* setting removed: Debian's rclone 1.60 fails with
LoadCustomCABundleError when AWS_CA_BUNDLE is set. It must be installed
(`apt-get install -y rclone`): the test fails, it does not skip, when it is missing.

Run alone: python tests/clients/test_rclone.py [test_name ...]
"""

import os
import random
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import clients_util as cu  # noqa: E402
from clients_util import KIB, MIB  # noqa: E402

REMOTE = "tess"
BUCKET = "rclone-test"

# Multipart from 5 MiB on, in 5 MiB parts (rclone's default cutoff is 200 MiB); no retries,
# so a failed request fails the command instead of being hidden by a retry.
COMMON_FLAGS = [
    "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M",
    "--retries", "1", "--low-level-retries", "1",
    "--contimeout", "10s", "--timeout", "60s",
    "--transfers", "4", "--checkers", "8",
    "--log-level", "INFO", "--stats", "0",
]


def rclone_env(srv):
    home = srv.tmp / "rclone-home"
    home.mkdir(exist_ok=True)
    conf = home / "rclone.conf"
    conf.touch()  # empty: every setting of the remote comes from the environment
    prefix = f"RCLONE_CONFIG_{REMOTE.upper()}_"
    return cu.clean_env(home, {
        "RCLONE_CONFIG": str(conf),
        prefix + "TYPE": "s3",
        prefix + "PROVIDER": "Other",
        prefix + "ENDPOINT": srv.s3_url,
        prefix + "ACCESS_KEY_ID": harness.ACCESS_KEY,
        prefix + "SECRET_ACCESS_KEY": harness.SECRET_KEY,
        prefix + "REGION": harness.REGION,
    })


def rclone(srv, *args, check=True, timeout=300):
    r = cu.run([cu.require_tool("rclone"), *args, *COMMON_FLAGS], rclone_env(srv),
               timeout=timeout, check=check, label="rclone " + " ".join(map(str, args)))
    cu.log_step("rclone " + str(args[0]), r)
    return r


def lsf(srv, path, *flags):
    r = rclone(srv, "lsf", "-R", *flags, f"{REMOTE}:{path}")
    return [line for line in r.stdout.split("\n") if line]


def check(srv, local, remote, *flags):
    """`rclone check [flags] local remote --combined -`: asserts 0 differences and returns the
    number of matching files."""
    r = rclone(srv, "check", *flags, local, f"{REMOTE}:{remote}", "--combined", "-",
               check=False, timeout=600)
    lines = [line for line in r.stdout.split("\n") if line]
    bad = [line for line in lines if not line.startswith("= ")]
    assert r.returncode == 0 and not bad and "0 differences found" in r.stderr, (
        f"rclone check {' '.join(flags)}: exit {r.returncode}, {len(bad)} differences: "
        f"{bad[:20]}\nstderr:\n{r.stderr[-4000:]}"
    )
    return len(lines)


def logged(stderr, what):
    """Paths that rclone's INFO log names with message `what` ("Copied (new)", "Deleted", ...)."""
    out = set()
    for line in stderr.splitlines():
        m = re.match(r"^\S+ \S+ INFO\s+: (.*): " + re.escape(what) + r"\s*$", line)
        if m:
            out.add(m.group(1))
    return out


def expect_logged(stderr, what, want):
    got = logged(stderr, what)
    want = set(want)
    assert got == want, (
        f"rclone logged {what!r} for {len(got)} files, {len(want)} expected; "
        f"unexpected: {sorted(got - want)}, missing: {sorted(want - got)}\n{stderr[-3000:]}"
    )


# The tree: 300 files, 0 B to 20 MiB, 13 folders. Names with spaces, `+`, `%`, `&`, `=`, `#`,
# `~` and non-ASCII characters.
DIRS = [
    "",
    "docs",
    "docs/2024/q1 reports",
    "photos/summer trip",
    "music/Beyoncé",
    "日本語/フォルダ",
    "a+b",
    "100% real",
    "deep/a/b/c/d/e/f",
    "weird/#hash & amp=eq",
    "emoji 🎉",
    "x~y_z-w.v",
    "spaces  double/ trailing",
]
NAMES = [
    "file {i}.txt",
    "{i}+plus.bin",
    "pct%20{i}.dat",
    "ünïcödé-{i}.json",
    "{i}.tar.gz",
    "naïve café {i}",
    "100%-{i}",
    "a&b={i}",
    "Ω≈ç√ {i}.md",
]
BIG = {  # multipart: 2, 3, 4 and 4 parts of 5 MiB
    "big/six.bin": 6 * MIB,
    "big/eleven mib+.bin": 11 * MIB + 123,
    "big/sixteen é.bin": 16 * MIB,
    "photos/summer trip/twenty%.raw": 20 * MIB,
}
COUNT = 300

LIST_VARIANTS = [
    ["--s3-list-version", "1", "--s3-list-url-encode", "false"],
    ["--s3-list-version", "1", "--s3-list-url-encode", "true"],
    ["--s3-list-version", "2", "--s3-list-url-encode", "false"],
    ["--s3-list-version", "2", "--s3-list-url-encode", "true"],
]


def tree_sizes(seed=11):
    rng = random.Random(seed)
    sizes = dict(BIG)
    i = 0
    while len(sizes) < COUNT:
        d = DIRS[i % len(DIRS)]
        name = rng.choice(NAMES).format(i=i)
        rel = f"{d}/{name}" if d else name
        roll = rng.random()
        if roll < 0.08:
            size = 0
        elif roll < 0.2:
            size = 100 * KIB
        elif roll < 0.8:
            size = rng.randint(1, 4096)
        else:
            size = rng.randint(4097, 300 * KIB)
        sizes[rel] = size
        i += 1
    return sizes


def dirs_of(paths):
    out = set()
    for p in paths:
        parts = p.split("/")[:-1]
        for n in range(1, len(parts) + 1):
            out.add("/".join(parts[:n]) + "/")
    return out


# --- tests -------------------------------------------------------------------------------------

def test_sync_check_purge(srv):
    cu.require_tool("rclone")
    work = srv.scratch("rclone")
    local = work / "local"
    sizes = tree_sizes()
    cu.write_tree(local, sizes, seed=12)
    assert len(cu.tree_files(local)) == COUNT
    remote = f"{BUCKET}/dir"

    rclone(srv, "mkdir", f"{REMOTE}:{BUCKET}")
    r = rclone(srv, "lsd", f"{REMOTE}:")
    assert any(line.split()[-1] == BUCKET for line in r.stdout.splitlines()), r.stdout

    # Sync up: every file uploaded once, the big ones as multipart uploads.
    r = rclone(srv, "sync", local, f"{REMOTE}:{remote}", timeout=600)
    copied = logged(r.stderr, "Copied (new)")
    assert copied == set(sizes), (
        f"sync up copied {len(copied)} of {len(sizes)} files; not copied: "
        f"{sorted(set(sizes) - copied)[:10]}\n{r.stderr[-3000:]}"
    )
    assert "ERROR" not in r.stderr, r.stderr[-4000:]
    for rel, size in BIG.items():
        head = harness.boto3_client(srv).head_object(Bucket=BUCKET, Key=f"dir/{rel}")
        parts = -(-size // (5 * MIB))
        assert head["ETag"].strip('"').endswith(f"-{parts}"), (
            f"{rel} ({size} B) was not stored as a multipart upload of {parts} parts: {head['ETag']}"
        )
        assert head["ContentLength"] == size, head

    # check --download compares the bytes; plain check compares MD5 (the ETag of single-part
    # objects, rclone's X-Amz-Meta-Md5chksum of multipart ones).
    assert check(srv, local, remote, "--download") == COUNT
    assert check(srv, local, remote) == COUNT

    # lsf -R: every file and every folder, exactly.
    files = lsf(srv, remote, "--files-only")
    assert sorted(files) == sorted(sizes), set(files) ^ set(sizes)
    dirs = lsf(srv, remote, "--dirs-only")
    assert sorted(dirs) == sorted(dirs_of(sizes)), set(dirs) ^ dirs_of(sizes)
    assert len(lsf(srv, remote)) == len(sizes) + len(dirs_of(sizes))
    # The same listing in pages of 7 keys, by ListObjects (v1, markers) and ListObjectsV2
    # (continuation tokens), with and without encoding-type=url.
    for variant in LIST_VARIANTS:
        files = lsf(srv, remote, "--files-only", "--s3-list-chunk", "7", *variant)
        assert sorted(files) == sorted(sizes), (variant, set(files) ^ set(sizes))

    # A second sync has nothing to do.
    r = rclone(srv, "sync", local, f"{REMOTE}:{remote}", timeout=600)
    assert not re.search(r"INFO\s+: .*: (Copied|Deleted|Updated)", r.stderr), (
        "second sync with no change did something:\n" + r.stderr[-3000:]
    )

    # Changes: new files (one multipart), modified files (new size, or same size and new
    # bytes), deleted files, files only touched (rclone then updates the modification time
    # in place, by a CopyObject with MetadataDirective REPLACE).
    rng = random.Random(99)
    small = sorted(rel for rel, s in sizes.items() if rel not in BIG)
    rng.shuffle(small)
    deleted, resized, touched = small[:20], small[20:30], small[30:35]
    # Same size, new bytes: not an empty file (its "new bytes" would be the same).
    rewritten = [rel for rel in small[35:] if sizes[rel] >= 16][:5]
    touched.append("big/sixteen é.bin")  # a multipart object: copied onto itself
    for rel in deleted:
        (local / rel).unlink()
    for rel in resized:
        cu.write_file(local / rel, sizes[rel] + rng.randint(1, 5000), rng)
    for rel in rewritten:
        cu.write_file(local / rel, sizes[rel], rng)
        os.utime(local / rel, (time.time() + 5, time.time() + 5))  # surely a new mtime
    for rel in touched:
        t = time.time() - 86400 * 3 + rng.randint(0, 1000)
        os.utime(local / rel, (t, t))
    added = {
        "new/brand new.txt": 1234,
        "new/empty": 0,
        "new/ñew+%20 big.bin": 7 * MIB + 1,
        "docs/2024/q1 reports/added é.csv": 100 * KIB,
    }
    cu.write_tree(local, added, seed=13)
    want_files = set(sizes) - set(deleted) | set(added)

    r = rclone(srv, "sync", local, f"{REMOTE}:{remote}", timeout=600)
    assert "ERROR" not in r.stderr, r.stderr[-4000:]
    expect_logged(r.stderr, "Copied (new)", added)
    expect_logged(r.stderr, "Copied (replaced existing)", set(resized) | set(rewritten))
    expect_logged(r.stderr, "Deleted", deleted)
    updated = logged(r.stderr, "Updated modification time in destination")
    assert updated == set(touched), (
        f"rclone did not update the modification time of the touched files in place "
        f"(CopyObject with MetadataDirective REPLACE): updated {sorted(updated)}, "
        f"want {sorted(touched)}\n{r.stderr[-3000:]}"
    )

    assert check(srv, local, remote, "--download") == len(want_files)
    assert check(srv, local, remote) == len(want_files)
    files = lsf(srv, remote, "--files-only")
    assert sorted(files) == sorted(want_files), set(files) ^ want_files
    r = rclone(srv, "sync", local, f"{REMOTE}:{remote}", timeout=600)
    assert not re.search(r"INFO\s+: .*: (Copied|Deleted|Updated)", r.stderr), (
        "sync after the changes were synced did something (lost metadata?):\n" + r.stderr[-3000:]
    )

    # Sync back down to a new folder: the same bytes, and the modification times rclone
    # stored in X-Amz-Meta-Mtime.
    local2 = work / "local2"
    rclone(srv, "sync", f"{REMOTE}:{remote}", local2, timeout=600)
    cu.assert_same_tree(local, local2, "rclone sync down")
    off = []
    for rel in want_files:
        a = (local / rel).stat().st_mtime_ns
        b = (local2 / rel).stat().st_mtime_ns
        if abs(a - b) > 1_000_000:  # 1 ms
            off.append((rel, a, b))
    assert not off, f"{len(off)} files came back with another modification time: {off[:5]}"

    # Purge the folder, then the bucket.
    rclone(srv, "purge", f"{REMOTE}:{remote}", timeout=600)
    assert lsf(srv, BUCKET) == []
    rclone(srv, "purge", f"{REMOTE}:{BUCKET}", timeout=600)
    r = rclone(srv, "lsd", f"{REMOTE}:")
    assert not any(line.split()[-1] == BUCKET for line in r.stdout.splitlines()), r.stdout
    buckets = harness.boto3_client(srv).list_buckets()["Buckets"]
    assert BUCKET not in [b["Name"] for b in buckets], buckets
    cu.rmtree(work)


if __name__ == "__main__":
    sys.exit(harness.run_module(globals()))
