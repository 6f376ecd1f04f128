//! End-to-end catch-up benchmark: one host writes N records, a second host joins and pulls them
//! all through the engine (verification, paging, storage), first on the in-memory store, then
//! on LMDB. Prints one JSON object per run, plus the verification-only rate for comparison, so
//! the engine's own overhead is visible.
//!
//! `cargo run --release -p threads-benches --bin catchup -- [N ...]` (default: 10000 100000).

use std::time::Instant;
use threads_driver_tokio::lmdb::{LmdbOptions, LmdbStore};
use threads_protocol::engine::loopback::Loopback;
use threads_protocol::engine::{AcceptAll, Config, Host, NewThread, Time};
use threads_protocol::record::{self, RecordBundle};
use threads_protocol::rng::seeded;
use threads_protocol::store::Store;
use threads_protocol::store::memory::MemoryStore;

const BODY_LEN: usize = 256;

fn config() -> Config {
    Config {
        sync_interval_min_ms: 100,
        ..Config::default()
    }
}

/// Runs one catch-up of `n` records between two hosts built by `open`; returns
/// (write seconds, catch-up seconds, verify-only seconds).
fn run<S: Store>(n: u64, mut open: impl FnMut(u64) -> S) -> (f64, f64, f64) {
    let hosts = vec![
        Host::open(config(), open(0), AcceptAll, seeded(1), None, Time(0)).expect("open host 0"),
        Host::open(config(), open(1), AcceptAll, seeded(2), None, Time(0)).expect("open host 1"),
    ];
    let mut net = Loopback::new(hosts, Time(0));
    let info = net.hosts[0]
        .create_thread(Time(0), NewThread::default())
        .expect("create thread");
    let t = info.id;
    let body = vec![0x5a; BODY_LEN];
    let started = Instant::now();
    for _ in 0..n {
        net.hosts[0]
            .create_record(Time(0), &t, None, &body, 0)
            .expect("write");
        while net.hosts[0].poll_output().is_some() {}
    }
    let write_secs = started.elapsed().as_secs_f64();

    let addr = format!(
        "/ip4/127.0.0.1/tcp/4006/p2p/{}/thread/{}",
        net.hosts[0].peer_id(),
        t
    )
    .parse()
    .expect("address");
    let started = Instant::now();
    net.hosts[1]
        .join_thread(Time(0), &addr, info.key.clone())
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
    let log = net.hosts[0].thread_info(&t).expect("info").logs[0].id;
    let bundles = net.hosts[0]
        .records(
            &t,
            &log,
            threads_protocol::counter::LogCounter::FIRST,
            n as usize,
            usize::MAX,
        )
        .expect("records");
    let started = Instant::now();
    for b in &bundles {
        let bundle = RecordBundle::decode(b).expect("decode");
        record::verify(bundle, &t, &log, info.key.service()).expect("verify");
    }
    let verify_secs = started.elapsed().as_secs_f64();
    (write_secs, catchup_secs, verify_secs)
}

fn report(store: &str, n: u64, (write, catchup, verify): (f64, f64, f64)) {
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
        report("memory", n, run(n, |_| MemoryStore::new()));
        let dir = tempfile::tempdir().expect("temporary folder");
        let options = LmdbOptions {
            map_size: 16 << 30,
            ..LmdbOptions::default()
        };
        let result = run(n, |i| {
            LmdbStore::open(dir.path().join(format!("host{i}")), &options).expect("open LMDB")
        });
        report("lmdb", n, result);
    }
}
