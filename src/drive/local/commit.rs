//! Group commit of version records. Each drive has one thread that writes every version
//! record that arrived while it was writing the previous batch, in one RocksDB write batch
//! with one fsync. Under concurrent small PUTs (six records each, one per drive) this takes
//! the place of one blocking-pool hand-off and one write-group join per record.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc;
use std::sync::Arc;

use rocksdb::{WriteBatch, DB};
use tokio::sync::oneshot;

use super::{db_err, record, sync_opts, DriveError, CF_OBJECTS};
use crate::drive::record::VersionRecord;

/// Most records written in one batch.
const MAX_BATCH: usize = 256;

/// A record's [`VersionRecord::write_order`], then its [`VersionRecord::meta_order`], owned: of
/// two copies of one version, the one whose tags changed last.
type Order = (i128, String, i128, BTreeMap<String, String>);

struct Request {
    db: Arc<DB>,
    key: Vec<u8>,
    value: Vec<u8>,
    order: Order,
    done: oneshot::Sender<Result<Option<VersionRecord>, DriveError>>,
}

/// The handle to a drive's commit thread; the thread ends when the handle is dropped.
pub(super) struct Committer {
    tx: mpsc::Sender<Request>,
}

impl Committer {
    pub(super) fn start(drive: &std::path::Path) -> Result<Self, DriveError> {
        let (tx, rx) = mpsc::channel();
        let name = drive.display().to_string();
        std::thread::Builder::new()
            .name("tessera-commit".into())
            .spawn(move || {
                run(rx);
                tracing::debug!(drive = %name, "commit thread stopped");
            })?;
        Ok(Self { tx })
    }

    /// Writes `value` under `key` in the objects column family of `db`, synced, unless the
    /// record there is newer than `order` (last writer wins; then nothing is written). A copy
    /// of the same version from before a tag change, as a heal that read before the change
    /// would write, is older: it never puts the old tags back.
    /// Returns the record that was there before, inline bytes and all (a write that fails
    /// its quorum puts it back).
    pub(super) async fn put(
        &self,
        db: Arc<DB>,
        key: Vec<u8>,
        value: Vec<u8>,
        order: Order,
    ) -> Result<Option<VersionRecord>, DriveError> {
        let (done, answer) = oneshot::channel();
        let stopped = || DriveError::Db("the drive's commit thread stopped".into());
        self.tx
            .send(Request {
                db,
                key,
                value,
                order,
                done,
            })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn run(rx: mpsc::Receiver<Request>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let mut answers = Vec::with_capacity(batch.len());
        // A drive folder replaced under the process brings a new database: each run of
        // requests for the same database is one write.
        while !batch.is_empty() {
            let same = batch
                .iter()
                .take_while(|r| Arc::ptr_eq(&r.db, &batch[0].db))
                .count();
            let run: Vec<Request> = batch.drain(..same).collect();
            let results = write(&run[0].db, &run);
            answers.extend(run.into_iter().map(|r| r.done).zip(results));
        }
        // Every handle on the database is gone before anyone hears back, so that a caller
        // may close and reopen the drive at once.
        for (done, result) in answers {
            let _ = done.send(result);
        }
    }
}

/// Stages every request whose record is not older than the one stored (or staged before it
/// in this batch), writes them in one synced batch, and returns for each request the record
/// it found.
fn write(db: &DB, requests: &[Request]) -> Vec<Result<Option<VersionRecord>, DriveError>> {
    let all_fail = |e: String| {
        requests
            .iter()
            .map(|_| Err(DriveError::Db(e.clone())))
            .collect()
    };
    let Some(cf) = db.cf_handle(CF_OBJECTS) else {
        return all_fail(format!("missing column family {CF_OBJECTS}"));
    };
    let mut batch = WriteBatch::default();
    // Per key, the request staged last for it.
    let mut staged: HashMap<&[u8], &Request> = HashMap::new();
    let mut results = Vec::with_capacity(requests.len());
    for r in requests {
        let found = match staged.get(r.key.as_slice()) {
            Some(earlier) => record::decode(&earlier.value).map(Some),
            None => stored(db, cf, &r.key),
        };
        if let Ok(prior) = &found {
            if prior.as_ref().is_none_or(|p| {
                let (t, dir) = p.write_order();
                let (o, meta) = (&r.order, (r.order.2, &r.order.3));
                (t, dir, p.meta_order()) <= (o.0, o.1.as_str(), meta)
            }) {
                batch.put_cf(cf, &r.key, &r.value);
                staged.insert(&r.key, r);
            }
        }
        results.push(found);
    }
    if !batch.is_empty() {
        if let Err(e) = db.write_opt(batch, &sync_opts()) {
            return all_fail(e.to_string());
        }
    }
    results
}

fn stored(
    db: &DB,
    cf: &rocksdb::ColumnFamily,
    key: &[u8],
) -> Result<Option<VersionRecord>, DriveError> {
    match db.get_cf(cf, key).map_err(db_err)? {
        Some(raw) => record::decode(&raw).map(Some),
        None => Ok(None),
    }
}
