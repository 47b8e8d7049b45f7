//! The publish/subscribe contract under concurrency and hostile user code:
//! one regression test for each way it broke before (issue 13), each bounded
//! by a deadline so that a deadlock fails the test instead of hanging it.
//!
//! 1. A `Block` publisher waiting for room froze the whole broker.
//! 2. A subscribe racing a `Disconnect` removal left a phantom subscription.
//! 3. User code (a payload's `Clone` or `Drop`, interest hooks) ran under the
//!    broker's locks, so user code that used the broker deadlocked.
//! 4. A panic in user code left the registry inconsistent.
//! 5. Settings that panicked or aborted instead of working or failing.

#![allow(clippy::unwrap_used)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tidings::{Broker, Namespace, Options, Policy, RecvError, Subscriber};

/// Runs `f` on its own thread and returns its result, or fails the test if
/// it takes longer than `limit` (a deadlock, or a wait it should not make).
fn within<R: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> R + Send + 'static,
) -> R {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(r) => r,
        Err(_) => panic!("{what}: did not finish within {limit:?} (deadlock or stall)"),
    }
}

const QUICK: Duration = Duration::from_secs(5);

fn block(capacity: usize, timeout: Duration) -> Options {
    Options::new()
        .capacity(capacity)
        .policy(Policy::Block { timeout })
}

/// A broker with a full `Block` subscriber on `chan` and a publisher thread
/// waiting for room there; returns once that publisher is surely waiting.
fn waiting_publisher(
    timeout: Duration,
) -> (Broker<u32>, Subscriber<u32>, thread::JoinHandle<usize>) {
    let broker = Broker::new();
    let mut slow = broker.subscriber_with(block(1, timeout)).unwrap();
    slow.subscribe("chan");
    assert_eq!(broker.publish("chan", 0), 1); // fills the queue
    let publisher = {
        let broker = broker.clone();
        thread::spawn(move || broker.publish("chan", 1))
    };
    // Wait until the second message is in line (queued past the capacity).
    let deadline = Instant::now() + QUICK;
    while slow.stats().queued < 2 {
        assert!(
            Instant::now() < deadline,
            "the publisher never reached the queue"
        );
        thread::sleep(Duration::from_millis(1));
    }
    (broker, slow, publisher)
}

/// Bug 1: while a publisher waits for a full `Block` subscriber, every other
/// operation goes on: subscribing, unsubscribing, dropping subscribers, and
/// publishing to any other channel (among 500 channels, many share the
/// waiting channel's ordering stripe).
#[test]
fn a_waiting_block_publisher_holds_up_nobody_else() {
    let (broker, mut slow, publisher) = waiting_publisher(Duration::from_secs(60));
    let b = broker.clone();
    within(
        QUICK,
        "operations while a Block publisher waits",
        move || {
            let mut other = b.subscriber();
            for i in 0..500 {
                let channel = format!("other:{i}");
                other.subscribe(&channel);
                assert_eq!(b.publish(&channel, i), 1);
                other.psubscribe(format!("{channel}*"));
                assert_eq!(b.publish(&channel, i), 2);
                other.unsubscribe(&channel);
                other.punsubscribe(format!("{channel}*"));
                assert_eq!(b.publish(&channel, i), 0);
                while other.try_recv().is_ok() {}
            }
            let mut extra = b.subscriber();
            extra.subscribe("chan"); // a subscriber of the waiting channel itself
            drop(extra);
            assert_eq!(b.numsub(Namespace::Channel, "chan"), 1);
            drop(other);
        },
    );
    // The waiting publisher completes when the reader takes one.
    assert_eq!(*slow.recv().unwrap().payload(), 0);
    assert_eq!(
        within(QUICK, "the waiting publisher", move || publisher
            .join()
            .unwrap()),
        1
    );
    assert_eq!(*slow.recv().unwrap().payload(), 1);
    broker.check_invariants();
}

