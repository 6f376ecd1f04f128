//! The operation log: what the fold keeps of every record to run it again after an undo, and
//! reading a record back from it.

use super::{Convergent, Fold, OrderKey, RecordInfo, TAG_OPS, corrupt, keyed};
use serde::{Deserialize, Serialize};
use threads_protocol::counter::LogCounter;
use threads_protocol::engine::ApplyError;
use threads_protocol::engine::layout as engine_layout;
use threads_protocol::id::ThreadId;
use threads_protocol::identity::PublicKey;
use threads_protocol::log_id::LogId;
use threads_protocol::store::{ReadTxn, StoreError};

/// What is kept of every record, to redo it: `{"a": author protobuf, "b": body, "t": time}`,
/// without `"b"` when the engine stores the record (folded through
/// [`Application::apply`](threads_protocol::engine::Application::apply)): the body is then
/// read back from the stored record ([`threads_protocol::engine::layout::stored_body`])
/// instead of being kept twice.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OpEntry {
    /// Author identity (libp2p protobuf, 36 bytes).
    #[serde(rename = "a", with = "serde_bytes")]
    pub author: Vec<u8>,
    /// The record's body.
    #[serde(
        rename = "b",
        with = "serde_bytes",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub body: Option<Vec<u8>>,
    /// The writer's time.
    #[serde(rename = "t")]
    pub time: u64,
}

impl<F: Fold> Convergent<F> {
    /// The operation-log entry of a record; without its body when the engine stores it.
    pub(super) fn entry(&self, info: &RecordInfo, body: &[u8], stored: bool) -> OpEntry {
        OpEntry {
            author: info.author.to_protobuf().to_vec(),
            body: (!stored).then(|| body.to_vec()),
            time: info.time,
        }
    }

    /// A stored record, to redo it.
    pub(super) fn load(
        &self,
        txn: &dyn ReadTxn,
        thread: &ThreadId,
        order: OrderKey,
    ) -> Result<(RecordInfo, Vec<u8>), ApplyError> {
        let bytes = txn
            .get(&keyed(TAG_OPS, thread, &order))?
            .ok_or_else(|| corrupt("operation log entry", "missing"))?;
        let entry: OpEntry =
            serde_ipld_dagcbor::from_slice(&bytes).map_err(|e| corrupt("operation log", e))?;
        let author = PublicKey::from_protobuf(&entry.author)
            .map_err(|e| corrupt("operation log author", e))?;
        let log = LogId::from_bytes(&order.log).map_err(|e| corrupt("operation log id", e))?;
        let body = entry_body(txn, thread, &order, entry.body)?;
        let info = RecordInfo {
            thread: *thread,
            order,
            log,
            author,
            time: entry.time,
        };
        Ok((info, body))
    }
}

/// The body of an operation-log entry: kept in the entry, or read from the engine's record.
fn entry_body(
    txn: &dyn ReadTxn,
    thread: &ThreadId,
    order: &OrderKey,
    kept: Option<Vec<u8>>,
) -> Result<Vec<u8>, StoreError> {
    if let Some(body) = kept {
        return Ok(body);
    }
    let log = LogId::from_bytes(&order.log).map_err(|e| corrupt("operation log id", e))?;
    let counter = LogCounter::new(order.counter)
        .ok_or_else(|| corrupt("operation log entry", "counter 0"))?;
    engine_layout::stored_body(txn, thread, &log, counter)?.ok_or_else(|| {
        corrupt(
            "operation log entry",
            "no body and no readable stored record",
        )
    })
}

/// The body of a record the fold has folded (`None` if it has not).
pub fn record_body(
    txn: &dyn ReadTxn,
    thread: &ThreadId,
    order: &OrderKey,
) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(bytes) = txn.get(&keyed(TAG_OPS, thread, order))? else {
        return Ok(None);
    };
    let entry: OpEntry =
        serde_ipld_dagcbor::from_slice(&bytes).map_err(|e| corrupt("operation log", e))?;
    entry_body(txn, thread, order, entry.body).map(Some)
}
