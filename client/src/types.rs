//! Serde-facing types of the API, and their conversions from and to the wire messages.

use crate::error::{Error, Result};
use crate::proto::db as pb;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use threads_protocol::addr::ThreadAddr;
use threads_protocol::id::ThreadId;
use threads_protocol::key::ThreadKey;

/// One index of a collection: a field path, optionally unique.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// Field path (`"email"`, `"address.city"`).
    pub path: String,
    /// Whether two instances may not share a value.
    #[serde(default)]
    pub unique: bool,
}

impl Index {
    /// Parses the CLI form `path` or `path:unique`.
    pub fn parse(s: &str) -> Result<Index> {
        let (path, unique) = match s.rsplit_once(':') {
            Some((p, "unique")) => (p, true),
            Some(_) => {
                return Err(Error::invalid(
                    "index",
                    format!("{s:?} (use path[:unique])"),
                ));
            }
            None => (s, false),
        };
        if path.is_empty() {
            return Err(Error::invalid("index", "empty field path"));
        }
        Ok(Index {
            path: path.to_string(),
            unique,
        })
    }
}

/// A collection's definition.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CollectionConfig {
    /// Collection name.
    pub name: String,
    /// JSON schema of the instances; `Value::Null` lets the server use its default schema.
    #[serde(default)]
    pub schema: Value,
    /// Indexes, besides the implicit `_id` index.
    #[serde(default)]
    pub indexes: Vec<Index>,
    /// JavaScript body of the write validator (empty: none).
    #[serde(default)]
    pub write_validator: String,
    /// JavaScript body of the read filter (empty: none).
    #[serde(default)]
    pub read_filter: String,
}

impl CollectionConfig {
    /// A collection named `name` with `schema` and nothing else.
    pub fn new(name: impl Into<String>, schema: Value) -> CollectionConfig {
        CollectionConfig {
            name: name.into(),
            schema,
            ..Default::default()
        }
    }

    /// Adds an index.
    pub fn index(mut self, path: impl Into<String>, unique: bool) -> CollectionConfig {
        self.indexes.push(Index {
            path: path.into(),
            unique,
        });
        self
    }

    pub(crate) fn to_pb(&self) -> Result<pb::CollectionConfig> {
        let schema = if self.schema.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(&self.schema)?
        };
        Ok(pb::CollectionConfig {
            name: self.name.clone(),
            schema,
            indexes: self.indexes.iter().map(index_to_pb).collect(),
            write_validator: self.write_validator.clone(),
            read_filter: self.read_filter.clone(),
        })
    }

    pub(crate) fn from_pb(r: pb::GetCollectionInfoReply) -> Result<CollectionConfig> {
        let schema = if r.schema.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&r.schema)?
        };
        Ok(CollectionConfig {
            name: r.name,
            schema,
            indexes: r.indexes.into_iter().map(index_from_pb).collect(),
            write_validator: r.write_validator,
            read_filter: r.read_filter,
        })
    }
}

pub(crate) fn index_to_pb(i: &Index) -> pb::Index {
    pb::Index {
        path: i.path.clone(),
        unique: i.unique,
    }
}

pub(crate) fn index_from_pb(i: pb::Index) -> Index {
    Index {
        path: i.path,
        unique: i.unique,
    }
}

/// What the server knows of one database.
#[derive(Debug, Clone, PartialEq)]
pub struct DbInfo {
    /// The database (thread) id.
    pub id: ThreadId,
    /// The local name (may be empty).
    pub name: String,
    /// The thread key: what another peer needs, with an address, to join.
    pub key: ThreadKey,
    /// The thread's addresses on the serving host.
    pub addrs: Vec<ThreadAddr>,
}

impl DbInfo {
    pub(crate) fn from_pb(id: ThreadId, r: pb::GetDbInfoReply) -> Result<DbInfo> {
        let key = ThreadKey::from_bytes(&r.key).map_err(|e| Error::invalid("db key", e))?;
        let addrs = r
            .addrs
            .iter()
            .map(|a| ThreadAddr::from_bytes(a).map_err(|e| Error::invalid("thread address", e)))
            .collect::<Result<_>>()?;
        Ok(DbInfo {
            id,
            name: r.name,
            key,
            addrs,
        })
    }
}

