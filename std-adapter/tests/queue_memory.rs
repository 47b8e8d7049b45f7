//! What subscribers cost in memory (`Options::capacity`, issue 16).
//!
//! - **Nothing is allocated up front, for any capacity or policy.** An idle
//!   subscriber holding one channel costs at most [`IDLE_GOAL`] bytes in
//!   total: its handle plus everything the broker allocates for it (member
//!   record, registry entry, route, shared ring). Measured as the live bytes
//!   added by creating [`IDLE`] such subscribers, each on its own channel,
//!   on a fresh broker (so the registry's tables grown for them count too),
//!   divided by [`IDLE`]; the figures are printed.
//! - **A backlog costs memory only while it lasts**, for both kinds of
//!   subscriber: a `Policy::DropOldest` subscriber of one channel reads the
//!   route's shared ring, every other one has its own queue. Once the reader
//!   has taken the backlog and found nothing more (as it does before it
//!   waits), the memory is back.
//! - **A backlog never holds more than the capacity**: publishing far past it
//!   grows memory by about the capacity's worth, not the publishes'.
//!
//! A counting global allocator (this test binary's only test, so nothing
//! else allocates meanwhile) tracks the bytes live at each step.
#![allow(clippy::unwrap_used)]

#[allow(dead_code, unreachable_pub)]
mod alloc;

use std::io::Write;
use std::time::Duration;

use alloc::live;
use tidings::{Broker, Options, Policy, RecvError, Subscriber, TryRecvError};

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

/// Issue 16's goal for an idle subscriber holding one channel, at default
/// options, in bytes.
const IDLE_GOAL: isize = 512;
/// The bound for an idle `DropOldest` subscriber of one channel, which
/// reads the channel's shared ring: it carries the route's ring (its slots,
/// the ring's record) and its place in it on top of what a subscriber with
/// a queue of its own costs. Issue 16's goal is stated at default options;
/// this bound keeps the ring reader's figure from drifting.
const RING_READER_BOUND: isize = 640;
/// Subscribers per idle measurement.
const IDLE: usize = 1000;
/// Messages in a backlog.
const BACKLOG: u64 = 30_000;
/// What may stay allocated once a backlog was taken (a drained ring or
/// queue may keep a small buffer).
const LEFT: isize = 2048;

/// Writes a figure to stderr past the harness's capture, so that it shows.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn isize_of(n: usize) -> isize {
    isize::try_from(n).unwrap()
}

/// What `IDLE` subscribers with `options`, each holding its own channel,
/// cost on a fresh broker: bytes per subscriber in total, and split into
/// the handles (the `Vec` holding them), creating them, and subscribing.
struct Idle {
    total: isize,
    handle: isize,
    created: isize,
    subscribed: isize,
    /// The allocations that creating, then subscribing, left live.
    created_by_size: String,
    subscribed_by_size: String,
}

