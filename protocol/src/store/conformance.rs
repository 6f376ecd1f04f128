//! The conformance suite every [`Store`] backend must pass. Test code: each case panics with a
//! message naming what broke. Call [`run_all`] from a backend's tests with a [`Harness`].

use std::collections::BTreeMap;
use std::ops::{Bound, ControlFlow};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use super::{
    Direction, KeyRange, MAX_KEY_LEN, ReadTxn, Store, StoreError, WriteTxn, content_digest,
    scan_collect, scan_prefix_collect,
};

/// How the suite obtains stores of the backend under test.
pub trait Harness {
    /// The backend.
    type S: Store;
    /// A new, empty store.
    fn open(&mut self) -> Self::S;
    /// Closes `store` and opens the same durable state again, as after a process restart.
    fn reopen(&mut self, store: Self::S) -> Self::S;
}

/// Runs every case.
pub fn run_all<H: Harness>(h: &mut H)
where
    H::S: Sync,
{
    put_get_delete(h);
    overwrite(h);
    key_and_value_limits(h);
    large_values(h);
    byte_order(h);
    scan_bounds(h);
    scan_prefix(h);
    scan_early_stop(h);
    read_your_own_writes(h);
    snapshot_isolation(h);
    abort_leaves_no_trace(h);
    reopen_sees_commits(h);
    many_keys_ordered(h);
    delete_reports_existence(h);
    empty_commit(h);
    second_writer_on_same_thread_is_busy(h);
    writers_serialize_across_threads(h);
    helpers(h);
    randomized_model(h, 0x5eed_0001, 60);
    randomized_model(h, 0xdead_beef_cafe, 60);
}

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

fn ok<T>(r: Result<T, StoreError>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: unexpected error: {e}"))
}

fn put_all<S: Store>(s: &S, pairs: &[(&[u8], &[u8])]) {
    let mut w = ok(s.write(), "open write txn");
    for (k, v) in pairs {
        ok(w.put(k, v), "put");
    }
    ok(w.commit(), "commit");
}

fn collect<T: ReadTxn + ?Sized>(t: &T, range: KeyRange<'_>, dir: Direction) -> Pairs {
    ok(scan_collect(t, range, dir, usize::MAX), "scan")
}

fn contents<S: Store>(s: &S) -> Pairs {
    collect(&ok(s.read(), "open read txn"), KeyRange::all(), Direction::Forward)
}

fn keys(pairs: &Pairs) -> Vec<Vec<u8>> {
    pairs.iter().map(|(k, _)| k.clone()).collect()
}

fn owned(pairs: &[(&[u8], &[u8])]) -> Pairs {
    pairs.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect()
}

/// Basic put, get, delete across transactions.
pub fn put_get_delete<H: Harness>(h: &mut H) {
    let s = h.open();
    assert_eq!(ok(ok(s.read(), "read").get(b"a"), "get"), None, "fresh store must be empty");
    put_all(&s, &[(b"a", b"1"), (b"b", b"2")]);
    let r = ok(s.read(), "read");
    assert_eq!(ok(r.get(b"a"), "get"), Some(b"1".to_vec()), "committed put not visible");
    assert_eq!(ok(r.get(b"b"), "get"), Some(b"2".to_vec()));
    assert_eq!(ok(r.get(b"c"), "get"), None, "absent key must read as None");
    drop(r);
    let mut w = ok(s.write(), "write");
    assert!(ok(w.delete(b"a"), "delete"), "delete of a present key must report true");
    ok(w.commit(), "commit");
    assert_eq!(contents(&s), owned(&[(b"b", b"2")]), "delete not applied");
}

