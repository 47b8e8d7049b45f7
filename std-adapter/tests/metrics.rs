//! Feature `metrics`: every counter and gauge the crate docs list moves as
//! documented, per policy, and agrees with [`Broker::metrics`] and the
//! registry; one update per counter per publish; several brokers add up
//! unless labelled; gauges end exact after concurrent changes; no recorder
//! code runs under a broker lock (a recorder that calls back into the
//! broker would deadlock, and the watchdog fails the test); and the bridge's
//! series against a real Redis, killed and restarted.
//!
//! The recorder is this file's own ([`TestRecorder`]): it keeps each
//! series' value and the number of calls made on it, and can call back
//! into the broker from inside every call. Brokers are built under
//! `metrics::with_local_recorder`, so tests running in parallel do not
//! share one; no global recorder is ever installed in this binary.
#![cfg(feature = "metrics")]
#![allow(clippy::unwrap_used)]

#[allow(dead_code, unreachable_pub)]
mod support;

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder, SharedString,
    Unit,
};
use support::{Rng, WATCHDOG, with_watchdog};
use tidings::{Broker, BrokerBuilder, Namespace, Options, Policy, Subscriber};

type Hook = Arc<dyn Fn() + Send + Sync>;

/// One series: its value and how many calls were made on it.
struct Series {
    value: Mutex<f64>,
    calls: AtomicU64,
    hook: Arc<OnceLock<Hook>>,
}

impl Series {
    fn apply(&self, f: impl FnOnce(&mut f64)) {
        f(&mut self.value.lock().unwrap());
        self.calls.fetch_add(1, Ordering::Relaxed);
        if let Some(hook) = self.hook.get() {
            hook();
        }
    }
}

impl CounterFn for Series {
    fn increment(&self, value: u64) {
        self.apply(|v| *v += value as f64);
    }

    fn absolute(&self, value: u64) {
        self.apply(|v| *v = v.max(value as f64));
    }
}

impl GaugeFn for Series {
    fn increment(&self, value: f64) {
        self.apply(|v| *v += value);
    }

    fn decrement(&self, value: f64) {
        self.apply(|v| *v -= value);
    }

    fn set(&self, value: f64) {
        self.apply(|v| *v = value);
    }
}

/// A recorder that keeps everything it is told, by series
/// (`name{label="value",...}`, labels sorted).
#[derive(Clone, Default)]
struct TestRecorder {
    series: Arc<Mutex<BTreeMap<String, Arc<Series>>>>,
    described: Arc<Mutex<BTreeSet<String>>>,
    /// Called after every update, from inside the recorder.
    hook: Arc<OnceLock<Hook>>,
}

fn series_name(key: &Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}=\"{}\"", l.key(), l.value()))
        .collect();
    labels.sort();
    if labels.is_empty() {
        key.name().to_string()
    } else {
        format!("{}{{{}}}", key.name(), labels.join(","))
    }
}

impl TestRecorder {
    fn register(&self, key: &Key) -> Arc<Series> {
        let mut series = self.series.lock().unwrap();
        let s = series.entry(series_name(key)).or_insert_with(|| {
            Arc::new(Series {
                value: Mutex::new(0.0),
                calls: AtomicU64::new(0),
                hook: Arc::clone(&self.hook),
            })
        });
        Arc::clone(s)
    }

    fn get(&self, series: &str) -> Arc<Series> {
        let all = self.series.lock().unwrap();
        match all.get(series) {
            Some(s) => Arc::clone(s),
            None => panic!("series {series} not registered; have {:?}", all.keys()),
        }
    }

    /// A series' value.
    fn value(&self, series: &str) -> f64 {
        *self.get(series).value.lock().unwrap()
    }

    /// A series' value, as a count.
    fn count(&self, series: &str) -> u64 {
        let v = self.value(series);
        assert!(v >= 0.0 && v.fract() == 0.0, "{series} = {v}");
        v as u64
    }

    /// Calls made on a series.
    fn calls(&self, series: &str) -> u64 {
        self.get(series).calls.load(Ordering::Relaxed)
    }

