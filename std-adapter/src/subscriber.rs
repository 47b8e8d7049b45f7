//! The subscriber handle: its subscriptions, and receiving.
//!
//! A subscriber receives from two places, oldest first: its own queue (see
//! `crate::queue`), and, while it reads one route's shared ring directly
//! (see `crate::log`), that ring. It reads a ring when its policy is
//! [`Policy::DropOldest`], it holds exactly one channel or pattern (or shard
//! channel), and its own queue was empty when it subscribed; as soon as it
//! holds a second one, it leaves the ring, moving what it had not taken into
//! its own queue, and receives everything there.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tidings_core::registry::Change;
use tidings_core::{Confirmation, Counts, Namespace};

use crate::broker::{BrokerState, leave_queued};
use crate::log::{self, MAX_CAPACITY, Take};
use crate::message::{DisconnectReason, Message, RecvError, RecvTimeoutError, TryRecvError};
use crate::policy::{Policy, SubscriberStats};
use crate::queue::{Member, Popped};
use crate::route::{Reading, Route};

/// The subscription methods of [`Subscriber`] and [`Handler`](crate::Handler),
/// written once: each type provides `op`, `op_all` and `member_counts`.
macro_rules! subscription_methods {
    () => {
        /// `SUBSCRIBE channel`. The subscription is active for every publish that
        /// starts after this returns.
        ///
        /// ```
        /// use tidings::Broker;
        ///
        /// let broker: Broker<()> = Broker::new();
        /// let mut sub = broker.subscriber();
        /// let c = sub.subscribe("a");
        /// assert_eq!((c.command(), c.name.as_deref(), c.count), ("subscribe", Some(&b"a"[..]), 1));
        /// assert_eq!(sub.subscribe("a").count, 1); // repeated: same count
        /// assert_eq!(sub.psubscribe("b*").count, 2); // channels plus patterns
        /// ```
        pub fn subscribe(&mut self, channel: impl AsRef<[u8]>) -> tidings_core::Confirmation {
            self.op(tidings_core::Namespace::Channel, channel.as_ref(), true)
        }

        /// `UNSUBSCRIBE channel`; confirms even if the channel was not held.
        /// Messages already delivered stay queued.
        pub fn unsubscribe(&mut self, channel: impl AsRef<[u8]>) -> tidings_core::Confirmation {
            self.op(tidings_core::Namespace::Channel, channel.as_ref(), false)
        }

        /// `PSUBSCRIBE pattern` (Redis glob syntax; see [`tidings_core::glob`]).
        pub fn psubscribe(&mut self, pattern: impl AsRef<[u8]>) -> tidings_core::Confirmation {
            self.op(tidings_core::Namespace::Pattern, pattern.as_ref(), true)
        }

        /// `PUNSUBSCRIBE pattern`.
        pub fn punsubscribe(&mut self, pattern: impl AsRef<[u8]>) -> tidings_core::Confirmation {
            self.op(tidings_core::Namespace::Pattern, pattern.as_ref(), false)
        }

        /// `SSUBSCRIBE shardchannel`. Its count is the number of shard channels.
        pub fn ssubscribe(&mut self, channel: impl AsRef<[u8]>) -> tidings_core::Confirmation {
            self.op(tidings_core::Namespace::Shard, channel.as_ref(), true)
        }

        /// `SUNSUBSCRIBE shardchannel`.
        pub fn sunsubscribe(&mut self, channel: impl AsRef<[u8]>) -> tidings_core::Confirmation {
            self.op(tidings_core::Namespace::Shard, channel.as_ref(), false)
        }

        /// `UNSUBSCRIBE`, `PUNSUBSCRIBE` or `SUNSUBSCRIBE` with no arguments,
        /// by namespace: one confirmation per name held, in byte order with
        /// falling counts, or a single one with no name if none is held.
        ///
        /// ```
        /// use tidings::{Broker, Namespace};
        ///
        /// let broker: Broker<()> = Broker::new();
        /// let mut sub = broker.subscriber();
        /// sub.psubscribe("p*");
        /// let all = sub.unsubscribe_all(Namespace::Channel);
        /// assert_eq!(all.len(), 1);
        /// assert_eq!((all[0].name.clone(), all[0].count), (None, 1)); // the pattern remains
        /// ```
        pub fn unsubscribe_all(
            &mut self,
            namespace: tidings_core::Namespace,
        ) -> Vec<tidings_core::Confirmation> {
            self.op_all(namespace)
        }

        /// The numbers of channels, patterns and shard channels held.
        pub fn counts(&self) -> tidings_core::Counts {
            self.member_counts()
        }
    };
}
pub(crate) use subscription_methods;

