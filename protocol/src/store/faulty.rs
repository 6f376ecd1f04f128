//! [`FaultyStore`]: a wrapper around any [`Store`] that fails chosen calls on purpose, for
//! tests and the simulator (feature `testing`).

use std::cell::Cell;
use std::sync::{Arc, Mutex, PoisonError};

use super::memory::FaultOp;
use super::{Direction, KeyRange, ReadTxn, Store, StoreError, Visit, WriteTxn};

const OPS: usize = 7;

#[derive(Debug, Default)]
struct Plan {
    calls: [u64; OPS],
    fail_at: [Vec<u64>; OPS],
    random: Option<RandomFaults>,
    /// Commits left before the store "dies" (the process crashed at that point).
    commits_left: Option<u64>,
    dead: bool,
}

/// Failures drawn at random, from a seeded RNG so runs are reproducible.
#[derive(Debug)]
struct RandomFaults {
    rng: crate::rng::ProtocolRng,
    per_million: u64,
    ops: [bool; OPS],
}

/// Wraps a [`Store`] and makes chosen calls fail with [`StoreError::Injected`], for testing that
/// a storage failure at any point leaves no trace.
///
/// Calls are counted per [`FaultOp`] across all transactions of this wrapper and its clones.
/// A failed call changes nothing. Like LMDB after an error, a write transaction in which a call
/// failed (other than by [`StoreError::is_invalid_input`]) refuses every later call, and
/// committing it fails and discards it.
#[derive(Debug, Clone)]
pub struct FaultyStore<S> {
    inner: S,
    plan: Arc<Mutex<Plan>>,
}

impl<S: Store> FaultyStore<S> {
    /// Wraps `inner`; no call fails until told to.
    pub fn new(inner: S) -> Self {
        FaultyStore {
            inner,
            plan: Arc::default(),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Unwraps the store.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Makes the `n`-th call of kind `op` from now fail (`n` = 1: the next one). Several
    /// failures can be armed at once.
    pub fn fail_nth(&self, op: FaultOp, n: u64) {
        let mut plan = self.plan();
        let at = plan.calls[op as usize].saturating_add(n.max(1));
        plan.fail_at[op as usize].push(at);
    }

    /// Disarms every pending failure, stops random failures and revives a dead store.
    pub fn clear(&self) {
        let mut plan = self.plan();
        plan.fail_at = Default::default();
        plan.random = None;
        plan.commits_left = None;
        plan.dead = false;
    }

    /// Makes each call of the kinds in `ops` fail with probability `per_million` / 10^6,
    /// drawn from an RNG seeded with `seed` (reproducible). Replaces earlier random faults.
    pub fn fail_randomly(&self, seed: u64, per_million: u64, ops: &[FaultOp]) {
        let mut mask = [false; OPS];
        for op in ops {
            mask[*op as usize] = true;
        }
        self.plan().random = Some(RandomFaults {
            rng: crate::rng::seeded(seed),
            per_million,
            ops: mask,
        });
    }

    /// Simulates a crash after `n` more successful commits: the `n + 1`-th commit and every
    /// later call of any kind fail, until [`FaultyStore::clear`]. What was committed before
    /// stays in the inner store, as on a disk after the process died.
    pub fn die_after_commits(&self, n: u64) {
        self.plan().commits_left = Some(n);
    }

    /// Whether the store died (see [`FaultyStore::die_after_commits`]).
    pub fn is_dead(&self) -> bool {
        self.plan().dead
    }

    /// How many calls of kind `op` were made so far, injected failures included (calls refused
    /// by an already failed write transaction are not counted).
    pub fn calls(&self, op: FaultOp) -> u64 {
        self.plan().calls[op as usize]
    }

    fn plan(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn tick(plan: &Mutex<Plan>, op: FaultOp) -> Result<(), StoreError> {
    use crate::rng::Rng;
    let mut plan = plan.lock().unwrap_or_else(PoisonError::into_inner);
    let i = op as usize;
    plan.calls[i] += 1;
    let call = plan.calls[i];
    let injected = Err(StoreError::Injected { op, call });
    if plan.dead {
        return injected;
    }
    if op == FaultOp::Commit
        && let Some(left) = plan.commits_left
    {
        if left == 0 {
            plan.dead = true;
            return injected;
        }
        plan.commits_left = Some(left - 1);
    }
    let armed = &mut plan.fail_at[i];
    if let Some(pos) = armed.iter().position(|&at| at == call) {
        armed.swap_remove(pos);
        return injected;
    }
    if let Some(r) = plan.random.as_mut()
        && r.ops[i]
        && r.rng.next_u64() % 1_000_000 < r.per_million
    {
        return injected;
    }
    Ok(())
}

/// A read transaction of [`FaultyStore`].
#[derive(Debug)]
pub struct FaultyRead<'a, R> {
    inner: R,
    plan: &'a Mutex<Plan>,
}

/// A write transaction of [`FaultyStore`].
#[derive(Debug)]
pub struct FaultyWrite<'a, W> {
    inner: W,
    plan: &'a Mutex<Plan>,
    failed: Cell<bool>,
}

impl<S: Store> Store for FaultyStore<S> {
    type Read<'a>
        = FaultyRead<'a, S::Read<'a>>
    where
        S: 'a;
    type Write<'a>
        = FaultyWrite<'a, S::Write<'a>>
    where
        S: 'a;

    fn read(&self) -> Result<Self::Read<'_>, StoreError> {
        tick(&self.plan, FaultOp::Read)?;
        Ok(FaultyRead {
            inner: self.inner.read()?,
            plan: &self.plan,
        })
    }

    fn write(&self) -> Result<Self::Write<'_>, StoreError> {
        tick(&self.plan, FaultOp::Write)?;
        Ok(FaultyWrite {
            inner: self.inner.write()?,
            plan: &self.plan,
            failed: Cell::new(false),
        })
    }
}

