//! What one subscriber holds: a set of name ids in three spaces (channels,
//! patterns, shard channels), inline while the subscriber holds one name.
//!
//! A registry may have a million subscribers, most holding one or a few
//! names, so the record of each is small: a [`Held`] is 8 bytes, holding its
//! one id inline, or the index of its sets in a side slab ([`Sets`]) once it
//! holds two or more: one hash set of ids per space. It moves back inline
//! when it falls to one. The ids are the registry's and the pattern index's
//! `u32` ids, not names, so a set costs 4–5 bytes per name held.

use alloc::vec::Vec;

use hashbrown::HashTable;

use crate::registry::mostly_empty;
use crate::slab::{MAX_LEN, Slab};

pub(crate) use crate::registry::Namespace as Space;

/// The sets of a subscriber holding two or more names: one per space,
/// indexed by `Space as usize`.
pub(crate) type Sets = Slab<[HashTable<u32>; 3]>;

/// The names one subscriber holds, as ids by space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Held {
    /// Nothing (a record about to be filled or removed).
    Empty,
    /// Exactly one name.
    One(Space, u32),
    /// Two or more: the index of their sets in [`Sets`].
    Many(u32),
}

/// The hash of an id in a set. Ids are dense slab indexes, so a multiply
/// spreads them over the bucket bits and the control bits.
#[inline]
fn id_hash(id: u32) -> u64 {
    let p = u128::from(id) * 0x9e37_79b9_7f4a_7c15;
    (p as u64) ^ ((p >> 64) as u64)
}

impl Held {
    pub(crate) fn contains(self, sets: &Sets, space: Space, id: u32) -> bool {
        match self {
            Held::Empty => false,
            Held::One(s, i) => s == space && i == id,
            Held::Many(at) => sets.get(at).is_some_and(|sets| {
                sets[space as usize]
                    .find(id_hash(id), |&other| other == id)
                    .is_some()
            }),
        }
    }

    /// Number of ids held in `space`.
    pub(crate) fn count(self, sets: &Sets, space: Space) -> usize {
        match self {
            Held::Empty => 0,
            Held::One(s, _) => usize::from(s == space),
            Held::Many(at) => sets.get(at).map_or(0, |sets| sets[space as usize].len()),
        }
    }

    /// Number of ids held in all spaces.
    pub(crate) fn total(self, sets: &Sets) -> usize {
        Space::ALL.iter().map(|&s| self.count(sets, s)).sum()
    }

    pub(crate) fn is_empty(self) -> bool {
        self == Held::Empty
    }

    /// Whether [`insert`](Self::insert) has room: one more side set can be
    /// stored. Always true in a registry, which has more subscriber records
    /// than side sets, and fewer than [`MAX_LEN`] records.
    pub(crate) fn can_grow(self, sets: &Sets) -> bool {
        !matches!(self, Held::One(..)) || sets.len() < MAX_LEN - 1
    }

    /// Adds `id` to `space`; returns whether it was absent. Needs
    /// [`can_grow`](Self::can_grow); without room it adds nothing.
    pub(crate) fn insert(&mut self, sets: &mut Sets, space: Space, id: u32) -> bool {
        if self.contains(sets, space, id) {
            return false;
        }
        match *self {
            Held::Empty => *self = Held::One(space, id),
            Held::One(s, i) => {
                let mut new: [HashTable<u32>; 3] = Default::default();
                for (s, i) in [(s, i), (space, id)] {
                    new[s as usize].insert_unique(id_hash(i), i, |&x| id_hash(x));
                }
                match sets.insert(new) {
                    Ok(at) => *self = Held::Many(at),
                    Err(_) => return false,
                }
            }
            Held::Many(at) => {
                if let Some(sets) = sets.get_mut(at) {
                    sets[space as usize].insert_unique(id_hash(id), id, |&x| id_hash(x));
                }
            }
        }
        true
    }

    /// Removes `id` from `space`; returns whether it was there.
    pub(crate) fn remove(&mut self, sets: &mut Sets, space: Space, id: u32) -> bool {
        let removed = match *self {
            Held::Empty => false,
            Held::One(s, i) => {
                let hit = s == space && i == id;
                if hit {
                    *self = Held::Empty;
                }
                hit
            }
            Held::Many(at) => {
                let Some(set) = sets.get_mut(at).map(|sets| &mut sets[space as usize]) else {
                    return false;
                };
                match set.find_entry(id_hash(id), |&other| other == id) {
                    Ok(found) => {
                        found.remove();
                        if mostly_empty(set.len(), set.capacity()) {
                            set.shrink_to(set.len() * 2, |&x| id_hash(x));
                        }
                        true
                    }
                    Err(_) => false,
                }
            }
        };
        self.settle(sets);
        removed
    }

    /// Takes every id of `space` out, in no particular order.
    pub(crate) fn drain(&mut self, sets: &mut Sets, space: Space) -> Vec<u32> {
        let out = match *self {
            Held::Empty => Vec::new(),
            Held::One(s, i) => {
                if s != space {
                    return Vec::new();
                }
                *self = Held::Empty;
                alloc::vec![i]
            }
            Held::Many(at) => sets.get_mut(at).map_or_else(Vec::new, |sets| {
                core::mem::take(&mut sets[space as usize])
                    .into_iter()
                    .collect()
            }),
        };
        self.settle(sets);
        out
    }

