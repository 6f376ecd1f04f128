//! The application the simulated readers run until the document reducer exists: it records, in
//! the engine's transaction, one entry per applied record, so the checkers can see that every
//! record was applied exactly once, atomically with its head.

use sha2::{Digest, Sha256};
use threads_protocol::engine::{Application, Verdict};
use threads_protocol::record::OpenedRecord;
use threads_protocol::store::WriteTxn;
use threads_protocol::store::key::KeyBuf;

/// Key space of ledger entries (an application tag).
pub const TAG_LEDGER: u8 = 0x20;

/// Records `sha2-256(body)` under `20 ‖ bytes(thread) ‖ log ‖ u64(counter)` for every record.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ledger;

/// The ledger key of a record.
pub fn key(thread: &[u8], log: &[u8], counter: u64) -> Vec<u8> {
    KeyBuf::new(TAG_LEDGER)
        .bytes(thread)
        .fixed(log)
        .u64(counter)
        .into_vec()
}

impl Application for Ledger {
    fn apply(&mut self, txn: &mut dyn WriteTxn, record: &OpenedRecord) -> Result<Verdict, String> {
        let r = record.record();
        let k = key(r.thread().as_bytes(), r.log().as_bytes(), r.counter().get());
        txn.put(&k, &Sha256::digest(record.body()))
            .map_err(|e| e.to_string())?;
        Ok(Verdict::Accept)
    }
}