/// Options of [`crate::Client::new_db`].
#[derive(Debug, Clone, Default)]
pub struct NewDb {
    /// The id to use; a random one when `None`.
    pub id: Option<ThreadId>,
    /// The local name (letters, digits, `-` and `_`; empty for none).
    pub name: String,
    /// The thread key to use (64 bytes, with read key); a random one when `None`.
    pub key: Option<ThreadKey>,
    /// Collections created with the database, all or nothing.
    pub collections: Vec<CollectionConfig>,
}

/// A value a query criterion compares with.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryValue {
    /// A JSON string.
    String(String),
    /// A JSON boolean (only `eq` and `ne` are allowed with it).
    Bool(bool),
    /// A JSON number.
    Float(f64),
}

impl QueryValue {
    fn to_json(&self) -> Value {
        match self {
            QueryValue::String(s) => json!({ "string": s }),
            QueryValue::Bool(b) => json!({ "bool": b }),
            QueryValue::Float(f) => json!({ "float": f }),
        }
    }
}

impl From<&str> for QueryValue {
    fn from(s: &str) -> Self {
        QueryValue::String(s.to_string())
    }
}
impl From<String> for QueryValue {
    fn from(s: String) -> Self {
        QueryValue::String(s)
    }
}
impl From<bool> for QueryValue {
    fn from(b: bool) -> Self {
        QueryValue::Bool(b)
    }
}
impl From<f64> for QueryValue {
    fn from(f: f64) -> Self {
        QueryValue::Float(f)
    }
}
impl From<i64> for QueryValue {
    fn from(i: i64) -> Self {
        QueryValue::Float(i as f64)
    }
}
impl From<i32> for QueryValue {
    fn from(i: i32) -> Self {
        QueryValue::Float(f64::from(i))
    }
}

/// A `Find` query in go-threads' JSON syntax (`spec/queries.md`), built from raw JSON or with
/// the small builder: `Query::field("age").ge(18).and("name").eq("Ada").sort("age", true)`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Query {
    json: Map<String, Value>,
}

/// The field half of a criterion; finish it with a comparison (`eq`, `ne`, `gt`, …).
#[derive(Debug, Clone)]
pub struct Where {
    query: Query,
    path: String,
}

impl Query {
    /// Every instance.
    pub fn all() -> Query {
        Query::default()
    }

    /// A query from the members of a go-threads query JSON object (`ands`, `ors`, `sort`, …).
    pub fn raw(json: Map<String, Value>) -> Query {
        Query { json }
    }

    /// A query from a JSON value: an object or `null`.
    pub fn from_json(v: Value) -> Result<Query> {
        match v {
            Value::Null => Ok(Query::all()),
            Value::Object(json) => Ok(Query { json }),
            other => Err(Error::invalid(
                "query",
                format!("expected a JSON object, got {other}"),
            )),
        }
    }

    /// Starts a criterion on the field at `path` (all criteria must hold).
    pub fn field(path: impl Into<String>) -> Where {
        Query::all().and(path)
    }

    /// Adds another criterion on the field at `path`.
    pub fn and(self, path: impl Into<String>) -> Where {
        Where {
            query: self,
            path: path.into(),
        }
    }

    /// Matches also what `other` matches (go-threads' rule: `ors` decide only when this query
    /// has no criteria of its own).
    pub fn or(mut self, other: Query) -> Query {
        push(&mut self.json, "ors", Value::Object(other.json));
        self
    }

    /// Orders by the field at `path`, descending when `desc`.
    pub fn sort(mut self, path: impl Into<String>, desc: bool) -> Query {
        self.json.insert(
            "sort".into(),
            json!({"fieldPath": path.into(), "desc": desc}),
        );
        self
    }

    /// At most `n` instances.
    pub fn limit(mut self, n: u64) -> Query {
        self.json.insert("limit".into(), json!(n));
        self
    }

    /// Skips the first `n` instances.
    pub fn skip(mut self, n: u64) -> Query {
        self.json.insert("skip".into(), json!(n));
        self
    }

    /// Starts after the instance `id` (paging).
    pub fn seek(mut self, id: impl Into<String>) -> Query {
        self.json.insert("seek".into(), json!(id.into()));
        self
    }

    /// Reads through the index on `path`.
    pub fn use_index(mut self, path: impl Into<String>) -> Query {
        self.json.insert("index".into(), json!(path.into()));
        self
    }

    /// The query JSON sent to the server.
    pub fn to_json(&self) -> Value {
        Value::Object(self.json.clone())
    }
}

