//! The Redis bridge (feature `redis`): brokers in several processes form one
//! bus through Redis. Every node fans out locally, and Redis carries events
//! between nodes (the Socket.IO Redis adapter's pattern); the user-facing
//! account (guarantees, failure behaviour, cluster routing, what
//! [`Bridge::publish`] returns) is on [`Bridge`].
//!
//! In short: a broker's own `publish` stays local, and [`Bridge::publish`]
//! and [`Bridge::spublish`] send to Redis and report Redis's answer or an
//! error, never a silent `0`; delivery stays at most once; the order of a
//! channel's messages is the one Redis gives them, the same on every node;
//! a subscription becomes active when Redis applies it ([`Bridge::sync`]
//! waits for that); during an outage publishes fail at once and are counted
//! as lost, and the bridge reconnects with backoff and resubscribes
//! everything held.
//!
//! # Design
//!
//! - The interest hook ([`Broker::watch_interest`]) tells the control thread
//!   ([`control`]) which names gained their first or lost their last local
//!   subscriber. The control thread *reconciles*: for each name it was told
//!   about, it reads from the broker's registry whether the name is held
//!   now, and makes each node's subscriptions follow. The registry, not the
//!   order of the notifications, decides, so a notification that arrives
//!   late (hooks run after the broker's locks are released, possibly on
//!   another thread) cannot undo a newer state; a reconnect is the same pass
//!   from empty; and [`Bridge::sync`] first compares the whole registry with
//!   what the bridge holds, so it covers changes whose notification has not
//!   arrived yet.
//! - One subscriber connection per Redis node ([`conn`]): raw RESP2 on a
//!   socket split between the control thread (writes subscription commands,
//!   encoded by the redis crate) and a reader thread (parses with the redis
//!   crate's parser and delivers into the broker: a `message` to the
//!   channel's exact subscribers, a `pmessage` to the pattern's, an
//!   `smessage` to the shard channel's). The redis crate's synchronous
//!   `PubSub` cannot subscribe while another thread blocks reading it, which
//!   is why this side is not built on it.
//! - One publisher connection per node, the redis crate's synchronous
//!   `Connection`, used by [`Bridge::publish`] and [`Bridge::spublish`].
//!   Publishing threads share it under a mutex; the control thread opens and
//!   replaces it.
//! - In a cluster, [`topology`] reads `CLUSTER SLOTS` and routes shard
//!   channels by [`tidings_core::slot::key_hash_slot`].
//!
//! The bridge holds the broker's shared state, not a [`Broker`] handle, so
//! it does not keep the broker open: dropping the last `Broker` handle ends
//! the local subscribers' streams as it does without a bridge.

mod conn;
mod control;
mod topology;

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, Sender};
use redis::{ErrorKind, Value};
use tidings_core::Namespace;

use crate::broker::Broker;
use crate::telemetry::BridgeTelemetry;
use control::Control;
use topology::{NodeAddr, route};

/// A name the broker's subscribers hold: its namespace and bytes.
type Key = (Namespace, Arc<[u8]>);

