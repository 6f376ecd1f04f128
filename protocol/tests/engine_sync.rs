//! Replication between hosts: convergence, catch-up, relays, restarts, determinism.

mod common;

use common::*;
use proptest::prelude::*;
use threads_protocol::engine::loopback::Loopback;
use threads_protocol::engine::message::{self, Payload};
use threads_protocol::engine::{AcceptAll, EngineError, Event, NewThread, Output, Time};
use threads_protocol::id::ThreadId;
use threads_protocol::key::ThreadKey;
use threads_protocol::store::memory::MemoryStore;

fn write(
    net: &mut Loopback<MemoryStore, AcceptAll>,
    i: usize,
    t: &threads_protocol::id::ThreadId,
    body: &[u8],
) {
    let now = net.now;
    net.hosts[i].create_record(now, t, None, body, 0).unwrap();
}

#[test]
fn two_hosts_converge_after_concurrent_writes() {
    let (mut net, _) = net(2, 1);
    let info = shared(&mut net, &[1]);
    let t = info.id;
    // Concurrent writes: both write before any message is delivered.
    for k in 0..5 {
        write(&mut net, 0, &t, format!("a{k}").as_bytes());
        write(&mut net, 1, &t, format!("b{k}").as_bytes());
    }
    assert!(net.run_until(60_000, |n| converged(n, &[0, 1], &t)
        && total(n, 0, &t) == 10));
    assert_eq!(net.hosts[0].digest(&t), net.hosts[1].digest(&t));
}

#[test]
fn three_hosts_converge() {
    let (mut net, _) = net(3, 2);
    let info = shared(&mut net, &[1, 2]);
    let t = info.id;
    for k in 0..4 {
        for i in 0..3 {
            write(&mut net, i, &t, format!("{i}-{k}").as_bytes());
        }
    }
    assert!(net.run_until(60_000, |n| converged(n, &[0, 1, 2], &t)
        && total(n, 0, &t) == 12));
    // Hosts 1 and 2 learned about each other through host 0.
    assert!(
        net.hosts[1]
            .thread_info(&t)
            .unwrap()
            .peers
            .contains(net.hosts[2].peer_id())
    );
}

#[test]
fn late_joiner_catches_up_through_pages() {
    let (mut net, _) = net(2, 3);
    net.hosts[1] = host(
        MemoryStore::new(),
        AcceptAll,
        99,
        threads_protocol::engine::Config {
            page_max_records: 64,
            ..config()
        },
    );
    let info = net.hosts[0]
        .create_thread(Time(0), NewThread::default())
        .unwrap();
    let t = info.id;
    for k in 0..1000u32 {
        write(&mut net, 0, &t, &k.to_be_bytes());
    }
    net.collect();
    let a = addr(&net, 0, &t);
    net.hosts[1]
        .join_thread(net.now, &a, info.key.clone())
        .unwrap();
    assert!(net.run_until(60_000, |n| converged(n, &[0, 1], &t)
        && total(n, 1, &t) == 1000));
    // Records arrived in log order, each exactly once.
    let added: Vec<u64> = net.events[1]
        .iter()
        .filter_map(|e| match e {
            Event::RecordAdded { record, .. } => Some(record.counter().get()),
            _ => None,
        })
        .collect();
    assert_eq!(added, (1..=1000).collect::<Vec<_>>());
}

