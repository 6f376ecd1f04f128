//! The conformance suite every [`Store`] backend must pass. Test code: each case panics with a
//! message naming what broke. Call [`run_all`] from a backend's tests with a [`Harness`].

use std::ops::{Bound, ControlFlow};

use super::{
    Direction, KeyRange, MAX_KEY_LEN, ReadTxn, Store, StoreError, WriteTxn, content_digest,
    scan_collect, scan_prefix_collect,
};

mod conditional;
mod grouped;
mod txns;

pub use conditional::put_if_absent_creates_only;
pub use grouped::grouped_gets;
pub use txns::{
    abort_leaves_no_trace, empty_commit, randomized_model, read_your_own_writes,
    reopen_sees_commits, second_writer_on_same_thread_is_busy, siblings_share_the_snapshot,
    snapshot_isolation, writers_serialize_across_threads,
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
    keys_of_every_length(h);
    scan_bounds(h);
    scan_prefix(h);
    scan_early_stop(h);
    read_your_own_writes(h);
    snapshot_isolation(h);
    siblings_share_the_snapshot(h);
    abort_leaves_no_trace(h);
    reopen_sees_commits(h);
    many_keys_ordered(h);
    delete_reports_existence(h);
    put_if_absent_creates_only(h);
    empty_commit(h);
    second_writer_on_same_thread_is_busy(h);
    writers_serialize_across_threads(h);
    helpers(h);
    grouped_gets(h);
    randomized_model(h, 0x5eed_0001, 60);
    randomized_model(h, 0xdead_beef_cafe, 60);
}

type Pairs = super::Entries;
type Keys = Vec<Vec<u8>>;

#[track_caller]
fn ok<T>(r: Result<T, StoreError>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected error: {e}"),
    }
}

/// `get`, checked against `get_with` (which must lend the same value, or none).
#[track_caller]
fn get<T: ReadTxn + ?Sized>(t: &T, k: &[u8]) -> Option<Vec<u8>> {
    let value = ok(t.get(k), "get");
    let mut lent = None;
    ok(
        t.get_with(k, &mut |v| lent = Some(v.map(<[u8]>::to_vec))),
        "get_with",
    );
    assert_eq!(
        lent.as_ref(),
        Some(&value),
        "get_with must lend what get returns"
    );
    let mut each = Vec::new();
    ok(
        t.get_each_with(&[k], &mut |i, v| each.push((i, v.map(<[u8]>::to_vec)))),
        "get_each_with",
    );
    assert_eq!(
        each,
        [(0, value.clone())],
        "get_each_with must lend what get returns"
    );
    value
}

#[track_caller]
fn put<W: WriteTxn>(w: &mut W, k: &[u8], v: &[u8]) {
    ok(w.put(k, v), "put")
}

#[track_caller]
fn del<W: WriteTxn>(w: &mut W, k: &[u8]) -> bool {
    ok(w.delete(k), "delete")
}

#[track_caller]
fn begin<S: Store>(s: &S) -> S::Write<'_> {
    ok(s.write(), "open write txn")
}

#[track_caller]
fn commit<W: WriteTxn>(w: W) {
    ok(w.commit(), "commit")
}

#[track_caller]
fn snap<S: Store>(s: &S) -> S::Read<'_> {
    ok(s.read(), "open read txn")
}

#[track_caller]
fn put_all<S: Store>(s: &S, pairs: &[(&[u8], &[u8])]) {
    let mut w = begin(s);
    for (k, v) in pairs {
        put(&mut w, k, v);
    }
    commit(w);
}

#[track_caller]
fn collect<T: ReadTxn + ?Sized>(t: &T, range: KeyRange<'_>, dir: Direction) -> Pairs {
    ok(scan_collect(t, range, dir, usize::MAX), "scan")
}

/// Scans `range` forward, checks that the reverse scan is its mirror image, returns the pairs.
#[track_caller]
fn both_ways<T: ReadTxn + ?Sized>(t: &T, range: KeyRange<'_>) -> Pairs {
    let fwd = collect(t, range.clone(), Direction::Forward);
    let rev = collect(t, range.clone(), Direction::Reverse);
    assert!(
        rev.iter().rev().eq(fwd.iter()),
        "reverse scan of {range:?} is not the mirror"
    );
    fwd
}

#[track_caller]
fn contents<S: Store>(s: &S) -> Pairs {
    both_ways(&snap(s), KeyRange::all())
}

fn keys(pairs: Pairs) -> Keys {
    pairs.into_iter().map(|(k, _)| k).collect()
}

