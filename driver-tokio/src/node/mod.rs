//! A running ThreadDB node: the engine task (which owns the repository's writes), the swarm
//! task and the async [`NodeHandle`] that everything else uses (the daemon's API, tests,
//! benchmarks, embedding applications).
//!
//! ```text
//!  callers ──NodeHandle──▶ engine thread (Documents<LmdbStore>) ──▶ swarm task ──▶ peers
//!     │                          ▲                                      │
//!     │                          └── verification stage ◀── inbound ◀───┘
//!     └──Reader (LMDB snapshots)     (blocking pool, in order)
//! ```
//!
//! Inbound sync messages pass a verification stage first: proofs and record signatures are
//! checked on tokio's blocking pool, several messages at once, and the engine thread gets them
//! in arrival order, already verified, so that it only stores records (`verify_stage`).
//! The records of local writes are signed on a `threads-signer` thread while the engine
//! thread folds the same writes (`signer`), when the machine has a second core.
//!
//! Every queue between them is bounded. Reads run on LMDB read snapshots in blocking threads,
//! never on the engine thread, so long writes do not stall queries and queries do not stall
//! sync.

mod command;
mod engine;
mod handle;
pub mod names;
mod net_command;
mod net_engine;
mod net_handle;
pub mod net_threads;
mod reader;
mod signer;
mod verify_stage;

pub use command::{ChangeItem, OpOutput, WriteMode, WriteOp, WriteOutcome};
pub use handle::NodeHandle;
pub use net_command::LogKey;
pub use net_engine::{CREATE_IN_USE, DELETE_IN_USE};
pub use reader::{ReadSnapshot, Reader};
pub use verify_stage::AcrossCores;

use crate::addr_book::AddressBook;
use crate::lmdb::{LmdbOptions, LmdbStore};
use crate::metrics::Metrics;
use crate::net::{self, NetConfig, NetTask};
use crate::repo::RepoLock;
use engine::EngineTask;
use libp2p::Multiaddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use threads_protocol::engine::{Config, EngineError, PeerId};
use threads_protocol::id::ThreadId;
use threads_protocol::record::VerifiedRecord;
use threads_protocol::rng::{ProtocolRng, SeedableRng};
use threads_protocol::store::{Store, StoreError};
use threads_reducer::docs::{DocsError, Documents};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

/// Capacity of the command queue from handles to the engine task.
pub const COMMAND_QUEUE: usize = 1024;
/// Capacity of the queue of inbound peer messages to the engine task.
pub const INBOUND_QUEUE: usize = 256;
/// Capacity of the queue of outbound messages from the engine task to the swarm.
pub const OUTBOUND_QUEUE: usize = 4096;
/// How many new-record notifications a slow subscriber may fall behind before it is told.
pub const RECORD_FEED: usize = 4096;

/// Why a node operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The document database refused (rules, unknown collection, not found...).
    #[error(transparent)]
    Docs(#[from] DocsError),
    /// The replication engine refused (unknown thread, bad address...).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The repository failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another process holds the repository.
    #[error(
        "repository {repo} is in use by another threadsd (lock file {lock}); stop that daemon or choose another --repo"
    )]
    RepoLocked {
        /// The repository folder.
        repo: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
    /// The repository folder cannot be used.
    #[error("repository {repo}: {error}")]
    Repo {
        /// The repository folder.
        repo: PathBuf,
        /// What went wrong.
        error: String,
    },
    /// The network could not start (listen address in use, bad address...).
    #[error("network: {0}")]
    Network(String),
    /// The request is malformed.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// What the request names does not exist (a record, a thread on this host...).
    #[error("{0}")]
    NotFound(String),
    /// The thread belongs to a database, which the request may not change this way.
    #[error("{0}")]
    InUse(String),
    /// The node is stopping or stopped.
    #[error("the node is shutting down")]
    Stopped,
}

