//! Metrics of this process, by name in one place, and the Prometheus text format (version
//! 0.0.4) they are written in.
//!
//! Counters and histograms that requests update live here (S3 requests, node RPC calls, drive
//! errors); gauges that describe the cluster (drives, buckets, repair) are read when
//! `/metrics` is scraped and written with the same [`Text`] writer (see `admin::prometheus`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// Upper bounds of the latency histograms, in seconds.
const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A latency histogram: counts per bucket (not cumulative), sum and count.
#[derive(Clone, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.counts[i] += 1;
        }
        self.sum += secs;
        self.count += 1;
    }
}

/// Totals of the S3 listener, for the admin API and the dashboard's charts.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct S3Totals {
    /// Requests answered.
    pub requests: u64,
    /// Of which answered with a 4xx or 5xx status.
    pub errors: u64,
    /// Body bytes received.
    pub bytes_in: u64,
    /// Body bytes sent.
    pub bytes_out: u64,
    /// Requests being served now.
    pub in_flight: u64,
}

#[derive(Default)]
struct Inner {
    s3_requests: BTreeMap<(&'static str, u16), u64>,
    s3_latency: BTreeMap<&'static str, Histogram>,
    s3_bytes_in: BTreeMap<&'static str, u64>,
    s3_bytes_out: BTreeMap<&'static str, u64>,
    rpc_requests: BTreeMap<String, u64>,
    rpc_errors: BTreeMap<String, u64>,
    rpc_latency: BTreeMap<String, Histogram>,
    drive_errors: BTreeMap<String, u64>,
}

/// The process's counters.
pub struct Metrics {
    inner: Mutex<Inner>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    inner: Mutex::new(Inner::default()),
});

/// The metrics of this process.
pub fn get() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// One S3 request answered: its operation, status, time, and body bytes each way.
    pub fn s3_request(&self, op: &'static str, status: u16, took: Duration, bytes: (u64, u64)) {
        self.with(|m| {
            *m.s3_requests.entry((op, status)).or_default() += 1;
            m.s3_latency
                .entry(op)
                .or_default()
                .observe(took.as_secs_f64());
            *m.s3_bytes_in.entry(op).or_default() += bytes.0;
            *m.s3_bytes_out.entry(op).or_default() += bytes.1;
        });
    }

    /// One call to a node's RPC: the node's address, whether it failed, and its time.
    pub fn rpc_call(&self, node: &str, failed: bool, took: Duration) {
        self.with(|m| {
            *m.rpc_requests.entry(node.to_string()).or_default() += 1;
            if failed {
                *m.rpc_errors.entry(node.to_string()).or_default() += 1;
            }
            m.rpc_latency
                .entry(node.to_string())
                .or_default()
                .observe(took.as_secs_f64());
        });
    }

    /// A drive failed an operation (named by its endpoint).
    pub fn drive_error(&self, endpoint: &str) {
        self.with(|m| *m.drive_errors.entry(endpoint.to_string()).or_default() += 1);
    }

    /// Errors counted against the drive at `endpoint`.
    pub fn drive_errors(&self, endpoint: &str) -> u64 {
        self.with(|m| m.drive_errors.get(endpoint).copied().unwrap_or(0))
    }

    /// Totals of the S3 listener.
    pub fn s3_totals(&self) -> S3Totals {
        self.with(|m| S3Totals {
            requests: m.s3_requests.values().sum(),
            errors: m
                .s3_requests
                .iter()
                .filter(|((_, s), _)| *s >= 400)
                .map(|(_, n)| n)
                .sum(),
            bytes_in: m.s3_bytes_in.values().sum(),
            bytes_out: m.s3_bytes_out.values().sum(),
            in_flight: crate::load::in_flight() as u64,
        })
    }

    /// Writes every counter and histogram.
    pub fn write(&self, t: &mut Text) {
        let m = self.with(|m| {
            (
                m.s3_requests.clone(),
                m.s3_latency.clone(),
                m.s3_bytes_in.clone(),
                m.s3_bytes_out.clone(),
                m.rpc_requests.clone(),
                m.rpc_errors.clone(),
                m.rpc_latency.clone(),
                m.drive_errors.clone(),
            )
        });
        let (requests, latency, bytes_in, bytes_out, rpc, rpc_err, rpc_lat, drive_err) = m;
        t.family(
            "tessera_s3_requests_total",
            "counter",
            "S3 requests answered, by operation and HTTP status.",
        );
        for ((op, status), n) in &requests {
            let status = status.to_string();
            t.sample(
                "tessera_s3_requests_total",
                &[("op", op), ("status", &status)],
                *n as f64,
            );
        }
        t.family(
            "tessera_s3_request_duration_seconds",
            "histogram",
            "Time to answer an S3 request (to its response head; bodies stream after).",
        );
        for (op, h) in &latency {
            t.histogram("tessera_s3_request_duration_seconds", &[("op", op)], h);
        }
        t.counters(
            "tessera_s3_bytes_received_total",
            "Request body bytes received, by operation.",
            "op",
            &bytes_in,
        );
        t.counters(
            "tessera_s3_bytes_sent_total",
            "Response body bytes sent, by operation.",
            "op",
            &bytes_out,
        );
        t.family(
            "tessera_s3_requests_in_flight",
            "gauge",
            "S3 requests being served now.",
        );
        t.sample(
            "tessera_s3_requests_in_flight",
            &[],
            crate::load::in_flight() as f64,
        );
        t.counters(
            "tessera_rpc_requests_total",
            "Calls to a storage node's RPC, by node address.",
            "node",
            &rpc,
        );
        t.counters(
            "tessera_rpc_errors_total",
            "Calls to a storage node's RPC that failed or timed out, by node address.",
            "node",
            &rpc_err,
        );
        t.family(
            "tessera_rpc_duration_seconds",
            "histogram",
            "Time of a call to a storage node's RPC, by node address.",
        );
        for (node, h) in &rpc_lat {
            t.histogram("tessera_rpc_duration_seconds", &[("node", node)], h);
        }
        t.counters(
            "tessera_drive_errors_total",
            "Operations a drive failed, as this process saw them.",
            "drive",
            &drive_err,
        );
    }
}

