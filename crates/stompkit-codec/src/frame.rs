//! The [`Frame`] type and its builder.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::{Buf, Bytes};

use crate::Command;
use crate::scan::has_special;

/// Where a header name or value lives: in the frame's head bytes, or (flag bit set) in the
/// side buffer holding unescaped copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    start: u32,
    end: u32,
}

const UNESCAPED: u32 = 1 << 31;

/// The largest offset a span can hold; frame heads are limited to this many bytes.
pub(crate) const MAX_SPAN_OFFSET: usize = (UNESCAPED - 1) as usize;

impl Span {
    /// A span of the head bytes. `range.end` must be at most [`MAX_SPAN_OFFSET`].
    #[inline]
    pub(crate) fn head(range: Range<usize>) -> Self {
        debug_assert!(range.end <= MAX_SPAN_OFFSET);
        Self {
            start: range.start as u32,
            end: range.end as u32,
        }
    }

    /// A span of the unescaped side buffer.
    #[inline]
    pub(crate) fn unescaped(range: Range<usize>) -> Self {
        debug_assert!(range.end <= MAX_SPAN_OFFSET);
        Self {
            start: range.start as u32 | UNESCAPED,
            end: range.end as u32,
        }
    }

    /// The range, when it lies in the head bytes.
    #[inline]
    fn in_head(self) -> Option<Range<usize>> {
        (self.start & UNESCAPED == 0).then_some(self.start as usize..self.end as usize)
    }

    #[inline]
    pub(crate) fn resolve<'a>(self, head: &'a [u8], unescaped: &'a [u8]) -> &'a [u8] {
        if self.start & UNESCAPED == 0 {
            &head[self.start as usize..self.end as usize]
        } else {
            &unescaped[(self.start & !UNESCAPED) as usize..self.end as usize]
        }
    }

    #[inline]
    fn resolve_bytes(self, head: &Bytes, unescaped: &Bytes) -> Bytes {
        if self.start & UNESCAPED == 0 {
            head.slice(self.start as usize..self.end as usize)
        } else {
            unescaped.slice((self.start & !UNESCAPED) as usize..self.end as usize)
        }
    }
}

/// One header's name and value spans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HeaderSpan {
    pub(crate) name: Span,
    pub(crate) value: Span,
}

/// Header spans as a decoder or a builder collects them. The decoder keeps this storage from
/// frame to frame, and a decoded frame's index copies it (see [`HeaderIndex`]).
pub(crate) type HeaderSpans = Vec<HeaderSpan>;

/// Headers a frame indexes without an allocation.
pub(crate) const INLINE_HEADERS: usize = 8;

/// The largest offset an inline span can hold: a frame whose header lines all lie in the
/// first 64 KiB can use an inline index.
pub(crate) const INLINE_MAX_OFFSET: usize = u16::MAX as usize;

/// Up to [`INLINE_HEADERS`] headers as `[start, colon, end]` offsets into the frame's bytes:
/// the name is `start..colon`, the value `colon + 1..end`. Small enough that a whole
/// [`Frame`] moves in a few vector stores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct InlineSpans {
    spans: [[u16; 3]; INLINE_HEADERS],
    len: u8,
}

impl InlineSpans {
    pub(crate) const EMPTY: Self = Self {
        spans: [[0; 3]; INLINE_HEADERS],
        len: 0,
    };

    #[inline]
    pub(crate) fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Sets the `index`-th span; `false` (and nothing changed) when `index` is out of room.
    /// Offsets must be at most [`INLINE_MAX_OFFSET`]. Spans past [`len`](Self::len) only
    /// count once [`set_len`](Self::set_len) says so.
    #[inline(always)]
    pub(crate) fn set(&mut self, index: usize, start: usize, colon: usize, end: usize) -> bool {
        debug_assert!(start <= colon && colon < end && end <= INLINE_MAX_OFFSET);
        let Some(slot) = self.spans.get_mut(index) else {
            return false;
        };
        *slot = [start as u16, colon as u16, end as u16];
        true
    }

