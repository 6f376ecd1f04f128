//! The daemon benchmark: two nodes (`threads_driver_tokio::Node`, the engine thread + libp2p
//! swarm + LMDB repository that `threadsd` runs) in this process, talking over TCP on
//! 127.0.0.1, with the document database (a schema-checked collection with an index, not
//! `AcceptAll`) and ~200-byte documents. Each figure starts from fresh repositories. Prints
//! one JSON line per figure on stdout (progress on stderr):
//!
//! * `catchup`: A writes N documents in write transactions of `--batch` documents (1000; one
//!   record each), then B joins from A's thread address. Time from the join call until B's
//!   query returns N documents and B's state digest equals A's. Also A's write rate while
//!   loading (no peer connected yet).
//! * `two_writers`: B joins A's database (and holds its collection); then A and B each write
//!   N/2 documents at once, in transactions of `--writer-batch` documents (100 by default:
//!   batched, not one document per transaction), until both hold N documents with equal
//!   digests. Time from the first write; the time until both writers' last write was
//!   acknowledged is reported too.
//! * `write_latency`: 1000 sequential single-document write transactions through the handle on
//!   A (B joined, so each record is also pushed), each acknowledged once durable: p50, p99.
//! * `batched_writes`: N documents in transactions of `--batch` documents on A (B joined):
//!   documents per second.
//! * `concurrent_writers`: 16 tasks each writing single-document transactions at once on A (B
//!   joined): documents per second, latency p50/p99, and how many LMDB commits they took.
//! * `group_commit`: the goal of issue 10 (≥ 10k acknowledged durable writes/s under 16
//!   concurrent writers), measured on the writing daemon alone: the same 16 writers on a fresh
//!   node with no peer. Next to it the run with B joined (`with_peer_*`), whose engine thread
//!   verifies and folds every record on the same two cores, with the CPU time per write of
//!   each node's engine thread and of the whole process (`--writes-only` runs only these
//!   figures). Also the anchor on the same disk: a bare one-key durable commit timed 100
//!   times before and 100 times after the writers (`bare_commit_p50_us`), and the rate as
//!   writes acknowledged per bare commit's time (`writes_per_bare_commit`) beside the goal's
//!   0.8 (10k/s where the issue's bare commit took 0.08 ms). `ok` is the absolute goal. Per
//!   commit of the node alone: the 4 KiB pages and write calls it handed to the kernel
//!   (`/proc/self/io`) and the time its engine waited for answered writers to join the group
//!   (spec/daemon.md §4).
//! * `rss`: resident memory of the process (`VmRSS`, `VmHWM` in `/proc/self/status`). Both
//!   nodes run in this one process, so the figure covers two nodes; every line carries the
//!   RSS at the time it was printed.
//!
//! The 10k catch-up and the two writers × 5k lines carry the figures to beat from the issue
//! (OrbitDB 4: 43–45 s for a fresh peer to catch up 10k documents; a bare Hypercore log 0.8–1.15
//! s; Autobase two writers × 5k: 10–12 s; goals 0.45 s and 0.5 s) and the ratios to them.
//!
//! `cargo run --release -p threads-benches --bin daemon -- [--docs N] [--large]
//! [--batch B] [--writer-batch W] [--writes-only] [--per-writer P]` (defaults: N = 10000;
//! `--large` adds the 100k catch-up; P = 100 writes per concurrent writer, at most N / 16:
//! 1,600 writes take ~0.2 s, so `--per-writer 1000` gives the figure more weight on a noisy
//! machine).
//! Engine timers are `threadsd`'s defaults. LMDB commits are synced.

mod shared;

use serde_json::{Value, json};
use shared::*;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use threads_benches::io_written;
use threads_driver_tokio::lmdb::LmdbStore;
use threads_driver_tokio::{Node, NodeHandle};
use threads_protocol::engine::ThreadInfo;
use threads_protocol::id::ThreadId;
use threads_protocol::store::{Store as _, WriteTxn as _};

