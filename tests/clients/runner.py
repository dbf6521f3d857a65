"""The suite runner behind tests/clients/run_all.py and tests/admin/run_all.py: runs every
test_*.py file of a folder (or those named as arguments), each in its own process group with a
time limit, passes its PASS/FAIL lines through, then prints the totals. See run_files."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import harness  # beside this file; both run_all.py put tests/clients on sys.path


def run_files(folder, required_modules, default_file_timeout, stop_grace=15,
              summary="{passed} passed, {failed} failed in {seconds:.0f}s"):
    """Runs folder/test_*.py (those named in sys.argv[1:] when some are, with or without .py),
    one process each, under a time limit of $TESSERA_FILE_TIMEOUT or `default_file_timeout`
    seconds. Each file's lines are printed as they come, bar its own 'N passed, N failed'
    summary; PASS and FAIL lines are counted. At the end: a blank line, `summary` (formatted
    with passed, failed and seconds, all files together), then one 'ERROR ...' line per file
    that crashed or ran past its limit. Returns the exit code: 2 when a module of
    `required_modules` or the binary is missing, 1 when any test failed or any file broke."""
    folder = Path(folder)
    missing = []
    for module in required_modules:
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        print(f"missing Python packages: {', '.join(missing)}; install them with\n"
              f"  {sys.executable} -m pip install -r {folder / 'requirements.txt'}")
        return 2
    try:
        binary = harness.require_tessera_bin()
    except RuntimeError as e:
        print(e)
        return 2

    # SIGTERM -> SystemExit, so the running test file's process group is stopped below.
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    wanted = set(a.removesuffix(".py") for a in sys.argv[1:])
    files = sorted(p for p in folder.glob("test_*.py") if not wanted or p.stem in wanted)
    limit = int(os.environ.get("TESSERA_FILE_TIMEOUT", str(default_file_timeout)))
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
            _stop_group(p, stop_grace)

        timer = threading.Timer(limit, on_timeout)
        timer.start()
        file_passed = file_failed = 0
        try:
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                if line.startswith("PASS "):
                    file_passed += 1
                elif line.startswith("FAIL "):
                    file_failed += 1
                elif " passed, " in line and line.endswith(" failed"):
                    continue  # the file's own summary; the total is printed below
                print(line, flush=True)
            proc.wait()
        except BaseException:
            _stop_group(proc, stop_grace)
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
    print()
    print(summary.format(passed=passed, failed=failed, seconds=time.monotonic() - started))
    for b in broken:
        print(f"ERROR {b}")
    return 1 if failed or broken else 0


def _stop_group(proc, grace):
    """SIGTERM the test file's process group (its servers stop and its temporary folder is
    removed), then SIGKILL what is left after `grace` seconds."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass
