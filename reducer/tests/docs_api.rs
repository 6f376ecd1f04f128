//! The embedded document database end to end: write transactions, reads, queries, listeners,
//! and two hosts converging through the replication engine.

use serde_json::{Value, json};
use std::collections::VecDeque;
use threads_protocol::engine::{Config, NewThread, Output, PeerId, Time};
use threads_protocol::id::ThreadId;
use threads_protocol::rng::seeded;
use threads_protocol::store::memory::MemoryStore;
use threads_reducer::db::{CollectionConfig, IndexSpec};
use threads_reducer::docs::{DocsError, Documents};
use threads_reducer::listen::{Action, Filter};
use threads_reducer::query::Query;

const NANOS: u64 = 1_700_000_000_000_000_000;

fn open(seed: u64) -> Documents<MemoryStore> {
    let config = Config {
        sync_interval_min_ms: 100,
        ..Config::default()
    };
    Documents::open(config, MemoryStore::new(), seeded(seed), None, Time(0)).unwrap()
}

fn people() -> CollectionConfig {
    CollectionConfig {
        name: "people".into(),
        schema: json!({
            "type": "object",
            "properties": {
                "_id": {"type": "string"},
                "name": {"type": "string"},
                "age": {"type": "integer", "minimum": 0}
            },
            "required": ["name"]
        }),
        indexes: vec![IndexSpec {
            path: "age".into(),
            unique: false,
        }],
        write_validator: String::new(),
        read_filter: String::new(),
    }
}

fn with_people(docs: &mut Documents<MemoryStore>) -> ThreadId {
    let db = docs.new_db(Time(0), NewThread::default()).unwrap().id;
    let mut txn = docs.begin(&db, None);
    docs.txn_new_collection(&mut txn, people()).unwrap();
    docs.commit(Time(0), txn, NANOS).unwrap();
    db
}

#[test]
fn create_read_save_delete() {
    let mut docs = open(1);
    let db = with_people(&mut docs);
    let mut txn = docs.begin(&db, None);
    let id = docs
        .txn_create(&mut txn, "people", json!({"name": "Ada", "age": 36}), NANOS)
        .unwrap();
    assert_eq!(id.len(), 26, "a ULID");
    assert_eq!(id, id.to_lowercase());
    let kept = docs
        .txn_create(
            &mut txn,
            "people",
            json!({"_id": "grace", "name": "Grace", "age": 45}),
            NANOS,
        )
        .unwrap();
    assert_eq!(kept, "grace");
    // Reads inside a write transaction see the committed state only (COMPAT §d); nothing is
    // visible outside it yet either.
    assert!(docs.txn_get(&txn, "people", "grace", None).is_err());
    assert!(docs.get(&db, "people", "grace", None).is_err());
    docs.commit(Time(0), txn, NANOS).unwrap();
    let txn = docs.begin(&db, None);
    assert_eq!(
        docs.txn_get(&txn, "people", "grace", None).unwrap()["age"],
        45
    );

    let ada = docs.get(&db, "people", &id, None).unwrap();
    assert_eq!(ada["name"], "Ada");
    assert_eq!(ada["_mod"], json!(NANOS));
    assert!(docs.has(&db, "people", &[&id, "grace"], None).unwrap());
    assert!(!docs.has(&db, "people", &[&id, "nobody"], None).unwrap());

    // Save is an upsert through a merge patch.
    let mut txn = docs.begin(&db, None);
    docs.txn_save(
        &mut txn,
        "people",
        json!({"_id": "grace", "name": "Grace Hopper", "age": 45}),
        NANOS + 1,
    )
    .unwrap();
    docs.commit(Time(0), txn, NANOS).unwrap();
    assert_eq!(
        docs.get(&db, "people", "grace", None).unwrap()["name"],
        "Grace Hopper"
    );

    // Delete handles every id and reports the missing ones.
    let mut txn = docs.begin(&db, None);
    let missing = docs
        .txn_delete(&mut txn, "people", &["nobody", &id, "ghost"])
        .unwrap();
    assert_eq!(missing, vec!["nobody".to_string(), "ghost".to_string()]);
    docs.commit(Time(0), txn, NANOS).unwrap();
    assert!(docs.get(&db, "people", &id, None).is_err());
    assert!(docs.get(&db, "people", "grace", None).is_ok());
}

