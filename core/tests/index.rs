//! The pattern index: examples of every operation and of each way a pattern
//! is filed (prefix, suffix, fixed offset, always-checked, never-matching),
//! and a proptest of random insert/remove sequences against a linear scan
//! with the reference matcher.
#![allow(clippy::unwrap_used)]

#[allow(unreachable_pub)]
mod support {
    pub mod reference_glob;
}

use proptest::prelude::*;
use support::reference_glob::reference_matches;
use tidings_core::glob::Pattern;
use tidings_core::index::PatternIndex;

/// The patterns matching `channel`, in the order the index reports them.
fn matches<V>(index: &PatternIndex<V>, channel: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    index.for_each_match(channel, |p, _| out.push(p.as_bytes().to_vec()));
    out
}

/// The values of the patterns matching `channel`, in reported order.
fn values<V: Copy>(index: &PatternIndex<V>, channel: &[u8]) -> Vec<V> {
    let mut out = Vec::new();
    index.for_each_match(channel, |_, value| out.push(*value));
    out
}

/// The patterns of `live` (in insertion order) that the reference matcher
/// says match `channel`.
fn scan<'a, V: 'a>(
    live: impl IntoIterator<Item = &'a (Vec<u8>, V)>,
    channel: &[u8],
) -> Vec<Vec<u8>> {
    live.into_iter()
        .filter(|(p, _)| reference_matches(p, channel))
        .map(|(p, _)| p.clone())
        .collect()
}

fn owned(patterns: &[&[u8]]) -> Vec<Vec<u8>> {
    patterns.iter().map(|p| p.to_vec()).collect()
}

/// Builds an index of `patterns`, each valued by its position.
fn index_of(patterns: &[&[u8]]) -> PatternIndex<usize> {
    let mut index = PatternIndex::new();
    for (i, p) in patterns.iter().enumerate() {
        assert_eq!(index.insert(p, i), None, "{:?}", String::from_utf8_lossy(p));
        index.check_invariants();
    }
    index
}

/// Asserts that the index agrees with a linear scan of `patterns` on every
/// channel given.
fn assert_agrees(index: &PatternIndex<usize>, patterns: &[&[u8]], channels: &[&[u8]]) {
    let live: Vec<(Vec<u8>, usize)> = patterns
        .iter()
        .enumerate()
        .map(|(i, p)| (p.to_vec(), i))
        .collect();
    for channel in channels {
        assert_eq!(
            matches(index, channel),
            scan(&live, channel),
            "channel {:?}",
            String::from_utf8_lossy(channel)
        );
    }
}

#[test]
fn insert_get_get_mut_get_or_insert_with_and_remove() {
    let mut index = PatternIndex::new();
    assert!(index.is_empty());
    assert!(index.get(b"news.*").is_none());
    assert!(index.get_mut(b"news.*").is_none());
    assert!(index.remove(b"news.*").is_none());

    assert_eq!(index.insert(b"news.*", 1), None);
    assert_eq!(index.insert(b"news.*", 2), Some(1), "replaces the value");
    assert_eq!(index.len(), 1);
    let (pattern, value) = index.get(b"news.*").unwrap();
    assert_eq!((pattern.as_bytes(), *value), (&b"news.*"[..], 2));
    assert!(index.get(b"news.").is_none(), "looked up by exact bytes");
    assert!(index.get(b"news.x").is_none(), "not by matching");

    *index.get_mut(b"news.*").unwrap() = 3;
    let (pattern, value, inserted) = index
        .get_or_insert_with(b"news.*", || panic!("present"))
        .unwrap();
    assert_eq!(
        (pattern.as_bytes(), *value, inserted),
        (&b"news.*"[..], 3, false)
    );
    *value = 4;
    let (pattern, value, inserted) = index.get_or_insert_with(b"*.sports", || 10).unwrap();
    assert_eq!(
        (pattern.as_bytes(), *value, inserted),
        (&b"*.sports"[..], 10, true)
    );
    assert_eq!(index.len(), 2);
    index.check_invariants();

    let mut all: Vec<(Vec<u8>, i32)> = index
        .iter()
        .map(|(p, v)| (p.as_bytes().to_vec(), *v))
        .collect();
    all.sort();
    assert_eq!(all, [(b"*.sports".to_vec(), 10), (b"news.*".to_vec(), 4)]);

    let (pattern, value) = index.remove(b"news.*").unwrap();
    assert_eq!((pattern.as_bytes(), value), (&b"news.*"[..], 4));
    assert!(
        pattern.matches(b"news.x"),
        "the removed pattern still works"
    );
    assert!(index.remove(b"news.*").is_none());
    assert!(index.get(b"news.*").is_none());
    assert_eq!(matches(&index, b"news.sports"), [b"*.sports"]);
    assert_eq!(index.remove(b"*.sports").map(|(_, v)| v), Some(10));
    assert!(index.is_empty());
    index.check_invariants();
}

