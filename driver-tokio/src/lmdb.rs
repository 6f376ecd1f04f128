//! The on-disk [`Store`]: one LMDB environment per repository folder, through `heed`.
//!
//! Durability: LMDB's defaults, so a successful [`WriteTxn::commit`] has been synced to disk
//! (data and meta page) before it returns; a crash, even `kill -9` or power loss, keeps every
//! committed transaction and nothing of an uncommitted one.
//!
//! Threads: the environment is opened without thread-local reader slots (heed's `WithoutTls`),
//! so read transactions are `Send`, several can be open on one thread, and a thread may read
//! while it holds the write transaction. The write transaction must be finished on the thread
//! that opened it (it is not `Send`). Opening a second one on the same thread returns
//! [`StoreError::Busy`] instead of deadlocking.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, EnvOpenOptions, MdbError, RoTxn, RwTxn, WithoutTls};
use threads_protocol::store::{
    Direction, KeyRange, MAX_KEY_LEN, ReadTxn, Store, StoreError, Visit, WriteTxn, WriterGate,
    WriterTicket, check_key, check_value,
};

/// The named LMDB database holding every key of the store.
const DB_NAME: &str = "threads";

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
}

impl Default for LmdbOptions {
    fn default() -> Self {
        LmdbOptions {
            map_size: DEFAULT_MAP_SIZE,
            max_readers: 256,
        }
    }
}

/// A [`Store`] in an LMDB environment. Cloning gives another handle on the same environment.
///
/// The environment closes when the last handle is dropped; [`close`](Self::close) waits for
/// that. One process may open a given folder only once at a time.
#[derive(Clone)]
pub struct LmdbStore {
    env: Env<WithoutTls>,
    db: Database<'static, Bytes, Bytes>,
    gate: Arc<WriterGate>,
    counters: Arc<Counters>,
}

/// Running totals of write transactions, shared by the clones of one [`LmdbStore`].
#[derive(Debug, Default)]
struct Counters {
    write_txns: AtomicU64,
    commits: AtomicU64,
}

/// How many write transactions an [`LmdbStore`] began and how many it committed (each commit
/// is durable: one `fdatasync` of the data file and one synchronous write of the meta page).
/// The difference are scratch transactions dropped without committing (no I/O).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LmdbCounters {
    /// Write transactions begun.
    pub write_txns: u64,
    /// Write transactions committed.
    pub commits: u64,
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
    /// Opens (creating if needed) the repository at folder `path`.
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
                opener
                    .create_database::<Bytes, Bytes>(wtxn, Some(DB_NAME))
                    .map(CommitOrAbort::<_, ()>::Commit)
            })
            .map_err(|e| map_err(&at("creating the key-value database"), e))?;
        let db = created.commit().ok_or_else(|| {
            StoreError::Backend(at("creating the key-value database: setup was aborted"))
        })?;
        Ok(LmdbStore {
            env,
            db,
            gate: Arc::new(WriterGate::new()),
            counters: Arc::default(),
        })
    }

    /// The repository folder.
    pub fn path(&self) -> &Path {
        self.env.path()
    }

    /// Page counts of the key-value database and the size of the data file, for benchmarks
    /// and operators who want to know where the bytes on disk go.
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
        LmdbCounters {
            write_txns: self.counters.write_txns.load(Ordering::Relaxed),
            commits: self.counters.commits.load(Ordering::Relaxed),
        }
    }

    /// Drops this handle and blocks until the environment is closed, i.e. until every clone
    /// of this handle is dropped too. Afterwards the folder can be opened again.
    pub fn close(self) {
        let LmdbStore {
            env,
            db: _,
            gate: _,
            counters: _,
        } = self;
        env.prepare_for_closing().wait();
    }
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

/// A read transaction of [`LmdbStore`]: a snapshot, `Send`.
pub struct LmdbRead<'a> {
    txn: RoTxn<'a, WithoutTls>,
    db: Database<'static, Bytes, Bytes>,
    /// The environment, to open siblings on the same snapshot.
    env: &'a Env<WithoutTls>,
}

/// The write transaction of [`LmdbStore`]. Not `Send`: LMDB requires the thread that began
/// a write transaction to end it.
pub struct LmdbWrite<'a> {
    // Field order matters: the LMDB transaction ends before the gate admits the next writer.
    txn: RwTxn<'a>,
    db: Database<'static, Bytes, Bytes>,
    counters: &'a Counters,
    _ticket: WriterTicket<'a>,
}

impl fmt::Debug for LmdbRead<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LmdbRead")
            .field("id", &self.txn.id())
            .finish()
    }
}

impl fmt::Debug for LmdbWrite<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LmdbWrite")
            .field("id", &self.txn.id())
            .finish()
    }
}

impl Store for LmdbStore {
    type Read<'a> = LmdbRead<'a>;
    type Write<'a> = LmdbWrite<'a>;

