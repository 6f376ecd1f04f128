//! The one source of randomness of the protocol core.
//!
//! Every random choice (keys, nonces, thread ids, timer jitter) is drawn from a [`ProtocolRng`]
//! that the driver seeds: the daemon from the operating system, the simulator and the tests from
//! a fixed seed. Same seed and same inputs give the same outputs, bit for bit.

pub use rand_core::{CryptoRng, Rng, SeedableRng};

/// The RNG the engine owns: ChaCha20, seeded by the driver.
pub type ProtocolRng = rand_chacha::ChaCha20Rng;

/// An RNG seeded from a 64-bit number, for tests, vectors and the simulator.
pub fn seeded(seed: u64) -> ProtocolRng {
    ProtocolRng::seed_from_u64(seed)
}
