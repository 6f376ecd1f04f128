//! The write-ahead log of [`LmdbStore`](super::LmdbStore): a file of fixed size in the
//! environment's folder (`threads.wal`) split into two halves, written in turns. While frames
//! go to one half, the changes of the other half's frames are written into LMDB by a
//! background checkpoint; a half is written from its start again only after that checkpoint
//! committed.
//!
//! Layout (spec/storage.md §4.3): a 16-byte header (`threads-wal\0`, version `u32` BE), then
//! two halves of frames, the second starting at the middle of what follows the header. Each
//! frame is `len: u32 BE ‖ seq: u64 BE ‖ check: 8 bytes ‖ payload` where `check` is the first
//! 8 bytes of SHA-256 over `len ‖ seq ‖ payload` and the payload is the transaction's changes
//! in the order it made them, each `key_len: u16 BE ‖ value_len: u32 BE (u32::MAX: deleted) ‖
//! key ‖ value` (a key changed twice is there twice, the later change winning). Sequence numbers grow by one per frame for the life of the repository; the last one
//! applied to LMDB is stored in LMDB with the data it covers. So after a crash the frames to
//! replay are those numbered past the checkpoint in the two runs that start at each half's
//! start, each run ending at the first frame that is torn (its check fails) or stale (its
//! number does not follow); together they must count up from the checkpoint's number plus one.
//! Version 1 (one area from the header on) is read the same way and rewritten as version 2.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use threads_protocol::store::StoreError;
use threads_protocol::store::memory::ChangeMap;

/// The log's file name in the environment folder.
pub(super) const FILE_NAME: &str = "threads.wal";
const MAGIC: &[u8; 12] = b"threads-wal\0";
const VERSION: u32 = 2;
/// Versions this build reads (1: one area; its frames are found by the same reader).
const READS: [u32; 2] = [1, 2];
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
    /// Where the next frame goes.
    offset: u64,
    /// The half frames are appended to: 0 from the header to [`Self::middle`], 1 from there to
    /// [`Self::end`].
    half: u8,
    middle: u64,
    end: u64,
    /// The other half holds frames whose changes may not be in LMDB yet: it cannot be
    /// written until a checkpoint covers them.
    pub(super) other_live: bool,
    /// The number of the first frame written in the current half.
    half_first: u64,
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

/// A frame to fill with [`push_change`] and finish with [`Wal::seal`]: room for its head.
pub(super) fn new_frame() -> Vec<u8> {
    vec![0; FRAME_HEAD]
}

/// Adds one change to a frame's payload. A transaction adds its changes in the order it makes
/// them, so that checkpoints can write them into LMDB in that order (a key changed twice is
/// there twice; the later change wins).
pub(super) fn push_change(frame: &mut Vec<u8>, key: &[u8], value: Option<&[u8]>) {
    // Keys are at most MAX_KEY_LEN (511) bytes and values fit LMDB's u32 sizes: checked by
    // the transaction's put.
    frame.extend_from_slice(&(key.len() as u16).to_be_bytes());
    frame.extend_from_slice(&value.map_or(DELETED, |v| v.len() as u32).to_be_bytes());
    frame.extend_from_slice(key);
    frame.extend_from_slice(value.unwrap_or_default());
}

/// Fills in the head of `frame` (from [`new_frame`]) for number `seq`.
fn seal(seq: u64, frame: &mut [u8]) {
    let len = (frame.len() - FRAME_HEAD) as u32;
    let sum = check(len, seq, &frame[FRAME_HEAD..]);
    frame[..4].copy_from_slice(&len.to_be_bytes());
    frame[4..12].copy_from_slice(&seq.to_be_bytes());
    frame[12..20].copy_from_slice(&sum);
}

/// The frame for `changes` (in key order) with number `seq`.
#[cfg(test)]
fn encode(seq: u64, changes: &ChangeMap) -> Vec<u8> {
    let mut frame = new_frame();
    for (k, v) in changes.iter() {
        push_change(&mut frame, k, v);
    }
    seal(seq, &mut frame);
    frame
}

