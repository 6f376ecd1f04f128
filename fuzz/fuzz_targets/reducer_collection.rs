//! Collection configurations from other writers (schemas, index specs, validator and read
//! filter sources): any JSON that decodes as a configuration must be accepted or rejected by
//! the fold without panicking, and an instance written afterwards must fold too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use threads_fuzz::reducer::fold_collection;

fuzz_target!(|data: &[u8]| {
    fold_collection(data);
});
