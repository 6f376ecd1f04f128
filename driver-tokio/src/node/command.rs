//! What callers ask of the engine task, and what it answers.

use crate::node::NodeError;
use serde_json::Value;
use threads_protocol::Cid;
use threads_protocol::addr::ThreadAddr;
use threads_protocol::engine::{NewThread, PeerId, ThreadInfo};
use threads_protocol::id::ThreadId;
use threads_protocol::identity::PublicKey;
use threads_protocol::key::ThreadKey;
use threads_reducer::db::CollectionConfig;
use threads_reducer::listen::{Change, Filter, Lagged};
use tokio::sync::{mpsc, oneshot};

/// One operation of a write transaction.
#[derive(Clone, Debug, PartialEq)]
pub enum WriteOp {
    /// Define a collection.
    NewCollection(CollectionConfig),
    /// Replace a collection's definition.
    UpdateCollection(CollectionConfig),
    /// Delete a collection and its instances.
    DeleteCollection(String),
    /// Create an instance (a missing `_id` gets a new one).
    Create {
        /// Collection name.
        collection: String,
        /// The JSON object.
        instance: Value,
    },
    /// Replace an existing instance (matched by its `_id`).
    Save {
        /// Collection name.
        collection: String,
        /// The JSON object, with `_id`.
        instance: Value,
    },
    /// Delete instances by id.
    Delete {
        /// Collection name.
        collection: String,
        /// The ids.
        ids: Vec<String>,
    },
}

/// What one successful [`WriteOp`] produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpOutput {
    /// The id of a created instance.
    Created(String),
    /// The operation was added.
    Done,
}

/// The result of a write transaction: each operation's own outcome (a failed operation is left
/// out of the transaction and does not stop the others), and the record that committed the
/// rest (`None` when nothing was left to write).
#[derive(Debug)]
pub struct WriteOutcome {
    /// One entry per operation, in order.
    pub ops: Vec<Result<OpOutput, NodeError>>,
    /// CID of the committed record, once it is durable.
    pub record: Option<Cid>,
}

/// How a write transaction treats operations that fail.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WriteMode {
    /// Each operation stands on its own: the successful ones commit, failed ones are left out.
    #[default]
    Each,
    /// All or nothing: one failed operation and nothing commits.
    All,
    /// Check only (validators, schemas, unique indexes): nothing commits.
    DryRun,
}

/// A listener's stream items: changes in order, or one error saying the listener fell behind.
pub type ChangeItem = Result<Change, Lagged>;

pub(crate) type Reply<T> = oneshot::Sender<Result<T, NodeError>>;

/// Requests to the engine task.
pub(crate) enum Command {
    NewDb {
        opts: Box<NewThread>,
        name: String,
        reply: Reply<ThreadInfo>,
    },
    Join {
        addr: Box<ThreadAddr>,
        key: ThreadKey,
        name: String,
        reply: Reply<ThreadInfo>,
    },
    DeleteDb {
        id: ThreadId,
        reply: Reply<()>,
    },
    ThreadInfo {
        id: ThreadId,
        reply: Reply<ThreadInfo>,
    },
    ListThreads {
        reply: Reply<Vec<ThreadId>>,
    },
    AddReplicator {
        id: ThreadId,
        peer: PeerId,
        reply: Reply<()>,
    },
    Pull {
        id: ThreadId,
        reply: Reply<()>,
    },
    Write {
        db: ThreadId,
        author: Option<PublicKey>,
        ops: Vec<WriteOp>,
        mode: WriteMode,
        reply: Reply<WriteOutcome>,
    },
    Net(Box<crate::node::net_command::NetCommand>),
    Listen {
        db: ThreadId,
        filters: Vec<Filter>,
        from: Option<u64>,
        reader: Option<String>,
        sink: mpsc::Sender<ChangeItem>,
        reply: Reply<()>,
    },
}