/// Bug 1, who does wait: a second publisher to the same full subscriber
/// waits for its own message (that is the policy), in order behind the
/// first, and both complete, in order, once the reader catches up.
#[test]
fn publishers_to_the_same_full_block_subscriber_queue_in_order() {
    let (broker, mut slow, first) = waiting_publisher(Duration::MAX);
    let second = {
        let broker = broker.clone();
        thread::spawn(move || broker.publish("chan", 2))
    };
    let deadline = Instant::now() + QUICK;
    while slow.stats().queued < 3 {
        assert!(
            Instant::now() < deadline,
            "the second publisher never queued"
        );
        thread::sleep(Duration::from_millis(1));
    }
    let got = within(QUICK, "draining", move || {
        let got: Vec<u32> = (0..3).map(|_| *slow.recv().unwrap().payload()).collect();
        (got, slow)
    });
    assert_eq!(got.0, [0, 1, 2]);
    assert_eq!(within(QUICK, "first", move || first.join().unwrap()), 1);
    assert_eq!(within(QUICK, "second", move || second.join().unwrap()), 1);
    assert_eq!(broker.metrics().dropped, 0);
}

/// Bug 1 with `Duration::MAX`: dropping the `Block` subscriber releases
/// every publisher waiting for it (their messages count as dropped).
#[test]
fn dropping_a_full_block_subscriber_releases_its_publishers() {
    let (broker, slow, first) = waiting_publisher(Duration::MAX);
    let second = {
        let broker = broker.clone();
        thread::spawn(move || broker.publish("chan", 2))
    };
    thread::sleep(Duration::from_millis(20));
    within(QUICK, "dropping the Block subscriber", move || drop(slow));
    assert_eq!(within(QUICK, "first", move || first.join().unwrap()), 1);
    assert_eq!(within(QUICK, "second", move || second.join().unwrap()), 1);
    assert!(broker.is_idle());
    broker.check_invariants();
}

/// Bug 1: a `Block` consumer that subscribes between receives, and one
/// that publishes replies (to a channel that may share the request's
/// stripe), keeps working under a flood with an unbounded timeout.
#[test]
fn a_block_consumer_may_subscribe_and_publish_between_receives() {
    let broker: Broker<u32> = Broker::new();
    let mut consumer = broker.subscriber_with(block(2, Duration::MAX)).unwrap();
    consumer.subscribe("requests");
    let mut replies = broker
        .subscriber_with(Options::new().capacity(100_000))
        .unwrap();
    replies.subscribe("replies");
    let flood = {
        let broker = broker.clone();
        thread::spawn(move || {
            for i in 0..2_000 {
                broker.publish("requests", i);
            }
        })
    };
    let b = broker.clone();
    within(
        Duration::from_secs(30),
        "a Block consumer under a flood",
        move || {
            for i in 0..2_000u32 {
                let m = consumer.recv().unwrap();
                assert_eq!(*m.payload(), i);
                // Subscribing (the registry's write lock) and publishing from
                // the consumer while publishers wait for it.
                consumer.subscribe(format!("topic:{}", i % 7));
                b.publish("replies", i);
            }
            flood.join().unwrap();
        },
    );
    assert_eq!(replies.stats().delivered, 2_000);
}

