//! A slab: values in a dense vector, each named by a stable `u32` id.
//!
//! The registry and the pattern index keep their records here and put only
//! the 4-byte ids in their hash tables and per-subscriber sets. A hash table
//! holding 1,000,000 entries has just passed 7/8 of 2^20 buckets and so has
//! 2^21: with `u32` buckets that costs about 10 B per entry, where buckets
//! holding the records themselves (30–60 B each) would cost 70–130 B.
//!
//! A removed value's slot is reused by the next insert, so churn cannot grow
//! the slab past the most values it ever held at once; when the last value
//! leaves, the whole vector is given back. Ids are `u32`: a slab holds at
//! most [`MAX_LEN`] values and [`Slab::insert`] says so with a
//! [`CapacityError`] rather than wrapping.

use alloc::vec::Vec;
use core::fmt;

use hashbrown::HashTable;

use crate::registry::mostly_empty;

/// The most values a slab holds: ids run from 0 to `MAX_LEN - 1`, and
/// `u32::MAX` stays free to mean "no id".
pub(crate) const MAX_LEN: usize = u32::MAX as usize;

/// An id that no value has: marks the end of a chain of ids.
pub(crate) const NO_ID: u32 = u32::MAX;

/// The error of an operation that would need a new name, pattern or
/// subscriber when 2^32 − 1 of that kind are already held. Each takes tens
/// of bytes of bookkeeping, so this is hundreds of gigabytes in: nothing was
/// changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct CapacityError;

impl fmt::Display for CapacityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("registry is full: 2^32 - 1 names of one kind or subscribers are held")
    }
}

impl core::error::Error for CapacityError {}

/// Values with stable `u32` ids.
pub(crate) struct Slab<T> {
    /// `None` slots are listed in `free`.
    slots: Vec<Option<T>>,
    free: Vec<u32>,
    /// Number of `Some` slots.
    len: usize,
}

impl<T> Slab<T> {
    pub(crate) const fn new() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Stores `value` and returns its id, or hands it back if the slab is
    /// full.
    pub(crate) fn insert(&mut self, value: T) -> Result<u32, (CapacityError, T)> {
        if let Some(id) = self.free.pop() {
            if let Some(slot) = self.slots.get_mut(id as usize) {
                *slot = Some(value);
                self.len += 1;
                return Ok(id);
            }
        }
        let id = self.slots.len();
        if id >= MAX_LEN {
            return Err((CapacityError, value));
        }
        self.slots.push(Some(value));
        self.len += 1;
        Ok(id as u32)
    }

    /// Takes the value out of `id`'s slot; the id may be reused.
    pub(crate) fn remove(&mut self, id: u32) -> Option<T> {
        let value = self.slots.get_mut(id as usize)?.take()?;
        self.len -= 1;
        if self.len == 0 {
            // Nothing is held: give the vectors back, so that churn cannot
            // keep them at their peak.
            self.slots = Vec::new();
            self.free = Vec::new();
        } else {
            self.free.push(id);
        }
        Some(value)
    }

    #[inline]
    pub(crate) fn get(&self, id: u32) -> Option<&T> {
        self.slots.get(id as usize).and_then(Option::as_ref)
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, id: u32) -> Option<&mut T> {
        self.slots.get_mut(id as usize).and_then(Option::as_mut)
    }

    /// Every value with its id, in id order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &T)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(id, slot)| Some((id as u32, slot.as_ref()?)))
    }

    /// The values alone, in id order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &T> + '_ {
        self.slots.iter().flatten()
    }

    /// Checks that `len` and the free list describe the slots.
    pub(crate) fn check_invariants(&self) {
        assert_eq!(self.values().count(), self.len, "slab len counts values");
        assert_eq!(
            self.free.len() + self.len,
            self.slots.len(),
            "the free list covers the empty slots"
        );
        for &id in &self.free {
            assert!(self.get(id).is_none(), "free slot {id} is empty");
        }
        if self.len == 0 {
            assert!(self.slots.is_empty(), "an empty slab holds no slots");
        }
    }
}

/// Removes `id`, stored under `hash`, from a table of slab ids, and gives
/// memory back once the table is mostly empty; `rehash` gives the hash of
/// any other id in it.
pub(crate) fn unlink(table: &mut HashTable<u32>, hash: u64, id: u32, rehash: impl Fn(&u32) -> u64) {
    if let Ok(found) = table.find_entry(hash, |&other| other == id) {
        found.remove();
    }
    if mostly_empty(table.len(), table.capacity()) {
        table.shrink_to(table.len() * 2, rehash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        /// Random inserts and removals against a map from id to value:
        /// ids stay stable, removed ids are reused, and an emptied slab
        /// holds nothing.
        #[test]
        fn agrees_with_a_map(ops in prop::collection::vec((any::<bool>(), 0u32..12), 0..60)) {
            let mut slab = Slab::new();
            let mut model: BTreeMap<u32, u32> = BTreeMap::new();
            for (k, (insert, x)) in ops.into_iter().enumerate() {
                if insert {
                    let id = slab.insert(k as u32).map_err(|_| ()).unwrap_or(NO_ID);
                    prop_assert!(model.insert(id, k as u32).is_none(), "fresh id");
                } else {
                    let id = model.keys().nth(x as usize % model.len().max(1)).copied().unwrap_or(x);
                    prop_assert_eq!(slab.remove(id), model.remove(&id));
                }
                slab.check_invariants();
                prop_assert_eq!(slab.len(), model.len());
                let all: Vec<(u32, u32)> = slab.iter().map(|(id, v)| (id, *v)).collect();
                let expected: Vec<(u32, u32)> = model.iter().map(|(id, v)| (*id, *v)).collect();
                prop_assert_eq!(all, expected);
                if let Some((&id, &v)) = model.iter().next() {
                    prop_assert_eq!(slab.get(id), Some(&v));
                    prop_assert_eq!(slab.get_mut(id).map(|v| *v), Some(v));
                }
            }
        }
    }
}
