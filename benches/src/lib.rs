//! Shared helpers for the tidings benches: the inputs each topic measures,
//! kept here so that every implementation in a group sees the same bytes.

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
}
