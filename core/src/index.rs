//! The pattern index: which subscribed patterns match a channel, without
//! testing the ones that cannot.
//!
//! Redis scans every pattern on every `PUBLISH` (`src/pubsub.c`
//! `pubsubPublishMessage`), so a publish costs O(M) in the number of patterns:
//! about 1.4 ms at 100,000 patterns. This index makes the cost depend on the
//! channel and on the patterns that could match it, not on the rest.
//!
//! # How it works
//!
//! Every pattern is stored once, however many subscribers hold it, and filed
//! under **one** key chosen when it is inserted:
//!
//! - **A fixed literal** ([`Pattern::fixed_literals`]): a literal run at a
//!   fixed offset from the start (before the first `*`) or from the end (after
//!   the last `*`) of every matching text. `p42:*` is filed under `p42:` at
//!   offset 0 from the start; `*.sports` under `.sports` at offset 0 from the
//!   end; `?ab*` under `ab` at offset 1. The longest such run is chosen, since
//!   the longer the literal, the fewer channels carry it.
//! - **The always-check list**, for patterns with no fixed literal at all
//!   (`*`, `?*`, `[a-z]*`, `*foo*`). These are tested on every publish, so the
//!   list should stay short; it is the only part whose cost grows with its size.
//! - Nowhere, for patterns that can never match ([`Pattern::never_matches`]).
//!
//! Literal keys live in one hash table per (side, offset). On publish, each
//! table walks the channel once from its offset (forwards from the start or
//! backwards from the end), folding the bytes into a rolling hash, and probes
//! the table at each literal length it holds. Every pattern found this way is
//! a *candidate*, confirmed by its compiled matcher. The cost of a publish is
//! therefore O(Σ walked bytes + distinct (side, offset, length) shapes +
//! candidates · match cost + always-check list), independent of the number of
//! patterns that share no literal with the channel.
//!
//! Matches are reported in the order their patterns were first inserted, so
//! publish order is deterministic. They are sorted in a stack buffer of 16
//! entries; a publish matched by more than 16 distinct patterns spills that
//! buffer to the heap once.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};
use smallvec::SmallVec;

use crate::glob::Pattern;
use crate::registry::mostly_empty;

/// Patterns stored by their source bytes, each with a value, found by the
/// channels they match.
///
/// ```
/// use tidings_core::index::PatternIndex;
///
/// let mut index = PatternIndex::new();
/// index.insert(b"news.*", "all news");
/// index.insert(b"*.sports", "all sports");
/// index.insert(b"weather.*", "all weather");
///
/// let mut hits = Vec::new();
/// index.for_each_match(b"news.sports", |pattern, value| hits.push((pattern.as_bytes().to_vec(), *value)));
/// assert_eq!(hits, [(b"news.*".to_vec(), "all news"), (b"*.sports".to_vec(), "all sports")]);
/// ```
pub struct PatternIndex<V> {
    /// Slab of entries; `None` slots are listed in `free`.
    entries: Vec<Option<Entry<V>>>,
    free: Vec<u32>,
    /// Entry ids, looked up by the pattern's source bytes.
    by_source: HashTable<u32>,
    /// One table per (side, offset) that files at least one pattern.
    tables: Vec<Table>,
    /// Ids of patterns without a fixed literal; each entry knows its position.
    always: Vec<u32>,
    /// Number of live entries.
    len: usize,
    /// Next insertion sequence number (the delivery order).
    next_seq: u64,
    hasher: DefaultHashBuilder,
    /// Seed of the rolling hash of literal keys.
    seed: u64,
}

struct Entry<V> {
    pattern: Pattern,
    value: V,
    /// Insertion sequence number: matches are reported in this order.
    seq: u64,
    /// Where the entry is filed.
    filed: Filed,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Filed {
    /// In the table for (`from_end`, `offset`), under a literal of `len`
    /// bytes. `whole`: the literal is all of the pattern but its stars
    /// (`p42:*`, `*.sports`), so a channel carrying it matches for certain and
    /// the matcher is not run.
    Literal {
        from_end: bool,
        offset: usize,
        len: usize,
        whole: bool,
    },
    /// At this position of the always-check list.
    Always(usize),
    /// Nowhere: the pattern never matches.
    Never,
}

/// The literal keys at one (side, offset).
struct Table {
    from_end: bool,
    offset: usize,
    /// Distinct key lengths held, ascending, each with its number of buckets.
    lengths: Vec<(usize, usize)>,
    buckets: HashTable<Bucket>,
    /// A one-hash Bloom filter over the buckets' hashes: a probe whose bit is
    /// clear skips the table, which keeps most probes in cache. Bits are set
    /// on insert and only cleared by a rebuild, so a set bit may be stale
    /// (costing a probe), but a clear bit is always right.
    filter: Box<[u64]>,
    /// Buckets removed since the filter was last rebuilt.
    stale: usize,
}

/// Words in a table's filter: 2^16 bits, 8 KiB.
const FILTER_WORDS: usize = 1024;

fn filter_bit(hash: u64) -> (usize, u64) {
    let index = ((hash >> 32) & 0xffff) as usize;
    (index >> 6, 1 << (index & 63))
}

impl Table {
    fn may_hold(&self, hash: u64) -> bool {
        let (word, bit) = filter_bit(hash);
        self.filter.get(word).is_some_and(|w| w & bit != 0)
    }

