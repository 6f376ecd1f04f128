//! The fold's layout version: new stores get it, stores of another layout are refused at open
//! with a typed error and left unchanged.

use threads_protocol::engine::{Config, Time};
use threads_protocol::rng::seeded;
use threads_protocol::store::memory::MemoryStore;
use threads_protocol::store::{ReadTxn, Store, WriteTxn, content_digest, scan_prefix_collect};
use threads_reducer::docs::{DocsError, Documents};
use threads_reducer::fold::{
    LAYOUT_VERSION, LayoutError, ORDER_KEY_LEN, TAG_FOOTPRINT, TAG_LAYOUT, TAG_OPS, TAG_REJECTED,
    TAG_UNDO, check_layout,
};

fn open(store: MemoryStore) -> Result<Documents<MemoryStore>, DocsError> {
    Documents::open(Config::default(), store, seeded(1), None, Time(0))
}

#[test]
fn a_new_store_gets_the_current_version() {
    let store = MemoryStore::new();
    assert!(open(store.clone()).is_ok());
    let v = store.read().unwrap().get(&[TAG_LAYOUT]).unwrap();
    assert_eq!(v, Some(LAYOUT_VERSION.to_be_bytes().to_vec()));
    // Opening again is fine.
    assert_eq!(check_layout(&store).unwrap(), Ok(()));
}

#[test]
fn a_store_of_the_old_layout_is_refused_unchanged() {
    let store = MemoryStore::new();
    let mut txn = store.write().unwrap();
    // An operation-log key of layout 1 (`21 ‖ bytes(thread) ‖ ...`), no version key.
    txn.put(&[TAG_OPS, 1, 2, 3], b"x").unwrap();
    txn.commit().unwrap();
    let before = content_digest(&store.read().unwrap()).unwrap();
    let err = open(store.clone()).err().expect("refused");
    assert_eq!(
        err,
        DocsError::Layout(LayoutError {
            found: 1,
            expected: LAYOUT_VERSION
        })
    );
    let msg = err.to_string();
    assert!(msg.contains("version 1") && msg.contains("export"), "{msg}");
    assert_eq!(content_digest(&store.read().unwrap()).unwrap(), before);
}

#[test]
fn a_store_of_layout_two_is_converted() {
    let store = MemoryStore::new();
    let tag = [7u8; 8];
    let order = [3u8; ORDER_KEY_LEN];
    let at = |space: u8| [&[space][..], &tag, &order].concat();
    let mut txn = store.write().unwrap();
    txn.put(&[TAG_LAYOUT], &2u32.to_be_bytes()).unwrap();
    txn.put(&at(TAG_OPS), b"entry").unwrap();
    txn.put(&at(TAG_UNDO), b"undo").unwrap();
    txn.put(&at(TAG_FOOTPRINT), b"footprint").unwrap();
    txn.put(&at(TAG_REJECTED), b"reason").unwrap();
    txn.commit().unwrap();
    assert_eq!(check_layout(&store).unwrap(), Ok(()));
    let txn = store.read().unwrap();
    let v = txn.get(&[TAG_LAYOUT]).unwrap();
    assert_eq!(v, Some(LAYOUT_VERSION.to_be_bytes().to_vec()));
    // Undo log and footprint beside the operation-log entry; the rest where it was.
    let all = scan_prefix_collect(&txn, &[], usize::MAX).unwrap();
    let beside = |kind: u8| [at(TAG_OPS), vec![kind]].concat();
    assert_eq!(
        all,
        vec![
            (vec![TAG_LAYOUT], LAYOUT_VERSION.to_be_bytes().to_vec()),
            (at(TAG_OPS), b"entry".to_vec()),
            (beside(TAG_UNDO), b"undo".to_vec()),
            (beside(TAG_FOOTPRINT), b"footprint".to_vec()),
            (at(TAG_REJECTED), b"reason".to_vec()),
        ]
    );
    drop(txn);
    // A key of layout 2 of another length is refused, and nothing changes.
    let store = MemoryStore::new();
    let mut txn = store.write().unwrap();
    txn.put(&[TAG_LAYOUT], &2u32.to_be_bytes()).unwrap();
    txn.put(&[TAG_UNDO, 1, 2], b"x").unwrap();
    txn.commit().unwrap();
    let before = content_digest(&store.read().unwrap()).unwrap();
    assert!(check_layout(&store).is_err());
    assert_eq!(content_digest(&store.read().unwrap()).unwrap(), before);
}

#[test]
fn a_store_of_a_later_layout_is_refused() {
    let store = MemoryStore::new();
    let mut txn = store.write().unwrap();
    txn.put(&[TAG_LAYOUT], &(LAYOUT_VERSION + 1).to_be_bytes())
        .unwrap();
    txn.commit().unwrap();
    assert_eq!(
        check_layout(&store).unwrap(),
        Err(LayoutError {
            found: LAYOUT_VERSION + 1,
            expected: LAYOUT_VERSION
        })
    );
    let mut txn = store.write().unwrap();
    txn.put(&[TAG_LAYOUT], b"bad").unwrap();
    txn.commit().unwrap();
    assert!(check_layout(&store).is_err());
}

#[test]
fn the_operation_log_reads_bodies_of_stored_records_back() {
    use serde_json::json;
    use threads_protocol::engine::NewThread;
    use threads_reducer::db::{Batch, CollectionConfig};
    use threads_reducer::fold::{OpEntry, OrderKey, op_key, record_body};
    let store = MemoryStore::new();
    let mut docs = open(store.clone()).unwrap();
    let db = docs.new_db(Time(0), NewThread::default()).unwrap().id;
    let mut txn = docs.begin(&db, None);
    docs.txn_new_collection(
        &mut txn,
        CollectionConfig {
            name: "c".into(),
            schema: json!({"type": "object", "properties": {"_id": {"type": "string"}}}),
            indexes: vec![],
            write_validator: String::new(),
            read_filter: String::new(),
        },
    )
    .unwrap();
    let events = txn.events().to_vec();
    let record = docs.commit(Time(0), txn, 7).unwrap().expect("a record");
    let order = OrderKey::of(&record);
    let read = store.read().unwrap();
    // The engine stores the record, so the entry keeps no copy of the body...
    let entry: OpEntry =
        serde_ipld_dagcbor::from_slice(&read.get(&op_key(&db, &order)).unwrap().unwrap()).unwrap();
    assert_eq!(entry.body, None);
    // ... and reads it back from the stored record.
    assert_eq!(
        record_body(&read, &db, &order).unwrap(),
        Some(Batch::new(events).encode())
    );
}
