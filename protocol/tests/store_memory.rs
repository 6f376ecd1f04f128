//! The storage conformance suite on [`MemoryStore`], plus fault injection, memory-store extras
//! and the composite-key encoding.

use std::ops::{Bound, ControlFlow};

use threads_protocol::store::conformance::{self, Harness};
use threads_protocol::store::key::{KeyBuf, KeyReader};
use threads_protocol::store::memory::{FaultOp, FaultyStore, MemoryStore};
use threads_protocol::store::{
    Direction, KeyRange, ReadTxn, Store, StoreError, WriteTxn, content_digest, prefix_successor,
    scan_collect,
};

struct Mem;

impl Harness for Mem {
    type S = MemoryStore;
    fn open(&mut self) -> MemoryStore {
        MemoryStore::new()
    }
    fn reopen(&mut self, store: MemoryStore) -> MemoryStore {
        store.reopen()
    }
}

#[test]
fn memory_store_passes_conformance() {
    conformance::run_all(&mut Mem);
}

#[test]
fn memory_store_randomized_more_seeds() {
    for seed in 1..=20u64 {
        conformance::randomized_model(&mut Mem, seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), 80);
    }
}

fn all<T: ReadTxn + ?Sized>(t: &T) -> Vec<(Vec<u8>, Vec<u8>)> {
    scan_collect(t, KeyRange::all(), Direction::Forward, usize::MAX).unwrap()
}

#[test]
fn stats_count_commits_aborts_and_bytes() {
    let s = MemoryStore::new();
    let mut w = s.write().unwrap();
    w.put(b"ab", b"123").unwrap();
    w.put(b"cd", b"4").unwrap();
    w.commit().unwrap();
    let mut w = s.write().unwrap();
    w.put(b"ab", b"1").unwrap();
    assert!(w.delete(b"cd").unwrap());
    w.commit().unwrap();
    drop(s.write().unwrap());
    let st = s.stats();
    assert_eq!((st.commits, st.aborts, st.puts, st.deletes), (2, 1, 3, 1));
    assert_eq!(st.bytes_written, 5 + 3 + 3);
    assert_eq!((st.keys, st.live_bytes), (1, 3));
    assert_eq!(s.reopen().stats(), st, "stats are shared by handles");
}

#[test]
fn digest_and_fork() {
    let s = MemoryStore::new();
    let mut w = s.write().unwrap();
    w.put(b"k", b"v").unwrap();
    w.commit().unwrap();
    let f = s.fork();
    assert_eq!(f.digest(), s.digest());
    assert_eq!(s.digest(), content_digest(&s.read().unwrap()).unwrap());
    let mut w = f.write().unwrap();
    w.put(b"k2", b"v").unwrap();
    w.commit().unwrap();
    assert_ne!(f.digest(), s.digest(), "a fork is independent");
    assert_eq!(all(&s.read().unwrap()).len(), 1);
    let empty = MemoryStore::new();
    assert_eq!(
        empty.digest(),
        content_digest(&empty.read().unwrap()).unwrap()
    );
    assert_ne!(empty.digest(), [0; 32]);
}

#[test]
fn memory_read_txn_is_send_and_independent_of_the_handle() {
    fn is_send<T: Send + 'static>(_: &T) {}
    let s = MemoryStore::new();
    let r = s.read().unwrap();
    is_send(&r);
    drop(s);
    assert!(all(&r).is_empty());
}

fn seeded() -> FaultyStore<MemoryStore> {
    let s = FaultyStore::new(MemoryStore::new());
    let mut w = s.write().unwrap();
    w.put(b"a", b"1").unwrap();
    w.commit().unwrap();
    s
}