    fn mark(&mut self, hash: u64) {
        let (word, bit) = filter_bit(hash);
        if let Some(w) = self.filter.get_mut(word) {
            *w |= bit;
        }
    }

    /// Notes a removed bucket; rebuilds the filter once stale bits could
    /// outnumber live ones.
    fn forget(&mut self) {
        self.stale += 1;
        if self.stale > self.buckets.len() + 64 {
            self.filter.iter_mut().for_each(|w| *w = 0);
            let hashes: Vec<u64> = self.buckets.iter().map(|b| b.hash).collect();
            hashes.into_iter().for_each(|h| self.mark(h));
            self.stale = 0;
        }
    }
}

/// The patterns filed under one literal key.
struct Bucket {
    hash: u64,
    len: usize,
    /// Entry ids; never empty.
    ids: SmallVec<[u32; 2]>,
}

/// The rolling hash: cheap per byte, finished per probe.
#[inline]
fn roll(h: u64, byte: u8) -> u64 {
    (h ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
}

#[inline]
fn finish(h: u64, len: usize) -> u64 {
    let h = (h ^ len as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^ (h >> 29)
}

/// The literal key of an entry filed under `Filed::Literal`.
fn key_of(pattern: &Pattern, from_end: bool, offset: usize) -> Option<&[u8]> {
    pattern
        .fixed_literals()
        .find(|f| f.from_end == from_end && f.offset == offset)
        .map(|f| f.bytes)
}

impl<V> Default for PatternIndex<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> PatternIndex<V> {
    /// An empty index.
    pub fn new() -> Self {
        let hasher = DefaultHashBuilder::default();
        let seed = hasher.hash_one(0x0074_6964_696e_6773_u64);
        PatternIndex {
            entries: Vec::new(),
            free: Vec::new(),
            by_source: HashTable::new(),
            tables: Vec::new(),
            always: Vec::new(),
            len: 0,
            next_seq: 0,
            hasher,
            seed,
        }
    }

    /// Number of distinct patterns held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no pattern is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of patterns tested on every publish because they have no fixed
    /// literal (`*`, `?*`, `*foo*`, …).
    pub fn always_checked(&self) -> usize {
        self.always.len()
    }

    fn entry(&self, id: u32) -> Option<&Entry<V>> {
        self.entries.get(id as usize).and_then(Option::as_ref)
    }

    fn id_of(&self, pattern: &[u8]) -> Option<u32> {
        let hash = self.hasher.hash_one(pattern);
        let entries = &self.entries;
        self.by_source
            .find(hash, |&id| {
                entries
                    .get(id as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|e| e.pattern.as_bytes() == pattern)
            })
            .copied()
    }

    /// The stored pattern and its value.
    pub fn get(&self, pattern: &[u8]) -> Option<(&Pattern, &V)> {
        let e = self.entry(self.id_of(pattern)?)?;
        Some((&e.pattern, &e.value))
    }

    /// The value stored for `pattern`, mutably.
    pub fn get_mut(&mut self, pattern: &[u8]) -> Option<&mut V> {
        let id = self.id_of(pattern)?;
        self.entries
            .get_mut(id as usize)?
            .as_mut()
            .map(|e| &mut e.value)
    }

    /// Inserts `pattern` with `value` if absent. Returns the stored pattern,
    /// its value and whether it was inserted now.
    pub fn get_or_insert_with(
        &mut self,
        pattern: &[u8],
        value: impl FnOnce() -> V,
    ) -> (&Pattern, &mut V, bool) {
        let (id, inserted) = match self.id_of(pattern) {
            Some(id) => (id, false),
            None => (self.insert_new(Pattern::new(pattern), value()), true),
        };
        match self.entries.get_mut(id as usize).and_then(Option::as_mut) {
            Some(e) => (&e.pattern, &mut e.value, inserted),
            // `id` was just found or inserted.
            None => unreachable!("pattern index entry {id} vanished"),
        }
    }

    /// Inserts `pattern` with `value`, replacing and returning any previous
    /// value (the pattern keeps its place in the delivery order).
    pub fn insert(&mut self, pattern: &[u8], value: V) -> Option<V> {
        match self.get_mut(pattern) {
            Some(slot) => Some(core::mem::replace(slot, value)),
            None => {
                self.insert_new(Pattern::new(pattern), value);
                None
            }
        }
    }

    fn insert_new(&mut self, pattern: Pattern, value: V) -> u32 {
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.entries.push(None);
                (self.entries.len() - 1) as u32
            }
        };
        let filed = self.file(&pattern, id);
        let hash = self.hasher.hash_one(pattern.as_bytes());
        let seq = self.next_seq;
        self.next_seq += 1;
        self.entries[id as usize] = Some(Entry {
            pattern,
            value,
            seq,
            filed,
        });
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.by_source
            .insert_unique(hash, id, |&other| rehash(entries, hasher, other));
        self.len += 1;
        id
    }

    /// Chooses where `pattern` goes and puts `id` there.
    fn file(&mut self, pattern: &Pattern, id: u32) -> Filed {
        if pattern.never_matches() {
            return Filed::Never;
        }
        let Some(best) = pattern.fixed_literals().fold(
            None,
            |best: Option<crate::glob::FixedLiteral<'_>>, f| match best {
                Some(b) if b.bytes.len() >= f.bytes.len() => Some(b),
                _ => Some(f),
            },
        ) else {
            self.always.push(id);
            return Filed::Always(self.always.len() - 1);
        };
        let hash = self.literal_hash(best.bytes.iter().copied(), best.from_end);
        let len = best.bytes.len();
        let t = match self
            .tables
            .iter()
            .position(|t| t.from_end == best.from_end && t.offset == best.offset)
        {
            Some(t) => t,
            None => {
                self.tables.push(Table {
                    from_end: best.from_end,
                    offset: best.offset,
                    lengths: Vec::new(),
                    buckets: HashTable::new(),
                    filter: alloc::vec![0; FILTER_WORDS].into_boxed_slice(),
                    stale: 0,
                });
                self.tables.len() - 1
            }
        };
        let entries = &self.entries;
        let table = &mut self.tables[t];
        let same_key = |b: &Bucket| {
            b.hash == hash
                && b.len == len
                && b.ids.first().is_some_and(|&other| {
                    entries
                        .get(other as usize)
                        .and_then(Option::as_ref)
                        .and_then(|e| key_of(&e.pattern, best.from_end, best.offset))
                        == Some(best.bytes)
                })
        };
        match table.buckets.find_mut(hash, same_key) {
            Some(bucket) => bucket.ids.push(id),
            None => {
                table.mark(hash);
                table.buckets.insert_unique(
                    hash,
                    Bucket {
                        hash,
                        len,
                        ids: smallvec::smallvec![id],
                    },
                    |b| b.hash,
                );
                match table.lengths.binary_search_by_key(&len, |&(l, _)| l) {
                    Ok(i) => table.lengths[i].1 += 1,
                    Err(i) => table.lengths.insert(i, (len, 1)),
                }
            }
        }
        let whole = pattern.exact_len().is_none() && pattern.min_len() == len && best.offset == 0;
        Filed::Literal {
            from_end: best.from_end,
            offset: best.offset,
            len,
            whole,
        }
    }

