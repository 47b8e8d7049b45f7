//! Redis-compatible glob patterns, compiled once and matched without recursion.
//!
//! This is the matcher behind `PSUBSCRIBE` and `PUBSUB CHANNELS pattern`. It
//! reproduces Redis 7's `stringmatchlen` (`src/util.c`) byte for byte, with the
//! three deliberate deviations listed below.
//!
//! # Syntax
//!
//! Patterns and texts are arbitrary byte strings (empty, NUL, invalid UTF-8):
//! every byte string is a valid pattern and [`Pattern::new`] never fails.
//! Matching is case-sensitive.
//!
//! | Syntax | Meaning |
//! |---|---|
//! | `*` | any sequence of bytes, including the empty one; runs of `*` act as one |
//! | `?` | exactly one byte |
//! | `\c` | the literal byte `c`; a lone `\` at the very end is a literal backslash |
//! | `[...]` | a class matching exactly one byte |
//! | `[^...]` | a negated class; only `^` negates, `!` is an ordinary byte |
//!
//! Inside a class:
//! - `]` always closes the class, even right after `[` or `[^`: `[]` is an
//!   empty class that never matches, and `[^]` matches any one byte.
//! - `\c` is the literal byte `c`, the only way to put `]` in a class (`[\]]`).
//!   An escaped byte never starts a range.
//! - `x-y` is a range whenever the `-` is followed by at least one more byte,
//!   taken literally even if it is `]` or `\`; reversed ranges are swapped.
//!   Bounds compare as unsigned bytes.
//! - A `-` that cannot form a range is literal.
//! - An unterminated class (`[abc`) runs to the end of the pattern and still
//!   matches exactly one byte.
//!
//! ```
//! use tidings_core::glob::{self, Pattern};
//!
//! let p = Pattern::new(b"news.*.sports");
//! assert!(p.matches(b"news.europe.sports"));
//! assert!(!p.matches(b"news.europe.weather"));
//!
//! // The quirks are Redis's: `]` right after `[` closes an empty class,
//! // so this pattern can never match anything.
//! assert!(!glob::matches(b"[]a]", b"a]"));
//! // An unterminated class still matches one byte.
//! assert!(glob::matches(b"a[b", b"ab"));
//! ```
//!
//! # Deviations from Redis
//!
//! 1. `*` matches the empty string, so a pattern made only of stars matches
//!    `""` (Redis returns no match there: its bug #15643). Every other pattern
//!    matches `""` exactly when Redis's does (only the empty pattern).
//! 2. Range bounds compare as unsigned bytes; Redis compares C `char`s, whose
//!    signedness depends on the platform.
//! 3. There is no nesting cap: Redis ≥ 7.2.6 gives up on patterns needing more
//!    than 1000 nested stars; this matcher has no recursion and handles them.
//!
//! # Algorithm and cost
//!
//! The commonest shapes need no compiling: a pattern without `?`, `[` or
//! `\\` that is a plain literal (`news`), a literal then stars (`news.*`),
//! stars then a literal (`*.sports`) or only stars is kept as its source and
//! a length, and matched by one comparison of the text against that literal
//! (equal, starts with, ends with). Everything else is compiled:
//!
//! [`Pattern::new`] parses the pattern once into *atoms*, one per byte of
//! matching text: a literal byte (escapes resolved), a `?`, or a class.
//! Single-byte classes become literals and `[^]` becomes `?`, so `[f]oo*` has
//! the literal prefix `foo`. Because every atom matches exactly one byte, the
//! pattern splits at its stars into fixed-length segments `S0 * S1 * … * Sk`:
//!
//! - `S0` is compared at the start of the text and `Sk` at its end;
//! - each middle segment is placed at its leftmost position after the previous
//!   one. Leftmost placement is optimal because segments have fixed lengths,
//!   so no backtracking is ever needed.
//!
//! A middle segment is located by its longest literal run, searched with the
//! Two-Way algorithm of Crochemore and Perrin (linear in the text, constant
//! space: its few numbers are computed from the run at each match), and then
//! verified. The worst case is O(len(pattern) · len(text)) — the bound that
//! Redis needed two CVE fixes to approach (CVE-2022-36021, exponential time;
//! CVE-2024-31228, recursion depth) — and common shapes are linear: `*` +
//! `a`×50 + `b` against `a`×10,000 compares 51 bytes at the end of the text
//! and stops. [`Pattern::matches_counting_steps`] exposes the work done so
//! that tests and fuzzers can assert the bound.
//!
//! # Memory
//!
//! A compiled pattern holds its source, one byte and two bits per atom, and
//! the source offset of each class (4 bytes; a class is tested against its
//! source bytes, in O(its length), rather than kept as a 32-byte set). That
//! is at most about 2.3 bytes per source byte, source included, whatever the
//! shape (`core/tests/memory.rs` checks 1 MiB patterns of each against 3),
//! where a token list with per-segment search tables took up to 57. Nothing
//! is stored per segment: a match walks the atoms between the first and the
//! last star once to find each segment's bounds and longest literal run.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use smallvec::SmallVec;

/// A set of bytes: one bit per possible byte value.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
struct ByteSet([u64; 4]);

impl ByteSet {
    fn insert(&mut self, b: u8) {
        self.0[usize::from(b >> 6)] |= 1 << (b & 63);
    }

    /// Inserts `lo..=hi`, swapping reversed bounds as Redis does.
    fn insert_range(&mut self, a: u8, b: u8) {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        for byte in lo..=hi {
            self.insert(byte);
        }
    }

    fn contains(&self, b: u8) -> bool {
        self.0[usize::from(b >> 6)] & (1 << (b & 63)) != 0
    }

    fn negate(&mut self) {
        for word in &mut self.0 {
            *word = !*word;
        }
    }

    fn len(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }

    /// The lowest member, if any.
    fn first(&self) -> Option<u8> {
        (0..=255u8).find(|&b| self.contains(b))
    }
}

/// The byte of a `?` atom in [`Compiled::atoms`].
const ANY: u8 = 0;
/// The byte of a class atom in [`Compiled::atoms`].
const CLASS: u8 = 1;

