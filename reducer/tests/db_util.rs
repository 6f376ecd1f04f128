//! Shared helpers of the `db_*` tests (included with `#[path]`; as a test target of its own it
//! has no tests).

#![allow(dead_code)]

use std::collections::BTreeMap;

use serde_json::{Value, json};
use threads_protocol::id::{ThreadId, Variant};
use threads_protocol::identity::{PrivateKey, PublicKey};
use threads_protocol::store::memory::MemoryStore;
use threads_protocol::store::{Store, WriteTxn};
use threads_reducer::db::{
    Batch, CollectionConfig, DbError, DbEvent, DocFold, IndexSpec, Row, Scripts, read,
};
use threads_reducer::fold::{Convergent, OrderKey, Outcome, RecordInfo, state_digest};
use threads_reducer::query::Query;

/// The thread every test uses.
pub fn thread() -> ThreadId {
    ThreadId::new(Variant::Raw, &[7; 32]).expect("valid thread id")
}

/// The identity of writer `n`.
pub fn author(n: u8) -> PublicKey {
    PrivateKey::from_seed([n; 32]).public()
}

/// Record info of writer `writer`'s record number `counter` at `clock`.
pub fn info(thread: &ThreadId, writer: u8, clock: u64, counter: u64) -> RecordInfo {
    let author = author(writer);
    let log = author.peer_id();
    RecordInfo {
        thread: *thread,
        order: OrderKey {
            clock,
            log: *log.as_bytes(),
            counter,
        },
        log,
        author,
        time: 1_600_000_000_000_000_000 + clock,
    }
}

/// A default-ish collection: the given schema properties plus `_id`, and indexes.
pub fn coll(name: &str, props: Value, indexes: &[(&str, bool)]) -> CollectionConfig {
    let mut props = props.as_object().cloned().unwrap_or_default();
    props.insert("_id".into(), json!({"type": "string"}));
    CollectionConfig {
        name: name.into(),
        schema: json!({"type": "object", "properties": props}),
        indexes: indexes
            .iter()
            .map(|(p, u)| IndexSpec {
                path: (*p).into(),
                unique: *u,
            })
            .collect(),
        write_validator: String::new(),
        read_filter: String::new(),
    }
}

/// The people schema of the upstream tests.
pub fn people(name: &str, indexes: &[(&str, bool)]) -> CollectionConfig {
    coll(
        name,
        json!({"name": {"type": "string"}, "age": {"type": "integer"}}),
        indexes,
    )
}

/// `create` with `_id` set in the document.
pub fn create(collection: &str, id: &str, doc: Value) -> DbEvent {
    let mut doc = doc;
    if let Value::Object(m) = &mut doc {
        m.insert("_id".into(), json!(id));
    }
    DbEvent::Create {
        collection: collection.into(),
        id: id.into(),
        instance: doc,
    }
}

/// `save` with a merge patch.
pub fn save(collection: &str, id: &str, patch: Value) -> DbEvent {
    DbEvent::Save {
        collection: collection.into(),
        id: id.into(),
        patch,
    }
}

/// `delete`.
pub fn delete(collection: &str, id: &str) -> DbEvent {
    DbEvent::Delete {
        collection: collection.into(),
        id: id.into(),
    }
}

/// A store with a folded thread, written record by record by numbered writers.
pub struct Harness {
    pub store: MemoryStore,
    pub fold: Convergent<DocFold>,
    pub thread: ThreadId,
    pub clock: u64,
    pub counters: BTreeMap<u8, u64>,
    pub scripts: Scripts,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    /// An empty database.
    pub fn new() -> Self {
        Harness {
            store: MemoryStore::new(),
            fold: Convergent::new(DocFold::new()),
            thread: thread(),
            clock: 0,
            counters: BTreeMap::new(),
            scripts: Scripts::new(),
        }
    }

    /// Folds one raw body written by `writer` as the next record in order.
    pub fn apply_body(&mut self, writer: u8, body: &[u8]) -> Outcome {
        self.clock += 1;
        let counter = self.counters.entry(writer).or_insert(0);
        *counter += 1;
        let info = info(&self.thread, writer, self.clock, *counter);
        let mut txn = self.store.write().unwrap();
        let out = self.fold.fold_in(&mut txn, &info, body).unwrap();
        txn.commit().unwrap();
        out
    }

