//! The node handle's contract beyond sync: write transactions where each operation stands on
//! its own, listeners that see local and replicated changes in order, snapshot reads,
//! refusals that change nothing, and peer addresses that are durable once acknowledged.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;
use threads_driver_tokio::NodeError;
use threads_driver_tokio::node::{OpOutput, WriteOp};
use threads_protocol::engine::NewThread;
use threads_protocol::id::{ThreadId, Variant};
use threads_reducer::listen::{Action, Filter};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_see_local_and_replicated_changes_in_order() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = start(dirs[0].path()).await;
    let b = start(dirs[1].path()).await;
    let (ha, hb) = (a.handle(), b.handle());
    let info = ha.new_db(NewThread::default()).await.unwrap();
    let db = info.id;
    ha.write(db, None, vec![WriteOp::NewCollection(people())])
        .await
        .unwrap();
    let filter = Filter {
        collection: Some("people".into()),
        instance_id: None,
        actions: Vec::new(),
    };
    let mut changes = ha.listen(db, vec![filter], None, None).await.unwrap();

    let local = write_one(&ha, db, "local").await;
    hb.join(
        ha.thread_addrs(db).await.unwrap().remove(0),
        info.key.clone(),
    )
    .await
    .unwrap();
    eventually("B has the collection", CONVERGE_WITHIN, || async {
        hb.reader().collection_info(db, "people").await.is_ok()
    })
    .await;
    let remote = write_one(&hb, db, "remote").await;
    // Delete only once A has B's write, so the three changes have one possible order.
    eventually("A has B's write", CONVERGE_WITHIN, || async {
        all_people(&ha, db).await.len() == 2
    })
    .await;
    ha.write(
        db,
        None,
        vec![WriteOp::Delete {
            collection: "people".into(),
            ids: vec![local.clone()],
        }],
    )
    .await
    .unwrap();

    let mut seen = Vec::new();
    while seen.len() < 3 {
        let change = tokio::time::timeout(Duration::from_secs(60), changes.recv())
            .await
            .expect("a change within a minute")
            .expect("stream open")
            .expect("not lagged");
        seen.push((change.instance_id.clone(), change.action));
        if change.action == Action::Create {
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(change.instance.as_ref().unwrap().get())
                    .unwrap()["_id"],
                json!(change.instance_id)
            );
        }
    }
    assert_eq!(
        seen,
        vec![
            (local.clone(), Action::Create),
            (remote, Action::Create),
            (local, Action::Delete)
        ]
    );
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let a = start(dir.path()).await;
    let h = a.handle();
    let db = people_db(&h).await;
    let digest = h.reader().state_digest(db).await.unwrap();

    // Unknown database, unknown collection, schema violation: errors, and nothing written.
    let unknown = ThreadId::random(Variant::Raw, &mut rand_key());
    assert!(matches!(
        h.write(unknown, None, vec![create("x")]).await,
        Err(NodeError::Docs(_) | NodeError::Engine(_))
    ));
    let out = h
        .write(
            db,
            None,
            vec![WriteOp::Create {
                collection: "people".into(),
                instance: json!({"name": 42}),
            }],
        )
        .await
        .unwrap();
    assert!(out.ops[0].is_err(), "schema violation refused");
    assert!(out.record.is_none(), "nothing left to commit");
    let out = h
        .write(
            db,
            None,
            vec![WriteOp::Create {
                collection: "nobody".into(),
                instance: json!({}),
            }],
        )
        .await
        .unwrap();
    assert!(out.ops[0].is_err());
    assert_eq!(h.reader().state_digest(db).await.unwrap(), digest);
    assert!(h.reader().get(db, "people", "missing", None).await.is_err());
    assert!(h.reader().collection_info(db, "nobody").await.is_err());

    // A join address without a peer is refused before anything is registered.
    let addr =
        threads_protocol::addr::ThreadAddr::new("/ip4/127.0.0.1/tcp/1".parse().unwrap(), unknown);
    assert!(matches!(
        h.join(
            addr,
            threads_protocol::key::ThreadKey::random(&mut rand_key(), true)
        )
        .await,
        Err(NodeError::Invalid(_))
    ));
    assert_eq!(h.threads().await.unwrap(), vec![db]);
    a.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failed_operation_does_not_poison_the_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let a = start(dir.path()).await;
    let h = a.handle();
    let db = people_db(&h).await;
    let out = h
        .write(
            db,
            None,
            vec![
                create("x"),
                WriteOp::Create {
                    collection: "people".into(),
                    instance: json!({"name": 42}),
                },
                create("y"),
            ],
        )
        .await
        .unwrap();
    assert!(matches!(out.ops[0], Ok(OpOutput::Created(_))));
    assert!(out.ops[1].is_err());
    assert!(matches!(out.ops[2], Ok(OpOutput::Created(_))));
    assert!(out.record.is_some());
    assert_eq!(all_people(&h, db).await.len(), 2);
    a.shutdown().await.unwrap();
}

