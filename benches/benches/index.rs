//! Group `index`: routing one publish through `Registry<u64>` (exact lookup,
//! then the pattern index) beside the peer `linear_scan`, Redis 7's strategy
//! of testing every pattern in turn (`index/<set>/tidings` vs
//! `index/<set>/linear_scan`).
//!
//! Both routers hold the same subscriptions, built by
//! [`tidings_benches::build_routers`]: one exact subscriber of the channel,
//! plus one subscriber per distinct pattern of the set (one set per shape
//! family, [`tidings_benches::index_sets`]: prefix, class- or `?`-led,
//! floating literal only, shared prefix with distinct suffixes, several
//! literals between stars, and all of them mixed), and both use tidings's
//! compiled matcher, so only the routing strategy differs.
//! The delivery callback counts deliveries and passes each subscriber through
//! `black_box`.
//!
//! `index/zero_patterns/tidings` is the same publish with no pattern held at
//! all (the channel keeps its exact subscriber): the floor that the index's
//! cost is compared to.
//!
//! The core keeps no route cache (the adapter keeps one), so every publish
//! here asks the index. `index/<set>/tidings_pattern_only` publishes to the
//! same channel with its exact subscriber gone; its floor is
//! `index/zero_patterns/tidings_pattern_only`, a publish to a channel nobody
//! holds.
//!
//! Group `unsubscribe`: dropping every subscriber of one channel that
//! 10,000 or 80,000 subscribers hold, one `unsubscribe` at a time in a
//! scrambled order (`unsubscribe/one_channel/010000`, `.../080000`). The
//! goal is linear: 8 times the subscribers may cost at most 10 times as
//! much. The registry is rebuilt outside the timed part of each iteration.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion};
use tidings_benches::{build_routers, index_sets, prefix_set};
use tidings_core::{Namespace, Registry};

/// Adds the `index` and `unsubscribe` groups.
pub(crate) fn register(c: &mut Criterion) {
    register_index(c);
    register_unsubscribe(c);
}

/// Adds the `index` group.
fn register_index(c: &mut Criterion) {
    let mut group = c.benchmark_group("index");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40);

    // The channel of the largest prefix case, with its exact subscriber only.
    let channel = prefix_set(100_000).channel.into_bytes();
    let mut empty: Registry<u64> = Registry::new();
    empty
        .subscribe(Namespace::Channel, 0, &channel, |_| {})
        .expect("far below the registry's capacity");
    assert_eq!(empty.publish(&channel, |_, _| {}), 1);
    group.bench_function(BenchmarkId::new("zero_patterns", "tidings"), |b| {
        b.iter(|| {
            black_box(&empty).publish(black_box(&channel), |s, p| {
                black_box((s, p));
            })
        });
    });

    let nobody: Registry<u64> = Registry::new();
    group.bench_function(
        BenchmarkId::new("zero_patterns", "tidings_pattern_only"),
        |b| {
            b.iter(|| {
                black_box(&nobody).publish(black_box(&channel), |s, p| {
                    black_box((s, p));
                })
            });
        },
    );

    for set in index_sets() {
        let (registry, scan) = build_routers(&set);
        let (mut pattern_only, _) = build_routers(&set);
        pattern_only.unsubscribe(Namespace::Channel, 0, set.channel.as_bytes(), |_| {});
        assert_eq!(
            pattern_only.publish(set.channel.as_bytes(), |_, _| {}),
            set.matching
        );
        let channel = set.channel.as_bytes();
        // Both must deliver the agreed number before either is timed.
        assert_eq!(
            registry.publish(channel, |_, _| {}),
            1 + set.matching,
            "tidings on {}",
            set.name
        );
        assert_eq!(
            scan.publish(channel, |_, _| {}),
            1 + set.matching,
            "linear scan on {}",
            set.name
        );

        group.bench_function(BenchmarkId::new(&set.name, "tidings"), |b| {
            b.iter(|| {
                black_box(&registry).publish(black_box(channel), |s, p| {
                    black_box((s, p));
                })
            });
        });
        group.bench_function(BenchmarkId::new(&set.name, "tidings_pattern_only"), |b| {
            b.iter(|| {
                black_box(&pattern_only).publish(black_box(channel), |s, p| {
                    black_box((s, p));
                })
            });
        });
        group.bench_function(BenchmarkId::new(&set.name, "linear_scan"), |b| {
            b.iter(|| {
                black_box(&scan).publish(black_box(channel), |s, p| {
                    black_box((s, p));
                })
            });
        });
    }
    group.finish();
}

/// Adds the `unsubscribe` group.
fn register_unsubscribe(c: &mut Criterion) {
    let mut group = c.benchmark_group("unsubscribe");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .sample_size(10);
    for n in [10_000u64, 80_000] {
        let build = || {
            let mut registry = Registry::new();
            for s in 0..n {
                let _ = registry.subscribe(Namespace::Channel, s, b"room", |_| {});
            }
            registry
        };
        group.bench_function(BenchmarkId::new("one_channel", format!("{n:06}")), |b| {
            b.iter_batched_ref(
                build,
                |registry| {
                    // 7919 is prime to both sizes: a scrambled order that
                    // removes from the front, the back and the middle.
                    for k in 0..n {
                        registry.unsubscribe(
                            Namespace::Channel,
                            black_box(k * 7919 % n),
                            b"room",
                            |_| {},
                        );
                    }
                    assert!(registry.is_empty());
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}
