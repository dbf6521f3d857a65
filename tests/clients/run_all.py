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

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from runner import run_files  # noqa: E402

if __name__ == "__main__":
    sys.exit(run_files(HERE, ("awscli", "boto3", "botocore"), default_file_timeout=900))
