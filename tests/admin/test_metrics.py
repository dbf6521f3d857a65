"""GET /metrics of a gateway of a real cluster (3 nodes x 2 drives, 4+2): Prometheus text format
that prometheus_client parses, every family the dashboards and alerts use with sensible samples,
counters that follow the traffic, and tessera_drive_online dropping to 0 for a SIGKILLed node.

Run: python tests/admin/test_metrics.py [test_name ...]   (see cluster.py for the environment)
"""

import math
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster import http, poll, run_module  # noqa: E402

KILLED = "node3"


class Scrape:
    """One parsed scrape: families by name (counter families also under their `_total` name)."""

    def __init__(self, text):
        from prometheus_client.parser import text_string_to_metric_families

        self.text = text
        self.families = {}
        for f in text_string_to_metric_families(text):  # raises on a malformed exposition
            self.families[f.name] = f
            if f.type == "counter":
                self.families[f.name + "_total"] = f

    def family(self, name, type_=None):
        f = self.families.get(name)
        assert f is not None, f"no metric family {name} in /metrics; families: {sorted(self.families)}"
        assert type_ is None or f.type == type_, f"{name} is a {f.type}, expected a {type_}"
        return f

    def samples(self, name, suffix=""):
        """Samples of family `name` named `name`+suffix (counters: the `_total` samples)."""
        f = self.family(name)
        want = name + suffix
        if f.type == "counter" and not want.endswith("_total"):
            want += "_total"
        return [s for s in f.samples if s.name == want]

    def value(self, name, **labels):
        """Sum of the samples of `name` whose labels include `labels`."""
        return sum(s.value for s in self.samples(name)
                   if all(s.labels.get(k) == v for k, v in labels.items()))


def scrape(c, token):
    st, headers, body = http("GET", c.admin_url + "/metrics", token=token)
    assert st == 200, f"/metrics: {st} {body[:300]!r}"
    ctype = headers.get("Content-Type", "")
    assert ctype.startswith("text/plain") and "version=0.0.4" in ctype, ctype
    return Scrape(body.decode("utf-8"))


def check_histogram(m, name, labels=()):
    f = m.family(name, "histogram")
    buckets, sums, counts = defaultdict(list), {}, {}
    for s in f.samples:
        key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
        if s.name == name + "_bucket":
            assert "le" in s.labels, s
            buckets[key].append((float(s.labels["le"]), s.value))
        elif s.name == name + "_sum":
            sums[key] = s.value
        elif s.name == name + "_count":
            counts[key] = s.value
    assert buckets, f"{name}: no _bucket samples"
    assert set(buckets) == set(sums) == set(counts), f"{name}: _bucket, _sum and _count label sets differ"
    for key, bs in buckets.items():
        bs.sort()
        assert bs[-1][0] == math.inf, f"{name}{dict(key)}: no le=+Inf bucket"
        values = [v for _, v in bs]
        assert values == sorted(values), f"{name}{dict(key)}: buckets not cumulative: {bs}"
        assert values[-1] == counts[key], f"{name}{dict(key)}: +Inf {values[-1]} != _count {counts[key]}"
        assert sums[key] >= 0, (name, key, sums[key])
        for label in labels:
            assert label in dict(key), f"{name}: a series without the label {label}: {dict(key)}"
    return counts


def test_metrics_need_credentials(c):
    st, headers, _ = http("GET", c.admin_url + "/metrics")
    assert st == 401 and headers.get("WWW-Authenticate") == 'Bearer realm="tessera-admin"', st
    st, _, _ = http("GET", c.admin_url + "/metrics", token="wrong")
    assert st == 403, st
    scrape(c, c.admin_token)


