//! Convergence of the document database: records from several writers, folded in any arrival
//! order, give the same state as folding them in total order into a fresh store; conflicts are
//! resolved by that order.

#[path = "db_util.rs"]
mod util;

use proptest::prelude::*;
use serde_json::{Value, json};
use threads_protocol::store::memory::MemoryStore;
use threads_protocol::store::{Store, WriteTxn};
use threads_reducer::db::{Batch, CollectionConfig, DbEvent, DocFold};
use threads_reducer::fold::{self, Convergent, Outcome, RecordInfo, state_digest};
use util::*;

/// Folds `records` in the given order into a fresh store with a fresh fold; returns the state
/// digest, the rejection reason of every record (in the order given by `report`), and the store.
fn fold_all(
    records: &[(RecordInfo, Vec<u8>)],
    report: &[(RecordInfo, Vec<u8>)],
) -> ([u8; 32], Vec<Option<String>>, MemoryStore) {
    let store = MemoryStore::new();
    let mut c = Convergent::new(DocFold::new());
    for (info, body) in records {
        let mut txn = store.write().unwrap();
        c.fold_in(&mut txn, info, body).unwrap();
        txn.commit().unwrap();
    }
    let txn = store.read().unwrap();
    let d = state_digest(&txn, &thread()).unwrap();
    let reasons = report
        .iter()
        .map(|(i, _)| fold::rejection(&txn, &i.thread, &i.order).unwrap())
        .collect();
    drop(txn);
    (d, reasons, store)
}

fn a_config(indexes: &[(&str, bool)]) -> CollectionConfig {
    let mut c = coll(
        "A",
        json!({"age": {"type": "integer"}, "name": {"type": "string"}}),
        indexes,
    );
    // Writers other than 1 may not set age 4: validators see the record's author.
    c.write_validator = format!(
        "return writer === \"{}\" || !(event.patch.json_patch && event.patch.json_patch.age === 4)",
        author(1)
    );
    c
}

fn setup() -> (RecordInfo, Vec<u8>) {
    let body = Batch::new(vec![
        DbEvent::CreateCollection(a_config(&[("age", false)])),
        DbEvent::CreateCollection(coll("B", json!({"age": {"type": "integer"}}), &[])),
    ])
    .encode();
    (info(&thread(), 1, 0, 1), body)
}

fn doc() -> impl Strategy<Value = Value> {
    (prop::option::of(0i64..6), prop::option::of("[xy]")).prop_map(|(age, name)| {
        let mut m = serde_json::Map::new();
        if let Some(a) = age {
            m.insert("age".into(), json!(a));
        }
        if let Some(n) = name {
            m.insert("name".into(), json!(n));
        }
        Value::Object(m)
    })
}

fn event() -> impl Strategy<Value = DbEvent> {
    let coll_name = prop::sample::select(vec!["A", "A", "B"]);
    let id = (0u8..4).prop_map(|i| format!("i{i}"));
    prop_oneof![
        4 => (coll_name.clone(), id.clone(), doc()).prop_map(|(c, i, d)| create(c, &i, d)),
        4 => (coll_name.clone(), id.clone(), doc()).prop_map(|(c, i, d)| save(c, &i, d)),
        2 => (coll_name, id).prop_map(|(c, i)| delete(c, &i)),
        1 => (any::<bool>(), any::<bool>()).prop_map(|(age, unique_name)| {
            let mut ix = Vec::new();
            if age {
                ix.push(("age", false));
            }
            ix.push(("name", unique_name));
            DbEvent::UpdateCollection(a_config(&ix))
        }),
        1 => Just(DbEvent::DeleteCollection { name: "B".into() }),
        1 => Just(DbEvent::CreateCollection(coll(
            "B",
            json!({"age": {"type": "integer"}}),
            &[("age", true)],
        ))),
    ]
}

