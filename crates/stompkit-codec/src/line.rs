//! `nom` parsers for header values that have a grammar of their own.
//!
//! The decoder finds line boundaries itself (incrementally, see `scan`); these parsers see
//! one complete value at a time, so they are `complete` parsers.

use nom::Parser;
use nom::character::complete::digit1;
use nom::combinator::all_consuming;

/// `content-length`: decimal digits only (no sign, no spaces), at most `u64::MAX`.
#[inline]
pub(crate) fn content_length(value: &[u8]) -> Option<u64> {
    // Up to 19 digits cannot overflow: read them in one pass. Longer and empty values go to
    // the parser, which decides; the property test below holds the two to the same answers.
    if value.len().wrapping_sub(1) < 19 {
        let mut n = 0u64;
        for &byte in value {
            // Widened first: the digit is then used as is, without a second zero-extension.
            let digit = u64::from(byte).wrapping_sub(u64::from(b'0'));
            if digit > 9 {
                return None;
            }
            n = n * 10 + digit;
        }
        return Some(n);
    }
    parse_content_length(value)
}

/// The `nom` grammar of a `content-length` value.
fn parse_content_length(value: &[u8]) -> Option<u64> {
    let (_, digits) = all_consuming(digit1::<_, nom::error::Error<&[u8]>>)
        .parse(value)
        .ok()?;
    digits.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_accepts_digits_only() {
        assert_eq!(content_length(b"0"), Some(0));
        assert_eq!(content_length(b"0042"), Some(42));
        assert_eq!(content_length(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(
            content_length(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        assert_eq!(content_length(b"00000000000000000001"), Some(1));
        for bad in [
            &b""[..],
            b"-1",
            b"+1",
            b" 1",
            b"1 ",
            b"1e3",
            b"0x10",
            b"18446744073709551616",
        ] {
            assert_eq!(parse_content_length(bad), None);
            assert_eq!(
                content_length(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn the_shortcut_agrees_with_the_grammar(value in proptest::collection::vec(
            proptest::prop_oneof![proptest::num::u8::ANY, b'0'..=b'9'], 0..24)) {
            proptest::prop_assert_eq!(content_length(&value), parse_content_length(&value));
        }
    }
}
