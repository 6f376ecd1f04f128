//! The storage conformance suite on [`LmdbStore`], each store in its own temporary folder.

use std::path::PathBuf;

use tempfile::TempDir;
use threads_driver_tokio::lmdb::{LmdbOptions, LmdbStore};
use threads_protocol::store::conformance::{self, Harness};
use threads_protocol::store::memory::MemoryStore;
use threads_protocol::store::{
    Direction, KeyRange, ReadTxn, Store, StoreError, WriteTxn, content_digest, scan_collect,
};

/// The suite's harness: each store in its own folder, opened with `opts`; `crash` reopens
/// without the checkpoint of a clean close, so the write-ahead log is read back.
#[derive(Default)]
struct Lmdb {
    dirs: Vec<TempDir>,
    opts: Option<LmdbOptions>,
    crash: bool,
}

fn small() -> LmdbOptions {
    // Small enough to keep test folders light, large enough for the suite.
    LmdbOptions {
        map_size: 256 << 20,
        ..LmdbOptions::default()
    }
}

impl Lmdb {
    fn opts(&self) -> LmdbOptions {
        self.opts.clone().unwrap_or_else(small)
    }
}

impl Harness for Lmdb {
    type S = LmdbStore;
    fn open(&mut self) -> LmdbStore {
        let dir = tempfile::tempdir().unwrap();
        let store = LmdbStore::open(dir.path(), &self.opts()).unwrap();
        self.dirs.push(dir);
        store
    }
    fn reopen(&mut self, store: LmdbStore) -> LmdbStore {
        let path: PathBuf = store.path().to_path_buf();
        if self.crash {
            store.close_without_checkpoint();
        } else {
            store.close();
        }
        LmdbStore::open(&path, &self.opts()).unwrap()
    }
}

/// A log of 600 bytes: a checkpoint every few commits, and every reopen reads frames back.
fn tiny_log_crashing() -> Lmdb {
    Lmdb {
        opts: Some(LmdbOptions {
            log_bytes: 600,
            ..small()
        }),
        crash: true,
        ..Lmdb::default()
    }
}

#[test]
fn lmdb_store_passes_conformance() {
    conformance::run_all(&mut Lmdb::default());
}

#[test]
fn lmdb_store_passes_conformance_without_the_log() {
    conformance::run_all(&mut Lmdb {
        opts: Some(LmdbOptions {
            log_bytes: 0,
            ..small()
        }),
        ..Lmdb::default()
    });
}

#[test]
fn lmdb_store_passes_conformance_with_a_tiny_log_and_crashes() {
    conformance::run_all(&mut tiny_log_crashing());
}

#[test]
fn lmdb_store_randomized_more_seeds() {
    let mut h = Lmdb::default();
    for seed in 1..=4u64 {
        conformance::randomized_model(&mut h, seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), 40);
    }
    let mut h = tiny_log_crashing();
    for seed in 5..=8u64 {
        conformance::randomized_model(&mut h, seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), 40);
    }
}

fn fill<S: Store>(s: &S, n: u32) {
    let mut w = s.write().unwrap();
    for i in 0..n {
        w.put(&i.to_be_bytes(), &i.to_le_bytes().repeat(3)).unwrap();
    }
    w.commit().unwrap();
}

#[test]
fn lmdb_and_memory_digests_agree() {
    let dir = tempfile::tempdir().unwrap();
    let disk = LmdbStore::open(dir.path(), &small()).unwrap();
    let mem = MemoryStore::new();
    fill(&disk, 500);
    fill(&mem, 500);
    assert_eq!(content_digest(&disk.read().unwrap()).unwrap(), mem.digest());
}

#[test]
fn map_full_is_reported_and_leaves_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LmdbOptions {
        map_size: 1 << 20,
        log_bytes: 0,
        ..LmdbOptions::default()
    };
    let s = LmdbStore::open(dir.path(), &opts).unwrap();
    fill(&s, 10);
    let before = content_digest(&s.read().unwrap()).unwrap();
    let mut w = s.write().unwrap();
    let value = vec![7u8; 64 << 10];
    let err = (0u32..64)
        .map(|i| w.put(&[b'x', i as u8], &value))
        .find_map(Result::err)
        .expect("a 1 MiB map cannot hold 4 MiB");
    assert!(matches!(err, StoreError::Full(_)), "{err}");
    assert!(
        err.to_string().contains("map_size"),
        "message must say how to fix it: {err}"
    );
    drop(w);
    assert_eq!(content_digest(&s.read().unwrap()).unwrap(), before);
    let mut w = s.write().unwrap();
    w.put(b"fits", b"yes").unwrap();
    w.commit().unwrap();
}

