//! The deterministic step meter.
//!
//! QuickJS decrements a per-context counter at every "poll point" (function call, backward jump,
//! some per-element loops in built-ins, and every 10,000 backtracking steps of a regular
//! expression) and calls the runtime's interrupt handler when the counter reaches zero, then
//! restarts it at 10,000. Each invocation adds [`UNITS_PER_STEP`] units to the meter. Wrapped
//! bulk built-ins (see `prelude.js`) add their element count through `charge` before they run,
//! so work done inside one native call is counted too.
//!
//! The counter is not reset between calls, so the first invocation of a call comes after between
//! 1 and 10,000 poll points depending on earlier calls. The runtime makes the verdict independent
//! of that phase: a call that completes within budget would also complete from the latest
//! possible phase (a full counter), and a call that runs out is rerun once after
//! [`Mode::ResetPhase`] has set the counter to exactly 10,000, so the verdict is always the one
//! of a run started at a full counter.

use std::cell::Cell;

use super::UNITS_PER_STEP;

/// What the interrupt handler does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Not metering (set-up, compilation): never interrupt, charges are free.
    Idle,
    /// Metering a call: count, and interrupt once the limit is passed.
    Metered,
    /// Interrupt at the next invocation, which leaves the counter at exactly 10,000.
    ResetPhase,
}

/// Step meter shared by the interrupt handler and the `charge` host function.
#[derive(Debug)]
pub(crate) struct Meter {
    mode: Cell<Mode>,
    units: Cell<u64>,
    limit: Cell<u64>,
    exhausted: Cell<bool>,
}

impl Meter {
    /// A meter in [`Mode::Idle`].
    pub(crate) fn new() -> Self {
        Meter {
            mode: Cell::new(Mode::Idle),
            units: Cell::new(0),
            limit: Cell::new(0),
            exhausted: Cell::new(false),
        }
    }

    /// Starts metering a call that may use `limit` units.
    pub(crate) fn start(&self, limit: u64) {
        self.units.set(0);
        self.limit.set(limit);
        self.exhausted.set(false);
        self.mode.set(Mode::Metered);
    }

    /// Stops metering.
    pub(crate) fn stop(&self) {
        self.mode.set(Mode::Idle);
    }

    /// Switches to [`Mode::ResetPhase`].
    pub(crate) fn reset_phase(&self) {
        self.mode.set(Mode::ResetPhase);
    }

    /// Whether the limit was passed since [`Meter::start`].
    pub(crate) fn exhausted(&self) -> bool {
        self.exhausted.get()
    }

    /// Whole steps used since [`Meter::start`].
    pub(crate) fn steps(&self) -> u64 {
        self.units.get() / UNITS_PER_STEP
    }

    /// The interrupt handler: `true` interrupts the running code with an uncatchable error.
    pub(crate) fn on_interrupt(&self) -> bool {
        match self.mode.get() {
            Mode::Idle => false,
            Mode::ResetPhase => true,
            Mode::Metered => {
                self.add(UNITS_PER_STEP);
                self.exhausted.get()
            }
        }
    }

    /// Adds `amount` units of work done by a built-in; `false` once the limit is passed.
    pub(crate) fn charge(&self, amount: f64) -> bool {
        if self.mode.get() != Mode::Metered {
            return true;
        }
        // `as` saturates (NaN becomes 0), so any number is safe here.
        let units = if amount > 0.0 { amount as u64 } else { 0 };
        self.add(units);
        !self.exhausted.get()
    }

    fn add(&self, units: u64) {
        let total = self.units.get().saturating_add(units);
        self.units.set(total);
        if total > self.limit.get() {
            self.exhausted.set(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_meter_never_interrupts_or_counts() {
        let m = Meter::new();
        assert!(!m.on_interrupt());
        assert!(m.charge(1e18));
        assert_eq!(m.steps(), 0);
    }

    #[test]
    fn metered_interrupts_after_limit() {
        let m = Meter::new();
        m.start(2 * UNITS_PER_STEP);
        assert!(!m.on_interrupt());
        assert!(!m.on_interrupt());
        assert!(m.on_interrupt());
        assert!(m.exhausted());
        m.start(10);
        assert!(m.charge(10.0));
        assert!(!m.charge(1.0));
        assert!(m.on_interrupt());
    }

    #[test]
    fn odd_charges_are_safe() {
        let m = Meter::new();
        m.start(1_000);
        assert!(m.charge(f64::NAN));
        assert!(m.charge(-5.0));
        assert_eq!(m.steps(), 0);
        assert!(!m.charge(f64::INFINITY));
        m.reset_phase();
        assert!(m.on_interrupt());
        m.stop();
        assert!(!m.on_interrupt());
    }
}
