//! Broadcast cache invalidation over Redis keyspace notifications: every
//! application node keeps an in-process read-through cache of Redis keys,
//! and a key changed by *any* Redis client (a `SET`, a `DEL`, a TTL running
//! out, an eviction under `maxmemory`) drops the cached copy on every node
//! and wakes the local components that watch that key.
//!
//! ```text
//! cargo run --release -p tidings --features redis --example cache_invalidation -- --redis redis://127.0.0.1:6379
//! cargo run --release -p tidings --features redis --example cache_invalidation -- --redis redis://127.0.0.1:6379 --bench 5000 --runs 5
//! ```
//!
//! The first runs two nodes and shows them being invalidated; the second
//! measures the latency from a plain client's `SET` to the invalidation on
//! both nodes, against two bare `PSUBSCRIBE` clients ([`measure_nodes`],
//! [`measure_bare`]).
//!
//! It changes the server's `notify-keyspace-events` (adding the flags it
//! needs to those already set), so point it at a server you may configure.
//!
//! ```text
//!  any Redis client            Redis                              node A (and node B, the same)
//!  ────────────────        ─────────────                      ──────────────────────────────────────────
//!  SET cache:user:1 … ──▶ keyspace event ──▶ __keyspace@0__:cache:user:1 "set"
//!                                            ──▶ bridge ──▶ bus broker ──▶ handler (psubscribed to
//!                                                __keyspace@0__:cache:*): parse, drop the cached
//!                                                entry, then publish on the local events broker
//!                                                ──▶ components watching __keyspace@0__:cache:user:1
//! ```
//!
//! # How a node works
//!
//! - **On start** it reads `CONFIG GET notify-keyspace-events`, adds the
//!   flags a cache of string values needs ([`notification_flags`]: `K`
//!   with the generic, string, expired and evicted classes, `g$xeK`) with
//!   [`tidings::keyspace::Flags`], and writes the union back with `CONFIG
//!   SET`, so other users' flags stay on. It bridges its *bus* broker to
//!   Redis and subscribes a handler to the keyspace channels of its key
//!   prefix ([`tidings::keyspace::keyspace_pattern`], which glob-escapes
//!   the prefix), then waits until Redis holds that subscription
//!   ([`Bridge::sync`]) before it caches anything.
//! - **On a notification** the handler, on the bridge's reader thread,
//!   takes the channel apart ([`NotificationChannel::parse`]), skips the
//!   events that leave a value as it was ([`changes_value`]: `expire`,
//!   `persist`, ...; so `SET k v EX 10` invalidates once, not twice), drops
//!   the entry, and publishes an [`Invalidation`] on the node's *events*
//!   broker, on the same channel name. Components subscribe there, not on
//!   the bridged broker: they are woken only after the entry is gone (a
//!   subscription of their own on the bridged broker would get Redis's
//!   message on its own, possibly before the cache has dropped the entry)
//!   and only for changes.
//! - **Reads** ([`Node::get`]) are read-through, and a read that races an
//!   invalidation never caches the old value: a miss first leaves a
//!   *filling* mark with a fresh token, `GET`s the key, and stores the
//!   value only if its mark is still there; an invalidation or a flush in
//!   between removes the mark ([`Cache`]).
//!
//! # Guarantees
//!
//! - **At most once.** Redis pub/sub, and so keyspace notifications, are
//!   fire and forget: an event published while a node is not subscribed
//!   (during an outage, before its subscription is applied) never reaches
//!   it. A node therefore caches nothing until Redis holds its
//!   subscription, and **flushes its whole cache as soon as it notices a
//!   connection loss**, caching again only once the bridge has reconnected,
//!   the flags are set again (a restarted Redis forgets them) and Redis
//!   holds the subscription again. Components hear of the flush on the
//!   [`FLUSHED`] channel. The node learns of a loss from the bridge's
//!   connection events ([`Bridge::connection_events`]): a
//!   [`ConnectionEvent::Lost`] suspends the cache at once, and it caches
//!   again after every lost node is [`ConnectionEvent::Resubscribed`]
//!   (Redis has confirmed the subscription) and the flags are set again.
//!   While a loss goes unnoticed (until the bridge's heartbeat fails: about
//!   300 ms with [`quick_failover`]) a node may serve a value that changed
//!   meanwhile.
//! - **Once per change.** Each change reaches each node once (one pattern
//!   subscription per node), and each [`Invalidation`] is published once;
//!   events that do not change the value are not published at all.
//! - **Other nodes, other languages.** Nothing here publishes anything: any
//!   client that writes the keys triggers the invalidation on every node.
//!
//! Only string values are cached (the reads are `GET`), and a missing key
//! is not cached.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tidings::core::keyspace::{
    EventClass, Flags, NotificationChannel, changes_value, keyspace_channel, keyspace_pattern,
};
use tidings::crossbeam_channel::{self, Receiver, Sender, select};
use tidings::{
    Bridge, BridgeBuilder, Broker, ConnectionEvent, Handler, Message, Options, Policy, Subscriber,
};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The events-broker channel on which a node announces a flush. It is not
/// a keyspace channel, so it cannot collide with a key's.
pub const FLUSHED: &[u8] = b"cache:flushed";

