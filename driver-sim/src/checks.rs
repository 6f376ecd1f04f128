//! The invariants every run must keep, checked against the hosts' stores after the run.
//! `spec/simulation.md` states them precisely.

use crate::Role;
use crate::ledger::{self, TAG_LEDGER};
use crate::world::{LIVENESS_BOUND_MS, World};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use threads_protocol::engine::layout;
use threads_protocol::log_id::LogId;
use threads_protocol::record::{self, RecordBundle};
use threads_protocol::store::key::KeyReader;
use threads_protocol::store::memory::MemoryStore;
use threads_protocol::store::{Direction, KeyRange, ReadTxn, Store};

/// One broken invariant, with what was seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant: `convergence`, `lost-write`, `forged-accepted`, `plaintext-at-replicator`,
    /// `half-applied`, `liveness`, `honest-blamed` or `host-error`.
    pub invariant: &'static str,
    /// What was seen.
    pub detail: String,
}

fn violation(invariant: &'static str, detail: String) -> Violation {
    Violation { invariant, detail }
}

/// Indices of honest hosts (everyone but the adversary).
fn honest(w: &World) -> Vec<usize> {
    (0..w.hosts.len())
        .filter(|&i| w.hosts[i].role != Role::Adversary)
        .collect()
}

/// Whether every honest host is up, holds the thread, has the same heads as the others and
/// holds every acknowledged record.
pub(crate) fn converged(w: &World) -> bool {
    let mut first = None;
    for i in honest(w) {
        let Some(e) = w.hosts[i].engine.as_ref() else {
            return false;
        };
        let Ok(heads) = e.heads(&w.thread) else {
            return false;
        };
        match &first {
            None => first = Some(heads),
            Some(f) if *f != heads => return false,
            Some(_) => {}
        }
    }
    let Some(heads) = first else {
        return false;
    };
    // Equal heads imply equal contents; they must also cover every acknowledged write.
    let height: BTreeMap<LogId, u64> = heads.iter().map(|(l, h, _)| (*l, h.0)).collect();
    w.acked
        .values()
        .all(|a| height.get(&a.log).is_some_and(|h| *h >= a.counter))
}

/// One stored record of the thread: (log, counter, bundle bytes).
type Stored = (LogId, u64, Vec<u8>);

fn stored_records(store: &MemoryStore, thread: &threads_protocol::id::ThreadId) -> Vec<Stored> {
    let prefix = layout::thread_prefix(layout::TAG_RECORD, thread);
    let mut out = Vec::new();
    let Ok(txn) = store.read() else {
        return out;
    };
    let _ = txn.scan(
        KeyRange::prefix(&prefix),
        Direction::Forward,
        &mut |k, v| {
            let mut r = KeyReader::new(&k[prefix.len()..]);
            if let (Ok(log), Ok(counter)) = (r.fixed(38).map(LogId::from_bytes), r.u64())
                && let Ok(log) = log
            {
                out.push((log, counter, v.to_vec()));
            }
            ControlFlow::Continue(())
        },
    );
    out
}

fn ledger_entries(store: &MemoryStore) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut out = BTreeMap::new();
    if let Ok(txn) = store.read() {
        let _ = txn.scan(
            KeyRange::prefix(&[TAG_LEDGER]),
            Direction::Forward,
            &mut |k, v| {
                out.insert(k.to_vec(), v.to_vec());
                ControlFlow::Continue(())
            },
        );
    }
    out
}

