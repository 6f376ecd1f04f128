//! Read transactions of the embedded API: every read of one database on one snapshot.

use serde_json::Value;
use threads_protocol::id::ThreadId;
use threads_protocol::store::ReadTxn;

use super::DocsError;
use crate::db::{self, CollectionConfig, DocFold, JsonRow, Row};
use crate::query::Query;

/// A read transaction: reads of one database on one snapshot (see
/// [`Documents::snapshot`](super::Documents::snapshot)).
pub struct Snapshot<'a> {
    pub(super) db: ThreadId,
    pub(super) txn: &'a dyn ReadTxn,
    pub(super) fold: &'a mut DocFold,
}

impl Snapshot<'_> {
    /// An instance as `reader` sees it.
    pub fn get(
        &mut self,
        collection: &str,
        id: &str,
        reader: Option<&str>,
    ) -> Result<Value, DocsError> {
        Ok(db::read::get(
            self.txn,
            &self.db,
            collection,
            id,
            reader,
            self.fold.scripts(),
        )?)
    }

    /// Whether every id exists and is visible to `reader`.
    pub fn has(
        &mut self,
        collection: &str,
        ids: &[&str],
        reader: Option<&str>,
    ) -> Result<bool, DocsError> {
        Ok(db::read::has(
            self.txn,
            &self.db,
            collection,
            ids,
            reader,
            self.fold.scripts(),
        )?)
    }

    /// Runs a query.
    pub fn find(
        &mut self,
        collection: &str,
        query: &Query,
        reader: Option<&str>,
    ) -> Result<Vec<Row>, DocsError> {
        Ok(db::read::find(
            self.txn,
            &self.db,
            collection,
            query,
            reader,
            self.fold.scripts(),
        )?)
    }

    /// Runs a query; each result as JSON text ([`db::read::find_json`]).
    pub fn find_json(
        &mut self,
        collection: &str,
        query: &Query,
        reader: Option<&str>,
    ) -> Result<Vec<JsonRow>, DocsError> {
        Ok(db::read::find_json(
            self.txn,
            &self.db,
            collection,
            query,
            reader,
            self.fold.scripts(),
        )?)
    }

    /// A collection's definition.
    pub fn collection_info(&self, name: &str) -> Result<CollectionConfig, DocsError> {
        Ok(db::read::collection_info(self.txn, &self.db, name)?)
    }
}
