//! What a subscription costs in memory: builds a `tidings_core::Registry<u64>`
//! holding 1,000,000 subscriptions in several layouts, under a global
//! allocator that counts live requested bytes, and prints the bytes per
//! subscription beyond the bytes of the names themselves.
//!
//! ```text
//! cargo run --release -p tidings-benches --example memory
//! ```
//!
//! # What is counted
//!
//! "Live bytes" is the sum of the sizes requested from the allocator and not
//! yet freed (`Layout::size`, so the allocator's own per-block overhead, often
//! 8–16 B, is not included; the number of live blocks is printed so it can be
//! estimated). It is read just before `Registry::new()` and again once every
//! subscription is made; names are formatted into one reused buffer, so the
//! difference is the registry's alone.
//!
//! "Name bytes" is the length of every distinct name held, counted once: the
//! least any registry must store to know its names. The registry stores each
//! distinct name once, in an `Arc<[u8]>` shared by its map key, the
//! subscribers' own sets and (for patterns) the compiled pattern; the 16-byte
//! `Arc` header and everything else count as overhead. So
//!
//! ```text
//! bytes per subscription = (live bytes - baseline - name bytes) / subscriptions
//! ```
//!
//! Then every subscription is undone one by one with `unsubscribe` in its
//! namespace, and the live bytes still held by the (now empty) registry
//! are printed; the build and teardown run twice, to show that churn does not
//! grow memory. Finally the registry is dropped, which must return exactly to
//! the baseline.
//!
//! # Layouts, 1,000,000 subscriptions each
//!
//! - `shared`: 10,000 subscribers × 100 names from a pool of 100,000, so
//!   every name has 10 subscribers.
//! - `distinct`: 10,000 subscribers × 100 names of their own (1,000,000
//!   names, one subscriber each).
//! - `one_each`: 1,000,000 subscribers holding one name of their own: the
//!   worst case, as every subscriber pays its own bookkeeping.
//!
//! Each layout is run with exact channels `ch:{i}` and with patterns `p{i}:*`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use tidings_core::{Namespace, Registry};

/// The system allocator, counting what is live.
struct Counting;

/// Bytes requested and not yet freed.
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
/// Blocks allocated and not yet freed.
static LIVE_BLOCKS: AtomicUsize = AtomicUsize::new(0);

// SAFETY:
// 1. Every method forwards its arguments unchanged to `System` and returns
//    what `System` returned, so each upholds `GlobalAlloc`'s contract exactly
//    as `System` does; the callers' obligations are passed on as they are.
// 2. The counters are only read for reporting and never influence what is
//    returned; they are updated only when `System` succeeded.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see 1 above.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
            LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see 1 above.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(layout.size(), Ordering::Relaxed);
            LIVE_BLOCKS.fetch_add(1, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: see 1 above.
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        LIVE_BLOCKS.fetch_sub(1, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: see 1 above.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE_BYTES.fetch_add(new_size, Ordering::Relaxed);
            LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Live bytes and live blocks right now.
fn live() -> (usize, usize) {
    (
        LIVE_BYTES.load(Ordering::Relaxed),
        LIVE_BLOCKS.load(Ordering::Relaxed),
    )
}

/// Subscriptions per run.
const SUBSCRIPTIONS: usize = 1_000_000;

/// Exact channels or patterns.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Exact,
    Pattern,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Exact => "exact",
            Kind::Pattern => "pattern",
        }
    }

    /// Writes name number `i` into `buf` (cleared first).
    fn name(self, i: usize, buf: &mut String) {
        buf.clear();
        let _ = match self {
            Kind::Exact => write!(buf, "ch:{i}"),
            Kind::Pattern => write!(buf, "p{i}:*"),
        };
    }

    /// The goal, in bytes per subscription beyond the name bytes.
    fn goal(self) -> usize {
        match self {
            Kind::Exact => 100,
            Kind::Pattern => 200,
        }
    }

    fn namespace(self) -> Namespace {
        match self {
            Kind::Exact => Namespace::Channel,
            Kind::Pattern => Namespace::Pattern,
        }
    }

    fn subscribe(self, registry: &mut Registry<u64>, subscriber: u64, name: &[u8]) {
        registry
            .subscribe(self.namespace(), subscriber, name, |_| {})
            .expect("far below the registry's capacity");
    }

    fn unsubscribe(self, registry: &mut Registry<u64>, subscriber: u64, name: &[u8]) {
        registry.unsubscribe(self.namespace(), subscriber, name, |_| {});
    }
}

/// How the 1,000,000 subscriptions are spread.
#[derive(Clone, Copy)]
struct Spread {
    label: &'static str,
    subscribers: usize,
    per_subscriber: usize,
    /// Distinct names in use.
    names: usize,
}

