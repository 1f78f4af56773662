//! The incremental frame decoder.
//!
//! The decoder keeps its place between calls: it remembers where the current line starts,
//! how far it has looked, the headers parsed so far and, once the head is complete, where the
//! body starts. Each call looks only at bytes it has not looked at before, so a frame arriving
//! one byte at a time costs the same as a frame arriving whole. A body with `content-length`
//! is never scanned at all: the decoder waits until that many bytes are buffered.
//!
//! A frame's head is read one of two ways. The fast path takes a whole, plain head (LF line
//! ends, no backslash, at most eight headers, well inside every limit: what brokers send) in
//! one pass: one vectorised mask per 64-byte block marks its line ends, and one 16-byte
//! compare per line finds the colon. Anything else (a partial head, CRLF, escapes, an error,
//! a head near a limit) is read by the careful path, which also keeps its place between calls
//! and reports problems in byte order; the fast path never reports anything, it only gives up.
//! The careful path's vectorised pass marks every LF, colon, backslash and CR of a block, and
//! it walks the set bits, not the bytes. Header values with a grammar of their own
//! (`content-length`) are parsed with `nom`.
//!
//! A decoded frame holds one [`Bytes`] handle on its bytes (command through NUL), so taking a
//! frame off the buffer costs one reference count, and its header index sits inline in the
//! frame for up to eight headers (no allocation). `decode_slice` runs the same decoder over a
//! buffer the caller owns and hands out [`FrameRef`]s borrowing it and the decoder's header
//! index: both entry points try the fast path's whole frame (`fast_frame`) and then one
//! careful core (`find`), which read the next item without taking it off, and each entry
//! point takes it its own way.

use std::fmt;
use std::mem;

use bytes::{Buf, Bytes, BytesMut};

use crate::error::{Limit, excerpt};
use crate::escape::{UnescapeError, unescape_into};
use crate::frame::FrameRef;
use crate::frame::{
    HeaderIndex, HeaderSpan, HeaderSpans, INLINE_HEADERS, INLINE_MAX_OFFSET, IndexRef, InlineSpans,
    MAX_SPAN_OFFSET, Span,
};
use crate::{Command, Error, Frame, Version, line, scan};

/// What the decoder found next in the stream.
// Boxing the frame would cost an allocation per frame on the hot path; a heart-beat moving
// a frame-sized value is cheap by comparison.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A complete frame.
    Frame(Frame),
    /// An end-of-line between frames: a heart-beat (spec: "Heart-beating").
    ///
    /// Brokers also end frames with EOLs after the NUL (RabbitMQ always sends one); those
    /// cannot be told apart from heart-beats and are reported the same way. Either way they
    /// show the peer is alive.
    Heartbeat,
}

impl Item {
    /// The frame, if this is one.
    pub fn into_frame(self) -> Option<Frame> {
        match self {
            Self::Frame(frame) => Some(frame),
            Self::Heartbeat => None,
        }
    }
}

/// What [`Decoder::decode_slice`] found next in the stream: [`Item`], borrowing the
/// caller's buffer (`'a`) and the decoder (`'i`, see [`FrameRef`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemRef<'a, 'i> {
    /// A complete frame.
    Frame(FrameRef<'a, 'i>),
    /// An end-of-line between frames: a heart-beat (see [`Item::Heartbeat`]).
    Heartbeat,
}

impl<'a, 'i> ItemRef<'a, 'i> {
    /// The frame, if this is one.
    pub fn into_frame(self) -> Option<FrameRef<'a, 'i>> {
        match self {
            Self::Frame(frame) => Some(frame),
            Self::Heartbeat => None,
        }
    }

    /// The item with its own copy of a frame's bytes.
    pub fn to_item(&self) -> Item {
        match self {
            Self::Frame(frame) => Item::Frame(frame.to_frame()),
            Self::Heartbeat => Item::Heartbeat,
        }
    }
}

impl From<ItemRef<'_, '_>> for Item {
    fn from(item: ItemRef<'_, '_>) -> Self {
        item.to_item()
    }
}

/// Bounds on what the decoder accepts, so that a hostile or broken peer cannot make it buffer
/// without end.
///
/// Fields can be read and set directly; the `with_*` methods chain.
///
/// ```
/// use stompkit_codec::Limits;
///
/// let limits = Limits::default().with_max_frame_bytes(64 * 1024).with_max_headers(32);
/// assert_eq!(limits.max_frame_bytes, 64 * 1024);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest frame, from the first byte of the command to the closing NUL.
    /// Default 8 MiB. A `content-length` above it is refused as soon as it is read.
    pub max_frame_bytes: usize,
    /// Most headers in one frame. Default 128.
    pub max_headers: usize,
    /// Longest command or header line, without its EOL. Default 16 KiB (room for a JWT).
    pub max_header_line_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 8 * 1024 * 1024,
            max_headers: 128,
            max_header_line_bytes: 16 * 1024,
        }
    }
}

impl Limits {
    /// Sets [`max_frame_bytes`](Self::max_frame_bytes).
    pub fn with_max_frame_bytes(mut self, n: usize) -> Self {
        self.max_frame_bytes = n;
        self
    }

    /// Sets [`max_headers`](Self::max_headers).
    pub fn with_max_headers(mut self, n: usize) -> Self {
        self.max_headers = n;
        self
    }

    /// Sets [`max_header_line_bytes`](Self::max_header_line_bytes).
    pub fn with_max_header_line_bytes(mut self, n: usize) -> Self {
        self.max_header_line_bytes = n;
        self
    }
}

