//! Link proof that `tidings-core` needs neither std nor an OS.
//!
//! This `#![no_std]` staticlib defines its own `#[panic_handler]` and
//! `#[global_allocator]`, and exports C functions that call into
//! `tidings_core` (glob, slot, and a `Registry` with route values and a
//! change callback), so the core, its generic registry code and its
//! dependencies (hashbrown's default hasher among them) are compiled and
//! linked in. If std ever reaches
//! `tidings-core`, std's panic handler is linked as well and the build fails
//! with "duplicate lang item in crate `std`: `panic_impl`".
//!
//! Run it with
//! `cargo build --release --locked --manifest-path .ci/nostd-check/Cargo.toml`.
#![no_std]

extern crate alloc;

use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::panic::PanicInfo;
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};
use tidings_core::glob::{self, Pattern};
use tidings_core::registry::{Namespace, Registry};
use tidings_core::slot;

/// Bytes the bump allocator can hand out in total.
const HEAP_SIZE: usize = 64 * 1024;

/// A bump allocator over a static array. It never frees: enough to prove
/// that the core links against any `#[global_allocator]`.
struct Bump {
    /// The memory handed out; bytes below `next` belong to past allocations.
    heap: UnsafeCell<[u8; HEAP_SIZE]>,
    /// Offset in `heap` of the first byte never handed out. Only grows.
    next: AtomicUsize,
}

// SAFETY:
// 1. `heap` is only reached through `alloc`, which hands each caller a byte
//    range that no other call ever receives: ranges are claimed by a
//    compare-exchange on `next`, which only grows. So sharing `Bump` between
//    threads never lets two of them touch the same bytes through it.
unsafe impl Sync for Bump {}

// SAFETY:
// 1. `alloc` returns either null or a pointer to `layout.size()` bytes inside
//    `heap`, aligned to `layout.align()`, that no other allocation overlaps
//    (see the `Sync` impl above), as `GlobalAlloc` requires.
// 2. `dealloc` does nothing, which is allowed: memory is simply never reused.
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let base = self.heap.get().cast::<u8>();
        let mut next = self.next.load(Ordering::Relaxed);
        loop {
            // Align the address, not the offset: the array itself is only
            // byte-aligned.
            let Some(start) = base
                .addr()
                .checked_add(next)
                .and_then(|addr| addr.checked_next_multiple_of(layout.align()))
                .map(|addr| addr - base.addr())
            else {
                return ptr::null_mut();
            };
            let end = match start.checked_add(layout.size()) {
                Some(end) if end <= HEAP_SIZE => end,
                _ => return ptr::null_mut(),
            };
            match self
                .next
                .compare_exchange_weak(next, end, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return base.wrapping_add(start),
                Err(current) => next = current,
            }
        }
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

#[global_allocator]
static ALLOCATOR: Bump = Bump {
    heap: UnsafeCell::new([0; HEAP_SIZE]),
    next: AtomicUsize::new(0),
};

#[panic_handler]
fn panic(_info: &PanicInfo<'_>) -> ! {
    loop {
        core::hint::spin_loop();
    }
}

/// Builds the channel `news.<n>`, matches it against two patterns and returns
/// its hash slot in the high bits and the two match results in the low two.
///
/// It allocates (a `Vec` and a compiled [`Pattern`]) so that the allocator is
/// exercised, and calls both `tidings_core::glob` and `tidings_core::slot`.
#[unsafe(no_mangle)]
pub extern "C" fn tidings_nostd_check(n: u32) -> u32 {
    let mut channel = Vec::new();
    channel.extend_from_slice(b"news.");
    channel.extend_from_slice(&n.to_le_bytes());
    let compiled = Pattern::new(b"news.*").matches(&channel);
    let free = glob::matches(b"*[\x00-\x7f]", &channel);
    (u32::from(slot::key_hash_slot(&channel)) << 2) | (u32::from(compiled) << 1) | u32::from(free)
}

/// Subscribes subscriber 1 to the channel `news.<n>` and subscriber 2 to the
/// pattern `news.*` in a `Registry` whose route values are the names'
/// lengths, publishes to the channel and removes both subscribers. Returns
/// the deliveries (2) in bits 8 and up, the routes created (2) in bits 4–7
/// and the routes freed (2) in bits 0–3; a subscribe refused for capacity
/// (never, at this size) gives `u32::MAX`.
#[unsafe(no_mangle)]
pub extern "C" fn tidings_nostd_registry(n: u32) -> u32 {
    let mut registry: Registry<u32, usize> = Registry::with_routes(|_, name| name.len());
    let mut channel = Vec::new();
    channel.extend_from_slice(b"news.");
    channel.extend_from_slice(&n.to_le_bytes());
    let (mut created, mut freed) = (0u32, 0u32);
    let mut count = |c: tidings_core::Change<'_, usize>| {
        if c.first_or_last && *c.route > 0 {
            if c.joined {
                created += 1;
            } else {
                freed += 1;
            }
        }
    };
    let subscribed = registry
        .subscribe(Namespace::Channel, 1, &channel, &mut count)
        .and_then(|_| registry.subscribe(Namespace::Pattern, 2, b"news.*", &mut count));
    if subscribed.is_err() {
        return u32::MAX;
    }
    let delivered = registry.publish(&channel, |_, _| {}) as u32;
    registry.remove_subscriber(1, &mut count);
    registry.remove_subscriber(2, &mut count);
    (delivered << 8) | ((created & 0xf) << 4) | (freed & 0xf)
}
