//! Collection events: naming, schema and index rules, back-fill, unique index creation,
//! update and delete, and the read side's collection look-ups.

#[path = "db_util.rs"]
mod util;

use serde_json::json;
use threads_reducer::db::keys::{SPACE_COLLECTION, SPACE_INDEX, SPACE_INSTANCE};
use threads_reducer::db::{DbError, DbEvent, IndexSpec, read};
use util::*;

fn define(c: threads_reducer::db::CollectionConfig) -> DbEvent {
    DbEvent::CreateCollection(c)
}

#[test]
fn names_follow_the_go_threads_rule() {
    let mut h = Harness::new();
    for bad in ["", "-a", "a-", "a--b", "a_b", "a b", "Ä"] {
        let r = h.rejected(vec![define(people(bad, &[]))]);
        assert!(
            r.contains(
                "name may only contain alphanumeric characters or non-consecutive hyphens, \
                 and cannot begin or end with a hyphen"
            ),
            "{bad}: {r}"
        );
    }
    h.ok(vec![define(people("a-b-1", &[]))]);
    let r = h.rejected(vec![define(people(&"x".repeat(101), &[]))]);
    assert!(r.contains("collection name too long"), "{r}");
}

#[test]
fn duplicates_are_refused() {
    let mut h = Harness::new();
    h.ok(vec![define(people("Person", &[]))]);
    let r = h.rejected(vec![define(people("Person", &[]))]);
    assert!(r.contains("collection already registered"), "{r}");
    // Within one batch too.
    let r = h.rejected(vec![define(people("Dog", &[])), define(people("Dog", &[]))]);
    assert!(
        r.starts_with("event 1 (create_collection on \"Dog\"): "),
        "{r}"
    );
    assert!(r.contains("collection already registered"), "{r}");
    // The whole record was rolled back: Dog does not exist.
    assert!(matches!(h.info("Dog"), Err(DbError::CollectionNotFound(_))));
}

#[test]
fn schemas_must_compile_and_define_a_string_id() {
    let mut h = Harness::new();
    let mut c = people("P", &[]);
    c.schema = json!({"properties": {"_id": {"type": "integer"}}});
    let r = h.rejected(vec![define(c.clone())]);
    assert!(
        r.contains("the collection schema _id property must be a string"),
        "{r}"
    );
    c.schema = json!({"properties": {"name": {"type": "string"}}});
    let r = h.rejected(vec![define(c.clone())]);
    assert!(
        r.contains("the collection schema _id property must be a string"),
        "{r}"
    );
    c.schema = json!({"type": 12, "properties": {"_id": {"type": "string"}}});
    let r = h.rejected(vec![define(c.clone())]);
    assert!(r.contains("invalid collection schema"), "{r}");
    c.schema = json!("not an object");
    let r = h.rejected(vec![define(c.clone())]);
    assert!(r.contains("invalid collection schema"), "{r}");
    // A top-level $ref to #/definitions/X is followed (the JS client's generated schemas).
    c.schema = json!({
        "$schema": "http://json-schema.org/draft-04/schema#",
        "$ref": "#/definitions/person",
        "definitions": {"person": {
            "type": "object",
            "properties": {"_id": {"type": "string"}, "age": {"type": "integer"}}
        }}
    });
    c.indexes = vec![IndexSpec {
        path: "age".into(),
        unique: false,
    }];
    h.ok(vec![define(c)]);
    // The JS client's default schema.
    let mut d = people("Default", &[]);
    d.schema = json!({"properties": {"_id": {"type": "string"}}});
    h.ok(vec![define(d)]);
}

