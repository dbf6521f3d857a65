"""The admin API against its contract, docs/openapi.yaml (and docs/admin-api.md): the spec is a
valid OpenAPI 3.1 document naming every path of the prose; every response of a real cluster
(3 nodes x 2 drives, 4+2, one gateway) validates against the schema of its status; credentials
are enforced; the numbers are right, before and after a node is SIGKILLed.

Run: python tests/admin/test_admin_api.py [test_name ...]   (see cluster.py for the environment)
"""

import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster import (  # noqa: E402
    ACCESS_KEY, ADMIN_TOKEN, REGION, REPO_ROOT, SECRET_KEY, http, poll, run_module,
)

SPEC_PATH = REPO_ROOT / "docs" / "openapi.yaml"
PROSE_PATH = REPO_ROOT / "docs" / "admin-api.md"
REALM = 'Bearer realm="tessera-admin"'
KILLED = "node3"

_spec = None


def spec():
    global _spec
    if _spec is None:
        import yaml

        _spec = yaml.safe_load(SPEC_PATH.read_text())
    return _spec


def operation(path, method):
    op = spec()["paths"].get(path, {}).get(method.lower())
    assert op is not None, f"{method} {path} is not in {SPEC_PATH.name}"
    return op


def needs_auth(path, method="get"):
    op = operation(path, method)
    return op.get("security", spec().get("security")) != []