    fn names(&self) -> Vec<String> {
        self.series.lock().unwrap().keys().cloned().collect()
    }

    /// Builds a broker whose handles report here.
    fn broker<T>(&self, builder: BrokerBuilder) -> Broker<T> {
        metrics::with_local_recorder(self, || builder.build().unwrap())
    }
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, key: KeyName, _: Option<Unit>, _: SharedString) {
        self.described
            .lock()
            .unwrap()
            .insert(key.as_str().to_string());
    }

    fn describe_gauge(&self, key: KeyName, _: Option<Unit>, _: SharedString) {
        self.described
            .lock()
            .unwrap()
            .insert(key.as_str().to_string());
    }

    fn describe_histogram(&self, key: KeyName, _: Option<Unit>, _: SharedString) {
        panic!("tidings reports no histogram, yet described {key:?}");
    }

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.register(key))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.register(key))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        panic!("tidings registers no histogram, yet registered {key:?}");
    }
}

const PUBLISHES: &str = "tidings_publishes_total";
const DELIVERIES: &str = "tidings_deliveries_total";
const DROPPED_NEWEST: &str = "tidings_dropped_total{policy=\"drop_newest\"}";
const DROPPED_OLDEST: &str = "tidings_dropped_total{policy=\"drop_oldest\"}";
const DROPPED_BLOCK: &str = "tidings_dropped_total{policy=\"block\"}";
const DROPPED_DISCONNECT: &str = "tidings_dropped_total{policy=\"disconnect\"}";
const LAGGED: &str = "tidings_lagged_total{policy=\"drop_oldest\"}";
const DISCONNECTED: &str = "tidings_disconnected_total{policy=\"disconnect\"}";
const SUBSCRIBERS: &str = "tidings_subscribers";
const CHANNELS: &str = "tidings_channels";
const PATTERNS: &str = "tidings_patterns";
const SHARD_CHANNELS: &str = "tidings_shard_channels";

/// Every series a broker without a label registers.
const BROKER_SERIES: [&str; 12] = [
    CHANNELS,
    DELIVERIES,
    DISCONNECTED,
    DROPPED_BLOCK,
    DROPPED_DISCONNECT,
    DROPPED_NEWEST,
    DROPPED_OLDEST,
    LAGGED,
    PATTERNS,
    PUBLISHES,
    SHARD_CHANNELS,
    SUBSCRIBERS,
];

const DROPPED: [&str; 4] = [
    DROPPED_NEWEST,
    DROPPED_OLDEST,
    DROPPED_BLOCK,
    DROPPED_DISCONNECT,
];

/// The recorder says what `Broker::metrics` and the registry say.
fn assert_agrees<T>(rec: &TestRecorder, broker: &Broker<T>) {
    let m = broker.metrics();
    let dropped: u64 = DROPPED.iter().map(|s| rec.count(s)).sum();
    assert_eq!(
        [
            rec.count(PUBLISHES),
            rec.count(DELIVERIES),
            dropped,
            rec.count(LAGGED),
            rec.count(DISCONNECTED),
            rec.count(SUBSCRIBERS),
        ],
        [
            m.published,
            m.delivered,
            m.dropped,
            m.lagged,
            m.disconnected,
            m.subscribers
        ],
        "recorder vs {m:?}"
    );
    assert_gauges(rec, broker);
}

/// The name gauges say what the registry holds.
fn assert_gauges<T>(rec: &TestRecorder, broker: &Broker<T>) {
    assert_eq!(
        [
            rec.count(CHANNELS),
            rec.count(PATTERNS),
            rec.count(SHARD_CHANNELS)
        ],
        [
            broker.channels(Namespace::Channel, None).len() as u64,
            broker.numpat() as u64,
            broker.channels(Namespace::Shard, None).len() as u64,
        ],
        "name gauges vs the registry"
    );
}

/// Every value, to compare steps.
fn values(rec: &TestRecorder) -> BTreeMap<String, f64> {
    rec.names()
        .into_iter()
        .map(|n| {
            let v = rec.value(&n);
            (n, v)
        })
        .collect()
}