/// A subscriber: it holds channels, patterns and shard channels, and
/// receives what is published to them.
///
/// Dropping it unsubscribes it from everything. It is `Send`, so it can be
/// moved to the thread that reads it.
pub struct Subscriber<T> {
    state: Arc<BrokerState<T>>,
    member: Arc<Member<T>>,
    /// The route whose ring it reads, if it reads one.
    direct: Option<Box<Direct<T>>>,
    /// Routes held.
    routes: u32,
    /// A message whose arrival revealed a gap: returned after the lag notice.
    pending: Option<Message<T>>,
    /// Delivered through rings it no longer reads.
    ring_delivered: u64,
    /// The channel [`ready`](Self::ready) returns.
    bell: Option<Box<crossbeam_channel::Receiver<()>>>,
    /// The stream has yielded its terminal `Disconnected` (async `Stream`).
    #[cfg(feature = "async")]
    ended: bool,
}

struct Direct<T> {
    route: Arc<Route<T>>,
    reading: Reading<T>,
}

/// What one look for a message found.
enum Found<T> {
    Message(Message<T>),
    Lagged(u64),
    Empty,
    End(DisconnectReason),
}

/// What a subscription change leaves to do once the registry's lock is
/// released.
struct After<T> {
    /// Routes this left, to drop outside the lock.
    left: Vec<Arc<Route<T>>>,
    /// Readers of closed routes to wake.
    wake: Vec<Arc<Member<T>>>,
    /// Messages to drop outside the lock (a dropped subscriber's backlog).
    garbage: Vec<Message<T>>,
}

impl<T> After<T> {
    fn new() -> Self {
        After {
            left: Vec::new(),
            wake: Vec::new(),
            garbage: Vec::new(),
        }
    }

    fn finish(self, state: &BrokerState<T>) {
        state.interest.dispatch();
        for m in self.wake {
            m.wake();
        }
        drop(self.garbage);
        drop(self.left);
    }
}

impl<T> Subscriber<T> {
    pub(crate) fn new(state: Arc<BrokerState<T>>, member: Arc<Member<T>>) -> Self {
        Subscriber {
            state,
            member,
            direct: None,
            routes: 0,
            pending: None,
            ring_delivered: 0,
            bell: None,
            #[cfg(feature = "async")]
            ended: false,
        }
    }

    /// Whether this subscriber may read a ring directly when it holds one
    /// route.
    fn may_read_ring(&self) -> bool {
        let m = &self.member;
        m.handler.is_none()
            && m.options.policy == Policy::DropOldest
            && m.options.capacity <= MAX_CAPACITY
            && !m.has_queued()
    }

    /// The subscriber joined route `c` (a registry change, under its write
    /// lock).
    fn joined(&mut self, c: Change<'_, Arc<Route<T>>>) {
        if c.first_or_last {
            self.state.interest.record(c.namespace, c.name, true);
        }
        self.routes += 1;
        if self.routes == 1 && self.may_read_ring() {
            if let Some(reading) = c.route.join(self.member.options.capacity) {
                self.direct = Some(Box::new(Direct {
                    route: Arc::clone(c.route),
                    reading,
                }));
                return;
            }
        }
        if let Some(d) = self.direct.take() {
            self.ring_delivered += d.route.to_member(&d.reading, &self.member);
        }
        c.route.add_member(Arc::clone(&self.member));
    }

    /// The subscriber left route `c` (a registry change, under its write
    /// lock). Unless it is being dropped, what it had not taken from the
    /// route's ring moves to its own queue.
    fn left(&mut self, c: Change<'_, Arc<Route<T>>>, dropping: bool, after: &mut After<T>) {
        self.routes = self.routes.saturating_sub(1);
        let reads_it = self
            .direct
            .as_ref()
            .is_some_and(|d| Arc::ptr_eq(&d.route, c.route));
        if reads_it {
            if let Some(d) = self.direct.take() {
                let member = &self.member;
                let garbage = &mut after.garbage;
                let (lost, delivered) = d.route.leave(&d.reading, |lost, m| {
                    if dropping {
                        garbage.push(m);
                    } else {
                        member.push_backlog(lost, Some(m));
                    }
                });
                if !dropping {
                    member.push_backlog(lost, None);
                }
                self.ring_delivered += delivered;
            }
            if c.first_or_last {
                self.state.interest.record(c.namespace, c.name, false);
                after.wake.extend(c.route.close());
                after.left.push(Arc::clone(c.route));
            }
        } else {
            leave_queued(
                c,
                &self.member,
                &self.state.interest,
                &mut after.left,
                &mut after.wake,
            );
        }
    }

