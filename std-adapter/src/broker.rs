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

use tidings_core::Registry;

use crate::message::{Message, MessageKind};
use crate::policy::{ConfigError, Offer, Options, Policy, Queue};
use crate::subscriber::Subscriber;

const STRIPES: usize = 64;

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
}

impl<T> State<T> {
    fn queue(&self, id: u64) -> Option<&Arc<Queue<T>>> {
        let slot = self.slots.get((id & 0xffff_ffff) as usize)?;
        if u64::from(slot.generation) != id >> 32 {
            return None;
        }
        slot.queue.as_ref()
    }

    /// Removes subscriber `id` from the registry and drops its queue's
    /// sending side, which ends its stream once drained.
    pub(crate) fn remove(&mut self, id: u64) {
        self.registry.remove_subscriber(id);
        let index = (id & 0xffff_ffff) as usize;
        if let Some(slot) = self.slots.get_mut(index) {
            if u64::from(slot.generation) == id >> 32 && slot.queue.take().is_some() {
                slot.generation = slot.generation.wrapping_add(1);
                self.free.push(index as u32);
            }
        }
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
/// `T` is the payload type; it is cloned once per delivery.
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
        let (queue, rx) = Queue::new(options);
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
                    u64::from(slot.generation) << 32 | u64::from(index)
                }
                None => {
                    state.slots.push(Slot {
                        generation: 0,
                        queue,
                    });
                    (state.slots.len() - 1) as u64
                }
            }
        };
        drop(state);
        self.shared.subscribers.fetch_add(1, Ordering::Relaxed);
        Subscriber::new(Arc::clone(&self.shared), id, rx, stats, options)
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
    }

    fn route(&self, kind: MessageKind, channel: &[u8], payload: T) -> usize
    where
        T: Clone,
    {
        let shared = &*self.shared;
        let mut name: Option<Arc<[u8]>> = None;
        let mut stripe = None;
        let mut waits: Vec<(Arc<Queue<T>>, crate::policy::Envelope<T>)> = Vec::new();
        let (mut delivered, mut dropped, mut lagged, mut doomed) = (0u64, 0u64, 0u64, false);
        let state = shared.read();
        let namespace = u8::from(kind == MessageKind::SMessage);
        let mut deliver = |id: u64, pattern: Option<&tidings_core::Pattern>, kind: MessageKind| {
            if stripe.is_none() {
                stripe = Some(shared.stripe(namespace, channel));
            }
            let Some(queue) = state.queue(id) else {
                dropped += 1;
                return;
            };
            let message = Message {
                kind,
                channel: Arc::clone(name.get_or_insert_with(|| Arc::from(channel))),
                pattern: pattern.map(|p| Arc::clone(p.shared_bytes())),
                payload: payload.clone(),
            };
            // A subscriber already waited on in this publish (it holds the
            // channel and a pattern) waits again, so its two stay in order.
            if !waits.is_empty() && waits.iter().any(|(q, _)| Arc::ptr_eq(q, queue)) {
                waits.push((
                    Arc::clone(queue),
                    crate::policy::Envelope { seq: 0, message },
                ));
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
        let n = match kind {
            MessageKind::SMessage => state
                .registry
                .spublish(channel, |id| deliver(id, None, kind)),
            _ => state.registry.publish(channel, |id, pattern| {
                let kind = if pattern.is_some() {
                    MessageKind::PMessage
                } else {
                    MessageKind::Message
                };
                deliver(id, pattern, kind)
            }),
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
        c.published.fetch_add(1, Ordering::Relaxed);
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
        n
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
        for id in doomed {
            state.remove(id);
            self.shared
                .counters
                .disconnected
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `PUBSUB CHANNELS [pattern]`: the channels with at least one exact
    /// subscriber, optionally filtered by a glob pattern, sorted.
    pub fn channels(&self, pattern: Option<&[u8]>) -> Vec<Vec<u8>> {
        let state = self.shared.read();
        let mut names: Vec<Vec<u8>> = state
            .registry
            .channels(pattern)
            .map(|n| n.to_vec())
            .collect();
        names.sort_unstable();
        names
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
        let state = self.shared.read();
        let mut names: Vec<Vec<u8>> = state
            .registry
            .shard_channels(pattern)
            .map(|n| n.to_vec())
            .collect();
        names.sort_unstable();
        names
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
            state.slots.clear();
            state.free.clear();
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
