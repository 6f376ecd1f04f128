//! The two-tier CID index: records are found by CID whether their entry is still in the
//! journal or already in the sorted index, after a reopen, after a failed commit, and none are
//! left behind when a thread is deleted.

mod common;

use common::{config, converged, host, net, shared, total};
use std::ops::ControlFlow;
use threads_protocol::Cid;
use threads_protocol::engine::layout::{TAG_CID, TAG_CID_JOURNAL};
use threads_protocol::engine::{AcceptAll, Config, Host, NewThread, Time};
use threads_protocol::id::ThreadId;
use threads_protocol::store::memory::{FaultOp, FaultyStore, MemoryStore};
use threads_protocol::store::{Direction, KeyRange, ReadTxn, Store};

type TestHost = Host<FaultyStore<MemoryStore>, AcceptAll>;

fn journal_max(max: usize) -> Config {
    Config {
        cid_journal_max: max,
        ..config()
    }
}

/// A host on a fresh store, with one thread.
fn one_host(max: usize) -> (TestHost, FaultyStore<MemoryStore>, ThreadId) {
    let store = FaultyStore::new(MemoryStore::new());
    let mut h = host(store.clone(), AcceptAll, 7, journal_max(max));
    let t = h.create_thread(Time(0), NewThread::default()).unwrap().id;
    (h, store, t)
}

/// Keys stored under a one-byte tag.
fn count(store: &impl Store, tag: u8) -> usize {
    let txn = store.read().unwrap();
    let mut n = 0;
    txn.scan(KeyRange::prefix(&[tag]), Direction::Forward, &mut |_, _| {
        n += 1;
        ControlFlow::Continue(())
    })
    .unwrap();
    n
}

/// Writes `n` records; returns their CIDs.
fn write(h: &mut TestHost, t: &ThreadId, n: usize) -> Vec<Cid> {
    (0..n)
        .map(|i| {
            let body = format!("record {i}");
            h.create_record(Time(0), t, None, body.as_bytes(), 0)
                .unwrap()
                .cid()
        })
        .collect()
}

/// Asserts that every CID leads to its record, in its place.
fn all_found(h: &TestHost, t: &ThreadId, cids: &[Cid]) {
    for (i, cid) in cids.iter().enumerate() {
        let (thread, _, bundle) = h
            .record_by_cid(cid)
            .unwrap()
            .unwrap_or_else(|| panic!("record {i} not found by its CID"));
        assert_eq!(&thread, t);
        assert_eq!(&bundle.cid(), cid);
    }
}

#[test]
fn records_are_found_while_journaled_and_after_the_move() {
    let (mut h, store, t) = one_host(3);
    let mut cids = Vec::new();
    for round in 0..10 {
        cids.extend(write(&mut h, &t, 1));
        all_found(&h, &t, &cids);
        let journal = count(&store, TAG_CID_JOURNAL);
        assert!(journal <= 3, "round {round}: {journal} journal entries");
        assert_eq!(
            count(&store, TAG_CID) + journal,
            cids.len(),
            "round {round}"
        );
        h.check_invariants().unwrap();
    }
    // 10 writes into a journal of 3: moved at the 4th and the 8th, two left.
    assert_eq!(count(&store, TAG_CID_JOURNAL), 2);
    assert_eq!(count(&store, TAG_CID), 8);
}

#[test]
fn a_reopened_host_reads_the_journal_back() {
    let (mut h, store, t) = one_host(100);
    let mut cids = write(&mut h, &t, 5);
    assert_eq!(count(&store, TAG_CID_JOURNAL), 5);
    assert_eq!(count(&store, TAG_CID), 0);
    drop(h);
    let mut h = host(store.clone(), AcceptAll, 7, journal_max(100));
    all_found(&h, &t, &cids);
    h.check_invariants().unwrap();
    cids.extend(write(&mut h, &t, 100));
    assert!(count(&store, TAG_CID) >= 100, "the journal moved");
    assert!(count(&store, TAG_CID_JOURNAL) <= 100);
    all_found(&h, &t, &cids);
    // Reopened with a smaller maximum, the next write moves the whole journal.
    drop(h);
    let mut h = host(store.clone(), AcceptAll, 7, journal_max(0));
    cids.extend(write(&mut h, &t, 1));
    assert_eq!(count(&store, TAG_CID_JOURNAL), 0);
    assert_eq!(count(&store, TAG_CID), cids.len());
    all_found(&h, &t, &cids);
}

#[test]
fn a_journal_of_zero_writes_the_sorted_index_directly() {
    let (mut h, store, t) = one_host(0);
    let cids = write(&mut h, &t, 4);
    assert_eq!(count(&store, TAG_CID_JOURNAL), 0);
    assert_eq!(count(&store, TAG_CID), 4);
    all_found(&h, &t, &cids);
}

#[test]
fn a_failed_commit_changes_neither_tier() {
    for op in [FaultOp::Put, FaultOp::Commit] {
        // The 4th write would move the journal, the 2nd appends to it: fail each kind.
        for (before, max) in [(1, 3), (3, 3)] {
            let (mut h, store, t) = one_host(max);
            let cids = write(&mut h, &t, before);
            let digest = store.inner().digest();
            store.fail_nth(op, 1);
            assert!(
                h.create_record(Time(0), &t, None, b"lost", 0).is_err(),
                "{op:?}"
            );
            assert_eq!(store.inner().digest(), digest, "{op:?}: nothing stored");
            h.check_invariants().unwrap();
            let mut all = cids.clone();
            all.extend(write(&mut h, &t, 2));
            all_found(&h, &t, &all);
            h.check_invariants().unwrap();
        }
    }
}

#[test]
fn deleting_a_thread_removes_its_entries_from_both_tiers() {
    let (mut h, store, t) = one_host(4);
    let cids = write(&mut h, &t, 6);
    // Moved at the 5th write (five entries), the 6th journaled.
    assert_eq!(count(&store, TAG_CID), 5);
    assert_eq!(count(&store, TAG_CID_JOURNAL), 1);
    let other = h.create_thread(Time(0), NewThread::default()).unwrap().id;
    let kept = write(&mut h, &other, 2);
    h.delete_thread(Time(0), &t).unwrap();
    for cid in &cids {
        assert!(h.record_by_cid(cid).unwrap().is_none());
    }
    all_found(&h, &other, &kept);
    assert_eq!(count(&store, TAG_CID) + count(&store, TAG_CID_JOURNAL), 2);
    h.check_invariants().unwrap();
    drop(h);
    let h = host(store, AcceptAll, 7, journal_max(4));
    all_found(&h, &other, &kept);
    h.check_invariants().unwrap();
}

#[test]
fn a_replica_catching_up_keeps_a_journal_of_its_own() {
    let (mut net, stores) = net(2, 3);
    let info = shared(&mut net, &[1]);
    let t = info.id;
    let mut cids = Vec::new();
    for i in 0..40u32 {
        let body = format!("r{i}");
        cids.push(
            net.hosts[0]
                .create_record(Time(0), &t, None, body.as_bytes(), 0)
                .unwrap()
                .cid(),
        );
    }
    assert!(net.run_until(60_000, |n| converged(n, &[0, 1], &t)
        && total(n, 1, &t) == 40));
    for cid in &cids {
        assert!(net.hosts[1].record_by_cid(cid).unwrap().is_some());
    }
    // The default maximum holds all 40 in the replica's journal.
    assert_eq!(count(&stores[1], TAG_CID_JOURNAL), 40);
    net.hosts[1].check_invariants().unwrap();
}
