//! Properties: index keys preserve the value order; every plan gives the same result as a
//! full scan; the bounded heap equals a full sort; no input makes the query code panic.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use serde_json::{Map, Number, Value, json};
use threads_reducer::query::exec::{
    MemIndex, build_index, order_and_page, plan_candidates, run_in_memory, run_plan_in_memory,
};
use threads_reducer::query::{
    FieldPath, FindOptions, Plan, Query, candidate_plans, compare_values, encode_index_value, plan,
};

fn num(f: f64) -> Value {
    Value::Number(Number::from_f64(f).unwrap())
}

/// Scalars with many collisions (equal values of different spellings) and edge cases.
fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..4).prop_map(|i| json!(i)),
        prop::sample::select(vec![0.0, -0.0, 0.5, -0.5, 1.0, 2.0, -3.0, 1e300, -1e-300])
            .prop_map(num),
        any::<i64>().prop_map(|i| json!(i)),
        any::<u64>().prop_map(|u| json!(u)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(num),
        "[a\u{0}b\u{7f}\u{e9}\u{10ffff}]{0,4}".prop_map(Value::String),
        ".{0,8}".prop_map(Value::String),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn index_encoding_preserves_order(a in scalar(), b in scalar()) {
        let (ea, eb) = (encode_index_value(&a).unwrap(), encode_index_value(&b).unwrap());
        prop_assert_eq!(compare_values(&a, &b), ea.cmp(&eb), "{} vs {}", a, b);
        // Prefix-free: one encoding never starts another unless they are equal.
        if ea != eb {
            prop_assert!(!eb.starts_with(&ea) && !ea.starts_with(&eb));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Random collections and queries.

const PATHS: [&str; 7] = ["a", "b", "c.d", "s", "_id", "z", "arr"];
const INDEXABLE: [&str; 5] = ["a", "b", "c.d", "s", "arr"];

fn small_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (-1i64..3).prop_map(|i| json!(i)),
        1 => prop::sample::select(vec![0.5, -0.0, 1.0]).prop_map(num),
        3 => prop::sample::select(vec!["", "a", "a\u{0}", "b"]).prop_map(|s| json!(s)),
        2 => any::<bool>().prop_map(Value::Bool),
        1 => Just(Value::Null),
        1 => (0i64..2).prop_map(|i| json!([i])),
        1 => (0i64..2).prop_map(|i| json!({"d": i})),
    ]
}

fn doc(id: String) -> impl Strategy<Value = Value> {
    (
        prop::option::of(small_value()),
        prop::option::of(small_value()),
        prop::option::of(prop_oneof![
            3 => prop::option::of(small_value()).prop_map(|d| match d {
                Some(d) => json!({"d": d}),
                None => json!({}),
            }),
            1 => small_value(),
        ]),
        prop::option::of(prop::sample::select(vec!["", "a", "a\u{0}", "ab", "b"])),
        prop::option::of((0i64..2).prop_map(|i| json!([i]))),
    )
        .prop_map(move |(a, b, c, s, arr)| {
            let mut m = Map::new();
            m.insert("_id".into(), json!(id.clone()));
            for (k, v) in [
                ("a", a),
                ("b", b),
                ("c", c),
                ("s", s.map(|s| json!(s))),
                ("arr", arr),
            ] {
                if let Some(v) = v {
                    m.insert(k.into(), v);
                }
            }
            Value::Object(m)
        })
}

fn collection() -> impl Strategy<Value = BTreeMap<String, Value>> {
    prop::collection::btree_set(0u8..16, 0..16).prop_flat_map(|ids| {
        let docs: Vec<_> = ids.into_iter().map(|i| doc(format!("d{i:02}"))).collect();
        docs.prop_map(|docs| {
            docs.into_iter()
                .map(|d| (d["_id"].as_str().unwrap_or_default().to_owned(), d))
                .collect()
        })
    })
}

fn id_value() -> impl Strategy<Value = String> {
    (0u8..17).prop_map(|i| format!("d{i:02}"))
}

fn path() -> impl Strategy<Value = &'static str> {
    prop::sample::select(PATHS.to_vec())
}

