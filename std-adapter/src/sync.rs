//! The atomics and `Arc` of the lock-free parts (the shared ring and the
//! message's reference count), from `std`, or from loom when the crate is
//! built with `--cfg tidings_loom` to model-check them (`tests` in `crate::log`).

#[cfg(not(tidings_loom))]
pub(crate) use std::sync::Arc;
#[cfg(not(tidings_loom))]
pub(crate) use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering, fence};

#[cfg(tidings_loom)]
pub(crate) use loom::sync::Arc;
#[cfg(tidings_loom)]
pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering, fence};

#[cfg(not(tidings_loom))]
pub(crate) use std::sync::atomic::AtomicBool;
#[cfg(not(tidings_loom))]
pub(crate) use std::thread::yield_now;

#[cfg(tidings_loom)]
pub(crate) use loom::sync::atomic::AtomicBool;
#[cfg(tidings_loom)]
pub(crate) use loom::thread::yield_now;
