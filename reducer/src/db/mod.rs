//! The document database: collections of JSON instances with schemas, secondary indexes, write
//! validators and read filters, built as a deterministic [`Fold`] over a thread's records.
//!
//! * A record body is one write transaction: a JSON [`Batch`] of [`DbEvent`]s.
//! * [`DocFold`] applies a batch event by event; the first event that breaks a rule rejects the
//!   whole record (the fold layer rolls its writes back), the same way on every replica. Because
//!   records are folded in one total order ([`crate::fold`]), concurrent writes are resolved by
//!   that order: the earlier create of an `_id` wins, a later unique clash is rejected, a save
//!   after a delete re-creates the instance.
//! * Collection definitions live in the folded state, so peers that join a thread get them by
//!   replication.
//! * [`read`] answers `get`, `has`, `find` and collection look-ups from the folded state,
//!   through the collection's indexes and read filter.
//!
//! The event format, the rules and their messages, and the state layout are specified in
//! `spec/documents.md`.

mod apply;
pub mod body;
mod candidates;
mod collection;
mod configs;
pub mod event;
mod heads;
mod index;
mod instance;
pub mod keys;
pub mod lookup;
pub mod merge;
pub mod read;
mod run;
pub mod schema;
mod scripts;

pub use collection::{BAD_NAME, MAX_INDEX_PATH_LEN, MAX_NAME_LEN, check_name};
pub use event::{Batch, BatchError, CollectionConfig, DbEvent, IndexSpec};
pub use read::{DbError, JsonRow, Row};
pub use run::DECODE_BESIDE_FROM;
pub use scripts::Scripts;

use std::collections::BTreeMap;
use std::ops::Bound;

use threads_protocol::engine::ApplyError;
use threads_protocol::id::ThreadId;
use threads_protocol::store::{KeyRange, StoreError, WriteTxn};

use crate::fold::{Access, Dependency, Fold, OrderKey, Outcome, RecordInfo, Usage};
use crate::js::JsConfig;
use apply::Cx;
use configs::ConfigCache;
pub(crate) use heads::AppliedEvent;
use heads::AppliedHeads;
use keys::{Keys, Part};
use run::{Failure, Parser, Run};
use schema::SchemaCache;

/// The document database as a [`Fold`]: wrap it in [`crate::fold::Convergent`].
///
/// It keeps caches only (parsed configs, compiled schemas, the JavaScript engine and compiled
/// validators), for publishing the event heads of the records it applied lately, and, once a
/// large body came, a thread that parses large bodies while the fold applies their first
/// events (`spec/documents.md` §2); none of these can change an outcome. Not `Send`, because
/// the JavaScript engine is not.
#[derive(Debug)]
pub struct DocFold {
    schemas: SchemaCache,
    configs: ConfigCache,
    scripts: Scripts,
    applied: AppliedHeads,
    /// Bodies whose JSON is at least this long are parsed beside the fold (see
    /// [`DocFold::set_decode_beside_from`]).
    decode_beside_from: usize,
    /// The thread that does it, once a body needed it.
    parser: Option<Parser>,
}

impl Default for DocFold {
    fn default() -> Self {
        Self::with_js_config(JsConfig::default())
    }
}

impl DocFold {
    /// A fold whose validators run with the default JavaScript limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// A fold whose validators run with the given JavaScript limits. Every replica of a thread
    /// must use the same limits, or they may disagree on which records a validator rejects.
    pub fn with_js_config(config: JsConfig) -> Self {
        DocFold {
            schemas: SchemaCache::default(),
            configs: ConfigCache::default(),
            scripts: Scripts::with_config(config),
            applied: AppliedHeads::default(),
            decode_beside_from: DECODE_BESIDE_FROM,
            parser: None,
        }
    }

    /// Sets the JSON length from which a record body is parsed on a second thread while its
    /// first events are applied ([`DECODE_BESIDE_FROM`] by default; `usize::MAX`: never). The
    /// outcome is the same either way; only the time differs.
    pub fn set_decode_beside_from(&mut self, bytes: usize) {
        self.decode_beside_from = bytes;
    }

    /// The read filter (empty when there is none) of collection `name`, whose config is
    /// stored as `bytes` ([`read::collection_config_bytes`]). The parsed config is reused from
    /// the fold's cache when it was parsed from the same bytes.
    pub fn read_filter(&mut self, name: &str, bytes: Vec<u8>) -> Result<String, StoreError> {
        Ok(self.configs.get(name, bytes)?.config.read_filter.clone())
    }

