//! Storing records: verified records are appended to their log in one write transaction with
//! the application hook, so a head never advances without its record and its effects.

use super::commands::{NewLog, Origin};
use super::message::Payload;
use super::output::{Event, Misbehaviour};
use super::signing::Pending;
use super::staged::Staged;
use super::state::LogState;
use super::verify::Checked;
use super::{Application, EngineError, Host, PeerId, Time, Verdict, as_read, commands, layout};
use crate::counter::{LamportClock, LogCounter, LogHeight};
use crate::id::ThreadId;
use crate::log_id::LogId;
use crate::record::{self, OpenedRecord, RecordBundle, RecordView, VerifiedRecord};
use crate::store::{Store, WriteTxn};

/// Records offered by a peer: the encoded bundles of a message, or bundles a
/// [`RecordVerifier`](super::verify::RecordVerifier) already checked.
pub(super) enum Offered<'a> {
    /// Encoded bundles, to decode and verify here.
    Bytes(&'a [serde_bytes::ByteBuf]),
    /// Checked bundles, in message order.
    Checked(Vec<Checked>),
}

impl Offered<'_> {
    /// About how many bytes the records take as stored and sent (a refused record counts
    /// nothing): what a peer's `page_max_bytes` limits.
    pub(super) fn record_bytes(&self) -> u64 {
        // The bundle's CBOR map adds a few bytes of keys and lengths to its four blocks.
        const FRAMING: usize = 16;
        let total: usize = match self {
            Offered::Bytes(bundles) => bundles.iter().map(|b| b.len()).sum(),
            Offered::Checked(checked) => checked
                .iter()
                .map(|c| match c {
                    Checked::Verified(p) => p.record().bundle().len() + FRAMING,
                    Checked::Refused { .. } => 0,
                })
                .sum(),
        };
        total as u64
    }
}

/// A verified record on its way to the store: opened already when a verifier holding the
/// read key did it, so the engine thread only stores it and runs the hook.
#[derive(Clone, Debug)]
pub(crate) enum Prepared {
    /// Verified; opened with the read key (if this host reads) when applied.
    Verified(VerifiedRecord),
    /// Verified and opened with the read key.
    Opened(OpenedRecord),
    /// Verified; it does not open with the read key (the hook will reject it).
    Unopenable(VerifiedRecord, record::RecordError),
}

impl Prepared {
    /// The verified record.
    pub(crate) fn record(&self) -> &VerifiedRecord {
        match self {
            Prepared::Verified(r) | Prepared::Unopenable(r, _) => r,
            Prepared::Opened(o) => o.record(),
        }
    }
    /// Gives up the verified record.
    fn into_record(self) -> VerifiedRecord {
        match self {
            Prepared::Verified(r) | Prepared::Unopenable(r, _) => r,
            Prepared::Opened(o) => o.into_record(),
        }
    }
}

/// One record of an [`Offered`] batch.
enum Candidate<'a> {
    Bytes(&'a [u8]),
    Checked(Checked),
}

/// The counter of a prepared record.
fn prepared_counter(p: &Prepared) -> LogCounter {
    p.record().counter()
}

/// What happened to a batch of records offered by a peer.
#[derive(Debug, Default)]
pub(super) struct Ingested {
    /// Records newly stored.
    pub applied: usize,
    /// The counter this host now needs next, when the batch skipped ahead of the head.
    pub gap: Option<u64>,
    /// The batch was cut short by an invalid record or a failed transaction.
    pub failed: bool,
}

