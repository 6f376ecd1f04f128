//! The engine task's write path: write transactions of callers, run and committed in groups.

use super::{EngineTask, only_missing, unix_nanos};
use crate::node::NodeError;
use crate::node::command::{Command, OpOutput, Reply, WriteMode, WriteOp, WriteOutcome};
use std::time::Instant;
use threads_protocol::engine::{EngineError, Time};
use threads_protocol::id::ThreadId;
use threads_protocol::identity::PublicKey;

/// A write command taken apart.
struct Write {
    db: ThreadId,
    author: Option<PublicKey>,
    ops: Vec<WriteOp>,
    mode: WriteMode,
    reply: Reply<WriteOutcome>,
}

/// A write waiting for the commit, with the results of its operations.
type Pending = (Write, Vec<Result<OpOutput, NodeError>>);

impl EngineTask {
    /// Runs each write transaction's operations, then commits the ones that write with as few
    /// durable commits as possible (group commit), then answers every caller. In
    /// [`WriteMode::Each`] a failed operation is left out and the others commit; in
    /// [`WriteMode::All`] one failure and nothing commits; [`WriteMode::DryRun`] never commits.
    ///
    /// Optimistic first: consecutive writes of one database and author are built without
    /// checking each operation against the rules (`Documents::begin_deferred`) and committed
    /// all or nothing (`Documents::commit_all`), so each operation is folded once, by the
    /// commit. When that fails (an operation breaks a rule, or two writes clash), nothing was
    /// stored and the run is done again the careful way: every operation checked on its own,
    /// then `Documents::commit_batch`, which gives each write its own verdict.
    pub(super) fn write_group(&mut self, writes: Vec<Command>) {
        let now = self.now();
        let nanos = unix_nanos();
        let commits_before = self.docs.host().store().counters().commits;
        let started = Instant::now();
        let mut run: Vec<Write> = Vec::new();
        for cmd in writes {
            let Command::Write {
                db,
                author,
                ops,
                mode,
                reply,
            } = cmd
            else {
                continue;
            };
            if !self.docs.host().has_thread(&db) {
                let _ = reply.send(Err(NodeError::Engine(EngineError::ThreadNotFound)));
                continue;
            }
            let write = Write {
                db,
                author,
                ops,
                mode,
                reply,
            };
            if mode == WriteMode::DryRun {
                self.checked(now, vec![write], nanos);
                continue;
            }
            if run
                .first()
                .is_some_and(|w| w.db != write.db || w.author != write.author)
            {
                self.optimistic(now, std::mem::take(&mut run), nanos);
            }
            run.push(write);
        }
        if !run.is_empty() {
            self.optimistic(now, run, nanos);
        }
        let commits = self.docs.host().store().counters().commits - commits_before;
        if commits > 0 {
            self.metrics.observe_commit(started.elapsed());
            self.metrics.add(&self.metrics.commits, commits - 1);
        }
    }

    /// Runs `ops` into `txn`; in [`WriteMode::All`] with a failed operation, `None`: the
    /// transaction must not commit.
    fn run_ops(
        &mut self,
        txn: &mut threads_reducer::docs::WriteTxn,
        ops: Vec<WriteOp>,
        mode: WriteMode,
        nanos: u64,
    ) -> (Vec<Result<OpOutput, NodeError>>, bool) {
        let results: Vec<_> = ops.into_iter().map(|op| self.op(txn, op, nanos)).collect();
        // Deletes of unknown ids delete the known ones and report the rest; not a failure.
        let failed = results.iter().any(|r| match r {
            Err(NodeError::Docs(e)) => !only_missing(e),
            Err(_) => true,
            Ok(_) => false,
        });
        let commit = !(mode == WriteMode::DryRun || (mode == WriteMode::All && failed));
        (results, commit)
    }

