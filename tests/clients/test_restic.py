"""restic (Debian's 0.14) against a real Tessera server, through its S3 backend (minio-go):
init, backup of a tree of ~50 MiB of random bytes (0 B to 9 MiB files), a second backup after
changes, snapshots, `check --read-data` (strict: every pack is listed, downloaded and
verified), restore of both snapshots compared byte for byte with the source, then
`forget --keep-last 1 --prune`, `check --read-data` and a restore again.

restic retries failed requests by itself (and says "retrying" on stderr): the test fails when
it had to, so a server error is not hidden by a retry. restic must be installed
(`apt-get install -y restic`): the test fails, it does not skip, when it is missing.

Run alone: python tests/clients/test_restic.py [test_name ...]
"""

import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
import clients_util as cu  # noqa: E402
from clients_util import KIB, MIB  # noqa: E402

BUCKET = "restic-repo"
PASSWORD = "correct horse battery staple"


def restic_env(srv, work, bucket=BUCKET, keys=(harness.ACCESS_KEY, harness.SECRET_KEY)):
    return cu.clean_env(work / "home", {
        "RESTIC_REPOSITORY": f"s3:{srv.s3_url}/{bucket}",
        "RESTIC_PASSWORD": PASSWORD,
        "RESTIC_CACHE_DIR": str(work / "cache"),
        "AWS_ACCESS_KEY_ID": keys[0],
        "AWS_SECRET_ACCESS_KEY": keys[1],
    })


def restic(srv, work, *args, timeout=300, cwd=None, env=None):
    """Runs restic; it must succeed without having retried any request."""
    r = cu.run([cu.require_tool("restic"), *args], env or restic_env(srv, work),
               timeout=timeout, cwd=cwd, label="restic " + " ".join(map(str, args)))
    cu.log_step("restic " + str(args[0]), r)
    retried = [line for line in r.stderr.splitlines() if "retrying" in line.lower()]
    assert not retried, (
        f"restic {' '.join(map(str, args))} succeeded, but only after retrying requests the "
        "server failed:\n" + "\n".join(retried[:20])
    )
    return r


