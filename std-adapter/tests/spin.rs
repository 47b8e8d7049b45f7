//! `Options::spin`: a blocking receive that polls before it sleeps changes
//! when the receiver wakes, never what it receives.
#![allow(clippy::unwrap_used)]

#[allow(dead_code, unreachable_pub)]
mod support;

use std::thread;
use std::time::{Duration, Instant};

use support::with_watchdog;
use tidings::{Broker, DisconnectReason, Options, Policy, RecvError, RecvTimeoutError};

fn spinning(spin: Duration) -> Options {
    Options::new().spin(spin)
}

/// Publishes `payload` to `c` from another thread after `delay`.
fn publish_after(broker: &Broker<i32>, delay: Duration, payload: i32) -> thread::JoinHandle<usize> {
    let broker = broker.clone();
    thread::spawn(move || {
        thread::sleep(delay);
        broker.publish("c", payload)
    })
}

#[test]
fn a_message_published_during_the_spin_is_received() {
    message_published_during_the_spin_is_received(Policy::Disconnect);
}

/// The same for a reader of one channel's shared ring.
#[test]
fn a_message_published_during_the_spin_is_received_by_a_ring_reader() {
    message_published_during_the_spin_is_received(Policy::DropOldest);
}

fn message_published_during_the_spin_is_received(policy: Policy) {
    with_watchdog(support::WATCHDOG, move || {
        let broker = Broker::new();
        let mut sub = broker
            .subscriber_with(spinning(Duration::from_secs(2)).policy(policy))
            .unwrap();
        sub.subscribe("c");
        let publisher = publish_after(&broker, Duration::from_millis(5), 1);
        assert_eq!(*sub.recv().unwrap().payload(), 1);
        assert_eq!(publisher.join().unwrap(), 1);
    });
}

#[test]
fn after_the_spin_the_receiver_sleeps_and_still_receives() {
    for policy in [Policy::Disconnect, Policy::DropOldest] {
        after_the_spin_the_receiver_sleeps(policy);
    }
}

fn after_the_spin_the_receiver_sleeps(policy: Policy) {
    with_watchdog(support::WATCHDOG, move || {
        let broker = Broker::new();
        let mut sub = broker
            .subscriber_with(spinning(Duration::from_micros(50)).policy(policy))
            .unwrap();
        sub.subscribe("c");
        let publisher = publish_after(&broker, Duration::from_millis(30), 2);
        assert_eq!(*sub.recv().unwrap().payload(), 2);
        publisher.join().unwrap();
        // And a timed receive: spin, then the rest of the timeout asleep.
        let start = Instant::now();
        assert_eq!(
            sub.recv_timeout(Duration::from_millis(20)).unwrap_err(),
            RecvTimeoutError::Timeout
        );
        assert!(start.elapsed() >= Duration::from_millis(20));
    });
}

#[test]
fn a_timeout_shorter_than_the_spin_ends_the_spin() {
    with_watchdog(support::WATCHDOG, || {
        let broker: Broker<u8> = Broker::new();
        // Longer than any Instant can reach: must not overflow or spin forever.
        for spin in [Duration::from_secs(3600), Duration::MAX] {
            let mut sub = broker.subscriber_with(spinning(spin)).unwrap();
            sub.subscribe("c");
            let start = Instant::now();
            assert_eq!(
                sub.recv_timeout(Duration::from_millis(10)).unwrap_err(),
                RecvTimeoutError::Timeout
            );
            let took = start.elapsed();
            assert!(took >= Duration::from_millis(10), "{took:?}");
            assert!(took < Duration::from_secs(2), "{took:?}");
        }
    });
}

#[test]
fn disconnection_ends_a_spin() {
    with_watchdog(support::WATCHDOG, || {
        let broker: Broker<u8> = Broker::new();
        let mut sub = broker.subscriber_with(spinning(Duration::MAX)).unwrap();
        sub.subscribe("c");
        let dropper = thread::spawn(move || {
            thread::sleep(Duration::from_millis(5));
            broker.publish("c", 7);
            drop(broker);
        });
        assert_eq!(*sub.recv().unwrap().payload(), 7);
        assert_eq!(
            sub.recv().unwrap_err(),
            RecvError::Disconnected(DisconnectReason::BrokerClosed)
        );
        dropper.join().unwrap();
    });
}

#[test]
fn lag_is_reported_the_same_while_spinning() {
    with_watchdog(support::WATCHDOG, || {
        let broker = Broker::new();
        let mut sub = broker
            .subscriber_with(
                spinning(Duration::from_millis(1))
                    .capacity(2)
                    .policy(Policy::DropOldest),
            )
            .unwrap();
        sub.subscribe("c");
        for i in 0..5 {
            broker.publish("c", i);
        }
        assert_eq!(sub.recv().unwrap_err(), RecvError::Lagged(3));
        let got: Vec<i32> = (0..2).map(|_| *sub.recv().unwrap().payload()).collect();
        assert_eq!(got, [3, 4]);
        // The spin also serves the blocking iterator.
        broker.publish("c", 5);
        assert_eq!(sub.iter().next().map(|m| *m.unwrap().payload()), Some(5));
    });
}

/// The builder's spin is every new subscriber's default, and
/// `subscriber_with` takes its own. There is no getter for it (a receive's
/// spin is not observable without timing it), so the subscriber's `Debug`,
/// which prints its options, is the witness.
#[test]
fn the_builder_sets_the_spin_of_new_subscribers() {
    let broker: Broker<u8> = Broker::builder()
        .spin(Duration::from_micros(20))
        .build()
        .unwrap();
    let spin_of = |sub: &tidings::Subscriber<u8>| {
        let text = format!("{sub:?}");
        let at = text.find("spin: ").expect("Debug shows the spin");
        text[at..]
            .split([',', ' ', '}'])
            .nth(1)
            .unwrap()
            .to_string()
    };
    assert_eq!(
        spin_of(&broker.subscriber()),
        format!("{:?}", Duration::from_micros(20))
    );
    let own = broker.subscriber_with(Options::new()).unwrap();
    assert_eq!(spin_of(&own), format!("{:?}", Duration::ZERO));
    let own = broker
        .subscriber_with(Options::new().spin(Duration::from_millis(3)))
        .unwrap();
    assert_eq!(spin_of(&own), format!("{:?}", Duration::from_millis(3)));
}