#[test]
fn invalid_writes_are_refused_and_change_nothing() {
    let mut docs = open(2);
    let db = with_people(&mut docs);
    let before = docs.state_digest(&db).unwrap();
    let mut txn = docs.begin(&db, None);
    // A schema violation is caught as soon as it is written, with the path and the rule.
    let err = docs
        .txn_create(&mut txn, "people", json!({"name": "Bad", "age": -3}), NANOS)
        .unwrap_err();
    let DocsError::Rejected(msg) = &err else {
        panic!("{err:?}")
    };
    assert!(msg.contains("age"), "{msg}");
    // Creating an existing id in one transaction fails too.
    let mut txn = docs.begin(&db, None);
    docs.txn_create(&mut txn, "people", json!({"_id": "x", "name": "X"}), NANOS)
        .unwrap();
    let err = docs
        .txn_create(&mut txn, "people", json!({"_id": "x", "name": "X"}), NANOS)
        .unwrap_err();
    assert!(err.to_string().contains("exist"), "{err}");
    assert_eq!(docs.state_digest(&db).unwrap(), before);
    // Unknown collections are reported by name.
    let mut txn = docs.begin(&db, None);
    let err = docs
        .txn_create(&mut txn, "nope", json!({"name": "n"}), NANOS)
        .unwrap_err();
    assert!(err.to_string().contains("collection not found"), "{err}");
}

#[test]
fn queries_use_the_go_threads_json_and_mongo_filters() {
    let mut docs = open(3);
    let db = with_people(&mut docs);
    let mut txn = docs.begin(&db, None);
    for age in 55..70 {
        docs.txn_create(
            &mut txn,
            "people",
            json!({"name": format!("p{age}"), "age": age}),
            NANOS,
        )
        .unwrap();
    }
    docs.commit(Time(0), txn, NANOS).unwrap();
    let q = Query::from_threads_json(&json!({
        "ands": [
            {"fieldPath": "age", "operation": 4, "value": {"float": 60}},
            {"fieldPath": "age", "operation": 3, "value": {"float": 66}}
        ],
        "ors": [{"ands": [{"fieldPath": "age", "operation": 0, "value": {"float": 67}}]}],
        "skip": 1,
        "limit": 5
    }))
    .unwrap();
    assert_eq!(docs.find(&db, "people", &q, None).unwrap().len(), 5);
    let q = Query::from_json(&json!({"age": {"$gte": 65}})).unwrap();
    let rows = docs.find(&db, "people", &q, None).unwrap();
    assert_eq!(rows.len(), 5);
}

#[test]
fn read_filters_and_validators_apply() {
    let mut docs = open(4);
    let db = docs.new_db(Time(0), NewThread::default()).unwrap().id;
    let mut config = people();
    config.name = "secrets".into();
    config.write_validator = "return event.patch.type !== 'delete'".into();
    config.read_filter = "if (instance.name === 'hidden') { return null } return instance".into();
    let mut txn = docs.begin(&db, None);
    docs.txn_new_collection(&mut txn, config).unwrap();
    docs.commit(Time(0), txn, NANOS).unwrap();
    let listener = docs.listen(&db, vec![], None);
    let mut txn = docs.begin(&db, None);
    docs.txn_create(
        &mut txn,
        "secrets",
        json!({"_id": "a", "name": "hidden"}),
        NANOS,
    )
    .unwrap();
    docs.txn_create(
        &mut txn,
        "secrets",
        json!({"_id": "b", "name": "shown"}),
        NANOS,
    )
    .unwrap();
    docs.commit(Time(0), txn, NANOS).unwrap();
    assert!(docs.get(&db, "secrets", "a", None).is_err());
    assert!(!docs.has(&db, "secrets", &["a"], None).unwrap());
    // Listeners see changes through the read filter too: the hidden create is skipped, the
    // other carries the instance as stored (its JSON text).
    while docs.poll_output().is_some() {}
    let mut seen = Vec::new();
    while let Some(c) = docs.next_change(listener, None).unwrap() {
        let text = c.instance.expect("a create carries its instance");
        seen.push((
            c.instance_id,
            serde_json::from_str::<Value>(text.get()).unwrap(),
        ));
    }
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].0, "b");
    assert_eq!(seen[0].1, docs.get(&db, "secrets", "b", None).unwrap());
    let all = docs.find(&db, "secrets", &Query::default(), None).unwrap();
    assert_eq!(all.len(), 1);
    let mut txn = docs.begin(&db, None);
    let err = docs.txn_delete(&mut txn, "secrets", &["b"]).unwrap_err();
    assert!(
        err.to_string().contains("app denied net record body"),
        "{err}"
    );
}

