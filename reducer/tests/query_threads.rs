//! go-threads query JSON: parsing, match rules, ordering, paging and errors.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use threads_reducer::query::exec::{MemIndex, build_index, run_in_memory};
use threads_reducer::query::{FieldPath, Query, QueryError};

fn coll(docs: &[Value]) -> BTreeMap<String, Value> {
    docs.iter()
        .map(|d| (d["_id"].as_str().unwrap().to_owned(), d.clone()))
        .collect()
}

fn run(docs: &BTreeMap<String, Value>, q: Value) -> Result<Vec<String>, QueryError> {
    run_ix(docs, &BTreeMap::new(), q)
}

fn run_ix(
    docs: &BTreeMap<String, Value>,
    ix: &BTreeMap<String, MemIndex>,
    q: Value,
) -> Result<Vec<String>, QueryError> {
    let q = Query::from_threads_json(&q)?;
    Ok(run_in_memory(docs, ix, &q)?
        .into_iter()
        .map(|(id, _)| id)
        .collect())
}

fn path(p: &str) -> FieldPath {
    FieldPath::parse(p, "test").unwrap()
}

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn crit(path: &str, op: u8, value: Value) -> Value {
    json!({"fieldPath": path, "operation": op, "value": value})
}

/// The upstream client test's people: eight aged 60..67, plus others.
fn people() -> BTreeMap<String, Value> {
    let mut docs = Vec::new();
    for (i, age) in (60..68).enumerate() {
        docs.push(json!({"_id": format!("p{i}"), "name": format!("person {i}"), "age": age}));
    }
    docs.push(json!({"_id": "q0", "name": "young", "age": 20}));
    docs.push(json!({"_id": "q1", "name": "old", "age": 90}));
    docs.push(json!({"_id": "q2", "name": "ageless"}));
    docs.push(json!({"_id": "q3", "name": "stringy", "age": "sixty"}));
    coll(&docs)
}

fn small() -> BTreeMap<String, Value> {
    coll(&[
        json!({"_id": "a", "n": 1, "s": "x", "b": true, "o": {"k": 1}}),
        json!({"_id": "b", "n": 2.5, "s": "y", "b": false, "o": {"k": 2}}),
        json!({"_id": "c", "n": 3, "s": "xy", "b": true}),
        json!({"_id": "d", "s": 4, "b": "true"}),
        json!({"_id": "e", "n": -1, "s": "", "b": null, "o": 7}),
    ])
}

#[test]
fn empty_and_null_queries_return_everything_in_id_order() {
    let docs = small();
    let all = ids(&["a", "b", "c", "d", "e"]);
    assert_eq!(run(&docs, json!({})).unwrap(), all);
    assert_eq!(run(&docs, json!(null)).unwrap(), all);
    assert_eq!(run(&docs, json!({"ands": [], "ors": []})).unwrap(), all);
}

#[test]
fn every_operation_on_numbers() {
    let docs = small();
    let q = |op, f: f64| run(&docs, json!({"ands": [crit("n", op, json!({"float": f}))]})).unwrap();
    assert_eq!(q(0, 2.5), ids(&["b"]));
    assert_eq!(q(1, 2.5), ids(&["a", "c", "e"]));
    assert_eq!(q(2, 1.0), ids(&["b", "c"]));
    assert_eq!(q(3, 2.5), ids(&["a", "e"]));
    assert_eq!(q(4, 2.5), ids(&["b", "c"]));
    assert_eq!(q(5, 1.0), ids(&["a", "e"]));
    // Integers and floats are one number type.
    assert_eq!(q(0, 3.0), ids(&["c"]));
}

#[test]
fn every_operation_on_strings() {
    let docs = small();
    let q = |op, s: &str| {
        run(
            &docs,
            json!({"ands": [crit("s", op, json!({"string": s}))]}),
        )
        .unwrap()
    };
    assert_eq!(q(0, "x"), ids(&["a"]));
    assert_eq!(q(1, "x"), ids(&["b", "c", "e"]));
    assert_eq!(q(2, "x"), ids(&["b", "c"]));
    assert_eq!(q(3, "xy"), ids(&["a", "e"]));
    assert_eq!(q(4, "xy"), ids(&["b", "c"]));
    assert_eq!(q(5, "x"), ids(&["a", "e"]));
}