/// Connects a [`Broker`] to a Redis server or a Redis Cluster, so that
/// brokers in several processes (pods, nodes) form one bus. Feature `redis`.
///
/// While it lives, the channels, patterns and shard channels the broker's
/// subscribers hold are subscribed on Redis, and what Redis sends for them
/// is delivered to those subscribers. [`Bridge::publish`] and
/// [`Bridge::spublish`] publish through Redis, to every node. The broker's
/// own [`publish`](Broker::publish) stays local: it reaches this node's
/// subscribers and nobody else. Dropping the bridge closes its connections
/// and stops its threads.
///
/// # The pattern
///
/// This is the Socket.IO Redis adapter's pattern: **every node fans out
/// locally, and Redis carries events between nodes.** Each process keeps its
/// own broker and its own subscribers; the bridge holds on Redis exactly the
/// channels, patterns and shard channels its local subscribers hold, and no
/// more. A bridge publish goes to Redis, Redis sends it to every node that
/// holds a matching subscription (this one included, and any plain Redis
/// client), and each node's bridge hands it to its local subscribers.
///
/// ```text
///  node A (process)                    Redis                    node B (process)
///  ────────────────                ─────────────                ────────────────
///  bridge.publish("chat:1", m) ──▶ PUBLISH chat:1 m ──┬──▶ message chat:1 m ──▶ local subscribers of chat:1
///                                                     ├──▶ pmessage chat:* …  ──▶ local subscribers of chat:*
///  local subscribers ◀── message chat:1 m ◀───────────┤
///                                                     └──▶ any redis-cli / other-language SUBSCRIBE client
///  first local subscriber of "chat:1" ──▶ SUBSCRIBE chat:1        (last one leaves ──▶ UNSUBSCRIBE chat:1)
/// ```
///
/// ```no_run
/// use std::time::Duration;
/// use tidings::{Bridge, Broker, Namespace};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let broker: Broker<Vec<u8>> = Broker::new();
/// let bridge = Bridge::connect(&broker, "redis://127.0.0.1:6379")?;
///
/// let mut sub = broker.subscriber();
/// sub.subscribe("chat:lobby");
/// sub.psubscribe("chat:*");
/// // Interest reaches Redis asynchronously; wait until Redis holds it.
/// bridge.sync(Duration::from_secs(1))?;
///
/// // To Redis, and from there to every node and plain Redis client. The
/// // reply is Redis's: here at least 2, this node's two subscriptions on
/// // Redis (the channel and the pattern), whatever other nodes and clients
/// // hold. A failure is an `Err`, never `Ok(0)`.
/// let reached = bridge.publish("chat:lobby", b"hello")?;
/// assert!(reached >= 2);
/// let m = sub.recv()?; // when Redis sends it back
/// assert_eq!((m.namespace(), m.payload().as_slice()), (Namespace::Channel, &b"hello"[..]));
/// assert_eq!(sub.recv()?.namespace(), Namespace::Pattern);
///
/// // The broker's own publish is local: no other node sees it.
/// assert_eq!(broker.publish("chat:lobby", b"only here".to_vec()), 2);
///
/// assert_eq!((bridge.metrics().messages_out, bridge.metrics().lost), (1, 0));
/// # Ok(()) }
/// ```
///
/// # How it works
///
/// **Interest propagation.** The bridge watches the broker's interest
/// ([`Broker::watch_interest`]): when a channel, pattern or shard channel
/// gets its first local subscriber, the bridge sends `SUBSCRIBE`,
/// `PSUBSCRIBE` or `SSUBSCRIBE`; when the last one leaves (unsubscribe,
/// dropped subscriber, `Disconnect` policy), the matching unsubscribe. Ten
/// local subscribers of one channel are one subscription on Redis. The
/// broker's registry decides what Redis should hold: a notification only
/// tells the bridge which name to look at again, so notifications that
/// arrive late never undo a newer state.
///
/// **Publishing through Redis.** [`publish`](Bridge::publish) and
/// [`spublish`](Bridge::spublish) send `PUBLISH` and `SPUBLISH` to Redis on
/// a separate (non-pub/sub) connection and wait for Redis's reply. Local
/// subscribers receive the message when Redis delivers it back, like every
/// other node's. A Redis `message` reaches only the local exact subscribers
/// of its channel, a `pmessage` only the local subscribers of its pattern,
/// an `smessage` only the local shard subscribers. A subscriber holding
/// both the channel and a matching pattern receives both, as it would from
/// Redis, and nothing is delivered twice. Payloads cross Redis untouched,
/// so clients in any language interoperate both ways. A message given to
/// both [`Broker::publish`] and `Bridge::publish` reaches local subscribers
/// twice: once from each.
///
/// **What `publish` returns.** `Ok(n)` means Redis accepted the message;
/// `n` is Redis's own reply, the number of subscriptions on Redis it
/// reached: each bridged node counts once for its channel subscription and
/// once for each matching pattern its local subscribers hold (however many
/// local subscribers share them), and each plain Redis client as Redis
/// counts it. It does not count local subscribers: those receive the
/// message when Redis sends it back, which `publish` does not wait for.
/// `Ok(0)` therefore means Redis took the message and nobody was subscribed
/// to it. A node whose `SUBSCRIBE` Redis has not applied yet is not counted
/// and misses the message (see [`Bridge::sync`]). In a Redis Cluster,
/// Redis counts only the subscribers of the node that took the command:
/// for `SPUBLISH` that is the shard channel's owner, where every bridge
/// subscribes it, so the count is complete; for `PUBLISH` it is the
/// bridge's main node (see below), which counts every bridge with the same
/// first seed, but not plain clients of other nodes.
///
/// # Guarantees, and what changes
///
/// - **Still at most once.** Redis pub/sub is fire-and-forget: a message
///   published while a node is not subscribed on Redis (before its
///   `SUBSCRIBE` is applied, during an outage) never reaches that node.
///   Each message is delivered at most once per matching subscription;
///   nothing is replayed after a reconnect.
/// - **The order is Redis's.** Every node receives a channel's messages in
///   the one order Redis gave them, whichever node published them, so
///   bridge publishes from one thread arrive everywhere in that thread's
///   order. Redis Cluster orders each shard channel on its own node; there
///   is no order across shard channels of different slots.
/// - **A subscription becomes active when Redis applies it**, a moment
///   after `subscribe` returns (not "for every publish that starts after the
///   call returns", as for the broker's local publish). [`Bridge::sync`]
///   waits until Redis holds every interest change made before the call.
/// - **A bridge publish is a round trip** to Redis on the calling thread
///   (bounded by the I/O timeout); concurrent publishers share one
///   connection per Redis node. `Bridge` is `Sync`: share it with
///   `Arc` or scoped threads.
///
/// # Failure behaviour
///
/// - **Publishes never block forever and never fail silently.** While a
///   node is down, a publish routed to it fails at once with
///   [`BridgeError::Disconnected`] (nothing was sent); if Redis refuses the
///   command, does not answer within the I/O timeout, or the connection
///   breaks mid-command, it fails with [`BridgeError::Failed`] (the message
///   may or may not have been published). Every failure is counted in
///   [`BridgeMetrics::lost`], every success in
///   [`BridgeMetrics::messages_out`]. A failed message is not queued for
///   later: retrying is the caller's decision (`publish` borrows nothing it
///   keeps, so pass `&payload` to keep it for a retry).
/// - **Reconnect and resubscribe.** When a connection breaks, Redis stops
///   answering the heartbeat `PING` within the I/O timeout, or Redis replies
///   with an error on a subscriber connection, the bridge closes that node's
///   connections and reconnects with exponential backoff (with jitter) from
///   [`BridgeBuilder::backoff`]'s minimum to its maximum. On reconnect it
///   subscribes everything the local subscribers hold *now*, so changes
///   made during the outage are not lost either. Messages published on
///   Redis during the outage are not seen by this node.
/// - **Slow local subscribers.** Deliveries run on the connection's reader
///   thread and follow each subscriber's [`Policy`](crate::Policy). With
///   [`Policy::Block`](crate::Policy::Block), a full queue stalls the reader
///   (and so every subscriber of that node's connection) for up to the
///   timeout; if that makes Redis's output buffer overflow, Redis
///   disconnects the bridge and it reconnects as above.
/// - **Knowing what may have been missed** ([`Bridge::connection_events`]):
///   a [`ConnectionEvent::Lost`] when a connection is lost, and a
///   [`ConnectionEvent::Resubscribed`] once Redis has confirmed every
///   subscription again. Between the two, messages may have been missed;
///   whatever depends on seeing every message (a cache invalidated by
///   them) resynchronizes on these events instead of polling.
/// - **Metrics** ([`Bridge::metrics`]): whether every connection is up,
///   reconnects and disconnects, messages in and out, local deliveries, and
///   lost publishes; with the `metrics` feature, also reported through the
///   `metrics` facade as `tidings_bridge_*` (see "Crate features" in the
///   crate docs). [`Bridge::last_error`] says what went wrong last.
///
/// # Redis Cluster
///
/// [`Bridge::connect_cluster`] takes one or more seed nodes and reads the
/// masters and their slots with `CLUSTER SLOTS`. Shard channels use Redis 7
/// sharded pub/sub: `SSUBSCRIBE` and `SPUBLISH` go to the master that owns
/// the channel's key hash slot ([`tidings_core::slot::key_hash_slot`], hash
/// tags included), over one subscriber and one publisher connection per
/// master. Channels and patterns live on one node, the *main* node (the
/// first seed if it is a master): the cluster bus propagates `PUBLISH` to
/// every node. The slot map is read again periodically
/// ([`BridgeBuilder::topology_refresh`]) and whenever Redis answers `MOVED`;
/// a shard channel whose slot moved is resubscribed on its new owner (its
/// old connection is closed first, so nothing arrives twice). A publish
/// that Redis answers with `MOVED` fails; it is not retried on the new
/// owner.
///
/// # Payloads
///
/// The bridge publishes bytes (`impl AsRef<[u8]>`: a `Vec<u8>`,
/// `bytes::Bytes`, a `&str`, the broker's own payload type or a reference
/// to it) and builds the broker's payloads from the bytes Redis delivers,
/// so the broker's `T` must be `From<Vec<u8>>` (for example `Vec<u8>` or
/// `bytes::Bytes`, moved in without a copy), plus `Clone + Send + Sync +
/// 'static` for the broker and the bridge's threads. The bridge itself has
/// no type parameter.
///
/// # Threads and connections
///
/// One control thread keeps the interest set, writes subscription commands
/// and runs the timers; each Redis node has one subscriber connection, read
/// by a thread of its own, and one publisher connection, used by the
/// publishing threads. No async runtime is involved. Dropping the
/// [`Bridge`] (or [`Bridge::shutdown`]) closes every connection (so Redis
/// drops the bridge's subscriptions) and joins the threads. The bridge does
/// not keep the broker open: when its last [`Broker`] handle is dropped,
/// local subscribers end as they do without a bridge, and the next
/// [`Bridge::sync`] leaves Redis.
pub struct Bridge {
    shared: Arc<Shared>,
    /// The broker's [`InterestWatch`](crate::InterestWatch): dropping it
    /// removes the hook.
    watch: Option<Box<dyn Any + Send + Sync>>,
    control: Option<JoinHandle<()>>,
}

