//! The convergence layer: any arrival order of the same records gives byte-identical state,
//! equal to folding them in total order from scratch; rejected records have no effect.

use proptest::prelude::*;
use threads_protocol::engine::loopback::Loopback;
use threads_protocol::engine::{ApplyError, Config, Host, NewThread, Time};
use threads_protocol::id::{ThreadId, Variant};
use threads_protocol::identity::PrivateKey;
use threads_protocol::rng::seeded;
use threads_protocol::store::memory::MemoryStore;
use threads_protocol::store::{ReadTxn, Store, WriteTxn};
use threads_reducer::fold::{
    self, Convergent, Fold, OrderKey, Outcome, RecordInfo, state_digest, state_prefix,
};

/// A toy fold whose result depends on order: `create k v` fails if `k` exists, `set k v`
/// overwrites, `add k n` adds, `del k` removes. Several commands per body, separated by `;`;
/// any failing command rejects the whole body.
#[derive(Default)]
struct Toy;

fn key(thread: &ThreadId, k: &str) -> Vec<u8> {
    let mut p = state_prefix(thread);
    p.extend_from_slice(k.as_bytes());
    p
}

impl Fold for Toy {
    fn apply(
        &mut self,
        state: &mut dyn WriteTxn,
        record: &RecordInfo,
        body: &[u8],
    ) -> Result<Outcome, ApplyError> {
        let text = String::from_utf8_lossy(body);
        for cmd in text.split(';').filter(|c| !c.is_empty()) {
            let parts: Vec<&str> = cmd.split(' ').collect();
            let k = key(&record.thread, parts.get(1).copied().unwrap_or(""));
            match (parts[0], parts.get(2)) {
                ("create", Some(v)) => {
                    if state.get(&k)?.is_some() {
                        return Ok(Outcome::Rejected(format!("{} exists", parts[1])));
                    }
                    state.put(&k, v.as_bytes())?;
                }
                ("set", Some(v)) => state.put(&k, v.as_bytes())?,
                ("add", Some(v)) => {
                    let old: i64 = state
                        .get(&k)?
                        .and_then(|b| String::from_utf8(b).ok()?.parse().ok())
                        .unwrap_or(0);
                    let n: i64 = v.parse().unwrap_or(0);
                    state.put(&k, (old + n).to_string().as_bytes())?;
                }
                ("del", None) => {
                    state.delete(&k)?;
                }
                _ => return Ok(Outcome::Rejected(format!("bad command {cmd}"))),
            }
        }
        Ok(Outcome::Applied)
    }
}

fn thread() -> ThreadId {
    ThreadId::random(Variant::Raw, &mut seeded(1))
}

fn info(thread: &ThreadId, clock: u64, writer: u8, counter: u64) -> RecordInfo {
    let author = PrivateKey::from_seed([writer; 32]).public();
    let log = author.peer_id();
    RecordInfo {
        thread: *thread,
        order: OrderKey {
            clock,
            log: *log.as_bytes(),
            counter,
        },
        log,
        author,
        time: 0,
    }
}

/// Folds `records` in the given order into a fresh store; returns the state digest and store.
fn fold_all(records: &[(RecordInfo, String)]) -> ([u8; 32], MemoryStore) {
    let store = MemoryStore::new();
    let mut c = Convergent::new(Toy);
    for (info, body) in records {
        let mut txn = store.write().unwrap();
        c.fold_in(&mut txn, info, body.as_bytes()).unwrap();
        txn.commit().unwrap();
    }
    let d = state_digest(&store.read().unwrap(), &records[0].0.thread).unwrap();
    (d, store)
}

fn get(store: &MemoryStore, t: &ThreadId, k: &str) -> Option<String> {
    store
        .read()
        .unwrap()
        .get(&key(t, k))
        .unwrap()
        .map(|v| String::from_utf8(v).unwrap())
}

#[test]
fn a_late_record_is_folded_in_at_its_place() {
    let t = thread();
    let early = (info(&t, 1, 1, 1), "set x a".to_string());
    let late = (info(&t, 2, 2, 1), "set x b".to_string());
    // Arrival order b then a: the state must still be "b" (the later record in total order).
    let (d1, s1) = fold_all(&[late.clone(), early.clone()]);
    let (d2, s2) = fold_all(&[early, late]);
    assert_eq!(d1, d2);
    assert_eq!(get(&s1, &t, "x").as_deref(), Some("b"));
    assert_eq!(get(&s2, &t, "x").as_deref(), Some("b"));
}

#[test]
fn the_first_create_in_total_order_wins_everywhere() {
    let t = thread();
    let a = (info(&t, 5, 1, 1), "create id one".to_string());
    let b = (info(&t, 5, 2, 1), "create id two".to_string());
    let (first, second) = if a.0.order < b.0.order {
        (a.clone(), b.clone())
    } else {
        (b.clone(), a.clone())
    };
    for order in [[a.clone(), b.clone()], [b.clone(), a.clone()]] {
        let (_, s) = fold_all(&order);
        let winner = first.1.split(' ').nth(2).unwrap();
        assert_eq!(get(&s, &t, "id").as_deref(), Some(winner));
        let txn = s.read().unwrap();
        assert!(fold::rejection(&txn, &t, &first.0.order).unwrap().is_none());
        assert_eq!(
            fold::rejection(&txn, &t, &second.0.order)
                .unwrap()
                .as_deref(),
            Some("id exists")
        );
    }
}

