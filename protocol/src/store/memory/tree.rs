//! The memory store's committed map: a persistent B+tree from byte keys to shared values.
//!
//! Nodes sit behind reference counts, so cloning a [`Tree`] (a read snapshot) costs one count,
//! and a change copies only the nodes on its path that another snapshot still holds; nodes with
//! one owner are changed in place. Keys and values sit in fixed-capacity arrays inside their
//! node, so a search reads the node and nothing else.
//!
//! Why not a crate's persistent map: an index query at a million instances looks up thousands
//! of keys scattered over the tree, and each look-up is a chain of cache misses (one or more
//! per level). [`Tree::get_each`] descends the tree for a group of keys in step, so that the
//! misses of the group overlap instead of following one another: on this project's 2-core VM
//! the 10k look-ups of an index query at 1M instances took about half the time they take one
//! by one (spec/storage.md §4). The persistent maps we know (`imbl`, which this replaced,
//! `rpds`) do not expose their nodes, so none of them can do that.

use std::cmp::Ordering;
use std::fmt;
use std::ops::Bound;
use std::sync::Arc;

use arrayvec::ArrayVec;

use super::map_key::MapKey;

/// A stored value, shared between snapshots.
pub(super) type Bytes = Arc<[u8]>;

/// Most keys a leaf holds, and most separator keys a branch holds. A node takes one more for a
/// moment before it splits.
const CAP: usize = 16;
/// A leaf with fewer keys, or a branch with fewer children, than this (other than the root)
/// is merged with a neighbour or takes some of its entries after a removal.
const MIN: usize = CAP / 4;
/// Keys [`Tree::get_each`] descends in step.
const GROUP: usize = 16;

/// A persistent ordered map from byte keys to [`Bytes`].
#[derive(Clone, Default)]
pub(super) struct Tree {
    /// `None` when empty; otherwise every leaf is at the same depth below it.
    root: Option<Arc<Node>>,
}

/// A node: both kinds are about the same size and sit inline behind one `Arc`, so a level of
/// a descent follows one pointer.
#[derive(Clone)]
enum Node {
    Leaf(Leaf),
    Branch(Branch),
}

/// Keys in ascending order and their values.
#[derive(Clone, Default)]
struct Leaf {
    keys: ArrayVec<MapKey, { CAP + 1 }>,
    vals: ArrayVec<Bytes, { CAP + 1 }>,
}

/// Children and the keys between them: every key under `kids[i]` is below `keys[i]`, and every
/// key under `kids[i + 1]` is at or above it (so `kids.len() == keys.len() + 1`).
#[derive(Clone)]
struct Branch {
    keys: ArrayVec<MapKey, { CAP + 1 }>,
    kids: ArrayVec<Arc<Node>, { CAP + 2 }>,
}

/// What a change below a node hands up when the node had to split: the first key of the new
/// right half and the half itself.
type Split = Option<(MapKey, Arc<Node>)>;

/// Where `key` is in `keys` (ascending): `Ok` with its position, or `Err` with the position it
/// would take. Each step compares the whole key once and an equal key ends the search, which
/// costs fewer comparisons of long keys than `std`'s search (always to the end, plus one).
fn search(keys: &[MapKey], key: &[u8]) -> Result<usize, usize> {
    let (mut low, mut high) = (0, keys.len());
    while low < high {
        let mid = low + (high - low) / 2;
        match keys[mid].as_slice().cmp(key) {
            Ordering::Less => low = mid + 1,
            Ordering::Greater => high = mid,
            Ordering::Equal => return Ok(mid),
        }
    }
    Err(low)
}

/// How many of `keys` are below `key`.
fn below(keys: &[MapKey], key: &[u8]) -> usize {
    search(keys, key).unwrap_or_else(|i| i)
}

/// How many of `keys` are at or below `key`.
fn up_to(keys: &[MapKey], key: &[u8]) -> usize {
    search(keys, key).map_or_else(|i| i, |i| i + 1)
}

impl Leaf {
    fn find(&self, key: &[u8]) -> Result<usize, usize> {
        search(&self.keys, key)
    }

