//! STOMP protocol versions.

use std::fmt;
use std::str::FromStr;

/// A STOMP protocol version.
///
/// The version decides the framing rules: which end-of-line sequences are accepted
/// (CRLF only from 1.2) and which header escapes exist (none in 1.0, `\n \c \\` in 1.1,
/// and also `\r` in 1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Version {
    /// STOMP 1.0: no header escaping, LF line ends, no NACK, no heart-beats.
    V1_0,
    /// STOMP 1.1: escapes `\n`, `\c`, `\\`; LF line ends.
    V1_1,
    /// STOMP 1.2: escapes `\r`, `\n`, `\c`, `\\`; LF or CRLF line ends.
    #[default]
    V1_2,
}

impl Version {
    /// Every version, oldest first.
    pub const ALL: [Self; 3] = [Self::V1_0, Self::V1_1, Self::V1_2];

    /// The version as written in `accept-version` and `version` headers, e.g. `"1.2"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::V1_0 => "1.0",
            Self::V1_1 => "1.1",
            Self::V1_2 => "1.2",
        }
    }

    /// Parses a version token such as `1.1`; `None` for anything else.
    pub fn from_bytes(token: &[u8]) -> Option<Self> {
        match token {
            b"1.0" => Some(Self::V1_0),
            b"1.1" => Some(Self::V1_1),
            b"1.2" => Some(Self::V1_2),
            _ => None,
        }
    }

    /// Whether header names and values are escaped in this version (1.1 and later).
    pub const fn escapes_headers(self) -> bool {
        !matches!(self, Self::V1_0)
    }

    /// Whether CRLF is an end of line (1.2 only; earlier versions know only LF).
    pub const fn allows_crlf(self) -> bool {
        matches!(self, Self::V1_2)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing a [`Version`] from text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseVersionError(());

impl fmt::Display for ParseVersionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown STOMP version; expected 1.0, 1.1 or 1.2")
    }
}

impl std::error::Error for ParseVersionError {}

impl FromStr for Version {
    type Err = ParseVersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_bytes(s.as_bytes()).ok_or(ParseVersionError(()))
    }
}
