//! Conformance cases about transactions: isolation, atomicity, durability across reopen,
//! writer exclusion, and the randomized model check.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use super::{
    Harness, Pairs, begin, big, both_ways, commit, contents, del, digest, get, ok, owned, put,
    put_all, snap,
};
use crate::store::{Direction, KeyRange, ReadTxn, Store, StoreError, WriteTxn, scan_collect};

/// Gets and scans in a write txn see its pending puts, overwrites and deletes.
pub fn read_your_own_writes<H: Harness>(h: &mut H) {
    let s = h.open();
    let before = owned(&[(b"a", b"1"), (b"c", b"3"), (b"e", b"5")]);
    put_all(&s, &[(b"a", b"1"), (b"c", b"3"), (b"e", b"5")]);
    let mut w = begin(&s);
    put(&mut w, b"b", b"2");
    put(&mut w, b"c", b"33");
    assert!(del(&mut w, b"e"));
    put(&mut w, b"f", b"6");
    assert!(
        del(&mut w, b"f"),
        "delete of a pending put must report true"
    );
    assert_eq!(get(&w, b"b"), Some(b"2".to_vec()), "pending put");
    assert_eq!(get(&w, b"c"), Some(b"33".to_vec()), "pending overwrite");
    assert_eq!(get(&w, b"e"), None, "pending delete");
    let want = owned(&[(b"a", b"1"), (b"b", b"2"), (b"c", b"33")]);
    assert_eq!(both_ways(&w, KeyRange::all()), want, "merged scan");
    assert_eq!(
        both_ways(&w, KeyRange::starting_at(b"b")),
        want[1..],
        "merged range scan"
    );
    assert_eq!(contents(&s), before, "pending writes leaked before commit");
    let dynamic: &dyn WriteTxn = &w;
    assert_eq!(
        get(dynamic, b"b"),
        Some(b"2".to_vec()),
        "get through dyn WriteTxn"
    );
    commit(w);
    assert_eq!(contents(&s), want, "committed state");
}

/// A read txn keeps its snapshot across later commits; a txn opened later sees them.
pub fn snapshot_isolation<H: Harness>(h: &mut H) {
    let s = h.open();
    let old = owned(&[(b"a", b"old"), (b"b", b"old")]);
    put_all(&s, &[(b"a", b"old"), (b"b", b"old")]);
    let before = snap(&s);
    let mut w = begin(&s);
    put(&mut w, b"a", b"new");
    assert!(del(&mut w, b"b"));
    put(&mut w, b"c", b"new");
    let during = snap(&s);
    assert_eq!(
        both_ways(&during, KeyRange::all()),
        old,
        "uncommitted writes visible"
    );
    commit(w);
    assert_eq!(
        both_ways(&before, KeyRange::all()),
        old,
        "snapshot changed by a commit"
    );
    assert_eq!(
        both_ways(&during, KeyRange::all()),
        old,
        "snapshot changed by a commit"
    );
    assert_eq!(get(&before, b"c"), None, "snapshot sees a later put");
    assert_eq!(
        contents(&s),
        owned(&[(b"a", b"new"), (b"c", b"new")]),
        "new reader"
    );
}

/// A read txn's sibling, read on another thread, sees exactly the read txn's snapshot, even
/// when it is taken after a later commit (or is not given); a write txn gives none.
pub fn siblings_share_the_snapshot<H: Harness>(h: &mut H) {
    let s = h.open();
    let old = owned(&[(b"a", b"old"), (b"b", b"old")]);
    put_all(&s, &[(b"a", b"old"), (b"b", b"old")]);
    let r = snap(&s);
    let on_another_thread = |sibling: Box<dyn ReadTxn + Send + '_>| {
        thread::scope(|scope| {
            scope
                .spawn(move || both_ways(&*sibling, KeyRange::all()))
                .join()
                .expect("sibling reader panicked")
        })
    };
    if let Some(sibling) = r.sibling() {
        assert_eq!(on_another_thread(sibling), old, "sibling before a commit");
    }
    let mut w = begin(&s);
    assert!(w.sibling().is_none(), "a write txn gave a sibling");
    put(&mut w, b"a", b"new");
    put(&mut w, b"c", b"new");
    commit(w);
    if let Some(sibling) = r.sibling() {
        assert_eq!(
            on_another_thread(sibling),
            old,
            "sibling saw a later commit"
        );
    }
    assert_eq!(both_ways(&r, KeyRange::all()), old, "snapshot changed");
}

/// Dropping a write txn without commit discards all of it, now and after reopen.
pub fn abort_leaves_no_trace<H: Harness>(h: &mut H) {
    let s = h.open();
    put_all(&s, &[(b"a", b"1"), (b"b", b"2")]);
    let (before, hash) = (contents(&s), digest(&snap(&s)));
    {
        let mut w = begin(&s);
        put(&mut w, b"a", b"changed");
        assert!(del(&mut w, b"b"));
        put(&mut w, b"z", &big(9, 4096));
        for i in 0u32..200 {
            put(&mut w, &i.to_be_bytes(), b"x");
        }
    }
    assert_eq!(contents(&s), before, "aborted txn left a trace");
    assert_eq!(digest(&snap(&s)), hash);
    let s = h.reopen(s);
    assert_eq!(contents(&s), before, "aborted txn reappeared after reopen");
    put_all(&s, &[(b"c", b"3")]);
    assert_eq!(contents(&s).len(), 3, "write after abort");
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
    let mut w = begin(&s);
    put(&mut w, b"uncommitted", b"x");
    drop(w);
    let s = h.reopen(s);
    assert_eq!(contents(&s), want, "reopen after an abandoned txn");
}