/// The compiled form of a pattern that is not one of the simple shapes.
///
/// Every element but `*` matches exactly one byte of text, so the pattern
/// is a string of *atoms*, one per text byte, with stars between some of
/// them: `S0 * S1 * … * Sk`, each segment `Si` a run of atoms. An atom is
/// one byte and two bits, and a class adds 4 bytes, so a compiled pattern
/// takes at most about 1.3 bytes per source byte, whatever its shape.
#[derive(Clone)]
struct Compiled {
    /// One byte per atom: the byte of a literal atom (escapes resolved), or
    /// [`ANY`] for a `?` and [`CLASS`] for a class.
    atoms: Box<[u8]>,
    /// Two bitmaps of `atoms.len().div_ceil(64)` words each, bit `i % 64`
    /// of word `i / 64` for atom `i`: first whether the atom is a literal,
    /// then whether a star comes right before it.
    bits: Box<[u64]>,
    /// The source offset of each class atom's `[`, in atom order. A class
    /// is tested against its source bytes, in O(its length).
    classes: Offsets,
    /// Atoms before the first star (all of them without a star).
    head: usize,
    /// Atoms after the last star (none without a star).
    tail: usize,
    /// Class atoms among the head atoms.
    head_classes: usize,
    /// Class atoms among the tail atoms.
    tail_classes: usize,
    has_star: bool,
    /// Some atom lies between the first star and the last.
    has_middle: bool,
    /// The head atoms are all literal: they match by one comparison.
    head_literal: bool,
    /// The tail atoms are all literal.
    tail_literal: bool,
    /// The pattern holds an empty class, so it matches nothing.
    never: bool,
}

/// A compiled glob pattern.
///
/// Compile once with [`Pattern::new`], then call [`Pattern::matches`] as often
/// as needed: matching never allocates and never re-parses the pattern's
/// structure (only a class's members are read from its source bytes).
///
/// Two patterns are equal when their source bytes are equal.
#[derive(Clone)]
pub struct Pattern {
    /// The bytes the pattern was built from, as given; shared so that
    /// deliveries can carry the pattern name without copying it.
    source: Arc<[u8]>,
    /// How it matches.
    repr: Repr,
}

/// How a pattern matches. The common shapes, whose literal is a slice of
/// the source (no `?`, `[` or `\`, and stars only at one end), are matched
/// by comparing bytes and take no allocation beyond the source; everything
/// else is compiled into atoms ([`Compiled`]).
#[derive(Clone)]
enum Repr {
    /// No metacharacter: matches exactly the source.
    Literal,
    /// `lit*`, `lit**`, …: the literal is `source[..n]`, `n > 0`; with its
    /// first (up to) 8 bytes as a number, so that most candidates are
    /// rejected or confirmed without reading the source.
    Prefix(u32, u64),
    /// `*lit`, `**lit`, …: the literal is `source[n..]`, `n < len`; with its
    /// last (up to) 8 bytes as a number.
    Suffix(u32, u64),
    /// Only stars: matches everything.
    Stars,
    /// Any other pattern.
    Compiled(Box<Compiled>),
}

/// The simple shape of `pattern`, if it has one (see [`Repr`]).
fn simple_shape(pattern: &[u8]) -> Option<Repr> {
    if pattern.len() > u32::MAX as usize
        || pattern.iter().any(|&b| matches!(b, b'?' | b'[' | b'\\'))
    {
        return None;
    }
    let Some(first) = pattern.iter().position(|&b| b == b'*') else {
        return Some(Repr::Literal);
    };
    let last = pattern.iter().rposition(|&b| b == b'*').unwrap_or(first);
    if pattern[first..=last].iter().any(|&b| b != b'*') {
        return None;
    }
    match (first == 0, last + 1 == pattern.len()) {
        (true, true) => Some(Repr::Stars),
        (false, true) => {
            let head = pattern.get(..first.min(8)).map_or(0, load_le);
            Some(Repr::Prefix(first as u32, head))
        }
        (true, false) => {
            let tail = pattern
                .get((last + 1).max(pattern.len().saturating_sub(8))..)
                .map_or(0, load_le);
            Some(Repr::Suffix((last + 1) as u32, tail))
        }
        (false, false) => None,
    }
}

/// Counts elementary steps (of a match, a removal, ...); `()` counts
/// nothing, `u64` adds them up.
pub(crate) trait Steps {
    /// Adds `n` steps.
    fn add(&mut self, n: usize);
}

impl Steps for () {
    #[inline(always)]
    fn add(&mut self, _: usize) {}
}

impl Steps for u64 {
    #[inline]
    fn add(&mut self, n: usize) {
        *self = self.saturating_add(n as u64);
    }
}

/// Source offsets: 4 bytes each, or 8 in a pattern longer than 4 GiB.
#[derive(Clone)]
enum Offsets {
    Narrow(Box<[u32]>),
    Wide(Box<[usize]>),
}

impl Offsets {
    fn new(offsets: Vec<usize>, source_len: usize) -> Offsets {
        if u32::try_from(source_len).is_ok() {
            Offsets::Narrow(offsets.into_iter().map(|o| o as u32).collect())
        } else {
            Offsets::Wide(offsets.into_boxed_slice())
        }
    }

    #[inline]
    fn get(&self, i: usize) -> Option<usize> {
        match self {
            Offsets::Narrow(o) => o.get(i).map(|&o| o as usize),
            Offsets::Wide(o) => o.get(i).copied(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Offsets::Narrow(o) => o.len(),
            Offsets::Wide(o) => o.len(),
        }
    }
}

/// Builds the atoms of a pattern (the parse happens here, once).
#[derive(Default)]
struct Builder {
    atoms: Vec<u8>,
    /// The literal bitmap, then the star bitmap, as in [`Compiled::bits`].
    literal: Vec<u64>,
    star: Vec<u64>,
    classes: Vec<usize>,
    /// A star was read and no atom has followed it yet.
    star_pending: bool,
    /// Atoms before the first star, and before the last one.
    first_star: Option<usize>,
    last_star: usize,
    never: bool,
}

impl Builder {
    fn atom(&mut self, byte: u8, literal: bool) {
        let i = self.atoms.len();
        if i % 64 == 0 {
            self.literal.push(0);
            self.star.push(0);
        }
        self.atoms.push(byte);
        let bit = 1u64 << (i % 64);
        if literal {
            if let Some(w) = self.literal.last_mut() {
                *w |= bit;
            }
        }
        if self.star_pending {
            if let Some(w) = self.star.last_mut() {
                *w |= bit;
            }
            self.star_pending = false;
        }
    }

