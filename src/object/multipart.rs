//! Multipart uploads: each part is erasure coded into its own shard files as it arrives; the
//! upload and part records live on every drive; completion writes one version record that
//! lists the parts, so the object replaces the key atomically.

use std::collections::BTreeMap;

use crate::md5sum::Md5;

use super::put::{BodyStream, PutOptions, WriteCondition};
use super::{now_ns, ErasureSet, Error, Result};
use crate::drive::{PartRecord, PartRef, UploadRecord, VersionRecord};

/// Smallest part but the last, as S3: 5 MiB.
pub const MIN_PART_SIZE: u64 = 5 << 20;

/// A part named by CompleteMultipartUpload.
#[derive(Debug, Clone)]
pub struct CompletedPart {
    /// Part number.
    pub number: u32,
    /// The ETag the client got for it (quotes allowed).
    pub etag: String,
    /// The part's checksum as the client listed it, `(algorithm, base64)`: where given and
    /// the part was uploaded with one, the two must be the same.
    pub checksum: Option<(String, String)>,
}

/// One page of ListMultipartUploads.
#[derive(Debug, Default)]
pub struct UploadsPage {
    /// Uploads in (key, upload id) order.
    pub uploads: Vec<UploadRecord>,
    /// Common prefixes, when a delimiter was given.
    pub prefixes: Vec<String>,
    /// More follow.
    pub truncated: bool,
    /// Where the next page starts, `(key marker, upload id marker)`, when more follow: the
    /// page's last upload, or its last common prefix and an empty upload id. Set by
    /// [`crate::object::Store::list_uploads`], which merges the sets' pages.
    pub next: Option<(String, String)>,
}

