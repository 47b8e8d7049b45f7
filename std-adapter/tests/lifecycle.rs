//! Lifecycle guarantees: what dropping a subscriber or every broker handle
//! does, when a subscription becomes active, at-most-once delivery, and
//! unsubscribing.
#![allow(clippy::unwrap_used)]

#[allow(dead_code, unreachable_pub)]
mod support;

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use support::{LIVENESS, publish, spublish, with_watchdog};
use tidings::{
    Broker, DisconnectReason, Namespace, Options, Policy, RecvError, RecvTimeoutError, Subscriber,
    TryRecvError,
};

/// A `DropOldest` subscriber with room for every message in these tests:
/// holding one route, it reads that route's shared ring.
fn ring_reader(broker: &Broker<u32>) -> Subscriber<u32> {
    broker
        .subscriber_with(Options::new().policy(Policy::DropOldest))
        .unwrap()
}

#[test]
fn dropping_a_subscriber_unsubscribes_everything() {
    let broker: Broker<u32> = Broker::new();
    let mut keep = broker.subscriber();
    let mut gone = broker.subscriber();
    keep.subscribe("shared");
    keep.psubscribe("s*");
    keep.ssubscribe("{shard}");
    for ch in ["shared", "only-gone", "also-gone"] {
        gone.subscribe(ch);
    }
    for p in ["s*", "o*", "a?so-*"] {
        gone.psubscribe(p);
    }
    gone.ssubscribe("{shard}");
    gone.ssubscribe("{only}");
    assert_eq!(broker.numsub(Namespace::Channel, "shared"), 2);
    assert_eq!(broker.numpat(), 3);
    assert_eq!(broker.metrics().subscribers, 2);

    drop(gone);
    assert_eq!(broker.numsub(Namespace::Channel, "shared"), 1);
    assert_eq!(broker.numsub(Namespace::Channel, "only-gone"), 0);
    assert_eq!(
        broker.channels(Namespace::Channel, None),
        [b"shared".to_vec()]
    );
    assert_eq!(broker.numpat(), 1);
    assert_eq!(
        broker.channels(Namespace::Shard, None),
        [b"{shard}".to_vec()]
    );
    assert_eq!(broker.metrics().subscribers, 1);
    broker.check_invariants();
    assert_eq!(publish(&broker, "only-gone", 1), 0);
    assert_eq!(
        publish(&broker, "something", 1),
        1,
        "only keep's s* is left"
    );
    assert_eq!(publish(&broker, "also-gone", 1), 0);
    assert_eq!(spublish(&broker, "{only}", 1), 0);

    drop(keep);
    assert!(broker.is_idle());
    assert_eq!(broker.numpat(), 0);
    assert!(broker.channels(Namespace::Channel, None).is_empty());
    assert!(broker.channels(Namespace::Shard, None).is_empty());
    assert_eq!(broker.metrics().subscribers, 0);
    broker.check_invariants();
}

/// Churn through many subscribers; the registry holds only what is held now.
#[test]
fn subscriber_churn_leaves_nothing_behind() {
    let broker: Broker<u32> = Broker::new();
    let mut alive = Vec::new();
    for i in 0..500u32 {
        let mut sub = broker.subscriber();
        sub.subscribe(format!("ch{}", i % 7));
        sub.psubscribe(format!("p{}*", i % 5));
        sub.ssubscribe(format!("s{}", i % 3));
        alive.push(sub);
        if i % 3 != 0 {
            alive.swap_remove((i as usize * 31) % alive.len());
        }
        broker.check_invariants();
    }
    assert!(!broker.is_idle());
    // A slot reused by a new subscriber does not receive the old one's messages.
    let mut fresh = broker.subscriber();
    fresh.subscribe("fresh");
    assert_eq!(broker.numsub(Namespace::Channel, "fresh"), 1);
    alive.clear();
    assert_eq!(broker.publish("ch1", 1), 0);
    assert_eq!(fresh.try_recv().unwrap_err(), TryRecvError::Empty);
    drop(fresh);
    assert!(broker.is_idle());
    assert_eq!(broker.numpat(), 0);
    assert_eq!(broker.metrics().subscribers, 0);
    broker.check_invariants();
}