/// What moved since `before`, and by how much.
fn moved(rec: &TestRecorder, before: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    values(rec)
        .into_iter()
        .filter_map(|(n, v)| {
            let d = v - before.get(&n).copied().unwrap_or(0.0);
            (d != 0.0).then_some((n, d))
        })
        .collect()
}

fn expect(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|(n, v)| (n.to_string(), *v)).collect()
}

fn capped(broker: &Broker<u32>, capacity: usize, policy: Policy) -> Subscriber<u32> {
    broker
        .subscriber_with(Options::new().capacity(capacity).policy(policy))
        .unwrap()
}

#[test]
fn every_series_is_registered_at_zero_and_described_when_the_broker_is_built() {
    let rec = TestRecorder::default();
    let _broker: Broker<u32> = rec.broker(Broker::builder());
    assert_eq!(rec.names(), BROKER_SERIES);
    for s in BROKER_SERIES {
        assert_eq!((rec.value(s), rec.calls(s)), (0.0, 0), "{s}");
    }
    let described: Vec<String> = rec.described.lock().unwrap().iter().cloned().collect();
    let mut names: Vec<&str> = BROKER_SERIES
        .iter()
        .map(|s| s.split('{').next().unwrap())
        .collect();
    names.dedup();
    assert_eq!(described, names);
}

