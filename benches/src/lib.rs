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

/// `n` distinct patterns of five shapes, published to a channel that
/// exactly two of them match:
///
/// - `i % 4 == 0`: `*:s{i}`, a leading `*` before a literal suffix;
/// - `i % 4 == 1`: `?{i}:*`, `?`-led, its literal at offset 1;
/// - `i % 4 == 2`: `[abc]{i}:*`, class-led, its literal at offset 1;
/// - `i % 4 == 3`: `*.{i}`, suffix only;
/// - the last three: `*x*`, `*y*`, `*z*`, with no literal at a fixed offset,
///   so an index must test them on every publish.
///
/// The channel is `b{a}:s{b}`, with `a` ≡ 2 and `b` ≡ 0 (mod 4) from the
/// middle of the set: `[abc]{a}:*` and `*:s{b}` match it and nothing else
/// does (it has no `.`, `x`, `y` or `z`).
///
/// # Panics
///
/// Panics if `n` < 16.
pub fn mixed_set(n: usize) -> PatternSet {
    assert!(n >= 16, "mixed_set needs at least 16 patterns");
    let shaped = n - 3;
    let mut patterns: Vec<String> = (0..shaped)
        .map(|i| match i % 4 {
            0 => format!("*:s{i}"),
            1 => format!("?{i}:*"),
            2 => format!("[abc]{i}:*"),
            _ => format!("*.{i}"),
        })
        .collect();
    patterns.extend(["*x*", "*y*", "*z*"].map(String::from));
    // One class-led and one suffix pattern match, from the middle of the set.
    let a = (shaped / 2) & !3 | 2;
    let b = (shaped / 2 + 4) & !3;
    PatternSet {
        name: format!("mixed_{n:06}"),
        patterns,
        channel: format!("b{a}:s{b}"),
        matching: 2,
    }
}

/// The pattern sets of the `index` group: prefix and mixed, at 1000, 10,000
/// and 100,000 patterns.
pub fn index_sets() -> Vec<PatternSet> {
    let sizes = [1_000, 10_000, 100_000];
    let mut sets: Vec<PatternSet> = sizes.iter().map(|&n| prefix_set(n)).collect();
    sets.extend(sizes.iter().map(|&n| mixed_set(n)));
    sets
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
        for set in [
            prefix_set(1000),
            mixed_set(1000),
            prefix_set(10_000),
            mixed_set(10_000),
        ] {
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
