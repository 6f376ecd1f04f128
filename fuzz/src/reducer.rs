//! Harnesses of the reducer targets: record bodies folded into a small database, collection
//! configurations, client queries and merge patches. Each is a plain function so that the
//! crate's tests can run it on the seed inputs.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use threads_protocol::id::{ThreadId, Variant};
use threads_protocol::identity::PrivateKey;
use threads_protocol::rng::seeded;
use threads_protocol::store::memory::MemoryStore;
use threads_protocol::store::{Store, WriteTxn};
use threads_reducer::db::{Batch, CollectionConfig, DbEvent, DocFold, IndexSpec};
use threads_reducer::fold::{Convergent, OrderKey, Outcome, RecordInfo};
use threads_reducer::js::JsConfig;
use threads_reducer::query::exec::{build_index, run_in_memory};
use threads_reducer::query::{FieldPath, Query};

/// A small step budget, so that a hostile validator costs milliseconds, not seconds.
const FUZZ_STEPS: u64 = 20_000;

fn info(thread: ThreadId, counter: u64) -> RecordInfo {
    let author = PrivateKey::from_seed([9; 32]).public();
    let log = author.peer_id();
    RecordInfo {
        thread,
        order: OrderKey {
            clock: counter,
            log: *log.as_bytes(),
            counter,
        },
        log,
        author,
        time: 1_700_000_000_000_000_000,
    }
}

/// The collection every body is folded against.
fn people() -> CollectionConfig {
    CollectionConfig {
        name: "people".into(),
        schema: json!({
            "type": "object",
            "properties": {"_id": {"type": "string"}, "n": {"type": "integer"}},
        }),
        indexes: vec![IndexSpec {
            path: "n".into(),
            unique: true,
        }],
        write_validator: "return event.patch.type !== 'delete' || writer !== ''".into(),
        read_filter: "return instance".into(),
    }
}

/// Folds `bodies` in order into a fresh database holding `people` and two instances.
fn fold_all(bodies: &[Vec<u8>]) {
    let store = MemoryStore::new();
    let thread = ThreadId::random(Variant::Raw, &mut seeded(1));
    let mut fold = Convergent::new(DocFold::with_js_config(JsConfig {
        step_budget: FUZZ_STEPS,
        ..JsConfig::default()
    }));
    let Ok(mut txn) = store.write() else {
        return;
    };
    let setup = Batch::new(vec![
        DbEvent::CreateCollection(people()),
        DbEvent::Create {
            collection: "people".into(),
            id: "a".into(),
            instance: json!({"_id": "a", "n": 1}),
        },
        DbEvent::Create {
            collection: "people".into(),
            id: "b".into(),
            instance: json!({"_id": "b", "n": 2}),
        },
    ])
    .encode();
    let ready = fold.fold_in(&mut txn, &info(thread, 1), &setup);
    assert_eq!(ready, Ok(Outcome::Applied), "the set-up batch applies");
    for (i, body) in bodies.iter().enumerate() {
        // Errors are failures of the machine (none here); rejections are verdicts.
        let _ = fold.fold_in(&mut txn, &info(thread, i as u64 + 2), body);
    }
    let _ = txn.commit();
}

/// Seed inputs of `reducer_batch` (its mode byte, then the body or the JSON events): a small
/// batch as JSON, a batch of 50 creates long enough to be written compressed (so that fuzzing
/// starts inside zstd frames), and a list of events.
pub fn batch_seeds() -> Vec<Vec<u8>> {
    let create = |i: u64| DbEvent::Create {
        collection: "people".into(),
        id: format!("i{i}"),
        instance: json!({"_id": format!("i{i}"), "n": i}),
    };
    let small = Batch::new(vec![create(3)]).encode();
    let large = Batch::new((10..60).map(create).collect()).encode();
    let events = br#"[{"type":"delete","collection":"people","id":"a"}]"#;
    vec![
        [&[0u8][..], &small].concat(),
        [&[0u8][..], &large].concat(),
        [&[1u8][..], &events[..]].concat(),
    ]
}

/// Folds one record body (any bytes) into the small database.
pub fn fold_body(body: &[u8]) {
    fold_all(&[body.to_vec()]);
}

/// Wraps JSON text as the events of a valid batch: `{"events": <text>}`.
pub fn json_batch(events: &[u8]) -> Option<Vec<u8>> {
    let mut body = b"{\"events\":".to_vec();
    body.extend_from_slice(events);
    body.push(b'}');
    serde_json::from_slice::<Value>(&body).ok()?;
    Some(body)
}