/// Each policy's outcome, step by step: exactly the documented series
/// move, by exactly the documented amounts, and the totals agree with
/// `Broker::metrics` after every step.
#[test]
fn counters_move_as_documented_per_policy() {
    with_watchdog(WATCHDOG, || {
        let rec = TestRecorder::default();
        let broker: Broker<u32> = rec.broker(Broker::builder());
        let step = |what: &str, f: &mut dyn FnMut(), want: &[(&str, f64)]| {
            let before = values(&rec);
            f();
            assert_eq!(moved(&rec, &before), expect(want), "{what}");
            assert_agrees(&rec, &broker);
        };

        step(
            "a publish to nobody",
            &mut || assert_eq!(broker.publish("nobody", 0), 0),
            &[(PUBLISHES, 1.0)],
        );

        let mut created = None;
        step(
            "a subscriber is created",
            &mut || created = Some(capped(&broker, 1, Policy::DropNewest)),
            &[(SUBSCRIBERS, 1.0)],
        );
        let mut newest = created.unwrap();
        step(
            "a subscriber subscribes",
            &mut || {
                newest.subscribe("newest");
            },
            &[(CHANNELS, 1.0)],
        );
        step(
            "drop_newest: one queued, two dropped",
            &mut || {
                for i in 0..3 {
                    assert_eq!(broker.publish("newest", i), 1);
                }
            },
            &[(PUBLISHES, 3.0), (DELIVERIES, 1.0), (DROPPED_NEWEST, 2.0)],
        );

        let mut ring = capped(&broker, 1, Policy::DropOldest);
        ring.subscribe("ring");
        step(
            "drop_oldest, a ring reader: three delivered, two overwritten",
            &mut || {
                for i in 0..3 {
                    assert_eq!(broker.publish("ring", i), 1);
                }
            },
            &[(PUBLISHES, 3.0), (DELIVERIES, 3.0), (LAGGED, 2.0)],
        );
        assert_eq!(ring.stats().lagged, 2);

        let mut queue = capped(&broker, 1, Policy::DropOldest);
        queue.subscribe("queue");
        step(
            "a second channel makes it a queue of its own",
            &mut || {
                queue.subscribe("queue:2");
            },
            &[(CHANNELS, 1.0)],
        );
        step(
            "drop_oldest, its own queue: three delivered, two overwritten",
            &mut || {
                for i in 0..3 {
                    assert_eq!(broker.publish("queue", i), 1);
                }
            },
            &[(PUBLISHES, 3.0), (DELIVERIES, 3.0), (LAGGED, 2.0)],
        );

        let mut block = capped(
            &broker,
            1,
            Policy::Block {
                timeout: Duration::from_millis(1),
            },
        );
        block.subscribe("block");
        step(
            "block: one queued, one given up after the timeout",
            &mut || {
                for i in 0..2 {
                    assert_eq!(broker.publish("block", i), 1);
                }
            },
            &[(PUBLISHES, 2.0), (DELIVERIES, 1.0), (DROPPED_BLOCK, 1.0)],
        );

        let mut slow = capped(&broker, 1, Policy::Disconnect);
        slow.subscribe("slow");
        step(
            "disconnect: one queued, the overflow dropped, the subscriber removed",
            &mut || {
                for i in 0..2 {
                    assert_eq!(broker.publish("slow", i), 1);
                }
            },
            &[
                (PUBLISHES, 2.0),
                (DELIVERIES, 1.0),
                (DROPPED_DISCONNECT, 1.0),
                (DISCONNECTED, 1.0),
                (CHANNELS, -1.0),
            ],
        );
        let mut doomed = capped(&broker, 1, Policy::Disconnect);
        doomed.subscribe("doomed");
        doomed.psubscribe("doom*");
        doomed.psubscribe("*med");
        step(
            "disconnect, three routes: queued, overflowed, then dropped as already removed",
            &mut || assert_eq!(broker.publish("doomed", 0), 3),
            &[
                (PUBLISHES, 1.0),
                (DELIVERIES, 1.0),
                (DROPPED_DISCONNECT, 2.0),
                (DISCONNECTED, 1.0),
                (CHANNELS, -1.0),
                (PATTERNS, -2.0),
            ],
        );
        assert_eq!(*doomed.recv().unwrap().payload(), 0);
        drop(doomed);
        step(
            "a removed subscriber's handle is still live",
            &mut || assert_eq!(broker.publish("slow", 9), 0),
            &[(PUBLISHES, 1.0)],
        );
        step(
            "dropping it",
            &mut || drop(std::mem::replace(&mut slow, broker.subscriber())),
            &[],
        );
        step(
            "dropping a subscriber never subscribed",
            &mut || drop(std::mem::replace(&mut slow, broker.subscriber())),
            &[],
        );

        let calls = Arc::new(AtomicU64::new(0));
        let seen = Arc::clone(&calls);
        let mut handler = broker.handler(move |_| {
            seen.fetch_add(1, Ordering::Relaxed);
        });
        handler.subscribe("handled");
        handler.psubscribe("hand*");
        step(
            "a handler: a delivery per route",
            &mut || assert_eq!(broker.publish("handled", 1), 2),
            &[(PUBLISHES, 1.0), (DELIVERIES, 2.0)],
        );
        assert_eq!(calls.load(Ordering::Relaxed), 2);

        let mut shard = broker.subscriber();
        shard.ssubscribe("{s}1");
        step(
            "spublish",
            &mut || assert_eq!(broker.spublish("{s}1", 1), 1),
            &[(PUBLISHES, 1.0), (DELIVERIES, 1.0)],
        );

        step(
            "dropping subscribers and a handler",
            &mut || {
                drop(std::mem::replace(&mut newest, broker.subscriber()));
                drop(std::mem::replace(&mut handler, broker.handler(|_| {})));
            },
            &[(CHANNELS, -2.0), (PATTERNS, -1.0)],
        );
        drop((ring, queue, block, shard, newest, handler, slow));
        assert_agrees(&rec, &broker);
        assert_eq!(rec.count(SUBSCRIBERS), 0);
        assert_eq!(
            [rec.count(CHANNELS), rec.count(PATTERNS)],
            [0, 0],
            "nothing held"
        );
    });
}

