//! `find` over the store: the upstream query test, every plan agreeing, and random data and
//! queries giving the same results with and without indexes.

#[path = "db_util.rs"]
mod util;

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Value, json};
use threads_protocol::store::Store;
use threads_reducer::db::{DbEvent, read};
use threads_reducer::query::exec::run_in_memory;
use threads_reducer::query::{FindOptions, Query, candidate_plans};
use util::*;

fn upstream(h: &mut Harness, name: &str, indexes: &[(&str, bool)]) {
    h.ok(vec![DbEvent::CreateCollection(people(name, indexes))]);
    let mut events = Vec::new();
    for (i, age) in (60..68).enumerate() {
        events.push(create(
            name,
            &format!("p{i:02}"),
            json!({"name": "Foo", "age": age}),
        ));
    }
    for (i, age) in [20, 30, 59, 68, 99].into_iter().enumerate() {
        events.push(create(
            name,
            &format!("q{i:02}"),
            json!({"name": "Bar", "age": age}),
        ));
    }
    h.ok(events);
}

#[test]
fn the_upstream_query_test_on_indexed_and_unindexed_collections() {
    let mut h = Harness::new();
    upstream(&mut h, "Indexed", &[("age", false)]);
    upstream(&mut h, "Plain", &[]);
    let q = json!({
        "ands": [
            {"fieldPath": "age", "operation": 4, "value": {"float": 60}},
            {"fieldPath": "age", "operation": 3, "value": {"float": 66}}
        ],
        "ors": [{"ands": [{"fieldPath": "age", "operation": 0, "value": {"float": 67}}]}],
        "skip": 1,
        "limit": 5
    });
    let a = h.find("Indexed", q.clone(), None).unwrap();
    let b = h.find("Plain", q, None).unwrap();
    assert_eq!(a.len(), 5);
    let ids: Vec<&str> = a.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["p01", "p02", "p03", "p04", "p05"]);
    assert_eq!(a, b);
    // `{}` returns everything; sort + limit is the true top N.
    assert_eq!(h.find("Indexed", json!({}), None).unwrap().len(), 13);
    let top = h
        .find(
            "Indexed",
            json!({"sort": {"fieldPath": "age", "desc": true}, "limit": 2}),
            None,
        )
        .unwrap();
    let ages: Vec<&Value> = top.iter().map(|(_, d)| &d["age"]).collect();
    assert_eq!(ages, [&json!(99), &json!(68)]);
}

#[test]
fn every_candidate_plan_gives_the_same_rows() {
    let mut h = Harness::new();
    upstream(&mut h, "P", &[("age", false), ("name", false)]);
    let queries = [
        json!({"age": {"$gte": 60, "$lt": 66}}),
        json!({"$or": [{"age": 20}, {"name": "Foo", "age": {"$gt": 64}}]}),
        json!({"name": {"$in": ["Bar", "Baz"]}, "age": {"$lte": 59}}),
        json!({"_id": {"$gt": "p03", "$lte": "q01"}}),
        json!({"_id": {"$in": ["p01", "q04", "zz"]}, "age": {"$gt": 50}}),
        json!({"age": {"$gt": 1000}}),
        json!({"age": {"$lt": "a"}}),
        json!({"$filter": {"age": {"$gte": 59}}, "$sort": "-age", "$skip": 1, "$limit": 3}),
        json!({"$filter": {"_id": {"$gte": "p05"}}, "$limit": 2}),
    ];
    let txn = h.store.read().unwrap();
    for qv in queries {
        let q = Query::from_json(&qv).unwrap();
        let want = read::find(&txn, &h.thread, "P", &q, None, &mut h.scripts).unwrap();
        let plans = candidate_plans(&q, |p| ["age", "name"].contains(&p.as_str()));
        for plan in plans {
            let got = read::find_with_plan(&txn, &h.thread, "P", &q, &plan, None, &mut h.scripts)
                .unwrap();
            assert_eq!(got, want, "{qv} with {plan:?}");
        }
    }
}

/// One random instance operation, applied to both collections.
#[derive(Clone, Debug)]
enum Op {
    Create(String, Value),
    Save(String, Value),
    Delete(String),
}

fn id() -> impl Strategy<Value = String> {
    (0u8..6).prop_map(|i| format!("i{i}"))
}

/// A value for the mixed-type field `v`.
fn mixed() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..4).prop_map(|i| json!(i)),
        prop::sample::select(vec![0.5, -0.0, 2.0]).prop_map(|f| json!(f)),
        "[ab]{0,2}".prop_map(Value::String),
    ]
}