    /// Splits off the upper half once the leaf is over capacity; only the last [`MIN`] keys
    /// when the key just added is the last (`append`), so that keys added in ascending order
    /// (IDs that grow with time, the op log) leave full leaves behind, not half-full ones.
    fn split_if_full(&mut self, append: bool) -> Split {
        if self.keys.len() <= CAP {
            return None;
        }
        let mid = if append {
            self.keys.len() - MIN
        } else {
            self.keys.len() / 2
        };
        let right = Leaf {
            keys: self.keys.drain(mid..).collect(),
            vals: self.vals.drain(mid..).collect(),
        };
        Some((right.keys[0].clone(), Arc::new(Node::Leaf(right))))
    }
}

impl Branch {
    /// The child whose keys may include `key`: how many separators are at or below it.
    fn child(&self, key: &[u8]) -> usize {
        up_to(&self.keys, key)
    }

    /// Splits off the upper half once the branch is over capacity (only the last [`MIN`]
    /// children when the child just added is the last, as for leaves); the separator between
    /// the halves moves up.
    fn split_if_full(&mut self, append: bool) -> Split {
        if self.keys.len() <= CAP {
            return None;
        }
        let mid = if append {
            self.kids.len() - MIN - 1
        } else {
            self.keys.len() / 2
        };
        let right_keys: ArrayVec<MapKey, { CAP + 1 }> = self.keys.drain(mid + 1..).collect();
        let up = self.keys.pop()?;
        let right = Branch {
            keys: right_keys,
            kids: self.kids.drain(mid + 1..).collect(),
        };
        Some((up, Arc::new(Node::Branch(right))))
    }

    /// Mends `kids[i]` after a removal left it under [`MIN`]: merges it with a neighbour, or
    /// evens their entries out when together they would not fit one node.
    fn mend(&mut self, i: usize) {
        if self.kids.len() < 2 {
            return;
        }
        let l = if i > 0 { i - 1 } else { i };
        let right = self.kids.remove(l + 1);
        let sep = self.keys.remove(l);
        let right = Arc::unwrap_or_clone(right);
        let left = Arc::make_mut(&mut self.kids[l]);
        let split = match (left, right) {
            (Node::Leaf(left), Node::Leaf(right)) => {
                let mut keys: Vec<MapKey> = left.keys.drain(..).collect();
                let mut vals: Vec<Bytes> = left.vals.drain(..).collect();
                keys.extend(right.keys);
                vals.extend(right.vals);
                let at = if keys.len() <= CAP {
                    keys.len()
                } else {
                    keys.len() / 2
                };
                let (rk, rv) = (keys.split_off(at), vals.split_off(at));
                left.keys.extend(keys);
                left.vals.extend(vals);
                (!rk.is_empty()).then(|| {
                    let right = Leaf {
                        keys: rk.into_iter().collect(),
                        vals: rv.into_iter().collect(),
                    };
                    (right.keys[0].clone(), Node::Leaf(right))
                })
            }
            (Node::Branch(left), Node::Branch(right)) => {
                let mut keys: Vec<MapKey> = left.keys.drain(..).collect();
                let mut kids: Vec<Arc<Node>> = left.kids.drain(..).collect();
                keys.push(sep);
                keys.extend(right.keys);
                kids.extend(right.kids);
                if keys.len() <= CAP {
                    left.keys.extend(keys);
                    left.kids.extend(kids);
                    None
                } else {
                    let mid = keys.len() / 2;
                    let rk = keys.split_off(mid + 1);
                    let up = keys.pop();
                    let rkids = kids.split_off(mid + 1);
                    left.keys.extend(keys);
                    left.kids.extend(kids);
                    up.map(|up| {
                        let right = Branch {
                            keys: rk.into_iter().collect(),
                            kids: rkids.into_iter().collect(),
                        };
                        (up, Node::Branch(right))
                    })
                }
            }
            // Cannot happen (every leaf is at one depth, so siblings are of one kind): the pair
            // goes back unchanged.
            (_, right) => Some((sep, right)),
        };
        if let Some((sep, right)) = split {
            self.keys.insert(l, sep);
            self.kids.insert(l + 1, Arc::new(right));
        }
    }
}

impl Node {
    /// Keys of a leaf, children of a branch: what [`MIN`] bounds.
    fn size(&self) -> usize {
        match self {
            Node::Leaf(l) => l.keys.len(),
            Node::Branch(b) => b.kids.len(),
        }
    }

