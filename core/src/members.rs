//! The subscribers of one name: an ordered set with O(1) amortized
//! insertion and removal, iterated in insertion order.
//!
//! A name's subscribers are reported in the order they subscribed (the
//! registry's publish order), and a popular name (a chat room, a dashboard,
//! a cache-invalidation channel) may have 100,000 of them, leaving in any
//! order. A plain vector keeps the order but pays a shift or a scan per
//! removal, so dropping every subscriber of such a name is quadratic: 80,000
//! took 1.9 s under the broker's write lock.
//!
//! # Algorithm
//!
//! [`Members`] keeps its members in a vector in insertion order. Up to
//! [`SMALL`] members (most names have one or a few) that is all: a removal
//! searches and shifts at most [`SMALL`] slots.
//!
//! A larger set also has an [`Index`]: a hash table from each member to its
//! slot, and a bitmap with one bit per slot. Removing a member looks its slot
//! up and sets the slot's bit, leaving a *hole* (a tombstone) instead of
//! shifting what follows. Once the holes outnumber the members, one pass
//! squeezes them out in order and rebuilds the table. That pass costs
//! O(slots), and follows at least slots / 2 removals since the previous one,
//! so a removal costs O(1) amortized, and an iteration, which skips the
//! holes, walks at most twice as many slots as there are members. A set that
//! falls to [`SMALL`] / 2 members at a compaction gives its index back.
//!
//! Memory: 8 bytes per `u64` member in the vector, plus, for a set above
//! [`SMALL`], about 5–10 bytes per member in the table and one bit per slot.
//!
//! [`SubscriberList`] is the public, read-only view of a name's members
//! that the registry hands out: it has a length and iterates in order,
//! skipping the holes.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use core::hash::{BuildHasher, Hash};

use hashbrown::HashTable;

use crate::glob::Steps;
use crate::registry::mostly_empty;

/// Sets of at most this many members have no index: a removal searches
/// and shifts the vector.
pub(crate) const SMALL: usize = 16;

/// Slots are numbered by `u32` in the index; a set compacts before its
/// vector would outgrow that.
const MAX_SLOTS: usize = u32::MAX as usize;

/// An ordered set of `Copy` members: insertion order, O(1) amortized
/// [`push`](Self::push) and [`remove`](Self::remove).
///
/// The hash of a member comes from the `BuildHasher` passed to each call;
/// a set must always be given the same one.
pub(crate) struct Members<S> {
    /// The members in insertion order. With an index, also the holes left
    /// by removed members (their bits are set in [`Index::holes`]);
    /// without one, there are no holes and at most [`SMALL`] slots.
    slots: Vec<S>,
    /// `None` while the set is small.
    index: Option<Box<Index>>,
}

/// What a set larger than [`SMALL`] keeps to remove in O(1).
struct Index {
    /// The slot of every live member, found by the member's hash.
    positions: HashTable<u32>,
    /// One bit per slot (bit `i % 64` of word `i / 64`), set for a hole;
    /// exactly `ceil(slots / 64)` words.
    holes: Vec<u64>,
    /// Number of bits set in `holes`; never more than the live members
    /// after a removal returns (a compaction squeezes them out).
    hole_count: usize,
}

impl<S> Members<S> {
    /// Number of members.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.slots.len() - self.index.as_ref().map_or(0, |i| i.hole_count)
    }

    /// The members in insertion order.
    #[inline]
    pub(crate) fn list(&self) -> SubscriberList<'_, S> {
        let holes: &[u64] = match &self.index {
            Some(index) if index.hole_count > 0 => &index.holes,
            _ => &[],
        };
        SubscriberList {
            slots: &self.slots,
            holes,
            len: self.len(),
        }
    }
}

impl<S: Copy + Eq + Hash> Members<S> {
    /// A set of two members, in this order (the registry's first step from
    /// one inline subscriber to a list).
    pub(crate) fn pair(first: S, second: S) -> Self {
        Members {
            slots: Vec::from([first, second]),
            index: None,
        }
    }

    /// The first member, if any.
    pub(crate) fn first(&self) -> Option<S> {
        self.list().iter().next().copied()
    }

