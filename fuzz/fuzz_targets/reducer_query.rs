//! Client queries: go-threads query JSON, Mongo filters and envelopes. Parsing any bytes and
//! running what parses over a few instances (with and without an index) must not panic, and
//! the index must not change the answer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use threads_fuzz::reducer::run_query;

fuzz_target!(|data: &[u8]| {
    run_query(data);
});
