//! Commands of the application and the API: create, join, read, write, pull, replicate, delete.

use super::cid_index::IndexChange;
use super::ingest::Prepared;
use super::message::Payload;
use super::signing::SigningJob;
use super::state::{LogState, SyncTimer, ThreadState};
use super::{Application, EngineError, Host, PeerId, Time, as_read, layout};
use crate::addr::ThreadAddr;
use crate::counter::{LamportClock, LogCounter, LogHeight};
use crate::id::{ThreadId, Variant};
use crate::identity::{PrivateKey, PublicKey};
use crate::key::ThreadKey;
use crate::log_id::LogId;
use crate::record::{self, RecordBundle, RecordDraft, RecordView, VerifiedRecord};
use crate::rng::{ProtocolRng, SeedableRng};
use crate::store::{Direction, KeyRange, ReadTxn, Store, WriteTxn};
use cid::Cid;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

/// Options of [`Host::create_thread`]; every field may be left to its default.
#[derive(Clone, Debug, Default)]
pub struct NewThread {
    /// The thread id; a random Raw id when `None`.
    pub id: Option<ThreadId>,
    /// The thread key; a random key with read key when `None`.
    pub key: Option<ThreadKey>,
    /// The identity whose log is created; the host identity when `None`.
    pub identity: Option<PublicKey>,
    /// The key of that log; a fresh key when `None`.
    pub log_key: Option<PrivateKey>,
}

/// What [`Host::thread_info`] reports about one log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogInfo {
    /// Log id.
    pub id: LogId,
    /// Private key, when this host writes the log.
    pub key: Option<PrivateKey>,
    /// Number of records.
    pub height: LogHeight,
    /// CID of the head record.
    pub head: Option<Cid>,
}

/// What [`Host::thread_info`] reports about a thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadInfo {
    /// Thread id.
    pub id: ThreadId,
    /// Thread key (service only on a replicator).
    pub key: ThreadKey,
    /// Logs in log-id order.
    pub logs: Vec<LogInfo>,
    /// Hosts known to hold the thread.
    pub peers: Vec<PeerId>,
}

impl<S: Store, A: Application> Host<S, A> {
    /// Creates a thread and the log of `identity` in it, in one store transaction: on error
    /// nothing is stored.
    pub fn create_thread(&mut self, now: Time, opts: NewThread) -> Result<ThreadInfo, EngineError> {
        let id = match opts.id {
            Some(id) => id,
            None => ThreadId::random(Variant::Raw, &mut self.rng),
        };
        if self.threads.contains_key(&id) {
            return Err(EngineError::ThreadExists);
        }
        if self.threads.len() >= self.config.max_threads {
            return Err(EngineError::Limit("maximum number of threads"));
        }
        if self.config.max_logs_per_thread == 0 {
            return Err(EngineError::Limit("maximum number of logs in a thread"));
        }
        let key = match opts.key {
            Some(k) => k,
            None => ThreadKey::random(&mut self.rng, true),
        };
        let mut thread = self.new_thread_state(now, key, BTreeSet::new());
        let identity = opts.identity.unwrap_or_else(|| self.identity.public());
        let log_key = match opts.log_key {
            Some(k) => k,
            None => PrivateKey::generate(&mut self.rng),
        };
        let log = log_key.public().peer_id();
        let state = LogState::empty(Some(log_key));
        let mut txn = self.store.write()?;
        txn.put(
            &layout::thread(&id),
            &crate::record::wire::encode(&thread.row()),
        )?;
        txn.put(
            &layout::log(&id, &log),
            &crate::record::wire::encode(&state.row()),
        )?;
        txn.put(
            &layout::identity_log(&id, &identity.to_protobuf()),
            log.as_bytes(),
        )?;
        txn.commit()?;
        thread.logs.insert(log, state);
        thread.identities.insert(identity.to_protobuf(), log);
        self.insert_thread(id, thread);
        self.thread_info(&id)
    }