/// Makes host 1 join host 0's database.
fn join(nodes: &mut [Documents<MemoryStore>], db: &ThreadId) {
    let info = nodes[0].host().thread_info(db).unwrap();
    let addr = format!(
        "/ip4/127.0.0.1/tcp/1/p2p/{}/thread/{}",
        nodes[0].host().peer_id(),
        db
    )
    .parse()
    .unwrap();
    nodes[1]
        .host_mut()
        .join_thread(Time(0), &addr, info.key)
        .unwrap();
}

/// A tiny driver for several `Documents` hosts with instant, in-order delivery.
struct Net {
    nodes: Vec<Documents<MemoryStore>>,
    queue: VecDeque<(usize, PeerId, Vec<u8>)>,
    now: Time,
}

impl Net {
    /// Two hosts (seeded `seed` and `seed + 1`) sharing a database with the `people`
    /// collection: host 0 made it, host 1 joined.
    fn joined(seed: u64) -> (Net, ThreadId) {
        let mut net = Net {
            nodes: vec![open(seed), open(seed + 1)],
            queue: VecDeque::new(),
            now: Time(0),
        };
        let db = with_people(&mut net.nodes[0]);
        join(&mut net.nodes, &db);
        (net, db)
    }

    fn pump(&mut self) {
        for (i, n) in self.nodes.iter_mut().enumerate() {
            while let Some(o) = n.poll_output() {
                if let Output::Transmit { to, bytes } = o {
                    self.queue.push_back((i, to, bytes));
                }
            }
        }
    }

    fn run(&mut self, mut done: impl FnMut(&mut Self) -> bool) -> bool {
        for _ in 0..10_000 {
            self.pump();
            if let Some((from, to, bytes)) = self.queue.pop_front() {
                let from = *self.nodes[from].host().peer_id();
                if let Some(n) = self.nodes.iter_mut().find(|n| n.host().peer_id() == &to) {
                    n.host_mut().handle_message(self.now, &from, &bytes);
                }
                continue;
            }
            if done(self) {
                return true;
            }
            let next = self
                .nodes
                .iter()
                .filter_map(|n| n.host().poll_timeout())
                .min();
            let Some(t) = next else { return done(self) };
            self.now = self.now.max(t);
            let now = self.now;
            for n in &mut self.nodes {
                n.host_mut().handle_timeout(now);
            }
        }
        false
    }
}

