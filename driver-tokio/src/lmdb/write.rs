//! The write transaction of [`LmdbStore`] and the checkpoint that moves logged commits into
//! LMDB.

use std::fmt;
use std::sync::atomic::Ordering;

use heed::types::Bytes;
use heed::{Database, RoTxn, RwTxn, WithoutTls};
use threads_protocol::store::memory::ChangeMap;
use threads_protocol::store::{
    Direction, KeyRange, ReadTxn, StoreError, Visit, WriteTxn, WriterTicket, check_key, check_value,
};

use super::{CHECKPOINT_KEY, LmdbStore, get, get_with, lock, map_err, scan, wal::Wal};

/// A transaction whose changes pass this many times the log's capacity (64 MiB with the
/// default log) moves into an LMDB write transaction, so that a bulk import does not hold all
/// its changes in memory. Below it a transaction stays
/// in memory to its commit, even one too large for the log (it then commits as a checkpoint):
/// LMDB fills its pages best when a transaction's changes reach it in key order (measured:
/// leaves 94 % full after 20k creates checkpointed at once; 78 % inserted in the fold's
/// order; 59 % when the first 256 KiB of each 1,000-document batch went in sorted and the rest
/// in the fold's order).
const DIRECT_LOGS: u64 = 4;

/// The write transaction of [`LmdbStore`]. Not `Send`: LMDB requires the thread that began
/// a write transaction to end it.
pub struct LmdbWrite<'a> {
    // Field order matters: the transaction ends before the gate admits the next writer.
    mode: Mode<'a>,
    store: &'a LmdbStore,
    _ticket: WriterTicket<'a>,
}

/// Where a write transaction keeps its changes.
enum Mode<'a> {
    /// In memory, over the committed changes and LMDB's snapshot: committed through the log.
    Buffered {
        base: RoTxn<'a, WithoutTls>,
        pending: ChangeMap,
        changes: ChangeMap,
    },
    /// In an LMDB write transaction that already holds the committed changes not yet
    /// checkpointed: committed as a checkpoint.
    Direct(RwTxn<'a>),
    /// Between the two, for a moment.
    Moving,
}

impl fmt::Debug for LmdbWrite<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match &self.mode {
            Mode::Buffered { changes, .. } => format!("buffered, {} changes", changes.len()),
            Mode::Direct(txn) => format!("direct, LMDB transaction {}", txn.id()),
            Mode::Moving => "moving".into(),
        };
        f.debug_struct("LmdbWrite").field("mode", &mode).finish()
    }
}

/// Writes `changes` into `txn`.
fn apply(
    db: &Database<'static, Bytes, Bytes>,
    txn: &mut RwTxn<'_>,
    changes: &ChangeMap,
) -> Result<(), StoreError> {
    for (k, v) in changes.iter() {
        match v {
            Some(v) => db.put(txn, k, v).map(|()| true),
            None => db.delete(txn, k),
        }
        .map_err(|e| map_err("checkpointing the write-ahead log", e))?;
    }
    Ok(())
}

/// Commits `txn`, which holds every committed change not yet checkpointed, as a checkpoint:
/// records the log's last frame with it, then empties the committed changes and rewinds the
/// log. Called with the writer's gate and the log's lock held.
fn commit_checkpoint(
    store: &LmdbStore,
    log: &mut Option<Wal>,
    mut txn: RwTxn<'_>,
) -> Result<(), StoreError> {
    if let Some(wal) = log.as_ref() {
        store
            .meta
            .put(&mut txn, CHECKPOINT_KEY, &wal.last_seq().to_be_bytes())
            .map_err(|e| map_err("recording the checkpoint", e))?;
    }
    // Readers open their snapshots under this lock: none sees the new LMDB state with the
    // old changes over it.
    let mut pending = lock(&store.shared.pending);
    txn.commit()
        .map_err(|e| map_err("committing the write transaction", e))?;
    *pending = ChangeMap::new();
    drop(pending);
    if let Some(wal) = log.as_mut() {
        wal.reset();
    }
    store.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Writes the committed changes not yet checkpointed, then `extra`, into LMDB in one durable
/// commit. Called with the writer's gate and the log's lock held.
pub(super) fn checkpoint(
    store: &LmdbStore,
    log: &mut Option<Wal>,
    extra: Option<&ChangeMap>,
) -> Result<(), StoreError> {
    let mut txn = store
        .env
        .write_txn()
        .map_err(|e| map_err("opening the checkpoint's transaction", e))?;
    let pending = lock(&store.shared.pending).clone();
    apply(&store.db, &mut txn, &pending)?;
    drop(pending);
    if let Some(extra) = extra {
        apply(&store.db, &mut txn, extra)?;
    }
    commit_checkpoint(store, log, txn)
}

impl<'a> LmdbWrite<'a> {
    /// Opens the write transaction: buffered when the log is on, else directly in LMDB.
    pub(super) fn begin(store: &'a LmdbStore) -> Result<Self, StoreError> {
        let ticket = store.gate.enter()?;
        let mode = if store.shared.log_bytes > 0 && lock(&store.shared.log).is_some() {
            let pending = lock(&store.shared.pending);
            let base = store
                .env
                .read_txn()
                .map_err(|e| map_err("opening the write transaction", e))?;
            Mode::Buffered {
                base,
                pending: pending.clone(),
                changes: ChangeMap::new(),
            }
        } else {
            Mode::Direct(direct(store)?)
        };
        store.counters.write_txns.fetch_add(1, Ordering::Relaxed);
        Ok(LmdbWrite {
            mode,
            store,
            _ticket: ticket,
        })
    }

    /// Moves a buffered transaction into LMDB (it grew past [`DIRECT_LOGS`] logs).
    fn go_direct(&mut self) -> Result<(), StoreError> {
        let Mode::Buffered { base, changes, .. } = std::mem::replace(&mut self.mode, Mode::Moving)
        else {
            return Ok(());
        };
        drop(base);
        let mut txn = direct(self.store)?;
        apply(&self.store.db, &mut txn, &changes)?;
        self.mode = Mode::Direct(txn);
        Ok(())
    }

    fn db(&self) -> &Database<'static, Bytes, Bytes> {
        &self.store.db
    }
}

