//! Instance events: create, save (merge patch, upsert) and delete.

use serde_json::Value;
use serde_json::value::RawValue;
use threads_protocol::store::MAX_KEY_LEN;

use super::apply::{Cx, Fail, canonical_raw, reject};
use super::configs::Parsed;
use super::event::CollectionConfig;
use super::merge;
use super::schema::{clip, validate_instance};
use crate::js::{Denied, JsError, PatchType, validator_event};
use crate::query::ID_FIELD;

impl Cx<'_> {
    /// `create`: a new instance with the full document (`json`: its canonical JSON, if
    /// already made).
    pub fn create(
        &mut self,
        collection: &str,
        id: &str,
        instance: &Value,
        json: Option<Box<RawValue>>,
    ) -> Result<(), Fail> {
        let parsed = self.config(collection)?;
        let config = &parsed.config;
        let key = self.instance_key(collection, id)?;
        let Value::Object(members) = instance else {
            return reject("invalid instance: the instance must be a JSON object");
        };
        match members.get(ID_FIELD) {
            None => return reject("invalid instance: missing _id attribute"),
            Some(Value::String(s)) if s == id => {}
            Some(other) => {
                return reject(format!(
                    "invalid instance: _id {} does not match the event's id \"{id}\"",
                    clip(&other.to_string())
                ));
            }
        }
        let json = json.unwrap_or_else(|| canonical_raw(instance));
        // Written first, in the one look-up that proves the ID new: a check below that
        // rejects the event rejects its record, whose writes the fold then rolls back.
        if !self.put_new(&key, json.get().as_bytes(), &|| {
            format!("instance id \"{id}\"")
        })? {
            // A linear search, on this rare path only: a record stops at its first rejection.
            let again = self.created.contains(&key);
            return reject(if again {
                format!(
                    "error when reducing create event: can't create already existent instance \
                     \"{id}\" (created earlier in the same transaction)"
                )
            } else {
                format!("can't create already existing instance \"{id}\"")
            });
        }
        self.check_schema(&parsed, instance)?;
        self.run_validator(config, PatchType::Create, id, Some(instance), None)?;
        self.add_entries(&parsed, id, instance)?;
        self.created.push(key);
        self.stored = Some(json);
        Ok(())
    }

    /// `save`: the merge patch applied to the stored document, or to `{}` when there is none.
    pub fn save(&mut self, collection: &str, id: &str, patch: &Value) -> Result<(), Fail> {
        let parsed = self.config(collection)?;
        let config = &parsed.config;
        self.instance_key(collection, id)?;
        let prev = self.instance(collection, id)?;
        let mut doc = prev
            .clone()
            .unwrap_or_else(|| Value::Object(Default::default()));
        merge::apply(&mut doc, patch);
        let Value::Object(members) = &mut doc else {
            return reject("invalid instance: the patched instance is not a JSON object");
        };
        match members.get(ID_FIELD) {
            None => {
                members.insert(ID_FIELD.to_owned(), Value::String(id.to_owned()));
            }
            Some(Value::String(s)) if s == id => {}
            Some(other) => {
                return reject(format!(
                    "invalid instance: the patch changes _id to {}; it must stay \"{id}\"",
                    clip(&other.to_string())
                ));
            }
        }
        self.check_schema(&parsed, &doc)?;
        self.run_validator(config, PatchType::Save, id, Some(patch), prev.as_ref())?;
        if let Some(p) = &prev {
            self.remove_entries(config, id, p)?;
        }
        self.add_entries(&parsed, id, &doc)?;
        self.write_instance(collection, id, &doc)
    }

    /// `delete`: removes the instance; an unknown ID is a no-op (the validator does not run).
    pub fn delete(&mut self, collection: &str, id: &str) -> Result<(), Fail> {
        let parsed = self.config(collection)?;
        let config = &parsed.config;
        let Some(prev) = self.instance(collection, id)? else {
            return Ok(());
        };
        self.run_validator(config, PatchType::Delete, id, None, Some(&prev))?;
        self.remove_entries(config, id, &prev)?;
        let key = self.keys.instance(collection, id);
        self.txn.delete(&key)?;
        Ok(())
    }

    /// The instance's key; rejects an empty ID and one too long to be stored.
    fn instance_key(&self, collection: &str, id: &str) -> Result<Vec<u8>, Fail> {
        if id.is_empty() {
            return reject("invalid instance: empty _id");
        }
        let key = self.keys.instance(collection, id);
        let len = key.len();
        if len > MAX_KEY_LEN {
            return reject(format!(
                "invalid instance: _id of {} bytes is too long (its storage key would be {len} \
                 bytes, the limit is {MAX_KEY_LEN})",
                id.len()
            ));
        }
        Ok(key)
    }

    fn check_schema(&mut self, parsed: &Parsed, doc: &Value) -> Result<(), Fail> {
        let validator = parsed.validator(self.schemas).or_else(reject)?;
        validate_instance(&validator, doc).or_else(reject)
    }

    fn write_instance(&mut self, collection: &str, id: &str, doc: &Value) -> Result<(), Fail> {
        let key = self.keys.instance(collection, id);
        let json = canonical_raw(doc);
        self.put(&key, json.get().as_bytes(), &|| {
            format!("instance id \"{id}\"")
        })?;
        self.stored = Some(json);
        Ok(())
    }

    /// Runs the collection's write validator, if it has one, on one event.
    fn run_validator(
        &mut self,
        config: &CollectionConfig,
        kind: PatchType,
        id: &str,
        json_patch: Option<&Value>,
        prev: Option<&Value>,
    ) -> Result<(), Fail> {
        if config.write_validator.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.scripts.start() {
            return Err(Fail::Script(e));
        }
        let time = i64::try_from(self.record.time).unwrap_or(i64::MAX);
        let event = validator_event(time, &config.name, kind, id, json_patch);
        let writer = self.writer.get_or_init(|| self.record.author.to_string());
        match self
            .scripts
            .validate(&config.write_validator, Some(writer), &event, prev)
        {
            Ok(()) => Ok(()),
            Err(Denied::Error(e @ JsError::Engine(_))) => Err(Fail::Script(e)),
            Err(denied) => reject(format!(
                "{denied} (write validator of collection \"{}\" on {} of instance \"{id}\")",
                config.name,
                kind.as_str()
            )),
        }
    }
}
