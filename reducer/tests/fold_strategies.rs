//! The optimized folds against the reference model: random histories (several writers, one of
//! them offline for a long stretch, clashing unique values, schema and index changes, deletes
//! against saves, rejected records, a validator and a read filter) are folded record by record
//! with the reference undo/redo, with one rewind per batch (whole tail), with dependency
//! tracking, and from scratch in total order. Every fold leaves the same bytes (state, undo
//! logs, rejections, footprints), the same verdicts at arrival, and the same query answers.

#[path = "db_util.rs"]
mod db_util;

use db_util::*;
use proptest::prelude::*;
use serde_json::{Value, json};
use threads_protocol::id::ThreadId;
use threads_protocol::store::memory::MemoryStore;
use threads_protocol::store::{ReadTxn, Store, WriteTxn};
use threads_reducer::db::{Batch, CollectionConfig, DbEvent, DocFold, Scripts, read};
use threads_reducer::fold::{
    Convergent, FoldStats, ORDER_KEY_LEN, OrderKey, Outcome, RecordInfo, SETTLE_SHIFT,
    Strategy as FoldStrategy, TAG_DEPENDENTS, TAG_FOOTPRINT, TAG_OPS, TAG_THREAD_NAME, fold_digest,
    rejection, state_digest,
};
use threads_reducer::query::Query;

const VALIDATOR: &str = "return !(event.patch.type == 'delete' && instance && instance.n == 0)";
const FILTER: &str = "return instance.n == 1 ? null : instance";

fn things(variant: u8) -> CollectionConfig {
    let mut c = coll(
        "things",
        json!({"name": {"type": "string"}, "tag": {"type": "string"},
               "n": {"type": "integer", "maximum": 4}}),
        match variant % 3 {
            0 => &[("name", true), ("tag", false)],
            1 => &[("tag", false)],
            _ => &[("name", true), ("n", true)],
        },
    );
    if variant.is_multiple_of(2) {
        c.write_validator = VALIDATOR.into();
    }
    c.read_filter = FILTER.into();
    c
}

fn plain() -> CollectionConfig {
    coll("plain", json!({"n": {"type": "integer"}}), &[("n", false)])
}

/// One generated event; `a`, `b`, `c` pick ids and values from small pools so that writers
/// clash.
fn event(kind: u8, a: u8, b: u8, c: u8) -> Option<DbEvent> {
    let id = format!("i{}", a % 6);
    let name = format!("n{}", b % 4);
    let tag = format!("t{}", c % 3);
    Some(match kind {
        0..=3 => create(
            "things",
            &id,
            json!({"name": name, "tag": tag, "n": i64::from(c % 6)}),
        ),
        4..=7 => {
            let mut patch = serde_json::Map::new();
            if b.is_multiple_of(2) {
                patch.insert("name".into(), json!(name));
            }
            if c.is_multiple_of(2) {
                patch.insert("tag".into(), json!(tag));
            }
            patch.insert(
                "n".into(),
                if a.is_multiple_of(5) {
                    Value::Null
                } else {
                    json!(i64::from(b % 6))
                },
            );
            save("things", &id, Value::Object(patch))
        }
        8 | 9 => delete("things", &id),
        10 => DbEvent::UpdateCollection(things(b)),
        11 => DbEvent::DeleteCollection {
            name: "things".into(),
        },
        12 => DbEvent::CreateCollection(things(c)),
        13 => create("plain", &id, json!({"n": i64::from(b)})),
        14 => save("plain", &id, json!({"n": i64::from(c)})),
        15 => DbEvent::Delete {
            collection: "plain".into(),
            id,
        },
        _ => return None, // a malformed body
    })
}

type Gen = Vec<(u8, Vec<(u8, u8, u8, u8)>)>;