    /// Appends `s`, which must not be a member (the registry knows from the
    /// subscriber's own set).
    pub(crate) fn push(&mut self, s: S, hasher: &impl BuildHasher) {
        if self.index.is_none() && self.slots.len() >= SMALL {
            self.build_index(hasher, &mut ());
        }
        let Some(index) = self.index.as_deref_mut() else {
            self.slots.push(s);
            return;
        };
        if self.slots.len() >= MAX_SLOTS {
            compact(&mut self.slots, index, hasher, &mut ());
        }
        let at = self.slots.len();
        self.slots.push(s);
        if index.holes.len() * 64 < self.slots.len() {
            index.holes.push(0);
        }
        let slots = &self.slots;
        index
            .positions
            .insert_unique(hasher.hash_one(s), at as u32, |&p| rehash(slots, hasher, p));
    }

    /// Removes `s`; returns whether it was a member.
    pub(crate) fn remove(&mut self, s: S, hasher: &impl BuildHasher) -> bool {
        self.remove_counting(s, hasher, &mut ())
    }

    /// [`remove`](Self::remove), adding to `steps` the slots and table
    /// entries it touches.
    pub(crate) fn remove_counting(
        &mut self,
        s: S,
        hasher: &impl BuildHasher,
        steps: &mut impl Steps,
    ) -> bool {
        let Some(index) = self.index.as_deref_mut() else {
            let Some(at) = self.slots.iter().position(|&x| x == s) else {
                steps.add(self.slots.len());
                return false;
            };
            steps.add(self.slots.len());
            self.slots.remove(at);
            if mostly_empty(self.slots.len(), self.slots.capacity()) {
                self.slots.shrink_to(self.slots.len() * 2);
            }
            return true;
        };
        steps.add(1);
        let slots = &self.slots;
        let Ok(found) = index
            .positions
            .find_entry(hasher.hash_one(s), |&p| slot(slots, p) == Some(s))
        else {
            return false;
        };
        let (at, _) = found.remove();
        let at = at as usize;
        if let Some(word) = index.holes.get_mut(at / 64) {
            *word |= 1 << (at % 64);
        }
        index.hole_count += 1;
        if index.hole_count * 2 > self.slots.len() {
            compact(&mut self.slots, index, hasher, steps);
            if self.slots.len() <= SMALL / 2 {
                self.index = None;
                self.slots.shrink_to(SMALL / 2);
            }
        }
        true
    }

    /// Gives the set an index over its slots, which have no holes.
    fn build_index(&mut self, hasher: &impl BuildHasher, steps: &mut impl Steps) {
        let mut index = Index {
            positions: HashTable::with_capacity(self.slots.len() + 1),
            holes: alloc::vec![0; self.slots.len().div_ceil(64)],
            hole_count: 0,
        };
        index_slots(&self.slots, &mut index.positions, hasher, steps);
        self.index = Some(Box::new(index));
    }

    /// Checks the representation: no duplicate members; without an index,
    /// at most [`SMALL`] slots; with one, a hole bit for exactly the removed
    /// slots, no more holes than members, and every member found at its
    /// slot through the table.
    ///
    /// # Panics
    ///
    /// Panics, describing the broken invariant, if one does not hold.
    pub(crate) fn check_invariants(&self, hasher: &impl BuildHasher) {
        let live: Vec<S> = self.list().iter().copied().collect();
        assert_eq!(live.len(), self.len(), "the view's length counts members");
        assert_eq!(
            self.list().iter().len(),
            live.len(),
            "the iterator's length"
        );
        for (i, a) in live.iter().enumerate() {
            assert!(
                live.get(i + 1..).is_none_or(|rest| !rest.contains(a)),
                "members are distinct"
            );
        }
        let Some(index) = &self.index else {
            assert!(self.slots.len() <= SMALL, "a set without index is small");
            return;
        };
        assert_eq!(
            index.holes.len(),
            self.slots.len().div_ceil(64),
            "one hole bit per slot"
        );
        let bits: usize = index.holes.iter().map(|w| w.count_ones() as usize).sum();
        assert_eq!(bits, index.hole_count, "the hole count counts hole bits");
        if let Some(&last) = index.holes.last() {
            let used = self.slots.len() % 64;
            assert!(
                used == 0 || last >> used == 0,
                "no hole bit past the last slot"
            );
        }
        assert!(
            index.hole_count * 2 <= self.slots.len(),
            "holes never outnumber members"
        );
        assert_eq!(
            index.positions.len(),
            live.len(),
            "one table entry per member"
        );
        for (at, &s) in self.slots.iter().enumerate() {
            let hole = index
                .holes
                .get(at / 64)
                .is_some_and(|w| w >> (at % 64) & 1 != 0);
            let found = index
                .positions
                .find(hasher.hash_one(s), |&p| p as usize == at)
                .is_some();
            assert_eq!(found, !hole, "slot {at} is in the table unless a hole");
        }
    }
}

