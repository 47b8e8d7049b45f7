//! `Broker::watch_interest`: which changes reach a hook, in what order, and
//! what a hook may do. Hooks run after the broker's locks are released, by
//! the thread that made the change or by another one already handing changes
//! out: a single-threaded test sees them before the call returns, and the
//! multi-threaded ones wait for them with a deadline.
#![allow(clippy::unwrap_used)]

#[allow(dead_code, unreachable_pub)]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::{Rng, WATCHDOG, with_watchdog};
use tidings::{Broker, InterestWatch, Namespace, Options, Policy, Subscriber};

type Change = (Namespace, Vec<u8>, bool);
type Log = Arc<Mutex<Vec<Change>>>;

fn record(broker: &Broker<u32>) -> (Log, InterestWatch<u32>) {
    let log: Log = Arc::default();
    let sink = Arc::clone(&log);
    let watch = broker.watch_interest(move |c| {
        sink.lock()
            .unwrap()
            .push((c.namespace, c.name.to_vec(), c.active))
    });
    (log, watch)
}

fn take(log: &Log) -> Vec<Change> {
    std::mem::take(&mut *log.lock().unwrap())
}

fn ch(namespace: Namespace, name: &str, active: bool) -> Change {
    (namespace, name.as_bytes().to_vec(), active)
}

#[test]
fn interest_changes_on_first_and_last_subscriber_of_every_namespace() {
    let broker = Broker::new();
    let (log, _watch) = record(&broker);
    let mut a = broker.subscriber();
    let mut b = broker.subscriber();
    a.subscribe("ch");
    b.subscribe("ch");
    a.psubscribe("p*");
    a.ssubscribe("s");
    // The same bytes in each namespace are three names.
    b.psubscribe("ch");
    b.ssubscribe("ch");
    assert_eq!(
        take(&log),
        [
            ch(Namespace::Channel, "ch", true),
            ch(Namespace::Pattern, "p*", true),
            ch(Namespace::Shard, "s", true),
            ch(Namespace::Pattern, "ch", true),
            ch(Namespace::Shard, "ch", true),
        ]
    );
    a.unsubscribe("ch"); // b still holds it
    a.unsubscribe("never-held");
    a.subscribe("ch");
    a.subscribe("ch"); // held already
    a.unsubscribe("ch");
    assert_eq!(take(&log), []);
    a.unsubscribe_all(Namespace::Pattern);
    a.sunsubscribe("s");
    assert_eq!(
        take(&log),
        [
            ch(Namespace::Pattern, "p*", false),
            ch(Namespace::Shard, "s", false)
        ]
    );
    b.unsubscribe_all(Namespace::Channel);
    assert_eq!(take(&log), [ch(Namespace::Channel, "ch", false)]);
    b.unsubscribe_all(Namespace::Shard);
    b.punsubscribe("ch");
    assert_eq!(
        take(&log),
        [
            ch(Namespace::Shard, "ch", false),
            ch(Namespace::Pattern, "ch", false)
        ]
    );
    assert!(broker.is_idle());
}

/// An "unsubscribe all" and a dropped subscriber report their names in the
/// registry's order: byte order within a namespace.
#[test]
fn unsubscribe_all_reports_every_name_in_byte_order() {
    let broker = Broker::new();
    let mut sub = broker.subscriber();
    for name in ["c", "a", "b"] {
        sub.subscribe(name);
    }
    let (log, _watch) = record(&broker);
    let mut first = take(&log);
    first.sort();
    assert_eq!(first.len(), 3);
    sub.unsubscribe_all(Namespace::Channel);
    assert_eq!(
        take(&log),
        [
            ch(Namespace::Channel, "a", false),
            ch(Namespace::Channel, "b", false),
            ch(Namespace::Channel, "c", false)
        ]
    );
}