/// Committing a txn that did nothing, or whose writes cancel out, succeeds and changes nothing.
pub fn empty_commit<H: Harness>(h: &mut H) {
    let s = h.open();
    commit(begin(&s));
    put_all(&s, &[(b"a", b"1")]);
    commit(begin(&s));
    let mut w = begin(&s);
    put(&mut w, b"tmp", b"x");
    assert!(del(&mut w, b"tmp"));
    commit(w);
    assert_eq!(contents(&s), owned(&[(b"a", b"1")]));
    let s = h.reopen(s);
    assert_eq!(contents(&s), owned(&[(b"a", b"1")]), "after reopen");
}

/// A second `write()` on a thread that holds the write txn fails with `Busy` (no deadlock).
pub fn second_writer_on_same_thread_is_busy<H: Harness>(h: &mut H) {
    let s = h.open();
    let w = begin(&s);
    let second = s.write().map(drop);
    assert!(
        matches!(second, Err(StoreError::Busy(_))),
        "second writer on a thread: {second:?}"
    );
    drop(w);
    commit(begin(&s));
}

/// A writer on another thread waits for the current one and then sees its commit.
pub fn writers_serialize_across_threads<H: Harness>(h: &mut H)
where
    H::S: Sync,
{
    let s = h.open();
    let store = &s;
    let mut w = begin(&s);
    put(&mut w, b"k", b"first");
    thread::scope(|scope| {
        let (started, wait_started) = mpsc::channel();
        let other = scope.spawn(move || {
            let _ = started.send(());
            let mut w2 = begin(store);
            let seen = get(&w2, b"k");
            put(&mut w2, b"k", b"second");
            commit(w2);
            seen
        });
        let _ = wait_started.recv();
        thread::sleep(Duration::from_millis(30));
        commit(w);
        let seen = other
            .join()
            .unwrap_or_else(|_| panic!("second writer panicked"));
        assert_eq!(
            seen,
            Some(b"first".to_vec()),
            "second writer got in before the commit"
        );
    });
    assert_eq!(contents(&s), owned(&[(b"k", b"second")]));
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
    fn below(&mut self, n: u64) -> usize {
        (self.next() % n) as usize
    }
    fn key(&mut self) -> Vec<u8> {
        const ALPHABET: [u8; 6] = [0x00, 0x01, 0x61, 0x7f, 0x80, 0xff];
        let len = 1 + self.below(3);
        (0..len).map(|_| ALPHABET[self.below(6)]).collect()
    }
    fn bound(&mut self) -> Bound<Vec<u8>> {
        match self.below(6) {
            0 => Bound::Unbounded,
            1 => Bound::Included(Vec::new()),
            2 | 3 => Bound::Included(self.key()),
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
    let pairs = |m: &BTreeMap<Vec<u8>, Vec<u8>>| -> Pairs {
        m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    };
    for round in 0..rounds {
        let old_reader = snap(&s);
        let mut pending = model.clone();
        let mut w = begin(&s);
        for op in 0..1 + rng.below(24) {
            let at = format!("seed {seed:#x} round {round} op {op}");
            match rng.below(10) {
                0..=3 => {
                    let (k, v) = (rng.key(), rng.key()[1..].to_vec());
                    put(&mut w, &k, &v);
                    pending.insert(k, v);
                }
                4 | 5 => {
                    let k = rng.key();
                    let existed = pending.remove(&k).is_some();
                    assert_eq!(del(&mut w, &k), existed, "{at}: delete flag of {k:x?}");
                }
                6 => {
                    let k = rng.key();
                    assert_eq!(get(&w, &k), pending.get(&k).cloned(), "{at}: get {k:x?}");
                }
                _ => {
                    let (a, b, p) = (rng.bound(), rng.bound(), rng.key());
                    let dir = [Direction::Forward, Direction::Reverse][rng.below(2)];
                    let limit = [1, 2, 3, usize::MAX, usize::MAX][rng.below(5)];
                    let range = match rng.below(4) {
                        0 => KeyRange::prefix(&p[..1 + rng.below(p.len() as u64)]),
                        _ => KeyRange::new(a.as_ref().map(|x| &x[..]), b.as_ref().map(|x| &x[..])),
                    };
                    let mut want = pairs(&pending);
                    want.retain(|(k, _)| range.contains(k));
                    if dir == Direction::Reverse {
                        want.reverse();
                    }
                    want.truncate(limit);
                    let got = ok(scan_collect(&w, range.clone(), dir, limit), "scan");
                    assert_eq!(got, want, "{at}: scan {range:?} {dir:?} limit {limit}");
                }
            }
        }
        let old = pairs(&model);
        if rng.below(10) < 7 {
            commit(w);
            model = pending;
        } else {
            drop(w);
        }
        let seen = both_ways(&old_reader, KeyRange::all());
        assert_eq!(
            seen, old,
            "seed {seed:#x} round {round}: reader snapshot moved"
        );
        drop(old_reader);
        if rng.below(12) == 0 {
            s = h.reopen(s);
        }
        let at = format!("seed {seed:#x} round {round}");
        assert_eq!(
            contents(&s),
            pairs(&model),
            "{at}: store differs from model"
        );
    }
}
