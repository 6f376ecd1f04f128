//! Document database micro-benchmarks: folding one create into a collection with a schema and
//! an index, and indexed versus unindexed queries over 10,000 instances.
//!
//! `cargo bench -p threads-benches --bench documents` (the end-to-end figures at 100k and 1M
//! instances come from `cargo run --release -p threads-benches --bin documents`).

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use serde_json::json;
use std::hint::black_box;
// Linked for its global allocator: the figures are those of `threadsd`'s allocator (mimalloc).
use threads_benches as _;
use threads_protocol::id::{ThreadId, Variant};
use threads_protocol::identity::PrivateKey;
use threads_protocol::rng::seeded;
use threads_protocol::store::memory::MemoryStore;
use threads_protocol::store::{Store, WriteTxn};
use threads_reducer::db::{self, Batch, CollectionConfig, DbEvent, DocFold, IndexSpec, Scripts};
use threads_reducer::fold::{Convergent, OrderKey, RecordInfo};
use threads_reducer::query::Query;

const INSTANCES: u64 = 10_000;

fn info(thread: ThreadId, clock: u64) -> RecordInfo {
    let author = PrivateKey::from_seed([1; 32]).public();
    RecordInfo {
        thread,
        order: OrderKey {
            clock,
            log: *author.peer_id().as_bytes(),
            counter: clock,
        },
        log: author.peer_id(),
        author,
        time: 0,
    }
}

fn create(i: u64) -> Vec<u8> {
    let id = format!("id{i:08}");
    Batch::new(vec![DbEvent::Create {
        collection: "people".into(),
        id: id.clone(),
        instance: json!({"_id": id, "name": format!("n{i}"), "age": i % 100, "city": format!("c{}", i % 97)}),
    }])
    .encode()
}

/// A store holding the `people` collection and `INSTANCES` instances.
fn populated() -> (MemoryStore, ThreadId, Convergent<DocFold>) {
    let thread = ThreadId::random(Variant::Raw, &mut seeded(1));
    let store = MemoryStore::new();
    let mut fold = Convergent::new(DocFold::new());
    let collection = Batch::new(vec![DbEvent::CreateCollection(CollectionConfig {
        name: "people".into(),
        schema: json!({"type": "object", "properties": {
            "_id": {"type": "string"}, "name": {"type": "string"},
            "age": {"type": "integer"}, "city": {"type": "string"}}}),
        indexes: vec![IndexSpec {
            path: "age".into(),
            unique: false,
        }],
        write_validator: String::new(),
        read_filter: String::new(),
    })])
    .encode();
    let mut txn = store.write().expect("write");
    fold.fold_in(&mut txn, &info(thread, 1), &collection)
        .expect("collection");
    for i in 0..INSTANCES {
        fold.fold_in(&mut txn, &info(thread, i + 2), &create(i))
            .expect("create");
    }
    txn.commit().expect("commit");
    (store, thread, fold)
}

fn documents(c: &mut Criterion) {
    let (store, thread, mut fold) = populated();
    let mut group = c.benchmark_group("documents");
    group.bench_function("fold_one_create/10k", |b| {
        let mut next = INSTANCES + 10;
        b.iter_batched(
            || {
                next += 1;
                (next, create(next))
            },
            |(i, body)| {
                let mut txn = store.write().expect("write");
                fold.fold_in(&mut txn, &info(thread, i + 2), &body)
                    .expect("create");
                // Dropped without commit: every iteration sees the same history.
            },
            BatchSize::SmallInput,
        )
    });
    let mut scripts = Scripts::new();
    for (name, filter) in [
        ("indexed_eq/10k", json!({"age": 42})),
        ("unindexed_eq/10k", json!({"city": "c42"})),
    ] {
        let query = Query::from_json(&filter).expect("query");
        group.bench_function(name, |b| {
            b.iter(|| {
                let txn = store.read().expect("read");
                let rows = db::read::find(
                    &txn,
                    &thread,
                    "people",
                    black_box(&query),
                    None,
                    &mut scripts,
                )
                .expect("find");
                assert!(!rows.is_empty());
                rows
            })
        });
        // The same query with rows of JSON text (what the daemon sends).
        group.bench_function(name.replace("_eq/", "_eq_json/"), |b| {
            b.iter(|| {
                let txn = store.read().expect("read");
                let rows = db::read::find_json(
                    &txn,
                    &thread,
                    "people",
                    black_box(&query),
                    None,
                    &mut scripts,
                )
                .expect("find_json");
                assert!(!rows.is_empty());
                rows
            })
        });
    }
    group.finish();
}

criterion_group!(benches, documents);
criterion_main!(benches);
