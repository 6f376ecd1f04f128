//! Collections: NewCollection, UpdateCollection, DeleteCollection, GetCollectionInfo,
//! GetCollectionIndexes, ListCollections.

use super::convert::{self, status};
use super::proto::db as pb;
use super::service::DbApi;
use crate::node::WriteOp;
use threads_protocol::identity::PublicKey;
use tonic::Status;

fn config(
    c: Option<pb::CollectionConfig>,
) -> Result<threads_reducer::db::CollectionConfig, Status> {
    convert::collection_config(c.ok_or_else(|| Status::invalid_argument("config is required"))?)
}

impl DbApi {
    pub(super) async fn do_new_collection(
        &self,
        caller: Option<PublicKey>,
        r: pb::NewCollectionRequest,
    ) -> Result<pb::NewCollectionReply, Status> {
        let db = convert::db_id(&r.db_id)?;
        let op = WriteOp::NewCollection(config(r.config)?);
        self.write_all(db, caller, vec![op]).await?;
        Ok(pb::NewCollectionReply {})
    }

    pub(super) async fn do_update_collection(
        &self,
        caller: Option<PublicKey>,
        r: pb::UpdateCollectionRequest,
    ) -> Result<pb::UpdateCollectionReply, Status> {
        let db = convert::db_id(&r.db_id)?;
        let op = WriteOp::UpdateCollection(config(r.config)?);
        self.write_all(db, caller, vec![op]).await?;
        Ok(pb::UpdateCollectionReply {})
    }

    pub(super) async fn do_delete_collection(
        &self,
        caller: Option<PublicKey>,
        r: pb::DeleteCollectionRequest,
    ) -> Result<pb::DeleteCollectionReply, Status> {
        let db = convert::db_id(&r.db_id)?;
        let name = convert::collection_name(&r.name)?.to_owned();
        self.write_all(db, caller, vec![WriteOp::DeleteCollection(name)])
            .await?;
        Ok(pb::DeleteCollectionReply {})
    }

    pub(super) async fn do_get_collection_info(
        &self,
        _caller: Option<PublicKey>,
        r: pb::GetCollectionInfoRequest,
    ) -> Result<pb::GetCollectionInfoReply, Status> {
        let db = convert::db_id(&r.db_id)?;
        let name = convert::collection_name(&r.name)?.to_owned();
        let c = self
            .node
            .reader()
            .snapshot(db, move |s| {
                s.require_db()?;
                s.collection_info(&name)
            })
            .await
            .map_err(status)?;
        Ok(convert::collection_info(c))
    }

    pub(super) async fn do_get_collection_indexes(
        &self,
        caller: Option<PublicKey>,
        r: pb::GetCollectionIndexesRequest,
    ) -> Result<pb::GetCollectionIndexesReply, Status> {
        let info = self
            .do_get_collection_info(
                caller,
                pb::GetCollectionInfoRequest {
                    db_id: r.db_id,
                    name: r.name,
                },
            )
            .await?;
        Ok(pb::GetCollectionIndexesReply {
            indexes: info.indexes,
        })
    }

    pub(super) async fn do_list_collections(
        &self,
        _caller: Option<PublicKey>,
        r: pb::ListCollectionsRequest,
    ) -> Result<pb::ListCollectionsReply, Status> {
        let db = convert::db_id(&r.db_id)?;
        let list = self
            .node
            .reader()
            .snapshot(db, |s| {
                s.require_db()?;
                s.list_collections()
            })
            .await
            .map_err(status)?;
        Ok(pb::ListCollectionsReply {
            collections: list.into_iter().map(convert::collection_info).collect(),
        })
    }
}
