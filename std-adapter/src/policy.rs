//! A subscriber's settings: its capacity, and what happens when it is full.
//!
//! Every subscriber holds at most its capacity of undelivered messages. A
//! publish that finds it full applies the subscriber's [`Policy`]; whatever
//! the policy, the loss is counted in [`SubscriberStats`] and the broker's
//! [`Metrics`](crate::Metrics), and [`Policy::DropOldest`] and
//! [`Policy::Disconnect`] also tell the subscriber in its stream. Nothing
//! here ever grows without bound, and nothing is allocated before it is
//! needed: see [`Options::capacity`].

use std::fmt;
use std::time::Duration;

/// What a publish does when a subscriber's queue is full.
///
/// The default is [`Policy::Disconnect`], Redis's own behaviour for a pub/sub
/// client that stops reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Policy {
    /// Discard the new message for this subscriber and count it in
    /// [`SubscriberStats::dropped`]. What is queued is kept.
    DropNewest,
    /// Discard the oldest queued message to make room, count it in
    /// [`SubscriberStats::lagged`], and tell the subscriber in-stream: its
    /// next receive returns [`RecvError::Lagged(n)`](crate::RecvError::Lagged),
    /// with `n` the number of messages discarded just before the message that
    /// follows, and then continues with that message. That message is taken
    /// with the notice (it can no longer be discarded, and no longer counts
    /// against the capacity), so the next receive returns exactly it.
    ///
    /// A `DropOldest` subscriber that holds one channel, one pattern or one
    /// shard channel reads that route's shared ring instead of a queue of
    /// its own (the fast path; see the crate docs): the behaviour is the
    /// same.
    DropOldest,
    /// Make the publisher wait up to `timeout` for room, then discard the new
    /// message and count it in [`SubscriberStats::dropped`]. The message's
    /// place in this subscriber's order is fixed when the publish reaches
    /// it; the publisher then waits holding no broker lock, so subscribing,
    /// unsubscribing, dropping handles and publishing all go on meanwhile.
    /// Only publishes that reach this same full subscriber wait too, each
    /// for its own message, in order. `Duration::MAX` waits for as long as
    /// it takes.
    Block {
        /// The longest a publish waits for this subscriber.
        timeout: Duration,
    },
    /// Redis's `client-output-buffer-limit`: remove the subscriber from every
    /// channel, pattern and shard channel, and end its stream. It receives
    /// what was queued, then
    /// [`RecvError::Disconnected(DisconnectReason::Overflow { .. })`](crate::DisconnectReason::Overflow).
    #[default]
    Disconnect,
}

/// Queue settings for a subscriber: capacity and overflow policy.
///
/// ```
/// use std::time::Duration;
/// use tidings::{Broker, Options, Policy};
///
/// let broker: Broker<u32> = Broker::new();
/// let sub = broker.subscriber_with(Options::new().capacity(16).policy(Policy::Block { timeout: Duration::from_millis(5) }))?;
/// assert_eq!(sub.capacity(), 16);
/// # Ok::<(), tidings::ConfigError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Options {
    pub(crate) capacity: usize,
    pub(crate) policy: Policy,
    pub(crate) spin: Duration,
}

impl Options {
    /// The defaults: capacity [`Options::DEFAULT_CAPACITY`],
    /// [`Policy::Disconnect`].
    pub const fn new() -> Options {
        Options {
            capacity: Options::DEFAULT_CAPACITY,
            policy: Policy::Disconnect,
            spin: Duration::ZERO,
        }
    }

    /// The default queue capacity, in messages.
    pub const DEFAULT_CAPACITY: usize = 1024;

