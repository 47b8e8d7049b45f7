//! Thread stress: threads mixing subscribe, unsubscribe, psubscribe,
//! ssubscribe, publish, spublish, reading, and subscriber, handler and
//! interest-hook creations and drops, under every overflow policy with small
//! queues so that every policy acts: `Block`, `Disconnect`, `DropNewest`,
//! and `DropOldest` both as a reader of one route's shared ring (one
//! channel, pattern or shard channel) and with a queue of its own (several).
//! Handlers and hooks call back into the broker from inside.
//!
//! Afterwards every counter reconciles, every subscriber's stream accounts
//! for its stats, every hook's picture of the interest matches the
//! registry, and the registry is consistent and empty once all subscribers
//! are dropped. No operation may take longer than [`STALL`], and a watchdog
//! turns a hang into a failure.
#![allow(clippy::unwrap_used)]

#[allow(dead_code, unreachable_pub)]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use support::{Rng, with_watchdog};
use tidings::crossbeam_channel::{Receiver, Select};
use tidings::{
    Broker, DisconnectReason, Handler, InterestChange, InterestWatch, Message, Namespace, Options,
    Policy, RecvError, Subscriber, SubscriberStats,
};

const WORKERS: u64 = 4;
const OPS_PER_WORKER: usize = 10_000;
const CHANNELS: [&str; 6] = ["c0", "c1", "c2", "c3", "d0", "d1"];
const PATTERNS: [&str; 6] = ["c*", "c[0-3]", "?1", "d*", "*0", "x*"];
const SHARDS: [&str; 3] = ["{s}0", "{s}1", "{t}"];

/// The longest any one operation (a publish, a subscribe, a drop, a read)
/// may take. Block timeouts here are at most a few milliseconds, so this
/// only bounds a stall, it is no speed assertion.
const STALL: Duration = Duration::from_secs(5);

/// Runs `op` and fails if it took longer than [`STALL`].
fn bounded<R>(what: &str, op: impl FnOnce() -> R) -> R {
    let start = Instant::now();
    let r = op();
    let took = start.elapsed();
    assert!(took < STALL, "{what} stalled for {took:?}");
    r
}

/// The policies the pools draw from.
const ALL: [Kind; 5] = [
    Kind::DropNewest,
    Kind::DropOldest,
    Kind::Ring,
    Kind::Disconnect,
    Kind::Block,
];

/// A subscriber's kind: its policy, and for `Ring` that it holds one route
/// at a time (so it reads that route's shared ring).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    DropNewest,
    DropOldest,
    Ring,
    Disconnect,
    Block,
}

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
    kind: Kind,
    tally: Tally,
}

