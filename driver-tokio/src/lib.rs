//! threads-driver-tokio