/// Decodes a STOMP byte stream into [`Item`]s, one call at a time.
///
/// Feed it a [`BytesMut`] that you append received bytes to; each call to
/// [`decode`](Self::decode) removes one complete item from the front, or returns `Ok(None)`
/// when more bytes are needed (keep the unconsumed bytes in the buffer and call again after
/// appending). This is the contract of `tokio_util::codec::Decoder`, which the `tokio-util`
/// feature implements on [`StompCodec`]. When you own the buffer,
/// [`decode_slice`](Self::decode_slice) reads it in place instead, into [`FrameRef`]s that
/// borrow it.
///
/// ```
/// use bytes::BytesMut;
/// use stompkit_codec::{Command, Decoder, Item, Version};
///
/// let mut decoder = Decoder::new(Version::V1_2);
/// let mut buf = BytesMut::from(&b"MESSAGE\ndestination:/queue/a\nx:a\\cb\n\nhel"[..]);
/// assert_eq!(decoder.decode(&mut buf)?, None); // body not complete yet
/// buf.extend_from_slice(b"lo\0\n");
/// let Some(Item::Frame(frame)) = decoder.decode(&mut buf)? else { panic!() };
/// assert_eq!(frame.command(), Command::Message);
/// assert_eq!(frame.header("x"), Some(&b"a:b"[..]));
/// assert_eq!(frame.body(), b"hello");
/// assert_eq!(decoder.decode(&mut buf)?, Some(Item::Heartbeat)); // the trailing EOL
/// # Ok::<(), stompkit_codec::Error>(())
/// ```
// Without the feature the type is not built: its link goes to the published docs instead.
#[cfg_attr(feature = "tokio-util", doc = "\n[`StompCodec`]: crate::StompCodec")]
#[cfg_attr(
    not(feature = "tokio-util"),
    doc = "\n[`StompCodec`]: https://docs.rs/stompkit-codec/latest/stompkit_codec/struct.StompCodec.html"
)]
pub struct Decoder {
    version: Version,
    limits: Limits,
    /// Bytes removed from the front of the stream so far (for error offsets).
    consumed: u64,
    failed: Option<Error>,
    progress: Progress,
    /// The header index of the frame [`decode_slice`](Self::decode_slice) returned last,
    /// when the careful path read it (its [`FrameRef`] borrows it; one the fast path read
    /// borrows [`Progress::inline`]). A shared index (with any unescaped header copies) is
    /// freed at the next call.
    index: HeaderIndex,
    /// The fast path's share of the limits, worked out when they are set rather than per
    /// frame (see [`FastLimits`]).
    fast_limits: FastLimits,
}

impl fmt::Debug for Decoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decoder")
            .field("version", &self.version)
            .field("limits", &self.limits)
            .field("consumed", &self.consumed)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

/// How the headers of the frame being decoded are escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Escaping {
    #[default]
    None,
    V1_1,
    V1_2,
}

/// Where the decoder is inside the frame at the front of the buffer.
/// All positions are relative to the buffer's start, which is always the frame's first byte.
#[derive(Debug, Default)]
struct Progress {
    /// `None` until the command line is complete.
    command: Option<Command>,
    escaping: Escaping,
    /// Start of the line being read.
    line_start: usize,
    /// Next byte not yet looked at (while reading the head or scanning a body for NUL).
    scan: usize,
    /// The line being read holds a backslash.
    line_escaped: bool,
    /// First colon of the line being read, once seen.
    line_colon: Option<usize>,
    /// Headers read by the careful path.
    headers: HeaderSpans,
    /// Headers read by the fast path (which only reads heads it can index inline).
    inline: InlineSpans,
    /// The fast path read this head: the headers are in `inline`.
    fast: bool,
    /// Unescaped copies of headers that held escapes.
    unescaped: Vec<u8>,
    content_length: Option<usize>,
    /// First body byte; 0 while the head is incomplete (a head is never empty).
    body_start: usize,
    /// Bytes of the frame the last call was given, when it returned `None` mid-frame: the
    /// next call must be given at least as many.
    given: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new(Version::default())
    }
}

impl Decoder {
    /// A decoder for `version` with default [`Limits`].
    pub fn new(version: Version) -> Self {
        Self::with_limits(version, Limits::default())
    }

    /// A decoder for `version` with the given limits.
    pub fn with_limits(version: Version, limits: Limits) -> Self {
        Self {
            version,
            limits,
            consumed: 0,
            failed: None,
            progress: Progress::default(),
            index: HeaderIndex::Inline(InlineSpans::EMPTY),
            fast_limits: FastLimits::new(&limits),
        }
    }

    /// The version whose rules apply.
    pub fn version(&self) -> Version {
        self.version
    }

    /// Switches to another version's rules, e.g. after `CONNECTED` named the negotiated one.
    ///
    /// It applies to bytes not yet looked at; call it between frames.
    pub fn set_version(&mut self, version: Version) {
        self.version = version;
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Replaces the limits; they apply from the next check on.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
        self.fast_limits = FastLimits::new(&limits);
    }

    /// How many bytes the decoder has removed from the front of the stream so far.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Whether a frame has been started but not finished.
    pub fn is_mid_frame(&self) -> bool {
        self.progress.scan > 0 || self.progress.command.is_some()
    }

    /// Decodes the next item from the front of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` holds no complete item yet. After an error the stream
    /// cannot be resynchronised and every later call returns the same error.
    #[inline]
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Item>, Error> {
        if self.bare_line_feed(buf) {
            buf.advance(1);
            return Ok(Some(Item::Heartbeat));
        }
        self.decode_item(buf)
    }

    /// A line feed between frames is the most common item of all (RabbitMQ sends one after
    /// every frame): both entry points answer it inline in the caller, through this, and
    /// leave the rest out of line. Counts the byte as consumed when it is one.
    #[inline]
    fn bare_line_feed(&mut self, buf: &[u8]) -> bool {
        if buf.first() == Some(&b'\n') && self.between_frames() {
            self.consumed += 1;
            return true;
        }
        false
    }

    /// Nothing of a frame has been looked at and no error has been seen.
    #[inline]
    fn between_frames(&self) -> bool {
        self.failed.is_none() && self.progress.body_start == 0 && self.progress.scan == 0
    }

    /// [`decode`](Self::decode) for everything but a bare line feed between frames.
    #[inline(never)]
    fn decode_item(&mut self, buf: &mut BytesMut) -> Result<Option<Item>, Error> {
        // The usual frame returns from here, built in place: the result is written once,
        // never copied out of a temporary or dispatched on.
        if let Some(fast) = self.fast_frame(buf) {
            let data = self.cut_frame(buf, fast.nul);
            let headers = HeaderIndex::Inline(self.progress.inline);
            return Ok(Some(Item::Frame(Frame::decoded(
                fast.command,
                data,
                headers,
                fast.body_start,
            ))));
        }
        Ok(Some(match self.find(buf) {
            Found::Failed => return Err(self.failure()),
            Found::NeedMore => return Ok(None),
            Found::Heartbeat(len) => {
                buf.advance(len);
                self.consumed += len as u64;
                Item::Heartbeat
            }
            Found::Frame { nul } => {
                let data = self.cut_frame(buf, nul);
                let (command, headers, body_start) = self.finish_frame();
                Item::Frame(Frame::decoded(command, data, headers, body_start))
            }
        }))
    }

