//! Write validators (go-threads' `(writer, event, instance)`) and read filters
//! (`(reader, instance)`) in the document database.

#[path = "db_util.rs"]
mod util;

use serde_json::json;
use threads_reducer::db::{DbError, DbEvent};
use threads_reducer::fold::Outcome;
use util::*;

/// Writer 1 may do anything; others may only create people younger than 50, never save a
/// name to "forbidden", and only delete instances whose `owner` is themselves.
fn guarded() -> Harness {
    let mut h = Harness::new();
    let mut c = coll(
        "P",
        json!({"name": {"type": "string"}, "age": {"type": "integer"}, "owner": {"type": "string"}}),
        &[],
    );
    c.write_validator = format!(
        r#"
        if (writer === "{admin}") return true;
        var p = event.patch;
        if (event.collection_name !== "P" || event._id !== p.instance_id) return "bad event";
        switch (p.type) {{
            case "create": return p.json_patch.age < 50 && instance === undefined;
            case "save": return p.json_patch.name !== "forbidden" && instance !== undefined;
            case "delete": return p.json_patch === undefined && instance.owner === writer;
        }}
        return false;
        "#,
        admin = author(1)
    );
    h.ok(vec![DbEvent::CreateCollection(c)]);
    h
}

fn reason(o: Outcome) -> String {
    match o {
        Outcome::Rejected(r) => r,
        Outcome::Applied => panic!("unexpectedly applied"),
    }
}

#[test]
fn validators_see_writer_event_and_instance() {
    let mut h = guarded();
    let two = author(2).to_string();
    // Writer 1 is the admin.
    h.ok(vec![create("P", "old", json!({"age": 90, "owner": two}))]);
    // Writer 2: create under 50 only.
    assert_eq!(
        h.apply_as(2, vec![create("P", "a", json!({"age": 20}))]),
        Outcome::Applied
    );
    let r = reason(h.apply_as(2, vec![create("P", "b", json!({"age": 60}))]));
    assert!(r.contains("app denied net record body"), "{r}");
    assert!(
        r.contains("write validator of collection \"P\" on create of instance \"b\""),
        "{r}"
    );
    // Save: the patch is what the record carries; the instance is the stored document.
    assert_eq!(
        h.apply_as(2, vec![save("P", "a", json!({"name": "ok"}))]),
        Outcome::Applied
    );
    let r = reason(h.apply_as(2, vec![save("P", "a", json!({"name": "forbidden"}))]));
    assert!(r.contains("app denied net record body"), "{r}");
    // A save that upserts has no previous instance: denied by this validator.
    let r = reason(h.apply_as(2, vec![save("P", "new", json!({"name": "x"}))]));
    assert!(r.contains("app denied net record body"), "{r}");
    // Delete: only the owner (writer identity string) may delete.
    let r = reason(h.apply_as(3, vec![delete("P", "old")]));
    assert!(r.contains("app denied net record body"), "{r}");
    assert_eq!(h.apply_as(2, vec![delete("P", "old")]), Outcome::Applied);
    // Deleting a missing instance is a no-op that does not consult the validator.
    assert_eq!(h.apply_as(3, vec![delete("P", "gone")]), Outcome::Applied);
}

#[test]
fn denial_values_and_errors_are_reported() {
    let mut h = Harness::new();
    let mut c = coll("P", json!({"n": {"type": "integer"}}), &[]);
    c.write_validator = r#"
        var n = event.patch.json_patch.n;
        if (n === 1) return true;
        if (n === 2) return "too big";
        if (n === 3) return null;
        if (n === 4) throw new Error("boom");
        if (n === 5) { while (true) {} }
        return {n: n};
    "#
    .into();
    h.ok(vec![DbEvent::CreateCollection(c)]);
    h.ok(vec![create("P", "a", json!({"n": 1}))]);
    let r = h.rejected(vec![create("P", "b", json!({"n": 2}))]);
    assert!(r.contains("app denied net record body: too big"), "{r}");
    let r = h.rejected(vec![create("P", "b", json!({"n": 3}))]);
    assert!(r.contains("app denied net record body ("), "{r}");
    let r = h.rejected(vec![create("P", "b", json!({"n": 4}))]);
    assert!(
        r.contains("app denied net record body: validator threw"),
        "{r}"
    );
    assert!(r.contains("boom"), "{r}");
    let r = h.rejected(vec![create("P", "b", json!({"n": 5}))]);
    assert!(
        r.contains("app denied net record body: validator exceeded its step budget"),
        "{r}"
    );
    let r = h.rejected(vec![create("P", "b", json!({"n": 6}))]);
    assert!(r.contains("app denied net record body: {\"n\":6}"), "{r}");
    // Data is passed as values: quotes and escapes cannot break validation (go-threads #453).
    let mut c = coll("Q", json!({"s": {"type": "string"}}), &[]);
    c.write_validator = "return event.patch.json_patch.s.length > 0".into();
    h.ok(vec![DbEvent::CreateCollection(c)]);
    h.ok(vec![create(
        "Q",
        "q",
        json!({"s": "it's \"quoted\" \\ '); return false; //"}),
    )]);
}

