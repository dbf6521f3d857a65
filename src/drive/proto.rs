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
        /// Answer with `ListEntry`s rather than whole records. A node from before this field
        /// ignores it and answers whole records, which decode as entries; a caller from before
        /// it omits it and gets the whole records it expects. So gateways and nodes of either
        /// version list together during a rolling update.
        #[serde(default)]
        entries: bool,
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
        /// Only a hint made before this time. Absent, with `made_ms` absent too: the hint goes
        /// whatever its age.
        #[serde(default)]
        created_before_ms: Option<u64>,
        /// Only the hint made at this time ([`super::HintRemoval::MadeAt`]); absent from
        /// callers of earlier versions, which send `created_before_ms` alone.
        #[serde(default)]
        made_ms: Option<u64>,
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

/// Largest HTTP/2 frame a node or a gateway accepts on the RPC connection: the stream's
/// initial flow-control window, which caps a DATA frame anyway. A shard read of a GET batch
/// (a little over 1 MiB at 4+2) then comes as one DATA frame, which the gateway takes as it
/// is; split in two, as with frames of at most 1 MiB, the body's chunks had to be copied
/// into one buffer (the gateway's `memmove` and its page faults were 5% of a cluster GET's
/// samples; docs/performance.md). A frame is buffered whole before it is handed on, so this
/// also bounds that buffer per connection, before a request's signature is checked.
pub const RPC_MAX_FRAME: u32 = 4 << 20;

/// Largest frame of a shard upload: a block of a shard file, which holds at most one stripe's
/// share (the stripe size is at most 16 MiB) plus its hash.
pub const MAX_FRAME: usize = 64 << 20;

/// The 4-byte header of a shard upload frame of `len` bytes; a frame of length zero is the
/// commit marker.
pub fn frame_header(len: usize) -> [u8; 4] {
    debug_assert!(len <= MAX_FRAME);
    (len as u32).to_be_bytes()
}

/// The commit marker that ends a shard upload.
pub const COMMIT: [u8; 4] = [0; 4];

/// One frame of a shard upload.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// Bytes to append to the shard file.
    Data(bytes::Bytes),
    /// The upload is complete: make the file durable and visible.
    Commit,
}

/// Why a shard upload body is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A frame says it is longer than [`MAX_FRAME`].
    #[error("frame of {0} bytes is too large")]
    TooLarge(usize),
    /// Bytes follow the commit marker.
    #[error("data after commit")]
    AfterCommit,
    /// The body ended before the commit marker.
    #[error("no commit marker")]
    Incomplete,
}

/// Splits a shard upload body into frames as its chunks arrive, whatever their boundaries;
/// holds at most one frame and one chunk in memory.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: bytes::BytesMut,
    committed: bool,
    /// An error was returned: the body is refused whatever follows.
    failed: Option<FrameError>,
}