/// Everything a node needs to start.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The repository folder (created if missing).
    pub repo: PathBuf,
    /// LMDB settings.
    pub lmdb: LmdbOptions,
    /// Engine timers and limits.
    pub engine: Config,
    /// Network settings.
    pub net: NetConfig,
}

impl NodeConfig {
    /// Defaults for a repository folder, listening on the given addresses.
    pub fn new(repo: impl Into<PathBuf>, listen: Vec<Multiaddr>) -> Self {
        NodeConfig {
            repo: repo.into(),
            lmdb: LmdbOptions::default(),
            // Several pages in flight while catching up, so the verification stage checks the
            // next pages while the engine stores one.
            engine: Config {
                pull_window: 4,
                ..Config::default()
            },
            net: NetConfig {
                listen,
                ..NetConfig::default()
            },
        }
    }
}

/// A record stored by the node (written here or received), for subscribers.
#[derive(Clone, Debug)]
pub struct NetRecord {
    /// Its thread.
    pub thread: ThreadId,
    /// The record.
    pub record: Arc<VerifiedRecord>,
}

/// A running node. Dropping it without [`Node::shutdown`] stops the tasks abruptly (as a crash
/// would; nothing acknowledged is lost).
pub struct Node {
    handle: NodeHandle,
    stop: watch::Sender<bool>,
    engine: Option<std::thread::JoinHandle<LmdbStore>>,
    net: Option<tokio::task::JoinHandle<()>>,
    listen: Vec<Multiaddr>,
    _lock: RepoLock,
}

