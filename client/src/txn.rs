//! Read and write transactions: one bidi stream each, one reply per operation.
//!
//! A per-operation failure comes back as [`Error::Transaction`] and the transaction goes on; a
//! failure of the stream itself (unknown database or collection, commit error) is an
//! [`Error::Status`].

use crate::Client;
use crate::error::{Error, Result, txn_error};
use crate::instances::{ids, query_bytes};
use crate::proto::db as pb;
use crate::types::{Query, from_json_bytes, to_json_bytes};
use serde::Serialize;
use serde::de::DeserializeOwned;
use threads_protocol::id::ThreadId;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use pb::read_transaction_reply::Option as RReply;
use pb::read_transaction_request::Option as RReq;
use pb::write_transaction_reply::Option as WReply;
use pb::write_transaction_request::Option as WReq;

/// The open stream of one transaction.
struct Stream<Q, R> {
    tx: Option<mpsc::Sender<Q>>,
    replies: Streaming<R>,
    db: Vec<u8>,
    collection: String,
}

impl<Q, R> Stream<Q, R> {
    async fn call(&mut self, q: Q) -> Result<R> {
        let closed = || Error::Protocol("the transaction stream is closed".into());
        let tx = self.tx.as_ref().ok_or_else(closed)?;
        if tx.send(q).await.is_err() {
            // The server ended the stream: its status says why.
            self.replies.message().await?;
            return Err(closed());
        }
        self.replies.message().await?.ok_or_else(closed)
    }

    /// The database and collection, for the operations' own fields.
    fn target(&self) -> (Vec<u8>, String) {
        (self.db.clone(), self.collection.clone())
    }

    /// Half-closes and waits for the server to end the stream.
    async fn finish(mut self) -> Result<()> {
        self.tx.take();
        match self.replies.message().await? {
            None => Ok(()),
            Some(_) => Err(Error::Protocol("a reply after the last operation".into())),
        }
    }
}

fn start(db: ThreadId, collection: &str) -> pb::StartTransactionRequest {
    pb::StartTransactionRequest {
        db_id: db.to_vec(),
        collection_name: collection.to_string(),
    }
}

fn wrong(what: &str, got: impl std::fmt::Debug) -> Error {
    Error::Protocol(format!("expected a {what} reply, got {got:?}"))
}

/// A read transaction on one collection: each read sees committed state. End it with
/// [`ReadTransaction::end`] (dropping it ends it too).
pub struct ReadTransaction {
    s: Stream<pb::ReadTransactionRequest, pb::ReadTransactionReply>,
}

/// A write transaction on one collection: operations are checked as they come and kept;
/// [`WriteTransaction::commit`] writes the kept ones as one record. Dropping it without
/// committing writes nothing.
pub struct WriteTransaction {
    s: Stream<pb::WriteTransactionRequest, pb::WriteTransactionReply>,
}

impl Client {
    /// Opens a read transaction on `collection` of `db`.
    pub async fn read_transaction(
        &self,
        db: ThreadId,
        collection: &str,
    ) -> Result<ReadTransaction> {
        let (tx, rx) = mpsc::channel(4);
        let first = pb::ReadTransactionRequest {
            option: Some(RReq::StartTransactionRequest(start(db, collection))),
        };
        tx.send(first)
            .await
            .map_err(|_| Error::Protocol("stream closed".into()))?;
        let replies = self
            .db_api()
            .read_transaction(self.req(ReceiverStream::new(rx))?)
            .await?
            .into_inner();
        Ok(ReadTransaction {
            s: Stream {
                tx: Some(tx),
                replies,
                db: db.to_vec(),
                collection: collection.to_string(),
            },
        })
    }

    /// Opens a write transaction on `collection` of `db`.
    pub async fn write_transaction(
        &self,
        db: ThreadId,
        collection: &str,
    ) -> Result<WriteTransaction> {
        let (tx, rx) = mpsc::channel(4);
        let first = pb::WriteTransactionRequest {
            option: Some(WReq::StartTransactionRequest(start(db, collection))),
        };
        tx.send(first)
            .await
            .map_err(|_| Error::Protocol("stream closed".into()))?;
        let replies = self
            .db_api()
            .write_transaction(self.req(ReceiverStream::new(rx))?)
            .await?
            .into_inner();
        Ok(WriteTransaction {
            s: Stream {
                tx: Some(tx),
                replies,
                db: db.to_vec(),
                collection: collection.to_string(),
            },
        })
    }
}

impl ReadTransaction {
    async fn read(&mut self, op: RReq) -> Result<RReply> {
        let r = self
            .s
            .call(pb::ReadTransactionRequest { option: Some(op) })
            .await?;
        r.option.ok_or_else(|| wrong("read", "nothing"))
    }

    /// Whether every one of `ids` exists.
    pub async fn has<S: AsRef<str>>(&mut self, instance_ids: &[S]) -> Result<bool> {
        let (db_id, collection_name) = self.s.target();
        let op = RReq::HasRequest(pb::HasRequest {
            db_id,
            collection_name,
            instance_i_ds: ids(instance_ids),
        });
        match self.read(op).await? {
            RReply::HasReply(r) => txn_error(r.transaction_error).map(|()| r.exists),
            other => Err(wrong("has", other)),
        }
    }

    /// The instances matching `query`.
    pub async fn find<T: DeserializeOwned>(&mut self, query: &Query) -> Result<Vec<T>> {
        let (db_id, collection_name) = self.s.target();
        let op = RReq::FindRequest(pb::FindRequest {
            db_id,
            collection_name,
            query_json: query_bytes(query)?,
        });
        match self.read(op).await? {
            RReply::FindReply(r) => {
                txn_error(r.transaction_error)?;
                from_json_bytes(&r.instances)
            }
            other => Err(wrong("find", other)),
        }
    }