#[test]
fn two_hosts_share_collections_instances_and_changes() {
    let (mut net, db) = Net::joined(10);
    let listener = net.nodes[1].listen(
        &db,
        vec![Filter {
            collection: Some("people".into()),
            ..Filter::default()
        }],
        None,
    );
    // Host 0 writes; host 1 does not even know the collection yet.
    let node = &mut net.nodes[0];
    let mut txn = node.begin(&db, None);
    node.txn_create(
        &mut txn,
        "people",
        json!({"_id": "same", "name": "from a"}),
        NANOS,
    )
    .unwrap();
    node.txn_create(&mut txn, "people", json!({"name": "only a"}), NANOS)
        .unwrap();
    node.commit(Time(0), txn, NANOS).unwrap();
    assert!(net.run(|n| {
        n.nodes[1].collection_info(&db, "people").is_ok()
            && n.nodes[1]
                .has(&db, "people", &["same"], None)
                .unwrap_or(false)
    }));
    // The collection definition came by replication; host 1 can now write.
    let node = &mut net.nodes[1];
    let mut txn = node.begin(&db, None);
    node.txn_save(
        &mut txn,
        "people",
        json!({"_id": "same", "name": "renamed by b"}),
        NANOS + 5,
    )
    .unwrap();
    node.commit(Time(0), txn, NANOS).unwrap();
    assert!(net.run(|n| {
        n.nodes[0]
            .get(&db, "people", "same", None)
            .is_ok_and(|v| v["name"] == "renamed by b")
    }));
    assert_eq!(
        net.nodes[0].state_digest(&db).unwrap(),
        net.nodes[1].state_digest(&db).unwrap()
    );
    // Host 1's listener saw the remote creates and its own save, in order.
    let mut seen: Vec<(Action, String)> = Vec::new();
    while let Some(c) = net.nodes[1].next_change(listener, None).unwrap() {
        seen.push((c.action, c.instance_id.clone()));
        if c.action != Action::Delete {
            assert!(c.instance.is_some());
        }
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[2], (Action::Save, "same".to_string()));
}

#[test]
fn concurrent_creates_of_one_id_converge_to_the_first_in_order() {
    let (mut net, db) = Net::joined(20);
    assert!(net.run(|n| n.nodes[1].collection_info(&db, "people").is_ok()));
    // Both create the same id before hearing of each other.
    for (i, name) in [(0usize, "a"), (1, "b")] {
        let node = &mut net.nodes[i];
        let mut txn = node.begin(&db, None);
        node.txn_create(
            &mut txn,
            "people",
            json!({"_id": "same", "name": name}),
            NANOS,
        )
        .unwrap();
        node.commit(Time(0), txn, NANOS).unwrap();
    }
    assert!(net.run(|n| {
        let heads = |i: usize| n.nodes[i].host().heads(&db).unwrap();
        heads(0) == heads(1) && heads(0).len() == 2
    }));
    let a = net.nodes[0].get(&db, "people", "same", None).unwrap();
    let b = net.nodes[1].get(&db, "people", "same", None).unwrap();
    assert_eq!(a, b, "both replicas keep the same winner");
    assert_eq!(
        net.nodes[0].state_digest(&db).unwrap(),
        net.nodes[1].state_digest(&db).unwrap()
    );
    let _: Value = a;
}

#[test]
fn a_snapshot_does_not_see_later_commits() {
    let mut docs = open(30);
    let db = with_people(&mut docs);
    let mut txn = docs.begin(&db, None);
    docs.txn_create(
        &mut txn,
        "people",
        json!({"_id": "a", "name": "A", "age": 1}),
        NANOS,
    )
    .unwrap();
    docs.commit(Time(0), txn, NANOS).unwrap();
    // Hold a snapshot's view in a store read transaction while another write commits.
    let store = docs.host().store().clone();
    let before = {
        use threads_protocol::store::Store;
        store.read().unwrap()
    };
    let mut txn = docs.begin(&db, None);
    docs.txn_create(
        &mut txn,
        "people",
        json!({"_id": "b", "name": "B", "age": 2}),
        NANOS,
    )
    .unwrap();
    docs.commit(Time(0), txn, NANOS).unwrap();
    let old = threads_reducer::db::read::list_collections(&before, &db).unwrap();
    assert_eq!(old.len(), 1);
    let mut scripts = threads_reducer::db::Scripts::new();
    assert!(
        threads_reducer::db::read::get(&before, &db, "people", "b", None, &mut scripts).is_err(),
        "the snapshot predates b"
    );
    // Snapshot reads see one state.
    let (a, b) = docs
        .snapshot(&db, |s| {
            (s.has("people", &["a"], None), s.get("people", "b", None))
        })
        .unwrap();
    assert!(a.unwrap());
    assert_eq!(b.unwrap()["name"], "B");
}

