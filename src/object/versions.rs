//! ListObjectVersions and bucket versioning state.

use std::collections::BTreeMap;

use futures::future::join_all;

use super::{now_ns, ErasureSet, Error, Result};
use crate::drive::{DriveError, VersionRecord};

/// One page of ListObjectVersions.
#[derive(Debug, Default)]
pub struct VersionsPage {
    /// `(key, version, is_latest)` in key order, newest version first within a key.
    pub entries: Vec<(String, VersionRecord, bool)>,
    /// Common prefixes.
    pub prefixes: Vec<String>,
    /// More follow.
    pub truncated: bool,
    /// Key of the last entry, when truncated.
    pub next_key: Option<String>,
    /// Version id of the last entry, when truncated.
    pub next_version: Option<String>,
}

impl ErasureSet {
    /// Sets a bucket's versioning to `Enabled` or `Suspended`.
    pub async fn set_versioning(&self, bucket: &str, status: &str) -> Result<()> {
        let status = status.to_string();
        self.update_bucket(bucket, |b| b.versioning = Some(status.clone()))
            .await?;
        Ok(())
    }

    /// Rewrites one version's record (the current one, or the one named) on every drive that
    /// holds it, after `change`; used for tags. Each drive keeps its own shard index and
    /// inline shard.
    pub async fn update_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        change: impl Fn(&mut VersionRecord),
    ) -> Result<VersionRecord> {
        let (mut rec, copies) = match self.quorum_version(bucket, key, version_id).await {
            Err(e @ (Error::NoSuchKey | Error::NoSuchVersion)) => {
                self.get_bucket(bucket).await?;
                return Err(e);
            }
            other => other?,
        };
        if rec.delete_marker {
            return Err(Error::DeleteMarker {
                version_id: rec.version_id,
                requested: version_id.is_some(),
                mod_time_ns: rec.mod_time_ns,
            });
        }
        // Later than the copies it replaces, even on a clock behind the last writer's.
        let stamp = now_ns().max(rec.meta_ns + 1);
        let n = copies.len();
        let writes = copies.into_iter().enumerate().map(|(pos, copy)| {
            let drive = self.drives[pos].clone();
            let copy = copy.map(|mut c| {
                change(&mut c);
                c.meta_ns = stamp;
                c
            });
            async move {
                match copy {
                    Some(c) => drive.put_version(bucket, key, &c).await.is_ok(),
                    None => false,
                }
            }
        });
        let ok = join_all(writes).await.into_iter().filter(|w| *w).count();
        if 0 < ok && ok < n {
            // The drives that missed the change hold the copy from before it. A change short
            // of its quorum is not undone: the heal takes it to every drive, so that reads
            // of `k` drives and of all of them agree.
            self.persist_hint(bucket, key, &rec.version_id, false).await;
        }
        if ok < self.write_quorum() {
            return Err(Error::Quorum(format!("record updated on {ok} drives")));
        }
        change(&mut rec);
        rec.meta_ns = stamp;
        rec.inline = None;
        Ok(rec)
    }

    /// Versions of keys under `prefix`, after `(key_marker, version_marker)`.
    pub async fn list_object_versions(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        key_marker: &str,
        version_marker: Option<&str>,
        max: usize,
    ) -> Result<VersionsPage> {
        self.get_bucket(bucket).await?;
        let delimiter = delimiter.filter(|d| !d.is_empty());
        let mut page = VersionsPage::default();
        if max == 0 {
            // As for `max-keys=0` on a listing of objects: empty, and not truncated.
            return Ok(page);
        }
        // The rest of the marker key's versions, after the marker version.
        if let (Some(vm), false) = (version_marker, key_marker.is_empty()) {
            let answers = self.on_drives(|d| d.key_versions(bucket, key_marker)).await;
            let versions = self.merge_versions(answers)?;
            let after = versions
                .iter()
                .position(|v| v.version_id == vm)
                .map_or(0, |i| i + 1);
            let latest = versions.first().map(|v| v.version_id.clone());
            for v in versions.into_iter().skip(after) {
                if page.entries.len() == max {
                    page.truncated = true;
                    return Ok(page);
                }
                let is_latest = latest.as_deref() == Some(v.version_id.as_str());
                page.entries.push((key_marker.to_string(), v, is_latest));
            }
        }
        let mut cursor = key_marker.as_bytes().to_vec();
        'outer: loop {
            let want = (max + 1 - page.entries.len().min(max)).clamp(2, 1000);
            let answers = self
                .on_drives(|d| d.list_versions(bucket, prefix, &cursor, want))
                .await;
            let errors = answers.iter().filter(|a| a.is_err()).count();
            if self.drives.len() - errors < self.read_quorum() {
                return Err(Error::Quorum(format!(
                    "{errors} drives failed listing versions"
                )));
            }
            let mut cutoff: Option<String> = None;
            let mut per_key: BTreeMap<
                String,
                Vec<std::result::Result<Vec<VersionRecord>, DriveError>>,
            > = BTreeMap::new();
            for keys in answers.into_iter().flatten() {
                if keys.len() >= want {
                    if let Some((last, _)) = keys.last() {
                        if cutoff.as_ref().is_none_or(|c| last < c) {
                            cutoff = Some(last.clone());
                        }
                    }
                }
                for (key, versions) in keys {
                    per_key.entry(key).or_default().push(Ok(versions));
                }
            }
            for (key, answers) in per_key {
                if cutoff.as_ref().is_some_and(|c| key > *c) {
                    break;
                }
                if let Some(d) = delimiter {
                    if let Some(pos) = key[prefix.len()..].find(d) {
                        let cp = key[..prefix.len() + pos + d.len()].to_string();
                        if page.entries.len() + page.prefixes.len() == max {
                            page.truncated = true;
                            break 'outer;
                        }
                        if cp.as_str() > key_marker {
                            page.prefixes.push(cp.clone());
                        }
                        cursor = cp.into_bytes();
                        cursor.push(0xFF);
                        continue 'outer;
                    }
                }
                let versions = self.merge_versions(answers)?;
                for (i, v) in versions.into_iter().enumerate() {
                    if page.entries.len() + page.prefixes.len() == max {
                        page.truncated = true;
                        break 'outer;
                    }
                    page.entries.push((key.clone(), v, i == 0));
                }
                cursor = key.into_bytes();
            }
            match cutoff {
                None => break,
                Some(c) if c.as_bytes() > cursor.as_slice() => cursor = c.into_bytes(),
                Some(_) => {}
            }
        }
        if page.truncated {
            if let Some((k, v, _)) = page.entries.last() {
                page.next_key = Some(k.clone());
                page.next_version = Some(v.version_id.clone());
            } else if let Some(p) = page.prefixes.last() {
                page.next_key = Some(p.clone());
            }
        }
        Ok(page)
    }

    /// The versions of one key that a read quorum of drives holds, newest first.
    fn merge_versions(
        &self,
        answers: Vec<std::result::Result<Vec<VersionRecord>, DriveError>>,
    ) -> Result<Vec<VersionRecord>> {
        let mut seen: BTreeMap<String, (VersionRecord, usize)> = BTreeMap::new();
        for mut v in answers.into_iter().flatten().flatten() {
            v.inline = None;
            seen.entry(format!("{}\0{}", v.version_id, v.mod_time_ns))
                .or_insert((v, 0))
                .1 += 1;
        }
        let mut out: Vec<VersionRecord> = seen
            .into_values()
            .filter(|(_, n)| *n >= self.read_quorum())
            .map(|(v, _)| v)
            .collect();
        out.sort_by(|a, b| (b.mod_time_ns, &b.version_id).cmp(&(a.mod_time_ns, &a.version_id)));
        Ok(out)
    }
}
