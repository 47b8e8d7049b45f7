//! Shared helpers for the tidings benches: the inputs each topic measures,
//! kept here so that every implementation in a group sees the same bytes,
//! and the `index` group's peer, [`LinearScan`].

use std::collections::HashMap;
use std::sync::Arc;

use tidings_core::{Namespace, Pattern, Registry};

/// One glob benchmark input: a pattern, a text, and the answer every matcher
/// must give (checked once, outside the timed loop).
#[derive(Clone, Debug)]
pub struct GlobCase {
    /// The benchmark id's middle part, as in `glob/<name>/tidings`.
    pub name: &'static str,
    /// The pattern, ASCII and free of `[` and `\`, so peers without classes or
    /// escapes read it the same way.
    pub pattern: String,
    /// The text matched against `pattern`.
    pub text: String,
    /// Whether `text` matches `pattern`.
    pub expected: bool,
}

/// `*` + `a`×50 + `b`, with a trailing `*` when asked: the shape behind
/// Redis's CVE-2022-36021, exponential for a naive backtracking matcher.
pub fn star_a50_b(trailing_star: bool) -> String {
    let mut pattern = String::from("*");
    pattern.push_str(&"a".repeat(50));
    pattern.push('b');
    if trailing_star {
        pattern.push('*');
    }
    pattern
}

/// The glob cases, in the order they are reported.
///
/// - `typical_hit`: `news.*.sports` against `news.europe.sports`.
/// - `typical_miss`: `user:*:notifications` against `user:42:messages`.
/// - `pathological`: `*` + `a`×50 + `b` against `a`×10,000.
/// - `pathological_trailing_star`: `*` + `a`×50 + `b*` against `a`×10,000.
pub fn glob_cases() -> Vec<GlobCase> {
    let a_10000 = "a".repeat(10_000);
    vec![
        GlobCase {
            name: "typical_hit",
            pattern: "news.*.sports".into(),
            text: "news.europe.sports".into(),
            expected: true,
        },
        GlobCase {
            name: "typical_miss",
            pattern: "user:*:notifications".into(),
            text: "user:42:messages".into(),
            expected: false,
        },
        GlobCase {
            name: "pathological",
            pattern: star_a50_b(false),
            text: a_10000.clone(),
            expected: false,
        },
        GlobCase {
            name: "pathological_trailing_star",
            pattern: star_a50_b(true),
            text: a_10000,
            expected: false,
        },
    ]
}

/// One `index` benchmark input: a set of distinct patterns and a channel to
/// publish to, with the number of patterns that match it.
#[derive(Clone, Debug)]
pub struct PatternSet {
    /// The benchmark id's middle part, as in `index/prefix_100000/tidings`.
    pub name: String,
    /// The distinct patterns, each held by one pattern subscriber.
    pub patterns: Vec<String>,
    /// The channel published to; it also has one exact subscriber.
    pub channel: String,
    /// How many of `patterns` match `channel`.
    pub matching: usize,
}

/// `p{i}:*` for `i` in `0..n`, published to `p{n/2}:x`: exactly one pattern
/// matches, and every pattern shares the channel's first byte, so only an
/// index that reads past it can skip the rest.
pub fn prefix_set(n: usize) -> PatternSet {
    PatternSet {
        name: format!("prefix_{n:06}"),
        patterns: (0..n).map(|i| format!("p{i}:*")).collect(),
        channel: format!("p{}:x", n / 2),
        matching: 1,
    }
}

/// `n` distinct patterns led by a class or a `?`, published to a channel
/// that exactly one of them matches:
///
/// - even `i`: `[xyz]{i}.*`, a class, then a literal at offset 1;
/// - odd `i`: `?{i}:*`, a `?`, then a literal at offset 1.
///
/// The channel is `y{a}.z` with `a` even from the middle of the set: only
/// `[xyz]{a}.*` matches (no other id is followed by a `.`, and the channel
/// has no `:`).
pub fn class_led_set(n: usize) -> PatternSet {
    let a = (n / 2) & !1;
    PatternSet {
        name: format!("class_led_{n:06}"),
        patterns: (0..n)
            .map(|i| {
                if i % 2 == 0 {
                    format!("[xyz]{i}.*")
                } else {
                    format!("?{i}:*")
                }
            })
            .collect(),
        channel: format!("y{a}.z"),
        matching: 1,
    }
}

