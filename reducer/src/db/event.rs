//! The record body of the document database: one write transaction, as a JSON [`Batch`] of
//! [`DbEvent`]s (format in `spec/documents.md`).

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use threads_protocol::record::MAX_BODY_LEN;

/// The only batch format version.
pub const BATCH_VERSION: u32 = 1;

/// Largest encoded batch accepted by [`Batch::decode`]: the record body limit.
pub const MAX_BATCH_LEN: usize = MAX_BODY_LEN;

/// Most events one batch may carry.
pub const MAX_BATCH_EVENTS: usize = 10_000;

/// One write transaction: the events of one record, applied in order, all or nothing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    /// Format version, always [`BATCH_VERSION`] (`"v"`; absent means 1).
    #[serde(rename = "v", default = "default_version")]
    pub version: u32,
    /// The events, in the order they were written.
    pub events: Vec<DbEvent>,
}

fn default_version() -> u32 {
    BATCH_VERSION
}

/// A secondary index of a collection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexSpec {
    /// Dotted field path (`a.b`).
    pub path: String,
    /// Whether two instances may not hold the same value at `path`.
    #[serde(default)]
    pub unique: bool,
}

/// A collection's definition, as carried by collection events and kept in the state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionConfig {
    /// Collection name.
    pub name: String,
    /// JSON Schema every instance written must satisfy.
    pub schema: Value,
    /// Secondary indexes (the unique `_id` index is implicit and never listed).
    #[serde(default)]
    pub indexes: Vec<IndexSpec>,
    /// Write validator: a JavaScript function body over `(writer, event, instance)`; empty for
    /// none.
    #[serde(default)]
    pub write_validator: String,
    /// Read filter: a JavaScript function body over `(reader, instance)`; empty for none.
    #[serde(default)]
    pub read_filter: String,
}

/// One change to the database (JSON, internally tagged by `"type"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum DbEvent {
    /// Defines a new collection.
    CreateCollection(CollectionConfig),
    /// Replaces an existing collection's schema, indexes, validator and read filter.
    UpdateCollection(CollectionConfig),
    /// Removes a collection with all its instances.
    DeleteCollection {
        /// Collection name.
        name: String,
    },
    /// Creates an instance; `instance` is the full document, `_id` and `_mod` included.
    Create {
        /// Collection name.
        collection: String,
        /// Instance ID (equal to `instance._id`).
        id: String,
        /// The new document.
        instance: Value,
    },
    /// Changes an instance by an RFC 7386 merge patch from its previous document (`_mod`
    /// included); on a missing instance the patch is applied to `{}` (upsert).
    Save {
        /// Collection name.
        collection: String,
        /// Instance ID.
        id: String,
        /// The merge patch.
        patch: Value,
    },
    /// Deletes an instance (no effect if it does not exist).
    Delete {
        /// Collection name.
        collection: String,
        /// Instance ID.
        id: String,
    },
}

impl DbEvent {
    /// The collection the event is about.
    pub fn collection(&self) -> &str {
        match self {
            DbEvent::CreateCollection(c) | DbEvent::UpdateCollection(c) => &c.name,
            DbEvent::DeleteCollection { name } => name,
            DbEvent::Create { collection, .. }
            | DbEvent::Save { collection, .. }
            | DbEvent::Delete { collection, .. } => collection,
        }
    }

    /// The event's `"type"` name.
    pub fn kind(&self) -> &'static str {
        match self {
            DbEvent::CreateCollection(_) => "create_collection",
            DbEvent::UpdateCollection(_) => "update_collection",
            DbEvent::DeleteCollection { .. } => "delete_collection",
            DbEvent::Create { .. } => "create",
            DbEvent::Save { .. } => "save",
            DbEvent::Delete { .. } => "delete",
        }
    }
}

/// Why a record body is not a batch.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The body is larger than [`MAX_BATCH_LEN`].
    #[error("malformed batch: {len} bytes exceeds the limit of {max} bytes", max = MAX_BATCH_LEN)]
    TooLarge {
        /// Body length.
        len: usize,
    },
    /// The body is not a batch in JSON (the text says where and why).
    #[error("malformed batch: {0}")]
    Malformed(String),
    /// The batch has a version this implementation does not know.
    #[error("malformed batch: unsupported version {0} (expected {BATCH_VERSION})")]
    Version(u32),
    /// The batch has more than [`MAX_BATCH_EVENTS`] events.
    #[error("malformed batch: {count} events exceeds the limit of {MAX_BATCH_EVENTS}")]
    TooManyEvents {
        /// Number of events.
        count: usize,
    },
}