/// However many subscribers a publish reaches, each counter that moves is
/// updated once: the recorder's calls do not grow with the fan-out.
#[test]
fn one_update_per_counter_per_publish_whatever_the_fan_out() {
    for n in [1usize, 10, 1000] {
        let rec = TestRecorder::default();
        let broker: Broker<u32> = rec.broker(Broker::builder().capacity(1));
        let mut members: Vec<Subscriber<u32>> = Vec::new();
        let mut readers: Vec<Subscriber<u32>> = Vec::new();
        let mut newest: Vec<Subscriber<u32>> = Vec::new();
        let mut slow: Vec<Subscriber<u32>> = Vec::new();
        for _ in 0..n {
            let mut m = broker.subscriber(); // Disconnect, a queue of its own
            m.subscribe("members");
            members.push(m);
            let mut r = capped(&broker, 1, Policy::DropOldest); // a ring reader
            r.subscribe("members");
            readers.push(r);
            let mut d = capped(&broker, 1, Policy::DropNewest);
            d.subscribe("newest");
            newest.push(d);
            let mut s = broker.subscriber();
            s.subscribe("slow");
            slow.push(s);
        }
        let calls = |rec: &TestRecorder| -> Vec<u64> {
            BROKER_SERIES.iter().map(|s| rec.calls(s)).collect()
        };
        let one = |series: &[&str]| -> Vec<u64> {
            BROKER_SERIES
                .iter()
                .map(|s| u64::from(series.contains(s)))
                .collect()
        };
        let diff =
            |a: &[u64], b: &[u64]| -> Vec<u64> { b.iter().zip(a).map(|(b, a)| b - a).collect() };

        // Delivered to 2n: one call to each of publishes and deliveries.
        let before = calls(&rec);
        assert_eq!(broker.publish("members", 1), 2 * n);
        assert_eq!(
            diff(&before, &calls(&rec)),
            one(&[PUBLISHES, DELIVERIES]),
            "n = {n}"
        );
        for m in &mut members {
            m.try_recv().unwrap();
        }
        for r in &mut readers {
            r.try_recv().unwrap();
        }

        // Lagged for n readers (one ring eviction) and n queues.
        broker.publish("members", 2);
        for m in &mut members {
            m.try_recv().unwrap();
        }
        let before = calls(&rec);
        let lagged = rec.count(LAGGED);
        // Members take theirs; readers do not: the ring evicts for all n.
        broker.publish("members", 3);
        assert_eq!(
            diff(&before, &calls(&rec)),
            one(&[PUBLISHES, DELIVERIES, LAGGED]),
            "n = {n}"
        );
        assert_eq!(rec.count(LAGGED) - lagged, n as u64);

        // Dropped by n full DropNewest queues.
        broker.publish("newest", 1);
        let before = calls(&rec);
        assert_eq!(broker.publish("newest", 2), n);
        assert_eq!(
            diff(&before, &calls(&rec)),
            one(&[PUBLISHES, DROPPED_NEWEST]),
            "n = {n}"
        );
        assert_eq!(rec.count(DROPPED_NEWEST), n as u64);

        // n subscribers disconnected by one publish: one update each for
        // the drops, the disconnections and the channel gone.
        broker.publish("slow", 1);
        let before = calls(&rec);
        assert_eq!(broker.publish("slow", 2), n);
        assert_eq!(
            diff(&before, &calls(&rec)),
            one(&[PUBLISHES, DROPPED_DISCONNECT, DISCONNECTED, CHANNELS]),
            "n = {n}"
        );
        assert_eq!(rec.count(DISCONNECTED), n as u64);

        // A subscriber dropping n channels at once: one gauge update.
        let mut many = broker.subscriber();
        for i in 0..n {
            many.subscribe(format!("many:{i}"));
        }
        let before = calls(&rec);
        drop(many);
        assert_eq!(
            diff(&before, &calls(&rec)),
            one(&[SUBSCRIBERS, CHANNELS]),
            "n = {n}"
        );
        assert_agrees(&rec, &broker);
    }
}

