//! Helpers of the DB API tests (`api_grpc.rs`, `api_grpc_errors.rs`): a node with its API
//! server and client, the token flow, requests and checks of replies.
#![allow(dead_code, unused_imports)]

use super::common;
pub use serde_json::{Value, json};
pub use std::time::Duration;
pub use threads_driver_tokio::api::proto::db as pb;
pub use threads_driver_tokio::api::proto::db::api_client::ApiClient;
pub use threads_driver_tokio::api::service::{LISTEN_FROM, RESUME_FROM};
pub use threads_driver_tokio::api::{ApiServer, MAX_MESSAGE};
pub use threads_driver_tokio::{Node, NodeHandle};
pub use threads_protocol::addr::ThreadAddr;
pub use threads_protocol::id::{ThreadId, Variant};
pub use threads_protocol::identity::PrivateKey;
pub use tokio::sync::mpsc;
pub use tokio_stream::wrappers::ReceiverStream;
pub use tonic::transport::Channel;
pub use tonic::{Code, Request, Status, Streaming};

pub use pb::get_token_reply::Payload as TokenReply;
pub use pb::get_token_request::Payload as TokenReq;
pub use pb::read_transaction_reply::Option as RReply;
pub use pb::read_transaction_request::Option as RReq;
pub use pb::write_transaction_reply::Option as WReply;
pub use pb::write_transaction_request::Option as WReq;

/// Longest a test waits for one streamed message.
pub const STEP: Duration = Duration::from_secs(30);

pub type Client = ApiClient<Channel>;

pub struct Setup {
    pub node: Node,
    pub api: ApiServer,
    pub client: Client,
    pub _dir: tempfile::TempDir,
}

impl Setup {
    pub async fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let node = common::start(dir.path()).await;
        let api = ApiServer::start(node.handle(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let client = ApiClient::connect(format!("http://{}", api.local_addr()))
            .await
            .unwrap()
            .max_decoding_message_size(64 * 1024 * 1024);
        Setup {
            node,
            api,
            client,
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

pub fn user(seed: u8) -> PrivateKey {
    PrivateKey::from_seed([seed; 32])
}

pub fn with_token<T>(msg: T, token: &Option<String>) -> Request<T> {
    let mut r = Request::new(msg);
    if let Some(t) = token {
        r.metadata_mut()
            .insert("authorization", format!("bearer {t}").parse().unwrap());
    }
    r
}

pub fn people_config() -> pb::CollectionConfig {
    pb::CollectionConfig {
        name: "people".into(),
        schema: serde_json::to_vec(&json!({
            "properties": {
                "_id": {"type": "string"},
                "name": {"type": "string"},
                "email": {"type": "string"},
                "age": {"type": "integer"}
            },
            "required": ["name"]
        }))
        .unwrap(),
        indexes: vec![pb::Index {
            path: "email".into(),
            unique: true,
        }],
        ..Default::default()
    }
}

pub fn json_bytes(v: Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

pub fn parse(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap()
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

/// The GetToken challenge flow for `key`; returns the token.
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
    assert_eq!(challenge.len(), 32);
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

pub async fn next<T>(s: &mut Streaming<T>) -> T {
    tokio::time::timeout(STEP, s.message())
        .await
        .expect("a message in time")
        .expect("no error")
        .expect("the stream is open")
}

/// The feed position a lag error says to resume from.
pub fn resume_position(err: &Status) -> u64 {
    err.metadata()
        .get(RESUME_FROM)
        .expect("the resume position")
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// A listener of every change of `db` from feed position `from`.
pub async fn listen_from(c: &mut Client, db: ThreadId, from: u64) -> Streaming<pb::ListenReply> {
    let mut req = Request::new(pb::ListenRequest {
        db_id: db.to_vec(),
        filters: vec![],
    });
    req.metadata_mut()
        .insert(LISTEN_FROM, from.to_string().parse().unwrap());
    c.listen(req).await.unwrap().into_inner()
}

pub async fn new_db(client: &mut Client, id: ThreadId, name: &str, token: &Option<String>) {
    client
        .new_db(with_token(
            pb::NewDbRequest {
                db_id: id.to_vec(),
                name: name.into(),
                ..Default::default()
            },
            token,
        ))
        .await
        .unwrap();
}

pub async fn find_all(client: &mut Client, db: ThreadId, token: &Option<String>) -> Vec<Value> {
    client
        .find(with_token(
            pb::FindRequest {
                db_id: db.to_vec(),
                collection_name: "people".into(),
                query_json: b"{}".to_vec(),
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner()
        .instances
        .iter()
        .map(|b| parse(b))
        .collect()
}
