//! Newtypes for the two numbers every record carries: its position in its log and its Lamport
//! clock. Keeping them apart in the type system stops one being passed where the other belongs.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Position of a record in its log, 1-based: the first record of a log has counter 1.
///
/// A log's *height* is the counter of its head, or 0 for an empty log; see [`LogHeight`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LogCounter(u64);

impl LogCounter {
    /// The counter of the first record of every log.
    pub const FIRST: LogCounter = LogCounter(1);

    /// A counter from its number; `None` for 0, which no record has.
    pub fn new(n: u64) -> Option<Self> {
        (n > 0).then_some(LogCounter(n))
    }

    /// The number itself.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The counter of the record that follows this one.
    pub fn next(self) -> LogCounter {
        LogCounter(self.0.saturating_add(1))
    }

    /// The counter of the record before this one, if any.
    pub fn prev(self) -> Option<LogCounter> {
        LogCounter::new(self.0 - 1)
    }
}

impl fmt::Display for LogCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Number of records in a log (the counter of its head), 0 when the log is empty.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct LogHeight(pub u64);

impl LogHeight {
    /// The counter the next record appended to this log must carry.
    pub fn next_counter(self) -> LogCounter {
        LogCounter(self.0.saturating_add(1))
    }

    /// The height of a log whose head has this counter.
    pub fn of(head: LogCounter) -> LogHeight {
        LogHeight(head.0)
    }
}

impl fmt::Display for LogHeight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A Lamport clock: 1 + the highest clock the author had applied in the thread when writing.
///
/// Every replica orders all events of a thread by (clock, log id, counter), which is a total
/// order consistent with causality as each writer saw it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct LamportClock(pub u64);

impl LamportClock {
    /// The clock a new event gets after having seen `self`.
    pub fn tick(self) -> LamportClock {
        LamportClock(self.0.saturating_add(1))
    }
}

impl fmt::Display for LamportClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
