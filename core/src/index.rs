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
//! Literal keys live in one table per (side, offset). On publish, each
//! table walks the channel once from its offset (forwards from the start or
//! backwards from the end) and considers each key length it holds, in
//! ascending order:
//!
//! 1. **Far byte.** Each length keeps the set of its keys' far bytes (the
//!    last byte walked: `:` for every `p{i}:` key). If the channel's byte at
//!    that place is not in the set, the length is skipped after one load.
//! 2. **Hash.** The key hash is computed a word (8 bytes) at a time; full
//!    words are folded in once and kept, so all lengths together walk the
//!    channel once. Its high 32 bits are the key's *tag*.
//! 3. **Filter.** A 64 Ki-bit Bloom filter over the table's tags skips most
//!    lengths that hold no key for this channel without touching the table.
//! 4. **Probe.** The table is a `HashTable` of 8-byte buckets (tag, first
//!    entry id). The entries filed under one tag form a chain through the
//!    entries themselves, so a bucket costs 8 bytes however many patterns
//!    share the key.
//!
//! Every pattern found this way is a *candidate*, confirmed by its matcher
//! (for the common `lit*` and `*lit` shapes, one comparison of up to 8
//! bytes held in the pattern itself; see [`crate::glob`]). The cost of a
//! publish is therefore O(Σ walked bytes + distinct (side, offset, length)
//! shapes + candidates · match cost + always-check list), independent of the
//! number of patterns that share no literal with the channel.
//!
//! Entries live in a slab and are named by `u32` ids: the source-bytes table
//! and the buckets hold ids only, which keeps a pattern to about 100 bytes
//! of index at a million (the crate-private `slab` module says why). Where a pattern is filed is
//! a pure function of the pattern, recomputed on removal rather than stored.
//!
//! Matches are reported in the order their patterns were first inserted, so
//! publish order is deterministic. The first match is held aside and
//! reported without sorting; further ones are sorted in a stack buffer of 15
//! entries, which a publish matched by more than 16 distinct patterns spills
//! to the heap once.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};
use smallvec::SmallVec;

use crate::glob::{FixedLiteral, Pattern, load_le};
use crate::registry::mostly_empty;
use crate::slab::{CapacityError, NO_ID, Slab, unlink};

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
    /// Every stored pattern, by id.
    entries: Slab<Entry<V>>,
    /// Entry ids, looked up by the pattern's source bytes.
    by_source: HashTable<u32>,
    /// One table per (side, offset) that files at least one pattern.
    tables: Vec<Table>,
    /// Ids of patterns without a fixed literal; each entry knows its position.
    always: Vec<u32>,
    /// Next insertion sequence number (the delivery order).
    next_seq: u64,
    hasher: DefaultHashBuilder,
    /// Seed of the word-at-a-time hash of literal keys.
    seed: u64,
}

struct Entry<V> {
    pattern: Pattern,
    value: V,
    /// Insertion sequence number: matches are reported in this order.
    seq: u64,
    /// For an entry filed under a literal key: the next entry filed under
    /// the same key ([`NO_ID`] ends the chain). For an always-checked entry:
    /// its position in the always-check list. Unused otherwise.
    link: u32,
}

/// Where a pattern is filed: a pure function of the pattern, so it is
/// recomputed rather than stored.
enum Filing<'a> {
    /// Under this fixed literal, its longest (the first of the longest).
    Literal(FixedLiteral<'a>),
    /// On the always-check list.
    Always,
    /// Nowhere: the pattern never matches.
    Never,
}

fn filing(pattern: &Pattern) -> Filing<'_> {
    if pattern.never_matches() {
        return Filing::Never;
    }
    let best =
        pattern
            .fixed_literals()
            .fold(None, |best: Option<FixedLiteral<'_>>, f| match best {
                Some(b) if b.bytes.len() >= f.bytes.len() => Some(b),
                _ => Some(f),
            });
    best.map_or(Filing::Always, Filing::Literal)
}

