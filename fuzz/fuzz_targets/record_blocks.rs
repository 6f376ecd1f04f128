//! The decoders of the individual record blocks. The first input byte picks the decoder (see
//! `threads_fuzz::blocks`); whatever decodes must be canonical, i.e. re-encode to the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use threads_fuzz::{blocks, context};
use threads_protocol::record::wire::{
    BundleNode, EventNode, HeaderNode, SignedRecordNode, UnsignedRecordNode,
};
use threads_protocol::record::{BlockKind, MAX_BODY_BLOCK_LEN, MAX_META_BLOCK_LEN, seal, wire};

/// Decodes the bytes as the given node type; if that works, the re-encoding must be the input.
macro_rules! check {
    ($ty:ty, $kind:expr, $bytes:expr, $max:expr) => {{
        let bytes: &[u8] = $bytes;
        let decoded: Option<$ty> = wire::decode($kind, bytes, $max).ok();
        if let Some(value) = &decoded {
            assert_eq!(
                wire::encode(value),
                bytes,
                "a decoded {} node is canonical",
                $kind
            );
        }
        decoded
    }};
}

fn sealed(kind: BlockKind, bytes: &[u8], max: usize) {
    if let Ok(node) = seal::parse(kind, bytes, max) {
        assert_eq!(
            wire::encode(&node),
            bytes,
            "a parsed sealed block is canonical"
        );
        let ctx = context();
        let key = match kind {
            BlockKind::Record => *ctx.key.service().as_bytes(),
            _ => *ctx
                .key
                .read()
                .expect("the fuzz key has a read key")
                .as_bytes(),
        };
        let _ = seal::open(kind, &key, &node);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % blocks::COUNT {
        blocks::SEALED_RECORD => sealed(BlockKind::Record, rest, MAX_META_BLOCK_LEN),
        blocks::SEALED_HEADER => sealed(BlockKind::Header, rest, MAX_META_BLOCK_LEN),
        blocks::SEALED_BODY => sealed(BlockKind::Body, rest, MAX_BODY_BLOCK_LEN),
        blocks::EVENT => {
            check!(EventNode, BlockKind::Event, rest, MAX_META_BLOCK_LEN);
        }
        blocks::HEADER => {
            check!(HeaderNode, BlockKind::Header, rest, MAX_META_BLOCK_LEN);
        }
        blocks::SIGNED_RECORD => {
            if let Some(node) = check!(
                SignedRecordNode,
                BlockKind::Record,
                rest,
                MAX_META_BLOCK_LEN
            ) {
                let _ = wire::encode(&node.unsigned());
            }
        }
        blocks::UNSIGNED_RECORD => {
            check!(
                UnsignedRecordNode,
                BlockKind::Record,
                rest,
                MAX_META_BLOCK_LEN
            );
        }
        _ => {
            check!(BundleNode, BlockKind::Bundle, rest, usize::MAX);
        }
    }
});