def json_lines(text):
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{") or line.startswith("["):
            out.append(json.loads(line))
    return out


def backup(srv, work, source):
    """`restic backup` of the folder `source` (given relative to its parent, so the snapshot
    holds it as `<name>/...`); returns the summary message."""
    r = restic(srv, work, "backup", "--json", "--host", "tessera-test", source.name,
               cwd=source.parent, timeout=600)
    summaries = [m for m in json_lines(r.stdout) if m.get("message_type") == "summary"]
    assert len(summaries) == 1, r.stdout[-3000:]
    s = summaries[0]
    assert s.get("snapshot_id"), s
    return s


def restored_root(target, source):
    """Where `restic restore --target target` put the folder backed up as `source.name`."""
    p = target / source.name
    assert p.is_dir(), f"restore made no {p}: {sorted(x.name for x in target.iterdir())}"
    return p


def check_read_data(srv, work):
    r = restic(srv, work, "check", "--read-data", timeout=600)
    assert "no errors were found" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def stored_packs(srv):
    """The pack ids under data/ in the bucket, listed by boto3 (pages of 3 keys)."""
    c = harness.boto3_client(srv)
    ids = set()
    for page in c.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix="data/", PaginationConfig={"PageSize": 3}):
        for o in page.get("Contents", []):
            _data, sub, name = o["Key"].split("/")
            assert name.startswith(sub), o["Key"]
            ids.add(name)
    return ids


def restic_packs(srv, work):
    r = restic(srv, work, "list", "packs")
    return {line.strip() for line in r.stdout.splitlines() if line.strip()}


def tree_sizes(seed=21):
    """1,000 files, as issue 3 asks: three of 50 MiB, two of a few MiB, and 995 empty, small
    and 100 KiB-ish ones (~220 MiB in all)."""
    rng = random.Random(seed)
    dirs = ["", "etc", "home/ann/docs", "home/ann/photos 2024", "var/lib/db", "src/é ü/deep/er",
            "a+b%c"]
    sizes = {
        "var/lib/db/big-1.db": 50 * MIB,
        "var/lib/db/big-2.db": 50 * MIB + 12345,
        "home/ann/photos 2024/raw 1.nef": 50 * MIB,
        "home/ann/photos 2024/raw 2.nef": 3 * MIB + 1,
        "src/é ü/deep/er/archive.tar": 4 * MIB,
    }
    i = 0
    while len(sizes) < 1000:
        d = dirs[i % len(dirs)]
        rel = f"{d}/file-{i}.dat" if d else f"file-{i}.dat"
        roll = rng.random()
        if roll < 0.05:
            size = 0
        elif roll < 0.6:
            size = rng.randint(1, 8 * KIB)
        elif roll < 0.9:
            size = rng.randint(8 * KIB, 100 * KIB)
        else:
            size = rng.randint(100 * KIB, 600 * KIB)
        sizes[rel] = size
        i += 1
    return sizes


# --- tests -------------------------------------------------------------------------------------

def test_backup_check_restore_prune(srv):
    cu.require_tool("restic")
    work = srv.scratch("restic")
    source = work / "data"
    sizes = tree_sizes()
    cu.write_tree(source, sizes, seed=22)
    total = sum(sizes.values())
    assert len(sizes) == 1000 and 150 * MIB < total < 260 * MIB, (len(sizes), total)

    r = restic(srv, work, "init")
    assert "created restic repository" in r.stdout, r.stdout

    first = backup(srv, work, source)
    assert first["files_new"] == len(sizes), first
    first_digest = cu.tree_digest(source)

    # Changes: new files, rewritten files, deleted files, a grown big file.
    rng = random.Random(23)
    names = sorted(sizes)
    rng.shuffle(names)
    for rel in names[:30]:
        (source / rel).unlink()
    for rel in names[30:60]:
        cu.write_file(source / rel, rng.randint(0, 64 * KIB), rng)
    cu.write_tree(source, {"new/one.bin": 2 * MIB, "new/two.txt": 1000, "new/empty": 0}, seed=24)
    with open(source / "var/lib/db/big-1.db", "ab") as f:
        f.write(rng.randbytes(MIB))
    second = backup(srv, work, source)
    assert second["files_new"] == 3, second
    second_digest = cu.tree_digest(source)

    r = restic(srv, work, "snapshots", "--json")
    snaps = json.loads(r.stdout)
    ids = [s["short_id"] for s in snaps]
    assert sorted(ids) == sorted([first["snapshot_id"], second["snapshot_id"]]), (ids, first, second)

    check_read_data(srv, work)

    # Restore both snapshots: each the source as it was.
    target = work / "restore-latest"
    restic(srv, work, "restore", "latest", "--target", target, timeout=600)
    cu.assert_same_tree(second_digest, restored_root(target, source), "restic restore latest")
    target1 = work / "restore-first"
    restic(srv, work, "restore", first["snapshot_id"], "--target", target1, timeout=600)
    cu.assert_same_tree(first_digest, restored_root(target1, source), "restic restore (first)")
    cu.rmtree(target1)

    # Forget the first snapshot and prune the data only it used: restic deletes some packs
    # (and writes repacked ones), and its list of packs is the bucket's.
    packs_before = stored_packs(srv)
    assert packs_before == restic_packs(srv, work), (packs_before, restic_packs(srv, work))
    r = restic(srv, work, "forget", "--keep-last", "1", "--prune", timeout=600)
    packs_after = stored_packs(srv)
    assert packs_before - packs_after, "prune deleted no pack:\n" + r.stdout[-3000:]
    assert packs_after == restic_packs(srv, work), (packs_after, restic_packs(srv, work))
    r = restic(srv, work, "snapshots", "--json")
    ids = [s["short_id"] for s in json.loads(r.stdout)]
    assert ids == [second["snapshot_id"]], ids
    check_read_data(srv, work)
    cu.rmtree(target)
    restic(srv, work, "restore", "latest", "--target", target, timeout=600)
    cu.assert_same_tree(second_digest, restored_root(target, source),
                        "restic restore latest after prune")
    cu.rmtree(work)


def admin_user(srv, name, bucket):
    """Creates a user (through the admin API, signed in with the root keys) whose policy
    reaches `bucket` and nothing else; returns its keys."""
    st, _, body = harness.urlopen(
        srv.admin_url + "/admin/v1/login", method="POST",
        data=json.dumps({"access_key": harness.ACCESS_KEY,
                         "secret_key": harness.SECRET_KEY}).encode(),
        headers={"Content-Type": "application/json"})
    assert st == 200, (st, body)
    token = json.loads(body)["token"]
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]}
    st, _, body = harness.urlopen(
        srv.admin_url + "/admin/v1/users", method="POST",
        data=json.dumps({"name": name, "policy": policy}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    assert st == 201, (st, body)
    v = json.loads(body)
    return v["access_key"], v["secret_key"]


def test_a_repository_reachable_by_its_own_user_only(srv):
    """A backup user whose policy names its own bucket: restic init, backup and check work
    with its keys; another user's keys cannot list, read or write that repository, and the
    backup user cannot reach another bucket."""
    work = srv.scratch("restic-own")
    own = admin_user(srv, "backup", "restic-own")
    other = admin_user(srv, "intruder", "elsewhere")
    env = restic_env(srv, work, "restic-own", own)
    source = work / "src"
    _small_tree(source)
    restic(srv, work, "init", env=env)
    r = restic(srv, work, "backup", "--json", "--host", "own", source.name,
               cwd=source.parent, env=env)
    assert any(m.get("message_type") == "summary" for m in json_lines(r.stdout)), r.stdout
    restic(srv, work, "check", env=env)
    # The other user's keys: refused, whatever restic tries.
    for args in (("snapshots",), ("cat", "config")):
        r = cu.run([cu.require_tool("restic"), *args],
                   restic_env(srv, work / "intruder", "restic-own", other), timeout=120,
                   check=False, label="restic (intruder) " + " ".join(args))
        assert r.returncode != 0, f"the intruder's restic {args} succeeded:\n{r.stdout}"
        assert "Access Denied" in r.stderr or "AccessDenied" in r.stderr, r.stderr[-2000:]
    # The backup user's keys do not reach another bucket.
    r = cu.run([cu.require_tool("restic"), "init"],
               restic_env(srv, work / "elsewhere", "elsewhere-repo", own), timeout=120,
               check=False, label="restic init (another bucket)")
    assert r.returncode != 0, r.stdout
    assert "Access Denied" in r.stderr or "AccessDenied" in r.stderr, r.stderr[-2000:]


def _small_tree(root):
    rng = random.Random(7)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(12):
        (root / f"f{i}.bin").write_bytes(rng.randbytes(rng.randint(0, 256 * KIB)))


if __name__ == "__main__":
    sys.exit(harness.run_module(globals()))
