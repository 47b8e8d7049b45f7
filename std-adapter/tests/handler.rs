//! `Broker::handler`: subscribers without a queue, whose messages are handed
//! to a function on the delivering thread.
#![allow(clippy::unwrap_used)]

#[allow(dead_code, unreachable_pub)]
mod support;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use support::{publish, with_watchdog};
use tidings::{Broker, Message, Namespace, Policy};

type Log = Arc<Mutex<Vec<(Namespace, Vec<u8>, Option<Vec<u8>>, u32)>>>;

/// A handler that records every message it is given.
fn recorder(broker: &Broker<u32>) -> (tidings::Handler<u32>, Log) {
    let log: Log = Arc::default();
    let sink = Arc::clone(&log);
    let handler = broker.handler(move |m: Message<u32>| {
        sink.lock().unwrap().push((
            m.namespace(),
            m.channel().to_vec(),
            m.pattern().map(<[u8]>::to_vec),
            *m.payload(),
        ));
    });
    (handler, log)
}

#[test]
fn a_handler_gets_each_delivery_before_publish_returns_in_delivery_order() {
    let broker: Broker<u32> = Broker::new();
    let (mut handler, log) = recorder(&broker);
    let c = handler.subscribe("orders");
    assert_eq!((c.command(), c.count), ("subscribe", 1));
    assert_eq!(handler.psubscribe("ord*").count, 2);
    assert_eq!(handler.ssubscribe("orders").count, 1);
    let mut sub = broker.subscriber();
    sub.subscribe("orders");

    // `publish` checks that its count matches the metrics.
    assert_eq!(publish(&broker, "orders", 7), 3);
    assert_eq!(
        *log.lock().unwrap(),
        [
            (Namespace::Channel, b"orders".to_vec(), None, 7),
            (
                Namespace::Pattern,
                b"orders".to_vec(),
                Some(b"ord*".to_vec()),
                7
            ),
        ]
    );
    assert_eq!(*sub.try_recv().unwrap().payload(), 7);
    assert_eq!(broker.spublish("orders", 8), 1);
    assert_eq!(log.lock().unwrap()[2].0, Namespace::Shard);

    // Introspection counts it like any subscriber.
    assert_eq!(
        (broker.numsub(Namespace::Channel, "orders"), broker.numpat()),
        (2, 1)
    );
    assert_eq!(handler.counts().channels, 1);
    assert_eq!(handler.unsubscribe_all(Namespace::Channel).len(), 1);
    assert_eq!(handler.punsubscribe("ord*").count, 0);
    assert_eq!(publish(&broker, "orders", 9), 1);
    assert_eq!(log.lock().unwrap().len(), 3);
}

#[test]
fn dropping_a_handler_unsubscribes_it_and_ends_the_calls() {
    let broker: Broker<u32> = Broker::new();
    let lost = Arc::new(Mutex::new(Vec::new()));
    let watch = {
        let lost = Arc::clone(&lost);
        broker.watch_interest(move |c| {
            if !c.active {
                lost.lock().unwrap().push(c.name.to_vec());
            }
        })
    };
    let (mut handler, log) = recorder(&broker);
    handler.subscribe("a");
    handler.psubscribe("b*");
    assert_eq!(broker.publish("a", 1), 1);
    drop(handler);
    assert_eq!(broker.publish("a", 2), 0);
    assert_eq!(broker.publish("bee", 3), 0);
    assert_eq!(log.lock().unwrap().len(), 1);
    let mut lost = lost.lock().unwrap().clone();
    lost.sort();
    assert_eq!(lost, [b"a".to_vec(), b"b*".to_vec()]);
    assert!(broker.is_idle());
    drop(watch);
}

#[test]
fn one_publishers_messages_reach_a_handler_in_order() {
    let broker: Broker<u32> = Broker::new();
    let (mut handler, log) = recorder(&broker);
    handler.subscribe("seq");
    let publisher = {
        let broker = broker.clone();
        thread::spawn(move || {
            for i in 0..10_000 {
                broker.publish("seq", i);
            }
        })
    };
    publisher.join().unwrap();
    let payloads: Vec<u32> = log.lock().unwrap().iter().map(|e| e.3).collect();
    assert_eq!(payloads, (0..10_000).collect::<Vec<_>>());
}

