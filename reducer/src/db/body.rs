//! The envelope of a record body: a batch's JSON as it is, or that JSON compressed in one zstd
//! frame (`spec/documents.md` §1.1).
//!
//! The encrypted record is the largest thing a document costs on disk and on the wire, and the
//! JSON of a batch of similar documents (the same member names, ids sharing their time prefix)
//! shrinks several times under zstd. Readers take both forms: JSON text never starts with the
//! frame's magic number, so the first four bytes tell them apart.

use std::borrow::Cow;
use std::cell::RefCell;

use zstd::zstd_safe::{self, CCtx, DCtx};

use super::event::{BatchError, MAX_BATCH_LEN};

/// The first four bytes of a zstd frame (RFC 8878 §3.1.1), little-endian 0xFD2FB528.
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// JSON shorter than this is written as it is: a small batch gains a few bytes at most, and
/// every reader would pay for the decompression.
pub const COMPRESS_MIN_LEN: usize = 1024;

/// The zstd level writers use: its fastest regular level. On the `documents` benchmark's
/// 1,000-instance batches it is both faster and smaller than zstd's default level 3 (14.1
/// against 17.5 KB per record, from ~205 KB of JSON), and encoding (JSON and compression)
/// fell from 0.23 to 0.19 of an insert's time. Readers accept any level.
pub const COMPRESSION_LEVEL: i32 = 1;

thread_local! {
    // Contexts are reused: creating one allocates its tables (~100 KiB to decompress, more
    // to compress), which would cost more than decompressing a small body.
    static COMPRESSOR: RefCell<Option<CCtx<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<DCtx<'static>>> = const { RefCell::new(None) };
}

/// The record body for a batch's `json`: the JSON itself when it is shorter than
/// [`COMPRESS_MIN_LEN`] or does not shrink, else one zstd frame declaring its content size.
pub fn seal(json: Vec<u8>) -> Vec<u8> {
    if json.len() < COMPRESS_MIN_LEN {
        return json;
    }
    let mut out = Vec::with_capacity(zstd_safe::compress_bound(json.len()));
    let written = COMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let cctx = cell.get_or_insert_with(CCtx::create);
        cctx.compress(&mut out, &json, COMPRESSION_LEVEL)
    });
    match written {
        Ok(n) if n < json.len() => out,
        // Out of memory inside zstd or nothing gained: the plain JSON is a valid body too.
        _ => json,
    }
}

/// The JSON of a record body: the body itself, or the content of its zstd frame. A frame must
/// declare its content size, at most [`MAX_BATCH_LEN`] bytes, and hold exactly that much
/// (anything else is refused before any memory is spent on it).
pub fn open(body: &[u8]) -> Result<Cow<'_, [u8]>, BatchError> {
    if !body.starts_with(&ZSTD_MAGIC) {
        return Ok(Cow::Borrowed(body));
    }
    let declared = match zstd_safe::get_frame_content_size(body) {
        Ok(Some(n)) => n,
        Ok(None) => {
            return Err(BatchError::Malformed(
                "compressed body: the zstd frame does not declare its content size".into(),
            ));
        }
        Err(_) => {
            return Err(BatchError::Malformed(
                "compressed body: the zstd frame header is invalid".into(),
            ));
        }
    };
    let len = usize::try_from(declared).unwrap_or(usize::MAX);
    if len > MAX_BATCH_LEN {
        return Err(BatchError::TooLarge { len });
    }
    let mut out = Vec::with_capacity(len);
    let result = DECOMPRESSOR.with(|cell| {
        let mut cell = cell.borrow_mut();
        let dctx = cell.get_or_insert_with(DCtx::create);
        dctx.decompress(&mut out, body)
    });
    match result {
        Ok(n) if n == len => Ok(Cow::Owned(out)),
        Ok(n) => Err(BatchError::Malformed(format!(
            "compressed body: the zstd frame declares {len} bytes but holds {n}"
        ))),
        Err(code) => Err(BatchError::Malformed(format!(
            "compressed body: {}",
            zstd_safe::get_error_name(code)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_of(n: usize) -> Vec<u8> {
        let events: Vec<String> = (0..n)
            .map(|i| {
                format!(r#"{{"type":"delete","collection":"people","id":"01jdq5x2k8{i:016}"}}"#)
            })
            .collect();
        format!(r#"{{"v":1,"events":[{}]}}"#, events.join(",")).into_bytes()
    }

    #[test]
    fn small_bodies_stay_json_and_large_ones_shrink_and_come_back() {
        let small = json_of(2);
        assert!(small.len() < COMPRESS_MIN_LEN);
        assert_eq!(seal(small.clone()), small);
        let large = json_of(200);
        let sealed = seal(large.clone());
        assert!(sealed.starts_with(&ZSTD_MAGIC));
        assert!(
            sealed.len() * 4 < large.len(),
            "{} of {}",
            sealed.len(),
            large.len()
        );
        assert_eq!(open(&sealed).unwrap().as_ref(), &large[..]);
        assert!(matches!(open(&large), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn bad_frames_are_refused_with_a_reason() {
        let sealed = seal(json_of(200));
        // Cut short: the content is missing.
        let cut = open(&sealed[..sealed.len() / 2]).unwrap_err().to_string();
        assert!(cut.starts_with("malformed batch: compressed body"), "{cut}");
        // A magic number and nothing else.
        let bare = open(&ZSTD_MAGIC).unwrap_err().to_string();
        assert!(bare.contains("header is invalid"), "{bare}");
        // A frame declaring more than the body limit is refused before decompressing.
        let huge = vec![b' '; MAX_BATCH_LEN + 1];
        let mut cctx = CCtx::create();
        let mut frame = Vec::with_capacity(zstd_safe::compress_bound(huge.len()));
        cctx.compress(&mut frame, &huge, 1).unwrap();
        assert!(frame.len() < 1024);
        assert_eq!(
            open(&frame),
            Err(BatchError::TooLarge {
                len: MAX_BATCH_LEN + 1
            })
        );
        // A frame without its size (streamed) is refused.
        let mut streamed = Vec::new();
        {
            use std::io::Write;
            let mut enc = zstd::stream::write::Encoder::new(&mut streamed, 1).unwrap();
            enc.write_all(&json_of(50)).unwrap();
            enc.finish().unwrap();
        }
        let unsized_err = open(&streamed).unwrap_err().to_string();
        assert!(
            unsized_err.contains("declare its content size"),
            "{unsized_err}"
        );
    }
}
