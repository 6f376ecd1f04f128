//! Bytes on disk and durable write latency of the document database on LMDB (issue 10, goals 6
//! and 4). Prints JSON lines on stdout (progress on stderr):
//!
//! * `disk`: N instances (~89-byte JSON each, the `documents` benchmark's data: a schema and an
//!   index on `age`) created 1000 per write transaction (one record each) through
//!   [`Documents`] on LMDB; the size of `data.mdb` next to the bytes of the instances' JSON,
//!   the ratio and the goal (≤ 4×). A `disk_space` line per key space follows: pairs, key and
//!   value bytes, and the leaf and overflow bytes LMDB needs for them (node headers included),
//!   then a `disk_pages` line with LMDB's own page counts.
//! * `durable_write`: single-document write transactions (begin, `txn_save`, commit, drain) on
//!   the same store, p50, p99 and the slowest, next to a bare durable one-key LMDB commit
//!   measured in the same run on a fresh environment, both absolute and as ratios. Goal: p50 ≤
//!   0.3 ms where a bare durable commit costs 0.08 ms, as the issue measured; this machine's
//!   bare commit costs more (~0.21 ms quiet), so `ok` holds when p50 ≤ 3.75 × the bare p50 of
//!   the same run (0.3 / 0.08) **or** p50 ≤ 0.3 ms. The line also gives the CPU time, store
//!   transactions, commits and pages written per write. With more than 8,192 writes one of
//!   them carries the move of the CID journal (spec/engine.md §3), which the slowest shows.
//!
//! `cargo run --release -p threads-benches --bin disk -- [--instances N] [--writes W]
//! [--hold-reader]` (defaults: 100000 instances, 2000 writes; `--writes 0` skips the latency
//! part). `--hold-reader` is a diagnostic: a read transaction held through the writes keeps
//! LMDB from reusing freed pages, so each write's pages land side by side at the end of the
//! file instead of in ~27 separate places (`spec/storage.md` §4.2); its `durable_write` line
//! carries `"held_reader": true` and no `ok`.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::time::Instant;

use serde_json::json;
use threads_benches::people::{BATCH, COLLECTION, NANOS, People, collection, percentile, round};
use threads_benches::{io_written, thread_cpu_ns};
use threads_driver_tokio::lmdb::{LmdbOptions, LmdbStore};
use threads_protocol::engine::{Config, NewThread, Time};
use threads_protocol::id::ThreadId;
use threads_protocol::rng::seeded;
use threads_protocol::store::{Direction, KeyRange, ReadTxn, Store, WriteTxn};
use threads_reducer::db::{Batch, DbEvent};
use threads_reducer::docs::Documents;

/// The goal of issue 10: `data.mdb` at most this many times the instances' JSON.
const GOAL_RATIO_MAX: f64 = 4.0;
/// The goal of issue 10: a single-document durable write transaction's median.
const GOAL_P50_MAX_US: f64 = 300.0;
/// The same goal as a ratio to a bare one-key durable commit measured in the same run: the
/// issue's 0.3 ms over the 0.08 ms such a commit took where the goal was set.
const GOAL_RATIO_MAX_TO_BARE: f64 = 0.3 / 0.08;
/// LMDB's page header and the largest node kept on a leaf page (4 KiB pages).
const PAGE_HEADER: usize = 16;
const NODE_HEADER: usize = 8;

fn drain<S: Store>(docs: &mut Documents<S>) {
    while docs.poll_output().is_some() {}
}

/// Totals of one key space.
#[derive(Default)]
struct Space {
    pairs: u64,
    key_bytes: u64,
    value_bytes: u64,
    /// Bytes on leaf pages: node header, key and inline value, and the 2-byte slot.
    leaf_bytes: u64,
    overflow_pages: u64,
}

