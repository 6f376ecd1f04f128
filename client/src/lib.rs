//! A typed async client of the ThreadDB API that `threadsd` serves over gRPC: the DB API
//! (`threads.pb.API`: databases, collections, instances, transactions, listeners, tokens) and
//! the Net API (`threads.net.pb.API`: host id, thread info, replicators, pulls), plus the
//! `threads` command-line tool built on it.
//!
//! Protobuf and JSON bytes stay inside: instances go in as any `T: Serialize` and come back as
//! any `T: DeserializeOwned`, schemas and queries are [`serde_json::Value`]s (or a [`Query`]
//! builder), ids, keys and addresses are `threads_protocol` types. Every failure is an
//! [`Error`]; a server error keeps its gRPC [`Code`] and message.
//!
//! The stubs are generated at build time from the daemon's `proto/` files; this crate does not
//! depend on the daemon.
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use serde_json::json;
//! use threads_client::{Client, CollectionConfig, NewDb, Query};
//! use threads_protocol::identity::PrivateKey;
//!
//! #[derive(Serialize, Deserialize)]
//! struct Person {
//!     #[serde(rename = "_id", default)]
//!     id: String,
//!     name: String,
//!     age: u32,
//! }
//!
//! # async fn run() -> Result<(), threads_client::Error> {
//! let client = Client::connect("http://127.0.0.1:6006").await?;
//! // Act as a user identity rather than as the host.
//! let user = PrivateKey::from_seed([7; 32]);
//! let token = client.get_token(&user).await?;
//! let client = client.with_token(token);
//!
//! let db = client.new_db(NewDb { name: "people".into(), ..Default::default() }).await?;
//! let schema = json!({"type": "object", "properties": {"_id": {"type": "string"}}});
//! client
//!     .new_collection(db, &CollectionConfig::new("person", schema).index("name", false))
//!     .await?;
//! let ids = client
//!     .create(db, "person", &[Person { id: String::new(), name: "Ada".into(), age: 36 }])
//!     .await?;
//! let adults: Vec<Person> = client.find(db, "person", &Query::field("age").ge(18)).await?;
//! assert_eq!(adults[0].id, ids[0]);
//!
//! // Several operations, committed as one record.
//! let mut txn = client.write_transaction(db, "person").await?;
//! txn.save(&[Person { id: ids[0].clone(), name: "Ada L.".into(), age: 37 }]).await?;
//! txn.commit().await?;
//! # Ok(())
//! # }
//! ```

mod db;
pub mod error;
mod instances;
mod net;
mod txn;
pub mod types;

pub use error::{Code, Error, Result};
pub use net::{LogInfo, ThreadInfo};
pub use txn::{ReadTransaction, WriteTransaction};
pub use types::{
    Action, Change, CollectionConfig, DbInfo, Index, ListenFilter, NewDb, Query, QueryValue, Where,
};

use futures::Stream;
use std::pin::Pin;
use std::time::Duration;
use threads_protocol::id::{ThreadId, Variant};
use threads_protocol::identity::PrivateKey;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Request;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

/// Generated protobuf messages and tonic client stubs (the wire level under [`Client`]).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    /// `threads.pb`: the DB API.
    pub mod db {
        tonic::include_proto!("threads.pb");
    }
    /// `threads.net.pb`: the Net API.
    pub mod net {
        tonic::include_proto!("threads.net.pb");
    }
}

use proto::db as pb;

/// The default API address of `threadsd`.
pub const DEFAULT_API: &str = "http://127.0.0.1:6006";

/// How long [`Client::connect`] tries to reach the server.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest reply message accepted (bytes).
pub const MAX_REPLY: usize = 64 * 1024 * 1024;

/// A stream of changes from [`Client::listen`].
pub type ChangeStream = Pin<Box<dyn Stream<Item = Result<Change>> + Send>>;

/// A connection to one `threadsd` API, optionally acting as a token's identity. Cloning is
/// cheap and clones share the connection.
#[derive(Clone, Debug)]
pub struct Client {
    channel: Channel,
    token: Option<String>,
}

/// Turns an API address into an `http://` URI: URIs are kept, `host:port` gets `http://`, and
/// the daemon's multiaddr form `/ip4/<ip>/tcp/<port>` (also `ip6`, `dns`, `dns4`, `dns6`) is
/// translated.
pub fn endpoint_uri(addr: &str) -> Result<String> {
    let bad = |reason: &str| Error::InvalidAddress {
        addr: addr.to_string(),
        reason: reason.to_string(),
    };
    let addr = addr.trim();
    if addr.is_empty() {
        return Err(bad("empty"));
    }
    if addr.starts_with('/') {
        let parts: Vec<&str> = addr.trim_end_matches('/').split('/').collect();
        return match parts.as_slice() {
            ["", "ip4" | "dns" | "dns4" | "dns6", host, "tcp", port] => {
                check_port(port).map_err(|_| bad("bad port"))?;
                Ok(format!("http://{host}:{port}"))
            }
            ["", "ip6", host, "tcp", port] => {
                check_port(port).map_err(|_| bad("bad port"))?;
                Ok(format!("http://[{host}]:{port}"))
            }
            _ => Err(bad("expected /ip4|ip6|dns/<host>/tcp/<port>")),
        };
    }
    if addr.contains("://") {
        Ok(addr.to_string())
    } else {
        Ok(format!("http://{addr}"))
    }
}