impl Bridge {
    /// A builder, for timeouts, backoff and cluster settings.
    pub fn builder() -> BridgeBuilder {
        BridgeBuilder::default()
    }

    /// Bridges `broker` to the standalone Redis server at `url`
    /// (`redis://[[user]:password@]host[:port][/db]` over plain TCP, or on
    /// Unix a Unix socket: `unix:///path/redis.sock`, with `?pass=…` if
    /// needed), with the default settings. Returns once connected, or the
    /// reason it could not connect.
    pub fn connect<T>(broker: &Broker<T>, url: &str) -> Result<Bridge, BridgeError>
    where
        T: Clone + Send + Sync + 'static + From<Vec<u8>>,
    {
        Bridge::builder().server(url).start(broker)
    }

    /// Bridges `broker` to a Redis Cluster, discovered from `seeds`
    /// (`host:port` or `redis://…` addresses of any of its nodes; the
    /// credentials of the first apply to every node).
    pub fn connect_cluster<T, I, S>(broker: &Broker<T>, seeds: I) -> Result<Bridge, BridgeError>
    where
        T: Clone + Send + Sync + 'static + From<Vec<u8>>,
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Bridge::builder().cluster(seeds).start(broker)
    }

    /// `PUBLISH channel payload` on Redis: every node whose local
    /// subscribers hold `channel` or a matching pattern receives it (this
    /// node included, when Redis sends it back), and so does every plain
    /// Redis client subscribed to it.
    ///
    /// Returns `Ok(n)` once Redis has accepted the message, with Redis's
    /// reply `n`: the number of subscriptions on Redis it reached, one per
    /// bridged node and channel or matching pattern held, however many local
    /// subscribers share it (see [What `publish`
    /// returns](Bridge#how-it-works)). `Ok(0)` means nobody was subscribed.
    /// Blocks for one round trip to Redis, at most the I/O timeout.
    ///
    /// # Errors
    ///
    /// [`BridgeError::Disconnected`] if the node that takes the message is
    /// down (nothing was sent), [`BridgeError::Failed`] if Redis refused
    /// the command, did not answer within the I/O timeout or the connection
    /// broke (the message may or may not have been published). Either way
    /// the failure is counted in [`BridgeMetrics::lost`], and the message is
    /// not retried.
    ///
    /// ```no_run
    /// # fn main() -> Result<(), tidings::BridgeError> {
    /// # let broker: tidings::Broker<Vec<u8>> = tidings::Broker::new();
    /// let bridge = tidings::Bridge::connect(&broker, "redis://127.0.0.1:6379")?;
    /// let event = br#"{"user":42}"#.to_vec();
    /// match bridge.publish("user:42", &event) {
    ///     Ok(0) => println!("Redis took it; nobody listens on user:42"),
    ///     Ok(n) => println!("Redis sent it to {n} subscriptions"),
    ///     Err(e) => eprintln!("not published, retry later: {e}"), // `event` is still ours
    /// }
    /// # Ok(()) }
    /// ```
    pub fn publish(
        &self,
        channel: impl AsRef<[u8]>,
        payload: impl AsRef<[u8]>,
    ) -> Result<usize, BridgeError> {
        self.shared
            .publish(Namespace::Channel, channel.as_ref(), payload.as_ref())
    }

    /// `SPUBLISH shardchannel payload` on Redis, sent to the node that owns
    /// the channel's slot in a cluster: every node whose local subscribers
    /// hold the shard channel receives it. Returns Redis's reply, the
    /// number of shard subscriptions on Redis it reached; errors as for
    /// [`publish`](Bridge::publish), and counted the same way.
    pub fn spublish(
        &self,
        channel: impl AsRef<[u8]>,
        payload: impl AsRef<[u8]>,
    ) -> Result<usize, BridgeError> {
        self.shared
            .publish(Namespace::Shard, channel.as_ref(), payload.as_ref())
    }

    /// The bridge's counters.
    pub fn metrics(&self) -> BridgeMetrics {
        let c = &self.shared.counters;
        BridgeMetrics {
            connected: c.connected.load(Ordering::Relaxed),
            reconnects: c.reconnects.load(Ordering::Relaxed),
            disconnects: c.disconnects.load(Ordering::Relaxed),
            messages_in: c.messages_in.load(Ordering::Relaxed),
            deliveries: c.deliveries.load(Ordering::Relaxed),
            messages_out: c.messages_out.load(Ordering::Relaxed),
            lost: c.lost.load(Ordering::Relaxed),
        }
    }

    /// Whether every connection to every Redis node is up.
    pub fn is_connected(&self) -> bool {
        self.shared.counters.connected.load(Ordering::Relaxed)
    }

    /// The last connection problem, as text, if there was one.
    pub fn last_error(&self) -> Option<String> {
        self.shared
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Waits until Redis holds every interest change made on the broker
    /// before this call (each `SUBSCRIBE` and unsubscribe has been applied
    /// by Redis) and every node is connected, or until `timeout` passes
    /// ([`BridgeError::Timeout`]).
    ///
    /// After it returns `Ok`, a message published anywhere through Redis
    /// reaches the local subscriptions made before the call (and still
    /// held), and no longer reaches the ones removed before it. That holds
    /// even for a change whose interest notification has not reached the
    /// bridge yet (hooks may run just after the call that made the change
    /// returned): the bridge compares the broker's whole registry with what
    /// it holds on Redis, so a call costs a pass over the names held. It is
    /// meant for startup, tests and the moments a caller must know, not for
    /// every message.
    pub fn sync(&self, timeout: Duration) -> Result<(), BridgeError> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        let deadline = Instant::now()
            .checked_add(timeout)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365));
        self.shared
            .events
            .send(Event::Sync { reply, deadline })
            .map_err(|_| BridgeError::Closed)?;
        // The control thread answers at the deadline at the latest; the
        // margin only covers its wake-up.
        match rx.recv_timeout(timeout.saturating_add(Duration::from_secs(1))) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(BridgeError::Timeout),
            Err(RecvTimeoutError::Disconnected) => Err(BridgeError::Closed),
        }
    }

    /// A channel of this bridge's connection events: [`ConnectionEvent::Lost`]
    /// when a Redis node's connection is lost (from then on, messages for
    /// the subscriptions held through it may be missed), and
    /// [`ConnectionEvent::Resubscribed`] once the bridge has reconnected
    /// and Redis has confirmed every subscription again (as
    /// [`Bridge::sync`] waits for: the `SUBSCRIBE`s are applied, so what is
    /// published from then on arrives).
    ///
    /// This is how a node learns that it may have missed messages: Redis
    /// pub/sub is at most once, and nothing published during an outage is
    /// replayed. A cache invalidated by messages, for example, flushes on
    /// `Lost` and caches again after `Resubscribed` (see the
    /// `cache_invalidation` example).
    ///
    /// - **Starts from the picture.** The receiver first gets a `Lost` for
    ///   every node lost and not yet resubscribed when the bridge takes it
    ///   (at once, on its control thread), then every event from then on,
    ///   in order. Each `Lost` is followed by a `Resubscribed` of the same
    ///   node unless the bridge stops first; a node lost again before then
    ///   is reported `Lost` again, with one `Resubscribed` at the end.
    /// - **Conservative.** `Resubscribed` is sent once every node is
    ///   connected and has confirmed (in a cluster, a node's subscriptions
    ///   may move to other nodes when slots move, or when it leaves the
    ///   cluster, which is reported as its `Lost`).
    /// - **Never blocks the bridge.** Events are sent on an unbounded
    ///   channel (a few per outage); no user code runs on the bridge's
    ///   threads. A receiver may be dropped at any time. When the bridge
    ///   stops, the channel disconnects.
    ///
    /// ```no_run
    /// use tidings::{Bridge, Broker, ConnectionEvent};
    ///
    /// # fn main() -> Result<(), tidings::BridgeError> {
    /// let broker: Broker<Vec<u8>> = Broker::new();
    /// let bridge = Bridge::connect(&broker, "redis://127.0.0.1:6379")?;
    /// let events = bridge.connection_events();
    /// std::thread::spawn(move || {
    ///     for event in events {
    ///         match event {
    ///             ConnectionEvent::Lost { node, why } => eprintln!("{node} lost ({why}): messages may be missed"),
    ///             ConnectionEvent::Resubscribed { node } => eprintln!("{node} back, every subscription confirmed"),
    ///             _ => {}
    ///         }
    ///     }
    /// });
    /// # Ok(()) }
    /// ```
    pub fn connection_events(&self) -> crossbeam_channel::Receiver<ConnectionEvent> {
        let (tx, rx) = crossbeam_channel::unbounded();
        // If the control thread is gone, `tx` is dropped with the event and
        // the receiver reads as disconnected.
        let _ = self.shared.events.send(Event::Watch(tx));
        rx
    }

    /// Stops the bridge: the same as dropping it, spelled out.
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        drop(self.watch.take());
        let _ = self.shared.events.send(Event::Stop);
        if let Some(control) = self.control.take() {
            let _ = control.join();
        }
    }
}

