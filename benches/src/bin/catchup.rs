//! End-to-end catch-up benchmark: one host writes N records, a second host joins and pulls them
//! all through the engine (verification, paging, storage), first on the in-memory store, then
//! on LMDB (the writer's records are written once, in memory, and bulk-copied into LMDB).
//!
//! The reader is driven as a driver runs it: every message to it is checked by a pool of
//! threads ([`threads_benches::pipeline`]) and handed to its engine already verified, with
//! several pages of the log in flight (`Config::pull_window`), so the pool verifies the next
//! pages while the engine stores the current one.
//!
//! The bound is a bare Ed25519 `verify_strict` on one core of the records' own signatures (the
//! first 2,000 records' log key, signing input and signature: `RecordSignature`), measured in
//! the same run (before and after each catch-up). Until 2026-12-02 it was one signature by
//! another key over a message of the same length; `other_signature_per_sec` and
//! `ratio_to_other_signature` still give that one, for comparison. Prints one JSON
//! object per run with `catchup_records_per_sec`, `bare_verify_strict_per_sec`, their `ratio`,
//! the goal (1.2) and `ok`; `verify_only_records_per_sec` is the single-core record check
//! (decode + verify) rate; `cores_busy` is the CPU time of the whole process during the
//! catch-up over its wall-clock time (both hosts, the pool and the driving thread; 2.0 is both
//! cores of a 2-core machine), which tells a catch-up short of CPU from one waiting on
//! something.
//!
//! `cargo run --release -p threads-benches --bin catchup -- [N ...]` (default: 10000 100000).
//! `CATCHUP_WORKERS` sets the pool size (default: the number of cores); `CATCHUP_STORE`
//! (`memory` or `lmdb`) runs one store only (default: both); `CATCHUP_PAGE` sets
//! `Config::page_max_records` of both hosts (`threadsd` sets 10000), `CATCHUP_PULL_PAGE` their
//! `pull_page_records` (the page size asked), `CATCHUP_WINDOW` their `pull_window` (default 4,
//! as `threadsd`) and `CATCHUP_JOURNAL` their `cid_journal_max` (0: every CID index entry
//! written straight into the sorted index, as before the journal).

use ed25519_dalek::Signature;
use std::cmp::min;
use std::hint::black_box;
use std::ops::ControlFlow;
use std::time::Instant;
use threads_benches::RecordSignature;
use threads_benches::pipeline::{Stats, process_cpu_seconds, run_until_checked};
use threads_benches::stack;
use threads_driver_tokio::lmdb::{LmdbOptions, LmdbStore};
use threads_protocol::counter::LogCounter;
use threads_protocol::engine::loopback::Loopback;
use threads_protocol::engine::{AcceptAll, Config, Event, Host, NewThread, ThreadInfo, Time};
use threads_protocol::identity::PrivateKey;
use threads_protocol::record::{self, RecordBundle};
use threads_protocol::rng::seeded;
use threads_protocol::store::memory::MemoryStore;
use threads_protocol::store::{Direction, KeyRange, ReadTxn, Store, WriteTxn};

const BODY_LEN: usize = 256;
/// Catch-up rate wanted, as a multiple of the single-core bare `verify_strict` rate.
const GOAL: f64 = 1.2;
/// Records whose signatures a measurement of the bound checks (each once).
const BARE_CHECKS: usize = 2_000;

fn config() -> Config {
    Config {
        sync_interval_min_ms: 100,
        page_max_records: env_or("CATCHUP_PAGE", Config::default().page_max_records),
        pull_page_records: env_or("CATCHUP_PULL_PAGE", Config::default().pull_page_records),
        pull_window: env_or("CATCHUP_WINDOW", 4),
        cid_journal_max: env_or("CATCHUP_JOURNAL", Config::default().cid_journal_max),
        ..Config::default()
    }
}

