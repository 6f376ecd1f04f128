//! The on-disk [`Store`]: one LMDB environment per repository folder, through `heed`, with a
//! write-ahead log beside it.
//!
//! Durability: a successful [`WriteTxn::commit`](threads_protocol::store::WriteTxn::commit)
//! is on disk before it returns; a crash, even `kill -9` or power loss, keeps every committed
//! transaction and nothing of an uncommitted one. A commit appends the transaction's changes
//! to the write-ahead log (`threads.wal`, one sequential write and one `fdatasync`) and adds
//! them to the changes every reader sees over LMDB's snapshot; a *checkpoint* writes those
//! changes into LMDB in one durable commit. The log has two halves: when the one being
//! written is full, a `threads-checkpoint` thread writes its changes into LMDB while commits
//! go on in the other half (a commit waits only when that half fills up before the
//! checkpoint is done). Checkpoints also run at [`LmdbStore::close`] and
//! [`LmdbStore::checkpoint`]. Opening the repository reads back the frames not yet
//! checkpointed. Why: on this project's disks an
//! LMDB commit of a few documents writes dozens of pages scattered through the file, each a
//! request of its own, while a log frame is one sequential write (spec/storage.md §4.3).
//! A transaction too large for the room left in the log commits as a checkpoint, together
//! with the logged ones.
//! [`LmdbOptions::log_bytes`] = 0 turns the log off: every commit is an LMDB commit.
//!
//! Threads: the environment is opened without thread-local reader slots (heed's `WithoutTls`),
//! so read transactions are `Send`, several can be open on one thread, and a thread may read
//! while it holds the write transaction. The write transaction must be finished on the thread
//! that opened it (it is not `Send`). Opening a second one on the same thread returns
//! [`StoreError::Busy`] instead of deadlocking.

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, EnvOpenOptions, MdbError, RoTxn, WithoutTls};
use threads_protocol::store::memory::{ChangeMap, Layered};
use threads_protocol::store::{
    Direction, KeyRange, MAX_KEY_LEN, ReadTxn, Store, StoreError, Visit, WriterGate, check_key,
};

mod wal;
mod write;

pub use write::LmdbWrite;

/// The named LMDB database holding every key of the store.
const DB_NAME: &str = "threads";
/// The named LMDB database holding the store's own rows: the number of the last log frame
/// checkpointed.
const META_DB_NAME: &str = "threads-meta";
/// Key of the last checkpointed frame's number (`u64` BE) in [`META_DB_NAME`].
const CHECKPOINT_KEY: &[u8] = b"wal-checkpoint";
/// Default [`LmdbOptions::log_bytes`].
pub const DEFAULT_LOG_BYTES: u64 = 16 << 20;

/// Default map size: 64 GiB of address space on 64-bit targets.
#[cfg(target_pointer_width = "64")]
const DEFAULT_MAP_SIZE: usize = 64 << 30;
/// Default map size: 1 GiB where address space is scarce.
#[cfg(not(target_pointer_width = "64"))]
const DEFAULT_MAP_SIZE: usize = 1 << 30;

/// Settings for [`LmdbStore::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LmdbOptions {
    /// Size of the memory map in bytes: the most the repository can ever hold. It is address
    /// space, not memory or disk, so it can be generous. Must be a multiple of the OS page size.
    /// Default: 64 GiB on 64-bit targets, 1 GiB elsewhere.
    pub map_size: usize,
    /// Most read transactions open at once, across all processes using the repository.
    /// Default: 256.
    pub max_readers: u32,
    /// Capacity of the write-ahead log (`threads.wal`, created at this size): the most bytes
    /// of commits acknowledged from the log before a checkpoint writes them into LMDB. Larger
    /// means fewer checkpoints and more memory for the changes held until then. 0 turns the
    /// log off (every commit is an LMDB commit; a log left by an earlier run is still read
    /// back). Default: [`DEFAULT_LOG_BYTES`] (16 MiB).
    pub log_bytes: u64,
}

impl Default for LmdbOptions {
    fn default() -> Self {
        LmdbOptions {
            map_size: DEFAULT_MAP_SIZE,
            max_readers: 256,
            log_bytes: DEFAULT_LOG_BYTES,
        }
    }
}

