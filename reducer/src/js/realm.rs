//! The frozen realm validators and filters run in.

use std::rc::Rc;

use rquickjs::context::intrinsic::{
    Eval, Json, MapSet, Promise, RegExp, RegExpCompiler, TypedArrays,
};
use rquickjs::{Context, Ctx, Exception, Function, Persistent, Runtime};

use super::JsError;
use super::meter::Meter;

/// Intrinsics of the main context. Not installed: `Date` (clock, time zone), `Proxy` (traps
/// could lie to the metering wrappers), `WeakRef`/`FinalizationRegistry` (garbage collector
/// timing), `performance` (clock) and `DOMException`. `Promise` is installed because async
/// functions leak engine memory without it; pending jobs are drained after each call.
pub(crate) type Intrinsics = (
    Eval,
    RegExpCompiler,
    RegExp,
    Json,
    MapSet,
    TypedArrays,
    Promise,
);

/// Source of the realm set-up; it evaluates to a function taking the `charge` host function.
const PRELUDE: &str = include_str!("prelude.js");

/// Host-callable helpers defined by the prelude.
pub(crate) struct Helpers {
    /// `render(value) -> string`: text of a non-boolean validator result.
    pub(crate) render: Persistent<Function<'static>>,
    /// `describe(exception) -> string`: text of an uncaught exception.
    pub(crate) describe: Persistent<Function<'static>>,
    /// `normalize(value)`: `JSON.parse(JSON.stringify(value))`, or `undefined`.
    pub(crate) normalize: Persistent<Function<'static>>,
    /// `freezeFunction(f) -> f`: freezes a compiled body and its prototype object.
    pub(crate) freeze_function: Persistent<Function<'static>>,
    /// `spin()`: loops until interrupted (used to reset the interrupt counter's phase).
    pub(crate) spin: Persistent<Function<'static>>,
}

/// Creates the main context of `rt` and installs the frozen realm in it.
pub(crate) fn create(rt: &Runtime, meter: &Rc<Meter>) -> Result<(Context, Helpers), JsError> {
    let context = Context::custom::<Intrinsics>(rt).map_err(engine)?;
    let helpers = context.with(|ctx| install(&ctx, meter))?;
    Ok((context, helpers))
}

fn install(ctx: &Ctx<'_>, meter: &Rc<Meter>) -> Result<Helpers, JsError> {
    let m = Rc::clone(meter);
    let charge = Function::new(ctx.clone(), move |ctx: Ctx<'_>, units: f64| {
        if m.charge(units) {
            Ok(())
        } else {
            Err(Exception::throw_range(&ctx, "step budget exhausted"))
        }
    })
    .map_err(engine)?;
    let setup: Function = ctx.eval(PRELUDE).map_err(|e| caught(ctx, e))?;
    let list: rquickjs::Array = setup.call((charge,)).map_err(|e| caught(ctx, e))?;
    let get = |i: usize| -> Result<Persistent<Function<'static>>, JsError> {
        let f: Function = list.get(i).map_err(engine)?;
        Ok(Persistent::save(ctx, f))
    };
    Ok(Helpers {
        render: get(0)?,
        describe: get(1)?,
        normalize: get(2)?,
        freeze_function: get(3)?,
        spin: get(4)?,
    })
}

fn engine(e: rquickjs::Error) -> JsError {
    JsError::Engine(e.to_string())
}

/// An engine error, with the pending exception's text when there is one.
fn caught(ctx: &Ctx<'_>, e: rquickjs::Error) -> JsError {
    if e.is_exception() {
        let exc = ctx.catch();
        let text = match exc.as_exception() {
            Some(x) => x.to_string(),
            None => format!("{exc:?}"),
        };
        JsError::Engine(format!("realm set-up failed: {text}"))
    } else {
        engine(e)
    }
}
