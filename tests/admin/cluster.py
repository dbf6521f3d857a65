"""A local Tessera cluster of real processes for the admin listener tests, and their runner.

`Cluster` starts 3 `tessera node` processes of 2 drives each (erasure 4+2: one erasure set of
6 drives, two on each node, so losing a node leaves 4 of 6: write quorum held, no tolerance
left) and one `tessera gateway`, all on free loopback ports over a fresh temporary folder, and
always stops them (SIGTERM, then SIGKILL) and removes the folder: at exit, on failure, on
SIGTERM. Each process's stdout is read for the `ready` line and the URLs it prints; its stderr
goes to a log file whose tail is printed when a test fails.

Environment:
  TESSERA_BIN           the binary (default: $CARGO_TARGET_DIR/release/tessera, or
                        <repo>/target/release/tessera)
  TESSERA_KEEP_DATA     if set, the temporary folder is left in place (and its path printed)
  TESSERA_TEST_TIMEOUT  per-test time limit in seconds (default 180)
"""

import json
import os
import random
import signal
import socket
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "clients"))

# harness isolates this process from the host's AWS settings and proxies when imported, and
# gives the binary, the temporary folders (swept, removed, stopped at exit), start_tessera,
# stop_process, urlopen, boto3_client and the per-test loop: only what is a cluster's is below.
import harness  # noqa: E402
from harness import (  # noqa: E402,F401  (the tests import the keys and REPO_ROOT from here)
    ACCESS_KEY, REGION, REPO_ROOT, SECRET_KEY, TestTimeout, _indent,
)

CLUSTER_SECRET = "admin-test-cluster-secret"
ADMIN_TOKEN = "admin-test-token-0123456789abcdef"
DEPLOYMENT_ID = "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f"

START_TIMEOUT = 30  # seconds for a process to print `ready`
STOP_TIMEOUT = 5  # seconds between SIGTERM and SIGKILL at the end
REQUEST_TIMEOUT = 20  # socket timeout of every request the tests make
TMP_PREFIX = "tessera-admin-"


def artifacts_dir():
    """Where screenshots go: $TESSERA_ARTIFACTS, else $CARGO_TARGET_DIR/admin-artifacts, else
    /tmp."""
    explicit = os.environ.get("TESSERA_ARTIFACTS")
    if explicit:
        d = Path(explicit)
    elif os.environ.get("CARGO_TARGET_DIR"):
        d = REPO_ROOT / os.environ["CARGO_TARGET_DIR"] / "admin-artifacts"
    else:
        d = Path(tempfile.gettempdir())
    d.mkdir(parents=True, exist_ok=True)
    return d.resolve()


_used_ports = set()


def free_port():
    """A free loopback port below Linux's ephemeral range (32768 and up), so no outgoing
    connection can take it between this check and the process's bind."""
    for _ in range(1000):
        p = random.randrange(20000, 32000)
        if p in _used_ports:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                continue
        _used_ports.add(p)
        return p
    raise RuntimeError("no free port")


