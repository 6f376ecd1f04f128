//! [`ChangeMap`]: changes (a value or a deletion) layered over another store's state, and
//! [`Layered`], the merge of such layers in a scan.
//!
//! A disk store that acknowledges writes from a write-ahead log keeps the writes not yet
//! applied to its files in a `ChangeMap` that readers snapshot for O(1) and read over the
//! files (the LMDB store of `threads-driver-tokio`). The map is the memory store's persistent
//! tree, so a snapshot taken while writers go on costs one reference count.

use std::cmp::Ordering;
use std::ops::Bound;

use super::map_key::MapKey;
use super::tree::{Bytes, Range, Tree};
use crate::store::{Bounds, Direction};

/// Marks a stored value as a deletion.
const DELETED: u8 = 0;
/// Marks a stored value as a value (its bytes follow the mark).
const PUT: u8 = 1;

/// A persistent ordered map from keys to changes: `Some(value)` or `None` (deleted). Cloning
/// is a snapshot: O(1), unaffected by later changes to the original.
#[derive(Clone, Default)]
pub struct ChangeMap {
    tree: Tree,
    len: usize,
    bytes: usize,
}

impl std::fmt::Debug for ChangeMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeMap")
            .field("len", &self.len)
            .field("bytes", &self.bytes)
            .finish()
    }
}

fn decode(stored: &Bytes) -> Option<&[u8]> {
    match stored.split_first() {
        Some((&PUT, value)) => Some(value),
        _ => None,
    }
}

impl ChangeMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keys changed.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no key is changed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Key and value bytes of the changes (deletions count their key).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The change of `key`: `None` when unchanged, `Some(None)` when deleted, `Some(Some(v))`
    /// when set to `v`.
    pub fn get(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        self.tree.get(key).map(decode)
    }

    /// Records that `key` now holds `value` (`None`: deleted), replacing an earlier change.
    pub fn set(&mut self, key: &[u8], value: Option<&[u8]>) {
        // One allocation: the mark and the value go straight into the shared slice.
        let stored: Bytes = match value {
            Some(v) => std::iter::once(PUT).chain(v.iter().copied()).collect(),
            None => Bytes::from([DELETED]),
        };
        self.insert(MapKey::from(key), stored);
    }

    fn insert(&mut self, key: MapKey, stored: Bytes) {
        let added = key.as_slice().len() + stored.len() - 1;
        let klen = key.as_slice().len();
        match self.tree.insert(key, stored) {
            Some(old) => self.bytes = self.bytes + added - (klen + old.len() - 1),
            None => {
                self.len += 1;
                self.bytes += added;
            }
        }
    }

    /// Adds every change of `newer` over this map's (the later change of a key wins), sharing
    /// the changes' bytes instead of copying them.
    pub fn absorb(&mut self, newer: &ChangeMap) {
        for (k, stored) in newer.tree.range_from(Bound::Unbounded, true) {
            self.insert(MapKey::from(k), stored.clone());
        }
    }

    /// The changes whose keys fall in `bounds`, in `dir` order.
    pub fn range<'a>(&'a self, bounds: Bounds<'a>, dir: Direction) -> Changes<'a> {
        let forward = dir == Direction::Forward;
        let start = if forward { bounds.0 } else { bounds.1 };
        Changes {
            inner: self.tree.range_from(start, forward),
            bounds,
            forward,
        }
    }

    /// Every change, in ascending key order.
    pub fn iter(&self) -> Changes<'_> {
        self.range((Bound::Unbounded, Bound::Unbounded), Direction::Forward)
    }
}

/// The changes of a [`ChangeMap`] in a range: `(key, Some(value))` or `(key, None)` (deleted).
pub struct Changes<'a> {
    inner: Range<'a>,
    bounds: Bounds<'a>,
    forward: bool,
}

impl<'a> Iterator for Changes<'a> {
    type Item = (&'a [u8], Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        let (k, v) = self.inner.next()?;
        let inside = match (self.forward, self.bounds) {
            (true, (_, Bound::Included(end))) => k <= end,
            (true, (_, Bound::Excluded(end))) => k < end,
            (false, (Bound::Included(start), _)) => k >= start,
            (false, (Bound::Excluded(start), _)) => k > start,
            _ => true,
        };
        inside.then(|| (k, decode(v)))
    }
}

/// Two ordered streams of changes merged into one: on equal keys the upper layer's change
/// wins, and deletions are kept (so that they can hide a layer further down). Both streams
/// must be in the order `forward` says.
pub struct Layered<'a, U, L>
where
    U: Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    L: Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
{
    upper: std::iter::Peekable<U>,
    lower: std::iter::Peekable<L>,
    forward: bool,
}

