//! The engine's signer: builds and signs the records of local writes on a thread of its own,
//! so that on a machine with a spare core the signatures are made while the engine thread
//! folds the same writes (see `threads_protocol::engine::signing`).

use std::sync::mpsc;
use threads_protocol::engine::signing::{Pending, Signer, SigningJob};
use threads_protocol::record::{OpenedRecord, RecordError};

/// A job and where its records go.
type Job = (
    SigningJob,
    mpsc::SyncSender<Result<Vec<OpenedRecord>, RecordError>>,
);

/// Runs signing jobs on the `threads-signer` thread, one at a time, in the order given. The
/// thread ends when the signer is dropped (with the engine's host).
pub(crate) struct ThreadSigner {
    jobs: mpsc::Sender<Job>,
}

impl ThreadSigner {
    /// Starts the thread; `None` when the machine has a single core (nothing to overlap with)
    /// or the thread cannot be started (the engine then signs on its own thread).
    pub(crate) fn start() -> Option<Self> {
        if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
            return None;
        }
        let (jobs, rx) = mpsc::channel::<Job>();
        let started = std::thread::Builder::new()
            .name("threads-signer".into())
            .spawn(move || {
                for (job, answer) in rx {
                    // The engine waits for every job it starts; a send fails only when it
                    // stopped meanwhile.
                    let _ = answer.send(job.run());
                }
            });
        match started {
            Ok(_) => Some(ThreadSigner { jobs }),
            Err(e) => {
                tracing::warn!(error = %e, "no signer thread; signing on the engine thread");
                None
            }
        }
    }
}

impl Signer for ThreadSigner {
    fn start(&self, job: SigningJob) -> Pending {
        let (tx, rx) = mpsc::sync_channel(1);
        match self.jobs.send((job, tx)) {
            Ok(()) => Pending::Elsewhere(rx),
            // The thread is gone: the engine builds the records itself.
            Err(mpsc::SendError((job, _))) => Pending::Inline(Box::new(job)),
        }
    }
}
