//! [`JsRuntime`]: one engine, its compiled bodies, and metered calls.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use rquickjs::{Context, Ctx, Function, Persistent, Runtime, Type, Value};
use serde_json::Value as Json;

use super::compile::{COMPILE_OUT_OF_MEMORY, compile_error_of, sloppy, syntax_check};
use super::convert::{from_js, to_text};
use super::meter::Meter;
use super::realm::{self, Helpers};
use super::{Denied, FunctionKind, JsConfig, JsError, prepare_body};
use call::engine_error;

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
    /// Live engine objects and functions right after the realm was built.
    baseline_objects: i64,
    last_steps: Cell<u64>,
}

impl JsRuntime {
    /// An engine with the default [`JsConfig`].
    pub fn new() -> Result<Self, JsError> {
        Self::with_config(JsConfig::default())
    }

    /// An engine with the given limits. Building and freezing the realm takes 5–10 ms
    /// (measured), so keep one engine and reuse it.
    pub fn with_config(config: JsConfig) -> Result<Self, JsError> {
        let runtime = Runtime::new().map_err(engine)?;
        runtime.set_memory_limit(config.memory_limit);
        runtime.set_max_stack_size(config.max_stack_size);
        let meter = Rc::new(Meter::new());
        let handler_meter = Rc::clone(&meter);
        runtime.set_interrupt_handler(Some(Box::new(move || handler_meter.on_interrupt())));
        let mut js = JsRuntime {
            slots: Vec::new(),
            free: Vec::new(),
            helpers: None,
            context: None,
            runtime: Some(runtime),
            meter,
            config,
            id: NEXT_RUNTIME_ID.fetch_add(1, Ordering::Relaxed),
            baseline_objects: 0,
            last_steps: Cell::new(0),
        };
        let (context, helpers) = realm::create(js.rt()?, &js.meter)?;
        js.context = Some(context);
        js.helpers = Some(helpers);
        let rt = js.rt()?;
        rt.run_gc();
        js.baseline_objects = live_objects(rt);
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
        let prepared = prepare_body(body);
        self.with_collected_retry(|js| syntax_check(js.rt()?, &prepared, kind))
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
        let func = self.with_collected_retry(|js| js.compile_once(&prepared, kind))?;
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

    fn compile_once(
        &self,
        prepared: &str,
        kind: FunctionKind,
    ) -> Result<Persistent<Function<'static>>, JsError> {
        syntax_check(self.rt()?, prepared, kind)?;
        let source = format!(
            "(function {}({}) {{\n{prepared}\n}})",
            kind.function_name(),
            kind.parameters()
        );
        let (context, helpers) = self.parts()?;
        self.meter.stop();
        context.with(|ctx| {
            let compiled: Function = ctx
                .eval_with_options(source, sloppy())
                .map_err(|e| compile_failure(&ctx, e))?;
            let freeze = restore(&ctx, &helpers.freeze_function)?;
            let frozen: Function = freeze
                .call((compiled,))
                .map_err(|e| compile_failure(&ctx, e))?;
            Ok(Persistent::save(&ctx, frozen))
        })
    }

    /// Runs `f`, and once more after a garbage collection if it ran out of memory: garbage
    /// cycles left by earlier calls must not decide whether a body compiles.
    fn with_collected_retry<T>(
        &self,
        f: impl Fn(&Self) -> Result<T, JsError>,
    ) -> Result<T, JsError> {
        match f(self) {
            Err(JsError::Compile(m)) if m == COMPILE_OUT_OF_MEMORY => {
                self.rt()?.run_gc();
                f(self)
            }
            other => other,
        }
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
            dispose(rt, self.baseline_objects);
        }
    }
}

/// Frees a runtime whose contexts and values are all dropped. If more objects are alive than
/// `baseline_objects` (an engine leak), the runtime is leaked instead: freeing it would abort the
/// process on the engine's leak assertion. (Objects of the realm stay alive until the runtime
/// is freed, because rquickjs caches a prototype in it, so the baseline is the count measured
/// right after the realm was built.)
pub(crate) fn dispose(rt: Runtime, baseline_objects: i64) {
    rt.run_gc();
    if live_objects(&rt) > baseline_objects {
        std::mem::forget(rt);
    }
}

/// Engine objects and compiled functions alive in `rt`.
pub(crate) fn live_objects(rt: &Runtime) -> i64 {
    let usage = rt.memory_usage();
    usage.obj_count.saturating_add(usage.js_func_count)
}

fn restore<'js>(
    ctx: &Ctx<'js>,
    f: &Persistent<Function<'static>>,
) -> Result<Function<'js>, JsError> {
    f.clone().restore(ctx).map_err(engine)
}

fn compile_failure(ctx: &Ctx<'_>, e: rquickjs::Error) -> JsError {
    if !e.is_exception() {
        return compile_error_of(e);
    }
    match engine_error(ctx, &ctx.catch()) {
        Some(("InternalError", "out of memory")) | None => {
            JsError::Compile(COMPILE_OUT_OF_MEMORY.into())
        }
        Some((name, message)) => JsError::Compile(format!("{name}: {message}")),
    }
}

fn engine(e: rquickjs::Error) -> JsError {
    JsError::Engine(e.to_string())
}

fn closed() -> JsError {
    JsError::Engine("the engine is closed".into())
}

mod call;
#[cfg(test)]
mod tests;
