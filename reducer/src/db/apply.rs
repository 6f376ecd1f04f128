//! The context one record is applied in, and the helpers shared by the collection, instance and
//! index rules.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use serde_json::Value;
use serde_json::value::RawValue;
use threads_protocol::store::{Direction, KeyRange, MAX_KEY_LEN, ReadTxn, StoreError, WriteTxn};

use super::configs::{ConfigCache, Parsed};
use super::event::CollectionConfig;
use super::keys::{Keys, id_after};
use super::schema::SchemaCache;
use super::scripts::Scripts;
use crate::fold::RecordInfo;

/// Why an event could not be applied.
#[derive(Debug)]
pub(crate) enum Fail {
    /// The event breaks a rule: the whole record is rejected with this reason.
    Reject(String),
    /// The machine failed: the engine transaction is aborted.
    Store(StoreError),
    /// The script engine failed (not a verdict on the body): the engine transaction is
    /// aborted.
    Script(crate::js::JsError),
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail::Store(e)
    }
}

/// Shorthand for a rejection.
pub(crate) fn reject<T>(msg: impl Into<String>) -> Result<T, Fail> {
    Err(Fail::Reject(msg.into()))
}

/// Everything one record's events are applied with.
pub(crate) struct Cx<'a> {
    /// The engine's transaction (tracked by the fold layer).
    pub txn: &'a mut dyn WriteTxn,
    /// The thread's state keys.
    pub keys: Keys,
    /// The record.
    pub record: &'a RecordInfo,
    /// The author's identity string, as validators see it: made when a write validator first
    /// needs it (formatting a public key costs more than many a record's events).
    pub writer: std::cell::OnceCell<String>,
    /// Compiled schemas.
    pub schemas: &'a mut SchemaCache,
    /// Parsed collection configs.
    pub configs: &'a mut ConfigCache,
    /// Validator engine.
    pub scripts: &'a mut Scripts,
    /// Instances created by earlier events of this record: their keys, in order. Only a
    /// rejected create searches it (to say whether the record itself created the ID).
    pub created: Vec<Vec<u8>>,
    /// Configs read by earlier events of this record, since its last collection event (see
    /// [`Cx::config`]).
    pub seen: BTreeMap<String, Arc<Parsed>>,
    /// The JSON the current instance event stored (set by creates and saves; the fold takes
    /// it after each instance event, so after a delete it is `None`), kept for publishing.
    pub stored: Option<Box<RawValue>>,
}

impl Cx<'_> {
    /// The config of a collection, rejecting with "collection not found" when it is missing.
    ///
    /// Read from the state once per record: only collection events write configs, and the
    /// record forgets what it read at each of them ([`Cx::collection_event`]). Reading the same
    /// key again would add nothing to the record's footprint.
    pub fn config(&mut self, name: &str) -> Result<Arc<Parsed>, Fail> {
        if let Some(parsed) = self.seen.get(name) {
            return Ok(parsed.clone());
        }
        let parsed = self.read_config(name)?;
        self.seen.insert(name.to_owned(), parsed.clone());
        Ok(parsed)
    }

    /// Forgets the configs read so far (a collection event is about to change one, or has).
    pub fn collection_event(&mut self) {
        self.seen.clear();
    }

    fn read_config(&mut self, name: &str) -> Result<Arc<Parsed>, Fail> {
        let key = self.keys.collection(name);
        let bytes = if key.len() > MAX_KEY_LEN {
            None
        } else {
            self.txn.get(&key)?
        };
        match bytes {
            Some(b) => Ok(self.configs.get(name, b)?),
            None => reject(format!("collection not found: \"{name}\"")),
        }
    }

    /// The stored instance, if any.
    pub fn instance(&self, collection: &str, id: &str) -> Result<Option<Value>, Fail> {
        let key = self.keys.instance(collection, id);
        if key.len() > MAX_KEY_LEN {
            return Ok(None);
        }
        Ok(load_instance(&*self.txn, &key)?)
    }

    /// Writes `value` under `key`, rejecting (instead of failing the store) a key longer than
    /// the store allows; `what` names the key in the message.
    pub fn put(&mut self, key: &[u8], value: &[u8], what: &dyn Fn() -> String) -> Result<(), Fail> {
        storable(key, what)?;
        Ok(self.txn.put(key, value)?)
    }

    /// Writes `value` under `key` if the key holds nothing, and says whether it did (`false`:
    /// the key holds a value, left as it is); rejects an overlong key as [`Cx::put`] does.
    pub fn put_new(
        &mut self,
        key: &[u8],
        value: &[u8],
        what: &dyn Fn() -> String,
    ) -> Result<bool, Fail> {
        storable(key, what)?;
        Ok(self.txn.put_if_absent(key, value)?.is_none())
    }

    /// Deletes every key that starts with `prefix`.
    pub fn delete_prefix(&mut self, prefix: &[u8]) -> Result<(), Fail> {
        let mut keys = Vec::new();
        self.txn
            .scan(KeyRange::prefix(prefix), Direction::Forward, &mut |k, _| {
                keys.push(k.to_vec());
                ControlFlow::Continue(())
            })?;
        for k in keys {
            self.txn.delete(&k)?;
        }
        Ok(())
    }

    /// Every instance of a collection, in ID order.
    pub fn all_instances(&self, collection: &str) -> Result<Vec<(String, Value)>, Fail> {
        Ok(scan_instances(&*self.txn, &self.keys, collection)?)
    }
}