    /// A confirmation for an operation the broker refused (the subscriber
    /// was disconnected, or the broker closed, or the registry is full):
    /// nothing changed.
    fn refused(&self, namespace: Namespace, name: &[u8], subscribe: bool) -> Confirmation {
        let counts = self.member_counts();
        let count = match namespace {
            Namespace::Shard => counts.shard_channels,
            _ => counts.subscriptions(),
        };
        Confirmation::new(namespace, subscribe, Some(name.into()), count)
    }

    /// Runs one single-name operation.
    pub(crate) fn op(
        &mut self,
        namespace: Namespace,
        name: &[u8],
        subscribe: bool,
    ) -> Confirmation {
        let state = Arc::clone(&self.state);
        let mut after = After::new();
        let result = {
            let mut registry = state.write();
            // A subscriber removed by its policy, or whose broker closed,
            // stays out of the registry: checked under the lock that the
            // removal takes, so a subscription cannot land after it.
            if state.is_closed() || self.member.is_doomed() {
                None
            } else if subscribe {
                registry
                    .subscribe(namespace, self.member.id, name, |c| self.joined(c))
                    .ok()
            } else {
                Some(registry.unsubscribe(namespace, self.member.id, name, |c| {
                    self.left(c, false, &mut after);
                }))
            }
        };
        after.finish(&state);
        result.unwrap_or_else(|| self.refused(namespace, name, subscribe))
    }

    /// Runs an "unsubscribe all" of `namespace`.
    pub(crate) fn op_all(&mut self, namespace: Namespace) -> Vec<Confirmation> {
        let state = Arc::clone(&self.state);
        let mut after = After::new();
        let confirmations = {
            let mut registry = state.write();
            registry.unsubscribe_all(namespace, self.member.id, |c| {
                self.left(c, false, &mut after);
            })
        };
        after.finish(&state);
        confirmations
    }

    pub(crate) fn member_counts(&self) -> Counts {
        self.state.read().counts(self.member.id)
    }

    subscription_methods!();

    /// This subscriber's counters.
    pub fn stats(&self) -> SubscriberStats {
        let (pushed, live) = self.member.counts();
        let mut stats = SubscriberStats {
            delivered: pushed + self.ring_delivered,
            dropped: self
                .member
                .dropped
                .load(std::sync::atomic::Ordering::Relaxed),
            lagged: self
                .member
                .lagged
                .load(std::sync::atomic::Ordering::Relaxed),
            queued: live as u64 + u64::from(self.pending.is_some()),
            disconnected: self.member.is_doomed(),
        };
        if let Some(d) = &self.direct {
            if let Some((oldest, head)) = d.route.ring_state(d.reading.capacity) {
                let cursor = d.reading.cursor;
                stats.delivered += head - d.reading.joined;
                stats.lagged += oldest.saturating_sub(cursor);
                stats.queued += head - cursor.max(oldest);
            }
        }
        stats
    }

    /// The queue capacity, in messages.
    pub fn capacity(&self) -> usize {
        self.member.options.capacity
    }

    /// The overflow policy.
    pub fn policy(&self) -> Policy {
        self.member.options.policy
    }

    /// Number of messages waiting to be received.
    pub fn len(&self) -> usize {
        self.stats().queued as usize
    }