/// Adds a frame's changes to `into`; `false` when the payload is malformed.
fn decode(payload: &[u8], into: &mut ChangeMap) -> bool {
    each_change(payload, &mut |k, v| into.set(k, v))
}

/// What receives a frame's changes: a key and its new value (`None`: deleted).
pub(super) type OnChange<'a> = dyn FnMut(&[u8], Option<&[u8]>) + 'a;

/// Calls `f` with each of a frame's changes, in order; `false` when the payload is malformed.
fn each_change(payload: &[u8], f: &mut OnChange<'_>) -> bool {
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
            f(key, None);
            rest = tail;
        } else {
            let Some((value, tail)) = tail.split_at_checked(vlen as usize) else {
                return false;
            };
            f(key, Some(value));
            rest = tail;
        }
    }
    true
}

/// A frame found in the file: where it starts and ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Found {
    start: usize,
    end: usize,
}

/// The frames from `at` on whose checks pass and whose numbers count up by one, by number.
fn run(bytes: &[u8], mut at: usize, into: &mut BTreeMap<u64, Found>) {
    let mut last: Option<u64> = None;
    while let Some(head) = bytes.get(at..at + FRAME_HEAD) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let seq = u64::from_be_bytes(head[4..12].try_into().unwrap_or_default());
        let end = (at + FRAME_HEAD).saturating_add(len as usize);
        let Some(payload) = bytes.get(at + FRAME_HEAD..end) else {
            break;
        };
        if head[12..20] != check(len, seq, payload)
            || last.is_some_and(|l| l.checked_add(1) != Some(seq))
        {
            break;
        }
        into.insert(seq, Found { start: at, end });
        last = Some(seq);
        at = end;
    }
}

