//! Step budget, memory and stack limits: every runaway body ends with a clear error, the same
//! way every time, and the engine stays usable.

use std::time::Instant;

use serde_json::{Value, json};
use threads_reducer::js::{
    DEFAULT_STEP_BUDGET, Denied, FunctionKind, JsConfig, JsError, JsRuntime, PatchType,
    UNITS_PER_STEP, validator_event,
};

fn ev() -> Value {
    validator_event(1, "C", PatchType::Create, "i", Some(&json!({"n": 0})))
}

fn error_of(js: &mut JsRuntime, body: &str) -> JsError {
    let v = js.compile_validator(body).expect("compiles");
    match js.validate(&v, None, &ev(), None) {
        Err(Denied::Error(e)) => e,
        other => panic!("{body}: expected an engine error, got {other:?}"),
    }
}

fn budget(steps: u64) -> JsRuntime {
    JsRuntime::with_config(JsConfig {
        step_budget: steps,
        ..JsConfig::default()
    })
    .unwrap()
}

#[test]
fn infinite_loops_exhaust_the_budget() {
    let mut js = budget(20);
    for body in [
        "for (;;) {}",
        "while (true) { var x = 1 }",
        "var f = function () { return f() + 1 }; for (;;) { try { f() } catch (e) {} }",
        "for (;;) { try { for (;;) {} } catch (e) {} finally { continue } }",
        "function* g() { for (;;) yield 1 } for (const x of g()) {}",
        "var s = new Set([1]); for (const x of s) { s.delete(x); s.add(x + 1) }",
        "/(a+a+)+b/.test('a'.repeat(40))",
        "var o = {}; for (;;) { for (var k in o) {} }",
    ] {
        let err = error_of(&mut js, body);
        assert_eq!(
            err,
            JsError::StepBudget {
                kind: FunctionKind::Validator,
                budget: 20
            },
            "{body}"
        );
    }
    assert_eq!(
        error_of(&mut js, "for (;;) {}").to_string(),
        "validator exceeded its step budget of 20 steps"
    );
    // The engine is still usable.
    let ok = js.compile_validator("return true").unwrap();
    assert_eq!(js.validate(&ok, None, &ev(), None), Ok(()));
}

#[test]
fn native_loops_without_polls_are_charged() {
    let mut js = budget(50);
    for body in [
        "Array.prototype.reverse.call({length: 2 ** 53 - 1})",
        "Array.prototype.copyWithin.call({length: 2 ** 53 - 1}, 0, 1)",
        "Array.prototype.sort.call({length: 2 ** 40})",
        "Array.prototype.join.call({length: 2 ** 40})",
        "Array.prototype.splice.call({length: 2 ** 53 - 1}, 0, 1)",
        "Array.prototype.unshift.call({length: 2 ** 40}, 1)",
        "Array.prototype.slice.call({length: 2 ** 40}).length",
        "[].concat({length: 2 ** 40, [Symbol.isConcatSpreadable]: true})",
        "var a = []; a.length = 2 ** 32 - 1; [a].flat()",
        "var a = []; a.length = 2 ** 32 - 1; a.reverse()",
        "var a = []; a.length = 2 ** 32 - 1; String(a)",
        "var a = new Array(100000).fill(0); for (;;) { var b = [...a] }",
        "var a = new Array(100000).fill(0); for (;;) { Array.from(a) }",
        "var a = new Array(100000).fill(0); for (;;) { var [x, ...rest] = a }",
        "var s = 'x'.repeat(1000000); for (;;) { s.indexOf('y') }",
        "var s = 'x'.repeat(1000000); for (;;) { s.toUpperCase() }",
        "var s = 'x'.repeat(1000000); for (;;) { [...s] }",
        "var s = 'x'.repeat(1000000); for (;;) { encodeURIComponent(s) }",
        "var t = JSON.stringify(new Array(100000).fill(1)); for (;;) { JSON.parse(t) }",
        "var u = new Float64Array(100000); for (;;) { u.sort() }",
        "var o = {}; for (var i = 0; i < 10000; i++) o['k' + i] = i; for (;;) Object.keys(o)",
    ] {
        let start = Instant::now();
        let err = error_of(&mut js, body);
        assert_eq!(
            err,
            JsError::StepBudget {
                kind: FunctionKind::Validator,
                budget: 50
            },
            "{body}"
        );
        assert!(
            start.elapsed().as_secs() < 20,
            "{body} took {:?}",
            start.elapsed()
        );
    }
}

