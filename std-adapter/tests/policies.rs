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
use tidings::crossbeam_channel::{select, unbounded};
use tidings::{
    Broker, DisconnectReason, MessageKind, Options, Policy, RecvError, RecvTimeoutError,
    Subscriber, TryRecvError,
};

fn with(broker: &Broker<u32>, capacity: usize, policy: Policy) -> Subscriber<u32> {
    broker
        .try_subscriber_with(Options::new().capacity(capacity).policy(policy))
        .unwrap()
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
    assert_eq!(broker.numsub("ch"), 1, "still subscribed");
}

#[test]
fn drop_oldest_reports_the_lag_in_stream() {
    with_watchdog(support::WATCHDOG, || {
        let broker: Broker<u32> = Broker::new();
        let mut sub = with(&broker, 2, Policy::DropOldest);
        sub.subscribe("ch");
        let before = broker.metrics();
        for i in 1..=5 {
            assert_eq!(publish(&broker, "ch", i), 1);
        }
        // Every publish queued its message; three old ones were pushed out.
        assert_eq!(delta(before, broker.metrics()), [5, 5, 0, 3, 0]);
        let stats = sub.stats();
        assert_eq!((stats.delivered, stats.dropped, stats.lagged), (5, 0, 3));
        assert_eq!(sub.len(), 2);
        assert_eq!(sub.recv().unwrap_err(), RecvError::Lagged(3));
        assert_eq!(*sub.recv().unwrap().payload(), 4);
        assert_eq!(*sub.recv().unwrap().payload(), 5);
        assert_eq!(sub.try_recv().unwrap_err(), TryRecvError::Empty);
    });
}

/// Gaps are reported exactly where they happened, and each notice is
/// followed by the message that came after the gap.
#[test]
fn drop_oldest_interleaved_reading_reports_gaps_where_they_happened() {
    with_watchdog(support::WATCHDOG, || {
        let broker: Broker<u32> = Broker::new();
        let mut sub = with(&broker, 2, Policy::DropOldest);
        sub.subscribe("ch");
        for i in 1..=3 {
            publish(&broker, "ch", i); // 1 is pushed out
        }
        assert_eq!(sub.recv().unwrap_err(), RecvError::Lagged(1));
        assert_eq!(*sub.recv().unwrap().payload(), 2);
        // Queue: [3]. 4 fits; 5 pushes out 3; 6 pushes out 4.
        for i in 4..=6 {
            publish(&broker, "ch", i);
        }
        assert_eq!(drain(&mut sub), [Err(RecvError::Lagged(2)), Ok(5), Ok(6)]);
        // No loss, no notice.
        publish(&broker, "ch", 7);
        publish(&broker, "ch", 8);
        assert_eq!(drain(&mut sub), [Ok(7), Ok(8)]);
        // Read one, then overflow by one: the gap is after 9.
        for i in 9..=10 {
            publish(&broker, "ch", i);
        }
        assert_eq!(*sub.recv().unwrap().payload(), 9);
        for i in 11..=13 {
            publish(&broker, "ch", i); // [10] + 11 → [10, 11]; 12 drops 10; 13 drops 11
        }
        assert_eq!(drain(&mut sub), [Err(RecvError::Lagged(2)), Ok(12), Ok(13)]);
        let stats = sub.stats();
        assert_eq!((stats.delivered, stats.lagged, stats.dropped), (13, 5, 0));
        assert_eq!(broker.metrics().lagged, 5);
    });
}

