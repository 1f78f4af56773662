//! Invariant checks shared by the cargo-fuzz targets in `fuzz/` and by the repository's
//! `repo-tests/tests/fuzz_corpus.rs`, which replays their corpus on stable. Not a public API: compiled only with the internal
//! `__fuzzing` feature, hidden from the docs, free to change in any release.
//!
//! Every `check_*` function panics when an invariant breaks; libFuzzer reports the panic as a
//! crash, the corpus test as a failing file. One function per fuzz target:
//!
//! | target       | function                 | input                                          |
//! |--------------|--------------------------|------------------------------------------------|
//! | `decode`     | [`check_stream`]         | a raw byte stream                              |
//! | `decode_split` | [`check_split_input`]  | a split plan, then a raw byte stream ([`split_plan`]) |
//! | `round_trip` | [`check_frame`]          | a [`FrameInput`], built through `arbitrary`   |

use bytes::{Bytes, BytesMut};

use crate::{Command, Decoder, Encoder, Error, Forbidden, Frame, Item, Limits, Version};

/// Small limits, so that the fuzzer reaches them with short inputs.
pub fn fuzz_limits() -> Limits {
    Limits::default()
        .with_max_frame_bytes(4096)
        .with_max_headers(16)
        .with_max_header_line_bytes(256)
}

/// Limits that never get in the way of a round trip (any frame the encoder writes fits).
pub fn unlimited() -> Limits {
    Limits::default()
        .with_max_frame_bytes(usize::MAX / 2)
        .with_max_headers(usize::MAX)
        .with_max_header_line_bytes(usize::MAX / 2)
}

/// What decoding a whole stream gave.
struct Outcome {
    items: Vec<Item>,
    error: Option<Error>,
}

impl Outcome {
    /// Items and error text: what must not depend on how the input was split.
    fn described(&self) -> (Vec<Item>, Option<String>) {
        (
            self.items.clone(),
            self.error.as_ref().map(Error::to_string),
        )
    }
}

/// Decodes `data` fed in chunks of the given sizes (cycled; a 0 means 1; no sizes means the
/// whole input at once), then at EOF. Returns the items, and the error's text if any.
///
/// Also checks the decoder's contract on the way (panics on a violation): every item consumes
/// bytes, decoded frames respect the limits, an error repeats on every later call and points
/// inside the input, and a stream decoded without error is consumed to its last byte.
pub fn decode_chunked(
    version: Version,
    limits: Limits,
    data: &[u8],
    chunks: &[usize],
) -> (Vec<Item>, Option<String>) {
    decode_stream(version, limits, data, chunks).described()
}

/// Decodes `data` through [`Decoder::decode_slice`]: the caller's buffer grows by the chunk
/// sizes of [`decode_chunked`], each item's bytes are dropped from its front, and the last
/// chunk goes through [`Decoder::decode_slice_eof`]. Returns the items (owned) and the error,
/// which must equal [`decode_chunked`]'s. Checks the same contract on the way: every item
/// consumes bytes inside the buffer, an error repeats and points inside the input, and a
/// stream decoded without error is consumed to its last byte.
pub fn decode_slice_chunked(
    version: Version,
    limits: Limits,
    data: &[u8],
    chunks: &[usize],
) -> (Vec<Item>, Option<Error>) {
    let mut decoder = Decoder::with_limits(version, limits);
    let mut sizes = chunks.iter().cycle();
    let (mut items, mut taken, mut end) = (Vec::new(), 0, 0);
    loop {
        end = match sizes.next() {
            Some(&size) => (end + size.max(1)).min(data.len()),
            None => data.len(),
        };
        let at_eof = end == data.len();
        loop {
            let buf = &data[taken..end];
            let step = if at_eof {
                decoder.decode_slice_eof(buf)
            } else {
                decoder.decode_slice(buf)
            };
            match step {
                Ok(Some((item, len))) => {
                    assert!(
                        len > 0 && len <= buf.len(),
                        "item length {len} out of range"
                    );
                    items.push(Item::from(item));
                    taken += len;
                }
                Ok(None) => break,
                Err(error) => {
                    check_error_offset(&error, data.len());
                    let again = decoder.decode_slice(&data[taken..end]).map(|_| ());
                    assert_eq!(
                        again.map_err(|e| e.to_string()),
                        Err(error.to_string()),
                        "a later call gave another result"
                    );
                    return (items, Some(error));
                }
            }
        }
        if at_eof {
            assert_eq!(
                taken,
                data.len(),
                "decode_slice_eof returned None with bytes left"
            );
            check_clean_end(&decoder, data.len());
            return (items, None);
        }
    }
}

