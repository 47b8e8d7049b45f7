//! The subscriber handle: its subscriptions, and receiving from its queue.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use tidings_core::Kind;

use crate::broker::{Shared, State, announce};
use crate::message::{DisconnectReason, Message, RecvError, RecvTimeoutError, TryRecvError};
use crate::policy::{Envelope, Options, Policy, Stats, SubscriberStats};

/// One of Redis's subscription confirmations, owned: `(kind, name, count)`.
///
/// `count` is the subscriber's number of channels plus patterns after the
/// operation, or its number of shard channels for the shard kinds. `name` is
/// `None` only for the single confirmation of an "unsubscribe all" when
/// nothing of that kind was held.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Confirmation {
    /// What was done.
    pub kind: Kind,
    /// The channel or pattern.
    pub name: Option<Vec<u8>>,
    /// The count Redis reports.
    pub count: usize,
}

impl From<tidings_core::Confirmation<'_>> for Confirmation {
    fn from(c: tidings_core::Confirmation<'_>) -> Self {
        Confirmation {
            kind: c.kind,
            name: c.name.map(<[u8]>::to_vec),
            count: c.count,
        }
    }
}

/// The subscription methods of [`Subscriber`] and [`Handler`](crate::Handler),
/// written once: each type provides `op`, `op_all` and `member_counts`.
macro_rules! subscription_methods {
    () => {
        /// `SUBSCRIBE channel`. The subscription is active for every publish that
        /// starts after this returns.
        ///
        /// ```
        /// use tidings::{Broker, Kind};
        ///
        /// let broker: Broker<()> = Broker::new();
        /// let mut sub = broker.subscriber();
        /// let c = sub.subscribe("a");
        /// assert_eq!((c.kind, c.name.as_deref(), c.count), (Kind::Subscribe, Some(&b"a"[..]), 1));
        /// assert_eq!(sub.subscribe("a").count, 1); // repeated: same count
        /// assert_eq!(sub.psubscribe("b*").count, 2); // channels plus patterns
        /// ```
        pub fn subscribe(&mut self, channel: impl AsRef<[u8]>) -> Confirmation {
            self.op(Kind::Subscribe, channel.as_ref())
        }

        /// `UNSUBSCRIBE channel`; confirms even if the channel was not held.
        pub fn unsubscribe(&mut self, channel: impl AsRef<[u8]>) -> Confirmation {
            self.op(Kind::Unsubscribe, channel.as_ref())
        }

        /// `UNSUBSCRIBE` with no arguments: one confirmation per channel held, in
        /// byte order with falling counts, or a single one with no name if none
        /// is held.
        ///
        /// ```
        /// use tidings::Broker;
        ///
        /// let broker: Broker<()> = Broker::new();
        /// let mut sub = broker.subscriber();
        /// sub.psubscribe("p*");
        /// let all = sub.unsubscribe_all();
        /// assert_eq!(all.len(), 1);
        /// assert_eq!((all[0].name.clone(), all[0].count), (None, 1)); // the pattern remains
        /// ```
        pub fn unsubscribe_all(&mut self) -> Vec<Confirmation> {
            self.op_all(Kind::Unsubscribe)
        }

        /// `PSUBSCRIBE pattern` (Redis glob syntax; see [`tidings_core::glob`]).
        pub fn psubscribe(&mut self, pattern: impl AsRef<[u8]>) -> Confirmation {
            self.op(Kind::PSubscribe, pattern.as_ref())
        }

        /// `PUNSUBSCRIBE pattern`.
        pub fn punsubscribe(&mut self, pattern: impl AsRef<[u8]>) -> Confirmation {
            self.op(Kind::PUnsubscribe, pattern.as_ref())
        }

        /// `PUNSUBSCRIBE` with no arguments.
        pub fn punsubscribe_all(&mut self) -> Vec<Confirmation> {
            self.op_all(Kind::PUnsubscribe)
        }

        /// `SSUBSCRIBE shardchannel`. Its count is the number of shard channels.
        pub fn ssubscribe(&mut self, channel: impl AsRef<[u8]>) -> Confirmation {
            self.op(Kind::SSubscribe, channel.as_ref())
        }

        /// `SUNSUBSCRIBE shardchannel`.
        pub fn sunsubscribe(&mut self, channel: impl AsRef<[u8]>) -> Confirmation {
            self.op(Kind::SUnsubscribe, channel.as_ref())
        }

        /// `SUNSUBSCRIBE` with no arguments.
        pub fn sunsubscribe_all(&mut self) -> Vec<Confirmation> {
            self.op_all(Kind::SUnsubscribe)
        }

        /// The numbers of channels, patterns and shard channels held.
        pub fn counts(&self) -> tidings_core::Counts {
            self.member_counts()
        }
    };
}
pub(crate) use subscription_methods;