    fn star(&mut self) {
        let at = self.atoms.len();
        self.first_star.get_or_insert(at);
        self.last_star = at;
        self.star_pending = true;
    }

    /// The class whose `[` is at `start` in the source, with members `set`.
    fn class(&mut self, set: &ByteSet, start: usize) {
        match set.len() {
            1 => {
                if let Some(b) = set.first() {
                    self.atom(b, true);
                }
            }
            256 => self.atom(ANY, false),
            members => {
                self.never |= members == 0;
                self.classes.push(start);
                self.atom(CLASS, false);
            }
        }
    }

    /// Parses `p` following `stringmatchlen`'s rules exactly.
    fn parse(mut self, p: &[u8]) -> Self {
        let mut i = 0;
        while let Some(&c) = p.get(i) {
            match c {
                b'*' => {
                    self.star();
                    i += 1;
                }
                b'?' => {
                    self.atom(ANY, false);
                    i += 1;
                }
                b'[' => {
                    let mut set = ByteSet::default();
                    let (end, negate) = read_class(p, i, |lo, hi| set.insert_range(lo, hi));
                    if negate {
                        set.negate();
                    }
                    self.class(&set, i);
                    i = end;
                }
                b'\\' => {
                    // A trailing backslash is itself a literal.
                    match p.get(i + 1) {
                        Some(&escaped) => {
                            self.atom(escaped, true);
                            i += 2;
                        }
                        None => {
                            self.atom(b'\\', true);
                            i += 1;
                        }
                    }
                }
                c => {
                    self.atom(c, true);
                    i += 1;
                }
            }
        }
        self
    }
}

/// Reads the class whose `[` is at `p[start]` with Redis's rules, calling
/// `member(lo, hi)` for each range of bytes it lists (one byte as
/// `(b, b)`); returns the index just past the class and whether it is
/// negated (`[^`). The end of the pattern closes an unterminated class.
fn read_class(p: &[u8], start: usize, mut member: impl FnMut(u8, u8)) -> (usize, bool) {
    let mut i = start + 1;
    let negate = p.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    // Each arm consumes what it reads.
    while let Some(&c) = p.get(i) {
        match (c, p.get(i + 1), p.get(i + 2)) {
            (b'\\', Some(&escaped), _) => {
                member(escaped, escaped);
                i += 2;
            }
            (b']', _, _) => {
                i += 1;
                break;
            }
            (lo, Some(b'-'), Some(&hi)) => {
                // Reversed ranges are swapped, as Redis does.
                member(lo.min(hi), lo.max(hi));
                i += 3;
            }
            (c, _, _) => {
                member(c, c);
                i += 1;
            }
        }
    }
    (i, negate)
}

/// Whether byte `b` is in the class whose `[` is at `source[start]`.
fn class_contains(source: &[u8], start: usize, b: u8, steps: &mut impl Steps) -> bool {
    let mut hit = false;
    let (end, negate) = read_class(source, start, |lo, hi| {
        hit |= lo <= b && b <= hi;
    });
    steps.add(end.saturating_sub(start));
    hit != negate
}

/// Finds the leftmost occurrences of a needle of two or more bytes with the
/// Crochemore–Perrin Two-Way algorithm ("Two-way string-matching", J. ACM
/// 38(3), 1991; the form of Rust's `core::str::pattern::TwoWaySearcher`):
/// at most about 2·len(haystack) comparisons, and no table, so that it
/// needs no memory beyond these four numbers, computed per search from the
/// needle in O(len(needle)).
struct TwoWay {
    /// The critical position: the needle is split into `u = needle[..crit]`
    /// and `v = needle[crit..]`.
    crit: usize,
    /// The period of the needle (short-period case), or a lower bound on it
    /// used as the shift (long-period case).
    period: usize,
    /// The long-period case: no memory of a matched prefix.
    long_period: bool,
    /// Bit `b % 64` is set for each byte `b` of the needle (of its first
    /// period in the short-period case): a window whose last byte is not in
    /// the set is skipped whole.
    byteset: u64,
}

impl TwoWay {
    fn new(needle: &[u8], steps: &mut impl Steps) -> TwoWay {
        let (crit_less, period_less) = maximal_suffix(needle, false, steps);
        let (crit_greater, period_greater) = maximal_suffix(needle, true, steps);
        let (crit, period) = if crit_less > crit_greater {
            (crit_less, period_less)
        } else {
            (crit_greater, period_greater)
        };
        steps.add(crit);
        let byteset = |bytes: &[u8]| bytes.iter().fold(0u64, |set, &b| set | 1 << (b & 63));
        match (needle.get(..crit), needle.get(period..period + crit)) {
            // `u` is a suffix of `v[..period]`: the period is exact.
            (Some(u), Some(again)) if u == again => TwoWay {
                crit,
                period,
                long_period: false,
                byteset: byteset(needle.get(..period).unwrap_or(needle)),
            },
            _ => TwoWay {
                crit,
                period: crit.max(needle.len() - crit) + 1,
                long_period: true,
                byteset: byteset(needle),
            },
        }
    }

