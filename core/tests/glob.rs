//! Glob matching: table-driven cases, a differential proptest against the
//! reference transliteration of Redis's `stringmatchlen`, and the work bound.
#![allow(clippy::unwrap_used)]

#[allow(unreachable_pub)]
mod support {
    pub mod reference_glob;
}

use proptest::prelude::*;
use support::reference_glob::reference_matches;
use tidings_core::glob::{self, Pattern};

/// `(pattern, text, expected, reason)`.
type Case = (&'static [u8], &'static [u8], bool, &'static str);

const CASES: &[Case] = &[
    // The reference cases of REDIS-SEMANTICS.md §1.
    (b"a*", b"a", true, "star matches the empty rest"),
    (b"a*", b"", false, "the literal a needs a byte"),
    (
        b"h*llo",
        b"hllo",
        true,
        "star matches nothing in the middle",
    ),
    (b"h*llo", b"heeello", true, "star matches a run"),
    (
        b"foo*bar",
        b"fooXbarYbar",
        true,
        "the suffix is anchored at the end",
    ),
    (
        b"foo*bar",
        b"fooXbarY",
        false,
        "trailing bytes after the suffix",
    ),
    (b"a?c", b"abc", true, "? takes one byte"),
    (b"a?c", b"ac", false, "? needs exactly one byte"),
    (
        b"h[^e]llo",
        b"hallo",
        true,
        "negated class accepts other bytes",
    ),
    (
        b"h[^e]llo",
        b"hello",
        false,
        "negated class rejects its member",
    ),
    (
        b"[a-c-e]",
        b"d",
        false,
        "after a range, - is literal: {a..c, -, e}",
    ),
    (b"[a-c-e]", b"e", true, "e is a member after the literal -"),
    (
        b"[\\]",
        b"]",
        true,
        "escaped ] inside an unterminated class",
    ),
    (
        b"[\\]",
        b"\\",
        false,
        "the backslash is the escape, not a member",
    ),
    (
        b"[\\",
        b"\\",
        true,
        "a lone backslash at the end of a class is literal",
    ),
    (b"[abc", b"b", true, "unterminated class runs to the end"),
    (
        b"[abc",
        b"bc",
        false,
        "unterminated class still matches one byte",
    ),
    (
        b"a\\",
        b"a\\",
        true,
        "trailing backslash is a literal backslash",
    ),
    (b"a\\", b"a", false, "trailing backslash needs its byte"),
    (b"\\?", b"x", false, "escaped ? is a literal ?"),
    (b"[!a]", b"!", true, "! does not negate"),
    (b"[!a]", b"b", false, "! is an ordinary member"),
    (
        b"[^^]",
        b"^",
        false,
        "^ after [^ is a member of the negated set",
    ),
    (b"[a-\\]]", b"a]", true, "range \\..a, then a literal ]"),
    (b"a\0*", b"a\0xy", true, "NUL is an ordinary byte"),
    // Deviation 1.
    (b"*", b"", true, "deviation: * matches the empty string"),
    (
        b"***",
        b"",
        true,
        "deviation: a run of stars matches the empty string",
    ),
    (b"", b"", true, "the empty pattern matches the empty text"),
    (
        b"",
        b"a",
        false,
        "the empty pattern matches only the empty text",
    ),
    (b"?*", b"", false, "? still needs a byte"),
    (b"[^]*", b"", false, "[^] still needs a byte"),
    // Deviation 2: unsigned bytes.
    (
        b"[\x01-\xff]",
        b"\x80",
        true,
        "unsigned range includes 0x80",
    ),
    (
        b"[\x7f-\x81]",
        b"\x80",
        true,
        "range across 0x7f/0x80 is unsigned",
    ),
    (
        b"[\x7f-\x81]",
        b"\x00",
        false,
        "a signed compare would differ here",
    ),
    // Escapes outside classes.
    (b"\\*", b"*", true, "escaped star is a literal"),
    (b"\\*", b"ab", false, "escaped star is not a wildcard"),
    (b"\\[a]", b"[a]", true, "escaped [ makes no class"),
    (b"\\a", b"a", true, "escaping a plain byte yields the byte"),
    (b"\\\\", b"\\", true, "escaped backslash"),
    // Classes.
    (b"[]", b"]", false, "[] is an empty class"),
    (
        b"[]a]",
        b"a]",
        false,
        "[] is empty, so the pattern never matches",
    ),
    (b"[]a]", b"]", false, "] right after [ closes the class"),
    (b"[^]", b"x", true, "[^] matches any one byte"),
    (b"[^]", b"\0", true, "[^] matches NUL"),
    (b"[^]", b"", false, "[^] needs one byte"),
    (b"[", b"[", false, "[ alone is an empty class"),
    (b"[", b"", false, "[ alone never matches"),
    (b"[^", b"q", true, "[^ alone matches any one byte"),
    (b"[z-a]", b"m", true, "reversed range is swapped"),
    (b"[a-]", b"]", true, "[a-] is the range ]..a"),
    (b"[a-]", b"_", true, "_ lies between ] and a"),
    (b"[a-]", b"-", false, "- is not in ]..a"),
    (b"[-a]", b"-", true, "leading - is literal"),
    (b"[a-b-c]", b"-", true, "- after a range is literal"),
    (b"[a-b-c]", b"c", true, "c is literal after -"),
    (b"[\\a-z]", b"-", true, "escaped byte never starts a range"),
    (b"[\\a-z]", b"m", false, "so a-z is not a range here"),
    (b"[a-", b"-", true, "a- at the end: both literal"),
    (b"[a-", b"b", false, "no range without a byte after -"),
    (b"[ab]", b"c", false, "plain class miss"),
    (
        b"[x]yz",
        b"xyz",
        true,
        "single-byte class acts as a literal",
    ),
    (b"[\\]]", b"]", true, "escaped ] inside a class"),
    (b"[]]", b"]", false, "[] then literal ]: never matches"),
    (b"[^a-z]", b"A", true, "negated range"),
    (b"[^a-z]", b"q", false, "negated range rejects members"),
    (b"[*]", b"*", true, "star inside a class is literal"),
    (b"[?]", b"x", false, "? inside a class is literal"),
    // Stars.
    (b"*a*a*", b"aa", true, "two middle segments touching"),
    (b"*a*a*", b"a", false, "segments cannot overlap"),
    (b"*ab*ab", b"abab", true, "middle and anchored suffix"),
    (
        b"*ab*ab",
        b"aba",
        false,
        "suffix needs room after the middle",
    ),
    (b"a*b*c", b"abc", true, "empty stars"),
    (b"a*b*c", b"acb", false, "order matters"),
    (b"*?", b"", false, "star then one byte"),
    (b"*?", b"x", true, "star empty, ? one byte"),
    (b"*[ab]?*", b"zzbz", true, "class and ? in a middle segment"),
    (
        b"*aab*",
        b"aaab",
        true,
        "KMP must fall back inside a partial match",
    ),
    (b"*abab*", b"ababcabab", true, "border restart in KMP"),
    (
        b"*x?z*",
        b"xzxz",
        false,
        "anchor with a wildcard, never verified",
    ),
    (
        b"*x?z*",
        b"xyxxzz",
        true,
        "anchor hit after a failed verification",
    ),
    (
        b"*[a-c][a-c]*",
        b"xxbcx",
        true,
        "middle without any literal",
    ),
    (
        b"news.*.sports",
        b"news.europe.sports",
        true,
        "typical channel",
    ),
    (
        b"user:*:notifications",
        b"user:42:messages",
        false,
        "typical miss",
    ),
    (b"*\\*", b"a*", true, "escaped star as a suffix"),
    (
        b"*\\*",
        b"a",
        false,
        "escaped star is not a wildcard at the end",
    ),
];

#[test]
fn table() {
    for &(pattern, text, expected, reason) in CASES {
        let compiled = Pattern::new(pattern);
        assert_eq!(
            compiled.matches(text),
            expected,
            "{:?} vs {:?}: {reason}",
            pattern.escape_ascii().to_string(),
            text.escape_ascii().to_string()
        );
        assert_eq!(
            glob::matches(pattern, text),
            expected,
            "free function: {reason}"
        );
        assert_eq!(
            reference_matches(pattern, text),
            expected,
            "reference: {reason}"
        );
    }
}

#[test]
fn literal_parts() {
    // (pattern, literal prefix, literal suffix, is_literal)
    type Parts = (&'static [u8], &'static [u8], &'static [u8], bool);
    let cases: &[Parts] = &[
        (b"p42:*", b"p42:", b"", false),
        (b"*.sports", b"", b".sports", false),
        (b"news.*.sports", b"news.", b".sports", false),
        (b"a\\*b*c\\?", b"a*b", b"c?", false),
        (b"[f]oo*ba[r]", b"foo", b"bar", false),
        (b"exact", b"exact", b"exact", true),
        (b"ex\\[act", b"ex[act", b"ex[act", true),
        (b"", b"", b"", true),
        (b"a?b", b"a", b"b", false),
        (b"[]abc", b"", b"abc", false),
    ];
    for &(pattern, prefix, suffix, literal) in cases {
        let p = Pattern::new(pattern);
        assert_eq!(p.literal_prefix(), prefix, "prefix of {pattern:?}");
        assert_eq!(p.literal_suffix(), suffix, "suffix of {pattern:?}");
        assert_eq!(p.is_literal(), literal, "is_literal of {pattern:?}");
        assert_eq!(p.as_bytes(), pattern);
    }
}

/// Any pattern with a prefix/suffix only matches texts that carry them, and a
/// literal pattern matches exactly its prefix.
#[test]
fn literal_parts_are_sound() {
    let texts: &[&[u8]] = &[b"", b"a", b"ab", b"abc", b"a*b", b"xa*bcy", b"a*bc?"];
    for &(pattern, ..) in CASES {
        let p = Pattern::new(pattern);
        for text in texts.iter().chain([&pattern]) {
            if p.matches(text) {
                assert!(text.starts_with(p.literal_prefix()));
                assert!(text.ends_with(p.literal_suffix()));
                assert!(text.len() >= p.min_len());
                if let Some(len) = p.exact_len() {
                    assert_eq!(text.len(), len);
                }
                if p.is_literal() {
                    assert_eq!(*text, p.literal_prefix());
                }
            }
        }
    }
}

#[test]
fn equality_and_debug_use_source_bytes() {
    assert_eq!(Pattern::new(b"a*"), Pattern::new(b"a*"));
    assert_ne!(Pattern::new(b"[a]"), Pattern::new(b"a"));
    assert_eq!(
        format!("{:?}", Pattern::new(b"a\0*")),
        "Pattern(\"a\\x00*\")"
    );
}

/// Steps allowed for a pattern of length `m` against a text of length `n`.
fn bound(m: usize, n: usize) -> u64 {
    4 * (m as u64 + 1) * (n as u64 + 1)
}

fn steps(pattern: &[u8], text: &[u8]) -> u64 {
    let (matched, steps) = Pattern::new(pattern).matches_counting_steps(text);
    assert_eq!(matched, Pattern::new(pattern).matches(text));
    steps
}

fn star_a50_b(trailing_star: bool) -> Vec<u8> {
    let mut p = b"*".to_vec();
    p.extend([b'a'; 50]);
    p.push(b'b');
    if trailing_star {
        p.push(b'*');
    }
    p
}

/// Pathological inputs stay within O(m·n), and the common ones are linear:
/// doubling the text roughly doubles the work, it does not quadruple it.
#[test]
fn work_bound_on_pathological_inputs() {
    type TextOfLen = fn(usize) -> Vec<u8>;
    let cases: Vec<(Vec<u8>, TextOfLen)> = vec![
        (star_a50_b(false), |n| vec![b'a'; n]),
        (star_a50_b(true), |n| vec![b'a'; n]),
        (b"*a*a*a*a*a*a*a*a*a*a*b".to_vec(), |n| vec![b'a'; n]),
        (b"a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b".to_vec(), |n| {
            vec![b'a'; n]
        }),
        (b"*?a?a?a?a?a?a?b*".to_vec(), |n| vec![b'a'; n]),
        (b"*[ab][ab][ab][ab]c*".to_vec(), |n| b"ab".repeat(n / 2)),
        (b"*aaaaaaaaab*".to_vec(), |n| vec![b'a'; n]),
    ];
    for (pattern, text_of) in &cases {
        let small = steps(pattern, &text_of(10_000));
        let large = steps(pattern, &text_of(20_000));
        assert!(
            small <= bound(pattern.len(), 10_000),
            "{pattern:?}: {small}"
        );
        assert!(
            large <= bound(pattern.len(), 20_000),
            "{pattern:?}: {large}"
        );
        // Linear growth: at most 2.1× the work for twice the text.
        assert!(
            large * 10 <= small * 21,
            "{:?}: {small} -> {large}",
            pattern.escape_ascii().to_string()
        );
    }
    // The headline case does constant work: it compares the last 51
    // bytes of the text and stops.
    assert!(steps(&star_a50_b(false), &[b'a'; 10_000]) < 200);
    // With a trailing star the segment is searched: linear, not 51 × 10,000.
    assert!(steps(&star_a50_b(true), &[b'a'; 10_000]) < 4 * 10_000);
}

#[test]
fn huge_and_hostile_inputs() {
    let mib = 1 << 20;
    // A 1 MiB pattern of stars, and 100,000 stars with bytes between them.
    let stars = vec![b'*'; mib];
    assert!(Pattern::new(&stars).matches(b"anything"));
    let mut many = Vec::new();
    for _ in 0..100_000 {
        many.extend(b"*a");
    }
    many.push(b'*');
    let p = Pattern::new(&many);
    assert!(p.matches(&vec![b'a'; 100_000]));
    assert!(!p.matches(&vec![b'a'; 99_999]));
    // A 1 MiB class, and a 1 MiB unterminated class.
    let mut class = b"[".to_vec();
    class.extend(std::iter::repeat_n(b"a-z".as_slice(), mib / 3).flatten());
    class.push(b']');
    assert!(Pattern::new(&class).matches(b"q"));
    assert!(Pattern::new(&class[..class.len() - 1]).matches(b"q"));
    // Escapes, NUL and invalid UTF-8 in a 1 MiB pattern against a 1 MiB text.
    let noise: Vec<u8> = (0..mib).map(|i| (i * 7919 % 251) as u8).collect();
    let p = Pattern::new(&noise);
    let _ = p.matches(&noise);
    let _ = p.matches(b"");
    let (_, s) = p.matches_counting_steps(&noise[..4096]);
    assert!(s <= bound(noise.len(), 4096));
    // A lone backslash and a lone bracket at the end.
    assert!(Pattern::new(b"\\").matches(b"\\"));
    assert!(!Pattern::new(b"[").matches(b"["));
}

fn meta_byte() -> impl Strategy<Value = u8> {
    prop::sample::select(b"ab*?[]^-\\".to_vec())
}

fn text_byte() -> impl Strategy<Value = u8> {
    prop::sample::select(b"aabb*?[]^-\\".to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    /// The compiled matcher agrees with the reference on patterns and texts
    /// drawn from small, metacharacter-heavy alphabets.
    #[test]
    fn agrees_with_reference(
        pattern in prop::collection::vec(meta_byte(), 0..14),
        text in prop::collection::vec(text_byte(), 0..12),
    ) {
        let (matched, steps) = Pattern::new(&pattern).matches_counting_steps(&text);
        prop_assert_eq!(matched, reference_matches(&pattern, &text));
        prop_assert!(steps <= bound(pattern.len(), text.len()));
    }

    /// Patterns derived from the text (bytes replaced by `?`, classes or
    /// escapes, stars inserted) mostly match: this covers the positive side.
    #[test]
    fn agrees_with_reference_on_derived_patterns(
        text in prop::collection::vec(prop::sample::select(b"abc-]^\\".to_vec()), 0..16),
        edits in prop::collection::vec((0usize..16, 0u8..7), 0..8),
    ) {
        let mut pattern = Vec::new();
        for (i, &b) in text.iter().enumerate() {
            match edits.iter().find(|e| e.0 == i).map(|e| e.1) {
                Some(0) => pattern.push(b'?'),
                Some(1) => pattern.extend([b'*', b]),
                Some(2) => pattern.extend([b'[', b'\\', b, b']']),
                Some(3) => pattern.extend([b'[', b'^', b'x', b']']),
                Some(4) => pattern.extend([b'*', b'?', b'*']),
                Some(5) => pattern.extend([b'[', b'a', b'-', b'c', b']']),
                _ => pattern.extend([b'\\', b]),
            }
        }
        let (matched, steps) = Pattern::new(&pattern).matches_counting_steps(&text);
        prop_assert_eq!(matched, reference_matches(&pattern, &text));
        prop_assert!(steps <= bound(pattern.len(), text.len()));
    }
}
