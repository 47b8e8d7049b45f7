//! The broker: shared state (the core registry and the subscribers' queues),
//! publishing, introspection and metrics.
//!
//! Publishing takes the registry lock shared, so publishers run in parallel
//! with one another; subscribing and unsubscribing take it exclusively, for
//! the length of one registry operation. To give every subscriber of a
//! channel the same order of messages from concurrent publishers, a publish
//! that delivers anything also holds one of 64 ordering stripes, picked by the
//! channel name, while it enqueues: two publishes to the same channel never
//! interleave their enqueues. A publish that delivers nothing takes no stripe.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use tidings_core::Registry;

use crate::handler::Handler;
use crate::message::{Message, MessageKind};
use crate::policy::{ConfigError, Envelope, HandlerFn, Offer, Options, Policy, Queue};
use crate::subscriber::Subscriber;

const STRIPES: usize = 64;

/// Where [`Broker::set_upstream`] sends publishes: called with
/// [`MessageKind::Message`] for `publish` and [`MessageKind::SMessage`] for
/// `spublish`, the channel and the payload.
pub type Upstream<T> = Arc<
    dyn Fn(MessageKind, &[u8], &T) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
        + Send
        + Sync,
>;

/// Which local subscribers [`Broker::deliver_to`] reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Target<'a> {
    /// What `PUBLISH` reaches: the exact subscribers, then the subscribers of
    /// every matching pattern.
    Publish,
    /// Only the exact subscribers of the channel (a Redis `message`).
    Exact,
    /// Only the subscribers of this pattern (a Redis `pmessage`), whether or
    /// not the channel matches it: the sender already decided.
    Pattern(&'a [u8]),
    /// Only the shard subscribers of the channel (`SPUBLISH`, a Redis
    /// `smessage`).
    Shard,
}

/// The namespace of an [`InterestChange`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Scope {
    /// An exact channel (`SUBSCRIBE`).
    Channel,
    /// A pattern (`PSUBSCRIBE`).
    Pattern,
    /// A shard channel (`SSUBSCRIBE`).
    ShardChannel,
}

impl Scope {
    pub(crate) fn of(kind: tidings_core::Kind) -> Scope {
        use tidings_core::Kind;
        match kind {
            Kind::PSubscribe | Kind::PUnsubscribe => Scope::Pattern,
            Kind::SSubscribe | Kind::SUnsubscribe => Scope::ShardChannel,
            _ => Scope::Channel,
        }
    }
}

/// A change of a broker's interest, passed to [`Broker::watch_interest`]'s
/// hook: a name gained its first subscriber or lost its last one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct InterestChange<'a> {
    /// Channel, pattern or shard channel.
    pub scope: Scope,
    /// The name.
    pub name: &'a [u8],
    /// `true`: the first subscriber arrived; `false`: the last one left.
    pub active: bool,
}

type Hook = Arc<dyn Fn(&InterestChange<'_>) + Send + Sync>;

/// Keeps an interest hook installed; dropping it removes the hook. See
/// [`Broker::watch_interest`].
pub struct InterestWatch<T> {
    shared: Arc<Shared<T>>,
    id: u64,
}

impl<T> Drop for InterestWatch<T> {
    fn drop(&mut self) {
        let mut state = self.shared.write();
        let hook = state
            .hooks
            .iter()
            .position(|(id, _)| *id == self.id)
            .map(|i| state.hooks.remove(i));
        drop(state);
        // The hook is user code, and so is whatever it owns: it is dropped
        // with no lock held, so that dropping a subscriber or a broker handle
        // it owns cannot deadlock.
        drop(hook);
    }
}

impl<T> std::fmt::Debug for InterestWatch<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterestWatch")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A publish that could not be forwarded to the broker's upstream.
#[non_exhaustive]
pub enum PublishError<T> {
    /// The upstream refused the message; it was not delivered anywhere.
    Upstream {
        /// The payload, handed back.
        payload: T,
        /// Why the upstream refused it.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl<T> PublishError<T> {
    /// The payload that was not published.
    pub fn into_inner(self) -> T {
        match self {
            PublishError::Upstream { payload, .. } => payload,
        }
    }
}

impl<T> std::fmt::Debug for PublishError<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PublishError::Upstream { source, .. } => f
                .debug_struct("Upstream")
                .field("source", source)
                .finish_non_exhaustive(),
        }
    }
}