#[test]
fn matches_are_reported_in_insertion_order() {
    let patterns: [&[u8]; 9] = [
        b"*s", b"n*", b"news", b"?ews", b"*", b"n?w*", b"[mn]ews", b"*e*", b"ne\\ws",
    ];
    let index = index_of(&patterns);
    assert_eq!(matches(&index, b"news"), owned(&patterns));

    let mut reversed = patterns;
    reversed.reverse();
    let index = index_of(&reversed);
    assert_eq!(
        matches(&index, b"news"),
        owned(&reversed),
        "the order follows insertion, not the kind of key"
    );
}

#[test]
fn reinserting_keeps_the_place_and_removing_loses_it() {
    let mut index = index_of(&[b"a*", b"*", b"?"]);
    assert_eq!(index.insert(b"a*", 9), Some(0));
    assert_eq!(matches(&index, b"a"), [&b"a*"[..], b"*", b"?"]);
    index.remove(b"a*");
    index.insert(b"a*", 3);
    assert_eq!(matches(&index, b"a"), [&b"*"[..], b"?", b"a*"]);
    let (_, _, inserted) = index.get_or_insert_with(b"*", || 7).unwrap();
    assert!(!inserted);
    assert_eq!(matches(&index, b"a"), [&b"*"[..], b"?", b"a*"]);
    index.check_invariants();
}

/// Whether `pattern` has a literal byte: a byte that is not `*`, `?` or
/// part of a class, an escaped byte, or a class of exactly one member
/// (counted with the reference matcher).
fn has_literal(pattern: &[u8]) -> bool {
    let mut i = 0;
    while let Some(&c) = pattern.get(i) {
        match c {
            b'*' | b'?' => i += 1,
            b'\\' => return true,
            b'[' => {
                let start = i;
                i += 1;
                if pattern.get(i) == Some(&b'^') {
                    i += 1;
                }
                while let Some(&c) = pattern.get(i) {
                    match (c, pattern.get(i + 1), pattern.get(i + 2)) {
                        (b'\\', Some(_), _) => i += 2,
                        (b']', _, _) => {
                            i += 1;
                            break;
                        }
                        (_, Some(b'-'), Some(_)) => i += 3,
                        _ => i += 1,
                    }
                }
                let class = &pattern[start..i];
                let members = (0..=255u8)
                    .filter(|&b| reference_matches(class, &[b]))
                    .count();
                if members == 1 {
                    return true;
                }
            }
            _ => return true,
        }
    }
    false
}

#[test]
fn always_checked_counts_only_patterns_without_a_literal_byte() {
    let literal_free: [&[u8]; 9] = [
        b"*",
        b"?*",
        b"[a-z]*",
        b"*?*",
        b"",
        b"?",
        b"[ab]",
        b"*[^]*",
        b"[ab]*[^x]",
    ];
    let with_literal: [&[u8]; 12] = [
        b"a*", b"*a", b"?a*", b"[a]*", b"\\*", b"a?c", b"*x*y", b"x*y*", b"*foo*", b"*?x?*",
        b"*[ab]x*", b"?*y*?",
    ];
    let never: [&[u8]; 3] = [b"[]x", b"x[", b"*[]*"];
    for p in literal_free {
        assert!(!has_literal(p), "{:?}", String::from_utf8_lossy(p));
    }
    for p in with_literal {
        assert!(has_literal(p), "{:?}", String::from_utf8_lossy(p));
    }
    let mut index = PatternIndex::new();
    for p in with_literal.iter().chain(&never) {
        index.insert(p, ());
    }
    assert_eq!(index.always_checked(), 0);
    // A channel that shares no byte with any of them tests none of them.
    assert_eq!(index.candidates(b"\x01\x02\x03"), 0);
    for (i, p) in literal_free.iter().enumerate() {
        index.insert(p, ());
        assert_eq!(index.always_checked(), i + 1);
        index.check_invariants();
    }
    assert_eq!(index.len(), 24);
    assert_eq!(index.candidates(b"\x01\x02\x03"), literal_free.len());
    index.insert(b"*", ());
    assert_eq!(index.always_checked(), 9, "a pattern is stored once");

    let mut all: Vec<&[u8]> = literal_free.to_vec();
    all.extend(with_literal);
    all.extend(never);
    for channel in [
        &b""[..],
        b"a",
        b"xfooy",
        b"abc",
        b"*",
        b"x1y",
        b"xay",
        b"[]x",
        b"axb",
        b"yxy",
    ] {
        let expected: Vec<&[u8]> = all
            .iter()
            .copied()
            .filter(|p| reference_matches(p, channel))
            .collect();
        let mut got = matches(&index, channel);
        got.sort();
        let mut expected = owned(&expected);
        expected.sort();
        assert_eq!(got, expected, "{:?}", String::from_utf8_lossy(channel));
    }

    index.remove(b"*?*");
    index.remove(b"[ab]");
    assert_eq!(index.always_checked(), 7);
    index.check_invariants();
    assert_eq!(
        matches(&index, b"xfooy"),
        [
            &b"*x*y"[..],
            b"x*y*",
            b"*foo*",
            b"*",
            b"?*",
            b"[a-z]*",
            b"*[^]*",
        ]
    );
}

