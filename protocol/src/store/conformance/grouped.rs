//! Conformance of `get_each_with`, the grouped look-up.

use super::{Harness, begin, commit, del, get, ok, put, snap};
use crate::store::{MAX_KEY_LEN, ReadTxn, StoreError};

/// The values `get_each_with` lends for `keys`, with the positions it reports, checked to come
/// once each and in order.
#[track_caller]
fn grouped<T: ReadTxn + ?Sized>(t: &T, keys: &[Vec<u8>]) -> Vec<Option<Vec<u8>>> {
    let slices: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    let mut seen = Vec::new();
    ok(
        t.get_each_with(&slices, &mut |i, v| seen.push((i, v.map(<[u8]>::to_vec)))),
        "get_each_with",
    );
    assert!(
        seen.iter().map(|(i, _)| *i).eq(0..keys.len()),
        "get_each_with must report every position once, in order"
    );
    seen.into_iter().map(|(_, v)| v).collect()
}

/// Thousands of keys at once (present, missing, repeated, in scrambled order) lend what `get`
/// returns, in a read transaction and in a write transaction with pending changes; an invalid
/// key fails the call.
pub fn grouped_gets<H: Harness>(h: &mut H) {
    let s = h.open();
    let key = |i: u32| format!("grouped/{:05}", i.wrapping_mul(7919) % 6000).into_bytes();
    let mut w = begin(&s);
    for i in (0..6000).filter(|i| i % 3 != 1) {
        put(&mut w, &key(i), format!("v{i}").as_bytes());
    }
    commit(w);
    let mut probes: Vec<Vec<u8>> = (0..6200).map(key).collect();
    probes.extend((0..50).map(key));
    let r = snap(&s);
    let want: Vec<Option<Vec<u8>>> = probes.iter().map(|k| get(&r, k)).collect();
    assert_eq!(grouped(&r, &probes), want, "read transaction");
    assert!(want.iter().flatten().count() > 3000, "most probes hit");
    assert_eq!(grouped(&r, &[]), Vec::<Option<Vec<u8>>>::new(), "no keys");

    let mut w = begin(&s);
    for i in 0..300 {
        put(&mut w, &key(i), b"changed");
        del(&mut w, &key(i + 300));
    }
    let want: Vec<Option<Vec<u8>>> = probes.iter().map(|k| get(&w, k)).collect();
    assert_eq!(grouped(&w, &probes), want, "write transaction");
    drop(w);

    let too_long = vec![b'k'; MAX_KEY_LEN + 1];
    let first = key(0);
    for bad in [too_long.as_slice(), b"".as_slice()] {
        let keys = [first.as_slice(), bad];
        let outcome = r.get_each_with(&keys, &mut |_, _| {});
        assert!(
            matches!(outcome, Err(StoreError::InvalidKey { .. })),
            "an invalid key must fail the call: {outcome:?}"
        );
    }
}
