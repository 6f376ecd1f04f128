//! Helpers shared by the engine tests.
#![allow(dead_code)]

use threads_protocol::addr::ThreadAddr;
use threads_protocol::engine::loopback::Loopback;
use threads_protocol::engine::{AcceptAll, Application, Config, Host, Time};
use threads_protocol::id::ThreadId;
use threads_protocol::rng::seeded;
use threads_protocol::store::Store;
use threads_protocol::store::memory::MemoryStore;

/// A fast-timer configuration for tests.
pub fn config() -> Config {
    Config {
        sync_interval_min_ms: 100,
        sync_interval_max_ms: 10_000,
        pull_timeout_ms: 2_000,
        ..Config::default()
    }
}

/// Opens a host on `store` with a seed.
pub fn host<S: Store, A: Application>(store: S, app: A, seed: u64, cfg: Config) -> Host<S, A> {
    Host::open(cfg, store, app, seeded(seed), None, Time(0)).unwrap()
}

/// `n` hosts on fresh memory stores.
pub fn net(n: usize, seed: u64) -> (Loopback<MemoryStore, AcceptAll>, Vec<MemoryStore>) {
    let stores: Vec<MemoryStore> = (0..n).map(|_| MemoryStore::new()).collect();
    let hosts = stores
        .iter()
        .enumerate()
        .map(|(i, s)| {
            host(
                s.clone(),
                AcceptAll,
                seed.wrapping_mul(1000).wrapping_add(i as u64),
                config(),
            )
        })
        .collect();
    (Loopback::new(hosts, Time(0)), stores)
}

/// The address of `thread` at host `i`.
pub fn addr<S: Store, A: Application>(
    net: &Loopback<S, A>,
    i: usize,
    thread: &ThreadId,
) -> ThreadAddr {
    let s = format!(
        "/ip4/127.0.0.1/tcp/4006/p2p/{}/thread/{}",
        net.hosts[i].peer_id(),
        thread
    );
    s.parse().unwrap()
}

/// Whether every listed host has the same heads for `thread`.
pub fn converged<S: Store, A: Application>(
    net: &Loopback<S, A>,
    hosts: &[usize],
    thread: &ThreadId,
) -> bool {
    let first = net.hosts[hosts[0]].heads(thread).ok();
    first.is_some()
        && hosts
            .iter()
            .all(|&i| net.hosts[i].heads(thread).ok() == first)
}

/// Total records over the logs of `thread` at host `i`.
pub fn total<S: Store, A: Application>(net: &Loopback<S, A>, i: usize, thread: &ThreadId) -> u64 {
    net.hosts[i]
        .heads(thread)
        .map(|h| h.iter().map(|(_, height, _)| height.0).sum())
        .unwrap_or(0)
}

/// Creates a thread on host 0 and makes the `joiners` join it through host 0.
pub fn shared<S: Store, A: Application>(
    net: &mut Loopback<S, A>,
    joiners: &[usize],
) -> threads_protocol::engine::ThreadInfo {
    let info = net.hosts[0]
        .create_thread(Time(0), threads_protocol::engine::NewThread::default())
        .unwrap();
    let a = addr(net, 0, &info.id);
    for &i in joiners {
        net.hosts[i]
            .join_thread(Time(0), &a, info.key.clone())
            .unwrap();
    }
    info
}