impl Node {
    /// Opens the repository (taking its lock), starts the engine thread and the swarm, and
    /// returns once the node listens.
    pub async fn start(config: NodeConfig) -> Result<Node, NodeError> {
        let lock = RepoLock::acquire(&config.repo)?;
        let store =
            LmdbStore::open(config.repo.join("db"), &config.lmdb).map_err(|e| NodeError::Repo {
                repo: config.repo.clone(),
                error: e.to_string(),
            })?;
        let replayed = store.counters().frames_replayed;
        if replayed > 0 {
            tracing::info!(
                commits = replayed,
                "read back commits from the write-ahead log (the last stop was not clean)"
            );
        }
        let book = AddressBook::load(&store.read()?)?;
        let metrics = Arc::new(Metrics::default());
        let (stop_tx, stop_rx) = watch::channel(false);
        let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
        let (in_tx, stage_rx) = mpsc::channel(INBOUND_QUEUE);
        let (stage_tx, in_rx) = mpsc::channel(INBOUND_QUEUE);
        let verifiers = verify_stage::Verifiers::default();
        let (out_tx, out_rx) = mpsc::channel(OUTBOUND_QUEUE);
        let (ctl_tx, ctl_rx) = mpsc::channel(64);
        let (records_tx, _) = broadcast::channel(RECORD_FEED);

        // The engine thread opens the database (the host identity is created on first start
        // and kept in the repository) and reports the identity back.
        let (ready_tx, ready_rx) = oneshot::channel();
        let engine_store = store.clone();
        let engine_config = config.engine.clone();
        let engine_metrics = metrics.clone();
        let engine_records = records_tx.clone();
        let engine_verifiers = verifiers.clone();
        let max_message_len = config.engine.max_message_len;
        let epoch = Instant::now();
        let engine = std::thread::Builder::new()
            .name("threads-engine".into())
            .spawn(move || {
                let mut seed = [0u8; 32];
                if let Err(e) = getrandom::fill(&mut seed) {
                    let _ = ready_tx.send(Err(NodeError::Repo {
                        repo: PathBuf::new(),
                        error: format!("no OS randomness: {e}"),
                    }));
                    return engine_store;
                }
                let rng = ProtocolRng::from_seed(seed);
                let docs = match Documents::open(
                    engine_config,
                    engine_store.clone(),
                    rng,
                    None,
                    threads_protocol::engine::Time(0),
                ) {
                    Ok(d) => d,
                    Err(e) => {
                        let _ = ready_tx.send(Err(NodeError::from(e)));
                        return engine_store;
                    }
                };
                let mut docs = docs;
                if let Some(signer) = signer::ThreadSigner::start() {
                    docs.host_mut().set_signer(Box::new(signer));
                }
                let identity = docs.host().identity().clone();
                let _ = ready_tx.send(Ok(identity));
                EngineTask::new(
                    docs,
                    epoch,
                    cmd_rx,
                    in_rx,
                    out_tx,
                    engine_records,
                    engine_metrics,
                    stop_rx,
                    engine_verifiers,
                )
                .run()
            })
            .map_err(|e| NodeError::Network(format!("starting the engine thread: {e}")))?;
        let identity = match ready_rx.await {
            Ok(Ok(identity)) => identity,
            Ok(Err(e)) => {
                let _ = engine.join();
                return Err(e);
            }
            Err(_) => return Err(NodeError::Stopped),
        };
        let stop_rx = stop_tx.subscribe();
        let fail = |e: String, stop: &watch::Sender<bool>| {
            let _ = stop.send(true);
            NodeError::Network(e)
        };
        let keypair = libp2p::identity::Keypair::ed25519_from_bytes(identity.seed())
            .map_err(|e| fail(format!("host key: {e}"), &stop_tx))?;
        let swarm = match net::build_swarm(keypair, &config.net) {
            Ok(s) => s,
            Err(e) => {
                let err = fail(e, &stop_tx);
                let _ = engine.join();
                return Err(err);
            }
        };
        let mut task = NetTask::new(
            swarm,
            config.net.clone(),
            book,
            in_tx,
            out_rx,
            ctl_rx,
            metrics.clone(),
        );
        let listen = match task.wait_listening().await {
            Ok(l) => l,
            Err(e) => {
                let err = fail(e, &stop_tx);
                drop(task);
                let _ = engine.join();
                return Err(err);
            }
        };
        let net = tokio::spawn(task.run(stop_rx));
        // Between the swarm and the engine: sync messages are checked on the blocking pool.
        tokio::spawn(verify_stage::run(
            stage_rx,
            stage_tx,
            verifiers,
            max_message_len,
            verify_stage::depth(),
        ));
        let peer_id: PeerId = identity.public().peer_id();
        let handle = NodeHandle::new(
            peer_id,
            identity.clone(),
            cmd_tx,
            ctl_tx,
            records_tx,
            Reader::new(store),
            metrics,
        );
        Ok(Node {
            handle,
            stop: stop_tx,
            engine: Some(engine),
            net: Some(net),
            listen,
            _lock: lock,
        })
    }

    /// A handle to talk to the node (cheap to clone).
    pub fn handle(&self) -> NodeHandle {
        self.handle.clone()
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        *self.handle.peer_id()
    }

    /// The addresses the node listens on (with the ports actually bound).
    pub fn listen_addrs(&self) -> &[Multiaddr] {
        &self.listen
    }

    /// Stops the node: no new work is accepted, commands already queued finish (their writes
    /// commit), the network stops, and the repository is closed and unlocked.
    pub async fn shutdown(mut self) -> Result<(), NodeError> {
        let _ = self.stop.send(true);
        if let Some(net) = self.net.take() {
            let _ = net.await;
        }
        if let Some(engine) = self.engine.take() {
            let reader = self.handle.reader().clone();
            // Joining the engine thread and closing LMDB block: do it off the runtime.
            tokio::task::spawn_blocking(move || {
                let engine_store = engine.join().map_err(|_| NodeError::Stopped)?;
                drop(engine_store);
                // Closing waits for reads still in flight (they hold clones of the store).
                if let Some(store) = reader.take() {
                    store.close();
                }
                Ok::<(), NodeError>(())
            })
            .await
            .map_err(|_| NodeError::Stopped)??;
        }
        Ok(())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