#[test]
fn wrapped_builtins_behave_like_the_originals() {
    let mut js = JsRuntime::new().unwrap();
    let body = "
        var a = [3, 1, 2];
        var checks = [
            a.slice().sort().join() === '1,2,3',
            [[1, [2]], [3]].flat().length === 3,
            [[1, [2, [3]]]].flat(Infinity).join() === '1,2,3',
            [1, 2].flatMap(function (x) { return [x, x * 10] }).join() === '1,10,2,20',
            Array.prototype.flat.length === 0 && Array.prototype.flatMap.length === 1,
            [].concat([1], 2, [3, [4]]).length === 4,
            Array.from('abc').join('-') === 'a-b-c',
            Array.from({length: 2}).length === 2,
            [...new Set([1, 1, 2])].length === 2,
            'a,b'.split(',').length === 2,
            'abc'.toUpperCase() === 'ABC' && String.prototype.trim.call(' x ') === 'x',
            JSON.parse(JSON.stringify({x: [1, {y: 2}]})).x[1].y === 2,
            Object.keys({a: 1, b: 2}).join() === 'a,b',
            Object.assign({}, {a: 1}, 'xy')[1] === 'y',
            new Uint8Array([3, 1, 2]).sort().join() === '1,2,3',
            Array.prototype.map.name === 'map' && Array.prototype.map.length === 1,
            [].values().next().done === true,
            encodeURIComponent('a b') === 'a%20b',
        ];
        for (var i = 0; i < checks.length; i++) if (checks[i] !== true) return 'check ' + i;
        try { Array.prototype.join.call({get length() { return 2 }}); return 'accessor'; }
        catch (e) { if (!(e instanceof TypeError)) return 'wrong error'; }
        try { String.prototype.trim.call(null); return 'null'; }
        catch (e) { if (!(e instanceof TypeError)) return 'wrong error 2'; }
        return true;";
    let v = js.compile_validator(body).unwrap();
    assert_eq!(js.validate(&v, None, &ev(), None), Ok(()));
}

#[test]
fn verdicts_near_the_budget_do_not_depend_on_earlier_calls() {
    // The engine's interrupt counter carries over between calls; the verdict must not.
    let mut js = budget(3);
    let counted = js
        .compile_validator(
            "var n = event.patch.json_patch.n; for (var i = 0; i < n; i++) {} return true",
        )
        .unwrap();
    let scramble = js
        .compile_validator(
            "var m = event.patch.json_patch.n; for (var i = 0; i < m; i++) {} return false",
        )
        .unwrap();
    let run = |js: &JsRuntime, v, n: u64| {
        let e = validator_event(1, "C", PatchType::Save, "i", Some(&json!({"n": n})));
        js.validate(v, None, &e, None).is_ok()
    };
    // Find the largest loop count that passes (binary search; outcome is monotonic).
    let (mut lo, mut hi) = (0u64, 200_000u64);
    assert!(run(&js, &counted, lo) && !run(&js, &counted, hi));
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if run(&js, &counted, mid) {
            lo = mid
        } else {
            hi = mid
        }
    }
    // Around the boundary, any history of other calls gives the same verdicts.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for n in lo.saturating_sub(3)..=hi + 3 {
        let expected = n <= lo;
        for _ in 0..25 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            run(&js, &scramble, seed % 25_000);
            assert_eq!(run(&js, &counted, n), expected, "n = {n} (boundary {lo})");
        }
    }
    // A runaway body always stops at the same step count.
    let forever = js.compile_validator("for (;;) {}").unwrap();
    for i in 0..10 {
        run(&js, &scramble, i * 3_333);
        assert!(js.validate(&forever, None, &ev(), None).is_err());
        assert_eq!(js.last_call_steps(), 4);
    }
}