/// With the log, a commit LMDB cannot hold is durable in the log; the checkpoint that would
/// move it into LMDB reports the full map, changes nothing, and succeeds once the map is
/// larger.
#[test]
fn a_checkpoint_into_a_full_map_fails_and_keeps_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LmdbOptions {
        map_size: 1 << 20,
        ..LmdbOptions::default()
    };
    let s = LmdbStore::open(dir.path(), &opts).unwrap();
    fill(&s, 10);
    let mut w = s.write().unwrap();
    let value = vec![7u8; 64 << 10];
    for i in 0..32u8 {
        w.put(&[b'x', i], &value).unwrap();
    }
    w.commit().unwrap();
    let digest = content_digest(&s.read().unwrap()).unwrap();
    let err = s.checkpoint().unwrap_err();
    assert!(matches!(err, StoreError::Full(_)), "{err}");
    assert_eq!(content_digest(&s.read().unwrap()).unwrap(), digest);
    assert_eq!(s.counters().checkpoints, 0);
    s.close_without_checkpoint();
    let bigger = LmdbOptions {
        map_size: 64 << 20,
        ..LmdbOptions::default()
    };
    let s = LmdbStore::open(dir.path(), &bigger).unwrap();
    assert_eq!(s.counters().frames_replayed, 2);
    s.checkpoint().unwrap();
    assert_eq!(content_digest(&s.read().unwrap()).unwrap(), digest);
}

#[test]
fn second_open_in_process_is_busy_and_close_allows_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let s = LmdbStore::open(dir.path(), &small()).unwrap();
    let err = LmdbStore::open(dir.path(), &small()).unwrap_err();
    assert!(matches!(err, StoreError::Busy(_)), "{err}");
    fill(&s, 3);
    let clone = s.clone();
    let closer = std::thread::spawn(move || s.close());
    drop(clone);
    closer.join().unwrap();
    let s = LmdbStore::open(dir.path(), &small()).unwrap();
    assert_eq!(
        scan_collect(&s.read().unwrap(), KeyRange::all(), Direction::Forward, 10)
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn read_txns_are_send_and_many_per_thread() {
    fn is_send<T: Send>(_: &T) {}
    let dir = tempfile::tempdir().unwrap();
    let s = LmdbStore::open(dir.path(), &small()).unwrap();
    fill(&s, 2);
    let readers: Vec<_> = (0..8).map(|_| s.read().unwrap()).collect();
    is_send(&readers[0]);
    let w = s.write().unwrap();
    assert_eq!(
        w.get(&0u32.to_be_bytes()).unwrap().map(|v| v.len()),
        Some(12)
    );
    drop(w);
    std::thread::scope(|sc| {
        for r in readers {
            sc.spawn(move || assert!(r.get(&1u32.to_be_bytes()).unwrap().is_some()));
        }
    });
}

#[test]
fn a_read_txn_gives_siblings_until_a_later_commit() {
    let dir = tempfile::tempdir().unwrap();
    let s = LmdbStore::open(dir.path(), &small()).unwrap();
    fill(&s, 100);
    let r = s.read().unwrap();
    // Two siblings, read on their own threads while a writer removes a key and commits.
    let siblings: Vec<_> = (0..2)
        .map(|_| r.sibling().expect("nothing committed since the read began"))
        .collect();
    let mut w = s.write().unwrap();
    assert!(w.sibling().is_none(), "a write txn gave a sibling");
    assert!(w.delete(&7u32.to_be_bytes()).unwrap());
    w.commit().unwrap();
    std::thread::scope(|sc| {
        for sibling in siblings {
            sc.spawn(move || {
                let seen = scan_collect(&*sibling, KeyRange::all(), Direction::Forward, 1000);
                assert_eq!(seen.unwrap().len(), 100, "the sibling saw the later commit");
            });
        }
    });
    // The commit went to the write-ahead log: LMDB's snapshot is unchanged, so a sibling
    // (the same snapshot and the same logged changes over it) still sees what `r` sees.
    let late = r
        .sibling()
        .expect("a logged commit leaves LMDB's snapshot as it was");
    assert!(late.get(&7u32.to_be_bytes()).unwrap().is_some());
    // A checkpoint moves the commit into LMDB: a later snapshot, so no sibling.
    s.checkpoint().unwrap();
    assert!(r.sibling().is_none(), "a sibling after a checkpoint");
    assert!(r.get(&7u32.to_be_bytes()).unwrap().is_some());
    assert!(
        s.read()
            .unwrap()
            .get(&7u32.to_be_bytes())
            .unwrap()
            .is_none()
    );
}

#[test]
fn open_reports_unusable_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a folder").unwrap();
    let err = LmdbStore::open(&file, &small()).unwrap_err();
    assert!(
        err.to_string().contains("a-file"),
        "error must name the path: {err}"
    );
    let bad_size = LmdbOptions {
        map_size: 12345,
        ..LmdbOptions::default()
    };
    let err = LmdbStore::open(dir.path().join("x"), &bad_size).unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err}");
}

