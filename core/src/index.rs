//! The pattern index: which subscribed patterns match a channel, without
//! testing the ones that cannot.
//!
//! Redis scans every pattern on every `PUBLISH` (`src/pubsub.c`
//! `pubsubPublishMessage`), so a publish costs O(M) in the number of patterns:
//! about 1.4 ms at 100,000 patterns. This index makes the cost depend on the
//! channel and on the patterns that could match it, not on the rest.
//!
//! # The keying rule
//!
//! Every pattern is stored once, however many subscribers hold it, and filed
//! under **one key**: a literal that every matching channel carries.
//!
//! - **A pattern with at least one literal byte is never tested against a
//!   channel that lacks its key.** Its key is one of its literal runs (runs
//!   of literal bytes, escapes and one-byte classes resolved, that no `*`
//!   splits), in one of two forms:
//!   - **Fixed**: a run before the first `*` or after the last one sits at a
//!     fixed offset from the start or from the end of every matching text.
//!     `p42:*` has `p42:` at offset 0 from the start, `*.sports` has
//!     `.sports` at offset 0 from the end, `?ab*` has `ab` at offset 1. The
//!     key is the run (at most [`MAX_FIXED`] bytes of it, the ones nearest
//!     the stars' far side).
//!   - **Floating**: a run between two stars (`*:42:*`, `*news.42*`) sits
//!     anywhere. The key is a gram: [`MAX_GRAM`] consecutive bytes of the
//!     run, or the whole run if it is shorter.
//! - **Keys are chosen for selectivity.** Of all the keys a pattern offers
//!   (each fixed run, each gram of each floating run), it is filed under
//!   the one whose bucket holds the fewest patterns when it is inserted:
//!   `tenant:*:orders:{id}` patterns go under their distinct
//!   `:orders:{id}`, not the `tenant:` they all share, and
//!   `*.{id}.*.json` under a gram of `.{id}.`, not `.json`. Ties go to a
//!   fixed key (cheaper to probe), then to the longer one, then to the
//!   first. Where a pattern is filed is stored in its entry (6 bytes), since
//!   it depends on what was held when it came.
//! - **The always-check list** holds exactly the patterns with no literal
//!   byte (`*`, `?*`, `[a-z]*`, `*?*`): they can match channels that share
//!   no byte with them, so they are tested on every publish.
//! - Patterns that can never match ([`Pattern::never_matches`]) are held
//!   but filed nowhere.
//!
//! # Publishing
//!
//! Fixed keys live in one table per (side, offset), floating keys in one
//! table of grams. On publish:
//!
//! - each fixed table within the channel's length walks the channel once
//!   from its offset and considers each key length it holds, in ascending
//!   order: the key's far byte (its last byte walked: `:` for every `p{i}:`
//!   key) must be in the length's byte set, its hash (computed a word at a
//!   time, folded once for all lengths) must pass the table's 64 Ki-bit
//!   Bloom filter, and only then is the table probed;
//! - the gram table is probed at every window of the channel of each gram
//!   length it holds (1 to [`MAX_GRAM`]): a window whose first two bytes
//!   start no gram (a 64 Ki-bit bitmap), or whose hash fails the Bloom
//!   filter, costs one load. A gram the channel carries twice is visited
//!   once.
//!
//! Every pattern in a bucket found this way is a *candidate*, confirmed by
//! its matcher (for the common `lit*` and `*lit` shapes, one comparison of
//! up to 8 bytes held in the pattern itself; see [`crate::glob`]).
//!
//! **Cost.** A publish to a channel of length L costs
//! O(L × distinct key lengths + candidates × match cost + literal-free
//! patterns): at most 2 × (L + 1) fixed tables are within reach, each
//! probing at most its distinct key lengths (≤ [`MAX_FIXED`]) with hashing
//! shared between them, and the gram table probes at most L windows of
//! each of its ≤ [`MAX_GRAM`] lengths. Nothing depends on the number of
//! patterns that share no key with the channel: the step-count tests
//! (`core/tests/index.rs`) publish to the same channel at 1,000 and at
//! 100,000 patterns of every shape family and count the same candidates.
//!
//! **Worst case.** Candidates are the patterns filed under a key the
//! channel carries. Selection keeps every bucket small as long as patterns
//! differ in some literal of up to [`MAX_GRAM`] bytes (floating) or in some
//! fixed run; patterns that share *all* their literal runs (`x?`, `x??`,
//! `x???`, … share `x` at offset 0) must share a bucket, and a channel
//! carrying that key tests all of them. The always-check list is tested on
//! every publish. Key lengths are bounded by [`MAX_FIXED`] and [`MAX_GRAM`],
//! so a channel of length L probes at most O(L × (L + [`MAX_GRAM`])) times
//! even when patterns use every offset and length.
//!
//! # Memory and order
//!
//! Entries live in a slab and are named by `u32` ids: the source-bytes
//! table and the buckets hold ids only, and the entries of one bucket form
//! a chain through the entries themselves, so a bucket costs 16 bytes
//! however many patterns share it (the crate-private `slab` module says why
//! ids).
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

