//! Read filters: results, failures, and values passing through the engine unchanged.

use std::time::Instant;

use proptest::prelude::*;
use serde_json::{Map, Number, Value, json};
use threads_reducer::js::{
    Denied, FunctionKind, JsError, JsRuntime, MAX_JSON_DEPTH, PatchType, validator_event,
};

fn filtered(body: &str, reader: Option<&str>, instance: &Value) -> Result<Option<Value>, JsError> {
    let mut js = JsRuntime::new().unwrap();
    let f = js.compile_read_filter(body).unwrap();
    js.filter(&f, reader, instance)
}

fn bad(what: &str) -> Result<Option<Value>, JsError> {
    Err(JsError::BadResult {
        kind: FunctionKind::ReadFilter,
        what: what.into(),
    })
}

#[test]
fn objects_replace_and_null_or_undefined_hide() {
    let doc = json!({"_id": "a", "name": "Alice", "secret": "s3", "age": 31});
    let redact = "delete instance.secret; instance.seenBy = reader; return instance";
    assert_eq!(
        filtered(redact, Some("bbaareader"), &doc),
        Ok(Some(
            json!({"_id": "a", "name": "Alice", "age": 31, "seenBy": "bbaareader"})
        ))
    );
    // No token: reader is undefined, and undefined members vanish from JSON.
    assert_eq!(
        filtered(redact, None, &doc),
        Ok(Some(json!({"_id": "a", "name": "Alice", "age": 31})))
    );
    assert_eq!(filtered("return null", Some("r"), &doc), Ok(None));
    assert_eq!(filtered("return undefined", Some("r"), &doc), Ok(None));
    assert_eq!(filtered("", Some("r"), &doc), Ok(None));
    let owner_only = "if (instance.owner !== reader) return null; return instance";
    let owned = json!({"_id": "b", "owner": "bob"});
    assert_eq!(
        filtered(owner_only, Some("bob"), &owned),
        Ok(Some(owned.clone()))
    );
    assert_eq!(filtered(owner_only, Some("eve"), &owned), Ok(None));
    assert_eq!(
        filtered(
            "return {id: instance._id, n: NaN, f: function () {}, d: undefined}",
            None,
            &doc
        ),
        Ok(Some(json!({"id": "a", "n": null})))
    );
    assert_eq!(
        filtered(
            "return {toJSON: function () { return {via: 'toJSON'} }}",
            None,
            &doc
        ),
        Ok(Some(json!({"via": "toJSON"})))
    );
    assert_eq!(
        filtered("return new Error('e')", None, &doc),
        Ok(Some(json!({})))
    );
}

