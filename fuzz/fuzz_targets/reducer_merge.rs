//! JSON merge patches (RFC 7386) of saves: applying any patch to any document must not panic,
//! and the patch computed between two documents without nulls must turn the first into the
//! second.
#![no_main]

use libfuzzer_sys::fuzz_target;
use threads_fuzz::reducer::merge_round_trip;

fuzz_target!(|data: &[u8]| {
    merge_round_trip(data);
});