#[test]
fn dropped_and_disconnected_subscribers_release_interest() {
    let broker = Broker::new();
    let (log, _watch) = record(&broker);
    let mut gone = broker.subscriber();
    gone.subscribe("a");
    gone.psubscribe("a*");
    gone.ssubscribe("a");
    drop(gone);
    let changes = take(&log);
    assert_eq!(changes.len(), 6, "{changes:?}");
    assert_eq!(
        changes[..3],
        [
            ch(Namespace::Channel, "a", true),
            ch(Namespace::Pattern, "a*", true),
            ch(Namespace::Shard, "a", true)
        ]
    );
    let mut released = changes[3..].to_vec();
    released.sort();
    assert_eq!(
        released,
        [
            ch(Namespace::Channel, "a", false),
            ch(Namespace::Pattern, "a*", false),
            ch(Namespace::Shard, "a", false)
        ]
    );

    let mut slow = broker
        .subscriber_with(Options::new().capacity(1).policy(Policy::Disconnect))
        .unwrap();
    slow.psubscribe("t*");
    slow.subscribe("other");
    broker.publish("tick", 1);
    broker.publish("tick", 2); // overflow: removed from everything
    let changes = take(&log);
    assert_eq!(
        changes[..2],
        [
            ch(Namespace::Pattern, "t*", true),
            ch(Namespace::Channel, "other", true)
        ]
    );
    let mut released = changes[2..].to_vec();
    released.sort();
    assert_eq!(
        released,
        [
            ch(Namespace::Channel, "other", false),
            ch(Namespace::Pattern, "t*", false)
        ]
    );
    // A disconnected subscriber's later subscriptions take no effect.
    assert_eq!(slow.subscribe("x").count, 0);
    assert_eq!(broker.numsub(Namespace::Channel, "x"), 0);
    assert_eq!(take(&log), []);
}

#[test]
fn watch_starts_with_what_is_held_and_stops_when_dropped() {
    let broker = Broker::new();
    let mut sub = broker.subscriber();
    sub.subscribe("held");
    sub.psubscribe("held*");
    sub.ssubscribe("held");
    let (log, watch) = record(&broker);
    let mut first = take(&log);
    first.sort();
    assert_eq!(
        first,
        [
            ch(Namespace::Channel, "held", true),
            ch(Namespace::Pattern, "held*", true),
            ch(Namespace::Shard, "held", true)
        ]
    );
    // A second watcher gets its own picture; the first is not told again.
    let (second, _second_watch) = record(&broker);
    assert_eq!(take(&second).len(), 3);
    assert_eq!(take(&log), []);
    drop(watch);
    sub.subscribe("later");
    assert_eq!(take(&log), []);
    assert_eq!(take(&second), [ch(Namespace::Channel, "later", true)]);
}

/// A hook runs with no broker lock held: it may read the broker, publish,
/// subscribe, and drop subscribers. The changes its own calls make reach it
/// after the one it is handling, in the registry's order, and hook calls
/// never overlap or nest.
#[test]
fn a_hook_may_subscribe_publish_and_drop_subscribers_from_inside() {
    with_watchdog(WATCHDOG, || {
        let broker: Broker<u32> = Broker::new();
        let mut listener = broker.subscriber();
        listener.subscribe("announce");

        let log: Log = Arc::default();
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let spare: Arc<Mutex<Option<Subscriber<u32>>>> = Arc::default();
        let inside = Arc::new(AtomicBool::new(false));
        let watch = {
            let (log, seen, spare, inside) = (
                Arc::clone(&log),
                Arc::clone(&seen),
                Arc::clone(&spare),
                Arc::clone(&inside),
            );
            let inner = broker.clone();
            broker.watch_interest(move |c| {
                assert!(!inside.swap(true, Ordering::SeqCst), "hook calls nest");
                log.lock()
                    .unwrap()
                    .push((c.namespace, c.name.to_vec(), c.active));
                match (c.name, c.active) {
                    (b"a", true) => {
                        let numsub = inner.numsub(Namespace::Channel, "a");
                        let published = inner.publish("announce", 1);
                        // A new subscriber whose subscribe is a change too.
                        let mut sub = inner.subscriber();
                        sub.subscribe("b");
                        sub.psubscribe("b*");
                        *spare.lock().unwrap() = Some(sub);
                        seen.lock()
                            .unwrap()
                            .push(format!("numsub {numsub} published {published}"));
                    }
                    (b"b", true) => {
                        // Drop the subscriber made above, from inside.
                        let sub = spare.lock().unwrap().take();
                        drop(sub);
                        seen.lock().unwrap().push("dropped".into());
                    }
                    _ => {}
                }
                inside.store(false, Ordering::SeqCst);
            })
        };
        // The initial picture.
        assert_eq!(take(&log), [ch(Namespace::Channel, "announce", true)]);
        let mut a = broker.subscriber();
        a.subscribe("a");
        let changes = take(&log);
        assert_eq!(
            changes[..3],
            [
                ch(Namespace::Channel, "a", true),
                ch(Namespace::Channel, "b", true),
                ch(Namespace::Pattern, "b*", true),
            ]
        );
        let mut released = changes[3..].to_vec();
        released.sort();
        assert_eq!(
            released,
            [
                ch(Namespace::Channel, "b", false),
                ch(Namespace::Pattern, "b*", false),
            ]
        );
        assert_eq!(*seen.lock().unwrap(), ["numsub 1 published 1", "dropped"]);
        assert_eq!(*listener.try_recv().unwrap().payload(), 1);
        assert_eq!(broker.numsub(Namespace::Channel, "b"), 0);
        assert_eq!(broker.numpat(), 0);
        broker.check_invariants();
        // The hook owns a broker handle: dropping the watch releases it
        // with no lock held.
        drop(watch);
        drop((a, listener));
        assert!(broker.is_idle());
    });
}

