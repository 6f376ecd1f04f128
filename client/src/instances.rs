//! Instances: create, save, delete, has, find, find by id, verify, and listeners.

use crate::error::{Error, Result, txn_error};
use crate::proto::db as pb;
use crate::types::{Change, ListenFilter, Query, from_json_bytes, to_json_bytes};
use crate::{ChangeStream, Client};
use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use threads_protocol::id::ThreadId;

pub(crate) fn ids<S: AsRef<str>>(ids: &[S]) -> Vec<String> {
    ids.iter().map(|s| s.as_ref().to_string()).collect()
}

pub(crate) fn query_bytes(q: &Query) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(&q.to_json())?)
}

impl Client {
    /// Creates `instances` in `collection`, all or nothing, and returns their ids in order
    /// (instances without `_id`, or with `""`, get a new one).
    pub async fn create<T: Serialize>(
        &self,
        db: ThreadId,
        collection: &str,
        instances: &[T],
    ) -> Result<Vec<String>> {
        let r = pb::CreateRequest {
            db_id: db.to_vec(),
            collection_name: collection.to_string(),
            instances: to_json_bytes(instances)?,
        };
        let reply = self.db_api().create(self.req(r)?).await?.into_inner();
        txn_error(reply.transaction_error)?;
        Ok(reply.instance_i_ds)
    }

    /// Saves (upserts) `instances`, all or nothing; each needs its `_id`.
    pub async fn save<T: Serialize>(
        &self,
        db: ThreadId,
        collection: &str,
        instances: &[T],
    ) -> Result<()> {
        let r = pb::SaveRequest {
            db_id: db.to_vec(),
            collection_name: collection.to_string(),
            instances: to_json_bytes(instances)?,
        };
        let reply = self.db_api().save(self.req(r)?).await?.into_inner();
        txn_error(reply.transaction_error)
    }

    /// Deletes the instances `ids` (unknown ids are ignored).
    pub async fn delete<S: AsRef<str>>(
        &self,
        db: ThreadId,
        collection: &str,
        ids: &[S],
    ) -> Result<()> {
        let r = pb::DeleteRequest {
            db_id: db.to_vec(),
            collection_name: collection.to_string(),
            instance_i_ds: self::ids(ids),
        };
        let reply = self.db_api().delete(self.req(r)?).await?.into_inner();
        txn_error(reply.transaction_error)
    }

    /// Whether every one of `ids` exists (and passes the read filter).
    pub async fn has<S: AsRef<str>>(
        &self,
        db: ThreadId,
        collection: &str,
        ids: &[S],
    ) -> Result<bool> {
        let r = pb::HasRequest {
            db_id: db.to_vec(),
            collection_name: collection.to_string(),
            instance_i_ds: self::ids(ids),
        };
        let reply = self.db_api().has(self.req(r)?).await?.into_inner();
        txn_error(reply.transaction_error)?;
        Ok(reply.exists)
    }

    /// The instances of `collection` that match `query`.
    pub async fn find<T: DeserializeOwned>(
        &self,
        db: ThreadId,
        collection: &str,
        query: &Query,
    ) -> Result<Vec<T>> {
        let r = pb::FindRequest {
            db_id: db.to_vec(),
            collection_name: collection.to_string(),
            query_json: query_bytes(query)?,
        };
        let reply = self.db_api().find(self.req(r)?).await?.into_inner();
        txn_error(reply.transaction_error)?;
        from_json_bytes(&reply.instances)
    }

    /// The instance `id` (`NotFound` when missing or hidden by the read filter).
    pub async fn find_by_id<T: DeserializeOwned>(
        &self,
        db: ThreadId,
        collection: &str,
        id: &str,
    ) -> Result<T> {
        let r = pb::FindByIdRequest {
            db_id: db.to_vec(),
            collection_name: collection.to_string(),
            instance_id: id.to_string(),
        };
        let reply = self.db_api().find_by_id(self.req(r)?).await?.into_inner();
        txn_error(reply.transaction_error)?;
        Ok(serde_json::from_slice(&reply.instance)?)
    }

    /// Checks `instances` as saves (schema, unique indexes, write validator) without writing.
    pub async fn verify<T: Serialize>(
        &self,
        db: ThreadId,
        collection: &str,
        instances: &[T],
    ) -> Result<()> {
        let r = pb::VerifyRequest {
            db_id: db.to_vec(),
            collection_name: collection.to_string(),
            instances: to_json_bytes(instances)?,
        };
        let reply = self.db_api().verify(self.req(r)?).await?.into_inner();
        txn_error(reply.transaction_error)
    }

    /// Every change of `db` from now on that matches any of `filters` (all changes when
    /// empty), as a stream. The stream ends with an error when the server stops or the
    /// listener falls behind ([`Error::resume_from`] then says where to resume).
    pub async fn listen(&self, db: ThreadId, filters: &[ListenFilter]) -> Result<ChangeStream> {
        self.listen_at(db, filters, None).await
    }

    /// Like [`Client::listen`], resuming at the feed position `from` (from a lag error).
    pub async fn listen_from(
        &self,
        db: ThreadId,
        filters: &[ListenFilter],
        from: u64,
    ) -> Result<ChangeStream> {
        self.listen_at(db, filters, Some(from)).await
    }

    async fn listen_at(
        &self,
        db: ThreadId,
        filters: &[ListenFilter],
        from: Option<u64>,
    ) -> Result<ChangeStream> {
        let mut r = self.req(pb::ListenRequest {
            db_id: db.to_vec(),
            filters: filters.iter().map(ListenFilter::to_pb).collect(),
        })?;
        if let Some(from) = from {
            let v = from
                .to_string()
                .parse()
                .map_err(|_| Error::invalid("position", from))?;
            r.metadata_mut().insert(crate::error::LISTEN_FROM, v);
        }
        let stream = self.db_api().listen(r).await?.into_inner();
        Ok(Box::pin(stream.map(|m| Change::from_pb(m?))))
    }
}