#[test]
fn injected_put_failure_poisons_txn_and_leaves_no_trace() {
    let s = seeded();
    let before = s.inner().digest();
    s.fail_nth(FaultOp::Put, 2);
    let mut w = s.write().unwrap();
    w.put(b"b", b"2").unwrap();
    let err = w.put(b"c", b"3").unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Injected {
                op: FaultOp::Put,
                call: 3
            }
        ),
        "{err}"
    );
    assert!(
        w.put(b"d", b"4").is_err(),
        "txn must refuse calls after a failure"
    );
    assert!(w.get(b"a").is_err());
    assert!(w.commit().is_err(), "commit after a failure must fail");
    assert_eq!(s.inner().digest(), before);
    assert_eq!(s.inner().stats().aborts, 1);
    assert_eq!(s.calls(FaultOp::Put), 3, "refused calls are not counted");
}

#[test]
fn injected_commit_failure_leaves_no_trace() {
    let s = seeded();
    let before = all(&s.read().unwrap());
    s.fail_nth(FaultOp::Commit, 1);
    let mut w = s.write().unwrap();
    w.put(b"b", b"2").unwrap();
    assert!(w.delete(b"a").unwrap());
    assert!(matches!(
        w.commit(),
        Err(StoreError::Injected {
            op: FaultOp::Commit,
            ..
        })
    ));
    assert_eq!(all(&s.read().unwrap()), before);
    let mut w = s.write().unwrap();
    w.put(b"b", b"2").unwrap();
    w.commit().unwrap();
    assert_eq!(all(&s.read().unwrap()).len(), 2, "the next commit works");
}

#[test]
fn injected_read_side_failures() {
    let s = seeded();
    s.fail_nth(FaultOp::Read, 1);
    assert!(s.read().is_err());
    s.fail_nth(FaultOp::Get, 1);
    s.fail_nth(FaultOp::Scan, 1);
    let r = s.read().unwrap();
    assert!(r.get(b"a").is_err());
    assert_eq!(
        r.get(b"a").unwrap(),
        Some(b"1".to_vec()),
        "read txns stay usable"
    );
    let mut noop = |_: &[u8], _: &[u8]| ControlFlow::Continue(());
    assert!(
        r.scan(KeyRange::all(), Direction::Forward, &mut noop)
            .is_err()
    );
    s.fail_nth(FaultOp::Write, 1);
    assert!(s.write().is_err());
    s.fail_nth(FaultOp::Delete, 1);
    s.fail_nth(FaultOp::Put, 5);
    s.clear();
    let mut w = s.write().unwrap();
    assert!(w.delete(b"a").unwrap(), "clear() disarms");
    w.commit().unwrap();
}

#[test]
fn try_scan_ends_at_the_visitors_first_error_and_passes_store_errors_on() {
    let s = seeded();
    let mut w = s.write().unwrap();
    for k in [b"b", b"c", b"d"] {
        w.put(k, b"v").unwrap();
    }
    w.commit().unwrap();
    let r = s.read().unwrap();
    let keys: Vec<Vec<u8>> = all(&r).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys.len(), 4);
    // The visitor fails on the second key: the scan stops there and hands the error back.
    let mut seen = Vec::new();
    let err = r
        .try_scan(KeyRange::all(), Direction::Forward, &mut |k, _| {
            seen.push(k.to_vec());
            if seen.len() == 2 {
                return Err(StoreError::Corrupt("second key".into()));
            }
            Ok(ControlFlow::Continue(()))
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(m) if m == "second key"));
    assert_eq!(seen, keys[..2]);
    // A visitor that breaks off ends the scan without an error.
    let mut count = 0;
    r.try_scan(KeyRange::all(), Direction::Reverse, &mut |_, _| {
        count += 1;
        Ok(ControlFlow::Break(()))
    })
    .unwrap();
    assert_eq!(count, 1);
    // The store's own failure comes back as it is, the visitor never called.
    s.fail_nth(FaultOp::Scan, 1);
    let mut called = false;
    let result = r.try_scan(KeyRange::all(), Direction::Forward, &mut |_, _| {
        called = true;
        Ok(ControlFlow::Continue(()))
    });
    assert!(result.is_err());
    assert!(!called);
}