    /// Joins a thread held by the peer at `addr`, with its key (a 32-byte key makes this host a
    /// replicator). Logs and records arrive from the peer through sync.
    pub fn join_thread(
        &mut self,
        now: Time,
        addr: &ThreadAddr,
        key: ThreadKey,
    ) -> Result<ThreadInfo, EngineError> {
        let peer = addr.peer().ok_or(EngineError::NoPeerInAddress)?;
        let id = addr.thread;
        let mut peers = BTreeSet::new();
        if peer != self.peer_id {
            peers.insert(peer);
        }
        self.register_thread(now, id, key, peers)?;
        self.send_heights(&id, &peer, true);
        self.thread_info(&id)
    }

    /// Everything this host knows about a thread.
    pub fn thread_info(&self, id: &ThreadId) -> Result<ThreadInfo, EngineError> {
        let t = self.threads.get(id).ok_or(EngineError::ThreadNotFound)?;
        Ok(ThreadInfo {
            id: *id,
            key: t.key.clone(),
            logs: t
                .logs
                .iter()
                .map(|(log, s)| LogInfo {
                    id: *log,
                    key: s.key.clone(),
                    height: s.height,
                    head: s.head,
                })
                .collect(),
            peers: t.peers.iter().cloned().collect(),
        })
    }

    /// The heads of every non-empty log of a thread: (log, height, head CID). Two hosts hold
    /// the same records of a thread exactly when their heads are equal.
    pub fn heads(&self, id: &ThreadId) -> Result<Vec<(LogId, LogHeight, Cid)>, EngineError> {
        let t = self.threads.get(id).ok_or(EngineError::ThreadNotFound)?;
        Ok(t.logs
            .iter()
            .filter_map(|(l, s)| s.head.map(|head| (*l, s.height, head)))
            .collect())
    }

