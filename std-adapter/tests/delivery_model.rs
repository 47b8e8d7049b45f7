//! The delivery structure against a naive model (issue 16): random
//! sequences of subscribes, unsubscribes, publishes and receives, on
//! subscribers of every policy and small capacities, checked step by step
//! against per-subscriber `VecDeque`s that apply the documented rules. A
//! `DropOldest` subscriber moves between reading a route's shared ring and
//! having a queue of its own as it holds one route or several; the model has
//! no such thing, so every move must be invisible: the same messages, in the
//! same order, the same lag notices, the same ends, the same counts.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use proptest::prelude::*;
use tidings::{Broker, DisconnectReason, Namespace, Options, Policy, Subscriber, TryRecvError};

/// What a subscriber received: a message `(namespace, channel, pattern,
/// value)`, a lag notice, or the end.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Item {
    Message(Namespace, Vec<u8>, Option<Vec<u8>>, u32),
    Lagged(u64),
    End(DisconnectReason),
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    DropOldest,
    DropNewest,
    Disconnect,
    /// `Block` with a zero timeout: a publish that finds it full gives up at
    /// once, so the model is single-threaded.
    BlockNoWait,
}

impl Kind {
    fn policy(self) -> Policy {
        match self {
            Kind::DropOldest => Policy::DropOldest,
            Kind::DropNewest => Policy::DropNewest,
            Kind::Disconnect => Policy::Disconnect,
            Kind::BlockNoWait => Policy::Block {
                timeout: Duration::ZERO,
            },
        }
    }
}

const CHANNELS: [&str; 3] = ["a", "b", "ab"];
const PATTERNS: [&str; 3] = ["a*", "*b", "z*"];

#[derive(Clone, Debug)]
enum Op {
    Subscribe(usize, Namespace, usize),
    Unsubscribe(usize, Namespace, usize),
    UnsubscribeAll(usize, Namespace),
    Publish(usize),
    SPublish(usize),
    Recv(usize),
    /// Drops the subscriber and makes a new one of the same kind.
    Replace(usize),
}

fn name(ns: Namespace, i: usize) -> &'static str {
    match ns {
        Namespace::Pattern => PATTERNS[i % 3],
        _ => CHANNELS[i % 3],
    }
}

fn op(subs: usize) -> impl Strategy<Value = Op> {
    let ns = prop_oneof![
        4 => Just(Namespace::Channel),
        3 => Just(Namespace::Pattern),
        1 => Just(Namespace::Shard),
    ];
    prop_oneof![
        4 => (0..subs, ns.clone(), 0..3usize).prop_map(|(k, n, i)| Op::Subscribe(k, n, i)),
        2 => (0..subs, ns.clone(), 0..3usize).prop_map(|(k, n, i)| Op::Unsubscribe(k, n, i)),
        1 => (0..subs, ns).prop_map(|(k, n)| Op::UnsubscribeAll(k, n)),
        6 => (0..3usize).prop_map(Op::Publish),
        1 => (0..3usize).prop_map(Op::SPublish),
        6 => (0..subs).prop_map(Op::Recv),
        1 => (0..subs).prop_map(Op::Replace),
    ]
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        3 => Just(Kind::DropOldest),
        1 => Just(Kind::DropNewest),
        1 => Just(Kind::Disconnect),
        1 => Just(Kind::BlockNoWait),
    ]
}

/// One subscriber, as the rules say it behaves.
#[derive(Debug)]
struct Model {
    kind: Kind,
    capacity: usize,
    /// (namespace, name) held.
    held: Vec<(Namespace, &'static str)>,
    /// Messages waiting, each with the number lost just before it.
    queue: VecDeque<(u64, Item)>,
    /// Lost with no message after them yet: told before the next one.
    lost: u64,
    /// The message a lag notice announced: taken from the queue with the
    /// notice (so it no longer counts against the capacity), returned next.
    announced: Option<Item>,
    /// Removed by `Disconnect`; its stream ends after the queue.
    disconnected: bool,
    delivered: u64,
    dropped: u64,
    lagged: u64,
}

impl Model {
    fn new(kind: Kind, capacity: usize) -> Self {
        Model {
            kind,
            capacity,
            held: Vec::new(),
            queue: VecDeque::new(),
            lost: 0,
            announced: None,
            disconnected: false,
            delivered: 0,
            dropped: 0,
            lagged: 0,
        }
    }

    fn holds(&self, ns: Namespace, name: &str) -> bool {
        self.held.iter().any(|&(n, x)| n == ns && x == name)
    }

