//! tidings: embeddable in-process publish/subscribe with Redis semantics.
#![forbid(unsafe_code)]

pub use tidings_core as core;
pub use tidings_core::glob;