use crate::glob::{LiteralRun, Pattern, Place, load_le};
use crate::registry::mostly_empty;
use crate::slab::{CapacityError, NO_ID, Slab, unlink};

/// The longest fixed key: a longer run is keyed by its first (from the
/// start) or last (from the end) this many bytes.
pub const MAX_FIXED: usize = 255;

/// The longest floating key (gram).
pub const MAX_GRAM: usize = 8;

/// At most this many candidate keys are weighed when a pattern is
/// inserted (fixed runs first, then grams from left to right, at most 64
/// grams per run), so that inserting a megabyte pattern stays O(its
/// length).
const MAX_CHOICES: usize = 1024;

/// Patterns stored by their source bytes, each with a value, found by the
/// channels they match.
///
/// ```
/// use tidings_core::index::PatternIndex;
///
/// let mut index = PatternIndex::new();
/// index.insert(b"news.*", "all news");
/// index.insert(b"*.sports", "all sports");
/// index.insert(b"*:orders:*", "all orders");
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
    /// One table per (side, offset) that files at least one pattern: those
    /// from the start, then those from the end (index: `from_end as
    /// usize`), each sorted by offset.
    tables: [Vec<Table>; 2],
    /// The floating keys.
    grams: Grams,
    /// Ids of patterns without a literal byte; each entry knows its position.
    always: Vec<u32>,
    /// Next insertion sequence number (the delivery order).
    next_seq: u64,
    hasher: DefaultHashBuilder,
    /// Seed of the hashes of literal keys.
    seed: u64,
}

struct Entry<V> {
    pattern: Pattern,
    value: V,
    /// Insertion sequence number: matches are reported in this order.
    seq: u64,
    /// For an entry filed under a key: the next entry filed under a key
    /// with the same tag ([`NO_ID`] ends the chain). For an always-checked
    /// entry: its position in the always-check list. Unused otherwise.
    link: u32,
    /// Where the entry is filed.
    key: Key,
}

/// Where an entry is filed, chosen when it was inserted.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Key {
    kind: KeyKind,
    /// Key length in bytes (0 for `Never` and `Always`).
    len: u8,
    /// The key's first byte in [`Pattern::atoms`].
    at: u32,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum KeyKind {
    /// Nowhere: the pattern never matches.
    Never,
    /// On the always-check list.
    Always,
    /// A fixed run from the start; its offset is `at`.
    Start,
    /// A fixed run from the end; its offset is `atoms().len() - at - len`.
    End,
    /// A gram of a floating run.
    Gram,
}

impl Key {
    const NEVER: Key = Key {
        kind: KeyKind::Never,
        len: 0,
        at: 0,
    };
    const ALWAYS: Key = Key {
        kind: KeyKind::Always,
        len: 0,
        at: 0,
    };

    /// The key's bytes in `pattern`.
    fn bytes(self, pattern: &Pattern) -> &[u8] {
        let at = self.at as usize;
        pattern
            .atoms()
            .get(at..at + usize::from(self.len))
            .unwrap_or(&[])
    }

    /// For a fixed key: (from the end, offset).
    fn place(self, pattern: &Pattern) -> (bool, usize) {
        let (at, len) = (self.at as usize, usize::from(self.len));
        match self.kind {
            KeyKind::End => (true, pattern.atoms().len().saturating_sub(at + len)),
            _ => (false, at),
        }
    }
}

/// The key that a fixed run offers: at most [`MAX_FIXED`] bytes of it,
/// nearest the start for a run from the start and nearest the end for a
/// run from the end (so that its offset stays the run's).
fn fixed_key(run: &LiteralRun<'_>) -> Option<Key> {
    let len = run.bytes.len().min(MAX_FIXED);
    let (kind, at) = match run.place {
        Place::Start(_) => (KeyKind::Start, run.at),
        Place::End(_) => (KeyKind::End, run.at + run.bytes.len() - len),
        Place::Floating => return None,
    };
    Some(Key {
        kind,
        len: len as u8,
        at: u32::try_from(at).ok()?,
    })
}

/// The grams a floating run offers: every window of `min(len, MAX_GRAM)`
/// bytes, or at most 64 of them evenly spaced in a long run.
fn gram_keys(run: LiteralRun<'_>) -> impl Iterator<Item = Key> {
    let len = run.bytes.len().min(MAX_GRAM);
    let windows = match run.place {
        Place::Floating => run.bytes.len() + 1 - len,
        _ => 0,
    };
    let step = windows.div_ceil(64).max(1);
    (0..windows).step_by(step).filter_map(move |k| {
        Some(Key {
            kind: KeyKind::Gram,
            len: len as u8,
            at: u32::try_from(run.at + k).ok()?,
        })
    })
}