    /// Decodes the next item at the front of `buf` in place, without taking it off: returns
    /// the item, whose frame borrows `buf`, and its length in bytes. The caller drops that
    /// many bytes from the front before the next call.
    ///
    /// The same decoder as [`decode`](Self::decode), for callers that own their buffer (a
    /// slice of a read buffer, a memory-mapped capture) and look at each frame before moving
    /// on: no reference count per frame, and for a plain head of up to eight headers (what
    /// brokers send) no allocation or copy either. The frame also borrows the decoder, which
    /// keeps its header index: the result is a few words, which costs little to move, but
    /// the frame must be gone before the decoder is used again (its body and bytes borrow
    /// only `buf` and may be kept; header values may be the decoder's copies;
    /// [`FrameRef::to_frame`] keeps the whole frame). One consequence: a helper that loops
    /// over `decode_slice` past heart-beats and returns the first frame is refused by today's
    /// borrow checker (a borrow returned from inside a loop); handle heart-beats at the call
    /// site, or return `to_frame()`. Rules, limits and errors are the same, and so is the
    /// incremental contract: `Ok(None)` means the item is not complete, and
    /// the next call must be given the same bytes again, with more after them (a shorter
    /// buffer is an [`Error::BufferShrank`]). When the stream has ended,
    /// [`decode_slice_eof`](Self::decode_slice_eof) reports a truncated last frame.
    ///
    /// ```
    /// use stompkit_codec::{Command, Decoder, ItemRef, Version};
    ///
    /// let wire = b"MESSAGE\ndestination:/queue/a\ncontent-length:5\n\nhello\0\n";
    /// let mut decoder = Decoder::new(Version::V1_2);
    /// let mut at = 0;
    /// let mut bodies = Vec::new();
    /// while let Some((item, len)) = decoder.decode_slice(&wire[at..])? {
    ///     if let ItemRef::Frame(frame) = item {
    ///         assert_eq!(frame.command(), Command::Message);
    ///         assert_eq!(frame.header("destination"), Some(&b"/queue/a"[..]));
    ///         bodies.push(frame.body());
    ///     }
    ///     at += len;
    /// }
    /// assert_eq!(bodies, [&b"hello"[..]]);
    /// assert_eq!(at, wire.len()); // the frame, then the EOL after it as a heart-beat
    /// # Ok::<(), stompkit_codec::Error>(())
    /// ```
    #[inline]
    pub fn decode_slice<'a, 'i>(
        &'i mut self,
        buf: &'a [u8],
    ) -> Result<Option<(ItemRef<'a, 'i>, usize)>, Error> {
        if self.bare_line_feed(buf) {
            return Ok(Some((ItemRef::Heartbeat, 1)));
        }
        self.decode_slice_item(buf)
    }

    /// Like [`decode_slice`](Self::decode_slice), for when the stream has ended: bytes left
    /// in `buf` that do not form a complete item are an [`Error::Truncated`], as with
    /// [`decode_eof`](Self::decode_eof). Call it in place of `decode_slice` once `buf` holds
    /// the rest of the stream, until it returns `Ok(None)`.
    pub fn decode_slice_eof<'a, 'i>(
        &'i mut self,
        buf: &'a [u8],
    ) -> Result<Option<(ItemRef<'a, 'i>, usize)>, Error> {
        // The steps of `decode_slice_item`, not a call to it: returning its item (a borrow of
        // the decoder) from one arm and calling `truncated` in another is refused by today's
        // borrow checker.
        let end = match self.slice_fast(buf) {
            Some(fast) => Some(SliceEnd::Fast(fast)),
            None => self.slice_careful(buf)?,
        };
        match end {
            Some(end) => Ok(Some(self.slice_item(buf, end))),
            None if buf.is_empty() => Ok(None),
            None => Err(self.truncated(buf.len())),
        }
    }

    /// [`decode_slice`](Self::decode_slice) for everything but a bare line feed between
    /// frames.
    #[inline(never)]
    fn decode_slice_item<'a, 'i>(
        &'i mut self,
        buf: &'a [u8],
    ) -> Result<Option<(ItemRef<'a, 'i>, usize)>, Error> {
        // The usual frame returns from here, as `decode_item`'s does: not through the
        // `SliceEnd` the careful path's items share, whose kind would be dispatched on.
        if let Some(fast) = self.slice_fast(buf) {
            return Ok(Some(self.slice_item(buf, SliceEnd::Fast(fast))));
        }
        Ok(self
            .slice_careful(buf)?
            .map(|end| self.slice_item(buf, end)))
    }

    /// The first step of [`decode_slice`](Self::decode_slice): frees the index of the last
    /// frame the careful path read, then tries the fast path's whole frame at the front of
    /// `buf` (see [`fast_frame`](Self::fast_frame)) and counts it as consumed.
    #[inline(always)]
    fn slice_fast(&mut self, buf: &[u8]) -> Option<WholeFrame> {
        if let HeaderIndex::Shared(_) = self.index {
            self.free_index();
        }
        let fast = self.fast_frame(buf)?;
        self.consumed += (fast.nul + 1) as u64;
        Some(fast)
    }

    /// The second step of [`decode_slice`](Self::decode_slice), after
    /// [`slice_fast`](Self::slice_fast) found no whole frame: finds the next item at the
    /// front of `buf` the careful way and counts it as consumed. A frame's header index is
    /// left in the decoder, for [`slice_item`](Self::slice_item).
    #[inline(always)]
    fn slice_careful(&mut self, buf: &[u8]) -> Result<Option<SliceEnd>, Error> {
        let end = match self.find(buf) {
            Found::Failed => return Err(self.failure()),
            Found::NeedMore => return Ok(None),
            Found::Heartbeat(len) => SliceEnd::Heartbeat(len),
            Found::Frame { nul } => {
                let (command, headers, body_start) = self.finish_frame();
                self.index = headers;
                SliceEnd::Recorded(WholeFrame {
                    command,
                    body_start,
                    nul,
                })
            }
        };
        self.consumed += end.len() as u64;
        Ok(Some(end))
    }

    /// Frees the shared index of the last frame the careful path read for
    /// [`decode_slice`](Self::decode_slice) (and its unescaped header copies): the frame that
    /// borrowed it is gone, as this call borrows the decoder. Out of line: it is rare, and
    /// inlined it would slow the hot path.
    #[cold]
    #[inline(never)]
    fn free_index(&mut self) {
        self.index = HeaderIndex::Inline(InlineSpans::EMPTY);
    }