#[test]
fn a_storage_failure_leaves_no_trace_and_the_record_is_applied_on_retry() {
    use threads_protocol::store::memory::{FaultOp, FaultyStore};
    let config = Config {
        sync_interval_min_ms: 100,
        ..Config::default()
    };
    let writer = open(40);
    let faulty = FaultyStore::new(MemoryStore::new());
    let reader: Documents<FaultyStore<MemoryStore>> =
        Documents::open(config, faulty.clone(), seeded(41), None, Time(0)).unwrap();
    let mut w = writer;
    let mut r = reader;
    let db = with_people(&mut w);
    let info = w.host().thread_info(&db).unwrap();
    let addr = format!(
        "/ip4/127.0.0.1/tcp/1/p2p/{}/thread/{}",
        w.host().peer_id(),
        db
    )
    .parse()
    .unwrap();
    r.host_mut().join_thread(Time(0), &addr, info.key).unwrap();
    let digest_before = r.state_digest(&db).unwrap();
    // The reader's next put fails: the page with the collection record must leave no trace.
    faulty.fail_nth(FaultOp::Put, 1);
    let mut now = Time(0);
    let mut applied = false;
    let mut failures = 0;
    for _ in 0..2_000 {
        let mut moved = false;
        let from_w: Vec<Output> = std::iter::from_fn(|| w.poll_output()).collect();
        let from_r: Vec<Output> = std::iter::from_fn(|| r.poll_output()).collect();
        let (wp, rp) = (*w.host().peer_id(), *r.host().peer_id());
        for o in from_w {
            if let Output::Transmit { bytes, .. } = o {
                moved = true;
                r.host_mut().handle_message(now, &wp, &bytes);
            }
        }
        for o in from_r {
            match o {
                Output::Transmit { bytes, .. } => {
                    moved = true;
                    w.host_mut().handle_message(now, &rp, &bytes);
                }
                Output::Event(threads_protocol::engine::Event::ApplyFailed { .. }) => {
                    failures += 1;
                    // The failed attempt left nothing behind.
                    assert!(r.host().heads(&db).unwrap().is_empty());
                    assert_eq!(r.state_digest(&db).unwrap(), digest_before);
                }
                Output::Event(_) => {}
            }
        }
        if r.collection_info(&db, "people").is_ok() {
            applied = true;
            break;
        }
        if !moved {
            now = Time(now.0 + 200);
            w.host_mut().handle_timeout(now);
            r.host_mut().handle_timeout(now);
        }
    }
    assert_eq!(failures, 1, "the injected failure happened once");
    assert!(applied, "the record was applied on retry");
    assert_eq!(w.state_digest(&db).unwrap(), r.state_digest(&db).unwrap());
}

#[test]
fn a_failed_operation_is_not_added_and_the_others_commit() {
    let mut docs = open(21);
    let db = with_people(&mut docs);
    let mut txn = docs.begin(&db, None);
    docs.txn_create(&mut txn, "people", json!({"_id": "x", "name": "X"}), NANOS)
        .unwrap();
    // Breaks the schema: refused, and not part of the transaction.
    let err = docs
        .txn_create(&mut txn, "people", json!({"_id": "bad", "age": -1}), NANOS)
        .unwrap_err();
    assert!(matches!(err, DocsError::Rejected(_)), "{err:?}");
    // A duplicate create and a save breaking the schema are refused the same way.
    assert!(
        docs.txn_create(&mut txn, "people", json!({"_id": "x", "name": "X"}), NANOS)
            .is_err()
    );
    assert!(
        docs.txn_save(&mut txn, "people", json!({"_id": "x", "age": "old"}), NANOS)
            .is_err()
    );
    assert!(
        docs.txn_new_collection(
            &mut txn,
            CollectionConfig {
                name: "bad name!".into(),
                ..people()
            }
        )
        .is_err()
    );
    docs.txn_create(&mut txn, "people", json!({"_id": "y", "name": "Y"}), NANOS)
        .unwrap();
    assert_eq!(txn.events().len(), 2, "only the two good creates are kept");
    docs.verify(&txn).unwrap();
    docs.commit(Time(0), txn, NANOS).unwrap();
    assert_eq!(docs.get(&db, "people", "x", None).unwrap()["name"], "X");
    assert_eq!(docs.get(&db, "people", "y", None).unwrap()["name"], "Y");
    assert!(docs.get(&db, "people", "bad", None).is_err());
    let txn = docs.begin(&db, None);
    assert_eq!(
        docs.txn_get(&txn, "people", "x", None).unwrap()["name"],
        "X"
    );
}

