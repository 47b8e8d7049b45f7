//! Overflow policies, one test each (REDIS-SEMANTICS.md §6): what the
//! subscriber receives, what its stats and the broker's metrics count, and
//! that every publish returns exactly what it added to `delivered` plus
//! `dropped` (checked by `support::publish` on every publish made while no
//! other thread publishes).
#![allow(clippy::unwrap_used)]

#[allow(dead_code, unreachable_pub)]
mod support;

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use support::{LIVENESS, delta, publish, spublish, with_watchdog};
use tidings::crossbeam_channel::select;
use tidings::{
    Broker, DisconnectReason, Namespace, Options, Policy, RecvError, RecvTimeoutError, Subscriber,
    TryRecvError,
};

fn with(broker: &Broker<u32>, capacity: usize, policy: Policy) -> Subscriber<u32> {
    broker
        .subscriber_with(Options::new().capacity(capacity).policy(policy))
        .unwrap()
}

/// The two ways a `DropOldest` subscriber receives (issue 16): holding one
/// channel, it reads the channel's shared ring; holding more, it has a
/// queue of its own. Both must behave the same.
#[derive(Clone, Copy, Debug)]
enum Reads {
    /// Holds only what the test subscribes: one channel, so the ring.
    Ring,
    /// Also holds a channel nobody publishes to: its own queue.
    OwnQueue,
}

const READS: [Reads; 2] = [Reads::Ring, Reads::OwnQueue];

/// A `DropOldest` subscriber of `capacity` that receives the way `reads`
/// says once the test has subscribed it to one channel.
fn drop_oldest(broker: &Broker<u32>, capacity: usize, reads: Reads) -> Subscriber<u32> {
    let mut sub = with(broker, capacity, Policy::DropOldest);
    if let Reads::OwnQueue = reads {
        sub.subscribe("unrelated");
    }
    sub
}

/// What a subscriber's queue holds now: payloads, and lag notices as `None`
/// preceded by their count.
fn drain(sub: &mut Subscriber<u32>) -> Vec<Result<u32, RecvError>> {
    sub.try_iter().map(|m| m.map(|m| *m.payload())).collect()
}

#[test]
fn drop_newest_keeps_the_queue_and_counts_the_rest() {
    let broker: Broker<u32> = Broker::new();
    let mut sub = with(&broker, 2, Policy::DropNewest);
    sub.subscribe("ch");
    let before = broker.metrics();
    for i in 1..=5 {
        assert_eq!(publish(&broker, "ch", i), 1, "a drop still counts");
    }
    assert_eq!(delta(before, broker.metrics()), [5, 2, 3, 0, 0]);
    let stats = sub.stats();
    assert_eq!((stats.delivered, stats.dropped, stats.lagged), (2, 3, 0));
    assert!(!stats.disconnected);
    assert_eq!(drain(&mut sub), [Ok(1), Ok(2)]);
    assert_eq!(sub.try_recv().unwrap_err(), TryRecvError::Empty);

    // Room again: the next one is kept, with no lag notice.
    assert_eq!(publish(&broker, "ch", 6), 1);
    assert_eq!(drain(&mut sub), [Ok(6)]);
    assert_eq!(broker.metrics().dropped, 3);
    assert_eq!(
        broker.numsub(Namespace::Channel, "ch"),
        1,
        "still subscribed"
    );
}

