//! The anchor of the per-hit figure: the store's own look-ups of an index query's instance
//! keys, one by one, split between threads, or in one grouped call, reading nothing else.

use threads_protocol::store::{ReadTxn, Store};

/// Counts the values found and sums their first bytes (so that each value is read).
#[derive(Default)]
struct Tally {
    found: usize,
    sum: u64,
}

impl Tally {
    fn add(&mut self, value: Option<&[u8]>) {
        if let Some(v) = value {
            self.found += 1;
            self.sum += u64::from(v.first().copied().unwrap_or(0));
        }
    }

    fn found(self) -> usize {
        std::hint::black_box(self.sum);
        self.found
    }
}

/// Looks up each key in one read transaction, touching the first byte of each value; how many
/// were found.
pub(super) fn bare_gets<S: Store>(store: &S, keys: &[Vec<u8>]) -> usize {
    let txn = store.read().expect("read");
    bare_gets_txn(&txn, keys)
}

/// [`bare_gets`] with the keys cut into `parts` contiguous parts, each looked up on its own
/// thread in a sibling of one read transaction: the look-ups of a split query alone, without
/// its index read or the hand-over of chunks.
pub(super) fn split_bare_gets<S: Store>(store: &S, keys: &[Vec<u8>], parts: usize) -> usize {
    let txn = store.read().expect("read");
    let size = keys.len().div_ceil(parts.max(1)).max(1);
    let mut chunks = keys.chunks(size);
    let first = chunks.next().unwrap_or_default();
    std::thread::scope(|scope| {
        let workers: Vec<_> = chunks
            .map(|part| {
                let sibling = txn
                    .sibling()
                    .expect("a sibling of a fresh read transaction");
                scope.spawn(move || bare_gets_txn(&*sibling, part))
            })
            .collect();
        let mut found = bare_gets_txn(&txn, first);
        for w in workers {
            found += w.join().expect("look-up thread");
        }
        found
    })
}

/// [`bare_gets`] through one `get_each_with` call on one thread (the call the query makes for
/// its groups of IDs).
pub(super) fn grouped_bare_gets<S: Store>(store: &S, keys: &[Vec<u8>]) -> usize {
    let txn = store.read().expect("read");
    let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    let mut tally = Tally::default();
    txn.get_each_with(&keys, &mut |_, v| tally.add(v))
        .expect("get_each_with");
    tally.found()
}

fn bare_gets_txn(txn: &dyn ReadTxn, keys: &[Vec<u8>]) -> usize {
    let mut tally = Tally::default();
    for key in keys {
        txn.get_with(key, &mut |v| tally.add(v)).expect("get");
    }
    tally.found()
}
