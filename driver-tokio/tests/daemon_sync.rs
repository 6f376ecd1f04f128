//! Nodes on 127.0.0.1 replicate databases over real sockets: two and three writers converge,
//! a replicator relays between hosts that never meet and never holds plaintext, and a node
//! restarted on its repository has everything and syncs again.

mod common;

use common::*;
use threads_driver_tokio::node::WriteOp;
use threads_protocol::engine::NewThread;
use threads_protocol::store::{ReadTxn, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_and_three_nodes_converge_over_tcp_and_quic() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = threads_driver_tokio::Node::start(config(dirs[0].path(), true))
        .await
        .unwrap();
    let b = threads_driver_tokio::Node::start(config(dirs[1].path(), true))
        .await
        .unwrap();
    let c = start(dirs[2].path()).await;
    let (ha, hb, hc) = (a.handle(), b.handle(), c.handle());

    let info = ha.new_db(NewThread::default()).await.unwrap();
    let db = info.id;
    ha.write(db, None, vec![WriteOp::NewCollection(people())])
        .await
        .unwrap();
    write_one(&ha, db, "alice").await;

    // B joins from A's thread address (which carries TCP and QUIC addresses) and key.
    let addr = ha.thread_addrs(db).await.unwrap().remove(0);
    hb.join(addr.clone(), info.key.clone()).await.unwrap();
    eventually(
        "B receives the collection and alice",
        CONVERGE_WITHIN,
        || async { all_people(&hb, db).await.len() == 1 },
    )
    .await;
    write_one(&hb, db, "bob").await;
    write_one(&ha, db, "carol").await;
    eventually("A and B converge", CONVERGE_WITHIN, || {
        converged(vec![ha.clone(), hb.clone()], db, 3)
    })
    .await;

    // C joins from B and writes too; all three converge to equal digests and query results.
    let addr_b = hb.thread_addrs(db).await.unwrap().remove(0);
    hc.join(addr_b, info.key.clone()).await.unwrap();
    eventually("C catches up", CONVERGE_WITHIN, || async {
        all_people(&hc, db).await.len() == 3
    })
    .await;
    write_one(&hc, db, "dave").await;
    let all = [ha.clone(), hb.clone(), hc.clone()];
    eventually("three nodes converge", CONVERGE_WITHIN, || {
        converged(all.to_vec(), db, 4)
    })
    .await;
    assert_eq!(all_people(&ha, db).await, all_people(&hc, db).await);
    assert!(
        ha.metrics()
            .records_ingested
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2
    );

    for n in [a, b, c] {
        n.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicator_relays_between_hosts_that_never_meet_without_plaintext() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = start(dirs[0].path()).await;
    let b = start(dirs[1].path()).await;
    let r = start(dirs[2].path()).await;
    let (ha, hb, hr) = (a.handle(), b.handle(), r.handle());

    let info = ha.new_db(NewThread::default()).await.unwrap();
    let db = info.id;
    ha.write(db, None, vec![WriteOp::NewCollection(people())])
        .await
        .unwrap();
    write_one(&ha, db, "secret-alice").await;

    // R holds only the service key: it joins A's thread as a replicator.
    let addr_a = ha.thread_addrs(db).await.unwrap().remove(0);
    let service = info.key.without_read();
    hr.join(addr_a, service).await.unwrap();
    // B knows only R, with the full key.
    let addr_r = hr.thread_addrs(db).await.unwrap().remove(0);
    hb.join(addr_r, info.key.clone()).await.unwrap();
    eventually("B gets A's writes through R", CONVERGE_WITHIN, || async {
        all_people(&hb, db).await.len() == 1
    })
    .await;
    write_one(&hb, db, "secret-bob").await;
    eventually("A gets B's write through R", CONVERGE_WITHIN, || {
        converged(vec![ha.clone(), hb.clone()], db, 2)
    })
    .await;

    // A and B never connected to each other.
    assert!(!ha.connected_peers().await.unwrap().contains(hb.peer_id()));
    assert!(!hb.connected_peers().await.unwrap().contains(ha.peer_id()));
    // R stores both logs but no plaintext of any document, and folded no state.
    let r_info = hr.thread_info(db).await.unwrap();
    assert!(!r_info.key.can_read());
    let heights: u64 = r_info.logs.iter().map(|l| l.height.0).sum();
    assert_eq!(heights, 3, "A's log: collection and alice; B's log: bob");
    r.shutdown().await.unwrap();
    let store =
        threads_driver_tokio::LmdbStore::open(dirs[2].path().join("db"), &Default::default())
            .unwrap();
    let txn = store.read().unwrap();
    let mut plaintext = false;
    txn.scan(
        threads_protocol::store::KeyRange::all(),
        threads_protocol::store::Direction::Forward,
        &mut |_, v| {
            if v.windows(6).any(|w| w == b"secret") {
                plaintext = true;
            }
            std::ops::ControlFlow::Continue(())
        },
    )
    .unwrap();
    assert!(!plaintext, "the replicator's store holds plaintext");
    drop(txn);
    store.close();
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_node_keeps_everything_and_syncs_again() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = start(dirs[0].path()).await;
    let b = start(dirs[1].path()).await;
    let (ha, hb) = (a.handle(), b.handle());
    let info = ha.new_db(NewThread::default()).await.unwrap();
    let db = info.id;
    ha.write(db, None, vec![WriteOp::NewCollection(people())])
        .await
        .unwrap();
    for name in ["a1", "a2", "a3"] {
        write_one(&ha, db, name).await;
    }
    let addr = ha.thread_addrs(db).await.unwrap().remove(0);
    hb.join(addr, info.key.clone()).await.unwrap();
    eventually("B catches up", CONVERGE_WITHIN, || {
        converged(vec![ha.clone(), hb.clone()], db, 3)
    })
    .await;

    // Stop B; A writes meanwhile; B restarts on the same repository (new port).
    let b_id = *hb.peer_id();
    let before = all_people(&hb, db).await;
    drop(hb);
    b.shutdown().await.unwrap();
    write_one(&ha, db, "while-b-was-down").await;
    let b = start(dirs[1].path()).await;
    let hb = b.handle();
    assert_eq!(*hb.peer_id(), b_id, "same identity after restart");
    assert_eq!(
        all_people(&hb, db).await,
        before,
        "everything B had is there"
    );
    // B dials A from its persisted address book (A does not know B's new port).
    hb.pull(db).await.unwrap();
    eventually("B syncs again after restart", CONVERGE_WITHIN, || {
        converged(vec![ha.clone(), hb.clone()], db, 4)
    })
    .await;
    write_one(&hb, db, "after-restart").await;
    eventually("A gets B's new write", CONVERGE_WITHIN, || {
        converged(vec![ha.clone(), hb.clone()], db, 5)
    })
    .await;

    // A second node on the same repository is refused with a clear message.
    let err = threads_driver_tokio::Node::start(config(dirs[1].path(), false))
        .await
        .err()
        .expect("second node on one repository");
    assert!(
        err.to_string().contains("in use by another threadsd"),
        "{err}"
    );
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
