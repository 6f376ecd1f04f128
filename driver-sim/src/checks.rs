//! The invariants every run must keep, checked against the hosts' stores after the run.
//! `spec/simulation.md` states them precisely.

use crate::Role;
use crate::world::app;
use crate::world::{LIVENESS_BOUND_MS, World};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use threads_protocol::engine::layout;
use threads_protocol::log_id::LogId;
use threads_protocol::record::{self, RecordBundle};
use threads_protocol::store::key::KeyReader;
use threads_protocol::store::memory::MemoryStore;
use threads_protocol::store::{Direction, KeyRange, ReadTxn, Store, WriteTxn};
use threads_reducer::fold::{self, OrderKey, RecordInfo, TAG_OPS, state_prefix};

/// One broken invariant, with what was seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which invariant: `convergence`, `lost-write`, `forged-accepted`, `plaintext-at-replicator`,
    /// `half-applied`, `liveness`, `honest-blamed`, `host-error`, `engine-invariant` or
    /// `slow-replication`.
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

/// Honest hosts that are not down for good: the core that must converge.
fn core(w: &World) -> Vec<usize> {
    honest(w)
        .into_iter()
        .filter(|i| !w.down_for_good.contains(i))
        .collect()
}

/// Whether an acknowledged write must reach the core: it was written by a core host (a write
/// of a host that went down for good before sending it is durable on that host's disk only).
fn required(w: &World, a: &crate::world::Acked) -> bool {
    !w.down_for_good.contains(&a.host)
}

/// Whether every core host is up, holds the thread, has the same heads as the others and
/// holds every acknowledged record it must.
pub(crate) fn converged(w: &World) -> bool {
    let mut first = None;
    for i in core(w) {
        let Some(e) = w.hosts[i].engine.as_ref() else {
            return false;
        };
        let Ok(heads) = e.heads(&w.thread) else {
            return false;
        };
        let heads = without_adversary(w, heads);
        match &first {
            None => first = Some(heads),
            Some(f) if *f != heads => return false,
            Some(_) => {}
        }
    }
    let Some(heads) = first else {
        return false;
    };
    // Heights must count contiguous stored records: a host whose head jumped over a gap has
    // not converged, whatever its heads say.
    for i in core(w) {
        let mut per_log: BTreeMap<LogId, Vec<u64>> = BTreeMap::new();
        scan_records(&w.hosts[i].store, &w.thread, |log, counter, _| {
            per_log.entry(log).or_default().push(counter)
        });
        for (log, height, _) in &heads {
            let got = per_log.get(log).map_or(&[][..], |v| &v[..]);
            if got.len() as u64 != height.0 || got.iter().zip(1..).any(|(c, k)| *c != k) {
                return false;
            }
        }
    }
    // Equal heads imply equal contents; they must also cover every acknowledged write.
    let height: BTreeMap<LogId, u64> = heads.iter().map(|(l, h, _)| (*l, h.0)).collect();
    w.acked
        .values()
        .filter(|a| required(w, a))
        .all(|a| height.get(&a.log).is_some_and(|h| *h >= a.counter))
}

/// Heads without the adversary's own log: its key may sign forks (equivocate), which splits
/// hosts on that log for good (forks are detected, not repaired; spec/simulation.md §2a).
fn without_adversary(
    w: &World,
    heads: Vec<(
        LogId,
        threads_protocol::counter::LogHeight,
        threads_protocol::Cid,
    )>,
) -> Vec<(
    LogId,
    threads_protocol::counter::LogHeight,
    threads_protocol::Cid,
)> {
    let adversary = w.adversary.as_ref().map(|a| a.key.public().peer_id());
    heads
        .into_iter()
        .filter(|(l, _, _)| Some(*l) != adversary)
        .collect()
}

/// One stored record of the thread: (log, counter, bundle bytes).
type Stored = (LogId, u64, Vec<u8>);

