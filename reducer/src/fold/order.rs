//! The total order of a thread's records: (Lamport clock, log id, counter).

use threads_protocol::log_id::LogId;
use threads_protocol::record::{RecordView, VerifiedRecord};

/// Length of an encoded [`OrderKey`]: 8 + 38 + 8 bytes.
pub const ORDER_KEY_LEN: usize = 8 + LogId::LEN + 8;

/// A record's position in the thread's total order. Byte order of [`OrderKey::to_bytes`] is
/// the same as the order of the fields (big-endian numbers, fixed-length log id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrderKey {
    /// Lamport clock.
    pub clock: u64,
    /// Log id bytes.
    pub log: [u8; LogId::LEN],
    /// Position in the log.
    pub counter: u64,
}

impl OrderKey {
    /// The position of a record.
    pub fn of(record: &VerifiedRecord) -> Self {
        OrderKey {
            clock: record.clock().0,
            log: *record.log().as_bytes(),
            counter: record.counter().get(),
        }
    }

    /// The position of the record a view shows (a local record is folded from its view before
    /// it is signed).
    pub fn of_view(record: &RecordView<'_>) -> Self {
        OrderKey {
            clock: record.clock.0,
            log: *record.log.as_bytes(),
            counter: record.counter.get(),
        }
    }

    /// `u64be(clock) ‖ log ‖ u64be(counter)`.
    pub fn to_bytes(&self) -> [u8; ORDER_KEY_LEN] {
        let mut out = [0u8; ORDER_KEY_LEN];
        out[..8].copy_from_slice(&self.clock.to_be_bytes());
        out[8..8 + LogId::LEN].copy_from_slice(&self.log);
        out[8 + LogId::LEN..].copy_from_slice(&self.counter.to_be_bytes());
        out
    }

    /// Parses [`OrderKey::to_bytes`]; `None` unless exactly [`ORDER_KEY_LEN`] bytes.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != ORDER_KEY_LEN {
            return None;
        }
        Some(OrderKey {
            clock: u64::from_be_bytes(b[..8].try_into().ok()?),
            log: b[8..8 + LogId::LEN].try_into().ok()?,
            counter: u64::from_be_bytes(b[8 + LogId::LEN..].try_into().ok()?),
        })
    }
}
