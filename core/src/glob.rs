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
//! [`Pattern::new`] compiles the pattern once into tokens: literal runs (with
//! escapes already resolved), runs of `?`, classes as 256-bit sets, and `*`.
//! Single-byte classes become literals and `[^]` becomes `?`, so `[f]oo*` has
//! the literal prefix `foo`. Because every token but `*` matches a fixed number
//! of bytes, the pattern splits at its stars into fixed-length segments
//! `S0 * S1 * … * Sk`:
//!
//! - `S0` is compared at the start of the text and `Sk` at its end;
//! - each middle segment is placed at its leftmost position after the previous
//!   one. Leftmost placement is optimal because segments have fixed lengths,
//!   so no backtracking is ever needed.
//!
//! A middle segment is located by its longest literal run, searched with
//! Knuth–Morris–Pratt (linear in the text, tables built at compile time), and
//! then verified. The worst case is O(len(pattern) · len(text)) — the bound
//! that Redis needed two CVE fixes to approach (CVE-2022-36021, exponential
//! time; CVE-2024-31228, recursion depth) — and common shapes are linear:
//! `*` + `a`×50 + `b` against `a`×10,000 compares 51 bytes at the end of the
//! text and stops. [`Pattern::matches_counting_steps`] exposes the work done so
//! that tests and fuzzers can assert the bound.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

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

/// One compiled element of a pattern.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Token {
    /// `len` literal bytes at `start` in [`Pattern::cooked`].
    Lit { start: usize, len: usize },
    /// `n` consecutive `?`: any `n` bytes.
    Any(usize),
    /// One byte from `Extra::classes[index]`.
    Class(usize),
    /// One or more `*`.
    Star,
}

/// A fixed-length segment between two stars.
#[derive(Clone, Debug)]
struct Middle {
    /// Token range of the segment.
    tokens: (usize, usize),
    /// Number of text bytes the segment matches.
    len: usize,
    /// The longest literal run, used to find candidate positions.
    anchor: Option<Anchor>,
}

#[derive(Clone, Copy, Debug)]
struct Anchor {
    /// Byte offset of the literal run inside the segment.
    offset: usize,
    /// Range of the literal in [`Pattern::cooked`] (and of its table in
    /// `Extra::failure`, which is laid out in parallel).
    start: usize,
    len: usize,
    /// The segment is exactly this literal, so a hit needs no verification.
    whole: bool,
}

/// The parts of a compiled pattern that simple patterns do not need.
#[derive(Clone, Debug, Default)]
struct Extra {
    classes: Vec<ByteSet>,
    middles: Vec<Middle>,
    /// KMP failure function for every anchor literal; `failure[i]` belongs to
    /// `cooked[i]`, so an anchor's table is `failure[start..start + len]`.
    /// Only entries covered by an anchor are meaningful.
    failure: Vec<usize>,
}

/// A compiled glob pattern.
///
/// Compile once with [`Pattern::new`], then call [`Pattern::matches`] as often
/// as needed: matching never re-parses the pattern and never allocates.
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
/// else is compiled into tokens.
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

/// The token form of a pattern that is not one of the simple shapes.
#[derive(Clone)]
struct Compiled {
    /// The literal bytes of every `Lit` token, escapes resolved.
    cooked: Box<[u8]>,
    tokens: Box<[Token]>,
    /// Classes, middle segments and search tables; `None` for patterns that
    /// have no class and at most one star.
    extra: Option<Box<Extra>>,
    /// Tokens before the first star (all tokens when there is no star).
    head_tokens: usize,
    /// Bytes matched by the head tokens.
    head_len: usize,
    /// Index of the first token after the last star.
    tail_start: usize,
    /// Bytes matched by the tail tokens.
    tail_len: usize,
    /// Bytes matched by all non-star tokens: the shortest text that can match.
    min_len: usize,
    has_star: bool,
    /// The pattern holds an empty class, so it matches nothing.
    never: bool,
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

/// Counts the elementary steps a match takes; `()` counts nothing.
trait Steps {
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

/// Builds the token list of a pattern (the parse happens here, once).
#[derive(Default)]
struct Builder {
    cooked: Vec<u8>,
    tokens: Vec<Token>,
    classes: Vec<ByteSet>,
    never: bool,
}

impl Builder {
    fn literal(&mut self, b: u8) {
        let at = self.cooked.len();
        self.cooked.push(b);
        if let Some(Token::Lit { len, .. }) = self.tokens.last_mut() {
            // Literal tokens are pushed in order, so the previous one ends at `at`.
            *len += 1;
        } else {
            self.tokens.push(Token::Lit { start: at, len: 1 });
        }
    }

    fn any(&mut self) {
        if let Some(Token::Any(n)) = self.tokens.last_mut() {
            *n += 1;
        } else {
            self.tokens.push(Token::Any(1));
        }
    }

    fn star(&mut self) {
        if self.tokens.last() != Some(&Token::Star) {
            self.tokens.push(Token::Star);
        }
    }

