//! Memory follows what is held: after everything is unsubscribed, the
//! registry gives its tables back. Measured with a counting allocator; this
//! file holds a single test so that nothing else allocates meanwhile.
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use tidings_core::{Namespace, Registry};

/// Counts the bytes currently allocated through it.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY:
// 1. Every method forwards to `System` with the caller's own arguments, so
//    `System`'s guarantees are the caller's.
// 2. The counter is only arithmetic beside the forwarded call; it never
//    touches the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged (point 1 above).
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged (point 1 above).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn unsubscribing_everything_gives_the_memory_back() {
    let mut registry: Registry<u64> = Registry::new();
    let baseline = LIVE.load(Ordering::Relaxed);
    for round in 0..2 {
        for s in 0..200u64 {
            for c in 0..250u64 {
                let name = format!("ch:{}", (s * 250 + c) % 20_000);
                registry
                    .subscribe(Namespace::Channel, s, name.as_bytes(), |_| {})
                    .unwrap();
            }
            let (pattern, shard) = (format!("p{s}:*"), format!("shard:{s}"));
            registry
                .subscribe(Namespace::Pattern, s, pattern.as_bytes(), |_| {})
                .unwrap();
            registry
                .subscribe(Namespace::Shard, s, shard.as_bytes(), |_| {})
                .unwrap();
        }
        let full = LIVE.load(Ordering::Relaxed) - baseline;
        assert!(
            full > 1 << 20,
            "round {round}: the registry holds {full} bytes"
        );
        for s in 0..200u64 {
            if s % 2 == 0 {
                registry.remove_subscriber(s, |_| {});
            } else {
                for namespace in Namespace::ALL {
                    registry.unsubscribe_all(namespace, s, |_| {});
                }
            }
        }
        assert!(registry.is_empty());
        let left = LIVE.load(Ordering::Relaxed) - baseline;
        // Emptied tables shrink: what stays is a few small tables, not the
        // megabytes that held 50,000 subscriptions.
        assert!(
            left < 16 * 1024,
            "round {round}: {left} bytes left of {full}"
        );
    }
}