    /// Whether no message is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Looks once for the next item of the stream, without waiting.
    fn look(&mut self) -> Found<T> {
        if let Some(m) = self.pending.take() {
            return Found::Message(m);
        }
        if self.member.has_queued() {
            match self.member.pop() {
                Popped::Message(0, m) => return Found::Message(m),
                Popped::Message(lag, m) => {
                    self.pending = Some(m);
                    return Found::Lagged(lag);
                }
                Popped::Lagged(lag) => return Found::Lagged(lag),
                Popped::Closed(why) => return Found::End(why),
                Popped::Empty => {}
            }
        }
        let Some(d) = &mut self.direct else {
            return match self.member.closed() {
                Some(why) => Found::End(why),
                None if self.state.is_closed() => Found::End(DisconnectReason::BrokerClosed),
                None => Found::Empty,
            };
        };
        let mut closed_seen = false;
        loop {
            match log::take(&d.reading.ring, d.reading.cursor) {
                Take::Got(m) => {
                    d.reading.cursor += 1;
                    return Found::Message(Message::from_shared(m));
                }
                Take::Empty => {
                    if closed_seen {
                        return Found::End(DisconnectReason::BrokerClosed);
                    }
                    if !d.route.is_closed() {
                        if d.reading.ring.len() > 64 {
                            // Caught up after a backlog: give the ring's
                            // memory back.
                            d.route.trim(&mut d.reading);
                        }
                        return Found::Empty;
                    }
                    // Everything written before the close is visible now:
                    // look once more.
                    closed_seen = true;
                }
                Take::Evicted | Take::Moved => {
                    let Some((lost, next)) = d.route.catch_up(&mut d.reading) else {
                        return Found::End(DisconnectReason::BrokerClosed);
                    };
                    if lost > 0 {
                        self.member
                            .lagged
                            .fetch_add(lost, std::sync::atomic::Ordering::Relaxed);
                        self.pending = next;
                        return Found::Lagged(lost);
                    }
                }
            }
        }
    }

    /// Asks to be woken when something arrives; `false` if something may
    /// have arrived meanwhile, so the caller must look again.
    fn arm(&self) -> bool {
        if !self.member.arm() {
            return false;
        }
        match &self.direct {
            Some(d) => d
                .route
                .arm(&self.member, d.reading.capacity, d.reading.cursor),
            None => !self.state.is_closed(),
        }
    }

    /// Waits for the next item until `deadline` (`None`: for as long as it
    /// takes).
    fn wait(&mut self, deadline: Option<Instant>) -> Result<Message<T>, RecvTimeoutError> {
        let spin_until = Instant::now().checked_add(self.member.options.spin);
        let mut spins = 0u32;
        loop {
            match self.look() {
                Found::Message(m) => return Ok(m),
                Found::Lagged(n) => return Err(RecvTimeoutError::Lagged(n)),
                Found::End(why) => return Err(RecvTimeoutError::Disconnected(why)),
                Found::Empty => {}
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Err(RecvTimeoutError::Timeout);
            }
            if !self.member.options.spin.is_zero() && spin_until.is_none_or(|s| now < s) {
                spins += 1;
                if spins % 64 == 0 {
                    // Between rounds, let whatever else wants this CPU run
                    // (on a small machine, often the thread about to send).
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
                continue;
            }
            self.member.set_thread();
            if !self.arm() {
                continue;
            }
            match deadline {
                Some(d) => std::thread::park_timeout(d.saturating_duration_since(now)),
                None => std::thread::park(),
            }
        }
    }

    /// Blocks until a message arrives, a lag is reported, or the stream ends.
    ///
    /// ```
    /// use tidings::Broker;
    ///
    /// let broker = Broker::new();
    /// let mut sub = broker.subscriber();
    /// sub.subscribe("orders:1");
    /// sub.psubscribe("orders:*");
    /// assert_eq!(broker.publish("orders:1", "paid"), 2);
    /// let m = sub.recv().unwrap();
    /// assert_eq!((m.channel(), m.pattern(), *m.payload()), (&b"orders:1"[..], None, "paid"));
    /// let m = sub.recv().unwrap();
    /// assert_eq!(m.pattern(), Some(&b"orders:*"[..]));
    /// ```
    pub fn recv(&mut self) -> Result<Message<T>, RecvError> {
        match self.wait(None) {
            Ok(m) => Ok(m),
            Err(RecvTimeoutError::Lagged(n)) => Err(RecvError::Lagged(n)),
            Err(RecvTimeoutError::Disconnected(why)) => Err(RecvError::Disconnected(why)),
            // No deadline: never times out.
            Err(RecvTimeoutError::Timeout) => {
                Err(RecvError::Disconnected(DisconnectReason::BrokerClosed))
            }
        }
    }

    /// Blocks for at most `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Message<T>, RecvTimeoutError> {
        self.wait(Instant::now().checked_add(timeout))
    }

    /// Blocks until `deadline` at the latest.
    pub fn recv_deadline(&mut self, deadline: Instant) -> Result<Message<T>, RecvTimeoutError> {
        self.wait(Some(deadline))
    }