#[test]
fn gauges_follow_subscriptions_through_every_way_of_leaving() {
    let rec = TestRecorder::default();
    let broker: Broker<u32> = rec.broker(Broker::builder());
    let mut a = broker.subscriber();
    let mut b = broker.subscriber();
    a.subscribe("x");
    b.subscribe("x"); // not a new name
    a.subscribe("y");
    a.psubscribe("p*");
    b.psubscribe("p*");
    b.psubscribe("q*");
    a.ssubscribe("{s}1");
    b.ssubscribe("{s}2");
    assert_agrees(&rec, &broker);
    assert_eq!(
        [
            rec.count(SUBSCRIBERS),
            rec.count(CHANNELS),
            rec.count(PATTERNS),
            rec.count(SHARD_CHANNELS)
        ],
        [2, 2, 2, 2]
    );
    a.unsubscribe("x"); // b still holds it
    a.unsubscribe("never held");
    assert_eq!(rec.count(CHANNELS), 2);
    a.unsubscribe("y");
    assert_eq!(rec.count(CHANNELS), 1);
    b.unsubscribe_all(Namespace::Pattern); // q* goes, p* stays with a
    assert_eq!(rec.count(PATTERNS), 1);
    a.unsubscribe_all(Namespace::Shard);
    assert_eq!(rec.count(SHARD_CHANNELS), 1);
    assert_agrees(&rec, &broker);
    drop(b); // x and {s}2 go
    assert_eq!(
        [
            rec.count(SUBSCRIBERS),
            rec.count(CHANNELS),
            rec.count(SHARD_CHANNELS)
        ],
        [1, 0, 0]
    );
    assert_agrees(&rec, &broker);

    // Closing the broker empties the registry: the name gauges fall to
    // zero; the handles stay live until they are dropped.
    let mut c = broker.subscriber();
    c.subscribe("z");
    c.ssubscribe("{s}3");
    drop(broker);
    assert_eq!(
        [
            rec.count(CHANNELS),
            rec.count(PATTERNS),
            rec.count(SHARD_CHANNELS),
            rec.count(SUBSCRIBERS)
        ],
        [0, 0, 0, 2]
    );
    c.subscribe("after the close"); // refused: nothing moves
    assert_eq!(rec.count(CHANNELS), 0);
    drop((a, c));
    assert_eq!(rec.count(SUBSCRIBERS), 0);
}