/// Whether `key` is one that `pattern` offers (see [`fixed_key`] and
/// [`gram_keys`]; a gram may start anywhere in its run).
fn offers(pattern: &Pattern, key: Key) -> bool {
    let runs = || pattern.literal_runs();
    match key.kind {
        KeyKind::Never => pattern.never_matches(),
        // Runs beyond 4 GiB into a pattern offer no key.
        KeyKind::Always => {
            !pattern.never_matches()
                && runs().all(|run| fixed_key(&run).is_none() && gram_keys(run).next().is_none())
        }
        KeyKind::Start | KeyKind::End => {
            !pattern.never_matches() && runs().any(|run| fixed_key(&run) == Some(key))
        }
        KeyKind::Gram => {
            let (at, len) = (key.at as usize, usize::from(key.len));
            !pattern.never_matches()
                && runs().any(|run| {
                    run.place == Place::Floating
                        && len == run.bytes.len().min(MAX_GRAM)
                        && run.at <= at
                        && at + len <= run.at + run.bytes.len()
                })
        }
    }
}

/// The entries filed under the keys with one tag (a 64-bit hash): one key,
/// but for a 2^-64 chance per pair of keys of a table. A channel that
/// carries any of them makes every entry of the chain a candidate, and the
/// matcher confirms each, so sharing would cost only a test.
#[derive(Clone, Copy)]
struct Bucket {
    /// The key's hash; the table hashes by this alone.
    tag: u64,
    /// The first entry of the chain.
    head: u32,
    /// Entries in the chain: the bucket's size, which key selection weighs.
    count: u32,
}

/// A 64 Ki-bit Bloom filter over the tags of a table's buckets (one hash):
/// a probe whose bit is clear skips the table, which keeps most probes in
/// cache. Bits are set on insert and only cleared by a rebuild, so a set
/// bit may be stale (costing a probe), but a clear bit is always right.
struct Filter(Box<[u64]>);

/// Words in a filter: 2^16 bits, 8 KiB.
const FILTER_WORDS: usize = 1024;

impl Filter {
    fn new() -> Filter {
        Filter(alloc::vec![0; FILTER_WORDS].into_boxed_slice())
    }

    fn bit(tag: u64) -> (usize, u64) {
        // Bits that the table's bucket index and control byte do not use.
        let index = ((tag >> 32) & 0xffff) as usize;
        (index >> 6, 1 << (index & 63))
    }

    #[inline]
    fn may_hold(&self, tag: u64) -> bool {
        let (word, bit) = Filter::bit(tag);
        self.0.get(word).is_some_and(|w| w & bit != 0)
    }

    fn mark(&mut self, tag: u64) {
        let (word, bit) = Filter::bit(tag);
        if let Some(w) = self.0.get_mut(word) {
            *w |= bit;
        }
    }

    fn clear(&mut self) {
        self.0.iter_mut().for_each(|w| *w = 0);
    }
}

/// The hash a table's `HashTable` uses for a tag: the tag itself (its
/// bucket index from the low bits, its control byte from the high ones).
#[inline]
fn table_hash(tag: u64) -> u64 {
    tag
}

/// Adds entry `id` to the chain of `tag` in `buckets`; returns the entry
/// it now links to, and whether the bucket is new.
fn chain_in(buckets: &mut HashTable<Bucket>, tag: u64, id: u32) -> (u32, bool) {
    match buckets.find_mut(table_hash(tag), |b| b.tag == tag) {
        Some(bucket) => {
            bucket.count += 1;
            (core::mem::replace(&mut bucket.head, id), false)
        }
        None => {
            buckets.insert_unique(
                table_hash(tag),
                Bucket {
                    tag,
                    head: id,
                    count: 1,
                },
                |b| table_hash(b.tag),
            );
            (NO_ID, true)
        }
    }
}

/// Takes entry `id` (which links to `link`) out of the chain of `tag`;
/// returns whether that emptied the bucket, which is then removed.
fn unchain<V>(
    buckets: &mut HashTable<Bucket>,
    entries: &mut Slab<Entry<V>>,
    tag: u64,
    id: u32,
    link: u32,
) -> bool {
    let Ok(mut bucket) = buckets.find_entry(table_hash(tag), |b| b.tag == tag) else {
        return false;
    };
    bucket.get_mut().count = bucket.get().count.saturating_sub(1);
    if bucket.get().head == id {
        if link != NO_ID {
            bucket.get_mut().head = link;
            return false;
        }
        bucket.remove();
        if mostly_empty(buckets.len(), buckets.capacity()) {
            buckets.shrink_to(buckets.len() * 2, |b| table_hash(b.tag));
        }
        return true;
    }
    // Unlink from the middle of the chain.
    let mut at = bucket.get().head;
    while let Some(e) = entries.get(at) {
        if e.link == id {
            if let Some(e) = entries.get_mut(at) {
                e.link = link;
            }
            break;
        }
        at = e.link;
    }
    false
}

