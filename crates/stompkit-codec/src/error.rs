//! The codec's error type.

use std::fmt;
use std::io;
use std::sync::Arc;

use crate::Version;

/// A configurable limit of the decoder (see [`Limits`](crate::Limits)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// [`Limits::max_frame_bytes`](crate::Limits::max_frame_bytes).
    FrameBytes,
    /// [`Limits::max_headers`](crate::Limits::max_headers).
    Headers,
    /// [`Limits::max_header_line_bytes`](crate::Limits::max_header_line_bytes).
    HeaderLineBytes,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::FrameBytes => "max_frame_bytes",
            Self::Headers => "max_headers",
            Self::HeaderLineBytes => "max_header_line_bytes",
        })
    }
}

/// Which character a header could not carry (see [`Error::Unrepresentable`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Forbidden {
    /// A carriage return (octet 13).
    CarriageReturn,
    /// A line feed (octet 10).
    LineFeed,
    /// A colon in a header name.
    Colon,
    /// An empty header name.
    EmptyName,
}

impl fmt::Display for Forbidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CarriageReturn => "a carriage return",
            Self::LineFeed => "a line feed",
            Self::Colon => "a colon in its name",
            Self::EmptyName => "an empty name",
        })
    }
}

/// Everything that can go wrong while decoding or encoding STOMP frames.
///
/// Decoding errors carry `offset`, the position in the byte stream (counted from the first byte
/// the decoder ever saw) where the problem was found. A decoding error is fatal for the stream:
/// STOMP has no way to find the next frame boundary after a malformed frame, so the decoder
/// keeps returning the same error.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The command line is not a STOMP command (commands are case-sensitive).
    #[error(
        "byte {offset}: unknown command {command:?} (STOMP commands are upper case, e.g. SEND)"
    )]
    UnknownCommand {
        /// Stream offset of the command line.
        offset: u64,
        /// The command line, lossily decoded and cut to 64 characters.
        command: String,
    },
    /// A header line without the `:` that separates name and value.
    #[error("byte {offset}: header line has no ':' between name and value")]
    MissingColon {
        /// Stream offset of the header line.
        offset: u64,
    },
    /// A header line starting with `:`.
    #[error("byte {offset}: header line has an empty name")]
    EmptyHeaderName {
        /// Stream offset of the header line.
        offset: u64,
    },
    /// A backslash followed by a character that is not a defined escape in this version.
    #[error(
        "byte {offset}: undefined escape sequence \\{} in a STOMP {version} header (defined: {})",
        char::from(*escape).escape_default(),
        if *version == Version::V1_2 { "\\r \\n \\c \\\\" } else { "\\n \\c \\\\" }
    )]
    InvalidEscape {
        /// Stream offset of the backslash.
        offset: u64,
        /// The byte after the backslash.
        escape: u8,
        /// The version whose escapes apply.
        version: Version,
    },
    /// A header ends in a lone backslash.
    #[error("byte {offset}: header ends with a backslash that starts no escape sequence")]
    TrailingBackslash {
        /// Stream offset of the backslash.
        offset: u64,
    },
    /// A carriage return not followed by a line feed in a STOMP 1.2 frame head.
    #[error(
        "byte {offset}: carriage return not followed by line feed; STOMP 1.2 headers must write it as \\r"
    )]
    BareCarriageReturn {
        /// Stream offset of the carriage return.
        offset: u64,
    },
    /// A `content-length` that is not a non-negative decimal integer that fits in 64 bits.
    #[error("byte {offset}: invalid content-length {value:?} (expected decimal digits only)")]
    InvalidContentLength {
        /// Stream offset of the header line.
        offset: u64,
        /// The value, lossily decoded and cut to 64 characters.
        value: String,
    },
    /// The byte after a body of `content-length` bytes is not the NUL that ends a frame.
    #[error(
        "byte {offset}: expected NUL after the {content_length}-byte body given by content-length"
    )]
    MissingNul {
        /// Stream offset where the NUL should be.
        offset: u64,
        /// The declared body length.
        content_length: u64,
    },
    /// A frame other than SEND, MESSAGE or ERROR carries a body.
    #[error(
        "byte {offset}: a {command} frame must not have a body (only SEND, MESSAGE and ERROR may)"
    )]
    UnexpectedBody {
        /// Stream offset of the body.
        offset: u64,
        /// The frame's command.
        command: crate::Command,
    },
    /// A configured limit was exceeded.
    #[error(
        "byte {offset}: frame exceeds {limit} ({max}); raise Limits::{limit} if the peer is trusted"
    )]
    LimitExceeded {
        /// Stream offset where the limit was exceeded.
        offset: u64,
        /// Which limit.
        limit: Limit,
        /// Its configured value.
        max: usize,
    },
    /// The stream ended in the middle of a frame.
    #[error("byte {offset}: stream ended inside a frame ({buffered} bytes of it were received)")]
    Truncated {
        /// Stream offset of the start of the unfinished frame.
        offset: u64,
        /// How many bytes of the unfinished frame were buffered.
        buffered: usize,
    },
    /// The caller gave the decoder fewer bytes of the frame it was reading than in the call
    /// before: bytes were taken off the front of the buffer (or the buffer was cut) in the
    /// middle of a frame. Only whole items may be taken off. (Only lengths are compared:
    /// bytes taken off and as many appended cannot be told apart from new bytes.)
    #[error(
        "byte {offset}: the buffer holds {buffered} bytes of the frame being decoded, but {seen} were given before; take bytes off only after the decoder returns an item"
    )]
    BufferShrank {
        /// Stream offset of the start of the unfinished frame.
        offset: u64,
        /// Bytes of the frame given in the call before.
        seen: usize,
        /// Bytes of it in the buffer now.
        buffered: usize,
    },
    /// The encoder cannot write a header without changing its meaning.
    #[error(
        "cannot encode header {name:?} of a {command} frame in STOMP {version}: it contains {forbidden}, which this frame cannot escape"
    )]
    Unrepresentable {
        /// The frame's command.
        command: crate::Command,
        /// The protocol version in use.
        version: Version,
        /// The header name, lossily decoded.
        name: String,
        /// What could not be written.
        forbidden: Forbidden,
    },
    /// A frame's `content-length` header disagrees with its body.
    #[error("content-length header says {declared:?} but the body is {actual} bytes")]
    ContentLengthMismatch {
        /// The header's value, lossily decoded.
        declared: String,
        /// The body's real length.
        actual: usize,
    },
    /// The encoder was given a body on a frame that must not have one.
    #[error("a {command} frame must not have a body (only SEND, MESSAGE and ERROR may)")]
    BodyNotAllowed {
        /// The frame's command.
        command: crate::Command,
    },
    /// An I/O error from the transport (only through the `tokio-util` integration).
    #[error("I/O error: {0}")]
    Io(Arc<io::Error>),
}