#[test]
fn never_matching_patterns_are_held_but_never_matched() {
    let never: [&[u8]; 5] = [b"[]x", b"[]", b"a[", b"*[]*", b"[^\x00-\xff]"];
    let mut index = PatternIndex::new();
    for (i, p) in never.iter().enumerate() {
        assert!(Pattern::new(p).never_matches(), "{i}");
        index.insert(p, i);
    }
    index.insert(b"[^]", 10);
    assert_eq!(index.len(), 6, "held, and counted");
    assert_eq!(
        index.always_checked(),
        1,
        "only [^], which matches any byte"
    );
    assert_eq!(index.get(b"[]x").map(|(_, v)| *v), Some(0));
    for channel in [
        &b""[..],
        b"x",
        b"]x",
        b"[]x",
        b"a",
        b"a[",
        b"ab",
        b"*[]*",
        b"[]",
    ] {
        let expected: Vec<Vec<u8>> = if channel.len() == 1 {
            owned(&[b"[^]"])
        } else {
            Vec::new()
        };
        assert_eq!(matches(&index, channel), expected, "{:?}", channel);
    }
    for p in never {
        assert!(index.remove(p).is_some());
        index.check_invariants();
    }
    assert_eq!(index.len(), 1);
}

#[test]
fn patterns_with_the_same_fixed_literal_share_a_key() {
    // All filed under "news." at offset 0 from the start.
    let patterns: [&[u8]; 6] = [
        b"news.*",
        b"news.?*",
        b"news.[ab]*",
        b"news.*x",
        b"news.",
        b"news.?",
    ];
    let mut index = index_of(&patterns);
    let channels: [&[u8]; 8] = [
        b"news.", b"news.a", b"news.ax", b"news.x", b"news", b"news.ab", b"xnews.a", b"",
    ];
    assert_agrees(&index, &patterns, &channels);
    assert_eq!(
        matches(&index, b"news.a"),
        [&b"news.*"[..], b"news.?*", b"news.[ab]*", b"news.?"]
    );
    // Remove them one at a time, in an order unrelated to insertion: the
    // others stay reachable through the shared key.
    let mut live = patterns.to_vec();
    for p in [
        &b"news.?*"[..],
        b"news.",
        b"news.*",
        b"news.?",
        b"news.[ab]*",
    ] {
        index.remove(p);
        live.retain(|q| *q != p);
        index.check_invariants();
        let positions: Vec<&[u8]> = live.clone();
        let rebuilt: Vec<(Vec<u8>, usize)> = positions.iter().map(|p| (p.to_vec(), 0)).collect();
        for channel in channels {
            assert_eq!(matches(&index, channel), scan(&rebuilt, channel));
        }
    }
    assert_eq!(matches(&index, b"news.ax"), [b"news.*x"]);
}

#[test]
fn the_same_literal_at_different_places_is_told_apart() {
    let patterns: [&[u8]; 8] = [
        b"ab*", b"?ab*", b"??ab*", b"*ab", b"*ab?", b"*ab??", b"ab", b"?ab",
    ];
    let index = index_of(&patterns);
    assert_eq!(matches(&index, b"xxabxx"), [&b"??ab*"[..], b"*ab??"]);
    assert_eq!(matches(&index, b"ab"), [&b"ab*"[..], b"*ab", b"ab"]);
    assert_eq!(matches(&index, b"xab"), [&b"?ab*"[..], b"*ab", b"?ab"]);
    assert_eq!(
        matches(&index, b"abab"),
        [&b"ab*"[..], b"??ab*", b"*ab", b"*ab??"]
    );
    let channels: [&[u8]; 12] = [
        b"", b"a", b"b", b"ab", b"ba", b"xab", b"abx", b"xabx", b"abxx", b"xxab", b"ababab", b"aab",
    ];
    assert_agrees(&index, &patterns, &channels);
}

