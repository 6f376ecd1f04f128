//! Offline writers benchmark: a writer that was offline while the others wrote `n` records comes
//! back with `m` records, all ordered (by Lamport clock) before almost everything the others
//! wrote. Prints one JSON object per measurement on stdout (progress goes to stderr).
//!
//! The history, folded in order: the collection `items` (schema `_id`, `name`, `n`; a unique
//! index on `name` and an index on `n`), 1000 *base* instances the returning writer saw before
//! it went offline, then `n` records of three other writers (one event each): a save of a base
//! instance for every tenth record, a create of a new instance otherwise.
//!
//! The returning writer's `m` records (one event each) arrive in pages of
//! `Config::default().page_max_records` records, one batch (one store transaction) per page, as
//! the engine hands them over:
//!
//! * `disjoint`: creates of instances nobody else touched;
//! * `conflicting`: the same, except every tenth record (10 %) saves a base instance that the
//!   others also saved.
//! * `single`: one record, a save of a base instance the others saved (its dependents are those
//!   saves).
//!
//! Every case is folded with [`Strategy::Dependencies`] (the default; median of [`RUNS`] runs,
//! the first run's time beside it); with
//! [`Strategy::WholeTail`] (one rewind per batch) and [`Strategy::Reference`] (one rewind per
//! record) when affordable (`m × n` at most `--full-work`, default 1e6). Reference figures that
//! are not measured are extrapolated from the measured ones (undo/redo counts exactly, time
//! linearly in the records undone and redone) and marked `"extrapolated": true`. Each case runs
//! in a write transaction that is then aborted, so every case sees the same history; the
//! strategies' results are compared (digest of every key the fold keeps) when more than one ran.
//!
//! `cargo run --release -p threads-benches --bin offline -- [--history N ...] [--returning M
//! ...] [--store memory|lmdb|both] [--full-work W]` (defaults: history 10000 100000, returning
//! 100 1000, memory).

use std::time::Instant;
// Linked for its global allocator: the figures are those of `threadsd`'s allocator (mimalloc).
use threads_benches as _;

use serde_json::{Value, json};
use threads_driver_tokio::lmdb::{LmdbOptions, LmdbStore};
use threads_protocol::engine::Config;
use threads_protocol::id::{ThreadId, Variant};
use threads_protocol::identity::{PrivateKey, PublicKey};
use threads_protocol::rng::seeded;
use threads_protocol::store::memory::MemoryStore;
use threads_protocol::store::{Store, WriteTxn};
use threads_reducer::db::{Batch, CollectionConfig, DbEvent, DocFold, IndexSpec};
use threads_reducer::fold::{
    Convergent, FoldStats, OrderKey, Outcome, RecordInfo, Strategy, fold_digest,
};

/// Instances the returning writer saw before going offline.
const BASE: u64 = 1000;
/// Timed runs of each case with [`Strategy::Dependencies`] (the median is reported).
const RUNS: usize = 5;
/// Records per store transaction while the history is built.
const CHUNK: usize = 1000;
const NANOS: u64 = 1_700_000_000_000_000_000;
const COLLECTION: &str = "items";

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

struct Args {
    histories: Vec<u64>,
    returning: Vec<u64>,
    kinds: Vec<Kind>,
    full_work: u64,
}

fn usage(msg: &str) -> ! {
    eprintln!("{msg}");
    eprintln!(
        "usage: offline [--history N ...] [--returning M ...] [--store memory|lmdb|both] \
         [--full-work W]"
    );
    std::process::exit(2)
}

fn numbers(args: &mut std::iter::Peekable<impl Iterator<Item = String>>) -> Vec<u64> {
    let mut out = Vec::new();
    while let Some(n) = args.next_if(|v| !v.starts_with('-')) {
        match n.replace('_', "").parse::<u64>() {
            Ok(n) if n > 0 => out.push(n),
            _ => usage(&format!("not a positive count: {n}")),
        }
    }
    out
}

