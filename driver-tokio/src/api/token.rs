//! The `GetToken` challenge flow (COMPAT §b), shared by the DB API and the Net API: key →
//! challenge → signature → token. Each service plugs its own generated messages in through
//! [`TokenWire`].

use super::auth;
use super::proto::{db, net};
use super::service::{ReplyStream, STREAM_CHANNEL, stopped};
use std::str::FromStr;
use threads_protocol::identity::{PrivateKey, PublicKey};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

/// What a `GetTokenRequest` carries.
pub enum TokenPayload {
    /// The caller's identity public key string.
    Key(String),
    /// The signed challenge.
    Signature(Vec<u8>),
}

/// The generated `GetToken` messages of one service.
pub trait TokenWire: Send + 'static {
    /// `GetTokenRequest`.
    type Request: Send + 'static;
    /// `GetTokenReply`.
    type Reply: Send + 'static;
    /// The payload of a request, if it has one.
    fn payload(request: Self::Request) -> Option<TokenPayload>;
    /// A reply with the challenge.
    fn challenge(challenge: Vec<u8>) -> Self::Reply;
    /// A reply with the token.
    fn token(token: String) -> Self::Reply;
}

/// Runs the flow on `inbound` in a task: the token is signed by `host`, and the flow ends
/// with "the server is stopping" when `stop` turns true.
pub fn flow<W: TokenWire>(
    host: PrivateKey,
    ttl: Option<std::time::Duration>,
    stop: watch::Receiver<bool>,
    mut inbound: Streaming<W::Request>,
) -> ReplyStream<W::Reply> {
    let (tx, rx) = mpsc::channel(STREAM_CHANNEL);
    tokio::spawn(async move {
        let result = steps::<W>(&host, ttl, stop, &mut inbound, &tx).await;
        let _ = tx.send(result.map(W::token)).await;
    });
    ReceiverStream::new(rx)
}

async fn steps<W: TokenWire>(
    host: &PrivateKey,
    ttl: Option<std::time::Duration>,
    stop: watch::Receiver<bool>,
    inbound: &mut Streaming<W::Request>,
    tx: &mpsc::Sender<Result<W::Reply, Status>>,
) -> Result<String, Status> {
    let key = match recv_timed(inbound, stop.clone())
        .await?
        .and_then(W::payload)
    {
        Some(TokenPayload::Key(k)) => k,
        _ => return Err(Status::invalid_argument("Key is required")),
    };
    let key = PublicKey::from_str(&key)
        .map_err(|e| Status::invalid_argument(format!("invalid key: {e}")))?;
    let challenge = auth::challenge()?;
    tx.send(Ok(W::challenge(challenge.to_vec())))
        .await
        .map_err(|_| Status::cancelled("the client went away"))?;
    let sig = match recv_timed(inbound, stop).await?.and_then(W::payload) {
        Some(TokenPayload::Signature(s)) => s,
        _ => return Err(Status::invalid_argument("Signature is required")),
    };
    key.verify(&challenge, &sig)
        .map_err(|_| Status::unauthenticated("bad signature"))?;
    Ok(auth::issue(host, &key, ttl))
}

/// The next message, within [`auth::CHALLENGE_DEADLINE`].
async fn recv_timed<T>(
    inbound: &mut Streaming<T>,
    mut stop: watch::Receiver<bool>,
) -> Result<Option<T>, Status> {
    tokio::select! {
        m = tokio::time::timeout(auth::CHALLENGE_DEADLINE, inbound.message()) => match m {
            Ok(m) => m,
            Err(_) => Err(Status::deadline_exceeded("Challenge deadline exceeded")),
        },
        _ = stopped(&mut stop) => Err(Status::unavailable("the server is stopping")),
    }
}

/// The `GetToken` messages of the DB API (`threads.pb`).
pub struct DbWire;

impl TokenWire for DbWire {
    type Request = db::GetTokenRequest;
    type Reply = db::GetTokenReply;
    fn payload(r: Self::Request) -> Option<TokenPayload> {
        Some(match r.payload? {
            db::get_token_request::Payload::Key(k) => TokenPayload::Key(k),
            db::get_token_request::Payload::Signature(s) => TokenPayload::Signature(s),
        })
    }
    fn challenge(c: Vec<u8>) -> Self::Reply {
        db::GetTokenReply {
            payload: Some(db::get_token_reply::Payload::Challenge(c)),
        }
    }
    fn token(t: String) -> Self::Reply {
        db::GetTokenReply {
            payload: Some(db::get_token_reply::Payload::Token(t)),
        }
    }
}

/// The `GetToken` messages of the Net API (`threads.net.pb`).
pub struct NetWire;

impl TokenWire for NetWire {
    type Request = net::GetTokenRequest;
    type Reply = net::GetTokenReply;
    fn payload(r: Self::Request) -> Option<TokenPayload> {
        Some(match r.payload? {
            net::get_token_request::Payload::Key(k) => TokenPayload::Key(k),
            net::get_token_request::Payload::Signature(s) => TokenPayload::Signature(s),
        })
    }
    fn challenge(c: Vec<u8>) -> Self::Reply {
        net::GetTokenReply {
            payload: Some(net::get_token_reply::Payload::Challenge(c)),
        }
    }
    fn token(t: String) -> Self::Reply {
        net::GetTokenReply {
            payload: Some(net::get_token_reply::Payload::Token(t)),
        }
    }
}