def _resolve(obj):
    """Follows a `$ref` to #/components/... (one level, for responses)."""
    while isinstance(obj, dict) and "$ref" in obj:
        node = spec()
        for part in obj["$ref"].lstrip("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        obj = node
    return obj


def response_spec(path, method, status):
    responses = operation(path, method)["responses"]
    r = responses.get(str(status))
    assert r is not None, (f"{method.upper()} {path} answered {status}, which {SPEC_PATH.name} does "
                           f"not list (it lists {', '.join(responses)})")
    return _resolve(r)


def validate(path, method, status, body, headers=None):
    """Checks a response (status, JSON body bytes or object, headers) against the spec: the
    status is listed, the body matches the schema of its JSON content (refs resolved against
    the whole spec as the root document), required headers are there. Returns the body."""
    from jsonschema import Draft202012Validator

    r = response_spec(path, method, status)
    if isinstance(body, (bytes, str)):
        body = json.loads(body)
    content = r.get("content", {})
    assert "application/json" in content, f"{method} {path} {status} is not JSON in the spec"
    root = dict(spec())
    root.update(content["application/json"]["schema"])  # {"$ref": "#/components/schemas/..."}
    errors = sorted(Draft202012Validator(root).iter_errors(body), key=lambda e: list(e.path))
    assert not errors, (f"{method.upper()} {path} {status} does not match the spec:\n"
                        + "\n".join(f"  at /{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:10])
                        + f"\nbody: {json.dumps(body)[:2000]}")
    for name, h in r.get("headers", {}).items():
        h = _resolve(h)
        if h.get("required") and headers is not None:
            got = headers.get(name)
            assert got is not None, f"{method} {path} {status}: no {name} header"
            want = h.get("schema", {}).get("const")
            assert want is None or got == want, f"{name}: {got!r}, expected {want!r}"
    return body


def json_get_paths():
    """Every GET path of the spec that needs credentials and answers JSON."""
    out = []
    for path, ops in spec()["paths"].items():
        op = ops.get("get")
        if op and needs_auth(path) and "application/json" in _resolve(op["responses"]["200"]).get("content", {}):
            out.append(path)
    return out


def get_valid(c, path, token, status=200):
    st, headers, body = http("GET", c.admin_url + path, token=token)
    assert st == status, f"GET {path}: {st} (expected {status}) {body[:500]!r}"
    return validate(path, "get", st, body, headers)


def sigv4_headers(url, method="GET", secret=SECRET_KEY, service="s3"):
    """Authorization and X-Amz-* headers of a SigV4 request signed with the root keys."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    req = AWSRequest(method=method, url=url, data=b"")
    S3SigV4Auth(Credentials(ACCESS_KEY, secret), service, REGION).add_auth(req)
    return dict(req.headers.items())


# --- the spec itself --------------------------------------------------------------------------

def test_spec_is_valid_openapi_and_names_every_path(c):
    from jsonschema import Draft202012Validator
    from openapi_spec_validator import validate as validate_spec

    validate_spec(spec())
    assert spec()["openapi"].startswith("3.1"), spec()["openapi"]
    for name, schema in spec()["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)
    schemes = spec()["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["sigv4"]["type"] == "apiKey" and schemes["sigv4"]["in"] == "header"
    # Every path of the table in admin-api.md is in the spec, with its method.
    documented = set()
    for line in PROSE_PATH.read_text().splitlines():
        if not line.startswith("| `"):
            continue
        method = prev = None
        for m in re.finditer(r"`(?:(GET|POST|PUT|DELETE) )?(/[A-Za-z0-9_/.{}-]*)`", line.split("|")[1]):
            method = m.group(1) or method
            path = m.group(2)
            if m.group(1) is None and prev:  # "`POST /admin/v1/heal/pause`, `/resume`"
                path = prev.rsplit("/", 1)[0] + path
            documented.add((method, path))
            prev = path
    assert len(documented) >= 14, documented
    for method, path in sorted(documented):
        operation(path, method)
        ops = spec()["paths"][path]
        if needs_auth(path, method):
            for code in ("401", "403"):
                assert code in ops[method.lower()]["responses"], f"{method} {path} lacks {code}"
    extra = {(m.upper(), p) for p, ops in spec()["paths"].items() for m in ops
             if m in ("get", "post", "put", "delete")} - documented
    assert not extra, f"in the spec but not in admin-api.md: {extra}"


# --- credentials ------------------------------------------------------------------------------

def test_health_and_page_need_no_credentials(c):
    for path in ("/health/live", "/health/ready", "/health/cluster"):
        assert not needs_auth(path)
        get_valid(c, path, None)
    st, headers, body = http("GET", c.admin_url + "/")
    assert st == 200, st
    assert headers.get("Content-Type", "").startswith("text/html"), headers.get("Content-Type")
    assert b'id="status"' in body and b"/admin/v1/login" in body


def test_no_credentials_401_wrong_credentials_403(c):
    paths = json_get_paths() + ["/metrics"]
    assert "/admin/v1/nodes" in paths and "/admin/v1/heal" in paths, paths
    for path in paths:
        st, headers, body = http("GET", c.admin_url + path)
        assert st == 401, f"GET {path} without credentials: {st}"
        assert headers.get("WWW-Authenticate") == REALM, (path, headers.get("WWW-Authenticate"))
        validate(path, "get", 401, body, headers)
        st, headers, body = http("GET", c.admin_url + path, token="not-a-token")
        assert st == 403, f"GET {path} with a wrong bearer token: {st}"
        validate(path, "get", 403, body, headers)
    for path in ("/admin/v1/heal/pause", "/admin/v1/heal/resume", "/admin/v1/heal/start"):
        st, headers, body = http("POST", c.admin_url + path, body={})
        assert st == 401, f"POST {path} without credentials: {st}"
        validate(path, "post", 401, body, headers)
        st, _, body = http("POST", c.admin_url + path, body={}, token="not-a-token")
        assert st == 403, f"POST {path} with a wrong token: {st}"
        validate(path, "post", 403, body)
    # A SigV4 signature made with a wrong secret key.
    url = c.admin_url + "/admin/v1/cluster"
    st, _, body = http("GET", url, headers=sigv4_headers(url, secret="wrong" + SECRET_KEY[5:]))
    assert st == 403, f"GET with a bad SigV4 signature: {st} {body[:200]!r}"
    validate("/admin/v1/cluster", "get", 403, body)


def test_login(c):
    for ak, sk in ((ACCESS_KEY, SECRET_KEY + "x"), ("AKNOTAKEY0000000000X", SECRET_KEY), ("", "")):
        st, _, body = http("POST", c.admin_url + "/admin/v1/login", {"access_key": ak, "secret_key": sk})
        assert st == 403, f"login with wrong keys {ak!r}: {st} {body[:200]!r}"
        validate("/admin/v1/login", "post", 403, body)
    st, _, body = http("POST", c.admin_url + "/admin/v1/login",
                       {"access_key": ACCESS_KEY, "secret_key": SECRET_KEY})
    assert st == 200, f"login: {st} {body[:200]!r}"
    j = validate("/admin/v1/login", "post", 200, body)
    twelve_hours = 12 * 3600 * 1000
    assert abs(j["expires_ms"] - (time.time() * 1000 + twelve_hours)) < 10 * 60 * 1000, j
    assert j["token"] not in (ACCESS_KEY, SECRET_KEY, ADMIN_TOKEN)
    get_valid(c, "/admin/v1/cluster", j["token"])


def test_every_get_validates_with_a_session_token(c):
    token = c.login()
    for path in json_get_paths():
        get_valid(c, path, token)
    st, headers, body = http("GET", c.admin_url + "/metrics", token=token)
    assert st == 200, st
    assert headers.get("Content-Type", "").startswith("text/plain"), headers.get("Content-Type")
    assert b"# TYPE " in body


def test_admin_token_from_the_environment(c):
    for path in json_get_paths():
        get_valid(c, path, ADMIN_TOKEN)
    st, _, _ = http("GET", c.admin_url + "/metrics", token=ADMIN_TOKEN)
    assert st == 200, st


def test_sigv4_with_the_root_keys(c):
    url = c.admin_url + "/admin/v1/nodes"
    st, headers, body = http("GET", url, headers=sigv4_headers(url))
    assert st == 200, f"SigV4: {st} {body[:300]!r}"
    validate("/admin/v1/nodes", "get", 200, body, headers)
    # Signed for another service: the signature does not verify.
    st, _, _ = http("GET", url, headers=sigv4_headers(url, service="iam"))
    assert st == 403, st


# --- content ----------------------------------------------------------------------------------

def test_healthy_cluster(c):
    token = c.login()

    def healthy():
        h = get_valid(c, "/health/cluster", None)
        return h if h["status"] == "healthy" else None

    h = poll(healthy, 30, "/health/cluster says healthy")
    assert (h["sets_total"], h["sets_full"], h["sets_degraded"]) == (1, 1, 0), h
    assert (h["sets_below_write_quorum"], h["sets_below_read_quorum"]) == (0, 0), h
    s = h["sets"][0]
    assert (s["set"], s["state"], s["drives"], s["online"]) == (0, "full", 6, 6), s
    assert (s["write_quorum"], s["read_quorum"], s["tolerance"]) == (4, 4, 2), s
    assert s["hints_pending"] == 0 and s["repairing"] is False, s
    assert get_valid(c, "/admin/v1/sets", token) == h

    cl = get_valid(c, "/admin/v1/cluster", token)
    assert cl["mode"] == "gateway", cl
    assert (cl["k"], cl["m"], cl["sets"], cl["nodes"], cl["drives"], cl["drives_online"]) == (4, 2, 1, 3, 6, 6), cl
    assert cl["status"] == "healthy" and cl["repair_paused"] is False, cl
    assert cl["deployment_id"] == "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f", cl
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", cl["version"]), cl

    nodes = get_valid(c, "/admin/v1/nodes", token)["nodes"]
    assert sorted(n["name"] for n in nodes) == c.node_names, nodes
    for n in nodes:
        assert n["state"] == "up" and n["drives"] == 2 and n["drives_online"] == 2, n
        assert n["address"] == c.node_addresses[n["name"]], (n, c.node_addresses)

    drives = get_valid(c, "/admin/v1/drives", token)["drives"]
    assert sorted((d["set"], d["index"]) for d in drives) == [(0, i) for i in range(6)], drives
    for name in c.node_names:
        assert sum(d["node"] == name for d in drives) == 2, (name, drives)
    for d in drives:
        assert d["state"] == "online" and d["errors"] == 0, d
        assert d["total_bytes"] > 0 and d["free_bytes"] <= d["total_bytes"], d
        assert d["used_bytes"] <= d["total_bytes"], d

    ready = get_valid(c, "/health/ready", None)
    assert [r["set"] for r in ready["repair"]] == [0], ready


def test_bucket_usage(c):
    token = c.login()
    before = get_valid(c, "/admin/v1/cluster", token)["s3"]
    s3 = c.s3()
    sizes = {"obj/a": 1000, "obj/b": 20_000, "obj/c": 300_000}
    s3.create_bucket(Bucket="alpha")
    for key, size in sizes.items():
        s3.put_object(Bucket="alpha", Key=key, Body=b"a" * size)
    s3.create_multipart_upload(Bucket="alpha", Key="unfinished")
    s3.create_bucket(Bucket="beta")
    s3.put_bucket_versioning(Bucket="beta", VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket="beta", Key="k", Body=b"v1" * 5)
    s3.put_object(Bucket="beta", Key="k", Body=b"v2" * 10)
    s3.create_bucket(Bucket="gamma")
    requests_made = 1 + len(sizes) + 1 + 1 + 1 + 2 + 1

    def counted():
        b = {x["name"]: x for x in get_valid(c, "/admin/v1/buckets", token)["buckets"]}
        a = b.get("alpha")
        return b if a and a["objects"] == 3 and b.get("beta", {}).get("versions") == 2 else None

    b = poll(counted, 30, "/admin/v1/buckets counts what was written")
    assert set(b) == {"alpha", "beta", "gamma"}, b
    a = b["alpha"]
    assert a["bytes"] == sum(sizes.values()), a
    assert (a["versions"], a["delete_markers"], a["uploads_in_flight"]) == (3, 0, 1), a
    assert a["versioning"] == "Off", a
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", a["created"]), a
    assert (b["beta"]["versioning"], b["beta"]["objects"], b["beta"]["versions"]) == ("Enabled", 1, 2), b["beta"]
    assert (b["gamma"]["objects"], b["gamma"]["bytes"], b["gamma"]["versioning"]) == (0, 0, "Off"), b["gamma"]

    after = get_valid(c, "/admin/v1/cluster", token)["s3"]
    assert after["requests"] - before["requests"] >= requests_made, (before, after)
    assert after["bytes_in"] - before["bytes_in"] >= sum(sizes.values()) + 30, (before, after)
    assert after["errors"] >= before["errors"], (before, after)


def test_heal_pause_resume_start(c):
    token = c.login()

    def post(path, body, expect):
        st, _, raw = http("POST", c.admin_url + path, body=body, token=token)
        assert st == expect, f"POST {path}: {st} (expected {expect}) {raw[:300]!r}"
        j = validate(path, "post", st, raw)
        assert j["accepted_sets"] == [0] and j["unreachable_sets"] == [], j
        return j

    post("/admin/v1/heal/pause", None, 200)
    h = poll(lambda: (lambda h: h if h["paused"] else None)(get_valid(c, "/admin/v1/heal", token)),
             15, "/admin/v1/heal shows paused")
    assert all(r["paused"] for r in h["sets"]), h
    assert get_valid(c, "/admin/v1/cluster", token)["repair_paused"] is True
    post("/admin/v1/heal/resume", None, 200)
    h = poll(lambda: (lambda h: h if not h["paused"] else None)(get_valid(c, "/admin/v1/heal", token)),
             15, "/admin/v1/heal shows resumed")
    assert not any(r["paused"] for r in h["sets"]), h
    assert get_valid(c, "/admin/v1/cluster", token)["repair_paused"] is False

    s3 = c.s3()
    s3.create_bucket(Bucket="healme")
    for key in ("p/1", "p/2", "p/3", "q/outside"):
        s3.put_object(Bucket="healme", Key=key, Body=key.encode() * 100)
    post("/admin/v1/heal/start", {}, 202)
    post("/admin/v1/heal/start", {"bucket": "healme", "prefix": "p/", "deep": True}, 202)

    def target_done():
        t = get_valid(c, "/admin/v1/heal", token)["sets"][0]["target"]
        ok = t and t["bucket"] == "healme" and t["prefix"] == "p/" and t["deep"] and t["finished_ms"]
        return t if ok else None

    t = poll(target_done, 30, "the deep scan of healme/p/ shows as the target and finishes")
    assert t["scanned"] == 3 and t["finished_ms"] >= t["started_ms"] > 0, t


def test_users_api(c):
    """Create, list, disable, enable, set and remove the policy of, and delete a user: every
    answer matches the spec; the secret is in the creation answer only; a bad name or policy
    is a 400, an unknown user a 404."""
    token = c.login()
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}]}
    st, h, body = http("POST", c.admin_url + "/admin/v1/users", {"name": "dave", "policy": policy},
                       token=token)
    created = validate("/admin/v1/users", "post", st, body, h)
    assert st == 201 and created["name"] == "dave" and created["secret_key"], created
    users = get_valid(c, "/admin/v1/users", token)["users"]
    assert [u["name"] for u in users] == ["dave"], users
    assert users[0]["policy"] == policy and users[0]["enabled"] is True, users
    assert created["secret_key"] not in json.dumps(users)
    for verb, enabled in (("disable", False), ("enable", True)):
        path = "/admin/v1/users/{name}/" + verb
        st, h, body = http("POST", c.admin_url + f"/admin/v1/users/dave/{verb}", token=token)
        assert validate(path, "post", st, body, h) == {"name": "dave", "enabled": enabled}
    st, h, body = http("PUT", c.admin_url + "/admin/v1/users/dave/policy", policy, token=token)
    assert st == 204, (st, body)
    st, h, body = http("PUT", c.admin_url + "/admin/v1/users/dave/policy",
                       {"Statement": [{"Effect": "Allow", "Action": "iam:*", "Resource": "*"}]},
                       token=token)
    assert st == 400, (st, body)
    validate("/admin/v1/users/{name}/policy", "put", st, body, h)
    st, h, body = http("DELETE", c.admin_url + "/admin/v1/users/dave/policy", token=token)
    assert st == 204, (st, body)
    assert get_valid(c, "/admin/v1/users", token)["users"][0]["policy"] is None
    st, h, body = http("POST", c.admin_url + "/admin/v1/users", {"name": "no spaces"}, token=token)
    assert st == 400, (st, body)
    validate("/admin/v1/users", "post", st, body, h)
    st, h, body = http("DELETE", c.admin_url + "/admin/v1/users/dave", token=token)
    assert st == 204, (st, body)
    st, h, body = http("DELETE", c.admin_url + "/admin/v1/users/dave", token=token)
    assert st == 404, (st, body)
    validate("/admin/v1/users/{name}", "delete", st, body, h)
    st, _, _ = http("GET", c.admin_url + "/admin/v1/users")
    assert st == 401, st


def test_node_killed(c):
    """Last: SIGKILL node3; the API reports it down, its drives offline, the set degraded and
    the cluster at risk (4 of 6 left: write quorum held, nothing more to lose), still 200."""
    token = c.login()
    s3 = c.s3()
    s3.create_bucket(Bucket="killtest")
    c.kill_node(KILLED)

    def down():
        nodes = {n["name"]: n for n in get_valid(c, "/admin/v1/nodes", token)["nodes"]}
        drives = get_valid(c, "/admin/v1/drives", token)["drives"]
        st, _, raw = http("GET", c.admin_url + "/health/cluster")
        h = validate("/health/cluster", "get", st, raw)
        assert st == 200, f"/health/cluster: {st} with write quorum held: {h}"
        ok = (nodes[KILLED]["state"] == "down"
              and all(d["state"] == "offline" for d in drives if d["node"] == KILLED)
              and h["sets"][0]["online"] == 4 and h["status"] != "healthy")
        return (nodes, drives, h) if ok else None

    nodes, drives, h = poll(down, 30, f"{KILLED} shows down with its drives offline")
    assert nodes[KILLED]["drives_online"] == 0, nodes
    assert all(n["state"] == "up" for name, n in nodes.items() if name != KILLED), nodes
    assert sum(d["node"] == KILLED for d in drives) == 2, drives
    assert all(d["state"] == "online" for d in drives if d["node"] != KILLED), drives
    assert h["status"] == "at_risk", h
    assert (h["sets_full"], h["sets_degraded"], h["sets_below_write_quorum"]) == (0, 1, 0), h
    s = h["sets"][0]
    assert (s["state"], s["online"], s["tolerance"]) == ("degraded", 4, 0), s
    assert get_valid(c, "/health/ready", None)["status"] == "ready"
    cl = get_valid(c, "/admin/v1/cluster", token)
    assert (cl["drives_online"], cl["status"]) == (4, "at_risk"), cl
    # Writes still go through, and every answer still matches the spec.
    s3.put_object(Bucket="killtest", Key="after-kill", Body=b"x" * 4096)
    for path in json_get_paths():
        get_valid(c, path, token)


if __name__ == "__main__":
    sys.exit(run_module(globals()))
