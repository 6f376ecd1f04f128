//! Threads created or added through the Net API (`threads.net.pb.API`), kept in the
//! repository.
//!
//! Storage: key `0x12 ‖ thread id`, empty value. Tag `0x12` sits next to the database names
//! (`0x11`). A thread with a read key and no such row is owned by a database (the DB API made
//! or joined it): the Net API refuses to delete it or to write raw records to it, and the DB
//! API does not list marked threads as databases. The mark is this node's: it is not
//! replicated. Rows are written by the engine thread only.

use threads_protocol::id::ThreadId;
use threads_protocol::store::{ReadTxn, StoreError, WriteTxn};

/// Key tag of Net API thread marks.
pub const TAG_NET_THREAD: u8 = 0x12;

fn key(id: &ThreadId) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + id.as_bytes().len());
    k.push(TAG_NET_THREAD);
    k.extend_from_slice(id.as_bytes());
    k
}

/// Marks (or, with `net == false`, unmarks) a thread as one of the Net API.
pub fn save(txn: &mut dyn WriteTxn, id: &ThreadId, net: bool) -> Result<(), StoreError> {
    if net {
        txn.put(&key(id), &[])
    } else {
        txn.delete(&key(id)).map(|_| ())
    }
}

/// Whether a thread was created or added through the Net API.
pub fn load(txn: &dyn ReadTxn, id: &ThreadId) -> Result<bool, StoreError> {
    Ok(txn.get(&key(id))?.is_some())
}