#[test]
fn dropping_every_broker_handle_drains_then_disconnects() {
    with_watchdog(support::WATCHDOG, || {
        let broker: Broker<u32> = Broker::new();
        let clone = broker.clone();
        let mut exact = broker.subscriber();
        let mut pattern = clone.subscriber();
        let mut shard = broker.subscriber();
        exact.subscribe("ch");
        pattern.psubscribe("c*");
        shard.ssubscribe("ch");
        // DropOldest subscribers of one route read its shared ring.
        let mut ring_exact = ring_reader(&broker);
        let mut ring_pattern = ring_reader(&clone);
        let mut ring_shard = ring_reader(&broker);
        ring_exact.subscribe("ch");
        ring_pattern.psubscribe("c*");
        ring_shard.ssubscribe("ch");
        assert_eq!(broker.publish("ch", 1), 4);
        assert_eq!(clone.spublish("ch", 2), 2);

        drop(broker);
        // One handle is left: everything still works.
        assert_eq!(clone.publish("ch", 3), 4);
        assert_eq!(clone.numsub(Namespace::Channel, "ch"), 2);
        assert_eq!(exact.len(), 2);
        assert_eq!(ring_exact.len(), 2);

        drop(clone);
        let closed = RecvError::Disconnected(DisconnectReason::BrokerClosed);
        for (what, sub, expected) in [
            ("exact", &mut exact, vec![1, 3]),
            ("pattern", &mut pattern, vec![1, 3]),
            ("shard", &mut shard, vec![2]),
            ("ring exact", &mut ring_exact, vec![1, 3]),
            ("ring pattern", &mut ring_pattern, vec![1, 3]),
            ("ring shard", &mut ring_shard, vec![2]),
        ] {
            for want in expected {
                assert_eq!(*sub.recv().unwrap().payload(), want, "{what}");
            }
            assert_eq!(sub.recv().unwrap_err(), closed, "{what}");
            assert_eq!(sub.recv().unwrap_err(), closed, "{what}: terminal");
            assert_eq!(
                sub.try_recv().unwrap_err(),
                TryRecvError::Disconnected(DisconnectReason::BrokerClosed),
                "{what}: terminal"
            );
            assert!(!sub.stats().disconnected, "{what}: not a policy disconnect");
        }
        // Subscribing afterwards is harmless, and dropping after the broker is fine.
        exact.subscribe("late");
        assert_eq!(exact.recv().unwrap_err(), closed);
        ring_exact.subscribe("late");
        assert_eq!(ring_exact.recv().unwrap_err(), closed);
        drop((exact, pattern, shard));
        drop((ring_exact, ring_pattern, ring_shard));
    });
}

/// A subscriber blocked in `recv` on another thread wakes up with
/// `BrokerClosed` when the last handle goes, after what was queued.
#[test]
fn a_blocked_receiver_wakes_when_the_broker_closes() {
    blocked_receiver_wakes_when_the_broker_closes(Options::new());
}

/// The same for a reader of one channel's shared ring.
#[test]
fn a_blocked_ring_reader_wakes_when_the_broker_closes() {
    blocked_receiver_wakes_when_the_broker_closes(Options::new().policy(Policy::DropOldest));
}

fn blocked_receiver_wakes_when_the_broker_closes(options: Options) {
    with_watchdog(Duration::from_secs(30), move || {
        let broker: Broker<u32> = Broker::new();
        let mut sub = broker.subscriber_with(options).unwrap();
        sub.subscribe("ch");
        let (ready_tx, ready) = mpsc::channel();
        let reader = thread::spawn(move || {
            ready_tx.send(()).unwrap();
            let mut got = Vec::new();
            loop {
                match sub.recv() {
                    Ok(m) => got.push(*m.payload()),
                    Err(e) => return (got, e),
                }
            }
        });
        ready.recv_timeout(LIVENESS).unwrap();
        broker.publish("ch", 1);
        broker.publish("ch", 2);
        let clone = broker.clone();
        drop(broker);
        clone.publish("ch", 3);
        drop(clone);
        let (got, err) = reader.join().unwrap();
        assert_eq!(got, [1, 2, 3]);
        assert_eq!(err, RecvError::Disconnected(DisconnectReason::BrokerClosed));
    });
}