impl fmt::Debug for Bridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bridge")
            .field("metrics", &self.metrics())
            .finish_non_exhaustive()
    }
}

/// Settings for a [`Bridge`]: where Redis is, timeouts and backoff.
///
/// ```no_run
/// use std::time::Duration;
/// use tidings::{Bridge, Broker};
///
/// let broker: Broker<Vec<u8>> = Broker::new();
/// let bridge = Bridge::builder()
///     .cluster(["127.0.0.1:7000", "127.0.0.1:7001"])
///     .io_timeout(Duration::from_millis(500))
///     .backoff(Duration::from_millis(20), Duration::from_secs(1))
///     .start(&broker)
///     .expect("redis cluster reachable");
/// # drop(bridge);
/// ```
#[derive(Clone, Debug, Default)]
pub struct BridgeBuilder {
    server: Option<String>,
    cluster: Vec<String>,
    settings: Settings,
}

impl BridgeBuilder {
    /// A standalone server: `redis://[[user]:password@]host[:port][/db]`, or
    /// on Unix a Unix socket, `unix:///path/redis.sock[?pass=…]`. TLS
    /// (`rediss://`) is not supported.
    pub fn server(mut self, url: impl Into<String>) -> Self {
        self.server = Some(url.into());
        self
    }

    /// A Redis Cluster, discovered from these seed nodes.
    pub fn cluster<I, S>(mut self, seeds: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.cluster = seeds.into_iter().map(Into::into).collect();
        self
    }

