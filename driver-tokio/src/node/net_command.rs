//! Commands of the Net API (`threads.net.pb.API`) to the engine task: plain threads with
//! caller-chosen keys, raw records, and records looked up by CID.

use crate::node::command::Reply;
use threads_protocol::Cid;
use threads_protocol::addr::ThreadAddr;
use threads_protocol::engine::ThreadInfo;
use threads_protocol::id::ThreadId;
use threads_protocol::identity::{PrivateKey, PublicKey};
use threads_protocol::key::ThreadKey;
use threads_protocol::log_id::LogId;
use threads_protocol::record::{RecordBundle, VerifiedRecord};

/// The key of the caller's own log, as a Net API request gives it.
#[derive(Clone, Debug)]
pub enum LogKey {
    /// The private key: this host writes the log.
    Private(PrivateKey),
    /// Only the public key: the log's records come through `AddRecord` or sync.
    Public(PublicKey),
}

/// Net API requests to the engine task.
pub(crate) enum NetCommand {
    CreateThread {
        id: ThreadId,
        key: Option<ThreadKey>,
        identity: Option<PublicKey>,
        log_key: Option<LogKey>,
        reply: Reply<ThreadInfo>,
    },
    AddThread {
        addr: Box<ThreadAddr>,
        key: ThreadKey,
        identity: Option<PublicKey>,
        log_key: Option<LogKey>,
        reply: Reply<ThreadInfo>,
    },
    DeleteThread {
        id: ThreadId,
        reply: Reply<()>,
    },
    CreateRecord {
        id: ThreadId,
        author: Option<PublicKey>,
        body: Vec<u8>,
        reply: Reply<VerifiedRecord>,
    },
    AddRecord {
        id: ThreadId,
        log: LogId,
        bundle: Box<RecordBundle>,
        reply: Reply<bool>,
    },
    GetRecord {
        id: ThreadId,
        cid: Cid,
        reply: Reply<RecordBundle>,
    },
}
