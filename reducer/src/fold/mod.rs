//! Convergence by construction: the state of a thread is the fold of all its accepted records in
//! one total order, whatever order they arrived in.
//!
//! The order is (Lamport clock, log id, counter). [`Convergent`] wraps a deterministic [`Fold`]
//! and plugs into the replication engine as its application hook. A record that arrives "in the
//! past" (before records already applied, in that order) is folded in by deterministic undo and
//! redo: later records are undone newest first (every write a record made is logged with the
//! value it replaced), the late record is applied, and the undone records are applied again. So
//! every replica holding the same records holds byte-identical state.
//!
//! Three [`Strategy`]s choose what is undone; all give the same bytes:
//!
//! * [`Strategy::Reference`] ([`Convergent::fold_in`]): per record, the whole tail after it is
//!   undone and redone. Simple and slow (records × tail); kept as the reference model.
//! * [`Strategy::WholeTail`]: records that arrive together (one engine batch) share one undo of
//!   the tail and one redo, in merged order.
//! * [`Strategy::Dependencies`] (the default): one rewind per batch, and only the records whose
//!   run can depend on the late ones are undone and redone. Every run's *footprint* (which state
//!   it read and wrote, mapped to dependency tokens by [`Fold::dependencies`]) is stored, and
//!   indexed from tokens to records once the record has *settled* (the thread's clock has moved
//!   a block past it, see [`Convergent::with_settle_shift`]): the records to undo are found by
//!   look-ups in the index and by reading the footprints of the few recent records, not by
//!   scans of the tail. The rule and the argument for byte-identical results are in
//!   `spec/convergence.md`.
//!
//! A record the fold rejects has no effect at all: its writes are rolled back at once, and the
//! rejection is remembered under its order key. Rejections are re-decided on redo, because a
//! late record can change what a later one sees.
//!
//! This module holds the fold's contract and the [`Convergent`] wrapper's undo and redo; the
//! submodules hold the key spaces (`keys`), the operation log (`oplog`), footprints and the
//! dependency index (`footprint`), which records are in the index (`settle`), dependency
//! tokens, order keys, run tracking, undo logs, the layout version and digests.

mod dependency;
mod digest;
mod footprint;
mod keys;
mod layout;
mod oplog;
mod order;
mod recent;
mod settle;
mod tracking;
mod undo;

pub use dependency::{Access, Dependency, Usage};
pub use digest::{fold_digest, state_digest};
pub use footprint::{Footprint, MAX_FOOTPRINT_TOKENS, TOKEN_HASH_LEN};
use footprint::{conflicts_after, index_entry, load_footprint, store_footprint};
pub use keys::{
    TAG_DEPENDENTS, TAG_FOOTPRINT, TAG_OPS, TAG_REJECTED, TAG_STATE, TAG_UNDO, op_key, prefix,
    state_prefix,
};
use keys::{dependents_prefix, keyed, orders_after};
pub use layout::{
    LAYOUT_VERSION, LayoutError, MAX_SETTLE_SHIFT, TAG_LAYOUT, TAG_THREAD_NAME, THREAD_TAG_LEN,
    check_layout, thread_tag,
};
pub use oplog::{OpEntry, record_body};
pub use order::{ORDER_KEY_LEN, OrderKey};
use settle::Frontier;
pub use settle::SETTLE_SHIFT;
pub use tracking::TrackingTxn;

use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use threads_protocol::engine::{Application, ApplyError, Verdict};
use threads_protocol::id::ThreadId;
use threads_protocol::identity::PublicKey;
use threads_protocol::log_id::LogId;
use threads_protocol::record::RecordView;
use threads_protocol::store::{Direction, KeyRange, ReadTxn, StoreError, WriteTxn};

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

    /// The dependency tokens of one state access of a run (pushed to `out`).
    ///
    /// Contract: whenever two runs access one key and at least one of them writes it, their
    /// tokens must conflict (share a token with conflicting [`Usage`]s); a write of a key
    /// inside a range another run scanned counts. More tokens, or coarser ones, are always
    /// correct and only cost undo and redo. The default maps every access to
    /// [`Dependency::everything`]: every record depends on every earlier one.
    fn dependencies(&self, thread: &ThreadId, access: Access<'_>, out: &mut Vec<Dependency>) {
        let _ = (thread, access);
        out.push(Dependency::everything());
    }
}