    /// Every log of a thread held in memory, empty ones included: (log, height, head CID), in
    /// log-id order. What [`Host::check_store_invariants`] compares with the store, without
    /// the keys and peers [`Host::thread_info`] copies (a simulator reads it after every input).
    pub fn log_heads(
        &self,
        id: &ThreadId,
    ) -> Result<impl Iterator<Item = (&LogId, LogHeight, Option<&Cid>)> + '_, EngineError> {
        let t = self.threads.get(id).ok_or(EngineError::ThreadNotFound)?;
        Ok(t.logs.iter().map(|(l, s)| (l, s.height, s.head.as_ref())))
    }

    /// The version of each held thread's logs (see [`LogsVersion`](super::state::LogsVersion)):
    /// unchanged versions mean unchanged logs, heights and heads, so a simulator can tell
    /// cheaply that [`log_heads`](Self::log_heads) would say what it said before.
    pub fn logs_versions(
        &self,
    ) -> impl Iterator<Item = (&ThreadId, super::state::LogsVersion)> + '_ {
        self.threads.iter().map(|(id, t)| (id, t.logs.version()))
    }

    /// Creates the log `identity` writes to in a thread. With only a public log key given (as
    /// `log_key: None` and a known log id), use [`Host::add_log`] instead.
    pub fn create_log(
        &mut self,
        thread: &ThreadId,
        identity: &PublicKey,
        log_key: Option<PrivateKey>,
    ) -> Result<LogId, EngineError> {
        let t = self
            .threads
            .get(thread)
            .ok_or(EngineError::ThreadNotFound)?;
        if t.identities.contains_key(&identity.to_protobuf()) {
            return Err(EngineError::LogExists);
        }
        if t.logs.len() >= self.config.max_logs_per_thread {
            return Err(EngineError::Limit("maximum number of logs in a thread"));
        }
        let key = match log_key {
            Some(k) => k,
            None => PrivateKey::generate(&mut self.rng),
        };
        let log = key.public().peer_id();
        if t.logs.contains_key(&log) {
            return Err(EngineError::LogExists);
        }
        let state = LogState::empty(Some(key));
        let mut txn = self.store.write()?;
        txn.put(
            &layout::log(thread, &log),
            &crate::record::wire::encode(&state.row()),
        )?;
        txn.put(
            &layout::identity_log(thread, &identity.to_protobuf()),
            log.as_bytes(),
        )?;
        txn.commit()?;
        let t = self
            .threads
            .get_mut(thread)
            .ok_or(EngineError::ThreadNotFound)?;
        t.logs.insert(log, state);
        t.identities.insert(identity.to_protobuf(), log);
        Ok(log)
    }

    /// Registers a log known only by its public key; its records come through
    /// [`Host::add_record`] or sync.
    pub fn add_log(&mut self, thread: &ThreadId, log: &LogId) -> Result<(), EngineError> {
        let t = self
            .threads
            .get(thread)
            .ok_or(EngineError::ThreadNotFound)?;
        if t.logs.contains_key(log) {
            return Err(EngineError::LogExists);
        }
        if t.logs.len() >= self.config.max_logs_per_thread {
            return Err(EngineError::Limit("maximum number of logs in a thread"));
        }
        let state = LogState::empty(None);
        let mut txn = self.store.write()?;
        txn.put(
            &layout::log(thread, log),
            &crate::record::wire::encode(&state.row()),
        )?;
        txn.commit()?;
        if let Some(t) = self.threads.get_mut(thread) {
            t.logs.insert(*log, state);
        }
        Ok(())
    }

    /// Writes `body` as a new record of the log of `author` (the host identity when `None`),
    /// creating that log on first use. The new log, the record, its head and the application
    /// hook's effects are stored in one transaction: a rejected write stores nothing (not even
    /// the new log) and sends nothing. On success the record is pushed to the thread's peers.
    pub fn create_record(
        &mut self,
        now: Time,
        thread: &ThreadId,
        author: Option<&PublicKey>,
        body: &[u8],
        unix_nanos: u64,
    ) -> Result<VerifiedRecord, EngineError> {
        let _span = tracing::debug_span!("create_record", thread = %thread).entered();
        let author = author.cloned().unwrap_or_else(|| self.identity.public());
        let t = self
            .threads
            .get(thread)
            .ok_or(EngineError::ThreadNotFound)?;
        if !t.key.can_read() {
            return Err(EngineError::NoReadKey("cannot create records"));
        }
        let (log, new_log) = match t.identities.get(&author.to_protobuf()) {
            Some(log) => (*log, None),
            None => {
                if t.logs.len() >= self.config.max_logs_per_thread {
                    return Err(EngineError::Limit("maximum number of logs in a thread"));
                }
                let key = PrivateKey::generate(&mut self.rng);
                let log = key.public().peer_id();
                let t = self
                    .threads
                    .get(thread)
                    .ok_or(EngineError::ThreadNotFound)?;
                if t.logs.contains_key(&log) {
                    return Err(EngineError::LogExists);
                }
                let new = Box::new(NewLog {
                    key,
                    identity: author.to_protobuf(),
                });
                (log, Some(new))
            }
        };
        let t = self
            .threads
            .get(thread)
            .ok_or(EngineError::ThreadNotFound)?;
        let empty = LogState::empty(None);
        let state = t.logs.get(&log).unwrap_or(&empty);
        let log_key = match &new_log {
            Some(n) => n.key.clone(),
            None => state
                .key
                .clone()
                .ok_or_else(|| EngineError::NotLogOwner(log.to_string()))?,
        };
        let draft = RecordDraft {
            thread,
            author: &author,
            prev: state.head,
            counter: state.height.next_counter(),
            clock: LamportClock(t.clock.0.max(state.head_clock.0)).tick(),
            time: unix_nanos,
            body,
        };
        #[cfg(feature = "buggify")]
        let draft = if self.config.bugs.clock_from_local_time {
            RecordDraft {
                clock: LamportClock(now.as_millis().max(1)),
                ..draft
            }
        } else {
            draft
        };
        let key = t.key.clone();
        let opened = record::create(&draft, &log_key, &key, &mut self.rng)?;
        let rec = opened.record().clone();
        #[cfg(feature = "buggify")]
        if self.config.bugs.drop_local_writes {
            return Ok(rec);
        }
        // Handed over opened: the hook gets the body without decrypting it again.
        self.commit_prepared(
            now,
            thread,
            &log,
            vec![Prepared::Opened(opened)],
            Origin::Local(new_log),
        )
        .map_err(|(_, e)| e)?;
        Ok(rec)
    }

    /// Writes several bodies as consecutive records of the log of `author` (the host identity
    /// when `None`) in **one** store transaction: one durable commit for all of them (group
    /// commit). All or nothing: if the application hook rejects any of them, or storing fails,
    /// nothing is stored and the error is returned (callers then write them one by one to learn
    /// which failed). The log must exist already ([`EngineError::LogNotFound`] otherwise; the
    /// first write of an identity goes through [`Host::create_record`]).
    pub fn create_records(
        &mut self,
        now: Time,
        thread: &ThreadId,
        author: Option<&PublicKey>,
        bodies: &[Vec<u8>],
        unix_nanos: u64,
    ) -> Result<Vec<VerifiedRecord>, EngineError> {
        let author = author.cloned().unwrap_or_else(|| self.identity.public());
        let t = self
            .threads
            .get(thread)
            .ok_or(EngineError::ThreadNotFound)?;
        if !t.key.can_read() {
            return Err(EngineError::NoReadKey("cannot create records"));
        }
        let log = *t
            .identities
            .get(&author.to_protobuf())
            .ok_or(EngineError::LogNotFound)?;
        let state = t.logs.get(&log).ok_or(EngineError::LogNotFound)?;
        let log_key = state
            .key
            .clone()
            .ok_or_else(|| EngineError::NotLogOwner(log.to_string()))?;
        if bodies.is_empty() {
            return Ok(Vec::new());
        }
        let counter = state.height.next_counter();
        let clock = LamportClock(t.clock.0.max(state.head_clock.0)).tick();
        let job = SigningJob {
            thread: *thread,
            author,
            log_key,
            key: t.key.clone(),
            prev: state.head,
            counter,
            clock,
            time: unix_nanos,
            bodies: bodies.to_vec(),
            rng: ProtocolRng::from_rng(&mut self.rng),
        };
        let pending = self.signer.start(job);
        let mut views = Vec::with_capacity(bodies.len());
        let (mut counter, mut clock) = (counter, clock);
        for body in bodies {
            views.push(RecordView {
                thread,
                log: &log,
                author: &author,
                counter,
                clock,
                time: unix_nanos,
                body,
            });
            counter = counter.next();
            clock = clock.tick();
        }
        self.commit_local(now, thread, &log, &views, pending)
    }

    /// Adds a record signed elsewhere to a known log. It must be the next record of the log:
    /// its counter follows the head and its `prev` is the head. A validly signed record that the
    /// application hook rejects is stored with its verdict (see [`Host::rejection`]), exactly as
    /// when it arrives from a peer, so the log does not stall on it. Returns `false` when the
    /// record is already stored.
    pub fn add_record(
        &mut self,
        now: Time,
        thread: &ThreadId,
        log: &LogId,
        bundle: RecordBundle,
    ) -> Result<bool, EngineError> {
        let t = self
            .threads
            .get(thread)
            .ok_or(EngineError::ThreadNotFound)?;
        let state = t.logs.get(log).ok_or(EngineError::LogNotFound)?;
        let rec = record::verify(bundle, thread, log, t.key.service())?;
        if rec.counter().get() <= state.height.0 {
            let stored = self.record(thread, log, rec.counter())?;
            if stored.as_ref().map(|b| b.cid()) == Some(rec.cid()) {
                return Ok(false);
            }
            return Err(EngineError::PrevNotHead);
        }
        if rec.counter() != state.height.next_counter() {
            return Err(EngineError::NotNext {
                expected: state.height.next_counter().get(),
                got: rec.counter().get(),
            });
        }
        if rec.prev() != state.head {
            return Err(EngineError::PrevNotHead);
        }
        if rec.clock() <= state.head_clock {
            return Err(EngineError::Record(record::RecordError::Malformed {
                block: record::BlockKind::Record,
                what: "Lamport clock does not increase along the log",
            }));
        }
        self.commit_records(now, thread, log, vec![rec], Origin::Added)
            .map_err(|(_, e)| e)?;
        Ok(true)
    }

    /// The stored bundle of one record, if present.
    pub fn record(
        &self,
        thread: &ThreadId,
        log: &LogId,
        counter: LogCounter,
    ) -> Result<Option<RecordBundle>, EngineError> {
        let txn = self.store.read()?;
        read_bundle(as_read(&txn), thread, log, counter)
    }

    /// The stored bundle of a record found by its CID.
    pub fn record_by_cid(
        &self,
        cid: &Cid,
    ) -> Result<Option<(ThreadId, LogId, RecordBundle)>, EngineError> {
        let txn = self.store.read()?;
        let Some(target) = self.cids.target(as_read(&txn), cid)? else {
            return Ok(None);
        };
        let mut r = crate::store::key::KeyReader::new(&target);
        let corrupt = |w: &str| crate::store::StoreError::Corrupt(format!("cid index: {w}"));
        let thread = ThreadId::from_bytes(&r.bytes()?).map_err(|_| corrupt("thread"))?;
        let log = LogId::from_bytes(r.fixed(38)?).map_err(|_| corrupt("log"))?;
        let counter = LogCounter::new(r.u64()?).ok_or_else(|| corrupt("counter"))?;
        Ok(read_bundle(as_read(&txn), &thread, &log, counter)?.map(|b| (thread, log, b)))
    }

    /// Up to `max` stored bundles of a log, forward from `from`, within `max_bytes` (at least
    /// one record is returned when one exists).
    pub fn records(
        &self,
        thread: &ThreadId,
        log: &LogId,
        from: LogCounter,
        max: usize,
        max_bytes: usize,
    ) -> Result<Vec<Vec<u8>>, EngineError> {
        let txn = self.store.read()?;
        read_page(as_read(&txn), thread, log, from, max, max_bytes)
    }

    /// The reason the application gave for rejecting a record, if it did.
    pub fn rejection(
        &self,
        thread: &ThreadId,
        log: &LogId,
        counter: LogCounter,
    ) -> Result<Option<String>, EngineError> {
        let txn = self.store.read()?;
        Ok(txn
            .get(&layout::rejected(thread, log, counter))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// Starts a sync of a thread with every peer now: each is sent this host's heights and
    /// asked for its own. Progress shows as [`super::Event::RecordAdded`] events.
    pub fn pull_thread(&mut self, now: Time, id: &ThreadId) -> Result<(), EngineError> {
        let t = self.threads.get(id).ok_or(EngineError::ThreadNotFound)?;
        let peers: Vec<PeerId> = t.peers.iter().cloned().collect();
        for p in peers {
            self.send_heights(id, &p, true);
        }
        self.touch(id, now);
        Ok(())
    }

    /// Makes `peer` a replicator of the thread: it is sent the service key (only) and then
    /// pulls every log through sync.
    pub fn add_replicator(
        &mut self,
        now: Time,
        id: &ThreadId,
        peer: &PeerId,
    ) -> Result<(), EngineError> {
        let t = self.threads.get(id).ok_or(EngineError::ThreadNotFound)?;
        let new_peer = peer != &self.peer_id
            && !t.peers.contains(peer)
            && t.peers.len() < self.config.max_peers_per_thread;
        let new_invite = !t.invited.contains(peer);
        if new_peer || new_invite || self.dirty.contains(id) {
            // One transaction for the row with both changes; memory follows only on success.
            let mut row = t.row();
            let bytes = || serde_bytes::ByteBuf::from(peer.as_bytes().to_vec());
            if new_peer {
                row.peers.push(bytes());
            }
            if new_invite {
                row.invited.push(bytes());
            }
            let mut txn = self.store.write()?;
            txn.put(&layout::thread(id), &crate::record::wire::encode(&row))?;
            txn.commit()?;
            self.dirty.remove(id);
            if let Some(t) = self.threads.get_mut(id) {
                t.invited.insert(*peer);
            }
            if new_peer {
                self.add_peer(id, peer);
                self.dirty.remove(id);
            }
        }
        self.send_invite(id, peer);
        self.touch(id, now);
        Ok(())
    }

    /// Deletes a thread: its keys, logs, records and verdicts. The application's own keys
    /// under tags from [`layout::FIRST_APP_TAG`] are the application's to delete.
    pub fn delete_thread(&mut self, _now: Time, id: &ThreadId) -> Result<(), EngineError> {
        let t = self.threads.get(id).ok_or(EngineError::ThreadNotFound)?;
        let mut txn = self.store.write()?;
        let mut cids = Vec::new();
        for tag in [
            layout::TAG_LOG,
            layout::TAG_RECORD,
            layout::TAG_REJECTED,
            layout::TAG_IDENTITY_LOG,
        ] {
            let prefix = layout::thread_prefix(tag, id);
            let mut keys = Vec::new();
            txn.scan(
                KeyRange::prefix(&prefix),
                Direction::Forward,
                &mut |k, v| {
                    keys.push(k.to_vec());
                    if tag == layout::TAG_RECORD
                        && let Ok(b) = RecordBundle::decode(v)
                    {
                        cids.push(b.cid());
                    }
                    ControlFlow::Continue(())
                },
            )?;
            for k in keys {
                txn.delete(&k)?;
            }
        }
        let mut removed = Vec::new();
        for cid in &cids {
            self.cids.remove(&mut txn, cid, &mut removed)?;
        }
        txn.delete(&layout::thread(id))?;
        txn.commit()?;
        self.cids.committed(IndexChange::Removed(removed));
        let deadline = t.sync.deadline;
        self.schedule.remove(&(Time(deadline), *id));
        self.threads.remove(id);
        self.pulls.retain(|(t, _), _| t != id);
        self.due.retain(|t| t != id);
        self.due_set.remove(id);
        Ok(())
    }

    pub(super) fn new_thread_state(
        &mut self,
        now: Time,
        key: ThreadKey,
        peers: BTreeSet<PeerId>,
    ) -> ThreadState {
        let interval = self.config.sync_interval_min_ms;
        let deadline = self.jittered(now, interval).as_millis();
        ThreadState {
            proof: super::message::ProofKey::new(key.service()),
            key,
            logs: super::state::Logs::default(),
            identities: BTreeMap::new(),
            peers,
            invited: BTreeSet::new(),
            clock: LamportClock(0),
            sync: SyncTimer { deadline, interval },
            peer_heights: BTreeMap::new(),
            exchanges: super::exchange::Exchanges::default(),
        }
    }

    /// Sends the invitation to replicate `id` (its service key) to `peer`.
    pub(super) fn send_invite(&mut self, id: &ThreadId, peer: &PeerId) {
        let Some(t) = self.threads.get(id) else {
            return;
        };
        let payload = Payload::Invite {
            thread: id.to_vec(),
            service_key: t.key.service().as_bytes().to_vec(),
        };
        self.send(id, peer, &payload);
    }

    /// Adds a new thread: checks it is new and within the limit, stores its row, and starts
    /// its sync timer.
    pub(super) fn register_thread(
        &mut self,
        now: Time,
        id: ThreadId,
        key: ThreadKey,
        peers: BTreeSet<PeerId>,
    ) -> Result<(), EngineError> {
        if self.threads.contains_key(&id) {
            return Err(EngineError::ThreadExists);
        }
        if self.threads.len() >= self.config.max_threads {
            return Err(EngineError::Limit("maximum number of threads"));
        }
        let thread = self.new_thread_state(now, key, peers);
        let mut txn = self.store.write()?;
        txn.put(
            &layout::thread(&id),
            &crate::record::wire::encode(&thread.row()),
        )?;
        txn.commit()?;
        self.insert_thread(id, thread);
        Ok(())
    }

    fn insert_thread(&mut self, id: ThreadId, t: ThreadState) {
        self.schedule.insert((Time(t.sync.deadline), id));
        self.threads.insert(id, t);
    }

    /// Remembers `peer` as a host of the thread (bounded) and tells the thread's other peers.
    /// The change is in memory only and the thread marked dirty: it is stored with the records
    /// of the same input or by [`Host::flush_rows`] at its end. Returns whether it is new.
    pub(super) fn add_peer(&mut self, id: &ThreadId, peer: &PeerId) -> bool {
        if peer == &self.peer_id {
            return false;
        }
        let max = self.config.max_peers_per_thread;
        let Some(t) = self.threads.get_mut(id) else {
            return false;
        };
        if t.peers.contains(peer) || t.peers.len() >= max {
            return false;
        }
        t.peers.insert(*peer);
        self.dirty.insert(*id);
        // Spread the news: the other hosts of the thread learn the new peer (and our heights).
        let others: Vec<PeerId> = t.peers.iter().filter(|p| *p != peer).cloned().collect();
        for other in others {
            self.send_heights(id, &other, false);
        }
        true
    }
}

/// The log a local write creates on first use: stored in the transaction of its first record.
pub(super) struct NewLog {
    /// The log's private key.
    pub key: PrivateKey,
    /// The identity that writes to it (libp2p protobuf public key).
    pub identity: [u8; 36],
}

/// Where records being committed come from; decides what a rejection or a failure means.
pub(super) enum Origin<'a> {
    /// Written here by [`Host::create_record`]: a rejection by the hook is an error and nothing
    /// is stored; pushed to every peer. Carries the log to create with the record, if new.
    Local(Option<Box<NewLog>>),
    /// Offered by [`Host::add_record`]: a rejection is stored with its verdict, a failure is
    /// the caller's error; pushed to every peer.
    Added,
    /// From peer `from`: a rejection is stored with its verdict, failures are reported as
    /// [`super::Event::ApplyFailed`]; with `forward`, pushed on to every other peer.
    Peer {
        /// The sending peer.
        from: &'a PeerId,
        /// Whether to forward the records to the thread's other peers.
        forward: bool,
    },
}

