//! The delivery structure: a `DropOldest` subscriber of one route reads the
//! route's shared ring; every other subscriber has a queue of its own. Both
//! must behave the same: order, lag counts, moves between the two, what an
//! unsubscribe keeps, and the end of the stream.

#![allow(clippy::unwrap_used)]

use tidings::{Broker, DisconnectReason, Namespace, Options, Policy, RecvError, TryRecvError};

fn drop_oldest(capacity: usize) -> Options {
    Options::new().capacity(capacity).policy(Policy::DropOldest)
}

fn drain<T: Copy + Sync>(sub: &mut tidings::Subscriber<T>) -> Vec<Result<T, RecvError>> {
    sub.try_iter().map(|r| r.map(|m| *m.payload())).collect()
}

#[test]
fn a_ring_reader_lags_like_a_queue() {
    for policy_capacity in [1usize, 2, 3, 8, 64] {
        let broker = Broker::new();
        let mut ring = broker
            .subscriber_with(drop_oldest(policy_capacity))
            .unwrap();
        ring.subscribe("t");
        // The same subscriber, forced into a queue of its own by holding a
        // second (silent) channel.
        let mut queued = broker
            .subscriber_with(drop_oldest(policy_capacity))
            .unwrap();
        queued.subscribe("t");
        queued.subscribe("silent");
        for round in 0..5u64 {
            let n = policy_capacity as u64 * (round + 1) + round;
            for i in 0..n {
                assert_eq!(broker.publish("t", i), 2);
            }
            let a = drain(&mut ring);
            let b = drain(&mut queued);
            assert_eq!(a, b, "capacity {policy_capacity}, round {round}");
            let lost = n.saturating_sub(policy_capacity as u64);
            let mut expected = Vec::new();
            if lost > 0 {
                expected.push(Err(RecvError::Lagged(lost)));
            }
            expected.extend((lost..n).map(Ok));
            assert_eq!(a, expected);
        }
        assert_eq!(ring.stats().lagged, queued.stats().lagged);
        assert_eq!(ring.stats().delivered, queued.stats().delivered);
        broker.check_invariants();
    }
}

#[test]
fn a_second_route_moves_the_ring_backlog_into_the_queue_in_order() {
    let broker = Broker::new();
    let mut sub = broker.subscriber_with(drop_oldest(4)).unwrap();
    sub.subscribe("a");
    for i in 0..6 {
        broker.publish("a", i);
    }
    // Holds two now: the backlog (2..6, after losing 0 and 1) moves over.
    sub.psubscribe("a*");
    let items = |sub: &mut tidings::Subscriber<i32>| -> Vec<_> {
        sub.try_iter()
            .map(|r| r.map(|m| (*m.payload(), m.namespace())))
            .collect()
    };
    assert_eq!(
        items(&mut sub),
        [
            Err(RecvError::Lagged(2)),
            Ok((2, Namespace::Channel)),
            Ok((3, Namespace::Channel)),
            Ok((4, Namespace::Channel)),
            Ok((5, Namespace::Channel)),
        ]
    );
    broker.publish("a", 6);
    assert_eq!(
        items(&mut sub),
        [Ok((6, Namespace::Channel)), Ok((6, Namespace::Pattern))]
    );
    // The queue has the same capacity: two more publishes (four
    // deliveries) overflow it by two, the oldest.
    broker.publish("a", 7);
    broker.publish("a", 8);
    broker.publish("a", 9);
    assert_eq!(
        items(&mut sub),
        [
            Err(RecvError::Lagged(2)),
            Ok((8, Namespace::Channel)),
            Ok((8, Namespace::Pattern)),
            Ok((9, Namespace::Channel)),
            Ok((9, Namespace::Pattern)),
        ]
    );
    broker.check_invariants();
}

#[test]
fn unsubscribing_keeps_what_was_delivered() {
    for options in [drop_oldest(8), Options::new()] {
        let broker = Broker::new();
        let mut sub = broker.subscriber_with(options).unwrap();
        sub.subscribe("a");
        broker.publish("a", 1);
        broker.publish("a", 2);
        sub.unsubscribe("a");
        broker.publish("a", 3);
        assert_eq!(drain(&mut sub), [Ok(1), Ok(2)]);
        // Subscribing again reads on from there.
        sub.subscribe("a");
        broker.publish("a", 4);
        assert_eq!(drain(&mut sub), [Ok(4)]);
        broker.check_invariants();
    }
}