/// Threads subscribe, unsubscribe, drop and overflow at once; each applies
/// the gauge changes of others as it goes. Once they stop, every gauge
/// equals the registry's count.
#[test]
fn gauges_are_exact_after_concurrent_changes() {
    with_watchdog(Duration::from_secs(120), || {
        let rec = TestRecorder::default();
        let broker: Broker<u32> = rec.broker(Broker::builder().capacity(2));
        let held: Vec<Vec<Subscriber<u32>>> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..4u64)
                .map(|t| {
                    let broker = broker.clone();
                    s.spawn(move || {
                        let mut rng = Rng::new(t + 1);
                        let mut subs: Vec<Subscriber<u32>> = Vec::new();
                        for _ in 0..3000 {
                            let name = format!("n{}", rng.below(12));
                            match rng.below(8) {
                                0 => subs.push(broker.subscriber()),
                                1 if !subs.is_empty() => {
                                    let i = rng.below(subs.len());
                                    drop(subs.swap_remove(i));
                                }
                                2 if !subs.is_empty() => {
                                    let i = rng.below(subs.len());
                                    subs[i].unsubscribe_all(*rng.pick(&[
                                        Namespace::Channel,
                                        Namespace::Pattern,
                                        Namespace::Shard,
                                    ]));
                                }
                                3 => {
                                    broker.publish(&name, 0);
                                }
                                _ if !subs.is_empty() => {
                                    let i = rng.below(subs.len());
                                    let sub = &mut subs[i];
                                    match rng.below(6) {
                                        0 => sub.subscribe(&name),
                                        1 => sub.unsubscribe(&name),
                                        2 => sub.psubscribe(format!("{name}*")),
                                        3 => sub.punsubscribe(format!("{name}*")),
                                        4 => sub.ssubscribe(&name),
                                        _ => sub.sunsubscribe(&name),
                                    };
                                }
                                _ => {}
                            }
                        }
                        // Half the threads hand their subscribers back, held.
                        if t % 2 == 0 {
                            subs.clear();
                        }
                        subs
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        assert_agrees(&rec, &broker);
        assert!(rec.count(CHANNELS) + rec.count(PATTERNS) + rec.count(SHARD_CHANNELS) > 0);
        assert!(rec.count(DISCONNECTED) > 0, "some overflowed");
        drop(held);
        assert_agrees(&rec, &broker);
        assert_eq!(rec.count(SUBSCRIBERS), 0);
    });
}

thread_local! {
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
}

/// A recorder that, from inside every update, publishes to the channel the
/// test publishes to, subscribes and unsubscribes (the registry's write
/// lock), and reads the registry. Had any update run under a broker lock
/// (the registry's, a route's, a queue's), one of these would wait for that
/// lock on the thread that holds it: the watchdog turns that into a
/// failure.
#[test]
fn no_recorder_code_runs_under_a_broker_lock() {
    with_watchdog(WATCHDOG, || {
        let rec = TestRecorder::default();
        let broker: Broker<u32> = rec.broker(Broker::builder());
        let inner = broker.clone();
        let reentered = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&reentered);
        let hook: Hook = Arc::new(move || {
            if IN_HOOK.with(|h| h.replace(true)) {
                return;
            }
            count.fetch_add(1, Ordering::Relaxed);
            inner.publish("ch", 0);
            let mut probe = inner.subscriber();
            probe.subscribe("ch");
            probe.psubscribe("c*");
            probe.ssubscribe("ch");
            let _ = inner.channels(Namespace::Channel, None);
            drop(probe);
            IN_HOOK.with(|h| h.set(false));
        });
        assert!(rec.hook.set(hook).is_ok());

        let mut ring = capped(&broker, 1, Policy::DropOldest);
        ring.subscribe("ch");
        let mut queue = capped(&broker, 1, Policy::DropOldest);
        queue.subscribe("ch");
        queue.psubscribe("c*");
        let mut newest = capped(&broker, 1, Policy::DropNewest);
        newest.subscribe("ch");
        let mut block = capped(
            &broker,
            1,
            Policy::Block {
                timeout: Duration::from_millis(1),
            },
        );
        block.subscribe("ch");
        let mut slow = capped(&broker, 1, Policy::Disconnect);
        slow.subscribe("ch");
        let mut handler = broker.handler(|_| {});
        handler.subscribe("ch");
        for i in 0..4 {
            broker.publish("ch", i);
            broker.spublish("ch", i);
        }
        drop((ring, queue, newest, block, slow, handler));
        let mut last = broker.subscriber();
        last.subscribe("ch");
        drop(broker); // the close
        drop(last);
        assert!(reentered.load(Ordering::Relaxed) > 10);
    });
}

#[test]
fn brokers_add_up_without_a_label_and_stand_apart_with_one() {
    let rec = TestRecorder::default();
    let a: Broker<u32> = rec.broker(Broker::builder());
    let b: Broker<u32> = rec.broker(Broker::builder());
    let orders: Broker<u32> = rec.broker(Broker::builder().metrics_label("orders"));
    let (mut sa, mut sb, mut so) = (a.subscriber(), b.subscriber(), orders.subscriber());
    sa.subscribe("x");
    sb.subscribe("x");
    so.subscribe("x");
    a.publish("x", 1);
    b.publish("x", 1);
    b.publish("y", 1);
    orders.publish("x", 1);
    assert_eq!(
        [
            rec.count(PUBLISHES),
            rec.count(DELIVERIES),
            rec.count(CHANNELS),
            rec.count(SUBSCRIBERS)
        ],
        [3, 2, 2, 2],
        "the unlabelled brokers' sums"
    );
    assert_eq!(
        [
            rec.count("tidings_publishes_total{broker=\"orders\"}"),
            rec.count("tidings_deliveries_total{broker=\"orders\"}"),
            rec.count("tidings_channels{broker=\"orders\"}"),
            rec.count("tidings_subscribers{broker=\"orders\"}"),
        ],
        [1, 1, 1, 1]
    );
    let labelled: Vec<String> = rec
        .names()
        .into_iter()
        .filter(|n| n.contains("broker=\"orders\""))
        .collect();
    assert_eq!(labelled.len(), BROKER_SERIES.len());
    assert!(
        labelled.contains(&"tidings_dropped_total{broker=\"orders\",policy=\"block\"}".to_string())
    );
}

/// The facade's rule: handles are taken from the recorder installed when
/// the broker is built. One built before any recorder reports nothing
/// later, and costs nothing but the no-op calls.
#[test]
fn a_broker_built_with_no_recorder_reports_nothing() {
    let broker: Broker<u32> = Broker::new();
    let rec = TestRecorder::default();
    metrics::with_local_recorder(&rec, || {
        let mut sub = broker.subscriber();
        sub.subscribe("x");
        assert_eq!(broker.publish("x", 1), 1);
    });
    assert!(rec.names().is_empty());
    assert_eq!(broker.metrics().published, 1);
}

/// The bridge's series against a real Redis: connected, traffic both ways,
/// a publish lost while Redis is down, the loss and the reconnect, and the
/// gauge falling when the bridge is dropped.
#[cfg(feature = "redis")]
#[test]
fn the_bridge_reports_its_connection_and_traffic() {
    use std::time::Instant;
    use support::redis_server::Redis;
    use tidings::Bridge;

    const CONNECTED: &str = "tidings_bridge_connected{broker=\"bridged\"}";
    const RECONNECTS: &str = "tidings_bridge_reconnects_total{broker=\"bridged\"}";
    const DISCONNECTS: &str = "tidings_bridge_disconnects_total{broker=\"bridged\"}";
    const IN: &str = "tidings_bridge_messages_in_total{broker=\"bridged\"}";
    const OUT: &str = "tidings_bridge_messages_out_total{broker=\"bridged\"}";
    const LOST: &str = "tidings_bridge_lost_total{broker=\"bridged\"}";
    let Some(mut server) = Redis::start() else {
        return;
    };
    let wait = Duration::from_secs(20);
    let until = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + wait;
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    let rec = TestRecorder::default();
    let broker: Broker<Vec<u8>> = rec.broker(Broker::builder().metrics_label("bridged"));
    let bridge = metrics::with_local_recorder(&rec, || {
        Bridge::builder()
            .server(server.url())
            .connect_timeout(Duration::from_millis(500))
            .io_timeout(Duration::from_millis(300))
            .heartbeat(Duration::from_millis(100))
            .backoff(Duration::from_millis(20), Duration::from_millis(200))
            .start(&broker)
            .unwrap()
    });
    for s in [CONNECTED, RECONNECTS, DISCONNECTS, IN, OUT, LOST] {
        assert!(rec.names().contains(&s.to_string()), "{s} registered");
    }
    assert_eq!(rec.value(CONNECTED), 1.0);
    let mut sub = broker.subscriber();
    sub.subscribe("ch");
    bridge.sync(wait).unwrap();
    assert_eq!(bridge.publish("ch", b"hello").unwrap(), 1);
    assert_eq!(sub.recv_timeout(wait).unwrap().payload(), b"hello");
    until("one message in", &|| rec.count(IN) == 1);
    assert_eq!([rec.count(OUT), rec.count(LOST)], [1, 0]);

    server.kill();
    until("the loss is noticed", &|| {
        rec.value(CONNECTED) == 0.0 && rec.count(DISCONNECTS) >= 1
    });
    assert!(bridge.publish("ch", b"lost").is_err());
    assert_eq!(rec.count(LOST), 1);
    server.restart();
    until("reconnected", &|| rec.value(CONNECTED) == 1.0);
    assert!(rec.count(RECONNECTS) >= 1);
    let m = bridge.metrics();
    assert_eq!(
        [
            m.reconnects,
            m.disconnects,
            m.messages_in,
            m.messages_out,
            m.lost
        ],
        [
            rec.count(RECONNECTS),
            rec.count(DISCONNECTS),
            rec.count(IN),
            rec.count(OUT),
            rec.count(LOST)
        ]
    );
    drop(bridge);
    assert_eq!(rec.value(CONNECTED), 0.0);
}