    /// How long a TCP connect may take (default 2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.settings.connect_timeout = timeout;
        self
    }

    /// How long Redis may take to answer a publish, accept a write or answer
    /// the heartbeat before the connection is considered lost (default 2 s).
    pub fn io_timeout(mut self, timeout: Duration) -> Self {
        self.settings.io_timeout = timeout;
        self
    }

    /// The reconnect delay: it starts at `min` after a failure and doubles
    /// up to `max` (defaults 50 ms and 2 s), plus up to 25 % jitter.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.settings.backoff_min = min;
        self.settings.backoff_max = max;
        self
    }

    /// How often every subscriber connection is checked with a `PING`
    /// (default 1 s).
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.settings.heartbeat = interval;
        self
    }

    /// How often a cluster's slot map is read again (default 10 s).
    pub fn topology_refresh(mut self, interval: Duration) -> Self {
        self.settings.topology_refresh = interval;
        self
    }

    /// Connects `broker` to Redis and starts the bridge's threads. Returns
    /// once every node is connected, or the first error; later failures are
    /// handled by reconnecting.
    pub fn start<T>(self, broker: &Broker<T>) -> Result<Bridge, BridgeError>
    where
        T: Clone + Send + Sync + 'static + From<Vec<u8>>,
    {
        let settings = self.settings;
        settings.validate()?;
        let (server, seeds) = match (self.server, self.cluster.is_empty()) {
            (Some(url), true) => (Some(NodeAddr::parse(&url)?), Vec::new()),
            (None, false) => {
                let seeds = self
                    .cluster
                    .iter()
                    .map(|s| NodeAddr::parse(s))
                    .collect::<Result<Vec<_>, _>>()?;
                if let Some(seed) = seeds.iter().find(|seed| seed.unix.is_some()) {
                    return Err(BridgeError::Config(format!(
                        "cluster seed {:?} is a Unix socket: cluster nodes are reached over TCP",
                        seed.name
                    )));
                }
                (None, seeds)
            }
            (Some(_), false) => {
                return Err(BridgeError::Config(
                    "set either a server or cluster seeds, not both".into(),
                ));
            }
            (None, true) => {
                return Err(BridgeError::Config(
                    "no redis server or cluster seeds given".into(),
                ));
            }
        };
        let (events, rx) = crossbeam_channel::unbounded();
        let shared = Arc::new(Shared {
            counters: Counters::default(),
            telemetry: BridgeTelemetry::new(&broker.state().telemetry),
            routing: RwLock::new(Routing {
                nodes: Vec::new(),
                slots: None,
            }),
            events: events.clone(),
            closed: AtomicBool::new(false),
            last_error: Mutex::new(None),
        });
        // The hook only names the name that changed: the control thread
        // reads from the registry whether it is held (see `control`). It is
        // first called for everything already held, so the bridge starts
        // from the full picture.
        let hook_events = events;
        let watch = broker.watch_interest(move |change| {
            let key = (change.namespace, Arc::from(change.name));
            let _ = hook_events.send(Event::Interest(key));
        });
        let control = Control::start(
            Arc::clone(&shared),
            settings,
            Arc::clone(broker.state()),
            rx,
            server,
            seeds,
        )?;
        let thread = std::thread::Builder::new()
            .name("tidings-redis-bridge".into())
            .spawn(move || control.run())
            .map_err(|e| BridgeError::Connect {
                addr: String::new(),
                source: Box::new(e),
            })?;
        Ok(Bridge {
            shared,
            watch: Some(Box::new(watch)),
            control: Some(thread),
        })
    }
}

/// The bridge's counters, from [`Bridge::metrics`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct BridgeMetrics {
    /// Every subscriber and publisher connection to every node is up.
    pub connected: bool,
    /// Connections re-established after a loss (one per node and time).
    pub reconnects: u64,
    /// Connection losses: broken sockets, unanswered heartbeats, error
    /// replies.
    pub disconnects: u64,
    /// `message`, `pmessage` and `smessage`s received from Redis.
    pub messages_in: u64,
    /// Local deliveries those messages made (queued plus dropped by
    /// policy, as [`Broker::publish`] counts them).
    pub deliveries: u64,
    /// [`Bridge::publish`] and [`Bridge::spublish`] calls that Redis
    /// accepted (answered with its count).
    pub messages_out: u64,
    /// [`Bridge::publish`] and [`Bridge::spublish`] calls that failed: not
    /// sent because the node was down, refused by Redis, or not answered in
    /// time. Each returned its [`BridgeError`] to its caller.
    pub lost: u64,
}

/// A change of a [`Bridge`]'s connection to Redis, from
/// [`Bridge::connection_events`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// The connection to `node` was lost (a broken socket, an unanswered
    /// heartbeat, an error reply, or, in a cluster, it was closed to move
    /// its subscriptions or left the cluster): messages Redis sends for the
    /// subscriptions held through it may be missed until the matching
    /// [`Resubscribed`](ConnectionEvent::Resubscribed).
    Lost {
        /// The node, `host:port` (a Unix socket's path).
        node: String,
        /// Why, as text.
        why: String,
    },
    /// The bridge is connected to every node again and Redis has confirmed
    /// every subscription the broker's subscribers hold: what is published
    /// from now on arrives.
    Resubscribed {
        /// The node named by the `Lost` this answers.
        node: String,
    },
}