/// Fields of a random document (each may be missing).
fn fields() -> impl Strategy<Value = serde_json::Map<String, Value>> {
    (
        prop::option::of(0i64..5),
        prop::option::of("[xyz]{0,1}"),
        prop::option::of(any::<bool>()),
        prop::option::of(mixed()),
    )
        .prop_map(|(age, name, ok, v)| {
            let mut m = serde_json::Map::new();
            if let Some(a) = age {
                m.insert("age".into(), json!(a));
            }
            if let Some(n) = name {
                m.insert("name".into(), json!(n));
            }
            if let Some(b) = ok {
                m.insert("ok".into(), json!(b));
            }
            if let Some(v) = v {
                m.insert("v".into(), v);
            }
            m
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (id(), fields()).prop_map(|(i, f)| Op::Create(i, Value::Object(f))),
        3 => (id(), fields(), prop::sample::select(vec!["age", "name", "ok", "v", ""]))
            .prop_map(|(i, mut f, gone)| {
                if !gone.is_empty() {
                    f.insert(gone.into(), Value::Null);
                }
                Op::Save(i, Value::Object(f))
            }),
        1 => id().prop_map(Op::Delete),
    ]
}

fn event(collection: &str, op: &Op) -> DbEvent {
    match op {
        Op::Create(i, doc) => create(collection, i, doc.clone()),
        Op::Save(i, patch) => save(collection, i, patch.clone()),
        Op::Delete(i) => delete(collection, i),
    }
}

/// A leaf condition of a Mongo filter.
fn leaf() -> impl Strategy<Value = Value> {
    let field = prop::sample::select(vec!["age", "name", "ok", "v", "_id"]);
    let op = prop::sample::select(vec!["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in"]);
    (field, op, mixed(), mixed(), "[xyz]{0,1}", 0i64..5, id()).prop_map(|(f, op, a, b, s, n, i)| {
        let operand = match f {
            "age" => json!(n),
            "name" => json!(s),
            "_id" => json!(i),
            "ok" => json!(n % 2 == 0),
            _ => a.clone(),
        };
        let operand = if op == "$in" {
            json!([operand, b])
        } else {
            operand
        };
        json!({ f: { op: operand } })
    })
}

fn filter() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({})),
        leaf(),
        prop::collection::vec(leaf(), 1..3).prop_map(|ls| json!({"$and": ls})),
        prop::collection::vec(leaf(), 1..4).prop_map(|ls| json!({"$or": ls})),
        (leaf(), prop::collection::vec(leaf(), 1..3))
            .prop_map(|(l, ors)| json!({"$and": [l, {"$or": ors}]})),
    ]
}

fn query() -> impl Strategy<Value = Query> {
    (
        filter(),
        prop::sample::select(vec!["", "age", "-age", "name", "-v", "_id", "-_id"]),
        0u64..3,
        0u64..4,
    )
        .prop_map(|(f, sort, skip, limit)| {
            let mut opts = json!({"skip": skip, "limit": limit});
            if !sort.is_empty() {
                opts["sort"] = json!(sort);
            }
            let opts = FindOptions::from_json(&opts).expect("valid options");
            Query::from_mongo(&f, &opts).expect("valid query")
        })
}

const TYPES: &str = r#"{"age": {"type": "integer"}, "name": {"type": "string"},
    "ok": {"type": "boolean"}, "v": {"type": ["string", "number", "boolean", "null"]}}"#;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn indexes_never_change_results(
        batches in prop::collection::vec(prop::collection::vec(op(), 1..3), 1..20),
        queries in prop::collection::vec(query(), 1..8),
    ) {
        let mut h = Harness::new();
        let props: Value = serde_json::from_str(TYPES).unwrap();
        h.ok(vec![
            DbEvent::CreateCollection(coll(
                "Ix",
                props.clone(),
                &[("age", false), ("name", false), ("ok", false), ("v", false)],
            )),
            DbEvent::CreateCollection(coll("No", props, &[])),
        ]);
        for ops in &batches {
            let events = ops
                .iter()
                .flat_map(|o| [event("Ix", o), event("No", o)])
                .collect();
            let _ = h.apply_as(1, events);
        }
        // Both collections hold the same instances; the reference runs in memory.
        let txn = h.store.read().unwrap();
        let mut docs: BTreeMap<String, Value> = BTreeMap::new();
        for i in 0..6 {
            let id = format!("i{i}");
            let doc = read::stored(&txn, &h.thread, "No", &id).unwrap();
            prop_assert_eq!(&read::stored(&txn, &h.thread, "Ix", &id).unwrap(), &doc);
            if let Some(doc) = doc {
                docs.insert(id, doc);
            }
        }
        for q in &queries {
            let with = read::find(&txn, &h.thread, "Ix", q, None, &mut h.scripts);
            let without = read::find(&txn, &h.thread, "No", q, None, &mut h.scripts);
            prop_assert_eq!(&with, &without, "{:?}", q);
            let reference = run_in_memory(&docs, &BTreeMap::new(), q).map_err(Into::into);
            prop_assert_eq!(&with, &reference, "{:?}", q);
        }
    }

    #[test]
    fn index_entries_match_the_instances(
        batches in prop::collection::vec(prop::collection::vec(op(), 1..4), 1..12),
    ) {
        // After any history (including rejected records), re-building the indexes from
        // scratch (a fresh collection with the same instances) gives the same entries.
        let mut h = Harness::new();
        let props: Value = serde_json::from_str(TYPES).unwrap();
        let ix = [("age", false), ("name", false), ("v", false)];
        h.ok(vec![DbEvent::CreateCollection(coll("Ix", props.clone(), &ix))]);
        for ops in &batches {
            let events = ops.iter().map(|o| event("Ix", o)).collect();
            let _ = h.apply_as(1, events);
        }
        let entries = h.count_space(threads_reducer::db::keys::SPACE_INDEX);
        h.ok(vec![DbEvent::UpdateCollection(coll("Ix", props.clone(), &[]))]);
        prop_assert_eq!(h.count_space(threads_reducer::db::keys::SPACE_INDEX), 0);
        h.ok(vec![DbEvent::UpdateCollection(coll("Ix", props, &ix))]);
        prop_assert_eq!(h.count_space(threads_reducer::db::keys::SPACE_INDEX), entries);
    }
}