/// `(pattern, channels it matches, channels it does not)`.
type KeyCase = (
    &'static [u8],
    &'static [&'static [u8]],
    &'static [&'static [u8]],
);

#[test]
fn prefix_suffix_and_fixed_offset_keys() {
    let cases: [KeyCase; 9] = [
        (
            b"?ab*",
            &[b"xab", b"xabyy", b"?ab"],
            &[b"ab", b"abx", b"xxab", b"x"],
        ),
        (
            b"*cd?",
            &[b"cdx", b"zzcdx", b"cdcd?"],
            &[b"cd", b"cdxx", b"xcd", b""],
        ),
        (b"*cd??", &[b"cdxy", b"zcdxy"], &[b"cdx", b"zcdx", b"cdxyz"]),
        (
            b"a?c",
            &[b"abc", b"a?c", b"aac"],
            &[b"ac", b"abcd", b"xbc", b"ab"],
        ),
        (
            b"ab*cd",
            &[b"abcd", b"abXcd", b"abcdcd"],
            &[b"abc", b"abd", b"acd", b"bcd"],
        ),
        (
            b"x*longsuffix",
            &[b"xlongsuffix", b"x-longsuffix"],
            &[b"ylongsuffix", b"xlongsuffi"],
        ),
        (
            b"???abc*",
            &[b"...abc", b"...abcdef"],
            &[b"ab", b"abc", b"..abc", b"....abc"],
        ),
        (
            b"*abc???",
            &[b"abc...", b"xyzabc..."],
            &[b"abc", b"abc..", b"abc...."],
        ),
        (
            b"[xy]?ab[cd]e*",
            &[b"x.abce", b"y-abde!"],
            &[b"z.abce", b"x.abee", b"xab"],
        ),
    ];
    let mut index = PatternIndex::new();
    for (pattern, yes, no) in cases {
        index.insert(pattern, ());
        for channel in yes {
            assert!(
                matches(&index, channel).contains(&pattern.to_vec()),
                "{:?} should match {:?}",
                String::from_utf8_lossy(pattern),
                String::from_utf8_lossy(channel)
            );
        }
        for channel in no {
            assert!(
                !matches(&index, channel).contains(&pattern.to_vec()),
                "{:?} should not match {:?}",
                String::from_utf8_lossy(pattern),
                String::from_utf8_lossy(channel)
            );
        }
    }
    assert_eq!(index.always_checked(), 0, "every one has a fixed literal");
    index.check_invariants();
}

#[test]
fn escapes_and_single_byte_classes_are_literals() {
    let patterns: [&[u8]; 6] = [b"\\*ab*", b"[f]oo*", b"*\\?", b"\\", b"a\\[b*", b"*[\\]]"];
    let index = index_of(&patterns);
    assert_eq!(index.always_checked(), 0);
    assert_eq!(matches(&index, b"*abX"), [b"\\*ab*"]);
    assert!(matches(&index, b"xabX").is_empty());
    assert_eq!(matches(&index, b"foo1"), [b"[f]oo*"]);
    assert_eq!(matches(&index, b"what?"), [b"*\\?"]);
    assert!(matches(&index, b"whatx").is_empty());
    assert_eq!(matches(&index, b"\\"), [b"\\"]);
    assert_eq!(matches(&index, b"a[b]"), [&b"a\\[b*"[..], b"*[\\]]"]);
}

#[test]
fn one_mebibyte_patterns_and_channels() {
    const MIB: usize = 1 << 20;
    let body: Vec<u8> = (0..MIB).map(|i| b'a' + (i % 26) as u8).collect();
    let mut prefix = body.clone();
    prefix.push(b'*');
    let mut suffix = b"*".to_vec();
    suffix.extend_from_slice(&body);
    let mut index = PatternIndex::new();
    index.insert(&prefix, 1);
    index.insert(&suffix, 2);
    index.insert(&body, 3);
    index.insert(b"a*", 4);
    index.insert(b"*z", 5);
    index.check_invariants();
    assert_eq!(index.always_checked(), 0);

    assert_eq!(values(&index, &body), [1, 2, 3, 4]);
    let mut longer = body.clone();
    longer.push(b'z');
    assert_eq!(values(&index, &longer), [1, 4, 5]);
    let mut front = b"z".to_vec();
    front.extend_from_slice(&body);
    assert_eq!(values(&index, &front), [2]);
    let mut changed = body.clone();
    changed[MIB / 2] = b'!';
    assert_eq!(values(&index, &changed), [4]);
    assert_eq!(values(&index, &body[..MIB - 1]), [4]);
    assert_eq!(values(&index, b"a"), [4]);
    assert_eq!(values(&index, b""), Vec::<i32>::new());

    assert_eq!(index.remove(&prefix).map(|(_, v)| v), Some(1));
    assert_eq!(index.remove(&suffix).map(|(_, v)| v), Some(2));
    assert_eq!(index.remove(&body).map(|(_, v)| v), Some(3));
    assert_eq!(values(&index, &body), [4]);
    index.check_invariants();
}

