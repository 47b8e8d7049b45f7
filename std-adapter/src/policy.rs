//! Per-subscriber bounded queues and what happens when one is full.
//!
//! Every subscriber owns a crossbeam channel holding at most its capacity
//! (preallocated up to [`Options::DEFAULT_CAPACITY`], grown with the backlog
//! above it; see [`Options::capacity`]). A publish that finds it full
//! applies the subscriber's [`Policy`]; whatever the policy, the loss is
//! counted in [`SubscriberStats`] and the broker's [`Metrics`](crate::Metrics),
//! and [`Policy::DropOldest`] and [`Policy::Disconnect`] also tell the
//! subscriber in its stream. Nothing here ever grows without bound.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crossbeam_channel::{Receiver, SendTimeoutError, Sender, TrySendError};

use crate::message::Message;

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
    /// follows, and then continues with that message.
    DropOldest,
    /// Make the publisher wait up to `timeout` for room, then discard the new
    /// message and count it in [`SubscriberStats::dropped`]. The publisher
    /// waits without holding the registry lock, so subscribing and publishing
    /// to other channels continue meanwhile; publishes to channels that share
    /// its ordering stripe wait behind it, which is what keeps one order per
    /// channel.
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
/// let sub = broker.subscriber_with(Options::new().capacity(16).policy(Policy::Block { timeout: Duration::from_millis(5) }));
/// assert_eq!(sub.capacity(), 16);
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
    /// let mut sub = broker.subscriber_with(Options::new().capacity(1 << 20).policy(Policy::DropNewest));
    /// sub.subscribe("ticks");
    /// for i in 0..3 {
    ///     broker.publish("ticks", i);
    /// }
    /// assert_eq!(sub.len(), 3);
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
    /// are reported exactly as without it. `select!` over
    /// [`receiver`](crate::Subscriber::receiver) and the `async` receives
    /// never spin.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tidings::{Broker, Options};
    ///
    /// let broker = Broker::new();
    /// let mut sub = broker.subscriber_with(Options::new().spin(Duration::from_micros(100)));
    /// sub.subscribe("ticks");
    /// broker.publish("ticks", 1);
    /// assert_eq!(*sub.recv().unwrap().payload(), 1);
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

/// A message in a subscriber's queue.
///
/// Obtained from [`Subscriber::receiver`](crate::Subscriber::receiver) when
/// selecting over several channels; turn it into a message with
/// [`Subscriber::accept`](crate::Subscriber::accept), which also detects loss.
pub struct Envelope<T> {
    /// Position in this subscriber's stream (used by `DropOldest` queues to
    /// reveal gaps; 0 for other policies).
    pub(crate) seq: u64,
    pub(crate) message: Message<T>,
}

impl<T> fmt::Debug for Envelope<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

/// A subscriber's counters, readable at any time from
/// [`Subscriber::stats`](crate::Subscriber::stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct SubscriberStats {
    /// Messages put in the queue.
    pub delivered: u64,
    /// New messages discarded by [`Policy::DropNewest`], by a
    /// [`Policy::Block`] timeout, or because the subscriber was already
    /// disconnected.
    pub dropped: u64,
    /// Queued messages discarded by [`Policy::DropOldest`].
    pub lagged: u64,
    /// Whether [`Policy::Disconnect`] removed this subscriber.
    pub disconnected: bool,
}

/// The shared, atomic form of [`SubscriberStats`].
#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) dropped: AtomicU64,
    pub(crate) lagged: AtomicU64,
    pub(crate) disconnected: AtomicBool,
    /// Wakes an async receiver when the queue changes.
    #[cfg(feature = "async")]
    pub(crate) wake: crate::wake::Wake,
}

impl Stats {
    /// Tells an async receiver, if one waits, that the queue changed.
    #[inline]
    pub(crate) fn notify(&self) {
        #[cfg(feature = "async")]
        self.wake.notify();
    }

