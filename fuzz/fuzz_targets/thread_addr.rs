//! Thread multiaddrs: binary and text forms.
#![no_main]

use libfuzzer_sys::fuzz_target;
use threads_protocol::addr::ThreadAddr;

fuzz_target!(|data: &[u8]| {
    if let Ok(addr) = ThreadAddr::from_bytes(data) {
        let _ = addr.peer();
        assert_eq!(
            ThreadAddr::from_bytes(&addr.to_bytes()).ok(),
            Some(addr.clone())
        );
        let _ = addr.to_string().parse::<ThreadAddr>();
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(addr) = text.parse::<ThreadAddr>()
    {
        let _ = addr.peer();
        assert_eq!(ThreadAddr::from_bytes(&addr.to_bytes()).ok(), Some(addr));
    }
});
