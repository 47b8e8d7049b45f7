//! A spin lock for a subscriber's own queue.
//!
//! The queue's critical sections are a few dozen instructions (a push, a
//! pop, a flag), run no user code and never block, and every delivery takes
//! the lock twice: once to queue, once to receive. `std::sync::Mutex` makes
//! each of those two atomic read-modify-writes (its unlock is a swap, to learn
//! whether a thread sleeps on it); this lock's unlock is a plain release
//! store, which is what brings a delivery to a queue back to the cost of a
//! crossbeam channel's send and receive (the `fanout` bench's
//! `tidings_disconnect` column against `raw_crossbeam`).
//!
//! A thread that finds it taken spins briefly, then yields the CPU between
//! tries, so a holder that was preempted gets the CPU back. Nothing in a
//! critical section can panic (no user code, no fallible indexing; an
//! allocation failure aborts), so there is no poisoning to report; if a bug
//! ever panicked inside one, the guard still releases the lock on unwind.
//! Threads that must wait for a condition (a `Block` publisher waiting for
//! room) do not wait on this lock: they park, and the reader unparks them.

use crate::sync::{AtomicBool, Ordering};

#[cfg(tidings_loom)]
use loom::cell::UnsafeCell;
#[cfg(not(tidings_loom))]
use std::cell::UnsafeCell;

/// A value behind a spin lock.
pub(crate) struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY:
// 1. The value is reached only through a `Guard`, and a guard exists only
//    while `locked` is true and was set by this guard's `lock` (a successful
//    compare-and-swap from false): at most one guard exists at a time, so the
//    value is never accessed from two threads at once.
// 2. The Acquire swap that takes the lock synchronizes with the Release store
//    that released it, so each holder sees every write of the previous one.
// 3. Holding the lock on one thread and then another moves the value between
//    threads, which needs `T: Send` (as `Mutex<T>` does); nothing else is
//    shared.
#[allow(unsafe_code)]
unsafe impl<T: Send> Send for SpinLock<T> {}
// SAFETY: as for `Send`: a `&SpinLock<T>` only gives access through a guard.
#[allow(unsafe_code)]
unsafe impl<T: Send> Sync for SpinLock<T> {}

// Nothing in a critical section can panic (see the module docs), so a panic
// elsewhere can never leave the value half changed behind a released lock:
// observing it after an unwind is as safe as observing a `Mutex`'s.
impl<T> std::panic::RefUnwindSafe for SpinLock<T> {}
impl<T> std::panic::UnwindSafe for SpinLock<T> {}

/// Exclusive access to a [`SpinLock`]'s value; the lock is released when it
/// is dropped.
pub(crate) struct Guard<'a, T> {
    lock: &'a SpinLock<T>,
    #[cfg(tidings_loom)]
    ptr: Option<loom::cell::MutPtr<T>>,
}

impl<T> SpinLock<T> {
    pub(crate) fn new(value: T) -> Self {
        SpinLock {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Takes the lock, spinning (then yielding) while another thread holds
    /// it.
    #[inline]
    pub(crate) fn lock(&self) -> Guard<'_, T> {
        if self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        Guard {
            lock: self,
            #[cfg(tidings_loom)]
            ptr: Some(self.value.get_mut()),
        }
    }

    #[cold]
    fn lock_contended(&self) {
        let mut spins = 0u32;
        loop {
            while self.locked.load(Ordering::Relaxed) {
                spins = spins.saturating_add(1);
                if spins < 64 {
                    std::hint::spin_loop();
                } else {
                    crate::sync::yield_now();
                }
            }
            if self
                .locked
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }
}

impl<T> std::ops::Deref for Guard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        #[cfg(not(tidings_loom))]
        // SAFETY: this guard holds the lock (see the `Sync` impl), so no
        // other reference to the value exists while it lives.
        #[allow(unsafe_code)]
        unsafe {
            &*self.lock.value.get()
        }
        #[cfg(tidings_loom)]
        // SAFETY: as above; loom checks it.
        #[allow(unsafe_code)]
        unsafe {
            match &self.ptr {
                Some(p) => p.deref(),
                None => unreachable!("the pointer lives as long as the guard"),
            }
        }
    }
}

impl<T> std::ops::DerefMut for Guard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        #[cfg(not(tidings_loom))]
        // SAFETY: this guard holds the lock, and `&mut self` makes this the
        // only reference derived from it.
        #[allow(unsafe_code)]
        unsafe {
            &mut *self.lock.value.get()
        }
        #[cfg(tidings_loom)]
        // SAFETY: as above; loom checks it.
        #[allow(unsafe_code)]
        unsafe {
            match &self.ptr {
                Some(p) => p.deref(),
                None => unreachable!("the pointer lives as long as the guard"),
            }
        }
    }
}

impl<T> Drop for Guard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // Under loom, the access ends before the lock is released.
        #[cfg(tidings_loom)]
        drop(self.ptr.take());
        self.lock.locked.store(false, Ordering::Release);
    }
}

/// Two threads increment a counter behind the lock twice each: loom checks
/// every interleaving for a data race on the value, and that no increment
/// is lost.
#[cfg(all(test, tidings_loom))]
mod loom_tests {
    use super::*;
    use crate::sync::Arc;

    #[test]
    fn loom_spin_lock_excludes() {
        loom::model(|| {
            let lock = Arc::new(SpinLock::new(0u32));
            let other = {
                let lock = Arc::clone(&lock);
                loom::thread::spawn(move || {
                    for _ in 0..2 {
                        *lock.lock() += 1;
                    }
                })
            };
            for _ in 0..2 {
                *lock.lock() += 1;
            }
            other.join().unwrap();
            assert_eq!(*lock.lock(), 4);
        });
    }
}