/// A Prometheus text-format document being written.
#[derive(Default)]
pub struct Text {
    out: String,
}

impl Text {
    /// Starts a metric family: its `# HELP` and `# TYPE` lines.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.out, "{k}=\"{v}\"");
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
    }

    /// A counter family with one label: a sample per entry of `map`.
    fn counters<K: AsRef<str>>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        map: &BTreeMap<K, u64>,
    ) {
        self.family(name, "counter", help);
        for (k, n) in map {
            self.sample(name, &[(label, k.as_ref())], *n as f64);
        }
    }

    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        let mut cumulative = 0;
        let bucket = format!("{name}_bucket");
        for (le, n) in BUCKETS.iter().zip(h.counts) {
            cumulative += n;
            let le = number(*le);
            let mut l = labels.to_vec();
            l.push(("le", &le));
            self.sample(&bucket, &l, cumulative as f64);
        }
        let mut l = labels.to_vec();
        l.push(("le", "+Inf"));
        self.sample(&bucket, &l, h.count as f64);
        self.sample(&format!("{name}_sum"), labels, h.sum);
        self.sample(&format!("{name}_count"), labels, h.count as f64);
    }

    /// The document.
    pub fn finish(self) -> String {
        self.out
    }
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_labels_escaped() {
        let m = Metrics {
            inner: Mutex::new(Inner::default()),
        };
        m.s3_request("GetObject", 200, Duration::from_millis(3), (0, 10));
        m.s3_request("GetObject", 200, Duration::from_millis(70), (0, 5));
        m.rpc_call("n\"1", true, Duration::from_secs(100));
        let mut t = Text::default();
        m.write(&mut t);
        let s = t.finish();
        assert!(s.contains("tessera_s3_requests_total{op=\"GetObject\",status=\"200\"} 2\n"));
        assert!(s.contains(
            "tessera_s3_request_duration_seconds_bucket{op=\"GetObject\",le=\"0.005\"} 1\n"
        ));
        assert!(s.contains(
            "tessera_s3_request_duration_seconds_bucket{op=\"GetObject\",le=\"0.1\"} 2\n"
        ));
        assert!(s.contains("tessera_s3_bytes_sent_total{op=\"GetObject\"} 15\n"));
        // Slower than the last bound: counted in +Inf only.
        assert!(s.contains("tessera_rpc_duration_seconds_bucket{node=\"n\\\"1\",le=\"30\"} 0\n"));
        assert!(s.contains("tessera_rpc_duration_seconds_bucket{node=\"n\\\"1\",le=\"+Inf\"} 1\n"));
        assert!(s.contains("tessera_rpc_errors_total{node=\"n\\\"1\"} 1\n"));
        assert_eq!(m.s3_totals().bytes_out, 15);
    }
}
