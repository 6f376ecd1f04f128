//! Document database benchmark: the embedded API ([`Documents`]) and the convergent fold
//! ([`Convergent::fold_in`]) on the in-memory store and on LMDB. Prints one JSON object per
//! measurement on stdout (progress goes to stderr):
//!
//! * `create`: N instances created in write transactions of 1000 instances (one record each),
//!   in a collection with a JSON schema (`_id`, `name`, `age`, `city`) and an index on `age`.
//!   The records carry the same batch `Documents::commit` would write; they are committed with
//!   `host_mut().create_record` because building a 1000-instance transaction with
//!   `txn_create` re-folds the whole pending transaction on every call (quadratic), which the
//!   `create_api` line measures on a few transactions of 10, 100 and 1000 instances.
//! * `write_latency`: 2000 write transactions of one `txn_save` each (begin, save, commit,
//!   drain the host's outputs), median and p99.
//!   The line also gives the rate over the first and the last tenth of the load.
//! * `query`: `{"age": 200}` (one instance, the middle one, has that age), `{"age": 42}` and
//!   `{"age": {"$gte": 30, "$lt": 32}}` through the `age` index, and `{"city": ...}` by a full
//!   scan (unindexed), median over up to 200 runs. Each run times `Documents::find_json` (rows
//!   of JSON text, what the daemon sends to clients: the figures without a suffix), then
//!   `Documents::find` (rows parsed into `serde_json::Value`: the `_parsed` figures), both with
//!   the default look-up threads (`query_threads`: the cores, for index queries of ≥ 2048
//!   hits), then, for index queries, `find_json` on one thread (`_one_thread`).
//! * goal lines of issue 10 (`"goal"`: figure, bound, `ok`): `batched_inserts` (goal 3: the
//!   `create` rate ≥ 100k/s, with `slowdown_last_vs_first`, the first tenth's rate over the last
//!   tenth's, and `thread_cpu_share`, the share of that time the thread ran on a CPU rather than
//!   waiting, for the disk above all; on LMDB also `bare_commit_p50_us`, a bare one-key durable
//!   commit on a store of its own timed after each batch, and `bare_commit_share`, the share of
//!   the run one such commit per batch would take: the sync latency no change of ours removes,
//!   though a batch's commit writes many more pages than a bare one),
//!   `single_hit_lookup` (goal 5: p50 of `{"age": 200}` ≤ 20 µs), `indexed_per_hit`
//!   (goal 5: median µs per result of `{"age": 42}` ≤ 1, next to `bare_get_us`: the store's
//!   look-ups alone of the same instance keys in the same order, timed in the same runs, and
//!   `bare_get_split_us`: the same look-ups cut in `query_threads` parts on as many threads, and
//!   `bare_get_each_us`: the same keys in one `get_each_with` call on one thread) and
//!   `unindexed_scan` (goal 5: instances scanned per second by `{"city": "city-42"}` ≥ 2M).
//!   Goal 5 is stated at 1M instances.
//! * `fold_late`: a fresh store holding N records folded in order with `fold_in` (one writer,
//!   increasing clocks, one create each), then one record whose clock is below the last k
//!   records' (k = 10, 100, 1000): time and `FoldStats::undone`. Each late record is folded in
//!   a write transaction that is then aborted, so every k sees the same history.
//!
//! `cargo run --release -p threads-benches --bin documents -- [--instances N ...]
//! [--store memory|lmdb|both] [--create-only | --queries-only] [--hold-reader]` (defaults:
//! 100000 instances, both stores; `--create-only` runs only the `create` part and
//! `--queries-only` only `create` and `query`, for profiling). LMDB commits are synced (its
//! default), so `write_latency` on LMDB includes an fsync per commit.
//!
//! `--hold-reader` is a diagnostic, not a measurement of a goal: it keeps a read transaction
//! of the LMDB store open through the run, so LMDB reuses none of the pages a commit frees and
//! every commit writes its pages at the end of the file, side by side, where otherwise they
//! land in the free pages scattered through it (`spec/storage.md` §4.2). The file grows by
//! every page every commit writes (~1.3 GB at 1M instances). Its lines carry
//! `"held_reader": true` and no `ok`.
//!
//! Cost (measured on a shared 2-core VM): the defaults take about 55 s. `--instances 1000000`
//! takes about 7.5 minutes for both stores (~3 minutes with `--store memory`), peaks at ~3 GB
//! of resident memory (the memory store holds everything in RAM) and writes ~2.7 GB to the
//! temporary folder for LMDB; the unindexed scans then take 1-2 s each, so they run only
//! [`MIN_QUERY_RUNS`] times. Timings are wall-clock and sensitive to other load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use threads_benches::people::{
    AGES, BATCH, CITIES, COLLECTION, NANOS, People, collection, percentile, round,
};
use threads_benches::thread_cpu_ns;
use threads_driver_tokio::lmdb::{LmdbOptions, LmdbStore};
use threads_protocol::engine::{Config, NewThread, Time};
use threads_protocol::id::{ThreadId, Variant};
use threads_protocol::identity::{PrivateKey, PublicKey};
use threads_protocol::rng::{ProtocolRng, Rng, seeded};
use threads_protocol::store::memory::MemoryStore;
use threads_protocol::store::{Store, WriteTxn};
use threads_reducer::db::{Batch, DbEvent, DocFold};
use threads_reducer::docs::Documents;
use threads_reducer::fold::{Convergent, OrderKey, Outcome, RecordInfo};