/// A history: records of four writers with Lamport clocks; writer 3 is offline (sees only its
/// own records) for the middle `offline` steps.
fn history(
    thread: &ThreadId,
    steps: &Gen,
    offline: (usize, usize),
) -> Vec<Vec<(RecordInfo, Vec<u8>)>> {
    let mut logs: Vec<Vec<(RecordInfo, Vec<u8>)>> = vec![Vec::new(); 4];
    let mut seen = [0u64; 4];
    let mut global = 0u64;
    let body0 = Batch::new(vec![
        DbEvent::CreateCollection(things(0)),
        DbEvent::CreateCollection(plain()),
    ])
    .encode();
    logs[0].push((info(thread, 1, 1, 1), body0));
    global = global.max(1);
    seen[0] = 1;
    for (step, (w, events)) in steps.iter().enumerate() {
        let w = usize::from(w % 4);
        let away = w == 3 && step >= offline.0 && step < offline.1;
        if !away {
            seen[w] = seen[w].max(global);
        }
        let clock = seen[w] + 1;
        seen[w] = clock;
        if !away {
            global = global.max(clock);
        }
        let evs: Vec<DbEvent> = events
            .iter()
            .filter_map(|(k, a, b, c)| event(*k, *a, *b, *c))
            .collect();
        let body = if evs.len() < events.len() {
            b"{\"v\": 1, \"events\": [{\"type\": \"nope\"}]}".to_vec()
        } else {
            Batch::new(evs).encode()
        };
        let counter = logs[w].len() as u64 + 1;
        logs[w].push((info(thread, w as u8 + 1, clock, counter), body));
    }
    logs
}

/// Arrival: batches of consecutive records of one log, in log order; `picks` chooses the log
/// and the batch size; writer 3's records come last.
fn arrival(
    logs: &[Vec<(RecordInfo, Vec<u8>)>],
    picks: &[(u8, u8)],
) -> Vec<Vec<(RecordInfo, Vec<u8>)>> {
    let mut next = [0usize; 4];
    let mut batches = Vec::new();
    for (w, n) in picks {
        let w = usize::from(w % 3);
        let end = (next[w] + usize::from(n % 4) + 1).min(logs[w].len());
        if end > next[w] {
            batches.push(logs[w][next[w]..end].to_vec());
            next[w] = end;
        }
    }
    for w in [1, 2, 0, 3] {
        for chunk in logs[w][next[w]..].chunks(7) {
            batches.push(chunk.to_vec());
        }
    }
    batches
}

struct Folded {
    store: MemoryStore,
    verdicts: Vec<Outcome>,
    stats: FoldStats,
}

/// Folds `batches` with `strategy`, one transaction each, records settling into the dependency
/// index in blocks of 2^`shift` clocks.
fn fold_settling(
    strategy: FoldStrategy,
    shift: u8,
    batches: &[Vec<(RecordInfo, Vec<u8>)>],
) -> Folded {
    let store = MemoryStore::new();
    let mut fold = Convergent::with_strategy(DocFold::new(), strategy).with_settle_shift(shift);
    let mut verdicts = Vec::new();
    for batch in batches {
        let mut txn = store.write().unwrap();
        verdicts.extend(fold.fold_batch(&mut txn, batch).unwrap());
        txn.commit().unwrap();
    }
    Folded {
        store,
        verdicts,
        stats: fold.stats(),
    }
}

fn answers(store: &MemoryStore, thread: &ThreadId) -> Vec<String> {
    let txn = store.read().unwrap();
    let mut scripts = Scripts::new();
    let mut out = Vec::new();
    for (coll, q) in [
        ("things", json!({})),
        ("things", json!({"tag": "t1"})),
        (
            "things",
            json!({"$filter": {"n": {"$gte": 2}}, "$sort": {"name": 1}, "$limit": 3}),
        ),
        ("plain", json!({"n": {"$lt": 100}})),
    ] {
        let q = Query::from_json(&q).unwrap();
        let rows = read::find(&txn, thread, coll, &q, None, &mut scripts);
        out.push(format!("{rows:?}"));
    }
    out
}