    /// The item [`slice_fast`](Self::slice_fast) or [`slice_careful`](Self::slice_careful)
    /// found, and its length. A frame borrows the decoder's header index rather than copying
    /// it: the result is then a few words, which the caller moves cheaply.
    #[inline(always)]
    fn slice_item<'a, 'i>(&'i self, buf: &'a [u8], end: SliceEnd) -> (ItemRef<'a, 'i>, usize) {
        let (frame, headers) = match end {
            SliceEnd::Heartbeat(len) => return (ItemRef::Heartbeat, len),
            SliceEnd::Fast(frame) => (frame, IndexRef::Inline(&self.progress.inline)),
            SliceEnd::Recorded(frame) => (frame, self.index.as_ref()),
        };
        let data = &buf[..=frame.nul];
        let item = FrameRef::new(frame.command, data, headers, frame.body_start);
        (ItemRef::Frame(item), data.len())
    }

    /// The fast path's whole frame at the front of `buf`, when there is one: a plain head
    /// read by [`fast_head`](Self::fast_head) at the start of a frame, with its
    /// `content-length` body and NUL buffered (its headers are in [`Progress::inline`]).
    /// When only the head is whole, records it for [`find`](Self::find) to read the body;
    /// when the fast path does not apply, leaves everything to `find`.
    #[inline(always)]
    fn fast_frame(&mut self, buf: &[u8]) -> Option<WholeFrame> {
        if !self.between_frames() {
            return None;
        }
        let head = self.fast_head(buf)?;
        if let Some(nul) = self.fast_body_end(buf, &head) {
            return Some(WholeFrame {
                command: head.command,
                body_start: head.body_start,
                nul,
            });
        }
        self.progress
            .start_fast(head, self.escaping_for(head.command));
        None
    }

    /// Finds the end of the next item at the front of `buf` the careful way, reading as
    /// much of it as is buffered; takes nothing off. Called after
    /// [`fast_frame`](Self::fast_frame) found no whole frame. An error is remembered (every
    /// later call returns it) and found as [`Found::Failed`].
    #[inline(always)]
    fn find(&mut self, buf: &[u8]) -> Found {
        if self.failed.is_some() {
            return Found::Failed;
        }
        if self.progress.body_start == 0 && self.progress.scan == 0 {
            match self.heartbeat(buf) {
                Ok(Boundary::Heartbeat(len)) => return Found::Heartbeat(len),
                Ok(Boundary::NeedMore) => return Found::NeedMore,
                Ok(Boundary::Frame) => {}
                Err(error) => return self.poison(error),
            }
        }
        if let Err(error) = self.check_resumed(buf) {
            return self.poison(error);
        }
        if self.progress.body_start == 0 {
            match self.read_head(buf) {
                Ok(true) => {}
                Ok(false) => return self.need_more(buf),
                Err(error) => return self.poison(error),
            }
        }
        match self.body_end(buf) {
            Ok(Some(nul)) => Found::Frame { nul },
            Ok(None) => self.need_more(buf),
            Err(error) => self.poison(error),
        }
    }

    /// The frame is not complete in `buf`: remembers how much of it was given, which the
    /// next call must give again.
    #[inline]
    fn need_more(&mut self, buf: &[u8]) -> Found {
        self.progress.given = buf.len();
        Found::NeedMore
    }

    /// When a call resumes a frame, `buf` must still hold every byte of it given before (the
    /// front of the stream is taken off only with the items). Only the length can be
    /// checked: bytes taken off the front and as many appended go unnoticed.
    #[inline]
    fn check_resumed(&self, buf: &[u8]) -> Result<(), Error> {
        let given = self.progress.given;
        if buf.len() < given {
            return Err(Error::BufferShrank {
                offset: self.consumed,
                seen: given,
                buffered: buf.len(),
            });
        }
        Ok(())
    }

    /// Remembers `error`: every later call returns it.
    #[cold]
    #[inline(never)]
    fn poison(&mut self, error: Error) -> Found {
        self.failed = Some(error);
        Found::Failed
    }

    /// The error the stream failed with (after [`Found::Failed`]).
    #[cold]
    #[inline(never)]
    fn failure(&self) -> Error {
        self.failed.clone().expect("the decoder has failed")
    }

    /// Like [`decode`](Self::decode), for when the stream has ended: bytes left over that do
    /// not form a complete item are a [`Error::Truncated`].
    pub fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Item>, Error> {
        match self.decode(buf)? {
            Some(item) => Ok(Some(item)),
            None if buf.is_empty() => Ok(None),
            None => Err(self.truncated(buf.len())),
        }
    }

    /// The stream ended with `buffered` bytes of an unfinished item: the error, remembered.
    #[cold]
    fn truncated(&mut self, buffered: usize) -> Error {
        let error = Error::Truncated {
            offset: self.consumed,
            buffered,
        };
        self.failed = Some(error.clone());
        error
    }

    /// Looks at the first bytes of a frame slot: an EOL there is a heart-beat.
    fn heartbeat(&self, buf: &[u8]) -> Result<Boundary, Error> {
        match buf {
            [] => Ok(Boundary::NeedMore),
            [b'\n', ..] => Ok(Boundary::Heartbeat(1)),
            [b'\r', rest @ ..] if self.version.allows_crlf() => match rest.first() {
                None => Ok(Boundary::NeedMore),
                Some(b'\n') => Ok(Boundary::Heartbeat(2)),
                Some(_) => Err(Error::BareCarriageReturn {
                    offset: self.consumed,
                }),
            },
            _ => Ok(Boundary::Frame),
        }
    }

