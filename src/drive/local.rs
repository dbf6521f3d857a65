//! `LocalDrive`: a drive folder of this machine. Metadata and inline shards live in one
//! RocksDB (`<drive>/meta`), shard files under `<drive>/shards/<bucket>/<xx>/<uuid>`, and
//! files being written under `<drive>/tmp`. Paths never contain object keys, so no key can
//! reach outside the drive folder.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, IteratorMode, Options, ReadOptions,
    WriteOptions, DB,
};

use super::record::{
    self, BucketRecord, FormatRecord, HealHint, ListEntry, PartRecord, UploadRecord, VersionRecord,
};
use super::{Drive, DriveError, HintRemoval, ShardWriter, Space};
use crate::erasure::frame::Framed;

mod commit;
mod readbuf;

pub use readbuf::release_unused as release_read_buffers;

const CF_BUCKETS: &str = "buckets";
const CF_OBJECTS: &str = "objects";
const CF_UPLOADS: &str = "uploads";
const CF_HEAL: &str = "heal";
/// Every column family of the metadata database.
const COLUMN_FAMILIES: [&str; 4] = [CF_BUCKETS, CF_OBJECTS, CF_UPLOADS, CF_HEAL];
const FORMAT_FILE: &str = "format.json";
/// One block cache per drive, shared by its column families: the 32 MiB that RocksDB's
/// default of one 8 MiB cache per column family would give, in one place that an idle
/// drive can empty.
const BLOCK_CACHE: usize = 32 << 20;
/// Memtable bytes below which an idle drive is not flushed (empty memtables of the four
/// column families hold about 1 MiB), so that a trickle of writes does not become a trickle
/// of tiny table files.
const FLUSH_MIN: u64 = 4 << 20;

/// A drive folder served by this process.
pub struct LocalDrive {
    root: PathBuf,
    /// The metadata database; replaced when the drive folder is replaced under us.
    db: std::sync::RwLock<Option<Arc<DB>>>,
    /// Writes version records, a batch at a time ("keep the newer record" is atomic there).
    committer: commit::Committer,
    /// A call found the metadata database corrupt.
    corrupt: Arc<std::sync::atomic::AtomicBool>,
    /// The database's block cache.
    cache: Cache,
    /// The heal column family may hold hints: cleared just before a listing from the start
    /// finds none, set after every hint written and whenever the database is (re)opened. The
    /// repair worker lists hints every second; this spares an idle drive that blocking call.
    hints_maybe: std::sync::atomic::AtomicBool,
    /// Held while a hint is stored, and while one is checked and removed.
    hint_lock: Arc<std::sync::Mutex<()>>,
    /// Held while a bucket record is compared with the stored one and written.
    bucket_lock: Arc<std::sync::Mutex<()>>,
    /// The database's last sequence number at the last idle check, and whether the drive
    /// was flushed since.
    idle: std::sync::Mutex<(u64, bool)>,
}

impl LocalDrive {
    /// Opens (creating if needed) the drive folder at `root`, and clears its temporary files.
    pub fn open(root: &Path) -> Result<Self, DriveError> {
        let cache = Cache::new_lru_cache(BLOCK_CACHE).map_err(db_err)?;
        let db = match Self::open_db(root, &cache) {
            Err(DriveError::Db(e)) if is_corruption(&e) => {
                tracing::error!(drive = %root.display(), error = %e, "metadata database is corrupt");
                Self::set_aside(root, &cache)?
            }
            other => other?,
        };
        Ok(Self {
            root: root.to_path_buf(),
            db: std::sync::RwLock::new(Some(Arc::new(db))),
            committer: commit::Committer::start(root)?,
            corrupt: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            cache,
            hints_maybe: std::sync::atomic::AtomicBool::new(true),
            hint_lock: Arc::default(),
            bucket_lock: Arc::default(),
            idle: std::sync::Mutex::new((0, false)),
        })
    }

    /// When nothing was written to the metadata database since the last call, and it was not
    /// done since: flushes its memtables to disk (when they hold more than [`FLUSH_MIN`]) and
    /// empties its block cache; returns whether it did. Called every few seconds by the drive
    /// watch, this gives an idle process its memtable and cache memory back (up to 64 MiB per
    /// column family, and [`BLOCK_CACHE`]) and leaves less of the write-ahead log to replay
    /// after a crash. Reads do not count as activity here: a server that only reads loses its
    /// cached blocks once after its last write, and reads them back from the page cache.
    pub fn release_if_idle(&self) -> Result<bool, DriveError> {
        let Ok(db) = self.current_db() else {
            return Ok(false);
        };
        let seq = db.latest_sequence_number();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let (last, done) = *idle;
        if seq != last {
            *idle = (seq, false);
            return Ok(false);
        }
        if done {
            return Ok(false);
        }
        let mut cfs = Vec::new();
        let mut mem = 0;
        for name in COLUMN_FAMILIES {
            let h = cf(&db, name)?;
            mem += db
                .property_int_value_cf(h, "rocksdb.cur-size-all-mem-tables")
                .map_err(db_err)?
                .unwrap_or(0);
            cfs.push(h);
        }
        if mem > FLUSH_MIN {
            for h in cfs {
                db.flush_cf(h).map_err(db_err)?;
            }
        }
        let mut cache = self.cache.clone();
        cache.set_capacity(0);
        cache.set_capacity(BLOCK_CACHE);
        // A flush writes nothing to the log: the sequence number stays.
        *idle = (db.latest_sequence_number(), true);
        Ok(true)
    }

    /// Whether the drive folder has no format record (a read error is not "missing").
    pub fn format_missing(&self) -> bool {
        matches!(
            std::fs::metadata(self.root.join(FORMAT_FILE)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound
        )
    }

    /// Moves a corrupt metadata database aside (`meta.corrupt-<time>`, kept for forensics),
    /// opens a blank one, and leaves a "drive" heal hint in it: repair then rewrites every
    /// record of the drive from its set. Shard files stay; repair verifies them.
    fn set_aside(root: &Path, cache: &Cache) -> Result<DB, DriveError> {
        let aside = root.join(format!("meta.corrupt-{}", record::now_ms()));
        std::fs::rename(root.join("meta"), &aside)?;
        let db = Self::open_db(root, cache)?;
        let hint = HealHint::drive(&format!("corrupt-{}", record::now_ms()));
        db.put_cf_opt(
            cf(&db, CF_HEAL)?,
            hint_key(&hint.id()),
            record::encode(&hint)?,
            &sync_opts(),
        )
        .map_err(db_err)?;
        tracing::warn!(drive = %root.display(), aside = %aside.display(), "set the corrupt metadata database aside; repair rebuilds the drive's records");
        Ok(db)
    }

    /// Sets aside the metadata database if a call found it corrupt (see [`Self::set_aside`]);
    /// returns whether it did.
    pub fn set_aside_if_corrupt(&self) -> Result<bool, DriveError> {
        if !self.corrupt.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(false);
        }
        let mut db = self.db.write().unwrap_or_else(|e| e.into_inner());
        db.take();
        self.install(&mut db, Self::set_aside(&self.root, &self.cache)?);
        self.corrupt
            .store(false, std::sync::atomic::Ordering::Relaxed);
        Ok(true)
    }

    /// Whether the drive folder was removed or emptied under the running process (its
    /// database is gone): then the database is opened afresh on the new, empty folder and
    /// `true` returned. The drive is blank after that, and repair rebuilds it.
    pub fn reopen_if_replaced(&self) -> Result<bool, DriveError> {
        if self.root.join("meta").join("CURRENT").exists() {
            return Ok(false);
        }
        // RocksDB allows one open database per path in a process: the old one must close
        // (calls in flight hold it a moment longer; then the next try succeeds).
        let mut db = self.db.write().unwrap_or_else(|e| e.into_inner());
        if db.take().is_some() {
            tracing::warn!(drive = %self.root.display(), "drive folder was removed or replaced: reopening it");
        }
        self.install(&mut db, Self::open_db(&self.root, &self.cache)?);
        tracing::warn!(drive = %self.root.display(), "reopened the replaced drive folder blank");
        Ok(true)
    }

