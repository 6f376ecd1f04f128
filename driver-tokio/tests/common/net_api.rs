//! Helpers of the Net API tests (`api_net.rs`): a node with its API server and clients,
//! the token flow, thread and record shortcuts, and records made as another host would.
#![allow(dead_code)]

use super::common;
use std::time::Duration;
use threads_driver_tokio::api::ApiServer;
use threads_driver_tokio::api::proto::db::api_client::ApiClient as DbClient;
use threads_driver_tokio::api::proto::net as pb;
use threads_driver_tokio::api::proto::net::api_client::ApiClient;
use threads_driver_tokio::{Node, NodeHandle};
use threads_protocol::counter::{LamportClock, LogCounter};
use threads_protocol::id::{ThreadId, Variant};
use threads_protocol::identity::PrivateKey;
use threads_protocol::key::ThreadKey;
use threads_protocol::record::{self, RecordDraft};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Request, Status, Streaming};

pub use pb::get_token_reply::Payload as TokenReply;
pub use pb::get_token_request::Payload as TokenReq;

/// Longest a test waits for one streamed message.
pub const STEP: Duration = Duration::from_secs(30);

pub type Client = ApiClient<Channel>;

pub struct Setup {
    pub node: Node,
    pub api: ApiServer,
    pub client: Client,
    pub db: DbClient<Channel>,
    pub _dir: tempfile::TempDir,
}

impl Setup {
    pub async fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let node = common::start(dir.path()).await;
        let api = ApiServer::start(node.handle(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let url = format!("http://{}", api.local_addr());
        let client = ApiClient::connect(url.clone()).await.unwrap();
        let db = DbClient::connect(url).await.unwrap();
        Setup {
            node,
            api,
            client,
            db,
            _dir: dir,
        }
    }

    pub fn handle(&self) -> NodeHandle {
        self.node.handle()
    }

    pub async fn stop(self) {
        self.api.shutdown().await;
        self.node.shutdown().await.unwrap();
    }
}

pub fn random_id(seed: u64) -> ThreadId {
    ThreadId::random(Variant::Raw, &mut threads_protocol::rng::seeded(seed))
}

pub fn with_token<T>(msg: T, token: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("bearer {token}").parse().unwrap());
    r
}

#[track_caller]
pub fn assert_status(r: Result<impl std::fmt::Debug, Status>, code: Code, text: &str) {
    let e = r.expect_err("the call must fail");
    assert_eq!(e.code(), code, "code of {e:?}");
    assert!(
        e.message().contains(text),
        "message {:?} should contain {text:?}",
        e.message()
    );
}

pub async fn next<T>(s: &mut Streaming<T>) -> T {
    tokio::time::timeout(STEP, s.message())
        .await
        .expect("a message in time")
        .expect("no error")
        .expect("the stream is open")
}

/// `{"n": n}` in DAG-CBOR.
pub fn cbor(n: u8) -> Vec<u8> {
    assert!(n < 24);
    vec![0xa1, 0x61, b'n', n]
}

/// The GetToken challenge flow for `key` on the Net API; returns the token.
pub async fn get_token(client: &mut Client, key: &PrivateKey) -> String {
    let (tx, rx) = mpsc::channel(4);
    tx.send(pb::GetTokenRequest {
        payload: Some(TokenReq::Key(key.public().to_string())),
    })
    .await
    .unwrap();
    let mut replies = client
        .get_token(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let challenge = match next(&mut replies).await.payload {
        Some(TokenReply::Challenge(c)) => c,
        other => panic!("expected a challenge, got {other:?}"),
    };
    tx.send(pb::GetTokenRequest {
        payload: Some(TokenReq::Signature(key.sign(&challenge).to_vec())),
    })
    .await
    .unwrap();
    drop(tx);
    match next(&mut replies).await.payload {
        Some(TokenReply::Token(t)) => t,
        other => panic!("expected a token, got {other:?}"),
    }
}

pub async fn get_thread(c: &mut Client, id: ThreadId) -> Result<pb::ThreadInfoReply, Status> {
    c.get_thread(pb::GetThreadRequest {
        thread_id: id.to_vec(),
    })
    .await
    .map(|r| r.into_inner())
}

/// The head of log `log` in a thread as `c` reports it (empty when unknown).
pub async fn head_of(c: &mut Client, id: ThreadId, log: &[u8]) -> Vec<u8> {
    match get_thread(c, id).await {
        Ok(info) => info
            .logs
            .into_iter()
            .find(|l| l.id == log)
            .map(|l| l.head)
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

pub async fn create_thread(
    c: &mut Client,
    id: ThreadId,
    keys: Option<pb::Keys>,
) -> pb::ThreadInfoReply {
    c.create_thread(pb::CreateThreadRequest {
        thread_id: id.to_vec(),
        keys,
    })
    .await
    .unwrap()
    .into_inner()
}

pub async fn create_record(c: &mut Client, id: ThreadId, n: u8) -> pb::NewRecordReply {
    c.create_record(pb::CreateRecordRequest {
        thread_id: id.to_vec(),
        body: cbor(n),
    })
    .await
    .unwrap()
    .into_inner()
}

/// A record of a log whose key only the test holds, made as another host would.
pub fn foreign_record(id: &ThreadId, key: &[u8], log_key: &PrivateKey, n: u8) -> pb::Record {
    let key = ThreadKey::from_bytes(key).unwrap();
    let author = log_key.public();
    let body = cbor(n);
    let draft = RecordDraft {
        thread: id,
        author: &author,
        prev: None,
        counter: LogCounter::new(1).unwrap(),
        clock: LamportClock(1),
        time: 1,
        body: &body,
    };
    let rec = record::create(&draft, log_key, &key, &mut threads_protocol::rng::seeded(9))
        .unwrap()
        .into_record();
    let b = rec.bundle();
    pb::Record {
        record_node: b.record.clone(),
        event_node: b.event.clone(),
        header_node: b.header.clone(),
        body_node: b.body.clone(),
    }
}

pub fn cid_of(r: &pb::Record) -> Vec<u8> {
    record::block_cid(&r.record_node).to_bytes()
}

pub fn hex(s: &[u8]) -> Vec<u8> {
    s.chunks(2)
        .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap())
        .collect()
}