#[test]
fn booleans_support_eq_and_ne_only() {
    let docs = small();
    let q = |op, b: bool| run(&docs, json!({"ands": [crit("b", op, json!({"bool": b}))]}));
    assert_eq!(q(0, true).unwrap(), ids(&["a", "c"]));
    // Ne needs the field to be a boolean: "true" (string) and null do not match.
    assert_eq!(q(1, true).unwrap(), ids(&["b"]));
    for op in 2..=5 {
        let err = q(op, true).unwrap_err();
        assert!(matches!(err, QueryError::BoolOrdering { .. }), "{err}");
        assert!(err.to_string().starts_with("invalid query:"));
        assert!(err.to_string().contains("\"b\""));
    }
}

#[test]
fn missing_fields_and_type_mismatches_do_not_end_the_scan() {
    // go-threads stopped at the first instance without the field; here it just doesn't match.
    let docs = coll(&[
        json!({"_id": "1"}),
        json!({"_id": "2", "v": "text"}),
        json!({"_id": "3", "v": {"nested": 1}}),
        json!({"_id": "4", "v": 5}),
        json!({"_id": "5", "v": 6}),
    ]);
    let q = json!({"ands": [crit("v", 4, json!({"float": 5}))]});
    assert_eq!(run(&docs, q).unwrap(), ids(&["4", "5"]));
    let ne = json!({"ands": [crit("v", 1, json!({"float": 5}))]});
    assert_eq!(run(&docs, ne).unwrap(), ids(&["5"]));
}

#[test]
fn member_names_are_case_insensitive() {
    let docs = people();
    let go_names = json!({
        "Ands": [{"FieldPath": "age", "Operation": 4, "Value": {"Float": 64}}],
        "Sort": {"FieldPath": "age", "Desc": true},
        "LIMIT": 2,
        "Skip": 1
    });
    assert_eq!(run(&docs, go_names).unwrap(), ids(&["p7", "p6"]));
    let camel = json!({
        "ands": [{"fieldPath": "age", "operation": 4, "value": {"float": 64}}],
        "sort": {"fieldPath": "age", "desc": true},
        "limit": 2,
        "skip": 1
    });
    assert_eq!(run(&docs, camel).unwrap(), ids(&["p7", "p6"]));
}

#[test]
fn upstream_client_test_ge_lt_or_eq_skip_limit() {
    // age >= 60 AND age < 66 OR age == 67, skip 1, limit 5, order by _id: exactly 5 results.
    let q = json!({
        "ands": [crit("age", 4, json!({"float": 60})), crit("age", 3, json!({"float": 66}))],
        "ors": [{"ands": [crit("age", 0, json!({"float": 67}))]}],
        "sort": {"fieldPath": "_id", "desc": false},
        "skip": 1,
        "limit": 5
    });
    let docs = people();
    let want = ids(&["p1", "p2", "p3", "p4", "p5"]);
    assert_eq!(run(&docs, q.clone()).unwrap(), want);
    // The same with an index on age (the plan is a union of two index reads).
    let mut ix = BTreeMap::new();
    ix.insert("age".to_owned(), build_index(&docs, &path("age")));
    assert_eq!(run_ix(&docs, &ix, q.clone()).unwrap(), want);
    // Without paging: p0..p5 and p7.
    let mut all = q;
    all["skip"] = json!(0);
    all["limit"] = json!(0);
    assert_eq!(
        run(&docs, all).unwrap(),
        ids(&["p0", "p1", "p2", "p3", "p4", "p5", "p7"])
    );
}

#[test]
fn empty_ands_match_everything_even_with_ors() {
    let docs = small();
    let q = json!({"ors": [{"ands": [crit("n", 0, json!({"float": 1}))]}]});
    assert_eq!(run(&docs, q).unwrap().len(), 5);
}

#[test]
fn ors_are_consulted_when_ands_fail_and_nest() {
    let docs = small();
    let q = json!({
        "ands": [crit("s", 0, json!({"string": "x"}))],
        "ors": [
            {"ands": [crit("n", 0, json!({"float": 3}))]},
            {"ands": [crit("n", 0, json!({"float": 99}))],
             "ors": [{"ands": [crit("o", 0, json!({"float": 7}))]}]}
        ]
    });
    assert_eq!(run(&docs, q).unwrap(), ids(&["a", "c", "e"]));
}

#[test]
fn nested_field_paths() {
    let docs = small();
    let q = json!({"ands": [crit("o.k", 2, json!({"float": 1}))]});
    assert_eq!(run(&docs, q).unwrap(), ids(&["b"]));
}

#[test]
fn limit_zero_means_no_limit_and_skip_works_without_limit() {
    let docs = small();
    assert_eq!(run(&docs, json!({"limit": 0})).unwrap().len(), 5);
    assert_eq!(
        run(&docs, json!({"skip": 2})).unwrap(),
        ids(&["c", "d", "e"])
    );
    assert_eq!(run(&docs, json!({"skip": 9})).unwrap(), ids(&[]));
    assert_eq!(
        run(&docs, json!({"skip": 1, "limit": 2})).unwrap(),
        ids(&["b", "c"])
    );
}

