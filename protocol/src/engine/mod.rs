//! The sans-IO replication engine: a [`Host`] owns every thread, log, head and key it knows and
//! speaks the peer protocol, but does no I/O.
//!
//! The driver feeds it inputs, each with the current time: messages from peers
//! ([`Host::handle_message`]), timer expiries ([`Host::handle_timeout`]), connection news
//! ([`Host::handle_connected`]) and commands (create a thread, write a record, ...). After every
//! input the driver drains [`Host::poll_output`] (messages to send, events) and re-arms its timer
//! with [`Host::poll_timeout`]. All randomness comes from the seeded RNG the host owns, so the
//! same seed and the same inputs give the same outputs.
//!
//! Verifying what peers send is the costly, pure part of ingest. A driver may do it on its own
//! threads before the engine: [`Host::verifier`] hands out a `Send` [`RecordVerifier`] (the
//! thread's keys, cloned), [`Inbound::check`] decodes a message, checks its proof and verifies
//! its records with it, and [`Host::handle_inbound`] stores the records of the resulting
//! [`CheckedMessage`] after re-checking that it is bound to this host and the keys it holds.
//! Only [`crate::record::verify`] makes the `VerifiedRecord`s such a message carries, so no
//! unverified record reaches the store this way either (see [`verify`] and spec/engine.md
//! §1.1). With [`Config::pull_window`], catch-up keeps several pages in flight so that the
//! driver checks the next pages while the engine stores one.
//!
//! Storage goes through the [`Store`] interface. A record is stored, its log head advanced and
//! the application hook run in one write transaction: all of it commits, or none of it does.
//! Every input stores its effects in at most one committed write transaction (spec/engine.md
//! §1); a store failure that no caller can be told about is reported as
//! [`Event::StoreFailed`].
//!
//! The engine emits `tracing` spans and events (inputs, commits, misbehaving peers, store
//! failures) and never installs a subscriber: without one they cost a check of a cached flag.

mod cid_index;
mod commands;
pub mod config;
pub mod error;
pub mod exchange;
mod ingest;
pub mod layout;
#[cfg(feature = "testing")]
pub mod loopback;
pub mod message;
pub mod output;
pub mod signing;
mod staged;
pub mod state;
mod sync;
pub mod verify;

pub use commands::{LogInfo, NewThread, ThreadInfo};
#[cfg(feature = "buggify")]
pub use config::Bugs;
pub use config::Config;
pub use error::{ApplyError, EngineError};
pub use output::{Event, Fork, Misbehaviour, Output, Subscription};
pub use verify::{
    CheckRange, CheckedBatch, CheckedMessage, CheckedRecord, InOrder, Inbound, RecordVerifier,
    Spread,
};

use crate::id::ThreadId;
use crate::identity::PrivateKey;
use crate::log_id::LogId;
use crate::record::RecordView;
use crate::rng::ProtocolRng;
use crate::store::{ReadTxn, Store, WriteTxn};
use state::ThreadState;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A host's identity on the network: the libp2p peer id of its Ed25519 key (same form as a
/// log id).
pub type PeerId = LogId;

/// Engine time in milliseconds since an epoch the driver picks (monotonic).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(pub u64);

impl Time {
    /// Milliseconds since the driver's epoch.
    pub fn as_millis(self) -> u64 {
        self.0
    }
    /// This time plus `ms` milliseconds.
    pub fn plus(self, ms: u64) -> Time {
        Time(self.0.saturating_add(ms))
    }
}

/// What the application hook decided about a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The record's events took effect.
    Accept,
    /// The record is kept (it is validly signed) but has no effect; the reason is recorded.
    Reject(String),
}

