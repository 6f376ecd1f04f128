//! Secondary index maintenance: entries of one instance, unique checks, back-fill and drop.
//!
//! Index contract (shared with the planner, see [`crate::query::plan`]): the index on path `p`
//! holds one entry for each instance whose value `p.lookup(doc)` is indexable (null, boolean,
//! number, string); a missing field, an array or an object has no entry. A unique index admits
//! one instance per encoded value (so `1` and `1.0` clash); instances without an entry never
//! clash.

use std::ops::ControlFlow;

use serde_json::Value;
use threads_protocol::store::{Direction, KeyRange, MAX_KEY_LEN};

use super::apply::{Cx, Fail, reject};
use super::configs::Parsed;
use super::event::{CollectionConfig, IndexSpec};
use super::keys::split_index_entry;
use crate::query::{FieldPath, encode_index_value};

/// The encoded value an instance holds at an index's path, if it has an entry there.
pub(crate) fn entry_value(spec: &IndexSpec, doc: &Value) -> Option<Vec<u8>> {
    let path = FieldPath::parse(&spec.path, "index").ok()?;
    entry_value_at(Some(&path), doc)
}

/// [`entry_value`] with the index path already parsed (`None`: a path that does not parse).
fn entry_value_at(path: Option<&FieldPath>, doc: &Value) -> Option<Vec<u8>> {
    path?.lookup(doc).and_then(encode_index_value)
}

/// A short rendering of a JSON value for messages.
fn show(v: Option<&Value>) -> String {
    super::schema::clip(&v.map_or_else(|| "null".to_owned(), Value::to_string))
}

impl Cx<'_> {
    /// Writes the index entries of instance `id` holding `doc`, checking unique indexes.
    pub fn add_entries(&mut self, parsed: &Parsed, id: &str, doc: &Value) -> Result<(), Fail> {
        let config = &parsed.config;
        for (spec, path) in config.indexes.iter().zip(&parsed.paths) {
            let Some(value) = entry_value_at(path.as_ref(), doc) else {
                continue;
            };
            let key = self.keys.index_entry(&config.name, &spec.path, &value, id);
            if key.len() > MAX_KEY_LEN {
                return reject(format!(
                    "value at \"{}\" of instance \"{id}\" is too long to index: the index key \
                     would be {} bytes, the limit is {MAX_KEY_LEN}",
                    spec.path,
                    key.len()
                ));
            }
            if spec.unique
                && let Some(other) = self.holder(&config.name, &spec.path, &value, id)?
            {
                let path = FieldPath::parse(&spec.path, "index").ok();
                let shown = show(path.as_ref().and_then(|p| p.lookup(doc)));
                return reject(format!(
                    "unique constraint violation: index \"{}\" of collection \"{}\" already \
                     holds value {shown} (instance \"{other}\")",
                    spec.path, config.name
                ));
            }
            self.txn.put(&key, &[])?;
        }
        Ok(())
    }

    /// Removes the index entries of instance `id` holding `doc`.
    pub fn remove_entries(
        &mut self,
        config: &CollectionConfig,
        id: &str,
        doc: &Value,
    ) -> Result<(), Fail> {
        for spec in &config.indexes {
            if let Some(value) = entry_value(spec, doc) {
                let key = self.keys.index_entry(&config.name, &spec.path, &value, id);
                if key.len() <= MAX_KEY_LEN {
                    self.txn.delete(&key)?;
                }
            }
        }
        Ok(())
    }

    /// Another instance than `id` with an entry for `value` in the index, if any.
    fn holder(
        &self,
        collection: &str,
        path: &str,
        value: &[u8],
        id: &str,
    ) -> Result<Option<String>, Fail> {
        let prefix = self.keys.index_value(collection, path, value);
        let mut found = None;
        self.txn.try_scan(
            KeyRange::prefix(&prefix),
            Direction::Forward,
            &mut |k, _| {
                let other = super::keys::id_after(&prefix, k)?;
                if other == id {
                    return Ok(ControlFlow::Continue(()));
                }
                found = Some(other);
                Ok(ControlFlow::Break(()))
            },
        )?;
        Ok(found)
    }

    /// Builds a new index from the collection's instances; for a unique index, checks them for
    /// duplicates.
    pub fn backfill(&mut self, collection: &str, spec: &IndexSpec) -> Result<(), Fail> {
        for (id, doc) in self.all_instances(collection)? {
            let Some(value) = entry_value(spec, &doc) else {
                continue;
            };
            let key = self.keys.index_entry(collection, &spec.path, &value, &id);
            if key.len() > MAX_KEY_LEN {
                return reject(format!(
                    "can't create index on \"{}\": the value of instance \"{id}\" is too long \
                     to index (the index key would be {} bytes, the limit is {MAX_KEY_LEN})",
                    spec.path,
                    key.len()
                ));
            }
            self.txn.put(&key, &[])?;
        }
        if spec.unique {
            self.check_unique(collection, &spec.path)?;
        }
        Ok(())
    }

    /// Rejects when two entries of an index hold the same value.
    pub fn check_unique(&self, collection: &str, path: &str) -> Result<(), Fail> {
        let prefix = self.keys.index(collection, path);
        let mut prev: Option<(Vec<u8>, String)> = None;
        let mut clash = None;
        self.txn.try_scan(
            KeyRange::prefix(&prefix),
            Direction::Forward,
            &mut |k, _| {
                let rest = k.get(prefix.len()..).unwrap_or_default();
                let (value, id) = split_index_entry(rest)?;
                if let Some((pv, pid)) = &prev
                    && pv.as_slice() == value
                {
                    clash = Some((pid.clone(), id));
                    return Ok(ControlFlow::Break(()));
                }
                prev = Some((value.to_vec(), id));
                Ok(ControlFlow::Continue(()))
            },
        )?;
        match clash {
            Some((a, b)) => reject(format!(
                "can't create unique index (duplicate instances exist): instances \"{a}\" and \
                 \"{b}\" of collection \"{collection}\" hold the same value at \"{path}\""
            )),
            None => Ok(()),
        }
    }

    /// Removes every entry of one index.
    pub fn drop_index(&mut self, collection: &str, path: &str) -> Result<(), Fail> {
        let prefix = self.keys.index(collection, path);
        self.delete_prefix(&prefix)
    }
}