#[test]
fn a_corrupt_stored_instance_fails_both_forms_of_find() {
    use threads_protocol::store::{StoreError, WriteTxn};
    use threads_reducer::db::DbError;
    use threads_reducer::db::keys::Keys;
    for bad in [
        &b"{\"age\": 62"[..],
        b"{\"age\": 62, \"name\": \"\xff\"}",
        b"[62]",
        b" \n[62]",
    ] {
        let mut h = Harness::new();
        upstream(&mut h, "Indexed", &[("age", false)]);
        let key = Keys::new(&h.thread).instance("Indexed", "p02");
        let mut txn = h.store.write().unwrap();
        txn.put(&key, bad).unwrap();
        txn.commit().unwrap();
        // Through the index, by a scan, and by ID: the damaged instance is a candidate of each.
        for q in [
            json!({"age": 62}),
            json!({"name": "Foo"}),
            json!({"_id": "p02"}),
        ] {
            let err = h.find("Indexed", q.clone(), None);
            match err {
                // `[62]` is JSON, but not an object: the query rejects it like any non-match.
                Ok(rows) if bad.ends_with(b"[62]") => {
                    assert!(rows.iter().all(|(id, _)| id != "p02"))
                }
                Err(DbError::Store(StoreError::Corrupt(msg))) => {
                    assert!(msg.starts_with("instance: "), "{msg}")
                }
                other => panic!("{q} on {bad:?}: {other:?}"),
            }
        }
    }
}

#[test]
fn a_large_index_query_split_between_threads_gives_the_rows_of_one_thread() {
    use threads_reducer::db::lookup::{MIN_LOOKUPS_PER_THREAD, set_query_threads};
    use threads_reducer::query::Plan;
    let mut h = Harness::new();
    h.ok(vec![DbEvent::CreateCollection(people(
        "Big",
        &[("age", false)],
    ))]);
    // Two ages with three times the hits a split needs, and a third with too few to split.
    let n = 6 * MIN_LOOKUPS_PER_THREAD;
    for start in (0..n).step_by(500) {
        let events = (start..(start + 500).min(n))
            .map(|i| {
                let age = if i % 97 == 0 { 7 } else { i % 2 };
                create(
                    "Big",
                    &format!("b{i:05}"),
                    json!({"name": format!("n{}", i % 13), "age": age}),
                )
            })
            .collect();
        h.ok(events);
    }
    let queries = [
        json!({"age": 0}),
        json!({"age": {"$in": [1, 7]}}),
        json!({"age": {"$gte": 0, "$lt": 2}, "name": "n3"}),
        json!({"$filter": {"age": 1}, "$sort": "-name"}),
        json!({"age": 7}),
    ];
    for qv in queries {
        let q = Query::from_json(&qv).unwrap();
        set_query_threads(1);
        let one = h.find_q("Big", &q, None).unwrap();
        set_query_threads(4);
        let split = h.find_q("Big", &q, None).unwrap();
        assert_eq!(split, one, "{qv}");
        let txn = h.store.read().unwrap();
        let scan = read::find_with_plan(
            &txn,
            &h.thread,
            "Big",
            &q,
            &Plan::Scan,
            None,
            &mut h.scripts,
        )
        .unwrap();
        assert_eq!(one, scan, "{qv} by a scan");
    }
    assert!(h.find_ids("Big", json!({"age": 0})).len() >= 2 * MIN_LOOKUPS_PER_THREAD);
    // A damaged instance late in the split fails the query as it does on one thread.
    {
        use threads_protocol::store::WriteTxn;
        let key = threads_reducer::db::keys::Keys::new(&h.thread).instance("Big", "b06000");
        let mut txn = h.store.write().unwrap();
        txn.put(&key, b"{\"age\": 0, ").unwrap();
        txn.commit().unwrap();
    }
    let q = Query::from_json(&json!({"age": 0})).unwrap();
    set_query_threads(1);
    let one = h.find_q("Big", &q, None).unwrap_err();
    set_query_threads(4);
    assert_eq!(h.find_q("Big", &q, None).unwrap_err(), one);
    set_query_threads(0);
}
