//! The atomics and `Arc` of the lock-free parts (the shared ring and the
//! message's reference count), from `std`, or from loom when the crate is
//! built with `--cfg loom` to model-check them (`tests` in `crate::log`).

#[cfg(not(loom))]
pub(crate) use std::sync::Arc;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering, fence};

#[cfg(loom)]
pub(crate) use loom::sync::Arc;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering, fence};