    /// The span slots, to be filled in order; as many count as
    /// [`set_len`](Self::set_len) says.
    #[inline(always)]
    pub(crate) fn slots(&mut self) -> std::slice::IterMut<'_, [u16; 3]> {
        self.spans.iter_mut()
    }

    /// Sets how many spans count (at most [`INLINE_HEADERS`]).
    #[inline]
    pub(crate) fn set_len(&mut self, len: usize) {
        debug_assert!(len <= INLINE_HEADERS);
        self.len = len as u8;
    }

    /// Appends a header; `false` (and nothing changed) when full. Offsets must be at most
    /// [`INLINE_MAX_OFFSET`].
    #[inline]
    fn push(&mut self, start: usize, colon: usize, end: usize) -> bool {
        let pushed = self.set(self.len(), start, colon, end);
        self.len += u8::from(pushed);
        pushed
    }

    /// The spans in use.
    #[inline]
    fn spans(&self) -> &[[u16; 3]] {
        &self.spans[..self.len()]
    }

    /// Converts spans of the frame's bytes (none of them in the side buffer).
    fn from_spans(spans: &[HeaderSpan]) -> Option<Self> {
        let mut inline = Self::EMPTY;
        for span in spans {
            let (name, value) = (span.name.in_head()?, span.value.in_head()?);
            if value.end > INLINE_MAX_OFFSET || !inline.push(name.start, name.end, value.end) {
                return None;
            }
        }
        Some(inline)
    }

    #[inline]
    fn get(&self, index: usize) -> Option<(Range<usize>, Range<usize>)> {
        self.spans().get(index).copied().map(inline_ranges)
    }
}

/// The name and value ranges of an inline span.
#[inline]
fn inline_ranges(span: [u16; 3]) -> (Range<usize>, Range<usize>) {
    let [start, colon, end] = span.map(usize::from);
    (start..colon, colon + 1..end)
}

/// A frame's header index: inline for the common case, shared (cloning a frame stays cheap)
/// for more headers, larger heads, or headers that had to be unescaped.
#[derive(Clone, Debug)]
pub(crate) enum HeaderIndex {
    Inline(InlineSpans),
    Shared(Arc<SharedIndex>),
}

/// Spans into the frame's bytes or (flagged) into `unescaped`.
#[derive(Debug)]
pub(crate) struct SharedIndex {
    spans: Box<[HeaderSpan]>,
    unescaped: Bytes,
}

impl HeaderIndex {
    /// The index for `spans`, which point into the frame's bytes or into `unescaped`; a
    /// shared index takes the spans' storage.
    pub(crate) fn new(spans: &mut HeaderSpans, unescaped: Bytes) -> Self {
        Self::inline(spans, &unescaped).unwrap_or_else(|| {
            Self::Shared(Arc::new(SharedIndex {
                spans: std::mem::take(spans).into_boxed_slice(),
                unescaped,
            }))
        })
    }

    /// Like [`new`](Self::new), copying the spans instead (for more than
    /// [`INLINE_HEADERS`], into one allocation of their size), so that the decoder keeps its
    /// storage for the next frame rather than grow a new one.
    pub(crate) fn copied(spans: &[HeaderSpan], unescaped: Bytes) -> Self {
        Self::inline(spans, &unescaped).unwrap_or_else(|| {
            Self::Shared(Arc::new(SharedIndex {
                spans: spans.into(),
                unescaped,
            }))
        })
    }

    /// The inline index for `spans`, when they fit one and nothing was unescaped.
    fn inline(spans: &[HeaderSpan], unescaped: &Bytes) -> Option<Self> {
        if !unescaped.is_empty() {
            return None;
        }
        InlineSpans::from_spans(spans).map(Self::Inline)
    }