/// `n` distinct patterns whose only literal floats between two stars,
/// published to a channel that exactly one of them matches:
///
/// - even `i`: `*:{i}:*`;
/// - odd `i`: `*news.{i}*`.
///
/// The channel is `feed:{a}:x` with `a` even from the middle of the set:
/// only `*:{a}:*` matches (the channel has no `news.`, and `:{a}:` is the
/// only id between two colons).
pub fn infix_set(n: usize) -> PatternSet {
    let a = (n / 2) & !1;
    PatternSet {
        name: format!("infix_{n:06}"),
        patterns: (0..n)
            .map(|i| {
                if i % 2 == 0 {
                    format!("*:{i}:*")
                } else {
                    format!("*news.{i}*")
                }
            })
            .collect(),
        channel: format!("feed:{a}:x"),
        matching: 1,
    }
}

/// `n` distinct patterns that share one literal and differ in another,
/// published to a channel that exactly one of them matches:
///
/// - even `i`: `tenant:*:orders:{i}`, a shared prefix and a distinct
///   suffix;
/// - odd `i`: `user:*:{i}`, likewise.
///
/// The channel is `tenant:7:orders:{a}` with `a` even from the middle of the
/// set: it carries the literal every tenant pattern shares, and only
/// `tenant:*:orders:{a}` matches.
pub fn shared_prefix_set(n: usize) -> PatternSet {
    let a = (n / 2) & !1;
    PatternSet {
        name: format!("shared_prefix_{n:06}"),
        patterns: (0..n)
            .map(|i| {
                if i % 2 == 0 {
                    format!("tenant:*:orders:{i}")
                } else {
                    format!("user:*:{i}")
                }
            })
            .collect(),
        channel: format!("tenant:7:orders:{a}"),
        matching: 1,
    }
}

/// `n` distinct patterns with several literals between stars, published to
/// a channel that exactly one of them matches:
///
/// - even `i`: `*.{i}.*.json`, a floating literal and a suffix that every
///   such pattern shares;
/// - odd `i`: `*/{i}/*/v*`, two floating literals, one of them shared.
///
/// The channel is `feed.{a}.day.json` with `a` even from the middle of the
/// set: it carries `.json`, and only `*.{a}.*.json` matches.
pub fn several_literals_set(n: usize) -> PatternSet {
    let a = (n / 2) & !1;
    PatternSet {
        name: format!("several_literals_{n:06}"),
        patterns: (0..n)
            .map(|i| {
                if i % 2 == 0 {
                    format!("*.{i}.*.json")
                } else {
                    format!("*/{i}/*/v*")
                }
            })
            .collect(),
        channel: format!("feed.{a}.day.json"),
        matching: 1,
    }
}

/// The shapes of [`mixed_set`], by `i % 13`.
const MIXED_SHAPES: usize = 13;

/// `n` distinct patterns of every shape above and a few more, published to
/// a channel that exactly two of them match. By `i % 13`:
///
/// - 0: `p{i}:*` (prefix); 1: `*:s{i}` (suffix); 2: `*.{i}` (suffix);
/// - 3: `[xyz]{i}.*`, 4: `?{i}:*`, 5: `[abc]{i}:*` (class- or `?`-led);
/// - 6: `*:{i}:*`, 7: `*news.{i}*` (a floating literal only);
/// - 8: `tenant:*:orders:{i}`, 9: `user:*:{i}` (shared prefix, distinct
///   suffix);
/// - 10: `*.{i}.*.json`, 11: `*/{i}/*/v*` (several literals between stars);
/// - 12: `*-{i}-*` (a floating literal only);
/// - and three patterns whose only literal is one byte: `*x*`, `*y*`, `*z*`.
///
/// The channel is `tenant:{a}:orders:{b}`, with `a` ≡ 6 and `b` ≡ 8 (mod 13)
/// from the middle of the set: `*:{a}:*` and `tenant:*:orders:{b}` match it
/// and nothing else does (it has no `.`, `x`, `y`, `z`, `-`, `/`, `news`,
/// `:s` or leading `p`, `user`, class member or `?`-then-digit).
///
/// # Panics
///
/// Panics if `n` < 2 · 13 + 3.
pub fn mixed_set(n: usize) -> PatternSet {
    assert!(
        n > 2 * MIXED_SHAPES + 3,
        "mixed_set needs at least 30 patterns"
    );
    let shaped = n - 3;
    let mut patterns: Vec<String> = (0..shaped)
        .map(|i| match i % MIXED_SHAPES {
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
        })
        .collect();
    patterns.extend(["*x*", "*y*", "*z*"].map(String::from));
    let middle = shaped / 2 / MIXED_SHAPES * MIXED_SHAPES;
    let a = middle + 6;
    let b = middle + 8;
    PatternSet {
        name: format!("mixed_{n:06}"),
        patterns,
        channel: format!("tenant:{a}:orders:{b}"),
        matching: 2,
    }
}