#[test]
fn index_rules() {
    let mut h = Harness::new();
    let schema_props = json!({
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "score": {"type": "number"},
        "ok": {"type": "boolean"},
        "tags": {"type": "array"},
        "addr": {"type": "object", "properties": {"city": {"type": "string"}}}
    });
    let r = h.rejected(vec![define(coll(
        "C",
        schema_props.clone(),
        &[("_id", false)],
    ))]);
    assert!(r.contains("cannot create custom index on _id"), "{r}");
    let r = h.rejected(vec![define(coll(
        "C",
        schema_props.clone(),
        &[("nope", false)],
    ))]);
    assert!(r.contains("collection schema does not contain path"), "{r}");
    let r = h.rejected(vec![define(coll(
        "C",
        schema_props.clone(),
        &[("addr.zip", false)],
    ))]);
    assert!(r.contains("collection schema does not contain path"), "{r}");
    for bad in ["tags", "addr"] {
        let r = h.rejected(vec![define(coll(
            "C",
            schema_props.clone(),
            &[(bad, false)],
        ))]);
        assert!(r.contains("value not indexable"), "{bad}: {r}");
    }
    let r = h.rejected(vec![define(coll(
        "C",
        schema_props.clone(),
        &[("a..b", false)],
    ))]);
    assert!(r.contains("invalid index path"), "{r}");
    let r = h.rejected(vec![define(coll(
        "C",
        schema_props.clone(),
        &[("age", false), ("age", true)],
    ))]);
    assert!(r.contains("duplicate index on path \"age\""), "{r}");
    h.ok(vec![define(coll(
        "C",
        schema_props,
        &[
            ("name", true),
            ("age", false),
            ("score", false),
            ("ok", false),
            ("addr.city", false),
        ],
    ))]);
    let info = h.info("C").unwrap();
    assert_eq!(info.indexes.len(), 5, "the _id index is not listed");
}

#[test]
fn new_indexes_are_back_filled() {
    let mut h = Harness::new();
    h.ok(vec![define(people("P", &[]))]);
    h.ok(vec![
        create("P", "a", json!({"name": "x", "age": 30})),
        create("P", "b", json!({"name": "y", "age": 40})),
        create("P", "c", json!({"name": "z"})),
    ]);
    assert_eq!(h.count_space(SPACE_INDEX), 0);
    h.ok(vec![DbEvent::UpdateCollection(people(
        "P",
        &[("age", false)],
    ))]);
    assert_eq!(h.count_space(SPACE_INDEX), 2, "c has no age");
    let q = json!({"ands": [{"fieldPath": "age", "operation": 4, "value": {"float": 35}}],
                   "index": "age"});
    assert_eq!(h.find_ids("P", q), ["b"]);
    // Dropping the index removes its entries; the `index` member now fails.
    h.ok(vec![DbEvent::UpdateCollection(people("P", &[]))]);
    assert_eq!(h.count_space(SPACE_INDEX), 0);
    let err = h.find("P", json!({"index": "age"}), None).unwrap_err();
    assert!(err.to_string().contains("index not found"), "{err}");
}

#[test]
fn a_unique_index_over_duplicates_is_refused() {
    let mut h = Harness::new();
    h.ok(vec![define(people("P", &[("age", false)]))]);
    h.ok(vec![
        create("P", "a", json!({"name": "x", "age": 30})),
        create("P", "b", json!({"name": "x", "age": 30})),
    ]);
    let before = h.digest();
    // A new unique index, back-filled.
    let r = h.rejected(vec![DbEvent::UpdateCollection(people(
        "P",
        &[("age", false), ("name", true)],
    ))]);
    assert!(
        r.contains("can't create unique index (duplicate instances exist)"),
        "{r}"
    );
    // An existing index made unique.
    let r = h.rejected(vec![DbEvent::UpdateCollection(people(
        "P",
        &[("age", true)],
    ))]);
    assert!(
        r.contains("can't create unique index (duplicate instances exist)"),
        "{r}"
    );
    assert_eq!(h.digest(), before, "rejections change nothing");
    // After removing the duplicate, it works, and the index is enforced from then on.
    h.ok(vec![delete("P", "b")]);
    h.ok(vec![DbEvent::UpdateCollection(people(
        "P",
        &[("age", true)],
    ))]);
    let r = h.rejected(vec![create("P", "c", json!({"name": "q", "age": 30}))]);
    assert!(r.contains("unique constraint violation"), "{r}");
}

