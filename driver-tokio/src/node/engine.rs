//! The engine task: the one thread that owns `Documents<LmdbStore>` (the replication engine
//! and the document fold) and every store write.
//!
//! It runs on a dedicated OS thread with a current-thread tokio runtime, so LMDB commits and
//! their fsync never block the networking runtime. Each turn takes one input (a command, a
//! peer message, connection news or the timer), then drains every engine output and feeds the
//! listeners, then re-arms the single timer from `poll_timeout`.

use crate::addr_book::AddressBook;
use crate::lmdb::LmdbStore;
use crate::metrics::Metrics;
use crate::net::{NetInput, NetOutput};
use crate::node::command::{ChangeItem, Command};
use crate::node::verify_stage::Verifiers;
use crate::node::{NetRecord, NodeError, names, net_threads};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use threads_protocol::engine::{Event, Misbehaviour, Output, Time};
use threads_protocol::store::{ReadTxn as _, Store, StoreError, WriteTxn as _};
use threads_reducer::docs::Documents;
use threads_reducer::listen::ListenerId;
use tokio::sync::{broadcast, mpsc, watch};

/// How often the engine task refreshes its gauges.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// Every how many refreshes the figures are logged at debug level.
const LOG_EVERY: u64 = 10;

/// Most write transactions committed together (group commit).
pub const MAX_GROUP: usize = 128;

/// How long after answering a group of writers the engine waits for them to send their next
/// writes, so that they join the next group instead of each making a commit of their own (see
/// [`EngineTask::commands`]).
pub const GROUP_WAIT: Duration = Duration::from_micros(200);

/// Shortest time between two rebuilds of the verification stage's map.
const VERIFIERS_EVERY: Duration = Duration::from_millis(200);

/// How long a listener whose channel is full waits before the task looks again.
const LISTENER_RETRY: Duration = Duration::from_millis(10);

mod write;

struct Listener {
    id: ListenerId,
    reader: Option<String>,
    sink: mpsc::Sender<ChangeItem>,
}

/// Everything the engine thread owns.
pub(crate) struct EngineTask {
    pub docs: Documents<LmdbStore>,
    pub epoch: Instant,
    pub cmds: mpsc::Receiver<Command>,
    pub net_in: mpsc::Receiver<NetInput>,
    pub net_out: mpsc::Sender<NetOutput>,
    pub records: broadcast::Sender<NetRecord>,
    pub metrics: Arc<Metrics>,
    pub stop: watch::Receiver<bool>,
    /// The verification stage's keys, kept in step with the threads held.
    pub verifiers: Verifiers,
    /// The verifier map must be rebuilt (a checked message did not match the keys held).
    verifiers_stale: bool,
    /// When the verifier map was last rebuilt.
    verifiers_synced: Option<Instant>,
    listeners: Vec<Listener>,
    listeners_blocked: bool,
    /// The last group of writes: how many writers it answered, and when.
    answered: Option<(usize, Instant)>,
    reports: u64,
}

/// Whether an operation's error only reports ids a delete did not find (the others were
/// deleted).
fn only_missing(e: &threads_reducer::docs::DocsError) -> bool {
    matches!(
        e,
        threads_reducer::docs::DocsError::Db(threads_reducer::db::DbError::InstanceNotFound(_))
    )
}

