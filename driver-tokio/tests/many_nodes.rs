//! Many participants: ten nodes on 127.0.0.1 share one database. Node 0 creates it with the
//! `people` collection; every other node joins from the thread address of an earlier node (a
//! binary tree rooted at node 0, so most nodes never learn node 0's address from the test);
//! then all ten write at the same time, and all converge to equal state digests and equal
//! query results. `scripts/many-nodes.sh` runs the same with more nodes.

mod common;

use common::*;
use std::sync::atomic::Ordering;
use std::time::Duration;
use threads_driver_tokio::node::WriteOp;
use threads_driver_tokio::{Node, NodeHandle};
use threads_protocol::engine::NewThread;
use threads_protocol::id::ThreadId;

/// Nodes in the test.
const NODES: usize = 10;
/// Documents each node writes (one write transaction each).
const WRITES_PER_NODE: usize = 3;
/// Longest the test waits for one phase (joins, convergence). Generous: the machine running
/// the tests may be a loaded 2-core VM.
const PHASE_WITHIN: Duration = Duration::from_secs(150);

/// Whether the node already folded the `people` collection (it may write to it then).
async fn has_collection(h: &NodeHandle, db: ThreadId) -> bool {
    h.reader().collection_info(db, "people").await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_nodes_write_to_one_database_and_converge() {
    let dirs: Vec<_> = (0..NODES).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes: Vec<Node> = Vec::with_capacity(NODES);
    for dir in &dirs {
        nodes.push(start(dir.path()).await);
    }
    let handles: Vec<NodeHandle> = nodes.iter().map(Node::handle).collect();

    let info = handles[0].new_db(NewThread::default()).await.unwrap();
    let db = info.id;
    handles[0]
        .write(db, None, vec![WriteOp::NewCollection(people())])
        .await
        .unwrap();

    // Node i joins from node (i - 1) / 2: nodes 1 and 2 from node 0, 3 and 4 from node 1...
    // A node hands out its thread address only once it holds the collection, i.e. once it
    // really takes part in the thread.
    for i in 1..NODES {
        let parent = (i - 1) / 2;
        let addr = handles[parent].thread_addrs(db).await.unwrap().remove(0);
        handles[i].join(addr, info.key.clone()).await.unwrap();
        let h = handles[i].clone();
        eventually(
            &format!("node {i} receives the collection from node {parent}"),
            PHASE_WITHIN,
            || has_collection(&h, db),
        )
        .await;
    }

    // Everybody writes at once.
    let writers: Vec<_> = handles
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let h = h.clone();
            tokio::spawn(async move {
                let mut ids = Vec::with_capacity(WRITES_PER_NODE);
                for k in 0..WRITES_PER_NODE {
                    ids.push(write_one(&h, db, &format!("node{i}-doc{k}")).await);
                }
                ids
            })
        })
        .collect();
    let mut written = Vec::new();
    for w in writers {
        written.extend(w.await.expect("writer task"));
    }
    let total = NODES * WRITES_PER_NODE;
    written.sort();
    written.dedup();
    assert_eq!(written.len(), total, "every write got its own id");

    eventually(
        &format!("{NODES} nodes converge on {total} documents"),
        PHASE_WITHIN,
        || converged(handles.clone(), db, total),
    )
    .await;

    // Equal query results everywhere, holding exactly what was written.
    let reference = all_people(&handles[0], db).await;
    let mut ids: Vec<String> = reference
        .iter()
        .map(|p| p["_id"].as_str().expect("an _id").to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, written, "node 0 holds exactly the written documents");
    for (i, h) in handles.iter().enumerate().skip(1) {
        assert_eq!(
            all_people(h, db).await,
            reference,
            "node {i} answers the query like node 0"
        );
    }

    // Every node received the others' records over the network and sent some itself.
    for (i, h) in handles.iter().enumerate() {
        let m = h.metrics();
        let ingested = m.records_ingested.load(Ordering::Relaxed) as usize;
        let written = m.records_written.load(Ordering::Relaxed) as usize;
        assert!(
            ingested >= total - WRITES_PER_NODE,
            "node {i} ingested {ingested} records, expected at least {}",
            total - WRITES_PER_NODE
        );
        assert!(
            written >= WRITES_PER_NODE,
            "node {i} wrote {written} records"
        );
        assert!(
            m.bytes_sent.load(Ordering::Relaxed) > 0,
            "node {i} sent nothing"
        );
    }

    for n in nodes {
        n.shutdown().await.unwrap();
    }
}
