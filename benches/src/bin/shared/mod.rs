//! Helpers shared by the node benchmarks (`daemon`, `many_nodes`, `api`): nodes on 127.0.0.1 with
//! ephemeral ports, the benchmark collection and its ~200-byte documents, convergence checks
//! and process figures.

#![allow(dead_code)] // each binary uses its own subset

// Linked for its global allocator: the figures are those of `threadsd`'s allocator (mimalloc).
use threads_benches as _;

use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use threads_driver_tokio::node::{OpOutput, WriteOp};
use threads_driver_tokio::{Node, NodeConfig, NodeHandle};
use threads_protocol::engine::NewThread;
use threads_protocol::id::ThreadId;
use threads_reducer::db::{CollectionConfig, IndexSpec};
use threads_reducer::query::Query;

/// The collection every benchmark writes to.
pub const COLLECTION: &str = "people";

/// Engine timers of a node.
#[derive(Clone, Copy, Debug)]
pub struct Timers {
    /// Anti-entropy interval right after a change, ms.
    pub sync_min_ms: u64,
    /// Longest anti-entropy interval, ms.
    pub sync_max_ms: u64,
    /// Pull timeout, ms.
    pub pull_timeout_ms: u64,
    /// Records per page.
    pub page_max_records: u32,
}

impl Timers {
    /// `threadsd`'s defaults (`netPullingInitialInterval` 1s, `netPullingInterval` 10s,
    /// `netPullingLimit` 10000; engine pull timeout).
    pub fn daemon() -> Self {
        let engine = threads_protocol::engine::Config::default();
        Timers {
            sync_min_ms: 1_000,
            sync_max_ms: 10_000,
            pull_timeout_ms: engine.pull_timeout_ms,
            page_max_records: 10_000,
        }
    }

    /// The short timers of the integration tests (100 ms .. 1 s).
    pub fn fast() -> Self {
        Timers {
            sync_min_ms: 100,
            sync_max_ms: 1_000,
            pull_timeout_ms: 2_000,
            page_max_records: threads_protocol::engine::Config::default().page_max_records,
        }
    }

    /// The timers as a JSON object (for the output lines).
    pub fn json(&self) -> Value {
        json!({
            "sync_interval_min_ms": self.sync_min_ms,
            "sync_interval_max_ms": self.sync_max_ms,
            "pull_timeout_ms": self.pull_timeout_ms,
            "page_max_records": self.page_max_records,
        })
    }
}

/// A node config: TCP on 127.0.0.1 with a free port, no QUIC, the given timers. The
/// environment variable `BENCH_LOG_BYTES` sets the write-ahead log's capacity
/// (`LmdbOptions::log_bytes`; 0 turns it off), for comparisons.
pub fn config(repo: &Path, timers: Timers, map_size: usize) -> NodeConfig {
    let mut c = NodeConfig::new(
        repo,
        vec![
            "/ip4/127.0.0.1/tcp/0"
                .parse()
                .expect("a valid loopback address"),
        ],
    );
    c.engine.sync_interval_min_ms = timers.sync_min_ms;
    c.engine.sync_interval_max_ms = timers.sync_max_ms;
    c.engine.pull_timeout_ms = timers.pull_timeout_ms;
    c.engine.page_max_records = timers.page_max_records;
    c.lmdb = threads_benches::lmdb_options();
    c.lmdb.map_size = map_size;
    c
}

/// Starts a node on `repo`, exiting with a message when it cannot.
pub async fn start(repo: &Path, timers: Timers, map_size: usize) -> Node {
    match Node::start(config(repo, timers, map_size)).await {
        Ok(n) => n,
        Err(e) => fail(&format!("starting a node: {e}")),
    }
}

/// Prints `msg` on stderr and exits non-zero.
pub fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(1)
}

/// The collection: a schema with `_id`, `name`, `age`, `city`, `bio`, and an index on `age`.
pub fn collection() -> CollectionConfig {
    CollectionConfig {
        name: COLLECTION.into(),
        schema: json!({
            "type": "object",
            "properties": {
                "_id": {"type": "string"},
                "name": {"type": "string"},
                "age": {"type": "integer"},
                "city": {"type": "string"},
                "bio": {"type": "string"}
            },
            "required": ["_id", "name", "age"]
        }),
        indexes: vec![IndexSpec {
            path: "age".into(),
            unique: false,
        }],
        write_validator: String::new(),
        read_filter: String::new(),
    }
}

/// Document number `i` of writer `writer` (without `_id`; the node assigns one). With its
/// `_id` and `_mod` it serializes to about 200 bytes.
pub fn doc(writer: usize, i: usize) -> Value {
    json!({
        "name": format!("person-{writer:02}-{i:07}"),
        "age": (i * 7 + writer) % 100,
        "city": format!("city-{:02}", (i * 13 + writer) % 100),
        "bio": format!("{:-<88}", format!("writer {writer} document {i} lorem ipsum dolor sit amet ")),
    })
}

