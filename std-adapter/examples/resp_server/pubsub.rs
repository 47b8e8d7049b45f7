//! Every use of the `tidings` API in the server, in one module, so that the
//! rest speaks only in this module's terms: a [`Bus`] to publish
//! [`Payload`]s on and introspect, a [`Member`] per subscribed connection,
//! [`Confirm`]ations and [`Delivery`]s.
//!
//! A member is a [`tidings::Handler`]: it has no queue, and each message
//! delivered to it runs a function on the thread that publishes. Only the
//! server's event loop publishes, so that function runs on the loop thread,
//! inside [`Bus::publish`]; it appends the message to a thread-local
//! delivery log and nothing else. Right after the publish, the loop drains
//! the log with [`Bus::deliveries`] and writes each message into its
//! connection's output. Deliveries of one route (the exact channel, or one
//! pattern) come together and share one `tidings::Message`, which
//! [`Message::same_delivery`] tells apart, so the caller encodes each route
//! once for all its subscribers.

use std::cell::RefCell;

use bytes::Bytes;
use tidings::{Broker, Handler, Message, Namespace};

/// A connection, as the delivery log names it: its slot in the server's
/// client table and its unique id (a slot is reused, an id never).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ClientKey {
    pub(crate) slot: usize,
    pub(crate) id: u64,
}

thread_local! {
    /// Deliveries made on this thread and not yet drained: appended by the
    /// members' handlers during a publish, emptied right after it.
    static LOG: RefCell<Vec<(ClientKey, Message<Payload>)>> = const { RefCell::new(Vec::new()) };
}

/// The longest payload kept inline.
const INLINE: usize = 38;

/// A message payload, as the broker carries it: a short one inline, so
/// that publishing it allocates nothing (a publish to nobody then costs no
/// allocation at all); a longer one in a shared buffer, which a large
/// message's subscribers then share in their outputs.
#[derive(Clone)]
pub(crate) enum Payload {
    Inline(u8, [u8; INLINE]),
    Shared(Bytes),
}

impl Payload {
    pub(crate) fn new(bytes: &[u8]) -> Payload {
        if bytes.len() <= INLINE {
            let mut inline = [0; INLINE];
            inline[..bytes.len()].copy_from_slice(bytes);
            Payload::Inline(bytes.len() as u8, inline)
        } else {
            Payload::Shared(Bytes::copy_from_slice(bytes))
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Payload::Inline(len, bytes) => &bytes[..usize::from(*len)],
            Payload::Shared(bytes) => bytes,
        }
    }

    /// The shared buffer, for a payload that has one.
    pub(crate) fn shared(&self) -> Option<&Bytes> {
        match self {
            Payload::Inline(..) => None,
            Payload::Shared(bytes) => Some(bytes),
        }
    }
}

/// The three namespaces a connection subscribes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Space {
    /// SUBSCRIBE / UNSUBSCRIBE.
    Channel,
    /// PSUBSCRIBE / PUNSUBSCRIBE.
    Pattern,
    /// SSUBSCRIBE / SUNSUBSCRIBE.
    Shard,
}

/// One of Redis's subscription confirmations: `(kind, name, count)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Confirm {
    /// The reply's first element: `subscribe`, `punsubscribe`, …
    pub(crate) kind: &'static str,
    /// The channel or pattern; `None` for an "unsubscribe all" that found
    /// nothing held.
    pub(crate) name: Option<Vec<u8>>,
    /// Channels plus patterns held afterwards, or shard channels for the
    /// shard kinds.
    pub(crate) count: usize,
}

/// The confirmation's kind word for an operation in a namespace.
pub(crate) fn confirm_kind(space: Space, subscribe: bool) -> &'static str {
    let ns = namespace(space);
    if subscribe {
        ns.subscribe_command()
    } else {
        ns.unsubscribe_command()
    }
}

fn namespace(space: Space) -> Namespace {
    match space {
        Space::Channel => Namespace::Channel,
        Space::Pattern => Namespace::Pattern,
        Space::Shard => Namespace::Shard,
    }
}

impl From<tidings::Confirmation> for Confirm {
    fn from(c: tidings::Confirmation) -> Self {
        Confirm {
            kind: c.command(),
            name: c.name.map(|n| n.to_vec()),
            count: c.count,
        }
    }
}

/// A route's message, read from the delivery log.
pub(crate) struct Delivery<'a> {
    /// `message`, `pmessage` or `smessage`.
    pub(crate) kind: &'static str,
    pub(crate) pattern: Option<&'a [u8]>,
    pub(crate) channel: &'a [u8],
    pub(crate) payload: &'a Payload,
}

/// The broker all connections share.
pub(crate) struct Bus {
    broker: Broker<Payload>,
}

impl Bus {
    pub(crate) fn new() -> Bus {
        Bus {
            broker: Broker::new(),
        }
    }