#[test]
fn save_with_a_non_string_id_says_so() {
    let mut docs = open(22);
    let db = with_people(&mut docs);
    let mut txn = docs.begin(&db, None);
    let err = docs
        .txn_save(&mut txn, "people", json!({"_id": 7, "name": "N"}), NANOS)
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("_id must be a string"), "{text}");
    assert!(!text.contains("missing"), "{text}");
    let err = docs
        .txn_save(&mut txn, "people", json!({"name": "N"}), NANOS)
        .unwrap_err();
    assert!(err.to_string().contains("missing _id attribute"), "{err}");
    assert!(txn.is_empty());
}

#[test]
fn group_commit_writes_consecutive_records_and_falls_back_to_single_verdicts() {
    let mut docs = open(51);
    let db = with_people(&mut docs);
    let before = docs.host().heads(&db).unwrap()[0].1;
    // Three independent transactions: one group, three consecutive records of one log.
    let mut txns = Vec::new();
    for name in ["a", "b", "c"] {
        let mut t = docs.begin(&db, None);
        docs.txn_create(&mut t, "people", json!({"_id": name, "name": name}), NANOS)
            .unwrap();
        txns.push(t);
    }
    txns.insert(1, docs.begin(&db, None)); // an empty one writes nothing
    let out = docs.commit_batch(Time(1), txns, NANOS);
    assert_eq!(out.len(), 4);
    assert!(out[1].as_ref().unwrap().is_none());
    let counters: Vec<u64> = [0, 2, 3]
        .iter()
        .map(|&i| out[i].as_ref().unwrap().as_ref().unwrap().counter().get())
        .collect();
    assert_eq!(counters, vec![before.0 + 1, before.0 + 2, before.0 + 3]);
    assert_eq!(docs.host().heads(&db).unwrap()[0].1.0, before.0 + 3);

    // Two transactions that were each valid alone but clash together (same new _id): the
    // group fails as a whole, then each commits alone: the first wins, the second is refused.
    let mut txns = Vec::new();
    for age in [1, 2] {
        let mut t = docs.begin(&db, None);
        docs.txn_create(
            &mut t,
            "people",
            json!({"_id": "d", "name": "d", "age": age}),
            NANOS,
        )
        .unwrap();
        txns.push(t);
    }
    let out = docs.commit_batch(Time(2), txns, NANOS);
    assert!(out[0].as_ref().unwrap().is_some());
    assert!(out[1].is_err(), "{:?}", out[1]);
    assert_eq!(docs.get(&db, "people", "d", None).unwrap()["age"], json!(1));
    assert_eq!(docs.host().heads(&db).unwrap()[0].1.0, before.0 + 4);
}

