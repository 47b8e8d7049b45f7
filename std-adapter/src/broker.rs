//! The broker: the registry behind a lock, publishing, introspection,
//! metrics and interest hooks.
//!
//! See DESIGN.md at the repository root for the publish path, the locks and
//! their order. In short: a publish finds its routes under the registry's
//! shared lock; with one route it writes there and then, and with several it
//! takes them out of the lock, clones the payload once per extra route with
//! no lock held, and writes each route's message holding the channel's
//! ordering stripe. Everything that runs user code (payload drops, wakers,
//! handlers, interest hooks) and every Block wait happens after every lock
//! is released.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use smallvec::SmallVec;
use tidings_core::registry::{Change, PatternId};
use tidings_core::{Namespace, Registry};

use crate::handler::Handler;
use crate::message::Message;
use crate::policy::{ConfigError, Options, Policy};
use crate::queue::{HandlerFn, Member, lock, poisoned_panic};
use crate::route::{Cached, Outcome, Route};
use crate::subscriber::Subscriber;
use crate::telemetry::{BrokerTelemetry, NameGauges};

/// Ordering stripes: a publish with several routes holds its channel's
/// stripe while it writes them, so that two such publishes to one channel
/// never interleave their writes.
const STRIPES: usize = 64;

pub(crate) type Routes<T> = Registry<u64, Arc<Route<T>>>;

/// A delivery written under the broker's locks, with what is left to do
/// after every lock (the broker's and the caller's) is released: see
/// [`BrokerState::deliver_deferred`].
#[cfg(feature = "redis")]
#[must_use = "finish it after releasing your locks"]
pub(crate) struct Deferred<T> {
    n: usize,
    out: Outcome<T>,
    /// Held only to be dropped last, with no lock held (user code).
    _message: Option<Message<T>>,
    _payload: Option<T>,
}

#[cfg(feature = "redis")]
impl<T> Deferred<T> {
    /// Runs what was left (wake-ups, handlers, drops) and returns the number
    /// of deliveries.
    pub(crate) fn finish(mut self, state: &BrokerState<T>) -> usize {
        state.finish(&mut self.out);
        self.n
    }
}

/// A change of a broker's interest, passed to [`Broker::watch_interest`]'s
/// hook: a name gained its first subscriber or lost its last one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct InterestChange<'a> {
    /// Channel, pattern or shard channel.
    pub namespace: Namespace,
    /// The name.
    pub name: &'a [u8],
    /// `true`: the first subscriber arrived; `false`: the last one left.
    pub active: bool,
}

