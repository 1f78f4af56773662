//! `nom` parsers for header values that have a grammar of their own.
//!
//! The decoder finds line boundaries itself (incrementally, see `scan`); these parsers see
//! one complete value at a time, so they are `complete` parsers.

use nom::Parser;
use nom::character::complete::digit1;
use nom::combinator::all_consuming;

/// `content-length`: decimal digits only (no sign, no spaces), at most `u64::MAX`.
pub(crate) fn content_length(value: &[u8]) -> Option<u64> {
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
            assert_eq!(
                content_length(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
