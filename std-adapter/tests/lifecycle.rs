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
use tidings::{Broker, DisconnectReason, MessageKind, RecvError, RecvTimeoutError, TryRecvError};

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
    assert_eq!(broker.numsub("shared"), 2);
    assert_eq!(broker.numpat(), 3);
    assert_eq!(broker.metrics().subscribers, 2);

    drop(gone);
    assert_eq!(broker.numsub("shared"), 1);
    assert_eq!(broker.numsub("only-gone"), 0);
    assert_eq!(broker.channels(None), [b"shared".to_vec()]);
    assert_eq!(broker.numpat(), 1);
    assert_eq!(broker.shard_channels(None), [b"{shard}".to_vec()]);
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
    assert!(broker.channels(None).is_empty());
    assert!(broker.shard_channels(None).is_empty());
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
    assert_eq!(broker.numsub("fresh"), 1);
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
        assert_eq!(broker.publish("ch", 1), 2);
        assert_eq!(clone.spublish("ch", 2), 1);

        drop(broker);
        // One handle is left: everything still works.
        assert_eq!(clone.publish("ch", 3), 2);
        assert_eq!(clone.numsub("ch"), 1);
        assert_eq!(exact.len(), 2);

        drop(clone);
        let closed = RecvError::Disconnected(DisconnectReason::BrokerClosed);
        for (sub, expected) in [
            (&mut exact, vec![1, 3]),
            (&mut pattern, vec![1, 3]),
            (&mut shard, vec![2]),
        ] {
            for want in expected {
                assert_eq!(*sub.recv().unwrap().payload(), want);
            }
            assert_eq!(sub.recv().unwrap_err(), closed);
            assert_eq!(sub.recv().unwrap_err(), closed, "terminal");
            assert!(!sub.stats().disconnected, "not a policy disconnect");
        }
        // Subscribing afterwards is harmless, and dropping after the broker is fine.
        exact.subscribe("late");
        assert_eq!(exact.recv().unwrap_err(), closed);
        drop((exact, pattern, shard));
    });
}

/// A subscriber blocked in `recv` on another thread wakes up with
/// `BrokerClosed` when the last handle goes, after what was queued.
#[test]
fn a_blocked_receiver_wakes_when_the_broker_closes() {
    with_watchdog(Duration::from_secs(30), || {
        let broker: Broker<u32> = Broker::new();
        let mut sub = broker.subscriber();
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
                    let expected = [
                        MessageKind::Message,
                        MessageKind::PMessage,
                        MessageKind::SMessage,
                    ];
                    assert_eq!(m.kind(), expected[kind as usize]);
                    sub.unsubscribe_all();
                    sub.punsubscribe_all();
                    sub.sunsubscribe_all();
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
    assert_eq!(publish(&broker, "ch", 1), 1);
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
    assert_eq!(publish(&broker, "ch", 3), 3);
    let got: Vec<(MessageKind, u32)> = late
        .try_iter()
        .map(|m| {
            let m = m.unwrap();
            (m.kind(), *m.payload())
        })
        .collect();
    assert_eq!(got, [(MessageKind::Message, 3), (MessageKind::PMessage, 3)]);
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

    let got: Vec<(MessageKind, u32)> = sub
        .try_iter()
        .map(|m| {
            let m = m.unwrap();
            (m.kind(), *m.payload())
        })
        .collect();
    assert_eq!(
        got,
        [
            (MessageKind::Message, 1),
            (MessageKind::PMessage, 1),
            (MessageKind::SMessage, 1),
            (MessageKind::PMessage, 2),
            (MessageKind::SMessage, 3),
        ]
    );
    // The "all" forms too.
    sub.subscribe("a");
    sub.subscribe("b");
    sub.psubscribe("x*");
    sub.ssubscribe("s");
    sub.unsubscribe_all();
    sub.punsubscribe_all();
    sub.sunsubscribe_all();
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
