//! Listen (server stream), and GetToken (bidi stream, the shared flow of [`super::token`]).
//!
//! A listener gets every matching change, local or replicated, in feed order, through the
//! caller's read filter; deletes carry an empty `instance`. Nothing is dropped silently: a
//! listener that falls behind the node's change feed gets status `Aborted` with the lag
//! message, and the metadata `x-threads-resume-from` names the oldest feed position still
//! kept; a new Listen call with `x-threads-listen-from: <position>` resumes there.

use super::convert::{self, status};
use super::proto::db as pb;
use super::service::{DbApi, RESUME_FROM, ReplyStream, reader_of, stopped};
use super::token;
use threads_protocol::identity::PublicKey;
use threads_reducer::listen::{Action, Filter};
use tonic::{Status, Streaming};

use pb::listen_request::filter::Action as FilterAction;

fn filter(f: pb::listen_request::Filter) -> Result<Filter, Status> {
    let actions = match FilterAction::try_from(f.action) {
        Ok(FilterAction::All) => Vec::new(),
        Ok(FilterAction::Create) => vec![Action::Create],
        Ok(FilterAction::Save) => vec![Action::Save],
        Ok(FilterAction::Delete) => vec![Action::Delete],
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "invalid filter action {}",
                f.action
            )));
        }
    };
    let some = |s: String| (!s.is_empty()).then_some(s);
    Ok(Filter {
        collection: some(f.collection_name),
        instance_id: some(f.instance_id),
        actions,
    })
}

fn reply_action(a: Action) -> pb::listen_reply::Action {
    match a {
        Action::Create => pb::listen_reply::Action::Create,
        Action::Save => pb::listen_reply::Action::Save,
        Action::Delete => pb::listen_reply::Action::Delete,
    }
}

impl DbApi {
    /// `Listen`, from feed position `from` (new changes when `None`).
    pub(super) async fn do_listen(
        &self,
        caller: Option<PublicKey>,
        r: pb::ListenRequest,
        from: Option<u64>,
    ) -> Result<ReplyStream<pb::ListenReply>, Status> {
        let db = convert::db_id(&r.db_id)?;
        let filters = r
            .filters
            .into_iter()
            .map(filter)
            .collect::<Result<Vec<_>, _>>()?;
        self.node
            .reader()
            .snapshot(db, |s| s.require_db())
            .await
            .map_err(status)?;
        let mut changes = self
            .node
            .listen(db, filters, from, reader_of(&caller))
            .await
            .map_err(status)?;
        let (tx, stream) = Self::channel();
        let mut stop = self.stop.clone();
        tokio::spawn(async move {
            loop {
                let item = tokio::select! {
                    item = changes.recv() => item,
                    _ = tx.closed() => return,
                    _ = stopped(&mut stop) => {
                        let _ = tx.send(Err(Status::unavailable("the server is stopping"))).await;
                        return;
                    }
                };
                let msg = match item {
                    None => return,
                    Some(Ok(c)) => Ok(pb::ListenReply {
                        collection_name: c.collection,
                        instance_id: c.instance_id,
                        action: reply_action(c.action) as i32,
                        instance: c
                            .instance
                            .map(|text| text.get().as_bytes().to_vec())
                            .unwrap_or_default(),
                    }),
                    Some(Err(lag)) => {
                        let mut s = Status::aborted(lag.to_string());
                        if let Ok(v) = lag.oldest.to_string().parse() {
                            s.metadata_mut().insert(RESUME_FROM, v);
                        }
                        Err(s)
                    }
                };
                let end = msg.is_err();
                if tx.send(msg).await.is_err() || end {
                    return;
                }
            }
        });
        Ok(stream)
    }

    /// `GetToken`: key → challenge → signature → token (COMPAT §b).
    pub(super) fn token_flow(
        &self,
        inbound: Streaming<pb::GetTokenRequest>,
    ) -> ReplyStream<pb::GetTokenReply> {
        token::flow::<token::DbWire>(
            self.node.host_key().clone(),
            self.token_ttl,
            self.stop.clone(),
            inbound,
        )
    }
}
