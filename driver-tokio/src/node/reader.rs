//! Reads on LMDB snapshots, off the engine thread.
//!
//! Each read opens a read transaction (a consistent snapshot) in tokio's blocking pool. Read
//! filters need a JavaScript engine, which is single-threaded: every blocking thread keeps its
//! own [`Scripts`], created on first use.

use crate::lmdb::LmdbStore;
use crate::node::NodeError;
use serde_json::Value;
use std::cell::RefCell;
use std::sync::{Arc, Mutex};
use threads_protocol::id::ThreadId;
use threads_protocol::store::{ReadTxn, Store};
use threads_reducer::db::{self, CollectionConfig, JsonRow, Row, Scripts};
use threads_reducer::fold;
use threads_reducer::query::Query;

thread_local! {
    static SCRIPTS: RefCell<Option<Scripts>> = const { RefCell::new(None) };
}

/// Runs reads of the document database on snapshots. Cheap to clone.
#[derive(Clone)]
pub struct Reader {
    store: Arc<Mutex<Option<LmdbStore>>>,
}

/// A read transaction: several reads of one database on one snapshot.
pub struct ReadSnapshot<'a> {
    db: ThreadId,
    txn: &'a dyn ReadTxn,
    scripts: &'a mut Scripts,
}

impl ReadSnapshot<'_> {
    /// An instance as `reader` sees it.
    pub fn get(
        &mut self,
        collection: &str,
        id: &str,
        reader: Option<&str>,
    ) -> Result<Value, NodeError> {
        Ok(
            db::read::get(self.txn, &self.db, collection, id, reader, self.scripts)
                .map_err(threads_reducer::docs::DocsError::from)?,
        )
    }

    /// Whether every id exists and is visible to `reader`.
    pub fn has(
        &mut self,
        collection: &str,
        ids: &[&str],
        reader: Option<&str>,
    ) -> Result<bool, NodeError> {
        Ok(
            db::read::has(self.txn, &self.db, collection, ids, reader, self.scripts)
                .map_err(threads_reducer::docs::DocsError::from)?,
        )
    }

    /// Runs a query.
    pub fn find(
        &mut self,
        collection: &str,
        query: &Query,
        reader: Option<&str>,
    ) -> Result<Vec<Row>, NodeError> {
        Ok(
            db::read::find(self.txn, &self.db, collection, query, reader, self.scripts)
                .map_err(threads_reducer::docs::DocsError::from)?,
        )
    }

    /// Runs a query; each result as JSON text, as clients get it (no parse of instances the
    /// read filter does not rewrite).
    pub fn find_json(
        &mut self,
        collection: &str,
        query: &Query,
        reader: Option<&str>,
    ) -> Result<Vec<JsonRow>, NodeError> {
        Ok(
            db::read::find_json(self.txn, &self.db, collection, query, reader, self.scripts)
                .map_err(threads_reducer::docs::DocsError::from)?,
        )
    }

    /// Fails with "thread not found" unless the database exists.
    pub fn require_db(&self) -> Result<(), NodeError> {
        let key = threads_protocol::engine::layout::thread(&self.db);
        match self.txn.get(&key)? {
            Some(_) => Ok(()),
            None => Err(threads_protocol::engine::EngineError::ThreadNotFound.into()),
        }
    }

    /// Whether the thread was created or added through the Net API (so no database owns it).
    pub fn is_net_thread(&self) -> Result<bool, NodeError> {
        Ok(crate::node::net_threads::load(self.txn, &self.db)?)
    }

    /// The database's local name ("" when it has none).
    pub fn db_name(&self) -> Result<String, NodeError> {
        Ok(crate::node::names::load(self.txn, &self.db)?)
    }

    /// A collection's definition.
    pub fn collection_info(&self, name: &str) -> Result<CollectionConfig, NodeError> {
        Ok(db::read::collection_info(self.txn, &self.db, name)
            .map_err(threads_reducer::docs::DocsError::from)?)
    }

    /// Every collection's definition.
    pub fn list_collections(&self) -> Result<Vec<CollectionConfig>, NodeError> {
        Ok(db::read::list_collections(self.txn, &self.db)
            .map_err(threads_reducer::docs::DocsError::from)?)
    }

    /// The digest of the database's folded state (equal on replicas with equal state).
    pub fn state_digest(&self) -> Result<[u8; 32], NodeError> {
        Ok(fold::state_digest(self.txn, &self.db)?)
    }
}