fn decode_stream(version: Version, limits: Limits, data: &[u8], chunks: &[usize]) -> Outcome {
    let mut decoder = Decoder::with_limits(version, limits);
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    let mut rest = data;
    let mut sizes = chunks.iter().copied().cycle();
    loop {
        let take = match sizes.next() {
            Some(size) => size.max(1).min(rest.len()),
            None => rest.len(),
        };
        buf.extend_from_slice(&rest[..take]);
        rest = &rest[take..];
        let at_eof = rest.is_empty();
        loop {
            let consumed = decoder.consumed();
            let step = if at_eof {
                decoder.decode_eof(&mut buf)
            } else {
                decoder.decode(&mut buf)
            };
            match step {
                Ok(Some(item)) => {
                    assert!(
                        decoder.consumed() > consumed,
                        "an item that consumed no bytes ({version})"
                    );
                    check_item_limits(&item, &limits);
                    items.push(item);
                }
                Ok(None) => break,
                Err(error) => {
                    check_error(&mut decoder, &mut buf, &error, data.len());
                    return Outcome {
                        items,
                        error: Some(error),
                    };
                }
            }
        }
        if at_eof {
            assert!(
                buf.is_empty(),
                "decode_eof returned Ok(None) with bytes left"
            );
            check_clean_end(&decoder, data.len());
            assert_eq!(
                decoder.decode_eof(&mut buf).ok(),
                Some(None),
                "EOF is stable"
            );
            return Outcome { items, error: None };
        }
    }
}

fn check_item_limits(item: &Item, limits: &Limits) {
    if let Item::Frame(frame) = item {
        assert!(
            frame.headers().len() <= limits.max_headers,
            "max_headers ignored"
        );
        assert!(
            frame.body().len() < limits.max_frame_bytes,
            "max_frame_bytes ignored"
        );
    }
}

/// A decoding error is fatal and repeats; its offset lies within the stream.
fn check_error(decoder: &mut Decoder, buf: &mut BytesMut, error: &Error, len: usize) {
    check_error_offset(error, len);
    let text = error.to_string();
    for again in [decoder.decode(buf), decoder.decode_eof(buf)] {
        match again {
            Err(e) => assert_eq!(e.to_string(), text, "a later call gave another error"),
            Ok(item) => panic!("decoder went on after {text}: {item:?}"),
        }
    }
}

/// A decoding error of a `len`-byte input points inside it, and a `Truncated` counts to its
/// end.
fn check_error_offset(error: &Error, len: usize) {
    let offset = error.offset().expect("a decoding error has an offset");
    assert!(
        offset <= len as u64,
        "error offset {offset} past the input ({len} bytes)"
    );
    if let Error::Truncated { offset, buffered } = error {
        assert_eq!(
            *offset + *buffered as u64,
            len as u64,
            "Truncated must count to EOF"
        );
    }
}

/// A `len`-byte input decoded to its end without error: every byte accounted for, and
/// nothing of a frame left.
fn check_clean_end(decoder: &Decoder, len: usize) {
    assert_eq!(decoder.consumed(), len as u64, "bytes unaccounted for");
    assert!(!decoder.is_mid_frame(), "mid-frame after a clean end");
}

/// The `decode` target: `data` as a raw stream, in every version, with small and default
/// limits. Checks the contract of [`decode_chunked`]; that tighter limits only cut the item
/// list short (same result unless a limit was what stopped it); and that every decoded frame
/// encodes again and survives the round trip (a decoded frame is always representable).
pub fn check_stream(data: &[u8]) {
    for version in Version::ALL {
        let tight = decode_stream(version, fuzz_limits(), data, &[]);
        let loose = decode_stream(version, Limits::default(), data, &[]);
        if let Some(Error::LimitExceeded { .. }) = tight.error {
            assert!(
                loose.items.starts_with(&tight.items),
                "raising the limits changed the items before the limit ({version})"
            );
        } else {
            assert_eq!(
                tight.described(),
                loose.described(),
                "the limits changed a result they did not cause ({version})"
            );
        }
        for item in &loose.items {
            if let Item::Frame(frame) = item {
                check_reencode(version, frame);
            }
        }
    }
}

