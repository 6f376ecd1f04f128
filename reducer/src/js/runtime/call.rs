//! Metered calls: reruns for determinism, failure classification, promise jobs.

use rquickjs::{Ctx, Function, Persistent, Value};

use super::{FuncId, JsRuntime, engine, restore};
use crate::js::realm::Helpers;
use crate::js::{FunctionKind, JsError, MAX_MESSAGE_LEN, UNITS_PER_STEP};

/// How a thrown `null` is reported: the engine throws `null` itself when it runs out of memory
/// so badly that it cannot allocate its error object.
const NULL_THROWN: &str = "null (or the engine ran out of memory)";

/// Most promise jobs run after one call (async bodies); the rest wait for the next call.
const MAX_JOBS_PER_DRAIN: usize = 1_000;

/// A failed call: an engine limit or error, or the value that was thrown.
enum Caught<'js> {
    Error(JsError),
    Value(Value<'js>),
}

impl JsRuntime {
    /// Runs `attempt` under the meter, with the reruns that make the verdict deterministic:
    /// a budget failure that did not start from a reset interrupt phase is rerun from one, and
    /// a memory failure (or a `null` exception, which is how an out-of-memory error that could
    /// not be allocated shows) is rerun once after a garbage collection; a `null` thrown again
    /// is told apart from running out of memory by one more run with a larger heap (see
    /// `null_was_out_of_memory`). At most 5 runs.
    pub(super) fn run<T>(
        &self,
        id: FuncId,
        kind: FunctionKind,
        attempt: impl for<'js> Fn(&Ctx<'js>, Function<'js>, &Helpers) -> Result<T, JsError>,
    ) -> Result<T, JsError> {
        let func = self.lookup(id, kind)?;
        let (context, helpers) = self.parts()?;
        let limit = self.config.step_budget.saturating_mul(UNITS_PER_STEP);
        let (mut runs, mut canonical, mut collected) = (0, false, false);
        loop {
            runs += 1;
            self.meter.start(limit);
            let out = context.with(|ctx| {
                let f = func.clone().restore(&ctx).map_err(engine)?;
                attempt(&ctx, f, helpers)
            });
            self.last_steps.set(self.meter.steps());
            self.meter.stop();
            self.drain_jobs();
            let started_canonical = std::mem::replace(&mut canonical, false);
            let memory = match &out {
                Err(JsError::OutOfMemory { .. }) => true,
                Err(JsError::Threw { message, .. }) => message == NULL_THROWN,
                _ => false,
            };
            match out {
                Err(JsError::StepBudget { .. }) if !started_canonical && runs < 4 => {
                    self.reset_phase();
                    canonical = true;
                }
                _ if memory && !collected && runs < 4 => {
                    self.rt()?.run_gc();
                    collected = true;
                }
                out => {
                    if memory {
                        // Leave no garbage cycles behind to fill the heap of the next call.
                        self.rt()?.run_gc();
                    }
                    if matches!(&out, Err(JsError::Threw { message, .. }) if message == NULL_THROWN)
                        && self.null_was_out_of_memory(id, kind, &attempt)?
                    {
                        return Err(self.out_of_memory(kind));
                    }
                    return out;
                }
            }
        }
    }