fn check_port(p: &str) -> std::result::Result<u16, std::num::ParseIntError> {
    p.parse::<u16>()
}

/// The error and its sources as one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

/// A fresh random database id (go-threads' `Raw` variant).
pub fn random_db_id() -> Result<ThreadId> {
    let mut random = [0u8; ThreadId::RANDOM_LEN];
    getrandom::fill(&mut random).map_err(|e| Error::invalid("randomness", e))?;
    ThreadId::new(Variant::Raw, &random).map_err(|e| Error::invalid("db id", e))
}

impl Client {
    /// Connects to the API at `addr` (see [`endpoint_uri`] for the accepted forms), trying
    /// for at most [`CONNECT_TIMEOUT`].
    pub async fn connect(addr: &str) -> Result<Client> {
        let uri = endpoint_uri(addr)?;
        let endpoint = Endpoint::from_shared(uri.clone()).map_err(|e| Error::InvalidAddress {
            addr: addr.to_string(),
            reason: chain(&e),
        })?;
        let endpoint = endpoint.connect_timeout(CONNECT_TIMEOUT).tcp_nodelay(true);
        let connecting = endpoint.connect();
        let channel = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| Error::Connect {
                addr: uri.clone(),
                reason: "timed out".into(),
            })?
            .map_err(|e| Error::Connect {
                addr: uri,
                reason: chain(&e),
            })?;
        Ok(Client {
            channel,
            token: None,
        })
    }

    /// The same connection, calling as the identity of `token` (from [`Client::get_token`]).
    pub fn with_token(mut self, token: impl Into<String>) -> Client {
        self.token = Some(token.into());
        self
    }

    /// The token calls are made with, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Wraps a message in a request with the `authorization` metadata.
    pub(crate) fn req<T>(&self, msg: T) -> Result<Request<T>> {
        let mut r = Request::new(msg);
        if let Some(t) = &self.token {
            let v: MetadataValue<_> = format!("bearer {t}")
                .parse()
                .map_err(|_| Error::invalid("token", "not printable ASCII"))?;
            r.metadata_mut().insert("authorization", v);
        }
        Ok(r)
    }

    pub(crate) fn db_api(&self) -> pb::api_client::ApiClient<Channel> {
        pb::api_client::ApiClient::new(self.channel.clone()).max_decoding_message_size(MAX_REPLY)
    }

    pub(crate) fn net_api(&self) -> proto::net::api_client::ApiClient<Channel> {
        proto::net::api_client::ApiClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_REPLY)
    }

    /// Gets a token for `identity` through the challenge flow: the server sends a challenge,
    /// the identity signs it. The token is signed by the host and does not expire; pass it to
    /// [`Client::with_token`].
    pub async fn get_token(&self, identity: &PrivateKey) -> Result<String> {
        use pb::get_token_reply::Payload as Reply;
        use pb::get_token_request::Payload as Req;
        let (tx, rx) = mpsc::channel(2);
        let send = |p| pb::GetTokenRequest { payload: Some(p) };
        tx.send(send(Req::Key(identity.public().to_string())))
            .await
            .map_err(|_| Error::Protocol("token stream closed".into()))?;
        let mut replies = self
            .db_api()
            .get_token(self.req(ReceiverStream::new(rx))?)
            .await?
            .into_inner();
        let challenge = match replies.message().await?.and_then(|m| m.payload) {
            Some(Reply::Challenge(c)) => c,
            other => {
                return Err(Error::Protocol(format!(
                    "expected a challenge, got {other:?}"
                )));
            }
        };
        tx.send(send(Req::Signature(identity.sign(&challenge).to_vec())))
            .await
            .map_err(|_| Error::Protocol("token stream closed".into()))?;
        drop(tx);
        match replies.message().await?.and_then(|m| m.payload) {
            Some(Reply::Token(t)) => Ok(t),
            other => Err(Error::Protocol(format!("expected a token, got {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_addresses() {
        assert_eq!(endpoint_uri(DEFAULT_API).unwrap(), DEFAULT_API);
        assert_eq!(endpoint_uri("127.0.0.1:7").unwrap(), "http://127.0.0.1:7");
        assert_eq!(
            endpoint_uri("/ip4/127.0.0.1/tcp/6006").unwrap(),
            "http://127.0.0.1:6006"
        );
        assert_eq!(endpoint_uri("/ip6/::1/tcp/1").unwrap(), "http://[::1]:1");
        assert_eq!(
            endpoint_uri("/dns4/localhost/tcp/2").unwrap(),
            "http://localhost:2"
        );
        for bad in ["", " ", "/ip4/1.2.3.4/udp/1", "/ip4/1.2.3.4/tcp/99999"] {
            assert!(
                matches!(endpoint_uri(bad), Err(Error::InvalidAddress { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn random_ids_differ() {
        let a = random_db_id().unwrap();
        assert_eq!(a.variant(), Variant::Raw);
        assert_ne!(a, random_db_id().unwrap());
    }
}
