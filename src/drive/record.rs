//! Records a drive stores, and their on-disk encoding: one format-version byte followed by
//! JSON. The layout is documented in `docs/format.md`; a change of layout bumps the byte and
//! keeps the code that reads the old one.

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::BTreeMap;

use super::DriveError;

/// The record format version written today.
pub const RECORD_VERSION: u8 = 1;

/// Identity of a drive within a deployment, written at first start and checked after.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormatRecord {
    /// Format version of this record.
    pub version: u8,
    /// The deployment this drive belongs to.
    pub deployment_id: String,
    /// Index of the erasure set that holds this drive.
    pub set: u32,
    /// Position of this drive within its set.
    pub index: u32,
    /// Unique id of this drive.
    pub drive_id: String,
}

/// A bucket, stored on every drive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRecord {
    /// Bucket name.
    pub name: String,
    /// Creation time, nanoseconds since the Unix epoch.
    pub created_ns: i128,
    /// Region given at creation, if any.
    #[serde(default)]
    pub location: Option<String>,
    /// Versioning state: `None` (never enabled), `Enabled` or `Suspended`.
    #[serde(default)]
    pub versioning: Option<String>,
    /// Bucket tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// Bucket policy (JSON), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// When its settings (versioning, tags, policy) last changed, nanoseconds since the Unix
    /// epoch; 0 in records from before this field and in those never changed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub updated_ns: i128,
    /// Nonzero in a tombstone: the bucket was deleted then (and `updated_ns` is that time
    /// too, so the tombstone is the newest copy). A delete leaves this record on every drive
    /// instead of removing it, so that a drive that was away keeps no live copy that could
    /// bring the bucket back; a new bucket of the name is created later, and so is newer.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub deleted_ns: i128,
}

fn is_zero(n: &i128) -> bool {
    *n == 0
}

impl BucketRecord {
    /// Orders the copies of a bucket's record: the one written last is the greatest. A drive
    /// that missed a change (it was away) holds an older copy until repair rewrites it. The
    /// creation comes first: a copy left from before the bucket was deleted and made again
    /// is older, however many changes it saw.
    pub fn stamp(&self) -> (i128, i128, bool) {
        (self.created_ns, self.updated_ns, self.is_deleted())
    }

    /// Which of two copies of a bucket's record is the current one: the greater stamp
    /// ([`Self::stamp`]; a tombstone wins over a live copy stamped alike, such as one that a
    /// node of an earlier version wrote back without `deleted_ns`), then, of two changes
    /// stamped alike (gateways whose clocks are behind the last stamp), the greater settings.
    /// Drives, reads, listings and the scanner all decide by this order, so they decide alike.
    pub fn precedence_cmp(&self, other: &Self) -> std::cmp::Ordering {
        fn settings(r: &BucketRecord) -> impl Ord + '_ {
            (&r.versioning, &r.policy, &r.tags, &r.location)
        }
        self.stamp()
            .cmp(&other.stamp())
            .then_with(|| settings(self).cmp(&settings(other)))
    }

    /// Whether this is the tombstone of a deleted bucket.
    pub fn is_deleted(&self) -> bool {
        self.deleted_ns != 0
    }
}

/// How an object version is spread over its erasure set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureLayout {
    /// Data shards.
    pub k: u8,
    /// Parity shards.
    pub m: u8,
    /// Object bytes per stripe.
    pub stripe_size: u32,
    /// Which shard of the stripe this drive holds (0..k are data, k.. parity).
    pub shard_index: u8,
    /// `distribution[i]` is the set position of the drive holding shard `i`.
    pub distribution: Vec<u8>,
}

impl ErasureLayout {
    /// `positions()[i]` is the set position of the drive holding shard `i`.
    pub fn positions(&self) -> Vec<usize> {
        self.distribution.iter().map(|&p| p as usize).collect()
    }
}