/// The member in slot `p`.
#[inline]
fn slot<S: Copy>(slots: &[S], p: u32) -> Option<S> {
    slots.get(p as usize).copied()
}

fn rehash<S: Copy + Hash>(slots: &[S], hasher: &impl BuildHasher, p: u32) -> u64 {
    slot(slots, p).map_or(0, |s| hasher.hash_one(s))
}

/// Fills an empty `positions` table with every slot of `slots`.
fn index_slots<S: Copy + Hash>(
    slots: &[S],
    positions: &mut HashTable<u32>,
    hasher: &impl BuildHasher,
    steps: &mut impl Steps,
) {
    steps.add(slots.len());
    for (at, &s) in slots.iter().enumerate() {
        positions.insert_unique(hasher.hash_one(s), at as u32, |&p| rehash(slots, hasher, p));
    }
}

/// Squeezes the holes out of `slots`, keeping the order, and rebuilds the
/// index over what is left.
fn compact<S: Copy + Hash>(
    slots: &mut Vec<S>,
    index: &mut Index,
    hasher: &impl BuildHasher,
    steps: &mut impl Steps,
) {
    steps.add(slots.len());
    let holes = &index.holes;
    let mut at = 0;
    slots.retain(|_| {
        let hole = holes.get(at / 64).is_some_and(|w| w >> (at % 64) & 1 != 0);
        at += 1;
        !hole
    });
    if mostly_empty(slots.len(), slots.capacity()) {
        slots.shrink_to(slots.len() * 2);
    }
    index.holes.clear();
    index.holes.resize(slots.len().div_ceil(64), 0);
    index.holes.shrink_to(index.holes.len() * 2);
    index.hole_count = 0;
    index.positions.clear();
    if mostly_empty(slots.len(), index.positions.capacity()) {
        index.positions = HashTable::with_capacity(slots.len() + 1);
    }
    index_slots(slots, &mut index.positions, hasher, steps);
}

/// The subscribers of one name, in the order they subscribed: a read-only
/// view into the registry, as returned by
/// [`Route::subscribers`](crate::Route::subscribers).
///
/// Iterating yields each subscriber once. It walks the name's list, which
/// may hold a few slots left by removed subscribers (never more than there
/// are subscribers), so it costs O(subscribers).
///
/// ```
/// use tidings_core::{Namespace, Registry};
///
/// let mut registry = Registry::new();
/// for s in [3u64, 1, 2] {
///     registry.subscribe(Namespace::Channel, s, b"room", |_| {})?;
/// }
/// registry.unsubscribe(Namespace::Channel, 1, b"room", |_| {});
/// let route = registry.route(Namespace::Channel, b"room").unwrap();
/// let subscribers = route.subscribers();
/// assert_eq!(subscribers.len(), 2);
/// assert_eq!(subscribers.iter().copied().collect::<Vec<_>>(), [3, 2]);
/// # Ok::<(), tidings_core::CapacityError>(())
/// ```
pub struct SubscriberList<'a, S> {
    /// The slots, holes included.
    slots: &'a [S],
    /// The hole bitmap, or empty when there is no hole.
    holes: &'a [u64],
    /// Number of subscribers (slots that are not holes).
    len: usize,
}

impl<'a, S> SubscriberList<'a, S> {
    /// A list of the subscribers in `slots`, which has no holes.
    pub(crate) fn from_slice(slots: &'a [S]) -> Self {
        SubscriberList {
            slots,
            holes: &[],
            len: slots.len(),
        }
    }

    /// Number of subscribers.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there is no subscriber.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The subscribers, in the order they subscribed.
    #[inline]
    pub fn iter(&self) -> SubscriberIter<'a, S> {
        SubscriberIter {
            slots: self.slots.iter(),
            holes: self.holes,
            at: 0,
            left: self.len,
        }
    }
}

impl<S> Clone for SubscriberList<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for SubscriberList<'_, S> {}

impl<S> Default for SubscriberList<'_, S> {
    fn default() -> Self {
        SubscriberList {
            slots: &[],
            holes: &[],
            len: 0,
        }
    }
}