    /// The index, borrowed.
    #[inline]
    pub(crate) fn as_ref(&self) -> IndexRef<'_> {
        match self {
            Self::Inline(inline) => IndexRef::Inline(inline),
            Self::Shared(shared) => IndexRef::Shared(shared),
        }
    }

    /// The headers of the frame whose bytes are `data`.
    #[inline]
    fn headers<'a>(&'a self, data: &'a [u8]) -> Headers<'a> {
        self.as_ref().headers(data)
    }

    /// The `index`-th header's value as [`Bytes`] sharing the frame's memory.
    fn get_value_bytes(&self, data: &Bytes, index: usize) -> Option<Bytes> {
        match self {
            Self::Inline(inline) => inline.get(index).map(|(_, value)| data.slice(value)),
            Self::Shared(shared) => {
                let span = shared.spans.get(index)?;
                Some(span.value.resolve_bytes(data, &shared.unescaped))
            }
        }
    }

    /// The `index`-th header's name and value as [`Bytes`] sharing the frame's memory.
    fn get_bytes(&self, data: &Bytes, index: usize) -> Option<(Bytes, Bytes)> {
        match self {
            Self::Inline(inline) => {
                let (name, value) = inline.get(index)?;
                Some((data.slice(name), data.slice(value)))
            }
            Self::Shared(shared) => {
                let span = shared.spans.get(index)?;
                Some((
                    span.name.resolve_bytes(data, &shared.unescaped),
                    span.value.resolve_bytes(data, &shared.unescaped),
                ))
            }
        }
    }
}

/// A [`HeaderIndex`] borrowed: what a [`FrameRef`] holds of the decoder's.
#[derive(Clone, Copy, Debug)]
pub(crate) enum IndexRef<'i> {
    Inline(&'i InlineSpans),
    Shared(&'i Arc<SharedIndex>),
}

impl<'i> IndexRef<'i> {
    /// The headers of the frame whose bytes are `data`.
    #[inline]
    fn headers<'a>(self, data: &'a [u8]) -> Headers<'a>
    where
        'i: 'a,
    {
        Headers {
            data,
            spans: match self {
                Self::Inline(inline) => SpanIter::Inline(inline.spans().iter()),
                Self::Shared(shared) => SpanIter::Shared {
                    spans: shared.spans.iter(),
                    unescaped: &shared.unescaped,
                },
            },
        }
    }

    /// An owned copy (of an inline index) or handle (on a shared one).
    fn to_owned(self) -> HeaderIndex {
        match self {
            Self::Inline(inline) => HeaderIndex::Inline(*inline),
            Self::Shared(shared) => HeaderIndex::Shared(Arc::clone(shared)),
        }
    }
}

/// A STOMP frame: a command, headers in wire order, and a body.
///
/// A decoded frame borrows nothing and copies nothing: it holds one [`Bytes`] handle on the
/// bytes the decoder was given, and its header names, values and body are slices of them (a
/// header is copied only when it had to be unescaped). [`body`](Self::body) is a plain slice;
/// [`body_bytes`](Self::body_bytes) and [`into_body`](Self::into_body) hand it out as
/// [`Bytes`] without a copy. Cloning is cheap (reference counts).
///
/// Repeated headers are all kept, in wire order; [`header`](Self::header) returns the first,
/// as the spec requires.
///
/// ```
/// use stompkit_codec::{Command, Frame};
///
/// let frame = Frame::builder(Command::Send)
///     .header("destination", "/queue/jobs")
///     .header("content-type", "application/json")
///     .body(r#"{"jobId":123}"#)
///     .build();
/// assert_eq!(frame.header("destination"), Some(&b"/queue/jobs"[..]));
/// assert_eq!(frame.headers().len(), 2);
/// ```
#[derive(Clone)]
pub struct Frame {
    /// A decoded frame: its bytes as received, from the command through the closing NUL. A
    /// built frame: its header lines (`name:value\n` each, unescaped).
    data: Bytes,
    /// A built frame's body, when it has one. `None` for a decoded frame, whose body lies in
    /// `data` (so that dropping one costs no call into an empty `Bytes`' drop).
    body: Option<Bytes>,
    headers: HeaderIndex,
    /// Where a decoded frame's body starts in `data` (never 0: a head is never empty); 0 for
    /// a built frame.
    body_start: u32,
    command: Command,
    /// `data` holds the header lines in wire form with no byte in any name or value that
    /// needs escaping, so that any version can write them as they are (built frames only).
    plain: bool,
}

