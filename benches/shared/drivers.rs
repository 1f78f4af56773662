//! How each library decodes and encodes the corpus: the exact code the benches time.
//!
//! Included with `#[path]` by `benches/codec.rs` and `tests/corpus.rs`, so the correctness
//! test checks the code that is measured.
//!
//! Every decoder drains the whole buffer through its public entry point and looks at each
//! frame it returns (header count, body length), dropping it before the next: what a
//! consumer does at the least. Every encoder writes all frames into one buffer.

use bytes::BytesMut;
use stompkit_benches::corpus::Message;
use stompkit_codec::{Command, Encoder, Frame};
use tokio_util::codec::{Decoder as _, Encoder as _};

// The counts every decoder reports and the stompkit decoder driver live in the library
// (`stompkit_benches::stompkit`), so that the `decode-profile` bin runs the very code timed
// here.
pub(crate) use stompkit_benches::stompkit::{
    Counts, MAX_FRAME_BYTES, decode_stompkit, decode_stompkit_slice, stompkit_decoder,
};

// ---------------------------------------------------------------------------------------------
// Decoders.

/// An iridium-stomp codec as the benches configure it.
pub(crate) fn iridium_codec() -> iridium_stomp::StompCodec {
    iridium_stomp::StompCodec::with_max_frame_size(MAX_FRAME_BYTES)
}

/// iridium-stomp: `StompCodec` as a tokio-util `Decoder`, until the buffer is drained.
pub(crate) fn decode_iridium_codec(
    codec: &mut iridium_stomp::StompCodec,
    buf: &mut BytesMut,
) -> Counts {
    let mut counts = Counts::default();
    while let Some(item) = codec.decode(buf).expect("iridium-stomp decodes the corpus") {
        match item {
            iridium_stomp::StompItem::Frame(frame) => {
                counts.frame(frame.headers.len(), frame.body.len());
            }
            iridium_stomp::StompItem::Heartbeat => counts.heartbeats += 1,
        }
    }
    counts
}

/// iridium-stomp's frame parser, `parser::parse_frame_slice_bounded`, over the whole buffer:
/// its fastest entry point (owned `Vec`s, no unescaping, no UTF-8 conversion).
pub(crate) fn decode_iridium_parser(buf: &[u8]) -> Counts {
    let mut counts = Counts::default();
    let mut at = 0;
    while at < buf.len() {
        let parsed = iridium_stomp::parser::parse_frame_slice_bounded(&buf[at..], MAX_FRAME_BYTES)
            .expect("iridium-stomp parses the corpus");
        let Some((_command, headers, body, consumed)) = parsed else {
            break;
        };
        counts.frame(headers.len(), body.map_or(0, |b| b.len()));
        at += consumed;
    }
    counts
}

/// tokio-stomp-2: `ClientCodec` as a tokio-util `Decoder`, until the buffer is drained.
pub(crate) fn decode_tokio_stomp(
    codec: &mut tokio_stomp_2::client::ClientCodec,
    buf: &mut BytesMut,
) -> Counts {
    let mut counts = Counts::default();
    while let Some(message) = codec.decode(buf).expect("tokio-stomp-2 decodes the corpus") {
        match message.content {
            tokio_stomp_2::FromServer::Message { headers, body, .. } => {
                counts.frame(headers.len(), body.map_or(0, |b| b.len()));
            }
            other => panic!("tokio-stomp-2 returned {other:?} for a MESSAGE frame"),
        }
    }
    counts
}

// ---------------------------------------------------------------------------------------------
// Frames to encode, one kind per library, built from the same messages.

/// The stompkit frame for `message`.
pub(crate) fn stompkit_frame(message: &Message) -> Frame {
    let mut builder = Frame::builder(Command::Message);
    for (name, value) in &message.headers {
        builder = builder.header(name, value);
    }
    builder.body(message.body.clone()).build()
}

/// The iridium-stomp frame for `message`.
pub(crate) fn iridium_frame(message: &Message) -> iridium_stomp::Frame {
    let mut frame = iridium_stomp::Frame::new("MESSAGE");
    frame.headers.clone_from(&message.headers);
    frame.set_body(message.body.clone())
}

/// The tokio-stomp-2 message for `message`. Its encoder writes only client frames, so this
/// is a `SEND` to the same destination with the other headers and the body.
pub(crate) fn tokio_stomp_send(message: &Message) -> tokio_stomp_2::ToServer {
    let destination = message.header("destination").unwrap_or_default().to_owned();
    let headers = message
        .headers
        .iter()
        .filter(|(name, _)| name != "destination")
        .cloned()
        .collect();
    tokio_stomp_2::ToServer::Send {
        destination,
        transaction: None,
        headers: Some(headers),
        body: Some(message.body.clone()),
    }
}

// ---------------------------------------------------------------------------------------------
// Encoders. Each appends to `dst`; the caller clears it between runs.

/// stompkit-codec: `Encoder::encode` of every frame.
pub(crate) fn encode_stompkit(encoder: &Encoder, frames: &[Frame], dst: &mut BytesMut) {
    for frame in frames {
        encoder
            .encode(frame, dst)
            .expect("stompkit encodes the corpus");
    }
}

/// iridium-stomp: `StompCodec` as a tokio-util `Encoder`, which takes each frame by value.
pub(crate) fn encode_iridium(
    codec: &mut iridium_stomp::StompCodec,
    frames: Vec<iridium_stomp::Frame>,
    dst: &mut BytesMut,
) {
    for frame in frames {
        codec
            .encode(iridium_stomp::StompItem::Frame(frame), dst)
            .expect("iridium-stomp encodes the corpus");
    }
}

/// tokio-stomp-2: `ClientCodec` as a tokio-util `Encoder`, which takes each message by value
/// (wrapped in its `Message`, as its API requires).
pub(crate) fn encode_tokio_stomp(
    codec: &mut tokio_stomp_2::client::ClientCodec,
    sends: Vec<tokio_stomp_2::ToServer>,
    dst: &mut BytesMut,
) {
    for send in sends {
        codec
            .encode(tokio_stomp_2::Message::from(send), dst)
            .expect("tokio-stomp-2 encodes the corpus");
    }
}
