//! Databases: NewDB, NewDBFromAddr, ListDBs, GetDBInfo, DeleteDB.

use super::convert::{self, status};
use super::proto::db as pb;
use super::service::DbApi;
use crate::node::{OpOutput, WriteMode, WriteOp};
use libp2p::multiaddr::Protocol;
use std::time::Duration;
use threads_protocol::addr::ThreadAddr;
use threads_protocol::engine::NewThread;
use threads_protocol::id::ThreadId;
use threads_protocol::identity::{PrivateKey, PublicKey};
use threads_protocol::key::ThreadKey;
use threads_reducer::db::check_name;
use tonic::Status;

/// Longest a blocking `NewDBFromAddr` waits for the named collections to arrive.
pub const JOIN_BLOCK_LIMIT: Duration = Duration::from_secs(30);

fn db_name(name: &str) -> Result<(), Status> {
    if name.is_empty() {
        return Ok(());
    }
    check_name(name).map_err(Status::invalid_argument)
}

fn thread_key(bytes: &[u8]) -> Result<ThreadKey, Status> {
    let key = ThreadKey::from_bytes(bytes).map_err(|e| Status::invalid_argument(e.to_string()))?;
    if !key.can_read() {
        return Err(Status::invalid_argument("thread read key is required"));
    }
    Ok(key)
}

/// Whether an address uses only protocols every client decodes (ip, dns, tcp, p2p).
fn plain_tcp(addr: &libp2p::Multiaddr) -> bool {
    addr.iter().all(|p| {
        matches!(
            p,
            Protocol::Ip4(_)
                | Protocol::Ip6(_)
                | Protocol::Dns(_)
                | Protocol::Dns4(_)
                | Protocol::Dns6(_)
                | Protocol::Tcp(_)
                | Protocol::P2p(_)
        )
    })
}

impl DbApi {
    /// The wire info of a database: thread addresses (TCP ones when there are any, since older
    /// multiaddr decoders do not know QUIC), the key and the local name.
    async fn db_info(&self, id: ThreadId) -> Result<pb::GetDbInfoReply, Status> {
        let info = self.node.thread_info(id).await.map_err(status)?;
        if !info.key.can_read() {
            // A thread this host only replicates is not a database here.
            return Err(Status::not_found("thread not found"));
        }
        let mut addrs = self.node.thread_addrs(id).await.map_err(status)?;
        if addrs.iter().any(|a| plain_tcp(&a.host)) {
            addrs.retain(|a| plain_tcp(&a.host));
        }
        let (net, name) = self
            .node
            .reader()
            .snapshot(id, |s| Ok((s.is_net_thread()?, s.db_name()?)))
            .await
            .map_err(status)?;
        if net {
            // A thread of the Net API is not a database either.
            return Err(Status::not_found("thread not found"));
        }
        Ok(pb::GetDbInfoReply {
            addrs: addrs.iter().map(ThreadAddr::to_bytes).collect(),
            key: info.key.to_bytes(),
            name,
        })
    }

    pub(super) async fn do_new_db(
        &self,
        caller: Option<PublicKey>,
        r: pb::NewDbRequest,
    ) -> Result<pb::NewDbReply, Status> {
        let id = convert::db_id(&r.db_id)?;
        db_name(&r.name)?;
        let key = if r.key.is_empty() {
            None
        } else {
            Some(thread_key(&r.key)?)
        };
        let log_key = if r.log_key.is_empty() {
            None
        } else {
            Some(PrivateKey::from_protobuf(&r.log_key).map_err(|e| {
                Status::invalid_argument(format!(
                    "invalid log-key: {e} (a database log needs its private key)"
                ))
            })?)
        };
        let collections = r
            .collections
            .into_iter()
            .map(|c| convert::collection_config(c).map(WriteOp::NewCollection))
            .collect::<Result<Vec<_>, _>>()?;
        let opts = NewThread {
            id: Some(id),
            key,
            identity: caller,
            log_key,
        };
        self.node.new_named_db(opts, r.name).await.map_err(status)?;
        if !collections.is_empty()
            && let Err(e) = self.write_all(id, caller, collections).await
        {
            // The request as a whole failed: leave no database behind.
            let _ = self.node.delete_db(id).await;
            return Err(e);
        }
        Ok(pb::NewDbReply {})
    }

