//! The client API benchmark: one node and its API server (gRPC on one port, the
//! grpc-websockets proxy on another) in this process, clients over TCP on 127.0.0.1. Prints one
//! JSON line per figure on stdout (progress on stderr):
//!
//! * `unary`: `Create` (one ~200-byte document per call, each acknowledged once durable) and
//!   then `FindByID` of those documents, through `grpc` (one HTTP/2 connection per client, as
//!   tonic and Go clients keep) and through the `bridge` (one new websocket per call, as the
//!   JS client does), with 1 and 16 concurrent clients: calls per second and latency p50/p99.
//! * `find`: `Find` over gRPC with one client, after the unary figures (4 × `--calls`
//!   documents): every instance (`{}`) and those of one age (a hundredth, by the index),
//!   `--finds` calls each (default 50): latency and instances returned per second at the p50.
//! * `listen`: delivery latency of `Listen` through both transports: sequential single-document
//!   creates through the node's handle; the time from the write call until the listener has
//!   the change (p50/p99), next to the write's own acknowledgement latency.
//!
//! `cargo run --release -p threads-benches --bin api -- [--calls N]` (default 2000 calls per
//! figure, split among the clients; `--listen N` changes, default 500; `--finds N`).

mod shared;

use prost::Message as _;
use serde_json::json;
use shared::*;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use threads_driver_tokio::NodeHandle;
use threads_driver_tokio::api::ApiServer;
use threads_driver_tokio::api::proto::db as pb;
use threads_driver_tokio::api::proto::db::api_client::ApiClient;
use threads_driver_tokio::api::proxy::client::Call;
use threads_protocol::id::ThreadId;
use tokio::sync::mpsc;
use tonic::transport::Channel;

const USAGE: &str = "usage: api [--calls N] [--listen N] [--finds N]";

/// LMDB map size (address space only).
const MAP_SIZE: usize = 4 << 30;
/// Concurrency levels measured.
const CLIENTS: [usize; 2] = [1, 16];

#[derive(Clone, Copy, Debug)]
enum Transport {
    Grpc,
    Bridge,
}

impl Transport {
    fn name(self) -> &'static str {
        match self {
            Transport::Grpc => "grpc",
            Transport::Bridge => "bridge",
        }
    }
}

/// Where the clients connect.
#[derive(Clone)]
struct Target {
    grpc: SocketAddr,
    proxy: SocketAddr,
    db: ThreadId,
}

/// One client of one transport.
enum Client {
    Grpc(ApiClient<Channel>),
    Bridge(SocketAddr),
}

impl Client {
    async fn new(t: Transport, target: &Target) -> Client {
        match t {
            Transport::Grpc => Client::Grpc(
                ApiClient::connect(format!("http://{}", target.grpc))
                    .await
                    .unwrap_or_else(|e| fail(&format!("connecting: {e}"))),
            ),
            Transport::Bridge => Client::Bridge(target.proxy),
        }
    }

    /// Creates one document; returns its id.
    async fn create(&mut self, db: ThreadId, doc: &serde_json::Value) -> String {
        let req = pb::CreateRequest {
            db_id: db.to_vec(),
            collection_name: COLLECTION.into(),
            instances: vec![serde_json::to_vec(doc).expect("a JSON document")],
        };
        let reply: pb::CreateReply = match self {
            Client::Grpc(c) => c
                .create(req)
                .await
                .map(tonic::Response::into_inner)
                .unwrap_or_else(|e| fail(&format!("Create: {e}"))),
            Client::Bridge(proxy) => bridge(*proxy, "Create", &req).await,
        };
        reply.instance_i_ds.into_iter().next().expect("one id")
    }

    /// Reads one document back.
    async fn find_by_id(&mut self, db: ThreadId, id: &str) {
        let req = pb::FindByIdRequest {
            db_id: db.to_vec(),
            collection_name: COLLECTION.into(),
            instance_id: id.into(),
        };
        let reply: pb::FindByIdReply = match self {
            Client::Grpc(c) => c
                .find_by_id(req)
                .await
                .map(tonic::Response::into_inner)
                .unwrap_or_else(|e| fail(&format!("FindByID: {e}"))),
            Client::Bridge(proxy) => bridge(*proxy, "FindByID", &req).await,
        };
        if reply.instance.is_empty() {
            fail("FindByID returned no instance");
        }
    }
}

/// Runs `Find` over gRPC with a go-threads query; how many instances came back.
async fn find(client: &mut ApiClient<Channel>, db: ThreadId, query: &serde_json::Value) -> usize {
    let req = pb::FindRequest {
        db_id: db.to_vec(),
        collection_name: COLLECTION.into(),
        query_json: serde_json::to_vec(query).expect("a JSON query"),
    };
    let reply = client
        .find(req)
        .await
        .unwrap_or_else(|e| fail(&format!("Find: {e}")))
        .into_inner();
    reply.instances.len()
}