    /// Inserts or replaces; the value replaced, and the split this node made, if any.
    fn insert(&mut self, key: MapKey, val: Bytes) -> (Option<Bytes>, Split) {
        match self {
            Node::Leaf(leaf) => match leaf.find(key.as_slice()) {
                Ok(i) => (Some(std::mem::replace(&mut leaf.vals[i], val)), None),
                Err(i) => {
                    leaf.keys.insert(i, key);
                    leaf.vals.insert(i, val);
                    (None, leaf.split_if_full(i + 1 == leaf.keys.len()))
                }
            },
            Node::Branch(branch) => {
                let i = branch.child(key.as_slice());
                let (old, split) = Arc::make_mut(&mut branch.kids[i]).insert(key, val);
                match split {
                    Some((sep, right)) => {
                        branch.keys.insert(i, sep);
                        branch.kids.insert(i + 1, right);
                        (old, branch.split_if_full(i + 2 == branch.kids.len()))
                    }
                    None => (old, None),
                }
            }
        }
    }

    /// Removes `key`; its value, if it was there.
    fn remove(&mut self, key: &[u8]) -> Option<Bytes> {
        match self {
            Node::Leaf(leaf) => {
                let i = leaf.find(key).ok()?;
                leaf.keys.remove(i);
                Some(leaf.vals.remove(i))
            }
            Node::Branch(branch) => {
                let i = branch.child(key);
                let kid = Arc::make_mut(&mut branch.kids[i]);
                let old = kid.remove(key);
                if kid.size() < MIN {
                    branch.mend(i);
                }
                old
            }
        }
    }
}

impl Tree {
    /// The value stored under `key`.
    pub(super) fn get(&self, key: &[u8]) -> Option<&Bytes> {
        let mut node = self.root.as_deref()?;
        loop {
            match node {
                Node::Branch(b) => node = &b.kids[b.child(key)],
                Node::Leaf(l) => return l.find(key).ok().map(|i| &l.vals[i]),
            }
        }
    }

    /// Calls `found` with the position in `keys` and the value (if any) of each key, in order.
    /// Groups of keys descend the tree level by level together: each level's nodes are
    /// touched for the whole group before any is searched, so their cache misses overlap.
    pub(super) fn get_each(&self, keys: &[&[u8]], found: &mut dyn FnMut(usize, Option<&Bytes>)) {
        let Some(root) = self.root.as_deref() else {
            (0..keys.len()).for_each(|i| found(i, None));
            return;
        };
        for (g, group) in keys.chunks(GROUP).enumerate() {
            let mut nodes: ArrayVec<&Node, GROUP> = group.iter().map(|_| root).collect();
            // All leaves are at one depth: the group reaches them together.
            while matches!(nodes.first(), Some(Node::Branch(_))) {
                touch(&nodes);
                for (node, key) in nodes.iter_mut().zip(group) {
                    if let Node::Branch(b) = node {
                        *node = &b.kids[b.child(key)];
                    }
                }
            }
            touch(&nodes);
            let vals: ArrayVec<Option<&Bytes>, GROUP> = nodes
                .iter()
                .zip(group)
                .map(|(node, key)| match node {
                    Node::Leaf(l) => l.find(key).ok().map(|i| &l.vals[i]),
                    Node::Branch(_) => None,
                })
                .collect();
            // The first byte of each value, for the same reason.
            let first: usize = vals
                .iter()
                .flatten()
                .map(|v| usize::from(v.first().copied().unwrap_or(0)))
                .sum();
            std::hint::black_box(first);
            for (i, v) in vals.into_iter().enumerate() {
                found(g * GROUP + i, v);
            }
        }
    }

    /// Inserts or replaces the value under `key`; the value replaced.
    pub(super) fn insert(&mut self, key: MapKey, val: Bytes) -> Option<Bytes> {
        let root = self
            .root
            .get_or_insert_with(|| Arc::new(Node::Leaf(Leaf::default())));
        let (old, split) = Arc::make_mut(root).insert(key, val);
        if let Some((sep, right)) = split {
            let left = root.clone();
            let mut keys = ArrayVec::new();
            keys.push(sep);
            let mut kids = ArrayVec::new();
            kids.push(left);
            kids.push(right);
            *root = Arc::new(Node::Branch(Branch { keys, kids }));
        }
        old
    }

