//! A body parsed on a second thread while its events are applied gives the same outcome, the
//! same rejection reason and the same state as a body parsed inline, whatever it holds.

#[path = "db_util.rs"]
mod util;

use serde_json::json;
use threads_protocol::store::{Direction, KeyRange, Store, scan_collect};
use threads_reducer::db::keys::SPACE_INSTANCE;
use threads_reducer::db::{Batch, DbEvent};
use threads_reducer::fold::Outcome;
use util::*;

/// Every pair in the store (fold state, undo logs, footprints).
fn dump(h: &Harness) -> Vec<(Vec<u8>, Vec<u8>)> {
    let txn = h.store.read().unwrap();
    scan_collect(&txn, KeyRange::all(), Direction::Forward, usize::MAX).unwrap()
}

fn creates(from: usize, n: usize) -> Vec<DbEvent> {
    (from..from + n)
        .map(|i| {
            create(
                "P",
                &format!("i{i:05}"),
                json!({"name": format!("n{i}"), "age": i % 50}),
            )
        })
        .collect()
}

/// The JSON of a batch with `tail` spliced in before its closing `]}`.
fn with_tail(events: Vec<DbEvent>, tail: &str) -> Vec<u8> {
    let json = String::from_utf8(Batch::new(events).encode_json()).unwrap();
    let cut = json.len() - 2;
    format!("{}{tail}{}", &json[..cut], &json[cut..]).into_bytes()
}

#[test]
fn parsing_beside_the_fold_changes_nothing_but_the_time() {
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    // A collection and creates in one record (the one-pass reader hands over to the derived
    // decoder at the collection event).
    let mut first = vec![DbEvent::CreateCollection(people(
        "P",
        &[("name", true), ("age", false)],
    ))];
    first.extend(creates(0, 200));
    bodies.push(Batch::new(first).encode());
    // Plain creates, compressed and not.
    bodies.push(Batch::new(creates(200, 500)).encode());
    bodies.push(Batch::new(creates(700, 300)).encode_json());
    // A schema violation in the middle.
    let mut bad = creates(1000, 300);
    bad[150] = create("P", "bad", json!({"name": 5}));
    bodies.push(Batch::new(bad).encode());
    // A unique clash early and a malformed event at the end: malformed wins.
    let mut clash = creates(1300, 300);
    clash[10] = create("P", "clash", json!({"name": "n3"}));
    bodies.push(with_tail(
        clash,
        r#",{"type":"delete","collection":"P","id":7}"#,
    ));
    // Valid events, then an unknown event type at the end.
    bodies.push(with_tail(creates(1600, 300), r#",{"type":"frobnicate"}"#));
    // An index change between creates, and saves and deletes.
    let mut mixed = creates(1900, 100);
    mixed.push(DbEvent::UpdateCollection(people("P", &[("name", true)])));
    mixed.extend(creates(2000, 100));
    mixed.extend((0..100).map(|i| save("P", &format!("i{i:05}"), json!({"age": 99}))));
    mixed.extend((100..150).map(|i| delete("P", &format!("i{i:05}"))));
    bodies.push(Batch::new(mixed).encode());
    // A version this implementation does not know, after the events.
    let json = String::from_utf8(Batch::new(creates(2100, 300)).encode_json()).unwrap();
    bodies.push(format!("{},\"v\":2}}", &json[..json.len() - 1]).into_bytes());
    // Creates that all land.
    bodies.push(Batch::new(creates(2400, 400)).encode());

    let mut inline = Harness::new();
    inline.fold.fold_mut().set_decode_beside_from(usize::MAX);
    let mut beside = Harness::new();
    beside.fold.fold_mut().set_decode_beside_from(0);
    let mut rejected = 0;
    for (n, body) in bodies.iter().enumerate() {
        let a = inline.apply_body(1, body);
        let b = beside.apply_body(1, body);
        assert_eq!(a, b, "body {n}");
        rejected += usize::from(matches!(a, Outcome::Rejected(_)));
        assert_eq!(dump(&inline), dump(&beside), "state after body {n}");
    }
    assert_eq!(rejected, 4, "the bodies meant to be rejected are");
    assert!(inline.count_space(SPACE_INSTANCE) > 1000);
}
