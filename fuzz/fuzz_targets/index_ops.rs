//! Fuzzes `tidings_core::index::PatternIndex` against a linear scan: a list
//! of the live patterns in insertion order, each matched with the reference
//! transliteration of Redis's `stringmatchlen`.
//!
//! Each input is a sequence of inserts, removals and publishes. After every
//! operation the index's `check_invariants` runs, and its length and
//! always-check count are compared with the model; every publish compares
//! the ordered matches with the scan, and checks the keying rule: a channel
//! made of bytes that no pattern holds has only the patterns without a
//! literal byte as candidates. At the end every pattern is removed and the
//! index must be empty.
//!
//! Patterns are built from pieces (literal runs, stars, `?`, classes,
//! escapes) over a small alphabet, so that literals of different patterns
//! share grams and fixed keys, and channels are built from the patterns
//! themselves, so that they match or nearly do. Inputs of more than
//! [`MAX_OPS`] operations are rejected.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::{Corpus, fuzz_target};
use tidings_core::index::PatternIndex;

#[path = "../../core/tests/support/reference_glob.rs"]
mod reference_glob;

use reference_glob::reference_matches;

/// Operations per input; longer inputs are rejected.
const MAX_OPS: usize = 128;

/// Pieces per pattern, bytes per literal run and per channel.
const MAX_PIECES: usize = 12;
const MAX_RUN: usize = 12;
const MAX_CHANNEL: usize = 48;

/// Bytes literal runs and filler are drawn from.
const ALPHABET: &[u8] = b"aab:.-x\0\xff";

/// One piece of a pattern.
#[derive(Arbitrary, Debug)]
enum Piece {
    /// A literal run of these (mapped) bytes.
    Literal(Vec<u8>),
    Star,
    Any,
    /// A class from a fixed list: members, ranges, negation, one member.
    Class(u8),
    /// A backslash and a mapped byte (a metacharacter, sometimes).
    Escape(u8),
}

const CLASSES: [&[u8]; 6] = [b"[ab]", b"[^a]", b"[a-c]", b"[:]", b"[]", b"[^]"];

