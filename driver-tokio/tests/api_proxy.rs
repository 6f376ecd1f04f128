//! The API proxy on `apiProxyAddr`: grpc-websockets calls (unary, server streaming, split
//! request bytes, cancellation by close), the protocol's bad input, grpc-web POSTs and CORS
//! preflights. The official JS client's own run is `scripts/js-client.sh`.

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message as _;
use std::time::Duration;
use threads_driver_tokio::api::proto::db as pb;
use threads_driver_tokio::api::proto::net;
use threads_driver_tokio::api::proxy::client::{self, Answer, Call};
use threads_driver_tokio::api::{ApiServer, MAX_MESSAGE};
use threads_driver_tokio::node::WriteOp;
use threads_driver_tokio::{Node, NodeHandle};
use threads_protocol::engine::NewThread;
use threads_protocol::id::{ThreadId, Variant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Longest a test waits for one reply.
const STEP: Duration = Duration::from_secs(30);

struct Setup {
    node: Node,
    api: ApiServer,
    _dir: tempfile::TempDir,
}

impl Setup {
    async fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let node = common::start(dir.path()).await;
        let any = "127.0.0.1:0".parse().unwrap();
        let api = ApiServer::start_with_proxy(node.handle(), any, Some(any))
            .await
            .unwrap();
        Setup {
            node,
            api,
            _dir: dir,
        }
    }

    fn proxy(&self) -> std::net::SocketAddr {
        self.api.proxy_addr().expect("the proxy runs")
    }

    fn handle(&self) -> NodeHandle {
        self.node.handle()
    }

    async fn stop(self) {
        self.api.shutdown().await;
        self.node.shutdown().await.unwrap();
    }
}

/// The path of `method` (of the DB API unless it names its service).
fn path(method: &str) -> String {
    if method.contains('/') {
        format!("/{method}")
    } else {
        format!("/threads.pb.API/{method}")
    }
}

/// Opens a grpc-websockets call of `method` and sends the metadata message.
async fn open(s: &Setup, method: &str, metadata: &str) -> Call {
    Call::open(s.proxy(), &path(method), metadata)
        .await
        .unwrap()
}

/// One unary call, as the JS client makes it.
async fn unary(s: &Setup, method: &str, req: &impl prost::Message) -> Answer {
    Call::unary(
        s.proxy(),
        &path(method),
        "content-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\n",
        req,
    )
    .await
    .unwrap()
}

