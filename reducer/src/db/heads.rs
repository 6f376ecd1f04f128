//! The heads of the records the fold applied lately, kept for publishing their changes.
//!
//! Publishing a record's changes needs only its events' heads (kind, collection, ID). The fold
//! has just decoded the whole body to apply it; keeping the heads saves the publisher reading
//! the body back from the store, decrypting and decompressing it, and decoding it a second
//! time. Nothing here is ever read by [`Fold::apply`](crate::fold::Fold::apply): the fold's
//! outcomes do not depend on it.

use std::collections::VecDeque;

use threads_protocol::id::ThreadId;

use super::event::{Batch, DbEvent, EventHead};
use crate::fold::OrderKey;

/// Most records whose heads are kept: a commit of many records publishes them right after it
/// applied them, and the heads of a record dropped before that are decoded again from its body
/// by the publisher. Records the fold applies again (redone after a late record) and never
/// publishes are dropped in turn.
const KEPT_RECORDS: usize = 1024;

/// Most heads kept in all (a few megabytes).
const KEPT_HEADS: usize = 65_536;

/// Heads of the instance events of recently applied records, newest last.
#[derive(Debug, Default)]
pub(super) struct AppliedHeads {
    records: VecDeque<(ThreadId, OrderKey, Vec<EventHead>)>,
    /// Heads in `records`.
    heads: usize,
}

impl AppliedHeads {
    /// Keeps the heads of the instance events of `batch`, the body of the record at `order`.
    /// The same record applied again (redone, or retried after a failed commit) has the same
    /// body, so an older entry for it is as good as a newer one.
    pub(super) fn keep(&mut self, thread: &ThreadId, order: &OrderKey, batch: &Batch) {
        let heads: Vec<EventHead> = batch.events.iter().filter_map(instance_head).collect();
        while self.records.len() >= KEPT_RECORDS || self.heads + heads.len() > KEPT_HEADS {
            let Some((_, _, dropped)) = self.records.pop_front() else {
                break;
            };
            self.heads -= dropped.len();
        }
        self.heads += heads.len();
        self.records.push_back((*thread, *order, heads));
    }

    /// Takes the heads kept for the record at `order`, if they are still here.
    pub(super) fn take(&mut self, thread: &ThreadId, order: &OrderKey) -> Option<Vec<EventHead>> {
        let i = self
            .records
            .iter()
            .rposition(|(t, o, _)| t == thread && o == order)?;
        let (_, _, heads) = self.records.remove(i)?;
        self.heads -= heads.len();
        Some(heads)
    }
}

/// The head of an instance event (`None` for collection events, which publish nothing).
fn instance_head(event: &DbEvent) -> Option<EventHead> {
    let id = match event {
        DbEvent::Create { id, .. } | DbEvent::Save { id, .. } | DbEvent::Delete { id, .. } => id,
        _ => return None,
    };
    Some(EventHead {
        kind: event.kind().to_owned(),
        collection: Some(event.collection().to_owned()),
        id: Some(id.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use threads_protocol::id::Variant;
    use threads_protocol::rng::seeded;

    fn order(n: u64) -> OrderKey {
        OrderKey {
            clock: n,
            log: [0; threads_protocol::log_id::LogId::LEN],
            counter: 1,
        }
    }

    fn creates(n: usize) -> Batch {
        Batch::new(
            (0..n)
                .map(|i| DbEvent::Create {
                    collection: "c".into(),
                    id: format!("i{i}"),
                    instance: json!({"_id": format!("i{i}")}),
                })
                .chain([DbEvent::DeleteCollection { name: "d".into() }])
                .collect(),
        )
    }

    #[test]
    fn heads_are_taken_once_by_thread_and_order_and_old_ones_make_room() {
        let (a, b) = (
            ThreadId::random(Variant::Raw, &mut seeded(1)),
            ThreadId::random(Variant::Raw, &mut seeded(2)),
        );
        let mut kept = AppliedHeads::default();
        kept.keep(&a, &order(1), &creates(2));
        kept.keep(&b, &order(1), &creates(3));
        assert_eq!(kept.take(&a, &order(2)), None);
        let heads = kept.take(&b, &order(1)).expect("kept");
        // Instance events only, in order.
        assert_eq!(heads.len(), 3);
        assert_eq!(heads[2].kind, "create");
        assert_eq!(heads[2].collection.as_deref(), Some("c"));
        assert_eq!(heads[2].id.as_deref(), Some("i2"));
        assert_eq!(kept.take(&b, &order(1)), None, "taken once");
        assert_eq!(kept.take(&a, &order(1)).map(|h| h.len()), Some(2));
        assert_eq!(kept.heads, 0);
        // Past the bounds the oldest go first, by records and by heads.
        for n in 0..KEPT_RECORDS as u64 + 5 {
            kept.keep(&a, &order(n), &creates(1));
        }
        assert_eq!(kept.records.len(), KEPT_RECORDS);
        assert_eq!(kept.take(&a, &order(4)), None);
        assert!(kept.take(&a, &order(5)).is_some());
        kept.keep(&a, &order(1 << 40), &creates(KEPT_HEADS - 100));
        assert!(kept.heads <= KEPT_HEADS);
        assert!(kept.take(&a, &order(1 << 40)).is_some());
    }
}
