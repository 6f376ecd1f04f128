//! The engine task's side of the Net API: plain (non-database) threads and raw records, on
//! the protocol `Host`.
//!
//! Raw records are made here with the log's private key ([`record::create`]) and stored with
//! [`Host::add_record`](threads_protocol::engine::Host::add_record), which keeps a record the
//! document fold refuses (a raw body is no database event) with its verdict instead of
//! failing the write. Database threads refuse raw records and deletion here.

use crate::node::engine::{EngineTask, unix_nanos};
use crate::node::net_command::{LogKey, NetCommand};
use crate::node::{NodeError, net_threads};
use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use threads_protocol::Cid;
use threads_protocol::addr::ThreadAddr;
use threads_protocol::counter::LamportClock;
use threads_protocol::engine::state::ThreadRow;
use threads_protocol::engine::{EngineError, ThreadInfo, Time, layout};
use threads_protocol::id::ThreadId;
use threads_protocol::identity::PublicKey;
use threads_protocol::key::ThreadKey;
use threads_protocol::log_id::LogId;
use threads_protocol::record::{self, RecordBundle, RecordDraft, VerifiedRecord};
use threads_protocol::rng::{ProtocolRng, SeedableRng};
use threads_protocol::store::{ReadTxn as _, Store, WriteTxn as _};

/// "cannot delete thread: thread is in use" (COMPAT §g).
pub const DELETE_IN_USE: &str = "cannot delete thread: thread is in use";
/// "cannot create record: thread is in use" (COMPAT §g).
pub const CREATE_IN_USE: &str = "cannot create record: thread is in use";

impl EngineTask {
    /// Runs one Net API command.
    pub(crate) fn net_command(&mut self, now: Time, cmd: NetCommand) {
        match cmd {
            NetCommand::CreateThread {
                id,
                key,
                identity,
                log_key,
                reply,
            } => {
                let _ = reply.send(self.net_create_thread(now, id, key, identity, log_key));
            }
            NetCommand::AddThread {
                addr,
                key,
                identity,
                log_key,
                reply,
            } => {
                let _ = reply.send(self.net_add_thread(now, &addr, key, identity, log_key));
            }
            NetCommand::DeleteThread { id, reply } => {
                let result = self.db_owned(&id).and_then(|owned| {
                    if owned {
                        return Err(NodeError::InUse(DELETE_IN_USE.into()));
                    }
                    self.delete_db(now, &id)
                });
                let _ = reply.send(result);
            }
            NetCommand::CreateRecord {
                id,
                author,
                body,
                reply,
            } => {
                let _ = reply.send(self.net_create_record(now, &id, author, &body));
            }
            NetCommand::AddRecord {
                id,
                log,
                bundle,
                reply,
            } => {
                let result = self.docs.host_mut().add_record(now, &id, &log, *bundle);
                let _ = reply.send(result.map_err(NodeError::from));
            }
            NetCommand::GetRecord { id, cid, reply } => {
                let _ = reply.send(self.net_get_record(&id, &cid));
            }
        }
    }

    /// Whether a thread belongs to a database: it has a read key and the Net API did not
    /// make or add it. "thread not found" when it is not held.
    fn db_owned(&self, id: &ThreadId) -> Result<bool, NodeError> {
        let info = self.docs.host().thread_info(id)?;
        if !info.key.can_read() {
            return Ok(false);
        }
        let txn = self.docs.host().store().read()?;
        Ok(!net_threads::load(&txn, id)?)
    }

    fn mark_net(&mut self, id: &ThreadId, net: bool) -> Result<(), NodeError> {
        let mut txn = self.docs.host().store().write()?;
        net_threads::save(&mut txn, id, net)?;
        txn.commit()?;
        Ok(())
    }

    /// Creates the log of `identity` (the host when `None`) in a held thread.
    fn own_log(
        &mut self,
        id: &ThreadId,
        identity: Option<PublicKey>,
        log_key: Option<LogKey>,
    ) -> Result<(), NodeError> {
        let host = self.docs.host_mut();
        let identity = identity.unwrap_or_else(|| host.identity().public());
        match log_key {
            Some(LogKey::Public(pk)) => host.add_log(id, &pk.peer_id())?,
            Some(LogKey::Private(k)) => {
                host.create_log(id, &identity, Some(k))?;
            }
            None => {
                host.create_log(id, &identity, None)?;
            }
        }
        Ok(())
    }

    /// Removes a thread this command just made, after a later step failed.
    fn undo_thread(&mut self, now: Time, id: &ThreadId) {
        if let Err(e) = self.delete_db(now, id) {
            tracing::warn!(thread = %id, error = %e, "could not remove a half-made thread");
        }
    }

