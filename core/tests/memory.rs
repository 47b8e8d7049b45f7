//! Memory follows what is held: after everything is unsubscribed, the
//! registry gives its tables back; and a compiled pattern holds at most 3
//! bytes per pattern byte, whatever its shape. Measured with a counting
//! allocator; the tests take one lock, so that nothing else allocates while
//! one measures.
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use tidings_core::{Namespace, Pattern, PatternIndex, Registry};

/// Counts the bytes currently allocated through it.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
/// Allocations made, ever.
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

/// Held by each test while it measures.
static MEASURING: Mutex<()> = Mutex::new(());

// SAFETY:
// 1. Every method forwards to `System` with the caller's own arguments, so
//    `System`'s guarantees are the caller's.
// 2. The counter is only arithmetic beside the forwarded call; it never
//    touches the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        ALLOCS.fetch_add(1, Ordering::Relaxed);
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
    let _measuring = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
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

/// `unit` repeated to 1 MiB.
fn mebibyte_of(unit: &[u8]) -> Vec<u8> {
    unit.iter().copied().cycle().take(1 << 20).collect()
}

/// Live bytes held by what `build` returns, and the value itself.
fn held_by<T>(build: impl FnOnce() -> T) -> (usize, T) {
    let before = LIVE.load(Ordering::Relaxed);
    let value = build();
    (LIVE.load(Ordering::Relaxed) - before, value)
}

/// A 1 MiB pattern of each shape, compiled, holds at most 3 bytes per
/// pattern byte (its source included); so does an index holding it. And
/// matching it against a 1 MiB channel, or publishing that channel through
/// the index, allocates nothing.
#[test]
fn a_pattern_holds_at_most_three_bytes_per_byte() {
    let _measuring = MEASURING.lock().unwrap_or_else(|e| e.into_inner());
    let shapes: [(&str, &[u8]); 8] = [
        ("a* repeated", b"a*"),
        ("?a repeated", b"?a"),
        ("[ab] repeated", b"[ab]"),
        ("*ab repeated", b"*ab"),
        ("a literal", b"abcdefghijklmnopqrstuvwxyz"),
        ("an escaped literal", b"\\a"),
        ("[^a-c]? repeated", b"[^a-c]?"),
        ("mixed", b"ab?[cd]*e\\*"),
    ];
    let channel = mebibyte_of(b"ab");
    for (name, unit) in shapes {
        let source = mebibyte_of(unit);
        let (bytes, pattern) = held_by(|| Pattern::new(&source));
        let per_byte = bytes as f64 / source.len() as f64;
        assert!(
            per_byte <= 3.0,
            "{name}: {per_byte:.2} bytes per pattern byte"
        );

        let allocs = ALLOCS.load(Ordering::Relaxed);
        let (matched, steps) = pattern.matches_counting_steps(&channel);
        let _ = pattern.matches(&source);
        assert_eq!(
            ALLOCS.load(Ordering::Relaxed),
            allocs,
            "{name}: matching allocated"
        );
        let bound = 4 * (source.len() as u64 + 1) * (channel.len() as u64 + 1);
        assert!(steps <= bound, "{name}: {steps} steps");
        drop(pattern);

        let (bytes, index) = held_by(|| {
            let mut index = PatternIndex::new();
            index.insert(&source, ());
            index.insert(b"ab*", ());
            index
        });
        let per_byte = bytes as f64 / source.len() as f64;
        assert!(
            per_byte <= 3.0,
            "{name}: the index holds {per_byte:.2} bytes per pattern byte"
        );
        let allocs = ALLOCS.load(Ordering::Relaxed);
        let mut hits = 0;
        index.for_each_match(&channel, |_, _| hits += 1);
        assert_eq!(
            ALLOCS.load(Ordering::Relaxed),
            allocs,
            "{name}: publishing allocated"
        );
        assert_eq!(hits, 1 + usize::from(matched), "{name}");
    }
}
