//! The embedded document database: databases (threads), collections, instances, write
//! transactions and listeners, on top of the replication engine.
//!
//! [`Documents`] owns a replication [`Host`] whose application hook is the convergent
//! document fold. Writes are buffered in a [`WriteTxn`] (a failed operation is not added; reads
//! inside it see the committed state, as in go-threads) and commit as **one record**; the fold validates it in the engine's transaction, so a rejected write
//! stores and publishes nothing. Reads go to the folded state through the read filters. Every
//! change, local or replicated, is published to a [`ChangeFeed`] for listeners.
//!
//! The driver feeds the host (`host_mut().handle_message(..)`, timers) and drains outputs with
//! [`Documents::poll_output`], which also publishes changes.

mod commit;
mod ids;
mod snapshot;

pub use snapshot::Snapshot;

use crate::db::{self, Batch, CollectionConfig, DbError, DbEvent, DocFold, JsonRow, Row};
use crate::fold::{self, Convergent, Fold, OrderKey, Outcome, RecordInfo};
use crate::listen::{Action, Change, ChangeFeed, Filter, Lagged, ListenerId};
use crate::query::Query;
use serde_json::Value;
use serde_json::value::RawValue;
use threads_protocol::engine::{
    ApplyError, Config, EngineError, Event, Host, NewThread, Output, ThreadInfo, Time,
};
use threads_protocol::id::ThreadId;
use threads_protocol::identity::{PrivateKey, PublicKey};
use threads_protocol::record::VerifiedRecord;
use threads_protocol::rng::{ProtocolRng, Rng};
use threads_protocol::store::{ReadTxn, Store, StoreError};

/// How many changes the feed keeps for slow listeners.
pub const FEED_CAPACITY: usize = 10_000;

/// Why a database operation failed. Nothing was written when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocsError {
    /// The replication engine refused (unknown thread, storage failure...).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A read failed (unknown collection, instance not found, bad query...).
    #[error(transparent)]
    Db(#[from] DbError),
    /// The write breaks a rule of the database (schema, validator, unique index...).
    #[error("{0}")]
    Rejected(String),
    /// The request itself is malformed.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The store was written with another layout of the document state (see the message for
    /// what to do); nothing was changed.
    #[error(transparent)]
    Layout(#[from] fold::LayoutError),
}

impl From<ApplyError> for DocsError {
    /// A failure of the fold's machinery (store, script engine) while checking a write.
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::Store(e) => DocsError::Store(e),
            other => DocsError::Engine(EngineError::Application(other)),
        }
    }
}

/// A write transaction: buffered events of one database, committed as one record by
/// [`Documents::commit`].
///
/// Every operation is checked when it is made (schema, validator, unique indexes, existence,
/// against the committed state with the transaction's earlier operations applied). An
/// operation that fails returns its error and is **not** added; the transaction stays usable
/// and its other operations still commit, as in go-threads. Reads through
/// [`Documents::txn_get`] and [`Documents::txn_find`] see the committed state only (COMPAT
/// §d). The commit folds the whole batch again and is refused as a whole if that fails (a
/// concurrent change may have made it invalid).
#[derive(Clone, Debug)]
pub struct WriteTxn {
    db: ThreadId,
    author: Option<PublicKey>,
    events: Vec<DbEvent>,
    /// Operations are only checked at the commit (see [`Documents::begin_deferred`]).
    deferred: bool,
}

impl WriteTxn {
    /// The database this transaction writes to.
    pub fn db(&self) -> &ThreadId {
        &self.db
    }

    /// The buffered events.
    pub fn events(&self) -> &[DbEvent] {
        &self.events
    }

    /// Whether the rule checks of its operations wait for the commit
    /// ([`Documents::begin_deferred`]).
    pub fn is_deferred(&self) -> bool {
        self.deferred
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// How many events are buffered.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Keeps only the first `len` buffered events: undoes the operations added since (e.g. one
    /// that failed, so it does not poison the rest of the transaction).
    pub fn truncate(&mut self, len: usize) {
        self.events.truncate(len);
    }
}

/// Whether two events may interact: same collection and instance, or either is a collection
/// event of the other's collection.
fn related(a: &DbEvent, b: &DbEvent) -> bool {
    let instance = |e: &DbEvent| match e {
        DbEvent::Create { id, .. } | DbEvent::Save { id, .. } | DbEvent::Delete { id, .. } => {
            Some(id.clone())
        }
        _ => None,
    };
    a.collection() == b.collection()
        && match (instance(a), instance(b)) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        }
}

