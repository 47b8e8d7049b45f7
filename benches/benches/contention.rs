//! Group `contention`: two publisher threads publish to one channel held by
//! a few subscribers, which another thread drains, with and without a
//! thread churning subscriptions on other channels
//! (`contention/publish_2threads/quiet` vs `.../with_churn`), and one
//! publisher alone for reference (`contention/publish_1thread/quiet`).
//!
//! One iteration is one publish: each timed run splits its `iters` publishes
//! between the publishers, released together by a barrier once every
//! thread is running, and the time reported is the wall time until every
//! publisher has finished, divided by `iters` by criterion, so lower is more publishes per
//! second across the publishers. The publish path takes only the registry's
//! read lock; every subscribe and unsubscribe of the churn thread takes its
//! write lock, so the gap between the two `publish_2threads` rows is what
//! the churn costs publishers.
//!
//! The subscribers use [`Policy::DropOldest`] with a large capacity and hold
//! one channel each, so they read the channel's shared ring: a publisher
//! writes each message once, never waits for the drainer, and the bench
//! cannot deadlock. The
//! churn thread loops over `subscribe`, `psubscribe`, `unsubscribe` and
//! `punsubscribe` of `churn:{k}` and `churn:{k}:*` for 1024 values of `k`;
//! none of those match the published channel, so deliveries stay the same.
//!
//! The drainer sleeps 100 µs whenever it finds nothing to take, so it takes
//! little CPU. This machine has 2 cores and `with_churn` runs three busy
//! threads, so that row also pays for sharing the cores, not only for the
//! lock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use tidings::{Broker, Options, Policy, Subscriber};
use tidings_benches::payload;

/// The published channel.
const CHANNEL: &str = "hot";

/// Subscribers of [`CHANNEL`].
const SUBSCRIBERS: usize = 4;

/// Capacity of each subscriber (of the ring they read).
const CAPACITY: usize = 4096;

/// Adds the `contention` group.
pub(crate) fn register(c: &mut Criterion) {
    let mut group = c.benchmark_group("contention");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    for (name, publishers, case, churn) in [
        ("publish_1thread", 1, "quiet", false),
        ("publish_2threads", 2, "quiet", false),
        ("publish_2threads", 2, "with_churn", true),
    ] {
        group.bench_function(BenchmarkId::new(name, case), |b| {
            b.iter_custom(|iters| run(iters, publishers, churn));
        });
    }
    group.finish();
}

/// Runs `iters` publishes split over `publishers` threads, with a drainer
/// and, if `churn`, a churn thread; returns the publishers' wall time.
fn run(iters: u64, publishers: u64, churn: bool) -> Duration {
    let broker: Broker<Arc<[u8]>> = Broker::new();
    let options = Options::new().capacity(CAPACITY).policy(Policy::DropOldest);
    let mut subs: Vec<Subscriber<Arc<[u8]>>> = (0..SUBSCRIBERS)
        .map(|_| {
            let mut sub = broker.subscriber_with(options).expect("a valid capacity");
            sub.subscribe(CHANNEL);
            sub
        })
        .collect();
    let payload = payload();
    let stop = AtomicBool::new(false);
    // The publishers and the timing thread.
    let start = Barrier::new(publishers as usize + 1);
    // The first `iters % publishers` publishers do one more.
    let shares = (0..publishers).map(|p| iters / publishers + u64::from(p < iters % publishers));

    thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let mut got = 0;
                for sub in &mut subs {
                    got += sub.try_iter().count();
                }
                if got == 0 {
                    // Leave the cores to the publishers; the rings hold
                    // far more than they can publish meanwhile.
                    thread::sleep(Duration::from_micros(100));
                }
            }
        });
        if churn {
            let mut churner = broker.subscriber();
            let stop = &stop;
            s.spawn(move || {
                let mut k = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let channel = format!("churn:{}", k % 1024);
                    let pattern = format!("churn:{}:*", k % 1024);
                    churner.subscribe(&channel);
                    churner.psubscribe(&pattern);
                    churner.unsubscribe(&channel);
                    churner.punsubscribe(&pattern);
                    k = k.wrapping_add(1);
                }
            });
        }
        let publishers: Vec<_> = shares
            .map(|share| {
                let broker = broker.clone();
                let payload = payload.clone();
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    for _ in 0..share {
                        std::hint::black_box(broker.publish(CHANNEL, payload.clone()));
                    }
                })
            })
            .collect();
        start.wait();
        let began = Instant::now();
        for publisher in publishers {
            publisher.join().expect("a publisher panicked");
        }
        let elapsed = began.elapsed();
        stop.store(true, Ordering::Relaxed);
        elapsed
    })
}