/// A subscriber: it holds channels, patterns and shard channels, and
/// receives what is published to them from its own bounded queue.
///
/// Dropping it unsubscribes it from everything. It is `Send`, so it can be
/// moved to the thread that reads it.
pub struct Subscriber<T> {
    shared: Arc<Shared<T>>,
    /// The registry id; `u64::MAX` if the broker was already closed.
    id: u64,
    rx: Receiver<Envelope<T>>,
    stats: Arc<Stats>,
    options: Options,
    /// The sequence number the next envelope should carry (`DropOldest`).
    expected: u64,
    /// The stream has yielded its terminal `Disconnected` (async `Stream`).
    #[cfg(feature = "async")]
    ended: bool,
    /// Envelopes taken from the queue so far.
    taken: u64,
    /// A message whose arrival revealed a gap: returned after the lag notice.
    pending: Option<Message<T>>,
}

impl<T> Subscriber<T> {
    pub(crate) fn new(
        shared: Arc<Shared<T>>,
        id: u64,
        rx: Receiver<Envelope<T>>,
        stats: Arc<Stats>,
        options: Options,
    ) -> Self {
        Subscriber {
            shared,
            id,
            rx,
            stats,
            options,
            expected: 0,
            taken: 0,
            #[cfg(feature = "async")]
            ended: false,
            pending: None,
        }
    }

    /// Runs one single-name operation and tells the interest hooks.
    pub(crate) fn op(&mut self, kind: Kind, name: &[u8]) -> Confirmation {
        // A subscriber removed by its policy (or created after the broker
        // closed) stays out of the registry: its stream has ended.
        if self.is_disconnected() {
            return Confirmation {
                kind,
                name: Some(name.to_vec()),
                count: 0,
            };
        }
        let mut state = self.shared.write();
        let (registry, id) = (&mut state.registry, self.id);
        let c = match kind {
            Kind::Subscribe => registry.subscribe(id, name),
            Kind::PSubscribe => registry.psubscribe(id, name),
            Kind::SSubscribe => registry.ssubscribe(id, name),
            Kind::PUnsubscribe => registry.punsubscribe(id, name),
            Kind::SUnsubscribe => registry.sunsubscribe(id, name),
            _ => registry.unsubscribe(id, name),
        };
        if c.interest_changed {
            announce(&state.hooks, kind, name);
        }
        c.into()
    }

