//! The subscription registry: who holds which channel, pattern and shard
//! channel, Redis's confirmations, publish routing and introspection.
//!
//! It follows Redis 7's `src/pubsub.c`. Each subscriber (a Redis client) holds
//! three sets: channels, patterns and shard channels. Every name maps back to
//! its subscribers in subscription order, so every (subscriber, name) pair is
//! stored in exactly two places. A name whose last subscriber leaves is freed
//! at once, and so is a subscriber that holds nothing, so memory follows what
//! is held, not what was ever held.
//!
//! # Confirmations
//!
//! Every subscribe or unsubscribe yields one [`Confirmation`] per name, with
//! Redis's count: the subscriber's channels plus patterns after the operation
//! (shard channels alone for the shard kinds). Repeating a subscription or
//! dropping one that is not held still confirms, with an unchanged count. The
//! "all" forms confirm each held name in byte order, with falling counts, or
//! give exactly one confirmation with no name when nothing of that kind is
//! held. Single-name operations return their confirmation by value (its name
//! borrows the argument); the "all" forms call back once per confirmation. No
//! confirmation allocates.
//!
//! # Publish order
//!
//! [`Registry::publish`] reports the exact subscribers of the channel first,
//! in the order they subscribed, then for each matching pattern, in the order
//! the patterns were first subscribed, that pattern's subscribers in the
//! order they subscribed. A subscriber holding the channel and two matching
//! patterns is reported three times, as in Redis.
//!
//! ```
//! use tidings_core::registry::{Kind, Registry};
//!
//! let mut registry = Registry::new();
//! assert_eq!(registry.subscribe(1u64, b"news.sports").count, 1);
//! assert_eq!(registry.psubscribe(2, b"news.*").count, 1);
//! assert_eq!(registry.psubscribe(1, b"*.sports").count, 2);
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
//! registry.remove_subscriber(1);
//! registry.remove_subscriber(2);
//! assert!(registry.is_empty());
//! ```

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::hash::{BuildHasher, Hash};

use hashbrown::{DefaultHashBuilder, HashTable};

use crate::glob::{Pattern, bytes_eq};
use crate::held::{Held, Sets, Space};
use crate::index::PatternIndex;
use crate::members::Members;
pub use crate::members::{SubscriberIter, SubscriberList};
use crate::routes::{Cached, Found, Routes};
use crate::slab::{CapacityError, Slab, unlink};

/// The kind of a confirmation, named as Redis names it in the reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// `subscribe`
    Subscribe,
    /// `unsubscribe`
    Unsubscribe,
    /// `psubscribe`
    PSubscribe,
    /// `punsubscribe`
    PUnsubscribe,
    /// `ssubscribe`
    SSubscribe,
    /// `sunsubscribe`
    SUnsubscribe,
}

