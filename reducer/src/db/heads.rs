//! The instance events of the records the fold applied lately, kept for publishing their
//! changes.
//!
//! Publishing a record's changes needs its instance events' heads (kind, collection, ID) and
//! what each left stored. The fold has just decoded the whole body to apply it and serialized
//! every instance it stored; keeping both saves the publisher reading the body back from the
//! store, decrypting, decompressing and decoding it a second time, and looking every instance
//! up again. Nothing here is ever read by [`Fold::apply`](crate::fold::Fold::apply): the fold's
//! outcomes do not depend on it.

use std::collections::VecDeque;

use serde_json::value::RawValue;
use threads_protocol::id::ThreadId;

use super::event::{DbEvent, EventHead};
use crate::fold::OrderKey;

/// Most records kept: a commit of many records publishes them right after it applied them,
/// and a record dropped before that is decoded again from its body, and its instances read
/// from the store, by the publisher. Records the fold applies again (redone after a late
/// record) and never publishes are dropped in turn.
const KEPT_RECORDS: usize = 1024;

/// Most events kept in all.
const KEPT_HEADS: usize = 65_536;

/// Most bytes of stored JSON kept in all; a record holding more on its own is not kept.
const KEPT_BYTES: usize = 32 << 20;

/// An instance event the fold applied: its head, and what it left under the instance's key
/// (the JSON the fold stored, `None` after a delete).
#[derive(Clone, Debug)]
pub struct AppliedEvent {
    /// Kind, collection and instance ID.
    pub head: EventHead,
    /// The instance as the event left it, as stored.
    pub stored: Option<Box<RawValue>>,
}

impl PartialEq for AppliedEvent {
    fn eq(&self, other: &Self) -> bool {
        fn json(e: &AppliedEvent) -> Option<&str> {
            e.stored.as_deref().map(RawValue::get)
        }
        self.head == other.head && json(self) == json(other)
    }
}

impl Eq for AppliedEvent {}

/// The instance events of recently applied records, newest last.
#[derive(Debug, Default)]
pub(super) struct AppliedHeads {
    records: VecDeque<(ThreadId, OrderKey, Vec<AppliedEvent>)>,
    /// Events in `records`.
    heads: usize,
    /// Bytes of stored JSON in `records`.
    bytes: usize,
}

/// The bytes of stored JSON `events` hold.
fn json_bytes(events: &[AppliedEvent]) -> usize {
    events
        .iter()
        .map(|e| e.stored.as_ref().map_or(0, |s| s.get().len()))
        .sum()
}

impl AppliedHeads {
    /// Keeps the heads of the instance events of `events`, the body of the record at `order`,
    /// with what each stored (`stored`: one entry per instance event, in order). The heads take
    /// the events' collection names and IDs, leaving empty strings; the caller drops the rest.
    /// The same record applied again (redone, or retried after a failed commit) stores the
    /// same, so an older entry for it is as good as a newer one.
    pub(super) fn keep(
        &mut self,
        thread: &ThreadId,
        order: &OrderKey,
        events: &mut [DbEvent],
        stored: Vec<Option<Box<RawValue>>>,
    ) {
        let heads: Vec<EventHead> = events.iter_mut().filter_map(instance_head).collect();
        if heads.len() != stored.len() {
            return; // not what the fold produced: the publisher reads the record instead
        }
        let events: Vec<AppliedEvent> = heads
            .into_iter()
            .zip(stored)
            .map(|(head, stored)| AppliedEvent { head, stored })
            .collect();
        let bytes = json_bytes(&events);
        if bytes > KEPT_BYTES {
            return;
        }
        while self.records.len() >= KEPT_RECORDS
            || self.heads + events.len() > KEPT_HEADS
            || self.bytes + bytes > KEPT_BYTES
        {
            let Some((_, _, dropped)) = self.records.pop_front() else {
                break;
            };
            self.heads -= dropped.len();
            self.bytes -= json_bytes(&dropped);
        }
        self.heads += events.len();
        self.bytes += bytes;
        self.records.push_back((*thread, *order, events));
    }

    /// Takes the events kept for the record at `order`, if they are still here.
    pub(super) fn take(
        &mut self,
        thread: &ThreadId,
        order: &OrderKey,
    ) -> Option<Vec<AppliedEvent>> {
        let i = self
            .records
            .iter()
            .rposition(|(t, o, _)| t == thread && o == order)?;
        let (_, _, events) = self.records.remove(i)?;
        self.heads -= events.len();
        self.bytes -= json_bytes(&events);
        Some(events)
    }
}