/// The literal keys at one (side, offset).
struct Table {
    from_end: bool,
    offset: usize,
    /// Distinct key lengths held, ascending.
    lengths: Vec<Length>,
    /// One bucket per distinct key.
    buckets: HashTable<Bucket>,
    /// A one-hash Bloom filter over the buckets' tags: a probe whose bit is
    /// clear skips the table, which keeps most probes in cache. Bits are set
    /// on insert and only cleared by a rebuild, so a set bit may be stale
    /// (costing a probe), but a clear bit is always right.
    filter: Box<[u64]>,
    /// Buckets removed since the filter was last rebuilt.
    stale: usize,
}

/// The keys of one length in a table.
struct Length {
    len: usize,
    /// Number of entries filed under keys of this length; never 0.
    entries: usize,
    /// The far byte (the last one walked: the key's last byte from the
    /// start, its first byte from the end) of every key of this length,
    /// and possibly of some removed since the last filter rebuild. A channel
    /// whose byte at that place is not in the set cannot carry such a key,
    /// which costs one load to learn, before any hashing.
    far: ByteSet,
}

/// A set of bytes.
#[derive(Clone, Copy, Default)]
struct ByteSet([u64; 4]);

impl ByteSet {
    #[inline]
    fn contains(&self, b: u8) -> bool {
        self.0[usize::from(b >> 6)] & (1 << (b & 63)) != 0
    }

    fn insert(&mut self, b: u8) {
        self.0[usize::from(b >> 6)] |= 1 << (b & 63);
    }
}

/// The entries filed under the literal keys with one tag: usually one key,
/// since distinct keys of a table share a tag only by a 2^-32 chance. A
/// channel that carries any of them makes every entry of the chain a
/// candidate, and the matcher confirms each, so sharing costs only a test.
#[derive(Clone, Copy)]
struct Bucket {
    /// The high 32 bits of the key hash; the table hashes by this alone.
    tag: u32,
    /// The first entry of the chain.
    head: u32,
}

/// Words in a table's filter: 2^16 bits, 8 KiB.
const FILTER_WORDS: usize = 1024;

fn filter_bit(tag: u32) -> (usize, u64) {
    let index = ((tag >> 8) & 0xffff) as usize;
    (index >> 6, 1 << (index & 63))
}

/// The hash a table's `HashTable` uses for a tag (its bucket index from the
/// low bits, its control byte from the high ones).
#[inline]
fn table_hash(tag: u32) -> u64 {
    u64::from(tag) << 32 | u64::from(tag)
}

impl Table {
    #[inline]
    fn may_hold(&self, tag: u32) -> bool {
        let (word, bit) = filter_bit(tag);
        self.filter.get(word).is_some_and(|w| w & bit != 0)
    }

    fn mark(&mut self, tag: u32) {
        let (word, bit) = filter_bit(tag);
        if let Some(w) = self.filter.get_mut(word) {
            *w |= bit;
        }
    }

    /// The part of `channel` this table's keys are measured in: from the
    /// offset on (keys from the start) or up to `offset` bytes before the
    /// end (keys from the end). `None` if the channel is shorter.
    #[inline]
    fn region<'c>(&self, channel: &'c [u8]) -> Option<&'c [u8]> {
        if self.from_end {
            channel.get(..channel.len().checked_sub(self.offset)?)
        } else {
            channel.get(self.offset..)
        }
    }

    /// Calls `visit` with the head of every bucket whose key `channel` may
    /// carry at this table's place.
    #[inline]
    fn probe(&self, channel: &[u8], seed: u64, mut visit: impl FnMut(u32)) {
        let Some(region) = self.region(channel) else {
            return;
        };
        let mut walk = Walk::new(seed);
        for length in &self.lengths {
            let len = length.len;
            let far = if self.from_end {
                region.len().checked_sub(len).and_then(|at| region.get(at))
            } else {
                region.get(len.wrapping_sub(1))
            };
            let Some(&far) = far else {
                // Lengths ascend: no longer key fits either.
                break;
            };
            if !length.far.contains(far) {
                continue;
            }
            let tag = walk.tag(region, self.from_end, len);
            if !self.may_hold(tag) {
                continue;
            }
            if let Some(bucket) = self.buckets.find(table_hash(tag), |b| b.tag == tag) {
                visit(bucket.head);
            }
        }
    }
}