/// Rejects a key longer than the store allows; `what` names it in the message.
fn storable(key: &[u8], what: &dyn Fn() -> String) -> Result<(), Fail> {
    if key.len() > MAX_KEY_LEN {
        return reject(format!(
            "{} is too long: its storage key would be {} bytes, the limit is {MAX_KEY_LEN}",
            what(),
            key.len()
        ));
    }
    Ok(())
}

/// Canonical JSON of a value: compact, object members in key order.
pub fn canonical(v: &Value) -> Vec<u8> {
    // Serializing a `Value` to a Vec cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

/// [`canonical`] as a [`RawValue`]: the same bytes, which publishing hands to listeners
/// without parsing them again.
pub fn canonical_raw(v: &Value) -> Box<RawValue> {
    // Serializing a `Value` cannot fail; `null` keeps the type total.
    serde_json::value::to_raw_value(v).unwrap_or_else(|_| RawValue::NULL.to_owned())
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

/// Reads a collection config from the state.
pub fn load_config(
    txn: &dyn ReadTxn,
    keys: &Keys,
    name: &str,
) -> Result<Option<CollectionConfig>, StoreError> {
    let Some(key) = config_key(keys, name) else {
        return Ok(None);
    };
    txn.get(&key)?
        .map(|b| serde_json::from_slice(&b).map_err(|e| corrupt("collection config", e)))
        .transpose()
}

/// The key of collection `name`'s config; `None` when it would be too long for the store (no
/// such collection can exist).
pub(crate) fn config_key(keys: &Keys, name: &str) -> Option<Vec<u8>> {
    let key = keys.collection(name);
    (key.len() <= MAX_KEY_LEN).then_some(key)
}

/// Reads an instance by its key.
pub fn load_instance(txn: &dyn ReadTxn, key: &[u8]) -> Result<Option<Value>, StoreError> {
    let mut doc = None;
    txn.get_with(key, &mut |v| {
        doc = v.map(|b| parse_stored(b).map_err(|e| corrupt("instance", e)));
    })?;
    doc.transpose()
}

/// Parses JSON this database stored (an instance). The bytes are checked as UTF-8 once, as a
/// whole: serde_json's byte-slice reader checks every string on its own, which cost about a
/// sixth of parsing a 116-byte instance (queries parse every instance they return).
pub fn parse_stored(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let text = std::str::from_utf8(bytes).map_err(serde::de::Error::custom)?;
    serde_json::from_str(text)
}

/// Every instance of a collection, in ID order.
pub fn scan_instances(
    txn: &dyn ReadTxn,
    keys: &Keys,
    collection: &str,
) -> Result<Vec<(String, Value)>, StoreError> {
    let prefix = keys.instances(collection);
    let mut out = Vec::new();
    txn.try_scan(
        KeyRange::prefix(&prefix),
        Direction::Forward,
        &mut |k, v| {
            let id = id_after(&prefix, k)?;
            let doc = parse_stored(v).map_err(|e| corrupt("instance", e))?;
            out.push((id, doc));
            Ok(ControlFlow::Continue(()))
        },
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::parse_stored;
    use serde_json::{Value, json};

    /// Parsing stored JSON as a whole string gives what parsing the bytes gives, and bytes that
    /// are not UTF-8 (in a string or outside one) are refused as the byte reader refuses them.
    #[test]
    fn stored_json_parses_as_the_byte_reader_does() {
        let doc = json!({"_id": "a\u{e9}\u{1f600}", "n": [1, 2.5, null], "s": "x\"y\\z"});
        let bytes = serde_json::to_vec(&doc).unwrap();
        assert_eq!(parse_stored(&bytes).unwrap(), doc);
        let bad: [&[u8]; 3] = [b"{\"a\":\"\xff\"}", b"{\"a\xc3\":1}", b"\xef{}"];
        for b in bad {
            assert!(serde_json::from_slice::<Value>(b).is_err(), "{b:?}");
            assert!(parse_stored(b).is_err(), "{b:?}");
        }
        assert!(parse_stored(b"{\"a\":1} x").is_err(), "trailing input");
    }
}