/// The document database of one host. See the [module docs](self).
pub struct Documents<S: Store> {
    host: Host<S, Convergent<DocFold>>,
    feed: ChangeFeed,
    ids: ids::InstanceIds,
}

/// The JSON type name of a value, for error messages.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl<S: Store> Documents<S> {
    /// Opens the database host on `store` (see [`Host::open`]). `rng` seeds the engine and the
    /// instance id generator.
    pub fn open(
        config: Config,
        store: S,
        mut rng: ProtocolRng,
        identity: Option<PrivateKey>,
        now: Time,
    ) -> Result<Self, DocsError> {
        fold::check_layout(&store)?.map_err(DocsError::Layout)?;
        let engine_rng = threads_protocol::rng::seeded(rng.next_u64());
        let app = Convergent::new(DocFold::new());
        let host = Host::open(config, store, app, engine_rng, identity, now)?;
        Ok(Documents {
            host,
            feed: ChangeFeed::new(FEED_CAPACITY),
            ids: ids::InstanceIds::new(rng),
        })
    }

    /// The replication host (for the driver: peer messages, timers, thread commands).
    pub fn host(&self) -> &Host<S, Convergent<DocFold>> {
        &self.host
    }

    /// The replication host, mutably.
    pub fn host_mut(&mut self) -> &mut Host<S, Convergent<DocFold>> {
        &mut self.host
    }

    /// Shuts the database down and hands back its replication host (and through it the
    /// store, to close or reopen it).
    pub fn into_host(self) -> Host<S, Convergent<DocFold>> {
        self.host
    }

    /// The next engine output; publishes the changes of every record added.
    pub fn poll_output(&mut self) -> Option<Output> {
        let out = self.host.poll_output()?;
        if let Output::Event(Event::RecordAdded { thread, record, .. }) = &out {
            // A record whose changes cannot be read back is still stored; listeners can
            // re-read the state. The failure is logged, not dropped silently.
            if let Err(error) = self.publish(thread, record) {
                tracing::warn!(%error, thread = %thread, "changes of a stored record not published");
            }
        }
        Some(out)
    }

    /// Creates a database: a thread with a read key and this host's log.
    pub fn new_db(&mut self, now: Time, opts: NewThread) -> Result<ThreadInfo, DocsError> {
        if opts.key.as_ref().is_some_and(|k| !k.can_read()) {
            return Err(DocsError::Invalid("thread read key is required".into()));
        }
        Ok(self.host.create_thread(now, opts)?)
    }

    /// Starts a write transaction on `db`, written by `author` (the host identity if `None`).
    pub fn begin(&self, db: &ThreadId, author: Option<PublicKey>) -> WriteTxn {
        WriteTxn {
            db: *db,
            author,
            events: Vec::new(),
            deferred: false,
        }
    }

    /// Starts a write transaction whose operations are **not** checked against the rules
    /// (schema, validator, unique indexes, existence) one by one: malformed requests are still
    /// refused at once, but a rule an operation breaks only shows when the commit folds the
    /// record, which then fails as a whole. Reads that build operations (a save's patch, which
    /// ids a delete finds) still see the committed state.
    ///
    /// For callers that commit at once and can redo a failed transaction with [`Self::begin`]
    /// to learn which operation failed: the common case, where every operation is valid, then
    /// folds each operation once (at the commit) instead of twice.
    pub fn begin_deferred(&self, db: &ThreadId, author: Option<PublicKey>) -> WriteTxn {
        WriteTxn {
            deferred: true,
            ..self.begin(db, author)
        }
    }

    /// Adds a collection definition to the transaction.
    pub fn txn_new_collection(
        &mut self,
        txn: &mut WriteTxn,
        config: CollectionConfig,
    ) -> Result<(), DocsError> {
        txn.events.push(DbEvent::CreateCollection(config));
        self.keep_if_valid(txn, txn.events.len() - 1, Self::check_pending)
    }

    /// Replaces a collection definition in the transaction.
    pub fn txn_update_collection(
        &mut self,
        txn: &mut WriteTxn,
        config: CollectionConfig,
    ) -> Result<(), DocsError> {
        txn.events.push(DbEvent::UpdateCollection(config));
        self.keep_if_valid(txn, txn.events.len() - 1, Self::check_pending)
    }

    /// Deletes a collection (and its instances) in the transaction.
    pub fn txn_delete_collection(
        &mut self,
        txn: &mut WriteTxn,
        name: &str,
    ) -> Result<(), DocsError> {
        txn.events
            .push(DbEvent::DeleteCollection { name: name.into() });
        self.keep_if_valid(txn, txn.events.len() - 1, Self::check_pending)
    }

    /// Creates an instance; a missing or empty `_id` gets a new lowercase ULID. Sets `_mod` to
    /// `unix_nanos`. Returns the instance id.
    pub fn txn_create(
        &mut self,
        txn: &mut WriteTxn,
        collection: &str,
        mut instance: Value,
        unix_nanos: u64,
    ) -> Result<String, DocsError> {
        let Value::Object(map) = &mut instance else {
            return Err(DocsError::Invalid(
                "an instance must be a JSON object".into(),
            ));
        };
        let id = match map.get("_id") {
            None => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(DocsError::Invalid(
                    "invalid instance: _id must be a string".into(),
                ));
            }
        };
        let id = id.unwrap_or_else(|| self.ids.next(unix_nanos));
        map.insert("_id".into(), Value::String(id.clone()));
        map.insert("_mod".into(), Value::from(unix_nanos));
        txn.events.push(DbEvent::Create {
            collection: collection.into(),
            id: id.clone(),
            instance,
        });
        self.keep_if_valid(txn, txn.events.len() - 1, Self::check_last)?;
        Ok(id)
    }

    /// Saves (upserts) an instance: records the merge patch from its current document (as this
    /// transaction sees it) to `instance`, with `_mod` set to `unix_nanos`.
    pub fn txn_save(
        &mut self,
        txn: &mut WriteTxn,
        collection: &str,
        mut instance: Value,
        unix_nanos: u64,
    ) -> Result<(), DocsError> {
        let Value::Object(map) = &mut instance else {
            return Err(DocsError::Invalid(
                "an instance must be a JSON object".into(),
            ));
        };
        let id = match map.get("_id") {
            Some(Value::String(id)) => id.clone(),
            None => {
                return Err(DocsError::Invalid(
                    "invalid instance: missing _id attribute".into(),
                ));
            }
            Some(other) => {
                return Err(DocsError::Invalid(format!(
                    "invalid instance: _id must be a string, not {}",
                    json_type(other)
                )));
            }
        };
        map.insert("_mod".into(), Value::from(unix_nanos));
        let current = self.pending_instance(txn, collection, &id)?;
        let patch = db::merge::diff(
            &current.unwrap_or(Value::Object(Default::default())),
            &instance,
        );
        txn.events.push(DbEvent::Save {
            collection: collection.into(),
            id,
            patch,
        });
        self.keep_if_valid(txn, txn.events.len() - 1, Self::check_last)
    }

    /// Deletes instances; returns the ids that did not exist (every id is handled).
    pub fn txn_delete(
        &mut self,
        txn: &mut WriteTxn,
        collection: &str,
        ids: &[&str],
    ) -> Result<Vec<String>, DocsError> {
        let mut missing = Vec::new();
        let before = txn.events.len();
        for id in ids {
            let exists = self.pending_instance(txn, collection, id)?.is_some();
            if exists {
                txn.events.push(DbEvent::Delete {
                    collection: collection.into(),
                    id: (*id).into(),
                });
            } else {
                missing.push((*id).to_string());
            }
        }
        self.keep_if_valid(txn, before, Self::check_pending)?;
        Ok(missing)
    }

    /// Reads an instance of the transaction's database through the read filter for `reader`.
    ///
    /// As in go-threads (COMPAT §d), reads inside a write transaction see the **committed**
    /// state only, not the transaction's own buffered writes: an instance created in `txn` is
    /// "instance not found" here until the commit. (Saves and deletes of `txn` do account for
    /// its earlier writes when they compute their patches and missing ids.)
    pub fn txn_get(
        &mut self,
        txn: &WriteTxn,
        collection: &str,
        id: &str,
        reader: Option<&str>,
    ) -> Result<Value, DocsError> {
        let db = txn.db;
        self.get(&db, collection, id, reader)
    }

    /// Runs a query on the committed state of the transaction's database (see
    /// [`Documents::txn_get`] for why the transaction's own writes are not seen).
    pub fn txn_find(
        &mut self,
        txn: &WriteTxn,
        collection: &str,
        query: &Query,
        reader: Option<&str>,
    ) -> Result<Vec<Row>, DocsError> {
        let db = txn.db;
        self.find(&db, collection, query, reader)
    }

    /// Checks the transaction against every rule (schemas, validators, unique indexes) without
    /// committing anything.
    pub fn verify(&mut self, txn: &WriteTxn) -> Result<(), DocsError> {
        self.check_pending(txn)
    }

    /// A collection's definition.
    pub fn collection_info(
        &self,
        db: &ThreadId,
        name: &str,
    ) -> Result<CollectionConfig, DocsError> {
        let txn = self.host.store().read()?;
        Ok(db::read::collection_info(&txn, db, name)?)
    }

    /// Every collection of a database.
    pub fn list_collections(&self, db: &ThreadId) -> Result<Vec<CollectionConfig>, DocsError> {
        let txn = self.host.store().read()?;
        Ok(db::read::list_collections(&txn, db)?)
    }

    /// An instance as `reader` sees it.
    pub fn get(
        &mut self,
        db: &ThreadId,
        collection: &str,
        id: &str,
        reader: Option<&str>,
    ) -> Result<Value, DocsError> {
        let (store, app) = self.host.store_and_app();
        let txn = store.read()?;
        let scripts = app.fold_mut().scripts();
        Ok(db::read::get(&txn, db, collection, id, reader, scripts)?)
    }

    /// Whether every id exists and is visible to `reader`.
    pub fn has(
        &mut self,
        db: &ThreadId,
        collection: &str,
        ids: &[&str],
        reader: Option<&str>,
    ) -> Result<bool, DocsError> {
        let (store, app) = self.host.store_and_app();
        let txn = store.read()?;
        let scripts = app.fold_mut().scripts();
        Ok(db::read::has(&txn, db, collection, ids, reader, scripts)?)
    }

    /// Runs a query on a consistent snapshot.
    pub fn find(
        &mut self,
        db: &ThreadId,
        collection: &str,
        query: &Query,
        reader: Option<&str>,
    ) -> Result<Vec<Row>, DocsError> {
        let (store, app) = self.host.store_and_app();
        let txn = store.read()?;
        let scripts = app.fold_mut().scripts();
        Ok(db::read::find(
            &txn, db, collection, query, reader, scripts,
        )?)
    }

    /// Runs a query on a consistent snapshot; each result as JSON text, as the daemon sends it
    /// ([`db::read::find_json`]: the same rows as [`Self::find`], not parsed).
    pub fn find_json(
        &mut self,
        db: &ThreadId,
        collection: &str,
        query: &Query,
        reader: Option<&str>,
    ) -> Result<Vec<JsonRow>, DocsError> {
        let (store, app) = self.host.store_and_app();
        let txn = store.read()?;
        let scripts = app.fold_mut().scripts();
        Ok(db::read::find_json(
            &txn, db, collection, query, reader, scripts,
        )?)
    }

    /// Runs `reads` on one consistent snapshot of the state: every read inside sees the same
    /// committed state, whatever commits meanwhile (a read transaction).
    pub fn snapshot<T>(
        &mut self,
        db: &ThreadId,
        reads: impl FnOnce(&mut Snapshot<'_>) -> T,
    ) -> Result<T, DocsError> {
        let (store, app) = self.host.store_and_app();
        let txn = store.read()?;
        let mut snap = Snapshot {
            db: *db,
            txn: &txn,
            fold: app.fold_mut(),
        };
        Ok(reads(&mut snap))
    }

    /// The digest of a database's folded state: equal on replicas holding the same records.
    pub fn state_digest(&self, db: &ThreadId) -> Result<[u8; 32], DocsError> {
        let txn = self.host.store().read()?;
        Ok(fold::state_digest(&txn, db)?)
    }

    /// Adds a listener on `db` (see [`ChangeFeed::listen`]).
    pub fn listen(&mut self, db: &ThreadId, filters: Vec<Filter>, from: Option<u64>) -> ListenerId {
        self.feed.listen(*db, filters, from)
    }

    /// The next change for a listener, as `reader` sees it: creates and saves carry the current
    /// instance through the read filter and are skipped when the filter hides it; deletes carry
    /// no instance. `Err(Lagged)` when the listener fell behind the feed's history.
    pub fn next_change(
        &mut self,
        id: ListenerId,
        reader: Option<&str>,
    ) -> Result<Option<Change>, Lagged> {
        while let Some(mut change) = self.feed.next(id)? {
            if change.action == Action::Delete {
                change.instance = None;
                return Ok(Some(change));
            }
            let Some(text) = change.instance.take() else {
                continue; // gone again since: a later change reports it
            };
            let bytes = self.host.store().read().ok().and_then(|t| {
                db::read::collection_config_bytes(&t, &change.db, &change.collection)
                    .ok()
                    .flatten()
            });
            let filter = bytes.and_then(|b| {
                let fold = self.host.app_mut().fold_mut();
                fold.read_filter(&change.collection, b).ok()
            });
            let Some(filter) = filter else { continue };
            let seen = if filter.is_empty() {
                Some(text)
            } else {
                // The feed checked the text as JSON when it took it from the store.
                let Ok(doc) = serde_json::from_str::<serde_json::Value>(text.get()) else {
                    continue;
                };
                let scripts = self.host.app_mut().fold_mut().scripts();
                scripts
                    .filter(&filter, reader, &doc)
                    .and_then(|v| serde_json::value::to_raw_value(&v).ok())
            };
            if let Some(text) = seen {
                change.instance = Some(text);
                return Ok(Some(change));
            }
        }
        Ok(None)
    }

    /// Moves a listener (after [`Lagged`]) to `from`.
    pub fn resume(&mut self, id: ListenerId, from: u64) {
        self.feed.resume(id, from);
    }

    /// Removes a listener.
    pub fn close_listener(&mut self, id: ListenerId) {
        self.feed.close(id);
    }

    /// The feed (positions, for resuming).
    pub fn feed(&self) -> &ChangeFeed {
        &self.feed
    }

    /// Runs `check` on the transaction with the events from index `from` on just added; when
    /// it fails, those events are removed again, so a failed operation is not part of the
    /// transaction and the others still commit (as in go-threads).
    fn keep_if_valid(
        &mut self,
        txn: &mut WriteTxn,
        from: usize,
        check: fn(&mut Self, &WriteTxn) -> Result<(), DocsError>,
    ) -> Result<(), DocsError> {
        if txn.deferred {
            return Ok(());
        }
        let result = check(self, txn);
        if result.is_err() {
            txn.events.truncate(from);
        }
        result
    }

    /// Checks the pending events by folding them into a transaction that is then dropped.
    fn check_pending(&mut self, txn: &WriteTxn) -> Result<(), DocsError> {
        self.with_pending(txn, |_, _| Ok(()))
    }

    /// Checks the event just added. When no earlier pending event concerns the same collection
    /// and instance, folding it alone on the committed state is enough (constant cost per
    /// call); otherwise, or when that fails, the whole pending batch is folded for the exact
    /// answer. The commit folds the whole batch anyway, so this only decides how early an
    /// error shows.
    fn check_last(&mut self, txn: &WriteTxn) -> Result<(), DocsError> {
        let Some((last, earlier)) = txn.events.split_last() else {
            return Ok(());
        };
        if !earlier.iter().any(|e| related(e, last))
            && self
                .with_events(txn, std::slice::from_ref(last), |_, _| Ok(()))
                .is_ok()
        {
            return Ok(());
        }
        self.check_pending(txn)
    }

    /// Reads a stored instance as the transaction sees it: from the committed state when no
    /// pending event concerns it, else with the pending events folded in.
    fn pending_instance(
        &mut self,
        txn: &WriteTxn,
        collection: &str,
        id: &str,
    ) -> Result<Option<Value>, DocsError> {
        let db = txn.db;
        let probe = DbEvent::Delete {
            collection: collection.into(),
            id: id.into(),
        };
        let events: &[DbEvent] = if txn.events.iter().any(|e| related(e, &probe)) {
            &txn.events
        } else {
            &[]
        };
        self.with_events(txn, events, |t, _| {
            Ok(db::read::stored(t, &db, collection, id)?)
        })
    }

    /// Runs `read` on the state as `txn` would leave it: the pending events are folded into a
    /// store write transaction that is dropped afterwards (nothing is committed).
    fn with_pending<T>(
        &mut self,
        txn: &WriteTxn,
        read: impl FnOnce(&dyn ReadTxn, &mut DocFold) -> Result<T, DocsError>,
    ) -> Result<T, DocsError> {
        self.with_events(txn, &txn.events, read)
    }

    /// Like [`Self::with_pending`], folding only `events` (a subset of the pending ones).
    fn with_events<T>(
        &mut self,
        txn: &WriteTxn,
        events: &[DbEvent],
        read: impl FnOnce(&dyn ReadTxn, &mut DocFold) -> Result<T, DocsError>,
    ) -> Result<T, DocsError> {
        if events.is_empty() {
            // Nothing to fold: a read transaction, not a scratch write transaction.
            let (store, app) = self.host.store_and_app();
            let snapshot = store.read()?;
            return read(&snapshot, app.fold_mut());
        }
        let author = txn.author.unwrap_or_else(|| self.host.identity().public());
        let info = RecordInfo {
            thread: txn.db,
            order: OrderKey {
                clock: u64::MAX,
                log: *author.peer_id().as_bytes(),
                counter: u64::MAX,
            },
            log: author.peer_id(),
            author,
            time: 0,
        };
        let (store, app) = self.host.store_and_app();
        let fold = app.fold_mut();
        let body = Batch::new(events.to_vec()).encode_json();
        let mut scratch = store.write()?;
        let outcome = fold.apply(&mut scratch, &info, &body)?;
        // A dry run is never published: drop the heads the fold kept for it.
        let _ = fold.take_applied_heads(&info.thread, &info.order);
        if let Outcome::Rejected(reason) = outcome {
            return Err(DocsError::Rejected(reason));
        }
        read(&scratch, fold)
    }

    /// Publishes the instance changes of a stored record to the feed.
    fn publish(&mut self, thread: &ThreadId, record: &VerifiedRecord) -> Result<(), DocsError> {
        let order = OrderKey::of(record);
        // The heads the fold kept when it applied the record, if it still has them.
        let applied = self
            .host
            .app_mut()
            .fold_mut()
            .take_applied_heads(thread, &order);
        let txn = self.host.store().read()?;
        if fold::rejection(&txn, thread, &order)?.is_some() {
            return Ok(());
        }
        // Each event's head, and what it stored when the fold kept that (`None`: read it).
        let events: Vec<(db::event::EventHead, Option<Option<Box<RawValue>>>)> = match applied {
            Some(events) => events
                .into_iter()
                .map(|e| (e.head, Some(e.stored)))
                .collect(),
            None => {
                let Some(body) = fold::record_body(&txn, thread, &order)? else {
                    return Ok(()); // not a record the fold saw (no read key)
                };
                // The fold accepted the body (the record is not rejected): its heads decode.
                let Ok(heads) = Batch::decode_heads(&body) else {
                    return Ok(());
                };
                heads.into_iter().map(|h| (h, None)).collect()
            }
        };
        let keys = db::keys::Keys::new(thread);
        let mut collections: Vec<(String, bool)> = Vec::new();
        let mut changes = Vec::new();
        for (head, stored) in events {
            let action = match head.kind.as_str() {
                "create" => Action::Create,
                "save" => Action::Save,
                "delete" => Action::Delete,
                _ => continue,
            };
            let (Some(collection), Some(id)) = (head.collection, head.id) else {
                continue;
            };
            let exists = match collections.iter().find(|(c, _)| *c == collection) {
                Some((_, e)) => *e,
                None => {
                    let e = db::read::collection_exists(&txn, thread, &collection).unwrap_or(false);
                    collections.push((collection.clone(), e));
                    e
                }
            };
            let instance = match stored {
                _ if !exists => None,
                // The fold serialized it: handed over as it is.
                Some(json) => json,
                None => db::read::read_instance_json(&txn, &keys, &collection, &id)
                    .ok()
                    .flatten(),
            };
            changes.push(Change {
                position: 0,
                db: *thread,
                collection,
                instance_id: id,
                action,
                instance,
            });
        }
        drop(txn);
        for c in changes {
            self.feed.publish(c);
        }
        Ok(())
    }
}