#[test]
fn invalid_arguments_do_not_poison_faulty_txn() {
    let s = seeded();
    let mut w = s.write().unwrap();
    assert!(w.put(b"", b"x").unwrap_err().is_invalid_input());
    w.put(b"b", b"2").unwrap();
    w.commit().unwrap();
    assert_eq!(all(&s.read().unwrap()).len(), 2);
}

#[test]
fn every_single_fault_point_leaves_no_trace() {
    let points = [
        (FaultOp::Write, 1),
        (FaultOp::Put, 1),
        (FaultOp::Get, 1),
        (FaultOp::Delete, 1),
        (FaultOp::Put, 2),
        (FaultOp::Commit, 1),
    ];
    for (op, n) in points {
        let s = seeded();
        let before = s.inner().digest();
        s.fail_nth(op, n);
        let result = (|| {
            let mut w = s.write()?;
            w.put(b"x", b"1")?;
            let _ = w.get(b"a")?;
            w.delete(b"a")?;
            w.put(b"y", b"2")?;
            w.commit()
        })();
        assert!(result.is_err(), "{op:?} #{n} was not injected");
        assert_eq!(s.inner().digest(), before, "{op:?} #{n} left a trace");
    }
}

#[test]
fn key_encoding_round_trips_and_orders_like_tuples() {
    let tuples: Vec<(u8, Vec<u8>, u64)> = vec![
        (1, vec![], 0),
        (1, vec![], u64::MAX),
        (1, vec![0], 0),
        (1, vec![0], u64::MAX),
        (1, vec![0, 0], 5),
        (1, vec![0, 1], 0),
        (1, vec![0, 0xff], 0),
        (1, vec![1], 0),
        (1, vec![1, 0], 0),
        (1, vec![0xff], 7),
        (1, vec![0xff, 0xff], 0),
        (2, vec![], 0),
    ];
    let enc = |(t, b, n): &(u8, Vec<u8>, u64)| KeyBuf::new(*t).bytes(b).u64(*n).into_vec();
    for pair in tuples.windows(2) {
        assert!(pair[0] < pair[1], "test tuples must be sorted");
        assert!(
            enc(&pair[0]) < enc(&pair[1]),
            "{:?} vs {:?}",
            pair[0],
            pair[1]
        );
    }
    for t in &tuples {
        let k = enc(t);
        let mut r = KeyReader::new(&k);
        assert_eq!(
            (r.u8().unwrap(), r.bytes().unwrap(), r.u64().unwrap()),
            t.clone()
        );
        r.finish().unwrap();
    }
    // The example of spec/storage.md §6.
    let example = KeyBuf::new(0x03).bytes(b"a\0b").u64(7).into_vec();
    assert_eq!(
        example,
        [3, 0x61, 0, 0xff, 0x62, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7]
    );
    // A prefix scan on an encoded byte-string field finds only that exact string.
    let p = KeyBuf::new(1).bytes(&[0]).into_vec();
    assert!(!enc(&(1, vec![0, 0], 5)).starts_with(&p));
    assert!(enc(&(1, vec![0], 0)).starts_with(&p));
    assert_eq!(
        KeyBuf::with_prefix(&p).u8(9).as_bytes(),
        KeyBuf::new(1).bytes(&[0]).u8(9).as_bytes()
    );
}

#[test]
fn key_reader_rejects_malformed_keys() {
    let k = KeyBuf::new(3)
        .str("héllo")
        .u32(9)
        .fixed(&[7; 4])
        .u8(1)
        .into_vec();
    let mut r = KeyReader::new(&k);
    assert_eq!(r.u8().unwrap(), 3);
    assert_eq!(r.str().unwrap(), "héllo");
    assert_eq!(r.u32().unwrap(), 9);
    assert_eq!(r.fixed(4).unwrap(), &[7; 4]);
    assert_eq!(r.rest(), &[1]);
    assert!(r.clone().finish().is_err(), "trailing bytes");
    for bad in [
        &[1u8, 0x61][..],
        &[0x61, 0x00],
        &[0x00, 0x02],
        &[0xff, 0xfe],
    ] {
        assert!(
            matches!(KeyReader::new(bad).bytes(), Err(StoreError::Corrupt(_))),
            "{bad:x?}"
        );
    }
    assert!(KeyReader::new(&[1, 2, 3]).u64().is_err());
    assert!(
        KeyReader::new(&[0xff, 0x00, 0x01]).str().is_err(),
        "not UTF-8"
    );
}