impl<T> std::fmt::Display for PublishError<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PublishError::Upstream { source, .. } => {
                write!(f, "upstream refused the message: {source}")
            }
        }
    }
}

impl<T> std::error::Error for PublishError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PublishError::Upstream { source, .. } => Some(&**source),
        }
    }
}

/// Broker-wide counters, from [`Broker::metrics`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Metrics {
    /// `publish` and `spublish` calls.
    pub published: u64,
    /// Messages put in subscribers' queues.
    pub delivered: u64,
    /// New messages discarded by a policy (`DropNewest`, a `Block` timeout,
    /// the overflow that disconnects a subscriber, or a subscriber already
    /// disconnected).
    pub dropped: u64,
    /// Queued messages discarded by `DropOldest`.
    pub lagged: u64,
    /// Subscribers removed by `Disconnect`.
    pub disconnected: u64,
    /// Publishes handed to the upstream (see [`Broker::set_upstream`]).
    pub forwarded: u64,
    /// Publishes the upstream refused: not delivered anywhere.
    pub upstream_failed: u64,
    /// Live subscriber handles.
    pub subscribers: u64,
}

#[derive(Default)]
struct Counters {
    published: AtomicU64,
    delivered: AtomicU64,
    dropped: AtomicU64,
    lagged: AtomicU64,
    disconnected: AtomicU64,
    forwarded: AtomicU64,
    upstream_failed: AtomicU64,
}

/// One subscriber's place in the broker.
pub(crate) struct Slot<T> {
    /// Bumped when the slot is reused, so a stale id never reaches the next
    /// occupant.
    generation: u32,
    queue: Option<Arc<Queue<T>>>,
}

/// Everything behind the registry lock.
pub(crate) struct State<T> {
    pub(crate) registry: Registry<u64>,
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    /// Every broker handle is gone: no queue is kept.
    closed: bool,
    /// Interest hooks, by watch id.
    pub(crate) hooks: Vec<(u64, Hook)>,
    next_hook: u64,
}

/// A subscriber id: its slot's generation in the high half, the slot index
/// in the low half.
fn pack(index: u32, generation: u32) -> u64 {
    u64::from(generation) << 32 | u64::from(index)
}

/// The (slot index, generation) of a subscriber id.
fn unpack(id: u64) -> (usize, u32) {
    ((id & 0xffff_ffff) as usize, (id >> 32) as u32)
}

impl<T> State<T> {
    fn queue(&self, id: u64) -> Option<&Arc<Queue<T>>> {
        let (index, generation) = unpack(id);
        let slot = self.slots.get(index)?;
        if slot.generation != generation {
            return None;
        }
        slot.queue.as_ref()
    }

    /// Removes subscriber `id` from the registry and takes its queue out.
    /// Dropping the queue drops its sending side, which ends the stream once
    /// drained, and a handler's function, which is user code: the caller
    /// drops it once the state lock is released (see [`Removed`]).
    pub(crate) fn remove(&mut self, id: u64) -> Removed<T> {
        let hooks = &self.hooks;
        self.registry
            .remove_subscriber_with(id, |kind, name| announce(hooks, kind, name));
        let (index, generation) = unpack(id);
        let Some(slot) = self.slots.get_mut(index) else {
            return Removed { _queue: None };
        };
        if slot.generation != generation {
            return Removed { _queue: None };
        }
        let queue = slot.queue.take();
        if queue.is_some() {
            slot.generation = slot.generation.wrapping_add(1);
            self.free.push(index as u32);
        }
        Removed { _queue: queue }
    }
}

/// A queue taken out of the broker, to drop once the state lock is
/// released: a [`Handler`]'s function may own subscribers or broker handles,
/// whose drop takes that lock.
#[must_use = "drop it after releasing the state lock"]
pub(crate) struct Removed<T> {
    _queue: Option<Arc<Queue<T>>>,
}

/// Tells every hook that `kind` (a subscribe kind: gained; an unsubscribe
/// kind: lost) changed the interest in `name`.
pub(crate) fn announce(hooks: &[(u64, Hook)], kind: tidings_core::Kind, name: &[u8]) {
    let change = InterestChange {
        scope: Scope::of(kind),
        name,
        active: kind.is_subscribe(),
    };
    for (_, hook) in hooks {
        hook(&change);
    }
}

