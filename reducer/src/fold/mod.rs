//! Convergence by construction: the state of a thread is the fold of all its accepted records in
//! one total order, whatever order they arrived in.
//!
//! The order is (Lamport clock, log id, counter). [`Convergent`] wraps a deterministic [`Fold`]
//! and plugs into the replication engine as its application hook. A record that arrives "in the
//! past" (before records already applied, in that order) is folded in by deterministic undo and
//! redo: the later records are undone newest first (every write a record made is logged with the
//! value it replaced), the late record is applied, and the later records are applied again. So
//! every replica holding the same records holds byte-identical state.
//!
//! A record the fold rejects has no effect at all: its writes are rolled back at once, and the
//! rejection is remembered under its order key. Rejections are re-decided on redo, because a
//! late record can change what a later one sees.

mod order;
mod tracking;

pub use order::{ORDER_KEY_LEN, OrderKey};
pub use tracking::TrackingTxn;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::ops::ControlFlow;
use threads_protocol::engine::ApplyError;
use threads_protocol::engine::{Application, Verdict};
use threads_protocol::id::ThreadId;
use threads_protocol::identity::PublicKey;
use threads_protocol::log_id::LogId;
use threads_protocol::record::OpenedRecord;
use threads_protocol::store::key::KeyBuf;
use threads_protocol::store::{Direction, KeyRange, ReadTxn, StoreError, WriteTxn};

/// Key space of the operation log: `21 ‖ bytes(thread) ‖ order key` → [`OpEntry`].
pub const TAG_OPS: u8 = 0x21;
/// Key space of undo logs: `22 ‖ bytes(thread) ‖ order key` → [`UndoLog`].
pub const TAG_UNDO: u8 = 0x22;
/// Key space of rejections: `23 ‖ bytes(thread) ‖ order key` → UTF-8 reason.
pub const TAG_REJECTED: u8 = 0x23;
/// Key space of the folded state: `30 ‖ bytes(thread) ‖ ...`, owned by the [`Fold`].
pub const TAG_STATE: u8 = 0x30;

/// What a fold learns about the record it applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordInfo {
    /// The thread.
    pub thread: ThreadId,
    /// Its position in the total order.
    pub order: OrderKey,
    /// Its log.
    pub log: LogId,
    /// The identity that wrote it.
    pub author: PublicKey,
    /// The writer's clock at creation (Unix nanoseconds), as the writer claims it.
    pub time: u64,
}

/// The verdict of a fold on one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The record's writes stand.
    Applied,
    /// The record has no effect, for this reason.
    Rejected(String),
}

/// A deterministic state machine over a thread's records.
///
/// `apply` must depend only on the state it reads through `state` (under [`state_prefix`] of
/// the thread), the record and the body: no clock, no randomness, no memory of earlier calls
/// that is not in the store. It may return `Err` only for failures of the machine itself (a
/// storage error): that aborts the whole engine transaction and the record is retried later.
pub trait Fold {
    /// Applies one record's body at its place in the order.
    fn apply(
        &mut self,
        state: &mut dyn WriteTxn,
        record: &RecordInfo,
        body: &[u8],
    ) -> Result<Outcome, ApplyError>;
}

/// What is kept of every record, to redo it without opening it again:
/// `{"a": author protobuf, "b": body, "l": log id, "t": time}`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OpEntry {
    /// Author identity (libp2p protobuf, 36 bytes).
    #[serde(rename = "a", with = "serde_bytes")]
    pub author: Vec<u8>,
    /// The record's body.
    #[serde(rename = "b", with = "serde_bytes")]
    pub body: Vec<u8>,
    /// The writer's time.
    #[serde(rename = "t")]
    pub time: u64,
}

/// The values a record's writes replaced: `[[key, old value or null], ...]` in key order.
pub type UndoLog = Vec<(serde_bytes::ByteBuf, Option<serde_bytes::ByteBuf>)>;