    /// The counters, given how many envelopes the subscriber has taken from
    /// its queue and how many are queued now. Publishers count only losses;
    /// deliveries are derived, so the delivery path does no per-subscriber
    /// counting: every message put in the queue has been taken, is still
    /// queued, or was discarded by `DropOldest` (counted in `lagged`).
    pub(crate) fn snapshot(&self, taken: u64, queued: usize) -> SubscriberStats {
        let lagged = self.lagged.load(Ordering::Relaxed);
        SubscriberStats {
            delivered: taken + queued as u64 + lagged,
            dropped: self.dropped.load(Ordering::Relaxed),
            lagged,
            disconnected: self.disconnected.load(Ordering::Acquire),
        }
    }
}

/// What a non-blocking offer did.
pub(crate) enum Offer<T> {
    /// Queued.
    Delivered,
    /// Queued after discarding the oldest message.
    DeliveredLagged,
    /// Discarded by the policy.
    Dropped,
    /// The queue is full and the policy blocks: send it after releasing
    /// the registry lock.
    Wait(Envelope<T>),
    /// The queue overflowed under `Disconnect`: the subscriber must go.
    Overflowed,
}

/// Queues up to this many messages are preallocated; larger ones grow and
/// shrink with their backlog.
pub(crate) const PREALLOCATED_UP_TO: usize = Options::DEFAULT_CAPACITY;

/// Whether a queue with these options is an unbounded channel whose capacity
/// is enforced by its length rather than a preallocated bounded one.
///
/// A bounded crossbeam channel allocates every slot up front (24 bytes each
/// here): 786 KB for a subscriber with a 32,768-message limit that never
/// falls behind. Above [`PREALLOCATED_UP_TO`] the queue is a linked list of
/// 31-slot blocks instead, allocated as messages arrive and freed as they
/// are taken: memory follows the backlog, as Redis's output buffers do. It
/// costs a length check per delivery and a block allocation per 31
/// messages, which is why small queues keep the preallocated form. `Block`
/// always preallocates: its publishers wait on the bounded channel for room.
fn counted(options: Options) -> bool {
    options.capacity > PREALLOCATED_UP_TO && !matches!(options.policy, Policy::Block { .. })
}

/// What a [`Handler`](crate::Handler) runs for each message.
pub(crate) type HandlerFn<T> = Arc<dyn Fn(Message<T>) + Send + Sync>;

/// The publisher's side of one subscriber's queue.
pub(crate) struct Queue<T> {
    /// Set for a [`Handler`](crate::Handler): deliveries call it on the
    /// publishing thread instead of entering the channel, which stays empty.
    pub(crate) handler: Option<HandlerFn<T>>,
    tx: Sender<Envelope<T>>,
    /// Used by `DropOldest` to discard the oldest message. Other policies
    /// keep no receiver, so that dropping the subscriber disconnects the
    /// channel and a publisher waiting under `Block` returns at once.
    rx: Option<Receiver<Envelope<T>>>,
    pub(crate) options: Options,
    /// The channel is unbounded and grows with the backlog; the capacity is
    /// enforced by checking its length before each send (see [`counted`]).
    counted: bool,
    /// Next sequence number; held while a `DropOldest` queue is written so
    /// that sequence numbers enter the queue in order.
    seq: Mutex<u64>,
    /// Set once `Disconnect` removes the subscriber: later offers drop. Kept
    /// here rather than in `stats` so that the delivery path reads only the
    /// queue's own cache lines.
    closed: AtomicBool,
    pub(crate) stats: Arc<Stats>,
    /// Must stay the last field (fields drop in declaration order).
    _close_notice: CloseNotice,
}

/// Wakes an async receiver when the queue it belongs to is dropped. It is the
/// queue's last field, so it runs after the sending side has closed and the
/// receiver, once woken, sees the end of the stream.
struct CloseNotice(Arc<Stats>);

impl Drop for CloseNotice {
    fn drop(&mut self) {
        self.0.notify();
    }
}