/// Serialized size of a stored document (with a 26-character `_id` and a nanosecond `_mod`).
pub fn doc_bytes() -> usize {
    let mut d = doc(1, 1234);
    d["_id"] = json!("01jabcdefghjkmnpqrstvwxyz0");
    d["_mod"] = json!(1_700_000_000_000_000_000u64);
    serde_json::to_vec(&d).map_or(0, |v| v.len())
}

/// The create operation of a document.
pub fn create(writer: usize, i: usize) -> WriteOp {
    WriteOp::Create {
        collection: COLLECTION.into(),
        instance: doc(writer, i),
    }
}

/// Writes `ops` in one transaction and checks that every operation succeeded.
pub async fn write(h: &NodeHandle, db: ThreadId, ops: Vec<WriteOp>) -> Vec<String> {
    let n = ops.len();
    let out = match h.write(db, None, ops).await {
        Ok(out) => out,
        Err(e) => fail(&format!("write: {e}")),
    };
    if out.record.is_none() {
        fail("a write committed no record");
    }
    let mut ids = Vec::with_capacity(n);
    for op in out.ops {
        match op {
            Ok(OpOutput::Created(id)) => ids.push(id),
            Ok(OpOutput::Done) => {}
            Err(e) => fail(&format!("write operation: {e}")),
        }
    }
    ids
}

/// Creates a database with the collection on `h`.
pub async fn new_db(h: &NodeHandle) -> threads_protocol::engine::ThreadInfo {
    let info = match h.new_db(NewThread::default()).await {
        Ok(i) => i,
        Err(e) => fail(&format!("new_db: {e}")),
    };
    write(h, info.id, vec![WriteOp::NewCollection(collection())]).await;
    info
}

/// Joins `db` on `joiner` from `from`'s first thread address.
pub async fn join(
    joiner: &NodeHandle,
    from: &NodeHandle,
    info: &threads_protocol::engine::ThreadInfo,
) {
    let addr = match from.thread_addrs(info.id).await {
        Ok(mut a) if !a.is_empty() => a.remove(0),
        other => fail(&format!("thread address: {:?}", other.map(|_| ()))),
    };
    if let Err(e) = joiner.join(addr, info.key.clone()).await {
        fail(&format!("join: {e}"));
    }
}

/// How many documents `h` holds in the collection (0 before it has the collection).
pub async fn count(h: &NodeHandle, db: ThreadId) -> usize {
    let q = Query::from_threads_json(&json!({})).expect("the empty query parses");
    h.reader()
        .find(db, COLLECTION, q, None)
        .await
        .map_or(0, |rows| rows.len())
}

/// The state digest of `db` on `h` (`None` before it holds the database).
pub async fn digest(h: &NodeHandle, db: ThreadId) -> Option<[u8; 32]> {
    h.reader().state_digest(db).await.ok()
}

/// Whether every handle holds `n` documents and all state digests are equal. Digests are
/// compared first (one scan each); the counts (a full query each) only once they agree.
pub async fn converged(handles: &[NodeHandle], db: ThreadId, n: usize) -> bool {
    let mut first = None;
    for h in handles {
        let Some(d) = digest(h, db).await else {
            return false;
        };
        match first {
            None => first = Some(d),
            Some(f) if f != d => return false,
            Some(_) => {}
        }
    }
    for h in handles {
        if count(h, db).await != n {
            return false;
        }
    }
    true
}

/// Polls `check` every `every` until it holds (returns the time it took) or `within` passes
/// (exits with `what`).
pub async fn wait_for<F, Fut>(what: &str, every: Duration, within: Duration, mut check: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed().as_secs_f64();
        }
        if start.elapsed() > within {
            fail(&format!("{what}: not reached within {within:?}"));
        }
        tokio::time::sleep(every).await;
    }
}

/// `(VmRSS, VmHWM)` of this process in KiB, from `/proc/self/status` (zeros elsewhere).
pub fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// `x` rounded to `digits` decimals, as a JSON number.
pub fn round(x: f64, digits: i32) -> Value {
    let m = 10f64.powi(digits);
    json!((x * m).round() / m)
}

/// The `p`-th percentile (nearest rank) of `v`, which it sorts.
pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Parses the value following a flag, exiting with `usage` when it is missing or invalid.
pub fn flag_value<T: std::str::FromStr>(flag: &str, value: Option<String>, usage: &str) -> T {
    match value.map(|v| v.replace('_', "")).map(|v| v.parse::<T>()) {
        Some(Ok(v)) => v,
        _ => {
            eprintln!("{flag} needs a valid value\n{usage}");
            std::process::exit(2)
        }
    }
}
