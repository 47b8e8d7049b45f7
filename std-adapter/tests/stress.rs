//! Thread stress: threads mixing subscribe, unsubscribe, psubscribe,
//! ssubscribe, publish, spublish, reading, and subscriber drops and
//! creations, under every overflow policy with small queues so that every
//! policy acts. Afterwards every counter reconciles, every subscriber's
//! stream accounts for its stats, and the registry is empty once all
//! subscribers are dropped. The test finishing proves there is no deadlock;
//! a watchdog turns a hang into a failure.
#![allow(clippy::unwrap_used)]

#[allow(dead_code, unreachable_pub)]
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use support::{Rng, with_watchdog};
use tidings::crossbeam_channel::Select;
use tidings::{Broker, DisconnectReason, Options, Policy, RecvError, Subscriber, SubscriberStats};

const WORKERS: u64 = 4;
const OPS_PER_WORKER: usize = 10_000;
const CHANNELS: [&str; 6] = ["c0", "c1", "c2", "c3", "d0", "d1"];
const PATTERNS: [&str; 6] = ["c*", "c[0-3]", "?1", "d*", "*0", "x*"];
const SHARDS: [&str; 3] = ["{s}0", "{s}1", "{t}"];

/// What one subscriber's stream has shown so far.
#[derive(Default, Debug)]
struct Tally {
    received: u64,
    lag_reported: u64,
    ended: Option<DisconnectReason>,
}

/// A subscriber and what it has received.
struct Tracked {
    sub: Subscriber<u64>,
    tally: Tally,
}

impl Tracked {
    /// Receives everything queued now.
    fn drain(&mut self) {
        for item in self.sub.try_iter() {
            match item {
                Ok(_) => self.tally.received += 1,
                Err(RecvError::Lagged(n)) => self.tally.lag_reported += n,
                Err(RecvError::Disconnected(why)) => self.tally.ended = Some(why),
                Err(e) => panic!("unexpected receive error: {e}"),
            }
        }
    }

    /// Checks the subscriber's stats against its stream. Call it when no
    /// publish can reach the subscriber any more and its queue is drained.
    /// `settled`: every publish has finished, so a `Disconnect` is complete.
    fn check(&self, settled: bool) -> SubscriberStats {
        let s = self.sub.stats();
        let t = &self.tally;
        let ctx = || format!("{:?} {s:?} {t:?}", self.sub.policy());
        assert_eq!(s.delivered, t.received + t.lag_reported, "{}", ctx());
        assert_eq!(
            s.lagged,
            t.lag_reported,
            "every discard reported: {}",
            ctx()
        );
        match self.sub.policy() {
            Policy::DropNewest | Policy::Block { .. } => {
                assert!(!s.disconnected && s.lagged == 0, "{}", ctx());
            }
            Policy::DropOldest => {
                assert!(!s.disconnected && s.dropped == 0, "{}", ctx());
            }
            Policy::Disconnect => {
                assert_eq!(s.lagged, 0, "{}", ctx());
                if !s.disconnected {
                    assert_eq!(s.dropped, 0, "drops only by overflowing: {}", ctx());
                    assert_eq!(t.ended, None, "{}", ctx());
                } else if settled {
                    let why = DisconnectReason::Overflow {
                        capacity: self.sub.capacity(),
                    };
                    assert_eq!(t.ended, Some(why), "{}", ctx());
                }
            }
            _ => unreachable!(),
        }
        s
    }
}

/// What a worker did.
#[derive(Default)]
struct Report {
    publishes: u64,
    publish_returns: u64,
    /// Stats of subscribers retired (unsubscribed, drained, checked, dropped).
    retired: Vec<SubscriberStats>,
    /// Subscribers dropped while still subscribed.
    raw_drops: u64,
    alive: Vec<Tracked>,
}

fn new_subscriber(broker: &Broker<u64>, rng: &mut Rng) -> Tracked {
    let policy = *rng.pick(&[Policy::DropNewest, Policy::DropOldest, Policy::Disconnect]);
    // Mostly tiny preallocated queues, which overflow often; one in four is
    // a queue above the default capacity, which grows with its backlog and
    // checks its length instead.
    let capacity = 1
        + rng.below(8)
        + if rng.below(4) == 0 {
            Options::DEFAULT_CAPACITY
        } else {
            0
        };
    let sub = broker
        .try_subscriber_with(Options::new().capacity(capacity).policy(policy))
        .unwrap();
    Tracked {
        sub,
        tally: Tally::default(),
    }
}

