"""Runs every real-client compatibility test (tests/clients/test_*.py) against the release
binary and prints one line per test, PASS or FAIL, then a summary. Exits non-zero if any test
failed, or if a test file crashed or ran past its time limit.

Set up once (Python 3.9+):
    python3 -m venv /tmp/clients-venv
    /tmp/clients-venv/bin/pip install -r tests/clients/requirements.txt
Then:
    /tmp/clients-venv/bin/python tests/clients/run_all.py [test_awscli ...]

Each test file runs in its own process (and starts its own server on free ports over a
temporary folder); TESSERA_BIN picks the binary (default: the release build). Every request
has a timeout, every test a time limit (TESSERA_TEST_TIMEOUT, 300 s) and every file one too
(TESSERA_FILE_TIMEOUT, 900 s).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main():
    sys.path.insert(0, str(HERE))
    import harness

    missing = []
    for module in ("awscli", "boto3", "botocore"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        print(f"missing Python packages: {', '.join(missing)}; install them with\n"
              f"  {sys.executable} -m pip install -r {HERE / 'requirements.txt'}")
        return 2
    binary = harness.tessera_bin()
    if not binary.is_file():
        print(f"tessera binary not found at {binary}: build it with `cargo build --release` "
              "or set TESSERA_BIN")
        return 2

    # SIGTERM -> SystemExit, so the running test file's process group is stopped below.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    wanted = set(a.removesuffix(".py") for a in sys.argv[1:])
    files = sorted(p for p in HERE.glob("test_*.py") if not wanted or p.stem in wanted)
    limit = int(os.environ.get("TESSERA_FILE_TIMEOUT", "900"))
    print(f"binary: {binary}")
    started = time.monotonic()
    passed = failed = 0
    broken = []
    for f in files:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, str(f)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=harness._die_with_parent,  # even if this runner is SIGKILLed
        )
        timer_fired = []

        def on_timeout(p=proc):
            timer_fired.append(True)
            _stop_group(p)

        import threading

        timer = threading.Timer(limit, on_timeout)
        timer.start()
        file_passed = file_failed = 0
        try:
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                print(line, flush=True)
                if line.startswith("PASS "):
                    file_passed += 1
                elif line.startswith("FAIL "):
                    file_failed += 1
            proc.wait()
        except BaseException:
            _stop_group(proc)
            raise
        finally:
            timer.cancel()
        passed += file_passed
        failed += file_failed
        took = time.monotonic() - t0
        if timer_fired:
            broken.append(f"{f.name}: stopped after its time limit of {limit}s")
        elif proc.returncode != 0 and file_failed == 0:
            broken.append(f"{f.name}: exited with code {proc.returncode} ({took:.0f}s)")
    total = time.monotonic() - started
    print()
    print(f"{passed} passed, {failed} failed in {total:.0f}s")
    for b in broken:
        print(f"ERROR {b}")
    return 1 if failed or broken else 0


def _stop_group(proc):
    """SIGTERM the test file's process group (its server stops and its temporary folder is
    removed), then SIGKILL what is left."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


if __name__ == "__main__":
    sys.exit(main())
