//! Helpers shared by the codec's integration tests.
#![allow(dead_code, unreachable_pub)]

use bytes::BytesMut;
use stompkit_codec::{Decoder, Error, Frame, Item, Limits, Version};

/// Decodes `data` whole, then at EOF; returns the items and the error, if any.
pub fn decode_all(version: Version, data: &[u8]) -> (Vec<Item>, Option<Error>) {
    decode_with(Decoder::new(version), data)
}

/// Like [`decode_all`] with limits.
pub fn decode_limited(version: Version, limits: Limits, data: &[u8]) -> (Vec<Item>, Option<Error>) {
    decode_with(Decoder::with_limits(version, limits), data)
}

fn decode_with(mut decoder: Decoder, data: &[u8]) -> (Vec<Item>, Option<Error>) {
    let mut buf = BytesMut::from(data);
    let mut items = Vec::new();
    loop {
        match decoder.decode_eof(&mut buf) {
            Ok(Some(item)) => items.push(item),
            Ok(None) => return (items, None),
            Err(e) => return (items, Some(e)),
        }
    }
}

/// The frames of a stream that must decode without error.
pub fn frames(version: Version, data: &[u8]) -> Vec<Frame> {
    let (items, error) = decode_all(version, data);
    assert!(error.is_none(), "unexpected error: {error:?}");
    items.into_iter().filter_map(Item::into_frame).collect()
}

/// The single frame of `data` (heart-beats around it are allowed).
pub fn frame(version: Version, data: &[u8]) -> Frame {
    let mut all = frames(version, data);
    assert_eq!(all.len(), 1, "expected one frame");
    all.remove(0)
}

/// The error decoding `data` gives.
pub fn error(version: Version, data: &[u8]) -> Error {
    decode_all(version, data).1.expect("expected an error")
}

/// Headers as owned `(name, value)` strings, lossily.
pub fn headers(frame: &Frame) -> Vec<(String, String)> {
    frame
        .headers()
        .map(|(n, v)| {
            (
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect()
}

/// `(name, value)` pairs from string literals.
pub fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}