/// The changes a hook's own calls make reach it after the one it is
/// handling, in the order they were made, even when they cancel out.
#[test]
fn changes_made_inside_a_hook_follow_in_order() {
    with_watchdog(WATCHDOG, || {
        let broker: Broker<u32> = Broker::new();
        let log: Log = Arc::default();
        let watch = {
            let log = Arc::clone(&log);
            let own = Mutex::new(broker.subscriber());
            broker.watch_interest(move |c| {
                log.lock()
                    .unwrap()
                    .push((c.namespace, c.name.to_vec(), c.active));
                if c.active && c.name == b"x" {
                    let mut own = own.lock().unwrap();
                    own.subscribe("y");
                    own.ssubscribe("z");
                    own.unsubscribe("y");
                    own.subscribe("y");
                }
            })
        };
        let mut a = broker.subscriber();
        a.subscribe("x");
        assert_eq!(
            take(&log),
            [
                ch(Namespace::Channel, "x", true),
                ch(Namespace::Channel, "y", true),
                ch(Namespace::Shard, "z", true),
                ch(Namespace::Channel, "y", false),
                ch(Namespace::Channel, "y", true),
            ]
        );
        assert_eq!(broker.numsub(Namespace::Channel, "y"), 1);
        broker.check_invariants();
        // The subscriber the hook owns goes with it.
        drop(watch);
        assert_eq!(broker.numsub(Namespace::Channel, "y"), 0);
        assert_eq!(take(&log), []);
        drop(a);
        assert!(broker.is_idle());
    });
}

/// A panicking hook unwinds into the call that was handing changes out;
/// the broker stays consistent, and the changes not yet handed out reach
/// the hook with the next call that changes interest.
#[test]
fn a_panicking_hook_loses_no_change() {
    with_watchdog(WATCHDOG, || {
        let broker: Broker<u32> = Broker::new();
        let log: Log = Arc::default();
        let watch = {
            let log = Arc::clone(&log);
            broker.watch_interest(move |c| {
                log.lock()
                    .unwrap()
                    .push((c.namespace, c.name.to_vec(), c.active));
                assert!(c.active || c.name != b"boom", "the hook panics");
            })
        };
        let mut a = broker.subscriber();
        for name in ["boom", "c1", "c2"] {
            a.subscribe(name);
        }
        take(&log);
        let unwound = catch_unwind(AssertUnwindSafe(|| a.unsubscribe_all(Namespace::Channel)));
        assert!(unwound.is_err());
        // The unsubscribe happened in full.
        assert_eq!(a.counts().channels, 0);
        assert!(broker.is_idle());
        broker.check_invariants();
        assert_eq!(take(&log), [ch(Namespace::Channel, "boom", false)]);
        // The next change hands out the rest first.
        let mut b = broker.subscriber();
        b.subscribe("z");
        assert_eq!(
            take(&log),
            [
                ch(Namespace::Channel, "c1", false),
                ch(Namespace::Channel, "c2", false),
                ch(Namespace::Channel, "z", true)
            ]
        );
        // Publishing and subscribing still work.
        b.subscribe("boom");
        assert_eq!(broker.publish("boom", 1), 1);
        assert_eq!(*b.try_recv().unwrap().payload(), 1);
        drop(watch);
    });
}