/// Bug 2: a subscribe racing the removal of a subscriber that overflowed
/// under `Disconnect` never leaves a phantom: once the subscriber is known
/// to be disconnected, nothing anywhere still lists it.
#[test]
fn a_subscribe_racing_a_disconnect_leaves_no_phantom() {
    /// A payload whose `Clone` is slow, which widens the window between the
    /// overflow and the removal.
    #[derive(Debug)]
    struct Slow;
    impl Clone for Slow {
        fn clone(&self) -> Self {
            thread::sleep(Duration::from_micros(50));
            Slow
        }
    }
    for round in 0..100 {
        let broker: Broker<Slow> = Broker::new();
        let changes = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&changes);
        let _watch = broker.watch_interest(move |c| {
            log.lock().unwrap().push((c.name.to_vec(), c.active));
        });
        let mut sub = broker.subscriber_with(Options::new().capacity(4)).unwrap();
        sub.subscribe("flood");
        sub.psubscribe("flo*"); // two routes: the slow Clone runs per publish
        let stop = Arc::new(AtomicBool::new(false));
        let flooder = {
            let (broker, stop) = (broker.clone(), Arc::clone(&stop));
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    broker.publish("flood", Slow);
                }
            })
        };
        let sub = within(QUICK, "subscribing while overflowing", move || {
            // Subscribe as fast as possible until the flood overflows it.
            let until = Instant::now() + Duration::from_secs(2);
            let mut i = 0;
            while !sub.stats().disconnected && Instant::now() < until {
                sub.subscribe(format!("late:{i}"));
                i += 1;
            }
            sub
        });
        stop.store(true, Ordering::Relaxed);
        flooder.join().unwrap();
        assert!(
            sub.stats().disconnected,
            "round {round}: the flood never overflowed"
        );
        // Nothing lists it any more.
        assert_eq!(sub.counts(), Default::default(), "round {round}");
        assert_eq!(broker.numsub(Namespace::Channel, "flood"), 0);
        assert!(
            broker.channels(Namespace::Channel, None).is_empty(),
            "round {round}"
        );
        assert_eq!(broker.numpat(), 0);
        assert_eq!(broker.publish("late:0", Slow), 0);
        assert!(broker.is_idle());
        broker.check_invariants();
        // Every name it gained was lost again (hooks may run just after).
        let deadline = Instant::now() + QUICK;
        loop {
            let log = changes.lock().unwrap().clone();
            let mut live = std::collections::BTreeMap::new();
            for (name, active) in log {
                *live.entry(name).or_insert(0i32) += if active { 1 } else { -1 };
            }
            if live.values().all(|&n| n == 0) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: hooks saw {live:?}"
            );
            thread::sleep(Duration::from_millis(1));
        }
        // Its stream ends after what it had queued.
        let mut sub = sub;
        let end = within(QUICK, "draining", move || {
            loop {
                match sub.recv() {
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(e) => return e,
                }
            }
        });
        assert!(matches!(end, RecvError::Disconnected(_)));
    }
}

/// A payload whose `Clone` subscribes and publishes (to the very channel
/// being published) and whose `Drop` drops a `Subscriber` it carries.
struct Hostile {
    broker: Arc<Mutex<Option<Broker<Hostile>>>>,
    clones: Arc<AtomicUsize>,
    kept: Arc<Mutex<Vec<Subscriber<Hostile>>>>,
    victim: Option<Subscriber<Hostile>>,
}

impl Hostile {
    fn sibling(&self, victim: Option<Subscriber<Hostile>>) -> Hostile {
        Hostile {
            broker: Arc::clone(&self.broker),
            clones: Arc::clone(&self.clones),
            kept: Arc::clone(&self.kept),
            victim,
        }
    }
}

impl Clone for Hostile {
    fn clone(&self) -> Self {
        let n = self.clones.fetch_add(1, Ordering::SeqCst);
        let broker = self.broker.lock().unwrap().clone();
        if let Some(broker) = broker {
            let mut s = broker.subscriber();
            s.subscribe(format!("from-clone:{n}"));
            self.kept.lock().unwrap().push(s);
            if n < 3 {
                broker.publish("news", self.sibling(None));
            }
        }
        self.sibling(None)
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        // Dropping a subscriber takes the registry's write lock.
        drop(self.victim.take());
    }
}