/// The name of the key space of `key`: its tag, and for the reducer's state the sub-space.
fn space_of(key: &[u8]) -> String {
    let tag = key[0];
    let name = match tag {
        0x01 => "engine_host",
        0x02 => "engine_thread",
        0x03 => "engine_log",
        0x04 => "engine_record",
        0x05 => "engine_cid",
        0x06 => "engine_rejected",
        0x07 => "engine_identity_log",
        0x08 => "engine_cid_journal",
        0x09..=0x1f => "engine_other",
        // `21 ‖ thread tag (8) ‖ order key (54)`, then 22 for an undo log, 24 a footprint.
        0x21 => match (key.len(), key.last()) {
            (64, Some(0x22)) => "fold_undo",
            (64, Some(0x24)) => "fold_footprint",
            _ => "fold_ops",
        },
        0x23 => "fold_rejected",
        0x25 => "fold_dependents",
        0x20 => "fold_layout",
        0x26 => "fold_thread_tags",
        0x30 => {
            // `30 ‖ thread tag (8) ‖ space ‖ ...`
            return match key.get(9) {
                Some(0x01) => "state_collection".into(),
                Some(0x02) => "state_instance".into(),
                Some(0x03) => "state_index".into(),
                Some(s) => format!("state_{s:02x}"),
                None => "state_other".into(),
            };
        }
        _ => "other",
    };
    if name == "other" {
        format!("other_{tag:02x}")
    } else {
        name.into()
    }
}

fn breakdown(store: &LmdbStore, page: usize) -> BTreeMap<String, Space> {
    // LMDB moves a value to overflow pages when its node would exceed this (MDB_MINKEYS = 2).
    let node_max = ((page - PAGE_HEADER) / 2) & !1;
    let mut spaces: BTreeMap<String, Space> = BTreeMap::new();
    let txn = store.read().expect("read");
    txn.scan(KeyRange::all(), Direction::Forward, &mut |k, v| {
        let s = spaces.entry(space_of(k)).or_default();
        s.pairs += 1;
        s.key_bytes += k.len() as u64;
        s.value_bytes += v.len() as u64;
        if NODE_HEADER + k.len() + v.len() > node_max {
            s.leaf_bytes += (NODE_HEADER + k.len() + 8 + 2) as u64;
            s.overflow_pages += (PAGE_HEADER + v.len()).div_ceil(page) as u64;
        } else {
            s.leaf_bytes += (NODE_HEADER + k.len() + v.len() + 2) as u64;
        }
        ControlFlow::Continue(())
    })
    .expect("scan");
    spaces
}