#[test]
fn drop_oldest_reports_the_lag_in_stream() {
    for reads in READS {
        with_watchdog(support::WATCHDOG, move || {
            let broker: Broker<u32> = Broker::new();
            let mut sub = drop_oldest(&broker, 2, reads);
            sub.subscribe("ch");
            let before = broker.metrics();
            for i in 1..=5 {
                assert_eq!(publish(&broker, "ch", i), 1, "{reads:?}");
            }
            // Every publish queued its message; three old ones were pushed out.
            assert_eq!(
                delta(before, broker.metrics()),
                [5, 5, 0, 3, 0],
                "{reads:?}"
            );
            let stats = sub.stats();
            assert_eq!(
                (stats.delivered, stats.dropped, stats.lagged, stats.queued),
                (5, 0, 3, 2),
                "{reads:?}"
            );
            assert_eq!(sub.len(), 2, "{reads:?}");
            assert_eq!(sub.recv().unwrap_err(), RecvError::Lagged(3), "{reads:?}");
            assert_eq!(*sub.recv().unwrap().payload(), 4, "{reads:?}");
            assert_eq!(*sub.recv().unwrap().payload(), 5, "{reads:?}");
            assert_eq!(
                sub.try_recv().unwrap_err(),
                TryRecvError::Empty,
                "{reads:?}"
            );
            let stats = sub.stats();
            assert_eq!(
                (stats.delivered, stats.lagged, stats.queued),
                (5, 3, 0),
                "{reads:?}"
            );
        });
    }
}

/// Gaps are reported exactly where they happened, and each notice is
/// followed by the message that came after the gap.
#[test]
fn drop_oldest_interleaved_reading_reports_gaps_where_they_happened() {
    for reads in READS {
        with_watchdog(support::WATCHDOG, move || {
            let broker: Broker<u32> = Broker::new();
            let mut sub = drop_oldest(&broker, 2, reads);
            sub.subscribe("ch");
            for i in 1..=3 {
                publish(&broker, "ch", i); // 1 is pushed out
            }
            assert_eq!(sub.recv().unwrap_err(), RecvError::Lagged(1), "{reads:?}");
            assert_eq!(*sub.recv().unwrap().payload(), 2, "{reads:?}");
            // Queue: [3]. 4 fits; 5 pushes out 3; 6 pushes out 4.
            for i in 4..=6 {
                publish(&broker, "ch", i);
            }
            assert_eq!(
                drain(&mut sub),
                [Err(RecvError::Lagged(2)), Ok(5), Ok(6)],
                "{reads:?}"
            );
            // No loss, no notice.
            publish(&broker, "ch", 7);
            publish(&broker, "ch", 8);
            assert_eq!(drain(&mut sub), [Ok(7), Ok(8)], "{reads:?}");
            // Read one, then overflow by one: the gap is after 9.
            for i in 9..=10 {
                publish(&broker, "ch", i);
            }
            assert_eq!(*sub.recv().unwrap().payload(), 9, "{reads:?}");
            for i in 11..=13 {
                publish(&broker, "ch", i); // [10] + 11 → [10, 11]; 12 drops 10; 13 drops 11
            }
            assert_eq!(
                drain(&mut sub),
                [Err(RecvError::Lagged(2)), Ok(12), Ok(13)],
                "{reads:?}"
            );
            let stats = sub.stats();
            assert_eq!(
                (stats.delivered, stats.lagged, stats.dropped),
                (13, 5, 0),
                "{reads:?}"
            );
            assert_eq!(broker.metrics().lagged, 5, "{reads:?}");
        });
    }
}

/// The ways to receive, each of which must pass lag notices on.
#[derive(Clone, Copy, Debug)]
enum Receive {
    TryRecv,
    Recv,
    RecvTimeout,
    RecvDeadline,
    /// `select!` on the subscriber's bell, then `try_recv`.
    Bell,
    Iter,
    TryIter,
}