    /// The first occurrence of `needle` (the one this was built for) in
    /// `hay` at or after `from`.
    fn find(
        &self,
        hay: &[u8],
        needle: &[u8],
        from: usize,
        steps: &mut impl Steps,
    ) -> Option<usize> {
        let last = needle.len().checked_sub(1)?;
        let mut position = from;
        // The length of a prefix of the needle known to match at
        // `position` (short-period case only).
        let mut memory = 0;
        'search: loop {
            steps.add(1);
            let &tail = hay.get(position + last)?;
            if self.byteset >> (tail & 63) & 1 == 0 {
                position += needle.len();
                memory = 0;
                continue;
            }
            // The right part, `v`, from left to right.
            let start = if self.long_period {
                self.crit
            } else {
                self.crit.max(memory)
            };
            for i in start..needle.len() {
                steps.add(1);
                if needle.get(i) != hay.get(position + i) {
                    position += i - self.crit + 1;
                    memory = 0;
                    continue 'search;
                }
            }
            // The left part, `u`, from right to left.
            let start = if self.long_period { 0 } else { memory };
            for i in (start..self.crit).rev() {
                steps.add(1);
                if needle.get(i) != hay.get(position + i) {
                    position += self.period;
                    if !self.long_period {
                        memory = needle.len() - self.period;
                    }
                    continue 'search;
                }
            }
            return Some(position);
        }
    }
}

/// The maximal suffix of `needle` in lexicographic order (reversed order
/// when `greater`): its start and its period.
fn maximal_suffix(needle: &[u8], greater: bool, steps: &mut impl Steps) -> (usize, usize) {
    let (mut left, mut right, mut offset, mut period) = (0, 1, 0, 1);
    while let (Some(&a), Some(&b)) = (needle.get(right + offset), needle.get(left + offset)) {
        steps.add(1);
        if (a < b && !greater) || (a > b && greater) {
            // The suffix is smaller: the period is the whole prefix so far.
            right += offset + 1;
            offset = 0;
            period = right - left;
        } else if a == b {
            // Go on through a repetition of the current period.
            if offset + 1 == period {
                right += offset + 1;
                offset = 0;
            } else {
                offset += 1;
            }
        } else {
            // The suffix is larger: start again from here.
            left = right;
            right += 1;
            offset = 0;
            period = 1;
        }
    }
    (left, period)
}

/// The first occurrence of `needle` in `hay` at or after `from`.
struct Search<'n> {
    needle: &'n [u8],
    /// `None` for a one-byte needle, which is found by a byte scan.
    two_way: Option<TwoWay>,
}

impl<'n> Search<'n> {
    fn new(needle: &'n [u8], steps: &mut impl Steps) -> Search<'n> {
        let two_way = (needle.len() > 1).then(|| TwoWay::new(needle, steps));
        Search { needle, two_way }
    }

    fn find(&self, hay: &[u8], from: usize, steps: &mut impl Steps) -> Option<usize> {
        match (&self.two_way, self.needle) {
            (Some(two_way), needle) => two_way.find(hay, needle, from, steps),
            (None, &[b]) => {
                let rest = hay.get(from..)?;
                let at = rest.iter().position(|&x| x == b);
                steps.add(at.map_or(rest.len(), |at| at + 1));
                Some(from + at?)
            }
            (None, _) => None,
        }
    }
}

impl Pattern {
    /// Compiles `pattern`. Every byte string is a valid pattern, as in Redis.
    ///
    /// ```
    /// use tidings_core::glob::Pattern;
    ///
    /// let p = Pattern::new(b"h[ae]llo");
    /// assert!(p.matches(b"hello"));
    /// assert_eq!(p.as_bytes(), b"h[ae]llo");
    /// ```
    pub fn new(pattern: &[u8]) -> Pattern {
        let repr = simple_shape(pattern)
            .unwrap_or_else(|| Repr::Compiled(Box::new(Compiled::new(pattern))));
        Pattern {
            source: pattern.into(),
            repr,
        }
    }

    /// The bytes this pattern was built from.
    pub fn as_bytes(&self) -> &[u8] {
        &self.source
    }

    /// The bytes this pattern was built from, as a shared allocation: cloning
    /// it costs a reference-count increment, not a copy.
    pub fn shared_bytes(&self) -> &Arc<[u8]> {
        &self.source
    }

    /// The literal runs that sit at a fixed distance from the start or from
    /// the end of every matching text: those before the first `*` (measured
    /// from the start) and those after the last `*` (measured from the end).
    /// A pattern index can file a pattern under one of them and find it by
    /// probing the channel at that position.
    ///
    /// ```
    /// use tidings_core::glob::{FixedLiteral, Pattern};
    ///
    /// let p = Pattern::new(b"?ab*cd?");
    /// let fixed: Vec<FixedLiteral<'_>> = p.fixed_literals().collect();
    /// assert_eq!(fixed, [
    ///     FixedLiteral { from_end: false, offset: 1, bytes: b"ab" },
    ///     FixedLiteral { from_end: true, offset: 1, bytes: b"cd" },
    /// ]);
    /// ```
    pub fn fixed_literals(&self) -> impl Iterator<Item = FixedLiteral<'_>> + '_ {
        let (simple, compiled) = match &self.repr {
            Repr::Compiled(c) => (None, Some(c.fixed_literals())),
            _ => (self.simple_literal(), None),
        };
        simple.into_iter().chain(compiled.into_iter().flatten())
    }

    /// The one fixed literal of a simple shape: the literal itself, from the
    /// start (a pure literal or a prefix) or from the end (a suffix).
    fn simple_literal(&self) -> Option<FixedLiteral<'_>> {
        let (from_end, bytes) = match self.repr {
            Repr::Literal if !self.source.is_empty() => (false, &self.source[..]),
            Repr::Prefix(n, _) => (false, self.source.get(..n as usize)?),
            Repr::Suffix(n, _) => (true, self.source.get(n as usize..)?),
            _ => return None,
        };
        Some(FixedLiteral {
            from_end,
            offset: 0,
            bytes,
        })
    }

    /// The bytes of the pattern's atoms, one per byte of matching text:
    /// for a compiled pattern, the byte of each literal atom and a
    /// placeholder for each `?` or class; for the simple shapes, their
    /// literal. [`LiteralRun::at`] indexes it.
    pub(crate) fn atoms(&self) -> &[u8] {
        match self.repr {
            Repr::Literal => &self.source,
            Repr::Prefix(n, _) => self.source.get(..n as usize).unwrap_or(&[]),
            Repr::Suffix(n, _) => self.source.get(n as usize..).unwrap_or(&[]),
            Repr::Stars => &[],
            Repr::Compiled(ref c) => &c.atoms,
        }
    }