/// Allocations that became live since `before`, per subscriber: "N x S B"
/// for each size S, N a fraction when only some subscribers have one (a
/// table grown for all of them).
fn by_size_per_subscriber(before: &[isize]) -> String {
    let per = |n: isize| n as f64 / IDLE as f64;
    alloc::by_size_since(before)
        .into_iter()
        .map(|(size, n)| match size {
            Some(size) => format!("{:.3} x {size} B", per(n)),
            None => format!("{:.3} x >4 KiB", per(n)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn idle_cost(options: Options) -> Idle {
    let broker: Broker<u64> = Broker::new();
    let names: Vec<String> = (0..IDLE).map(|i| format!("client:{i}")).collect();
    let n = isize_of(IDLE);
    let mut subs: Vec<Subscriber<u64>> = Vec::new();
    let start_sizes = alloc::by_size();
    let start = live();
    subs.reserve_exact(IDLE);
    let handles = live();
    for _ in 0..IDLE {
        subs.push(broker.subscriber_with(options).unwrap());
    }
    let created = live();
    let created_by_size = by_size_per_subscriber(&start_sizes);
    let created_sizes = alloc::by_size();
    let subscribed_start = live();
    for (sub, name) in subs.iter_mut().zip(&names) {
        sub.subscribe(name);
    }
    let subscribed = live();
    let subscribed_by_size = by_size_per_subscriber(&created_sizes);
    // Each is subscribed and idle: a publish reaches exactly one.
    assert_eq!(broker.publish("client:7", 7), 1);
    assert_eq!(*subs[7].try_recv().unwrap().payload(), 7);
    assert_eq!(broker.metrics().subscribers, IDLE as u64);
    drop(subs);
    assert!(broker.is_idle());
    Idle {
        total: (created - start + subscribed - subscribed_start) / n,
        handle: (handles - start) / n,
        created: (created - handles) / n,
        subscribed: (subscribed - subscribed_start) / n,
        created_by_size,
        subscribed_by_size,
    }
}

/// Issue 16: an idle subscriber holding one channel costs at most `goal`
/// bytes.
fn idle_subscriber_costs_at_most(what: &str, options: Options, goal: isize) {
    let c = idle_cost(options);
    report(&format!(
        "idle subscriber with one channel, {what}: {} B (goal {goal} B): \
         handle {} B, created {} B, subscribed {} B\n  \
         live allocations per subscriber, handles and creating: {}\n  \
         subscribing: {}",
        c.total, c.handle, c.created, c.subscribed, c.created_by_size, c.subscribed_by_size
    ));
    assert!(
        c.total <= goal,
        "an idle subscriber with one channel, {what}, costs {} B, more than {goal} B",
        c.total
    );
}

/// No capacity allocates a queue up front, whatever the policy: every one
/// costs what the default capacity does, within a few bytes, including
/// capacities no machine could hold. (A `DropOldest` subscriber above the
/// largest ring has its own queue, and costs less than a ring reader.)
fn no_capacity_is_allocated_up_front() {
    let policies = [
        Policy::Disconnect,
        Policy::DropNewest,
        Policy::DropOldest,
        Policy::Block {
            timeout: Duration::from_secs(1),
        },
    ];
    let capacities = [
        1,
        2,
        Options::DEFAULT_CAPACITY,
        32 * 1024,
        1 << 30,
        usize::MAX,
    ];
    for policy in policies {
        let base = idle_cost(Options::new().policy(policy)).total;
        for capacity in capacities {
            let options = Options::new().capacity(capacity).policy(policy);
            let c = idle_cost(options).total;
            assert!(
                c <= base + 64,
                "{policy:?} with capacity {capacity} costs {c} B per idle subscriber, \
                 {base} B at the default capacity"
            );
        }
    }
}

/// How a subscriber receives.
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// `DropOldest` holding one channel: reads the channel's shared ring.
    RingOfAChannel,
    /// `DropOldest` holding one pattern: reads the pattern's shared ring.
    RingOfAPattern,
    /// Holding one channel with this policy: a queue of its own.
    OwnQueue(Policy),
    /// `DropOldest` holding two channels: a queue of its own.
    DropOldestTwoChannels,
}

/// A subscriber of `shape` that receives what is published to "backlog".
fn subscriber(broker: &Broker<u64>, capacity: usize, shape: Shape) -> Subscriber<u64> {
    let policy = match shape {
        Shape::OwnQueue(policy) => policy,
        _ => Policy::DropOldest,
    };
    let mut sub = broker
        .subscriber_with(Options::new().capacity(capacity).policy(policy))
        .unwrap();
    match shape {
        Shape::RingOfAPattern => {
            sub.psubscribe("back*");
        }
        Shape::DropOldestTwoChannels => {
            sub.subscribe("backlog");
            sub.subscribe("elsewhere");
        }
        _ => {
            sub.subscribe("backlog");
        }
    }
    sub
}

/// Builds a backlog of `BACKLOG` messages for a subscriber of `shape` with
/// room for all of them, checks that memory grew with it, takes it in
/// order until the subscriber is empty, and checks that the memory went
/// back.
fn a_backlog_is_given_back(shape: Shape) {
    let broker: Broker<u64> = Broker::new();
    // Redis's pub/sub client limit in messages: room for the whole backlog.
    let mut sub = subscriber(&broker, 32 * 1024, shape);
    // One message through, so that whatever lasts the subscriber's life
    // (a registered thread, a first buffer) is allocated before the count.
    assert_eq!(broker.publish("backlog", u64::MAX), 1);
    assert_eq!(*sub.try_recv().unwrap().payload(), u64::MAX);
    assert_eq!(sub.try_recv().unwrap_err(), TryRecvError::Empty);
    let empty = live();
    for i in 0..BACKLOG {
        assert_eq!(broker.publish("backlog", i), 1);
    }
    assert_eq!(
        sub.len(),
        BACKLOG as usize,
        "{shape:?}: the backlog is queued"
    );
    let grown = live() - empty;
    let per_message = grown / isize_of(BACKLOG as usize);
    // Each message is at least its payload and a handle to it.
    assert!(
        per_message >= 16,
        "{shape:?}: a {BACKLOG}-message backlog grew memory by only {grown} B"
    );
    for i in 0..BACKLOG {
        assert_eq!(*sub.try_recv().unwrap().payload(), i, "{shape:?}");
    }
    // Caught up: the reader sees that nothing is left, as a reader does
    // before it waits.
    assert_eq!(
        sub.try_recv().unwrap_err(),
        TryRecvError::Empty,
        "{shape:?}"
    );
    let left = live() - empty;
    report(&format!(
        "{shape:?}: a {BACKLOG}-message backlog cost {grown} B ({per_message} B a message); \
         {left} B stay once it was taken"
    ));
    assert!(
        left < LEFT,
        "{shape:?}: {left} B stay allocated after a {grown} B backlog was taken"
    );
}

/// Publishing 30 times the capacity grows memory by about the capacity's
/// worth of messages, and the reader gets the newest `capacity` messages
/// after a lag notice (the oldest, for DropNewest); once they are taken,
/// the memory goes back.
fn a_backlog_stops_at_the_capacity(shape: Shape) {
    const CAPACITY: usize = 1000;
    let broker: Broker<u64> = Broker::new();
    let mut sub = subscriber(&broker, CAPACITY, shape);
    broker.publish("backlog", u64::MAX);
    assert_eq!(*sub.try_recv().unwrap().payload(), u64::MAX);
    let empty = live();
    let n = 30 * CAPACITY as u64;
    for i in 0..n {
        assert_eq!(broker.publish("backlog", i), 1);
    }
    let grown = live() - empty;
    assert_eq!(sub.len(), CAPACITY, "{shape:?}");
    // A message and its slot take a few dozen bytes, and buffers grow by
    // doubling: a few hundred bytes a message at most. Unbounded, this
    // would be 30 times as much.
    let bound = isize_of(CAPACITY) * 256;
    report(&format!(
        "{shape:?}: {n} publishes to a {CAPACITY}-message queue grew memory by {grown} B"
    ));
    assert!(
        grown <= bound,
        "{shape:?}: {n} publishes to a {CAPACITY}-message queue grew memory by {grown} B"
    );
    let lost = n - CAPACITY as u64;
    let mut expected: Vec<Result<u64, RecvError>> = Vec::new();
    let kept = match shape {
        Shape::OwnQueue(Policy::DropNewest) => 0..CAPACITY as u64,
        _ => {
            expected.push(Err(RecvError::Lagged(lost)));
            lost..n
        }
    };
    expected.extend(kept.map(Ok));
    let got: Vec<Result<u64, RecvError>> =
        sub.try_iter().map(|m| m.map(|m| *m.payload())).collect();
    assert!(
        got == expected,
        "{shape:?}: the reader got the wrong messages"
    );
    drop((got, expected));
    let left = live() - empty;
    assert!(
        left < LEFT,
        "{shape:?}: {left} B stay after the backlog was taken"
    );
}

/// One test, so that nothing else allocates while it counts; each part
/// runs even if an earlier one failed, and the test fails if any did.
#[test]
fn queue_memory() {
    let block = Policy::Block {
        timeout: Duration::from_secs(1),
    };
    let mut parts: Vec<(String, Box<dyn Fn()>)> = vec![
        (
            "idle subscriber, default options".into(),
            Box::new(|| {
                idle_subscriber_costs_at_most("default options", Options::new(), IDLE_GOAL)
            }),
        ),
        (
            "idle subscriber, DropOldest".into(),
            Box::new(|| {
                idle_subscriber_costs_at_most(
                    "DropOldest (reads the channel's ring)",
                    Options::new().policy(Policy::DropOldest),
                    RING_READER_BOUND,
                );
            }),
        ),
        (
            "no capacity is allocated up front".into(),
            Box::new(no_capacity_is_allocated_up_front),
        ),
    ];
    for shape in [
        Shape::RingOfAChannel,
        Shape::RingOfAPattern,
        Shape::OwnQueue(Policy::Disconnect),
        Shape::OwnQueue(Policy::DropNewest),
        Shape::OwnQueue(block),
        Shape::DropOldestTwoChannels,
    ] {
        parts.push((
            format!("a backlog is given back: {shape:?}"),
            Box::new(move || a_backlog_is_given_back(shape)),
        ));
    }
    for shape in [
        Shape::RingOfAChannel,
        Shape::RingOfAPattern,
        Shape::OwnQueue(Policy::DropNewest),
        Shape::DropOldestTwoChannels,
    ] {
        parts.push((
            format!("a backlog stops at the capacity: {shape:?}"),
            Box::new(move || a_backlog_stops_at_the_capacity(shape)),
        ));
    }
    let failed: Vec<String> = parts
        .into_iter()
        .filter(|(_, part)| std::panic::catch_unwind(std::panic::AssertUnwindSafe(part)).is_err())
        .map(|(name, _)| name)
        .collect();
    assert!(failed.is_empty(), "failed: {failed:#?}");
}