fn main() {
    let mut n = 100_000usize;
    let mut writes = 2000usize;
    let mut hold_reader = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let num = |v: Option<String>| -> usize {
            v.and_then(|s| s.parse().ok()).unwrap_or_else(|| {
                eprintln!("usage: disk [--instances N] [--writes W] [--hold-reader]");
                std::process::exit(2)
            })
        };
        match a.as_str() {
            "--instances" => n = num(args.next()),
            "--writes" => writes = num(args.next()),
            "--hold-reader" => hold_reader = true,
            _ => {
                num(None);
            }
        }
    }
    let data = People::new(n, &mut seeded(1));
    let dir = tempfile::tempdir().expect("temporary folder");
    let options = threads_benches::lmdb_options();
    let store = LmdbStore::open(dir.path().join("docs"), &options).expect("open LMDB");
    let config = Config {
        sync_interval_min_ms: 100,
        ..Config::default()
    };
    let mut docs =
        Documents::open(config, store.clone(), seeded(1), None, Time(0)).expect("open documents");
    let db: ThreadId = docs
        .new_db(Time(0), NewThread::default())
        .expect("new database")
        .id;
    let mut txn = docs.begin(&db, None);
    docs.txn_new_collection(&mut txn, collection())
        .expect("collection");
    docs.commit(Time(0), txn, NANOS).expect("commit collection");
    drain(&mut docs);

    // 1. Bytes on disk. The records carry the batch `Documents::commit` writes (building it
    // with `txn_create` re-checks the pending transaction on every call, which is slow and
    // writes the same record).
    eprintln!("creating {n} instances");
    let started = Instant::now();
    let mut json_bytes = 0u64;
    for start in (0..n).step_by(BATCH) {
        let end = (start + BATCH).min(n);
        let events = (start..end)
            .map(|i| {
                let instance = data.instance(i);
                json_bytes += serde_json::to_vec(&instance).map_or(0, |v| v.len()) as u64;
                DbEvent::Create {
                    collection: COLLECTION.into(),
                    id: data.ids[i].clone(),
                    instance,
                }
            })
            .collect();
        let body = Batch::new(events).encode();
        docs.host_mut()
            .create_record(Time(0), &db, None, &body, NANOS)
            .expect("create record");
        drain(&mut docs);
        if (end / BATCH).is_multiple_of((n / BATCH / 10).max(1)) {
            eprintln!("  {end}/{n}");
        }
    }
    let create_secs = started.elapsed().as_secs_f64();
    // Every commit in data.mdb, none left in the write-ahead log.
    store.checkpoint().expect("checkpoint");
    let stat = store.stat().expect("stat");
    let ratio = stat.file_bytes as f64 / json_bytes.max(1) as f64;
    println!(
        "{}",
        json!({
            "bench": "disk",
            "instances": n,
            "ids": data.timing.name(),
            "json_bytes": json_bytes,
            "data_mdb_bytes": stat.file_bytes,
            "bytes_per_instance": round(stat.file_bytes as f64 / n.max(1) as f64, 1),
            "json_bytes_per_instance": round(json_bytes as f64 / n.max(1) as f64, 1),
            "ratio_to_json": round(ratio, 2),
            "goal_ratio_max": GOAL_RATIO_MAX,
            "ok": ratio <= GOAL_RATIO_MAX,
            "create_seconds": round(create_secs, 2),
        })
    );
    let page = stat.page_size as usize;
    let spaces = breakdown(&store, page);
    for (name, s) in &spaces {
        println!(
            "{}",
            json!({
                "bench": "disk_space",
                "instances": n,
                "space": name,
                "pairs": s.pairs,
                "key_bytes": s.key_bytes,
                "value_bytes": s.value_bytes,
                "leaf_bytes": s.leaf_bytes,
                "overflow_pages": s.overflow_pages,
                "bytes_per_instance": round((s.leaf_bytes + s.overflow_pages * page as u64) as f64 / n.max(1) as f64, 1),
            })
        );
    }
    let leaf_bytes: u64 = spaces.values().map(|s| s.leaf_bytes).sum();
    let used = stat.branch_pages + stat.leaf_pages + stat.overflow_pages;
    println!(
        "{}",
        json!({
            "bench": "disk_pages",
            "instances": n,
            "page_size": page,
            "depth": stat.depth,
            "entries": stat.entries,
            "branch_pages": stat.branch_pages,
            "leaf_pages": stat.leaf_pages,
            "overflow_pages": stat.overflow_pages,
            "leaf_fill": round(leaf_bytes as f64 / (stat.leaf_pages.max(1) * (page - PAGE_HEADER) as u64) as f64, 3),
            "pages_in_tree_bytes": used * page as u64,
            "file_bytes": stat.file_bytes,
            "free_or_unused_bytes": stat.file_bytes.saturating_sub(used * page as u64),
        })
    );

    if writes == 0 || n == 0 {
        return;
    }
    let holder = store.clone();
    let held = hold_reader.then(|| holder.read().expect("read transaction"));
    let mut line = durable_writes(&mut docs, &store, &data, &db, dir.path(), &options, writes);
    drop(held);
    if hold_reader {
        // A diagnostic run says nothing about the goal.
        line["held_reader"] = json!(true);
        if let Some(l) = line.as_object_mut() {
            l.remove("ok");
        }
    }
    println!("{line}");
}

/// Totals over the timed write transactions (or the bare commits).
#[derive(Default)]
struct Cost {
    wall_us: Vec<f64>,
    cpu_ns: u64,
    bytes: u64,
    write_calls: u64,
}

impl Cost {
    /// Times `f` and adds what it wrote.
    fn time(&mut self, f: impl FnOnce()) {
        let (b0, c0) = io_written();
        let cpu0 = thread_cpu_ns();
        let t0 = Instant::now();
        f();
        self.wall_us.push(t0.elapsed().as_secs_f64() * 1e6);
        let cpu1 = thread_cpu_ns();
        let (b1, c1) = io_written();
        self.cpu_ns += cpu1.saturating_sub(cpu0);
        self.bytes += b1.saturating_sub(b0);
        self.write_calls += c1.saturating_sub(c0);
    }

    fn per(&self, x: u64) -> f64 {
        x as f64 / self.wall_us.len().max(1) as f64
    }
}