pub(crate) struct Shared<T> {
    state: RwLock<State<T>>,
    stripes: [Mutex<()>; STRIPES],
    /// Live `Broker` handles; at zero every queue is closed.
    handles: AtomicUsize,
    /// Live `Subscriber` handles.
    subscribers: AtomicUsize,
    defaults: Options,
    counters: Counters,
    /// Subscribers that overflowed under `Disconnect`, to remove once the
    /// publish that found them releases the shared lock.
    doomed: Mutex<Vec<u64>>,
    upstream: RwLock<Option<Upstream<T>>>,
    has_upstream: std::sync::atomic::AtomicBool,
}

impl<T> Shared<T> {
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, State<T>> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, State<T>> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn stripe(&self, namespace: u8, channel: &[u8]) -> MutexGuard<'_, ()> {
        // Any hash works: a collision only makes two channels share a stripe.
        let mut h = (channel.len() as u64) ^ u64::from(namespace) << 56;
        for &b in channel.iter().take(16).chain(channel.iter().rev().take(16)) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        let index = ((h ^ (h >> 32)) as usize) % STRIPES;
        self.stripes[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn subscriber_dropped(&self) {
        self.subscribers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A handle to a broker: publish, create subscribers, inspect.
///
/// Cloning is cheap and every clone is the same broker. When the last
/// `Broker` handle is dropped, every subscriber receives what is already
/// queued and then [`DisconnectReason::BrokerClosed`](crate::DisconnectReason::BrokerClosed).
///
/// `T` is the payload type. It is cloned once per route of a publish (the
/// exact channel, each matching pattern), never per subscriber: see
/// [`Message`](crate::Message).
pub struct Broker<T> {
    shared: Arc<Shared<T>>,
}

/// Builds a [`Broker`] with default queue settings for its subscribers.
///
/// ```
/// use tidings::{Broker, Policy};
///
/// let broker: Broker<String> = Broker::builder().capacity(64).policy(Policy::DropOldest).build();
/// assert_eq!(broker.subscriber().capacity(), 64);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct BrokerBuilder {
    defaults: Options,
}

impl BrokerBuilder {
    /// The default queue capacity of new subscribers (at least 1).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.defaults = self.defaults.capacity(capacity);
        self
    }

    /// The default overflow policy of new subscribers.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.defaults = self.defaults.policy(policy);
        self
    }

    /// How long new subscribers' blocking receives spin before they sleep:
    /// see [`Options::spin`].
    pub fn spin(mut self, spin: Duration) -> Self {
        self.defaults = self.defaults.spin(spin);
        self
    }

    /// Builds the broker, or says why the settings cannot be used.
    pub fn try_build<T>(self) -> Result<Broker<T>, ConfigError> {
        Ok(Broker::with_defaults(self.defaults.validate()?))
    }

    /// Builds the broker.
    ///
    /// # Panics
    ///
    /// Panics if the capacity is 0; [`try_build`](Self::try_build) returns
    /// the error instead.
    pub fn build<T>(self) -> Broker<T> {
        match self.try_build() {
            Ok(broker) => broker,
            Err(e) => panic!("invalid broker settings: {e}"),
        }
    }
}

impl Broker<()> {
    /// A builder for the subscribers' default queue settings; the payload
    /// type is chosen by [`BrokerBuilder::build`].
    pub fn builder() -> BrokerBuilder {
        BrokerBuilder::default()
    }
}

impl<T> Default for Broker<T> {
    fn default() -> Self {
        Broker::new()
    }
}

impl<T> Broker<T> {
    /// A broker whose subscribers default to [`Options::new`]: a queue of
    /// 1024 messages and [`Policy::Disconnect`].
    pub fn new() -> Broker<T> {
        Broker::with_defaults(Options::new())
    }