impl ErasureSet {
    /// Starts an upload and returns its id.
    pub async fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        opts: PutOptions,
        checksum: Option<(String, String)>,
    ) -> Result<String> {
        self.get_bucket(bucket).await?;
        let rec = UploadRecord {
            upload_id: format!("{}", uuid::Uuid::new_v4().simple()),
            key: key.to_string(),
            initiated_ns: now_ns(),
            headers: opts.headers,
            user_meta: opts.user_meta,
            checksum_algorithm: checksum.as_ref().map(|(a, _)| a.clone()),
            checksum_type: checksum.map(|(_, t)| t),
            tags: opts.tags,
        };
        let ok = self
            .on_drives(|d| d.put_upload(bucket, &rec))
            .await
            .into_iter()
            .filter(|r| r.is_ok())
            .count();
        if ok < self.write_quorum() {
            return Err(Error::Quorum(format!("upload record on {ok} drives")));
        }
        Ok(rec.upload_id)
    }

    /// The upload's record, by quorum.
    pub async fn get_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<UploadRecord> {
        let answers = self
            .on_drives(|d| d.get_upload(bucket, key, upload_id))
            .await;
        let errors = answers.iter().filter(|a| a.is_err()).count();
        let found: Vec<UploadRecord> = answers
            .into_iter()
            .filter_map(|a| a.ok().flatten())
            .collect();
        if found.len() >= self.read_quorum() {
            return Ok(found[0].clone());
        }
        if found.is_empty() && errors <= self.m() {
            return Err(Error::NoSuchUpload);
        }
        if !found.is_empty() && errors == 0 {
            return Ok(found[0].clone());
        }
        Err(Error::Quorum(format!(
            "upload {upload_id}: {} copies, {errors} drives failed",
            found.len()
        )))
    }

    /// Stores one part, replacing an earlier upload of the same number.
    pub async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        opts: PutOptions,
        body: BodyStream,
    ) -> Result<PartRecord> {
        self.get_upload(bucket, key, upload_id).await?;
        let distribution = self.distribution(bucket, key);
        let enc = self
            .encode_body(
                bucket,
                &distribution,
                // Parts keep the set's layout: the completed object has one layout for all.
                &self.codec.clone(),
                body,
                opts.content_md5,
                opts.finish,
                false,
            )
            .await?;
        let base = PartRecord {
            number,
            size: enc.size,
            etag: hex::encode(enc.md5),
            mod_time_ns: now_ns(),
            data_dir: enc.data_dir.clone(),
            checksum: enc.checksum,
            shard_index: 0,
        };
        let puts: Vec<_> = (0..self.drives.len())
            .map(|shard| {
                let drive = self.drives[distribution[shard] as usize].clone();
                let mut rec = base.clone();
                rec.shard_index = shard as u8;
                let ok = enc.committed[shard];
                async move {
                    if ok {
                        drive.put_part(bucket, key, upload_id, &rec).await.ok()
                    } else {
                        None
                    }
                }
            })
            .collect();
        let answers: Vec<Option<Option<PartRecord>>> = self
            .on_shards(&distribution, puts, |a| a.is_some(), || None)
            .await;
        let written = answers.iter().filter(|a| a.is_some()).count();
        let mut replaced: Vec<String> = answers
            .into_iter()
            .flatten()
            .flatten()
            .map(|old| old.data_dir)
            .filter(|d| *d != base.data_dir)
            .collect();
        replaced.sort();
        replaced.dedup();
        if written < self.write_quorum() {
            self.on_drives(|d| d.delete_shard(bucket, &base.data_dir))
                .await;
            return Err(Error::Quorum(format!(
                "part {number} recorded on {written} drives"
            )));
        }
        for dir in replaced {
            self.on_drives(|d| d.delete_shard(bucket, &dir)).await;
        }
        Ok(base)
    }

    /// The parts of an upload that a read quorum of drives holds, by number (the newest
    /// upload of each number).
    pub async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<PartRecord>> {
        self.get_upload(bucket, key, upload_id).await?;
        let answers = self
            .on_drives(|d| d.list_parts(bucket, key, upload_id))
            .await;
        let mut seen: BTreeMap<(u32, String), (PartRecord, usize)> = BTreeMap::new();
        for rec in answers.into_iter().flatten().flatten() {
            seen.entry((rec.number, rec.data_dir.clone()))
                .or_insert((rec, 0))
                .1 += 1;
        }
        let mut best: BTreeMap<u32, PartRecord> = BTreeMap::new();
        for (rec, count) in seen.into_values() {
            if count < self.read_quorum() {
                continue;
            }
            match best.get(&rec.number) {
                Some(b) if b.mod_time_ns >= rec.mod_time_ns => {}
                _ => {
                    best.insert(rec.number, rec);
                }
            }
        }
        Ok(best.into_values().collect())
    }

    /// Completes an upload from the named parts. Completing an upload that already completed
    /// into the current version answers that version again, as S3 does.
    pub async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        requested: &[CompletedPart],
        expected: Option<(String, String)>,
        condition: Option<&WriteCondition>,
    ) -> Result<VersionRecord> {
        let upload = match self.get_upload(bucket, key, upload_id).await {
            Err(Error::NoSuchUpload) => {
                return match self.quorum_version(bucket, key, None).await {
                    Ok((v, _)) if v.upload_id.as_deref() == Some(upload_id) => Ok(v),
                    _ => Err(Error::NoSuchUpload),
                };
            }
            other => other?,
        };
        // A conditional completion (`If-None-Match: *`, `If-Match`) is checked and committed
        // under the key's lock, as a conditional PUT commits.
        let guard = match condition {
            Some(c) => {
                let guard = self.key_lock(bucket, key).lock().await;
                self.check_write_condition(bucket, key, c).await?;
                Some(guard)
            }
            None => None,
        };
        let bucket_rec = self.get_bucket(bucket).await?;
        let parts = self.list_parts(bucket, key, upload_id).await?;
        let by_number: BTreeMap<u32, &PartRecord> = parts.iter().map(|p| (p.number, p)).collect();
        let mut chosen: Vec<&PartRecord> = Vec::with_capacity(requested.len());
        let mut last = 0u32;
        for want in requested {
            if want.number <= last {
                return Err(Error::InvalidPartOrder);
            }
            last = want.number;
            let etag = want.etag.trim().trim_matches('"');
            let same_checksum = |p: &PartRecord| match (&want.checksum, &p.checksum) {
                (None, _) => true,
                (Some((a, v)), Some((pa, pv))) => a.eq_ignore_ascii_case(pa) && v == pv,
                // Uploaded without one (a part copied from an object, say): nothing to check.
                (Some(_), None) => true,
            };
            match by_number.get(&want.number) {
                Some(p) if p.etag == etag && same_checksum(p) => chosen.push(p),
                _ => return Err(Error::InvalidPart(format!("part {}", want.number))),
            }
        }
        if let Some((_, init)) = chosen.split_last() {
            if let Some(small) = init.iter().find(|p| p.size < MIN_PART_SIZE) {
                return Err(Error::EntityTooSmall(format!(
                    "part {} is {} bytes; every part but the last must be at least 5 MiB",
                    small.number, small.size
                )));
            }
        }
        let mut md5s = Md5::new();
        for p in &chosen {
            let raw = hex::decode(&p.etag).map_err(|e| Error::Internal(e.to_string()))?;
            md5s.update(&raw);
        }
        let checksum = whole_checksum(&upload, expected.as_ref(), &chosen);
        if let Some((alg, want)) = &expected {
            match &checksum {
                // A composite value named without its part count matches it too.
                Some((a, got))
                    if a.eq_ignore_ascii_case(alg)
                        && (got == want
                            || got.rsplit_once('-').is_some_and(|(bare, _)| bare == want)) => {}
                _ => {
                    return Err(Error::ChecksumMismatch(format!(
                        "the {alg} checksum of the object does not match {want}"
                    )))
                }
            }
        }
        let distribution = self.distribution(bucket, key);
        let rec = VersionRecord {
            version_id: super::new_version_id(&bucket_rec),
            mod_time_ns: now_ns(),
            size: chosen.iter().map(|p| p.size).sum(),
            etag: format!("{}-{}", hex::encode(md5s.finalize()), chosen.len()),
            headers: upload.headers.clone(),
            user_meta: upload.user_meta.clone(),
            checksum,
            layout: self.layout(&distribution),
            data_dir: String::new(),
            inline: None,
            parts: chosen
                .iter()
                .map(|p| PartRef {
                    number: p.number,
                    size: p.size,
                    data_dir: p.data_dir.clone(),
                    etag: p.etag.clone(),
                })
                .collect(),
            upload_id: Some(upload_id.to_string()),
            delete_marker: false,
            tags: upload.tags.clone(),
            meta_ns: 0,
        };
        let n = self.drives.len();
        let rec = self
            .commit_version(bucket, key, rec, vec![None; n], &vec![true; n])
            .await?;
        drop(guard);
        // A part written while drives were down leaves holes the version's records do not
        // show: check that every drive holds every part, and leave a hint where one does not.
        let dirs: Vec<String> = rec.parts.iter().map(|p| p.data_dir.clone()).collect();
        let held = self.on_drives(|d| d.stat_shards(bucket, &dirs)).await;
        if held
            .iter()
            .any(|h| !matches!(h, Ok(v) if v.iter().all(|x| x.is_some())))
        {
            self.persist_hint(bucket, key, &rec.version_id, false).await;
        }
        // The upload is done: its records go, and so do the parts it did not use.
        self.on_drives(|d| d.delete_upload(bucket, key, upload_id))
            .await;
        let used: Vec<&str> = rec.parts.iter().map(|p| p.data_dir.as_str()).collect();
        for p in parts
            .iter()
            .filter(|p| !used.contains(&p.data_dir.as_str()))
        {
            self.on_drives(|d| d.delete_shard(bucket, &p.data_dir))
                .await;
        }
        Ok(rec)
    }

    /// Aborts an upload: its parts' shard files and its records go.
    pub async fn abort_upload(&self, bucket: &str, key: &str, upload_id: &str) -> Result<()> {
        self.get_upload(bucket, key, upload_id).await?;
        let lists = self
            .on_drives(|d| d.list_parts(bucket, key, upload_id))
            .await;
        let mut dirs: Vec<String> = lists
            .into_iter()
            .flatten()
            .flatten()
            .map(|p| p.data_dir)
            .collect();
        dirs.sort();
        dirs.dedup();
        let ok = self
            .on_drives(|d| d.delete_upload(bucket, key, upload_id))
            .await
            .into_iter()
            .filter(|r| r.is_ok())
            .count();
        for dir in dirs {
            self.on_drives(|d| d.delete_shard(bucket, &dir)).await;
        }
        if ok < self.write_quorum() {
            return Err(Error::Quorum(format!("abort reached {ok} drives")));
        }
        Ok(())
    }

    /// Uploads in progress, merged from every drive, with prefix and delimiter folding.
    pub async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        after: (&str, &str),
        max: usize,
    ) -> Result<UploadsPage> {
        self.get_bucket(bucket).await?;
        let delimiter = delimiter.filter(|d| !d.is_empty());
        let mut page = UploadsPage::default();
        if max == 0 {
            return Ok(page);
        }
        // Uploads are few; each drive lists a bounded window after the cursor and the set
        // merges them. Where a drive's window was full, only what comes before its last
        // entry is complete: past that cutoff the next round lists again.
        let window = (max + 1).max(1000);
        let mut cursor = (after.0.to_string(), after.1.to_string());
        'rounds: loop {
            let answers = self
                .on_drives(|d| d.list_uploads(bucket, prefix, (&cursor.0, &cursor.1), window))
                .await;
            let errors = answers.iter().filter(|a| a.is_err()).count();
            if self.drives.len() - errors < self.read_quorum() {
                return Err(Error::Quorum(format!(
                    "{errors} drives failed listing uploads"
                )));
            }
            let mut cutoff: Option<(String, String)> = None;
            let mut merged: BTreeMap<(String, String), (UploadRecord, usize)> = BTreeMap::new();
            for recs in answers.into_iter().flatten() {
                if recs.len() >= window {
                    if let Some(last) = recs.last() {
                        let last = (last.key.clone(), last.upload_id.clone());
                        if cutoff.as_ref().is_none_or(|c| last < *c) {
                            cutoff = Some(last);
                        }
                    }
                }
                for rec in recs {
                    merged
                        .entry((rec.key.clone(), rec.upload_id.clone()))
                        .or_insert((rec, 0))
                        .1 += 1;
                }
            }
            // Only entries past the cursor count, so that it moves forward whatever a drive
            // answers.
            merged.retain(|id, _| *id > cursor);
            if merged.is_empty() {
                break;
            }
            for (id, (rec, count)) in merged {
                if cutoff.as_ref().is_some_and(|c| id > *c) {
                    break;
                }
                cursor = id;
                if count < self.read_quorum() {
                    continue;
                }
                if let Some(d) = delimiter {
                    if let Some(pos) = rec.key[prefix.len()..].find(d) {
                        // Keys under one prefix sort together: the rest of them in this
                        // window fold into the prefix already counted.
                        let cp = &rec.key[..prefix.len() + pos + d.len()];
                        // A prefix at or before the key marker was on an earlier page.
                        if cp > after.0 && page.prefixes.last().map(String::as_str) != Some(cp) {
                            if page.uploads.len() + page.prefixes.len() == max {
                                page.truncated = true;
                                break 'rounds;
                            }
                            page.prefixes.push(cp.to_string());
                        }
                        continue;
                    }
                }
                if page.uploads.len() + page.prefixes.len() == max {
                    page.truncated = true;
                    break 'rounds;
                }
                page.uploads.push(rec);
            }
            if cutoff.is_none() {
                break;
            }
        }
        Ok(page)
    }
}