/// What went wrong in a [`Bridge`].
#[derive(Debug)]
#[non_exhaustive]
pub enum BridgeError {
    /// The settings or an address cannot be used, or the cluster's
    /// topology could not be read.
    Config(String),
    /// A node could not be reached, or refused the connection.
    Connect {
        /// The node, `host:port`.
        addr: String,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The node that would take the message is not connected: nothing was
    /// sent (`addr` is empty if no node is known yet).
    Disconnected {
        /// The node, `host:port`.
        addr: String,
    },
    /// Redis refused the command, did not answer in time, or the connection
    /// broke while it ran: the message may not have been published.
    Failed {
        /// The node, `host:port`.
        addr: String,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// [`Bridge::sync`] did not complete in time.
    Timeout,
    /// The bridge was shut down.
    Closed,
}

impl fmt::Display for BridgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BridgeError::Config(why) => write!(f, "redis bridge misconfigured: {why}"),
            BridgeError::Connect { addr, source } => {
                write!(f, "cannot connect to redis at {addr}: {source}")
            }
            BridgeError::Disconnected { addr } => {
                write!(f, "redis bridge is not connected to {addr}")
            }
            BridgeError::Failed { addr, source } => {
                write!(f, "redis at {addr} did not take the message: {source}")
            }
            BridgeError::Timeout => f.write_str("redis did not confirm in time"),
            BridgeError::Closed => f.write_str("redis bridge is shut down"),
        }
    }
}

impl std::error::Error for BridgeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BridgeError::Connect { source, .. } | BridgeError::Failed { source, .. } => {
                Some(&**source)
            }
            _ => None,
        }
    }
}

/// Timeouts and intervals; see the [`BridgeBuilder`] methods.
#[derive(Clone, Copy, Debug)]
struct Settings {
    connect_timeout: Duration,
    io_timeout: Duration,
    backoff_min: Duration,
    backoff_max: Duration,
    heartbeat: Duration,
    topology_refresh: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            connect_timeout: Duration::from_secs(2),
            io_timeout: Duration::from_secs(2),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            heartbeat: Duration::from_secs(1),
            topology_refresh: Duration::from_secs(10),
        }
    }
}

impl Settings {
    fn validate(&self) -> Result<(), BridgeError> {
        let positive = [
            ("connect_timeout", self.connect_timeout),
            ("io_timeout", self.io_timeout),
            ("backoff minimum", self.backoff_min),
            ("heartbeat", self.heartbeat),
            ("topology_refresh", self.topology_refresh),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, d)| d.is_zero()) {
            return Err(BridgeError::Config(format!(
                "{name} must be more than zero"
            )));
        }
        if self.backoff_max < self.backoff_min {
            return Err(BridgeError::Config(
                "the backoff maximum is below its minimum".into(),
            ));
        }
        Ok(())
    }
}

/// What the bridge's threads share with the publishing threads.
struct Shared {
    counters: Counters,
    /// Feature `metrics`: the handles the bridge reports through.
    telemetry: BridgeTelemetry,
    /// Which publisher connection takes a publish.
    routing: RwLock<Routing>,
    /// To the control thread.
    events: Sender<Event>,
    /// The bridge was dropped: publishes fail with `Closed`.
    closed: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl Shared {
    /// Sends one publish to Redis (`PUBLISH` for [`Namespace::Channel`],
    /// `SPUBLISH` for [`Namespace::Shard`]), counting it as out or lost.
    /// Returns Redis's reply.
    fn publish(
        &self,
        namespace: Namespace,
        channel: &[u8],
        payload: &[u8],
    ) -> Result<usize, BridgeError> {
        let result = self.send(namespace, channel, payload);
        let counter = match result {
            Ok(_) => &self.counters.messages_out,
            Err(_) => &self.counters.lost,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.telemetry.published(result.is_ok());
        result
    }

    fn send(
        &self,
        namespace: Namespace,
        channel: &[u8],
        payload: &[u8],
    ) -> Result<usize, BridgeError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(BridgeError::Closed);
        }
        let command = match namespace {
            Namespace::Shard => "SPUBLISH",
            _ => "PUBLISH",
        };
        let node = {
            let routing = self.routing.read().unwrap_or_else(PoisonError::into_inner);
            routing
                .nodes
                .get(route(routing.slots.as_deref(), namespace, channel))
                .cloned()
        };
        let Some(node) = node else {
            return Err(BridgeError::Disconnected {
                addr: String::new(),
            });
        };
        let mut cmd = redis::cmd(command);
        cmd.arg(channel).arg(payload);
        node.request(&cmd, self)
    }

    fn set_last_error(&self, why: String) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(why);
    }
}

#[derive(Default)]
struct Counters {
    connected: AtomicBool,
    reconnects: AtomicU64,
    disconnects: AtomicU64,
    messages_in: AtomicU64,
    deliveries: AtomicU64,
    messages_out: AtomicU64,
    lost: AtomicU64,
}

/// The publishers' view of the topology.
struct Routing {
    /// Index 0 takes `PUBLISH`; in a cluster, `slots` picks the node for
    /// `SPUBLISH`.
    nodes: Vec<Arc<PubConn>>,
    slots: Option<Arc<[u16]>>,
}

/// One node's publisher connection (the redis crate's synchronous
/// connection), shared by every publishing thread.
struct PubConn {
    /// The node, `host:port`.
    name: String,
    conn: Mutex<Option<redis::Connection>>,
    /// Mirrors `conn.is_some()`, readable without waiting for a publish.
    open: AtomicBool,
}

