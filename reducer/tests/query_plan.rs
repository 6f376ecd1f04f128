//! Planner choices, the ordering/paging stage, read filters and the in-memory executor.

use std::collections::BTreeMap;
use std::ops::Bound;

use serde_json::{Value, json};
use threads_reducer::query::exec::{
    MemIndex, build_index, order_and_page, plan_candidates, run_in_memory, run_in_memory_filtered,
    run_plan_in_memory, stop_after,
};
use threads_reducer::query::{FieldPath, FindOptions, Plan, Query, encode_index_value, plan};

fn path(p: &str) -> FieldPath {
    FieldPath::parse(p, "test").unwrap()
}

fn key(v: Value) -> Vec<u8> {
    encode_index_value(&v).unwrap()
}

fn mongo(filter: Value) -> Query {
    Query::from_mongo(&filter, &FindOptions::default()).unwrap()
}

fn indexed(paths: &[&'static str]) -> impl Fn(&FieldPath) -> bool {
    move |p| paths.contains(&p.as_str())
}

#[test]
fn planner_rules() {
    let ix = indexed(&["age", "name"]);
    let p = |filter: Value| plan(&mongo(filter), &ix).unwrap();

    assert_eq!(p(json!({})), Plan::Scan);
    assert_eq!(p(json!({"other": 1})), Plan::Scan);
    assert_eq!(
        p(json!({"_id": "x", "age": 3})),
        Plan::IdLookup {
            ids: vec!["x".into()]
        }
    );
    assert_eq!(
        p(json!({"_id": {"$in": ["b", "a", "b", 7]}})),
        Plan::IdLookup {
            ids: vec!["a".into(), "b".into()]
        }
    );
    assert_eq!(p(json!({"_id": 5})), Plan::Empty);
    assert_eq!(
        p(json!({"_id": {"$gte": "k", "$lt": "m"}})),
        Plan::IdRange {
            lower: Bound::Included("k".into()),
            upper: Bound::Excluded("m".into())
        }
    );
    assert_eq!(
        p(json!({"age": 30, "name": {"$gt": "a"}})),
        Plan::IndexEq {
            path: path("age"),
            key: key(json!(30))
        }
    );
    assert_eq!(
        p(json!({"age": {"$in": [3, 1, 3]}})),
        Plan::IndexIn {
            path: path("age"),
            keys: vec![key(json!(1)), key(json!(3))]
        }
    );
    // Ranges are intersected and stay inside the operand's type.
    assert_eq!(
        p(json!({"age": {"$gt": 10, "$lte": 20}, "x": 1})),
        Plan::IndexRange {
            path: path("age"),
            lower: Bound::Excluded(key(json!(10))),
            upper: Bound::Included(key(json!(20)))
        }
    );
    assert_eq!(
        p(json!({"age": {"$gt": 10}})),
        Plan::IndexRange {
            path: path("age"),
            lower: Bound::Excluded(key(json!(10))),
            upper: Bound::Excluded(vec![0x04])
        }
    );
    assert_eq!(p(json!({"age": {"$gt": 20, "$lt": 10}})), Plan::Empty);
    // Equal bounds: the exclusive one wins; a single point survives only if both include it.
    assert_eq!(
        p(json!({"age": {"$gte": 5, "$gt": 5, "$lte": 9, "$lt": 9}})),
        Plan::IndexRange {
            path: path("age"),
            lower: Bound::Excluded(key(json!(5))),
            upper: Bound::Excluded(key(json!(9)))
        }
    );
    assert_eq!(
        p(json!({"age": {"$gte": 5, "$lte": 5}})),
        Plan::IndexRange {
            path: path("age"),
            lower: Bound::Included(key(json!(5))),
            upper: Bound::Included(key(json!(5)))
        }
    );
    assert_eq!(p(json!({"age": {"$gt": 5, "$lte": 5}})), Plan::Empty);
    assert_eq!(p(json!({"_id": {"$gt": "m", "$lte": "m"}})), Plan::Empty);
    // Different types never overlap.
    assert_eq!(p(json!({"age": {"$gt": 5, "$lt": "z"}})), Plan::Empty);
    // Identical union branches are read once.
    assert_eq!(
        p(json!({"$or": [{"age": 1}, {"age": 1}]})),
        Plan::IndexEq {
            path: path("age"),
            key: key(json!(1))
        }
    );
    assert_eq!(p(json!({"age": {"$in": []}})), Plan::Empty);
    // Not sargable: negations, $exists, object operands.
    assert_eq!(p(json!({"age": {"$ne": 3}})), Plan::Scan);
    assert_eq!(p(json!({"age": {"$nin": [3]}})), Plan::Scan);
    assert_eq!(p(json!({"age": {"$exists": true}})), Plan::Scan);
    assert_eq!(p(json!({"age": {"$eq": [3]}})), Plan::Scan);
    // $or: a union when every branch is indexable, else a scan.
    assert_eq!(
        p(json!({"$or": [{"age": 1}, {"_id": "z"}]})),
        Plan::Union(vec![
            Plan::IndexEq {
                path: path("age"),
                key: key(json!(1))
            },
            Plan::IdLookup {
                ids: vec!["z".into()]
            }
        ])
    );
    assert_eq!(p(json!({"$or": [{"age": 1}, {"other": 2}]})), Plan::Scan);
    // The other conjuncts help each branch.
    assert_eq!(
        p(json!({"name": "n", "$or": [{"other": 1}, {"other": 2}]})),
        Plan::IndexEq {
            path: path("name"),
            key: key(json!("n"))
        }
    );
}

#[test]
fn go_threads_queries_plan_too() {
    let ix = indexed(&["age"]);
    let q = Query::from_threads_json(&json!({
        "ands": [
            {"fieldPath": "age", "operation": 4, "value": {"float": 60}},
            {"fieldPath": "age", "operation": 3, "value": {"float": 66}}
        ],
        "ors": [{"ands": [{"fieldPath": "age", "operation": 0, "value": {"float": 67}}]}]
    }))
    .unwrap();
    assert_eq!(
        plan(&q, &ix).unwrap(),
        Plan::Union(vec![
            Plan::IndexRange {
                path: path("age"),
                lower: Bound::Included(key(json!(60))),
                upper: Bound::Excluded(key(json!(66)))
            },
            Plan::IndexEq {
                path: path("age"),
                key: key(json!(67))
            }
        ])
    );
    // seek narrows a scan to an _id range.
    let q = Query::from_threads_json(&json!({"seek": "m"})).unwrap();
    assert_eq!(
        plan(&q, &ix).unwrap(),
        Plan::IdRange {
            lower: Bound::Included("m".into()),
            upper: Bound::Unbounded
        }
    );
    // The index member forces that index.
    let q = Query::from_threads_json(&json!({"index": "age", "seek": "m"})).unwrap();
    assert_eq!(
        plan(&q, &ix).unwrap(),
        Plan::IndexRange {
            path: path("age"),
            lower: Bound::Unbounded,
            upper: Bound::Unbounded
        }
    );
    assert!(
        plan(
            &Query::from_threads_json(&json!({"index": "nope"})).unwrap(),
            &ix
        )
        .is_err()
    );
}

fn scored(n: usize) -> BTreeMap<String, Value> {
    (0..n)
        .map(|i| {
            let id = format!("id{i:03}");
            let mut doc = json!({"_id": id, "score": (i * 7919) % 101, "group": i % 3});
            if i % 10 == 0 {
                doc.as_object_mut().unwrap().remove("score");
            }
            (id, doc)
        })
        .collect()
}

#[test]
fn bounded_heap_equals_full_sort() {
    let docs = scored(200);
    let rows: Vec<(String, Value)> = docs.clone().into_iter().collect();
    for sort in [
        json!({"score": -1}),
        json!([{"group": 1}, {"score": -1}]),
        json!("-_id"),
    ] {
        let full = Query::from_mongo(
            &json!({}),
            &FindOptions::from_json(&json!({"sort": sort.clone()})).unwrap(),
        )
        .unwrap();
        let all = order_and_page(&full, rows.clone()).unwrap();
        assert_eq!(all.len(), 200);
        for (skip, limit) in [(0, 1), (0, 10), (5, 10), (190, 20), (250, 3), (3, 0)] {
            let mut q = full.clone();
            q.skip = skip;
            q.limit = limit;
            let got = order_and_page(&q, rows.clone()).unwrap();
            let want: Vec<_> = all
                .iter()
                .skip(skip as usize)
                .take(if limit == 0 {
                    usize::MAX
                } else {
                    limit as usize
                })
                .cloned()
                .collect();
            assert_eq!(got, want, "sort {sort} skip {skip} limit {limit}");
        }
    }
}

#[test]
fn read_filter_runs_before_skip_and_limit() {
    let docs = scored(30);
    let q = Query::from_mongo(
        &json!({"group": {"$gte": 0}}),
        &FindOptions::from_json(&json!({"skip": 2, "limit": 3})).unwrap(),
    )
    .unwrap();
    // Hide group 1 and rewrite what the reader sees.
    let mut filter = |_: &str, d: &Value| {
        (d["group"] != json!(1)).then(|| json!({"_id": d["_id"], "seen": true}))
    };
    let got = run_in_memory_filtered(&docs, &BTreeMap::new(), &q, &mut filter).unwrap();
    let ids: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
    // Visible: id000 id002 id003 id005 id006 id008 ...; skip 2, take 3.
    assert_eq!(ids, ["id003", "id005", "id006"]);
    assert!(got.iter().all(|(_, d)| d["seen"] == json!(true)));
}

#[test]
fn stop_after_only_when_the_plan_yields_final_order() {
    let q = |v: Value| Query::from_threads_json(&v).unwrap();
    assert_eq!(
        stop_after(&q(json!({"limit": 3, "skip": 2})), &Plan::Scan),
        Some(5)
    );
    assert_eq!(stop_after(&q(json!({"skip": 2})), &Plan::Scan), None);
    assert_eq!(
        stop_after(
            &q(json!({"limit": 3, "sort": {"fieldPath": "x"}})),
            &Plan::Scan
        ),
        None
    );
    let ix = Plan::IndexRange {
        path: path("x"),
        lower: Bound::Unbounded,
        upper: Bound::Unbounded,
    };
    assert_eq!(stop_after(&q(json!({"limit": 3})), &ix), None);
}

#[test]
fn hand_made_plans_never_panic() {
    let docs = scored(10);
    let mut ixs: BTreeMap<String, MemIndex> = BTreeMap::new();
    ixs.insert("score".into(), build_index(&docs, &path("score")));
    let q = Query::default();
    let weird = [
        Plan::IdRange {
            lower: Bound::Excluded("b".into()),
            upper: Bound::Excluded("b".into()),
        },
        Plan::IdRange {
            lower: Bound::Included("z".into()),
            upper: Bound::Included("a".into()),
        },
        Plan::IndexRange {
            path: path("score"),
            lower: Bound::Excluded(vec![9]),
            upper: Bound::Excluded(vec![1]),
        },
        Plan::IndexEq {
            path: path("missing"),
            key: vec![],
        },
        Plan::IdLookup {
            ids: vec!["nope".into(), "id001".into()],
        },
        Plan::Union(vec![Plan::Scan, Plan::Scan]),
    ];
    for p in &weird {
        let got = run_plan_in_memory(&docs, &ixs, &q, p, &mut |_, d| Some(d.clone())).unwrap();
        assert!(got.len() <= docs.len());
    }
    assert_eq!(
        plan_candidates(&Plan::Union(vec![Plan::Scan, Plan::Scan]), &docs, &ixs).len(),
        10
    );
}

#[test]
fn results_do_not_depend_on_indexes() {
    let docs = scored(60);
    let mut ixs: BTreeMap<String, MemIndex> = BTreeMap::new();
    for p in ["score", "group"] {
        ixs.insert(p.into(), build_index(&docs, &path(p)));
    }
    let none = BTreeMap::new();
    for filter in [
        json!({"score": {"$gte": 20, "$lt": 60}}),
        json!({"$or": [{"group": 1}, {"score": {"$lt": 10}}]}),
        json!({"group": {"$in": [0, 2]}, "score": {"$gt": 50}}),
        json!({"_id": {"$gt": "id030"}, "group": 2}),
    ] {
        let q = Query::from_mongo(
            &filter,
            &FindOptions::from_json(&json!({"sort": {"score": -1}, "limit": 7})).unwrap(),
        )
        .unwrap();
        assert_eq!(
            run_in_memory(&docs, &ixs, &q).unwrap(),
            run_in_memory(&docs, &none, &q).unwrap(),
            "{filter}"
        );
    }
}

/// Without sort keys or paging, rows come back in ascending ID order whatever order they came
/// in (rows already in that order are kept as they are, others are sorted).
#[test]
fn unsorted_unpaged_rows_come_back_in_id_order() {
    let rows: Vec<(String, Value)> = scored(50).into_iter().collect();
    let query = Query::from_json(&json!({})).unwrap();
    let in_order = order_and_page(&query, rows.clone()).unwrap();
    assert_eq!(in_order, rows, "rows in ID order are kept");
    let mut shuffled = rows.clone();
    shuffled.reverse();
    shuffled.swap(3, 17);
    assert_eq!(order_and_page(&query, shuffled).unwrap(), rows);
    let mut doubled = rows.clone();
    doubled.insert(1, rows[0].clone());
    let kept = order_and_page(&query, doubled).unwrap();
    assert_eq!(kept.len(), 51, "a repeated ID is not dropped");
    assert!(kept.windows(2).all(|w| w[0].0 <= w[1].0));
}