    /// Writes of one database and author, each operation folded only by the commit; on a
    /// failure of the whole, [`Self::checked`] (see [`Self::write_group`]).
    fn optimistic(&mut self, now: Time, writes: Vec<Write>, nanos: u64) {
        let (txns, pending) = self.build(writes, true, nanos);
        if pending.is_empty() {
            return;
        }
        match self.docs.commit_all(now, &txns, nanos) {
            Ok(records) => {
                for ((w, ops), record) in pending.into_iter().zip(records) {
                    let _ = w.reply.send(Ok(WriteOutcome {
                        ops,
                        record: record.map(|r| r.cid()),
                    }));
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, writes = pending.len(), "group refused; checking each write");
                self.checked(now, pending.into_iter().map(|(w, _)| w).collect(), nanos);
            }
        }
    }

    /// Writes with every operation checked on its own, then committed with
    /// `Documents::commit_batch`.
    fn checked(&mut self, now: Time, writes: Vec<Write>, nanos: u64) {
        let (txns, pending) = self.build(writes, false, nanos);
        let outcomes = self.docs.commit_batch(now, txns, nanos);
        for ((Write { reply, .. }, ops), outcome) in pending.into_iter().zip(outcomes) {
            let answer = outcome.map_err(NodeError::from).map(|record| WriteOutcome {
                ops,
                record: record.map(|r| r.cid()),
            });
            let _ = reply.send(answer);
        }
    }

    /// Builds a write transaction per write (deferred: operations checked only at commit, and
    /// kept for a careful retry), answering at once the ones that must not commit (dry runs,
    /// all-or-nothing requests with a failed operation); the rest, with their per-operation
    /// results, wait for the commit.
    fn build(
        &mut self,
        writes: Vec<Write>,
        deferred: bool,
        nanos: u64,
    ) -> (Vec<threads_reducer::docs::WriteTxn>, Vec<Pending>) {
        let mut txns = Vec::with_capacity(writes.len());
        let mut pending = Vec::with_capacity(writes.len());
        for mut w in writes {
            let (mut txn, ops) = if deferred {
                (self.docs.begin_deferred(&w.db, w.author), w.ops.clone())
            } else {
                (self.docs.begin(&w.db, w.author), std::mem::take(&mut w.ops))
            };
            let (results, commit) = self.run_ops(&mut txn, ops, w.mode, nanos);
            if !commit {
                let _ = w.reply.send(Ok(WriteOutcome {
                    ops: results,
                    record: None,
                }));
                continue;
            }
            txns.push(txn);
            pending.push((w, results));
        }
        (txns, pending)
    }

    /// Adds one operation to a write transaction.
    fn op(
        &mut self,
        txn: &mut threads_reducer::docs::WriteTxn,
        op: WriteOp,
        nanos: u64,
    ) -> Result<OpOutput, NodeError> {
        // A failed operation must leave the transaction as it was before it.
        let before = txn.len();
        let docs = &mut self.docs;
        let out = match op {
            WriteOp::NewCollection(c) => docs.txn_new_collection(txn, c).map(|_| OpOutput::Done),
            WriteOp::UpdateCollection(c) => {
                docs.txn_update_collection(txn, c).map(|_| OpOutput::Done)
            }
            WriteOp::DeleteCollection(name) => docs
                .txn_delete_collection(txn, &name)
                .map(|_| OpOutput::Done),
            WriteOp::Create {
                collection,
                instance,
            } => docs
                .txn_create(txn, &collection, instance, nanos)
                .map(OpOutput::Created),
            WriteOp::Save {
                collection,
                instance,
            } => docs
                .txn_save(txn, &collection, instance, nanos)
                .map(|_| OpOutput::Done),
            WriteOp::Delete { collection, ids } => {
                let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                docs.txn_delete(txn, &collection, &ids).and_then(|missing| {
                    if missing.is_empty() {
                        Ok(OpOutput::Done)
                    } else {
                        Err(threads_reducer::docs::DocsError::Db(
                            threads_reducer::db::DbError::InstanceNotFound(missing.join(", ")),
                        ))
                    }
                })
            }
        };
        if out.as_ref().is_err_and(|e| !only_missing(e)) {
            txn.truncate(before);
        }
        out.map_err(NodeError::from)
    }
}
