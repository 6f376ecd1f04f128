//! Log ids (libp2p peer ids): multihash bytes and base58btc strings.
#![no_main]

use libfuzzer_sys::fuzz_target;
use threads_protocol::log_id::LogId;

fuzz_target!(|data: &[u8]| {
    if let Ok(id) = LogId::from_bytes(data) {
        assert_eq!(
            &id.as_bytes()[..],
            data,
            "a parsed id re-encodes to its input"
        );
        assert_eq!(id.to_string().parse::<LogId>().ok(), Some(id));
        assert_eq!(LogId::from_public_key(&id.public_key()), id);
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(id) = text.parse::<LogId>()
    {
        assert_eq!(LogId::from_bytes(id.as_bytes()).ok(), Some(id));
    }
});
