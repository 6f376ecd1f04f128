//! Record bodies from other writers: whatever bytes a body holds, decoding it as a batch and
//! folding it into a small database (a collection with a schema, a unique index, a validator
//! and a read filter, and a few instances) must not panic. The first input byte chooses
//! between the bytes as a whole body and the rest as JSON events wrapped into a valid batch,
//! so that fuzzing reaches the fold behind the decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use threads_fuzz::reducer::{fold_body, json_batch};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let body = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        match json_batch(rest) {
            Some(body) => body,
            None => return,
        }
    };
    fold_body(&body);
});