/// A [`Store`] in an LMDB environment. Cloning gives another handle on the same environment.
///
/// The environment closes when the last handle is dropped; [`close`](Self::close) waits for
/// that. One process may open a given folder only once at a time, and only one process may
/// write it: the committed changes still in the log live in this process's memory (`threadsd`
/// holds a lock file for that).
#[derive(Clone)]
pub struct LmdbStore {
    env: Env<WithoutTls>,
    db: Database<'static, Bytes, Bytes>,
    meta: Database<'static, Bytes, Bytes>,
    gate: Arc<WriterGate>,
    counters: Arc<Counters>,
    shared: Arc<Shared>,
}

/// What the clones of one [`LmdbStore`] share besides the environment.
#[derive(Debug)]
struct Shared {
    /// Committed changes not yet checkpointed into LMDB. Readers take a snapshot of them and
    /// open their LMDB transaction under this lock; a checkpoint holds it from its LMDB commit
    /// until it empties what it wrote, so no reader sees LMDB's new state with the old changes.
    committed: Mutex<Committed>,
    /// The log (`None` when turned off). Taken by writers only, lock order: `log`, then
    /// `committed`.
    log: Mutex<Option<wal::Wal>>,
    /// The background checkpoint running or last run, if not yet waited for: `true` when it
    /// committed. Joined with the log's lock held.
    background: Mutex<Option<JoinHandle<bool>>>,
    /// [`LmdbOptions::log_bytes`].
    log_bytes: u64,
}

/// The committed changes not yet in LMDB, in two layers (the newer first).
#[derive(Debug, Clone, Default)]
struct Committed {
    /// Changes of the frames in the half of the log being written (and of every frame read
    /// back at open).
    recent: ChangeMap,
    /// Changes of the other half's frames, while a background checkpoint writes them into
    /// LMDB (or after it failed, until a checkpoint succeeds); empty otherwise.
    frozen: ChangeMap,
}

impl Committed {
    /// The layers, the newer first.
    fn layers(&self) -> [&ChangeMap; 2] {
        [&self.recent, &self.frozen]
    }

    fn is_empty(&self) -> bool {
        self.recent.is_empty() && self.frozen.is_empty()
    }
}

/// Running totals of write transactions, shared by the clones of one [`LmdbStore`].
#[derive(Debug, Default)]
struct Counters {
    write_txns: AtomicU64,
    commits: AtomicU64,
    checkpoints: AtomicU64,
    background_checkpoints: AtomicU64,
    frames_replayed: AtomicU64,
}

/// How many write transactions an [`LmdbStore`] began and how many it committed (each commit
/// is durable: one synced log frame, or one LMDB commit with its `fdatasync` of the data file
/// and synchronous write of the meta page). The difference are scratch transactions dropped
/// without committing (no I/O).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LmdbCounters {
    /// Write transactions begun.
    pub write_txns: u64,
    /// Write transactions committed.
    pub commits: u64,
    /// LMDB commits: checkpoints of the log, and commits too large for it or made with the
    /// log turned off.
    pub checkpoints: u64,
    /// Of those, checkpoints made on a thread of their own while commits went on (one half
    /// of the log written into LMDB while the other took frames).
    pub background_checkpoints: u64,
    /// Log frames read back when the repository was opened (commits of an earlier run that
    /// were not checkpointed).
    pub frames_replayed: u64,
}

impl fmt::Debug for LmdbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LmdbStore")
            .field("path", &self.env.path())
            .finish_non_exhaustive()
    }
}

/// Translates a heed error into the storage contract, saying what was being done.
fn map_err(context: &str, err: heed::Error) -> StoreError {
    match err {
        heed::Error::Mdb(MdbError::MapFull) => StoreError::Full(format!(
            "{context}: the LMDB map is full; reopen with a larger LmdbOptions::map_size"
        )),
        heed::Error::Mdb(MdbError::ReadersFull) => StoreError::Busy(format!(
            "{context}: too many open read transactions; close some or raise \
             LmdbOptions::max_readers"
        )),
        heed::Error::Mdb(
            e @ (MdbError::Corrupted | MdbError::PageNotFound | MdbError::Invalid),
        ) => StoreError::Corrupt(format!(
            "{context}: {e}; restore the repository from a backup"
        )),
        heed::Error::Mdb(e @ MdbError::VersionMismatch) => StoreError::Corrupt(format!(
            "{context}: {e}; the repository was written by an incompatible LMDB version"
        )),
        heed::Error::Mdb(MdbError::BadValSize) => {
            StoreError::Backend(format!("{context}: LMDB rejected a key or value size"))
        }
        heed::Error::EnvAlreadyOpened => StoreError::Busy(format!(
            "{context}: this repository is already open in this process; close the other handle \
             (LmdbStore::close) first"
        )),
        heed::Error::Io(e) if e.kind() == std::io::ErrorKind::StorageFull => {
            StoreError::Full(format!("{context}: no space left on device: {e}"))
        }
        other => StoreError::Backend(format!("{context}: {other}")),
    }
}

