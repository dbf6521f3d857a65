"""End-to-end test of the docker-compose cluster: image, 6 nodes, 2 gateways, one node lost.

    <venv>/bin/python tests/deploy/compose_test.py

with the venv of the client suite (scripts/test makes it at <target>/clients-venv; it has
aws-cli). Needs Docker Engine with Compose (`docker compose`, else `docker-compose`;
TESSERA_COMPOSE="docker-compose" forces one) and no registry.

What it does, each step bounded by a timeout:
  1. builds the image with scripts/build-image (tag $TESSERA_IMAGE, default tessera:dev);
  2. starts docker-compose.yml as project tessera-test-<pid>, on the default host ports where
     they are free and on free ones otherwise, with a random cluster secret;
  3. waits (at most READY_TIMEOUT s) until both gateways' /health/ready answer 200;
  4. with aws-cli creates a bucket, uploads set A (0 B, 1 KiB, 300 KiB, 5 MiB and a 20 MiB
     multipart object) through gateway1 and set B (the same sizes, other bytes) through
     gateway2, checks ETags and listings, and reads set A back through gateway2 and set B
     through gateway1, byte for byte;
  5. stops node3 (2 of 12 drives: one of each erasure set's 6), checks that both gateways
     stay ready (200) and come to report one drive of each set offline, reads every object
     back through both gateways byte for byte, and
     writes and reads a few objects more while the node is down;
  6. always (success, failure, Ctrl-C, SIGTERM) removes the project with
     `down -v --remove-orphans`; on failure first prints `ps` and `logs --tail 50`.
Prints one line per step, then "compose: 1 passed, 0 failed" (or 0 passed, 1 failed); exits
0 when everything passed.
"""

import hashlib
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "clients"))

import harness  # noqa: E402  (also removes the host's AWS_* settings from this process)

COMPOSE_FILE = REPO / "docker-compose.yml"
IMAGE = os.environ.get("TESSERA_IMAGE") or "tessera:dev"
PROJECT = f"tessera-test-{os.getpid()}"
PROJECT_PREFIX = "tessera-test-"

BUILD_TIMEOUT = 2400   # seconds: may include a cold `cargo build --release`
UP_TIMEOUT = 180
READY_TIMEOUT = 120
STOP_TIMEOUT = 60
DOWN_TIMEOUT = 180
AWS_TIMEOUT = 300      # one aws-cli command

# Host ports: (compose variable, default). Defaults are used when free.
PORTS = [
    ("TESSERA_S3_PORT", 9000),
    ("TESSERA_ADMIN_PORT", 9001),
    ("TESSERA_S3_PORT_2", 9010),
    ("TESSERA_ADMIN_PORT_2", 9011),
]

SIZES = {  # name -> bytes; aws-cli uploads above 8 MiB in 8 MiB parts: 20 MiB = 3 parts
    "empty": 0,
    "one-kib": 1024,
    "300-kib": 300 * 1024,
    "5-mib": 5 * 1024 * 1024,
    "20-mib-multipart": 20 * 1024 * 1024,
}
MULTIPART = {"20-mib-multipart": 3}  # name -> expected part count in the ETag


class StepFailed(AssertionError):
    pass


def log(msg):
    print(msg, flush=True)


# --- commands ----------------------------------------------------------------------------------

def run(cmd, timeout, env=None, check=True, capture=True, cwd=None):
    """Runs cmd (a list) with a timeout; returns the CompletedProcess (text output). With
    check, a non-zero exit or a timeout raises StepFailed with the output."""
    try:
        r = subprocess.run(
            cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, timeout=timeout,
            capture_output=capture, text=True, errors="replace",
        )
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or "") if isinstance(e.stdout, str) else (e.stdout or b"").decode("utf-8", "replace")
        err = (e.stderr or "") if isinstance(e.stderr, str) else (e.stderr or b"").decode("utf-8", "replace")
        raise StepFailed(f"{shlex.join(cmd)}: timed out after {timeout}s\n{out[-3000:]}{err[-3000:]}") from e
    if check and r.returncode != 0:
        raise StepFailed(
            f"{shlex.join(cmd)}: exit {r.returncode}\n"
            f"stdout:\n{(r.stdout or '')[-4000:]}\nstderr:\n{(r.stderr or '')[-4000:]}"
        )
    return r


