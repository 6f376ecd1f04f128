//! The peer protocol in motion: handling messages, anti-entropy timers and pulls.

use super::ingest::Offered;
use super::message::{self, LogHeightEntry, Payload};
use super::output::{Event, Misbehaviour};
use super::state::SyncTimer;
use super::verify::{CheckedBatch, CheckedMessage, Inbound};
use super::{Application, Config, Host, PeerId, PendingPull, Time, as_read, commands};
use crate::counter::LogCounter;
use crate::id::ThreadId;
use crate::key::ThreadKey;
use crate::log_id::LogId;
use crate::store::Store;
use std::collections::{BTreeMap, BTreeSet};

/// The first page of a pull asks for this fraction of the page size asked (see
/// `request_pull_sized` and [`asked_page_max`]).
const FIRST_PAGE_DIVISOR: u64 = 8;

impl<S: Store, A: Application> Host<S, A> {
    /// Handles one message from `from`. Invalid or hostile input is refused, reported as
    /// [`Event::PeerMisbehaved`] and changes nothing.
    ///
    /// Everything the message changes is stored in at most one write transaction: the records
    /// it carries together with any change of the thread's row (new peers, an answered
    /// invitation), or that row alone.
    pub fn handle_message(&mut self, now: Time, from: &PeerId, bytes: &[u8]) {
        let _span = tracing::debug_span!("handle_message", %from, len = bytes.len()).entered();
        self.dispatch_message(now, from, bytes);
        self.flush_rows();
    }

    /// Handles one message from a peer, checked before ([`Inbound::Checked`]) or not
    /// ([`Inbound::Raw`], as [`Host::handle_message`]). A checked message is re-checked
    /// against what this host holds (receiver, thread keys, log) and its records are stored
    /// without being verified again; one that does not match is refused as
    /// [`Misbehaviour::MismatchedCheck`]. Otherwise the outcome is the same as for the raw
    /// bytes.
    pub fn handle_inbound(&mut self, now: Time, inbound: Inbound) {
        match inbound {
            Inbound::Raw { from, bytes } => self.handle_message(now, &from, &bytes),
            Inbound::Checked(m) => {
                let _span = tracing::debug_span!("handle_message", from = %m.from, checked = true)
                    .entered();
                self.dispatch_checked(now, *m);
                self.flush_rows();
            }
        }
    }

    fn dispatch_checked(&mut self, now: Time, m: CheckedMessage) {
        let CheckedMessage {
            from,
            me,
            thread: id,
            key,
            payload,
            batch,
        } = m;
        if me != self.peer_id {
            return self.misbehaved(&from, Misbehaviour::MismatchedCheck(id, "receiver"));
        }
        let Some(t) = self.threads.get(&id) else {
            return self.misbehaved(&from, Misbehaviour::UnknownThread(id));
        };
        if t.key != key {
            return self.misbehaved(&from, Misbehaviour::MismatchedCheck(id, "thread keys"));
        }
        self.dispatch_proven(now, &from, id, payload, batch);
    }

    fn dispatch_message(&mut self, now: Time, from: &PeerId, bytes: &[u8]) {
        let (frame, payload) = match message::decode(bytes, self.config.max_message_len) {
            Ok(m) => m,
            Err(e) => return self.misbehaved(from, Misbehaviour::InvalidMessage(e)),
        };
        let Some(id) = message::thread_of(payload.thread_bytes()) else {
            return self.misbehaved(from, Misbehaviour::InvalidField("invalid thread id"));
        };
        if let Payload::Invite { service_key, .. } = &payload {
            return self.on_invite(now, from, &id, service_key, &frame);
        }
        let Some(t) = self.threads.get(&id) else {
            return self.misbehaved(from, Misbehaviour::UnknownThread(id));
        };
        if !t
            .proof
            .is_valid(from, &self.peer_id, &frame.payload, &frame.proof)
        {
            return self.misbehaved(from, Misbehaviour::BadProof(id));
        }
        self.dispatch_proven(now, from, id, payload, None);
    }