fn worker(broker: Broker<u64>, seed: u64, start: Arc<Barrier>) -> Report {
    let mut rng = Rng::new(seed);
    let mut report = Report::default();
    let mut pool: Vec<Tracked> = (0..4).map(|_| new_subscriber(&broker, &mut rng)).collect();
    start.wait();
    for i in 0..OPS_PER_WORKER {
        let op = rng.below(100);
        if op < 35 {
            let payload = seed << 32 | i as u64;
            let n = if op < 30 {
                broker.publish(rng.pick(&CHANNELS), payload)
            } else {
                broker.spublish(rng.pick(&SHARDS), payload)
            };
            report.publishes += 1;
            report.publish_returns += n as u64;
            continue;
        }
        if op >= 93 {
            match op {
                93..=96 if pool.len() < 8 => pool.push(new_subscriber(&broker, &mut rng)),
                97 | 98 => broker.check_invariants(),
                _ => {
                    let _ = broker.numsub(rng.pick(&CHANNELS));
                    let _ = broker.numpat();
                    let _ = broker.channels(Some(b"c*"));
                    let _ = broker.shard_channels(None);
                }
            }
            continue;
        }
        if pool.is_empty() {
            pool.push(new_subscriber(&broker, &mut rng));
        }
        let k = rng.below(pool.len());
        let t = &mut pool[k];
        match op {
            35..=49 => {
                let c = t.sub.subscribe(rng.pick(&CHANNELS));
                assert!(c.count <= CHANNELS.len() + PATTERNS.len());
            }
            50..=57 => {
                t.sub.unsubscribe(rng.pick(&CHANNELS));
            }
            58..=65 => {
                t.sub.psubscribe(rng.pick(&PATTERNS));
            }
            66..=69 => {
                t.sub.punsubscribe(rng.pick(&PATTERNS));
            }
            70..=72 => {
                t.sub.ssubscribe(rng.pick(&SHARDS));
            }
            73 | 74 => {
                t.sub.sunsubscribe(rng.pick(&SHARDS));
            }
            75 => {
                let all = t.sub.unsubscribe_all();
                assert!(!all.is_empty());
            }
            76 => {
                t.sub.punsubscribe_all();
            }
            77 => {
                t.sub.sunsubscribe_all();
            }
            78..=87 => t.drain(),
            88..=90 => {
                // Retire: after the unsubscribes (each takes the registry
                // lock exclusively) no publish can reach it, so once drained
                // its stats are final.
                let mut t = pool.swap_remove(k);
                t.sub.unsubscribe_all();
                t.sub.punsubscribe_all();
                t.sub.sunsubscribe_all();
                let counts = t.sub.counts();
                assert_eq!(counts.subscriptions() + counts.shard_channels, 0);
                t.drain();
                report.retired.push(t.check(false));
            }
            _ => {
                // Drop while subscribed, possibly with messages queued.
                drop(pool.swap_remove(k));
                report.raw_drops += 1;
            }
        }
    }
    report.alive = pool;
    report
}

/// A long-lived subscriber read by its own thread while everything runs.
fn reader(mut subs: Vec<Tracked>, stop: Arc<AtomicBool>) -> Vec<Tracked> {
    loop {
        let stopping = stop.load(Ordering::Acquire);
        // Wait on the streams that have not ended (an ended one is always
        // ready).
        let open: Vec<usize> = (0..subs.len())
            .filter(|&i| subs[i].tally.ended.is_none())
            .collect();
        let mut select = Select::new();
        for &i in &open {
            select.recv(subs[i].sub.receiver());
        }
        if open.is_empty() {
            thread::sleep(Duration::from_millis(1));
        } else if let Ok(ready) = select.ready_timeout(Duration::from_millis(5)) {
            // Receive through the subscriber, not the raw receiver, so that
            // lag notices are seen.
            subs[open[ready]].drain();
        }
        if stopping {
            // Every publisher had finished before `stop` was set.
            for t in &mut subs {
                t.drain();
            }
            return subs;
        }
    }
}

fn reader_subscriber(
    broker: &Broker<u64>,
    capacity: usize,
    policy: Policy,
    channels: &[&str],
    patterns: &[&str],
    shards: &[&str],
) -> Tracked {
    let mut sub = broker.subscriber_with(Options::new().capacity(capacity).policy(policy));
    for c in channels {
        sub.subscribe(c);
    }
    for p in patterns {
        sub.psubscribe(p);
    }
    for s in shards {
        sub.ssubscribe(s);
    }
    Tracked {
        sub,
        tally: Tally::default(),
    }
}

