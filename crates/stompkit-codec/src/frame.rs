//! The [`Frame`] type and its builder.

use std::fmt;
use std::ops::Range;

use bytes::Bytes;
use smallvec::SmallVec;

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

/// Header spans, inline for the common case of up to eight headers.
pub(crate) type HeaderSpans = SmallVec<[HeaderSpan; 8]>;

/// A STOMP frame: a command, headers in wire order, and a body.
///
/// A decoded frame borrows nothing and copies nothing: header names and values are slices of
/// the bytes the decoder was given (a header is copied only when it had to be unescaped), and
/// the body is a [`Bytes`] slice of the input buffer. Cloning is cheap (reference counts).
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
    command: Command,
    head: Bytes,
    unescaped: Bytes,
    headers: HeaderSpans,
    body: Bytes,
    /// Where `head` holds the header lines in wire form (`name:value\n` each) with no byte in
    /// any name or value that needs escaping, so that any version can write them as they are.
    plain_lines: Option<(u32, u32)>,
}

impl Frame {
    /// A frame with no headers and no body.
    pub fn new(command: Command) -> Self {
        Self {
            command,
            head: Bytes::new(),
            unescaped: Bytes::new(),
            headers: HeaderSpans::new(),
            body: Bytes::new(),
            plain_lines: Some((0, 0)),
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

    /// Assembles a decoded frame. `headers` point into `head` or `unescaped`.
    #[inline]
    pub(crate) fn from_parts(
        command: Command,
        head: Bytes,
        unescaped: Bytes,
        headers: HeaderSpans,
        body: Bytes,
        plain_lines: Option<Range<usize>>,
    ) -> Self {
        Self {
            command,
            head,
            unescaped,
            headers,
            body,
            plain_lines: plain_lines.map(|r| (r.start as u32, r.end as u32)),
        }
    }

    /// The header lines in wire form, when they can be written as they are in any version.
    #[inline]
    pub(crate) fn plain_lines(&self) -> Option<&[u8]> {
        self.plain_lines
            .map(|(start, end)| &self.head[start as usize..end as usize])
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
        let name = name.as_ref();
        self.headers().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Like [`header`](Self::header), as text; `None` also when the value is not UTF-8.
    pub fn header_str(&self, name: impl AsRef<[u8]>) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// All headers in wire order, repeats included, as `(name, value)` byte slices.
    pub fn headers(&self) -> Headers<'_> {
        Headers {
            frame: self,
            inner: self.headers.iter(),
        }
    }

    /// The `index`-th header as [`Bytes`] slices sharing the frame's memory (no copy).
    pub fn header_bytes(&self, index: usize) -> Option<(Bytes, Bytes)> {
        let span = self.headers.get(index)?;
        Some((
            span.name.resolve_bytes(&self.head, &self.unescaped),
            span.value.resolve_bytes(&self.head, &self.unescaped),
        ))
    }

    /// The body (empty when the frame has none).
    #[inline]
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Takes the body out of the frame.
    pub fn into_body(self) -> Bytes {
        self.body
    }

    /// A builder holding a copy of this frame's headers and its body, to change them.
    pub fn to_builder(&self) -> FrameBuilder {
        let mut builder = Self::builder(self.command);
        for (name, value) in self.headers() {
            builder = builder.header(name, value);
        }
        builder.body(self.body.clone())
    }
}

impl PartialEq for Frame {
    fn eq(&self, other: &Self) -> bool {
        self.command == other.command
            && self.body == other.body
            && self.headers.len() == other.headers.len()
            && self.headers().eq(other.headers())
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
        struct HeaderList<'a>(&'a Frame);
        impl fmt::Debug for HeaderList<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut list = f.debug_list();
                for (name, value) in self.0.headers() {
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
        f.debug_struct("Frame")
            .field("command", &self.command)
            .field("headers", &HeaderList(self))
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// Iterator over a frame's headers, in wire order. See [`Frame::headers`].
#[derive(Clone)]
pub struct Headers<'a> {
    frame: &'a Frame,
    inner: std::slice::Iter<'a, HeaderSpan>,
}

impl fmt::Debug for Headers<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Headers")
            .field("remaining", &self.inner.len())
            .finish()
    }
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a [u8], &'a [u8]);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let span = self.inner.next()?;
        let (head, unescaped) = (&self.frame.head[..], &self.frame.unescaped[..]);
        Some((
            span.name.resolve(head, unescaped),
            span.value.resolve(head, unescaped),
        ))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl ExactSizeIterator for Headers<'_> {}

impl DoubleEndedIterator for Headers<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let span = self.inner.next_back()?;
        let (head, unescaped) = (&self.frame.head[..], &self.frame.unescaped[..]);
        Some((
            span.name.resolve(head, unescaped),
            span.value.resolve(head, unescaped),
        ))
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
    pub fn build(self) -> Frame {
        let len = self.store.len() as u32;
        Frame {
            command: self.command,
            head: Bytes::from(self.store),
            unescaped: Bytes::new(),
            headers: self.headers,
            body: self.body,
            plain_lines: self.plain.then_some((0, len)),
        }
    }
}