#[test]
fn a_rejected_record_has_no_effect() {
    let t = thread();
    let (_, s) = fold_all(&[
        (info(&t, 1, 1, 1), "set a 1".into()),
        (info(&t, 2, 1, 2), "set a 2;set b 2;bogus".into()),
    ]);
    assert_eq!(get(&s, &t, "a").as_deref(), Some("1"));
    assert_eq!(get(&s, &t, "b"), None);
}

#[test]
fn a_late_record_can_change_a_later_verdict() {
    let t = thread();
    let late_create = (info(&t, 1, 1, 1), "create k early".to_string());
    let second = (info(&t, 3, 2, 1), "create k late".to_string());
    let (_, s) = fold_all(&[second.clone(), late_create.clone()]);
    assert_eq!(get(&s, &t, "k").as_deref(), Some("early"));
    let txn = s.read().unwrap();
    assert!(
        fold::rejection(&txn, &t, &second.0.order)
            .unwrap()
            .is_some()
    );
}

fn arb_body() -> impl Strategy<Value = String> {
    let cmd = prop_oneof![
        (0u8..4, 0u8..9).prop_map(|(k, v)| format!("create k{k} {v}")),
        (0u8..4, 0u8..9).prop_map(|(k, v)| format!("set k{k} {v}")),
        (0u8..4, 0u8..9).prop_map(|(k, v)| format!("add k{k} {v}")),
        (0u8..4).prop_map(|k| format!("del k{k}")),
    ];
    proptest::collection::vec(cmd, 1..4).prop_map(|c| c.join(";"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Records from three writers, delivered in any order (each writer's own records in log
    /// order, as the engine guarantees), give the digest of the from-scratch fold in total order.
    #[test]
    fn any_arrival_order_gives_the_same_state(
        bodies in proptest::collection::vec((0u8..3, 1u64..6, arb_body()), 1..14),
        shuffle in any::<u64>(),
    ) {
        let t = thread();
        let mut counters = [0u64; 3];
        let mut clocks = [0u64; 3];
        let mut records = Vec::new();
        for (w, step, body) in bodies {
            let w = w as usize;
            counters[w] += 1;
            clocks[w] += step;
            records.push((w, info(&t, clocks[w], w as u8 + 1, counters[w]), body));
        }
        let mut sorted: Vec<(RecordInfo, String)> =
            records.iter().map(|(_, i, b)| (i.clone(), b.clone())).collect();
        sorted.sort_by_key(|(i, _)| i.order);
        let (expected, _) = fold_all(&sorted);
        // A random interleaving that keeps each writer's records in order.
        let mut queues: Vec<Vec<(RecordInfo, String)>> = vec![vec![]; 3];
        for (w, i, b) in records {
            queues[w].push((i, b));
        }
        for q in &mut queues { q.reverse(); }
        let mut rng = shuffle;
        let mut arrival = Vec::new();
        while queues.iter().any(|q| !q.is_empty()) {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let w = (rng >> 33) as usize % 3;
            if let Some(r) = queues[w].pop() { arrival.push(r); }
        }
        let (got, _) = fold_all(&arrival);
        prop_assert_eq!(got, expected);
    }
}

#[test]
fn hosts_replicating_through_the_engine_converge_to_one_state() {
    let config = Config {
        sync_interval_min_ms: 100,
        ..Config::default()
    };
    let stores: Vec<MemoryStore> = (0..3).map(|_| MemoryStore::new()).collect();
    let hosts: Vec<Host<MemoryStore, Convergent<Toy>>> = stores
        .iter()
        .enumerate()
        .map(|(i, s)| {
            Host::open(
                config.clone(),
                s.clone(),
                Convergent::new(Toy),
                seeded(i as u64),
                None,
                Time(0),
            )
            .unwrap()
        })
        .collect();
    let mut net = Loopback::new(hosts, Time(0));
    let info = net.hosts[0]
        .create_thread(Time(0), NewThread::default())
        .unwrap();
    let t = info.id;
    for i in 1..3 {
        let addr = format!(
            "/ip4/127.0.0.1/tcp/1/p2p/{}/thread/{}",
            net.hosts[0].peer_id(),
            t
        )
        .parse()
        .unwrap();
        net.hosts[i]
            .join_thread(Time(0), &addr, info.key.clone())
            .unwrap();
    }
    // Concurrent conflicting writes before any delivery.
    for (i, body) in [
        "create x zero;add n 1",
        "create x one;add n 2",
        "set y 3;add n 4",
    ]
    .iter()
    .enumerate()
    {
        net.hosts[i]
            .create_record(Time(0), &t, None, body.as_bytes(), 0)
            .unwrap();
    }
    let digest = |s: &MemoryStore| state_digest(&s.read().unwrap(), &t).unwrap();
    let done = net.run_until(60_000, |n| {
        (0..3).all(|i| n.hosts[i].heads(&t).map(|h| h.len()).unwrap_or(0) == 3)
    });
    assert!(done);
    assert_eq!(digest(&stores[0]), digest(&stores[1]));
    assert_eq!(digest(&stores[1]), digest(&stores[2]));
    // Exactly one create of x took effect, and the losing record had no effect at all (its
    // `add` included).
    let x = get(&stores[0], &t, "x").unwrap();
    let n = get(&stores[0], &t, "n").unwrap();
    match x.as_str() {
        "zero" => assert_eq!(n, "5"),
        "one" => assert_eq!(n, "6"),
        other => panic!("unexpected x = {other}"),
    }
}
