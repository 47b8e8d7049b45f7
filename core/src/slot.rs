//! Redis Cluster key hash slots, used to route sharded pub/sub channels.
//!
//! Redis Cluster splits the key space into [`SLOT_COUNT`] (16384) hash
//! slots. A key's slot is the CRC16 of the key, masked to its low 14 bits:
//!
//! ```text
//! slot = CRC16-XMODEM(hashed bytes) & 0x3FFF
//! ```
//!
//! The CRC is the XMODEM variant: polynomial `0x1021`, initial value `0`, no
//! input or output reflection and no final XOR. Its check value is
//! `crc16(b"123456789") == 0x31C3`. This module computes it with a 256-entry
//! lookup table that a `const fn` builds at compile time, so lookups are one
//! table read per input byte and no code runs at start-up.
//!
//! # Hash tags
//!
//! A key may pin itself to the slot of another string with a *hash tag*: if
//! the key contains a `{`, and after that first `{` there is a `}` with at
//! least one byte between them, only the bytes between the first `{` and the
//! next `}` are hashed. Otherwise the whole key is hashed. So
//! `{user1000}.following` and `{user1000}.followers` land in the same slot,
//! while `foo{}{bar}` hashes whole, because its first `{` is immediately
//! closed. See [`hash_tag`].
//!
//! Keys are arbitrary bytes: invalid UTF-8, NUL bytes and very long keys are
//! all accepted, and no function in this module panics.
//!
//! # Sources
//!
//! - Redis `src/cluster.c`, `keyHashSlot`: the hash-tag rule and the mask.
//! - Redis `src/crc16.c`: the CRC16-XMODEM variant and its check value.
//! - The Redis Cluster specification, section "Hash tags".
//!
//! # Example
//!
//! ```
//! use tidings_core::slot::{key_hash_slot, SLOT_COUNT};
//!
//! assert_eq!(key_hash_slot(b"foo"), 12182);
//! // Both keys share the hash tag `user1000`, so they share a slot.
//! assert_eq!(
//!     key_hash_slot(b"{user1000}.following"),
//!     key_hash_slot(b"{user1000}.followers"),
//! );
//! assert!(key_hash_slot(b"any key at all") < SLOT_COUNT);
//! ```

/// The number of hash slots in a Redis Cluster: `16384`, that is `2^14`.
///
/// Every value returned by [`key_hash_slot`] is less than this.
pub const SLOT_COUNT: u16 = 16384;

/// The CRC16-XMODEM generator polynomial (`x^16 + x^12 + x^5 + 1`).
const POLY: u16 = 0x1021;

/// `CRC16_TABLE[i]` is the CRC register after shifting the byte `i` through
/// a zeroed register, MSB first: the standard byte-at-a-time table.
const CRC16_TABLE: [u16; 256] = build_table();

/// Builds [`CRC16_TABLE`] at compile time.
const fn build_table() -> [u16; 256] {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        // `i < 256`, so the cast is lossless and the shift keeps all 8 bits.
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ POLY
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

/// Computes the CRC16-XMODEM checksum of `bytes`.
///
/// This is the variant Redis Cluster uses: polynomial `0x1021`, initial value
/// `0`, MSB first, no final XOR. The empty input gives `0`.
///
/// # Examples
///
/// ```
/// use tidings_core::slot::crc16;
///
/// // The standard check value of CRC16-XMODEM.
/// assert_eq!(crc16(b"123456789"), 0x31C3);
/// assert_eq!(crc16(b""), 0);
/// ```
#[must_use]
pub fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &byte| {
        let index = usize::from((crc >> 8) as u8 ^ byte);
        (crc << 8) ^ CRC16_TABLE[index]
    })
}

/// Returns the bytes of `key` that decide its hash slot.
///
/// If `key` contains a `{`, and after the first `{` there is a `}` with at
/// least one byte between them, this is the sub-slice strictly between that
/// first `{` and the next `}`. Otherwise it is the whole key. The returned
/// slice always borrows from `key`.
///
/// Only the *first* `{` counts: in `foo{}{bar}` the first `{` is closed at
/// once, so the tag is empty and the whole key is hashed; the later `{bar}` is
/// not considered.
///
/// # Examples
///
/// ```
/// use tidings_core::slot::hash_tag;
///
/// assert_eq!(hash_tag(b"{user1000}.following"), b"user1000");
/// assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
/// // The tag runs from the first `{` to the next `}`, so it may hold a `{`.
/// assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
/// // An empty tag, or no closing brace, means the whole key is hashed.
/// assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
/// assert_eq!(hash_tag(b"foo{bar"), b"foo{bar");
/// assert_eq!(hash_tag(b"plain"), b"plain");
/// ```
#[must_use]
pub fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    // `open < key.len()`, so `open + 1 <= key.len()` and this cannot panic.
    let after = &key[open + 1..];
    match after.iter().position(|&b| b == b'}') {
        // `close > 0`: at least one byte between the braces.
        Some(close) if close > 0 => &after[..close],
        // No closing brace, or `{}` with nothing between: hash the whole key.
        _ => key,
    }
}

