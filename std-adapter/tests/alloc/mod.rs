//! A counting global allocator for test binaries that measure memory: it
//! records the bytes live, the allocations live by size (to say where bytes
//! go), and the largest single request. A binary installs
//! it with `#[global_allocator] static A: alloc::Counting = alloc::Counting;`
//! and holds a single test, so that nothing else allocates meanwhile.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

/// The system allocator, counting what passes through it.
pub struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);
/// Allocations live, by size in bytes; the last entry counts every larger
/// one.
static BY_SIZE: [AtomicIsize; SIZES + 1] = [const { AtomicIsize::new(0) }; SIZES + 1];
/// Sizes counted one by one in [`BY_SIZE`].
const SIZES: usize = 4096;

fn count(size: usize, n: isize) {
    BY_SIZE[size.min(SIZES)].fetch_add(n, Ordering::Relaxed);
}

fn signed(n: usize) -> isize {
    isize::try_from(n).unwrap_or(isize::MAX)
}

/// Bytes allocated and not yet freed.
pub fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// The allocations live now, by size: a snapshot to compare with
/// [`by_size_since`].
pub fn by_size() -> Vec<isize> {
    BY_SIZE.iter().map(|n| n.load(Ordering::Relaxed)).collect()
}

/// The allocations that became live since `before` (a [`by_size`]
/// snapshot), as `(size, count)` pairs by size, `size` `None` for those
/// larger than the sizes counted one by one.
pub fn by_size_since(before: &[isize]) -> Vec<(Option<usize>, isize)> {
    BY_SIZE
        .iter()
        .zip(before)
        .enumerate()
        .filter_map(|(size, (now, then))| {
            let n = now.load(Ordering::Relaxed) - then;
            (n != 0).then_some(((size < SIZES).then_some(size), n))
        })
        .collect()
}

/// The largest single allocation (or reallocation) asked for so far.
pub fn largest() -> usize {
    LARGEST.load(Ordering::Relaxed)
}

// SAFETY: every method forwards to `System` with the caller's arguments,
// so `System`'s guarantees hold; counting sizes has no effect on them.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(signed(layout.size()), Ordering::Relaxed);
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        count(layout.size(), 1);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(signed(layout.size()), Ordering::Relaxed);
        count(layout.size(), -1);
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(signed(new_size) - signed(layout.size()), Ordering::Relaxed);
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        count(layout.size(), -1);
        count(new_size, 1);
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
