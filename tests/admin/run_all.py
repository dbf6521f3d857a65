# Debian packages needed: chromium chromium-driver (test_dashboard's headless browser and its driver)
"""Runs the admin listener tests (tests/admin/test_*.py) against the release binary: the OpenAPI
contract (test_admin_api), /metrics (test_metrics) and the dashboard in headless Chromium
(test_dashboard). One line per test, PASS or FAIL, then 'N passed, N failed'. Exits non-zero if
any test failed, or a test file crashed or ran past its time limit.

Set up once (Python 3.9+):
    python3 -m venv /tmp/adminvenv
    /tmp/adminvenv/bin/pip install -r tests/admin/requirements.txt
Then:
    TESSERA_BIN=target/release/tessera /tmp/adminvenv/bin/python tests/admin/run_all.py [test_metrics ...]

Each test file runs in its own process and starts its own cluster (3 nodes x 2 drives, 4+2, one
gateway) on free loopback ports over a temporary folder. Every request has a timeout, every test
a time limit (TESSERA_TEST_TIMEOUT, 180 s) and every file one too (TESSERA_FILE_TIMEOUT, 600 s).
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "clients"))

from runner import run_files  # noqa: E402  (the runner of tests/clients/run_all.py)

if __name__ == "__main__":
    sys.exit(run_files(
        HERE,
        ("boto3", "botocore", "selenium", "jsonschema", "yaml", "prometheus_client",
         "openapi_spec_validator"),
        default_file_timeout=600,
        stop_grace=20,  # a whole cluster stops
        summary="all files took {seconds:.0f}s\n{passed} passed, {failed} failed",
    ))