/// The size of the bucket of `tag`, 0 if there is none.
fn bucket_count(buckets: &HashTable<Bucket>, tag: u64) -> u32 {
    buckets
        .find(table_hash(tag), |b| b.tag == tag)
        .map_or(0, |b| b.count)
}

/// The fixed keys at one (side, offset).
struct Table {
    from_end: bool,
    offset: usize,
    /// Distinct key lengths held, ascending.
    lengths: Vec<Length>,
    /// One bucket per distinct tag.
    buckets: HashTable<Bucket>,
    filter: Filter,
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

impl Table {
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
            if !self.filter.may_hold(tag) {
                continue;
            }
            if let Some(bucket) = self.buckets.find(table_hash(tag), |b| b.tag == tag) {
                visit(bucket.head);
            }
        }
    }
}

/// The floating keys: grams of 1 to [`MAX_GRAM`] bytes, each with its
/// length.
struct Grams {
    /// Entries filed under grams of each length (index: length − 1).
    entries: [usize; MAX_GRAM],
    /// Bit `len − 1` is set when `entries[len − 1]` is not 0.
    lengths: u8,
    /// One bit per two-byte value (first byte in the low bits): set for the
    /// first two bytes of each gram of two or more bytes, and possibly of
    /// some removed since the last rebuild. Empty until such a gram exists.
    starts: Box<[u64]>,
    /// The bytes of the one-byte grams, and possibly of removed ones.
    singles: ByteSet,
    /// One bucket per distinct tag.
    buckets: HashTable<Bucket>,
    /// Empty until a gram exists.
    filter: Option<Filter>,
    /// Buckets removed since the filter was last rebuilt.
    stale: usize,
}

/// Bits in [`Grams::starts`]: one per two-byte value.
const STARTS_WORDS: usize = (1 << 16) / 64;

/// The tag of the gram `key` (its bytes as a little-endian number) of
/// `len` bytes.
#[inline]
fn gram_tag(seed: u64, key: u64, len: usize) -> u64 {
    fold_mul(fold_mul(seed ^ key, K_WORD) ^ len as u64, K_TAIL)
}

/// The low `len` bytes of a word.
#[inline]
fn low_bytes(word: u64, len: usize) -> u64 {
    if len >= 8 {
        word
    } else {
        word & ((1 << (8 * len)) - 1)
    }
}

impl Grams {
    fn new() -> Grams {
        Grams {
            entries: [0; MAX_GRAM],
            lengths: 0,
            starts: Box::new([]),
            singles: ByteSet::default(),
            buckets: HashTable::new(),
            filter: None,
            stale: 0,
        }
    }

    /// Records the first bytes of a gram in the prefilters.
    fn admit(&mut self, gram: &[u8]) {
        match gram {
            [b] => self.singles.insert(*b),
            [b0, b1, ..] => {
                if self.starts.is_empty() {
                    self.starts = alloc::vec![0; STARTS_WORDS].into_boxed_slice();
                }
                let at = usize::from(*b0) | usize::from(*b1) << 8;
                if let Some(w) = self.starts.get_mut(at / 64) {
                    *w |= 1 << (at % 64);
                }
            }
            [] => {}
        }
    }

    #[inline]
    fn starts_with_gram(&self, b0: u8, b1: u8) -> bool {
        let at = usize::from(b0) | usize::from(b1) << 8;
        self.starts
            .get(at / 64)
            .is_some_and(|w| w >> (at % 64) & 1 != 0)
    }

    /// Adds the head of the bucket of gram `key` (of `len` bytes) to `hits`,
    /// once.
    #[inline]
    fn find(&self, seed: u64, key: u64, len: usize, hits: &mut SmallVec<[u32; 16]>) {
        let tag = gram_tag(seed, key, len);
        if !self.filter.as_ref().is_some_and(|f| f.may_hold(tag)) {
            return;
        }
        if let Some(bucket) = self.buckets.find(table_hash(tag), |b| b.tag == tag) {
            // A gram the channel carries twice is visited once. Past the
            // inline capacity, duplicates are removed by sorting at the end.
            if hits.spilled() || !hits.contains(&bucket.head) {
                hits.push(bucket.head);
            }
        }
    }