type Hook = Arc<dyn Fn(&InterestChange<'_>) + Send + Sync>;

/// Keeps an interest hook installed; dropping it removes the hook. See
/// [`Broker::watch_interest`].
pub struct InterestWatch<T> {
    broker: Arc<BrokerState<T>>,
    id: u64,
}

impl<T> Drop for InterestWatch<T> {
    fn drop(&mut self) {
        let hook = {
            let mut st = lock(&self.broker.interest.state);
            let hook = st
                .hooks
                .iter()
                .position(|(id, _)| *id == self.id)
                .map(|i| st.hooks.remove(i));
            self.broker
                .interest
                .any
                .store(!st.hooks.is_empty(), Ordering::Release);
            hook
        };
        // The hook is user code, and so is whatever it owns: dropped with no
        // lock held.
        drop(hook);
    }
}

impl<T> fmt::Debug for InterestWatch<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InterestWatch")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Interest changes waiting for the hooks, in the order the registry made
/// them, and the hooks.
pub(crate) struct Interest {
    state: Mutex<InterestState>,
    /// Whether any hook is installed (changes are recorded only then).
    any: AtomicBool,
    /// Feature `metrics`: the gauges of names held, moved by every change.
    names: NameGauges,
}

struct InterestState {
    hooks: Vec<(u64, Hook)>,
    next_hook: u64,
    pending: VecDeque<Pending>,
    /// A thread is calling hooks: others leave their changes to it.
    dispatching: bool,
}

struct Pending {
    namespace: Namespace,
    name: Arc<[u8]>,
    active: bool,
    /// `Some(id)`: only for hook `id` (its initial picture); `None`: for
    /// every hook installed before `before`.
    only: Option<u64>,
    before: u64,
}

impl Interest {
    fn new(names: NameGauges) -> Interest {
        Interest {
            state: Mutex::new(InterestState {
                hooks: Vec::new(),
                next_hook: 0,
                pending: VecDeque::new(),
                dispatching: false,
            }),
            any: AtomicBool::new(false),
            names,
        }
    }

    /// Records a change; called under the registry's write lock, so changes
    /// are recorded in the registry's order.
    pub(crate) fn record(&self, namespace: Namespace, name: &Arc<[u8]>, active: bool) {
        self.names.record(namespace, active);
        if !self.any.load(Ordering::Acquire) {
            return;
        }
        let mut st = lock(&self.state);
        let before = st.next_hook;
        st.pending.push_back(Pending {
            namespace,
            name: Arc::clone(name),
            active,
            only: None,
            before,
        });
    }

    /// Calls the hooks with every recorded change, in order, unless another
    /// thread is doing so (it will call them with these too). Called with
    /// no broker lock held.
    pub(crate) fn dispatch(&self) {
        self.names.flush();
        if !self.any.load(Ordering::Acquire) && lock(&self.state).pending.is_empty() {
            return;
        }
        {
            let mut st = lock(&self.state);
            if st.dispatching || st.pending.is_empty() {
                return;
            }
            st.dispatching = true;
        }
        // If a hook panics, the flag is cleared on the way out; changes not
        // yet handed out stay recorded for the next dispatch. On the normal
        // way out it is cleared in the same critical section that finds
        // nothing left, so that a change recorded after that is dispatched
        // by whoever recorded it.
        struct Unwinding<'a>(Option<&'a Mutex<InterestState>>);
        impl Drop for Unwinding<'_> {
            fn drop(&mut self) {
                if let Some(state) = self.0 {
                    match state.lock() {
                        Ok(mut st) => st.dispatching = false,
                        Err(poisoned) => poisoned.into_inner().dispatching = false,
                    }
                }
            }
        }
        let mut unwinding = Unwinding(Some(&self.state));
        loop {
            let (p, hooks) = {
                let mut st = lock(&self.state);
                let Some(p) = st.pending.pop_front() else {
                    st.dispatching = false;
                    unwinding.0 = None;
                    return;
                };
                let hooks: SmallVec<[Hook; 2]> = st
                    .hooks
                    .iter()
                    .filter(|(id, _)| match p.only {
                        Some(only) => *id == only,
                        None => *id < p.before,
                    })
                    .map(|(_, h)| Arc::clone(h))
                    .collect();
                (p, hooks)
            };
            let change = InterestChange {
                namespace: p.namespace,
                name: &p.name,
                active: p.active,
            };
            for hook in &hooks {
                hook(&change);
            }
        }
    }
}

/// Broker-wide counters, from [`Broker::metrics`]. With the `metrics`
/// feature they are also reported through the `metrics` facade (see "Crate
/// features" in the crate docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Metrics {
    /// `publish` and `spublish` calls.
    pub published: u64,
    /// Messages delivered: queued for a subscriber, written to a ring it
    /// reads, or handed to a handler.
    pub delivered: u64,
    /// New messages discarded by a policy (`DropNewest`, a `Block` timeout,
    /// the overflow that disconnects a subscriber, or a subscriber already
    /// disconnected).
    pub dropped: u64,
    /// Delivered messages discarded by `DropOldest` before the subscriber
    /// took them.
    pub lagged: u64,
    /// Subscribers removed by `Disconnect`.
    pub disconnected: u64,
    /// Live subscriber and handler handles.
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