    /// The fast path for a whole, plain head at the front of `buf`: no CR, no backslash, every
    /// header line with a name and a colon, and comfortably inside every limit. On anything
    /// else it returns `None` and [`read_head`](Self::read_head) takes over (the spans it
    /// wrote into [`Progress::inline`] count for nothing then),
    /// so errors, partial input and heads near a limit are always handled by one careful path.
    /// It runs at most once per frame (only while nothing of the frame has been scanned), so a
    /// bail costs one pass.
    ///
    /// Line ends come from one vectorised mask per 64-byte block (which also marks every byte
    /// that makes a head not plain); each line's colon from one 16-byte compare at the line's
    /// start (header names are short). Headers go into the decoder's inline index, so a head
    /// with more than eight of them, or longer than 64 KiB, is the careful path's. So is a
    /// head longer than the header line limit (16 KiB by default): the fast path reads only
    /// heads no line of which can break it.
    #[inline(always)]
    fn fast_head(&mut self, buf: &[u8]) -> Option<FastHead> {
        let FastLimits { reach, max_headers } = self.fast_limits;
        let visible = buf.len().min(reach);
        // The command line: every command fits in the first 16 bytes with its line feed.
        let first = buf.first_chunk::<16>()?;
        // What a broker sends most, checked as one 8-byte word.
        let (command, at) = if first[..8] == *b"MESSAGE\n" {
            (Command::Message, 7)
        } else {
            // 32 when there is no line feed; a 16-byte head is past any limit check anyway.
            let at = scan::line_feeds16(first).trailing_zeros() as usize;
            match buf.get(..at).and_then(Command::from_bytes) {
                Some(command) => (command, at),
                None => return None,
            }
        };
        if at >= visible {
            return None;
        }
        let max_frame = self.limits.max_frame_bytes;
        // Spans go straight into the decoder's inline index, slot by slot; the count is
        // worked out from the slots left once the head is whole, so the loop keeps none.
        let mut slots = self.progress.inline.slots();
        // `NO_LENGTH` until a `content-length` is read: a sentinel keeps this state one word.
        let mut content_length = NO_LENGTH;
        let mut line_start = at + 1;
        let mut base = line_start;
        // Lines starting up to here have 16 bytes to probe for their colon.
        let probe_limit = buf.len() - 16;
        while base < visible {
            let rest = &buf[base..visible];
            let tail;
            let block = match rest.first_chunk::<{ scan::BLOCK }>() {
                Some(full) => full,
                None => {
                    tail = scan::padded(rest, b' ');
                    &tail
                }
            };
            let mut ends = scan::line_end_bits(block);
            while ends != 0 {
                let i = ends.trailing_zeros() as usize % scan::BLOCK;
                ends &= ends - 1;
                // A CR, backslash or other control byte before the head's end: careful path.
                if block[i] != b'\n' {
                    return None;
                }
                let at = base + i;
                if at == line_start {
                    let count = INLINE_HEADERS - slots.len();
                    if count > max_headers {
                        return None;
                    }
                    drop(slots); // its borrow of the index ends here
                    self.progress.inline.set_len(count);
                    return Some(FastHead {
                        command,
                        body_start: at + 1,
                        content_length: (content_length != NO_LENGTH).then_some(content_length),
                    });
                }
                // The colon: one 16-byte compare finds it for a name of 1 to 15 bytes that
                // ends before the line feed (bit 16 stands for "not in these 16 bytes").
                let probe = if line_start <= probe_limit {
                    scan::colons16(&buf[line_start..line_start + 16])
                } else {
                    0
                };
                let name = (probe | 1 << 16).trailing_zeros() as usize;
                let slow = || first_colon(buf, line_start, at).map(|c| (c, c - line_start));
                // Two nested tests rather than one `||`: it profiled faster in this loop.
                let (colon, name) = if name.wrapping_sub(1) < 15 {
                    if line_start + name < at {
                        (line_start + name, name)
                    } else {
                        slow()?
                    }
                } else {
                    slow()?
                };
                let Some(slot) = slots.next() else {
                    return None; // more headers than an inline index holds
                };
                // `at < visible <= INLINE_MAX_OFFSET`: every offset fits a `u16`.
                debug_assert!(colon < at && at <= INLINE_MAX_OFFSET);
                *slot = [line_start as u16, colon as u16, at as u16];
                if name == 14 && content_length == NO_LENGTH {
                    content_length =
                        fast_content_length(buf, line_start, at, max_frame)?.unwrap_or(NO_LENGTH);
                }
                line_start = at + 1;
            }
            // A padded block is the last: `base` passes `visible` and the loop ends (no line
            // end is marked in the padding).
            base += scan::BLOCK;
        }
        None
    }

    fn escaping_for(&self, command: Command) -> Escaping {
        match self.version {
            _ if !command.escapes_headers() => Escaping::None,
            Version::V1_0 => Escaping::None,
            Version::V1_1 => Escaping::V1_1,
            Version::V1_2 => Escaping::V1_2,
        }
    }

    /// Reads head lines from where the last call stopped. `Ok(true)` once the blank line that
    /// ends the head has been read.
    ///
    /// Problems are reported in byte order, whatever the split of the input: a limit is
    /// checked at every line end before that line is acted on, and at the end of the input.
    #[inline(never)]
    fn read_head(&mut self, buf: &[u8]) -> Result<bool, Error> {
        let crlf = self.version.allows_crlf();
        let mut line = Line {
            start: self.progress.line_start,
            colon: self.progress.line_colon,
            escaped: self.progress.line_escaped,
        };
        // Bytes past the frame limit are never looked at: reaching them is the error.
        let visible = buf.len().min(self.head_limit());
        let mut block_start = self.progress.scan;
        let outcome = loop {
            if block_start >= visible {
                break Ok(false);
            }
            let (m, len) = scan::block(&buf[block_start..visible]);
            // Colons and backslashes not yet assigned to a finished line.
            let mut colons = m.colon;
            let mut backslashes = m.backslash;
            let mut events = m.lf | if crlf { m.cr } else { 0 };
            let mut stop = None;
            while events != 0 {
                let i = events.trailing_zeros() as usize;
                events &= events - 1;
                let at = block_start + i;
                // The line's bytes so far, without its EOL (a CR here is either an EOL's
                // first byte or an error, never content).
                let content_end = if crlf && at > line.start && buf[at - 1] == b'\r' {
                    at - 1
                } else {
                    at
                };
                if content_end - line.start > self.limits.max_header_line_bytes {
                    stop = Some(Err(self.limit(Limit::HeaderLineBytes, line.start)));
                    break;
                }
                let before = (1u64 << i) - 1;
                if m.cr & (1u64 << i) != 0 {
                    match buf.get(at + 1) {
                        Some(b'\n') => continue, // the LF that follows ends the line
                        Some(_) => {
                            stop = Some(Err(Error::BareCarriageReturn {
                                offset: self.consumed + at as u64,
                            }));
                            break;
                        }
                        None => {
                            // Decide when the next byte arrives; keep what this line holds.
                            line.absorb(block_start, colons & before, backslashes & before);
                            block_start = at;
                            stop = Some(Ok(false));
                            break;
                        }
                    }
                }
                // A line feed: one line is complete.
                line.absorb(block_start, colons & before, backslashes & before);
                colons &= !scan::through(i);
                backslashes &= !scan::through(i);
                let end = content_end;
                let result = if self.progress.command.is_none() {
                    self.command_line(&buf[line.start..end], line.start)
                } else if end == line.start {
                    self.progress.body_start = at + 1;
                    block_start = at + 1;
                    stop = Some(Ok(true));
                    break;
                } else {
                    self.header_line(buf, &line, end, at)
                };
                if let Err(e) = result {
                    stop = Some(Err(e));
                    break;
                }
                line = Line {
                    start: at + 1,
                    colon: None,
                    escaped: false,
                };
            }
            if let Some(outcome) = stop {
                break outcome;
            }
            line.absorb(block_start, colons, backslashes);
            block_start += len;
        };
        self.progress.line_start = line.start;
        self.progress.line_colon = line.colon;
        self.progress.line_escaped = line.escaped;
        self.progress.scan = block_start;
        match outcome {
            Ok(false) => self.check_partial_head(buf).map(|()| false),
            other => other,
        }
    }