impl Frame {
    /// A frame with no headers and no body.
    pub fn new(command: Command) -> Self {
        Self {
            data: Bytes::new(),
            body: None,
            headers: HeaderIndex::Inline(InlineSpans::EMPTY),
            body_start: 0,
            command,
            plain: true,
        }
    }

    /// Starts building a frame.
    pub fn builder(command: Command) -> FrameBuilder {
        FrameBuilder {
            command,
            store: Vec::new(),
            headers: HeaderSpans::new(),
            body: Bytes::new(),
            plain: true,
        }
    }

    /// Assembles a decoded frame: `data` holds the whole frame as received, from the
    /// command through the NUL, its body starting at `body_start` (which is at most
    /// [`MAX_SPAN_OFFSET`]).
    #[inline]
    pub(crate) fn decoded(
        command: Command,
        data: Bytes,
        headers: HeaderIndex,
        body_start: usize,
    ) -> Self {
        debug_assert!(body_start > 0 && body_start < data.len());
        Self {
            data,
            body: None,
            headers,
            body_start: body_start as u32,
            command,
            plain: false,
        }
    }

    /// The header lines in wire form, when they can be written as they are in any version.
    #[inline]
    pub(crate) fn plain_lines(&self) -> Option<&[u8]> {
        self.plain.then_some(&self.data[..])
    }

    /// Where a decoded frame's body lies in `data`.
    #[inline]
    fn body_range(&self) -> Option<Range<usize>> {
        (self.body_start > 0).then(|| self.body_start as usize..self.data.len() - 1)
    }

    /// The frame's command.
    #[inline]
    pub fn command(&self) -> Command {
        self.command
    }

    /// The value of the first header called `name`, if any (the spec's "first one wins").
    ///
    /// Names are compared byte for byte, case-sensitively.
    pub fn header(&self, name: impl AsRef<[u8]>) -> Option<&[u8]> {
        self.headers().first(name.as_ref())
    }

    /// Like [`header`](Self::header), as text; `None` also when the value is not UTF-8.
    pub fn header_str(&self, name: impl AsRef<[u8]>) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// All headers in wire order, repeats included, as `(name, value)` byte slices.
    #[inline]
    pub fn headers(&self) -> Headers<'_> {
        self.headers.headers(&self.data)
    }

    /// The `index`-th header as [`Bytes`] slices sharing the frame's memory (no copy).
    pub fn header_bytes(&self, index: usize) -> Option<(Bytes, Bytes)> {
        self.headers.get_bytes(&self.data, index)
    }

    /// The `index`-th header's value as [`Bytes`] sharing the frame's memory (no copy), for
    /// keeping it past the frame: one reference count taken, where
    /// [`header_bytes`](Self::header_bytes) takes two.
    pub fn header_value_bytes(&self, index: usize) -> Option<Bytes> {
        self.headers.get_value_bytes(&self.data, index)
    }

    /// The body (empty when the frame has none).
    #[inline]
    pub fn body(&self) -> &[u8] {
        match self.body_range() {
            Some(range) => &self.data[range],
            None => self.body.as_deref().unwrap_or_default(),
        }
    }

    /// The body as [`Bytes`] sharing the frame's memory (no copy; one reference count).
    pub fn body_bytes(&self) -> Bytes {
        match self.body_range() {
            Some(range) => self.data.slice(range),
            None => self.body.clone().unwrap_or_default(),
        }
    }

    /// Takes the body out of the frame, without a copy.
    pub fn into_body(self) -> Bytes {
        match self.body_range() {
            Some(range) => {
                let mut body = self.data;
                body.truncate(range.end);
                body.advance(range.start);
                body
            }
            None => self.body.unwrap_or_default(),
        }
    }

    fn parts(&self) -> Parts<'_> {
        (self.command, self.headers(), self.body())
    }

    /// A builder holding a copy of this frame's headers and its body, to change them.
    pub fn to_builder(&self) -> FrameBuilder {
        builder_from(self.parts(), self.body_bytes())
    }
}

impl PartialEq for Frame {
    fn eq(&self, other: &Self) -> bool {
        same_frame(self.parts(), other.parts())
    }
}

impl Eq for Frame {}

