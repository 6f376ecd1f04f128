//! threads-benches