/// Receives the next `n` items the way `how` says; every wait is bounded.
fn receive(
    sub: &mut Subscriber<u32>,
    how: Receive,
    n: usize,
) -> Vec<Result<(Namespace, u32), RecvError>> {
    let item = |m: tidings::Message<u32>| (m.namespace(), *m.payload());
    let from_try = |r: Result<tidings::Message<u32>, TryRecvError>| match r {
        Ok(m) => Ok(item(m)),
        Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
        Err(e) => panic!("{how:?}: {e}"),
    };
    let from_timeout = |r: Result<tidings::Message<u32>, RecvTimeoutError>| match r {
        Ok(m) => Ok(item(m)),
        Err(RecvTimeoutError::Lagged(n)) => Err(RecvError::Lagged(n)),
        Err(e) => panic!("{how:?}: {e}"),
    };
    match how {
        Receive::TryRecv => (0..n).map(|_| from_try(sub.try_recv())).collect(),
        Receive::Recv => (0..n).map(|_| sub.recv().map(item)).collect(),
        Receive::RecvTimeout => (0..n)
            .map(|_| from_timeout(sub.recv_timeout(LIVENESS)))
            .collect(),
        Receive::RecvDeadline => {
            let deadline = std::time::Instant::now() + LIVENESS;
            (0..n)
                .map(|_| from_timeout(sub.recv_deadline(deadline)))
                .collect()
        }
        Receive::Bell => {
            let bell = sub.ready().clone();
            select! {
                recv(bell) -> token => token.unwrap(),
                default(LIVENESS) => panic!("the bell did not ring"),
            }
            (0..n).map(|_| from_try(sub.try_recv())).collect()
        }
        Receive::Iter => sub.iter().take(n).map(|r| r.map(item)).collect(),
        Receive::TryIter => {
            let got: Vec<_> = sub.try_iter().map(|r| r.map(item)).collect();
            assert_eq!(got.len(), n, "{how:?}: {got:?}");
            got
        }
    }
}

/// The lag notice comes through every receive method, `select!` on the
/// bell included, for both kinds of `DropOldest` subscriber; one holding
/// the channel and a pattern counts both deliveries in its stream.
#[test]
fn drop_oldest_lag_through_every_receive() {
    // (what the subscriber holds, deliveries per publish)
    for (holds, copies) in [("ch", 1usize), ("ch + c*", 2)] {
        with_watchdog(support::WATCHDOG, move || {
            let broker: Broker<u32> = Broker::new();
            let mut sub = with(&broker, 2, Policy::DropOldest);
            sub.subscribe("ch");
            if copies == 2 {
                sub.psubscribe("c*");
            }
            let bell = sub.ready().clone();
            let mut payload = 0;
            let mut lagged = 0;
            for how in [
                Receive::TryRecv,
                Receive::Recv,
                Receive::RecvTimeout,
                Receive::RecvDeadline,
                Receive::Bell,
                Receive::Iter,
                Receive::TryIter,
            ] {
                // Stale tokens out, and the subscriber found empty: the bell
                // must ring for what follows.
                while bell.try_recv().is_ok() {}
                assert_eq!(sub.try_recv().unwrap_err(), TryRecvError::Empty, "{how:?}");
                // Overflow the queue of 2 by exactly `copies` deliveries: the
                // first publish's.
                let publishes = 2 / copies + 1;
                for _ in 0..publishes {
                    payload += 1;
                    assert_eq!(publish(&broker, "ch", payload), copies);
                }
                lagged += copies as u64;
                assert_eq!(sub.stats().lagged, lagged, "{holds}, {how:?}");
                let mut expected = vec![Err(RecvError::Lagged(copies as u64))];
                for p in payload + 2 - publishes as u32..=payload {
                    expected.push(Ok((Namespace::Channel, p)));
                    if copies == 2 {
                        expected.push(Ok((Namespace::Pattern, p)));
                    }
                }
                assert_eq!(receive(&mut sub, how, 3), expected, "{holds}, {how:?}");
                assert_eq!(sub.try_recv().unwrap_err(), TryRecvError::Empty, "{how:?}");
            }
            assert_eq!(sub.stats().lagged, lagged, "{holds}");
            assert_eq!(broker.metrics().lagged, lagged, "{holds}");
        });
    }
}

#[test]
fn block_with_a_slow_reader_loses_nothing() {
    const N: u32 = 200;
    let broker: Broker<u32> = Broker::new();
    let mut sub = with(
        &broker,
        2,
        Policy::Block {
            timeout: Duration::from_secs(30),
        },
    );
    sub.subscribe("ch");
    let reader = thread::spawn(move || {
        let mut got = Vec::new();
        while got.len() < N as usize {
            if got.len() % 16 == 0 {
                thread::sleep(Duration::from_millis(1)); // slow
            }
            got.push(*sub.recv_timeout(LIVENESS).unwrap().payload());
        }
        (got, sub.stats())
    });
    let before = broker.metrics();
    for i in 0..N {
        assert_eq!(publish(&broker, "ch", i), 1);
    }
    let (got, stats) = reader.join().unwrap();
    assert_eq!(got, (0..N).collect::<Vec<_>>());
    assert_eq!((stats.delivered, stats.dropped), (u64::from(N), 0));
    assert_eq!(
        delta(before, broker.metrics()),
        [u64::from(N), u64::from(N), 0, 0, 0]
    );
}