/// One version of an object, as stored on each drive of its set (each copy differs only in
/// `layout.shard_index` and `inline`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// Version id; `"null"` in a bucket without versioning.
    pub version_id: String,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mod_time_ns: i128,
    /// Object size in bytes.
    pub size: u64,
    /// The ETag without quotes.
    pub etag: String,
    /// `Content-Type` and the other stored system headers (lowercase names).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// User metadata (`x-amz-meta-*`, names without the prefix, lowercase).
    #[serde(default)]
    pub user_meta: BTreeMap<String, String>,
    /// Checksum algorithm name and base64 value, when the client sent one.
    #[serde(default)]
    pub checksum: Option<(String, String)>,
    /// Erasure layout of this version.
    pub layout: ErasureLayout,
    /// Name of the shard file (a UUID); empty when the data is inline.
    pub data_dir: String,
    /// This drive's framed shard, for small objects kept in the record.
    #[serde(default, with = "opt_b64")]
    pub inline: Option<Vec<u8>>,
    /// For an object made by a multipart upload: its parts in order, each with its own shard
    /// file. Empty for a single PUT, whose data is `data_dir`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<PartRef>,
    /// The multipart upload that made this version, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
    /// This version is a delete marker: no data, and it hides older versions from GET.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delete_marker: bool,
    /// Object tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// When its tags last changed, nanoseconds since the Unix epoch; 0 if never. Of the copies
    /// of one version, the one with the greatest is current: a drive away during a change
    /// holds an older copy until repair rewrites it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub meta_ns: i128,
}

/// What a listing shows of a key's newest version: the fields of [`VersionRecord`] that
/// ListObjects prints, decoded from the stored record without the rest. Headers, layout and
/// inline data are most of a record's bytes and of its decoding, and a listing decodes one
/// record per key from every drive of the set; over the node RPC they would also cross the
/// network six times per key. The names are those of `VersionRecord`, so a stored record (or
/// an older node's answer, which sends whole records) decodes as one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEntry {
    /// Version id; `"null"` in a bucket without versioning.
    pub version_id: String,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mod_time_ns: i128,
    /// Object size in bytes.
    pub size: u64,
    /// The ETag without quotes.
    pub etag: String,
    /// Checksum algorithm name and base64 value, when the client sent one.
    #[serde(default)]
    pub checksum: Option<(String, String)>,
    /// This version is a delete marker.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delete_marker: bool,
}

impl ListEntry {
    /// Whether this version is newer than `other` (by modification time, then version id).
    pub fn newer_than(&self, other: &ListEntry) -> bool {
        (self.mod_time_ns, &self.version_id) > (other.mod_time_ns, &other.version_id)
    }
}

/// A small inline version (4+2, shard 0, 3 bytes) for tests to start from.
#[cfg(test)]
pub(crate) fn sample_version(version_id: &str) -> VersionRecord {
    VersionRecord {
        version_id: version_id.into(),
        mod_time_ns: 1,
        size: 3,
        etag: "e".into(),
        headers: Default::default(),
        user_meta: Default::default(),
        checksum: None,
        layout: ErasureLayout {
            k: 4,
            m: 2,
            stripe_size: 1 << 20,
            shard_index: 0,
            distribution: vec![0, 1, 2, 3, 4, 5],
        },
        data_dir: String::new(),
        inline: Some(b"abc".to_vec()),
        parts: Vec::new(),
        upload_id: None,
        delete_marker: false,
        tags: Default::default(),
        meta_ns: 0,
    }
}

impl VersionRecord {
    /// Every shard file this version owns.
    pub fn data_dirs(&self) -> Vec<String> {
        let mut out: Vec<String> = self.parts.iter().map(|p| p.data_dir.clone()).collect();
        if !self.data_dir.is_empty() {
            out.push(self.data_dir.clone());
        }
        out
    }

    /// Which of two records of one version id a drive keeps (last writer wins): the one
    /// with the greater order, that is the later modification, then the larger data folder
    /// name; of two copies of one version, the one with the greater [`Self::meta_order`] (its
    /// tags changed last). Every drive decides alike.
    pub fn write_order(&self) -> (i128, &str) {
        (self.mod_time_ns, &self.data_dir)
    }

    /// Of two copies of one version, the greater holds the metadata as changed last: the
    /// greater `meta_ns`, then, of two changes stamped alike, the greater tags. Each change
    /// is stamped past the copy it read, but two gateways can read the same copy and, where a
    /// clock is behind the last stamp, both stamp it plus one; without the tags in the order,
    /// drives kept whichever came last, and reads of different drives served different tags.
    /// Drives, reads and heals all decide by this order, so they decide alike.
    pub fn meta_order(&self) -> (i128, &BTreeMap<String, String>) {
        (self.meta_ns, &self.tags)
    }
}