#[test]
fn removing_everything_leaves_an_empty_index() {
    let mut patterns: Vec<Vec<u8>> = Vec::new();
    for i in 0..300u32 {
        let p = match i % 10 {
            0 => format!("user:{i}:*"),
            1 => format!("*.{i}"),
            2 => format!("?{i}*"),
            3 => format!("*{i}??"),
            4 => format!("*{i}*"),
            5 => format!("[]{i}"),
            6 => format!("x{i}"),
            7 => "*".repeat(i as usize % 4 + 1),
            8 => format!("[a-c]{}", i % 3),
            _ => format!("a{i}*b{i}"),
        };
        patterns.push(p.into_bytes());
    }
    let mut index = PatternIndex::new();
    for (i, p) in patterns.iter().enumerate() {
        index.insert(p, i);
    }
    patterns.sort();
    patterns.dedup();
    assert_eq!(index.len(), patterns.len());
    index.check_invariants();
    // Remove in a scrambled order, checking after every removal.
    let n = patterns.len();
    for k in 0..n {
        let p = &patterns[(k * 7919) % n];
        assert!(index.remove(p).is_some());
        index.check_invariants();
    }
    assert!(index.is_empty());
    assert_eq!(index.len(), 0);
    assert_eq!(index.always_checked(), 0);
    assert_eq!(index.iter().count(), 0);
    for channel in [&b""[..], b"user:1:x", b"a.10", b"x16"] {
        assert!(matches(&index, channel).is_empty());
    }
    // And it is usable again.
    index.insert(b"user:*", 0);
    assert_eq!(matches(&index, b"user:1"), [b"user:*"]);
    index.remove(b"user:*");
    index.check_invariants();
}

#[test]
fn many_patterns_sharing_key_shapes() {
    const N: u32 = 5_000;
    let mut index = PatternIndex::new();
    for i in 0..N {
        index.insert(format!("user:{i}:*").as_bytes(), i);
        index.insert(format!("*:{i}").as_bytes(), N + i);
        index.insert(format!("?{i}.*").as_bytes(), 2 * N + i);
    }
    index.insert(b"*", 3 * N);
    index.check_invariants();
    assert_eq!(index.len(), 3 * N as usize + 1);
    assert_eq!(index.always_checked(), 1);
    assert_eq!(values(&index, b"user:42:x"), [42, 3 * N]);
    assert_eq!(values(&index, b"user:4:x"), [4, 3 * N]);
    assert_eq!(values(&index, b"a:42"), [N + 42, 3 * N]);
    assert_eq!(values(&index, b"user:42:4242"), [42, N + 4242, 3 * N]);
    assert_eq!(values(&index, b"x4999.:7"), [N + 7, 2 * N + 4999, 3 * N]);
    assert_eq!(values(&index, b"user:5000:x"), [3 * N]);
    for i in (0..N).step_by(2) {
        index.remove(format!("user:{i}:*").as_bytes());
    }
    index.check_invariants();
    assert_eq!(values(&index, b"user:42:x"), [3 * N]);
    assert_eq!(values(&index, b"user:43:x"), [43, 3 * N]);
}

// ---------------------------------------------------------------- proptest

/// A literal run from a small alphabet, so that literals of different
/// patterns share bytes, grams and whole keys.
fn lit() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(b"aab:.".to_vec()), 1..11)
}

/// A one-byte element that is not a literal: a `?` or a class.
fn wild() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(vec![
        b"?".to_vec(),
        b"[ab]".to_vec(),
        b"[^a]".to_vec(),
        b"[a-c]".to_vec(),
    ])
}

