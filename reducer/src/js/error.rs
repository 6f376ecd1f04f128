//! Errors of the JavaScript engine and the validator verdict.

use super::FunctionKind;

/// Why compiling or running a body failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JsError {
    /// The body does not compile as a function body (syntax error, or it closes the function
    /// early). Reported at collection create/update.
    #[error("compiling js func: {0}")]
    Compile(String),
    /// The call threw an exception that it did not catch; `message` is its rendering
    /// (`String(error)` for `Error` objects, see `spec/validators.md`).
    #[error("{kind} threw: {message}")]
    Threw {
        /// Validator or read filter.
        kind: FunctionKind,
        /// Rendering of the exception, at most [`super::MAX_MESSAGE_LEN`] bytes.
        message: String,
    },
    /// The call needed more than the step budget.
    #[error("{kind} exceeded its step budget of {budget} steps")]
    StepBudget {
        /// Validator or read filter.
        kind: FunctionKind,
        /// The budget, in steps.
        budget: u64,
    },
    /// The engine heap reached its memory limit during the call.
    #[error("{kind} ran out of memory (limit {limit} bytes)")]
    OutOfMemory {
        /// Validator or read filter.
        kind: FunctionKind,
        /// The memory limit, in bytes.
        limit: usize,
    },
    /// The call recursed deeper than the stack limit allows.
    #[error("{kind} exceeded the maximum call stack size")]
    StackOverflow {
        /// Validator or read filter.
        kind: FunctionKind,
    },
    /// A read filter returned something other than an object, `null` or `undefined`, or an
    /// object that does not convert to JSON.
    #[error("{kind} returned {what}; expected an object, null or undefined")]
    BadResult {
        /// Validator or read filter.
        kind: FunctionKind,
        /// What was returned, e.g. "a number".
        what: String,
    },
    /// An argument could not be passed (for example nested deeper than
    /// [`super::MAX_JSON_DEPTH`]).
    #[error("invalid {kind} input: {reason}")]
    Input {
        /// Validator or read filter.
        kind: FunctionKind,
        /// What is wrong.
        reason: String,
    },
    /// The handle was released, or belongs to another [`super::JsRuntime`].
    #[error("unknown js function handle")]
    UnknownFunction,
    /// The engine itself failed (for example it could not allocate its realm).
    #[error("js engine error: {0}")]
    Engine(String),
}

/// A validator's rejection of an event. Its text always starts with
/// [`Denied::MESSAGE`], the substring go-threads clients look for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The validator returned `false`, `null` or `undefined`.
    #[error("app denied net record body")]
    Rejected,
    /// The validator returned another value (not `true`); the text is its rendering: strings as
    /// they are, other values as JSON or `String(value)`, at most [`super::MAX_MESSAGE_LEN`] bytes.
    #[error("app denied net record body: {0}")]
    Value(String),
    /// The validator could not reach a verdict (it threw, ran out of steps, memory or stack, or
    /// the input could not be passed).
    #[error("app denied net record body: {0}")]
    Error(JsError),
}

impl Denied {
    /// The message every rejection starts with (go-threads' `app.ErrInvalidNetRecordBody`).
    pub const MESSAGE: &'static str = "app denied net record body";
}