#[test]
fn deep_recursion_overflows_the_stack_cleanly() {
    let mut js = JsRuntime::new().unwrap();
    for body in [
        "function f(n) { return f(n + 1) + 1 } return f(0)",
        "var a = []; a.push(a); return String([a].flat(Infinity))",
        "[1].forEach(function f() { [1].forEach(f) })",
        "var o = {}; var p = o; for (var i = 0; i < 100000; i++) { p = p.x = {} } return JSON.stringify(o)",
    ] {
        let err = error_of(&mut js, body);
        assert_eq!(
            err,
            JsError::StackOverflow {
                kind: FunctionKind::Validator
            },
            "{body}"
        );
    }
    assert_eq!(
        error_of(&mut js, "function f() { return f() } f()").to_string(),
        "validator exceeded the maximum call stack size"
    );
    // Moderate recursion is fine, and the engine is still usable.
    let v = js
        .compile_validator(
            "function d(n) { return n === 0 ? 0 : 1 + d(n - 1) } return d(500) === 500",
        )
        .unwrap();
    assert_eq!(js.validate(&v, None, &ev(), None), Ok(()));
}

#[test]
fn huge_allocations_hit_the_memory_limit() {
    let mut js = JsRuntime::with_config(JsConfig {
        memory_limit: 16 << 20,
        ..JsConfig::default()
    })
    .unwrap();
    // Running out while filling the heap with small objects can leave the engine unable to
    // allocate its error: it then throws `null` (documented).
    let err = error_of(
        &mut js,
        "var a = []; for (;;) a.push(new Array(1000).fill(1.5))",
    );
    assert!(
        matches!(&err, JsError::OutOfMemory { .. })
            || matches!(&err, JsError::Threw { message, .. } if message.starts_with("null")),
        "{err:?}"
    );
    for body in [
        "var s = 'x'.repeat(1 << 26); return s.length > 0",
        "return new ArrayBuffer(1 << 30).byteLength > 0",
        "var o = {}; for (var i = 0; ; i++) o['key' + i] = i",
        "var b = []; for (;;) b.push(new ArrayBuffer(1 << 20))",
    ] {
        let err = error_of(&mut js, body);
        assert_eq!(
            err,
            JsError::OutOfMemory {
                kind: FunctionKind::Validator,
                limit: 16 << 20
            },
            "{body}"
        );
    }
    assert_eq!(
        error_of(
            &mut js,
            "var b = []; for (;;) b.push(new ArrayBuffer(1 << 20))"
        )
        .to_string(),
        "validator ran out of memory (limit 16777216 bytes)"
    );
    let v = js
        .compile_validator("return new Array(1000).fill(0).length === 1000")
        .unwrap();
    assert_eq!(js.validate(&v, None, &ev(), None), Ok(()));
}

#[test]
fn read_filters_hit_the_same_limits() {
    let mut js = budget(10);
    let f = js.compile_read_filter("for (;;) {}").unwrap();
    assert_eq!(
        js.filter(&f, None, &json!({})),
        Err(JsError::StepBudget {
            kind: FunctionKind::ReadFilter,
            budget: 10
        })
    );
    let g = js
        .compile_read_filter("function r() { return r() } return r()")
        .unwrap();
    assert_eq!(
        js.filter(&g, None, &json!({})),
        Err(JsError::StackOverflow {
            kind: FunctionKind::ReadFilter
        })
    );
    // toJSON of the result runs under the budget too.
    let h = js
        .compile_read_filter("return { toJSON: function () { for (;;) {} } }")
        .unwrap();
    assert!(matches!(
        js.filter(&h, None, &json!({})),
        Err(JsError::StepBudget { .. })
    ));
}

