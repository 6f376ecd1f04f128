//! Local names of databases (the `name` of `NewDB`), kept in the repository.
//!
//! Storage: key `0x11 ‖ thread id`, value the name as UTF-8. Tag `0x11` sits next to the
//! address book (`0x10`), between the engine's tags (`0x01..=0x0f`) and the application's
//! (`0x20..`). Names are this node's labels: they are not replicated (a peer that joins gives
//! its own). Rows are written by the engine thread only.

use threads_protocol::id::ThreadId;
use threads_protocol::store::{ReadTxn, StoreError, WriteTxn};

/// Key tag of database names.
pub const TAG_DB_NAME: u8 = 0x11;

fn key(id: &ThreadId) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + id.as_bytes().len());
    k.push(TAG_DB_NAME);
    k.extend_from_slice(id.as_bytes());
    k
}

/// Stores (or, when empty, removes) the name of a database.
pub fn save(txn: &mut dyn WriteTxn, id: &ThreadId, name: &str) -> Result<(), StoreError> {
    if name.is_empty() {
        txn.delete(&key(id))?;
    } else {
        txn.put(&key(id), name.as_bytes())?;
    }
    Ok(())
}

/// The name of a database ("" when it has none).
pub fn load(txn: &dyn ReadTxn, id: &ThreadId) -> Result<String, StoreError> {
    match txn.get(&key(id))? {
        None => Ok(String::new()),
        Some(bytes) => String::from_utf8(bytes)
            .map_err(|_| StoreError::Corrupt("database name is not UTF-8".into())),
    }
}