/// The hash of a literal key, computed a word (8 bytes) at a time in walk
/// order (forwards from the start of the region, backwards from its end),
/// then the remaining 0–7 bytes and the length. The full words are folded
/// in once and kept, so probing every length of a table walks the channel
/// once.
struct Walk {
    /// The seed with `words` full words folded in.
    h: u64,
    words: usize,
}

const K_WORD: u64 = 0x9e37_79b9_7f4a_7c15;
const K_TAIL: u64 = 0xc2b2_ae3d_27d4_eb4f;

/// A multiply that keeps all 128 bits of the product, folded.
#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

impl Walk {
    #[inline]
    fn new(seed: u64) -> Walk {
        Walk { h: seed, words: 0 }
    }

    /// The tag of the first `len` bytes of `region` in walk order (its last
    /// `len` bytes when walking from the end); `len` never decreases between
    /// calls on one walk, and `len <= region.len()`.
    #[inline]
    fn tag(&mut self, region: &[u8], from_end: bool, len: usize) -> u32 {
        let n = region.len();
        while (self.words + 1) * 8 <= len {
            let at = self.words * 8;
            let word = if from_end {
                region.get(n - at - 8..n - at)
            } else {
                region.get(at..at + 8)
            };
            self.h = fold_mul(self.h ^ word.map_or(0, load_le), K_WORD);
            self.words += 1;
        }
        let done = self.words * 8;
        let tail = if from_end {
            region.get(n - len..n - done)
        } else {
            region.get(done..len)
        };
        let tail = tail.map_or(0, load_le) ^ (len as u64) << 56;
        (fold_mul(self.h ^ tail, K_TAIL) >> 32) as u32
    }
}

