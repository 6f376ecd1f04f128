//! The replication engine on the LMDB store: hosts converge, and a host reopened on the same
//! repository resumes with everything it had committed.

use threads_driver_tokio::lmdb::{LmdbOptions, LmdbStore};
use threads_protocol::engine::loopback::Loopback;
use threads_protocol::engine::{AcceptAll, Config, Host, NewThread, Time};
use threads_protocol::id::ThreadId;
use threads_protocol::rng::seeded;

fn config() -> Config {
    Config {
        sync_interval_min_ms: 100,
        sync_interval_max_ms: 10_000,
        ..Config::default()
    }
}

fn open(dir: &std::path::Path, seed: u64) -> Host<LmdbStore, AcceptAll> {
    let options = LmdbOptions {
        map_size: 1 << 30,
        ..LmdbOptions::default()
    };
    let store = LmdbStore::open(dir, &options).unwrap();
    Host::open(config(), store, AcceptAll, seeded(seed), None, Time(0)).unwrap()
}

fn converged(net: &Loopback<LmdbStore, AcceptAll>, t: &ThreadId, records: u64) -> bool {
    let a = net.hosts[0].heads(t).unwrap();
    let total: u64 = a.iter().map(|(_, h, _)| h.0).sum();
    net.hosts[1].heads(t).ok() == Some(a) && total == records
}

#[test]
fn hosts_on_lmdb_converge_and_resume_after_reopen() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let hosts = vec![open(dirs[0].path(), 1), open(dirs[1].path(), 2)];
    let mut net = Loopback::new(hosts, Time(0));
    let info = net.hosts[0]
        .create_thread(Time(0), NewThread::default())
        .unwrap();
    let t = info.id;
    let addr = format!(
        "/ip4/127.0.0.1/tcp/4006/p2p/{}/thread/{}",
        net.hosts[0].peer_id(),
        t
    )
    .parse()
    .unwrap();
    net.hosts[1].join_thread(Time(0), &addr, info.key).unwrap();
    for k in 0..50u32 {
        let now = net.now;
        net.hosts[(k % 2) as usize]
            .create_record(now, &t, None, &k.to_be_bytes(), 0)
            .unwrap();
    }
    assert!(net.run_until(60_000, |n| converged(n, &t, 50)));
    let heads = net.hosts[1].heads(&t).unwrap();
    let peer = *net.hosts[1].peer_id();

    // Close host 1's environment completely and open the repository again.
    net.hosts.remove(1).into_store().close();
    let fresh = open(dirs[1].path(), 3);
    assert_eq!(fresh.peer_id(), &peer, "identity survives a reopen");
    assert_eq!(fresh.heads(&t).unwrap(), heads, "heads survive a reopen");
    net.hosts.push(fresh);
    let now = net.now;
    net.hosts[1]
        .create_record(now, &t, None, b"after", 0)
        .unwrap();
    assert!(net.run_until(60_000, |n| converged(n, &t, 51)));
}
