//! The subscription registry: who holds which channel, pattern and shard
//! channel, Redis's confirmations, publish routing and introspection.
//!
//! It follows Redis 7's `src/pubsub.c`. Each subscriber (a Redis client) holds
//! names in three [`Namespace`]s: channels, patterns and shard channels. Every
//! name maps back to its subscribers in subscription order, so every
//! (subscriber, name) pair is stored in exactly two places. A name whose last
//! subscriber leaves is freed at once, and so is a subscriber that holds
//! nothing, so memory follows what is held, not what was ever held.
//!
//! # Operations
//!
//! Four methods change the registry, each taking the namespace it acts in:
//! [`subscribe`](Registry::subscribe), [`unsubscribe`](Registry::unsubscribe),
//! [`unsubscribe_all`](Registry::unsubscribe_all) and
//! [`remove_subscriber`](Registry::remove_subscriber). They return Redis's
//! [`Confirmation`]s, and report what they did to each name's *route* as
//! data: a [`Change`] per (subscriber, name) pair joined or left, passed to a
//! callback while the operation runs. A change says whether the name gained
//! its first subscriber or lost its last one (the interest an integration
//! mirrors elsewhere), and lends the route's value `V`: the data a caller
//! keeps per name, such as the queues it delivers to.
//!
//! # Confirmations
//!
//! Every subscribe or unsubscribe yields one [`Confirmation`] per name, with
//! Redis's count: the subscriber's channels plus patterns after the operation
//! (shard channels alone for the shard namespace). Repeating a subscription or
//! dropping one that is not held still confirms, with an unchanged count. The
//! "all" forms confirm each held name in byte order, with falling counts, or
//! give exactly one confirmation with no name when nothing of that namespace
//! is held.
//!
//! # Publish order
//!
//! [`Registry::for_each_route`] yields the route of the exact channel first,
//! then the route of each matching pattern, in the order the patterns were
//! first subscribed; each route lists its subscribers in the order they
//! subscribed. A subscriber holding the channel and two matching patterns is
//! on three routes, so [`Registry::publish`] reports it three times, as
//! Redis does.
//!
//! ```
//! use tidings_core::registry::{Namespace, Registry};
//!
//! let mut registry = Registry::new();
//! assert_eq!(registry.subscribe(Namespace::Channel, 1u64, b"news.sports", |_| {}).unwrap().count, 1);
//! assert_eq!(registry.subscribe(Namespace::Pattern, 2, b"news.*", |_| {}).unwrap().count, 1);
//! assert_eq!(registry.subscribe(Namespace::Pattern, 1, b"*.sports", |_| {}).unwrap().count, 2);
//!
//! let mut deliveries = Vec::new();
//! let n = registry.publish(b"news.sports", |subscriber, pattern| {
//!     deliveries.push((subscriber, pattern.map(|p| p.as_bytes().to_vec())));
//! });
//! assert_eq!(n, 3);
//! assert_eq!(deliveries, [
//!     (1, None),                          // message
//!     (2, Some(b"news.*".to_vec())),      // pmessage
//!     (1, Some(b"*.sports".to_vec())),    // pmessage
//! ]);
//!
//! // Removing a subscriber frees everything it held.
//! registry.remove_subscriber(1, |_| {});
//! registry.remove_subscriber(2, |_| {});
//! assert!(registry.is_empty());
//! ```

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::hash::{BuildHasher, Hash};

use hashbrown::{DefaultHashBuilder, HashTable};

use crate::glob::{Pattern, bytes_eq};
use crate::held::{Held, Sets};
use crate::index::PatternIndex;
use crate::members::Members;
pub use crate::members::{SubscriberIter, SubscriberList};
use crate::slab::{CapacityError, Slab, unlink};

/// One of Redis's three pub/sub namespaces. The same bytes name different
/// things in each: a channel `a*`, a pattern `a*` and a shard channel `a*`
/// are unrelated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Namespace {
    /// Exact channels: `SUBSCRIBE`, `PUBLISH`, the `message` reply.
    Channel = 0,
    /// Glob patterns: `PSUBSCRIBE`, matched by `PUBLISH`, the `pmessage`
    /// reply.
    Pattern = 1,
    /// Shard channels (Redis Cluster's sharded pub/sub): `SSUBSCRIBE`,
    /// `SPUBLISH`, the `smessage` reply.
    Shard = 2,
}

impl Namespace {
    /// The three namespaces.
    pub const ALL: [Namespace; 3] = [Namespace::Channel, Namespace::Pattern, Namespace::Shard];

    /// The command that subscribes in this namespace, as Redis names it in
    /// a confirmation: `"subscribe"`, `"psubscribe"` or `"ssubscribe"`.
    pub const fn subscribe_command(self) -> &'static str {
        match self {
            Namespace::Channel => "subscribe",
            Namespace::Pattern => "psubscribe",
            Namespace::Shard => "ssubscribe",
        }
    }

    /// The command that unsubscribes: `"unsubscribe"`, `"punsubscribe"` or
    /// `"sunsubscribe"`.
    pub const fn unsubscribe_command(self) -> &'static str {
        match self {
            Namespace::Channel => "unsubscribe",
            Namespace::Pattern => "punsubscribe",
            Namespace::Shard => "sunsubscribe",
        }
    }

    /// The kind of the message a subscriber receives through this
    /// namespace: `"message"`, `"pmessage"` or `"smessage"`.
    pub const fn message_kind(self) -> &'static str {
        match self {
            Namespace::Channel => "message",
            Namespace::Pattern => "pmessage",
            Namespace::Shard => "smessage",
        }
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Namespace::Channel => "channel",
            Namespace::Pattern => "pattern",
            Namespace::Shard => "shard channel",
        })
    }
}