impl PubConn {
    fn new(name: String) -> PubConn {
        PubConn {
            name,
            conn: Mutex::new(None),
            open: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<redis::Connection>> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn install(&self, con: redis::Connection) {
        let mut slot = self.lock();
        *slot = Some(con);
        self.open.store(true, Ordering::Release);
    }

    fn remove(&self) {
        let mut slot = self.lock();
        *slot = None;
        self.open.store(false, Ordering::Release);
    }

    fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// Runs a `PUBLISH` or `SPUBLISH` and returns Redis's count, failing at
    /// once if the connection is down. A broken connection is dropped and
    /// reported to the control thread, which reconnects the node.
    fn request(&self, cmd: &redis::Cmd, shared: &Shared) -> Result<usize, BridgeError> {
        let mut slot = self.lock();
        let Some(con) = slot.as_mut() else {
            return Err(BridgeError::Disconnected {
                addr: self.name.clone(),
            });
        };
        match cmd.query::<Value>(con) {
            Ok(reply) => {
                let count = match reply {
                    Value::Int(n) => usize::try_from(n).ok(),
                    _ => None,
                };
                if let Some(count) = count {
                    return Ok(count);
                }
                // Not a publish's reply: the connection is out of step with
                // its replies, so it is not used again.
                *slot = None;
                self.open.store(false, Ordering::Release);
                let why = format!("unexpected reply to a publish: {reply:?}");
                let _ = shared.events.send(Event::PublishLost {
                    node: self.name.clone(),
                    why: why.clone(),
                });
                Err(BridgeError::Failed {
                    addr: self.name.clone(),
                    source: why.into(),
                })
            }
            Err(e) => {
                if e.is_cluster_error() {
                    let _ = shared.events.send(Event::Refresh);
                }
                // An error reply leaves the connection usable; anything else
                // (I/O, timeout, garbage) does not.
                if !matches!(e.kind(), ErrorKind::Server(_) | ErrorKind::Extension) {
                    *slot = None;
                    self.open.store(false, Ordering::Release);
                    let _ = shared.events.send(Event::PublishLost {
                        node: self.name.clone(),
                        why: format!("publish failed: {e}"),
                    });
                }
                Err(BridgeError::Failed {
                    addr: self.name.clone(),
                    source: Box::new(e),
                })
            }
        }
    }

    /// Runs a query for the control thread; `None` if not connected.
    fn query(&self, cmd: &redis::Cmd) -> Option<redis::RedisResult<Value>> {
        let mut slot = self.lock();
        let con = slot.as_mut()?;
        Some(cmd.query::<Value>(con))
    }
}

/// Opens a publisher connection with the bridge's timeouts.
fn open_publisher(addr: &NodeAddr, settings: &Settings) -> Result<redis::Connection, BridgeError> {
    let fail = |e: redis::RedisError| BridgeError::Connect {
        addr: addr.name.clone(),
        source: Box::new(e),
    };
    let client = redis::Client::open(addr.info.clone()).map_err(fail)?;
    let con = client
        .get_connection_with_timeout(settings.connect_timeout)
        .map_err(fail)?;
    con.set_read_timeout(Some(settings.io_timeout))
        .map_err(fail)?;
    con.set_write_timeout(Some(settings.io_timeout))
        .map_err(fail)?;
    Ok(con)
}

/// What the control thread is told.
enum Event {
    /// The broker's interest in a name may have changed (from the interest
    /// hook): the control thread looks the name up in the registry.
    Interest(Key),
    /// A `Bridge::sync` caller.
    Sync {
        reply: Sender<Result<(), BridgeError>>,
        deadline: Instant,
    },
    /// Subscriber connection `conn` answered `PING <token>`.
    Pong { conn: u64, token: u64 },
    /// Subscriber connection `conn` broke or got an error reply.
    Lost { conn: u64, why: String },
    /// A publish broke the publisher connection of `node`.
    PublishLost { node: String, why: String },
    /// Redis answered `MOVED` or similar: read the cluster's slots again.
    Refresh,
    /// A `Bridge::connection_events` receiver's sender.
    Watch(Sender<ConnectionEvent>),
    /// The bridge was dropped.
    Stop,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn public_types_are_send_and_sync() {
        fn check<T: Send + Sync + std::panic::UnwindSafe>() {}
        check::<BridgeBuilder>();
        check::<BridgeMetrics>();
        check::<ConnectionEvent>();
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Bridge>();
        send_sync::<BridgeError>();
    }

    /// Publishing state with the given publisher connections, none of them
    /// connected, and no control thread.
    fn unconnected(nodes: &[&str]) -> (Shared, crossbeam_channel::Receiver<Event>) {
        let (events, rx) = crossbeam_channel::unbounded();
        let shared = Shared {
            counters: Counters::default(),
            telemetry: BridgeTelemetry::new(&crate::telemetry::BrokerTelemetry::new(None)),
            routing: RwLock::new(Routing {
                nodes: nodes
                    .iter()
                    .map(|n| Arc::new(PubConn::new((*n).to_string())))
                    .collect(),
                slots: None,
            }),
            events,
            closed: AtomicBool::new(false),
            last_error: Mutex::new(None),
        };
        (shared, rx)
    }

    #[test]
    fn a_publish_to_a_down_node_is_an_error_and_counted_never_a_zero() {
        let (shared, _rx) = unconnected(&["127.0.0.1:1"]);
        for namespace in [Namespace::Channel, Namespace::Shard] {
            let err = shared.publish(namespace, b"ch", b"x").unwrap_err();
            assert!(
                matches!(&err, BridgeError::Disconnected { addr } if addr == "127.0.0.1:1"),
                "{err}"
            );
            assert_eq!(
                err.to_string(),
                "redis bridge is not connected to 127.0.0.1:1"
            );
        }
        // No node at all (a cluster whose topology is unknown).
        let (empty, _rx) = unconnected(&[]);
        assert!(matches!(
            empty.publish(Namespace::Channel, b"ch", b"x"),
            Err(BridgeError::Disconnected { .. })
        ));
        // After the bridge is dropped.
        empty.closed.store(true, Ordering::Release);
        assert!(matches!(
            empty.publish(Namespace::Channel, b"ch", b"x"),
            Err(BridgeError::Closed)
        ));
        let c = &shared.counters;
        assert_eq!(
            (
                c.lost.load(Ordering::Relaxed),
                c.messages_out.load(Ordering::Relaxed)
            ),
            (2, 0)
        );
        assert_eq!(empty.counters.lost.load(Ordering::Relaxed), 2);
    }

    /// A fake Redis on loopback that answers `HELLO`, `CLIENT` and the like
    /// with `+OK` and each publish with the next of `replies` (raw RESP; an
    /// empty one closes the connection instead).
    fn fake_redis(replies: Vec<&'static [u8]>) -> (String, std::thread::JoinHandle<()>) {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let thread = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut writer = stream.try_clone().unwrap();
            let mut reader = std::io::BufReader::new(stream);
            let mut parser = redis::Parser::new();
            let mut replies = replies.into_iter();
            while let Ok(Value::Array(args)) = parser.parse_value(&mut reader) {
                let name = match args.first() {
                    Some(Value::BulkString(b)) => b.to_ascii_uppercase(),
                    _ => Vec::new(),
                };
                if name != b"PUBLISH" && name != b"SPUBLISH" {
                    writer.write_all(b"+OK\r\n").unwrap();
                    continue;
                }
                match replies.next() {
                    Some(reply) if !reply.is_empty() => writer.write_all(reply).unwrap(),
                    _ => return,
                }
            }
        });
        (addr, thread)
    }

