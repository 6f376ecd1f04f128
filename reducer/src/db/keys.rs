//! The state layout of the document database, under [`state_prefix`] of the thread (`P`):
//!
//! | key | value |
//! |-----|-------|
//! | `P ‖ 01 ‖ str(collection)` | collection config, canonical JSON |
//! | `P ‖ 02 ‖ str(collection) ‖ str(id)` | instance, canonical JSON |
//! | `P ‖ 03 ‖ str(collection) ‖ str(path) ‖ encode_index_value(v) ‖ str(id)` | empty (index entry) |
//!
//! `str` is [`KeyBuf::str`] (escaped and terminated, order-preserving, prefix-free), and index
//! values use the prefix-free [`encode_index_value`](crate::query::encode_index_value), so
//! every prefix above selects exactly one collection, path or value. Unique-index lookups are
//! prefix scans over `P ‖ 03 ‖ str(collection) ‖ str(path) ‖ encode_index_value(v)`.

use threads_protocol::id::ThreadId;
use threads_protocol::store::StoreError;
use threads_protocol::store::key::{KeyBuf, KeyReader};

use crate::fold::state_prefix;
use crate::query::encode::{TAG_BOOL, TAG_NULL, TAG_NUMBER, TAG_STRING};

/// Key space of collection configs.
pub const SPACE_COLLECTION: u8 = 0x01;
/// Key space of instances.
pub const SPACE_INSTANCE: u8 = 0x02;
/// Key space of secondary index entries.
pub const SPACE_INDEX: u8 = 0x03;

/// Builds the keys of one thread's document state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    prefix: Vec<u8>,
}

impl Keys {
    /// The keys of `thread`.
    pub fn new(thread: &ThreadId) -> Self {
        Keys {
            prefix: state_prefix(thread),
        }
    }

    fn space(&self, space: u8) -> KeyBuf {
        KeyBuf::with_prefix(&self.prefix).u8(space)
    }

    /// Prefix of every collection config.
    pub fn collections(&self) -> Vec<u8> {
        self.space(SPACE_COLLECTION).into_vec()
    }

    /// The key of a collection config.
    pub fn collection(&self, name: &str) -> Vec<u8> {
        self.space(SPACE_COLLECTION).str(name).into_vec()
    }

    /// Prefix of a collection's instances.
    pub fn instances(&self, collection: &str) -> Vec<u8> {
        self.space(SPACE_INSTANCE).str(collection).into_vec()
    }

    /// The key of an instance.
    pub fn instance(&self, collection: &str, id: &str) -> Vec<u8> {
        self.space(SPACE_INSTANCE)
            .str(collection)
            .str(id)
            .into_vec()
    }

    /// Prefix of every index entry of a collection.
    pub fn collection_indexes(&self, collection: &str) -> Vec<u8> {
        self.space(SPACE_INDEX).str(collection).into_vec()
    }

    /// Prefix of the entries of one index.
    pub fn index(&self, collection: &str, path: &str) -> Vec<u8> {
        self.space(SPACE_INDEX).str(collection).str(path).into_vec()
    }

    /// Prefix of the entries of one index holding one encoded value.
    pub fn index_value(&self, collection: &str, path: &str, value: &[u8]) -> Vec<u8> {
        let mut k = self.index(collection, path);
        k.extend_from_slice(value);
        k
    }

    /// The key of one index entry.
    pub fn index_entry(&self, collection: &str, path: &str, value: &[u8], id: &str) -> Vec<u8> {
        KeyBuf::with_prefix(&self.index_value(collection, path, value))
            .str(id)
            .into_vec()
    }
}

/// What a state key (or a scanned prefix) stands for, for the dependency rule
/// ([`crate::fold::Fold::dependencies`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Part {
    /// A collection's config key, or a prefix covering a whole collection (its instances, its
    /// index entries, one index): the name's config key.
    Collection(Vec<u8>),
    /// An instance key.
    Instance,
    /// An index entry key; the prefix selecting its index and value.
    Entry(usize),
    /// The prefix of one index and one value (a unique look-up).
    Value,
    /// Anything else.
    Other,
}