    /// Removes `key`; its value, if it was there. (When it was not, the nodes on its path that
    /// a snapshot shares are copied all the same: callers remove keys they know are there.)
    pub(super) fn remove(&mut self, key: &[u8]) -> Option<Bytes> {
        let root = self.root.as_mut()?;
        let node = Arc::make_mut(root);
        let old = node.remove(key);
        match node {
            Node::Leaf(l) if l.keys.is_empty() => self.root = None,
            Node::Branch(b) if b.kids.len() == 1 => {
                let only = b.kids.pop();
                self.root = only;
            }
            _ => {}
        }
        old
    }

    /// The pairs from `start` on, walking up (`forward`) or down, in key order.
    pub(super) fn range_from(&self, start: Bound<&[u8]>, forward: bool) -> Range<'_> {
        let mut range = Range {
            path: Vec::new(),
            leaf: None,
            pos: 0,
            forward,
        };
        let Some(mut node) = self.root.as_deref() else {
            return range;
        };
        loop {
            match node {
                Node::Branch(b) => {
                    let i = match (start, forward) {
                        (Bound::Unbounded, true) => 0,
                        (Bound::Unbounded, false) => b.kids.len() - 1,
                        (Bound::Excluded(k), false) => below(&b.keys, k),
                        (Bound::Included(k) | Bound::Excluded(k), _) => b.child(k),
                    };
                    range.path.push((b, i));
                    node = &b.kids[i];
                }
                Node::Leaf(l) => {
                    range.pos = match (start, forward) {
                        (Bound::Unbounded, true) => 0,
                        (Bound::Unbounded, false) => l.keys.len(),
                        (Bound::Included(k), true) | (Bound::Excluded(k), false) => {
                            below(&l.keys, k)
                        }
                        (Bound::Excluded(k), true) | (Bound::Included(k), false) => {
                            up_to(&l.keys, k)
                        }
                    };
                    range.leaf = Some(l);
                    return range;
                }
            }
        }
    }
}

/// Makes the CPU fetch each node's length and middle key (where a binary search starts) now,
/// all at once.
fn touch(nodes: &[&Node]) {
    let sum: usize = nodes
        .iter()
        .map(|node| {
            let keys = match node {
                Node::Leaf(l) => &l.keys,
                Node::Branch(b) => &b.keys,
            };
            keys.get(keys.len() / 2).map_or(0, |k| k.as_slice().len())
        })
        .sum();
    std::hint::black_box(sum);
}

/// An iterator over a [`Tree`]'s pairs in one direction from a starting bound.
pub(super) struct Range<'a> {
    /// The branches above the current leaf and the child taken in each.
    path: Vec<(&'a Branch, usize)>,
    leaf: Option<&'a Leaf>,
    /// Forward: the next key's position; backward: one past it.
    pos: usize,
    forward: bool,
}

impl<'a> Range<'a> {
    /// Moves to the next leaf in the walking direction; `false` at the end of the tree.
    fn next_leaf(&mut self) -> bool {
        while let Some((branch, i)) = self.path.pop() {
            let next = if self.forward {
                Some(i + 1).filter(|&n| n < branch.kids.len())
            } else {
                i.checked_sub(1)
            };
            let Some(next) = next else { continue };
            self.path.push((branch, next));
            let mut node: &'a Node = &branch.kids[next];
            loop {
                match node {
                    Node::Branch(b) => {
                        let i = if self.forward { 0 } else { b.kids.len() - 1 };
                        self.path.push((b, i));
                        node = &b.kids[i];
                    }
                    Node::Leaf(l) => {
                        self.leaf = Some(l);
                        self.pos = if self.forward { 0 } else { l.keys.len() };
                        return true;
                    }
                }
            }
        }
        self.leaf = None;
        false
    }
}

impl<'a> Iterator for Range<'a> {
    type Item = (&'a [u8], &'a Bytes);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let leaf = self.leaf?;
            if self.forward && self.pos < leaf.keys.len() {
                self.pos += 1;
                let i = self.pos - 1;
                return Some((leaf.keys[i].as_slice(), &leaf.vals[i]));
            }
            if !self.forward && self.pos > 0 {
                self.pos -= 1;
                return Some((leaf.keys[self.pos].as_slice(), &leaf.vals[self.pos]));
            }
            if !self.next_leaf() {
                return None;
            }
        }
    }
}

impl fmt::Debug for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tree").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
