//! [`JsRuntime`]: one engine, its compiled bodies, and metered calls.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use rquickjs::{Context, Ctx, Function, Persistent, Runtime, Type, Value};
use serde_json::Value as Json;

use super::compile::{sloppy, syntax_check};
use super::convert::{from_js, to_text};
use super::meter::Meter;
use super::realm::{self, Helpers};
use super::{
    Denied, FunctionKind, JsConfig, JsError, MAX_MESSAGE_LEN, UNITS_PER_STEP, prepare_body,
};

/// How a thrown `null` is reported: the engine throws `null` itself when it runs out of memory
/// so badly that it cannot allocate its error object.
const NULL_THROWN: &str = "null (or the engine ran out of memory)";

/// Most promise jobs run after one call (async bodies); the rest wait for the next call.
const MAX_JOBS_PER_DRAIN: usize = 1_000;

static NEXT_RUNTIME_ID: AtomicU64 = AtomicU64::new(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FuncId {
    runtime: u64,
    index: u32,
    generation: u32,
}

/// Handle of a write validator compiled by [`JsRuntime::compile_validator`]. It is only valid
/// with the runtime that compiled it, until released.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Validator(FuncId);

/// Handle of a read filter compiled by [`JsRuntime::compile_read_filter`]. It is only valid
/// with the runtime that compiled it, until released.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReadFilter(FuncId);

struct Slot {
    generation: u32,
    func: Option<(FunctionKind, Persistent<Function<'static>>)>,
}

/// A failed call: an engine limit or error, or the value that was thrown.
enum Caught<'js> {
    Error(JsError),
    Value(Value<'js>),
}

enum Verdict {
    Accept,
    Reject,
    Value(String),
}

/// One QuickJS engine (runtime and context) with a frozen realm, reused for many calls.
///
/// Calls take `&self`; compiling and releasing take `&mut self`. The engine is single-threaded:
/// `JsRuntime` is neither `Send` nor `Sync`, so create it on the thread that uses it (for example
/// one per reducer thread) and move body sources, not handles, between threads.
///
/// ```compile_fail
/// fn must_be_send<T: Send>() {}
/// must_be_send::<threads_reducer::js::JsRuntime>();
/// ```
pub struct JsRuntime {
    slots: Vec<Slot>,
    free: Vec<u32>,
    helpers: Option<Helpers>,
    context: Option<Context>,
    runtime: Option<Runtime>,
    meter: Rc<Meter>,
    config: JsConfig,
    id: u64,
    baseline_allocations: i64,
    last_steps: Cell<u64>,
}

impl JsRuntime {
    /// An engine with the default [`JsConfig`].
    pub fn new() -> Result<Self, JsError> {
        Self::with_config(JsConfig::default())
    }

    /// An engine with the given limits (0 for `memory_limit` or `max_stack_size` means no limit).
    /// Building the realm takes about a millisecond.
    pub fn with_config(config: JsConfig) -> Result<Self, JsError> {
        let runtime = Runtime::new().map_err(engine)?;
        runtime.set_memory_limit(config.memory_limit);
        runtime.set_max_stack_size(config.max_stack_size);
        let meter = Rc::new(Meter::new());
        let handler_meter = Rc::clone(&meter);
        runtime.set_interrupt_handler(Some(Box::new(move || handler_meter.on_interrupt())));
        let baseline_allocations = runtime.memory_usage().malloc_count;
        let mut js = JsRuntime {
            slots: Vec::new(),
            free: Vec::new(),
            helpers: None,
            context: None,
            runtime: Some(runtime),
            meter,
            config,
            id: NEXT_RUNTIME_ID.fetch_add(1, Ordering::Relaxed),
            baseline_allocations,
            last_steps: Cell::new(0),
        };
        let (context, helpers) = realm::create(js.rt()?, &js.meter)?;
        js.context = Some(context);
        js.helpers = Some(helpers);
        Ok(js)
    }

    /// The limits this engine was created with.
    pub fn config(&self) -> &JsConfig {
        &self.config
    }

    /// Steps used by the last validate or filter call (its deciding run). Diagnostic only: it may
    /// differ by one between identical calls, unlike the verdict.
    pub fn last_call_steps(&self) -> u64 {
        self.last_steps.get()
    }

    /// Checks that `body` compiles as a function body of `kind`, without running or keeping it.
    pub fn check_syntax(&self, body: &str, kind: FunctionKind) -> Result<(), JsError> {
        syntax_check(self.rt()?, &prepare_body(body), kind)
    }

    /// Compiles a write validator body (tabs removed). An empty body compiles to a validator
    /// that rejects everything; go-threads treats an empty body as "no validator", which is the
    /// caller's decision.
    pub fn compile_validator(&mut self, body: &str) -> Result<Validator, JsError> {
        self.compile(body, FunctionKind::Validator).map(Validator)
    }

    /// Compiles a read filter body (tabs removed). An empty body compiles to a filter that hides
    /// everything; go-threads treats an empty body as "no filter", which is the caller's decision.
    pub fn compile_read_filter(&mut self, body: &str) -> Result<ReadFilter, JsError> {
        self.compile(body, FunctionKind::ReadFilter).map(ReadFilter)
    }

    /// Frees a compiled validator; `false` if it was already released or is not from here.
    pub fn release_validator(&mut self, validator: Validator) -> bool {
        self.release(validator.0)
    }

    /// Frees a compiled read filter; `false` if it was already released or is not from here.
    pub fn release_read_filter(&mut self, filter: ReadFilter) -> bool {
        self.release(filter.0)
    }

    /// Number of compiled functions currently held.
    pub fn function_count(&self) -> usize {
        self.slots.iter().filter(|s| s.func.is_some()).count()
    }

    /// Runs a validator on one event. `writer` is the author's identity string (`None` passes
    /// `undefined`, the no-token `Verify` case); `instance` is the stored document before the
    /// change (`None` passes `undefined`). `Ok(())` only when the validator returns `true`.
    pub fn validate(
        &self,
        validator: &Validator,
        writer: Option<&str>,
        event: &Json,
        instance: Option<&Json>,
    ) -> Result<(), Denied> {
        let kind = FunctionKind::Validator;
        let input = |r: String| Denied::Error(JsError::Input { kind, reason: r });
        let event_text = to_text(event, "event").map_err(input)?;
        let instance_text = instance
            .map(|i| to_text(i, "instance"))
            .transpose()
            .map_err(input)?;
        let verdict = self.run(validator.0, kind, |ctx, f, helpers| {
            let writer = self.identity(ctx, writer, kind)?;
            let event = self.parse(ctx, &event_text, kind)?;
            let instance = match &instance_text {
                Some(text) => self.parse(ctx, text, kind)?,
                None => Value::new_undefined(ctx.clone()),
            };
            let result: Value = f
                .call((writer, event, instance))
                .map_err(|e| self.failure(ctx, e, kind, helpers))?;
            self.within_budget(kind)?;
            match result.type_of() {
                Type::Bool if result.as_bool() == Some(true) => Ok(Verdict::Accept),
                Type::Bool | Type::Null | Type::Undefined | Type::Uninitialized => {
                    Ok(Verdict::Reject)
                }
                _ => {
                    let text = self.helper_text(ctx, &helpers.render, result, kind, helpers)?;
                    Ok(Verdict::Value(text))
                }
            }
        });
        match verdict {
            Ok(Verdict::Accept) => Ok(()),
            Ok(Verdict::Reject) => Err(Denied::Rejected),
            Ok(Verdict::Value(text)) => Err(Denied::Value(text)),
            Err(e) => Err(Denied::Error(e)),
        }
    }

    /// Runs a read filter on one instance. `reader` is the caller's identity string (`None`
    /// passes `undefined`). `Ok(Some(doc))` shows `doc` instead of the instance, `Ok(None)` hides
    /// it. An error (exception, budget, memory, stack, or a result that is not an object, `null`
    /// or `undefined`) must also hide the instance: reads fail closed.
    pub fn filter(
        &self,
        filter: &ReadFilter,
        reader: Option<&str>,
        instance: &Json,
    ) -> Result<Option<Json>, JsError> {
        let kind = FunctionKind::ReadFilter;
        let instance_text =
            to_text(instance, "instance").map_err(|reason| JsError::Input { kind, reason })?;
        self.run(filter.0, kind, |ctx, f, helpers| {
            let reader = self.identity(ctx, reader, kind)?;
            let instance = self.parse(ctx, &instance_text, kind)?;
            let result: Value = f
                .call((reader, instance))
                .map_err(|e| self.failure(ctx, e, kind, helpers))?;
            self.within_budget(kind)?;
            let bad = |what: &str| {
                Err(JsError::BadResult {
                    kind,
                    what: what.into(),
                })
            };
            match result.type_of() {
                Type::Null | Type::Undefined | Type::Uninitialized => Ok(None),
                Type::Object | Type::Exception => {
                    let normalize = restore(ctx, &helpers.normalize)?;
                    let plain: Value = normalize
                        .call((result,))
                        .map_err(|e| self.failure(ctx, e, kind, helpers))?;
                    self.within_budget(kind)?;
                    if plain.type_of() != Type::Object {
                        return bad("an object whose JSON form is not an object");
                    }
                    match from_js(&plain) {
                        Ok(doc) => Ok(Some(doc)),
                        Err(reason) => Err(JsError::BadResult {
                            kind,
                            what: format!("an object that is not JSON ({reason})"),
                        }),
                    }
                }
                Type::Promise => bad("a promise (async filters are not supported)"),
                Type::Array => bad("an array"),
                Type::Function | Type::Constructor => bad("a function"),
                Type::Bool => bad("a boolean"),
                Type::Int | Type::Float => bad("a number"),
                Type::String => bad("a string"),
                Type::Symbol => bad("a symbol"),
                _ => bad("an unsupported value"),
            }
        })
    }

    fn compile(&mut self, body: &str, kind: FunctionKind) -> Result<FuncId, JsError> {
        let prepared = prepare_body(body);
        syntax_check(self.rt()?, &prepared, kind)?;
        let source = format!(
            "(function {}({}) {{\n{prepared}\n}})",
            kind.function_name(),
            kind.parameters()
        );
        let (context, helpers) = self.parts()?;
        self.meter.stop();
        let func = context.with(|ctx| {
            let compiled: Function = ctx
                .eval_with_options(source, sloppy())
                .map_err(|e| compile_failure(&ctx, e))?;
            let freeze = restore(&ctx, &helpers.freeze_function)?;
            let frozen: Function = freeze
                .call((compiled,))
                .map_err(|e| compile_failure(&ctx, e))?;
            Ok::<_, JsError>(Persistent::save(&ctx, frozen))
        })?;
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                let i = u32::try_from(self.slots.len())
                    .map_err(|_| JsError::Engine("too many functions".into()))?;
                self.slots.push(Slot {
                    generation: 0,
                    func: None,
                });
                i
            }
        };
        let slot = self
            .slots
            .get_mut(index as usize)
            .ok_or(JsError::UnknownFunction)?;
        slot.func = Some((kind, func));
        Ok(FuncId {
            runtime: self.id,
            index,
            generation: slot.generation,
        })
    }

    fn release(&mut self, id: FuncId) -> bool {
        if id.runtime != self.id {
            return false;
        }
        match self.slots.get_mut(id.index as usize) {
            Some(slot) if slot.generation == id.generation && slot.func.is_some() => {
                slot.func = None;
                slot.generation = slot.generation.wrapping_add(1);
                self.free.push(id.index);
                true
            }
            _ => false,
        }
    }

    fn lookup(
        &self,
        id: FuncId,
        kind: FunctionKind,
    ) -> Result<&Persistent<Function<'static>>, JsError> {
        if id.runtime != self.id {
            return Err(JsError::UnknownFunction);
        }
        match self.slots.get(id.index as usize) {
            Some(Slot {
                generation,
                func: Some((k, f)),
            }) if *generation == id.generation && *k == kind => Ok(f),
            _ => Err(JsError::UnknownFunction),
        }
    }

    /// Runs `attempt` under the meter, with the reruns that make the verdict deterministic: once
    /// from a reset interrupt phase after a budget failure, once after a garbage collection after
    /// a memory failure (or a `null` exception, which is how an out-of-memory error that could
    /// not be allocated shows).
    fn run<T>(
        &self,
        id: FuncId,
        kind: FunctionKind,
        attempt: impl for<'js> Fn(&Ctx<'js>, Function<'js>, &Helpers) -> Result<T, JsError>,
    ) -> Result<T, JsError> {
        let func = self.lookup(id, kind)?;
        let (context, helpers) = self.parts()?;
        let limit = self.config.step_budget.saturating_mul(UNITS_PER_STEP);
        let (mut phase_reset, mut collected) = (false, false);
        loop {
            self.meter.start(limit);
            let out = context.with(|ctx| {
                let f = func.clone().restore(&ctx).map_err(engine)?;
                attempt(&ctx, f, helpers)
            });
            self.last_steps.set(self.meter.steps());
            self.meter.stop();
            self.drain_jobs();
            match out {
                Err(JsError::StepBudget { .. }) if !phase_reset => {
                    self.reset_phase();
                    phase_reset = true;
                }
                Err(JsError::OutOfMemory { .. }) if !collected => {
                    self.rt()?.run_gc();
                    collected = true;
                }
                Err(JsError::Threw { ref message, .. }) if !collected && message == NULL_THROWN => {
                    self.rt()?.run_gc();
                    collected = true;
                }
                out => return out,
            }
        }
    }

    /// Parses JSON text into an engine value (the text is data, not source code).
    fn parse<'js>(
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
    fn identity<'js>(
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

    fn within_budget(&self, kind: FunctionKind) -> Result<(), JsError> {
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
    fn helper_text<'js>(
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
    fn failure(
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
        if exc.is_null() {
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

    /// Takes the pending exception of a failed call and sorts out the engine's limit errors,
    /// without running any code.
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
            (_, Some(exc)) => match engine_error(&exc) {
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
    fn drain_jobs(&self) {
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

    fn rt(&self) -> Result<&Runtime, JsError> {
        self.runtime.as_ref().ok_or_else(closed)
    }

    fn parts(&self) -> Result<(&Context, &Helpers), JsError> {
        match (&self.context, &self.helpers) {
            (Some(c), Some(h)) => Ok((c, h)),
            _ => Err(closed()),
        }
    }
}

impl Drop for JsRuntime {
    fn drop(&mut self) {
        self.slots.clear();
        self.helpers = None;
        self.context = None;
        if let Some(rt) = self.runtime.take() {
            dispose(rt, self.baseline_allocations);
        }
    }
}

/// Frees a runtime whose contexts and values are all dropped. If objects are still allocated
/// (an engine leak), the runtime is leaked instead: freeing it would abort the process on the
/// engine's leak assertion.
pub(crate) fn dispose(rt: Runtime, baseline_allocations: i64) {
    rt.run_gc();
    if rt.memory_usage().malloc_count > baseline_allocations {
        std::mem::forget(rt);
    }
}

/// Name and message of an engine error object (own data properties only, no user code).
fn engine_error(exc: &Value<'_>) -> Option<(&'static str, &'static str)> {
    let obj = exc.as_object()?;
    if !exc.is_error() {
        return None;
    }
    let message: String = obj.get("message").ok()?;
    let name: String = obj.get("name").ok()?;
    let known = [
        ("InternalError", "out of memory"),
        ("RangeError", "Maximum call stack size exceeded"),
    ];
    known.into_iter().find(|(n, m)| *n == name && *m == message)
}

fn restore<'js>(
    ctx: &Ctx<'js>,
    f: &Persistent<Function<'static>>,
) -> Result<Function<'js>, JsError> {
    f.clone().restore(ctx).map_err(engine)
}

fn compile_failure(ctx: &Ctx<'_>, e: rquickjs::Error) -> JsError {
    if !e.is_exception() {
        return JsError::Compile(e.to_string());
    }
    match engine_error(&ctx.catch()) {
        Some((name, message)) => JsError::Compile(format!("{name}: {message}")),
        None => JsError::Compile("the body could not be compiled".into()),
    }
}

fn truncate(mut text: String) -> String {
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

fn engine(e: rquickjs::Error) -> JsError {
    JsError::Engine(e.to_string())
}

fn closed() -> JsError {
    JsError::Engine("the engine is closed".into())
}