impl<'a, S> IntoIterator for SubscriberList<'a, S> {
    type Item = &'a S;
    type IntoIter = SubscriberIter<'a, S>;

    fn into_iter(self) -> SubscriberIter<'a, S> {
        self.iter()
    }
}

impl<S: fmt::Debug> fmt::Debug for SubscriberList<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<S: PartialEq> PartialEq for SubscriberList<'_, S> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<S: Eq> Eq for SubscriberList<'_, S> {}

/// The iterator of a [`SubscriberList`]: each subscriber, in subscription
/// order.
pub struct SubscriberIter<'a, S> {
    /// The slots not yet looked at.
    slots: core::slice::Iter<'a, S>,
    /// The hole bitmap, or empty when there is no hole (then `at` and
    /// `left` are unused).
    holes: &'a [u64],
    /// The number of the next slot.
    at: usize,
    /// Subscribers not yet yielded.
    left: usize,
}

impl<S> Clone for SubscriberIter<'_, S> {
    fn clone(&self) -> Self {
        SubscriberIter {
            slots: self.slots.clone(),
            holes: self.holes,
            at: self.at,
            left: self.left,
        }
    }
}

impl<'a, S> Iterator for SubscriberIter<'a, S> {
    type Item = &'a S;

    #[inline]
    fn next(&mut self) -> Option<&'a S> {
        if self.holes.is_empty() {
            return self.slots.next();
        }
        loop {
            let s = self.slots.next()?;
            let at = self.at;
            self.at += 1;
            if self
                .holes
                .get(at / 64)
                .is_none_or(|w| w >> (at % 64) & 1 == 0)
            {
                self.left = self.left.saturating_sub(1);
                return Some(s);
            }
        }
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = if self.holes.is_empty() {
            self.slots.len()
        } else {
            self.left
        };
        (left, Some(left))
    }
}

impl<S> ExactSizeIterator for SubscriberIter<'_, S> {}

impl<S> core::iter::FusedIterator for SubscriberIter<'_, S> {}