impl Batch {
    /// A version-1 batch of these events.
    pub fn new(events: Vec<DbEvent>) -> Self {
        Batch {
            version: BATCH_VERSION,
            events,
        }
    }

    /// The record body: compact JSON, compressed when it is long enough to gain from it
    /// ([`body::seal`](super::body::seal)).
    pub fn encode(&self) -> Vec<u8> {
        super::body::seal(self.encode_json())
    }

    /// The batch as compact JSON, never compressed (for bodies folded and dropped at once,
    /// such as dry runs). [`Batch::decode`] reads both forms.
    pub fn encode_json(&self) -> Vec<u8> {
        // Serializing plain structs and `Value`s to a Vec cannot fail (all map keys are strings).
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a record body (JSON, or JSON in a zstd frame), checking size, syntax, version
    /// and event count.
    pub fn decode(body: &[u8]) -> Result<Batch, BatchError> {
        if body.len() > MAX_BATCH_LEN {
            return Err(BatchError::TooLarge { len: body.len() });
        }
        let json = super::body::open(body)?;
        let mut events = Vec::new();
        decode_events(&json, &mut |event| {
            events.push(event);
            true
        })?;
        Ok(Batch::new(events))
    }
}

/// Reads the events of a batch's JSON (an opened body, see [`super::body::open`]) in order,
/// handing each to `sink` as soon as it is read, so that a caller can apply the first events
/// while the rest are still being parsed. The sink returns `false` to stop reading: the result
/// is then `Ok(false)`, with no verdict on the rest. Otherwise the result is the verdict of
/// [`Batch::decode`] on the same JSON (`Ok(true)`: a valid batch, and the sink got all its
/// events), but the sink may have been given events of a batch that then proves invalid.
pub(crate) fn decode_events<F: FnMut(DbEvent) -> bool>(
    json: &[u8],
    sink: &mut F,
) -> Result<bool, BatchError> {
    let mut stream = Stream {
        sink,
        count: 0,
        stopped: false,
        version: BATCH_VERSION,
    };
    let mut de = serde_json::Deserializer::from_slice(json);
    let one_pass = de
        .deserialize_map(TopVisitor(&mut stream))
        .and_then(|()| de.end());
    if stream.stopped {
        return Ok(false);
    }
    let (version, count) = match one_pass {
        Ok(()) => (stream.version, stream.count),
        // Anything the one-pass reader does not take (collection events, another member
        // order, errors) is read by the derived decoder, whose verdicts and messages stand.
        // The events the one-pass reader handed over are the derived decoder's first ones.
        Err(_) => {
            let batch: Batch =
                serde_json::from_slice(json).map_err(|e| BatchError::Malformed(e.to_string()))?;
            let count = batch.events.len();
            let handed = stream.count.min(MAX_BATCH_EVENTS);
            for event in batch.events.into_iter().take(MAX_BATCH_EVENTS).skip(handed) {
                if !(stream.sink)(event) {
                    return Ok(false);
                }
            }
            (batch.version, count)
        }
    };
    if version != BATCH_VERSION {
        return Err(BatchError::Version(version));
    }
    if count > MAX_BATCH_EVENTS {
        return Err(BatchError::TooManyEvents { count });
    }
    Ok(true)
}

/// The kind, collection and instance ID of one event, read without its documents (see
/// [`Batch::decode_heads`]).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct EventHead {
    /// The event's `"type"` name.
    #[serde(rename = "type")]
    pub kind: String,
    /// The collection of an instance event.
    #[serde(default)]
    pub collection: Option<String>,
    /// The instance ID of an instance event.
    #[serde(default)]
    pub id: Option<String>,
}

#[derive(Deserialize)]
struct Heads {
    events: Vec<EventHead>,
}

