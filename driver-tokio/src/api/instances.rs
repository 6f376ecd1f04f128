//! Instances: Create, Save, Delete, Has, Find, FindByID, Verify. Unary writes are all or
//! nothing (go-threads' unary calls are one transaction each).

use super::convert::{self, status};
use super::proto::db as pb;
use super::service::{DbApi, reader_of};
use crate::NodeError;
use crate::node::{OpOutput, WriteMode, WriteOp};
use serde_json::Value;
use threads_protocol::id::ThreadId;
use threads_protocol::identity::PublicKey;
use threads_reducer::db::DbError;
use threads_reducer::docs::DocsError;
use threads_reducer::query::Query;
use tonic::Status;

/// Whether an error of a delete operation only says that some ids did not exist (which
/// go-threads' Delete ignores).
pub(super) fn only_missing(e: &NodeError) -> bool {
    matches!(
        e,
        NodeError::Docs(DocsError::Db(DbError::InstanceNotFound(_)))
    )
}

/// Create operations for parsed instances.
pub(super) fn creates(collection: &str, instances: Vec<Value>) -> Vec<WriteOp> {
    instances
        .into_iter()
        .map(|instance| WriteOp::Create {
            collection: collection.to_owned(),
            instance,
        })
        .collect()
}

/// Save operations for parsed instances.
pub(super) fn saves(collection: &str, instances: Vec<Value>) -> Vec<WriteOp> {
    instances
        .into_iter()
        .map(|instance| WriteOp::Save {
            collection: collection.to_owned(),
            instance,
        })
        .collect()
}

impl DbApi {
    pub(super) async fn do_create(
        &self,
        caller: Option<PublicKey>,
        r: pb::CreateRequest,
    ) -> Result<pb::CreateReply, Status> {
        let db = convert::db_id(&r.db_id)?;
        let coll = convert::collection_name(&r.collection_name)?;
        let ops = creates(coll, convert::instances(&r.instances)?);
        let out = self.write_all(db, caller, ops).await?;
        let instance_i_ds = out
            .into_iter()
            .filter_map(|o| match o {
                OpOutput::Created(id) => Some(id),
                OpOutput::Done => None,
            })
            .collect();
        Ok(pb::CreateReply {
            instance_i_ds,
            transaction_error: String::new(),
        })
    }

    pub(super) async fn do_save(
        &self,
        caller: Option<PublicKey>,
        r: pb::SaveRequest,
    ) -> Result<pb::SaveReply, Status> {
        let db = convert::db_id(&r.db_id)?;
        let coll = convert::collection_name(&r.collection_name)?;
        let ops = saves(coll, convert::instances(&r.instances)?);
        self.write_all(db, caller, ops).await?;
        Ok(pb::SaveReply {
            transaction_error: String::new(),
        })
    }

    pub(super) async fn do_delete(
        &self,
        caller: Option<PublicKey>,
        r: pb::DeleteRequest,
    ) -> Result<pb::DeleteReply, Status> {
        let db = convert::db_id(&r.db_id)?;
        let coll = convert::collection_name(&r.collection_name)?;
        if r.instance_i_ds.is_empty() {
            return Err(Status::invalid_argument("no instance ids given"));
        }
        let op = WriteOp::Delete {
            collection: coll.to_owned(),
            ids: r.instance_i_ds,
        };
        // One operation: "each on its own" is all or nothing here, and unknown ids only
        // produce an error that says so while the known ones are deleted.
        let out = self
            .node
            .write_with(db, caller, vec![op], WriteMode::Each)
            .await
            .map_err(status)?;
        match out.ops.into_iter().next() {
            Some(Err(e)) if !only_missing(&e) => Err(status(e)),
            _ => Ok(pb::DeleteReply {
                transaction_error: String::new(),
            }),
        }
    }

