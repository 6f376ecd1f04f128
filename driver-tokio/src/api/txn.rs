//! ReadTransaction and WriteTransaction (bidi streams).
//!
//! The first message must be `startTransactionRequest` (database and collection; no reply).
//! Every later request gets exactly one reply of the matching kind, with per-operation errors
//! in its `transactionError`; the stream goes on. Reads see committed state. A write
//! transaction keeps the operations that succeeded: each new one is checked on top of them
//! (a dry run on the engine), so one failed create does not poison the others. Its ids are
//! fixed when it is accepted, so the commit writes exactly what was answered. The client's
//! half-close commits them as one record, all or nothing; a commit error ends the stream with
//! its status. After `discard`, operations are still answered, and the half-close fails with
//! "can't commit discarded/committed txn".

use super::convert::{self, op_error, status};
use super::instances::{creates, only_missing, saves};
use super::proto::db as pb;
use super::service::{DbApi, ReplyStream, stopped};
use crate::node::{WriteMode, WriteOp};
use serde_json::Value;
use threads_protocol::id::ThreadId;
use threads_protocol::identity::PublicKey;
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use pb::read_transaction_reply::Option as ReadReply;
use pb::read_transaction_request::Option as ReadReq;
use pb::write_transaction_reply::Option as WriteReply;
use pb::write_transaction_request::Option as WriteReq;

/// The message of a commit after `discard`.
pub const DISCARDED: &str = "can't commit discarded/committed txn";

/// Where a transaction works.
#[derive(Clone)]
struct Target {
    db: ThreadId,
    collection: String,
}

/// The next request, or `None` at the client's half-close; `Err` when the client went away
/// or the server stops.
async fn next<T>(api: &DbApi, inbound: &mut Streaming<T>) -> Result<Option<T>, Status> {
    let mut stop = api.stop.clone();
    tokio::select! {
        m = inbound.message() => m,
        _ = stopped(&mut stop) => Err(Status::unavailable("the server is stopping")),
    }
}

/// A fresh lowercase ULID for an instance without `_id`.
fn new_instance_id() -> String {
    let mut random = [0u8; 16];
    let _ = getrandom::fill(&mut random);
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    ulid::Ulid::from_parts(ms, u128::from_be_bytes(random))
        .to_string()
        .to_lowercase()
}

/// Gives instances without an `_id` (or with `""`) a new one.
fn assign_ids(instances: &mut [Value]) {
    for v in instances {
        if let Value::Object(m) = v {
            let missing = match m.get("_id") {
                None => true,
                Some(Value::String(s)) => s.is_empty(),
                Some(_) => false,
            };
            if missing {
                m.insert("_id".into(), Value::String(new_instance_id()));
            }
        }
    }
}

impl DbApi {
    /// Reads the start message and checks the database and collection.
    async fn start<T>(
        &self,
        inbound: &mut Streaming<T>,
        start: impl FnOnce(T) -> Option<pb::StartTransactionRequest>,
    ) -> Result<Target, Status> {
        let first = next(self, inbound).await?.ok_or_else(|| {
            Status::invalid_argument("the stream ended before startTransactionRequest")
        })?;
        let s = start(first).ok_or_else(|| {
            Status::invalid_argument("the first message must be startTransactionRequest")
        })?;
        let db = convert::db_id(&s.db_id)?;
        let collection = convert::collection_name(&s.collection_name)?.to_owned();
        let name = collection.clone();
        self.node
            .reader()
            .snapshot(db, move |snap| {
                snap.require_db()?;
                snap.collection_info(&name)
            })
            .await
            .map_err(status)?;
        Ok(Target { db, collection })
    }

    async fn has_reply(
        &self,
        c: &Option<PublicKey>,
        t: &Target,
        r: pb::HasRequest,
    ) -> pb::HasReply {
        match self.has_ids(c, t.db, &t.collection, r.instance_i_ds).await {
            Ok(exists) => pb::HasReply {
                exists,
                transaction_error: String::new(),
            },
            Err(e) => pb::HasReply {
                exists: false,
                transaction_error: e.message().to_owned(),
            },
        }
    }

    async fn find_reply(
        &self,
        c: &Option<PublicKey>,
        t: &Target,
        r: pb::FindRequest,
    ) -> pb::FindReply {
        match self.find_json(c, t.db, &t.collection, &r.query_json).await {
            Ok(instances) => pb::FindReply {
                instances,
                transaction_error: String::new(),
            },
            Err(e) => pb::FindReply {
                instances: Vec::new(),
                transaction_error: e.message().to_owned(),
            },
        }
    }

