"""Helpers shared by the tests of the external clients (test_rclone.py, test_restic.py,
test_s3cmd.py): find a client program (a missing one is a failure, never a skip), run it with
a timeout in a clean environment, build trees of seeded random files and compare trees byte
for byte.

rclone and restic come from Debian's packages (`apt-get install -y rclone restic`); s3cmd from
PyPI (tests/clients/requirements-extra.txt), installed into the same environment as this
interpreter.
"""

import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import harness

try:
    import ctypes

    _LIBC = ctypes.CDLL(None, use_errno=True)  # loaded before any fork
except Exception:  # not Linux / no libc
    _LIBC = None


def _die_with_parent():
    """Runs in the child before exec: SIGKILL the client if the test process dies, so no
    client outlives its test. (Linux only.)"""
    if _LIBC is not None:
        _LIBC.prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL

KIB = 1 << 10
MIB = 1 << 20

INSTALL_HINTS = {
    "rclone": "apt-get install -y rclone",
    "restic": "apt-get install -y restic",
    "s3cmd": f"{sys.executable} -m pip install -r "
             f"{Path(__file__).resolve().parent / 'requirements-extra.txt'}",
}


class ToolError(AssertionError):
    pass


def require_tool(name):
    """The path of the client program `name`: first beside this interpreter (the venv's bin
    folder, where pip puts s3cmd), then on PATH. Raises (the test fails, it is not skipped)
    when it is missing."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found:
        return found
    hint = INSTALL_HINTS.get(name, "")
    raise ToolError(
        f"{name} is not installed (not in {beside.parent} nor on PATH); this test needs it"
        + (f": install it with `{hint}`" if hint else "")
    )


# Host settings no client under test may see: AWS and proxy settings (AWS_CA_BUNDLE breaks
# Debian's rclone 1.60 with LoadCustomCABundleError), and the clients' own configuration.
_DROP_PREFIXES = ("AWS_", "BOTO_", "RCLONE_", "RESTIC_", "S3CMD_", "B2_", "AZURE_", "GOOGLE_")
_DROP_NAMES = {
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
    "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR",
    "XDG_CONFIG_HOME", "XDG_CACHE_HOME",
}


def clean_env(home, extra=None):
    """An environment for a client: the host's AWS_*, client and proxy settings removed, HOME
    (and the XDG folders) pointing into `home` (a private folder, created) so no configuration
    or cache of the host is read or written, plus `extra`."""
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(_DROP_PREFIXES) and k not in _DROP_NAMES}
    env.update({
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "LC_ALL": "C.UTF-8",
        "LANG": "C.UTF-8",
        "PYTHONUTF8": "1",
        "PYTHONIOENCODING": "utf-8",
        "TZ": "UTC",
    })
    env.update(extra or {})
    return env


def run(cmd, env, timeout, cwd=None, check=True, label=None):
    """Runs `cmd` (stdin closed) and returns the CompletedProcess with text stdout/stderr and
    `elapsed` seconds. A timeout is a failure; with `check`, so is a non-zero exit."""
    cmd = [str(c) for c in cmd]
    label = label or " ".join(Path(cmd[0]).name if i == 0 else c for i, c in enumerate(cmd))
    started = time.monotonic()
    try:
        r = subprocess.run(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=timeout,
                           preexec_fn=_die_with_parent)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode("utf-8", "replace")[-3000:]
        err = (e.stderr or b"").decode("utf-8", "replace")[-3000:]
        raise ToolError(f"{label}: timed out after {timeout}s\nstdout:\n{out}\nstderr:\n{err}") from e
    r.elapsed = time.monotonic() - started
    r.stdout = r.stdout.decode("utf-8", "replace")
    r.stderr = r.stderr.decode("utf-8", "replace")
    if check and r.returncode != 0:
        raise ToolError(
            f"{label}: exit {r.returncode} after {r.elapsed:.1f}s\n"
            f"stdout:\n{r.stdout[-4000:]}\nstderr:\n{r.stderr[-6000:]}"
        )
    return r


# --- trees of files ----------------------------------------------------------------------------

def write_file(path, size, rng):
    """Writes `size` bytes from the seeded generator `rng` to `path` (folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, MIB)
            f.write(rng.randbytes(n))
            left -= n


def write_tree(root, sizes, seed):
    """Writes every `relative path -> size` of `sizes` under `root`, seeded random bytes."""
    rng = random.Random(seed)
    for rel, size in sizes.items():
        write_file(Path(root) / rel, size, rng)


def tree_files(root):
    """{relative posix path: Path} of every regular file under root."""
    root = Path(root)
    out = {}
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            p = Path(dirpath) / n
            if p.is_file() and not p.is_symlink():
                out[p.relative_to(root).as_posix()] = p
    return out


def tree_digest(root):
    """{relative path: (size, sha256)} of every file under root."""
    return {rel: (p.stat().st_size, harness.sha256_file(p)) for rel, p in tree_files(root).items()}


def assert_same_tree(want, got_root, what):
    """`want` is a tree_digest() or a folder; every file of it is under got_root with the same
    bytes, and got_root holds no other file."""
    if not isinstance(want, dict):
        want = tree_digest(want)
    got = tree_digest(got_root)
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    differ = sorted(rel for rel in set(want) & set(got) if want[rel] != got[rel])
    if missing or extra or differ:
        raise AssertionError(
            f"{what}: {len(missing)} missing, {len(extra)} unexpected, {len(differ)} differ "
            f"(of {len(want)} files)\n  missing: {missing[:10]}\n  unexpected: {extra[:10]}\n"
            "  differ: " + ", ".join(f"{r} {want[r][0]}B->{got[r][0]}B" for r in differ[:10])
        )


SLOW_STEP = 5.0  # seconds: a client command slower than this is reported


def log_step(name, r):
    """Reports a slow client command (or every command, with TESSERA_CLIENTS_VERBOSE=1) on
    stderr, one line: what ran and how long it took."""
    if r.elapsed >= SLOW_STEP or os.environ.get("TESSERA_CLIENTS_VERBOSE"):
        print(f"    {name}: {r.elapsed:.1f}s", file=sys.stderr, flush=True)


def rmtree(path):
    """Removes a folder a test made (to keep the disk use of a test file bounded)."""
    shutil.rmtree(path)
