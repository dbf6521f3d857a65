//! Usage of every bucket (objects, versions, bytes, uploads in flight), counted by listing
//! and kept for a few seconds, so dashboards and Prometheus scrapes do not list on each call.
//!
//! Listing costs one pass over the bucket's version records per refresh (at most one every
//! [`MAX_AGE`]); counting in the scanner instead would cost nothing extra but lag by a scan
//! interval (an hour by default), which makes a dashboard lie right after an upload.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Mutex;

use crate::drive::record::now_ms;
use crate::object::{Error, Store};

/// How long a count is served before it is redone.
const MAX_AGE: Duration = Duration::from_secs(5);
/// Versions listed per call.
const PAGE: usize = 1000;

/// Usage of one bucket.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BucketUsage {
    /// Bucket name.
    pub name: String,
    /// Creation time, RFC 3339.
    pub created: String,
    /// `Enabled`, `Suspended` or `Off`.
    pub versioning: String,
    /// Keys whose latest version is an object (not a delete marker).
    pub objects: u64,
    /// Object versions, current and noncurrent (delete markers not counted).
    pub versions: u64,
    /// Delete markers.
    pub delete_markers: u64,
    /// Bytes of every version (what the bucket stores, before erasure coding).
    pub bytes: u64,
    /// Multipart uploads started and not completed or aborted.
    pub uploads_in_flight: u64,
}

/// Usage of every bucket, and when it was counted.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Usage {
    /// Buckets by name.
    pub buckets: Vec<BucketUsage>,
    /// When this was counted (ms since the epoch).
    pub computed_ms: u64,
}

/// The last count, redone when older than [`MAX_AGE`].
#[derive(Default)]
pub struct UsageCache {
    last: Mutex<Option<(Instant, Arc<Usage>)>>,
}

impl UsageCache {
    /// Usage of every bucket, at most [`MAX_AGE`] old. Callers that come while a count runs
    /// wait for it rather than start their own.
    pub async fn get(&self, store: &Store) -> Result<Arc<Usage>, Error> {
        let mut last = self.last.lock().await;
        if let Some((at, u)) = last.as_ref() {
            if at.elapsed() < MAX_AGE {
                return Ok(u.clone());
            }
        }
        let u = Arc::new(count(store).await?);
        *last = Some((Instant::now(), u.clone()));
        Ok(u)
    }
}

async fn count(store: &Store) -> Result<Usage, Error> {
    let mut out = Usage {
        computed_ms: now_ms(),
        ..Default::default()
    };
    for b in store.list_buckets().await? {
        let mut u = BucketUsage {
            created: rfc3339(b.created_ns),
            versioning: b.versioning.clone().unwrap_or_else(|| "Off".into()),
            name: b.name.clone(),
            ..Default::default()
        };
        match count_bucket(store, &b.name, &mut u).await {
            Ok(()) => out.buckets.push(u),
            // Deleted while counted.
            Err(Error::NoSuchBucket) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

async fn count_bucket(store: &Store, bucket: &str, u: &mut BucketUsage) -> Result<(), Error> {
    let (mut key, mut version) = (String::new(), None::<String>);
    loop {
        let page = store
            .list_object_versions(bucket, "", None, &key, version.as_deref(), PAGE)
            .await?;
        for (_, v, latest) in &page.entries {
            if v.delete_marker {
                u.delete_markers += 1;
            } else {
                u.versions += 1;
                u.bytes += v.size;
                u.objects += u64::from(*latest);
            }
        }
        match (page.truncated, page.next_key) {
            (true, Some(k)) => {
                key = k;
                version = page.next_version;
            }
            _ => break,
        }
    }
    let mut after = (String::new(), String::new());
    loop {
        let page = store
            .list_uploads(bucket, "", None, (&after.0, &after.1), PAGE)
            .await?;
        u.uploads_in_flight += page.uploads.len() as u64;
        match page.uploads.last() {
            Some(last) if page.truncated => {
                after = (last.key.clone(), last.upload_id.clone());
            }
            _ => break,
        }
    }
    Ok(())
}

fn rfc3339(ns: i128) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ns)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