impl ErasureSet {
    /// Aborts every upload started more than `max_age` ago, in every bucket; returns how many.
    /// Abandoned uploads would otherwise hold their parts' shards for ever.
    pub async fn expire_uploads(&self, max_age: std::time::Duration) -> Result<usize> {
        let cutoff = now_ns() - max_age.as_nanos() as i128;
        let mut expired = 0;
        for bucket in self.list_buckets().await? {
            let (aborted, _) = self
                .abort_uploads_where(&bucket.name, |u| u.initiated_ns < cutoff)
                .await?;
            expired += aborted;
        }
        Ok(expired)
    }

    /// Aborts the uploads of `bucket` that `doomed` picks; returns how many were aborted and
    /// how many could not be (each logged).
    pub(super) async fn abort_uploads_where(
        &self,
        bucket: &str,
        doomed: impl Fn(&UploadRecord) -> bool,
    ) -> Result<(usize, usize)> {
        let (mut aborted, mut failed) = (0, 0);
        let mut after = (String::new(), String::new());
        loop {
            let page = self
                .list_uploads(bucket, "", None, (&after.0, &after.1), 1000)
                .await?;
            for u in page.uploads.iter().filter(|u| doomed(u)) {
                match self.abort_upload(bucket, &u.key, &u.upload_id).await {
                    Ok(()) => aborted += 1,
                    Err(e) => {
                        failed += 1;
                        tracing::warn!(bucket, key = %u.key, error = %e, "cannot abort upload")
                    }
                }
            }
            match page.uploads.last() {
                Some(last) if page.truncated => {
                    after = (last.key.clone(), last.upload_id.clone());
                }
                _ => break,
            }
        }
        Ok((aborted, failed))
    }
}