    /// Parses JSON text into an engine value (the text is data, not source code).
    pub(super) fn parse<'js>(
        &self,
        ctx: &Ctx<'js>,
        text: &str,
        kind: FunctionKind,
    ) -> Result<Value<'js>, JsError> {
        ctx.json_parse(text)
            .map_err(|e| match self.classify(ctx, e, kind) {
                Caught::Error(error) => error,
                Caught::Value(_) => JsError::Input {
                    kind,
                    reason: "the engine refused the JSON".into(),
                },
            })
    }

    /// `writer`/`reader`: the identity string (a value, never source), or `undefined`.
    pub(super) fn identity<'js>(
        &self,
        ctx: &Ctx<'js>,
        id: Option<&str>,
        kind: FunctionKind,
    ) -> Result<Value<'js>, JsError> {
        match id {
            Some(s) => rquickjs::String::from_str(ctx.clone(), s)
                .map(|s| s.into_value())
                .map_err(|e| match self.classify(ctx, e, kind) {
                    Caught::Error(error) => error,
                    Caught::Value(_) => JsError::Input {
                        kind,
                        reason: "the engine refused the identity".into(),
                    },
                }),
            None => Ok(Value::new_undefined(ctx.clone())),
        }
    }

    pub(super) fn within_budget(&self, kind: FunctionKind) -> Result<(), JsError> {
        if self.meter.exhausted() {
            Err(self.budget_error(kind))
        } else {
            Ok(())
        }
    }

    fn budget_error(&self, kind: FunctionKind) -> JsError {
        JsError::StepBudget {
            kind,
            budget: self.config.step_budget,
        }
    }

    /// Calls a text-producing helper (render) under the meter.
    pub(super) fn helper_text<'js>(
        &self,
        ctx: &Ctx<'js>,
        helper: &Persistent<Function<'static>>,
        arg: Value<'js>,
        kind: FunctionKind,
        helpers: &Helpers,
    ) -> Result<String, JsError> {
        let f = restore(ctx, helper)?;
        let text = match f.call::<_, String>((arg,)) {
            Ok(text) => text,
            Err(e) if e.is_exception() => return Err(self.failure(ctx, e, kind, helpers)),
            // Not reachable (the helpers return well-formed strings); never an engine failure.
            Err(_) => "[value that cannot be rendered]".into(),
        };
        self.within_budget(kind)?;
        Ok(truncate(text))
    }

    /// Classifies a failed call; describes a thrown value with the `describe` helper (under the
    /// meter: a value's `toString` is user code).
    pub(super) fn failure(
        &self,
        ctx: &Ctx<'_>,
        e: rquickjs::Error,
        kind: FunctionKind,
        helpers: &Helpers,
    ) -> JsError {
        let exc = match self.classify(ctx, e, kind) {
            Caught::Error(error) => return error,
            Caught::Value(exc) => exc,
        };
        // No exception value at all: the engine failed to allocate one.
        if exc.type_of() == rquickjs::Type::Uninitialized {
            return self.out_of_memory(kind);
        }
        if exc.is_null() {
            // Maybe out of memory so badly that the error object could not be allocated;
            // `run` decides from the heap once the engine is released.
            return JsError::Threw {
                kind,
                message: NULL_THROWN.into(),
            };
        }
        let described = restore(ctx, &helpers.describe)
            .and_then(|d| d.call::<_, String>((exc,)).map_err(engine));
        if self.meter.exhausted() {
            let _ = ctx.catch();
            return self.budget_error(kind);
        }
        match described {
            Ok(text) => JsError::Threw {
                kind,
                message: truncate(text),
            },
            Err(_) => {
                let _ = ctx.catch();
                JsError::Threw {
                    kind,
                    message: "[exception that cannot be rendered]".into(),
                }
            }
        }
    }

    fn out_of_memory(&self, kind: FunctionKind) -> JsError {
        JsError::OutOfMemory {
            kind,
            limit: self.config.memory_limit,
        }
    }

    /// Decides whether a call that threw `null` (twice, the second time on a collected heap)
    /// ran out of memory: the engine throws `null` when it cannot even allocate its
    /// out-of-memory error, which is what filling the heap with many small objects does. The
    /// call is run once more with twice the memory limit: a body that threw `null` itself
    /// runs the same steps to the same `throw`, while one that ran out of memory gets further
    /// (more steps, or another outcome). Deterministic: it depends only on the body and its
    /// arguments, never on earlier calls.
    fn null_was_out_of_memory<T>(
        &self,
        id: FuncId,
        kind: FunctionKind,
        attempt: &impl for<'js> Fn(&Ctx<'js>, Function<'js>, &Helpers) -> Result<T, JsError>,
    ) -> Result<bool, JsError> {
        let func = self.lookup(id, kind)?;
        let (context, helpers) = self.parts()?;
        let at_limit = self.last_steps.get();
        let rt = self.rt()?;
        rt.run_gc();
        rt.set_memory_limit(self.config.memory_limit.saturating_mul(2));
        self.meter
            .start(self.config.step_budget.saturating_mul(UNITS_PER_STEP));
        let probe = context.with(|ctx| {
            let f = func.clone().restore(&ctx).map_err(engine)?;
            attempt(&ctx, f, helpers)
        });
        let probe_steps = self.meter.steps();
        self.meter.stop();
        self.drain_jobs();
        let rt = self.rt()?;
        rt.set_memory_limit(self.config.memory_limit);
        rt.run_gc();
        let same_null =
            matches!(&probe, Err(JsError::Threw { message, .. }) if message == NULL_THROWN);
        // Steps are counted in units of the interrupt handler, whose phase may shift by one.
        Ok(!same_null || probe_steps > at_limit.saturating_add(1))
    }

    /// Takes the pending exception of a failed call and sorts out the engine's limit errors
    /// (budget, memory, stack) from values thrown by the body.
    fn classify<'js>(&self, ctx: &Ctx<'js>, e: rquickjs::Error, kind: FunctionKind) -> Caught<'js> {
        let exc = if e.is_exception() {
            Some(ctx.catch())
        } else {
            None
        };
        if self.meter.exhausted() {
            return Caught::Error(self.budget_error(kind));
        }
        let limit = self.config.memory_limit;
        match (e, exc) {
            (_, Some(exc)) => match engine_error(ctx, &exc) {
                Some(("InternalError", "out of memory")) => {
                    Caught::Error(JsError::OutOfMemory { kind, limit })
                }
                Some(("RangeError", "Maximum call stack size exceeded")) => {
                    Caught::Error(JsError::StackOverflow { kind })
                }
                _ => Caught::Value(exc),
            },
            (rquickjs::Error::Allocation, None) => {
                Caught::Error(JsError::OutOfMemory { kind, limit })
            }
            (other, None) => Caught::Error(JsError::Engine(other.to_string())),
        }
    }

    /// Interrupts a spinning loop at the next handler invocation, which leaves the engine's
    /// interrupt counter at exactly [`UNITS_PER_STEP`].
    fn reset_phase(&self) {
        let Ok((context, helpers)) = self.parts() else {
            return;
        };
        self.meter.reset_phase();
        context.with(|ctx| {
            if let Ok(spin) = restore(&ctx, &helpers.spin) {
                let _: rquickjs::Result<Value> = spin.call(());
            }
            let _ = ctx.catch();
        });
        self.meter.stop();
    }

    /// Runs pending promise jobs (left by async bodies) under a fresh budget; their outcome does
    /// not matter, but they must not pile up.
    pub(super) fn drain_jobs(&self) {
        let Ok(rt) = self.rt() else {
            return;
        };
        if !rt.is_job_pending() {
            return;
        }
        self.meter
            .start(self.config.step_budget.saturating_mul(UNITS_PER_STEP));
        for _ in 0..MAX_JOBS_PER_DRAIN {
            match rt.execute_pending_job() {
                Ok(true) => {}
                Ok(false) => break,
                Err(job) => job.0.with(|ctx| {
                    let _ = ctx.catch();
                }),
            }
            if self.meter.exhausted() {
                break;
            }
        }
        self.meter.stop();
    }
}

/// Name and message of an engine limit error, if `exc` is one. Reading them may run a getter of
/// a user's error object (under the meter); an exception it throws is discarded.
pub(super) fn engine_error(ctx: &Ctx<'_>, exc: &Value<'_>) -> Option<(&'static str, &'static str)> {
    let obj = exc.as_object()?;
    if !exc.is_error() {
        return None;
    }
    let read = |key: &str| match obj.get::<_, String>(key) {
        Ok(text) => Some(text),
        Err(e) => {
            if e.is_exception() {
                let _ = ctx.catch();
            }
            None
        }
    };
    let message = read("message")?;
    let name = read("name")?;
    let known = [
        ("InternalError", "out of memory"),
        ("RangeError", "Maximum call stack size exceeded"),
    ];
    known.into_iter().find(|(n, m)| *n == name && *m == message)
}

pub(super) fn truncate(mut text: String) -> String {
    if text.len() > MAX_MESSAGE_LEN {
        let mut end = MAX_MESSAGE_LEN;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}
