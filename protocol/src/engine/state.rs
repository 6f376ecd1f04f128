//! The engine's picture of its threads and logs: rows as stored, and the in-memory cache the
//! engine rebuilds from them when it opens.

use super::PeerId;
use super::exchange::Exchanges;
use super::layout;
use super::message::ProofKey;
use crate::counter::{LamportClock, LogHeight};
use crate::id::ThreadId;
use crate::identity::PrivateKey;
use crate::key::ThreadKey;
use crate::log_id::LogId;
use crate::record::wire;
use crate::store::{ReadTxn, StoreError, scan_prefix_collect};
use cid::Cid;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// A thread as stored: `{"c": clock, "i": [invited peer ids], "k": key bytes, "p": [peer ids]}`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ThreadRow {
    /// Highest Lamport clock of any record stored in the thread.
    #[serde(rename = "c")]
    pub clock: u64,
    /// Peers invited to replicate the thread that have not answered yet.
    #[serde(rename = "i")]
    pub invited: Vec<serde_bytes::ByteBuf>,
    /// Thread key bytes (32: service only, 64: service and read).
    #[serde(rename = "k", with = "serde_bytes")]
    pub key: Vec<u8>,
    /// Hosts known to hold the thread.
    #[serde(rename = "p")]
    pub peers: Vec<serde_bytes::ByteBuf>,
}

/// A log as stored: `{"c": head cid|null, "h": height, "l": head clock, "s": private key|null}`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LogRow {
    /// CID of the head record.
    #[serde(rename = "c")]
    pub head: Option<Cid>,
    /// Counter of the head record, 0 for an empty log.
    #[serde(rename = "h")]
    pub height: u64,
    /// Lamport clock of the head record.
    #[serde(rename = "l")]
    pub head_clock: u64,
    /// The log's private key (libp2p protobuf) when this host writes to it.
    #[serde(rename = "s", with = "serde_bytes")]
    pub secret: Option<Vec<u8>>,
}

/// One log as the engine keeps it in memory.
#[derive(Clone, Debug)]
pub struct LogState {
    /// Present when this host owns (writes) the log.
    pub key: Option<PrivateKey>,
    /// Counter of the head.
    pub height: LogHeight,
    /// CID of the head.
    pub head: Option<Cid>,
    /// Lamport clock of the head.
    pub head_clock: LamportClock,
}

impl LogState {
    /// An empty log.
    pub fn empty(key: Option<PrivateKey>) -> Self {
        LogState {
            key,
            height: LogHeight(0),
            head: None,
            head_clock: LamportClock(0),
        }
    }

    /// The row this state is stored as.
    pub fn row(&self) -> LogRow {
        LogRow {
            head: self.head,
            height: self.height.0,
            head_clock: self.head_clock.0,
            secret: self.key.as_ref().map(|k| k.to_protobuf()),
        }
    }
}

/// When a thread next sends digests, and how far its quiet back-off has grown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncTimer {
    /// Next expiry, in engine milliseconds.
    pub deadline: u64,
    /// Current interval before jitter.
    pub interval: u64,
}

/// One thread as the engine keeps it in memory.
#[derive(Clone, Debug)]
pub struct ThreadState {
    /// Its key (service key, and read key when this host can read).
    pub key: ThreadKey,
    /// The service key made ready for membership proofs (see [`ProofKey`]).
    pub proof: ProofKey,
    /// Its logs, by id.
    pub logs: Logs,
    /// Which log each identity writes to (only owned logs).
    pub identities: BTreeMap<[u8; 36], LogId>,
    /// Hosts that hold the thread.
    pub peers: BTreeSet<PeerId>,
    /// Peers invited to replicate the thread that have not answered yet; the invitation is
    /// repeated every sync round until they do.
    pub invited: BTreeSet<PeerId>,
    /// Highest Lamport clock seen in the thread.
    pub clock: LamportClock,
    /// Anti-entropy timer.
    pub sync: SyncTimer,
    /// The highest height of each log that a peer reported (memory only): what this host
    /// knows exists, to tell how far behind it is.
    pub peer_heights: BTreeMap<LogId, u64>,
    /// What was last exchanged with each peer, to leave out anti-entropy messages that
    /// would tell it nothing new (memory only).
    pub exchanges: Exchanges,
}