impl Tracked {
    /// Receives everything queued now.
    fn drain(&mut self) {
        let items: Vec<_> = bounded("a drain", || self.sub.try_iter().collect());
        for item in items {
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
    /// `settled`: every publish has finished, so a `Disconnect` is complete
    /// and no `Block` publisher still waits for this subscriber.
    fn check(&self, settled: bool) -> SubscriberStats {
        let s = self.sub.stats();
        let t = &self.tally;
        let ctx = || format!("{:?} {:?} {s:?} {t:?}", self.kind, self.sub.policy());
        assert_eq!(
            s.delivered,
            t.received + t.lag_reported,
            "delivered = received + reported lost: {}",
            ctx()
        );
        assert_eq!(
            s.lagged,
            t.lag_reported,
            "every discard reported: {}",
            ctx()
        );
        assert_eq!(s.queued, 0, "drained: {}", ctx());
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

    /// Unsubscribes from everything.
    fn leave_all(&mut self) {
        for ns in Namespace::ALL {
            bounded("an unsubscribe all", || self.sub.unsubscribe_all(ns));
        }
        let counts = self.sub.counts();
        assert_eq!(counts.subscriptions() + counts.shard_channels, 0);
    }
}

/// Counts of the calls that handlers and hooks make from inside.
#[derive(Default)]
struct Inside {
    handler_calls: AtomicU64,
    hook_calls: AtomicU64,
    /// Publishes made by handlers and hooks, and what they returned.
    publishes: AtomicU64,
    returns: AtomicU64,
}

impl Inside {
    fn publish(&self, broker: &Broker<u64>, channel: &str) {
        let n = broker.publish(channel, u64::MAX);
        self.publishes.fetch_add(1, Ordering::Relaxed);
        self.returns.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// A subscriber made, subscribed and dropped from inside user code: two
    /// interest changes.
    fn churn(&self, broker: &Broker<u64>, name: &str) {
        let mut sub = broker.subscriber();
        sub.subscribe(name);
        drop(sub);
    }
}

/// A handler that counts its calls, and now and then publishes, subscribes
/// and drops a subscriber from inside.
fn new_handler(broker: &Broker<u64>, inside: &Arc<Inside>) -> Handler<u64> {
    let (inner, inside) = (broker.clone(), Arc::clone(inside));
    broker.handler(move |m: Message<u64>| {
        let calls = inside.handler_calls.fetch_add(1, Ordering::Relaxed);
        // Never in reply to its own traffic, which would not end.
        if m.channel().starts_with(b"x-") {
            return;
        }
        if calls % 64 == 0 {
            inside.publish(&inner, "x-handler");
        }
        if calls % 128 == 1 {
            inside.churn(&inner, "h-handler");
        }
    })
}

/// The changes one hook has seen.
type Changes = Arc<Mutex<Vec<(Namespace, Vec<u8>, bool)>>>;

/// A hook that records the changes, checks that its calls never overlap,
/// and calls back into the broker: it reads it, and now and then publishes
/// and makes and drops a subscriber (whose changes reach it later).
fn watch(broker: &Broker<u64>, inside: &Arc<Inside>) -> (Changes, InterestWatch<u64>) {
    let changes: Changes = Arc::default();
    let busy = Arc::new(AtomicBool::new(false));
    let (sink, inner, inside) = (Arc::clone(&changes), broker.clone(), Arc::clone(inside));
    let watch = broker.watch_interest(move |c: &InterestChange<'_>| {
        assert!(!busy.swap(true, Ordering::SeqCst), "hook calls overlap");
        sink.lock()
            .unwrap()
            .push((c.namespace, c.name.to_vec(), c.active));
        let _ = inner.numsub(c.namespace, c.name);
        let calls = inside.hook_calls.fetch_add(1, Ordering::Relaxed);
        if !c.name.starts_with(b"h-") {
            if calls % 16 == 0 {
                inside.publish(&inner, "x-hook");
            }
            if calls % 32 == 1 {
                inside.churn(&inner, "h-hook");
            }
        }
        busy.store(false, Ordering::SeqCst);
    });
    (changes, watch)
}

/// The names a hook's changes leave active, after checking that each
/// name's changes alternate, starting with `true`: none lost, repeated or
/// out of order.
fn replay(changes: &[(Namespace, Vec<u8>, bool)]) -> BTreeSet<(Namespace, Vec<u8>)> {
    let mut state: BTreeMap<(Namespace, Vec<u8>), bool> = BTreeMap::new();
    for (i, (ns, name, active)) in changes.iter().enumerate() {
        let was = state.insert((*ns, name.clone()), *active);
        assert_ne!(
            was.unwrap_or(false),
            *active,
            "change {i}: {ns:?} {:?} active={active} repeats the previous one",
            String::from_utf8_lossy(name)
        );
    }
    state
        .into_iter()
        .filter(|(_, active)| *active)
        .map(|(k, _)| k)
        .collect()
}

/// What the registry holds.
fn held(broker: &Broker<u64>) -> BTreeSet<(Namespace, Vec<u8>)> {
    Namespace::ALL
        .iter()
        .flat_map(|&ns| broker.channels(ns, None).into_iter().map(move |n| (ns, n)))
        .collect()
}

/// Waits until a hook's changes describe `expected`, or fails after
/// [`STALL`]: a change may reach a hook just after the call that made it
/// returned, never much later.
fn settle(changes: &Changes, expected: &BTreeSet<(Namespace, Vec<u8>)>, what: &str) {
    let deadline = Instant::now() + STALL;
    loop {
        let now = replay(&changes.lock().unwrap());
        if now == *expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the hook's picture never matched\n hook: {now:?}\n held: {expected:?}"
        );
        thread::sleep(Duration::from_millis(1));
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
    /// Ring readers moved from one route to another.
    moves: u64,
    handler_drops: u64,
    alive: Vec<Tracked>,
    /// `Block` subscribers unsubscribed from everything but kept: a
    /// publisher may still wait on a message it queued for them, so they
    /// are checked once every publisher has finished.
    parked: Vec<Tracked>,
}

fn block_policy(rng: &mut Rng) -> Policy {
    let micros = *rng.pick(&[0, 100, 1_000]);
    Policy::Block {
        timeout: Duration::from_micros(micros),
    }
}

fn new_subscriber(broker: &Broker<u64>, rng: &mut Rng, kinds: &[Kind]) -> Tracked {
    let kind = *rng.pick(kinds);
    let policy = match kind {
        Kind::DropNewest => Policy::DropNewest,
        Kind::DropOldest | Kind::Ring => Policy::DropOldest,
        Kind::Disconnect => Policy::Disconnect,
        Kind::Block => block_policy(rng),
    };
    // Mostly tiny queues, which overflow often; one in four is above the
    // default capacity.
    let capacity = 1
        + rng.below(8)
        + if rng.below(4) == 0 {
            Options::DEFAULT_CAPACITY
        } else {
            0
        };
    let sub = broker
        .subscriber_with(Options::new().capacity(capacity).policy(policy))
        .unwrap();
    let mut t = Tracked {
        sub,
        kind,
        tally: Tally::default(),
    };
    if kind == Kind::Ring {
        move_ring(&mut t, rng);
    }
    t
}

/// Moves a ring reader to one random route: a channel, a pattern or a
/// shard channel.
fn move_ring(t: &mut Tracked, rng: &mut Rng) {
    t.leave_all();
    bounded("a subscribe", || match rng.below(3) {
        0 => t.sub.subscribe(rng.pick(&CHANNELS)),
        1 => t.sub.psubscribe(rng.pick(&PATTERNS)),
        _ => t.sub.ssubscribe(rng.pick(&SHARDS)),
    });
    let counts = t.sub.counts();
    assert!(counts.subscriptions() + counts.shard_channels <= 1);
}

fn worker(broker: Broker<u64>, seed: u64, start: Arc<Barrier>, inside: Arc<Inside>) -> Report {
    let mut rng = Rng::new(seed);
    let mut report = Report::default();
    let mut pool: Vec<Tracked> = (0..5)
        .map(|_| new_subscriber(&broker, &mut rng, &ALL))
        .collect();
    let mut handler = Some(new_handler(&broker, &inside));
    start.wait();
    for i in 0..OPS_PER_WORKER {
        let op = rng.below(100);
        if op < 35 {
            let payload = seed << 32 | i as u64;
            let n = if op < 30 {
                let ch = rng.pick(&CHANNELS);
                bounded("a publish", || broker.publish(ch, payload))
            } else {
                let ch = rng.pick(&SHARDS);
                bounded("an spublish", || broker.spublish(ch, payload))
            };
            report.publishes += 1;
            report.publish_returns += n as u64;
            continue;
        }
        if op >= 93 {
            match op {
                93..=96 if pool.len() < 10 => pool.push(new_subscriber(&broker, &mut rng, &ALL)),
                97 => bounded("a check", || broker.check_invariants()),
                98 => {
                    // The handler: (re)subscribe it, or drop and replace it.
                    let h = handler.get_or_insert_with(|| new_handler(&broker, &inside));
                    match rng.below(6) {
                        0 => {
                            h.subscribe(rng.pick(&CHANNELS));
                        }
                        1 => {
                            h.psubscribe(rng.pick(&PATTERNS));
                        }
                        2 => {
                            h.ssubscribe(rng.pick(&SHARDS));
                        }
                        3 => {
                            h.unsubscribe(rng.pick(&CHANNELS));
                        }
                        4 => {
                            h.unsubscribe_all(Namespace::Pattern);
                        }
                        _ => {
                            bounded("a handler drop", || drop(handler.take()));
                            report.handler_drops += 1;
                        }
                    }
                }
                _ => {
                    let _ = broker.numsub(Namespace::Channel, rng.pick(&CHANNELS));
                    let _ = broker.numpat();
                    let _ = broker.channels(Namespace::Channel, Some(b"c*"));
                    let _ = broker.channels(Namespace::Shard, None);
                }
            }
            continue;
        }
        if pool.is_empty() {
            pool.push(new_subscriber(&broker, &mut rng, &ALL));
        }
        let k = rng.below(pool.len());
        let t = &mut pool[k];
        if t.kind == Kind::Ring && op < 78 {
            // A ring reader only ever holds one route: it moves instead.
            move_ring(t, &mut rng);
            report.moves += 1;
            continue;
        }
        match op {
            35..=49 => {
                let c = bounded("a subscribe", || t.sub.subscribe(rng.pick(&CHANNELS)));
                assert!(c.count <= CHANNELS.len() + PATTERNS.len());
            }
            50..=57 => {
                bounded("an unsubscribe", || t.sub.unsubscribe(rng.pick(&CHANNELS)));
            }
            58..=65 => {
                bounded("a psubscribe", || t.sub.psubscribe(rng.pick(&PATTERNS)));
            }
            66..=69 => {
                bounded("a punsubscribe", || t.sub.punsubscribe(rng.pick(&PATTERNS)));
            }
            70..=72 => {
                bounded("an ssubscribe", || t.sub.ssubscribe(rng.pick(&SHARDS)));
            }
            73 | 74 => {
                bounded("an sunsubscribe", || t.sub.sunsubscribe(rng.pick(&SHARDS)));
            }
            75..=77 => {
                let ns = *rng.pick(&Namespace::ALL);
                let all = bounded("an unsubscribe all", || t.sub.unsubscribe_all(ns));
                assert!(!all.is_empty());
            }
            78..=87 => t.drain(),
            88..=90 => {
                // Retire: after the unsubscribes (each takes the registry
                // lock exclusively) no publish can reach it, so once drained
                // its stats are final, except for a Block publisher that
                // still waits on a message it queued.
                let mut t = pool.swap_remove(k);
                t.leave_all();
                t.drain();
                if t.kind == Kind::Block {
                    report.parked.push(t);
                } else {
                    report.retired.push(t.check(false));
                }
            }
            _ => {
                // Drop while subscribed, possibly with messages queued and
                // Block publishers waiting on it.
                let t = pool.swap_remove(k);
                bounded("a subscriber drop", || drop(t));
                report.raw_drops += 1;
            }
        }
    }
    drop(handler);
    report.alive = pool;
    report
}

/// Long-lived subscribers read by their own thread while everything runs:
/// it drains each with `try_recv` until empty, then sleeps on their
/// `ready` bells.
fn reader(mut subs: Vec<Tracked>, stop: Arc<AtomicBool>) -> Vec<Tracked> {
    let bells: Vec<Receiver<()>> = subs.iter_mut().map(|t| t.sub.ready().clone()).collect();
    loop {
        let stopping = stop.load(Ordering::Acquire);
        for t in &mut subs {
            t.drain();
        }
        if stopping {
            // Every publisher had finished before `stop` was set, and the
            // drain above came after.
            return subs;
        }
        // Wait on the streams that have not ended (an ended one never
        // rings again).
        let open: Vec<usize> = (0..subs.len())
            .filter(|&i| subs[i].tally.ended.is_none())
            .collect();
        if open.is_empty() {
            thread::sleep(Duration::from_millis(1));
            continue;
        }
        let mut select = Select::new();
        for &i in &open {
            select.recv(&bells[i]);
        }
        if let Ok(op) = select.select_timeout(Duration::from_millis(5)) {
            let i = open[op.index()];
            let _ = op.recv(&bells[i]);
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
    let mut sub = broker
        .subscriber_with(Options::new().capacity(capacity).policy(policy))
        .unwrap();
    for c in channels {
        sub.subscribe(c);
    }
    for p in patterns {
        sub.psubscribe(p);
    }
    for s in shards {
        sub.ssubscribe(s);
    }
    let routes = channels.len() + patterns.len() + shards.len();
    let kind = match policy {
        Policy::DropOldest if routes == 1 => Kind::Ring,
        Policy::DropOldest => Kind::DropOldest,
        Policy::DropNewest => Kind::DropNewest,
        Policy::Disconnect => Kind::Disconnect,
        _ => Kind::Block,
    };
    Tracked {
        sub,
        kind,
        tally: Tally::default(),
    }
}

#[test]
fn mixed_operations_reconcile_and_leave_nothing_behind() {
    with_watchdog(Duration::from_secs(120), || {
        let broker: Broker<u64> = Broker::new();
        let inside = Arc::new(Inside::default());
        let (early, early_watch) = watch(&broker, &inside);
        let block = Policy::Block {
            timeout: Duration::from_millis(2),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let reader_sets = vec![
            vec![
                reader_subscriber(&broker, 4, block, &["c0", "c1"], &["c*"], &["{s}0"]),
                reader_subscriber(&broker, 2, Policy::DropOldest, &[], &["*"], &["{s}1"]),
                // Ring readers: one channel, one pattern, one shard channel.
                reader_subscriber(&broker, 2, Policy::DropOldest, &["c0"], &[], &[]),
                reader_subscriber(&broker, 3, Policy::DropOldest, &[], &["c*"], &[]),
            ],
            vec![
                reader_subscriber(&broker, 3, Policy::DropNewest, &["c2", "d0"], &[], &[]),
                reader_subscriber(&broker, 64, Policy::Disconnect, &["d1"], &["c[0-3]"], &[]),
                reader_subscriber(&broker, 2, block, &[], &["?1"], &["{t}"]),
                reader_subscriber(&broker, 1, Policy::DropOldest, &[], &[], &["{s}0"]),
            ],
        ];
        let readers: Vec<_> = reader_sets
            .into_iter()
            .map(|subs| {
                let stop = Arc::clone(&stop);
                thread::spawn(move || reader(subs, stop))
            })
            .collect();

        let start = Arc::new(Barrier::new(WORKERS as usize + 1));
        let workers: Vec<_> = (1..=WORKERS)
            .map(|seed| {
                let broker = broker.clone();
                let start = Arc::clone(&start);
                let inside = Arc::clone(&inside);
                thread::spawn(move || worker(broker, seed, start, inside))
            })
            .collect();
        start.wait();
        // A second hook, installed mid-run: it starts from the picture at
        // that instant, with no gap.
        thread::sleep(Duration::from_millis(20));
        let (late, late_watch) = watch(&broker, &inside);
        let reports: Vec<Report> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        stop.store(true, Ordering::Release);
        let mut alive: Vec<Tracked> = readers
            .into_iter()
            .flat_map(|r| r.join().unwrap())
            .collect();
        broker.check_invariants();
        let now = held(&broker);
        settle(&early, &now, "the hook installed first");
        settle(&late, &now, "the hook installed mid-run");

        // Every publish returned what it added to delivered + dropped.
        let m = broker.metrics();
        let publishes: u64 = reports.iter().map(|r| r.publishes).sum();
        let returns: u64 = reports.iter().map(|r| r.publish_returns).sum();
        let inside_publishes = inside.publishes.load(Ordering::Relaxed);
        let inside_returns = inside.returns.load(Ordering::Relaxed);
        assert_eq!(m.published, publishes + inside_publishes);
        assert_eq!(returns + inside_returns, m.delivered + m.dropped, "{m:?}");

        // Every subscriber's stream accounts for its stats.
        let mut stats: Vec<SubscriberStats> = Vec::new();
        let (mut raw_drops, mut moves, mut handler_drops) = (0, 0, 0);
        for mut report in reports {
            stats.append(&mut report.retired);
            alive.append(&mut report.alive);
            alive.append(&mut report.parked);
            raw_drops += report.raw_drops;
            moves += report.moves;
            handler_drops += report.handler_drops;
        }
        for t in &mut alive {
            t.drain();
            stats.push(t.check(true));
        }
        // What the checked subscribers account for is part of the totals;
        // subscribers dropped while subscribed, and handlers, account for
        // the rest.
        let sum = |f: fn(&SubscriberStats) -> u64| stats.iter().map(f).sum::<u64>();
        let handler_calls = inside.handler_calls.load(Ordering::Relaxed);
        assert!(sum(|s| s.delivered) + handler_calls <= m.delivered);
        assert!(sum(|s| s.dropped) <= m.dropped);
        assert!(sum(|s| s.lagged) <= m.lagged);
        assert!(sum(|s| u64::from(s.disconnected)) <= m.disconnected);
        // Every policy, handlers and hooks were exercised.
        assert!(m.dropped > 0 && m.lagged > 0 && m.disconnected > 0, "{m:?}");
        assert!(raw_drops > 0 && moves > 0 && handler_drops > 0);
        assert!(handler_calls > 0 && inside_publishes > 0);
        assert!(inside.hook_calls.load(Ordering::Relaxed) > 0);
        for kind in ALL {
            assert!(
                alive
                    .iter()
                    .any(|t| t.kind == kind && t.sub.stats().delivered > 0),
                "no {kind:?} subscriber received anything"
            );
        }
        assert_eq!(m.subscribers, alive.len() as u64);

        bounded("dropping every subscriber", || drop(alive));
        assert!(broker.is_idle());
        for ns in Namespace::ALL {
            assert!(broker.channels(ns, None).is_empty());
        }
        assert_eq!(broker.numpat(), 0);
        assert_eq!(broker.metrics().subscribers, 0);
        broker.check_invariants();
        let nothing = BTreeSet::new();
        settle(&early, &nothing, "the hook installed first, at the end");
        settle(&late, &nothing, "the hook installed mid-run, at the end");
        drop((early_watch, late_watch));
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
                // Several routes each (own queues).
                let kinds = [
                    Kind::DropNewest,
                    Kind::DropOldest,
                    Kind::Disconnect,
                    Kind::Block,
                ];
                let mut t = new_subscriber(&broker, &mut rng, &kinds);
                for _ in 0..3 {
                    t.sub.subscribe(rng.pick(&CHANNELS));
                    t.sub.psubscribe(rng.pick(&PATTERNS));
                    t.sub.ssubscribe(rng.pick(&SHARDS));
                }
                t
            })
            .collect();
        // Ring readers, several per route.
        for _ in 0..12 {
            subs.push(new_subscriber(&broker, &mut rng, &[Kind::Ring]));
        }
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
                        returns += bounded("a publish", || {
                            if i % 5 == 0 {
                                broker.spublish(rng.pick(&SHARDS), i)
                            } else {
                                broker.publish(rng.pick(&CHANNELS), i)
                            }
                        }) as u64;
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
        // A small queue, and one above the default capacity.
        let capacities = [1, Options::DEFAULT_CAPACITY + 1];
        for round in 0..20 {
            let capacity = capacities[round % 2];
            let broker: Broker<u32> = Broker::new();
            let mut subs = Vec::new();
            for _ in 0..200 {
                let mut sub = broker
                    .subscriber_with(Options::new().capacity(capacity).policy(Policy::Disconnect))
                    .unwrap();
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
/// (with queues of their own, and ring readers) then receive everything
/// that was queued, and the end of the stream.
#[test]
fn concurrent_handles_close_the_broker_once_all_are_dropped() {
    with_watchdog(Duration::from_secs(60), || {
        let broker: Broker<u64> = Broker::new();
        let mut subs: Vec<Subscriber<u64>> = (0..6)
            .map(|i| {
                let policy = if i < 4 {
                    Policy::Disconnect
                } else {
                    Policy::DropOldest
                };
                let mut s = broker
                    .subscriber_with(Options::new().capacity(20_000).policy(policy))
                    .unwrap();
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
        assert_eq!(returns, 6 * 4 * 2_000);
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