    #[test]
    fn redis_refusing_or_garbling_a_publish_is_an_error_and_counted() {
        let settings = Settings {
            io_timeout: Duration::from_secs(5),
            ..Settings::default()
        };
        let (addr, server) = fake_redis(vec![
            b":3\r\n",
            b"-NOPERM no permissions to run the 'publish' command\r\n",
            b":0\r\n",
            b"$2\r\nhi\r\n",
        ]);
        let (shared, events) = unconnected(&[&addr]);
        let node = Arc::clone(&shared.routing.read().unwrap().nodes[0]);
        node.install(open_publisher(&NodeAddr::parse(&addr).unwrap(), &settings).unwrap());
        let publish = || shared.publish(Namespace::Channel, b"ch", b"x");
        // Redis's count, whatever it is; a zero is a real zero.
        assert_eq!(publish().unwrap(), 3);
        // An error reply: an error, and the connection stays.
        let err = publish().unwrap_err();
        assert!(matches!(err, BridgeError::Failed { .. }), "{err}");
        assert!(err.to_string().contains("no permissions"), "{err}");
        assert!(node.is_open());
        assert_eq!(publish().unwrap(), 0);
        // Not a count: an error, and the connection is not trusted again.
        let err = publish().unwrap_err();
        assert!(err.to_string().contains("unexpected reply"), "{err}");
        assert!(!node.is_open());
        assert!(matches!(events.try_recv(), Ok(Event::PublishLost { .. })));
        assert!(matches!(publish(), Err(BridgeError::Disconnected { .. })));
        let c = &shared.counters;
        assert_eq!(
            (
                c.messages_out.load(Ordering::Relaxed),
                c.lost.load(Ordering::Relaxed)
            ),
            (2, 3)
        );
        server.join().unwrap();

        // The connection breaking mid-command: an error, reported.
        let (addr, server) = fake_redis(vec![b""]);
        let (shared, events) = unconnected(&[&addr]);
        let node = Arc::clone(&shared.routing.read().unwrap().nodes[0]);
        node.install(open_publisher(&NodeAddr::parse(&addr).unwrap(), &settings).unwrap());
        let err = shared.publish(Namespace::Shard, b"{s}", b"x").unwrap_err();
        assert!(matches!(err, BridgeError::Failed { .. }), "{err}");
        assert!(!node.is_open());
        assert!(matches!(events.try_recv(), Ok(Event::PublishLost { .. })));
        assert_eq!(shared.counters.lost.load(Ordering::Relaxed), 1);
        server.join().unwrap();
    }

    #[test]
    fn builder_rejects_unusable_settings() {
        let broker: Broker<Vec<u8>> = Broker::new();
        let err = |b: BridgeBuilder| b.start(&broker).unwrap_err().to_string();
        assert_eq!(
            err(Bridge::builder()),
            "redis bridge misconfigured: no redis server or cluster seeds given"
        );
        assert_eq!(
            err(Bridge::builder()
                .server("redis://127.0.0.1:1")
                .cluster(["127.0.0.1:2"])),
            "redis bridge misconfigured: set either a server or cluster seeds, not both"
        );
        assert_eq!(
            err(Bridge::builder()
                .server("redis://127.0.0.1:1")
                .io_timeout(Duration::ZERO)),
            "redis bridge misconfigured: io_timeout must be more than zero"
        );
        assert_eq!(
            err(Bridge::builder()
                .server("redis://127.0.0.1:1")
                .backoff(Duration::from_secs(2), Duration::from_secs(1))),
            "redis bridge misconfigured: the backoff maximum is below its minimum"
        );
        assert!(
            err(Bridge::builder().server("rediss://127.0.0.1:1"))
                .starts_with("redis bridge misconfigured: ")
        );
        #[cfg(unix)]
        {
            assert_eq!(
                err(Bridge::builder().cluster(["127.0.0.1:2", "unix:///tmp/redis.sock"])),
                "redis bridge misconfigured: cluster seed \"/tmp/redis.sock\" is a Unix socket: cluster nodes are reached over TCP"
            );
            // A socket that does not exist fails to connect, at once.
            let missing = Bridge::builder()
                .server("unix:///nonexistent/tidings-redis.sock")
                .start(&broker)
                .unwrap_err();
            assert!(matches!(missing, BridgeError::Connect { .. }), "{missing}");
        }
        // Nothing is left behind by a failed start: no hook, no thread
        // holds the broker.
        assert_eq!(Arc::strong_count(broker.state()), 1);
    }

    #[test]
    fn an_unreachable_server_is_an_error_not_a_hang() {
        // Port 1 on loopback: nothing listens there.
        let broker: Broker<Vec<u8>> = Broker::new();
        let err = Bridge::builder()
            .server("redis://127.0.0.1:1")
            .connect_timeout(Duration::from_millis(200))
            .start(&broker)
            .unwrap_err();
        assert!(matches!(err, BridgeError::Connect { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("cannot connect to redis at 127.0.0.1:1: ")
        );
        assert!(std::error::Error::source(&err).is_some());
    }
}