    /// The heads of the buckets of every gram `channel` carries, each once.
    fn probe(&self, channel: &[u8], seed: u64, hits: &mut SmallVec<[u32; 16]>) {
        let single = self.lengths & 1 != 0;
        let multi = self.lengths & !1;
        if self.lengths == 0 {
            return;
        }
        for (i, &b0) in channel.iter().enumerate() {
            if single && self.singles.contains(b0) {
                self.find(seed, u64::from(b0), 1, hits);
            }
            if multi == 0 {
                continue;
            }
            let rest = channel.get(i..).unwrap_or(&[]);
            let Some(&b1) = rest.get(1) else {
                break;
            };
            if !self.starts_with_gram(b0, b1) {
                continue;
            }
            let word = load_le(rest);
            // The lengths that fit in what is left of the channel.
            let mut lens = multi & (((1u16 << rest.len().min(MAX_GRAM)) - 1) as u8);
            while lens != 0 {
                let len = lens.trailing_zeros() as usize + 1;
                lens &= lens - 1;
                self.find(seed, low_bytes(word, len), len, hits);
            }
        }
        if hits.spilled() {
            hits.sort_unstable();
            hits.dedup();
        }
    }
}

/// The hash of a fixed key, computed a word (8 bytes) at a time in walk
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

    /// The tag (hash) of the first `len` bytes of `region` in walk order (its last
    /// `len` bytes when walking from the end); `len` never decreases between
    /// calls on one walk, and `len <= region.len()`.
    #[inline]
    fn tag(&mut self, region: &[u8], from_end: bool, len: usize) -> u64 {
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
        fold_mul(self.h ^ tail, K_TAIL)
    }
}

/// The tag of a whole fixed key.
fn key_tag(seed: u64, key: &[u8], from_end: bool) -> u64 {
    Walk::new(seed).tag(key, from_end, key.len())
}

/// The far byte of a fixed key: the last one walked.
fn far_byte(key: &[u8], from_end: bool) -> Option<&u8> {
    if from_end { key.first() } else { key.last() }
}

