//! Parsed collection configs, keyed by collection name and checked against the stored bytes.
//!
//! Every event of a record reads its collection's config (the read stays: it is part of the
//! record's footprint); parsing the JSON and compiling the schema again for each of them was
//! most of the cost of a large batch. An entry is reused only when the bytes just read are
//! the bytes it was parsed from, so the cache never changes an outcome, whatever was undone,
//! redone or redefined in between.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use threads_protocol::store::StoreError;

use super::event::CollectionConfig;
use super::schema::SchemaCache;
use crate::query::FieldPath;

/// Most configs kept by a [`ConfigCache`].
const CACHE_LIMIT: usize = 64;

/// A collection config parsed from its stored bytes, with what the fold derives from it.
pub(crate) struct Parsed {
    /// The config.
    pub config: CollectionConfig,
    /// The parsed path of each index, in `config.indexes` order (`None` for a path that does
    /// not parse, which has no entries).
    pub paths: Vec<Option<FieldPath>>,
    validator: OnceLock<Result<Arc<jsonschema::Validator>, String>>,
}

impl Parsed {
    fn new(config: CollectionConfig) -> Self {
        let paths = config
            .indexes
            .iter()
            .map(|s| FieldPath::parse(&s.path, "index").ok())
            .collect();
        Parsed {
            config,
            paths,
            validator: OnceLock::new(),
        }
    }

    /// The compiled schema (compiled on first use, through `schemas`).
    pub fn validator(
        &self,
        schemas: &mut SchemaCache,
    ) -> Result<Arc<jsonschema::Validator>, String> {
        self.validator
            .get_or_init(|| schemas.compile(&self.config.schema))
            .clone()
    }
}

/// Parsed configs by collection name (see the module docs).
#[derive(Default)]
pub(crate) struct ConfigCache {
    entries: BTreeMap<String, (Vec<u8>, Arc<Parsed>)>,
}

impl std::fmt::Debug for ConfigCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigCache")
            .field("entries", &self.entries.len())
            .finish()
    }
}

impl ConfigCache {
    /// The config of collection `name` stored as `bytes`: the cached one if it was parsed from
    /// the same bytes, else parsed now.
    pub fn get(&mut self, name: &str, bytes: Vec<u8>) -> Result<Arc<Parsed>, StoreError> {
        if let Some((stored, parsed)) = self.entries.get(name)
            && *stored == bytes
        {
            return Ok(parsed.clone());
        }
        let config: CollectionConfig = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Corrupt(format!("collection config: {e}")))?;
        let parsed = Arc::new(Parsed::new(config));
        if self.entries.len() >= CACHE_LIMIT {
            self.entries.clear();
        }
        self.entries
            .insert(name.to_owned(), (bytes, parsed.clone()));
        Ok(parsed)
    }
}