    /// Heads longer than this are refused (see [`head_limit`]).
    #[inline]
    fn head_limit(&self) -> usize {
        head_limit(&self.limits)
    }

    /// The limits the last byte buffered breaks, when the head is not complete: everything
    /// buffered belongs to this frame. Only bytes up to the frame limit count, as in
    /// `read_head`, so the error is the same however the input was split.
    fn check_partial_head(&self, buf: &[u8]) -> Result<(), Error> {
        let buffered = buf.len();
        let limit = self.head_limit();
        let start = self.progress.line_start;
        let seen = buffered.min(limit + 1);
        // A CR last may be the first byte of a CRLF: not content (yet).
        let pending_cr = self.version.allows_crlf() && seen > start && buf[seen - 1] == b'\r';
        if seen > start
            && seen - start - usize::from(pending_cr) > self.limits.max_header_line_bytes
        {
            return Err(self.limit(Limit::HeaderLineBytes, start));
        }
        if buffered > limit {
            return Err(self.limit(Limit::FrameBytes, 0));
        }
        Ok(())
    }

    fn command_line(&mut self, line: &[u8], start: usize) -> Result<(), Error> {
        let command = Command::from_bytes(line).ok_or_else(|| Error::UnknownCommand {
            offset: self.consumed + start as u64,
            command: excerpt(line),
        })?;
        self.progress.escaping = self.escaping_for(command);
        self.progress.command = Some(command);
        Ok(())
    }

    /// Records the header on `line.start..end`, whose line feed is at `lf`.
    #[inline]
    fn header_line(&mut self, buf: &[u8], line: &Line, end: usize, lf: usize) -> Result<(), Error> {
        let start = line.start;
        if self.progress.headers.len() >= self.limits.max_headers {
            return Err(self.limit(Limit::Headers, start));
        }
        let offset = self.consumed + start as u64;
        let colon = match line.colon {
            // A colon at `end` would be the CR of a CRLF: not part of this line.
            Some(colon) if colon < end => colon,
            _ => return Err(Error::MissingColon { offset }),
        };
        if colon == start {
            return Err(Error::EmptyHeaderName { offset });
        }
        let span = if line.escaped && self.progress.escaping != Escaping::None {
            HeaderSpan {
                name: self.unescape(buf, start..colon)?,
                value: self.unescape(buf, colon + 1..end)?,
            }
        } else {
            HeaderSpan {
                name: Span::head(start..colon),
                value: Span::head(colon + 1..end),
            }
        };
        self.progress.headers.push(span);

        if self.progress.content_length.is_none() && self.is_content_length(buf, span) {
            self.content_length(buf, span, offset, lf)?;
        }
        Ok(())
    }

    #[inline]
    fn is_content_length(&self, buf: &[u8], span: HeaderSpan) -> bool {
        let name = self.resolve(buf, span.name);
        name.len() == 14 && name == b"content-length"
    }

    #[inline]
    fn resolve<'a>(&'a self, buf: &'a [u8], span: Span) -> &'a [u8] {
        span.resolve(buf, &self.progress.unescaped)
    }

    fn content_length(
        &mut self,
        buf: &[u8],
        span: HeaderSpan,
        offset: u64,
        lf: usize,
    ) -> Result<(), Error> {
        let value = self.resolve(buf, span.value);
        let length = line::content_length(value).ok_or_else(|| Error::InvalidContentLength {
            offset,
            value: excerpt(value),
        })?;
        match length_within_frame(length, lf, self.limits.max_frame_bytes) {
            Some(length) => {
                self.progress.content_length = Some(length);
                Ok(())
            }
            None => Err(self.limit(Limit::FrameBytes, 0)),
        }
    }

    /// Unescapes `range` of `buf` into the side buffer if it holds a backslash.
    fn unescape(&mut self, buf: &[u8], range: std::ops::Range<usize>) -> Result<Span, Error> {
        let src = &buf[range.clone()];
        if scan::find_backslash(src).is_none() {
            return Ok(Span::head(range));
        }
        let out = &mut self.progress.unescaped;
        let from = out.len();
        let with_cr = self.progress.escaping == Escaping::V1_2;
        unescape_into(src, with_cr, out).map_err(|e| match e {
            UnescapeError::Undefined { at, escape } => Error::InvalidEscape {
                offset: self.consumed + (range.start + at) as u64,
                escape,
                version: self.version,
            },
            UnescapeError::Trailing { at } => Error::TrailingBackslash {
                offset: self.consumed + (range.start + at) as u64,
            },
        })?;
        Ok(Span::unescaped(from..out.len()))
    }