/// Longest input [`check_decode`] also decodes one byte at a time.
const BYTEWISE_MAX: usize = 1024;

/// Checks that decoding `data` whole, split at `chunks` and one byte at a time (its first
/// kilobyte) agree (same items, same error), in place too ([`decode_slice_chunked`]), in
/// every version, and that every decoded frame survives encode -> decode. Panics on a
/// violation.
pub fn check_decode(data: &[u8], chunks: &[usize]) {
    for version in Version::ALL {
        let whole = decode_chunked(version, fuzz_limits(), data, &[]);
        let split = decode_chunked(version, fuzz_limits(), data, chunks);
        assert_eq!(
            whole, split,
            "split decode differs ({version}, chunks {chunks:?})"
        );
        let (items, error) = decode_slice_chunked(version, fuzz_limits(), data, chunks);
        assert_eq!(
            (items, error.as_ref().map(Error::to_string)),
            split,
            "decode_slice differs from decode ({version}, chunks {chunks:?})"
        );
        // One byte at a time costs a call per byte: only for the first kilobyte (16 of the
        // scanner's blocks); a plan of all 1s covers longer inputs.
        let prefix = &data[..data.len().min(BYTEWISE_MAX)];
        assert_eq!(
            decode_chunked(version, fuzz_limits(), prefix, &[]),
            decode_chunked(version, fuzz_limits(), prefix, &[1]),
            "byte-at-a-time decode differs ({version})"
        );
        for item in &whole.0 {
            if let Item::Frame(frame) = item {
                check_reencode(version, frame);
            }
        }
    }
}

/// How the `decode_split` target reads its input: the low 3 bits of the first byte say how
/// many of the following bytes are chunk sizes (each 0..=255, 0 meaning 1); the rest is the
/// stream.
pub fn split_plan(data: &[u8]) -> (Vec<usize>, &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return (Vec::new(), data);
    };
    let n = usize::from(first & 7).min(rest.len());
    let (sizes, stream) = rest.split_at(n);
    (sizes.iter().map(|&b| usize::from(b)).collect(), stream)
}

/// The `decode_split` target: [`check_decode`] on the stream and chunk sizes of
/// [`split_plan`].
pub fn check_split_input(data: &[u8]) {
    let (chunks, stream) = split_plan(data);
    check_decode(stream, &chunks);
}

/// A frame to encode: the `round_trip` target's structured input, built from the fuzzer's
/// bytes through [`arbitrary::Arbitrary`] (see the impl for the layout).
#[derive(Debug, Clone)]
pub struct FrameInput {
    /// The version to encode and decode in.
    pub version: Version,
    /// Whether the encoder adds `content-length` to every non-empty body.
    pub always_content_length: bool,
    /// The frame.
    pub frame: Frame,
}

/// Reads a frame description; every input gives one, missing bytes count as 0 (as
/// `Unstructured` fills integers), so the committed seeds stay short and readable:
///
/// ```text
/// flags command count (name_len name value_len value){count} body
/// ```
///
/// - `flags`: bits 0-1 the version (0 = 1.0, 1 = 1.1, 2 or 3 = 1.2); bit 2
///   `Encoder::with_content_length(true)`; bit 3 adds a `content-length` header giving the
///   body's length, after the others, or before them with bit 4 also set.
/// - `command`: index into [`Command::ALL`], modulo 15.
/// - `count` headers, each name and value preceded by its length in one byte (cut short at
///   the end of the input). Everything after the last header is the body.
impl<'a> arbitrary::Arbitrary<'a> for FrameInput {
    fn arbitrary(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        let flags = u8::arbitrary(u)?;
        let command = Command::ALL[usize::from(u8::arbitrary(u)?) % Command::ALL.len()];
        let count = u8::arbitrary(u)?;
        let version = match flags & 3 {
            0 => Version::V1_0,
            1 => Version::V1_1,
            _ => Version::V1_2,
        };
        let mut headers = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let name = prefixed(u)?;
            let value = prefixed(u)?;
            headers.push((name, value));
        }
        let body = Bytes::copy_from_slice(u.bytes(u.len())?);
        let length = body.len().to_string();
        let mut builder = Frame::builder(command);
        if flags & 0b1_1000 == 0b1_1000 {
            builder = builder.header("content-length", &length);
        }
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        if flags & 0b1_1000 == 0b0_1000 {
            builder = builder.header("content-length", &length);
        }
        Ok(Self {
            version,
            always_content_length: flags & 0b100 != 0,
            frame: builder.body(body).build(),
        })
    }

    fn arbitrary_take_rest(mut u: arbitrary::Unstructured<'a>) -> arbitrary::Result<Self> {
        Self::arbitrary(&mut u)
    }
}