    pub(super) async fn do_new_db_from_addr(
        &self,
        _caller: Option<PublicKey>,
        r: pb::NewDbFromAddrRequest,
    ) -> Result<pb::NewDbReply, Status> {
        let addr = ThreadAddr::from_bytes(&r.addr)
            .map_err(|e| Status::invalid_argument(format!("invalid addr: {e}")))?;
        let key = if r.key.is_empty() {
            &r.thread_key
        } else {
            &r.key
        };
        let key = thread_key(key)?;
        if !r.log_key.is_empty() {
            return Err(Status::unimplemented(
                "logKey is not supported by NewDBFromAddr: this node creates the caller's log \
                 on its first write",
            ));
        }
        db_name(&r.name)?;
        // Collections are replicated with the database; the ones named here are only waited
        // for (with `block`).
        let wanted: Vec<String> = r.collections.into_iter().map(|c| c.name).collect();
        let id = addr.thread;
        let mut records = self.node.subscribe();
        self.node
            .join_named(addr, key, r.name)
            .await
            .map_err(status)?;
        if r.block && !wanted.is_empty() {
            let _ = self.node.pull(id).await;
            let wait = async {
                loop {
                    let names = wanted.clone();
                    let have = self
                        .node
                        .reader()
                        .snapshot(id, move |s| {
                            Ok(names.iter().all(|n| s.collection_info(n).is_ok()))
                        })
                        .await
                        .unwrap_or(false);
                    if have {
                        return;
                    }
                    // Re-check after the next record stored (or a lag, which also means news).
                    if let Err(tokio::sync::broadcast::error::RecvError::Closed) =
                        records.recv().await
                    {
                        return;
                    }
                }
            };
            if tokio::time::timeout(JOIN_BLOCK_LIMIT, wait).await.is_err() {
                return Err(Status::deadline_exceeded(format!(
                    "joined, but the collections {wanted:?} did not arrive within {}s",
                    JOIN_BLOCK_LIMIT.as_secs()
                )));
            }
        }
        Ok(pb::NewDbReply {})
    }

    pub(super) async fn do_list_dbs(
        &self,
        _caller: Option<PublicKey>,
        _r: pb::ListDBsRequest,
    ) -> Result<pb::ListDBsReply, Status> {
        let mut dbs = Vec::new();
        for id in self.node.threads().await.map_err(status)? {
            // A database deleted meanwhile, or a replicated thread, is simply not listed.
            if let Ok(info) = self.db_info(id).await {
                dbs.push(pb::list_d_bs_reply::Db {
                    db_id: id.to_vec(),
                    info: Some(info),
                });
            }
        }
        Ok(pb::ListDBsReply { dbs })
    }

    pub(super) async fn do_get_db_info(
        &self,
        _caller: Option<PublicKey>,
        r: pb::GetDbInfoRequest,
    ) -> Result<pb::GetDbInfoReply, Status> {
        let id = convert::db_id(&r.db_id)?;
        self.db_info(id).await
    }

    pub(super) async fn do_delete_db(
        &self,
        _caller: Option<PublicKey>,
        r: pb::DeleteDbRequest,
    ) -> Result<pb::DeleteDbReply, Status> {
        let id = convert::db_id(&r.db_id)?;
        self.node.delete_db(id).await.map_err(status)?;
        Ok(pb::DeleteDbReply {})
    }

    /// Runs `ops` all or nothing; the first failed operation's error fails the call.
    pub(super) async fn write_all(
        &self,
        db: ThreadId,
        author: Option<PublicKey>,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<OpOutput>, Status> {
        let out = self
            .node
            .write_with(db, author, ops, WriteMode::All)
            .await
            .map_err(status)?;
        out.ops.into_iter().map(|r| r.map_err(status)).collect()
    }
}
