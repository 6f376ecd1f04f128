//! Change feeds for listeners: every change to an instance, local or replicated, gets a
//! position in one sequence; listeners read from their own position at their own pace.
//!
//! Writers never wait for listeners and no change is dropped silently: the feed keeps the last
//! `capacity` changes, and a listener that falls further behind gets an explicit
//! [`Lagged`] error saying from which position it can resume (or that it should re-read the
//! state and resume from the newest position).

use serde_json::value::RawValue;
use std::collections::{BTreeMap, VecDeque};
use threads_protocol::id::ThreadId;

/// What happened to an instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// It was created.
    Create,
    /// It was saved (changed, or created by an upsert).
    Save,
    /// It was deleted.
    Delete,
}

/// One change, as listeners see it.
#[derive(Clone, Debug)]
pub struct Change {
    /// Position in the feed, strictly increasing from 1.
    pub position: u64,
    /// The database (thread).
    pub db: ThreadId,
    /// The collection.
    pub collection: String,
    /// The instance id.
    pub instance_id: String,
    /// What happened.
    pub action: Action,
    /// The instance as the change left it (before any read filter), as its stored JSON text;
    /// `None` for deletes and for changes in a collection that no longer exists when the
    /// change is published. (The fold hands over the JSON it stored; for a record it no longer
    /// keeps, the instance is read from the store when the change is published.) Kept as
    /// text, not parsed: the feed holds thousands of changes most of which no listener reads,
    /// and a listener's reply carries the text anyway.
    pub instance: Option<Box<RawValue>>,
}

/// Changes are equal when every field is, the instances by their JSON text.
impl PartialEq for Change {
    fn eq(&self, other: &Self) -> bool {
        self.position == other.position
            && self.db == other.db
            && self.collection == other.collection
            && self.instance_id == other.instance_id
            && self.action == other.action
            && self.instance.as_ref().map(|t| t.get()) == other.instance.as_ref().map(|t| t.get())
    }
}

/// Which changes a listener wants. Empty fields are wildcards; a listener with several filters
/// gets a change if any filter matches; no filter at all means every change of its database.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only this collection.
    pub collection: Option<String>,
    /// Only this instance.
    pub instance_id: Option<String>,
    /// Only these actions (empty: all).
    pub actions: Vec<Action>,
}

impl Filter {
    /// Whether `change` passes this filter.
    pub fn matches(&self, change: &Change) -> bool {
        self.collection
            .as_ref()
            .is_none_or(|c| *c == change.collection)
            && self
                .instance_id
                .as_ref()
                .is_none_or(|i| *i == change.instance_id)
            && (self.actions.is_empty() || self.actions.contains(&change.action))
    }
}

/// A listener fell behind the feed's history: changes from its position on are gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "listener lagged: changes from position {wanted} are no longer kept; resume from position \
     {oldest} (after re-reading the state) or later"
)]
pub struct Lagged {
    /// The position the listener wanted next.
    pub wanted: u64,
    /// The oldest position still kept.
    pub oldest: u64,
}

/// Identifies a listener of a [`ChangeFeed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ListenerId(u64);

#[derive(Clone, Debug)]
struct Listener {
    db: ThreadId,
    filters: Vec<Filter>,
    next: u64,
}

/// The feed of changes of every database of a host, with bounded history.
#[derive(Debug)]
pub struct ChangeFeed {
    capacity: usize,
    history: VecDeque<Change>,
    next_position: u64,
    listeners: BTreeMap<ListenerId, Listener>,
    next_listener: u64,
}

impl ChangeFeed {
    /// A feed keeping the last `capacity` changes (at least 1).
    pub fn new(capacity: usize) -> Self {
        ChangeFeed {
            capacity: capacity.max(1),
            history: VecDeque::new(),
            next_position: 1,
            listeners: BTreeMap::new(),
            next_listener: 1,
        }
    }

    /// The position the next published change will get.
    pub fn next_position(&self) -> u64 {
        self.next_position
    }

    /// The oldest position still kept.
    pub fn oldest_position(&self) -> u64 {
        self.history
            .front()
            .map_or(self.next_position, |c| c.position)
    }

    /// Publishes a change; assigns and returns its position.
    pub fn publish(&mut self, mut change: Change) -> u64 {
        let position = self.next_position;
        change.position = position;
        self.next_position += 1;
        if self.history.len() == self.capacity {
            self.history.pop_front();
        }
        self.history.push_back(change);
        position
    }

