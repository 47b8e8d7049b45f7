//! Group `fanout`: one publish to N subscribers of one channel, end to end:
//! publish, then drain every subscriber, on the bench thread, so one
//! iteration costs routing plus N deliveries plus N receives. Every column
//! moves the same 16-byte `Arc<[u8]>` payload ([`tidings_benches::payload`])
//! through queues or rings of 64 messages, drained each iteration, so none
//! ever fills: no column measures an overflow (each checks so after its
//! run). The columns of `fanout/subscribers_<N>/`:
//!
//! - `tidings`: subscribers with [`Policy::DropOldest`] holding one channel
//!   each, so they read the channel's shared ring: the publish writes the
//!   message once and each receive takes it with one atomic operation. The
//!   column to compare with `tokio_broadcast`, whose receivers are the same
//!   thing (a shared ring, oldest overwritten, the receiver told `Lagged`).
//! - `tidings_disconnect`: subscribers with the default policy,
//!   [`Policy::Disconnect`], each with a queue of its own: the publish pushes
//!   one handle to the message into each queue. This is what every
//!   subscriber that is not a one-route `DropOldest` reader costs (the other
//!   policies, several channels or patterns); the column to compare with
//!   `raw_crossbeam`.
//! - `raw_crossbeam`, the floor of a queue per subscriber: N crossbeam
//!   bounded channels, the payload cloned and sent to each by hand, then
//!   each drained; no routing, no channel name, no policy.
//! - `tokio_broadcast`: `tokio::sync::broadcast` with N receivers, which
//!   writes each message once into a shared ring; one send, then `try_recv`
//!   on each receiver.
//!
//! `fanout/no_subscribers/tidings` publishes to a channel nobody holds, in
//! a broker where one other subscriber holds another channel: the cost of
//! routing to nobody.
//!
//! There is no large-queue column any more: no queue is allocated ahead of
//! its backlog whatever its capacity, so a larger capacity takes the same
//! path as `tidings_disconnect`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use tidings::{Broker, Policy, Subscriber};
use tidings_benches::payload;

/// Every queue's and ring's capacity, in messages.
const CAPACITY: usize = 64;

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
        let broker: Broker<Arc<[u8]>> = Broker::builder()
            .capacity(CAPACITY)
            .build()
            .expect("a valid capacity");
        let mut other = broker.subscriber();
        other.subscribe("elsewhere");
        assert_eq!(broker.publish(CHANNEL, payload.clone()), 0);
        group.bench_function(BenchmarkId::new("no_subscribers", "tidings"), |b| {
            b.iter(|| black_box(&broker).publish(black_box(CHANNEL), payload.clone()));
        });
    }

    for n in [1, 10, 100, 1000] {
        let name = format!("subscribers_{n:04}");

        for (column, policy) in [
            ("tidings", Policy::DropOldest),
            ("tidings_disconnect", Policy::Disconnect),
        ] {
            let broker: Broker<Arc<[u8]>> = Broker::builder()
                .capacity(CAPACITY)
                .policy(policy)
                .build()
                .expect("a valid capacity");
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
            // Every message was delivered and received: the run measured
            // no overflow path.
            let m = broker.metrics();
            assert_eq!((m.dropped, m.lagged, m.disconnected), (0, 0, 0), "{m:?}");
            assert_eq!(m.delivered, m.published * n as u64, "{m:?}");
            assert!(subs.iter().all(|s| s.stats().queued == 0));
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