const USAGE: &str = "usage: daemon [--docs N] [--large] [--batch B] [--writer-batch W] [--timeout SECS] \
     [--writes-only] [--per-writer P]";

/// LMDB map size per node (address space only).
const MAP_SIZE: usize = 16 << 30;
/// Sequential single-document writes timed for the latency figure.
const LATENCY_WRITES: usize = 1000;
/// Concurrent single-document writers.
const WRITERS: usize = 16;
/// Writes per concurrent writer (`--per-writer`; at most `--docs` / [`WRITERS`]).
const WRITES_PER_WRITER: usize = 100;
/// Acknowledged durable writes per second to reach under [`WRITERS`] concurrent writers.
const GROUP_COMMIT_GOAL_MIN: f64 = 10_000.0;
/// A bare one-key durable LMDB commit on the machine the issue measured (ms).
const ISSUE_BARE_COMMIT_MS: f64 = 0.08;
/// Bare one-key durable commits timed before and after the writers on the node alone, on the
/// same disk: the anchor of the group-commit figure.
const BARE_COMMITS: usize = 100;
/// Size of the large catch-up (`--large`).
const LARGE: usize = 100_000;

/// Figures to beat, from the issue (measured on the same kind of 2-core machine).
const ANCHOR_CATCHUP_DOCS: usize = 10_000;
const ORBITDB_CATCHUP_SECS: (f64, f64) = (43.0, 45.0);
const HYPERCORE_CATCHUP_SECS: (f64, f64) = (0.8, 1.15);
const GOAL_CATCHUP_SECS: f64 = 0.45;
const ANCHOR_WRITER_DOCS: usize = 5_000;
const AUTOBASE_TWO_WRITERS_SECS: (f64, f64) = (10.0, 12.0);
const GOAL_TWO_WRITERS_SECS: f64 = 0.5;

struct Args {
    docs: usize,
    large: bool,
    batch: usize,
    writer_batch: usize,
    timeout: Duration,
    /// Only the `writes` figures (latency, batches, concurrent writers).
    writes_only: bool,
    /// Writes per concurrent writer: 100 takes ~0.2 s here, short on a noisy machine.
    per_writer: usize,
}

fn parse_args() -> Args {
    let mut a = Args {
        docs: 10_000,
        large: false,
        batch: 1000,
        writer_batch: 100,
        timeout: Duration::from_secs(600),
        writes_only: false,
        per_writer: WRITES_PER_WRITER,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--docs" | "-n" => a.docs = flag_value(&flag, args.next(), USAGE),
            "--large" => a.large = true,
            "--writes-only" => a.writes_only = true,
            "--batch" => a.batch = flag_value(&flag, args.next(), USAGE),
            "--writer-batch" => a.writer_batch = flag_value(&flag, args.next(), USAGE),
            "--per-writer" => a.per_writer = flag_value(&flag, args.next(), USAGE),
            "--timeout" => a.timeout = Duration::from_secs(flag_value(&flag, args.next(), USAGE)),
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0)
            }
            other => {
                eprintln!("unknown argument: {other}\n{USAGE}");
                std::process::exit(2)
            }
        }
    }
    if a.docs < 2 || a.batch == 0 || a.writer_batch == 0 || a.per_writer == 0 {
        eprintln!("--docs must be at least 2, batches and --per-writer at least 1\n{USAGE}");
        std::process::exit(2)
    }
    a
}

/// Two fresh nodes on fresh repositories.
struct Pair {
    a: Node,
    b: Node,
    _dir: tempfile::TempDir,
}

impl Pair {
    async fn start() -> Pair {
        let dir = tempfile::tempdir().unwrap_or_else(|e| fail(&format!("temporary folder: {e}")));
        let a = start(&dir.path().join("a"), Timers::daemon(), MAP_SIZE).await;
        let b = start(&dir.path().join("b"), Timers::daemon(), MAP_SIZE).await;
        Pair { a, b, _dir: dir }
    }

