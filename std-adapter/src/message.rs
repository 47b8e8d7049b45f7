//! What a subscriber receives: [`Message`], and the receive errors that make
//! loss and disconnection visible.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

/// Which command a message came from, named as Redis names the reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessageKind {
    /// `message`: published to a channel the subscriber holds exactly.
    Message,
    /// `pmessage`: published to a channel matching a pattern it holds.
    PMessage,
    /// `smessage`: published with `spublish` to a shard channel it holds.
    SMessage,
}

impl MessageKind {
    /// The name Redis uses in the reply: `"message"`, `"pmessage"` or
    /// `"smessage"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            MessageKind::Message => "message",
            MessageKind::PMessage => "pmessage",
            MessageKind::SMessage => "smessage",
        }
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One delivery: the channel, the matching pattern for a `pmessage`, and the
/// payload.
///
/// A message is written **once per route**: one publish builds one `Message`
/// for the subscribers of the exact channel and one for the subscribers of
/// each matching pattern, and every subscriber on that route receives a
/// handle to the same allocation. So a delivery costs a reference count, not
/// a copy of the payload, whatever the payload type; `Clone` is cheap too.
/// The channel and pattern names are shared with the registry (`Arc<[u8]>`).
///
/// Since subscribers on different threads share the payload, reading it in
/// place ([`payload`](Self::payload), and `Debug`, `PartialEq`, `Hash`) needs
/// `T: Sync`. Any `T: Send` payload can still be carried:
/// [`into_payload`](Self::into_payload) clones it under a lock while other
/// handles share it, so no two threads ever touch a payload that is not
/// `Sync` at once.
///
/// ```
/// use std::sync::Arc;
/// use tidings::Broker;
///
/// let broker = Broker::new();
/// let (mut a, mut b) = (broker.subscriber(), broker.subscriber());
/// a.subscribe("news");
/// b.subscribe("news");
/// broker.publish("news", vec![1u8, 2, 3]);
/// let (ma, mb) = (a.recv().unwrap(), b.recv().unwrap());
/// // One payload, shared by both deliveries.
/// assert!(std::ptr::eq(ma.payload(), mb.payload()));
/// // Taking it out clones only while another handle still shares it.
/// assert_eq!(ma.into_payload(), [1, 2, 3]);
/// assert_eq!(mb.into_payload(), [1, 2, 3]);
/// ```
pub struct Message<T> {
    inner: Arc<Inner<T>>,
}

/// What every delivery of one route shares.
struct Inner<T> {
    kind: MessageKind,
    channel: Arc<[u8]>,
    pattern: Option<Arc<[u8]>>,
    /// Held while `into_payload` clones a shared payload.
    cloning: Mutex<()>,
    /// Private to this module; see the `Sync` impl for who may touch it.
    payload: T,
}

// SAFETY:
// 1. `Inner<T>` is shared between threads through `Arc`: every delivery of a
//    route holds a handle. Sharing it is sound if no two threads can use the
//    payload at once unless `T: Sync`. The payload is reached only here:
//    a. `Message::payload` and the `Debug`, `PartialEq` and `Hash` impls of
//       `Message` require `T: Sync`, so their shared `&T` is what `Sync`
//       allows.
//    b. `Message::into_payload` clones a payload still shared by another
//       handle only while holding `cloning`, so for any `T` the clones run
//       one at a time, each ordered after the last by the mutex's
//       release/acquire, as `Mutex<T>` is `Sync` for `T: Send`.
//    c. The payload is moved out (`Arc::try_unwrap`) or dropped only through
//       the last handle, when no other access is possible; that moves it to
//       the thread holding that handle, which `T: Send` allows.
// 2. `payload` is a private field and this module has no other access to it.
#[allow(unsafe_code)]
unsafe impl<T: Send> Sync for Inner<T> {}

impl<T> Message<T> {
    /// Builds the message of one route.
    pub(crate) fn new(
        kind: MessageKind,
        channel: Arc<[u8]>,
        pattern: Option<Arc<[u8]>>,
        payload: T,
    ) -> Message<T> {
        Message {
            inner: Arc::new(Inner {
                kind,
                channel,
                pattern,
                cloning: Mutex::new(()),
                payload,
            }),
        }
    }

    /// Which command produced this message.
    pub fn kind(&self) -> MessageKind {
        self.inner.kind
    }

    /// The channel the message was published to.
    pub fn channel(&self) -> &[u8] {
        &self.inner.channel
    }

    /// The channel name as a shared allocation (cloning it is cheap).
    pub fn channel_shared(&self) -> &Arc<[u8]> {
        &self.inner.channel
    }

    /// The pattern that matched, for a `pmessage`; `None` otherwise.
    pub fn pattern(&self) -> Option<&[u8]> {
        self.inner.pattern.as_deref()
    }

    /// The pattern name as a shared allocation, for a `pmessage`.
    pub fn pattern_shared(&self) -> Option<&Arc<[u8]>> {
        self.inner.pattern.as_ref()
    }

    /// The payload, shared with every other delivery of the same route.
    pub fn payload(&self) -> &T
    where
        T: Sync,
    {
        &self.inner.payload
    }

