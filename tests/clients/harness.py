"""Harness for the real-client compatibility tests.

Starts the real `tessera` binary on free ports over a fresh temporary data folder, parses the
URLs it prints, and always stops it (SIGTERM, then SIGKILL) and removes the folder, whether the
tests pass, fail or are interrupted. The server's stderr goes to a log file whose tail is
printed when a test fails.

Also: a helper that runs aws-cli v1 (`python -m awscli`, from this interpreter, so the venv's
copy is used) with a private config file and credentials, with the host's AWS_* settings
removed so nothing from the machine leaks in; a boto3 client factory; and a tiny test runner
(`run_module`) used by every test_*.py file.

tests/admin/cluster.py builds on this module too: the environment isolation, the binary, the
temporary folders and the stopping of what is left at exit, start_tessera, stop_process,
urlopen, boto3_client and the per-test loop (`run_tests`) are shared from here.

Environment:
  TESSERA_BIN        path of the binary (default: $CARGO_TARGET_DIR/release/tessera, or
                     <repo>/target/release/tessera)
  TESSERA_KEEP_DATA  if set, the temporary folder is left in place (and its path printed)
  TESSERA_TEST_TIMEOUT  per-test time limit in seconds (default 300)
"""

import atexit
import base64
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import zlib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

ACCESS_KEY = "TESTACCESSKEY0000001"
SECRET_KEY = "testsecretkey/with+chars0000000000000001"
REGION = "us-east-1"

START_TIMEOUT = 30  # seconds for the server to print `ready`
STOP_TIMEOUT = 10  # seconds between SIGTERM and SIGKILL
REQUEST_TIMEOUT = 60  # seconds, socket timeout for every request the tests make


# --- environment isolation -------------------------------------------------------------------

_HOST_VARS = (
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
    "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "BOTO_CONFIG",
)


def _isolate_environment():
    """Removes the host's AWS settings (AWS_CA_BUNDLE, AWS_PROFILE, AWS_ENDPOINT_URL,
    AWS_REQUEST_CHECKSUM_CALCULATION, ...) and proxies from this process, so boto3 in the
    tests sees only what the tests give it."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "BOTO_")) or name in _HOST_VARS:
            del os.environ[name]
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"


_isolate_environment()


# --- the binary --------------------------------------------------------------------------------

def tessera_bin():
    """The binary to test: $TESSERA_BIN, else <target dir>/release/tessera where the target dir
    is $CARGO_TARGET_DIR (relative to the repo root when relative) or <repo>/target."""
    explicit = os.environ.get("TESSERA_BIN")
    if explicit:
        return Path(explicit).resolve()
    target = os.environ.get("CARGO_TARGET_DIR")
    target = (REPO_ROOT / target) if target else (REPO_ROOT / "target")
    return (target / "release" / "tessera").resolve()


def require_tessera_bin():
    """tessera_bin(), or RuntimeError saying how to get one when there is no such file."""
    binary = tessera_bin()
    if not binary.is_file():
        raise RuntimeError(f"tessera binary not found at {binary}: build it with "
                           "`cargo build --release` or set TESSERA_BIN")
    return binary


try:
    import ctypes

    _LIBC = ctypes.CDLL(None, use_errno=True)  # loaded before any fork
except Exception:  # not Linux / no libc
    _LIBC = None


def _die_with_parent():
    """Runs in the child before exec: SIGKILL it if the test process dies (even by SIGKILL),
    so no server outlives its tests. (Linux only.)"""
    if _LIBC is not None:
        PR_SET_PDEATHSIG = 1
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


_running = []  # servers (or clusters) not yet stopped, stopped at exit whatever happens


@atexit.register
def _stop_all():
    for s in list(_running):
        s.stop()


def _sigterm_to_exit(signum, _frame):
    # Turn SIGTERM into SystemExit so finally blocks and atexit run (server stopped, temp
    # folder removed).
    raise SystemExit(128 + signum)


TMP_PREFIX = "tessera-clients-"


def _sweep_stale_folders(prefix=TMP_PREFIX):
    """Removes temporary folders left by test processes that were killed outright (SIGKILL
    leaves no chance to clean up): those whose owner.pid names no live process."""
    root = Path(tempfile.gettempdir())
    for d in root.glob(prefix + "*"):
        try:
            pid = int((d / "owner.pid").read_text())
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except (OSError, ValueError):
            pass  # no pid file yet, or not ours to judge


def new_temp_folder(owner, prefix=TMP_PREFIX):
    """A fresh temporary folder for `owner` (a Server, a Cluster: anything with stop()), after
    sweeping stale ones; marked with this process's pid, and `owner` is stopped at exit."""
    _sweep_stale_folders(prefix)
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    (tmp / "owner.pid").write_text(str(os.getpid()))
    _running.append(owner)
    return tmp