/// A go-threads criterion (always valid: bool values only with Eq / Ne).
fn criterion() -> impl Strategy<Value = Value> {
    (path(), 0u8..6, small_value(), id_value()).prop_map(|(p, op, v, id)| {
        let value = match (p, &v) {
            ("_id", _) => json!({"string": id}),
            (_, Value::Bool(b)) if op < 2 => json!({"bool": b}),
            (_, Value::Number(n)) => json!({"float": n}),
            (_, Value::String(s)) => json!({"string": s}),
            _ => json!({"float": op}),
        };
        json!({"fieldPath": p, "operation": op, "value": value})
    })
}

fn threads_node(depth: u32) -> BoxedStrategy<Value> {
    let ands = prop::collection::vec(criterion(), 0..3);
    if depth == 0 {
        return ands.prop_map(|a| json!({"ands": a})).boxed();
    }
    (ands, prop::collection::vec(threads_node(depth - 1), 0..3))
        .prop_map(|(a, o)| json!({"ands": a, "ors": o}))
        .boxed()
}

fn threads_query() -> impl Strategy<Value = Value> {
    (
        threads_node(2),
        prop::option::of((prop::sample::select(vec!["_id", "a", "s"]), any::<bool>())),
        prop::option::weighted(0.15, id_value()),
        0u64..5,
        0u64..4,
        prop::option::weighted(0.2, prop::sample::select(INDEXABLE.to_vec())),
    )
        .prop_map(|(mut q, sort, seek, limit, skip, index)| {
            if let Some((p, desc)) = sort {
                q["sort"] = json!({"fieldPath": p, "desc": desc});
            }
            if let Some(s) = seek {
                q["seek"] = json!(s);
            }
            q["limit"] = json!(limit);
            q["skip"] = json!(skip);
            if let Some(i) = index {
                q["index"] = json!(i);
            }
            q
        })
}

fn mongo_leaf() -> impl Strategy<Value = Value> {
    let op = prop::sample::select(vec![
        "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "implicit",
    ]);
    (
        path(),
        op,
        small_value(),
        prop::collection::vec(small_value(), 0..3),
        id_value(),
        any::<bool>(),
    )
        .prop_map(|(p, op, v, vs, id, not)| {
            let v = if p == "_id" && v.is_number() {
                json!(id)
            } else {
                v
            };
            let cond = match op {
                "implicit" => return json!({p: v}),
                "$in" | "$nin" => json!({op: vs}),
                "$exists" => json!({op: v.is_number()}),
                _ => json!({op: v}),
            };
            if not {
                json!({p: {"$not": cond}})
            } else {
                json!({p: cond})
            }
        })
}

fn mongo_filter() -> impl Strategy<Value = Value> {
    mongo_leaf().prop_recursive(3, 12, 3, |inner| {
        (
            prop::sample::select(vec!["$and", "$or", "$nor", "merge"]),
            prop::collection::vec(inner, 1..4),
        )
            .prop_map(|(op, subs)| {
                if op == "merge" {
                    // Several conditions in one document (an implicit AND).
                    let mut m = Map::new();
                    for s in subs {
                        if let Value::Object(o) = s {
                            m.extend(o);
                        }
                    }
                    Value::Object(m)
                } else {
                    json!({op: subs})
                }
            })
    })
}

fn mongo_options() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec((path(), any::<bool>()), 0..3),
        0u64..4,
        0u64..5,
        prop::option::weighted(0.15, id_value()),
    )
        .prop_map(|(sort, skip, limit, seek)| {
            let sort: Vec<Value> = sort
                .into_iter()
                .map(|(p, desc)| json!({p: if desc { -1 } else { 1 }}))
                .collect();
            json!({"sort": sort, "skip": skip, "limit": limit, "seek": seek})
        })
}

fn query() -> impl Strategy<Value = Query> {
    prop_oneof![
        threads_query().prop_map(|q| Query::from_threads_json(&q).unwrap()),
        (mongo_filter(), mongo_options()).prop_map(|(f, o)| {
            Query::from_mongo(&f, &FindOptions::from_json(&o).unwrap()).unwrap()
        }),
    ]
}

fn indexes(
    docs: &BTreeMap<String, Value>,
    which: &BTreeSet<&'static str>,
) -> BTreeMap<String, MemIndex> {
    which
        .iter()
        .map(|p| {
            (
                p.to_string(),
                build_index(docs, &FieldPath::parse(p, "test").unwrap()),
            )
        })
        .collect()
}