/// Returns the Redis Cluster hash slot of `key`, in `0..SLOT_COUNT`.
///
/// This is `crc16(hash_tag(key)) & 0x3FFF`, exactly as Redis's
/// `keyHashSlot` in `src/cluster.c`.
///
/// # Examples
///
/// ```
/// use tidings_core::slot::key_hash_slot;
///
/// assert_eq!(key_hash_slot(b"foo"), 12182);
/// assert_eq!(key_hash_slot(b"{user1000}.following"), 3443);
/// // `foo{bar}{zap}` is hashed by its tag `bar`.
/// assert_eq!(key_hash_slot(b"foo{bar}{zap}"), key_hash_slot(b"bar"));
/// assert_eq!(key_hash_slot(b""), 0);
/// ```
#[must_use]
pub fn key_hash_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) & (SLOT_COUNT - 1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;
    use proptest::prelude::*;

    /// The vectors of REDIS-SEMANTICS.md section 4, checked against Redis's
    /// `CLUSTER KEYSLOT`.
    const VECTORS: &[(&[u8], u16)] = &[
        (b"foo", 12182),
        (b"bar", 5061),
        (b"hello", 866),
        (b"{user1000}.following", 3443),
        (b"foo{}{bar}", 8363),
        (b"foo{{bar}}zap", 4015),
        (b"foo{bar}{zap}", 5061),
        (b"", 0),
    ];

    /// Bit-at-a-time CRC16-XMODEM, straight from the definition.
    fn crc16_bitwise(bytes: &[u8]) -> u16 {
        let mut crc: u16 = 0;
        for &byte in bytes {
            crc ^= u16::from(byte) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x1021
                } else {
                    crc << 1
                };
            }
        }
        crc
    }

    /// The hash-tag rule as a literal transcription of `keyHashSlot`'s loops.
    fn hash_tag_reference(key: &[u8]) -> &[u8] {
        let len = key.len();
        let mut s = 0;
        while s < len && key[s] != b'{' {
            s += 1;
        }
        if s == len {
            return key;
        }
        let mut e = s + 1;
        while e < len && key[e] != b'}' {
            e += 1;
        }
        if e == len || e == s + 1 {
            return key;
        }
        &key[s + 1..e]
    }

    #[test]
    fn spec_vectors() {
        for &(key, slot) in VECTORS {
            assert_eq!(
                key_hash_slot(key),
                slot,
                "key {:?}",
                core::str::from_utf8(key).unwrap()
            );
        }
    }

    #[test]
    fn crc16_check_value() {
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(crc16_bitwise(b"123456789"), 0x31C3);
    }

    #[test]
    fn table_matches_bitwise_for_every_single_byte() {
        for byte in 0..=u8::MAX {
            assert_eq!(crc16(&[byte]), crc16_bitwise(&[byte]), "byte {byte}");
        }
    }

    #[test]
    fn slot_count_is_a_power_of_two_mask() {
        // The mask `SLOT_COUNT - 1` only equals `0x3FFF` if this holds.
        assert!(SLOT_COUNT.is_power_of_two());
        assert_eq!(SLOT_COUNT - 1, 0x3FFF);
    }

    #[test]
    fn lone_open_brace_hashes_whole_key() {
        // No `}` after the `{`, so there is no tag.
        assert_eq!(hash_tag(b"foo{bar"), b"foo{bar");
        assert_eq!(hash_tag(b"{"), b"{");
        assert_eq!(key_hash_slot(b"{"), crc16(b"{") & 0x3FFF);
    }

    #[test]
    fn close_before_open_hashes_whole_key() {
        // A `}` before the first `{` does not close anything.
        assert_eq!(hash_tag(b"}{"), b"}{");
        assert_eq!(hash_tag(b"a}b{c"), b"a}b{c");
    }

    #[test]
    fn empty_tag_at_end_hashes_whole_key() {
        // `{}` has no byte between the braces.
        assert_eq!(hash_tag(b"foo{}"), b"foo{}");
        assert_eq!(hash_tag(b"{}"), b"{}");
        assert_eq!(key_hash_slot(b"foo{}"), crc16(b"foo{}") & 0x3FFF);
    }

    #[test]
    fn braced_key_shares_slot_with_its_tag() {
        // `{a}` is hashed by `a` alone.
        assert_eq!(hash_tag(b"{a}"), b"a");
        assert_eq!(key_hash_slot(b"{a}"), key_hash_slot(b"a"));
        assert_eq!(key_hash_slot(b"{user1000}.followers"), 3443);
    }

    #[test]
    fn only_the_first_open_brace_counts() {
        // The tag ends at the first `}` after the first `{`, even if another
        // `{` comes in between.
        assert_eq!(hash_tag(b"{a{b}c}"), b"a{b");
        assert_eq!(hash_tag(b"x{}{y}"), b"x{}{y}");
    }

    #[test]
    fn invalid_utf8_is_accepted() {
        // Keys are bytes; no UTF-8 validation happens.
        let key: &[u8] = &[0xFF, 0xFE, b'{', 0xC3, 0x28, b'}'];
        assert_eq!(hash_tag(key), &[0xC3, 0x28]);
        assert_eq!(key_hash_slot(key), crc16(&[0xC3, 0x28]) & 0x3FFF);
        assert_eq!(crc16(&[0xFF, 0xFE]), crc16_bitwise(&[0xFF, 0xFE]));
    }

    #[test]
    fn nul_bytes_are_ordinary_bytes() {
        // Unlike C strings, a NUL does not end the key.
        assert_ne!(crc16(b"a\0b"), crc16(b"a"));
        assert_eq!(hash_tag(b"\0{\0}\0"), b"\0");
        assert_eq!(key_hash_slot(b"\0{\0}\0"), key_hash_slot(b"\0"));
        // CRC16 with init 0 maps any run of zero bytes to 0.
        assert_eq!(crc16(&[0; 16]), 0);
    }

    #[test]
    fn one_mebibyte_key_does_not_panic() {
        // Long keys must be handled in one pass without overflow or panic.
        let mut key = vec![b'x'; 1 << 20];
        assert!(key_hash_slot(&key) < SLOT_COUNT);
        assert_eq!(crc16(&key), crc16_bitwise(&key));
        // A tag far into the key is still found.
        let tail = key.len() - 3;
        key[tail..].copy_from_slice(b"{a}");
        assert_eq!(key_hash_slot(&key), key_hash_slot(b"a"));
    }

    /// Bytes drawn mostly from braces and a few letters, so that tags of all
    /// shapes are common.
    fn brace_heavy_key() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![Just(b'{'), Just(b'}'), Just(b'a'), Just(b'b'), any::<u8>()],
            0..24,
        )
    }

    proptest! {
        #[test]
        fn table_crc_matches_bitwise_crc(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            prop_assert_eq!(crc16(&bytes), crc16_bitwise(&bytes));
        }

        #[test]
        fn hash_tag_matches_reference(key in brace_heavy_key()) {
            prop_assert_eq!(hash_tag(&key), hash_tag_reference(&key));
        }

        #[test]
        fn slot_matches_reference_and_is_in_range(key in brace_heavy_key()) {
            let slot = key_hash_slot(&key);
            prop_assert!(slot < SLOT_COUNT);
            prop_assert_eq!(slot, crc16_bitwise(hash_tag_reference(&key)) & 0x3FFF);
        }

        #[test]
        fn tagged_keys_share_the_slot_of_their_tag(
            tag in proptest::collection::vec(any::<u8>().prop_filter("no closing brace", |&b| b != b'}'), 1..16),
            prefix in proptest::collection::vec(any::<u8>().prop_filter("no opening brace", |&b| b != b'{'), 0..16),
            suffix in proptest::collection::vec(any::<u8>(), 0..16),
        ) {
            let mut key = prefix;
            key.push(b'{');
            key.extend_from_slice(&tag);
            key.push(b'}');
            key.extend_from_slice(&suffix);
            prop_assert_eq!(hash_tag(&key), &tag[..]);
            prop_assert_eq!(key_hash_slot(&key), crc16(&tag) & 0x3FFF);
        }
    }
}