#[test]
fn prefix_successor_and_normalization_edges() {
    assert_eq!(prefix_successor(b""), None);
    assert_eq!(prefix_successor(&[0xff, 0xff]), None);
    assert_eq!(prefix_successor(&[1, 0xff]), Some(vec![2]));
    assert_eq!(prefix_successor(&[1, 2]), Some(vec![1, 3]));
    assert!(KeyRange::prefix(&[0xff]).contains(&[0xff, 0xff, 0xff]));
    assert!(!KeyRange::prefix(&[1, 0xff]).contains(&[2]));
    assert_eq!(KeyRange::between(b"b", b"a").normalized(), None);
    let point = KeyRange::new(Bound::Excluded(b"a"), Bound::Included(b"a"));
    assert_eq!(point.normalized(), None);
    assert_eq!(KeyRange::before(b"").normalized(), None);
    let start_empty = KeyRange::starting_at(b"");
    assert_eq!(
        start_empty.normalized(),
        Some((Bound::Unbounded, Bound::Unbounded))
    );
}

/// Large transactions over a deep map, committed with and without a reader snapshot alive
/// (commit changes the map in place only when no snapshot shares it): the snapshot keeps its
/// contents, the store matches a model, and scans in a write transaction merge its pending
/// changes with the committed pairs in both directions.
#[test]
fn large_commits_with_and_without_snapshots_match_a_model() {
    use std::collections::BTreeMap;
    let s = MemoryStore::new();
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut kept = None;
    for round in 0..6u64 {
        let snapshot = (round % 2 == 1).then(|| (s.read().unwrap(), model.clone()));
        let mut w = s.write().unwrap();
        let mut pending = model.clone();
        for i in 0..4_000u64 {
            let key = (next() % 20_000).to_be_bytes().to_vec();
            if next() % 4 == 0 {
                let existed = pending.remove(&key).is_some();
                assert_eq!(w.delete(&key).unwrap(), existed, "round {round} op {i}");
            } else {
                let value = (round * 10_000 + i).to_le_bytes().to_vec();
                w.put(&key, &value).unwrap();
                pending.insert(key, value);
            }
        }
        let lo = (next() % 20_000).to_be_bytes();
        let hi = (next() % 20_000).to_be_bytes();
        let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
        let range = || KeyRange::new(Bound::Included(&lo[..]), Bound::Excluded(&hi[..]));
        let want: Vec<(Vec<u8>, Vec<u8>)> = pending
            .range(lo.to_vec()..hi.to_vec())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let forward = scan_collect(&w, range(), Direction::Forward, usize::MAX).unwrap();
        assert_eq!(
            forward, want,
            "round {round}: forward scan in the write txn"
        );
        let mut reverse = scan_collect(&w, range(), Direction::Reverse, usize::MAX).unwrap();
        reverse.reverse();
        assert_eq!(
            reverse, want,
            "round {round}: reverse scan in the write txn"
        );
        w.commit().unwrap();
        model = pending;
        if let Some((snap, old)) = snapshot {
            let seen: BTreeMap<Vec<u8>, Vec<u8>> = all(&snap).into_iter().collect();
            assert_eq!(seen, old, "round {round}: the snapshot changed");
            kept = Some(snap);
        }
        let now: BTreeMap<Vec<u8>, Vec<u8>> = all(&s.read().unwrap()).into_iter().collect();
        assert_eq!(now, model, "round {round}: committed contents");
        let st = s.stats();
        let bytes: usize = model.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert_eq!((st.keys, st.live_bytes), (model.len() as u64, bytes as u64));
    }
    drop(kept);
}
