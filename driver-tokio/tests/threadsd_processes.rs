//! Two `threadsd` processes sync a thread over loopback: the binary, its Go-style flags and its
//! environment names, the repository it reopens, the address book it dials from, the welcome
//! lines, the metrics endpoint, the client API on `apiAddr` and `apiProxyAddr` (and exit 1 when
//! either is taken) and a clean exit on SIGTERM and SIGINT.

mod common;

use common::*;
use prost::Message as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use threads_driver_tokio::api::proto::db as pb;
use threads_driver_tokio::api::proto::db::api_client::ApiClient;
use threads_driver_tokio::api::proxy::client::Call;
use threads_driver_tokio::node::WriteOp;
use threads_protocol::addr::ThreadAddr;
use threads_protocol::engine::NewThread;

/// `N` distinct free loopback ports: all are bound at once before any is released, so the
/// OS cannot hand out the same port twice (one port per daemon socket; a repeat made a daemon
/// exit with "address in use" now and then).
fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<_> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| held[i].local_addr().unwrap().port())
}

/// Waits for the two welcome lines and returns the peer id printed.
fn welcome(child: &mut Child) -> String {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "Welcome to Threads!");
    let second = lines.next().unwrap().unwrap();
    second
        .strip_prefix("Your peer ID is ")
        .expect("peer id line")
        .to_owned()
}

/// One figure from the metrics endpoint (0 while it is not reachable).
fn metric(port: u16, name: &str) -> u64 {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(ok.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_threadsd_processes_sync_a_thread() {
    let (repo_a, repo_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let [
        port_a,
        port_b,
        metrics_a,
        metrics_b,
        api_a,
        api_b,
        proxy_a,
        proxy_b,
        spare_a,
        spare_b,
    ] = free_ports();

    // Seed the repositories with the library: A holds a database with 3 documents; B joined it
    // from A's future address, which it keeps in its address book.
    let a = start(repo_a.path()).await;
    let info = a.handle().new_db(NewThread::default()).await.unwrap();
    let db = info.id;
    a.handle()
        .write(db, None, vec![WriteOp::NewCollection(people())])
        .await
        .unwrap();
    for n in ["a1", "a2", "a3"] {
        write_one(&a.handle(), db, n).await;
    }
    let peer_a = a.peer_id();
    a.shutdown().await.unwrap();
    let addr_a: ThreadAddr = ThreadAddr::new(
        format!("/ip4/127.0.0.1/tcp/{port_a}/p2p/{peer_a}")
            .parse()
            .unwrap(),
        db,
    );
    let b = start(repo_b.path()).await;
    b.handle().join(addr_a, info.key.clone()).await.unwrap();
    let peer_b = b.peer_id();
    b.shutdown().await.unwrap();

    let bin = env!("CARGO_BIN_EXE_threadsd");
    // A: Go-style single-dash flags.
    let mut pa = Command::new(bin)
        .arg(format!("-repo={}", repo_a.path().display()))
        .arg(format!("-hostAddr=/ip4/127.0.0.1/tcp/{port_a}"))
        .arg("-metricsAddr")
        .arg(format!("/ip4/127.0.0.1/tcp/{metrics_a}"))
        .arg(format!("-apiAddr=/ip4/127.0.0.1/tcp/{api_a}"))
        .arg(format!("-apiProxyAddr=/ip4/127.0.0.1/tcp/{proxy_a}"))
        .args([
            "-netPullingInitialInterval=100ms",
            "-netPullingInterval=1s",
            "-debug=false",
            "-badgerLowMem",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // B: environment names.
    let mut pb = Command::new(bin)
        .env("THRDS_REPO", repo_b.path())
        .env("THRDS_HOSTADDR", format!("/ip4/127.0.0.1/tcp/{port_b}"))
        .env(
            "THRDS_METRICSADDR",
            format!("/ip4/127.0.0.1/tcp/{metrics_b}"),
        )
        .env("THRDS_APIADDR", format!("/ip4/127.0.0.1/tcp/{api_b}"))
        .env(
            "THRDS_APIPROXYADDR",
            format!("/ip4/127.0.0.1/tcp/{proxy_b}"),
        )
        .env("THRDS_NETPULLINGINITIALINTERVAL", "100ms")
        .env("THRDS_NETPULLINGINTERVAL", "1s")
        .env("THRDS_DEBUG", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert_eq!(welcome(&mut pa), peer_a.to_string());
    assert_eq!(welcome(&mut pb), peer_b.to_string());
    eventually("B ingests A's four records", CONVERGE_WITHIN, || async {
        metric(metrics_b, "threads_records_ingested_total") >= 4
    })
    .await;
    assert!(metric(metrics_a, "threads_connected_peers") >= 1);
    // Both serve the client API: each lists the database.
    for port in [api_a, api_b] {
        let mut client = ApiClient::connect(format!("http://127.0.0.1:{port}"))
            .await
            .unwrap();
        let dbs = client
            .list_d_bs(pb::ListDBsRequest {})
            .await
            .unwrap()
            .into_inner()
            .dbs;
        assert_eq!(dbs.len(), 1);
        assert_eq!(dbs[0].db_id, db.to_vec());
    }
    // And the grpc-websockets proxy, as the JS client calls it.
    for port in [proxy_a, proxy_b] {
        let proxy = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let a = Call::unary(proxy, "/threads.pb.API/ListDBs", "", &pb::ListDBsRequest {})
            .await
            .unwrap();
        assert_eq!(a.status(), Some(0), "{a:?}");
        let dbs = pb::ListDBsReply::decode(a.messages[0].clone()).unwrap().dbs;
        assert_eq!(dbs.len(), 1);
    }
    // A third daemon whose apiAddr (then apiProxyAddr) is taken exits 1 and names the setting.
    let repo_c = tempfile::tempdir().unwrap();
    for (api, proxy, setting) in [
        (api_a, spare_a, "invalid setting apiAddr"),
        (spare_b, proxy_a, "invalid setting apiProxyAddr"),
    ] {
        let out = Command::new(bin)
            .arg(format!("-repo={}", repo_c.path().display()))
            .arg("-hostAddr=/ip4/127.0.0.1/tcp/0")
            .arg(format!("-apiAddr=/ip4/127.0.0.1/tcp/{api}"))
            .arg(format!("-apiProxyAddr=/ip4/127.0.0.1/tcp/{proxy}"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(setting), "{err}");
    }
    let out = Command::new(bin)
        .arg(format!("-repo={}", repo_c.path().display()))
        .arg("-apiAddr=/ip4/127.0.0.1/udp/1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid setting apiAddr"));

    signal(&pa, "TERM");
    signal(&pb, "INT");
    assert!(pa.wait().unwrap().success(), "threadsd exits 0 on SIGTERM");
    assert!(pb.wait().unwrap().success(), "threadsd exits 0 on SIGINT");

    // Both repositories hold the same database.
    let a = start(repo_a.path()).await;
    let b = start(repo_b.path()).await;
    assert!(
        converged(vec![a.handle(), b.handle()], db, 3).await,
        "the processes synced the database"
    );
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