impl<S: fmt::Debug> fmt::Debug for SubscriberIter<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.clone()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hashbrown::DefaultHashBuilder;
    use proptest::prelude::*;

    /// A set built by pushing `members` in order.
    fn set_of(members: impl IntoIterator<Item = u64>, hasher: &DefaultHashBuilder) -> Members<u64> {
        let mut it = members.into_iter();
        let (Some(a), Some(b)) = (it.next(), it.next()) else {
            panic!("at least two members");
        };
        let mut set = Members::pair(a, b);
        for s in it {
            set.push(s, hasher);
        }
        set
    }

    /// Steps taken to remove all `n` members of a set, in `order(k, n)`.
    fn steps_to_drop(n: u64, order: impl Fn(u64, u64) -> u64) -> u64 {
        let hasher = DefaultHashBuilder::default();
        let mut set = set_of(0..n, &hasher);
        let mut steps = 0u64;
        for k in 0..n {
            assert!(set.remove_counting(order(k, n), &hasher, &mut steps));
        }
        assert_eq!(set.len(), 0);
        steps
    }

    /// Dropping every member of a set of 80,000 costs at most 10 times
    /// dropping every member of a set of 10,000 (linear: 8 times), whatever
    /// the order, and a few steps per removal.
    #[test]
    fn dropping_every_member_is_linear_in_steps() {
        /// The `k`th of `n` members to remove.
        type Order = fn(u64, u64) -> u64;
        let orders: [(&str, Order); 4] = [
            ("oldest first", |k, _| k),
            ("newest first", |k, n| n - 1 - k),
            ("scrambled", |k, n| k * 7919 % n),
            (
                "outside in",
                |k, n| {
                    if k % 2 == 0 { k / 2 } else { n - 1 - k / 2 }
                },
            ),
        ];
        for (name, order) in orders {
            let small = steps_to_drop(10_000, order);
            let large = steps_to_drop(80_000, order);
            assert!(
                large <= 10 * small,
                "{name}: 80k took {large} steps, 10k took {small}"
            );
            assert!(
                large <= 8 * 80_000,
                "{name}: {large} steps for 80k removals"
            );
        }
    }

    /// A member removed and pushed again goes to the end, and the order of
    /// the others is kept across compactions.
    #[test]
    fn order_survives_compaction_and_reinsertion() {
        let hasher = DefaultHashBuilder::default();
        let mut set = set_of(0..100, &hasher);
        for s in (0..100).filter(|s| s % 3 != 0) {
            assert!(set.remove(s, &hasher));
            set.check_invariants(&hasher);
        }
        assert!(!set.remove(1, &hasher), "already gone");
        set.push(1, &hasher);
        let expected: Vec<u64> = (0..100).filter(|s| s % 3 == 0).chain([1]).collect();
        assert_eq!(set.list().iter().copied().collect::<Vec<_>>(), expected);
        assert_eq!(set.first(), Some(0));
        set.check_invariants(&hasher);
    }

    /// Through the registry: a channel, a pattern and a shard channel held
    /// by 200 subscribers (indexed lists), left in a scrambled order and
    /// rejoined, with the registry's invariants (which check each list with
    /// the hasher its owner uses) and the delivery order checked throughout.
    #[test]
    fn registry_lists_above_the_small_size() {
        use crate::Namespace::{Channel, Pattern, Shard};
        let mut registry: crate::Registry<u64> = crate::Registry::new();
        let mut model: Vec<u64> = Vec::new();
        let join = |registry: &mut crate::Registry<u64>, s: u64| {
            for (ns, name) in [
                (Channel, &b"room"[..]),
                (Pattern, b"ro*"),
                (Shard, b"shard"),
            ] {
                assert!(registry.subscribe(ns, s, name, |_| {}).is_ok());
            }
        };
        for s in 0..200u64 {
            join(&mut registry, s);
            model.push(s);
        }
        registry.check_invariants();
        let listed = |registry: &crate::Registry<u64>, ns, name: &[u8]| -> Vec<u64> {
            registry
                .route(ns, name)
                .map(|r| r.subscribers().iter().copied().collect())
                .unwrap_or_default()
        };
        for k in 0..200u64 {
            let s = k * 7919 % 200;
            for (ns, name) in [
                (Channel, &b"room"[..]),
                (Pattern, b"ro*"),
                (Shard, b"shard"),
            ] {
                registry.unsubscribe(ns, s, name, |_| {});
            }
            model.retain(|&x| x != s);
            if k % 3 == 0 {
                // Rejoin at the end of the order.
                join(&mut registry, s);
                model.push(s);
            }
            registry.check_invariants();
            assert_eq!(listed(&registry, Channel, b"room"), model);
            assert_eq!(listed(&registry, Shard, b"shard"), model);
            let mut delivered = Vec::new();
            let n = registry.publish(b"room", |s, p| delivered.push((s, p.is_some())));
            assert_eq!(n, 2 * model.len());
            let expected: Vec<(u64, bool)> = model
                .iter()
                .map(|&s| (s, false))
                .chain(model.iter().map(|&s| (s, true)))
                .collect();
            assert_eq!(delivered, expected);
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Push(u64),
        Remove(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Few distinct members, so that removals hit; enough to cross the
        // small/indexed boundary both ways.
        (any::<bool>(), 0u64..48)
            .prop_map(|(push, s)| if push { Op::Push(s) } else { Op::Remove(s) })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Random pushes and removals against a vector in insertion order:
        /// the members in order, the length, what each removal answers, and
        /// the representation after every step.
        #[test]
        fn agrees_with_a_vector(ops in prop::collection::vec(op(), 0..400)) {
            let hasher = DefaultHashBuilder::default();
            let mut set = Members::pair(1000, 1001);
            let mut model: Vec<u64> = alloc::vec![1000, 1001];
            for op in ops {
                match op {
                    Op::Push(s) => {
                        if !model.contains(&s) {
                            set.push(s, &hasher);
                            model.push(s);
                        }
                    }
                    Op::Remove(s) => {
                        let was = model.contains(&s);
                        model.retain(|&x| x != s);
                        prop_assert_eq!(set.remove(s, &hasher), was);
                    }
                }
                set.check_invariants(&hasher);
                prop_assert_eq!(set.len(), model.len());
                let list = set.list();
                prop_assert_eq!(list.len(), model.len());
                prop_assert_eq!(list.is_empty(), model.is_empty());
                prop_assert_eq!(list.iter().copied().collect::<Vec<_>>(), model.clone());
                prop_assert_eq!(set.first(), model.first().copied());
            }
        }
    }
}
