//! The verification stage between the swarm and the engine thread: sync messages are decoded,
//! their membership proofs checked and their records verified on tokio's blocking pool, several
//! at a time, and handed to the engine already checked ([`Inbound::Checked`]), in the order
//! they arrived. The engine thread then only stores records, so catch-up uses every core.
//!
//! The verifiers (keys cloned from the engine) are kept by the engine thread in a shared map
//! ([`Verifiers`]); a message about a thread the map lacks goes to the engine unchecked and is
//! verified there, as before. Nothing unverified can be stored either way: the engine accepts
//! only records `record::verify` made, and re-checks that a checked message is bound to the
//! keys it holds.

use crate::net::NetInput;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use threads_protocol::engine::{Inbound, RecordVerifier};
use threads_protocol::id::ThreadId;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The verifiers of the threads the engine holds, shared with the stage's workers.
pub(crate) type Verifiers = Arc<RwLock<HashMap<ThreadId, RecordVerifier>>>;

/// An input waiting for its turn: ready now, or a message being checked.
enum Pending {
    Ready(NetInput),
    Checking(JoinHandle<NetInput>),
}

/// How many messages are checked at once: two per core, so a core never waits for the next.
pub(crate) fn depth() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) * 2
}

/// Runs the stage until the swarm's side closes, then hands on what is left.
pub(crate) async fn run(
    mut input: mpsc::Receiver<NetInput>,
    output: mpsc::Sender<NetInput>,
    verifiers: Verifiers,
    max_message_len: usize,
    depth: usize,
) {
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let mut open = true;
    loop {
        // Hand on everything at the front that is ready, in order.
        while let Some(Pending::Ready(_)) = pending.front() {
            if let Some(Pending::Ready(item)) = pending.pop_front()
                && output.send(item).await.is_err()
            {
                return;
            }
        }
        let can_take = open && pending.len() < depth.max(1);
        let step = match pending.front_mut() {
            None if !open => return,
            None => Step::New(input.recv().await),
            Some(Pending::Checking(job)) => tokio::select! {
                done = job => Step::Done(done),
                item = input.recv(), if can_take => Step::New(item),
            },
            // Ready items were handed on above.
            Some(Pending::Ready(_)) => continue,
        };
        match step {
            Step::New(None) => open = false,
            Step::New(Some(item)) => pending.push_back(start(item, &verifiers, max_message_len)),
            Step::Done(result) => {
                pending.pop_front();
                match result {
                    Ok(item) => pending.push_front(Pending::Ready(item)),
                    // A check that panicked (it never should: input from outside never
                    // panics) loses only that message; sync fetches its records again.
                    Err(e) => tracing::warn!(error = %e, "checking a sync message failed"),
                }
            }
        }
    }
}

enum Step {
    New(Option<NetInput>),
    Done(Result<NetInput, tokio::task::JoinError>),
}

/// Starts checking a message on the blocking pool; other inputs wait their turn unchanged.
fn start(item: NetInput, verifiers: &Verifiers, max_message_len: usize) -> Pending {
    match item {
        NetInput::Message { from, bytes } => {
            let verifiers = verifiers.clone();
            Pending::Checking(tokio::task::spawn_blocking(move || {
                let inbound = match verifiers.read() {
                    Ok(map) => Inbound::check(from, bytes, max_message_len, |t| map.get(t)),
                    // A poisoned map: let the engine check the message itself.
                    Err(_) => Inbound::Raw { from, bytes },
                };
                NetInput::Checked(Box::new(inbound))
            }))
        }
        other => Pending::Ready(other),
    }
}
