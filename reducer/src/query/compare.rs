//! The total order over JSON values used by comparisons, sorting and index keys.
//!
//! Values of different JSON types are ranked `null < bool < number < string < array < object`.
//! Within a type:
//!
//! * bool: `false < true`;
//! * number: compared as `f64` (every JSON number is read as the nearest `f64`, so integers
//!   beyond 2^53 that round to the same `f64` are equal), with `-0.0 == 0.0`;
//! * string: bytewise over UTF-8 (the same as code-point order);
//! * array: element by element, a proper prefix first;
//! * object: member by member in ascending key order (key bytes first, then the value), a
//!   proper prefix first.
//!
//! This order is total: any two values compare, so sorting never fails on mixed types. Filter
//! operators other than equality only compare values of the *same* rank (see
//! [`crate::query::Filter`]): `{"$gt": 5}` never matches a string.

use std::cmp::Ordering;

use serde_json::{Number, Value};

/// The rank of a value's JSON type in the total order (null 0, bool 1, number 2, string 3,
/// array 4, object 5).
pub fn type_rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

/// A JSON number as the `f64` it compares as; `-0.0` becomes `0.0` so that the two zeros are
/// one value both here and in [`crate::query::encode_index_value`].
pub fn number_as_f64(n: &Number) -> f64 {
    // Without serde_json's `arbitrary_precision` feature `as_f64` always succeeds; the fallback
    // only keeps this total.
    let f = n.as_f64().unwrap_or(0.0);
    if f == 0.0 { 0.0 } else { f }
}

/// Compares two JSON values in the total order described in the module docs.
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => number_as_f64(x).total_cmp(&number_as_f64(y)),
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Array(x), Value::Array(y)) => {
            for (u, v) in x.iter().zip(y) {
                let o = compare_values(u, v);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            // serde_json's Map iterates in ascending key order (BTreeMap).
            for ((ka, va), (kb, vb)) in x.iter().zip(y) {
                let o = ka
                    .as_bytes()
                    .cmp(kb.as_bytes())
                    .then_with(|| compare_values(va, vb));
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        _ => type_rank(a).cmp(&type_rank(b)),
    }
}

/// Equality in the total order (so `1` equals `1.0`, and `-0.0` equals `0`).
pub fn values_equal(a: &Value, b: &Value) -> bool {
    compare_values(a, b) == Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ranks_order_types() {
        let ordered = [
            json!(null),
            json!(false),
            json!(true),
            json!(-1e300),
            json!(-1),
            json!(0),
            json!(0.5),
            json!(u64::MAX),
            json!(""),
            json!("a"),
            json!("a\u{0}"),
            json!("ab"),
            json!("é"),
            json!([]),
            json!([1]),
            json!([1, 2]),
            json!([2]),
            json!({}),
            json!({"a": 1}),
            json!({"a": 1, "b": 0}),
            json!({"a": 2}),
            json!({"b": 0}),
        ];
        for (i, a) in ordered.iter().enumerate() {
            for (j, b) in ordered.iter().enumerate() {
                assert_eq!(compare_values(a, b), i.cmp(&j), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn numbers_compare_as_f64() {
        assert!(values_equal(&json!(1), &json!(1.0)));
        assert!(values_equal(&json!(-0.0), &json!(0)));
        assert_eq!(compare_values(&json!(-2), &json!(1u64)), Ordering::Less);
    }
}