    fn net_create_thread(
        &mut self,
        now: Time,
        id: ThreadId,
        key: Option<ThreadKey>,
        identity: Option<PublicKey>,
        log_key: Option<LogKey>,
    ) -> Result<ThreadInfo, NodeError> {
        if self.docs.host().has_thread(&id) {
            // As in go-threads: the caller's log is added to the thread it already holds.
            let info = self.docs.host().thread_info(&id)?;
            if key
                .as_ref()
                .is_some_and(|k| k.to_bytes() != info.key.to_bytes())
            {
                return Err(NodeError::Invalid(
                    "invalid thread-key: the thread exists with another key".into(),
                ));
            }
            self.own_log(&id, identity, log_key)?;
            return Ok(self.docs.host().thread_info(&id)?);
        }
        match log_key {
            Some(LogKey::Public(pk)) => {
                // No log this host writes: register the thread as held from here, then add
                // the log by its public key.
                let me = crate::net::to_libp2p(self.docs.host().peer_id());
                let addr = ThreadAddr::new(Multiaddr::empty().with(Protocol::P2p(me)), id);
                let key = match key {
                    Some(k) => k,
                    None => ThreadKey::random(&mut fresh_rng()?, true),
                };
                self.docs.host_mut().join_thread(now, &addr, key)?;
                let done = self
                    .docs
                    .host_mut()
                    .add_log(&id, &pk.peer_id())
                    .map_err(NodeError::from)
                    .and_then(|()| self.mark_net(&id, true));
                if let Err(e) = done {
                    self.undo_thread(now, &id);
                    return Err(e);
                }
            }
            private => {
                let opts = threads_protocol::engine::NewThread {
                    id: Some(id),
                    key,
                    identity,
                    log_key: private.and_then(|k| match k {
                        LogKey::Private(k) => Some(k),
                        LogKey::Public(_) => None,
                    }),
                };
                self.docs.host_mut().create_thread(now, opts)?;
                if let Err(e) = self.mark_net(&id, true) {
                    self.undo_thread(now, &id);
                    return Err(e);
                }
            }
        }
        Ok(self.docs.host().thread_info(&id)?)
    }

    fn net_add_thread(
        &mut self,
        now: Time,
        addr: &ThreadAddr,
        key: ThreadKey,
        identity: Option<PublicKey>,
        log_key: Option<LogKey>,
    ) -> Result<ThreadInfo, NodeError> {
        let id = addr.thread;
        let peer = addr.peer().ok_or(EngineError::NoPeerInAddress)?;
        if &peer == self.docs.host().peer_id() {
            return self.docs.host().thread_info(&id).map_err(|_| {
                NodeError::NotFound("cannot retrieve thread from self: thread not found".into())
            });
        }
        let can_read = key.can_read();
        self.docs.host_mut().join_thread(now, addr, key)?;
        let mut done = self.mark_net(&id, true);
        if done.is_ok() && (can_read || log_key.is_some()) {
            done = self.own_log(&id, identity, log_key);
        }
        if let Err(e) = done {
            self.undo_thread(now, &id);
            return Err(e);
        }
        Ok(self.docs.host().thread_info(&id)?)
    }

    fn net_create_record(
        &mut self,
        now: Time,
        id: &ThreadId,
        author: Option<PublicKey>,
        body: &[u8],
    ) -> Result<VerifiedRecord, NodeError> {
        if self.db_owned(id)? {
            return Err(NodeError::InUse(CREATE_IN_USE.into()));
        }
        let host = self.docs.host();
        let author = author.unwrap_or_else(|| host.identity().public());
        let info = host.thread_info(id)?;
        if !info.key.can_read() {
            return Err(EngineError::NoReadKey("cannot create records").into());
        }
        let (known, clock) = {
            let txn = host.store().read()?;
            let known = txn
                .get(&layout::identity_log(id, &author.to_protobuf()))?
                .and_then(|b| LogId::from_bytes(&b).ok());
            let row = txn
                .get(&layout::thread(id))?
                .ok_or(EngineError::ThreadNotFound)?;
            let row: ThreadRow = record::wire::decode_plain(&row).map_err(|e| {
                threads_protocol::store::StoreError::Corrupt(format!("thread row: {e}"))
            })?;
            (known, LamportClock(row.clock))
        };
        let log = match known {
            Some(log) => log,
            None => self.docs.host_mut().create_log(id, &author, None)?,
        };
        let info = self.docs.host().thread_info(id)?;
        let state = info
            .logs
            .iter()
            .find(|l| l.id == log)
            .ok_or(EngineError::LogNotFound)?;
        let log_key = state
            .key
            .clone()
            .ok_or_else(|| EngineError::NotLogOwner(log.to_string()))?;
        let draft = RecordDraft {
            thread: id,
            author: &author,
            prev: state.head,
            counter: state.height.next_counter(),
            clock: clock.tick(),
            time: unix_nanos(),
            body,
        };
        let rec = record::create(&draft, &log_key, &info.key, &mut fresh_rng()?)
            .map_err(EngineError::from)?
            .into_record();
        self.docs
            .host_mut()
            .add_record(now, id, &log, rec.bundle().clone())?;
        Ok(rec)
    }

    fn net_get_record(&self, id: &ThreadId, cid: &Cid) -> Result<RecordBundle, NodeError> {
        let host = self.docs.host();
        if !host.has_thread(id) {
            return Err(EngineError::ThreadNotFound.into());
        }
        match host.record_by_cid(cid)? {
            Some((thread, _, bundle)) if &thread == id => Ok(bundle),
            _ => Err(NodeError::NotFound("record not found".into())),
        }
    }
}

/// A random generator for keys and nonces, seeded from the OS.
fn fresh_rng() -> Result<ProtocolRng, NodeError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| NodeError::Repo {
        repo: std::path::PathBuf::new(),
        error: format!("no OS randomness: {e}"),
    })?;
    Ok(ProtocolRng::from_seed(seed))
}
