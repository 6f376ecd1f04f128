//! The tree against `std`'s `BTreeMap` as a model, with its structure checked after each step.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use proptest::prelude::*;

use super::{Bytes, CAP, MIN, Node, Tree};
use crate::store::memory::map_key::MapKey;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// Checks order, separators, node sizes and leaf depth; the number of keys.
fn check(tree: &Tree) -> usize {
    fn walk(
        node: &Node,
        low: Option<&[u8]>,
        high: Option<&[u8]>,
        root: bool,
        depth: usize,
        leaf_depth: &mut Option<usize>,
    ) -> usize {
        let keys: Vec<&[u8]> = match node {
            Node::Leaf(l) => l.keys.iter().map(MapKey::as_slice).collect(),
            Node::Branch(b) => b.keys.iter().map(MapKey::as_slice).collect(),
        };
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "keys out of order");
        assert!(keys.len() <= CAP, "node over capacity");
        if let (Some(low), Some(first)) = (low, keys.first()) {
            assert!(low <= *first, "key below its subtree's bound");
        }
        if let (Some(high), Some(last)) = (high, keys.last()) {
            assert!(*last < high, "key at or above its subtree's bound");
        }
        if !root {
            assert!(node.size() >= MIN, "underfull node: {}", node.size());
        }
        match node {
            Node::Leaf(l) => {
                assert_eq!(l.keys.len(), l.vals.len());
                assert_eq!(
                    *leaf_depth.get_or_insert(depth),
                    depth,
                    "leaves at two depths"
                );
                l.keys.len()
            }
            Node::Branch(b) => {
                assert_eq!(b.kids.len(), b.keys.len() + 1);
                assert!(b.kids.len() >= 2, "branch with one child");
                (0..b.kids.len())
                    .map(|i| {
                        let lo = if i == 0 { low } else { Some(keys[i - 1]) };
                        let hi = keys.get(i).copied().or(high);
                        walk(&b.kids[i], lo, hi, false, depth + 1, leaf_depth)
                    })
                    .sum()
            }
        }
    }
    match &tree.root {
        None => 0,
        Some(root) => {
            if let Node::Leaf(l) = &**root {
                assert!(!l.keys.is_empty(), "an empty tree has no root");
            }
            walk(root, None, None, true, 0, &mut None)
        }
    }
}

fn contents(tree: &Tree) -> Vec<(Vec<u8>, Vec<u8>)> {
    tree.range_from(Bound::Unbounded, true)
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

/// Checks every read of `tree` against `model`: contents both ways, gets and grouped gets of
/// `probes`, and scans from each probe with each kind of bound.
fn same(tree: &Tree, model: &Model, probes: &[Vec<u8>]) {
    assert_eq!(check(tree), model.len(), "key count");
    let want: Vec<(Vec<u8>, Vec<u8>)> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(contents(tree), want, "forward walk");
    let back: Vec<(Vec<u8>, Vec<u8>)> = tree
        .range_from(Bound::Unbounded, false)
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
    assert!(back.iter().rev().eq(want.iter()), "backward walk");
    let keys: Vec<&[u8]> = probes.iter().map(Vec::as_slice).collect();
    let mut seen = Vec::new();
    tree.get_each(&keys, &mut |i, v| seen.push((i, v.map(|v| v.to_vec()))));
    for (i, probe) in probes.iter().enumerate() {
        let expected = model.get(probe).cloned();
        assert_eq!(tree.get(probe).map(|v| v.to_vec()), expected, "get");
        assert_eq!(seen.get(i), Some(&(i, expected)), "get_each");
    }
    assert_eq!(seen.len(), probes.len(), "get_each calls");
    for probe in probes.iter().take(8) {
        let p = probe.as_slice();
        for (start, forward) in [
            (Bound::Included(p), true),
            (Bound::Excluded(p), true),
            (Bound::Included(p), false),
            (Bound::Excluded(p), false),
        ] {
            let got: Vec<Vec<u8>> = tree
                .range_from(start, forward)
                .take(40)
                .map(|(k, _)| k.to_vec())
                .collect();
            let want: Vec<Vec<u8>> = if forward {
                model
                    .range::<[u8], _>((start, Bound::Unbounded))
                    .take(40)
                    .map(|(k, _)| k.clone())
                    .collect()
            } else {
                model
                    .range::<[u8], _>((Bound::Unbounded, start))
                    .rev()
                    .take(40)
                    .map(|(k, _)| k.clone())
                    .collect()
            };
            assert_eq!(got, want, "range from {start:?} forward {forward}");
        }
    }
}

/// A key from a small number: several lengths and a long shared prefix, as the stores' keys
/// have, so that keys collide often and nodes fill.
fn key(n: u32) -> Vec<u8> {
    let mut k = b"thread-state/0123456789abcdef0123456789/".to_vec();
    k.extend_from_slice(&(n % 4096).to_be_bytes()[2..]);
    k.extend(std::iter::repeat_n(b'x', (n % 7) as usize * 5));
    if n.is_multiple_of(11) {
        // Longer than a key held inline.
        k.extend(std::iter::repeat_n(b'y', 40));
    }
    k
}

fn val(n: u32, round: u32) -> Bytes {
    Arc::from(format!("{n}:{round}").into_bytes())
}

#[derive(Debug, Clone)]
enum Op {
    Put(u32),
    Remove(u32),
    /// Keeps a snapshot, checked at the end.
    Snapshot,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0u32..3000).prop_map(Op::Put),
        4 => (0u32..3000).prop_map(Op::Remove),
        1 => Just(Op::Snapshot),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random puts and removes keep the tree equal to the model, and snapshots taken on the way
    /// keep what they saw.
    #[test]
    fn follows_the_model(ops in proptest::collection::vec(op(), 1..3000)) {
        let mut tree = Tree::default();
        let mut model = Model::new();
        let mut snapshots = Vec::new();
        for (round, op) in (0u32..).zip(&ops) {
            match *op {
                Op::Put(n) => {
                    let old = tree.insert(MapKey::from(&key(n)[..]), val(n, round));
                    let was = model.insert(key(n), val(n, round).to_vec());
                    prop_assert_eq!(old.map(|v| v.to_vec()), was);
                }
                Op::Remove(n) => {
                    let old = tree.remove(&key(n));
                    prop_assert_eq!(old.map(|v| v.to_vec()), model.remove(&key(n)));
                }
                Op::Snapshot => snapshots.push((tree.clone(), model.clone())),
            }
        }
        let probes: Vec<Vec<u8>> = (0..200).map(|i| key(i * 15 + 1)).collect();
        same(&tree, &model, &probes);
        for (snapshot, seen) in &snapshots {
            same(snapshot, seen, &probes[..20]);
        }
    }
}