#[test]
fn update_keeps_instances_and_checks_later_writes() {
    let mut h = Harness::new();
    h.ok(vec![define(people("P", &[]))]);
    h.ok(vec![create("P", "a", json!({"name": "x", "age": 3}))]);
    let r = h.rejected(vec![DbEvent::UpdateCollection(people("Q", &[]))]);
    assert!(r.contains("collection not found"), "{r}");
    // The age becomes a string: existing instances stay as they are.
    let c = coll(
        "P",
        json!({"name": {"type": "string"}, "age": {"type": "string"}}),
        &[],
    );
    h.ok(vec![DbEvent::UpdateCollection(c)]);
    assert_eq!(h.stored("P", "a").unwrap()["age"], json!(3));
    let r = h.rejected(vec![save("P", "a", json!({"name": "y"}))]);
    assert!(
        r.contains("instance doesn't correspond to schema: age: "),
        "{r}"
    );
    h.ok(vec![save("P", "a", json!({"age": "three"}))]);
}

#[test]
fn delete_removes_definition_instances_and_entries() {
    let mut h = Harness::new();
    h.ok(vec![
        define(people("P", &[("age", false)])),
        define(people("Q", &[])),
    ]);
    h.ok(vec![
        create("P", "a", json!({"age": 1})),
        create("P", "b", json!({"age": 2})),
        create("Q", "a", json!({"age": 1})),
    ]);
    assert_eq!(h.count_space(SPACE_INSTANCE), 3);
    assert_eq!(h.count_space(SPACE_INDEX), 2);
    h.ok(vec![DbEvent::DeleteCollection { name: "P".into() }]);
    assert_eq!(h.count_space(SPACE_COLLECTION), 1);
    assert_eq!(h.count_space(SPACE_INSTANCE), 1);
    assert_eq!(h.count_space(SPACE_INDEX), 0);
    assert!(matches!(h.info("P"), Err(DbError::CollectionNotFound(_))));
    let r = h.rejected(vec![create("P", "c", json!({}))]);
    assert!(r.contains("collection not found"), "{r}");
    let r = h.rejected(vec![DbEvent::DeleteCollection { name: "P".into() }]);
    assert!(r.contains("collection not found"), "{r}");
    // A new collection of the same name starts empty.
    h.ok(vec![define(people("P", &[]))]);
    assert_eq!(h.find_ids("P", json!({})), Vec::<String>::new());
    assert!(matches!(
        h.get("P", "a", None),
        Err(DbError::InstanceNotFound(_))
    ));
}

#[test]
fn scripts_must_compile() {
    let mut h = Harness::new();
    let mut c = people("P", &[]);
    c.write_validator = "return (".into();
    let r = h.rejected(vec![define(c.clone())]);
    assert!(r.contains("compiling js func"), "{r}");
    c.write_validator = "return true".into();
    c.read_filter = "}} (function(){".into();
    let r = h.rejected(vec![define(c.clone())]);
    assert!(r.contains("compiling js func"), "{r}");
    c.read_filter = "return instance".into();
    h.ok(vec![define(c.clone())]);
    assert_eq!(h.info("P").unwrap(), c, "stored as given");
}

#[test]
fn list_and_info() {
    let mut h = Harness::new();
    h.ok(vec![
        define(people("B", &[("age", true)])),
        define(people("A", &[])),
    ]);
    let txn = {
        use threads_protocol::store::Store;
        h.store.read().unwrap()
    };
    let all = read::list_collections(&txn, &h.thread).unwrap();
    let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["A", "B"]);
    assert_eq!(
        all[1].indexes,
        vec![IndexSpec {
            path: "age".into(),
            unique: true
        }]
    );
    let e = read::collection_info(&txn, &h.thread, "Nope").unwrap_err();
    assert!(e.to_string().contains("collection not found"), "{e}");
}