def test_every_family_with_sensible_samples(c):
    token = c.login()
    s3 = c.s3()
    s3.create_bucket(Bucket="metrics")
    s3.put_object(Bucket="metrics", Key="one", Body=b"1" * 1234)
    s3.get_object(Bucket="metrics", Key="one")["Body"].read()
    m = scrape(c, token)

    reqs = m.samples("tessera_s3_requests_total")
    assert m.family("tessera_s3_requests_total").type == "counter"
    assert reqs, "tessera_s3_requests_total has no samples after S3 requests"
    for s in reqs:
        assert {"op", "status"} <= set(s.labels), s
        assert s.value >= 0
    assert m.value("tessera_s3_requests_total", op="PutObject") >= 1, reqs
    assert m.value("tessera_s3_requests_total", op="GetObject") >= 1, reqs
    counts = check_histogram(m, "tessera_s3_request_duration_seconds")
    assert sum(counts.values()) >= 3, counts
    for name in ("tessera_s3_bytes_received_total", "tessera_s3_bytes_sent_total"):
        assert m.family(name).type == "counter", name
    assert m.value("tessera_s3_bytes_received_total") >= 1234
    assert m.value("tessera_s3_bytes_sent_total") >= 1234

    by_drive = {}
    for name in ("tessera_drive_online", "tessera_drive_free_bytes", "tessera_drive_used_bytes",
                 "tessera_drive_total_bytes"):
        assert m.family(name).type == "gauge", name
        ss = m.samples(name)
        assert len(ss) == 6, f"{name}: {len(ss)} series, expected one per drive (6): {ss}"
        for s in ss:
            assert {"node", "drive"} <= set(s.labels), s
            by_drive.setdefault((s.labels["node"], s.labels["drive"]), {})[name] = s.value
    assert len(by_drive) == 6, by_drive
    assert {node for node, _ in by_drive} == set(c.node_names), by_drive
    for key, v in by_drive.items():
        assert v["tessera_drive_online"] == 1, (key, v)
        assert v["tessera_drive_total_bytes"] > 0, (key, v)
        assert 0 <= v["tessera_drive_free_bytes"] <= v["tessera_drive_total_bytes"], (key, v)
        assert 0 <= v["tessera_drive_used_bytes"] <= v["tessera_drive_total_bytes"], (key, v)

    def bucket_counted():
        mm = scrape(c, token)
        return mm if mm.value("tessera_bucket_objects", bucket="metrics") == 1 else None

    m = poll(bucket_counted, 30, 'tessera_bucket_objects{bucket="metrics"} == 1')
    assert m.value("tessera_bucket_bytes", bucket="metrics") == 1234
    for s in m.samples("tessera_bucket_objects") + m.samples("tessera_bucket_bytes"):
        assert "bucket" in s.labels, s

    q = m.samples("tessera_heal_queue_depth")
    assert [s.labels.get("set") for s in q] == ["0"], q
    assert all(s.value >= 0 for s in q), q
    for name in ("tessera_heal_objects_repaired_total", "tessera_heal_bytes_repaired_total",
                 "tessera_rpc_errors_total"):
        assert m.family(name).type == "counter", name
        assert all(s.value >= 0 for s in m.samples(name)), m.samples(name)
    for name in ("tessera_scanner_objects_scanned", "tessera_scanner_last_pass_timestamp_seconds"):
        m.family(name)
        assert all(s.value >= 0 for s in m.samples(name)), m.samples(name)

    rpc = m.samples("tessera_rpc_requests_total")
    assert all("node" in s.labels for s in rpc), rpc
    for node in c.node_names:  # the label holds the node's name or its RPC address
        n = sum(s.value for s in rpc if s.labels["node"] in (node, c.node_addresses[node]))
        assert n > 0, f"no RPC to {node} ({c.node_addresses[node]}): {rpc}"
    check_histogram(m, "tessera_rpc_duration_seconds")


def test_counters_follow_puts(c):
    token = c.login()
    s3 = c.s3()
    s3.create_bucket(Bucket="counted")
    before = scrape(c, token)
    sizes = [10, 1000, 65_536, 300_001, 1 << 20]
    for i, size in enumerate(sizes):
        s3.put_object(Bucket="counted", Key=f"k{i}", Body=bytes([i]) * size)
    after = scrape(c, token)
    d = after.value("tessera_s3_requests_total", op="PutObject") - \
        before.value("tessera_s3_requests_total", op="PutObject")
    assert d == len(sizes), f"PutObject count rose by {d}, expected {len(sizes)}"
    ok = after.value("tessera_s3_requests_total", op="PutObject", status="200") - \
        before.value("tessera_s3_requests_total", op="PutObject", status="200")
    assert ok == len(sizes), f"PutObject status=200 count rose by {ok}, expected {len(sizes)}"
    d = after.value("tessera_s3_bytes_received_total") - before.value("tessera_s3_bytes_received_total")
    assert d >= sum(sizes), f"bytes received rose by {d}, expected at least {sum(sizes)}"
    d = (sum(check_histogram(after, "tessera_s3_request_duration_seconds").values())
         - sum(check_histogram(before, "tessera_s3_request_duration_seconds").values()))
    assert d >= len(sizes), f"request duration _count rose by {d}"


def test_drive_online_drops_for_a_killed_node(c):
    """Last: SIGKILL node3; its drives' tessera_drive_online become 0, the others stay 1."""
    token = c.login()
    c.kill_node(KILLED)

    def dropped():
        ss = scrape(c, token).samples("tessera_drive_online")
        mine = [s.value for s in ss if s.labels.get("node") == KILLED]
        others = [s.value for s in ss if s.labels.get("node") != KILLED]
        return ss if mine == [0, 0] and others == [1, 1, 1, 1] else None

    poll(dropped, 30, f"tessera_drive_online is 0 for the 2 drives of {KILLED}, 1 for the other 4")


if __name__ == "__main__":
    sys.exit(run_module(globals()))