/// The checksum of a completed multipart object, `(algorithm, base64)`: for a `FULL_OBJECT`
/// upload (the default for CRC64NVME) the parts' CRCs combined into the CRC of the whole
/// object; for a `COMPOSITE` one the checksum of the parts' binary checksums, then `-N`.
/// `None` when no algorithm was asked for or a part lacks its checksum.
fn whole_checksum(
    upload: &UploadRecord,
    expected: Option<&(String, String)>,
    parts: &[&PartRecord],
) -> Option<(String, String)> {
    use crate::checksum::ChecksumAlgorithm;
    use base64::{engine::general_purpose::STANDARD, Engine};
    let name = upload
        .checksum_algorithm
        .as_deref()
        .or(expected.map(|(a, _)| a.as_str()))?;
    let alg = ChecksumAlgorithm::from_name(name)?;
    let full = match upload.checksum_type.as_deref() {
        Some(t) => t == "FULL_OBJECT",
        // Asked for at completion only: a whole-object value, where the algorithm allows.
        None => upload.checksum_algorithm.is_none() && alg.combinable(),
    };
    let part_sum = |p: &PartRecord| -> Option<String> {
        let (a, v) = p.checksum.as_ref()?;
        a.eq_ignore_ascii_case(alg.as_str()).then(|| v.clone())
    };
    if full {
        let mut acc: Option<String> = None;
        for p in parts {
            let v = part_sum(p)?;
            acc = Some(match acc {
                None => v,
                Some(a) => alg.combine(&a, &v, p.size)?,
            });
        }
        let value = acc.unwrap_or_else(|| alg.hasher().finish());
        return Some((alg.as_str().to_string(), value));
    }
    let mut h = alg.hasher();
    for p in parts {
        h.update(&STANDARD.decode(part_sum(p)?).ok()?);
    }
    Some((
        alg.as_str().to_string(),
        format!("{}-{}", h.finish(), parts.len()),
    ))
}