#[path = "documents/bare.rs"]
mod bare;
#[path = "documents/queries.rs"]
mod queries;

use self::queries::queries;

/// Single-save write transactions timed.
const WRITES: usize = 2000;
/// Most runs of one query.
const QUERY_RUNS: usize = 200;
/// Time after which a query stops being repeated (at least [`MIN_QUERY_RUNS`] runs).
const QUERY_BUDGET: Duration = Duration::from_secs(2);
/// Fewest runs of one query.
const MIN_QUERY_RUNS: usize = 5;
/// How many records each late record lands before.
const LATE: [u64; 3] = [10, 100, 1000];
/// Repetitions of each late fold (on the same history, aborted each time).
const LATE_RUNS: usize = 5;
/// The `age` of exactly one instance (the middle one), for the single-hit indexed lookup;
/// every other instance has an age below [`AGES`].
const SINGLE_AGE: u8 = 200;
/// Goal 3 of issue 10: batched inserts per second.
const GOAL_INSERTS_PER_SEC: f64 = 100_000.0;
/// Goal 5: p50 of a single-hit indexed equality lookup, in microseconds.
const GOAL_SINGLE_HIT_US: f64 = 20.0;
/// Goal 5: microseconds per result of an indexed query.
const GOAL_PER_HIT_US: f64 = 1.0;
/// Goal 5: instances per second of an unindexed scan.
const GOAL_SCAN_PER_SEC: f64 = 2_000_000.0;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Memory,
    Lmdb,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Memory => "memory",
            Kind::Lmdb => "lmdb",
        }
    }
}

fn usage(msg: &str) -> ! {
    eprintln!("{msg}");
    eprintln!(
        "usage: documents [--instances N ...] [--store memory|lmdb|both] [--create-only | --queries-only] [--hold-reader]"
    );
    std::process::exit(2)
}

/// Which parts of the benchmark run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Parts {
    /// Everything.
    All,
    /// `create` only.
    Create,
    /// `create` and `query`.
    Queries,
}

/// What to run.
struct Args {
    sizes: Vec<u64>,
    kinds: Vec<Kind>,
    parts: Parts,
}

fn parse_args() -> Args {
    let mut parts = Parts::All;
    let mut sizes = Vec::new();
    let mut kinds = vec![Kind::Memory, Kind::Lmdb];
    let mut args = std::env::args().skip(1).peekable();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--instances" | "-n" => {
                while let Some(n) = args.next_if(|v| !v.starts_with('-')) {
                    let n = n.replace('_', "");
                    match n.parse::<u64>() {
                        Ok(n) if n > 0 => sizes.push(n),
                        _ => usage(&format!("not a positive instance count: {n}")),
                    }
                }
            }
            "--store" => {
                kinds = match args.next().as_deref() {
                    Some("memory") => vec![Kind::Memory],
                    Some("lmdb") => vec![Kind::Lmdb],
                    Some("both") => vec![Kind::Memory, Kind::Lmdb],
                    other => usage(&format!("unknown store: {other:?}")),
                }
            }
            "--create-only" => parts = Parts::Create,
            "--queries-only" => parts = Parts::Queries,
            "--hold-reader" => HOLD_READER.store(true, Ordering::Relaxed),
            "--help" | "-h" => usage("document database benchmark"),
            other => usage(&format!("unknown argument: {other}")),
        }
    }
    if sizes.is_empty() {
        sizes.push(100_000);
    }
    Args {
        sizes,
        kinds,
        parts,
    }
}