/// A hook that panics on a change made by dropping a subscriber leaves the
/// broker consistent: the subscriber is gone from the registry and from
/// the metrics.
#[test]
fn a_hook_panicking_in_a_subscriber_drop_leaves_the_broker_consistent() {
    with_watchdog(WATCHDOG, || {
        let broker: Broker<u32> = Broker::new();
        let _watch = broker.watch_interest(|c| {
            assert!(c.active, "the hook panics");
        });
        let mut sub = broker.subscriber();
        sub.subscribe("a");
        assert_eq!(broker.metrics().subscribers, 1);
        let unwound = catch_unwind(AssertUnwindSafe(|| drop(sub)));
        assert!(unwound.is_err());
        assert!(broker.is_idle());
        broker.check_invariants();
        assert_eq!(
            broker.metrics().subscribers,
            0,
            "the dropped subscriber is still counted"
        );
    });
}

/// Which names the changes seen by a hook leave active, after checking
/// that each name's changes alternate, starting with `true`: no change is
/// lost, repeated or out of order.
fn replay(changes: &[Change]) -> BTreeSet<(Namespace, Vec<u8>)> {
    let mut state: BTreeMap<(Namespace, Vec<u8>), bool> = BTreeMap::new();
    for (i, (namespace, name, active)) in changes.iter().enumerate() {
        let was = state.insert((*namespace, name.clone()), *active);
        assert_ne!(
            was.unwrap_or(false),
            *active,
            "change {i} of {}: {namespace:?} {:?} active={active} repeats the previous one",
            changes.len(),
            String::from_utf8_lossy(name)
        );
    }
    state
        .into_iter()
        .filter(|(_, active)| *active)
        .map(|(k, _)| k)
        .collect()
}

/// What the registry holds, by namespace and name.
fn held(broker: &Broker<u32>) -> BTreeSet<(Namespace, Vec<u8>)> {
    Namespace::ALL
        .iter()
        .flat_map(|&ns| {
            broker
                .channels(ns, None)
                .into_iter()
                .map(move |name| (ns, name))
        })
        .collect()
}