    fn read(&self) -> Result<LmdbRead<'_>, StoreError> {
        let txn = self
            .env
            .read_txn()
            .map_err(|e| map_err("opening a read transaction", e))?;
        Ok(LmdbRead {
            txn,
            db: self.db,
            env: &self.env,
        })
    }

    fn write(&self) -> Result<LmdbWrite<'_>, StoreError> {
        let ticket = self.gate.enter()?;
        let txn = self
            .env
            .write_txn()
            .map_err(|e| map_err("opening the write transaction", e))?;
        self.counters.write_txns.fetch_add(1, Ordering::Relaxed);
        Ok(LmdbWrite {
            txn,
            db: self.db,
            counters: &self.counters,
            _ticket: ticket,
        })
    }
}

fn get(
    db: &Database<'static, Bytes, Bytes>,
    txn: &RoTxn<'_>,
    key: &[u8],
) -> Result<Option<Vec<u8>>, StoreError> {
    check_key(key)?;
    Ok(db
        .get(txn, key)
        .map_err(|e| map_err("reading a key", e))?
        .map(<[u8]>::to_vec))
}

/// [`ReadTxn::get_with`]: the value is lent from LMDB's map.
fn get_with(
    db: &Database<'static, Bytes, Bytes>,
    txn: &RoTxn<'_>,
    key: &[u8],
    read: &mut dyn FnMut(Option<&[u8]>),
) -> Result<(), StoreError> {
    check_key(key)?;
    read(db.get(txn, key).map_err(|e| map_err("reading a key", e))?);
    Ok(())
}

fn scan(
    db: &Database<'static, Bytes, Bytes>,
    txn: &RoTxn<'_>,
    range: &KeyRange<'_>,
    dir: Direction,
    visit: &mut Visit<'_>,
) -> Result<(), StoreError> {
    // Normalized bounds are never empty, overlong or inverted, which LMDB cursors reject.
    let Some(bounds) = range.normalized() else {
        return Ok(());
    };
    let fail = |e| map_err("scanning keys", e);
    match dir {
        Direction::Forward => {
            for item in db.range(txn, &bounds).map_err(fail)? {
                let (k, v) = item.map_err(fail)?;
                if visit(k, v).is_break() {
                    break;
                }
            }
        }
        Direction::Reverse => {
            for item in db.rev_range(txn, &bounds).map_err(fail)? {
                let (k, v) = item.map_err(fail)?;
                if visit(k, v).is_break() {
                    break;
                }
            }
        }
    }
    Ok(())
}

impl ReadTxn for LmdbRead<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        get(&self.db, &self.txn, key)
    }

    fn get_with(&self, key: &[u8], read: &mut dyn FnMut(Option<&[u8]>)) -> Result<(), StoreError> {
        get_with(&self.db, &self.txn, key, read)
    }

    /// LMDB cannot open a read transaction on an older snapshot: a new one that sees the same
    /// last commit (the same transaction ID) is the sibling; after a later commit there is none.
    fn sibling(&self) -> Option<Box<dyn ReadTxn + Send + '_>> {
        let txn = self.env.read_txn().ok()?;
        (txn.id() == self.txn.id()).then(|| {
            Box::new(LmdbRead {
                txn,
                db: self.db,
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
        scan(&self.db, &self.txn, &range, dir, visit)
    }
}

impl ReadTxn for LmdbWrite<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        get(&self.db, &self.txn, key)
    }

    fn get_with(&self, key: &[u8], read: &mut dyn FnMut(Option<&[u8]>)) -> Result<(), StoreError> {
        get_with(&self.db, &self.txn, key, read)
    }

    fn scan(
        &self,
        range: KeyRange<'_>,
        dir: Direction,
        visit: &mut Visit<'_>,
    ) -> Result<(), StoreError> {
        scan(&self.db, &self.txn, &range, dir, visit)
    }
}

impl WriteTxn for LmdbWrite<'_> {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        check_key(key)?;
        check_value(value)?;
        self.db
            .put(&mut self.txn, key, value)
            .map_err(|e| map_err("writing a key", e))
    }

    fn put_if_absent(&mut self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        check_key(key)?;
        check_value(value)?;
        let old = self
            .db
            .get_or_put(&mut self.txn, key, value)
            .map_err(|e| map_err("writing a new key", e))?;
        Ok(old.map(<[u8]>::to_vec))
    }

    fn delete(&mut self, key: &[u8]) -> Result<bool, StoreError> {
        check_key(key)?;
        self.db
            .delete(&mut self.txn, key)
            .map_err(|e| map_err("deleting a key", e))
    }

    fn commit(self) -> Result<(), StoreError> {
        let LmdbWrite {
            txn,
            db: _,
            counters,
            _ticket,
        } = self;
        txn.commit()
            .map_err(|e| map_err("committing the write transaction", e))?;
        counters.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
