//! Helpers shared by the daemon's integration tests: nodes on 127.0.0.1 with ephemeral
//! ports, short sync timers, and a bounded poll for convergence.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};
use threads_driver_tokio::node::{OpOutput, WriteOp};
use threads_driver_tokio::{Node, NodeConfig, NodeHandle};
use threads_protocol::id::ThreadId;
use threads_reducer::db::{CollectionConfig, IndexSpec};
use threads_reducer::query::Query;

/// Longest a test waits for replicas to converge.
pub const CONVERGE_WITHIN: Duration = Duration::from_secs(60);

/// A node config for tests: loopback TCP on a free port (QUIC too when `quic`), fast timers.
pub fn config(repo: &Path, quic: bool) -> NodeConfig {
    let mut listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    if quic {
        listen.push("/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap());
    }
    let mut c = NodeConfig::new(repo, listen);
    c.engine.sync_interval_min_ms = 100;
    c.engine.sync_interval_max_ms = 1_000;
    c.engine.pull_timeout_ms = 2_000;
    c.lmdb.map_size = 1 << 30;
    c
}

pub async fn start(repo: &Path) -> Node {
    Node::start(config(repo, false)).await.expect("node starts")
}

/// The collection every test uses: people with a unique `email` index.
pub fn people() -> CollectionConfig {
    CollectionConfig {
        name: "people".into(),
        schema: json!({
            "type": "object",
            "properties": {"_id": {"type": "string"}, "name": {"type": "string"}, "email": {"type": "string"}},
            "required": ["_id", "name"]
        }),
        indexes: vec![IndexSpec {
            path: "email".into(),
            unique: true,
        }],
        write_validator: String::new(),
        read_filter: String::new(),
    }
}

pub fn create(name: &str) -> WriteOp {
    WriteOp::Create {
        collection: "people".into(),
        instance: json!({"name": name, "email": format!("{name}@example.org")}),
    }
}

/// A new database holding the [`people`] collection.
pub async fn people_db(h: &NodeHandle) -> ThreadId {
    let db = h
        .new_db(threads_protocol::engine::NewThread::default())
        .await
        .expect("new database")
        .id;
    h.write(db, None, vec![WriteOp::NewCollection(people())])
        .await
        .expect("people collection");
    db
}

/// Writes one instance and returns its id.
pub async fn write_one(h: &NodeHandle, db: ThreadId, name: &str) -> String {
    let out = h.write(db, None, vec![create(name)]).await.expect("write");
    match out.ops.into_iter().next().unwrap().expect("create") {
        OpOutput::Created(id) => id,
        other => panic!("unexpected {other:?}"),
    }
}

/// Every instance of `people`, sorted by id.
pub async fn all_people(h: &NodeHandle, db: ThreadId) -> Vec<Value> {
    let q = Query::from_threads_json(&json!({})).unwrap();
    match h.reader().find(db, "people", q, None).await {
        Ok(rows) => {
            let mut v: Vec<Value> = rows.into_iter().map(|(_, instance)| instance).collect();
            v.sort_by(|a, b| a["_id"].as_str().cmp(&b["_id"].as_str()));
            v
        }
        Err(_) => Vec::new(),
    }
}

/// Polls `check` every 20 ms until it holds or `within` passes; panics with `what` then.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return;
        }
        if start.elapsed() > within {
            panic!("{what}: not reached within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether every handle holds `count` people and the same state digest.
pub async fn converged(handles: Vec<NodeHandle>, db: ThreadId, count: usize) -> bool {
    let mut digests = Vec::new();
    for h in &handles {
        if all_people(h, db).await.len() != count {
            return false;
        }
        match h.reader().state_digest(db).await {
            Ok(d) => digests.push(d),
            Err(_) => return false,
        }
    }
    digests.windows(2).all(|w| w[0] == w[1])
}