impl ThreadState {
    /// Records that peers reported and this host does not hold yet (its sync lag).
    pub fn lag(&self) -> u64 {
        self.peer_heights
            .iter()
            .map(|(log, h)| h.saturating_sub(self.logs.get(log).map_or(0, |s| s.height.0)))
            .sum()
    }

    /// The row this thread is stored as.
    pub fn row(&self) -> ThreadRow {
        ThreadRow {
            clock: self.clock.0,
            invited: self
                .invited
                .iter()
                .map(|p| serde_bytes::ByteBuf::from(p.as_bytes().to_vec()))
                .collect(),
            key: self.key.to_bytes(),
            peers: self
                .peers
                .iter()
                .map(|p| serde_bytes::ByteBuf::from(p.as_bytes().to_vec()))
                .collect(),
        }
    }

    /// The anti-entropy digest: sha2-256 over `log ‖ u64be(height) ‖ head cid` of every
    /// non-empty log in log-id byte order.
    pub fn digest(&self) -> [u8; 32] {
        self.logs.digest()
    }
}

/// The logs of a thread, by id (read through `Deref`), and their anti-entropy digest, made
/// when first asked for and forgotten when a log changes. Peers ask for the digest far more
/// often than logs move (every digest round sends it, every digest received is compared with
/// it), so it is not hashed again for each.
#[derive(Clone, Debug, Default)]
pub struct Logs {
    map: BTreeMap<LogId, LogState>,
    digest: std::cell::OnceCell<[u8; 32]>,
    version: LogsVersion,
}

/// Names one state of a thread's logs: every change gives them a version no other change in
/// the process has had (0 is "empty, never changed"). Equal versions of one thread mean its
/// logs have not changed in between, which lets a simulator skip a check that depends only on
/// them without comparing every log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogsVersion(u64);

impl LogsVersion {
    /// A version from its number (tests only: real versions come from changes).
    #[cfg(test)]
    pub(crate) fn from_raw(n: u64) -> LogsVersion {
        LogsVersion(n)
    }

    fn next() -> LogsVersion {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        LogsVersion(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }
}

impl Logs {
    /// Sets the state of a log (the only way to change one), returning the state it replaces.
    pub fn insert(&mut self, log: LogId, state: LogState) -> Option<LogState> {
        self.changed();
        self.map.insert(log, state)
    }

    /// The state of a log for changing it in place, made by `empty` when the log is new.
    pub fn get_or_insert_mut(
        &mut self,
        log: LogId,
        empty: impl FnOnce() -> LogState,
    ) -> &mut LogState {
        self.changed();
        self.map.entry(log).or_insert_with(empty)
    }

    /// The version of the logs' current state.
    pub fn version(&self) -> LogsVersion {
        self.version
    }

    fn changed(&mut self) {
        self.digest.take();
        self.version = LogsVersion::next();
    }

    /// See [`ThreadState::digest`].
    fn digest(&self) -> [u8; 32] {
        *self.digest.get_or_init(|| {
            let mut h = Sha256::new();
            for (id, log) in &self.map {
                if let Some(head) = log.head {
                    h.update(id.as_bytes());
                    h.update(log.height.0.to_be_bytes());
                    h.update(head.to_bytes());
                }
            }
            h.finalize().into()
        })
    }
}

impl<'a> IntoIterator for &'a Logs {
    type Item = (&'a LogId, &'a LogState);
    type IntoIter = std::collections::btree_map::Iter<'a, LogId, LogState>;