    /// Sets the queue capacity in messages; it must be at least 1.
    ///
    /// **Memory.** A queue of up to [`DEFAULT_CAPACITY`](Self::DEFAULT_CAPACITY)
    /// messages is allocated whole when the subscriber is created (24 bytes a
    /// message). A larger one grows in blocks of 31 messages as its backlog
    /// does and gives them back as they are taken, so a large limit costs
    /// memory only while the subscriber actually falls behind, like Redis's
    /// output buffers. A [`Policy::Block`] queue is always allocated whole.
    ///
    /// **Exactness.** The capacity is exact for one publishing thread, and for
    /// any number of them when the queue is preallocated or its policy is
    /// [`Policy::DropOldest`] or [`Policy::Block`]. A larger
    /// [`Policy::Disconnect`] or [`Policy::DropNewest`] queue checks its length
    /// before each message, so publishers on different channels that reach it
    /// at the same instant may each add one message past the capacity.
    ///
    /// ```
    /// use tidings::{Broker, Options, Policy};
    ///
    /// let broker = Broker::new();
    /// // A generous limit, like Redis's 32 MB for pub/sub clients: it costs
    /// // nothing until this subscriber falls behind.
    /// let mut sub = broker.subscriber_with(Options::new().capacity(1 << 20).policy(Policy::DropNewest))?;
    /// sub.subscribe("ticks");
    /// for i in 0..3 {
    ///     broker.publish("ticks", i);
    /// }
    /// assert_eq!(sub.len(), 3);
    /// # Ok::<(), tidings::ConfigError>(())
    /// ```
    pub const fn capacity(mut self, capacity: usize) -> Options {
        self.capacity = capacity;
        self
    }

    /// Sets the overflow policy.
    pub const fn policy(mut self, policy: Policy) -> Options {
        self.policy = policy;
        self
    }

    /// Sets how long a blocking receive ([`recv`](crate::Subscriber::recv),
    /// [`recv_timeout`](crate::Subscriber::recv_timeout),
    /// [`iter`](crate::Subscriber::iter)) polls the queue on its own CPU
    /// before it sleeps; zero, the default, sleeps at once.
    ///
    /// Spinning trades CPU for latency: a message that arrives while the
    /// receiver spins is taken without the wake-up of a sleeping thread,
    /// which costs tens of microseconds on a busy or virtual machine. The
    /// receiver polls in short rounds and yields the CPU between them, so
    /// other runnable threads (often the ones about to send) still get it. Use
    /// it for a few latency-critical subscribers with a core to spare, not
    /// for thousands. Nothing else changes: order, loss and disconnection
    /// are reported exactly as without it. [`Subscriber::ready`](crate::Subscriber::ready)
    /// and the `async` receives never spin.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tidings::{Broker, Options};
    ///
    /// let broker = Broker::new();
    /// let mut sub = broker.subscriber_with(Options::new().spin(Duration::from_micros(100)))?;
    /// sub.subscribe("ticks");
    /// broker.publish("ticks", 1);
    /// assert_eq!(*sub.recv().unwrap().payload(), 1);
    /// # Ok::<(), tidings::ConfigError>(())
    /// ```
    pub const fn spin(mut self, spin: Duration) -> Options {
        self.spin = spin;
        self
    }

    pub(crate) fn validate(self) -> Result<Options, ConfigError> {
        if self.capacity == 0 {
            return Err(ConfigError::ZeroCapacity);
        }
        Ok(self)
    }
}

impl Default for Options {
    fn default() -> Self {
        Options::new()
    }
}

/// A queue setting that cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfigError {
    /// A queue must hold at least one message.
    ZeroCapacity,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::ZeroCapacity => f.write_str("queue capacity must be at least 1"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A subscriber's counters, readable at any time from
/// [`Subscriber::stats`](crate::Subscriber::stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct SubscriberStats {
    /// Messages delivered to this subscriber (received or waiting).
    pub delivered: u64,
    /// New messages discarded by [`Policy::DropNewest`], by a
    /// [`Policy::Block`] timeout, or because the subscriber was already
    /// disconnected.
    pub dropped: u64,
    /// Delivered messages discarded by [`Policy::DropOldest`] before this
    /// subscriber took them.
    pub lagged: u64,
    /// Messages waiting to be received.
    pub queued: u64,
    /// Whether [`Policy::Disconnect`] removed this subscriber.
    pub disconnected: bool,
}
