//! [`NodeHandle`] methods of the Net API: plain threads, raw records, records by CID.

use crate::node::command::Command;
use crate::node::net_command::{LogKey, NetCommand};
use crate::node::{NodeError, NodeHandle};
use threads_protocol::Cid;
use threads_protocol::addr::ThreadAddr;
use threads_protocol::engine::ThreadInfo;
use threads_protocol::id::ThreadId;
use threads_protocol::identity::PublicKey;
use threads_protocol::key::ThreadKey;
use threads_protocol::log_id::LogId;
use threads_protocol::record::{RecordBundle, VerifiedRecord};

impl NodeHandle {
    /// Creates a plain (non-database) thread with the log of `identity` (the host when
    /// `None`), marked as a Net API thread. A missing key is a random key with read key; a
    /// public-only log key registers that log without making one this host writes. When the
    /// thread exists already, only the log is added ("log already exists" when `identity`
    /// has one).
    pub async fn create_thread(
        &self,
        id: ThreadId,
        key: Option<ThreadKey>,
        identity: Option<PublicKey>,
        log_key: Option<LogKey>,
    ) -> Result<ThreadInfo, NodeError> {
        self.ask(|reply| {
            Command::Net(Box::new(NetCommand::CreateThread {
                id,
                key,
                identity,
                log_key,
                reply,
            }))
        })
        .await
    }

    /// Adds a thread held by the peer at `addr` as a Net API thread (a 32-byte key makes this
    /// node a replicator), creating the log of `identity` when the key can read or a log key
    /// is given. Logs and records then arrive through sync.
    pub async fn add_thread(
        &self,
        addr: ThreadAddr,
        key: ThreadKey,
        identity: Option<PublicKey>,
        log_key: Option<LogKey>,
    ) -> Result<ThreadInfo, NodeError> {
        if let Some(peer) = addr.peer()
            && &peer != self.peer_id()
        {
            self.learn(peer, addr.host.clone()).await?;
        }
        self.ask(|reply| {
            Command::Net(Box::new(NetCommand::AddThread {
                addr: Box::new(addr),
                key,
                identity,
                log_key,
                reply,
            }))
        })
        .await
    }

    /// Deletes a thread that no database owns (keys, logs, records).
    pub async fn delete_thread(&self, id: ThreadId) -> Result<(), NodeError> {
        self.ask(|reply| Command::Net(Box::new(NetCommand::DeleteThread { id, reply })))
            .await
    }

    /// Appends a raw body (the caller checked it is DAG-CBOR) to the log of `author` (the
    /// host when `None`) in a thread no database owns, creating the log on first use.
    pub async fn create_record(
        &self,
        id: ThreadId,
        author: Option<PublicKey>,
        body: Vec<u8>,
    ) -> Result<VerifiedRecord, NodeError> {
        self.ask(|reply| {
            Command::Net(Box::new(NetCommand::CreateRecord {
                id,
                author,
                body,
                reply,
            }))
        })
        .await
    }

    /// Adds a record signed elsewhere as the next record of a known log. `false` when the
    /// record was stored already.
    pub async fn add_record(
        &self,
        id: ThreadId,
        log: LogId,
        bundle: RecordBundle,
    ) -> Result<bool, NodeError> {
        self.ask(|reply| {
            Command::Net(Box::new(NetCommand::AddRecord {
                id,
                log,
                bundle: Box::new(bundle),
                reply,
            }))
        })
        .await
    }

    /// A stored record of a thread, by the CID of its envelope block.
    pub async fn get_record(&self, id: ThreadId, cid: Cid) -> Result<RecordBundle, NodeError> {
        self.ask(|reply| Command::Net(Box::new(NetCommand::GetRecord { id, cid, reply })))
            .await
    }
}
