//! Peer messages: whatever bytes a peer sends, the engine must not panic. The first input byte
//! picks the mode: raw bytes as a whole message, or the rest as a payload that the harness
//! frames with a valid membership proof, so fuzzing reaches the handlers behind the proof check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use threads_protocol::engine::{AcceptAll, Config, Host, NewThread, Output, Time, message};
use threads_protocol::identity::PrivateKey;
use threads_protocol::rng::seeded;
use threads_protocol::store::memory::MemoryStore;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let config = Config {
        max_message_len: 1 << 16,
        ..Config::default()
    };
    let mut host = Host::open(config, MemoryStore::new(), AcceptAll, seeded(1), None, Time(0))
        .expect("a host opens on an empty store");
    let info = host
        .create_thread(Time(0), NewThread::default())
        .expect("a thread is created");
    host.create_record(Time(0), &info.id, None, b"existing record", 0)
        .expect("a record is written");
    while host.poll_output().is_some() {}
    let peer = PrivateKey::from_seed([7; 32]).public().peer_id();
    let bytes = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        // A payload under a valid proof: the raw payload bytes become the frame's payload.
        let proof = message::proof(info.key.service(), &peer, host.peer_id(), rest);
        serde_ipld_dagcbor::to_vec(&message::Frame {
            payload: rest.to_vec(),
            proof: proof.to_vec(),
            version: message::PROTOCOL_VERSION,
        })
        .expect("a frame encodes")
    };
    host.handle_message(Time(1), &peer, &bytes);
    host.handle_timeout(Time(100_000));
    while let Some(out) = host.poll_output() {
        if let Output::Transmit { bytes, .. } = out {
            assert!(bytes.len() <= 8 << 20, "replies stay within the message limit");
        }
    }
});