impl FrameInput {
    /// The frame `data` describes, read the way the fuzz target reads it.
    pub fn parse(data: &[u8]) -> Self {
        use arbitrary::Arbitrary as _;
        Self::arbitrary_take_rest(arbitrary::Unstructured::new(data))
            .expect("every input describes a frame")
    }

    /// The encoder this input asks for.
    pub fn encoder(&self) -> Encoder {
        Encoder::new(self.version).with_content_length(self.always_content_length)
    }
}

/// A byte string preceded by its length in one byte, cut short at the end of the input.
fn prefixed<'a>(u: &mut arbitrary::Unstructured<'a>) -> arbitrary::Result<&'a [u8]> {
    use arbitrary::Arbitrary as _;
    let len = usize::from(u8::arbitrary(u)?);
    u.bytes(len.min(u.len()))
}

/// The `round_trip` target: `input`'s frame goes through `check_encoding`.
pub fn check_frame(input: &FrameInput) {
    // Refusals are checked inside; both outcomes are fine here.
    let _ = check_encoding(
        input.encoder(),
        input.always_content_length,
        &input.frame,
        true,
    );
}

/// [`check_frame`] on the frame `data` describes: the corpus replay's way in.
pub fn check_frame_input(data: &[u8]) {
    check_frame(&FrameInput::parse(data));
}

/// Encodes `frame` with `Encoder::new(version)`; if the encoder accepts it, decoding must give
/// it back. Panics on a violation (including an unjustified refusal).
pub fn check_round_trip(version: Version, frame: &Frame) {
    let _ = check_encoding(Encoder::new(version), false, frame, true);
}

/// A frame the decoder produced must encode again (and round trip). The decode targets
/// split their input themselves, so the round trip decodes whole only, to keep them fast.
fn check_reencode(version: Version, frame: &Frame) {
    if let Err(e) = check_encoding(Encoder::new(version), false, frame, false) {
        panic!("the encoder refuses a decoded frame ({version}): {e}; {frame:?}");
    }
}

/// Why the spec rules forbid encoding a frame (see [`refusals`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A body on a frame other than SEND, MESSAGE or ERROR.
    Body,
    /// A header an unescaped frame cannot carry.
    Header(Forbidden),
    /// A `content-length` header that is not the body's length.
    ContentLength,
}

impl Refusal {
    /// The refusal an encoding error stands for; `None` for errors the encoder must not give.
    pub fn of(error: &Error) -> Option<Self> {
        match error {
            Error::BodyNotAllowed { .. } => Some(Self::Body),
            Error::Unrepresentable { forbidden, .. } => Some(Self::Header(*forbidden)),
            Error::ContentLengthMismatch { .. } => Some(Self::ContentLength),
            _ => None,
        }
    }
}

/// Everything that makes `frame` unencodable in `version`, from the spec rules alone (written
/// apart from the encoder, to check it): empty when the frame can be written.
///
/// - Only SEND, MESSAGE and ERROR may have a body.
/// - No header name may be empty.
/// - Headers are written raw in 1.0 and in CONNECT, STOMP and CONNECTED frames: there a line
///   feed (anywhere), a colon (in a name) and, in 1.2 where CRLF ends lines, a carriage return
///   cannot be written.
/// - The first `content-length` header, if any, must be the body's length in decimal.
pub fn refusals(version: Version, frame: &Frame) -> Vec<Refusal> {
    let command = frame.command();
    let body = frame.body();
    let mut out = Vec::new();
    let body_allowed = matches!(command, Command::Send | Command::Message | Command::Error);
    if !body.is_empty() && !body_allowed {
        out.push(Refusal::Body);
    }
    let raw = version == Version::V1_0
        || matches!(
            command,
            Command::Connect | Command::Stomp | Command::Connected
        );
    for (name, value) in frame.headers() {
        if name.is_empty() {
            out.push(Refusal::Header(Forbidden::EmptyName));
        }
        if !raw {
            continue;
        }
        for (text, is_name) in [(name, true), (value, false)] {
            if text.contains(&b'\n') {
                out.push(Refusal::Header(Forbidden::LineFeed));
            }
            if version == Version::V1_2 && text.contains(&b'\r') {
                out.push(Refusal::Header(Forbidden::CarriageReturn));
            }
            if is_name && text.contains(&b':') {
                out.push(Refusal::Header(Forbidden::Colon));
            }
        }
    }
    if let Some(declared) = frame.header("content-length") {
        if decimal(declared) != Some(body.len() as u64) {
            out.push(Refusal::ContentLength);
        }
    }
    out
}

