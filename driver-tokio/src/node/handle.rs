//! [`NodeHandle`]: the async front of a running node.

use crate::metrics::Metrics;
use crate::net::NetControl;
use crate::node::command::{
    ChangeItem, Command, OpOutput, Reply, WriteMode, WriteOp, WriteOutcome,
};
use crate::node::{NetRecord, NodeError, Reader};
use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use std::sync::Arc;
use threads_protocol::addr::ThreadAddr;
use threads_protocol::engine::{NewThread, PeerId, ThreadInfo};
use threads_protocol::id::ThreadId;
use threads_protocol::identity::{PrivateKey, PublicKey};
use threads_protocol::key::ThreadKey;
use threads_reducer::listen::Filter;
use tokio::sync::{broadcast, mpsc, oneshot};

/// Capacity of one listener's channel; the feed keeps what does not fit (up to its history).
pub const LISTENER_CHANNEL: usize = 256;

/// Talks to a running node. Cheap to clone; every method is cancel-safe for the caller (a
/// dropped future does not undo a write the engine already took).
#[derive(Clone)]
pub struct NodeHandle {
    peer_id: PeerId,
    host_key: PrivateKey,
    cmds: mpsc::Sender<Command>,
    net: mpsc::Sender<NetControl>,
    records: broadcast::Sender<NetRecord>,
    reader: Reader,
    metrics: Arc<Metrics>,
}

impl NodeHandle {
    pub(crate) fn new(
        peer_id: PeerId,
        host_key: PrivateKey,
        cmds: mpsc::Sender<Command>,
        net: mpsc::Sender<NetControl>,
        records: broadcast::Sender<NetRecord>,
        reader: Reader,
        metrics: Arc<Metrics>,
    ) -> Self {
        NodeHandle {
            peer_id,
            host_key,
            cmds,
            net,
            records,
            reader,
            metrics,
        }
    }

    /// The node's peer id (its host identity).
    pub fn peer_id(&self) -> &PeerId {
        &self.peer_id
    }

    /// The host's private key (signs API tokens). Never leaves the crate.
    pub(crate) fn host_key(&self) -> &PrivateKey {
        &self.host_key
    }

    /// Snapshot reads of the document database.
    pub fn reader(&self) -> &Reader {
        &self.reader
    }