fn config() -> Config {
    Config {
        sync_interval_min_ms: 100,
        ..Config::default()
    }
}

/// The instances of a run: [`People`] with one instance (the middle one) given the otherwise
/// unused age [`SINGLE_AGE`], for the single-hit lookup.
type Data = People;

fn people(n: u64, rng: &mut ProtocolRng) -> Data {
    let mut d = People::new(n as usize, rng);
    if !d.is_empty() {
        let middle = d.len() / 2;
        d.ages[middle] = SINGLE_AGE;
    }
    d
}

/// The create event of instance `i`, as `txn_create` records it.
fn create_event(data: &Data, i: usize) -> DbEvent {
    DbEvent::Create {
        collection: COLLECTION.into(),
        id: data.ids[i].clone(),
        instance: data.instance(i),
    }
}

fn median(v: &mut [f64]) -> f64 {
    percentile(v, 50.0)
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn emit(mut line: Value, ctx: &Value) {
    if let (Value::Object(l), Value::Object(c)) = (&mut line, ctx) {
        let mut out = c.clone();
        out.append(l);
        if out.contains_key("held_reader") {
            // A diagnostic run says nothing about the goals.
            out.remove("ok");
        }
        *l = out;
    }
    println!("{line}");
}

/// Drains the host's outputs (publishing the changes to listeners), as a driver would.
fn drain<S: Store>(docs: &mut Documents<S>) {
    while docs.poll_output().is_some() {}
}

/// The machine-independent context of every line.
fn context(kind: Kind, data: &Data) -> Value {
    let sample = data.len().min(1000);
    let bytes: usize = (0..sample)
        .map(|i| match create_event(data, i) {
            DbEvent::Create { instance, .. } => {
                serde_json::to_vec(&instance).map_or(0, |v| v.len())
            }
            _ => 0,
        })
        .sum();
    let mut ctx = json!({
        "bench": "documents",
        "store": kind.name(),
        "instances": data.len(),
        "ids": data.timing.name(),
        "instance_bytes": round(bytes as f64 / sample.max(1) as f64, 1),
    });
    if kind == Kind::Lmdb && HOLD_READER.load(Ordering::Relaxed) {
        ctx["held_reader"] = json!(true);
    }
    ctx
}

/// `--hold-reader`: keep a read transaction of the LMDB store open through the run.
static HOLD_READER: AtomicBool = AtomicBool::new(false);

/// Prints progress on stderr about every tenth of `total`.
fn progress(what: &str, done: usize, total: usize, step: usize) {
    let tenth = (total / 10).max(1);
    if done == total || done / tenth != (done - step.min(done)) / tenth {
        eprintln!("  {what}: {done}/{total}");
    }
}

/// Times one bare one-key durable commit (µs), on a store of its own: the disk's floor under
/// each durable transaction.
type BareCommit<'a> = &'a dyn Fn() -> f64;

/// Benchmarks 1-3 on the embedded API over `store` (`bare_commit`: the LMDB anchor of part 1).
fn documents_bench<S: Store>(
    kind: Kind,
    data: &Data,
    store: S,
    parts: Parts,
    bare_commit: Option<BareCommit<'_>>,
) {
    let n = data.len();
    let ctx = context(kind, data);
    eprintln!("[{}] {n} instances: documents API", kind.name());
    let mut docs = Documents::open(config(), store, seeded(1), None, Time(0)).expect("open");
    let db = docs
        .new_db(Time(0), NewThread::default())
        .expect("new database")
        .id;
    let mut txn = docs.begin(&db, None);
    docs.txn_new_collection(&mut txn, collection())
        .expect("collection");
    let mut api = collection();
    api.name = format!("{COLLECTION}-api");
    docs.txn_new_collection(&mut txn, api.clone())
        .expect("collection");
    docs.commit(Time(0), txn, NANOS)
        .expect("commit collections");
    drain(&mut docs);

    create(&mut docs, &db, data, &ctx, bare_commit);
    if parts == Parts::Create {
        return;
    }
    if parts == Parts::All {
        create_api(&mut docs, &db, &api.name, &ctx);
    }
    queries(&mut docs, &db, data, &ctx);
    if parts == Parts::All {
        write_latency(&mut docs, &db, data, &ctx);
    }
}

/// Part 1: N instances in records of [`BATCH`] creates; after each, one `bare_commit`
/// (outside the timed part), so that both see the same load.
fn create<S: Store>(
    docs: &mut Documents<S>,
    db: &ThreadId,
    data: &Data,
    ctx: &Value,
    bare_commit: Option<BareCommit<'_>>,
) {
    let n = data.len();
    let (mut encode, mut commit, mut publish) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut body_bytes = 0;
    let mut records = 0;
    let tenth = (n / 10).max(1);
    let (mut first, mut last) = (Duration::ZERO, Duration::ZERO);
    let mut bare_us = Vec::new();
    let mut elapsed = Duration::ZERO;
    let mut cpu_ns = 0;
    for start in (0..n).step_by(BATCH) {
        let cpu_started = thread_cpu_ns();
        let batch_started = Instant::now();
        let end = (start + BATCH).min(n);
        let t0 = Instant::now();
        let events = (start..end).map(|i| create_event(data, i)).collect();
        let body = Batch::new(events).encode();
        let t1 = Instant::now();
        docs.host_mut()
            .create_record(Time(0), db, None, &body, NANOS)
            .expect("create record");
        let t2 = Instant::now();
        drain(docs);
        publish += t2.elapsed();
        commit += t2 - t1;
        encode += t1 - t0;
        body_bytes += body.len();
        records += 1;
        if start < tenth {
            first += batch_started.elapsed();
        }
        if end > n - tenth {
            last += batch_started.elapsed();
        }
        elapsed += batch_started.elapsed();
        cpu_ns += thread_cpu_ns().saturating_sub(cpu_started);
        bare_us.extend(bare_commit.map(|time| time()));
        progress("create", end, n, end - start);
    }
    let secs = elapsed.as_secs_f64();
    // The share of the first and last tenth actually loaded (whole batches).
    let edge = |d: Duration| {
        let count = tenth.div_ceil(BATCH) * BATCH;
        count.min(n) as f64 / d.as_secs_f64()
    };
    let (first_rate, last_rate) = (edge(first), edge(last));
    let per_sec = n as f64 / secs;
    emit(
        json!({
            "test": "create",
            "batch_instances": BATCH,
            "records": records,
            "record_body_bytes": body_bytes / records.max(1),
            "seconds": round(secs, 3),
            "instances_per_sec": round(n as f64 / secs, 0),
            "encode_share": round(encode.as_secs_f64() / secs, 3),
            "commit_share": round(commit.as_secs_f64() / secs, 3),
            "publish_share": round(publish.as_secs_f64() / secs, 3),
            "first_tenth_per_sec": round(first_rate, 0),
            "last_tenth_per_sec": round(last_rate, 0),
        }),
        ctx,
    );
    let slowdown = first_rate / last_rate;
    let mut line = json!({
        "goal": "batched_inserts",
        "batch_instances": BATCH,
        "per_sec": round(per_sec, 0),
        "goal_min": GOAL_INSERTS_PER_SEC,
        "slowdown_last_vs_first": round(slowdown, 3),
        "thread_cpu_share": round(cpu_ns as f64 / 1e9 / secs, 3),
        "ok": per_sec >= GOAL_INSERTS_PER_SEC,
    });
    if !bare_us.is_empty() {
        let p50 = median(&mut bare_us);
        line["bare_commit_p50_us"] = round(p50, 1);
        line["bare_commit_share"] = round(records as f64 * p50 / 1e6 / secs, 3);
    }
    emit(line, ctx);
}

/// 1b. The same through `txn_create` + `commit`, on a few transactions per size (into another
/// collection, so that the queries see exactly N instances).
fn create_api<S: Store>(docs: &mut Documents<S>, db: &ThreadId, name: &str, ctx: &Value) {
    let mut rng = seeded(1);
    for batch in [10usize, 100, 1000] {
        let txns = (1000 / batch).clamp(1, 20);
        let (mut build, mut commit) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..txns {
            let t0 = Instant::now();
            let mut txn = docs.begin(db, None);
            for _ in 0..batch {
                let doc = json!({
                    "name": "person-api",
                    "age": rng.next_u64() % AGES,
                    "city": format!("city-{:02}", rng.next_u64() % CITIES),
                });
                docs.txn_create(&mut txn, name, doc, NANOS)
                    .expect("txn_create");
            }
            let t1 = Instant::now();
            docs.commit(Time(0), txn, NANOS).expect("commit");
            drain(docs);
            build += t1 - t0;
            commit += t1.elapsed();
        }
        let instances = (txns * batch) as f64;
        let secs = (build + commit).as_secs_f64();
        eprintln!("  create_api: {txns} transactions of {batch}");
        emit(
            json!({
                "test": "create_api",
                "batch_instances": batch,
                "transactions": txns,
                "instances_per_sec": round(instances / secs, 0),
                "txn_create_us_per_instance": round(us(build) / instances, 2),
                "commit_us_per_instance": round(us(commit) / instances, 2),
            }),
            ctx,
        );
    }
}

/// 2. Write transactions of one save each.
fn write_latency<S: Store>(docs: &mut Documents<S>, db: &ThreadId, data: &Data, ctx: &Value) {
    let n = data.len();
    let (mut total, mut save, mut commit) = (Vec::new(), Vec::new(), Vec::new());
    for w in 0..WRITES {
        let i = (w * 7919) % n;
        let doc = data.doc(i, w as u64 + 1);
        let t0 = Instant::now();
        let mut txn = docs.begin(db, None);
        docs.txn_save(&mut txn, COLLECTION, doc, NANOS + w as u64)
            .expect("txn_save");
        let t1 = Instant::now();
        docs.commit(Time(0), txn, NANOS).expect("commit");
        drain(docs);
        let t2 = Instant::now();
        total.push(us(t2 - t0));
        save.push(us(t1 - t0));
        commit.push(us(t2 - t1));
        progress("write_latency", w + 1, WRITES, 1);
    }
    emit(
        json!({
            "test": "write_latency",
            "transactions": WRITES,
            "events_per_transaction": 1,
            "median_us": round(median(&mut total), 1),
            "p99_us": round(percentile(&mut total, 99.0), 1),
            "mean_us": round(total.iter().sum::<f64>() / WRITES as f64, 1),
            "txn_save_median_us": round(median(&mut save), 1),
            "commit_median_us": round(median(&mut commit), 1),
        }),
        ctx,
    );
}

/// 4. Late records folded into a history of N records.
fn fold_bench<S: Store>(kind: Kind, data: &Data, store: S) {
    let n = data.len();
    let ctx = context(kind, data);
    eprintln!("[{}] {n} records: fold_in", kind.name());
    let mut rng = seeded(1);
    let thread = ThreadId::random(Variant::Raw, &mut rng);
    let writer = PrivateKey::generate(&mut rng).public();
    let late_writer = PrivateKey::generate(&mut rng).public();
    let info = |author: &PublicKey, clock: u64, counter: u64| RecordInfo {
        thread,
        order: OrderKey {
            clock,
            log: *author.peer_id().as_bytes(),
            counter,
        },
        log: author.peer_id(),
        author: *author,
        time: NANOS,
    };
    let mut fold = Convergent::new(DocFold::new());

    // The history: the collection at clock 2, then instance j at clock 2 (j + 2): even
    // clocks, so a late record at an odd clock lands between two of them.
    let started = Instant::now();
    let mut txn = store.write().expect("write");
    let body = Batch::new(vec![DbEvent::CreateCollection(collection())]).encode();
    let outcome = fold.fold_in(&mut txn, &info(&writer, 2, 1), &body);
    assert_eq!(outcome, Ok(Outcome::Applied));
    for j in 0..n {
        let body = Batch::new(vec![create_event(data, j)]).encode();
        let rec = info(&writer, 2 * (j as u64 + 2), j as u64 + 2);
        let outcome = fold.fold_in(&mut txn, &rec, &body);
        assert_eq!(outcome, Ok(Outcome::Applied));
        if (j + 1) % BATCH == 0 {
            txn.commit().expect("commit");
            txn = store.write().expect("write");
        }
        progress("fold in order", j + 1, n, 1);
    }
    txn.commit().expect("commit");
    let secs = started.elapsed().as_secs_f64();
    let applied = fold.stats().applied;
    emit(
        json!({
            "test": "fold_in_order",
            "records": n + 1,
            "records_per_store_txn": BATCH,
            "seconds": round(secs, 3),
            "us_per_record": round(secs * 1e6 / applied as f64, 2),
        }),
        &ctx,
    );

    // The last record's clock is 2 (n + 1); k records lie above 2 (n + 1 - k) + 1.
    let last = 2 * (n as u64 + 1);
    for k in LATE.into_iter().filter(|&k| k <= n as u64) {
        let id = format!("late-{k}");
        let doc = json!({"_id": id, "name": "late", "age": 1, "city": "city-00", "_mod": NANOS});
        let body = Batch::new(vec![DbEvent::Create {
            collection: COLLECTION.into(),
            id,
            instance: doc,
        }])
        .encode();
        let rec = info(&late_writer, last - 2 * k + 1, 1);
        let mut times = Vec::new();
        let mut undone = 0;
        let mut applied = 0;
        for _ in 0..LATE_RUNS {
            let mut txn = store.write().expect("write");
            let before = fold.stats();
            let t = Instant::now();
            let outcome = fold.fold_in(&mut txn, &rec, &body);
            times.push(us(t.elapsed()));
            assert_eq!(outcome, Ok(Outcome::Applied));
            let after = fold.stats();
            undone = after.undone - before.undone;
            applied = after.applied - before.applied;
            drop(txn); // aborted: the next run sees the same history
        }
        assert_eq!(undone, k, "records undone");
        let med = median(&mut times);
        eprintln!("  fold late by {k}");
        emit(
            json!({
                "test": "fold_late",
                "history_records": n + 1,
                "k": k,
                "undone": undone,
                "applied": applied,
                "runs": LATE_RUNS,
                "us_per_late_record": round(med, 1),
                "us_per_undone_record": round(med / undone.max(1) as f64, 2),
            }),
            &ctx,
        );
    }
}

fn main() {
    let Args {
        sizes,
        kinds,
        parts,
    } = parse_args();
    for &n in &sizes {
        let data = people(n, &mut seeded(1));
        for &kind in &kinds {
            match kind {
                Kind::Memory => {
                    documents_bench(kind, &data, MemoryStore::new(), parts, None);
                    if parts == Parts::All {
                        fold_bench(kind, &data, MemoryStore::new());
                    }
                }
                Kind::Lmdb => {
                    let dir = tempfile::tempdir().expect("temporary folder");
                    let options = threads_benches::lmdb_options();
                    let open = |name: &str, options: &LmdbOptions| {
                        LmdbStore::open(dir.path().join(name), options).expect("open LMDB")
                    };
                    // The anchor is LMDB's own durable commit: no write-ahead log.
                    let bare = open("bare", &threads_benches::bare_lmdb_options());
                    let bare_commit = || {
                        let started = Instant::now();
                        let mut txn = bare.write().expect("write");
                        txn.put(b"k", &started.elapsed().as_nanos().to_be_bytes())
                            .expect("put");
                        txn.commit().expect("commit");
                        us(started.elapsed())
                    };
                    let docs = open("docs", &options);
                    let holder = docs.clone();
                    let held = HOLD_READER
                        .load(Ordering::Relaxed)
                        .then(|| holder.read().expect("read transaction"));
                    documents_bench(kind, &data, docs, parts, Some(&bare_commit));
                    drop(held);
                    if parts == Parts::All {
                        fold_bench(kind, &data, open("fold", &options));
                    }
                }
            }
        }
    }
}
