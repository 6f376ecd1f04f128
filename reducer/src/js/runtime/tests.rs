//! Unit tests of the engine's life cycle.

use super::call::truncate;
use super::*;
use crate::js::{MAX_MESSAGE_LEN, PatchType, validator_event};
use serde_json::json;

/// After limits were hit, async work was left behind and functions were released, closing
/// the engine frees every object created since set-up (so dropping it never trips the
/// engine's leak check, and is not turned into a deliberate leak).
#[test]
fn closing_frees_every_object() {
    let config = JsConfig {
        step_budget: 20,
        memory_limit: 8 << 20,
        ..JsConfig::default()
    };
    let mut js = JsRuntime::with_config(config).unwrap();
    let ev = validator_event(
        1,
        "C",
        PatchType::Create,
        "i",
        Some(&json!({"a": [1, "x"]})),
    );
    for body in [
        "return true",
        "for (;;) {}",
        "function f() { return f() } return f()",
        "var a = []; for (;;) a.push([a, {}])",
        "var o = {}; o.o = o; throw o",
        "(async function () { await 1; for (;;) {} })(); return 'left'",
        "var c = []; c.push(c); return new Map([[c, c]])",
        "throw null",
    ] {
        let v = js.compile_validator(body).unwrap();
        let _ = js.validate(&v, Some("w"), &ev, Some(&json!({"b": 1})));
        assert!(js.release_validator(v));
    }
    let f = js
        .compile_read_filter("instance.self = instance; return instance")
        .unwrap();
    let _ = js.filter(&f, None, &json!({}));
    let _ = js.compile_validator("return (");
    js.slots.clear();
    js.helpers = None;
    js.context = None;
    let rt = js.runtime.take().unwrap();
    rt.run_gc();
    let live = live_objects(&rt);
    let baseline = js.baseline_objects;
    if live > baseline {
        std::mem::forget(rt);
    }
    assert!(
        live <= baseline,
        "{live} objects alive after closing, {baseline} after set-up"
    );
}

#[test]
fn truncation_keeps_char_boundaries() {
    let long = "é".repeat(MAX_MESSAGE_LEN);
    let cut = truncate(long);
    assert!(cut.len() <= MAX_MESSAGE_LEN + '…'.len_utf8());
    assert!(cut.ends_with('…'));
    assert_eq!(truncate("short".into()), "short");
}