/// `Find` over gRPC, one client, `calls` times each: every instance (`{}`), and one age (a
/// hundredth of them, through the `age` index).
async fn finds(calls: usize, target: &Target) {
    let mut client = match Client::new(Transport::Grpc, target).await {
        Client::Grpc(c) => c,
        Client::Bridge(_) => unreachable!("a gRPC client"),
    };
    let by_age = json!({"ands": [{"fieldPath": "age", "operation": 0, "value": {"float": 42}}]});
    for (name, query) in [("all", json!({})), ("one_age", by_age)] {
        let mut lat = Vec::with_capacity(calls);
        let mut results = 0;
        let started = Instant::now();
        for _ in 0..calls {
            let t0 = Instant::now();
            results = find(&mut client, target.db, &query).await;
            lat.push(t0.elapsed().as_secs_f64());
        }
        let secs = started.elapsed().as_secs_f64();
        let p50 = percentile(&mut lat, 50.0);
        let line = json!({
            "figure": "find",
            "transport": "grpc",
            "query": name,
            "results": results,
            "instances_per_sec": round(results as f64 / p50, 0),
            "find": figures(&mut lat, secs),
        });
        println!("{line}");
    }
}

/// One unary DB API call over a new websocket, as the JS client makes it.
async fn bridge<Rep: prost::Message + Default>(
    proxy: SocketAddr,
    method: &str,
    req: &impl prost::Message,
) -> Rep {
    let a = Call::unary(proxy, &format!("/threads.pb.API/{method}"), "", req)
        .await
        .unwrap_or_else(|e| fail(&format!("{method} over the bridge: {e}")));
    if a.status() != Some(0) {
        fail(&format!("{method} over the bridge: {a:?}"));
    }
    let msg = a.messages.first().unwrap_or_else(|| fail("no reply"));
    Rep::decode(msg.clone()).unwrap_or_else(|e| fail(&format!("reply: {e}")))
}

/// Calls per second and latency percentiles of `latencies` taken over `secs`.
fn figures(latencies: &mut [f64], secs: f64) -> serde_json::Value {
    json!({
        "calls": latencies.len(),
        "calls_per_sec": round(latencies.len() as f64 / secs, 0),
        "p50_ms": round(percentile(latencies, 50.0) * 1e3, 3),
        "p99_ms": round(percentile(latencies, 99.0) * 1e3, 3),
    })
}

/// `calls` creates then as many FindByIDs, split among `clients` concurrent clients.
async fn unary(t: Transport, clients: usize, calls: usize, target: &Target) {
    let per = calls.div_ceil(clients);
    let mut tasks = Vec::new();
    let started = Instant::now();
    for c in 0..clients {
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = Client::new(t, &target).await;
            let mut ids = Vec::with_capacity(per);
            let mut lat = Vec::with_capacity(per);
            for i in 0..per {
                let t0 = Instant::now();
                ids.push(client.create(target.db, &doc(c, i)).await);
                lat.push(t0.elapsed().as_secs_f64());
            }
            (client, ids, lat)
        }));
    }
    let mut done = Vec::new();
    let mut create_lat = Vec::new();
    for task in tasks {
        let (client, ids, lat) = task.await.unwrap_or_else(|e| fail(&e.to_string()));
        create_lat.extend(lat);
        done.push((client, ids));
    }
    let create_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (mut client, ids) in done {
        let db = target.db;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(ids.len());
            for id in &ids {
                let t0 = Instant::now();
                client.find_by_id(db, id).await;
                lat.push(t0.elapsed().as_secs_f64());
            }
            lat
        }));
    }
    let mut find_lat = Vec::new();
    for task in tasks {
        find_lat.extend(task.await.unwrap_or_else(|e| fail(&e.to_string())));
    }
    let find_secs = started.elapsed().as_secs_f64();
    let line = json!({
        "figure": "unary",
        "transport": t.name(),
        "clients": clients,
        "create": figures(&mut create_lat, create_secs),
        "find_by_id": figures(&mut find_lat, find_secs),
    });
    println!("{line}");
}

