//! Order-preserving byte encoding of indexable values.
//!
//! For any two indexable values `a`, `b`:
//! `compare_values(a, b) == encode_index_value(a).cmp(&encode_index_value(b))`, so a sorted
//! key-value store iterates an index in the query order. Encodings are also prefix-free (no
//! encoding is a proper prefix of another), so a store may append the instance ID to make
//! non-unique index keys distinct without disturbing the value order.
//!
//! Layout (type tag first, so types sort by rank):
//!
//! | value  | bytes |
//! |--------|-------|
//! | null   | `01` |
//! | bool   | `02 00` (false), `02 01` (true) |
//! | number | `03` + 8 bytes big-endian: the `f64` bits with the sign bit set for non-negative numbers and all bits inverted for negative ones (`-0.0` is encoded as `0.0`) |
//! | string | `04` + the UTF-8 bytes with each `00` written as `00 FF`, then `00 00` |
//!
//! Arrays and objects are not indexable.

use serde_json::Value;

use super::compare::number_as_f64;

/// Type tag of null.
pub const TAG_NULL: u8 = 0x01;
/// Type tag of booleans.
pub const TAG_BOOL: u8 = 0x02;
/// Type tag of numbers.
pub const TAG_NUMBER: u8 = 0x03;
/// Type tag of strings.
pub const TAG_STRING: u8 = 0x04;

/// The index key of a scalar JSON value (null, bool, number, string); `None` for arrays and
/// objects, which indexes do not store.
pub fn encode_index_value(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::Null => Some(vec![TAG_NULL]),
        Value::Bool(b) => Some(vec![TAG_BOOL, u8::from(*b)]),
        Value::Number(n) => {
            let bits = number_as_f64(n).to_bits();
            let key = if bits >> 63 == 1 {
                !bits
            } else {
                bits | (1 << 63)
            };
            let mut out = Vec::with_capacity(9);
            out.push(TAG_NUMBER);
            out.extend_from_slice(&key.to_be_bytes());
            Some(out)
        }
        Value::String(s) => {
            let mut out = Vec::with_capacity(s.len() + 3);
            out.push(TAG_STRING);
            for &b in s.as_bytes() {
                out.push(b);
                if b == 0 {
                    out.push(0xFF);
                }
            }
            out.extend_from_slice(&[0, 0]);
            Some(out)
        }
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// The type tag an indexable value's encoding starts with.
pub fn index_tag(v: &Value) -> Option<u8> {
    match v {
        Value::Null => Some(TAG_NULL),
        Value::Bool(_) => Some(TAG_BOOL),
        Value::Number(_) => Some(TAG_NUMBER),
        Value::String(_) => Some(TAG_STRING),
        Value::Array(_) | Value::Object(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn layout() {
        assert_eq!(encode_index_value(&json!(null)).unwrap(), [1]);
        assert_eq!(encode_index_value(&json!(true)).unwrap(), [2, 1]);
        assert_eq!(
            encode_index_value(&json!(1.0)).unwrap(),
            [3, 0xBF, 0xF0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            encode_index_value(&json!(-1)).unwrap(),
            [3, 0x40, 0x0F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        assert_eq!(encode_index_value(&json!("")).unwrap(), [4, 0, 0]);
        assert_eq!(
            encode_index_value(&json!(-0.0)),
            encode_index_value(&json!(0))
        );
        assert_eq!(
            encode_index_value(&json!("a\u{0}")).unwrap(),
            [4, b'a', 0, 0xFF, 0, 0]
        );
        assert_eq!(encode_index_value(&json!([1])), None);
        assert_eq!(encode_index_value(&json!({})), None);
    }
}