/// The values a record's writes replaced: `[[key, old value or null], ...]` in key order
/// (stored in the compact encoding of `spec/convergence.md` §3).
pub type UndoLog = Vec<(serde_bytes::ByteBuf, Option<serde_bytes::ByteBuf>)>;

/// Counters of the work done by a [`Convergent`] (for benchmarks and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FoldStats {
    /// Runs of records: first applications, redos and discarded runs.
    pub applied: u64,
    /// Records undone to make room for a late one.
    pub undone: u64,
    /// Records applied again after being undone.
    pub redone: u64,
    /// Runs discarded because they met a record that had to be undone first
    /// ([`Strategy::Dependencies`] only).
    pub retried: u64,
    /// Records that arrived before records already applied.
    pub late: u64,
}

/// Which records a [`Convergent`] undoes to fold a late record in (see the module docs). All
/// strategies leave byte-identical stores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Strategy {
    /// Every record on its own: the whole tail after it is undone and redone
    /// ([`Convergent::fold_in`]). The reference model.
    Reference,
    /// One undo of the whole tail and one redo per batch.
    WholeTail,
    /// One rewind per batch, undoing only the records that can depend on the late ones.
    #[default]
    Dependencies,
}

/// The engine's application hook that folds records in the total order (see the module docs).
#[derive(Debug, Default)]
pub struct Convergent<F> {
    fold: F,
    stats: FoldStats,
    strategy: Strategy,
    /// Records undone in the current batch and not redone yet, per thread.
    pending: BTreeMap<ThreadId, BTreeSet<OrderKey>>,
    /// Threads whose applied records were all folded with footprints (`true`), or not
    /// (`false`: a store written before footprints existed; such a thread is folded with
    /// [`Strategy::WholeTail`]).
    tracked: BTreeMap<ThreadId, bool>,
    /// The last run's emptied key map, for the next run.
    spare_keys: tracking::KeyMap,
    /// The settle shift given to threads whose first record this wrapper folds.
    settle_shift: u8,
    /// The settle frontier of each thread the open batch folds records of (read from the
    /// store when the batch first meets the thread, raised as records are added).
    frontiers: BTreeMap<ThreadId, Frontier>,
    /// What the open batch keeps of each thread's recent footprints.
    recent: BTreeMap<ThreadId, recent::RecentSlot>,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_ipld_dagcbor::to_vec(v).expect("encoding plain maps and byte strings cannot fail")
}

impl<F: Fold> Convergent<F> {
    /// Wraps a fold, with the default [`Strategy::Dependencies`].
    pub fn new(fold: F) -> Self {
        Self::with_strategy(fold, Strategy::default())
    }

    /// Wraps a fold, folding late records with `strategy`.
    pub fn with_strategy(fold: F, strategy: Strategy) -> Self {
        Convergent {
            fold,
            stats: FoldStats::default(),
            strategy,
            pending: BTreeMap::new(),
            tracked: BTreeMap::new(),
            spare_keys: tracking::KeyMap::default(),
            settle_shift: SETTLE_SHIFT,
            frontiers: BTreeMap::new(),
            recent: BTreeMap::new(),
        }
    }

    /// Gives threads whose first record this wrapper folds the settle shift `shift` (at most
    /// [`MAX_SETTLE_SHIFT`]) instead of [`SETTLE_SHIFT`]: their records enter the dependency
    /// index in blocks of 2^`shift` clocks. A thread keeps the shift it was first folded with
    /// (it is stored with its tag), so wrappers of one store may differ. Tests use small
    /// shifts to exercise settled and recent records with short histories.
    pub fn with_settle_shift(mut self, shift: u8) -> Self {
        self.settle_shift = shift.min(MAX_SETTLE_SHIFT);
        self
    }

