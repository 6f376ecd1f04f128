//! Mongo-style filters and options, and telling the two syntaxes apart.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use threads_reducer::query::exec::run_in_memory;
use threads_reducer::query::{FindOptions, Query, QueryError, Syntax};

fn coll(docs: &[Value]) -> BTreeMap<String, Value> {
    docs.iter()
        .map(|d| (d["_id"].as_str().unwrap().to_owned(), d.clone()))
        .collect()
}

fn docs() -> BTreeMap<String, Value> {
    coll(&[
        json!({"_id": "a", "n": 1, "s": "x", "b": true, "o": {"k": 1, "t": "p"}, "arr": [1, 2]}),
        json!({"_id": "b", "n": 2.5, "s": "y", "b": false, "o": {"k": 2}}),
        json!({"_id": "c", "n": 3, "s": "xy", "b": true, "nul": null}),
        json!({"_id": "d", "s": 4, "b": "true"}),
        json!({"_id": "e", "n": -1, "s": "", "b": null, "o": 7}),
    ])
}

fn find(filter: Value, options: Value) -> Result<Vec<String>, QueryError> {
    let q = Query::from_mongo(&filter, &FindOptions::from_json(&options)?)?;
    assert_eq!(q.syntax, Syntax::Mongo);
    Ok(run_in_memory(&docs(), &BTreeMap::new(), &q)?
        .into_iter()
        .map(|(id, _)| id)
        .collect())
}

fn f(filter: Value) -> Vec<String> {
    find(filter, json!({})).unwrap()
}

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn implicit_equality_and_nested_paths() {
    assert_eq!(f(json!({})), ids(&["a", "b", "c", "d", "e"]));
    assert_eq!(f(json!({"n": 1})), ids(&["a"]));
    assert_eq!(f(json!({"n": 1.0})), ids(&["a"]));
    assert_eq!(f(json!({"o.k": 2})), ids(&["b"]));
    assert_eq!(f(json!({"o.k": 2, "s": "y"})), ids(&["b"]));
    assert_eq!(f(json!({"o.k": 2, "s": "x"})), ids(&[]));
    // A plain object value is exact (whole-value) equality.
    assert_eq!(f(json!({"o": {"k": 2}})), ids(&["b"]));
    assert_eq!(f(json!({"o": {"k": 1}})), ids(&[]));
    assert_eq!(f(json!({"arr": [1, 2]})), ids(&["a"]));
    // null equals only an explicit null.
    assert_eq!(f(json!({"nul": null})), ids(&["c"]));
    assert_eq!(f(json!({"b": null})), ids(&["e"]));
}

#[test]
fn comparison_operators_stay_within_one_type() {
    assert_eq!(f(json!({"n": {"$eq": 3}})), ids(&["c"]));
    assert_eq!(f(json!({"n": {"$gt": 1}})), ids(&["b", "c"]));
    assert_eq!(f(json!({"n": {"$gte": 1}})), ids(&["a", "b", "c"]));
    assert_eq!(f(json!({"n": {"$lt": 2.5}})), ids(&["a", "e"]));
    assert_eq!(f(json!({"n": {"$lte": 2.5}})), ids(&["a", "b", "e"]));
    assert_eq!(f(json!({"n": {"$gt": 0, "$lt": 3}})), ids(&["a", "b"]));
    // A number bound never matches the string/number mix in "s" across types.
    assert_eq!(f(json!({"s": {"$gte": 0}})), ids(&["d"]));
    assert_eq!(f(json!({"s": {"$gte": ""}})), ids(&["a", "b", "c", "e"]));
    assert_eq!(f(json!({"s": {"$gt": "x", "$lt": "y"}})), ids(&["c"]));
    // Booleans order false < true in this syntax.
    assert_eq!(f(json!({"b": {"$gt": false}})), ids(&["a", "c"]));
    assert_eq!(f(json!({"b": {"$lte": true}})), ids(&["a", "b", "c"]));
    // Objects compare member by member.
    assert_eq!(f(json!({"o": {"$gt": {"k": 1}}})), ids(&["a", "b"]));
}