impl<S: Store, A: Application> Host<S, A> {
    /// Verifies and stores records of one log sent by `peer`. Records already stored are
    /// skipped; the first invalid record ends the batch and is reported; a record beyond the
    /// head leaves a gap to pull. With `forward`, newly stored records are pushed on to the
    /// thread's other peers. Records a [`RecordVerifier`](super::verify::RecordVerifier)
    /// checked before ([`Offered::Checked`]) are not verified again.
    pub(super) fn ingest(
        &mut self,
        now: Time,
        peer: &PeerId,
        thread: &ThreadId,
        log: &LogId,
        offered: Offered<'_>,
        forward: bool,
    ) -> Ingested {
        let mut out = Ingested::default();
        let Some(t) = self.threads.get(thread) else {
            return out;
        };
        let service = t.key.service().clone();
        let known = t.logs.get(log).cloned();
        let too_many = known.is_none() && t.logs.len() >= self.config.max_logs_per_thread;
        let state = known.unwrap_or_else(|| LogState::empty(None));
        let mut next = state.height.next_counter();
        let mut head = state.head;
        let mut head_clock = state.head_clock;
        let mut ready: Vec<Prepared> = Vec::new();
        let bad = |error: record::RecordError| Misbehaviour::BadRecord {
            thread: *thread,
            log: *log,
            error,
        };
        let candidates: Vec<Candidate<'_>> = match offered {
            Offered::Bytes(bundles) => bundles.iter().map(|b| Candidate::Bytes(b)).collect(),
            Offered::Checked(checked) => checked.into_iter().map(Candidate::Checked).collect(),
        };
        for candidate in candidates {
            let rec = match candidate {
                Candidate::Bytes(bytes) => {
                    let bundle = match RecordBundle::decode(bytes) {
                        Ok(b) => b,
                        Err(e) => {
                            self.misbehaved(peer, bad(e));
                            out.failed = true;
                            break;
                        }
                    };
                    // Identical bytes to a record already stored were verified when stored: a
                    // cheap hash and lookup spares the signature check for replays and
                    // forwarded copies.
                    let cid = bundle.cid();
                    match self.holds(&cid) {
                        Ok(true) => continue,
                        Ok(false) => {}
                        Err(error) => {
                            self.store_failed(Some(*thread), "looking up a record", error);
                            out.failed = true;
                            break;
                        }
                    }
                    match self.verify_record(bundle, cid, thread, log, &service) {
                        Ok(rec) => Prepared::Verified(rec),
                        Err(e) => {
                            self.misbehaved(peer, bad(e));
                            out.failed = true;
                            break;
                        }
                    }
                }
                Candidate::Checked(Checked::Verified(prepared)) => {
                    let prepared = *prepared;
                    let rec = prepared.record();
                    // Bound to this log by the verifier; checked again as it costs nothing.
                    if rec.thread() != thread || rec.log() != log {
                        self.misbehaved(peer, Misbehaviour::MismatchedCheck(*thread, "log"));
                        out.failed = true;
                        break;
                    }
                    // A record at or below the stored height may be a copy of one held (skip
                    // it); one above cannot be held, so it needs no lookup.
                    if rec.counter().get() <= state.height.0 {
                        match self.holds(&rec.cid()) {
                            Ok(true) => continue,
                            Ok(false) => {}
                            Err(error) => {
                                self.store_failed(Some(*thread), "looking up a record", error);
                                out.failed = true;
                                break;
                            }
                        }
                    }
                    prepared
                }
                Candidate::Checked(Checked::Refused { cid, error }) => {
                    // As for unchecked bytes: a copy of a held record's envelope is skipped.
                    if let Some(cid) = cid {
                        match self.holds(&cid) {
                            Ok(true) => continue,
                            Ok(false) => {}
                            Err(error) => {
                                self.store_failed(Some(*thread), "looking up a record", error);
                                out.failed = true;
                                break;
                            }
                        }
                    }
                    self.misbehaved(peer, bad(error));
                    out.failed = true;
                    break;
                }
            };
            let c = prepared_counter(&rec);
            if c < next {
                // Already held (or held in this batch): a replay is harmless, a different
                // record at the same position is a fork signed by the log key.
                let held = if c.get() > state.height.0 {
                    Some(
                        ready[(c.get() - state.height.0 - 1) as usize]
                            .record()
                            .cid(),
                    )
                } else {
                    let stored = self
                        .store
                        .read()
                        .map_err(EngineError::from)
                        .and_then(|txn| commands::read_bundle(as_read(&txn), thread, log, c));
                    match stored {
                        Ok(b) => b.map(|b| b.cid()),
                        Err(e) => {
                            let error = match e {
                                EngineError::Store(error) => error,
                                other => crate::store::StoreError::Corrupt(other.to_string()),
                            };
                            self.store_failed(Some(*thread), "reading a stored record", error);
                            out.failed = true;
                            break;
                        }
                    }
                };
                if held.is_some_and(|cid| cid != rec.record().cid()) {
                    self.forked(peer, thread, log, c);
                    out.failed = true;
                    break;
                }
                continue;
            }
            if c > next {
                out.gap = Some(next.get());
                break;
            }
            if rec.record().prev() != head {
                self.forked(peer, thread, log, c);
                out.failed = true;
                break;
            }
            if rec.record().clock() <= head_clock {
                self.misbehaved(
                    peer,
                    Misbehaviour::ClockRegression {
                        thread: *thread,
                        log: *log,
                        counter: c,
                    },
                );
                out.failed = true;
                break;
            }
            if too_many {
                self.misbehaved(peer, Misbehaviour::TooManyLogs(*thread));
                out.failed = true;
                break;
            }
            head = Some(rec.record().cid());
            head_clock = rec.record().clock();
            next = c.next();
            ready.push(rec);
        }
        if !ready.is_empty() {
            let origin = Origin::Peer {
                from: peer,
                forward,
            };
            match self.commit_prepared(now, thread, log, ready, origin) {
                Ok(n) => out.applied = n,
                Err((n, _)) => {
                    out.applied = n;
                    out.failed = true;
                }
            }
        }
        out
    }

    /// Appends consecutive verified records to a log in one transaction with the hook (and, for
    /// a local write to a new log, with that log's rows).
    ///
    /// For a local write a rejection by the hook is an error and nothing is stored. For
    /// records from elsewhere a rejection is recorded and the head still advances. When the
    /// hook or the store fails at record `k` of a batch from a peer, the transaction is dropped
    /// and records `..k` are committed again without it; the failed record is left for a later
    /// retry. Returns the number stored, or that number with the error that stopped the rest.
    pub(super) fn commit_records(
        &mut self,
        now: Time,
        thread: &ThreadId,
        log: &LogId,
        records: Vec<VerifiedRecord>,
        origin: Origin<'_>,
    ) -> Result<usize, (usize, EngineError)> {
        let records = records.into_iter().map(Prepared::Verified).collect();
        self.commit_prepared(now, thread, log, records, origin)
    }

    /// [`Host::commit_records`] of records that may be opened already.
    pub(super) fn commit_prepared(
        &mut self,
        now: Time,
        thread: &ThreadId,
        log: &LogId,
        mut records: Vec<Prepared>,
        origin: Origin<'_>,
    ) -> Result<usize, (usize, EngineError)> {
        let _span = tracing::debug_span!(
            "commit_records",
            thread = %thread,
            log = %log,
            records = records.len()
        )
        .entered();
        let mut n = records.len();
        let mut stopped: Option<EngineError> = None;
        let new_log = match &origin {
            Origin::Local(new) => new.as_deref(),
            _ => None,
        };
        let local = matches!(origin, Origin::Local(_));
        let verdicts = loop {
            match self.try_commit(thread, log, &records[..n], local, new_log) {
                Ok(v) => break v,
                Err((k, e)) => {
                    tracing::debug!(at = k, error = %e, "transaction dropped");
                    self.app.rolled_back();
                    let failed = records[k].record();
                    let from_peer = matches!(origin, Origin::Peer { .. });
                    if from_peer {
                        self.emit(Event::ApplyFailed {
                            thread: *thread,
                            log: *log,
                            counter: failed.counter(),
                            error: Box::new(e.clone()),
                        });
                    }
                    if !from_peer || k == 0 {
                        return Err((0, e));
                    }
                    n = k;
                    stopped = Some(e);
                }
            }
        };
        records.truncate(n);
        self.after_commit(now, thread, log, records, verdicts, origin);
        match stopped {
            Some(e) => Err((n, e)),
            None => Ok(n),
        }
    }

    /// What follows the commit of `records` (at least one): the log's and thread's state in
    /// memory, the events, the push to peers.
    fn after_commit(
        &mut self,
        now: Time,
        thread: &ThreadId,
        log: &LogId,
        records: Vec<Prepared>,
        verdicts: Vec<Option<String>>,
        origin: Origin<'_>,
    ) {
        let committed = &records[..];
        let n = committed.len();
        let new_log = match &origin {
            Origin::Local(new) => new.as_deref(),
            _ => None,
        };
        let local = matches!(origin, Origin::Local(_));
        self.dirty.remove(thread);
        if let Some(t) = self.threads.get_mut(thread) {
            let last = committed[n - 1].record();
            let state = t
                .logs
                .get_or_insert_mut(*log, || LogState::empty(new_log.map(|l| l.key.clone())));
            state.height = LogHeight::of(last.counter());
            state.head = Some(last.cid());
            state.head_clock = last.clock();
            if let Some(l) = new_log {
                t.identities.insert(l.identity, *log);
            }
            let max_clock = committed.iter().map(|r| r.record().clock()).max();
            t.clock = t.clock.max(max_clock.unwrap_or(LamportClock(0)));
        }
        // What to push is encoded before the records move into the events.
        let push = match origin {
            Origin::Local(_) | Origin::Added => self.prepare_push(thread, committed, None),
            Origin::Peer {
                from,
                forward: true,
            } => self.prepare_push(thread, committed, Some(from)),
            Origin::Peer { forward: false, .. } => None,
        };
        for (rec, verdict) in records.into_iter().zip(verdicts) {
            let rec = rec.into_record();
            if let Some(reason) = verdict {
                self.emit(Event::RecordRejected {
                    thread: *thread,
                    log: *log,
                    counter: rec.counter(),
                    reason,
                });
            }
            self.emit(Event::RecordAdded {
                thread: *thread,
                local,
                record: Box::new(rec),
            });
        }
        if let Some((peers, bundles)) = push {
            self.send_push(thread, log, &peers, bundles);
        }
        self.touch(thread, now);
    }

    /// Stores the records of a local write to an existing log, folded while `pending` builds
    /// them (see [`super::signing`]): one transaction with the fold, all or nothing. The
    /// application's first refusal is the error.
    pub(super) fn commit_local(
        &mut self,
        now: Time,
        thread: &ThreadId,
        log: &LogId,
        views: &[RecordView<'_>],
        pending: Pending,
    ) -> Result<Vec<VerifiedRecord>, EngineError> {
        let _span = tracing::debug_span!(
            "commit_local",
            thread = %thread,
            log = %log,
            records = views.len()
        )
        .entered();
        let mut pending = Some(pending);
        let result = self.try_commit_local(thread, log, views, &mut pending);
        if let Some(p) = pending {
            p.discard();
        }
        match result {
            Ok(records) => {
                let out = records.iter().map(|o| o.record().clone()).collect();
                let verdicts = vec![None; records.len()];
                let prepared = records.into_iter().map(Prepared::Opened).collect();
                self.after_commit(now, thread, log, prepared, verdicts, Origin::Local(None));
                Ok(out)
            }
            Err(e) => {
                tracing::debug!(error = %e, "transaction dropped");
                self.app.rolled_back();
                Err(e)
            }
        }
    }

    /// The transaction of [`Self::commit_local`]: every body folded, then the records once
    /// built, then the log's and thread's rows; committed.
    fn try_commit_local(
        &mut self,
        thread: &ThreadId,
        log: &LogId,
        views: &[RecordView<'_>],
        pending: &mut Option<Pending>,
    ) -> Result<Vec<OpenedRecord>, EngineError> {
        let t = self
            .threads
            .get(thread)
            .ok_or(EngineError::ThreadNotFound)?;
        let state = t.logs.get(log).cloned().ok_or(EngineError::LogNotFound)?;
        let mut staged = Staged::new(thread, log, state, t.row(), views.len());
        let mut txn = self.store.write()?;
        for view in views {
            if let Verdict::Reject(reason) = self.app.apply(&mut txn, view)? {
                return Err(EngineError::Rejected(reason));
            }
        }
        let records = pending
            .take()
            .and_then(Pending::wait)
            .ok_or(EngineError::Signer("the signer stopped without an answer"))??;
        let matches =
            records.len() == views.len() && records.iter().zip(views).all(|(r, v)| r.view() == *v);
        if !matches {
            return Err(EngineError::Signer(
                "the signer built records other than those folded",
            ));
        }
        for rec in &records {
            staged.store(&mut txn, rec.record())?;
        }
        let index_change = staged.commit(txn, &self.cids, &mut self.app)?;
        self.cids.committed(index_change);
        Ok(records)
    }

    /// One attempt at storing `records`; returns each record's rejection reason, if any.
    fn try_commit(
        &mut self,
        thread: &ThreadId,
        log: &LogId,
        records: &[Prepared],
        local: bool,
        new_log: Option<&NewLog>,
    ) -> Result<Vec<Option<String>>, (usize, EngineError)> {
        let t = self
            .threads
            .get(thread)
            .ok_or((0, EngineError::ThreadNotFound))?;
        let key = t.key.clone();
        let state = t
            .logs
            .get(log)
            .cloned()
            .unwrap_or_else(|| LogState::empty(new_log.map(|l| l.key.clone())));
        let mut staged = Staged::new(thread, log, state, t.row(), records.len());
        let mut txn = self.store.write().map_err(|e| (0, e.into()))?;
        if let Some(l) = new_log {
            txn.put(&layout::identity_log(thread, &l.identity), log.as_bytes())
                .map_err(|e| (0, e.into()))?;
        }
        let mut verdicts = Vec::with_capacity(records.len());
        for (i, prepared) in records.iter().enumerate() {
            let at = |e: EngineError| (i, e);
            let rec = prepared.record();
            let counter = rec.counter();
            staged.store(&mut txn, rec).map_err(|e| at(e.into()))?;
            let mut verdict = None;
            #[cfg(feature = "buggify")]
            let read_key = if self.config.bugs.split_dispatch {
                None
            } else {
                key.read()
            };
            #[cfg(not(feature = "buggify"))]
            let read_key = key.read();
            if let Some(read) = read_key {
                let opened = match prepared {
                    Prepared::Opened(o) => Ok(std::borrow::Cow::Borrowed(o)),
                    Prepared::Unopenable(_, e) => Err(e.clone()),
                    Prepared::Verified(r) => {
                        record::open(r.clone(), read).map(std::borrow::Cow::Owned)
                    }
                };
                let outcome = match opened {
                    Ok(opened) => self
                        .app
                        .apply(&mut txn, &opened.view())
                        .map_err(|e| at(e.into()))?,
                    Err(e) => Verdict::Reject(format!("cannot open record: {e}")),
                };
                if let Verdict::Reject(reason) = outcome {
                    if local {
                        return Err(at(EngineError::Rejected(reason)));
                    }
                    txn.put(&layout::rejected(thread, log, counter), reason.as_bytes())
                        .map_err(|e| at(e.into()))?;
                    verdict = Some(reason);
                }
            }
            verdicts.push(verdict);
        }
        let last = records.len().saturating_sub(1);
        let index_change = staged
            .commit(txn, &self.cids, &mut self.app)
            .map_err(|e| (last, e))?;
        self.cids.committed(index_change);
        #[cfg(feature = "buggify")]
        if self.config.bugs.split_dispatch
            && let Some(read) = key.read()
        {
            // The planted defect: the hook runs in a second transaction, errors ignored.
            let second = (|| -> Result<(), EngineError> {
                let mut txn = self.store.write()?;
                for rec in records {
                    if let Ok(opened) = record::open(rec.record().clone(), read) {
                        let _ = self.app.apply(&mut txn, &opened.view());
                    }
                }
                txn.commit()?;
                Ok(())
            })();
            if second.is_err() {
                self.app.rolled_back();
            }
        }
        Ok(verdicts)
    }

    /// The peers to push freshly stored records to (every peer of the thread but `except`)
    /// and the records, encoded; `None` when there is nobody or nothing to push.
    fn prepare_push(
        &mut self,
        thread: &ThreadId,
        records: &[Prepared],
        except: Option<&PeerId>,
    ) -> Option<(Vec<PeerId>, Vec<serde_bytes::ByteBuf>)> {
        let t = self.threads.get(thread)?;
        let peers: Vec<PeerId> = t
            .peers
            .iter()
            .filter(|p| Some(*p) != except)
            .cloned()
            .collect();
        if peers.is_empty() {
            return None;
        }
        #[cfg(feature = "buggify")]
        let records: Vec<&Prepared> = if self.config.bugs.drop_every_7th_push {
            let mut kept = Vec::new();
            for r in records {
                self.pushed += 1;
                if !self.pushed.is_multiple_of(7) {
                    kept.push(r);
                }
            }
            kept
        } else {
            records.iter().collect()
        };
        let bundles: Vec<serde_bytes::ByteBuf> = records
            .iter()
            .map(|r| serde_bytes::ByteBuf::from(r.record().bundle().encode()))
            .collect();
        (!bundles.is_empty()).then_some((peers, bundles))
    }

    /// Sends encoded records of a log to `peers`, in pushes of at most a page.
    fn send_push(
        &mut self,
        thread: &ThreadId,
        log: &LogId,
        peers: &[PeerId],
        bundles: Vec<serde_bytes::ByteBuf>,
    ) {
        for chunk in bundles.chunks(self.config.page_max_records.max(1) as usize) {
            let payload = Payload::Push {
                thread: thread.to_vec(),
                log: log.as_bytes().to_vec(),
                records: chunk.to_vec(),
            };
            for p in peers {
                self.send(thread, p, &payload);
            }
        }
    }
}

impl<S: Store, A: Application> Host<S, A> {
    /// Reports a fork of `log` at `counter`, offered by `peer`.
    fn forked(&mut self, peer: &PeerId, thread: &ThreadId, log: &LogId, counter: LogCounter) {
        self.emit(Event::LogForked(Box::new(super::output::Fork {
            thread: *thread,
            log: *log,
            counter,
            from: *peer,
        })));
    }

    /// Whether a record with this CID is stored.
    fn holds(&self, cid: &cid::Cid) -> Result<bool, crate::store::StoreError> {
        let txn = self.store.read()?;
        self.cids.contains(super::as_read(&txn), cid)
    }

    /// Verifies a record offered by a peer (see [`record::verify`]); `cid` is its envelope's.
    fn verify_record(
        &self,
        bundle: RecordBundle,
        cid: cid::Cid,
        thread: &ThreadId,
        log: &LogId,
        service: &crate::key::ServiceKey,
    ) -> Result<VerifiedRecord, record::RecordError> {
        #[cfg(feature = "buggify")]
        let signature = !self.config.bugs.skip_signature_check;
        #[cfg(not(feature = "buggify"))]
        let signature = true;
        record::verify_cid(bundle, cid, thread, log, service, signature)
    }
}