/// A subscription is active for every publish that starts after its call
/// returns: the subscribing thread signals only after `subscribe` returns,
/// and the publisher publishes only after the signal.
#[test]
fn a_subscription_is_active_once_its_call_returns() {
    const ROUNDS: u32 = 1000;
    with_watchdog(Duration::from_secs(60), || {
        let broker: Broker<u32> = Broker::new();
        let (subscribed_tx, subscribed) = mpsc::channel::<(u32, u8)>();
        let (done_tx, done) = mpsc::channel::<()>();
        let subscriber = {
            let broker = broker.clone();
            thread::spawn(move || {
                let mut sub = broker.subscriber();
                for i in 0..ROUNDS {
                    let kind = (i % 3) as u8;
                    let name = format!("round:{i}");
                    match kind {
                        0 => sub.subscribe(&name),
                        1 => sub.psubscribe(format!("round:{i}*")),
                        _ => sub.ssubscribe(&name),
                    };
                    subscribed_tx.send((i, kind)).unwrap();
                    let m = sub.recv_timeout(LIVENESS).unwrap();
                    assert_eq!(*m.payload(), i);
                    assert_eq!(m.channel(), name.as_bytes());
                    let expected = [Namespace::Channel, Namespace::Pattern, Namespace::Shard];
                    assert_eq!(m.namespace(), expected[kind as usize]);
                    sub.unsubscribe_all(Namespace::Channel);
                    sub.unsubscribe_all(Namespace::Pattern);
                    sub.unsubscribe_all(Namespace::Shard);
                    done_tx.send(()).unwrap();
                }
            })
        };
        for _ in 0..ROUNDS {
            let (i, kind) = subscribed.recv_timeout(LIVENESS).unwrap();
            let name = format!("round:{i}");
            let n = if kind == 2 {
                broker.spublish(&name, i)
            } else {
                broker.publish(&name, i)
            };
            assert_eq!(n, 1, "round {i}: the subscription was not active");
            done.recv_timeout(LIVENESS).unwrap();
        }
        subscriber.join().unwrap();
        assert!(broker.is_idle());
        broker.check_invariants();
    });
}

/// At most once: a subscriber not subscribed when a message is published
/// never sees it, whatever it subscribes to later.
#[test]
fn at_most_once_no_message_from_before_the_subscription() {
    let broker: Broker<u32> = Broker::new();
    let mut early = broker.subscriber();
    early.subscribe("ch");
    // A reader of the channel's shared ring leaves message 1 in the ring.
    let mut early_ring = ring_reader(&broker);
    early_ring.subscribe("ch");
    assert_eq!(publish(&broker, "ch", 1), 2);
    assert_eq!(spublish(&broker, "ch", 2), 0);

    let mut late = broker.subscriber();
    late.subscribe("ch");
    late.psubscribe("c*");
    late.ssubscribe("ch");
    assert_eq!(late.try_recv().unwrap_err(), TryRecvError::Empty);
    assert_eq!(
        late.recv_timeout(Duration::from_millis(10)).unwrap_err(),
        RecvTimeoutError::Timeout
    );
    // A late reader of the same ring starts after what is in it.
    let mut late_ring = ring_reader(&broker);
    late_ring.subscribe("ch");
    assert_eq!(late_ring.len(), 0);
    assert_eq!(late_ring.try_recv().unwrap_err(), TryRecvError::Empty);
    assert_eq!(
        late_ring
            .recv_timeout(Duration::from_millis(10))
            .unwrap_err(),
        RecvTimeoutError::Timeout
    );
    assert_eq!(publish(&broker, "ch", 3), 5);
    let got: Vec<u32> = late_ring
        .try_iter()
        .map(|m| *m.unwrap().payload())
        .collect();
    assert_eq!(got, [3]);
    let got: Vec<u32> = early_ring
        .try_iter()
        .map(|m| *m.unwrap().payload())
        .collect();
    assert_eq!(got, [1, 3], "and each message exactly once");
    let got: Vec<(Namespace, u32)> = late
        .try_iter()
        .map(|m| {
            let m = m.unwrap();
            (m.namespace(), *m.payload())
        })
        .collect();
    assert_eq!(got, [(Namespace::Channel, 3), (Namespace::Pattern, 3)]);
    let got: Vec<u32> = early.try_iter().map(|m| *m.unwrap().payload()).collect();
    assert_eq!(got, [1, 3], "and each message exactly once");
}

