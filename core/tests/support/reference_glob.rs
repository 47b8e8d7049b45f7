//! A reference glob matcher for differential tests and fuzzing.
//!
//! It transliterates Redis 7's `stringmatchlen` (`src/util.c`) as directly as
//! Rust allows: the same pointer walk, the same class loop with its
//! `pattern--` dance at the end of an unterminated class, and recursion at
//! each `*`. Two changes, both documented deviations of tidings: a text that
//! runs out lets any remaining stars match the empty string (Redis #15643),
//! and there is no nesting cap. Star recursion is memoized on
//! (pattern offset, text offset) so that it stays polynomial; keep inputs
//! small (the recursion depth is at most the number of stars).
//!
//! It shares no code with `tidings_core::glob`, which is the point.

/// Whether `text` matches `pattern`, by the reference rules.
pub fn reference_matches(pattern: &[u8], text: &[u8]) -> bool {
    let mut memo = vec![None; (pattern.len() + 2) * (text.len() + 1)];
    Reference {
        p: pattern,
        s: text,
        memo: &mut memo,
    }
    .run(0, 0)
}

struct Reference<'a> {
    p: &'a [u8],
    s: &'a [u8],
    memo: &'a mut [Option<bool>],
}

impl Reference<'_> {
    /// `pattern[i]` as C sees it: past the end is the NUL terminator.
    fn pat(&self, i: usize) -> u8 {
        self.p.get(i).copied().unwrap_or(0)
    }

    fn run(&mut self, pi: usize, si: usize) -> bool {
        let key = pi * (self.s.len() + 1) + si;
        if let Some(known) = self.memo[key] {
            return known;
        }
        let result = self.walk(pi, si);
        self.memo[key] = Some(result);
        result
    }

    fn walk(&mut self, mut pi: usize, mut si: usize) -> bool {
        let plen_total = self.p.len();
        let slen_total = self.s.len();
        // patternLen and stringLen in the C code.
        let plen = |pi: usize| plen_total - pi;
        let slen = |si: usize| slen_total - si;
        while plen(pi) > 0 && slen(si) > 0 {
            match self.p[pi] {
                b'*' => {
                    while plen(pi) > 0 && self.pat(pi + 1) == b'*' {
                        pi += 1;
                    }
                    if plen(pi) == 1 {
                        return true;
                    }
                    while slen(si) > 0 {
                        if self.run(pi + 1, si) {
                            return true;
                        }
                        si += 1;
                    }
                    return false;
                }
                b'?' => {
                    si += 1;
                }
                b'[' => {
                    pi += 1;
                    let not = self.pat(pi) == b'^';
                    if not {
                        pi += 1;
                    }
                    let c = self.s[si];
                    let mut matched = false;
                    loop {
                        if self.pat(pi) == b'\\' && plen(pi) >= 2 {
                            pi += 1;
                            if self.pat(pi) == c {
                                matched = true;
                            }
                        } else if plen(pi) > 0 && self.pat(pi) == b']' {
                            break;
                        } else if plen(pi) == 0 {
                            pi -= 1;
                            break;
                        } else if plen(pi) >= 3 && self.pat(pi + 1) == b'-' {
                            let mut start = self.pat(pi);
                            let mut end = self.pat(pi + 2);
                            if start > end {
                                std::mem::swap(&mut start, &mut end);
                            }
                            pi += 2;
                            if c >= start && c <= end {
                                matched = true;
                            }
                        } else if self.pat(pi) == c {
                            matched = true;
                        }
                        pi += 1;
                    }
                    if not {
                        matched = !matched;
                    }
                    if !matched {
                        return false;
                    }
                    si += 1;
                }
                other => {
                    let mut lit = other;
                    if other == b'\\' && plen(pi) >= 2 {
                        pi += 1;
                        lit = self.pat(pi);
                    }
                    if lit != self.s[si] {
                        return false;
                    }
                    si += 1;
                }
            }
            pi += 1;
            if slen(si) == 0 {
                while plen(pi) > 0 && self.pat(pi) == b'*' {
                    pi += 1;
                }
                break;
            }
        }
        // Deviation 1: an empty text also lets remaining stars match nothing.
        if slen(si) == 0 {
            while plen(pi) > 0 && self.pat(pi) == b'*' {
                pi += 1;
            }
        }
        plen(pi) == 0 && slen(si) == 0
    }
}