impl Error {
    /// The stream offset of a decoding error, `None` for encoding and I/O errors.
    pub fn offset(&self) -> Option<u64> {
        match self {
            Self::UnknownCommand { offset, .. }
            | Self::MissingColon { offset }
            | Self::EmptyHeaderName { offset }
            | Self::InvalidEscape { offset, .. }
            | Self::TrailingBackslash { offset }
            | Self::BareCarriageReturn { offset }
            | Self::InvalidContentLength { offset, .. }
            | Self::MissingNul { offset, .. }
            | Self::UnexpectedBody { offset, .. }
            | Self::LimitExceeded { offset, .. }
            | Self::Truncated { offset, .. }
            | Self::BufferShrank { offset, .. } => Some(*offset),
            Self::Unrepresentable { .. }
            | Self::ContentLengthMismatch { .. }
            | Self::BodyNotAllowed { .. }
            | Self::Io(_) => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Self::Io(Arc::new(e))
    }
}

/// Lossy, length-bounded text for error messages, so a hostile peer cannot make errors huge.
pub(crate) fn excerpt(bytes: &[u8]) -> String {
    const MAX: usize = 64;
    let cut = &bytes[..bytes.len().min(MAX)];
    let mut s = String::from_utf8_lossy(cut).into_owned();
    if bytes.len() > MAX {
        s.push('…');
    }
    s
}
