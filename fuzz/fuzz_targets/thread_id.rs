//! Thread ids: the binary form and the multibase string form must never panic, and whatever
//! parses must round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use threads_protocol::id::ThreadId;

fuzz_target!(|data: &[u8]| {
    if let Ok(id) = ThreadId::from_bytes(data) {
        assert_eq!(id.as_bytes(), data, "a parsed id re-encodes to its input");
        let text = id.to_string();
        assert_eq!(text.parse::<ThreadId>().ok(), Some(id));
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(id) = text.parse::<ThreadId>()
    {
        assert_eq!(ThreadId::from_bytes(id.as_bytes()).ok(), Some(id));
    }
});