    /// A creates a database; B joins it and waits until it holds the collection.
    async fn shared_db(&self, timeout: Duration) -> ThreadInfo {
        let (ha, hb) = (self.a.handle(), self.b.handle());
        let info = new_db(&ha).await;
        join(&hb, &ha, &info).await;
        let db = info.id;
        wait_for(
            "B receives the collection",
            Duration::from_millis(5),
            timeout,
            || async { hb.reader().collection_info(db, COLLECTION).await.is_ok() },
        )
        .await;
        info
    }

    async fn stop(self) {
        for n in [self.a, self.b] {
            if let Err(e) = n.shutdown().await {
                fail(&format!("shutdown: {e}"));
            }
        }
    }
}

/// Writes documents `from..to` of `writer` in transactions of `batch`.
async fn write_range(
    h: &NodeHandle,
    db: ThreadId,
    writer: usize,
    from: usize,
    to: usize,
    batch: usize,
) {
    let mut i = from;
    while i < to {
        let end = (i + batch).min(to);
        write(h, db, (i..end).map(|k| create(writer, k)).collect()).await;
        i = end;
    }
}

/// Records ingested from peers by `h` so far.
fn ingested(h: &NodeHandle) -> u64 {
    h.metrics().records_ingested.load(Ordering::Relaxed)
}

/// Records in the logs of `db` as `h` holds them.
async fn records(h: &NodeHandle, db: ThreadId) -> u64 {
    match h.thread_info(db).await {
        Ok(info) => info.logs.iter().map(|l| l.height.0).sum(),
        Err(e) => fail(&format!("thread_info: {e}")),
    }
}

/// Prints `line` after the fields every line shares.
fn emit(line: Value) {
    let (rss, _) = rss_kib();
    let mut out = json!({
        "bench": "daemon",
        "transport": "tcp 127.0.0.1, two nodes in one process",
        "doc_bytes": doc_bytes(),
        "timers": Timers::daemon().json(),
    });
    if let (Value::Object(o), Value::Object(l)) = (&mut out, line) {
        o.extend(l);
        o.insert("process_rss_mib".into(), round(rss as f64 / 1024.0, 1));
    }
    println!("{out}");
}

/// Fresh peer catch-up of `n` documents.
async fn catchup(args: &Args, n: usize) {
    eprintln!("catchup: A writes {n} documents");
    let pair = Pair::start().await;
    let (ha, hb) = (pair.a.handle(), pair.b.handle());
    let info = new_db(&ha).await;
    let db = info.id;
    let t = Instant::now();
    write_range(&ha, db, 0, 0, n, args.batch).await;
    let load_secs = t.elapsed().as_secs_f64();
    let want_records = records(&ha, db).await;
    let want_digest = digest(&ha, db).await;

    eprintln!("catchup: B joins");
    let t = Instant::now();
    join(&hb, &ha, &info).await;
    let stored_secs = std::cell::Cell::new(None);
    let secs = wait_for(
        "B catches up",
        Duration::from_millis(2),
        args.timeout,
        || {
            let (hb, stored) = (hb.clone(), &stored_secs);
            async move {
                // Cheap first: B ingested every record (an atomic counter); then the digest scan
                // and the full query.
                if ingested(&hb) < want_records {
                    return false;
                }
                if stored.get().is_none() {
                    stored.set(Some(t.elapsed().as_secs_f64()));
                }
                digest(&hb, db).await == want_digest && count(&hb, db).await == n
            }
        },
    )
    .await;
    let bytes = hb.metrics().bytes_received.load(Ordering::Relaxed);
    let anchored = n == ANCHOR_CATCHUP_DOCS;
    let ratio = |x: f64| if anchored { round(x, 2) } else { Value::Null };
    emit(json!({
        "test": "catchup",
        "docs": n,
        "docs_per_write_txn": args.batch,
        "records": want_records,
        "secs": round(secs, 3),
        "records_stored_secs": stored_secs.get().map(|s| round(s, 3)),
        "docs_per_sec": round(n as f64 / secs, 0),
        "bytes_received_by_b": bytes,
        "load_secs_on_a": round(load_secs, 3),
        "load_docs_per_sec_on_a": round(n as f64 / load_secs, 0),
        "anchor_docs": ANCHOR_CATCHUP_DOCS,
        "orbitdb_secs_min": ORBITDB_CATCHUP_SECS.0,
        "orbitdb_secs_max": ORBITDB_CATCHUP_SECS.1,
        "hypercore_log_secs_min": HYPERCORE_CATCHUP_SECS.0,
        "hypercore_log_secs_max": HYPERCORE_CATCHUP_SECS.1,
        "goal_secs": GOAL_CATCHUP_SECS,
        "secs_over_goal": ratio(secs / GOAL_CATCHUP_SECS),
        "orbitdb_min_over_secs": ratio(ORBITDB_CATCHUP_SECS.0 / secs),
    }));
    pair.stop().await;
}