/// Nanoseconds since the Unix epoch (the `_mod` stamp of written instances).
pub(crate) fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl EngineTask {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        docs: Documents<LmdbStore>,
        epoch: Instant,
        cmds: mpsc::Receiver<Command>,
        net_in: mpsc::Receiver<NetInput>,
        net_out: mpsc::Sender<NetOutput>,
        records: broadcast::Sender<NetRecord>,
        metrics: Arc<Metrics>,
        stop: watch::Receiver<bool>,
        verifiers: Verifiers,
    ) -> Self {
        EngineTask {
            docs,
            epoch,
            cmds,
            net_in,
            net_out,
            records,
            metrics,
            stop,
            verifiers,
            verifiers_stale: true,
            verifiers_synced: None,
            listeners: Vec::new(),
            listeners_blocked: false,
            answered: None,
            reports: 0,
        }
    }

    fn now(&self) -> Time {
        Time(self.epoch.elapsed().as_millis() as u64)
    }

    /// Runs until stopped, then hands back the store (to close it).
    pub fn run(mut self) -> LmdbStore {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime with timers can always be built");
        rt.block_on(self.event_loop());
        self.docs.into_host().into_store()
    }

    async fn event_loop(&mut self) {
        let mut report = tokio::time::interval(REPORT_EVERY);
        report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Outputs produced while opening (none today) go out first.
        self.drain();
        self.sync_verifiers();
        loop {
            let deadline = self
                .docs
                .host()
                .poll_timeout()
                .map(|t| self.epoch + Duration::from_millis(t.as_millis()));
            let timer = async move {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            let blocked = self.listeners_blocked;
            tokio::select! {
                cmd = self.cmds.recv() => match cmd {
                    Some(cmd) => self.commands(cmd),
                    None => break,
                },
                Some(input) = self.net_in.recv() => self.net(input),
                _ = timer => {
                    let now = self.now();
                    self.docs.host_mut().handle_timeout(now);
                }
                _ = tokio::time::sleep(LISTENER_RETRY), if blocked => {}
                _ = report.tick() => self.report(),
                _ = self.stop.changed() => break,
            }
            self.drain();
            self.pump_listeners();
            self.sync_verifiers();
        }
        // Stop accepting work, but finish what callers already handed over.
        self.cmds.close();
        while let Ok(cmd) = self.cmds.try_recv() {
            self.commands(cmd);
            self.drain();
        }
        self.pump_listeners();
        tracing::info!("engine stopped");
    }

    fn net(&mut self, input: NetInput) {
        let now = self.now();
        match input {
            NetInput::Message { from, bytes } => {
                self.metrics
                    .add(&self.metrics.bytes_received, bytes.len() as u64);
                self.docs.host_mut().handle_message(now, &from, &bytes);
            }
            NetInput::Checked { len, inbound } => {
                self.metrics.add(&self.metrics.bytes_received, len as u64);
                self.docs.host_mut().handle_inbound(now, *inbound);
            }
            NetInput::Connected(peer) => self.docs.host_mut().handle_connected(now, &peer),
            NetInput::Addrs { peer, addrs, saved } => {
                let result = self.save_addrs(&peer, &addrs);
                if let Some(saved) = saved {
                    let _ = saved.send(result);
                }
            }
        }
    }

    /// Keeps the verification stage's map in step with the threads held: rebuilt when the
    /// number of threads differs (a thread was made, adopted or deleted) or a checked message
    /// did not match the keys held, at most every [`VERIFIERS_EVERY`] (a rebuild costs a walk
    /// of every thread; until then messages of a new thread are verified by the engine).
    fn sync_verifiers(&mut self) {
        if self
            .verifiers_synced
            .is_some_and(|t| t.elapsed() < VERIFIERS_EVERY)
        {
            return;
        }
        let host = self.docs.host();
        let count = host.thread_count();
        let Ok(mut map) = self.verifiers.write() else {
            return;
        };
        if !self.verifiers_stale && map.len() == count {
            return;
        }
        self.verifiers_synced = Some(Instant::now());
        map.clear();
        for id in host.thread_ids() {
            if let Some(v) = host.verifier(&id) {
                map.insert(id, v);
            }
        }
        self.verifiers_stale = false;
    }

    fn save_addrs(
        &mut self,
        peer: &threads_protocol::engine::PeerId,
        addrs: &[libp2p::Multiaddr],
    ) -> Result<(), StoreError> {
        let result = self.docs.host().store().write().and_then(|mut txn| {
            AddressBook::save(&mut txn, peer, addrs)?;
            txn.commit()
        });
        if let Err(e) = &result {
            tracing::warn!(%peer, error = %e, "could not save the peer's addresses");
        }
        result
    }

    /// Handles `first` and, when it is a write, every write already queued behind it (up to
    /// [`MAX_GROUP`]) in one group commit; a non-write found while gathering runs after them.
    ///
    /// Writers that wait for each answer before their next write (a closed loop) otherwise
    /// settle into cohorts: the writers answered by one commit send their next writes while
    /// the next commit runs with the writes queued meanwhile, so two or more commits, each
    /// paying the disk's fixed cost, serve what one could. So while fewer writes are queued
    /// than the last group answered, the engine gives those writers until [`GROUP_WAIT`] after
    /// their answers to join (spec/daemon.md §4). A lone sequential writer never waits: the
    /// group that answered it was one write, and its next write is that one.
    fn commands(&mut self, first: Command) {
        if !matches!(first, Command::Write { .. }) {
            return self.command(first);
        }
        let mut writes = vec![first];
        let mut after = self.gather(&mut writes, None);
        if after.is_none()
            && let Some((count, at)) = self.answered
            && writes.len() < count
        {
            let waited = Instant::now();
            after = self.gather(&mut writes, Some((count, at + GROUP_WAIT)));
            self.metrics.add(
                &self.metrics.group_wait_micros,
                waited.elapsed().as_micros() as u64,
            );
        }
        let count = writes.len();
        self.write_group(writes);
        self.answered = Some((count, Instant::now()));
        if let Some(cmd) = after {
            self.command(cmd);
        }
    }

    /// Moves queued writes into `writes` (up to [`MAX_GROUP`]) and returns the first command
    /// that is not a write. Without `until`, stops at an empty queue; with `until = (n,
    /// deadline)`, keeps looking (yielding the core in between) until `n` writes are gathered
    /// or the deadline passes.
    fn gather(
        &mut self,
        writes: &mut Vec<Command>,
        until: Option<(usize, Instant)>,
    ) -> Option<Command> {
        while writes.len() < MAX_GROUP {
            match self.cmds.try_recv() {
                Ok(cmd @ Command::Write { .. }) => writes.push(cmd),
                Ok(other) => return Some(other),
                Err(mpsc::error::TryRecvError::Empty) => match until {
                    Some((n, deadline)) if writes.len() < n && Instant::now() < deadline => {
                        std::thread::yield_now()
                    }
                    _ => break,
                },
                Err(mpsc::error::TryRecvError::Disconnected) => break,
            }
        }
        None
    }

    fn command(&mut self, cmd: Command) {
        let now = self.now();
        match cmd {
            Command::NewDb { opts, name, reply } => {
                let result = self
                    .docs
                    .new_db(now, *opts)
                    .map_err(NodeError::from)
                    .and_then(|info| self.name_db(now, info, &name));
                let _ = reply.send(result);
            }
            Command::Join {
                addr,
                key,
                name,
                reply,
            } => {
                let result = self
                    .docs
                    .host_mut()
                    .join_thread(now, &addr, key)
                    .map_err(NodeError::from)
                    .and_then(|info| self.name_db(now, info, &name));
                let _ = reply.send(result);
            }
            Command::DeleteDb { id, reply } => {
                let _ = reply.send(self.delete_db(now, &id));
            }
            Command::ThreadInfo { id, reply } => {
                let _ = reply.send(self.docs.host().thread_info(&id).map_err(NodeError::from));
            }
            Command::ListThreads { reply } => {
                let _ = reply.send(Ok(self.docs.host().thread_ids()));
            }
            Command::AddReplicator { id, peer, reply } => {
                let result = self.docs.host_mut().add_replicator(now, &id, &peer);
                let _ = reply.send(result.map_err(NodeError::from));
            }
            Command::Pull { id, reply } => {
                let result = self.docs.host_mut().pull_thread(now, &id);
                let _ = reply.send(result.map_err(NodeError::from));
            }
            cmd @ Command::Write { .. } => self.write_group(vec![cmd]),
            Command::Net(cmd) => self.net_command(now, *cmd),
            Command::Listen {
                db,
                filters,
                from,
                reader,
                sink,
                reply,
            } => {
                let id = self.docs.listen(&db, filters, from);
                self.listeners.push(Listener { id, reader, sink });
                let _ = reply.send(Ok(()));
            }
        }
    }

    /// Stores the name of a database just created or joined; a failure removes the thread
    /// again, so the command stays atomic.
    fn name_db(
        &mut self,
        now: Time,
        info: threads_protocol::engine::ThreadInfo,
        name: &str,
    ) -> Result<threads_protocol::engine::ThreadInfo, NodeError> {
        if name.is_empty() {
            return Ok(info);
        }
        let result = self.docs.host().store().write().and_then(|mut txn| {
            names::save(&mut txn, &info.id, name)?;
            txn.commit()
        });
        match result {
            Ok(()) => Ok(info),
            Err(e) => {
                let _ = self.docs.host_mut().delete_thread(now, &info.id);
                Err(e.into())
            }
        }
    }

    /// Deletes a database: the thread (keys, logs, records) first, then the folded document
    /// state and the name. Listeners of the database simply see no more changes.
    pub(crate) fn delete_db(
        &mut self,
        now: Time,
        id: &threads_protocol::id::ThreadId,
    ) -> Result<(), NodeError> {
        self.docs.host_mut().delete_thread(now, id)?;
        let mut txn = self.docs.host().store().write()?;
        for tag in [
            // The records space holds the undo logs and footprints too.
            threads_reducer::fold::TAG_OPS,
            threads_reducer::fold::TAG_REJECTED,
            threads_reducer::fold::TAG_DEPENDENTS,
            threads_reducer::fold::TAG_STATE,
        ] {
            let prefix = threads_reducer::fold::prefix(tag, id);
            let mut keys = Vec::new();
            txn.scan(
                threads_protocol::store::KeyRange::prefix(&prefix),
                threads_protocol::store::Direction::Forward,
                &mut |k, _| {
                    keys.push(k.to_vec());
                    std::ops::ControlFlow::Continue(())
                },
            )?;
            for k in keys {
                txn.delete(&k)?;
            }
        }
        names::save(&mut txn, id, "")?;
        net_threads::save(&mut txn, id, false)?;
        txn.commit()?;
        Ok(())
    }

    /// Drains every engine output: transmits go to the swarm (dropped, and counted, when its
    /// queue is full: sync repairs losses), events to metrics, logs and subscribers.
    fn drain(&mut self) {
        while let Some(out) = self.docs.poll_output() {
            match out {
                // A thread registered as held from here sends its first heights to itself.
                Output::Transmit { to, .. } if &to == self.docs.host().peer_id() => {}
                Output::Transmit { to, bytes } => {
                    let len = bytes.len() as u64;
                    match self.net_out.try_send(NetOutput::Transmit { to, bytes }) {
                        Ok(()) => self.metrics.add(&self.metrics.bytes_queued, len),
                        Err(_) => self.metrics.add(&self.metrics.transmits_dropped, 1),
                    }
                }
                Output::Event(event) => self.event(event),
            }
        }
    }

    fn event(&mut self, event: Event) {
        if let Event::PeerMisbehaved { reason, .. } = &event
            && matches!(**reason, Misbehaviour::MismatchedCheck(..))
        {
            self.verifiers_stale = true;
        }
        match event {
            Event::RecordAdded {
                thread,
                local,
                record,
            } => {
                let counter = if local {
                    &self.metrics.records_written
                } else {
                    &self.metrics.records_ingested
                };
                self.metrics.add(counter, 1);
                // Nobody subscribed is not an error.
                let _ = self.records.send(NetRecord {
                    thread,
                    record: Arc::from(record),
                });
            }
            Event::RecordRejected {
                thread,
                log,
                counter,
                reason,
            } => {
                self.metrics.add(&self.metrics.records_rejected, 1);
                tracing::debug!(%thread, %log, counter = counter.get(), %reason, "record rejected by the database rules");
            }
            Event::ApplyFailed {
                thread,
                log,
                counter,
                error,
            } => {
                self.metrics.add(&self.metrics.apply_failures, 1);
                tracing::warn!(%thread, %log, counter = counter.get(), %error, "storing a record failed; it will be fetched again");
            }
            Event::StoreFailed {
                thread,
                during,
                error,
            } => {
                self.metrics.add(&self.metrics.apply_failures, 1);
                let thread = thread.map(|t| t.to_string()).unwrap_or_default();
                tracing::error!(%thread, during, %error, "the repository failed; nothing of that step was kept");
            }
            Event::PeerMisbehaved { peer, reason } => {
                self.metrics.add(&self.metrics.peers_misbehaved, 1);
                tracing::warn!(%peer, %reason, "peer misbehaved");
            }
            Event::LogForked(fork) => {
                tracing::warn!(thread = %fork.thread, log = %fork.log, counter = fork.counter.get(), from = %fork.from, "log forked");
            }
            Event::ThreadAdopted { thread, by } => {
                tracing::info!(%thread, %by, "replicating thread on invitation");
            }
        }
    }

    /// Hands each listener the changes its channel has room for.
    fn pump_listeners(&mut self) {
        let mut blocked = false;
        let mut closed = Vec::new();
        for l in &self.listeners {
            loop {
                let permit = match l.sink.try_reserve() {
                    Ok(p) => p,
                    Err(mpsc::error::TrySendError::Full(())) => {
                        blocked = true;
                        break;
                    }
                    Err(mpsc::error::TrySendError::Closed(())) => {
                        closed.push(l.id);
                        break;
                    }
                };
                match self.docs.next_change(l.id, l.reader.as_deref()) {
                    Ok(Some(change)) => permit.send(Ok(change)),
                    Ok(None) => break,
                    Err(lagged) => {
                        permit.send(Err(lagged));
                        closed.push(l.id);
                        break;
                    }
                }
            }
        }
        for id in &closed {
            self.docs.close_listener(*id);
        }
        self.listeners.retain(|l| !closed.contains(&l.id));
        self.listeners_blocked = blocked;
    }

    fn report(&mut self) {
        let host = self.docs.host();
        let ids = host.thread_ids();
        self.metrics.set(&self.metrics.threads, ids.len() as u64);
        let mut total = 0;
        let mut lagging = Vec::new();
        for id in &ids {
            let lag = host.sync_lag(id).unwrap_or(0);
            total += lag;
            if lag > 0 && lagging.len() < crate::metrics::MAX_LAG_LABELS {
                lagging.push((id.to_string(), lag));
            }
        }
        self.metrics.set(&self.metrics.sync_lag, total);
        if let Ok(mut slot) = self.metrics.lagging.lock() {
            *slot = lagging;
        }
        self.reports += 1;
        if self.reports % LOG_EVERY == 1 {
            tracing::debug!(target: "threadsd::metrics", "{}", self.metrics.summary());
        }
    }
}