    /// Every (space, id) held, in no particular order.
    pub(crate) fn iter(self, sets: &Sets) -> impl Iterator<Item = (Space, u32)> + '_ {
        let one = match self {
            Held::One(s, i) => Some((s, i)),
            _ => None,
        };
        let many = match self {
            Held::Many(at) => sets.get(at),
            _ => None,
        };
        one.into_iter().chain(many.into_iter().flat_map(|sets| {
            Space::ALL
                .into_iter()
                .flat_map(move |s| sets[s as usize].iter().map(move |&id| (s, id)))
        }))
    }

    /// Empties the set, giving back its side sets, and returns what it held.
    pub(crate) fn take_all(&mut self, sets: &mut Sets) -> Vec<(Space, u32)> {
        let all = self.iter(sets).collect();
        if let Held::Many(at) = *self {
            sets.remove(at);
        }
        *self = Held::Empty;
        all
    }

    /// Moves a set that has fallen to one id back inline, and an emptied
    /// one to [`Held::Empty`], giving back its side sets.
    fn settle(&mut self, sets: &mut Sets) {
        let Held::Many(at) = *self else {
            return;
        };
        if self.total(sets) > 1 {
            return;
        }
        let left = self.iter(sets).next();
        sets.remove(at);
        *self = match left {
            Some((s, i)) => Held::One(s, i),
            None => Held::Empty,
        };
    }

    /// Checks the representation: side sets hold two or more ids.
    pub(crate) fn check_invariants(self, sets: &Sets) {
        if let Held::Many(at) = self {
            assert!(sets.get(at).is_some(), "side sets {at} exist");
            assert!(self.total(sets) >= 2, "side sets hold two or more ids");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn a_subscriber_record_is_16_bytes() {
        assert_eq!(core::mem::size_of::<Held>(), 8);
        assert_eq!(core::mem::size_of::<Option<(u64, Held)>>(), 16);
    }

    fn space() -> impl Strategy<Value = Space> {
        (0usize..3).prop_map(|s| Space::ALL[s])
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(usize, Space, u32),
        Remove(usize, Space, u32),
        Drain(usize, Space),
        TakeAll(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Three sets sharing the side slab; few ids, so that inserts repeat
        // and removals hit.
        (0u8..9, 0usize..3, space(), 0u32..6).prop_map(|(code, k, s, id)| match code {
            0..=3 => Op::Insert(k, s, id),
            4..=6 => Op::Remove(k, s, id),
            7 => Op::Drain(k, s),
            _ => Op::TakeAll(k),
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Random inserts, removals, drains and take-alls on three sets
        /// sharing one side slab, against sets of pairs, crossing the
        /// inline/side boundary both ways: every answer and count, the
        /// representation, and the side slab holding exactly the sets that
        /// need it.
        #[test]
        fn agrees_with_sets_of_pairs(ops in prop::collection::vec(op(), 0..80)) {
            let mut sets = Sets::new();
            let mut held = [Held::Empty; 3];
            let mut model: [BTreeSet<(u8, u32)>; 3] = Default::default();
            for op in ops {
                match op {
                    Op::Insert(k, s, id) => {
                        prop_assert!(held[k].can_grow(&sets));
                        prop_assert_eq!(held[k].insert(&mut sets, s, id), model[k].insert((s as u8, id)));
                    }
                    Op::Remove(k, s, id) => {
                        prop_assert_eq!(held[k].remove(&mut sets, s, id), model[k].remove(&(s as u8, id)));
                    }
                    Op::Drain(k, s) => {
                        let mut got = held[k].drain(&mut sets, s);
                        got.sort_unstable();
                        let expected: Vec<u32> =
                            model[k].iter().filter(|p| p.0 == s as u8).map(|p| p.1).collect();
                        model[k].retain(|p| p.0 != s as u8);
                        prop_assert_eq!(got, expected);
                    }
                    Op::TakeAll(k) => {
                        let mut got: Vec<(u8, u32)> =
                            held[k].take_all(&mut sets).into_iter().map(|(s, i)| (s as u8, i)).collect();
                        got.sort_unstable();
                        prop_assert_eq!(got, core::mem::take(&mut model[k]).into_iter().collect::<Vec<_>>());
                    }
                }
                sets.check_invariants();
                let mut side = 0;
                for k in 0..3 {
                    let (h, m) = (held[k], &model[k]);
                    h.check_invariants(&sets);
                    side += usize::from(matches!(h, Held::Many(_)));
                    prop_assert_eq!(h.total(&sets), m.len());
                    prop_assert_eq!(h.is_empty(), m.is_empty());
                    prop_assert_eq!(matches!(h, Held::Many(_)), m.len() >= 2);
                    for s in Space::ALL {
                        prop_assert_eq!(h.count(&sets, s), m.iter().filter(|p| p.0 == s as u8).count());
                        for id in 0..6 {
                            prop_assert_eq!(h.contains(&sets, s, id), m.contains(&(s as u8, id)));
                        }
                    }
                    let mut all: Vec<(u8, u32)> = h.iter(&sets).map(|(s, id)| (s as u8, id)).collect();
                    all.sort_unstable();
                    prop_assert_eq!(all, m.iter().copied().collect::<Vec<_>>());
                }
                prop_assert_eq!(sets.len(), side, "side sets only for sets of two or more");
            }
        }
    }
}