/// Two writers × `docs / 2` documents each, concurrently, until both converged.
async fn two_writers(args: &Args) {
    let per_writer = args.docs / 2;
    eprintln!("two_writers: 2 × {per_writer} documents");
    let pair = Pair::start().await;
    let (ha, hb) = (pair.a.handle(), pair.b.handle());
    let info = pair.shared_db(args.timeout).await;
    let db = info.id;
    let (base_a, base_b) = (ingested(&ha), ingested(&hb));
    let txns = per_writer.div_ceil(args.writer_batch) as u64;
    let batch = args.writer_batch;

    let t = Instant::now();
    let writers: Vec<_> = [(0, ha.clone()), (1, hb.clone())]
        .into_iter()
        .map(|(w, h)| {
            tokio::spawn(async move {
                write_range(&h, db, w, 0, per_writer, batch).await;
                t.elapsed().as_secs_f64()
            })
        })
        .collect();
    let mut acked_secs: f64 = 0.0;
    for w in writers {
        acked_secs = acked_secs.max(w.await.unwrap_or_else(|e| fail(&format!("writer: {e}"))));
    }
    let handles = [ha.clone(), hb.clone()];
    wait_for(
        "both writers converge",
        Duration::from_millis(2),
        args.timeout,
        || {
            let handles = handles.clone();
            async move {
                if ingested(&handles[0]) - base_a < txns || ingested(&handles[1]) - base_b < txns {
                    return false;
                }
                converged(&handles, db, 2 * per_writer).await
            }
        },
    )
    .await;
    let secs = t.elapsed().as_secs_f64();
    let sent = |h: &NodeHandle| h.metrics().bytes_sent.load(Ordering::Relaxed);
    let dropped = |h: &NodeHandle| h.metrics().transmits_dropped.load(Ordering::Relaxed);
    let anchored = per_writer == ANCHOR_WRITER_DOCS;
    let ratio = |x: f64| if anchored { round(x, 2) } else { Value::Null };
    emit(json!({
        "test": "two_writers",
        "docs_per_writer": per_writer,
        "docs_per_write_txn": batch,
        "write_txns_per_writer": txns,
        "secs": round(secs, 3),
        "writes_acked_secs": round(acked_secs, 3),
        "bytes_sent_a": sent(&ha),
        "bytes_sent_b": sent(&hb),
        "messages_dropped": dropped(&ha) + dropped(&hb),
        "anchor_docs_per_writer": ANCHOR_WRITER_DOCS,
        "autobase_secs_min": AUTOBASE_TWO_WRITERS_SECS.0,
        "autobase_secs_max": AUTOBASE_TWO_WRITERS_SECS.1,
        "goal_secs": GOAL_TWO_WRITERS_SECS,
        "secs_over_goal": ratio(secs / GOAL_TWO_WRITERS_SECS),
        "autobase_min_over_secs": ratio(AUTOBASE_TWO_WRITERS_SECS.0 / secs),
    }));
    pair.stop().await;
}