#[test]
fn concurrent_publishers_call_a_handler_once_per_delivery() {
    let broker: Broker<u32> = Broker::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut handler = {
        let calls = Arc::clone(&calls);
        broker.handler(move |_| {
            calls.fetch_add(1, Ordering::Relaxed);
        })
    };
    handler.subscribe("x");
    handler.psubscribe("*");
    let publishers: Vec<_> = (0..4)
        .map(|_| {
            let broker = broker.clone();
            thread::spawn(move || (0..5_000).map(|i| broker.publish("x", i)).sum::<usize>())
        })
        .collect();
    let returned: usize = publishers.into_iter().map(|p| p.join().unwrap()).sum();
    assert_eq!(returned, 4 * 5_000 * 2);
    assert_eq!(calls.load(Ordering::Relaxed), returned);
    assert_eq!(broker.metrics().delivered, returned as u64);
}

/// A handler runs after the publish released the broker's locks: it may
/// publish (also to its own channel), subscribe and unsubscribe.
#[test]
fn a_handler_may_publish_and_subscribe_from_inside() {
    with_watchdog(Duration::from_secs(30), || {
        let broker: Broker<u32> = Broker::new();
        let mut echo = broker.subscriber();
        echo.subscribe("echo");
        let inner = broker.clone();
        let extra = Arc::new(Mutex::new(None));
        let slot = Arc::clone(&extra);
        let mut handler = broker.handler(move |m: Message<u32>| {
            let n = *m.payload();
            if n > 0 {
                // Its own channel: one more call, with n - 1.
                inner.publish("count", n - 1);
            }
            inner.publish("echo", n);
            let mut sub = inner.subscriber();
            sub.subscribe("count");
            *slot.lock().unwrap() = Some(sub);
        });
        handler.subscribe("count");
        assert_eq!(broker.publish("count", 3), 1);
        let echoed: Vec<u32> = echo.try_iter().map(|m| *m.unwrap().payload()).collect();
        assert_eq!(echoed, [0, 1, 2, 3]);
        // The subscriber the handler made last holds "count" too.
        assert_eq!(broker.numsub(Namespace::Channel, "count"), 2);
        drop(extra);
    });
}

#[test]
fn a_panicking_handler_unwinds_into_its_publisher_and_leaves_the_broker_sound() {
    let broker: Broker<u32> = Broker::new();
    let mut handler = broker.handler(|m: Message<u32>| {
        assert!(*m.payload() != 13, "unlucky");
    });
    handler.subscribe("ch");
    let mut sub = broker
        .subscriber_with(tidings::Options::new().policy(Policy::DropNewest))
        .unwrap();
    sub.subscribe("ch");

    let result = catch_unwind(AssertUnwindSafe(|| broker.publish("ch", 13)));
    assert!(result.is_err());
    // The queued delivery happened, and the counters include both.
    assert_eq!(*sub.try_recv().unwrap().payload(), 13);
    assert_eq!(broker.metrics().delivered, 2);
    // Nothing is poisoned or held.
    assert_eq!(publish(&broker, "ch", 14), 2);
    assert_eq!(*sub.try_recv().unwrap().payload(), 14);
    handler.unsubscribe("ch");
    assert_eq!(broker.numsub(Namespace::Channel, "ch"), 1);
}

/// User code the broker holds (a handler's function, an interest hook) is
/// dropped with no lock held, so it may own subscribers and broker handles.
#[test]
fn user_code_owning_subscribers_is_dropped_without_deadlock() {
    with_watchdog(Duration::from_secs(30), || {
        let broker: Broker<u32> = Broker::new();
        let owned = broker.subscriber();
        let mut handler = broker.handler(move |_| {
            let _ = owned.counts();
        });
        handler.subscribe("a");
        drop(handler);

        let owned = broker.subscriber();
        let watch = broker.watch_interest(move |_| {
            let _ = owned.counts();
        });
        drop(watch);

        // Closing the broker drops a live handler's function too.
        let inner = broker.subscriber();
        let mut handler = broker.handler(move |_| {
            let _ = inner.counts();
        });
        handler.subscribe("b");
        drop(broker);
        drop(handler);
    });
}