    /// The hash of a literal key, fed in walk order: forwards for keys
    /// measured from the start, backwards for keys measured from the end.
    fn literal_hash(&self, bytes: impl DoubleEndedIterator<Item = u8>, from_end: bool) -> u64 {
        let mut h = self.seed;
        let mut len = 0;
        if from_end {
            for b in bytes.rev() {
                h = roll(h, b);
                len += 1;
            }
        } else {
            for b in bytes {
                h = roll(h, b);
                len += 1;
            }
        }
        finish(h, len)
    }

    /// Removes `pattern` and returns it with its value.
    pub fn remove(&mut self, pattern: &[u8]) -> Option<(Pattern, V)> {
        // One hash and one probe find the id and unlink it.
        let hash = self.hasher.hash_one(pattern);
        let entries = &self.entries;
        let found = self
            .by_source
            .find_entry(hash, |&id| {
                entries
                    .get(id as usize)
                    .and_then(Option::as_ref)
                    .is_some_and(|e| e.pattern.as_bytes() == pattern)
            })
            .ok()?;
        let (id, _) = found.remove();
        if mostly_empty(self.by_source.len(), self.by_source.capacity()) {
            let (entries, hasher) = (&self.entries, &self.hasher);
            self.by_source
                .shrink_to(self.by_source.len() * 2, |&other| {
                    rehash(entries, hasher, other)
                });
        }
        let entry = self.entries.get_mut(id as usize)?.take()?;
        match entry.filed {
            Filed::Never => {}
            Filed::Always(pos) => {
                self.always.swap_remove(pos);
                if let Some(&moved) = self.always.get(pos) {
                    if let Some(Some(e)) = self.entries.get_mut(moved as usize) {
                        e.filed = Filed::Always(pos);
                    }
                }
            }
            Filed::Literal {
                from_end,
                offset,
                len,
                ..
            } => {
                let key = key_of(&entry.pattern, from_end, offset).unwrap_or(&[]);
                let hash = self.literal_hash(key.iter().copied(), from_end);
                if let Some(t) = self
                    .tables
                    .iter()
                    .position(|t| t.from_end == from_end && t.offset == offset)
                {
                    let table = &mut self.tables[t];
                    if let Ok(mut bucket) = table.buckets.find_entry(hash, |b| b.ids.contains(&id))
                    {
                        let ids = &mut bucket.get_mut().ids;
                        ids.retain(|other| *other != id);
                        if ids.is_empty() {
                            bucket.remove();
                            table.forget();
                            if mostly_empty(table.buckets.len(), table.buckets.capacity()) {
                                table.buckets.shrink_to(table.buckets.len() * 2, |b| b.hash);
                            }
                            if let Ok(i) = table.lengths.binary_search_by_key(&len, |&(l, _)| l) {
                                table.lengths[i].1 -= 1;
                                if table.lengths[i].1 == 0 {
                                    table.lengths.remove(i);
                                }
                            }
                        }
                    }
                    if table.buckets.is_empty() {
                        self.tables.swap_remove(t);
                    }
                }
            }
        }
        self.free.push(id);
        self.len -= 1;
        if self.len == 0 {
            // Nothing is held: release the slab too, so churn cannot grow it.
            self.entries = Vec::new();
            self.free = Vec::new();
        }
        Some((entry.pattern, entry.value))
    }

