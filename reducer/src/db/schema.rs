//! Collection schemas: the checks made when a collection is defined, where an index path
//! points, and validation of instances.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use serde_json::Value;

use crate::query::FieldPath;

/// The message of a schema whose `_id` property is not `{"type": "string"}`.
pub const ID_NOT_STRING: &str = "the collection schema _id property must be a string";

/// Most compiled schemas kept by a [`SchemaCache`].
const CACHE_LIMIT: usize = 64;

/// Most schema errors listed in one rejection.
const MAX_REPORTED_ERRORS: usize = 8;

/// Longest rendering of one schema error kept in a rejection, in bytes.
const MAX_REASON_LEN: usize = 300;

/// Compiled schemas by their canonical JSON; a compiled schema depends only on its JSON, so the
/// cache never changes an outcome.
#[derive(Default)]
pub struct SchemaCache {
    compiled: BTreeMap<Vec<u8>, Arc<jsonschema::Validator>>,
}

impl std::fmt::Debug for SchemaCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaCache")
            .field("entries", &self.compiled.len())
            .finish()
    }
}

impl SchemaCache {
    /// Compiles `schema` (draft chosen by its `$schema`, 2020-12 when absent; no remote
    /// references), or returns the cached compilation.
    pub fn compile(&mut self, schema: &Value) -> Result<Arc<jsonschema::Validator>, String> {
        let key = serde_json::to_vec(schema).unwrap_or_default();
        if let Some(v) = self.compiled.get(&key) {
            return Ok(v.clone());
        }
        // The validator library is not expected to panic; if it does on some schema, that
        // schema is refused (the same way on every replica) instead of crashing the fold.
        let compiled = catch_unwind(AssertUnwindSafe(|| {
            jsonschema::validator_for(schema).map_err(|e| e.to_string())
        }))
        .unwrap_or_else(|_| Err("the schema validator failed on this schema".into()));
        let v = Arc::new(compiled.map_err(|e| format!("invalid collection schema: {}", clip(&e)))?);
        if self.compiled.len() >= CACHE_LIMIT {
            self.compiled.clear();
        }
        self.compiled.insert(key, v.clone());
        Ok(v)
    }
}

/// Checks a collection schema: it must be a JSON object, compile, and define `properties._id`
/// as `{"type": "string"}` (after a top-level `$ref` to `#/definitions/X` or `#/$defs/X`).
pub fn check_schema(cache: &mut SchemaCache, schema: &Value) -> Result<(), String> {
    if !schema.is_object() {
        return Err("invalid collection schema: the schema must be a JSON object".into());
    }
    cache.compile(schema)?;
    let id_type = root(schema)
        .and_then(|r| r.get("properties"))
        .and_then(|p| p.get("_id"))
        .and_then(|id| follow(schema, id))
        .and_then(|id| id.get("type"));
    if id_type != Some(&Value::String("string".into())) {
        return Err(ID_NOT_STRING.into());
    }
    Ok(())
}

/// The schema node a local `$ref` (`#/definitions/X`, `#/$defs/X`) at `node` points to, or
/// `node` itself when it has no `$ref`; `None` for an unresolvable reference. References are
/// followed at most 16 times (a cycle resolves to nothing).
fn follow<'a>(schema: &'a Value, mut node: &'a Value) -> Option<&'a Value> {
    for _ in 0..16 {
        let Some(r) = node.get("$ref") else {
            return Some(node);
        };
        let r = r.as_str()?;
        let (defs, name) = if let Some(n) = r.strip_prefix("#/definitions/") {
            ("definitions", n)
        } else if let Some(n) = r.strip_prefix("#/$defs/") {
            ("$defs", n)
        } else {
            return None;
        };
        node = schema.get(defs)?.get(unescape_pointer(name))?;
    }
    None
}

fn unescape_pointer(s: &str) -> String {
    s.replace("~1", "/").replace("~0", "~")
}

/// The schema's root node, after a top-level `$ref`.
fn root(schema: &Value) -> Option<&Value> {
    follow(schema, schema)
}

/// JSON Schema types an index may be built on.
const INDEXABLE_TYPES: [&str; 4] = ["string", "number", "integer", "boolean"];