    fn deliver(&mut self, item: Item) {
        if self.disconnected {
            self.dropped += 1;
            return;
        }
        if self.queue.len() >= self.capacity {
            match self.kind {
                Kind::DropNewest | Kind::BlockNoWait => {
                    self.dropped += 1;
                    return;
                }
                Kind::Disconnect => {
                    self.dropped += 1;
                    self.disconnected = true;
                    return;
                }
                Kind::DropOldest => {
                    // The oldest goes; its loss and the losses before it
                    // are told before the message that is now first.
                    let (before, _) = self.queue.pop_front().unwrap();
                    self.lagged += 1;
                    match self.queue.front_mut() {
                        Some((lag, _)) => *lag += before + 1,
                        None => self.lost += before + 1,
                    }
                }
            }
        }
        let lag = std::mem::take(&mut self.lost);
        self.queue.push_back((lag, item));
        self.delivered += 1;
    }

    fn recv(&mut self) -> Option<Item> {
        if let Some(item) = self.announced.take() {
            return Some(item);
        }
        if let Some(&(lag, _)) = self.queue.front() {
            if lag > 0 {
                let (_, item) = self.queue.pop_front().unwrap();
                self.announced = Some(item);
                return Some(Item::Lagged(lag));
            }
        }
        match self.queue.pop_front() {
            Some((_, item)) => Some(item),
            None if self.disconnected => Some(Item::End(DisconnectReason::Overflow {
                capacity: self.capacity,
            })),
            None => None,
        }
    }

    fn waiting(&self) -> u64 {
        self.queue.len() as u64 + u64::from(self.announced.is_some())
    }
}

/// The world: a broker and the model, side by side.
struct World {
    broker: Broker<u32>,
    subs: Vec<Subscriber<u32>>,
    models: Vec<Model>,
    /// Patterns in the order they gained their first subscriber.
    pattern_order: Vec<&'static str>,
    next: u32,
}

impl World {
    fn new(kinds: &[(Kind, usize)]) -> Self {
        let broker = Broker::new();
        let subs = kinds
            .iter()
            .map(|&(k, c)| {
                broker
                    .subscriber_with(Options::new().capacity(c).policy(k.policy()))
                    .unwrap()
            })
            .collect();
        let models = kinds.iter().map(|&(k, c)| Model::new(k, c)).collect();
        World {
            broker,
            subs,
            models,
            pattern_order: Vec::new(),
            next: 0,
        }
    }

    fn pattern_held(&self, p: &str) -> bool {
        self.models.iter().any(|m| m.holds(Namespace::Pattern, p))
    }

    fn subscribe(&mut self, k: usize, ns: Namespace, name: &'static str) {
        let c = self.subs[k].op_subscribe(ns, name);
        let m = &mut self.models[k];
        if m.disconnected {
            return;
        }
        let _ = c;
        if !m.holds(ns, name) {
            if ns == Namespace::Pattern && !self.pattern_held(name) {
                self.pattern_order.push(name);
            }
            self.models[k].held.push((ns, name));
        }
    }

    fn leave(&mut self, k: usize, ns: Namespace, name: &'static str) {
        self.models[k]
            .held
            .retain(|&(n, x)| !(n == ns && x == name));
        if ns == Namespace::Pattern && !self.pattern_held(name) {
            self.pattern_order.retain(|&p| p != name);
        }
    }

    fn unsubscribe(&mut self, k: usize, ns: Namespace, name: &'static str) {
        self.subs[k].op_unsubscribe(ns, name);
        if self.models[k].disconnected {
            return;
        }
        self.leave(k, ns, name);
    }

    fn unsubscribe_all(&mut self, k: usize, ns: Namespace) {
        self.subs[k].unsubscribe_all(ns);
        if self.models[k].disconnected {
            return;
        }
        let names: Vec<&'static str> = self.models[k]
            .held
            .iter()
            .filter(|&&(n, _)| n == ns)
            .map(|&(_, x)| x)
            .collect();
        for name in names {
            self.leave(k, ns, name);
        }
    }

    fn disconnect_overflowed(&mut self) {
        for k in 0..self.models.len() {
            if self.models[k].disconnected && !self.models[k].held.is_empty() {
                let held = std::mem::take(&mut self.models[k].held);
                for (ns, name) in held {
                    self.leave(k, ns, name);
                }
            }
        }
    }

    fn publish(&mut self, ch: &'static str) -> usize {
        let v = self.next;
        self.next += 1;
        let n = self.broker.publish(ch, v);
        let mut expected = 0;
        // Exact subscribers, then each matching pattern in creation order.
        for k in 0..self.models.len() {
            if self.models[k].holds(Namespace::Channel, ch) {
                expected += 1;
                self.models[k].deliver(Item::Message(Namespace::Channel, ch.into(), None, v));
            }
        }
        let order = self.pattern_order.clone();
        for p in order {
            if !tidings::core::glob::Pattern::new(p.as_bytes()).matches(ch.as_bytes()) {
                continue;
            }
            for k in 0..self.models.len() {
                if self.models[k].holds(Namespace::Pattern, p) {
                    expected += 1;
                    self.models[k].deliver(Item::Message(
                        Namespace::Pattern,
                        ch.into(),
                        Some(p.into()),
                        v,
                    ));
                }
            }
        }
        self.disconnect_overflowed();
        assert_eq!(n, expected, "publish {ch:?} counts its deliveries");
        n
    }