/// The application fed with every record a read-key holder accepts, in log order, inside the
/// write transaction that stores the record. Keep all state in the transaction: if `apply`
/// returns an error, or a later step fails, the transaction is dropped and
/// [`Application::rolled_back`] is called.
pub trait Application {
    /// Applies one opened record through `txn`. `Err` only for a failure of the machine (see
    /// [`ApplyError`]); a record the application refuses is `Ok(Verdict::Reject(..))`. A
    /// record from a peer is stored in `txn` before it is applied; the records of a local
    /// write are applied first and stored after them, in the same transaction (their
    /// signatures are made meanwhile, see [`signing`]).
    fn apply(
        &mut self,
        txn: &mut dyn WriteTxn,
        record: &RecordView<'_>,
    ) -> Result<Verdict, ApplyError>;

    /// Completes the batch of records applied since the last commit, in `txn`, just before the
    /// engine commits it (records that arrive together: one page or push of one log, or one
    /// local write). An application may defer work shared by the whole batch to this call (the
    /// document fold redoes the records it undid only once per batch). The verdicts `apply`
    /// returned stand. An error aborts the transaction like a failing `apply` on the batch's
    /// last record. The default does nothing.
    fn finish_batch(&mut self, txn: &mut dyn WriteTxn) -> Result<(), ApplyError> {
        let _ = txn;
        Ok(())
    }

    /// The transaction of the last `apply` calls was dropped; forget any cached effects.
    fn rolled_back(&mut self) {}
}

/// An application that accepts every record and keeps nothing (replication only).
#[derive(Clone, Copy, Debug, Default)]
pub struct AcceptAll;

impl Application for AcceptAll {
    fn apply(&mut self, _: &mut dyn WriteTxn, _: &RecordView<'_>) -> Result<Verdict, ApplyError> {
        Ok(Verdict::Accept)
    }
}

/// An outstanding pull of one log from one peer.
#[derive(Clone, Debug, PartialEq, Eq)]
struct PendingPull {
    peer: PeerId,
    from: u64,
    expires: Time,
    /// The counter the next page asked for ahead would start at.
    ahead: u64,
    /// Pages asked of `peer` and not answered yet (at most `Config::pull_window`).
    pages: u32,
    /// The counter the next outstanding page starts at, when the pages asked so far line up
    /// with what was stored (a short page breaks the line; the rest are then dropped).
    next_page: Option<u64>,
    /// Records asked per page: `Config::pull_page_records` (within `page_max_records`), or
    /// fewer once the peer answered a page short while holding more (its byte limit or its own
    /// record limit), so the pages asked ahead line up with what it sends.
    step: u64,
    /// Whether a page of this pull came back (so `step` fits the peer's pages): pages are
    /// asked for ahead only then, since pages asked at a wrong step would be dropped.
    sized: bool,
}

/// The replication engine of one host. See the [module docs](self).
pub struct Host<S: Store, A: Application> {
    config: Config,
    store: S,
    app: A,
    rng: ProtocolRng,
    /// Builds and signs the records of local writes ([`signing::Inline`] unless a driver sets
    /// another with [`Host::set_signer`]).
    signer: Box<dyn signing::Signer>,
    identity: PrivateKey,
    peer_id: PeerId,
    threads: BTreeMap<ThreadId, ThreadState>,
    schedule: BTreeSet<(Time, ThreadId)>,
    pulls: BTreeMap<(ThreadId, LogId), PendingPull>,
    outputs: VecDeque<Output>,
    /// The CID index's journal, mirrored in memory.
    cids: cid_index::CidIndex,
    /// Threads whose row (peers, invitations) changed in memory and is not stored yet. The
    /// change is stored with the records of the same input, or by [`Host::flush_rows`] at its
    /// end, so that one input writes at most one transaction.
    dirty: BTreeSet<ThreadId>,
    /// Threads whose digest round is due but whose messages are not made yet: they are made
    /// one thread at a time by [`Host::poll_output`], so a timeout queues no more than one
    /// thread's messages however many threads are due.
    due: VecDeque<ThreadId>,
    /// The members of `due`.
    due_set: BTreeSet<ThreadId>,
    /// Records pushed so far (for the planted `drop_every_7th_push` defect).
    #[cfg(feature = "buggify")]
    pushed: u64,
}