def find_compose():
    forced = os.environ.get("TESSERA_COMPOSE")
    if forced:
        return shlex.split(forced)
    try:
        if run(["docker", "compose", "version"], 30, check=False).returncode == 0:
            return ["docker", "compose"]
    except (StepFailed, FileNotFoundError):
        pass
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise StepFailed("neither `docker compose` nor `docker-compose` is available")


def port_free(port):
    """True when nothing listens on 127.0.0.1:port (connections in TIME_WAIT do not count:
    Docker's proxy binds with SO_REUSEADDR too)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(taken):
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in taken:
            return port


def choose_ports():
    chosen = {}
    for var, default in PORTS:
        port = default if default not in chosen.values() and port_free(default) else free_port(set(chosen.values()))
        chosen[var] = port
    return chosen


class Cluster:
    """The compose project under test."""

    def __init__(self, compose):
        self.compose = compose
        self.ports = {}
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
        self.env.update({
            "TESSERA_IMAGE": IMAGE,
            "TESSERA_CLUSTER_SECRET": secrets.token_hex(24),
            "TESSERA_ROOT_ACCESS_KEY": harness.ACCESS_KEY,
            "TESSERA_ROOT_SECRET_KEY": harness.SECRET_KEY,
        })
        self.env.setdefault("RUST_LOG", "info")

    def use_ports(self, ports):
        self.ports = dict(ports)
        self.env.update({k: str(v) for k, v in ports.items()})

    def cmd(self, *args, project=PROJECT):
        return [*self.compose, "-p", project, "-f", str(COMPOSE_FILE), *args]

    def run(self, *args, timeout, check=True, project=PROJECT):
        return run(self.cmd(*args, project=project), timeout, env=self.env, check=check, cwd=REPO)

    def url(self, var, path=""):
        return f"http://127.0.0.1:{self.ports[var]}{path}"


class Endpoint:
    """What harness.aws() needs of a server: a scratch folder for aws-cli's config, a URL."""

    def __init__(self, tmp, s3_url, name):
        self.tmp = tmp
        self.s3_url = s3_url
        self.name = name


def sweep_stale_projects(cluster):
    """Removes tessera-test-<pid> projects left by test processes that are gone (killed with
    SIGKILL, which leaves no chance to clean up)."""
    names = set()
    for kind, fmt in (("ps", "{{.Label \"com.docker.compose.project\"}}"),
                      ("volume", "{{.Label \"com.docker.compose.project\"}}")):
        args = ["docker", kind, "ls"] if kind == "volume" else ["docker", "ps", "-a"]
        r = run([*args, "--filter", "label=com.docker.compose.project", "--format", fmt], 60,
                check=False)
        names.update(n.strip() for n in (r.stdout or "").split() if n.strip().startswith(PROJECT_PREFIX))
    for name in sorted(names):
        try:
            pid = int(name[len(PROJECT_PREFIX):])
            os.kill(pid, 0)
            continue  # its test is still running
        except ProcessLookupError:
            pass
        except (ValueError, PermissionError):
            continue
        log(f"  removing stale project {name}")
        cluster.run("down", "-v", "--remove-orphans", "--timeout", "5", timeout=DOWN_TIMEOUT,
                    check=False, project=name)


# --- HTTP and S3 -------------------------------------------------------------------------------

def http_status(url):
    try:
        status, _headers, body = harness.urlopen(url, timeout=3)
        return status, body.decode("utf-8", "replace")[:300]
    except Exception as e:  # connection refused or reset while starting
        return None, str(e)


def check_admin(cluster):
    """Gateway 1's admin API: 401 without credentials; with the token, all 6 nodes up, 12
    drives online, and /metrics in Prometheus text."""
    url = cluster.url("TESSERA_ADMIN_PORT", "/admin/v1/nodes")
    status, _h, body = harness.urlopen(url, timeout=10)
    if status != 401:
        raise StepFailed(f"{url} without credentials answered {status}: {body[:200]!r}")
    auth = {"Authorization": "Bearer dev-admin-token-change-me"}
    status, _h, body = harness.urlopen(url, headers=auth, timeout=10)
    nodes = json.loads(body)["nodes"] if status == 200 else []
    if len(nodes) != 6 or any(n["state"] != "up" for n in nodes):
        raise StepFailed(f"{url} answered {status}: {body[:500]!r}")
    url = cluster.url("TESSERA_ADMIN_PORT", "/admin/v1/cluster")
    status, _h, body = harness.urlopen(url, headers=auth, timeout=10)
    c = json.loads(body) if status == 200 else {}
    if (c.get("drives"), c.get("drives_online"), c.get("mode")) != (12, 12, "gateway"):
        raise StepFailed(f"{url} answered {status}: {body[:500]!r}")
    url = cluster.url("TESSERA_ADMIN_PORT", "/metrics")
    status, _h, body = harness.urlopen(url, headers=auth, timeout=10)
    if status != 200 or b"tessera_drive_online{" not in body:
        raise StepFailed(f"{url} answered {status}: {body[:300]!r}")