/// Header names whose values never appear in a `Debug` string.
fn is_secret(name: &[u8]) -> bool {
    const SECRETS: [&[u8]; 6] = [
        b"passcode",
        b"password",
        b"authorization",
        b"token",
        b"secret",
        b"cookie",
    ];
    let lower = name.to_ascii_lowercase();
    SECRETS
        .iter()
        .any(|s| lower.windows(s.len()).any(|w| w == *s))
}

impl fmt::Debug for Frame {
    /// Shows the command, headers and body size. Values of credential headers (`passcode`,
    /// anything with `token`, `authorization`, `password`, `secret` or `cookie` in its name)
    /// are shown as `<redacted>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_frame(f, "Frame", self.parts())
    }
}

/// The `Debug` form of a frame of either kind, credentials redacted.
fn debug_frame(
    f: &mut fmt::Formatter<'_>,
    kind: &str,
    (command, headers, body): Parts<'_>,
) -> fmt::Result {
    struct HeaderList<'a>(Headers<'a>);
    impl fmt::Debug for HeaderList<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let mut list = f.debug_list();
            for (name, value) in self.0.clone() {
                let name = String::from_utf8_lossy(name);
                if is_secret(name.as_bytes()) {
                    list.entry(&(name, "<redacted>"));
                } else {
                    list.entry(&(name, String::from_utf8_lossy(value)));
                }
            }
            list.finish()
        }
    }
    f.debug_struct(kind)
        .field("command", &command)
        .field("headers", &HeaderList(headers))
        .field("body_len", &body.len())
        .finish()
}

/// A frame decoded in place by [`Decoder::decode_slice`](crate::Decoder::decode_slice): its
/// header names, values and body are slices of the caller's buffer (`'a`), and its header
/// index is the decoder's (`'i`; a header that had to be unescaped is a copy the decoder
/// holds, and so is the index of a frame with more than eight headers). It has [`Frame`]'s
/// read methods; [`to_frame`](Self::to_frame) makes an owned [`Frame`] of it (also
/// `Frame::from`), [`to_builder`](Self::to_builder) a builder to change it, and
/// [`Encoder::encode_parts`](crate::Encoder::encode_parts)
/// (`encoder.encode_parts(frame.command(), frame.headers(), frame.body(), &mut dst)`) writes
/// it again without either.
///
/// It is a few words, `Copy`, and borrows the decoder, so it (and anything borrowed from its
/// header index) must be gone before the decoder decodes the next item.
/// [`body`](Self::body) and [`as_bytes`](Self::as_bytes) borrow only the buffer and can be
/// kept after that; header names and values borrow the buffer and the decoder (they may be
/// the decoder's unescaped copies), so copy them, or call `to_frame`, to keep them longer.
///
/// ```compile_fail,E0499
/// use stompkit_codec::{Decoder, Version};
///
/// let wire = b"SEND\ndestination:/queue/a\n\nhi\0\n";
/// let mut decoder = Decoder::new(Version::V1_2);
/// let (first, len) = decoder.decode_slice(wire).unwrap().unwrap();
/// let next = decoder.decode_slice(&wire[len..]); // error: `first` still borrows the decoder
/// first.into_frame();
/// ```
#[derive(Clone, Copy)]
pub struct FrameRef<'a, 'i> {
    /// The frame's bytes as received, from the command through the closing NUL.
    data: &'a [u8],
    /// This frame's header index, in the decoder.
    headers: IndexRef<'i>,
    /// Where the body starts in `data` (never 0: a head is never empty).
    body_start: u32,
    command: Command,
}

impl<'a, 'i> FrameRef<'a, 'i> {
    /// Assembles a decoded frame, as [`Frame::decoded`] does.
    #[inline]
    pub(crate) fn new(
        command: Command,
        data: &'a [u8],
        headers: IndexRef<'i>,
        body_start: usize,
    ) -> Self {
        debug_assert!(body_start > 0 && body_start < data.len());
        Self {
            data,
            headers,
            body_start: body_start as u32,
            command,
        }
    }

    /// The frame's command.
    #[inline]
    pub fn command(&self) -> Command {
        self.command
    }

