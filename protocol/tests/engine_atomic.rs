//! The application hook runs in the transaction that stores the record: both commit or neither.

mod common;

use common::*;
use std::cell::RefCell;
use std::rc::Rc;
use threads_protocol::engine::loopback::Loopback;
use threads_protocol::engine::{Application, EngineError, Event, NewThread, Time, Verdict};
use threads_protocol::record::OpenedRecord;
use threads_protocol::store::WriteTxn;
use threads_protocol::store::memory::{FaultOp, FaultyStore, MemoryStore};

/// Test application: writes one key per applied record, rejects bodies starting with "bad",
/// and fails with an error while `fail` is set.
#[derive(Clone, Default)]
struct Recorder {
    fail: Rc<RefCell<bool>>,
    rollbacks: Rc<RefCell<u32>>,
    /// `finish_batch` fails while set.
    fail_finish: Rc<RefCell<bool>>,
    /// Records applied since the last `finish_batch`.
    open: Rc<RefCell<usize>>,
    /// Sizes of the finished batches.
    batches: Rc<RefCell<Vec<usize>>>,
}

impl Application for Recorder {
    fn apply(&mut self, txn: &mut dyn WriteTxn, record: &OpenedRecord) -> Result<Verdict, String> {
        if *self.fail.borrow() {
            return Err("application is down".into());
        }
        if record.body().starts_with(b"bad") {
            return Ok(Verdict::Reject("bodies may not start with bad".into()));
        }
        let mut key = vec![0x20];
        key.extend_from_slice(record.body());
        txn.put(&key, b"applied").map_err(|e| e.to_string())?;
        *self.open.borrow_mut() += 1;
        Ok(Verdict::Accept)
    }

    fn finish_batch(&mut self, txn: &mut dyn WriteTxn) -> Result<(), String> {
        if *self.fail_finish.borrow() {
            return Err("cannot finish".into());
        }
        let n = std::mem::take(&mut *self.open.borrow_mut());
        self.batches.borrow_mut().push(n);
        txn.put(&[0x20, b'#'], &(n as u64).to_be_bytes())
            .map_err(|e| e.to_string())
    }

    fn rolled_back(&mut self) {
        *self.rollbacks.borrow_mut() += 1;
        *self.open.borrow_mut() = 0;
    }
}

type Net = Loopback<FaultyStore<MemoryStore>, Recorder>;

fn pair() -> (Net, Vec<FaultyStore<MemoryStore>>, Vec<Recorder>) {
    let stores: Vec<_> = (0..2)
        .map(|_| FaultyStore::new(MemoryStore::new()))
        .collect();
    let apps: Vec<Recorder> = (0..2).map(|_| Recorder::default()).collect();
    let hosts = (0..2)
        .map(|i| host(stores[i].clone(), apps[i].clone(), 50 + i as u64, config()))
        .collect();
    (Loopback::new(hosts, Time(0)), stores, apps)
}

fn joined(net: &mut Net) -> threads_protocol::id::ThreadId {
    let info = net.hosts[0]
        .create_thread(Time(0), NewThread::default())
        .unwrap();
    let a = addr(net, 0, &info.id);
    net.hosts[1]
        .join_thread(Time(0), &a, info.key.clone())
        .unwrap();
    net.flush(100);
    info.id
}

fn applied(store: &FaultyStore<MemoryStore>, body: &[u8]) -> bool {
    use threads_protocol::store::{ReadTxn, Store};
    let mut key = vec![0x20];
    key.extend_from_slice(body);
    store.inner().read().unwrap().get(&key).unwrap().is_some()
}

#[test]
fn a_local_write_the_hook_rejects_stores_and_sends_nothing() {
    let (mut net, stores, _) = pair();
    let t = joined(&mut net);
    let before = stores[0].inner().digest();
    let err = net.hosts[0]
        .create_record(Time(0), &t, None, b"bad write", 0)
        .unwrap_err();
    assert_eq!(
        err,
        EngineError::Rejected("bodies may not start with bad".into())
    );
    assert_eq!(stores[0].inner().digest(), before);
    net.collect();
    assert!(
        net.in_flight.is_empty(),
        "a rejected write is not published"
    );
}

