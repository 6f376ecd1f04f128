//! Write validators: calling convention, verdicts, values passed as values, compile checks.

use serde_json::{Value, json};
use threads_reducer::js::{
    Denied, FunctionKind, JsError, JsRuntime, PatchType, check_syntax, prepare_body,
    validator_event,
};

fn event(kind: PatchType, patch: Option<Value>) -> Value {
    validator_event(
        1_600_000_000_000_000_000,
        "Person",
        kind,
        "inst1",
        patch.as_ref(),
    )
}

fn verdict(
    body: &str,
    writer: Option<&str>,
    ev: &Value,
    inst: Option<&Value>,
) -> Result<(), Denied> {
    let mut js = JsRuntime::new().expect("engine");
    let v = js.compile_validator(body).expect("compiles");
    js.validate(&v, writer, ev, inst)
}

/// The kind of body the JS client sends: a function's text without its header (tabs included).
const UPSTREAM_STYLE: &str = "
\tvar type = event.patch.type
\tvar patch = event.patch.json_patch
\tswitch (type) {
\t\tcase \"delete\":
\t\t\tif (writer != \"the_boss\") {
\t\t\t\treturn false // Not the boss? No deletes for you.
\t\t\t}
\t\tdefault:
\t\t\treturn true
\t}
";

#[test]
fn upstream_style_validator_reads_patch_type_and_writer() {
    let mut js = JsRuntime::new().unwrap();
    let v = js.compile_validator(UPSTREAM_STYLE).unwrap();
    let create = event(
        PatchType::Create,
        Some(json!({"_id": "inst1", "name": "Bob", "age": 30})),
    );
    assert_eq!(js.validate(&v, Some("anyone"), &create, None), Ok(()));
    let delete = event(PatchType::Delete, None);
    let doc = json!({"_id": "inst1", "name": "Bob"});
    assert_eq!(
        js.validate(&v, Some("anyone"), &delete, Some(&doc)),
        Err(Denied::Rejected)
    );
    assert_eq!(
        js.validate(&v, Some("the_boss"), &delete, Some(&doc)),
        Ok(())
    );
    // No token (Verify): writer is undefined.
    assert_eq!(
        js.validate(&v, None, &delete, Some(&doc)),
        Err(Denied::Rejected)
    );
}

#[test]
fn upstream_style_validator_reads_name_and_age() {
    let body = "
        var patch = event.patch.json_patch;
        if (event.patch.type === 'delete') return true;
        if (patch.name === 'Bad') return false;
        if (patch.age !== undefined && patch.age > 50) return 'too old: ' + patch.age;
        return true;";
    let mut js = JsRuntime::new().unwrap();
    let v = js.compile_validator(body).unwrap();
    let save = |p: Value| event(PatchType::Save, Some(p));
    assert_eq!(
        js.validate(&v, Some("w"), &save(json!({"age": 20, "_mod": 5})), None),
        Ok(())
    );
    assert_eq!(
        js.validate(&v, Some("w"), &save(json!({"name": "Bad"})), None),
        Err(Denied::Rejected)
    );
    let old = js
        .validate(&v, Some("w"), &save(json!({"age": 51})), None)
        .unwrap_err();
    assert_eq!(old, Denied::Value("too old: 51".into()));
    assert_eq!(old.to_string(), "app denied net record body: too old: 51");
    assert_eq!(
        js.validate(&v, Some("w"), &event(PatchType::Delete, None), None),
        Ok(())
    );
}

#[test]
fn arguments_have_the_go_threads_shape() {
    let body = "return JSON.stringify([typeof writer, writer, event, typeof instance, instance]);";
    let ev = event(PatchType::Create, Some(json!({"_id": "inst1", "n": 1})));
    let doc = json!({"_id": "inst1", "n": 0});
    let Err(Denied::Value(text)) = verdict(body, Some("bbaareia"), &ev, Some(&doc)) else {
        panic!("expected a rendered value");
    };
    let seen: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(seen, json!(["string", "bbaareia", ev, "object", doc]));
    let Err(Denied::Value(text)) = verdict(body, None, &ev, None) else {
        panic!()
    };
    let seen: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(seen, json!(["undefined", null, ev, "undefined", null]));
    assert_eq!(
        ev["patch"],
        json!({"type": "create", "instance_id": "inst1", "json_patch": {"_id": "inst1", "n": 1}})
    );
}

