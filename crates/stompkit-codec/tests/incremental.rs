//! Decoding is incremental: any split gives the same items, and no byte is scanned twice.

mod support;

use bytes::BytesMut;
use stompkit_codec::{Decoder, Item, Limits, Version};

const STREAM: &[u8] = b"\nCONNECTED\nversion:1.2\nsession:ID:x:1\n\n\0\nMESSAGE\r\ndestination:/q\r\nx:a\\cb\r\ncontent-length:3\r\n\r\na\0c\0\n\r\nSEND\ndestination:/q\n\nplain body\0";

fn decode_in_steps(data: &[u8], step: usize) -> Vec<Item> {
    let mut decoder = Decoder::new(Version::V1_2);
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    for chunk in data.chunks(step) {
        buf.extend_from_slice(chunk);
        while let Some(item) = decoder.decode(&mut buf).unwrap() {
            items.push(item);
        }
    }
    assert!(decoder.decode_eof(&mut buf).unwrap().is_none());
    items
}

#[test]
fn every_chunk_size_gives_the_same_items() {
    let whole = decode_in_steps(STREAM, STREAM.len());
    assert_eq!(
        whole.iter().filter(|i| matches!(i, Item::Frame(_))).count(),
        3
    );
    for step in 1..STREAM.len() {
        assert_eq!(decode_in_steps(STREAM, step), whole, "step {step}");
    }
}

// The "not rescanned" tests below probe which bytes the decoder looks at again. The decoder
// checks only the length of what it was given before (`Error::BufferShrank`), so a test can
// overwrite bytes it has already examined: a NUL planted in the examined part of a body, or a
// line feed in a finished header line, changes the result only if the decoder reads that
// byte again. Work per byte is then bounded without timing anything.

/// A body without `content-length` for the "not rescanned" tests: large, so that the frame
/// arrives over many calls.
fn large_frame_without_length() -> (Vec<u8>, usize) {
    let mut wire = b"SEND\ndestination:/q\n\n".to_vec();
    let body_start = wire.len();
    wire.resize(body_start + (1 << 20), b'x');
    wire.push(0);
    (wire, body_start)
}

fn large_frame_limits() -> Limits {
    Limits::default().with_max_frame_bytes(2 << 20)
}

const SLOW_CHUNK: usize = 64 << 10;

#[test]
fn a_slowly_arriving_large_frame_is_not_rescanned() {
    let (wire, body_start) = large_frame_without_length();
    let mut decoder = Decoder::with_limits(Version::V1_2, large_frame_limits());
    let mut buf = BytesMut::new();
    // What the buffer holds after the plants: the body the frame must come out with.
    let mut expected = Vec::new();
    let mut result = None;
    for chunk in wire.chunks(SLOW_CHUNK) {
        assert!(result.is_none(), "the frame ended before its NUL");
        buf.extend_from_slice(chunk);
        expected.extend_from_slice(chunk);
        match decoder.decode(&mut buf).unwrap() {
            Some(item) => result = Some(item),
            None => {
                // Every body byte given so far has been searched for the NUL.
                buf[body_start..].fill(0);
                expected[body_start..].fill(0);
            }
        }
    }
    let frame = result.and_then(Item::into_frame).expect("frame");
    assert_eq!(frame.body(), &expected[body_start..expected.len() - 1]);
    assert!(buf.is_empty());
}

#[test]
fn a_slowly_arriving_large_frame_is_not_rescanned_by_decode_slice() {
    let (wire, body_start) = large_frame_without_length();
    let mut decoder = Decoder::with_limits(Version::V1_2, large_frame_limits());
    let mut buf = Vec::new();
    let mut found = None;
    for chunk in wire.chunks(SLOW_CHUNK) {
        assert!(found.is_none(), "the frame ended before its NUL");
        buf.extend_from_slice(chunk);
        match decoder.decode_slice(&buf).unwrap() {
            Some((item, len)) => {
                let frame = item.into_frame().expect("a frame, not a heart-beat");
                found = Some((frame.body().len(), len));
            }
            None => buf[body_start..].fill(0),
        }
    }
    let (body_len, len) = found.expect("frame");
    assert_eq!(len, wire.len());
    assert_eq!(body_len, wire.len() - body_start - 1);
}

#[test]
fn a_slowly_arriving_long_head_is_not_rescanned() {
    const HEADERS: usize = 300;
    let mut wire = b"SEND\n".to_vec();
    // Where each header's value is in the wire (and in the buffer: nothing is taken off
    // before the frame is whole).
    let mut values = Vec::new();
    for i in 0..HEADERS {
        let name = format!("h{i}:");
        wire.extend_from_slice(name.as_bytes());
        let start = wire.len();
        // Long values, so that a line spans several calls and scan blocks.
        wire.extend_from_slice(format!("value-{i}-{}", "v".repeat(i % 90)).as_bytes());
        values.push(start..wire.len());
        wire.push(b'\n');
    }
    wire.extend_from_slice(b"\nbody\0");
    let limits = Limits::default().with_max_headers(HEADERS);
    let mut decoder = Decoder::with_limits(Version::V1_2, limits);
    let mut buf = BytesMut::new();
    let mut planted = wire.clone();
    let mut result = None;
    // 7 bytes a call: chunk ends fall anywhere in a line and in a 64-byte scan block.
    for chunk in wire.chunks(7) {
        assert!(result.is_none(), "the frame ended early");
        buf.extend_from_slice(chunk);
        if let Some(item) = decoder.decode(&mut buf).unwrap() {
            result = Some(item);
            continue;
        }
        // Every value byte given so far, in finished lines and in the line still arriving,
        // has been searched for line ends: make each one a line feed. Reading one of them
        // again would split its line in two.
        for range in &values {
            for at in range.start..range.end.min(buf.len()) {
                buf[at] = b'\n';
                planted[at] = b'\n';
            }
        }
    }
    let frame = result.and_then(Item::into_frame).expect("frame");
    assert_eq!(frame.headers().len(), HEADERS);
    for (i, (name, value)) in frame.headers().enumerate() {
        assert_eq!(name, format!("h{i}").as_bytes());
        // The value as the buffer held it at the end, or as it was first read: either way,
        // one line.
        let range = values[i].clone();
        assert!(
            value == &planted[range.clone()] || value == &wire[range],
            "header {i}: {:?}",
            String::from_utf8_lossy(value)
        );
    }
    assert_eq!(frame.body(), b"body");
}

#[test]
fn mid_frame_state_is_visible() {
    let mut decoder = Decoder::new(Version::V1_2);
    let mut buf = BytesMut::from(&b"SEND\ndest"[..]);
    assert!(decoder.decode(&mut buf).unwrap().is_none());
    assert!(decoder.is_mid_frame());
    buf.extend_from_slice(b"ination:/q\n\n\0");
    assert!(decoder.decode(&mut buf).unwrap().is_some());
    assert!(!decoder.is_mid_frame());
    assert_eq!(decoder.consumed(), 22);
}

#[test]
fn truncated_input_is_an_error_at_eof() {
    for cut in 1..STREAM.len() {
        let mut decoder = Decoder::new(Version::V1_2);
        let mut buf = BytesMut::from(&STREAM[..cut]);
        let last = loop {
            match decoder.decode_eof(&mut buf) {
                Ok(Some(_)) => continue,
                other => break other,
            }
        };
        match last {
            Ok(None) => assert!(buf.is_empty()),
            Err(stompkit_codec::Error::Truncated { buffered, .. }) => assert!(buffered > 0),
            Err(e) => panic!("cut {cut}: {e:?}"),
            Ok(Some(_)) => unreachable!(),
        }
    }
}