#[test]
fn block_without_a_reader_waits_then_drops_and_counts() {
    let broker: Broker<u32> = Broker::new();
    let mut sub = with(
        &broker,
        1,
        Policy::Block {
            timeout: Duration::from_millis(20),
        },
    );
    sub.subscribe("ch");
    sub.psubscribe("c*");
    let before = broker.metrics();
    // The first copy fills the queue, the second waits and is dropped.
    assert_eq!(publish(&broker, "ch", 1), 2);
    assert_eq!(delta(before, broker.metrics()), [1, 1, 1, 0, 0]);
    assert_eq!(publish(&broker, "ch", 2), 2);
    assert_eq!(delta(before, broker.metrics()), [2, 1, 3, 0, 0]);
    let stats = sub.stats();
    assert_eq!((stats.delivered, stats.dropped, stats.lagged), (1, 3, 0));
    assert!(!stats.disconnected);
    let m = sub.try_recv().unwrap();
    assert_eq!((m.namespace(), *m.payload()), (Namespace::Channel, 1));
    assert_eq!(sub.try_recv().unwrap_err(), TryRecvError::Empty);
    assert_eq!(
        broker.numsub(Namespace::Channel, "ch"),
        1,
        "still subscribed"
    );
    assert_eq!(publish(&broker, "ch", 3), 2);
    assert_eq!(drain(&mut sub), [Ok(3)]);
}

/// A publish waiting for a `Block` subscriber holds no registry lock:
/// subscribing, unsubscribing and introspection go on meanwhile, and the
/// waiting publish completes once the subscriber reads. Were subscribe to
/// wait for the publisher, the publisher would time out (after 30 s) and
/// drop, and the assertions on `delivered` would fail.
#[test]
fn block_waits_without_holding_the_registry_lock() {
    let broker: Broker<u32> = Broker::new();
    let mut slow = with(
        &broker,
        1,
        Policy::Block {
            timeout: Duration::from_secs(30),
        },
    );
    slow.subscribe("slow");
    assert_eq!(broker.publish("slow", 1), 1); // the queue is now full
    let (started_tx, started) = mpsc::channel();
    let publisher = {
        let broker = broker.clone();
        thread::spawn(move || {
            started_tx.send(()).unwrap();
            let before = broker.metrics();
            let n = broker.publish("slow", 2);
            (n, delta(before, broker.metrics()))
        })
    };
    started.recv_timeout(LIVENESS).unwrap();
    thread::sleep(Duration::from_millis(50)); // let it reach the wait (best effort)

    let mut other = broker.subscriber();
    other.subscribe("elsewhere");
    other.psubscribe("else*");
    assert_eq!(broker.numsub(Namespace::Channel, "elsewhere"), 1);
    other.unsubscribe("elsewhere");
    assert_eq!(broker.numpat(), 1);
    drop(other);
    assert_eq!(broker.publish("nobody", 0), 0);

    assert_eq!(*slow.recv_timeout(LIVENESS).unwrap().payload(), 1);
    assert_eq!(*slow.recv_timeout(LIVENESS).unwrap().payload(), 2);
    let (n, d) = publisher.join().unwrap();
    assert_eq!(n, 1);
    assert_eq!(d[1..3], [1, 0], "delivered after the wait, not dropped");
    assert_eq!(slow.stats().dropped, 0);
}

