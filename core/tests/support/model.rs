//! A naive model of `tidings_core::registry::Registry` for differential tests
//! and fuzzing, and [`check_op`], which runs one operation on both and
//! asserts that they agree.
//!
//! The model is as plain as the rules of REDIS-SEMANTICS.md §2 and §3 allow:
//! every (subscriber, name) pair sits in one `Vec` per namespace, in
//! subscription order; live patterns are kept in a second `Vec` in the order
//! they were created (first subscriber); every query is a linear scan, and
//! globs are matched with the reference transliteration of Redis's
//! `stringmatchlen`. It shares no code with the registry, only its types.
//!
//! It needs the reference matcher as a sibling module:
//!
//! ```text
//! mod support { pub mod reference_glob; pub mod model; }          // a test
//! #[path = "../../core/tests/support/reference_glob.rs"]          // a fuzz
//! mod reference_glob;                                             // target
//! #[path = "../../core/tests/support/model.rs"]
//! mod model;
//! ```

use std::fmt::Debug;
use std::hash::Hash;

use tidings_core::registry::{Confirmation, Counts, Kind, Registry};

use super::reference_glob::reference_matches;

/// An owned [`Confirmation`], comparable across the registry and the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confirm {
    /// What was done.
    pub kind: Kind,
    /// The channel or pattern; `None` for an "unsubscribe all" of nothing.
    pub name: Option<Vec<u8>>,
    /// The count Redis reports.
    pub count: usize,
    /// First subscriber added or last one removed.
    pub interest_changed: bool,
}

impl From<Confirmation<'_>> for Confirm {
    fn from(c: Confirmation<'_>) -> Self {
        Confirm {
            kind: c.kind,
            name: c.name.map(<[u8]>::to_vec),
            count: c.count,
            interest_changed: c.interest_changed,
        }
    }
}

/// One of the three namespaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Space {
    /// Exact channels (`SUBSCRIBE`).
    Channels,
    /// Patterns (`PSUBSCRIBE`).
    Patterns,
    /// Shard channels (`SSUBSCRIBE`).
    Shards,
}

impl Space {
    /// The (subscribe, unsubscribe) confirmation kinds of this namespace.
    pub fn kinds(self) -> (Kind, Kind) {
        match self {
            Space::Channels => (Kind::Subscribe, Kind::Unsubscribe),
            Space::Patterns => (Kind::PSubscribe, Kind::PUnsubscribe),
            Space::Shards => (Kind::SSubscribe, Kind::SUnsubscribe),
        }
    }
}

const SPACES: [Space; 3] = [Space::Channels, Space::Patterns, Space::Shards];

/// One delivery of a publish: the subscriber and, for a pattern
/// subscription, the pattern's bytes.
pub type Delivery<S> = (S, Option<Vec<u8>>);

/// The naive registry.
#[derive(Clone, Debug)]
pub struct Model<S> {
    channels: Vec<(S, Vec<u8>)>,
    patterns: Vec<(S, Vec<u8>)>,
    shards: Vec<(S, Vec<u8>)>,
    /// Live patterns, in the order they gained their first subscriber.
    pattern_order: Vec<Vec<u8>>,
}

impl<S> Default for Model<S> {
    fn default() -> Self {
        Model {
            channels: Vec::new(),
            patterns: Vec::new(),
            shards: Vec::new(),
            pattern_order: Vec::new(),
        }
    }
}

impl<S: Copy + Eq + Ord + Debug> Model<S> {
    fn pairs(&self, space: Space) -> &Vec<(S, Vec<u8>)> {
        match space {
            Space::Channels => &self.channels,
            Space::Patterns => &self.patterns,
            Space::Shards => &self.shards,
        }
    }

    fn pairs_mut(&mut self, space: Space) -> &mut Vec<(S, Vec<u8>)> {
        match space {
            Space::Channels => &mut self.channels,
            Space::Patterns => &mut self.patterns,
            Space::Shards => &mut self.shards,
        }
    }

    fn holds(&self, space: Space, s: S, name: &[u8]) -> bool {
        self.pairs(space).iter().any(|(x, n)| *x == s && n == name)
    }

    fn held_by_anyone(&self, space: Space, name: &[u8]) -> bool {
        self.pairs(space).iter().any(|(_, n)| n == name)
    }

