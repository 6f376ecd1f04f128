//! Instance events and the batch format: create, save (merge patch, upsert), delete, schema and
//! unique checks, atomic records, key limits, malformed bodies.

#[path = "db_util.rs"]
mod util;

use serde_json::{Value, json};
use threads_reducer::db::keys::SPACE_INDEX;
use threads_reducer::db::{Batch, BatchError, DbError, DbEvent, merge};
use threads_reducer::fold::Outcome;
use util::*;

fn setup() -> Harness {
    let mut h = Harness::new();
    h.ok(vec![DbEvent::CreateCollection(people(
        "P",
        &[("name", true), ("age", false)],
    ))]);
    h
}

#[test]
fn create_get_save_delete() {
    let mut h = setup();
    h.ok(vec![create(
        "P",
        "a",
        json!({"name": "Ann", "age": 30, "_mod": 1}),
    )]);
    assert_eq!(
        h.get("P", "a", None).unwrap(),
        json!({"_id": "a", "name": "Ann", "age": 30, "_mod": 1})
    );
    h.ok(vec![save(
        "P",
        "a",
        json!({"age": 31, "_mod": 2, "name": null}),
    )]);
    assert_eq!(
        h.get("P", "a", None).unwrap(),
        json!({"_id": "a", "age": 31, "_mod": 2})
    );
    h.ok(vec![delete("P", "a")]);
    assert!(matches!(
        h.get("P", "a", None),
        Err(DbError::InstanceNotFound(_))
    ));
    assert_eq!(
        h.count_space(SPACE_INDEX),
        0,
        "index entries follow the instance"
    );
}

#[test]
fn create_of_an_existing_id_is_refused() {
    let mut h = setup();
    h.ok(vec![create("P", "a", json!({"name": "Ann"}))]);
    let r = h.rejected(vec![create("P", "a", json!({"name": "Bob"}))]);
    assert!(r.contains("can't create already existing instance"), "{r}");
    // The same new _id twice in one transaction: go-threads' commit-time wording.
    let r = h.rejected(vec![
        create("P", "b", json!({"name": "B1"})),
        create("P", "b", json!({"name": "B2"})),
    ]);
    assert!(r.contains("already existent instance"), "{r}");
    assert!(
        h.stored("P", "b").is_none(),
        "the whole record had no effect"
    );
    // Created, deleted and created again in one transaction is fine.
    h.ok(vec![
        create("P", "c", json!({"name": "C1"})),
        delete("P", "c"),
        create("P", "c", json!({"name": "C2"})),
    ]);
    assert_eq!(h.stored("P", "c").unwrap()["name"], json!("C2"));
}

#[test]
fn instances_must_match_their_id_and_be_objects() {
    let mut h = setup();
    let ev = |instance: Value| DbEvent::Create {
        collection: "P".into(),
        id: "a".into(),
        instance,
    };
    let r = h.rejected(vec![ev(json!({"name": "x"}))]);
    assert!(r.contains("invalid instance: missing _id attribute"), "{r}");
    let r = h.rejected(vec![ev(json!({"_id": "b"}))]);
    assert!(r.contains("does not match the event's id"), "{r}");
    let r = h.rejected(vec![ev(json!([1]))]);
    assert!(r.contains("must be a JSON object"), "{r}");
    let r = h.rejected(vec![create("P", "", json!({}))]);
    assert!(r.contains("empty _id"), "{r}");
    let r = h.rejected(vec![save("P", "a", json!({"_id": "z"}))]);
    assert!(r.contains("the patch changes _id"), "{r}");
    let r = h.rejected(vec![save("P", "a", json!(7))]);
    assert!(r.contains("not a JSON object"), "{r}");
}

#[test]
fn schema_failures_name_the_field_and_rule() {
    let mut h = Harness::new();
    let mut c = people("P", &[]);
    c.schema["required"] = json!(["name"]);
    h.ok(vec![DbEvent::CreateCollection(c)]);
    let r = h.rejected(vec![create("P", "a", json!({"name": "x", "age": "old"}))]);
    assert!(
        r.contains(
            "instance doesn't correspond to schema: age: \"old\" is not of type \"integer\""
        ),
        "{r}"
    );
    let r = h.rejected(vec![create("P", "a", json!({"age": 1.5}))]);
    assert!(r.contains("instance doesn't correspond to schema: "), "{r}");
    assert!(r.contains("(root): \"name\" is a required property"), "{r}");
    assert!(r.contains("; age: "), "errors are joined with '; ': {r}");
    h.ok(vec![create("P", "a", json!({"name": "x", "age": 2}))]);
    let r = h.rejected(vec![save("P", "a", json!({"age": "x"}))]);
    assert!(
        r.contains("instance doesn't correspond to schema: age"),
        "{r}"
    );
}