/// After an unsubscribe returns, later publishes are not received; what
/// was queued before stays receivable.
#[test]
fn unsubscribe_stops_later_messages() {
    let broker: Broker<u32> = Broker::new();
    let mut sub = broker.subscriber();
    sub.subscribe("ch");
    sub.psubscribe("c*");
    sub.ssubscribe("ch");
    assert_eq!(publish(&broker, "ch", 1), 2);
    assert_eq!(spublish(&broker, "ch", 1), 1);

    sub.unsubscribe("ch");
    assert_eq!(publish(&broker, "ch", 2), 1, "the pattern remains");
    sub.punsubscribe("c*");
    assert_eq!(publish(&broker, "ch", 3), 0);
    assert_eq!(spublish(&broker, "ch", 3), 1, "the shard channel remains");
    sub.sunsubscribe("ch");
    assert_eq!(spublish(&broker, "ch", 4), 0);
    assert!(broker.is_idle());

    let got: Vec<(Namespace, u32)> = sub
        .try_iter()
        .map(|m| {
            let m = m.unwrap();
            (m.namespace(), *m.payload())
        })
        .collect();
    assert_eq!(
        got,
        [
            (Namespace::Channel, 1),
            (Namespace::Pattern, 1),
            (Namespace::Shard, 1),
            (Namespace::Pattern, 2),
            (Namespace::Shard, 3),
        ]
    );
    // The "all" forms too.
    sub.subscribe("a");
    sub.subscribe("b");
    sub.psubscribe("x*");
    sub.ssubscribe("s");
    sub.unsubscribe_all(Namespace::Channel);
    sub.unsubscribe_all(Namespace::Pattern);
    sub.unsubscribe_all(Namespace::Shard);
    assert!(broker.is_idle());
    for ch in ["a", "b", "xa"] {
        assert_eq!(publish(&broker, ch, 9), 0);
    }
    assert_eq!(spublish(&broker, "s", 9), 0);
    assert!(sub.try_recv().is_err());
    // Still usable: subscribe again.
    sub.subscribe("a");
    assert_eq!(publish(&broker, "a", 10), 1);
    assert_eq!(*sub.try_recv().unwrap().payload(), 10);
}

/// Dropping a subscriber on one thread while another publishes to it:
/// every publish is accounted for, nothing panics, and the registry ends
/// empty.
#[test]
fn dropping_subscribers_while_publishing() {
    with_watchdog(Duration::from_secs(60), || {
        let broker: Broker<u32> = Broker::new();
        let publisher = {
            let broker = broker.clone();
            thread::spawn(move || {
                let mut total = 0u64;
                for i in 0..5000 {
                    total += broker.publish("hot", i) as u64;
                }
                total
            })
        };
        for _ in 0..300 {
            let mut sub = broker.subscriber();
            sub.subscribe("hot");
            sub.psubscribe("h*");
            let _ = sub.try_recv();
            drop(sub);
        }
        let total = publisher.join().unwrap();
        let m = broker.metrics();
        assert_eq!(total, m.delivered + m.dropped);
        assert!(broker.is_idle());
        broker.check_invariants();
    });
}

/// A reader of a channel's shared ring that unsubscribes keeps what was
/// delivered before (moved to its own queue), and gets nothing published
/// after; subscribing again starts afresh.
#[test]
fn a_ring_reader_keeps_its_backlog_when_it_unsubscribes() {
    let broker: Broker<u32> = Broker::new();
    let mut sub = ring_reader(&broker);
    let mut other = ring_reader(&broker);
    sub.subscribe("ch");
    other.subscribe("ch");
    for i in 1..=3 {
        assert_eq!(publish(&broker, "ch", i), 2);
    }
    assert_eq!(*sub.try_recv().unwrap().payload(), 1);
    sub.unsubscribe("ch");
    assert_eq!(broker.numsub(Namespace::Channel, "ch"), 1);
    assert_eq!(publish(&broker, "ch", 4), 1);
    assert_eq!(sub.len(), 2);
    let got: Vec<u32> = sub.try_iter().map(|m| *m.unwrap().payload()).collect();
    assert_eq!(got, [2, 3]);
    assert_eq!(sub.try_recv().unwrap_err(), TryRecvError::Empty);
    assert_eq!(sub.stats().delivered, 3);
    // The other reader of the ring is unaffected.
    let got: Vec<u32> = other.try_iter().map(|m| *m.unwrap().payload()).collect();
    assert_eq!(got, [1, 2, 3, 4]);
    // Again, as the last reader: the route goes, the backlog stays.
    drop(other);
    sub.subscribe("ch");
    assert_eq!(publish(&broker, "ch", 5), 1);
    assert_eq!(publish(&broker, "ch", 6), 1);
    sub.unsubscribe("ch");
    assert!(broker.is_idle());
    assert_eq!(publish(&broker, "ch", 7), 0);
    let got: Vec<u32> = sub.try_iter().map(|m| *m.unwrap().payload()).collect();
    assert_eq!(got, [5, 6]);
    let stats = sub.stats();
    assert_eq!((stats.delivered, stats.lagged, stats.queued), (5, 0, 0));
    broker.check_invariants();

    // A loss in the ring that the reader was not told of yet is told after
    // the unsubscribe, and counted once.
    let mut sub = broker
        .subscriber_with(Options::new().capacity(2).policy(Policy::DropOldest))
        .unwrap();
    sub.subscribe("ch");
    for i in 1..=4 {
        assert_eq!(publish(&broker, "ch", i), 1); // 1 and 2 are overwritten
    }
    assert_eq!(sub.stats().lagged, 2);
    sub.unsubscribe("ch");
    let got: Vec<Result<u32, RecvError>> =
        sub.try_iter().map(|m| m.map(|m| *m.payload())).collect();
    assert_eq!(got, [Err(RecvError::Lagged(2)), Ok(3), Ok(4)]);
    let stats = sub.stats();
    assert_eq!((stats.delivered, stats.lagged, stats.queued), (4, 2, 0));
    assert_eq!(broker.metrics().lagged, 2);
}