#[test]
fn the_stream_ends_after_the_ring_is_read() {
    let broker = Broker::new();
    let mut sub = broker.subscriber_with(drop_oldest(8)).unwrap();
    sub.subscribe("a");
    broker.publish("a", 1);
    drop(broker);
    assert_eq!(*sub.recv().unwrap().payload(), 1);
    assert_eq!(
        sub.recv().unwrap_err(),
        RecvError::Disconnected(DisconnectReason::BrokerClosed)
    );
}

#[test]
fn many_ring_readers_each_get_every_message_once() {
    let broker = Broker::new();
    let mut subs: Vec<_> = (0..100)
        .map(|_| {
            let mut s = broker.subscriber_with(drop_oldest(16)).unwrap();
            s.subscribe("fan");
            s
        })
        .collect();
    for i in 0..10 {
        assert_eq!(broker.publish("fan", i), 100);
    }
    for s in &mut subs {
        assert_eq!(drain(s), (0..10).map(Ok).collect::<Vec<_>>());
        assert_eq!(s.try_recv().unwrap_err(), TryRecvError::Empty);
    }
    assert_eq!(broker.metrics().delivered, 1000);
    drop(subs);
    assert!(broker.is_idle());
    broker.check_invariants();
}

#[test]
fn a_blocking_receive_wakes_for_a_ring_message() {
    let broker = Broker::new();
    let mut sub = broker.subscriber_with(drop_oldest(8)).unwrap();
    sub.subscribe("a");
    let publisher = {
        let broker = broker.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            broker.publish("a", 7)
        })
    };
    let got = sub.recv_timeout(std::time::Duration::from_secs(10));
    assert_eq!(got.map(|m| *m.payload()), Ok(7));
    assert_eq!(publisher.join().unwrap(), 1);
}

/// One channel with 100,000 subscribers of each kind: every one receives
/// every message once, and subscribing, publishing and dropping them all
/// stays linear (a quadratic step would take minutes here, not seconds).
#[test]
fn one_channel_with_a_hundred_thousand_subscribers() {
    const N: usize = 100_000;
    for options in [drop_oldest(4), Options::new().capacity(4)] {
        let started = std::time::Instant::now();
        let broker = Broker::new();
        let mut subs: Vec<_> = (0..N)
            .map(|_| {
                let mut s = broker.subscriber_with(options).unwrap();
                s.subscribe("crowd");
                s
            })
            .collect();
        for i in 0..3 {
            assert_eq!(broker.publish("crowd", i), N);
        }
        for s in &mut subs {
            assert_eq!(drain(s), [Ok(0), Ok(1), Ok(2)]);
        }
        // Half of them leave in a scrambled order, the rest go on.
        let mut kept = Vec::new();
        for (i, s) in subs.into_iter().enumerate() {
            if (i * 7919) % 2 == 0 {
                drop(s);
            } else {
                kept.push(s);
            }
        }
        assert_eq!(broker.publish("crowd", 3), kept.len());
        assert_eq!(broker.numsub(Namespace::Channel, "crowd"), kept.len());
        drop(kept);
        assert!(broker.is_idle());
        broker.check_invariants();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "100,000 subscribers of one channel took {:?}",
            started.elapsed()
        );
    }
}

/// Names of a megabyte: subscribing, publishing (with a pattern matching
/// them) and receiving work, and the channel name is shared, not copied per
/// delivery.
#[test]
fn megabyte_names() {
    let broker = Broker::new();
    let big = vec![b'x'; 1 << 20];
    let mut pattern = big.clone();
    pattern.push(b'*');
    let mut sub = broker.subscriber();
    sub.subscribe(&big);
    sub.psubscribe(&pattern);
    sub.psubscribe("x*");
    assert_eq!(broker.publish(&big, 1), 3);
    let a = sub.try_recv().unwrap();
    let b = sub.try_recv().unwrap();
    assert_eq!(a.channel(), &big[..]);
    assert!(std::ptr::eq(a.channel().as_ptr(), b.channel().as_ptr()));
    assert_eq!(b.pattern(), Some(&pattern[..]));
    assert!(sub.try_recv().is_ok());
    broker.check_invariants();
}