    /// Acts on a message whose sender proved membership of thread `id`. `batch` holds the
    /// checked records of a page or push that came through a verifier.
    fn dispatch_proven(
        &mut self,
        now: Time,
        from: &PeerId,
        id: ThreadId,
        payload: Payload,
        batch: Option<CheckedBatch>,
    ) {
        // A peer that proves membership is a host of the thread (and has taken up any
        // invitation we sent it).
        self.add_peer(&id, from);
        if let Some(t) = self.threads.get_mut(&id)
            && t.invited.remove(from)
        {
            self.dirty.insert(id);
        }
        tracing::trace!(kind = payload.kind(), thread = %id, "message");
        match payload {
            Payload::Digest { digest, .. } => self.on_digest(now, from, &id, &digest),
            Payload::Heights {
                logs, peers, reply, ..
            } => self.on_heights(now, from, &id, logs, peers, reply),
            Payload::Pull {
                log, from: at, max, ..
            } => self.on_pull(from, &id, &log, at, max),
            Payload::Page {
                log,
                from: at,
                records,
                height,
                ..
            } => {
                let Some(offered) = self.offered(from, &id, &log, &records, batch) else {
                    return;
                };
                self.on_page(now, from, &id, offered, at, height)
            }
            Payload::Push { log, records, .. } => {
                let Some(offered) = self.offered(from, &id, &log, &records, batch) else {
                    return;
                };
                self.on_push(now, from, &id, offered)
            }
            Payload::Invite { .. } => {}
        }
    }