#[test]
fn replicator_relays_between_writers_that_never_meet() {
    let (mut net, _) = net(3, 4);
    let (a, r, b) = (0, 1, 2);
    net.set_link(a, b, false);
    let info = net.hosts[a]
        .create_thread(Time(0), NewThread::default())
        .unwrap();
    let t = info.id;
    let r_peer = *net.hosts[r].peer_id();
    net.hosts[a].add_replicator(Time(0), &t, &r_peer).unwrap();
    net.flush(1000);
    let r_info = net.hosts[r].thread_info(&t).unwrap();
    assert!(
        !r_info.key.can_read(),
        "a replicator holds the service key only"
    );
    // B joins through the replicator's address, with the full key from A (out of band).
    let via_r = addr(&net, r, &t);
    net.hosts[b]
        .join_thread(net.now, &via_r, info.key.clone())
        .unwrap();
    for k in 0..5 {
        write(&mut net, a, &t, format!("a{k}").as_bytes());
        write(&mut net, b, &t, format!("b{k}").as_bytes());
    }
    assert!(net.run_until(120_000, |n| converged(n, &[a, r, b], &t)
        && total(n, a, &t) == 10));
    // The replicator cannot write, and never saw plaintext.
    let now = net.now;
    assert!(matches!(
        net.hosts[r].create_record(now, &t, None, b"x", 0),
        Err(EngineError::NoReadKey(_))
    ));
    let bodies_at_r = net.events[r]
        .iter()
        .any(|e| matches!(e, Event::RecordRejected { .. }));
    assert!(!bodies_at_r);
}

#[test]
fn restarted_host_resumes_from_its_store() {
    let (mut net, stores) = net(2, 5);
    let info = shared(&mut net, &[1]);
    let t = info.id;
    for k in 0..3 {
        write(&mut net, 1, &t, format!("b{k}").as_bytes());
    }
    assert!(net.run_until(60_000, |n| converged(n, &[0, 1], &t)));
    let before = net.hosts[1].heads(&t).unwrap();
    let peer = *net.hosts[1].peer_id();
    // Crash host 1 (its outputs are lost) and reopen it on the same store.
    net.hosts[1] = host(stores[1].reopen(), AcceptAll, 777, config());
    assert_eq!(net.hosts[1].peer_id(), &peer, "the host identity is kept");
    assert_eq!(net.hosts[1].heads(&t).unwrap(), before);
    // It keeps writing at the right position, and peers still converge.
    write(&mut net, 1, &t, b"after restart");
    write(&mut net, 0, &t, b"meanwhile");
    assert!(net.run_until(60_000, |n| converged(n, &[0, 1], &t)
        && total(n, 0, &t) == 5));
}

#[test]
fn quiet_thread_costs_little() {
    let (mut net, _) = net(2, 6);
    let info = shared(&mut net, &[1]);
    let t = info.id;
    write(&mut net, 0, &t, b"x");
    assert!(net.run_until(60_000, |n| converged(n, &[0, 1], &t)));
    // Let the back-off reach its ceiling, then measure ten quiet minutes.
    net.run_until(120_000, |_| false);
    let (msgs, bytes) = (net.delivered, net.delivered_bytes);
    net.run_until(600_000, |_| false);
    let (msgs, bytes) = (net.delivered - msgs, net.delivered_bytes - bytes);
    // The ceiling in `config()` is 10 s: at most ~1.25 digests per host per 10 s, 2 hosts.
    assert!(
        msgs <= 2 * 60 * 5 / 4 + 2,
        "{msgs} messages in 10 quiet minutes"
    );
    assert!(
        bytes / msgs.max(1) < 200,
        "digests should be small: {bytes} bytes / {msgs}"
    );
}

#[test]
fn same_seed_same_outputs() {
    fn trace(seed: u64) -> Vec<u8> {
        let (mut net, _) = net(3, seed);
        let info = net.hosts[0]
            .create_thread(Time(0), NewThread::default())
            .unwrap();
        let t = info.id;
        let a = addr(&net, 0, &t);
        for i in 1..3 {
            net.hosts[i]
                .join_thread(Time(0), &a, info.key.clone())
                .unwrap();
        }
        let mut out = Vec::new();
        for k in 0..6 {
            let now = net.now;
            net.hosts[k % 3]
                .create_record(now, &t, None, &[k as u8], 0)
                .unwrap();
            for h in &mut net.hosts {
                while let Some(o) = h.poll_output() {
                    if let Output::Transmit { bytes, .. } = &o {
                        out.extend_from_slice(bytes);
                    }
                }
            }
        }
        net.run_until(30_000, |_| false);
        out.extend_from_slice(&net.hosts[2].digest(&t).unwrap());
        out
    }
    assert_eq!(trace(42), trace(42));
    assert_ne!(trace(42), trace(43));
}