impl LmdbStore {
    /// Opens (creating if needed) the repository at folder `path`, reading back the commits
    /// its write-ahead log holds beyond the last checkpoint.
    pub fn open(path: impl AsRef<Path>, options: &LmdbOptions) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let at = |what: &str| format!("{what} at {}", path.display());
        std::fs::create_dir_all(path).map_err(|e| {
            StoreError::Backend(format!("{}: {e}", at("creating the repository folder")))
        })?;
        let mut builder = EnvOpenOptions::new().read_txn_without_tls();
        builder
            .map_size(options.map_size)
            .max_readers(options.max_readers)
            .max_dbs(4);
        // SAFETY: LMDB memory-maps the data file. That is sound as long as nothing but LMDB
        // (with its lock file) modifies the file while it is mapped: the repository folder is
        // owned by the daemon, heed refuses to open one folder twice in a process, and we set
        // no unsafe flags (NO_LOCK, NO_SYNC...).
        let env = unsafe { builder.open(path) }
            .map_err(|e| map_err(&at("opening the LMDB environment"), e))?;
        if env.max_key_size() < MAX_KEY_LEN {
            return Err(StoreError::Backend(format!(
                "this LMDB build accepts keys of at most {} bytes; the store needs {MAX_KEY_LEN}",
                env.max_key_size()
            )));
        }
        let wtxn = env
            .write_txn()
            .map_err(|e| map_err(&at("opening the setup transaction"), e))?;
        let created = env
            .create_databases_and_commit(wtxn, |opener, wtxn| {
                let db = opener.create_database::<Bytes, Bytes>(wtxn, Some(DB_NAME))?;
                let meta = opener.create_database::<Bytes, Bytes>(wtxn, Some(META_DB_NAME))?;
                Ok(CommitOrAbort::<_, ()>::Commit((db, meta)))
            })
            .map_err(|e| map_err(&at("creating the key-value database"), e))?;
        let (db, meta) = created.commit().ok_or_else(|| {
            StoreError::Backend(at("creating the key-value database: setup was aborted"))
        })?;
        let checkpointed = {
            let txn = env
                .read_txn()
                .map_err(|e| map_err(&at("reading the last checkpoint"), e))?;
            match meta
                .get(&txn, CHECKPOINT_KEY)
                .map_err(|e| map_err(&at("reading the last checkpoint"), e))?
            {
                None => 0,
                Some(v) => u64::from_be_bytes(v.try_into().map_err(|_| {
                    StoreError::Corrupt(at("the last checkpoint's number is malformed"))
                })?),
            }
        };
        let counters = Counters::default();
        let (log, recent) = if options.log_bytes > 0 || path.join(wal::FILE_NAME).exists() {
            let opened = wal::Wal::open(path, options.log_bytes, checkpointed)?;
            counters
                .frames_replayed
                .store(opened.frames, Ordering::Relaxed);
            (Some(opened.wal), opened.replay)
        } else {
            (None, ChangeMap::new())
        };
        Ok(LmdbStore {
            env,
            db,
            meta,
            gate: Arc::new(WriterGate::new()),
            counters: Arc::new(counters),
            shared: Arc::new(Shared {
                committed: Mutex::new(Committed {
                    recent,
                    frozen: ChangeMap::new(),
                }),
                log: Mutex::new(log),
                background: Mutex::new(None),
                log_bytes: options.log_bytes,
            }),
        })
    }

    /// The repository folder.
    pub fn path(&self) -> &Path {
        self.env.path()
    }

    /// Page counts of the key-value database and the size of the data file, for benchmarks
    /// and operators who want to know where the bytes on disk go. Commits still in the
    /// write-ahead log are not in them: [`checkpoint`](Self::checkpoint) first.
    pub fn stat(&self) -> Result<LmdbStat, StoreError> {
        let txn = self
            .env
            .read_txn()
            .map_err(|e| map_err("opening a read transaction", e))?;
        let s = self
            .db
            .stat(&txn)
            .map_err(|e| map_err("reading the database statistics", e))?;
        let file_bytes = std::fs::metadata(self.env.path().join("data.mdb"))
            .map(|m| m.len())
            .map_err(|e| StoreError::Backend(format!("reading the size of data.mdb: {e}")))?;
        Ok(LmdbStat {
            page_size: s.page_size,
            depth: s.depth,
            branch_pages: s.branch_pages as u64,
            leaf_pages: s.leaf_pages as u64,
            overflow_pages: s.overflow_pages as u64,
            entries: s.entries as u64,
            file_bytes,
        })
    }

    /// Write transactions begun and committed through this environment's handles so far (for
    /// benchmarks: commits, hence syncs, per write).
    pub fn counters(&self) -> LmdbCounters {
        let c = &self.counters;
        LmdbCounters {
            write_txns: c.write_txns.load(Ordering::Relaxed),
            commits: c.commits.load(Ordering::Relaxed),
            checkpoints: c.checkpoints.load(Ordering::Relaxed),
            background_checkpoints: c.background_checkpoints.load(Ordering::Relaxed),
            frames_replayed: c.frames_replayed.load(Ordering::Relaxed),
        }
    }

    /// Writes the commits held in the write-ahead log into LMDB now (one durable LMDB commit;
    /// nothing when there are none), so that `data.mdb` alone holds every commit: before a
    /// backup that copies only `data.mdb`, or to measure its size. Waits for the write
    /// transaction like [`Store::write`].
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        let _ticket = self.gate.enter()?;
        let mut log = lock(&self.shared.log);
        write::finish_background(self, &mut log);
        if lock(&self.shared.committed).is_empty() {
            return Ok(());
        }
        write::checkpoint(self, &mut log, None)
    }

    /// Checkpoints ([`checkpoint`](Self::checkpoint); a failure is logged and the commits stay
    /// in the log, read back at the next open), drops this handle and blocks until the
    /// environment is closed, i.e. until every clone of this handle is dropped too. Afterwards
    /// the folder can be opened again.
    pub fn close(self) {
        if let Err(e) = self.checkpoint() {
            tracing::warn!(error = %e, "checkpoint at close failed; the write-ahead log keeps the commits");
        }
        let LmdbStore { env, .. } = self;
        env.prepare_for_closing().wait();
    }
}