#[test]
fn a_remote_record_the_hook_rejects_is_kept_without_effect() {
    let (mut net, stores, _) = pair();
    let t = joined(&mut net);
    // Host 1 writes directly with the engine's record API, bypassing its own hook's verdict,
    // by disabling the check: a writer that does not run validators.
    let rec = {
        let info = net.hosts[1].thread_info(&t).unwrap();
        let log_key = threads_protocol::identity::PrivateKey::from_seed([5; 32]);
        let author = log_key.public();
        let draft = threads_protocol::record::RecordDraft {
            thread: &t,
            author: &author,
            prev: None,
            counter: threads_protocol::counter::LogCounter::FIRST,
            clock: threads_protocol::counter::LamportClock(1),
            time: 0,
            body: b"bad but signed",
        };
        let r = threads_protocol::record::create(
            &draft,
            &log_key,
            &info.key,
            &mut threads_protocol::rng::seeded(3),
        )
        .unwrap();
        net.hosts[0]
            .add_log(&t, &log_key.public().peer_id())
            .unwrap();
        r.into_record()
    };
    let log = *rec.log();
    assert!(
        net.hosts[0]
            .add_record(Time(0), &t, &log, rec.bundle().clone())
            .is_err_and(|e| e == EngineError::Rejected("bodies may not start with bad".into()))
    );
    // The same record arriving from a peer is stored, the head advances, the verdict is kept.
    net.hosts[1].add_log(&t, &log).unwrap();
    let peer0 = *net.hosts[0].peer_id();
    let msg = threads_protocol::engine::message::encode(
        net.hosts[1].thread_info(&t).unwrap().key.service(),
        &peer0,
        net.hosts[1].peer_id(),
        &threads_protocol::engine::message::Payload::Push {
            thread: t.to_vec(),
            log: log.as_bytes().to_vec(),
            records: vec![serde_bytes::ByteBuf::from(rec.bundle().encode())],
        },
    );
    net.hosts[1].handle_message(Time(0), &peer0, &msg);
    net.collect();
    let heads = net.hosts[1].heads(&t).unwrap();
    assert!(heads.iter().any(|(l, h, _)| *l == log && h.0 == 1));
    let reason = net.hosts[1].rejection(&t, &log, rec.counter()).unwrap();
    assert_eq!(reason.as_deref(), Some("bodies may not start with bad"));
    assert!(!applied(&stores[1], b"bad but signed"));
    assert!(
        net.events[1]
            .iter()
            .any(|e| matches!(e, Event::RecordRejected { .. }))
    );
}

#[test]
fn a_failing_hook_leaves_no_trace_and_the_record_is_retried() {
    let (mut net, stores, apps) = pair();
    let t = joined(&mut net);
    *apps[1].fail.borrow_mut() = true;
    let before = stores[1].inner().digest();
    net.hosts[0]
        .create_record(Time(0), &t, None, b"hello", 0)
        .unwrap();
    net.flush(1000);
    assert_eq!(
        stores[1].inner().digest(),
        before,
        "nothing of the record was stored"
    );
    assert!(
        net.events[1]
            .iter()
            .any(|e| matches!(e, Event::ApplyFailed { .. }))
    );
    assert!(*apps[1].rollbacks.borrow() >= 1);
    // The application recovers; anti-entropy brings the record again.
    *apps[1].fail.borrow_mut() = false;
    assert!(net.run_until(60_000, |n| converged(n, &[0, 1], &t)
        && total(n, 1, &t) == 1));
    assert!(applied(&stores[1], b"hello"));
}

