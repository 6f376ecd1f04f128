//! threads-sim