/// The lag notice comes through every receive method and through
/// `accept` after `select!`; a subscriber holding the channel and a pattern
/// counts both deliveries in its stream.
#[test]
fn drop_oldest_lag_through_every_receive() {
    let broker: Broker<u32> = Broker::new();
    let mut sub = with(&broker, 2, Policy::DropOldest);
    sub.subscribe("ch");
    sub.psubscribe("c*");

    assert_eq!(publish(&broker, "ch", 1), 2);
    assert_eq!(publish(&broker, "ch", 2), 2); // pushes out both copies of 1
    assert_eq!(sub.stats().lagged, 2);
    assert_eq!(sub.try_recv().unwrap_err(), TryRecvError::Lagged(2));
    let m = sub.try_recv().unwrap();
    assert_eq!((m.kind(), *m.payload()), (MessageKind::Message, 2));
    let m = sub.try_recv().unwrap();
    assert_eq!((m.kind(), *m.payload()), (MessageKind::PMessage, 2));

    publish(&broker, "ch", 3);
    publish(&broker, "ch", 4);
    assert_eq!(
        sub.recv_timeout(LIVENESS).unwrap_err(),
        RecvTimeoutError::Lagged(2)
    );
    assert_eq!(*sub.recv_timeout(LIVENESS).unwrap().payload(), 4);
    assert_eq!(*sub.recv_timeout(LIVENESS).unwrap().payload(), 4);

    publish(&broker, "ch", 5);
    publish(&broker, "ch", 6);
    let (_tx, never) = unbounded::<()>();
    let revealed: Vec<_> = select! {
        recv(sub.receiver()) -> envelope => sub.accept(envelope.unwrap()).map(|r| r.map(|m| *m.payload())).collect(),
        recv(never) -> _ => unreachable!(),
        default(LIVENESS) => panic!("nothing queued"),
    };
    // `accept` returns the lag notice and the message that revealed it, and
    // keeps nothing back.
    assert_eq!(revealed, [Err(RecvError::Lagged(2)), Ok(6)]);
    assert_eq!(sub.len(), 1);
    assert_eq!(drain(&mut sub), [Ok(6)]);
    assert_eq!(sub.stats().lagged, 6);
    assert_eq!(broker.metrics().lagged, 6);
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
    assert_eq!((m.kind(), *m.payload()), (MessageKind::Message, 1));
    assert_eq!(sub.try_recv().unwrap_err(), TryRecvError::Empty);
    assert_eq!(broker.numsub("ch"), 1, "still subscribed");
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
    assert_eq!(broker.numsub("elsewhere"), 1);
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
        assert_eq!(broker.numsub("ch"), 0);
        assert_eq!(broker.numpat(), 0);
        assert_eq!(broker.shard_numsub("s"), 0);
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
    assert_eq!(broker.numsub("ch"), 1);
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
    let broker: Broker<u32> = Broker::builder().capacity(2).build();
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
    assert_eq!(broker.numsub("ch"), 3);
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
    assert_eq!(broker.shard_numsub("{s}"), 1);
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

/// A `select!` loop that passes every envelope to `accept`, as
/// [`Subscriber::receiver`] says to, and keeps selecting after a lag notice.
/// What `accept` reveals must never be overtaken by later messages, and no
/// loss may go unreported when a second gap follows before any other
/// receive.
#[test]
fn drop_oldest_select_loop_never_reorders_or_loses_the_kept_message() {
    let broker: Broker<u32> = Broker::new();
    let mut sub = with(&broker, 2, Policy::DropOldest);
    sub.subscribe("ch");
    let mut stream: Vec<Result<u32, RecvError>> = Vec::new();
    let mut select_once = |sub: &mut Subscriber<u32>| {
        select! {
            recv(sub.receiver()) -> envelope => {
                stream.extend(sub.accept(envelope.unwrap()).map(|r| r.map(|m| *m.payload())));
            }
            default(LIVENESS) => panic!("nothing queued"),
        }
    };
    for i in 1..=3 {
        publish(&broker, "ch", i); // [2, 3], 1 lost
    }
    select_once(&mut sub); // Lagged(1); 2 is kept
    for i in 4..=6 {
        publish(&broker, "ch", i); // [3, 4] → [5, 6], 3 and 4 lost
    }
    select_once(&mut sub); // a second gap, before 2 was received
    select_once(&mut sub);
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
    assert!(received.is_sorted(), "in publish order: {stream:?}");
    assert_eq!(
        received.len() as u64 + lagged,
        6,
        "every message received or reported lost: {stream:?}"
    );
}

/// A publish waiting for room in a `Block` subscriber's queue stops waiting
/// when that subscriber is dropped: there is nobody left to make room, and
/// the wait holds the channel's ordering stripe, stalling every other
/// publish to the channel. With a 120 s timeout, a publisher that waits it
/// out trips the 20 s watchdog.
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

/// Queues above the default capacity grow with their backlog instead of
/// being allocated whole; each policy still takes effect at exactly the
/// capacity (one publishing thread here).
#[test]
fn a_queue_larger_than_the_default_applies_its_policy_at_its_capacity() {
    let capacity = Options::DEFAULT_CAPACITY * 3 + 7;
    let n = u32::try_from(capacity).unwrap();
    let broker: Broker<u32> = Broker::new();
    let mut newest = with(&broker, capacity, Policy::DropNewest);
    let mut oldest = with(&broker, capacity, Policy::DropOldest);
    let mut gone = with(&broker, capacity, Policy::Disconnect);
    for sub in [&mut newest, &mut oldest, &mut gone] {
        sub.subscribe("ch");
    }
    for i in 0..n + 2 {
        publish(&broker, "ch", i);
    }

    assert_eq!(newest.len(), capacity);
    assert_eq!(newest.stats().dropped, 2);
    let kept: Vec<_> = drain(&mut newest);
    assert_eq!(kept, (0..n).map(Ok).collect::<Vec<_>>());

    assert_eq!(oldest.len(), capacity);
    assert_eq!(oldest.stats().lagged, 2);
    let mut expected = vec![Err(RecvError::Lagged(2))];
    expected.extend((2..n + 2).map(Ok));
    assert_eq!(drain(&mut oldest), expected);

    assert!(gone.stats().disconnected);
    assert_eq!(gone.len(), capacity);
    let mut expected: Vec<_> = (0..n).map(Ok).collect();
    expected.push(Err(RecvError::Disconnected(DisconnectReason::Overflow {
        capacity,
    })));
    assert_eq!(drain(&mut gone), expected);
}