    /// Adds a listener on database `db`, reading from position `from` (the next change when
    /// `None`).
    pub fn listen(&mut self, db: ThreadId, filters: Vec<Filter>, from: Option<u64>) -> ListenerId {
        let id = ListenerId(self.next_listener);
        self.next_listener += 1;
        self.listeners.insert(
            id,
            Listener {
                db,
                filters,
                next: from.unwrap_or(self.next_position),
            },
        );
        id
    }

    /// Removes a listener.
    pub fn close(&mut self, id: ListenerId) {
        self.listeners.remove(&id);
    }

    /// The next change for a listener, if any; `Err(Lagged)` if it fell behind the history (it
    /// then stays lagged until [`ChangeFeed::resume`]). Unknown listeners get `Ok(None)`.
    pub fn next(&mut self, id: ListenerId) -> Result<Option<Change>, Lagged> {
        let oldest = self.oldest_position();
        let Some(l) = self.listeners.get_mut(&id) else {
            return Ok(None);
        };
        if l.next < oldest {
            return Err(Lagged {
                wanted: l.next,
                oldest,
            });
        }
        let start = (l.next - oldest) as usize;
        for change in self.history.iter().skip(start) {
            l.next = change.position + 1;
            let wanted = change.db == l.db
                && (l.filters.is_empty() || l.filters.iter().any(|f| f.matches(change)));
            if wanted {
                return Ok(Some(change.clone()));
            }
        }
        Ok(None)
    }

    /// Moves a listener to position `from` (e.g. after [`Lagged`], to the oldest kept position
    /// or to the newest after re-reading the state).
    pub fn resume(&mut self, id: ListenerId, from: u64) {
        if let Some(l) = self.listeners.get_mut(&id) {
            l.next = from;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use threads_protocol::id::Variant;
    use threads_protocol::rng::seeded;

    fn change(db: ThreadId, coll: &str, id: &str, action: Action) -> Change {
        Change {
            position: 0,
            db,
            collection: coll.into(),
            instance_id: id.into(),
            action,
            instance: None,
        }
    }

    #[test]
    fn listeners_see_matching_changes_in_order() {
        let db = ThreadId::random(Variant::Raw, &mut seeded(1));
        let other = ThreadId::random(Variant::Raw, &mut seeded(2));
        let mut feed = ChangeFeed::new(100);
        let all = feed.listen(db, vec![], None);
        let saves = feed.listen(
            db,
            vec![Filter {
                collection: Some("people".into()),
                actions: vec![Action::Save],
                ..Filter::default()
            }],
            None,
        );
        feed.publish(change(db, "people", "a", Action::Create));
        feed.publish(change(other, "people", "a", Action::Save));
        feed.publish(change(db, "people", "a", Action::Save));
        feed.publish(change(db, "pets", "b", Action::Save));
        let mut seen = vec![];
        while let Some(c) = feed.next(all).unwrap() {
            seen.push(c.position);
        }
        assert_eq!(seen, vec![1, 3, 4]);
        assert_eq!(feed.next(saves).unwrap().map(|c| c.position), Some(3));
        assert_eq!(feed.next(saves).unwrap(), None);
    }

    #[test]
    fn a_slow_listener_gets_an_explicit_lag_and_can_resume() {
        let db = ThreadId::random(Variant::Raw, &mut seeded(1));
        let mut feed = ChangeFeed::new(3);
        let l = feed.listen(db, vec![], None);
        for i in 0..5 {
            feed.publish(change(db, "c", &i.to_string(), Action::Create));
        }
        let lag = feed.next(l).unwrap_err();
        assert_eq!(
            lag,
            Lagged {
                wanted: 1,
                oldest: 3
            }
        );
        // It stays lagged until it says where to resume.
        assert!(feed.next(l).is_err());
        feed.resume(l, lag.oldest);
        let got: Vec<u64> =
            std::iter::from_fn(|| feed.next(l).unwrap().map(|c| c.position)).collect();
        assert_eq!(got, vec![3, 4, 5]);
    }

    #[test]
    fn a_listener_can_start_from_a_past_position() {
        let db = ThreadId::random(Variant::Raw, &mut seeded(1));
        let mut feed = ChangeFeed::new(10);
        for i in 0..4 {
            feed.publish(change(db, "c", &i.to_string(), Action::Create));
        }
        let l = feed.listen(db, vec![], Some(2));
        assert_eq!(
            feed.next(l).unwrap().map(|c| c.instance_id),
            Some("1".into())
        );
    }
}