    fn with_defaults(defaults: Options) -> Broker<T> {
        let state = State {
            registry: Registry::new(),
            slots: Vec::new(),
            free: Vec::new(),
            closed: false,
            hooks: Vec::new(),
            next_hook: 0,
        };
        Broker {
            shared: Arc::new(Shared {
                state: RwLock::new(state),
                stripes: std::array::from_fn(|_| Mutex::new(())),
                handles: AtomicUsize::new(1),
                subscribers: AtomicUsize::new(0),
                defaults,
                counters: Counters::default(),
                doomed: Mutex::new(Vec::new()),
                upstream: RwLock::new(None),
                has_upstream: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// A new subscriber with the broker's default queue settings. It holds
    /// nothing until it subscribes.
    pub fn subscriber(&self) -> Subscriber<T> {
        self.new_subscriber(self.shared.defaults)
    }

    /// A new subscriber with its own queue settings, or the reason they
    /// cannot be used.
    pub fn try_subscriber_with(&self, options: Options) -> Result<Subscriber<T>, ConfigError> {
        Ok(self.new_subscriber(options.validate()?))
    }

    /// A new subscriber with its own queue settings.
    ///
    /// # Panics
    ///
    /// Panics if the capacity is 0; [`try_subscriber_with`](Self::try_subscriber_with)
    /// returns the error instead.
    pub fn subscriber_with(&self, options: Options) -> Subscriber<T> {
        match self.try_subscriber_with(options) {
            Ok(sub) => sub,
            Err(e) => panic!("invalid subscriber settings: {e}"),
        }
    }

    fn new_subscriber(&self, options: Options) -> Subscriber<T> {
        self.new_member(options, None)
    }

    /// A registry member: a subscriber with its queue, or, with `handler`, a
    /// subscriber whose deliveries call it instead.
    fn new_member(&self, options: Options, handler: Option<HandlerFn<T>>) -> Subscriber<T> {
        let (queue, rx) = Queue::new(options, handler);
        let stats = Arc::clone(&queue.stats);
        let mut state = self.shared.write();
        let id = if state.closed {
            // No queue is kept: the stream ends at once with BrokerClosed.
            u64::MAX
        } else {
            let queue = Some(Arc::new(queue));
            match state.free.pop() {
                Some(index) => {
                    let slot = &mut state.slots[index as usize];
                    slot.queue = queue;
                    pack(index, slot.generation)
                }
                None => {
                    state.slots.push(Slot {
                        generation: 0,
                        queue,
                    });
                    pack((state.slots.len() - 1) as u32, 0)
                }
            }
        };
        drop(state);
        self.shared.subscribers.fetch_add(1, Ordering::Relaxed);
        Subscriber::new(Arc::clone(&self.shared), id, rx, stats, options)
    }

    /// A subscriber without a queue: every message delivered to it is
    /// handed to `handler` on the thread that delivers it, the publishing
    /// thread (for a bridged broker, the bridge's reader). There is no
    /// thread handoff, so nothing waits for a receiver to wake up: this is
    /// the lowest-latency way to consume, for work that is short and does
    /// not block.
    ///
    /// It holds nothing until it subscribes, and dropping the [`Handler`]
    /// unsubscribes it. What differs from a [`Subscriber`]:
    ///
    /// - **When it runs.** After the publish has delivered to every queue
    ///   and released the broker's locks, so the handler may publish,
    ///   subscribe, or drop handles without deadlocking. `publish` returns
    ///   after the handlers it called return; a handler that blocks holds up
    ///   its publisher.
    /// - **Order.** The messages of one publish arrive in delivery order (the
    ///   exact channel, then each matching pattern), and one thread's
    ///   publishes in that thread's order. Publishes from several threads
    ///   may run the handler at the same time, in any order: it is `Fn +
    ///   Send + Sync`. (With a bridge, one reader thread delivers, in Redis's
    ///   order.)
    /// - **No queue, no overflow.** Policies and capacity do not apply;
    ///   every delivery counts in [`Metrics::delivered`].
    /// - **Panics** unwind into the publisher, after the broker's state and
    ///   counters are updated; the handlers after it in that publish are
    ///   not called.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use tidings::{Broker, Message};
    ///
    /// let broker = Broker::new();
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = Arc::clone(&seen);
    /// let mut handler = broker.handler(move |m: Message<&str>| {
    ///     log.lock().unwrap().push((m.channel().to_vec(), *m.payload()));
    /// });
    /// handler.subscribe("orders");
    /// handler.psubscribe("ord*");
    /// assert_eq!(broker.publish("orders", "paid"), 2); // both ran before this returned
    /// assert_eq!(seen.lock().unwrap().len(), 2);
    /// drop(handler);
    /// assert_eq!(broker.publish("orders", "shipped"), 0);
    /// ```
    pub fn handler<F>(&self, handler: F) -> Handler<T>
    where
        F: Fn(Message<T>) + Send + Sync + 'static,
    {
        let options = Options::new().capacity(1);
        Handler::new(self.new_member(options, Some(Arc::new(handler))))
    }

    /// `PUBLISH channel payload`: delivers `payload` to every exact subscriber
    /// of `channel`, then to the subscribers of every matching pattern, and
    /// returns the number of deliveries (Redis's reply): those queued plus
    /// those the subscribers' policies dropped.
    ///
    /// ```
    /// use tidings::Broker;
    ///
    /// let broker = Broker::new();
    /// let mut sub = broker.subscriber();
    /// sub.subscribe("news");
    /// sub.psubscribe("n*");
    /// assert_eq!(broker.publish("news", "hello"), 2);
    /// assert_eq!(broker.publish("nothing here", "x"), 1); // the pattern only
    /// assert_eq!(broker.publish("other", "x"), 0);
    /// ```
    pub fn publish(&self, channel: impl AsRef<[u8]>, payload: T) -> usize
    where
        T: Clone,
    {
        self.route(MessageKind::Message, channel.as_ref(), payload)
            .unwrap_or(0)
    }

    /// `SPUBLISH shardchannel payload`: delivers only to the shard
    /// subscribers of exactly `shardchannel` and returns their number.
    /// Shard channels are a separate namespace from channels and patterns.
    ///
    /// ```
    /// use tidings::Broker;
    ///
    /// let broker = Broker::new();
    /// let mut sub = broker.subscriber();
    /// sub.ssubscribe("orders:{42}");
    /// sub.subscribe("orders:{42}");
    /// assert_eq!(broker.spublish("orders:{42}", 1), 1);
    /// assert_eq!(sub.recv().unwrap().kind(), tidings::MessageKind::SMessage);
    /// ```
    pub fn spublish(&self, channel: impl AsRef<[u8]>, payload: T) -> usize
    where
        T: Clone,
    {
        self.route(MessageKind::SMessage, channel.as_ref(), payload)
            .unwrap_or(0)
    }

    /// Like [`publish`](Self::publish), but reports a failure to forward the
    /// message upstream (see [`set_upstream`](Self::set_upstream)) as an
    /// error that hands the payload back. Without an upstream it never fails.
    pub fn try_publish(
        &self,
        channel: impl AsRef<[u8]>,
        payload: T,
    ) -> Result<usize, PublishError<T>>
    where
        T: Clone,
    {
        self.route(MessageKind::Message, channel.as_ref(), payload)
    }

    /// Like [`spublish`](Self::spublish), reporting an upstream failure.
    pub fn try_spublish(
        &self,
        channel: impl AsRef<[u8]>,
        payload: T,
    ) -> Result<usize, PublishError<T>>
    where
        T: Clone,
    {
        self.route(MessageKind::SMessage, channel.as_ref(), payload)
    }

    fn route(&self, kind: MessageKind, channel: &[u8], payload: T) -> Result<usize, PublishError<T>>
    where
        T: Clone,
    {
        let target = if kind == MessageKind::SMessage {
            Target::Shard
        } else {
            Target::Publish
        };
        if self.shared.has_upstream.load(Ordering::Acquire) {
            let upstream = self
                .shared
                .upstream
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            if let Some(upstream) = upstream {
                return self.forward(&upstream, kind, target, channel, payload);
            }
        }
        self.shared
            .counters
            .published
            .fetch_add(1, Ordering::Relaxed);
        Ok(self.deliver_to(target, channel, payload))
    }

    /// Hands a publish to the upstream instead of delivering it here.
    fn forward(
        &self,
        upstream: &Upstream<T>,
        kind: MessageKind,
        target: Target<'_>,
        channel: &[u8],
        payload: T,
    ) -> Result<usize, PublishError<T>> {
        let counters = &self.shared.counters;
        counters.published.fetch_add(1, Ordering::Relaxed);
        let local = {
            let state = self.shared.read();
            match target {
                Target::Shard => state.registry.shard_subscribers(channel).len(),
                _ => state.registry.publish(channel, |_, _| {}),
            }
        };
        match upstream(kind, channel, &payload) {
            Ok(()) => {
                counters.forwarded.fetch_add(1, Ordering::Relaxed);
                Ok(local)
            }
            Err(source) => {
                counters.upstream_failed.fetch_add(1, Ordering::Relaxed);
                Err(PublishError::Upstream { payload, source })
            }
        }
    }

    /// Delivers `payload` to the local subscribers that `target` selects,
    /// bypassing any upstream, and returns the number of deliveries (queued
    /// plus dropped by policy). The deliveries are counted in [`Metrics`];
    /// the call is not counted in [`Metrics::published`], which counts
    /// `publish` and `spublish` calls only. [`Target::Publish`] is what `publish` does
    /// without an upstream.
    ///
    /// This is the other half of an integration that carries messages
    /// between processes: when it receives a Redis `message`, it delivers
    /// to [`Target::Exact`]; a `pmessage`, to [`Target::Pattern`] of the
    /// pattern named in it; an `smessage`, to [`Target::Shard`]. A subscriber
    /// holding both the channel and a matching pattern then receives both,
    /// exactly once each.
    ///
    /// ```
    /// use tidings::{Broker, Target};
    ///
    /// let broker = Broker::new();
    /// let mut sub = broker.subscriber();
    /// sub.subscribe("news");
    /// sub.psubscribe("n*");
    /// assert_eq!(broker.deliver_to(Target::Exact, "news", 1), 1);
    /// assert_eq!(broker.deliver_to(Target::Pattern(b"n*"), "news", 2), 1);
    /// assert_eq!(sub.recv().unwrap().pattern(), None);
    /// assert_eq!(sub.recv().unwrap().pattern(), Some(&b"n*"[..]));
    /// ```
    pub fn deliver_to(&self, target: Target<'_>, channel: impl AsRef<[u8]>, payload: T) -> usize
    where
        T: Clone,
    {
        let channel = channel.as_ref();
        let shared = &*self.shared;
        let mut name: Option<Arc<[u8]>> = None;
        // The message of the route being delivered (the exact channel, or one
        // pattern), built at its first delivery and shared by the rest: the
        // registry reports each route's subscribers together. The route is
        // told apart by its pattern's address (0 for none).
        let mut route: Option<(usize, Message<T>)> = None;
        let mut stripe = None;
        let mut waits: Vec<(Arc<Queue<T>>, Envelope<T>)> = Vec::new();
        // Handlers to call once every lock is released.
        let mut calls: Vec<(HandlerFn<T>, Message<T>)> = Vec::new();
        let (mut delivered, mut dropped, mut lagged, mut doomed) = (0u64, 0u64, 0u64, false);
        let state = shared.read();
        let namespace = u8::from(target == Target::Shard);
        // `stored`: the registry's copy of the channel name, if it has one;
        // otherwise the name is allocated once, at the first delivery.
        let mut deliver = |id: u64,
                           pattern: Option<&tidings_core::Pattern>,
                           kind: MessageKind,
                           stored: Option<&Arc<[u8]>>| {
            if stripe.is_none() {
                stripe = Some(shared.stripe(namespace, channel));
            }
            let Some(queue) = state.queue(id) else {
                dropped += 1;
                return;
            };
            let key = pattern.map_or(0, |p| core::ptr::from_ref(p) as usize);
            let message = match &route {
                Some((k, message)) if *k == key => message.clone(),
                _ => {
                    let channel = Arc::clone(name.get_or_insert_with(|| {
                        stored.cloned().unwrap_or_else(|| Arc::from(channel))
                    }));
                    let pattern = pattern.map(|p| Arc::clone(p.shared_bytes()));
                    let message = Message::new(kind, channel, pattern, payload.clone());
                    route.insert((key, message)).1.clone()
                }
            };
            if let Some(handler) = &queue.handler {
                calls.push((Arc::clone(handler), message));
                delivered += 1;
                return;
            }
            // A subscriber already waited on in this publish (it holds the
            // channel and a pattern) waits again, so its two stay in order.
            if !waits.is_empty() && waits.iter().any(|(q, _)| Arc::ptr_eq(q, queue)) {
                waits.push((Arc::clone(queue), Envelope { seq: 0, message }));
                return;
            }
            match queue.offer(message) {
                Offer::Delivered => delivered += 1,
                Offer::DeliveredLagged => {
                    delivered += 1;
                    lagged += 1;
                }
                Offer::Dropped => dropped += 1,
                Offer::Wait(envelope) => waits.push((Arc::clone(queue), envelope)),
                Offer::Overflowed => {
                    dropped += 1;
                    doomed = true;
                    shared
                        .doomed
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(id);
                }
            }
        };
        let registry = &state.registry;
        let n = match target {
            Target::Publish => registry.publish_with_name(channel, |id, pattern, stored| {
                let kind = if pattern.is_some() {
                    MessageKind::PMessage
                } else {
                    MessageKind::Message
                };
                deliver(id, pattern, kind, stored)
            }),
            Target::Shard => {
                registry.spublish(channel, |id| deliver(id, None, MessageKind::SMessage, None))
            }
            Target::Exact => {
                let subs = registry.exact_subscribers(channel);
                subs.iter()
                    .for_each(|&id| deliver(id, None, MessageKind::Message, None));
                subs.len()
            }
            Target::Pattern(p) => match registry.pattern_subscribers(p) {
                Some((pattern, subs)) => {
                    subs.iter()
                        .for_each(|&id| deliver(id, Some(pattern), MessageKind::PMessage, None));
                    subs.len()
                }
                None => 0,
            },
        };
        drop(state);
        for (queue, envelope) in waits {
            if queue.wait(envelope) {
                delivered += 1;
            } else {
                dropped += 1;
            }
        }
        drop(stripe);
        let c = &shared.counters;
        if n > 0 {
            c.delivered.fetch_add(delivered, Ordering::Relaxed);
            if dropped > 0 {
                c.dropped.fetch_add(dropped, Ordering::Relaxed);
            }
            if lagged > 0 {
                c.lagged.fetch_add(lagged, Ordering::Relaxed);
            }
        }
        if doomed {
            self.reap();
        }
        for (handler, message) in calls {
            handler(message);
        }
        n
    }

    /// Sends every later `publish` and `spublish` to `upstream` instead of
    /// delivering it here, or, with `None`, restores local delivery.
    ///
    /// This is how a process joins a wider bus (the Redis bridge does it):
    /// the upstream carries the message to wherever it is ordered, and the
    /// integration brings it back with [`deliver_to`](Self::deliver_to), so
    /// every node sees one order. While an upstream is set, `publish`
    /// returns the number of local deliveries the routing knows of at the
    /// time of the call (those the message will reach when it comes back),
    /// and a message the upstream refuses is counted in
    /// [`Metrics::upstream_failed`] and reported by
    /// [`try_publish`](Self::try_publish).
    pub fn set_upstream(&self, upstream: Option<Upstream<T>>) {
        let mut slot = self
            .shared
            .upstream
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        self.shared
            .has_upstream
            .store(upstream.is_some(), Ordering::Release);
        *slot = upstream;
    }

    /// Calls `hook` whenever this broker's interest changes: when a channel,
    /// pattern or shard channel gains its first subscriber
    /// ([`InterestChange::active`] is `true`) or loses its last one
    /// (`false`), however that happens (an unsubscribe, an "unsubscribe
    /// all", a dropped subscriber, a `Disconnect` policy). Before returning,
    /// it calls `hook` once for every name already held, so the watcher
    /// starts from the full picture with no gap.
    ///
    /// The hook runs while the registry lock is held, in the order the
    /// changes happen: keep it short, and do not call back into the broker
    /// from it (send the change on a channel instead). It stays installed
    /// until the returned [`InterestWatch`] is dropped.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use tidings::{Broker, Scope};
    ///
    /// let broker: Broker<()> = Broker::new();
    /// let (tx, rx) = mpsc::channel();
    /// let tx = std::sync::Mutex::new(tx);
    /// let _watch = broker.watch_interest(move |change| {
    ///     let _ = tx.lock().unwrap().send((change.scope, change.name.to_vec(), change.active));
    /// });
    /// let mut a = broker.subscriber();
    /// let mut b = broker.subscriber();
    /// a.subscribe("news");
    /// b.subscribe("news"); // not the first: no change
    /// drop(a);             // not the last: no change
    /// drop(b);
    /// let changes: Vec<_> = rx.try_iter().collect();
    /// assert_eq!(changes, [(Scope::Channel, b"news".to_vec(), true), (Scope::Channel, b"news".to_vec(), false)]);
    /// ```
    pub fn watch_interest(
        &self,
        hook: impl Fn(&InterestChange<'_>) + Send + Sync + 'static,
    ) -> InterestWatch<T> {
        let mut state = self.shared.write();
        state.registry.for_each_name(|kind, name| {
            hook(&InterestChange {
                scope: Scope::of(kind),
                name,
                active: true,
            });
        });
        let id = state.next_hook;
        state.next_hook += 1;
        state.hooks.push((id, Arc::new(hook)));
        InterestWatch {
            shared: Arc::clone(&self.shared),
            id,
        }
    }

    /// Removes the subscribers that overflowed under `Disconnect`.
    fn reap(&self) {
        let doomed = std::mem::take(
            &mut *self
                .shared
                .doomed
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        if doomed.is_empty() {
            return;
        }
        let mut state = self.shared.write();
        let mut removed = Vec::with_capacity(doomed.len());
        for id in doomed {
            removed.push(state.remove(id));
            self.shared
                .counters
                .disconnected
                .fetch_add(1, Ordering::Relaxed);
        }
        drop(state);
        drop(removed);
    }

    /// `PUBSUB CHANNELS [pattern]`: the channels with at least one exact
    /// subscriber, optionally filtered by a glob pattern, sorted.
    pub fn channels(&self, pattern: Option<&[u8]>) -> Vec<Vec<u8>> {
        sorted(self.shared.read().registry.channels(pattern))
    }

    /// `PUBSUB NUMSUB channel`: its number of exact subscribers.
    pub fn numsub(&self, channel: impl AsRef<[u8]>) -> usize {
        self.shared.read().registry.numsub(channel.as_ref())
    }

    /// `PUBSUB NUMPAT`: the number of distinct patterns held.
    pub fn numpat(&self) -> usize {
        self.shared.read().registry.numpat()
    }

    /// `PUBSUB SHARDCHANNELS [pattern]`, sorted.
    pub fn shard_channels(&self, pattern: Option<&[u8]>) -> Vec<Vec<u8>> {
        sorted(self.shared.read().registry.shard_channels(pattern))
    }

    /// `PUBSUB SHARDNUMSUB shardchannel`.
    pub fn shard_numsub(&self, channel: impl AsRef<[u8]>) -> usize {
        self.shared.read().registry.shard_numsub(channel.as_ref())
    }

    /// Broker-wide counters. Every publish's return value equals what it
    /// added to `delivered` plus what it added to `dropped`.
    pub fn metrics(&self) -> Metrics {
        let c = &self.shared.counters;
        Metrics {
            published: c.published.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            lagged: c.lagged.load(Ordering::Relaxed),
            disconnected: c.disconnected.load(Ordering::Relaxed),
            forwarded: c.forwarded.load(Ordering::Relaxed),
            upstream_failed: c.upstream_failed.load(Ordering::Relaxed),
            subscribers: self.shared.subscribers.load(Ordering::Relaxed) as u64,
        }
    }

    /// Whether no subscriber holds any subscription (the registry is empty).
    pub fn is_idle(&self) -> bool {
        self.shared.read().registry.is_empty()
    }

    /// Checks the registry's invariants.
    ///
    /// # Panics
    ///
    /// Panics if one does not hold; meant for tests.
    #[doc(hidden)]
    pub fn check_invariants(&self) {
        self.shared.read().registry.check_invariants();
    }
}

/// Owned copies of `names`, in byte order.
fn sorted<'a>(names: impl Iterator<Item = &'a Arc<[u8]>>) -> Vec<Vec<u8>> {
    let mut names: Vec<Vec<u8>> = names.map(|n| n.to_vec()).collect();
    names.sort_unstable();
    names
}

impl<T> Clone for Broker<T> {
    fn clone(&self) -> Self {
        self.shared.handles.fetch_add(1, Ordering::Relaxed);
        Broker {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<T> Drop for Broker<T> {
    fn drop(&mut self) {
        if self.shared.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Last handle: close every queue. Subscribers drain what is
            // queued, then see BrokerClosed.
            let mut state = self.shared.write();
            state.closed = true;
            state.registry = Registry::new();
            let slots = std::mem::take(&mut state.slots);
            state.free.clear();
            drop(state);
            // Handlers' functions are user code: dropped with no lock held.
            drop(slots);
        }
    }
}

impl<T> std::fmt::Debug for Broker<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("metrics", &self.metrics())
            .finish_non_exhaustive()
    }
}