    /// The fold's JavaScript engine (also usable to run read filters on the same thread).
    pub fn scripts(&mut self) -> &mut Scripts {
        &mut self.scripts
    }

    /// The instance events of the record at `order` of `thread`, with what each stored, taken
    /// from what this fold kept when it last applied the record (`None` when it did not, or
    /// no longer keeps them): publishing its changes then needs no second decoding of its
    /// body and no look-up of its instances.
    pub(crate) fn take_applied_heads(
        &mut self,
        thread: &ThreadId,
        order: &OrderKey,
    ) -> Option<Vec<AppliedEvent>> {
        self.applied.take(thread, order)
    }
}

/// The dependency rule of the document state (see `spec/convergence.md`): collection config
/// keys, instance keys and index entry keys are their own tokens; an index entry also marks
/// its index value, which unique look-ups read; a scan of a whole collection (instances, index
/// entries, one index) writes the collection's config token, which every event on the
/// collection reads; anything else is the whole thread.
fn doc_dependencies(keys: &Keys, access: Access<'_>, out: &mut Vec<Dependency>) {
    match access {
        Access::Get(k) | Access::Write(k) => {
            let write = matches!(access, Access::Write(_));
            let usage = if write { Usage::Write } else { Usage::Read };
            match keys.part(k, true) {
                Part::Collection(_) | Part::Instance => out.push(Dependency {
                    token: k.to_vec(),
                    usage,
                }),
                Part::Entry(value_end) => {
                    out.push(Dependency {
                        token: k.to_vec(),
                        usage,
                    });
                    if write {
                        out.push(Dependency::mark(k[..value_end].to_vec()));
                    }
                }
                Part::Value | Part::Other => out.push(Dependency::everything()),
            }
        }
        Access::Scan(range) => {
            let prefix = match range.start() {
                Bound::Included(s) if KeyRange::prefix(s).end() == range.end() => Some(s),
                _ => None,
            };
            match prefix.map(|p| (p, keys.part(p, false))) {
                Some((_, Part::Collection(config))) => out.push(Dependency::write(config)),
                Some((p, Part::Value)) => out.push(Dependency::read(p.to_vec())),
                _ => out.push(Dependency::everything()),
            }
        }
    }
}

impl Fold for DocFold {
    fn dependencies(&self, thread: &ThreadId, access: Access<'_>, out: &mut Vec<Dependency>) {
        doc_dependencies(&Keys::new(thread), access, out);
    }

    fn apply(
        &mut self,
        state: &mut dyn WriteTxn,
        record: &RecordInfo,
        body: &[u8],
    ) -> Result<Outcome, ApplyError> {
        if body.len() > event::MAX_BATCH_LEN {
            let len = body.len();
            return Ok(Outcome::Rejected(BatchError::TooLarge { len }.to_string()));
        }
        let json = match body::open(body) {
            Ok(json) => json,
            Err(e) => return Ok(Outcome::Rejected(e.to_string())),
        };
        let mut cx = Cx {
            txn: state,
            keys: Keys::new(&record.thread),
            record,
            writer: std::cell::OnceCell::new(),
            schemas: &mut self.schemas,
            configs: &mut self.configs,
            scripts: &mut self.scripts,
            created: Vec::new(),
            seen: BTreeMap::new(),
            stored: None,
        };
        let mut run = Run::default();
        let mut feed = |event, json| run.feed(&mut cx, event, json);
        let beside = json.len() >= self.decode_beside_from;
        if beside && self.parser.is_none() {
            self.parser = Parser::start();
        }
        let read = match &mut self.parser {
            Some(parser) if beside => parser.decode(json.into_owned(), feed),
            _ => event::decode_events(&json, &mut |event| feed(event, None)),
        };
        match (read, run.failure) {
            (_, Some(Failure::Machine(e))) => Err(e),
            (Err(e), _) => Ok(Outcome::Rejected(e.to_string())),
            (Ok(_), Some(Failure::Reject(reason))) => Ok(Outcome::Rejected(reason)),
            // The reader stops early only on a machine failure.
            (Ok(false), None) => Err(ApplyError::Component {
                component: "batch reader",
                reason: "stopped before the end of the body".into(),
            }),
            (Ok(true), None) => {
                let mut events = run.events;
                self.applied
                    .keep(&record.thread, &record.order, &mut events, run.stored);
                // A large body's events are freed on the parser's thread, which allocated
                // them; a small one's here: handing them over costs more than freeing them.
                match &self.parser {
                    Some(parser) if beside => parser.discard(events),
                    _ => drop(events),
                }
                Ok(Outcome::Applied)
            }
        }
    }
}
