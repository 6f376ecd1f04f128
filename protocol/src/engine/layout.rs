//! Where the engine keeps its state in the store. Every key starts with a one-byte tag; the
//! engine owns tags `0x01..=0x0f`, applications (the reducer) use tags from `0x20` on.
//! `spec/engine.md` lists the same layout for other implementations and tools.

use super::state::ThreadRow;
use crate::counter::LogCounter;
use crate::id::ThreadId;
use crate::key::ThreadKey;
use crate::log_id::LogId;
use crate::record::RecordBundle;
use crate::record::wire;
use crate::store::key::KeyBuf;
use crate::store::{ReadTxn, StoreError};
use cid::Cid;

/// Host metadata: `01 ‖ str(name)`.
pub const TAG_HOST: u8 = 0x01;
/// Thread row: `02 ‖ bytes(thread)` → [`super::state::ThreadRow`].
pub const TAG_THREAD: u8 = 0x02;
/// Log row: `03 ‖ bytes(thread) ‖ log(38)` → [`super::state::LogRow`].
pub const TAG_LOG: u8 = 0x03;
/// Record: `04 ‖ bytes(thread) ‖ log(38) ‖ u64(counter)` → encoded record bundle.
pub const TAG_RECORD: u8 = 0x04;
/// Record by CID: `05 ‖ cid bytes` → `bytes(thread) ‖ log(38) ‖ u64(counter)`.
pub const TAG_CID: u8 = 0x05;
/// Application verdicts: `06 ‖ bytes(thread) ‖ log(38) ‖ u64(counter)` → rejection reason.
pub const TAG_REJECTED: u8 = 0x06;
/// Identity to log: `07 ‖ bytes(thread) ‖ identity(36)` → log id bytes.
pub const TAG_IDENTITY_LOG: u8 = 0x07;
/// Recent CID index entries, before they move to `05` (see `engine::cid_index`):
/// `08 ‖ u64(seq)` → `bytes(cid bytes) ‖ bytes(thread) ‖ log(38) ‖ u64(counter)`.
pub const TAG_CID_JOURNAL: u8 = 0x08;
/// First tag applications may use.
pub const FIRST_APP_TAG: u8 = 0x20;

/// Key of the host's identity key.
pub fn host_identity() -> Vec<u8> {
    KeyBuf::new(TAG_HOST).str("identity").into_vec()
}

/// Key of a thread row.
pub fn thread(id: &ThreadId) -> Vec<u8> {
    KeyBuf::new(TAG_THREAD).bytes(id.as_bytes()).into_vec()
}

/// Prefix of every key of `tag` that belongs to one thread.
pub fn thread_prefix(tag: u8, id: &ThreadId) -> Vec<u8> {
    KeyBuf::new(tag).bytes(id.as_bytes()).into_vec()
}

/// Key of a log row.
pub fn log(thread: &ThreadId, log: &LogId) -> Vec<u8> {
    KeyBuf::new(TAG_LOG)
        .bytes(thread.as_bytes())
        .fixed(log.as_bytes())
        .into_vec()
}

/// Key of a stored record.
pub fn record(thread: &ThreadId, log: &LogId, counter: LogCounter) -> Vec<u8> {
    KeyBuf::new(TAG_RECORD)
        .bytes(thread.as_bytes())
        .fixed(log.as_bytes())
        .u64(counter.get())
        .into_vec()
}

/// Key of a rejection verdict.
pub fn rejected(thread: &ThreadId, log: &LogId, counter: LogCounter) -> Vec<u8> {
    KeyBuf::new(TAG_REJECTED)
        .bytes(thread.as_bytes())
        .fixed(log.as_bytes())
        .u64(counter.get())
        .into_vec()
}

/// Key of the CID index entry of a record.
pub fn cid(cid: &Cid) -> Vec<u8> {
    cid_bytes(&cid.to_bytes())
}

/// Key of the CID index entry of the record whose binary CID is `cid`.
pub fn cid_bytes(cid: &[u8]) -> Vec<u8> {
    KeyBuf::new(TAG_CID).fixed(cid).into_vec()
}

/// Key of a CID journal entry.
pub fn cid_journal(seq: u64) -> Vec<u8> {
    KeyBuf::new(TAG_CID_JOURNAL).u64(seq).into_vec()
}

/// Value of a CID index entry: where the record lives.
pub fn cid_target(thread: &ThreadId, log: &LogId, counter: LogCounter) -> Vec<u8> {
    KeyBuf::with_prefix(&[])
        .bytes(thread.as_bytes())
        .fixed(log.as_bytes())
        .u64(counter.get())
        .into_vec()
}

/// Key of the identity → log mapping.
pub fn identity_log(thread: &ThreadId, identity: &[u8; 36]) -> Vec<u8> {
    KeyBuf::new(TAG_IDENTITY_LOG)
        .bytes(thread.as_bytes())
        .fixed(identity)
        .into_vec()
}

/// The body of a stored record, decrypted with the thread's read key (`None` when the record
/// is not stored or this host cannot read the thread). Stored records were verified before
/// they were stored, so only the header and the body are opened. The document fold uses it to
/// redo records without keeping a second copy of every body.
pub fn stored_body(
    txn: &dyn ReadTxn,
    thread: &ThreadId,
    log: &LogId,
    counter: LogCounter,
) -> Result<Option<Vec<u8>>, StoreError> {
    let corrupt =
        |what: &str, e: &dyn std::fmt::Display| StoreError::Corrupt(format!("{what}: {e}"));
    let Some(row) = txn.get(&self::thread(thread))? else {
        return Ok(None);
    };
    let row: ThreadRow = wire::decode_plain(&row).map_err(|e| corrupt("thread row", &e))?;
    let key = ThreadKey::from_bytes(&row.key).map_err(|e| corrupt("thread key bytes", &e))?;
    let Some(read) = key.read() else {
        return Ok(None);
    };
    let Some(bytes) = txn.get(&record(thread, log, counter))? else {
        return Ok(None);
    };
    let bundle = RecordBundle::decode(&bytes).map_err(|e| corrupt("stored record", &e))?;
    let (_, body) =
        crate::record::open_body(&bundle, read).map_err(|e| corrupt("stored record", &e))?;
    Ok(Some(body))
}