fn stored_records(store: &MemoryStore, thread: &threads_protocol::id::ThreadId) -> Vec<Stored> {
    let mut out = Vec::new();
    scan_records(store, thread, |log, counter, v| {
        out.push((log, counter, v.to_vec()))
    });
    out
}

/// Calls `f` with (log, counter, bundle bytes) for every stored record of the thread, in key
/// order. Records of one log are adjacent, so a log id (whose check decompresses a public
/// key) is decoded once per log, not once per record.
fn scan_records(
    store: &MemoryStore,
    thread: &threads_protocol::id::ThreadId,
    mut f: impl FnMut(LogId, u64, &[u8]),
) {
    let prefix = layout::thread_prefix(layout::TAG_RECORD, thread);
    let Ok(txn) = store.read() else {
        return;
    };
    let mut last: Option<(Vec<u8>, Option<LogId>)> = None;
    let _ = txn.scan(
        KeyRange::prefix(&prefix),
        Direction::Forward,
        &mut |k, v| {
            let mut r = KeyReader::new(&k[prefix.len()..]);
            if let (Ok(raw), Ok(counter)) = (r.fixed(38), r.u64()) {
                let log = match &last {
                    Some((bytes, log)) if bytes.as_slice() == raw => *log,
                    _ => {
                        let log = LogId::from_bytes(raw).ok();
                        last = Some((raw.to_vec(), log));
                        log
                    }
                };
                if let Some(log) = log {
                    f(log, counter, v);
                }
            }
            ControlFlow::Continue(())
        },
    );
}

/// The heights of the thread's logs as stored in their log rows.
fn stored_heights(
    store: &MemoryStore,
    thread: &threads_protocol::id::ThreadId,
) -> BTreeMap<LogId, u64> {
    let prefix = layout::thread_prefix(layout::TAG_LOG, thread);
    let mut out = BTreeMap::new();
    let Ok(txn) = store.read() else {
        return out;
    };
    let _ = txn.scan(
        KeyRange::prefix(&prefix),
        Direction::Forward,
        &mut |k, v| {
            let row: Result<threads_protocol::engine::state::LogRow, _> =
                threads_protocol::record::wire::decode_plain(v);
            if let (Ok(log), Ok(row)) = (LogId::from_bytes(&k[prefix.len()..]), row) {
                out.insert(log, row.height);
            }
            ControlFlow::Continue(())
        },
    );
    out
}

/// The order keys of the records the fold has applied (its operation log) for `thread`.
fn applied(store: &MemoryStore, thread: &threads_protocol::id::ThreadId) -> BTreeSet<OrderKey> {
    let prefix = fold::prefix(TAG_OPS, thread);
    let mut out = BTreeSet::new();
    if let Ok(txn) = store.read() {
        let _ = txn.scan(
            KeyRange::prefix(&prefix),
            Direction::Forward,
            &mut |k, _| {
                if let Some(o) = OrderKey::from_bytes(&k[prefix.len()..]) {
                    out.insert(o);
                }
                ControlFlow::Continue(())
            },
        );
    }
    out
}

/// Whether any folded state exists for `thread`.
fn has_state(store: &MemoryStore, thread: &threads_protocol::id::ThreadId) -> bool {
    let mut any = false;
    if let Ok(txn) = store.read() {
        let _ = txn.scan(
            KeyRange::prefix(&state_prefix(thread)),
            Direction::Forward,
            &mut |_, _| {
                any = true;
                ControlFlow::Break(())
            },
        );
    }
    any
}

