//! CreateThread, AddThread, GetThread, PullThread, DeleteThread, AddReplicator.

use super::NetApi;
use super::convert::{self, status};
use super::pb;
use crate::api::convert::db_id;
use threads_protocol::engine::ThreadInfo;
use threads_protocol::identity::PublicKey;
use tonic::Status;

impl NetApi {
    /// The wire info of a thread, with this host's thread addresses.
    async fn thread_reply(&self, info: ThreadInfo) -> Result<pb::ThreadInfoReply, Status> {
        let addrs = self.node.thread_addrs(info.id).await.map_err(status)?;
        Ok(convert::thread_reply(&info, self.node.peer_id(), &addrs))
    }

    pub(super) async fn do_create_thread(
        &self,
        caller: Option<PublicKey>,
        r: pb::CreateThreadRequest,
    ) -> Result<pb::ThreadInfoReply, Status> {
        let id = db_id(&r.thread_id)?;
        let keys = r.keys.unwrap_or_default();
        let key = convert::thread_key(&keys.thread_key)?;
        let log_key = convert::log_key(&keys.log_key)?;
        let info = self
            .node
            .create_thread(id, key, caller, log_key)
            .await
            .map_err(status)?;
        self.thread_reply(info).await
    }

    pub(super) async fn do_add_thread(
        &self,
        caller: Option<PublicKey>,
        r: pb::AddThreadRequest,
    ) -> Result<pb::ThreadInfoReply, Status> {
        let addr = convert::thread_addr(&r.addr)?;
        let keys = r.keys.unwrap_or_default();
        let key = convert::thread_key(&keys.thread_key)?.ok_or_else(|| {
            Status::invalid_argument("invalid thread-key: a thread key is required")
        })?;
        let log_key = convert::log_key(&keys.log_key)?;
        let info = self
            .node
            .add_thread(addr, key, caller, log_key)
            .await
            .map_err(status)?;
        self.thread_reply(info).await
    }

    pub(super) async fn do_get_thread(
        &self,
        _caller: Option<PublicKey>,
        r: pb::GetThreadRequest,
    ) -> Result<pb::ThreadInfoReply, Status> {
        let id = db_id(&r.thread_id)?;
        let info = self.node.thread_info(id).await.map_err(status)?;
        self.thread_reply(info).await
    }

    pub(super) async fn do_pull_thread(
        &self,
        _caller: Option<PublicKey>,
        r: pb::PullThreadRequest,
    ) -> Result<pb::PullThreadReply, Status> {
        let id = db_id(&r.thread_id)?;
        self.node.pull(id).await.map_err(status)?;
        Ok(pb::PullThreadReply {})
    }

    pub(super) async fn do_delete_thread(
        &self,
        _caller: Option<PublicKey>,
        r: pb::DeleteThreadRequest,
    ) -> Result<pb::DeleteThreadReply, Status> {
        let id = db_id(&r.thread_id)?;
        self.node.delete_thread(id).await.map_err(status)?;
        Ok(pb::DeleteThreadReply {})
    }

    pub(super) async fn do_add_replicator(
        &self,
        _caller: Option<PublicKey>,
        r: pb::AddReplicatorRequest,
    ) -> Result<pb::AddReplicatorReply, Status> {
        let id = db_id(&r.thread_id)?;
        let addr = convert::multiaddr(&r.addr)?;
        // An unknown thread fails before the address is remembered.
        self.node.thread_info(id).await.map_err(status)?;
        let peer = self.node.add_replicator(id, addr).await.map_err(status)?;
        Ok(pb::AddReplicatorReply {
            peer_id: peer.as_bytes().to_vec(),
        })
    }
}