    fn into_iter(self) -> Self::IntoIter {
        self.map.iter()
    }
}

impl std::ops::Deref for Logs {
    type Target = BTreeMap<LogId, LogState>;

    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

/// Loads every thread and log row from the store.
pub fn load_threads(
    txn: &dyn ReadTxn,
    first_deadline: u64,
    interval: u64,
) -> Result<BTreeMap<ThreadId, ThreadState>, StoreError> {
    let mut threads = BTreeMap::new();
    for (k, v) in scan_prefix_collect(txn, &[layout::TAG_THREAD], usize::MAX)? {
        let mut r = crate::store::key::KeyReader::new(&k[1..]);
        let id = ThreadId::from_bytes(&r.bytes()?).map_err(|e| corrupt("thread key", e))?;
        let row: ThreadRow = wire::decode_plain(&v).map_err(|e| corrupt("thread row", e))?;
        let key = ThreadKey::from_bytes(&row.key).map_err(|e| corrupt("thread key bytes", e))?;
        let mut peers = BTreeSet::new();
        for p in &row.peers {
            peers.insert(PeerId::from_bytes(p).map_err(|e| corrupt("peer id", e))?);
        }
        let mut invited = BTreeSet::new();
        for p in &row.invited {
            invited.insert(PeerId::from_bytes(p).map_err(|e| corrupt("invited peer id", e))?);
        }
        let mut state = ThreadState {
            proof: ProofKey::new(key.service()),
            key,
            logs: Logs::default(),
            identities: BTreeMap::new(),
            peers,
            invited,
            clock: LamportClock(row.clock),
            sync: SyncTimer {
                deadline: first_deadline,
                interval,
            },
            peer_heights: BTreeMap::new(),
            exchanges: Exchanges::default(),
        };
        load_logs(txn, &id, &mut state)?;
        threads.insert(id, state);
    }
    Ok(threads)
}

fn load_logs(txn: &dyn ReadTxn, id: &ThreadId, state: &mut ThreadState) -> Result<(), StoreError> {
    let prefix = layout::thread_prefix(layout::TAG_LOG, id);
    for (k, v) in scan_prefix_collect(txn, &prefix, usize::MAX)? {
        let log = LogId::from_bytes(&k[prefix.len()..]).map_err(|e| corrupt("log id", e))?;
        let row: LogRow = wire::decode_plain(&v).map_err(|e| corrupt("log row", e))?;
        let key = match row.secret {
            Some(bytes) => {
                Some(PrivateKey::from_protobuf(&bytes).map_err(|e| corrupt("log key", e))?)
            }
            None => None,
        };
        state.logs.insert(
            log,
            LogState {
                key,
                height: LogHeight(row.height),
                head: row.head,
                head_clock: LamportClock(row.head_clock),
            },
        );
    }
    let prefix = layout::thread_prefix(layout::TAG_IDENTITY_LOG, id);
    for (k, log) in scan_prefix_collect(txn, &prefix, usize::MAX)? {
        let identity: [u8; 36] = k[prefix.len()..]
            .try_into()
            .map_err(|e| corrupt("identity key", e))?;
        let log = LogId::from_bytes(&log).map_err(|e| corrupt("identity log", e))?;
        state.identities.insert(identity, log);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::PrivateKey;

    fn log(seed: u8) -> LogId {
        LogId::from_public_key(&PrivateKey::from_seed([seed; 32]).public())
    }

    fn at(height: u64, head: Option<Cid>) -> LogState {
        LogState {
            height: LogHeight(height),
            head,
            ..LogState::empty(None)
        }
    }

    #[test]
    fn every_change_gives_the_logs_a_new_version_and_digest() {
        let head = Cid::try_from("bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")
            .expect("a CID");
        let (mut a, mut b) = (Logs::default(), Logs::default());
        assert_eq!(a.version(), b.version(), "both empty, never changed");
        let empty = a.digest();
        let v0 = a.version();
        a.insert(log(1), at(0, None));
        let v1 = a.version();
        assert_ne!(v1, v0);
        assert_eq!(a.digest(), empty, "an empty log does not enter the digest");
        a.get_or_insert_mut(log(1), || unreachable!()).height = LogHeight(1);
        a.get_or_insert_mut(log(1), || unreachable!()).head = Some(head);
        let v2 = a.version();
        assert_ne!(v2, v1);
        let d = a.digest();
        assert_ne!(d, empty);
        // Reading changes nothing.
        assert_eq!((a.len(), a.version(), a.digest()), (1, v2, d));
        // The same change elsewhere gets another version, and the same digest.
        b.insert(log(1), at(1, Some(head)));
        assert_ne!(b.version(), v2);
        assert_eq!(b.digest(), d);
        let c = a.clone();
        assert_eq!((c.version(), c.digest()), (v2, d));
    }
}