/// The head of an instance event (`None` for collection events, which publish nothing); it
/// takes the event's own collection name and ID rather than copies.
fn instance_head(event: &mut DbEvent) -> Option<EventHead> {
    let kind = event.kind().to_owned();
    let (collection, id) = match event {
        DbEvent::Create { collection, id, .. }
        | DbEvent::Save { collection, id, .. }
        | DbEvent::Delete { collection, id } => (collection, id),
        _ => return None,
    };
    Some(EventHead {
        kind,
        collection: Some(std::mem::take(collection)),
        id: Some(std::mem::take(id)),
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

    /// What the fold stores for `creates(n)`: one JSON text per instance event.
    fn stored(n: usize) -> Vec<Option<Box<RawValue>>> {
        (0..n)
            .map(|i| RawValue::from_string(format!(r#"{{"_id":"i{i}"}}"#)).ok())
            .collect()
    }

    fn creates(n: usize) -> Vec<DbEvent> {
        (0..n)
            .map(|i| DbEvent::Create {
                collection: "c".into(),
                id: format!("i{i}"),
                instance: json!({"_id": format!("i{i}")}),
            })
            .chain([DbEvent::DeleteCollection { name: "d".into() }])
            .collect()
    }

    #[test]
    fn heads_are_taken_once_by_thread_and_order_and_old_ones_make_room() {
        let (a, b) = (
            ThreadId::random(Variant::Raw, &mut seeded(1)),
            ThreadId::random(Variant::Raw, &mut seeded(2)),
        );
        let mut kept = AppliedHeads::default();
        kept.keep(&a, &order(1), &mut creates(2), stored(2));
        kept.keep(&b, &order(1), &mut creates(3), stored(3));
        assert_eq!(kept.take(&a, &order(2)), None);
        let heads = kept.take(&b, &order(1)).expect("kept");
        // Instance events only, in order.
        assert_eq!(heads.len(), 3);
        assert_eq!(heads[2].head.kind, "create");
        assert_eq!(heads[2].head.collection.as_deref(), Some("c"));
        assert_eq!(heads[2].head.id.as_deref(), Some("i2"));
        assert_eq!(
            heads[2].stored.as_ref().map(|s| s.get()),
            Some(r#"{"_id":"i2"}"#)
        );
        assert_eq!(kept.take(&b, &order(1)), None, "taken once");
        assert_eq!(kept.take(&a, &order(1)).map(|h| h.len()), Some(2));
        assert_eq!((kept.heads, kept.bytes), (0, 0));
        // Past the bounds the oldest go first, by records and by heads.
        for n in 0..KEPT_RECORDS as u64 + 5 {
            kept.keep(&a, &order(n), &mut creates(1), stored(1));
        }
        assert_eq!(kept.records.len(), KEPT_RECORDS);
        assert_eq!(kept.take(&a, &order(4)), None);
        assert!(kept.take(&a, &order(5)).is_some());
        kept.keep(
            &a,
            &order(1 << 40),
            &mut creates(KEPT_HEADS - 100),
            stored(KEPT_HEADS - 100),
        );
        assert!(kept.heads <= KEPT_HEADS);
        assert!(kept.take(&a, &order(1 << 40)).is_some());
        // And by bytes: a record over the bound on its own is not kept, and a large one
        // drops older ones until it fits.
        // A JSON string of `len` bytes.
        let big =
            |len: usize| vec![RawValue::from_string(format!("\"{}\"", "a".repeat(len - 2))).ok()];
        kept.keep(&a, &order(7), &mut creates(1), big(KEPT_BYTES + 1));
        assert_eq!(kept.take(&a, &order(7)), None);
        kept.keep(&a, &order(8), &mut creates(1), big(KEPT_BYTES / 2));
        kept.keep(&a, &order(9), &mut creates(1), big(KEPT_BYTES / 2 + 1));
        assert!(kept.bytes <= KEPT_BYTES);
        assert_eq!(kept.take(&a, &order(8)), None);
        assert!(kept.take(&a, &order(9)).is_some());
        // Events and what they stored must pair up, or nothing is kept.
        kept.keep(&a, &order(10), &mut creates(2), stored(1));
        assert_eq!(kept.take(&a, &order(10)), None);
    }
}