def wait_ready(cluster, variables, timeout):
    deadline = time.monotonic() + timeout
    last = {}
    for var in variables:
        url = cluster.url(var, "/health/ready")
        while True:
            status, body = http_status(url)
            last[var] = (status, body)
            if status == 200:
                break
            if time.monotonic() > deadline:
                raise StepFailed(
                    f"not ready within {timeout}s: " + "; ".join(
                        f"{cluster.url(v, '/health/ready')} -> {s} {b!r}" for v, (s, b) in last.items()
                    )
                )
            time.sleep(0.5)


def expect_ready(cluster, var):
    status, body = http_status(cluster.url(var, "/health/ready"))
    if status != 200:
        raise StepFailed(f"{cluster.url(var, '/health/ready')} answered {status}: {body!r}")


def expect_ready_seeing_loss(cluster, var, lost, timeout=30):
    """/health/ready must answer 200 throughout; where its body is the gateway's JSON
    ({"sets": [{"drives": N, "online": M, ...}]}), it must also come to show `lost` drives of
    every set offline within `timeout` s: a readiness that never notices a lost node would
    stay 200 with any number of nodes down."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = http_status(cluster.url(var, "/health/ready"))
        if status != 200:
            raise StepFailed(f"{cluster.url(var, '/health/ready')} answered {status}: {body!r}")
        try:
            sets = json.loads(body)["sets"]
            seen = [s["drives"] - s["online"] for s in sets]
        except (ValueError, KeyError, TypeError):
            return f"200 (body not parsed: {body[:80]!r})"
        if all(n == lost for n in seen):
            return f"200, {lost} drive(s) offline in each of {len(sets)} sets"
        if time.monotonic() > deadline:
            raise StepFailed(f"{cluster.url(var, '/health/ready')} still shows offline drives "
                             f"per set {seen} after {timeout}s, want {lost} each: {body!r}")
        time.sleep(0.5)


def make_set(folder, seed):
    """Writes one file per SIZES entry with seeded random bytes; returns {name: (size, sha256,
    md5)}."""
    folder.mkdir(parents=True)
    out = {}
    for i, (name, size) in enumerate(SIZES.items()):
        path = folder / name
        sha = harness.write_random_file(path, size, seed=seed * 100 + i)
        md5 = hashlib.md5(path.read_bytes()).hexdigest()
        out[name] = (size, sha, md5)
    return out


def aws(ep, *args, **kw):
    kw.setdefault("timeout", AWS_TIMEOUT)
    return harness.aws(ep, *args, **kw)


def upload(ep, folder, bucket, prefix):
    aws(ep, "s3", "cp", "--recursive", "--no-progress", str(folder), f"s3://{bucket}/{prefix}/")


def download_and_compare(ep, bucket, prefix, expected, scratch):
    """Downloads s3://bucket/prefix/ through ep into a fresh folder and compares every file
    byte for byte (sha256) with `expected`; also that nothing else came down."""
    dest = scratch / f"get-{prefix}-{ep.name}-{time.monotonic_ns()}"
    dest.mkdir(parents=True)
    aws(ep, "s3", "cp", "--recursive", "--no-progress", f"s3://{bucket}/{prefix}/", str(dest))
    got = {p.name for p in dest.iterdir()}
    if got != set(expected):
        raise StepFailed(f"{prefix}/ through {ep.name}: got {sorted(got)}, want {sorted(expected)}")
    for name, (size, sha, _md5) in expected.items():
        path = dest / name
        if path.stat().st_size != size or harness.sha256_file(path) != sha:
            raise StepFailed(
                f"{prefix}/{name} through {ep.name}: {path.stat().st_size} bytes, "
                f"sha256 {harness.sha256_file(path)}; want {size} bytes, sha256 {sha}"
            )
    shutil.rmtree(dest)


def check_heads(ep, bucket, prefix, expected):
    """Size and ETag of every object: MD5 for single PUTs, md5-of-md5s-N for multipart."""
    for name, (size, _sha, md5) in expected.items():
        head = harness.aws_json(ep, "s3api", "head-object", "--bucket", bucket,
                                "--key", f"{prefix}/{name}", timeout=AWS_TIMEOUT)
        etag = head.get("ETag", "").strip('"')
        if head.get("ContentLength") != size:
            raise StepFailed(f"{prefix}/{name} through {ep.name}: ContentLength "
                             f"{head.get('ContentLength')}, want {size}")
        parts = MULTIPART.get(name)
        if parts:
            if not etag.endswith(f"-{parts}"):
                raise StepFailed(f"{prefix}/{name}: ETag {etag!r} is not that of a "
                                 f"{parts}-part upload")
        elif etag != md5:
            raise StepFailed(f"{prefix}/{name}: ETag {etag!r}, want {md5!r}")


def check_listing(ep, bucket, want):
    """want: {key: size}. The bucket's whole listing through ep must be exactly that."""
    listing = harness.aws_json(ep, "s3api", "list-objects-v2", "--bucket", bucket,
                               timeout=AWS_TIMEOUT)
    got = {o["Key"]: o["Size"] for o in listing.get("Contents", [])}
    if got != want:
        raise StepFailed(f"listing through {ep.name}: got {got}, want {want}")


