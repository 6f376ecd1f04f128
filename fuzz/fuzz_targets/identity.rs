//! Identities: public and private libp2p key protobufs and their multibase strings; a parsed
//! public key also gets a signature check over the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use threads_protocol::identity::{PrivateKey, PublicKey};

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = PublicKey::from_protobuf(data) {
        assert_eq!(&key.to_protobuf()[..], data, "public framing is strict");
        assert_eq!(key.to_string().parse::<PublicKey>().ok(), Some(key));
        // Arbitrary signatures over arbitrary messages must be refused without panicking.
        let (msg, sig) = data.split_at(data.len() / 2);
        let _ = key.verify(msg, sig);
    }
    if let Ok(key) = PrivateKey::from_protobuf(data) {
        let again = PrivateKey::from_protobuf(&key.to_protobuf()).ok();
        assert!(again == Some(key.clone()), "private keys round-trip");
        let sig = key.sign(data);
        assert!(key.public().verify(data, &sig).is_ok());
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(key) = text.parse::<PublicKey>() {
            assert_eq!(PublicKey::from_protobuf(&key.to_protobuf()).ok(), Some(key));
        }
        if let Ok(key) = text.parse::<PrivateKey>() {
            assert!(key.to_string().parse::<PrivateKey>().ok() == Some(key));
        }
    }
});
