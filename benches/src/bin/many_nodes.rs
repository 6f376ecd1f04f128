//! Many participants: N nodes in this process on 127.0.0.1 (TCP, ephemeral ports) share one
//! document database. Node 0 creates it with a collection; node i joins from the thread
//! address of node (i - 1) / 2 (a binary tree, so most nodes are introduced only to one other
//! node) and waits until it holds the collection. Then every node writes its documents at
//! once (one durable single-document write transaction each, sequential per node), and the
//! clock runs until every node holds all N × W documents with equal state digests. The query
//! results are then compared too (not timed).
//!
//! Prints one JSON line: nodes, writes per node, seconds to convergence (from the first write
//! to all converged), the join phase's seconds, and sync bytes sent per node (mean and max,
//! over the whole run and over the write phase alone) from the nodes' metrics.
//!
//! `cargo run --release -p threads-benches --bin many_nodes -- [--nodes N] [--writes W]
//! [--timeout SECS]` (defaults: 50 nodes, 10 writes each, 600 s), or
//! `scripts/many-nodes.sh [N] [W]`.
//!
//! Engine timers are the integration tests' (anti-entropy every 100 ms .. 1 s); every node's
//! engine thread, swarm task and LMDB environment live in this one process.

mod shared;

use serde_json::json;
use shared::*;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use threads_driver_tokio::{Node, NodeHandle};
use threads_protocol::id::ThreadId;

const USAGE: &str = "usage: many_nodes [--nodes N] [--writes W] [--timeout SECS]";

/// LMDB map size per node (address space only).
const MAP_SIZE: usize = 1 << 30;

/// How often convergence is checked.
const POLL: Duration = Duration::from_millis(10);
/// How often progress goes to stderr while waiting.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

struct Args {
    nodes: usize,
    writes: usize,
    timeout: Duration,
}

fn parse_args() -> Args {
    let mut a = Args {
        nodes: 50,
        writes: 10,
        timeout: Duration::from_secs(600),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--nodes" | "-n" => a.nodes = flag_value(&flag, args.next(), USAGE),
            "--writes" | "-w" => a.writes = flag_value(&flag, args.next(), USAGE),
            "--timeout" => a.timeout = Duration::from_secs(flag_value(&flag, args.next(), USAGE)),
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0)
            }
            other => {
                eprintln!("unknown argument: {other}\n{USAGE}");
                std::process::exit(2)
            }
        }
    }
    if a.nodes < 2 || a.writes == 0 {
        eprintln!("at least 2 nodes and 1 write per node\n{USAGE}");
        std::process::exit(2)
    }
    a
}

/// Sync bytes each node has sent so far.
fn bytes_sent(handles: &[NodeHandle]) -> Vec<u64> {
    handles
        .iter()
        .map(|h| h.metrics().bytes_sent.load(Ordering::Relaxed))
        .collect()
}

/// Records of every thread `h` stored: written here or received.
fn records_stored(h: &NodeHandle) -> u64 {
    let m = h.metrics();
    m.records_written.load(Ordering::Relaxed) + m.records_ingested.load(Ordering::Relaxed)
}

/// `(mean, max)` of `v`.
fn mean_max(v: &[u64]) -> (f64, u64) {
    let sum: u64 = v.iter().sum();
    (
        sum as f64 / v.len().max(1) as f64,
        v.iter().copied().max().unwrap_or(0),
    )
}

