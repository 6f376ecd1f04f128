//! One record's events applied as they are read: on the fold's thread, or, for a large body,
//! while a second thread parses the rest of it (`spec/documents.md` §2).

use std::sync::mpsc;

use serde_json::value::RawValue;
use threads_protocol::engine::ApplyError;

use super::apply::{Cx, Fail, canonical_raw};
use super::event::{BatchError, DbEvent, decode_events};
use super::schema;

/// Bodies whose JSON is at least this long are parsed on the fold's parser thread while the
/// fold applies the events already read, so that parsing (a sixth of a large local insert)
/// takes none of the fold's time. Smaller bodies are parsed inline: handing events between
/// threads costs a few wake-ups per body, as much as parsing a small body takes.
pub const DECODE_BESIDE_FROM: usize = 32 * 1024;

/// Events the parser hands over at once.
const CHUNK: usize = 32;

/// Chunks the parser may be ahead of the fold.
const CHUNKS_AHEAD: usize = 4;

/// Why a record's events stopped being applied.
pub(super) enum Failure {
    /// An event broke a rule: the record is rejected with this reason, unless the body
    /// proves malformed (that verdict comes first, as if the body had been read whole first).
    Reject(String),
    /// The machine failed (store, script engine): no verdict; the engine aborts.
    Machine(ApplyError),
}

/// The events of one record applied so far, and how they went.
#[derive(Default)]
pub(super) struct Run {
    /// The events applied, in order.
    pub events: Vec<DbEvent>,
    /// What each instance event stored (see `Cx::stored`), in order.
    pub stored: Vec<Option<Box<RawValue>>>,
    /// Events read, applied or not.
    read: usize,
    /// The first failure; events read after it are dropped.
    pub failure: Option<Failure>,
}

impl Run {
    /// Applies the next event of the body (`json`: the canonical JSON of a create's instance,
    /// if the parser made it), unless an earlier one failed. Returns whether to go on
    /// reading: after a rejection the rest is still read, because a malformed body is
    /// rejected as such whatever its events do; after a machine failure nothing more is.
    pub fn feed(&mut self, cx: &mut Cx<'_>, event: DbEvent, json: Option<Box<RawValue>>) -> bool {
        let i = self.read;
        self.read += 1;
        if self.failure.is_some() {
            return true;
        }
        let collection_event = matches!(
            event,
            DbEvent::CreateCollection(_)
                | DbEvent::UpdateCollection(_)
                | DbEvent::DeleteCollection { .. }
        );
        if collection_event {
            cx.collection_event();
        }
        let result = match &event {
            DbEvent::CreateCollection(c) => cx.create_collection(c),
            DbEvent::UpdateCollection(c) => cx.update_collection(c),
            DbEvent::DeleteCollection { name } => cx.delete_collection(name),
            DbEvent::Create {
                collection,
                id,
                instance,
            } => cx.create(collection, id, instance, json),
            DbEvent::Save {
                collection,
                id,
                patch,
            } => cx.save(collection, id, patch),
            DbEvent::Delete { collection, id } => cx.delete(collection, id),
        };
        if collection_event {
            cx.collection_event();
        }
        match result {
            Ok(()) => {
                if !collection_event {
                    self.stored.push(cx.stored.take());
                }
                self.events.push(event);
                true
            }
            Err(Fail::Reject(reason)) => {
                self.failure = Some(Failure::Reject(format!(
                    "event {i} ({} on \"{}\"): {reason}",
                    event.kind(),
                    schema::clip(event.collection())
                )));
                true
            }
            Err(Fail::Store(e)) => {
                self.failure = Some(Failure::Machine(e.into()));
                false
            }
            Err(Fail::Script(e)) => {
                self.failure = Some(Failure::Machine(ApplyError::Component {
                    component: "javascript engine",
                    reason: e.to_string(),
                }));
                false
            }
        }
    }
}

/// A thread that parses large bodies for one fold, kept for the fold's life: started once, it
/// stays on its own core and keeps its allocator's memory warm (a thread per body would cost
/// its start and, until the scheduler moves it, a share of the fold's core).
#[derive(Debug)]
pub(super) struct Parser {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What the parser thread is asked to do.
enum Job {
    /// Parse one body and hand its events to `out`.
    Parse {
        json: Vec<u8>,
        out: mpsc::SyncSender<Parsed>,
    },
    /// Drop events the fold is done with: their documents were allocated on the parser's
    /// thread, where freeing them is cheapest, and the fold's thread has better things to do.
    Drop(Vec<DbEvent>),
}

/// What the parser hands over.
enum Parsed {
    /// The next events, in order, each create with its instance's canonical JSON.
    Events(Vec<(DbEvent, Option<Box<RawValue>>)>),
    /// The verdict of [`decode_events`]; nothing follows.
    Done(Result<bool, BatchError>),
}

impl Parser {
    /// Starts the thread; `None` if the system refuses one.
    pub fn start() -> Option<Parser> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("batch-parser".into())
            .spawn(move || {
                for job in queue {
                    let (json, out) = match job {
                        Job::Parse { json, out } => (json, out),
                        Job::Drop(events) => {
                            drop(events);
                            continue;
                        }
                    };
                    let mut chunk = Vec::with_capacity(CHUNK);
                    let result = decode_events(&json, &mut |event| {
                        // Serialized here too, off the fold's thread.
                        let json = match &event {
                            DbEvent::Create { instance, .. } => Some(canonical_raw(instance)),
                            _ => None,
                        };
                        chunk.push((event, json));
                        chunk.len() < CHUNK
                            || out
                                .send(Parsed::Events(std::mem::replace(
                                    &mut chunk,
                                    Vec::with_capacity(CHUNK),
                                )))
                                .is_ok()
                    });
                    if !chunk.is_empty() && matches!(result, Ok(true)) {
                        let _ = out.send(Parsed::Events(chunk));
                    }
                    let _ = out.send(Parsed::Done(result));
                }
            })
            .ok()?;
        Some(Parser {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Drops `events` on the parser's thread (here if it is gone).
    pub fn discard(&self, events: Vec<DbEvent>) {
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(Job::Drop(events));
        }
    }

    /// [`decode_events`] on the parser's thread, handing the events to `feed` on this one as
    /// they are read, each create with its instance's canonical JSON: the same result as
    /// `decode_events(&json, feed)`.
    pub fn decode(
        &mut self,
        json: Vec<u8>,
        mut feed: impl FnMut(DbEvent, Option<Box<RawValue>>) -> bool,
    ) -> Result<bool, BatchError> {
        let (out, parsed) = mpsc::sync_channel(CHUNKS_AHEAD);
        let job = Job::Parse { json, out };
        let sent = match &self.jobs {
            Some(jobs) => jobs.send(job),
            None => Err(mpsc::SendError(job)),
        };
        if let Err(mpsc::SendError(Job::Parse { json, .. })) = sent {
            // The thread is gone (it can only have panicked): read the body here.
            return decode_events(&json, &mut |event| feed(event, None));
        }
        for message in &parsed {
            match message {
                Parsed::Events(events) => {
                    for (event, json) in events {
                        if !feed(event, json) {
                            // The parser stops at its next hand-over.
                            return Ok(false);
                        }
                    }
                }
                Parsed::Done(result) => return result,
            }
        }
        // The channel closed without a verdict: the parser panicked on this body, as
        // `decode_events` would have here.
        self.jobs = None;
        panic!("the batch parser thread failed");
    }
}

impl Drop for Parser {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