/// Bug 3: a payload `Clone` that subscribes, a `Clone` that publishes to
/// the same channel, and a `Drop` that drops a `Subscriber` (run when a
/// queue or a ring discards a message, or when the last handle goes) all
/// complete.
#[test]
fn payload_clone_and_drop_may_use_the_broker() {
    within(QUICK, "re-entrant payloads", || {
        let broker: Broker<Hostile> = Broker::new();
        let seed = Hostile {
            broker: Arc::new(Mutex::new(Some(broker.clone()))),
            clones: Arc::new(AtomicUsize::new(0)),
            kept: Arc::new(Mutex::new(Vec::new())),
            victim: None,
        };
        // Two routes: every publish clones the payload once.
        let mut both = broker.subscriber();
        both.subscribe("news");
        both.psubscribe("n*");
        // Discards when full: a ring reader (one route) and a queue.
        let mut ring = broker
            .subscriber_with(Options::new().capacity(1).policy(Policy::DropOldest))
            .unwrap();
        ring.subscribe("news");
        let mut queue = broker
            .subscriber_with(Options::new().capacity(1).policy(Policy::DropOldest))
            .unwrap();
        queue.subscribe("news");
        queue.subscribe("other");
        for _ in 0..5 {
            // Each message carries a subscriber, dropped with the message.
            let victim = broker.subscriber();
            broker.publish("news", seed.sibling(Some(victim)));
        }
        assert!(seed.clones.load(Ordering::SeqCst) >= 5);
        drop((both, ring, queue));
        seed.kept.lock().unwrap().clear();
        *seed.broker.lock().unwrap() = None;
        assert!(broker.is_idle());
        broker.check_invariants();
    });
}

/// Bug 3: interest hooks run with no broker lock held: a hook may
/// subscribe, publish and drop subscribers.
#[test]
fn interest_hooks_may_use_the_broker() {
    within(QUICK, "re-entrant hooks", || {
        let broker: Broker<u32> = Broker::new();
        let kept: Arc<Mutex<Vec<Subscriber<u32>>>> = Arc::new(Mutex::new(Vec::new()));
        let (b, k) = (broker.clone(), Arc::clone(&kept));
        let _watch = broker.watch_interest(move |c| {
            if c.active && c.name.starts_with(b"user:") {
                let mut s = b.subscriber();
                s.subscribe([b"mirror:".as_slice(), c.name].concat());
                b.publish("audit", 1);
                k.lock().unwrap().push(s);
            }
            if !c.active && c.name.starts_with(b"user:") {
                k.lock().unwrap().clear(); // drops subscribers from a hook
            }
        });
        let mut audit = broker.subscriber();
        audit.subscribe("audit");
        let mut user = broker.subscriber();
        user.subscribe("user:1");
        assert_eq!(broker.numsub(Namespace::Channel, "mirror:user:1"), 1);
        assert_eq!(*audit.try_recv().unwrap().payload(), 1);
        drop(user);
        assert_eq!(broker.numsub(Namespace::Channel, "mirror:user:1"), 0);
        drop(audit);
        assert!(broker.is_idle());
        broker.check_invariants();
    });
}

/// Bug 4: a hook that panics while a subscriber is dropped leaves no dead
/// subscriber holding anything; the panic reaches the drop, and the
/// remaining changes reach the hooks later.
#[test]
fn a_panicking_hook_leaves_the_registry_consistent() {
    let broker: Broker<u32> = Broker::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let _watch = broker.watch_interest(move |c| {
        log.lock().unwrap().push((c.name.to_vec(), c.active));
        if c.name == b"b" && !c.active {
            panic!("hook panics on purpose");
        }
    });
    let mut sub = broker.subscriber();
    for name in ["a", "b", "c"] {
        sub.subscribe(name);
    }
    let dropped = catch_unwind(AssertUnwindSafe(move || drop(sub)));
    assert!(dropped.is_err(), "the hook's panic reaches the drop");
    broker.check_invariants();
    assert!(broker.is_idle());
    for name in ["a", "b", "c"] {
        assert_eq!(broker.publish(name, 0), 0);
    }
    // The next change hands out what was left, in order.
    let mut next = broker.subscriber();
    next.subscribe("d");
    let log = seen.lock().unwrap().clone();
    let lost: Vec<&[u8]> = log
        .iter()
        .filter(|(_, active)| !active)
        .map(|(n, _)| n.as_slice())
        .collect();
    assert_eq!(lost, [&b"a"[..], b"b", b"c"]);
    assert_eq!(log.last(), Some(&(b"d".to_vec(), true)));
}