    /// The value of the first header called `name`, if any. See [`Frame::header`]. It
    /// borrows the buffer and the decoder, not this `FrameRef`.
    pub fn header<'h>(&self, name: impl AsRef<[u8]>) -> Option<&'h [u8]>
    where
        'a: 'h,
        'i: 'h,
    {
        self.headers().first(name.as_ref())
    }

    /// Like [`header`](Self::header), as text; `None` also when the value is not UTF-8.
    pub fn header_str<'h>(&self, name: impl AsRef<[u8]>) -> Option<&'h str>
    where
        'a: 'h,
        'i: 'h,
    {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// All headers in wire order, repeats included, as `(name, value)` byte slices that
    /// borrow the buffer and the decoder, not this `FrameRef`.
    #[inline]
    pub fn headers<'h>(&self) -> Headers<'h>
    where
        'a: 'h,
        'i: 'h,
    {
        self.headers.headers(self.data)
    }

    /// The body (empty when the frame has none), a slice of the decoded buffer.
    #[inline]
    pub fn body(&self) -> &'a [u8] {
        &self.data[self.body_start as usize..self.data.len() - 1]
    }

    /// The frame as it was received, from the command through the closing NUL.
    #[inline]
    pub fn as_bytes(&self) -> &'a [u8] {
        self.data
    }

    fn parts(&self) -> Parts<'_> {
        (self.command, self.headers(), self.body())
    }

    /// An owned [`Frame`] holding a copy of this frame's bytes.
    pub fn to_frame(&self) -> Frame {
        Frame::decoded(
            self.command,
            Bytes::copy_from_slice(self.data),
            self.headers.to_owned(),
            self.body_start as usize,
        )
    }

    /// A builder holding a copy of this frame's headers and its body, to change them.
    pub fn to_builder(&self) -> FrameBuilder {
        builder_from(self.parts(), Bytes::copy_from_slice(self.body()))
    }
}

impl From<FrameRef<'_, '_>> for Frame {
    fn from(frame: FrameRef<'_, '_>) -> Self {
        frame.to_frame()
    }
}

/// A builder for the frame `parts` describes, with `body` (the same bytes as in `parts`).
fn builder_from((command, headers, _): Parts<'_>, body: Bytes) -> FrameBuilder {
    headers
        .fold(Frame::builder(command), |builder, (name, value)| {
            builder.header(name, value)
        })
        .body(body)
}

impl PartialEq for FrameRef<'_, '_> {
    fn eq(&self, other: &Self) -> bool {
        same_frame(self.parts(), other.parts())
    }
}

impl Eq for FrameRef<'_, '_> {}

impl PartialEq<Frame> for FrameRef<'_, '_> {
    fn eq(&self, other: &Frame) -> bool {
        same_frame(self.parts(), other.parts())
    }
}

impl PartialEq<FrameRef<'_, '_>> for Frame {
    fn eq(&self, other: &FrameRef<'_, '_>) -> bool {
        same_frame(self.parts(), other.parts())
    }
}

/// What frame equality compares: the command, the headers in order, the body.
type Parts<'a> = (Command, Headers<'a>, &'a [u8]);

/// Frames are equal when their commands, headers (all, in order) and bodies are.
fn same_frame(a: Parts<'_>, b: Parts<'_>) -> bool {
    a.0 == b.0 && a.2 == b.2 && a.1.len() == b.1.len() && a.1.eq(b.1)
}

impl fmt::Debug for FrameRef<'_, '_> {
    /// As [`Frame`]'s: credential values are shown as `<redacted>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_frame(f, "FrameRef", self.parts())
    }
}

/// Iterator over a frame's headers, in wire order. See [`Frame::headers`].
#[derive(Clone)]
pub struct Headers<'a> {
    data: &'a [u8],
    spans: SpanIter<'a>,
}

/// The spans of either kind of index, walked without a lookup per header.
#[derive(Clone)]
enum SpanIter<'a> {
    Inline(std::slice::Iter<'a, [u16; 3]>),
    Shared {
        spans: std::slice::Iter<'a, HeaderSpan>,
        unescaped: &'a [u8],
    },
}