impl<R: ReadTxn> ReadTxn for FaultyRead<'_, R> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        tick(self.plan, FaultOp::Get)?;
        self.inner.get(key)
    }

    fn scan(
        &self,
        range: KeyRange<'_>,
        dir: Direction,
        visit: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        tick(self.plan, FaultOp::Scan)?;
        self.inner.scan(range, dir, visit)
    }
}

/// Counts a write-transaction call, fails it if armed or if the transaction already failed,
/// and otherwise runs it; any failure marks the transaction as failed.
fn run<T>(
    failed: &Cell<bool>,
    plan: &Mutex<Plan>,
    op: FaultOp,
    f: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    if failed.get() {
        return Err(StoreError::Backend(format!(
            "{op:?} refused: this write transaction already failed; drop it and start over"
        )));
    }
    let out = tick(plan, op).and_then(|()| f());
    if out.as_ref().is_err_and(|e| !e.is_invalid_input()) {
        failed.set(true);
    }
    out
}

impl<W: WriteTxn> ReadTxn for FaultyWrite<'_, W> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        run(&self.failed, self.plan, FaultOp::Get, || {
            self.inner.get(key)
        })
    }

    fn scan(
        &self,
        range: KeyRange<'_>,
        dir: Direction,
        visit: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        run(&self.failed, self.plan, FaultOp::Scan, || {
            self.inner.scan(range, dir, visit)
        })
    }
}

impl<W: WriteTxn> WriteTxn for FaultyWrite<'_, W> {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        run(&self.failed, self.plan, FaultOp::Put, || {
            self.inner.put(key, value)
        })
    }

    /// Fails as a put would: it is one.
    fn put_if_absent(&mut self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        run(&self.failed, self.plan, FaultOp::Put, || {
            self.inner.put_if_absent(key, value)
        })
    }

    fn delete(&mut self, key: &[u8]) -> Result<bool, StoreError> {
        run(&self.failed, self.plan, FaultOp::Delete, || {
            self.inner.delete(key)
        })
    }

    fn commit(self) -> Result<(), StoreError> {
        // On failure `self.inner` is dropped here, which aborts it.
        run(&self.failed, self.plan, FaultOp::Commit, || Ok(()))?;
        self.inner.commit()
    }
}
