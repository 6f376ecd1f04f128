//! Conformance of `put_if_absent`, the write that only creates.

use super::{Harness, begin, commit, contents, del, get, ok, owned, put, put_all, snap};
use crate::store::{MAX_KEY_LEN, StoreError, WriteTxn};

#[track_caller]
fn put_new<W: WriteTxn>(w: &mut W, k: &[u8], v: &[u8]) -> Option<Vec<u8>> {
    ok(w.put_if_absent(k, v), "put_if_absent")
}

/// `put_if_absent` writes a key that holds nothing, in the transaction's own view (its puts and
/// deletes over the committed state), and returns the value of a key that holds one without
/// writing; an empty value is a value; invalid keys and values fail as `put`'s do; an aborted
/// transaction leaves nothing.
pub fn put_if_absent_creates_only<H: Harness>(h: &mut H) {
    let s = h.open();
    put_all(&s, &[(b"held", b"old"), (b"gone", b"x")]);
    let mut w = begin(&s);
    assert_eq!(put_new(&mut w, b"new", b"1"), None, "a new key is written");
    assert_eq!(get(&w, b"new"), Some(b"1".to_vec()));
    assert_eq!(
        put_new(&mut w, b"new", b"2"),
        Some(b"1".to_vec()),
        "a key this transaction wrote is held"
    );
    assert_eq!(
        get(&w, b"new"),
        Some(b"1".to_vec()),
        "a held key is not written"
    );
    assert_eq!(
        put_new(&mut w, b"held", b"2"),
        Some(b"old".to_vec()),
        "a committed key is held"
    );
    assert!(del(&mut w, b"gone"));
    assert_eq!(
        put_new(&mut w, b"gone", b"back"),
        None,
        "a key this transaction deleted is absent"
    );
    assert_eq!(put_new(&mut w, b"empty", b""), None);
    assert_eq!(
        put_new(&mut w, b"empty", b"v"),
        Some(Vec::new()),
        "an empty value is held"
    );
    let over = vec![0x42; MAX_KEY_LEN + 1];
    assert_eq!(
        w.put_if_absent(b"", b"v"),
        Err(StoreError::InvalidKey { len: 0 }),
        "empty key"
    );
    assert_eq!(
        w.put_if_absent(&over, b"v"),
        Err(StoreError::InvalidKey {
            len: MAX_KEY_LEN + 1
        }),
        "overlong key"
    );
    commit(w);
    let pairs: [(&[u8], &[u8]); 4] = [
        (b"empty", b""),
        (b"gone", b"back"),
        (b"held", b"old"),
        (b"new", b"1"),
    ];
    let expected = owned(&pairs);
    assert_eq!(contents(&s), expected);
    let mut w = begin(&s);
    assert_eq!(put_new(&mut w, b"later", b"1"), None);
    put(&mut w, b"new", b"changed");
    drop(w);
    assert_eq!(
        contents(&s),
        expected,
        "an aborted transaction leaves nothing"
    );
    assert_eq!(get(&snap(&s), b"later"), None);
}