impl FrameDecoder {
    /// Appends the next chunk of the body.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.committed && !chunk.is_empty() {
            return self.fail(FrameError::AfterCommit);
        }
        self.buf.extend_from_slice(chunk);
        Ok(())
    }

    fn fail<T>(&mut self, e: FrameError) -> Result<T, FrameError> {
        self.failed = Some(e.clone());
        Err(e)
    }

    /// The next complete frame, `None` until more bytes arrive.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let next = self.decode_next();
        if let Err(e) = &next {
            self.failed = Some(e.clone());
        }
        next
    }

    fn decode_next(&mut self) -> Result<Option<Frame>, FrameError> {
        use bytes::Buf;
        if self.committed {
            return if self.buf.is_empty() {
                Ok(None)
            } else {
                Err(FrameError::AfterCommit)
            };
        }
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if len > MAX_FRAME {
            return Err(FrameError::TooLarge(len));
        }
        if len == 0 {
            self.buf.advance(4);
            self.committed = true;
            return if self.buf.is_empty() {
                Ok(Some(Frame::Commit))
            } else {
                Err(FrameError::AfterCommit)
            };
        }
        if self.buf.len() < 4 + len {
            // Room for the whole frame at once, not a doubling per chunk.
            self.buf.reserve(4 + len - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(4);
        Ok(Some(Frame::Data(self.buf.split_to(len).freeze())))
    }

    /// At the end of the body: whether it ended with the commit marker (and nothing was
    /// refused on the way).
    pub fn finish(&self) -> Result<(), FrameError> {
        match &self.failed {
            Some(e) => Err(e.clone()),
            None if self.committed => Ok(()),
            None => Err(FrameError::Incomplete),
        }
    }
}

impl super::HintRemoval {
    /// The `made_ms` and `created_before_ms` of a [`Call::DeleteHint`]. A node of an earlier
    /// version reads only the bound: for [`Self::MadeAt`], the hint as listed and any made
    /// before it on the same clock go there.
    pub fn to_wire(self) -> (Option<u64>, Option<u64>) {
        match self {
            Self::Any => (None, None),
            Self::MadeAt(t) => (Some(t), Some(t.saturating_add(1))),
            Self::MadeBefore(t) => (None, Some(t)),
        }
    }

    /// The removal a [`Call::DeleteHint`] asks for, from a caller of this version or an
    /// earlier one.
    pub fn from_wire(made_ms: Option<u64>, created_before_ms: Option<u64>) -> Self {
        match (made_ms, created_before_ms) {
            (Some(t), _) => Self::MadeAt(t),
            (None, Some(t)) => Self::MadeBefore(t),
            (None, None) => Self::Any,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(frames: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for f in frames {
            out.extend_from_slice(&frame_header(f.len()));
            out.extend_from_slice(f);
        }
        out.extend_from_slice(&COMMIT);
        out
    }

    fn decode(raw: &[u8], chunk: usize) -> Result<Vec<Frame>, FrameError> {
        let mut d = FrameDecoder::default();
        let mut out = Vec::new();
        for c in raw.chunks(chunk.max(1)) {
            d.push(c)?;
            while let Some(f) = d.next_frame()? {
                out.push(f);
            }
        }
        d.finish()?;
        Ok(out)
    }

    #[test]
    fn listings_cross_between_gateways_and_nodes_of_either_version() {
        // A gateway from before `ListEntry` sends no `entries`: it gets whole records.
        let old_call = r#"{"list_keys":{"bucket":"b","prefix":"","after_hex":"","limit":5}}"#;
        let Call::ListKeys { entries, limit, .. } = serde_json::from_str(old_call).unwrap() else {
            panic!("not a listing")
        };
        assert!(!entries);
        assert_eq!(limit, 5);
        // A node from before it answers whole records: they decode as entries.
        let mut rec = crate::drive::record::sample_version("v");
        rec.mod_time_ns = 7;
        rec.size = 9;
        rec.headers = [("content-type".to_string(), "text/plain".to_string())].into();
        rec.checksum = Some(("CRC32".into(), "AAAAAA==".into()));
        let old_answer = serde_json::to_vec(&vec![("k".to_string(), rec)]).unwrap();
        let entries: Vec<(String, crate::drive::ListEntry)> =
            serde_json::from_slice(&old_answer).unwrap();
        assert_eq!(
            entries,
            vec![(
                "k".to_string(),
                crate::drive::ListEntry {
                    version_id: "v".into(),
                    mod_time_ns: 7,
                    size: 9,
                    etag: "e".into(),
                    checksum: Some(("CRC32".into(), "AAAAAA==".into())),
                    delete_marker: false,
                }
            )]
        );
    }

    #[test]
    fn frames_come_out_whatever_the_chunking() {
        let raw = body(&[b"hello", b"", b"world!"]);
        // An empty frame is the commit marker: what follows it is refused.
        assert_eq!(decode(&raw, 3), Err(FrameError::AfterCommit));
        let raw = body(&[b"hello", b"world!"]);
        for chunk in [1, 2, 5, 9, 100] {
            let frames = decode(&raw, chunk).unwrap();
            assert_eq!(
                frames,
                vec![
                    Frame::Data(bytes::Bytes::from_static(b"hello")),
                    Frame::Data(bytes::Bytes::from_static(b"world!")),
                    Frame::Commit
                ]
            );
        }
    }

    #[test]
    fn truncated_oversized_and_trailing_bodies_are_refused() {
        let raw = body(&[b"hello"]);
        assert_eq!(
            decode(&raw[..raw.len() - 1], 4),
            Err(FrameError::Incomplete)
        );
        assert_eq!(decode(&raw[..7], 4), Err(FrameError::Incomplete));
        assert_eq!(decode(&[], 4), Err(FrameError::Incomplete));
        let mut big = frame_header(MAX_FRAME).to_vec();
        big[0] += 1;
        assert!(matches!(decode(&big, 4), Err(FrameError::TooLarge(_))));
        let mut trailing = raw.clone();
        trailing.push(0);
        assert_eq!(decode(&trailing, 1), Err(FrameError::AfterCommit));
        assert_eq!(decode(&trailing, 100), Err(FrameError::AfterCommit));
        // Found by cargo fuzz: a commit marker with bytes behind it in the same chunk was
        // refused, but `finish` then reported the body complete.
        let mut d = FrameDecoder::default();
        d.push(&trailing).unwrap();
        assert!(matches!(d.next_frame(), Ok(Some(Frame::Data(_)))));
        assert_eq!(d.next_frame(), Err(FrameError::AfterCommit));
        assert_eq!(d.finish(), Err(FrameError::AfterCommit));
        assert_eq!(d.next_frame(), Err(FrameError::AfterCommit));
    }
}
