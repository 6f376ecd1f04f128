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

use super::wal::{self, Frames, Wal};
use super::{CHECKPOINT_KEY, Committed, LmdbStore, get, get_with, lock, map_err, scan};

/// A transaction whose changes pass this many times the log's capacity (64 MiB with the
/// default log) moves into an LMDB write transaction, so that a bulk import does not hold all
/// its changes in memory. Below it a transaction stays in memory to its commit, even one too
/// large for half the log (it then commits as a checkpoint, in key order: measured, leaves
/// 94 % full after 20k creates checkpointed at once, 78 % inserted in the fold's order).
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
        committed: Committed,
        changes: ChangeMap,
        /// The log frame: the same changes in the order they were made.
        frame: Vec<u8>,
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
/// log. Called with the writer's gate and the log's lock held, no background checkpoint
/// running.
fn commit_checkpoint(
    store: &LmdbStore,
    log: &mut Option<Wal>,
    txn: RwTxn<'_>,
) -> Result<(), StoreError> {
    let seq = log.as_ref().map(Wal::last_seq);
    commit_recording(store, txn, seq, |c| *c = Committed::default())?;
    if let Some(wal) = log.as_mut() {
        wal.reset();
    }
    store.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Records `seq` (the last frame the changes in `txn` cover, if any) in `txn`, commits it, and
/// empties with `written` what of the committed changes LMDB now holds.
fn commit_recording(
    store: &LmdbStore,
    mut txn: RwTxn<'_>,
    seq: Option<u64>,
    written: impl FnOnce(&mut Committed),
) -> Result<(), StoreError> {
    if let Some(seq) = seq {
        store
            .meta
            .put(&mut txn, CHECKPOINT_KEY, &seq.to_be_bytes())
            .map_err(|e| map_err("recording the checkpoint", e))?;
    }
    // Readers open their snapshots under this lock: none sees the new LMDB state with the
    // old changes over it.
    let mut committed = lock(&store.shared.committed);
    txn.commit()
        .map_err(|e| map_err("committing the checkpoint", e))?;
    written(&mut committed);
    Ok(())
}

/// Writes the committed changes not yet checkpointed, then `extra`, into LMDB in one durable
/// commit, after waiting for a background checkpoint still running. Called with the writer's
/// gate and the log's lock held.
pub(super) fn checkpoint(
    store: &LmdbStore,
    log: &mut Option<Wal>,
    extra: Option<&ChangeMap>,
) -> Result<(), StoreError> {
    finish_background(store, log);
    let mut txn = store
        .env
        .write_txn()
        .map_err(|e| map_err("opening the checkpoint's transaction", e))?;
    let committed = lock(&store.shared.committed).clone();
    // The older layer first: the newer one's values win.
    apply(&store.db, &mut txn, &committed.frozen)?;
    apply(&store.db, &mut txn, &committed.recent)?;
    drop(committed);
    if let Some(extra) = extra {
        apply(&store.db, &mut txn, extra)?;
    }
    commit_checkpoint(store, log, txn)
}

/// Waits for the background checkpoint, if one ran since the last wait; when it committed,
/// the half of the log it covered is free again. Called with the log's lock held (`log`).
pub(super) fn finish_background(store: &LmdbStore, log: &mut Option<Wal>) {
    let Some(handle) = lock(&store.shared.background).take() else {
        return;
    };
    // A panic in the checkpoint counts as a failure: its changes stay in the frozen layer.
    if handle.join().unwrap_or(false)
        && let Some(wal) = log.as_mut()
    {
        wal.other_live = false;
    }
}

/// The current half of the log is full: when the other half is free, hands the changes of
/// the full one to a background checkpoint and moves on to the other; `false` when it is not
/// free (its checkpoint failed, or it holds frames read back at open), then the caller
/// checkpoints everything at once.
fn switch_half(store: &LmdbStore, log: &mut Option<Wal>) -> bool {
    finish_background(store, log);
    let Some(wal) = log.as_mut() else {
        return false;
    };
    if wal.other_live {
        return false;
    }
    let frames = wal.current_frames();
    let frozen = {
        let mut committed = lock(&store.shared.committed);
        debug_assert!(
            committed.frozen.is_empty(),
            "no checkpoint left the frozen layer"
        );
        committed.frozen = std::mem::take(&mut committed.recent);
        committed.frozen.clone()
    };
    wal.switch();
    let bg = store.clone();
    let started = std::thread::Builder::new()
        .name("threads-checkpoint".into())
        .spawn(move || match checkpoint_frozen(&bg, &frozen, &frames) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "background checkpoint failed; the next one covers its changes");
                false
            }
        });
    match started {
        Ok(handle) => *lock(&store.shared.background) = Some(handle),
        // The half left stays live (`other_live`): the next switch checkpoints everything.
        Err(e) => tracing::warn!(error = %e, "no thread for a background checkpoint"),
    }
    true
}

