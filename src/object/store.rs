//! The store: every erasure set of the deployment. An object lives in the set chosen by a hash
//! of the deployment id, bucket and key; buckets live on every set; listings merge the sets'
//! sorted pages. `tessera server` is a store of one set of local drives; a gateway is a store
//! of sets of remote drives.

use std::sync::Arc;

use futures::future::join_all;

use super::{
    BodyStream, CompletedPart, DeleteOutcome, ErasureSet, Error, ListPage, ObjectReader,
    PutOptions, Result, UploadsPage, VersionsPage, WriteCondition,
};
use crate::drive::{BucketRecord, ListEntry, PartRecord, VersionRecord};

/// Every erasure set, and the rule that places a key in one of them.
pub struct Store {
    sets: Vec<Arc<ErasureSet>>,
    deployment_id: String,
}

impl Store {
    /// A store over `sets` (at least one).
    pub fn new(sets: Vec<Arc<ErasureSet>>, deployment_id: String) -> Self {
        Self {
            sets,
            deployment_id,
        }
    }

    /// The deployment the drives belong to.
    pub fn deployment_id(&self) -> &str {
        &self.deployment_id
    }

    /// The erasure sets.
    pub fn sets(&self) -> &[Arc<ErasureSet>] {
        &self.sets
    }