    /// Where the NUL that ends the frame is, once the head is complete and it is buffered.
    #[inline]
    fn body_end(&mut self, buf: &[u8]) -> Result<Option<usize>, Error> {
        let body_start = self.progress.body_start;
        let command = self.progress.command.expect("head is complete");
        if !command.allows_body() {
            let has_body = match self.progress.content_length {
                Some(length) => length > 0,
                None => buf.get(body_start).is_some_and(|&b| b != 0),
            };
            if has_body {
                return Err(Error::UnexpectedBody {
                    offset: self.consumed + body_start as u64,
                    command,
                });
            }
        }
        let max = self.limits.max_frame_bytes;
        let nul = match self.progress.content_length {
            Some(length) => {
                // `length` was checked against the limit, so this cannot overflow.
                let nul = body_start + length;
                if nul >= max {
                    return Err(self.limit(Limit::FrameBytes, 0));
                }
                match buf.get(nul) {
                    None => return Ok(None),
                    Some(0) => nul,
                    Some(_) => {
                        return Err(Error::MissingNul {
                            offset: self.consumed + nul as u64,
                            content_length: length as u64,
                        });
                    }
                }
            }
            None => {
                let from = self.progress.scan.max(body_start);
                match memchr::memchr(0, &buf[from..]) {
                    Some(i) if from + i < max => from + i,
                    Some(_) => return Err(self.limit(Limit::FrameBytes, 0)),
                    None => {
                        self.progress.scan = buf.len();
                        if buf.len() > max {
                            return Err(self.limit(Limit::FrameBytes, 0));
                        }
                        return Ok(None);
                    }
                }
            }
        };

        Ok(Some(nul))
    }

    /// The parts of the frame whose head the careful path read (or whose body was read after
    /// the fast path had read its head), and a reset for the next frame.
    #[inline]
    fn finish_frame(&mut self) -> (Command, HeaderIndex, usize) {
        let command = self.progress.command.expect("head is complete");
        let body_start = self.progress.body_start;
        let headers = match mem::take(&mut self.progress.fast) {
            true => HeaderIndex::Inline(self.progress.inline),
            false => {
                let headers = HeaderIndex::copied(
                    &self.progress.headers,
                    Bytes::copy_from_slice(&self.progress.unescaped),
                );
                self.progress.recycle_headers();
                headers
            }
        };
        self.progress.reset();
        (command, headers, body_start)
    }

    /// Where the NUL of a frame whose head the fast path read is, when the frame can be taken
    /// at once: its `content-length` body and NUL are buffered, and nothing about the body
    /// is wrong. Anything else (no `content-length`, a body still arriving, an error) is left
    /// to [`body_end`](Self::body_end).
    #[inline]
    fn fast_body_end(&self, buf: &[u8], head: &FastHead) -> Option<usize> {
        let length = head.content_length?;
        let nul = head.body_start + length;
        let body_ok = length == 0 || head.command.allows_body();
        (body_ok && nul < self.limits.max_frame_bytes && buf.get(nul) == Some(&0)).then_some(nul)
    }

    /// Removes the frame ending with the NUL at `nul` from the front of `buf`, as one handle
    /// on its bytes (one reference count, whatever the caller does with the frame).
    #[inline]
    fn cut_frame(&mut self, buf: &mut BytesMut, nul: usize) -> Bytes {
        self.consumed += (nul + 1) as u64;
        buf.split_to(nul + 1).freeze()
    }

    /// The error for a broken limit; `at` is where in the buffer it was broken (the frame's
    /// start for [`Limit::FrameBytes`], the line's start for the line limits).
    fn limit(&self, limit: Limit, at: usize) -> Error {
        Error::LimitExceeded {
            offset: self.consumed + at as u64,
            limit,
            max: match limit {
                Limit::FrameBytes => self.limits.max_frame_bytes,
                Limit::Headers => self.limits.max_headers,
                Limit::HeaderLineBytes => self.limits.max_header_line_bytes,
            },
        }
    }
}

/// The fast path's look at the header line `start..lf` whose name is 14 bytes long, before
/// any `content-length`: `Some(None)` when it is something else, `Some(Some(length))` when it
/// is a `content-length` the frame can carry, and `None` when its value is invalid or over the
/// frame limit (the careful path reports it). Out of line: it runs once or twice per frame.
#[inline(never)]
fn fast_content_length(
    buf: &[u8],
    start: usize,
    lf: usize,
    max_frame: usize,
) -> Option<Option<usize>> {
    match buf[start..lf].split_first_chunk::<15>() {
        Some((name, value)) if is_content_length_name(name) => line::content_length(value)
            .and_then(|length| length_within_frame(length, lf, max_frame))
            .map(Some),
        _ => Some(None),
    }
}

/// Whether a header line starts `content-length:`, compared as two overlapping 8-byte words
/// (two compares, where a 15-byte slice compare loads it in four pieces).
#[inline(always)]
fn is_content_length_name(name: &[u8; 15]) -> bool {
    let word = |bytes: &[u8]| u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
    word(&name[..8]) == word(b"content-") && word(&name[7..]) == word(b"-length:")
}

/// The most header storage (spans, unescaped copies) the decoder keeps between frames, in
/// bytes; more is freed once the frame that needed it is decoded.
const RETAINED_HEADER_BYTES: usize = 16 * 1024;

/// The fast path's `content-length` before one is read. No length read is this large: a
/// length must fit in a frame, with its header line (see [`length_within_frame`]).
const NO_LENGTH: usize = usize::MAX;

/// A `content-length` whose header line ends with the line feed at `lf`, when the smallest
/// frame that can carry it (this line, a blank line, the body and the NUL) fits in
/// `max_frame` bytes. Both head readers refuse a huge length this way as soon as they read
/// it, rather than wait for bytes that must not be buffered.
#[inline]
fn length_within_frame(length: u64, lf: usize, max_frame: usize) -> Option<usize> {
    let length = usize::try_from(length).ok()?;
    (length.checked_add(lf + 3)? <= max_frame).then_some(length)
}

/// The colon ending the name of the header line `start..lf` (`lf` is its line feed), if
/// the line has a colon and the name is not empty. The fast path's way for long names and
/// lines at the very end of the buffer.
#[cold]
#[inline(never)]
fn first_colon(buf: &[u8], start: usize, lf: usize) -> Option<usize> {
    match memchr::memchr(b':', &buf[start..lf]) {
        Some(name) if name > 0 => Some(start + name),
        _ => None,
    }
}

/// Heads longer than this are refused: the frame limit, and the largest head a frame's
/// header spans can address (2 GiB).
#[inline]
fn head_limit(limits: &Limits) -> usize {
    limits.max_frame_bytes.min(MAX_SPAN_OFFSET)
}

/// The limits as the fast path applies them.
#[derive(Debug, Clone, Copy)]
struct FastLimits {
    /// The fast path reads heads that end within this many bytes: heads an inline index can
    /// address, and in which no line can be longer than the line limit (a line's content
    /// ends before its line feed, at most at `max_header_line_bytes`). The rest take the
    /// careful path.
    reach: usize,
    /// Most headers in a head the fast path reads: the limit, or as many as an inline index
    /// holds.
    max_headers: usize,
}

