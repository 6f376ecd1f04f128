//! The JavaScript engine for write validators and read filters.
//!
//! Collections may carry two JavaScript **function bodies** (go-threads' calling convention, see
//! `spec/validators.md`):
//!
//! * a write validator, run as `function _validate(writer, event, instance) { <body> }` for every
//!   event of a write; `true` accepts, anything else rejects with "app denied net record body";
//! * a read filter, run as `function _filter(reader, instance) { <body> }` for every instance
//!   read; an object replaces the instance, `null`/`undefined` hide it.
//!
//! Bodies run in one embedded QuickJS engine per [`JsRuntime`], in a realm that is frozen after
//! set-up and has no clock, no randomness, no timers and no host access, so a call depends only on
//! the body and its arguments. Arguments are passed as engine values (JSON is parsed by the engine
//! from a separate buffer), never spliced into source code (go-threads #453). Each call runs under
//! a deterministic step budget (counted work, not wall time), a memory limit and a stack limit;
//! the [`JsConfig`] documents the defaults.
//!
//! Like go-threads, every tab character is removed from a body before it is compiled
//! ([`prepare_body`]): a tab inside a string literal disappears, and tabs must not be the only
//! separator between two tokens.

mod compile;
mod convert;
mod error;
mod event;
mod meter;
mod realm;
mod runtime;

pub use error::{Denied, JsError};
pub use event::{PatchType, validator_event};
pub use runtime::{JsRuntime, ReadFilter, Validator};

use std::fmt;

/// Work units in one step. QuickJS calls the interrupt handler once every 10,000 "poll points"
/// (function calls, backward jumps, some per-element loops in built-ins, regular expression
/// backtracking); each call of the handler is one step. Bulk built-ins add one unit per element
/// they process (see `spec/validators.md`).
pub const UNITS_PER_STEP: u64 = 10_000;

/// Default step budget per call: 1,000 steps (10 million units). A simple `for` loop uses two
/// units per iteration, so this allows about 5 million iterations; exhausting it takes 50–150 ms
/// of CPU in a release build (measured), twice that with the deciding rerun.
pub const DEFAULT_STEP_BUDGET: u64 = 1_000;

/// Default memory limit of one [`JsRuntime`], for the whole engine heap (the frozen realm itself
/// takes about 300 KiB): 32 MiB.
pub const DEFAULT_MEMORY_LIMIT: usize = 32 << 20;

/// Default limit of the native stack used by JavaScript code: 512 KiB, about 800 nested calls in
/// a release build (measured; the depth depends on the build).
pub const DEFAULT_MAX_STACK_SIZE: usize = 512 << 10;

/// Deepest JSON nesting accepted in arguments and results (arrays and objects).
pub const MAX_JSON_DEPTH: usize = 256;

/// Longest rendering of a rejected value or exception kept in an error message, in bytes.
pub const MAX_MESSAGE_LEN: usize = 1024;

/// Limits of a [`JsRuntime`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JsConfig {
    /// Steps one call may use (one step = [`UNITS_PER_STEP`] work units). A call that needs more
    /// fails with [`JsError::StepBudget`], the same way on every machine running the same engine
    /// version.
    pub step_budget: u64,
    /// Bytes the whole engine heap may use (realm, compiled functions and the running call);
    /// 0 means no limit.
    pub memory_limit: usize,
    /// Bytes of native stack JavaScript code may use; the calling thread needs this much free
    /// stack plus about 128 KiB. 0 disables the check (deep recursion then crashes: do not).
    pub max_stack_size: usize,
}

impl Default for JsConfig {
    fn default() -> Self {
        JsConfig {
            step_budget: DEFAULT_STEP_BUDGET,
            memory_limit: DEFAULT_MEMORY_LIMIT,
            max_stack_size: DEFAULT_MAX_STACK_SIZE,
        }
    }
}

/// Which of the two go-threads function kinds a body is compiled as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FunctionKind {
    /// A write validator: `function _validate(writer, event, instance)`.
    Validator,
    /// A read filter: `function _filter(reader, instance)`.
    ReadFilter,
}

impl FunctionKind {
    /// The function name go-threads gives the compiled body.
    pub fn function_name(self) -> &'static str {
        match self {
            FunctionKind::Validator => "_validate",
            FunctionKind::ReadFilter => "_filter",
        }
    }

    /// The parameter list, as written in the compiled source.
    pub fn parameters(self) -> &'static str {
        match self {
            FunctionKind::Validator => "writer, event, instance",
            FunctionKind::ReadFilter => "reader, instance",
        }
    }
}

impl fmt::Display for FunctionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FunctionKind::Validator => "validator",
            FunctionKind::ReadFilter => "read filter",
        })
    }
}

/// Removes every tab character from a body, as go-threads does before compiling.
pub fn prepare_body(body: &str) -> String {
    body.replace('\t', "")
}

/// Checks that `body` (after [`prepare_body`]) compiles as a function body of `kind`, without
/// running any of it. Errors read "compiling js func: …".
///
/// This builds a throw-away engine (about a tenth of a millisecond); with a [`JsRuntime`] at
/// hand, [`JsRuntime::check_syntax`] is cheaper.
pub fn check_syntax(body: &str, kind: FunctionKind) -> Result<(), JsError> {
    compile::check_standalone(&prepare_body(body), kind)
}