#[test]
fn disconnect_removes_the_subscriber_from_everything() {
    with_watchdog(support::WATCHDOG, || {
        let broker: Broker<u32> = Broker::new();
        let mut sub = with(&broker, 2, Policy::Disconnect);
        sub.subscribe("ch");
        sub.psubscribe("x*");
        sub.ssubscribe("s");
        let before = broker.metrics();
        for i in 1..=3 {
            assert_eq!(publish(&broker, "ch", i), 1);
        }
        assert_eq!(delta(before, broker.metrics()), [3, 2, 1, 0, 1]);
        assert_eq!(broker.numsub(Namespace::Channel, "ch"), 0);
        assert_eq!(broker.numpat(), 0);
        assert_eq!(broker.numsub(Namespace::Shard, "s"), 0);
        assert!(broker.is_idle());
        broker.check_invariants();
        let stats = sub.stats();
        assert_eq!((stats.delivered, stats.dropped, stats.lagged), (2, 1, 0));
        assert!(stats.disconnected);
        let counts = sub.counts();
        assert_eq!(
            (counts.channels, counts.patterns, counts.shard_channels),
            (0, 0, 0)
        );

        // Nothing reaches it any more.
        assert_eq!(publish(&broker, "ch", 4), 0);
        assert_eq!(publish(&broker, "xyz", 5), 0);
        assert_eq!(spublish(&broker, "s", 6), 0);

        // It drains what was queued before the overflow, then ends, saying why.
        assert_eq!(*sub.recv().unwrap().payload(), 1);
        assert_eq!(*sub.recv().unwrap().payload(), 2);
        let why = DisconnectReason::Overflow { capacity: 2 };
        let err = sub.recv().unwrap_err();
        assert_eq!(err, RecvError::Disconnected(why));
        let text = err.to_string();
        assert!(
            text.contains("disconnected") && text.contains('2') && text.contains("overflow"),
            "{text}"
        );
        // Terminal.
        assert_eq!(sub.recv().unwrap_err(), RecvError::Disconnected(why));
        assert_eq!(sub.try_recv().unwrap_err(), TryRecvError::Disconnected(why));
        assert_eq!(
            sub.recv_timeout(Duration::from_millis(1)).unwrap_err(),
            RecvTimeoutError::Disconnected(why)
        );
        assert_eq!(broker.metrics().disconnected, 1);

        // Subscribing again does not bring it back.
        sub.subscribe("ch");
        sub.psubscribe("c*");
        sub.ssubscribe("s");
        assert!(broker.is_idle());
        assert_eq!(publish(&broker, "ch", 7), 0);
        assert_eq!(spublish(&broker, "s", 8), 0);
        broker.check_invariants();
        drop(sub);
        assert_eq!(broker.metrics().disconnected, 1);
        assert_eq!(broker.metrics().subscribers, 0);
    });
}

#[test]
fn disconnect_leaves_other_subscribers_alone() {
    let broker: Broker<u32> = Broker::new();
    let mut victim = with(&broker, 2, Policy::Disconnect);
    let mut exact = broker.subscriber();
    let mut pattern = broker.subscriber();
    victim.subscribe("ch");
    victim.psubscribe("c*");
    exact.subscribe("ch");
    pattern.psubscribe("c*");

    // Each publish reaches the victim twice (message, pmessage), so its queue
    // of 2 overflows on the second publish; its pmessage copy is then
    // dropped too.
    assert_eq!(publish(&broker, "ch", 1), 4);
    let before = broker.metrics();
    assert_eq!(publish(&broker, "ch", 2), 4);
    assert_eq!(delta(before, broker.metrics()), [1, 2, 2, 0, 1]);
    assert_eq!(broker.numsub(Namespace::Channel, "ch"), 1);
    assert_eq!(broker.numpat(), 1, "c* is still held by the other");
    for i in 3..=10 {
        assert_eq!(publish(&broker, "ch", i), 2);
    }
    let all: Vec<_> = (1..=10).map(Ok).collect();
    assert_eq!(drain(&mut exact), all);
    assert_eq!(drain(&mut pattern), all);
    assert_eq!(
        drain(&mut victim),
        [
            Ok(1),
            Ok(1),
            Err(RecvError::Disconnected(DisconnectReason::Overflow {
                capacity: 2
            }))
        ]
    );
    let stats = victim.stats();
    assert_eq!((stats.delivered, stats.dropped), (2, 2));
    assert_eq!(broker.metrics().disconnected, 1);
    broker.check_invariants();
}