/// Everything a broker shares with its handles, subscribers and handlers.
pub(crate) struct BrokerState<T> {
    registry: RwLock<Routes<T>>,
    stripes: [Mutex<()>; STRIPES],
    /// The next member id; ids are never reused.
    next_id: AtomicU64,
    /// Live `Broker` handles; at zero the broker closes.
    handles: AtomicUsize,
    /// Live `Subscriber` and `Handler` handles.
    subscribers: AtomicUsize,
    /// Every `Broker` handle was dropped.
    closed: AtomicBool,
    defaults: Options,
    counters: Counters,
    pub(crate) interest: Interest,
    /// Feature `metrics`: the handles this broker reports through.
    pub(crate) telemetry: BrokerTelemetry,
}

impl<T> BrokerState<T> {
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Routes<T>> {
        match self.registry.read() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned_panic(&poisoned),
        }
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Routes<T>> {
        match self.registry.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned_panic(&poisoned),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn stripe(&self, namespace: Namespace, channel: &[u8]) -> MutexGuard<'_, ()> {
        // Any hash works: a collision only makes two channels share a stripe.
        let mut h = (channel.len() as u64) ^ (namespace as u64) << 56;
        for &b in channel.iter().take(16).chain(channel.iter().rev().take(16)) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        let index = ((h ^ (h >> 32)) as usize) % STRIPES;
        lock(&self.stripes[index])
    }

    pub(crate) fn subscriber_dropped(&self) {
        self.subscribers.fetch_sub(1, Ordering::Relaxed);
        self.telemetry.subscribers(-1);
    }