#[test]
fn an_injected_storage_failure_leaves_no_trace_and_the_record_is_retried() {
    for op in [FaultOp::Put, FaultOp::Commit, FaultOp::Write] {
        let (mut net, stores, _) = pair();
        let t = joined(&mut net);
        let before = stores[1].inner().digest();
        stores[1].fail_nth(op, 1);
        net.hosts[0]
            .create_record(Time(0), &t, None, b"hello", 0)
            .unwrap();
        net.flush(1000);
        assert_eq!(
            stores[1].inner().digest(),
            before,
            "{op:?}: nothing was stored"
        );
        assert!(
            net.hosts[1].heads(&t).unwrap().is_empty(),
            "{op:?}: head did not move"
        );
        assert!(
            net.run_until(60_000, |n| converged(n, &[0, 1], &t)
                && total(n, 1, &t) == 1),
            "{op:?}"
        );
        assert!(applied(&stores[1], b"hello"), "{op:?}");
    }
}

#[test]
fn a_failure_mid_page_keeps_the_records_before_it() {
    let (mut net, stores, apps) = pair();
    let info = net.hosts[0]
        .create_thread(Time(0), NewThread::default())
        .unwrap();
    let t = info.id;
    for k in 0..10u8 {
        net.hosts[0]
            .create_record(Time(0), &t, None, &[b'r', k], 0)
            .unwrap();
    }
    net.collect();
    let a = addr(&net, 0, &t);
    net.hosts[1]
        .join_thread(Time(0), &a, info.key.clone())
        .unwrap();
    // The 5th put of the page's transaction fails: two records in (2 puts each + hook put).
    stores[1].fail_nth(FaultOp::Put, 7);
    let _ = &apps;
    assert!(net.run_until(60_000, |n| total(n, 1, &t) == 10));
    for k in 0..10u8 {
        assert!(applied(&stores[1], &[b'r', k]));
    }
    assert!(
        net.events[1]
            .iter()
            .any(|e| matches!(e, Event::ApplyFailed { .. }))
    );
}

#[test]
fn the_records_of_one_page_are_finished_as_one_batch_before_commit() {
    let (mut net, stores, apps) = pair();
    let info = net.hosts[0]
        .create_thread(Time(0), NewThread::default())
        .unwrap();
    let t = info.id;
    for k in 0..10u8 {
        net.hosts[0]
            .create_record(Time(0), &t, None, &[b'p', k], 0)
            .unwrap();
    }
    // Local writes are batches of one.
    assert_eq!(*apps[0].batches.borrow(), vec![1; 10]);
    net.collect();
    let a = addr(&net, 0, &t);
    net.hosts[1]
        .join_thread(Time(0), &a, info.key.clone())
        .unwrap();
    assert!(net.run_until(60_000, |n| total(n, 1, &t) == 10));
    let batches = apps[1].batches.borrow().clone();
    assert_eq!(batches.iter().sum::<usize>(), 10);
    assert!(
        batches.len() < 10,
        "a page is one batch, not one per record: {batches:?}"
    );
    // What `finish_batch` wrote was committed with the batch.
    use threads_protocol::store::{ReadTxn, Store};
    let marker = stores[1]
        .inner()
        .read()
        .unwrap()
        .get(&[0x20, b'#'])
        .unwrap();
    let last = *batches.last().unwrap() as u64;
    assert_eq!(marker, Some(last.to_be_bytes().to_vec()));
}

#[test]
fn a_failing_finish_leaves_no_trace_and_the_batch_is_retried() {
    let (mut net, stores, apps) = pair();
    let t = joined(&mut net);
    *apps[1].fail_finish.borrow_mut() = true;
    let before = stores[1].inner().digest();
    net.hosts[0]
        .create_record(Time(0), &t, None, b"later", 0)
        .unwrap();
    net.flush(1000);
    assert_eq!(stores[1].inner().digest(), before, "nothing was stored");
    assert!(net.hosts[1].heads(&t).unwrap().is_empty());
    assert!(
        net.events[1]
            .iter()
            .any(|e| matches!(e, Event::ApplyFailed { .. }))
    );
    *apps[1].fail_finish.borrow_mut() = false;
    assert!(net.run_until(60_000, |n| converged(n, &[0, 1], &t)
        && total(n, 1, &t) == 1));
    assert!(applied(&stores[1], b"later"));
}