/// An LMDB write transaction holding the committed changes not yet checkpointed.
fn direct(store: &LmdbStore) -> Result<RwTxn<'_>, StoreError> {
    let mut txn = store
        .env
        .write_txn()
        .map_err(|e| map_err("opening the write transaction", e))?;
    let pending = lock(&store.shared.pending).clone();
    apply(&store.db, &mut txn, &pending)?;
    Ok(txn)
}

/// A transaction left in [`Mode::Moving`] by a failure: it can only be dropped.
fn broken() -> StoreError {
    StoreError::Backend(
        "the write transaction failed while moving into LMDB; drop it and begin another".into(),
    )
}

impl ReadTxn for LmdbWrite<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match &self.mode {
            Mode::Buffered {
                base,
                pending,
                changes,
            } => get(self.db(), base, &[changes, pending], key),
            Mode::Direct(txn) => get(self.db(), txn, &[], key),
            Mode::Moving => Err(broken()),
        }
    }

    fn get_with(&self, key: &[u8], read: &mut dyn FnMut(Option<&[u8]>)) -> Result<(), StoreError> {
        match &self.mode {
            Mode::Buffered {
                base,
                pending,
                changes,
            } => get_with(self.db(), base, &[changes, pending], key, read),
            Mode::Direct(txn) => get_with(self.db(), txn, &[], key, read),
            Mode::Moving => Err(broken()),
        }
    }

    fn scan(
        &self,
        range: KeyRange<'_>,
        dir: Direction,
        visit: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        match &self.mode {
            Mode::Buffered {
                base,
                pending,
                changes,
            } => scan(self.db(), base, &[changes, pending], &range, dir, visit),
            Mode::Direct(txn) => scan(self.db(), txn, &[], &range, dir, visit),
            Mode::Moving => Err(broken()),
        }
    }
}

impl WriteTxn for LmdbWrite<'_> {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        check_key(key)?;
        check_value(value)?;
        let db = self.store.db;
        match &mut self.mode {
            Mode::Buffered { changes, .. } => {
                changes.set(key, Some(value));
                if changes.bytes() as u64 > self.store.shared.log_bytes.saturating_mul(DIRECT_LOGS)
                {
                    self.go_direct()?;
                }
                Ok(())
            }
            Mode::Direct(txn) => db
                .put(txn, key, value)
                .map_err(|e| map_err("writing a key", e)),
            Mode::Moving => Err(broken()),
        }
    }

    fn put_if_absent(&mut self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        check_key(key)?;
        check_value(value)?;
        let db = self.store.db;
        if let Mode::Direct(txn) = &mut self.mode {
            let old = db
                .get_or_put(txn, key, value)
                .map_err(|e| map_err("writing a new key", e))?;
            return Ok(old.map(<[u8]>::to_vec));
        }
        match self.get(key)? {
            Some(old) => Ok(Some(old)),
            None => self.put(key, value).map(|()| None),
        }
    }

    fn delete(&mut self, key: &[u8]) -> Result<bool, StoreError> {
        check_key(key)?;
        let db = self.store.db;
        if let Mode::Direct(txn) = &mut self.mode {
            return db
                .delete(txn, key)
                .map_err(|e| map_err("deleting a key", e));
        }
        let mut existed = false;
        self.get_with(key, &mut |v| existed = v.is_some())?;
        if existed && let Mode::Buffered { changes, .. } = &mut self.mode {
            changes.set(key, None);
        }
        Ok(existed)
    }

    /// Buffered: appends the changes to the log and syncs it, then adds them to the committed
    /// changes; when the log has no room left, a checkpoint writes everything into LMDB
    /// instead. Direct: a checkpoint.
    fn commit(mut self) -> Result<(), StoreError> {
        let store = self.store;
        let mut log = lock(&store.shared.log);
        match std::mem::replace(&mut self.mode, Mode::Moving) {
            Mode::Direct(txn) => commit_checkpoint(store, &mut log, txn)?,
            Mode::Moving => return Err(broken()),
            Mode::Buffered {
                base,
                pending,
                changes,
            } => {
                // Release the snapshots first: LMDB can then reuse the pages they held, and
                // the committed changes have one owner and are changed in place.
                drop(base);
                drop(pending);
                if changes.is_empty() {
                    // Nothing to make durable.
                } else if let Some(wal) = log.as_mut() {
                    match wal.append(&changes) {
                        Ok(true) => {
                            lock(&store.shared.pending).absorb(&changes);
                        }
                        Ok(false) => checkpoint(store, &mut log, Some(&changes))?,
                        Err(e) => {
                            // The failed frame's number is used up; checkpointing now records
                            // it, so that nothing of the frame is read back at the next open.
                            if let Err(again) = checkpoint(store, &mut log, None) {
                                tracing::error!(error = %again, "checkpoint after a failed log write failed too");
                            }
                            return Err(e);
                        }
                    }
                } else {
                    checkpoint(store, &mut log, Some(&changes))?;
                }
            }
        }
        store.counters.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