/// A reader of a channel's shared ring that takes a second subscription
/// moves to a queue of its own: what it had not taken, and any loss it had
/// not been told of, come first, in order, then both routes' messages.
#[test]
fn a_ring_reader_that_takes_a_second_route_loses_nothing_and_keeps_the_order() {
    let broker: Broker<u32> = Broker::new();
    let mut sub = broker
        .subscriber_with(Options::new().capacity(4).policy(Policy::DropOldest))
        .unwrap();
    sub.subscribe("a");
    for i in 1..=6 {
        assert_eq!(publish(&broker, "a", i), 1); // 1 and 2 are overwritten
    }
    sub.psubscribe("*"); // a second route: its own queue from now on
    assert_eq!(sub.len(), 4, "3 to 6 moved to its queue");
    assert_eq!(publish(&broker, "b", 7), 1); // pushes 3 out
    let got: Vec<Result<(Namespace, u32), RecvError>> = sub
        .try_iter()
        .map(|m| m.map(|m| (m.namespace(), *m.payload())))
        .collect();
    assert_eq!(
        got,
        [
            Err(RecvError::Lagged(3)),
            Ok((Namespace::Channel, 4)),
            Ok((Namespace::Channel, 5)),
            Ok((Namespace::Channel, 6)),
            Ok((Namespace::Pattern, 7)),
        ]
    );
    let stats = sub.stats();
    assert_eq!((stats.delivered, stats.lagged, stats.queued), (7, 3, 0));
    assert_eq!(broker.metrics().lagged, 3);
    assert_eq!(publish(&broker, "a", 8), 2);
    let got: Vec<Result<(Namespace, u32), RecvError>> = sub
        .try_iter()
        .map(|m| m.map(|m| (m.namespace(), *m.payload())))
        .collect();
    assert_eq!(
        got,
        [Ok((Namespace::Channel, 8)), Ok((Namespace::Pattern, 8))]
    );
    drop(sub);

    // Without loss: a backlog moves over whole.
    let mut sub = ring_reader(&broker);
    sub.subscribe("c");
    for i in 10..13 {
        assert_eq!(publish(&broker, "c", i), 1);
    }
    sub.subscribe("d");
    assert_eq!(publish(&broker, "d", 13), 1);
    assert_eq!(publish(&broker, "c", 14), 1);
    let got: Vec<u32> = sub.try_iter().map(|m| *m.unwrap().payload()).collect();
    assert_eq!(got, [10, 11, 12, 13, 14]);
    assert_eq!(sub.stats().delivered, 5);
    broker.check_invariants();
}

/// Ring readers dropped while another thread publishes to their channel:
/// every publish is accounted for, nothing panics, and the registry ends
/// empty.
#[test]
fn dropping_ring_readers_while_publishing() {
    with_watchdog(Duration::from_secs(60), || {
        let broker: Broker<u32> = Broker::new();
        let publisher = {
            let broker = broker.clone();
            thread::spawn(move || {
                let mut total = 0u64;
                for i in 0..5000 {
                    total += broker.publish("hot", i) as u64;
                }
                total
            })
        };
        let mut keep = Vec::new();
        for round in 0..300 {
            let mut sub = broker
                .subscriber_with(Options::new().capacity(8).policy(Policy::DropOldest))
                .unwrap();
            sub.subscribe("hot");
            let _ = sub.try_recv();
            if round % 7 == 0 {
                keep.push(sub); // some stay a while, so the ring lives on
            } else {
                drop(sub);
            }
            if keep.len() > 3 {
                keep.remove(0);
            }
        }
        drop(keep);
        let total = publisher.join().unwrap();
        let m = broker.metrics();
        assert_eq!(total, m.delivered + m.dropped);
        assert!(broker.is_idle());
        broker.check_invariants();
    });
}