    /// Serves `new` from now on: a newly opened database may hold heal hints.
    fn install(&self, slot: &mut Option<Arc<DB>>, new: DB) {
        *slot = Some(Arc::new(new));
        self.hints_maybe
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn open_db(root: &Path, cache: &Cache) -> Result<DB, DriveError> {
        std::fs::create_dir_all(root.join("tmp"))?;
        std::fs::create_dir_all(root.join("shards"))?;
        for entry in std::fs::read_dir(root.join("tmp"))? {
            let _ = std::fs::remove_file(entry?.path());
        }
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_max_background_jobs(2);
        opts.set_keep_log_file_num(4);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(cache);
        let cfs = COLUMN_FAMILIES.into_iter().map(|n| {
            let mut o = Options::default();
            o.set_block_based_table_factory(&table);
            ColumnFamilyDescriptor::new(n, o)
        });
        DB::open_cf_descriptors(&opts, root.join("meta"), cfs)
            .map_err(|e| DriveError::Db(e.to_string()))
    }

    fn shard_path(&self, bucket: &str, data_dir: &str) -> PathBuf {
        let fan = data_dir.get(..2).unwrap_or("00");
        self.root
            .join("shards")
            .join(bucket)
            .join(fan)
            .join(data_dir)
    }

    /// Up to `limit` keys of `bucket` under `prefix`, strictly after `after`, each with its
    /// versions decoded as `T` and gathered by `first` (the key's first version) and `more`
    /// (each further one).
    async fn scan_keys<T, A>(
        &self,
        bucket: &str,
        prefix: &str,
        after: &[u8],
        limit: usize,
        first: fn(T) -> A,
        more: fn(&mut A, T),
    ) -> Result<Vec<(String, A)>, DriveError>
    where
        T: serde::de::DeserializeOwned + 'static,
        A: Send + 'static,
    {
        let mut base = bucket.as_bytes().to_vec();
        base.push(0);
        let mut prefix_full = base.clone();
        prefix_full.extend_from_slice(prefix.as_bytes());
        let mut start = prefix_full.clone();
        let mut after_full = base.clone();
        after_full.extend_from_slice(after);
        if !after.is_empty() && after_full >= start {
            // The first key strictly after `after`: `after \0` would be that key's own
            // records, so skip them by seeking to `after \1`.
            start = after_full;
            start.push(1);
        }
        self.blocking(move |db| {
            // The raw iterator lends each key and value in place; the plain one copies both
            // into fresh boxes, which was a tenth of a listing's CPU.
            let mut iter = db.raw_iterator_cf(cf(db, CF_OBJECTS)?);
            iter.seek(&start);
            let mut out: Vec<(String, A)> = Vec::new();
            while let (Some(k), Some(v)) = (iter.key(), iter.value()) {
                if !k.starts_with(&prefix_full) {
                    break;
                }
                let rest = &k[base.len()..];
                if let Some(nul) = rest.iter().position(|&b| b == 0) {
                    let key = &rest[..nul];
                    match out.last_mut() {
                        Some((last, versions)) if last.as_bytes() == key => {
                            more(versions, record::decode(v)?);
                        }
                        _ => {
                            if out.len() >= limit {
                                break;
                            }
                            let key = String::from_utf8_lossy(key).into_owned();
                            out.push((key, first(record::decode(v)?)));
                        }
                    }
                }
                iter.next();
            }
            iter.status().map_err(db_err)?;
            Ok(out)
        })
        .await
    }

    /// One record of column family `cf_name`, decoded.
    async fn get_record<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        cf_name: &'static str,
        key: Vec<u8>,
    ) -> Result<Option<T>, DriveError> {
        self.read(move |db, ro| {
            match db.get_cf_opt(cf(db, cf_name)?, &key, &ro).map_err(db_err)? {
                Some(raw) => record::decode(&raw).map(Some),
                None => Ok(None),
            }
        })
        .await
    }