/// One of Redis's subscription confirmations: `(command, name, count)`.
///
/// ```
/// use tidings_core::registry::{Namespace, Registry};
///
/// let mut registry: Registry<u64> = Registry::new();
/// let c = registry.subscribe(Namespace::Pattern, 7, b"news.*", |_| {}).unwrap();
/// assert_eq!((c.command(), c.name.as_deref(), c.count), ("psubscribe", Some(&b"news.*"[..]), 1));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Confirmation {
    /// The namespace acted in.
    pub namespace: Namespace,
    /// `true` for a subscribe, `false` for an unsubscribe.
    pub subscribe: bool,
    /// The channel or pattern; `None` for the single confirmation of an
    /// "unsubscribe all" when nothing of that namespace was held (a nil in
    /// RESP). A held name shares the registry's copy; a name that is not held
    /// is copied.
    pub name: Option<Arc<[u8]>>,
    /// The subscriber's number of channels plus patterns after the operation;
    /// for the shard namespace, its number of shard channels.
    pub count: usize,
}

impl Confirmation {
    /// A confirmation, for an integration that answers an operation itself
    /// (for example one it refused).
    pub fn new(
        namespace: Namespace,
        subscribe: bool,
        name: Option<Arc<[u8]>>,
        count: usize,
    ) -> Self {
        Confirmation {
            namespace,
            subscribe,
            name,
            count,
        }
    }

    /// The command Redis names in the reply: `"subscribe"`,
    /// `"punsubscribe"`, ...
    pub const fn command(&self) -> &'static str {
        if self.subscribe {
            self.namespace.subscribe_command()
        } else {
            self.namespace.unsubscribe_command()
        }
    }
}

/// What one operation did to one (subscriber, name) pair, passed to the
/// operation's callback while the registry is being changed: the subscriber
/// joined the name's route, or left it.
///
/// `first_or_last` marks the interest changes: the name gained its first subscriber
/// (the route, and `route`, was created for this join) or lost its last one
/// (the route is freed, and `route` dropped, right after the callback
/// returns). A caller whose route values own data it must not drop while it
/// holds a lock keeps a clone (for example of an `Arc`) and drops that later.
#[derive(Debug)]
#[non_exhaustive]
pub struct Change<'a, V> {
    /// The namespace of the name.
    pub namespace: Namespace,
    /// The name (for a pattern, its source bytes).
    pub name: &'a Arc<[u8]>,
    /// The route's value.
    pub route: &'a V,
    /// `true`: the subscriber joined the route; `false`: it left.
    pub joined: bool,
    /// Whether this join created the route, or this departure frees it.
    pub first_or_last: bool,
}

/// A subscriber's numbers of subscriptions, by namespace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Counts {
    /// Exact channels held.
    pub channels: usize,
    /// Patterns held.
    pub patterns: usize,
    /// Shard channels held.
    pub shard_channels: usize,
}

impl Counts {
    /// Channels plus patterns: the count Redis reports in (p)subscribe and
    /// (p)unsubscribe confirmations.
    pub const fn subscriptions(&self) -> usize {
        self.channels + self.patterns
    }

    /// Everything held, shard channels included.
    pub const fn total(&self) -> usize {
        self.channels + self.patterns + self.shard_channels
    }
}

/// A stable name for a stored pattern while it is held, from
/// [`Registry::for_each_pattern_route`]; reused once the pattern is freed, so
/// compare [`Registry::patterns_version`] before trusting a remembered one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PatternId(pub(crate) u32);

impl PatternId {
    /// The id as a number below 2^32 − 1, for packing into a cache word.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// The id packed by [`get`](Self::get).
    pub const fn from_raw(id: u32) -> PatternId {
        PatternId(id)
    }
}

/// One route of a publish: a channel, pattern or shard channel with its
/// subscribers, in subscription order, and its value.
pub struct Route<'a, S, V> {
    namespace: Namespace,
    name: &'a Arc<[u8]>,
    pattern: Option<&'a Pattern>,
    value: &'a V,
    subscribers: &'a Subscribers<S>,
}

impl<'a, S, V> Route<'a, S, V> {
    /// [`Namespace::Channel`] for the exact channel's route,
    /// [`Namespace::Pattern`] for a pattern's, [`Namespace::Shard`] for a
    /// shard channel's.
    pub fn namespace(&self) -> Namespace {
        self.namespace
    }

