//! Storing records: verified records are appended to their log in one write transaction with
//! the application hook, so a head never advances without its record and its effects.

use super::message::Payload;
use super::output::{Event, Misbehaviour};
use super::state::LogState;
use super::{Application, EngineError, Host, PeerId, Time, Verdict, as_read, commands, layout};
use crate::counter::{LamportClock, LogCounter, LogHeight};
use crate::id::ThreadId;
use crate::log_id::LogId;
use crate::record::{self, RecordBundle, VerifiedRecord, wire};
use crate::store::{ReadTxn, Store, WriteTxn};

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
    /// thread's other peers.
    pub(super) fn ingest(
        &mut self,
        now: Time,
        peer: &PeerId,
        thread: &ThreadId,
        log: &LogId,
        bundles: &[serde_bytes::ByteBuf],
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
        let mut ready: Vec<VerifiedRecord> = Vec::new();
        let bad = |error: String| Misbehaviour::BadRecord {
            thread: thread.to_string(),
            log: log.to_string(),
            error,
        };
        for bytes in bundles {
            let bundle = match RecordBundle::decode(bytes) {
                Ok(b) => b,
                Err(e) => {
                    self.misbehaved(peer, bad(e.to_string()));
                    out.failed = true;
                    break;
                }
            };
            // Identical bytes to a record already stored were verified when stored: a cheap
            // hash and lookup spares the signature check for replays and forwarded copies.
            if self.holds(&bundle.cid()) {
                continue;
            }
            let rec = match self.verify_record(bundle, thread, log, &service) {
                Ok(rec) => rec,
                Err(e) => {
                    self.misbehaved(peer, bad(e.to_string()));
                    out.failed = true;
                    break;
                }
            };
            let c = rec.counter();
            if c < next {
                // Already held (or held in this batch): a replay is harmless, a different
                // record at the same position is a fork signed by the log key.
                let held = if c.get() > state.height.0 {
                    Some(ready[(c.get() - state.height.0 - 1) as usize].cid())
                } else {
                    self.store
                        .read()
                        .ok()
                        .and_then(|txn| commands::read_bundle(as_read(&txn), thread, log, c).ok())
                        .flatten()
                        .map(|b| b.cid())
                };
                if held.is_some_and(|cid| cid != rec.cid()) {
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
            if rec.prev() != head {
                self.forked(peer, thread, log, c);
                out.failed = true;
                break;
            }
            if rec.clock() <= head_clock {
                self.misbehaved(
                    peer,
                    Misbehaviour::ClockRegression {
                        thread: thread.to_string(),
                        log: log.to_string(),
                        counter: c.get(),
                    },
                );
                out.failed = true;
                break;
            }
            if too_many {
                self.misbehaved(peer, Misbehaviour::TooManyLogs(thread.to_string()));
                out.failed = true;
                break;
            }
            head = Some(rec.cid());
            head_clock = rec.clock();
            next = c.next();
            ready.push(rec);
        }
        if !ready.is_empty() {
            let to_forward = forward.then_some(peer);
            match self.commit_records(now, thread, log, ready, false, to_forward) {
                Ok(n) => out.applied = n,
                Err((n, _)) => {
                    out.applied = n;
                    out.failed = true;
                }
            }
        }
        out
    }

    /// Appends consecutive verified records to a log in one transaction with the hook.
    ///
    /// For a `local` write a rejection by the hook is an error and nothing is stored. For
    /// records from peers a rejection is recorded and the head still advances. When the hook
    /// or the store fails at record `k`, the transaction is dropped and records `..k` are
    /// committed again without it; the failed record is left for a later retry. Returns the
    /// number stored, or that number with the error that stopped the rest.
    pub(super) fn commit_records(
        &mut self,
        now: Time,
        thread: &ThreadId,
        log: &LogId,
        records: Vec<VerifiedRecord>,
        local: bool,
        forward_except: Option<&PeerId>,
    ) -> Result<usize, (usize, EngineError)> {
        let mut n = records.len();
        let mut stopped: Option<EngineError> = None;
        let verdicts = loop {
            match self.try_commit(thread, log, &records[..n], local) {
                Ok(v) => break v,
                Err((k, e)) => {
                    self.app.rolled_back();
                    let failed = &records[k];
                    if !local {
                        self.emit(Event::ApplyFailed {
                            thread: *thread,
                            log: *log,
                            counter: failed.counter(),
                            error: e.to_string(),
                        });
                    }
                    if local || k == 0 {
                        return Err((0, e));
                    }
                    n = k;
                    stopped = Some(e);
                }
            }
        };
        let committed = &records[..n];
        if let Some(t) = self.threads.get_mut(thread) {
            let last = &committed[n - 1];
            let state = t.logs.entry(*log).or_insert_with(|| LogState::empty(None));
            state.height = LogHeight::of(last.counter());
            state.head = Some(last.cid());
            state.head_clock = last.clock();
            let max_clock = committed.iter().map(|r| r.clock()).max();
            t.clock = t.clock.max(max_clock.unwrap_or(LamportClock(0)));
        }
        for (rec, verdict) in committed.iter().zip(verdicts) {
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
                record: Box::new(rec.clone()),
            });
        }
        if local || forward_except.is_some() {
            self.push_records(thread, log, committed, forward_except);
        }
        self.touch(thread, now);
        match stopped {
            Some(e) => Err((n, e)),
            None => Ok(n),
        }
    }

    /// One attempt at storing `records`; returns each record's rejection reason, if any.
    fn try_commit(
        &mut self,
        thread: &ThreadId,
        log: &LogId,
        records: &[VerifiedRecord],
        local: bool,
    ) -> Result<Vec<Option<String>>, (usize, EngineError)> {
        let t = self
            .threads
            .get(thread)
            .ok_or((0, EngineError::ThreadNotFound))?;
        let key = t.key.clone();
        let mut state = t
            .logs
            .get(log)
            .cloned()
            .unwrap_or_else(|| LogState::empty(None));
        let mut thread_state_row = t.row();
        let mut txn = self.store.write().map_err(|e| (0, e.into()))?;
        let mut verdicts = Vec::with_capacity(records.len());
        for (i, rec) in records.iter().enumerate() {
            let at = |e: EngineError| (i, e);
            let counter = rec.counter();
            txn.put(
                &layout::record(thread, log, counter),
                &rec.bundle().encode(),
            )
            .map_err(|e| at(e.into()))?;
            txn.put(
                &layout::cid(&rec.cid()),
                &layout::cid_target(thread, log, counter),
            )
            .map_err(|e| at(e.into()))?;
            let mut verdict = None;
            if let Some(read) = key.read() {
                let outcome = match record::open(rec.clone(), read) {
                    Ok(opened) => self
                        .app
                        .apply(&mut txn, &opened)
                        .map_err(|e| at(EngineError::Application(e)))?,
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
            state.height = LogHeight::of(counter);
            state.head = Some(rec.cid());
            state.head_clock = rec.clock();
            thread_state_row.clock = thread_state_row.clock.max(rec.clock().0);
        }
        let last = records.len().saturating_sub(1);
        self.app
            .finish_batch(&mut txn)
            .map_err(|e| (last, EngineError::Application(e)))?;
        txn.put(&layout::log(thread, log), &wire::encode(&state.row()))
            .map_err(|e| (last, e.into()))?;
        txn.put(&layout::thread(thread), &wire::encode(&thread_state_row))
            .map_err(|e| (last, e.into()))?;
        txn.commit().map_err(|e| (last, e.into()))?;
        Ok(verdicts)
    }

    /// Sends freshly stored records to every peer of the thread but `except`.
    fn push_records(
        &mut self,
        thread: &ThreadId,
        log: &LogId,
        records: &[VerifiedRecord],
        except: Option<&PeerId>,
    ) {
        let Some(t) = self.threads.get(thread) else {
            return;
        };
        let peers: Vec<PeerId> = t
            .peers
            .iter()
            .filter(|p| Some(*p) != except)
            .cloned()
            .collect();
        if peers.is_empty() {
            return;
        }
        let bundles: Vec<serde_bytes::ByteBuf> = records
            .iter()
            .map(|r| serde_bytes::ByteBuf::from(r.bundle().encode()))
            .collect();
        for chunk in bundles.chunks(self.config.page_max_records.max(1) as usize) {
            let payload = Payload::Push {
                thread: thread.to_vec(),
                log: log.as_bytes().to_vec(),
                records: chunk.to_vec(),
            };
            for p in &peers {
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
    fn holds(&self, cid: &cid::Cid) -> bool {
        self.store
            .read()
            .ok()
            .and_then(|txn| txn.get(&layout::cid(cid)).ok())
            .flatten()
            .is_some()
    }

    /// Verifies a record offered by a peer (see [`record::verify`]).
    fn verify_record(
        &self,
        bundle: RecordBundle,
        thread: &ThreadId,
        log: &LogId,
        service: &crate::key::ServiceKey,
    ) -> Result<VerifiedRecord, record::RecordError> {
        #[cfg(feature = "buggify")]
        if self.config.bugs.skip_signature_check {
            return record::verify_without_signature(bundle, thread, log, service);
        }
        record::verify(bundle, thread, log, service)
    }
}