/// The tag of a whole literal key.
fn key_tag(seed: u64, key: &[u8], from_end: bool) -> u32 {
    Walk::new(seed).tag(key, from_end, key.len())
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
            entries: Slab::new(),
            by_source: HashTable::new(),
            tables: Vec::new(),
            always: Vec::new(),
            next_seq: 0,
            hasher,
            seed,
        }
    }

    /// Number of distinct patterns held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no pattern is held.
    pub fn is_empty(&self) -> bool {
        self.entries.len() == 0
    }

    /// Number of patterns tested on every publish because they have no fixed
    /// literal (`*`, `?*`, `*foo*`, …).
    pub fn always_checked(&self) -> usize {
        self.always.len()
    }

    /// The id of `pattern`, if it is stored. Ids are stable while the
    /// pattern is held, and reused once it is removed.
    pub(crate) fn id_of(&self, pattern: &[u8]) -> Option<u32> {
        let hash = self.hasher.hash_one(pattern);
        let entries = &self.entries;
        self.by_source
            .find(hash, |&id| {
                entries
                    .get(id)
                    .is_some_and(|e| e.pattern.as_bytes() == pattern)
            })
            .copied()
    }

    /// The pattern and value stored under `id`.
    pub(crate) fn by_id(&self, id: u32) -> Option<(&Pattern, &V)> {
        self.entries.get(id).map(|e| (&e.pattern, &e.value))
    }

    /// The value stored under `id`, mutably.
    pub(crate) fn value_by_id_mut(&mut self, id: u32) -> Option<&mut V> {
        self.entries.get_mut(id).map(|e| &mut e.value)
    }

    /// The stored pattern and its value.
    pub fn get(&self, pattern: &[u8]) -> Option<(&Pattern, &V)> {
        self.by_id(self.id_of(pattern)?)
    }

    /// The value stored for `pattern`, mutably.
    pub fn get_mut(&mut self, pattern: &[u8]) -> Option<&mut V> {
        let id = self.id_of(pattern)?;
        self.value_by_id_mut(id)
    }

    /// Inserts `pattern` with `value` if absent. Returns the stored pattern,
    /// its value and whether it was inserted now, or [`CapacityError`] if
    /// the pattern is absent and 2^32 − 1 patterns are already held.
    pub fn get_or_insert_with(
        &mut self,
        pattern: &[u8],
        value: impl FnOnce() -> V,
    ) -> Result<(&Pattern, &mut V, bool), CapacityError> {
        let (id, inserted) = self.get_or_insert_id(pattern, |_| value())?;
        match self.entries.get_mut(id) {
            Some(e) => Ok((&e.pattern, &mut e.value, inserted)),
            // `id` was just found or inserted.
            None => Err(CapacityError),
        }
    }

    /// The id of `pattern`, inserted with `value(&compiled)` if absent, and
    /// whether it was inserted now.
    pub(crate) fn get_or_insert_id(
        &mut self,
        pattern: &[u8],
        value: impl FnOnce(&Pattern) -> V,
    ) -> Result<(u32, bool), CapacityError> {
        match self.id_of(pattern) {
            Some(id) => Ok((id, false)),
            None => {
                let pattern = Pattern::new(pattern);
                let value = value(&pattern);
                self.insert_new(pattern, value)
                    .map(|id| (id, true))
                    .map_err(|(e, _)| e)
            }
        }
    }

    /// Inserts `pattern` with `value`, replacing and returning any previous
    /// value (the pattern keeps its place in the delivery order).
    ///
    /// If the pattern is new and the index is full (2^32 − 1 patterns), it
    /// is not inserted and `value` itself is handed back;
    /// [`try_insert`](Self::try_insert) tells the two cases apart.
    pub fn insert(&mut self, pattern: &[u8], value: V) -> Option<V> {
        match self.try_insert(pattern, value) {
            Ok(previous) => previous,
            Err((_, value)) => Some(value),
        }
    }

    /// Like [`insert`](Self::insert), but a new pattern that does not fit
    /// (2^32 − 1 are held) is an error, which hands `value` back.
    pub fn try_insert(
        &mut self,
        pattern: &[u8],
        value: V,
    ) -> Result<Option<V>, (CapacityError, V)> {
        match self.get_mut(pattern) {
            Some(slot) => Ok(Some(core::mem::replace(slot, value))),
            None => self
                .insert_new(Pattern::new(pattern), value)
                .map(|_| None)
                .map_err(|(e, entry)| (e, entry.value)),
        }
    }

    fn insert_new(&mut self, pattern: Pattern, value: V) -> Result<u32, (CapacityError, Entry<V>)> {
        let hash = self.hasher.hash_one(pattern.as_bytes());
        let entry = Entry {
            pattern,
            value,
            seq: self.next_seq,
            link: NO_ID,
        };
        let id = self.entries.insert(entry)?;
        self.next_seq += 1;
        self.file(id);
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.by_source
            .insert_unique(hash, id, |&other| rehash(entries, hasher, other));
        Ok(id)
    }

    /// Files the stored entry `id` where its pattern says.
    fn file(&mut self, id: u32) {
        let Some(e) = self.entries.get(id) else {
            return;
        };
        let best = match filing(&e.pattern) {
            Filing::Never => return,
            Filing::Always => {
                let pos = self.always.len() as u32;
                self.always.push(id);
                if let Some(e) = self.entries.get_mut(id) {
                    e.link = pos;
                }
                return;
            }
            Filing::Literal(best) => best,
        };
        let tag = key_tag(self.seed, best.bytes, best.from_end);
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
        let Some(table) = self.tables.get_mut(t) else {
            return;
        };
        let next = match table.buckets.find_mut(table_hash(tag), |b| b.tag == tag) {
            Some(bucket) => core::mem::replace(&mut bucket.head, id),
            None => {
                table.mark(tag);
                table
                    .buckets
                    .insert_unique(table_hash(tag), Bucket { tag, head: id }, |b| {
                        table_hash(b.tag)
                    });
                NO_ID
            }
        };
        let len = best.bytes.len();
        let at = match table.lengths.binary_search_by_key(&len, |l| l.len) {
            Ok(at) => at,
            Err(at) => {
                table.lengths.insert(
                    at,
                    Length {
                        len,
                        entries: 0,
                        far: ByteSet::default(),
                    },
                );
                at
            }
        };
        if let Some(length) = table.lengths.get_mut(at) {
            length.entries += 1;
            if let Some(&far) = far_byte(best.bytes, best.from_end) {
                length.far.insert(far);
            }
        }
        if let Some(e) = self.entries.get_mut(id) {
            e.link = next;
        }
    }

    /// Removes `pattern` and returns it with its value.
    pub fn remove(&mut self, pattern: &[u8]) -> Option<(Pattern, V)> {
        let id = self.id_of(pattern)?;
        self.remove_by_id(id)
    }

    /// Removes the entry `id` and returns its pattern and value.
    pub(crate) fn remove_by_id(&mut self, id: u32) -> Option<(Pattern, V)> {
        let e = self.entries.get(id)?;
        let hash = self.hasher.hash_one(e.pattern.as_bytes());
        let (entries, hasher) = (&self.entries, &self.hasher);
        unlink(&mut self.by_source, hash, id, |&other| {
            rehash(entries, hasher, other)
        });
        self.unfile(id);
        let entry = self.entries.remove(id)?;
        if self.entries.len() == 0 {
            // Nothing is held: give the lists back too.
            self.always = Vec::new();
        }
        Some((entry.pattern, entry.value))
    }

    /// Takes the stored entry `id` out of wherever it is filed.
    fn unfile(&mut self, id: u32) {
        let Some(e) = self.entries.get(id) else {
            return;
        };
        let link = e.link;
        let best = match filing(&e.pattern) {
            Filing::Never => return,
            Filing::Always => {
                let pos = link as usize;
                if self.always.get(pos) == Some(&id) {
                    self.always.swap_remove(pos);
                    if let Some(&moved) = self.always.get(pos) {
                        if let Some(m) = self.entries.get_mut(moved) {
                            m.link = pos as u32;
                        }
                    }
                }
                return;
            }
            Filing::Literal(best) => best,
        };
        let (from_end, offset, len) = (best.from_end, best.offset, best.bytes.len());
        let tag = key_tag(self.seed, best.bytes, from_end);
        let Some(t) = self
            .tables
            .iter()
            .position(|t| t.from_end == from_end && t.offset == offset)
        else {
            return;
        };
        let Some(table) = self.tables.get_mut(t) else {
            return;
        };
        if let Ok(at) = table.lengths.binary_search_by_key(&len, |l| l.len) {
            if let Some(length) = table.lengths.get_mut(at) {
                length.entries -= 1;
                if length.entries == 0 {
                    table.lengths.remove(at);
                }
            }
        }
        let Ok(mut bucket) = table.buckets.find_entry(table_hash(tag), |b| b.tag == tag) else {
            return;
        };
        if bucket.get().head != id {
            // Unlink from the middle of the chain.
            let mut at = bucket.get().head;
            while let Some(e) = self.entries.get(at) {
                if e.link == id {
                    if let Some(e) = self.entries.get_mut(at) {
                        e.link = link;
                    }
                    return;
                }
                at = e.link;
            }
            return;
        }
        if link != NO_ID {
            bucket.get_mut().head = link;
            return;
        }
        bucket.remove();
        table.stale += 1;
        if mostly_empty(table.buckets.len(), table.buckets.capacity()) {
            table
                .buckets
                .shrink_to(table.buckets.len() * 2, |b| table_hash(b.tag));
        }
        if table.buckets.is_empty() {
            self.tables.swap_remove(t);
        } else if table.stale > table.buckets.len() + 64 {
            self.rebuild_filters(t);
        }
    }

    /// Rebuilds table `t`'s Bloom filter and far-byte sets from its live
    /// keys, once stale bits could outnumber live ones.
    fn rebuild_filters(&mut self, t: usize) {
        let entries = &self.entries;
        let Some(table) = self.tables.get_mut(t) else {
            return;
        };
        table.filter.iter_mut().for_each(|w| *w = 0);
        table
            .lengths
            .iter_mut()
            .for_each(|l| l.far = ByteSet::default());
        let from_end = table.from_end;
        let mut marks: Vec<(u32, usize, u8)> = Vec::new();
        for b in table.buckets.iter() {
            let mut at = b.head;
            while let Some(e) = entries.get(at) {
                if let Some(key) = key_of(entries, at) {
                    if let Some(&far) = far_byte(key, from_end) {
                        marks.push((b.tag, key.len(), far));
                    }
                }
                at = e.link;
            }
        }
        for (tag, len, far) in marks {
            table.mark(tag);
            if let Ok(at) = table.lengths.binary_search_by_key(&len, |l| l.len) {
                if let Some(length) = table.lengths.get_mut(at) {
                    length.far.insert(far);
                }
            }
        }
        table.stale = 0;
    }

    /// Calls `f` with every stored pattern that matches `channel`, and its
    /// value, in insertion order.
    #[inline]
    pub fn for_each_match(&self, channel: &[u8], mut f: impl FnMut(&Pattern, &V)) {
        self.for_each_match_id(channel, |_, pattern, value| f(pattern, value));
    }

    /// [`for_each_match`](Self::for_each_match), also passing each
    /// pattern's id.
    #[inline]
    pub(crate) fn for_each_match_id<'s>(
        &'s self,
        channel: &[u8],
        mut f: impl FnMut(u32, &'s Pattern, &'s V),
    ) {
        if self.entries.len() == 0 {
            return;
        }
        // The first hit is kept aside: most publishes match at most one
        // pattern, and need neither the buffer nor a sort.
        let mut first: Option<(u32, &Entry<V>)> = None;
        let mut more: SmallVec<[(u32, &Entry<V>); 15]> = SmallVec::new();
        let mut hit = |id: u32, e: &'s Entry<V>| {
            if e.pattern.matches(channel) {
                match first {
                    None => first = Some((id, e)),
                    Some(_) => more.push((id, e)),
                }
            }
        };
        for table in &self.tables {
            table.probe(channel, self.seed, |head| {
                let mut id = head;
                while let Some(e) = self.entries.get(id) {
                    hit(id, e);
                    id = e.link;
                }
            });
        }
        for &id in &self.always {
            if let Some(e) = self.entries.get(id) {
                hit(id, e);
            }
        }
        let Some(first) = first else {
            return;
        };
        if more.is_empty() {
            f(first.0, &first.1.pattern, &first.1.value);
            return;
        }
        more.push(first);
        more.sort_unstable_by_key(|(_, e)| e.seq);
        for (id, e) in &more {
            f(*id, &e.pattern, &e.value);
        }
    }

    /// Every stored pattern with its value, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&Pattern, &V)> + '_ {
        self.entries.values().map(|e| (&e.pattern, &e.value))
    }

    /// Checks the index's internal invariants: every entry is found by its
    /// source bytes and filed exactly where its key says; no table, bucket or
    /// length record is empty; chains end; counts agree. O(n); meant for
    /// tests and fuzz targets, which call it after every operation.
    ///
    /// # Panics
    ///
    /// Panics, describing the broken invariant, if one does not hold.
    pub fn check_invariants(&self) {
        self.entries.check_invariants();
        assert_eq!(
            self.by_source.len(),
            self.entries.len(),
            "one source entry per pattern"
        );
        let mut filed_literal = 0;
        let mut always = 0;
        for (id, e) in self.entries.iter() {
            assert_eq!(
                self.id_of(e.pattern.as_bytes()),
                Some(id),
                "found by source bytes"
            );
            assert!(
                e.seq < self.next_seq,
                "sequence numbers are issued in order"
            );
            match filing(&e.pattern) {
                Filing::Never => {}
                Filing::Always => {
                    always += 1;
                    assert_eq!(
                        self.always.get(e.link as usize),
                        Some(&id),
                        "always-list position"
                    );
                }
                Filing::Literal(best) => {
                    filed_literal += 1;
                    let tag = key_tag(self.seed, best.bytes, best.from_end);
                    let table = self
                        .tables
                        .iter()
                        .find(|t| t.from_end == best.from_end && t.offset == best.offset)
                        .unwrap_or_else(|| panic!("no table for entry {id}"));
                    let bucket = table
                        .buckets
                        .find(table_hash(tag), |b| b.tag == tag)
                        .unwrap_or_else(|| panic!("no bucket for entry {id}"));
                    let mut at = bucket.head;
                    let mut found = false;
                    let mut steps = 0;
                    while let Some(other) = self.entries.get(at) {
                        found |= at == id;
                        steps += 1;
                        assert!(steps <= self.entries.len(), "chains end");
                        at = other.link;
                    }
                    assert_eq!(at, NO_ID, "chains end with NO_ID");
                    assert!(found, "entry {id} is in its tag's chain");
                    assert!(table.may_hold(tag), "the filter admits every live key");
                    let length = table
                        .lengths
                        .iter()
                        .find(|l| l.len == best.bytes.len())
                        .unwrap_or_else(|| panic!("no length record for entry {id}"));
                    assert!(
                        far_byte(best.bytes, best.from_end)
                            .is_some_and(|&b| length.far.contains(b)),
                        "the far-byte set admits every live key"
                    );
                }
            }
        }
        assert_eq!(self.always.len(), always, "always list holds its entries");
        let mut in_chains = 0;
        for table in &self.tables {
            assert!(!table.buckets.is_empty(), "no empty table");
            let mut lengths: Vec<(usize, usize)> = Vec::new();
            for b in table.buckets.iter() {
                assert!(self.entries.get(b.head).is_some(), "no empty bucket");
                let mut at = b.head;
                while let Some(e) = self.entries.get(at) {
                    in_chains += 1;
                    let key = key_of(&self.entries, at).unwrap_or_else(|| panic!("keyed entry"));
                    assert_eq!(
                        key_tag(self.seed, key, table.from_end),
                        b.tag,
                        "entry in its tag's chain"
                    );
                    match lengths.iter_mut().find(|(l, _)| *l == key.len()) {
                        Some((_, n)) => *n += 1,
                        None => lengths.push((key.len(), 1)),
                    }
                    at = e.link;
                }
            }
            lengths.sort_unstable();
            let records: Vec<(usize, usize)> =
                table.lengths.iter().map(|l| (l.len, l.entries)).collect();
            assert_eq!(lengths, records, "length records count the entries");
        }
        assert_eq!(
            in_chains, filed_literal,
            "each literal-filed entry is in one chain"
        );
        if self.entries.len() == 0 {
            assert!(
                self.tables.is_empty() && self.always.is_empty(),
                "empty index holds nothing"
            );
        }
    }
}

/// The far byte of a key: the last one walked.
fn far_byte(key: &[u8], from_end: bool) -> Option<&u8> {
    if from_end { key.first() } else { key.last() }
}

/// The literal key the stored entry `id` is filed under.
fn key_of<V>(entries: &Slab<Entry<V>>, id: u32) -> Option<&[u8]> {
    match filing(&entries.get(id)?.pattern) {
        Filing::Literal(f) => Some(f.bytes),
        _ => None,
    }
}

fn rehash<V>(entries: &Slab<Entry<V>>, hasher: &DefaultHashBuilder, id: u32) -> u64 {
    entries
        .get(id)
        .map_or(0, |e| hasher.hash_one(e.pattern.as_bytes()))
}

impl<V: core::fmt::Debug> core::fmt::Debug for PatternIndex<V> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}
