"""HTTPS: `tessera server --tls-cert --tls-key` with a self-signed certificate made here by
openssl (Debian's, on every machine), used through aws-cli with `--ca-bundle` and through
boto3 with `verify=`; a client that does not trust the certificate is refused, plain HTTP to
the TLS port gets no HTTP answer, and the admin listener speaks HTTPS too.

Run alone: python tests/clients/test_tls.py [test_name ...]
"""

import os
import ssl
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from clients_util import MIB  # noqa: E402


def make_certificate(folder):
    """A self-signed certificate for 127.0.0.1 and localhost, and its key."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=60)
    os.chmod(key, 0o600)
    return cert, key


def test_https_with_aws_cli_boto3_and_the_admin_listener(srv):
    work = srv.scratch("tls")
    cert, key = make_certificate(work)
    with harness.Server(extra_args=["--tls-cert", str(cert), "--tls-key", str(key)]) as tls:
        assert tls.s3_url.startswith("https://"), tls.s3_url
        assert tls.admin_url.startswith("https://"), tls.admin_url
        harness.aws(tls, "s3", "mb", "s3://secure", "--ca-bundle", cert)
        src = work / "up.bin"
        harness.write_random_file(src, 12 * MIB + 5, seed=3)
        harness.aws(tls, "s3", "cp", src, "s3://secure/up.bin", "--ca-bundle", cert)
        back = work / "down.bin"
        harness.aws(tls, "s3", "cp", "s3://secure/up.bin", back, "--ca-bundle", cert)
        assert harness.sha256_file(back) == harness.sha256_file(src)

        # A client that does not trust the certificate stops at the handshake.
        r = harness.aws(tls, "s3", "ls", check=False)
        assert r.returncode != 0, r.stdout
        assert "CERTIFICATE_VERIFY_FAILED" in r.stderr or "SSL" in r.stderr, r.stderr[-2000:]

        # boto3 with the certificate as its CA bundle.
        c = harness.boto3_client(tls, verify=str(cert))
        head = c.head_object(Bucket="secure", Key="up.bin")
        assert head["ContentLength"] == 12 * MIB + 5, head

        # Plain HTTP to the TLS port: no HTTP answer.
        try:
            status, _, _ = harness.urlopen(f"http://{tls.host_port}/", timeout=5)
        except Exception:  # reset, or a TLS alert that is not HTTP
            status = None
        assert status is None, f"plain HTTP answered {status}"

        # The admin listener is HTTPS as well.
        ctx = ssl.create_default_context(cafile=str(cert))
        with urllib.request.urlopen(tls.admin_url + "/health/live", context=ctx, timeout=10) as r:
            assert r.status == 200


if __name__ == "__main__":
    sys.exit(harness.run_module(globals()))