impl Batch {
    /// The heads of the events of a body that [`Batch::decode`] accepts, skipping instances,
    /// patches and schemas without building them (publishing needs only the heads). Bodies
    /// `decode` rejects may be accepted here: check them with `decode` first.
    pub fn decode_heads(body: &[u8]) -> Result<Vec<EventHead>, BatchError> {
        if body.len() > MAX_BATCH_LEN {
            return Err(BatchError::TooLarge { len: body.len() });
        }
        let json = super::body::open(body)?;
        let heads: Heads =
            serde_json::from_slice(&json).map_err(|e| BatchError::Malformed(e.to_string()))?;
        Ok(heads.events)
    }
}

/// The state of a one-pass read of a batch (the derived decoder of the internally tagged
/// [`DbEvent`] buffers every event and parses it twice). It accepts only bodies the derived
/// decoder accepts, with the same result: `{"v": …, "events": […]}` members once each, no
/// other member, instance events whose `"type"` comes first (as [`Batch::encode`] writes
/// them), each field once, no unknown field.
struct Stream<'s, F> {
    sink: &'s mut F,
    /// Events read (the sink gets the first [`MAX_BATCH_EVENTS`]).
    count: usize,
    /// The sink asked to stop.
    stopped: bool,
    version: u32,
}

/// The members of a batch.
enum TopMember {
    Version,
    Events,
}

impl<'de> Deserialize<'de> for TopMember {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = TopMember;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a member of a batch")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TopMember, E> {
                match v {
                    "v" => Ok(TopMember::Version),
                    "events" => Ok(TopMember::Events),
                    _ => Err(E::custom("not read in one pass")),
                }
            }
        }
        d.deserialize_str(V)
    }
}

struct TopVisitor<'a, 's, F>(&'a mut Stream<'s, F>);

impl<'de, F: FnMut(DbEvent) -> bool> Visitor<'de> for TopVisitor<'_, '_, F> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a batch")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let fallback = || de::Error::custom("not read in one pass");
        let (mut version, mut events) = (None, false);
        while let Some(member) = map.next_key::<TopMember>()? {
            match member {
                TopMember::Version if version.is_none() => version = Some(map.next_value()?),
                TopMember::Events if !events => {
                    map.next_value_seed(EventsSeed(&mut *self.0))?;
                    events = true;
                }
                _ => return Err(fallback()),
            }
        }
        if !events {
            return Err(fallback());
        }
        self.0.version = version.unwrap_or(BATCH_VERSION);
        Ok(())
    }
}

struct EventsSeed<'a, 's, F>(&'a mut Stream<'s, F>);

impl<'de, F: FnMut(DbEvent) -> bool> de::DeserializeSeed<'de> for EventsSeed<'_, '_, F> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, F: FnMut(DbEvent) -> bool> Visitor<'de> for EventsSeed<'_, '_, F> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a list of events")
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let stream = self.0;
        while let Some(OnePassEvent(event)) = seq.next_element()? {
            stream.count += 1;
            if stream.count <= MAX_BATCH_EVENTS && !(stream.sink)(event) {
                stream.stopped = true;
                return Err(de::Error::custom("stopped by the reader"));
            }
        }
        Ok(())
    }
}

struct OnePassEvent(DbEvent);

/// The members of an instance event.
enum Member {
    Type,
    Collection,
    Id,
    Instance,
    Patch,
}

impl<'de> Deserialize<'de> for Member {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Member;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a member of an instance event")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Member, E> {
                Ok(match v {
                    "type" => Member::Type,
                    "collection" => Member::Collection,
                    "id" => Member::Id,
                    "instance" => Member::Instance,
                    "patch" => Member::Patch,
                    _ => return Err(E::custom("not read in one pass")),
                })
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for OnePassEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(EventVisitor)
    }
}

struct EventVisitor;