    async fn find_by_id_reply(
        &self,
        c: &Option<PublicKey>,
        t: &Target,
        r: pb::FindByIdRequest,
    ) -> pb::FindByIdReply {
        match self.get_json(c, t.db, &t.collection, r.instance_id).await {
            Ok(instance) => pb::FindByIdReply {
                instance,
                transaction_error: String::new(),
            },
            Err(e) => pb::FindByIdReply {
                instance: Vec::new(),
                transaction_error: e.message().to_owned(),
            },
        }
    }

    /// `ReadTransaction`.
    pub(super) async fn read_txn(
        &self,
        caller: Option<PublicKey>,
        mut inbound: Streaming<pb::ReadTransactionRequest>,
    ) -> Result<ReplyStream<pb::ReadTransactionReply>, Status> {
        let target = self
            .start(&mut inbound, |m| match m.option {
                Some(ReadReq::StartTransactionRequest(s)) => Some(s),
                _ => None,
            })
            .await?;
        let (tx, stream) = Self::channel();
        let api = self.clone();
        tokio::spawn(async move {
            loop {
                let req = match next(&api, &mut inbound).await {
                    Ok(Some(r)) => r,
                    Ok(None) => break,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        break;
                    }
                };
                let reply = match req.option {
                    Some(ReadReq::HasRequest(r)) => {
                        ReadReply::HasReply(api.has_reply(&caller, &target, r).await)
                    }
                    Some(ReadReq::FindRequest(r)) => {
                        ReadReply::FindReply(api.find_reply(&caller, &target, r).await)
                    }
                    Some(ReadReq::FindByIdRequest(r)) => {
                        ReadReply::FindByIdReply(api.find_by_id_reply(&caller, &target, r).await)
                    }
                    Some(ReadReq::StartTransactionRequest(_)) | None => {
                        let _ = tx
                            .send(Err(Status::invalid_argument(
                                "expected hasRequest, findRequest or findByIDRequest",
                            )))
                            .await;
                        break;
                    }
                };
                let reply = pb::ReadTransactionReply {
                    option: Some(reply),
                };
                if tx.send(Ok(reply)).await.is_err() {
                    break;
                }
            }
        });
        Ok(stream)
    }

    /// `WriteTransaction`.
    pub(super) async fn write_txn(
        &self,
        caller: Option<PublicKey>,
        mut inbound: Streaming<pb::WriteTransactionRequest>,
    ) -> Result<ReplyStream<pb::WriteTransactionReply>, Status> {
        let target = self
            .start(&mut inbound, |m| match m.option {
                Some(WriteReq::StartTransactionRequest(s)) => Some(s),
                _ => None,
            })
            .await?;
        let (tx, stream) = Self::channel();
        let api = self.clone();
        tokio::spawn(async move {
            let mut w = WriteTxn {
                api,
                caller,
                target,
                accepted: Vec::new(),
                discarded: false,
            };
            w.run(inbound, tx).await;
        });
        Ok(stream)
    }
}

/// The state of one write transaction.
struct WriteTxn {
    api: DbApi,
    caller: Option<PublicKey>,
    target: Target,
    accepted: Vec<WriteOp>,
    discarded: bool,
}