    pub(super) async fn do_verify(
        &self,
        caller: Option<PublicKey>,
        r: pb::VerifyRequest,
    ) -> Result<pb::VerifyReply, Status> {
        let db = convert::db_id(&r.db_id)?;
        let coll = convert::collection_name(&r.collection_name)?;
        let ops = saves(coll, convert::instances(&r.instances)?);
        let results = self.node.verify(db, caller, ops).await.map_err(status)?;
        if let Some(e) = results.into_iter().find_map(Result::err) {
            return Err(status(e));
        }
        Ok(pb::VerifyReply {
            transaction_error: String::new(),
        })
    }

    /// Whether every id exists and is visible to the caller.
    pub(super) async fn has_ids(
        &self,
        caller: &Option<PublicKey>,
        db: ThreadId,
        coll: &str,
        ids: Vec<String>,
    ) -> Result<bool, Status> {
        let (coll, reader) = (coll.to_owned(), reader_of(caller));
        self.node
            .reader()
            .snapshot(db, move |s| {
                s.require_db()?;
                let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                s.has(&coll, &ids, reader.as_deref())
            })
            .await
            .map_err(status)
    }

    /// Runs a query (`queryJSON`) for the caller; JSON bytes of the results.
    pub(super) async fn find_json(
        &self,
        caller: &Option<PublicKey>,
        db: ThreadId,
        coll: &str,
        query: &[u8],
    ) -> Result<Vec<Vec<u8>>, Status> {
        let query: Query = convert::query(query)?;
        let (coll, reader) = (coll.to_owned(), reader_of(caller));
        let rows = self
            .node
            .reader()
            .snapshot(db, move |s| {
                s.require_db()?;
                s.find_json(&coll, &query, reader.as_deref())
            })
            .await
            .map_err(status)?;
        Ok(rows
            .into_iter()
            .map(|(_, json)| String::from(Box::<str>::from(json)).into_bytes())
            .collect())
    }

    /// One instance as the caller sees it, as JSON bytes.
    pub(super) async fn get_json(
        &self,
        caller: &Option<PublicKey>,
        db: ThreadId,
        coll: &str,
        id: String,
    ) -> Result<Vec<u8>, Status> {
        if id.is_empty() {
            return Err(Status::invalid_argument("instance id is required"));
        }
        let (coll, reader) = (coll.to_owned(), reader_of(caller));
        let v = self
            .node
            .reader()
            .snapshot(db, move |s| {
                s.require_db()?;
                s.get(&coll, &id, reader.as_deref())
            })
            .await
            .map_err(status)?;
        Ok(convert::to_bytes(&v))
    }

    pub(super) async fn do_has(
        &self,
        caller: Option<PublicKey>,
        r: pb::HasRequest,
    ) -> Result<pb::HasReply, Status> {
        let db = convert::db_id(&r.db_id)?;
        let coll = convert::collection_name(&r.collection_name)?;
        let exists = self.has_ids(&caller, db, coll, r.instance_i_ds).await?;
        Ok(pb::HasReply {
            exists,
            transaction_error: String::new(),
        })
    }

    pub(super) async fn do_find(
        &self,
        caller: Option<PublicKey>,
        r: pb::FindRequest,
    ) -> Result<pb::FindReply, Status> {
        let db = convert::db_id(&r.db_id)?;
        let coll = convert::collection_name(&r.collection_name)?;
        let instances = self.find_json(&caller, db, coll, &r.query_json).await?;
        Ok(pb::FindReply {
            instances,
            transaction_error: String::new(),
        })
    }

    pub(super) async fn do_find_by_id(
        &self,
        caller: Option<PublicKey>,
        r: pb::FindByIdRequest,
    ) -> Result<pb::FindByIdReply, Status> {
        let db = convert::db_id(&r.db_id)?;
        let coll = convert::collection_name(&r.collection_name)?;
        let instance = self.get_json(&caller, db, coll, r.instance_id).await?;
        Ok(pb::FindByIdReply {
            instance,
            transaction_error: String::new(),
        })
    }
}