    /// Every maximal run of literal bytes (escapes resolved) that no star
    /// splits, from left to right, with where it sits in a matching text.
    /// Empty exactly when the pattern has no literal byte.
    pub(crate) fn literal_runs(&self) -> impl Iterator<Item = LiteralRun<'_>> + '_ {
        let (simple, compiled) = match &self.repr {
            Repr::Compiled(c) => (None, Some(c.literal_runs())),
            _ => (self.simple_literal(), None),
        };
        let simple = simple.map(|f| LiteralRun {
            at: 0,
            bytes: f.bytes,
            place: if f.from_end {
                Place::End(0)
            } else {
                Place::Start(0)
            },
        });
        simple.into_iter().chain(compiled.into_iter().flatten())
    }

    /// Whether `text` matches the whole pattern.
    ///
    /// Never allocates, never recurses; O(len(pattern) · len(text)) at worst.
    ///
    /// ```
    /// use tidings_core::glob::Pattern;
    ///
    /// let p = Pattern::new(b"foo*bar");
    /// assert!(p.matches(b"fooXbarYbar"));
    /// assert!(!p.matches(b"fooXbarY"));
    /// ```
    #[inline]
    pub fn matches(&self, text: &[u8]) -> bool {
        self.run(text, &mut ())
    }

    /// Like [`matches`](Self::matches), and also returns the number of
    /// elementary steps (byte comparisons, skips and token visits) taken.
    ///
    /// The count is always at most `4 · (len(pattern) + 1) · (len(text) + 1)`;
    /// the tests and fuzz targets assert this bound.
    ///
    /// ```
    /// use tidings_core::glob::Pattern;
    ///
    /// let mut pattern = b"*".to_vec();
    /// pattern.extend([b'a'; 50]);
    /// pattern.extend(b"b*");
    /// let (matched, steps) = Pattern::new(&pattern).matches_counting_steps(&[b'a'; 10_000]);
    /// assert!(!matched);
    /// assert!(steps < 40_000); // linear in the text, not 50 × 10,000
    /// ```
    pub fn matches_counting_steps(&self, text: &[u8]) -> (bool, u64) {
        let mut steps = 0u64;
        let matched = self.run(text, &mut steps);
        (matched, steps)
    }

    /// The literal bytes (escapes resolved) that every match starts with: the
    /// part before the first metacharacter. Empty if the pattern starts with
    /// one.
    ///
    /// ```
    /// use tidings_core::glob::Pattern;
    ///
    /// assert_eq!(Pattern::new(b"user:\\*:*").literal_prefix(), b"user:*:");
    /// assert_eq!(Pattern::new(b"*.sports").literal_prefix(), b"");
    /// ```
    pub fn literal_prefix(&self) -> &[u8] {
        match self.repr {
            Repr::Literal => &self.source,
            Repr::Prefix(n, _) => self.source.get(..n as usize).unwrap_or(&[]),
            Repr::Suffix(..) | Repr::Stars => &[],
            Repr::Compiled(ref c) => c.literal_prefix(),
        }
    }

    /// The literal bytes (escapes resolved) that every match ends with: the
    /// part after the last metacharacter. Empty if the pattern ends with one.
    ///
    /// ```
    /// use tidings_core::glob::Pattern;
    ///
    /// assert_eq!(Pattern::new(b"*.sports").literal_suffix(), b".sports");
    /// assert_eq!(Pattern::new(b"news.*").literal_suffix(), b"");
    /// ```
    pub fn literal_suffix(&self) -> &[u8] {
        match self.repr {
            Repr::Literal => &self.source,
            Repr::Suffix(n, _) => self.source.get(n as usize..).unwrap_or(&[]),
            Repr::Prefix(..) | Repr::Stars => &[],
            Repr::Compiled(ref c) => c.literal_suffix(),
        }
    }

    /// Whether the pattern has no metacharacter left after resolving escapes
    /// (and single-byte classes), so that it matches exactly one text:
    /// [`literal_prefix`](Self::literal_prefix), which then equals
    /// [`literal_suffix`](Self::literal_suffix).
    ///
    /// ```
    /// use tidings_core::glob::Pattern;
    ///
    /// assert!(Pattern::new(b"a\\*b").is_literal()); // matches only "a*b"
    /// assert!(Pattern::new(b"").is_literal());
    /// assert!(!Pattern::new(b"a*").is_literal());
    /// ```
    pub fn is_literal(&self) -> bool {
        match &self.repr {
            Repr::Literal => true,
            Repr::Compiled(c) => {
                !c.never && !c.has_star && (0..c.atoms.len()).all(|i| c.is_literal(i))
            }
            _ => false,
        }
    }

    /// Whether no text can ever match, because the pattern holds an empty
    /// class (`[]`, or `[` at the very end).
    ///
    /// ```
    /// use tidings_core::glob::Pattern;
    ///
    /// assert!(Pattern::new(b"[]a]").never_matches());
    /// assert!(!Pattern::new(b"[^]").never_matches());
    /// ```
    pub fn never_matches(&self) -> bool {
        matches!(&self.repr, Repr::Compiled(c) if c.never)
    }

    /// The length of the shortest text that can match.
    ///
    /// ```
    /// use tidings_core::glob::Pattern;
    ///
    /// assert_eq!(Pattern::new(b"a?*[bc]").min_len(), 3);
    /// ```
    pub fn min_len(&self) -> usize {
        match self.repr {
            Repr::Literal => self.source.len(),
            Repr::Prefix(n, _) => n as usize,
            Repr::Suffix(n, _) => self.source.len().saturating_sub(n as usize),
            Repr::Stars => 0,
            Repr::Compiled(ref c) => c.atoms.len(),
        }
    }

    /// The exact length of every matching text, if the pattern has no `*`.
    ///
    /// ```
    /// use tidings_core::glob::Pattern;
    ///
    /// assert_eq!(Pattern::new(b"a?[bc]").exact_len(), Some(3));
    /// assert_eq!(Pattern::new(b"a*").exact_len(), None);
    /// ```
    pub fn exact_len(&self) -> Option<usize> {
        match &self.repr {
            Repr::Literal => Some(self.source.len()),
            Repr::Compiled(c) => (!c.has_star).then_some(c.atoms.len()),
            _ => None,
        }
    }