    /// A new member id and its record.
    fn new_member(&self, options: Options, handler: Option<HandlerFn<T>>) -> Arc<Member<T>> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.subscribers.fetch_add(1, Ordering::Relaxed);
        self.telemetry.subscribers(1);
        Arc::new(Member::new(id, options, handler))
    }

    /// Delivers `payload` as `namespace` traffic: for `Channel`, to the
    /// exact channel's route and every matching pattern's (a `PUBLISH`);
    /// for `Shard`, to the shard channel's route. Returns the deliveries.
    pub(crate) fn publish(&self, namespace: Namespace, channel: &[u8], payload: T) -> usize
    where
        T: Clone,
    {
        self.counters.published.fetch_add(1, Ordering::Relaxed);
        self.telemetry.published();
        self.deliver_with(namespace, channel, payload, |registry, routes| {
            if namespace == Namespace::Shard {
                if let Some(r) = registry.route(Namespace::Shard, channel) {
                    routes.push(r.value());
                }
            } else {
                find_routes(registry, channel, routes);
            }
        })
    }

    /// Writes `payload` to the one route of `name` in `namespace`, as
    /// published to `channel` (for a pattern route, the channel it matched;
    /// otherwise `name` itself): what an integration does with a Redis
    /// `message`, `pmessage` or `smessage` it received. Not counted in
    /// `published`. Returns what is left to do (handlers, wake-ups, drops:
    /// user code), for the caller to finish once it has released its own
    /// locks too.
    #[cfg(feature = "redis")]
    pub(crate) fn deliver_deferred(
        &self,
        namespace: Namespace,
        name: &[u8],
        channel: &[u8],
        payload: T,
    ) -> Deferred<T> {
        let registry = self.read();
        let Some(route) = registry.route(namespace, name) else {
            drop(registry);
            return Deferred {
                n: 0,
                out: Outcome::default(),
                _message: None,
                _payload: Some(payload),
            };
        };
        let route = route.value();
        let mut out = Outcome::default();
        // One route: the payload moves into its message, no user code runs.
        let message = message_for(namespace, route, channel, None, payload);
        let n = route.deliver(&message, &mut out);
        drop(registry);
        Deferred {
            n,
            out,
            _message: Some(message),
            _payload: None,
        }
    }

    /// Finds the routes with `collect` under the registry's shared lock,
    /// then delivers to them.
    fn deliver_with(
        &self,
        namespace: Namespace,
        channel: &[u8],
        payload: T,
        collect: impl for<'r> FnOnce(&'r Routes<T>, &mut SmallVec<[&'r Arc<Route<T>>; 4]>),
    ) -> usize
    where
        T: Clone,
    {
        let registry = self.read();
        let mut routes: SmallVec<[&Arc<Route<T>>; 4]> = SmallVec::new();
        collect(&registry, &mut routes);
        if routes.is_empty() {
            drop(routes);
            drop(registry);
            drop(payload);
            return 0;
        }
        let mut out = Outcome::default();
        let n = match *routes.as_slice() {
            [route] => {
                // One route: the payload moves into its message, with no
                // user code to run, so it is written under the registry's
                // shared lock (which keeps the route's membership as the
                // registry says it is).
                let message = message_for(namespace, route, channel, None, payload);
                let n = route.deliver(&message, &mut out);
                drop(routes);
                drop(registry);
                self.finish(&mut out);
                // Dropped with no lock held: the last handle runs the
                // payload's `Drop`.
                drop(message);
                n
            }
            _ => {
                let owned: SmallVec<[Arc<Route<T>>; 4]> =
                    routes.iter().map(|r| Arc::clone(r)).collect();
                drop(routes);
                drop(registry);
                let routes = owned;
                // The payload's `Clone` is user code: it runs here, with no
                // lock held, once per route but the last.
                let mut channel_name: Option<Arc<[u8]>> = None;
                let mut messages: SmallVec<[Message<T>; 4]> = SmallVec::new();
                let last = routes.len() - 1;
                let mut payload = Some(payload);
                for (i, route) in routes.iter().enumerate() {
                    let p = if i == last {
                        payload.take()
                    } else {
                        payload.clone()
                    };
                    let Some(p) = p else { break };
                    messages.push(message_for(
                        namespace,
                        route,
                        channel,
                        Some(&mut channel_name),
                        p,
                    ));
                }
                let stripe = self.stripe(namespace, channel);
                let mut n = 0;
                for (route, message) in routes.iter().zip(messages.iter()) {
                    n += route.deliver(message, &mut out);
                }
                drop(stripe);
                drop(routes);
                self.finish(&mut out);
                drop(messages);
                n
            }
        };
        // Dropping the rest (discarded messages, references a ring gave up)
        // may run payloads' `Drop`.
        drop(out);
        n
    }

    /// Everything a publish does after releasing its locks.
    #[inline]
    fn finish(&self, out: &mut Outcome<T>) {
        let c = &self.counters;
        if let Some(rare) = out.rare.as_deref_mut() {
            if !rare.doomed.is_empty() {
                self.reap(std::mem::take(&mut rare.doomed));
            }
            for m in rare.wake.drain(..) {
                m.wake();
            }
            for (member, pos) in rare.waits.drain(..) {
                let deadline = match member.options.policy {
                    Policy::Block { timeout } => Instant::now().checked_add(timeout),
                    _ => None,
                };
                let (delivered, given_up) = member.wait_room(pos, deadline);
                if delivered {
                    out.delivered += 1;
                } else {
                    out.dropped += 1;
                    out.dropped_by.add(member.options.policy);
                    member.dropped.fetch_add(1, Ordering::Relaxed);
                }
                drop(given_up);
            }
        }
        if out.lagged > 0 {
            c.lagged.fetch_add(out.lagged, Ordering::Relaxed);
        }
        if out.delivered > 0 {
            c.delivered.fetch_add(out.delivered, Ordering::Relaxed);
        }
        if out.dropped > 0 {
            c.dropped.fetch_add(out.dropped, Ordering::Relaxed);
        }
        self.telemetry
            .outcome(out.delivered, out.dropped, &out.dropped_by, out.lagged);
        if let Some(rare) = out.rare.as_deref_mut() {
            // A handler may panic: what is left of `out` is dropped on the
            // way out, with no lock held.
            for (handler, message) in std::mem::take(&mut rare.calls) {
                handler.call(message);
            }
        }
    }

    /// Removes members that overflowed under `Disconnect` from everything.
    fn reap(&self, doomed: Vec<Arc<Member<T>>>) {
        let mut left: Vec<Arc<Route<T>>> = Vec::new();
        let mut wake: Vec<Arc<Member<T>>> = Vec::new();
        {
            let mut registry = self.write();
            for m in &doomed {
                registry.remove_subscriber(m.id, |c| {
                    leave_queued(c, m, &self.interest, &mut left, &mut wake);
                });
                self.counters.disconnected.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.telemetry.disconnected(doomed.len());
        self.interest.dispatch();
        for m in wake {
            m.wake();
        }
        for m in &doomed {
            m.wake();
        }
        drop(left);
    }

    /// The broker's last handle is gone: every route and queue is closed.
    fn close(&self) {
        let old = {
            let mut registry = self.write();
            self.closed.store(true, Ordering::Release);
            std::mem::replace(&mut *registry, Registry::with_routes(Route::new))
        };
        let mut routes: Vec<Arc<Route<T>>> = Vec::new();
        old.for_each_name(|r| routes.push(Arc::clone(r.value())));
        self.interest
            .names
            .closed(routes.iter().map(|r| r.namespace));
        for route in &routes {
            for m in route.close() {
                m.wake();
            }
            for m in route.members() {
                if m.close() {
                    m.wake();
                }
            }
        }
        drop(old);
        drop(routes);
    }
}

/// The routes of a `PUBLISH` to `channel`: the exact channel's, then each
/// matching pattern's, using and updating the exact route's cache.
#[inline]
fn find_routes<'r, T>(
    registry: &'r Routes<T>,
    channel: &[u8],
    routes: &mut SmallVec<[&'r Arc<Route<T>>; 4]>,
) {
    let exact = registry.route(Namespace::Channel, channel);
    if registry.numpat() == 0 {
        if let Some(r) = exact {
            routes.push(r.value());
        }
        return;
    }
    let Some(exact) = exact else {
        registry.for_each_pattern_route(channel, |_, r| routes.push(r.value()));
        return;
    };
    let exact = exact.value();
    routes.push(exact);
    let version = registry.patterns_version();
    match exact.cache.get(version) {
        Cached::NoPattern => {}
        Cached::One(id) => {
            if let Some(r) = registry.pattern_route(id) {
                routes.push(r.value());
            }
        }
        Cached::Unknown => {
            let mut found: Option<Option<PatternId>> = None;
            registry.for_each_pattern_route(channel, |id, r| {
                found = Some(match found {
                    None => Some(id),
                    Some(_) => None,
                });
                routes.push(r.value());
            });
            exact.cache.set(version, found);
        }
    }
}

/// The message of one route of a publish to `channel`. The channel's name
/// is shared with the exact route when there is one (a route that is not a
/// pattern's is named by the channel itself), or allocated once per publish
/// (`shared` carries it across the routes of one publish).
fn message_for<T>(
    namespace: Namespace,
    route: &Route<T>,
    channel: &[u8],
    shared: Option<&mut Option<Arc<[u8]>>>,
    payload: T,
) -> Message<T> {
    if route.namespace != Namespace::Pattern {
        if let Some(slot) = shared {
            slot.get_or_insert_with(|| Arc::clone(&route.name));
        }
        return Message::new(namespace, Arc::clone(&route.name), None, payload);
    }
    let name = match shared {
        Some(slot) => Arc::clone(slot.get_or_insert_with(|| Arc::from(channel))),
        None => Arc::from(channel),
    };
    Message::new(
        Namespace::Pattern,
        name,
        Some(Arc::clone(&route.name)),
        payload,
    )
}

/// A queued member left a route (a `Change` of the registry): removes it
/// from the route; a route freed by it is closed, and kept in `left` to drop
/// outside the lock.
pub(crate) fn leave_queued<T>(
    c: Change<'_, Arc<Route<T>>>,
    member: &Member<T>,
    interest: &Interest,
    left: &mut Vec<Arc<Route<T>>>,
    wake: &mut Vec<Arc<Member<T>>>,
) {
    if let Some(m) = c.route.remove_member(member.id) {
        drop(m);
    }
    if c.first_or_last {
        interest.record(c.namespace, c.name, false);
        wake.extend(c.route.close());
        left.push(Arc::clone(c.route));
    }
}

/// A handle to a broker: publish, create subscribers, inspect.
///
/// Cloning is cheap and every clone is the same broker. When the last
/// `Broker` handle is dropped, every subscriber receives what is already
/// queued and then [`DisconnectReason::BrokerClosed`](crate::DisconnectReason::BrokerClosed).
///
/// `T` is the payload type. A publish moves it into the message of its
/// first route and clones it once for each further route (each matching
/// pattern), never per subscriber: see [`Message`](crate::Message).
pub struct Broker<T> {
    state: Arc<BrokerState<T>>,
}

/// Builds a [`Broker`] with default queue settings for its subscribers.
///
/// ```
/// use tidings::{Broker, Policy};
///
/// let broker: Broker<String> = Broker::builder().capacity(64).policy(Policy::DropOldest).build()?;
/// assert_eq!(broker.subscriber().capacity(), 64);
/// # Ok::<(), tidings::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct BrokerBuilder {
    defaults: Options,
    /// Feature `metrics`: the `broker` label of this broker's series.
    #[cfg(feature = "metrics")]
    metrics_label: Option<&'static str>,
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
    pub fn spin(mut self, spin: std::time::Duration) -> Self {
        self.defaults = self.defaults.spin(spin);
        self
    }

    /// Feature `metrics`: adds the label `broker="<label>"` to every series
    /// this broker (and a bridge of it) reports, to tell brokers of one
    /// process apart. Without it, brokers report under the same names and
    /// labels, so their counters and gauges add up to the process's totals.
    /// See "Crate features" in the crate docs.
    ///
    /// ```
    /// use tidings::Broker;
    ///
    /// let orders: Broker<String> = Broker::builder().metrics_label("orders").build()?;
    /// # Ok::<(), tidings::ConfigError>(())
    /// ```
    #[cfg(feature = "metrics")]
    pub fn metrics_label(mut self, label: &'static str) -> Self {
        self.metrics_label = Some(label);
        self
    }

    /// Builds the broker.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] if the settings cannot be used (a capacity of 0).
    pub fn build<T>(self) -> Result<Broker<T>, ConfigError> {
        let mut builder = self;
        builder.defaults = self.defaults.validate()?;
        Ok(Broker::with_defaults(builder))
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
        Broker::with_defaults(BrokerBuilder::default())
    }

    /// A broker with `builder`'s settings, already validated.
    fn with_defaults(builder: BrokerBuilder) -> Broker<T> {
        #[cfg(feature = "metrics")]
        let label = builder.metrics_label;
        #[cfg(not(feature = "metrics"))]
        let label = None;
        let telemetry = BrokerTelemetry::new(label);
        Broker {
            state: Arc::new(BrokerState {
                registry: RwLock::new(Registry::with_routes(Route::new)),
                stripes: std::array::from_fn(|_| Mutex::new(())),
                next_id: AtomicU64::new(0),
                handles: AtomicUsize::new(1),
                subscribers: AtomicUsize::new(0),
                closed: AtomicBool::new(false),
                defaults: builder.defaults,
                counters: Counters::default(),
                interest: Interest::new(telemetry.names()),
                telemetry,
            }),
        }
    }

    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn state(&self) -> &Arc<BrokerState<T>> {
        &self.state
    }

    /// A new subscriber with the broker's default queue settings. It holds
    /// nothing until it subscribes.
    pub fn subscriber(&self) -> Subscriber<T> {
        let member = self.state.new_member(self.state.defaults, None);
        Subscriber::new(Arc::clone(&self.state), member)
    }

    /// A new subscriber with its own queue settings.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] if the settings cannot be used (a capacity of 0).
    pub fn subscriber_with(&self, options: Options) -> Result<Subscriber<T>, ConfigError> {
        let member = self.state.new_member(options.validate()?, None);
        Ok(Subscriber::new(Arc::clone(&self.state), member))
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
    /// - **When it runs.** After the publish has delivered to every route
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
        let member = self
            .state
            .new_member(Options::new(), Some(HandlerFn::new(handler)));
        Handler::new(Subscriber::new(Arc::clone(&self.state), member))
    }

    /// `PUBLISH channel payload`: delivers `payload` to every exact subscriber
    /// of `channel`, then to the subscribers of every matching pattern, and
    /// returns the number of deliveries (Redis's reply): those delivered
    /// plus those the subscribers' policies dropped.
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
        self.state
            .publish(Namespace::Channel, channel.as_ref(), payload)
    }

    /// `SPUBLISH shardchannel payload`: delivers only to the shard
    /// subscribers of exactly `shardchannel` and returns their number.
    /// Shard channels are a separate namespace from channels and patterns.
    ///
    /// ```
    /// use tidings::{Broker, Namespace};
    ///
    /// let broker = Broker::new();
    /// let mut sub = broker.subscriber();
    /// sub.ssubscribe("orders:{42}");
    /// sub.subscribe("orders:{42}");
    /// assert_eq!(broker.spublish("orders:{42}", 1), 1);
    /// assert_eq!(sub.recv().unwrap().namespace(), Namespace::Shard);
    /// ```
    pub fn spublish(&self, channel: impl AsRef<[u8]>, payload: T) -> usize
    where
        T: Clone,
    {
        self.state
            .publish(Namespace::Shard, channel.as_ref(), payload)
    }

    /// Calls `hook` whenever this broker's interest changes: when a channel,
    /// pattern or shard channel gains its first subscriber
    /// ([`InterestChange::active`] is `true`) or loses its last one
    /// (`false`), however that happens (an unsubscribe, an "unsubscribe
    /// all", a dropped subscriber, a `Disconnect` policy). It is first called
    /// once for every name already held, so the watcher starts from the full
    /// picture with no gap.
    ///
    /// **When it runs.** Changes are recorded in the order the registry
    /// makes them, and handed to the hooks in that order, with no broker
    /// lock held: by the thread that made the change, or by another thread
    /// already handing changes out (so a change may reach the hook just
    /// after the call that made it returned). A hook may therefore call back
    /// into the broker, subscribe, publish or drop handles. If a hook
    /// panics, the panic reaches the call that was handing changes out, and
    /// the changes not yet handed out are handed out by the next call that
    /// changes interest. The hook stays installed until the returned
    /// [`InterestWatch`] is dropped.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use tidings::{Broker, Namespace};
    ///
    /// let broker: Broker<()> = Broker::new();
    /// let (tx, rx) = mpsc::channel();
    /// let tx = std::sync::Mutex::new(tx);
    /// let _watch = broker.watch_interest(move |change| {
    ///     let _ = tx.lock().unwrap().send((change.namespace, change.name.to_vec(), change.active));
    /// });
    /// let mut a = broker.subscriber();
    /// let mut b = broker.subscriber();
    /// a.subscribe("news");
    /// b.subscribe("news"); // not the first: no change
    /// drop(a);             // not the last: no change
    /// drop(b);
    /// let changes: Vec<_> = rx.try_iter().collect();
    /// assert_eq!(changes, [(Namespace::Channel, b"news".to_vec(), true), (Namespace::Channel, b"news".to_vec(), false)]);
    /// ```
    pub fn watch_interest(
        &self,
        hook: impl Fn(&InterestChange<'_>) + Send + Sync + 'static,
    ) -> InterestWatch<T> {
        let id = {
            let registry = self.state.write();
            let mut st = lock(&self.state.interest.state);
            let id = st.next_hook;
            st.next_hook += 1;
            st.hooks.push((id, Arc::new(hook)));
            registry.for_each_name(|r| {
                st.pending.push_back(Pending {
                    namespace: r.namespace(),
                    name: Arc::clone(r.name()),
                    active: true,
                    only: Some(id),
                    before: 0,
                });
            });
            self.state.interest.any.store(true, Ordering::Release);
            id
        };
        self.state.interest.dispatch();
        InterestWatch {
            broker: Arc::clone(&self.state),
            id,
        }
    }

    /// `PUBSUB CHANNELS [pattern]`: the channels with at least one exact
    /// subscriber, optionally only those matching a glob pattern, sorted.
    /// With [`Namespace::Shard`], `PUBSUB SHARDCHANNELS`; with
    /// [`Namespace::Pattern`], the patterns held.
    ///
    /// ```
    /// use tidings::{Broker, Namespace};
    ///
    /// let broker: Broker<()> = Broker::new();
    /// let mut sub = broker.subscriber();
    /// sub.subscribe("news");
    /// sub.subscribe("weather");
    /// sub.psubscribe("n*");
    /// assert_eq!(broker.channels(Namespace::Channel, None), [b"news".to_vec(), b"weather".to_vec()]);
    /// assert_eq!(broker.channels(Namespace::Channel, Some(b"w*")), [b"weather".to_vec()]);
    /// assert_eq!(broker.channels(Namespace::Pattern, None), [b"n*".to_vec()]);
    /// ```
    pub fn channels(&self, namespace: Namespace, pattern: Option<&[u8]>) -> Vec<Vec<u8>> {
        let registry = self.state.read();
        let mut names: Vec<Vec<u8>> = registry
            .names(namespace, pattern)
            .map(|n| n.to_vec())
            .collect();
        drop(registry);
        names.sort_unstable();
        names
    }

    /// `PUBSUB NUMSUB channel` (or, with [`Namespace::Shard`],
    /// `SHARDNUMSUB`): the number of subscribers of exactly this name.
    /// Pattern subscribers are not counted for a channel, as in Redis.
    pub fn numsub(&self, namespace: Namespace, name: impl AsRef<[u8]>) -> usize {
        self.state.read().numsub(namespace, name.as_ref())
    }

    /// `PUBSUB NUMPAT`: the number of distinct patterns held.
    pub fn numpat(&self) -> usize {
        self.state.read().numpat()
    }

    /// Broker-wide counters. Every publish's return value equals what it
    /// added to `delivered` plus what it added to `dropped`.
    pub fn metrics(&self) -> Metrics {
        let c = &self.state.counters;
        Metrics {
            published: c.published.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            lagged: c.lagged.load(Ordering::Relaxed),
            disconnected: c.disconnected.load(Ordering::Relaxed),
            subscribers: self.state.subscribers.load(Ordering::Relaxed) as u64,
        }
    }

    /// Whether no subscriber holds any subscription.
    pub fn is_idle(&self) -> bool {
        self.state.read().is_empty()
    }

    /// Checks the registry's invariants, and that every route serves
    /// exactly the subscribers the registry lists.
    ///
    /// # Panics
    ///
    /// Panics if one does not hold; meant for tests.
    #[doc(hidden)]
    pub fn check_invariants(&self) {
        let registry = self.state.read();
        registry.check_invariants();
        let version = registry.patterns_version();
        registry.for_each_name(|r| {
            assert_eq!(
                r.value().len(),
                r.len(),
                "route {:?} serves the subscribers the registry lists",
                r.name()
            );
            if r.namespace() != Namespace::Channel {
                return;
            }
            // Every route cache that is valid says what the index says now.
            let mut matched = Vec::new();
            registry.for_each_pattern_route(r.name(), |id, _| matched.push(id));
            match r.value().cache.get(version) {
                Cached::Unknown => {}
                Cached::NoPattern => assert!(
                    matched.is_empty(),
                    "route cache of {:?}: no pattern, but {} match",
                    r.name(),
                    matched.len()
                ),
                Cached::One(id) => {
                    assert_eq!(matched, [id], "route cache of {:?}: one pattern", r.name())
                }
            }
        });
    }
}

impl<T> Clone for Broker<T> {
    fn clone(&self) -> Self {
        self.state.handles.fetch_add(1, Ordering::Relaxed);
        Broker {
            state: Arc::clone(&self.state),
        }
    }
}

impl<T> Drop for Broker<T> {
    fn drop(&mut self) {
        if self.state.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Last handle: subscribers drain what is queued, then see
            // BrokerClosed.
            self.state.close();
        }
    }
}

impl<T> fmt::Debug for Broker<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broker")
            .field("metrics", &self.metrics())
            .finish_non_exhaustive()
    }
}
