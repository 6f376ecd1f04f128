//! Where the records of a local write are built and signed.
//!
//! Building a record (sealing its blocks, hashing them, signing with the log key) is pure work
//! that depends only on the bodies and the log's position, and a record's CID and signature are
//! not needed to fold it: [`Host::create_records`](super::Host::create_records) hands that work
//! to a [`Signer`] as a [`SigningJob`], folds the bodies meanwhile, then waits for the records
//! and stores them with the fold in the same transaction. The default, [`Inline`], builds them
//! when the engine waits for them, on the engine's thread; a driver with a spare core can
//! install one that runs the job on another thread ([`Host::set_signer`](super::Host::set_signer)),
//! so signing overlaps with the fold. Nothing leaves the engine before the transaction commits,
//! whichever signer runs the job.

use crate::counter::{LamportClock, LogCounter};
use crate::id::ThreadId;
use crate::identity::{PrivateKey, PublicKey};
use crate::key::ThreadKey;
use crate::record::{self, OpenedRecord, RecordDraft, RecordError};
use crate::rng::ProtocolRng;
use cid::Cid;
use std::sync::mpsc;

/// The records of one local write group to build: consecutive records of one log, from the
/// position after its head. Owns everything it needs, so it can run on any thread.
pub struct SigningJob {
    pub(super) thread: ThreadId,
    pub(super) author: PublicKey,
    pub(super) log_key: PrivateKey,
    pub(super) key: ThreadKey,
    pub(super) prev: Option<Cid>,
    pub(super) counter: LogCounter,
    pub(super) clock: LamportClock,
    pub(super) time: u64,
    pub(super) bodies: Vec<Vec<u8>>,
    /// A stream of its own, drawn from the host's, so the bytes do not depend on the thread.
    pub(super) rng: ProtocolRng,
}

impl std::fmt::Debug for SigningJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningJob")
            .field("thread", &self.thread)
            .field("counter", &self.counter)
            .field("records", &self.bodies.len())
            .finish_non_exhaustive()
    }
}

impl SigningJob {
    /// Builds and signs the records, each one's `prev` the one before.
    pub fn run(mut self) -> Result<Vec<OpenedRecord>, RecordError> {
        let mut records = Vec::with_capacity(self.bodies.len());
        let (mut prev, mut counter, mut clock) = (self.prev, self.counter, self.clock);
        for body in &self.bodies {
            let draft = RecordDraft {
                thread: &self.thread,
                author: &self.author,
                prev,
                counter,
                clock,
                time: self.time,
                body,
            };
            let opened = record::create(&draft, &self.log_key, &self.key, &mut self.rng)?;
            prev = Some(opened.record().cid());
            counter = counter.next();
            clock = clock.tick();
            records.push(opened);
        }
        Ok(records)
    }
}

/// Records being built by a [`Signer`].
#[derive(Debug)]
pub enum Pending {
    /// Not started: built when waited for, on the waiting thread.
    Inline(Box<SigningJob>),
    /// Built elsewhere; the result arrives on this channel.
    Elsewhere(mpsc::Receiver<Result<Vec<OpenedRecord>, RecordError>>),
}

impl Pending {
    /// The built records; `None` when the thread building them went away without an answer.
    pub fn wait(self) -> Option<Result<Vec<OpenedRecord>, RecordError>> {
        match self {
            Pending::Inline(job) => Some(job.run()),
            Pending::Elsewhere(rx) => rx.recv().ok(),
        }
    }

    /// Gives up the records (the write failed): a job not started is dropped, one running
    /// elsewhere is waited for, so that no job outlives the write it belongs to.
    pub fn discard(self) {
        if let Pending::Elsewhere(rx) = self {
            let _ = rx.recv();
        }
    }
}

/// Runs the [`SigningJob`]s of local writes.
pub trait Signer: Send {
    /// Starts `job`; the engine folds the same records meanwhile, then waits for them.
    fn start(&self, job: SigningJob) -> Pending;
}

/// Builds the records on the engine's thread when it waits for them (the default; what the
/// simulator uses, so its runs stay on one thread).
#[derive(Clone, Copy, Debug, Default)]
pub struct Inline;

impl Signer for Inline {
    fn start(&self, job: SigningJob) -> Pending {
        Pending::Inline(Box::new(job))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Variant;
    use crate::rng::seeded;

    fn job(bodies: usize) -> SigningJob {
        let mut rng = seeded(7);
        let log_key = PrivateKey::generate(&mut rng);
        SigningJob {
            thread: ThreadId::random(Variant::Raw, &mut rng),
            author: log_key.public(),
            key: ThreadKey::random(&mut rng, true),
            log_key,
            prev: None,
            counter: LogCounter::new(1).expect("1 is a counter"),
            clock: LamportClock(1),
            time: 5,
            bodies: (0..bodies).map(|i| vec![i as u8; 10]).collect(),
            rng,
        }
    }

    #[test]
    fn a_job_chains_its_records_and_gives_the_same_bytes_on_any_thread() {
        let here = Inline.start(job(3)).wait().expect("inline").expect("built");
        let (tx, rx) = mpsc::channel();
        let worker = std::thread::spawn(move || tx.send(job(3).run()));
        let there = Pending::Elsewhere(rx)
            .wait()
            .expect("answered")
            .expect("built");
        worker.join().expect("joined").expect("sent");
        assert_eq!(here, there);
        assert_eq!(here[0].record().prev(), None);
        for pair in here.windows(2) {
            assert_eq!(pair[1].record().prev(), Some(pair[0].record().cid()));
            assert_eq!(
                pair[1].record().counter(),
                pair[0].record().counter().next()
            );
            assert_eq!(pair[1].record().clock(), pair[0].record().clock().tick());
        }
    }

    #[test]
    fn a_vanished_signer_is_reported_not_awaited_forever() {
        let (tx, rx) = mpsc::channel::<Result<Vec<OpenedRecord>, RecordError>>();
        drop(tx);
        assert!(Pending::Elsewhere(rx).wait().is_none());
    }
}