/// Waits until the changes in `log` describe `expected`, or fails after a
/// deadline.
fn settle(log: &Log, expected: &BTreeSet<(Namespace, Vec<u8>)>, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = replay(&log.lock().unwrap());
        if now == *expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the hook's picture never matched the registry\n hook: {now:?}\n held: {expected:?}"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

const NAMES: [&str; 4] = ["n0", "n1", "n2", "n3"];

/// Threads race first subscribes and last unsubscribes of the same few
/// names in every namespace, and drop subscribers, while hooks (one from
/// the start, one installed mid-run) record the changes and call back into
/// the broker. Every hook's changes alternate per name, its calls never
/// overlap, and its picture converges to what the registry holds, then to
/// nothing once every subscriber is gone.
#[test]
fn racing_changes_reach_every_hook_in_order_and_complete() {
    with_watchdog(Duration::from_secs(120), || {
        for round in 0..20u64 {
            let broker: Broker<u32> = Broker::new();
            let busy = Arc::new(AtomicBool::new(false));
            let calls = Arc::new(AtomicUsize::new(0));
            let hook = |log: &Log| {
                let (log, busy, calls, inner) = (
                    Arc::clone(log),
                    Arc::clone(&busy),
                    Arc::clone(&calls),
                    broker.clone(),
                );
                move |c: &tidings::InterestChange<'_>| {
                    assert!(!busy.swap(true, Ordering::SeqCst), "hook calls overlap");
                    log.lock()
                        .unwrap()
                        .push((c.namespace, c.name.to_vec(), c.active));
                    // Calls back into the broker from inside.
                    let _ = inner.numsub(c.namespace, c.name);
                    if calls.fetch_add(1, Ordering::Relaxed) % 16 == 0 {
                        inner.publish("nobody", 0);
                    }
                    busy.store(false, Ordering::SeqCst);
                }
            };
            let early: Log = Arc::default();
            let early_watch = broker.watch_interest(hook(&early));

            let start = Arc::new(Barrier::new(5));
            let workers: Vec<_> = (0..4u64)
                .map(|w| {
                    let broker = broker.clone();
                    let start = Arc::clone(&start);
                    thread::spawn(move || {
                        let mut rng = Rng::new(round * 16 + w);
                        let mut subs: Vec<Subscriber<u32>> =
                            (0..2).map(|_| broker.subscriber()).collect();
                        start.wait();
                        for _ in 0..2_000 {
                            let name = *rng.pick(&NAMES);
                            let k = rng.below(subs.len());
                            let s = &mut subs[k];
                            match rng.below(10) {
                                0 => {
                                    s.subscribe(name);
                                }
                                1 => {
                                    s.unsubscribe(name);
                                }
                                2 => {
                                    s.psubscribe(name);
                                }
                                3 => {
                                    s.punsubscribe(name);
                                }
                                4 => {
                                    s.ssubscribe(name);
                                }
                                5 => {
                                    s.sunsubscribe(name);
                                }
                                6 => {
                                    s.unsubscribe_all(*rng.pick(&Namespace::ALL));
                                }
                                7 => subs[k] = broker.subscriber(),
                                _ => {
                                    broker.publish(name, 1);
                                    while s.try_recv().is_ok() {}
                                }
                            }
                        }
                        subs
                    })
                })
                .collect();
            start.wait();
            thread::sleep(Duration::from_millis(1 + round % 3));
            let late: Log = Arc::default();
            let late_watch = broker.watch_interest(hook(&late));
            let subs: Vec<Vec<Subscriber<u32>>> =
                workers.into_iter().map(|w| w.join().unwrap()).collect();

            broker.check_invariants();
            let now = held(&broker);
            settle(&early, &now, "early hook, after the run");
            settle(&late, &now, "late hook, after the run");
            drop(subs);
            assert!(broker.is_idle());
            settle(&early, &BTreeSet::new(), "early hook, after the drops");
            settle(&late, &BTreeSet::new(), "late hook, after the drops");
            assert!(!early.lock().unwrap().is_empty());
            drop((early_watch, late_watch));
            broker.check_invariants();
        }
    });
}

/// Threads flip interest in names of their own as fast as they can, with a
/// hook that does almost nothing, so that one thread's change often lands
/// just as another thread finishes handing changes out. Every change must
/// still reach the hook: none may be left waiting for a later call.
#[test]
fn no_change_is_left_behind_when_a_dispatcher_finishes() {
    // More threads than this machine's cores, so that one is often
    // preempted in the middle of handing changes out.
    const THREADS: u64 = 6;
    with_watchdog(Duration::from_secs(120), || {
        for _ in 0..100 {
            let broker: Broker<u32> = Broker::new();
            let (log, watch) = record(&broker);
            let start = Arc::new(Barrier::new(THREADS as usize));
            let workers: Vec<_> = (0..THREADS)
                .map(|w| {
                    let broker = broker.clone();
                    let start = Arc::clone(&start);
                    thread::spawn(move || {
                        let mut sub = broker.subscriber();
                        let name = format!("own{w}");
                        start.wait();
                        for _ in 0..500 {
                            sub.subscribe(&name);
                            sub.unsubscribe(&name);
                        }
                        sub.subscribe(&name);
                        sub
                    })
                })
                .collect();
            let subs: Vec<_> = workers.into_iter().map(|w| w.join().unwrap()).collect();
            let now = held(&broker);
            assert_eq!(now.len(), THREADS as usize);
            settle(&log, &now, "after the flips");
            drop(subs);
            settle(&log, &BTreeSet::new(), "after the drops");
            drop(watch);
        }
    });
}