fn parse_args() -> Args {
    let mut a = Args {
        histories: Vec::new(),
        returning: Vec::new(),
        kinds: vec![Kind::Memory],
        full_work: 1_000_000,
    };
    let mut args = std::env::args().skip(1).peekable();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--history" => a.histories.extend(numbers(&mut args)),
            "--returning" => a.returning.extend(numbers(&mut args)),
            "--full-work" => match numbers(&mut args).as_slice() {
                [w] => a.full_work = *w,
                _ => usage("--full-work takes one number"),
            },
            "--store" => {
                a.kinds = match args.next().as_deref() {
                    Some("memory") => vec![Kind::Memory],
                    Some("lmdb") => vec![Kind::Lmdb],
                    Some("both") => vec![Kind::Memory, Kind::Lmdb],
                    other => usage(&format!("unknown store: {other:?}")),
                }
            }
            "--help" | "-h" => usage("offline writers benchmark"),
            other => usage(&format!("unknown argument: {other}")),
        }
    }
    if a.histories.is_empty() {
        a.histories = vec![10_000, 100_000];
    }
    if a.returning.is_empty() {
        a.returning = vec![100, 1000];
    }
    a.returning.sort_unstable();
    a
}

/// The thread and the writers' identities.
struct World {
    thread: ThreadId,
    founder: PublicKey,
    others: [PublicKey; 3],
    returning: PublicKey,
}

impl World {
    fn new() -> Self {
        let mut rng = seeded(9);
        let thread = ThreadId::random(Variant::Raw, &mut rng);
        let mut key = || PrivateKey::generate(&mut rng).public();
        World {
            thread,
            founder: key(),
            others: [key(), key(), key()],
            returning: key(),
        }
    }

    fn info(&self, author: &PublicKey, clock: u64, counter: u64) -> RecordInfo {
        RecordInfo {
            thread: self.thread,
            order: OrderKey {
                clock,
                log: *author.peer_id().as_bytes(),
                counter,
            },
            log: author.peer_id(),
            author: *author,
            time: NANOS + clock,
        }
    }

    /// The history in order: collection, base instances, then `n` records of the others.
    fn history(&self, n: u64) -> Vec<(RecordInfo, Vec<u8>)> {
        let mut out = Vec::with_capacity((n + BASE + 1) as usize);
        let coll = CollectionConfig {
            name: COLLECTION.into(),
            schema: json!({"type": "object", "properties": {
                "_id": {"type": "string"}, "name": {"type": "string"}, "n": {"type": "integer"}}}),
            indexes: vec![
                IndexSpec {
                    path: "name".into(),
                    unique: true,
                },
                IndexSpec {
                    path: "n".into(),
                    unique: false,
                },
            ],
            write_validator: String::new(),
            read_filter: String::new(),
        };
        let body = Batch::new(vec![DbEvent::CreateCollection(coll)]).encode();
        out.push((self.info(&self.founder, 1, 1), body));
        for b in 0..BASE {
            let body = create(&format!("b{b}"), b);
            out.push((self.info(&self.founder, b + 2, b + 2), body));
        }
        let mut counters = [0u64; 3];
        for j in 0..n {
            let w = (j % 3) as usize;
            counters[w] += 1;
            let body = if j % 10 == 0 {
                save(&format!("b{}", (j / 10) % BASE), j)
            } else {
                create(&format!("h{j}"), j)
            };
            let clock = BASE + 2 + j;
            out.push((self.info(&self.others[w], clock, counters[w]), body));
        }
        out
    }

    /// The returning writer's records (it saw the base instances, at clock `BASE + 1`).
    fn returning(&self, m: u64, case: &str) -> Vec<(RecordInfo, Vec<u8>)> {
        (0..m)
            .map(|i| {
                let body = if case != "disjoint" && i % 10 == 0 {
                    save(&format!("b{}", (i * 7 + 3) % BASE), 1_000_000 + i)
                } else {
                    create(&format!("r{i}"), 1_000_000 + i)
                };
                (self.info(&self.returning, BASE + 2 + i, i + 1), body)
            })
            .collect()
    }
}

fn create(id: &str, k: u64) -> Vec<u8> {
    Batch::new(vec![DbEvent::Create {
        collection: COLLECTION.into(),
        id: id.into(),
        instance: json!({"_id": id, "name": format!("name-{id}"), "n": k % 100, "_mod": NANOS}),
    }])
    .encode()
}

