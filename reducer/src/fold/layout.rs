//! The fold's layout version and thread tags (`spec/convergence.md` §3, §3.1).

use super::{ORDER_KEY_LEN, TAG_FOOTPRINT, TAG_OPS, TAG_STATE, TAG_UNDO, corrupt};
use sha2::{Digest, Sha256};
use std::ops::ControlFlow;
use threads_protocol::id::ThreadId;
use threads_protocol::store::key::KeyBuf;
use threads_protocol::store::{Direction, KeyRange, ReadTxn, StoreError, WriteTxn};

/// The fold's layout version: the single key `20` → `u32be(`[`LAYOUT_VERSION`]`)`.
pub const TAG_LAYOUT: u8 = 0x20;
/// Owners of thread tags: `26 ‖ thread tag` → thread id bytes, followed (threads first folded
/// with layout 3) by one byte: the thread's settle shift ([`super::SETTLE_SHIFT`]).
pub const TAG_THREAD_NAME: u8 = 0x26;
/// Length of a thread's short name in the fold's keys ([`thread_tag`]).
pub const THREAD_TAG_LEN: usize = 8;
/// Version of the fold's key layout. 1 (never written down): keys held `bytes(thread id)`;
/// 2: keys hold [`thread_tag`], undo logs are compact, bulk footprints are summarized, the
/// operation log keeps no copy of bodies the engine stores; 3: a record's undo log and
/// footprint lie beside its operation-log entry, and a thread's most recent records are left
/// out of the dependency index until they settle (`spec/convergence.md` §3, §3.2). A store of
/// version 2 is converted at open ([`check_layout`]).
pub const LAYOUT_VERSION: u32 = 3;

/// The layout version that [`check_layout`] converts in place ([`convert_from_2`]).
const CONVERTIBLE_VERSION: u32 = 2;

/// Why a store cannot be used by this version of the fold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the document state of this repository uses fold layout version {found}, this build reads \
     version {expected} (and converts version 2): open it with the release that wrote it and \
     export the data, or move it aside and let the databases sync again from peers into an \
     empty repository"
)]
pub struct LayoutError {
    /// The version found (1 for stores written before the version key existed).
    pub found: u32,
    /// The version this build reads and writes.
    pub expected: u32,
}

/// Checks (and on a store without fold state, writes) the fold's layout version. A store of
/// version 2 is converted in one transaction (its undo logs and footprints move; its threads'
/// values in [`TAG_THREAD_NAME`] carry no settle shift, which keeps every record of them in
/// the index). A store holding fold keys of another layout is refused with [`LayoutError`];
/// nothing is changed.
pub fn check_layout<S: threads_protocol::store::Store>(
    store: &S,
) -> Result<Result<(), LayoutError>, StoreError> {
    let key = [TAG_LAYOUT];
    let txn = store.read()?;
    match txn.get(&key)? {
        Some(v) => {
            let found = <[u8; 4]>::try_from(v.as_slice())
                .map(u32::from_be_bytes)
                .map_err(|_| corrupt("fold layout version", "not 4 bytes"))?;
            if found == LAYOUT_VERSION {
                return Ok(Ok(()));
            }
            if found != CONVERTIBLE_VERSION {
                return Ok(Err(LayoutError {
                    found,
                    expected: LAYOUT_VERSION,
                }));
            }
            drop(txn);
            convert_from_2(store)?;
            return Ok(Ok(()));
        }
        None => {
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
    }
    drop(txn);
    let mut txn = store.write()?;
    txn.put(&key, &LAYOUT_VERSION.to_be_bytes())?;
    txn.commit()?;
    Ok(Ok(()))
}

/// Converts a store of layout 2 to layout 3, in one transaction: undo logs and footprints
/// move beside their operation-log entries (`22 ‖ tag ‖ order key` → `21 ‖ tag ‖ order key ‖
/// 22`, footprints alike with `24`), and the version key is rewritten. The threads of the
/// store keep every record in the dependency index: their tag owners (`26`) hold no settle
/// shift. Logs its progress; nothing is changed if it fails.
fn convert_from_2<S: threads_protocol::store::Store>(store: &S) -> Result<(), StoreError> {
    /// Keys moved per scan of what is left.
    const CHUNK: usize = 4096;
    tracing::info!(from = 2, to = LAYOUT_VERSION, "converting the fold layout");
    let mut txn = store.write()?;
    let mut moved = 0u64;
    for kind in [TAG_UNDO, TAG_FOOTPRINT] {
        loop {
            let mut chunk = Vec::with_capacity(CHUNK);
            txn.scan(
                KeyRange::prefix(&[kind]),
                Direction::Forward,
                &mut |k, v| {
                    chunk.push((k.to_vec(), v.to_vec()));
                    if chunk.len() == CHUNK {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                },
            )?;
            if chunk.is_empty() {
                break;
            }
            for (key, value) in &chunk {
                if key.len() != 1 + THREAD_TAG_LEN + ORDER_KEY_LEN {
                    return Err(corrupt(
                        "fold key of layout 2",
                        format_args!("{} bytes under tag {kind:02x}", key.len()),
                    ));
                }
                let moved_key = [&[TAG_OPS][..], &key[1..], &[kind]].concat();
                txn.put(&moved_key, value)?;
                txn.delete(key)?;
            }
            moved += chunk.len() as u64;
            tracing::info!(
                moved,
                "converting the fold layout: undo logs and footprints moved"
            );
        }
    }
    txn.put(&[TAG_LAYOUT], &LAYOUT_VERSION.to_be_bytes())?;
    txn.commit()?;
    tracing::info!(moved, "fold layout converted");
    Ok(())
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

/// Checks that the short name of `thread` belongs to it, and records it the first time with
/// `shift`. Returns the thread's settle shift: `None` for a thread first folded by layout 2
/// (every record of it is indexed).
pub(crate) fn claim_thread_tag(
    txn: &mut dyn WriteTxn,
    thread: &ThreadId,
    shift: u8,
) -> Result<Option<u8>, StoreError> {
    let key = KeyBuf::new(TAG_THREAD_NAME)
        .fixed(&thread_tag(thread))
        .into_vec();
    let id = thread.as_bytes();
    match txn.get(&key)? {
        Some(owner) if owner == id => Ok(None),
        Some(owner) if owner.len() == id.len() + 1 && owner.starts_with(id) => {
            match owner[id.len()] {
                s @ 0..=MAX_SETTLE_SHIFT => Ok(Some(s)),
                s => Err(corrupt(
                    "settle shift of a thread",
                    format_args!("{s} is over {MAX_SETTLE_SHIFT}"),
                )),
            }
        }
        Some(_) => Err(StoreError::Corrupt(format!(
            "thread {thread} has the same short key prefix as another thread of this store \
             (a 64-bit hash collision); its records cannot be folded here: use another \
             repository for it"
        ))),
        None => {
            let shift = shift.min(MAX_SETTLE_SHIFT);
            txn.put(&key, &[id, &[shift]].concat())?;
            Ok(Some(shift))
        }
    }
}

/// Largest settle shift: records settle in blocks of up to 2^63 clocks.
pub const MAX_SETTLE_SHIFT: u8 = 63;