/// A put replaces the previous value, within a txn and across txns.
pub fn overwrite<H: Harness>(h: &mut H) {
    let s = h.open();
    put_all(&s, &[(b"k", b"first")]);
    let mut w = ok(s.write(), "write");
    ok(w.put(b"k", b"second"), "put");
    ok(w.put(b"k", b"third, longer than before"), "put");
    assert_eq!(ok(w.get(b"k"), "get"), Some(b"third, longer than before".to_vec()));
    ok(w.commit(), "commit");
    assert_eq!(contents(&s), owned(&[(b"k", b"third, longer than before")]), "overwrite");
    put_all(&s, &[(b"k", b"")]);
    assert_eq!(contents(&s), owned(&[(b"k", b"")]), "overwrite with a shorter value");
}

/// Empty keys and keys over [`MAX_KEY_LEN`] are rejected without harming the txn; keys of
/// exactly `MAX_KEY_LEN` bytes and empty values work.
pub fn key_and_value_limits<H: Harness>(h: &mut H) {
    let s = h.open();
    let long = vec![0x42; MAX_KEY_LEN];
    let too_long = vec![0x42; MAX_KEY_LEN + 1];
    let mut w = ok(s.write(), "write");
    assert_eq!(w.put(b"", b"v"), Err(StoreError::InvalidKey { len: 0 }), "empty key put");
    assert_eq!(w.get(b""), Err(StoreError::InvalidKey { len: 0 }), "empty key get");
    assert_eq!(w.delete(b""), Err(StoreError::InvalidKey { len: 0 }), "empty key delete");
    let err = w.put(&too_long, b"v");
    assert_eq!(err, Err(StoreError::InvalidKey { len: MAX_KEY_LEN + 1 }), "overlong key put");
    assert!(err.is_err_and(|e| e.is_invalid_input()));
    ok(w.put(&long, b"max"), "put of a MAX_KEY_LEN key");
    ok(w.put(b"e", b""), "put of an empty value");
    ok(w.commit(), "commit after rejected arguments");
    let r = ok(s.read(), "read");
    assert_eq!(ok(r.get(&long), "get"), Some(b"max".to_vec()));
    assert_eq!(ok(r.get(b"e"), "get"), Some(Vec::new()), "empty value must differ from absent");
    assert_eq!(r.get(&too_long), Err(StoreError::InvalidKey { len: MAX_KEY_LEN + 1 }));
    assert_eq!(keys(&collect(&r, KeyRange::all(), Direction::Forward)), vec![long.clone(), b"e".to_vec()]);
}