#[test]
fn mixed_operations_reconcile_and_leave_nothing_behind() {
    with_watchdog(Duration::from_secs(60), || {
        let broker: Broker<u64> = Broker::new();
        let block = Policy::Block {
            timeout: Duration::from_millis(2),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let reader_sets = vec![
            vec![
                reader_subscriber(&broker, 4, block, &["c0", "c1"], &["c*"], &["{s}0"]),
                reader_subscriber(&broker, 2, Policy::DropOldest, &[], &["*"], &["{s}1"]),
            ],
            vec![
                reader_subscriber(&broker, 3, Policy::DropNewest, &["c2", "d0"], &[], &[]),
                reader_subscriber(&broker, 64, Policy::Disconnect, &["d1"], &["c[0-3]"], &[]),
                reader_subscriber(&broker, 2, block, &[], &["?1"], &["{t}"]),
            ],
        ];
        let readers: Vec<_> = reader_sets
            .into_iter()
            .map(|subs| {
                let stop = Arc::clone(&stop);
                thread::spawn(move || reader(subs, stop))
            })
            .collect();

        let start = Arc::new(Barrier::new(WORKERS as usize));
        let workers: Vec<_> = (1..=WORKERS)
            .map(|seed| {
                let broker = broker.clone();
                let start = Arc::clone(&start);
                thread::spawn(move || worker(broker, seed, start))
            })
            .collect();
        let reports: Vec<Report> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        stop.store(true, Ordering::Release);
        let mut alive: Vec<Tracked> = readers
            .into_iter()
            .flat_map(|r| r.join().unwrap())
            .collect();
        broker.check_invariants();

        // Every publish returned what it added to delivered + dropped.
        let m = broker.metrics();
        let publishes: u64 = reports.iter().map(|r| r.publishes).sum();
        let returns: u64 = reports.iter().map(|r| r.publish_returns).sum();
        assert_eq!(m.published, publishes);
        assert_eq!(returns, m.delivered + m.dropped, "{m:?}");

        // Every subscriber's stream accounts for its stats.
        let mut stats: Vec<SubscriberStats> = Vec::new();
        let mut raw_drops = 0;
        for mut report in reports {
            stats.append(&mut report.retired);
            alive.append(&mut report.alive);
            raw_drops += report.raw_drops;
        }
        for t in &mut alive {
            t.drain();
            stats.push(t.check(true));
        }
        // What the checked subscribers account for is part of the totals;
        // subscribers dropped while subscribed account for the rest.
        let sum = |f: fn(&SubscriberStats) -> u64| stats.iter().map(f).sum::<u64>();
        assert!(sum(|s| s.delivered) <= m.delivered);
        assert!(sum(|s| s.dropped) <= m.dropped);
        assert!(sum(|s| s.lagged) <= m.lagged);
        assert!(sum(|s| u64::from(s.disconnected)) <= m.disconnected);
        // Every policy was exercised.
        assert!(m.dropped > 0 && m.lagged > 0 && m.disconnected > 0, "{m:?}");
        assert!(raw_drops > 0);
        assert_eq!(m.subscribers, alive.len() as u64);

        drop(alive);
        assert!(broker.is_idle());
        assert!(broker.channels(None).is_empty());
        assert!(broker.shard_channels(None).is_empty());
        assert_eq!(broker.numpat(), 0);
        assert_eq!(broker.metrics().subscribers, 0);
        broker.check_invariants();
    });
}

/// Without subscriber drops mid-run, the per-subscriber stats add up to the
/// broker's counters exactly.
#[test]
fn subscriber_stats_add_up_to_the_metrics() {
    with_watchdog(Duration::from_secs(60), || {
        let broker: Broker<u64> = Broker::new();
        let mut rng = Rng::new(99);
        let mut subs: Vec<Tracked> = (0..24)
            .map(|_| {
                let mut t = new_subscriber(&broker, &mut rng);
                for _ in 0..3 {
                    t.sub.subscribe(rng.pick(&CHANNELS));
                    t.sub.psubscribe(rng.pick(&PATTERNS));
                    t.sub.ssubscribe(rng.pick(&SHARDS));
                }
                t
            })
            .collect();
        let start = Arc::new(Barrier::new(3));
        let publishers: Vec<_> = (0..3u64)
            .map(|p| {
                let broker = broker.clone();
                let start = Arc::clone(&start);
                thread::spawn(move || {
                    let mut rng = Rng::new(p);
                    start.wait();
                    let mut returns = 0;
                    for i in 0..2_000 {
                        returns += if i % 5 == 0 {
                            broker.spublish(rng.pick(&SHARDS), i)
                        } else {
                            broker.publish(rng.pick(&CHANNELS), i)
                        } as u64;
                    }
                    returns
                })
            })
            .collect();
        // Read some of them meanwhile.
        for round in 0..200 {
            for (i, t) in subs.iter_mut().enumerate() {
                if (i + round) % 4 == 0 {
                    t.drain();
                }
            }
            thread::yield_now();
        }
        let returns: u64 = publishers.into_iter().map(|p| p.join().unwrap()).sum();
        let m = broker.metrics();
        assert_eq!(returns, m.delivered + m.dropped);
        let mut total = SubscriberStats::default();
        let mut disconnected = 0;
        for t in &mut subs {
            t.drain();
            let s = t.check(true);
            total.delivered += s.delivered;
            total.dropped += s.dropped;
            total.lagged += s.lagged;
            disconnected += u64::from(s.disconnected);
        }
        assert_eq!(
            (total.delivered, total.dropped, total.lagged),
            (m.delivered, m.dropped, m.lagged)
        );
        // Racing overflows disconnect a subscriber once (see
        // `overflows_racing_on_one_subscriber_count_one_disconnect`).
        assert_eq!(disconnected, m.disconnected);
        drop(subs);
        assert!(broker.is_idle());
        broker.check_invariants();
    });
}

/// Two publishes to different channels overflow the same `Disconnect`
/// subscribers at the same moment: each subscriber is removed once, so
/// `metrics.disconnected` equals the number of subscribers disconnected.
#[test]
fn overflows_racing_on_one_subscriber_count_one_disconnect() {
    with_watchdog(Duration::from_secs(60), || {
        // A preallocated queue, and one above the default capacity, which
        // checks its length.
        let capacities = [1, Options::DEFAULT_CAPACITY + 1];
        for round in 0..20 {
            let capacity = capacities[round % 2];
            let broker: Broker<u32> = Broker::new();
            let mut subs = Vec::new();
            for _ in 0..200 {
                let mut sub = broker
                    .subscriber_with(Options::new().capacity(capacity).policy(Policy::Disconnect));
                sub.subscribe("fill");
                sub.subscribe("alpha");
                sub.subscribe("omega");
                subs.push(sub);
            }
            for _ in 0..capacity {
                assert_eq!(broker.publish("fill", 0), 200);
            } // every queue is full
            let start = Arc::new(Barrier::new(2));
            let publishers: Vec<_> = ["alpha", "omega"]
                .into_iter()
                .map(|ch| {
                    let broker = broker.clone();
                    let start = Arc::clone(&start);
                    thread::spawn(move || {
                        start.wait();
                        broker.publish(ch, 1)
                    })
                })
                .collect();
            // The second may start after the first removed them all.
            let returns: u64 = publishers
                .into_iter()
                .map(|p| p.join().unwrap() as u64)
                .sum();
            assert!((200..=400).contains(&returns));
            let m = broker.metrics();
            let flagged = subs.iter().filter(|s| s.stats().disconnected).count() as u64;
            assert_eq!(flagged, 200);
            assert!(broker.is_idle());
            assert_eq!(
                m.disconnected, flagged,
                "round {round}: {m:?}: one disconnect per subscriber"
            );
            assert_eq!((m.delivered, m.dropped), (200 * capacity as u64, returns));
        }
    });
}

/// Publishers on their own broker clones finish and drop them; subscribers
/// then receive everything that was queued, and the end of the stream.
#[test]
fn concurrent_handles_close_the_broker_once_all_are_dropped() {
    with_watchdog(Duration::from_secs(60), || {
        let broker: Broker<u64> = Broker::new();
        let mut subs: Vec<Subscriber<u64>> = (0..4)
            .map(|i| {
                let mut s = broker.subscriber_with(Options::new().capacity(20_000));
                if i % 2 == 0 {
                    s.subscribe("all");
                } else {
                    s.psubscribe("a*");
                }
                s
            })
            .collect();
        let publishers: Vec<_> = (0..4u64)
            .map(|p| {
                let broker = broker.clone();
                thread::spawn(move || {
                    let mut returns = 0;
                    for i in 0..2_000 {
                        returns += broker.publish("all", p << 32 | i) as u64;
                    }
                    returns // the clone is dropped here
                })
            })
            .collect();
        drop(broker);
        let returns: u64 = publishers.into_iter().map(|p| p.join().unwrap()).sum();
        assert_eq!(returns, 4 * 4 * 2_000);
        for sub in &mut subs {
            let mut received = 0;
            let end = loop {
                match sub.recv_timeout(support::LIVENESS) {
                    Ok(_) => received += 1,
                    Err(e) => break e,
                }
            };
            assert_eq!(received, 4 * 2_000);
            assert_eq!(
                end,
                tidings::RecvTimeoutError::Disconnected(DisconnectReason::BrokerClosed)
            );
        }
    });
}