/// Checks that `path` resolves in `schema` through `properties` (following local `$ref`s) to a
/// node of type string, number, integer or boolean.
pub fn check_index_path(schema: &Value, path: &FieldPath) -> Result<(), String> {
    let missing = || format!("collection schema does not contain path \"{path}\"");
    let mut node = root(schema).ok_or_else(missing)?;
    for seg in path.as_str().split('.') {
        node = node
            .get("properties")
            .and_then(|p| p.get(seg))
            .and_then(|n| follow(schema, n))
            .ok_or_else(missing)?;
    }
    let ok = match node.get("type") {
        Some(Value::String(t)) => INDEXABLE_TYPES.contains(&t.as_str()),
        Some(Value::Array(ts)) => {
            ts.iter().all(|t| {
                t.as_str()
                    .is_some_and(|t| t == "null" || INDEXABLE_TYPES.contains(&t))
            }) && ts.iter().any(|t| t.as_str() != Some("null"))
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        let ty = node
            .get("type")
            .map_or_else(|| "none".to_owned(), Value::to_string);
        Err(format!(
            "value not indexable: path \"{path}\" has type {ty} \
             (indexes need string, number, integer or boolean)"
        ))
    }
}

/// Validates an instance; the error reads
/// `instance doesn't correspond to schema: <field>: <reason>; …` (errors sorted, at most 8).
pub fn validate_instance(validator: &jsonschema::Validator, doc: &Value) -> Result<(), String> {
    // The common case, an instance that satisfies the schema, without collecting errors.
    if catch_unwind(AssertUnwindSafe(|| validator.is_valid(doc))).unwrap_or(false) {
        return Ok(());
    }
    let mut errors: Vec<String> = catch_unwind(AssertUnwindSafe(|| {
        validator
            .iter_errors(doc)
            .map(|e| {
                let field = field_name(e.instance_path().as_str());
                format!("{field}: {}", clip(&e.to_string()))
            })
            .collect()
    }))
    .unwrap_or_else(|_| vec!["(root): the schema validator failed on this instance".into()]);
    if errors.is_empty() {
        return Ok(());
    }
    errors.sort();
    errors.dedup();
    let more = errors.len().saturating_sub(MAX_REPORTED_ERRORS);
    errors.truncate(MAX_REPORTED_ERRORS);
    let mut msg = format!(
        "instance doesn't correspond to schema: {}",
        errors.join("; ")
    );
    if more > 0 {
        msg.push_str("; and ");
        msg.push_str(&more.to_string());
        msg.push_str(" more");
    }
    Err(msg)
}

/// A JSON pointer as a dotted field name, `(root)` for the document itself.
fn field_name(pointer: &str) -> String {
    if pointer.is_empty() {
        return "(root)".into();
    }
    pointer
        .trim_start_matches('/')
        .split('/')
        .map(unescape_pointer)
        .collect::<Vec<_>>()
        .join(".")
}

/// `s` cut to at most [`MAX_REASON_LEN`] bytes at a character boundary.
pub(crate) fn clip(s: &str) -> String {
    if s.len() <= MAX_REASON_LEN {
        return s.to_owned();
    }
    let mut end = MAX_REASON_LEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> FieldPath {
        FieldPath::parse(s, "test").unwrap()
    }

    #[test]
    fn id_rule() {
        let mut c = SchemaCache::default();
        assert!(check_schema(&mut c, &json!({"properties": {"_id": {"type": "string"}}})).is_ok());
        let via_ref = json!({
            "$ref": "#/definitions/person",
            "definitions": {"person": {"properties": {"_id": {"type": "string"}}}}
        });
        assert!(check_schema(&mut c, &via_ref).is_ok());
        assert_eq!(
            check_schema(&mut c, &json!({"properties": {"_id": {"type": "integer"}}})),
            Err(ID_NOT_STRING.into())
        );
        assert_eq!(check_schema(&mut c, &json!({})), Err(ID_NOT_STRING.into()));
        let bad = check_schema(&mut c, &json!({"type": 5})).unwrap_err();
        assert!(bad.starts_with("invalid collection schema"), "{bad}");
    }

    #[test]
    fn index_paths() {
        let s = json!({
            "properties": {
                "_id": {"type": "string"},
                "age": {"type": "integer"},
                "tags": {"type": "array"},
                "addr": {"$ref": "#/$defs/addr"}
            },
            "$defs": {"addr": {"type": "object", "properties": {"city": {"type": "string"}}}}
        });
        assert!(check_index_path(&s, &p("age")).is_ok());
        assert!(check_index_path(&s, &p("addr.city")).is_ok());
        let e = check_index_path(&s, &p("tags")).unwrap_err();
        assert!(e.starts_with("value not indexable"), "{e}");
        let e = check_index_path(&s, &p("addr.zip")).unwrap_err();
        assert!(
            e.starts_with("collection schema does not contain path"),
            "{e}"
        );
    }

    #[test]
    fn exotic_schemas_fail_or_work_without_panicking() {
        let mut c = SchemaCache::default();
        let id = json!({"_id": {"type": "string"}});
        for extra in [
            json!({"$ref": "http://example.com/remote.json"}),
            json!({"$ref": "#/nowhere"}),
            json!({"pattern": "("}),
            json!({"$ref": "#", "format": "idn-hostname"}),
            json!({"$schema": "http://unknown.example/schema"}),
            json!({"$schema": "http://json-schema.org/draft-04/schema#", "minimum": 0.5}),
            json!({"additionalProperties": {"$ref": "#"}}),
        ] {
            let mut schema = extra.clone();
            schema["properties"] = id.clone();
            if let Ok(v) = c.compile(&schema) {
                let _ = validate_instance(&v, &json!({"_id": "a", "x": {"y": "z"}}));
            }
        }
    }

    #[test]
    fn instance_errors() {
        let mut c = SchemaCache::default();
        let v = c
            .compile(&json!({"properties": {"age": {"type": "integer"}}, "required": ["name"]}))
            .unwrap();
        assert!(validate_instance(&v, &json!({"name": "x", "age": 3})).is_ok());
        let e = validate_instance(&v, &json!({"age": "x"})).unwrap_err();
        assert!(
            e.starts_with("instance doesn't correspond to schema: "),
            "{e}"
        );
        assert!(e.contains("age: "), "{e}");
        assert!(e.contains("(root): "), "{e}");
    }
}