    /// Runs an "unsubscribe all" of `kind` and tells the interest hooks.
    pub(crate) fn op_all(&mut self, kind: Kind) -> Vec<Confirmation> {
        let mut out = Vec::new();
        let mut state = self.shared.write();
        let State {
            registry, hooks, ..
        } = &mut *state;
        let mut confirm = |c: tidings_core::Confirmation<'_>| {
            if let (true, Some(name)) = (c.interest_changed, c.name) {
                announce(hooks, kind, name);
            }
            out.push(c.into());
        };
        match kind {
            Kind::PUnsubscribe => registry.punsubscribe_all(self.id, &mut confirm),
            Kind::SUnsubscribe => registry.sunsubscribe_all(self.id, &mut confirm),
            _ => registry.unsubscribe_all(self.id, &mut confirm),
        }
        out
    }

    fn is_disconnected(&self) -> bool {
        self.id == u64::MAX
            || self
                .stats
                .disconnected
                .load(std::sync::atomic::Ordering::Acquire)
    }

    subscription_methods!();

    pub(crate) fn member_counts(&self) -> tidings_core::Counts {
        self.shared.read().registry.counts(self.id)
    }

    /// This subscriber's counters.
    pub fn stats(&self) -> SubscriberStats {
        self.stats.snapshot(self.taken, self.rx.len())
    }

    /// The queue capacity, in messages.
    pub fn capacity(&self) -> usize {
        self.options.capacity
    }

    /// The overflow policy.
    pub fn policy(&self) -> Policy {
        self.options.policy
    }

    /// How long a blocking receive spins before it sleeps
    /// ([`Options::spin`]).
    pub fn spin(&self) -> Duration {
        self.options.spin
    }

    /// Number of messages waiting in the queue.
    pub fn len(&self) -> usize {
        self.rx.len() + usize::from(self.pending.is_some())
    }

    /// Whether no message is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn reason(&self) -> DisconnectReason {
        if self
            .stats
            .disconnected
            .load(std::sync::atomic::Ordering::Acquire)
        {
            DisconnectReason::Overflow {
                capacity: self.options.capacity,
            }
        } else {
            DisconnectReason::BrokerClosed
        }
    }

    /// Turns an envelope taken from [`receiver`](Self::receiver) into what it
    /// reveals, in stream order: a message kept back by an earlier
    /// [`RecvError::Lagged`] from [`recv`](Self::recv) or
    /// [`try_recv`](Self::try_recv) (if any), then
    /// [`RecvError::Lagged(n)`](RecvError::Lagged) if `n` messages were
    /// discarded just before this one (under [`Policy::DropOldest`]), then
    /// the envelope's message. Nothing is kept back afterwards, so a
    /// `select!` loop can go straight back to waiting.
    ///
    /// ```
    /// use crossbeam_channel::{select, unbounded};
    /// use tidings::{Broker, Options, Policy, RecvError};
    ///
    /// let broker = Broker::new();
    /// let mut sub = broker.subscriber_with(Options::new().capacity(2).policy(Policy::DropOldest));
    /// sub.subscribe("jobs");
    /// let (_shutdown_tx, shutdown) = unbounded::<()>();
    /// for job in 1..=3 {
    ///     broker.publish("jobs", job); // job 1 is overwritten
    /// }
    /// let mut seen = Vec::new();
    /// while seen.len() < 3 {
    ///     select! {
    ///         recv(sub.receiver()) -> envelope => {
    ///             seen.extend(sub.accept(envelope.unwrap()).map(|item| item.map(|m| *m.payload())));
    ///         }
    ///         recv(shutdown) -> _ => unreachable!(),
    ///     }
    /// }
    /// assert_eq!(seen, [Err(RecvError::Lagged(1)), Ok(2), Ok(3)]);
    /// ```
    pub fn accept(&mut self, envelope: Envelope<T>) -> Accepted<T> {
        let kept = self.pending.take().map(Ok);
        let (lag, message) = self.open(envelope);
        Accepted {
            items: [
                kept,
                lag.map(|n| Err(RecvError::Lagged(n))),
                Some(Ok(message)),
            ]
            .into_iter(),
        }
    }

    /// Checks an envelope's place in the stream: returns the number of
    /// messages discarded just before it, if any, and its message.
    fn open(&mut self, envelope: Envelope<T>) -> (Option<u64>, Message<T>) {
        self.taken += 1;
        let mut lag = None;
        if self.options.policy == Policy::DropOldest {
            let gap = envelope.seq.saturating_sub(self.expected);
            self.expected = envelope.seq + 1;
            lag = (gap > 0).then_some(gap);
        }
        (lag, envelope.message)
    }

    /// Receives one envelope's worth for `recv` and friends: the message, or
    /// a lag notice with the message kept for the next call.
    fn take(&mut self, envelope: Envelope<T>) -> Result<Message<T>, RecvError> {
        match self.open(envelope) {
            (Some(n), message) => {
                self.pending = Some(message);
                Err(RecvError::Lagged(n))
            }
            (None, message) => Ok(message),
        }
    }

    /// The underlying crossbeam receiver, to wait on several subscribers and
    /// channels at once with `crossbeam_channel::select!`. Pass what it
    /// yields to [`accept`](Self::accept), which detects loss.
    pub fn receiver(&self) -> &Receiver<Envelope<T>> {
        &self.rx
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
        if let Some(m) = self.pending.take() {
            return Ok(m);
        }
        let received = match self.poll_spinning(None) {
            Some(polled) => polled,
            None => self.rx.recv().map_err(|_| ()),
        };
        match received {
            Ok(envelope) => self.take(envelope),
            Err(()) => Err(RecvError::Disconnected(self.reason())),
        }
    }

    /// Polls the queue for up to [`Options::spin`] (or `limit`, if shorter)
    /// and returns what it found: an envelope, `Err(())` if the stream has
    /// ended, or `None` when the spin ran out (or is zero) with the queue
    /// empty.
    fn poll_spinning(&self, limit: Option<Duration>) -> Option<Result<Envelope<T>, ()>> {
        let spin = limit.map_or(self.options.spin, |l| l.min(self.options.spin));
        if spin.is_zero() {
            return None;
        }
        // A spin too long to represent never runs out before a message.
        let deadline = Instant::now().checked_add(spin);
        loop {
            for _ in 0..64 {
                match self.rx.try_recv() {
                    Ok(envelope) => return Some(Ok(envelope)),
                    Err(crossbeam_channel::TryRecvError::Disconnected) => return Some(Err(())),
                    Err(crossbeam_channel::TryRecvError::Empty) => std::hint::spin_loop(),
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return None;
            }
            // Between rounds, let whatever else wants this CPU run (on a
            // small machine, often the thread about to send): the receiver
            // stays runnable, so it needs no wake-up, and costs less.
            std::thread::yield_now();
        }
    }

    /// Returns a queued message without blocking.
    pub fn try_recv(&mut self) -> Result<Message<T>, TryRecvError> {
        if let Some(m) = self.pending.take() {
            return Ok(m);
        }
        match self.rx.try_recv() {
            Ok(envelope) => self.take(envelope).map_err(Into::into),
            Err(crossbeam_channel::TryRecvError::Empty) => Err(TryRecvError::Empty),
            Err(crossbeam_channel::TryRecvError::Disconnected) => {
                Err(TryRecvError::Disconnected(self.reason()))
            }
        }
    }

    /// Blocks for at most `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Message<T>, RecvTimeoutError> {
        if let Some(m) = self.pending.take() {
            return Ok(m);
        }
        let start = Instant::now();
        let received = match self.poll_spinning(Some(timeout)) {
            Some(Ok(envelope)) => Ok(envelope),
            Some(Err(())) => Err(crossbeam_channel::RecvTimeoutError::Disconnected),
            None => self
                .rx
                .recv_timeout(timeout.saturating_sub(start.elapsed())),
        };
        match received {
            Ok(envelope) => self.take(envelope).map_err(Into::into),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => Err(RecvTimeoutError::Timeout),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                Err(RecvTimeoutError::Disconnected(self.reason()))
            }
        }
    }

    /// A blocking iterator: yields every message and every lag notice, then
    /// the terminal [`RecvError::Disconnected`] once, then ends.
    pub fn iter(&mut self) -> Iter<'_, T> {
        Iter {
            sub: self,
            done: false,
        }
    }

    /// A non-blocking iterator over what is queued now (messages and lag
    /// notices); it ends when the queue is empty, after yielding a terminal
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
        for attempt in 0..2 {
            match self.try_recv() {
                Ok(m) => return Poll::Ready(Ok(m)),
                Err(TryRecvError::Lagged(n)) => return Poll::Ready(Err(RecvError::Lagged(n))),
                Err(TryRecvError::Disconnected(why)) => {
                    return Poll::Ready(Err(RecvError::Disconnected(why)));
                }
                Err(TryRecvError::Empty) if attempt == 0 => self.stats.wake.register(cx.waker()),
                Err(TryRecvError::Empty) => {}
            }
        }
        Poll::Pending
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
        // The state lock is released at the end of this statement, before
        // the removed queue (and a handler's function) is dropped.
        let removed = self.shared.write().remove(self.id);
        drop(removed);
        self.shared.subscriber_dropped();
    }
}

impl<T> fmt::Debug for Subscriber<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("options", &self.options)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// What one envelope reveals, from [`Subscriber::accept`]: an iterator over
/// at most three items in stream order.
pub struct Accepted<T> {
    items: std::array::IntoIter<Option<Result<Message<T>, RecvError>>, 3>,
}

impl<T: fmt::Debug + Sync> fmt::Debug for Accepted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accepted")
            .field("items", &self.items)
            .finish()
    }
}

impl<T> Iterator for Accepted<T> {
    type Item = Result<Message<T>, RecvError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.items.by_ref().flatten().next()
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