    #[inline]
    fn run(&self, text: &[u8], steps: &mut impl Steps) -> bool {
        let source = &self.source[..];
        match self.repr {
            Repr::Prefix(n, head) => {
                let n = n as usize;
                steps.add(1 + n);
                match (text.get(..n), source.get(..n)) {
                    (Some(t), Some(lit)) if n <= 8 => load_le(t) == head && t.len() == lit.len(),
                    (Some(t), Some(lit)) => {
                        t.get(..8).map_or(0, load_le) == head && bytes_eq(t, lit)
                    }
                    _ => false,
                }
            }
            Repr::Suffix(start, tail) => {
                let lit = source.get(start as usize..).unwrap_or(&[]);
                let n = lit.len();
                steps.add(1 + n);
                let Some(t) = text.len().checked_sub(n).and_then(|at| text.get(at..)) else {
                    return false;
                };
                if n <= 8 {
                    load_le(t) == tail
                } else {
                    t.get(n - 8..).map_or(0, load_le) == tail && bytes_eq(t, lit)
                }
            }
            Repr::Literal => {
                steps.add(1 + source.len());
                bytes_eq(text, source)
            }
            Repr::Stars => {
                steps.add(1);
                true
            }
            Repr::Compiled(ref c) => c.run_cold(source, text, steps),
        }
    }
}

/// `bytes` (at most 8) as a little-endian number, zero-padded; only the
/// first 8 of a longer slice.
#[inline]
pub(crate) fn load_le(bytes: &[u8]) -> u64 {
    match bytes.len() {
        0 => 0,
        n @ 1..=3 => {
            u64::from(bytes[0])
                | u64::from(bytes[n / 2]) << (8 * (n / 2))
                | u64::from(bytes[n - 1]) << (8 * (n - 1))
        }
        n @ 4..=7 => {
            let lo = <[u8; 4]>::try_from(&bytes[..4]).map_or(0, u32::from_le_bytes);
            let hi = <[u8; 4]>::try_from(&bytes[n - 4..]).map_or(0, u32::from_le_bytes);
            u64::from(lo) | u64::from(hi) << (8 * (n - 4))
        }
        _ => <[u8; 8]>::try_from(&bytes[..8]).map_or(0, u64::from_le_bytes),
    }
}

/// Whether `a == b`, for slices of equal length: short ones (the common
/// channel and key sizes) with word loads, rather than a call to `memcmp`.
#[inline]
pub(crate) fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    #[inline]
    fn word(bytes: &[u8], at: usize) -> u64 {
        bytes
            .get(at..at + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            .map_or(0, u64::from_le_bytes)
    }
    #[inline]
    fn half(bytes: &[u8], at: usize) -> u32 {
        bytes
            .get(at..at + 4)
            .and_then(|w| <[u8; 4]>::try_from(w).ok())
            .map_or(0, u32::from_le_bytes)
    }
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        0 => true,
        1..=3 => a.first() == b.first() && a.get(n / 2) == b.get(n / 2) && a.last() == b.last(),
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        _ => a == b,
    }
}

impl Compiled {
    /// [`run`](Self::run), kept out of line so that the simple shapes'
    /// comparison inlines into its callers.
    #[inline(never)]
    fn run_cold(&self, source: &[u8], text: &[u8], steps: &mut impl Steps) -> bool {
        self.run(source, text, steps)
    }

    /// Parses and compiles `pattern`.
    fn new(pattern: &[u8]) -> Compiled {
        let b = Builder::default().parse(pattern);
        let n = b.atoms.len();
        let (head, tail) = match b.first_star {
            Some(first) => (first, n - b.last_star),
            None => (n, 0),
        };
        let mut bits = b.literal;
        bits.extend_from_slice(&b.star);
        let mut compiled = Compiled {
            atoms: b.atoms.into_boxed_slice(),
            bits: bits.into_boxed_slice(),
            classes: Offsets::new(b.classes, pattern.len()),
            head,
            tail,
            head_classes: 0,
            tail_classes: 0,
            has_star: b.first_star.is_some(),
            has_middle: b.first_star.is_some_and(|first| first < b.last_star),
            head_literal: false,
            tail_literal: false,
            never: b.never,
        };
        let classes =
            |range: core::ops::Range<usize>| range.filter(|&i| compiled.is_class(i)).count();
        let literal =
            |range: core::ops::Range<usize>| range.clone().all(|i| compiled.is_literal(i));
        let (head_classes, tail_classes) = (classes(0..head), classes(n - tail..n));
        let (head_literal, tail_literal) = (literal(0..head), literal(n - tail..n));
        compiled.head_classes = head_classes;
        compiled.tail_classes = tail_classes;
        compiled.head_literal = head_literal;
        compiled.tail_literal = tail_literal;
        compiled
    }

    /// Words in each bitmap of `bits`.
    #[inline]
    fn words(&self) -> usize {
        self.atoms.len().div_ceil(64)
    }

    /// Whether atom `i` is a literal.
    #[inline]
    fn is_literal(&self, i: usize) -> bool {
        self.bits
            .get(i / 64)
            .is_some_and(|w| w >> (i % 64) & 1 != 0)
    }

    /// Whether atom `i` is a class.
    #[inline]
    fn is_class(&self, i: usize) -> bool {
        !self.is_literal(i) && self.atoms.get(i) == Some(&CLASS)
    }

    /// Whether a star comes right before atom `i`.
    #[inline]
    fn star_before(&self, i: usize) -> bool {
        self.bits
            .get(self.words() + i / 64)
            .is_some_and(|w| w >> (i % 64) & 1 != 0)
    }

    /// The first atom in `from..to` that a star comes right before, or `to`.
    fn next_star(&self, from: usize, to: usize) -> usize {
        let stars = self.bits.get(self.words()..).unwrap_or(&[]);
        let mut i = from;
        while i < to {
            let word = stars.get(i / 64).map_or(0, |w| w >> (i % 64));
            if word != 0 {
                return (i + word.trailing_zeros() as usize).min(to);
            }
            i = (i / 64 + 1) * 64;
        }
        to
    }