#[test]
fn negations_match_missing_fields() {
    assert_eq!(f(json!({"n": {"$ne": 1}})), ids(&["b", "c", "d", "e"]));
    assert_eq!(f(json!({"n": {"$nin": [1, 3]}})), ids(&["b", "d", "e"]));
    assert_eq!(f(json!({"n": {"$nin": []}})).len(), 5);
    assert_eq!(f(json!({"n": {"$not": {"$gt": 1}}})), ids(&["a", "d", "e"]));
    assert_eq!(
        f(json!({"$nor": [{"n": 1}, {"s": "y"}]})),
        ids(&["c", "d", "e"])
    );
}

#[test]
fn in_and_exists() {
    assert_eq!(f(json!({"n": {"$in": [1, 3, "x"]}})), ids(&["a", "c"]));
    assert_eq!(f(json!({"s": {"$in": [4, "y"]}})), ids(&["b", "d"]));
    assert_eq!(f(json!({"n": {"$in": []}})), ids(&[]));
    assert_eq!(
        f(json!({"n": {"$exists": true}})),
        ids(&["a", "b", "c", "e"])
    );
    assert_eq!(f(json!({"n": {"$exists": false}})), ids(&["d"]));
    assert_eq!(f(json!({"b": {"$exists": true}})).len(), 5);
    assert_eq!(f(json!({"o.t": {"$exists": true}})), ids(&["a"]));
}

#[test]
fn logical_operators() {
    assert_eq!(
        f(json!({"$or": [{"n": 1}, {"s": "y"}, {"s": 4}]})),
        ids(&["a", "b", "d"])
    );
    assert_eq!(
        f(json!({"$and": [{"n": {"$gt": 0}}, {"b": true}]})),
        ids(&["a", "c"])
    );
    assert_eq!(
        f(json!({"b": true, "$or": [{"n": 3}, {"n": 2.5}]})),
        ids(&["c"])
    );
    assert_eq!(
        f(json!({"$and": [{"$or": [{"n": 1}, {"n": 3}]}, {"$or": [{"s": "xy"}, {"s": "q"}]}]})),
        ids(&["c"])
    );
}

#[test]
fn sort_skip_limit_seek() {
    let o = |opts: Value| find(json!({}), opts).unwrap();
    // Missing values sort first ascending, last descending.
    assert_eq!(
        o(json!({"sort": {"n": 1}})),
        ids(&["d", "e", "a", "b", "c"])
    );
    assert_eq!(
        o(json!({"sort": {"n": -1}})),
        ids(&["c", "b", "a", "e", "d"])
    );
    assert_eq!(o(json!({"sort": "-n"})), ids(&["c", "b", "a", "e", "d"]));
    // Several keys need an array; ties fall back to ascending _id.
    assert_eq!(
        o(json!({"sort": [{"b": "desc"}, ["n", -1]]})),
        ids(&["d", "c", "a", "b", "e"])
    );
    assert_eq!(
        o(json!({"sort": ["b", "-_id"]})),
        ids(&["e", "b", "c", "a", "d"])
    );
    assert_eq!(o(json!({"sort": ["n", "desc"]})).len(), 5); // two keys: "n" then field "desc"
    assert_eq!(
        o(json!({"sort": {"n": "descending"}, "skip": 1, "limit": 2})),
        ids(&["b", "a"])
    );
    assert_eq!(o(json!({"limit": 0, "skip": 3})), ids(&["d", "e"]));
    assert_eq!(o(json!({"seek": "b", "limit": 2})), ids(&["b", "c"]));
    assert_eq!(
        o(json!({"seek": "b", "sort": {"_id": -1}})),
        ids(&["b", "a"])
    );
}