/// Patterns of the index's shape families:
/// - a literal only between stars (`*lit*`), one or several (`*l1*l2*`);
/// - a prefix shared by many and a distinct suffix (`pre*suf`, `pre*?suf`);
/// - a `?` or a class, then a literal (`?lit*`, `[ab]lit*l2`);
/// - a literal, then stars and a floating literal and a suffix
///   (`lit*l2*l3`);
/// - and, as before, patterns over a metacharacter-heavy alphabet or over a
///   literal-heavy one (longer literal runs, several key lengths per table).
fn pattern() -> impl Strategy<Value = Vec<u8>> {
    let join = |parts: Vec<Vec<u8>>| parts.concat();
    prop_oneof![
        prop::collection::vec(prop::sample::select(b"ab:.*?[]^-\\".to_vec()), 0..8),
        prop::collection::vec(prop::sample::select(b"aab.*?".to_vec()), 0..12),
        lit().prop_map(move |l| join(vec![b"*".to_vec(), l, b"*".to_vec()])),
        prop::collection::vec(lit(), 2..4).prop_map(|ls| {
            let mut p = b"*".to_vec();
            for l in ls {
                p.extend(l);
                p.push(b'*');
            }
            p
        }),
        (
            prop::sample::select(vec![b"ab:".to_vec(), b"a.".to_vec()]),
            prop::option::of(wild()),
            lit()
        )
            .prop_map(move |(pre, w, suf)| join(vec![
                pre,
                b"*".to_vec(),
                w.unwrap_or_default(),
                suf
            ])),
        (
            prop::collection::vec(wild(), 1..3),
            lit(),
            prop::option::of(lit())
        )
            .prop_map(move |(ws, l, l2)| {
                let mut p = ws.concat();
                p.extend(l);
                p.push(b'*');
                p.extend(l2.unwrap_or_default());
                p
            }),
        (lit(), lit(), lit()).prop_map(move |(a, b, c)| join(vec![
            a,
            b"*".to_vec(),
            b,
            b"*?".to_vec(),
            c
        ])),
    ]
}

fn channel() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(prop::sample::select(b"aab:.-]^\\*?[".to_vec()), 0..10),
        prop::collection::vec(prop::sample::select(b"aab:.".to_vec()), 0..30),
    ]
}

/// A text likely to match `pattern`: stars become nothing or one byte,
/// `?` a byte, escapes their byte, classes (roughly) their first member.
fn derive(pattern: &[u8], fill: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = pattern.get(i) {
        i += 1;
        match c {
            b'*' => out.extend(fill.then_some(b'a')),
            b'?' => out.push(b'b'),
            b'\\' => out.push(pattern.get(i).copied().unwrap_or(b'\\')),
            b'[' => {
                let negate = pattern.get(i) == Some(&b'^');
                i += usize::from(negate);
                let first = pattern.get(i).copied();
                while pattern.get(i).is_some_and(|&b| b != b']') {
                    i += 1;
                }
                out.push(if negate { b':' } else { first.unwrap_or(b'a') });
            }
            c => out.push(c),
        }
        if c == b'\\' || c == b'[' {
            i += 1;
        }
    }
    out
}

#[derive(Clone, Debug)]
enum IndexOp {
    Insert(usize, u32),
    GetOrInsert(usize, u32),
    Remove(usize),
}

