//! The `event` argument of write validators, in go-threads' JSON shape.

use serde_json::{Map, Value};

/// Kind of change an event makes to an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PatchType {
    /// A new instance; the patch is the whole document.
    Create,
    /// A changed instance; the patch is an RFC 7386 merge patch.
    Save,
    /// A deleted instance; no patch.
    Delete,
}

impl PatchType {
    /// The value of `event.patch.type`: "create", "save" or "delete".
    pub fn as_str(self) -> &'static str {
        match self {
            PatchType::Create => "create",
            PatchType::Save => "save",
            PatchType::Delete => "delete",
        }
    }
}

/// Builds the validator `event` exactly as go-threads marshals it:
/// `{"timestamp": <ns>, "_id": "<instance id>", "collection_name": "<name>",
///   "patch": {"type": "create"|"save"|"delete", "instance_id": "<instance id>",
///   "json_patch": <patch>}}`, with `json_patch` left out when `json_patch` is `None` (deletes).
///
/// In the engine `timestamp` is a double: nanosecond timestamps of today are rounded to a
/// multiple of 256 ns.
pub fn validator_event(
    timestamp_ns: i64,
    collection_name: &str,
    patch_type: PatchType,
    instance_id: &str,
    json_patch: Option<&Value>,
) -> Value {
    let mut patch = Map::new();
    patch.insert("type".into(), Value::from(patch_type.as_str()));
    patch.insert("instance_id".into(), Value::from(instance_id));
    if let Some(p) = json_patch {
        patch.insert("json_patch".into(), p.clone());
    }
    let mut event = Map::new();
    event.insert("timestamp".into(), Value::from(timestamp_ns));
    event.insert("_id".into(), Value::from(instance_id));
    event.insert("collection_name".into(), Value::from(collection_name));
    event.insert("patch".into(), Value::Object(patch));
    Value::Object(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_shape_matches_go_threads() {
        let e = validator_event(
            5,
            "Person",
            PatchType::Save,
            "id1",
            Some(&json!({"age": 3})),
        );
        assert_eq!(
            e,
            json!({"timestamp": 5, "_id": "id1", "collection_name": "Person",
                   "patch": {"type": "save", "instance_id": "id1", "json_patch": {"age": 3}}})
        );
        let d = validator_event(-1, "P", PatchType::Delete, "x", None);
        assert_eq!(d["patch"], json!({"type": "delete", "instance_id": "x"}));
        assert_eq!(PatchType::Create.as_str(), "create");
    }
}