/// Runs every checker; an empty list means the run kept every invariant.
pub(crate) fn check(w: &World) -> Vec<Violation> {
    let mut out: Vec<Violation> = w
        .problems
        .iter()
        .map(|(invariant, detail)| violation(invariant, detail.clone()))
        .collect();
    let adversary_log = w.adversary.as_ref().map(|a| a.key.public().peer_id());

    out.extend(calm_bound(w));
    out.extend(calm_repairs(w));

    // (f) liveness.
    if w.converged_at.is_none() {
        out.push(violation(
            "liveness",
            format!("honest hosts did not converge within {LIVENESS_BOUND_MS} ms after the heal"),
        ));
    }

    let read = w.key.read().cloned();
    // The union of the core's records: each position, with the acknowledged write whose bytes
    // it holds (`None` for records no honest writer made, which open for nobody).
    let mut union: BTreeMap<(LogId, u64), Option<&crate::world::Acked>> = BTreeMap::new();
    // Per honest host, the order keys of the acknowledged writes it stores byte for byte.
    let mut readable: BTreeMap<usize, BTreeSet<OrderKey>> = BTreeMap::new();
    let mut heads = Vec::new();
    for i in honest(w) {
        let h = &w.hosts[i];
        let records = stored_records(&h.store, &w.thread);
        let mut per_log: BTreeMap<LogId, BTreeSet<u64>> = BTreeMap::new();
        let in_core = !w.down_for_good.contains(&i);
        let own = readable.entry(i).or_default();
        for (log, counter, bytes) in &records {
            per_log.entry(*log).or_default().insert(*counter);
            // Decoded and hashed once, for (c), (e) and the union.
            let bundle = RecordBundle::decode(bytes);
            let hash: [u8; 32] = Sha256::digest(bytes).into();
            let acked = bundle
                .as_ref()
                .ok()
                .and_then(|b| w.acked.get(&b.cid()))
                .filter(|a| a.bundle_hash == hash);
            if let Some(a) = acked {
                own.insert(a.order);
            }
            if in_core {
                union.entry((*log, *counter)).or_insert(acked);
            }
            // (c) every stored record is an acknowledged honest record, byte for byte, or a
            // validly signed record of the adversary's own log.
            let known = acked.is_some_and(|a| a.log == *log);
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
        // (e) no half-applied record: the stored head covers exactly the stored records
        // 1..=height (read from the durable log rows, so hosts that are down are checked too).
        for (log, height) in stored_heights(&h.store, &w.thread) {
            let got = per_log.remove(&log).unwrap_or_default();
            if got.len() as u64 != height || got.last().copied().unwrap_or(0) != height {
                out.push(violation(
                    "half-applied",
                    format!(
                        "host {i} log {log}: stored head at {height} but {} records stored",
                        got.len()
                    ),
                ));
            }
        }
        if in_core
            && let Some(e) = h.engine.as_ref()
            && let Ok(hs) = e.heads(&w.thread)
        {
            let stored = stored_heights(&h.store, &w.thread);
            for (log, height, _) in &hs {
                let got = stored.get(log).copied().unwrap_or(0);
                if got != height.0 {
                    out.push(violation(
                        "half-applied",
                        format!("host {i} log {log}: head at {height} in memory, {got} stored"),
                    ));
                }
            }
            heads.push((i, without_adversary(w, hs)));
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
        // (b) no acknowledged write lost (at the core).
        let present: BTreeSet<(LogId, u64)> = records.iter().map(|(l, c, _)| (*l, *c)).collect();
        for (cid, a) in &w.acked {
            if in_core && required(w, a) && !present.contains(&(a.log, a.counter)) {
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
            let ops = applied(&h.store, &w.thread).len();
            let state = has_state(&h.store, &w.thread);
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
            if can_read || plaintext || ops > 0 || state {
                out.push(violation(
                    "plaintext-at-replicator",
                    format!(
                        "host {i}: read key {can_read}, plaintext {plaintext}, {ops} applied records, state {state}"
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
    // ... and every reader's folded state equals a from-scratch fold of the union of all records
    // (only acknowledged writes can be read; the adversary's records open for nobody), and the
    // fold applied each of those records exactly once (e).
    if read.is_some() {
        let (_, expected) = fold_from_scratch(w, &union);
        for i in honest(w) {
            let in_core = !w.down_for_good.contains(&i);
            let h = &w.hosts[i];
            if h.role == Role::Replicator {
                continue;
            }
            // (e) against the host's own stored records: a host that merely lacks records is
            // a convergence or liveness matter, not a half-applied one.
            let own = readable.remove(&i).unwrap_or_default();
            let ops = applied(&h.store, &w.thread);
            if ops != own {
                let missing = own.difference(&ops).count();
                let extra = ops.difference(&own).count();
                out.push(violation(
                    "half-applied",
                    format!(
                        "host {i} stores {} readable records but applied {}: {missing} stored \
                         but not applied, {extra} applied but not stored",
                        own.len(),
                        ops.len()
                    ),
                ));
            }
            let got = h
                .store
                .read()
                .ok()
                .and_then(|t| fold::state_digest(&t, &w.thread).ok());
            if in_core && got != Some(expected) {
                out.push(violation(
                    "convergence",
                    format!("host {i}'s state differs from a from-scratch fold of all records"),
                ));
            }
        }
    }
    out
}

/// Replication bound of calm runs: an acknowledged write reaches every other early member
/// within two worst-case one-way delays plus this slack (ms).
pub const CALM_SLACK_MS: u64 = 50;
/// Writes acknowledged before this time (ms) are not held to the calm bound (members are still
/// joining).
pub const CALM_SETTLE_MS: u64 = 2_000;

/// (a') On calm profiles, pushes must do the replicating: every write acknowledged after the
/// members settled reaches every other host that joined at the start, and held the previous
/// record of the log by then, within a tight bound. A
/// regression that leaves repairs to anti-entropy (say, a host that drops some pushed records)
/// converges in the end but fails here.
fn calm_bound(w: &World) -> Vec<Violation> {
    if !w.profile.is_calm() {
        return Vec::new();
    }
    let bound = calm_bound_ms(w);
    let early: BTreeSet<usize> = honest(w)
        .into_iter()
        .filter(|&i| w.hosts[i].role != Role::LateJoiner)
        .collect();
    let mut reached: BTreeMap<(threads_protocol::Cid, usize), u64> = BTreeMap::new();
    for (cid, host, delay) in &w.delays {
        reached.entry((*cid, *host)).or_insert(*delay);
    }
    // The write before each one in its log, so that a host still catching up on a log (a
    // push beyond its head waits for the pull) is not held to the bound for it.
    let by_position: BTreeMap<(LogId, u64), threads_protocol::Cid> = w
        .acked
        .iter()
        .map(|(cid, a)| ((a.log, a.counter), *cid))
        .collect();
    let mut out = Vec::new();
    for (cid, at) in &w.acked_at {
        if *at < CALM_SETTLE_MS || *at + bound > crate::world::FAULT_PHASE_MS {
            continue;
        }
        let Some(a) = w.acked.get(cid) else {
            continue;
        };
        let previous = by_position.get(&(a.log, a.counter - 1));
        for &i in &early {
            // Held only if host i had the previous record of the log when this one was
            // acknowledged.
            let caught_up = match previous {
                None => a.counter == 1,
                Some(p) => w
                    .acked_at
                    .get(p)
                    .zip(reached.get(&(*p, i)))
                    .is_some_and(|(p_at, d)| p_at + d <= *at),
            };
            if !caught_up {
                continue;
            }
            match reached.get(&(*cid, i)) {
                Some(d) if *d <= bound => {}
                got => {
                    out.push(violation(
                        "slow-replication",
                        format!(
                            "write {cid} acknowledged at {at} ms reached host {i} {} (calm bound \
                             {bound} ms)",
                            got.map_or("never".to_string(), |d| format!("after {d} ms"))
                        ),
                    ));
                    return out;
                }
            }
        }
    }
    out
}

/// The calm replication bound of `w` (ms): two worst-case one-way delays plus [`CALM_SLACK_MS`].
fn calm_bound_ms(w: &World) -> u64 {
    2 * (w.profile.latency_max_ms + w.profile.jitter_ms) + CALM_SLACK_MS
}

/// (a'') On calm profiles, the number of repair messages is bounded by what a correct run
/// needs. A calm run sends, for every record a host stores, one push per other peer, a digest
/// per peer per anti-entropy round and, when two digests differ, heights; a pull (and the page
/// answering it) is needed only to catch up, or when a digest or a later push outran a push
/// still in flight. So every pull of record `k` of a log by an early member is one of:
///
/// - a catch-up: record `k` was acknowledged before the members settled
///   ([`CALM_SETTLE_MS`]), or before the puller held record `k - 1` (the push of `k` found a
///   gap and was rightly set aside);
/// - an overtaken push: the pull left within the calm bound of `k`'s acknowledgement, while
///   its push could still be on the way.
///
/// The bound on pulls (and so on pages) is the number of pulls of these two kinds; any other
/// pull repairs a push that never came, which a calm network never loses. A host that drops
/// some pushed records converges (anti-entropy repairs them) but fails here, whatever its
/// timing.
fn calm_repairs(w: &World) -> Vec<Violation> {
    if !w.profile.is_calm() {
        return Vec::new();
    }
    let bound = calm_bound_ms(w);
    let mut held: BTreeMap<(threads_protocol::Cid, usize), u64> = BTreeMap::new();
    for (cid, host, delay) in &w.delays {
        held.entry((*cid, *host)).or_insert(*delay);
    }
    let by_position: BTreeMap<(LogId, u64), threads_protocol::Cid> = w
        .acked
        .iter()
        .map(|(cid, a)| ((a.log, a.counter), *cid))
        .collect();
    let early = |i: usize| w.hosts[i].role != Role::LateJoiner;
    let mut needed = 0u64;
    let mut excess = Vec::new();
    for &(host, log, counter, t) in &w.pulls {
        let Some(at) = by_position
            .get(&(log, counter))
            .and_then(|cid| w.acked_at.get(cid).copied())
        else {
            needed += 1; // not an acknowledged write: nothing to hold the pull to
            continue;
        };
        let caught_up = counter == 1
            || by_position.get(&(log, counter - 1)).is_some_and(|p| {
                w.acked_at
                    .get(p)
                    .zip(held.get(&(*p, host)))
                    .is_some_and(|(p_at, d)| p_at + d <= at)
            });
        let catch_up = at < CALM_SETTLE_MS || !early(host) || !caught_up;
        let overtaken = t <= at + bound;
        if catch_up || overtaken {
            needed += 1;
        } else {
            excess.push((host, log, counter, t, at));
        }
    }
    let Some(&(host, log, counter, t, at)) = excess.first() else {
        return Vec::new();
    };
    vec![violation(
        "excess-repair",
        format!(
            "{} pulls against a bound of {needed} (catch-ups and overtaken pushes); first: host              {host} pulled record {counter} of log {log} at {t} ms, acknowledged at {at} ms when              the host held the record before it (calm bound {bound} ms); messages sent: {:?}",
            w.pulls.len(),
            w.sent
        ),
    )]
}

/// Folds every readable record of the union (the acknowledged writes it holds byte for byte),
/// in total order, into a fresh store with the real document fold; returns their order keys
/// and the resulting state digest.
fn fold_from_scratch(
    w: &World,
    union: &BTreeMap<(LogId, u64), Option<&crate::world::Acked>>,
) -> (BTreeSet<OrderKey>, [u8; 32]) {
    let mut records: Vec<&crate::world::Acked> = union.values().flatten().copied().collect();
    records.sort_by_key(|a| a.order);
    let store = MemoryStore::new();
    let mut fold = app();
    if let Ok(mut txn) = store.write() {
        for a in &records {
            let info = RecordInfo {
                thread: w.thread,
                order: a.order,
                log: a.log,
                author: a.author,
                time: 0,
            };
            let _ = fold.fold_in(&mut txn, &info, &a.body);
        }
        let _ = txn.commit();
    }
    let digest = store
        .read()
        .ok()
        .and_then(|t| fold::state_digest(&t, &w.thread).ok())
        .unwrap_or_default();
    (records.iter().map(|a| a.order).collect(), digest)
}
