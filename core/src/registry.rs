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

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::hash::Hash;

use hashbrown::{HashMap, HashSet};
use smallvec::SmallVec;

use crate::glob::Pattern;
use crate::index::PatternIndex;

/// The subscribers of one name, in subscription order; never empty.
type Subscribers<S> = SmallVec<[S; 2]>;

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

/// What one subscriber holds.
#[derive(Default)]
struct Held {
    channels: HashSet<Arc<[u8]>>,
    patterns: HashSet<Arc<[u8]>>,
    shard_channels: HashSet<Arc<[u8]>>,
}

impl Held {
    fn is_empty(&self) -> bool {
        self.channels.is_empty() && self.patterns.is_empty() && self.shard_channels.is_empty()
    }

    fn counts(&self) -> Counts {
        Counts {
            channels: self.channels.len(),
            patterns: self.patterns.len(),
            shard_channels: self.shard_channels.len(),
        }
    }
}

/// The three namespaces a subscriber can hold names in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Space {
    Channels,
    Patterns,
    Shards,
}

impl Space {
    fn kinds(self) -> (Kind, Kind) {
        match self {
            Space::Channels => (Kind::Subscribe, Kind::Unsubscribe),
            Space::Patterns => (Kind::PSubscribe, Kind::PUnsubscribe),
            Space::Shards => (Kind::SSubscribe, Kind::SUnsubscribe),
        }
    }

    fn set(self, held: &Held) -> &HashSet<Arc<[u8]>> {
        match self {
            Space::Channels => &held.channels,
            Space::Patterns => &held.patterns,
            Space::Shards => &held.shard_channels,
        }
    }

    fn set_mut(self, held: &mut Held) -> &mut HashSet<Arc<[u8]>> {
        match self {
            Space::Channels => &mut held.channels,
            Space::Patterns => &mut held.patterns,
            Space::Shards => &mut held.shard_channels,
        }
    }

    /// The count a confirmation of this space reports.
    fn count(self, held: Option<&Held>) -> usize {
        let counts = held.map(Held::counts).unwrap_or_default();
        match self {
            Space::Shards => counts.shard_channels,
            _ => counts.subscriptions(),
        }
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
pub struct Registry<S> {
    /// Exact channel → subscribers in subscription order.
    channels: HashMap<Arc<[u8]>, Subscribers<S>>,
    /// Distinct patterns → subscribers in subscription order.
    patterns: PatternIndex<Subscribers<S>>,
    /// Shard channel → subscribers in subscription order.
    shard_channels: HashMap<Arc<[u8]>, Subscribers<S>>,
    /// What each subscriber holds; subscribers holding nothing are absent.
    subscribers: HashMap<S, Held>,
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
            channels: HashMap::default(),
            patterns: PatternIndex::new(),
            shard_channels: HashMap::default(),
            subscribers: HashMap::default(),
        }
    }