#[test]
fn other_results_are_errors() {
    let doc = json!({"_id": "a"});
    assert_eq!(filtered("return true", None, &doc), bad("a boolean"));
    assert_eq!(filtered("return false", None, &doc), bad("a boolean"));
    assert_eq!(filtered("return 3", None, &doc), bad("a number"));
    assert_eq!(filtered("return 'x'", None, &doc), bad("a string"));
    assert_eq!(filtered("return [instance]", None, &doc), bad("an array"));
    assert_eq!(
        filtered("return function () {}", None, &doc),
        bad("a function")
    );
    assert_eq!(filtered("return Symbol()", None, &doc), bad("a symbol"));
    assert_eq!(
        filtered(
            "return (async function () { return instance })()",
            None,
            &doc
        ),
        bad("a promise (async filters are not supported)")
    );
    assert_eq!(
        filtered("return {toJSON: function () { return 5 }}", None, &doc),
        bad("an object whose JSON form is not an object")
    );
    let err = filtered("var o = {}; o.o = o; return o", None, &doc).unwrap_err();
    assert!(matches!(err, JsError::Threw { .. }), "{err:?}");
    let err = filtered("return {['\\ud800']: 1}", None, &doc).unwrap_err();
    assert!(matches!(err, JsError::BadResult { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "read filter returned an object that is not JSON (a string is not valid Unicode (lone \
         surrogate)); expected an object, null or undefined"
    );
}

#[test]
fn throwing_filters_report_and_do_not_poison_the_engine() {
    let mut js = JsRuntime::new().unwrap();
    let boom = js.compile_read_filter("return instance.a.b.c").unwrap();
    let ok = js.compile_read_filter("return instance").unwrap();
    let doc = json!({"x": 1});
    for _ in 0..3 {
        let err = js.filter(&boom, None, &doc).unwrap_err();
        assert!(
            err.to_string().starts_with("read filter threw: TypeError"),
            "{err}"
        );
        assert_eq!(js.filter(&ok, None, &doc), Ok(Some(doc.clone())));
    }
    let v = js.compile_validator("return true").unwrap();
    let ev = validator_event(1, "C", PatchType::Create, "i", None);
    let stale = js.compile_read_filter("return instance").unwrap();
    assert!(js.release_read_filter(stale));
    assert_eq!(js.filter(&stale, None, &doc), Err(JsError::UnknownFunction));
    assert_eq!(js.validate(&v, None, &ev, None), Ok(()));
}

#[test]
fn deep_inputs_are_refused_not_crashed() {
    let mut deep = json!(1);
    for _ in 0..=MAX_JSON_DEPTH {
        deep = json!({"k": deep});
    }
    let err = filtered("return instance", None, &deep).unwrap_err();
    assert!(matches!(err, JsError::Input { .. }), "{err:?}");
    let mut js = JsRuntime::new().unwrap();
    let v = js.compile_validator("return true").unwrap();
    let ev = validator_event(1, "C", PatchType::Save, "i", Some(&deep));
    let denied = js.validate(&v, None, &ev, None).unwrap_err();
    assert!(
        matches!(denied, Denied::Error(JsError::Input { .. })),
        "{denied:?}"
    );
    assert!(
        denied
            .to_string()
            .starts_with("app denied net record body: invalid validator input")
    );
    // Just inside the limit is fine.
    let mut ok = json!(1);
    for _ in 0..MAX_JSON_DEPTH - 2 {
        ok = json!([ok]);
    }
    let f = js.compile_read_filter("return {v: instance}").unwrap();
    assert_eq!(js.filter(&f, None, &json!(ok)), Ok(Some(json!({"v": ok}))));
    // A result built deeper than the limit is refused.
    let f = js
        .compile_read_filter("var o = {}; for (var i = 0; i < 300; i++) o = {o: o}; return o")
        .unwrap();
    assert!(matches!(
        js.filter(&f, None, &json!({})),
        Err(JsError::BadResult { .. })
    ));
}

#[test]
fn numbers_follow_javascript() {
    let doc = json!({
        "small": 42, "neg": -7, "float": 0.1, "safe": 9_007_199_254_740_991u64,
        "big": 18_446_744_073_709_551_615u64, "exp": 1e300, "whole": 2.0
    });
    let out = filtered("return instance", None, &doc).unwrap().unwrap();
    assert_eq!(out["small"], json!(42));
    assert_eq!(out["neg"], json!(-7));
    assert_eq!(out["float"], json!(0.1));
    assert_eq!(out["safe"], json!(9_007_199_254_740_991u64));
    // Beyond 2^53 integers are rounded to the nearest double (as in any JavaScript engine).
    assert_eq!(out["big"], json!(1.8446744073709552e19));
    assert_eq!(out["exp"], json!(1e300));
    // JavaScript has one number type: an integral double comes back as an integer.
    assert_eq!(out["whole"], json!(2));
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\"'\\\u{0}\u{2028}_$a-c0-9]{0,6}".prop_map(String::from)
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-(1i64 << 53)..=(1i64 << 53)).prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite, not integral", |f| f.is_finite()
                && f.fract() != 0.0)
            .prop_map(|f| Value::Number(Number::from_f64(f).unwrap())),
        any::<String>().prop_map(Value::String),
        "[\"'\\\\\u{2028}\u{2029}\u{0}-\u{1f}a-z😀]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn identity_filter_round_trips_json(members in prop::collection::btree_map(key(), json_value(), 0..6)) {
        thread_local! {
            static JS: std::cell::RefCell<Option<(JsRuntime, threads_reducer::js::ReadFilter)>> =
                const { std::cell::RefCell::new(None) };
        }
        let doc = Value::Object(members.into_iter().collect());
        let out = JS.with(|cell| {
            let mut cell = cell.borrow_mut();
            let (js, f) = cell.get_or_insert_with(|| {
                let mut js = JsRuntime::new().unwrap();
                let f = js.compile_read_filter("return instance").unwrap();
                (js, f)
            });
            js.filter(f, Some("reader"), &doc)
        });
        prop_assert_eq!(out, Ok(Some(doc)));
    }
}

/// Calls per second (printed, not asserted): run with
/// `cargo test --release -p threads-reducer --test js_filters -- --nocapture throughput`.
#[test]
fn throughput() {
    let mut js = JsRuntime::new().unwrap();
    let v = js
        .compile_validator(
            "var type = event.patch.type; var patch = event.patch.json_patch;
             if (type === 'delete') return writer === 'the_boss';
             return patch.name !== 'Bad' && (patch.age === undefined || patch.age < 150);",
        )
        .unwrap();
    let f = js
        .compile_read_filter(
            "if (instance.owner !== reader) return null; delete instance.secret; return instance",
        )
        .unwrap();
    let patch = json!({"_id": "01h2xcejqtf2nbrexx3vqjhp41", "name": "Alice", "age": 31, "_mod": 1});
    let ev = validator_event(
        1_700_000_000_000_000_000,
        "Person",
        PatchType::Save,
        "01h2x",
        Some(&patch),
    );
    let doc = json!({"_id": "01h2xcejqtf2nbrexx3vqjhp41", "name": "Alice", "age": 31, "owner": "r", "secret": 1});
    let n = 20_000;
    let start = Instant::now();
    for _ in 0..n {
        assert_eq!(js.validate(&v, Some("writer"), &ev, Some(&doc)), Ok(()));
    }
    let per_validate = start.elapsed() / n;
    let start = Instant::now();
    for _ in 0..n {
        assert!(js.filter(&f, Some("r"), &doc).unwrap().is_some());
    }
    let per_filter = start.elapsed() / n;
    let start = Instant::now();
    let mut fresh = 0;
    while start.elapsed().as_millis() < 200 {
        let _ = JsRuntime::new().unwrap();
        fresh += 1;
    }
    let per_runtime = start.elapsed() / fresh;
    let start = Instant::now();
    for i in 0..200 {
        let v = js
            .compile_validator(&format!("return event.patch.json_patch.age < {i}"))
            .unwrap();
        js.release_validator(v);
    }
    let per_compile = start.elapsed() / 200;
    println!(
        "validate: {per_validate:?}/call ({:.0}/s); filter: {per_filter:?}/call ({:.0}/s); \
         compile: {per_compile:?}; new runtime: {per_runtime:?}",
        1.0 / per_validate.as_secs_f64(),
        1.0 / per_filter.as_secs_f64()
    );
}