    /// The set that holds `bucket/key`.
    pub fn set_for(&self, bucket: &str, key: &str) -> &Arc<ErasureSet> {
        let mut h = blake3::Hasher::new();
        h.update(self.deployment_id.as_bytes());
        h.update(&[0]);
        h.update(bucket.as_bytes());
        h.update(&[0]);
        h.update(key.as_bytes());
        let b = h.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&b.as_bytes()[..8]);
        &self.sets[(u64::from_le_bytes(first) % self.sets.len() as u64) as usize]
    }

    // ----- buckets: on every set -----

    /// The bucket's record, from the first set that can answer.
    pub async fn get_bucket(&self, name: &str) -> Result<BucketRecord> {
        let mut last = Error::Quorum("no erasure set answered".into());
        for set in &self.sets {
            match set.get_bucket(name).await {
                Err(e @ Error::Quorum(_)) => last = e,
                other => return other,
            }
        }
        Err(last)
    }

    /// Creates a bucket on every set.
    pub async fn create_bucket(&self, name: &str, location: Option<String>) -> Result<()> {
        match self.get_bucket(name).await {
            Ok(_) => return Err(Error::BucketExists),
            Err(Error::NoSuchBucket) => {}
            Err(e) => return Err(e),
        }
        for r in join_all(
            self.sets
                .iter()
                .map(|s| s.create_bucket(name, location.clone())),
        )
        .await
        {
            match r {
                Ok(()) | Err(Error::BucketExists) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Deletes a bucket that is empty on every set.
    pub async fn delete_bucket(&self, name: &str) -> Result<()> {
        self.get_bucket(name).await?;
        for set in &self.sets {
            if !set.bucket_is_empty(name).await? {
                return Err(Error::BucketNotEmpty);
            }
        }
        // Every set's uploads are dropped before any set's record is, so that a set that
        // cannot drop its own leaves the bucket in place (the uploads dropped so far gone).
        for set in &self.sets {
            set.drop_uploads(name).await?;
        }
        let tombstones = self.sets.iter().map(|s| s.tombstone_if_empty(name));
        for r in join_all(tombstones).await {
            match r {
                Ok(()) | Err(Error::NoSuchBucket) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Every bucket, from the first set that can answer.
    pub async fn list_buckets(&self) -> Result<Vec<BucketRecord>> {
        let mut last = Error::Quorum("no erasure set answered".into());
        for set in &self.sets {
            match set.list_buckets().await {
                Err(e @ Error::Quorum(_)) => last = e,
                other => return other,
            }
        }
        Err(last)
    }

    /// Rewrites a bucket record on every set.
    pub async fn update_bucket(
        &self,
        name: &str,
        change: impl Fn(&mut BucketRecord) + Clone,
    ) -> Result<BucketRecord> {
        let mut out = None;
        for r in join_all(
            self.sets
                .iter()
                .map(|s| s.update_bucket(name, change.clone())),
        )
        .await
        {
            out = Some(r?);
        }
        out.ok_or_else(|| Error::Internal("no erasure sets".into()))
    }

    /// Sets versioning on every set.
    pub async fn set_versioning(&self, bucket: &str, status: &str) -> Result<()> {
        for r in join_all(self.sets.iter().map(|s| s.set_versioning(bucket, status))).await {
            r?;
        }
        Ok(())
    }

    // ----- objects: in their set -----

    /// See [`ErasureSet::put_object`].
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        opts: PutOptions,
        body: BodyStream,
    ) -> Result<VersionRecord> {
        self.set_for(bucket, key)
            .put_object(bucket, key, opts, body)
            .await
    }

    /// See [`ErasureSet::open_object`].
    pub async fn open_object(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<ObjectReader> {
        self.set_for(bucket, key)
            .open_object(bucket, key, version_id)
            .await
    }

    /// See [`ErasureSet::delete_object`].
    pub async fn delete_object(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<DeleteOutcome> {
        self.set_for(bucket, key)
            .delete_object(bucket, key, version_id)
            .await
    }

    /// See [`ErasureSet::update_version`].
    pub async fn update_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        change: impl Fn(&mut VersionRecord),
    ) -> Result<VersionRecord> {
        self.set_for(bucket, key)
            .update_version(bucket, key, version_id, change)
            .await
    }

    /// See [`ErasureSet::create_upload`].
    pub async fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        opts: PutOptions,
        checksum: Option<(String, String)>,
    ) -> Result<String> {
        self.set_for(bucket, key)
            .create_upload(bucket, key, opts, checksum)
            .await
    }

    /// See [`ErasureSet::upload_part`].
    pub async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        opts: PutOptions,
        body: BodyStream,
    ) -> Result<PartRecord> {
        self.set_for(bucket, key)
            .upload_part(bucket, key, upload_id, number, opts, body)
            .await
    }

    /// See [`ErasureSet::list_parts`].
    pub async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<PartRecord>> {
        self.set_for(bucket, key)
            .list_parts(bucket, key, upload_id)
            .await
    }

    /// See [`ErasureSet::complete_upload`].
    pub async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
        expected: Option<(String, String)>,
        condition: Option<&WriteCondition>,
    ) -> Result<VersionRecord> {
        self.set_for(bucket, key)
            .complete_upload(bucket, key, upload_id, parts, expected, condition)
            .await
    }

    /// See [`ErasureSet::abort_upload`].
    pub async fn abort_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        self.set_for(bucket, key)
            .abort_upload(bucket, key, upload_id)
            .await
    }

    /// Aborts abandoned uploads in every set.
    pub async fn expire_uploads(&self, max_age: std::time::Duration) -> Result<usize> {
        let mut n = 0;
        for set in &self.sets {
            n += set.expire_uploads(max_age).await?;
        }
        Ok(n)
    }

    // ----- listings: merged across sets -----

    /// See [`ErasureSet::list_objects`]; each set's first page is merged in key order.
    pub async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        after: &[u8],
        max_keys: usize,
    ) -> Result<ListPage> {
        let pages = join_all(
            self.sets
                .iter()
                .map(|s| s.list_objects(bucket, prefix, delimiter, after, max_keys)),
        )
        .await;
        let mut entries: Vec<(String, Option<ListEntry>)> = Vec::new();
        let mut truncated = false;
        for p in pages {
            let p = p?;
            truncated |= p.truncated;
            entries.extend(p.objects.into_iter().map(|(k, r)| (k, Some(r))));
            entries.extend(p.prefixes.into_iter().map(|cp| (cp, None)));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|a, b| a.0 == b.0 && a.1.is_none() && b.1.is_none());
        if entries.len() > max_keys {
            truncated = true;
            entries.truncate(max_keys);
        }
        let mut page = ListPage {
            truncated,
            ..Default::default()
        };
        if let Some((last, rec)) = entries.last() {
            page.next_after = last.clone().into_bytes();
            if rec.is_none() {
                page.next_after.push(0xFF);
            }
        } else {
            page.next_after = after.to_vec();
        }
        for (k, r) in entries {
            match r {
                Some(r) => page.objects.push((k, r)),
                None => page.prefixes.push(k),
            }
        }
        Ok(page)
    }

    /// See [`ErasureSet::list_object_versions`], merged across sets.
    pub async fn list_object_versions(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        key_marker: &str,
        version_marker: Option<&str>,
        max: usize,
    ) -> Result<VersionsPage> {
        let pages = join_all(self.sets.iter().map(|s| {
            s.list_object_versions(bucket, prefix, delimiter, key_marker, version_marker, max)
        }))
        .await;
        // (key, order within the key, entry or prefix)
        type Entry = (String, usize, Option<(VersionRecord, bool)>);
        let mut entries: Vec<Entry> = Vec::new();
        let mut truncated = false;
        for p in pages {
            let p = p?;
            truncated |= p.truncated;
            for (i, (k, v, latest)) in p.entries.into_iter().enumerate() {
                entries.push((k, i, Some((v, latest))));
            }
            entries.extend(p.prefixes.into_iter().map(|cp| (cp, 0, None)));
        }
        entries.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        entries.dedup_by(|a, b| a.0 == b.0 && a.2.is_none() && b.2.is_none());
        if entries.len() > max {
            truncated = true;
            entries.truncate(max);
        }
        let mut page = VersionsPage {
            truncated,
            ..Default::default()
        };
        if truncated {
            if let Some((k, _, e)) = entries.last() {
                page.next_key = Some(k.clone());
                page.next_version = e.as_ref().map(|(v, _)| v.version_id.clone());
            }
        }
        for (k, _, e) in entries {
            match e {
                Some((v, latest)) => page.entries.push((k, v, latest)),
                None => page.prefixes.push(k),
            }
        }
        Ok(page)
    }

    /// See [`ErasureSet::list_uploads`], merged across sets.
    pub async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        after: (&str, &str),
        max: usize,
    ) -> Result<UploadsPage> {
        let pages = join_all(
            self.sets
                .iter()
                .map(|s| s.list_uploads(bucket, prefix, delimiter, after, max)),
        )
        .await;
        // (key, upload id) of each upload, (prefix, "") of each common prefix, merged in
        // key order, as ListMultipartUploads pages them.
        let mut entries: Vec<((String, String), Option<crate::drive::UploadRecord>)> = Vec::new();
        let mut truncated = false;
        for p in pages {
            let p = p?;
            truncated |= p.truncated;
            entries.extend(
                p.uploads
                    .into_iter()
                    .map(|u| ((u.key.clone(), u.upload_id.clone()), Some(u))),
            );
            entries.extend(p.prefixes.into_iter().map(|cp| ((cp, String::new()), None)));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|a, b| a.0 == b.0 && a.1.is_none() && b.1.is_none());
        if entries.len() > max {
            truncated = true;
            entries.truncate(max);
        }
        let mut page = UploadsPage {
            truncated,
            ..Default::default()
        };
        if truncated {
            page.next = entries.last().map(|(at, _)| at.clone());
        }
        for (at, u) in entries {
            match u {
                Some(u) => page.uploads.push(u),
                None => page.prefixes.push(at.0),
            }
        }
        Ok(page)
    }
}