/// Durable single-document writes (`begin`, `txn_save`, `commit`, drain) next to a bare
/// one-key durable commit on a fresh environment, interleaved so both see the same load.
///
/// The goal line's `ok`: the bound (p50 ≤ 0.3 ms) assumed a bare durable commit of
/// ~0.08 ms; on machines where the bare commit costs more, the same proportion holds instead:
/// p50 ≤ 3.75 × the bare commit's p50 measured in this run (0.3 / 0.08), or p50 ≤ 0.3 ms.
/// Besides latency the line gives, per write, what it costs: CPU time (without waiting for the
/// disk), store write transactions begun and committed (each commit is one `fdatasync` plus
/// one synchronous meta-page write), and 4 KiB pages handed to the kernel.
fn durable_writes(
    docs: &mut Documents<LmdbStore>,
    store: &LmdbStore,
    data: &People,
    db: &ThreadId,
    dir: &std::path::Path,
    options: &LmdbOptions,
    writes: usize,
) -> serde_json::Value {
    let n = data.ids.len();
    eprintln!("timing {writes} single-document write transactions");
    // The anchor is LMDB's own durable commit: no write-ahead log.
    let bare_options = LmdbOptions {
        map_size: options.map_size,
        ..threads_benches::bare_lmdb_options()
    };
    let bare = LmdbStore::open(dir.join("bare"), &bare_options).expect("open LMDB");
    let mut total = Cost::default();
    let mut bare_cost = Cost::default();
    let before = store.counters();
    for w in 0..writes {
        let i = (w * 7919) % n;
        let doc = data.doc(i, w as u64 + 1);
        total.time(|| {
            let mut txn = docs.begin(db, None);
            docs.txn_save(&mut txn, COLLECTION, doc, NANOS + w as u64)
                .expect("txn_save");
            docs.commit(Time(0), txn, NANOS).expect("commit");
            drain(docs);
        });
        bare_cost.time(|| {
            let mut t = bare.write().expect("write");
            t.put(b"k", &(w as u64).to_be_bytes()).expect("put");
            t.commit().expect("commit");
        });
    }
    let after = store.counters();
    let page = store.stat().map_or(4096, |s| s.page_size) as f64;
    let p50 = percentile(&mut total.wall_us, 50.0);
    let p99 = percentile(&mut total.wall_us, 99.0);
    let bare_p50 = percentile(&mut bare_cost.wall_us, 50.0);
    let bare_p99 = percentile(&mut bare_cost.wall_us, 99.0);
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let (slowest, bare_slowest) = (max(&total.wall_us), max(&bare_cost.wall_us));
    let ratio = p50 / bare_p50;
    let per_write = |x: u64| round(x as f64 / writes as f64, 2);
    json!({
        "bench": "durable_write",
        "instances": n,
        "transactions": writes,
        "p50_us": round(p50, 1),
        "p99_us": round(p99, 1),
        "bare_commit_p50_us": round(bare_p50, 1),
        "bare_commit_p99_us": round(bare_p99, 1),
        "max_us": round(slowest, 1),
        "bare_commit_max_us": round(bare_slowest, 1),
        "ratio_p50_to_bare": round(ratio, 2),
        "ratio_p99_to_bare": round(p99 / bare_p99, 2),
        "goal_p50_max_us": GOAL_P50_MAX_US,
        "goal_ratio_p50_max": GOAL_RATIO_MAX_TO_BARE,
        "ok": ratio <= GOAL_RATIO_MAX_TO_BARE || p50 <= GOAL_P50_MAX_US,
        "cpu_us_per_write": round(total.per(total.cpu_ns) / 1e3, 1),
        "bare_cpu_us_per_commit": round(bare_cost.per(bare_cost.cpu_ns) / 1e3, 1),
        "write_txns_per_write": per_write(after.write_txns - before.write_txns),
        "commits_per_write": per_write(after.commits - before.commits),
        "pages_written_per_write": round(total.per(total.bytes) / page, 2),
        "write_calls_per_write": round(total.per(total.write_calls), 2),
        "bare_pages_written_per_commit": round(bare_cost.per(bare_cost.bytes) / page, 2),
    })
}