    /// The maximal runs of literal atoms that no star splits, as atom
    /// ranges, from left to right.
    fn runs(&self) -> impl Iterator<Item = core::ops::Range<usize>> + '_ {
        let n = self.atoms.len();
        let mut i = 0;
        core::iter::from_fn(move || {
            while i < n && !self.is_literal(i) {
                i += 1;
            }
            if i >= n {
                return None;
            }
            let start = i;
            i += 1;
            while i < n && self.is_literal(i) && !self.star_before(i) {
                i += 1;
            }
            Some(start..i)
        })
    }

    /// The literal runs with where they sit: from the start for those
    /// before the first star, from the end for those after the last one,
    /// floating for the others.
    fn literal_runs(&self) -> impl Iterator<Item = LiteralRun<'_>> + '_ {
        let n = self.atoms.len();
        let (head, tail_at) = (self.head, n - self.tail);
        self.runs().map(move |run| {
            let place = if run.end <= head {
                Place::Start(run.start)
            } else if self.has_star && run.start >= tail_at {
                Place::End(n - run.end)
            } else {
                Place::Floating
            };
            LiteralRun {
                at: run.start,
                bytes: self.atoms.get(run).unwrap_or(&[]),
                place,
            }
        })
    }

    fn fixed_literals(&self) -> impl Iterator<Item = FixedLiteral<'_>> + '_ {
        let runs = || self.literal_runs();
        let from_start = runs().filter_map(|r| match r.place {
            Place::Start(offset) => Some(FixedLiteral {
                from_end: false,
                offset,
                bytes: r.bytes,
            }),
            _ => None,
        });
        // From the end, nearest the end first.
        let mut from_end: SmallVec<[FixedLiteral<'_>; 4]> = runs()
            .filter_map(|r| match r.place {
                Place::End(offset) => Some(FixedLiteral {
                    from_end: true,
                    offset,
                    bytes: r.bytes,
                }),
                _ => None,
            })
            .collect();
        from_end.reverse();
        from_start.chain(from_end)
    }

    /// The literal run starting at atom 0, if no star comes before it.
    fn literal_prefix(&self) -> &[u8] {
        match self.runs().next() {
            Some(run) if run.start == 0 && !self.star_before(0) => {
                self.atoms.get(run).unwrap_or(&[])
            }
            _ => &[],
        }
    }

    /// The literal run ending at the last atom, if no star comes after it.
    fn literal_suffix(&self) -> &[u8] {
        let n = self.atoms.len();
        if self.has_star && self.tail == 0 {
            return &[];
        }
        let mut start = n;
        while start > 0 && self.is_literal(start - 1) {
            start -= 1;
            if self.star_before(start) {
                break;
            }
        }
        self.atoms.get(start..).unwrap_or(&[])
    }

    fn run(&self, source: &[u8], text: &[u8], steps: &mut impl Steps) -> bool {
        steps.add(1);
        if self.never {
            return false;
        }
        let n = self.atoms.len();
        if !self.has_star {
            return text.len() == n && self.segment_at(source, 0..n, 0, text, steps);
        }
        let Some(tail_at) = text.len().checked_sub(self.tail) else {
            return false;
        };
        if text.len() < n {
            return false;
        }
        let (head, tail) = (self.head, self.tail);
        let (Some(head_text), Some(tail_text)) = (text.get(..head), text.get(tail_at..)) else {
            return false;
        };
        let head_ok = if self.head_literal {
            steps.add(head);
            self.atoms
                .get(..head)
                .is_some_and(|lit| bytes_eq(lit, head_text))
        } else {
            self.segment_at(source, 0..head, 0, head_text, steps)
        };
        let tail_ok = head_ok
            && if self.tail_literal {
                steps.add(tail);
                self.atoms
                    .get(n - tail..)
                    .is_some_and(|lit| bytes_eq(lit, tail_text))
            } else {
                let first_class = self.classes.len() - self.tail_classes;
                self.segment_at(source, n - tail..n, first_class, tail_text, steps)
            };
        if !tail_ok {
            return false;
        }
        if !self.has_middle {
            return true;
        }
        text.get(head..tail_at)
            .is_some_and(|window| self.middles(source, window, steps))
    }

    /// Whether the atoms `atoms` (no star among them), whose first class is
    /// class number `class`, match `text`, whose length is theirs.
    fn segment_at(
        &self,
        source: &[u8],
        atoms: core::ops::Range<usize>,
        mut class: usize,
        text: &[u8],
        steps: &mut impl Steps,
    ) -> bool {
        for (i, &t) in atoms.zip(text) {
            steps.add(1);
            let Some(&atom) = self.atoms.get(i) else {
                return false;
            };
            if self.is_literal(i) {
                if atom != t {
                    return false;
                }
            } else if atom == CLASS {
                let member = self
                    .classes
                    .get(class)
                    .is_some_and(|start| class_contains(source, start, t, steps));
                if !member {
                    return false;
                }
                class += 1;
            }
        }
        true
    }

    /// Whether the middle segments, in order, each placed at its leftmost
    /// position after the previous one, fit in `window` (the text between
    /// the head and the tail). Leftmost placement is optimal because
    /// segments have fixed lengths, so no backtracking is needed.
    fn middles(&self, source: &[u8], window: &[u8], steps: &mut impl Steps) -> bool {
        let stop = self.atoms.len() - self.tail;
        let mut i = self.head;
        let mut class = self.head_classes;
        let mut pos = 0;
        while i < stop {
            let j = self.next_star(i + 1, stop);
            // The segment's longest literal run (the first of the longest)
            // locates it; count its classes on the way.
            steps.add(j - i);
            let (mut anchor, mut run, mut classes) = (i..i, i..i, 0);
            for k in i..j {
                if self.is_literal(k) {
                    if run.is_empty() {
                        run = k..k;
                    }
                    run.end = k + 1;
                    if run.len() > anchor.len() {
                        anchor = run.clone();
                    }
                } else {
                    run = k..k;
                    classes += usize::from(self.atoms.get(k) == Some(&CLASS));
                }
            }
            let Some(rest) = window.get(pos..) else {
                return false;
            };
            match self.find_middle(source, i..j, class, anchor, rest, steps) {
                Some(at) => pos += at + (j - i),
                None => return false,
            }
            class += classes;
            i = j;
        }
        true
    }

    /// The leftmost offset in `window` where the segment `atoms` matches.
    fn find_middle(
        &self,
        source: &[u8],
        atoms: core::ops::Range<usize>,
        class: usize,
        anchor: core::ops::Range<usize>,
        window: &[u8],
        steps: &mut impl Steps,
    ) -> Option<usize> {
        let len = atoms.len();
        let last = window.len().checked_sub(len)?;
        let fits = |at: usize, steps: &mut _| {
            window
                .get(at..at + len)
                .is_some_and(|t| self.segment_at(source, atoms.clone(), class, t, steps))
        };
        if anchor.is_empty() {
            return (0..=last).find(|&at| fits(at, steps));
        }
        let needle = self.atoms.get(anchor.clone())?;
        let offset = anchor.start - atoms.start;
        let whole = anchor.len() == len;
        // Candidate starts are 0..=last, so the anchor lies in this range.
        let hay = window.get(offset..last + offset + anchor.len())?;
        let search = Search::new(needle, steps);
        let mut from = 0;
        while from <= last {
            let at = search.find(hay, from, steps)?;
            if whole || fits(at, steps) {
                return Some(at);
            }
            from = at + 1;
        }
        None
    }
}

