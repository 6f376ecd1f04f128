//! Passing JSON values in and out of the engine, as values (never as source code).
//!
//! In: `serde_json` text, parsed by the engine's JSON parser (`JS_ParseJSON`, the C side of
//! `JSON.parse`) from its own buffer. Out: the engine's `JSON.stringify` then `JSON.parse`
//! (so `toJSON`, dropped `undefined` members and so on follow JavaScript), then a walk of the
//! plain result. Numbers: JavaScript has only doubles, so integers beyond ±2^53 are rounded on the
//! way in; on the way out an integral double that fits is an integer (`u64` or `i64`), as
//! `serde_json` would parse the text `JSON.stringify` prints, and other doubles are kept exactly.

use rquickjs::{Array, Object, Type, Value};
use serde_json::{Map, Number, Value as Json};

use super::MAX_JSON_DEPTH;

/// Whether `v` nests arrays and objects deeper than `max` (checked without recursion).
pub(crate) fn too_deep(v: &Json, max: usize) -> bool {
    let mut stack = vec![(v, 1usize)];
    while let Some((v, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Json>> = match v {
            Json::Array(a) => Box::new(a.iter()),
            Json::Object(m) => Box::new(m.values()),
            _ => continue,
        };
        if depth > max {
            return true;
        }
        stack.extend(children.map(|c| (c, depth + 1)));
    }
    false
}

/// JSON text of `v` for the engine, or why it cannot be passed.
pub(crate) fn to_text(v: &Json, what: &str) -> Result<String, String> {
    if too_deep(v, MAX_JSON_DEPTH) {
        return Err(format!(
            "{what} is nested deeper than {MAX_JSON_DEPTH} levels"
        ));
    }
    serde_json::to_string(v).map_err(|e| format!("{what} cannot be serialized: {e}"))
}

/// Converts a plain engine value (the output of `JSON.parse`) to JSON.
pub(crate) fn from_js(v: &Value<'_>) -> Result<Json, String> {
    walk(v, 0)
}

fn walk(v: &Value<'_>, depth: usize) -> Result<Json, String> {
    match v.type_of() {
        Type::Null | Type::Undefined | Type::Uninitialized => Ok(Json::Null),
        Type::Bool => Ok(Json::Bool(v.as_bool().unwrap_or(false))),
        Type::Int => Ok(Json::from(v.as_int().unwrap_or(0))),
        Type::Float => Ok(number(v.as_float().unwrap_or(0.0))),
        Type::String => match v.as_string() {
            Some(s) => s
                .to_string()
                .map(Json::String)
                .map_err(|_| lone_surrogate()),
            None => Err("unexpected string value".into()),
        },
        Type::Array => {
            if depth >= MAX_JSON_DEPTH {
                return Err(too_deep_result());
            }
            let array: &Array = v.as_array().ok_or("unexpected array value")?;
            let mut out = Vec::with_capacity(array.len());
            for item in array.iter::<Value>() {
                let item = item.map_err(|e| e.to_string())?;
                out.push(walk(&item, depth + 1)?);
            }
            Ok(Json::Array(out))
        }
        Type::Object => {
            if depth >= MAX_JSON_DEPTH {
                return Err(too_deep_result());
            }
            let object: &Object = v.as_object().ok_or("unexpected object value")?;
            let mut out = Map::new();
            // Keys are read as engine strings: rquickjs' atom-to-`String` conversion does not check
            // UTF-8 (lone surrogates) and stops at NUL.
            for prop in object.props::<rquickjs::String, Value>() {
                let (key, value) = prop.map_err(|e| e.to_string())?;
                let key = key.to_string().map_err(|_| lone_surrogate())?;
                out.insert(key, walk(&value, depth + 1)?);
            }
            Ok(Json::Object(out))
        }
        other => Err(format!("unexpected {} value", other.as_str())),
    }
}

/// The JSON number of a double, as `serde_json` would parse its shortest decimal form.
fn number(f: f64) -> Json {
    const TWO_64: f64 = 18_446_744_073_709_551_616.0;
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if !f.is_finite() {
        return Json::Null;
    }
    if f.fract() == 0.0 && f.abs() < 1e21 {
        if (0.0..TWO_64).contains(&f) {
            return Json::from(f as u64);
        }
        if (-TWO_63..0.0).contains(&f) {
            return Json::from(f as i64);
        }
    }
    Number::from_f64(f).map_or(Json::Null, Json::Number)
}

fn lone_surrogate() -> String {
    "a string is not valid Unicode (lone surrogate)".into()
}

fn too_deep_result() -> String {
    format!("the result is nested deeper than {MAX_JSON_DEPTH} levels")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn depth_check_counts_containers() {
        let mut v = json!(1);
        assert!(!too_deep(&v, 0));
        for _ in 0..5 {
            v = json!([v]);
        }
        assert!(!too_deep(&v, 5));
        assert!(too_deep(&v, 4));
        assert!(too_deep(&json!({"a": {"b": []}}), 2));
        assert!(!too_deep(&json!({"a": {"b": []}}), 3));
    }

    #[test]
    fn deep_values_are_refused_without_recursion() {
        let mut v = json!(null);
        for _ in 0..100_000 {
            v = Json::Array(vec![v]);
        }
        assert!(to_text(&v, "instance").is_err());
        // Dropping a value this deep recursively would overflow the stack; unwind it by hand.
        while let Json::Array(mut a) = v {
            v = a.pop().unwrap_or(Json::Null);
        }
    }

    #[test]
    fn numbers_follow_serde_json_parsing() {
        assert_eq!(number(1.0), json!(1));
        assert_eq!(number(-0.0), json!(0));
        assert_eq!(number(-3.0), json!(-3));
        assert_eq!(number(1.5), json!(1.5));
        assert_eq!(number(1e20), json!(100_000_000_000_000_000_000u128 as f64));
        assert_eq!(number(1e19), json!(10_000_000_000_000_000_000u64));
        assert_eq!(number(1e21), json!(1e21));
        assert_eq!(number(f64::NAN), Json::Null);
    }
}