/// One channel, four subscribers with four policies, none reading: each
/// applies its own policy, and the totals add up.
#[test]
fn policies_are_per_subscriber() {
    let broker: Broker<u32> = Broker::builder().capacity(2).build().unwrap();
    let mut newest = with(&broker, 2, Policy::DropNewest);
    let mut oldest = with(&broker, 2, Policy::DropOldest);
    let mut block = with(
        &broker,
        2,
        Policy::Block {
            timeout: Duration::from_millis(1),
        },
    );
    let mut disconnect = broker.subscriber(); // the builder's default policy
    assert_eq!(disconnect.policy(), Policy::Disconnect);
    for sub in [&mut newest, &mut oldest, &mut block, &mut disconnect] {
        sub.subscribe("ch");
    }
    let before = broker.metrics();
    assert_eq!(publish(&broker, "ch", 1), 4);
    assert_eq!(publish(&broker, "ch", 2), 4);
    assert_eq!(publish(&broker, "ch", 3), 4);
    assert_eq!(publish(&broker, "ch", 4), 3, "the disconnected one is gone");
    // delivered: 2 + 4 + 2 + 2; dropped: 2 + 0 + 2 + 1; lagged 2; one disconnect.
    assert_eq!(delta(before, broker.metrics()), [4, 10, 5, 2, 1]);
    assert_eq!(drain(&mut newest), [Ok(1), Ok(2)]);
    assert_eq!(
        drain(&mut oldest),
        [Err(RecvError::Lagged(2)), Ok(3), Ok(4)]
    );
    assert_eq!(drain(&mut block), [Ok(1), Ok(2)]);
    assert_eq!(
        drain(&mut disconnect),
        [
            Ok(1),
            Ok(2),
            Err(RecvError::Disconnected(DisconnectReason::Overflow {
                capacity: 2
            }))
        ]
    );
    assert_eq!(broker.numsub(Namespace::Channel, "ch"), 3);
}

/// Shard subscribers are under the same policies.
#[test]
fn policies_apply_to_spublish() {
    let broker: Broker<u32> = Broker::new();
    let mut oldest = with(&broker, 1, Policy::DropOldest);
    let mut disconnect = with(&broker, 1, Policy::Disconnect);
    oldest.ssubscribe("{s}");
    disconnect.ssubscribe("{s}");
    assert_eq!(spublish(&broker, "{s}", 1), 2);
    assert_eq!(spublish(&broker, "{s}", 2), 2);
    assert_eq!(broker.numsub(Namespace::Shard, "{s}"), 1);
    assert_eq!(spublish(&broker, "{s}", 3), 1);
    assert_eq!(drain(&mut oldest), [Err(RecvError::Lagged(2)), Ok(3)]);
    assert_eq!(
        drain(&mut disconnect),
        [
            Ok(1),
            Err(RecvError::Disconnected(DisconnectReason::Overflow {
                capacity: 1
            }))
        ]
    );
    let m = broker.metrics();
    assert_eq!((m.lagged, m.disconnected), (2, 1));
}

/// A reader that takes a lag notice (the subscriber then holds the message
/// that revealed the gap) and, before it takes that message, suffers a
/// second gap: the kept message must never be overtaken by later ones, and
/// no loss may go unreported. Read as a `select!` loop does: on the bell,
/// then with `try_recv`; for both kinds of `DropOldest` subscriber.
#[test]
fn drop_oldest_select_loop_never_reorders_or_loses_the_kept_message() {
    select_loop_keeps_the_revealed_message(Reads::OwnQueue);
}

/// The same for a reader of one channel's shared ring.
#[test]
fn drop_oldest_select_loop_never_reorders_or_loses_the_kept_message_reading_a_ring() {
    select_loop_keeps_the_revealed_message(Reads::Ring);
}