/// Records of writers 1..=3 with random clocks; counters follow each writer's log.
fn records() -> impl Strategy<Value = Vec<(RecordInfo, Vec<u8>)>> {
    prop::collection::vec(
        (1u8..4, 1u64..8, prop::collection::vec(event(), 1..4)),
        1..14,
    )
    .prop_map(|rs| {
        let t = thread();
        let mut counters = [0u64; 4];
        let mut out = vec![setup()];
        for (w, clock, events) in rs {
            counters[w as usize] += 1;
            // Counter 1 of writer 1 is the setup record.
            let counter = counters[w as usize] + u64::from(w == 1);
            out.push((info(&t, w, clock, counter), Batch::new(events).encode()));
        }
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_arrival_order_converges(
        (recs, shuffled) in records().prop_flat_map(|r| (Just(r.clone()), Just(r).prop_shuffle())),
    ) {
        let mut sorted = recs.clone();
        sorted.sort_by_key(|r| r.0.order);
        let (want, want_reasons, _) = fold_all(&sorted, &sorted);
        let (got, got_reasons, _) = fold_all(&shuffled, &sorted);
        prop_assert_eq!(got, want);
        prop_assert_eq!(got_reasons, want_reasons);
        let (again, _, _) = fold_all(&recs, &sorted);
        prop_assert_eq!(again, want);
    }
}

#[test]
fn concurrent_creates_of_one_id_first_in_order_wins() {
    let t = thread();
    let (s_info, s_body) = setup();
    let a = (
        info(&t, 2, 5, 1),
        Batch::new(vec![create("A", "x", json!({"name": "from2"}))]).encode(),
    );
    let b = (
        info(&t, 3, 5, 1),
        Batch::new(vec![create("A", "x", json!({"name": "from3"}))]).encode(),
    );
    let (first, second) = if a.0.order < b.0.order {
        (&a, &b)
    } else {
        (&b, &a)
    };
    let all = [(s_info, s_body), a.clone(), b.clone()];
    for order in [[0, 1, 2], [0, 2, 1], [2, 1, 0], [1, 0, 2]] {
        let recs: Vec<_> = order.iter().map(|&i| all[i].clone()).collect();
        let (_, _, store) = fold_all(&recs, &[]);
        let txn = store.read().unwrap();
        let winner = threads_reducer::db::read::stored(&txn, &t, "A", "x")
            .unwrap()
            .unwrap();
        let want = if first.0.log == a.0.log {
            "from2"
        } else {
            "from3"
        };
        assert_eq!(winner, json!({"_id": "x", "name": want}));
        assert!(fold::rejection(&txn, &t, &first.0.order).unwrap().is_none());
        let r = fold::rejection(&txn, &t, &second.0.order).unwrap().unwrap();
        assert!(r.contains("can't create already existing instance"), "{r}");
    }
}

#[test]
fn unique_clashes_and_delete_versus_save_follow_the_order() {
    let mut h = Harness::new();
    h.ok(vec![DbEvent::CreateCollection(coll(
        "U",
        json!({"name": {"type": "string"}}),
        &[("name", true)],
    ))]);
    h.ok(vec![create("U", "a", json!({"name": "n"}))]);
    // Two writers take the same unique value "m" concurrently: the later one is rejected.
    let r1 = h.apply_as(2, vec![create("U", "b", json!({"name": "m"}))]);
    let r2 = h.apply_as(3, vec![create("U", "c", json!({"name": "m"}))]);
    assert_eq!(r1, Outcome::Applied);
    match r2 {
        Outcome::Rejected(r) => assert!(r.contains("unique constraint violation"), "{r}"),
        Outcome::Applied => panic!("second unique value applied"),
    }
    // Delete, then a save ordered after it: the save re-creates the instance (upsert).
    h.ok(vec![delete("U", "a")]);
    h.ok(vec![save("U", "a", json!({"name": "back"}))]);
    assert_eq!(
        h.stored("U", "a").unwrap(),
        json!({"_id": "a", "name": "back"})
    );
    // Save then delete: gone.
    h.ok(vec![
        save("U", "a", json!({"name": "again"})),
        delete("U", "a"),
    ]);
    assert!(h.stored("U", "a").is_none());
}