    fn class(&mut self, set: ByteSet) {
        match set.len() {
            0 => {
                self.never = true;
                self.classes.push(set);
                self.tokens.push(Token::Class(self.classes.len() - 1));
            }
            1 => {
                if let Some(b) = set.first() {
                    self.literal(b);
                }
            }
            256 => self.any(),
            _ => {
                self.classes.push(set);
                self.tokens.push(Token::Class(self.classes.len() - 1));
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
                    self.any();
                    i += 1;
                }
                b'[' => {
                    i += 1;
                    let negate = p.get(i) == Some(&b'^');
                    if negate {
                        i += 1;
                    }
                    let mut set = ByteSet::default();
                    // Each arm consumes what it reads; the end of the
                    // pattern closes an unterminated class.
                    while let Some(&c) = p.get(i) {
                        match (c, p.get(i + 1), p.get(i + 2)) {
                            (b'\\', Some(&escaped), _) => {
                                set.insert(escaped);
                                i += 2;
                            }
                            (b']', _, _) => {
                                i += 1;
                                break;
                            }
                            (lo, Some(b'-'), Some(&hi)) => {
                                set.insert_range(lo, hi);
                                i += 3;
                            }
                            (c, _, _) => {
                                set.insert(c);
                                i += 1;
                            }
                        }
                    }
                    if negate {
                        set.negate();
                    }
                    self.class(set);
                }
                b'\\' => {
                    // A trailing backslash is itself a literal.
                    match p.get(i + 1) {
                        Some(&escaped) => {
                            self.literal(escaped);
                            i += 2;
                        }
                        None => {
                            self.literal(b'\\');
                            i += 1;
                        }
                    }
                }
                c => {
                    self.literal(c);
                    i += 1;
                }
            }
        }
        self
    }
}

/// Bytes of text matched by a token (stars match a variable amount: 0 here).
fn token_len(t: &Token) -> usize {
    match *t {
        Token::Lit { len, .. } => len,
        Token::Any(n) => n,
        Token::Class(_) => 1,
        Token::Star => 0,
    }
}

/// KMP failure function: `f[i]` is the length of the longest proper border of
/// `needle[..=i]`.
fn failure_function(needle: &[u8], out: &mut [usize]) {
    let mut k = 0;
    for i in 1..needle.len() {
        while k > 0 && needle[i] != needle[k] {
            k = out[k - 1];
        }
        if needle[i] == needle[k] {
            k += 1;
        }
        out[i] = k;
    }
}

/// Leftmost occurrence of `needle` in `hay` with Knuth–Morris–Pratt: at most
/// 2·len(hay) comparisons. While nothing is matched it skips ahead to the next
/// occurrence of the first byte.
fn kmp_find(hay: &[u8], needle: &[u8], fail: &[usize], steps: &mut impl Steps) -> Option<usize> {
    let first = *needle.first()?;
    let (mut i, mut j) = (0, 0);
    while i < hay.len() {
        if j == 0 {
            let skip = hay[i..].iter().position(|&b| b == first);
            steps.add(skip.unwrap_or(hay.len() - i) + 1);
            i += skip?;
        }
        steps.add(1);
        if hay[i] == needle[j] {
            i += 1;
            j += 1;
            if j == needle.len() {
                return Some(i - j);
            }
        } else if j > 0 {
            j = fail[j - 1];
        } else {
            i += 1;
        }
    }
    None
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
            Repr::Compiled(ref c) => c.literal_at(0),
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
            Repr::Compiled(ref c) => c.literal_at(c.tokens.len().wrapping_sub(1)),
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
            Repr::Compiled(c) => !c.never && matches!(*c.tokens, [] | [Token::Lit { .. }]),
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
            Repr::Compiled(ref c) => c.min_len,
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
            Repr::Compiled(c) => (!c.has_star).then_some(c.min_len),
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
            Repr::Compiled(ref c) => c.run_cold(text, steps),
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
    fn run_cold(&self, text: &[u8], steps: &mut impl Steps) -> bool {
        self.run(text, steps)
    }

    /// Parses and compiles `pattern`.
    fn new(pattern: &[u8]) -> Compiled {
        let b = Builder::default().parse(pattern);
        let tokens = b.tokens;
        let head_tokens = tokens
            .iter()
            .position(|t| *t == Token::Star)
            .unwrap_or(tokens.len());
        let has_star = head_tokens < tokens.len();
        let tail_start = if has_star {
            tokens
                .iter()
                .rposition(|t| *t == Token::Star)
                .map_or(0, |i| i + 1)
        } else {
            tokens.len()
        };
        let head_len = tokens[..head_tokens].iter().map(token_len).sum();
        let tail_len = tokens[tail_start..].iter().map(token_len).sum();
        let min_len = tokens.iter().map(token_len).sum();

        let mut middles = Vec::new();
        let mut failure = Vec::new();
        if has_star {
            let mut start = head_tokens + 1;
            for (i, t) in tokens.iter().enumerate().take(tail_start).skip(start) {
                if *t != Token::Star {
                    continue;
                }
                let seg = &tokens[start..i];
                let mut anchor: Option<Anchor> = None;
                let mut offset = 0;
                for t in seg {
                    if let Token::Lit { start, len } = *t {
                        if anchor.is_none_or(|a| len > a.len) {
                            anchor = Some(Anchor {
                                offset,
                                start,
                                len,
                                whole: seg.len() == 1,
                            });
                        }
                    }
                    offset += token_len(t);
                }
                if let Some(a) = anchor {
                    if failure.len() < b.cooked.len() {
                        failure.resize(b.cooked.len(), 0);
                    }
                    failure_function(
                        &b.cooked[a.start..a.start + a.len],
                        &mut failure[a.start..a.start + a.len],
                    );
                }
                middles.push(Middle {
                    tokens: (start, i),
                    len: offset,
                    anchor,
                });
                start = i + 1;
            }
        }
        let extra = if b.classes.is_empty() && middles.is_empty() {
            None
        } else {
            Some(Box::new(Extra {
                classes: b.classes,
                middles,
                failure,
            }))
        };
        Compiled {
            cooked: b.cooked.into_boxed_slice(),
            tokens: tokens.into_boxed_slice(),
            extra,
            head_tokens,
            head_len,
            tail_start,
            tail_len,
            min_len,
            has_star,
            never: b.never,
        }
    }

    fn fixed_literals(&self) -> impl Iterator<Item = FixedLiteral<'_>> + '_ {
        let head = &self.tokens[..self.head_tokens];
        let tail = if self.has_star {
            &self.tokens[self.tail_start..]
        } else {
            &[][..]
        };
        let literal = move |t: &Token| match *t {
            Token::Lit { start, len } => Some(&self.cooked[start..start + len]),
            _ => None,
        };
        let from_start = head.iter().scan(0, move |offset, t| {
            let at = *offset;
            *offset += token_len(t);
            Some(literal(t).map(|bytes| FixedLiteral {
                from_end: false,
                offset: at,
                bytes,
            }))
        });
        let from_end = tail.iter().rev().scan(0, move |offset, t| {
            let at = *offset;
            *offset += token_len(t);
            Some(literal(t).map(|bytes| FixedLiteral {
                from_end: true,
                offset: at,
                bytes,
            }))
        });
        from_start.chain(from_end).flatten()
    }

    fn literal_at(&self, index: usize) -> &[u8] {
        match self.tokens.get(index) {
            Some(&Token::Lit { start, len }) => &self.cooked[start..start + len],
            _ => &[],
        }
    }

    fn run(&self, text: &[u8], steps: &mut impl Steps) -> bool {
        steps.add(1);
        if self.never {
            return false;
        }
        if !self.has_star {
            return text.len() == self.min_len && self.segment_at(&self.tokens, text, steps);
        }
        if text.len() < self.min_len {
            return false;
        }
        let tail_at = text.len() - self.tail_len;
        if !self.segment_at(
            &self.tokens[..self.head_tokens],
            &text[..self.head_len],
            steps,
        ) || !self.segment_at(&self.tokens[self.tail_start..], &text[tail_at..], steps)
        {
            return false;
        }
        let Some(extra) = &self.extra else {
            return true;
        };
        let mut pos = self.head_len;
        for middle in &extra.middles {
            match self.find_middle(extra, middle, &text[pos..tail_at], steps) {
                Some(at) => pos += at + middle.len,
                None => return false,
            }
        }
        true
    }

    /// Whether the star-free `tokens` match `text`, whose length is theirs.
    fn segment_at(&self, tokens: &[Token], text: &[u8], steps: &mut impl Steps) -> bool {
        let mut at = 0;
        for t in tokens {
            steps.add(1);
            match *t {
                Token::Lit { start, len } => {
                    steps.add(len);
                    if text.get(at..at + len) != Some(&self.cooked[start..start + len]) {
                        return false;
                    }
                    at += len;
                }
                Token::Any(n) => at += n,
                Token::Class(index) => {
                    let member = match (text.get(at), self.extra.as_deref()) {
                        (Some(&b), Some(extra)) => {
                            extra.classes.get(index).is_some_and(|c| c.contains(b))
                        }
                        _ => false,
                    };
                    if !member {
                        return false;
                    }
                    at += 1;
                }
                Token::Star => {}
            }
        }
        true
    }

    /// The leftmost offset in `window` where `middle` matches.
    fn find_middle(
        &self,
        extra: &Extra,
        middle: &Middle,
        window: &[u8],
        steps: &mut impl Steps,
    ) -> Option<usize> {
        let last = window.len().checked_sub(middle.len)?;
        let tokens = &self.tokens[middle.tokens.0..middle.tokens.1];
        let Some(a) = middle.anchor else {
            return (0..=last)
                .find(|&at| self.segment_at(tokens, &window[at..at + middle.len], steps));
        };
        let needle = &self.cooked[a.start..a.start + a.len];
        let fail = &extra.failure[a.start..a.start + a.len];
        // Candidate starts are 0..=last, so the anchor lies in this range.
        let hay = &window[a.offset..last + a.offset + a.len];
        let mut from = 0;
        while from <= last {
            let at = from + kmp_find(&hay[from..], needle, fail, steps)?;
            if a.whole || self.segment_at(tokens, &window[at..at + middle.len], steps) {
                return Some(at);
            }
            from = at + 1;
        }
        None
    }
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
