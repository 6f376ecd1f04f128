//! Convergence end to end: document-database transactions from several writers, replicated
//! through the engine with messages delivered out of order, duplicated and dropped, leave every
//! replica with the same state digest, equal to a from-scratch fold of all records in total
//! order.

use proptest::prelude::*;
use serde_json::json;
use threads_protocol::engine::loopback::Loopback;
use threads_protocol::engine::{Config, Host, NewThread, Time};
use threads_protocol::rng::seeded;
use threads_protocol::store::memory::MemoryStore;
use threads_protocol::store::{Store, WriteTxn};
use threads_reducer::db::{Batch, CollectionConfig, DbEvent, DocFold, IndexSpec};
use threads_reducer::fold::{Convergent, OrderKey, RecordInfo, state_digest};

type App = Convergent<DocFold>;

fn collection() -> Vec<u8> {
    Batch::new(vec![DbEvent::CreateCollection(CollectionConfig {
        name: "things".into(),
        schema: json!({"type": "object", "properties": {"_id": {"type": "string"}, "n": {"type": "integer"}}}),
        indexes: vec![IndexSpec { path: "n".into(), unique: true }],
        write_validator: String::new(),
        read_filter: String::new(),
    })])
    .encode()
}

fn transaction(kind: u8, id: u8, n: u8) -> Vec<u8> {
    let id = format!("t{}", id % 6);
    let event = match kind % 3 {
        0 => DbEvent::Create {
            collection: "things".into(),
            id: id.clone(),
            instance: json!({"_id": id, "n": n % 8}),
        },
        1 => DbEvent::Save {
            collection: "things".into(),
            id,
            patch: json!({"n": n % 8}),
        },
        _ => DbEvent::Delete {
            collection: "things".into(),
            id,
        },
    };
    Batch::new(vec![event]).encode()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn replicas_converge_to_the_from_scratch_fold(
        seed in any::<u64>(),
        ops in proptest::collection::vec((0usize..3, 0u8..4, any::<u8>(), any::<u8>(), any::<u16>()), 1..40),
    ) {
        let config = Config { sync_interval_min_ms: 100, ..Config::default() };
        let stores: Vec<MemoryStore> = (0..3).map(|_| MemoryStore::new()).collect();
        let hosts: Vec<Host<MemoryStore, App>> = stores
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let rng = seeded(seed.wrapping_mul(31).wrapping_add(i as u64));
                Host::open(config.clone(), s.clone(), Convergent::new(DocFold::new()), rng, None, Time(0)).unwrap()
            })
            .collect();
        let mut net = Loopback::new(hosts, Time(0));
        let info = net.hosts[0].create_thread(Time(0), NewThread::default()).unwrap();
        let t = info.id;
        net.hosts[0].create_record(Time(0), &t, None, &collection(), 0).unwrap();
        for i in 1..3 {
            let addr = format!("/ip4/127.0.0.1/tcp/1/p2p/{}/thread/{}", net.hosts[0].peer_id(), t)
                .parse()
                .unwrap();
            net.hosts[i].join_thread(Time(0), &addr, info.key.clone()).unwrap();
        }
        // Everyone learns the collection first.
        let ready = net.run_until(60_000, |n| {
            (0..3).all(|i| n.hosts[i].heads(&t).map(|h| h.len()).unwrap_or(0) == 1)
        });
        prop_assert!(ready);
        for (host, action, a, b, pick) in ops {
            net.collect();
            match action {
                0 => {
                    let now = net.now;
                    // A write the database refuses on the writer (a clash it can see) is fine.
                    let _ = net.hosts[host].create_record(now, &t, None, &transaction(a, b, pick as u8), 0);
                }
                1 if !net.in_flight.is_empty() => {
                    let k = pick as usize % net.in_flight.len();
                    let m = net.in_flight.remove(k).unwrap();
                    if pick % 3 == 0 {
                        net.in_flight.push_back(m.clone()); // a duplicate, delivered later
                    }
                    net.in_flight.push_front(m);
                    net.deliver_one();
                }
                2 if !net.in_flight.is_empty() => {
                    let k = pick as usize % net.in_flight.len();
                    net.in_flight.remove(k);
                }
                _ => {
                    let limit = net.now.plus(u64::from(pick % 500));
                    net.advance(limit);
                }
            }
        }
        let settled = net.run_until(600_000, |n| {
            let h0 = n.hosts[0].heads(&t).unwrap();
            (1..3).all(|i| n.hosts[i].heads(&t).unwrap() == h0)
        });
        prop_assert!(settled);
        let digests: Vec<[u8; 32]> = stores
            .iter()
            .map(|s| state_digest(&s.read().unwrap(), &t).unwrap())
            .collect();
        prop_assert_eq!(digests[0], digests[1]);
        prop_assert_eq!(digests[1], digests[2]);

        // From scratch: every record, opened, folded in total order into an empty store.
        let mut all = Vec::new();
        for (log, height, _) in net.hosts[0].heads(&t).unwrap() {
            for c in 1..=height.0 {
                let counter = threads_protocol::counter::LogCounter::new(c).unwrap();
                let bundle = net.hosts[0].record(&t, &log, counter).unwrap().unwrap();
                let v = threads_protocol::record::verify(bundle, &t, &log, info.key.service()).unwrap();
                let opened = threads_protocol::record::open(v, info.key.read().unwrap()).unwrap();
                all.push(opened);
            }
        }
        all.sort_by_key(|o| OrderKey::of(o.record()));
        let fresh = MemoryStore::new();
        let mut fold = Convergent::new(DocFold::new());
        let mut txn = fresh.write().unwrap();
        for o in &all {
            let r = o.record();
            let info = RecordInfo { thread: t, order: OrderKey::of(r), log: *r.log(), author: *r.author(), time: o.time() };
            fold.fold_in(&mut txn, &info, o.body()).unwrap();
        }
        txn.commit().unwrap();
        prop_assert_eq!(state_digest(&fresh.read().unwrap(), &t).unwrap(), digests[0]);
    }
}
