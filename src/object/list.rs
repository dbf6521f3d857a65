//! LIST: every drive returns its sorted keys; the set merges them, keeps keys that a read
//! quorum holds, and folds common prefixes. Pages stop at the first key that some drive has
//! not yet listed past, so a merge never skips a key.

use std::collections::BTreeMap;

use super::{ErasureSet, Error, Result};
use crate::drive::ListEntry;

/// One page of a listing.
#[derive(Debug, Default)]
pub struct ListPage {
    /// Objects, in key byte order.
    pub objects: Vec<(String, ListEntry)>,
    /// Common prefixes, in byte order.
    pub prefixes: Vec<String>,
    /// More entries follow.
    pub truncated: bool,
    /// Where the next page starts (exclusive), as raw bytes; meaningful when truncated.
    pub next_after: Vec<u8>,
}

impl ErasureSet {
    /// Keys of `bucket` under `prefix` strictly after `after`, folding at `delimiter`, at most
    /// `max_keys` entries (objects and prefixes together).
    pub async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        after: &[u8],
        max_keys: usize,
    ) -> Result<ListPage> {
        self.get_bucket(bucket).await?;
        let mut page = ListPage::default();
        let mut cursor = after.to_vec();
        let delimiter = delimiter.filter(|d| !d.is_empty());
        if max_keys == 0 {
            // An empty page that is not truncated, as S3 answers `max-keys=0`: there is no
            // key to continue after, and a token that restarts the listing would loop.
            page.next_after = cursor;
            return Ok(page);
        }
        // Keys fetched beyond what the page still needs: one, so that a full page learns in
        // the same round whether more follow; more after a round that met delete markers,
        // which take no room on the page, so that a run of them costs few rounds.
        let mut extra = 1;
        'outer: loop {
            // S3 pages hold at most 1,000 keys.
            let want = (max_keys - page.objects.len() - page.prefixes.len() + extra).clamp(2, 1001);
            let (batch, scanned_to) = self.merged_scan(bucket, prefix, &cursor, want).await?;
            if batch.is_empty() && scanned_to.is_none() {
                break;
            }
            let mut markers = false;
            for (key, rec) in batch {
                if rec.delete_marker {
                    // The key's current version is a delete marker: it is not listed.
                    cursor = key.into_bytes();
                    markers = true;
                    continue;
                }
                // The page is full only when another entry is there to take its place: a
                // listing whose last keys are all delete markers is not truncated.
                let full = page.objects.len() + page.prefixes.len() == max_keys;
                if let Some(d) = delimiter {
                    if let Some(pos) = key[prefix.len()..].find(d) {
                        let cp = key[..prefix.len() + pos + d.len()].to_string();
                        let mut skip_to = cp.clone().into_bytes();
                        skip_to.push(0xFF);
                        if cp.as_bytes() > after {
                            if full {
                                page.truncated = true;
                                break 'outer;
                            }
                            page.prefixes.push(cp);
                        }
                        cursor = skip_to;
                        // The rest of this batch may be under the folded prefix: rescan.
                        continue 'outer;
                    }
                }
                if full {
                    page.truncated = true;
                    break 'outer;
                }
                cursor = key.clone().into_bytes();
                page.objects.push((key, rec));
            }
            if markers {
                extra = (extra * 4).min(1000);
            }
            match scanned_to {
                None => break,
                // Keys up to the cutoff that lacked a quorum were skipped: move past them.
                Some(c) if c.as_bytes() > cursor.as_slice() => cursor = c.into_bytes(),
                Some(_) => {}
            }
        }
        if page.truncated {
            // The last entry returned is where the next page starts.
            page.next_after = match (page.objects.last(), page.prefixes.last()) {
                (Some((k, _)), Some(p)) if k.as_str() > p.as_str() => k.clone().into_bytes(),
                (_, Some(p)) => {
                    let mut b = p.clone().into_bytes();
                    b.push(0xFF);
                    b
                }
                (Some((k, _)), None) => k.clone().into_bytes(),
                (None, None) => cursor,
            };
        }
        Ok(page)
    }

    /// Merges one batch from every drive. Returns the keys that are complete (no drive can
    /// still hold a smaller unlisted key) and the key up to which the scan is complete, or
    /// `None` when every drive is exhausted.
    async fn merged_scan(
        &self,
        bucket: &str,
        prefix: &str,
        after: &[u8],
        limit: usize,
    ) -> Result<(Vec<(String, ListEntry)>, Option<String>)> {
        let answers = self
            .on_drives(|d| d.list_keys(bucket, prefix, after, limit))
            .await;
        let errors = answers.iter().filter(|a| a.is_err()).count();
        if self.drives.len() - errors < self.read_quorum() {
            return Err(Error::Quorum(format!("{errors} drives failed listing")));
        }
        let mut cutoff: Option<String> = None;
        let mut merged: BTreeMap<String, (ListEntry, usize)> = BTreeMap::new();
        for entries in answers.into_iter().flatten() {
            if entries.len() >= limit {
                if let Some((last, _)) = entries.last() {
                    if cutoff.as_ref().is_none_or(|c| last < c) {
                        cutoff = Some(last.clone());
                    }
                }
            }
            for (key, rec) in entries {
                match merged.get_mut(&key) {
                    Some((best, n)) => {
                        *n += 1;
                        if rec.mod_time_ns > best.mod_time_ns {
                            *best = rec;
                        }
                    }
                    None => {
                        merged.insert(key, (rec, 1));
                    }
                }
            }
        }
        let need = self.read_quorum().min(self.drives.len() - errors);
        let out = merged
            .into_iter()
            .filter(|(k, _)| cutoff.as_ref().is_none_or(|c| k <= c))
            .filter(|(_, (_, n))| *n >= need)
            .map(|(k, (r, _))| (k, r))
            .collect();
        Ok((out, cutoff))
    }
}