/// Tens of thousands of keys (three levels), removed again in an order that empties every
/// part of the tree, with a snapshot that must not move.
#[test]
fn grows_and_shrinks_through_every_level() {
    let mut tree = Tree::default();
    let mut model = Model::new();
    let n = 40_000u32;
    for i in 0..n {
        let k = (i.wrapping_mul(7919) % n).to_be_bytes();
        tree.insert(MapKey::from(&k[..]), val(i, 0));
        model.insert(k.to_vec(), val(i, 0).to_vec());
    }
    let probes: Vec<Vec<u8>> = (0..n + 40)
        .step_by(97)
        .map(|i| i.to_be_bytes().to_vec())
        .collect();
    same(&tree, &model, &probes);
    let full = (tree.clone(), model.clone());
    for i in (0..n)
        .filter(|i| i % 5 != 0)
        .chain((0..n).filter(|i| i % 5 == 0))
    {
        let k = i.to_be_bytes();
        assert_eq!(tree.remove(&k).map(|v| v.to_vec()), model.remove(&k[..]));
        if i.is_multiple_of(4999) {
            same(&tree, &model, &probes);
        }
    }
    same(&tree, &model, &probes);
    assert!(tree.root.is_none(), "an emptied tree drops its root");
    same(&full.0, &full.1, &probes);
    assert_eq!(tree.remove(b"gone"), None);
}

/// How many leaves the tree has.
fn leaves(tree: &Tree) -> usize {
    fn count(node: &Node) -> usize {
        match node {
            Node::Leaf(_) => 1,
            Node::Branch(b) => b.kids.iter().map(|k| count(k)).sum(),
        }
    }
    tree.root.as_deref().map_or(0, count)
}

/// Ascending inserts (op-log appends) fill their leaves; an empty tree's reads.
#[test]
fn ascending_inserts_and_the_empty_tree() {
    let mut tree = Tree::default();
    let model = Model::new();
    same(&tree, &model, &[b"a".to_vec(), Vec::new()]);
    let mut model = Model::new();
    for i in 0..5_000u32 {
        let k = i.to_be_bytes();
        tree.insert(MapKey::from(&k[..]), val(i, 1));
        model.insert(k.to_vec(), val(i, 1).to_vec());
    }
    let probes: Vec<Vec<u8>> = (0..5_100u32)
        .step_by(13)
        .map(|i| i.to_be_bytes().to_vec())
        .collect();
    same(&tree, &model, &probes);
    let per_leaf = 5_000 / leaves(&tree);
    assert!(per_leaf >= CAP - MIN, "{per_leaf} keys per leaf");
}
