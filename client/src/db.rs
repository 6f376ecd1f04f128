//! Databases and collections.

use crate::error::{Error, Result};
use crate::proto::db as pb;
use crate::types::{CollectionConfig, DbInfo, Index, NewDb, index_from_pb};
use crate::{Client, random_db_id};
use threads_protocol::addr::ThreadAddr;
use threads_protocol::id::ThreadId;
use threads_protocol::key::ThreadKey;

impl Client {
    /// Creates a database (a thread with the caller's log) and returns its id.
    pub async fn new_db(&self, opts: NewDb) -> Result<ThreadId> {
        let id = match opts.id {
            Some(id) => id,
            None => random_db_id()?,
        };
        let collections = opts
            .collections
            .iter()
            .map(CollectionConfig::to_pb)
            .collect::<Result<_>>()?;
        let r = pb::NewDbRequest {
            db_id: id.to_vec(),
            key: opts.key.map(|k| k.to_bytes()).unwrap_or_default(),
            name: opts.name,
            collections,
            ..Default::default()
        };
        self.db_api().new_db(self.req(r)?).await?;
        Ok(id)
    }

    /// Joins the database at `addr` (a thread address naming its host's `/p2p/<peer>`) with
    /// its `key`, stores it under `name`, and returns its id. With `block`, waits (the server
    /// bounds it) until the named `collections` have been replicated.
    pub async fn new_db_from_addr(
        &self,
        addr: &ThreadAddr,
        key: &ThreadKey,
        name: &str,
        collections: &[CollectionConfig],
        block: bool,
    ) -> Result<ThreadId> {
        let collections = collections
            .iter()
            .map(CollectionConfig::to_pb)
            .collect::<Result<_>>()?;
        let r = pb::NewDbFromAddrRequest {
            addr: addr.to_bytes(),
            key: key.to_bytes(),
            name: name.to_string(),
            collections,
            block,
            ..Default::default()
        };
        self.db_api().new_db_from_addr(self.req(r)?).await?;
        Ok(addr.thread)
    }

    /// Every database the server holds with a read key.
    pub async fn list_dbs(&self) -> Result<Vec<DbInfo>> {
        let r = self
            .db_api()
            .list_d_bs(self.req(pb::ListDBsRequest {})?)
            .await?
            .into_inner();
        r.dbs
            .into_iter()
            .map(|db| {
                let id = ThreadId::from_bytes(&db.db_id).map_err(|e| Error::invalid("db id", e))?;
                DbInfo::from_pb(id, db.info.unwrap_or_default())
            })
            .collect()
    }

    /// Name, key and addresses of the database `db`.
    pub async fn db_info(&self, db: ThreadId) -> Result<DbInfo> {
        let r = pb::GetDbInfoRequest { db_id: db.to_vec() };
        let info = self.db_api().get_db_info(self.req(r)?).await?.into_inner();
        DbInfo::from_pb(db, info)
    }

    /// Deletes the database `db` with its documents.
    pub async fn delete_db(&self, db: ThreadId) -> Result<()> {
        let r = pb::DeleteDbRequest { db_id: db.to_vec() };
        self.db_api().delete_db(self.req(r)?).await?;
        Ok(())
    }

    /// Creates a collection in `db`.
    pub async fn new_collection(&self, db: ThreadId, config: &CollectionConfig) -> Result<()> {
        let r = pb::NewCollectionRequest {
            db_id: db.to_vec(),
            config: Some(config.to_pb()?),
        };
        self.db_api().new_collection(self.req(r)?).await?;
        Ok(())
    }

    /// Replaces the definition of the collection named `config.name`.
    pub async fn update_collection(&self, db: ThreadId, config: &CollectionConfig) -> Result<()> {
        let r = pb::UpdateCollectionRequest {
            db_id: db.to_vec(),
            config: Some(config.to_pb()?),
        };
        self.db_api().update_collection(self.req(r)?).await?;
        Ok(())
    }

    /// Deletes the collection `name` and its instances.
    pub async fn delete_collection(&self, db: ThreadId, name: &str) -> Result<()> {
        let r = pb::DeleteCollectionRequest {
            db_id: db.to_vec(),
            name: name.to_string(),
        };
        self.db_api().delete_collection(self.req(r)?).await?;
        Ok(())
    }

    /// The definition of the collection `name`.
    pub async fn collection_info(&self, db: ThreadId, name: &str) -> Result<CollectionConfig> {
        let r = pb::GetCollectionInfoRequest {
            db_id: db.to_vec(),
            name: name.to_string(),
        };
        let info = self
            .db_api()
            .get_collection_info(self.req(r)?)
            .await?
            .into_inner();
        CollectionConfig::from_pb(info)
    }

    /// The indexes of the collection `name` (without the implicit `_id` index).
    pub async fn collection_indexes(&self, db: ThreadId, name: &str) -> Result<Vec<Index>> {
        let r = pb::GetCollectionIndexesRequest {
            db_id: db.to_vec(),
            name: name.to_string(),
        };
        let reply = self
            .db_api()
            .get_collection_indexes(self.req(r)?)
            .await?
            .into_inner();
        Ok(reply.indexes.into_iter().map(index_from_pb).collect())
    }

    /// Every collection of `db`.
    pub async fn list_collections(&self, db: ThreadId) -> Result<Vec<CollectionConfig>> {
        let r = pb::ListCollectionsRequest { db_id: db.to_vec() };
        let reply = self
            .db_api()
            .list_collections(self.req(r)?)
            .await?
            .into_inner();
        reply
            .collections
            .into_iter()
            .map(CollectionConfig::from_pb)
            .collect()
    }
}