fn big(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// Values of 1 MiB round-trip, also after reopen and overwrite.
pub fn large_values<H: Harness>(h: &mut H) {
    let s = h.open();
    let (a, b) = (big(1, 1 << 20), big(2, (1 << 20) + 17));
    put_all(&s, &[(b"a", &a), (b"b", &b), (b"c", b"small")]);
    let s = h.reopen(s);
    let r = ok(s.read(), "read");
    assert!(ok(r.get(b"a"), "get") == Some(a.clone()), "1 MiB value corrupted");
    assert!(ok(r.get(b"b"), "get") == Some(b), "1 MiB + 17 value corrupted");
    drop(r);
    put_all(&s, &[(b"b", b"tiny"), (b"c", &a)]);
    let got = contents(&s);
    assert!(got == owned(&[(b"a", &a), (b"b", b"tiny"), (b"c", &a)]), "large overwrite");
}

/// Keys sort as unsigned bytes, shorter first on a common prefix, in both directions.
pub fn byte_order<H: Harness>(h: &mut H) {
    let s = h.open();
    let order: [&[u8]; 8] = [b"\x00", b"\x00\x00", b"\x00\x01", b"\x01", b"\x7f", b"\x80", b"\xff", b"\xff\xff"];
    let mut w = ok(s.write(), "write");
    for k in order.iter().rev() {
        ok(w.put(k, k), "put");
    }
    ok(w.commit(), "commit");
    let want: Vec<Vec<u8>> = order.iter().map(|k| k.to_vec()).collect();
    let r = ok(s.read(), "read");
    assert_eq!(keys(&collect(&r, KeyRange::all(), Direction::Forward)), want, "forward order");
    let mut rev = want.clone();
    rev.reverse();
    assert_eq!(keys(&collect(&r, KeyRange::all(), Direction::Reverse)), rev, "reverse order");
}

/// Every combination of bound kinds, including empty, absent, overlong and inverted bounds.
pub fn scan_bounds<H: Harness>(h: &mut H) {
    let s = h.open();
    let max_key = vec![0x02; MAX_KEY_LEN];
    let stored: Vec<Vec<u8>> =
        vec![vec![1], vec![2], vec![2, 0], max_key.clone(), vec![3], vec![5], vec![0xff]];
    let mut w = ok(s.write(), "write");
    for k in &stored {
        ok(w.put(k, b"v"), "put");
    }
    ok(w.commit(), "commit");
    let points: Vec<Vec<u8>> = vec![
        vec![], vec![0], vec![1], vec![2], vec![2, 0], vec![2, 1], max_key.clone(),
        vec![0x02; MAX_KEY_LEN + 89], vec![4], vec![0xff], vec![0xff, 0xff],
    ];
    let mut bounds = vec![Bound::Unbounded];
    for p in &points {
        bounds.push(Bound::Included(p.as_slice()));
        bounds.push(Bound::Excluded(p.as_slice()));
    }
    let r = ok(s.read(), "read");
    for &start in &bounds {
        for &end in &bounds {
            let range = KeyRange::new(start, end);
            let want: Vec<Vec<u8>> = stored.iter().filter(|k| range.contains(k)).cloned().collect();
            let fwd = keys(&collect(&r, range.clone(), Direction::Forward));
            assert_eq!(fwd, want, "forward scan of {start:?}..{end:?}");
            let mut rev = keys(&collect(&r, range, Direction::Reverse));
            rev.reverse();
            assert_eq!(rev, want, "reverse scan of {start:?}..{end:?}");
        }
    }
    let named = |range| keys(&collect(&r, range, Direction::Forward));
    assert_eq!(named(KeyRange::between(&[2], &[3])), vec![vec![2], vec![2, 0], max_key.clone()]);
    assert_eq!(named(KeyRange::starting_at(&[3])), vec![vec![3], vec![5], vec![0xff]]);
    assert_eq!(named(KeyRange::after(&[3])), vec![vec![5], vec![0xff]]);
    assert_eq!(named(KeyRange::before(&[2])), vec![vec![1]]);
    assert_eq!(named(KeyRange::between(&[3], &[2])), Vec::<Vec<u8>>::new(), "inverted range");
}

/// Prefix scans, including prefixes made of `0xff` bytes, whose end bound is "unbounded".
pub fn scan_prefix<H: Harness>(h: &mut H) {
    let s = h.open();
    let stored: Vec<Vec<u8>> = vec![
        vec![0x01, 0xff], vec![0x01, 0xff, 0xff], vec![0x02], vec![0xfe], vec![0xfe, 0xff],
        vec![0xff], vec![0xff, 0x00], vec![0xff, 0xff], vec![0xff, 0xff, 0x01],
    ];
    let mut w = ok(s.write(), "write");
    for k in &stored {
        ok(w.put(k, k), "put");
    }
    ok(w.commit(), "commit");
    let r = ok(s.read(), "read");
    let prefixes: [&[u8]; 8] =
        [b"", b"\x01", b"\x01\xff", b"\xfe", b"\xff", b"\xff\xff", b"\xff\xff\xff", b"\x03"];
    for p in prefixes {
        let want: Vec<Vec<u8>> = stored.iter().filter(|k| k.starts_with(p)).cloned().collect();
        assert_eq!(keys(&collect(&r, KeyRange::prefix(p), Direction::Forward)), want, "prefix {p:x?}");
        let mut rev = keys(&collect(&r, KeyRange::prefix(p), Direction::Reverse));
        rev.reverse();
        assert_eq!(rev, want, "reverse prefix {p:x?}");
    }
    let ff = keys(&collect(&r, KeyRange::prefix(b"\xff"), Direction::Forward));
    assert_eq!(ff.len(), 4, "prefix 0xff must reach the very last keys");
}

/// A visitor that breaks is not called again, in both directions.
pub fn scan_early_stop<H: Harness>(h: &mut H) {
    let s = h.open();
    let mut w = ok(s.write(), "write");
    for i in 0u8..20 {
        ok(w.put(&[b'k', i], &[i]), "put");
    }
    ok(w.commit(), "commit");
    let r = ok(s.read(), "read");
    for (dir, first) in [(Direction::Forward, 0u8), (Direction::Reverse, 19u8)] {
        let mut seen = Vec::new();
        ok(
            r.scan(KeyRange::all(), dir, &mut |k, _| {
                seen.push(k[1]);
                if seen.len() == 3 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
            }),
            "scan",
        );
        let want: Vec<u8> = if first == 0 { vec![0, 1, 2] } else { vec![19, 18, 17] };
        assert_eq!(seen, want, "{dir:?} scan must stop right after Break");
    }
    let mut calls = 0;
    ok(r.scan(KeyRange::all(), Direction::Forward, &mut |_, _| { calls += 1; ControlFlow::Break(()) }), "scan");
    assert_eq!(calls, 1, "Break on the first pair");
}

/// Gets and scans in a write txn see its pending puts, overwrites and deletes.
pub fn read_your_own_writes<H: Harness>(h: &mut H) {
    let s = h.open();
    put_all(&s, &[(b"a", b"1"), (b"c", b"3"), (b"e", b"5")]);
    let mut w = ok(s.write(), "write");
    ok(w.put(b"b", b"2"), "put");
    ok(w.put(b"c", b"33"), "put");
    assert!(ok(w.delete(b"e"), "delete"));
    ok(w.put(b"f", b"6"), "put");
    assert!(ok(w.delete(b"f"), "delete"), "delete of a pending put must report true");
    assert_eq!(ok(w.get(b"b"), "get"), Some(b"2".to_vec()), "pending put");
    assert_eq!(ok(w.get(b"c"), "get"), Some(b"33".to_vec()), "pending overwrite");
    assert_eq!(ok(w.get(b"e"), "get"), None, "pending delete");
    let want = owned(&[(b"a", b"1"), (b"b", b"2"), (b"c", b"33")]);
    assert_eq!(collect(&w, KeyRange::all(), Direction::Forward), want, "merged forward scan");
    let mut rev = collect(&w, KeyRange::all(), Direction::Reverse);
    rev.reverse();
    assert_eq!(rev, want, "merged reverse scan");
    assert_eq!(contents(&s), owned(&[(b"a", b"1"), (b"c", b"3"), (b"e", b"5")]), "leak before commit");
    let dynamic: &dyn WriteTxn = &w;
    assert_eq!(ok(dynamic.get(b"b"), "get via dyn"), Some(b"2".to_vec()));
    ok(w.commit(), "commit");
    assert_eq!(contents(&s), want, "committed state");
}

/// A read txn keeps its snapshot across later commits; a txn opened later sees them.
pub fn snapshot_isolation<H: Harness>(h: &mut H) {
    let s = h.open();
    put_all(&s, &[(b"a", b"old"), (b"b", b"old")]);
    let before = ok(s.read(), "read");
    let mut w = ok(s.write(), "write");
    ok(w.put(b"a", b"new"), "put");
    assert!(ok(w.delete(b"b"), "delete"));
    ok(w.put(b"c", b"new"), "put");
    let during = ok(s.read(), "read during write");
    assert_eq!(collect(&during, KeyRange::all(), Direction::Forward), owned(&[(b"a", b"old"), (b"b", b"old")]), "uncommitted writes visible to a reader");
    ok(w.commit(), "commit");
    let old = owned(&[(b"a", b"old"), (b"b", b"old")]);
    assert_eq!(collect(&before, KeyRange::all(), Direction::Forward), old, "snapshot changed by a later commit");
    assert_eq!(ok(before.get(b"c"), "get"), None, "snapshot sees a later put");
    assert_eq!(collect(&during, KeyRange::all(), Direction::Reverse).len(), 2);
    assert_eq!(contents(&s), owned(&[(b"a", b"new"), (b"c", b"new")]), "new reader");
}

/// Dropping a write txn without commit discards all of it, now and after reopen.
pub fn abort_leaves_no_trace<H: Harness>(h: &mut H) {
    let s = h.open();
    put_all(&s, &[(b"a", b"1"), (b"b", b"2")]);
    let before = contents(&s);
    let digest = ok(content_digest(&ok(s.read(), "read")), "digest");
    {
        let mut w = ok(s.write(), "write");
        ok(w.put(b"a", b"changed"), "put");
        assert!(ok(w.delete(b"b"), "delete"));
        ok(w.put(b"z", &big(9, 4096)), "put");
        for i in 0u32..200 {
            ok(w.put(&i.to_be_bytes(), b"x"), "put");
        }
    }
    assert_eq!(contents(&s), before, "aborted txn left a trace");
    assert_eq!(ok(content_digest(&ok(s.read(), "read")), "digest"), digest);
    let s = h.reopen(s);
    assert_eq!(contents(&s), before, "aborted txn reappeared after reopen");
    let mut w = ok(s.write(), "write after abort");
    ok(w.put(b"c", b"3"), "put");
    ok(w.commit(), "commit after abort");
    assert_eq!(contents(&s).len(), 3);
}

/// Everything committed survives reopen; an uncommitted txn at "crash" time does not.
pub fn reopen_sees_commits<H: Harness>(h: &mut H) {
    let s = h.open();
    for round in 0u8..5 {
        put_all(&s, &[(&[b'k', round], &[round]), (b"last", &[round])]);
    }
    let want = contents(&s);
    let s = h.reopen(s);
    assert_eq!(contents(&s), want, "reopen lost committed data");
    let s = {
        let mut w = ok(s.write(), "write");
        ok(w.put(b"uncommitted", b"x"), "put");
        drop(w);
        h.reopen(s)
    };
    assert_eq!(contents(&s), want, "reopen after an abandoned txn");
}

/// 10 000 keys inserted in scrambled order come back sorted both ways.
pub fn many_keys_ordered<H: Harness>(h: &mut H) {
    let s = h.open();
    let n = 10_000u64;
    let mut w = ok(s.write(), "write");
    for i in 0..n {
        let k = (i * 7919) % n; // 7919 is prime and coprime to n: a permutation
        ok(w.put(&k.to_be_bytes(), &k.to_le_bytes()), "put");
    }
    ok(w.commit(), "commit");
    let r = ok(s.read(), "read");
    let fwd = collect(&r, KeyRange::all(), Direction::Forward);
    assert_eq!(fwd.len(), n as usize, "key count");
    for (i, (k, v)) in fwd.iter().enumerate() {
        assert_eq!(k, &(i as u64).to_be_bytes(), "forward position {i}");
        assert_eq!(v, &(i as u64).to_le_bytes(), "value at {i}");
    }
    let rev = collect(&r, KeyRange::all(), Direction::Reverse);
    assert!(rev.iter().rev().eq(fwd.iter()), "reverse scan differs from forward");
}

/// `delete` reports whether the key existed as seen by the txn.
pub fn delete_reports_existence<H: Harness>(h: &mut H) {
    let s = h.open();
    put_all(&s, &[(b"a", b"1")]);
    let mut w = ok(s.write(), "write");
    assert!(!ok(w.delete(b"missing"), "delete"), "delete of an absent key must report false");
    assert!(ok(w.delete(b"a"), "delete"));
    assert!(!ok(w.delete(b"a"), "delete"), "second delete must report false");
    ok(w.put(b"a", b"again"), "put");
    assert!(ok(w.delete(b"a"), "delete"), "delete of a re-put key");
    ok(w.commit(), "commit");
    assert!(contents(&s).is_empty());
}

/// Committing a txn that did nothing, or whose writes cancel out, succeeds and changes nothing.
pub fn empty_commit<H: Harness>(h: &mut H) {
    let s = h.open();
    ok(ok(s.write(), "write").commit(), "commit of an empty txn on an empty store");
    put_all(&s, &[(b"a", b"1")]);
    ok(ok(s.write(), "write").commit(), "commit of an empty txn");
    let mut w = ok(s.write(), "write");
    ok(w.put(b"tmp", b"x"), "put");
    assert!(ok(w.delete(b"tmp"), "delete"));
    ok(w.commit(), "commit");
    assert_eq!(contents(&s), owned(&[(b"a", b"1")]));
    let s = h.reopen(s);
    assert_eq!(contents(&s), owned(&[(b"a", b"1")]), "after reopen");
}

/// A second `write()` on a thread that holds the write txn fails with `Busy` (no deadlock).
pub fn second_writer_on_same_thread_is_busy<H: Harness>(h: &mut H) {
    let s = h.open();
    let w = ok(s.write(), "write");
    assert!(matches!(s.write(), Err(StoreError::Busy(_))), "second write txn on one thread must be Busy");
    drop(w);
    let w = ok(s.write(), "write after the first was dropped");
    ok(w.commit(), "commit");
}

/// A writer on another thread waits for the current one and then sees its commit.
pub fn writers_serialize_across_threads<H: Harness>(h: &mut H)
where
    H::S: Sync,
{
    let s = h.open();
    let store = &s;
    let mut w = ok(s.write(), "write");
    ok(w.put(b"k", b"first"), "put");
    thread::scope(|scope| {
        let (started, wait_started) = mpsc::channel();
        let other = scope.spawn(move || {
            let _ = started.send(());
            let mut w2 = ok(store.write(), "second writer");
            let seen = ok(w2.get(b"k"), "get");
            ok(w2.put(b"k", b"second"), "put");
            ok(w2.commit(), "commit");
            seen
        });
        let _ = wait_started.recv();
        thread::sleep(Duration::from_millis(30));
        ok(w.commit(), "commit");
        let seen = other.join().unwrap_or_else(|_| panic!("second writer panicked"));
        assert_eq!(seen, Some(b"first".to_vec()), "second writer ran before the first committed");
    });
    assert_eq!(contents(&s), owned(&[(b"k", b"second")]));
}

/// The helpers of the store module work over this backend.
pub fn helpers<H: Harness>(h: &mut H) {
    let s = h.open();
    put_all(&s, &[(b"p1", b"a"), (b"p2", b"b"), (b"p3", b"c"), (b"q", b"d")]);
    let r = ok(s.read(), "read");
    let got = ok(scan_prefix_collect(&r, b"p", 2), "scan_prefix_collect");
    assert_eq!(got, owned(&[(b"p1", b"a"), (b"p2", b"b")]), "limit 2");
    assert!(ok(scan_prefix_collect(&r, b"p", 0), "limit 0").is_empty());
    let last = ok(scan_collect(&r, KeyRange::prefix(b"p"), Direction::Reverse, 1), "scan_collect");
    assert_eq!(last, owned(&[(b"p3", b"c")]));
    let d1 = ok(content_digest(&r), "digest");
    let other = h.open();
    put_all(&other, &[(b"q", b"d"), (b"p3", b"c")]);
    put_all(&other, &[(b"p2", b"b"), (b"p1", b"a")]);
    assert_eq!(ok(content_digest(&ok(other.read(), "read")), "digest"), d1, "digest depends on history");
    put_all(&other, &[(b"q", b"D")]);
    assert_ne!(ok(content_digest(&ok(other.read(), "read")), "digest"), d1, "digest ignores values");
}

/// A tiny deterministic PRNG (xorshift64*), so the suite needs no dependencies.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn key(&mut self) -> Vec<u8> {
        const ALPHABET: [u8; 6] = [0x00, 0x01, 0x61, 0x7f, 0x80, 0xff];
        let len = 1 + self.below(3) as usize;
        (0..len).map(|_| ALPHABET[self.below(6) as usize]).collect()
    }
    fn bound(&mut self) -> Bound<Vec<u8>> {
        match self.below(5) {
            0 => Bound::Unbounded,
            1 | 2 => Bound::Included(if self.below(8) == 0 { Vec::new() } else { self.key() }),
            _ => Bound::Excluded(self.key()),
        }
    }
}