    /// The instance `id`.
    pub async fn find_by_id<T: DeserializeOwned>(&mut self, id: &str) -> Result<T> {
        let (db_id, collection_name) = self.s.target();
        let op = RReq::FindByIdRequest(pb::FindByIdRequest {
            db_id,
            collection_name,
            instance_id: id.to_string(),
        });
        match self.read(op).await? {
            RReply::FindByIdReply(r) => {
                txn_error(r.transaction_error)?;
                Ok(serde_json::from_slice(&r.instance)?)
            }
            other => Err(wrong("findByID", other)),
        }
    }

    /// Ends the transaction.
    pub async fn end(self) -> Result<()> {
        self.s.finish().await
    }
}

impl WriteTransaction {
    async fn write(&mut self, op: WReq) -> Result<WReply> {
        let r = self
            .s
            .call(pb::WriteTransactionRequest { option: Some(op) })
            .await?;
        r.option.ok_or_else(|| wrong("write", "nothing"))
    }

    /// Creates `instances` (kept if they pass) and returns their ids.
    pub async fn create<T: Serialize>(&mut self, instances: &[T]) -> Result<Vec<String>> {
        let (db_id, collection_name) = self.s.target();
        let op = WReq::CreateRequest(pb::CreateRequest {
            db_id,
            collection_name,
            instances: to_json_bytes(instances)?,
        });
        match self.write(op).await? {
            WReply::CreateReply(r) => txn_error(r.transaction_error).map(|()| r.instance_i_ds),
            other => Err(wrong("create", other)),
        }
    }

    /// Saves `instances` (kept if they pass).
    pub async fn save<T: Serialize>(&mut self, instances: &[T]) -> Result<()> {
        let (db_id, collection_name) = self.s.target();
        let op = WReq::SaveRequest(pb::SaveRequest {
            db_id,
            collection_name,
            instances: to_json_bytes(instances)?,
        });
        match self.write(op).await? {
            WReply::SaveReply(r) => txn_error(r.transaction_error),
            other => Err(wrong("save", other)),
        }
    }

    /// Checks `instances` as saves without keeping them.
    pub async fn verify<T: Serialize>(&mut self, instances: &[T]) -> Result<()> {
        let (db_id, collection_name) = self.s.target();
        let op = WReq::VerifyRequest(pb::VerifyRequest {
            db_id,
            collection_name,
            instances: to_json_bytes(instances)?,
        });
        match self.write(op).await? {
            WReply::VerifyReply(r) => txn_error(r.transaction_error),
            other => Err(wrong("verify", other)),
        }
    }

    /// Deletes the instances `ids` (kept if allowed).
    pub async fn delete<S: AsRef<str>>(&mut self, instance_ids: &[S]) -> Result<()> {
        let (db_id, collection_name) = self.s.target();
        let op = WReq::DeleteRequest(pb::DeleteRequest {
            db_id,
            collection_name,
            instance_i_ds: ids(instance_ids),
        });
        match self.write(op).await? {
            WReply::DeleteReply(r) => txn_error(r.transaction_error),
            other => Err(wrong("delete", other)),
        }
    }

    /// Whether every one of `ids` exists (committed state).
    pub async fn has<S: AsRef<str>>(&mut self, instance_ids: &[S]) -> Result<bool> {
        let (db_id, collection_name) = self.s.target();
        let op = WReq::HasRequest(pb::HasRequest {
            db_id,
            collection_name,
            instance_i_ds: ids(instance_ids),
        });
        match self.write(op).await? {
            WReply::HasReply(r) => txn_error(r.transaction_error).map(|()| r.exists),
            other => Err(wrong("has", other)),
        }
    }

    /// The instances matching `query` (committed state).
    pub async fn find<T: DeserializeOwned>(&mut self, query: &Query) -> Result<Vec<T>> {
        let (db_id, collection_name) = self.s.target();
        let op = WReq::FindRequest(pb::FindRequest {
            db_id,
            collection_name,
            query_json: query_bytes(query)?,
        });
        match self.write(op).await? {
            WReply::FindReply(r) => {
                txn_error(r.transaction_error)?;
                from_json_bytes(&r.instances)
            }
            other => Err(wrong("find", other)),
        }
    }

    /// The instance `id` (committed state).
    pub async fn find_by_id<T: DeserializeOwned>(&mut self, id: &str) -> Result<T> {
        let (db_id, collection_name) = self.s.target();
        let op = WReq::FindByIdRequest(pb::FindByIdRequest {
            db_id,
            collection_name,
            instance_id: id.to_string(),
        });
        match self.write(op).await? {
            WReply::FindByIdReply(r) => {
                txn_error(r.transaction_error)?;
                Ok(serde_json::from_slice(&r.instance)?)
            }
            other => Err(wrong("findByID", other)),
        }
    }

    /// Drops every kept operation; a later [`WriteTransaction::commit`] then fails with
    /// `FailedPrecondition`.
    pub async fn discard(&mut self) -> Result<()> {
        match self
            .write(WReq::DiscardRequest(pb::DiscardRequest {}))
            .await?
        {
            WReply::DiscardReply(_) => Ok(()),
            other => Err(wrong("discard", other)),
        }
    }

    /// Writes the kept operations as one record, all or nothing.
    pub async fn commit(self) -> Result<()> {
        self.s.finish().await
    }
}
