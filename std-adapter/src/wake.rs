//! Waking async receivers (feature `async`).
//!
//! Crossbeam channels block threads, not tasks. An async receiver that finds
//! its queue empty registers its task's waker here and raises `waiting`; a
//! publisher that queues a message (or a queue that closes) checks `waiting`
//! and wakes the task. Sync receivers never raise `waiting`, so for them the
//! cost of the feature is one load per delivery.
//!
//! Ordering argument: the receiver stores `waiting` (SeqCst), issues a SeqCst
//! fence, then tries the queue again; the publisher's enqueue is a SeqCst
//! read-modify-write inside crossbeam, followed by a SeqCst load of
//! `waiting`. If that load sees `false`, the receiver's store comes later in
//! the single SeqCst order, so its second try sees the message. Either the
//! receiver finds the message or the publisher wakes it: no lost wake-up.

use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::task::Waker;

use atomic_waker::AtomicWaker;

#[derive(Default)]
pub(crate) struct Wake {
    waiting: AtomicBool,
    waker: AtomicWaker,
}

impl Wake {
    /// Publisher side: wake the receiver's task if it waits.
    #[inline]
    pub(crate) fn notify(&self) {
        if self.waiting.load(Ordering::SeqCst) {
            self.waker.wake();
        }
    }

    /// Receiver side, before trying the queue a second time.
    pub(crate) fn register(&self, waker: &Waker) {
        self.waker.register(waker);
        self.waiting.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }
}

// `AtomicWaker` holds its waker in an `UnsafeCell` behind its own lock, so a
// panic elsewhere cannot leave it half-updated: the cell is consistent at
// every unwind point, as for `Mutex`.
impl std::panic::RefUnwindSafe for Wake {}
impl std::panic::UnwindSafe for Wake {}