fn select_loop_keeps_the_revealed_message(reads: Reads) {
    {
        let broker: Broker<u32> = Broker::new();
        let mut sub = drop_oldest(&broker, 2, reads);
        sub.subscribe("ch");
        let bell = sub.ready().clone();
        let mut stream: Vec<Result<u32, RecvError>> = Vec::new();
        let take_one = |sub: &mut Subscriber<u32>, stream: &mut Vec<_>| match sub.try_recv() {
            Ok(m) => stream.push(Ok(*m.payload())),
            Err(TryRecvError::Lagged(n)) => stream.push(Err(RecvError::Lagged(n))),
            Err(e) => panic!("{reads:?}: {e}"),
        };
        assert_eq!(sub.try_recv().unwrap_err(), TryRecvError::Empty);
        for i in 1..=3 {
            publish(&broker, "ch", i); // [2, 3], 1 lost
        }
        select! {
            recv(bell) -> token => token.unwrap(),
            default(LIVENESS) => panic!("{reads:?}: the bell did not ring"),
        }
        take_one(&mut sub, &mut stream); // Lagged(1); 2 is kept
        for i in 4..=6 {
            publish(&broker, "ch", i); // [3, 4] → [5, 6], 3 and 4 lost
        }
        take_one(&mut sub, &mut stream); // a second gap, before 2 was received
        take_one(&mut sub, &mut stream);
        stream.extend(sub.try_iter().map(|m| m.map(|m| *m.payload())));
        // Expected: the kept 2 comes out before anything later, and every lost
        // message is reported.
        let received: Vec<u32> = stream.iter().filter_map(|r| r.ok()).collect();
        let lagged: u64 = stream
            .iter()
            .map(|r| match r {
                Err(RecvError::Lagged(n)) => *n,
                _ => 0,
            })
            .sum();
        assert!(
            received.is_sorted(),
            "{reads:?}: in publish order: {stream:?}"
        );
        assert_eq!(
            received.len() as u64 + lagged,
            6,
            "{reads:?}: every message received or reported lost: {stream:?}"
        );
        // Each notice just before the message that follows its gap.
        assert_eq!(
            stream,
            [
                Err(RecvError::Lagged(1)),
                Ok(2),
                Err(RecvError::Lagged(2)),
                Ok(5),
                Ok(6)
            ],
            "{reads:?}"
        );
    }
}

/// A publish waiting for room in a `Block` subscriber's queue stops waiting
/// when that subscriber is dropped: there is nobody left to make room.
/// With a 120 s timeout, a publisher that waits it out trips the 20 s
/// watchdog.
#[test]
fn block_wait_ends_when_the_subscriber_is_dropped() {
    support::with_watchdog(Duration::from_secs(20), || {
        let broker: Broker<u32> = Broker::new();
        let mut sub = with(
            &broker,
            1,
            Policy::Block {
                timeout: Duration::from_secs(120),
            },
        );
        sub.subscribe("ch");
        assert_eq!(broker.publish("ch", 1), 1); // full
        let (started_tx, started) = mpsc::channel();
        let publisher = {
            let broker = broker.clone();
            thread::spawn(move || {
                started_tx.send(()).unwrap();
                broker.publish("ch", 2)
            })
        };
        started.recv_timeout(LIVENESS).unwrap();
        thread::sleep(Duration::from_millis(50)); // let it reach the wait (best effort)
        drop(sub);
        assert_eq!(publisher.join().unwrap(), 1);
        let m = broker.metrics();
        assert_eq!((m.delivered, m.dropped), (1, 1));
        assert!(broker.is_idle());
    });
}