impl<'de> Visitor<'de> for EventVisitor {
    type Value = OnePassEvent;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an instance event whose \"type\" comes first")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OnePassEvent, A::Error> {
        let fallback = || de::Error::custom("not read in one pass");
        if !matches!(map.next_key::<Member>()?, Some(Member::Type)) {
            return Err(fallback());
        }
        let kind: String = map.next_value()?;
        let (mut collection, mut id, mut document) = (None, None, None);
        while let Some(member) = map.next_key::<Member>()? {
            match member {
                Member::Collection if collection.is_none() => {
                    collection = Some(map.next_value::<String>()?)
                }
                Member::Id if id.is_none() => id = Some(map.next_value::<String>()?),
                Member::Instance if kind == "create" && document.is_none() => {
                    document = Some(map.next_value::<Value>()?)
                }
                Member::Patch if kind == "save" && document.is_none() => {
                    document = Some(map.next_value::<Value>()?)
                }
                _ => return Err(fallback()),
            }
        }
        let (Some(collection), Some(id)) = (collection, id) else {
            return Err(fallback());
        };
        let event = match (kind.as_str(), document) {
            ("create", Some(instance)) => DbEvent::Create {
                collection,
                id,
                instance,
            },
            ("save", Some(patch)) => DbEvent::Save {
                collection,
                id,
                patch,
            },
            ("delete", None) => DbEvent::Delete { collection, id },
            _ => return Err(fallback()),
        };
        Ok(OnePassEvent(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The derived decoder alone (what `Batch::decode` did before the one-pass reader).
    fn derived(bytes: &[u8]) -> Result<Batch, String> {
        serde_json::from_slice::<Batch>(bytes).map_err(|e| e.to_string())
    }

    /// The one-pass reader alone: the batch, if it takes the JSON.
    fn one_pass(bytes: &[u8]) -> Option<Batch> {
        let mut events = Vec::new();
        let version = {
            let mut sink = |e| {
                events.push(e);
                true
            };
            let mut stream = Stream {
                sink: &mut sink,
                count: 0,
                stopped: false,
                version: BATCH_VERSION,
            };
            let mut de = serde_json::Deserializer::from_slice(bytes);
            de.deserialize_map(TopVisitor(&mut stream))
                .and_then(|()| de.end())
                .ok()?;
            stream.version
        };
        Some(Batch { version, events })
    }

    #[test]
    fn one_pass_reads_what_the_derived_decoder_reads() {
        let bodies: &[&str] = &[
            r#"{"events":[{"type":"create","collection":"c","id":"a","instance":{"_id":"a","n":1.5,"m":-0,"z":[1,{"q":null}]}}]}"#,
            r#"{"v":1,"events":[{"type":"save","collection":"c","id":"a","patch":{"x":null}},{"type":"delete","collection":"c","id":"b"}]}"#,
            r#"{"events":[{"collection":"c","type":"create","id":"a","instance":{}}]}"#,
            r#"{"events":[{"type":"create","collection":"c","id":"a","id":"b","instance":{}}]}"#,
            r#"{"events":[{"type":"create","collection":"c","id":"a","instance":{},"x":1}]}"#,
            r#"{"events":[{"type":"create","collection":"c","id":"a"}]}"#,
            r#"{"events":[{"type":"create","collection":"c","id":"a","patch":{}}]}"#,
            r#"{"events":[{"type":"delete","collection":"c","id":"a","instance":{}}]}"#,
            r#"{"events":[{"type":"save","collection":"c","patch":{}}]}"#,
            r#"{"events":[{"type":"frobnicate","collection":"c","id":"a"}]}"#,
            r#"{"events":[{"type":3,"collection":"c","id":"a"}]}"#,
            r#"{"events":[{"type":"create","type":"create","collection":"c","id":"a","instance":{}}]}"#,
            r#"{"events":[{"typ\u0065":"delete","c\u006fllection":"c","id":"\u0061"}]}"#,
            r#"{"events":[{"type":"delete","collection":1,"id":"a"}]}"#,
            r#"{"events":[{"type":"create_collection","name":"c","schema":{}}]}"#,
            r#"{"events":[{"type":"delete","collection":"c","id":"a"}],"w":1}"#,
            r#"{"events":[{"type":"delete","collection":"c","id":"a"}],"v":2}"#,
            r#"{"events":[{"type":"delete","collection":"c","id":"a"}]} x"#,
            r#"{"events":[[]]}"#,
            r#"{"events":{}}"#,
            r#"[]"#,
            r#"[1,[{"type":"delete","collection":"c","id":"a"}]]"#,
            r#"{"v":1,"v":1,"events":[]}"#,
            r#"{"events":[],"events":[]}"#,
            r#"{"v":"1","events":[]}"#,
            r#"{"v":1}"#,
            r#"{"events":[{"type":"delete","collection":"c","id":"a"}],"v":1}"#,
        ];
        for body in bodies {
            let expected = derived(body.as_bytes());
            if let Some(one) = one_pass(body.as_bytes()) {
                assert_eq!(Ok(one), expected, "{body}");
            }
            let decoded = Batch::decode(body.as_bytes()).map_err(|e| e.to_string());
            let expected = expected
                .map_err(|e| format!("malformed batch: {e}"))
                .and_then(|b| {
                    if b.version == BATCH_VERSION {
                        Ok(b)
                    } else {
                        Err(BatchError::Version(b.version).to_string())
                    }
                });
            assert_eq!(decoded, expected, "{body}");
        }
        // An encoded batch of instance events is read in one pass.
        let batch = Batch::new(vec![
            DbEvent::Create {
                collection: "c".into(),
                id: "a".into(),
                instance: serde_json::json!({"_id": "a", "k": [1, 2]}),
            },
            DbEvent::Delete {
                collection: "c".into(),
                id: "a".into(),
            },
        ]);
        let json = batch.encode_json();
        assert_eq!(one_pass(&json).as_ref(), Some(&batch));
        assert_eq!(Batch::decode(&batch.encode()), Ok(batch));
    }

    /// Every event `decode_events` hands over, and its result.
    fn handed(json: &str) -> (Vec<DbEvent>, Result<bool, BatchError>) {
        let mut events = Vec::new();
        let result = decode_events(json.as_bytes(), &mut |e| {
            events.push(e);
            true
        });
        (events, result)
    }

    fn delete(id: &str) -> DbEvent {
        DbEvent::Delete {
            collection: "c".into(),
            id: id.into(),
        }
    }

    #[test]
    fn events_are_handed_over_in_order_whichever_reader_reads_them() {
        // The one-pass reader stops at the collection event; the derived decoder's events
        // after the ones already handed over follow.
        let body = r#"{"events":[{"type":"delete","collection":"c","id":"a"},{"type":"delete_collection","name":"c"},{"type":"delete","collection":"c","id":"b"}]}"#;
        let (events, result) = handed(body);
        assert_eq!(result, Ok(true));
        assert_eq!(
            events,
            vec![
                delete("a"),
                DbEvent::DeleteCollection { name: "c".into() },
                delete("b")
            ]
        );
        assert_eq!(Batch::decode(body.as_bytes()).map(|b| b.events), Ok(events));

        // A batch that proves malformed after its first events: they were handed over, and
        // the verdict is the derived decoder's.
        let body = r#"{"events":[{"type":"delete","collection":"c","id":"a"},{"type":"delete","collection":"c","id":7}]}"#;
        let (events, result) = handed(body);
        assert_eq!(events, vec![delete("a")]);
        assert_eq!(
            result.map_err(|e| e.to_string()),
            Err(Batch::decode(body.as_bytes()).unwrap_err().to_string())
        );
        assert!(
            matches!(handed(r#"{"events":[{"type":"delete","collection":"c","id":"a"}],"v":2}"#), (e, Err(BatchError::Version(2))) if e.len() == 1)
        );
    }

    #[test]
    fn the_sink_stops_reading_and_gets_at_most_the_limit() {
        let one = r#"{"type":"delete","collection":"c","id":"a"}"#;
        let body = format!(r#"{{"events":[{one},{one},{one}]}}"#);
        let mut calls = 0;
        let result = decode_events(body.as_bytes(), &mut |_| {
            calls += 1;
            calls < 2
        });
        assert_eq!((result, calls), (Ok(false), 2));

        let all = vec![one; MAX_BATCH_EVENTS + 1].join(",");
        let (events, result) = handed(&format!(r#"{{"events":[{all}]}}"#));
        assert_eq!(events.len(), MAX_BATCH_EVENTS);
        assert_eq!(
            result,
            Err(BatchError::TooManyEvents {
                count: MAX_BATCH_EVENTS + 1
            })
        );
    }
}
