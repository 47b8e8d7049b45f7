//! What a subscriber receives: [`Message`], and the receive errors that make
//! loss and disconnection visible.

use std::fmt;
use std::sync::Arc;

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
/// The channel and pattern names are shared (`Arc<[u8]>`): a publish allocates
/// the channel name once, however many subscribers receive it, and pattern
/// names are shared with the registry. The payload is cloned once per
/// delivery, so use a cheaply cloned type such as `bytes::Bytes` or `Arc<_>`
/// for zero-copy fan-out.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Message<T> {
    pub(crate) kind: MessageKind,
    pub(crate) channel: Arc<[u8]>,
    pub(crate) pattern: Option<Arc<[u8]>>,
    pub(crate) payload: T,
}

impl<T> Message<T> {
    /// Which command produced this message.
    pub fn kind(&self) -> MessageKind {
        self.kind
    }

    /// The channel the message was published to.
    pub fn channel(&self) -> &[u8] {
        &self.channel
    }

    /// The channel name as a shared allocation (cloning it is cheap).
    pub fn channel_shared(&self) -> &Arc<[u8]> {
        &self.channel
    }

    /// The pattern that matched, for a `pmessage`; `None` otherwise.
    pub fn pattern(&self) -> Option<&[u8]> {
        self.pattern.as_deref()
    }

    /// The pattern name as a shared allocation, for a `pmessage`.
    pub fn pattern_shared(&self) -> Option<&Arc<[u8]>> {
        self.pattern.as_ref()
    }

    /// The payload.
    pub fn payload(&self) -> &T {
        &self.payload
    }

    /// Takes the payload out of the message.
    pub fn into_payload(self) -> T {
        self.payload
    }
}

impl<T: fmt::Debug> fmt::Debug for Message<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Message");
        d.field("kind", &self.kind)
            .field("channel", &self.channel.escape_ascii().to_string());
        if let Some(p) = &self.pattern {
            d.field("pattern", &p.escape_ascii().to_string());
        }
        d.field("payload", &self.payload).finish()
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