/// Durable write latency, batched throughput and concurrent single-document writers on A,
/// with B joined.
async fn writes(args: &Args) {
    eprintln!("writes: latency, batches, concurrent writers");
    // First the writers on a node alone, before the pair exists: nothing else runs.
    let per = per_writer(args);
    let (alone, bare_p50_us) = {
        let dir = tempfile::tempdir().unwrap_or_else(|e| fail(&format!("temporary folder: {e}")));
        let node = start(&dir.path().join("alone"), Timers::daemon(), MAP_SIZE).await;
        let h = node.handle();
        let info = new_db(&h).await;
        // The anchor is LMDB's own durable commit: no write-ahead log.
        let bare = LmdbStore::open(
            dir.path().join("bare"),
            &threads_benches::bare_lmdb_options(),
        )
        .unwrap_or_else(|e| fail(&format!("bare store: {e}")));
        let mut bare_us = bare_commits(&bare, BARE_COMMITS);
        let r = concurrent(&h, info.id, per).await;
        bare_us.extend(bare_commits(&bare, BARE_COMMITS));
        bare.close();
        if let Err(e) = node.shutdown().await {
            fail(&format!("shutdown: {e}"));
        }
        (r, percentile(&mut bare_us, 50.0))
    };
    let pair = Pair::start().await;
    let ha = pair.a.handle();
    let info = pair.shared_db(args.timeout).await;
    let db = info.id;

    // Sequential single-document transactions.
    let n = LATENCY_WRITES.min(args.docs);
    let mut micros = Vec::with_capacity(n);
    let t = Instant::now();
    for i in 0..n {
        let w = Instant::now();
        write(&ha, db, vec![create(0, i)]).await;
        micros.push(w.elapsed().as_secs_f64() * 1e6);
    }
    let total = t.elapsed().as_secs_f64();
    let mean = micros.iter().sum::<f64>() / n as f64;
    emit(json!({
        "test": "write_latency",
        "writes": n,
        "docs_per_write_txn": 1,
        "p50_us": round(percentile(&mut micros, 50.0), 0),
        "p99_us": round(percentile(&mut micros, 99.0), 0),
        "mean_us": round(mean, 0),
        "max_us": round(percentile(&mut micros, 100.0), 0),
        "writes_per_sec": round(n as f64 / total, 0),
    }));

    // Batched transactions.
    let t = Instant::now();
    write_range(&ha, db, 1, 0, args.docs, args.batch).await;
    let secs = t.elapsed().as_secs_f64();
    emit(json!({
        "test": "batched_writes",
        "docs": args.docs,
        "docs_per_write_txn": args.batch,
        "secs": round(secs, 3),
        "docs_per_sec": round(args.docs as f64 / secs, 0),
    }));

    // Concurrent single-document writers, on A with B joined (B verifies and folds every
    // record on the same cores).
    let with_peer = concurrent(&ha, db, per_writer(args)).await;
    emit(json!({
        "test": "concurrent_writers",
        "writers": WRITERS,
        "writes_per_writer": with_peer.per,
        "docs_per_write_txn": 1,
        "peer_joined": true,
        "secs": round(with_peer.secs, 3),
        "docs_per_sec": round(with_peer.rate(), 0),
        "p50_us": round(with_peer.p50_us, 0),
        "p99_us": round(with_peer.p99_us, 0),
        "commits": with_peer.commits,
    }));
    // The goal of issue 10: group commit acknowledges at least 10k durable writes per second
    // under 16 concurrent writers. The figure is the writing daemon's own: the same writers on
    // a node with no peer (measured first, above: one engine thread writing, nothing else on
    // the cores). The run with B joined is reported next to it with the CPU its engine thread
    // took from the two cores.
    let acked = alone.rate();
    // The same goal relative to the disk: the issue's 10k/s where a bare durable commit took
    // 0.08 ms is 0.8 writes acknowledged per bare commit's time.
    let per_bare = acked * bare_p50_us / 1e6;
    let per_bare_goal = GROUP_COMMIT_GOAL_MIN * ISSUE_BARE_COMMIT_MS / 1e3;
    emit(json!({
        "test": "group_commit",
        "writers": WRITERS,
        "writes": WRITERS * per,
        "acked_writes_per_sec": round(acked, 0),
        "p50_us": round(alone.p50_us, 0),
        "p99_us": round(alone.p99_us, 0),
        "commits": alone.commits,
        "writes_per_commit": round((WRITERS * per) as f64 / alone.commits.max(1) as f64, 2),
        "engine_cpu_us_per_write": alone.engine_cpu_s.last().map(|c| round(c * 1e6 / (WRITERS * per) as f64, 1)),
        "process_cpu_us_per_write": round(alone.cpu_s * 1e6 / (WRITERS * per) as f64, 1),
        "pages_written_per_commit": round(alone.written.0 as f64 / 4096.0 / alone.commits.max(1) as f64, 1),
        "write_calls_per_commit": round(alone.written.1 as f64 / alone.commits.max(1) as f64, 1),
        "group_wait_us_per_commit": round(alone.group_wait_us as f64 / alone.commits.max(1) as f64, 1),
        "goal_min": GROUP_COMMIT_GOAL_MIN,
        "ok": acked >= GROUP_COMMIT_GOAL_MIN,
        "bare_commit_p50_us": round(bare_p50_us, 1),
        "writes_per_bare_commit": round(per_bare, 2),
        "writes_per_bare_commit_goal": round(per_bare_goal, 2),
        "ok_relative_to_disk": per_bare >= per_bare_goal,
        "with_peer_acked_writes_per_sec": round(with_peer.rate(), 0),
        "with_peer_writes_per_commit": round((WRITERS * with_peer.per) as f64 / with_peer.commits.max(1) as f64, 2),
        "with_peer_engine_a_cpu_us_per_write": with_peer.engine_cpu_s.first().map(|c| round(c * 1e6 / (WRITERS * with_peer.per) as f64, 1)),
        "with_peer_engine_b_cpu_us_per_write": with_peer.engine_cpu_s.get(1).map(|c| round(c * 1e6 / (WRITERS * with_peer.per) as f64, 1)),
        "with_peer_process_cpu_us_per_write": round(with_peer.cpu_s * 1e6 / (WRITERS * with_peer.per) as f64, 1),
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
    }));

    // B converges on everything A wrote (not timed; a sanity check of the figures above).
    let hb = pair.b.handle();
    let want = n + args.docs + WRITERS * with_peer.per;
    let handles = [ha.clone(), hb.clone()];
    wait_for(
        "B receives the writes",
        Duration::from_millis(20),
        args.timeout,
        || converged(&handles, db, want),
    )
    .await;
    pair.stop().await;
}