fn owned(pairs: &[(&[u8], &[u8])]) -> Pairs {
    pairs
        .iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

fn digest<T: ReadTxn + ?Sized>(t: &T) -> [u8; 32] {
    ok(content_digest(t), "digest")
}

/// Basic put, get, delete across transactions.
pub fn put_get_delete<H: Harness>(h: &mut H) {
    let s = h.open();
    assert_eq!(get(&snap(&s), b"a"), None, "fresh store must be empty");
    put_all(&s, &[(b"a", b"1"), (b"b", b"2")]);
    let r = snap(&s);
    assert_eq!(
        get(&r, b"a"),
        Some(b"1".to_vec()),
        "committed put not visible"
    );
    assert_eq!(get(&r, b"b"), Some(b"2".to_vec()));
    assert_eq!(get(&r, b"c"), None, "absent key must read as None");
    drop(r);
    let mut w = begin(&s);
    assert!(
        del(&mut w, b"a"),
        "delete of a present key must report true"
    );
    commit(w);
    assert_eq!(contents(&s), owned(&[(b"b", b"2")]), "delete not applied");
}

/// A put replaces the previous value, within a txn and across txns.
pub fn overwrite<H: Harness>(h: &mut H) {
    let s = h.open();
    put_all(&s, &[(b"k", b"first")]);
    let mut w = begin(&s);
    put(&mut w, b"k", b"second");
    put(&mut w, b"k", b"third, longer");
    assert_eq!(get(&w, b"k"), Some(b"third, longer".to_vec()));
    commit(w);
    assert_eq!(
        contents(&s),
        owned(&[(b"k", b"third, longer")]),
        "overwrite"
    );
    put_all(&s, &[(b"k", b"")]);
    assert_eq!(
        contents(&s),
        owned(&[(b"k", b"")]),
        "overwrite with a shorter value"
    );
}

/// Empty keys and keys over [`MAX_KEY_LEN`] are rejected without harming the txn; keys of
/// exactly `MAX_KEY_LEN` bytes and empty values work.
pub fn key_and_value_limits<H: Harness>(h: &mut H) {
    let s = h.open();
    let (long, too_long) = (vec![0x42; MAX_KEY_LEN], vec![0x42; MAX_KEY_LEN + 1]);
    let empty = Err(StoreError::InvalidKey { len: 0 });
    let over = StoreError::InvalidKey {
        len: MAX_KEY_LEN + 1,
    };
    let mut w = begin(&s);
    assert_eq!(w.put(b"", b"v"), empty.clone(), "empty key put");
    assert_eq!(w.get(b""), empty.clone().map(|()| None), "empty key get");
    assert_eq!(w.delete(b""), empty.map(|()| false), "empty key delete");
    assert_eq!(
        w.put(&too_long, b"v"),
        Err(over.clone()),
        "overlong key put"
    );
    assert!(over.is_invalid_input());
    put(&mut w, &long, b"max");
    put(&mut w, b"e", b"");
    commit(w);
    let r = snap(&s);
    assert_eq!(get(&r, &long), Some(b"max".to_vec()));
    assert_eq!(
        get(&r, b"e"),
        Some(Vec::new()),
        "empty value must differ from absent"
    );
    assert_eq!(r.get(&too_long), Err(over.clone()), "overlong key get");
    let lent = r.get_with(&too_long, &mut |_| panic!("an overlong key lends nothing"));
    assert_eq!(lent, Err(over), "overlong key get_with");
    let lent = r.get_with(b"", &mut |_| panic!("an empty key lends nothing"));
    assert_eq!(
        lent,
        Err(StoreError::InvalidKey { len: 0 }),
        "empty key get_with"
    );
    assert_eq!(
        keys(both_ways(&r, KeyRange::all())),
        vec![long.clone(), b"e".to_vec()]
    );
}

fn big(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Values of 1 MiB round-trip, also after reopen and overwrite.
pub fn large_values<H: Harness>(h: &mut H) {
    let s = h.open();
    let (a, b) = (big(1, 1 << 20), big(2, (1 << 20) + 17));
    put_all(&s, &[(b"a", &a), (b"b", &b), (b"c", b"small")]);
    let s = h.reopen(s);
    let r = snap(&s);
    assert!(get(&r, b"a") == Some(a.clone()), "1 MiB value corrupted");
    assert!(get(&r, b"b") == Some(b), "1 MiB + 17 value corrupted");
    drop(r);
    put_all(&s, &[(b"b", b"tiny"), (b"c", &a)]);
    let want = owned(&[(b"a", &a), (b"b", b"tiny"), (b"c", &a)]);
    assert!(contents(&s) == want, "large overwrite");
}

/// Keys sort as unsigned bytes, shorter first on a common prefix, in both directions.
pub fn byte_order<H: Harness>(h: &mut H) {
    let s = h.open();
    let order: [&[u8]; 8] = [
        b"\0",
        b"\0\0",
        b"\0\x01",
        b"\x01",
        b"\x7f",
        b"\x80",
        b"\xff",
        b"\xff\xff",
    ];
    let mut w = begin(&s);
    for k in order.iter().rev() {
        put(&mut w, k, k);
    }
    commit(w);
    let want: Keys = order.iter().map(|k| k.to_vec()).collect();
    assert_eq!(keys(contents(&s)), want, "byte order");
}

/// Keys of lengths from 1 to [`MAX_KEY_LEN`] sharing long prefixes (a store may keep short and
/// long keys differently, as the memory store does around 62 bytes) read, order and delete as
/// their bytes say, before and after reopen.
pub fn keys_of_every_length<H: Harness>(h: &mut H) {
    let s = h.open();
    let mut all: Keys = Vec::new();
    for len in [
        1,
        2,
        31,
        32,
        33,
        61,
        62,
        63,
        64,
        65,
        127,
        128,
        255,
        256,
        510,
        MAX_KEY_LEN,
    ] {
        for last in [0x00, 0x5a, 0x5b, 0xff] {
            let mut k = vec![0x5a; len - 1];
            k.push(last);
            all.push(k);
        }
    }
    all.sort();
    all.dedup();
    let value = |k: &[u8]| (k.len() as u32).to_be_bytes().to_vec();
    let mut w = begin(&s);
    // Scrambled order: every eleventh key from the end, wrapping around.
    for i in 0..all.len() {
        let k = &all[(all.len() - 1 - i * 11 % all.len()) % all.len()];
        put(&mut w, k, &value(k));
    }
    commit(w);
    let r = snap(&s);
    assert_eq!(
        keys(both_ways(&r, KeyRange::all())),
        all,
        "every length in byte order"
    );
    for k in &all {
        assert_eq!(get(&r, k), Some(value(k)), "get of a {}-byte key", k.len());
    }
    drop(r);
    // Deletes every other key, then checks what is left after reopen.
    let mut w = begin(&s);
    for k in all.iter().step_by(2) {
        assert!(del(&mut w, k), "delete of a {}-byte key", k.len());
    }
    commit(w);
    let s = h.reopen(s);
    let left: Keys = all.iter().skip(1).step_by(2).cloned().collect();
    let r = snap(&s);
    assert_eq!(
        keys(both_ways(&r, KeyRange::all())),
        left,
        "after deletes and reopen"
    );
    for k in all.iter().step_by(2) {
        assert_eq!(get(&r, k), None, "deleted {}-byte key", k.len());
    }
}

/// Every combination of bound kinds, including empty, absent, overlong and inverted bounds.
pub fn scan_bounds<H: Harness>(h: &mut H) {
    let s = h.open();
    let max = vec![0x02; MAX_KEY_LEN];
    let stored: Keys = vec![
        vec![1],
        vec![2],
        vec![2, 0],
        max.clone(),
        vec![3],
        vec![5],
        vec![255],
    ];
    let mut w = begin(&s);
    for k in &stored {
        put(&mut w, k, b"v");
    }
    commit(w);
    let overlong = vec![0x02; MAX_KEY_LEN + 89];
    let points: [&[u8]; 11] = [
        b"",
        b"\0",
        b"\x01",
        b"\x02",
        b"\x02\0",
        b"\x02\x01",
        &max,
        &overlong,
        b"\x04",
        b"\xff",
        b"\xff\xff",
    ];
    let mut bounds = vec![Bound::Unbounded];
    for p in points {
        bounds.extend([Bound::Included(p), Bound::Excluded(p)]);
    }
    let r = snap(&s);
    for &start in &bounds {
        for &end in &bounds {
            let range = KeyRange::new(start, end);
            let want: Keys = stored
                .iter()
                .filter(|k| range.contains(k))
                .cloned()
                .collect();
            assert_eq!(
                keys(both_ways(&r, range)),
                want,
                "scan of {start:?}..{end:?}"
            );
        }
    }
    let named = |range| keys(both_ways(&r, range));
    assert_eq!(
        named(KeyRange::between(&[2], &[3])),
        vec![vec![2], vec![2, 0], max.clone()]
    );
    assert_eq!(
        named(KeyRange::starting_at(&[3])),
        vec![vec![3], vec![5], vec![255]]
    );
    assert_eq!(named(KeyRange::after(&[3])), vec![vec![5], vec![255]]);
    assert_eq!(named(KeyRange::before(&[2])), vec![vec![1]]);
    assert_eq!(
        named(KeyRange::between(&[3], &[2])),
        Keys::new(),
        "inverted range"
    );
}

/// Prefix scans, including prefixes made of `0xff` bytes, whose end bound is "unbounded".
pub fn scan_prefix<H: Harness>(h: &mut H) {
    let s = h.open();
    let stored: [&[u8]; 9] = [
        b"\x01\xff",
        b"\x01\xff\xff",
        b"\x02",
        b"\xfe",
        b"\xfe\xff",
        b"\xff",
        b"\xff\0",
        b"\xff\xff",
        b"\xff\xff\x01",
    ];
    let mut w = begin(&s);
    for k in stored {
        put(&mut w, k, k);
    }
    commit(w);
    let r = snap(&s);
    let prefixes: [&[u8]; 8] = [
        b"",
        b"\x01",
        b"\x01\xff",
        b"\xfe",
        b"\xff",
        b"\xff\xff",
        b"\xff\xff\xff",
        b"\x03",
    ];
    for p in prefixes {
        let want: Keys = stored
            .iter()
            .filter(|k| k.starts_with(p))
            .map(|k| k.to_vec())
            .collect();
        assert_eq!(
            keys(both_ways(&r, KeyRange::prefix(p))),
            want,
            "prefix {p:x?}"
        );
    }
    let ff = keys(both_ways(&r, KeyRange::prefix(b"\xff")));
    assert_eq!(ff.len(), 4, "prefix 0xff must reach the very last keys");
}

/// A visitor that breaks is not called again, in both directions.
pub fn scan_early_stop<H: Harness>(h: &mut H) {
    let s = h.open();
    let mut w = begin(&s);
    for i in 0u8..20 {
        put(&mut w, &[b'k', i], &[i]);
    }
    commit(w);
    let r = snap(&s);
    for (dir, want) in [
        (Direction::Forward, [0, 1, 2]),
        (Direction::Reverse, [19, 18, 17]),
    ] {
        let mut seen = Vec::new();
        let stop_at_3 = &mut |k: &[u8], _: &[u8]| {
            seen.push(k[1]);
            if seen.len() == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        };
        ok(r.scan(KeyRange::all(), dir, stop_at_3), "scan");
        assert_eq!(seen, want, "{dir:?} scan must stop right after Break");
    }
    let mut calls = 0;
    let stop_now = &mut |_: &[u8], _: &[u8]| {
        calls += 1;
        ControlFlow::Break(())
    };
    ok(
        r.scan(KeyRange::all(), Direction::Forward, stop_now),
        "scan",
    );
    assert_eq!(calls, 1, "Break on the first pair");
}

/// 10 000 keys inserted in scrambled order come back sorted both ways.
pub fn many_keys_ordered<H: Harness>(h: &mut H) {
    let s = h.open();
    let n = 10_000u64;
    let mut w = begin(&s);
    for i in 0..n {
        let k = (i * 7919) % n; // 7919 is prime, so this visits every k < n once
        put(&mut w, &k.to_be_bytes(), &k.to_le_bytes());
    }
    commit(w);
    let all = contents(&s);
    assert_eq!(all.len(), n as usize, "key count");
    for (i, (k, v)) in (0u64..).zip(&all) {
        assert_eq!(k, &i.to_be_bytes(), "key at position {i}");
        assert_eq!(v, &i.to_le_bytes(), "value at position {i}");
    }
}

/// `delete` reports whether the key existed as seen by the txn.
pub fn delete_reports_existence<H: Harness>(h: &mut H) {
    let s = h.open();
    put_all(&s, &[(b"a", b"1")]);
    let mut w = begin(&s);
    assert!(
        !del(&mut w, b"missing"),
        "delete of an absent key must report false"
    );
    assert!(del(&mut w, b"a"));
    assert!(!del(&mut w, b"a"), "second delete must report false");
    put(&mut w, b"a", b"again");
    assert!(del(&mut w, b"a"), "delete of a re-put key");
    commit(w);
    assert!(contents(&s).is_empty());
}

/// The helpers of the store module work over this backend.
pub fn helpers<H: Harness>(h: &mut H) {
    let s = h.open();
    put_all(
        &s,
        &[(b"p1", b"a"), (b"p2", b"b"), (b"p3", b"c"), (b"q", b"d")],
    );
    let r = snap(&s);
    let first_two = ok(scan_prefix_collect(&r, b"p", 2), "scan_prefix_collect");
    assert_eq!(first_two, owned(&[(b"p1", b"a"), (b"p2", b"b")]), "limit 2");
    assert!(ok(scan_prefix_collect(&r, b"p", 0), "limit 0").is_empty());
    let last = ok(
        scan_collect(&r, KeyRange::prefix(b"p"), Direction::Reverse, 1),
        "scan",
    );
    assert_eq!(last, owned(&[(b"p3", b"c")]));
    let other = h.open();
    put_all(&other, &[(b"q", b"d"), (b"p3", b"c")]);
    put_all(&other, &[(b"p2", b"b"), (b"p1", b"a")]);
    assert_eq!(
        digest(&snap(&other)),
        digest(&r),
        "digest depends on history"
    );
    put_all(&other, &[(b"q", b"D")]);
    assert_ne!(digest(&snap(&other)), digest(&r), "digest ignores values");
}
