//! Timing code at several depths of the stack.
//!
//! curve25519-dalek's AVX2 multiply, most of an Ed25519 check, runs up to ~19 % slower at some
//! stack addresses than at others (on this 2-core AMD VM: the same record check took 44.7 µs at
//! some depths and 53.3 µs at others). A signature check timed at one depth therefore measures
//! where address-space randomisation put the stack as much as the code. Benchmarks that compare
//! against a bare check time it (and what they compare) at [`POSITIONS`] depths spread across a
//! 4 KiB page.

use std::hint::black_box;

/// Depths a figure is timed at.
pub const POSITIONS: usize = 16;

/// Bytes of padding per frame of [`at_depth`]: 16 frames of a bit over 256 bytes span a page.
const PAD: usize = 256;

/// Runs `f` `depth` frames below the caller, each frame holding `PAD` (256) bytes.
#[inline(never)]
pub fn at_depth(depth: usize, f: &mut dyn FnMut()) {
    let pad = [0u8; PAD];
    black_box(&pad);
    if depth == 0 {
        f()
    } else {
        at_depth(depth - 1, f)
    }
    black_box(&pad);
}
