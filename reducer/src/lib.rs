//! threads-reducer
