//! Thread keys: 32/64-byte binary form and multibase string form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use threads_protocol::key::ThreadKey;

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = ThreadKey::from_bytes(data) {
        assert_eq!(key.to_bytes(), data, "a parsed key re-encodes to its input");
        assert!(key.to_string().parse::<ThreadKey>().ok() == Some(key));
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(key) = text.parse::<ThreadKey>()
    {
        assert!(ThreadKey::from_bytes(&key.to_bytes()).ok() == Some(key));
    }
});
