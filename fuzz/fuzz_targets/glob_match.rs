//! Fuzzes `tidings_core::glob::Pattern` against the reference transliteration
//! of Redis's `stringmatchlen`, and checks the matcher's own promises.
//!
//! Each input is one pattern and a few texts, matched against one compiled
//! pattern. Pattern bytes are usually mapped onto a small alphabet heavy in
//! metacharacters (`* ? [ ] ^ - \`), and texts are often built from the
//! pattern itself, so that classes, escapes, ranges and matches are frequent.
//!
//! For every (pattern, text):
//! - when both are at most [`DIFF_MAX`] bytes, `matches` agrees with the
//!   reference matcher;
//! - at any size, `matches`, `matches_counting_steps().0` and `glob::matches`
//!   agree, and the step count is at most `4 · (len(pattern) + 1) ·
//!   (len(text) + 1)`;
//! - a match starts with `literal_prefix`, ends with `literal_suffix`, is at
//!   least `min_len` long, has length `exact_len` when that is known, never
//!   happens for a `never_matches` pattern, and equals the prefix for an
//!   `is_literal` pattern.
//!
//! Inputs larger than [`MAX_TOTAL`] bytes are rejected.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::{Corpus, fuzz_target};
use tidings_core::glob::{self, Pattern};

#[path = "../../core/tests/support/reference_glob.rs"]
mod reference_glob;

/// Inputs whose pattern and texts together exceed this are rejected.
const MAX_TOTAL: usize = 64 * 1024;

/// Patterns and texts up to this length are compared with the reference
/// matcher, which is memoized but still allocates `O(m · n)`.
const DIFF_MAX: usize = 64;

/// The alphabet mapped pattern bytes are drawn from: metacharacters first,
/// a few literals, NUL and a high byte (for unsigned ranges).
const PATTERN_ALPHABET: &[u8] = b"**??[[]]^-\\\\aaabbc!\0\x80\xff";

/// The alphabet mapped text bytes are drawn from: mostly `a` and `b`, plus
/// the bytes a pattern can name literally or through a range.
const TEXT_ALPHABET: &[u8] = b"aaaabbbc]^_-\\*?[!\0\x80\xff";

/// In mapped bytes, this byte means "take the next byte as it is".
const RAW_ESCAPE: u8 = 0xFF;

/// Fuzzer bytes, and how they become pattern or text bytes.
#[derive(Arbitrary, Debug)]
enum Bytes {
    /// Each byte picks from the alphabet, except that [`RAW_ESCAPE`] passes
    /// the following byte through unchanged.
    Mapped(Vec<u8>),
    /// Used as they are.
    Raw(Vec<u8>),
}

impl Bytes {
    fn len(&self) -> usize {
        match self {
            Bytes::Mapped(v) | Bytes::Raw(v) => v.len(),
        }
    }

    fn decode(&self, alphabet: &[u8]) -> Vec<u8> {
        match self {
            Bytes::Raw(v) => v.clone(),
            Bytes::Mapped(v) => {
                let mut out = Vec::with_capacity(v.len());
                let mut bytes = v.iter();
                while let Some(&b) = bytes.next() {
                    if b == RAW_ESCAPE {
                        if let Some(&raw) = bytes.next() {
                            out.push(raw);
                        }
                    } else {
                        out.push(pick(alphabet, b));
                    }
                }
                out
            }
        }
    }
}

/// Where a text comes from.
#[derive(Arbitrary, Debug)]
enum Text {
    /// Independent of the pattern.
    Bytes(Bytes),
    /// Built by walking the pattern, with these bytes as the choices: usually
    /// a match or a near miss.
    FromPattern(Vec<u8>),
}