impl Spread {
    /// The name index of subscriber `s`'s `j`th subscription.
    fn name_of(self, s: usize, j: usize) -> usize {
        let k = s * self.per_subscriber + j;
        if self.names == SUBSCRIPTIONS {
            k
        } else {
            // 7919 is prime to the pool size, so each subscriber's names are
            // distinct and scattered, and every name gets the same share.
            k * 7919 % self.names
        }
    }
}

const SPREADS: [Spread; 3] = [
    Spread {
        label: "shared",
        subscribers: 10_000,
        per_subscriber: 100,
        names: 100_000,
    },
    Spread {
        label: "distinct",
        subscribers: 10_000,
        per_subscriber: 100,
        names: SUBSCRIPTIONS,
    },
    Spread {
        label: "one_each",
        subscribers: SUBSCRIPTIONS,
        per_subscriber: 1,
        names: SUBSCRIPTIONS,
    },
];

/// One measured layout.
struct Row {
    kind: Kind,
    spread: Spread,
    name_bytes: usize,
    held_bytes: usize,
    held_blocks: usize,
    /// Live bytes above the baseline after each teardown, the registry alive.
    residual: [isize; 2],
    /// Live bytes above the baseline once the registry is dropped.
    dropped: isize,
    seconds: f64,
}

impl Row {
    fn per_subscription(&self) -> f64 {
        (self.held_bytes - self.name_bytes) as f64 / SUBSCRIPTIONS as f64
    }
}

fn measure(kind: Kind, spread: Spread) -> Row {
    let began = Instant::now();
    let mut buf = String::with_capacity(32);
    let name_bytes: usize = (0..spread.names)
        .map(|i| {
            kind.name(i, &mut buf);
            buf.len()
        })
        .sum();

    let (base_bytes, base_blocks) = live();
    let mut registry: Registry<u64> = Registry::new();
    let mut held = (0, 0);
    let mut residual = [0; 2];
    for (cycle, residual) in residual.iter_mut().enumerate() {
        for s in 0..spread.subscribers {
            for j in 0..spread.per_subscriber {
                kind.name(spread.name_of(s, j), &mut buf);
                kind.subscribe(&mut registry, s as u64, buf.as_bytes());
            }
        }
        let (bytes, blocks) = live();
        if cycle == 0 {
            held = (bytes - base_bytes, blocks - base_blocks);
            let subscriptions: usize = (0..spread.names)
                .map(|i| {
                    kind.name(i, &mut buf);
                    registry.numsub(kind.namespace(), buf.as_bytes())
                })
                .sum();
            assert_eq!(subscriptions, SUBSCRIPTIONS);
            assert_eq!(registry.names(kind.namespace(), None).count(), spread.names);
        }
        for s in 0..spread.subscribers {
            for j in 0..spread.per_subscriber {
                kind.name(spread.name_of(s, j), &mut buf);
                kind.unsubscribe(&mut registry, s as u64, buf.as_bytes());
            }
        }
        assert!(registry.is_empty());
        *residual = live().0 as isize - base_bytes as isize;
    }
    drop(registry);
    Row {
        kind,
        spread,
        name_bytes,
        held_bytes: held.0,
        held_blocks: held.1,
        residual,
        dropped: live().0 as isize - base_bytes as isize,
        seconds: began.elapsed().as_secs_f64(),
    }
}

fn main() {
    println!(
        "tidings_core::Registry<u64>, {SUBSCRIPTIONS} subscriptions per layout (live requested bytes)\n"
    );
    println!(
        "| kind | layout | subscribers × names each | distinct names | name bytes (subtracted) \
         | registry bytes | blocks / sub | B / sub beyond names | goal | after unsubscribing all (1st, 2nd cycle) | after drop |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|");
    let mut all_met = true;
    for kind in [Kind::Exact, Kind::Pattern] {
        for spread in SPREADS {
            let row = measure(kind, spread);
            let per = row.per_subscription();
            let met = per <= row.kind.goal() as f64;
            all_met &= met;
            println!(
                "| {} | {} | {} × {} | {} | {} | {} | {:.2} | {:.1} | ≤ {} {} | {} B, {} B | {} B |",
                row.kind.label(),
                row.spread.label,
                row.spread.subscribers,
                row.spread.per_subscriber,
                row.spread.names,
                row.name_bytes,
                row.held_bytes,
                row.held_blocks as f64 / SUBSCRIPTIONS as f64,
                per,
                row.kind.goal(),
                if met { "met" } else { "MISSED" },
                row.residual[0],
                row.residual[1],
                row.dropped,
            );
            eprintln!(
                "  ({} {} took {:.1} s)",
                row.kind.label(),
                row.spread.label,
                row.seconds
            );
        }
    }
    println!(
        "\n{}",
        if all_met {
            "every layout meets its goal"
        } else {
            "at least one layout misses its goal"
        }
    );
}
