//! The node RPC protocol for drives: one JSON call per metadata operation, and two streamed
//! endpoints for shard files. Shared by the node's server and `RemoteDrive`.
//!
//! - `POST /rpc/v1/drive/{d}/call`, body a JSON [`Call`]; the answer is the JSON of the
//!   operation's result, or an error status with a JSON [`WireError`].
//! - `PUT /rpc/v1/drive/{d}/shard/{bucket}/{data_dir}`: the shard file, as frames of a 4-byte
//!   big-endian length and that many bytes; a zero length means "commit" and must come last.
//!   A body that ends without it leaves nothing behind.
//! - `GET /rpc/v1/drive/{d}/shard/{bucket}/{data_dir}?offset=O&len=L`: those bytes.
//! - `GET /rpc/v1/topology`: the node's topology hash.

use serde::{Deserialize, Serialize};

use super::record::{
    BucketRecord, FormatRecord, HealHint, PartRecord, UploadRecord, VersionRecord,
};
use super::DriveError;

/// One metadata operation of the `Drive` trait (externally tagged: internally tagged enums
/// cannot carry the records' i128 timestamps through serde).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Call {
    ReadFormat,
    WriteFormat {
        format: FormatRecord,
    },
    DeleteShard {
        bucket: String,
        data_dir: String,
    },
    PutVersion {
        bucket: String,
        key: String,
        rec: VersionRecord,
    },
    GetVersion {
        bucket: String,
        key: String,
        version_id: String,
    },
    DeleteVersion {
        bucket: String,
        key: String,
        version_id: String,
    },
    ListKeys {
        bucket: String,
        prefix: String,
        after_hex: String,
        limit: usize,
    },
    ListVersions {
        bucket: String,
        prefix: String,
        after_hex: String,
        limit: usize,
    },
    KeyVersions {
        bucket: String,
        key: String,
    },
    PutBucket {
        rec: BucketRecord,
    },
    GetBucket {
        name: String,
    },
    DeleteBucket {
        name: String,
    },
    ListBuckets,
    PutUpload {
        bucket: String,
        rec: UploadRecord,
    },
    GetUpload {
        bucket: String,
        key: String,
        upload_id: String,
    },
    DeleteUpload {
        bucket: String,
        key: String,
        upload_id: String,
    },
    ListUploads {
        bucket: String,
        prefix: String,
        after_key: String,
        after_upload: String,
        limit: usize,
    },
    PutPart {
        bucket: String,
        key: String,
        upload_id: String,
        rec: PartRecord,
    },
    ListParts {
        bucket: String,
        key: String,
        upload_id: String,
    },
    Space,
    PutHint {
        hint: HealHint,
    },
    ListHints {
        after_hex: String,
        limit: usize,
    },
    DeleteHint {
        id_hex: String,
    },
    PutState {
        name: String,
        value_hex: String,
    },
    GetState {
        name: String,
    },
    StatShards {
        bucket: String,
        data_dirs: Vec<String>,
    },
    ListShardFiles {
        bucket: String,
        after: String,
        limit: usize,
    },
}

/// The header marking node RPC calls made by repair, not on behalf of a client request.
pub const BACKGROUND: &str = "x-tessera-background";

/// A drive error on the wire.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireError {
    /// `io`, `db`, `corrupt`, `offline` or `not_found`.
    pub kind: String,
    /// Details.
    pub message: String,
}

impl From<&DriveError> for WireError {
    fn from(e: &DriveError) -> Self {
        let kind = match e {
            DriveError::Io(_) => "io",
            DriveError::Db(_) => "db",
            DriveError::Corrupt(_) => "corrupt",
            DriveError::Offline(_) => "offline",
            DriveError::NotFound => "not_found",
        };
        Self {
            kind: kind.into(),
            message: e.to_string(),
        }
    }
}

impl From<WireError> for DriveError {
    fn from(w: WireError) -> Self {
        match w.kind.as_str() {
            "io" => DriveError::Io(std::io::Error::other(w.message)),
            "db" => DriveError::Db(w.message),
            "corrupt" => DriveError::Corrupt(w.message),
            "not_found" => DriveError::NotFound,
            _ => DriveError::Offline(w.message),
        }
    }
}
