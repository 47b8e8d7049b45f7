//! Group `fanout`: one publish to N subscribers of one channel, end to end:
//! publish, then drain every queue, on the bench thread, so one iteration
//! costs routing plus N enqueues plus N dequeues. Beside tidings
//! (`fanout/subscribers_<N>/tidings`) sit two peers moving the same 16-byte
//! `Arc<[u8]>` payload ([`tidings_benches::payload`]):
//!
//! - `raw_crossbeam`, the floor: N crossbeam bounded channels, the payload
//!   cloned and sent to each by hand, then each drained; no routing, no
//!   channel name, no policy.
//! - `tokio_broadcast`: `tokio::sync::broadcast` with N receivers, which
//!   writes each message once into a shared ring; one send, then `try_recv`
//!   on each receiver.
//!
//! The `tidings_large_queue` column is tidings with a 32,768-message queue
//! per subscriber, which grows with its backlog instead of being allocated
//! whole.
//!
//! Every queue holds 64 messages (or 32,768) and is drained each iteration, so none ever
//! fills and every overflow policy takes the same path; the subscribers use
//! the default policy. `fanout/no_subscribers/tidings` publishes to a channel
//! nobody holds, in a broker where one other subscriber holds another
//! channel: the cost of routing to nobody.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use tidings::{Broker, Subscriber};
use tidings_benches::payload;

/// Every queue's capacity, in messages.
const CAPACITY: usize = 64;

/// The capacity of the `tidings_large_queue` column: Redis's pub/sub client
/// limit counted in messages. A queue this large is not allocated up front
/// but grows with its backlog (`Options::capacity`), which costs a length
/// check per delivery and a block allocation per 31 messages.
const LARGE: usize = 32 * 1024;

/// The channel every subscriber holds.
const CHANNEL: &str = "fanout";

/// Adds the `fanout` group.
pub(crate) fn register(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(40);
    let payload = payload();

    {
        let broker: Broker<Arc<[u8]>> = Broker::builder().capacity(CAPACITY).build();
        let mut other = broker.subscriber();
        other.subscribe("elsewhere");
        assert_eq!(broker.publish(CHANNEL, payload.clone()), 0);
        group.bench_function(BenchmarkId::new("no_subscribers", "tidings"), |b| {
            b.iter(|| black_box(&broker).publish(black_box(CHANNEL), payload.clone()));
        });
    }

    for n in [1, 10, 100, 1000] {
        let name = format!("subscribers_{n:04}");

        for (column, capacity) in [("tidings", CAPACITY), ("tidings_large_queue", LARGE)] {
            let broker: Broker<Arc<[u8]>> = Broker::builder().capacity(capacity).build();
            let mut subs: Vec<Subscriber<Arc<[u8]>>> = (0..n)
                .map(|_| {
                    let mut sub = broker.subscriber();
                    sub.subscribe(CHANNEL);
                    sub
                })
                .collect();
            assert_eq!(broker.publish(CHANNEL, payload.clone()), n);
            for sub in &mut subs {
                assert!(sub.try_recv().is_ok());
            }
            group.bench_function(BenchmarkId::new(&name, column), |b| {
                b.iter(|| {
                    let sent = broker.publish(black_box(CHANNEL), payload.clone());
                    for sub in &mut subs {
                        black_box(sub.try_recv().ok());
                    }
                    sent
                });
            });
        }

        let (txs, rxs): (Vec<_>, Vec<_>) = (0..n)
            .map(|_| crossbeam_channel::bounded::<Arc<[u8]>>(CAPACITY))
            .unzip();
        group.bench_function(BenchmarkId::new(&name, "raw_crossbeam"), |b| {
            b.iter(|| {
                for tx in &txs {
                    let _ = black_box(tx.try_send(payload.clone()));
                }
                for rx in &rxs {
                    black_box(rx.try_recv().ok());
                }
            });
        });
        drop((txs, rxs));

        let (tx, first) = tokio::sync::broadcast::channel::<Arc<[u8]>>(CAPACITY);
        let mut rxs: Vec<_> = std::iter::once(first)
            .chain((1..n).map(|_| tx.subscribe()))
            .collect();
        group.bench_function(BenchmarkId::new(&name, "tokio_broadcast"), |b| {
            b.iter(|| {
                let sent = tx.send(payload.clone()).ok();
                for rx in &mut rxs {
                    black_box(rx.try_recv().ok());
                }
                sent
            });
        });
    }
    group.finish();
}
