//! What a transaction storing records of one log writes besides the records' fold: the records
//! themselves, their CIDs, the log's and the thread's rows. Shared by the commit of peers'
//! records and single local writes (`try_commit`) and by the commit of a local group whose
//! records were signed beside the fold (`try_commit_local`).

use super::cid_index::{CidIndex, IndexChange};
use super::state::{LogState, ThreadRow};
use super::{Application, EngineError, layout};
use crate::counter::LogHeight;
use crate::id::ThreadId;
use crate::log_id::LogId;
use crate::record::{VerifiedRecord, wire};
use crate::store::{StoreError, WriteTxn};
use cid::Cid;

/// The log's and thread's state as the records stored so far in the transaction leave them,
/// and the CID index entries they need.
pub(super) struct Staged<'a> {
    thread: &'a ThreadId,
    log: &'a LogId,
    state: LogState,
    row: ThreadRow,
    cids: Vec<(Cid, Vec<u8>)>,
}

impl<'a> Staged<'a> {
    /// Nothing stored yet: the log and thread as they are (`state`, `row`).
    pub(super) fn new(
        thread: &'a ThreadId,
        log: &'a LogId,
        state: LogState,
        row: ThreadRow,
        records: usize,
    ) -> Self {
        Staged {
            thread,
            log,
            state,
            row,
            cids: Vec::with_capacity(records),
        }
    }

    /// Stores `rec`, the log's next record, in `txn`, and moves the log's head to it.
    pub(super) fn store<T: WriteTxn + ?Sized>(
        &mut self,
        txn: &mut T,
        rec: &VerifiedRecord,
    ) -> Result<(), StoreError> {
        let counter = rec.counter();
        txn.put(
            &layout::record(self.thread, self.log, counter),
            &rec.bundle().encode(),
        )?;
        self.cids.push((
            rec.cid(),
            layout::cid_target(self.thread, self.log, counter),
        ));
        self.state.height = LogHeight::of(counter);
        self.state.head = Some(rec.cid());
        self.state.head_clock = rec.clock();
        self.row.clock = self.row.clock.max(rec.clock().0);
        Ok(())
    }

    /// Ends the transaction: the CIDs into the index, the application's batch, the log's and
    /// thread's rows; then commits. The caller hands the returned change to
    /// [`CidIndex::committed`].
    pub(super) fn commit<T: WriteTxn, A: Application>(
        self,
        mut txn: T,
        index: &CidIndex,
        app: &mut A,
    ) -> Result<IndexChange, EngineError> {
        let change = index.add(&mut txn, self.cids)?;
        app.finish_batch(&mut txn)?;
        txn.put(
            &layout::log(self.thread, self.log),
            &wire::encode(&self.state.row()),
        )?;
        txn.put(&layout::thread(self.thread), &wire::encode(&self.row))?;
        txn.commit()?;
        Ok(change)
    }
}