    /// The route's name: the channel, or the pattern's source bytes. Shared
    /// with the registry, so cloning it is cheap.
    pub fn name(&self) -> &'a Arc<[u8]> {
        self.name
    }

    /// The compiled pattern of a pattern route.
    pub fn pattern(&self) -> Option<&'a Pattern> {
        self.pattern
    }

    /// The value kept with the name.
    pub fn value(&self) -> &'a V {
        self.value
    }

    /// The subscribers, in subscription order.
    pub fn subscribers(&self) -> SubscriberList<'a, S> {
        self.subscribers.list()
    }

    /// The number of subscribers (never 0).
    pub fn len(&self) -> usize {
        self.subscribers.len()
    }

    /// Always `false`: a name without subscribers is freed.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl<S, V> Clone for Route<'_, S, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S, V> Copy for Route<'_, S, V> {}

impl<S, V> fmt::Debug for Route<'_, S, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route")
            .field("namespace", &self.namespace)
            .field(
                "name",
                &alloc::string::ToString::to_string(&self.name.escape_ascii()),
            )
            .finish_non_exhaustive()
    }
}

/// The subscribers of one name, in subscription order; never empty. One
/// subscriber is kept inline, which is the common case for most names.
enum Subscribers<S> {
    One(S),
    /// Two or more, in an ordered set whose removal is O(1) amortized (see
    /// [`crate::members`]). Boxed so that the enum is 16 bytes for a `u64`
    /// subscriber, not 40: most names have one subscriber.
    Many(Box<Members<S>>),
}

impl<S> Subscribers<S> {
    /// Their number.
    #[inline]
    fn len(&self) -> usize {
        self.list().len()
    }

    #[inline]
    fn list(&self) -> SubscriberList<'_, S> {
        match self {
            Subscribers::One(s) => SubscriberList::from_slice(core::slice::from_ref(s)),
            Subscribers::Many(m) => m.list(),
        }
    }
}

impl<S: Copy + Eq + Hash> Subscribers<S> {
    /// Appends `s`, which must not be listed yet; `hasher` is the one every
    /// call on this list gets.
    fn push(&mut self, s: S, hasher: &DefaultHashBuilder) {
        match self {
            Subscribers::One(first) => {
                *self = Subscribers::Many(Box::new(Members::pair(*first, s)));
            }
            Subscribers::Many(m) => m.push(s, hasher),
        }
    }

    /// Removes `s`; returns whether no subscriber is left (the list must
    /// then be dropped).
    fn remove(&mut self, s: S, hasher: &DefaultHashBuilder) -> bool {
        match self {
            Subscribers::One(only) => *only == s,
            Subscribers::Many(m) => {
                m.remove(s, hasher);
                match (m.len(), m.first()) {
                    (0, _) => true,
                    (1, Some(last)) => {
                        *self = Subscribers::One(last);
                        false
                    }
                    _ => false,
                }
            }
        }
    }

    /// Checks the list: two or more subscribers are never kept as one.
    fn check_invariants(&self, hasher: &DefaultHashBuilder) {
        if let Subscribers::Many(m) = self {
            assert!(m.len() >= 2, "a list of one is kept inline");
            m.check_invariants(hasher);
        }
    }
}

/// A named entry: the shared name, its subscribers and its value.
struct Name<S, V> {
    name: Arc<[u8]>,
    subs: Subscribers<S>,
    value: V,
}

/// A stored pattern's subscribers and value (the pattern itself is the
/// index's key).
struct PatternEntry<S, V> {
    subs: Subscribers<S>,
    value: V,
}