/// Writes queued together are committed as one group (optimistically, each operation folded
/// once); a write that breaks a rule, or clashes with another write of its group, still gets
/// its own verdict and the others commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_get_their_own_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    let a = start(dir.path()).await;
    let h = a.handle();
    let db = people_db(&h).await;
    for round in 0..5 {
        let tasks: Vec<_> = (0..12)
            .map(|i| {
                let h = h.clone();
                let op = match i {
                    // Breaks the schema.
                    3 => WriteOp::Create {
                        collection: "people".into(),
                        instance: json!({"name": 42}),
                    },
                    // Valid alone; together they break the unique email index.
                    7 | 8 => create(&format!("twin{round}")),
                    _ => create(&format!("p{round}_{i}")),
                };
                tokio::spawn(async move { (i, h.write(db, None, vec![op]).await) })
            })
            .collect();
        let mut twins = 0;
        for task in tasks {
            let (i, out) = task.await.unwrap();
            let committed = matches!(&out, Ok(o) if o.ops[0].is_ok() && o.record.is_some());
            match i {
                3 => assert!(!committed, "write {i}: {out:?}"),
                7 | 8 => twins += usize::from(committed),
                _ => assert!(committed, "write {i}: {out:?}"),
            }
        }
        assert_eq!(twins, 1, "exactly one of two clashing writes commits");
    }
    assert_eq!(all_people(&h, db).await.len(), 5 * 10);
    a.shutdown().await.unwrap();
}

/// A writer that waits for each answer before its next write is never held back for writers
/// that are not there: its group answered one write, so the engine does not wait for more (the
/// wait for answered writers, spec/daemon.md §4, happens only when fewer writes are queued
/// than the last group answered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_writer_is_not_held_for_a_group() {
    use std::sync::atomic::Ordering;

    let dir = tempfile::tempdir().unwrap();
    let a = start(dir.path()).await;
    let h = a.handle();
    let db = people_db(&h).await;
    for i in 0..40 {
        write_one(&h, db, &format!("lone{i}")).await;
    }
    assert_eq!(h.metrics().group_wait_micros.load(Ordering::Relaxed), 0);
    assert_eq!(all_people(&h, db).await.len(), 40);
    a.shutdown().await.unwrap();
}

/// An address the handle acknowledged is in the repository even when the node stops at once
/// (a join is acknowledged only after its peer's address is saved; a daemon restarted right
/// after must still dial that peer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learned_addresses_are_saved_before_the_answer() {
    use threads_driver_tokio::addr_book::AddressBook;
    use threads_driver_tokio::{LmdbOptions, LmdbStore};
    use threads_protocol::identity::PrivateKey;
    use threads_protocol::store::Store as _;

    let dir = tempfile::tempdir().unwrap();
    for round in 0..8u8 {
        let a = start(dir.path()).await;
        let peer = PrivateKey::from_seed([round + 1; 32]).public().peer_id();
        let addr: libp2p::Multiaddr = format!("/ip4/127.0.0.1/tcp/{}", 4000 + u16::from(round))
            .parse()
            .unwrap();
        a.handle().learn(peer, addr.clone()).await.unwrap();
        a.shutdown().await.unwrap();
        let store = LmdbStore::open(dir.path().join("db"), &LmdbOptions::default()).unwrap();
        let book = AddressBook::load(&store.read().unwrap()).unwrap();
        assert_eq!(book.get(&peer), vec![addr], "round {round}");
    }
}

fn rand_key() -> threads_protocol::rng::ProtocolRng {
    threads_protocol::rng::seeded(7)
}