/// How long a node waits before trying to resume again after a failed
/// attempt (every node was back, but setting the flags or confirming the
/// subscription failed).
pub const RETRY: Duration = Duration::from_millis(50);

/// The notifications a cache of string values needs: keyspace channels
/// (`K`, the key is in the channel name, so one pattern covers a prefix)
/// for generic commands (`DEL`, `RENAME`, `EXPIRE`, ...), string commands
/// (`SET`, `INCR`, `APPEND`, ...), expired keys and evicted keys.
pub fn notification_flags() -> Flags {
    Flags::KEYSPACE
        .with_class(EventClass::Generic)
        .with_class(EventClass::String)
        .with_class(EventClass::Expired)
        .with_class(EventClass::Evicted)
}

/// Adds [`notification_flags`] to the server's `notify-keyspace-events`
/// (read, union, write back only if something is missing) and returns the
/// flags now set.
pub fn enable_notifications(con: &mut redis::Connection) -> Result<Flags, Error> {
    let (_, current): (String, String) = redis::cmd("CONFIG")
        .arg("GET")
        .arg("notify-keyspace-events")
        .query(con)?;
    let current = Flags::parse(&current)?;
    let wanted = current.with(notification_flags());
    if wanted != current {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("notify-keyspace-events")
            .arg(wanted.to_string())
            .query::<()>(con)?;
    }
    Ok(wanted)
}

/// Why a watched key's cached copy is gone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cause {
    /// Redis reported this event for the key: `set`, `del`, `expired`,
    /// `evicted`, `rename_from`, ...
    Changed(String),
    /// The node lost its connection to Redis and flushed its whole cache:
    /// any key may have changed unheard.
    Flushed,
}

/// What a node's events broker carries to its components: the channel is
/// the key's keyspace channel (or [`FLUSHED`]).
#[derive(Clone, Debug)]
pub struct Invalidation {
    /// Why.
    pub cause: Cause,
    /// When the node dropped the entry.
    pub at: Instant,
}

/// A cache's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Reads served from the cache.
    pub hits: u64,
    /// Reads that went to Redis.
    pub misses: u64,
    /// Values read from Redis but not stored, because the key was
    /// invalidated or the cache flushed while the read was in flight.
    pub refused: u64,
    /// Changes acted on: notifications of a value-changing event for a key
    /// under the prefix.
    pub invalidations: u64,
    /// Notifications that needed nothing: events that leave the value as
    /// it was (`expire`, ...), keys outside the prefix.
    pub ignored: u64,
    /// Whole-cache flushes after a connection loss.
    pub flushes: u64,
}

/// One cache slot.
enum Slot {
    /// The value read from Redis.
    Ready(Vec<u8>),
    /// A read of the key is in flight; only the read holding this token
    /// may store its value.
    Filling(u64),
}

/// What [`Cache::lookup`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The cached value.
    Hit(Vec<u8>),
    /// Not cached: read Redis, then hand the value to [`Cache::complete`]
    /// with this token. `None` when the cache is not live (it must not be
    /// filled: read Redis and keep the value to yourself).
    Miss(Option<u64>),
}

struct State {
    map: HashMap<Vec<u8>, Slot>,
    next_token: u64,
    /// Invalidations are being heard: filling is allowed.
    live: bool,
    stats: CacheStats,
}

/// The in-process cache of one node, with the fill protocol that keeps a
/// racing read from storing a stale value. No I/O: [`Node`] does the
/// reads.
pub struct Cache {
    state: Mutex<State>,
}

