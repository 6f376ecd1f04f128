//! The write-ahead log of [`LmdbStore`](super::LmdbStore): a file of fixed capacity in the
//! environment's folder (`threads.wal`), written from its start again after each checkpoint.
//!
//! Layout (spec/storage.md §4.3): a 16-byte header (`threads-wal\0`, version `u32` BE), then
//! frames, each `len: u32 BE ‖ seq: u64 BE ‖ check: 8 bytes ‖ payload` where `check` is the
//! first 8 bytes of SHA-256 over `len ‖ seq ‖ payload` and the payload is the transaction's
//! changes in key order, each `key_len: u16 BE ‖ value_len: u32 BE (u32::MAX: deleted) ‖ key
//! ‖ value`. Sequence numbers grow by one per frame for the life of the repository; the last
//! one applied to LMDB is stored in LMDB with the data it covers. So after a crash the frames
//! to replay are the run that starts at the header with the checkpoint's number plus one, up
//! to the first frame that is torn (its check fails) or stale (its number does not follow).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use threads_protocol::store::StoreError;
use threads_protocol::store::memory::ChangeMap;

/// The log's file name in the environment folder.
pub(super) const FILE_NAME: &str = "threads.wal";
const MAGIC: &[u8; 12] = b"threads-wal\0";
const VERSION: u32 = 1;
const HEADER: u64 = 16;
/// `len ‖ seq ‖ check`.
const FRAME_HEAD: usize = 4 + 8 + 8;
/// `value_len` of a deletion.
const DELETED: u32 = u32::MAX;

/// The open log: where the next frame goes and the number it gets.
#[derive(Debug)]
pub(super) struct Wal {
    file: File,
    path: PathBuf,
    /// End of the last frame written since the last checkpoint.
    offset: u64,
    /// Most bytes of frames (after the header) before a checkpoint must make room.
    capacity: u64,
    /// The next frame's sequence number.
    pub(super) next_seq: u64,
}

/// What [`Wal::open`] found: the log and the changes of the frames not yet checkpointed.
#[derive(Debug)]
pub(super) struct Opened {
    pub(super) wal: Wal,
    pub(super) replay: ChangeMap,
    /// Frames replayed.
    pub(super) frames: u64,
}

fn io_err(path: &Path, what: &str, e: std::io::Error) -> StoreError {
    if e.kind() == std::io::ErrorKind::StorageFull {
        return StoreError::Full(format!("{what} {}: {e}", path.display()));
    }
    StoreError::Backend(format!("{what} {}: {e}", path.display()))
}

fn check(len: u32, seq: u64, payload: &[u8]) -> [u8; 8] {
    let mut h = Sha256::new();
    h.update(len.to_be_bytes());
    h.update(seq.to_be_bytes());
    h.update(payload);
    let d = h.finalize();
    let mut out = [0; 8];
    out.copy_from_slice(&d[..8]);
    out
}

/// The frame for `changes` with number `seq`.
fn encode(seq: u64, changes: &ChangeMap) -> Vec<u8> {
    let mut frame = Vec::with_capacity(FRAME_HEAD + changes.bytes() + 6 * changes.len());
    frame.resize(FRAME_HEAD, 0);
    for (k, v) in changes.iter() {
        // Keys are at most MAX_KEY_LEN (511) bytes and values fit LMDB's u32 sizes: checked
        // by the transaction's put.
        frame.extend_from_slice(&(k.len() as u16).to_be_bytes());
        frame.extend_from_slice(&v.map_or(DELETED, |v| v.len() as u32).to_be_bytes());
        frame.extend_from_slice(k);
        frame.extend_from_slice(v.unwrap_or_default());
    }
    let len = (frame.len() - FRAME_HEAD) as u32;
    let sum = check(len, seq, &frame[FRAME_HEAD..]);
    frame[..4].copy_from_slice(&len.to_be_bytes());
    frame[4..12].copy_from_slice(&seq.to_be_bytes());
    frame[12..20].copy_from_slice(&sum);
    frame
}

