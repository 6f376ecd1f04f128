//! Record bundles: `RecordBundle::decode` must never panic, and what decodes is canonical.
#![no_main]

use libfuzzer_sys::fuzz_target;
use threads_protocol::record::RecordBundle;

fuzz_target!(|data: &[u8]| {
    if let Ok(bundle) = RecordBundle::decode(data) {
        assert_eq!(bundle.encode(), data, "only the canonical encoding decodes");
        let _ = bundle.cid();
    }
});