#[test]
fn logged_commits_are_read_back_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let s = LmdbStore::open(dir.path(), &small()).unwrap();
    fill(&s, 10);
    let mut w = s.write().unwrap();
    assert!(w.delete(&3u32.to_be_bytes()).unwrap());
    w.put(b"late", b"value").unwrap();
    w.commit().unwrap();
    let c = s.counters();
    assert_eq!(
        (c.commits, c.checkpoints),
        (2, 0),
        "both commits went to the log"
    );
    let digest = content_digest(&s.read().unwrap()).unwrap();
    s.close_without_checkpoint();

    let s = LmdbStore::open(dir.path(), &small()).unwrap();
    assert_eq!(s.counters().frames_replayed, 2);
    assert_eq!(content_digest(&s.read().unwrap()).unwrap(), digest);
    assert!(
        s.read()
            .unwrap()
            .get(&3u32.to_be_bytes())
            .unwrap()
            .is_none()
    );
    // After a checkpoint the log has nothing left to read back.
    s.checkpoint().unwrap();
    s.close_without_checkpoint();
    let s = LmdbStore::open(dir.path(), &small()).unwrap();
    assert_eq!(s.counters().frames_replayed, 0);
    assert_eq!(content_digest(&s.read().unwrap()).unwrap(), digest);
}

/// Commits through a 64 KiB log: a logged commit, then one too large for the log (a
/// checkpoint at its commit), then one past four logs (moved into LMDB while it is written).
#[test]
fn large_transactions_go_to_lmdb_with_the_logged_ones() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LmdbOptions {
        log_bytes: 64 << 10,
        ..small()
    };
    let s = LmdbStore::open(dir.path(), &opts).unwrap();
    fill(&s, 10);
    assert_eq!(s.counters().checkpoints, 0);
    let value = vec![9u8; 1000];
    for (round, count) in [(1u32, 100u32), (2, 1000)] {
        let mut w = s.write().unwrap();
        for i in 0..count {
            w.put(&(round * 1_000_000 + i).to_be_bytes(), &value)
                .unwrap();
        }
        // Reads in the transaction see its changes, the logged commit and LMDB's state.
        assert_eq!(
            w.get(&5u32.to_be_bytes()).unwrap(),
            Some(5u32.to_le_bytes().repeat(3))
        );
        assert_eq!(
            w.get(&(round * 1_000_000 + count - 1).to_be_bytes())
                .unwrap(),
            Some(value.clone())
        );
        let direct = format!("{w:?}").contains("direct");
        assert_eq!(direct, round == 2, "{w:?}");
        w.commit().unwrap();
        assert_eq!(s.counters().checkpoints, u64::from(round));
    }
    let digest = content_digest(&s.read().unwrap()).unwrap();
    s.close_without_checkpoint();
    let s = LmdbStore::open(dir.path(), &opts).unwrap();
    assert_eq!(s.counters().frames_replayed, 0);
    assert_eq!(content_digest(&s.read().unwrap()).unwrap(), digest);
    assert_eq!(
        s.read().unwrap().get(&7u32.to_be_bytes()).unwrap(),
        Some(7u32.to_le_bytes().repeat(3))
    );
}