    /// `SUBSCRIBE channel`.
    pub fn subscribe<'a>(&mut self, subscriber: S, channel: &'a [u8]) -> Confirmation<'a> {
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
    pub fn psubscribe<'a>(&mut self, subscriber: S, pattern: &'a [u8]) -> Confirmation<'a> {
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
    pub fn ssubscribe<'a>(&mut self, subscriber: S, channel: &'a [u8]) -> Confirmation<'a> {
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
        let Some(held) = self.subscribers.remove(&subscriber) else {
            return Counts::default();
        };
        shrink(&mut self.subscribers);
        let counts = held.counts();
        for (space, set) in [
            (Space::Channels, held.channels),
            (Space::Patterns, held.patterns),
            (Space::Shards, held.shard_channels),
        ] {
            for name in set {
                if self.detach(space, subscriber, &name) {
                    interest(space.kinds().1, &name);
                }
            }
        }
        counts
    }

    /// Removes everything `subscriber` holds, silently. Returns what it held.
    pub fn remove_subscriber(&mut self, subscriber: S) -> Counts {
        self.remove_subscriber_with(subscriber, |_, _| {})
    }

    fn add<'a>(&mut self, space: Space, subscriber: S, name: &'a [u8]) -> Confirmation<'a> {
        let held = self.subscribers.entry(subscriber).or_default();
        let mut interest_changed = false;
        if !space.set(held).contains(name) {
            let shared = match space {
                Space::Patterns => {
                    let (pattern, subs, inserted) =
                        self.patterns.get_or_insert_with(name, SmallVec::new);
                    subs.push(subscriber);
                    interest_changed = inserted;
                    pattern.shared_bytes().clone()
                }
                Space::Channels | Space::Shards => {
                    let map = if space == Space::Channels {
                        &mut self.channels
                    } else {
                        &mut self.shard_channels
                    };
                    match map.get_key_value_mut(name) {
                        Some((key, subs)) => {
                            subs.push(subscriber);
                            key.clone()
                        }
                        None => {
                            let key: Arc<[u8]> = name.into();
                            map.insert(key.clone(), smallvec::smallvec![subscriber]);
                            interest_changed = true;
                            key
                        }
                    }
                }
            };
            space.set_mut(held).insert(shared);
        }
        Confirmation {
            kind: space.kinds().0,
            name: Some(name),
            count: space.count(Some(held)),
            interest_changed,
        }
    }

    fn drop_one<'a>(&mut self, space: Space, subscriber: S, name: &'a [u8]) -> Confirmation<'a> {
        let kind = space.kinds().1;
        let Some(held) = self.subscribers.get_mut(&subscriber) else {
            return Confirmation {
                kind,
                name: Some(name),
                count: 0,
                interest_changed: false,
            };
        };
        let removed = space.set_mut(held).remove(name);
        shrink_set(space.set_mut(held));
        let count = space.count(Some(held));
        if held.is_empty() {
            self.subscribers.remove(&subscriber);
            shrink(&mut self.subscribers);
        }
        let interest_changed = removed && self.detach(space, subscriber, name);
        Confirmation {
            kind,
            name: Some(name),
            count,
            interest_changed,
        }
    }

    fn drop_all(&mut self, space: Space, subscriber: S, mut confirm: impl FnMut(Confirmation<'_>)) {
        let kind = space.kinds().1;
        let mut names: Vec<Arc<[u8]>> = match self.subscribers.get_mut(&subscriber) {
            Some(held) => {
                let set = space.set_mut(held);
                let names = set.drain().collect();
                shrink_set(set);
                names
            }
            None => Vec::new(),
        };
        if names.is_empty() {
            let count = space.count(self.subscribers.get(&subscriber));
            confirm(Confirmation {
                kind,
                name: None,
                count,
                interest_changed: false,
            });
            return;
        }
        names.sort_unstable();
        let others = space.count(self.subscribers.get(&subscriber));
        if self
            .subscribers
            .get(&subscriber)
            .is_some_and(Held::is_empty)
        {
            self.subscribers.remove(&subscriber);
        }
        let mut count = others + names.len();
        for name in names {
            count -= 1;
            let interest_changed = self.detach(space, subscriber, &name);
            confirm(Confirmation {
                kind,
                name: Some(&name),
                count,
                interest_changed,
            });
        }
    }

    /// Removes `subscriber` from `name`'s list. Returns whether that freed
    /// the name (it was the last subscriber).
    fn detach(&mut self, space: Space, subscriber: S, name: &[u8]) -> bool {
        let emptied = match space {
            Space::Patterns => match self.patterns.get_mut(name) {
                Some(subs) => {
                    subs.retain(|s| *s != subscriber);
                    subs.is_empty()
                }
                None => return false,
            },
            Space::Channels | Space::Shards => {
                let map = if space == Space::Channels {
                    &mut self.channels
                } else {
                    &mut self.shard_channels
                };
                match map.get_mut(name) {
                    Some(subs) => {
                        subs.retain(|s| *s != subscriber);
                        subs.is_empty()
                    }
                    None => return false,
                }
            }
        };
        if !emptied {
            return false;
        }
        if space == Space::Patterns {
            self.patterns.remove(name);
        } else if space == Space::Channels {
            self.channels.remove(name);
            shrink(&mut self.channels);
        } else {
            self.shard_channels.remove(name);
            shrink(&mut self.shard_channels);
        }
        true
    }

    /// `PUBLISH channel`: calls `deliver` once per delivery, with the
    /// subscriber and, for a pattern subscription, the pattern that matched.
    /// Returns the number of deliveries, Redis's reply. Shard subscribers are
    /// never reached. Allocates nothing unless more than 16 distinct patterns
    /// match (see [`PatternIndex::for_each_match`]).
    pub fn publish(&self, channel: &[u8], mut deliver: impl FnMut(S, Option<&Pattern>)) -> usize {
        self.publish_with_name(channel, |s, pattern, _| deliver(s, pattern))
    }

    /// Like [`publish`](Self::publish), and also passes `deliver` the
    /// registry's shared copy of the channel name when the channel has exact
    /// subscribers (for every delivery of the publish, pattern ones
    /// included), so a caller that attaches the name to each delivery can
    /// share it instead of allocating its own.
    pub fn publish_with_name(
        &self,
        channel: &[u8],
        mut deliver: impl FnMut(S, Option<&Pattern>, Option<&Arc<[u8]>>),
    ) -> usize {
        let mut n = 0;
        let mut name = None;
        if let Some((shared, subs)) = self.channels.get_key_value(channel) {
            name = Some(shared);
            for &s in subs {
                deliver(s, None, name);
            }
            n += subs.len();
        }
        self.patterns.for_each_match(channel, |pattern, subs| {
            for &s in subs {
                deliver(s, Some(pattern), name);
            }
            n += subs.len();
        });
        n
    }

    /// `SPUBLISH shardchannel`: calls `deliver` once per shard subscriber of
    /// exactly this channel, in subscription order, and returns their number.
    pub fn spublish(&self, channel: &[u8], mut deliver: impl FnMut(S)) -> usize {
        match self.shard_channels.get(channel) {
            Some(subs) => {
                subs.iter().for_each(|&s| deliver(s));
                subs.len()
            }
            None => 0,
        }
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
    pub fn exact_subscribers(&self, channel: &[u8]) -> &[S] {
        self.channels.get(channel).map_or(&[], |s| s.as_slice())
    }

    /// The stored pattern and its subscribers, in subscription order, if
    /// anyone holds `pattern`. An integration that receives a Redis
    /// `pmessage` from elsewhere delivers it to these.
    pub fn pattern_subscribers(&self, pattern: &[u8]) -> Option<(&Pattern, &[S])> {
        self.patterns.get(pattern).map(|(p, s)| (p, s.as_slice()))
    }

    /// The shard subscribers of `channel`, in subscription order.
    pub fn shard_subscribers(&self, channel: &[u8]) -> &[S] {
        self.shard_channels
            .get(channel)
            .map_or(&[], |s| s.as_slice())
    }

    /// Calls `f` with the kind (`Subscribe`, `PSubscribe` or `SSubscribe`)
    /// and name of every channel, pattern and shard channel that has at
    /// least one subscriber: the interest an integration mirrors upstream.
    pub fn for_each_name(&self, mut f: impl FnMut(Kind, &[u8])) {
        self.channels.keys().for_each(|n| f(Kind::Subscribe, n));
        self.patterns
            .iter()
            .for_each(|(p, _)| f(Kind::PSubscribe, p.as_bytes()));
        self.shard_channels
            .keys()
            .for_each(|n| f(Kind::SSubscribe, n));
    }

    /// `PUBSUB NUMSUB channel`: the number of exact subscribers; pattern
    /// subscribers are not counted.
    pub fn numsub(&self, channel: &[u8]) -> usize {
        self.channels.get(channel).map_or(0, |s| s.len())
    }

    /// `PUBSUB SHARDNUMSUB shardchannel`.
    pub fn shard_numsub(&self, channel: &[u8]) -> usize {
        self.shard_channels.get(channel).map_or(0, |s| s.len())
    }

    /// `PUBSUB NUMPAT`: the number of distinct patterns with at least one
    /// subscriber.
    pub fn numpat(&self) -> usize {
        self.patterns.len()
    }

    /// The patterns currently held, each with its number of subscribers, in
    /// no particular order.
    pub fn patterns(&self) -> impl Iterator<Item = (&Pattern, usize)> + '_ {
        self.patterns.iter().map(|(p, subs)| (p, subs.len()))
    }

    /// What `subscriber` holds, by kind.
    pub fn counts(&self, subscriber: S) -> Counts {
        self.subscribers
            .get(&subscriber)
            .map(Held::counts)
            .unwrap_or_default()
    }

    /// Number of subscribers that hold at least one subscription.
    pub fn subscriber_count(&self) -> usize {
        self.subscribers.len()
    }

    /// Whether nothing at all is held.
    pub fn is_empty(&self) -> bool {
        self.subscribers.is_empty()
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
        let mut pairs = [0usize; 3];
        for (&s, held) in &self.subscribers {
            assert!(!held.is_empty(), "a subscriber holding nothing is removed");
            for name in &held.channels {
                assert_eq!(
                    count_in(self.channels.get(&**name), s),
                    1,
                    "channel lists its subscriber once"
                );
            }
            for name in &held.patterns {
                let subs = self.patterns.get(name).map(|(_, subs)| subs);
                assert_eq!(count_in(subs, s), 1, "pattern lists its subscriber once");
            }
            for name in &held.shard_channels {
                assert_eq!(
                    count_in(self.shard_channels.get(&**name), s),
                    1,
                    "shard channel lists its subscriber once"
                );
            }
            pairs[0] += held.channels.len();
            pairs[1] += held.patterns.len();
            pairs[2] += held.shard_channels.len();
        }
        let listed = |subs: &Subscribers<S>| {
            assert!(!subs.is_empty(), "no name has an empty subscriber list");
            subs.len()
        };
        let channel_pairs: usize = self.channels.values().map(listed).sum();
        let pattern_pairs: usize = self.patterns.iter().map(|(_, s)| listed(s)).sum();
        let shard_pairs: usize = self.shard_channels.values().map(listed).sum();
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

fn shrink<K: Hash + Eq, V>(map: &mut HashMap<K, V>) {
    if mostly_empty(map.len(), map.capacity()) {
        map.shrink_to(map.len() * 2);
    }
}

fn shrink_set<K: Hash + Eq>(set: &mut HashSet<K>) {
    if mostly_empty(set.len(), set.capacity()) {
        set.shrink_to(set.len() * 2);
    }
}

fn count_in<S: Eq>(subs: Option<&Subscribers<S>>, s: S) -> usize {
    subs.map_or(0, |subs| subs.iter().filter(|x| **x == s).count())
}

fn filter_names<'a, V>(
    map: &'a HashMap<Arc<[u8]>, V>,
    pattern: Option<&[u8]>,
) -> impl Iterator<Item = &'a Arc<[u8]>> + 'a {
    let pattern = pattern.map(Pattern::new);
    map.keys()
        .filter(move |name| pattern.as_ref().is_none_or(|p| p.matches(name)))
}

impl<S: fmt::Debug> fmt::Debug for Registry<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("channels", &self.channels.len())
            .field("patterns", &self.patterns.len())
            .field("shard_channels", &self.shard_channels.len())
            .field("subscribers", &self.subscribers.len())
            .finish()
    }
}