class Proc:
    """One `tessera` process: started, waited for `ready`, stdout drained for good."""

    def __init__(self, name, args, log_path, env):
        self.name = name
        self.log_path = log_path
        self.urls = {}  # "S3 API" / "admin" / "node RPC" -> URL
        self.stdout_lines = []
        self._log = open(log_path, "ab")
        self.proc, ready = harness.start_tessera(args, self._log, env, self.stdout_lines,
                                                 self._read_url)
        if not ready.wait(START_TIMEOUT) or self.proc.poll() is not None:
            self.kill()
            raise RuntimeError(
                f"{name} did not start (exit code {self.proc.returncode}).\n"
                f"stdout:\n" + "\n".join(self.stdout_lines) + f"\nlog:\n{self.log_tail()}")

    def _read_url(self, line):
        if ":" in line and "http://" in line:
            label, url = line.split(":", 1)
            self.urls[label.strip()] = url.strip()

    def alive(self):
        return self.proc.poll() is None

    def kill(self):
        """SIGKILL and wait."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._close()

    def stop(self):
        """SIGTERM, then SIGKILL after STOP_TIMEOUT."""
        harness.stop_process(self.proc, STOP_TIMEOUT)
        self._close()

    def _close(self):
        for f in (self.proc.stdout, self._log):
            try:
                f.close()
            except Exception:
                pass

    def log_tail(self, lines=30):
        try:
            text = self.log_path.read_text("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class Cluster:
    """3 nodes x 2 drives, erasure 4+2 (one set), one gateway; all on loopback."""

    def __init__(self, nodes=3, drives=2, ec="4+2", admin_token=ADMIN_TOKEN, extra_toml=""):
        self.n_nodes, self.n_drives, self.ec = nodes, drives, ec
        self.admin_token = admin_token
        self.extra_toml = extra_toml
        self.tmp = None
        self.nodes = {}  # name -> Proc
        self.node_addresses = {}  # name -> host:port
        self.gateway = None
        self.topology = None

    @property
    def node_names(self):
        return [f"node{i + 1}" for i in range(self.n_nodes)]

    def _env(self, gateway=False):
        env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
        env.update({
            "TESSERA_CLUSTER_SECRET": CLUSTER_SECRET,
            "TESSERA_ROOT_ACCESS_KEY": ACCESS_KEY,
            "TESSERA_ROOT_SECRET_KEY": SECRET_KEY,
            "RUST_LOG": os.environ.get("RUST_LOG", "info"),
            "NO_COLOR": "1",
        })
        if gateway and self.admin_token:
            env["TESSERA_ADMIN_TOKEN"] = self.admin_token
        return env

    def start(self):
        harness.require_tessera_bin()
        self.tmp = harness.new_temp_folder(self, TMP_PREFIX)
        lines = [f'deployment_id = "{DEPLOYMENT_ID}"', f'ec = "{self.ec}"', ""]
        for name in self.node_names:
            addr = f"127.0.0.1:{free_port()}"
            self.node_addresses[name] = addr
            drives = ", ".join(json.dumps(str(self.tmp / name / f"d{d}")) for d in range(self.n_drives))
            lines += ["[[nodes]]", f'name = "{name}"', f'address = "{addr}"', f"drives = [{drives}]", ""]
        lines.append(self.extra_toml)
        self.topology = self.tmp / "cluster.toml"
        self.topology.write_text("\n".join(lines))
        for name in self.node_names:
            self.nodes[name] = Proc(name, ["node", "--config", str(self.topology), "--name", name],
                                    self.tmp / f"{name}.log", self._env())
        self.gateway = Proc("gateway", [
            "gateway", "--config", str(self.topology),
            "--address", "127.0.0.1:0", "--admin-address", "127.0.0.1:0",
        ], self.tmp / "gateway.log", self._env(gateway=True))
        if "S3 API" not in self.gateway.urls or "admin" not in self.gateway.urls:
            raise RuntimeError(f"gateway printed no S3/admin URL:\n{self.gateway.stdout_lines}")
        poll(lambda: http("GET", self.admin_url + "/health/ready")[0] == 200 or None, 30,
             "the gateway reports ready")
        return self

    def stop(self):
        procs = ([self.gateway] if self.gateway else []) + list(self.nodes.values())
        for p in procs:
            p.stop()
        self.tmp = harness.remove_temp_folder(self, self.tmp)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # --- what the tests use ----------------------------------------------------------------

    @property
    def admin_url(self):
        return self.gateway.urls["admin"].rstrip("/")

    @property
    def s3_url(self):
        return self.gateway.urls["S3 API"].rstrip("/")

    def kill_node(self, name):
        """SIGKILL node `name` and wait for it."""
        self.nodes[name].kill()

    def logs(self, lines=30):
        out = []
        for p in ([self.gateway] if self.gateway else []) + list(self.nodes.values()):
            out.append(f"--- {p.name} ({p.log_path}) ---\n{p.log_tail(lines)}")
        return "\n".join(out)

    def s3(self):
        """A boto3 S3 client of the gateway (path style, no retries)."""
        return harness.boto3_client(self, read_timeout=REQUEST_TIMEOUT)

    def login(self, access_key=ACCESS_KEY, secret_key=SECRET_KEY):
        status, _, body = http("POST", self.admin_url + "/admin/v1/login",
                               {"access_key": access_key, "secret_key": secret_key})
        assert status == 200, f"login: {status} {body[:300]!r}"
        return json.loads(body)["token"]

    def get(self, path, token=None, expect=200):
        """GET admin `path` with a bearer token (when given); returns the decoded JSON body."""
        status, headers, body = http("GET", self.admin_url + path, token=token)
        assert status == expect, f"GET {path}: {status} (expected {expect}) {body[:500]!r}"
        return json.loads(body)


# --- HTTP ------------------------------------------------------------------------------------

def http(method, url, body=None, token=None, headers=None, timeout=REQUEST_TIMEOUT):
    """One request without any proxy: (status, headers, body bytes). HTTP errors are returned;
    a connection failure gives status 0. `body` (not bytes) is sent as JSON."""
    import urllib.error

    h = dict(headers or {})
    if token:
        h["Authorization"] = f"Bearer {token}"
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    try:
        return harness.urlopen(url, method, body, h, timeout)
    except (urllib.error.URLError, OSError) as e:
        return 0, {}, str(e).encode()


def poll(fn, timeout, what, interval=0.5):
    """Calls fn until it returns something truthy (returned) or `timeout` seconds pass
    (AssertionError naming `what` and the last value or exception)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = fn()
            if v:
                return v
            last = v
        except Exception as e:  # a request failing while the cluster changes: try again
            last = f"{type(e).__name__}: {e}"
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout} s: {what}; last: {last}")
        time.sleep(interval)


# --- the runner ------------------------------------------------------------------------------

def run_module(module_globals, **cluster_args):
    """Starts one Cluster for the module, runs its `test_*(cluster)` functions in definition
    order (so tests that kill a node come last), one line each, PASS or FAIL, then
    'N passed, N failed'. Returns the exit code. Arguments name tests to run (default all)."""
    name = Path(module_globals.get("__file__", "tests")).stem
    tests, limit = harness.select_tests(module_globals, name, 180)
    if tests is None:
        return 2
    cluster = Cluster(**cluster_args)
    try:
        try:
            signal.alarm(limit)
            try:
                cluster.start()
            finally:
                signal.alarm(0)
        except (Exception, TestTimeout):
            print(f"FAIL {name}::<cluster start>", flush=True)
            print(_indent(traceback.format_exc()))
            print(_indent(cluster.logs()), flush=True)
            print(f"\n0 passed, {len(tests)} failed")
            return 1

        def check(c):
            if not c.gateway.alive():
                raise AssertionError("the gateway died during the test")

        def print_logs(_test_name):
            print("    --- process logs, last lines ---")
            print(_indent(cluster.logs()), flush=True)

        passed, failed = harness.run_tests(name, tests, limit, lambda: cluster, check, print_logs)
    finally:
        cluster.stop()
    print(f"\n{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0
