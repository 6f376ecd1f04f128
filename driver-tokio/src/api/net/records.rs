//! CreateRecord, AddRecord, GetRecord and Subscribe.

use super::NetApi;
use super::convert::{self, status};
use super::pb;
use crate::api::convert::db_id;
use crate::api::service::{ReplyStream, STREAM_CHANNEL, stopped};
use crate::node::NetRecord;
use std::collections::BTreeSet;
use threads_protocol::identity::PublicKey;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

fn new_record(r: &NetRecord) -> pb::NewRecordReply {
    pb::NewRecordReply {
        thread_id: r.thread.to_vec(),
        log_id: r.record.log().as_bytes().to_vec(),
        record: Some(convert::to_record(r.record.bundle())),
    }
}

impl NetApi {
    pub(super) async fn do_create_record(
        &self,
        caller: Option<PublicKey>,
        r: pb::CreateRecordRequest,
    ) -> Result<pb::NewRecordReply, Status> {
        let id = db_id(&r.thread_id)?;
        convert::body(&r.body)?;
        let rec = self
            .node
            .create_record(id, caller, r.body)
            .await
            .map_err(status)?;
        Ok(pb::NewRecordReply {
            thread_id: id.to_vec(),
            log_id: rec.log().as_bytes().to_vec(),
            record: Some(convert::to_record(rec.bundle())),
        })
    }

    pub(super) async fn do_add_record(
        &self,
        _caller: Option<PublicKey>,
        r: pb::AddRecordRequest,
    ) -> Result<pb::AddRecordReply, Status> {
        let id = db_id(&r.thread_id)?;
        let log = convert::log_id(&r.log_id)?;
        let bundle = convert::record(r.record)?;
        self.node
            .add_record(id, log, bundle)
            .await
            .map_err(status)?;
        Ok(pb::AddRecordReply {})
    }

    pub(super) async fn do_get_record(
        &self,
        _caller: Option<PublicKey>,
        r: pb::GetRecordRequest,
    ) -> Result<pb::GetRecordReply, Status> {
        let id = db_id(&r.thread_id)?;
        let cid = convert::cid(&r.record_id)?;
        let bundle = self.node.get_record(id, cid).await.map_err(status)?;
        Ok(pb::GetRecordReply {
            record: Some(convert::to_record(&bundle)),
        })
    }

    /// `Subscribe`: every record stored from now on in the listed threads (all when none are
    /// listed). A subscriber that falls more than [`crate::node::RECORD_FEED`] records behind
    /// gets status `Aborted` and the stream ends.
    pub(super) async fn do_subscribe(
        &self,
        _caller: Option<PublicKey>,
        r: pb::SubscribeRequest,
    ) -> Result<ReplyStream<pb::NewRecordReply>, Status> {
        let ids = r
            .thread_i_ds
            .iter()
            .map(|b| db_id(b))
            .collect::<Result<BTreeSet<_>, _>>()?;
        let mut records = self.node.subscribe();
        let (tx, rx) = mpsc::channel(STREAM_CHANNEL);
        let mut stop = self.stop.clone();
        tokio::spawn(async move {
            loop {
                let item = tokio::select! {
                    item = records.recv() => item,
                    _ = tx.closed() => return,
                    _ = stopped(&mut stop) => {
                        let _ = tx.send(Err(Status::unavailable("the server is stopping"))).await;
                        return;
                    }
                };
                let msg = match item {
                    Ok(r) if ids.is_empty() || ids.contains(&r.thread) => Ok(new_record(&r)),
                    Ok(_) => continue,
                    Err(RecvError::Lagged(n)) => Err(Status::aborted(format!(
                        "subscriber fell behind: {n} records were skipped; subscribe again and \
                         read the threads with GetThread/GetRecord"
                    ))),
                    Err(RecvError::Closed) => return,
                };
                let end = msg.is_err();
                if tx.send(msg).await.is_err() || end {
                    return;
                }
            }
        });
        Ok(ReceiverStream::new(rx))
    }
}