#[derive(Arbitrary, Debug)]
enum Channel {
    /// Mapped bytes.
    Bytes(Vec<u8>),
    /// Built from pattern `k` of the pool: stars become these filler bytes.
    FromPattern(u8, Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Op {
    Insert(u8),
    Remove(u8),
    Publish(Channel),
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// The patterns operations pick from (by index, modulo the length).
    pool: Vec<Vec<Piece>>,
    ops: Vec<Op>,
}

fn map(b: u8) -> u8 {
    ALPHABET[usize::from(b) % ALPHABET.len()]
}

fn build(pieces: &[Piece]) -> Vec<u8> {
    let mut p = Vec::new();
    for piece in pieces.iter().take(MAX_PIECES) {
        match piece {
            Piece::Literal(bytes) => p.extend(bytes.iter().take(MAX_RUN).map(|&b| map(b))),
            Piece::Star => p.push(b'*'),
            Piece::Any => p.push(b'?'),
            Piece::Class(k) => p.extend_from_slice(CLASSES[usize::from(*k) % CLASSES.len()]),
            Piece::Escape(b) => {
                p.push(b'\\');
                p.push(b"*?[ab"[usize::from(*b) % 5]);
            }
        }
    }
    p
}

/// A channel that `pattern` probably matches: stars take filler bytes.
fn channel_from(pattern: &[u8], filler: &[u8]) -> Vec<u8> {
    let mut fill = filler.iter().map(|&b| map(b));
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&c) = pattern.get(i) {
        i += 1;
        match c {
            b'*' => out.extend(fill.next()),
            b'?' => out.push(fill.next().unwrap_or(b'a')),
            b'\\' => {
                out.push(pattern.get(i).copied().unwrap_or(b'\\'));
                i += 1;
            }
            b'[' => {
                // Every class of CLASSES admits `a`, `b` or `:`; the empty
                // one admits nothing, and a near miss is fine too.
                let end = pattern[i..].iter().position(|&b| b == b']').map_or(pattern.len(), |e| i + e + 1);
                out.push(if pattern[i..end].starts_with(b"^a") { b'b' } else if pattern[i..end].starts_with(b":") { b':' } else { b'a' });
                i = end;
            }
            c => out.push(c),
        }
    }
    out.truncate(MAX_CHANNEL * 2);
    out
}

/// Whether `pattern` has a literal byte, from its pieces' bytes: a byte
/// outside `* ? [ ] ^ -` classes, or an escape, or the one-member class.
fn has_literal(pattern: &[u8]) -> bool {
    let mut i = 0;
    while let Some(&c) = pattern.get(i) {
        match c {
            b'*' | b'?' => i += 1,
            b'\\' => return true,
            b'[' => {
                let end = pattern[i..].iter().position(|&b| b == b']').map_or(pattern.len(), |e| i + e + 1);
                let class = &pattern[i..end];
                let members = (0..=255u8).filter(|&b| reference_matches(class, &[b])).count();
                if members == 1 {
                    return true;
                }
                i = end;
            }
            _ => return true,
        }
    }
    false
}

fuzz_target!(|input: Input| -> Corpus {
    if input.ops.len() > MAX_OPS || input.pool.is_empty() || input.pool.len() > 16 {
        return Corpus::Reject;
    }
    let pool: Vec<Vec<u8>> = input.pool.iter().map(|p| build(p)).collect();
    let mut index: PatternIndex<usize> = PatternIndex::new();
    // Live patterns in insertion order, with their values.
    let mut live: Vec<(Vec<u8>, usize)> = Vec::new();
    for (step, op) in input.ops.iter().enumerate() {
        match op {
            Op::Insert(k) => {
                let p = &pool[usize::from(*k) % pool.len()];
                let old = index.insert(p, step);
                let expected = match live.iter_mut().find(|(q, _)| q == p) {
                    Some((_, v)) => Some(std::mem::replace(v, step)),
                    None => {
                        live.push((p.clone(), step));
                        None
                    }
                };
                assert_eq!(old, expected, "insert {:?}", p.escape_ascii().to_string());
            }
            Op::Remove(k) => {
                let p = &pool[usize::from(*k) % pool.len()];
                let removed = index.remove(p).map(|(q, v)| (q.as_bytes().to_vec(), v));
                let expected = live.iter().position(|(q, _)| q == p).map(|i| live.remove(i));
                assert_eq!(removed, expected, "remove {:?}", p.escape_ascii().to_string());
            }
            Op::Publish(channel) => {
                let channel = match channel {
                    Channel::Bytes(b) => b.iter().take(MAX_CHANNEL).map(|&b| map(b)).collect(),
                    Channel::FromPattern(k, filler) => {
                        channel_from(&pool[usize::from(*k) % pool.len()], filler)
                    }
                };
                let mut got = Vec::new();
                index.for_each_match(&channel, |p, v| got.push((p.as_bytes().to_vec(), *v)));
                let expected: Vec<(Vec<u8>, usize)> = live
                    .iter()
                    .filter(|(p, _)| reference_matches(p, &channel))
                    .cloned()
                    .collect();
                assert_eq!(got, expected, "publish {:?}", channel.escape_ascii().to_string());
                assert!(index.candidates(&channel) >= got.len(), "every match is a candidate");
            }
        }
        index.check_invariants();
        assert_eq!(index.len(), live.len());
        let literal_free = live
            .iter()
            .filter(|(p, _)| !tidings_core::Pattern::new(p).never_matches() && !has_literal(p))
            .count();
        assert_eq!(index.always_checked(), literal_free, "always-check list");
        // No pattern holds byte 0x01: only literal-free ones are candidates.
        assert_eq!(index.candidates(b"\x01\x01\x01"), literal_free, "keying rule");
    }
    for (p, _) in &live {
        assert!(index.remove(p).is_some());
        index.check_invariants();
    }
    assert!(index.is_empty());
    Corpus::Keep
});