#[test]
fn unique_indexes_are_enforced() {
    let mut h = setup();
    h.ok(vec![
        create("P", "a", json!({"name": "Ann"})),
        create("P", "b", json!({"name": "Bob"})),
        create("P", "c", json!({})),
        create("P", "d", json!({})),
    ]);
    let r = h.rejected(vec![create("P", "e", json!({"name": "Ann"}))]);
    assert!(r.contains("unique constraint violation"), "{r}");
    assert!(r.contains("index \"name\""), "{r}");
    assert!(r.contains("\"Ann\""), "{r}");
    let r = h.rejected(vec![save("P", "b", json!({"name": "Ann"}))]);
    assert!(r.contains("unique constraint violation"), "{r}");
    // Saving an instance with its own value is not a clash; moving a value is fine.
    h.ok(vec![save("P", "a", json!({"name": "Ann", "age": 1}))]);
    h.ok(vec![
        save("P", "a", json!({"name": "Anne"})),
        save("P", "b", json!({"name": "Ann"})),
    ]);
    // A value freed by a delete can be taken in the same record.
    h.ok(vec![
        delete("P", "b"),
        create("P", "f", json!({"name": "Ann"})),
    ]);
}

#[test]
fn save_upserts_and_delete_of_a_missing_id_is_a_no_op() {
    let mut h = setup();
    h.ok(vec![save(
        "P",
        "n",
        json!({"_id": "n", "name": "New", "_mod": 5}),
    )]);
    assert_eq!(
        h.stored("P", "n").unwrap(),
        json!({"_id": "n", "name": "New", "_mod": 5})
    );
    // A patch without _id on a missing instance (e.g. after a concurrent delete): _id is set.
    h.ok(vec![save("P", "m", json!({"age": 3}))]);
    assert_eq!(h.stored("P", "m").unwrap(), json!({"_id": "m", "age": 3}));
    let before = h.digest();
    h.ok(vec![delete("P", "zzz")]);
    assert_eq!(h.digest(), before);
    let r = h.rejected(vec![delete("Nope", "zzz")]);
    assert!(r.contains("collection not found"), "{r}");
}

#[test]
fn a_failing_event_rejects_the_whole_record() {
    let mut h = setup();
    h.ok(vec![create("P", "a", json!({"name": "Ann"}))]);
    let before = h.digest();
    let r = h.rejected(vec![
        create("P", "b", json!({"name": "Bob"})),
        save("P", "a", json!({"age": 9})),
        DbEvent::CreateCollection(people("Other", &[])),
        create("P", "c", json!({"name": "Ann"})),
    ]);
    assert!(
        r.starts_with("event 3 (create on \"P\"): unique constraint"),
        "{r}"
    );
    assert_eq!(h.digest(), before);
    assert!(h.stored("P", "b").is_none());
}

#[test]
fn keys_too_long_for_the_store_are_rejected() {
    let mut h = setup();
    // The instance key is `30 ‖ thread tag (8) ‖ 02 ‖ str("P") ‖ str(id)`: 505 bytes of id
    // make it 519 bytes, over the store's 511.
    let long = "x".repeat(505);
    let r = h.rejected(vec![create("P", &long, json!({}))]);
    assert!(r.contains("_id of 505 bytes is too long"), "{r}");
    let r = h.rejected(vec![create("P", "a", json!({"name": long}))]);
    assert!(
        r.contains("value at \"name\" of instance \"a\" is too long to index"),
        "{r}"
    );
    // Unindexed fields may be long.
    h.ok(vec![DbEvent::CreateCollection(coll(
        "Free",
        json!({"text": {"type": "string"}}),
        &[],
    ))]);
    h.ok(vec![create(
        "Free",
        "a",
        json!({"text": "y".repeat(100_000)}),
    )]);
    // ... but then an index on them cannot be built.
    let r = h.rejected(vec![DbEvent::UpdateCollection(coll(
        "Free",
        json!({"text": {"type": "string"}}),
        &[("text", false)],
    ))]);
    assert!(r.contains("can't create index on \"text\""), "{r}");
}

#[test]
fn malformed_bodies_are_rejected_not_panicking() {
    let mut h = setup();
    for body in [
        &b""[..],
        b"null",
        b"{}",
        b"{\"events\": 5}",
        b"{\"v\": 2, \"events\": []}",
        b"{\"events\": [{\"type\": \"nope\"}]}",
        b"{\"events\": [{\"type\": \"delete\", \"collection\": \"P\"}]}",
        b"{\"events\": [{\"type\": \"delete\", \"collection\": \"P\", \"id\": \"a\", \"x\": 1}]}",
        b"{\"events\": [], \"extra\": 1}",
        b"\xff\xfe",
    ] {
        match h.apply_body(1, body) {
            Outcome::Rejected(r) => assert!(r.starts_with("malformed batch"), "{r}"),
            Outcome::Applied => panic!("applied {:?}", String::from_utf8_lossy(body)),
        }
    }
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let body = format!(
        "{{\"events\": [{{\"type\": \"save\", \"collection\": \"P\", \"id\": \"a\", \"patch\": {deep}}}]}}"
    );
    assert!(matches!(
        h.apply_body(1, body.as_bytes()),
        Outcome::Rejected(_)
    ));
    assert!(matches!(
        Batch::decode(&vec![b' '; threads_reducer::db::event::MAX_BATCH_LEN + 1]),
        Err(BatchError::TooLarge { .. })
    ));
    // An empty batch is a valid (empty) transaction.
    assert_eq!(h.apply_body(1, b"{\"events\": []}"), Outcome::Applied);
}

