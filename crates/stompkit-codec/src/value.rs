//! Parsers for the header values that have a grammar of their own: `heart-beat`,
//! `accept-version` and `content-length`.
//!
//! The decoder leaves header values as bytes; a client or broker reads these three to
//! negotiate the connection and to frame bodies. Each parser takes the value as the decoded
//! frame holds it (unescaped) and returns the typed value or an [`InvalidValue`] naming the
//! header.
//!
//! ```
//! use stompkit_codec::Version;
//! use stompkit_codec::value::{accept_version, content_length, heart_beat};
//!
//! assert_eq!(heart_beat(b"10000,0")?, (10_000, 0));
//! assert_eq!(accept_version(b"1.1,1.2,2.0")?, [Version::V1_1, Version::V1_2]);
//! assert_eq!(content_length(b"42")?, 42);
//! assert!(content_length(b"-1").is_err());
//! # Ok::<(), stompkit_codec::value::InvalidValue>(())
//! ```

use nom::Parser;
use nom::bytes::complete::tag;
use nom::character::complete::{digit1, space0};
use nom::combinator::{all_consuming, map_opt, recognize};
use nom::multi::separated_list1;
use nom::sequence::{delimited, separated_pair};

use crate::Version;
use crate::error::excerpt;

/// A header value that does not follow its header's grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {header} value {value:?}: expected {expected}")]
pub struct InvalidValue {
    header: &'static str,
    value: String,
    expected: &'static str,
}

impl InvalidValue {
    fn new(header: &'static str, value: &[u8], expected: &'static str) -> Self {
        Self {
            header,
            value: excerpt(value),
            expected,
        }
    }

    /// The header whose value this is, e.g. `"heart-beat"`.
    pub fn header(&self) -> &'static str {
        self.header
    }

    /// The value (lossily as UTF-8, cut after 64 bytes).
    pub fn value(&self) -> &str {
        &self.value
    }
}

type NomError<'a> = nom::error::Error<&'a [u8]>;

/// Decimal digits that fit a `u64`.
fn number(input: &[u8]) -> nom::IResult<&[u8], u64> {
    map_opt(digit1, |digits: &[u8]| {
        digits.iter().try_fold(0u64, |n, d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
    })
    .parse(input)
}

/// `heart-beat`: `x,y`, two millisecond counts. In `CONNECT`, `x` is the smallest interval at
/// which the client can send heart-beats and `y` the interval it would like to receive them
/// at; in `CONNECTED` the same for the broker. `0` means "none".
///
/// Spaces or tabs around either number are allowed, since some peers write `1000, 1000`;
/// anything else (signs, empty numbers, a third number, overflow of `u64`) is refused.
pub fn heart_beat(value: &[u8]) -> Result<(u64, u64), InvalidValue> {
    let padded = |input| delimited(space0, number, space0).parse(input);
    all_consuming(separated_pair(padded, tag(","), padded))
        .parse(value)
        .map(|(_, pair)| pair)
        .map_err(|_: nom::Err<NomError<'_>>| {
            InvalidValue::new("heart-beat", value, "two decimal numbers `x,y`")
        })
}

/// `accept-version`: a comma-separated list of version tokens such as `1.1,1.2`, returned in
/// the order given. Tokens of the form `digits.digits` that name no version this crate knows
/// (`2.0`) are skipped, so the result may be empty: the grammar holds, and whether a
/// common version exists is the caller's question. Spaces or tabs around a token are allowed.
pub fn accept_version(value: &[u8]) -> Result<Vec<Version>, InvalidValue> {
    let token =
        |input| delimited(space0, recognize((digit1, tag("."), digit1)), space0).parse(input);
    all_consuming(separated_list1(tag(","), token))
        .parse(value)
        .map(|(_, tokens)| tokens.into_iter().filter_map(Version::from_bytes).collect())
        .map_err(|_: nom::Err<NomError<'_>>| {
            InvalidValue::new(
                "accept-version",
                value,
                "comma-separated versions such as `1.1,1.2`",
            )
        })
}

