//! Committing write transactions: one at a time, in groups with a one-by-one fallback, or all
//! or nothing (the daemon's optimistic group commit).

use super::{DocsError, Documents, WriteTxn};
use crate::db::Batch;
use threads_protocol::engine::{EngineError, Time};
use threads_protocol::record::VerifiedRecord;
use threads_protocol::store::Store;

impl<S: Store> Documents<S> {
    /// Commits several transactions with as few durable store commits as possible (group
    /// commit): consecutive transactions of one database and author become consecutive records
    /// of one log, stored in one store transaction. If that group fails as a whole (one of its
    /// records breaks a rule given the others, or storing fails), its transactions are
    /// committed one by one instead, so each gets its own verdict. Results are in input order.
    pub fn commit_batch(
        &mut self,
        now: Time,
        txns: Vec<WriteTxn>,
        unix_nanos: u64,
    ) -> Vec<Result<Option<VerifiedRecord>, DocsError>> {
        let mut results = Vec::with_capacity(txns.len());
        let mut rest = txns.into_iter().peekable();
        while let Some(first) = rest.next() {
            let mut group = vec![first];
            while let Some(next) = rest.peek() {
                let head = &group[0];
                if next.db == head.db && next.author == head.author {
                    group.extend(rest.next());
                } else {
                    break;
                }
            }
            results.extend(self.commit_group(now, group, unix_nanos));
        }
        results
    }

    fn commit_group(
        &mut self,
        now: Time,
        group: Vec<WriteTxn>,
        unix_nanos: u64,
    ) -> Vec<Result<Option<VerifiedRecord>, DocsError>> {
        let writes = group.iter().filter(|t| !t.events.is_empty()).count();
        if writes > 1 {
            let bodies: Vec<Vec<u8>> = group
                .iter()
                .filter(|t| !t.events.is_empty())
                .map(|t| Batch::new(t.events.clone()).encode())
                .collect();
            let (db, author) = (group[0].db, group[0].author);
            if let Ok(records) =
                self.host
                    .create_records(now, &db, author.as_ref(), &bodies, unix_nanos)
            {
                let mut records = records.into_iter();
                return group
                    .iter()
                    .map(|t| {
                        Ok(if t.events.is_empty() {
                            None
                        } else {
                            records.next()
                        })
                    })
                    .collect();
            }
        }
        group
            .into_iter()
            .map(|t| self.commit(now, t, unix_nanos))
            .collect()
    }

    /// Commits transactions of **one** database and author as consecutive records in one
    /// durable store commit, all or nothing: when any record is refused (a rule, or the
    /// transactions clash) or storing fails, nothing is stored and the error is returned.
    /// Results are in input order (`None` for an empty transaction). Made for transactions of
    /// [`Self::begin_deferred`]: on an error the caller redoes them with checked
    /// transactions and [`Self::commit_batch`] to give each operation its own verdict.
    pub fn commit_all(
        &mut self,
        now: Time,
        txns: &[WriteTxn],
        unix_nanos: u64,
    ) -> Result<Vec<Option<VerifiedRecord>>, DocsError> {
        let Some(head) = txns.first() else {
            return Ok(Vec::new());
        };
        if txns
            .iter()
            .any(|t| t.db != head.db || t.author != head.author)
        {
            return Err(DocsError::Invalid(
                "commit_all takes transactions of one database and author".into(),
            ));
        }
        let bodies: Vec<Vec<u8>> = txns
            .iter()
            .filter(|t| !t.events.is_empty())
            .map(|t| Batch::new(t.events.clone()).encode())
            .collect();
        let records = match bodies.len() {
            0 => Vec::new(),
            // The first write of an author creates its log: `create_record` does that.
            1 => vec![self.host.create_record(
                now,
                &head.db,
                head.author.as_ref(),
                &bodies[0],
                unix_nanos,
            )?],
            _ => self.host.create_records(
                now,
                &head.db,
                head.author.as_ref(),
                &bodies,
                unix_nanos,
            )?,
        };
        let mut records = records.into_iter();
        Ok(txns
            .iter()
            .map(|t| {
                if t.events.is_empty() {
                    None
                } else {
                    records.next()
                }
            })
            .collect())
    }

    /// Commits the transaction as one record. An empty transaction writes nothing.
    pub fn commit(
        &mut self,
        now: Time,
        txn: WriteTxn,
        unix_nanos: u64,
    ) -> Result<Option<VerifiedRecord>, DocsError> {
        if txn.events.is_empty() {
            return Ok(None);
        }
        let body = Batch::new(txn.events).encode();
        match self
            .host
            .create_record(now, &txn.db, txn.author.as_ref(), &body, unix_nanos)
        {
            Ok(r) => Ok(Some(r)),
            Err(EngineError::Rejected(reason)) => Err(DocsError::Rejected(reason)),
            Err(e) => Err(e.into()),
        }
    }
}