impl<T> Queue<T> {
    pub(crate) fn new(
        options: Options,
        handler: Option<HandlerFn<T>>,
    ) -> (Queue<T>, Receiver<Envelope<T>>) {
        let counted = counted(options);
        let (tx, rx) = if counted {
            crossbeam_channel::unbounded()
        } else {
            crossbeam_channel::bounded(options.capacity)
        };
        let stats = Arc::new(Stats::default());
        let queue = Queue {
            handler,
            tx,
            rx: (options.policy == Policy::DropOldest).then(|| rx.clone()),
            options,
            counted,
            seq: Mutex::new(0),
            closed: AtomicBool::new(false),
            stats: Arc::clone(&stats),
            _close_notice: CloseNotice(stats),
        };
        (queue, rx)
    }

    /// Offers `message` without blocking, applying the policy if full.
    pub(crate) fn offer(&self, message: Message<T>) -> Offer<T> {
        if self.closed.load(Ordering::Relaxed) {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return Offer::Dropped;
        }
        if self.options.policy == Policy::DropOldest {
            return self.offer_drop_oldest(message);
        }
        let outcome = self.try_send(Envelope { seq: 0, message });
        match outcome {
            Ok(()) => {
                self.stats.notify();
                Offer::Delivered
            }
            Err(TrySendError::Full(envelope)) => match self.options.policy {
                Policy::Block { .. } => Offer::Wait(envelope),
                Policy::Disconnect => {
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    // Two publishers can overflow the same queue at once:
                    // only the first one disconnects it.
                    if self.closed.swap(true, Ordering::AcqRel) {
                        Offer::Dropped
                    } else {
                        self.stats.disconnected.store(true, Ordering::Release);
                        Offer::Overflowed
                    }
                }
                _ => {
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    Offer::Dropped
                }
            },
            // The receiving side is gone: the subscriber is being dropped.
            Err(TrySendError::Disconnected(_)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                Offer::Dropped
            }
        }
    }

    /// Sends without blocking; `Full` at the capacity, whichever the
    /// channel's flavour.
    #[inline]
    fn try_send(&self, envelope: Envelope<T>) -> Result<(), TrySendError<Envelope<T>>> {
        if self.counted && self.tx.len() >= self.options.capacity {
            return Err(TrySendError::Full(envelope));
        }
        self.tx.try_send(envelope)
    }

    fn offer_drop_oldest(&self, message: Message<T>) -> Offer<T> {
        let mut seq = self.seq.lock().unwrap_or_else(PoisonError::into_inner);
        let mut envelope = Envelope { seq: *seq, message };
        *seq += 1;
        let mut lagged = false;
        // Only this thread writes the queue now, and the subscriber only
        // removes: after discarding one message there is room.
        for _ in 0..2 {
            match self.try_send(envelope) {
                Ok(()) => {
                    self.stats.notify();
                    return if lagged {
                        Offer::DeliveredLagged
                    } else {
                        Offer::Delivered
                    };
                }
                Err(TrySendError::Full(back)) => {
                    envelope = back;
                    if self.rx.as_ref().is_some_and(|rx| rx.try_recv().is_ok()) {
                        self.stats.lagged.fetch_add(1, Ordering::Relaxed);
                        lagged = true;
                    }
                }
                Err(TrySendError::Disconnected(_)) => break,
            }
        }
        self.stats.dropped.fetch_add(1, Ordering::Relaxed);
        Offer::Dropped
    }

    /// Sends a message the policy waits for (after `Offer::Wait`). Returns
    /// whether it was queued.
    pub(crate) fn wait(&self, envelope: Envelope<T>) -> bool {
        let timeout = match self.options.policy {
            Policy::Block { timeout } => timeout,
            _ => Duration::ZERO,
        };
        match self.tx.send_timeout(envelope, timeout) {
            Ok(()) => {
                self.stats.notify();
                true
            }
            Err(SendTimeoutError::Timeout(_) | SendTimeoutError::Disconnected(_)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }
}