#[test]
fn batches_round_trip() {
    let events = vec![
        DbEvent::CreateCollection(people("P", &[("age", true)])),
        DbEvent::UpdateCollection(people("P", &[])),
        DbEvent::DeleteCollection { name: "P".into() },
        create("P", "a", json!({"x": [1, {"y": null}]})),
        save("P", "a", json!({"x": null})),
        delete("P", "a"),
    ];
    let b = Batch::new(events);
    let bytes = b.encode();
    assert_eq!(Batch::decode(&bytes).unwrap(), b);
    let text = String::from_utf8(bytes).unwrap();
    assert!(
        text.starts_with("{\"v\":1,\"events\":[{\"type\":\"create_collection\",\"name\":\"P\""),
        "{text}"
    );
    // Defaults: no version, no indexes, no scripts.
    let minimal = br#"{"events":[{"type":"create_collection","name":"P","schema":{"properties":{"_id":{"type":"string"}}}}]}"#;
    let d = Batch::decode(minimal).unwrap();
    assert_eq!(d.version, 1);
    match &d.events[0] {
        DbEvent::CreateCollection(c) => {
            assert!(
                c.indexes.is_empty() && c.write_validator.is_empty() && c.read_filter.is_empty()
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn merge_patch_diff_is_what_writers_send() {
    let old = json!({"_id": "a", "name": "Ann", "age": 3, "tags": ["x"], "_mod": 1});
    let new = json!({"_id": "a", "name": "Ann", "age": 4, "_mod": 2});
    let patch = merge::diff(&old, &new);
    assert_eq!(patch, json!({"age": 4, "tags": null, "_mod": 2}));
    let mut h = setup();
    h.ok(vec![create("P", "a", old)]);
    h.ok(vec![save("P", "a", patch)]);
    assert_eq!(h.stored("P", "a").unwrap(), new);
}

mod no_panics {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|i| json!(i)),
            "[a-z_$#/.\u{0}-]{0,6}".prop_map(Value::String),
            prop::sample::select(vec![
                "_id",
                "type",
                "string",
                "properties",
                "$ref",
                "#/definitions/x",
                "P",
                "a",
            ])
            .prop_map(|s| json!(s)),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop::sample::select(vec![
                        "_id",
                        "type",
                        "properties",
                        "name",
                        "a",
                        "required",
                        "$ref",
                        "definitions",
                        "x",
                        "enum",
                    ])
                    .prop_map(String::from),
                    inner,
                    0..4
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn event() -> impl Strategy<Value = Value> {
        let name = prop::sample::select(vec!["P", "Q", "", "a-b", "a--b"]);
        let kind = prop::sample::select(vec![
            "create_collection",
            "update_collection",
            "delete_collection",
            "create",
            "save",
            "delete",
        ]);
        (kind, name, "[a-c]{0,2}", value(), value(), any::<bool>()).prop_map(
            |(kind, name, id, v, w, unique)| match kind {
                "create_collection" | "update_collection" => json!({
                    "type": kind, "name": name, "schema": v,
                    "indexes": [{"path": w.as_str().unwrap_or("a"), "unique": unique}],
                }),
                "delete_collection" => json!({"type": kind, "name": name}),
                "create" => {
                    let mut inst = v;
                    if unique && let Value::Object(m) = &mut inst {
                        m.insert("_id".into(), json!(id));
                    }
                    json!({"type": kind, "collection": name, "id": id, "instance": inst})
                }
                "save" => json!({"type": kind, "collection": name, "id": id, "patch": v}),
                _ => json!({"type": kind, "collection": name, "id": id}),
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_events_never_panic(batches in prop::collection::vec(
            prop::collection::vec(event(), 0..4), 1..6)
        ) {
            let mut h = setup();
            for events in batches {
                let body = serde_json::to_vec(&json!({"events": events})).unwrap();
                let _ = h.apply_body(1, &body);
            }
            let _ = h.find("P", json!({}), None);
        }

        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..200)) {
            let mut h = setup();
            prop_assert!(matches!(h.apply_body(1, &body), Outcome::Rejected(_) | Outcome::Applied));
        }
    }
}