impl Keys {
    /// Classifies a state key (`whole`: the key must be complete; otherwise a scanned prefix).
    pub(crate) fn part(&self, key: &[u8], whole: bool) -> Part {
        self.try_part(key, whole).unwrap_or(Part::Other)
    }

    fn try_part(&self, key: &[u8], whole: bool) -> Option<Part> {
        let rest = key.strip_prefix(self.prefix.as_slice())?;
        let (&space, rest) = rest.split_first()?;
        let mut r = KeyReader::new(rest);
        let collection = r.str().ok()?;
        let config = || Part::Collection(self.collection(&collection));
        match space {
            SPACE_COLLECTION if whole => r.finish().ok().map(|()| config()),
            SPACE_INSTANCE if r.rest().is_empty() && !whole => Some(config()),
            SPACE_INSTANCE if whole => {
                r.str().ok()?;
                r.finish().ok().map(|()| Part::Instance)
            }
            SPACE_INDEX => {
                if r.rest().is_empty() && !whole {
                    return Some(config());
                }
                r.str().ok()?;
                let after_path = r.rest();
                if after_path.is_empty() && !whole {
                    return Some(config());
                }
                let n = encoded_value_len(after_path)?;
                let value_end = key.len() - after_path.len() + n;
                if !whole {
                    return (n == after_path.len()).then_some(Part::Value);
                }
                let mut r = KeyReader::new(&after_path[n..]);
                r.str().ok()?;
                r.finish().ok().map(|()| Part::Entry(value_end))
            }
            _ => None,
        }
    }
}

/// Reads the last `str` field of a key that starts with `prefix` (an instance ID after the
/// instances prefix).
pub fn id_after(prefix: &[u8], key: &[u8]) -> Result<String, StoreError> {
    let rest = key
        .strip_prefix(prefix)
        .ok_or_else(|| StoreError::Corrupt("document key outside its prefix".into()))?;
    let mut r = KeyReader::new(rest);
    let id = r.str()?;
    r.finish()?;
    Ok(id)
}

/// Splits the rest of an index entry key (after the index prefix) into the encoded value and
/// the instance ID.
pub fn split_index_entry(rest: &[u8]) -> Result<(&[u8], String), StoreError> {
    let n = encoded_value_len(rest)
        .ok_or_else(|| StoreError::Corrupt("malformed index entry value".into()))?;
    let (value, tail) = rest.split_at(n);
    let mut r = KeyReader::new(tail);
    let id = r.str()?;
    r.finish()?;
    Ok((value, id))
}

/// Length of the `encode_index_value` encoding at the start of `b`, if one is there.
fn encoded_value_len(b: &[u8]) -> Option<usize> {
    let n = match *b.first()? {
        TAG_NULL => 1,
        TAG_BOOL => 2,
        TAG_NUMBER => 9,
        TAG_STRING => {
            let mut i = 1;
            loop {
                match (b.get(i)?, b.get(i + 1)) {
                    (0, Some(0)) => break i + 2,
                    (0, Some(0xFF)) => i += 2,
                    (0, _) => return None,
                    _ => i += 1,
                }
            }
        }
        _ => return None,
    };
    (b.len() >= n).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::encode_index_value;
    use serde_json::json;

    #[test]
    fn index_entries_split() {
        for v in [
            json!(null),
            json!(true),
            json!(-2.5),
            json!("a\u{0}b"),
            json!(""),
        ] {
            let enc = encode_index_value(&v).unwrap();
            let mut rest = enc.clone();
            rest.extend(KeyBuf::new(0).str("id\u{0}x").into_vec().split_off(1));
            let (value, id) = split_index_entry(&rest).unwrap();
            assert_eq!(value, enc.as_slice());
            assert_eq!(id, "id\u{0}x");
        }
        assert!(split_index_entry(&[9]).is_err());
        assert!(split_index_entry(&[TAG_STRING, b'a', 0]).is_err());
        assert!(split_index_entry(&[TAG_NUMBER, 1, 2]).is_err());
    }
}