impl Wal {
    /// Opens (creating, with `capacity` bytes written as zeros so that later frames overwrite
    /// allocated blocks and a sync writes no file-system metadata) the log in `dir`, and reads
    /// back the frames after checkpoint `checkpointed`. An existing log keeps the size it was
    /// created with.
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
        if !READS.contains(&version) {
            return Err(StoreError::Corrupt(format!(
                "{} has log version {version}; this build reads versions 1 and {VERSION}",
                path.display()
            )));
        }
        let end = bytes.len() as u64;
        let middle = HEADER + (end - HEADER) / 2;
        // Both halves' runs, merged by number. A frame of the first half's run that reaches
        // the middle (a version 1 log, or a half filled to its last byte) is found again by
        // the second half's run at the same place.
        let mut found = BTreeMap::new();
        run(&bytes, HEADER as usize, &mut found);
        run(&bytes, middle as usize, &mut found);
        let mut replay = ChangeMap::new();
        let mut next = checkpointed + 1;
        let mut frames = 0;
        let mut at = None;
        for (&seq, &f) in found.range(next..) {
            if seq != next {
                return Err(StoreError::Corrupt(format!(
                    "{}: {}: frames are missing; restore the repository from a backup",
                    path.display(),
                    if frames == 0 {
                        format!(
                            "the log starts at transaction {seq} but the data file holds \
                             transactions up to {checkpointed} only"
                        )
                    } else {
                        format!("transaction {seq} follows transaction {}", next - 1)
                    }
                )));
            }
            if !decode(&bytes[f.start + FRAME_HEAD..f.end], &mut replay) {
                return Err(StoreError::Corrupt(format!(
                    "{}: frame {seq} passed its check but does not decode",
                    path.display()
                )));
            }
            frames += 1;
            next += 1;
            at = Some(f);
        }
        if version != VERSION {
            // The reader above finds version 1's frames; an older build must not read the
            // halves written from now on.
            (&file)
                .seek(SeekFrom::Start(12))
                .and_then(|_| (&file).write_all(&VERSION.to_be_bytes()))
                .and_then(|_| file.sync_data())
                .map_err(|e| io_err(&path, "upgrading the write-ahead log", e))?;
        }
        let (offset, half) = match at {
            None => (HEADER, 0),
            Some(f) => (f.end as u64, u8::from(f.start as u64 >= middle)),
        };
        let wal = Wal {
            file,
            path,
            offset,
            half,
            middle,
            end,
            // Where the replayed frames lie matters no more: the next time a half fills up,
            // one checkpoint covers them all.
            other_live: frames > 0,
            half_first: next,
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

    /// Numbers `frame` (from [`new_frame`], its changes pushed) to be the next one written.
    pub(super) fn seal(&self, frame: &mut [u8]) {
        seal(self.next_seq, frame);
    }

    /// Whether `frame` fits in what is left of the current half.
    pub(super) fn fits(&self, frame: &[u8]) -> bool {
        let limit = if self.half == 0 {
            self.middle
        } else {
            self.end
        };
        self.offset.saturating_add(frame.len() as u64) <= limit
    }

    /// Whether `frame` fits in an empty half.
    pub(super) fn fits_a_half(&self, frame: &[u8]) -> bool {
        frame.len() as u64 <= (self.middle - HEADER).min(self.end - self.middle)
    }

    /// Writes and syncs `frame` (sealed by [`Self::seal`], checked with [`Self::fits`]). On error
    /// the frame's number is used up, so that what may have reached the disk of a failed
    /// frame is never replayed after the checkpoint the caller must make next.
    pub(super) fn write(&mut self, frame: &[u8]) -> Result<(), StoreError> {
        self.next_seq += 1;
        (&self.file)
            .seek(SeekFrom::Start(self.offset))
            .and_then(|_| (&self.file).write_all(frame))
            .and_then(|_| self.file.sync_data())
            .map_err(|e| io_err(&self.path, "appending to the write-ahead log", e))?;
        self.offset += frame.len() as u64;
        Ok(())
    }

    /// Moves on to the other half (free: see [`Self::other_live`]); the half left holds frames
    /// that a checkpoint must cover before it is written again.
    pub(super) fn switch(&mut self) {
        self.half ^= 1;
        self.offset = self.half_start();
        self.other_live = true;
        self.half_first = self.next_seq;
    }

    fn half_start(&self) -> u64 {
        if self.half == 0 { HEADER } else { self.middle }
    }

    /// Where the current half's frames are, to read them again in the order they were
    /// written ([`read_frames`]).
    pub(super) fn current_frames(&self) -> Frames {
        Frames {
            path: self.path.clone(),
            start: self.half_start(),
            end: self.offset,
            first: self.half_first,
            last: self.last_seq(),
        }
    }

    /// The number of the last frame, which a checkpoint records in the data file.
    pub(super) fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Starts writing from the header again, after a checkpoint covering every frame.
    pub(super) fn reset(&mut self) {
        self.offset = HEADER;
        self.half = 0;
        self.other_live = false;
        self.half_first = self.next_seq;
    }

    /// Appends `changes` when they fit in the current half.
    #[cfg(test)]
    fn append(&mut self, changes: &ChangeMap) -> Result<bool, StoreError> {
        let frame = encode(self.next_seq, changes);
        if !self.fits(&frame) {
            return Ok(false);
        }
        self.write(&frame).map(|()| true)
    }

    /// Bytes of frames in the current half.
    #[cfg(test)]
    fn used(&self) -> u64 {
        self.offset - self.half_start()
    }
}

/// The frames of one half: bytes `start..end` of the log at `path`, numbered `first..=last`.
#[derive(Debug, Clone)]
pub(super) struct Frames {
    path: PathBuf,
    start: u64,
    end: u64,
    first: u64,
    last: u64,
}

impl Frames {
    /// The number of the last frame.
    pub(super) fn last(&self) -> u64 {
        self.last
    }
}

/// Reads `frames` from the file again and calls `f` with their changes in the order they were
/// made; nothing when any of them is not found intact (an I/O error, a torn or missing frame),
/// then `false`. Background checkpoints write changes into LMDB in this order, which fills its
/// pages as well as committing each transaction into LMDB did; all of a half's changes in key
/// order left them a third emptier at 1M documents (spec/storage.md §4.3).
pub(super) fn read_frames(frames: &Frames, f: &mut OnChange<'_>) -> bool {
    let Ok(len) = usize::try_from(frames.end.saturating_sub(frames.start)) else {
        return false;
    };
    let mut bytes = vec![0; len];
    let read = File::open(&frames.path).and_then(|mut file| {
        file.seek(SeekFrom::Start(frames.start))?;
        file.read_exact(&mut bytes)
    });
    if read.is_err() {
        return false;
    }
    let mut payloads = Vec::new();
    let mut at = 0;
    for seq in frames.first..=frames.last {
        let Some(head) = bytes.get(at..at + FRAME_HEAD) else {
            return false;
        };
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let end = (at + FRAME_HEAD).saturating_add(len as usize);
        let Some(payload) = bytes.get(at + FRAME_HEAD..end) else {
            return false;
        };
        if head[4..12] != seq.to_be_bytes() || head[12..20] != check(len, seq, payload) {
            return false;
        }
        payloads.push(payload);
        at = end;
    }
    if at != bytes.len() || !payloads.iter().all(|p| each_change(p, &mut |_, _| ())) {
        return false;
    }
    for payload in payloads {
        each_change(payload, f);
    }
    true
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

    /// Fills the current half with one-key frames; returns their keys.
    fn fill_half(wal: &mut Wal, tag: u8) -> Vec<Vec<u8>> {
        let mut keys = Vec::new();
        for i in 0u8.. {
            let key = vec![tag, i];
            if !wal.append(&changes(&[(&key, Some(&[i; 30]))])).unwrap() {
                break;
            }
            keys.push(key);
        }
        keys
    }

    #[test]
    fn both_halves_are_read_back_in_number_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), 1000, 0).unwrap().wal;
        let first = fill_half(&mut wal, b'a');
        let k = wal.last_seq();
        wal.switch();
        let second = fill_half(&mut wal, b'b');
        let m = wal.last_seq();
        assert!(!first.is_empty() && !second.is_empty());
        assert_eq!(m, (first.len() + second.len()) as u64);
        drop(wal);
        // Nothing checkpointed: both halves, the first half's frames first.
        let opened = Wal::open(dir.path(), 1000, 0).unwrap();
        assert_eq!(opened.frames, m);
        assert_eq!(opened.replay.len(), first.len() + second.len());
        assert_eq!((opened.wal.half, opened.wal.next_seq), (1, m + 1));
        assert!(opened.wal.other_live);
        // The first half checkpointed (a background checkpoint committed): the second only.
        let mut opened = Wal::open(dir.path(), 1000, k).unwrap();
        assert_eq!(opened.frames, m - k);
        assert!(opened.replay.get(&first[0]).is_none());
        assert!(opened.replay.get(&second[0]).is_some());
        // Round the ring: the second half checkpointed too, frames in the first half again;
        // its stale frames of the first round (numbers up to k) are not read back.
        opened.wal.other_live = false;
        opened.wal.switch();
        assert!(
            opened
                .wal
                .append(&changes(&[(b"c", Some(b"new"))]))
                .unwrap()
        );
        drop(opened);
        let opened = Wal::open(dir.path(), 1000, m).unwrap();
        assert_eq!(opened.frames, 1);
        assert_eq!(
            dump(&opened.replay),
            vec![(b"c".to_vec(), Some(b"new".to_vec()))]
        );
        // With the second half not yet checkpointed: its frames, then the first half's.
        let opened = Wal::open(dir.path(), 1000, k).unwrap();
        assert_eq!(opened.frames, m - k + 1);
        assert_eq!((opened.wal.half, opened.wal.next_seq), (0, m + 2));
        assert_eq!(opened.replay.get(b"c"), Some(Some(&b"new"[..])));
    }

    #[test]
    fn a_gap_between_the_halves_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), 1000, 0).unwrap().wal;
        fill_half(&mut wal, b'a');
        wal.switch();
        let start = wal.offset as usize;
        fill_half(&mut wal, b'b');
        drop(wal);
        // The second half's first frame torn: its run is empty, nothing is missing.
        let path = dir.path().join(FILE_NAME);
        let good = std::fs::read(&path).unwrap();
        let mut bytes = good.clone();
        bytes[start + FRAME_HEAD] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(Wal::open(dir.path(), 1000, 0).is_ok());
        // The first half's last frame torn while the second half's frames follow it: the
        // frames in between are lost, which is reported, not skipped.
        let mut bytes = good;
        let last_a = {
            let mut found = BTreeMap::new();
            run(&bytes, HEADER as usize, &mut found);
            found.values().last().unwrap().start
        };
        bytes[last_a + FRAME_HEAD] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let err = Wal::open(dir.path(), 1000, 0).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    }

    #[test]
    fn a_version_1_log_is_read_back_and_upgraded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        drop(Wal::open(dir.path(), 400, 0).unwrap());
        // Version 1 wrote frames from the header on, across the middle.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[12..16].copy_from_slice(&1u32.to_be_bytes());
        let mut at = HEADER as usize;
        for seq in 1..=5u64 {
            let frame = encode(seq, &changes(&[(&[b'v', seq as u8], Some(&[7; 40]))]));
            bytes[at..at + frame.len()].copy_from_slice(&frame);
            at += frame.len();
        }
        assert!(at as u64 > HEADER + 200, "the frames cross the middle");
        std::fs::write(&path, &bytes).unwrap();
        let opened = Wal::open(dir.path(), 400, 0).unwrap();
        assert_eq!((opened.frames, opened.wal.next_seq), (5, 6));
        assert_eq!(opened.wal.offset, at as u64);
        // Frames go on after them; the halves are used only after a checkpoint of them all.
        assert!(opened.wal.other_live);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes[12..16], VERSION.to_be_bytes());
        let opened = Wal::open(dir.path(), 400, 0).unwrap();
        assert_eq!(opened.frames, 5);
    }

    #[test]
    fn a_half_is_read_again_in_commit_order_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), 1000, 0).unwrap().wal;
        assert!(
            wal.append(&changes(&[(b"b", Some(b"1")), (b"c", Some(b"1"))]))
                .unwrap()
        );
        assert!(
            wal.append(&changes(&[(b"a", Some(b"2")), (b"b", None)]))
                .unwrap()
        );
        let frames = wal.current_frames();
        let mut seen = Vec::new();
        assert!(read_frames(&frames, &mut |k, v| seen
            .push((k.to_vec(), v.map(<[u8]>::to_vec)))));
        let p = |k: &[u8], v: Option<&[u8]>| (k.to_vec(), v.map(<[u8]>::to_vec));
        assert_eq!(
            seen,
            vec![
                p(b"b", Some(b"1")),
                p(b"c", Some(b"1")),
                p(b"a", Some(b"2")),
                p(b"b", None)
            ]
        );
        // The second half's frames are numbered on from there.
        wal.switch();
        assert!(wal.append(&changes(&[(b"d", Some(b"3"))])).unwrap());
        let mut seen = Vec::new();
        assert!(read_frames(&wal.current_frames(), &mut |k, _| seen.push(k.to_vec())));
        assert_eq!(seen, vec![b"d".to_vec()]);
        // A damaged frame: nothing is handed out.
        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[HEADER as usize + FRAME_HEAD + 2] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let mut calls = 0;
        assert!(!read_frames(&frames, &mut |_, _| calls += 1));
        assert_eq!(calls, 0);
    }
}