# --- the test ----------------------------------------------------------------------------------

def scenario(cluster, scratch):
    gw1 = Endpoint(scratch / "aws-gw1", cluster.url("TESSERA_S3_PORT"), "gateway1")
    gw2 = Endpoint(scratch / "aws-gw2", cluster.url("TESSERA_S3_PORT_2"), "gateway2")
    for ep in (gw1, gw2):
        ep.tmp.mkdir()
    bucket = f"compose-{secrets.token_hex(4)}"
    set_a = make_set(scratch / "set-a", seed=1)
    set_b = make_set(scratch / "set-b", seed=2)
    listing = {f"a/{n}": s for n, (s, _, _) in set_a.items()}
    listing.update({f"b/{n}": s for n, (s, _, _) in set_b.items()})

    with step("create bucket through gateway1"):
        aws(gw1, "s3", "mb", f"s3://{bucket}")
    with step("upload set A (0 B, 1 KiB, 300 KiB, 5 MiB, 20 MiB multipart) through gateway1"):
        upload(gw1, scratch / "set-a", bucket, "a")
    with step("upload set B (same sizes, other bytes) through gateway2"):
        upload(gw2, scratch / "set-b", bucket, "b")
    with step("sizes, ETags and listings agree on both gateways"):
        check_heads(gw2, bucket, "a", set_a)
        check_heads(gw1, bucket, "b", set_b)
        check_listing(gw1, bucket, listing)
        check_listing(gw2, bucket, listing)
    with step("read set A through gateway2, set B through gateway1, byte for byte"):
        download_and_compare(gw2, bucket, "a", set_a, scratch)
        download_and_compare(gw1, bucket, "b", set_b, scratch)

    with step("stop node3 (one drive of each erasure set)"):
        cluster.run("stop", "node3", timeout=STOP_TIMEOUT)
        ps = cluster.run("ps", timeout=60).stdout
        log("    " + "\n    ".join(l for l in ps.splitlines() if "node3" in l))
    with step("both gateways still ready with node3 down, and see its drives offline"):
        for var in ("TESSERA_ADMIN_PORT", "TESSERA_ADMIN_PORT_2"):
            log(f"    {var}: {expect_ready_seeing_loss(cluster, var, lost=1)}")
    with step("node3 down: read sets A and B through both gateways, byte for byte"):
        for ep in (gw1, gw2):
            download_and_compare(ep, bucket, "a", set_a, scratch)
            download_and_compare(ep, bucket, "b", set_b, scratch)
        check_listing(gw1, bucket, listing)
        check_listing(gw2, bucket, listing)
    with step("node3 down: write set C through gateway2, read it through gateway1"):
        set_c = make_set(scratch / "set-c", seed=3)
        upload(gw2, scratch / "set-c", bucket, "c")
        download_and_compare(gw1, bucket, "c", set_c, scratch)
        check_heads(gw1, bucket, "c", set_c)
    with step("both gateways still ready after the degraded reads and writes"):
        expect_ready(cluster, "TESSERA_ADMIN_PORT")
        expect_ready(cluster, "TESSERA_ADMIN_PORT_2")


