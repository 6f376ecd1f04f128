//! A writer for crash tests: opens a node on `--repo`, makes sure it holds one database with a
//! `people` collection, prints `DB <thread id> <thread key>`, then writes one document per
//! durable write transaction and prints `ACK <instance id>` after each one is acknowledged,
//! until killed or after `--max-writes` writes. The kill -9 test kills it at random moments and
//! checks that every acknowledged id survived. `--log-bytes N` sets the size of the store's
//! write-ahead log when the repository is created (a small one makes kills land during
//! background checkpoints).

use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use threads_driver_tokio::node::{OpOutput, WriteOp};
use threads_driver_tokio::{Node, NodeConfig};
use threads_protocol::engine::NewThread;
use threads_reducer::db::CollectionConfig;

fn arg(name: &str) -> Option<String> {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == name {
            return args.next();
        }
    }
    None
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let Some(repo) = arg("--repo").map(PathBuf::from) else {
        eprintln!("usage: threads-crash-writer --repo DIR [--max-writes N] [--log-bytes N]");
        return std::process::ExitCode::FAILURE;
    };
    let max_writes: u64 = arg("--max-writes")
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let mut config = NodeConfig::new(&repo, vec!["/ip4/127.0.0.1/tcp/0".parse().expect("valid")]);
    config.lmdb.map_size = 1 << 30;
    if let Some(bytes) = arg("--log-bytes").and_then(|n| n.parse().ok()) {
        config.lmdb.log_bytes = bytes;
    }
    let node = match Node::start(config).await {
        Ok(n) => n,
        Err(e) => {
            eprintln!("threads-crash-writer: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let h = node.handle();
    let threads = h.threads().await.expect("list threads");
    // A kill may land between creating the database and its collection: check both.
    let db = match threads.first() {
        Some(id) => *id,
        None => h.new_db(NewThread::default()).await.expect("new db").id,
    };
    if h.reader().collection_info(db, "people").await.is_err() {
        let people = CollectionConfig {
            name: "people".into(),
            schema: json!({"type": "object", "properties": {"_id": {"type": "string"}}}),
            indexes: Vec::new(),
            write_validator: String::new(),
            read_filter: String::new(),
        };
        h.write(db, None, vec![WriteOp::NewCollection(people)])
            .await
            .expect("collection");
    }
    let key = h.thread_info(db).await.expect("thread info").key;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "DB {db} {key}");
    let _ = out.flush();
    for n in 0..max_writes {
        let doc = json!({"n": n, "pad": "x".repeat(150)});
        let op = WriteOp::Create {
            collection: "people".into(),
            instance: doc,
        };
        let outcome = h.write(db, None, vec![op]).await.expect("durable write");
        if let Some(Ok(OpOutput::Created(id))) = outcome.ops.first() {
            let _ = writeln!(out, "ACK {id}");
            let _ = out.flush();
        }
    }
    drop(out);
    let _ = node.shutdown().await;
    std::process::ExitCode::SUCCESS
}