/// Bug 4: a payload `Clone` that panics (on the second route of a publish)
/// leaves nothing half delivered: no subscriber overflowed, flagged or
/// stranded, and the broker goes on.
#[test]
fn a_panicking_clone_leaves_nothing_half_done() {
    #[derive(Debug)]
    struct Fragile(bool);
    impl Clone for Fragile {
        fn clone(&self) -> Self {
            assert!(!self.0, "clone panics on purpose");
            Fragile(false)
        }
    }
    let broker: Broker<Fragile> = Broker::new();
    let mut full = broker.subscriber_with(Options::new().capacity(1)).unwrap();
    full.subscribe("x");
    let mut pattern = broker.subscriber();
    pattern.psubscribe("x*");
    assert_eq!(broker.publish("x", Fragile(false)), 2); // `full` is full now
    let b = broker.clone();
    let r = catch_unwind(AssertUnwindSafe(move || b.publish("x", Fragile(true))));
    assert!(r.is_err());
    broker.check_invariants();
    assert!(!full.stats().disconnected, "nothing was delivered");
    assert_eq!(broker.numsub(Namespace::Channel, "x"), 1);
    assert_eq!(full.len(), 1);
    assert_eq!(pattern.len(), 1);
    // The next publish overflows it properly: removed, and its stream ends.
    assert_eq!(broker.publish("x", Fragile(false)), 2);
    assert!(full.stats().disconnected);
    assert_eq!(broker.numsub(Namespace::Channel, "x"), 0);
    assert!(full.recv().is_ok());
    assert!(matches!(full.recv(), Err(RecvError::Disconnected(_))));
    broker.check_invariants();
}

/// Bug 5: settings that used to panic inside crossbeam or abort the process
/// on allocation work: nothing is allocated up front for any capacity.
#[test]
fn huge_capacities_work_and_allocate_nothing_up_front() {
    let broker: Broker<u32> = Broker::new();
    for options in [
        block(usize::MAX, Duration::from_millis(1)),
        Options::new().capacity(1 << 40),
        Options::new()
            .capacity(usize::MAX)
            .policy(Policy::DropOldest),
        Options::new()
            .capacity(usize::MAX)
            .policy(Policy::DropNewest),
    ] {
        let mut sub = broker.subscriber_with(options).unwrap();
        sub.subscribe("x");
        assert_eq!(broker.publish("x", 7), 1);
        assert_eq!(*sub.recv().unwrap().payload(), 7);
    }
    assert!(broker.subscriber_with(Options::new().capacity(0)).is_err());
    assert!(Broker::builder().capacity(0).build::<u32>().is_err());
}

/// Several threads race every pair of operations on one channel, with every
/// policy, while a barrier lines them up: nothing stalls, and the broker is
/// consistent and empty at the end.
#[test]
fn racing_operations_finish_and_leave_nothing() {
    let broker: Broker<u32> = Broker::new();
    let policies = [
        Policy::DropOldest,
        Policy::DropNewest,
        Policy::Disconnect,
        Policy::Block {
            timeout: Duration::from_millis(2),
        },
    ];
    let threads = 4;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (broker, barrier) = (broker.clone(), Arc::clone(&barrier));
            let policy = policies[t % policies.len()];
            thread::spawn(move || {
                barrier.wait();
                for i in 0..300u32 {
                    let mut s = broker
                        .subscriber_with(Options::new().capacity(2).policy(policy))
                        .unwrap();
                    s.subscribe("race");
                    if i % 2 == 0 {
                        s.psubscribe("ra*");
                    }
                    broker.publish("race", i);
                    broker.publish("race", i);
                    broker.publish("race", i);
                    let _ = s.try_recv();
                    if i % 3 == 0 {
                        s.unsubscribe("race");
                    }
                }
            })
        })
        .collect();
    within(Duration::from_secs(60), "racing operations", move || {
        for h in handles {
            h.join().unwrap();
        }
    });
    assert!(broker.is_idle());
    broker.check_invariants();
}