/// `content-length`: decimal digits only (no sign, no spaces), at most `u64::MAX`. The
/// decoder reads body lengths with this same parser.
pub fn content_length(value: &[u8]) -> Result<u64, InvalidValue> {
    crate::line::content_length(value)
        .ok_or_else(|| InvalidValue::new("content-length", value, "decimal digits"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn heart_beat_reads_two_numbers() {
        assert_eq!(heart_beat(b"1000,0"), Ok((1000, 0)));
        assert_eq!(heart_beat(b"0,0"), Ok((0, 0)));
        assert_eq!(heart_beat(b" 1000 ,\t500 "), Ok((1000, 500)));
        assert_eq!(heart_beat(b"18446744073709551615,1"), Ok((u64::MAX, 1)));
        for bad in [
            &b""[..],
            b"1000",
            b"1000,",
            b",1000",
            b"a,b",
            b"+1,1",
            b"-1,1",
            b"1,2,3",
            b"1;2",
            b"18446744073709551616,0",
        ] {
            let error = heart_beat(bad).expect_err(&String::from_utf8_lossy(bad));
            assert_eq!(error.header(), "heart-beat");
        }
    }

    #[test]
    fn accept_version_keeps_known_versions_in_order() {
        assert_eq!(accept_version(b"1.2"), Ok(vec![Version::V1_2]));
        assert_eq!(accept_version(b"1.0,1.1,1.2"), Ok(Version::ALL.to_vec()));
        assert_eq!(
            accept_version(b"1.2, 1.0"),
            Ok(vec![Version::V1_2, Version::V1_0])
        );
        assert_eq!(accept_version(b"2.0,1.1"), Ok(vec![Version::V1_1]));
        assert_eq!(accept_version(b"2.0"), Ok(vec![]));
        for bad in [
            &b""[..],
            b"1",
            b"1.",
            b".1",
            b"1.1,",
            b",1.1",
            b"1.1;1.2",
            b"v1.2",
        ] {
            let error = accept_version(bad).expect_err(&String::from_utf8_lossy(bad));
            assert_eq!(error.header(), "accept-version");
        }
    }

    #[test]
    fn content_length_names_the_header_and_value() {
        assert_eq!(content_length(b"0042"), Ok(42));
        let error = content_length(b"12a").expect_err("not digits");
        assert_eq!(error.header(), "content-length");
        assert_eq!(error.value(), "12a");
        assert_eq!(
            error.to_string(),
            "invalid content-length value \"12a\": expected decimal digits"
        );
    }

    /// What `heart_beat` should accept, spelled out without `nom`.
    fn heart_beat_by_hand(value: &[u8]) -> Option<(u64, u64)> {
        let text = std::str::from_utf8(value).ok()?;
        let (x, y) = text.split_once(',')?;
        let number = |s: &str| {
            let s = s.trim_matches([' ', '\t']);
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse::<u64>().ok()
        };
        Some((number(x)?, number(y)?))
    }

    proptest! {
        #[test]
        fn heart_beat_reads_what_is_written(
            x in any::<u64>(), y in any::<u64>(),
            pad in prop::collection::vec(prop_oneof![Just(""), Just(" "), Just("\t")], 4),
        ) {
            let value = format!("{}{x}{},{}{y}{}", pad[0], pad[1], pad[2], pad[3]);
            prop_assert_eq!(heart_beat(value.as_bytes()), Ok((x, y)));
        }

        #[test]
        fn heart_beat_agrees_with_a_parser_by_hand(value in prop::collection::vec(
            prop_oneof![Just(b','), Just(b' '), b'0'..=b'9', any::<u8>()], 0..24)) {
            prop_assert_eq!(heart_beat(&value).ok(), heart_beat_by_hand(&value));
        }

        #[test]
        fn accept_version_reads_what_is_written(
            versions in prop::collection::vec(prop::sample::select(Version::ALL.to_vec()), 1..6),
        ) {
            let value = versions.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(",");
            prop_assert_eq!(accept_version(value.as_bytes()), Ok(versions));
        }

        #[test]
        fn accept_version_never_panics_and_names_only_known_versions(
            value in prop::collection::vec(
                prop_oneof![Just(b','), Just(b'.'), b'0'..=b'3', any::<u8>()], 0..24),
        ) {
            if let Ok(versions) = accept_version(&value) {
                for version in versions {
                    let token = version.as_str().as_bytes();
                    prop_assert!(value.windows(token.len()).any(|w| w == token));
                }
            }
        }

        #[test]
        fn content_length_reads_what_is_written(n in any::<u64>()) {
            prop_assert_eq!(content_length(n.to_string().as_bytes()), Ok(n));
        }
    }
}