/// Adds a frame's changes to `into`; `false` when the payload is malformed.
fn decode(payload: &[u8], into: &mut ChangeMap) -> bool {
    let mut rest = payload;
    while !rest.is_empty() {
        let Some((head, tail)) = rest.split_at_checked(6) else {
            return false;
        };
        let klen = usize::from(u16::from_be_bytes([head[0], head[1]]));
        let vlen = u32::from_be_bytes([head[2], head[3], head[4], head[5]]);
        let Some((key, tail)) = tail.split_at_checked(klen) else {
            return false;
        };
        if vlen == DELETED {
            into.set(key, None);
            rest = tail;
        } else {
            let Some((value, tail)) = tail.split_at_checked(vlen as usize) else {
                return false;
            };
            into.set(key, Some(value));
            rest = tail;
        }
    }
    true
}

impl Wal {
    /// Opens (creating, with `capacity` bytes written as zeros so that later frames overwrite
    /// allocated blocks and a sync writes no file-system metadata) the log in `dir`, and reads
    /// back the frames after checkpoint `checkpointed`.
    pub(super) fn open(dir: &Path, capacity: u64, checkpointed: u64) -> Result<Opened, StoreError> {
        let path = dir.join(FILE_NAME);
        let fresh = std::fs::metadata(&path).map_or(true, |m| m.len() < HEADER);
        if fresh {
            // Written whole under another name, then renamed: a crash while creating the log
            // leaves no half-written log behind.
            let tmp = dir.join(format!("{FILE_NAME}.new"));
            let mut file =
                File::create(&tmp).map_err(|e| io_err(&tmp, "creating the write-ahead log", e))?;
            Self::create(&mut file, &tmp, capacity)?;
            std::fs::rename(&tmp, &path)
                .map_err(|e| io_err(&path, "creating the write-ahead log", e))?;
            if let Ok(d) = File::open(dir) {
                // Makes the new name durable; not possible on every platform.
                let _ = d.sync_all();
            }
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| io_err(&path, "opening the write-ahead log", e))?;
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.read_to_end(&mut bytes))
            .map_err(|e| io_err(&path, "reading the write-ahead log", e))?;
        if bytes.len() < HEADER as usize || &bytes[..12] != MAGIC {
            return Err(StoreError::Corrupt(format!(
                "{} is not a write-ahead log of this store; move it away only if the \
                 repository was closed cleanly",
                path.display()
            )));
        }
        let version = u32::from_be_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
        if version != VERSION {
            return Err(StoreError::Corrupt(format!(
                "{} has log version {version}; this build reads version {VERSION}",
                path.display()
            )));
        }
        let mut replay = ChangeMap::new();
        let mut at = HEADER as usize;
        let mut next = checkpointed + 1;
        let mut frames = 0;
        while let Some(head) = bytes.get(at..at + FRAME_HEAD) {
            let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
            let seq = u64::from_be_bytes(head[4..12].try_into().unwrap_or_default());
            let end = (at + FRAME_HEAD).saturating_add(len as usize);
            let Some(payload) = bytes.get(at + FRAME_HEAD..end) else {
                break;
            };
            if head[12..20] != check(len, seq, payload) {
                break;
            }
            if seq != next {
                if frames == 0 && seq > next {
                    return Err(StoreError::Corrupt(format!(
                        "{} starts at transaction {seq} but the data file holds transactions \
                         up to {checkpointed} only: frames are missing; restore the \
                         repository from a backup",
                        path.display()
                    )));
                }
                break;
            }
            if !decode(payload, &mut replay) {
                return Err(StoreError::Corrupt(format!(
                    "{}: frame {seq} passed its check but does not decode",
                    path.display()
                )));
            }
            frames += 1;
            next += 1;
            at = end;
        }
        let wal = Wal {
            file,
            path,
            offset: at as u64,
            capacity: capacity.max(HEADER),
            next_seq: next,
        };
        Ok(Opened {
            wal,
            replay,
            frames,
        })
    }

    fn create(file: &mut File, path: &Path, capacity: u64) -> Result<(), StoreError> {
        let mut header = [0u8; HEADER as usize];
        header[..12].copy_from_slice(MAGIC);
        header[12..].copy_from_slice(&VERSION.to_be_bytes());
        let zeros = vec![0u8; 1 << 20];
        let mut left = capacity;
        let result = file
            .seek(SeekFrom::Start(0))
            .and_then(|_| file.write_all(&header))
            .and_then(|_| {
                while left > 0 {
                    let n = left.min(zeros.len() as u64);
                    file.write_all(&zeros[..n as usize])?;
                    left -= n;
                }
                file.sync_all()
            });
        result.map_err(|e| io_err(path, "creating the write-ahead log", e))
    }

    /// Appends and syncs the frame of `changes`; `Ok(false)` when it does not fit before a
    /// checkpoint (nothing written). On error the frame's number is used up, so that what
    /// may have reached the disk of a failed frame is never replayed after the checkpoint the
    /// caller must make next.
    pub(super) fn append(&mut self, changes: &ChangeMap) -> Result<bool, StoreError> {
        let frame = encode(self.next_seq, changes);
        if self.offset - HEADER + frame.len() as u64 > self.capacity {
            return Ok(false);
        }
        self.next_seq += 1;
        (&self.file)
            .seek(SeekFrom::Start(self.offset))
            .and_then(|_| (&self.file).write_all(&frame))
            .and_then(|_| self.file.sync_data())
            .map_err(|e| io_err(&self.path, "appending to the write-ahead log", e))?;
        self.offset += frame.len() as u64;
        Ok(true)
    }

    /// The number of the last frame, which a checkpoint records in the data file.
    pub(super) fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Starts writing from the header again, after a checkpoint covering every frame.
    pub(super) fn reset(&mut self) {
        self.offset = HEADER;
    }

    /// Bytes of frames since the last checkpoint.
    #[cfg(test)]
    fn used(&self) -> u64 {
        self.offset - HEADER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(pairs: &[(&[u8], Option<&[u8]>)]) -> ChangeMap {
        let mut m = ChangeMap::new();
        for (k, v) in pairs {
            m.set(k, *v);
        }
        m
    }

    fn dump(m: &ChangeMap) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        m.iter()
            .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
            .collect()
    }

    #[test]
    fn frames_come_back_in_order_until_a_torn_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), 1 << 16, 0).unwrap().wal;
        assert!(
            wal.append(&changes(&[(b"a", Some(b"1")), (b"b", None)]))
                .unwrap()
        );
        assert!(wal.append(&changes(&[(b"a", Some(b"2"))])).unwrap());
        let end = wal.offset;
        assert!(wal.append(&changes(&[(b"c", Some(b"3"))])).unwrap());
        drop(wal);
        let opened = Wal::open(dir.path(), 1 << 16, 0).unwrap();
        assert_eq!(opened.frames, 3);
        assert_eq!(opened.wal.next_seq, 4);
        assert_eq!(
            dump(&opened.replay),
            vec![
                (b"a".to_vec(), Some(b"2".to_vec())),
                (b"b".to_vec(), None),
                (b"c".to_vec(), Some(b"3".to_vec()))
            ]
        );
        // Tear the last frame: one flipped byte of its payload.
        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[end as usize + FRAME_HEAD + 7] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let opened = Wal::open(dir.path(), 1 << 16, 0).unwrap();
        assert_eq!((opened.frames, opened.wal.offset), (2, end));
        // Checkpointed up to frame 2: only frame 3 would be replayed, and it is torn.
        let opened = Wal::open(dir.path(), 1 << 16, 2).unwrap();
        assert_eq!((opened.frames, opened.replay.len()), (0, 0));
    }

    #[test]
    fn stale_frames_after_a_reset_are_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), 1 << 16, 0).unwrap().wal;
        for i in 0..5u8 {
            assert!(
                wal.append(&changes(&[(&[b'k', i], Some(&[i; 40]))]))
                    .unwrap()
            );
        }
        wal.reset();
        assert!(wal.append(&changes(&[(b"new", Some(b"x"))])).unwrap());
        drop(wal);
        // The data file recorded frames 1..=5 as checkpointed; frame 6 follows; the rest of
        // the first epoch's frames (numbers 2..=5) lie after it and must be ignored.
        let opened = Wal::open(dir.path(), 1 << 16, 5).unwrap();
        assert_eq!(opened.frames, 1);
        assert_eq!(
            dump(&opened.replay),
            vec![(b"new".to_vec(), Some(b"x".to_vec()))]
        );
        // A data file that lost frames the log needs is reported, not silently skipped.
        let err = Wal::open(dir.path(), 1 << 16, 3).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    }

    #[test]
    fn a_frame_larger_than_the_room_left_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), 100, 0).unwrap().wal;
        assert!(!wal.append(&changes(&[(b"k", Some(&[0; 200]))])).unwrap());
        assert_eq!((wal.used(), wal.next_seq), (0, 1));
        assert!(wal.append(&changes(&[(b"k", Some(&[0; 20]))])).unwrap());
        assert_eq!(wal.next_seq, 2);
    }
}
