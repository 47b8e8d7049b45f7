//! The route cache: for each exact channel, which patterns matched it the
//! last time it was published, so that the next publish to it can skip the
//! pattern index while the set of patterns is unchanged.
//!
//! Each exact channel id has one 64-bit cell: the pattern *generation* it was
//! computed at (high half; 0 marks an empty cell) and what matched (low
//! half): no pattern, one pattern by id, or several (not cached: several
//! matches take the index path, which also orders them). The generation is
//! bumped whenever a distinct pattern is added or removed, which turns every
//! cell stale at once; a channel id that is reused starts empty. So a cell
//! is only ever read at the generation it was written at, when the same
//! patterns exist and match the same channel.
//!
//! Publishing reads and writes cells through `&self` (publishes run
//! concurrently under a shared lock), so cells are atomics, written with
//! one store: a publish computes a cell from the state it reads, and that
//! state cannot change until every publish has let go of it. The cells
//! exist only while at least one pattern does, so a registry without
//! patterns pays nothing, and targets without 64-bit atomics do without
//! the cache.

use alloc::vec::Vec;

#[cfg(target_has_atomic = "64")]
use core::sync::atomic::{AtomicU64, Ordering};

/// What a cell says about a channel.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Cached {
    /// Not known at this generation: ask the index.
    Unknown,
    /// No pattern matches.
    NoPattern,
    /// Exactly this pattern (by index id) matches.
    One(u32),
}

/// What a publish found in the index, folded as it goes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Found {
    Nothing,
    One(u32),
    Several,
}

impl Found {
    /// Adds the match of pattern `id`.
    #[inline]
    pub(crate) fn and(self, id: u32) -> Found {
        match self {
            Found::Nothing => Found::One(id),
            _ => Found::Several,
        }
    }
}

/// The low half of a cell.
const NO_PATTERN: u32 = u32::MAX;
const SEVERAL: u32 = u32::MAX - 1;

/// The cells, and the generation they are valid at.
pub(crate) struct Routes {
    /// By exact channel id; empty while no pattern exists.
    #[cfg(target_has_atomic = "64")]
    cells: Vec<AtomicU64>,
    /// Never 0.
    generation: u32,
}

impl Routes {
    pub(crate) const fn new() -> Routes {
        Routes {
            #[cfg(target_has_atomic = "64")]
            cells: Vec::new(),
            generation: 1,
        }
    }

    /// What the cell of channel `id` says.
    #[inline]
    pub(crate) fn get(&self, id: u32) -> Cached {
        #[cfg(target_has_atomic = "64")]
        if let Some(cell) = self.cells.get(id as usize) {
            let cell = cell.load(Ordering::Relaxed);
            if (cell >> 32) as u32 == self.generation {
                return match cell as u32 {
                    NO_PATTERN => Cached::NoPattern,
                    SEVERAL => Cached::Unknown,
                    pattern => Cached::One(pattern),
                };
            }
        }
        #[cfg(not(target_has_atomic = "64"))]
        let _ = id;
        Cached::Unknown
    }

    /// Records what a publish to channel `id` found at this generation.
    #[inline]
    pub(crate) fn set(&self, id: u32, found: Found) {
        #[cfg(target_has_atomic = "64")]
        if let Some(cell) = self.cells.get(id as usize) {
            let low = match found {
                Found::Nothing => NO_PATTERN,
                // An id that collides with a marker is simply not cached.
                Found::One(pattern) if pattern < SEVERAL => pattern,
                _ => SEVERAL,
            };
            cell.store(
                u64::from(self.generation) << 32 | u64::from(low),
                Ordering::Relaxed,
            );
        }
        #[cfg(not(target_has_atomic = "64"))]
        let _ = (id, found);
    }

    /// Channel `id` was just created (possibly reusing an id): its cell
    /// starts empty. `patterns` says whether any pattern exists.
    pub(crate) fn channel_added(&mut self, id: u32, patterns: bool) {
        #[cfg(target_has_atomic = "64")]
        if patterns {
            let at = id as usize;
            if self.cells.len() <= at {
                self.cells.resize_with(at + 1, || AtomicU64::new(0));
            }
            if let Some(cell) = self.cells.get_mut(at) {
                *cell.get_mut() = 0;
            }
        }
        #[cfg(not(target_has_atomic = "64"))]
        let _ = (id, patterns);
    }

    /// A distinct pattern was added or removed: every cell turns stale.
    /// `patterns` says whether any pattern is left, and `channel_ids` bounds
    /// the exact channel ids in use.
    pub(crate) fn patterns_changed(&mut self, patterns: bool, channel_ids: usize) {
        self.generation = self.generation.wrapping_add(1);
        #[cfg(target_has_atomic = "64")]
        {
            if !patterns {
                self.cells = Vec::new();
            } else if self.cells.len() < channel_ids {
                self.cells.resize_with(channel_ids, || AtomicU64::new(0));
            }
            if self.generation == 0 {
                // After 2^32 changes a generation comes back: empty every
                // cell so that none written long ago reads as current.
                for cell in &mut self.cells {
                    *cell.get_mut() = 0;
                }
            }
        }
        #[cfg(not(target_has_atomic = "64"))]
        let _ = (patterns, channel_ids);
        if self.generation == 0 {
            self.generation = 1;
        }
    }

    /// The number of cells held.
    #[cfg(test)]
    pub(crate) fn cells(&self) -> usize {
        #[cfg(target_has_atomic = "64")]
        return self.cells.len();
        #[cfg(not(target_has_atomic = "64"))]
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_is_read_only_at_its_generation() {
        let mut r = Routes::new();
        r.patterns_changed(true, 3);
        assert_eq!(r.get(1), Cached::Unknown, "empty");
        r.set(1, Found::One(7));
        r.set(2, Found::Nothing);
        r.set(0, Found::One(1).and(2));
        assert_eq!(r.get(1), Cached::One(7));
        assert_eq!(r.get(2), Cached::NoPattern);
        assert_eq!(r.get(0), Cached::Unknown, "several are not cached");
        assert_eq!(r.get(9), Cached::Unknown, "no cell");
        // A reused channel id starts empty.
        r.channel_added(1, true);
        assert_eq!(r.get(1), Cached::Unknown);
        // Any pattern change makes every cell stale.
        r.patterns_changed(true, 3);
        assert_eq!(r.get(2), Cached::Unknown);
        // Without patterns, no cells are kept.
        r.patterns_changed(false, 3);
        assert_eq!(r.cells(), 0);
        r.set(2, Found::Nothing);
        assert_eq!(r.get(2), Cached::Unknown);
    }

    #[test]
    fn a_wrapped_generation_does_not_revive_old_cells() {
        let mut r = Routes::new();
        r.patterns_changed(true, 1);
        r.set(0, Found::One(5));
        let written_at = r.generation;
        // Go once round the 32-bit generation, back to `written_at`.
        r.generation = u32::MAX;
        r.patterns_changed(true, 1);
        assert_eq!(r.generation, 1);
        r.generation = written_at - 1;
        r.patterns_changed(true, 1);
        assert_eq!(r.generation, written_at);
        assert_eq!(r.get(0), Cached::Unknown, "emptied at the wrap");
    }

    #[test]
    fn ids_that_collide_with_the_markers_are_not_cached() {
        let mut r = Routes::new();
        r.patterns_changed(true, 2);
        r.set(0, Found::One(SEVERAL));
        r.set(1, Found::One(NO_PATTERN));
        assert_eq!(r.get(0), Cached::Unknown);
        assert_eq!(r.get(1), Cached::Unknown);
    }
}
