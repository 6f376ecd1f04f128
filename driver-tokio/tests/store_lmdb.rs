//! The storage conformance suite on [`LmdbStore`], each store in its own temporary folder.

use std::path::PathBuf;

use tempfile::TempDir;
use threads_driver_tokio::lmdb::{LmdbOptions, LmdbStore};
use threads_protocol::store::conformance::{self, Harness};
use threads_protocol::store::memory::MemoryStore;
use threads_protocol::store::{
    Direction, KeyRange, ReadTxn, Store, StoreError, WriteTxn, content_digest, scan_collect,
};

#[derive(Default)]
struct Lmdb {
    dirs: Vec<TempDir>,
}

fn small() -> LmdbOptions {
    // Small enough to keep test folders light, large enough for the suite.
    LmdbOptions {
        map_size: 256 << 20,
        ..LmdbOptions::default()
    }
}

impl Harness for Lmdb {
    type S = LmdbStore;
    fn open(&mut self) -> LmdbStore {
        let dir = tempfile::tempdir().unwrap();
        let store = LmdbStore::open(dir.path(), &small()).unwrap();
        self.dirs.push(dir);
        store
    }
    fn reopen(&mut self, store: LmdbStore) -> LmdbStore {
        let path: PathBuf = store.path().to_path_buf();
        store.close();
        LmdbStore::open(&path, &small()).unwrap()
    }
}

#[test]
fn lmdb_store_passes_conformance() {
    conformance::run_all(&mut Lmdb::default());
}

#[test]
fn lmdb_store_randomized_more_seeds() {
    let mut h = Lmdb::default();
    for seed in 1..=4u64 {
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
    assert!(r.sibling().is_none(), "a sibling after a later commit");
    assert!(r.get(&7u32.to_be_bytes()).unwrap().is_some());
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