/// One part of a completed multipart object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRef {
    /// Part number given by the client.
    pub number: u32,
    /// Bytes in the part.
    pub size: u64,
    /// The part's shard file.
    pub data_dir: String,
    /// The part's ETag (hex MD5).
    pub etag: String,
}

/// A multipart upload in progress, stored on every drive of the set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadRecord {
    /// Upload id.
    pub upload_id: String,
    /// Object key.
    pub key: String,
    /// Start time, nanoseconds since the Unix epoch.
    pub initiated_ns: i128,
    /// System headers for the object.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// User metadata for the object.
    #[serde(default)]
    pub user_meta: BTreeMap<String, String>,
    /// Checksum algorithm the client asked for at creation.
    #[serde(default)]
    pub checksum_algorithm: Option<String>,
    /// `FULL_OBJECT` or `COMPOSITE`, with the algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_type: Option<String>,
    /// Tags for the object.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// One uploaded part, stored on every drive of the set (copies differ in `shard_index`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRecord {
    /// Part number, 1..=10000.
    pub number: u32,
    /// Bytes in the part.
    pub size: u64,
    /// Hex MD5 of the part.
    pub etag: String,
    /// Upload time, nanoseconds since the Unix epoch.
    pub mod_time_ns: i128,
    /// The part's shard file.
    pub data_dir: String,
    /// Checksum the client sent, `(algorithm, base64)`.
    #[serde(default)]
    pub checksum: Option<(String, String)>,
    /// Which shard this drive holds.
    pub shard_index: u8,
}

/// A heal hint: a version that missed drives (or a drive that needs a full rebuild), kept
/// on the drives of its set until repair restores full redundancy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealHint {
    /// Bucket; empty for a hint about a whole drive.
    pub bucket: String,
    /// Key; empty for a hint about a whole drive.
    pub key: String,
    /// Version id; for a drive hint, the drive's id.
    pub version_id: String,
    /// Re-read every block (the hint came from a corrupt read), not only check presence.
    #[serde(default)]
    pub deep: bool,
    /// When the hint was made, milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// Failed attempts so far.
    #[serde(default)]
    pub attempts: u32,
    /// Not to be tried again before this time (milliseconds since the Unix epoch).
    #[serde(default)]
    pub not_before_ms: u64,
}

impl HealHint {
    /// A hint for one version.
    pub fn version(bucket: &str, key: &str, version_id: &str, deep: bool) -> Self {
        Self {
            bucket: bucket.into(),
            key: key.into(),
            version_id: version_id.into(),
            deep,
            created_ms: now_ms(),
            attempts: 0,
            not_before_ms: 0,
        }
    }

    /// A hint that a drive came up blank and must be rebuilt whole.
    pub fn drive(drive_id: &str) -> Self {
        Self::version("", "", drive_id, false)
    }

    /// Whether this hint asks for a whole drive.
    pub fn is_drive(&self) -> bool {
        self.bucket.is_empty()
    }

    /// The key hints are stored under: `bucket \0 key \0 version`.
    pub fn id(&self) -> Vec<u8> {
        let mut k = Vec::new();
        k.extend_from_slice(self.bucket.as_bytes());
        k.push(0);
        k.extend_from_slice(self.key.as_bytes());
        k.push(0);
        k.extend_from_slice(self.version_id.as_bytes());
        k
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Serialises a record: the version byte, then JSON.
pub fn encode<T: Serialize>(rec: &T) -> Result<Vec<u8>, DriveError> {
    let mut out = vec![RECORD_VERSION];
    serde_json::to_writer(&mut out, rec).map_err(|e| DriveError::Corrupt(e.to_string()))?;
    Ok(out)
}

/// Reads a record written by [`encode`] (any known version).
pub fn decode<T: DeserializeOwned>(raw: &[u8]) -> Result<T, DriveError> {
    match raw.split_first() {
        Some((&RECORD_VERSION, body)) => {
            serde_json::from_slice(body).map_err(|e| DriveError::Corrupt(e.to_string()))
        }
        Some((v, _)) => Err(DriveError::Corrupt(format!("unknown record version {v}"))),
        None => Err(DriveError::Corrupt("empty record".into())),
    }
}

mod opt_b64 {
    use base64::{engine::general_purpose::STANDARD, Engine};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_some(&STANDARD.encode(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let v: Option<String> = Option::deserialize(d)?;
        v.map(|s| STANDARD.decode(s).map_err(serde::de::Error::custom))
            .transpose()
    }
}