impl<'a, U, L> Layered<'a, U, L>
where
    U: Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    L: Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
{
    /// `upper` over `lower`, both walking up (`forward`) or down.
    pub fn new(upper: U, lower: L, forward: bool) -> Self {
        Layered {
            upper: upper.peekable(),
            lower: lower.peekable(),
            forward,
        }
    }
}

impl<'a, U, L> Iterator for Layered<'a, U, L>
where
    U: Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    L: Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
{
    type Item = (&'a [u8], Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        let order = match (self.upper.peek(), self.lower.peek()) {
            (None, None) => return None,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((u, _)), Some((l, _))) if self.forward => u.cmp(l),
            (Some((u, _)), Some((l, _))) => l.cmp(u),
        };
        match order {
            Ordering::Less => self.upper.next(),
            Ordering::Equal => {
                self.lower.next();
                self.upper.next()
            }
            Ordering::Greater => self.lower.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(m: &ChangeMap, dir: Direction) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        m.range((Bound::Unbounded, Bound::Unbounded), dir)
            .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
            .collect()
    }

    #[test]
    fn changes_replace_and_count_their_bytes() {
        let mut m = ChangeMap::new();
        m.set(b"b", Some(b"22"));
        m.set(b"a", None);
        assert_eq!((m.len(), m.bytes()), (2, 4));
        m.set(b"b", Some(b"3"));
        assert_eq!((m.len(), m.bytes()), (2, 3));
        assert_eq!(m.get(b"a"), Some(None));
        assert_eq!(m.get(b"b"), Some(Some(&b"3"[..])));
        assert_eq!(m.get(b"c"), None);
        let snapshot = m.clone();
        m.set(b"b", None);
        assert_eq!(snapshot.get(b"b"), Some(Some(&b"3"[..])));
        assert_eq!(
            all(&m, Direction::Reverse),
            vec![(b"b".to_vec(), None), (b"a".to_vec(), None)]
        );
    }

    #[test]
    fn absorbing_keeps_the_newer_change() {
        let mut older = ChangeMap::new();
        older.set(b"a", Some(b"1"));
        older.set(b"b", Some(b"2"));
        let mut newer = ChangeMap::new();
        newer.set(b"b", None);
        newer.set(b"c", Some(b"33"));
        older.absorb(&newer);
        assert_eq!(
            all(&older, Direction::Forward),
            vec![
                (b"a".to_vec(), Some(b"1".to_vec())),
                (b"b".to_vec(), None),
                (b"c".to_vec(), Some(b"33".to_vec()))
            ]
        );
        assert_eq!((older.len(), older.bytes()), (3, 6));
    }

    #[test]
    fn a_range_stops_at_its_far_bound() {
        let mut m = ChangeMap::new();
        for k in [b"a", b"b", b"c", b"d"] {
            m.set(k, Some(k));
        }
        let keys = |b: Bounds<'_>, d| m.range(b, d).map(|(k, _)| k.to_vec()).collect::<Vec<_>>();
        let b = (Bound::Included(&b"b"[..]), Bound::Excluded(&b"d"[..]));
        assert_eq!(
            keys(b, Direction::Forward),
            vec![b"b".to_vec(), b"c".to_vec()]
        );
        assert_eq!(
            keys(b, Direction::Reverse),
            vec![b"c".to_vec(), b"b".to_vec()]
        );
    }

    #[test]
    fn the_upper_layer_wins_and_keeps_its_deletions() {
        let upper: Vec<(&[u8], Option<&[u8]>)> = vec![(b"b", None), (b"c", Some(b"new"))];
        let lower: Vec<(&[u8], Option<&[u8]>)> =
            vec![(b"a", Some(b"1")), (b"b", Some(b"2")), (b"c", Some(b"3"))];
        let merged: Vec<_> = Layered::new(upper.into_iter(), lower.into_iter(), true).collect();
        assert_eq!(
            merged,
            vec![
                (&b"a"[..], Some(&b"1"[..])),
                (&b"b"[..], None),
                (&b"c"[..], Some(&b"new"[..]))
            ]
        );
        let upper: Vec<(&[u8], Option<&[u8]>)> = vec![(b"c", None), (b"a", Some(b"x"))];
        let lower: Vec<(&[u8], Option<&[u8]>)> = vec![(b"b", Some(b"2")), (b"a", Some(b"1"))];
        let merged: Vec<_> = Layered::new(upper.into_iter(), lower.into_iter(), false)
            .map(|(k, _)| k)
            .collect();
        assert_eq!(merged, vec![&b"c"[..], &b"b"[..], &b"a"[..]]);
    }
}