#[test]
fn exceptions_and_renderings_run_under_the_budget() {
    let mut js = budget(10);
    let err = error_of(&mut js, "throw { toString: function () { for (;;) {} } }");
    assert!(
        matches!(err, JsError::Threw { .. } | JsError::StepBudget { .. }),
        "{err:?}"
    );
    let err = error_of(
        &mut js,
        "var e = new Error('x'); e.toString = function () { for (;;) {} }; throw e",
    );
    assert!(matches!(err, JsError::StepBudget { .. }), "{err:?}");
    let v = js
        .compile_validator("return { toJSON: function () { for (;;) {} } }")
        .unwrap();
    assert!(matches!(
        js.validate(&v, None, &ev(), None),
        Err(Denied::Error(JsError::StepBudget { .. }))
    ));
    // Catching the budget error is not possible.
    let v = js
        .compile_validator("try { for (;;) {} } catch (e) {} return true")
        .unwrap();
    assert!(matches!(
        js.validate(&v, None, &ev(), None),
        Err(Denied::Error(JsError::StepBudget { .. }))
    ));
    let v = js
        .compile_validator(
            "try { Array.prototype.reverse.call({length: 2 ** 40}) } catch (e) {} return true",
        )
        .unwrap();
    assert!(matches!(
        js.validate(&v, None, &ev(), None),
        Err(Denied::Error(JsError::StepBudget { .. }))
    ));
}

#[test]
fn zero_budget_still_runs_small_bodies() {
    let mut js = budget(0);
    let v = js
        .compile_validator("return event.patch.type === 'create'")
        .unwrap();
    assert_eq!(js.validate(&v, Some("w"), &ev(), None), Ok(()));
    let err = error_of(&mut js, "for (;;) {}");
    assert_eq!(
        err,
        JsError::StepBudget {
            kind: FunctionKind::Validator,
            budget: 0
        }
    );
}

/// Measurements for the documentation (printed, not asserted): run with
/// `cargo test --release -p threads-reducer --test js_limits -- --nocapture measure`.
#[test]
fn measure_budget_and_stack() {
    let mut js = JsRuntime::new().unwrap();
    let forever = js.compile_validator("for (;;) {}").unwrap();
    let start = Instant::now();
    assert!(js.validate(&forever, None, &ev(), None).is_err());
    println!(
        "default budget ({DEFAULT_STEP_BUDGET} steps = {} units): empty loop exhausted in {:?}",
        DEFAULT_STEP_BUDGET * UNITS_PER_STEP,
        start.elapsed()
    );
    let counted = js
        .compile_validator(
            "var n = 0; for (var i = 0; ; i++) { n += i % 7; if (n < 0) break } return true",
        )
        .unwrap();
    let start = Instant::now();
    assert!(js.validate(&counted, None, &ev(), None).is_err());
    println!(
        "default budget: arithmetic loop exhausted in {:?}",
        start.elapsed()
    );
    let probe = js
        .compile_validator(
            "var max = 0; function d(n) { max = n; d(n + 1) } try { d(0) } catch (e) {} return String(max)",
        )
        .unwrap();
    if let Err(Denied::Value(depth)) = js.validate(&probe, None, &ev(), None) {
        println!("default stack: recursion depth {depth}");
    }
    let per_iteration = js
        .compile_validator(
            "var n = event.patch.json_patch.n; for (var i = 0; i < n; i++) {} return true",
        )
        .unwrap();
    let e = validator_event(1, "C", PatchType::Save, "i", Some(&json!({"n": 1_000_000})));
    let _ = js.validate(&per_iteration, None, &e, None);
    println!(
        "1,000,000 loop iterations use {} steps",
        js.last_call_steps()
    );
}

#[test]
fn many_small_objects_take_the_out_of_memory_path() {
    let mut js = JsRuntime::with_config(JsConfig {
        memory_limit: 16 << 20,
        ..JsConfig::default()
    })
    .unwrap();
    for body in [
        "var a = []; for (;;) a.push({})",
        "var a = []; for (;;) a.push([1])",
        "var a = []; for (var i = 0; ; i++) a.push({i: i})",
        "var a = null; for (;;) a = {next: a}",
    ] {
        let first = error_of(&mut js, body);
        assert_eq!(
            first,
            JsError::OutOfMemory {
                kind: FunctionKind::Validator,
                limit: 16 << 20
            },
            "{body}"
        );
        // The same verdict every time (the rerun after a garbage collection decides).
        assert_eq!(error_of(&mut js, body), first, "{body}");
    }
    // A body that throws null on a small heap still reports what it threw.
    let err = error_of(&mut js, "throw null");
    assert!(
        matches!(&err, JsError::Threw { message, .. } if message.starts_with("null")),
        "{err:?}"
    );
    let v = js.compile_validator("return true").unwrap();
    assert_eq!(js.validate(&v, None, &ev(), None), Ok(()));
}