/// Folds one history, arriving as `picks` say, with every strategy and from scratch, records
/// settling in blocks of 2^`shift` clocks (histories are short: small shifts put most records
/// in the dependency index, the default none), and compares every key the fold keeps.
fn check(
    steps: Gen,
    picks: Vec<(u8, u8)>,
    offline: (usize, usize),
    shift: u8,
) -> Result<(), TestCaseError> {
    let t = thread();
    let logs = history(&t, &steps, offline);
    let batches = arrival(&logs, &picks);
    let reference = fold_settling(FoldStrategy::Reference, shift, &batches);
    let whole = fold_settling(FoldStrategy::WholeTail, shift, &batches);
    let deps = fold_settling(FoldStrategy::Dependencies, shift, &batches);
    let mut all: Vec<(RecordInfo, Vec<u8>)> = logs.concat();
    all.sort_by_key(|(i, _)| i.order);
    let scratch = fold_settling(FoldStrategy::Reference, shift, &[all]);
    // Another shift indexes other records, and folds the same state.
    let unsettled = fold_settling(FoldStrategy::Dependencies, 63, &batches);

    let digest = |f: &Folded| fold_digest(&f.store.read().unwrap(), &t).unwrap();
    prop_assert_eq!(digest(&reference), digest(&scratch));
    prop_assert_eq!(digest(&whole), digest(&reference));
    prop_assert_eq!(digest(&deps), digest(&reference));
    let state = |f: &Folded| state_digest(&f.store.read().unwrap(), &t).unwrap();
    prop_assert_eq!(state(&deps), state(&scratch));
    prop_assert_eq!(state(&unsettled), state(&scratch));
    prop_assert_eq!(&unsettled.verdicts, &reference.verdicts);
    prop_assert_eq!(&whole.verdicts, &reference.verdicts);
    prop_assert_eq!(&deps.verdicts, &reference.verdicts);
    let want = answers(&reference.store, &t);
    prop_assert_eq!(answers(&whole.store, &t), want.clone());
    prop_assert_eq!(answers(&deps.store, &t), want);
    // Batching never redoes more than the per-record model.
    prop_assert!(whole.stats.redone <= reference.stats.redone);

    Ok(())
}