#[test]
fn sort_then_limit_is_the_true_top_n() {
    // go-threads #452 applied limit before sorting; here sort comes first.
    let docs = coll(
        &(0..50)
            .map(|i| json!({"_id": format!("i{i:02}"), "score": (i * 37) % 50}))
            .collect::<Vec<_>>(),
    );
    let q = json!({"sort": {"fieldPath": "score", "desc": true}, "limit": 3});
    let got = run(&docs, q).unwrap();
    let scores: Vec<i64> = got
        .iter()
        .map(|id| docs[id]["score"].as_i64().unwrap())
        .collect();
    assert_eq!(scores, vec![49, 48, 47]);
    let q = json!({"sort": {"fieldPath": "score"}, "skip": 2, "limit": 2});
    let got = run(&docs, q).unwrap();
    let scores: Vec<i64> = got
        .iter()
        .map(|id| docs[id]["score"].as_i64().unwrap())
        .collect();
    assert_eq!(scores, vec![2, 3]);
}

#[test]
fn sorting_by_a_missing_field_is_an_error_but_id_sort_is_not() {
    let docs = small();
    let err = run(&docs, json!({"sort": {"fieldPath": "n"}})).unwrap_err();
    assert!(matches!(err, QueryError::SortFieldMissing { .. }));
    assert!(
        err.to_string()
            .contains("sorting field doesn't correspond to instance type")
    );
    // Filtering out the instance without the field makes the sort fine.
    let ok = run(
        &docs,
        json!({"ands": [crit("n", 4, json!({"float": -5}))], "sort": {"fieldPath": "n", "desc": true}}),
    )
    .unwrap();
    assert_eq!(ok, ids(&["c", "b", "a", "e"]));
    assert_eq!(
        run(&docs, json!({"sort": {"fieldPath": "_id", "desc": true}})).unwrap(),
        ids(&["e", "d", "c", "b", "a"])
    );
    // An empty sort path means no sort.
    assert_eq!(
        run(&docs, json!({"sort": {"fieldPath": ""}}))
            .unwrap()
            .len(),
        5
    );
}

#[test]
fn mixed_type_sort_uses_the_total_order() {
    let docs = small();
    let got = run(&docs, json!({"sort": {"fieldPath": "s"}})).unwrap();
    // number 4 < "" < "x" < "xy" < "y"
    assert_eq!(got, ids(&["d", "e", "a", "c", "b"]));
}

#[test]
fn seek_starts_at_an_id_inclusive() {
    let docs = small();
    assert_eq!(
        run(&docs, json!({"seek": "c"})).unwrap(),
        ids(&["c", "d", "e"])
    );
    assert_eq!(
        run(&docs, json!({"seek": "bb"})).unwrap(),
        ids(&["c", "d", "e"])
    );
    assert_eq!(
        run(&docs, json!({"seek": "c", "limit": 2})).unwrap(),
        ids(&["c", "d"])
    );
    // Descending by _id, seek pages downwards.
    assert_eq!(
        run(
            &docs,
            json!({"seek": "c", "sort": {"fieldPath": "_id", "desc": true}})
        )
        .unwrap(),
        ids(&["c", "b", "a"])
    );
    assert_eq!(run(&docs, json!({"seek": ""})).unwrap().len(), 5);
}

#[test]
fn index_member_iterates_that_index_in_value_order() {
    let docs = small();
    let err = run(&docs, json!({"index": "n"})).unwrap_err();
    assert_eq!(err, QueryError::IndexNotFound { path: "n".into() });
    assert!(err.to_string().contains("index not found"));
    let mut ix = BTreeMap::new();
    ix.insert("n".to_owned(), build_index(&docs, &path("n")));
    // Instances without an indexed value ("d") are not in the index, so not returned.
    assert_eq!(
        run_ix(&docs, &ix, json!({"index": "n"})).unwrap(),
        ids(&["e", "a", "b", "c"])
    );
    assert_eq!(
        run_ix(
            &docs,
            &ix,
            json!({"index": "n", "ands": [crit("n", 2, json!({"float": 1}))]})
        )
        .unwrap(),
        ids(&["b", "c"])
    );
    // `_id` always has an index.
    assert_eq!(run(&docs, json!({"index": "_id"})).unwrap().len(), 5);
}