/// Reads one stored bundle.
pub(super) fn read_bundle(
    txn: &dyn ReadTxn,
    thread: &ThreadId,
    log: &LogId,
    counter: LogCounter,
) -> Result<Option<RecordBundle>, EngineError> {
    match txn.get(&layout::record(thread, log, counter))? {
        Some(bytes) => Ok(Some(RecordBundle::decode(&bytes).map_err(|e| {
            crate::store::StoreError::Corrupt(format!("stored record: {e}"))
        })?)),
        None => Ok(None),
    }
}

/// Reads a page of encoded bundles.
pub(super) fn read_page(
    txn: &dyn ReadTxn,
    thread: &ThreadId,
    log: &LogId,
    from: LogCounter,
    max: usize,
    max_bytes: usize,
) -> Result<Vec<Vec<u8>>, EngineError> {
    let start = layout::record(thread, log, from);
    let prefix = layout::thread_prefix(layout::TAG_RECORD, thread);
    let mut log_prefix = prefix.clone();
    log_prefix.extend_from_slice(log.as_bytes());
    let mut out = Vec::new();
    let mut bytes = 0usize;
    let mut expected = from.get();
    txn.scan(
        KeyRange::starting_at(&start),
        Direction::Forward,
        &mut |k, v| {
            if !k.starts_with(&log_prefix) || out.len() >= max {
                return ControlFlow::Break(());
            }
            // Stop at the first gap: pages are consecutive by construction.
            let counter = k[log_prefix.len()..]
                .try_into()
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            if counter != expected || (!out.is_empty() && bytes + v.len() > max_bytes) {
                return ControlFlow::Break(());
            }
            bytes += v.len();
            expected += 1;
            out.push(v.to_vec());
            ControlFlow::Continue(())
        },
    )?;
    Ok(out)
}