fn random_id(seed: u64) -> ThreadId {
    ThreadId::random(Variant::Raw, &mut threads_protocol::rng::seeded(seed))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_calls_over_websockets() {
    let s = Setup::new().await;
    let db = random_id(1);
    let a = unary(
        &s,
        "NewDB",
        &pb::NewDbRequest {
            db_id: db.to_vec(),
            name: "proxied".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(a.status(), Some(0), "{a:?}");
    assert!(a.closed);
    assert_eq!(a.messages.len(), 1);
    // The first block is the headers, the last the trailers.
    assert!(
        a.blocks[0].contains("content-type: application/grpc"),
        "{a:?}"
    );

    let a = unary(&s, "ListDBs", &pb::ListDBsRequest {}).await;
    assert_eq!(a.status(), Some(0));
    let list = pb::ListDBsReply::decode(a.messages[0].clone()).unwrap();
    assert_eq!(list.dbs.len(), 1);
    assert_eq!(list.dbs[0].db_id, db.to_vec());

    // An error carries the gRPC code and the percent-encoded message, then the socket closes.
    let a = unary(
        &s,
        "GetDBInfo",
        &pb::GetDbInfoRequest {
            db_id: random_id(2).to_vec(),
        },
    )
    .await;
    assert_eq!(a.status(), Some(tonic::Code::NotFound as i32), "{a:?}");
    assert!(
        a.field("grpc-message")
            .unwrap()
            .contains("thread%20not%20found")
    );
    assert!(a.messages.is_empty());
    assert!(a.closed);

    // The Net API is routed too.
    let a = unary(
        &s,
        "threads.net.pb.API/GetHostID",
        &net::GetHostIdRequest {},
    )
    .await;
    assert_eq!(a.status(), Some(0), "{a:?}");
    let host = net::GetHostIdReply::decode(a.messages[0].clone()).unwrap();
    assert_eq!(host.peer_id, s.handle().peer_id().as_bytes());

    // Many short-lived sockets, one call each.
    for _ in 0..100 {
        let a = unary(&s, "ListDBs", &pb::ListDBsRequest {}).await;
        assert_eq!(a.status(), Some(0));
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bytes_may_be_split_and_metadata_carries_the_token() {
    let s = Setup::new().await;
    let db = random_id(3);
    let whole = client::data(&pb::NewDbRequest {
        db_id: db.to_vec(),
        name: "split".into(),
        ..Default::default()
    });
    let mut ws = open(
        &s,
        "NewDB",
        "host: http://127.0.0.1:6007\r\nx-textile-thread-name: split\r\n",
    )
    .await;
    // 0x00 + the first 3 bytes, then 0x00 + the rest: one gRPC message across two frames.
    for part in [&whole[1..4], &whole[4..]] {
        let mut m = BytesMut::from(&[0u8][..]);
        m.put_slice(part);
        ws.send_raw(m.freeze()).await.unwrap();
    }
    ws.half_close().await.unwrap();
    let a = ws.read(None).await.unwrap();
    assert_eq!(a.status(), Some(0), "{a:?}");
    assert_eq!(
        s.handle()
            .reader()
            .snapshot(db, |r| r.db_name())
            .await
            .unwrap(),
        "split"
    );

    // A bad token in the metadata is refused like on the gRPC port.
    let mut ws = open(&s, "ListDBs", "authorization: bearer not.a.token\r\n").await;
    ws.send(&pb::ListDBsRequest {}).await.unwrap();
    ws.half_close().await.unwrap();
    let a = ws.read(None).await.unwrap();
    assert_eq!(a.status(), Some(tonic::Code::Unknown as i32), "{a:?}");
    assert_eq!(
        a.field("grpc-message").as_deref(),
        Some("thread%20token%20not%20found")
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_streams_until_the_client_closes() {
    let s = Setup::new().await;
    let db = s.handle().new_db(NewThread::default()).await.unwrap().id;
    s.handle()
        .write(db, None, vec![WriteOp::NewCollection(common::people())])
        .await
        .unwrap();
    let mut ws = open(&s, "Listen", "").await;
    ws.send(&pb::ListenRequest {
        db_id: db.to_vec(),
        filters: vec![],
    })
    .await
    .unwrap();
    ws.half_close().await.unwrap();
    // Keep writing until the listener (registered asynchronously) reports one.
    let writer = {
        let h = s.handle();
        tokio::spawn(async move {
            for i in 0..300 {
                common::write_one(&h, db, &format!("p{i}")).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let a = ws.read(Some(1)).await.unwrap();
    writer.abort();
    let reply = pb::ListenReply::decode(a.messages[0].clone()).unwrap();
    assert_eq!(reply.collection_name, "people");
    assert!(!a.closed, "a listen stays open");
    ws.close().await.unwrap();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_violations_are_refused() {
    let s = Setup::new().await;
    // Metadata that is not `key: value` lines.
    let mut ws = open(&s, "ListDBs", "no colon here").await;
    let a = ws.read(None).await.unwrap();
    assert_eq!(
        a.status(),
        Some(tonic::Code::InvalidArgument as i32),
        "{a:?}"
    );
    assert!(a.field("grpc-message").unwrap().contains("bad%20metadata"));
    assert!(a.closed);

    // A request message with an unknown prefix byte.
    let mut ws = open(&s, "ListDBs", "").await;
    ws.send_raw(Bytes::from_static(&[7, 0, 0, 0, 0, 0]))
        .await
        .unwrap();
    let a = ws.read(None).await.unwrap();
    assert_eq!(
        a.status(),
        Some(tonic::Code::InvalidArgument as i32),
        "{a:?}"
    );
    assert!(
        a.field("grpc-message")
            .unwrap()
            .contains("bad%20request%20message")
    );

    // A gRPC message over the limit, sent in parts that each fit a websocket message.
    let mut ws = open(&s, "Create", "").await;
    let len = MAX_MESSAGE + 1024;
    let mut first = BytesMut::new();
    first.put_u8(0);
    first.put_u8(0);
    first.put_u32(len as u32);
    ws.send_raw(first.freeze()).await.unwrap();
    let mut chunk = BytesMut::from(&[0u8][..]);
    chunk.put_slice(&vec![0u8; 1024 * 1024]);
    let chunk = chunk.freeze();
    let mut refused = false;
    for _ in 0..len / chunk.len() + 1 {
        if ws.send_raw(chunk.clone()).await.is_err() {
            refused = true;
            break;
        }
    }
    if !refused {
        let a = ws.read(None).await.unwrap();
        assert_ne!(a.status(), Some(0), "{a:?}");
        assert!(a.closed);
    }

    // A websocket without the subprotocol is refused at the upgrade.
    let stream = TcpStream::connect(s.proxy()).await.unwrap();
    let req = format!("ws://{}/threads.pb.API/ListDBs", s.proxy())
        .into_client_request()
        .unwrap();
    let err = tokio_tungstenite::client_async(req, stream)
        .await
        .expect_err("no subprotocol, no socket");
    assert!(err.to_string().contains("400"), "{err}");
    s.stop().await;
}

/// Sends one raw HTTP/1.1 request and returns the whole response.
async fn http(s: &Setup, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(s.proxy()).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(STEP, stream.read_to_end(&mut out))
        .await
        .expect("a response in time")
        .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_posts_and_cors_preflights() {
    let s = Setup::new().await;
    let preflight = http(
        &s,
        b"OPTIONS /threads.pb.API/ListDBs HTTP/1.1\r\nhost: x\r\norigin: http://app.example\r\n\
          access-control-request-method: POST\r\n\
          access-control-request-headers: content-type,x-grpc-web\r\nconnection: close\r\n\r\n",
    )
    .await;
    let text = String::from_utf8_lossy(&preflight).to_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(text.contains("access-control-allow-origin: *"), "{text}");

    let body = client::data(&pb::ListDBsRequest {});
    let mut post = format!(
        "POST /threads.pb.API/ListDBs HTTP/1.1\r\nhost: x\r\norigin: http://app.example\r\n\
         content-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len() - 1
    )
    .into_bytes();
    post.extend_from_slice(&body[1..]);
    let resp = http(&s, &post).await;
    let text = String::from_utf8_lossy(&resp).to_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(text.contains("application/grpc-web"), "{text}");
    assert!(text.contains("grpc-status:0"), "{text}");
    s.stop().await;
}