fn index_op() -> impl Strategy<Value = IndexOp> {
    (0u8..5, 0usize..10, 0u32..1000).prop_map(|(code, at, value)| match code {
        0..=1 => IndexOp::Insert(at, value),
        2 => IndexOp::GetOrInsert(at, value),
        _ => IndexOp::Remove(at),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    /// Random inserts, get-or-inserts and removals over a small pool of
    /// patterns (so duplicates and removals hit), checked after every step:
    /// invariants, len, get, always_checked, and for every channel the
    /// ordered matches against a linear scan of the live patterns in
    /// insertion order.
    #[test]
    fn agrees_with_linear_scan(
        pool in prop::collection::vec(pattern(), 1..10),
        ops in prop::collection::vec(index_op(), 0..20),
        channels in prop::collection::vec(channel(), 0..6),
    ) {
        let mut index = PatternIndex::new();
        // Live patterns in insertion order, with their values.
        let mut live: Vec<(Vec<u8>, u32)> = Vec::new();
        let mut probes: Vec<Vec<u8>> = channels;
        for p in &pool {
            probes.push(p.clone());
            probes.push(derive(p, false));
            probes.push(derive(p, true));
        }
        for op in &ops {
            let touched = match *op {
                IndexOp::Insert(at, value) => {
                    let p = &pool[at % pool.len()];
                    let old = index.insert(p, value);
                    let expected = match live.iter_mut().find(|(q, _)| q == p) {
                        Some((_, v)) => Some(std::mem::replace(v, value)),
                        None => {
                            live.push((p.clone(), value));
                            None
                        }
                    };
                    prop_assert_eq!(old, expected);
                    p
                }
                IndexOp::GetOrInsert(at, value) => {
                    let p = &pool[at % pool.len()];
                    let (pattern, got, inserted) = index.get_or_insert_with(p, || value).unwrap();
                    prop_assert_eq!(pattern.as_bytes(), &p[..]);
                    let (got, inserted) = (*got, inserted);
                    match live.iter().find(|(q, _)| q == p) {
                        Some(&(_, v)) => prop_assert_eq!((got, inserted), (v, false)),
                        None => {
                            prop_assert_eq!((got, inserted), (value, true));
                            live.push((p.clone(), value));
                        }
                    }
                    p
                }
                IndexOp::Remove(at) => {
                    let p = &pool[at % pool.len()];
                    let removed = index.remove(p).map(|(q, v)| (q.as_bytes().to_vec(), v));
                    let expected = live
                        .iter()
                        .position(|(q, _)| q == p)
                        .map(|i| live.remove(i));
                    prop_assert_eq!(removed, expected);
                    p
                }
            };
            index.check_invariants();
            prop_assert_eq!(index.len(), live.len());
            prop_assert_eq!(index.is_empty(), live.is_empty());
            let always = live
                .iter()
                .filter(|(p, _)| !Pattern::new(p).never_matches() && !has_literal(p))
                .count();
            prop_assert_eq!(index.always_checked(), always);
            // The keying rule: a channel that shares no byte with any
            // pattern tests only the patterns without a literal byte.
            prop_assert_eq!(index.candidates(b"\x01\x02"), always);
            prop_assert_eq!(
                index.get(touched).map(|(p, v)| (p.as_bytes().to_vec(), *v)),
                live.iter().find(|(q, _)| q == touched).cloned()
            );
            for probe in &probes {
                prop_assert_eq!(
                    matches(&index, probe),
                    scan(&live, probe),
                    "channel {:?}",
                    String::from_utf8_lossy(probe)
                );
            }
        }
        let mut all: Vec<(Vec<u8>, u32)> =
            index.iter().map(|(p, v)| (p.as_bytes().to_vec(), *v)).collect();
        all.sort();
        let mut expected = live.clone();
        expected.sort();
        prop_assert_eq!(all, expected);
        for (p, _) in &live {
            prop_assert!(index.remove(p).is_some());
            index.check_invariants();
        }
        prop_assert!(index.is_empty());
    }
}

/// Removing many keys rebuilds a table's probe filter; the patterns that
/// remain are still found, and whole-key patterns (`p{i}:*`) match exactly
/// the channels that carry their literal.
#[test]
fn filter_rebuild_after_many_removals_keeps_every_live_key() {
    let mut index = PatternIndex::new();
    for i in 0..600 {
        index.insert(format!("p{i}:*").as_bytes(), i);
        index.insert(format!("*.s{i}").as_bytes(), i);
    }
    for i in (0..600).filter(|i| i % 5 != 0) {
        assert!(index.remove(format!("p{i}:*").as_bytes()).is_some());
        assert!(index.remove(format!("*.s{i}").as_bytes()).is_some());
    }
    index.check_invariants();
    for i in 0..600 {
        let mut hits = Vec::new();
        index.for_each_match(format!("p{i}:x.s{i}").as_bytes(), |p, v| {
            hits.push((p.as_bytes().to_vec(), *v))
        });
        if i % 5 == 0 {
            assert_eq!(
                hits,
                [
                    (format!("p{i}:*").into_bytes(), i),
                    (format!("*.s{i}").into_bytes(), i)
                ]
            );
        } else {
            assert!(hits.is_empty(), "{i}: {hits:?}");
        }
        // A channel that carries the key bytes but not at the right place.
        let mut none = 0;
        index.for_each_match(format!("xp{i}:").as_bytes(), |_, _| none += 1);
        assert_eq!(none, 0);
    }
}

// ------------------------------------------------------- step counts

/// One shape family: its pattern number `i`, and channels to publish to.
/// Each matches only patterns below 1000 (so the same ones at both sizes),
/// or none; some nearly carry the key of a pattern above 1000.
struct Family {
    name: &'static str,
    pattern: fn(usize) -> String,
    channels: &'static [&'static str],
}

/// The shapes of the mixed family, by `i % 13`.
fn mixed(i: usize) -> String {
    match i % 13 {
        0 => format!("p{i}:*"),
        1 => format!("*:s{i}"),
        2 => format!("*.{i}"),
        3 => format!("[xyz]{i}.*"),
        4 => format!("?{i}:*"),
        5 => format!("[abc]{i}:*"),
        6 => format!("*:{i}:*"),
        7 => format!("*news.{i}*"),
        8 => format!("tenant:*:orders:{i}"),
        9 => format!("user:*:{i}"),
        10 => format!("*.{i}.*.json"),
        11 => format!("*/{i}/*/v*"),
        _ => format!("*-{i}-*"),
    }
}

const FAMILIES: [Family; 6] = [
    Family {
        name: "prefix",
        pattern: |i| format!("p{i}:*"),
        channels: &["p500:x", "p7:", "p:x", "q500:x", "p5000;x"],
    },
    Family {
        name: "class or ? then a literal",
        pattern: |i| {
            if i % 2 == 0 {
                format!("[xyz]{i}.*")
            } else {
                format!("?{i}:*")
            }
        },
        channels: &["y500.z", "q501:r", "y501.z", "w500.z", "y5000;z"],
    },
    Family {
        name: "a literal only between stars",
        pattern: |i| {
            if i % 2 == 0 {
                format!("*:{i}:*")
            } else {
                format!("*news.{i}*")
            }
        },
        channels: &[
            "feed:500:x",
            "a.news.501.b",
            "news.9",
            "feed:500:news.501",
            "x:5000;y",
            "nothing",
        ],
    },
    Family {
        name: "a shared prefix, a distinct suffix",
        pattern: |i| {
            if i % 2 == 0 {
                format!("tenant:*:orders:{i}")
            } else {
                format!("user:*:{i}")
            }
        },
        channels: &[
            "tenant:7:orders:500",
            "user:9:501",
            "tenant:7:orders:",
            "user:9:x",
            "tenant:7:orders:5000x",
        ],
    },
    Family {
        name: "several literals between stars",
        pattern: |i| {
            if i % 2 == 0 {
                format!("*.{i}.*.json")
            } else {
                format!("*/{i}/*/v*")
            }
        },
        channels: &[
            "feed.500.day.json",
            "a/501/b/v1",
            "feed.500.day.xml",
            "x.json",
            "a.5000;day.json",
        ],
    },
    Family {
        name: "mixed",
        pattern: mixed,
        channels: &[
            "tenant:500:orders:502",
            "p13:x",
            "x.news.514.json",
            "a/505/b/v2",
            "y510.z-519-",
            "user:1:516",
            "zz",
        ],
    },
];

/// The candidates (patterns tested with the matcher) and the matches of a
/// publish to each channel, with patterns `0..n` of `family`.
fn counts(family: &Family, n: usize) -> Vec<(usize, Vec<Vec<u8>>)> {
    let mut index = PatternIndex::new();
    for i in 0..n {
        index.insert((family.pattern)(i).as_bytes(), i);
    }
    assert_eq!(index.len(), n, "{}", family.name);
    assert_eq!(index.always_checked(), 0, "{}", family.name);
    family
        .channels
        .iter()
        .map(|c| {
            (
                index.candidates(c.as_bytes()),
                matches(&index, c.as_bytes()),
            )
        })
        .collect()
}

/// For every shape family, a publish examines the same candidates with
/// 1,000 patterns as with 100,000 (the same 1,000 and 99,000 that do not
/// match): the cost does not grow with the patterns that share no key with
/// the channel. And it examines few: at most one or two per pattern that
/// matches, plus the first pattern filed under a shared literal.
#[test]
fn candidates_do_not_grow_with_non_matching_patterns() {
    std::thread::scope(|scope| {
        for family in &FAMILIES {
            scope.spawn(move || {
                let small = counts(family, 1_000);
                let large = counts(family, 100_000);
                for ((channel, (c_small, m_small)), (c_large, m_large)) in
                    family.channels.iter().zip(&small).zip(&large)
                {
                    assert_eq!(
                        m_small, m_large,
                        "{}: {channel} matches the same patterns",
                        family.name
                    );
                    assert_eq!(
                        c_small, c_large,
                        "{}: candidates for {channel} at 1k and 100k",
                        family.name
                    );
                    assert!(
                        *c_large <= 2 * m_large.len() + 2,
                        "{}: {c_large} candidates for {channel}, {} matches",
                        family.name,
                        m_large.len()
                    );
                }
                // Every channel here matches a pattern, or none.
                assert!(
                    small.iter().any(|(_, m)| !m.is_empty()),
                    "{}: some channel matches",
                    family.name
                );
            });
        }
    });
}