/// No queue is allocated whole: each grows with its backlog, and each
/// policy takes effect at exactly the capacity, here one that is not a
/// power of two and larger than the default.
#[test]
fn a_queue_larger_than_the_default_applies_its_policy_at_its_capacity() {
    let capacity = Options::DEFAULT_CAPACITY * 3 + 7;
    let n = u32::try_from(capacity).unwrap();
    let broker: Broker<u32> = Broker::new();
    let mut newest = with(&broker, capacity, Policy::DropNewest);
    let mut oldest = drop_oldest(&broker, capacity, Reads::Ring);
    let mut oldest_queue = drop_oldest(&broker, capacity, Reads::OwnQueue);
    let mut gone = with(&broker, capacity, Policy::Disconnect);
    for sub in [&mut newest, &mut oldest, &mut oldest_queue, &mut gone] {
        sub.subscribe("ch");
    }
    for i in 0..n + 2 {
        publish(&broker, "ch", i);
    }

    assert_eq!(newest.len(), capacity);
    assert_eq!(newest.stats().dropped, 2);
    let kept: Vec<_> = drain(&mut newest);
    assert_eq!(kept, (0..n).map(Ok).collect::<Vec<_>>());

    let mut expected = vec![Err(RecvError::Lagged(2))];
    expected.extend((2..n + 2).map(Ok));
    for (reads, oldest) in [
        (Reads::Ring, &mut oldest),
        (Reads::OwnQueue, &mut oldest_queue),
    ] {
        assert_eq!(oldest.len(), capacity, "{reads:?}");
        assert_eq!(oldest.stats().lagged, 2, "{reads:?}");
        assert!(drain(oldest) == expected, "{reads:?}");
    }

    assert!(gone.stats().disconnected);
    assert_eq!(gone.len(), capacity);
    let mut expected: Vec<_> = (0..n).map(Ok).collect();
    expected.push(Err(RecvError::Disconnected(DisconnectReason::Overflow {
        capacity,
    })));
    assert_eq!(drain(&mut gone), expected);
}

/// The capacity is exact however many threads publish at once: publishers
/// on four channels fill one subscriber holding all four, and it never
/// holds more than its capacity, nor loses a message uncounted.
#[test]
fn the_capacity_is_exact_with_concurrent_publishers() {
    const CAPACITY: usize = 64;
    const PER_THREAD: u32 = 2000;
    with_watchdog(Duration::from_secs(60), || {
        let broker: Broker<u32> = Broker::new();
        let channels = ["c0", "c1", "c2", "c3"];
        let mut subs: Vec<(Policy, Subscriber<u32>)> =
            [Policy::DropNewest, Policy::DropOldest, Policy::Disconnect]
                .into_iter()
                .map(|policy| {
                    let mut sub = with(&broker, CAPACITY, policy);
                    for ch in channels {
                        sub.subscribe(ch);
                    }
                    (policy, sub)
                })
                .collect();
        let start = std::sync::Arc::new(std::sync::Barrier::new(channels.len()));
        let threads: Vec<_> = channels
            .into_iter()
            .map(|ch| {
                let broker = broker.clone();
                let start = std::sync::Arc::clone(&start);
                thread::spawn(move || {
                    start.wait();
                    for i in 0..PER_THREAD {
                        broker.publish(ch, i);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let total = u64::from(PER_THREAD) * channels.len() as u64;
        for (policy, sub) in &mut subs {
            let stats = sub.stats();
            assert!(
                stats.queued <= CAPACITY as u64,
                "{policy:?}: {} queued, capacity {CAPACITY}",
                stats.queued
            );
            let items = drain(sub);
            let received = items.iter().filter(|r| r.is_ok()).count();
            assert!(received <= CAPACITY, "{policy:?}: received {received}");
            match policy {
                Policy::DropNewest => {
                    assert_eq!(received, CAPACITY, "{policy:?}");
                    assert_eq!(stats.dropped, total - CAPACITY as u64, "{policy:?}");
                }
                Policy::DropOldest => {
                    assert_eq!(received, CAPACITY, "{policy:?}");
                    assert_eq!(stats.lagged, total - CAPACITY as u64, "{policy:?}");
                    let reported: u64 = items
                        .iter()
                        .map(|r| match r {
                            Err(RecvError::Lagged(n)) => *n,
                            _ => 0,
                        })
                        .sum();
                    assert_eq!(reported, stats.lagged, "{policy:?}: every loss reported");
                }
                _ => {
                    assert!(stats.disconnected, "{policy:?}");
                    assert_eq!(stats.delivered, CAPACITY as u64, "{policy:?}");
                    assert_eq!(received, CAPACITY, "{policy:?}");
                }
            }
        }
        let m = broker.metrics();
        assert_eq!(m.published, total);
    });
}