impl LmdbStore {
    /// Closes without a checkpoint, as a crash would: the commits held in the write-ahead log
    /// stay there and the next open reads them back. For tests of recovery; otherwise
    /// [`close`](Self::close).
    pub fn close_without_checkpoint(self) {
        write::finish_background(&self, &mut lock(&self.shared.log));
        let LmdbStore { env, .. } = self;
        env.prepare_for_closing().wait();
    }
}

/// Locks `m`; the values behind the store's locks are replaced whole, never left half-changed,
/// so a poisoned lock still holds a consistent value.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What [`LmdbStore::stat`] reports: LMDB's page counts of the database holding every key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LmdbStat {
    /// Bytes per page.
    pub page_size: u32,
    /// Height of the B-tree.
    pub depth: u32,
    /// Interior pages.
    pub branch_pages: u64,
    /// Leaf pages (keys and small values).
    pub leaf_pages: u64,
    /// Overflow pages (values too large for a leaf).
    pub overflow_pages: u64,
    /// Pairs stored.
    pub entries: u64,
    /// Size of `data.mdb` (including free pages and pages of older snapshots kept for reuse).
    pub file_bytes: u64,
}

/// A read transaction of [`LmdbStore`]: a snapshot (LMDB's, and the committed changes not yet
/// checkpointed over it), `Send`.
pub struct LmdbRead<'a> {
    txn: RoTxn<'a, WithoutTls>,
    db: Database<'static, Bytes, Bytes>,
    committed: Committed,
    /// The environment, to open siblings on the same snapshot.
    env: &'a Env<WithoutTls>,
}

impl fmt::Debug for LmdbRead<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LmdbRead")
            .field("id", &self.txn.id())
            .field("recent", &self.committed.recent.len())
            .field("frozen", &self.committed.frozen.len())
            .finish()
    }
}

impl Store for LmdbStore {
    type Read<'a> = LmdbRead<'a>;
    type Write<'a> = LmdbWrite<'a>;