#[test]
fn a_large_transaction_travels_compressed_and_its_ids_grow() {
    let (mut net, db) = Net::joined(30);
    let node = &mut net.nodes[0];
    let mut ids = Vec::new();
    let mut json_len = 0;
    // One large transaction, then one in the same millisecond, then one with the clock
    // stepped back: ids keep growing across all three.
    for (count, nanos) in [(300, NANOS), (3, NANOS), (3, NANOS - 5_000_000_000)] {
        let mut txn = node.begin(&db, None);
        for i in 0..count {
            let doc = json!({"name": format!("person {i}"), "age": i % 90});
            json_len += doc.to_string().len() + 80;
            ids.push(node.txn_create(&mut txn, "people", doc, nanos).unwrap());
        }
        let record = node.commit(Time(0), txn, nanos).unwrap().unwrap();
        if count == 300 {
            // The record carries the batch compressed: far less than its JSON.
            let sent = record.bundle().encode().len();
            assert!(sent * 3 < json_len, "record {sent} bytes, JSON ~{json_len}");
        }
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids grow: {ids:?}");
    let wanted: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert!(net.run(|n| {
        n.nodes[1]
            .has(&db, "people", &wanted, None)
            .unwrap_or(false)
    }));
    assert_eq!(
        net.nodes[0].state_digest(&db).unwrap(),
        net.nodes[1].state_digest(&db).unwrap()
    );
    let last = net.nodes[1].get(&db, "people", &ids[299], None).unwrap();
    assert_eq!(last["name"], "person 299");
}

#[test]
fn changes_are_published_whether_or_not_the_fold_still_keeps_their_heads() {
    let mut docs = open(30);
    let db = with_people(&mut docs);
    while docs.poll_output().is_some() {}
    let listener = docs.listen(&db, vec![], None);
    // More records than the fold keeps heads for (1,024) before any is published: the first
    // ones are published from their bodies read back from the store, the rest from the heads.
    let n = 1_100;
    for i in 0..n {
        let mut txn = docs.begin(&db, None);
        docs.txn_create(
            &mut txn,
            "people",
            json!({"_id": format!("p{i:04}"), "name": "n"}),
            NANOS,
        )
        .unwrap();
        docs.commit(Time(0), txn, NANOS).unwrap();
    }
    while docs.poll_output().is_some() {}
    let mut seen = Vec::new();
    while let Some(c) = docs.next_change(listener, None).unwrap() {
        assert_eq!(c.action, Action::Create);
        let text = c.instance.expect("a create carries its instance");
        let doc: Value = serde_json::from_str(text.get()).unwrap();
        assert_eq!(doc["_id"], json!(c.instance_id));
        seen.push(c.instance_id);
    }
    let expected: Vec<String> = (0..n).map(|i| format!("p{i:04}")).collect();
    assert_eq!(seen, expected);
}

#[test]
fn each_change_carries_the_instance_as_its_event_left_it() {
    let mut docs = open(31);
    let db = with_people(&mut docs);
    while docs.poll_output().is_some() {}
    let listener = docs.listen(&db, vec![], None);
    // One transaction, one record: a create, a save of the same instance, its delete, and a
    // create that stays.
    let mut txn = docs.begin(&db, None);
    docs.txn_create(
        &mut txn,
        "people",
        json!({"_id": "x", "name": "one"}),
        NANOS,
    )
    .unwrap();
    docs.txn_save(
        &mut txn,
        "people",
        json!({"_id": "x", "name": "two"}),
        NANOS,
    )
    .unwrap();
    docs.txn_delete(&mut txn, "people", &["x"]).unwrap();
    docs.txn_create(
        &mut txn,
        "people",
        json!({"_id": "y", "name": "kept"}),
        NANOS,
    )
    .unwrap();
    docs.commit(Time(0), txn, NANOS).unwrap();
    while docs.poll_output().is_some() {}
    let (mut seen, mut last_text) = (Vec::new(), String::new());
    while let Some(c) = docs.next_change(listener, None).unwrap() {
        if let Some(text) = &c.instance {
            last_text = text.get().to_owned();
        }
        let name = c.instance.map(|text| {
            let doc: Value = serde_json::from_str(text.get()).unwrap();
            doc["name"].as_str().unwrap().to_owned()
        });
        seen.push((c.action, c.instance_id, name));
    }
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(
        seen,
        [
            (Action::Create, "x".into(), some("one")),
            (Action::Save, "x".into(), some("two")),
            (Action::Delete, "x".into(), None),
            (Action::Create, "y".into(), some("kept")),
        ]
    );
    // What a change carries is the stored text itself.
    let stored = docs.get(&db, "people", "y", None).unwrap();
    assert_eq!(last_text, serde_json::to_string(&stored).unwrap());
}
