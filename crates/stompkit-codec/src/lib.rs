//! Zero-copy, incremental STOMP 1.0, 1.1 and 1.2 frame codec.
//!
//! - [`Decoder`] turns a byte stream into [`Item`]s (frames and heart-beats). It is
//!   incremental: the stream split at any byte boundaries gives the same items and errors as
//!   the stream whole, and no byte is examined twice. Header names, values and bodies of a
//!   decoded [`Frame`] are slices of the input buffer; only headers with escape sequences are
//!   copied (unescaped). [`Decoder::decode_slice`] decodes in place into [`FrameRef`]s that
//!   borrow a buffer the caller owns (and, until they are dropped, the decoder's header index).
//! - [`Encoder`] writes frames, escaping headers per version, into a caller's `BytesMut`.
//! - [`Limits`] bound frame size, header count and header line length; every violation is a
//!   typed [`Error`] naming the limit and the stream offset.
//! - With the `tokio-util` feature, [`StompCodec`] implements `tokio_util::codec`.
//! - [`value`] parses the header values that have a grammar (`heart-beat`,
//!   `accept-version`, `content-length`).
//!
//! The rules follow the STOMP specifications to the letter, per version: LF or CRLF line
//! ends in 1.2 only, escapes `\r \n \c \\` (1.2) or `\n \c \\` (1.1) and none in 1.0,
//! `CONNECT`/`STOMP`/`CONNECTED` headers never escaped, repeated headers kept in order with
//! the first winning on lookup, `content-length` bodies read exactly, bodies only on `SEND`,
//! `MESSAGE` and `ERROR`. One deliberate allowance: a header value may hold a raw colon
//! (the name ends at the first one), because 1.0 and `CONNECT`/`CONNECTED` frames need it
//! and brokers send it (ActiveMQ's `session:ID:host-…:9`).
//!
//! ```
//! use bytes::BytesMut;
//! use stompkit_codec::{Command, Decoder, Encoder, Frame, Item, Version};
//!
//! let frame = Frame::builder(Command::Send)
//!     .header("destination", "/queue/job-offers")
//!     .body(&b"{\"jobId\":123}"[..])
//!     .build();
//! let mut wire = BytesMut::new();
//! Encoder::new(Version::V1_2).encode(&frame, &mut wire)?;
//!
//! let mut decoder = Decoder::new(Version::V1_2);
//! assert_eq!(decoder.decode(&mut wire)?, Some(Item::Frame(frame)));
//! # Ok::<(), stompkit_codec::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Without the feature the type is not built: its link goes to the published docs instead.
#![cfg_attr(
    not(feature = "tokio-util"),
    doc = "\n[`StompCodec`]: https://docs.rs/stompkit-codec/latest/stompkit_codec/struct.StompCodec.html"
)]

mod command;
mod decode;
mod encode;
mod error;
mod escape;
mod frame;
mod line;
mod scan;
pub mod value;
mod version;

#[cfg(feature = "tokio-util")]
mod codec;

#[cfg(feature = "__fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

pub use command::Command;
pub use decode::{Decoder, Item, ItemRef, Limits};
pub use encode::Encoder;
pub use error::{Error, Forbidden, Limit};
pub use frame::{Frame, FrameBuilder, FrameRef, Headers};
pub use version::{ParseVersionError, Version};

#[cfg(feature = "tokio-util")]
pub use codec::StompCodec;

/// The README's example, compiled and run as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