impl Kind {
    /// The name Redis uses in the confirmation reply, e.g. `"psubscribe"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Subscribe => "subscribe",
            Kind::Unsubscribe => "unsubscribe",
            Kind::PSubscribe => "psubscribe",
            Kind::PUnsubscribe => "punsubscribe",
            Kind::SSubscribe => "ssubscribe",
            Kind::SUnsubscribe => "sunsubscribe",
        }
    }

    /// Whether this kind adds a subscription.
    pub const fn is_subscribe(self) -> bool {
        matches!(self, Kind::Subscribe | Kind::PSubscribe | Kind::SSubscribe)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One of Redis's subscription confirmations: `(kind, name, count)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Confirmation<'a> {
    /// What was done.
    pub kind: Kind,
    /// The channel or pattern; `None` for the single confirmation of an
    /// "unsubscribe all" when nothing of that kind was held (a nil in RESP).
    pub name: Option<&'a [u8]>,
    /// The subscriber's number of channels plus patterns after the operation;
    /// for the shard kinds, its number of shard channels.
    pub count: usize,
    /// Whether this operation added the first subscriber of `name` (for the
    /// subscribe kinds) or removed the last one (for the unsubscribe kinds).
    /// Integrations that mirror interest elsewhere, such as a bridge to a
    /// Redis server, subscribe or unsubscribe upstream exactly then.
    pub interest_changed: bool,
}

/// A subscriber's numbers of subscriptions, by kind.
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

impl<S: Copy + Eq + Hash> Subscribers<S> {
    #[inline]
    fn list(&self) -> SubscriberList<'_, S> {
        match self {
            Subscribers::One(s) => SubscriberList::from_slice(core::slice::from_ref(s)),
            Subscribers::Many(m) => m.list(),
        }
    }

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

/// A named entry: the shared name and its subscribers.
struct Name<S> {
    name: Arc<[u8]>,
    subs: Subscribers<S>,
}

/// Exact channels or shard channels: names with stable ids, found by their
/// bytes through a table of ids (see [`crate::slab`] for why ids).
struct Names<S> {
    slab: Slab<Name<S>>,
    table: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl<S: Copy + Eq + Hash> Names<S> {
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

    #[inline]
    fn get(&self, name: &[u8]) -> Option<&Name<S>> {
        self.slab.get(self.id_of(name)?)
    }

    /// Adds `name`, held by `s` alone.
    fn insert(&mut self, name: &[u8], s: S) -> Result<u32, CapacityError> {
        let hash = self.hasher.hash_one(name);
        let id = self
            .slab
            .insert(Name {
                name: name.into(),
                subs: Subscribers::One(s),
            })
            .map_err(|(e, _)| e)?;
        let (slab, hasher) = (&self.slab, &self.hasher);
        self.table
            .insert_unique(hash, id, |&other| rehash(slab, hasher, other));
        Ok(id)
    }

    /// Removes `s` from name `id`; if it was the last subscriber, frees the
    /// name and returns it.
    fn detach(&mut self, id: u32, s: S) -> Option<Arc<[u8]>> {
        if !self.slab.get_mut(id)?.subs.remove(s, &self.hasher) {
            return None;
        }
        let hash = self.hasher.hash_one(&*self.slab.get(id)?.name);
        let (slab, hasher) = (&self.slab, &self.hasher);
        unlink(&mut self.table, hash, id, |&other| {
            rehash(slab, hasher, other)
        });
        self.slab.remove(id).map(|n| n.name)
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
            n.subs.check_invariants(&self.hasher);
        }
    }
}

fn rehash<S>(slab: &Slab<Name<S>>, hasher: &DefaultHashBuilder, id: u32) -> u64 {
    slab.get(id).map_or(0, |n| hasher.hash_one(&*n.name))
}

/// One subscriber's record.
struct Subscriber<S> {
    id: S,
    held: Held,
}

impl Space {
    fn kinds(self) -> (Kind, Kind) {
        match self {
            Space::Channels => (Kind::Subscribe, Kind::Unsubscribe),
            Space::Patterns => (Kind::PSubscribe, Kind::PUnsubscribe),
            Space::Shards => (Kind::SSubscribe, Kind::SUnsubscribe),
        }
    }

    /// The count a confirmation of this space reports.
    fn count(self, held: Option<Held>, sets: &Sets) -> usize {
        let Some(held) = held else {
            return 0;
        };
        match self {
            Space::Shards => held.count(sets, Space::Shards),
            _ => held.count(sets, Space::Channels) + held.count(sets, Space::Patterns),
        }
    }
}

fn counts_of(held: Held, sets: &Sets) -> Counts {
    Counts {
        channels: held.count(sets, Space::Channels),
        patterns: held.count(sets, Space::Patterns),
        shard_channels: held.count(sets, Space::Shards),
    }
}

/// Channels, patterns and shard channels, the subscribers that hold them, and
/// publish routing: the whole of Redis pub/sub state, with no I/O.
///
/// `S` identifies a subscriber: a small `Copy` value such as a `u64` that the
/// caller maps to a connection or queue.
///
/// The single-name operations return their [`Confirmation`]; see the
/// [module docs](self) for the confirmation rules and the publish order.
///
/// # Memory
///
/// Every distinct name is stored once, as an `Arc<[u8]>` shared with the
/// deliveries that carry it, in a slab of records named by `u32` ids; the
/// hash tables that find names and subscribers hold only those ids, and a
/// subscriber's own set holds the ids of what it holds, inline while it
/// holds one name. About 95 bytes per exact subscription and 130 per
/// pattern subscription beyond the name bytes, at a million (see the
/// README's memory table). The ids bound each kind of name, and the
/// subscribers, to 2^32 − 1: the `try_` subscribe forms report a
/// [`CapacityError`] there.
///
/// # The route cache
///
/// Each exact channel remembers which patterns matched it at its last
/// publish, for as long as no pattern is added or removed: one 8-byte cell
/// per exact channel, kept only while at least one pattern exists. A
/// repeated publish to it then skips the pattern index when no pattern or
/// one matches. Several matches, and channels that only patterns hold, ask
/// the index every time.
pub struct Registry<S> {
    /// Exact channels → subscribers in subscription order.
    channels: Names<S>,
    /// Distinct patterns → subscribers in subscription order.
    patterns: PatternIndex<Subscribers<S>>,
    /// Shard channels → subscribers in subscription order.
    shard_channels: Names<S>,
    /// What each subscriber holds; subscribers holding nothing are absent.
    subscribers: Slab<Subscriber<S>>,
    /// Ids of `subscribers`, found by the subscriber.
    by_subscriber: HashTable<u32>,
    /// The sets of the subscribers that hold two or more names.
    sets: Sets,
    /// Which patterns matched each exact channel at its last publish.
    routes: Routes,
    hasher: DefaultHashBuilder,
}

impl<S: Copy + Eq + Hash> Default for Registry<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Copy + Eq + Hash> Registry<S> {
    /// An empty registry.
    pub fn new() -> Self {
        Registry {
            channels: Names::new(),
            patterns: PatternIndex::new(),
            shard_channels: Names::new(),
            subscribers: Slab::new(),
            by_subscriber: HashTable::new(),
            sets: Sets::new(),
            routes: Routes::new(),
            hasher: DefaultHashBuilder::default(),
        }
    }

    /// `SUBSCRIBE channel`.
    ///
    /// If the registry cannot take a new channel or subscriber (2^32 − 1
    /// are held; see [`try_subscribe`](Self::try_subscribe)), nothing
    /// changes and the confirmation reports the unchanged count.
    pub fn subscribe<'a>(&mut self, subscriber: S, channel: &'a [u8]) -> Confirmation<'a> {
        self.add_or_refuse(Space::Channels, subscriber, channel)
    }

    /// `SUBSCRIBE channel`, or [`CapacityError`] if the channel is new and
    /// 2^32 − 1 channels are held, or the subscriber is new and 2^32 − 1
    /// subscribers are; nothing changes then.
    pub fn try_subscribe<'a>(
        &mut self,
        subscriber: S,
        channel: &'a [u8],
    ) -> Result<Confirmation<'a>, CapacityError> {
        self.add(Space::Channels, subscriber, channel)
    }

    /// `UNSUBSCRIBE channel`.
    pub fn unsubscribe<'a>(&mut self, subscriber: S, channel: &'a [u8]) -> Confirmation<'a> {
        self.drop_one(Space::Channels, subscriber, channel)
    }

    /// `UNSUBSCRIBE` with no arguments: calls `confirm` once per channel held
    /// (in byte order), or once with no name if none is held.
    pub fn unsubscribe_all(&mut self, subscriber: S, confirm: impl FnMut(Confirmation<'_>)) {
        self.drop_all(Space::Channels, subscriber, confirm);
    }

    /// `PSUBSCRIBE pattern`.
    ///
    /// If the registry cannot take a new pattern or subscriber (see
    /// [`try_psubscribe`](Self::try_psubscribe)), nothing changes and the
    /// confirmation reports the unchanged count.
    pub fn psubscribe<'a>(&mut self, subscriber: S, pattern: &'a [u8]) -> Confirmation<'a> {
        self.add_or_refuse(Space::Patterns, subscriber, pattern)
    }

    /// `PSUBSCRIBE pattern`, or [`CapacityError`] if the pattern is new and
    /// 2^32 − 1 distinct patterns are held, or the subscriber is new and
    /// 2^32 − 1 subscribers are; nothing changes then.
    pub fn try_psubscribe<'a>(
        &mut self,
        subscriber: S,
        pattern: &'a [u8],
    ) -> Result<Confirmation<'a>, CapacityError> {
        self.add(Space::Patterns, subscriber, pattern)
    }

    /// `PUNSUBSCRIBE pattern`.
    pub fn punsubscribe<'a>(&mut self, subscriber: S, pattern: &'a [u8]) -> Confirmation<'a> {
        self.drop_one(Space::Patterns, subscriber, pattern)
    }

    /// `PUNSUBSCRIBE` with no arguments: calls `confirm` once per pattern held
    /// (in byte order), or once with no name if none is held.
    pub fn punsubscribe_all(&mut self, subscriber: S, confirm: impl FnMut(Confirmation<'_>)) {
        self.drop_all(Space::Patterns, subscriber, confirm);
    }

    /// `SSUBSCRIBE shardchannel`.
    ///
    /// If the registry cannot take a new shard channel or subscriber (see
    /// [`try_ssubscribe`](Self::try_ssubscribe)), nothing changes and the
    /// confirmation reports the unchanged count.
    pub fn ssubscribe<'a>(&mut self, subscriber: S, channel: &'a [u8]) -> Confirmation<'a> {
        self.add_or_refuse(Space::Shards, subscriber, channel)
    }

    /// `SSUBSCRIBE shardchannel`, or [`CapacityError`] if the shard channel
    /// is new and 2^32 − 1 are held, or the subscriber is new and 2^32 − 1
    /// subscribers are; nothing changes then.
    pub fn try_ssubscribe<'a>(
        &mut self,
        subscriber: S,
        channel: &'a [u8],
    ) -> Result<Confirmation<'a>, CapacityError> {
        self.add(Space::Shards, subscriber, channel)
    }

    /// `SUNSUBSCRIBE shardchannel`.
    pub fn sunsubscribe<'a>(&mut self, subscriber: S, channel: &'a [u8]) -> Confirmation<'a> {
        self.drop_one(Space::Shards, subscriber, channel)
    }

    /// `SUNSUBSCRIBE` with no arguments: calls `confirm` once per shard channel
    /// held (in byte order), or once with no name if none is held.
    pub fn sunsubscribe_all(&mut self, subscriber: S, confirm: impl FnMut(Confirmation<'_>)) {
        self.drop_all(Space::Shards, subscriber, confirm);
    }

    /// Removes everything `subscriber` holds, silently, as when a Redis client
    /// disconnects. `interest` is called with the kind and name of every entry
    /// this frees (the names whose last subscriber this was). Returns what the
    /// subscriber held.
    pub fn remove_subscriber_with(
        &mut self,
        subscriber: S,
        mut interest: impl FnMut(Kind, &[u8]),
    ) -> Counts {
        let Some(sid) = self.sub_id(subscriber) else {
            return Counts::default();
        };
        let Some(mut record) = self.remove_sub(sid) else {
            return Counts::default();
        };
        let counts = counts_of(record.held, &self.sets);
        for (space, id) in record.held.take_all(&mut self.sets) {
            if let Some(name) = self.detach(space, id, subscriber) {
                interest(space.kinds().1, &name);
            }
        }
        counts
    }

    /// Removes everything `subscriber` holds, silently. Returns what it held.
    pub fn remove_subscriber(&mut self, subscriber: S) -> Counts {
        self.remove_subscriber_with(subscriber, |_, _| {})
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

    /// The id of `name` in `space`.
    fn name_id(&self, space: Space, name: &[u8]) -> Option<u32> {
        match space {
            Space::Channels => self.channels.id_of(name),
            Space::Patterns => self.patterns.id_of(name),
            Space::Shards => self.shard_channels.id_of(name),
        }
    }

    /// The shared name of id `id` in `space`.
    fn name_of(&self, space: Space, id: u32) -> Option<Arc<[u8]>> {
        match space {
            Space::Channels => self.channels.slab.get(id).map(|n| n.name.clone()),
            Space::Patterns => self
                .patterns
                .by_id(id)
                .map(|(p, _)| p.shared_bytes().clone()),
            Space::Shards => self.shard_channels.slab.get(id).map(|n| n.name.clone()),
        }
    }

    fn add_or_refuse<'a>(
        &mut self,
        space: Space,
        subscriber: S,
        name: &'a [u8],
    ) -> Confirmation<'a> {
        self.add(space, subscriber, name)
            .unwrap_or_else(|_| Confirmation {
                kind: space.kinds().0,
                name: Some(name),
                count: space.count(
                    self.sub_id(subscriber).and_then(|sid| self.held(sid)),
                    &self.sets,
                ),
                interest_changed: false,
            })
    }

    fn add<'a>(
        &mut self,
        space: Space,
        subscriber: S,
        name: &'a [u8],
    ) -> Result<Confirmation<'a>, CapacityError> {
        let (sid, new_sub) = match self.sub_id(subscriber) {
            Some(sid) => (sid, false),
            None => (self.insert_sub(subscriber)?, true),
        };
        let existing = self.name_id(space, name);
        let held = self.held(sid).unwrap_or(Held::Empty);
        let held_already = existing.is_some_and(|id| held.contains(&self.sets, space, id));
        let mut interest_changed = false;
        if !held_already && !held.can_grow(&self.sets) {
            return Err(CapacityError);
        }
        if !held_already {
            let id = match existing {
                Some(id) => {
                    let subs = match space {
                        Space::Channels => self
                            .channels
                            .slab
                            .get_mut(id)
                            .map(|n| (&mut n.subs, &self.channels.hasher)),
                        Space::Patterns => self
                            .patterns
                            .value_by_id_mut(id)
                            .map(|subs| (subs, &self.hasher)),
                        Space::Shards => self
                            .shard_channels
                            .slab
                            .get_mut(id)
                            .map(|n| (&mut n.subs, &self.shard_channels.hasher)),
                    };
                    if let Some((subs, hasher)) = subs {
                        subs.push(subscriber, hasher);
                    }
                    id
                }
                None => {
                    let created = match space {
                        Space::Channels => self.channels.insert(name, subscriber),
                        Space::Patterns => self
                            .patterns
                            .get_or_insert_id(name, || Subscribers::One(subscriber))
                            .map(|(id, _)| id),
                        Space::Shards => self.shard_channels.insert(name, subscriber),
                    };
                    match created {
                        Ok(id) => {
                            interest_changed = true;
                            match space {
                                Space::Channels => {
                                    self.routes.channel_added(id, !self.patterns.is_empty());
                                }
                                Space::Patterns => self.patterns_changed(),
                                Space::Shards => {}
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
            self.with_held(sid, |held, sets| held.insert(sets, space, id));
        }
        Ok(Confirmation {
            kind: space.kinds().0,
            name: Some(name),
            count: space.count(self.held(sid), &self.sets),
            interest_changed,
        })
    }

    fn drop_one<'a>(&mut self, space: Space, subscriber: S, name: &'a [u8]) -> Confirmation<'a> {
        let kind = space.kinds().1;
        let Some(sid) = self.sub_id(subscriber) else {
            return Confirmation {
                kind,
                name: Some(name),
                count: 0,
                interest_changed: false,
            };
        };
        let id = self.name_id(space, name);
        let removed = match id {
            Some(id) => self
                .with_held(sid, |held, sets| held.remove(sets, space, id))
                .unwrap_or(false),
            None => false,
        };
        let count = space.count(self.held(sid), &self.sets);
        if self.held(sid).is_some_and(Held::is_empty) {
            self.remove_sub(sid);
        }
        let interest_changed = match id {
            Some(id) if removed => self.detach(space, id, subscriber).is_some(),
            _ => false,
        };
        Confirmation {
            kind,
            name: Some(name),
            count,
            interest_changed,
        }
    }

    fn drop_all(&mut self, space: Space, subscriber: S, mut confirm: impl FnMut(Confirmation<'_>)) {
        let kind = space.kinds().1;
        let sid = self.sub_id(subscriber);
        let ids = sid
            .and_then(|sid| self.with_held(sid, |held, sets| held.drain(sets, space)))
            .unwrap_or_default();
        let others = space.count(sid.and_then(|sid| self.held(sid)), &self.sets);
        if ids.is_empty() {
            confirm(Confirmation {
                kind,
                name: None,
                count: others,
                interest_changed: false,
            });
            return;
        }
        let mut names: Vec<(Arc<[u8]>, u32)> = ids
            .into_iter()
            .filter_map(|id| Some((self.name_of(space, id)?, id)))
            .collect();
        names.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if let Some(sid) = sid {
            if self.held(sid).is_some_and(Held::is_empty) {
                self.remove_sub(sid);
            }
        }
        let mut count = others + names.len();
        for (name, id) in names {
            count -= 1;
            let interest_changed = self.detach(space, id, subscriber).is_some();
            confirm(Confirmation {
                kind,
                name: Some(&name),
                count,
                interest_changed,
            });
        }
    }

    /// Removes `subscriber` from the list of name `id`. If that freed the
    /// name (it was the last subscriber), returns it.
    fn detach(&mut self, space: Space, id: u32, subscriber: S) -> Option<Arc<[u8]>> {
        match space {
            Space::Channels => self.channels.detach(id, subscriber),
            Space::Shards => self.shard_channels.detach(id, subscriber),
            Space::Patterns => {
                if !self
                    .patterns
                    .value_by_id_mut(id)?
                    .remove(subscriber, &self.hasher)
                {
                    return None;
                }
                let removed = self.patterns.remove_by_id(id)?;
                self.patterns_changed();
                Some(removed.0.shared_bytes().clone())
            }
        }
    }

    /// A distinct pattern was added or removed: cached routes are stale.
    fn patterns_changed(&mut self) {
        self.routes
            .patterns_changed(!self.patterns.is_empty(), self.channels.slab.id_bound());
    }

    /// `PUBLISH channel`: calls `deliver` once per delivery, with the
    /// subscriber and, for a pattern subscription, the pattern that matched.
    /// Returns the number of deliveries, Redis's reply. Shard subscribers are
    /// never reached. Allocates nothing unless more than 16 distinct patterns
    /// match (see [`PatternIndex::for_each_match`]).
    #[inline]
    pub fn publish(&self, channel: &[u8], mut deliver: impl FnMut(S, Option<&Pattern>)) -> usize {
        self.publish_with_name(channel, |s, pattern, _| deliver(s, pattern))
    }

    /// Like [`publish`](Self::publish), and also passes `deliver` the
    /// registry's shared copy of the channel name when the channel has exact
    /// subscribers (for every delivery of the publish, pattern ones
    /// included), so a caller that attaches the name to each delivery can
    /// share it instead of allocating its own.
    #[inline]
    pub fn publish_with_name(
        &self,
        channel: &[u8],
        mut deliver: impl FnMut(S, Option<&Pattern>, Option<&Arc<[u8]>>),
    ) -> usize {
        let mut n = 0;
        let mut name = None;
        let mut route = None;
        if let Some(id) = self.channels.id_of(channel) {
            if let Some(entry) = self.channels.slab.get(id) {
                name = Some(&entry.name);
                let subs = entry.subs.list();
                for &s in subs {
                    deliver(s, None, name);
                }
                n += subs.len();
                route = Some(id);
            }
        }
        if self.patterns.is_empty() {
            return n;
        }
        // A channel with exact subscribers remembers what matched it last
        // time (see `crate::routes`); several matches are not cached.
        if let Some(id) = route {
            match self.routes.get(id) {
                Cached::NoPattern => return n,
                Cached::One(pattern_id) => {
                    if let Some((pattern, subs)) = self.patterns.by_id(pattern_id) {
                        let subs = subs.list();
                        for &s in subs {
                            deliver(s, Some(pattern), name);
                        }
                        return n + subs.len();
                    }
                }
                Cached::Unknown => {}
            }
        }
        let mut found = Found::Nothing;
        self.patterns
            .for_each_match_id(channel, |pattern_id, pattern, subs| {
                found = found.and(pattern_id);
                let subs = subs.list();
                for &s in subs {
                    deliver(s, Some(pattern), name);
                }
                n += subs.len();
            });
        if let Some(id) = route {
            self.routes.set(id, found);
        }
        n
    }

    /// `SPUBLISH shardchannel`: calls `deliver` once per shard subscriber of
    /// exactly this channel, in subscription order, and returns their number.
    pub fn spublish(&self, channel: &[u8], mut deliver: impl FnMut(S)) -> usize {
        let subs = self.shard_subscribers(channel);
        subs.iter().for_each(|&s| deliver(s));
        subs.len()
    }

    /// `PUBSUB CHANNELS [pattern]`: the channels with at least one exact
    /// subscriber, optionally only those matching the glob `pattern`, in no
    /// particular order. Patterns are never listed.
    pub fn channels(&self, pattern: Option<&[u8]>) -> impl Iterator<Item = &Arc<[u8]>> + '_ {
        filter_names(&self.channels, pattern)
    }

    /// `PUBSUB SHARDCHANNELS [pattern]`: like [`channels`](Self::channels) for
    /// shard channels.
    pub fn shard_channels(&self, pattern: Option<&[u8]>) -> impl Iterator<Item = &Arc<[u8]>> + '_ {
        filter_names(&self.shard_channels, pattern)
    }

    /// The exact subscribers of `channel`, in subscription order (pattern
    /// subscribers are not included). An integration that receives a Redis
    /// `message` from elsewhere delivers it to these.
    pub fn exact_subscribers(&self, channel: &[u8]) -> SubscriberList<'_, S> {
        self.channels
            .get(channel)
            .map_or_else(SubscriberList::default, |n| n.subs.list())
    }

    /// The stored pattern and its subscribers, in subscription order, if
    /// anyone holds `pattern`. An integration that receives a Redis
    /// `pmessage` from elsewhere delivers it to these.
    pub fn pattern_subscribers(&self, pattern: &[u8]) -> Option<(&Pattern, SubscriberList<'_, S>)> {
        self.patterns.get(pattern).map(|(p, s)| (p, s.list()))
    }

    /// The shard subscribers of `channel`, in subscription order.
    pub fn shard_subscribers(&self, channel: &[u8]) -> SubscriberList<'_, S> {
        self.shard_channels
            .get(channel)
            .map_or_else(SubscriberList::default, |n| n.subs.list())
    }

    /// Calls `f` with the kind (`Subscribe`, `PSubscribe` or `SSubscribe`)
    /// and name of every channel, pattern and shard channel that has at
    /// least one subscriber: the interest an integration mirrors upstream.
    pub fn for_each_name(&self, mut f: impl FnMut(Kind, &[u8])) {
        self.channels
            .slab
            .values()
            .for_each(|n| f(Kind::Subscribe, &n.name));
        self.patterns
            .iter()
            .for_each(|(p, _)| f(Kind::PSubscribe, p.as_bytes()));
        self.shard_channels
            .slab
            .values()
            .for_each(|n| f(Kind::SSubscribe, &n.name));
    }

    /// `PUBSUB NUMSUB channel`: the number of exact subscribers; pattern
    /// subscribers are not counted.
    pub fn numsub(&self, channel: &[u8]) -> usize {
        self.exact_subscribers(channel).len()
    }

    /// `PUBSUB SHARDNUMSUB shardchannel`.
    pub fn shard_numsub(&self, channel: &[u8]) -> usize {
        self.shard_subscribers(channel).len()
    }

    /// `PUBSUB NUMPAT`: the number of distinct patterns with at least one
    /// subscriber.
    pub fn numpat(&self) -> usize {
        self.patterns.len()
    }

    /// The patterns currently held, each with its number of subscribers, in
    /// no particular order.
    pub fn patterns(&self) -> impl Iterator<Item = (&Pattern, usize)> + '_ {
        self.patterns.iter().map(|(p, subs)| (p, subs.list().len()))
    }

    /// What `subscriber` holds, by kind.
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
        // Every cached route says what the index says now.
        for (id, n) in self.channels.slab.iter() {
            let cached = self.routes.get(id);
            if cached == Cached::Unknown {
                continue;
            }
            let mut found = Found::Nothing;
            self.patterns
                .for_each_match_id(&n.name, |pattern_id, _, _| found = found.and(pattern_id));
            let expected = match found {
                Found::Nothing => Cached::NoPattern,
                Found::One(pattern_id) => Cached::One(pattern_id),
                Found::Several => Cached::Unknown,
            };
            assert_eq!(cached, expected, "the cached route of channel {id}");
        }
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
            for (space, id) in held.iter(&self.sets) {
                let subs = match space {
                    Space::Channels => self.channels.slab.get(id).map(|n| &n.subs),
                    Space::Patterns => self.patterns.by_id(id).map(|(_, subs)| subs),
                    Space::Shards => self.shard_channels.slab.get(id).map(|n| &n.subs),
                };
                assert_eq!(
                    subs.map_or(0, |subs| subs.list().iter().filter(|x| **x == s).count()),
                    1,
                    "{space:?} name {id} lists its subscriber once"
                );
                pairs[space as usize] += 1;
            }
        }
        // Exact and shard lists were checked with their tables' hasher.
        let listed = |subs: &Subscribers<S>| subs.list().len();
        let channel_pairs: usize = self.channels.slab.values().map(|n| listed(&n.subs)).sum();
        let pattern_pairs: usize = self
            .patterns
            .iter()
            .map(|(_, s)| {
                s.check_invariants(&self.hasher);
                listed(s)
            })
            .sum();
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

/// Whether a hash table holding `len` of `capacity` should give memory back:
/// when fewer than a quarter of its slots are used, it shrinks to twice its
/// length. Each shrink is paid for by the removals since the last one, so it
/// is amortized O(1). Used by every table of the registry and the index.
pub(crate) fn mostly_empty(len: usize, capacity: usize) -> bool {
    capacity > 16 && len * 4 < capacity
}

fn filter_names<'a, S: Copy + Eq + Hash>(
    names: &'a Names<S>,
    pattern: Option<&[u8]>,
) -> impl Iterator<Item = &'a Arc<[u8]>> + 'a {
    let pattern = pattern.map(Pattern::new);
    names
        .slab
        .values()
        .map(|n| &n.name)
        .filter(move |name| pattern.as_ref().is_none_or(|p| p.matches(name)))
}

impl<S: fmt::Debug> fmt::Debug for Registry<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("channels", &self.channels.slab.len())
            .field("patterns", &self.patterns.len())
            .field("shard_channels", &self.shard_channels.slab.len())
            .field("subscribers", &self.subscribers.len())
            .finish()
    }
}