impl WriteTxn {
    async fn run(
        &mut self,
        mut inbound: Streaming<pb::WriteTransactionRequest>,
        tx: mpsc::Sender<Result<pb::WriteTransactionReply, Status>>,
    ) {
        loop {
            let req = match next(&self.api, &mut inbound).await {
                Ok(Some(r)) => r,
                Ok(None) => {
                    if let Err(e) = self.commit().await {
                        let _ = tx.send(Err(e)).await;
                    }
                    return;
                }
                // The client went away (or the server stops): nothing is committed.
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            let reply = match req.option {
                Some(WriteReq::CreateRequest(r)) => WriteReply::CreateReply(self.create(r).await),
                Some(WriteReq::SaveRequest(r)) => WriteReply::SaveReply(pb::SaveReply {
                    transaction_error: self.save(r).await,
                }),
                Some(WriteReq::DeleteRequest(r)) => WriteReply::DeleteReply(pb::DeleteReply {
                    transaction_error: self.delete(r).await,
                }),
                Some(WriteReq::VerifyRequest(r)) => WriteReply::VerifyReply(pb::VerifyReply {
                    transaction_error: self.verify(r).await,
                }),
                Some(WriteReq::HasRequest(r)) => {
                    WriteReply::HasReply(self.api.has_reply(&self.caller, &self.target, r).await)
                }
                Some(WriteReq::FindRequest(r)) => {
                    WriteReply::FindReply(self.api.find_reply(&self.caller, &self.target, r).await)
                }
                Some(WriteReq::FindByIdRequest(r)) => WriteReply::FindByIdReply(
                    self.api
                        .find_by_id_reply(&self.caller, &self.target, r)
                        .await,
                ),
                Some(WriteReq::DiscardRequest(_)) => {
                    self.accepted.clear();
                    self.discarded = true;
                    WriteReply::DiscardReply(pb::DiscardReply {})
                }
                Some(WriteReq::StartTransactionRequest(_)) | None => {
                    let _ = tx
                        .send(Err(Status::invalid_argument(
                            "the transaction was already started; expected an operation",
                        )))
                        .await;
                    return;
                }
            };
            let reply = pb::WriteTransactionReply {
                option: Some(reply),
            };
            if tx.send(Ok(reply)).await.is_err() {
                return;
            }
        }
    }

    /// Checks `new` on top of the accepted operations; the error of the first one that fails.
    async fn check(&self, new: &[WriteOp]) -> Result<(), String> {
        let mut ops = self.accepted.clone();
        ops.extend_from_slice(new);
        let results = self
            .api
            .node
            .verify(self.target.db, self.caller, ops)
            .await
            .map_err(op_error)?;
        for r in results.into_iter().skip(self.accepted.len()) {
            match r {
                Ok(_) => {}
                Err(e) if only_missing(&e) => {}
                Err(e) => return Err(op_error(e)),
            }
        }
        Ok(())
    }

    /// Accepts `ops` if they pass; the error text otherwise ("" on success).
    async fn accept(&mut self, ops: Vec<WriteOp>) -> String {
        match self.check(&ops).await {
            Ok(()) => {
                self.accepted.extend(ops);
                String::new()
            }
            Err(e) => e,
        }
    }

    fn parse(list: &[Vec<u8>]) -> Result<Vec<Value>, String> {
        convert::instances(list).map_err(|e| e.message().to_owned())
    }

    async fn create(&mut self, r: pb::CreateRequest) -> pb::CreateReply {
        let mut instances = match Self::parse(&r.instances) {
            Ok(v) => v,
            Err(e) => {
                return pb::CreateReply {
                    instance_i_ds: Vec::new(),
                    transaction_error: e,
                };
            }
        };
        assign_ids(&mut instances);
        let ids: Vec<String> = instances
            .iter()
            .map(|v| v["_id"].as_str().unwrap_or_default().to_owned())
            .collect();
        let err = self
            .accept(creates(&self.target.collection, instances))
            .await;
        pb::CreateReply {
            instance_i_ds: if err.is_empty() { ids } else { Vec::new() },
            transaction_error: err,
        }
    }

    async fn save(&mut self, r: pb::SaveRequest) -> String {
        match Self::parse(&r.instances) {
            Ok(v) => self.accept(saves(&self.target.collection, v)).await,
            Err(e) => e,
        }
    }

    async fn delete(&mut self, r: pb::DeleteRequest) -> String {
        if r.instance_i_ds.is_empty() {
            return "no instance ids given".into();
        }
        let op = WriteOp::Delete {
            collection: self.target.collection.clone(),
            ids: r.instance_i_ds,
        };
        self.accept(vec![op]).await
    }

    async fn verify(&mut self, r: pb::VerifyRequest) -> String {
        match Self::parse(&r.instances) {
            Ok(v) => match self.check(&saves(&self.target.collection, v)).await {
                Ok(()) => String::new(),
                Err(e) => e,
            },
            Err(e) => e,
        }
    }

    /// Commits the accepted operations as one record, all or nothing.
    async fn commit(&mut self) -> Result<(), Status> {
        if self.discarded {
            return Err(Status::failed_precondition(DISCARDED));
        }
        let ops = std::mem::take(&mut self.accepted);
        if ops.is_empty() {
            return Ok(());
        }
        let out = self
            .api
            .node
            .write_with(self.target.db, self.caller, ops, WriteMode::All)
            .await
            .map_err(status)?;
        if let Some(e) = out
            .ops
            .into_iter()
            .filter_map(Result::err)
            .find(|e| !only_missing(e))
        {
            return Err(status(e));
        }
        Ok(())
    }
}