#[test]
fn joining_twice_or_unknown_thread_are_errors() {
    let (mut net, _) = net(2, 7);
    let info = shared(&mut net, &[1]);
    let t = info.id;
    let a = addr(&net, 0, &t);
    assert_eq!(
        net.hosts[1]
            .join_thread(Time(0), &a, info.key.clone())
            .unwrap_err(),
        EngineError::ThreadExists
    );
    let other = threads_protocol::id::ThreadId::random(
        threads_protocol::id::Variant::Raw,
        &mut threads_protocol::rng::seeded(1),
    );
    assert_eq!(
        net.hosts[1].thread_info(&other).unwrap_err(),
        EngineError::ThreadNotFound
    );
    assert_eq!(
        net.hosts[0]
            .create_record(Time(0), &other, None, b"", 0)
            .unwrap_err()
            .to_string(),
        "thread not found"
    );
    let _ = ThreadKey::random(&mut threads_protocol::rng::seeded(2), true);
}

#[test]
fn delete_thread_removes_everything() {
    let (mut net, stores) = net(1, 8);
    let info = net.hosts[0]
        .create_thread(Time(0), NewThread::default())
        .unwrap();
    let t = info.id;
    let rec = net.hosts[0]
        .create_record(Time(0), &t, None, b"x", 0)
        .unwrap();
    let other = net.hosts[0]
        .create_thread(Time(0), NewThread::default())
        .unwrap();
    net.hosts[0]
        .create_record(Time(0), &other.id, None, b"y", 0)
        .unwrap();
    let before = stores[0].stats();
    net.hosts[0].delete_thread(Time(0), &t).unwrap();
    assert!(net.hosts[0].thread_info(&t).is_err());
    assert!(net.hosts[0].record_by_cid(&rec.cid()).unwrap().is_none());
    assert!(stores[0].stats().keys < before.keys);
    // The other thread is untouched, also after a restart.
    let reopened = host(stores[0].reopen(), AcceptAll, 1, config());
    assert_eq!(reopened.thread_ids(), vec![other.id]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Random writes on random hosts, delivered in random order with duplicates and drops:
    /// once the network is left to settle, every host has the same heads.
    #[test]
    fn random_interleavings_converge(seed in any::<u64>(), ops in proptest::collection::vec((0usize..3, 0u8..4, any::<u16>()), 1..60)) {
        let (mut net, _) = net(3, seed);
        let info = net.hosts[0].create_thread(Time(0), NewThread::default()).unwrap();
        let t = info.id;
        let a = addr(&net, 0, &t);
        for i in 1..3 {
            net.hosts[i].join_thread(Time(0), &a, info.key.clone()).unwrap();
        }
        let mut written = 0u64;
        for (host, action, pick) in ops {
            net.collect();
            match action {
                0 => {
                    let now = net.now;
                    net.hosts[host].create_record(now, &t, None, &pick.to_be_bytes(), 0).unwrap();
                    written += 1;
                }
                1 if !net.in_flight.is_empty() => {
                    // Deliver a random message out of order, and sometimes twice.
                    let k = pick as usize % net.in_flight.len();
                    let m = net.in_flight.remove(k).unwrap();
                    if pick % 3 == 0 {
                        net.in_flight.push_back(m.clone());
                    }
                    net.in_flight.push_front(m);
                    net.deliver_one();
                }
                2 if !net.in_flight.is_empty() => {
                    // Drop a message.
                    let k = pick as usize % net.in_flight.len();
                    net.in_flight.remove(k);
                }
                _ => {
                    let limit = net.now.plus(u64::from(pick % 500));
                    net.advance(limit);
                }
            }
        }
        prop_assert!(net.run_until(600_000, |n| converged(n, &[0, 1, 2], &t) && total(n, 0, &t) == written));
    }
}

#[test]
fn subscriptions_select_new_records_by_thread() {
    use threads_protocol::engine::Subscription;
    let (mut net, _) = net(2, 9);
    let one = net.hosts[0]
        .create_thread(Time(0), NewThread::default())
        .unwrap();
    let two = net.hosts[0]
        .create_thread(Time(0), NewThread::default())
        .unwrap();
    for info in [&one, &two] {
        let a = addr(&net, 0, &info.id);
        net.hosts[1]
            .join_thread(Time(0), &a, info.key.clone())
            .unwrap();
    }
    write(&mut net, 0, &one.id, b"1");
    write(&mut net, 0, &two.id, b"2");
    assert!(net.run_until(60_000, |n| total(n, 1, &one.id) == 1
        && total(n, 1, &two.id) == 1));
    for events in &net.events {
        let all = Subscription::all();
        let only_two = Subscription::threads([two.id]);
        assert_eq!(events.iter().filter(|e| all.select(e).is_some()).count(), 2);
        let picked: Vec<_> = events.iter().filter_map(|e| only_two.select(e)).collect();
        assert_eq!(picked.len(), 1);
        assert_eq!(picked[0].thread(), &two.id);
    }
    assert_eq!(Subscription::threads([]), Subscription::all());
}

#[test]
fn a_timeout_queues_one_thread_of_digests_at_a_time() {
    let (mut net, _) = net(1, 31);
    let h = &mut net.hosts[0];
    // 40 threads, each shared with the same 5 (absent) peers.
    let peers: Vec<_> = (0..5u8)
        .map(|i| {
            threads_protocol::identity::PrivateKey::from_seed([i + 100; 32])
                .public()
                .peer_id()
        })
        .collect();
    for _ in 0..40 {
        let t = h.create_thread(Time(0), NewThread::default()).unwrap().id;
        for p in &peers {
            h.add_replicator(Time(0), &t, p).unwrap();
        }
    }
    while h.poll_output().is_some() {}
    let later = Time(1_000_000);
    h.handle_timeout(later);
    assert!(
        h.queued_outputs() <= 2 * peers.len(),
        "{} outputs queued by one timeout",
        h.queued_outputs()
    );
    // Every digest (and repeated invitation) is still produced, on demand.
    let mut transmits = 0;
    while let Some(o) = h.poll_output() {
        assert!(h.queued_outputs() <= 2 * peers.len());
        if matches!(o, threads_protocol::engine::Output::Transmit { .. }) {
            transmits += 1;
        }
    }
    assert_eq!(
        transmits,
        40 * peers.len() * 2,
        "a digest and an invitation per peer"
    );
}

#[test]
fn pull_expiry_is_a_timer() {
    let cfg = threads_protocol::engine::Config {
        sync_interval_min_ms: 50_000,
        sync_interval_max_ms: 100_000,
        pull_timeout_ms: 1_000,
        ..config()
    };
    let stores: Vec<_> = (0..2)
        .map(|_| threads_protocol::store::memory::MemoryStore::new())
        .collect();
    let hosts = (0..2)
        .map(|i| {
            host(
                stores[i].clone(),
                threads_protocol::engine::AcceptAll,
                70 + i as u64,
                cfg.clone(),
            )
        })
        .collect();
    let mut net = threads_protocol::engine::loopback::Loopback::new(hosts, Time(0));
    let info = net.hosts[0]
        .create_thread(Time(0), NewThread::default())
        .unwrap();
    let t = info.id;
    net.hosts[0]
        .create_record(Time(0), &t, None, b"one", 0)
        .unwrap();
    net.collect();
    let a = addr(&net, 0, &t);
    net.hosts[1]
        .join_thread(Time(0), &a, info.key.clone())
        .unwrap();
    // Deliver until host 1 asks for the log, then lose the pull.
    net.collect();
    let mut pulled = false;
    for _ in 0..10 {
        let Some(m) = net.in_flight.pop_front() else {
            break;
        };
        let (_, p) = threads_protocol::engine::message::decode(&m.bytes, usize::MAX).unwrap();
        if p.kind() == "pull" {
            pulled = true;
            break;
        }
        let from = *net.hosts[m.from].peer_id();
        net.hosts[m.to].handle_message(Time(0), &from, &m.bytes);
        net.collect();
    }
    assert!(pulled, "host 1 pulls the log");
    net.in_flight.clear();
    // The next timer of host 1 is the pull's expiry, not the distant digest round.
    assert_eq!(net.hosts[1].poll_timeout(), Some(Time(1_000)));
    // After the expiry the next round asks again, and the log is fetched.
    assert!(net.run_until(70_000, |n| total(n, 1, &t) == 1));
}

#[test]
fn sync_lag_counts_what_peers_have_until_it_arrives() {
    let (mut net, _) = net(2, 9);
    let info = net.hosts[0]
        .create_thread(Time(0), NewThread::default())
        .unwrap();
    let t = info.id;
    for k in 0..20 {
        write(&mut net, 0, &t, format!("r{k}").as_bytes());
    }
    net.collect();
    while net.deliver_one() {}
    let a = addr(&net, 0, &t);
    net.hosts[1]
        .join_thread(Time(0), &a, info.key.clone())
        .unwrap();
    assert_eq!(net.hosts[1].sync_lag(&t), Some(0), "nothing heard yet");
    // Deliver one message at a time: once host 1 hears host 0's heights it knows it lags
    // by 20 records, and the lag falls to 0 as pages arrive.
    let mut peak = 0;
    net.collect();
    for _ in 0..1000 {
        if !net.deliver_one() {
            break;
        }
        net.collect();
        peak = peak.max(net.hosts[1].sync_lag(&t).unwrap());
    }
    assert_eq!(peak, 20);
    assert!(net.run_until(60_000, |n| total(n, 1, &t) == 20));
    assert_eq!(net.hosts[1].sync_lag(&t), Some(0));
    assert_eq!(net.hosts[0].sync_lag(&t), Some(0));
}

/// The anti-entropy messages in flight from host `from` to host `to` whose payload matches.
fn in_flight_of(
    net: &Loopback<MemoryStore, AcceptAll>,
    from: usize,
    to: usize,
    kind: fn(&Payload) -> bool,
) -> usize {
    net.in_flight
        .iter()
        .filter(|m| m.from == from && m.to == to)
        .filter(|m| message::decode(&m.bytes, usize::MAX).is_ok_and(|(_, p)| kind(&p)))
        .count()
}

fn is_digest(p: &Payload) -> bool {
    matches!(p, Payload::Digest { .. })
}

fn is_heights(p: &Payload) -> bool {
    matches!(p, Payload::Heights { .. })
}

#[test]
fn hosts_in_step_send_at_most_one_digest_per_round_between_them() {
    let (mut net, _) = net(2, 7);
    let info = shared(&mut net, &[1]);
    let t = info.id;
    write(&mut net, 0, &t, b"x");
    assert!(net.run_until(60_000, |n| converged(n, &[0, 1], &t)));
    net.run_until(120_000, |_| false);
    // Ten quiet minutes at the 10 s ceiling: ~60 rounds per host, 120 digests without the
    // rule. A host whose peer's last digest equals its own leaves its digest out: at most one
    // side sends, and none once each has heard the other's digest of this state.
    let mut digests = [0u64; 2];
    let end = net.now.plus(600_000);
    loop {
        for (i, d) in digests.iter_mut().enumerate() {
            *d += in_flight_of(&net, i, 1 - i, is_digest) as u64;
        }
        net.flush(1_000);
        if !net.advance(end) {
            break;
        }
    }
    assert!(
        digests[0] + digests[1] <= 60 * 5 / 4 + 2,
        "{digests:?} digests in 10 quiet minutes"
    );
    // A change on either side still travels.
    net.set_link(0, 1, false);
    write(&mut net, 1, &t, b"y");
    net.flush(100);
    net.set_link(0, 1, true);
    assert!(net.run_until(60_000, |n| converged(n, &[0, 1], &t)
        && total(n, 0, &t) == 2));
}

/// Two hosts in step, then host 1 writes while the link is down: its push is lost, and host
/// 0 is one record behind.
fn host_0_behind(seed: u64) -> (Loopback<MemoryStore, AcceptAll>, ThreadId) {
    let (mut net, _) = net(2, seed);
    let t = shared(&mut net, &[1]).id;
    write(&mut net, 0, &t, b"x");
    assert!(net.run_until(60_000, |n| converged(n, &[0, 1], &t)));
    net.set_link(0, 1, false);
    write(&mut net, 1, &t, b"y");
    net.flush(100);
    net.set_link(0, 1, true);
    (net, t)
}

/// Delivers messages and fires timers, losing every heights host 1 sends host 0, while
/// `go_on(first loss)` holds (at most two simulated minutes); returns how many were lost and
/// when the first was.
fn lose_heights_from_1(
    net: &mut Loopback<MemoryStore, AcceptAll>,
    go_on: impl Fn(Option<Time>, Time) -> bool,
) -> (usize, Option<Time>) {
    let start = net.now;
    let (mut lost, mut first) = (0, None);
    while go_on(first, net.now) {
        assert!(
            net.now < start.plus(120_000),
            "host 1 never answered host 0"
        );
        net.collect();
        let before = net.in_flight.len();
        net.in_flight.retain(|m| {
            !(m.from == 1
                && m.to == 0
                && message::decode(&m.bytes, usize::MAX).is_ok_and(|(_, p)| is_heights(&p)))
        });
        if net.in_flight.len() < before {
            lost += before - net.in_flight.len();
            first.get_or_insert(net.now);
        }
        if !net.deliver_one() {
            assert!(net.advance(start.plus(120_000)));
        }
    }
    (lost, first)
}

#[test]
fn lost_heights_go_again_once_the_window_ran_out() {
    let (mut net, t) = host_0_behind(8);
    // Every heights host 1 sends host 0 is lost until the window (`pull_timeout_ms`) after the
    // first has run out; within it, host 1 does not repeat them for the same state of host 0.
    let window = common::config().pull_timeout_ms;
    let (lost, _) = lose_heights_from_1(&mut net, |first, now| {
        first.is_none_or(|at| now < at.plus(window))
    });
    // Host 0 keeps sending digests (every 100 ms at first) and heights within the 2 s window;
    // host 1 answers once per state of host 0 it learns of: its heights, and its first digest
    // at that state (host 1 had not heard one since the link went down).
    assert!(
        (1..=2).contains(&lost),
        "{lost} heights lost: the same heights went again within the window"
    );
    assert_eq!(
        total(&net, 0, &t),
        1,
        "host 0 caught up without host 1's heights"
    );
    // After the window they go again, and host 0 catches up.
    assert!(net.run_until(60_000, |n| converged(n, &[0, 1], &t)
        && total(n, 0, &t) == 2));
}

#[test]
fn a_new_connection_forgets_what_was_left_out() {
    let (mut net, t) = host_0_behind(9);
    // Heights from host 1 are lost until the link "reconnects"; after that, the exchange
    // completes at once instead of waiting for the window.
    let window = common::config().pull_timeout_ms;
    let (_, first_lost) = lose_heights_from_1(&mut net, |first, _| first.is_none());
    let now = net.now;
    let (p0, p1) = (*net.hosts[0].peer_id(), *net.hosts[1].peer_id());
    net.hosts[0].handle_connected(now, &p1);
    net.hosts[1].handle_connected(now, &p0);
    let until = first_lost.expect("a heights was lost").plus(window);
    assert!(
        net.run_until(until.as_millis() - now.as_millis() - 1, |n| converged(
            n,
            &[0, 1],
            &t
        ) && total(
            n, 0, &t
        ) == 2),
        "host 0 did not catch up within the window after the new connection"
    );
}
