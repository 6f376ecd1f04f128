//! Collection events: define, redefine and remove collections.

use std::collections::BTreeSet;

use super::apply::{Cx, Fail, canonical, reject};
use super::event::{CollectionConfig, IndexSpec};
use super::schema::{check_index_path, check_schema};
use crate::js::FunctionKind;
use crate::query::{FieldPath, ID_FIELD};

/// Longest collection name, in bytes.
pub const MAX_NAME_LEN: usize = 100;

/// Longest index path, in bytes.
pub const MAX_INDEX_PATH_LEN: usize = 100;

/// The message for a name that breaks the naming rule.
pub const BAD_NAME: &str = "name may only contain alphanumeric characters or non-consecutive \
                            hyphens, and cannot begin or end with a hyphen";

/// Checks a collection (or database) name: `^[A-Za-z0-9]+(?:[-][A-Za-z0-9]+)*$`, at most
/// [`MAX_NAME_LEN`] bytes.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name
            .split('-')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric()));
    if !ok {
        return Err(format!(
            "{BAD_NAME} (got \"{}\")",
            super::schema::clip(name)
        ));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "collection name too long: {} bytes, the limit is {MAX_NAME_LEN}",
            name.len()
        ));
    }
    Ok(())
}

impl Cx<'_> {
    /// `create_collection`.
    pub fn create_collection(&mut self, config: &CollectionConfig) -> Result<(), Fail> {
        check_name(&config.name).or_else(reject)?;
        if super::apply::load_config(&*self.txn, &self.keys, &config.name)?.is_some() {
            return reject(format!(
                "collection already registered: \"{}\"",
                config.name
            ));
        }
        self.define(config, None)
    }

    /// `update_collection`.
    pub fn update_collection(&mut self, config: &CollectionConfig) -> Result<(), Fail> {
        check_name(&config.name).or_else(reject)?;
        let old = self.config(&config.name)?;
        self.define(config, Some(&old.config))
    }

    /// `delete_collection`: the config, the instances and the index entries go.
    pub fn delete_collection(&mut self, name: &str) -> Result<(), Fail> {
        self.config(name)?;
        let instances = self.keys.instances(name);
        let indexes = self.keys.collection_indexes(name);
        self.delete_prefix(&instances)?;
        self.delete_prefix(&indexes)?;
        let key = self.keys.collection(name);
        self.txn.delete(&key)?;
        Ok(())
    }

    /// Checks a definition, brings the indexes in line with it (drop unlisted, back-fill new,
    /// check uniqueness) and stores it. Existing instances are not re-validated.
    fn define(
        &mut self,
        config: &CollectionConfig,
        old: Option<&CollectionConfig>,
    ) -> Result<(), Fail> {
        check_schema(self.schemas, &config.schema).or_else(reject)?;
        check_indexes(config)?;
        for (body, kind) in [
            (&config.write_validator, FunctionKind::Validator),
            (&config.read_filter, FunctionKind::ReadFilter),
        ] {
            if !body.is_empty() {
                match self.scripts.check_syntax(body, kind) {
                    Ok(()) => {}
                    Err(e @ crate::js::JsError::Engine(_)) => return Err(Fail::Script(e)),
                    Err(e) => return reject(format!("{kind}: {e}")),
                }
            }
        }
        let name = &config.name;
        let old_indexes = old.map(|o| o.indexes.as_slice()).unwrap_or_default();
        for gone in old_indexes {
            if !config.indexes.iter().any(|s| s.path == gone.path) {
                self.drop_index(name, &gone.path)?;
            }
        }
        for spec in &config.indexes {
            match old_indexes.iter().find(|s| s.path == spec.path) {
                None => self.backfill(name, spec)?,
                Some(prev) if spec.unique && !prev.unique => self.check_unique(name, &spec.path)?,
                Some(_) => {}
            }
        }
        let value = serde_json::to_value(config).map_err(|e| Fail::Reject(e.to_string()))?;
        let key = self.keys.collection(name);
        self.put(&key, &canonical(&value), &|| {
            format!("collection name \"{name}\"")
        })
    }
}

/// Checks the index list: valid, distinct paths that are not `_id` and resolve in the schema
/// to an indexable type.
fn check_indexes(config: &CollectionConfig) -> Result<(), Fail> {
    let mut seen = BTreeSet::new();
    for IndexSpec { path, .. } in &config.indexes {
        if path == ID_FIELD {
            return reject("cannot create custom index on _id");
        }
        let parsed = match FieldPath::parse(path, "index") {
            Ok(p) => p,
            Err(_) => {
                return reject(format!(
                    "invalid index path \"{}\": paths are dot-separated field names, none empty",
                    super::schema::clip(path)
                ));
            }
        };
        if path.len() > MAX_INDEX_PATH_LEN {
            return reject(format!(
                "index path too long: {} bytes, the limit is {MAX_INDEX_PATH_LEN}",
                path.len()
            ));
        }
        if !seen.insert(path.as_str()) {
            return reject(format!("duplicate index on path \"{path}\""));
        }
        check_index_path(&config.schema, &parsed).or_else(reject)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "A1", "a-b", "a-b-c9", "Person"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "a--b", "a_b", "a b", "é", "a.b"] {
            let e = check_name(bad).unwrap_err();
            assert!(e.starts_with(BAD_NAME), "{bad}: {e}");
        }
        assert!(check_name(&"a".repeat(MAX_NAME_LEN)).is_ok());
        assert!(check_name(&"a".repeat(MAX_NAME_LEN + 1)).is_err());
    }
}