/// The tag of `key` of `pattern`, in its table.
fn tag_of(seed: u64, pattern: &Pattern, key: Key) -> u64 {
    let bytes = key.bytes(pattern);
    match key.kind {
        KeyKind::Gram => gram_tag(seed, load_le(bytes), bytes.len()),
        _ => key_tag(seed, bytes, key.kind == KeyKind::End),
    }
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
            tables: [Vec::new(), Vec::new()],
            grams: Grams::new(),
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

    /// Number of patterns tested on every publish because they have no
    /// literal byte (`*`, `?*`, `[a-z]*`, `*?*`, …).
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
        let key = self.choose_key(&pattern);
        let entry = Entry {
            pattern,
            value,
            seq: self.next_seq,
            link: NO_ID,
            key,
        };
        let id = self.entries.insert(entry)?;
        self.next_seq += 1;
        self.file(id);
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.by_source
            .insert_unique(hash, id, |&other| rehash(entries, hasher, other));
        Ok(id)
    }

    /// The table at (side, offset): its position in its side's list, or
    /// where it would go.
    fn table_at(&self, from_end: bool, offset: usize) -> Result<usize, usize> {
        self.tables[usize::from(from_end)].binary_search_by_key(&offset, |t| t.offset)
    }

    /// The number of entries filed under `key` of `pattern` now.
    fn bucket_size(&self, pattern: &Pattern, key: Key) -> u32 {
        let tag = tag_of(self.seed, pattern, key);
        match key.kind {
            KeyKind::Gram => bucket_count(&self.grams.buckets, tag),
            KeyKind::Start | KeyKind::End => {
                let (from_end, offset) = key.place(pattern);
                match self.table_at(from_end, offset) {
                    Ok(t) => self.tables[usize::from(from_end)]
                        .get(t)
                        .map_or(0, |t| bucket_count(&t.buckets, tag)),
                    Err(_) => 0,
                }
            }
            KeyKind::Never | KeyKind::Always => 0,
        }
    }

    /// The key a new `pattern` is filed under: of the keys it offers, the
    /// one whose bucket is the smallest now; ties go to a fixed key, then
    /// to the longer one, then to the first.
    fn choose_key(&self, pattern: &Pattern) -> Key {
        if pattern.never_matches() {
            return Key::NEVER;
        }
        let fixed = pattern
            .literal_runs()
            .filter_map(|run| fixed_key(&run).map(|key| (key, 0u8)));
        let grams = pattern
            .literal_runs()
            .flat_map(gram_keys)
            .map(|key| (key, 1u8));
        // (bucket size, 0 for fixed or 1 for a gram, longer first), lowest
        // first.
        type Weight = (u32, u8, core::cmp::Reverse<u8>);
        let mut best: Option<(Weight, Key)> = None;
        for (key, rank) in fixed.chain(grams).take(MAX_CHOICES) {
            let weight = (
                self.bucket_size(pattern, key),
                rank,
                core::cmp::Reverse(key.len),
            );
            if best.is_none_or(|(w, _)| weight < w) {
                best = Some((weight, key));
            }
        }
        best.map_or(Key::ALWAYS, |(_, key)| key)
    }

    /// Files the stored entry `id` under its key.
    fn file(&mut self, id: u32) {
        let Some(e) = self.entries.get(id) else {
            return;
        };
        let key = e.key;
        let link = match key.kind {
            KeyKind::Never => return,
            KeyKind::Always => {
                let pos = self.always.len() as u32;
                self.always.push(id);
                pos
            }
            KeyKind::Gram => {
                let bytes = key.bytes(&e.pattern);
                let (len, tag) = (
                    bytes.len(),
                    gram_tag(self.seed, load_le(bytes), bytes.len()),
                );
                let grams = &mut self.grams;
                grams.admit(bytes);
                grams.filter.get_or_insert_with(Filter::new).mark(tag);
                if let Some(n) = grams.entries.get_mut(len - 1) {
                    *n += 1;
                    grams.lengths |= 1 << (len - 1);
                }
                chain_in(&mut grams.buckets, tag, id).0
            }
            KeyKind::Start | KeyKind::End => {
                let bytes = key.bytes(&e.pattern);
                let (from_end, offset) = key.place(&e.pattern);
                let tag = key_tag(self.seed, bytes, from_end);
                let far = far_byte(bytes, from_end).copied();
                let len = bytes.len();
                let side = &mut self.tables[usize::from(from_end)];
                let t = match side.binary_search_by_key(&offset, |t| t.offset) {
                    Ok(t) => t,
                    Err(t) => {
                        side.insert(
                            t,
                            Table {
                                from_end,
                                offset,
                                lengths: Vec::new(),
                                buckets: HashTable::new(),
                                filter: Filter::new(),
                                stale: 0,
                            },
                        );
                        t
                    }
                };
                let Some(table) = side.get_mut(t) else {
                    return;
                };
                table.filter.mark(tag);
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
                    if let Some(far) = far {
                        length.far.insert(far);
                    }
                }
                chain_in(&mut table.buckets, tag, id).0
            }
        };
        if let Some(e) = self.entries.get_mut(id) {
            e.link = link;
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
            // Nothing is held: give the lists and the gram table back too.
            self.always = Vec::new();
            self.grams = Grams::new();
        }
        Some((entry.pattern, entry.value))
    }

    /// Takes the stored entry `id` out of wherever it is filed.
    fn unfile(&mut self, id: u32) {
        let Some(e) = self.entries.get(id) else {
            return;
        };
        let (key, link) = (e.key, e.link);
        let tag = tag_of(self.seed, &e.pattern, key);
        match key.kind {
            KeyKind::Never => {}
            KeyKind::Always => {
                let pos = link as usize;
                if self.always.get(pos) == Some(&id) {
                    self.always.swap_remove(pos);
                    if let Some(&moved) = self.always.get(pos) {
                        if let Some(m) = self.entries.get_mut(moved) {
                            m.link = pos as u32;
                        }
                    }
                }
            }
            KeyKind::Gram => {
                let len = usize::from(key.len);
                let grams = &mut self.grams;
                if let Some(n) = grams.entries.get_mut(len.wrapping_sub(1)) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        grams.lengths &= !(1 << (len - 1));
                    }
                }
                if unchain(&mut grams.buckets, &mut self.entries, tag, id, link) {
                    grams.stale += 1;
                    if grams.stale > grams.buckets.len() + 64 {
                        self.rebuild_gram_filters();
                    }
                }
            }
            KeyKind::Start | KeyKind::End => {
                let (from_end, offset) = key.place(&e.pattern);
                let len = usize::from(key.len);
                let Ok(t) = self.table_at(from_end, offset) else {
                    return;
                };
                let side = &mut self.tables[usize::from(from_end)];
                let Some(table) = side.get_mut(t) else {
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
                if unchain(&mut table.buckets, &mut self.entries, tag, id, link) {
                    table.stale += 1;
                    if table.buckets.is_empty() {
                        side.remove(t);
                    } else if table.stale > table.buckets.len() + 64 {
                        self.rebuild_table_filters(from_end, t);
                    }
                }
            }
        }
    }

    /// Rebuilds table `t`'s Bloom filter and far-byte sets from its live
    /// keys, once stale bits could outnumber live ones.
    fn rebuild_table_filters(&mut self, from_end: bool, t: usize) {
        let (entries, seed) = (&self.entries, self.seed);
        let Some(table) = self.tables[usize::from(from_end)].get_mut(t) else {
            return;
        };
        table.filter.clear();
        table
            .lengths
            .iter_mut()
            .for_each(|l| l.far = ByteSet::default());
        let from_end = table.from_end;
        let mut marks: Vec<(u64, usize, u8)> = Vec::new();
        for b in table.buckets.iter() {
            let mut at = b.head;
            while let Some(e) = entries.get(at) {
                let key = e.key.bytes(&e.pattern);
                if let Some(&far) = far_byte(key, from_end) {
                    marks.push((key_tag(seed, key, from_end), key.len(), far));
                }
                at = e.link;
            }
        }
        for (tag, len, far) in marks {
            table.filter.mark(tag);
            if let Ok(at) = table.lengths.binary_search_by_key(&len, |l| l.len) {
                if let Some(length) = table.lengths.get_mut(at) {
                    length.far.insert(far);
                }
            }
        }
        table.stale = 0;
    }

    /// Rebuilds the gram table's Bloom filter and prefilters from its live
    /// keys, once stale bits could outnumber live ones.
    fn rebuild_gram_filters(&mut self) {
        let (entries, grams) = (&self.entries, &mut self.grams);
        grams.singles = ByteSet::default();
        grams.starts.iter_mut().for_each(|w| *w = 0);
        if let Some(filter) = &mut grams.filter {
            filter.clear();
        }
        let mut keys: Vec<(u64, &[u8])> = Vec::new();
        for b in grams.buckets.iter() {
            let mut at = b.head;
            while let Some(e) = entries.get(at) {
                keys.push((b.tag, e.key.bytes(&e.pattern)));
                at = e.link;
            }
        }
        for (tag, key) in keys {
            grams.admit(key);
            grams.filter.get_or_insert_with(Filter::new).mark(tag);
        }
        grams.stale = 0;
    }

    /// Calls `visit` with every candidate for `channel`: each entry filed
    /// under a key the channel carries (once), then each always-checked one.
    #[inline]
    fn for_each_candidate<'s>(&'s self, channel: &[u8], mut visit: impl FnMut(u32, &'s Entry<V>)) {
        let mut chain = |head: u32| {
            let mut id = head;
            while let Some(e) = self.entries.get(id) {
                visit(id, e);
                id = e.link;
            }
        };
        // Each side's tables are sorted by offset: those within the
        // channel's length come first.
        for side in &self.tables {
            for table in side {
                if table.offset > channel.len() {
                    break;
                }
                table.probe(channel, self.seed, &mut chain);
            }
        }
        if self.grams.lengths != 0 {
            let mut hits: SmallVec<[u32; 16]> = SmallVec::new();
            self.grams.probe(channel, self.seed, &mut hits);
            hits.iter().for_each(|&head| chain(head));
        }
        for &id in &self.always {
            if let Some(e) = self.entries.get(id) {
                visit(id, e);
            }
        }
    }

    /// The number of stored patterns that a publish to `channel` tests with
    /// the matcher (the candidates), each counted once. For step-counting
    /// tests of the keying rule; not part of the stable API.
    #[doc(hidden)]
    pub fn candidates(&self, channel: &[u8]) -> usize {
        let mut n = 0;
        self.for_each_candidate(channel, |_, _| n += 1);
        n
    }

    /// Calls `f` with every stored pattern that matches `channel`, and its
    /// value, in insertion order.
    ///
    /// Allocates nothing unless more than 16 distinct patterns match, or
    /// the channel carries more than 16 distinct floating keys (grams) that
    /// patterns are filed under; then one buffer, once.
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
        self.for_each_candidate(channel, |id: u32, e: &'s Entry<V>| {
            if e.pattern.matches(channel) {
                match first {
                    None => first = Some((id, e)),
                    Some(_) => more.push((id, e)),
                }
            }
        });
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
    /// source bytes, filed under a key its pattern offers (a literal run, or
    /// a gram of one, at its place; the always-check list exactly for the
    /// patterns without a literal byte), and found in that key's bucket;
    /// tables are sorted; no table, bucket or length record is empty; chains
    /// end; counts, filters and prefilters agree with the live keys. O(n);
    /// meant for tests and fuzz targets, which call it after every
    /// operation.
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
        let mut filed = 0;
        let mut always = 0;
        let mut gram_lengths = [0usize; MAX_GRAM];
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
            assert!(
                offers(&e.pattern, e.key),
                "entry {id} is filed under {:?}, which its pattern does not offer",
                e.key
            );
            let tag = tag_of(self.seed, &e.pattern, e.key);
            let buckets = match e.key.kind {
                KeyKind::Never => continue,
                KeyKind::Always => {
                    always += 1;
                    assert_eq!(
                        self.always.get(e.link as usize),
                        Some(&id),
                        "always-list position"
                    );
                    continue;
                }
                KeyKind::Gram => {
                    let key = e.key.bytes(&e.pattern);
                    gram_lengths[key.len() - 1] += 1;
                    let grams = &self.grams;
                    assert!(
                        grams.filter.as_ref().is_some_and(|f| f.may_hold(tag)),
                        "the gram filter admits every live gram"
                    );
                    match *key {
                        [b] => assert!(grams.singles.contains(b), "one-byte gram admitted"),
                        [b0, b1, ..] => {
                            assert!(grams.starts_with_gram(b0, b1), "gram start admitted")
                        }
                        [] => panic!("empty gram"),
                    }
                    &grams.buckets
                }
                KeyKind::Start | KeyKind::End => {
                    let key = e.key.bytes(&e.pattern);
                    let (from_end, offset) = e.key.place(&e.pattern);
                    let table = self
                        .table_at(from_end, offset)
                        .ok()
                        .and_then(|t| self.tables[usize::from(from_end)].get(t))
                        .unwrap_or_else(|| panic!("no table for entry {id}"));
                    assert!(
                        table.filter.may_hold(tag),
                        "the filter admits every live key"
                    );
                    let length = table
                        .lengths
                        .iter()
                        .find(|l| l.len == key.len())
                        .unwrap_or_else(|| panic!("no length record for entry {id}"));
                    assert!(
                        far_byte(key, from_end).is_some_and(|&b| length.far.contains(b)),
                        "the far-byte set admits every live key"
                    );
                    &table.buckets
                }
            };
            filed += 1;
            let bucket = buckets
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
        }
        assert_eq!(self.always.len(), always, "always list holds its entries");
        assert_eq!(
            self.grams.entries, gram_lengths,
            "gram length counts count the entries"
        );
        for (i, &n) in self.grams.entries.iter().enumerate() {
            assert_eq!(
                self.grams.lengths >> i & 1 != 0,
                n != 0,
                "gram length bits mark the lengths held"
            );
        }
        let mut in_chains = self.chained(&self.grams.buckets, KeyKind::Gram);
        for (side, tables) in self.tables.iter().enumerate() {
            assert!(
                tables.windows(2).all(|w| w[0].offset < w[1].offset),
                "tables sorted by offset, one per place"
            );
            assert!(
                tables.iter().all(|t| usize::from(t.from_end) == side),
                "tables on their side"
            );
        }
        for table in self.tables.iter().flatten() {
            assert!(!table.buckets.is_empty(), "no empty table");
            let kind = if table.from_end {
                KeyKind::End
            } else {
                KeyKind::Start
            };
            in_chains += self.chained(&table.buckets, kind);
            let mut lengths: Vec<(usize, usize)> = Vec::new();
            for b in table.buckets.iter() {
                let mut at = b.head;
                while let Some(e) = self.entries.get(at) {
                    assert_eq!(
                        e.key.place(&e.pattern),
                        (table.from_end, table.offset),
                        "entry in its place's table"
                    );
                    let len = usize::from(e.key.len);
                    match lengths.iter_mut().find(|(l, _)| *l == len) {
                        Some((_, n)) => *n += 1,
                        None => lengths.push((len, 1)),
                    }
                    at = e.link;
                }
            }
            lengths.sort_unstable();
            let records: Vec<(usize, usize)> =
                table.lengths.iter().map(|l| (l.len, l.entries)).collect();
            assert_eq!(lengths, records, "length records count the entries");
        }
        assert_eq!(in_chains, filed, "each filed entry is in one chain");
        if self.entries.len() == 0 {
            assert!(
                self.tables.iter().all(Vec::is_empty)
                    && self.always.is_empty()
                    && self.grams.buckets.is_empty(),
                "empty index holds nothing"
            );
        }
    }

    /// Checks the chains of `buckets`, whose entries are keyed by `kind`:
    /// each entry's tag is its bucket's, and each bucket counts its chain.
    /// Returns the number of entries in them.
    fn chained(&self, buckets: &HashTable<Bucket>, kind: KeyKind) -> usize {
        let mut n = 0;
        for b in buckets.iter() {
            assert!(self.entries.get(b.head).is_some(), "no empty bucket");
            let mut at = b.head;
            let mut count = 0;
            while let Some(e) = self.entries.get(at) {
                assert_eq!(e.key.kind, kind, "entry in a table of its kind");
                assert_eq!(
                    tag_of(self.seed, &e.pattern, e.key),
                    b.tag,
                    "entry in its tag's chain"
                );
                count += 1;
                at = e.link;
            }
            assert_eq!(count, b.count, "a bucket counts its chain");
            n += count as usize;
        }
        n
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