    /// Every record of column family `cf_name` whose key starts with `prefix`, decoded, in
    /// key order.
    async fn scan_prefix<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        cf_name: &'static str,
        prefix: Vec<u8>,
    ) -> Result<Vec<T>, DriveError> {
        self.read(move |db, ro| {
            let mut out = Vec::new();
            let iter = db.iterator_cf_opt(
                cf(db, cf_name)?,
                ro,
                IteratorMode::From(&prefix, rocksdb::Direction::Forward),
            );
            for item in iter {
                let (k, v) = item.map_err(db_err)?;
                if !k.starts_with(&prefix) {
                    break;
                }
                out.push(record::decode(&v)?);
            }
            Ok(out)
        })
        .await
    }

    /// The metadata database now being served.
    fn current_db(&self) -> Result<Arc<DB>, DriveError> {
        self.db
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| DriveError::Offline("drive folder being reopened".into()))
    }

    /// Runs the metadata read `f` on the calling thread when memory holds everything it
    /// needs (memtables and block cache: with the `BlockCache` read tier RocksDB fails with
    /// "Incomplete" rather than touch the disk), else again on the blocking pool. A busy
    /// drive answers most point reads from memory, in microseconds: handing each one to a
    /// pool thread cost more CPU in thread wake-ups than the read (a 4 KiB PUT reads 12
    /// records; see docs/performance.md). Any error from memory is retried on the pool,
    /// which reports it.
    async fn read<T, F>(&self, f: F) -> Result<T, DriveError>
    where
        T: Send + 'static,
        F: Fn(&DB, ReadOptions) -> Result<T, DriveError> + Send + 'static,
    {
        let db = self.current_db()?;
        let mut memory = ReadOptions::default();
        memory.set_read_tier(memory_tier());
        if let Ok(found) = f(&db, memory) {
            return Ok(found);
        }
        self.blocking(move |db| f(db, ReadOptions::default())).await
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, DriveError>
    where
        T: Send + 'static,
        F: FnOnce(&DB) -> Result<T, DriveError> + Send + 'static,
    {
        let db = self.current_db()?;
        let r = tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| DriveError::Db(format!("task: {e}")))?;
        self.note_corruption(&r);
        r
    }

    /// Marks the database for setting aside when `r` says it is corrupt.
    fn note_corruption<T>(&self, r: &Result<T, DriveError>) {
        if let Err(DriveError::Db(e)) = r {
            if is_corruption(e) {
                tracing::error!(drive = %self.root.display(), error = %e, "metadata database is corrupt");
                self.corrupt
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

/// RocksDB's `BlockCache` read tier (memtables and block cache only). The rocksdb crate at
/// 0.20, the newest that builds against Debian's librocksdb 7.8, does not export the
/// `ReadTier` type that `ReadOptions::set_read_tier` takes; its `serde1` feature derives
/// `Deserialize` for it, so the value is read from its name, with the type inferred.
fn memory_tier<T: serde::de::DeserializeOwned>() -> T {
    serde_json::from_str("\"BlockCache\"").expect("ReadTier has a BlockCache variant")
}

/// The free space a drive of `total` bytes keeps for its metadata database: no new shard
/// file starts below it. A 64th of the drive, within 1 MiB..1 GiB.
fn space_reserve(total: u64) -> u64 {
    (total / 64).clamp(1 << 20, 1 << 30)
}

/// RocksDB reports damaged files as `Corruption: ...`.
fn is_corruption(e: &str) -> bool {
    e.contains("Corruption")
}

fn db_err(e: rocksdb::Error) -> DriveError {
    DriveError::Db(e.to_string())
}

fn cf<'a>(db: &'a DB, name: &str) -> Result<&'a rocksdb::ColumnFamily, DriveError> {
    db.cf_handle(name)
        .ok_or_else(|| DriveError::Db(format!("missing column family {name}")))
}

fn sync_opts() -> WriteOptions {
    let mut w = WriteOptions::default();
    w.set_sync(true);
    w
}

/// `bucket \0 key \0 version`: keys sort in byte order within a bucket.
fn object_key(bucket: &str, key: &str, version: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(bucket.len() + key.len() + version.len() + 2);
    k.extend_from_slice(bucket.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k.push(0);
    k.extend_from_slice(version.as_bytes());
    k
}

/// `U bucket \0 key \0 upload`: upload records sort by key, then upload id.
fn upload_key(bucket: &str, key: &str, upload_id: &str) -> Vec<u8> {
    let mut k = vec![b'U'];
    k.extend_from_slice(&object_key(bucket, key, upload_id));
    k
}

/// `P bucket \0 key \0 upload \0`: the prefix of an upload's part records.
fn parts_prefix(bucket: &str, key: &str, upload_id: &str) -> Vec<u8> {
    let mut k = vec![b'P'];
    k.extend_from_slice(&object_key(bucket, key, upload_id));
    k.push(0);
    k
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Writes `data` to `path` crash-safely: temporary file, fsync, rename, directory fsync.
fn write_atomic(tmp: &Path, path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::File::create(tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(tmp, path)?;
    if let Some(dir) = path.parent() {
        fsync_dir(dir)?;
    }
    Ok(())
}

/// Bytes of a shard file written before the kernel is asked to start writing them back (when
/// the file system takes no direct I/O).
const WRITEBACK_EVERY: u64 = 4 << 20;

/// Blocks a shard writer gathers before they go to the disk with direct I/O, in writes of at
/// most this size from one reused buffer.
const DIRECT_RUN: usize = 1 << 20;

/// A shard file whose blocks total no more (a shard of an object up to 1 MiB at 4+2) is
/// written once, at commit, through the page cache, so that a read that follows finds it
/// there. Larger ones go with direct I/O (all but a last piece smaller than `DIRECT_ALIGN`):
/// measured, a 4 MiB object's shards written through the page cache at commit made 4 MiB PUT
/// c4 slower than before direct I/O, and with it faster (docs/performance.md).
const CACHED_MAX: usize = 256 << 10;

/// Alignment of direct I/O: memory address, file offset and length.
const DIRECT_ALIGN: usize = 4096;

struct LocalShardWriter {
    /// Shared with the blocking thread that writes a run; `None` while it has it.
    out: Option<ShardOut>,
    /// The run being written on a blocking thread, which gives `out` back. A run is written
    /// behind: the next run (or the commit) waits for it, while the PUT goes on encoding the
    /// stripes that fill the next one. Each direct write waits for the disk, and waiting for
    /// it in line held a 64 MiB PUT at c1 half the time (docs/performance.md).
    writing: Option<tokio::task::JoinHandle<std::io::Result<ShardOut>>>,
    /// Frames not yet handed to the file, and the bytes of their blocks.
    held: Vec<Framed>,
    held_blocks: usize,
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

/// A shard file being written and what writing it needs.
struct ShardOut {
    file: std::fs::File,
    /// The same file opened for direct I/O at the first run; `None` before, or where the
    /// file system refused it (then runs go through the page cache).
    direct: Option<std::fs::File>,
    direct_refused: bool,
    /// Where a direct write is assembled: `aligned[at..at + DIRECT_RUN]`, where `at` puts
    /// its start on a `DIRECT_ALIGN` boundary. Taken from `readbuf`'s pool at the first run
    /// and reused; it goes back when the file is done. A fresh one per shard file was zeroed
    /// and faulted in: most of the `memset` (3%) and page faults (5%) in a server's samples
    /// under multipart PUTs (docs/performance.md).
    aligned: Option<readbuf::ReadBuf>,
    /// Bytes after the last aligned run, written before the held frames.
    tail: Vec<u8>,
    /// Bytes in the file.
    written: u64,
    /// Bytes whose writeback has been started (page-cache runs only).
    flushing: u64,
}

/// Starts the writeback of `len` bytes at `offset` without waiting for it, so that the
/// `fsync` at commit finds most of a large file already on its way to the disk instead of
/// starting all of it then. On Linux `posix_fadvise(DONTNEED)` starts writeback of the dirty
/// pages of the range (and drops the pages of it already written, which a shard file being
/// written does not need). Only a hint: durability still comes from that `fsync`.
fn start_writeback(file: &std::fs::File, offset: u64, len: u64) {
    advise(file, offset, len, rustix::fs::Advice::DontNeed);
}

/// Asks the kernel to start reading `len` bytes at `offset` into the page cache without
/// waiting for them. A GET reads a shard file in batches, each through a new file handle
/// with the kernel's own read-ahead turned off (see `read_shard`); this hint after each batch
/// lets the disk read the next ones while this one is verified and sent, and costs no memory
/// of the process. Only a hint; past the end of the file it does nothing.
fn read_ahead(file: &std::fs::File, offset: u64, len: u64) {
    advise(file, offset, len, rustix::fs::Advice::WillNeed);
}

/// `posix_fadvise` for `len` bytes at `offset` (to the end of the file when `len` is 0). A
/// hint only: a file system that does not take it is no error.
fn advise(file: &std::fs::File, offset: u64, len: u64, advice: rustix::fs::Advice) {
    let _ = rustix::fs::fadvise(file, offset, std::num::NonZeroU64::new(len), advice);
}

impl ShardOut {
    /// Writes the tail and `frames`. Unless `cached`, the whole multiple of `DIRECT_ALIGN`
    /// among them goes with direct I/O; the rest stays as the new tail, unless this is the
    /// `last` run. What is left of the last run, a `cached` one, and any run the file system
    /// takes no direct I/O for go through the page cache. Direct I/O spares the copy into the
    /// page cache and its writeback, which on these machines cost several times the CPU per
    /// byte (docs/performance.md).
    fn write_run(
        &mut self,
        path: &Path,
        frames: &[Framed],
        last: bool,
        cached: bool,
    ) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let tail = std::mem::take(&mut self.tail);
        let mut pieces: Vec<&[u8]> = Vec::with_capacity(1 + 2 * frames.len());
        pieces.push(&tail);
        for f in frames {
            pieces.push(&f.hash);
            pieces.push(&f.block);
        }
        let total: usize = pieces.iter().map(|p| p.len()).sum();
        let mut direct_bytes = if cached {
            0
        } else {
            total / DIRECT_ALIGN * DIRECT_ALIGN
        };
        if direct_bytes > 0 && self.direct.is_none() && !self.direct_refused {
            match open_direct(path, std::fs::OpenOptions::new().write(true)) {
                Ok(f) => self.direct = Some(f),
                Err(e) => {
                    tracing::debug!(path = %path.display(), error = %e, "no direct I/O for this shard file");
                    self.direct_refused = true;
                }
            }
        }
        // Direct writes of at most `DIRECT_RUN`, each gathered from the pieces; `pieces[next]`
        // from byte `skip` on is the first not yet written.
        let (mut next, mut skip) = (0, 0);
        while direct_bytes > 0 {
            let Some(direct) = &self.direct else { break };
            let len = direct_bytes.min(DIRECT_RUN);
            let aligned = self
                .aligned
                .get_or_insert_with(|| readbuf::take(DIRECT_RUN + DIRECT_ALIGN))
                .as_mut();
            let at = aligned.as_ptr().align_offset(DIRECT_ALIGN);
            let buf = &mut aligned[at..at + len];
            let mut filled = 0;
            while filled < len {
                let piece = &pieces[next][skip..];
                let n = piece.len().min(len - filled);
                buf[filled..filled + n].copy_from_slice(&piece[..n]);
                filled += n;
                skip += n;
                if skip == pieces[next].len() {
                    (next, skip) = (next + 1, 0);
                }
            }
            match direct.write_all_at(buf, self.written) {
                Ok(()) => {}
                // A device whose blocks are larger than `DIRECT_ALIGN`: the page cache from now.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    self.direct = None;
                    self.direct_refused = true;
                    self.file.write_all_at(buf, self.written)?;
                }
                Err(e) => return Err(e),
            }
            self.written += len as u64;
            self.flushing = self.written;
            direct_bytes -= len;
        }
        let mut left: Vec<&[u8]> = Vec::with_capacity(pieces.len() - next.min(pieces.len()));
        if next < pieces.len() {
            left.push(&pieces[next][skip..]);
            left.extend_from_slice(&pieces[next + 1..]);
        }
        if self.direct.is_some() && !last {
            // Less than `DIRECT_ALIGN` is left: the next run starts with it.
            self.tail = left.concat();
            return Ok(());
        }
        // Through the page cache, as the pieces are, without gathering them.
        let mut slices: Vec<std::io::IoSlice> =
            left.iter().map(|p| std::io::IoSlice::new(p)).collect();
        let rest: usize = left.iter().map(|p| p.len()).sum();
        write_all_vectored_at(&self.file, &mut slices, self.written)?;
        self.written += rest as u64;
        let pending = self.written - self.flushing;
        if !last && pending >= WRITEBACK_EVERY {
            start_writeback(&self.file, self.flushing, pending);
            self.flushing = self.written;
        }
        Ok(())
    }
}

/// Removes the folder `dir` and all it holds, if it is there.
fn remove_dir_if_any(dir: &Path) -> Result<(), DriveError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Opens `path` as `options` say, with direct I/O (`O_DIRECT`).
fn open_direct(path: &Path, options: &mut std::fs::OpenOptions) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    options.custom_flags(libc::O_DIRECT).open(path)
}

/// Reads of at least this many bytes of a shard file go with direct I/O (see `read_direct`).
const DIRECT_READ_MIN: usize = 512 << 10;

/// Reads `want` bytes at `offset` with direct I/O, into one aligned buffer that the returned
/// bytes are a slice of (from `readbuf`'s pool, so not zeroed or faulted in anew). `None`
/// where the file system refuses direct I/O. No read-ahead hint follows, as the page cache
/// is not used. The page cache costs more CPU per byte than the disk on these machines:
/// `fio` read 2 GiB from a cold cache at 458-812 MiB/s on 75-96% of a core, and with direct
/// I/O at 1,730 MiB/s on 9%.
fn read_direct(path: &Path, offset: u64, want: usize) -> Result<Option<Bytes>, DriveError> {
    let f = match open_direct(path, std::fs::OpenOptions::new().read(true)) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(DriveError::NotFound),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let align = DIRECT_ALIGN as u64;
    let start = offset / align * align;
    let skip = (offset - start) as usize;
    let span = (skip + want).div_ceil(DIRECT_ALIGN) * DIRECT_ALIGN;
    let mut buf = readbuf::take(span + DIRECT_ALIGN);
    let raw = buf.as_mut();
    let at = raw.as_ptr().align_offset(DIRECT_ALIGN);
    let mut got = 0;
    while got < span {
        // Each read stays aligned: a short one can only end at the end of the file.
        match rustix::io::pread(&f, &mut raw[at + got..at + span], start + got as u64) {
            Ok(0) => break,
            Ok(n) if n % DIRECT_ALIGN != 0 => {
                got += n;
                break;
            }
            Ok(n) => got += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::INVAL) if got == 0 => return Ok(None),
            Err(e) => return Err(std::io::Error::from(e).into()),
        }
    }
    if got < skip + want {
        return Err(DriveError::Corrupt(format!(
            "shard file short: wanted {want} bytes at {offset}, got {}",
            got.saturating_sub(skip)
        )));
    }
    Ok(Some(buf.into_bytes(at + skip..at + skip + want)))
}

/// Writes every byte of `slices` at `offset`, in as few system calls as the kernel allows.
fn write_all_vectored_at(
    file: &std::fs::File,
    slices: &mut [std::io::IoSlice],
    mut offset: u64,
) -> std::io::Result<()> {
    let mut slices = &mut slices[..];
    while !slices.is_empty() {
        let n = rustix::io::pwritev(file, slices, offset)?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        offset += n as u64;
        std::io::IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}

impl LocalShardWriter {
    /// A writer of `file`, open at the temporary path `tmp`, to be named `dest` at commit.
    fn new(file: std::fs::File, tmp: PathBuf, dest: PathBuf) -> Self {
        LocalShardWriter {
            out: Some(ShardOut {
                file,
                direct: None,
                direct_refused: false,
                aligned: None,
                tail: Vec::new(),
                written: 0,
                flushing: 0,
            }),
            writing: None,
            held: Vec::new(),
            held_blocks: 0,
            tmp,
            dest,
            committed: false,
        }
    }

    /// Waits for the run being written, if any: its error is this call's.
    async fn settle(&mut self) -> Result<(), DriveError> {
        if let Some(run) = self.writing.take() {
            let out = run
                .await
                .map_err(|e| DriveError::Io(std::io::Error::other(e)))??;
            self.out = Some(out);
        }
        Ok(())
    }

    /// Hands the held frames to the file on a blocking thread (see [`ShardOut::write_run`]),
    /// after the run before them is done. The `last` run is waited for; any other is left
    /// running (see `writing`).
    async fn write_held(&mut self, last: bool) -> Result<(), DriveError> {
        self.settle().await?;
        let mut out = self
            .out
            .take()
            .ok_or_else(|| DriveError::Corrupt("shard writer already failed".into()))?;
        let frames = std::mem::take(&mut self.held);
        let cached = last && out.written == 0 && self.held_blocks <= CACHED_MAX;
        self.held_blocks = 0;
        let path = self.tmp.clone();
        self.writing = Some(tokio::task::spawn_blocking(move || {
            out.write_run(&path, &frames, last, cached).map(|()| out)
        }));
        if last {
            self.settle().await?;
        }
        Ok(())
    }
}

impl Drop for LocalShardWriter {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[async_trait]
impl ShardWriter for LocalShardWriter {
    async fn write(&mut self, frame: Framed) -> Result<(), DriveError> {
        if self.out.is_none() && self.writing.is_none() {
            return Err(DriveError::Corrupt("shard writer already failed".into()));
        }
        self.held_blocks += frame.block.len();
        self.held.push(frame);
        if self.held_blocks > DIRECT_RUN {
            self.write_held(false).await?;
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>) -> Result<(), DriveError> {
        self.write_held(true).await?;
        let out = self
            .out
            .take()
            .ok_or_else(|| DriveError::Corrupt("shard writer already failed".into()))?;
        let tmp = self.tmp.clone();
        let dest = self.dest.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            out.file.sync_all()?;
            drop(out);
            let dir = dest
                .parent()
                .ok_or_else(|| std::io::Error::other("no parent"))?;
            let fresh = !dir.exists();
            std::fs::create_dir_all(dir)?;
            std::fs::rename(&tmp, &dest)?;
            fsync_dir(dir)?;
            if fresh {
                if let Some(parent) = dir.parent() {
                    fsync_dir(parent)?;
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| DriveError::Io(std::io::Error::other(e)))??;
        self.committed = true;
        Ok(())
    }
}

#[async_trait]
impl Drive for LocalDrive {
    fn endpoint(&self) -> String {
        self.root.display().to_string()
    }

    async fn read_format(&self) -> Result<Option<FormatRecord>, DriveError> {
        match tokio::fs::read(self.root.join(FORMAT_FILE)).await {
            Ok(raw) => serde_json::from_slice(&raw)
                .map(Some)
                .map_err(|e| DriveError::Corrupt(format!("format record: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn write_format(&self, format: &FormatRecord) -> Result<(), DriveError> {
        let raw =
            serde_json::to_vec_pretty(format).map_err(|e| DriveError::Corrupt(e.to_string()))?;
        // A name of its own: two gateways of a new cluster may format the drive at once.
        let tmp = self
            .root
            .join("tmp")
            .join(format!("{FORMAT_FILE}.{}.tmp", uuid::Uuid::new_v4()));
        let dest = self.root.join(FORMAT_FILE);
        tokio::task::spawn_blocking(move || write_atomic(&tmp, &dest, &raw))
            .await
            .map_err(|e| DriveError::Io(std::io::Error::other(e)))??;
        Ok(())
    }

    async fn create_shard(
        &self,
        bucket: &str,
        data_dir: &str,
    ) -> Result<Box<dyn ShardWriter>, DriveError> {
        let tmp = self.root.join("tmp").join(uuid::Uuid::new_v4().to_string());
        let dest = self.shard_path(bucket, data_dir);
        let file = {
            let tmp = tmp.clone();
            let root = self.root.clone();
            tokio::task::spawn_blocking(move || {
                // Shard files stop short of filling the drive, so that its metadata database
                // always has room: RocksDB (Debian's 7.8 build, with its assertions on) aborts
                // the whole process when its log cannot be written and is then used again.
                let (free, total) = (fs2::available_space(&root)?, fs2::total_space(&root)?);
                if free < space_reserve(total) {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::StorageFull,
                        format!(
                            "the drive's free space ({free} bytes) is below the {} kept for its metadata",
                            space_reserve(total)
                        ),
                    ));
                }
                std::fs::File::create(tmp)
            })
            .await
            .map_err(|e| DriveError::Io(std::io::Error::other(e)))??
        };
        Ok(Box::new(LocalShardWriter::new(file, tmp, dest)))
    }

    async fn read_shard(
        &self,
        bucket: &str,
        data_dir: &str,
        offset: u64,
        len: u64,
    ) -> Result<Bytes, DriveError> {
        let path = self.shard_path(bucket, data_dir);
        tokio::task::spawn_blocking(move || -> Result<Bytes, DriveError> {
            let want = usize::try_from(len).map_err(|_| DriveError::Corrupt("len".into()))?;
            if want >= DIRECT_READ_MIN {
                if let Some(b) = read_direct(&path, offset, want)? {
                    return Ok(b);
                }
            }
            let f = match std::fs::File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(DriveError::NotFound)
                }
                Err(e) => return Err(e.into()),
            };
            // The kernel's read-ahead is off for this handle: on a new handle per batch it
            // started small and grew into multi-MiB reads that the next batch then waited on
            // whole (a 12-20 ms stall midway through every 64 MiB GET). The read below and
            // the hint after it keep the disk busy with the ranges a GET reads next instead.
            advise(&f, 0, 0, rustix::fs::Advice::Random);
            // Read into spare capacity (the buffer is not zeroed first), all that is left in
            // one call: the kernel then reads the whole range from the disk at once, where
            // `read_to_end`'s growing reads (8 KiB, 16 KiB, ...) had it start small each time.
            let mut buf = Vec::with_capacity(want);
            let mut at = offset;
            while buf.len() < want {
                match rustix::io::pread(&f, rustix::buffer::spare_capacity(&mut buf), at) {
                    Ok(0) => break,
                    Ok(n) => at += n as u64,
                    Err(rustix::io::Errno::INTR) => {}
                    Err(e) => return Err(std::io::Error::from(e).into()),
                }
            }
            buf.truncate(want);
            if buf.len() < want {
                return Err(DriveError::Corrupt(format!(
                    "shard file short: wanted {want} bytes at {offset}, got {}",
                    buf.len()
                )));
            }
            // Two batches ahead: the next batch is then already on its way when this one
            // is returned (four batches ahead was slower here).
            read_ahead(&f, offset + len, 2 * len);
            Ok(Bytes::from(buf))
        })
        .await
        .map_err(|e| DriveError::Io(std::io::Error::other(e)))?
    }

    async fn delete_shard(&self, bucket: &str, data_dir: &str) -> Result<(), DriveError> {
        let path = self.shard_path(bucket, data_dir);
        match tokio::fs::remove_file(path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn put_version(
        &self,
        bucket: &str,
        key: &str,
        rec: &VersionRecord,
    ) -> Result<Option<VersionRecord>, DriveError> {
        let k = object_key(bucket, key, &rec.version_id);
        let v = record::encode(rec)?;
        // Last writer wins: a record never replaces a newer one of the same version id
        // (two writers racing on the `null` version converge on every drive), nor a copy of
        // its own version with later tags.
        let order = (
            rec.mod_time_ns,
            rec.data_dir.clone(),
            rec.meta_ns,
            rec.tags.clone(),
        );
        let r = self.committer.put(self.current_db()?, k, v, order).await;
        self.note_corruption(&r);
        r
    }

    async fn get_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<Option<VersionRecord>, DriveError> {
        self.get_record(CF_OBJECTS, object_key(bucket, key, version_id))
            .await
    }

    async fn delete_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<Option<VersionRecord>, DriveError> {
        let k = object_key(bucket, key, version_id);
        self.blocking(move |db| {
            let cf = cf(db, CF_OBJECTS)?;
            let old = match db.get_cf(cf, &k).map_err(db_err)? {
                Some(raw) => Some(record::decode(&raw)?),
                None => None,
            };
            if old.is_some() {
                db.delete_cf_opt(cf, &k, &sync_opts()).map_err(db_err)?;
            }
            Ok(old)
        })
        .await
    }

    async fn list_keys(
        &self,
        bucket: &str,
        prefix: &str,
        after: &[u8],
        limit: usize,
    ) -> Result<Vec<(String, ListEntry)>, DriveError> {
        fn keep_newest(best: &mut ListEntry, e: ListEntry) {
            if e.newer_than(best) {
                *best = e;
            }
        }
        self.scan_keys(bucket, prefix, after, limit, |e| e, keep_newest)
            .await
    }

    async fn list_versions(
        &self,
        bucket: &str,
        prefix: &str,
        after: &[u8],
        limit: usize,
    ) -> Result<Vec<(String, Vec<VersionRecord>)>, DriveError> {
        self.scan_keys(bucket, prefix, after, limit, |r| vec![r], Vec::push)
            .await
    }

    async fn key_versions(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Vec<VersionRecord>, DriveError> {
        self.scan_prefix(CF_OBJECTS, object_key(bucket, key, ""))
            .await
    }

    /// Stores the record unless the drive holds a newer copy
    /// ([`BucketRecord::precedence_cmp`]): a heal or a delete that read the copies before a
    /// change, and lands after it, must not turn it back.
    async fn put_bucket(&self, rec: &BucketRecord) -> Result<(), DriveError> {
        let v = record::encode(rec)?;
        let rec = rec.clone();
        // A tombstone: the bucket's shard folder goes too, as on `delete_bucket`; never that
        // of a bucket made again since.
        let dir = self.root.join("shards").join(&rec.name);
        let lock = self.bucket_lock.clone();
        self.blocking(move |db| {
            let _held = lock.lock().unwrap_or_else(|e| e.into_inner());
            let h = cf(db, CF_BUCKETS)?;
            let k = rec.name.as_bytes();
            // A stored copy that does not decode is replaced, as before this check.
            let stored = db.get_cf(h, k).map_err(db_err)?;
            let stored = stored.and_then(|raw| record::decode::<BucketRecord>(&raw).ok());
            if stored.is_some_and(|s| s.precedence_cmp(&rec).is_gt()) {
                return Ok(());
            }
            db.put_cf_opt(h, k, v, &sync_opts()).map_err(db_err)?;
            if rec.is_deleted() {
                remove_dir_if_any(&dir)?;
            }
            Ok(())
        })
        .await
    }

    async fn get_bucket(&self, name: &str) -> Result<Option<BucketRecord>, DriveError> {
        self.get_record(CF_BUCKETS, name.as_bytes().to_vec()).await
    }

    async fn delete_bucket(&self, name: &str) -> Result<(), DriveError> {
        let k = name.as_bytes().to_vec();
        let dir = self.root.join("shards").join(name);
        let lock = self.bucket_lock.clone();
        self.blocking(move |db| {
            let _held = lock.lock().unwrap_or_else(|e| e.into_inner());
            db.delete_cf_opt(cf(db, CF_BUCKETS)?, k, &sync_opts())
                .map_err(db_err)?;
            remove_dir_if_any(&dir)
        })
        .await
    }

    async fn list_buckets(&self) -> Result<Vec<BucketRecord>, DriveError> {
        self.blocking(|db| {
            db.iterator_cf(cf(db, CF_BUCKETS)?, IteratorMode::Start)
                .map(|item| {
                    let (_, v) = item.map_err(db_err)?;
                    record::decode(&v)
                })
                .collect()
        })
        .await
    }

    async fn put_upload(&self, bucket: &str, rec: &UploadRecord) -> Result<(), DriveError> {
        let k = upload_key(bucket, &rec.key, &rec.upload_id);
        let v = record::encode(rec)?;
        self.blocking(move |db| {
            db.put_cf_opt(cf(db, CF_UPLOADS)?, k, v, &sync_opts())
                .map_err(db_err)
        })
        .await
    }

    async fn get_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Option<UploadRecord>, DriveError> {
        self.get_record(CF_UPLOADS, upload_key(bucket, key, upload_id))
            .await
    }

    async fn delete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), DriveError> {
        let uk = upload_key(bucket, key, upload_id);
        let pp = parts_prefix(bucket, key, upload_id);
        self.blocking(move |db| {
            let cf = cf(db, CF_UPLOADS)?;
            let mut batch = rocksdb::WriteBatch::default();
            batch.delete_cf(cf, &uk);
            for item in db.iterator_cf(cf, IteratorMode::From(&pp, rocksdb::Direction::Forward)) {
                let (k, _) = item.map_err(db_err)?;
                if !k.starts_with(&pp) {
                    break;
                }
                batch.delete_cf(cf, &k);
            }
            db.write_opt(batch, &sync_opts()).map_err(db_err)
        })
        .await
    }

    async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        after: (&str, &str),
        limit: usize,
    ) -> Result<Vec<UploadRecord>, DriveError> {
        let mut base = vec![b'U'];
        base.extend_from_slice(bucket.as_bytes());
        base.push(0);
        let mut start = base.clone();
        start.extend_from_slice(prefix.as_bytes());
        let full_prefix = start.clone();
        // Records sort as (key, upload id): start at the cursor rather than read up to it.
        let cursor = upload_key(bucket, after.0, after.1);
        if cursor > start {
            start = cursor;
        }
        let (after_key, after_upload) = (after.0.to_string(), after.1.to_string());
        self.blocking(move |db| {
            let iter = db.iterator_cf(
                cf(db, CF_UPLOADS)?,
                IteratorMode::From(&start, rocksdb::Direction::Forward),
            );
            let mut out = Vec::new();
            for item in iter {
                let (k, v) = item.map_err(db_err)?;
                if !k.starts_with(&full_prefix) || out.len() >= limit {
                    break;
                }
                let rec: UploadRecord = record::decode(&v)?;
                if (rec.key.as_str(), rec.upload_id.as_str())
                    <= (after_key.as_str(), after_upload.as_str())
                {
                    continue;
                }
                out.push(rec);
            }
            Ok(out)
        })
        .await
    }

    async fn put_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        rec: &PartRecord,
    ) -> Result<Option<PartRecord>, DriveError> {
        let mut k = parts_prefix(bucket, key, upload_id);
        k.extend_from_slice(format!("{:05}", rec.number).as_bytes());
        let v = record::encode(rec)?;
        self.blocking(move |db| {
            let cf = cf(db, CF_UPLOADS)?;
            let old = match db.get_cf(cf, &k).map_err(db_err)? {
                Some(raw) => Some(record::decode(&raw)?),
                None => None,
            };
            db.put_cf_opt(cf, k, v, &sync_opts()).map_err(db_err)?;
            Ok(old)
        })
        .await
    }

    async fn list_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<PartRecord>, DriveError> {
        self.scan_prefix(CF_UPLOADS, parts_prefix(bucket, key, upload_id))
            .await
    }

    async fn space(&self) -> Result<Space, DriveError> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || -> Result<Space, DriveError> {
            Ok(Space {
                free: fs2::available_space(&root)?,
                total: fs2::total_space(&root)?,
            })
        })
        .await
        .map_err(|e| DriveError::Io(std::io::Error::other(e)))?
    }

    async fn put_hint(&self, hint: &HealHint) -> Result<(), DriveError> {
        let k = hint_key(&hint.id());
        let v = record::encode(hint)?;
        let lock = self.hint_lock.clone();
        let r = self
            .blocking(move |db| {
                let _held = lock.lock().unwrap_or_else(|e| e.into_inner());
                db.put_cf_opt(cf(db, CF_HEAL)?, k, v, &sync_opts())
                    .map_err(db_err)
            })
            .await;
        // After the write, so that a listing racing it cannot clear the flag over it.
        self.hints_maybe
            .store(true, std::sync::atomic::Ordering::SeqCst);
        r
    }

    async fn list_hints(&self, after: &[u8], limit: usize) -> Result<Vec<HealHint>, DriveError> {
        use std::sync::atomic::Ordering::SeqCst;
        let mut start = hint_key(after);
        if !after.is_empty() {
            start.push(0);
        } else if !self.hints_maybe.swap(false, SeqCst) {
            return Ok(Vec::new());
        }
        let listed = self
            .blocking(move |db| {
                let mut out = Vec::new();
                let iter = db.iterator_cf(
                    cf(db, CF_HEAL)?,
                    IteratorMode::From(&start, rocksdb::Direction::Forward),
                );
                for item in iter {
                    let (k, v) = item.map_err(db_err)?;
                    if !k.starts_with(b"h") || out.len() >= limit {
                        break;
                    }
                    out.push(record::decode(&v)?);
                }
                Ok(out)
            })
            .await;
        if !matches!(&listed, Ok(l) if l.is_empty()) {
            self.hints_maybe.store(true, SeqCst);
        }
        listed
    }

    async fn delete_hint(&self, id: &[u8], which: HintRemoval) -> Result<(), DriveError> {
        let k = hint_key(id);
        let lock = self.hint_lock.clone();
        // Not synced: a removal lost in a crash brings the hint back, and its version,
        // found whole, only costs a check. Synced, it was an fsync on every drive of the set
        // per heal from a hint.
        self.blocking(move |db| {
            let cf = cf(db, CF_HEAL)?;
            // The check and the removal under the lock that `put_hint` takes: a hint stored
            // between them would otherwise be removed unseen.
            let _held = lock.lock().unwrap_or_else(|e| e.into_inner());
            if which != HintRemoval::Any {
                let Some(raw) = db.get_cf(cf, &k).map_err(db_err)? else {
                    return Ok(());
                };
                let made = record::decode::<HealHint>(&raw)?.created_ms;
                let taken = match which {
                    HintRemoval::MadeAt(t) => made == t,
                    HintRemoval::MadeBefore(t) => made < t,
                    HintRemoval::Any => true,
                };
                if !taken {
                    return Ok(());
                }
            }
            db.delete_cf_opt(cf, k, &WriteOptions::default())
                .map_err(db_err)
        })
        .await
    }

    async fn put_state(&self, name: &str, value: &[u8]) -> Result<(), DriveError> {
        let k = [b"s", name.as_bytes()].concat();
        let v = value.to_vec();
        self.blocking(move |db| {
            db.put_cf_opt(cf(db, CF_HEAL)?, k, v, &sync_opts())
                .map_err(db_err)
        })
        .await
    }

    async fn get_state(&self, name: &str) -> Result<Option<Vec<u8>>, DriveError> {
        let k = [b"s", name.as_bytes()].concat();
        self.blocking(move |db| db.get_cf(cf(db, CF_HEAL)?, k).map_err(db_err))
            .await
    }

    async fn stat_shards(
        &self,
        bucket: &str,
        data_dirs: &[String],
    ) -> Result<Vec<Option<u64>>, DriveError> {
        let paths: Vec<PathBuf> = data_dirs
            .iter()
            .map(|d| self.shard_path(bucket, d))
            .collect();
        tokio::task::spawn_blocking(move || {
            paths
                .iter()
                .map(|p| match std::fs::metadata(p) {
                    Ok(m) => Ok(Some(m.len())),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(e.into()),
                })
                .collect()
        })
        .await
        .map_err(|e| DriveError::Io(std::io::Error::other(e)))?
    }

    async fn list_shard_files(
        &self,
        bucket: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, u64)>, DriveError> {
        let dir = self.root.join("shards").join(bucket);
        let after = after.to_string();
        tokio::task::spawn_blocking(move || -> Result<Vec<(String, u64)>, DriveError> {
            let mut fans: Vec<String> = match std::fs::read_dir(&dir) {
                Ok(rd) => rd
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            };
            fans.sort();
            let after_fan = after.get(..2).unwrap_or("");
            let now = std::time::SystemTime::now();
            let mut out = Vec::new();
            for fan in fans.into_iter().filter(|f| f.as_str() >= after_fan) {
                let mut files: Vec<(String, u64)> = std::fs::read_dir(dir.join(&fan))?
                    .filter_map(|e| e.ok())
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        let age = e
                            .metadata()
                            .ok()?
                            .modified()
                            .ok()
                            .and_then(|t| now.duration_since(t).ok())
                            .map_or(0, |d| d.as_secs());
                        Some((name, age))
                    })
                    .filter(|(n, _)| n.as_str() > after.as_str())
                    .collect();
                files.sort();
                for f in files {
                    if out.len() >= limit {
                        return Ok(out);
                    }
                    out.push(f);
                }
            }
            Ok(out)
        })
        .await
        .map_err(|e| DriveError::Io(std::io::Error::other(e)))?
    }
}

/// `h bucket \0 key \0 version`: heal hints sort by bucket and key.
fn hint_key(id: &[u8]) -> Vec<u8> {
    [b"h", id].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::record::sample_version as rec;

    #[tokio::test]
    async fn records_survive_reopen_and_list_in_byte_order() {
        let dir = tempfile::tempdir().unwrap();
        {
            let d = LocalDrive::open(dir.path()).unwrap();
            for k in ["b", "a/b", "a", "a/b/c", "é", "a b"] {
                d.put_version("bkt", k, &rec("null")).await.unwrap();
            }
            d.put_version("bkt2", "zz", &rec("null")).await.unwrap();
        }
        let d = LocalDrive::open(dir.path()).unwrap();
        let keys: Vec<String> = d
            .list_keys("bkt", "", b"", 100)
            .await
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, ["a", "a b", "a/b", "a/b/c", "b", "é"]);
        let after: Vec<String> = d
            .list_keys("bkt", "a", b"a", 100)
            .await
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(after, ["a b", "a/b", "a/b/c"]);
        assert_eq!(d.list_keys("bkt", "", b"", 2).await.unwrap().len(), 2);
        assert_eq!(
            d.get_version("bkt", "a/b", "null").await.unwrap(),
            Some(rec("null"))
        );
        assert!(d
            .delete_version("bkt", "a/b", "null")
            .await
            .unwrap()
            .is_some());
        assert_eq!(d.get_version("bkt", "a/b", "null").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_listing_shows_each_keys_newest_version_from_its_stored_record() {
        let dir = tempfile::tempdir().unwrap();
        let d = LocalDrive::open(dir.path()).unwrap();
        for (v, t, size) in [("v1", 10, 1), ("v3", 30, 3), ("v2", 20, 2)] {
            let mut r = rec(v);
            r.mod_time_ns = t;
            r.size = size;
            r.etag = format!("etag-{v}");
            if v == "v3" {
                r.checksum = Some(("CRC32".into(), "AAAAAA==".into()));
            }
            d.put_version("bkt", "k", &r).await.unwrap();
        }
        let mut gone = rec("v9");
        gone.mod_time_ns = 90;
        gone.delete_marker = true;
        d.put_version("bkt", "m", &gone).await.unwrap();
        let listed = d.list_keys("bkt", "", b"", 10).await.unwrap();
        let want = ListEntry {
            version_id: "v3".into(),
            mod_time_ns: 30,
            size: 3,
            etag: "etag-v3".into(),
            checksum: Some(("CRC32".into(), "AAAAAA==".into())),
            delete_marker: false,
        };
        assert_eq!(listed.len(), 2, "{listed:?}");
        assert_eq!(listed[0], ("k".to_string(), want));
        assert_eq!(listed[1].0, "m");
        assert!(listed[1].1.delete_marker && listed[1].1.version_id == "v9");
        // The version listing still has every whole record.
        let versions = d.list_versions("bkt", "", b"", 10).await.unwrap();
        assert_eq!(versions[0].1.len(), 3);
        assert!(versions[0]
            .1
            .iter()
            .all(|r| r.inline.as_deref() == Some(&b"abc"[..])));
    }

    #[tokio::test]
    async fn an_older_record_never_replaces_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let d = LocalDrive::open(dir.path()).unwrap();
        let mut newer = rec("null");
        newer.mod_time_ns = 20;
        newer.etag = "new".into();
        let mut older = rec("null");
        older.mod_time_ns = 10;
        older.etag = "old".into();
        // Each write answers with what the version id held before, inline bytes and all.
        assert!(newer.inline.is_some());
        assert_eq!(d.put_version("b", "k", &newer).await.unwrap(), None);
        assert_eq!(
            d.put_version("b", "k", &older).await.unwrap(),
            Some(newer.clone())
        );
        assert_eq!(
            d.get_version("b", "k", "null").await.unwrap().unwrap().etag,
            "new"
        );
        // The same version rewritten (tags) replaces it.
        let mut tagged = newer.clone();
        tagged.tags.insert("t".into(), "v".into());
        assert_eq!(
            d.put_version("b", "k", &tagged).await.unwrap(),
            Some(newer.clone())
        );
        assert_eq!(
            d.get_version("b", "k", "null").await.unwrap().unwrap(),
            tagged
        );
    }

    /// A copy of a version from before its last tag change (a heal that read before the
    /// change writes one) does not put the old tags back; a later change replaces it.
    #[tokio::test]
    async fn a_copy_from_before_a_tag_change_never_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let d = LocalDrive::open(dir.path()).unwrap();
        let tagged = |meta_ns: i128, value: &str| {
            let mut r = rec("null");
            r.meta_ns = meta_ns;
            r.tags.insert("t".into(), value.into());
            r
        };
        d.put_version("b", "k", &tagged(50, "new")).await.unwrap();
        let found = d.put_version("b", "k", &tagged(40, "old")).await.unwrap();
        assert_eq!(found, Some(tagged(50, "new")));
        let got = d.get_version("b", "k", "null").await.unwrap().unwrap();
        assert_eq!(got, tagged(50, "new"));
        d.put_version("b", "k", &tagged(60, "newer")).await.unwrap();
        let got = d.get_version("b", "k", "null").await.unwrap().unwrap();
        assert_eq!(got, tagged(60, "newer"));
        // Two changes stamped alike: the greater tags are kept, in whichever order they come.
        for first in ["x", "y"] {
            let (a, b) = if first == "x" { ("x", "y") } else { ("y", "x") };
            let key = format!("k-{first}");
            d.put_version("b", &key, &tagged(70, a)).await.unwrap();
            d.put_version("b", &key, &tagged(70, b)).await.unwrap();
            let got = d.get_version("b", &key, "null").await.unwrap().unwrap();
            assert_eq!(got, tagged(70, "y"), "{key}");
        }
    }

    /// Of two copies of a bucket record stamped alike, the drive keeps the same one whatever
    /// their order: a tombstone over a live copy (as a node of an earlier version writes one
    /// back, without `deleted_ns`), then the greater settings. An older copy never replaces a
    /// newer one; a stored copy that does not decode is replaced.
    #[tokio::test]
    async fn bucket_copies_are_kept_by_their_precedence_in_any_order() {
        let dir = tempfile::tempdir().unwrap();
        let d = LocalDrive::open(dir.path()).unwrap();
        let live = BucketRecord {
            name: "b".into(),
            created_ns: 10,
            location: None,
            versioning: None,
            tags: Default::default(),
            policy: None,
            updated_ns: 20,
            deleted_ns: 0,
        };
        let tomb = BucketRecord {
            deleted_ns: 20,
            ..live.clone()
        };
        let versioned = BucketRecord {
            versioning: Some("Enabled".into()),
            ..live.clone()
        };
        let older = BucketRecord {
            updated_ns: 19,
            versioning: Some("Suspended".into()),
            ..live.clone()
        };
        for (a, b, kept) in [
            (&live, &tomb, &tomb),
            (&tomb, &live, &tomb),
            (&live, &versioned, &versioned),
            (&versioned, &live, &versioned),
            (&versioned, &older, &versioned),
        ] {
            d.delete_bucket("b").await.unwrap();
            d.put_bucket(a).await.unwrap();
            d.put_bucket(b).await.unwrap();
            assert_eq!(d.get_bucket("b").await.unwrap().as_ref(), Some(kept));
        }
        let db = d.current_db().unwrap();
        db.put_cf(cf(&db, CF_BUCKETS).unwrap(), b"b", b"\x01not json")
            .unwrap();
        assert!(d.get_bucket("b").await.is_err());
        d.put_bucket(&older).await.unwrap();
        assert_eq!(d.get_bucket("b").await.unwrap(), Some(older));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_written_together_keep_the_newest_of_each_version() {
        let dir = tempfile::tempdir().unwrap();
        let d = Arc::new(LocalDrive::open(dir.path()).unwrap());
        let version = |t: i128, etag: &str| {
            let mut r = rec("null");
            r.mod_time_ns = t;
            r.etag = etag.into();
            r
        };
        // 300 keys, each written three times at once: older and newer in either order
        // (mostly within one batch), and the newer one rewritten with a tag last.
        let mut writes = Vec::new();
        for i in 0..300 {
            let (a, b) = if i % 2 == 0 {
                (version(20, "new"), version(10, "old"))
            } else {
                (version(10, "old"), version(20, "new"))
            };
            let mut tagged = version(20, "new");
            tagged.tags.insert("t".into(), "v".into());
            for r in [a, b, tagged] {
                let d = d.clone();
                writes.push(async move {
                    let found = d.put_version("b", &format!("k{i}"), &r).await;
                    (i, r, found)
                });
            }
        }
        // Each write found nothing (the first to land) or one of the other two, inline bytes
        // and all, whether it was stored or staged earlier in the same batch.
        let mut firsts = vec![0; 300];
        let done = futures::future::join_all(writes).await;
        let written: Vec<(usize, VersionRecord)> =
            done.iter().map(|(i, r, _)| (*i, r.clone())).collect();
        for (i, r, found) in done {
            match found.unwrap() {
                None => firsts[i] += 1,
                Some(f) => {
                    assert!(f.inline.is_some());
                    assert!(written.iter().any(|(j, w)| *j == i && *w != r && *w == f));
                }
            }
        }
        assert_eq!(firsts, vec![1; 300]);
        for i in 0..300 {
            let got = d.get_version("b", &format!("k{i}"), "null").await.unwrap();
            let got = got.unwrap_or_else(|| panic!("k{i} missing"));
            assert_eq!((got.etag.as_str(), got.tags.len()), ("new", 1), "k{i}");
        }
        // Reopened, the records are all there: they were synced.
        drop(d);
        let d = LocalDrive::open(dir.path()).unwrap();
        assert_eq!(
            d.list_versions("b", "", b"", 1000).await.unwrap().len(),
            300
        );
    }

    /// Frames of odd sizes, together several direct-I/O runs long with a tail that is not a
    /// multiple of the alignment between them, come back byte for byte, and a small file
    /// (written only at commit, through the page cache) too.
    #[tokio::test]
    async fn shard_files_written_in_direct_runs_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let d = LocalDrive::open(dir.path()).unwrap();
        let sizes: [&[usize]; 3] = [
            &[7, 300_001, 1 << 20, 5, 700_001, 4096, 2_000_003, 262_144, 1],
            &[1, 262_144, 9_999],
            &[1, 100_000],
        ];
        for (n, sizes) in sizes.iter().enumerate() {
            let name = format!("abcd-{n}");
            let mut w = d.create_shard("bkt", &name).await.unwrap();
            let mut want = Vec::new();
            for (i, &len) in sizes.iter().enumerate() {
                let block: Vec<u8> = (0..len).map(|j| (j * 31 + i * 7) as u8).collect();
                let f = Framed::new(Bytes::from(block));
                want.extend_from_slice(&f.to_vec());
                w.write(f).await.unwrap();
            }
            w.commit().await.unwrap();
            let path = d.shard_path("bkt", &name);
            assert_eq!(std::fs::read(path).unwrap(), want, "file {n}");
        }
    }

    /// Reads large enough for direct I/O return exactly the bytes asked for, whatever their
    /// alignment, up to the end of the file; one past it is a short file.
    #[tokio::test]
    async fn direct_reads_return_the_range_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let d = LocalDrive::open(dir.path()).unwrap();
        let mut w = d.create_shard("bkt", "abcd-read").await.unwrap();
        for i in 0..5u8 {
            w.write(Framed::new(Bytes::from(vec![i; 700_001])))
                .await
                .unwrap();
        }
        w.commit().await.unwrap();
        let file = std::fs::read(d.shard_path("bkt", "abcd-read")).unwrap();
        let size = file.len() as u64;
        let min = DIRECT_READ_MIN as u64;
        for (offset, len) in [
            (0, min),
            (12_345, min + 7),
            (4096, 3 * min),
            (size - min, min),
            (size - min - 4095, min + 4095),
            (1, size - 1),
        ] {
            let got = d.read_shard("bkt", "abcd-read", offset, len).await.unwrap();
            assert_eq!(
                got.as_ref(),
                &file[offset as usize..(offset + len) as usize],
                "{offset}+{len}"
            );
        }
        assert!(matches!(
            d.read_shard("bkt", "abcd-read", size - min + 1, min).await,
            Err(DriveError::Corrupt(_))
        ));
        assert!(matches!(
            d.read_shard("bkt", "abcd-none", 0, min).await,
            Err(DriveError::NotFound)
        ));
    }

    /// Blocks are held until they total more than `DIRECT_RUN`, then written with direct
    /// I/O in multiples of `DIRECT_ALIGN`; the file is whole after the commit.
    #[tokio::test]
    async fn shard_files_gather_a_run_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let d = LocalDrive::open(dir.path()).unwrap();
        let mut w = d.create_shard("bkt", "abcd-small").await.unwrap();
        let tmp_len = || {
            let files: Vec<_> = std::fs::read_dir(dir.path().join("tmp"))
                .unwrap()
                .flatten()
                .collect();
            assert_eq!(files.len(), 1);
            files[0].metadata().unwrap().len()
        };
        for _ in 0..4 {
            w.write(Framed::new(Bytes::from(vec![7u8; DIRECT_RUN / 4])))
                .await
                .unwrap();
        }
        assert_eq!(tmp_len(), 0);
        w.write(Framed::new(Bytes::from(vec![8u8; 10])))
            .await
            .unwrap();
        // The run is written behind, on a blocking thread: wait for it to land (a direct
        // write sets the file's size when it completes, to the run's aligned part).
        let mut written = tmp_len();
        for _ in 0..1000 {
            if written == DIRECT_RUN as u64 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            written = tmp_len();
        }
        assert!(
            written > 0 && written % DIRECT_ALIGN as u64 == 0,
            "{written}"
        );
        w.commit().await.unwrap();
        let f = std::fs::read(d.shard_path("bkt", "abcd-small")).unwrap();
        assert_eq!(f.len(), 4 * (32 + DIRECT_RUN / 4) + 32 + 10);
    }

    /// A shard writer over `tmp` whose file handle cannot be written (opened read-only), so
    /// that every run fails, as on a drive gone bad.
    fn failing_writer(root: &Path) -> (LocalShardWriter, PathBuf, PathBuf) {
        let tmp = root.join("tmp-shard");
        let dest = root.join("dest-shard");
        std::fs::write(&tmp, b"").unwrap();
        let mut w = LocalShardWriter::new(
            std::fs::File::open(&tmp).unwrap(),
            tmp.clone(),
            dest.clone(),
        );
        // Through that handle only: no direct I/O opened by path.
        if let Some(out) = w.out.as_mut() {
            out.direct_refused = true;
        }
        (w, tmp, dest)
    }

    /// A run written behind that fails fails the commit: the file is not named, and the
    /// temporary one is removed.
    #[tokio::test]
    async fn a_run_that_failed_behind_fails_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, tmp, dest) = failing_writer(dir.path());
        // The fifth frame starts a run; it has not failed yet when `write` returns.
        for _ in 0..5 {
            w.write(Framed::new(Bytes::from(vec![7u8; DIRECT_RUN / 4])))
                .await
                .unwrap();
        }
        assert!(Box::new(w).commit().await.is_err());
        assert!(!dest.exists());
        assert!(!tmp.exists());
    }

    /// ... and the next run, when there is one before the commit: the writer then refuses
    /// everything after.
    #[tokio::test]
    async fn a_run_that_failed_behind_fails_the_next_run() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, _, _) = failing_writer(dir.path());
        let frame = || Framed::new(Bytes::from(vec![7u8; DIRECT_RUN / 4]));
        for _ in 0..9 {
            w.write(frame()).await.unwrap();
        }
        // The tenth frame starts the second run, which first waits for the first.
        assert!(w.write(frame()).await.is_err());
        assert!(w.write(frame()).await.is_err());
        assert!(Box::new(w).commit().await.is_err());
    }

    #[tokio::test]
    async fn shard_files_commit_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let d = LocalDrive::open(dir.path()).unwrap();
        let mut w = d.create_shard("bkt", "abcd-1").await.unwrap();
        let (a, b) = (
            Framed::new(Bytes::from_static(b"hello ")),
            Framed::new(Bytes::from_static(b"world")),
        );
        w.write(a.clone()).await.unwrap();
        w.write(b.clone()).await.unwrap();
        assert!(matches!(
            d.read_shard("bkt", "abcd-1", 0, 5).await,
            Err(DriveError::NotFound)
        ));
        w.commit().await.unwrap();
        // Each frame is its hash, then its block.
        assert_eq!(
            d.read_shard("bkt", "abcd-1", 0, a.len() as u64)
                .await
                .unwrap()
                .as_ref(),
            &a.to_vec()[..]
        );
        assert_eq!(
            d.read_shard("bkt", "abcd-1", (a.len() + 32) as u64, 5)
                .await
                .unwrap()
                .as_ref(),
            b"world"
        );
        assert!(matches!(
            d.read_shard("bkt", "abcd-1", 6, 500).await,
            Err(DriveError::Corrupt(_))
        ));
        // An abandoned writer leaves nothing behind.
        let w = d.create_shard("bkt", "abcd-2").await.unwrap();
        drop(w);
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }

    fn memtables(d: &LocalDrive) -> u64 {
        let db = d.current_db().unwrap();
        let h = db.cf_handle(CF_OBJECTS).unwrap();
        db.property_int_value_cf(h, "rocksdb.cur-size-all-mem-tables")
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn an_idle_drive_flushes_its_memtables_once_and_keeps_its_records() {
        let dir = tempfile::tempdir().unwrap();
        let d = LocalDrive::open(dir.path()).unwrap();
        let mut big = rec("null");
        big.inline = Some(vec![7; 64 << 10]);
        for i in 0..100 {
            d.put_version("bkt", &format!("k{i}"), &big).await.unwrap();
        }
        let full = memtables(&d);
        assert!(full > FLUSH_MIN, "{full} bytes in memtables");
        // The first check only notes where the log is; nothing was idle yet.
        assert!(!d.release_if_idle().unwrap());
        assert!(d.release_if_idle().unwrap(), "idle since the last check");
        assert!(memtables(&d) < full / 4, "{} bytes left", memtables(&d));
        assert!(!d.release_if_idle().unwrap(), "done once per idle spell");
        // A write starts a new spell.
        d.put_version("bkt", "k100", &big).await.unwrap();
        assert!(!d.release_if_idle().unwrap());
        assert!(d.release_if_idle().unwrap());
        for i in 0..=100 {
            assert_eq!(
                d.get_version("bkt", &format!("k{i}"), "null")
                    .await
                    .unwrap(),
                Some(big.clone())
            );
        }
    }

    #[tokio::test]
    async fn records_on_disk_only_are_read_through_the_blocking_pool() {
        let dir = tempfile::tempdir().unwrap();
        let d = LocalDrive::open(dir.path()).unwrap();
        let a = rec("v1");
        let b = rec("v2");
        d.put_version("bkt", "key", &a).await.unwrap();
        d.put_version("bkt", "key", &b).await.unwrap();
        // From the memtable.
        assert_eq!(
            d.get_version("bkt", "key", "v1").await.unwrap(),
            Some(a.clone())
        );
        let db = d.current_db().unwrap();
        db.flush_cf(cf(&db, CF_OBJECTS).unwrap()).unwrap();
        drop((db, d));
        // Reopened: the records are in a table file, and nothing of it is cached.
        let d = LocalDrive::open(dir.path()).unwrap();
        let db = d.current_db().unwrap();
        let mut memory = ReadOptions::default();
        memory.set_read_tier(memory_tier());
        let only_memory = db.get_cf_opt(
            cf(&db, CF_OBJECTS).unwrap(),
            object_key("bkt", "key", "v1"),
            &memory,
        );
        assert!(
            matches!(&only_memory, Err(e) if e.kind() == rocksdb::ErrorKind::Incomplete),
            "{only_memory:?}"
        );
        drop(db);
        assert_eq!(
            d.key_versions("bkt", "key").await.unwrap(),
            vec![a.clone(), b]
        );
        assert_eq!(d.get_version("bkt", "key", "v1").await.unwrap(), Some(a));
        assert_eq!(d.get_version("bkt", "key", "v3").await.unwrap(), None);
        assert_eq!(d.get_version("bkt", "other", "v1").await.unwrap(), None);
    }

    #[tokio::test]
    async fn hints_are_listed_whatever_the_order_of_writes_and_listings() {
        let dir = tempfile::tempdir().unwrap();
        let d = LocalDrive::open(dir.path()).unwrap();
        assert!(d.list_hints(b"", 10).await.unwrap().is_empty());
        // The empty listing above lets the next one skip the database; a hint written
        // after it must still be found.
        assert!(d.list_hints(b"", 10).await.unwrap().is_empty());
        let h = HealHint::version("bkt", "key", "null", false);
        d.put_hint(&h).await.unwrap();
        let listed = d.list_hints(b"", 10).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(d.list_hints(b"", 10).await.unwrap().len(), 1);
        // The hint stored again since it was listed, by a writer whose clock is a minute
        // behind the first one's: the removal of the hint as listed leaves it.
        let again = HealHint {
            created_ms: h.created_ms - 60_000,
            ..h.clone()
        };
        d.put_hint(&again).await.unwrap();
        d.delete_hint(&h.id(), HintRemoval::MadeAt(h.created_ms))
            .await
            .unwrap();
        assert_eq!(d.list_hints(b"", 10).await.unwrap(), vec![again.clone()]);
        d.delete_hint(&h.id(), HintRemoval::MadeAt(again.created_ms))
            .await
            .unwrap();
        assert!(d.list_hints(b"", 10).await.unwrap().is_empty());
        // A leader of an earlier version removes hints made before its heal began.
        d.put_hint(&h).await.unwrap();
        d.delete_hint(&h.id(), HintRemoval::MadeBefore(h.created_ms))
            .await
            .unwrap();
        assert_eq!(d.list_hints(b"", 10).await.unwrap().len(), 1);
        d.delete_hint(&h.id(), HintRemoval::MadeBefore(h.created_ms + 1))
            .await
            .unwrap();
        assert!(d.list_hints(b"", 10).await.unwrap().is_empty());
        d.put_hint(&h).await.unwrap();
        d.delete_hint(&h.id(), HintRemoval::Any).await.unwrap();
        assert!(d.list_hints(b"", 10).await.unwrap().is_empty());
        assert!(d.list_hints(b"", 10).await.unwrap().is_empty());
        drop(d);
        // Hints written before a restart are found after it.
        let d = LocalDrive::open(dir.path()).unwrap();
        d.put_hint(&h).await.unwrap();
        drop(d);
        let d = LocalDrive::open(dir.path()).unwrap();
        assert_eq!(d.list_hints(b"", 10).await.unwrap().len(), 1);
    }
}