/// Whether every node's query returns the same rows.
async fn same_query_results(handles: &[NodeHandle], db: ThreadId) -> bool {
    let q = || threads_reducer::query::Query::from_threads_json(&json!({})).expect("query");
    let Ok(reference) = handles[0].reader().find(db, COLLECTION, q(), None).await else {
        return false;
    };
    for h in &handles[1..] {
        match h.reader().find(db, COLLECTION, q(), None).await {
            Ok(rows) if rows == reference => {}
            _ => return false,
        }
    }
    true
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let timers = Timers::fast();
    let root = tempfile::tempdir().unwrap_or_else(|e| fail(&format!("temporary folder: {e}")));
    let started = Instant::now();

    let mut nodes: Vec<Node> = Vec::with_capacity(args.nodes);
    for i in 0..args.nodes {
        let repo = root.path().join(format!("node-{i:03}"));
        nodes.push(start(&repo, timers, MAP_SIZE).await);
    }
    let handles: Vec<NodeHandle> = nodes.iter().map(Node::handle).collect();
    eprintln!(
        "{} nodes started in {:.2} s",
        args.nodes,
        started.elapsed().as_secs_f64()
    );

    // Node 0 creates the database; node i joins from node (i - 1) / 2 once that one holds the
    // collection.
    let join_started = Instant::now();
    let info = new_db(&handles[0]).await;
    let db = info.id;
    for i in 1..args.nodes {
        join(&handles[i], &handles[(i - 1) / 2], &info).await;
        let h = handles[i].clone();
        wait_for(
            &format!("node {i} receives the collection"),
            Duration::from_millis(10),
            args.timeout,
            || async { h.reader().collection_info(db, COLLECTION).await.is_ok() },
        )
        .await;
    }
    let join_secs = join_started.elapsed().as_secs_f64();
    eprintln!("{} nodes joined in {join_secs:.2} s", args.nodes - 1);

    // Everybody writes at once; the clock runs until all converge.
    let before = bytes_sent(&handles);
    let writes_started = Instant::now();
    let writers: Vec<_> = handles
        .iter()
        .enumerate()
        .map(|(w, h)| {
            let h = h.clone();
            let n = args.writes;
            tokio::spawn(async move {
                for i in 0..n {
                    write(&h, db, vec![create(w, i)]).await;
                }
                writes_started.elapsed().as_secs_f64()
            })
        })
        .collect();
    let mut writes_secs: f64 = 0.0;
    for w in writers {
        let secs = w.await.unwrap_or_else(|e| fail(&format!("writer: {e}")));
        writes_secs = writes_secs.max(secs);
    }
    let total = args.nodes * args.writes;
    // A node holds everything once it stored every record (the collection's and the
    // writes'): cheap atomic counters, polled for every node; the digests and queries are
    // only compared once every node got there.
    let all_records = total as u64 + 1;
    let mut complete_at: Vec<Option<f64>> = vec![None; args.nodes];
    let mut last_report = Instant::now();
    loop {
        let now = writes_started.elapsed();
        for (i, h) in handles.iter().enumerate() {
            if complete_at[i].is_none() && records_stored(h) >= all_records {
                complete_at[i] = Some(now.as_secs_f64());
            }
        }
        let complete = complete_at.iter().filter(|c| c.is_some()).count();
        if complete == args.nodes && converged(&handles, db, total).await {
            break;
        }
        if now > args.timeout {
            fail(&format!(
                "{complete} of {} nodes hold every record after {:?}",
                args.nodes, args.timeout
            ));
        }
        if last_report.elapsed() > PROGRESS_EVERY {
            let stored: u64 = handles.iter().map(records_stored).sum();
            eprintln!(
                "{:.1} s: {complete} of {} nodes hold every record; {:.1}% of all records stored",
                now.as_secs_f64(),
                args.nodes,
                100.0 * stored as f64 / (all_records * args.nodes as u64) as f64
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(POLL).await;
    }
    let converge_secs = writes_started.elapsed().as_secs_f64();
    let after = bytes_sent(&handles);
    eprintln!("converged {converge_secs:.2} s after the first write");

    if !same_query_results(&handles, db).await {
        fail("digests are equal but query results differ");
    }
    let mut complete_secs: Vec<f64> = complete_at.into_iter().flatten().collect();
    let write_phase: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    let (mean, max) = mean_max(&after);
    let (wp_mean, wp_max) = mean_max(&write_phase);
    let received: Vec<u64> = handles
        .iter()
        .map(|h| h.metrics().bytes_received.load(Ordering::Relaxed))
        .collect();
    let (rx_mean, rx_max) = mean_max(&received);
    let dropped: u64 = handles
        .iter()
        .map(|h| h.metrics().transmits_dropped.load(Ordering::Relaxed))
        .sum();
    let (rss, hwm) = rss_kib();
    println!(
        "{}",
        json!({
            "bench": "many_nodes",
            "nodes": args.nodes,
            "writes_per_node": args.writes,
            "documents": total,
            "doc_bytes": doc_bytes(),
            "transport": "tcp 127.0.0.1, all nodes in one process",
            "topology": "node i joins from node (i-1)/2",
            "timers": timers.json(),
            "join_secs": round(join_secs, 3),
            "writes_acked_secs": round(writes_secs, 3),
            "converge_secs": round(converge_secs, 3),
            "node_complete_secs_p50": round(percentile(&mut complete_secs.clone(), 50.0), 3),
            "node_complete_secs_p90": round(percentile(&mut complete_secs.clone(), 90.0), 3),
            "node_complete_secs_max": round(percentile(&mut complete_secs, 100.0), 3),
            "bytes_sent_per_node_mean": round(mean, 0),
            "bytes_sent_per_node_max": max,
            "write_phase_bytes_sent_per_node_mean": round(wp_mean, 0),
            "write_phase_bytes_sent_per_node_max": wp_max,
            "bytes_received_per_node_mean": round(rx_mean, 0),
            "bytes_received_per_node_max": rx_max,
            "messages_dropped": dropped,
            "process_rss_mib": round(rss as f64 / 1024.0, 1),
            "process_peak_rss_mib": round(hwm as f64 / 1024.0, 1),
        })
    );

    for n in nodes {
        if let Err(e) = n.shutdown().await {
            fail(&format!("shutdown: {e}"));
        }
    }
}