fn push(map: &mut Map<String, Value>, member: &str, v: Value) {
    match map.get_mut(member) {
        Some(Value::Array(a)) => a.push(v),
        _ => {
            map.insert(member.into(), Value::Array(vec![v]));
        }
    }
}

impl Where {
    fn op(mut self, op: u8, v: QueryValue) -> Query {
        let c = json!({"fieldPath": self.path, "operation": op, "value": v.to_json()});
        push(&mut self.query.json, "ands", c);
        self.query
    }
    /// Field equals `v`.
    pub fn eq(self, v: impl Into<QueryValue>) -> Query {
        self.op(0, v.into())
    }
    /// Field differs from `v` (and exists with the same type).
    pub fn ne(self, v: impl Into<QueryValue>) -> Query {
        self.op(1, v.into())
    }
    /// Field greater than `v`.
    pub fn gt(self, v: impl Into<QueryValue>) -> Query {
        self.op(2, v.into())
    }
    /// Field less than `v`.
    pub fn lt(self, v: impl Into<QueryValue>) -> Query {
        self.op(3, v.into())
    }
    /// Field greater than or equal to `v`.
    pub fn ge(self, v: impl Into<QueryValue>) -> Query {
        self.op(4, v.into())
    }
    /// Field less than or equal to `v`.
    pub fn le(self, v: impl Into<QueryValue>) -> Query {
        self.op(5, v.into())
    }
}

/// The kind of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// An instance was created.
    Create,
    /// An instance was saved (replaced).
    Save,
    /// An instance was deleted.
    Delete,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Action::Create => "create",
            Action::Save => "save",
            Action::Delete => "delete",
        })
    }
}

/// Which changes a listener wants; empty members match everything. Filters are OR-ed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenFilter {
    /// Only this collection.
    pub collection: Option<String>,
    /// Only this instance.
    pub instance_id: Option<String>,
    /// Only this action.
    pub action: Option<Action>,
}

impl ListenFilter {
    /// Every change of `collection`.
    pub fn collection(name: impl Into<String>) -> ListenFilter {
        ListenFilter {
            collection: Some(name.into()),
            ..Default::default()
        }
    }

    pub(crate) fn to_pb(&self) -> pb::listen_request::Filter {
        use pb::listen_request::filter::Action as A;
        let action = match self.action {
            None => A::All,
            Some(Action::Create) => A::Create,
            Some(Action::Save) => A::Save,
            Some(Action::Delete) => A::Delete,
        };
        pb::listen_request::Filter {
            collection_name: self.collection.clone().unwrap_or_default(),
            instance_id: self.instance_id.clone().unwrap_or_default(),
            action: action as i32,
        }
    }
}

/// One change seen by a listener.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// The collection.
    pub collection: String,
    /// The instance id.
    pub instance_id: String,
    /// What happened.
    pub action: Action,
    /// The instance after the change (`None` for deletes).
    pub instance: Option<Value>,
}

impl Change {
    pub(crate) fn from_pb(r: pb::ListenReply) -> Result<Change> {
        use pb::listen_reply::Action as A;
        let action = match A::try_from(r.action) {
            Ok(A::Create) => Action::Create,
            Ok(A::Save) => Action::Save,
            Ok(A::Delete) => Action::Delete,
            Err(_) => return Err(Error::Protocol(format!("unknown action {}", r.action))),
        };
        let instance = if r.instance.is_empty() {
            None
        } else {
            Some(serde_json::from_slice(&r.instance)?)
        };
        Ok(Change {
            collection: r.collection_name,
            instance_id: r.instance_id,
            action,
            instance,
        })
    }

    /// The instance as a `T` (`None` for deletes).
    pub fn instance_as<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        match &self.instance {
            None => Ok(None),
            Some(v) => Ok(Some(T::deserialize(v)?)),
        }
    }
}

/// Serializes each instance to JSON bytes.
pub(crate) fn to_json_bytes<T: Serialize>(instances: &[T]) -> Result<Vec<Vec<u8>>> {
    instances
        .iter()
        .map(|i| serde_json::to_vec(i).map_err(Error::from))
        .collect()
}

/// Parses each instance from JSON bytes.
pub(crate) fn from_json_bytes<T: DeserializeOwned>(instances: &[Vec<u8>]) -> Result<Vec<T>> {
    instances
        .iter()
        .map(|i| serde_json::from_slice(i).map_err(Error::from))
        .collect()
}

#[cfg(test)]
#[path = "types_tests.rs"]
mod tests;
