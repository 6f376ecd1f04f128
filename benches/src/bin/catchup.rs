//! End-to-end catch-up benchmark: one host writes N records, a second host joins and pulls them
//! all through the engine (verification, paging, storage), first on the in-memory store, then
//! on LMDB (the writer's records are written once, in memory, and bulk-copied into LMDB). Prints one JSON object per run, plus the verification-only rate for comparison, so
//! the engine's own overhead is visible.
//!
//! `cargo run --release -p threads-benches --bin catchup -- [N ...]` (default: 10000 100000).

use std::ops::ControlFlow;
use std::time::Instant;
use threads_driver_tokio::lmdb::{LmdbOptions, LmdbStore};
use threads_protocol::counter::LogCounter;
use threads_protocol::engine::loopback::Loopback;
use threads_protocol::engine::{AcceptAll, Config, Host, NewThread, ThreadInfo, Time};
use threads_protocol::record::{self, RecordBundle};
use threads_protocol::rng::seeded;
use threads_protocol::store::memory::MemoryStore;
use threads_protocol::store::{Direction, KeyRange, ReadTxn, Store, WriteTxn};

const BODY_LEN: usize = 256;

fn config() -> Config {
    Config {
        sync_interval_min_ms: 100,
        ..Config::default()
    }
}

/// The writer's state: a memory store holding one thread of `n` records, and the thread.
struct Source {
    store: MemoryStore,
    info: ThreadInfo,
    write_secs: f64,
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
    Source {
        store,
        info,
        write_secs: started.elapsed().as_secs_f64(),
    }
}

/// Copies every key of `from` into `to` in one transaction.
fn copy_into<S: Store>(from: &MemoryStore, to: &S) {
    let read = from.read().expect("read source");
    let mut txn = to.write().expect("write target");
    let mut failed = None;
    read.scan(KeyRange::all(), Direction::Forward, &mut |k, v| {
        if let Err(e) = txn.put(k, v) {
            failed = Some(e);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    })
    .expect("scan source");
    if let Some(e) = failed {
        panic!("copying the source store failed: {e}");
    }
    txn.commit().expect("commit copy");
}

/// A second host on `reader` joins the thread of a host on `writer` (holding `src`'s data) and
/// pulls all `n` records; returns (catch-up seconds, verify-only seconds).
fn catch_up<S: Store>(n: u64, src: &Source, writer: S, reader: S) -> (f64, f64) {
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
    let started = Instant::now();
    net.hosts[1]
        .join_thread(Time(0), &addr, src.info.key.clone())
        .expect("join");
    let done = net.run_until(3_600_000, |net| {
        net.hosts[1]
            .heads(&t)
            .map(|h| h.iter().map(|(_, height, _)| height.0).sum::<u64>() == n)
            .unwrap_or(false)
    });
    assert!(done, "catch-up did not complete");
    let catchup_secs = started.elapsed().as_secs_f64();

    // The same records, verified one by one without the engine.
    let log = src.info.logs[0].id;
    let bundles = net.hosts[0]
        .records(&t, &log, LogCounter::FIRST, n as usize, usize::MAX)
        .expect("records");
    let started = Instant::now();
    for b in &bundles {
        let bundle = RecordBundle::decode(b).expect("decode");
        record::verify(bundle, &t, &log, src.info.key.service()).expect("verify");
    }
    (catchup_secs, started.elapsed().as_secs_f64())
}

fn report(store: &str, n: u64, write: f64, (catchup, verify): (f64, f64)) {
    println!(
        "{{\"bench\":\"catchup\",\"store\":\"{store}\",\"records\":{n},\"body_bytes\":{BODY_LEN},\
         \"write_records_per_sec\":{:.0},\"catchup_seconds\":{catchup:.3},\
         \"catchup_records_per_sec\":{:.0},\"verify_only_records_per_sec\":{:.0},\
         \"engine_cost_vs_verify\":{:.2}}}",
        n as f64 / write,
        n as f64 / catchup,
        n as f64 / verify,
        catchup / verify,
    );
}

fn main() {
    let sizes: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("record counts are integers"))
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000, 100_000]
    } else {
        sizes
    };
    for &n in &sizes {
        let src = write_source(n);
        let result = catch_up(n, &src, src.store.clone(), MemoryStore::new());
        report("memory", n, src.write_secs, result);
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