    /// `PUBLISH`: the number of deliveries. The deliveries wait in the log
    /// for [`deliveries`](Self::deliveries).
    pub(crate) fn publish(&self, channel: &[u8], payload: Payload) -> usize {
        self.broker.publish(channel, payload)
    }

    /// `SPUBLISH`, likewise.
    pub(crate) fn spublish(&self, channel: &[u8], payload: Payload) -> usize {
        self.broker.spublish(channel, payload)
    }

    /// Hands every delivery made on this thread since the last call to `f`,
    /// in delivery order: the connection, and, at the first delivery of
    /// each route, the route's message (`None` for the deliveries after it
    /// that share it). Nothing is left in the log.
    pub(crate) fn deliveries(&self, mut f: impl FnMut(ClientKey, Option<&Delivery<'_>>)) {
        // Take the log out so that `f` runs with no borrow held.
        let Some(mut log) = LOG.with(|log| {
            let mut log = log.borrow_mut();
            (!log.is_empty()).then(|| std::mem::take(&mut *log))
        }) else {
            return;
        };
        let mut previous: Option<&Message<Payload>> = None;
        for (client, message) in &log {
            if previous.is_some_and(|p| p.same_delivery(message)) {
                f(*client, None);
                continue;
            }
            previous = Some(message);
            let delivery = Delivery {
                kind: message.namespace().message_kind(),
                pattern: message.pattern(),
                channel: message.channel(),
                payload: message.payload(),
            };
            f(*client, Some(&delivery));
        }
        log.clear();
        // Keep the allocation for the next publish, unless one was huge.
        if log.capacity() <= 4096 {
            LOG.with(|slot| {
                let mut slot = slot.borrow_mut();
                if slot.is_empty() {
                    *slot = log;
                }
            });
        }
    }

    /// A subscriber for the connection `client`, holding nothing yet.
    pub(crate) fn member(&self, client: ClientKey) -> Member {
        let handler = self.broker.handler(move |message: Message<Payload>| {
            LOG.with(|log| log.borrow_mut().push((client, message)));
        });
        Member { handler }
    }

    /// `PUBSUB CHANNELS [pattern]`.
    pub(crate) fn channels(&self, pattern: Option<&[u8]>) -> Vec<Vec<u8>> {
        self.broker.channels(Namespace::Channel, pattern)
    }

    /// `PUBSUB SHARDCHANNELS [pattern]`.
    pub(crate) fn shard_channels(&self, pattern: Option<&[u8]>) -> Vec<Vec<u8>> {
        self.broker.channels(Namespace::Shard, pattern)
    }

    /// `PUBSUB NUMSUB` for one channel.
    pub(crate) fn numsub(&self, channel: &[u8]) -> usize {
        self.broker.numsub(Namespace::Channel, channel)
    }

    /// `PUBSUB SHARDNUMSUB` for one shard channel.
    pub(crate) fn shard_numsub(&self, channel: &[u8]) -> usize {
        self.broker.numsub(Namespace::Shard, channel)
    }

    /// `PUBSUB NUMPAT`.
    pub(crate) fn numpat(&self) -> usize {
        self.broker.numpat()
    }
}

/// A connection's subscriptions. Dropping it unsubscribes from everything
/// at once: a later publish no longer counts it.
pub(crate) struct Member {
    handler: Handler<Payload>,
}

impl Member {
    /// SUBSCRIBE, PSUBSCRIBE or SSUBSCRIBE one name.
    pub(crate) fn subscribe(&mut self, space: Space, name: &[u8]) -> Confirm {
        let h = &mut self.handler;
        match space {
            Space::Channel => h.subscribe(name),
            Space::Pattern => h.psubscribe(name),
            Space::Shard => h.ssubscribe(name),
        }
        .into()
    }

    /// UNSUBSCRIBE, PUNSUBSCRIBE or SUNSUBSCRIBE one name.
    pub(crate) fn unsubscribe(&mut self, space: Space, name: &[u8]) -> Confirm {
        let h = &mut self.handler;
        match space {
            Space::Channel => h.unsubscribe(name),
            Space::Pattern => h.punsubscribe(name),
            Space::Shard => h.sunsubscribe(name),
        }
        .into()
    }

    /// The argument-less form: one confirmation per name held, or one
    /// without a name.
    pub(crate) fn unsubscribe_all(&mut self, space: Space) -> Vec<Confirm> {
        self.handler
            .unsubscribe_all(namespace(space))
            .into_iter()
            .map(Confirm::from)
            .collect()
    }

    /// Channels, patterns and shard channels held.
    pub(crate) fn counts(&self) -> (usize, usize, usize) {
        let c = self.handler.counts();
        (c.channels, c.patterns, c.shard_channels)
    }
}

/// Redis's glob match (for CONFIG GET's parameter patterns).
pub(crate) fn glob_matches(pattern: &[u8], text: &[u8]) -> bool {
    tidings::core::glob::matches(pattern, text)
}