    /// The log and records of a page or push: its own encoded records, or the checked batch,
    /// which must be for the log the message names. `None` (reported) when the log id is
    /// invalid or does not match the batch.
    fn offered<'r>(
        &mut self,
        from: &PeerId,
        id: &ThreadId,
        log: &[u8],
        records: &'r [serde_bytes::ByteBuf],
        batch: Option<CheckedBatch>,
    ) -> Option<(LogId, Offered<'r>)> {
        let Some(log) = self.parse_id(id, log) else {
            self.misbehaved(from, Misbehaviour::InvalidField("invalid log id"));
            return None;
        };
        match batch {
            None => Some((log, Offered::Bytes(records))),
            Some(b) if b.log() == &log && records.is_empty() => {
                Some((log, Offered::Checked(b.into_records())))
            }
            Some(_) => {
                self.misbehaved(from, Misbehaviour::MismatchedCheck(*id, "log"));
                None
            }
        }
    }

    /// Runs every timer due at `now`: digest rounds of threads whose interval ran out (their
    /// messages are made by [`Host::poll_output`]), and expiry of unanswered pulls (the
    /// thread's next digest round is brought forward, so another peer can be asked).
    /// Thread rows whose storing failed in an earlier input are stored again here.
    pub fn handle_timeout(&mut self, now: Time) {
        let _span = tracing::debug_span!("handle_timeout", now = now.as_millis()).entered();
        self.flush_rows();
        let mut expired = BTreeSet::new();
        self.pulls.retain(|(thread, _), p| {
            let keep = p.expires > now;
            if !keep {
                expired.insert(*thread);
            }
            keep
        });
        for id in &expired {
            self.touch(id, now);
        }
        while let Some((at, id)) = self.schedule.first().cloned() {
            if at > now {
                break;
            }
            self.schedule.remove(&(at, id));
            let Some(t) = self.threads.get(&id) else {
                continue;
            };
            let interval = (t.sync.interval.saturating_mul(2)).clamp(
                self.config.sync_interval_min_ms,
                self.config.sync_interval_max_ms,
            );
            if self.due_set.insert(id) {
                self.due.push_back(id);
            }
            let next = self.jittered(now, interval);
            if let Some(t) = self.threads.get_mut(&id) {
                t.sync = SyncTimer {
                    deadline: next.as_millis(),
                    interval,
                };
            }
            self.schedule.insert((next, id));
        }
    }

    /// Sends a thread's digest to each of its peers and repeats unanswered invitations.
    pub(super) fn digest_round(&mut self, id: &ThreadId) {
        let Some(t) = self.threads.get(id) else {
            return;
        };
        let digest = t.digest();
        // A peer whose last digest was ours would learn nothing (see `exchange`).
        let peers: Vec<PeerId> = t
            .peers
            .iter()
            .filter(|p| !t.exchanges.peer_is_at(p, &digest))
            .cloned()
            .collect();
        let invited: Vec<PeerId> = t.invited.iter().cloned().collect();
        for p in &peers {
            self.send(
                id,
                p,
                &Payload::Digest {
                    thread: id.to_vec(),
                    digest: digest.to_vec(),
                },
            );
        }
        for p in &invited {
            self.send_invite(id, p);
        }
    }

    /// A connection to `peer` came up: reconcile every thread shared with it right away.
    /// What was exchanged with it before is forgotten (messages in flight on an earlier
    /// connection may have been lost), so nothing is left out of this exchange.
    pub fn handle_connected(&mut self, _now: Time, peer: &PeerId) {
        let mut shared: Vec<(ThreadId, [u8; 32])> = Vec::new();
        for (id, t) in &mut self.threads {
            if t.peers.contains(peer) {
                t.exchanges.forget(peer);
                shared.push((*id, t.digest()));
            }
        }
        for (id, digest) in shared {
            self.send(
                &id,
                peer,
                &Payload::Digest {
                    thread: id.to_vec(),
                    digest: digest.to_vec(),
                },
            );
        }
    }

    fn on_digest(&mut self, now: Time, from: &PeerId, id: &ThreadId, digest: &[u8]) {
        let Some(t) = self.threads.get_mut(id) else {
            return;
        };
        let theirs = <[u8; 32]>::try_from(digest).ok();
        if let Some(heard) = theirs
            && t.peers.contains(from)
        {
            t.exchanges.heard(from, heard);
        }
        // When the heights are left out, the exchange is already under way: an earlier round
        // of our own would only send more digests.
        if t.digest().as_slice() != digest
            && self.answer_with_heights(now, id, from, Answering::Digest(theirs))
        {
            self.touch(id, now);
        }
    }

    fn on_heights(
        &mut self,
        now: Time,
        from: &PeerId,
        id: &ThreadId,
        mut logs: Vec<LogHeightEntry>,
        peers: Vec<serde_bytes::ByteBuf>,
        reply: bool,
    ) {
        let max_logs = self.config.max_logs_per_thread;
        if logs.len() > max_logs {
            self.misbehaved(from, Misbehaviour::TooManyLogs(*id));
            logs.truncate(max_logs);
        }
        let mut theirs = BTreeMap::new();
        for entry in logs {
            let Some(log) = self.parse_id(id, &entry.log) else {
                self.misbehaved(from, Misbehaviour::InvalidField("invalid log id"));
                continue;
            };
            theirs.insert(log, entry.height);
        }
        let Some(t) = self.threads.get_mut(id) else {
            return;
        };
        for (log, h) in &theirs {
            if t.peer_heights.contains_key(log) || t.peer_heights.len() < max_logs {
                let known = t.peer_heights.entry(*log).or_default();
                *known = (*known).max(*h);
            }
        }
        let mut wanted = Vec::new();
        let mut ahead = false;
        for (log, state) in &t.logs {
            let h = theirs.get(log).copied().unwrap_or(0);
            ahead |= state.height.0 > h;
        }
        for (log, h) in &theirs {
            let ours = t.logs.get(log).map_or(0, |s| s.height.0);
            if *h > ours {
                wanted.push((*log, ours + 1, *h));
            }
        }
        for (log, at, height) in wanted {
            self.request_pull(now, id, &log, at, from);
            self.ask_ahead(id, &log, from, height);
        }
        for p in peers.iter().take(self.config.max_peers_per_thread) {
            if let Some(peer) = self.parse_id(id, p) {
                self.add_peer(id, &peer);
            }
        }
        if reply && ahead {
            self.answer_with_heights(now, id, from, Answering::Heights);
        }
    }

    fn on_pull(&mut self, from: &PeerId, id: &ThreadId, log: &[u8], at: u64, max: u32) {
        let (Some(log), Some(start)) = (self.parse_id(id, log), LogCounter::new(at)) else {
            return self.misbehaved(
                from,
                Misbehaviour::InvalidField("pull of an invalid log or counter 0"),
            );
        };
        let height = self
            .threads
            .get(id)
            .and_then(|t| t.logs.get(&log))
            .map_or(0, |s| s.height.0);
        let max = max.clamp(1, self.config.page_max_records) as usize;
        #[cfg(feature = "buggify")]
        let page_max_bytes = if self.config.bugs.ignore_page_bytes {
            usize::MAX
        } else {
            self.config.page_max_bytes
        };
        #[cfg(not(feature = "buggify"))]
        let page_max_bytes = self.config.page_max_bytes;
        let page = self.store.read().map_err(Into::into).and_then(|txn| {
            commands::read_page(as_read(&txn), id, &log, start, max, page_max_bytes)
        });
        let records = match page {
            Ok(records) => records,
            // No page rather than an empty one: the peer's pull expires and is asked again.
            Err(crate::engine::EngineError::Store(error)) => {
                return self.store_failed(Some(*id), "reading a page", error);
            }
            Err(other) => {
                let error = crate::store::StoreError::Corrupt(other.to_string());
                return self.store_failed(Some(*id), "reading a page", error);
            }
        };
        let payload = Payload::Page {
            thread: id.to_vec(),
            log: log.as_bytes().to_vec(),
            from: at,
            records: records
                .into_iter()
                .map(serde_bytes::ByteBuf::from)
                .collect(),
            height,
        };
        self.send(id, from, &payload);
    }

    fn on_page(
        &mut self,
        now: Time,
        from: &PeerId,
        id: &ThreadId,
        (log, offered): (LogId, Offered<'_>),
        at: u64,
        height: u64,
    ) {
        let key = (*id, log);
        let ours = |h: &Self| {
            h.threads
                .get(id)
                .and_then(|t| t.logs.get(&log))
                .map_or(0, |s| s.height.0)
        };
        let mine = ours(self);
        // A page asked for ahead of one that came back short starts past our height: it was
        // asked for, but its records cannot be stored yet. It is dropped; when the last page
        // of the window is in, the records are asked for again from our height.
        if at > mine + 1
            && let Some(p) = self.pulls.get_mut(&key)
            && p.peer == *from
            && (p.pages > 1 || p.next_page.is_none())
            && at < p.ahead
        {
            p.pages = p.pages.saturating_sub(1);
            p.next_page = None;
            if p.pages == 0 {
                let step = p.sized.then_some(p.step);
                self.pulls.remove(&key);
                if height > mine {
                    self.request_pull_sized(now, id, &log, mine + 1, from, step);
                    self.ask_ahead(id, &log, from, height);
                }
            }
            return;
        }
        // Past the stored height but within the reach of the pages this host asks for ahead:
        // an answer to a pull that ended since (a page before it failed, the pull expired,
        // another peer moved the log on, the host restarted) or a late copy. The records
        // cannot be stored yet and will be asked for again; the peer is not to blame. (Pages
        // are asked at most `asked_page_max` apart; the reach allows the larger page limit, so
        // pages asked before a restart with a smaller asked size are not blamed either.)
        let reach = u64::from(self.config.pull_window.max(1) - 1)
            .saturating_mul(u64::from(self.config.page_max_records.max(1)));
        if at > mine + 1 && at - (mine + 1) <= reach {
            return;
        }
        if at == 0 || at > mine + 1 {
            self.pulls.remove(&key);
            return self.misbehaved(from, Misbehaviour::UnexpectedPage(*id));
        }
        let page_bytes = offered.record_bytes();
        let result = self.ingest(now, from, id, &log, offered, false);
        let now_ours = ours(self);
        let progress = !result.failed && result.applied > 0;
        let timeout = self.config.pull_timeout_ms;
        let mut step = None;
        if let Some(p) = self.pulls.get_mut(&key)
            && p.peer == *from
        {
            let asked_step = p.step;
            let was_sized = p.sized;
            p.sized |= progress;
            // A page that stored fewer records than asked while the peer holds more tells its
            // page size: ask for a little less from now on (an eighth of headroom for records
            // of other sizes), so the pages asked ahead line up with the ones it sends.
            let got = now_ours.saturating_sub(mine);
            let more = progress && at == mine + 1 && height > now_ours;
            if more && got < asked_step {
                p.step = (got - got / 8).max(1);
            } else if more && !was_sized && got == asked_step {
                // The short first page came back whole: size the pages from now on by its
                // records' bytes, to fit the peer's byte limit (taken to be ours) with an
                // eighth of headroom. A peer with a lower limit answers short, as above.
                p.step = fitted_step(&self.config, page_bytes, got);
            }
            step = p.sized.then_some(p.step);
            if p.pages > 1 && progress {
                // More pages of the window are on their way: keep the pull, and ask for one
                // more page if the pages still line up with what is stored.
                p.pages -= 1;
                p.expires = now.plus(timeout);
                let aligned = p.next_page == Some(at) && now_ours + 1 == at + asked_step;
                p.next_page = aligned.then_some(now_ours + 1);
                self.ask_ahead(id, &log, from, height);
                return;
            }
        }
        self.pulls.remove(&key);
        if progress && height > now_ours {
            self.request_pull_sized(now, id, &log, now_ours + 1, from, step);
            self.ask_ahead(id, &log, from, height);
        }
    }

    /// Asks `peer`, when it is the peer of a log's outstanding pull, for further pages, up to
    /// `Config::pull_window` pages in flight and up to `height` (what it reported).
    fn ask_ahead(&mut self, id: &ThreadId, log: &LogId, peer: &PeerId, height: u64) {
        let window = self.config.pull_window.max(1);
        let mut asks = Vec::new();
        let Some(p) = self.pulls.get_mut(&(*id, *log)) else {
            return;
        };
        if p.next_page.is_none() || p.peer != *peer || !p.sized {
            return;
        }
        let step = p.step.max(1);
        let max = u32::try_from(step).unwrap_or(u32::MAX);
        while p.pages < window && p.ahead <= height {
            asks.push(p.ahead);
            p.ahead += step;
            p.pages += 1;
        }
        let peer = p.peer;
        for at in asks {
            let payload = Payload::Pull {
                thread: id.to_vec(),
                log: log.as_bytes().to_vec(),
                from: at,
                max,
            };
            self.send(id, &peer, &payload);
        }
    }

    fn on_push(
        &mut self,
        now: Time,
        from: &PeerId,
        id: &ThreadId,
        (log, offered): (LogId, Offered<'_>),
    ) {
        let result = self.ingest(now, from, id, &log, offered, true);
        if let Some(at) = result.gap {
            self.request_pull(now, id, &log, at, from);
        }
    }

    fn on_invite(
        &mut self,
        now: Time,
        from: &PeerId,
        id: &ThreadId,
        service_key: &[u8],
        frame: &message::Frame,
    ) {
        let refuse = |why| Misbehaviour::RefusedInvite(*id, why);
        let Ok(key) = ThreadKey::from_bytes(service_key) else {
            return self.misbehaved(from, refuse("the key is not a 32-byte service key"));
        };
        if key.can_read()
            || !message::proof_is_valid(
                key.service(),
                from,
                &self.peer_id,
                &frame.payload,
                &frame.proof,
            )
        {
            return self.misbehaved(from, refuse("the invitation is not well formed"));
        }
        if let Some(t) = self.threads.get(id) {
            if t.key.service().as_bytes() != key.service().as_bytes() {
                return self.misbehaved(from, refuse("the thread is held with another key"));
            }
            self.add_peer(id, from);
            self.send_heights(id, from, true);
            return;
        }
        if !self.config.accept_invites {
            return self.misbehaved(from, refuse("this host does not accept invitations"));
        }
        if self.threads.len() >= self.config.max_threads {
            return self.misbehaved(from, refuse("this host holds its maximum of threads"));
        }
        let mut peers = BTreeSet::new();
        peers.insert(*from);
        match self.register_thread(now, *id, key, peers) {
            Ok(()) => {}
            Err(crate::engine::EngineError::Store(error)) => {
                return self.store_failed(Some(*id), "adopting a thread", error);
            }
            // Checked above: the thread is new and within the limit.
            Err(_) => return,
        }
        self.emit(Event::ThreadAdopted {
            thread: *id,
            by: *from,
        });
        self.send_heights(id, from, true);
    }

    /// Parses a log or peer id from a message about thread `id`, reusing the id this host
    /// already holds when it is one of the thread's logs or peers (parsing decompresses a key).
    fn parse_id(&self, id: &ThreadId, bytes: &[u8]) -> Option<LogId> {
        let fixed: &[u8; LogId::LEN] = bytes.try_into().ok()?;
        if let Some(t) = self.threads.get(id) {
            if let Some((known, _)) = t.logs.get_key_value(fixed) {
                return Some(*known);
            }
            if let Some(known) = t.peers.get(fixed) {
                return Some(*known);
            }
        }
        LogId::from_bytes(bytes).ok()
    }

    /// Asks `peer` for records of a log from counter `at`, unless a pull of that log is
    /// already outstanding.
    fn request_pull(&mut self, now: Time, id: &ThreadId, log: &LogId, at: u64, peer: &PeerId) {
        self.request_pull_sized(now, id, log, at, peer, None);
    }

    /// Asks `peer` for the page of `log` from `at`: `step` records long when the peer's page
    /// size is known from an earlier page of the pull. Else a first page of an eighth of
    /// [`asked_page_max`] is asked alone: it comes back quickly, so the pages asked after it
    /// (sized by its bytes) start travelling and being checked early.
    fn request_pull_sized(
        &mut self,
        now: Time,
        id: &ThreadId,
        log: &LogId,
        at: u64,
        peer: &PeerId,
        step: Option<u64>,
    ) {
        let max = asked_page_max(&self.config);
        let sized = step.is_some();
        let step = step
            .unwrap_or(max.div_ceil(FIRST_PAGE_DIVISOR))
            .clamp(1, max);
        let key = (*id, *log);
        if let Some(p) = self.pulls.get(&key)
            && p.expires > now
        {
            return;
        }
        self.pulls.insert(
            key,
            PendingPull {
                peer: *peer,
                from: at,
                expires: now.plus(self.config.pull_timeout_ms),
                ahead: at.saturating_add(step),
                pages: 1,
                next_page: Some(at),
                step,
                sized,
            },
        );
        let payload = Payload::Pull {
            thread: id.to_vec(),
            log: log.as_bytes().to_vec(),
            from: at,
            max: u32::try_from(step).unwrap_or(u32::MAX),
        };
        self.send(id, peer, &payload);
    }

    /// Sends this host's heights (and known peers) for a thread to `peer`.
    pub(super) fn send_heights(&mut self, id: &ThreadId, peer: &PeerId, reply: bool) {
        let Some(t) = self.threads.get(id) else {
            return;
        };
        let logs = t
            .logs
            .iter()
            .filter(|(_, s)| s.height.0 > 0)
            .map(|(l, s)| LogHeightEntry {
                height: s.height.0,
                log: l.as_bytes().to_vec(),
            })
            .collect();
        let peers = t
            .peers
            .iter()
            .filter(|p| *p != peer)
            .take(self.config.max_peers_per_thread)
            .map(|p| serde_bytes::ByteBuf::from(p.as_bytes().to_vec()))
            .collect();
        let payload = Payload::Heights {
            thread: id.to_vec(),
            logs,
            peers,
            reply,
        };
        self.send(id, peer, &payload);
    }

    /// Sends this host's heights to `peer` in answer to its digest (asking for its heights in
    /// return) or to its heights, unless the same heights went to it within
    /// `Config::pull_timeout_ms` in answer to the same state of the peer (see
    /// `Exchanges::tell`). Returns whether they were sent.
    fn answer_with_heights(
        &mut self,
        now: Time,
        id: &ThreadId,
        peer: &PeerId,
        answering: Answering,
    ) -> bool {
        let window = self.config.pull_timeout_ms;
        let Some(t) = self.threads.get_mut(id) else {
            return false;
        };
        let (reply, theirs) = match answering {
            Answering::Digest(digest) => (true, digest),
            Answering::Heights => (false, t.exchanges.last_heard(peer)),
        };
        if t.peers.contains(peer) {
            let (logs, peers) = (t.logs.version(), t.peers.len());
            if !t.exchanges.tell(peer, logs, peers, theirs, now, window) {
                return false;
            }
        }
        self.send_heights(id, peer, reply);
        true
    }

    /// Encodes a payload for `peer` with this thread's membership proof and queues it.
    pub(super) fn send(&mut self, id: &ThreadId, peer: &PeerId, payload: &Payload) {
        let Some(t) = self.threads.get(id) else {
            return;
        };
        let bytes = t.proof.encode(&self.peer_id, peer, payload);
        self.outputs
            .push_back(super::Output::Transmit { to: *peer, bytes });
    }
}

/// What a host's heights answer.
enum Answering {
    /// A digest that differs from ours (`None`: not 32 bytes long); the heights ask for the
    /// peer's in return.
    Digest(Option<[u8; 32]>),
    /// Heights that asked for ours.
    Heights,
}

/// Most records this host asks for in one page: `Config::pull_page_records`, within
/// `Config::page_max_records` (at least one).
fn asked_page_max(config: &Config) -> u64 {
    u64::from(config.pull_page_records.min(config.page_max_records).max(1))
}

/// Records per page once a whole page of `got` records took `bytes`: as many such records
/// as fill seven eighths of `Config::page_max_bytes`, at most [`asked_page_max`].
fn fitted_step(config: &Config, bytes: u64, got: u64) -> u64 {
    let max = asked_page_max(config);
    if got == 0 {
        return max;
    }
    let per_record = bytes.div_ceil(got).max(1);
    let budget = config.page_max_bytes as u64;
    ((budget - budget / 8) / per_record).clamp(1, max)
}
