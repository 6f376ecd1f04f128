//! What the clients of the simulated hosts do: define the collection, join the thread and
//! write, remembering every write the engine acknowledged.

use super::{Acked, Ev, World};
use crate::Role;
use crate::workload;
use sha2::{Digest, Sha256};
use threads_protocol::addr::ThreadAddr;
use threads_protocol::engine::EngineError;
use threads_protocol::rng::Rng;
use threads_reducer::fold::OrderKey;

impl World {
    /// Host 0's first write: the collection every later write uses.
    pub(super) fn define_collection(&mut self) {
        let now = self.local_now(0);
        let body = workload::define_collection();
        let thread = self.thread;
        let e = self.hosts[0].engine.as_mut().expect("host 0 is honest");
        let author = e.identity().public();
        let rec = e
            .create_record(now, &thread, None, &body, 0)
            .expect("defining the collection on a fresh host");
        self.acknowledge(0, &rec, author, body);
    }

    /// Remembers a write the engine acknowledged; returns the hash of its bundle.
    fn acknowledge(
        &mut self,
        host: usize,
        rec: &threads_protocol::record::VerifiedRecord,
        author: threads_protocol::identity::PublicKey,
        body: Vec<u8>,
    ) -> [u8; 32] {
        let hash: [u8; 32] = Sha256::digest(rec.bundle().encode()).into();
        self.acked_at.insert(rec.cid(), self.now);
        self.acked.insert(
            rec.cid(),
            Acked {
                host,
                log: *rec.log(),
                counter: rec.counter().get(),
                bundle_hash: hash,
                order: OrderKey::of(rec),
                author,
                body,
            },
        );
        hash
    }

    /// Brings a host into the thread: host 0 invites a replicator, any other host joins
    /// through a member (retried later while that is not possible).
    pub(super) fn join(&mut self, host: usize) {
        // A host that is down, or whose inviter is, joins once it is back.
        let inviter_down =
            self.hosts[host].role == Role::Replicator && self.hosts[0].engine.is_none();
        if self.hosts[host].engine.is_none() || inviter_down {
            let t = self.now + 500;
            self.at(t, Ev::Join { host });
            return;
        }
        let now = self.local_now(host);
        self.mix(&[b"join", &[host as u8]]);
        self.hosts[host].member = true;
        if self.hosts[host].role == Role::Replicator {
            self.log(|| format!("host 0 invites host {host} as replicator"));
            let peer = self.hosts[host].peer;
            let now0 = self.local_now(0);
            let invited = match self.hosts[0].engine.as_mut() {
                Some(e) => e.add_replicator(now0, &self.thread, &peer),
                None => Ok(()),
            };
            match invited {
                Ok(()) => {}
                Err(err) if self.injected(&err) => {
                    self.hosts[host].member = false;
                    let t = self.now + 500;
                    self.at(t, Ev::Join { host });
                }
                Err(err) => self.problems.push((
                    "host-error",
                    format!("host 0 failed to invite host {host}: {err}"),
                )),
            }
            self.drain(0);
            self.after_input(0);
            return;
        }
        // Join through a random member that is not the joiner.
        // Never through a host that will go down for good: a joiner whose only contact
        // disappears has no address left to sync from (a real client would join again
        // through another address), which is no fault of the engine.
        let members: Vec<usize> = (0..self.hosts.len())
            .filter(|&i| {
                i != host
                    && self.hosts[i].member
                    && self.hosts[i].engine.is_some()
                    && !self.down_for_good.contains(&i)
            })
            .collect();
        if members.is_empty() {
            self.hosts[host].member = false;
            let t = self.now + 500;
            self.at(t, Ev::Join { host });
            return;
        }
        let via = members[(self.rng.next_u64() % members.len() as u64) as usize];
        self.log(|| format!("host {host} joins through host {via}"));
        let addr: ThreadAddr = format!(
            "/ip4/127.0.0.1/tcp/4006/p2p/{}/thread/{}",
            self.hosts[via].peer, self.thread
        )
        .parse()
        .expect("a well-formed thread address");
        let key = self.key.clone();
        let Some(e) = self.hosts[host].engine.as_mut() else {
            return;
        };
        let joined = e.join_thread(now, &addr, key);
        match joined {
            Ok(_) => {}
            Err(err) if self.injected(&err) => {
                self.hosts[host].member = false;
                let t = self.now + 500;
                self.at(t, Ev::Join { host });
            }
            Err(err) => self
                .problems
                .push(("host-error", format!("host {host} failed to join: {err}"))),
        }
        self.drain(host);
    }

    /// Host `host` writes the run's `n`th transaction; an acknowledged write is remembered.
    pub(super) fn write(&mut self, host: usize, n: usize) {
        let now = self.local_now(host);
        let body = workload::transaction(&mut self.rng, n);
        let thread = self.thread;
        let Some(e) = self.hosts[host].engine.as_mut() else {
            return; // crashed: the client's write is refused, nothing is acknowledged
        };
        let author = e.identity().public();
        match e.create_record(now, &thread, None, &body, now.as_millis()) {
            Ok(rec) => {
                let hash = self.acknowledge(host, &rec, author, body);
                self.mix(&[b"write", &[host as u8], &hash]);
                self.log(|| format!("host {host} writes record {} of its log", rec.counter()));
            }
            // The database refused the transaction (say, a create of an id this writer
            // already holds): a client error, nothing was written or acknowledged.
            Err(EngineError::Rejected(reason)) => {
                self.mix(&[b"refused", &[host as u8]]);
                self.log(|| format!("host {host} write {n} refused: {reason}"));
            }
            // The disk failed (injected), a drawn log limit was reached, or the writer has not
            // joined yet (its join hit an injected fault): the write is refused and not
            // acknowledged.
            Err(err)
                if self.injected(&err)
                    || matches!(err, EngineError::Limit(_))
                    || (matches!(err, EngineError::ThreadNotFound) && !self.hosts[host].member) =>
            {
                self.mix(&[b"failed", &[host as u8]]);
                self.log(|| format!("host {host} write {n} failed: {err}"));
            }
            Err(err) => self
                .problems
                .push(("host-error", format!("host {host} write {n} failed: {err}"))),
        }
        self.drain(host);
    }
}