impl Reader {
    pub(crate) fn new(store: LmdbStore) -> Self {
        Reader {
            store: Arc::new(Mutex::new(Some(store))),
        }
    }

    /// Takes the store away (at shutdown); later reads fail with [`NodeError::Stopped`].
    pub(crate) fn take(&self) -> Option<LmdbStore> {
        self.store.lock().ok()?.take()
    }

    /// Runs `reads` on one snapshot of database `db` in the blocking pool.
    pub async fn snapshot<T, F>(&self, db: ThreadId, reads: F) -> Result<T, NodeError>
    where
        T: Send + 'static,
        F: FnOnce(&mut ReadSnapshot<'_>) -> Result<T, NodeError> + Send + 'static,
    {
        let store = self
            .store
            .lock()
            .map_err(|_| NodeError::Stopped)?
            .clone()
            .ok_or(NodeError::Stopped)?;
        tokio::task::spawn_blocking(move || {
            let txn = store.read()?;
            SCRIPTS.with(|cell| {
                let mut slot = cell.borrow_mut();
                let scripts = slot.get_or_insert_with(Scripts::new);
                let mut snap = ReadSnapshot {
                    db,
                    txn: &txn,
                    scripts,
                };
                reads(&mut snap)
            })
        })
        .await
        .map_err(|_| NodeError::Stopped)?
    }

    /// An instance as `reader` sees it.
    pub async fn get(
        &self,
        db: ThreadId,
        collection: &str,
        id: &str,
        reader: Option<&str>,
    ) -> Result<Value, NodeError> {
        let (collection, id, reader) = (
            collection.to_owned(),
            id.to_owned(),
            reader.map(str::to_owned),
        );
        self.snapshot(db, move |s| s.get(&collection, &id, reader.as_deref()))
            .await
    }

    /// Whether every id exists and is visible to `reader`.
    pub async fn has(
        &self,
        db: ThreadId,
        collection: &str,
        ids: Vec<String>,
        reader: Option<&str>,
    ) -> Result<bool, NodeError> {
        let (collection, reader) = (collection.to_owned(), reader.map(str::to_owned));
        self.snapshot(db, move |s| {
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            s.has(&collection, &ids, reader.as_deref())
        })
        .await
    }

    /// Runs a query.
    pub async fn find(
        &self,
        db: ThreadId,
        collection: &str,
        query: Query,
        reader: Option<&str>,
    ) -> Result<Vec<Row>, NodeError> {
        let (collection, reader) = (collection.to_owned(), reader.map(str::to_owned));
        self.snapshot(db, move |s| s.find(&collection, &query, reader.as_deref()))
            .await
    }

    /// A collection's definition.
    pub async fn collection_info(
        &self,
        db: ThreadId,
        name: &str,
    ) -> Result<CollectionConfig, NodeError> {
        let name = name.to_owned();
        self.snapshot(db, move |s| s.collection_info(&name)).await
    }

    /// Every collection's definition.
    pub async fn list_collections(&self, db: ThreadId) -> Result<Vec<CollectionConfig>, NodeError> {
        self.snapshot(db, |s| s.list_collections()).await
    }

    /// The digest of a database's folded state.
    pub async fn state_digest(&self, db: ThreadId) -> Result<[u8; 32], NodeError> {
        self.snapshot(db, |s| s.state_digest()).await
    }
}