/// Delivery latency of `n` changes to a listener over `t`.
async fn listen(t: Transport, n: usize, target: &Target, h: &NodeHandle) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, Instant)>();
    let req = pb::ListenRequest {
        db_id: target.db.to_vec(),
        filters: vec![],
    };
    let reader = match t {
        Transport::Grpc => {
            let mut c = ApiClient::connect(format!("http://{}", target.grpc))
                .await
                .unwrap_or_else(|e| fail(&format!("connecting: {e}")));
            let mut stream = c
                .listen(req)
                .await
                .unwrap_or_else(|e| fail(&format!("listen: {e}")))
                .into_inner();
            tokio::spawn(async move {
                while let Ok(Some(m)) = stream.message().await {
                    if tx.send((m.instance_id, Instant::now())).is_err() {
                        return;
                    }
                }
            })
        }
        Transport::Bridge => {
            let mut call = Call::open(target.proxy, "/threads.pb.API/Listen", "")
                .await
                .unwrap_or_else(|e| fail(&format!("listen: {e}")));
            call.send(&req)
                .await
                .unwrap_or_else(|e| fail(&e.to_string()));
            call.half_close()
                .await
                .unwrap_or_else(|e| fail(&e.to_string()));
            tokio::spawn(async move {
                while let Ok(a) = call.read(Some(1)).await {
                    for m in a.messages {
                        let Ok(m) = pb::ListenReply::decode(m) else {
                            return;
                        };
                        if tx.send((m.instance_id, Instant::now())).is_err() {
                            return;
                        }
                    }
                    if a.closed {
                        return;
                    }
                }
            })
        }
    };
    // The listener registers asynchronously: write until it reports a first change.
    let warm = Instant::now();
    loop {
        write(h, target.db, vec![create(99, 0)]).await;
        if tokio::time::timeout(Duration::from_millis(50), rx.recv())
            .await
            .is_ok()
        {
            break;
        }
        if warm.elapsed() > Duration::from_secs(30) {
            fail("the listener saw nothing within 30 s");
        }
    }
    while rx.try_recv().is_ok() {}
    let mut delivery = Vec::with_capacity(n);
    let mut ack = Vec::with_capacity(n);
    for i in 0..n {
        let t0 = Instant::now();
        let ids = write(h, target.db, vec![create(98, i)]).await;
        ack.push(t0.elapsed().as_secs_f64());
        loop {
            let (id, at) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .ok()
                .flatten()
                .unwrap_or_else(|| fail("a change did not arrive within 30 s"));
            if id == ids[0] {
                delivery.push(at.duration_since(t0).as_secs_f64());
                break;
            }
        }
    }
    reader.abort();
    let line = json!({
        "figure": "listen",
        "transport": t.name(),
        "changes": n,
        "delivery_p50_ms": round(percentile(&mut delivery, 50.0) * 1e3, 3),
        "delivery_p99_ms": round(percentile(&mut delivery, 99.0) * 1e3, 3),
        "write_ack_p50_ms": round(percentile(&mut ack, 50.0) * 1e3, 3),
        "write_ack_p99_ms": round(percentile(&mut ack, 99.0) * 1e3, 3),
    });
    println!("{line}");
}

#[tokio::main]
async fn main() {
    let mut calls = 2000usize;
    let mut changes = 500usize;
    let mut find_calls = 50usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--calls" => calls = flag_value("--calls", args.next(), USAGE),
            "--listen" => changes = flag_value("--listen", args.next(), USAGE),
            "--finds" => find_calls = flag_value("--finds", args.next(), USAGE),
            _ => {
                eprintln!("{USAGE}");
                std::process::exit(2);
            }
        }
    }
    let dir = tempfile::tempdir().unwrap_or_else(|e| fail(&format!("temporary folder: {e}")));
    let node = start(dir.path(), Timers::daemon(), MAP_SIZE).await;
    let h = node.handle();
    let any: SocketAddr = "127.0.0.1:0".parse().expect("a socket address");
    let api = ApiServer::start_with_proxy(h.clone(), any, Some(any))
        .await
        .unwrap_or_else(|e| fail(&e.to_string()));
    let db = new_db(&h).await.id;
    let target = Arc::new(Target {
        grpc: api.local_addr(),
        proxy: api.proxy_addr().expect("the proxy runs"),
        db,
    });
    for t in [Transport::Grpc, Transport::Bridge] {
        for clients in CLIENTS {
            eprintln!("unary over {} with {clients} client(s)", t.name());
            unary(t, clients, calls, &target).await;
        }
    }
    eprintln!("find over grpc");
    finds(find_calls, &target).await;
    for t in [Transport::Grpc, Transport::Bridge] {
        eprintln!("listen over {}", t.name());
        listen(t, changes, &target, &h).await;
    }
    let (rss, hwm) = rss_kib();
    println!(
        "{}",
        json!({"figure": "rss", "rss_kib": rss, "hwm_kib": hwm})
    );
    api.shutdown().await;
    if let Err(e) = node.shutdown().await {
        fail(&format!("stopping the node: {e}"));
    }
}