impl FastLimits {
    fn new(limits: &Limits) -> Self {
        Self {
            reach: head_limit(limits)
                .min(INLINE_MAX_OFFSET)
                .min(limits.max_header_line_bytes.saturating_add(1)),
            max_headers: limits.max_headers.min(INLINE_HEADERS),
        }
    }
}

/// What the fast path read of a head (its headers are in [`Progress::inline`]).
#[derive(Debug, Clone, Copy)]
struct FastHead {
    command: Command,
    body_start: usize,
    content_length: Option<usize>,
}

impl Progress {
    /// Records a head the fast path read, for the body to be read by later calls.
    fn start_fast(&mut self, head: FastHead, escaping: Escaping) {
        self.fast = true;
        self.escaping = escaping;
        self.command = Some(head.command);
        self.content_length = head.content_length;
        self.body_start = head.body_start;
        self.scan = head.body_start;
    }

    /// Empties the careful path's header storage for the next frame. Its allocations are
    /// kept for that frame (a frame's index copies what it needs), unless a large head grew
    /// them past [`RETAINED_HEADER_BYTES`]: one hostile head must not pin its memory in the
    /// decoder. Out of line: only frames the careful path reads come here.
    #[inline(never)]
    fn recycle_headers(&mut self) {
        if self.unescaped.capacity() > RETAINED_HEADER_BYTES {
            self.unescaped = Vec::new();
        } else {
            self.unescaped.clear();
        }
        if self.headers.capacity() * size_of::<HeaderSpan>() > RETAINED_HEADER_BYTES {
            self.headers = HeaderSpans::new();
        } else {
            self.headers.clear();
        }
    }

    /// Back to the start of a frame (the header storage is emptied by
    /// [`recycle_headers`](Self::recycle_headers)).
    #[inline]
    fn reset(&mut self) {
        self.command = None;
        self.escaping = Escaping::None;
        self.line_start = 0;
        self.scan = 0;
        self.line_escaped = false;
        self.line_colon = None;
        self.content_length = None;
        self.body_start = 0;
        self.given = 0;
    }
}

/// What is known of the head line being read.
#[derive(Debug, Clone, Copy)]
struct Line {
    start: usize,
    /// Its first colon, once seen.
    colon: Option<usize>,
    /// It holds a backslash.
    escaped: bool,
}

impl Line {
    /// Takes in the colons and backslashes of this line found in a block starting at `base`.
    #[inline]
    fn absorb(&mut self, base: usize, colons: u64, backslashes: u64) {
        if self.colon.is_none() && colons != 0 {
            self.colon = Some(base + colons.trailing_zeros() as usize);
        }
        self.escaped |= backslashes != 0;
    }
}

/// What [`Decoder::find`] found at the front of the buffer.
enum Found {
    /// The stream has failed; the error is in [`Decoder::failed`].
    Failed,
    NeedMore,
    /// A heart-beat EOL of this many bytes.
    Heartbeat(usize),
    /// A complete frame whose head is recorded in the decoder's progress, ending with the
    /// NUL at offset `nul`.
    Frame {
        nul: usize,
    },
}

/// A whole frame at the front of the buffer: its command, where its body starts and where
/// its NUL is.
#[derive(Clone, Copy)]
struct WholeFrame {
    command: Command,
    body_start: usize,
    /// Offset of the NUL that ends it.
    nul: usize,
}

/// The next item [`Decoder::decode_slice`] found.
#[derive(Clone, Copy)]
enum SliceEnd {
    Heartbeat(usize),
    /// A frame the fast path read (headers in [`Progress::inline`]).
    Fast(WholeFrame),
    /// A frame whose index is in [`Decoder::index`].
    Recorded(WholeFrame),
}

impl SliceEnd {
    /// Its length in bytes.
    #[inline]
    fn len(self) -> usize {
        match self {
            Self::Heartbeat(len) => len,
            Self::Fast(frame) | Self::Recorded(frame) => frame.nul + 1,
        }
    }
}

enum Boundary {
    NeedMore,
    Heartbeat(usize),
    Frame,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `MESSAGE` with `count` headers `hN:a\cb` plus `padding` bytes on the first value.
    fn escaped(count: usize, padding: usize) -> BytesMut {
        let mut wire = b"MESSAGE\n".to_vec();
        for i in 0..count {
            wire.extend_from_slice(format!("h{i}:a\\cb").as_bytes());
            if i == 0 {
                wire.extend(std::iter::repeat_n(b'x', padding));
            }
            wire.push(b'\n');
        }
        wire.extend_from_slice(b"\n\0");
        BytesMut::from(&wire[..])
    }

    fn decode_frame(decoder: &mut Decoder, mut wire: BytesMut) -> Frame {
        match decoder.decode(&mut wire) {
            Ok(Some(Item::Frame(frame))) => frame,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    #[test]
    fn header_storage_is_kept_for_the_next_frame_unless_it_grew_large() {
        let limits = Limits::default().with_max_header_line_bytes(64 * 1024);
        let mut decoder = Decoder::with_limits(Version::V1_2, limits);

        // Twelve escaped headers: the careful path, spilled spans and unescaped copies.
        let frame = decode_frame(&mut decoder, escaped(12, 0));
        assert_eq!(frame.headers().len(), 12);
        assert_eq!(frame.header("h11"), Some(&b"a:b"[..]));
        assert!(decoder.progress.headers.is_empty() && decoder.progress.unescaped.is_empty());
        assert!(decoder.progress.headers.capacity() >= 12);
        assert!(decoder.progress.unescaped.capacity() >= 12 * 3);

        // The frame's index is its own: the next frame reuses the storage.
        let next = decode_frame(&mut decoder, escaped(10, 0));
        assert_eq!(frame.header("h11"), Some(&b"a:b"[..]));
        assert_eq!(next.header("h9"), Some(&b"a:b"[..]));

        // A head whose unescaped copies pass the retained size gives its storage back.
        let large = decode_frame(&mut decoder, escaped(2, 2 * RETAINED_HEADER_BYTES));
        assert_eq!(
            large.header("h0").map(<[u8]>::len),
            Some(3 + 2 * RETAINED_HEADER_BYTES)
        );
        assert_eq!(decoder.progress.unescaped.capacity(), 0);
    }
}