impl Default for Cache {
    fn default() -> Self {
        Cache::new()
    }
}

impl Cache {
    /// An empty cache, not live.
    pub fn new() -> Cache {
        Cache {
            state: Mutex::new(State {
                map: HashMap::new(),
                next_token: 0,
                live: false,
                stats: CacheStats::default(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached value of `key`, or a token to fill it with.
    pub fn lookup(&self, key: &[u8]) -> Lookup {
        let mut state = self.lock();
        if let Some(Slot::Ready(value)) = state.map.get(key) {
            let value = value.clone();
            state.stats.hits += 1;
            return Lookup::Hit(value);
        }
        state.stats.misses += 1;
        if !state.live {
            return Lookup::Miss(None);
        }
        state.next_token += 1;
        let token = state.next_token;
        state.map.insert(key.to_vec(), Slot::Filling(token));
        Lookup::Miss(Some(token))
    }

    /// Stores what a read of `key` returned (`None`: no such key, nothing
    /// is stored) if the read's `token` still holds the slot; returns
    /// whether it stored it.
    pub fn complete(&self, key: &[u8], token: u64, value: Option<Vec<u8>>) -> bool {
        let mut state = self.lock();
        let ours = matches!(state.map.get(key), Some(Slot::Filling(t)) if *t == token);
        if !ours {
            state.stats.refused += 1;
            return false;
        }
        match value {
            Some(value) => {
                state.map.insert(key.to_vec(), Slot::Ready(value));
                true
            }
            None => {
                state.map.remove(key);
                false
            }
        }
    }

    /// Drops `key` (its value, or a read in flight); returns whether a
    /// value was cached.
    pub fn invalidate(&self, key: &[u8]) -> bool {
        let mut state = self.lock();
        state.stats.invalidations += 1;
        matches!(state.map.remove(key), Some(Slot::Ready(_)))
    }

    /// Drops everything (reads in flight included) and sets whether the
    /// cache may be filled from now on. Counts a flush if `count`.
    pub fn flush(&self, live: bool, count: bool) -> usize {
        let mut state = self.lock();
        let n = state.map.len();
        state.map.clear();
        state.live = live;
        if count {
            state.stats.flushes += 1;
        }
        n
    }

    /// Counts a notification that needed nothing.
    fn ignore(&self) {
        self.lock().stats.ignored += 1;
    }

    /// Whether a value of `key` is cached.
    pub fn contains(&self, key: &[u8]) -> bool {
        matches!(self.lock().map.get(key), Some(Slot::Ready(_)))
    }

    /// Whether the cache is being filled (invalidations are heard).
    pub fn is_live(&self) -> bool {
        self.lock().live
    }

    /// The counters.
    pub fn stats(&self) -> CacheStats {
        self.lock().stats
    }
}

/// What the bridge's reader thread (the handler) shares with the node. It
/// holds no bridge: the handler's closure must never own the bridge whose
/// thread runs it.
struct Core {
    db: u32,
    prefix: Vec<u8>,
    cache: Cache,
    events: Broker<Invalidation>,
}

impl Core {
    /// The handler on the bridge's reader thread: one keyspace message.
    fn on_notification(&self, m: &Message<Vec<u8>>) {
        let key = match NotificationChannel::parse(m.channel()) {
            Some(NotificationChannel::Keyspace { db, key })
                if db == self.db && key.starts_with(&self.prefix) =>
            {
                key
            }
            _ => return self.cache.ignore(),
        };
        let event = m.payload();
        if !changes_value(event) {
            return self.cache.ignore();
        }
        self.cache.invalidate(key);
        let at = Instant::now();
        self.events.publish(
            m.channel(),
            Invalidation {
                cause: Cause::Changed(String::from_utf8_lossy(event).into_owned()),
                at,
            },
        );
    }

    /// Drops the cache and stops filling it; tells the components.
    fn suspend(&self) {
        self.cache.flush(false, true);
        self.events.publish(
            FLUSHED,
            Invalidation {
                cause: Cause::Flushed,
                at: Instant::now(),
            },
        );
    }
}

/// The connection watcher's thread. On a [`ConnectionEvent::Lost`], it
/// suspends the cache (flushed, not filled). Once every lost node is
/// [`ConnectionEvent::Resubscribed`] and no other event waits, it sets the
/// flags again (a restarted server has forgotten them), waits until Redis
/// holds the subscription, and only then caches again; if that fails, it
/// tries again after [`RETRY`].
struct Watcher {
    core: Arc<Core>,
    bridge: Arc<Bridge>,
    /// Taken right after the bridge started, before the node subscribed: a
    /// loss at any time after that is heard.
    events: Receiver<ConnectionEvent>,
    client: redis::Client,
    /// Disconnected when the node is dropped.
    stop: Receiver<()>,
}

impl Watcher {
    fn run(self) {
        let mut down: HashSet<String> = HashSet::new();
        let mut live = true;
        let mut retry = Duration::ZERO;
        loop {
            let event = if !live && down.is_empty() {
                select! {
                    recv(self.stop) -> _ => return,
                    recv(self.events) -> event => event,
                    default(retry) => {
                        // Nothing new, and every node is back.
                        if self.resume().is_ok() && self.events.is_empty() {
                            self.core.cache.flush(true, false);
                            live = true;
                        } else {
                            retry = RETRY;
                        }
                        continue;
                    }
                }
            } else {
                select! {
                    recv(self.stop) -> _ => return,
                    recv(self.events) -> event => event,
                }
            };
            match event {
                Ok(ConnectionEvent::Lost { node, .. }) => {
                    down.insert(node);
                    retry = Duration::ZERO;
                    if live {
                        live = false;
                        self.core.suspend();
                    }
                }
                Ok(ConnectionEvent::Resubscribed { node }) => {
                    down.remove(&node);
                }
                Ok(_) => {}
                // The bridge stopped.
                Err(_) => return,
            }
        }
    }

    fn resume(&self) -> Result<(), Error> {
        let mut con = self
            .client
            .get_connection_with_timeout(Duration::from_secs(1))?;
        con.set_read_timeout(Some(Duration::from_secs(1)))?;
        enable_notifications(&mut con)?;
        self.bridge.sync(Duration::from_secs(1))?;
        Ok(())
    }
}

/// One application node: a bridged bus broker, a cache, an events broker
/// for its components, and a connection for reads.
pub struct Node {
    name: String,
    core: Arc<Core>,
    /// The handler subscribed to the prefix's keyspace channels. Dropped
    /// before the bridge.
    handler: Option<Handler<Vec<u8>>>,
    bridge: Arc<Bridge>,
    /// The bridged broker.
    _bus: Broker<Vec<u8>>,
    client: redis::Client,
    reader: Mutex<Option<redis::Connection>>,
    /// Dropped to stop the watcher.
    stop: Option<Sender<()>>,
    watcher: Option<JoinHandle<()>>,
}

impl Node {
    /// Starts a node caching the keys under `prefix` of the server at `url`
    /// (its database, from the URL), bridged with `bridge`'s settings (its
    /// server is set here). Returns once the node hears invalidations.
    pub fn start(
        name: &str,
        url: &str,
        prefix: impl AsRef<[u8]>,
        bridge: BridgeBuilder,
    ) -> Result<Node, Error> {
        let prefix = prefix.as_ref();
        let client = redis::Client::open(url)?;
        let db = u32::try_from(client.get_connection_info().redis_settings().db())?;
        let mut con = client.get_connection_with_timeout(Duration::from_secs(2))?;
        con.set_read_timeout(Some(Duration::from_secs(2)))?;
        enable_notifications(&mut con)?;
        let bus: Broker<Vec<u8>> = Broker::new();
        let bridge = Arc::new(bridge.server(url).start(&bus)?);
        let events = bridge.connection_events();
        let core = Arc::new(Core {
            db,
            prefix: prefix.to_vec(),
            cache: Cache::new(),
            events: Broker::new(),
        });
        let on_message = Arc::clone(&core);
        let mut handler = bus.handler(move |m: Message<Vec<u8>>| on_message.on_notification(&m));
        handler.psubscribe(keyspace_pattern(db, prefix));
        bridge.sync(Duration::from_secs(5))?;
        core.cache.flush(true, false);
        let (stop, stopped) = crossbeam_channel::bounded(0);
        let watcher = Watcher {
            core: Arc::clone(&core),
            bridge: Arc::clone(&bridge),
            events,
            client: client.clone(),
            stop: stopped,
        };
        let watcher = std::thread::Builder::new()
            .name(format!("cache-{name}-watch"))
            .spawn(move || watcher.run())?;
        Ok(Node {
            name: name.to_string(),
            core,
            handler: Some(handler),
            bridge,
            _bus: bus,
            client,
            reader: Mutex::new(Some(con)),
            stop: Some(stop),
            watcher: Some(watcher),
        })
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads `key` through the cache. Keys outside the prefix are read
    /// from Redis and never cached (nothing would invalidate them).
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, Error> {
        let key = key.as_ref();
        if !key.starts_with(&self.core.prefix) {
            return self.fetch(key);
        }
        match self.core.cache.lookup(key) {
            Lookup::Hit(value) => Ok(Some(value)),
            Lookup::Miss(token) => {
                let value = self.fetch(key);
                if let Some(token) = token {
                    // A failed read stores nothing, and frees the slot.
                    let stored = value.as_ref().ok().cloned().flatten();
                    self.core.cache.complete(key, token, stored);
                }
                value
            }
        }
    }

    /// `GET key` on the node's read connection, reopened after a failure.
    fn fetch(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let mut reader = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        let con = match reader.as_mut() {
            Some(con) => con,
            None => {
                let con = self
                    .client
                    .get_connection_with_timeout(Duration::from_secs(1))?;
                con.set_read_timeout(Some(Duration::from_secs(1)))?;
                reader.insert(con)
            }
        };
        let result = redis::cmd("GET").arg(key).query::<Option<Vec<u8>>>(con);
        if result.is_err() {
            *reader = None;
        }
        Ok(result?)
    }

    /// A subscriber woken for each change of `key` and for each flush.
    /// It drops the oldest notices if it falls more than 1,024 behind (and
    /// is told so by `Lagged`: time to re-read everything).
    pub fn watch(&self, key: impl AsRef<[u8]>) -> Subscriber<Invalidation> {
        let mut sub = self.watcher_subscriber();
        sub.subscribe(keyspace_channel(self.core.db, key.as_ref()));
        sub
    }

    /// A subscriber woken for each change of a key under `prefix` (which
    /// may be longer than the node's) and for each flush.
    pub fn watch_prefix(&self, prefix: impl AsRef<[u8]>) -> Subscriber<Invalidation> {
        let mut sub = self.watcher_subscriber();
        sub.psubscribe(keyspace_pattern(self.core.db, prefix.as_ref()));
        sub
    }

    fn watcher_subscriber(&self) -> Subscriber<Invalidation> {
        // DropOldest: a component that falls behind is told how many
        // invalidations it missed (and should treat its view as stale),
        // instead of being cut off. Default capacity: always valid.
        let options = Options::new().policy(Policy::DropOldest);
        let mut sub = match self.core.events.subscriber_with(options) {
            Ok(sub) => sub,
            Err(_) => self.core.events.subscriber(),
        };
        sub.subscribe(FLUSHED);
        sub
    }

    /// Whether a value of `key` is cached.
    pub fn is_cached(&self, key: impl AsRef<[u8]>) -> bool {
        self.core.cache.contains(key.as_ref())
    }

    /// Whether the node hears invalidations (and so caches).
    pub fn is_live(&self) -> bool {
        self.core.cache.is_live()
    }

    /// The cache's counters.
    pub fn stats(&self) -> CacheStats {
        self.core.cache.stats()
    }

    /// The bridge's counters.
    pub fn bridge_metrics(&self) -> tidings::BridgeMetrics {
        self.bridge.metrics()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(watcher) = self.watcher.take() {
            let _ = watcher.join();
        }
        // Unsubscribe before the bridge goes (its drop joins its threads).
        drop(self.handler.take());
    }
}

/// The bridge settings the example and its test use: a lost connection is
/// noticed within about 300 ms (heartbeat 100 ms, I/O timeout 200 ms), and
/// retried every 20 ms to 200 ms.
pub fn quick_failover() -> BridgeBuilder {
    Bridge::builder()
        .connect_timeout(Duration::from_millis(500))
        .io_timeout(Duration::from_millis(200))
        .heartbeat(Duration::from_millis(100))
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
}

/// The `p`-th percentile (0..=100) of sorted `values`.
pub fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// Measures, `n` times one at a time (after `n / 10` warm-up rounds),
/// from just before a plain client's `SET` of a key both nodes hold in
/// their caches to the entry dropped on both nodes (the later of the two)
/// and to a component watching the key woken on both nodes. Returns the
/// two series, sorted.
pub fn measure_nodes(url: &str, prefix: &[u8], n: usize) -> Result<[Vec<Duration>; 2], Error> {
    let wait = Duration::from_secs(5);
    let a = Node::start("a", url, prefix, quick_failover())?;
    let b = Node::start("b", url, prefix, quick_failover())?;
    let mut writer = redis::Client::open(url)?.get_connection()?;
    let mut key = prefix.to_vec();
    key.extend_from_slice(b"bench");
    let mut watchers = [a.watch(&key), b.watch(&key)];
    redis::cmd("SET")
        .arg(&key)
        .arg(0)
        .query::<()>(&mut writer)?;
    for w in &mut watchers {
        w.recv_timeout(wait)?;
    }
    let (mut dropped, mut woken) = (Vec::new(), Vec::new());
    for i in 0..n + n / 10 {
        // Both nodes hold the key, so each SET really drops two entries.
        for node in [&a, &b] {
            node.get(&key)?;
            if !node.is_cached(&key) {
                return Err(format!("node {} did not cache the key", node.name()).into());
            }
        }
        let t0 = Instant::now();
        redis::cmd("SET")
            .arg(&key)
            .arg(i + 1)
            .query::<()>(&mut writer)?;
        let ia = watchers[0].recv_timeout(wait)?;
        let woke_a = Instant::now();
        let ib = watchers[1].recv_timeout(wait)?;
        let woke_b = Instant::now();
        if i >= n / 10 {
            dropped.push(ia.payload().at.max(ib.payload().at) - t0);
            woken.push(woke_a.max(woke_b) - t0);
        }
    }
    dropped.sort();
    woken.sort();
    Ok([dropped, woken])
}

/// The floor for [`measure_nodes`]: two bare redis-crate clients
/// `PSUBSCRIBE`d to the same pattern, each reading on its own thread, the
/// way a bridge reads; from just before the `SET` to the later of the two
/// reading the notification. Returns the series, sorted.
pub fn measure_bare(url: &str, prefix: &[u8], n: usize) -> Result<Vec<Duration>, Error> {
    let wait = Duration::from_secs(5);
    let mut writer = redis::Client::open(url)?.get_connection()?;
    let mut key = prefix.to_vec();
    key.extend_from_slice(b"bench");
    let done = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    let mut threads = Vec::new();
    for _ in 0..2 {
        let (tx, rx) = tidings::crossbeam_channel::unbounded::<Instant>();
        let mut con = redis::Client::open(url)?.get_connection()?;
        let pattern = keyspace_pattern(0, prefix);
        let done = Arc::clone(&done);
        threads.push(std::thread::spawn(
            move || -> Result<(), redis::RedisError> {
                let mut pubsub = con.as_pubsub();
                pubsub.psubscribe(&pattern[..])?;
                pubsub.set_read_timeout(Some(Duration::from_millis(100)))?;
                while !done.load(Ordering::Relaxed) {
                    match pubsub.get_message() {
                        Ok(_) => {
                            let _ = tx.send(Instant::now());
                        }
                        Err(e) if e.is_timeout() => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            },
        ));
        readers.push(rx);
    }
    // Until both PSUBSCRIBEs are in place, a SET reaches fewer than two.
    let deadline = Instant::now() + wait;
    loop {
        redis::cmd("SET")
            .arg(&key)
            .arg(0)
            .query::<()>(&mut writer)?;
        std::thread::sleep(Duration::from_millis(20));
        let heard = readers.iter().filter(|r| !r.is_empty()).count();
        for r in &readers {
            while r.try_recv().is_ok() {}
        }
        if heard == 2 {
            break;
        }
        if Instant::now() > deadline {
            return Err("the bare subscribers did not subscribe".into());
        }
    }
    let mut floor = Vec::new();
    for i in 0..n + n / 10 {
        let t0 = Instant::now();
        redis::cmd("SET")
            .arg(&key)
            .arg(i + 1)
            .query::<()>(&mut writer)?;
        let first = readers[0].recv_timeout(wait)?;
        let second = readers[1].recv_timeout(wait)?;
        if i >= n / 10 {
            floor.push(first.max(second) - t0);
        }
    }
    done.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    floor.sort();
    Ok(floor)
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

/// `--bench N [--runs R]`: R interleaved runs of each measurement (nodes,
/// then the bare floor), N SETs each; prints the median p50 and p99.
fn bench(url: &str, prefix: &[u8], n: usize, runs: usize) -> Result<(), Error> {
    let mut rows: [Vec<(Duration, Duration)>; 3] = Default::default();
    for run in 0..runs {
        let [dropped, woken] = measure_nodes(url, prefix, n)?;
        let floor = measure_bare(url, prefix, n)?;
        for (row, series) in rows.iter_mut().zip([&dropped, &woken, &floor]) {
            row.push((percentile(series, 50), percentile(series, 99)));
        }
        eprintln!(
            "run {}: dropped p50 {} p99 {}; woken p50 {} p99 {}; floor p50 {} p99 {}",
            run + 1,
            micros(rows[0][run].0),
            micros(rows[0][run].1),
            micros(rows[1][run].0),
            micros(rows[1][run].1),
            micros(rows[2][run].0),
            micros(rows[2][run].1),
        );
    }
    println!(
        "{n} SETs by a plain client per run, one at a time; medians of {runs} interleaved runs; {url}"
    );
    println!("| from a plain client's SET to | p50 | p99 |");
    println!("|---|---|---|");
    for (what, row) in [
        ("the entry dropped on both nodes", &rows[0]),
        ("a component watching the key woken on both nodes", &rows[1]),
        (
            "two bare PSUBSCRIBE clients reading the notification (floor)",
            &rows[2],
        ),
    ] {
        let p50 = median(row.iter().map(|r| r.0).collect());
        let p99 = median(row.iter().map(|r| r.1).collect());
        println!("| {what} | {} | {} |", micros(p50), micros(p99));
    }
    Ok(())
}

fn arg(name: &str) -> Option<String> {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == name {
            return args.next();
        }
    }
    None
}

fn main() -> Result<(), Error> {
    let url = arg("--redis")
        .or_else(|| std::env::var("TIDINGS_REDIS_URL").ok())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_string());
    let prefix = b"cache:";
    if let Some(n) = arg("--bench") {
        let runs = arg("--runs").map_or(Ok(5), |r| r.parse())?;
        return bench(&url, prefix, n.parse()?, runs);
    }

    println!(
        "two nodes caching {:?} on {url}",
        String::from_utf8_lossy(prefix)
    );
    let a = Node::start("a", &url, prefix, Bridge::builder())?;
    let b = Node::start("b", &url, prefix, Bridge::builder())?;
    let mut plain = redis::Client::open(url.as_str())?.get_connection()?;
    let key = b"cache:user:1";
    redis::cmd("SET")
        .arg(key)
        .arg("ada")
        .query::<()>(&mut plain)?;
    // The SET's own notification may still be on its way: wait for it.
    let mut watchers = [a.watch(key), b.watch(key)];
    std::thread::sleep(Duration::from_millis(100));
    for w in &mut watchers {
        while w.try_recv().is_ok() {}
    }
    let show = |node: &Node| -> Result<(), Error> {
        let value = node.get(key)?;
        println!(
            "  node {}: get cache:user:1 = {:?} (cached now: {})",
            node.name(),
            value.map(|v| String::from_utf8_lossy(&v).into_owned()),
            node.is_cached(key)
        );
        Ok(())
    };
    for node in [&a, &b] {
        show(node)?;
    }
    for (what, command) in [
        (
            "SET cache:user:1 grace",
            vec!["SET", "cache:user:1", "grace"],
        ),
        (
            "PEXPIRE cache:user:1 100 (a TTL only: no invalidation)",
            vec!["PEXPIRE", "cache:user:1", "100"],
        ),
    ] {
        println!("a plain client: {what}");
        redis::cmd(command[0])
            .arg(&command[1..])
            .query::<redis::Value>(&mut plain)?;
        for (node, w) in [&a, &b].into_iter().zip(&mut watchers) {
            match w.recv_timeout(Duration::from_millis(50)) {
                Ok(m) => println!("  node {}: woken: {:?}", node.name(), m.payload().cause),
                Err(_) => println!("  node {}: not woken", node.name()),
            }
            show(node)?;
        }
    }
    println!("…the TTL runs out");
    for (node, w) in [&a, &b].into_iter().zip(&mut watchers) {
        let m = w.recv_timeout(Duration::from_secs(5))?;
        println!("  node {}: woken: {:?}", node.name(), m.payload().cause);
        show(node)?;
    }
    for node in [&a, &b] {
        println!("  node {}: {:?}", node.name(), node.stats());
    }
    Ok(())
}
