//! Record verification and opening against a fixed thread, log and keys.
//!
//! The first input byte picks what the rest is (see `threads_fuzz::verify_mode`): a whole bundle,
//! or a piece the harness wraps into an otherwise valid (sealed and, where needed, signed) record
//! so that the fuzzer reaches the checks behind the AEAD and the signature.
#![no_main]

use libfuzzer_sys::fuzz_target;
use threads_fuzz::{context, verify_mode};
use threads_protocol::record::{self, RecordBundle};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let ctx = context();
    let bundle = match mode % verify_mode::COUNT {
        verify_mode::BUNDLE => match RecordBundle::decode(rest) {
            Ok(bundle) => bundle,
            Err(_) => return,
        },
        verify_mode::ENVELOPE_PLAINTEXT => RecordBundle {
            record: ctx.seal_envelope(rest),
            ..ctx.valid.clone()
        },
        verify_mode::EVENT => ctx.signed_record(
            rest.to_vec(),
            ctx.valid.header.clone(),
            ctx.valid.body.clone(),
        ),
        _ => {
            let header = ctx.seal_header(rest);
            let event = threads_protocol::record::wire::encode(
                &threads_protocol::record::wire::EventNode {
                    body: record::block_cid(&ctx.valid.body),
                    header: record::block_cid(&header),
                    version: record::FORMAT_VERSION,
                },
            );
            ctx.signed_record(event, header, ctx.valid.body.clone())
        }
    };
    let Ok(verified) = record::verify(bundle, &ctx.thread, &ctx.log, ctx.key.service()) else {
        return;
    };
    assert!(verified.counter().get() >= 1);
    assert!(verified.clock().0 >= verified.counter().get());
    assert_eq!(verified.prev().is_none(), verified.counter().get() == 1);
    if let Some(read) = ctx.key.read() {
        let _ = record::open(verified, read);
    }
});