#[test]
fn validator_sees_go_threads_event_shape() {
    let mut h = Harness::new();
    let mut c = people("P", &[]);
    // Rejects with the JSON of its arguments, so the test can read them back.
    c.write_validator =
        "return JSON.stringify({w: writer, e: event, i: instance === undefined ? 'undef' : instance})"
            .into();
    h.ok(vec![DbEvent::CreateCollection(c)]);
    let r = h.rejected(vec![save("P", "a", json!({"name": "x"}))]);
    let start = r.find("app denied net record body: ").unwrap() + 28;
    let end = r.rfind(" (write validator").unwrap();
    let seen: serde_json::Value = serde_json::from_str(&r[start..end]).unwrap();
    assert_eq!(seen["w"], json!(author(1).to_string()));
    assert_eq!(seen["i"], json!("undef"));
    let e = &seen["e"];
    assert_eq!(e["_id"], json!("a"));
    assert_eq!(e["collection_name"], json!("P"));
    assert_eq!(
        e["patch"],
        json!({"type": "save", "instance_id": "a", "json_patch": {"name": "x"}})
    );
    assert!(e["timestamp"].as_f64().unwrap() > 1.5e18, "{e}");
}

#[test]
fn read_filters_hide_and_replace() {
    let mut h = Harness::new();
    let mut c = coll(
        "P",
        json!({"name": {"type": "string"}, "age": {"type": "integer"}, "owner": {"type": "string"}}),
        &[("age", false)],
    );
    c.read_filter = r#"
        if (instance.owner === reader) return instance;
        if (instance.owner === "public") { delete instance.owner; return instance; }
        if (instance.owner === "broken") throw new Error("nope");
        return null;
    "#
    .into();
    h.ok(vec![DbEvent::CreateCollection(c)]);
    let two = author(2).to_string();
    h.ok(vec![
        create("P", "mine", json!({"age": 1, "owner": two})),
        create("P", "pub", json!({"age": 2, "owner": "public"})),
        create("P", "secret", json!({"age": 3, "owner": "x"})),
        create("P", "broken", json!({"age": 4, "owner": "broken"})),
    ]);
    let me = Some(two.as_str());
    // get
    assert_eq!(h.get("P", "mine", me).unwrap()["owner"], json!(two));
    assert!(matches!(
        h.get("P", "mine", None),
        Err(DbError::InstanceNotFound(_))
    ));
    assert_eq!(
        h.get("P", "pub", None).unwrap(),
        json!({"_id": "pub", "age": 2})
    );
    assert!(matches!(
        h.get("P", "secret", me),
        Err(DbError::InstanceNotFound(_))
    ));
    assert!(
        matches!(h.get("P", "broken", me), Err(DbError::InstanceNotFound(_))),
        "fail closed"
    );
    // has: every id must exist and be visible
    assert!(h.has("P", &["mine", "pub"], me));
    assert!(!h.has("P", &["mine", "pub"], None));
    assert!(!h.has("P", &["pub", "missing"], me));
    assert!(h.has("P", &[], None));
    // find, with and without the index; skip/limit count visible instances only
    let ids =
        |rows: Vec<(String, serde_json::Value)>| rows.into_iter().map(|r| r.0).collect::<Vec<_>>();
    assert_eq!(ids(h.find("P", json!({}), me).unwrap()), ["mine", "pub"]);
    assert_eq!(ids(h.find("P", json!({}), None).unwrap()), ["pub"]);
    let q =
        json!({"ands": [{"fieldPath": "age", "operation": 4, "value": {"float": 0}}], "skip": 1});
    assert_eq!(ids(h.find("P", q, me).unwrap()), ["pub"]);
    let q = json!({"ands": [{"fieldPath": "age", "operation": 0, "value": {"float": 2}}]});
    assert_eq!(
        h.find("P", q, None).unwrap(),
        vec![("pub".to_owned(), json!({"_id": "pub", "age": 2}))]
    );
    // Queries match the stored document, then the filter decides what is seen.
    let q =
        json!({"ands": [{"fieldPath": "owner", "operation": 0, "value": {"string": "public"}}]});
    assert_eq!(ids(h.find("P", q, None).unwrap()), ["pub"]);
    // stored() is unfiltered
    assert_eq!(h.stored("P", "secret").unwrap()["owner"], json!("x"));
}

#[test]
fn a_throwing_read_filter_leaves_a_diagnostic() {
    let mut scripts = threads_reducer::db::Scripts::new();
    let doc = json!({"_id": "a", "n": 1});
    assert_eq!(
        scripts.filter("return instance", None, &doc),
        Some(doc.clone())
    );
    assert_eq!(scripts.filter_failures(), 0);
    assert!(scripts.last_filter_error().is_none());
    // Hidden (reads fail closed), but counted and kept.
    assert_eq!(scripts.filter("throw new Error('boom')", None, &doc), None);
    assert_eq!(scripts.filter_failures(), 1);
    let error = scripts.last_filter_error().expect("the failure is kept");
    assert!(error.to_string().contains("boom"), "{error}");
    // A body that does not compile is a failure too; a filter that hides on purpose is not.
    assert_eq!(scripts.filter("return (", None, &doc), None);
    assert_eq!(scripts.filter_failures(), 2);
    assert_eq!(scripts.filter("return null", None, &doc), None);
    assert_eq!(scripts.filter_failures(), 2);
    assert!(
        scripts
            .try_filter("throw 1", None, &doc)
            .is_err_and(|e| e.to_string().contains("threw"))
    );
}