/// A number from the environment, or `default`.
fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Workers of the verification pool.
fn workers() -> usize {
    std::env::var("CATCHUP_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
}

/// Bare strict checks of the records' own signatures ([`RecordSignature`]), on one core: checks
/// per second. The signatures are checked in [`stack::POSITIONS`] runs, each at its own depth
/// of the stack ([`threads_benches::stack`]: at one depth the rate depends on where the stack
/// landed, by up to ~12 % for this check).
fn bare_verify_rate(src: &Source) -> f64 {
    let share = src.signatures.len().div_ceil(stack::POSITIONS).max(1);
    let started = Instant::now();
    for (depth, signatures) in src.signatures.chunks(share).enumerate() {
        stack::at_depth(depth, &mut || {
            for signature in signatures {
                signature.verify();
            }
        });
    }
    src.signatures.len() as f64 / started.elapsed().as_secs_f64()
}

/// The bound as it was measured until 2026-12-02, for comparison: one signature by another key
/// over a message as long as a record's signing input, checked [`BARE_CHECKS`] times.
fn other_signature_rate(src: &Source) -> f64 {
    let signer = PrivateKey::from_seed([9; 32]);
    let len = src.signatures.first().map_or(0, RecordSignature::input_len);
    let message: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
    let signature = Signature::from_bytes(&signer.sign(&message));
    let key = *signer.public().as_dalek();
    let started = Instant::now();
    for _ in 0..BARE_CHECKS {
        key.verify_strict(black_box(&message), &signature)
            .expect("verifies");
    }
    BARE_CHECKS as f64 / started.elapsed().as_secs_f64()
}

/// The writer's state: a memory store holding one thread of `n` records, and the thread.
struct Source {
    store: MemoryStore,
    info: ThreadInfo,
    write_secs: f64,
    /// The signature checks of the first records (at most [`BARE_CHECKS`]): the bound.
    signatures: Vec<RecordSignature>,
}

/// Writes `n` records through the engine on an in-memory host.
fn write_source(n: u64) -> Source {
    let store = MemoryStore::new();
    let mut host = Host::open(config(), store.clone(), AcceptAll, seeded(1), None, Time(0))
        .expect("open writer");
    let info = host
        .create_thread(Time(0), NewThread::default())
        .expect("create thread");
    let body = vec![0x5a; BODY_LEN];
    let started = Instant::now();
    for _ in 0..n {
        host.create_record(Time(0), &info.id, None, &body, 0)
            .expect("write");
        while host.poll_output().is_some() {}
    }
    let write_secs = started.elapsed().as_secs_f64();
    let log = info.logs[0].id;
    let signatures = host
        .records(&info.id, &log, LogCounter::FIRST, BARE_CHECKS, usize::MAX)
        .expect("records")
        .iter()
        .map(|b| RecordSignature::of(&RecordBundle::decode(b).expect("decode"), &log, &info.key))
        .collect();
    Source {
        store,
        info,
        write_secs,
        signatures,
    }
}

/// Copies every key of `from` into `to` in one transaction.
fn copy_into<S: Store>(from: &MemoryStore, to: &S) {
    let read = from.read().expect("read source");
    let mut txn = to.write().expect("write target");
    read.try_scan(KeyRange::all(), Direction::Forward, &mut |k, v| {
        txn.put(k, v)?;
        Ok(ControlFlow::Continue(()))
    })
    .expect("copy the source store");
    txn.commit().expect("commit copy");
}

/// A second host on `reader` joins the thread of a host on `writer` (holding `src`'s data) and
/// pulls all `n` records through the verification pool.
fn catch_up<S: Store>(n: u64, src: &Source, writer: S, reader: S) -> Run {
    let t = src.info.id;
    let hosts = vec![
        Host::open(config(), writer, AcceptAll, seeded(1), None, Time(0)).expect("open writer"),
        Host::open(config(), reader, AcceptAll, seeded(2), None, Time(0)).expect("open reader"),
    ];
    let mut net = Loopback::new(hosts, Time(0));
    let addr = format!(
        "/ip4/127.0.0.1/tcp/4006/p2p/{}/thread/{}",
        net.hosts[0].peer_id(),
        t
    )
    .parse()
    .expect("address");
    let workers = workers();
    let bare_before = bare_verify_rate(src);
    let other_before = other_signature_rate(src);
    let cpu_before = process_cpu_seconds();
    let started = Instant::now();
    net.hosts[1]
        .join_thread(Time(0), &addr, src.info.key.clone())
        .expect("join");
    let (done, stats) = run_until_checked(&mut net, 1, workers, 3_600_000, |net| {
        net.hosts[1]
            .heads(&t)
            .map(|h| h.iter().map(|(_, height, _)| height.0).sum::<u64>() == n)
            .unwrap_or(false)
    });
    assert!(done, "catch-up did not complete");
    let catchup_secs = started.elapsed().as_secs_f64();
    let cpu = cpu_before.zip(process_cpu_seconds()).map(|(a, b)| b - a);
    let bare_after = bare_verify_rate(src);
    let other_after = other_signature_rate(src);
    let misbehaved = net.events[1]
        .iter()
        .filter(|e| matches!(e, Event::PeerMisbehaved { .. }))
        .count();
    assert_eq!(misbehaved, 0, "an honest writer was reported");

    // The same records, verified one by one without the engine.
    let log = src.info.logs[0].id;
    let bundles = net.hosts[0]
        .records(&t, &log, LogCounter::FIRST, n as usize, usize::MAX)
        .expect("records");
    let check = min(bundles.len(), 5_000);
    let started = Instant::now();
    for b in &bundles[..check] {
        let bundle = RecordBundle::decode(b).expect("decode");
        record::verify(bundle, &t, &log, src.info.key.service()).expect("verify");
    }
    Run {
        catchup_secs,
        verify_rate: check as f64 / started.elapsed().as_secs_f64(),
        bare_rate: (bare_before + bare_after) / 2.0,
        other_rate: (other_before + other_after) / 2.0,
        cores_busy: cpu.map(|c| c / catchup_secs),
        workers,
        stats,
    }
}

/// The figures of one catch-up.
struct Run {
    catchup_secs: f64,
    /// Single-core record checks (decode + verify) per second.
    verify_rate: f64,
    /// Single-core bare `verify_strict` per second, mean of before and after.
    bare_rate: f64,
    /// [`other_signature_rate`], mean of before and after.
    other_rate: f64,
    /// CPU seconds of the whole process during the catch-up over its wall-clock seconds (both
    /// hosts, the pool, the driving thread): 2.0 keeps both cores of this machine busy.
    cores_busy: Option<f64>,
    workers: usize,
    /// Where the driving thread's time went.
    stats: Stats,
}

fn report(store: &str, n: u64, write: f64, run: Run) {
    let rate = n as f64 / run.catchup_secs;
    let ratio = rate / run.bare_rate;
    let c = config();
    println!(
        "{{\"bench\":\"catchup\",\"store\":\"{store}\",\"records\":{n},\"body_bytes\":{BODY_LEN},\
         \"workers\":{},\"pull_window\":{},\"page_max_records\":{},\"pull_page_records\":{},\
         \"cid_journal_max\":{},\
         \"write_records_per_sec\":{:.0},\"catchup_seconds\":{:.3},\
         \"catchup_records_per_sec\":{rate:.0},\"verify_only_records_per_sec\":{:.0},\
         \"bare_verify_strict_per_sec\":{:.0},\"ratio\":{ratio:.3},\"goal\":{GOAL},\"ok\":{},\
         \"other_signature_per_sec\":{:.0},\"ratio_to_other_signature\":{:.3},\
         \"reader_engine_seconds\":{:.3},\"writer_engine_seconds\":{:.3},\"waiting_for_pool_seconds\":{:.3},\"driver_thread_cpu_seconds\":{},\
         \"cores_busy\":{}}}",
        run.workers,
        c.pull_window,
        c.page_max_records,
        c.pull_page_records,
        c.cid_journal_max,
        n as f64 / write,
        run.catchup_secs,
        run.verify_rate,
        run.bare_rate,
        ratio >= GOAL,
        run.other_rate,
        rate / run.other_rate,
        run.stats.engine,
        run.stats.others,
        run.stats.waiting,
        run.stats
            .cpu
            .map_or_else(|| "null".to_string(), |c| format!("{c:.2}")),
        run.cores_busy
            .map_or_else(|| "null".to_string(), |c| format!("{c:.2}")),
    );
}

fn main() {
    let sizes: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| match a.replace('_', "").parse() {
            Ok(n) => n,
            Err(_) => {
                eprintln!(
                    "{a:?} is not a record count\nusage: catchup [N ...]   (default: 10000 100000)"
                );
                std::process::exit(2)
            }
        })
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000, 100_000]
    } else {
        sizes
    };
    let only = std::env::var("CATCHUP_STORE").ok();
    let wanted = |store: &str| only.as_deref().is_none_or(|o| o == store);
    for &n in &sizes {
        let src = write_source(n);
        if wanted("memory") {
            let result = catch_up(n, &src, src.store.clone(), MemoryStore::new());
            report("memory", n, src.write_secs, result);
        }
        if !wanted("lmdb") {
            continue;
        }
        let dir = tempfile::tempdir().expect("temporary folder");
        let options = LmdbOptions {
            map_size: 16 << 30,
            ..LmdbOptions::default()
        };
        let open = |name: &str| LmdbStore::open(dir.path().join(name), &options).expect("LMDB");
        let writer = open("writer");
        copy_into(&src.store, &writer);
        let result = catch_up(n, &src, writer, open("reader"));
        report("lmdb", n, src.write_secs, result);
    }
}
