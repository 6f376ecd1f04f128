//! What the store invariant check of a host depends on, so that the simulator can skip the
//! check (it reads every log head) after an input that changed none of it.

use super::{App, SimStore};
use threads_protocol::engine::Host;
use threads_protocol::engine::state::LogsVersion;
use threads_protocol::id::ThreadId;

/// What [`Host::check_store_invariants`] depends on: the number of commits of the durable store
/// and every log the engine holds in memory (thread, log, height, head), named by the version
/// of each thread's logs (a version is never given to two states). Its result is a pure
/// function of these, so when they are unchanged since a passing check the check is skipped:
/// the same violations are found at the same input as when it runs after every input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoreCheck {
    pub(super) commits: u64,
    logs: Vec<(ThreadId, LogsVersion)>,
}

impl StoreCheck {
    /// What the store check of `e` depends on now, the store having made `commits` commits.
    pub(super) fn of(commits: u64, e: &Host<SimStore, App>) -> StoreCheck {
        let logs = e.logs_versions().map(|(id, v)| (*id, v)).collect();
        StoreCheck { commits, logs }
    }

    /// Whether the logs `e` holds in memory are the ones this check saw (compared in place:
    /// this runs after every input).
    pub(super) fn same_logs(&self, e: &Host<SimStore, App>) -> bool {
        let mut seen = self.logs.iter();
        e.logs_versions()
            .all(|(id, v)| seen.next().is_some_and(|(t, w)| t == id && *w == v))
            && seen.next().is_none()
    }
}