    /// The strategy in use.
    pub fn strategy(&self) -> Strategy {
        self.strategy
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

    /// Folds one record in at its place in the order, in `txn`, with the reference model: the
    /// whole tail after it is undone and redone now, whatever the strategy. Finishes an open
    /// batch first. Returns the record's outcome.
    pub fn fold_in(
        &mut self,
        txn: &mut dyn WriteTxn,
        info: &RecordInfo,
        body: &[u8],
    ) -> Result<Outcome, ApplyError> {
        self.fold_in_with(txn, info, body, false)
    }

    /// [`Self::fold_in`]; `stored`: the engine stores the record, so its body is not copied.
    fn fold_in_with(
        &mut self,
        txn: &mut dyn WriteTxn,
        info: &RecordInfo,
        body: &[u8],
        stored: bool,
    ) -> Result<Outcome, ApplyError> {
        let _span = fold_span(info);
        self.finish(txn)?;
        let thread = &info.thread;
        self.frontiers.remove(thread);
        self.frontier(txn, thread)?;
        let own = keyed(TAG_OPS, thread, &info.order);
        // Records already applied after this one, in order.
        let later = orders_after(txn, &prefix(TAG_OPS, thread), &info.order)?;
        if !later.is_empty() {
            self.stats.late += 1;
        }
        for order in later.iter().rev() {
            self.undo(txn, thread, order)?;
        }
        let (outcome, _) = self.run(txn, info, body)?;
        txn.put(&own, &encode(&self.entry(info, body, stored)))?;
        self.raise(txn, thread, info.order.clock)?;
        for order in later {
            self.stats.redone += 1;
            let (redo, body) = self.load(txn, thread, order)?;
            self.run(txn, &redo, &body)?;
        }
        self.frontiers.clear();
        self.recent.clear();
        Ok(outcome)
    }

    /// Folds one record of a batch in, with the wrapper's strategy, and returns its outcome.
    /// Records undone to make room for it may stay undone until [`Self::finish`], which must
    /// be called before the transaction commits (the engine does, through
    /// [`Application::finish_batch`]).
    ///
    /// The outcome is final when the records of a batch come in ascending order (the engine
    /// hands over one log's records in log order, whose clocks increase): every record ordered
    /// before this one is applied again before it runs.
    pub fn add(
        &mut self,
        txn: &mut dyn WriteTxn,
        info: &RecordInfo,
        body: &[u8],
    ) -> Result<Outcome, ApplyError> {
        self.add_with(txn, info, body, false)
    }

    /// [`Self::add`]; `stored`: the engine stores the record, so its body is not copied.
    fn add_with(
        &mut self,
        txn: &mut dyn WriteTxn,
        info: &RecordInfo,
        body: &[u8],
        stored: bool,
    ) -> Result<Outcome, ApplyError> {
        let _span = fold_span(info);
        if self.strategy == Strategy::Reference {
            return self.fold_in_with(txn, info, body, stored);
        }
        let thread = info.thread;
        // Read once per batch (`finish` and `abandon` forget it).
        self.frontier(txn, &thread)?;
        self.tracked(txn, &thread)?;
        // Everything before this record must stand before it runs.
        while let Some(o) = self.first_pending(&thread, Some(&info.order)) {
            self.redo(txn, &thread, o)?;
        }
        let own = keyed(TAG_OPS, &thread, &info.order);
        if keys::any_record_after(txn, &thread, &info.order)? {
            self.stats.late += 1;
            tracing::debug!("late record: later records are undone as far as they depend on it");
        }
        let outcome = self.place(txn, info, body)?;
        txn.put(&own, &encode(&self.entry(info, body, stored)))?;
        self.raise(txn, &thread, info.order.clock)?;
        Ok(outcome)
    }

    /// Redoes every record the open batch undid, in order. Does nothing when none is pending.
    pub fn finish(&mut self, txn: &mut dyn WriteTxn) -> Result<(), ApplyError> {
        let threads: Vec<ThreadId> = self.pending.keys().copied().collect();
        for thread in threads {
            while let Some(o) = self.first_pending(&thread, None) {
                self.redo(txn, &thread, o)?;
            }
        }
        self.pending.clear();
        self.frontiers.clear();
        self.recent.clear();
        Ok(())
    }

    /// Folds several records in as one batch ([`Self::add`] each, then [`Self::finish`]).
    pub fn fold_batch(
        &mut self,
        txn: &mut dyn WriteTxn,
        records: &[(RecordInfo, Vec<u8>)],
    ) -> Result<Vec<Outcome>, ApplyError> {
        let mut out = Vec::with_capacity(records.len());
        for (info, body) in records {
            out.push(self.add(txn, info, body)?);
        }
        self.finish(txn)?;
        Ok(out)
    }

    /// Forgets the open batch (its transaction was dropped).
    pub fn abandon(&mut self) {
        self.pending.clear();
        self.frontiers.clear();
        self.recent.clear();
    }

    /// Whether the dependency index of `thread` covers every applied record: its earliest
    /// record has a footprint (a store folded before footprints existed has none at all, and
    /// every record folded since has one). Checked once per thread while nothing of it is
    /// pending.
    fn tracked(&mut self, txn: &dyn ReadTxn, thread: &ThreadId) -> Result<bool, ApplyError> {
        if let Some(t) = self.tracked.get(thread) {
            return Ok(*t);
        }
        if self.pending.get(thread).is_some_and(|p| !p.is_empty()) {
            return Ok(true); // decided before this batch undid anything (see `add`)
        }
        let ops = prefix(TAG_OPS, thread);
        let mut first = None;
        txn.scan(KeyRange::prefix(&ops), Direction::Forward, &mut |k, _| {
            first = OrderKey::from_bytes(&k[ops.len()..]);
            ControlFlow::Break(())
        })?;
        let tracked = match first {
            None => true,
            Some(o) => txn.get(&keyed(TAG_FOOTPRINT, thread, &o))?.is_some(),
        };
        self.tracked.insert(*thread, tracked);
        Ok(tracked)
    }

    /// Takes the first pending record of `thread`, if it is before `before`.
    fn first_pending(&mut self, thread: &ThreadId, before: Option<&OrderKey>) -> Option<OrderKey> {
        let set = self.pending.get_mut(thread)?;
        let first = *set.first()?;
        if before.is_some_and(|b| first >= *b) {
            return None;
        }
        set.remove(&first);
        Some(first)
    }

    /// Applies again a record undone in this batch.
    fn redo(
        &mut self,
        txn: &mut dyn WriteTxn,
        thread: &ThreadId,
        order: OrderKey,
    ) -> Result<(), ApplyError> {
        self.stats.redone += 1;
        let (info, body) = self.load(txn, thread, order)?;
        self.place(txn, &info, &body)?;
        Ok(())
    }

    /// Runs a record that is not applied at its place, undoing first the applied records after
    /// it that its run conflicts with (which become pending).
    fn place(
        &mut self,
        txn: &mut dyn WriteTxn,
        info: &RecordInfo,
        body: &[u8],
    ) -> Result<Outcome, ApplyError> {
        let thread = info.thread;
        if self.strategy == Strategy::WholeTail || !self.tracked(txn, &thread)? {
            let pending = self.pending.get(&thread);
            let later: Vec<OrderKey> = orders_after(txn, &prefix(TAG_OPS, &thread), &info.order)?
                .into_iter()
                .filter(|o| pending.is_none_or(|p| !p.contains(o)))
                .collect();
            for o in later.iter().rev() {
                self.undo(txn, &thread, o)?;
            }
            self.pending.entry(thread).or_default().extend(later);
            return Ok(self.run(txn, info, body)?.0);
        }
        // Only a record after this one can conflict with its run: when the thread holds none
        // (a record appended at the end, the usual case), one look-up replaces the search.
        loop {
            let (outcome, footprint) = self.run(txn, info, body)?;
            if !keys::any_record_after(txn, &thread, &info.order)? {
                return Ok(outcome);
            }
            let frontier = self.frontier(txn, &thread)?;
            let recent = self.recent.entry(thread).or_default();
            let seeds = conflicts_after(txn, &thread, &info.order, &footprint, frontier, recent)?;
            if seeds.is_empty() {
                return Ok(outcome);
            }
            // The run may have seen writes of later records: take it back, undo them (and
            // whatever depends on them), and run again. Each round takes back at least one
            // later record, so the loop ends (spec/convergence.md §2.3); a round that takes
            // back none would repeat forever, and means the stored state is inconsistent.
            self.stats.retried += 1;
            self.undo(txn, &thread, &info.order)?;
            self.stats.undone -= 1; // not a record made room for: its own discarded run
            let seeds_found = seeds.len();
            if self.undo_closure(txn, &thread, seeds, frontier)? == 0 {
                return Err(ApplyError::Store(StoreError::Corrupt(format!(
                    "folding the record at clock {} (counter {} of its log) of thread {thread}: the {seeds_found} later \
                     record(s) its dependency look-up named as conflicting have no stored \
                     footprint, so they cannot be taken back; the fold's dependency index and \
                     footprints disagree (restore the repository from a backup)",
                    info.order.clock, info.order.counter
                ))));
            }
        }
    }

    /// Applies one record through a tracking transaction and keeps its undo log and footprint,
    /// or rolls its writes back and records the rejection (and its footprint).
    fn run(
        &mut self,
        txn: &mut dyn WriteTxn,
        info: &RecordInfo,
        body: &[u8],
    ) -> Result<(Outcome, Footprint), ApplyError> {
        self.stats.applied += 1;
        let mut tracked = TrackingTxn::reusing(txn, std::mem::take(&mut self.spare_keys));
        let outcome = self.fold.apply(&mut tracked, info, body)?;
        let mut run = tracked.into_tracked();
        self.spare_keys = std::mem::take(&mut run.spare);
        let footprint = self.footprint(&info.thread, &run);
        let undo = run.undo;
        let rejected = keyed(TAG_REJECTED, &info.thread, &info.order);
        let undo_key = keyed(TAG_UNDO, &info.thread, &info.order);
        match &outcome {
            Outcome::Applied => {
                txn.put(&undo_key, &undo::encode(&undo))?;
                txn.delete(&rejected)?;
            }
            Outcome::Rejected(reason) => {
                restore(txn, &undo)?;
                txn.delete(&undo_key)?;
                txn.put(&rejected, reason.as_bytes())?;
            }
        }
        let settled = self.frontier(txn, &info.thread)?.settled(info.order.clock);
        store_footprint(txn, &info.thread, &info.order, &footprint, settled)?;
        if !settled && let Some(tokens) = self.kept_recent(&info.thread) {
            tokens.add(&info.order, &footprint)?;
        }
        Ok((outcome, footprint))
    }

    /// Reverts the writes of one applied (or rejected) record and forgets its footprint;
    /// whether it had one (every record the fold holds has).
    fn undo(
        &mut self,
        txn: &mut dyn WriteTxn,
        thread: &ThreadId,
        order: &OrderKey,
    ) -> Result<bool, ApplyError> {
        self.stats.undone += 1;
        let undo_key = keyed(TAG_UNDO, thread, order);
        if let Some(bytes) = txn.get(&undo_key)? {
            let undo = undo::decode(&bytes)?;
            restore(txn, &undo)?;
            txn.delete(&undo_key)?;
        }
        txn.delete(&keyed(TAG_REJECTED, thread, order))?;
        if self.frontier(txn, thread)?.settled(order.clock) {
            for (usage, hash) in &load_footprint(txn, thread, order)? {
                txn.delete(&index_entry(thread, *usage, hash, order))?;
            }
        } else if self.kept_recent(thread).is_some() {
            let footprint = load_footprint(txn, thread, order)?;
            if let Some(tokens) = self.kept_recent(thread) {
                tokens.remove(order, &footprint);
            }
        }
        Ok(txn.delete(&keyed(TAG_FOOTPRINT, thread, order))?)
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

/// The tracing span of folding one record (free when no subscriber is installed).
fn fold_span(info: &RecordInfo) -> tracing::span::EnteredSpan {
    tracing::debug_span!(
        "fold",
        thread = %info.thread,
        clock = info.order.clock,
        counter = info.order.counter
    )
    .entered()
}

impl<F: Fold> Application for Convergent<F> {
    fn apply(
        &mut self,
        txn: &mut dyn WriteTxn,
        record: &RecordView<'_>,
    ) -> Result<Verdict, ApplyError> {
        let info = RecordInfo {
            thread: *record.thread,
            order: OrderKey::of_view(record),
            log: *record.log,
            author: *record.author,
            time: record.time,
        };
        // The engine stores the record in the same transaction (a peer's before this call, a
        // local write's after it), so the operation-log entry refers to it.
        match self.add_with(txn, &info, record.body, true) {
            Ok(Outcome::Applied) => Ok(Verdict::Accept),
            Ok(Outcome::Rejected(reason)) => Ok(Verdict::Reject(reason)),
            Err(e) => Err(e),
        }
    }

    fn finish_batch(&mut self, txn: &mut dyn WriteTxn) -> Result<(), ApplyError> {
        self.finish(txn)
    }

    fn rolled_back(&mut self) {
        self.abandon();
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