    /// The node's figures.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub(super) async fn ask<T>(
        &self,
        make: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<T, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(make(tx))
            .await
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)?
    }

    async fn net_ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> NetControl,
    ) -> Result<T, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.net
            .send(make(tx))
            .await
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)
    }

    /// Creates a database (a thread with a read key and this host's log).
    pub async fn new_db(&self, opts: NewThread) -> Result<ThreadInfo, NodeError> {
        self.new_named_db(opts, String::new()).await
    }

    /// Creates a database with a local name (kept in the repository, not replicated; empty
    /// for none).
    pub async fn new_named_db(
        &self,
        opts: NewThread,
        name: String,
    ) -> Result<ThreadInfo, NodeError> {
        self.ask(|reply| Command::NewDb {
            opts: Box::new(opts),
            name,
            reply,
        })
        .await
    }

    /// Deletes a database: its thread (keys, logs, records), its documents and its name.
    pub async fn delete_db(&self, id: ThreadId) -> Result<(), NodeError> {
        self.ask(|reply| Command::DeleteDb { id, reply }).await
    }

    /// Joins a thread from a peer's thread address (`.../p2p/<peer>/thread/<id>`) with its
    /// key. A service-only key makes this node a replicator. The peer's address goes into the
    /// address book first, so the node can dial it.
    pub async fn join(&self, addr: ThreadAddr, key: ThreadKey) -> Result<ThreadInfo, NodeError> {
        self.join_named(addr, key, String::new()).await
    }

    /// Like [`NodeHandle::join`], giving the database a local name (empty for none).
    pub async fn join_named(
        &self,
        addr: ThreadAddr,
        key: ThreadKey,
        name: String,
    ) -> Result<ThreadInfo, NodeError> {
        let peer = addr.peer().ok_or_else(|| {
            NodeError::Invalid(format!("thread address {} names no /p2p peer", addr.host))
        })?;
        self.learn(peer, addr.host.clone()).await?;
        self.ask(|reply| Command::Join {
            addr: Box::new(addr),
            key,
            name,
            reply,
        })
        .await
    }

    /// Everything the node knows about a thread.
    pub async fn thread_info(&self, id: ThreadId) -> Result<ThreadInfo, NodeError> {
        self.ask(|reply| Command::ThreadInfo { id, reply }).await
    }

    /// Ids of every thread held.
    pub async fn threads(&self) -> Result<Vec<ThreadId>, NodeError> {
        self.ask(|reply| Command::ListThreads { reply }).await
    }

    /// Makes the peer at `addr` (which must end in `/p2p/<peer>`) a replicator of the thread:
    /// it gets the service key only. Returns the peer id.
    pub async fn add_replicator(&self, id: ThreadId, addr: Multiaddr) -> Result<PeerId, NodeError> {
        let peer = addr
            .iter()
            .filter_map(|p| match p {
                Protocol::P2p(p) => crate::net::from_libp2p(&p),
                _ => None,
            })
            .last()
            .ok_or_else(|| {
                NodeError::Invalid(format!("replicator address {addr} names no /p2p peer"))
            })?;
        self.learn(peer, addr).await?;
        self.ask(|reply| Command::AddReplicator { id, peer, reply })
            .await?;
        Ok(peer)
    }

    /// Asks every known peer of the thread for what it has, now.
    pub async fn pull(&self, id: ThreadId) -> Result<(), NodeError> {
        self.ask(|reply| Command::Pull { id, reply }).await
    }

    /// Runs a write transaction on database `db`, written by `author` (the host identity when
    /// `None`). Each operation succeeds or fails on its own; the successful ones commit as one
    /// record, and the call returns once that record is durable on disk.
    pub async fn write(
        &self,
        db: ThreadId,
        author: Option<PublicKey>,
        ops: Vec<WriteOp>,
    ) -> Result<WriteOutcome, NodeError> {
        self.write_with(db, author, ops, WriteMode::Each).await
    }

    /// Runs a write transaction in the given [`WriteMode`]: each operation on its own (as
    /// [`NodeHandle::write`]), all or nothing, or only checked (`DryRun`: validators, schemas
    /// and unique indexes run, nothing is written).
    pub async fn write_with(
        &self,
        db: ThreadId,
        author: Option<PublicKey>,
        ops: Vec<WriteOp>,
        mode: WriteMode,
    ) -> Result<WriteOutcome, NodeError> {
        self.ask(|reply| Command::Write {
            db,
            author,
            ops,
            mode,
            reply,
        })
        .await
    }

    /// Checks operations as a write transaction would (each on its own) and writes nothing.
    pub async fn verify(
        &self,
        db: ThreadId,
        author: Option<PublicKey>,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<Result<OpOutput, NodeError>>, NodeError> {
        Ok(self
            .write_with(db, author, ops, WriteMode::DryRun)
            .await?
            .ops)
    }

    /// Listens to changes of database `db` that match any of `filters` (all changes when
    /// empty), as `reader` sees them, from feed position `from` (new changes when `None`). A
    /// listener that falls behind the feed's history receives one error saying from where it
    /// could resume, and then the stream ends.
    pub async fn listen(
        &self,
        db: ThreadId,
        filters: Vec<Filter>,
        from: Option<u64>,
        reader: Option<String>,
    ) -> Result<mpsc::Receiver<ChangeItem>, NodeError> {
        let (sink, stream) = mpsc::channel(LISTENER_CHANNEL);
        self.ask(|reply| Command::Listen {
            db,
            filters,
            from,
            reader,
            sink,
            reply,
        })
        .await?;
        Ok(stream)
    }

    /// Every record the node stores from now on (written here or received). A subscriber
    /// that falls more than [`crate::node::RECORD_FEED`] records behind gets
    /// `RecvError::Lagged`.
    pub fn subscribe(&self) -> broadcast::Receiver<NetRecord> {
        self.records.subscribe()
    }

    /// Remembers where a peer can be dialed (the part of `addr` before `/p2p`); returns once
    /// the address is committed to the repository, so a restarted node dials it too.
    pub async fn learn(&self, peer: PeerId, addr: Multiaddr) -> Result<(), NodeError> {
        self.net_ask(|done| NetControl::Learn {
            peer: Box::new(peer),
            addrs: vec![addr],
            done,
        })
        .await?
        .map_err(NodeError::Store)
    }

    /// The addresses this node can be reached at, each ending in `/p2p/<peer id>`.
    pub async fn addresses(&self) -> Result<Vec<Multiaddr>, NodeError> {
        let addrs = self.net_ask(NetControl::Addresses).await?;
        let me = crate::net::to_libp2p(&self.peer_id);
        Ok(addrs
            .into_iter()
            .map(|a| a.with(Protocol::P2p(me)))
            .collect())
    }

    /// Thread addresses of a thread held here: this node's addresses plus `/thread/<id>`.
    pub async fn thread_addrs(&self, id: ThreadId) -> Result<Vec<ThreadAddr>, NodeError> {
        Ok(self
            .addresses()
            .await?
            .into_iter()
            .map(|host| ThreadAddr::new(host, id))
            .collect())
    }

    /// Peers with an open connection.
    pub async fn connected_peers(&self) -> Result<Vec<PeerId>, NodeError> {
        self.net_ask(NetControl::ConnectedPeers).await
    }
}