    /// Calls `f` with every stored pattern that matches `channel`, and its
    /// value, in insertion order.
    pub fn for_each_match(&self, channel: &[u8], mut f: impl FnMut(&Pattern, &V)) {
        if self.len == 0 {
            return;
        }
        let mut hits: SmallVec<[(u64, u32); 16]> = SmallVec::new();
        // `probe` is the part of the channel a literal key was found at: a
        // pattern that is that literal plus stars matches without running
        // the matcher (the bytes are compared, since hashes can collide).
        let mut confirm = |id: u32, probe: Option<&[u8]>| {
            if let Some(e) = self.entry(id) {
                let certain = match (e.filed, probe) {
                    (
                        Filed::Literal {
                            whole: true,
                            from_end,
                            ..
                        },
                        Some(probe),
                    ) => {
                        let key = if from_end {
                            e.pattern.literal_suffix()
                        } else {
                            e.pattern.literal_prefix()
                        };
                        key == probe
                    }
                    _ => e.pattern.matches(channel),
                };
                if certain {
                    hits.push((e.seq, id));
                }
            }
        };
        for table in &self.tables {
            let Some(max_len) = channel.len().checked_sub(table.offset) else {
                continue;
            };
            let mut h = self.seed;
            let mut walked = 0;
            for &(len, _) in &table.lengths {
                if len > max_len {
                    break;
                }
                while walked < len {
                    let at = if table.from_end {
                        channel.len() - table.offset - 1 - walked
                    } else {
                        table.offset + walked
                    };
                    h = roll(h, channel[at]);
                    walked += 1;
                }
                let hash = finish(h, len);
                if !table.may_hold(hash) {
                    continue;
                }
                let probe = if table.from_end {
                    &channel[channel.len() - table.offset - len..channel.len() - table.offset]
                } else {
                    &channel[table.offset..table.offset + len]
                };
                // Distinct keys may share a hash: visit every bucket that
                // could hold this one (impostors are rejected by the byte
                // comparison or the matcher).
                for bucket in table.buckets.iter_hash(hash) {
                    if bucket.hash == hash && bucket.len == len {
                        bucket.ids.iter().for_each(|&id| confirm(id, Some(probe)));
                    }
                }
            }
        }
        self.always.iter().for_each(|&id| confirm(id, None));
        hits.sort_unstable();
        for (_, id) in hits {
            if let Some(e) = self.entry(id) {
                f(&e.pattern, &e.value);
            }
        }
    }