def remove_temp_folder(owner, tmp):
    """Removes `tmp` (unless TESSERA_KEEP_DATA is set: then prints its path) and forgets
    `owner`. Returns None, for `self.tmp = remove_temp_folder(self, self.tmp)`."""
    if tmp is not None:
        if os.environ.get("TESSERA_KEEP_DATA"):
            print(f"  (kept {tmp})", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    if owner in _running:
        _running.remove(owner)
    return None


def stop_process(proc, timeout=STOP_TIMEOUT):
    """SIGTERM `proc` (a Popen, or None), then SIGKILL after `timeout` seconds."""
    if proc is not None and proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
        except ProcessLookupError:
            pass


def start_tessera(args, stderr, env, lines, on_line=lambda _line: None):
    """Starts `tessera ARGS` (stdin closed, stderr to the file `stderr`, SIGKILLed if this
    process dies) and a thread that drains its stdout for good, so it can never block on a
    full pipe: each line goes to the list `lines` and, stripped, to on_line. Returns
    (proc, ready): `ready` is set on the line `ready`, or at EOF (the process ended)."""
    proc = subprocess.Popen(
        [str(tessera_bin()), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
        env=env,
        preexec_fn=_die_with_parent,
    )
    ready = threading.Event()

    def read_stdout():
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            lines.append(line)
            t = line.strip()
            on_line(t)
            if t == "ready":
                ready.set()
        ready.set()  # EOF: the process ended

    threading.Thread(target=read_stdout, daemon=True).start()
    return proc, ready


class Server:
    """A running `tessera server` over a fresh temporary data folder. Use as a context
    manager, or call start() and stop()."""

    def __init__(self, extra_args=()):
        self.extra_args = list(extra_args)
        self.proc = None
        self.tmp = None
        self.s3_url = None
        self.admin_url = None
        self.log_path = None
        self._log_file = None
        self._stdout_lines = []

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    @property
    def host_port(self):
        return self.s3_url.split("://", 1)[1]

    @property
    def host(self):
        return self.host_port.rsplit(":", 1)[0]

    @property
    def port(self):
        return int(self.host_port.rsplit(":", 1)[1])

    def start(self):
        require_tessera_bin()
        self.tmp = new_temp_folder(self)
        data = self.tmp / "data"
        self.log_path = self.tmp / "server.log"
        self._log_file = open(self.log_path, "ab")
        env = dict(os.environ)
        env["TESSERA_ROOT_ACCESS_KEY"] = ACCESS_KEY
        env["TESSERA_ROOT_SECRET_KEY"] = SECRET_KEY
        env.setdefault("RUST_LOG", "info")
        env["NO_COLOR"] = "1"  # plain log lines
        for name in list(env):
            if name.startswith("TESSERA_") and name not in (
                "TESSERA_ROOT_ACCESS_KEY", "TESSERA_ROOT_SECRET_KEY", "TESSERA_LOG_FORMAT",
            ):
                # TESSERA_DATA, TESSERA_ADDRESS, TESSERA_CONFIG, ... of the host must not
                # override the flags below.
                del env[name]
        self.proc, ready = start_tessera(
            [
                "server",
                "--data", str(data),
                "--address", "127.0.0.1:0",
                "--admin-address", "127.0.0.1:0",
                *self.extra_args,
            ],
            self._log_file, env, self._stdout_lines, self._read_url,
        )
        if not ready.wait(START_TIMEOUT) or self.proc.poll() is not None or not self.s3_url:
            out = "\n".join(self._stdout_lines)
            log = self.log_text()
            self.stop()
            raise RuntimeError(
                f"tessera did not start (exit code {self.proc.returncode}).\n"
                f"stdout:\n{out}\nlog:\n{log}"
            )
        return self

    def _read_url(self, line):
        if line.startswith("S3 API:"):
            self.s3_url = line[len("S3 API:"):].strip()
        elif line.startswith("admin:"):
            self.admin_url = line[len("admin:"):].strip()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        try:
            return self.log_path.read_text("utf-8", "replace")
        except Exception:
            return ""

    def log_tail(self, lines=80):
        return "\n".join(self.log_text().splitlines()[-lines:])

    def stop(self):
        """SIGTERM, then SIGKILL after STOP_TIMEOUT; then removes the temporary folder."""
        stop_process(self.proc)
        if self.proc is not None and self.proc.stdout:
            try:
                self.proc.stdout.close()
            except Exception:
                pass
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        self.tmp = remove_temp_folder(self, self.tmp)

    def scratch(self, name):
        """A fresh folder for a test's local files, inside the temporary folder (so removed
        with it)."""
        p = self.tmp / "scratch" / name
        if p.exists():
            shutil.rmtree(p)
        p.mkdir(parents=True)
        return p


# --- aws-cli -----------------------------------------------------------------------------------

# aws-cli's own defaults (multipart above 8 MiB in 8 MiB parts, 10 threads) apply.
AWS_CONFIG = """\
[default]
region = us-east-1
output = json
max_attempts = 1
retry_mode = standard
s3 =
  signature_version = s3v4
  addressing_style = path
"""


class AwsError(AssertionError):
    pass


def aws_env(srv, s3_config_extra=""):
    """The environment aws-cli runs in: the host's AWS_* variables and proxies removed,
    a private config file (AWS_CONFIG plus `s3_config_extra` lines in its s3 section), the
    test credentials."""
    cfg_dir = srv.tmp / "aws"
    cfg_dir.mkdir(exist_ok=True)
    name = "config-" + hashlib.sha256(s3_config_extra.encode()).hexdigest()[:12]
    cfg = cfg_dir / name
    if not cfg.exists():
        extra = "".join(f"  {line.strip()}\n" for line in s3_config_extra.splitlines() if line.strip())
        cfg.write_text(AWS_CONFIG + extra)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and not k.startswith("BOTO_") and k not in _HOST_VARS}
    env.update({
        "AWS_CONFIG_FILE": str(cfg),
        "AWS_SHARED_CREDENTIALS_FILE": str(cfg_dir / "no-credentials"),
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "PYTHONUTF8": "1",
        "PYTHONIOENCODING": "utf-8",
        "HOME": str(cfg_dir),  # no ~/.aws of the host
    })
    return env


def aws(srv, *args, check=True, timeout=300, cwd=None, read_timeout=REQUEST_TIMEOUT,
        s3_config_extra="", env_extra=None):
    """Runs `python -m awscli ARGS --endpoint-url URL` and returns the CompletedProcess
    (stdout and stderr as text, `elapsed` in seconds). With check, a non-zero exit raises
    AwsError with the output."""
    cmd = [
        sys.executable, "-m", "awscli", *map(str, args),
        "--endpoint-url", srv.s3_url,
        "--cli-connect-timeout", "10",
        "--cli-read-timeout", str(read_timeout),
    ]
    env = aws_env(srv, s3_config_extra)
    env.update(env_extra or {})
    started = time.monotonic()
    try:
        r = subprocess.run(
            cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
            capture_output=True, timeout=timeout,
        )
    except subprocess.TimeoutExpired as e:
        raise AwsError(f"aws {' '.join(map(str, args))}: timed out after {timeout}s") from e
    r.elapsed = time.monotonic() - started
    r.stdout = r.stdout.decode("utf-8", "replace")
    r.stderr = r.stderr.decode("utf-8", "replace")
    if check and r.returncode != 0:
        raise AwsError(
            f"aws {' '.join(map(str, args))}: exit {r.returncode}\n"
            f"stdout:\n{r.stdout[-4000:]}\nstderr:\n{r.stderr[-4000:]}"
        )
    return r


def aws_json(srv, *args, **kw):
    import json

    r = aws(srv, *args, **kw)
    return json.loads(r.stdout) if r.stdout.strip() else {}


# --- boto3 -------------------------------------------------------------------------------------

def boto3_client(srv, verify=None, **config):
    """A boto3 S3 client for the server: the SDK's default behaviour (CRC32 request checksums,
    response checksum validation) with path-style addressing, timeouts and no retries (so
    server errors surface). `verify`: a CA bundle for an HTTPS server. `config` adds botocore
    Config options."""
    import boto3
    from botocore.config import Config

    base = Config(
        region_name=REGION,
        s3={"addressing_style": "path"},
        connect_timeout=10,
        read_timeout=REQUEST_TIMEOUT,
        retries={"total_max_attempts": 1},
    )
    if config:
        base = base.merge(Config(**config))
    session = boto3.session.Session(
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
    )
    return session.client("s3", endpoint_url=srv.s3_url, config=base, verify=verify)


# --- small helpers -----------------------------------------------------------------------------

def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_random_file(path, size, seed=None):
    """Writes `size` random bytes (os.urandom, or a seeded generator) and returns the sha256."""
    import random

    h = hashlib.sha256()
    rng = random.Random(seed) if seed is not None else None
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 1 << 20)
            block = rng.randbytes(n) if rng else os.urandom(n)
            f.write(block)
            h.update(block)
            left -= n
    return h.hexdigest()


