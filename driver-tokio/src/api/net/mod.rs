//! [`NetApi`]: the `threads.net.pb.API` service (go-threads' Net API, COMPAT §g) on a node:
//! plain threads with caller-chosen keys, raw DAG-CBOR records, replicators and a record
//! subscription. Same token rules as the DB API ([`super::auth`]); `GetToken` is the shared
//! flow of [`super::token`].
//!
//! * [`convert`]: wire bytes to node types, `ThreadInfoReply`/`LogInfo` (with the
//!   `LogInfo.counter` quirk), node errors to statuses.
//! * `threads`: GetHostID, CreateThread, AddThread, GetThread, PullThread, DeleteThread,
//!   AddReplicator.
//! * `records`: CreateRecord, AddRecord, GetRecord, Subscribe.

pub mod convert;
mod records;
mod threads;

use super::auth;
use super::proto::net as pb;
use super::proto::net::api_server::{Api, ApiServer};
use super::service::ReplyStream;
use super::{MAX_MESSAGE, token};
use crate::NodeHandle;
use threads_protocol::identity::PublicKey;
use tokio::sync::watch;
use tonic::{Request, Response, Status, Streaming};

/// The Net API on a node.
#[derive(Clone)]
pub struct NetApi {
    node: NodeHandle,
    host: PublicKey,
    stop: watch::Receiver<bool>,
    token_ttl: Option<std::time::Duration>,
}

impl NetApi {
    /// The service for `node`; open streams end when `stop` turns true. Tokens never expire.
    pub fn new(node: NodeHandle, stop: watch::Receiver<bool>) -> Self {
        let host = node.host_key().public();
        NetApi {
            node,
            host,
            stop,
            token_ttl: None,
        }
    }

    /// Tokens issued by `GetToken` expire `ttl` after issue (`None`: never, as go-threads).
    pub fn with_token_ttl(mut self, ttl: Option<std::time::Duration>) -> Self {
        self.token_ttl = ttl;
        self
    }

    fn caller<T>(&self, r: &Request<T>) -> Result<Option<PublicKey>, Status> {
        auth::caller(&self.host, r.metadata())
    }
}

/// The Net API of `node` as a tonic service with the server's message size limits
/// ([`MAX_MESSAGE`]), ready for `Server::add_service` or a router; open streams end when
/// `stop` turns true; its tokens expire `token_ttl` after issue (never with `None`).
pub fn net_service(
    node: NodeHandle,
    stop: watch::Receiver<bool>,
    token_ttl: Option<std::time::Duration>,
) -> ApiServer<NetApi> {
    ApiServer::new(NetApi::new(node, stop).with_token_ttl(token_ttl))
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

#[tonic::async_trait]
impl Api for NetApi {
    type GetTokenStream = ReplyStream<pb::GetTokenReply>;
    type SubscribeStream = ReplyStream<pb::NewRecordReply>;

    async fn get_host_id(
        &self,
        request: Request<pb::GetHostIdRequest>,
    ) -> Result<Response<pb::GetHostIdReply>, Status> {
        self.caller(&request)?;
        Ok(Response::new(pb::GetHostIdReply {
            peer_id: self.node.peer_id().as_bytes().to_vec(),
        }))
    }

    async fn get_token(
        &self,
        request: Request<Streaming<pb::GetTokenRequest>>,
    ) -> Result<Response<Self::GetTokenStream>, Status> {
        Ok(Response::new(token::flow::<token::NetWire>(
            self.node.host_key().clone(),
            self.token_ttl,
            self.stop.clone(),
            request.into_inner(),
        )))
    }

    async fn create_thread(
        &self,
        request: Request<pb::CreateThreadRequest>,
    ) -> Result<Response<pb::ThreadInfoReply>, Status> {
        unary!(self, request, do_create_thread)
    }

    async fn add_thread(
        &self,
        request: Request<pb::AddThreadRequest>,
    ) -> Result<Response<pb::ThreadInfoReply>, Status> {
        unary!(self, request, do_add_thread)
    }

    async fn get_thread(
        &self,
        request: Request<pb::GetThreadRequest>,
    ) -> Result<Response<pb::ThreadInfoReply>, Status> {
        unary!(self, request, do_get_thread)
    }

    async fn pull_thread(
        &self,
        request: Request<pb::PullThreadRequest>,
    ) -> Result<Response<pb::PullThreadReply>, Status> {
        unary!(self, request, do_pull_thread)
    }

    async fn delete_thread(
        &self,
        request: Request<pb::DeleteThreadRequest>,
    ) -> Result<Response<pb::DeleteThreadReply>, Status> {
        unary!(self, request, do_delete_thread)
    }

    async fn add_replicator(
        &self,
        request: Request<pb::AddReplicatorRequest>,
    ) -> Result<Response<pb::AddReplicatorReply>, Status> {
        unary!(self, request, do_add_replicator)
    }

    async fn create_record(
        &self,
        request: Request<pb::CreateRecordRequest>,
    ) -> Result<Response<pb::NewRecordReply>, Status> {
        unary!(self, request, do_create_record)
    }

    async fn add_record(
        &self,
        request: Request<pb::AddRecordRequest>,
    ) -> Result<Response<pb::AddRecordReply>, Status> {
        unary!(self, request, do_add_record)
    }

    async fn get_record(
        &self,
        request: Request<pb::GetRecordRequest>,
    ) -> Result<Response<pb::GetRecordReply>, Status> {
        unary!(self, request, do_get_record)
    }

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        unary!(self, request, do_subscribe)
    }
}