    /// Every stored pattern with its value, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&Pattern, &V)> + '_ {
        self.entries
            .iter()
            .flatten()
            .map(|e| (&e.pattern, &e.value))
    }

    /// Checks the index's internal invariants: every entry is found by its
    /// source bytes and filed exactly where its key says; no table, bucket or
    /// length record is empty; counts agree. O(n); meant for tests and fuzz
    /// targets, which call it after every operation.
    ///
    /// # Panics
    ///
    /// Panics, describing the broken invariant, if one does not hold.
    pub fn check_invariants(&self) {
        let live: Vec<u32> = (0..self.entries.len() as u32)
            .filter(|&id| self.entry(id).is_some())
            .collect();
        assert_eq!(live.len(), self.len, "len counts live entries");
        assert_eq!(
            self.by_source.len(),
            self.len,
            "one source entry per pattern"
        );
        assert_eq!(
            self.free.len() + self.len,
            self.entries.len(),
            "free list covers empty slots"
        );
        for &free in &self.free {
            assert!(self.entry(free).is_none(), "free slot {free} is empty");
        }
        let mut filed_literal = 0;
        for &id in &live {
            let e = self.entry(id).unwrap_or_else(|| unreachable!());
            assert_eq!(
                self.id_of(e.pattern.as_bytes()),
                Some(id),
                "found by source bytes"
            );
            assert!(
                e.seq < self.next_seq,
                "sequence numbers are issued in order"
            );
            match e.filed {
                Filed::Never => assert!(
                    e.pattern.never_matches(),
                    "only never-matching patterns are unfiled"
                ),
                Filed::Always(pos) => {
                    assert_eq!(self.always.get(pos), Some(&id), "always-list position");
                    assert!(
                        e.pattern.fixed_literals().next().is_none(),
                        "always-checked only without a literal"
                    );
                }
                Filed::Literal {
                    from_end,
                    offset,
                    len,
                    whole,
                } => {
                    filed_literal += 1;
                    let only_key = e.pattern.exact_len().is_none()
                        && e.pattern.min_len() == len
                        && offset == 0;
                    assert_eq!(whole, only_key, "whole-key flag");
                    let key = key_of(&e.pattern, from_end, offset);
                    assert_eq!(
                        key.map(<[u8]>::len),
                        Some(len),
                        "filed under its own literal"
                    );
                    let longest = e.pattern.fixed_literals().map(|f| f.bytes.len()).max();
                    assert_eq!(longest, Some(len), "filed under its longest literal");
                    let hash = self.literal_hash(key.unwrap_or(&[]).iter().copied(), from_end);
                    let table = self
                        .tables
                        .iter()
                        .find(|t| t.from_end == from_end && t.offset == offset);
                    let bucket = table.and_then(|t| t.buckets.find(hash, |b| b.ids.contains(&id)));
                    assert!(
                        bucket.is_some_and(|b| b.len == len),
                        "bucket holds the entry"
                    );
                }
            }
        }
        assert_eq!(
            self.always.len(),
            live.iter()
                .filter(|&&id| matches!(self.entry(id).map(|e| e.filed), Some(Filed::Always(_))))
                .count()
        );
        let mut in_buckets = 0;
        for table in &self.tables {
            assert!(!table.buckets.is_empty(), "no empty table");
            let mut lengths: Vec<(usize, usize)> = Vec::new();
            for b in table.buckets.iter() {
                assert!(!b.ids.is_empty(), "no empty bucket");
                in_buckets += b.ids.len();
                match lengths.iter_mut().find(|(l, _)| *l == b.len) {
                    Some((_, n)) => *n += 1,
                    None => lengths.push((b.len, 1)),
                }
            }
            lengths.sort_unstable();
            assert_eq!(lengths, table.lengths, "length records match the buckets");
            for b in table.buckets.iter() {
                assert!(
                    table.may_hold(b.hash),
                    "the filter admits every live bucket"
                );
            }
        }
        assert_eq!(
            in_buckets, filed_literal,
            "each literal-filed entry is in one bucket"
        );
        if self.len == 0 {
            assert!(
                self.tables.is_empty() && self.always.is_empty() && self.entries.is_empty(),
                "empty index holds nothing"
            );
        }
    }
}

fn rehash<V>(entries: &[Option<Entry<V>>], hasher: &DefaultHashBuilder, id: u32) -> u64 {
    entries
        .get(id as usize)
        .and_then(Option::as_ref)
        .map_or(0, |e| hasher.hash_one(e.pattern.as_bytes()))
}

impl<V: core::fmt::Debug> core::fmt::Debug for PatternIndex<V> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}