    /// Returns a waiting message without blocking.
    #[inline]
    pub fn try_recv(&mut self) -> Result<Message<T>, TryRecvError> {
        if self.pending.is_none() {
            if self.member.has_queued() {
                // The fast path of a queue.
                match self.member.pop() {
                    Popped::Message(0, m) => return Ok(m),
                    Popped::Message(lag, m) => {
                        self.pending = Some(m);
                        return Err(TryRecvError::Lagged(lag));
                    }
                    Popped::Lagged(lag) => return Err(TryRecvError::Lagged(lag)),
                    Popped::Closed(why) => return Err(TryRecvError::Disconnected(why)),
                    Popped::Empty => {}
                }
            } else if let Some(d) = &mut self.direct {
                // The fast path of a ring reader: its next message is there.
                if let Take::Got(m) = log::take(&d.reading.ring, d.reading.cursor) {
                    d.reading.cursor += 1;
                    return Ok(Message::from_shared(m));
                }
            }
        }
        self.try_recv_slow()
    }

    fn try_recv_slow(&mut self) -> Result<Message<T>, TryRecvError> {
        let found = self.look();
        match found {
            Found::Message(m) => Ok(m),
            Found::Lagged(n) => Err(TryRecvError::Lagged(n)),
            Found::End(why) => Err(TryRecvError::Disconnected(why)),
            Found::Empty => {
                if self.bell.is_some() && !self.arm() {
                    // Something arrived meanwhile: ring the bell so that a
                    // caller about to wait on it looks again.
                    self.member.wake();
                }
                Err(TryRecvError::Empty)
            }
        }
    }

    /// A channel that receives a token whenever this subscriber may have
    /// something to receive after [`try_recv`](Self::try_recv) found it
    /// empty: the way to wait on several subscribers, and on other
    /// crossbeam channels, at once with `crossbeam_channel::select!`.
    /// Receive with `try_recv` until it is empty, then wait on the bells;
    /// a token may come with nothing to receive (look again and wait
    /// again), but none is ever missed.
    ///
    /// ```
    /// use crossbeam_channel::{select, unbounded};
    /// use tidings::{Broker, TryRecvError};
    ///
    /// let broker = Broker::new();
    /// let (mut a, mut b) = (broker.subscriber(), broker.subscriber());
    /// a.subscribe("jobs");
    /// b.subscribe("alerts");
    /// let (bell_a, bell_b) = (a.ready().clone(), b.ready().clone());
    /// let (_stop_tx, stop) = unbounded::<()>();
    /// broker.publish("alerts", "fire");
    /// let mut seen = Vec::new();
    /// while seen.is_empty() {
    ///     for sub in [&mut a, &mut b] {
    ///         while let Ok(m) = sub.try_recv() {
    ///             seen.push(*m.payload());
    ///         }
    ///     }
    ///     if seen.is_empty() {
    ///         select! {
    ///             recv(bell_a) -> _ => {}
    ///             recv(bell_b) -> _ => {}
    ///             recv(stop) -> _ => break,
    ///         }
    ///     }
    /// }
    /// assert_eq!(seen, ["fire"]);
    /// assert_eq!(a.try_recv().unwrap_err(), TryRecvError::Empty);
    /// ```
    pub fn ready(&mut self) -> &crossbeam_channel::Receiver<()> {
        let bell = self.bell.get_or_insert_with(|| {
            let (tx, rx) = crossbeam_channel::bounded(1);
            self.member.set_bell(tx);
            Box::new(rx)
        });
        // Ring at once: whatever is waiting now was not announced.
        if self.member.has_queued() || self.direct.is_some() {
            self.member.wake();
        }
        bell
    }

    /// A blocking iterator: yields every message and every lag notice, then
    /// the terminal [`RecvError::Disconnected`] once, then ends.
    pub fn iter(&mut self) -> Iter<'_, T> {
        Iter {
            sub: self,
            done: false,
        }
    }

    /// A non-blocking iterator over what is waiting now (messages and lag
    /// notices); it ends when nothing is waiting, after yielding a terminal
    /// [`RecvError::Disconnected`] if the stream has ended.
    pub fn try_iter(&mut self) -> TryIter<'_, T> {
        TryIter {
            sub: self,
            done: false,
        }
    }
}

