//! Compile-time checks of function bodies.
//!
//! A body is spliced into source code once, as code (never data): after the checks here prove
//! that it is exactly one function body, it is compiled as
//! `(function _validate(writer, event, instance) {\n<body>\n})`.
//!
//! The proof: in a scratch context, the script `throw 0;\nfunction _validate(…) {\n<body>\n}` is
//! evaluated. Parsing reports syntax errors; the leading `throw` stops it before any statement of
//! the body could run (declarations are only instantiated). If the declared function's source
//! text is then exactly `function _validate(…) {\n<body>\n}`, the body cannot have closed the
//! function early and added code after it, because that text is a suffix of the script and
//! starts right after `throw 0;\n`.

use rquickjs::context::EvalOptions;
use rquickjs::context::intrinsic::{Eval, RegExpCompiler};
use rquickjs::{Context, Runtime, Value};

use super::{FunctionKind, JsError};

/// Message of a compilation that ran out of memory (after a garbage collection).
pub(crate) const COMPILE_OUT_OF_MEMORY: &str = "out of memory";

/// A non-exception engine error while compiling: allocation failures are out of memory.
pub(crate) fn compile_error_of(e: rquickjs::Error) -> JsError {
    match e {
        rquickjs::Error::Allocation => JsError::Compile(COMPILE_OUT_OF_MEMORY.into()),
        other => JsError::Compile(other.to_string()),
    }
}

/// Options for user code: global script, sloppy mode (like go-threads' goja `RunString`).
pub(crate) fn sloppy() -> EvalOptions {
    let mut options = EvalOptions::default();
    options.strict = false;
    options
}

/// Checks that `prepared` (a tab-free body) is exactly one function body of `kind`.
pub(crate) fn syntax_check(
    rt: &Runtime,
    prepared: &str,
    kind: FunctionKind,
) -> Result<(), JsError> {
    if let Some((literal, line)) = find_bigint_literal(prepared) {
        return Err(JsError::Compile(format!(
            "BigInt literals are not supported (`{literal}` on line {line})"
        )));
    }
    let name = kind.function_name();
    let declaration = format!("function {name}({}) {{\n{prepared}\n}}", kind.parameters());
    let scratch = Context::custom::<(Eval, RegExpCompiler)>(rt).map_err(compile_error_of)?;
    scratch.with(|ctx| {
        match ctx.eval_with_options::<Value, _>(format!("throw 0;\n{declaration}"), sloppy()) {
            Ok(_) => return Err(JsError::Compile("the body could not be checked".into())),
            Err(e) if e.is_exception() => {
                let exc = ctx.catch();
                if exc.is_null() {
                    return Err(JsError::Compile(COMPILE_OUT_OF_MEMORY.into()));
                }
                if exc.as_int() != Some(0) {
                    return Err(JsError::Compile(syntax_message(&exc)));
                }
            }
            Err(e) => return Err(compile_error_of(e)),
        }
        let text = ctx.eval_with_options::<String, _>(
            format!("Function.prototype.toString.call({name})"),
            sloppy(),
        );
        let _ = ctx.catch();
        match text {
            Ok(text) if text == declaration => Ok(()),
            _ => Err(JsError::Compile(
                "not a function body (it closes the function early)".into(),
            )),
        }
    })
}

/// "SyntaxError: <message> (line N)", N counted in the body.
fn syntax_message(exc: &Value<'_>) -> String {
    let Some(obj) = exc.as_object() else {
        return format!("{exc:?}");
    };
    let name: String = obj.get("name").unwrap_or_else(|_| "SyntaxError".into());
    let message: String = obj.get("message").unwrap_or_default();
    let stack: String = obj.get("stack").unwrap_or_default();
    if name == "InternalError" && message == "out of memory" {
        return COMPILE_OUT_OF_MEMORY.into();
    }
    // The script has two lines before the body: "throw 0;" and the function header.
    match script_line(&stack)
        .and_then(|l| l.checked_sub(2))
        .filter(|l| *l >= 1)
    {
        Some(line) => format!("{name}: {message} (line {line})"),
        None => format!("{name}: {message}"),
    }
}

fn script_line(stack: &str) -> Option<usize> {
    let rest = &stack[stack.find("eval_script:")? + "eval_script:".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The first token shaped like a BigInt literal (`12n`, `0x1fn`, `1_000n`, …) and its line.
///
/// The scan also looks inside strings, comments and regular expressions, so it can refuse a body
/// that only mentions such text (for example the string "10n"); it never misses a literal.
pub(crate) fn find_bigint_literal(src: &str) -> Option<(&str, usize)> {
    let bytes = src.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'$';
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() && (i == 0 || !word(bytes[i - 1])) {
            let start = i;
            while i < bytes.len() && word(bytes[i]) {
                i += 1;
            }
            // ASCII bytes only, so these are char boundaries.
            let token = &src[start..i];
            if is_bigint_literal(token) {
                return Some((token, src[..start].matches('\n').count() + 1));
            }
        } else {
            i += 1;
        }
    }
    None
}

fn is_bigint_literal(token: &str) -> bool {
    let Some(body) = token.strip_suffix('n') else {
        return false;
    };
    let all = |s: &str, f: fn(&u8) -> bool| !s.is_empty() && s.bytes().all(|b| b == b'_' || f(&b));
    let prefixed = |p: &[&str]| p.iter().find_map(|p| body.strip_prefix(p));
    if let Some(h) = prefixed(&["0x", "0X"]) {
        all(h, u8::is_ascii_hexdigit)
    } else if let Some(o) = prefixed(&["0o", "0O"]) {
        all(o, |b| (b'0'..=b'7').contains(b))
    } else if let Some(b) = prefixed(&["0b", "0B"]) {
        all(b, |b| *b == b'0' || *b == b'1')
    } else {
        all(body, u8::is_ascii_digit)
    }
}

/// [`syntax_check`] in a throw-away runtime.
pub(crate) fn check_standalone(prepared: &str, kind: FunctionKind) -> Result<(), JsError> {
    let rt = Runtime::new().map_err(|e| JsError::Engine(e.to_string()))?;
    rt.set_memory_limit(super::DEFAULT_MEMORY_LIMIT);
    rt.set_max_stack_size(super::DEFAULT_MAX_STACK_SIZE);
    let baseline = super::runtime::live_objects(&rt);
    let result = syntax_check(&rt, prepared, kind);
    super::runtime::dispose(rt, baseline);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bigint_literals_are_found() {
        assert_eq!(find_bigint_literal("return 2n ** 3n"), Some(("2n", 1)));
        assert_eq!(find_bigint_literal("\nx = [0x1Fn]"), Some(("0x1Fn", 2)));
        assert_eq!(find_bigint_literal("x=1_000n"), Some(("1_000n", 1)));
        assert_eq!(find_bigint_literal("x=0b101n+0o7n"), Some(("0b101n", 1)));
        assert_eq!(find_bigint_literal("x=\u{a0}2n"), Some(("2n", 1)));
        assert_eq!(find_bigint_literal("'10n'"), Some(("10n", 1)));
    }

    #[test]
    fn other_tokens_are_not_bigints() {
        for src in [
            "a1n", "x2n", "2nd", "1.5", "0xfg", "\\n1", "$1n", "_2n", "10", "0xn", "n",
        ] {
            assert_eq!(find_bigint_literal(src), None, "{src}");
        }
    }

    #[test]
    fn script_line_is_read_from_the_stack() {
        assert_eq!(script_line("    at eval_script:5:3\n"), Some(5));
        assert_eq!(script_line("no line"), None);
    }
}