/// Runs every checker; an empty list means the run kept every invariant.
pub(crate) fn check(w: &World) -> Vec<Violation> {
    let mut out: Vec<Violation> = w
        .problems
        .iter()
        .map(|(invariant, detail)| violation(invariant, detail.clone()))
        .collect();
    let adversary_log = w.adversary.as_ref().map(|a| a.key.public().peer_id());

    // (f) liveness.
    if w.converged_at.is_none() {
        out.push(violation(
            "liveness",
            format!("honest hosts did not converge within {LIVENESS_BOUND_MS} ms after the heal"),
        ));
    }

    let read = w.key.read().cloned();
    let mut union: BTreeMap<(LogId, u64), Vec<u8>> = BTreeMap::new();
    let mut heads = Vec::new();
    for i in honest(w) {
        let h = &w.hosts[i];
        let records = stored_records(&h.store, &w.thread);
        let mut per_log: BTreeMap<LogId, BTreeSet<u64>> = BTreeMap::new();
        for (log, counter, bytes) in &records {
            per_log.entry(*log).or_default().insert(*counter);
            union
                .entry((*log, *counter))
                .or_insert_with(|| bytes.clone());
            // (c) every stored record is an acknowledged honest record, byte for byte, or a
            // validly signed record of the adversary's own log.
            let bundle = RecordBundle::decode(bytes);
            let hash: [u8; 32] = Sha256::digest(bytes).into();
            let known = bundle
                .as_ref()
                .ok()
                .and_then(|b| w.acked.get(&b.cid()))
                .is_some_and(|a| a.bundle_hash == hash && a.log == *log);
            let adversarial_but_valid = Some(*log) == adversary_log
                && bundle.is_ok_and(|b| record::verify(b, &w.thread, log, w.key.service()).is_ok());
            if !known && !adversarial_but_valid {
                out.push(violation(
                    "forged-accepted",
                    format!(
                        "host {i} stores record {counter} of log {log} that no honest writer made"
                    ),
                ));
            }
        }
        // (e) no half-applied record: the head covers exactly the stored records 1..=height.
        if let Some(e) = h.engine.as_ref()
            && let Ok(hs) = e.heads(&w.thread)
        {
            for (log, height, _) in &hs {
                let got = per_log.remove(log).unwrap_or_default();
                if got.len() as u64 != height.0 || got.last().copied().unwrap_or(0) != height.0 {
                    out.push(violation(
                        "half-applied",
                        format!(
                            "host {i} log {log}: head at {height} but {} records stored",
                            got.len()
                        ),
                    ));
                }
            }
            heads.push((i, hs));
        }
        for (log, got) in per_log {
            out.push(violation(
                "half-applied",
                format!(
                    "host {i} stores {} records of log {log} beyond its heads",
                    got.len()
                ),
            ));
        }
        // (b) no acknowledged write lost.
        let present: BTreeSet<(LogId, u64)> = records.iter().map(|(l, c, _)| (*l, *c)).collect();
        for (cid, a) in &w.acked {
            if !present.contains(&(a.log, a.counter)) {
                out.push(violation(
                    "lost-write",
                    format!(
                        "host {i} lacks acknowledged record {cid} ({} of {})",
                        a.counter, a.log
                    ),
                ));
            }
        }
        // (d) replicators never hold plaintext or application state.
        if h.role == Role::Replicator {
            let ledger = ledger_entries(&h.store);
            let can_read = h
                .engine
                .as_ref()
                .and_then(|e| e.thread_info(&w.thread).ok())
                .is_some_and(|t| t.key.can_read());
            let mut plaintext = false;
            if let Ok(txn) = h.store.read() {
                let _ = txn.scan(KeyRange::all(), Direction::Forward, &mut |_, v| {
                    plaintext |= v.windows(9).any(|x| x == b"sim-body-");
                    ControlFlow::Continue(())
                });
            }
            if can_read || plaintext || !ledger.is_empty() {
                out.push(violation(
                    "plaintext-at-replicator",
                    format!(
                        "host {i}: read key {can_read}, plaintext {plaintext}, {} applied entries",
                        ledger.len()
                    ),
                ));
            }
        }
    }

    // (a) convergence: equal heads everywhere, and every reader's applied state equals a
    // from-scratch fold of the union of all records.
    if let Some((first, h0)) = heads.first() {
        for (i, h) in &heads[1..] {
            if h != h0 {
                out.push(violation(
                    "convergence",
                    format!("host {i} and host {first} have different heads"),
                ));
            }
        }
    }
    if let Some(read) = read {
        let expected = fold_from_scratch(w, &union, &read);
        for i in honest(w) {
            let h = &w.hosts[i];
            if h.role == Role::Replicator {
                continue;
            }
            let got = ledger_entries(&h.store);
            if got != expected {
                out.push(violation(
                    "convergence",
                    format!(
                        "host {i} applied {} records, a from-scratch fold of all records gives {}",
                        got.len(),
                        expected.len()
                    ),
                ));
            }
        }
    }
    out
}

/// What a reader's ledger must hold: one entry per record that opens with the read key.
fn fold_from_scratch(
    w: &World,
    union: &BTreeMap<(LogId, u64), Vec<u8>>,
    read: &threads_protocol::key::ReadKey,
) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut out = BTreeMap::new();
    for ((log, counter), bytes) in union {
        let Ok(bundle) = RecordBundle::decode(bytes) else {
            continue;
        };
        // An acknowledged write, byte for byte: its body is known, no need to open it again.
        let hash: [u8; 32] = Sha256::digest(bytes).into();
        if let Some(a) = w.acked.get(&bundle.cid()).filter(|a| a.bundle_hash == hash) {
            let k = ledger::key(w.thread.as_bytes(), log.as_bytes(), *counter);
            out.insert(k, a.body_hash.to_vec());
            continue;
        }
        let Ok(v) = record::verify(bundle, &w.thread, log, w.key.service()) else {
            continue;
        };
        // Unreadable records (the adversary's own log) have no effect on any reader.
        if let Ok(o) = record::open(v, read) {
            let k = ledger::key(w.thread.as_bytes(), log.as_bytes(), *counter);
            out.insert(k, Sha256::digest(o.body()).to_vec());
        }
    }
    out
}
