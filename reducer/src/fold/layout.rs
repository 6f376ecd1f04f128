//! The fold's layout version and thread tags (`spec/convergence.md` §3, §3.1).

use super::{TAG_STATE, corrupt};
use sha2::{Digest, Sha256};
use std::ops::ControlFlow;
use threads_protocol::id::ThreadId;
use threads_protocol::store::key::KeyBuf;
use threads_protocol::store::{Direction, KeyRange, ReadTxn, StoreError, WriteTxn};

/// The fold's layout version: the single key `20` → `u32be(`[`LAYOUT_VERSION`]`)`.
pub const TAG_LAYOUT: u8 = 0x20;
/// Owners of thread tags: `26 ‖ thread tag` → thread id bytes.
pub const TAG_THREAD_NAME: u8 = 0x26;
/// Length of a thread's short name in the fold's keys ([`thread_tag`]).
pub const THREAD_TAG_LEN: usize = 8;
/// Version of the fold's key layout. 1 (never written down): keys held `bytes(thread id)`;
/// 2: keys hold [`thread_tag`], undo logs are compact, bulk footprints are summarized, the
/// operation log keeps no copy of bodies the engine stores.
pub const LAYOUT_VERSION: u32 = 2;

/// Why a store cannot be used by this version of the fold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the document state of this repository uses fold layout version {found}, this build reads \
     only version {expected}: open it with the release that wrote it and export the data, or \
     move it aside and let the databases sync again from peers into an empty repository"
)]
pub struct LayoutError {
    /// The version found (1 for stores written before the version key existed).
    pub found: u32,
    /// The version this build reads and writes.
    pub expected: u32,
}

/// Checks (and on a store without fold state, writes) the fold's layout version. A store
/// holding fold keys of another layout is refused with [`LayoutError`]; nothing is changed.
pub fn check_layout<S: threads_protocol::store::Store>(
    store: &S,
) -> Result<Result<(), LayoutError>, StoreError> {
    let key = [TAG_LAYOUT];
    {
        let txn = store.read()?;
        if let Some(v) = txn.get(&key)? {
            let found = <[u8; 4]>::try_from(v.as_slice())
                .map(u32::from_be_bytes)
                .map_err(|_| corrupt("fold layout version", "not 4 bytes"))?;
            return Ok(if found == LAYOUT_VERSION {
                Ok(())
            } else {
                Err(LayoutError {
                    found,
                    expected: LAYOUT_VERSION,
                })
            });
        }
        let mut any = false;
        let start = [TAG_LAYOUT + 1];
        let end = [TAG_STATE + 1];
        txn.scan(
            KeyRange::between(&start, &end),
            Direction::Forward,
            &mut |_, _| {
                any = true;
                ControlFlow::Break(())
            },
        )?;
        if any {
            return Ok(Err(LayoutError {
                found: 1,
                expected: LAYOUT_VERSION,
            }));
        }
    }
    let mut txn = store.write()?;
    txn.put(&key, &LAYOUT_VERSION.to_be_bytes())?;
    txn.commit()?;
    Ok(Ok(()))
}

/// The short name of a thread in the fold's keys: the first [`THREAD_TAG_LEN`] bytes of the
/// sha2-256 of its id. Two threads of one store never share one: the fold records which thread
/// owns each short name ([`TAG_THREAD_NAME`]) and refuses a record of a second one.
pub fn thread_tag(thread: &ThreadId) -> [u8; THREAD_TAG_LEN] {
    if let Some((id, tag)) = LAST_TAG.get()
        && id == *thread
    {
        return tag;
    }
    let d = Sha256::digest(thread.as_bytes());
    let mut t = [0u8; THREAD_TAG_LEN];
    t.copy_from_slice(&d[..THREAD_TAG_LEN]);
    LAST_TAG.set(Some((*thread, t)));
    t
}

std::thread_local! {
    /// The last thread [`thread_tag`] named on this thread, and its tag: every key the fold
    /// makes starts with one, and a batch names one thread again and again.
    static LAST_TAG: std::cell::Cell<Option<(ThreadId, [u8; THREAD_TAG_LEN])>> =
        const { std::cell::Cell::new(None) };
}

/// Checks that the short name of `thread` belongs to it, and records it the first time.
pub(crate) fn claim_thread_tag(
    txn: &mut dyn WriteTxn,
    thread: &ThreadId,
) -> Result<(), StoreError> {
    let key = KeyBuf::new(TAG_THREAD_NAME)
        .fixed(&thread_tag(thread))
        .into_vec();
    match txn.get(&key)? {
        Some(owner) if owner == thread.as_bytes() => Ok(()),
        Some(_) => Err(StoreError::Corrupt(format!(
            "thread {thread} has the same short key prefix as another thread of this store \
             (a 64-bit hash collision); its records cannot be folded here: use another \
             repository for it"
        ))),
        None => txn.put(&key, thread.as_bytes()),
    }
}
