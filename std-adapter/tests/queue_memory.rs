//! What a subscriber's queue costs in memory (`Options::capacity`): a queue
//! up to the default capacity is allocated whole when the subscriber is
//! created; a larger one costs almost nothing until it has a backlog, grows
//! with it, and gives the memory back once the backlog is taken.
//!
//! A counting global allocator (this test binary's only test, so nothing
//! else allocates meanwhile) tracks the bytes live at each step.
#![allow(clippy::unwrap_used)]

#[allow(dead_code, unreachable_pub)]
mod alloc;

use alloc::live;
use tidings::{Broker, Options, Policy, Subscriber};

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

/// Live bytes per subscriber for `count` subscribers with `options`, each
/// holding its own channel.
fn per_subscriber(
    broker: &Broker<u64>,
    options: Options,
    count: usize,
) -> (isize, Vec<Subscriber<u64>>) {
    let before = live();
    let subs: Vec<_> = (0..count)
        .map(|i| {
            let mut sub = broker.try_subscriber_with(options).unwrap();
            sub.subscribe(format!("client:{i}"));
            sub
        })
        .collect();
    ((live() - before) / isize::try_from(count).unwrap(), subs)
}

#[test]
fn queue_memory_follows_the_backlog_above_the_default_capacity() {
    let broker: Broker<u64> = Broker::new();
    // Warm the registry's tables so that they do not count below.
    drop(per_subscriber(&broker, Options::new(), 256));

    // Redis's pub/sub client limit in messages: 32,768 preallocated slots
    // would be 786 KB per subscriber.
    let large = Options::new()
        .capacity(32 * 1024)
        .policy(Policy::Disconnect);
    let (idle, subs) = per_subscriber(&broker, large, 256);
    assert!(
        idle < 2048,
        "an idle subscriber with a 32,768-message limit costs {idle} B"
    );
    drop(subs);

    // The default capacity is allocated whole, 24 bytes a message.
    let (default, subs) = per_subscriber(&broker, Options::new(), 256);
    let whole = isize::try_from(Options::DEFAULT_CAPACITY * 24).unwrap();
    assert!(
        default >= whole,
        "a default subscriber costs {default} B, less than {whole} B"
    );
    drop(subs);

    // A backlog grows the large queue, and taking it gives the memory back.
    let mut sub = broker.try_subscriber_with(large).unwrap();
    sub.subscribe("backlog");
    broker.publish("backlog", 0);
    assert!(sub.try_recv().is_ok());
    let empty = live();
    for i in 0..30_000 {
        broker.publish("backlog", i);
    }
    let grown = live() - empty;
    // Each message is a shared allocation plus its 24-byte slot.
    assert!(
        grown >= 30_000 * 24,
        "a 30,000-message backlog grew memory by {grown} B"
    );
    for i in 0..30_000 {
        assert_eq!(*sub.try_recv().unwrap().payload(), i);
    }
    let left = live() - empty;
    assert!(
        left < 2048,
        "{left} B stay allocated after the backlog was taken"
    );
}