/// The shape families of the `index` group, each at 1000, 10,000 and
/// 100,000 patterns: prefix, class- or `?`-led, floating literal only,
/// shared prefix with distinct suffixes, several literals between stars,
/// and all of them mixed.
pub fn index_sets() -> Vec<PatternSet> {
    let sizes = [1_000, 10_000, 100_000];
    let families: [fn(usize) -> PatternSet; 6] = [
        prefix_set,
        class_led_set,
        infix_set,
        shared_prefix_set,
        several_literals_set,
        mixed_set,
    ];
    families
        .iter()
        .flat_map(|family| sizes.iter().map(move |&n| family(n)))
        .collect()
}

/// The peer of the `index` group: publish routing as Redis 7 does it
/// (`pubsubPublishMessage`), an exact-channel hash lookup and then a test of
/// every pattern in turn, here with tidings's compiled matcher so that only
/// the routing strategy differs.
#[derive(Debug, Default)]
pub struct LinearScan {
    exact: HashMap<Box<[u8]>, Vec<u64>>,
    patterns: Vec<(Pattern, Vec<u64>)>,
}

impl LinearScan {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `subscriber` to the exact channel `channel`.
    pub fn subscribe(&mut self, subscriber: u64, channel: &[u8]) {
        self.exact
            .entry(channel.into())
            .or_default()
            .push(subscriber);
    }

    /// Adds a pattern held by `subscriber` alone. The caller passes each
    /// pattern once (the sets in this crate are distinct), so the scan tests
    /// each distinct pattern once, as the index does.
    pub fn psubscribe(&mut self, subscriber: u64, pattern: &[u8]) {
        self.patterns
            .push((Pattern::new(pattern), vec![subscriber]));
    }

    /// Calls `deliver` for every exact subscriber of `channel`, then for every
    /// subscriber of every pattern that matches it; returns the number of
    /// deliveries.
    pub fn publish(&self, channel: &[u8], mut deliver: impl FnMut(u64, Option<&Pattern>)) -> usize {
        let mut n = 0;
        if let Some(subs) = self.exact.get(channel) {
            for &s in subs {
                deliver(s, None);
            }
            n += subs.len();
        }
        for (pattern, subs) in &self.patterns {
            if pattern.matches(channel) {
                for &s in subs {
                    deliver(s, Some(pattern));
                }
                n += subs.len();
            }
        }
        n
    }
}

/// The routers of one `index` case, holding the same subscriptions: one
/// exact subscriber (id 0) of `set.channel`, and pattern `i` held by
/// subscriber `i + 1`.
pub fn build_routers(set: &PatternSet) -> (Registry<u64>, LinearScan) {
    let mut registry = Registry::new();
    let mut scan = LinearScan::new();
    registry
        .subscribe(Namespace::Channel, 0, set.channel.as_bytes(), |_| {})
        .expect("a bench registry is far below its capacity");
    scan.subscribe(0, set.channel.as_bytes());
    for (i, pattern) in set.patterns.iter().enumerate() {
        let id = i as u64 + 1;
        registry
            .subscribe(Namespace::Pattern, id, pattern.as_bytes(), |_| {})
            .expect("a bench registry is far below its capacity");
        scan.psubscribe(id, pattern.as_bytes());
    }
    (registry, scan)
}

/// The 16-byte payload every implementation in the `fanout` and
/// `contention` groups sends: cheap to clone (one reference count).
pub fn payload() -> Arc<[u8]> {
    Arc::from(&b"0123456789abcdef"[..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidings_core::glob::Pattern;

    #[test]
    fn glob_cases_give_their_expected_answer() {
        for case in glob_cases() {
            assert_eq!(
                Pattern::new(case.pattern.as_bytes()).matches(case.text.as_bytes()),
                case.expected,
                "{}",
                case.name
            );
            assert!(!case.pattern.contains(['[', '\\']), "{}", case.name);
        }
    }

    #[test]
    fn index_sets_match_as_documented_in_both_routers() {
        for set in index_sets()
            .into_iter()
            .filter(|s| s.patterns.len() <= 10_000)
        {
            let (registry, scan) = build_routers(&set);
            let mut from_index = Vec::new();
            let n = registry.publish(set.channel.as_bytes(), |s, p| {
                from_index.push((s, p.map(|p| p.as_bytes().to_vec())));
            });
            let mut from_scan = Vec::new();
            let m = scan.publish(set.channel.as_bytes(), |s, p| {
                from_scan.push((s, p.map(|p| p.as_bytes().to_vec())));
            });
            assert_eq!(n, 1 + set.matching, "{}", set.name);
            assert_eq!(m, n, "{}", set.name);
            from_index.sort();
            from_scan.sort();
            assert_eq!(from_index, from_scan, "{}", set.name);
            assert_eq!(registry.numpat(), set.patterns.len(), "{}", set.name);
        }
    }
}
