//! `GET /metrics`: the process's counters, and gauges of the cluster read at scrape time
//! (drives, sets, buckets, repair), in the Prometheus text format.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::{view, AdminState};
use crate::metrics::Text;

/// Serves the metrics.
pub async fn metrics(State(state): State<Arc<AdminState>>) -> Response {
    let ((drives, repair, health), usage) =
        tokio::join!(view::cluster(&state), state.usage.get(&state.store));
    let mut t = Text::default();
    t.family(
        "tessera_build_info",
        "gauge",
        "Version of this process (always 1).",
    );
    t.sample(
        "tessera_build_info",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("mode", state.layout.mode),
        ],
        1.0,
    );
    t.family(
        "tessera_uptime_seconds",
        "gauge",
        "Seconds since this process started.",
    );
    t.sample(
        "tessera_uptime_seconds",
        &[],
        state.started.elapsed().as_secs_f64(),
    );
    crate::metrics::get().write(&mut t);

    type DriveValue = fn(&view::DriveView) -> f64;
    let per_drive: [(&str, &str, DriveValue); 4] = [
        (
            "tessera_drive_online",
            "1 when the drive answers, 0 when it does not.",
            |d| f64::from(u8::from(d.online())),
        ),
        (
            "tessera_drive_total_bytes",
            "Size of the drive's file system.",
            |d| d.total_bytes as f64,
        ),
        (
            "tessera_drive_free_bytes",
            "Space left on the drive.",
            |d| d.free_bytes as f64,
        ),
        (
            "tessera_drive_used_bytes",
            "Space used on the drive.",
            |d| d.used_bytes as f64,
        ),
    ];
    for (name, help, value) in per_drive {
        t.family(name, "gauge", help);
        for d in &drives {
            let (set, index) = (d.set.to_string(), d.index.to_string());
            t.sample(
                name,
                &[
                    ("node", &d.node),
                    ("drive", &d.endpoint),
                    ("set", &set),
                    ("index", &index),
                ],
                value(d),
            );
        }
    }

    t.family(
        "tessera_set_drives_online",
        "gauge",
        "Drives of the erasure set that answer.",
    );
    for s in &health.sets {
        t.sample(
            "tessera_set_drives_online",
            &[("set", &s.set.to_string())],
            s.online as f64,
        );
    }
    t.family(
        "tessera_set_tolerance",
        "gauge",
        "Drives the set can lose and still be read.",
    );
    for s in &health.sets {
        t.sample(
            "tessera_set_tolerance",
            &[("set", &s.set.to_string())],
            s.tolerance as f64,
        );
    }
    t.family(
        "tessera_sets",
        "gauge",
        "Erasure sets by state: full, degraded, below_write_quorum, below_read_quorum.",
    );
    for st in [
        "full",
        "degraded",
        "below_write_quorum",
        "below_read_quorum",
    ] {
        let n = health.sets.iter().filter(|s| s.state == st).count();
        t.sample("tessera_sets", &[("state", st)], n as f64);
    }

    if let Ok(u) = &usage {
        type BucketValue = fn(&super::usage::BucketUsage) -> u64;
        let per_bucket: [(&str, &str, BucketValue); 5] = [
            (
                "tessera_bucket_objects",
                "Keys whose latest version is an object.",
                |b| b.objects,
            ),
            (
                "tessera_bucket_versions",
                "Object versions, current and noncurrent.",
                |b| b.versions,
            ),
            ("tessera_bucket_delete_markers", "Delete markers.", |b| {
                b.delete_markers
            }),
            (
                "tessera_bucket_bytes",
                "Bytes of every version, before erasure coding.",
                |b| b.bytes,
            ),
            (
                "tessera_bucket_uploads_in_flight",
                "Multipart uploads not completed or aborted.",
                |b| b.uploads_in_flight,
            ),
        ];
        for (name, help, value) in per_bucket {
            t.family(name, "gauge", help);
            for b in &u.buckets {
                t.sample(name, &[("bucket", &b.name)], value(b) as f64);
            }
        }
    }

    type RepairValue = fn(&crate::object::RepairStatus) -> f64;
    let per_set: [(&str, &str, &str, RepairValue); 10] = [
        (
            "tessera_heal_queue_depth",
            "gauge",
            "Heal hints waiting.",
            |r| r.hints_pending as f64,
        ),
        (
            "tessera_heal_objects_repaired_total",
            "counter",
            "Object versions healed.",
            |r| r.healed as f64,
        ),
        (
            "tessera_heal_bytes_repaired_total",
            "counter",
            "Shard bytes rebuilt.",
            |r| r.bytes_rebuilt as f64,
        ),
        (
            "tessera_heal_failed_total",
            "counter",
            "Heals that failed.",
            |r| r.failed as f64,
        ),
        (
            "tessera_scanner_objects_scanned",
            "gauge",
            "Versions checked by the running scanner pass.",
            |r| r.scanned as f64,
        ),
        (
            "tessera_scanner_pass_running",
            "gauge",
            "1 while a scanner pass runs.",
            |r| f64::from(u8::from(r.in_pass)),
        ),
        (
            "tessera_scanner_last_pass_timestamp_seconds",
            "gauge",
            "When the last full scanner pass finished (0: never).",
            |r| r.last_pass_finished_ms as f64 / 1000.0,
        ),
        (
            "tessera_scanner_last_pass_duration_seconds",
            "gauge",
            "How long the last full scanner pass took.",
            |r| r.last_pass_ms as f64 / 1000.0,
        ),
        (
            "tessera_repair_paused",
            "gauge",
            "1 when an operator paused repair of the set.",
            |r| f64::from(u8::from(r.paused)),
        ),
        (
            "tessera_repair_leader_reachable",
            "gauge",
            "1 when the process leading the set's repair answers.",
            |r| f64::from(u8::from(r.leader)),
        ),
    ];
    for (name, kind, help, value) in per_set {
        t.family(name, kind, help);
        for r in &repair {
            t.sample(name, &[("set", &r.set.to_string())], value(r));
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        t.finish(),
    )
        .into_response()
}