#[test]
fn errors_name_what_is_wrong() {
    let bad = |q: Value| Query::from_threads_json(&q).unwrap_err();
    let e = bad(json!({"ands": [crit("a", 9, json!({"float": 1}))]}));
    assert!(
        e.to_string().contains("invalid query: unknown operation 9"),
        "{e}"
    );
    let e = bad(
        json!({"ands": [crit("a", 0, json!({"float": 1})), {"fieldPath": "a", "operation": -1, "value": {"float": 1}}]}),
    );
    assert!(
        e.to_string().contains("unknown operation -1 at ands[1]"),
        "{e}"
    );
    let e = bad(json!({"ands": [{"fieldPath": "a", "operation": 2.5, "value": {"float": 1}}]}));
    assert!(matches!(e, QueryError::UnknownOperation { .. }));
    let e = bad(json!({"ands": [{"fieldPath": "a", "operation": "gt", "value": {"float": 1}}]}));
    assert!(e.to_string().contains("ands[0].operation"), "{e}");
    for v in [
        json!({}),
        json!({"float": 1, "string": "x"}),
        json!({"float": null}),
    ] {
        let e = bad(json!({"ands": [crit("a", 0, v)]}));
        assert!(
            e.to_string()
                .contains("invalid query: value type should describe exactly one type"),
            "{e}"
        );
    }
    let e = bad(json!({"ands": [{"fieldPath": "a", "operation": 0}]}));
    assert!(matches!(e, QueryError::ValueArity { .. }));
    let e = bad(json!({"ors": [{"ands": [crit("a", 0, json!({"float": "1"}))]}]}));
    assert!(
        e.to_string()
            .contains("ors[0].ands[0].value.float must be a number"),
        "{e}"
    );
    let e = bad(json!({"ands": [], "Ands": []}));
    assert!(matches!(e, QueryError::DuplicateMember { .. }), "{e}");
    assert!(matches!(
        bad(json!({"ands": {}})),
        QueryError::WrongType { .. }
    ));
    assert!(matches!(
        bad(json!({"limit": -1})),
        QueryError::WrongType { .. }
    ));
    assert!(matches!(
        bad(json!({"skip": 1.5})),
        QueryError::WrongType { .. }
    ));
    assert!(matches!(bad(json!([])), QueryError::WrongType { .. }));
    let e = bad(json!({"ands": [crit("", 0, json!({"float": 1}))]}));
    assert!(matches!(e, QueryError::BadPath { .. }), "{e}");
    let e = bad(json!({"ands": [crit("a..b", 0, json!({"float": 1}))]}));
    assert!(e.to_string().contains("\"a..b\""), "{e}");
    assert!(matches!(
        bad(json!({"sort": {"fieldPath": "a", "desc": "yes"}})),
        QueryError::WrongType { .. }
    ));
}

#[test]
fn unknown_members_are_ignored_like_go() {
    let docs = small();
    let q = json!({"ands": [{"fieldPath": "n", "operation": 0, "value": {"float": 1, "extra": 1}, "query": {}}]});
    assert_eq!(run(&docs, q).unwrap(), ids(&["a"]));
}

#[test]
fn deep_nesting_is_rejected_not_overflowed() {
    let mut q = json!({"ands": [crit("a", 0, json!({"float": 1}))]});
    for _ in 0..100 {
        q = json!({"ands": [crit("a", 0, json!({"float": 1}))], "ors": [q]});
    }
    let err = Query::from_threads_json(&q).unwrap_err();
    assert!(matches!(err, QueryError::TooDeep { .. }));
}

#[test]
fn a_go_threads_query_with_an_unknown_member_is_refused_not_misread() {
    let ands = json!([{"fieldPath": "n", "operation": 0, "value": {"float": 1.0}}]);
    // Known members only: go-threads query JSON.
    assert!(Query::parse(json!({"ands": ands.clone()}).to_string().as_bytes()).is_ok());
    // One unknown member: neither silently ignored nor turned into a Mongo filter that
    // matches nothing.
    let err = Query::parse(
        json!({"ands": ands.clone(), "limits": 5})
            .to_string()
            .as_bytes(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        QueryError::Ambiguous {
            threads_member: "ands".into(),
            other_member: "limits".into()
        }
    );
    assert!(err.to_string().starts_with("invalid query:"), "{err}");
    // A Mongo filter with no go-threads member is still a Mongo filter, and one on a field
    // named like a member goes through the envelope.
    assert!(Query::parse(br#"{"name": "x"}"#).is_ok());
    assert!(Query::parse(br#"{"$filter": {"limit": 5, "name": "x"}}"#).is_ok());
    assert!(matches!(
        Query::parse(br#"{"limit": 5, "name": "x"}"#),
        Err(QueryError::Ambiguous { .. })
    ));
}