    fn read(&self) -> Result<LmdbRead<'_>, StoreError> {
        let committed = lock(&self.shared.committed);
        let txn = self
            .env
            .read_txn()
            .map_err(|e| map_err("opening a read transaction", e))?;
        Ok(LmdbRead {
            txn,
            db: self.db,
            committed: committed.clone(),
            env: &self.env,
        })
    }

    fn write(&self) -> Result<LmdbWrite<'_>, StoreError> {
        LmdbWrite::begin(self)
    }
}

/// The value of `key` seen through `layers` (upper first) over LMDB's snapshot `txn`.
fn get_with<'t>(
    db: &Database<'static, Bytes, Bytes>,
    txn: &'t RoTxn<'_>,
    layers: &[&'t ChangeMap],
    key: &[u8],
    read: &mut dyn FnMut(Option<&[u8]>),
) -> Result<(), StoreError> {
    check_key(key)?;
    for layer in layers {
        if let Some(change) = layer.get(key) {
            read(change);
            return Ok(());
        }
    }
    read(db.get(txn, key).map_err(|e| map_err("reading a key", e))?);
    Ok(())
}

fn get(
    db: &Database<'static, Bytes, Bytes>,
    txn: &RoTxn<'_>,
    layers: &[&ChangeMap],
    key: &[u8],
) -> Result<Option<Vec<u8>>, StoreError> {
    let mut out = None;
    get_with(db, txn, layers, key, &mut |v| out = v.map(<[u8]>::to_vec))?;
    Ok(out)
}

/// LMDB's pairs in a range, each possibly an error.
type PairsOrErrors<'t> = dyn Iterator<Item = heed::Result<(&'t [u8], &'t [u8])>> + 't;
/// Pairs and deletions, merged from layers.
type ChangeStream<'t> = dyn Iterator<Item = (&'t [u8], Option<&'t [u8]>)> + 't;

/// A scan of LMDB's snapshot `txn` with `layers` (upper first) over it.
fn scan(
    db: &Database<'static, Bytes, Bytes>,
    txn: &RoTxn<'_>,
    layers: &[&ChangeMap],
    range: &KeyRange<'_>,
    dir: Direction,
    visit: &mut Visit<'_>,
) -> Result<(), StoreError> {
    // Normalized bounds are never empty, overlong or inverted, which LMDB cursors reject.
    let Some(bounds) = range.normalized() else {
        return Ok(());
    };
    let fail = |e| map_err("scanning keys", e);
    let mut failure = None;
    let base: Box<PairsOrErrors<'_>> = match dir {
        Direction::Forward => Box::new(db.range(txn, &bounds).map_err(fail)?),
        Direction::Reverse => Box::new(db.rev_range(txn, &bounds).map_err(fail)?),
    };
    let base = base.map_while(|item| match item {
        Ok((k, v)) => Some((k, Some(v))),
        Err(e) => {
            failure = Some(e);
            None
        }
    });
    let forward = dir == Direction::Forward;
    let mut merged: Box<ChangeStream<'_>> = Box::new(base);
    for layer in layers.iter().rev().filter(|l| !l.is_empty()) {
        merged = Box::new(Layered::new(layer.range(bounds, dir), merged, forward));
    }
    for (k, v) in merged {
        // Deletions of the layers hide LMDB's pairs and are not visited.
        if let Some(v) = v
            && visit(k, v).is_break()
        {
            break;
        }
    }
    failure.map_or(Ok(()), |e| Err(fail(e)))
}

impl ReadTxn for LmdbRead<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        get(&self.db, &self.txn, &self.committed.layers(), key)
    }

    fn get_with(&self, key: &[u8], read: &mut dyn FnMut(Option<&[u8]>)) -> Result<(), StoreError> {
        get_with(&self.db, &self.txn, &self.committed.layers(), key, read)
    }

    /// LMDB cannot open a read transaction on an older snapshot: a new one that sees the same
    /// last LMDB commit (the same transaction ID) is the sibling, with the same changes over
    /// it; after a later checkpoint there is none.
    fn sibling(&self) -> Option<Box<dyn ReadTxn + Send + '_>> {
        let txn = self.env.read_txn().ok()?;
        (txn.id() == self.txn.id()).then(|| {
            Box::new(LmdbRead {
                txn,
                db: self.db,
                committed: self.committed.clone(),
                env: self.env,
            }) as Box<dyn ReadTxn + Send + '_>
        })
    }

    fn scan(
        &self,
        range: KeyRange<'_>,
        dir: Direction,
        visit: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        scan(
            &self.db,
            &self.txn,
            &self.committed.layers(),
            &range,
            dir,
            visit,
        )
    }
}