/// Counters of the work done by a [`Convergent`] (for benchmarks and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FoldStats {
    /// Records applied, first time or redone.
    pub applied: u64,
    /// Records undone to make room for a late one.
    pub undone: u64,
    /// Records that arrived before records already applied.
    pub late: u64,
}

/// The engine's application hook that folds records in the total order (see the module docs).
#[derive(Debug, Default)]
pub struct Convergent<F> {
    fold: F,
    stats: FoldStats,
}

fn prefix(tag: u8, thread: &ThreadId) -> Vec<u8> {
    KeyBuf::new(tag).bytes(thread.as_bytes()).into_vec()
}

fn keyed(tag: u8, thread: &ThreadId, order: &OrderKey) -> Vec<u8> {
    let mut k = prefix(tag, thread);
    k.extend_from_slice(&order.to_bytes());
    k
}

/// The prefix under which the fold keeps the state of `thread`.
pub fn state_prefix(thread: &ThreadId) -> Vec<u8> {
    prefix(TAG_STATE, thread)
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_ipld_dagcbor::to_vec(v).expect("encoding plain maps and byte strings cannot fail")
}

impl<F: Fold> Convergent<F> {
    /// Wraps a fold.
    pub fn new(fold: F) -> Self {
        Convergent {
            fold,
            stats: FoldStats::default(),
        }
    }

    /// The wrapped fold.
    pub fn fold(&self) -> &F {
        &self.fold
    }

    /// The wrapped fold, mutably.
    pub fn fold_mut(&mut self) -> &mut F {
        &mut self.fold
    }

    /// Work counters since creation.
    pub fn stats(&self) -> FoldStats {
        self.stats
    }

    /// Folds one record in at its place in the order, in `txn`; returns its outcome.
    pub fn fold_in(
        &mut self,
        txn: &mut dyn WriteTxn,
        info: &RecordInfo,
        body: &[u8],
    ) -> Result<Outcome, ApplyError> {
        let _span = tracing::debug_span!(
            "fold_in",
            thread = %info.thread,
            clock = info.order.clock,
            counter = info.order.counter
        )
        .entered();
        let thread = &info.thread;
        let own = keyed(TAG_OPS, thread, &info.order);
        // Records already applied after this one, in order.
        let mut later: Vec<(OrderKey, OpEntry)> = Vec::new();
        let ops = prefix(TAG_OPS, thread);
        let mut failure = None;
        txn.scan(KeyRange::after(&own), Direction::Forward, &mut |k, v| {
            if !k.starts_with(&ops) {
                return ControlFlow::Break(());
            }
            match (
                OrderKey::from_bytes(&k[ops.len()..]),
                serde_ipld_dagcbor::from_slice::<OpEntry>(v),
            ) {
                (Some(o), Ok(e)) => later.push((o, e)),
                _ => failure = Some(corrupt("operation log entry", "undecodable")),
            }
            ControlFlow::Continue(())
        })?;
        if let Some(e) = failure {
            return Err(e.into());
        }
        if !later.is_empty() {
            self.stats.late += 1;
            tracing::debug!(
                redo = later.len(),
                "late record: undoing the records after it"
            );
        }
        for (order, _) in later.iter().rev() {
            self.undo(txn, thread, order)?;
        }
        let outcome = self.run(txn, info, body)?;
        let entry = OpEntry {
            author: info.author.to_protobuf().to_vec(),
            body: body.to_vec(),
            time: info.time,
        };
        txn.put(&own, &encode(&entry))?;
        for (order, entry) in later {
            let author = PublicKey::from_protobuf(&entry.author)
                .map_err(|e| corrupt("operation log author", e))?;
            let log = LogId::from_bytes(&order.log).map_err(|e| corrupt("operation log id", e))?;
            let redo = RecordInfo {
                thread: *thread,
                order,
                log,
                author,
                time: entry.time,
            };
            self.run(txn, &redo, &entry.body)?;
        }
        Ok(outcome)
    }