fn save(id: &str, k: u64) -> Vec<u8> {
    Batch::new(vec![DbEvent::Save {
        collection: COLLECTION.into(),
        id: id.into(),
        patch: json!({"n": k % 100, "_mod": NANOS + k}),
    }])
    .encode()
}

fn r(x: f64, digits: i32) -> Value {
    let m = 10f64.powi(digits);
    json!((x * m).round() / m)
}

fn strategy_name(s: Strategy) -> &'static str {
    match s {
        Strategy::Reference => "reference",
        Strategy::WholeTail => "whole_tail",
        Strategy::Dependencies => "dependencies",
    }
}

/// One measured fold of the returning records.
struct Measured {
    seconds: f64,
    stats: FoldStats,
    batches: usize,
    digest: Option<[u8; 32]>,
}

/// Folds `records` with `fold` (whose caches, compiled schemas, are warm as in a running host)
/// in a write transaction that is then aborted.
fn measure<S: Store>(
    store: &S,
    fold: &mut Convergent<DocFold>,
    records: &[(RecordInfo, Vec<u8>)],
    thread: &ThreadId,
    digest: bool,
) -> Measured {
    let page = Config::default().page_max_records.max(1) as usize;
    let before = fold.stats();
    let mut txn = store.write().expect("write");
    let started = Instant::now();
    let mut batches = 0;
    for chunk in records.chunks(page) {
        let outcomes = fold.fold_batch(&mut txn, chunk).expect("fold");
        assert!(outcomes.iter().all(|o| *o == Outcome::Applied));
        batches += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    let digest = digest.then(|| fold_digest(&txn, thread).expect("digest"));
    drop(txn); // aborted: the next case sees the same history
    let after = fold.stats();
    Measured {
        seconds,
        stats: FoldStats {
            applied: after.applied - before.applied,
            undone: after.undone - before.undone,
            redone: after.redone - before.redone,
            retried: after.retried - before.retried,
            late: after.late - before.late,
        },
        batches,
        digest,
    }
}

/// Cost of one undo plus one redo in µs on one store, from the reference run that undid the
/// most records (with that count) on the largest history measured so far.
type Calibration = Option<(u64, f64)>;

fn run<S: Store>(kind: Kind, store: S, n: u64, args: &Args, per: &mut Calibration) {
    // A reference run on this history replaces the calibration of smaller ones.
    let mut here: Calibration = None;
    let world = World::new();
    eprintln!("[{}] history of {n} records: folding in order", kind.name());
    let history = world.history(n);
    let mut fold = Convergent::new(DocFold::new());
    let started = Instant::now();
    for chunk in history.chunks(CHUNK) {
        let mut txn = store.write().expect("write");
        fold.fold_batch(&mut txn, chunk).expect("fold");
        txn.commit().expect("commit");
    }
    let build = started.elapsed().as_secs_f64();
    let ctx = json!({
        "bench": "offline",
        "store": kind.name(),
        "history": n,
        "base_instances": BASE,
        "indexes": "name (unique), n",
        "batch_records": Config::default().page_max_records,
    });
    emit(
        json!({
            "test": "build_history",
            "records": history.len(),
            "seconds": r(build, 2),
            "us_per_record": r(build * 1e6 / history.len() as f64, 1),
        }),
        &ctx,
    );
    let mut folds: Vec<(Strategy, Convergent<DocFold>)> = [
        Strategy::Dependencies,
        Strategy::WholeTail,
        Strategy::Reference,
    ]
    .into_iter()
    .map(|s| (s, Convergent::with_strategy(DocFold::new(), s)))
    .collect();
    // Warm the caches (compiled schema) with a record after the whole history, aborted.
    let warm = vec![(
        world.info(&world.returning, BASE + n + 10, 1),
        create("warm", 0),
    )];
    for (_, fold) in &mut folds {
        measure(&store, fold, &warm, &world.thread, false);
    }
    // The single record first: its reference run calibrates the extrapolations.
    let mut cases: Vec<(String, u64)> = vec![("single".into(), 1)];
    for &m in &args.returning {
        cases.push(("disjoint".into(), m));
        cases.push(("conflicting".into(), m));
    }
    for (case, m) in cases {
        let records = world.returning(m, &case);
        let affordable = m.saturating_mul(n) <= args.full_work;
        let mut digests = Vec::new();
        for (strategy, fold) in &mut folds {
            let strategy = *strategy;
            if strategy != Strategy::Dependencies && !affordable {
                continue;
            }
            eprintln!("  {case} m={m}: {}", strategy_name(strategy));
            // The fast strategy is timed over several runs (median): a single run's time
            // also holds the allocator's warm-up after the previous case freed its copies.
            let runs = if strategy == Strategy::Dependencies {
                RUNS
            } else {
                1
            };
            let mut all: Vec<Measured> = (0..runs)
                .map(|_| measure(&store, fold, &records, &world.thread, affordable))
                .collect();
            let first = all[0].seconds;
            all.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
            let x = all.swap_remove(runs / 2);
            digests.extend(x.digest);
            if strategy == Strategy::Reference
                && x.stats.undone > 0
                && here.is_none_or(|(undone, _)| x.stats.undone > undone)
            {
                here = Some((
                    x.stats.undone,
                    x.seconds * 1e6 / (2.0 * x.stats.undone as f64),
                ));
                *per = here;
            }
            emit(
                json!({
                    "test": "returning",
                    "case": case,
                    "returning": m,
                    "strategy": strategy_name(strategy),
                    "extrapolated": false,
                    "seconds": r(x.seconds, 4),
                    "runs": runs,
                    "first_run_seconds": r(first, 4),
                    "ms_per_returning_record": r(x.seconds * 1e3 / m as f64, 3),
                    "undone": x.stats.undone,
                    "redone": x.stats.redone,
                    "retried": x.stats.retried,
                    "late": x.stats.late,
                    "batches": x.batches,
                }),
                &ctx,
            );
        }
        assert!(
            digests.windows(2).all(|w| w[0] == w[1]),
            "strategies disagree"
        );
        if !affordable {
            extrapolate(&ctx, &case, m, n, per.map(|(_, p)| p));
        }
    }
}

/// Reference and whole-tail figures too slow to measure: undo counts from the shape of the
/// history (exact up to ties of equal clocks), time from `per`, the cost of one undo plus one
/// redo measured by the largest reference run (printed as `us_per_undo_redo`).
fn extrapolate(ctx: &Value, case: &str, m: u64, n: u64, per: Option<f64>) {
    let page = u64::from(Config::default().page_max_records.max(1));
    // Record i of the returning writer is before the others' records from clock BASE + 2 + i
    // on: n - i of them (ties go by log id and can shift this by one), plus the returning
    // writer's own later records already applied (none: they are folded in order).
    let reference: u64 = (0..m).map(|i| n.saturating_sub(i)).sum();
    // Whole tail: one rewind per batch, from the batch's first record.
    let whole: u64 = (0..m)
        .step_by(page as usize)
        .map(|i| n.saturating_sub(i))
        .sum();
    for (name, undone) in [("reference", reference), ("whole_tail", whole)] {
        emit(
            json!({
                "test": "returning",
                "case": case,
                "returning": m,
                "strategy": name,
                "extrapolated": true,
                "seconds": per.map(|p| r(p * 2.0 * undone as f64 / 1e6, 1)),
                "undone": undone,
                "redone": undone,
                "us_per_undo_redo": per.map(|p| r(p, 2)),
            }),
            ctx,
        );
    }
}

fn emit(mut line: Value, ctx: &Value) {
    if let (Value::Object(l), Value::Object(c)) = (&mut line, ctx) {
        let mut out = c.clone();
        out.append(l);
        *l = out;
    }
    println!("{line}");
}

fn main() {
    let args = parse_args();
    let mut histories = args.histories.clone();
    histories.sort_unstable();
    let mut per_store: [Calibration; 2] = [None, None];
    for &n in &histories {
        for &kind in &args.kinds {
            let per = &mut per_store[kind as usize];
            match kind {
                Kind::Memory => run(kind, MemoryStore::new(), n, &args, per),
                Kind::Lmdb => {
                    let dir = tempfile::tempdir().expect("temporary folder");
                    let store =
                        LmdbStore::open(dir.path().join("offline"), &LmdbOptions::default())
                            .expect("open LMDB");
                    run(kind, store, n, &args, per);
                }
            }
        }
    }
}