/// Wall time of `n` one-key durable commits on `store` (µs each).
fn bare_commits(store: &LmdbStore, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let t = Instant::now();
            let mut txn = store
                .write()
                .unwrap_or_else(|e| fail(&format!("bare write: {e}")));
            txn.put(b"bare", &(i as u64).to_be_bytes())
                .unwrap_or_else(|e| fail(&format!("bare put: {e}")));
            txn.commit()
                .unwrap_or_else(|e| fail(&format!("bare commit: {e}")));
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect()
}

/// Writes per concurrent writer.
fn per_writer(args: &Args) -> usize {
    args.per_writer.min(args.docs.div_ceil(WRITERS))
}

/// What one run of [`concurrent`] measured.
struct Concurrent {
    per: usize,
    secs: f64,
    p50_us: f64,
    p99_us: f64,
    /// LMDB commits of the writing node (its metrics).
    commits: u64,
    /// CPU seconds of this process's `threads-engine` threads during the run, oldest thread
    /// first (nodes in the order they were started).
    engine_cpu_s: Vec<f64>,
    /// CPU seconds of the whole process during the run.
    cpu_s: f64,
    /// Bytes this process wrote with `write`-family calls during the run, and how many calls
    /// ([`io_written`]; on a node alone, its LMDB commits).
    written: (u64, u64),
    /// Microseconds the writing node's engine waited for answered writers to join a group.
    group_wait_us: u64,
}