def md5_hex(data):
    return hashlib.md5(data).hexdigest()


def crc32_b64(data):
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def urlopen(url, method="GET", data=None, headers=None, timeout=REQUEST_TIMEOUT):
    """urllib request without any proxy; returns (status, headers, body), headers
    case-insensitive. HTTP errors are returned, not raised."""
    import urllib.error
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with opener.open(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        body = e.read()
        e.close()
        return e.code, e.headers, body


def error_code(body):
    """The <Code> of an S3 error XML body, or None."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] == "Code":
            return el.text
    return None


# --- the runner --------------------------------------------------------------------------------

class TestTimeout(BaseException):
    """Raised by the per-test alarm; a BaseException so that no `except Exception` on the way
    (a retry loop, a poll) swallows it and runs the test past its limit."""


def _alarm(_signum, _frame):
    raise TestTimeout("test took longer than its time limit")


def select_tests(module_globals, name, default_limit):
    """Starts a test file's run: SIGTERM becomes SystemExit (so finally blocks and atexit stop
    what runs), SIGALRM raises TestTimeout. Returns (tests, limit): the module's `test_*`
    functions in definition order, only those named as arguments when some are (tests is None,
    said, when one is no test of the module), and the per-test limit in seconds
    (TESSERA_TEST_TIMEOUT, else `default_limit`)."""
    signal.signal(signal.SIGTERM, _sigterm_to_exit)
    signal.signal(signal.SIGALRM, _alarm)
    only = set(sys.argv[1:])  # optional: test function names to run
    tests = [
        (n, f) for n, f in module_globals.items()
        if n.startswith("test_") and callable(f) and (not only or n in only)
    ]
    limit = int(os.environ.get("TESSERA_TEST_TIMEOUT", str(default_limit)))
    if only and len(tests) != len(only):
        print(f"no such test in {name}: {', '.join(sorted(only - {n for n, _ in tests}))}")
        return None, limit
    return tests, limit


def run_tests(name, tests, limit, fixture, check, on_failure):
    """Runs each test as fn(fixture()) under a `limit`-second alarm, then check(what it got)
    (raises when the test left it broken), and prints one line per test, PASS or FAIL; on
    failure the traceback, then on_failure(test_name) for logs. Returns (passed, failed)."""
    passed = failed = 0
    for test_name, fn in tests:
        started = time.monotonic()
        error = None
        try:
            arg = fixture()
            signal.alarm(limit)
            try:
                fn(arg)
            finally:
                signal.alarm(0)
            check(arg)
        except (Exception, TestTimeout):
            error = traceback.format_exc()
        took = time.monotonic() - started
        status = "PASS" if error is None else "FAIL"
        print(f"{status} {name}::{test_name} ({took:.1f}s)", flush=True)
        if error is None:
            passed += 1
        else:
            failed += 1
            print(_indent(error), flush=True)
            on_failure(test_name)
    return passed, failed


def run_module(module_globals, name=None):
    """Runs every `test_*` function of a module, in definition order, each with one argument:
    a Server shared by the module's tests (restarted if a test left it dead). Prints one line
    per test, PASS or FAIL, and returns the process exit code (0 when all passed)."""
    name = name or Path(module_globals.get("__file__", "tests")).stem
    tests, limit = select_tests(module_globals, name, 300)
    if tests is None:
        return 2
    srv = None

    def server():
        nonlocal srv
        if srv is None or not srv.alive():
            if srv is not None:
                srv.stop()
            srv = Server().start()
        return srv

    def check(s):
        if not s.alive():
            raise AssertionError(f"the server died during the test (exit code {s.proc.returncode})")

    def print_log(test_name):
        if srv is not None and srv.log_path is not None and srv.log_path.exists():
            kept = Path(tempfile.gettempdir()) / "tessera-client-test-logs"
            kept.mkdir(exist_ok=True)
            kept = kept / f"{name}.{test_name}.log"
            shutil.copyfile(srv.log_path, kept)
            print(f"    --- server log, last lines (whole log: {kept}) ---", flush=True)
            print(_indent(srv.log_tail()), flush=True)

    try:
        _, failed = run_tests(name, tests, limit, server, check, print_log)
    finally:
        if srv is not None:
            srv.stop()
    return 1 if failed else 0


def _indent(text, prefix="    "):
    return "\n".join(prefix + line for line in text.rstrip().splitlines())