#[test]
fn a_torn_last_frame_is_left_out_and_the_rest_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = LmdbStore::open(dir.path(), &small()).unwrap();
    fill(&s, 10);
    let before = content_digest(&s.read().unwrap()).unwrap();
    let mut w = s.write().unwrap();
    w.put(b"torn", b"never acknowledged").unwrap();
    w.commit().unwrap();
    s.close_without_checkpoint();
    // Cut the second frame short, as a crash in the middle of its write would: its last
    // byte back to the zero the log was created with.
    let log = dir.path().join("threads.wal");
    let mut bytes = std::fs::read(&log).unwrap();
    let end = bytes.iter().rposition(|&b| b != 0).unwrap();
    bytes[end] = 0;
    std::fs::write(&log, &bytes).unwrap();
    let s = LmdbStore::open(dir.path(), &small()).unwrap();
    assert_eq!(s.counters().frames_replayed, 1);
    assert_eq!(content_digest(&s.read().unwrap()).unwrap(), before);
    // The store goes on from there.
    let mut w = s.write().unwrap();
    w.put(b"next", b"1").unwrap();
    w.commit().unwrap();
    s.close_without_checkpoint();
    let s = LmdbStore::open(dir.path(), &small()).unwrap();
    assert_eq!(s.counters().frames_replayed, 2);
    assert!(s.read().unwrap().get(b"torn").unwrap().is_none());
    assert_eq!(s.read().unwrap().get(b"next").unwrap(), Some(b"1".to_vec()));
}

/// Commits with a small log, so that the halves fill up and background checkpoints write them
/// into LMDB while commits go on: every commit stays visible in order, through a crash too,
/// and a read opened before background checkpoints keeps its snapshot.
#[test]
fn background_checkpoints_keep_every_commit() {
    let dir = tempfile::tempdir().unwrap();
    let opts = LmdbOptions {
        log_bytes: 8 << 10,
        ..small()
    };
    let model = MemoryStore::new();
    let digest = |r: &dyn ReadTxn| content_digest(r).unwrap();
    let mut s = LmdbStore::open(dir.path(), &opts).unwrap();
    for round in 0..3u32 {
        let before = s.counters().background_checkpoints;
        let mut kept = None;
        for i in 0..300u32 {
            let n = round * 300 + i;
            let key = (n % 97).to_be_bytes();
            let value = n.to_le_bytes().repeat(8);
            let gone = ((n + 3) % 97).to_be_bytes();
            let mut w = s.write().unwrap();
            let mut m = model.write().unwrap();
            w.put(&key, &value).unwrap();
            m.put(&key, &value).unwrap();
            if n % 5 == 0 {
                assert_eq!(w.delete(&gone).unwrap(), m.delete(&gone).unwrap());
            }
            w.commit().unwrap();
            m.commit().unwrap();
            if n % 50 == 0 {
                let r = s.read().unwrap();
                assert_eq!(digest(&r), digest(&model.read().unwrap()), "commit {n}");
            }
            if i == 100 {
                let r = s.read().unwrap();
                kept = Some((digest(&r), r));
            }
        }
        let (then, r) = kept.expect("kept at commit 100");
        assert_eq!(
            digest(&r),
            then,
            "a snapshot outlives background checkpoints"
        );
        drop(r);
        assert!(
            s.counters().background_checkpoints > before,
            "round {round}: {:?}",
            s.counters()
        );
        // A crash at the end of the first round, a clean close at the end of the others.
        match round {
            0 => s.close_without_checkpoint(),
            _ => s.close(),
        }
        s = LmdbStore::open(dir.path(), &opts).unwrap();
        let r = s.read().unwrap();
        assert_eq!(
            digest(&r),
            digest(&model.read().unwrap()),
            "after round {round}"
        );
    }
    s.close();
}