impl<'a> Headers<'a> {
    /// Takes one span off the iterator of either kind (`inline` and `shared` are the same
    /// step: `next`, `nth` or `next_back`) and resolves it to the header's name and value.
    #[inline]
    fn step(
        &mut self,
        inline: impl FnOnce(&mut std::slice::Iter<'a, [u16; 3]>) -> Option<&'a [u16; 3]>,
        shared: impl FnOnce(&mut std::slice::Iter<'a, HeaderSpan>) -> Option<&'a HeaderSpan>,
    ) -> Option<(&'a [u8], &'a [u8])> {
        let data = self.data;
        match &mut self.spans {
            SpanIter::Inline(spans) => {
                let (name, value) = inline_ranges(*inline(spans)?);
                Some((&data[name], &data[value]))
            }
            SpanIter::Shared { spans, unescaped } => {
                let span = shared(spans)?;
                Some((
                    span.name.resolve(data, unescaped),
                    span.value.resolve(data, unescaped),
                ))
            }
        }
    }
}

impl<'a> Headers<'a> {
    /// The value of the first remaining header called `name`.
    #[inline]
    fn first(mut self, name: &[u8]) -> Option<&'a [u8]> {
        self.find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

impl fmt::Debug for Headers<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Headers")
            .field("remaining", &self.len())
            .finish()
    }
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a [u8], &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.step(Iterator::next, Iterator::next)
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match &self.spans {
            SpanIter::Inline(spans) => spans.len(),
            SpanIter::Shared { spans, .. } => spans.len(),
        };
        (n, Some(n))
    }

    #[inline]
    fn nth(&mut self, n: usize) -> Option<Self::Item> {
        self.step(|spans| spans.nth(n), |spans| spans.nth(n))
    }
}

impl ExactSizeIterator for Headers<'_> {}

impl DoubleEndedIterator for Headers<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.step(
            DoubleEndedIterator::next_back,
            DoubleEndedIterator::next_back,
        )
    }
}

/// Builds a [`Frame`] to encode. See [`Frame::builder`].
///
/// Header names and values are copied into one buffer owned by the frame; the body is kept
/// as the [`Bytes`] given, without a copy. Values are stored unescaped: the encoder escapes
/// them for the version in use.
#[derive(Clone)]
pub struct FrameBuilder {
    command: Command,
    /// Header lines in wire form: `name:value\n` each, unescaped.
    store: Vec<u8>,
    headers: HeaderSpans,
    body: Bytes,
    /// No name or value so far needs escaping, and no name is empty.
    plain: bool,
}

impl fmt::Debug for FrameBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameBuilder")
            .field("command", &self.command)
            .field("headers", &self.headers.len())
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl FrameBuilder {
    /// Appends a header (repeats are kept; the first one wins on lookup).
    ///
    /// # Panics
    /// If the frame's headers grow past 2 GiB.
    pub fn header(mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Self {
        self.push_header(name.as_ref(), value.as_ref());
        self
    }

    /// Appends a header through a mutable reference.
    ///
    /// # Panics
    /// If the frame's headers grow past 2 GiB.
    pub fn push_header(&mut self, name: &[u8], value: &[u8]) -> &mut Self {
        self.plain &= !name.is_empty() && !has_special(name) && !has_special(value);
        let name_start = self.store.len();
        self.store.extend_from_slice(name);
        let name_end = self.store.len();
        self.store.push(b':');
        self.store.extend_from_slice(value);
        let value_end = self.store.len();
        self.store.push(b'\n');
        assert!(
            self.store.len() <= MAX_SPAN_OFFSET,
            "frame headers larger than 2 GiB"
        );
        self.headers.push(HeaderSpan {
            name: Span::head(name_start..name_end),
            value: Span::head(name_end + 1..value_end),
        });
        self
    }

    /// Sets the body (no copy when given [`Bytes`]).
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Finishes the frame.
    pub fn build(mut self) -> Frame {
        let headers = HeaderIndex::new(&mut self.headers, Bytes::new());
        Frame {
            data: Bytes::from(self.store),
            body: Some(self.body).filter(|body| !body.is_empty()),
            headers,
            body_start: 0,
            command: self.command,
            plain: self.plain,
        }
    }
}
