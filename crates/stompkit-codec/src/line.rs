//! `nom` parsers for the pieces of a complete head line.
//!
//! The decoder finds line boundaries itself (incrementally, with `memchr`); these parsers
//! see one complete line or value at a time, so they are `complete` parsers.

use nom::bytes::complete::{tag, take_till1};
use nom::character::complete::digit1;
use nom::combinator::{all_consuming, rest};
use nom::{IResult, Parser};

/// Why a header line is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderLineError {
    MissingColon,
    EmptyName,
}

/// `header = header-name ":" header-value`: the name runs to the first colon, the value is
/// everything after it (a value may hold more colons in frames that are not escaped).
fn header(line: &[u8]) -> IResult<&[u8], (&[u8], &[u8])> {
    (take_till1(|b| b == b':'), tag(&b":"[..]), rest)
        .map(|(name, _, value)| (name, value))
        .parse(line)
}

/// Splits a header line, returning the index of the separating colon.
pub(crate) fn split_header(line: &[u8]) -> Result<usize, HeaderLineError> {
    match header(line) {
        Ok((_, (name, _))) => Ok(name.len()),
        Err(_) if line.first() == Some(&b':') => Err(HeaderLineError::EmptyName),
        Err(_) => Err(HeaderLineError::MissingColon),
    }
}

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
    fn header_splits_at_first_colon() {
        assert_eq!(split_header(b"session:ID:host:9"), Ok(7));
        assert_eq!(split_header(b"empty:"), Ok(5));
    }

    #[test]
    fn header_without_colon_or_name_is_rejected() {
        assert_eq!(
            split_header(b"no-colon"),
            Err(HeaderLineError::MissingColon)
        );
        assert_eq!(split_header(b":value"), Err(HeaderLineError::EmptyName));
    }

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
