//! The API proxy on `apiProxyAddr`: grpc-websockets calls (unary, server streaming, split
//! request bytes, cancellation by close), the protocol's bad input, grpc-web POSTs and CORS
//! preflights. The official JS client's own run is `scripts/js-client.sh`.

mod common;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use prost::Message as _;
use std::time::Duration;
use threads_driver_tokio::api::proto::db as pb;
use threads_driver_tokio::api::proto::net;
use threads_driver_tokio::api::{ApiServer, MAX_MESSAGE};
use threads_driver_tokio::node::WriteOp;
use threads_driver_tokio::{Node, NodeHandle};
use threads_protocol::engine::NewThread;
use threads_protocol::id::{ThreadId, Variant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
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

type Ws = WebSocketStream<TcpStream>;

/// Opens a grpc-websockets socket for `method` (of the DB API unless it names its service)
/// and sends the metadata message.
async fn open(s: &Setup, method: &str, metadata: &str) -> Ws {
    let stream = TcpStream::connect(s.proxy()).await.unwrap();
    let path = if method.contains('/') {
        method.to_owned()
    } else {
        format!("threads.pb.API/{method}")
    };
    let mut req = format!("ws://{}/{path}", s.proxy())
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", "grpc-websockets".parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::client_async(req, stream).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "grpc-websockets");
    ws.send(Message::Binary(Bytes::copy_from_slice(metadata.as_bytes())))
        .await
        .unwrap();
    ws
}

/// `0x00` + a gRPC length-prefixed message.
fn data(msg: &impl prost::Message) -> Bytes {
    let body = msg.encode_to_vec();
    let mut b = BytesMut::new();
    b.put_u8(0);
    b.put_u8(0);
    b.put_u32(body.len() as u32);
    b.put_slice(&body);
    b.freeze()
}

/// What the server sent on one socket, parsed.
#[derive(Debug, Default)]
struct Answer {
    /// Header and trailer blocks, in order.
    blocks: Vec<String>,
    /// Reply messages (protobuf bytes).
    messages: Vec<Bytes>,
    /// Whether the server closed the socket normally.
    closed: bool,
}

impl Answer {
    /// The `grpc-status` of the last block carrying one.
    fn status(&self) -> Option<i32> {
        self.field("grpc-status").map(|v| v.parse().unwrap())
    }

    fn field(&self, key: &str) -> Option<String> {
        self.blocks.iter().rev().find_map(|b| {
            b.split("\r\n")
                .find_map(|l| l.strip_prefix(&format!("{key}: ")).map(str::to_owned))
        })
    }
}

/// Reads server messages until the socket closes, or until `stop_after` reply messages.
async fn read(ws: &mut Ws, stop_after: Option<usize>) -> Answer {
    let mut answer = Answer::default();
    let mut buf = BytesMut::new();
    loop {
        let next = tokio::time::timeout(STEP, ws.next())
            .await
            .expect("a server message in time");
        match next {
            Some(Ok(Message::Binary(b))) => buf.extend_from_slice(&b),
            Some(Ok(Message::Close(_))) | None => {
                answer.closed = true;
                break;
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("socket error: {e}"),
        }
        // Frames may be split or merged across websocket messages.
        while buf.len() >= 5 {
            let len = u32::from_be_bytes(buf[1..5].try_into().unwrap()) as usize;
            if buf.len() < 5 + len {
                break;
            }
            let flag = buf[0];
            buf.advance(5);
            let body = buf.split_to(len).freeze();
            if flag & 0x80 != 0 {
                answer
                    .blocks
                    .push(String::from_utf8(body.to_vec()).unwrap());
            } else {
                answer.messages.push(body);
            }
        }
        if stop_after.is_some_and(|n| answer.messages.len() >= n) {
            break;
        }
    }
    answer
}

/// One unary call: metadata, the request, the half-close; reads until the close.
async fn unary(s: &Setup, method: &str, req: &impl prost::Message) -> Answer {
    let mut ws = open(
        s,
        method,
        "content-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\n",
    )
    .await;
    ws.send(Message::Binary(data(req))).await.unwrap();
    ws.send(Message::Binary(Bytes::from_static(&[1])))
        .await
        .unwrap();
    read(&mut ws, None).await
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
    let whole = data(&pb::NewDbRequest {
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
        ws.send(Message::Binary(m.freeze())).await.unwrap();
    }
    ws.send(Message::Binary(Bytes::from_static(&[1])))
        .await
        .unwrap();
    let a = read(&mut ws, None).await;
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
    ws.send(Message::Binary(data(&pb::ListDBsRequest {})))
        .await
        .unwrap();
    ws.send(Message::Binary(Bytes::from_static(&[1])))
        .await
        .unwrap();
    let a = read(&mut ws, None).await;
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
    ws.send(Message::Binary(data(&pb::ListenRequest {
        db_id: db.to_vec(),
        filters: vec![],
    })))
    .await
    .unwrap();
    ws.send(Message::Binary(Bytes::from_static(&[1])))
        .await
        .unwrap();
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
    let a = read(&mut ws, Some(1)).await;
    writer.abort();
    let reply = pb::ListenReply::decode(a.messages[0].clone()).unwrap();
    assert_eq!(reply.collection_name, "people");
    assert!(!a.closed, "a listen stays open");
    ws.close(None).await.unwrap();
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_violations_are_refused() {
    let s = Setup::new().await;
    // Metadata that is not `key: value` lines.
    let mut ws = open(&s, "ListDBs", "no colon here").await;
    let a = read(&mut ws, None).await;
    assert_eq!(
        a.status(),
        Some(tonic::Code::InvalidArgument as i32),
        "{a:?}"
    );
    assert!(a.field("grpc-message").unwrap().contains("bad%20metadata"));
    assert!(a.closed);

    // A request message with an unknown prefix byte.
    let mut ws = open(&s, "ListDBs", "").await;
    ws.send(Message::Binary(Bytes::from_static(&[7, 0, 0, 0, 0, 0])))
        .await
        .unwrap();
    let a = read(&mut ws, None).await;
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
    ws.send(Message::Binary(first.freeze())).await.unwrap();
    let chunk = Bytes::from(vec![0u8; 1024 * 1024]);
    let mut refused = false;
    for _ in 0..len / chunk.len() + 1 {
        if ws.send(Message::Binary(chunk.clone())).await.is_err() {
            refused = true;
            break;
        }
    }
    if !refused {
        let a = read(&mut ws, None).await;
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

    let body = data(&pb::ListDBsRequest {});
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