/// A non-empty run of ASCII digits that fits in a `u64`.
fn decimal(text: &[u8]) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    text.iter().try_fold(0u64, |n, &d| {
        if !d.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// The frame the decoder must give back for `frame` once encoded: the same, plus the
/// `content-length` the encoder adds to a body that needs one (holding a NUL, or any body when
/// `always_content_length`).
pub fn expected_after_round_trip(frame: &Frame, always_content_length: bool) -> Frame {
    let body = frame.body();
    let needs_length = !body.is_empty()
        && frame.header("content-length").is_none()
        && (always_content_length || body.contains(&0));
    if needs_length {
        frame
            .to_builder()
            .header("content-length", body.len().to_string())
            .build()
    } else {
        frame.clone()
    }
}

/// Encodes `frame` and checks the result against the spec rules:
/// - refused exactly when [`refusals`] finds a reason, with one of those reasons, and with
///   nothing appended to the buffer;
/// - otherwise the bytes are `encode_head` + body + NUL, decode (whole, and with `split` also
///   one byte at a time) to [`expected_after_round_trip`] and nothing else, and encoding that
///   frame again gives the same bytes.
///
/// Returns the encoder's error, if it refused.
fn check_encoding(
    encoder: Encoder,
    always_content_length: bool,
    frame: &Frame,
    split: bool,
) -> Result<(), Error> {
    const BEFORE: &[u8] = b"earlier output\n";
    let version = encoder.version();
    let reasons = refusals(version, frame);
    let mut out = BytesMut::from(BEFORE);
    if let Err(error) = encoder.encode(frame, &mut out) {
        assert_eq!(&out[..], BEFORE, "a failed encode must not write ({error})");
        let refusal = Refusal::of(&error)
            .unwrap_or_else(|| panic!("unexpected encoding error ({version}): {error}"));
        assert!(
            reasons.contains(&refusal),
            "encoder refused ({version}) with {refusal:?}, but the rules only forbid \
             {reasons:?}: {error}; {frame:?}"
        );
        return Err(error);
    }
    assert!(
        reasons.is_empty(),
        "encoder wrote ({version}) a frame the rules forbid ({reasons:?}): {frame:?}"
    );
    let wire = out.split_off(BEFORE.len()).freeze();

    let mut head = BytesMut::new();
    encoder
        .encode_head(frame, &mut head)
        .expect("encode_head accepts what encode accepts");
    let mut assembled = head.to_vec();
    assembled.extend_from_slice(frame.body());
    assembled.push(0);
    assert_eq!(
        &wire[..],
        &assembled[..],
        "encode is encode_head + body + NUL"
    );

    let expected = expected_after_round_trip(frame, always_content_length);
    // One byte at a time for small frames; for big ones, steps around the scanner's 64-byte
    // blocks keep the fuzzer fast (`decode_split` checks arbitrary splits in depth).
    let steps: &[usize] = if wire.len() <= 512 {
        &[1]
    } else {
        &[1, 2, 63, 64, 65, 127]
    };
    let plans: &[&[usize]] = if split { &[&[], steps] } else { &[&[]] };
    for &chunks in plans {
        let decoded = decode_chunked(version, unlimited(), &wire, chunks);
        assert_eq!(
            decoded,
            (vec![Item::Frame(expected.clone())], None),
            "round trip ({version}, chunks {chunks:?}) of {:?}",
            String::from_utf8_lossy(&wire)
        );
    }

    let mut again = BytesMut::new();
    encoder
        .encode(&expected, &mut again)
        .expect("the decoded frame encodes again");
    assert_eq!(
        &again[..],
        &wire[..],
        "re-encoding changed the bytes ({version})"
    );
    Ok(())
}