/// Decodes JSON as a collection configuration and folds its creation, then an update to it,
/// then writes to it.
pub fn fold_collection(data: &[u8]) {
    let Ok(config) = serde_json::from_slice::<CollectionConfig>(data) else {
        return;
    };
    let name = config.name.clone();
    let write = Batch::new(vec![
        DbEvent::Create {
            collection: name.clone(),
            id: "x".into(),
            instance: json!({"_id": "x", "n": 3, "name": "x"}),
        },
        DbEvent::Save {
            collection: name.clone(),
            id: "x".into(),
            patch: json!({"n": 4}),
        },
        DbEvent::Delete {
            collection: name,
            id: "x".into(),
        },
    ]);
    fold_all(&[
        Batch::new(vec![DbEvent::CreateCollection(config.clone())]).encode(),
        Batch::new(vec![DbEvent::UpdateCollection(config)]).encode(),
        write.encode(),
    ]);
}

/// Parses a query and runs it over a few instances, without and with an index on `n`; both
/// must give the same answer.
pub fn run_query(data: &[u8]) {
    let Ok(query) = Query::parse(data) else {
        return;
    };
    let docs: BTreeMap<String, Value> = [
        json!({"_id": "a", "n": 1, "s": "x", "o": {"k": [1, 2]}}),
        json!({"_id": "b", "n": 2.5, "s": "y", "b": true}),
        json!({"_id": "c", "s": null, "n": "3"}),
        json!({"_id": "d", "n": -1, "a": [{"n": 1}, {"n": 2}]}),
    ]
    .into_iter()
    .map(|d| (d["_id"].as_str().unwrap_or_default().to_owned(), d))
    .collect();
    let plain = run_in_memory(&docs, &BTreeMap::new(), &query);
    let Ok(path) = FieldPath::parse("n", "index") else {
        return;
    };
    let mut indexes = BTreeMap::new();
    indexes.insert("n".to_owned(), build_index(&docs, &path));
    let indexed = run_in_memory(&docs, &indexes, &query);
    if let (Ok(a), Ok(b)) = (&plain, &indexed) {
        assert_eq!(a, b, "an index changed the answer");
    }
}

/// Removes every `null` member, recursively (a merge patch cannot store null).
fn without_nulls(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|_, x| !x.is_null());
            map.values_mut().for_each(without_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(without_nulls),
        _ => {}
    }
}

/// Splits the input at the first NUL byte into two JSON documents; applies the second as a
/// patch to the first, and checks that the diff between them (nulls removed) patches the
/// first into the second.
pub fn merge_round_trip(data: &[u8]) {
    let mut parts = data.splitn(2, |b| *b == 0);
    let (Some(a), Some(b)) = (parts.next(), parts.next()) else {
        return;
    };
    let (Ok(mut old), Ok(mut new)) = (
        serde_json::from_slice::<Value>(a),
        serde_json::from_slice::<Value>(b),
    ) else {
        return;
    };
    let mut patched = old.clone();
    threads_reducer::db::merge::apply(&mut patched, &new);
    without_nulls(&mut old);
    without_nulls(&mut new);
    if old.is_object() && new.is_object() {
        let patch = threads_reducer::db::merge::diff(&old, &new);
        let mut target = old.clone();
        threads_reducer::db::merge::apply(&mut target, &patch);
        assert_eq!(target, new, "the diff does not patch old into new");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_run() {
        let create = Batch::new(vec![DbEvent::Create {
            collection: "people".into(),
            id: "c".into(),
            instance: json!({"_id": "c", "n": 3}),
        }]);
        fold_body(&create.encode());
        fold_body(b"not json");
        let seeds = batch_seeds();
        assert!(seeds[1][1..].starts_with(&threads_reducer::db::body::ZSTD_MAGIC));
        for seed in &seeds {
            fold_body(&seed[1..]);
        }
        assert!(json_batch(b"[]").is_some());
        assert!(json_batch(b"[").is_none());
        fold_collection(
            serde_json::to_vec(&people())
                .expect("a configuration encodes")
                .as_slice(),
        );
        run_query(br#"{"ands":[{"fieldPath":"n","operation":2,"value":{"float":0}}]}"#);
        run_query(br#"{"n":{"$gte":1}}"#);
        merge_round_trip(b"{\"a\":1,\"b\":{\"c\":2}}\0{\"b\":{\"d\":3}}");
    }
}