/// Random sequences of put, delete, get, scan, commit, abort and reopen, checked against a
/// `BTreeMap` model. Deterministic for a given `seed`; `rounds` write txns.
pub fn randomized_model<H: Harness>(h: &mut H, seed: u64, rounds: usize) {
    let mut rng = XorShift(seed | 1);
    let mut s = h.open();
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let as_pairs = |m: &BTreeMap<Vec<u8>, Vec<u8>>| -> Pairs { m.iter().map(|(k, v)| (k.clone(), v.clone())).collect() };
    for round in 0..rounds {
        let ctx = |op: usize| format!("seed {seed:#x} round {round} op {op}");
        let old_reader = ok(s.read(), "read");
        let mut pending = model.clone();
        let mut w = ok(s.write(), "write");
        for op in 0..1 + rng.below(24) as usize {
            match rng.below(10) {
                0..=3 => {
                    let (k, v) = (rng.key(), rng.key()[1..].to_vec());
                    ok(w.put(&k, &v), "put");
                    pending.insert(k, v);
                }
                4 | 5 => {
                    let k = rng.key();
                    assert_eq!(ok(w.delete(&k), "delete"), pending.remove(&k).is_some(), "{}: delete flag", ctx(op));
                }
                6 => {
                    let k = rng.key();
                    assert_eq!(ok(w.get(&k), "get"), pending.get(&k).cloned(), "{}: get", ctx(op));
                }
                _ => {
                    let (a, b) = (rng.bound(), rng.bound());
                    let dir = if rng.below(2) == 0 { Direction::Forward } else { Direction::Reverse };
                    let limit = if rng.below(3) == 0 { 1 + rng.below(4) as usize } else { usize::MAX };
                    let prefix = rng.key();
                    let use_prefix = rng.below(4) == 0;
                    let range = if use_prefix {
                        KeyRange::prefix(&prefix[..1 + rng.below(prefix.len() as u64) as usize])
                    } else {
                        KeyRange::new(a.as_ref().map(Vec::as_slice), b.as_ref().map(Vec::as_slice))
                    };
                    let mut want: Pairs = pending.iter().filter(|(k, _)| range.contains(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
                    if dir == Direction::Reverse {
                        want.reverse();
                    }
                    want.truncate(limit);
                    let got = ok(scan_collect(&w, range.clone(), dir, limit), "scan");
                    assert_eq!(got, want, "{}: scan {range:?} {dir:?} limit {limit}", ctx(op));
                }
            }
        }
        let old = as_pairs(&model);
        if rng.below(10) < 7 {
            ok(w.commit(), "commit");
            model = pending;
        } else {
            drop(w);
        }
        let seen = collect(&old_reader, KeyRange::all(), Direction::Forward);
        assert_eq!(seen, old, "seed {seed:#x} round {round}: reader snapshot moved");
        drop(old_reader);
        if rng.below(12) == 0 {
            s = h.reopen(s);
        }
        assert_eq!(contents(&s), as_pairs(&model), "seed {seed:#x} round {round}: store differs from model");
    }
}