#[test]
fn results_map_to_verdicts() {
    let ev = event(PatchType::Create, Some(json!({})));
    let cases: Vec<(&str, Result<(), Denied>)> = vec![
        ("return true", Ok(())),
        ("return false", Err(Denied::Rejected)),
        ("return null", Err(Denied::Rejected)),
        ("return undefined", Err(Denied::Rejected)),
        ("", Err(Denied::Rejected)),
        ("return 'no way'", Err(Denied::Value("no way".into()))),
        ("return ''", Err(Denied::Value(String::new()))),
        ("return 0", Err(Denied::Value("0".into()))),
        ("return 1.5", Err(Denied::Value("1.5".into()))),
        ("return NaN", Err(Denied::Value("NaN".into()))),
        (
            "return {a: [1, 'x']}",
            Err(Denied::Value(r#"{"a":[1,"x"]}"#.into())),
        ),
        ("return [true]", Err(Denied::Value("[true]".into()))),
        (
            "return new Boolean(true)",
            Err(Denied::Value("true".into())),
        ),
        ("return Symbol('s')", Err(Denied::Value("Symbol(s)".into()))),
        (
            "return function () {}",
            Err(Denied::Value("function".into())),
        ),
        (
            "var o = {}; o.o = o; return o",
            Err(Denied::Value("[object that cannot be rendered]".into())),
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(
            verdict(body, Some("w"), &ev, None),
            expected,
            "body: {body}"
        );
    }
    assert_eq!(Denied::Rejected.to_string(), Denied::MESSAGE);
}

#[test]
fn long_renderings_are_truncated() {
    let ev = event(PatchType::Create, None);
    let Err(Denied::Value(text)) = verdict("return 'é'.repeat(5000)", None, &ev, None) else {
        panic!()
    };
    assert!(text.len() <= threads_reducer::js::MAX_MESSAGE_LEN + '…'.len_utf8());
    assert!(text.ends_with('…'));
}

#[test]
fn exceptions_deny_with_their_text() {
    let ev = event(PatchType::Create, Some(json!({})));
    let denied = verdict(
        "return event.patch.json_patch.missing.field",
        None,
        &ev,
        None,
    )
    .unwrap_err();
    let text = denied.to_string();
    assert!(
        text.starts_with("app denied net record body: validator threw: TypeError:"),
        "{text}"
    );
    let denied = verdict("throw new Error('custom')", None, &ev, None).unwrap_err();
    assert_eq!(
        denied.to_string(),
        "app denied net record body: validator threw: Error: custom"
    );
    let denied = verdict("throw {code: 7}", None, &ev, None).unwrap_err();
    assert_eq!(
        denied.to_string(),
        r#"app denied net record body: validator threw: {"code":7}"#
    );
    let denied = verdict("throw 'plain'", None, &ev, None).unwrap_err();
    assert_eq!(
        denied.to_string(),
        "app denied net record body: validator threw: plain"
    );
    let denied = verdict("throw null", None, &ev, None).unwrap_err();
    assert_eq!(
        denied.to_string(),
        "app denied net record body: validator threw: null (or the engine ran out of memory)"
    );
    let denied = verdict("throw undefined", None, &ev, None).unwrap_err();
    assert_eq!(
        denied.to_string(),
        "app denied net record body: validator threw: undefined"
    );
    // A custom error class assigning `this.name` works on the frozen realm.
    let body = "class MyError extends Error { constructor(m) { super(m); this.name = 'MyError'; } }
                throw new MyError('mine');";
    let denied = verdict(body, None, &ev, None).unwrap_err();
    assert_eq!(
        denied.to_string(),
        "app denied net record body: validator threw: MyError: mine"
    );
    // A caught exception does not deny.
    assert_eq!(
        verdict("try { null.x } catch (e) { return true }", None, &ev, None),
        Ok(())
    );
}

#[test]
fn data_is_passed_as_values_never_as_source() {
    // go-threads #453: quotes, backslashes and line separators in data broke validation.
    let tricky = "O'Brien \"x\" \\ \\' \u{2028} \u{2029} </script> ${1} `tick` \n\t é 😀";
    let writer = "'); throw new Error('injected'); ('";
    let body = "return event.patch.json_patch.name === instance.name
                    && writer.length > 0
                    && event.collection_name === \"Person\" ? true : event.patch.json_patch.name;";
    let ev = event(PatchType::Save, Some(json!({"name": tricky})));
    let doc = json!({"name": tricky, "nested": {"k\"ey": [tricky]}});
    assert_eq!(verdict(body, Some(writer), &ev, Some(&doc)), Ok(()));
    // The value comes back unchanged too.
    let echo = verdict("return event.patch.json_patch.name", None, &ev, None).unwrap_err();
    assert_eq!(echo, Denied::Value(tricky.into()));
    let echo = verdict("return writer", Some(writer), &ev, None).unwrap_err();
    assert_eq!(echo, Denied::Value(writer.into()));
}

#[test]
fn tabs_are_removed_before_compiling() {
    assert_eq!(prepare_body("\treturn\t1\t"), "return1");
    let ev = event(PatchType::Create, None);
    // A tab inside a string literal disappears, as in go-threads.
    assert_eq!(verdict("return 'a\tb' === 'ab'", None, &ev, None), Ok(()));
    // A tab as the only separator glues tokens together: `returntrue` is an unknown variable.
    let denied = verdict("return\ttrue", None, &ev, None).unwrap_err();
    assert!(denied.to_string().contains("ReferenceError"), "{denied}");
}

#[test]
fn compile_errors_are_reported_at_definition() {
    let mut js = JsRuntime::new().unwrap();
    let err = js.compile_validator("return (").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("compiling js func: SyntaxError"),
        "{err}"
    );
    let err = js.compile_validator("var ok = 1;\nvar x = ;").unwrap_err();
    assert!(err.to_string().contains("(line 2)"), "{err}");
    assert!(matches!(
        js.compile_read_filter("}{"),
        Err(JsError::Compile(_))
    ));
    assert!(
        check_syntax(
            "return writer && event && instance",
            FunctionKind::Validator
        )
        .is_ok()
    );
    assert!(check_syntax("return {", FunctionKind::ReadFilter).is_err());
    assert!(
        js.check_syntax("return reader", FunctionKind::ReadFilter)
            .is_ok()
    );
    // Deeply nested source is refused by the parser, not a crash.
    let nested = format!("return {}1{}", "(".repeat(100_000), ")".repeat(100_000));
    let err = js.compile_validator(&nested).unwrap_err();
    assert!(matches!(err, JsError::Compile(_)), "{err:?}");
    let nested = format!("return /{}a{}/", "(".repeat(100_000), ")".repeat(100_000));
    assert!(matches!(
        js.compile_validator(&nested),
        Err(JsError::Compile(_))
    ));
    // A trailing line comment does not swallow the closing brace.
    assert!(js.compile_validator("return true // done").is_ok());
    // ES5 and later syntax.
    let modern = "const {patch} = event; let n = [1, 2, 3].map(x => x * 2).reduce((a, b) => a + b);
                  class A { #p = 1; get p() { return this.#p; } }
                  return patch?.type === 'create' && n === 12 && new A().p === 1 && `${n}` === '12';";
    let v = js.compile_validator(modern).unwrap();
    assert_eq!(
        js.validate(&v, None, &event(PatchType::Create, None), None),
        Ok(())
    );
}

#[test]
fn bodies_cannot_escape_the_function() {
    let mut js = JsRuntime::new().unwrap();
    for body in [
        "}); (function () { throw new Error('ran at compile time')",
        "} function _validate(writer, event, instance) { return true",
        "}\nfunction other() {",
        "} let leaked = 1; {",
    ] {
        let err = js.compile_validator(body).unwrap_err();
        assert!(matches!(err, JsError::Compile(_)), "{body}: {err}");
    }
    assert_eq!(js.function_count(), 0);
}

#[test]
fn bigint_literals_are_refused() {
    let err = check_syntax("return 2n ** 100000n > 1n", FunctionKind::Validator).unwrap_err();
    assert_eq!(
        err.to_string(),
        "compiling js func: BigInt literals are not supported (`2n` on line 1)"
    );
    assert!(
        check_syntax(
            "return typeof BigInt === 'undefined'",
            FunctionKind::Validator
        )
        .is_ok()
    );
}

#[test]
fn handles_are_checked() {
    let mut js = JsRuntime::new().unwrap();
    let mut other = JsRuntime::new().unwrap();
    let v = js.compile_validator("return true").unwrap();
    let ev = event(PatchType::Create, None);
    assert!(matches!(
        other.validate(&v, None, &ev, None),
        Err(Denied::Error(JsError::UnknownFunction))
    ));
    assert!(!other.release_validator(v));
    assert_eq!(js.function_count(), 1);
    assert!(js.release_validator(v));
    assert!(!js.release_validator(v));
    assert!(matches!(
        js.validate(&v, None, &ev, None),
        Err(Denied::Error(JsError::UnknownFunction))
    ));
    // The slot is reused; the stale handle stays invalid.
    let w = js.compile_validator("return false").unwrap();
    assert_ne!(v, w);
    assert!(matches!(
        js.validate(&v, None, &ev, None),
        Err(Denied::Error(JsError::UnknownFunction))
    ));
    assert_eq!(js.validate(&w, None, &ev, None), Err(Denied::Rejected));
    let f = other.compile_read_filter("return instance").unwrap();
    assert!(other.release_read_filter(f));
}

#[test]
fn many_collections_share_one_runtime() {
    let mut js = JsRuntime::new().unwrap();
    let ev = event(PatchType::Create, Some(json!({"n": 3})));
    let validators: Vec<_> = (0..50)
        .map(|i| {
            js.compile_validator(&format!("return event.patch.json_patch.n < {i}"))
                .unwrap()
        })
        .collect();
    for (i, v) in validators.iter().enumerate() {
        let expected = if 3 < i { Ok(()) } else { Err(Denied::Rejected) };
        assert_eq!(js.validate(v, None, &ev, None), expected);
    }
}

#[test]
fn realm_is_frozen_between_calls() {
    let mut js = JsRuntime::new().unwrap();
    let ev = event(PatchType::Create, None);
    // Each attempt to keep state across calls fails or is refused; the verdict never changes.
    let bodies = [
        "globalThis.count = (globalThis.count || 0) + 1; return globalThis.count === 1",
        "count2 = (typeof count2 === 'number' ? count2 : 0) + 1; return true",
        "Array.prototype.extra = 1; return true",
        "Object.prototype.toString = function () { return 'x' }; return true",
        "JSON.parse = function () { return 1 }; return true",
        "_validate.state = 1; return true",
        "Math.pi2 = 6; return true",
    ];
    for body in bodies {
        let v = js.compile_validator(body).unwrap();
        let first = js.validate(&v, None, &ev, None);
        for _ in 0..3 {
            assert_eq!(js.validate(&v, None, &ev, None), first, "{body}");
        }
    }
    let check = js
        .compile_validator(
            "return typeof count === 'undefined' && typeof count2 === 'undefined'
                && [].extra === undefined && ({}).toString() === '[object Object]'
                && JSON.parse('1') === 1 && Math.pi2 === undefined",
        )
        .unwrap();
    assert_eq!(js.validate(&check, None, &ev, None), Ok(()));
    // Ordinary code can still shadow inherited names on its own objects.
    let own = js
        .compile_validator(
            "var o = {}; o.toString = function () { return 'mine' }; o.constructor = 1;
             return String(o) === 'mine' && o.constructor === 1",
        )
        .unwrap();
    assert_eq!(js.validate(&own, None, &ev, None), Ok(()));
}

#[test]
fn nondeterministic_globals_are_absent() {
    let ev = event(PatchType::Create, None);
    let body = "return [typeof Date, typeof Math.random, typeof setTimeout, typeof setInterval,
                        typeof performance, typeof eval, typeof WeakRef, typeof FinalizationRegistry,
                        typeof queueMicrotask, typeof Atomics, typeof SharedArrayBuffer,
                        typeof BigInt, typeof Proxy, typeof require, typeof process].join();";
    let all_undefined = vec!["undefined"; 15].join(",");
    assert_eq!(
        verdict(body, None, &ev, None),
        Err(Denied::Value(all_undefined))
    );
    let denied = verdict("return new Date().getTime() > 0", None, &ev, None).unwrap_err();
    assert!(denied.to_string().contains("ReferenceError"), "{denied}");
    let denied = verdict("return Math.random() < 2", None, &ev, None).unwrap_err();
    assert!(denied.to_string().contains("TypeError"), "{denied}");
    // No code generation from strings.
    let denied = verdict("return Function('return 1')() === 1", None, &ev, None).unwrap_err();
    assert!(denied.to_string().contains("code generation"), "{denied}");
    let denied = verdict(
        "return (function(){}).constructor('return 1')()",
        None,
        &ev,
        None,
    )
    .unwrap_err();
    assert!(denied.to_string().contains("code generation"), "{denied}");
    assert_eq!(
        verdict(
            "return (function () {}) instanceof Function",
            None,
            &ev,
            None
        ),
        Ok(())
    );
}

#[test]
fn async_bodies_do_not_leak_work() {
    let mut js = JsRuntime::new().unwrap();
    let ev = event(PatchType::Create, None);
    let v = js
        .compile_validator("(async function () { await 1; for (;;) {} })(); return true")
        .unwrap();
    for _ in 0..3 {
        assert_eq!(js.validate(&v, None, &ev, None), Ok(()));
    }
    let p = js
        .compile_validator("return (async function () { return true })()")
        .unwrap();
    assert_eq!(
        js.validate(&p, None, &ev, None),
        Err(Denied::Value("{}".into()))
    );
}
