//! An opt-in memo of record checks that passed, for a process that checks the very same bytes
//! many times on one thread (the simulator: every host of a simulated world verifies each
//! record it receives, and they all receive the same bytes).
//!
//! [`verify`](super::verify) is a pure function of its inputs: the four blocks of the bundle,
//! the thread, the log, the service key (and whether the signature is checked). While a
//! [`MemoScope`] is alive on a thread, a check on that thread that passed is remembered with
//! **all** of those inputs, byte for byte, and a later check whose inputs are all equal returns
//! the same record without doing the work again: the outcome is the one checking again would
//! give. Opening a bundle with the read key ([`open_body`](super::open_body)) is a pure
//! function of its sealed header, its sealed body and the read key, and is remembered the same
//! way. A check or an opening that fails is never remembered, so refused (hostile, tampered, misdirected)
//! input is checked in full every time. Without a scope (every real host) nothing is kept and
//! the cost is one thread-local read per check.

use super::{RecordBundle, VerifiedRecord};
use crate::id::ThreadId;
use crate::key::{ReadKey, ServiceKey};
use crate::log_id::LogId;
use cid::Cid;
use std::cell::RefCell;
use std::collections::HashMap;
use std::marker::PhantomData;

/// A record that passed its check, with every input of the check.
struct Passed {
    service: [u8; 32],
    record: VerifiedRecord,
}

/// A bundle that opened, with every input of the opening but the header (the map's key).
struct Opened {
    read: [u8; 32],
    body_block: Vec<u8>,
    time: u64,
    body: Vec<u8>,
}

/// What a scope remembers.
#[derive(Default)]
struct Memo {
    /// Checks that passed, by envelope CID.
    passed: HashMap<Cid, Passed>,
    /// Bundles that opened, by sealed header.
    opened: HashMap<Vec<u8>, Opened>,
}

std::thread_local! {
    /// The memo of the scope open on this thread.
    static MEMO: RefCell<Option<Memo>> = const { RefCell::new(None) };
}

/// While alive, checks that pass on this thread are remembered (see the module). Dropping it
/// forgets them all. Not `Send`: the memo belongs to the thread that opened it.
#[must_use = "the memo is on only while the scope is alive"]
pub struct MemoScope {
    _thread: PhantomData<*const ()>,
}

impl MemoScope {
    /// Opens an empty memo on this thread (replacing one already open).
    pub fn open() -> MemoScope {
        MEMO.with(|m| *m.borrow_mut() = Some(Memo::default()));
        MemoScope {
            _thread: PhantomData,
        }
    }
}

impl Drop for MemoScope {
    fn drop(&mut self) {
        MEMO.with(|m| *m.borrow_mut() = None);
    }
}

/// The record a passed check of exactly these inputs gave, built on `bundle`; or the bundle
/// back when there is no scope or no such check.
pub(super) fn recall(
    bundle: RecordBundle,
    cid: &Cid,
    thread: &ThreadId,
    log: &LogId,
    service: &ServiceKey,
) -> Result<VerifiedRecord, RecordBundle> {
    MEMO.with(|m| {
        let memo = m.borrow();
        let Some(p) = memo.as_ref().and_then(|memo| memo.passed.get(cid)) else {
            return Err(bundle);
        };
        let r = &p.record;
        if r.cid != *cid
            || r.thread != *thread
            || r.log != *log
            || p.service != *service.as_bytes()
            || r.bundle != bundle
        {
            return Err(bundle);
        }
        Ok(VerifiedRecord {
            cid: r.cid,
            thread: r.thread,
            log: r.log,
            author: r.author,
            counter: r.counter,
            clock: r.clock,
            prev: r.prev,
            signature: r.signature,
            bundle,
        })
    })
}

/// Whether a scope is open on this thread.
pub(super) fn active() -> bool {
    MEMO.with(|m| m.borrow().is_some())
}

/// Remembers a check that passed (with its signature checked) for `service`.
pub(super) fn remember(record: &VerifiedRecord, service: &ServiceKey) {
    MEMO.with(|m| {
        if let Some(memo) = m.borrow_mut().as_mut() {
            memo.passed.insert(
                record.cid,
                Passed {
                    service: *service.as_bytes(),
                    record: record.clone(),
                },
            );
        }
    });
}

/// The time and body an earlier opening of exactly these blocks with `read` gave, if any.
pub(super) fn recall_opened(bundle: &RecordBundle, read: &ReadKey) -> Option<(u64, Vec<u8>)> {
    MEMO.with(|m| {
        let memo = m.borrow();
        let o = memo.as_ref()?.opened.get(&bundle.header)?;
        (o.read == *read.as_bytes() && o.body_block == bundle.body)
            .then(|| (o.time, o.body.clone()))
    })
}

/// Remembers what opening `bundle` with `read` gave (only openings that succeeded).
pub(super) fn remember_opened(bundle: &RecordBundle, read: &ReadKey, time: u64, body: &[u8]) {
    MEMO.with(|m| {
        if let Some(memo) = m.borrow_mut().as_mut() {
            memo.opened.insert(
                bundle.header.clone(),
                Opened {
                    read: *read.as_bytes(),
                    body_block: bundle.body.clone(),
                    time,
                    body: body.to_vec(),
                },
            );
        }
    });
}