impl<S: Store, A: Application> Host<S, A> {
    /// Opens a host on `store`, loading every thread it holds. A store without a host identity
    /// gets one drawn from `rng` (or `identity`, when given), and keeps it.
    pub fn open(
        config: Config,
        store: S,
        app: A,
        mut rng: ProtocolRng,
        identity: Option<PrivateKey>,
        now: Time,
    ) -> Result<Self, EngineError> {
        let (identity, threads, cids) = {
            let mut txn = store.write()?;
            let identity = match txn.get(&layout::host_identity())? {
                Some(bytes) => PrivateKey::from_protobuf(&bytes).map_err(|e| {
                    crate::store::StoreError::Corrupt(format!("host identity: {e}"))
                })?,
                None => {
                    let key = identity.unwrap_or_else(|| PrivateKey::generate(&mut rng));
                    txn.put(&layout::host_identity(), &key.to_protobuf())?;
                    key
                }
            };
            let first = now.plus(config.sync_interval_min_ms).as_millis();
            let threads = state::load_threads(&txn, first, config.sync_interval_min_ms)?;
            let cids = cid_index::CidIndex::load(as_read(&txn), config.cid_journal_max)?;
            txn.commit()?;
            (identity, threads, cids)
        };
        let peer_id = identity.public().peer_id();
        let mut host = Host {
            config,
            store,
            app,
            rng,
            signer: Box::new(signing::Inline),
            identity,
            peer_id,
            threads: BTreeMap::new(),
            schedule: BTreeSet::new(),
            pulls: BTreeMap::new(),
            outputs: VecDeque::new(),
            cids,
            dirty: BTreeSet::new(),
            due: VecDeque::new(),
            due_set: BTreeSet::new(),
            #[cfg(feature = "buggify")]
            pushed: 0,
        };
        for (id, mut t) in threads {
            t.sync.deadline = host.jittered(now, t.sync.interval).as_millis();
            host.schedule.insert((Time(t.sync.deadline), id));
            host.threads.insert(id, t);
        }
        Ok(host)
    }

    /// This host's peer id.
    pub fn peer_id(&self) -> &PeerId {
        &self.peer_id
    }