/// Exact channels or shard channels: names with stable ids, found by their
/// bytes through a table of ids (see [`crate::slab`] for why ids).
struct Names<S, V> {
    slab: Slab<Name<S, V>>,
    table: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl<S: Copy + Eq + Hash, V> Names<S, V> {
    fn new() -> Self {
        Names {
            slab: Slab::new(),
            table: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
        }
    }

    #[inline]
    fn id_of(&self, name: &[u8]) -> Option<u32> {
        let hash = self.hasher.hash_one(name);
        let slab = &self.slab;
        self.table
            .find(hash, |&id| {
                slab.get(id).is_some_and(|n| bytes_eq(&n.name, name))
            })
            .copied()
    }

    /// Adds `name`, held by `s` alone, with the value `make` builds from
    /// its shared copy.
    fn insert(
        &mut self,
        name: &[u8],
        s: S,
        make: impl FnOnce(&Arc<[u8]>) -> V,
    ) -> Result<u32, CapacityError> {
        let hash = self.hasher.hash_one(name);
        let shared: Arc<[u8]> = name.into();
        let value = make(&shared);
        let id = self
            .slab
            .insert(Name {
                name: shared,
                subs: Subscribers::One(s),
                value,
            })
            .map_err(|(e, _)| e)?;
        let (slab, hasher) = (&self.slab, &self.hasher);
        self.table
            .insert_unique(hash, id, |&other| rehash(slab, hasher, other));
        Ok(id)
    }

    /// Unlinks and returns name `id`.
    fn remove(&mut self, id: u32) -> Option<Name<S, V>> {
        let hash = self.hasher.hash_one(&*self.slab.get(id)?.name);
        let (slab, hasher) = (&self.slab, &self.hasher);
        unlink(&mut self.table, hash, id, |&other| {
            rehash(slab, hasher, other)
        });
        self.slab.remove(id)
    }

    fn check_invariants(&self) {
        self.slab.check_invariants();
        assert_eq!(
            self.table.len(),
            self.slab.len(),
            "one table entry per name"
        );
        for (id, n) in self.slab.iter() {
            assert_eq!(self.id_of(&n.name), Some(id), "found by its bytes");
        }
    }
}

fn rehash<S, V>(slab: &Slab<Name<S, V>>, hasher: &DefaultHashBuilder, id: u32) -> u64 {
    slab.get(id).map_or(0, |n| hasher.hash_one(&*n.name))
}

/// One subscriber's record.
struct Subscriber<S> {
    id: S,
    held: Held,
}

impl Namespace {
    /// The count a confirmation of this namespace reports.
    fn count(self, held: Option<Held>, sets: &Sets) -> usize {
        let Some(held) = held else {
            return 0;
        };
        match self {
            Namespace::Shard => held.count(sets, Namespace::Shard),
            _ => held.count(sets, Namespace::Channel) + held.count(sets, Namespace::Pattern),
        }
    }
}

fn counts_of(held: Held, sets: &Sets) -> Counts {
    Counts {
        channels: held.count(sets, Namespace::Channel),
        patterns: held.count(sets, Namespace::Pattern),
        shard_channels: held.count(sets, Namespace::Shard),
    }
}

/// Channels, patterns and shard channels, the subscribers that hold them, and
/// publish routing: the whole of Redis pub/sub state, with no I/O.
///
/// `S` identifies a subscriber: a small `Copy` value such as a `u64` that the
/// caller maps to a connection or queue. `V` is a value kept with every name
/// that has subscribers (its *route*): `()` for a registry that only routes,
/// or what a caller needs per name, such as the queues it delivers to. It is
/// built by the function given to [`with_routes`](Self::with_routes) when a
/// name gains its first subscriber, and dropped when it loses its last.
///
/// See the [module docs](self) for the confirmation rules and the publish
/// order.
///
/// # Memory
///
/// Every distinct name is stored once, as an `Arc<[u8]>` shared with the
/// deliveries and confirmations that carry it, in a slab of records named by
/// `u32` ids; the hash tables that find names and subscribers hold only those
/// ids, and a subscriber's own set holds the ids of what it holds, inline
/// while it holds one name. About 31–94 bytes per exact subscription and
/// 38–171 per pattern subscription beyond the name bytes, at a million,
/// with `V = ()` (see the README's memory table). The ids bound each namespace's names,
/// and the subscribers, to 2^32 − 1: [`subscribe`](Self::subscribe) reports a
/// [`CapacityError`] there.
pub struct Registry<S, V = ()> {
    /// Exact channels → subscribers in subscription order.
    channels: Names<S, V>,
    /// Distinct patterns → subscribers in subscription order.
    patterns: PatternIndex<PatternEntry<S, V>>,
    /// Shard channels → subscribers in subscription order.
    shard_channels: Names<S, V>,
    /// What each subscriber holds; subscribers holding nothing are absent.
    subscribers: Slab<Subscriber<S>>,
    /// Ids of `subscribers`, found by the subscriber.
    by_subscriber: HashTable<u32>,
    /// The sets of the subscribers that hold two or more names.
    sets: Sets,
    /// Bumped whenever a distinct pattern is added or removed.
    patterns_version: u64,
    /// Builds the value of a name that gains its first subscriber.
    make: fn(Namespace, &Arc<[u8]>) -> V,
    hasher: DefaultHashBuilder,
}

impl<S: Copy + Eq + Hash, V: Default> Default for Registry<S, V> {
    /// An empty registry whose routes start with `V::default()`.
    fn default() -> Self {
        Self::with_routes(|_, _| V::default())
    }
}

impl<S: Copy + Eq + Hash> Registry<S> {
    /// An empty registry that keeps no value with its names (`V = ()`; see
    /// [`with_routes`](Self::with_routes) and [`Default`] for others).
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S: Copy + Eq + Hash, V> Registry<S, V> {
    /// An empty registry whose routes start with `make(namespace, name)`,
    /// called when a name gains its first subscriber.
    pub fn with_routes(make: fn(Namespace, &Arc<[u8]>) -> V) -> Self {
        Registry {
            channels: Names::new(),
            patterns: PatternIndex::new(),
            shard_channels: Names::new(),
            subscribers: Slab::new(),
            by_subscriber: HashTable::new(),
            sets: Sets::new(),
            patterns_version: 0,
            make,
            hasher: DefaultHashBuilder::default(),
        }
    }

    /// `SUBSCRIBE`, `PSUBSCRIBE` or `SSUBSCRIBE name`, by `namespace`.
    ///
    /// Calls `on_change` once if `subscriber` did not hold `name` yet (it
    /// joins the name's route), and returns the confirmation. Subscribing
    /// again to a name already held changes nothing and confirms with the
    /// same count.
    ///
    /// # Errors
    ///
    /// [`CapacityError`] if the name is new and 2^32 − 1 names of the
    /// namespace are held, or the subscriber is new and 2^32 − 1 subscribers
    /// are; nothing changes then.
    pub fn subscribe(
        &mut self,
        namespace: Namespace,
        subscriber: S,
        name: &[u8],
        mut on_change: impl FnMut(Change<'_, V>),
    ) -> Result<Confirmation, CapacityError> {
        let (sid, new_sub) = match self.sub_id(subscriber) {
            Some(sid) => (sid, false),
            None => (self.insert_sub(subscriber)?, true),
        };
        let existing = self.name_id(namespace, name);
        let held = self.held(sid).unwrap_or(Held::Empty);
        let held_already = existing.is_some_and(|id| held.contains(&self.sets, namespace, id));
        if !held_already && !held.can_grow(&self.sets) {
            return Err(CapacityError);
        }
        let mut first = false;
        let id = match existing {
            Some(id) => id,
            None => {
                let make = self.make;
                let created = match namespace {
                    Namespace::Channel => self
                        .channels
                        .insert(name, subscriber, |n| make(Namespace::Channel, n)),
                    Namespace::Shard => self
                        .shard_channels
                        .insert(name, subscriber, |n| make(Namespace::Shard, n)),
                    Namespace::Pattern => self
                        .patterns
                        .get_or_insert_id(name, |p| PatternEntry {
                            subs: Subscribers::One(subscriber),
                            value: make(Namespace::Pattern, p.shared_bytes()),
                        })
                        .map(|(id, _)| id),
                };
                match created {
                    Ok(id) => {
                        first = true;
                        if namespace == Namespace::Pattern {
                            self.patterns_version += 1;
                        }
                        id
                    }
                    Err(e) => {
                        if new_sub {
                            self.remove_sub(sid);
                        }
                        return Err(e);
                    }
                }
            }
        };
        if !held_already {
            if !first {
                let hasher = self.hasher.clone();
                if let Some(subs) = self.subs_mut(namespace, id) {
                    subs.push(subscriber, &hasher);
                }
            }
            self.with_held(sid, |held, sets| held.insert(sets, namespace, id));
        }
        let count = namespace.count(self.held(sid), &self.sets);
        let shared = match self.route_by_id(namespace, id) {
            Some(route) => {
                if !held_already {
                    on_change(Change {
                        namespace,
                        name: route.name,
                        route: route.value,
                        joined: true,
                        first_or_last: first,
                    });
                }
                Arc::clone(route.name)
            }
            None => name.into(),
        };
        Ok(Confirmation {
            namespace,
            subscribe: true,
            name: Some(shared),
            count,
        })
    }

    /// `UNSUBSCRIBE`, `PUNSUBSCRIBE` or `SUNSUBSCRIBE name`, by `namespace`.
    /// Calls `on_change` once if `subscriber` held `name` (it leaves the
    /// route), and confirms even if it did not.
    pub fn unsubscribe(
        &mut self,
        namespace: Namespace,
        subscriber: S,
        name: &[u8],
        mut on_change: impl FnMut(Change<'_, V>),
    ) -> Confirmation {
        let sid = self.sub_id(subscriber);
        let id = self.name_id(namespace, name);
        let removed = match (sid, id) {
            (Some(sid), Some(id)) => self
                .with_held(sid, |held, sets| held.remove(sets, namespace, id))
                .unwrap_or(false),
            _ => false,
        };
        let count = namespace.count(sid.and_then(|sid| self.held(sid)), &self.sets);
        if let Some(sid) = sid {
            if self.held(sid).is_some_and(Held::is_empty) {
                self.remove_sub(sid);
            }
        }
        let shared = match id {
            Some(id) if removed => self.detach(namespace, id, subscriber, &mut on_change),
            _ => None,
        };
        Confirmation {
            namespace,
            subscribe: false,
            name: Some(shared.unwrap_or_else(|| name.into())),
            count,
        }
    }

    /// `UNSUBSCRIBE`, `PUNSUBSCRIBE` or `SUNSUBSCRIBE` with no arguments:
    /// leaves every name of `namespace` held, calling `on_change` for each,
    /// and returns one confirmation per name, in byte order with falling
    /// counts, or a single one with no name if none was held.
    pub fn unsubscribe_all(
        &mut self,
        namespace: Namespace,
        subscriber: S,
        mut on_change: impl FnMut(Change<'_, V>),
    ) -> Vec<Confirmation> {
        let sid = self.sub_id(subscriber);
        let ids = sid
            .and_then(|sid| self.with_held(sid, |held, sets| held.drain(sets, namespace)))
            .unwrap_or_default();
        let others = namespace.count(sid.and_then(|sid| self.held(sid)), &self.sets);
        if ids.is_empty() {
            return alloc::vec![Confirmation {
                namespace,
                subscribe: false,
                name: None,
                count: others,
            }];
        }
        let mut names: Vec<(Arc<[u8]>, u32)> = ids
            .into_iter()
            .filter_map(|id| Some((Arc::clone(self.route_by_id(namespace, id)?.name), id)))
            .collect();
        names.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if let Some(sid) = sid {
            if self.held(sid).is_some_and(Held::is_empty) {
                self.remove_sub(sid);
            }
        }
        let mut count = others + names.len();
        let mut out = Vec::with_capacity(names.len());
        for (name, id) in names {
            count -= 1;
            self.detach(namespace, id, subscriber, &mut on_change);
            out.push(Confirmation {
                namespace,
                subscribe: false,
                name: Some(name),
                count,
            });
        }
        out
    }

    /// Removes everything `subscriber` holds, silently, as when a Redis client
    /// disconnects, calling `on_change` for every name it leaves, in no
    /// particular order. Returns what it held.
    pub fn remove_subscriber(
        &mut self,
        subscriber: S,
        mut on_change: impl FnMut(Change<'_, V>),
    ) -> Counts {
        let Some(sid) = self.sub_id(subscriber) else {
            return Counts::default();
        };
        let Some(mut record) = self.remove_sub(sid) else {
            return Counts::default();
        };
        let counts = counts_of(record.held, &self.sets);
        for (namespace, id) in record.held.take_all(&mut self.sets) {
            self.detach(namespace, id, subscriber, &mut on_change);
        }
        counts
    }

    /// The id of `subscriber`'s record.
    #[inline]
    fn sub_id(&self, subscriber: S) -> Option<u32> {
        let hash = self.hasher.hash_one(subscriber);
        let slab = &self.subscribers;
        self.by_subscriber
            .find(hash, |&id| slab.get(id).is_some_and(|r| r.id == subscriber))
            .copied()
    }

    fn held(&self, sid: u32) -> Option<Held> {
        self.subscribers.get(sid).map(|r| r.held)
    }

    /// Applies `f` to record `sid`'s set, with the side sets it needs.
    fn with_held<T>(&mut self, sid: u32, f: impl FnOnce(&mut Held, &mut Sets) -> T) -> Option<T> {
        let record = self.subscribers.get_mut(sid)?;
        Some(f(&mut record.held, &mut self.sets))
    }

    /// A new, empty record for `subscriber`.
    fn insert_sub(&mut self, subscriber: S) -> Result<u32, CapacityError> {
        let sid = self
            .subscribers
            .insert(Subscriber {
                id: subscriber,
                held: Held::Empty,
            })
            .map_err(|(e, _)| e)?;
        let (slab, hasher) = (&self.subscribers, &self.hasher);
        self.by_subscriber
            .insert_unique(hasher.hash_one(subscriber), sid, |&other| {
                slab.get(other).map_or(0, |r| hasher.hash_one(r.id))
            });
        Ok(sid)
    }

    /// Removes record `sid` and returns it.
    fn remove_sub(&mut self, sid: u32) -> Option<Subscriber<S>> {
        let hash = self.hasher.hash_one(self.subscribers.get(sid)?.id);
        let (slab, hasher) = (&self.subscribers, &self.hasher);
        unlink(&mut self.by_subscriber, hash, sid, |&other| {
            slab.get(other).map_or(0, |r| hasher.hash_one(r.id))
        });
        self.subscribers.remove(sid)
    }

    /// The id of `name` in `namespace`.
    fn name_id(&self, namespace: Namespace, name: &[u8]) -> Option<u32> {
        match namespace {
            Namespace::Channel => self.channels.id_of(name),
            Namespace::Pattern => self.patterns.id_of(name),
            Namespace::Shard => self.shard_channels.id_of(name),
        }
    }

    /// The subscribers of name `id`, mutably.
    fn subs_mut(&mut self, namespace: Namespace, id: u32) -> Option<&mut Subscribers<S>> {
        match namespace {
            Namespace::Channel => self.channels.slab.get_mut(id).map(|n| &mut n.subs),
            Namespace::Pattern => self.patterns.value_by_id_mut(id).map(|e| &mut e.subs),
            Namespace::Shard => self.shard_channels.slab.get_mut(id).map(|n| &mut n.subs),
        }
    }

    /// The route of name `id`.
    fn route_by_id(&self, namespace: Namespace, id: u32) -> Option<Route<'_, S, V>> {
        match namespace {
            Namespace::Channel => self.channels.slab.get(id).map(|n| name_route(namespace, n)),
            Namespace::Shard => self
                .shard_channels
                .slab
                .get(id)
                .map(|n| name_route(namespace, n)),
            Namespace::Pattern => self.patterns.by_id(id).map(|(p, e)| pattern_route(p, e)),
        }
    }

    /// Removes `subscriber` from the list of name `id`, reporting the change;
    /// frees the name if it was the last subscriber. Returns the name.
    fn detach(
        &mut self,
        namespace: Namespace,
        id: u32,
        subscriber: S,
        on_change: &mut impl FnMut(Change<'_, V>),
    ) -> Option<Arc<[u8]>> {
        let hasher = self.hasher.clone();
        let last = self.subs_mut(namespace, id)?.remove(subscriber, &hasher);
        let route = self.route_by_id(namespace, id)?;
        let name = Arc::clone(route.name);
        on_change(Change {
            namespace,
            name: route.name,
            route: route.value,
            joined: false,
            first_or_last: last,
        });
        if last {
            match namespace {
                Namespace::Channel => drop(self.channels.remove(id)),
                Namespace::Shard => drop(self.shard_channels.remove(id)),
                Namespace::Pattern => {
                    drop(self.patterns.remove_by_id(id));
                    self.patterns_version += 1;
                }
            }
        }
        Some(name)
    }

    /// The route of `name` in `namespace`, if anyone holds it: the exact
    /// channel's, the pattern's (by its source bytes, whether or not any
    /// channel matches it), or the shard channel's. An integration that
    /// receives a Redis `message`, `pmessage` or `smessage` from elsewhere
    /// delivers it to this route.
    pub fn route(&self, namespace: Namespace, name: &[u8]) -> Option<Route<'_, S, V>> {
        self.route_by_id(namespace, self.name_id(namespace, name)?)
    }

    /// `PUBLISH channel`'s routes: calls `f` with the exact channel's route,
    /// if anyone holds it, then with the route of every pattern that
    /// matches, in the order the patterns were first subscribed. Returns the
    /// number of routes. Shard channels are never reached. Allocates nothing
    /// unless more than 16 distinct patterns match (see
    /// [`PatternIndex::for_each_match`]).
    #[inline]
    pub fn for_each_route<'r>(
        &'r self,
        channel: &[u8],
        mut f: impl FnMut(Route<'r, S, V>),
    ) -> usize {
        let mut n = 0;
        if let Some(route) = self.route(Namespace::Channel, channel) {
            f(route);
            n += 1;
        }
        self.for_each_pattern_route(channel, |_, route| {
            f(route);
            n += 1;
        });
        n
    }

    /// The pattern routes of [`for_each_route`](Self::for_each_route) alone,
    /// each with its pattern's id, for a caller that remembers which
    /// patterns matched a channel (see
    /// [`patterns_version`](Self::patterns_version)).
    #[inline]
    pub fn for_each_pattern_route<'r>(
        &'r self,
        channel: &[u8],
        mut f: impl FnMut(PatternId, Route<'r, S, V>),
    ) {
        if self.patterns.is_empty() {
            return;
        }
        self.patterns
            .for_each_match_id(channel, |id, pattern, entry| {
                f(PatternId(id), pattern_route(pattern, entry));
            });
    }

    /// The route of the pattern `id` names, if it is still held.
    pub fn pattern_route(&self, id: PatternId) -> Option<Route<'_, S, V>> {
        self.route_by_id(Namespace::Pattern, id.0)
    }

    /// A number that changes whenever a distinct pattern is added or
    /// removed, and only then. While it is unchanged, the same patterns
    /// match the same channel, and every [`PatternId`] names the same
    /// pattern: a caller may remember which patterns matched a channel (a
    /// *route cache*) and skip [`for_each_pattern_route`](Self::for_each_pattern_route).
    pub fn patterns_version(&self) -> u64 {
        self.patterns_version
    }

    /// `PUBLISH channel`: calls `deliver` once per delivery, with the
    /// subscriber and, for a pattern subscription, the pattern that matched,
    /// in publish order. Returns the number of deliveries, Redis's reply.
    #[inline]
    pub fn publish(&self, channel: &[u8], mut deliver: impl FnMut(S, Option<&Pattern>)) -> usize {
        let mut n = 0;
        self.for_each_route(channel, |route| {
            for &s in route.subscribers() {
                deliver(s, route.pattern());
            }
            n += route.len();
        });
        n
    }

    /// `SPUBLISH shardchannel`: calls `deliver` once per shard subscriber of
    /// exactly this channel, in subscription order, and returns their number.
    pub fn spublish(&self, channel: &[u8], mut deliver: impl FnMut(S)) -> usize {
        let Some(route) = self.route(Namespace::Shard, channel) else {
            return 0;
        };
        route.subscribers().iter().for_each(|&s| deliver(s));
        route.len()
    }

    /// `PUBSUB CHANNELS [pattern]` (for [`Namespace::Channel`]) or
    /// `PUBSUB SHARDCHANNELS [pattern]` (for [`Namespace::Shard`]): the
    /// names with at least one subscriber, optionally only those matching
    /// the glob `pattern`, in no particular order. For
    /// [`Namespace::Pattern`], the patterns held (Redis has no command for
    /// that), filtered the same way.
    pub fn names(
        &self,
        namespace: Namespace,
        pattern: Option<&[u8]>,
    ) -> impl Iterator<Item = &Arc<[u8]>> + '_ {
        let filter = pattern.map(Pattern::new);
        let (names, patterns) = match namespace {
            Namespace::Channel => (Some(&self.channels), None),
            Namespace::Shard => (Some(&self.shard_channels), None),
            Namespace::Pattern => (None, Some(&self.patterns)),
        };
        names
            .into_iter()
            .flat_map(|names| names.slab.values().map(|n| &n.name))
            .chain(
                patterns
                    .into_iter()
                    .flat_map(|p| p.iter().map(|(p, _)| p.shared_bytes())),
            )
            .filter(move |name| filter.as_ref().is_none_or(|p| p.matches(name)))
    }

    /// `PUBSUB NUMSUB` (or `SHARDNUMSUB`) for one name: its number of
    /// subscribers in `namespace`. For channels, pattern subscribers are not
    /// counted, as in Redis.
    pub fn numsub(&self, namespace: Namespace, name: &[u8]) -> usize {
        self.route(namespace, name).map_or(0, |r| r.len())
    }

    /// `PUBSUB NUMPAT`: the number of distinct patterns with at least one
    /// subscriber.
    pub fn numpat(&self) -> usize {
        self.patterns.len()
    }

    /// Calls `f` with every route: each channel, pattern and shard channel
    /// that has at least one subscriber, the interest an integration
    /// mirrors upstream.
    pub fn for_each_name<'r>(&'r self, mut f: impl FnMut(Route<'r, S, V>)) {
        self.channels
            .slab
            .values()
            .for_each(|n| f(name_route(Namespace::Channel, n)));
        self.patterns
            .iter()
            .for_each(|(p, e)| f(pattern_route(p, e)));
        self.shard_channels
            .slab
            .values()
            .for_each(|n| f(name_route(Namespace::Shard, n)));
    }

    /// What `subscriber` holds, by namespace.
    pub fn counts(&self, subscriber: S) -> Counts {
        self.sub_id(subscriber)
            .and_then(|sid| self.held(sid))
            .map(|held| counts_of(held, &self.sets))
            .unwrap_or_default()
    }

    /// Number of subscribers that hold at least one subscription.
    pub fn subscriber_count(&self) -> usize {
        self.subscribers.len()
    }

    /// Whether nothing at all is held.
    pub fn is_empty(&self) -> bool {
        self.subscribers.len() == 0
    }

    /// Checks the registry's invariants: every (subscriber, name) pair is
    /// stored in exactly two places, no name has an empty subscriber list, no
    /// subscriber entry is empty, and the pattern index holds exactly the
    /// patterns held. O(n); meant for tests and fuzz targets, which call it
    /// after every operation.
    ///
    /// # Panics
    ///
    /// Panics, describing the broken invariant, if one does not hold.
    pub fn check_invariants(&self) {
        self.patterns.check_invariants();
        self.channels.check_invariants();
        self.shard_channels.check_invariants();
        self.subscribers.check_invariants();
        assert_eq!(
            self.by_subscriber.len(),
            self.subscribers.len(),
            "one table entry per subscriber"
        );
        self.sets.check_invariants();
        let mut pairs = [0usize; 3];
        let mut side = 0;
        for (sid, record) in self.subscribers.iter() {
            let s = record.id;
            assert_eq!(self.sub_id(s), Some(sid), "subscriber found by its id");
            let held = record.held;
            held.check_invariants(&self.sets);
            side += usize::from(matches!(held, Held::Many(_)));
            assert!(!held.is_empty(), "a subscriber holding nothing is removed");
            for (namespace, id) in held.iter(&self.sets) {
                let route = self.route_by_id(namespace, id);
                assert_eq!(
                    route.map_or(0, |r| r.subscribers().iter().filter(|x| **x == s).count()),
                    1,
                    "{namespace:?} name {id} lists its subscriber once"
                );
                pairs[namespace as usize] += 1;
            }
        }
        let listed = |subs: &Subscribers<S>| {
            subs.check_invariants(&self.hasher);
            subs.len()
        };
        let channel_pairs: usize = self.channels.slab.values().map(|n| listed(&n.subs)).sum();
        let pattern_pairs: usize = self.patterns.iter().map(|(_, e)| listed(&e.subs)).sum();
        let shard_pairs: usize = self
            .shard_channels
            .slab
            .values()
            .map(|n| listed(&n.subs))
            .sum();
        assert_eq!(
            self.sets.len(),
            side,
            "side sets belong to one subscriber each"
        );
        assert_eq!(channel_pairs, pairs[0], "channel pairs stored twice");
        assert_eq!(pattern_pairs, pairs[1], "pattern pairs stored twice");
        assert_eq!(shard_pairs, pairs[2], "shard pairs stored twice");
    }
}

fn name_route<S, V>(namespace: Namespace, n: &Name<S, V>) -> Route<'_, S, V> {
    Route {
        namespace,
        name: &n.name,
        pattern: None,
        value: &n.value,
        subscribers: &n.subs,
    }
}

fn pattern_route<'a, S, V>(pattern: &'a Pattern, e: &'a PatternEntry<S, V>) -> Route<'a, S, V> {
    Route {
        namespace: Namespace::Pattern,
        name: pattern.shared_bytes(),
        pattern: Some(pattern),
        value: &e.value,
        subscribers: &e.subs,
    }
}

/// Whether a hash table holding `len` of `capacity` should give memory back:
/// when fewer than a quarter of its slots are used, it shrinks to twice its
/// length. Each shrink is paid for by the removals since the last one, so it
/// is amortized O(1). Used by every table of the registry and the index.
pub(crate) fn mostly_empty(len: usize, capacity: usize) -> bool {
    capacity > 16 && len * 4 < capacity
}

impl<S, V> fmt::Debug for Registry<S, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("channels", &self.channels.slab.len())
            .field("patterns", &self.patterns.len())
            .field("shard_channels", &self.shard_channels.slab.len())
            .field("subscribers", &self.subscribers.len())
            .finish()
    }
}