fn steps() -> impl Strategy<Value = Gen> {
    proptest::collection::vec(
        (
            0u8..4,
            proptest::collection::vec((0u8..17, any::<u8>(), any::<u8>(), any::<u8>()), 1..3),
        ),
        1..50,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_strategy_leaves_the_reference_bytes(
        steps in steps(),
        picks in proptest::collection::vec((0u8..3, any::<u8>()), 0..30),
        offline in (0usize..20, 0usize..50),
        shift in prop_oneof![0u8..4, Just(SETTLE_SHIFT)],
    ) {
        check(steps, picks, (offline.0, offline.0 + offline.1), shift)?;
    }
}

/// One batch per record list, folded with `strategy`; returns the store and the stats of the
/// last batch alone.
fn two_steps(
    strategy: FoldStrategy,
    first: &[(RecordInfo, Vec<u8>)],
    late: &[(RecordInfo, Vec<u8>)],
) -> (MemoryStore, FoldStats) {
    let store = MemoryStore::new();
    let mut fold = Convergent::with_strategy(DocFold::new(), strategy);
    let mut txn = store.write().unwrap();
    fold.fold_batch(&mut txn, first).unwrap();
    txn.commit().unwrap();
    let before = fold.stats();
    let mut txn = store.write().unwrap();
    fold.fold_batch(&mut txn, late).unwrap();
    txn.commit().unwrap();
    let after = fold.stats();
    let delta = FoldStats {
        applied: after.applied - before.applied,
        undone: after.undone - before.undone,
        redone: after.redone - before.redone,
        retried: after.retried - before.retried,
        late: after.late - before.late,
    };
    (store, delta)
}

fn body(events: Vec<DbEvent>) -> Vec<u8> {
    Batch::new(events).encode()
}

/// Writer 1's history: the collection, then one create per id `i0..i{n}` (names `n<k>`).
fn base(t: &ThreadId, n: u64) -> Vec<(RecordInfo, Vec<u8>)> {
    let mut out = vec![(
        info(t, 1, 1, 1),
        body(vec![DbEvent::CreateCollection(things(1))]),
    )];
    let mut c = coll(
        "people",
        json!({"name": {"type": "string"}}),
        &[("name", true)],
    );
    c.read_filter.clear();
    out.push((info(t, 1, 2, 2), body(vec![DbEvent::CreateCollection(c)])));
    for k in 0..n {
        let ev = create("people", &format!("i{k}"), json!({"name": format!("n{k}")}));
        out.push((info(t, 1, k + 3, k + 3), body(vec![ev])));
    }
    out
}

#[test]
fn a_late_record_on_a_disjoint_instance_undoes_nothing() {
    let t = thread();
    let first = base(&t, 50);
    let late = vec![
        (
            info(&t, 2, 3, 1),
            body(vec![create("people", "other", json!({"name": "someone"}))]),
        ),
        (
            info(&t, 2, 4, 2),
            body(vec![save("people", "other", json!({"name": "else"}))]),
        ),
    ];
    let (deps, stats) = two_steps(FoldStrategy::Dependencies, &first, &late);
    assert_eq!(stats.late, 2);
    assert_eq!((stats.undone, stats.redone), (0, 0), "{stats:?}");
    let (whole, wstats) = two_steps(FoldStrategy::WholeTail, &first, &late);
    assert_eq!(
        (wstats.undone, wstats.redone),
        (50, 50),
        "one rewind for the batch"
    );
    let (reference, rstats) = two_steps(FoldStrategy::Reference, &first, &late);
    // Per record: 50 records after the first (writer 1's log sorts after writer 2's at
    // clock 3), 49 after the second.
    assert_eq!(rstats.undone, 99, "the reference rewinds per record");
    let d = |s: &MemoryStore| fold_digest(&s.read().unwrap(), &t).unwrap();
    assert_eq!(d(&deps), d(&reference));
    assert_eq!(d(&whole), d(&reference));
}

#[test]
fn a_late_save_undoes_only_the_records_of_its_instance() {
    let t = thread();
    let mut first = base(&t, 40);
    for k in 0..5 {
        let ev = save("people", "i7", json!({"name": format!("seven{k}")}));
        first.push((info(&t, 1, 100 + k, 43 + k), body(vec![ev])));
    }
    // Writer 2, offline since clock 3, saves i7 before its create: an upsert, so the create
    // is now rejected and the later saves patch the upserted document.
    let late = vec![(
        info(&t, 2, 3, 1),
        body(vec![save("people", "i7", json!({"name": "early"}))]),
    )];
    let (deps, stats) = two_steps(FoldStrategy::Dependencies, &first, &late);
    assert_eq!((stats.undone, stats.redone), (6, 6), "{stats:?}");
    let create_i7 = info(&t, 1, 10, 10).order;
    let txn = deps.read().unwrap();
    let why = rejection(&txn, &t, &create_i7).unwrap().unwrap_or_default();
    assert!(why.contains("already existing instance"), "{why}");
    drop(txn);
    let (reference, _) = two_steps(FoldStrategy::Reference, &first, &late);
    let d = |s: &MemoryStore| fold_digest(&s.read().unwrap(), &t).unwrap();
    assert_eq!(d(&deps), d(&reference));
}

#[test]
fn a_late_delete_frees_a_unique_value_for_a_rejected_create() {
    let t = thread();
    let mut first = base(&t, 30);
    // A create clashing with i3's name is rejected.
    let clash = info(&t, 1, 200, 33);
    first.push((
        clash.clone(),
        body(vec![create("people", "dup", json!({"name": "n3"}))]),
    ));
    let (before, _) = two_steps(FoldStrategy::Dependencies, &first, &[]);
    assert!(
        rejection(&before.read().unwrap(), &t, &clash.order)
            .unwrap()
            .is_some()
    );
    // Writer 2 deleted i3 concurrently, ordered before the clashing create.
    let late = vec![(info(&t, 2, 8, 1), body(vec![delete("people", "i3")]))];
    let (deps, stats) = two_steps(FoldStrategy::Dependencies, &first, &late);
    assert!(stats.undone <= 2, "{stats:?}");
    assert!(
        rejection(&deps.read().unwrap(), &t, &clash.order)
            .unwrap()
            .is_none(),
        "the create now stands"
    );
    let (reference, _) = two_steps(FoldStrategy::Reference, &first, &late);
    let d = |s: &MemoryStore| fold_digest(&s.read().unwrap(), &t).unwrap();
    assert_eq!(d(&deps), d(&reference));
}

#[test]
fn a_late_collection_change_undoes_the_whole_collection_only() {
    let t = thread();
    let mut first = base(&t, 20);
    for k in 0..10u64 {
        let ev = create(
            "things",
            &format!("x{k}"),
            json!({"name": format!("x{k}"), "n": 1}),
        );
        first.push((info(&t, 1, 50 + k, 23 + k), body(vec![ev])));
    }
    // A late update of `things` (ordered after its creation) undoes its 10 instance records,
    // none of the 20 `people` records.
    let late = vec![(
        info(&t, 2, 2, 1),
        body(vec![DbEvent::UpdateCollection(things(0))]),
    )];
    let (deps, stats) = two_steps(FoldStrategy::Dependencies, &first, &late);
    assert_eq!((stats.undone, stats.redone), (10, 10), "{stats:?}");
    let (reference, _) = two_steps(FoldStrategy::Reference, &first, &late);
    let d = |s: &MemoryStore| fold_digest(&s.read().unwrap(), &t).unwrap();
    assert_eq!(d(&deps), d(&reference));
}

#[test]
fn a_store_folded_without_footprints_is_folded_whole_tail() {
    use threads_protocol::store::scan_prefix_collect;
    let t = thread();
    let first = base(&t, 30);
    let late = vec![(
        info(&t, 2, 5, 1),
        body(vec![save("people", "i20", json!({"name": "early"}))]),
    )];
    let (reference, _) = two_steps(FoldStrategy::Reference, &first, &late);
    // A store written before footprints existed: the same records, no footprints, no index.
    let store = MemoryStore::new();
    let mut fold = Convergent::with_strategy(DocFold::new(), FoldStrategy::Reference);
    let mut txn = store.write().unwrap();
    fold.fold_batch(&mut txn, &first).unwrap();
    // Footprints (`21 ‖ tag ‖ order key ‖ 24`) and the dependency index.
    let records = threads_reducer::fold::prefix(TAG_OPS, &t);
    for (k, _) in scan_prefix_collect(&txn, &records, usize::MAX).unwrap() {
        if k.len() == records.len() + ORDER_KEY_LEN + 1 && k.last() == Some(&TAG_FOOTPRINT) {
            txn.delete(&k).unwrap();
        }
    }
    let p = threads_reducer::fold::prefix(TAG_DEPENDENTS, &t);
    for (k, _) in scan_prefix_collect(&txn, &p, usize::MAX).unwrap() {
        txn.delete(&k).unwrap();
    }
    txn.commit().unwrap();
    let mut deps = Convergent::with_strategy(DocFold::new(), FoldStrategy::Dependencies);
    let mut txn = store.write().unwrap();
    deps.fold_batch(&mut txn, &late).unwrap();
    txn.commit().unwrap();
    let stats = deps.stats();
    assert!(
        stats.undone >= 20,
        "the whole tail, not what the index knows: {stats:?}"
    );
    let s = |st: &MemoryStore| state_digest(&st.read().unwrap(), &t).unwrap();
    assert_eq!(s(&store), s(&reference));
}

/// The clocks of the records that have entries in the dependency index of `t`.
fn indexed_clocks(store: &MemoryStore, t: &ThreadId) -> std::collections::BTreeSet<u64> {
    use threads_protocol::store::scan_prefix_collect;
    let p = threads_reducer::fold::prefix(TAG_DEPENDENTS, t);
    let txn = store.read().unwrap();
    scan_prefix_collect(&txn, &p, usize::MAX)
        .unwrap()
        .iter()
        .map(|(k, _)| {
            OrderKey::from_bytes(&k[k.len() - ORDER_KEY_LEN..])
                .unwrap()
                .clock
        })
        .collect()
}

#[test]
fn records_settle_into_the_index_a_block_at_a_time() {
    let t = thread();
    // Clocks 1..=42; blocks of 4 clocks.
    let records = base(&t, 40);
    let store = MemoryStore::new();
    let mut fold = Convergent::new(DocFold::new()).with_settle_shift(2);
    for (n, record) in records.iter().enumerate() {
        let mut txn = store.write().unwrap();
        fold.fold_batch(&mut txn, std::slice::from_ref(record))
            .unwrap();
        txn.commit().unwrap();
        let highest = n as u64 + 1;
        let settled: std::collections::BTreeSet<u64> = (1..highest & !3).collect();
        assert_eq!(
            indexed_clocks(&store, &t),
            settled,
            "highest clock {highest}"
        );
    }
    // A late record before the settled ones, with more records after it than are read one by
    // one: what it conflicts with is found on both sides (i3's create at clock 6 is settled,
    // its save at clock 43 recent), and the bytes are the reference's.
    let mut later = records.clone();
    later.push((
        info(&t, 1, 43, 43),
        body(vec![save("people", "i3", json!({"name": "second"}))]),
    ));
    let late = [(
        info(&t, 2, 5, 1),
        body(vec![save("people", "i3", json!({"name": "first"}))]),
    )];
    let shifted = |strategy| {
        let store = MemoryStore::new();
        let mut fold = Convergent::with_strategy(DocFold::new(), strategy).with_settle_shift(2);
        for batch in [&later[..], &late[..]] {
            let mut txn = store.write().unwrap();
            fold.fold_batch(&mut txn, batch).unwrap();
            txn.commit().unwrap();
        }
        (store, fold.stats())
    };
    let (deps, stats) = shifted(FoldStrategy::Dependencies);
    let (reference, _) = shifted(FoldStrategy::Reference);
    let d = |s: &MemoryStore| fold_digest(&s.read().unwrap(), &t).unwrap();
    assert_eq!(d(&deps), d(&reference));
    assert_eq!(indexed_clocks(&deps, &t), (1..40).collect());
    // The late save undoes the create of i3 (clock 6, settled) and its save (43, recent), and
    // nothing else.
    assert_eq!(stats.late, 1);
    assert_eq!(stats.undone, 2, "{stats:?}");
}

/// A dependency-index entry whose record has no footprint (a damaged store) used to send the
/// fold round and round, taking back nothing; now the batch fails with a typed error and
/// changes nothing.
#[test]
fn a_conflict_that_cannot_be_taken_back_fails_instead_of_looping() {
    let t = thread();
    let records = base(&t, 40);
    let store = MemoryStore::new();
    let mut fold = Convergent::new(DocFold::new()).with_settle_shift(2);
    let mut txn = store.write().unwrap();
    fold.fold_batch(&mut txn, &records).unwrap();
    txn.commit().unwrap();
    // i3's create (clock 6) is settled: its footprint's tokens are in the index. Lose the
    // footprint itself.
    let create_i3 = info(&t, 1, 6, 6).order;
    let mut footprint = threads_reducer::fold::op_key(&t, &create_i3);
    footprint.push(threads_reducer::fold::TAG_FOOTPRINT);
    let mut txn = store.write().unwrap();
    assert!(txn.delete(&footprint).unwrap(), "the footprint was stored");
    txn.commit().unwrap();
    let before = fold_digest(&store.read().unwrap(), &t).unwrap();
    // A late save of i3 conflicts with that create.
    let late = [(
        info(&t, 2, 5, 1),
        body(vec![save("people", "i3", json!({"name": "first"}))]),
    )];
    let mut fold = Convergent::new(DocFold::new()).with_settle_shift(2);
    let mut txn = store.write().unwrap();
    let err = fold.fold_batch(&mut txn, &late).unwrap_err().to_string();
    drop(txn);
    assert!(err.contains("no stored footprint"), "{err}");
    assert_eq!(fold_digest(&store.read().unwrap(), &t).unwrap(), before);
}

#[test]
fn a_thread_first_folded_by_layout_two_keeps_every_record_in_the_index() {
    let t = thread();
    let records = base(&t, 10);
    let store = MemoryStore::new();
    // The owner of the thread's tag as layout 2 wrote it: the id alone, no settle shift.
    let mut txn = store.write().unwrap();
    let mut key = vec![TAG_THREAD_NAME];
    key.extend_from_slice(&threads_reducer::fold::thread_tag(&t));
    txn.put(&key, t.as_bytes()).unwrap();
    let mut fold = Convergent::new(DocFold::new()).with_settle_shift(0);
    fold.fold_batch(&mut txn, &records).unwrap();
    txn.commit().unwrap();
    assert_eq!(indexed_clocks(&store, &t), (1..=12).collect());
    assert_eq!(
        store.read().unwrap().get(&key).unwrap().unwrap(),
        t.as_bytes()
    );
    // A new thread gets the shift, stored beside its id.
    let u = ThreadId::new(threads_protocol::id::Variant::Raw, &[9; 32]).unwrap();
    let mut txn = store.write().unwrap();
    fold.fold_batch(&mut txn, &base(&u, 3)).unwrap();
    txn.commit().unwrap();
    let mut key = vec![TAG_THREAD_NAME];
    key.extend_from_slice(&threads_reducer::fold::thread_tag(&u));
    let owner = store.read().unwrap().get(&key).unwrap().unwrap();
    assert_eq!(owner, [u.as_bytes(), &[0]].concat());
    assert_eq!(indexed_clocks(&store, &u), (1..5).collect());
}
