//! The stompkit-codec decoder driver of the benches, and the counts every decoder driver
//! reports. Used by `shared/drivers.rs` (the benches and the corpus test) and by the
//! `decode-profile` bin, so that what is profiled is what is timed.

use bytes::BytesMut;
use stompkit_codec::{Decoder, Item, ItemRef, Limits, Version};

/// The largest frame the decoders accept (the corpus' largest is just over 1 MiB).
pub const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;

/// What a decoder returned for one buffer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Frames returned.
    pub frames: usize,
    /// Heart-beats returned (EOLs between frames, for decoders that report them).
    pub heartbeats: usize,
    /// Headers over all frames.
    pub headers: usize,
    /// Body bytes over all frames.
    pub body_bytes: usize,
}

impl Counts {
    /// Counts one frame with `headers` headers and a body of `body` bytes.
    pub fn frame(&mut self, headers: usize, body: usize) {
        self.frames += 1;
        self.headers += headers;
        self.body_bytes += body;
    }
}

/// A stompkit decoder as the benches configure it.
pub fn stompkit_decoder() -> Decoder {
    Decoder::with_limits(
        Version::V1_2,
        Limits::default().with_max_frame_bytes(MAX_FRAME_BYTES),
    )
}

/// stompkit-codec: `Decoder::decode` until the buffer is drained, looking at each frame
/// (header count, body length) before dropping it.
pub fn decode_stompkit(decoder: &mut Decoder, buf: &mut BytesMut) -> Counts {
    let mut counts = Counts::default();
    while let Some(item) = decoder.decode(buf).expect("stompkit decodes the corpus") {
        match item {
            Item::Frame(frame) => counts.frame(frame.headers().len(), frame.body().len()),
            Item::Heartbeat => counts.heartbeats += 1,
        }
    }
    counts
}

/// stompkit-codec in place: `Decoder::decode_slice` over the buffer, advancing by each
/// item's length, looking at each frame (header count, body length) as the other drivers do.
pub fn decode_stompkit_slice(decoder: &mut Decoder, buf: &[u8]) -> Counts {
    let mut counts = Counts::default();
    let mut at = 0;
    while let Some((item, len)) = decoder
        .decode_slice(&buf[at..])
        .expect("stompkit decodes the corpus")
    {
        match item {
            ItemRef::Frame(frame) => counts.frame(frame.headers().len(), frame.body().len()),
            ItemRef::Heartbeat => counts.heartbeats += 1,
        }
        at += len;
    }
    counts
}
