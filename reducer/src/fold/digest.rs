//! Digests of what the fold keeps for a thread: replicas (and strategies) that hold the same
//! records must hold the same bytes, and comparing two digests checks that.

use super::{
    TAG_DEPENDENTS, TAG_FOOTPRINT, TAG_OPS, TAG_REJECTED, TAG_STATE, TAG_UNDO, prefix, state_prefix,
};
use sha2::{Digest, Sha256};
use std::ops::ControlFlow;
use threads_protocol::id::ThreadId;
use threads_protocol::store::{Direction, KeyRange, ReadTxn, StoreError};

/// sha2-256 over every key and value of a thread's folded state, in key order: replicas that
/// hold the same records have the same digest.
pub fn state_digest(txn: &dyn ReadTxn, thread: &ThreadId) -> Result<[u8; 32], StoreError> {
    let mut h = Sha256::new();
    hash_space(txn, &state_prefix(thread), &mut h)?;
    Ok(h.finalize().into())
}

/// sha2-256 over every key and value the fold layer keeps for a thread (operation log, undo
/// logs, rejections, footprints, dependency index and state), in key order: every strategy
/// leaves the same bytes.
pub fn fold_digest(txn: &dyn ReadTxn, thread: &ThreadId) -> Result<[u8; 32], StoreError> {
    let mut h = Sha256::new();
    for tag in [
        TAG_OPS,
        TAG_UNDO,
        TAG_REJECTED,
        TAG_FOOTPRINT,
        TAG_DEPENDENTS,
        TAG_STATE,
    ] {
        hash_space(txn, &prefix(tag, thread), &mut h)?;
    }
    Ok(h.finalize().into())
}

/// Feeds every pair under `prefix` to `h`, each length-prefixed so no two sequences of pairs
/// hash alike.
fn hash_space(txn: &dyn ReadTxn, prefix: &[u8], h: &mut Sha256) -> Result<(), StoreError> {
    txn.scan(KeyRange::prefix(prefix), Direction::Forward, &mut |k, v| {
        h.update((k.len() as u64).to_be_bytes());
        h.update(k);
        h.update((v.len() as u64).to_be_bytes());
        h.update(v);
        ControlFlow::Continue(())
    })
}