impl Concurrent {
    fn rate(&self) -> f64 {
        (WRITERS * self.per) as f64 / self.secs
    }
}

/// CPU nanoseconds each thread of this process has run: (thread id, name, ns), from
/// `/proc/self/task/*/schedstat` (empty where the kernel does not report it).
fn thread_cpu() -> Vec<(u64, String, u64)> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let path = entry.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let ns = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        out.push((tid, name.trim().to_string(), ns));
    }
    out.sort();
    out
}

/// CPU seconds per thread between two [`thread_cpu`] samples: the engine threads (oldest
/// first) and the whole process (threads that ended in between are not counted).
fn cpu_between(before: &[(u64, String, u64)], after: &[(u64, String, u64)]) -> (Vec<f64>, f64) {
    let mut engines = Vec::new();
    let mut total = 0.0;
    for (tid, name, ns) in after {
        let was = before
            .iter()
            .find(|(t, _, _)| t == tid)
            .map_or(0, |(_, _, n)| *n);
        let s = ns.saturating_sub(was) as f64 / 1e9;
        total += s;
        if name == "threads-engine" {
            engines.push(s);
        }
    }
    (engines, total)
}

/// [`WRITERS`] tasks each writing `per` single-document transactions at once through `h`.
async fn concurrent(h: &NodeHandle, db: ThreadId, per: usize) -> Concurrent {
    let commits_before = h.metrics().commits.load(Ordering::Relaxed);
    let wait_before = h.metrics().group_wait_micros.load(Ordering::Relaxed);
    let cpu_before = thread_cpu();
    let io_before = io_written();
    let t = Instant::now();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let h = h.clone();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per);
                for i in 0..per {
                    let s = Instant::now();
                    write(&h, db, vec![create(10 + w, i)]).await;
                    lat.push(s.elapsed().as_secs_f64() * 1e6);
                }
                lat
            })
        })
        .collect();
    let mut lat = Vec::with_capacity(WRITERS * per);
    for task in tasks {
        lat.extend(task.await.unwrap_or_else(|e| fail(&format!("writer: {e}"))));
    }
    let secs = t.elapsed().as_secs_f64();
    let (engine_cpu_s, cpu_s) = cpu_between(&cpu_before, &thread_cpu());
    let io_after = io_written();
    Concurrent {
        per,
        secs,
        p50_us: percentile(&mut lat, 50.0),
        p99_us: percentile(&mut lat, 99.0),
        commits: h.metrics().commits.load(Ordering::Relaxed) - commits_before,
        engine_cpu_s,
        cpu_s,
        written: (io_after.0 - io_before.0, io_after.1 - io_before.1),
        group_wait_us: h.metrics().group_wait_micros.load(Ordering::Relaxed) - wait_before,
    }
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    if !args.writes_only {
        catchup(&args, args.docs).await;
        if args.large && args.docs != LARGE {
            catchup(&args, LARGE).await;
        }
        two_writers(&args).await;
    }
    writes(&args).await;
    let (rss, hwm) = rss_kib();
    emit(json!({
        "test": "rss",
        "note": "both nodes of every case run in this one process, one case after the other",
        "rss_mib": round(rss as f64 / 1024.0, 1),
        "peak_rss_mib": round(hwm as f64 / 1024.0, 1),
    }));
}