/// On every candidate of plan `p`, what `p` leaves of the filter ([`Plan::residual`]) decides
/// as the whole filter does: the conjuncts it drops hold on each of them.
fn residual_decides_like_the_filter(
    q: &Query,
    p: &Plan,
    docs: &BTreeMap<String, Value>,
    cands: &BTreeSet<String>,
) -> Result<(), TestCaseError> {
    let Some(rest) = p.residual(&q.filter) else {
        return Ok(());
    };
    let narrowed = Query {
        filter: rest,
        ..q.clone()
    };
    for id in cands {
        let doc = &docs[id];
        prop_assert_eq!(
            narrowed.matches(id, doc),
            q.matches(id, doc),
            "plan {:?} leaves {:?} of {:?} on {}",
            p,
            narrowed.filter,
            q.filter,
            doc
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    /// Every candidate plan yields a superset of the matching instances and the same final
    /// result (or the same error) as a full scan.
    #[test]
    fn every_plan_agrees_with_a_scan(
        docs in collection(),
        q in query(),
        drop in prop::collection::btree_set(prop::sample::select(INDEXABLE.to_vec()), 0..3),
    ) {
        let mut which: BTreeSet<&'static str> =
            INDEXABLE.iter().copied().filter(|p| !drop.contains(p)).collect();
        if let Some(hint) = &q.index {
            // go-threads' `index` member requires the index; add it (errors are tested elsewhere).
            if let Some(p) = INDEXABLE.iter().find(|p| **p == hint.as_str()) {
                which.insert(p);
            }
        }
        let ixs = indexes(&docs, &which);
        let is_indexed = |p: &FieldPath| ixs.contains_key(p.as_str());
        let identity = &mut |_: &str, d: &Value| Some(d.clone());
        let scan = run_plan_in_memory(&docs, &ixs, &q, &Plan::Scan, identity);
        let matching: BTreeSet<&String> =
            docs.iter().filter(|(id, d)| q.matches(id, d)).map(|(id, _)| id).collect();

        let mut plans = candidate_plans(&q, is_indexed);
        let chosen = plan(&q, is_indexed).unwrap();
        plans.push(chosen);
        for p in &plans {
            let cands: BTreeSet<String> = plan_candidates(p, &docs, &ixs).into_iter().collect();
            for id in &matching {
                prop_assert!(cands.contains(*id), "plan {:?} misses {} for {:?}", p, id, q.filter);
            }
            residual_decides_like_the_filter(&q, p, &docs, &cands)?;
            let got = run_plan_in_memory(&docs, &ixs, &q, p, identity);
            prop_assert_eq!(&got, &scan, "plan {:?} for {:?}", p, q);
        }
        prop_assert_eq!(run_in_memory(&docs, &ixs, &q), scan);
    }

    /// The bounded heap returns exactly the slice of a full sort.
    #[test]
    fn heap_equals_full_sort(
        docs in collection(),
        opts in mongo_options(),
        skip in 0u64..6,
        limit in 1u64..6,
    ) {
        let q = Query::from_mongo(&json!({}), &FindOptions::from_json(&opts).unwrap()).unwrap();
        let mut full = q.clone();
        full.skip = 0;
        full.limit = 0;
        let rows: Vec<(String, Value)> = docs.into_iter().collect();
        let all = order_and_page(&full, rows.clone()).unwrap();
        let mut paged = q;
        paged.skip = skip;
        paged.limit = limit;
        let want: Vec<_> = all.into_iter().skip(skip as usize).take(limit as usize).collect();
        prop_assert_eq!(order_and_page(&paged, rows).unwrap(), want);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Single predicates and two-sided ranges, with every path indexed: the plans built from
    /// them must cover every matching instance (checks each bound of each operator).
    #[test]
    fn sargable_predicates_cover_their_matches(
        docs in collection(),
        leaf in prop_oneof![
            criterion().prop_map(|c| json!({"ands": [c]})),
            (criterion(), criterion()).prop_map(|(a, b)| json!({"ands": [a, b]})),
            mongo_leaf(),
            (path(), small_value(), small_value(), any::<bool>(), any::<bool>()).prop_map(
                |(p, lo, hi, a, b)| json!({p: {
                    if a { "$gt" } else { "$gte" }: lo,
                    if b { "$lt" } else { "$lte" }: hi,
                }}),
            ),
        ],
    ) {
        let q = Query::from_json(&leaf).unwrap();
        let which: BTreeSet<&'static str> = INDEXABLE.iter().copied().collect();
        let ixs = indexes(&docs, &which);
        let matching: BTreeSet<String> =
            docs.iter().filter(|(id, d)| q.matches(id, d)).map(|(id, _)| id.clone()).collect();
        for p in candidate_plans(&q, |p| ixs.contains_key(p.as_str())) {
            let cands: BTreeSet<String> = plan_candidates(&p, &docs, &ixs).into_iter().collect();
            prop_assert!(
                matching.is_subset(&cands),
                "plan {:?} misses {:?} for {}", p, matching.difference(&cands).collect::<Vec<_>>(), leaf
            );
            residual_decides_like_the_filter(&q, &p, &docs, &cands)?;
        }
    }
}

/// Arbitrary JSON built from the query vocabulary, to fuzz the parsers.
fn hostile_json() -> impl Strategy<Value = Value> {
    let key = prop::sample::select(vec![
        "ands",
        "Ands",
        "ors",
        "sort",
        "seek",
        "limit",
        "skip",
        "index",
        "fieldPath",
        "operation",
        "value",
        "float",
        "string",
        "bool",
        "desc",
        "$and",
        "$or",
        "$nor",
        "$not",
        "$eq",
        "$ne",
        "$gt",
        "$gte",
        "$lt",
        "$lte",
        "$in",
        "$nin",
        "$exists",
        "$filter",
        "$sort",
        "$skip",
        "$limit",
        "$seek",
        "a",
        "a.b",
        "_id",
        "",
        ".",
        "$x",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..8).prop_map(|i| json!(i)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(num),
        prop::sample::select(vec!["", "a", "_id", "-a", "desc", "d01"]).prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(5, 40, 5, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..5).prop_map(|kv| Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn hostile_queries_never_panic(v in hostile_json(), docs in collection()) {
        let _ = FindOptions::from_json(&v);
        let _ = Query::from_threads_json(&v);
        let _ = Query::parse(v.to_string().as_bytes());
        if let Ok(q) = Query::from_json(&v) {
            let which: BTreeSet<&'static str> = INDEXABLE.iter().copied().collect();
            let ixs = indexes(&docs, &which);
            let _ = run_in_memory(&docs, &ixs, &q);
            for p in candidate_plans(&q, |p| ixs.contains_key(p.as_str())) {
                let _ = run_plan_in_memory(&docs, &ixs, &q, &p, &mut |_, d| Some(d.clone()));
            }
        }
    }
}

/// The conjuncts an index plan decides are dropped, and only those.
#[test]
fn residual_drops_what_the_index_reads_decide() {
    let indexed = |p: &FieldPath| ["age", "name"].contains(&p.as_str());
    let residual = |q: Value| {
        let q = Query::from_json(&q).unwrap();
        let p = plan(&q, indexed).unwrap();
        (p.residual(&q.filter), q)
    };
    let rest = |q: Value| Query::from_json(&q).unwrap().filter;
    // Equality, `$in` and ranges on the index read are decided by the read.
    for q in [
        json!({"age": 42}),
        json!({"age": {"$in": [1, 2]}}),
        json!({"age": {"$gte": 30, "$lt": 32}}),
        json!({"name": {"$gt": "m"}}),
    ] {
        assert_eq!(residual(q.clone()).0, Some(rest(json!({}))), "{q}");
    }
    // Other conjuncts stay.
    let (left, _) = residual(json!({"age": 42, "city": "x"}));
    assert_eq!(left, Some(rest(json!({"city": "x"}))));
    // Nothing to drop: a condition no index range expresses, a scan, an array operand.
    for q in [
        json!({"age": {"$ne": 3}}),
        json!({"city": "x"}),
        json!({"age": [1]}),
    ] {
        assert_eq!(residual(q.clone()).0, None, "{q}");
    }
    // A range conjunct wider than the read is decided by it; `$in` with other values too.
    let q = Query::from_json(&json!({"age": {"$gte": 30}, "name": "x"})).unwrap();
    let eq = Plan::IndexEq {
        path: FieldPath::parse("age", "test").unwrap(),
        key: encode_index_value(&json!(31)).unwrap(),
    };
    assert_eq!(eq.residual(&q.filter), Some(rest(json!({"name": "x"}))));
    let q = Query::from_json(&json!({"age": {"$gte": 32}})).unwrap();
    assert_eq!(eq.residual(&q.filter), None);
}