    /// Applies one record through a tracking transaction and keeps its undo log, or rolls its
    /// writes back and records the rejection.
    fn run(
        &mut self,
        txn: &mut dyn WriteTxn,
        info: &RecordInfo,
        body: &[u8],
    ) -> Result<Outcome, ApplyError> {
        self.stats.applied += 1;
        let mut tracked = TrackingTxn::new(txn);
        let outcome = self.fold.apply(&mut tracked, info, body)?;
        let undo = tracked.into_undo_log();
        let rejected = keyed(TAG_REJECTED, &info.thread, &info.order);
        let undo_key = keyed(TAG_UNDO, &info.thread, &info.order);
        match &outcome {
            Outcome::Applied => {
                txn.put(&undo_key, &encode(&undo))?;
                txn.delete(&rejected)?;
            }
            Outcome::Rejected(reason) => {
                tracing::debug!(%reason, "record rejected by the fold");
                restore(txn, &undo)?;
                txn.delete(&undo_key)?;
                txn.put(&rejected, reason.as_bytes())?;
            }
        }
        Ok(outcome)
    }

    /// Reverts the writes of one applied record.
    fn undo(
        &mut self,
        txn: &mut dyn WriteTxn,
        thread: &ThreadId,
        order: &OrderKey,
    ) -> Result<(), StoreError> {
        self.stats.undone += 1;
        let undo_key = keyed(TAG_UNDO, thread, order);
        if let Some(bytes) = txn.get(&undo_key)? {
            let undo: UndoLog =
                serde_ipld_dagcbor::from_slice(&bytes).map_err(|e| corrupt("undo log", e))?;
            restore(txn, &undo)?;
            txn.delete(&undo_key)?;
        }
        txn.delete(&keyed(TAG_REJECTED, thread, order))?;
        Ok(())
    }
}

/// Puts back the values an undo log holds.
fn restore(txn: &mut dyn WriteTxn, undo: &UndoLog) -> Result<(), StoreError> {
    for (key, old) in undo.iter().rev() {
        match old {
            Some(v) => txn.put(key, v)?,
            None => {
                txn.delete(key)?;
            }
        }
    }
    Ok(())
}

impl<F: Fold> Application for Convergent<F> {
    fn apply(
        &mut self,
        txn: &mut dyn WriteTxn,
        record: &OpenedRecord,
    ) -> Result<Verdict, ApplyError> {
        let r = record.record();
        let info = RecordInfo {
            thread: *r.thread(),
            order: OrderKey::of(r),
            log: *r.log(),
            author: *r.author(),
            time: record.time(),
        };
        match self.fold_in(txn, &info, record.body()) {
            Ok(Outcome::Applied) => Ok(Verdict::Accept),
            Ok(Outcome::Rejected(reason)) => Ok(Verdict::Reject(reason)),
            Err(e) => Err(e),
        }
    }
}

/// The reason a record was rejected by the fold, as it stands now (rejections are re-decided
/// when earlier records arrive late).
pub fn rejection(
    txn: &dyn ReadTxn,
    thread: &ThreadId,
    order: &OrderKey,
) -> Result<Option<String>, StoreError> {
    Ok(txn
        .get(&keyed(TAG_REJECTED, thread, order))?
        .map(|v| String::from_utf8_lossy(&v).into_owned()))
}

/// sha2-256 over every key and value of a thread's folded state, in key order: replicas that
/// hold the same records have the same digest.
pub fn state_digest(txn: &dyn ReadTxn, thread: &ThreadId) -> Result<[u8; 32], StoreError> {
    let p = state_prefix(thread);
    let mut h = Sha256::new();
    txn.scan(KeyRange::prefix(&p), Direction::Forward, &mut |k, v| {
        h.update((k.len() as u64).to_be_bytes());
        h.update(k);
        h.update((v.len() as u64).to_be_bytes());
        h.update(v);
        ControlFlow::Continue(())
    })?;
    Ok(h.finalize().into())
}