    /// The count a confirmation in `space` reports for `s`.
    fn count(&self, space: Space, s: S) -> usize {
        let counts = self.counts(s);
        match space {
            Space::Shards => counts.shard_channels,
            Space::Channels | Space::Patterns => counts.subscriptions(),
        }
    }

    /// Drops the pair if held; returns whether that freed the name.
    fn detach(&mut self, space: Space, s: S, name: &[u8]) -> bool {
        let pairs = self.pairs_mut(space);
        let Some(at) = pairs.iter().position(|(x, n)| *x == s && n == name) else {
            return false;
        };
        pairs.remove(at);
        let freed = !self.held_by_anyone(space, name);
        if freed && space == Space::Patterns {
            self.pattern_order.retain(|p| p != name);
        }
        freed
    }

    /// `SUBSCRIBE`, `PSUBSCRIBE` or `SSUBSCRIBE` of one name.
    pub fn subscribe(&mut self, space: Space, s: S, name: &[u8]) -> Confirm {
        let mut interest_changed = false;
        if !self.holds(space, s, name) {
            interest_changed = !self.held_by_anyone(space, name);
            self.pairs_mut(space).push((s, name.to_vec()));
            if interest_changed && space == Space::Patterns {
                self.pattern_order.push(name.to_vec());
            }
        }
        Confirm {
            kind: space.kinds().0,
            name: Some(name.to_vec()),
            count: self.count(space, s),
            interest_changed,
        }
    }

    /// `UNSUBSCRIBE`, `PUNSUBSCRIBE` or `SUNSUBSCRIBE` of one name.
    pub fn unsubscribe(&mut self, space: Space, s: S, name: &[u8]) -> Confirm {
        let interest_changed = self.detach(space, s, name);
        Confirm {
            kind: space.kinds().1,
            name: Some(name.to_vec()),
            count: self.count(space, s),
            interest_changed,
        }
    }

    /// The no-argument forms: every held name in byte order, counts falling,
    /// or one nameless confirmation.
    pub fn unsubscribe_all(&mut self, space: Space, s: S) -> Vec<Confirm> {
        let mut names: Vec<Vec<u8>> = self
            .pairs(space)
            .iter()
            .filter(|(x, _)| *x == s)
            .map(|(_, n)| n.clone())
            .collect();
        names.sort();
        if names.is_empty() {
            return vec![Confirm {
                kind: space.kinds().1,
                name: None,
                count: self.count(space, s),
                interest_changed: false,
            }];
        }
        names
            .into_iter()
            .map(|name| {
                let interest_changed = self.detach(space, s, &name);
                Confirm {
                    kind: space.kinds().1,
                    name: Some(name),
                    count: self.count(space, s),
                    interest_changed,
                }
            })
            .collect()
    }

    /// Removes everything `s` holds. Returns what it held and the names this
    /// freed, sorted by (kind, name).
    pub fn remove_subscriber(&mut self, s: S) -> (Counts, Vec<(Kind, Vec<u8>)>) {
        let counts = self.counts(s);
        let mut freed = Vec::new();
        for space in SPACES {
            let names: Vec<Vec<u8>> = self
                .pairs(space)
                .iter()
                .filter(|(x, _)| *x == s)
                .map(|(_, n)| n.clone())
                .collect();
            for name in names {
                if self.detach(space, s, &name) {
                    freed.push((space.kinds().1, name));
                }
            }
        }
        sort_freed(&mut freed);
        (counts, freed)
    }

    /// Every delivery of `PUBLISH channel`, in order.
    pub fn publish(&self, channel: &[u8]) -> Vec<Delivery<S>> {
        let mut out: Vec<Delivery<S>> = self
            .channels
            .iter()
            .filter(|(_, n)| n == channel)
            .map(|&(s, _)| (s, None))
            .collect();
        for pattern in &self.pattern_order {
            if reference_matches(pattern, channel) {
                out.extend(
                    self.patterns
                        .iter()
                        .filter(|(_, n)| n == pattern)
                        .map(|&(s, _)| (s, Some(pattern.clone()))),
                );
            }
        }
        out
    }

    /// Every subscriber `SPUBLISH channel` reaches, in order.
    pub fn spublish(&self, channel: &[u8]) -> Vec<S> {
        self.shards
            .iter()
            .filter(|(_, n)| n == channel)
            .map(|&(s, _)| s)
            .collect()
    }