#[test]
fn errors_name_operator_and_field() {
    let bad = |filter: Value| Query::from_mongo(&filter, &FindOptions::default()).unwrap_err();
    let e = bad(json!({"a.b": {"$regex": "x"}}));
    assert_eq!(
        e.to_string(),
        "invalid query: unknown operator $regex at field \"a.b\""
    );
    let e = bad(json!({"a": {"$in": 5}}));
    assert_eq!(
        e.to_string(),
        "invalid query: operator $in at field \"a\" expects an array"
    );
    let e = bad(json!({"a": {"$exists": 1}}));
    assert!(e.to_string().contains("$exists"), "{e}");
    let e = bad(json!({"a": {"$gt": 1, "b": 2}}));
    assert!(matches!(e, QueryError::MixedOperators { .. }), "{e}");
    let e = bad(json!({"$and": []}));
    assert!(e.to_string().contains("$and"), "{e}");
    let e = bad(json!({"$or": [{"a": 1}, 5]}));
    assert!(
        e.to_string().contains("$or[1] must be a JSON object"),
        "{e}"
    );
    let e = bad(json!({"$where": "1"}));
    assert!(matches!(e, QueryError::UnknownOperator { .. }));
    let e = bad(json!({"a": {"$not": 1}}));
    assert!(e.to_string().contains("$not"), "{e}");
    let e = bad(json!({"a..b": 1}));
    assert!(matches!(e, QueryError::BadPath { .. }));
    assert!(matches!(bad(json!([1])), QueryError::WrongType { .. }));

    let opt = |o: Value| FindOptions::from_json(&o).unwrap_err();
    assert!(matches!(
        opt(json!({"sort": {"a": 1, "b": 1}})),
        QueryError::BadSort { .. }
    ));
    assert!(matches!(
        opt(json!({"sort": {"a": 2}})),
        QueryError::BadSort { .. }
    ));
    assert!(matches!(
        opt(json!({"sort": {}})),
        QueryError::BadSort { .. }
    ));
    assert!(matches!(
        opt(json!({"sort": 5})),
        QueryError::BadSort { .. }
    ));
    assert!(matches!(
        opt(json!({"limit": "5"})),
        QueryError::WrongType { .. }
    ));
    assert!(matches!(
        opt(json!({"projection": {}})),
        QueryError::UnknownOperator { .. }
    ));
    let mut deep = json!({"a": 1});
    for _ in 0..100 {
        deep = json!({"$and": [deep]});
    }
    assert!(matches!(bad(deep), QueryError::TooDeep { .. }));
}

#[test]
fn from_json_tells_the_syntaxes_apart() {
    let t = Query::from_json(&json!({"Ands": [], "limit": 2})).unwrap();
    assert_eq!(t.syntax, Syntax::Threads);
    assert_eq!(t.limit, 2);
    assert_eq!(
        Query::from_json(&json!({})).unwrap().syntax,
        Syntax::Threads
    );
    let m = Query::from_json(&json!({"n": {"$gt": 1}})).unwrap();
    assert_eq!(m.syntax, Syntax::Mongo);
    let env =
        Query::from_json(&json!({"$filter": {"limit": 5}, "$sort": "-n", "$limit": 1})).unwrap();
    assert_eq!(
        (env.syntax, env.limit, env.sort.len()),
        (Syntax::Mongo, 1, 1)
    );
    let r = run_in_memory(
        &docs(),
        &BTreeMap::new(),
        &Query::parse(br#"{"$filter": {"n": {"$gte": 1}}, "$sort": {"n": -1}, "$skip": 1}"#)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        r.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
        ["b", "a"]
    );
    assert!(matches!(Query::parse(b"{"), Err(QueryError::Malformed(_))));
    assert!(matches!(
        Query::from_json(&json!({"$filter": {}, "$hint": 1})),
        Err(QueryError::UnknownOperator { .. })
    ));
    assert!(matches!(
        Query::from_json(&json!("x")),
        Err(QueryError::WrongType { .. })
    ));
}