    fn spublish(&mut self, ch: &'static str) {
        let v = self.next;
        self.next += 1;
        let n = self.broker.spublish(ch, v);
        let mut expected = 0;
        for k in 0..self.models.len() {
            if self.models[k].holds(Namespace::Shard, ch) {
                expected += 1;
                self.models[k].deliver(Item::Message(Namespace::Shard, ch.into(), None, v));
            }
        }
        self.disconnect_overflowed();
        assert_eq!(n, expected, "spublish {ch:?}");
    }

    fn recv(&mut self, k: usize) {
        let got = match self.subs[k].try_recv() {
            Ok(m) => Some(Item::Message(
                m.namespace(),
                m.channel().to_vec(),
                m.pattern().map(<[u8]>::to_vec),
                *m.payload(),
            )),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Lagged(n)) => Some(Item::Lagged(n)),
            Err(TryRecvError::Disconnected(why)) => Some(Item::End(why)),
            Err(e) => panic!("unexpected {e:?}"),
        };
        let expected = self.models[k].recv();
        assert_eq!(got, expected, "subscriber {k} ({:?})", self.models[k].kind);
    }

    fn replace(&mut self, k: usize) {
        let (kind, capacity) = (self.models[k].kind, self.models[k].capacity);
        let fresh = self
            .broker
            .subscriber_with(Options::new().capacity(capacity).policy(kind.policy()))
            .unwrap();
        drop(std::mem::replace(&mut self.subs[k], fresh));
        let held = std::mem::take(&mut self.models[k].held);
        for (ns, name) in held {
            self.leave(k, ns, name);
        }
        self.models[k] = Model::new(kind, capacity);
    }

    fn check(&self) {
        self.broker.check_invariants();
        for (k, (sub, m)) in self.subs.iter().zip(&self.models).enumerate() {
            let counts = sub.counts();
            let held = |ns| m.held.iter().filter(|&&(n, _)| n == ns).count();
            assert_eq!(
                (counts.channels, counts.patterns, counts.shard_channels),
                (
                    held(Namespace::Channel),
                    held(Namespace::Pattern),
                    held(Namespace::Shard)
                ),
                "subscriber {k} holds what the model holds"
            );
            let stats = sub.stats();
            assert_eq!(
                (
                    stats.delivered,
                    stats.dropped,
                    stats.lagged,
                    stats.disconnected
                ),
                (m.delivered, m.dropped, m.lagged, m.disconnected),
                "subscriber {k} ({:?}) counters",
                m.kind
            );
            assert_eq!(stats.queued, m.waiting(), "subscriber {k} queued");
        }
        let mut patterns: BTreeSet<&str> = BTreeSet::new();
        for m in &self.models {
            patterns.extend(
                m.held
                    .iter()
                    .filter(|&&(n, _)| n == Namespace::Pattern)
                    .map(|&(_, p)| p),
            );
        }
        assert_eq!(self.broker.numpat(), patterns.len());
    }
}

/// The subscription calls by namespace (the Redis-named methods).
trait ByNamespace {
    fn op_subscribe(&mut self, ns: Namespace, name: &str) -> tidings::Confirmation;
    fn op_unsubscribe(&mut self, ns: Namespace, name: &str) -> tidings::Confirmation;
}

impl ByNamespace for Subscriber<u32> {
    fn op_subscribe(&mut self, ns: Namespace, name: &str) -> tidings::Confirmation {
        match ns {
            Namespace::Channel => self.subscribe(name),
            Namespace::Pattern => self.psubscribe(name),
            Namespace::Shard => self.ssubscribe(name),
        }
    }

    fn op_unsubscribe(&mut self, ns: Namespace, name: &str) -> tidings::Confirmation {
        match ns {
            Namespace::Channel => self.unsubscribe(name),
            Namespace::Pattern => self.punsubscribe(name),
            Namespace::Shard => self.sunsubscribe(name),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn delivery_agrees_with_the_model(
        kinds in prop::collection::vec((kind(), 1usize..5), 1..4),
        ops in prop::collection::vec(op(3), 0..120),
    ) {
        let mut w = World::new(&kinds);
        let subs = kinds.len();
        for op in ops {
            match op {
                Op::Subscribe(k, ns, i) => w.subscribe(k % subs, ns, name(ns, i)),
                Op::Unsubscribe(k, ns, i) => w.unsubscribe(k % subs, ns, name(ns, i)),
                Op::UnsubscribeAll(k, ns) => w.unsubscribe_all(k % subs, ns),
                Op::Publish(i) => {
                    w.publish(CHANNELS[i]);
                }
                Op::SPublish(i) => w.spublish(CHANNELS[i]),
                Op::Recv(k) => w.recv(k % subs),
                Op::Replace(k) => w.replace(k % subs),
            }
            w.check();
        }
        // Drain everything: the model and the broker agree to the end.
        for k in 0..subs {
            for _ in 0..64 {
                w.recv(k);
            }
        }
    }
}