#[cfg(feature = "async")]
impl<T> Subscriber<T> {
    /// Waits asynchronously for a message, a lag notice or the end of the
    /// stream: the async twin of [`recv`](Self::recv), for any executor.
    ///
    /// Cancel-safe: dropping the future before it completes loses nothing;
    /// the next receive gets the message it would have returned.
    ///
    /// ```
    /// # futures_lite::future::block_on(async {
    /// use tidings::Broker;
    ///
    /// let broker = Broker::new();
    /// let mut sub = broker.subscriber();
    /// sub.subscribe("chat:lobby");
    /// broker.publish("chat:lobby", "hi");
    /// assert_eq!(*sub.recv_async().await.unwrap().payload(), "hi");
    /// # });
    /// ```
    pub fn recv_async(&mut self) -> RecvFuture<'_, T> {
        RecvFuture { sub: self }
    }

    fn poll_recv(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<Message<T>, RecvError>> {
        use std::task::Poll;
        loop {
            match self.look() {
                Found::Message(m) => return Poll::Ready(Ok(m)),
                Found::Lagged(n) => return Poll::Ready(Err(RecvError::Lagged(n))),
                Found::End(why) => return Poll::Ready(Err(RecvError::Disconnected(why))),
                Found::Empty => {}
            }
            self.member.set_waker(cx.waker());
            if self.arm() {
                return Poll::Pending;
            }
        }
    }
}

/// The future of [`Subscriber::recv_async`] (feature `async`).
#[cfg(feature = "async")]
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct RecvFuture<'a, T> {
    sub: &'a mut Subscriber<T>,
}

#[cfg(feature = "async")]
impl<T> std::future::Future for RecvFuture<'_, T> {
    type Output = Result<Message<T>, RecvError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        self.sub.poll_recv(cx)
    }
}

// A subscriber is never pinned structurally: `poll_next` only uses `&mut`.
impl<T> Unpin for Subscriber<T> {}

/// A subscriber is a stream of its messages (feature `async`).
///
/// Lag notices arrive as `Err(RecvError::Lagged(n))` items and the end of the
/// stream as one `Err(RecvError::Disconnected(reason))` item before `None`:
/// unlike a stream that swallows lag, nothing is lost silently. Dropping the
/// stream drops the subscriber, which unsubscribes it from everything.
///
/// ```
/// # futures_lite::future::block_on(async {
/// use futures_lite::StreamExt;
/// use tidings::{Broker, DisconnectReason, RecvError};
///
/// let broker = Broker::new();
/// let mut sub = broker.subscriber();
/// sub.psubscribe("chat:*");
/// broker.publish("chat:a", 1);
/// broker.publish("chat:b", 2);
/// drop(broker);
/// let items: Vec<_> = sub.map(|item| item.map(|m| *m.payload())).collect().await;
/// assert_eq!(items, [Ok(1), Ok(2), Err(RecvError::Disconnected(DisconnectReason::BrokerClosed))]);
/// # });
/// ```
#[cfg(feature = "async")]
impl<T> futures_core::Stream for Subscriber<T> {
    type Item = Result<Message<T>, RecvError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        if self.ended {
            return Poll::Ready(None);
        }
        match self.poll_recv(cx) {
            Poll::Ready(item) => {
                self.ended = matches!(item, Err(RecvError::Disconnected(_)));
                Poll::Ready(Some(item))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> Drop for Subscriber<T> {
    fn drop(&mut self) {
        let state = Arc::clone(&self.state);
        let mut after = After::new();
        {
            let mut registry = state.write();
            registry.remove_subscriber(self.member.id, |c| self.left(c, true, &mut after));
        }
        // A subscriber removed already (doomed, or the broker closed) may
        // still read a ring: leave it.
        if let Some(d) = self.direct.take() {
            let garbage = &mut after.garbage;
            d.route.leave(&d.reading, |_, m| garbage.push(m));
        }
        let queued = self.member.abandon();
        // Counted before any user code runs: a hook may panic.
        state.subscriber_dropped();
        drop(queued);
        after.finish(&state);
    }
}

impl<T> fmt::Debug for Subscriber<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("options", &self.member.options)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// See [`Subscriber::iter`].
#[derive(Debug)]
pub struct Iter<'a, T> {
    sub: &'a mut Subscriber<T>,
    done: bool,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = Result<Message<T>, RecvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.sub.recv();
        self.done = matches!(item, Err(RecvError::Disconnected(_)));
        Some(item)
    }
}

/// See [`Subscriber::try_iter`].
#[derive(Debug)]
pub struct TryIter<'a, T> {
    sub: &'a mut Subscriber<T>,
    done: bool,
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = Result<Message<T>, RecvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.sub.try_recv() {
            Ok(m) => Some(Ok(m)),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Lagged(n)) => Some(Err(RecvError::Lagged(n))),
            Err(TryRecvError::Disconnected(why)) => {
                self.done = true;
                Some(Err(RecvError::Disconnected(why)))
            }
        }
    }
}