class step:
    """Prints `ok   NAME (Ns)` or `FAIL NAME (Ns)` around a block."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.started = time.monotonic()
        return self

    def __exit__(self, exc_type, exc, tb):
        took = time.monotonic() - self.started
        log(f"{'ok  ' if exc_type is None else 'FAIL'} {self.name} ({took:.1f}s)")
        return False


def _sigterm(signum, _frame):
    raise SystemExit(128 + signum)  # so the finally block tears the cluster down


def main():
    signal.signal(signal.SIGTERM, _sigterm)
    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="tessera-compose-test-"))
    cluster = None
    up_attempted = False
    ok = False
    try:
        with step("find docker and compose"):
            run(["docker", "version", "--format", "{{.Server.Version}}"], 60)
            compose = find_compose()
            log(f"    compose: {shlex.join(compose)}; project: {PROJECT}; image: {IMAGE}")
        with step(f"build image {IMAGE} (scripts/build-image)"):
            r = run([str(REPO / "scripts" / "build-image"), IMAGE], BUILD_TIMEOUT, cwd=REPO)
            log("    " + "\n    ".join((r.stderr or "").strip().splitlines()[-1:]))
        with step("the image has the `node` and `gateway` subcommands"):
            for sub in ("node", "gateway"):
                r = run(["docker", "run", "--rm", "--network", "none", IMAGE, sub, "--help"], 60,
                        check=False)
                if r.returncode != 0:
                    raise StepFailed(f"`tessera {sub} --help` in the image: exit {r.returncode}\n"
                                     f"{r.stdout}{r.stderr}")
        cluster = Cluster(compose)
        with step("remove projects left by dead test runs"):
            sweep_stale_projects(cluster)
        cluster.use_ports(choose_ports())
        with step("compose up (6 nodes, 2 gateways)"):
            log("    host ports: " + ", ".join(f"{k}={v}" for k, v in cluster.ports.items()))
            up_attempted = True
            cluster.run("up", "-d", timeout=UP_TIMEOUT)
        with step(f"both gateways' /health/ready answer 200 (at most {READY_TIMEOUT}s)"):
            wait_ready(cluster, ["TESSERA_ADMIN_PORT", "TESSERA_ADMIN_PORT_2"], READY_TIMEOUT)
        with step("the admin API answers with the compose file's admin token, and only with it"):
            check_admin(cluster)
        scenario(cluster, scratch)
        ok = True
    except (Exception, KeyboardInterrupt, SystemExit) as e:
        if isinstance(e, (StepFailed, harness.AwsError)):
            log("    " + "\n    ".join(str(e).rstrip().splitlines()))
        elif isinstance(e, KeyboardInterrupt):
            log("interrupted")
        elif isinstance(e, SystemExit):
            log(f"stopped (exit {e.code})")
        else:
            log("    " + "\n    ".join(traceback.format_exc().rstrip().splitlines()))
    finally:
        # A second Ctrl-C must not leave the cluster running: teardown is bounded anyway.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if cluster is not None and up_attempted:
            if not ok:
                for args in (("ps",), ("logs", "--no-color", "--tail", "50")):
                    log(f"--- compose {' '.join(args)} ---")
                    try:
                        r = cluster.run(*args, timeout=60, check=False)
                        log((r.stdout or "") + (r.stderr or ""))
                    except StepFailed as e:
                        log(str(e))
            t0 = time.monotonic()
            try:
                r = cluster.run("down", "-v", "--remove-orphans", "--timeout", "10",
                                timeout=DOWN_TIMEOUT, check=False)
                log(f"{'ok  ' if r.returncode == 0 else 'FAIL'} compose down -v --remove-orphans "
                    f"({time.monotonic() - t0:.1f}s)")
                if r.returncode != 0:
                    ok = False
                    log((r.stdout or "") + (r.stderr or ""))
            except StepFailed as e:
                ok = False
                log(f"FAIL compose down -v --remove-orphans\n{e}")
        shutil.rmtree(scratch, ignore_errors=True)
    log(f"compose test {'passed' if ok else 'FAILED'} in {time.monotonic() - started:.0f}s")
    log(f"compose: {1 if ok else 0} passed, {0 if ok else 1} failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