    /// This host's identity key (the default author of records written without a token).
    pub fn identity(&self) -> &PrivateKey {
        &self.identity
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Runs the building and signing of local records with `signer` from now on (see
    /// [`signing`]); a driver with a spare core gives one that uses it.
    pub fn set_signer(&mut self, signer: Box<dyn signing::Signer>) {
        self.signer = signer;
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Shuts the host down and hands back its store (to close or reopen it).
    pub fn into_store(self) -> S {
        self.store
    }

    /// The application hook.
    pub fn app(&self) -> &A {
        &self.app
    }

    /// The store and the application hook at once (for an application that reads or
    /// dry-runs against the store outside the engine's transactions).
    pub fn store_and_app(&mut self) -> (&S, &mut A) {
        (&self.store, &mut self.app)
    }

    /// The application hook, mutably (for reads that need it; writes go through records).
    pub fn app_mut(&mut self) -> &mut A {
        &mut self.app
    }

    /// How many threads this host holds.
    pub fn thread_count(&self) -> usize {
        self.threads.len()
    }

    /// Ids of every thread this host holds, in byte order.
    pub fn thread_ids(&self) -> Vec<ThreadId> {
        self.threads.keys().cloned().collect()
    }

    /// The next output to act on, if any. Drain until `None` after every input.
    ///
    /// Digest rounds that a timeout made due are turned into messages here, one thread at a
    /// time, when the queue is empty (as quinn's `poll_transmit` makes packets on demand): no
    /// input queues more than one thread's worth of timer messages.
    pub fn poll_output(&mut self) -> Option<Output> {
        while self.outputs.is_empty() {
            let id = self.due.pop_front()?;
            self.due_set.remove(&id);
            self.digest_round(&id);
        }
        self.outputs.pop_front()
    }

    /// How many outputs are queued now (digest rounds not yet made are not counted).
    pub fn queued_outputs(&self) -> usize {
        self.outputs.len()
    }

    /// When [`Host::handle_timeout`] should next be called, if anything is scheduled: the
    /// earliest digest round of a thread or expiry of an outstanding pull.
    pub fn poll_timeout(&self) -> Option<Time> {
        let sync = self.schedule.first().map(|(t, _)| *t);
        let pull = self.pulls.values().map(|p| p.expires).min();
        match (sync, pull) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether this host holds the thread.
    pub fn has_thread(&self, thread: &ThreadId) -> bool {
        self.threads.contains_key(thread)
    }

    /// How many records of a thread peers reported that this host does not hold yet (0 when
    /// caught up with everything it heard of; `None` for an unknown thread).
    pub fn sync_lag(&self, thread: &ThreadId) -> Option<u64> {
        self.threads.get(thread).map(|t| t.lag())
    }

    /// The anti-entropy digest of a thread (what peers compare).
    pub fn digest(&self, thread: &ThreadId) -> Option<[u8; 32]> {
        self.threads.get(thread).map(|t| t.digest())
    }

    /// Checks the engine's memory against itself and its store, cheaply (for simulators and
    /// tests, after any input): every thread has exactly one timer, at its deadline; due digest
    /// rounds and pulls name held threads; every log's height and head equal its stored row,
    /// the record at the head is stored with the head's CID and none is stored after it.
    /// Returns what does not hold. It is [`check_memory_invariants`](Self::check_memory_invariants)
    /// then [`check_store_invariants`](Self::check_store_invariants).
    pub fn check_invariants(&self) -> Result<(), String> {
        self.check_memory_invariants()?;
        self.check_store_invariants()
    }

    /// The part of [`check_invariants`](Self::check_invariants) that reads memory only: every
    /// thread has exactly one timer, at its deadline; due digest rounds and pulls name held
    /// threads. A simulator runs it after every input.
    pub fn check_memory_invariants(&self) -> Result<(), String> {
        if self.schedule.len() != self.threads.len() {
            return Err(format!(
                "{} timers for {} threads",
                self.schedule.len(),
                self.threads.len()
            ));
        }
        for (id, t) in &self.threads {
            if !self.schedule.contains(&(Time(t.sync.deadline), *id)) {
                return Err(format!("thread {id} has no timer at its deadline"));
            }
        }
        if self.due.len() != self.due_set.len()
            || self.due.iter().any(|id| !self.due_set.contains(id))
        {
            return Err("due digest rounds out of step".into());
        }
        if let Some((id, _)) = self
            .pulls
            .keys()
            .find(|(id, _)| !self.threads.contains_key(id))
        {
            return Err(format!("a pull for thread {id}, which is not held"));
        }
        Ok(())
    }

    /// The part of [`check_invariants`](Self::check_invariants) that reads the store: every
    /// log's height and head equal its stored row, the record at the head is stored with the
    /// head's CID and none is stored after it. Its result depends only on the logs in memory
    /// and the committed store, so a caller that knows neither changed since a passing check
    /// (a simulator watching the store's commit count) may skip it.
    pub fn check_store_invariants(&self) -> Result<(), String> {
        let txn = self.store.read().map_err(|e| format!("store: {e}"))?;
        for (id, t) in &self.threads {
            for (log, state) in &t.logs {
                let row = txn
                    .get(&layout::log(id, log))
                    .map_err(|e| format!("store: {e}"))?
                    .ok_or_else(|| format!("log {log} of thread {id} has no stored row"))?;
                let row: state::LogRow = crate::record::wire::decode_plain(&row)
                    .map_err(|e| format!("log row of {log}: {e}"))?;
                if row.height != state.height.0 || row.head != state.head {
                    return Err(format!(
                        "log {log} of thread {id}: height {} in memory, {} stored",
                        state.height.0, row.height
                    ));
                }
                if let Some(counter) = crate::counter::LogCounter::new(state.height.0) {
                    let head = commands::read_bundle(as_read(&txn), id, log, counter)
                        .map_err(|e| format!("store: {e}"))?
                        .map(|b| b.cid());
                    if head != state.head {
                        return Err(format!(
                            "log {log} of thread {id}: the record at height {} is not the head",
                            state.height.0
                        ));
                    }
                }
                let next = state.height.next_counter();
                if txn
                    .get(&layout::record(id, log, next))
                    .map_err(|e| format!("store: {e}"))?
                    .is_some()
                {
                    return Err(format!(
                        "log {log} of thread {id}: a record is stored beyond height {}",
                        state.height.0
                    ));
                }
            }
        }
        // The journal is compared whole only while it is short, to keep the check cheap.
        if self.cids.journal_len() <= 64 {
            self.cids.matches_store(as_read(&txn))?;
        }
        Ok(())
    }

    /// A time `interval` ± jitter after `now`.
    fn jittered(&mut self, now: Time, interval: u64) -> Time {
        use rand_core::Rng;
        let j = self.config.jitter_percent.min(50);
        if j == 0 || interval == 0 {
            return now.plus(interval);
        }
        let spread = interval * 2 * j / 100;
        let offset = if spread == 0 {
            0
        } else {
            self.rng.next_u64() % (spread + 1)
        };
        now.plus(interval - interval * j / 100 + offset)
    }

    /// Marks a thread active: its next digest round comes soon and back-off restarts.
    fn touch(&mut self, thread: &ThreadId, now: Time) {
        let min = self.config.sync_interval_min_ms;
        let soon = self.jittered(now, min);
        if let Some(t) = self.threads.get_mut(thread) {
            t.sync.interval = min;
            if soon.as_millis() < t.sync.deadline {
                self.schedule.remove(&(Time(t.sync.deadline), *thread));
                t.sync.deadline = soon.as_millis();
                self.schedule.insert((soon, *thread));
            }
        }
    }

    fn emit(&mut self, event: Event) {
        self.outputs.push_back(Output::Event(event));
    }

    /// Stores the rows of every thread marked dirty, in one write transaction. A failure is
    /// reported as [`Event::StoreFailed`] and the rows stay dirty, to be stored by the next
    /// input.
    fn flush_rows(&mut self) {
        if self.dirty.is_empty() {
            return;
        }
        let rows: Vec<(ThreadId, state::ThreadRow)> = self
            .dirty
            .iter()
            .filter_map(|id| self.threads.get(id).map(|t| (*id, t.row())))
            .collect();
        let result = (|| -> Result<(), crate::store::StoreError> {
            let mut txn = self.store.write()?;
            for (id, row) in &rows {
                txn.put(&layout::thread(id), &crate::record::wire::encode(row))?;
            }
            txn.commit()
        })();
        match result {
            Ok(()) => self.dirty.clear(),
            Err(error) => self.store_failed(None, "storing thread rows", error),
        }
    }

    /// Reports a store failure that no caller can be told about.
    fn store_failed(
        &mut self,
        thread: Option<ThreadId>,
        during: &'static str,
        error: crate::store::StoreError,
    ) {
        tracing::warn!(thread = ?thread, during, %error, "store failed");
        self.emit(Event::StoreFailed {
            thread,
            during,
            error,
        });
    }

    fn misbehaved(&mut self, peer: &PeerId, reason: Misbehaviour) {
        tracing::debug!(%peer, %reason, "peer misbehaved");
        self.emit(Event::PeerMisbehaved {
            peer: *peer,
            reason: Box::new(reason),
        });
    }
}

/// A read transaction's view as a trait object, for helpers shared by read and write paths.
fn as_read<T: ReadTxn>(txn: &T) -> &dyn ReadTxn {
    txn
}