    /// `PUBSUB NUMSUB` (or `SHARDNUMSUB` for [`Space::Shards`]).
    pub fn numsub(&self, space: Space, channel: &[u8]) -> usize {
        self.pairs(space)
            .iter()
            .filter(|(_, n)| n == channel)
            .count()
    }

    /// `PUBSUB NUMPAT`.
    pub fn numpat(&self) -> usize {
        self.pattern_order.len()
    }

    /// `PUBSUB CHANNELS [glob]` (or `SHARDCHANNELS`), sorted.
    pub fn channels(&self, space: Space, glob: Option<&[u8]>) -> Vec<Vec<u8>> {
        let mut names: Vec<Vec<u8>> = self
            .pairs(space)
            .iter()
            .map(|(_, n)| n.clone())
            .filter(|n| glob.is_none_or(|g| reference_matches(g, n)))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The live patterns with their numbers of subscribers, sorted.
    pub fn patterns(&self) -> Vec<(Vec<u8>, usize)> {
        let mut out: Vec<(Vec<u8>, usize)> = self
            .pattern_order
            .iter()
            .map(|p| (p.clone(), self.numsub(Space::Patterns, p)))
            .collect();
        out.sort();
        out
    }

    /// What `s` holds, by kind.
    pub fn counts(&self, s: S) -> Counts {
        let n = |pairs: &Vec<(S, Vec<u8>)>| pairs.iter().filter(|(x, _)| *x == s).count();
        Counts {
            channels: n(&self.channels),
            patterns: n(&self.patterns),
            shard_channels: n(&self.shards),
        }
    }

    /// The distinct subscribers holding anything, sorted.
    pub fn subscribers(&self) -> Vec<S> {
        let mut out: Vec<S> = SPACES
            .iter()
            .flat_map(|&space| self.pairs(space).iter().map(|&(s, _)| s))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.channels.is_empty() && self.patterns.is_empty() && self.shards.is_empty()
    }
}

fn sort_freed(freed: &mut [(Kind, Vec<u8>)]) {
    freed.sort_by(|a, b| (a.0.as_str(), &a.1).cmp(&(b.0.as_str(), &b.1)));
}

/// One registry operation, with owned arguments.
#[derive(Clone, Debug)]
pub enum Op<S> {
    /// `SUBSCRIBE`, `PSUBSCRIBE` or `SSUBSCRIBE` of one name.
    Subscribe(Space, S, Vec<u8>),
    /// `UNSUBSCRIBE`, `PUNSUBSCRIBE` or `SUNSUBSCRIBE` of one name.
    Unsubscribe(Space, S, Vec<u8>),
    /// The no-argument unsubscribe of a namespace.
    UnsubscribeAll(Space, S),
    /// A disconnect, through `remove_subscriber_with`.
    RemoveSubscriber(S),
    /// `PUBLISH channel`.
    Publish(Vec<u8>),
    /// `SPUBLISH channel`.
    SPublish(Vec<u8>),
    /// `PUBSUB NUMSUB` (`Channels`) or `SHARDNUMSUB` (`Shards`).
    NumSub(Space, Vec<u8>),
    /// `PUBSUB NUMPAT`.
    NumPat,
    /// `PUBSUB CHANNELS [glob]` (`Channels`) or `SHARDCHANNELS` (`Shards`).
    Channels(Space, Option<Vec<u8>>),
    /// `Registry::patterns`.
    Patterns,
    /// `Registry::counts`, `subscriber_count` and `is_empty`.
    Counts(S),
}

/// Runs `op` on the registry and on the model, asserts that every answer
/// agrees (confirmations, deliveries in order, return values, introspection),
/// then checks the registry's invariants and a few global answers.
///
/// # Panics
///
/// Panics on the first disagreement, naming the operation.
pub fn check_op<S>(registry: &mut Registry<S>, model: &mut Model<S>, op: &Op<S>)
where
    S: Copy + Eq + Ord + Hash + Debug,
{
    match op {
        Op::Subscribe(space, s, name) => {
            let got = Confirm::from(match space {
                Space::Channels => registry.subscribe(*s, name),
                Space::Patterns => registry.psubscribe(*s, name),
                Space::Shards => registry.ssubscribe(*s, name),
            });
            assert_eq!(got, model.subscribe(*space, *s, name), "{op:?}");
        }
        Op::Unsubscribe(space, s, name) => {
            let got = Confirm::from(match space {
                Space::Channels => registry.unsubscribe(*s, name),
                Space::Patterns => registry.punsubscribe(*s, name),
                Space::Shards => registry.sunsubscribe(*s, name),
            });
            assert_eq!(got, model.unsubscribe(*space, *s, name), "{op:?}");
        }
        Op::UnsubscribeAll(space, s) => {
            let mut got = Vec::new();
            let confirm = |c: Confirmation<'_>| got.push(Confirm::from(c));
            match space {
                Space::Channels => registry.unsubscribe_all(*s, confirm),
                Space::Patterns => registry.punsubscribe_all(*s, confirm),
                Space::Shards => registry.sunsubscribe_all(*s, confirm),
            }
            assert_eq!(got, model.unsubscribe_all(*space, *s), "{op:?}");
        }
        Op::RemoveSubscriber(s) => {
            let mut freed = Vec::new();
            let counts = registry.remove_subscriber_with(*s, |kind, name| {
                freed.push((kind, name.to_vec()));
            });
            sort_freed(&mut freed);
            assert_eq!((counts, freed), model.remove_subscriber(*s), "{op:?}");
        }
        Op::Publish(channel) => {
            let mut got = Vec::new();
            let n = registry.publish(channel, |s, pattern| {
                got.push((s, pattern.map(|p| p.as_bytes().to_vec())));
            });
            let expected = model.publish(channel);
            assert_eq!(got, expected, "{op:?}");
            assert_eq!(n, expected.len(), "{op:?}: return value");
        }
        Op::SPublish(channel) => {
            let mut got = Vec::new();
            let n = registry.spublish(channel, |s| got.push(s));
            let expected = model.spublish(channel);
            assert_eq!(got, expected, "{op:?}");
            assert_eq!(n, expected.len(), "{op:?}: return value");
        }
        Op::NumSub(space, channel) => {
            let got = match space {
                Space::Shards => registry.shard_numsub(channel),
                Space::Channels | Space::Patterns => registry.numsub(channel),
            };
            let space = if *space == Space::Shards {
                Space::Shards
            } else {
                Space::Channels
            };
            assert_eq!(got, model.numsub(space, channel), "{op:?}");
        }
        Op::NumPat => assert_eq!(registry.numpat(), model.numpat(), "{op:?}"),
        Op::Channels(space, glob) => {
            let glob = glob.as_deref();
            let (mut got, space): (Vec<Vec<u8>>, _) = match space {
                Space::Shards => (
                    registry.shard_channels(glob).map(|n| n.to_vec()).collect(),
                    Space::Shards,
                ),
                Space::Channels | Space::Patterns => (
                    registry.channels(glob).map(|n| n.to_vec()).collect(),
                    Space::Channels,
                ),
            };
            got.sort();
            assert_eq!(got, model.channels(space, glob), "{op:?}");
        }
        Op::Patterns => {
            let mut got: Vec<(Vec<u8>, usize)> = registry
                .patterns()
                .map(|(p, n)| (p.as_bytes().to_vec(), n))
                .collect();
            got.sort();
            assert_eq!(got, model.patterns(), "{op:?}");
        }
        Op::Counts(s) => {
            assert_eq!(registry.counts(*s), model.counts(*s), "{op:?}");
        }
    }
    registry.check_invariants();
    assert_eq!(registry.numpat(), model.numpat(), "after {op:?}: numpat");
    assert_eq!(
        registry.subscriber_count(),
        model.subscribers().len(),
        "after {op:?}: subscriber_count"
    );
    assert_eq!(
        registry.is_empty(),
        model.is_empty(),
        "after {op:?}: is_empty"
    );
}

/// Removes every subscriber the model knows, checking each removal, then
/// asserts that the registry is empty and lists nothing.
///
/// # Panics
///
/// Panics if a removal disagrees or anything is left.
pub fn drain<S>(registry: &mut Registry<S>, model: &mut Model<S>)
where
    S: Copy + Eq + Ord + Hash + Debug,
{
    for s in model.subscribers() {
        check_op(registry, model, &Op::RemoveSubscriber(s));
    }
    assert!(model.is_empty());
    assert!(
        registry.is_empty(),
        "registry empty after removing everyone"
    );
    assert_eq!(registry.subscriber_count(), 0);
    assert_eq!(registry.numpat(), 0);
    assert_eq!(registry.patterns().count(), 0);
    assert_eq!(registry.channels(None).count(), 0);
    assert_eq!(registry.shard_channels(None).count(), 0);
    registry.check_invariants();
}