    /// Takes the payload out of the message: moved out if this is the last
    /// handle to it, otherwise cloned under a lock (see the type's docs).
    /// To read a `Sync` payload, [`payload`](Self::payload) costs nothing.
    pub fn into_payload(self) -> T
    where
        T: Clone,
    {
        match Arc::try_unwrap(self.inner) {
            Ok(inner) => inner.payload,
            Err(shared) => {
                let _one_at_a_time = shared
                    .cloning
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                shared.payload.clone()
            }
        }
    }

    /// Whether `self` and `other` are handles to the same delivery (the same
    /// route of the same publish, or clones of one message).
    pub fn same_delivery(&self, other: &Message<T>) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl<T> Clone for Message<T> {
    /// Another handle to the same message; the payload is not cloned.
    fn clone(&self) -> Self {
        Message {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T: PartialEq + Sync> PartialEq for Message<T> {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (&*self.inner, &*other.inner);
        Arc::ptr_eq(&self.inner, &other.inner)
            || (a.kind == b.kind
                && a.channel == b.channel
                && a.pattern == b.pattern
                && a.payload == b.payload)
    }
}

impl<T: Eq + Sync> Eq for Message<T> {}

impl<T: Hash + Sync> Hash for Message<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let inner = &*self.inner;
        inner.kind.hash(state);
        inner.channel.hash(state);
        inner.pattern.hash(state);
        inner.payload.hash(state);
    }
}

impl<T: fmt::Debug + Sync> fmt::Debug for Message<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        let mut d = f.debug_struct("Message");
        d.field("kind", &inner.kind)
            .field("channel", &inner.channel.escape_ascii().to_string());
        if let Some(p) = &inner.pattern {
            d.field("pattern", &p.escape_ascii().to_string());
        }
        d.field("payload", &inner.payload).finish()
    }
}

/// Why a subscriber's stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// Every [`Broker`](crate::Broker) handle was dropped, so nothing more
    /// can be published. Messages queued before that were all received.
    BrokerClosed,
    /// The subscriber's queue overflowed under
    /// [`Policy::Disconnect`](crate::Policy::Disconnect), Redis's
    /// `client-output-buffer-limit` behaviour: it was removed from every
    /// channel, pattern and shard channel. Messages queued before the
    /// overflow were all received; the one that overflowed was not.
    Overflow {
        /// The queue capacity that was exceeded.
        capacity: usize,
    },
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DisconnectReason::BrokerClosed => f.write_str("every broker handle was dropped"),
            DisconnectReason::Overflow { capacity } => write!(
                f,
                "disconnected for falling behind: the queue of {capacity} messages overflowed"
            ),
        }
    }
}

/// An error from [`Subscriber::recv`](crate::Subscriber::recv).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecvError {
    /// This many messages were discarded for this subscriber just before the
    /// next one it will receive (under
    /// [`Policy::DropOldest`](crate::Policy::DropOldest)). Receiving again
    /// continues with that next message.
    Lagged(u64),
    /// The stream has ended and nothing is queued: no message will ever
    /// arrive. This is terminal.
    Disconnected(DisconnectReason),
}

/// An error from [`Subscriber::try_recv`](crate::Subscriber::try_recv).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TryRecvError {
    /// No message is queued right now.
    Empty,
    /// See [`RecvError::Lagged`].
    Lagged(u64),
    /// See [`RecvError::Disconnected`].
    Disconnected(DisconnectReason),
}

/// An error from [`Subscriber::recv_timeout`](crate::Subscriber::recv_timeout).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecvTimeoutError {
    /// No message arrived before the timeout.
    Timeout,
    /// See [`RecvError::Lagged`].
    Lagged(u64),
    /// See [`RecvError::Disconnected`].
    Disconnected(DisconnectReason),
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Lagged(n) => write!(f, "subscriber lagged: {n} messages were discarded"),
            RecvError::Disconnected(why) => write!(f, "subscriber disconnected: {why}"),
        }
    }
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryRecvError::Empty => f.write_str("no message is queued"),
            TryRecvError::Lagged(n) => RecvError::Lagged(*n).fmt(f),
            TryRecvError::Disconnected(why) => RecvError::Disconnected(*why).fmt(f),
        }
    }
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvTimeoutError::Timeout => f.write_str("timed out waiting for a message"),
            RecvTimeoutError::Lagged(n) => RecvError::Lagged(*n).fmt(f),
            RecvTimeoutError::Disconnected(why) => RecvError::Disconnected(*why).fmt(f),
        }
    }
}

impl std::error::Error for RecvError {}
impl std::error::Error for TryRecvError {}
impl std::error::Error for RecvTimeoutError {}

impl From<RecvError> for TryRecvError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Lagged(n) => TryRecvError::Lagged(n),
            RecvError::Disconnected(why) => TryRecvError::Disconnected(why),
        }
    }
}

impl From<RecvError> for RecvTimeoutError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Lagged(n) => RecvTimeoutError::Lagged(n),
            RecvError::Disconnected(why) => RecvTimeoutError::Disconnected(why),
        }
    }
}
