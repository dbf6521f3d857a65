//! Bucket records: written to every drive of the set, read with a quorum.

use std::collections::BTreeMap;

use super::{now_ns, ErasureSet, Error, Result};
use crate::drive::BucketRecord;

impl ErasureSet {
    /// The bucket's record, `NoSuchBucket` when a quorum says it does not exist or its
    /// newest copy is a tombstone.
    pub async fn get_bucket(&self, name: &str) -> Result<BucketRecord> {
        match self.newest_bucket_copy(name).await? {
            Some(rec) if !rec.is_deleted() => Ok(rec),
            _ => Err(Error::NoSuchBucket),
        }
    }

    /// The newest copy of the bucket's record, tombstones included; `None` when a quorum
    /// holds none.
    async fn newest_bucket_copy(&self, name: &str) -> Result<Option<BucketRecord>> {
        let answers = self.on_drives(|d| d.get_bucket(name)).await;
        let errors = answers.iter().filter(|a| a.is_err()).count();
        let found: Vec<BucketRecord> = answers
            .into_iter()
            .filter_map(|a| a.ok().flatten())
            .collect();
        // The copy written last: a drive that was away during a change still holds the copy
        // from before it, which would turn versioning or a policy back, or, from before a
        // delete, bring the bucket back.
        let newest = || found.iter().max_by(|a, b| a.precedence_cmp(b)).cloned();
        if found.len() >= self.read_quorum() {
            return Ok(newest());
        }
        if found.is_empty() && errors <= self.m() {
            return Ok(None);
        }
        if !found.is_empty() && errors == 0 {
            // Fewer copies than a quorum but every drive answered: a bucket created while
            // drives were away. It exists; the missing copies are healed on the next create.
            return Ok(newest());
        }
        Err(Error::Quorum(format!(
            "bucket {name}: {} copies, {errors} drives failed",
            found.len()
        )))
    }

    /// Creates a bucket on every drive; `BucketExists` when it is there already.
    pub async fn create_bucket(&self, name: &str, location: Option<String>) -> Result<()> {
        let before = match self.newest_bucket_copy(name).await? {
            Some(rec) if !rec.is_deleted() => return Err(Error::BucketExists),
            tombstone => tombstone,
        };
        let rec = BucketRecord {
            name: name.to_string(),
            // Newer than the tombstone of a bucket of the name deleted before, even on a
            // clock that is behind the one that made it.
            created_ns: now_ns().max(before.map_or(0, |t| t.created_ns + 1)),
            location,
            versioning: None,
            tags: Default::default(),
            policy: None,
            updated_ns: 0,
            deleted_ns: 0,
        };
        let answers = self.on_drives(|d| d.put_bucket(&rec)).await;
        let ok = self.count_ok("write bucket record", &answers);
        if ok < self.write_quorum() {
            return Err(Error::Quorum(format!(
                "bucket {name} written on {ok} drives"
            )));
        }
        Ok(())
    }

    /// Deletes an empty bucket; `BucketNotEmpty` while any object remains. Its record is
    /// replaced by a tombstone on every drive (see [`BucketRecord::deleted_ns`]).
    pub async fn delete_bucket(&self, name: &str) -> Result<()> {
        self.get_bucket(name).await?;
        // Checked first too, so that a bucket that is not empty keeps its uploads.
        if !self.bucket_is_empty(name).await? {
            return Err(Error::BucketNotEmpty);
        }
        self.drop_uploads(name).await?;
        self.tombstone_if_empty(name).await
    }

    /// Replaces a bucket's record with its tombstone, after checking again that it is empty
    /// (an object may have been written since the caller's check): `BucketNotEmpty` if not.
    pub(super) async fn tombstone_if_empty(&self, name: &str) -> Result<()> {
        if !self.bucket_is_empty(name).await? {
            return Err(Error::BucketNotEmpty);
        }
        self.update_bucket(name, |rec| {
            rec.versioning = None;
            rec.tags.clear();
            rec.policy = None;
            // Any nonzero value marks the tombstone; `update_bucket` stamps it.
            rec.deleted_ns = 1;
        })
        .await?;
        Ok(())
    }

    /// Aborts every upload in progress in a bucket that is being deleted, as S3 does: their
    /// records would otherwise outlive it and come back in a bucket of the same name, their
    /// parts' files gone. An error if any could not be aborted.
    pub(super) async fn drop_uploads(&self, name: &str) -> Result<()> {
        let (_, failed) = self.abort_uploads_where(name, |_| true).await?;
        if failed > 0 {
            return Err(Error::Quorum(format!(
                "{failed} uploads in progress in {name} could not be aborted"
            )));
        }
        Ok(())
    }

    /// Rewrites a bucket's record on every drive after `change` (versioning, tags).
    pub async fn update_bucket(
        &self,
        name: &str,
        change: impl Fn(&mut BucketRecord),
    ) -> Result<BucketRecord> {
        let mut rec = self.get_bucket(name).await?;
        change(&mut rec);
        // Later than the copy it replaces, even on a clock that is behind the last writer's.
        rec.updated_ns = now_ns().max(rec.updated_ns + 1);
        if rec.is_deleted() {
            rec.deleted_ns = rec.updated_ns;
        }
        let ok = self
            .on_drives(|d| d.put_bucket(&rec))
            .await
            .into_iter()
            .filter(|r| r.is_ok())
            .count();
        if ok < self.write_quorum() {
            return Err(Error::Quorum(format!(
                "bucket {name} updated on {ok} drives"
            )));
        }
        Ok(rec)
    }

    /// True when no drive of the set holds any version of any key of `bucket`.
    pub async fn bucket_is_empty(&self, name: &str) -> Result<bool> {
        let probes = self.on_drives(|d| d.list_keys(name, "", b"", 1)).await;
        let errors = probes.iter().filter(|p| p.is_err()).count();
        if errors > self.drives.len() - self.read_quorum() {
            return Err(Error::Quorum(format!(
                "{errors} drives failed listing {name}"
            )));
        }
        Ok(!probes
            .iter()
            .any(|p| p.as_ref().is_ok_and(|v| !v.is_empty())))
    }

    /// All buckets that a quorum of drives holds, sorted by name.
    pub async fn list_buckets(&self) -> Result<Vec<BucketRecord>> {
        let answers = self.on_drives(|d| d.list_buckets()).await;
        let errors = answers.iter().filter(|a| a.is_err()).count();
        if errors > self.drives.len() - self.read_quorum() {
            return Err(Error::Quorum(format!(
                "{errors} drives failed listing buckets"
            )));
        }
        let need = if errors == 0 { 1 } else { self.read_quorum() };
        Ok(newest_copies(answers.iter().flatten().flatten())
            .into_values()
            .filter(|(r, n)| *n >= need && !r.is_deleted())
            .map(|(r, _)| r)
            .collect())
    }
}

/// Per bucket name, the copy written last ([`BucketRecord::precedence_cmp`]) among `copies`,
/// and how many copies there are.
pub(super) fn newest_copies<'a>(
    copies: impl Iterator<Item = &'a BucketRecord>,
) -> BTreeMap<String, (BucketRecord, usize)> {
    let mut all: BTreeMap<String, (BucketRecord, usize)> = BTreeMap::new();
    for rec in copies {
        let e = all.entry(rec.name.clone()).or_insert((rec.clone(), 0));
        e.1 += 1;
        if rec.precedence_cmp(&e.0).is_gt() {
            e.0 = rec.clone();
        }
    }
    all
}
