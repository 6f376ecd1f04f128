//! Wire bytes to node types, and node errors to gRPC statuses with go-threads' texts
//! (COMPAT §d): `InvalidArgument` for malformed input, `NotFound` for unknown databases,
//! collections and instances, `AlreadyExists` for duplicates, `PermissionDenied` when a write
//! validator refuses.

use crate::node::NodeError;
use serde_json::Value;
use threads_protocol::engine::EngineError;
use threads_protocol::id::ThreadId;
use threads_reducer::db::{CollectionConfig, DbError, IndexSpec};
use threads_reducer::docs::DocsError;
use threads_reducer::query::Query;
use tonic::{Code, Status};

use super::proto::db as pb;

/// The schema a collection gets when none (or `{}`) is given, as the JS client sends it.
pub const DEFAULT_SCHEMA: &str = r#"{"properties":{"_id":{"type":"string"}}}"#;

/// Parses a raw thread id (`dbID`); errors carry go-threads' messages.
pub fn db_id(bytes: &[u8]) -> Result<ThreadId, Status> {
    ThreadId::from_bytes(bytes).map_err(|e| Status::invalid_argument(e.to_string()))
}

/// Refuses an empty collection name before anything is looked up.
pub fn collection_name(name: &str) -> Result<&str, Status> {
    if name.is_empty() {
        return Err(Status::invalid_argument("collection name is required"));
    }
    Ok(name)
}

/// Parses one instance: UTF-8 JSON that must be an object. `i` is its place in the request.
pub fn instance(i: usize, bytes: &[u8]) -> Result<Value, Status> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| Status::invalid_argument(format!("invalid instance {i}: not JSON: {e}")))?;
    if !v.is_object() {
        return Err(Status::invalid_argument(format!(
            "invalid instance {i}: an instance must be a JSON object"
        )));
    }
    Ok(v)
}

/// Parses every instance of a request; at least one is needed.
pub fn instances(list: &[Vec<u8>]) -> Result<Vec<Value>, Status> {
    if list.is_empty() {
        return Err(Status::invalid_argument("no instances given"));
    }
    list.iter()
        .enumerate()
        .map(|(i, b)| instance(i, b))
        .collect()
}

/// Parses `queryJSON` (go-threads syntax; empty bytes mean `{}`).
pub fn query(bytes: &[u8]) -> Result<Query, Status> {
    if bytes.is_empty() {
        return Ok(Query::default());
    }
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| Status::invalid_argument(format!("invalid query: malformed JSON: {e}")))?;
    Query::from_threads_json(&v).map_err(|e| Status::invalid_argument(e.to_string()))
}

/// A collection definition from the wire. An empty schema (or `{}`) gets [`DEFAULT_SCHEMA`].
pub fn collection_config(c: pb::CollectionConfig) -> Result<CollectionConfig, Status> {
    let schema: Value = if c.schema.is_empty() {
        serde_json::from_str(DEFAULT_SCHEMA).expect("the default schema is JSON")
    } else {
        serde_json::from_slice(&c.schema)
            .map_err(|e| Status::invalid_argument(format!("invalid schema: not JSON: {e}")))?
    };
    let schema = match &schema {
        Value::Object(m) if m.is_empty() => {
            serde_json::from_str(DEFAULT_SCHEMA).expect("the default schema is JSON")
        }
        _ => schema,
    };
    Ok(CollectionConfig {
        name: c.name,
        schema,
        indexes: c
            .indexes
            .into_iter()
            .map(|i| IndexSpec {
                path: i.path,
                unique: i.unique,
            })
            .collect(),
        write_validator: c.write_validator,
        read_filter: c.read_filter,
    })
}

/// A collection definition for the wire (schema as JSON bytes).
pub fn collection_info(c: CollectionConfig) -> pb::GetCollectionInfoReply {
    pb::GetCollectionInfoReply {
        name: c.name,
        schema: serde_json::to_vec(&c.schema).unwrap_or_default(),
        indexes: indexes(&c.indexes),
        write_validator: c.write_validator,
        read_filter: c.read_filter,
    }
}

/// Index specs for the wire (the implicit `_id` index is never listed).
pub fn indexes(list: &[IndexSpec]) -> Vec<pb::Index> {
    list.iter()
        .map(|i| pb::Index {
            path: i.path.clone(),
            unique: i.unique,
        })
        .collect()
}

/// JSON bytes of an instance.
pub fn to_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// The status code for a rule a write broke, from its message.
fn rejection_code(msg: &str) -> Code {
    if msg.contains("collection not found") {
        Code::NotFound
    } else if msg.contains("already exist") || msg.contains("already registered") {
        Code::AlreadyExists
    } else if msg.contains(threads_reducer::js::Denied::MESSAGE) {
        Code::PermissionDenied
    } else {
        Code::InvalidArgument
    }
}

/// The status of a node error.
pub fn status(e: NodeError) -> Status {
    match e {
        NodeError::Docs(DocsError::Engine(e)) | NodeError::Engine(e) => engine_status(e),
        NodeError::Docs(DocsError::Db(e)) => db_status(e),
        NodeError::Docs(DocsError::Rejected(msg)) => Status::new(rejection_code(&msg), msg),
        NodeError::Docs(DocsError::Invalid(msg)) => Status::invalid_argument(msg),
        NodeError::Invalid(msg) => Status::invalid_argument(msg),
        NodeError::NotFound(msg) => Status::not_found(msg),
        NodeError::InUse(msg) => Status::failed_precondition(msg),
        NodeError::Stopped => Status::unavailable("the node is shutting down"),
        e @ (NodeError::Docs(DocsError::Store(_)) | NodeError::Store(_)) => {
            Status::internal(e.to_string())
        }
        e => Status::internal(e.to_string()),
    }
}

fn db_status(e: DbError) -> Status {
    match e {
        DbError::CollectionNotFound(_) | DbError::InstanceNotFound(_) => {
            Status::not_found(e.to_string())
        }
        DbError::Query(q) => Status::invalid_argument(q.to_string()),
        DbError::Store(s) => Status::internal(s.to_string()),
    }
}

fn engine_status(e: EngineError) -> Status {
    match e {
        EngineError::ThreadNotFound => Status::not_found("thread not found"),
        EngineError::ThreadExists => Status::already_exists("db already exists"),
        EngineError::Rejected(msg) => Status::new(rejection_code(&msg), msg),
        EngineError::NoReadKey(_) => Status::failed_precondition(e.to_string()),
        EngineError::NoPeerInAddress | EngineError::Record(_) => {
            Status::invalid_argument(e.to_string())
        }
        e => Status::internal(e.to_string()),
    }
}

/// The text of an operation's error, for `transactionError` fields.
pub fn op_error(e: NodeError) -> String {
    status(e).message().to_owned()
}