/// The background checkpoint: writes the changes of the half of the log `frames` (in
/// `frozen`, every change not yet in LMDB up to its last frame) into LMDB, in the order they
/// were committed, with the last frame's number recorded, then drops the frozen layer.
fn checkpoint_frozen(
    store: &LmdbStore,
    frozen: &ChangeMap,
    frames: &Frames,
) -> Result<(), StoreError> {
    let mut txn = store
        .env
        .write_txn()
        .map_err(|e| map_err("opening the background checkpoint's transaction", e))?;
    let mut failed = None;
    let in_order = wal::read_frames(frames, &mut |k, v| {
        if failed.is_some() {
            return;
        }
        let done = match v {
            Some(v) => store.db.put(&mut txn, k, v).map(|()| true),
            None => store.db.delete(&mut txn, k),
        };
        failed = done.err();
    });
    if let Some(e) = failed {
        return Err(map_err("checkpointing the write-ahead log", e));
    }
    if !in_order {
        // The frames cannot be read again (they were whole when written, so this is the
        // disk failing): the same changes from memory, in key order.
        tracing::warn!(
            "background checkpoint: the log's frames could not be read again; writing the changes from memory"
        );
        apply(&store.db, &mut txn, frozen)?;
    }
    commit_recording(store, txn, Some(frames.last()), |c| {
        c.frozen = ChangeMap::new()
    })?;
    store.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
    store
        .counters
        .background_checkpoints
        .fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Commits `changes` through the log as `frame` (the same changes in the order they were
/// made): in the current half, or in the other half after handing the full one to a
/// background checkpoint, or, when neither can take it, a checkpoint of everything with
/// `changes`. Called with the writer's gate and the log's lock held.
fn log_commit(
    store: &LmdbStore,
    log: &mut Option<Wal>,
    changes: &ChangeMap,
    mut frame: Vec<u8>,
) -> Result<(), StoreError> {
    let Some(wal) = log.as_ref() else {
        return checkpoint(store, log, Some(changes));
    };
    wal.seal(&mut frame);
    let room = wal.fits(&frame) || (wal.fits_a_half(&frame) && switch_half(store, log));
    if !room {
        return checkpoint(store, log, Some(changes));
    }
    let Some(wal) = log.as_mut() else {
        return checkpoint(store, log, Some(changes));
    };
    if let Err(e) = wal.write(&frame) {
        // The failed frame's number is used up; checkpointing now records it, so that
        // nothing of the frame is read back at the next open.
        if let Err(again) = checkpoint(store, log, None) {
            tracing::error!(error = %again, "checkpoint after a failed log write failed too");
        }
        return Err(e);
    }
    lock(&store.shared.committed).recent.absorb(changes);
    Ok(())
}

impl<'a> LmdbWrite<'a> {
    /// Opens the write transaction: buffered when the log is on, else directly in LMDB.
    pub(super) fn begin(store: &'a LmdbStore) -> Result<Self, StoreError> {
        let ticket = store.gate.enter()?;
        let mode = if store.shared.log_bytes > 0 && lock(&store.shared.log).is_some() {
            let committed = lock(&store.shared.committed);
            let base = store
                .env
                .read_txn()
                .map_err(|e| map_err("opening the write transaction", e))?;
            Mode::Buffered {
                base,
                committed: committed.clone(),
                changes: ChangeMap::new(),
                frame: wal::new_frame(),
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

/// An LMDB write transaction holding the committed changes not yet checkpointed (after
/// waiting for a background checkpoint still running, which would otherwise write older
/// changes after them).
fn direct(store: &LmdbStore) -> Result<RwTxn<'_>, StoreError> {
    finish_background(store, &mut lock(&store.shared.log));
    let mut txn = store
        .env
        .write_txn()
        .map_err(|e| map_err("opening the write transaction", e))?;
    let committed = lock(&store.shared.committed).clone();
    apply(&store.db, &mut txn, &committed.frozen)?;
    apply(&store.db, &mut txn, &committed.recent)?;
    Ok(txn)
}

/// A buffered transaction's layers over LMDB's snapshot, the newest first.
fn layers<'t>(changes: &'t ChangeMap, committed: &'t Committed) -> [&'t ChangeMap; 3] {
    [changes, &committed.recent, &committed.frozen]
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
                committed,
                changes,
                ..
            } => get(self.db(), base, &layers(changes, committed), key),
            Mode::Direct(txn) => get(self.db(), txn, &[], key),
            Mode::Moving => Err(broken()),
        }
    }

    fn get_with(&self, key: &[u8], read: &mut dyn FnMut(Option<&[u8]>)) -> Result<(), StoreError> {
        match &self.mode {
            Mode::Buffered {
                base,
                committed,
                changes,
                ..
            } => get_with(self.db(), base, &layers(changes, committed), key, read),
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
                committed,
                changes,
                ..
            } => scan(
                self.db(),
                base,
                &layers(changes, committed),
                &range,
                dir,
                visit,
            ),
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
            Mode::Buffered { changes, frame, .. } => {
                changes.set(key, Some(value));
                wal::push_change(frame, key, Some(value));
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
        if existed && let Mode::Buffered { changes, frame, .. } = &mut self.mode {
            changes.set(key, None);
            wal::push_change(frame, key, None);
        }
        Ok(existed)
    }

    /// Buffered: appends the changes to the log and syncs it, then adds them to the committed
    /// changes (when the half of the log being written is full, after handing it to a
    /// background checkpoint; when nothing can take them, a checkpoint writes everything into
    /// LMDB instead). Direct: a checkpoint.
    fn commit(mut self) -> Result<(), StoreError> {
        let store = self.store;
        let mut log = lock(&store.shared.log);
        match std::mem::replace(&mut self.mode, Mode::Moving) {
            Mode::Direct(txn) => commit_checkpoint(store, &mut log, txn)?,
            Mode::Moving => return Err(broken()),
            Mode::Buffered {
                base,
                committed,
                changes,
                frame,
            } => {
                // Release the snapshots first: LMDB can then reuse the pages they held, and
                // the committed changes have one owner and are changed in place.
                drop(base);
                drop(committed);
                if !changes.is_empty() {
                    log_commit(store, &mut log, &changes, frame)?;
                }
            }
        }
        store.counters.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