impl Text {
    fn len(&self) -> usize {
        match self {
            Text::Bytes(b) => b.len(),
            Text::FromPattern(choices) => choices.len(),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    pattern: Bytes,
    texts: Vec<Text>,
}

fn pick(alphabet: &[u8], b: u8) -> u8 {
    alphabet[usize::from(b) % alphabet.len()]
}

/// Builds a text that the pattern probably matches, reading each choice from
/// `choices` (zeros once they run out). A few choices drop or double an
/// element, to make near misses. This is a heuristic, not a parser: the
/// differential check decides what is right.
fn text_from_pattern(pattern: &[u8], choices: &[u8]) -> Vec<u8> {
    let mut choices = choices.iter().copied().chain(core::iter::repeat(0));
    let mut next = move || choices.next().unwrap_or(0);
    let mut text = Vec::new();
    let mut i = 0;
    while i < pattern.len() {
        let start = text.len();
        match pattern[i] {
            b'*' => {
                for _ in 0..next() % 4 {
                    text.push(pick(TEXT_ALPHABET, next()));
                }
                i += 1;
            }
            b'?' => {
                text.push(pick(TEXT_ALPHABET, next()));
                i += 1;
            }
            b'\\' => {
                text.push(pattern.get(i + 1).copied().unwrap_or(b'\\'));
                i += 2;
            }
            b'[' => {
                i += 1;
                let negate = pattern.get(i) == Some(&b'^');
                if negate {
                    i += 1;
                }
                // Collect the class body, to pick one of its bytes.
                let mut members = Vec::new();
                while let Some(&c) = pattern.get(i) {
                    match c {
                        b'\\' if i + 1 < pattern.len() => {
                            members.push(pattern[i + 1]);
                            i += 2;
                        }
                        b']' => {
                            i += 1;
                            break;
                        }
                        _ => {
                            members.push(c);
                            i += 1;
                        }
                    }
                }
                let c = next();
                if negate || members.is_empty() {
                    text.push(pick(TEXT_ALPHABET, c));
                } else {
                    text.push(members[usize::from(c) % members.len()]);
                }
            }
            c => {
                text.push(c);
                i += 1;
            }
        }
        match next() % 16 {
            0 => text.truncate(start),
            1 => text.extend_from_within(start..),
            _ => {}
        }
    }
    text
}

/// The most steps `matches_counting_steps` may take.
fn step_bound(pattern_len: usize, text_len: usize) -> u64 {
    4 * (pattern_len as u64 + 1) * (text_len as u64 + 1)
}

fn check(pattern: &[u8], compiled: &Pattern, text: &[u8]) {
    let shown = || {
        format!(
            "pattern {:?} ({} bytes), text {:?} ({} bytes)",
            pattern.escape_ascii().to_string(),
            pattern.len(),
            text.escape_ascii().to_string(),
            text.len()
        )
    };
    let matched = compiled.matches(text);
    let (counted, steps) = compiled.matches_counting_steps(text);
    assert_eq!(
        matched,
        counted,
        "matches_counting_steps disagrees: {}",
        shown()
    );
    assert_eq!(
        matched,
        glob::matches(pattern, text),
        "glob::matches disagrees: {}",
        shown()
    );
    let bound = step_bound(pattern.len(), text.len());
    assert!(
        steps <= bound,
        "{steps} steps exceed the bound {bound}: {}",
        shown()
    );
    if pattern.len() <= DIFF_MAX && text.len() <= DIFF_MAX {
        let expected = reference_glob::reference_matches(pattern, text);
        assert_eq!(
            matched,
            expected,
            "tidings says {matched}, the reference says {expected}: {}",
            shown()
        );
    }
    if matched {
        assert!(
            !compiled.never_matches(),
            "never_matches but matched: {}",
            shown()
        );
        assert!(
            text.starts_with(compiled.literal_prefix()),
            "match lacks the literal prefix {:?}: {}",
            compiled.literal_prefix().escape_ascii().to_string(),
            shown()
        );
        assert!(
            text.ends_with(compiled.literal_suffix()),
            "match lacks the literal suffix {:?}: {}",
            compiled.literal_suffix().escape_ascii().to_string(),
            shown()
        );
        assert!(
            text.len() >= compiled.min_len(),
            "match shorter than min_len {}: {}",
            compiled.min_len(),
            shown()
        );
        if let Some(len) = compiled.exact_len() {
            assert_eq!(text.len(), len, "match not of exact_len: {}", shown());
        }
        if compiled.is_literal() {
            assert_eq!(
                text,
                compiled.literal_prefix(),
                "literal pattern matched another text: {}",
                shown()
            );
        }
    }
}

/// Properties of the compiled pattern alone.
fn check_pattern(pattern: &[u8], compiled: &Pattern) {
    let shown = pattern.escape_ascii().to_string();
    assert_eq!(compiled.as_bytes(), pattern);
    assert!(
        compiled.literal_prefix().len() <= compiled.min_len(),
        "{shown:?}"
    );
    assert!(
        compiled.literal_suffix().len() <= compiled.min_len(),
        "{shown:?}"
    );
    if let Some(len) = compiled.exact_len() {
        assert_eq!(len, compiled.min_len(), "{shown:?}");
    }
    if compiled.is_literal() {
        assert!(!compiled.never_matches(), "{shown:?}");
        assert_eq!(
            compiled.literal_prefix(),
            compiled.literal_suffix(),
            "{shown:?}"
        );
        assert_eq!(
            compiled.exact_len(),
            Some(compiled.literal_prefix().len()),
            "{shown:?}"
        );
        // The one text a literal pattern matches.
        check(pattern, compiled, compiled.literal_prefix());
        assert!(compiled.matches(compiled.literal_prefix()), "{shown:?}");
    }
}

fuzz_target!(|input: Input| -> Corpus {
    let total = input.pattern.len() + input.texts.iter().map(Text::len).sum::<usize>();
    if total > MAX_TOTAL {
        return Corpus::Reject;
    }
    let pattern = input.pattern.decode(PATTERN_ALPHABET);
    let compiled = Pattern::new(&pattern);
    check_pattern(&pattern, &compiled);
    check(&pattern, &compiled, b"");
    for text in &input.texts {
        let text = match text {
            Text::Bytes(bytes) => bytes.decode(TEXT_ALPHABET),
            Text::FromPattern(choices) => text_from_pattern(&pattern, choices),
        };
        check(&pattern, &compiled, &text);
    }
    Corpus::Keep
});