    /// Folds one batch written by `writer`.
    pub fn apply_as(&mut self, writer: u8, events: Vec<DbEvent>) -> Outcome {
        self.apply_body(writer, &Batch::new(events).encode())
    }

    /// Folds one batch by writer 1; panics unless it is applied.
    pub fn ok(&mut self, events: Vec<DbEvent>) {
        match self.apply_as(1, events) {
            Outcome::Applied => {}
            Outcome::Rejected(r) => panic!("rejected: {r}"),
        }
    }

    /// Folds one batch by writer 1; panics unless it is rejected, returns the reason.
    pub fn rejected(&mut self, events: Vec<DbEvent>) -> String {
        match self.apply_as(1, events) {
            Outcome::Applied => panic!("unexpectedly applied"),
            Outcome::Rejected(r) => r,
        }
    }

    /// The state digest of the thread.
    pub fn digest(&self) -> [u8; 32] {
        state_digest(&self.store.read().unwrap(), &self.thread).unwrap()
    }

    /// `find` with a query in either syntax.
    pub fn find(
        &mut self,
        collection: &str,
        query: Value,
        reader: Option<&str>,
    ) -> Result<Vec<Row>, DbError> {
        let q = Query::from_json(&query).expect("valid query");
        self.find_q(collection, &q, reader)
    }

    /// `find` with a parsed query.
    pub fn find_q(
        &mut self,
        collection: &str,
        query: &Query,
        reader: Option<&str>,
    ) -> Result<Vec<Row>, DbError> {
        let txn = self.store.read().unwrap();
        let rows = read::find(
            &txn,
            &self.thread,
            collection,
            query,
            reader,
            &mut self.scripts,
        );
        // Every query the suites run also checks that the JSON-text form gives the same rows.
        let json = read::find_json(
            &txn,
            &self.thread,
            collection,
            query,
            reader,
            &mut self.scripts,
        );
        match (&rows, json) {
            (Ok(rows), Ok(json)) => {
                let parsed: Vec<Row> = json
                    .iter()
                    .map(|(id, text)| (id.clone(), serde_json::from_str(text.get()).unwrap()))
                    .collect();
                assert_eq!(&parsed, rows, "find_json disagrees with find");
                for ((_, text), (_, doc)) in json.iter().zip(rows) {
                    assert_eq!(text.get(), serde_json::to_string(doc).unwrap());
                }
            }
            (Err(a), Err(b)) => assert_eq!(a, &b, "find_json fails otherwise than find"),
            (a, b) => panic!("find gave {a:?}, find_json {b:?}"),
        }
        rows
    }

    /// IDs of `find` results.
    pub fn find_ids(&mut self, collection: &str, query: Value) -> Vec<String> {
        self.find(collection, query, None)
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    }

    /// `get` through the read filter.
    pub fn get(
        &mut self,
        collection: &str,
        id: &str,
        reader: Option<&str>,
    ) -> Result<Value, DbError> {
        let txn = self.store.read().unwrap();
        read::get(
            &txn,
            &self.thread,
            collection,
            id,
            reader,
            &mut self.scripts,
        )
    }

    /// The stored instance, unfiltered.
    pub fn stored(&self, collection: &str, id: &str) -> Option<Value> {
        let txn = self.store.read().unwrap();
        read::stored(&txn, &self.thread, collection, id).unwrap()
    }

    /// `has` through the read filter.
    pub fn has(&mut self, collection: &str, ids: &[&str], reader: Option<&str>) -> bool {
        let txn = self.store.read().unwrap();
        read::has(
            &txn,
            &self.thread,
            collection,
            ids,
            reader,
            &mut self.scripts,
        )
        .unwrap()
    }

    /// A collection's definition.
    pub fn info(&self, collection: &str) -> Result<CollectionConfig, DbError> {
        let txn = self.store.read().unwrap();
        read::collection_info(&txn, &self.thread, collection)
    }

    /// How many keys of the thread's state are in key space `space` (see `db::keys`).
    pub fn count_space(&self, space: u8) -> usize {
        use threads_protocol::store::scan_prefix_collect;
        let mut p = threads_reducer::fold::state_prefix(&self.thread);
        p.push(space);
        let txn = self.store.read().unwrap();
        scan_prefix_collect(&txn, &p, usize::MAX).unwrap().len()
    }
}

/// Opens a write transaction on a store (for tests that fold by hand).
pub fn write(store: &MemoryStore) -> impl WriteTxn + '_ {
    store.write().unwrap()
}
