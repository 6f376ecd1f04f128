//! [`DbApi`]: the `threads.pb.API` service. Each RPC authenticates the caller
//! ([`super::auth::caller`]) and hands over to its module (databases, collections, instances,
//! transactions, listen).

use super::auth;
use super::proto::db as pb;
use super::proto::db::api_server::Api;
use crate::NodeHandle;
use threads_protocol::identity::PublicKey;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// Replies of a streaming RPC.
pub type ReplyStream<T> = ReceiverStream<Result<T, Status>>;

/// Capacity of a streaming RPC's reply channel.
pub(super) const STREAM_CHANNEL: usize = 64;

/// The DB API on a node.
#[derive(Clone)]
pub struct DbApi {
    pub(super) node: NodeHandle,
    pub(super) host: PublicKey,
    pub(super) stop: watch::Receiver<bool>,
    pub(super) token_ttl: Option<std::time::Duration>,
}

impl DbApi {
    /// The service for `node`; open streams end when `stop` turns true. Tokens never expire.
    pub fn new(node: NodeHandle, stop: watch::Receiver<bool>) -> Self {
        let host = node.host_key().public();
        DbApi {
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

    /// The caller's identity from the request's metadata.
    pub(super) fn caller<T>(&self, r: &Request<T>) -> Result<Option<PublicKey>, Status> {
        auth::caller(&self.host, r.metadata())
    }

    /// A reply channel and its stream.
    pub(super) fn channel<T>() -> (mpsc::Sender<Result<T, Status>>, ReplyStream<T>) {
        let (tx, rx) = mpsc::channel(STREAM_CHANNEL);
        (tx, ReceiverStream::new(rx))
    }
}

/// Resolves once `stop` turns true.
pub(super) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The identity string a read filter sees (`None` without a token).
pub(super) fn reader_of(caller: &Option<PublicKey>) -> Option<String> {
    caller.as_ref().map(|k| k.to_string())
}

#[tonic::async_trait]
impl Api for DbApi {
    type GetTokenStream = ReplyStream<pb::GetTokenReply>;
    type ReadTransactionStream = ReplyStream<pb::ReadTransactionReply>;
    type WriteTransactionStream = ReplyStream<pb::WriteTransactionReply>;
    type ListenStream = ReplyStream<pb::ListenReply>;

    async fn get_token(
        &self,
        request: Request<Streaming<pb::GetTokenRequest>>,
    ) -> Result<Response<Self::GetTokenStream>, Status> {
        Ok(Response::new(self.token_flow(request.into_inner())))
    }

    async fn new_db(
        &self,
        request: Request<pb::NewDbRequest>,
    ) -> Result<Response<pb::NewDbReply>, Status> {
        unary!(self, request, do_new_db)
    }

    async fn new_db_from_addr(
        &self,
        request: Request<pb::NewDbFromAddrRequest>,
    ) -> Result<Response<pb::NewDbReply>, Status> {
        unary!(self, request, do_new_db_from_addr)
    }

    async fn list_d_bs(
        &self,
        request: Request<pb::ListDBsRequest>,
    ) -> Result<Response<pb::ListDBsReply>, Status> {
        unary!(self, request, do_list_dbs)
    }

    async fn get_db_info(
        &self,
        request: Request<pb::GetDbInfoRequest>,
    ) -> Result<Response<pb::GetDbInfoReply>, Status> {
        unary!(self, request, do_get_db_info)
    }

    async fn delete_db(
        &self,
        request: Request<pb::DeleteDbRequest>,
    ) -> Result<Response<pb::DeleteDbReply>, Status> {
        unary!(self, request, do_delete_db)
    }

    async fn new_collection(
        &self,
        request: Request<pb::NewCollectionRequest>,
    ) -> Result<Response<pb::NewCollectionReply>, Status> {
        unary!(self, request, do_new_collection)
    }

    async fn update_collection(
        &self,
        request: Request<pb::UpdateCollectionRequest>,
    ) -> Result<Response<pb::UpdateCollectionReply>, Status> {
        unary!(self, request, do_update_collection)
    }

    async fn delete_collection(
        &self,
        request: Request<pb::DeleteCollectionRequest>,
    ) -> Result<Response<pb::DeleteCollectionReply>, Status> {
        unary!(self, request, do_delete_collection)
    }

    async fn get_collection_info(
        &self,
        request: Request<pb::GetCollectionInfoRequest>,
    ) -> Result<Response<pb::GetCollectionInfoReply>, Status> {
        unary!(self, request, do_get_collection_info)
    }

    async fn get_collection_indexes(
        &self,
        request: Request<pb::GetCollectionIndexesRequest>,
    ) -> Result<Response<pb::GetCollectionIndexesReply>, Status> {
        unary!(self, request, do_get_collection_indexes)
    }

    async fn list_collections(
        &self,
        request: Request<pb::ListCollectionsRequest>,
    ) -> Result<Response<pb::ListCollectionsReply>, Status> {
        unary!(self, request, do_list_collections)
    }

    async fn create(
        &self,
        request: Request<pb::CreateRequest>,
    ) -> Result<Response<pb::CreateReply>, Status> {
        unary!(self, request, do_create)
    }

    async fn verify(
        &self,
        request: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyReply>, Status> {
        unary!(self, request, do_verify)
    }

    async fn save(
        &self,
        request: Request<pb::SaveRequest>,
    ) -> Result<Response<pb::SaveReply>, Status> {
        unary!(self, request, do_save)
    }

    async fn delete(
        &self,
        request: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteReply>, Status> {
        unary!(self, request, do_delete)
    }

    async fn has(
        &self,
        request: Request<pb::HasRequest>,
    ) -> Result<Response<pb::HasReply>, Status> {
        unary!(self, request, do_has)
    }

    async fn find(
        &self,
        request: Request<pb::FindRequest>,
    ) -> Result<Response<pb::FindReply>, Status> {
        unary!(self, request, do_find)
    }

    async fn find_by_id(
        &self,
        request: Request<pb::FindByIdRequest>,
    ) -> Result<Response<pb::FindByIdReply>, Status> {
        unary!(self, request, do_find_by_id)
    }

    async fn read_transaction(
        &self,
        request: Request<Streaming<pb::ReadTransactionRequest>>,
    ) -> Result<Response<Self::ReadTransactionStream>, Status> {
        let caller = self.caller(&request)?;
        self.read_txn(caller, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn write_transaction(
        &self,
        request: Request<Streaming<pb::WriteTransactionRequest>>,
    ) -> Result<Response<Self::WriteTransactionStream>, Status> {
        let caller = self.caller(&request)?;
        self.write_txn(caller, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn listen(
        &self,
        request: Request<pb::ListenRequest>,
    ) -> Result<Response<Self::ListenStream>, Status> {
        let caller = self.caller(&request)?;
        let from = listen_from(request.metadata())?;
        self.do_listen(caller, request.into_inner(), from)
            .await
            .map(Response::new)
    }
}

/// Metadata key with which a listener resumes from a feed position (after a lag error, from
/// the position that error names).
pub const LISTEN_FROM: &str = "x-threads-listen-from";

/// Metadata key of a lag error: the oldest position a listener can resume from.
pub const RESUME_FROM: &str = "x-threads-resume-from";

fn listen_from(md: &tonic::metadata::MetadataMap) -> Result<Option<u64>, Status> {
    match md.get(LISTEN_FROM) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| {
                Status::invalid_argument(format!("{LISTEN_FROM} must be a feed position (u64)"))
            }),
    }
}