/// Where a literal run of a pattern sits in every text the pattern matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    /// This many bytes after the start of the text.
    Start(usize),
    /// This many bytes before the end of the text.
    End(usize),
    /// Anywhere between the head and the tail.
    Floating,
}

/// A maximal run of literal bytes of a pattern: the index keys.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LiteralRun<'a> {
    /// The run's first atom: `bytes` is `atoms()[at..at + bytes.len()]`
    /// (see [`Pattern::atoms`]).
    pub(crate) at: usize,
    pub(crate) bytes: &'a [u8],
    pub(crate) place: Place,
}

/// A literal run at a fixed position in every text a [`Pattern`] matches; see
/// [`Pattern::fixed_literals`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedLiteral<'a> {
    /// Whether `offset` counts from the end of the text rather than its start.
    pub from_end: bool,
    /// From the start: the index of the literal's first byte. From the end:
    /// the number of bytes after the literal's last byte.
    pub offset: usize,
    /// The literal bytes, escapes resolved.
    pub bytes: &'a [u8],
}

/// Whether `text` matches `pattern`: compiles and matches in one call.
///
/// Compile a [`Pattern`] instead when matching the same pattern repeatedly.
///
/// ```
/// use tidings_core::glob;
///
/// assert!(glob::matches(b"h?llo", b"hello"));
/// assert!(glob::matches(b"*", b"")); // deviation: Redis says no here
/// ```
pub fn matches(pattern: &[u8], text: &[u8]) -> bool {
    Pattern::new(pattern).matches(text)
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.source == other.source
    }
}

impl Eq for Pattern {}

impl core::hash::Hash for Pattern {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.source.hash(state);
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern(\"{}\")", self.source.escape_ascii())
    }
}

impl From<&[u8]> for Pattern {
    fn from(pattern: &[u8]) -> Pattern {
        Pattern::new(pattern)
    }
}

impl From<&str> for Pattern {
    fn from(pattern: &str) -> Pattern {
        Pattern::new(pattern.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The leftmost occurrence of `needle` in `hay` at or after `from`, by
    /// trying every position.
    fn naive(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
        (from..=hay.len().checked_sub(needle.len())?).find(|&at| hay[at..].starts_with(needle))
    }

    fn bytes(alphabet: &'static [u8], max: usize) -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(prop::sample::select(alphabet), 0..max)
    }

    #[test]
    fn two_way_finds_periodic_and_aperiodic_needles() {
        let cases: [(&[u8], &[u8]); 8] = [
            (b"aaaaaaaaab", b"aab"),
            (b"abababababc", b"ababc"),
            (b"xxacbaxacba", b"acba"),
            (b"abcabcabd", b"abcabd"),
            (b"aaaa", b"aaaaa"),
            (b"ba", b"ab"),
            (b"zzzzzzzzzzzzzzzzzzzzab", b"ab"),
            (b"abaabaabaaab", b"abaaab"),
        ];
        for (hay, needle) in cases {
            let search = Search::new(needle, &mut ());
            for from in 0..=hay.len() + 1 {
                assert_eq!(
                    search.find(hay, from, &mut ()),
                    naive(hay, needle, from),
                    "{} in {} from {from}",
                    needle.escape_ascii(),
                    hay.escape_ascii()
                );
            }
        }
    }

    /// Comparisons stay linear in the haystack on a needle built to make a
    /// naive search quadratic.
    #[test]
    fn two_way_is_linear() {
        let mut needle = alloc::vec![b'a'; 500];
        needle.push(b'b');
        let hay = alloc::vec![b'a'; 100_000];
        let mut steps = 0u64;
        let search = Search::new(&needle, &mut steps);
        assert_eq!(search.find(&hay, 0, &mut steps), None);
        assert!(steps < 4 * 100_000, "{steps} steps");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5_000))]

        /// Two-Way (and the byte scan for one-byte needles) against trying
        /// every position, over small alphabets where needles repeat.
        #[test]
        fn search_agrees_with_naive(
            hay in prop_oneof![bytes(b"ab", 40), bytes(b"abc", 40), bytes(b"aab\x00\xff", 40)],
            needle in prop_oneof![bytes(b"ab", 8), bytes(b"abc", 6), bytes(b"a\x00\xff", 6)],
            from in 0usize..45,
        ) {
            prop_assume!(!needle.is_empty());
            let mut steps = 0u64;
            let search = Search::new(&needle, &mut steps);
            prop_assert_eq!(search.find(&hay, from, &mut steps), naive(&hay, &needle, from));
            prop_assert!(steps <= 4 * (hay.len() + needle.len() + 1) as u64);
        }
    }
}
